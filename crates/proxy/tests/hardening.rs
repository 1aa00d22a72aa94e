//! The request path against clients that leave early, stall, smuggle the token, or try to set their own price:
//! every request that reached a provider is charged, and no input goes unbounded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod harness;

use std::fmt::Write as _;
use std::time::Duration;

use harness::{Harness, chat_body};
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tollgate_accounting::CostSource;
use tollgate_testkit::{Plan, Reply, UsageNumbers};

const TOKEN: &str = "tg-test-token-7f3a";

fn authed() -> [(&'static str, &'static str); 1] {
    [("cf-aig-authorization", "Bearer tg-test-token-7f3a")]
}

fn gateway_with_token(extra: &str) -> String {
    format!("[gateway]\nauth_token = \"{TOKEN}\"\n{extra}")
}

fn replying(input: u64, output: u64) -> Plan {
    let usage = Some(UsageNumbers { input, output, cached: 0 });
    Plan { reply: Some(Reply { usage, ..Reply::default() }), ..Plan::default() }
}

/// Sends `body` to `path` on a raw connection, then closes it after `after` without reading the answer.
async fn send_and_leave(url: &str, path: &str, headers: &[(&str, &str)], body: &str, after: Duration) {
    let addr = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!("POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n");
    for (name, value) in headers {
        let _ = write!(request, "{name}: {value}\r\n");
    }
    let _ = write!(request, "content-length: {}\r\n\r\n{body}", body.len());
    stream.write_all(request.as_bytes()).await.unwrap();
    tokio::time::sleep(after).await;
    drop(stream);
}

#[tokio::test]
async fn s7_a_client_gone_before_the_response_head_is_recorded_and_charged_from_the_answer() {
    let h = Harness::start().await;
    // What the same request costs when the client waits.
    h.fake.push(replying(1000, 200));
    let waited = h.client.post_json("/v1/chat/completions", &[], &chat_body("gpt-4o-mini", false)).await;
    assert_eq!(waited.status, StatusCode::OK);
    let expected = h.recorder.wait_for(1).await[0].cost_nanos;
    assert!(expected > 0);

    h.fake.push(Plan { head_delay: Duration::from_millis(700), ..replying(1000, 200) });
    let body = chat_body("gpt-4o-mini", false).to_string();
    send_and_leave(&h.url, "/v1/chat/completions", &[], &body, Duration::from_millis(150)).await;
    let records = h.recorder.wait_for(2).await;
    let r = &records[1];
    assert_eq!(h.fake.requests().len(), 2, "the provider got the request");
    assert_eq!(r.status, 499, "the client never got an answer");
    assert!(!r.success);
    assert_eq!(r.error.as_deref(), Some("client_gone_before_response_head"));
    assert_eq!(r.usage.input, 1000, "the provider's own usage was read in the background");
    assert_eq!(r.usage.output, 200);
    assert_eq!(r.cost_nanos, expected);
    assert_eq!(r.cost_source, CostSource::Catalog);
}

#[tokio::test]
async fn s7_a_client_gone_while_the_body_is_still_arriving_is_recorded_and_charged_nothing() {
    let h = Harness::start().await;
    let addr = h.url.trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let head = format!("POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 1000\r\n\r\n{{\"mo");
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(stream);
    let r = &h.recorder.wait_for(1).await[0];
    assert!(h.fake.requests().is_empty());
    assert!(r.status == 499 || r.status == 400, "{}", r.status);
    assert_eq!(r.cost_nanos, 0);
}

#[tokio::test]
async fn s8_a_first_byte_timeout_is_answered_at_once_and_charged_from_the_answer_read_in_the_background() {
    let h = Harness::start().await;
    h.fake.push(Plan { head_delay: Duration::from_millis(600), ..replying(2000, 100) });
    let started = std::time::Instant::now();
    let response = h
        .client
        .post_json("/v1/chat/completions", &[("cf-aig-request-timeout", "100")], &chat_body("gpt-4o-mini", false))
        .await;
    assert_eq!(response.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() < Duration::from_millis(550), "the client is not held for the background read");
    let r = &h.recorder.wait_for(1).await[0];
    assert_eq!(r.status, 504);
    assert_eq!(r.error.as_deref(), Some("upstream_timeout"));
    assert_eq!((r.usage.input, r.usage.output), (2000, 100));
    assert!(r.cost_nanos > 0);
    assert_eq!(r.cost_source, CostSource::Catalog);
}

#[tokio::test]
async fn s8_a_request_the_provider_never_answers_is_charged_its_worst_case() {
    let h = Harness::with_config("[gateway]\ndisconnect_drain_timeout = \"300ms\"\n").await;
    h.fake.push(Plan { head_delay: Duration::from_secs(5), ..Plan::default() });
    let mut body = chat_body("gpt-4o-mini", false);
    body["max_tokens"] = 1000.into();
    let response = h.client.post_json("/v1/chat/completions", &[("cf-aig-request-timeout", "100")], &body).await;
    assert_eq!(response.status, StatusCode::GATEWAY_TIMEOUT);
    let r = &h.recorder.wait_for(1).await[0];
    assert_eq!(r.cost_source, CostSource::Estimated);
    assert_eq!(r.usage.output, 1000, "charged as if max_tokens were produced");
    assert!(r.cost_nanos > 0);
}

