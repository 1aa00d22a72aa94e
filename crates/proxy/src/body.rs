//! The response body wrapper: forwards every upstream frame the moment it arrives and lets a [`Tap`] see the
//! same `Bytes` (a refcount, not a copy). It guarantees the tap's end is reported exactly once: at the end of
//! the stream, on an upstream error, or, when the client goes away first, after a bounded background drain
//! of the rest of the upstream response (so the usage at its end is still seen).

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio_util::task::TaskTracker;
use tollgate_accounting::InjectedUsageFilter;

/// How a response ended, as far as the gateway could see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// The upstream body ended normally and the client received all of it.
    Complete,
    /// The upstream broke the body midway (the client saw the break too).
    UpstreamError(String),
    /// The client went away first. `drained`: the rest of the upstream body was read to its end in the
    /// background; `false` when the drain hit its time or byte bound or the upstream broke.
    ClientGone { drained: bool },
}

/// Sees every response chunk as it passes, then how the response ended.
pub trait Tap: Send + 'static {
    /// Called for every data chunk, in order, before it is handed on. Must be cheap: it runs inline.
    fn on_data(&mut self, chunk: &Bytes);
    /// Called exactly once.
    fn on_end(self: Box<Self>, end: StreamEnd);
    /// Whether the rest of the upstream body is worth reading after the client has gone (e.g. to learn the
    /// usage reported at its end).
    fn wants_drain(&self) -> bool {
        false
    }
}

/// Bounds for reading an upstream body after the client disconnected.
#[derive(Debug, Clone)]
pub struct DrainPolicy {
    pub timeout: Duration,
    pub max_bytes: u64,
    pub tasks: TaskTracker,
}

/// The upstream body, tapped.
pub struct TappedBody {
    inner: Option<Incoming>,
    tap: Option<Box<dyn Tap>>,
    drain: DrainPolicy,
    /// Removes the usage-only chunk the gateway asked for on the client's behalf; the tap still sees it.
    filter: Option<InjectedUsageFilter>,
    /// Filtered bytes ready for the client.
    ready: VecDeque<Bytes>,
}

impl TappedBody {
    pub fn new(inner: Incoming, tap: Box<dyn Tap>, drain: DrainPolicy) -> Self {
        Self { inner: Some(inner), tap: Some(tap), drain, filter: None, ready: VecDeque::new() }
    }

    /// Passes the client's bytes through `filter` (the tap keeps seeing the upstream's bytes).
    #[must_use]
    pub fn with_filter(mut self, filter: InjectedUsageFilter) -> Self {
        self.filter = Some(filter);
        self
    }

    fn end(&mut self, end: StreamEnd) {
        self.inner = None;
        if let Some(tap) = self.tap.take() {
            tap.on_end(end);
        }
    }
}

impl Body for TappedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        loop {
            if let Some(bytes) = this.ready.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
            match Pin::new(inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    let frame = match frame.into_data() {
                        Ok(data) => data,
                        Err(other) => return Poll::Ready(Some(Ok(other))),
                    };
                    if let Some(tap) = this.tap.as_mut() {
                        tap.on_data(&frame);
                    }
                    match this.filter.as_mut() {
                        None => return Poll::Ready(Some(Ok(Frame::data(frame)))),
                        // The filter may hold an incomplete event back; loop for more upstream bytes then.
                        Some(filter) => filter.push(&frame, &mut |bytes| this.ready.push_back(bytes)),
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.end(StreamEnd::UpstreamError(e.to_string()));
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    if let Some(filter) = this.filter.as_mut() {
                        filter.finish(&mut |bytes| this.ready.push_back(bytes));
                    }
                    this.end(StreamEnd::Complete);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ready.is_empty() && self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        if self.filter.is_some() {
            return SizeHint::default();
        }
        self.inner.as_ref().map(Body::size_hint).unwrap_or_default()
    }
}

impl Drop for TappedBody {
    fn drop(&mut self) {
        let Some(tap) = self.tap.take() else { return };
        let inner = self.inner.take();
        match (inner, tokio::runtime::Handle::try_current()) {
            (Some(inner), Ok(handle)) if tap.wants_drain() => {
                let policy = self.drain.clone();
                policy.tasks.clone().spawn_on(drain(inner, tap, policy.timeout, policy.max_bytes), &handle);
            }
            _ => tap.on_end(StreamEnd::ClientGone { drained: false }),
        }
    }
}

/// Reads the rest of an upstream body nobody will receive, feeding the tap, within the bounds.
pub(crate) async fn drain(mut inner: Incoming, mut tap: Box<dyn Tap>, timeout: Duration, max_bytes: u64) {
    let mut read = 0u64;
    let outcome = tokio::time::timeout(timeout, async {
        while let Some(frame) = inner.frame().await {
            let Ok(frame) = frame else { return false };
            if let Some(data) = frame.data_ref() {
                read += data.len() as u64;
                tap.on_data(data);
                if read > max_bytes {
                    return false;
                }
            }
        }
        true
    })
    .await;
    tap.on_end(StreamEnd::ClientGone { drained: outcome.unwrap_or(false) });
}

/// The error a response body ends with: the upstream's, or a coalesced response's break.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The proxy's response body: the gateway's own (errors), a tapped upstream body, or a cached answer (a stored
/// entry replayed, or a follower's copy of a response in flight).
pub enum ProxyBody {
    Full(Option<Bytes>),
    Tapped(TappedBody),
    // Boxed: a cached answer pays one allocation so that every other response body stays small.
    Replay(Box<crate::cache::Replay>),
    Follow(Box<crate::cache::FollowBody>),
}

impl ProxyBody {
    pub fn full(bytes: Bytes) -> Self {
        ProxyBody::Full(Some(bytes))
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            ProxyBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Tapped(body) => Pin::new(body).poll_frame(cx).map_err(BoxError::from),
            ProxyBody::Replay(body) => Pin::new(body.as_mut()).poll_frame(cx),
            ProxyBody::Follow(body) => Pin::new(body.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(bytes) => bytes.is_none(),
            ProxyBody::Tapped(body) => body.is_end_stream(),
            ProxyBody::Replay(body) => body.is_end_stream(),
            ProxyBody::Follow(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            ProxyBody::Full(None) => SizeHint::with_exact(0),
            ProxyBody::Tapped(body) => body.size_hint(),
            ProxyBody::Replay(body) => body.size_hint(),
            ProxyBody::Follow(body) => body.size_hint(),
        }
    }
}
