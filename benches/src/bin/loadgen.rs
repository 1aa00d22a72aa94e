//! Load harness: the same requests sent straight to the fake provider and through a running `tollgate serve`,
//! with latency percentiles and throughput for each, and the difference (what the gateway adds).
//!
//! `cargo build --release -p tollgate -p tollgate-benches && target/release/loadgen --help`

#![expect(clippy::print_stdout, reason = "the harness prints its report")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tollgate_benches::{BUDGETS, Gateway, cpu_ticks, memory_kib};
use tollgate_testkit::{FakeProvider, Link, Plan};

#[derive(Parser, Clone)]
struct Args {
    /// The tollgate binary to measure.
    #[arg(long, default_value = "target/release/tollgate")]
    gateway_bin: String,
    /// Requests per scenario.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Concurrency levels to run (comma-separated).
    #[arg(long, default_value = "1,32", value_delimiter = ',')]
    concurrency: Vec<usize>,
    /// Delay between streamed chunks at the fake provider, in microseconds (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    chunk_delay_us: u64,
    /// Extra TOML appended to the gateway's config.
    #[arg(long, default_value = "")]
    extra_config: String,
    /// Run without the default budgets (a spend limit split per user, and a rate limit).
    #[arg(long)]
    no_budgets: bool,
    /// Also write the report to this Markdown file.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// Instead of the scenarios above, measure the gateway on Postgres (this admin URL; a throwaway database
    /// is made) with the database up, slow (50 ms per round trip) and down, through a link loadgen controls.
    #[arg(long)]
    database_conditions: Option<String>,
    /// Instead of the scenarios above, measure the response cache (memory backend): the gateway with the cache
    /// off, every request a miss (distinct bodies), and every request a hit (one body), side by side.
    #[arg(long)]
    cache: bool,
    /// With `--cache`: instead of timing, count the instructions the gateway executes per request (cache off
    /// against every request a miss) under `valgrind --tool=callgrind`, which is exact and repeatable where
    /// timings on a shared machine are not.
    #[arg(long)]
    instructions: bool,
    /// With `--cache`: more keys of the cached gateway's `[cache]` table, e.g. `max_bytes = "64MiB"`.
    #[arg(long, default_value = "")]
    cache_config: String,
}

struct Stats {
    latencies: Vec<Duration>,
    ttfb: Vec<Duration>,
    elapsed: Duration,
    errors: usize,
}

impl Stats {
    fn pct(sorted: &[Duration], p: f64) -> Duration {
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[i]
    }
    fn rps(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// What each request sends: the same body every time, or a distinct one each time (every request a cache miss).
#[derive(Clone)]
enum Bodies {
    Same(Bytes),
    /// Distinct from every body of every other run too.
    Distinct {
        stream: bool,
    },
}

/// Numbers the runs, so no run's distinct bodies repeat another's.
static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Bodies {
    /// Request `n`'s body in run `run`.
    fn body(&self, run: usize, n: usize) -> Bytes {
        match self {
            Bodies::Same(body) => body.clone(),
            Bodies::Distinct { stream } => chat_body(*stream, &format!("Say hello to request {n} of run {run}.")),
        }
    }
}

fn chat_body(stream: bool, content: &str) -> Bytes {
    Bytes::from(
        serde_json::json!({"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": content}]})
            .to_string(),
    )
}

async fn run(base: &str, body: Bytes, requests: usize, concurrency: usize) -> Stats {
    run_bodies(base, Bodies::Same(body), requests, concurrency).await
}

