//! Runs the real `tollgate` binary for end-to-end tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test support")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running `tollgate serve`.
pub struct Gateway {
    pub child: Child,
    pub proxy: String,
    pub admin: String,
    /// Every line the process wrote to stdout (its JSON logs), as they arrive.
    pub logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    /// Starts `tollgate serve` in `dir` with `config` (the listen addresses are added) and waits until both
    /// servers listen.
    pub fn start(dir: &Path, config: &str) -> Self {
        let port = free_port();
        let admin_port = free_port();
        let path = dir.join(format!("tollgate-{port}.toml"));
        std::fs::write(
            &path,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace = \"10s\"\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n\
                 [logging]\nformat = \"json\"\n{config}"
            ),
        )
        .unwrap();
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&path)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut ready = (false, false);
        while !(ready.0 && ready.1) {
            let line = rx.recv_timeout(Duration::from_secs(30)).expect("tollgate did not start");
            ready.0 |= line.contains("tollgate proxy listening");
            ready.1 |= line.contains("tollgate admin listening");
            assert!(!line.contains("\"level\":\"ERROR\""), "tollgate failed to start: {line}");
            logs.lock().unwrap().push(line);
        }
        // Keep reading so the child never blocks on a full pipe.
        let kept = logs.clone();
        std::thread::spawn(move || {
            while let Ok(line) = rx.recv() {
                kept.lock().unwrap().push(line);
            }
        });
        Self { child, proxy: format!("http://127.0.0.1:{port}"), admin: format!("http://127.0.0.1:{admin_port}"), logs }
    }

    /// Sends SIGTERM and waits for the exit code.
    pub fn stop(self) -> Option<i32> {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        self.wait_exit()
    }

    /// Waits for the process to exit (after a signal sent elsewhere).
    pub fn wait_exit(mut self) -> Option<i32> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(std::time::Instant::now() < deadline, "tollgate did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub fn tempdir() -> PathBuf {
    let dir = tempfile::tempdir().unwrap();
    dir.keep()
}
