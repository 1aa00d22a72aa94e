//! `POST /admin/recompute`: reprices the request log with the current prices, rebuilds the spend rollups from it,
//! and rebuilds every spend rule's current buckets: the window of a fixed-window rule, the slots of a rolling one.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;
use tollgate_accounting::{CostSource, PriceCatalog, Usage};
use tollgate_limits::{LiveBucket, Metadata, ROLLING_SLOTS, RequestDims, SpendRule, WindowKind, bucket_key};
use tollgate_store::{LogRecord, RepriceInput};

use crate::{AdminError, AdminState, params};

/// What the rebuild did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecomputeView {
    /// Request log rows rolled up.
    pub rows: u64,
    /// Request log rows whose cost was rewritten.
    pub repriced_rows: u64,
    /// Rollup rows written (hourly, and per metadata value hourly and daily).
    pub rollup_rows: u64,
    /// Spend bucket rows written: one per bucket of a fixed-window rule's current window, one per bucket and
    /// non-empty slot of a rolling rule's current span.
    pub buckets: u64,
}

/// Reprices every retained log row that is not `custom` with the current catalog (an `estimated` row stays an
/// estimate; an `unpriced` row whose model now has a price becomes `catalog`; a row whose model has no price
/// keeps its cost), rebuilds the rollups from the repriced rows (one transaction), then rebuilds every spend rule's
/// buckets over its current span and sets this replica's engine to them:
///
/// 1. While the log is read, each repriced row is added to every rule whose current span holds it and whose
///    filters match it (the same test as admission), under its bucket key and its window start: the rule's one
///    window start when fixed, the start of the row's slot (window / 60) when rolling.
/// 2. Per rule, the rows of `spend_buckets` in its span are replaced by those sums (a fixed rule's live buckets
///    with no row in the window get a zero row), and the engine adopts them with `replace_totals`, lowered as well
///    as raised; a slot or window whose row was deleted and not rewritten is set to zero.
///
/// Limits: other replicas only raise their local totals from the database, so a lowered total reaches them at
/// their next window (fixed) or as slots expire (rolling); spend settled but not yet in the log when the log is
/// read is missing from the rebuilt buckets until it is next drained.
#[utoipa::path(post, path = "/admin/recompute",
    responses((status = 200, description = "rebuilt", body = RecomputeView),
        (status = 401, description = "no or wrong token", body = crate::openapi::ErrorBody),
        (status = 503, description = "no database", body = crate::openapi::ErrorBody)))]
pub async fn recompute(State(state): State<AdminState>) -> Result<Json<RecomputeView>, AdminError> {
    let store = params::store(&state)?;
    let catalog = &state.gateway.catalog;
    let engine = &state.gateway.spend;
    let now = engine.clock().now();
    let mut sums = SpanSums::new(engine.rules(), now);
    let report = store.recompute(&|row| reprice(catalog, row), &mut |record| sums.add(record)).await?;
    // A fixed-window bucket this replica counts that no longer has a row in the window drops to zero.
    sums.keep_live(&engine.live_buckets());
    let mut totals = Vec::new();
    let mut buckets = 0;
    for rebuilt in sums.finish() {
        buckets += rebuilt.rows.len() as u64;
        totals.extend(store.replace_spend_span(rebuilt.rule.id(), rebuilt.span, &rebuilt.rows).await?);
    }
    engine.replace_totals(totals);
    tracing::info!(
        rows = report.log_rows,
        repriced = report.repriced_rows,
        rollup_rows = report.rollup_rows,
        buckets,
        "spend recomputed"
    );
    Ok(Json(RecomputeView {
        rows: report.log_rows,
        repriced_rows: report.repriced_rows,
        rollup_rows: report.rollup_rows,
        buckets,
    }))
}

/// A row's cost at the catalog's prices for its day, and its new source.
fn reprice(catalog: &PriceCatalog, row: &RepriceInput<'_>) -> Option<(u64, CostSource)> {
    let usage = Usage {
        input: row.tokens_in.saturating_sub(row.tokens_cached).saturating_sub(row.tokens_cache_write),
        cache_read: row.tokens_cached,
        cache_write_5m: row.tokens_cache_write,
        output: row.tokens_out,
        reasoning: row.tokens_reasoning,
        ..Usage::default()
    };
    let date = row.created_at.to_zoned_datetime(TimeZone::UTC).date();
    let priced = match row.cost_source {
        "estimated" => catalog.price_estimate(row.provider, row.model, &usage, date),
        "catalog" | "unpriced" => catalog.price(row.provider, row.model, &usage, date),
        _ => return None,
    };
    // A model the catalog no longer prices keeps the cost it was logged with (zeroing it would erase real spend);
    // an `unpriced` row stays as it is until its model has a price.
    if priced.source == CostSource::Unpriced {
        return None;
    }
    Some((priced.cost_nanos, priced.source))
}

