//! What the load harnesses share: a `tollgate serve` child process with a temporary config, and readings of a
//! process's CPU time and memory from `/proc`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Budgets on, as a real deployment has them: every request is admitted against a per-user spend limit and a
/// per-user rate limit (both large enough never to refuse), and its log row is written to the database.
pub const BUDGETS: &str = r#"
[[spend_limits]]
id = "bench-per-user"
budget_usd = 1000000.0
window = "1d"
dimensions = [ { key = "metadata.user", mode = "split" } ]

[[rate_limits]]
id = "bench-rpm"
limit = 100000000
per = "requests"
window = "1m"
dimensions = [ { key = "metadata.user", mode = "split" } ]
"#;

/// A running `tollgate serve`, killed on drop.
pub struct Gateway {
    pub child: Child,
    /// `http://127.0.0.1:<port>` of the proxy listener.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    /// Stops the gateway with SIGTERM (its graceful shutdown) and waits for it to exit.
    pub fn terminate(&mut self) -> std::io::Result<()> {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status()?;
        self.child.wait()?;
        Ok(())
    }

    /// Starts `bin serve` with OpenAI at `upstream` (`http://host:port`), `extra` TOML appended, and the
    /// database at `database` (default: the embedded SQLite file in a temporary directory). Returns once the
    /// gateway logs that it listens.
    pub fn start(bin: &str, upstream: &str, extra: &str, database: Option<&str>) -> std::io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let admin_port = free_port()?;
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n[logging]\nformat = \"json\"\n[providers.openai]\nbase_url = \"{upstream}/v1\"\napi_key = \"sk-bench\"\n{extra}\n"
        ) + &database.map(|url| format!("\n[database]\nurl = \"{url}\"\n")).unwrap_or_default();
        let path = dir.path().join("tollgate.toml");
        std::fs::write(&path, config)?;
        let bin = std::fs::canonicalize(bin)?;
        let mut child = Command::new(&bin)
            .args(["serve", "--config"])
            .arg(&path)
            .current_dir(dir.path())
            .env("RUST_LOG", "warn,tollgate=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or_else(|| std::io::Error::other("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let mut listening = false;
        for line in lines.by_ref() {
            if line?.contains("listening") {
                listening = true;
                break;
            }
        }
        if !listening {
            let _ = child.kill();
            return Err(std::io::Error::other(format!("{} exited before it listened", bin.display())));
        }
        std::thread::spawn(move || for _ in lines {});
        Ok(Self { child, url: format!("http://127.0.0.1:{port}"), _dir: dir })
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// User + system CPU time of `pid` in clock ticks (10 ms each).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// A `/proc/<pid>/status` memory line in KiB: `VmHWM` (peak resident) or `VmRSS` (resident now).
pub fn memory_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()
}
