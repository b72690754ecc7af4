//! End-to-end export: a burst of enabled spans (1 KB JSON input and output each) from the
//! application thread to an OTLP/HTTP receiver in a second process, ours (the `langfuse`
//! provider: OTLP protobuf + gzip) next to `opentelemetry_sdk` + `opentelemetry-otlp` (batch
//! processor, HTTP protobuf) on the same workload, both at their default queue sizes.
//!
//! The receiver is this binary re-run in a child process: `sink` decodes every export and
//! counts spans (what the SDK itself can push), `serve` is a real `axion serve` (what lands in
//! storage). Also measured: the caller's time per span while the exporter runs (median, p99),
//! and the process's memory while the backend is down.
//!
//! `cargo bench -p axion --bench export`; under `cargo test --benches` it does a small smoke
//! run; `AXION_BENCH_ROLE=paced` runs only the paced rows (for profiling). Results are in the
//! README; last run (2-core VM, 100 000-span burst):
//!
//! | exporter | spans/s | dropped | caller median / p99 |
//! | --- | --- | --- | --- |
//! | axion `langfuse` → sink | 50 813 | 89 920 of 200 000 records | 0.73 / 27 µs |
//! | the same, `AXION_EXPORT_BLOCK_MS=1000` | 150 545 | 0 | 0.37 / 1.9 µs |
//! | `opentelemetry-otlp` → sink | 121 236 | 2 822 of 100 000 spans | 6.6 / 42 µs |
//! | axion `langfuse` → sink, paced at 10 000 spans/s, sleeping between spans | 10 000 | 0 | 0.89 / 3.6 µs |
//! | the same, busy-waiting between spans | 10 000 | 0 | 0.68 / 1.5 µs |
//! | `opentelemetry-otlp` → sink, paced and sleeping the same way | 10 000 | 0 | 10.2 / 34 µs |
//! | axion `langfuse` → `axion serve`, `AXION_EXPORT_BLOCK_MS=1000` (20 000 spans) | 27 849 | 0 | 0.34 / 1.3 µs |
//! | ↳ the server's CPU time and bytes written per span | 43.0 µs, 12.1 KB | | |
//! | `opentelemetry-otlp` → `axion serve` (20 000 spans) | 14 620 | 15 392 of 20 000 spans | 6.4 / 11 µs |
//! | ↳ the server's CPU time and bytes written per span | 69.4 µs, 32.0 KB | | |

use std::io::Read;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axion::{MetadataType, Settings, Tracer, TracerRegistry};
use opentelemetry::trace::TracerProvider as _;
use serde_json::{json, Value};

mod otel;
mod support;

use support::{rss_mb, run_serve, wait_for_stdin_close, ChildRole, ROLE};

