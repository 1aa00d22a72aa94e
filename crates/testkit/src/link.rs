//! A TCP link to a real server (Postgres) that a test or bench can cut or slow down, as a database that goes
//! away or gets slow would look to the gateway.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Link state: `u64::MAX` = down, otherwise the extra delay in microseconds added to every forwarded read.
const DOWN: u64 = u64::MAX;

pub struct Link {
    port: u16,
    state: Arc<AtomicU64>,
    cut: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Link {
    /// Forwards `127.0.0.1:<port>` to `target` (`host:port`).
    pub async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(AtomicU64::new(0));
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let cut = Arc::new(cut);
        let (state2, cut2) = (state.clone(), cut.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { continue };
                if state2.load(Ordering::SeqCst) == DOWN {
                    let _ = client.shutdown().await;
                    continue;
                }
                let (target, state, mut cut) = (target.clone(), state2.clone(), cut2.subscribe());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else { return };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::select! {
                        () = pump(cr, sw, state.clone()) => {}
                        () = pump(sr, cw, state) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self { port, state, cut }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Closes every open connection and refuses new ones.
    pub fn down(&self) {
        self.state.store(DOWN, Ordering::SeqCst);
        self.cut.send_modify(|g| *g += 1);
    }

    /// Forwards again, without delay.
    pub fn up(&self) {
        self.state.store(0, Ordering::SeqCst);
    }

    /// Forwards with `delay` added to every read in both directions.
    pub fn slow(&self, delay: Duration) {
        self.state.store(delay.as_micros() as u64, Ordering::SeqCst);
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    state: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let Ok(n) = from.read(&mut buf).await else { return };
        if n == 0 {
            return;
        }
        let delay = state.load(Ordering::SeqCst);
        if delay == DOWN {
            return;
        }
        if delay > 0 {
            tokio::time::sleep(Duration::from_micros(delay)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
