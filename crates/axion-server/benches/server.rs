//! `axion serve` end to end: this binary re-runs itself as the server process, then loads it
//! from this (second) process over loopback HTTP, exactly as an SDK would.
//!
//! `cargo bench -p axion-server --bench server` runs the full set (100k and 1M stored traces;
//! set `AXION_BENCH_TRACES=100000` for a shorter run). Under `cargo test --benches` it runs a
//! smoke pass of a few batches so the harness itself stays tested. Results are in the README.
//!
//! Measured:
//! * start-up: process spawn → first `200` from `/api/public/health` (fresh data dir);
//! * OTLP protobuf ingest, 512 spans per request, 4 connections, each answered once durable
//!   (synced to disk), the clock stopped once a read sees everything;
//! * `GET /traces?userId&tags&fromTimestamp&toTimestamp` p50/p95 at 100k and 1M traces;
//! * `GET /traces/{id}` with 100 observations, p50;
//! * a dashboard's metrics query (`GET /v2/metrics`, per name and day) at 100k and 1M traces;
//! * the server's CPU time and bytes written per span ingested (`/proc/<pid>/stat`, `io`), and
//!   how busy the machine was meanwhile;
//! * the server's peak RSS (`VmHWM`) after everything;
//! * live ingest into a fresh server up to 2M spans stored, step by step: the rate, CPU and
//!   bytes written per span as the database grows.
//!
//! `AXION_BENCH_POSTGRES=postgres://…/postgres` (an admin URL) runs every server on a fresh
//! PostgreSQL database of that server instead of SQLite, and adds PostgreSQL's own CPU time
//! to the ingest figures.
//!
//! `AXION_BENCH_ONLY=ingest` stops after the first ingest run and `AXION_BENCH_ONLY=scale` runs
//! the growing database alone, for comparing builds run after run; `AXION_BENCH_INGEST_BATCHES`
//! lengthens the first ingest run, to attach a profiler to the server.
//!
//! Last full run (session 13, 2-core VM, random W3C-like ids; details, the previous build on
//! the same day and goals in the README):
//!
//! | benchmark | result |
//! | --- | --- |
//! | start-up to healthy | 43.2 ms |
//! | OTLP ingest, 512 spans/request, 4 connections | 48 491 spans/s (short runs: 50.1–50.9k) |
//! | server CPU per span ingested | 31.9 µs (writer 15.8, request threads 13.1, checkpoints 1.8) |
//! | server minor page faults per span ingested | 0.39 |
//! | bytes the server wrote per span ingested | 4.69 KB |
//! | trace detail, 100 observations | p50 3.75 ms |
//! | list traces, tag + user + time, 1M stored | p50 17.54 ms, p95 21.79 ms |
//! | metrics query per name and day over 20 days, 1M stored (session 14) | p50 1 021 ms |
//! | server peak RSS after 1M traces | 163 MB |
//! | live ingest, 1.64M → 2.05M spans stored | 22.7–24.3k spans/s, writer 29.8–31.4 µs, 17.0 KB per span |

use std::time::{Duration, Instant};

#[path = "../../axion/benches/support/mod.rs"]
mod support;
mod workload;

// As in the `axion` binary, so the figures are those of `axion serve`.
#[global_allocator]
static ALLOCATOR: axion_server::allocator::ServerAllocator =
    axion_server::allocator::ServerAllocator;

use support::{run_serve, ChildRole, ROLE};
use workload::{export, export_with, id_bytes, Times, BATCH};

fn main() {
    axion_server::allocator::configure();
    if std::env::var(ROLE).as_deref() == Ok("serve") {
        return run_serve();
    }
    let full = std::env::args().any(|arg| arg == "--bench");
    // A small blocking pool: store calls run there, and every extra thread is another malloc
    // arena and SQLite connection.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(16)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(load(full));
}