#[tokio::test]
async fn s19_the_gateway_token_never_reaches_the_provider_in_any_form() {
    let h = Harness::with_config(&gateway_with_token("")).await;
    let bearer_tab = format!("Bearer\t{TOKEN}");
    let basic = format!("Basic {TOKEN}");
    let smuggled: [(&str, &str); 4] = [
        ("authorization", basic.as_str()),
        ("authorization", TOKEN),
        ("authorization", bearer_tab.as_str()),
        ("x-extra", TOKEN),
    ];
    for (name, value) in smuggled {
        let response = h
            .client
            .post_json("/openai/chat/completions", &[authed()[0], (name, value)], &chat_body("gpt-4o-mini", false))
            .await;
        assert_eq!(response.status, StatusCode::OK, "{name}: {value:?}");
    }
    let gemini = serde_json::json!({"contents": [{"parts": [{"text": "hi"}]}]});
    let response = h
        .client
        .post_json(
            &format!("/google-ai-studio/v1beta/models/gemini-2.5-flash:generateContent?key={TOKEN}&alt=json"),
            &authed(),
            &gemini,
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    let received = h.fake.requests();
    assert_eq!(received.len(), 5);
    for request in &received {
        assert!(!request.uri.contains(TOKEN), "{}", request.uri);
        for (name, value) in &request.headers {
            assert!(!String::from_utf8_lossy(value.as_bytes()).contains(TOKEN), "{name} carried the token");
        }
    }
    assert!(received[4].uri.ends_with("?alt=json"), "other query parameters stay: {}", received[4].uri);
}

#[tokio::test]
async fn s20_a_body_that_trickles_in_is_cut_after_the_body_timeout() {
    let h = Harness::with_config("[server]\nbody_timeout = \"500ms\"\n").await;
    let addr = h.url.trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let head = format!("POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 100\r\n\r\n{{");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&answer[..read]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("server.body_timeout"), "{text}");
    assert!(h.fake.requests().is_empty());
}

#[tokio::test]
async fn s20_max_connections_caps_the_concurrent_connections() {
    let h = Harness::with_config("[server]\nmax_connections = 2\n").await;
    let addr = h.url.trim_start_matches("http://").to_string();
    let first = TcpStream::connect(&addr).await.unwrap();
    let second = TcpStream::connect(&addr).await.unwrap();
    // Both slots are held by idle connections: a third request waits.
    let client = h.client.clone();
    let third =
        tokio::spawn(
            async move { client.post_json("/v1/chat/completions", &[], &chat_body("gpt-4o-mini", false)).await },
        );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!third.is_finished(), "a third connection is not served while two are open");
    drop(first);
    let response = tokio::time::timeout(Duration::from_secs(5), third).await.unwrap().unwrap();
    assert_eq!(response.status, StatusCode::OK);
    drop(second);
}

#[tokio::test]
async fn s5_an_unpriced_model_under_a_spend_rule_is_refused_before_it_goes_upstream() {
    let rule = "[[spend_limits]]\nid = \"all\"\nbudget_usd = 10.0\nwindow = \"1d\"\n";
    let h = Harness::with_config(rule).await;
    let response = h.client.post_json("/v1/chat/completions", &[], &chat_body("o9-imaginary", false)).await;
    assert_eq!(response.status, StatusCode::FORBIDDEN);
    let error = &response.json()["error"];
    assert_eq!(error["code"], "unpriced_model");
    assert_eq!(error["param"], "model");
    assert!(h.fake.requests().is_empty(), "nothing went upstream");
    // A priced model under the same rule passes.
    let response = h.client.post_json("/v1/chat/completions", &[], &chat_body("gpt-4o-mini", false)).await;
    assert_eq!(response.status, StatusCode::OK);

    let allowed = Harness::with_config(&format!("[pricing]\nunpriced = \"allow\"\n{rule}")).await;
    let response = allowed.client.post_json("/v1/chat/completions", &[], &chat_body("o9-imaginary", false)).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(allowed.recorder.wait_for(1).await[0].cost_source, CostSource::Unpriced);

    // With no rule in play the model passes, recorded as unpriced.
    let free = Harness::start().await;
    let response = free.client.post_json("/v1/chat/completions", &[], &chat_body("o9-imaginary", false)).await;
    assert_eq!(response.status, StatusCode::OK);
}

