//! Tollgate against nginx as a reverse proxy of the same upstream: one command, rounds interleaved, ratios out.
//!
//! The upstream is a static nginx answering `POST /v1/chat/completions` with a fixed OpenAI chat completion (or,
//! when the request carries `x-bench-stream: 1`, a fixed OpenAI event stream with its usage chunk). In front of
//! it, on the same machine and in the same run: nginx as a plain reverse proxy (keep-alive upstream pool,
//! `proxy_buffering off` so streams pass through as they come, a buffered access log), Tollgate on the embedded
//! SQLite database, and Tollgate on Postgres (a throwaway database), both with budgets and logging on (a spend
//! limit and a rate limit split per user; every request priced and logged). wrk (one thread) drives each target
//! for `--duration` seconds per round; the rounds go target after target, so a slow moment of the machine hits
//! every target alike. The report gives each target's median over the rounds and Tollgate's ratios to nginx.
//!
//! `cargo build --release -p tollgate -p tollgate-benches && target/release/vs_nginx --help`
//! Needs `nginx` (Debian's `nginx-light`) and `wrk` on the PATH: `benches/setup.sh` installs them.

#![expect(clippy::print_stdout, reason = "the harness prints its report")]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clap::Parser;
use tollgate_benches::{BUDGETS, Gateway, free_port, memory_kib};

#[derive(Parser)]
struct Args {
    /// The tollgate binary to measure.
    #[arg(long, default_value = "target/release/tollgate")]
    gateway_bin: String,
    /// Rounds; each target runs once per round and scenario, and the median round is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds of load per target, round and scenario.
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Connection counts to run (comma-separated).
    #[arg(long, default_value = "1,32", value_delimiter = ',')]
    concurrency: Vec<usize>,
    /// Postgres server for the Postgres target (a throwaway database is made and dropped); `none` skips it.
    #[arg(long, env = "TOLLGATE_TEST_PG", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// Also write the report to this Markdown file.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

/// What the static upstream answers to a non-streamed request: a chat completion in OpenAI's wire format.
const JSON_BODY: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1733000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello, benchmark!","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_bench"}"#;

/// The streamed answer: role, three content deltas, the finish, the usage chunk and `[DONE]`, as OpenAI sends
/// them with `stream_options.include_usage`.
fn sse_body() -> String {
    let chunk = |delta: &str, finish: &str| {
        format!(
            r#"data: {{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1733000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_bench","choices":[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}],"usage":null}}"#
        ) + "\n\n"
    };
    let mut body = chunk(r#"{"role":"assistant","content":"","refusal":null}"#, "null");
    for word in ["Hello", ", bench", "mark!"] {
        body += &chunk(&format!(r#"{{"content":"{word}"}}"#), "null");
    }
    body += &chunk("{}", r#""stop""#);
    body += r#"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1733000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_bench","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"#;
    body + "\n\ndata: [DONE]\n\n"
}

/// `text` as an nginx single-quoted string (`\n` is nginx's own escape for a newline).
fn nginx_quote(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'").replace('\n', "\\n"))
}

/// A running nginx (master + workers), stopped on drop.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts nginx with `server` blocks inside an `http` block of common settings, its files in `dir`.
fn start_nginx(dir: &Path, name: &str, servers: &str) -> std::io::Result<Nginx> {
    let d = dir.display();
    let conf = format!(
        "daemon off;\nworker_processes auto;\npid {d}/{name}.pid;\nerror_log {d}/{name}-error.log warn;\n\
         events {{ worker_connections 8192; }}\n\
         http {{\n  client_body_temp_path {d}/{name}-body;\n  proxy_temp_path {d}/{name}-proxy;\n\
         fastcgi_temp_path {d}/{name}-fcgi;\n  uwsgi_temp_path {d}/{name}-uwsgi;\n  scgi_temp_path {d}/{name}-scgi;\n\
         keepalive_requests 1000000;\n  keepalive_timeout 300s;\n{servers}\n}}\n"
    );
    let path = dir.join(format!("{name}.conf"));
    std::fs::write(&path, conf)?;
    let child = Command::new("nginx").arg("-c").arg(&path).arg("-p").arg(dir).stderr(Stdio::inherit()).spawn()?;
    Ok(Nginx(child))
}

/// Waits until something accepts connections on `port` (nginx and tollgate bind within milliseconds).
fn wait_listening(port: u16) -> std::io::Result<()> {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Err(std::io::Error::other(format!("nothing listens on port {port}")))
}

/// One wrk run's reading.
#[derive(Clone, Copy, Default)]
struct Reading {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    errors: u64,
}

/// Runs wrk against `url` and reads its report.
fn wrk(script: &Path, url: &str, connections: usize, seconds: u64) -> std::io::Result<Reading> {
    let output = Command::new("wrk")
        .args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency", "-s"])
        .arg(script)
        .arg(format!("{url}/v1/chat/completions"))
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut reading = Reading::default();
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Requests/sec:"), Some(v)) => reading.rps = v.parse().unwrap_or(0.0),
            (Some("50.000%" | "50%"), Some(v)) => reading.p50_us = micros(v),
            (Some("99.000%" | "99%"), Some(v)) => reading.p99_us = micros(v),
            (Some("Non-2xx"), _) => reading.errors += line.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0),
            (Some("Socket"), _) => reading.errors += socket_errors(line),
            _ => {}
        }
    }
    if reading.rps == 0.0 {
        return Err(std::io::Error::other(format!("wrk printed no rate for {url}: {text}")));
    }
    Ok(reading)
}

/// wrk's `1.23ms` / `456.00us` / `1.01s` as microseconds.
fn micros(value: &str) -> f64 {
    let (number, scale) = if let Some(n) = value.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = value.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1e6)
    } else {
        (value, 1.0)
    };
    number.parse::<f64>().unwrap_or(f64::NAN) * scale
}