async fn run_bodies(base: &str, bodies: Bodies, requests: usize, concurrency: usize) -> Stats {
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let client: Client<_, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).pool_max_idle_per_host(1024).build_http();
    let url: http::Uri = format!("{base}/v1/chat/completions").parse().unwrap_or_default();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, bodies, next) = (client.clone(), url.clone(), bodies.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut ttfb = Vec::new();
            let mut errors = 0;
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= requests {
                    break;
                }
                let request = Request::builder()
                    .method(Method::POST)
                    .uri(url.clone())
                    .header("content-type", "application/json")
                    .header("cf-aig-metadata", r#"{"user":"bench"}"#)
                    .body(Full::new(bodies.body(run, n)));
                let Ok(request) = request else { continue };
                let t0 = Instant::now();
                match client.request(request).await {
                    Ok(response) => {
                        ttfb.push(t0.elapsed());
                        let ok = response.status().is_success();
                        let read = response.into_body().collect().await.is_ok();
                        lat.push(t0.elapsed());
                        if !(ok && read) {
                            errors += 1;
                        }
                    }
                    Err(_) => errors += 1,
                }
            }
            (lat, ttfb, errors)
        }));
    }
    let mut stats = Stats { latencies: Vec::new(), ttfb: Vec::new(), elapsed: Duration::ZERO, errors: 0 };
    for task in tasks {
        if let Ok((lat, ttfb, errors)) = task.await {
            stats.latencies.extend(lat);
            stats.ttfb.extend(ttfb);
            stats.errors += errors;
        }
    }
    stats.elapsed = started.elapsed();
    stats.latencies.sort();
    stats.ttfb.sort();
    stats
}

fn start_gateway(args: &Args, fake: &FakeProvider, database: Option<&str>) -> std::io::Result<Gateway> {
    Gateway::start(&args.gateway_bin, &fake.url(), &gateway_config(args, false), database)
}

/// The TOML appended to every gateway's config: the budgets (unless `--no-budgets`), `--extra-config`, and with
/// `cached` the cache on with `--cache-config`.
fn gateway_config(args: &Args, cached: bool) -> String {
    let budgets = if args.no_budgets { "" } else { BUDGETS };
    let cache = if cached { format!("\n[cache]\nenabled = true\n{}\n", args.cache_config) } else { String::new() };
    format!("{budgets}{}{cache}", args.extra_config)
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let fake = FakeProvider::start().await;
    if args.chunk_delay_us > 0 {
        fake.set_default(Plan { chunk_delay: Duration::from_micros(args.chunk_delay_us), ..Plan::default() });
    }
    if args.cache && args.instructions {
        return cache_instructions(&args, &fake).await;
    }
    if args.cache {
        return cache_comparison(&args, &fake).await;
    }
    if let Some(admin_url) = args.database_conditions.clone() {
        return database_conditions(&args, &fake, &admin_url).await;
    }
    let gateway = start_gateway(&args, &fake, None)?;
    let mut report = Vec::new();
    let mut emit = |line: String| {
        println!("{line}");
        report.push(line);
    };
    emit("| scenario | conc | target | rps | p50 ms | p90 ms | p99 ms | ttfb p50 ms | ttfb p99 ms | errors |".into());
    emit("|---|---|---|---|---|---|---|---|---|---|".into());
    let mut cpu_report = Vec::new();
    for stream in [false, true] {
        let body = Bytes::from(
            serde_json::json!({"model": "gpt-4o-mini", "stream": stream,
                "messages": [{"role": "user", "content": "Say hello to the benchmark."}]})
            .to_string(),
        );
        for &conc in &args.concurrency {
            let scenario = if stream { "stream" } else { "json" };
            // Warm the pools.
            run(&fake.url(), body.clone(), 200, conc).await;
            run(&gateway.url, body.clone(), 200, conc).await;
            let direct = run(&fake.url(), body.clone(), args.requests, conc).await;
            let cpu0 = cpu_ticks(gateway.child.id()).unwrap_or(0);
            let through = run(&gateway.url, body.clone(), args.requests, conc).await;
            let cpu1 = cpu_ticks(gateway.child.id()).unwrap_or(0);
            for (name, s) in [("direct", &direct), ("gateway", &through)] {
                emit(format!(
                    "| {scenario} | {conc} | {name} | {:.0} | {} | {} | {} | {} | {} | {} |",
                    s.rps(),
                    ms(Stats::pct(&s.latencies, 0.5)),
                    ms(Stats::pct(&s.latencies, 0.9)),
                    ms(Stats::pct(&s.latencies, 0.99)),
                    ms(Stats::pct(&s.ttfb, 0.5)),
                    ms(Stats::pct(&s.ttfb, 0.99)),
                    s.errors
                ));
            }
            let added50 = Stats::pct(&through.latencies, 0.5).saturating_sub(Stats::pct(&direct.latencies, 0.5));
            let added99 = Stats::pct(&through.latencies, 0.99).saturating_sub(Stats::pct(&direct.latencies, 0.99));
            // Clock ticks are 10 ms (USER_HZ = 100).
            let cpu_us = (cpu1 - cpu0) as f64 * 10_000.0 / through.latencies.len().max(1) as f64;
            cpu_report.push(format!(
                "{scenario} c={conc}: added p50 {} ms, added p99 {} ms, gateway CPU {cpu_us:.1} µs/request",
                ms(added50),
                ms(added99)
            ));
        }
    }
    emit(String::new());
    for line in cpu_report {
        emit(format!("- {line}"));
    }
    emit(format!("- gateway peak RSS: {} KiB", memory_kib(gateway.child.id(), "VmHWM:").unwrap_or(0)));
    if let Some(path) = &args.out {
        std::fs::write(path, report.join("\n") + "\n")?;
    }
    Ok(())
}