fn main() {
    match std::env::var(ROLE).as_deref() {
        Ok("sink") => return run_sink(),
        Ok("serve") => return run_serve(),
        Ok("down") => {
            return backend_down_memory(bench_spans());
        }
        // Only the bursts into `axion serve` (ours backpressured, then `opentelemetry-otlp`'s),
        // for profiling the server's side.
        Ok("to-serve") => {
            let serve = ChildRole::spawn("serve");
            println!(
                "{}",
                to_serve(
                    &serve,
                    bench_spans(),
                    "axion serve, `AXION_EXPORT_BLOCK_MS=1000`",
                    1000
                )
            );
            println!("{}", otel_to_serve(&serve, bench_spans()));
            return serve.stop();
        }
        // Only the paced row, for profiling the host's side.
        Ok("paced") => {
            let sink = ChildRole::spawn("sink");
            for pacing in [Pacing::Sleep, Pacing::Spin] {
                println!("{}", axion_paced(&sink.base, 20_000, 10_000, pacing));
            }
            println!("{}", otel_paced(&sink.base, 20_000, 10_000, Pacing::Sleep));
            return sink.stop();
        }
        _ => {}
    }
    let full = std::env::args().any(|arg| arg == "--bench");
    let burst = if full { 100_000 } else { 2_000 };
    println!("| workload: burst of {burst} spans, 1 KB JSON in + out | spans/s delivered | dropped | caller per span (median / p99) |");
    println!("| --- | --- | --- | --- |");
    let sink = ChildRole::spawn("sink");
    println!("{}", axion_burst(&sink.base, burst, "sink", 0));
    println!(
        "{}",
        axion_burst(
            &sink.base,
            burst,
            "sink, `AXION_EXPORT_BLOCK_MS=1000`",
            1000
        )
    );
    let theirs = otel_burst(Receiver::Sink(&sink.base), burst).0;
    println!("{theirs}");
    let paced_spans = if full { 20_000 } else { 500 };
    for pacing in [Pacing::Sleep, Pacing::Spin] {
        println!("{}", axion_paced(&sink.base, paced_spans, 10_000, pacing));
    }
    println!(
        "{}",
        otel_paced(&sink.base, paced_spans, 10_000, Pacing::Sleep)
    );
    sink.stop();
    let serve = ChildRole::spawn("serve");
    println!("{}", to_serve(&serve, burst.min(20_000), "axion serve", 0));
    println!(
        "{}",
        to_serve(
            &serve,
            burst.min(20_000),
            "axion serve, `AXION_EXPORT_BLOCK_MS=1000`",
            1000
        )
    );
    println!("{}", otel_to_serve(&serve, burst.min(20_000)));
    serve.stop();
    // In its own process, so the bursts above don't colour its memory figures.
    let status = Command::new(std::env::current_exe().unwrap())
        .env(ROLE, "down")
        .env("AXION_BENCH_SPANS", if full { "500000" } else { "20000" })
        .status()
        .unwrap();
    assert!(status.success());
}

/// Child role: an OTLP receiver that decodes and counts spans; `GET /count` answers the total.
fn run_sink() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use axum::body::Bytes;
        use axum::http::HeaderMap;
        use prost::Message;
        let count = Arc::new(AtomicU64::new(0));
        let counter = count.clone();
        let app = axum::Router::new()
            .route(
                "/count",
                axum::routing::get(move || {
                    let count = count.clone();
                    async move { count.load(Ordering::SeqCst).to_string() }
                }),
            )
            .fallback(move |headers: HeaderMap, body: Bytes| {
                let counter = counter.clone();
                async move {
                    let mut bytes = Vec::new();
                    if headers.get("content-encoding").is_some_and(|v| v == "gzip") {
                        flate2::read::GzDecoder::new(&body[..])
                            .read_to_end(&mut bytes)
                            .unwrap();
                    } else {
                        bytes = body.to_vec();
                    }
                    if let Ok(request) =
                        axion_model::otlp::ExportTraceServiceRequest::decode(&bytes[..])
                    {
                        let spans: usize = request
                            .resource_spans
                            .iter()
                            .flat_map(|r| &r.scope_spans)
                            .map(|s| s.spans.len())
                            .sum();
                        counter.fetch_add(spans as u64, Ordering::SeqCst);
                    }
                    "{}"
                }
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap());
        let server = axum::serve(listener, app);
        tokio::select! {
            _ = server => {}
            _ = wait_for_stdin_close() => {}
        }
    });
}

