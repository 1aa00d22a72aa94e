//! The admin server on a real socket, in front of a real gateway and the fake provider.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tollgate_accounting::PriceCatalog;
use tollgate_admin::AdminState;
use tollgate_config::Config;
use tollgate_proxy::metrics::{MeteredSink, Metrics};
use tollgate_proxy::{Gateway, LogSink};
use tollgate_testkit::{FakeProvider, TestClient};

const ADMIN_TOKEN: &str = "admin-token-xyz";
const SECRETS: [&str; 4] = [ADMIN_TOKEN, "gw-token-abc", "sk-provider-secret", "db-pass-123"];

struct Stack {
    _fake: FakeProvider,
    proxy: TestClient,
    admin: TestClient,
}

async fn start(public_metrics: bool) -> Stack {
    let fake = FakeProvider::start().await;
    let toml = format!(
        r#"
[admin]
token = "{ADMIN_TOKEN}"
public_metrics = {public_metrics}
[gateway]
auth_token = "gw-token-abc"
[database]
url = "postgres://tollgate:db-pass-123@127.0.0.1:5432/tollgate"
[providers.openai]
base_url = "{}/v1"
api_key = "sk-provider-secret"
[[spend_limits]]
id = "daily"
budget_usd = 10.0
window = "1d"
dimensions = [ {{ key = "metadata.user", mode = "split" }} ]
"#,
        fake.url()
    );
    let config = Arc::new(Config::from_toml(&toml, &[]).unwrap());
    let metrics = Arc::new(Metrics::new(config.providers.keys().map(String::as_str)));
    let sink = MeteredSink { metrics: metrics.clone(), inner: LogSink };
    let catalog = Arc::new(PriceCatalog::bundled().unwrap());
    let gateway = Arc::new(Gateway::new(config.clone(), catalog, Arc::new(sink)));
    let shutdown = CancellationToken::new();
    let proxy_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy_listener.local_addr().unwrap());
    tokio::spawn(tollgate_proxy::serve(proxy_listener, gateway.clone(), shutdown.clone(), Duration::from_secs(1)));
    let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_url = format!("http://{}", admin_listener.local_addr().unwrap());
    let state = AdminState { config, gateway, metrics, started: Instant::now(), store: None, ingest: None };
    tokio::spawn(tollgate_admin::serve(admin_listener, state, shutdown));
    Stack { _fake: fake, proxy: TestClient::new(proxy_url), admin: TestClient::new(admin_url) }
}

fn bearer() -> String {
    format!("Bearer {ADMIN_TOKEN}")
}

#[tokio::test]
async fn every_endpoint_but_the_public_ones_needs_the_token() {
    let stack = start(true).await;
    for path in
        ["/config", "/api/spend-limits", "/api/spend-limits/daily", "/api/spend-limits/daily/usage", "/openapi.json"]
    {
        let response = stack.admin.request(Method::GET, path, &[], "").await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(response.json()["error"]["code"], "unauthorized");
        let response = stack.admin.request(Method::GET, path, &[("authorization", "Bearer wrong")], "").await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{path}");
        let response = stack.admin.request(Method::GET, path, &[("authorization", &bearer())], "").await;
        assert_eq!(response.status, StatusCode::OK, "{path}: {}", response.text());
    }
    for path in ["/status", "/metrics"] {
        let response = stack.admin.request(Method::GET, path, &[], "").await;
        assert_eq!(response.status, StatusCode::OK, "{path} is public with public_metrics");
    }
    let response = stack.admin.request(Method::GET, "/nope", &[("authorization", &bearer())], "").await;
    assert_eq!(response.status, StatusCode::NOT_FOUND);

    let private = start(false).await;
    for path in ["/status", "/metrics"] {
        let response = private.admin.request(Method::GET, path, &[], "").await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{path} is private without public_metrics");
    }
}

#[tokio::test]
async fn status_reports_health_version_and_uptime() {
    let stack = start(true).await;
    let status = stack.admin.request(Method::GET, "/status", &[], "").await.json();
    assert_eq!(status["status"], "ok");
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert!(status["uptime_s"].is_u64());
    assert!(status["database"]["kind"].is_string());
    assert!(status["last_ingest"].is_object());
}

