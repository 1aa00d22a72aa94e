//! The admin server's defences on a real socket: without a token it answers only loopback names and never a
//! cross-site browser request; mutations need a JSON body; a slow request head or body is cut.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tollgate_accounting::PriceCatalog;
use tollgate_admin::{AdminState, ServeOptions};
use tollgate_config::Config;
use tollgate_proxy::metrics::{MeteredSink, Metrics};
use tollgate_proxy::{Gateway, LogSink};
use tollgate_testkit::{TestClient, TestResponse};

const TOKEN: &str = "admin-token-xyz";
const JSON: (&str, &str) = ("content-type", "application/json");
const RULE: &str = r#"{"id": "x", "budget_usd": 1.0, "window": "1d"}"#;

struct Admin {
    client: TestClient,
    addr: std::net::SocketAddr,
    shutdown: CancellationToken,
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// An admin server with no database (the store endpoints answer 503 once the middleware lets a request by).
async fn start(token: Option<&str>, options: ServeOptions) -> Admin {
    let toml = match token {
        Some(token) => format!("[admin]\ntoken = \"{token}\"\n"),
        None => String::new(),
    };
    let config = Arc::new(Config::from_toml(&toml, &[]).unwrap());
    let metrics = Arc::new(Metrics::new(config.providers.keys().map(String::as_str)));
    let sink = MeteredSink { metrics: metrics.clone(), inner: LogSink };
    let catalog = Arc::new(PriceCatalog::bundled().unwrap());
    let gateway = Arc::new(Gateway::new(config.clone(), catalog, Arc::new(sink)));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AdminState { config, gateway, metrics, started: Instant::now(), store: None, ingest: None };
    let shutdown = CancellationToken::new();
    tokio::spawn(tollgate_admin::serve_with(listener, state, shutdown.clone(), options));
    Admin { client: TestClient::new(format!("http://{addr}")), addr, shutdown }
}

async fn get(admin: &Admin, path: &str, headers: &[(&str, &str)]) -> TestResponse {
    admin.client.request(Method::GET, path, headers, "").await
}

fn assert_refused(response: &TestResponse, status: StatusCode, code: &str, mentions: &str) {
    assert_eq!(response.status, status, "{}", response.text());
    let body = response.json();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains(mentions), "{body}");
}

