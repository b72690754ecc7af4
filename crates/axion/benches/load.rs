//! Reading back: fetch 10 000 full traces from `axion serve` (in a second process) with the
//! Langfuse loader, then the collection and dataset operations on them.
//!
//! `cargo bench -p axion --bench load` (results in the README); `cargo test --benches` runs a
//! 200-trace smoke pass.

use std::time::{Duration, Instant};

use axion::collection::{TraceCollection, TraceFilter};
use axion::dataset::Dataset;
use axion::load::{FetchTraces, LangfuseTraceLoader, TimeWindow};
use axion::{MetadataType, ObservationType, Settings, Tracer, TracerRegistry};
use serde_json::json;

mod support;

use support::{rss_mb, run_serve, ChildRole, ROLE};

fn main() {
    if std::env::var(ROLE).as_deref() == Ok("serve") {
        return run_serve();
    }
    let full = std::env::args().any(|arg| arg == "--bench");
    let traces = if full { 10_000 } else { 200 };
    let server = ChildRole::spawn("serve");
    let settings = Settings::from_pairs([
        ("LANGFUSE_PUBLIC_KEY", "pk-bench".to_owned()),
        ("LANGFUSE_SECRET_KEY", "sk-bench".to_owned()),
        ("LANGFUSE_HOST", server.base.clone()),
        ("AXION_EXPORT_QUEUE_SIZE", "200000".to_owned()),
    ]);
    let provider = TracerRegistry::create("langfuse", &settings).unwrap();
    let tracer = Tracer::builder(MetadataType::Llm)
        .provider(provider)
        .force_new(true)
        .build();
    for i in 0..traces {
        let root = tracer.span("support-bot");
        root.set_input(json!({"question": format!("question {i}?")}));
        root.update_trace(
            axion::TraceUpdate::new()
                .user_id(format!("user-{}", i % 100))
                .tags(["bench"]),
        );
        {
            let retrieve = tracer
                .span_builder("search_kb")
                .kind(ObservationType::Retriever)
                .enter();
            retrieve.set_output(json!([format!("doc {i}")]));
        }
        {
            let generation = tracer
                .span_builder("draftAnswer")
                .kind(ObservationType::Generation)
                .enter();
            generation.set_model("gpt-4o-mini");
            generation.set_output(json!(format!("answer {i}")));
            generation.set_usage(100, 20);
        }
        root.set_output(json!({"answer": format!("answer {i}")}));
    }
    let report = tracer.flush(Duration::from_secs(600)).unwrap();
    assert_eq!(report.dropped_total, 0);

    let loader = LangfuseTraceLoader::from_settings(&settings).unwrap();
    // Streaming first: memory bounded by one page of traces.
    let before = rss_mb();
    let started = Instant::now();
    let mut streamed = 0usize;
    loader
        .for_each_trace(
            &FetchTraces {
                limit: traces,
                window: TimeWindow::HoursBack(1),
                ..FetchTraces::default()
            },
            |trace| {
                streamed += trace.observations.len();
                Ok(())
            },
        )
        .unwrap();
    let stream = started.elapsed();
    let stream_rss = rss_mb() - before;
    assert_eq!(streamed, 3 * traces);
    let started = Instant::now();
    let loaded = loader
        .fetch_traces(&FetchTraces {
            limit: traces,
            window: TimeWindow::HoursBack(1),
            ..FetchTraces::default()
        })
        .unwrap();
    let fetch = started.elapsed();
    assert_eq!(loaded.len(), traces);
    let rss = rss_mb();

    let started = Instant::now();
    let collection = TraceCollection::from_loaded(loaded);
    let mut found = 0usize;
    for trace in &collection {
        found += usize::from(trace.step("draft_answer").is_some());
        found += usize::from(trace.get("search-kb.output.0").is_some());
    }
    let user_0 = collection.filter_by(&TraceFilter {
        user_id: Some("user-0".into()),
        ..TraceFilter::default()
    });
    let steps = started.elapsed();
    assert_eq!(found, 2 * traces);
    assert_eq!(user_0.len(), traces / 100);
    let started = Instant::now();
    let dataset = Dataset::from_traces(&collection);
    let jsonl = dataset.to_jsonl();
    let convert = started.elapsed();
    assert_eq!(dataset.len(), traces);

    println!("| benchmark ({traces} traces, 3 observations each) | result |\n| --- | --- |");
    println!(
        "| fetch full traces from axion serve (loader, 8 in flight) | {:.0} traces/s ({:.2} s), client RSS {rss:.0} MB |",
        traces as f64 / fetch.as_secs_f64(),
        fetch.as_secs_f64()
    );
    println!(
        "| stream full traces (`for_each_trace`, one page in memory) | {:.0} traces/s, RSS growth {stream_rss:.0} MB |",
        traces as f64 / stream.as_secs_f64()
    );
    println!(
        "| collection: build, 2 step lookups + path per trace, filter | {:.1} ms |",
        steps.as_secs_f64() * 1e3
    );
    println!(
        "| dataset: default extraction + JSONL ({} KB) | {:.1} ms |",
        jsonl.len() / 1024,
        convert.as_secs_f64() * 1e3
    );
    server.stop();
}