/// Per spend rule, the cost of the log rows in its current span, by bucket key and window or slot start.
struct SpanSums {
    rules: Vec<RuleSums>,
}

struct RuleSums {
    rule: SpendRule,
    /// `Window::bounds` now: the current window (fixed), or the span of the slots still counted (rolling).
    start: Timestamp,
    end: Timestamp,
    /// Rolling rules: the slot length in nanoseconds (the span is exactly [`ROLLING_SLOTS`] of them).
    slot_nanos: Option<i128>,
    sums: BTreeMap<(String, Timestamp), u64>,
}

impl RuleSums {
    /// The window or slot start that `at` counts under, if the span holds it.
    fn start_of(&self, at: Timestamp) -> Option<Timestamp> {
        if at < self.start || at >= self.end {
            return None;
        }
        let Some(slot) = self.slot_nanos else { return Some(self.start) };
        let offset = (at.as_nanosecond() - self.start.as_nanosecond()) / slot * slot;
        Timestamp::from_nanosecond(self.start.as_nanosecond() + offset).ok()
    }
}

impl SpanSums {
    fn new(rules: impl IntoIterator<Item = SpendRule>, now: Timestamp) -> Self {
        Self {
            rules: rules
                .into_iter()
                .map(|rule| {
                    let (start, end) = rule.window().bounds(now);
                    let slot_nanos = (rule.window().kind() == WindowKind::Rolling)
                        .then(|| (end.as_nanosecond() - start.as_nanosecond()) / i128::from(ROLLING_SLOTS))
                        .filter(|slot| *slot > 0);
                    RuleSums { rule, start, end, slot_nanos, sums: BTreeMap::new() }
                })
                .collect(),
        }
    }

    /// Adds a repriced row to the bucket and window or slot of every rule whose span holds it and whose filters
    /// match it.
    fn add(&mut self, record: &LogRecord) {
        if !self.rules.iter().any(|r| r.start <= record.created_at && record.created_at < r.end) {
            return;
        }
        // Stored metadata passed the header's checks when logged; a row that no longer parses counts without it.
        let metadata = Metadata::parse(&serde_json::Value::Object(record.metadata.clone()).to_string(), usize::MAX)
            .unwrap_or_else(|_| Metadata::empty());
        let dims = RequestDims::new(&record.provider, &record.model)
            .with_gateway(record.gateway.as_deref())
            .with_metadata(&metadata);
        for rule in &mut self.rules {
            let Some(start) = rule.start_of(record.created_at) else { continue };
            if !rule.rule.applies_to(&dims) {
                continue;
            }
            let sum = rule.sums.entry((bucket_key(rule.rule.dimensions(), &dims), start)).or_default();
            *sum = sum.saturating_add(record.cost_nanos);
        }
    }

    /// Gives every live engine bucket of a fixed-window rule a sum for the current window (zero when no row fell
    /// into it). Rolling buckets get none (a zero per slot would make 60 slots per bucket): a slot the database had
    /// and the rebuild does not is zeroed by `replace_spend_span` instead.
    fn keep_live(&mut self, live: &[LiveBucket]) {
        for bucket in live.iter().filter(|b| b.window_kind == WindowKind::Fixed) {
            for rule in &mut self.rules {
                if rule.slot_nanos.is_none() && *rule.rule.id() == *bucket.rule_id && rule.start == bucket.window_start
                {
                    rule.sums.entry((bucket.bucket_key.to_string(), rule.start)).or_insert(0);
                }
            }
        }
    }

    /// Per rule: its span and its rows.
    fn finish(self) -> impl Iterator<Item = RebuiltRule> {
        self.rules.into_iter().map(|r| RebuiltRule {
            rows: r.sums.into_iter().map(|((key, start), total)| (key, start, total)).collect(),
            span: (r.start, r.end),
            rule: r.rule,
        })
    }
}

/// A rule's rebuilt `spend_buckets` rows over its current span.
struct RebuiltRule {
    rule: SpendRule,
    /// `[start, end)`: the rule's current window or rolling span.
    span: (Timestamp, Timestamp),
    /// (bucket key, window or slot start, nano-dollars).
    rows: Vec<(String, Timestamp, u64)>,
}
