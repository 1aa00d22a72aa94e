//! OpenAI's and Anthropic's bucketed report pages: snapped starts, exclusive ends, `limit` buckets a page, an
//! opaque cursor, and each API's parameter rules (a cost report takes `1d` buckets only).

use http::StatusCode;

use super::{Answer, CostRecord, Fixture, UsageRecord, json};

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn bad(message: &str) -> Answer {
    json(
        StatusCode::BAD_REQUEST,
        serde_json::json!({"error": {"message": message, "type": "invalid_request_error"}}).to_string(),
    )
}

/// The bucket width in seconds, and the default and maximum `limit` for it.
fn width(text: &str, cost: bool) -> Option<(i64, u64, u64)> {
    match text {
        "1d" if cost => Some((86_400, 7, 31)),
        "1d" => Some((86_400, 7, 31)),
        "1h" if !cost => Some((3_600, 24, 168)),
        "1m" if !cost => Some((60, 60, 1_440)),
        _ => None,
    }
}

/// The buckets of one page: `(start, end)` from the cursor (or the snapped start) to the end, at most `limit`.
struct Paging {
    buckets: Vec<i64>,
    width: i64,
    next: Option<String>,
}

fn paging(start: i64, end: i64, width: i64, limit: u64, cursor: Option<&str>) -> Result<Paging, Answer> {
    let first = start.div_euclid(width) * width;
    let from = match cursor {
        None => first,
        Some(text) => {
            let hex = text.strip_prefix("page_").ok_or_else(|| bad("invalid page cursor"))?;
            i64::from_str_radix(hex, 16).map_err(|_| bad("invalid page cursor"))?
        }
    };
    let mut buckets = Vec::new();
    let mut at = from;
    while at < end && (buckets.len() as u64) < limit {
        buckets.push(at);
        at += width;
    }
    let next = (at < end).then(|| format!("page_{at:x}"));
    Ok(Paging { buckets, width, next })
}

fn limit(pairs: &[(String, String)], default: u64, max: u64) -> Result<u64, Answer> {
    match param(pairs, "limit") {
        None => Ok(default),
        Some(text) => text.parse().ok().filter(|n| (1..=max).contains(n)).ok_or_else(|| bad("limit out of range")),
    }
}

/// Usage records in `[at, at + width)`, one group per model when grouped by model.
fn usage_groups(records: &[UsageRecord], at: i64, width: i64, by_model: bool) -> Vec<(Option<String>, [u64; 4])> {
    let mut groups: Vec<(Option<String>, [u64; 4])> = Vec::new();
    for r in records.iter().filter(|r| r.at >= at && r.at < at + width) {
        let key = by_model.then(|| r.model.clone());
        let i = groups.iter().position(|(k, _)| *k == key).unwrap_or_else(|| {
            groups.push((key, [0; 4]));
            groups.len() - 1
        });
        let slot = &mut groups[i].1;
        slot[0] += r.input;
        slot[1] += r.output;
        slot[2] += r.cached;
        slot[3] += r.cache_write;
    }
    groups
}

fn cost_in(records: &[CostRecord], at: i64, width: i64) -> Option<i64> {
    let mut any = false;
    let mut sum = 0i64;
    for r in records.iter().filter(|r| r.at >= at && r.at < at + width) {
        any = true;
        sum += r.nanos;
    }
    any.then_some(sum)
}

/// `nanos × 10^-scale` as exact decimal text (`4350000000`, 9 → `4.35`).
pub(crate) fn decimal(nanos: i64, scale: u32) -> String {
    let unit = 10i64.pow(scale);
    let sign = if nanos < 0 { "-" } else { "" };
    let (whole, fraction) = (nanos.unsigned_abs() / unit as u64, nanos.unsigned_abs() % unit as u64);
    if fraction == 0 {
        return format!("{sign}{whole}");
    }
    let fraction = format!("{fraction:0width$}", width = scale as usize);
    format!("{sign}{whole}.{}", fraction.trim_end_matches('0'))
}

