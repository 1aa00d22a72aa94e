//! What a finished request leaves behind: the record of where it went, and the default tap that logs it.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::body::{StreamEnd, Tap};
use crate::route::Api;

/// Everything known about a request when its response starts; the tap completes it.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub log_id: String,
    pub started: Instant,
    pub gateway: String,
    pub provider: String,
    pub model: Option<String>,
    pub path: String,
    pub api: Api,
    pub stream: bool,
    pub status: u16,
    /// Time from the request's arrival to the upstream response head.
    pub ttfb: Duration,
    pub attempts: u32,
    pub step: Option<usize>,
    pub event_id: Option<String>,
    pub collect_log: bool,
}

/// Makes the tap for each response.
pub trait TapFactory: Send + Sync + 'static {
    fn tap(&self, record: RequestRecord) -> Box<dyn Tap>;
}

/// The default factory: [`LogTap`]s.
pub struct LogTaps;

impl TapFactory for LogTaps {
    fn tap(&self, record: RequestRecord) -> Box<dyn Tap> {
        Box::new(LogTap { record, bytes: 0 })
    }
}

/// Counts the bytes and logs one line when the response ends (never a body, never a secret).
pub struct LogTap {
    record: RequestRecord,
    bytes: u64,
}

impl Tap for LogTap {
    fn on_data(&mut self, chunk: &Bytes) {
        self.bytes += chunk.len() as u64;
    }

    fn on_end(self: Box<Self>, end: StreamEnd) {
        let r = &self.record;
        tracing::info!(
            log_id = %r.log_id,
            gateway = %r.gateway,
            provider = %r.provider,
            model = r.model.as_deref().unwrap_or(""),
            path = %r.path,
            status = r.status,
            stream = r.stream,
            attempts = r.attempts,
            bytes = self.bytes,
            ttfb_ms = r.ttfb.as_millis() as u64,
            duration_ms = r.started.elapsed().as_millis() as u64,
            end = ?end,
            "request finished"
        );
    }
}
