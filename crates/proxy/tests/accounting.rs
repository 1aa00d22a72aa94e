//! Accounting through the real proxy: one exact record per response, streamed or not, cut, disconnected or
//! refused; include_usage asked for upstream and hidden from the client that did not ask.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod harness;

use std::time::Duration;

use harness::{Harness, chat_body};
use http::{Method, StatusCode};
use serde_json::json;
use tollgate_accounting::CostSource;
use tollgate_proxy::StreamEnd;
use tollgate_testkit::{Gate, Plan, Reply, UsageNumbers, next_data};

const AUTH: (&str, &str) = ("cf-aig-authorization", "Bearer tok-accounting");

fn replying(input: u64, output: u64, cached: u64) -> Plan {
    Plan {
        reply: Some(Reply {
            text: "Paris is the capital.".into(),
            usage: Some(UsageNumbers { input, output, cached }),
        }),
        ..Plan::default()
    }
}

#[tokio::test]
async fn non_streamed_chat_is_priced_exactly_from_the_catalog() {
    let h = Harness::start().await;
    h.fake.push(replying(1250, 42, 1024));
    let response = h.client.post_json("/v1/chat/completions", &[], &chat_body("gpt-4.1-mini", false)).await;
    assert_eq!(response.status, StatusCode::OK);
    let r = &h.recorder.wait_for(1).await[0];
    assert_eq!((r.usage.input, r.usage.cache_read, r.usage.output), (226, 1024, 42));
    assert_eq!(r.tokens_in(), 1250);
    // 226 × $0.40/M + 1024 × $0.10/M + 42 × $1.60/M = $0.000260
    assert_eq!(r.cost_nanos, 260_000);
    assert_eq!(r.cost_source, CostSource::Catalog);
    assert!(r.success);
    assert_eq!(r.log_id, response.header("cf-aig-log-id").unwrap());
}

