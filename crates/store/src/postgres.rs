//! The Postgres backend: statement runners ([`Backend`]) here, one file per aggregate below (`postgres/`), each
//! implementing that aggregate's primitives where Postgres differs (`UNNEST` batches, `TIMESTAMPTZ` columns, table
//! locks).

mod ingest;
mod log_scan;
mod logs;
mod metadata_keys;
mod quarantine;
mod queries;
mod rollup;
mod spend;
mod spend_rules;

use futures_util::TryStreamExt;
use sqlx::postgres::{PgArguments, PgConnection, PgRow};
use sqlx::query::Query;
use sqlx::{Postgres, QueryBuilder, Row};

use crate::backend::{Backend, Bind};

impl Backend for Postgres {
    async fn execute(conn: &mut PgConnection, sql: &'static str, binds: &[Bind<'_>]) -> Result<u64, sqlx::Error> {
        Ok(bound(sqlx::query(sql), binds).execute(conn).await?.rows_affected())
    }

    async fn fetch_all(
        conn: &mut PgConnection,
        sql: &'static str,
        binds: &[Bind<'_>],
    ) -> Result<Vec<PgRow>, sqlx::Error> {
        bound(sqlx::query(sql), binds).fetch_all(conn).await
    }

    async fn fetch_optional(
        conn: &mut PgConnection,
        sql: &'static str,
        binds: &[Bind<'_>],
    ) -> Result<Option<PgRow>, sqlx::Error> {
        bound(sqlx::query(sql), binds).fetch_optional(conn).await
    }

    async fn fetch_built(conn: &mut PgConnection, query: &mut QueryBuilder<Self>) -> Result<Vec<PgRow>, sqlx::Error> {
        query.build().fetch_all(conn).await
    }

    async fn for_each_built<E: From<sqlx::Error>>(
        conn: &mut PgConnection,
        query: &mut QueryBuilder<Self>,
        mut row: impl FnMut(&PgRow) -> Result<(), E> + Send,
    ) -> Result<(), E> {
        let mut stream = query.build().fetch(conn);
        while let Some(next) = stream.try_next().await? {
            row(&next)?;
        }
        Ok(())
    }

    async fn now_us(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
        sqlx::query("SELECT (extract(epoch FROM now()) * 1000000)::int8").fetch_one(conn).await?.try_get(0)
    }
}

fn bound<'q>(mut query: Query<'q, Postgres, PgArguments>, binds: &[Bind<'q>]) -> Query<'q, Postgres, PgArguments> {
    for bind in binds {
        query = match *bind {
            Bind::Int(value) => query.bind(value),
            Bind::Text(value) => query.bind(value),
            Bind::OptText(value) => query.bind(value),
        };
    }
    query
}
