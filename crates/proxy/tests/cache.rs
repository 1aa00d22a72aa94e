//! The response cache on a real socket: hits reach no upstream, tenants never share, streams replay frame by
//! frame, failures are never stored, identical requests in flight coalesce, and hits cost nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod harness;

use std::time::Duration;

use bytes::Bytes;
use harness::{Harness, chat_body};
use http::{Method, StatusCode};
use serde_json::json;
use tollgate_accounting::CostSource;
use tollgate_testkit::{Gate, Plan, next_data};

const ON: &str = "[cache]\nenabled = true\n";

/// Every frame of a response body, in order.
async fn frames(h: &Harness, path: &str, headers: &[(&str, &str)], body: &serde_json::Value) -> (String, Vec<Bytes>) {
    let mut headers = headers.to_vec();
    headers.push(("content-type", "application/json"));
    let mut response = h.client.send(Method::POST, path, &headers, body.to_string()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let status = response.headers().get("cf-aig-cache-status").map(|v| v.to_str().unwrap().to_string());
    let mut out = Vec::new();
    while let Some(frame) = next_data(response.body_mut()).await {
        out.push(frame.unwrap());
    }
    (status.unwrap_or_default(), out)
}

fn joined(frames: &[Bytes]) -> Vec<u8> {
    frames.iter().flat_map(|f| f.iter().copied()).collect()
}

#[tokio::test]
async fn the_second_identical_request_is_a_hit_that_reaches_no_upstream_and_costs_nothing() {
    let h = Harness::with_config(ON).await;
    let body = chat_body("gpt-4o-mini", false);
    let first = h.client.post_json("/v1/chat/completions", &[], &body).await;
    assert_eq!(first.header("cf-aig-cache-status"), Some("MISS"));
    let records = h.recorder.wait_for(1).await;
    let key = records[0].cache_key.expect("a cache key on the miss's record");
    let second = h.client.post_json("/v1/chat/completions", &[], &body).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.header("cf-aig-cache-status"), Some("HIT"));
    assert_eq!(second.body, first.body);
    assert_eq!(second.header("content-type"), first.header("content-type"));
    assert_eq!(h.fake.requests().len(), 1, "the hit reached no upstream");
    let records = h.recorder.wait_for(2).await;
    let (miss, hit) = (&records[0], &records[1]);
    assert!(!miss.cached && hit.cached);
    assert_eq!(hit.cost_nanos, 0);
    assert_eq!(hit.cost_source, CostSource::Cache);
    assert_eq!(hit.cache_key, Some(key));
    assert_eq!(hit.usage, miss.usage, "the stored usage is logged");
    assert!(miss.cost_nanos > 0);
    assert_eq!(hit.saved_nanos, miss.cost_nanos, "the saving is what the miss cost");
}

#[tokio::test]
async fn tenants_never_share_entries() {
    let h = Harness::with_config(ON).await;
    let body = chat_body("gpt-4o-mini", false);
    // Two bring-your-own keys, the stored key, and two gateways: five tenants, five upstream calls.
    for (path, headers) in [
        ("/v1/chat/completions", vec![("authorization", "Bearer sk-tenant-a")]),
        ("/v1/chat/completions", vec![("authorization", "Bearer sk-tenant-b")]),
        ("/v1/chat/completions", vec![]),
        ("/v1/acct/gw-a/openai/chat/completions", vec![]),
        ("/v1/acct/gw-b/openai/chat/completions", vec![]),
    ] {
        let response = h.client.post_json(path, &headers, &body).await;
        assert_eq!(response.header("cf-aig-cache-status"), Some("MISS"), "{path} {headers:?}");
    }
    assert_eq!(h.fake.requests().len(), 5);
    let again = h.client.post_json("/v1/chat/completions", &[("authorization", "Bearer sk-tenant-a")], &body).await;
    assert_eq!(again.header("cf-aig-cache-status"), Some("HIT"), "the same tenant hits");
    assert_eq!(h.fake.requests().len(), 5);
}