/// About 1 KB of chat messages, as an LLM span's input or output would carry.
fn kilobyte_json() -> Value {
    let messages: Vec<Value> = (0..8)
        .map(|i| json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": "x".repeat(100), "index": i}))
        .collect();
    json!({ "model": "gpt-4o-mini", "messages": messages })
}

fn percentile(times: &mut [f64], p: f64) -> f64 {
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    times[((times.len() - 1) as f64 * p) as usize]
}

fn sink_count(base: &str) -> Option<u64> {
    let text = reqwest::blocking::get(format!("{base}/count"))
        .ok()?
        .text()
        .ok()?;
    text.trim().parse().ok()
}

/// A tracer on the `langfuse` provider sending to `base`, its export blocking up to
/// `block_ms` when the queue is full (0: drop).
fn langfuse_tracer(base: &str, block_ms: u64) -> Tracer {
    let block_ms = block_ms.to_string();
    let settings = Settings::from_pairs([
        ("LANGFUSE_PUBLIC_KEY", "pk-bench"),
        ("LANGFUSE_SECRET_KEY", "sk-bench"),
        ("LANGFUSE_HOST", base),
        ("AXION_EXPORT_BLOCK_MS", block_ms.as_str()),
    ]);
    let provider = TracerRegistry::create("langfuse", &settings).unwrap();
    Tracer::builder(MetadataType::Llm)
        .provider(provider)
        .force_new(true)
        .build()
}

/// `count` pairs of 1 KB values, made before any timing starts.
fn kilobyte_values(count: usize) -> Vec<(Value, Value)> {
    let (input, output) = (kilobyte_json(), kilobyte_json());
    (0..count)
        .map(|_| (input.clone(), output.clone()))
        .collect()
}

/// One enabled span carrying `input` and `output`: the caller's nanoseconds.
fn timed_span(tracer: &Tracer, input: Value, output: Value) -> f64 {
    let begin = Instant::now();
    let span = tracer.span("llm_call");
    span.set_input(input);
    span.set_output(output);
    drop(span);
    begin.elapsed().as_secs_f64() * 1e9
}

/// `AXION_BENCH_SPANS`, the span count of a role run on its own (20 000 by default).
fn bench_spans() -> usize {
    std::env::var("AXION_BENCH_SPANS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000)
}

fn axion_burst(base: &str, burst: usize, label: &str, block_ms: u64) -> String {
    burst_into(base, burst, label, block_ms).0
}

/// [`axion_burst`]'s row, and how many spans were delivered.
fn burst_into(base: &str, burst: usize, label: &str, block_ms: u64) -> (String, u64) {
    let tracer = langfuse_tracer(base, block_ms);
    let values = kilobyte_values(burst);
    let mut times = Vec::with_capacity(burst);
    let started = Instant::now();
    for (input, output) in values {
        times.push(timed_span(&tracer, input, output));
    }
    let report = tracer.flush(Duration::from_secs(300)).unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let stats = tracer.stats().export;
    // Each root span also carries its trace: one record each way, counted as one span.
    let delivered = sink_count(base).unwrap_or(stats.exported / 2);
    let median = percentile(&mut times, 0.5);
    let p99 = percentile(&mut times, 0.99);
    let row = format!(
        "| axion `langfuse` provider → {label} | {:.0} | {} of {} records | {median:.0} ns / {p99:.0} ns |",
        delivered as f64 / elapsed,
        report.dropped_total,
        stats.queued + stats.dropped_queue_full,
    );
    (row, delivered)
}

/// [`axion_burst`] into a running `axion serve`, with the server's cost (see [`serve_row`]).
fn to_serve(serve: &ChildRole, burst: usize, label: &str, block_ms: u64) -> String {
    serve_row(serve, || burst_into(&serve.base, burst, label, block_ms))
}

/// Runs a burst into an idle `axion serve` (`burst` returns its row and the spans delivered),
/// and adds a row with the server's CPU time per span delivered meanwhile (user + system, all
/// its threads) and the bytes it wrote (ingest log, WAL, checkpoints).
fn serve_row(serve: &ChildRole, burst: impl FnOnce() -> (String, u64)) -> String {
    serve.settle();
    let (before, written_before) = (serve.cpu_seconds(), serve.written_bytes().0);
    let (row, delivered) = burst();
    let delivered = delivered.max(1) as f64;
    let micros = (serve.cpu_seconds() - before) * 1e6 / delivered;
    let kilobytes = (serve.written_bytes().0 - written_before) as f64 / 1024.0 / delivered;
    format!("{row}\n| ↳ `axion serve`'s CPU time (user + system), bytes it wrote | {micros:.1} µs, {kilobytes:.1} KB per span | | |")
}

/// What the application's thread does between two paced spans.
#[derive(Clone, Copy)]
enum Pacing {
    /// Sleeps, as a thread waiting on I/O does: the next span starts on a CPU that was idle.
    Sleep,
    /// Busy-waits, so the thread never leaves the CPU: the span's own cost, without the
    /// VM's idle-to-running penalty.
    Spin,
}

impl Pacing {
    fn between(self) -> &'static str {
        match self {
            Pacing::Sleep => "sleeping",
            Pacing::Spin => "busy-waiting",
        }
    }
}

/// Calls `span` once per pair of 1 KB values, at a steady `per_second`, and returns the
/// nanoseconds each call took.
fn paced(
    spans: usize,
    per_second: u64,
    pacing: Pacing,
    mut span: impl FnMut(Value, Value) -> f64,
) -> Vec<f64> {
    let values = kilobyte_values(spans);
    let interval = Duration::from_nanos(1_000_000_000 / per_second);
    let mut times = Vec::with_capacity(spans);
    let started = Instant::now();
    for (index, (input, output)) in values.into_iter().enumerate() {
        let slot = started + interval * index as u32;
        match pacing {
            Pacing::Sleep => {
                if let Some(wait) = slot.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            Pacing::Spin => {
                while Instant::now() < slot {
                    std::hint::spin_loop();
                }
            }
        }
        times.push(span(input, output));
    }
    times
}

/// The host's side while the pipeline keeps up: spans made at a steady `per_second`, below
/// what the exporter delivers, so nothing waits for the queue and nothing is dropped.
fn axion_paced(base: &str, spans: usize, per_second: u64, pacing: Pacing) -> String {
    let tracer = langfuse_tracer(base, 0);
    let mut times = paced(spans, per_second, pacing, |input, output| {
        timed_span(&tracer, input, output)
    });
    let report = tracer.flush(Duration::from_secs(60)).unwrap();
    let median = percentile(&mut times, 0.5);
    let p99 = percentile(&mut times, 0.99);
    format!(
        "| axion `langfuse` provider → sink, paced at {per_second} spans/s ({spans} spans, {} between spans) | {per_second} (paced) | {} of {} records | {median:.0} ns / {p99:.0} ns |",
        pacing.between(),
        report.dropped_total,
        tracer.stats().export.queued + tracer.stats().export.dropped_queue_full,
    )
}

/// [`axion_paced`] for `opentelemetry_sdk` + `opentelemetry-otlp` on the same workload: the
/// reference for a caller's cost on this VM, which charges both for starting on an idle CPU.
fn otel_paced(base: &str, spans: usize, per_second: u64, pacing: Pacing) -> String {
    let (provider, tracer) = otel_tracer(&format!("{base}/v1/traces"), Default::default());
    let before = sink_count(base).unwrap_or(0);
    let mut times = paced(spans, per_second, pacing, |input, output| {
        otel_span(&tracer, input, output)
    });
    let _ = provider.force_flush();
    let delivered = sink_count(base).unwrap_or(0) - before;
    let _ = provider.shutdown();
    let median = percentile(&mut times, 0.5);
    let p99 = percentile(&mut times, 0.99);
    format!(
        "| `opentelemetry_sdk` + `opentelemetry-otlp` → sink, paced at {per_second} spans/s ({spans} spans, {} between spans) | {per_second} (paced) | {} of {spans} spans | {median:.0} ns / {p99:.0} ns |",
        pacing.between(),
        spans as u64 - delivered,
    )
}

/// An `opentelemetry_sdk` tracer with the batch exporter at its defaults (HTTP protobuf, not
/// compressed) posting to `endpoint`.
fn otel_tracer(
    endpoint: &str,
    headers: std::collections::HashMap<String, String>,
) -> (
    opentelemetry_sdk::trace::SdkTracerProvider,
    opentelemetry_sdk::trace::SdkTracer,
) {
    use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .with_headers(headers)
        .build()
        .unwrap();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .build();
    let tracer = provider.tracer("bench");
    (provider, tracer)
}

/// One `opentelemetry_sdk` span carrying `input` and `output` (serialised on the caller, as
/// that SDK requires): the caller's nanoseconds.
fn otel_span(tracer: &opentelemetry_sdk::trace::SdkTracer, input: Value, output: Value) -> f64 {
    let begin = Instant::now();
    otel::llm_call(tracer, input, output);
    begin.elapsed().as_secs_f64() * 1e9
}

/// Where an `opentelemetry-otlp` burst goes.
enum Receiver<'a> {
    /// The counting sink.
    Sink(&'a str),
    /// A running `axion serve`, with the bench's keys.
    Serve(&'a ChildRole),
}

const SERVE_KEYS: (&str, &str) = ("pk-bench", "sk-bench");

/// The traces an `axion serve` holds (`meta.totalItems` of its trace list).
fn trace_count(base: &str) -> Option<u64> {
    let page: Value = reqwest::blocking::Client::new()
        .get(format!("{base}/api/public/traces?limit=1"))
        .basic_auth(SERVE_KEYS.0, Some(SERVE_KEYS.1))
        .send()
        .ok()?
        .json()
        .ok()?;
    page["meta"]["totalItems"].as_u64()
}

/// The same workload through `opentelemetry_sdk` + `opentelemetry-otlp` at their defaults
/// (HTTP protobuf, not compressed), the JSON serialised on the caller as that SDK requires:
/// its row, and how many spans were delivered.
fn otel_burst(receiver: Receiver<'_>, burst: usize) -> (String, u64) {
    use base64::Engine;
    let (endpoint, headers, label) = match &receiver {
        Receiver::Sink(base) => (format!("{base}/v1/traces"), Default::default(), "sink"),
        Receiver::Serve(serve) => {
            let credentials = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", SERVE_KEYS.0, SERVE_KEYS.1));
            let headers = [("Authorization".to_owned(), format!("Basic {credentials}"))];
            (
                format!("{}/api/public/otel/v1/traces", serve.base),
                headers.into_iter().collect(),
                "`axion serve`",
            )
        }
    };
    let count = || match &receiver {
        Receiver::Sink(base) => sink_count(base),
        Receiver::Serve(serve) => trace_count(&serve.base),
    };
    let (provider, tracer) = otel_tracer(&endpoint, headers);
    let values = kilobyte_values(burst);
    let before = count().unwrap_or(0);
    let mut times = Vec::with_capacity(burst);
    let started = Instant::now();
    for (input, output) in values {
        times.push(otel_span(&tracer, input, output));
    }
    let _ = provider.force_flush();
    let elapsed = started.elapsed().as_secs_f64();
    let delivered = count().unwrap_or(0) - before;
    let _ = provider.shutdown();
    let median = percentile(&mut times, 0.5);
    let p99 = percentile(&mut times, 0.99);
    let row = format!(
        "| `opentelemetry_sdk` + `opentelemetry-otlp` batch exporter → {label} | {:.0} | {} of {burst} spans | {median:.0} ns / {p99:.0} ns |",
        delivered as f64 / elapsed,
        burst as u64 - delivered,
    );
    (row, delivered)
}

/// [`otel_burst`] into a running `axion serve`, with the server's cost (see [`serve_row`]).
fn otel_to_serve(serve: &ChildRole, burst: usize) -> String {
    serve_row(serve, || otel_burst(Receiver::Serve(serve), burst))
}

/// The backend is down (nothing listens): memory stays bounded by the queue; drops are counted.
fn backend_down_memory(spans: usize) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tracer = langfuse_tracer(&format!("http://127.0.0.1:{port}"), 0);
    let input = kilobyte_json();
    let before = rss_mb();
    let mut peak: f64 = before;
    let mut times = Vec::with_capacity(spans);
    for i in 0..spans {
        times.push(timed_span(&tracer, input.clone(), input.clone()));
        if i % 10_000 == 0 {
            peak = peak.max(rss_mb());
        }
    }
    let median = percentile(&mut times, 0.5);
    let p99 = percentile(&mut times, 0.99);
    peak = peak.max(rss_mb());
    let stats = tracer.stats().export;
    // A dropped record frees the span's values on the caller's thread: what the application
    // would pay anyway once it no longer needs them. Measured alone for comparison.
    let mut frees = Vec::with_capacity(spans.min(100_000));
    for _ in 0..spans.min(100_000) {
        let values = (input.clone(), input.clone());
        let begin = Instant::now();
        drop(values);
        frees.push(begin.elapsed().as_secs_f64() * 1e9);
    }
    let free_median = percentile(&mut frees, 0.5);
    println!(
        "\n| backend down, {spans} spans produced | RSS {before:.0} MB → peak {peak:.0} MB | {} dropped (queue full), counted | {median:.0} ns / {p99:.0} ns (freeing the two values alone: {free_median:.0} ns) |",
        stats.dropped_queue_full
    );
}
