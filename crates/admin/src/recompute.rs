//! `POST /admin/recompute`: reprices the request log with the current prices, rebuilds the spend rollups from it,
//! and rebuilds the current fixed-window spend buckets.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;
use tollgate_accounting::{CostSource, PriceCatalog, Usage};
use tollgate_limits::{BucketTotal, LiveBucket, Metadata, RequestDims, SpendRule, WindowKind, bucket_key};
use tollgate_store::{LogRecord, RepriceInput};

use crate::{AdminError, AdminState, params};

/// What the rebuild did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecomputeView {
    /// Request log rows rolled up.
    pub rows: u64,
    /// Request log rows whose cost was rewritten.
    pub repriced_rows: u64,
    /// Rollup rows written (hourly and metadata).
    pub rollup_rows: u64,
    /// Spend buckets rewritten (current windows of fixed-window rules).
    pub buckets: u64,
}

/// Reprices every retained log row that is not `custom` with the current catalog (an `estimated` row stays an
/// estimate; an `unpriced` row whose model now has a price becomes `catalog`; a row whose model has no price
/// keeps its cost), rebuilds `spend_rollup_hourly` and
/// `spend_rollup_metadata_hourly` from the repriced rows (one transaction), then replaces each fixed-window spend
/// rule's buckets for its current window with the sums of the repriced rows in that window, and sets this
/// replica's engine to them.
///
/// Limits: rolling-window rules keep their buckets (their 60 slots are not rebuilt); other replicas only raise
/// their local totals from the database, so a lowered total reaches them at their next window; spend settled but
/// not yet in the log when the log is read is missing from the rebuilt buckets until it is next drained.
#[utoipa::path(post, path = "/admin/recompute",
    responses((status = 200, description = "rebuilt", body = RecomputeView),
        (status = 401, description = "no or wrong token", body = crate::openapi::ErrorBody),
        (status = 503, description = "no database", body = crate::openapi::ErrorBody)))]
pub async fn recompute(State(state): State<AdminState>) -> Result<Json<RecomputeView>, AdminError> {
    let store = params::store(&state)?;
    let catalog = &state.gateway.catalog;
    let engine = &state.gateway.spend;
    let now = engine.clock().now();
    let mut sums = WindowSums::new(engine.rules().into_iter().filter(|r| r.window().kind() == WindowKind::Fixed), now);
    let report = store.recompute(&|row| reprice(catalog, row), &mut |record| sums.add(record)).await?;
    // A bucket this replica counts that no longer has a row in the window drops to zero.
    sums.keep_live(&engine.live_buckets());
    let mut totals = Vec::new();
    for (rule, start, buckets) in sums.finish() {
        let rows: Vec<(String, u64)> = buckets.into_iter().collect();
        store.replace_spend_window(rule.id(), start, &rows).await?;
        totals.extend(rows.into_iter().map(|(bucket_key, total_nanos)| BucketTotal {
            rule_id: rule.id().to_owned(),
            bucket_key,
            window_start: start,
            total_nanos,
        }));
    }
    let buckets = totals.len() as u64;
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
fn reprice(catalog: &PriceCatalog, row: &RepriceInput<'_>) -> Option<(u64, &'static str)> {
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
    Some((priced.cost_nanos, priced.source.as_str()))
}

/// Per fixed-window rule, the cost of the log rows in its current window, by bucket key.
struct WindowSums {
    rules: Vec<(SpendRule, Timestamp, Timestamp, BTreeMap<String, u64>)>,
}

impl WindowSums {
    fn new(rules: impl Iterator<Item = SpendRule>, now: Timestamp) -> Self {
        Self {
            rules: rules
                .map(|rule| {
                    let (start, end) = rule.window().bounds(now);
                    (rule, start, end, BTreeMap::new())
                })
                .collect(),
        }
    }

    /// Adds a repriced row to the bucket of every rule whose window holds it and whose filters match it.
    fn add(&mut self, record: &LogRecord) {
        let in_some_window =
            self.rules.iter().any(|(_, start, end, _)| *start <= record.created_at && record.created_at < *end);
        if !in_some_window {
            return;
        }
        // Stored metadata passed the header's checks when logged; a row that no longer parses counts without it.
        let metadata = Metadata::parse(&serde_json::Value::Object(record.metadata.clone()).to_string(), usize::MAX)
            .unwrap_or_else(|_| Metadata::empty());
        let dims = RequestDims::new(&record.provider, &record.model)
            .with_gateway(record.gateway.as_deref())
            .with_metadata(&metadata);
        for (rule, start, end, buckets) in &mut self.rules {
            if record.created_at < *start || record.created_at >= *end || !rule.applies_to(&dims) {
                continue;
            }
            let sum = buckets.entry(bucket_key(rule.dimensions(), &dims)).or_default();
            *sum = sum.saturating_add(record.cost_nanos);
        }
    }

    /// Gives every live engine bucket of a rebuilt rule a sum (zero when no row fell into it).
    fn keep_live(&mut self, live: &[LiveBucket]) {
        for bucket in live {
            for (rule, start, _, buckets) in &mut self.rules {
                if *rule.id() == *bucket.rule_id && *start == bucket.window_start {
                    buckets.entry(bucket.bucket_key.to_string()).or_insert(0);
                }
            }
        }
    }

    fn finish(self) -> impl Iterator<Item = (SpendRule, Timestamp, BTreeMap<String, u64>)> {
        self.rules.into_iter().map(|(rule, start, _, buckets)| (rule, start, buckets))
    }
}
