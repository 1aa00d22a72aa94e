//! The backend trait every aggregate's primitives build on: how a statement runs on a connection of either
//! database, so that a statement written once (`$N` placeholders bind by index on SQLite too) and an algorithm
//! written once over the primitives both run on Postgres and on SQLite. Implemented by `sqlx::Postgres`
//! (`postgres.rs`) and `sqlx::Sqlite` (`sqlite.rs`); each aggregate adds its own primitives in a trait of its own
//! (`logs::LogsBackend`, …) implemented in `postgres/<aggregate>.rs` and `sqlite/<aggregate>.rs`.
//!
//! Static dispatch: an algorithm is a generic `fn f<B: …Backend>(pool: &sqlx::Pool<B>, …)` and a public `Store`
//! method picks the instance once (`match self.pool()`), so a batch costs no virtual call and no boxed future.

use sqlx::QueryBuilder;

use crate::sql::{Dialect, ReadRow};

/// A value bound to a statement run by [`Backend::execute`] or [`Backend::fetch_all`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Bind<'a> {
    Int(i64),
    Text(&'a str),
    /// Text or NULL (bound as a text NULL, so Postgres infers the parameter's type either way).
    OptText(Option<&'a str>),
}

/// Runs statements on a connection (a pooled one, or a transaction's: both deref to `Self::Connection`).
pub(crate) trait Backend: Dialect + sqlx::Database<Row: ReadRow> {
    /// Runs `sql` with `binds` (in `$1, $2…` order); the rows it affected.
    async fn execute(conn: &mut Self::Connection, sql: &'static str, binds: &[Bind<'_>]) -> Result<u64, sqlx::Error>;

    /// Runs `sql` with `binds`; every row it returned.
    async fn fetch_all(
        conn: &mut Self::Connection,
        sql: &'static str,
        binds: &[Bind<'_>],
    ) -> Result<Vec<Self::Row>, sqlx::Error>;

    /// Runs `sql` with `binds`; its first row, if any.
    async fn fetch_optional(
        conn: &mut Self::Connection,
        sql: &'static str,
        binds: &[Bind<'_>],
    ) -> Result<Option<Self::Row>, sqlx::Error>;

    /// Runs a statement built at run time; every row it returned.
    async fn fetch_built(
        conn: &mut Self::Connection,
        query: &mut QueryBuilder<Self>,
    ) -> Result<Vec<Self::Row>, sqlx::Error>;

    /// Runs a statement built at run time and hands each row to `row` as it arrives (the database sends the last
    /// rows while the first are decoded); stops at the first error.
    async fn for_each_built<E: From<sqlx::Error>>(
        conn: &mut Self::Connection,
        query: &mut QueryBuilder<Self>,
        row: impl FnMut(&Self::Row) -> Result<(), E> + Send,
    ) -> Result<(), E>;

    /// The time that stamps a row written now, Unix µs: the database's clock on Postgres (one clock for every
    /// replica), this process's on SQLite (one process).
    async fn now_us(conn: &mut Self::Connection) -> Result<i64, sqlx::Error>;
}

/// Runs `sql` with `binds`; its first row (`RowNotFound` when it returned none).
pub(crate) async fn fetch_one<B: Backend>(
    conn: &mut B::Connection,
    sql: &'static str,
    binds: &[Bind<'_>],
) -> Result<B::Row, sqlx::Error> {
    B::fetch_optional(conn, sql, binds).await?.ok_or(sqlx::Error::RowNotFound)
}
