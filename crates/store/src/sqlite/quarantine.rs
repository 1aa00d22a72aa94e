//! `quarantine` on SQLite: `quarantined_at` is bound, in Unix µs.

use jiff::Timestamp;
use sqlx::Sqlite;
use sqlx::sqlite::SqliteConnection;

use crate::backend::{Backend, Bind};
use crate::quarantine::{QuarantineBackend, QuarantineKind};

impl QuarantineBackend for Sqlite {
    async fn insert_quarantine(
        conn: &mut SqliteConnection,
        kind: QuarantineKind,
        record: &str,
        error: &str,
    ) -> Result<(), sqlx::Error> {
        let sql = "INSERT INTO quarantine (kind, record, error, quarantined_at) VALUES ($1, $2, $3, $4)";
        let now = Bind::Int(Timestamp::now().as_microsecond());
        Self::execute(conn, sql, &[Bind::Text(kind.as_str()), Bind::Text(record), Bind::Text(error), now]).await?;
        Ok(())
    }
}
