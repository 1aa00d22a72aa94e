//! SQL helpers shared by both backends: integer and time conversions for bound values, and the [`Dialect`]
//! differences a query built at run time must know. The bottom layer: it depends on the error type only.

use jiff::Timestamp;
use sqlx::Row;

use crate::error::StoreError;

#[cfg(test)]
mod tests;

/// `value` as an `i64`, `i64::MAX` when it is larger (money and token counts saturate, they never fail).
pub(crate) fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn to_i64(value: u64, field: &'static str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange { field })
}

/// Unix microseconds (the precision of a Postgres `TIMESTAMPTZ`), rounded down.
pub(crate) fn timestamp_micros(at: Timestamp) -> i64 {
    at.as_microsecond()
}

/// Unix nanoseconds of `at` (the engine's window starts are whole nanoseconds well inside `i64`).
pub(crate) fn timestamp_nanos(at: Timestamp) -> i64 {
    i64::try_from(at.as_nanosecond()).unwrap_or(if at.as_nanosecond() < 0 { i64::MIN } else { i64::MAX })
}

/// SQL for `old + new` that stops at `i64::MAX` instead of failing (Postgres: "bigint out of range") or turning the
/// column into a REAL (SQLite). `new` is never negative (every measure is clamped into `0..=i64::MAX`), so
/// `i64::MAX - new` cannot overflow.
pub(crate) fn saturating_add_sql(old: &str, new: &str) -> String {
    format!("CASE WHEN {old} > 9223372036854775807 - {new} THEN 9223372036854775807 ELSE {old} + {new} END")
}

/// Postgres: a bound Unix-microseconds parameter as a `TIMESTAMPTZ` (`$n` is pushed by the caller after this).
pub(crate) const PG_FROM_MICROS: &str = "'epoch'::timestamptz + interval '1 microsecond' * ";

/// Postgres: a `TIMESTAMPTZ` column as Unix microseconds.
pub(crate) fn pg_micros(column: &str) -> String {
    format!("(EXTRACT(EPOCH FROM {column}) * 1000000)::int8")
}

/// A database `BIGINT` sum or count as `u64` (they are never negative; a corrupt negative reads as 0).
pub(crate) fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// What differs between the backends when a query is built at run time: how a bound time is written, how the
/// rollups' times read as Unix microseconds, and how values are bound (so generic builders need no bounds).
pub(crate) trait Dialect: sqlx::Database<Arguments: Default> {
    /// The UTC day of a rollup's `hour` column, of the `day` column's type.
    const DAY_OF_HOUR: &'static str;
    /// A whole hour or day (`hour`, `day`, [`Dialect::DAY_OF_HOUR`]) as Unix microseconds.
    fn micros(time: &str) -> String;
    /// Any time column (a log row's `created_at`) as Unix microseconds, exactly.
    fn exact_micros(time: &str) -> String;
    /// A JSON column as text.
    fn json_text(column: &str) -> String;
    /// The exact `BIGINT` sum of an integer column (an overflow is an error, never a wrong total).
    fn sum(column: &str) -> String;
    /// A sum that stops at `i64::MAX` instead of failing: what a query runs again with when [`Dialect::sum`]
    /// overflowed ([`is_overflow`]), so a total too large to store is reported as `i64::MAX`, never as an error.
    fn saturating_sum(column: &str) -> String;
    /// Binds Unix microseconds as the column type of a time.
    fn push_time(b: &mut sqlx::QueryBuilder<Self>, micros: i64);
    /// Binds text.
    fn push_text(b: &mut sqlx::QueryBuilder<Self>, value: String);
    /// Binds an integer.
    fn push_int(b: &mut sqlx::QueryBuilder<Self>, value: i64);
    /// Binds a boolean.
    fn push_bool(b: &mut sqlx::QueryBuilder<Self>, value: bool);
}

impl Dialect for sqlx::Postgres {
    // `date_trunc` with a time zone (PostgreSQL 12+): the UTC day whatever the session's `TimeZone`.
    const DAY_OF_HOUR: &'static str = "date_trunc('day', hour, 'UTC')";

    /// `date_part` is `float8` (`EXTRACT` is `numeric`, slower per group) and exact here: the times grouped on
    /// are whole hours or days, whose seconds and microseconds since 1970 are integers far below 2^53.
    fn micros(time: &str) -> String {
        format!("(date_part('epoch', {time}) * 1000000)::int8")
    }

    /// `EXTRACT` (`numeric`): exact to the microsecond, where `float8` seconds would round.
    fn exact_micros(time: &str) -> String {
        pg_micros(time)
    }

    fn json_text(column: &str) -> String {
        format!("{column}::text")
    }

