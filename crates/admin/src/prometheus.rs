//! `GET /metrics` in the Prometheus text format (0.0.4). Names carry the `tollgate_` prefix and their unit;
//! labels only take bounded values (configured providers, status classes, fixed kinds, rule ids).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use tollgate_limits::nanos_to_usd;
use tollgate_proxy::metrics::{COST_SOURCES, Histogram, Metrics, SECONDS_BUCKETS, STATUS_CLASSES, TOKEN_KINDS};

use crate::AdminState;

#[utoipa::path(get, path = "/metrics", security((), ("bearer" = [])), responses((status = 200, description = "Prometheus text format", body = String)))]
pub async fn metrics(State(state): State<AdminState>) -> Response {
    let text = render(&state);
    ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    header(out, name, "histogram", help);
    let (cumulative, count, sum) = h.snapshot();
    for (bound, value) in SECONDS_BUCKETS.iter().zip(cumulative) {
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {value}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum {sum}");
    let _ = writeln!(out, "{name}_count {count}");
}

/// Every family, in the order scrapers have always seen them.
fn render(state: &AdminState) -> String {
    let mut out = String::with_capacity(8 * 1024);
    render_requests(&mut out, &state.metrics);
    render_latencies(&mut out, &state.metrics);
    render_limits(&mut out, state);
    render_process(&mut out, state);
    render_ingest(&mut out, state);
    render_cache(&mut out, state);
    render_shared_rates(&mut out, state);
    out
}

/// The provider ingest: runs by result, and the drift of each provider's last complete day.
fn render_ingest(out: &mut String, state: &AdminState) {
    let Some(ingest) = &state.ingest else { return };
    if ingest.providers().is_empty() {
        return;
    }
    header(out, "tollgate_ingest_runs_total", "counter", "Provider usage ingest runs, by provider and result.");
    for (provider, result, count) in ingest.runs_total() {
        let _ = writeln!(out, "tollgate_ingest_runs_total{{provider=\"{provider}\",result=\"{result}\"}} {count}");
    }
    header(
        out,
        "tollgate_reconciliation_drift_ratio",
        "gauge",
        "|gateway - provider| / provider cost of the last complete day, by provider.",
    );
    for (provider, ratio) in ingest.drift_ratios() {
        let _ = writeln!(out, "tollgate_reconciliation_drift_ratio{{provider=\"{provider}\"}} {ratio}");
    }
}

/// Shared rate limits (docs/cache.md); absent when no rate limit is shared.
fn render_shared_rates(out: &mut String, state: &AdminState) {
    let Some(shared) = state.gateway.shared_rates.as_deref() else { return };
    let stats = shared.stats();
    header(
        out,
        "tollgate_rate_limit_shared_checks_total",
        "counter",
        "Shared rate-limit checks: answered by Redis, or by this replica's share while Redis was away.",
    );
    for (result, cell) in [("redis", &stats.checked), ("fallback", &stats.fallbacks)] {
        let _ = writeln!(
            out,
            "tollgate_rate_limit_shared_checks_total{{result=\"{result}\"}} {}",
            cell.load(Ordering::Relaxed)
        );
    }
    header(out, "tollgate_rate_limit_replicas", "gauge", "Replicas sharing the rate limits, as last read from Redis.");
    let _ = writeln!(out, "tollgate_rate_limit_replicas {}", state.gateway.rates.replicas());
}

/// The response cache (docs/cache.md); absent when the gateway has none.
fn render_cache(out: &mut String, state: &AdminState) {
    let Some(cache) = state.gateway.cache.as_deref() else { return };
    let stats = cache.stats();
    header(out, "tollgate_cache_requests_total", "counter", "Eligible requests by what the cache did with them.");
    for (result, cell) in
        [("hit", &stats.hits), ("miss", &stats.misses), ("skip", &stats.skips), ("bypass", &stats.bypasses)]
    {
        let _ = writeln!(out, "tollgate_cache_requests_total{{result=\"{result}\"}} {}", cell.load(Ordering::Relaxed));
    }
    header(out, "tollgate_cache_saved_usd_total", "counter", "What cached answers would have cost, in USD.");
    let saved = tollgate_limits::nanos_to_usd(stats.saved_nanos.load(Ordering::Relaxed));
    let _ = writeln!(out, "tollgate_cache_saved_usd_total {saved}");
    header(out, "tollgate_cache_bytes", "gauge", "Bytes the memory backend holds (0 with Redis).");
    let _ = writeln!(out, "tollgate_cache_bytes {}", cache.bytes());
    header(out, "tollgate_cache_coalesced_total", "counter", "Requests answered from an identical one in flight.");
    let _ = writeln!(out, "tollgate_cache_coalesced_total {}", stats.coalesced.load(Ordering::Relaxed));
}

/// The per-provider counters: requests, tokens, cost and cost sources.
fn render_requests(out: &mut String, m: &Metrics) {
    header(out, "tollgate_requests_total", "counter", "Requests finished, by provider and status class.");
    for (provider, p) in m.providers() {
        for (class, cell) in STATUS_CLASSES.iter().zip(&p.requests) {
            let _ = writeln!(
                out,
                "tollgate_requests_total{{provider=\"{}\",status=\"{class}\"}} {}",
                label(provider),
                cell.load(Ordering::Relaxed)
            );
        }
    }
    header(out, "tollgate_tokens_total", "counter", "Tokens used, by provider and kind.");
    for (provider, p) in m.providers() {
        for (kind, cell) in TOKEN_KINDS.iter().zip(&p.tokens) {
            let _ = writeln!(
                out,
                "tollgate_tokens_total{{provider=\"{}\",kind=\"{kind}\"}} {}",
                label(provider),
                cell.load(Ordering::Relaxed)
            );
        }
    }
    header(out, "tollgate_cost_usd_total", "counter", "Cost of the requests, in US dollars, by provider.");
    for (provider, p) in m.providers() {
        let _ = writeln!(
            out,
            "tollgate_cost_usd_total{{provider=\"{}\"}} {}",
            label(provider),
            nanos_to_usd(p.cost_nanos.load(Ordering::Relaxed))
        );
    }
    header(out, "tollgate_priced_requests_total", "counter", "Requests by where their cost came from.");
    for (provider, p) in m.providers() {
        for (source, cell) in COST_SOURCES.iter().zip(&p.by_cost_source) {
            let _ = writeln!(
                out,
                "tollgate_priced_requests_total{{provider=\"{}\",source=\"{}\"}} {}",
                label(provider),
                source.as_str(),
                cell.load(Ordering::Relaxed)
            );
        }
    }
}

fn render_latencies(out: &mut String, m: &Metrics) {
    histogram(out, "tollgate_request_duration_seconds", "Time from arrival to the end of the response.", &m.duration);
    histogram(out, "tollgate_upstream_ttfb_seconds", "Time from arrival to the upstream response head.", &m.ttfb);
    histogram(out, "tollgate_gateway_overhead_seconds", "Time the gateway spent before sending upstream.", &m.overhead);
}

/// Spend and rate limit decisions, and what is left of each spend rule.
fn render_limits(out: &mut String, state: &AdminState) {
    let m = &state.metrics;
    header(out, "tollgate_spend_limit_decisions_total", "counter", "Spend-limit rule decisions.");
    for (decision, cell) in
        [("allowed", &m.spend_allowed), ("would_block", &m.spend_would_block), ("blocked", &m.spend_blocked)]
    {
        let _ = writeln!(
            out,
            "tollgate_spend_limit_decisions_total{{decision=\"{decision}\"}} {}",
            cell.load(Ordering::Relaxed)
        );
    }
    header(out, "tollgate_rate_limited_total", "counter", "Requests refused by a rate limit.");
    let _ = writeln!(out, "tollgate_rate_limited_total {}", m.rate_limited.load(Ordering::Relaxed));

    header(
        out,
        "tollgate_spend_limit_remaining_usd",
        "gauge",
        "Budget left in the rule's most-spent bucket of the current window, in US dollars.",
    );
    for rule in state.gateway.spend.rules() {
        let remaining = state.gateway.spend.usage(rule.id()).and_then(|buckets| {
            buckets.iter().map(|b| b.budget_nanos.saturating_sub(b.spent_nanos + b.reserved_nanos)).min()
        });
        let remaining = remaining.unwrap_or(rule.budget_nanos());
        let _ = writeln!(
            out,
            "tollgate_spend_limit_remaining_usd{{rule=\"{}\"}} {}",
            label(rule.id()),
            nanos_to_usd(remaining)
        );
    }
}

/// Pricing gaps, disconnects, the database, the process.
fn render_process(out: &mut String, state: &AdminState) {
    let m = &state.metrics;
    header(out, "tollgate_unpriced_requests_total", "counter", "Responses of models with no price.");
    let _ =
        writeln!(out, "tollgate_unpriced_requests_total {}", state.gateway.counters.unpriced.load(Ordering::Relaxed));
    header(out, "tollgate_client_disconnects_total", "counter", "Responses the client left before their end.");
    let _ = writeln!(out, "tollgate_client_disconnects_total {}", m.client_disconnects.load(Ordering::Relaxed));

    if let Some(store) = &state.store {
        let db = store.status();
        header(out, "tollgate_database_up", "gauge", "1 when the last database write succeeded.");
        let _ = writeln!(out, "tollgate_database_up {}", u8::from(db.ok));
        header(out, "tollgate_database_pending_records", "gauge", "Records waiting to be written (queue and spill).");
        let _ = writeln!(out, "tollgate_database_pending_records {}", db.pending_records);
        header(
            out,
            "tollgate_database_quarantined_records",
            "gauge",
            "Records the database refused for their values, set aside so the rest were written.",
        );
        let _ = writeln!(out, "tollgate_database_quarantined_records {}", db.quarantined_records);
    }
    if let Some(rss) = resident_memory_bytes() {
        header(out, "tollgate_process_resident_memory_bytes", "gauge", "Resident memory of the process.");
        let _ = writeln!(out, "tollgate_process_resident_memory_bytes {rss}");
    }
    header(out, "tollgate_uptime_seconds", "gauge", "Seconds since the gateway started.");
    let _ = writeln!(out, "tollgate_uptime_seconds {}", state.started.elapsed().as_secs());
}

/// Resident set size from `/proc/self/statm` (Linux; pages of 4 KiB).
fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
