//! `quarantine` on Postgres: `quarantined_at` defaults to the database's `now()`.

use sqlx::Postgres;
use sqlx::postgres::PgConnection;

use crate::backend::{Backend, Bind};
use crate::quarantine::{QuarantineBackend, QuarantineKind};

impl QuarantineBackend for Postgres {
    async fn insert_quarantine(
        conn: &mut PgConnection,
        kind: QuarantineKind,
        record: &str,
        error: &str,
    ) -> Result<(), sqlx::Error> {
        let sql = "INSERT INTO quarantine (kind, record, error) VALUES ($1, $2, $3)";
        Self::execute(conn, sql, &[Bind::Text(kind.as_str()), Bind::Text(record), Bind::Text(error)]).await?;
        Ok(())
    }
}
