//! The store's error type.

use std::path::PathBuf;

/// Everything the store can fail at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The URL is neither `sqlite:` nor `postgres:`/`postgresql:`.
    #[error("unsupported database url {0:?}: expected sqlite://… or postgres://…")]
    UnsupportedUrl(String),
    /// The URL parsed as a known scheme but its options are invalid.
    #[error("invalid database url")]
    InvalidUrl(#[source] sqlx::Error),
    /// Applying migrations failed.
    #[error("database migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A statement failed or the database could not be reached.
    #[error("database query failed")]
    Query(#[from] sqlx::Error),
    /// A value does not fit the column (e.g. a `u64` above `i64::MAX`).
    #[error("{field} out of range for the database")]
    OutOfRange {
        /// The field that did not fit.
        field: &'static str,
    },
    /// Reading or writing the spill file failed.
    #[error("spill file {path}")]
    Spill {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The spill file reached its size bound.
    #[error("spill file {path} is full ({max_bytes} bytes)")]
    SpillFull {
        /// The file.
        path: PathBuf,
        /// The configured bound.
        max_bytes: u64,
    },
}

impl StoreError {
    /// Whether the failure is the database's (down, unreachable, refused the statement), as opposed to a bad
    /// value or a local file.
    pub fn is_database(&self) -> bool {
        matches!(self, Self::Query(_) | Self::Migrate(_))
    }

    /// Whether the database is up but refuses these values: retrying the same record can never succeed, so it is
    /// set aside (quarantined) rather than retried or spilled. An outage (connection, pool, I/O, a transaction
    /// conflict) is not a data error: the record waits in the spill file for the database to come back.
    ///
    /// - Postgres: SQLSTATE classes 22 (data exception: out of range, bad encoding or JSON), 23 (integrity
    ///   constraint) and 54 (program limit exceeded: an index row too large).
    /// - SQLite: primary result codes `SQLITE_TOOBIG` (18), `SQLITE_CONSTRAINT` (19), `SQLITE_MISMATCH` (20) and
    ///   `SQLITE_RANGE` (25).
    /// - Either: a value sqlx could not encode or decode, or one out of the column's range.
    pub fn is_data_error(&self) -> bool {
        match self {
            Self::OutOfRange { .. } => true,
            Self::Query(error) => is_data_error(error),
            Self::UnsupportedUrl(_)
            | Self::InvalidUrl(_)
            | Self::Migrate(_)
            | Self::Spill { .. }
            | Self::SpillFull { .. } => false,
        }
    }
}

pub(crate) fn is_data_error(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some() {
                ["22", "23", "54"].iter().any(|class| code.starts_with(class))
            } else if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                code.parse::<i32>().is_ok_and(|code| matches!(code & 0xff, 18 | 19 | 20 | 25))
            } else {
                false
            }
        }
        sqlx::Error::Encode(_) | sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. } => true,
        _ => false,
    }
}
