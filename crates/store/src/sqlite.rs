//! The SQLite backend: statement runners ([`Backend`]) here, one file per aggregate below (`sqlite/`), each
//! implementing that aggregate's primitives where SQLite differs (one cached statement per row, Unix µs integer
//! times, the database write lock).

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
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteConnection, SqliteRow};
use sqlx::{QueryBuilder, Sqlite};

use crate::backend::{Backend, Bind};

impl Backend for Sqlite {
    async fn execute(conn: &mut SqliteConnection, sql: &'static str, binds: &[Bind<'_>]) -> Result<u64, sqlx::Error> {
        Ok(bound(sqlx::query(sql), binds).execute(conn).await?.rows_affected())
    }

    async fn fetch_all(
        conn: &mut SqliteConnection,
        sql: &'static str,
        binds: &[Bind<'_>],
    ) -> Result<Vec<SqliteRow>, sqlx::Error> {
        bound(sqlx::query(sql), binds).fetch_all(conn).await
    }

    async fn fetch_optional(
        conn: &mut SqliteConnection,
        sql: &'static str,
        binds: &[Bind<'_>],
    ) -> Result<Option<SqliteRow>, sqlx::Error> {
        bound(sqlx::query(sql), binds).fetch_optional(conn).await
    }

    async fn fetch_built(
        conn: &mut SqliteConnection,
        query: &mut QueryBuilder<Self>,
    ) -> Result<Vec<SqliteRow>, sqlx::Error> {
        query.build().fetch_all(conn).await
    }

    async fn for_each_built<E: From<sqlx::Error>>(
        conn: &mut SqliteConnection,
        query: &mut QueryBuilder<Self>,
        mut row: impl FnMut(&SqliteRow) -> Result<(), E> + Send,
    ) -> Result<(), E> {
        let mut stream = query.build().fetch(conn);
        while let Some(next) = stream.try_next().await? {
            row(&next)?;
        }
        Ok(())
    }

    async fn now_us(_: &mut SqliteConnection) -> Result<i64, sqlx::Error> {
        Ok(jiff::Timestamp::now().as_microsecond())
    }
}

fn bound<'q>(mut query: Query<'q, Sqlite, SqliteArguments>, binds: &[Bind<'q>]) -> Query<'q, Sqlite, SqliteArguments> {
    for bind in binds {
        query = match *bind {
            Bind::Int(value) => query.bind(value),
            Bind::Text(value) => query.bind(value),
            Bind::OptText(value) => query.bind(value),
        };
    }
    query
}