/// The gateway's latency with its Postgres up, slow and down: the database must never be on the request path.
async fn database_conditions(args: &Args, fake: &FakeProvider, admin_url: &str) -> std::io::Result<()> {
    let name = format!("tg_loadgen_{}", std::process::id());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(admin_url).await.map_err(std::io::Error::other)?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .map_err(std::io::Error::other)?;
    let rest = admin_url.split_once("://").map_or(admin_url, |(_, r)| r);
    let (userinfo, hostpath) = rest.rsplit_once('@').unwrap_or(("", rest));
    let host_port = hostpath.split('/').next().unwrap_or("127.0.0.1:5432").to_string();
    let link = Link::start(host_port).await;
    let at = if userinfo.is_empty() { String::new() } else { format!("{userinfo}@") };
    let url = format!("postgres://{at}127.0.0.1:{}/{name}", link.port());
    let gateway = start_gateway(args, fake, Some(&url))?;
    let body = Bytes::from(
        serde_json::json!({"model": "gpt-4o-mini", "stream": true,
            "messages": [{"role": "user", "content": "Say hello to the benchmark."}]})
        .to_string(),
    );
    let conc = args.concurrency.iter().copied().max().unwrap_or(32);
    run(&gateway.url, body.clone(), 500, conc).await;
    println!("| database | conc | rps | p50 ms | p90 ms | p99 ms | errors |");
    println!("|---|---|---|---|---|---|---|");
    for condition in ["up", "slow", "down", "up again"] {
        match condition {
            "slow" => link.slow(Duration::from_millis(50)),
            "down" => link.down(),
            _ => link.up(),
        }
        let s = run(&gateway.url, body.clone(), args.requests, conc).await;
        println!(
            "| {condition} | {conc} | {:.0} | {} | {} | {} | {} |",
            s.rps(),
            ms(Stats::pct(&s.latencies, 0.5)),
            ms(Stats::pct(&s.latencies, 0.9)),
            ms(Stats::pct(&s.latencies, 0.99)),
            s.errors
        );
    }
    drop(gateway);
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)"))).execute(&mut conn).await;
    Ok(())
}

/// Interleaved rounds of the cache comparison.
const CACHE_ROUNDS: usize = 5;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// A run through `gateway` and the gateway's CPU time per request in µs (clock ticks of 10 ms).
async fn run_measured(gateway: &Gateway, bodies: Bodies, requests: usize, concurrency: usize) -> (Stats, f64) {
    let before = cpu_ticks(gateway.child.id()).unwrap_or(0);
    let stats = run_bodies(&gateway.url, bodies, requests, concurrency).await;
    let after = cpu_ticks(gateway.child.id()).unwrap_or(0);
    let cpu = (after - before) as f64 * 10_000.0 / stats.latencies.len().max(1) as f64;
    (stats, cpu)
}

