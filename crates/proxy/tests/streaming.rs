//! Streaming: chunks pass the moment they arrive, bytes are unchanged, and the tap sees every end once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod harness;

use std::time::Duration;

use harness::{Harness, chat_body};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use tollgate_proxy::StreamEnd;
use tollgate_testkit::{Gate, Plan, TestClient, next_data};

#[tokio::test]
async fn the_client_holds_the_first_chunk_while_the_upstream_withholds_the_rest() {
    let h = Harness::start().await;
    let gate = Gate::new();
    h.fake.push(Plan { gate: Some(gate.clone()), ..Plan::default() });
    let mut response =
        h.client.send(Method::POST, "/v1/chat/completions", &[], chat_body("gpt-4o-mini", true).to_string()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.body_mut();
    let first = tokio::time::timeout(Duration::from_secs(5), next_data(body))
        .await
        .expect("the first chunk must arrive while the upstream holds the rest")
        .unwrap()
        .unwrap();
    assert!(first.starts_with(b"data: {"), "{first:?}");
    assert!(!String::from_utf8_lossy(&first).contains("[DONE]"));
    // Nothing else can arrive until the gate opens.
    assert!(tokio::time::timeout(Duration::from_millis(100), next_data(body)).await.is_err());
    gate.open();
    let mut rest = Vec::new();
    while let Some(chunk) = next_data(body).await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert!(String::from_utf8_lossy(&rest).ends_with("data: [DONE]\n\n"));
    let ended = h.recorder.wait_for(1).await;
    assert_eq!(ended[0].end, Some(StreamEnd::Complete));
}

#[tokio::test]
async fn bytes_split_anywhere_reach_the_client_unchanged_and_the_tap_sees_the_same_bytes() {
    let h = Harness::start().await;
    let whole = h.client.post_json("/v1/chat/completions", &[], &chat_body("gpt-4o-mini", true)).await;
    for size in [1, 2, 3, 7, 64] {
        h.fake.push(Plan { chunk_size: Some(size), ..Plan::default() });
        let split = h.client.post_json("/v1/chat/completions", &[], &chat_body("gpt-4o-mini", true)).await;
        assert_eq!(split.body, whole.body, "chunk size {size}");
    }
    // Anthropic and Gemini (CRLF) framing too.
    let anthropic = serde_json::json!({"model": "claude-haiku-4-5", "max_tokens": 9, "stream": true, "messages": []});
    let whole = h.client.post_json("/v1/messages", &[], &anthropic).await;
    h.fake.push(Plan { chunk_size: Some(1), ..Plan::default() });
    let split = h.client.post_json("/v1/messages", &[], &anthropic).await;
    assert_eq!(split.body, whole.body);
    assert!(whole.text().contains("event: message_stop"));
    let ended = h.recorder.wait_for(8).await;
    for e in &ended {
        assert_eq!(e.end, Some(StreamEnd::Complete));
    }
    assert_eq!(ended[7].response_bytes, split.body.len() as u64);
    assert_eq!(ended[7].usage, ended[6].usage, "the same usage however the bytes were split");
    assert!(ended[7].usage.output > 0);
}

#[tokio::test]
async fn http2_cleartext_clients_are_served_on_the_same_port() {
    let h = Harness::start().await;
    let h2 = TestClient::http2(h.url.clone());
    let response = h2.post_json("/v1/chat/completions", &[], &chat_body("gpt-4o-mini", false)).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.json()["object"], "chat.completion");
    let response = h2.post_json("/v1/chat/completions", &[], &chat_body("gpt-4o-mini", true)).await;
    assert!(response.text().ends_with("data: [DONE]\n\n"));
    // And HTTP/1.1 on the very same listener.
    let response = h.client.post_json("/v1/chat/completions", &[], &chat_body("gpt-4o-mini", false)).await;
    assert_eq!(response.status, StatusCode::OK);
}

#[tokio::test]
async fn a_stream_cut_by_the_upstream_reaches_the_client_as_a_broken_stream_and_the_tap_once() {
    let h = Harness::start().await;
    h.fake.push(Plan { cut_after: Some(150), chunk_size: Some(50), ..Plan::default() });
    let response =
        h.client.send(Method::POST, "/v1/chat/completions", &[], chat_body("gpt-4o-mini", true).to_string()).await;
    let result = response.into_body().collect().await;
    assert!(result.is_err(), "the client must see that the stream broke, not a clean end");
    let ended = h.recorder.wait_for(1).await;
    assert!(matches!(ended[0].end, Some(StreamEnd::UpstreamError(_))), "{:?}", ended[0].end);
    assert_eq!(ended[0].response_bytes, 150);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(h.recorder.ended.lock().unwrap().len(), 1, "exactly one end per response");
}

#[tokio::test]
async fn when_the_client_disconnects_the_upstream_is_read_to_its_end_in_the_background() {
    let h = Harness::start().await;
    let gate = Gate::new();
    h.fake.push(Plan { gate: Some(gate.clone()), ..Plan::default() });
    let mut response =
        h.client.send(Method::POST, "/v1/chat/completions", &[], chat_body("gpt-4o-mini", true).to_string()).await;
    let first = next_data(response.body_mut()).await.unwrap().unwrap();
    drop(response);
    // Give the gateway a moment to notice the client left, then let the upstream finish.
    tokio::time::sleep(Duration::from_millis(100)).await;
    gate.open();
    let ended = h.recorder.wait_for(1).await;
    assert_eq!(ended[0].end, Some(StreamEnd::ClientGone { drained: true }));
    assert!(ended[0].response_bytes > first.len() as u64, "the tap saw the rest of the upstream");
    // The usage at the end of the stream was read: exact, not estimated.
    assert_eq!(ended[0].cost_source, tollgate_accounting::CostSource::Catalog);
    assert_eq!(ended[0].usage.output, 5, "\"Hello from the fake provider.\" is five words");
}

#[tokio::test]
async fn graceful_shutdown_lets_a_running_stream_finish_then_returns() {
    let h = Harness::start().await;
    let gate = Gate::new();
    h.fake.push(Plan { gate: Some(gate.clone()), ..Plan::default() });
    let mut response =
        h.client.send(Method::POST, "/v1/chat/completions", &[], chat_body("gpt-4o-mini", true).to_string()).await;
    let _first = next_data(response.body_mut()).await.unwrap().unwrap();
    h.shutdown.cancel();
    // New connections are refused once the listener is closed.
    let url = h.url.trim_start_matches("http://").to_string();
    let mut refused = false;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(&url).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "the listener still accepts after shutdown");
    assert!(!h.server.is_finished(), "the server waits for the in-flight stream");
    gate.open();
    let mut rest = Vec::new();
    while let Some(chunk) = next_data(response.body_mut()).await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert!(String::from_utf8_lossy(&rest).ends_with("data: [DONE]\n\n"));
    tokio::time::timeout(Duration::from_secs(5), h.server).await.expect("serve returns after the drain").unwrap();
}