#[tokio::test]
async fn every_eligible_path_shape_and_format_hits() {
    let h = Harness::with_config(ON).await;
    let cases = [
        ("/v1/chat/completions", chat_body("gpt-4o-mini", false)),
        ("/v1/chat/completions", chat_body("gpt-4o-mini", true)),
        ("/openai/chat/completions", chat_body("gpt-4o-mini", false)),
        ("/compat/chat/completions", chat_body("groq/llama-3.3-70b-versatile", true)),
        ("/v1/acct/gw/openai/chat/completions", chat_body("gpt-4o-mini", true)),
        ("/v1/completions", json!({"model": "gpt-3.5-turbo-instruct", "prompt": "a"})),
        ("/v1/responses", json!({"model": "o4-mini", "input": "2+2"})),
        ("/v1/responses", json!({"model": "o4-mini", "input": "2+2", "stream": true})),
        ("/v1/embeddings", json!({"model": "text-embedding-3-small", "input": "hello"})),
        ("/v1/messages", json!({"model": "claude-haiku-4-5", "max_tokens": 9, "messages": []})),
        ("/v1/messages", json!({"model": "claude-haiku-4-5", "max_tokens": 9, "stream": true, "messages": []})),
        ("/google-ai-studio/v1beta/models/gemini-2.5-flash:generateContent", json!({"contents": []})),
        (
            "/google-ai-studio/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            json!({"contents": [{"parts": [{"text": "hi"}]}]}),
        ),
    ];
    for (i, (path, body)) in cases.iter().enumerate() {
        // Two client paths to the same upstream request are one entry: make every case its own request.
        let mut body = body.clone();
        body["user"] = json!(format!("case-{i}"));
        let body = &body;
        let miss = h.client.post_json(path, &[], body).await;
        assert_eq!(miss.status, StatusCode::OK, "{path}");
        assert_eq!(miss.header("cf-aig-cache-status"), Some("MISS"), "{path} {body}");
        let hit = h.client.post_json(path, &[], body).await;
        assert_eq!(hit.header("cf-aig-cache-status"), Some("HIT"), "{path} {body}");
        assert_eq!(hit.body, miss.body, "{path} {body}");
        assert_eq!(h.fake.requests().len(), i + 1, "{path}: the hit reached no upstream");
    }
}

