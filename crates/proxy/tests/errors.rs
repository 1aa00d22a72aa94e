//! Errors the gateway makes (docs/errors.md), retries and timeouts, and provider errors passing through.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod harness;

use std::time::Duration;

use harness::{Harness, chat_body};
use http::{Method, StatusCode};
use tollgate_config::Config;
use tollgate_testkit::{FakeProvider, Plan};

const OPENAI_500: &str =
    r#"{"error":{"message":"The server had an error","type":"server_error","param":null,"code":null}}"#;
const OPENAI_429: &str =
    r#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;

#[tokio::test]
async fn a_providers_error_passes_through_untouched() {
    let h = Harness::start().await;
    h.fake.push(Plan {
        fail: Some((
            StatusCode::BAD_REQUEST,
            r#"{"error":{"message":"bad","type":"x","param":"messages","code":"y"}}"#.into(),
        )),
        ..Plan::default()
    });
    let response = h.client.post_json("/v1/chat/completions", &[], &chat_body("gpt-4o", false)).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.text(), r#"{"error":{"message":"bad","type":"x","param":"messages","code":"y"}}"#);
    assert!(response.header("cf-aig-log-id").is_some());
}

#[tokio::test]
async fn retries_on_429_and_5xx_until_an_answer_within_max_attempts() {
    let h = Harness::start().await;
    h.fake.push(Plan { fail: Some((StatusCode::INTERNAL_SERVER_ERROR, OPENAI_500.into())), ..Plan::default() });
    h.fake.push(Plan { fail: Some((StatusCode::TOO_MANY_REQUESTS, OPENAI_429.into())), ..Plan::default() });
    let headers = [("cf-aig-max-attempts", "3"), ("cf-aig-retry-delay", "10"), ("cf-aig-backoff", "constant")];
    let response = h.client.post_json("/v1/chat/completions", &headers, &chat_body("gpt-4o", true)).await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(response.text().ends_with("data: [DONE]\n\n"));
    assert_eq!(h.fake.requests().len(), 3);
    let ended = h.recorder.wait_for(1).await;
    assert_eq!(ended[0].attempts, 3);
}

#[tokio::test]
async fn the_last_attempts_error_is_the_answer() {
    let h = Harness::start().await;
    for _ in 0..2 {
        h.fake.push(Plan { fail: Some((StatusCode::TOO_MANY_REQUESTS, OPENAI_429.into())), ..Plan::default() });
    }
    let headers = [("cf-aig-max-attempts", "2"), ("cf-aig-retry-delay", "0")];
    let response = h.client.post_json("/v1/chat/completions", &headers, &chat_body("gpt-4o", false)).await;
    assert_eq!(response.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.text(), OPENAI_429);
    assert_eq!(h.fake.requests().len(), 2);

    // With the default of one attempt nothing is retried.
    h.fake.push(Plan { fail: Some((StatusCode::INTERNAL_SERVER_ERROR, OPENAI_500.into())), ..Plan::default() });
    let response = h.client.post_json("/v1/chat/completions", &[], &chat_body("gpt-4o", false)).await;
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(h.fake.requests().len(), 3);
}

#[tokio::test]
async fn no_first_byte_within_the_timeout_is_504() {
    let h = Harness::start().await;
    h.fake.push(Plan { head_delay: Duration::from_secs(5), ..Plan::default() });
    let response = h
        .client
        .post_json("/v1/chat/completions", &[("cf-aig-request-timeout", "100")], &chat_body("gpt-4o", false))
        .await;
    assert_eq!(response.status, StatusCode::GATEWAY_TIMEOUT);
    let error = &response.json()["error"];
    assert_eq!(error["code"], "upstream_timeout");
    assert!(error["message"].as_str().unwrap().contains("100 ms"));
}

#[tokio::test]
async fn a_stream_that_started_is_not_cut_by_the_timeout() {
    let h = Harness::start().await;
    h.fake.push(Plan { chunk_delay: Duration::from_millis(60), ..Plan::default() });
    let response = h
        .client
        .post_json("/v1/chat/completions", &[("cf-aig-request-timeout", "100")], &chat_body("gpt-4o", true))
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(response.text().ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn an_unreachable_provider_is_502_and_connect_errors_are_retried() {
    // A port that was just free: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let fake = FakeProvider::start().await;
    let toml = format!("[providers.openai]\nbase_url = \"http://{closed}/v1\"\n");
    let h = Harness::with_parts(fake, Config::from_toml(&toml, &[]).unwrap()).await;
    let started = std::time::Instant::now();
    let headers = [("cf-aig-max-attempts", "3"), ("cf-aig-retry-delay", "100"), ("cf-aig-backoff", "linear")];
    let response = h.client.post_json("/v1/chat/completions", &headers, &chat_body("gpt-4o", false)).await;
    assert_eq!(response.status, StatusCode::BAD_GATEWAY);
    assert_eq!(response.json()["error"]["code"], "upstream_unreachable");
    // Linear backoff waited 100 ms then 200 ms between the three attempts.
    assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
}

#[tokio::test]
async fn bad_control_headers_are_400_naming_the_header() {
    let h = Harness::start().await;
    for (name, value) in [
        ("cf-aig-max-attempts", "9"),
        ("cf-aig-max-attempts", "zero"),
        ("cf-aig-retry-delay", "6000"),
        ("cf-aig-backoff", "random"),
        ("cf-aig-request-timeout", "soon"),
        ("cf-aig-zdr", "maybe"),
        ("cf-aig-collect-log", "nope"),
    ] {
        let response = h.client.post_json("/v1/chat/completions", &[(name, value)], &chat_body("gpt-4o", false)).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{name}: {value}");
        let error = &response.json()["error"];
        assert_eq!(error["code"], "invalid_header");
        assert!(error["message"].as_str().unwrap().contains(name), "{error}");
    }
    assert!(h.fake.requests().is_empty());
}

#[tokio::test]
async fn invalid_json_is_400() {
    let h = Harness::start().await;
    for body in ["{not json", "[1,2]", r#"{"messages":[]}"#] {
        let response =
            h.client.request(Method::POST, "/v1/chat/completions", &[("content-type", "application/json")], body).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(response.json()["error"]["code"], "invalid_json", "{body}");
    }
    let response = h.client.request(Method::POST, "/v1/messages", &[], "{oops").await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.json()["error"]["type"], "invalid_request_error");
    assert!(h.fake.requests().is_empty());
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let h = Harness::with_config("[server]\nmax_request_body = \"1KiB\"\n").await;
    let big = format!(r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":"{}"}}]}}"#, "x".repeat(2000));
    let response =
        h.client.request(Method::POST, "/v1/chat/completions", &[("content-type", "application/json")], big).await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(response.json()["error"]["code"], "request_too_large");
    let small = h.client.post_json("/v1/chat/completions", &[], &chat_body("gpt-4o", false)).await;
    assert_eq!(small.status, StatusCode::OK);
    assert_eq!(h.fake.requests().len(), 1);
}
