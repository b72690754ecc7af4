//! What the end-to-end benches share: this binary re-run as a child process in a role (a real
//! `axion serve`, a sink), reached over loopback, and the process's memory.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The variable that tells a re-run bench binary which role to play.
pub const ROLE: &str = "AXION_BENCH_ROLE";

/// A child process running this binary in a role; it prints its address first and stops when
/// its stdin closes.
pub struct ChildRole {
    child: Child,
    /// `http://addr` of what it serves.
    pub base: String,
}

impl ChildRole {
    /// Starts the role and waits for its address.
    pub fn spawn(role: &str) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(ROLE, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        Self {
            child,
            base: format!("http://{}", line.trim()),
        }
    }

    /// Closes its stdin and waits for it.
    pub fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// Resolves when the parent closes our stdin.
pub async fn wait_for_stdin_close() {
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin()
            .read_line(&mut line)
            .map(|n| n > 0)
            .unwrap_or(false)
        {}
    })
    .await
    .unwrap();
}

/// The `serve` role: `axion serve` with keys `pk-bench`/`sk-bench` on a throwaway store.
pub fn run_serve() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let server = axion_server::Server::start(axion_server::ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_path_buf(),
            keys: Some(("pk-bench".into(), "sk-bench".into())),
        })
        .await
        .unwrap();
        println!("{}", server.local_addr());
        wait_for_stdin_close().await;
        server.shutdown().await;
    });
}

/// This process's resident memory in MB.
pub fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
