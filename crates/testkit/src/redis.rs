//! Where the test Redis is: `TOLLGATE_TEST_REDIS` (default `redis://127.0.0.1:6379`). Tests that use it write
//! under a key prefix of their own and never flush anything.

/// The test Redis's URL.
pub fn redis_url() -> String {
    std::env::var("TOLLGATE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// `host:port` of the test Redis (for a [`crate::Link`] in front of it).
pub fn redis_addr() -> String {
    let url = url::Url::parse(&redis_url()).unwrap_or_else(|e| panic!("TOLLGATE_TEST_REDIS is not a URL: {e}"));
    format!("{}:{}", url.host_str().unwrap_or("127.0.0.1"), url.port().unwrap_or(6379))
}
