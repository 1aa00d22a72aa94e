//! The `tollgate` binary: parse the command line, load the configuration, run the gateway until a signal.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

mod persist;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tollgate_accounting::PriceCatalog;
use tollgate_config::{Config, LogFormat, Source};
use tollgate_proxy::Gateway;
use tollgate_proxy::metrics::{MeteredSink, Metrics};
use tollgate_store::{LogWriter, SpendSync, SpendSyncOptions, Store, WriterOptions};

#[derive(Parser)]
#[command(name = "tollgate", version, about = "A self-hosted AI gateway with exact spend limits")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy until SIGINT/SIGTERM, then drain in-flight requests.
    Serve {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Load and validate the configuration, print it with secrets redacted, exit 0 or 1.
    CheckConfig {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Apply the database migrations and exit (`serve` applies them too).
    Migrate {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => match load(config) {
            Ok(config) if let Err(error) = load_catalog(&config) => {
                eprintln!("invalid configuration: {error}");
                ExitCode::FAILURE
            }
            Ok(config) => match toml::to_string_pretty(&config.redacted()) {
                Ok(text) => {
                    print_out(&text);
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("could not print the configuration: {error}");
                    ExitCode::FAILURE
                }
            },
            Err(code) => code,
        },
        Command::Migrate { config } => {
            let config = match load(config) {
                Ok(config) => config,
                Err(code) => return code,
            };
            let _log_guard = init_tracing(config.logging.format);
            run(async move {
                match open_store(&config).await {
                    Ok(store) => {
                        store.close().await;
                        tracing::info!("migrations applied");
                        ExitCode::SUCCESS
                    }
                    Err(code) => code,
                }
            })
        }
        Command::Serve { config } => {
            let config = match load(config) {
                Ok(config) => config,
                Err(code) => return code,
            };
            // Keep the guard for the life of the process: dropping it flushes the log writer.
            let _log_guard = init_tracing(config.logging.format);
            run(serve(Arc::new(config)))
        }
    }
}

fn run(future: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(future),
        Err(error) => {
            eprintln!("could not start the runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Opens the database and applies the migrations; a database that cannot be reached at start is fatal
/// (an orchestrator restarts the process), unlike one that goes away later (records then spill).
async fn open_store(config: &Config) -> Result<Store, ExitCode> {
    let store = match Store::open(config.database.url.expose(), persist::store_options(config)).await {
        Ok(store) => store,
        Err(error) => {
            tracing::error!(%error, "cannot open the database (database.url)");
            return Err(ExitCode::FAILURE);
        }
    };
    if let Err(error) = store.migrate().await {
        tracing::error!(%error, "cannot apply the database migrations");
        return Err(ExitCode::FAILURE);
    }
    Ok(store)
}

#[expect(clippy::print_stdout, reason = "check-config prints the effective configuration on stdout")]
fn print_out(text: &str) {
    println!("{text}");
}

fn load(file: Option<PathBuf>) -> Result<Config, ExitCode> {
    Config::load(&Source { file, env: None }).map_err(|error| {
        eprint!("{error}");
        ExitCode::FAILURE
    })
}

/// Log lines are written by a background thread: the request path only queues them, so a slow terminal or
/// pipe never holds a request up (and no request takes the stdout lock). Past this many queued lines, new
/// ones are dropped rather than block a request; request records go to the database, not here.
const LOG_QUEUE_LINES: usize = 128 * 1024;

fn init_tracing(format: Option<LogFormat>) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let pretty = format.map_or_else(|| std::io::stdout().is_terminal(), |f| f == LogFormat::Pretty);
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .finish(std::io::stdout());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    if pretty {
        builder.init();
    } else {
        builder.json().flatten_event(true).with_current_span(true).with_span_list(false).init();
    }
    guard
}

async fn serve(config: Arc<Config>) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(config.server.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(listen = %config.server.listen, %error, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let admin_listener = match tokio::net::TcpListener::bind(config.admin.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(listen = %config.admin.listen, %error, "cannot listen (admin)");
            return ExitCode::FAILURE;
        }
    };
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    for warning in config.startup_warnings() {
        tracing::warn!("{warning}");
    }
    tracing::info!(listen = %local, version = env!("CARGO_PKG_VERSION"), "tollgate proxy listening");
    let shutdown = CancellationToken::new();
    tokio::spawn(wait_for_signal(shutdown.clone()));
    let grace = config.server.shutdown_grace;
    let catalog = match load_catalog(&config) {
        Ok(catalog) => Arc::new(catalog),
        Err(error) => {
            tracing::error!(%error, "cannot load prices");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(version = catalog.version(), "price catalog loaded");
    let store = match open_store(&config).await {
        Ok(store) => store,
        Err(code) => return code,
    };
    tracing::info!(database = store.kind().as_str(), "database ready");
    let writer = LogWriter::spawn(&store, WriterOptions::default());
    let metrics = Arc::new(Metrics::new(config.providers.keys().map(String::as_str)));
    let sink = MeteredSink { metrics: metrics.clone(), inner: persist::StoreSink { writer: writer.clone() } };
    let gateway = Arc::new(Gateway::new(config.clone(), catalog, Arc::new(sink)));
    let admin = tollgate_admin::AdminState {
        config: config.clone(),
        gateway: gateway.clone(),
        metrics,
        started: std::time::Instant::now(),
        store: Some(store.clone()),
    };
    // Rules created through the admin API live in the database: load them before the first request, then
    // follow changes made on any replica.
    match tollgate_admin::load_rules(&admin).await {
        Ok(loaded) => tracing::info!(api_rules = loaded, "spend rules loaded"),
        Err(error) => {
            tracing::error!(%error, "cannot load the spend rules from the database");
            return ExitCode::FAILURE;
        }
    }
    // Budgets continue where they were: load the current windows' spend before the first request.
    let spend_sync = SpendSync::new(
        &store,
        Arc::new(gateway.spend.clone()),
        SpendSyncOptions { flush_interval: config.database.flush_interval, ..SpendSyncOptions::default() },
    );
    match spend_sync.load().await {
        Ok(buckets) => tracing::info!(buckets, "spend loaded"),
        Err(error) => {
            tracing::error!(%error, "cannot load spend from the database");
            return ExitCode::FAILURE;
        }
    }
    let spend_task = spend_sync.spawn();
    let retention_task = tokio::spawn(retention(store.clone(), config.database.retention, shutdown.clone()));
    let sweep_task = tokio::spawn(sweep_rate_buckets(gateway.clone(), shutdown.clone()));
    let rule_sync_task = tokio::spawn(tollgate_admin::run_rule_sync(admin.clone(), shutdown.clone()));
    let rollup_key_task = tokio::spawn(tollgate_admin::run_rollup_key_sync(admin.clone(), shutdown.clone()));
    let admin_task = tokio::spawn(tollgate_admin::serve(admin_listener, admin, shutdown.clone()));
    tollgate_proxy::serve(listener, gateway, shutdown, grace).await;
    if let Ok(Err(error)) = admin_task.await {
        tracing::warn!(%error, "admin server ended with an error");
    }
    // Every request has finished and recorded: write out what is still in memory.
    spend_task.abort();
    retention_task.abort();
    sweep_task.abort();
    rule_sync_task.abort();
    rollup_key_task.abort();
    if let Err(error) = spend_sync.flush_now().await {
        tracing::error!(%error, "spend could not be flushed at exit (it is in the spill file)");
    }
    if let Err(error) = writer.close().await {
        tracing::error!(%error, "request logs could not be flushed at exit (they are in the spill file)");
    }
    store.close().await;
    tracing::info!("tollgate stopped");
    ExitCode::SUCCESS
}

/// The bundled catalog with `[pricing] file` layered over it.
fn load_catalog(config: &Config) -> Result<PriceCatalog, String> {
    let catalog = PriceCatalog::bundled().map_err(|e| format!("bundled catalog: {e}"))?;
    let Some(path) = &config.pricing.file else { return Ok(catalog) };
    let text = std::fs::read_to_string(path).map_err(|e| format!("pricing.file {}: {e}", path.display()))?;
    catalog.with_overrides(&text).map_err(|e| format!("pricing.file {}: {e}", path.display()))
}

/// Deletes request log rows older than `retention`, hourly, in small batches (rollups are kept).
async fn retention(store: Store, retention: std::time::Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_hours(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let Ok(age) = jiff::SignedDuration::try_from(retention) else { continue };
        let Ok(cutoff) = jiff::Timestamp::now().checked_sub(age) else { continue };
        match store.delete_older_than(cutoff).await {
            Ok(report) if report.deleted > 0 => tracing::info!(deleted = report.deleted, "old request logs deleted"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "retention failed; will retry"),
        }
    }
}

/// Rate-limit buckets that no request has touched for a whole window hold nothing: drop them, so a client
/// cycling through split values cannot grow memory without bound.
const RATE_SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_mins(1);

async fn sweep_rate_buckets(gateway: Arc<Gateway>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(RATE_SWEEP_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let kept = gateway.rates.sweep();
                tracing::debug!(kept, "rate-limit buckets swept");
            }
            () = shutdown.cancelled() => return,
        }
    }
}

async fn wait_for_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                let _ = ctrl_c.await;
                shutdown.cancel();
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => tracing::info!("SIGINT received"),
            _ = term.recv() => tracing::info!("SIGTERM received"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    shutdown.cancel();
}