#[tokio::test]
async fn a_stream_without_include_usage_is_asked_for_it_and_the_client_never_sees_the_usage_chunk() {
    let h = Harness::start().await;
    h.fake.push(replying(12, 3, 0));
    let response = h.client.post_json("/v1/chat/completions", &[], &chat_body("gpt-4o-mini", true)).await;
    let text = response.text();
    assert!(!text.contains(r#""choices":[]"#), "the usage-only chunk reached the client: {text}");
    assert!(!text.contains("prompt_tokens"));
    assert!(text.ends_with("data: [DONE]\n\n"));
    let sent: serde_json::Value = serde_json::from_slice(&h.fake.last_request().body).unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true, "the gateway asked for usage upstream");
    let r = &h.recorder.wait_for(1).await[0];
    assert_eq!((r.usage.input, r.usage.output), (12, 3));
    // 12 × $0.15/M + 3 × $0.60/M = 3.6 µ$
    assert_eq!(r.cost_nanos, 3_600);
    assert_eq!(r.cost_source, CostSource::Catalog);
}

#[tokio::test]
async fn a_client_that_asked_for_usage_gets_it_and_its_body_goes_up_unchanged() {
    let h = Harness::start().await;
    h.fake.push(replying(12, 3, 0));
    let mut body = chat_body("gpt-4o-mini", true);
    body["stream_options"] = json!({"include_usage": true});
    let response = h.client.post_json("/v1/chat/completions", &[], &body).await;
    assert!(response.text().contains(r#""choices":[]"#));
    assert_eq!(h.fake.last_request().body, body.to_string().as_bytes());
    assert_eq!(h.recorder.wait_for(1).await[0].cost_nanos, 3_600);
}

#[tokio::test]
async fn every_format_streamed_and_not_is_priced_exactly() {
    let h = Harness::start().await;
    // Anthropic stream: message_start input + the cumulative output of message_delta (never summed).
    h.fake.push(replying(25, 4, 0));
    let anthropic = json!({"model": "claude-haiku-4-5", "max_tokens": 100, "stream": true, "messages": []});
    assert_eq!(h.client.post_json("/v1/messages", &[], &anthropic).await.status, StatusCode::OK);
    // Gemini stream with CRLF framing and running usageMetadata.
    h.fake.push(replying(8, 3, 0));
    let path = "/google-ai-studio/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse";
    assert_eq!(h.client.post_json(path, &[], &json!({"contents": []})).await.status, StatusCode::OK);
    // Responses stream.
    h.fake.push(replying(2100, 260, 2048));
    let responses = json!({"model": "o4-mini", "input": "2+2", "stream": true});
    assert_eq!(h.client.post_json("/v1/responses", &[], &responses).await.status, StatusCode::OK);
    // Embeddings.
    h.fake.push(replying(8, 0, 0));
    let embeddings = json!({"model": "text-embedding-3-small", "input": "hello"});
    assert_eq!(h.client.post_json("/v1/embeddings", &[], &embeddings).await.status, StatusCode::OK);
    // Legacy completions, streamed (include_usage injected).
    h.fake.push(replying(5, 4, 0));
    let completions = json!({"model": "gpt-3.5-turbo-instruct", "prompt": "a", "stream": true});
    let response = h.client.post_json("/v1/completions", &[], &completions).await;
    assert!(!response.text().contains(r#""choices":[]"#));

    let records = h.recorder.wait_for(5).await;
    let costs: Vec<(u64, u64, u64, CostSource)> =
        records.iter().map(|r| (r.tokens_in(), r.usage.output, r.cost_nanos, r.cost_source)).collect();
    assert_eq!(
        costs,
        [
            // 25 × $1 + 4 × $5 per M
            (25, 4, 45_000, CostSource::Catalog),
            // 8 × $0.30 + 3 × $2.50 per M
            (8, 3, 9_900, CostSource::Catalog),
            // 52 × $1.10 + 2048 × $0.275 + 260 × $4.40 per M = $0.0017644
            (2100, 260, 1_764_400, CostSource::Catalog),
            // 8 × $0.02 per M
            (8, 0, 160, CostSource::Catalog),
            // 5 × $1.50 + 4 × $2.00 per M
            (5, 4, 15_500, CostSource::Catalog),
        ]
    );
}

#[tokio::test]
async fn a_model_without_a_price_is_recorded_as_unpriced_never_as_free() {
    let h = Harness::start().await;
    let response = h.client.post_json("/v1/chat/completions", &[], &chat_body("local/llama3-homebrew", false)).await;
    assert_eq!(response.status, StatusCode::OK);
    let r = &h.recorder.wait_for(1).await[0];
    assert_eq!(r.cost_source, CostSource::Unpriced);
    assert!(r.usage.output > 0, "tokens are still counted");
}

#[tokio::test]
async fn custom_cost_overrides_the_catalog_and_a_bad_one_is_refused() {
    // Only a trusted credential may set a request's price (gateway.custom_cost_from): the gateway token here.
    let h = Harness::with_config("[gateway]\nauth_token = \"tok-accounting\"\n").await;
    h.fake.push(replying(1000, 10, 0));
    let response = h
        .client
        .post_json(
            "/v1/chat/completions",
            &[AUTH, ("cf-aig-custom-cost", r#"{"per_token_in":0.000001,"per_token_out":0.00002}"#)],
            &chat_body("gpt-4o-mini", false),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    let r = &h.recorder.wait_for(1).await[0];
    // 1000 × $1e-6 + 10 × $2e-5 = $0.0012
    assert_eq!(r.cost_nanos, 1_200_000);
    assert_eq!(r.cost_source, CostSource::Custom);

    let response = h
        .client
        .post_json(
            "/v1/chat/completions",
            &[AUTH, ("cf-aig-custom-cost", r#"{"per_token_in":"x"}"#)],
            &chat_body("gpt-4o-mini", false),
        )
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    let error = &response.json()["error"];
    assert_eq!(error["code"], "invalid_header");
    assert!(error["message"].as_str().unwrap().contains("cf-aig-custom-cost"));
}

#[tokio::test]
async fn a_cut_stream_is_billed_by_estimate_and_marked() {
    let h = Harness::start().await;
    h.fake.push(Plan { cut_after: Some(600), chunk_size: Some(100), ..replying(30, 9, 0) });
    let mut body = chat_body("gpt-4o-mini", true);
    body["messages"] = json!([{"role": "user", "content": "x".repeat(400)}]);
    let response = h.client.send(Method::POST, "/v1/chat/completions", &[], body.to_string()).await;
    let _ = http_body_util::BodyExt::collect(response.into_body()).await;
    let r = &h.recorder.wait_for(1).await[0];
    assert_eq!(r.cost_source, CostSource::Estimated);
    assert!(r.usage.input >= 100, "prompt estimated from the request body: {:?}", r.usage);
    assert!(r.usage.output >= 1, "output estimated from the text already produced: {:?}", r.usage);
    assert!(r.cost_nanos > 0);
    assert!(!r.success);
    assert!(matches!(r.end, Some(StreamEnd::UpstreamError(_))));
}

#[tokio::test]
async fn a_client_gone_past_the_drain_bound_is_estimated() {
    let h = Harness::with_config("[gateway]\ndisconnect_drain_timeout = \"200ms\"\n").await;
    let gate = Gate::new();
    h.fake.push(Plan { gate: Some(gate.clone()), ..replying(30, 9, 0) });
    let mut response =
        h.client.send(Method::POST, "/v1/chat/completions", &[], chat_body("gpt-4o-mini", true).to_string()).await;
    let _first = next_data(response.body_mut()).await.unwrap().unwrap();
    drop(response);
    let r = &h.recorder.wait_for(1).await[0];
    assert_eq!(r.end, Some(StreamEnd::ClientGone { drained: false }));
    assert_eq!(r.cost_source, CostSource::Estimated);
    assert!(r.cost_nanos > 0, "a request the provider bills is never recorded as free");
    gate.open();
}

#[tokio::test]
async fn provider_errors_cost_nothing_and_refusals_are_recorded_too() {
    let h = Harness::start().await;
    h.fake.push(Plan {
        fail: Some((StatusCode::BAD_REQUEST, r#"{"error":{"message":"no"}}"#.into())),
        ..Plan::default()
    });
    let response = h.client.post_json("/v1/chat/completions", &[], &chat_body("gpt-4o-mini", false)).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    let response = h.client.post_json("/compat/chat/completions", &[], &chat_body("gpt-4o-mini", false)).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    let records = h.recorder.wait_for(2).await;
    assert_eq!((records[0].status, records[0].success, records[0].cost_nanos), (400, false, 0));
    assert_eq!(records[1].status, 400);
    assert_eq!(records[1].error.as_deref(), Some("unknown_model_prefix"));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(h.recorder.ended.lock().unwrap().len(), 2, "exactly one record per request");
}

#[tokio::test]
async fn a_mid_stream_error_event_is_recorded_with_the_usage_seen() {
    let h = Harness::start().await;
    let events = vec![
        bytes::Bytes::from_static(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-haiku-4-5\",\"content\":[],\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n"),
        bytes::Bytes::from_static(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi there\"}}\n\n"),
        bytes::Bytes::from_static(b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"),
    ];
    h.fake.push(Plan { raw: Some(("text/event-stream", events)), ..Plan::default() });
    let body = json!({"model": "claude-haiku-4-5", "max_tokens": 50, "stream": true, "messages": []});
    let response = h.client.post_json("/v1/messages", &[], &body).await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(response.text().contains("overloaded_error"), "the error reaches the client");
    let r = &h.recorder.wait_for(1).await[0];
    assert!(!r.success);
    assert!(r.error.as_deref().unwrap().contains("Overloaded"), "{:?}", r.error);
    assert_eq!(r.usage.input, 25, "the input reported by message_start is billed");
    assert_eq!(r.cost_source, CostSource::Estimated);
}

#[tokio::test]
async fn timeouts_and_unreachable_providers_are_recorded_once() {
    let h = Harness::start().await;
    h.fake.push(Plan { head_delay: Duration::from_secs(3), ..Plan::default() });
    let response = h
        .client
        .post_json("/v1/chat/completions", &[("cf-aig-request-timeout", "50")], &chat_body("gpt-4o-mini", false))
        .await;
    assert_eq!(response.status, StatusCode::GATEWAY_TIMEOUT);
    let r = &h.recorder.wait_for(1).await[0];
    // The provider had the request: its late answer is read in the background and charged.
    assert_eq!((r.status, r.error.as_deref()), (504, Some("upstream_timeout")));
    assert!(r.cost_nanos > 0);
    assert_eq!(r.cost_source, CostSource::Catalog);
    assert_eq!(r.provider, "openai");
    assert_eq!(r.model.as_deref(), Some("gpt-4o-mini"));
}

#[tokio::test]
async fn with_accounting_off_nothing_is_read_or_injected() {
    let h = Harness::with_config("[gateway]\naccounting = false\n").await;
    let response = h.client.post_json("/v1/chat/completions", &[], &chat_body("gpt-4o-mini", true)).await;
    assert_eq!(response.status, StatusCode::OK);
    let sent: serde_json::Value = serde_json::from_slice(&h.fake.last_request().body).unwrap();
    assert!(sent.get("stream_options").is_none());
    let r = &h.recorder.wait_for(1).await[0];
    assert_eq!((r.usage.output, r.cost_nanos), (0, 0));
}

#[tokio::test]
async fn bodies_are_kept_only_when_payload_logging_is_on_and_not_refused_by_the_request() {
    let h = Harness::with_config("[logging]\npayloads = true\n").await;
    let body = chat_body("gpt-4o-mini", false);
    assert_eq!(h.client.post_json("/v1/chat/completions", &[], &body).await.status, StatusCode::OK);
    let headers = [("cf-aig-collect-log-payload", "false")];
    assert_eq!(h.client.post_json("/v1/chat/completions", &headers, &body).await.status, StatusCode::OK);
    let records = h.recorder.wait_for(2).await;
    assert_eq!(records[0].request_body.as_deref(), Some(body.to_string().as_bytes()));
    assert!(String::from_utf8_lossy(records[0].response_body.as_deref().unwrap()).contains("chat.completion"));
    assert!(records[1].request_body.is_none() && records[1].response_body.is_none());
    assert!(records[1].cost_nanos > 0, "spend is counted either way");

    let off = Harness::start().await;
    assert_eq!(off.client.post_json("/v1/chat/completions", &[], &body).await.status, StatusCode::OK);
    assert!(off.recorder.wait_for(1).await[0].request_body.is_none(), "payloads are off by default");
}
