//! Test kit: a fake AI provider that speaks the providers' real wire formats, and a small HTTP test client.
//!
//! Used by tests and benches only. The fake provider is an in-process hyper server on `127.0.0.1:0` that
//! answers OpenAI chat completions (streamed and not, with and without `include_usage`), legacy completions,
//! embeddings, Responses, Anthropic messages and Gemini generate / streamGenerateContent (and Anthropic's and
//! Gemini's OpenAI-compatible chat endpoints, in OpenAI's shape). Like the servers that decode a path before
//! routing it, it routes on the percent-decoded, dot-resolved path. It can be scripted
//! per request to fail, delay, split its output at any byte boundary, hold the stream at a gate the test
//! controls, or cut the connection midway. It records every request it receives.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test support: a panic here is a failed test, which is what it should be"
)]

mod client;
mod fake;
mod link;
mod postgres;
mod redis;
pub mod reports;
mod wire;

pub use client::{TestClient, TestResponse, next_data};
pub use fake::{FakeProvider, Gate, Plan, Recorded, served_path};
pub use link::Link;
pub use postgres::{PgDb, admin_url as postgres_admin_url};
pub use redis::{redis_addr, redis_url};
pub use wire::{Reply, UsageNumbers};