#[tokio::test]
async fn a_streamed_hit_is_the_same_events_in_the_same_frames() {
    let h = Harness::with_config(ON).await;
    h.fake.push(Plan { chunk_size: Some(48), chunk_delay: Duration::from_millis(3), ..Plan::default() });
    let mut body = chat_body("gpt-4o-mini", true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, miss) = frames(&h, "/v1/chat/completions", &[], &body).await;
    assert_eq!(status, "MISS");
    let (status, hit) = frames(&h, "/v1/chat/completions", &[], &body).await;
    assert_eq!(status, "HIT");
    assert!(miss.len() > 3, "the fake sent several frames");
    assert_eq!(hit, miss, "same bytes, split into the same frames");
    assert!(String::from_utf8_lossy(&joined(&hit)).contains("\"prompt_tokens\""));
    // A client that did not ask for usage gets the same stream without the usage chunk.
    let (status, plain) = frames(&h, "/v1/chat/completions", &[], &chat_body("gpt-4o-mini", true)).await;
    assert_eq!(status, "HIT");
    let text = String::from_utf8_lossy(&joined(&plain)).into_owned();
    assert!(!text.contains("\"prompt_tokens\""), "no usage chunk: {text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert_eq!(h.fake.requests().len(), 1);
}

#[tokio::test]
async fn errors_cut_streams_and_disconnected_clients_are_never_stored() {
    let h = Harness::with_config(ON).await;
    let body = chat_body("gpt-4o-mini", true);
    h.fake.push(Plan { fail: Some((StatusCode::INTERNAL_SERVER_ERROR, "{\"error\":{}}".into())), ..Plan::default() });
    let failed = h.client.post_json("/v1/chat/completions", &[], &body).await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    h.fake.push(Plan { cut_after: Some(40), ..Plan::default() });
    let _ = h.client.try_post_json("/v1/chat/completions", &body).await;
    // A client that leaves after the first chunk.
    let gate = Gate::new();
    h.fake.push(Plan { gate: Some(gate.clone()), ..Plan::default() });
    let mut response = h.client.send(Method::POST, "/v1/chat/completions", &[], body.to_string()).await;
    next_data(response.body_mut()).await.unwrap().unwrap();
    drop(response);
    gate.open();
    h.recorder.wait_for(3).await;
    let ok = h.client.post_json("/v1/chat/completions", &[], &body).await;
    assert_eq!(ok.header("cf-aig-cache-status"), Some("MISS"), "nothing was stored before");
    assert_eq!(h.fake.requests().len(), 4);
    let hit = h.client.post_json("/v1/chat/completions", &[], &body).await;
    assert_eq!(hit.header("cf-aig-cache-status"), Some("HIT"));
}

#[tokio::test]
async fn twenty_identical_slow_streams_make_one_upstream_call_and_followers_get_bytes_live() {
    let h = Harness::with_config(ON).await;
    let gate = Gate::new();
    h.fake.set_default(Plan { gate: Some(gate.clone()), ..Plan::default() });
    let body = chat_body("gpt-4o-mini", true).to_string();
    let mut responses = Vec::new();
    for _ in 0..20 {
        let mut response = h.client.send(Method::POST, "/v1/chat/completions", &[], body.clone()).await;
        assert_eq!(response.status(), StatusCode::OK);
        // The upstream holds everything after its first piece until the gate opens: a first frame here was
        // delivered live, before the leader's stream ended.
        let first = tokio::time::timeout(Duration::from_secs(10), next_data(response.body_mut()))
            .await
            .expect("a follower gets the first bytes while the leader's stream is still open")
            .unwrap()
            .unwrap();
        responses.push((response, first));
    }
    gate.open();
    let mut bodies = Vec::new();
    for (mut response, first) in responses {
        let mut all = first.to_vec();
        while let Some(frame) = next_data(response.body_mut()).await {
            all.extend_from_slice(&frame.unwrap());
        }
        bodies.push(all);
    }
    assert_eq!(h.fake.requests().len(), 1, "one upstream call for twenty requests");
    assert!(String::from_utf8_lossy(&bodies[0]).ends_with("data: [DONE]\n\n"));
    for other in &bodies[1..] {
        assert_eq!(other, &bodies[0], "every client gets every byte");
    }
    let records = h.recorder.wait_for(20).await;
    assert_eq!(records.iter().filter(|r| r.cached).count(), 19);
    assert!(records.iter().filter(|r| r.cached).all(|r| r.cost_nanos == 0 && r.saved_nanos > 0 && r.success));
}

#[tokio::test]
async fn followers_of_a_failed_leader_go_upstream_themselves() {
    let h = Harness::with_config(ON).await;
    // The leader's answer is held before its head, then fails.
    h.fake.push(Plan {
        fail: Some((StatusCode::INTERNAL_SERVER_ERROR, "{\"error\":{}}".into())),
        head_delay: Duration::from_millis(300),
        ..Plan::default()
    });
    let body = chat_body("gpt-4o-mini", false);
    let client = h.client.clone();
    let b = body.clone();
    let leader = tokio::spawn(async move { client.post_json("/v1/chat/completions", &[], &b).await });
    // Join once the leader is at the upstream.
    while h.fake.requests().is_empty() {
        tokio::task::yield_now().await;
    }
    let follower = h.client.post_json("/v1/chat/completions", &[], &body).await;
    assert_eq!(leader.await.unwrap().status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(follower.status, StatusCode::OK, "the follower went upstream itself");
    assert_eq!(h.fake.requests().len(), 2);
}

#[tokio::test]
async fn a_hit_is_free_against_a_spend_limit_that_would_block_the_miss() {
    let h = Harness::with_config(
        r#"
[cache]
enabled = true
[[spend_limits]]
id = "tiny"
budget_usd = 0.0000001
window = "1d"
dimensions = [ { key = "metadata.user_id", mode = "filter", values = ["capped"] } ]
"#,
    )
    .await;
    let body = chat_body("gpt-4o-mini", false);
    assert_eq!(h.client.post_json("/v1/chat/completions", &[], &body).await.status, StatusCode::OK);
    let capped = [("cf-aig-metadata", r#"{"user_id":"capped"}"#)];
    let hit = h.client.post_json("/v1/chat/completions", &capped, &body).await;
    assert_eq!(hit.status, StatusCode::OK);
    assert_eq!(hit.header("cf-aig-cache-status"), Some("HIT"));
    let other = chat_body("gpt-4o", false);
    let miss = h.client.post_json("/v1/chat/completions", &capped, &other).await;
    assert_eq!(miss.status, StatusCode::TOO_MANY_REQUESTS, "the same caller's miss is blocked");
}

#[tokio::test]
async fn cache_headers_opt_in_skip_and_bad_values_are_400_naming_the_header() {
    let h = Harness::start().await;
    let body = chat_body("gpt-4o-mini", false);
    let plain = h.client.post_json("/v1/chat/completions", &[], &body).await;
    assert_eq!(plain.header("cf-aig-cache-status"), None, "caching is off by default");
    let ttl = [("cf-aig-cache-ttl", "120")];
    assert_eq!(
        h.client.post_json("/v1/chat/completions", &ttl, &body).await.header("cf-aig-cache-status"),
        Some("MISS")
    );
    assert_eq!(
        h.client.post_json("/v1/chat/completions", &ttl, &body).await.header("cf-aig-cache-status"),
        Some("HIT")
    );
    let skip = [("cf-aig-cache-ttl", "120"), ("cf-aig-skip-cache", "true")];
    let skipped = h.client.post_json("/v1/chat/completions", &skip, &body).await;
    assert_eq!(skipped.header("cf-aig-cache-status"), None);
    assert_eq!(h.fake.requests().len(), 3);
    // A custom key replaces the body part: two different bodies with one key share an entry.
    let keyed = [("cf-aig-cache-key", "greeting")];
    assert_eq!(
        h.client.post_json("/v1/chat/completions", &keyed, &body).await.header("cf-aig-cache-status"),
        Some("MISS")
    );
    let other = chat_body("gpt-4o-mini", false);
    let mut other = other;
    other["temperature"] = json!(0.5);
    assert_eq!(
        h.client.post_json("/v1/chat/completions", &keyed, &other).await.header("cf-aig-cache-status"),
        Some("HIT")
    );
    for (name, value) in [
        ("cf-aig-cache-ttl", "59"),
        ("cf-aig-cache-ttl", "2592001"),
        ("cf-aig-cache-ttl", "soon"),
        ("cf-aig-skip-cache", "maybe"),
        ("cf-aig-cache-key", &"k".repeat(257)),
    ] {
        let response = h.client.post_json("/v1/chat/completions", &[(name, value)], &body).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{name}: {value}");
        assert_eq!(response.json()["error"]["code"], "invalid_header", "{name}");
        assert!(response.text().contains(name), "the error names {name}: {}", response.text());
    }
}
