//! The bodies of cached answers: a stored entry replayed frame by frame, and a follower's copy of a response
//! still in flight. Each holds the request context and finalizes it when the body ends or is dropped.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body::{Body, Frame, SizeHint};
use tollgate_accounting::InjectedUsageFilter;
use tollgate_cache::{Entry, Follower, FollowerFrame, Head};

use super::{HitUsage, head, mark_cached};
use crate::body::{BoxError, ProxyBody, StreamEnd};
use crate::ctx::RequestCtx;

/// A stored entry, each frame as its own frame, through the usage filter when the client did not ask for it.
pub struct Replay {
    entry: Arc<Entry>,
    next: usize,
    filter: Option<InjectedUsageFilter>,
    ready: VecDeque<Bytes>,
    ctx: Option<RequestCtx>,
}

impl Replay {
    /// The answer to a hit: the stored status and content type, `cf-aig-cache-status: HIT`, and the frames.
    pub(crate) fn respond(mut ctx: RequestCtx, hit: super::Hit) -> Response<ProxyBody> {
        let super::Hit { entry, filter } = hit;
        mark_cached(&mut ctx, entry.status);
        let mut usage = HitUsage::new(&ctx, entry.content_type());
        for frame in entry.frames() {
            usage.observe(&frame);
        }
        usage.finish(&mut ctx);
        let builder = head(entry.status, entry.content_type(), &ctx.record.log_id);
        let replay = Replay { entry, next: 0, filter, ready: VecDeque::new(), ctx: Some(ctx) };
        builder
            .body(ProxyBody::Replay(Box::new(replay)))
            .unwrap_or_else(|_| Response::new(ProxyBody::full(Bytes::new())))
    }

    fn end(&mut self, end: StreamEnd) {
        if let Some(mut ctx) = self.ctx.take() {
            ctx.record.success = end == StreamEnd::Complete;
            ctx.record.response_bytes = self.entry.body_len() as u64;
            ctx.record.end = Some(end);
        }
    }
}

impl Body for Replay {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if let Some(bytes) = this.ready.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            let Some(frame) = this.entry.frame(this.next) else {
                if let Some(mut filter) = this.filter.take() {
                    filter.finish(&mut |bytes| this.ready.push_back(bytes));
                    continue;
                }
                this.end(StreamEnd::Complete);
                return Poll::Ready(None);
            };
            this.next += 1;
            match this.filter.as_mut() {
                None => return Poll::Ready(Some(Ok(Frame::data(frame)))),
                Some(filter) => filter.push(&frame, &mut |bytes| this.ready.push_back(bytes)),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ctx.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        // A stream goes out chunked, one chunk per stored frame, as the upstream's did; a JSON body with its
        // length.
        let streaming = self.entry.content_type().is_some_and(|ct| ct.starts_with("text/event-stream"));
        if self.filter.is_some() || streaming {
            return SizeHint::default();
        }
        SizeHint::with_exact(self.entry.body_len() as u64)
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        self.end(StreamEnd::ClientGone { drained: false });
    }
}

type NextFrame = Pin<Box<dyn Future<Output = (Follower, FollowerFrame)> + Send>>;

/// A follower's copy of the leader's response, frame by frame as the leader receives them.
pub struct FollowBody {
    follower: Option<Follower>,
    pending: Option<NextFrame>,
    usage: Option<HitUsage>,
    filter: Option<InjectedUsageFilter>,
    ready: VecDeque<Bytes>,
    bytes: u64,
    ctx: Option<RequestCtx>,
}

/// A follower whose leader's stream broke after the head: its own stream breaks the same way.
#[derive(Debug, thiserror::Error)]
#[error("the coalesced upstream response broke")]
pub struct LeaderBroke;

impl FollowBody {
    /// Waits for the leader's head. `Err` hands the context back when the leader failed first: the request
    /// then goes upstream itself.
    pub(crate) async fn respond(mut ctx: RequestCtx, follow: super::Follow) -> Result<Response<ProxyBody>, RequestCtx> {
        let super::Follow { mut follower, filter } = follow;
        let Some(Head { status, content_type }) = follower.head().await else { return Err(ctx) };
        if let Some(cache) = ctx.gateway.cache.as_ref() {
            cache.stats().coalesced.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        mark_cached(&mut ctx, status);
        let usage = HitUsage::new(&ctx, content_type.as_deref());
        let builder = head(status, content_type.as_deref(), &ctx.record.log_id);
        let body = FollowBody {
            follower: Some(follower),
            pending: None,
            usage: Some(usage),
            filter,
            ready: VecDeque::new(),
            bytes: 0,
            ctx: Some(ctx),
        };
        Ok(builder
            .body(ProxyBody::Follow(Box::new(body)))
            .unwrap_or_else(|_| Response::new(ProxyBody::full(Bytes::new()))))
    }

    fn end(&mut self, end: StreamEnd) {
        let Some(mut ctx) = self.ctx.take() else { return };
        if end == StreamEnd::Complete
            && let Some(usage) = self.usage.take()
        {
            usage.finish(&mut ctx);
        }
        if let StreamEnd::UpstreamError(error) = &end {
            ctx.record.error = Some(error.clone());
        }
        ctx.record.success = end == StreamEnd::Complete;
        ctx.record.response_bytes = self.bytes;
        ctx.record.end = Some(end);
    }
}

impl Body for FollowBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if let Some(bytes) = this.ready.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            if this.ctx.is_none() {
                return Poll::Ready(None);
            }
            if this.pending.is_none() {
                let Some(mut follower) = this.follower.take() else { return Poll::Ready(None) };
                this.pending = Some(Box::pin(async move {
                    let frame = follower.next().await;
                    (follower, frame)
                }));
            }
            let Some(pending) = this.pending.as_mut() else { return Poll::Ready(None) };
            let Poll::Ready((follower, frame)) = pending.as_mut().poll(cx) else { return Poll::Pending };
            this.pending = None;
            this.follower = Some(follower);
            match frame {
                FollowerFrame::Data(bytes) => {
                    this.bytes = this.bytes.saturating_add(bytes.len() as u64);
                    if let Some(usage) = this.usage.as_mut() {
                        usage.observe(&bytes);
                    }
                    match this.filter.as_mut() {
                        None => return Poll::Ready(Some(Ok(Frame::data(bytes)))),
                        Some(filter) => filter.push(&bytes, &mut |out| this.ready.push_back(out)),
                    }
                }
                FollowerFrame::End => {
                    if let Some(mut filter) = this.filter.take() {
                        filter.finish(&mut |out| this.ready.push_back(out));
                    }
                    this.end(StreamEnd::Complete);
                }
                FollowerFrame::Failed => {
                    this.end(StreamEnd::UpstreamError(LeaderBroke.to_string()));
                    return Poll::Ready(Some(Err(Box::new(LeaderBroke))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ctx.is_none() && self.ready.is_empty()
    }
}

impl Drop for FollowBody {
    fn drop(&mut self) {
        self.end(StreamEnd::ClientGone { drained: false });
    }
}