/// The response cache's cost and gain: cache off, all misses, all hits (memory backend), at each concurrency,
/// JSON and streamed, in interleaved rounds (medians reported). A miss must cost at most 5% of the throughput
/// with the cache off; a hit must add at most 50 µs at one connection over the fake provider's own (static)
/// answer.
async fn cache_comparison(args: &Args, fake: &FakeProvider) -> std::io::Result<()> {
    let off = start_gateway(args, fake, None)?;
    let cached = Gateway::start(&args.gateway_bin, &fake.url(), &gateway_config(args, true), None)?;
    let mut report = vec![
        "| scenario | conc | round | target | rps | p50 ms | p99 ms | errors |".to_string(),
        "|---|---|---|---|---|---|---|---|".to_string(),
    ];
    let mut summary = Vec::new();
    let mut row = |scenario: &str, conc: usize, round: usize, target: &str, s: &Stats| {
        let line = format!(
            "| {scenario} | {conc} | {round} | {target} | {:.0} | {} | {} | {} |",
            s.rps(),
            ms(Stats::pct(&s.latencies, 0.5)),
            ms(Stats::pct(&s.latencies, 0.99)),
            s.errors
        );
        println!("{line}");
        report.push(line);
    };
    for stream in [false, true] {
        let scenario = if stream { "stream" } else { "json" };
        let same = Bodies::Same(chat_body(stream, "Say hello to the benchmark."));
        let distinct = Bodies::Distinct { stream };
        for &conc in &args.concurrency {
            // Warm the pools (and store the one entry the hits read).
            for url in [&fake.url(), &off.url, &cached.url] {
                run_bodies(url, same.clone(), 200, conc).await;
            }
            let (mut off_rps, mut miss_rps, mut off_cpu, mut miss_cpu, mut hit_added) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for round in 1..=CACHE_ROUNDS {
                let direct = run_bodies(&fake.url(), same.clone(), args.requests, conc).await;
                let (cache_off, cpu) = run_measured(&off, distinct.clone(), args.requests, conc).await;
                off_cpu.push(cpu);
                let (miss, cpu) = run_measured(&cached, distinct.clone(), args.requests, conc).await;
                miss_cpu.push(cpu);
                let hit = run_bodies(&cached.url, same.clone(), args.requests, conc).await;
                for (target, s) in [("direct", &direct), ("cache off", &cache_off), ("miss", &miss), ("hit", &hit)] {
                    row(scenario, conc, round, target, s);
                }
                off_rps.push(cache_off.rps());
                miss_rps.push(miss.rps());
                let p50 = |s: &Stats| Stats::pct(&s.latencies, 0.5).as_secs_f64() * 1e6;
                hit_added.push(p50(&hit) - p50(&direct));
            }
            let (off_rps, miss_rps) = (median(off_rps), median(miss_rps));
            let (off_cpu, miss_cpu) = (median(off_cpu), median(miss_cpu));
            summary.push(format!(
                "{scenario} c={conc} (medians of {CACHE_ROUNDS} rounds): miss {miss_rps:.0} req/s against cache off \
                 {off_rps:.0} ({:+.1}%); gateway CPU {miss_cpu:.1} against {off_cpu:.1} µs/request ({:+.1}%); a hit's \
                 p50 minus the fake's own: {:+.1} µs",
                (miss_rps / off_rps.max(1.0) - 1.0) * 100.0,
                (miss_cpu / off_cpu.max(1e-9) - 1.0) * 100.0,
                median(hit_added)
            ));
        }
    }
    report.push(String::new());
    for line in summary {
        println!("- {line}");
        report.push(format!("- {line}"));
    }
    let kib = |gateway: &Gateway, field| memory_kib(gateway.child.id(), field).unwrap_or(0);
    let rss = format!(
        "- peak RSS: cache off {} KiB, cached {} KiB (resident at the end: {} KiB; the cache holds at most \
         `cache.max_bytes`)",
        kib(&off, "VmHWM:"),
        kib(&cached, "VmHWM:"),
        kib(&cached, "VmRSS:")
    );
    println!("{rss}");
    report.push(rss);
    if let Some(path) = &args.out {
        std::fs::write(path, report.join("\n") + "\n")?;
    }
    Ok(())
}