/// The sum of `Socket errors: connect 0, read 0, write 0, timeout 0`.
fn socket_errors(line: &str) -> u64 {
    line.split(',').filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok()).sum()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// A throwaway Postgres database, dropped at the end of the run.
struct Database {
    admin: String,
    name: String,
}

impl Database {
    fn create(admin: &str) -> std::io::Result<Self> {
        let name = format!("tg_vs_nginx_{}", std::process::id());
        psql(admin, &format!("CREATE DATABASE {name}"))?;
        Ok(Self { admin: admin.to_owned(), name })
    }
    fn url(&self) -> String {
        match self.admin.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{}", self.name),
            None => self.admin.clone(),
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = psql(&self.admin, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

fn psql(url: &str, sql: &str) -> std::io::Result<()> {
    let status = Command::new("psql").args([url, "-qc", sql]).stdout(Stdio::null()).status()?;
    if status.success() { Ok(()) } else { Err(std::io::Error::other(format!("psql failed: {sql}"))) }
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let (upstream_port, proxy_port) = (free_port()?, free_port()?);
    let upstream = format!(
        "  access_log off;\n  server {{\n    listen 127.0.0.1:{upstream_port} reuseport backlog=4096;\n\
         if ($http_x_bench_stream) {{ rewrite ^ /bench-sse last; }}\n\
         location = /bench-sse {{ default_type text/event-stream; return 200 {}; }}\n\
         location / {{ default_type application/json; return 200 {}; }}\n  }}",
        nginx_quote(&sse_body()),
        nginx_quote(JSON_BODY)
    );
    let proxy = format!(
        "  access_log {}/proxy-access.log combined buffer=64k flush=1s;\n\
         upstream provider {{ server 127.0.0.1:{upstream_port}; keepalive 256; }}\n\
         server {{\n    listen 127.0.0.1:{proxy_port} reuseport backlog=4096;\n    location / {{\n\
         proxy_pass http://provider;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n\
         proxy_buffering off;\n    }}\n  }}",
        dir.path().display()
    );
    let _upstream = start_nginx(dir.path(), "upstream", &upstream)?;
    let _proxy = start_nginx(dir.path(), "proxy", &proxy)?;
    wait_listening(upstream_port)?;
    wait_listening(proxy_port)?;
    let upstream_url = format!("http://127.0.0.1:{upstream_port}");
    let database = if args.postgres == "none" { None } else { Some(Database::create(&args.postgres)?) };
    let mut gateways = vec![("tollgate-sqlite", Gateway::start(&args.gateway_bin, &upstream_url, BUDGETS, None)?)];
    if let Some(db) = &database {
        gateways
            .push(("tollgate-postgres", Gateway::start(&args.gateway_bin, &upstream_url, BUDGETS, Some(&db.url()))?));
    }
    let mut targets: Vec<(&str, String)> =
        vec![("static (direct)", upstream_url.clone()), ("nginx-proxy", format!("http://127.0.0.1:{proxy_port}"))];
    targets.extend(gateways.iter().map(|(name, g)| (*name, g.url.clone())));

    let scripts = write_scripts(dir.path())?;
    // Warm every pool and let the gateways reach their steady state before the idle reading.
    for (_, url) in &targets {
        for script in scripts.values() {
            wrk(script, url, 32, 1)?;
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    let idle: Vec<(&str, u64)> =
        gateways.iter().map(|(name, g)| (*name, memory_kib(g.child.id(), "VmRSS:").unwrap_or(0))).collect();

    let mut readings: BTreeMap<(&str, usize, &str), Vec<Reading>> = BTreeMap::new();
    for round in 1..=args.rounds {
        for (scenario, script) in &scripts {
            for &conc in &args.concurrency {
                for (target, url) in &targets {
                    let r = wrk(script, url, conc, args.duration)?;
                    eprintln!(
                        "round {round} {scenario} c={conc} {target}: {:.0} req/s p50 {:.0} µs p99 {:.0} µs",
                        r.rps, r.p50_us, r.p99_us
                    );
                    readings.entry((scenario, conc, target)).or_default().push(r);
                }
            }
        }
    }
    let peak: Vec<(&str, u64)> =
        gateways.iter().map(|(name, g)| (*name, memory_kib(g.child.id(), "VmHWM:").unwrap_or(0))).collect();
    let report = render(&args, &targets, &readings, &idle, &peak);
    print!("{report}");
    if let Some(path) = &args.out {
        std::fs::write(path, &report)?;
    }
    Ok(())
}

/// The wrk scripts, by scenario: a POST with the benchmark's body and headers.
fn write_scripts(dir: &Path) -> std::io::Result<BTreeMap<&'static str, std::path::PathBuf>> {
    let mut scripts = BTreeMap::new();
    for (scenario, stream) in [("json", false), ("stream", true)] {
        let body = serde_json::json!({"model": "gpt-4o-mini", "stream": stream, "max_tokens": 64,
            "messages": [{"role": "user", "content": "Say hello to the benchmark."}]})
        .to_string();
        let lua = format!(
            "wrk.method = \"POST\"\nwrk.body = [[{body}]]\nwrk.headers[\"Content-Type\"] = \"application/json\"\n\
             wrk.headers[\"cf-aig-metadata\"] = [[{{\"user\":\"bench\"}}]]\n{}",
            if stream { "wrk.headers[\"x-bench-stream\"] = \"1\"\n" } else { "" }
        );
        let path = dir.join(format!("{scenario}.lua"));
        std::fs::write(&path, lua)?;
        scripts.insert(scenario, path);
    }
    Ok(scripts)
}

fn render(
    args: &Args,
    targets: &[(&str, String)],
    readings: &BTreeMap<(&str, usize, &str), Vec<Reading>>,
    idle: &[(&str, u64)],
    peak: &[(&str, u64)],
) -> String {
    let mut out = format!(
        "wrk -t1, {} rounds × {} s per target, rounds interleaved; medians over the rounds.\n\n\
         | scenario | conn | target | req/s | p50 µs | p99 µs | vs nginx-proxy req/s | p50 − nginx-proxy µs | errors |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        args.rounds, args.duration
    );
    let summary = |key: (&str, usize, &str)| {
        let rs = readings.get(&key).cloned().unwrap_or_default();
        (
            median(rs.iter().map(|r| r.rps).collect()),
            median(rs.iter().map(|r| r.p50_us).collect()),
            median(rs.iter().map(|r| r.p99_us).collect()),
            rs.iter().map(|r| r.errors).sum::<u64>(),
        )
    };
    for scenario in ["json", "stream"] {
        for &conc in &args.concurrency {
            let (nginx_rps, nginx_p50, _, _) = summary((scenario, conc, "nginx-proxy"));
            for (target, _) in targets {
                let (rps, p50, p99, errors) = summary((scenario, conc, target));
                let _ = writeln!(
                    out,
                    "| {scenario} | {conc} | {target} | {rps:.0} | {p50:.0} | {p99:.0} | {:.2}× | {:+.0} | {errors} |",
                    rps / nginx_rps,
                    p50 - nginx_p50
                );
            }
        }
    }
    out.push('\n');
    for ((name, idle), (_, peak)) in idle.iter().zip(peak) {
        let _ = writeln!(
            out,
            "- {name}: idle RSS {:.1} MiB, peak RSS {:.1} MiB",
            *idle as f64 / 1024.0,
            *peak as f64 / 1024.0
        );
    }
    out
}
