//! Two `tollgate serve` processes on one Redis (`TOLLGATE_TEST_REDIS`, default `redis://127.0.0.1:6379`, reached
//! through a link the test can cut): they share cache hits, hold one shared rate limit together, and keep serving
//! when Redis goes away. A Redis that cannot be reached fails this test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use std::time::{Duration, Instant};

use common::Gateway;
use http::StatusCode;
use serde_json::{Value, json};
use tollgate_testkit::{FakeProvider, Link, TestClient, redis_addr};

fn config(fake: &FakeProvider, redis_port: u16, prefix: &str) -> String {
    format!(
        "[database]\nurl = \"sqlite://tollgate-{}.db\"\nflush_interval = \"200ms\"\n\
         [providers.openai]\nbase_url = \"{}/v1\"\napi_key = \"sk-e2e\"\n\
         [cache]\nenabled = true\nbackend = \"redis\"\n\
         [redis]\nurl = \"redis://127.0.0.1:{redis_port}\"\nkey_prefix = \"{prefix}\"\ntimeout = \"1s\"\n\
         [[rate_limits]]\nid = \"shared-rph\"\nlimit = 6\nper = \"requests\"\nwindow = \"1h\"\nshared = true\n\
         dimensions = [{{ key = \"metadata.user\", mode = \"split\" }}]\n",
        unique(),
        fake.url()
    )
}

/// A name no other run or process of this test uses (databases, key prefixes).
fn unique() -> String {
    format!("{}-{}", std::process::id(), common::free_port())
}

async fn ask(gateway: &Gateway, user: &str, question: &str) -> (StatusCode, Option<String>) {
    let metadata = json!({ "user": user }).to_string();
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": question}]});
    let response = TestClient::new(gateway.proxy.clone())
        .post_json("/v1/chat/completions", &[("cf-aig-metadata", metadata.as_str())], &body)
        .await;
    (response.status, response.header("cf-aig-cache-status").map(str::to_owned))
}

async fn admin_json(gateway: &Gateway, path: &str) -> Value {
    TestClient::new(gateway.admin.clone()).request(http::Method::GET, path, &[], "").await.json()
}

/// Polls `check` every 100 ms until it holds, for at most `within`.
async fn eventually<F: std::future::Future<Output = bool>>(within: Duration, mut check: impl FnMut() -> F) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_redis_share_hits_and_one_rate_limit_and_outlive_redis() {
    let fake = FakeProvider::start().await;
    let link = Link::start(redis_addr()).await;
    let dir = common::tempdir();
    let prefix = format!("tollgate-e2e:{}:", unique());
    let a = Gateway::start(&dir, &config(&fake, link.port(), &prefix));
    let b = Gateway::start(&dir, &config(&fake, link.port(), &prefix));

    // Shared hits: a miss on A is a hit on B, and B never calls the upstream.
    assert_eq!(ask(&a, "cache", "hello").await, (StatusCode::OK, Some("MISS".into())));
    assert!(
        eventually(Duration::from_secs(5), || async { ask(&b, "cache", "hello").await.1.as_deref() == Some("HIT") })
            .await,
        "B is served A's answer from Redis"
    );
    assert_eq!(fake.requests().len(), 1, "one upstream call for both processes");
    // The hit is a log row of its own, counted in /spend (after the 200 ms flush).
    assert!(
        eventually(Duration::from_secs(5), || async {
            admin_json(&b, "/spend").await["rows"][0]["cached_requests"].as_u64().unwrap_or(0) >= 1
        })
        .await,
        "B's /spend counts its cached answers"
    );

    // One shared limit: 6 per hour for user "r" across both processes, however the requests are spread.
    let sends = (0..16).map(|i| {
        let gateway = if i % 2 == 0 { &a } else { &b };
        async move { ask(gateway, "r", &format!("question {i}")).await.0 }
    });
    let statuses = futures_util::future::join_all(sends).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK || *s == StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 6, "{statuses:?}");

    // Both processes are in the replica set (A's first beat ran before B started: wait for its next).
    for gateway in [&a, &b] {
        assert!(
            eventually(Duration::from_secs(8), || async {
                let status = admin_json(gateway, "/status").await;
                status["shared_rate_limits"]["replicas"] == 2 && status["shared_rate_limits"]["mode"] == "redis"
            })
            .await,
            "{}",
            admin_json(gateway, "/status").await
        );
    }

    // Redis goes away: every request is still answered (a share of 6 / 2 replicas each, the cache bypassed).
    link.down();
    let mut admitted = 0;
    for i in 0..6 {
        let (status, cache) = ask(&a, "r2", &format!("outage {i}")).await;
        assert!(status == StatusCode::OK || status == StatusCode::TOO_MANY_REQUESTS, "{status}");
        if status == StatusCode::OK {
            assert_eq!(cache, None, "the cache is bypassed while Redis is away");
            admitted += 1;
        }
    }
    assert_eq!(admitted, 3, "A's share of the shared limit");
    let status = admin_json(&a, "/status").await;
    assert_eq!(status["shared_rate_limits"]["mode"], "fallback", "{status}");
    assert_eq!(status["cache"]["ok"], false, "{status}");
    let metrics = TestClient::new(a.admin.clone()).request(http::Method::GET, "/metrics", &[], "").await.text();
    let fallbacks = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tollgate_rate_limit_shared_checks_total{result=\"fallback\"} "))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(fallbacks.parse::<u64>().unwrap() >= 6, "{metrics}");
    assert_eq!(a.stop(), Some(0));
    assert_eq!(b.stop(), Some(0));
}