/// Instructions the gateway executes for `requests` distinct requests after a warm-up, under callgrind, counted
/// between zeroing the counters after the warm-up and dumping them after the last request.
async fn instructions(
    args: &Args,
    fake: &FakeProvider,
    cached: bool,
    stream: bool,
    requests: usize,
) -> std::io::Result<u64> {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("callgrind.out");
    // The dump of the measured window (`out` itself is written at exit, with what ran after it).
    let part = dir.path().join("callgrind.out.1");
    let wrapper = dir.path().join("tollgate-under-callgrind");
    let bin = std::fs::canonicalize(&args.gateway_bin)?;
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file={} {} \"$@\"\n",
            out.display(),
            bin.display()
        ),
    )?;
    std::process::Command::new("chmod").arg("+x").arg(&wrapper).status()?;
    let mut gateway = Gateway::start(&wrapper.display().to_string(), &fake.url(), &gateway_config(args, cached), None)?;
    run_bodies(&gateway.url, Bodies::Distinct { stream }, 100, 1).await;
    // Count only the measured requests (and what runs beside them), not start-up, warm-up or shutdown.
    let pid = gateway.child.id().to_string();
    let collect = |command: &str| -> std::io::Result<()> {
        let done = std::process::Command::new("callgrind_control").args([command, &pid]).output()?;
        let said = String::from_utf8_lossy(&done.stdout).into_owned() + &String::from_utf8_lossy(&done.stderr);
        if said.contains("OK") { Ok(()) } else { Err(std::io::Error::other(format!("callgrind_control: {said}"))) }
    };
    collect("--zero")?;
    let s = run_bodies(&gateway.url, Bodies::Distinct { stream }, requests, 1).await;
    collect("--dump")?;
    gateway.terminate()?;
    if s.errors > 0 {
        return Err(std::io::Error::other(format!("{} of {requests} requests failed", s.errors)));
    }
    if let Some(path) = &args.out {
        // The profile, for callgrind_annotate: `<out>.json-miss-1000.callgrind` and the like.
        let name =
            format!("{}-{}-{requests}", if stream { "stream" } else { "json" }, if cached { "miss" } else { "off" });
        std::fs::copy(&part, path.with_extension(format!("{name}.callgrind")))?;
    }
    let text = std::fs::read_to_string(&part)?;
    text.lines()
        .find_map(|line| line.strip_prefix("totals:"))
        .and_then(|n| n.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| std::io::Error::other("no totals line in the callgrind dump"))
}

/// What a cache miss costs in instructions per request against the cache off, `--requests` distinct
/// requests at one connection each.
async fn cache_instructions(args: &Args, fake: &FakeProvider) -> std::io::Result<()> {
    let requests = args.requests;
    let mut report = vec![
        format!("instructions per request (callgrind, collecting over {requests} requests after 100 of warm-up)"),
        String::new(),
        "| scenario | cache off | miss | miss / off |".to_string(),
        "|---|---|---|---|".to_string(),
    ];
    for stream in [false, true] {
        let mut per_request = [0f64; 2];
        for (slot, cached) in [false, true].into_iter().enumerate() {
            per_request[slot] = instructions(args, fake, cached, stream, requests).await? as f64 / requests as f64;
        }
        let [off, miss] = per_request;
        report.push(format!(
            "| {} | {off:.0} | {miss:.0} | {:+.1}% |",
            if stream { "stream" } else { "json" },
            (miss / off.max(1.0) - 1.0) * 100.0
        ));
    }
    for line in &report {
        println!("{line}");
    }
    if let Some(path) = &args.out {
        std::fs::write(path, report.join("\n") + "\n")?;
    }
    Ok(())
}
