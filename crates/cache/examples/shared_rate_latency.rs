//! What a shared rate limit costs a request: the latency of one shared check (the GCRA script over every
//! bucket the request falls in) against a bare `PING` on the same connection, both on a real Redis, in
//! interleaved rounds. A shared limit must add at most one Redis round trip.
//!
//! Run: `cargo run --release -p tollgate-cache --example shared_rate_latency` (Redis at `TOLLGATE_TEST_REDIS`,
//! default `redis://127.0.0.1:6379`).

#![expect(clippy::unwrap_used, clippy::print_stdout, reason = "a measurement program: a failure should abort loudly")]

use std::time::{Duration, Instant};

use tollgate_cache::{Cell, RedisLink, SharedRates, Verdict};

const ROUNDS: usize = 5;
const PER_ROUND: usize = 4_000;

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let url = std::env::var("TOLLGATE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("tollgate-bench-{}:", std::process::id());
    let link = RedisLink::new(&url, &prefix, Duration::from_secs(1)).unwrap();
    let rates = SharedRates::new(link.clone(), "bench".into());
    // Two shared rules a request falls in (a per-user limit and a global one), never full.
    let cells = [
        Cell { key: "per-user:1000000:60000000:user-1", period_us: 60, burst: 1_000_000 },
        Cell { key: "global:1000000:60000000:", period_us: 60, burst: 1_000_000 },
    ];
    let ping = redis::cmd("PING");
    for _ in 0..500 {
        let _: String = link.query(&ping).await.unwrap();
        assert_eq!(rates.check(&cells).await.unwrap(), Verdict::Admitted);
    }
    let (mut pings, mut checks) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        for _ in 0..PER_ROUND {
            let t = Instant::now();
            let _: String = link.query(&ping).await.unwrap();
            pings.push(t.elapsed());
        }
        for _ in 0..PER_ROUND {
            let t = Instant::now();
            assert_eq!(rates.check(&cells).await.unwrap(), Verdict::Admitted);
            checks.push(t.elapsed());
        }
    }
    pings.sort();
    checks.sort();
    println!("{} of each, {ROUNDS} interleaved rounds, Redis at {url}", pings.len());
    println!("| call | p50 µs | p99 µs |\n|---|---|---|");
    println!("| PING (one round trip) | {:.1} | {:.1} |", pct(&pings, 0.5), pct(&pings, 0.99));
    println!("| shared check, 2 buckets | {:.1} | {:.1} |", pct(&checks, 0.5), pct(&checks, 0.99));
    let mut cleanup = redis::cmd("DEL");
    for cell in &cells {
        cleanup.arg(format!("{prefix}rl:{}", cell.key));
    }
    let _: u64 = link.query(&cleanup).await.unwrap_or(0);
}
