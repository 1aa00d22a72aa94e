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
}
