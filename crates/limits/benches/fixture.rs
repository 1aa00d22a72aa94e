//! The engine the bench and the profiling example measure: 20 rules that all apply to a request from `openai`
//! (10 split per user, 5 per team with a provider filter, 5 per model and user; windows 1d/1h/1mo/15m in
//! Europe/Berlin, 3 of them rolling).

use std::sync::Arc;

use tollgate_limits::{SpendEngine, SpendRuleSpec, SystemClock};

#[expect(clippy::unwrap_used, reason = "fixed, valid setup: a failure should abort loudly")]
pub fn engine() -> SpendEngine {
    let mut specs = Vec::new();
    for i in 0..20 {
        let dimensions = match i % 4 {
            0 | 1 => serde_json::json!([{ "key": "metadata.user_id", "mode": "split" }]),
            2 => serde_json::json!([
                { "key": "metadata.team", "mode": "split" },
                { "key": "provider", "mode": "filter", "values": ["openai", "anthropic"] }
            ]),
            _ => serde_json::json!([
                { "key": "model", "mode": "split" },
                { "key": "metadata.user_id", "mode": "split" }
            ]),
        };
        let window = ["1d", "1h", "1mo", "15m"][i % 4];
        let kind = if i % 4 == 1 && i < 12 { "rolling" } else { "fixed" };
        let spec: SpendRuleSpec = serde_json::from_value(serde_json::json!({
            "id": format!("rule-{i}"), "budget_usd": 1e9, "window": window, "window_kind": kind,
            "timezone": "Europe/Berlin", "dimensions": dimensions
        }))
        .unwrap();
        specs.push(spec.validate().unwrap());
    }
    SpendEngine::new(specs, Arc::new(SystemClock))
}
