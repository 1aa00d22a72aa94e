//! The `tollgate` binary: parse the command line, load the configuration, run the gateway until a signal.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

mod persist;
mod supervisor;
mod tasks;

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tollgate_accounting::PriceCatalog;
use tollgate_config::{Config, LogFormat, Source};
use tollgate_proxy::Gateway;
use tollgate_proxy::metrics::{MeteredSink, Metrics};
use tollgate_store::{LogWriter, SpendSync, SpendSyncOptions, Store, WriterOptions};

use crate::supervisor::Supervisor;

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
    let Some((listener, admin_listener)) = bind(&config).await else { return ExitCode::FAILURE };
    for warning in config.startup_warnings() {
        tracing::warn!("{warning}");
    }
    let supervisor = Supervisor::new();
    supervisor.spawn("signals", wait_for_signal(supervisor.shutdown_token(), supervisor.stop_token()));
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
    let ingest =
        match tollgate_ingest::Ingest::new(&config.ingest, store.clone(), tollgate_ingest::IngestOptions::default()) {
            Ok(ingest) => ingest,
            Err(error) => {
                tracing::error!(error = &error as &dyn std::error::Error, "cannot set up the provider ingest");
                return ExitCode::FAILURE;
            }
        };
    let admin = tollgate_admin::AdminState {
        config: config.clone(),
        gateway: gateway.clone(),
        metrics,
        started: std::time::Instant::now(),
        store: Some(store.clone()),
        ingest: Some(ingest),
    };
    let Some(spend_sync) = load_rules_and_spend(&admin, &store).await else { return ExitCode::FAILURE };
    start_tasks(&supervisor, &admin, &store, &spend_sync, admin_listener);
    let proxy = tollgate_proxy::serve(listener, gateway, supervisor.shutdown_token(), config.server.shutdown_grace);
    shut_down(proxy, supervisor, Persistence { spend_sync, writer, store }).await
}

/// Binds the proxy and admin listeners; a port that cannot be bound is fatal (logged here).
async fn bind(config: &Config) -> Option<(TcpListener, TcpListener)> {
    let listener = match TcpListener::bind(config.server.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(listen = %config.server.listen, %error, "cannot listen");
            return None;
        }
    };
    let admin_listener = match TcpListener::bind(config.admin.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(listen = %config.admin.listen, %error, "cannot listen (admin)");
            return None;
        }
    };
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(listen = %local, version = env!("CARGO_PKG_VERSION"), "tollgate proxy listening");
    Some((listener, admin_listener))
}

/// Loads, before the first request, the rules created through the admin API (they live in the database) and the
/// current windows' spend, so budgets continue where they were. Either failing is fatal (logged here).
async fn load_rules_and_spend(admin: &tollgate_admin::AdminState, store: &Store) -> Option<SpendSync> {
    match tollgate_admin::load_rules(admin).await {
        Ok(loaded) => tracing::info!(api_rules = loaded, "spend rules loaded"),
        Err(error) => {
            tracing::error!(%error, "cannot load the spend rules from the database");
            return None;
        }
    }
    let options =
        SpendSyncOptions { flush_interval: admin.config.database.flush_interval, ..SpendSyncOptions::default() };
    let spend_sync = SpendSync::new(store, Arc::new(admin.gateway.spend.clone()), options);
    match spend_sync.load().await {
        Ok(buckets) => tracing::info!(buckets, "spend loaded"),
        Err(error) => {
            tracing::error!(%error, "cannot load spend from the database");
            return None;
        }
    }
    Some(spend_sync)
}

/// Registers every task with the supervisor: the admin server stops with the listeners, the rest once the proxy
/// has drained.
fn start_tasks(
    supervisor: &Supervisor,
    admin: &tollgate_admin::AdminState,
    store: &Store,
    spend_sync: &SpendSync,
    admin_listener: TcpListener,
) {
    let stop = || supervisor.stop_token();
    supervisor.spawn("spend_sync", tasks::until_stopped(spend_sync.spawn(), stop()));
    supervisor.spawn("retention", tasks::retention(store.clone(), admin.config.database.retention, stop()));
    supervisor.spawn("rate_sweep", tasks::sweep_rate_buckets(admin.gateway.clone(), stop()));
    if let Some(shared) = admin.gateway.shared_rates.clone() {
        supervisor.spawn("replica_heartbeat", tasks::replica_heartbeat(admin.gateway.clone(), shared, stop()));
    }
    supervisor.spawn("rule_sync", tasks::rule_sync(admin.clone(), stop()));
    supervisor.spawn("rollup_key_sync", tasks::rollup_key_sync(admin.clone(), stop()));
    if let Some(ingest) = admin.ingest.clone().filter(|i| !i.providers().is_empty()) {
        supervisor.spawn("ingest", tasks::ingest(ingest, stop()));
    }
    let (admin, shutdown) = (admin.clone(), supervisor.shutdown_token());
    supervisor.spawn("admin", async move {
        if let Err(error) = tollgate_admin::serve(admin_listener, admin, shutdown).await {
            tracing::warn!(%error, "admin server ended with an error");
        }
    });
}

/// What holds spend and request logs not yet in the database.
struct Persistence {
    spend_sync: SpendSync,
    writer: LogWriter,
    store: Store,
}

/// The shutdown order, written once:
///
/// 1. Stop accepting: a signal (or the first task to end) cancels the supervisor's shutdown token, and the proxy
///    and admin listeners stop accepting.
/// 2. Drain: `proxy` returns once the requests in flight have finished, at most `server.shutdown_grace`.
/// 3. Stop the tasks: the background tasks are stopped and awaited, the admin server's requests included.
/// 4. Flush spend: every request has finished and settled, so what is still in memory is written out.
/// 5. Close the log writer, then 6. the store.
///
/// Exits 1 when a task ended before shutdown began.
async fn shut_down(
    proxy: impl std::future::Future<Output = ()>,
    supervisor: Supervisor,
    persistence: Persistence,
) -> ExitCode {
    proxy.await;
    let healthy = supervisor.stop().await;
    if let Err(error) = persistence.spend_sync.flush_now().await {
        tracing::error!(%error, "spend could not be flushed at exit (it is in the spill file)");
    }
    if let Err(error) = persistence.writer.close().await {
        tracing::error!(%error, "request logs could not be flushed at exit (they are in the spill file)");
    }
    persistence.store.close().await;
    tracing::info!("tollgate stopped");
    if healthy { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// The bundled catalog with `[pricing] file` layered over it.
fn load_catalog(config: &Config) -> Result<PriceCatalog, String> {
    let catalog = PriceCatalog::bundled().map_err(|e| format!("bundled catalog: {e}"))?;
    let Some(path) = &config.pricing.file else { return Ok(catalog) };
    let text = std::fs::read_to_string(path).map_err(|e| format!("pricing.file {}: {e}", path.display()))?;
    catalog.with_overrides(&text).map_err(|e| format!("pricing.file {}: {e}", path.display()))
}

/// Cancels `shutdown` at SIGINT or SIGTERM; returns without it once `stop` is cancelled (a task ended first).
async fn wait_for_signal(shutdown: CancellationToken, stop: CancellationToken) {
    tokio::select! {
        () = signal() => shutdown.cancel(),
        () = stop.cancelled() => {}
    }
}

async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                let _ = ctrl_c.await;
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
}