#[tokio::test]
async fn s11_without_a_token_only_loopback_host_names_are_answered() {
    let admin = start(None, ServeOptions::default()).await;
    // The client's own Host (127.0.0.1:port) and the other loopback names, any port.
    assert_eq!(get(&admin, "/config", &[]).await.status, StatusCode::OK);
    for host in ["localhost", "localhost:8081", "127.0.0.1:1", "[::1]:8081", "LocalHost:9"] {
        assert_eq!(get(&admin, "/config", &[("host", host)]).await.status, StatusCode::OK, "{host}");
    }
    // DNS rebinding: a page on attacker.example whose name now resolves to 127.0.0.1.
    for host in ["attacker.example", "attacker.example:8081", "localhost.attacker.example", "127.0.0.1.nip.io"] {
        for path in ["/config", "/api/logs", "/api/spend-limits", "/nope"] {
            let response = get(&admin, path, &[("host", host)]).await;
            assert_refused(&response, StatusCode::FORBIDDEN, "forbidden", "loopback");
        }
        let response = admin.client.request(Method::POST, "/admin/recompute", &[("host", host)], "").await;
        assert_eq!(response.status, StatusCode::FORBIDDEN, "{host}");
    }
    // The public paths stay reachable, as they are with a token.
    for path in ["/status", "/metrics"] {
        let response = get(&admin, path, &[("host", "attacker.example")]).await;
        assert_eq!(response.status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn s11_without_a_token_cross_site_requests_are_refused() {
    let admin = start(None, ServeOptions::default()).await;
    for (name, value) in [
        ("origin", "http://attacker.example"),
        ("origin", "null"),
        ("origin", "https://localhost.attacker.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let response = get(&admin, "/config", &[(name, value)]).await;
        assert_refused(&response, StatusCode::FORBIDDEN, "forbidden", "without admin.token");
        // A form post from the attacker's page, simple content type or not.
        let response = admin
            .client
            .request(Method::POST, "/api/spend-limits", &[(name, value), ("content-type", "text/plain")], RULE)
            .await;
        assert_eq!(response.status, StatusCode::FORBIDDEN, "{name}: {value}");
    }
    for (name, value) in [
        ("origin", "http://localhost:3000"),
        ("origin", "http://127.0.0.1:8081"),
        ("sec-fetch-site", "same-origin"),
        ("sec-fetch-site", "none"),
    ] {
        assert_eq!(get(&admin, "/config", &[(name, value)]).await.status, StatusCode::OK, "{name}: {value}");
    }
}

#[tokio::test]
async fn s11_mutations_need_a_json_body_with_or_without_a_token() {
    let open = start(None, ServeOptions::default()).await;
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
        for (method, path) in [
            (Method::POST, "/api/spend-limits"),
            (Method::PUT, "/api/spend-limits/x"),
            (Method::DELETE, "/api/spend-limits/x"),
        ] {
            let response = open.client.request(method.clone(), path, &[("content-type", content_type)], RULE).await;
            assert_refused(&response, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "application/json");
        }
    }
    let response = open.client.request(Method::POST, "/api/spend-limits", &[], RULE).await;
    assert_eq!(response.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "no content type at all");
    // JSON (any case, with parameters) passes the middleware and reaches the handler (503: no database here);
    // so does a mutation without a body.
    for content_type in ["application/json", "Application/JSON; charset=utf-8"] {
        let response =
            open.client.request(Method::POST, "/api/spend-limits", &[("content-type", content_type)], RULE).await;
        assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE, "{content_type}");
    }
    let response = open.client.request(Method::POST, "/admin/recompute", &[], "").await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);

    let closed = start(Some(TOKEN), ServeOptions::default()).await;
    let bearer = format!("Bearer {TOKEN}");
    let auth = ("authorization", bearer.as_str());
    let response =
        closed.client.request(Method::POST, "/api/spend-limits", &[auth, ("content-type", "text/plain")], RULE).await;
    assert_refused(&response, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "application/json");
    // Without the token the answer stays 401, whatever the body.
    let response =
        closed.client.request(Method::POST, "/api/spend-limits", &[("content-type", "text/plain")], RULE).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    let response = closed.client.request(Method::POST, "/api/spend-limits", &[auth, JSON], RULE).await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn s11_with_a_token_any_host_name_is_answered() {
    let admin = start(Some(TOKEN), ServeOptions::default()).await;
    let bearer = format!("Bearer {TOKEN}");
    for headers in [
        &[("host", "tollgate-admin.internal:8081")][..],
        &[("origin", "https://dashboard.example")][..],
        &[("sec-fetch-site", "cross-site")][..],
    ] {
        let mut headers = headers.to_vec();
        headers.push(("authorization", bearer.as_str()));
        assert_eq!(get(&admin, "/config", &headers).await.status, StatusCode::OK, "{headers:?}");
    }
}

/// Reads from a raw connection until the server closes it or `deadline` passes; returns what came and whether
/// the connection was closed.
async fn read_until_closed(stream: &mut TcpStream, deadline: Duration) -> (String, bool) {
    let mut received = Vec::new();
    let closed = tokio::time::timeout(deadline, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&received).into_owned(), closed)
}

#[tokio::test]
async fn s20_a_request_head_that_never_ends_is_cut() {
    let options = ServeOptions { header_read_timeout: Duration::from_millis(300), ..ServeOptions::default() };
    let admin = start(None, options).await;
    let mut stream = TcpStream::connect(admin.addr).await.unwrap();
    let started = Instant::now();
    stream.write_all(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ").await.unwrap();
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(closed, "the connection is still open after 5s");
    assert!(started.elapsed() >= Duration::from_millis(250), "closed before the deadline: {:?}", started.elapsed());
}

#[tokio::test]
async fn s20_a_trickled_body_gets_408() {
    let options = ServeOptions { body_timeout: Duration::from_millis(300), ..ServeOptions::default() };
    let admin = start(None, options).await;
    let mut stream = TcpStream::connect(admin.addr).await.unwrap();
    let head = "POST /api/spend-limits HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                Content-Length: 100\r\n\r\n{";
    stream.write_all(head.as_bytes()).await.unwrap();
    let (received, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(received.starts_with("HTTP/1.1 408"), "{received}");
    assert!(received.contains("request_timeout"), "{received}");
    assert!(closed, "the connection is closed after the 408");

    // A body that arrives in time is served as before.
    let response = admin.client.request(Method::POST, "/api/spend-limits", &[JSON], RULE).await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn openapi_lists_the_refusals_once_as_shared_responses() {
    let admin = start(None, ServeOptions::default()).await;
    let doc = get(&admin, "/openapi.json", &[]).await.json();
    let shared = &doc["components"]["responses"];
    assert!(shared["Forbidden"].is_object() && shared["UnsupportedMediaType"].is_object(), "{shared}");
    let post = &doc["paths"]["/api/spend-limits"]["post"]["responses"];
    assert_eq!(post["403"]["$ref"], "#/components/responses/Forbidden");
    assert_eq!(post["415"]["$ref"], "#/components/responses/UnsupportedMediaType");
    let get = &doc["paths"]["/config"]["get"]["responses"];
    assert_eq!(get["403"]["$ref"], "#/components/responses/Forbidden");
    assert!(get["415"].is_null(), "a GET takes no body");
}
