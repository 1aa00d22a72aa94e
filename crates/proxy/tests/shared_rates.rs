//! Shared rate limits against a real Redis (`TOLLGATE_TEST_REDIS`, default `redis://127.0.0.1:6379`): two
//! gateways (two replicas) on one Redis admit `limit` together, and a Redis that goes away leaves each replica
//! its share. Each test counts under a key prefix of its own. A Redis that cannot be reached fails these tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod harness;

use std::sync::atomic::Ordering;

use harness::{Harness, chat_body};
use http::StatusCode;
use tollgate_testkit::{Link, TestResponse, redis_addr, redis_url};

fn config(url: &str, limit: u64, shared: bool) -> String {
    let prefix = format!("tollgate-test:{}:", uuid::Uuid::now_v7());
    format!(
        "[redis]\nurl = \"{url}\"\nkey_prefix = \"{prefix}\"\ntimeout = \"2s\"\n\
         [[rate_limits]]\nid = \"rph\"\nlimit = {limit}\nper = \"requests\"\nwindow = \"1h\"\nshared = {shared}\n\
         dimensions = [{{ key = \"metadata.user\", mode = \"split\" }}]\n"
    )
}

/// Sends `n` requests for `user` through each gateway at once; the statuses, in no particular order.
async fn burst(gateways: &[&Harness], user: &str, n: usize) -> Vec<TestResponse> {
    let metadata = format!("{{\"user\":\"{user}\"}}");
    let body = chat_body("gpt-4o-mini", false);
    let sends = gateways.iter().flat_map(|g| (0..n).map(|_| (*g, metadata.clone(), body.clone())));
    let futures = sends.map(|(g, metadata, body)| async move {
        g.client.post_json("/v1/chat/completions", &[("cf-aig-metadata", metadata.as_str())], &body).await
    });
    futures_util::future::join_all(futures).await
}

fn admitted(responses: &[TestResponse]) -> usize {
    for response in responses {
        assert!(
            response.status == StatusCode::OK || response.status == StatusCode::TOO_MANY_REQUESTS,
            "every request is answered or refused by the limit: {} {}",
            response.status,
            response.text()
        );
    }
    responses.iter().filter(|r| r.status == StatusCode::OK).count()
}

#[tokio::test]
async fn two_replicas_on_one_redis_admit_the_limit_together() {
    let toml = config(&redis_url(), 5, true);
    let (a, b) = (Harness::with_config(&toml).await, Harness::with_config(&toml).await);
    let responses = burst(&[&a, &b], "ann", 8).await;
    assert_eq!(admitted(&responses), 5, "5 of 16 across both replicas");
    let refused = responses.iter().find(|r| r.status == StatusCode::TOO_MANY_REQUESTS).unwrap();
    let error = refused.json();
    assert_eq!(error["error"]["code"], "rate_limited");
    assert_eq!(error["error"]["rule"], "rph");
    assert_eq!(error["error"]["bucket"], "metadata.user=ann");
    // GCRA over 1 h with a burst of 5: the next cell frees after 1h / 5 = 720 s (Redis's clock).
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((700..=720).contains(&retry), "retry-after {retry}");
    // Another bucket of the same rule is its own.
    assert_eq!(admitted(&burst(&[&a, &b], "bob", 2).await), 4);
    for gateway in [&a, &b] {
        let stats = gateway.gateway.shared_rates.as_ref().unwrap().stats();
        assert_eq!(stats.fallbacks.load(Ordering::Relaxed), 0);
        assert!(stats.checked.load(Ordering::Relaxed) >= 10);
    }
}

#[tokio::test]
async fn per_replica_limits_admit_the_limit_on_each() {
    let toml = config(&redis_url(), 5, false);
    let (a, b) = (Harness::with_config(&toml).await, Harness::with_config(&toml).await);
    assert!(a.gateway.shared_rates.is_none());
    assert_eq!(admitted(&burst(&[&a, &b], "ann", 8).await), 10, "5 on each replica: what sharing fixes");
}

#[tokio::test]
async fn with_redis_away_each_replica_counts_its_share_and_no_request_fails() {
    let link = Link::start(redis_addr()).await;
    let toml = config(&format!("redis://127.0.0.1:{}", link.port()), 10, true);
    let (a, b) = (Harness::with_config(&toml).await, Harness::with_config(&toml).await);
    for gateway in [&a, &b] {
        gateway.gateway.shared_rates.as_ref().unwrap().beat().await.unwrap();
    }
    // Both replicas are in the set now: each one's share is 10 / 2.
    let replicas = a.gateway.shared_rates.as_ref().unwrap().beat().await.unwrap();
    assert_eq!(replicas, 2);
    a.gateway.rates.set_replicas(replicas);
    assert_eq!(admitted(&burst(&[&a], "ann", 2).await), 2);

    link.down();
    let responses = burst(&[&a], "ann", 10).await;
    assert_eq!(admitted(&responses), 5, "a's share of the limit, counted here while Redis is away");
    let stats = a.gateway.shared_rates.as_ref().unwrap().stats();
    assert!(stats.fallbacks.load(Ordering::Relaxed) >= 10);
    assert!(!stats.ok() && stats.last_error().is_some(), "the fallback is visible");

    // Back: within a few retries (each replica waits a second after a failure) the checks go to Redis again,
    // where 2 of the 10 were counted before it went away.
    link.up();
    let b_stats = b.gateway.shared_rates.as_ref().unwrap().stats();
    for _ in 0..100 {
        let before = b_stats.checked.load(Ordering::Relaxed);
        burst(&[&b], "probe", 1).await;
        if b_stats.checked.load(Ordering::Relaxed) > before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(b_stats.ok(), "Redis answers again: {:?}", b_stats.last_error());
    assert_eq!(admitted(&burst(&[&b], "ann", 10).await), 8, "Redis kept the 2 admitted before it went away");
}