    /// `sum_int8` (migration 0005) adds in `int8`: `SUM(bigint)` would add in `numeric` and convert every group's
    /// total back, which cost as much as the scan itself on 45,500 groups.
    fn sum(column: &str) -> String {
        format!("sum_int8({column})")
    }

    /// Summed in `numeric` (exact at any size), then capped: slower than `sum_int8`, so only the retry uses it.
    fn saturating_sum(column: &str) -> String {
        format!("LEAST(SUM({column}), 9223372036854775807)::int8")
    }

    fn push_time(b: &mut sqlx::QueryBuilder<Self>, micros: i64) {
        b.push("(").push(PG_FROM_MICROS).push_bind(micros).push(")");
    }
    fn push_text(b: &mut sqlx::QueryBuilder<Self>, value: String) {
        b.push_bind(value);
    }
    fn push_int(b: &mut sqlx::QueryBuilder<Self>, value: i64) {
        b.push_bind(value);
    }
    fn push_bool(b: &mut sqlx::QueryBuilder<Self>, value: bool) {
        b.push_bind(value);
    }
}

impl Dialect for sqlx::Sqlite {
    // Integer division truncates: right for every hour since 1970.
    const DAY_OF_HOUR: &'static str = "((hour / 86400000000) * 86400000000)";

    fn micros(time: &str) -> String {
        time.to_owned()
    }

    fn exact_micros(time: &str) -> String {
        time.to_owned()
    }

    fn json_text(column: &str) -> String {
        column.to_owned()
    }

    /// SQLite's `SUM` of integers is an integer (and fails on overflow).
    fn sum(column: &str) -> String {
        format!("CAST(SUM({column}) AS BIGINT)")
    }

    /// `TOTAL` adds in floating point and never fails; a REAL above `i64::MAX` casts to `i64::MAX`. Only the retry
    /// of a query whose exact sum overflowed uses it, so a group's total is rounded only in a report where some
    /// total exceeded `i64::MAX` nano-dollars (and then only above 2^53, about $9M).
    fn saturating_sum(column: &str) -> String {
        format!("CAST(MIN(TOTAL({column}), 9223372036854775807.0) AS INTEGER)")
    }

    fn push_time(b: &mut sqlx::QueryBuilder<Self>, micros: i64) {
        b.push_bind(micros);
    }
    fn push_text(b: &mut sqlx::QueryBuilder<Self>, value: String) {
        b.push_bind(value);
    }
    fn push_int(b: &mut sqlx::QueryBuilder<Self>, value: i64) {
        b.push_bind(value);
    }
    fn push_bool(b: &mut sqlx::QueryBuilder<Self>, value: bool) {
        b.push_bind(value);
    }
}

/// A column of a fetched row, by name or by position.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Column<'a> {
    Name(&'a str),
    At(usize),
}

impl<'a> From<&'a str> for Column<'a> {
    fn from(name: &'a str) -> Self {
        Self::Name(name)
    }
}

impl From<usize> for Column<'_> {
    fn from(at: usize) -> Self {
        Self::At(at)
    }
}

/// Typed column reads on a row of either backend, so that one decoding function serves both (the bounds are
/// written here once instead of on every decoder).
pub(crate) trait ReadRow {
    fn text<'a>(&self, column: impl Into<Column<'a>>) -> Result<String, sqlx::Error>;
    fn text_opt<'a>(&self, column: impl Into<Column<'a>>) -> Result<Option<String>, sqlx::Error>;
    fn int<'a>(&self, column: impl Into<Column<'a>>) -> Result<i64, sqlx::Error>;
    fn int_opt<'a>(&self, column: impl Into<Column<'a>>) -> Result<Option<i64>, sqlx::Error>;
    fn flag<'a>(&self, column: impl Into<Column<'a>>) -> Result<bool, sqlx::Error>;
}

impl<R> ReadRow for R
where
    R: Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn text<'a>(&self, column: impl Into<Column<'a>>) -> Result<String, sqlx::Error> {
        get(self, column.into())
    }
    fn text_opt<'a>(&self, column: impl Into<Column<'a>>) -> Result<Option<String>, sqlx::Error> {
        get(self, column.into())
    }
    fn int<'a>(&self, column: impl Into<Column<'a>>) -> Result<i64, sqlx::Error> {
        get(self, column.into())
    }
    fn int_opt<'a>(&self, column: impl Into<Column<'a>>) -> Result<Option<i64>, sqlx::Error> {
        get(self, column.into())
    }
    fn flag<'a>(&self, column: impl Into<Column<'a>>) -> Result<bool, sqlx::Error> {
        get(self, column.into())
    }
}

fn get<R, T>(row: &R, column: Column<'_>) -> Result<T, sqlx::Error>
where
    R: Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    usize: sqlx::ColumnIndex<R>,
    for<'r> T: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    match column {
        Column::Name(name) => row.try_get(name),
        Column::At(at) => row.try_get(at),
    }
}
