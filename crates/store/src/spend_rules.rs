//! The `spend_rules` aggregate: spend rules created through the admin API, and the `spend_rules_version`
//! counter that every change bumps in its own transaction, so replicas can poll one row to know when to reload.

use tollgate_limits::SpendRuleSpec;

use crate::backend::{Backend, Bind, fetch_one};
use crate::error::StoreError;
use crate::sql::ReadRow;
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

/// The primitives of the `spend_rules` aggregate that differ by backend (`postgres/spend_rules.rs`,
/// `sqlite/spend_rules.rs`).
pub(crate) trait SpendRulesBackend: Backend {
    /// `id, spec` (the spec as text) of every rule, oldest first.
    const RULE_TEXTS: &'static str;
    /// A row when rule `$1` exists, locking it against a concurrent writer where the backend locks rows.
    const RULE_EXISTS: &'static str;
    /// Stores rule `id` with the spec `text`, replacing any rule stored there (and stamping `updated_at`).
    async fn upsert_spend_rule(conn: &mut Self::Connection, id: &str, text: &str) -> Result<(), sqlx::Error>;
}

const VERSION: &str = "SELECT version FROM spend_rules_version";
const BUMP: &str = "UPDATE spend_rules_version SET version = version + 1";
const DELETE_RULE: &str = "DELETE FROM spend_rules WHERE id = $1";

impl Store {
    /// The rules' version counter: it moves whenever an API rule is created, replaced or deleted.
    pub async fn spend_rules_version(&self) -> Result<i64, StoreError> {
        match self.pool() {
            Pool::Postgres(pool) => version(pool).await,
            Pool::Sqlite(pool) => version(pool).await,
        }
    }

    /// Every API rule. A stored spec that no longer parses (written by a newer version) is logged and skipped.
    pub async fn api_spend_rules(&self) -> Result<ApiSpendRules, StoreError> {
        let version = self.spend_rules_version().await?;
        let (texts, mut unreadable) = match self.pool() {
            Pool::Postgres(pool) => rule_texts(pool).await?,
            Pool::Sqlite(pool) => rule_texts(pool).await?,
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
        match self.pool() {
            Pool::Postgres(pool) => delete_rule(pool, id).await,
            Pool::Sqlite(pool) => delete_rule(pool, id).await,
        }
    }

    async fn write_spend_rule(&self, spec: &SpendRuleSpec, replace: bool) -> Result<SpendRuleChange, StoreError> {
        let text = serde_json::to_string(spec).map_err(|e| StoreError::Query(sqlx::Error::Encode(Box::new(e))))?;
        match self.pool() {
            Pool::Postgres(pool) => write_rule(pool, &spec.id, &text, replace).await,
            Pool::Sqlite(pool) => write_rule(pool, &spec.id, &text, replace).await,
        }
    }
}

async fn version<B: Backend>(pool: &sqlx::Pool<B>) -> Result<i64, StoreError> {
    Ok(fetch_one::<B>(&mut *pool.acquire().await?, VERSION, &[]).await?.int(0_usize)?)
}

/// Every rule's id and spec text, and how many rows could not be read: a row that cannot be read (not text) is
/// reported, counted in `/status` (`unreadable_rows`) and skipped, so one bad rule never keeps the others from
/// loading.
async fn rule_texts<B: SpendRulesBackend>(pool: &sqlx::Pool<B>) -> Result<(Vec<(String, String)>, u64), StoreError> {
    let rows = B::fetch_all(&mut *pool.acquire().await?, B::RULE_TEXTS, &[]).await?;
    let mut unreadable = 0u64;
    let texts = rows
        .iter()
        .filter_map(|row| match row.text(0_usize).and_then(|id| Ok((id, row.text(1_usize)?))) {
            Ok(texts) => Some(texts),
            Err(error) => {
                unreadable += 1;
                tracing::warn!(%error, "unreadable spend rule row skipped");
                None
            }
        })
        .collect();
    Ok((texts, unreadable))
}

/// One transaction: delete the rule, and bump the counter when there was one.
async fn delete_rule<B: Backend>(pool: &sqlx::Pool<B>, id: &str) -> Result<SpendRuleChange, StoreError> {
    let mut tx = pool.begin().await?;
    let deleted = B::execute(&mut tx, DELETE_RULE, &[Bind::Text(id)]).await? > 0;
    if deleted {
        B::execute(&mut tx, BUMP, &[]).await?;
    }
    tx.commit().await?;
    Ok(if deleted { SpendRuleChange::Deleted } else { SpendRuleChange::Unchanged })
}

/// One transaction: bump the counter first (its row lock orders concurrent changes), then write the rule.
async fn write_rule<B: SpendRulesBackend>(
    pool: &sqlx::Pool<B>,
    id: &str,
    text: &str,
    replace: bool,
) -> Result<SpendRuleChange, StoreError> {
    let mut tx = pool.begin().await?;
    B::execute(&mut tx, BUMP, &[]).await?;
    let existed = B::fetch_optional(&mut tx, B::RULE_EXISTS, &[Bind::Text(id)]).await?.is_some();
    if existed && !replace {
        tx.rollback().await?;
        return Ok(SpendRuleChange::Unchanged);
    }
    B::upsert_spend_rule(&mut tx, id, text).await?;
    tx.commit().await?;
    Ok(if existed { SpendRuleChange::Replaced } else { SpendRuleChange::Created })
}
