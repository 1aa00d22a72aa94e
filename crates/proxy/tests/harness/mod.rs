//! A gateway on a real socket in front of the fake provider, with a tap that records every end.

#![allow(dead_code, reason = "each test file uses part of the harness")]
#![allow(clippy::unwrap_used, clippy::panic, clippy::manual_assert, reason = "test support fails by panicking")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tollgate_accounting::PriceCatalog;
use tollgate_config::Config;
use tollgate_proxy::{Gateway, RecordSink, UsageRecord};
use tollgate_testkit::{FakeProvider, TestClient};

/// Collects every record the gateway produces.
#[derive(Default)]
pub struct Recorder {
    pub ended: Mutex<Vec<UsageRecord>>,
    notify: Notify,
}

impl Recorder {
    /// Waits until `n` requests have been recorded (bounded, so a bug fails instead of hanging).
    pub async fn wait_for(&self, n: usize) -> Vec<UsageRecord> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let notified = self.notify.notified();
            {
                let ended = self.ended.lock().unwrap();
                if ended.len() >= n {
                    return ended.clone();
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("only {} of {n} requests were recorded", self.ended.lock().unwrap().len());
            }
        }
    }
}

struct RecorderSink(Arc<Recorder>);

impl RecordSink for RecorderSink {
    fn record(&self, record: UsageRecord) {
        self.0.ended.lock().unwrap().push(record);
        self.0.notify.notify_waiters();
    }
}

pub struct Harness {
    pub fake: FakeProvider,
    pub url: String,
    pub client: TestClient,
    pub recorder: Arc<Recorder>,
    pub shutdown: CancellationToken,
    pub server: tokio::task::JoinHandle<()>,
    pub gateway: Arc<Gateway>,
}

/// Every built-in provider (and a custom one) pointed at the fake, each under its own path prefix so tests
/// can see where a request went, each with its own stored key.
pub fn providers_toml(fake: &str) -> String {
    format!(
        r#"
[providers.openai]
base_url = "{fake}/openai/v1"
api_key = "sk-openai-stored"
zdr_base_url = "{fake}/openai-zdr/v1"
[providers.anthropic]
base_url = "{fake}/anthropic"
api_key = "sk-anthropic-stored"
[providers.google-ai-studio]
base_url = "{fake}/google"
api_key = "google-stored"
[providers.groq]
base_url = "{fake}/groq/openai/v1"
api_key = "groq-stored"
[providers.mistral]
base_url = "{fake}/mistral/v1"
api_key = "mistral-stored"
[providers.deepseek]
base_url = "{fake}/deepseek"
api_key = "deepseek-stored"
[providers.xai]
base_url = "{fake}/xai/v1"
api_key = "xai-stored"
[providers.openrouter]
base_url = "{fake}/openrouter/api/v1"
api_key = "openrouter-stored"
[providers.azure-openai]
base_url = "{fake}/azure/openai/v1"
api_key = "azure-stored"
[providers.ollama]
base_url = "{fake}/ollama/v1"
[providers.vllm]
base_url = "{fake}/vllm/v1"
api_key = "vllm-stored"
[providers.local]
kind = "openai-compatible"
base_url = "{fake}/local/v1"
api_key = "local-stored"
hosted = true

[[routes]]
name = "cheap-first"
candidates = ["anthropic/claude-haiku-4-5", "openai/gpt-4o-mini"]
"#
    )
}

impl Harness {
    pub async fn start() -> Self {
        Self::with_config("").await
    }

    /// `extra` is TOML added after the provider sections (no section may repeat).
    pub async fn with_config(extra: &str) -> Self {
        let fake = FakeProvider::start().await;
        let toml = format!("{extra}\n{}", providers_toml(&fake.url()));
        let config = Config::from_toml(&toml, &[]).unwrap_or_else(|e| panic!("{e}"));
        Self::with_parts(fake, config).await
    }

    pub async fn with_parts(fake: FakeProvider, config: Config) -> Self {
        let recorder = Arc::new(Recorder::default());
        let catalog = Arc::new(PriceCatalog::bundled().unwrap());
        let gateway = Arc::new(Gateway::new(Arc::new(config), catalog, Arc::new(RecorderSink(recorder.clone()))));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let server =
            tokio::spawn(tollgate_proxy::serve(listener, gateway.clone(), shutdown.clone(), Duration::from_secs(10)));
        Self { fake, client: TestClient::new(url.clone()), url, recorder, shutdown, server, gateway }
    }
}

pub fn chat_body(model: &str, stream: bool) -> serde_json::Value {
    serde_json::json!({
        "model": model,
        "stream": stream,
        "messages": [{"role": "user", "content": "Say hello"}],
    })
}
