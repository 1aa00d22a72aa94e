//! The Redis cache backend against a real Redis (`TOLLGATE_TEST_REDIS`, default `redis://127.0.0.1:6379`):
//! two gateways share hits, and a Redis that goes away mid-test never fails a request. Each test writes under a
//! key prefix of its own and never flushes anything. A Redis that cannot be reached fails these tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod harness;

use harness::{Harness, chat_body};
use http::StatusCode;
use tollgate_testkit::{Link, redis_addr, redis_url};

fn config(url: &str, prefix: &str) -> String {
    format!(
        "[cache]\nenabled = true\nbackend = \"redis\"\n[redis]\nurl = \"{url}\"\nkey_prefix = \"{prefix}\"\ntimeout = \"2s\"\n"
    )
}

fn prefix() -> String {
    format!("tollgate-test:{}:", uuid::Uuid::now_v7())
}

#[tokio::test]
async fn two_gateways_on_one_redis_share_hits() {
    let prefix = prefix();
    let a = Harness::with_config(&config(&redis_url(), &prefix)).await;
    let b = Harness::with_config(&config(&redis_url(), &prefix)).await;
    let body = chat_body("gpt-4o-mini", true);
    let miss = a.client.post_json("/v1/chat/completions", &[], &body).await;
    assert_eq!(miss.header("cf-aig-cache-status"), Some("MISS"));
    // The entry is written in the background once the stream ended: wait until the first gateway serves it.
    a.recorder.wait_for(1).await;
    let mut hit = a.client.post_json("/v1/chat/completions", &[], &body).await;
    for _ in 0..100 {
        if hit.header("cf-aig-cache-status") == Some("HIT") {
            break;
        }
        tokio::task::yield_now().await;
        hit = a.client.post_json("/v1/chat/completions", &[], &body).await;
    }
    assert_eq!(hit.header("cf-aig-cache-status"), Some("HIT"), "{}", hit.text());
    let other = b.client.post_json("/v1/chat/completions", &[], &body).await;
    assert_eq!(other.header("cf-aig-cache-status"), Some("HIT"), "the second gateway hits the first's entry");
    assert_eq!(other.body, miss.body);
    assert!(b.fake.requests().is_empty(), "the second gateway never called its upstream");
    // Another prefix is another cache.
    let c = Harness::with_config(&config(&redis_url(), &self::prefix())).await;
    assert_eq!(
        c.client.post_json("/v1/chat/completions", &[], &body).await.header("cf-aig-cache-status"),
        Some("MISS")
    );
}

#[tokio::test]
async fn a_redis_that_goes_away_mid_test_never_fails_a_request() {
    let link = Link::start(redis_addr()).await;
    let url = format!("redis://127.0.0.1:{}", link.port());
    let h = Harness::with_config(&config(&url, &prefix())).await;
    let body = chat_body("gpt-4o-mini", false);
    assert_eq!(h.client.post_json("/v1/chat/completions", &[], &body).await.status, StatusCode::OK);
    link.down();
    for _ in 0..3 {
        let response = h.client.post_json("/v1/chat/completions", &[], &body).await;
        assert_eq!(response.status, StatusCode::OK, "served from upstream while Redis is away");
        assert_eq!(response.header("cf-aig-cache-status"), None, "the cache is bypassed");
    }
    assert_eq!(h.fake.requests().len(), 4);
}
