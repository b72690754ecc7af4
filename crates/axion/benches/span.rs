//! Span costs on the caller's thread, each compared side by side in the same run.
//!
//! Results (2-core shared VM, `cargo bench -p axion --bench span`, medians; allocation counts
//! from divan's `AllocProfiler`) are in the README's benchmark table. Summary of the last run:
//!
//! | benchmark | ours | reference | ratio |
//! | --- | --- | --- | --- |
//! | noop span + input/output + drop | see README | `tracing` span, no subscriber | |
//! | enabled span, 1 KB JSON in/out, in-memory sink | see README | `opentelemetry_sdk` span | |
//! | `#[trace(capture_args)]` call | see README | plain call | |

use std::sync::Arc;

use axion::{BaseTracer, MetadataType, RawRecord, Tracer};
use divan::{black_box, AllocProfiler, Bencher};
use opentelemetry::trace::TracerProvider as _;
use serde_json::{json, Value};

mod otel;

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

fn main() {
    divan::main();
}

/// A sink that keeps nothing: what is measured is the caller's side only.
struct Discard;
impl BaseTracer for Discard {
    fn name(&self) -> &str {
        "discard"
    }
    fn export(&self, record: RawRecord) {
        black_box(record);
    }
}

/// About 1 KB of chat messages, as an LLM span's input or output would carry.
fn kilobyte_json() -> Value {
    let messages: Vec<Value> = (0..8)
        .map(|i| json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": "x".repeat(100), "index": i}))
        .collect();
    let value = json!({ "model": "gpt-4o-mini", "messages": messages });
    debug_assert!((900..1300).contains(&serde_json::to_string(&value).unwrap().len()));
    value
}

mod noop {
    use super::*;

    #[divan::bench]
    fn axion_span(bencher: Bencher) {
        let tracer = Tracer::builder(MetadataType::Base)
            .provider(Arc::new(axion::NoopTracer))
            .build();
        bencher.bench_local(|| {
            let span = black_box(&tracer).span("llm_call");
            span.set_input("prompt");
            span.set_output("completion");
        });
    }

    #[divan::bench]
    fn tracing_span_without_subscriber(bencher: Bencher) {
        bencher.bench_local(|| {
            let span = tracing::info_span!(
                "llm_call",
                input = tracing::field::Empty,
                output = tracing::field::Empty
            );
            let entered = span.entered();
            entered.record("input", "prompt");
            entered.record("output", "completion");
        });
    }
}

/// The real pipeline, serialising every record to JSON on its worker thread.
struct SerializeToMemory {
    buffer: Vec<u8>,
}
impl axion::export::Exporter for SerializeToMemory {
    fn export(&mut self, batch: Vec<RawRecord>) -> axion::Result<()> {
        for record in batch {
            self.buffer.clear();
            serde_json::to_writer(&mut self.buffer, &record.into_model()).expect("serialisable");
        }
        Ok(())
    }
}

#[derive(Debug)]
struct DiscardExporter;
impl opentelemetry_sdk::trace::SpanExporter for DiscardExporter {
    fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> impl std::future::Future<Output = opentelemetry_sdk::error::OTelSdkResult> + Send {
        black_box(batch);
        std::future::ready(Ok(()))
    }
}

const QUEUE: usize = 1 << 16;

/// One enabled span carrying 1 KB of JSON input and output, moved in (cloned outside the timing).
fn bench_kilobyte_span(bencher: Bencher, tracer: &Tracer) {
    let input = kilobyte_json();
    let output = kilobyte_json();
    bencher
        .with_inputs(|| (input.clone(), output.clone()))
        .bench_local_values(|(input, output)| {
            let span = tracer.span("llm_call");
            span.set_input(input);
            span.set_output(output);
        });
}

mod enabled_1kb {
    use super::*;

    /// Ours, through the batch pipeline: the caller moves the values into the span; the worker
    /// serialises them (and frees them).
    #[divan::bench(sample_count = 1000)]
    fn axion_span(bencher: Bencher) {
        let mut config = axion::export::PipelineConfig::default();
        config.max_queue_size = QUEUE;
        let exporter = SerializeToMemory { buffer: Vec::new() };
        let provider =
            Arc::new(axion::export::PipelineTracer::new("bench", exporter, config).unwrap());
        let tracer = Tracer::builder(MetadataType::Base)
            .provider(provider.clone())
            .build();
        bench_kilobyte_span(bencher, &tracer);
        tracer.flush(std::time::Duration::from_secs(60)).unwrap();
        eprintln!("axion pipeline: {:?}", provider.export_stats());
    }

    /// `opentelemetry_sdk` with its batch processor (background thread) and the same queue.
    #[divan::bench(sample_count = 1000)]
    fn opentelemetry_sdk_span(bencher: Bencher) {
        let config = opentelemetry_sdk::trace::BatchConfigBuilder::default()
            .with_max_queue_size(QUEUE)
            .build();
        let processor = opentelemetry_sdk::trace::BatchSpanProcessor::builder(DiscardExporter)
            .with_batch_config(config)
            .build();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer("bench");
        let input = kilobyte_json();
        let output = kilobyte_json();
        bencher
            .with_inputs(|| (input.clone(), output.clone()))
            // OTel attributes are strings: the JSON is serialised on the caller's thread.
            .bench_local_values(|(input, output)| crate::otel::llm_call(&tracer, input, output));
        let _ = provider.shutdown();
    }

    /// Ours into a sink that frees each record on the caller's thread: the upper bound of the
    /// caller's cost (freeing 1 KB JSON trees dominates it).
    #[divan::bench(sample_count = 1000)]
    fn axion_span_freed_on_caller(bencher: Bencher) {
        let tracer = Tracer::builder(MetadataType::Base)
            .provider(Arc::new(Discard))
            .build();
        bench_kilobyte_span(bencher, &tracer);
    }
}

mod trace_macro {
    use super::*;

    #[derive(serde::Serialize)]
    struct Query {
        text: &'static str,
        top_k: u32,
    }

    #[axion::trace(capture_args)]
    fn traced(query: &Query, limit: usize) -> usize {
        query.text.len().min(limit) + query.top_k as usize
    }

    #[inline(never)]
    fn plain(query: &Query, limit: usize) -> usize {
        query.text.len().min(limit) + query.top_k as usize
    }

    const QUERY: Query = Query {
        text: "what is the refund policy?",
        top_k: 5,
    };

    #[divan::bench]
    fn plain_call() -> usize {
        plain(black_box(&QUERY), black_box(10))
    }

    #[divan::bench]
    fn traced_call_noop_context(bencher: Bencher) {
        let tracer = Tracer::builder(MetadataType::Base)
            .provider(Arc::new(axion::NoopTracer))
            .build();
        let _guard = tracer.context();
        bencher.bench_local(|| traced(black_box(&QUERY), black_box(10)));
    }

    #[divan::bench]
    fn traced_call_capture_args_recording(bencher: Bencher) {
        let tracer = Tracer::builder(MetadataType::Base)
            .provider(Arc::new(Discard))
            .build();
        let _guard = tracer.context();
        bencher.bench_local(|| traced(black_box(&QUERY), black_box(10)));
    }
}
