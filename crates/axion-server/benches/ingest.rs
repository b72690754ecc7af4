//! The ingest path inside one process, stage by stage, so each can be tuned on its own:
//! decoding and mapping an OTLP export (request threads, in parallel) and storing it (the
//! single SQLite writer, fsync'd group commits).
//!
//! `cargo bench -p axion-server --bench ingest`; under `cargo test --benches` it does a small
//! smoke run. The end-to-end figure (HTTP from a second process) is in `benches/server.rs`.
//!
//! Last run (2-core VM, 102 400 spans, random W3C-like ids; `AXION_BENCH_SPANS_PER_TRACE=1
//! AXION_BENCH_IO_BYTES=1024` for the SDK's shape; `AXION_BENCH_STAGE=prepare` stops after the
//! request side, for instruction counts):
//!
//! | stage, µs per span | 8-span traces | SDK shape |
//! | --- | --- | --- |
//! | protobuf decode alone | 1.08 | 1.35 |
//! | events → fold → rows (the reference path) | 9.81 | 12.03 |
//! | decode → rows (`otlp::prepare`, the request thread) | 4.40 | 6.84 |
//! | store (log, sync, writer), 1 request at a time | 12.40 | 29.12 |
//! | the same, 4 concurrent requests | 9.63 | 31.98 |
//! | the same, start times shuffled over 30 days | 11.70 | 42.07 |

use std::sync::Arc;
use std::time::Instant;

use axion_server::cost::Pricing;
use axion_server::ingest::otlp;
use axion_server::store::rows::PreparedBatch;
use axion_server::store::{SqliteStore, Store};

mod workload;

// As in the `axion` binary, so the figures are those of `axion serve`.
#[global_allocator]
static ALLOCATOR: axion_server::allocator::ServerAllocator =
    axion_server::allocator::ServerAllocator;

use workload::{export_with, Times, BATCH};

fn main() {
    axion_server::allocator::configure();
    let full = std::env::args().any(|arg| arg == "--bench");
    // `AXION_BENCH_REQUESTS` overrides the number of exports (fewer for valgrind runs).
    let requests = workload::env_number("AXION_BENCH_REQUESTS")
        .filter(|n: &usize| *n > 0)
        .unwrap_or(if full { 200 } else { 4 });
    // 8-span traces, as in the end-to-end benchmark; `AXION_BENCH_SPANS_PER_TRACE=1` and
    // `AXION_BENCH_IO_BYTES=1024` give the SDK export bench's shape.
    let per_trace: usize = workload::env_number("AXION_BENCH_SPANS_PER_TRACE")
        .filter(|n| (1..=BATCH).contains(n))
        .unwrap_or(8);
    let traces = BATCH / per_trace;
    let exports_with = |times| -> Vec<Vec<u8>> {
        (0..requests)
            .map(|r| export_with(10_000_000 + (r * traces) as u64, traces, per_trace, times))
            .collect()
    };
    let exports = exports_with(Times::InOrder);
    let spans = (requests * traces * per_trace) as f64;

    println!("| stage ({requests} exports of {BATCH} spans) | µs per span |");
    println!("| --- | --- |");
    let pricing = Pricing::langfuse_defaults();
    let prepare = |body: &[u8]| {
        otlp::prepare("application/x-protobuf", None, body, &pricing, 0)
            .expect("valid export")
            .batch
    };
    // Each export's rows are dropped before the next, as a request thread does.
    let timed = |label: &str, work: &dyn Fn(&[u8])| {
        let started = Instant::now();
        for body in &exports {
            work(body);
        }
        let per_span = started.elapsed().as_secs_f64() * 1e6 / spans;
        println!("| {label} | {per_span:.2} |");
    };
    let stage = std::env::var("AXION_BENCH_STAGE").unwrap_or_default();
    if stage != "prepare" {
        timed(
            "protobuf decode alone (a view borrowing the body)",
            &|body| {
                let mut fallback = None;
                drop(axion_model::otlp::decode_protobuf_view(body, &mut fallback).expect("valid"));
                assert!(fallback.is_none(), "read in place");
            },
        );
        // The path every other ingestion takes, for comparison: events, then fold and rows.
        timed("events → fold → rows (reference path)", &|body| {
            let outcome = otlp::process("application/x-protobuf", None, body).expect("valid");
            drop(PreparedBatch::new(outcome.writes, &pricing, 0));
        });
    }
    // What a request thread does before the writer: decode, map, normalise, fold, price and
    // serialise rows.
    timed("decode → rows (request thread)", &|body| {
        drop(prepare(body))
    });
    if !stage.is_empty() {
        return; // for instruction counts of the request side alone
    }

    for (times, writers) in [
        (Times::InOrder, 1usize),
        (Times::InOrder, 4),
        (Times::Shuffled, 4),
    ] {
        let exports = exports_with(times);
        let dir = tempfile::tempdir().unwrap();
        let store =
            Arc::new(SqliteStore::open_with_default_prices(dir.path().join("axion.db")).unwrap());
        let mut chunks: Vec<Vec<_>> = (0..writers).map(|_| Vec::new()).collect();
        for (index, body) in exports.iter().enumerate() {
            chunks[index % writers].push(prepare(body));
        }
        let started = Instant::now();
        std::thread::scope(|scope| {
            for chunk in chunks {
                let store = Arc::clone(&store);
                scope.spawn(move || {
                    for batch in chunk {
                        store.write_prepared("bench", batch).unwrap();
                    }
                });
            }
        });
        // Answered means logged; the clock stops once the database has it all (a read waits
        // for every answered write).
        store.trace("bench", "none").unwrap();
        let per_span = started.elapsed().as_secs_f64() * 1e6 / spans;
        let times = match times {
            Times::InOrder => "start times in sending order",
            Times::Shuffled => "start times shuffled over 30 days",
        };
        println!(
            "| store (the writer), {writers} concurrent request(s), fsync'd commits, {times} | {per_span:.2} |"
        );
        store.close();
        if let Ok(keep) = std::env::var("AXION_BENCH_KEEP_DB") {
            std::fs::copy(
                dir.path().join("axion.db"),
                format!("{keep}-{writers}-{times}.db"),
            )
            .unwrap();
        }
    }
}
