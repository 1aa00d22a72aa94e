//! Wiring between the request path and the store: records become log rows, spend flows to the database.

use tollgate_config::Config;
use tollgate_proxy::{RecordSink, UsageRecord};
use tollgate_store::{Enqueued, LogRecord, LogWriter, StoreOptions};

/// Store options from the configuration: the spill file, and the metadata keys the file spend rules use, which
/// `Store::migrate` adds to the rollups before the gateway serves (the keys of API rules follow through
/// the `rollup_key_sync` task). Only rule keys are rolled up, so a high-cardinality key never makes the
/// rollup as large as the log.
pub fn store_options(config: &Config) -> StoreOptions {
    StoreOptions {
        spill_path: config.database.spill_path.clone(),
        spill_max_bytes: config.database.spill_max_bytes,
        rollup_metadata_keys: tollgate_limits::rule_metadata_keys(&config.spend_rules),
        ..StoreOptions::default()
    }
}

/// Queues each record's log row (never waits: a full queue spills to disk). `cf-aig-collect-log: false` writes a
/// spend-only row (`listed: false`, no bodies, no event id): `/api/logs` never shows it, but its spend counts in
/// the rollups, `/spend`, `/api/stats` and a recompute, which would otherwise take it out of the budgets.
/// A request refused before authentication writes nothing at all (the metrics still count it): whoever can
/// reach the port must not be able to grow the database.
pub struct StoreSink {
    pub writer: LogWriter,
}

impl RecordSink for StoreSink {
    fn record(&self, record: UsageRecord) {
        if !record.authenticated {
            return;
        }
        if let Enqueued::Dropped = self.writer.try_send(log_row(record)) {
            tracing::error!("a request log row could not be queued nor spilled");
        }
    }
}

fn log_row(r: UsageRecord) -> LogRecord {
    let listed = r.collect_log;
    LogRecord {
        tokens_in: r.tokens_in(),
        tokens_out: r.usage.output,
        tokens_cached: r.usage.cache_read,
        tokens_cache_write: r.usage.cache_write_5m.saturating_add(r.usage.cache_write_1h),
        tokens_reasoning: r.usage.reasoning,
        id: r.log_id,
        created_at: r.created_at,
        gateway: Some(r.gateway),
        provider: r.provider,
        model: r.model.unwrap_or_default(),
        path: r.path,
        status: r.status,
        success: r.success,
        cached: r.cached,
        stream: r.stream,
        cost_nanos: r.cost_nanos,
        cost_source: r.cost_source,
        duration_ms: r.duration.as_millis() as u64,
        ttfb_ms: r.ttfb.map(|t| t.as_millis() as u64),
        metadata: r.metadata,
        event_id: r.event_id.filter(|_| listed),
        step: r.step.unwrap_or(0) as u32,
        rule_decisions: r.rule_decisions,
        error: r.error,
        request_body: r.request_body.filter(|_| listed).map(|b| String::from_utf8_lossy(&b).into_owned()),
        response_body: r.response_body.filter(|_| listed).map(|b| String::from_utf8_lossy(&b).into_owned()),
        listed,
        cache_key: r.cache_key.map(|key| key.to_string()),
        saved_nanos: r.saved_nanos,
    }
}
