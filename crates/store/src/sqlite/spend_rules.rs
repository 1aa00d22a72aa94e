//! `spend_rules` on SQLite: the spec is text, the transaction's write lock (taken by the counter's bump) orders
//! writers, and times are bound Unix µs.

use jiff::Timestamp;
use sqlx::Sqlite;
use sqlx::sqlite::SqliteConnection;

use crate::spend_rules::SpendRulesBackend;

impl SpendRulesBackend for Sqlite {
    const RULE_TEXTS: &'static str = "SELECT id, spec FROM spend_rules ORDER BY created_at, id";
    const RULE_EXISTS: &'static str = "SELECT 1 FROM spend_rules WHERE id = $1";

    async fn upsert_spend_rule(conn: &mut SqliteConnection, id: &str, text: &str) -> Result<(), sqlx::Error> {
        let now = Timestamp::now().as_microsecond();
        sqlx::query(
            "INSERT INTO spend_rules (id, spec, created_at, updated_at) VALUES ($1, $2, $3, $3)
             ON CONFLICT (id) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at",
        )
        .bind(id)
        .bind(text)
        .bind(now)
        .execute(conn)
        .await?;
        Ok(())
    }
}
