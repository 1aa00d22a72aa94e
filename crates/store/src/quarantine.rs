//! The quarantine: a record the database refuses (a value it cannot store, not an outage) is set aside here, so
//! that it never holds up the records written with it.
//!
//! # Where a refused record goes
//!
//! 1. A batch the database refuses with a data error ([`StoreError::is_data_error`]) is split in halves, each
//!    written on its own, down to single records (`Store::insert_logs`); a spend batch is retried one delta at a
//!    time (`Store::store_spend_batch`). Every good record is written; an outage during the split fails the whole
//!    call as before (the caller spills, and the idempotent writes skip what already landed).
//! 2. A single record still refused is inserted, as JSON with the error, into the `quarantine` table.
//! 3. If even that insert fails, the same line is appended to `<spill path>.quarantine`, a JSON-lines file that is
//!    never replayed (it is for an operator to read).
//! 4. Either way it is counted in `/status` (`database.quarantined_records`) and logged at error.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use jiff::Timestamp;
use serde::Serialize;

use sqlx::{Postgres, Sqlite};

use crate::backend::Backend;
use crate::error::StoreError;
use crate::store::{Pool, Store};

/// The quarantine table's primitive (`postgres/quarantine.rs`, `sqlite/quarantine.rs`).
pub(crate) trait QuarantineBackend: Backend {
    /// Adds one refused record, stamped now.
    async fn insert_quarantine(
        conn: &mut Self::Connection,
        kind: QuarantineKind,
        record: &str,
        error: &str,
    ) -> Result<(), sqlx::Error>;
}

/// What kind of record is set aside (the `kind` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QuarantineKind {
    /// A request log record.
    Log,
    /// A spend batch of one delta.
    Spend,
}

impl QuarantineKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Log => "log",
            Self::Spend => "spend",
        }
    }
}

impl Store {
    /// Sets `record` aside with the error that refused it (see the module docs). Never fails: the last resort is
    /// the log line.
    pub(crate) async fn quarantine<T: Serialize>(&self, kind: QuarantineKind, record: &T, error: &StoreError) {
        // Serialising these types cannot fail (string keys, no non-finite floats); an empty object if it did.
        let text = serde_json::to_string(record).unwrap_or_else(|_| "{}".to_owned());
        let reason = error_chain(error).replace('\0', "\u{FFFD}");
        let stored = self.insert_quarantine(kind, &text, &reason).await;
        if let Err(table_error) = stored {
            let path = self.quarantine_path();
            let line = serde_json::json!({
                "kind": kind.as_str(),
                "record": text,
                "error": reason,
                "quarantined_at": Timestamp::now().to_string(),
            });
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .and_then(|mut file| writeln!(file, "{line}"));
            match written {
                Ok(()) => tracing::error!(
                    kind = kind.as_str(),
                    error = %reason,
                    table_error = %error_chain(&table_error),
                    path = %path.display(),
                    "record refused by the database; set aside in the quarantine file"
                ),
                Err(io) => tracing::error!(
                    kind = kind.as_str(),
                    error = %reason,
                    record = %text,
                    io_error = %io,
                    "record refused by the database and the quarantine file is unwritable; record only in this log"
                ),
            }
        } else {
            tracing::error!(kind = kind.as_str(), error = %reason, "record refused by the database; quarantined");
        }
        self.inner.quarantined.fetch_add(1, Ordering::Relaxed);
    }

    async fn insert_quarantine(&self, kind: QuarantineKind, record: &str, error: &str) -> Result<(), StoreError> {
        match self.pool() {
            Pool::Postgres(pool) => Postgres::insert_quarantine(&mut *pool.acquire().await?, kind, record, error).await,
            Pool::Sqlite(pool) => Sqlite::insert_quarantine(&mut *pool.acquire().await?, kind, record, error).await,
        }?;
        Ok(())
    }

    /// `<spill path>.quarantine`.
    pub(crate) fn quarantine_path(&self) -> PathBuf {
        let mut name = self.spill().path().as_os_str().to_owned();
        name.push(".quarantine");
        PathBuf::from(name)
    }
}

/// The error and its sources, `outer: inner: …` (the database's own message is in a source).
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
