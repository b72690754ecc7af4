//! What the end-to-end benches share (those of `axion-server` include this file too): this
//! binary re-run as a child process in a role (a real `axion serve`, a sink), reached over
//! loopback, and memory figures.
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
        Self::spawn_with(role, &[])
    }

    /// The same, with extra environment variables for the child.
    pub fn spawn_with(role: &str, env: &[(&str, &std::ffi::OsStr)]) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(ROLE, role)
            .envs(env.iter().copied())
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

    /// The child's peak resident memory (`VmHWM`) in MB.
    pub fn peak_rss_mb(&self) -> f64 {
        status_mb(&format!("/proc/{}/status", self.child.id()), "VmHWM:")
    }

    /// CPU time the child has used so far (user + system, all its threads, ended ones too), in
    /// seconds. Unlike wall time on a shared machine, this hardly depends on what else runs.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_of(&format!("/proc/{}/stat", self.child.id())).total()
    }

    /// Minor page faults the child has taken so far (all its threads, ended ones too): each
    /// is a page of memory touched for the first time since the allocator handed it back to
    /// the system, or since it was mapped.
    pub fn minor_faults(&self) -> u64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // After the name: minflt is field 10, cminflt 11.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(10 - 3)?.parse().ok())
            .unwrap_or(0)
    }

    /// Waits until the child is idle (its CPU time grows by under 2 ms in 100 ms; 10 s at
    /// most), so that work left from one measurement (a writer applying rows, checkpoints) is
    /// not counted in the next.
    pub fn settle(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut last = self.cpu_seconds();
        while std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let now = self.cpu_seconds();
            if now - last < 0.002 {
                return;
            }
            last = now;
        }
    }

    /// Bytes the child has written so far: handed to `write` and its kin, and sent on to
    /// storage (`/proc/<pid>/io`: `wchar`, `write_bytes`).
    pub fn written_bytes(&self) -> (u64, u64) {
        let io =
            std::fs::read_to_string(format!("/proc/{}/io", self.child.id())).unwrap_or_default();
        let field = |name: &str| {
            io.lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|value| value.trim().parse().ok())
                .unwrap_or(0)
        };
        (field("wchar:"), field("write_bytes:"))
    }

    /// CPU time of the child's live threads, summed by thread name (`tokio-runtime-w…`,
    /// `axion-sqlite-writer`, …), largest first.
    pub fn cpu_by_thread(&self) -> Vec<ThreadCpu> {
        let mut by_name: Vec<ThreadCpu> = Vec::new();
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.child.id()));
        for task in tasks.into_iter().flatten().flatten() {
            let cpu = cpu_of(&task.path().join("stat").to_string_lossy());
            match by_name.iter_mut().find(|known| known.name == cpu.name) {
                Some(known) => {
                    known.user += cpu.user;
                    known.system += cpu.system;
                }
                None => by_name.push(cpu),
            }
        }
        by_name.sort_by(|a, b| b.total().total_cmp(&a.total()));
        by_name
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

/// The `serve` role: `axion serve` with keys `pk-bench`/`sk-bench`, its data in
/// `AXION_DATA_DIR` (else a throwaway directory) or, with `AXION_DATABASE_URL`, in that
/// PostgreSQL database, with the CLI's runtime settings.
pub fn run_serve() {
    // As `axion serve` does: a small blocking pool (store calls run there, and every extra
    // thread is another malloc arena and SQLite connection).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(16)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = std::env::var_os("AXION_DATA_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| dir.path().to_path_buf());
        let server = axion_server::Server::start(axion_server::ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir,
            keys: Some(("pk-bench".into(), "sk-bench".into())),
            database_url: std::env::var("AXION_DATABASE_URL").ok(),
        })
        .await
        .unwrap();
        println!("{}", server.local_addr());
        wait_for_stdin_close().await;
        server.shutdown().await;
    });
}

/// This process's CPU time so far (user + system, all threads), in seconds.
pub fn own_cpu_seconds() -> f64 {
    cpu_of("/proc/self/stat").total()
}

/// The machine's CPU time so far, summed over its cores: (busy, all) in seconds (`/proc/stat`;
/// idle and I/O wait are not busy).
pub fn machine_cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|value| value.parse().ok())
        .collect();
    let all: f64 = ticks.iter().sum();
    let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
    ((all - idle) / 100.0, all / 100.0)
}

/// This process's resident memory in MB.
pub fn rss_mb() -> f64 {
    status_mb("/proc/self/status", "VmRSS:")
}

/// CPU seconds of a process or thread, by kind.
#[derive(Debug, Clone, Default)]
pub struct ThreadCpu {
    /// Thread (or process) name.
    pub name: String,
    /// Seconds in user code.
    pub user: f64,
    /// Seconds in the kernel on its behalf (system calls, page faults).
    pub system: f64,
}

impl ThreadCpu {
    /// User plus system seconds.
    pub fn total(&self) -> f64 {
        self.user + self.system
    }
}

/// The CPU time in a `/proc/…/stat` file.
fn cpu_of(path: &str) -> ThreadCpu {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let Some((head, rest)) = stat.rsplit_once(')') else {
        return ThreadCpu::default();
    };
    let name = head.split_once('(').map_or("", |(_, name)| name).to_owned();
    // After the name: state is field 3, utime 14 and stime 15, in USER_HZ (100 per second
    // on Linux).
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let seconds = |index: usize| {
        fields
            .get(index - 3)
            .and_then(|value| value.parse::<f64>().ok())
            .map_or(f64::NAN, |ticks| ticks / 100.0)
    };
    ThreadCpu {
        name,
        user: seconds(14),
        system: seconds(15),
    }
}

/// A memory field of a `/proc/<pid>/status` file, in MB.
fn status_mb(path: &str, field: &str) -> f64 {
    let status = std::fs::read_to_string(path).unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
