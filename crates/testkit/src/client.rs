//! A small HTTP client for tests: plain HTTP/1.1 or HTTP/2 with prior knowledge, whole or frame by frame.

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

#[derive(Clone)]
pub struct TestClient {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

/// A response read to the end.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl TestClient {
    /// HTTP/1.1 to `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: impl Into<String>) -> Self {
        Self { client: Client::builder(TokioExecutor::new()).build_http(), base: base.into() }
    }

    /// HTTP/2 with prior knowledge (h2c).
    pub fn http2(base: impl Into<String>) -> Self {
        Self { client: Client::builder(TokioExecutor::new()).http2_only(true).build_http(), base: base.into() }
    }

    /// Sends a request and returns the response with its body not yet read.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> http::Response<Incoming> {
        let mut builder = Request::builder().method(method).uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(Full::new(body.into())).unwrap();
        self.client.request(request).await.unwrap()
    }

    /// Sends a request and reads the whole response.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> TestResponse {
        let response = self.send(method, path, headers, body).await;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map(http_body_util::Collected::to_bytes).unwrap_or_default();
        TestResponse { status: parts.status, headers: parts.headers, body }
    }

    /// POSTs a JSON body and reads the response to its end; `None` when no response came (connection refused
    /// or reset before the head).
    pub async fn try_post_json(&self, path: &str, body: &serde_json::Value) -> Option<StatusCode> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .ok()?;
        let response = self.client.request(request).await.ok()?;
        let status = response.status();
        let _ = response.into_body().collect().await;
        Some(status)
    }

    /// POSTs a JSON body with `content-type: application/json`.
    pub async fn post_json(&self, path: &str, headers: &[(&str, &str)], body: &serde_json::Value) -> TestResponse {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        self.request(Method::POST, path, &all, body.to_string()).await
    }
}

/// Reads the next data frame of a streamed body (`None` at the end).
pub async fn next_data(body: &mut Incoming) -> Option<Result<Bytes, hyper::Error>> {
    loop {
        match body.frame().await? {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    return Some(Ok(data));
                }
            }
            Err(e) => return Some(Err(e)),
        }
    }
}
