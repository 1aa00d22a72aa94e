//! The fake provider server: scripted per request, recording what it receives.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};

use crate::wire::{self, Api, Reply};

/// A gate the test opens: the fake sends its first chunk, then waits here before the rest.
#[derive(Clone)]
pub struct Gate(Arc<Semaphore>);

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    pub fn new() -> Self {
        Self(Arc::new(Semaphore::new(0)))
    }

    pub fn open(&self) {
        self.0.add_permits(Semaphore::MAX_PERMITS / 2);
    }

    /// Waits until the gate is open.
    pub async fn wait(&self) {
        self.pass().await;
    }

    async fn pass(&self) {
        let _ = self.0.acquire().await;
    }
}

/// How the fake answers one request. `Plan::default()` answers normally.
#[derive(Clone, Default)]
pub struct Plan {
    /// Answer with this status and body instead (e.g. 429 or 500 with the provider's error JSON).
    pub fail: Option<(StatusCode, String)>,
    /// Wait this long before sending the response head.
    pub head_delay: Duration,
    /// Re-split the body into pieces of this many bytes (1 = every byte its own write).
    pub chunk_size: Option<usize>,
    /// Wait this long between pieces.
    pub chunk_delay: Duration,
    /// After the first piece, wait for this gate.
    pub gate: Option<Gate>,
    /// Send this many body bytes, then break the connection.
    pub cut_after: Option<usize>,
    /// Send these bytes as the body (with the given content type) instead of rendering the API's answer.
    pub raw: Option<(&'static str, Vec<Bytes>)>,
    pub reply: Option<Reply>,
    /// Close the listener's connection without any response (a reset before the head).
    pub drop_connection: bool,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    /// Path and query, as received.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Default)]
struct State {
    plans: Mutex<VecDeque<Plan>>,
    default_plan: Mutex<Plan>,
    received: Mutex<Vec<Recorded>>,
}

/// A running fake provider; stops when dropped.
pub struct FakeProvider {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeProvider {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let task = tokio::spawn(accept_loop(listener, state.clone()));
        Self { addr, state, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next request is answered by `plan` (plans queue up in order).
    pub fn push(&self, plan: Plan) {
        self.state.plans.lock().unwrap().push_back(plan);
    }

    /// Requests with no queued plan are answered by this one.
    pub fn set_default(&self, plan: Plan) {
        *self.state.default_plan.lock().unwrap() = plan;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.received.lock().unwrap().clone()
    }

    pub fn last_request(&self) -> Recorded {
        self.requests().pop().expect("the fake provider received no request")
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(req, state.clone()));
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

type FakeBody = ChannelBody;

async fn handle(req: Request<Incoming>, state: Arc<State>) -> Result<Response<FakeBody>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(http_body_util::Collected::to_bytes).unwrap_or_default();
    let uri = parts.uri.path_and_query().map(ToString::to_string).unwrap_or_default();
    state.received.lock().unwrap().push(Recorded {
        method: parts.method.clone(),
        uri: uri.clone(),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    let plan = state.plans.lock().unwrap().pop_front().unwrap_or_else(|| state.default_plan.lock().unwrap().clone());
    if !plan.head_delay.is_zero() {
        tokio::time::sleep(plan.head_delay).await;
    }
    if plan.drop_connection {
        return Err(std::io::Error::other("fake provider drops the connection"));
    }
    let (status, content_type, events) = if let Some((status, body)) = &plan.fail {
        (*status, "application/json", vec![Bytes::from(body.clone())])
    } else if let Some((content_type, events)) = &plan.raw {
        (StatusCode::OK, *content_type, events.clone())
    } else {
        let path = served_path(parts.uri.path());
        let path = path.as_str();
        let Some(api) = Api::from_path(path) else {
            let body = r#"{"error":{"message":"fake provider: unknown path","type":"invalid_request_error","param":null,"code":null}}"#;
            return Ok(respond(
                StatusCode::NOT_FOUND,
                "application/json",
                vec![Bytes::from_static(body.as_bytes())],
                Plan::default(),
            ));
        };
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        let path_model = model_in_path(path);
        let reply = plan.reply.clone().unwrap_or_default();
        let rendered = wire::render(api, &json, &body, path_model, parts.uri.query().unwrap_or(""), &reply);
        (StatusCode::OK, rendered.content_type, rendered.events)
    };
    Ok(respond(status, content_type, events, plan))
}

/// The model a path names, for bodies that name none: Gemini's `models/{model}:method`, Azure's
/// `deployments/{deployment}/...` (a deployment named after its model answers with that model's name).
fn model_in_path(path: &str) -> &str {
    let segments: Vec<&str> = path.split('/').collect();
    if let Some((model, _)) = segments.last().and_then(|last| last.split_once(':')) {
        return model;
    }
    segments.windows(2).find(|pair| pair[0] == "deployments").map_or("", |pair| pair[1])
}

/// The path as servers that decode it before routing see it (uvicorn, Go's `net/http`, Cloudflare's URL
/// normalisation): every percent-escape decoded (`%2F` included), empty segments dropped, `.` and `..`
/// resolved. The fake routes on it, so it serves every spelling of an endpoint that such a server would.
pub fn served_path(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|b| char::from(*b).to_digit(16));
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                decoded.push(u8::try_from(hi * 16 + lo).unwrap());
                i += 3;
            }
            (b, _, _) => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    let decoded = String::from_utf8_lossy(&decoded);
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            _ => segments.push(segment),
        }
    }
    format!("/{}", segments.join("/"))
}

fn respond(status: StatusCode, content_type: &'static str, events: Vec<Bytes>, plan: Plan) -> Response<FakeBody> {
    let pieces: Vec<Bytes> = match plan.chunk_size {
        Some(size) => {
            let all: Vec<u8> = events.iter().flat_map(|b| b.iter().copied()).collect();
            all.chunks(size.max(1)).map(Bytes::copy_from_slice).collect()
        }
        None => events,
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    tokio::spawn(async move {
        let mut sent = 0usize;
        for (i, piece) in pieces.into_iter().enumerate() {
            if i > 0 {
                if i == 1
                    && let Some(gate) = &plan.gate
                {
                    gate.pass().await;
                }
                if !plan.chunk_delay.is_zero() {
                    tokio::time::sleep(plan.chunk_delay).await;
                }
            }
            let piece = match plan.cut_after {
                Some(limit) if sent + piece.len() >= limit => {
                    let head = piece.slice(..limit - sent);
                    if !head.is_empty() {
                        let _ = tx.send(Ok(head)).await;
                    }
                    let _ = tx.send(Err(std::io::Error::other("fake provider cuts the stream"))).await;
                    return;
                }
                _ => piece,
            };
            sent += piece.len();
            if tx.send(Ok(piece)).await.is_err() {
                return;
            }
        }
    });
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("x-request-id", "req_fake")
        .body(ChannelBody(rx))
        .unwrap()
}

/// A response body fed by the task that paces the pieces.
pub struct ChannelBody(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|item| item.map(|r| r.map(Frame::data)))
    }
}

#[cfg(test)]
mod tests;
