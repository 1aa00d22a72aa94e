//! The `spend_rules` aggregate: spend rules created through the admin API, and the `spend_rules_version`
//! counter that every change bumps in its own transaction, so replicas can poll one row to know when to reload.

use jiff::Timestamp;
use sqlx::Row;
use tollgate_limits::SpendRuleSpec;

use crate::error::StoreError;
use crate::store::{Pool, Store};

/// Every API rule, and the version they were read at (or later).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiSpendRules {
    /// The counter read before the rules: a change after it makes the next poll reload again.
    pub version: i64,
    /// The rules, oldest first.
    pub specs: Vec<SpendRuleSpec>,
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendRuleChange {
    /// A new rule was stored.
    Created,
    /// An existing rule was replaced.
    Replaced,
    /// The rule was deleted.
    Deleted,
    /// Nothing changed: the id is taken (insert) or unknown (delete).
    Unchanged,
}

impl Store {
    /// The rules' version counter: it moves whenever an API rule is created, replaced or deleted.
    pub async fn spend_rules_version(&self) -> Result<i64, StoreError> {
        let sql = "SELECT version FROM spend_rules_version";
        Ok(match self.pool() {
            Pool::Postgres(pool) => sqlx::query(sql).fetch_one(pool).await?.try_get(0)?,
            Pool::Sqlite(pool) => sqlx::query(sql).fetch_one(pool).await?.try_get(0)?,
        })
    }

    /// Every API rule. A stored spec that no longer parses (written by a newer version) is logged and skipped.
    pub async fn api_spend_rules(&self) -> Result<ApiSpendRules, StoreError> {
        let version = self.spend_rules_version().await?;
        // A row that cannot be read (not text) or does not parse is reported, counted in `/status`
        // (`unreadable_rows`) and skipped: one bad rule must not keep the others from loading.
        let mut unreadable = 0u64;
        let mut read = |row: Result<(String, String), sqlx::Error>| match row {
            Ok(texts) => Some(texts),
            Err(error) => {
                unreadable += 1;
                tracing::warn!(%error, "unreadable spend rule row skipped");
                None
            }
        };
        let texts: Vec<(String, String)> = match self.pool() {
            Pool::Postgres(pool) => sqlx::query("SELECT id, spec::text FROM spend_rules ORDER BY created_at, id")
                .fetch_all(pool)
                .await?
                .iter()
                .filter_map(|row| read((|| Ok((row.try_get(0)?, row.try_get(1)?)))()))
                .collect(),
            Pool::Sqlite(pool) => sqlx::query("SELECT id, spec FROM spend_rules ORDER BY created_at, id")
                .fetch_all(pool)
                .await?
                .iter()
                .filter_map(|row| read((|| Ok((row.try_get(0)?, row.try_get(1)?)))()))
                .collect(),
        };
        let specs = texts
            .into_iter()
            .filter_map(|(id, text)| match serde_json::from_str::<SpendRuleSpec>(&text) {
                Ok(spec) => Some(spec),
                Err(error) => {
                    unreadable += 1;
                    tracing::error!(rule = %id, %error, "stored spend rule does not parse; skipped");
                    None
                }
            })
            .collect();
        self.note_unreadable(unreadable);
        Ok(ApiSpendRules { version, specs })
    }

    /// Stores a new rule; [`SpendRuleChange::Unchanged`] when its id is already stored.
    pub async fn insert_spend_rule(&self, spec: &SpendRuleSpec) -> Result<SpendRuleChange, StoreError> {
        self.write_spend_rule(spec, false).await
    }

    /// Stores `spec` under its id, replacing any rule stored there.
    pub async fn put_spend_rule(&self, spec: &SpendRuleSpec) -> Result<SpendRuleChange, StoreError> {
        self.write_spend_rule(spec, true).await
    }

    /// Deletes a rule; [`SpendRuleChange::Unchanged`] when there was none.
    pub async fn delete_spend_rule(&self, id: &str) -> Result<SpendRuleChange, StoreError> {
        let deleted = match self.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let n = sqlx::query("DELETE FROM spend_rules WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n > 0 {
                    sqlx::query(BUMP).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                n > 0
            }
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                let n = sqlx::query("DELETE FROM spend_rules WHERE id = ?")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n > 0 {
                    sqlx::query(BUMP).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                n > 0
            }
        };
        Ok(if deleted { SpendRuleChange::Deleted } else { SpendRuleChange::Unchanged })
    }

    /// One transaction: bump the counter first (its row lock orders concurrent changes), then write the rule.
    async fn write_spend_rule(&self, spec: &SpendRuleSpec, replace: bool) -> Result<SpendRuleChange, StoreError> {
        let text = serde_json::to_string(spec).map_err(|e| StoreError::Query(sqlx::Error::Encode(Box::new(e))))?;
        let now = Timestamp::now().as_microsecond();
        let change = match self.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query(BUMP).execute(&mut *tx).await?;
                let existed = sqlx::query("SELECT 1 FROM spend_rules WHERE id = $1 FOR UPDATE")
                    .bind(&spec.id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some();
                if existed && !replace {
                    tx.rollback().await?;
                    return Ok(SpendRuleChange::Unchanged);
                }
                sqlx::query(
                    "INSERT INTO spend_rules (id, spec) VALUES ($1, CAST($2 AS jsonb))
                     ON CONFLICT (id) DO UPDATE SET spec = EXCLUDED.spec, updated_at = now()",
                )
                .bind(&spec.id)
                .bind(&text)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                existed
            }
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query(BUMP).execute(&mut *tx).await?;
                let existed = sqlx::query("SELECT 1 FROM spend_rules WHERE id = ?")
                    .bind(&spec.id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some();
                if existed && !replace {
                    tx.rollback().await?;
                    return Ok(SpendRuleChange::Unchanged);
                }
                sqlx::query(
                    "INSERT INTO spend_rules (id, spec, created_at, updated_at) VALUES (?, ?, ?, ?)
                     ON CONFLICT (id) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at",
                )
                .bind(&spec.id)
                .bind(&text)
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                existed
            }
        };
        Ok(if change { SpendRuleChange::Replaced } else { SpendRuleChange::Created })
    }
}

const BUMP: &str = "UPDATE spend_rules_version SET version = version + 1";
