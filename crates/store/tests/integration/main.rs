//! Integration tests against a real Postgres (`TOLLGATE_TEST_PG`, default the local trust-auth server; a test
//! fails when it is unreachable) and a temporary SQLite file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;
mod hardening;
mod logs;
mod metadata_keys;
mod outage;
mod spend;
