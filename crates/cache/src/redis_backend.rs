//! The Redis backend: entries shared by every replica, TTL kept by Redis, reached through one lazily
//! connected [`RedisLink`] that never makes a request wait long for a Redis that is away.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::{Backend, BackendError, CacheKey, Entry};

/// After a failed connection attempt, calls fail at once for this long instead of each trying again.
const RECONNECT_BACKOFF: Duration = Duration::from_secs(1);
/// Keys deleted per `SCAN` page when the cache is emptied.
const SCAN_PAGE: usize = 500;

/// One Redis connection (a `ConnectionManager`, which reconnects by itself), opened on first use. Every call
/// is bounded by `timeout`, so a Redis that is away costs a request at most that long (and, right after a
/// failed connection attempt, nothing: see [`RECONNECT_BACKOFF`]).
pub struct RedisLink {
    client: redis::Client,
    prefix: String,
    timeout: Duration,
    conn: tokio::sync::OnceCell<ConnectionManager>,
    /// Milliseconds since `epoch` before which no new connection attempt is made.
    retry_after_ms: AtomicU64,
    epoch: Instant,
}

impl RedisLink {
    /// `url`: `redis://host:port/db`; `prefix` starts every key this gateway writes.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<Arc<Self>, BackendError> {
        let client = redis::Client::open(url).map_err(BackendError::Redis)?;
        Ok(Arc::new(Self {
            client,
            prefix: prefix.to_string(),
            timeout,
            conn: tokio::sync::OnceCell::new(),
            retry_after_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }))
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The connection, opening it if needed (see the type's doc for the bounds).
    pub async fn connection(&self) -> Result<ConnectionManager, BackendError> {
        if let Some(conn) = self.conn.get() {
            return Ok(conn.clone());
        }
        let now = self.epoch.elapsed().as_millis() as u64;
        if now < self.retry_after_ms.load(Ordering::Relaxed) {
            return Err(BackendError::NotConnected("the last connection attempt failed".into()));
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(self.timeout)
            .set_number_of_retries(1);
        let client = self.client.clone();
        let connect = async {
            match tokio::time::timeout(self.timeout, ConnectionManager::new_with_config(client, config)).await {
                Ok(Ok(conn)) => Ok(conn),
                Ok(Err(e)) => Err(BackendError::Redis(e)),
                Err(_) => Err(BackendError::Timeout(self.timeout)),
            }
        };
        // Boxed: the connection manager's setup future is ~20 KiB, and every request future that may reach
        // Redis would otherwise carry it inline.
        match Box::pin(self.conn.get_or_try_init(|| connect)).await {
            Ok(conn) => Ok(conn.clone()),
            Err(error) => {
                let until = self.epoch.elapsed() + RECONNECT_BACKOFF;
                self.retry_after_ms.store(until.as_millis() as u64, Ordering::Relaxed);
                Err(error)
            }
        }
    }

    /// Runs `cmd` within the timeout.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, BackendError> {
        let mut conn = self.connection().await?;
        match tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut conn)).await {
            Ok(result) => result.map_err(BackendError::Redis),
            Err(_) => Err(BackendError::Timeout(self.timeout)),
        }
    }
}

/// Entries in Redis under `<prefix>cache:<key>`, as [`Entry::encode`] bytes.
pub struct RedisBackend {
    link: Arc<RedisLink>,
}

impl RedisBackend {
    pub fn new(link: Arc<RedisLink>) -> Self {
        Self { link }
    }

    fn redis_key(&self, key: &CacheKey) -> String {
        format!("{}cache:{key}", self.link.prefix)
    }

    async fn clear_all(&self) -> Result<u64, BackendError> {
        let pattern = format!("{}cache:*", glob_escape(&self.link.prefix));
        let mut cursor: u64 = 0;
        let mut deleted = 0u64;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(SCAN_PAGE);
            let (next, keys): (u64, Vec<String>) = self.link.query(&scan).await?;
            if !keys.is_empty() {
                let n: u64 = self.link.query(redis::cmd("UNLINK").arg(&keys)).await?;
                deleted = deleted.saturating_add(n);
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}

impl Backend for RedisBackend {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn get<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<Option<Arc<Entry>>, BackendError>> {
        async move {
            let found: Option<Vec<u8>> = self.link.query(redis::cmd("GET").arg(self.redis_key(key))).await?;
            // An entry this build cannot read (another version, corrupt) is a miss, and is overwritten.
            Ok(found.and_then(|bytes| Entry::decode(Bytes::from(bytes)).ok()).map(Arc::new))
        }
        .boxed()
    }

    fn put<'a>(
        &'a self,
        key: &'a CacheKey,
        entry: Arc<Entry>,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        async move {
            let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            let mut set = redis::cmd("SET");
            set.arg(self.redis_key(key)).arg(entry.encode()).arg("PX").arg(ms);
            self.link.query::<()>(&set).await
        }
        .boxed()
    }

    fn delete<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<bool, BackendError>> {
        async move {
            let n: u64 = self.link.query(redis::cmd("UNLINK").arg(self.redis_key(key))).await?;
            Ok(n > 0)
        }
        .boxed()
    }

    fn clear(&self) -> BoxFuture<'_, Result<u64, BackendError>> {
        self.clear_all().boxed()
    }

    fn bytes(&self) -> u64 {
        0
    }
}

/// `prefix` with Redis glob characters escaped, for `SCAN MATCH`.
fn glob_escape(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