fn client() -> reqwest::Client {
    use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
    let mut headers = HeaderMap::new();
    // base64("pk-bench:sk-bench")
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_static("Basic cGstYmVuY2g6c2stYmVuY2g="),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// Sends exports over `connections` parallel connections; returns spans per second.
async fn ingest(base: &str, exports: Vec<(Vec<u8>, usize)>, connections: usize) -> f64 {
    let client = client();
    let url = format!("{base}/api/public/otel/v1/traces");
    let total: usize = exports.iter().map(|(_, spans)| spans).sum();
    let queue = std::sync::Arc::new(std::sync::Mutex::new(exports));
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (client, url, queue) = (client.clone(), url.clone(), queue.clone());
            tokio::spawn(async move {
                loop {
                    let next = queue.lock().unwrap().pop();
                    let Some((body, _)) = next else { break };
                    let response = client
                        .post(&url)
                        .header("content-type", "application/x-protobuf")
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(
                        response.status(),
                        200,
                        "{}",
                        response.text().await.unwrap_or_default()
                    );
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    // Answered means logged and on disk; the clock stops once the database has it all (a
    // read waits for every answered write).
    let response = client
        .get(format!("{base}/api/public/traces?limit=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    total as f64 / started.elapsed().as_secs_f64()
}

async fn percentiles(
    mut sample: impl FnMut(usize) -> (String, reqwest::Client),
    runs: usize,
) -> (f64, f64) {
    let mut times = Vec::with_capacity(runs);
    for i in 0..runs {
        let (url, client) = sample(i);
        let started = Instant::now();
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let _ = response.bytes().await.unwrap();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (times[runs / 2], times[runs * 95 / 100])
}

/// Where a spawned server keeps its data: a fresh directory, or with `AXION_BENCH_POSTGRES`
/// a fresh database on that PostgreSQL server.
struct Storage {
    dir: tempfile::TempDir,
    database_url: Option<std::ffi::OsString>,
}

const POSTGRES: &str = "AXION_BENCH_POSTGRES";

impl Storage {
    fn fresh() -> Self {
        let database_url = std::env::var(POSTGRES).ok().map(|admin| {
            let name = format!(
                "axion_bench_{}",
                axion_model::random_event_id().replace('-', "")
            );
            run_on_postgres(&admin, format!("CREATE DATABASE {name}")).unwrap();
            let (base, _) = admin.rsplit_once('/').unwrap();
            format!("{base}/{name}").into()
        });
        Self {
            dir: tempfile::tempdir().unwrap(),
            database_url,
        }
    }

    fn spawn(&self) -> ChildRole {
        match &self.database_url {
            Some(url) => ChildRole::spawn_with("serve", &[("AXION_DATABASE_URL", url.as_os_str())]),
            None => {
                ChildRole::spawn_with("serve", &[("AXION_DATA_DIR", self.dir.path().as_os_str())])
            }
        }
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        let (Some(url), Ok(admin)) = (&self.database_url, std::env::var(POSTGRES)) else {
            return;
        };
        let name = url
            .to_string_lossy()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let _ = run_on_postgres(
            &admin,
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
    }
}

/// Runs `sql` on the PostgreSQL server at `admin`, from a thread of its own: the blocking
/// client runs a runtime of its own, which tokio refuses inside the bench's.
fn run_on_postgres(admin: &str, sql: String) -> Result<(), postgres::Error> {
    let admin = admin.to_owned();
    std::thread::spawn(move || {
        postgres::Client::connect(&admin, postgres::NoTls)?.batch_execute(&sql)
    })
    .join()
    .expect("the admin thread ends")
}

/// The CPU time of the PostgreSQL server so far, in seconds: its live processes, and the
/// backends that ended (counted into the postmaster's children's time). Zero without one.
fn postgres_cpu_seconds() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let mut seconds = 0.0;
    for entry in entries.flatten() {
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if !head.ends_with("(postgres") {
            continue;
        }
        // After the name: utime, stime, cutime, cstime are fields 14–17, in USER_HZ.
        let fields: Vec<f64> = rest
            .split_whitespace()
            .skip(11)
            .take(4)
            .map(|field| field.parse().unwrap_or(0.0))
            .collect();
        seconds += fields.iter().sum::<f64>() / 100.0;
    }
    seconds
}

async fn startup_ms() -> f64 {
    let mut times = Vec::new();
    for _ in 0..5 {
        let storage = Storage::fresh();
        let started = Instant::now();
        let server = storage.spawn();
        let url = format!("{}/api/public/health", server.base);
        loop {
            if reqwest::get(&url)
                .await
                .map(|r| r.status() == 200)
                .unwrap_or(false)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        server.stop();
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    times[times.len() / 2]
}

/// The list query of the `i`-th sample: user and tag vary together (a trace's tag follows
/// from its user), the time range is fixed.
fn list_url(base: &str, i: usize) -> String {
    format!(
        "{base}/api/public/traces?userId=user-{}&tags=team-{}&fromTimestamp=2026-01-05T00:00:00Z&toTimestamp=2026-01-25T00:00:00Z&limit=50",
        i % 1000,
        i % 20
    )
}

async fn list_query(base: &str, label: &str) {
    let client = client();
    // A query that finds nothing would time nothing.
    let found: serde_json::Value = client
        .get(list_url(base, 1))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        found["data"]
            .as_array()
            .is_some_and(|data| !data.is_empty()),
        "the list query finds no traces: {found}"
    );
    let (p50, p95) = percentiles(|i| (list_url(base, i), client.clone()), 200).await;
    println!("| list traces, tag + user + time range, {label} stored | p50 {p50:.2} ms, p95 {p95:.2} ms |");
}

/// A dashboard's metrics query over the list query's 20 days (two thirds of the stored
/// observations): per observation name and day, count, total cost and p95 latency.
async fn metrics_query(base: &str, label: &str) {
    let client = client();
    let query = serde_json::json!({
        "view": "observations",
        "dimensions": [{"field": "name"}],
        "metrics": [{"measure": "count", "aggregation": "count"}, {"measure": "totalCost", "aggregation": "sum"},
                    {"measure": "latency", "aggregation": "p95"}],
        "timeDimension": {"granularity": "day"},
        "fromTimestamp": "2026-01-05T00:00:00Z", "toTimestamp": "2026-01-25T00:00:00Z",
        "config": {"row_limit": 1000},
    });
    let url = format!(
        "{base}/api/public/v2/metrics?query={}",
        form_urlencoded::byte_serialize(query.to_string().as_bytes()).collect::<String>()
    );
    let answer: serde_json::Value = client.get(&url).send().await.unwrap().json().await.unwrap();
    let counted: u64 = answer["data"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|row| row["count_count"].as_u64())
                .sum()
        })
        .unwrap_or(0);
    assert!(counted > 0, "the metrics query counts nothing: {answer}");
    let (p50, _) = percentiles(|_| (url.clone(), client.clone()), 5).await;
    println!("| metrics query: count, cost and p95 latency per name and day over 20 days, {label} stored ({counted} observations) | p50 {p50:.0} ms |");
}

async fn load(full: bool) {
    println!("| benchmark | result |\n| --- | --- |");
    // `AXION_BENCH_ONLY=scale` runs the growing database alone.
    if std::env::var("AXION_BENCH_ONLY").as_deref() == Ok("scale") {
        return ingest_as_the_database_grows(full).await;
    }
    let startup = startup_ms().await;
    println!("| start-up to healthy (spawn → 200 /health), median of 5 | {startup:.1} ms |");

    let storage = Storage::fresh();
    let server = storage.spawn();
    let base = server.base.clone();

    // Ingest throughput: 8-span traces, 512 spans per request.
    // `AXION_BENCH_INGEST_BATCHES` makes the run longer, to attach a profiler to the server.
    let batches =
        workload::env_number("AXION_BENCH_INGEST_BATCHES").unwrap_or(if full { 400 } else { 4 });
    let exports: Vec<(Vec<u8>, usize)> = (0..batches)
        .map(|b| (export(10_000_000 + b as u64 * 64, 64, 8), BATCH))
        .collect();
    // `AXION_BENCH_CONNECTIONS` sets how many clients send at once (4 by default).
    let connections: usize = workload::env_number("AXION_BENCH_CONNECTIONS")
        .filter(|n| *n > 0)
        .unwrap_or(4);
    let spans = (batches * BATCH) as f64;
    let cpu_before = server.cpu_seconds();
    let faults_before = server.minor_faults();
    let threads_before = server.cpu_by_thread();
    let written_before = server.written_bytes();
    let (machine_before, own_before) = (support::machine_cpu_seconds(), support::own_cpu_seconds());
    let postgres_before = postgres_cpu_seconds();
    let rate = ingest(&base, exports, connections).await;
    let postgres_per_span = (postgres_cpu_seconds() - postgres_before) * 1e6 / spans;
    let cpu_per_span = (server.cpu_seconds() - cpu_before) * 1e6 / spans;
    let faults_per_span = (server.minor_faults() - faults_before) as f64 / spans;
    let (machine_after, own_after) = (support::machine_cpu_seconds(), support::own_cpu_seconds());
    println!(
        "| OTLP protobuf ingest, 512 spans/request, {connections} connections, fsync'd | {rate:.0} spans/s |"
    );
    // Where it went, by thread name (threads that ended meanwhile are left out), and how
    // much of it was the kernel's.
    let by_thread: Vec<String> = server
        .cpu_by_thread()
        .into_iter()
        .map(|after| {
            let before = threads_before
                .iter()
                .find(|known| known.name == after.name)
                .cloned()
                .unwrap_or_default();
            let micros = |seconds: f64| seconds * 1e6 / spans;
            let total = micros(after.total() - before.total());
            let system = micros(after.system - before.system);
            (after.name, total, system)
        })
        .filter(|(_, total, _)| *total >= 0.05)
        .map(|(name, total, system)| format!("{name} {total:.1} (kernel {system:.1})"))
        .collect();
    println!(
        "| server CPU time (user + system) per span ingested | {cpu_per_span:.1} µs ({}) |",
        by_thread.join(", ")
    );
    println!("| server minor page faults per span ingested | {faults_per_span:.2} |");
    if storage.database_url.is_some() {
        println!("| PostgreSQL CPU time per span ingested | {postgres_per_span:.1} µs |");
    }
    // Whether the cores were the limit: what the machine did meanwhile, this client included.
    let (busy, all) = (
        machine_after.0 - machine_before.0,
        machine_after.1 - machine_before.1,
    );
    println!(
        "| machine CPU during the ingest run | {:.0}% busy of {} cores; this client {:.1} µs per span |",
        busy * 100.0 / all,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        (own_after - own_before) * 1e6 / spans,
    );
    let written_after = server.written_bytes();
    let kilobytes = |before: u64, after: u64| (after - before) as f64 / 1024.0 / spans;
    println!(
        "| bytes the server wrote per span ingested (ingest log, WAL, checkpoints) | {:.2} KB, of which {:.2} KB reached storage during the run |",
        kilobytes(written_before.0, written_after.0),
        kilobytes(written_before.1, written_after.1),
    );
    println!(
        "| server peak RSS (VmHWM) after the ingest run | {:.0} MB |",
        server.peak_rss_mb()
    );
    // `AXION_BENCH_ONLY=ingest` stops here, for comparing builds or settings run after run.
    if std::env::var("AXION_BENCH_ONLY").as_deref() == Ok("ingest") {
        return;
    }

    // Trace detail with 100 observations.
    ingest(&base, vec![(export(1, 1, 100), 100)], 1).await;
    let client = client();
    let detail = format!(
        "{base}/api/public/traces/{}",
        axion_model::to_hex(&id_bytes(1, 16))
    );
    let (p50, _) = percentiles(
        |_| (detail.clone(), client.clone()),
        if full { 200 } else { 5 },
    )
    .await;
    println!("| trace detail with 100 observations | p50 {p50:.2} ms |");

    // Stored traces for the list query: one root span each, shuffled over 30 days so that the
    // query's time range holds traces at every size.
    let target: u64 = workload::env_number("AXION_BENCH_TRACES").unwrap_or(1_000_000);
    let checkpoints: Vec<u64> = if full {
        [100_000, target]
            .into_iter()
            .filter(|n| *n <= target)
            .collect()
    } else {
        vec![2_048]
    };
    let mut stored = 0u64;
    let started = Instant::now();
    for checkpoint in checkpoints {
        while stored < checkpoint {
            let requests = if full { 64 } else { 4 };
            let chunk: Vec<(Vec<u8>, usize)> = (0..requests)
                .map(|i| {
                    let first = 100_000_000 + stored + i * BATCH as u64;
                    (export_with(first, BATCH, 1, Times::Shuffled), BATCH)
                })
                .collect();
            ingest(&base, chunk, 4).await;
            stored += requests * BATCH as u64;
        }
        let label = if stored >= 1_000_000 {
            format!("{}M", stored / 1_000_000)
        } else {
            format!("{}k", stored / 1000)
        };
        list_query(&base, &label).await;
        metrics_query(&base, &label).await;
    }
    let bulk_rate = stored as f64 / started.elapsed().as_secs_f64();
    println!("| bulk load of single-span traces (includes the queries above) | {bulk_rate:.0} traces/s |");
    println!(
        "| server peak RSS (VmHWM) after all of the above | {:.0} MB |",
        server.peak_rss_mb()
    );
    server.stop();
    ingest_as_the_database_grows(full).await;
}

/// Live ingest into a database that grows: the ingest run's workload (8-span traces in
/// sending order) into a fresh server, step after step up to `AXION_BENCH_SCALE_SPANS`
/// (2 048 000 by default), with the rate, the server's CPU and the bytes it wrote per span at
/// each step. The first run measures a small database; this shows what a user whose database
/// has grown gets.
async fn ingest_as_the_database_grows(full: bool) {
    let storage = Storage::fresh();
    let server = storage.spawn();
    let (target, step): (usize, usize) = if full {
        let target = workload::env_number("AXION_BENCH_SCALE_SPANS").unwrap_or(2_048_000);
        (target, 409_600)
    } else {
        (4 * BATCH, 2 * BATCH)
    };
    let mut stored = 0usize;
    while stored < target {
        let batches = step.min(target - stored).div_ceil(BATCH);
        let exports: Vec<(Vec<u8>, usize)> = (0..batches)
            .map(|b| {
                let first = 10_000_000 + ((stored / BATCH + b) * 64) as u64;
                (export(first, 64, 8), BATCH)
            })
            .collect();
        let spans = (batches * BATCH) as f64;
        let (cpu_before, written_before) = (server.cpu_seconds(), server.written_bytes().0);
        let writer = |server: &ChildRole| {
            server
                .cpu_by_thread()
                .into_iter()
                .find(|thread| thread.name.starts_with("axion-sqlite-wr"))
                .map_or(0.0, |thread| thread.total())
        };
        let writer_before = writer(&server);
        let rate = ingest(&server.base, exports, 4).await;
        let micros = |seconds: f64| seconds * 1e6 / spans;
        println!(
            "| OTLP ingest as the database grows, {} → {} spans stored | {rate:.0} spans/s; server CPU {:.1} µs per span (writer {:.1}); {:.1} KB written per span |",
            millions(stored),
            millions(stored + batches * BATCH),
            micros(server.cpu_seconds() - cpu_before),
            micros(writer(&server) - writer_before),
            (server.written_bytes().0 - written_before) as f64 / 1024.0 / spans,
        );
        stored += batches * BATCH;
    }
    server.stop();
}

fn millions(spans: usize) -> String {
    format!("{:.2}M", spans as f64 / 1e6)
}