pub(super) fn openai(path: &str, pairs: &[(String, String)], fixture: &Fixture) -> Answer {
    let cost = path == "/organization/costs";
    let Some(start) = param(pairs, "start_time").and_then(|s| s.parse::<i64>().ok()) else {
        return bad("start_time is required");
    };
    let Some((width, default, max)) = width(param(pairs, "bucket_width").unwrap_or("1d"), cost) else {
        return bad("invalid bucket_width");
    };
    let max = if cost { 180 } else { max };
    let limit = match limit(pairs, default, max) {
        Ok(limit) => limit,
        Err(answer) => return answer,
    };
    let end = param(pairs, "end_time").and_then(|s| s.parse::<i64>().ok()).unwrap_or(start + limit as i64 * width);
    let limit = fixture.max_buckets_per_page.map_or(limit, |max| limit.min(max));
    let paging = match paging(start, end, width, limit, param(pairs, "page")) {
        Ok(paging) => paging,
        Err(answer) => return answer,
    };
    let by_model = pairs.iter().any(|(k, v)| k == "group_by" && v == "model");
    let data: Vec<serde_json::Value> = paging
        .buckets
        .iter()
        .map(|&at| {
            let results: Vec<serde_json::Value> = if cost {
                cost_in(&fixture.openai_costs, at, paging.width)
                    .map(|nanos| {
                        // The amount as a JSON number written with exactly the fixture's digits.
                        let value: serde_json::Value = serde_json::from_str(&decimal(nanos, 9)).unwrap();
                        serde_json::json!({"object": "organization.costs.result", "amount": {"value": value, "currency": "usd"},
                            "line_item": null, "project_id": null, "api_key_id": null, "quantity": null})
                    })
                    .into_iter()
                    .collect()
            } else {
                usage_groups(&fixture.openai_usage, at, paging.width, by_model)
                    .into_iter()
                    .map(|(model, [input, output, cached, _])| {
                        serde_json::json!({"object": "organization.usage.completions.result", "input_tokens": input,
                            "output_tokens": output, "input_cached_tokens": cached, "num_model_requests": 1,
                            "model": model, "project_id": null, "user_id": null, "api_key_id": null, "batch": null})
                    })
                    .collect()
            };
            serde_json::json!({"object": "bucket", "start_time": at, "end_time": at + paging.width, "results": results})
        })
        .collect();
    let body = serde_json::json!({"object": "page", "data": data, "has_more": paging.next.is_some(), "next_page": paging.next});
    // serde_json without arbitrary precision would print the amounts through f64: write the text as built.
    json(StatusCode::OK, body.to_string())
}

fn rfc3339(at: i64) -> String {
    jiff::Timestamp::from_second(at).unwrap().to_string()
}

pub(super) fn anthropic(path: &str, pairs: &[(String, String)], fixture: &Fixture) -> Answer {
    let cost = path == "/organizations/cost_report";
    let Some(start) = param(pairs, "starting_at").and_then(|s| s.parse::<jiff::Timestamp>().ok()) else {
        return bad("starting_at is required (RFC 3339)");
    };
    let Some((width, default, max)) = width(param(pairs, "bucket_width").unwrap_or("1d"), cost) else {
        return bad("invalid bucket_width");
    };
    let limit = match limit(pairs, default, max) {
        Ok(limit) => limit,
        Err(answer) => return answer,
    };
    let start = start.as_second();
    let end = match param(pairs, "ending_at") {
        Some(text) => match text.parse::<jiff::Timestamp>() {
            Ok(at) => at.as_second(),
            Err(_) => return bad("ending_at is not RFC 3339"),
        },
        None => start + limit as i64 * width,
    };
    let limit = fixture.max_buckets_per_page.map_or(limit, |max| limit.min(max));
    let paging = match paging(start, end, width, limit, param(pairs, "page")) {
        Ok(paging) => paging,
        Err(answer) => return answer,
    };
    let by_model = pairs.iter().any(|(k, v)| k == "group_by[]" && v == "model");
    let data: Vec<serde_json::Value> = paging
        .buckets
        .iter()
        .map(|&at| {
            let results: Vec<serde_json::Value> = if cost {
                cost_in(&fixture.anthropic_costs, at, paging.width)
                    .map(|nanos| serde_json::json!({"currency": "USD", "amount": decimal(nanos, 7), "workspace_id": null, "description": null}))
                    .into_iter()
                    .collect()
            } else {
                usage_groups(&fixture.anthropic_usage, at, paging.width, by_model)
                    .into_iter()
                    .map(|(model, [input, output, cached, write])| {
                        serde_json::json!({"uncached_input_tokens": input, "cache_read_input_tokens": cached,
                            "cache_creation": {"ephemeral_5m_input_tokens": write, "ephemeral_1h_input_tokens": 0},
                            "output_tokens": output, "server_tool_use": {"web_search_requests": 0},
                            "model": model, "api_key_id": null, "workspace_id": null, "service_tier": null})
                    })
                    .collect()
            };
            serde_json::json!({"starting_at": rfc3339(at), "ending_at": rfc3339(at + paging.width), "results": results})
        })
        .collect();
    let body = serde_json::json!({"data": data, "has_more": paging.next.is_some(), "next_page": paging.next});
    json(StatusCode::OK, body.to_string())
}
