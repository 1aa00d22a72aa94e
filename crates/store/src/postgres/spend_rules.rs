//! `spend_rules` on Postgres: the spec is `jsonb`, an existing rule is locked `FOR UPDATE`, and `now()` stamps it.

use sqlx::Postgres;
use sqlx::postgres::PgConnection;

use crate::spend_rules::SpendRulesBackend;

impl SpendRulesBackend for Postgres {
    const RULE_TEXTS: &'static str = "SELECT id, spec::text FROM spend_rules ORDER BY created_at, id";
    const RULE_EXISTS: &'static str = "SELECT 1 FROM spend_rules WHERE id = $1 FOR UPDATE";

    async fn upsert_spend_rule(conn: &mut PgConnection, id: &str, text: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO spend_rules (id, spec) VALUES ($1, CAST($2 AS jsonb))
             ON CONFLICT (id) DO UPDATE SET spec = EXCLUDED.spec, updated_at = now()",
        )
        .bind(id)
        .bind(text)
        .execute(conn)
        .await?;
        Ok(())
    }
}