#[tokio::test]
async fn no_admin_response_contains_a_secret() {
    let stack = start(true).await;
    let body = serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let response = stack
        .proxy
        .post_json(
            "/v1/chat/completions",
            &[("authorization", "Bearer gw-token-abc"), ("cf-aig-metadata", r#"{"user":"u1"}"#)],
            &body,
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    for path in
        ["/status", "/metrics", "/config", "/api/spend-limits", "/api/spend-limits/daily/usage", "/openapi.json"]
    {
        let response = stack.admin.request(Method::GET, path, &[("authorization", &bearer())], "").await;
        assert_eq!(response.status, StatusCode::OK, "{path}");
        let text = response.text();
        for secret in SECRETS {
            assert!(!text.contains(secret), "{path} leaks {secret}");
        }
    }
    let config = stack.admin.request(Method::GET, "/config", &[("authorization", &bearer())], "").await.json();
    assert_eq!(config["providers"]["openai"]["api_key"], "[redacted]");
    assert_eq!(config["admin"]["token"], "[redacted]");
}

#[tokio::test]
async fn spend_limit_usage_shows_each_buckets_money_and_window() {
    let stack = start(true).await;
    let body =
        serde_json::json!({"model": "gpt-4o-mini", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    for user in ["u1", "u2"] {
        let metadata = format!(r#"{{"user":"{user}"}}"#);
        let response = stack
            .proxy
            .post_json(
                "/v1/chat/completions",
                &[("authorization", "Bearer gw-token-abc"), ("cf-aig-metadata", &metadata)],
                &body,
            )
            .await;
        assert_eq!(response.status, StatusCode::OK);
    }
    let usage =
        stack.admin.request(Method::GET, "/api/spend-limits/daily/usage", &[("authorization", &bearer())], "").await;
    let usage = usage.json();
    let buckets = usage["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 2, "{usage}");
    for bucket in buckets {
        assert!(bucket["bucket"].as_str().unwrap().starts_with("metadata.user=u"));
        assert!(bucket["spent_usd"].as_f64().unwrap() > 0.0);
        assert_eq!(bucket["budget_usd"], 10.0);
        let remaining = bucket["remaining_usd"].as_f64().unwrap();
        assert!(remaining < 10.0 && remaining > 9.9);
        assert!(bucket["window_start"].as_str().unwrap().ends_with("T00:00:00Z"));
    }
    let missing =
        stack.admin.request(Method::GET, "/api/spend-limits/nope/usage", &[("authorization", &bearer())], "").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let list = stack.admin.request(Method::GET, "/api/spend-limits", &[("authorization", &bearer())], "").await.json();
    assert_eq!(list["spend_limits"][0]["id"], "daily");
    assert_eq!(list["spend_limits"][0]["source"], "file");
}

/// Checks the text exposition format line by line: every sample belongs to a family declared by HELP and
/// TYPE, names carry the prefix, label values are quoted, values parse, histograms are cumulative.
#[tokio::test]
async fn metrics_are_valid_prometheus_text_with_bounded_labels() {
    let stack = start(true).await;
    let body = serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let response = stack
        .proxy
        .post_json(
            "/v1/chat/completions",
            &[("authorization", "Bearer gw-token-abc"), ("cf-aig-metadata", r#"{"user":"secret-user-id"}"#)],
            &body,
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let text = stack.admin.request(Method::GET, "/metrics", &[], "").await.text();
    assert!(!text.contains("secret-user-id"), "metadata values never become labels");
    let mut families = std::collections::HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            families.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        value.parse::<f64>().unwrap_or_else(|_| panic!("bad value in {line}"));
        let name = series.split('{').next().unwrap();
        assert!(name.starts_with("tollgate_"), "{line}");
        let family = name.trim_end_matches("_bucket").trim_end_matches("_sum").trim_end_matches("_count");
        assert!(families.contains_key(name) || families.contains_key(family), "{line} has no TYPE");
        if let Some(labels) = series.strip_prefix(name)
            && !labels.is_empty()
        {
            assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
            for pair in labels[1..labels.len() - 1].split(',') {
                let (key, value) = pair.split_once('=').unwrap();
                assert!(key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{line}");
                assert!(value.starts_with('"') && value.ends_with('"'), "{line}");
            }
        }
    }
    assert!(text.contains("tollgate_requests_total{provider=\"openai\",status=\"2xx\"} 1"), "{text}");
    assert!(text.contains("tollgate_tokens_total{provider=\"openai\",kind=\"output\"} 5"));
    assert!(text.contains("tollgate_request_duration_seconds_count 1"));
    assert!(text.contains("tollgate_spend_limit_remaining_usd{rule=\"daily\"}"));
    assert!(text.contains("tollgate_process_resident_memory_bytes"));
}

#[tokio::test]
async fn openapi_describes_the_api() {
    let stack = start(true).await;
    let doc = stack.admin.request(Method::GET, "/openapi.json", &[("authorization", &bearer())], "").await.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in ["/status", "/metrics", "/config", "/api/spend-limits", "/api/spend-limits/{id}/usage"] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
}

#[tokio::test]
async fn delete_api_cache_drops_one_entry_by_its_log_key_or_all_of_them() {
    let stack = start(true).await;
    let auth = [("authorization", bearer()), ("content-type", "application/json".to_string())];
    let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let proxy_auth = [("cf-aig-authorization", "Bearer gw-token-abc"), ("cf-aig-cache-ttl", "600")];
    let body = serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let miss = stack.proxy.post_json("/v1/chat/completions", &proxy_auth, &body).await;
    assert_eq!(miss.header("cf-aig-cache-status"), Some("MISS"));
    let hit = stack.proxy.post_json("/v1/chat/completions", &proxy_auth, &body).await;
    assert_eq!(hit.header("cf-aig-cache-status"), Some("HIT"));
    let metrics = stack.admin.request(Method::GET, "/metrics", &[], "").await.text();
    assert!(metrics.contains("tollgate_cache_requests_total{result=\"hit\"} 1"), "{metrics}");
    assert!(metrics.contains("tollgate_cache_requests_total{result=\"miss\"} 1"), "{metrics}");
    let status = stack.admin.request(Method::GET, "/status", &[], "").await.json();
    assert_eq!(status["cache"]["backend"], "memory");
    assert_eq!(status["cache"]["ok"], true);

    let bad = stack.admin.request(Method::DELETE, "/api/cache/not-a-key", &auth, "").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let absent = stack.admin.request(Method::DELETE, &format!("/api/cache/{}", "0".repeat(64)), &auth, "").await;
    assert_eq!(absent.status, StatusCode::NOT_FOUND);
    let cleared = stack.admin.request(Method::DELETE, "/api/cache", &auth, "").await;
    assert_eq!(cleared.status, StatusCode::OK);
    assert_eq!(cleared.json()["deleted"], 1);
    let again = stack.proxy.post_json("/v1/chat/completions", &proxy_auth, &body).await;
    assert_eq!(again.header("cf-aig-cache-status"), Some("MISS"), "the emptied cache misses");
    let unauthorized = stack.admin.request(Method::DELETE, "/api/cache", &[], "").await;
    assert_eq!(unauthorized.status, StatusCode::UNAUTHORIZED);
}
