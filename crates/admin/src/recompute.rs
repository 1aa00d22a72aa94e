//! `POST /admin/recompute`: reprices the request log with the current prices, rebuilds the spend rollups from it,
//! and rebuilds every spend rule's current buckets: the window of a fixed-window rule, the slots of a rolling one.

use axum::Json;
use axum::extract::State;
use jiff::tz::TimeZone;
use serde::Serialize;
use tollgate_accounting::{CostSource, PriceCatalog, Usage};
use tollgate_limits::{Metadata, RequestDims, SpendRebuild};
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
    /// Provider report pages replayed to rebuild the normalised provider rows.
    pub provider_pages: u64,
    /// Stored pages that no longer parse (their fetch was left out, its rows kept).
    pub provider_unparsed_pages: u64,
    /// Normalised provider rows rebuilt.
    pub provider_rows: u64,
}

/// Also rebuilds the normalised provider usage rows from the stored raw report pages
/// ([`tollgate_store::Store::rebuild_provider_usage`]).
///
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
        (status = 503, response = crate::error::Unavailable)))]
pub async fn recompute(State(state): State<AdminState>) -> Result<Json<RecomputeView>, AdminError> {
    let store = params::store(&state)?;
    let catalog = &state.gateway.catalog;
    let engine = &state.gateway.spend;
    let now = engine.clock().now();
    let mut sums = SpendRebuild::new(engine.rules(), now);
    let report = store.recompute(&|row| reprice(catalog, row), &mut |record| add(&mut sums, record)).await?;
    // A fixed-window bucket this replica counts that no longer has a row in the window drops to zero.
    sums.keep_live(&engine.live_buckets());
    let mut totals = Vec::new();
    let mut buckets = 0;
    for rebuilt in sums.finish() {
        buckets += rebuilt.rows.len() as u64;
        totals.extend(store.replace_spend_span(rebuilt.rule.id(), rebuilt.span, &rebuilt.rows).await?);
    }
    engine.replace_totals(totals);
    // The provider rows are rebuilt from the raw report pages, as the runs that fetched them wrote them.
    let providers = store.rebuild_provider_usage(&tollgate_ingest::parse_raw_page).await?;
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
        provider_pages: providers.pages,
        provider_unparsed_pages: providers.unparsed_pages,
        provider_rows: providers.rows,
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

/// Adds a repriced row to the rebuild, under the dimensions admission would have seen.
fn add(sums: &mut SpendRebuild, record: &LogRecord) {
    if !sums.counts(record.created_at) {
        return;
    }
    // Stored metadata passed the header's checks when logged; a row that no longer parses counts without it.
    let metadata = Metadata::parse(&serde_json::Value::Object(record.metadata.clone()).to_string(), usize::MAX)
        .unwrap_or_else(|_| Metadata::empty());
    let dims = RequestDims::new(&record.provider, &record.model)
        .with_gateway(record.gateway.as_deref())
        .with_metadata(&metadata);
    sums.add(record.created_at, &dims, record.cost_nanos);
}
