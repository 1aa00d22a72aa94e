//! End to end: the real `tollgate` binary, its exit codes, a request through it, and SIGTERM under load.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use std::process::Command;
use std::time::Duration;

use http::{Method, StatusCode};
use tollgate_testkit::{FakeProvider, Gate, Plan, TestClient, next_data};

use common::{BIN, free_port};

#[test]
fn check_config_prints_the_effective_config_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.toml");
    std::fs::write(
        &path,
        "[gateway]\nauth_token = \"${GW_TOKEN_E2E}\"\n[providers.openai]\napi_key = \"sk-live-123\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .env("GW_TOKEN_E2E", "gw-secret-456")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(printed.contains("[redacted]"));
    assert!(!printed.contains("sk-live-123") && !printed.contains("gw-secret-456"), "{printed}");
    assert!(printed.contains("listen = \"0.0.0.0:8080\""));
}

#[test]
fn s21_check_config_prints_neither_a_url_password_nor_a_query_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.toml");
    std::fs::write(
        &path,
        r#"
[database]
url = "postgres://tollgate@127.0.0.1:5432/tollgate?password=pg-query-secret"
[providers.openai]
base_url = "https://user:basic-auth-secret@llm-proxy.internal/v1"
zdr_base_url = "https://zdr:zdr-secret@zdr.internal/v1"
"#,
    )
    .unwrap();
    let out = Command::new(BIN).args(["check-config", "--config"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8(out.stdout).unwrap();
    for secret in ["pg-query-secret", "basic-auth-secret", "zdr-secret"] {
        assert!(!printed.contains(secret), "{secret} printed: {printed}");
    }
    assert!(printed.contains("postgres://tollgate@127.0.0.1:5432/tollgate?password=[redacted]"), "{printed}");
    assert!(printed.contains("https://user:[redacted]@llm-proxy.internal/v1"), "{printed}");

    // A query in a base_url is refused, and the refusal does not print it either.
    std::fs::write(&path, "[providers.openai]\nbase_url = \"https://api.example/v1?api-key=q-secret\"\n").unwrap();
    let out = Command::new(BIN).args(["check-config", "--config"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("providers.openai.base_url") && !stderr.contains("q-secret"), "{stderr}");
}

#[test]
fn s11_check_config_refuses_an_empty_gateway_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.toml");
    std::fs::write(&path, "[gateway]\nauth_token = \"${GW_TOKEN_EMPTY_E2E}\"\n").unwrap();
    let out =
        Command::new(BIN).args(["check-config", "--config"]).arg(&path).env("GW_TOKEN_EMPTY_E2E", "").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("gateway.auth_token") && stderr.contains("GW_TOKEN_EMPTY_E2E"), "{stderr}");
}

/// Writes a config listening on a free port, followed by `rest`, and checks that `check-config` and `serve` both
/// exit 1 with every one of `named` in stderr; returns the port.
fn refused_before_listening(rest: &str, named: &[&str]) -> u16 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let port = free_port();
    std::fs::write(&path, format!("[server]\nlisten = \"127.0.0.1:{port}\"\n{rest}")).unwrap();
    for command in ["check-config", "serve"] {
        let out = Command::new(BIN).args([command, "--config"]).arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{command}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        for text in named {
            assert!(stderr.contains(text), "{command}: {stderr}");
        }
    }
    port
}

#[test]
fn a_bad_config_exits_1_naming_every_key_before_listening() {
    refused_before_listening("max_request_body = \"lots\"\nbogus = 1\n", &["server.max_request_body", "bogus"]);
    // An environment override is checked the same way.
    let out = Command::new(BIN).arg("check-config").env("TOLLGATE_GATEWAY__MAX_ATTEMPTS", "12").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("gateway.max_attempts"));
    let out = Command::new(BIN).arg("check-config").env("TOLLGATE_SERVER__LISTEN", "127.0.0.1:9").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("127.0.0.1:9"));
}

#[test]
fn a_bad_stats_window_exits_1_naming_its_key_before_listening() {
    let port = refused_before_listening("[stats]\nwindow = \"fortnight\"\n", &["stats.window", "fortnight"]);
    // Nothing was left listening on the configured port.
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
}

#[tokio::test]
async fn serve_proxies_and_sigterm_drains_an_in_flight_stream_then_exits_0() {
    let fake = FakeProvider::start().await;
    let dir = common::tempdir();
    let config = format!("[providers.openai]\nbase_url = \"{}/v1\"\napi_key = \"sk-stored-e2e\"\n", fake.url());
    let running = common::Gateway::start(&dir, &config);
    let client = TestClient::new(running.proxy.clone());
    let body = serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let response = client.post_json("/v1/chat/completions", &[], &body).await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(response.header("cf-aig-log-id").is_some());
    assert_eq!(fake.last_request().headers["authorization"], "Bearer sk-stored-e2e");

    let gate = Gate::new();
    fake.push(Plan { gate: Some(gate.clone()), ..Plan::default() });
    let mut stream_body = body.clone();
    stream_body["stream"] = serde_json::json!(true);
    let mut response = client.send(Method::POST, "/v1/chat/completions", &[], stream_body.to_string()).await;
    let _first = next_data(response.body_mut()).await.unwrap().unwrap();

    let status = Command::new("kill").args(["-TERM", &running.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut running = running;
    assert!(running.child.try_wait().unwrap().is_none(), "exited with a stream in flight");
    gate.open();
    let mut rest = Vec::new();
    while let Some(chunk) = next_data(response.body_mut()).await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert!(String::from_utf8_lossy(&rest).ends_with("data: [DONE]\n\n"));
    let logs = running.logs.clone();
    assert_eq!(running.wait_exit(), Some(0));
    // Give the reader thread the last lines, then check that no secret was ever logged.
    std::thread::sleep(Duration::from_millis(100));
    let logs = logs.lock().unwrap();
    assert!(logs.iter().any(|line| line.contains("tollgate stopped")), "the exit was logged");
    for line in logs.iter() {
        let _: serde_json::Value = serde_json::from_str(line).expect("log lines are JSON");
        assert!(!line.contains("sk-stored-e2e"), "a secret reached the log: {line}");
    }
}
