//! The storage behind the cache: one trait, two backends (this process's memory, or Redis).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::{CacheKey, Entry};

/// A backend that could not do what was asked. The cache never fails a request for it.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("redis: {0}")]
    Redis(#[source] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis is not connected yet: {0}")]
    NotConnected(String),
}

/// Where entries live. Futures are boxed so the cache can hold any backend behind one `Arc<dyn Backend>`; a
/// backend that never waits also answers through `get_now` and `put_now`, with no future (and no box) at all.
pub trait Backend: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn get<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<Option<Arc<Entry>>, BackendError>>;
    fn put<'a>(
        &'a self,
        key: &'a CacheKey,
        entry: Arc<Entry>,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), BackendError>>;
    /// Looks `key` up without waiting, when the backend can (memory); `None`: call [`Backend::get`].
    fn get_now(&self, _key: &CacheKey) -> Option<Result<Option<Arc<Entry>>, BackendError>> {
        None
    }
    /// Stores without waiting, when the backend can (memory); the entry back: call [`Backend::put`].
    fn put_now(&self, _key: &CacheKey, entry: Arc<Entry>, _ttl: Duration) -> Result<(), Arc<Entry>> {
        Err(entry)
    }
    fn delete<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<bool, BackendError>>;
    fn clear(&self) -> BoxFuture<'_, Result<u64, BackendError>>;
    /// Bytes held, when the backend knows (the memory backend).
    fn bytes(&self) -> u64;
}