#[tokio::test]
async fn s2_custom_cost_needs_a_trusted_credential_and_stays_under_the_maximum() {
    let open = Harness::start().await;
    let response = open
        .client
        .post_json(
            "/v1/chat/completions",
            &[("cf-aig-custom-cost", r#"{"total_cost":0}"#)],
            &chat_body("gpt-4o-mini", false),
        )
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert!(response.json()["error"]["message"].as_str().unwrap().contains("gateway.custom_cost_from"));
    assert!(open.fake.requests().is_empty());

    let h = Harness::with_config(&gateway_with_token("max_custom_cost_usd = 1.0\n")).await;
    let over = [authed()[0], ("cf-aig-custom-cost", r#"{"total_cost":10000000000}"#)];
    let response = h.client.post_json("/v1/chat/completions", &over, &chat_body("gpt-4o-mini", false)).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    let error = &response.json()["error"];
    assert_eq!(error["code"], "invalid_header");
    assert!(error["message"].as_str().unwrap().contains("total_cost"), "{error}");

    let fine = [authed()[0], ("cf-aig-custom-cost", r#"{"total_cost":0.25}"#)];
    let response = h.client.post_json("/v1/chat/completions", &fine, &chat_body("gpt-4o-mini", false)).await;
    assert_eq!(response.status, StatusCode::OK);
    let records = h.recorder.wait_for(2).await;
    assert_eq!(records[1].cost_nanos, 250_000_000);
    assert_eq!(records[1].cost_source, CostSource::Custom);
}

#[tokio::test]
async fn s16_a_custom_total_cost_is_reserved_even_without_max_tokens() {
    let rule = "[[spend_limits]]\nid = \"tiny\"\nbudget_usd = 0.01\nwindow = \"1d\"\n";
    let h = Harness::with_config(&gateway_with_token(&format!("\n{rule}"))).await;
    h.fake.set_default(Plan { head_delay: Duration::from_millis(300), ..Plan::default() });
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = h.client.clone();
        tasks.push(tokio::spawn(async move {
            let headers = [authed()[0], ("cf-aig-custom-cost", r#"{"total_cost":0.004}"#)];
            client.post_json("/v1/chat/completions", &headers, &chat_body("gpt-4o-mini", false)).await.status
        }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 2, "two reservations of $0.004 fit in $0.01, a third does not");
}

#[tokio::test]
async fn s3_requests_refused_before_authentication_are_marked_so_they_are_never_stored() {
    let h = Harness::with_config(&gateway_with_token("")).await;
    let long_gateway = "g".repeat(3000);
    let response = h
        .client
        .post_json(&format!("/v1/acct/{long_gateway}/openai/chat/completions"), &[], &chat_body("gpt-4o-mini", false))
        .await;
    assert!(response.status.is_client_error(), "{}", response.status);
    let response = h.client.post_json("/v1/chat/completions", &[], &chat_body("gpt-4o-mini", false)).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    let response = h.client.post_json("/v1/chat/completions", &authed(), &chat_body("gpt-4o-mini", false)).await;
    assert_eq!(response.status, StatusCode::OK);
    let records = h.recorder.wait_for(3).await;
    assert!(!records[0].authenticated && !records[1].authenticated);
    assert!(records[2].authenticated);
}

#[tokio::test]
async fn s25_an_unauthenticated_request_learns_nothing_about_header_validation() {
    let h = Harness::with_config(&gateway_with_token("")).await;
    let response = h
        .client
        .post_json("/v1/chat/completions", &[("cf-aig-max-attempts", "99")], &chat_body("gpt-4o-mini", false))
        .await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn s13_a_model_name_over_max_model_chars_is_refused_before_any_limit_or_record_sees_it() {
    let h = Harness::with_config("[gateway]\nmax_model_chars = 64\n").await;
    let response = h.client.post_json("/v1/chat/completions", &[], &chat_body(&"m".repeat(65), false)).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    let error = &response.json()["error"];
    assert_eq!(error["code"], "invalid_json");
    assert_eq!(error["param"], "model");
    assert!(h.fake.requests().is_empty());
    let r = &h.recorder.wait_for(1).await[0];
    assert!(r.model.is_none(), "the long name is not kept on the record");
}

#[tokio::test]
async fn s15_a_prompt_held_by_the_provider_reserves_the_models_context_window() {
    // gpt-4o-mini: 128k tokens of context at $0.15/M is about $0.019 of input alone, over a $0.01 budget; the
    // same request with its prompt in the body reserves a few tokens and fits.
    let rule = "[[spend_limits]]\nid = \"small\"\nbudget_usd = 0.01\nwindow = \"1d\"\n";
    let h = Harness::with_config(rule).await;
    let mut held = chat_body("gpt-4o-mini", false);
    held["max_tokens"] = 10.into();
    held["previous_response_id"] = "resp_123".into();
    let response = h.client.post_json("/v1/chat/completions", &[], &held).await;
    assert_eq!(response.status, StatusCode::TOO_MANY_REQUESTS, "{}", response.text());
    assert!(h.fake.requests().is_empty());
    let mut image = chat_body("gpt-4o-mini", false);
    image["max_tokens"] = 10.into();
    image["messages"] = serde_json::json!([{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    ]}]);
    let response = h.client.post_json("/v1/chat/completions", &[], &image).await;
    assert_eq!(response.status, StatusCode::TOO_MANY_REQUESTS);
    let mut text = chat_body("gpt-4o-mini", false);
    text["max_tokens"] = 10.into();
    let response = h.client.post_json("/v1/chat/completions", &[], &text).await;
    assert_eq!(response.status, StatusCode::OK);
}
