//! A provider of your own: register it under a name, select it like a built-in.
//!
//! ```sh
//! cargo run -p axion --example custom_tracer
//! TRACING_MODE=console cargo run -p axion --example custom_tracer   # the built-in, for comparison
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axion::model::Record;
use axion::{BaseTracer, MetadataType, RawRecord, Tracer, TracerRegistry};

/// Prints a one-line summary of every finished observation, and counts them.
#[derive(Default)]
struct SummaryTracer {
    observations: AtomicU64,
}

impl BaseTracer for SummaryTracer {
    fn name(&self) -> &str {
        "summary"
    }

    fn export(&self, record: RawRecord) {
        // A real provider would queue the record and convert it on a worker thread
        // (see axion::export::PipelineTracer); printing is cheap enough here.
        if let Record::Observation(observation) = record.into_model() {
            self.observations.fetch_add(1, Ordering::Relaxed);
            eprintln!(
                "[summary] {:<10} {:<12} {:>8.3} ms",
                observation.r#type,
                observation.name.as_deref().unwrap_or("?"),
                observation.latency_seconds().unwrap_or(0.0) * 1000.0
            );
        }
    }
}

fn main() {
    let summary = Arc::new(SummaryTracer::default());
    let shared = summary.clone();
    TracerRegistry::register("summary", move |_settings| Ok(shared.clone()));

    // TRACING_MODE wins when set; otherwise use our provider.
    let chosen = std::env::var("TRACING_MODE")
        .ok()
        .filter(|mode| !mode.is_empty());
    axion::configure_tracing(Some(chosen.as_deref().unwrap_or("summary"))).expect("provider");
    let _tracing = axion::shutdown_guard();

    let tracer = Tracer::new(MetadataType::Base);
    let total: u64 = {
        let _job = tracer.span("nightly_job");
        (1..=3)
            .map(|batch| {
                let span = tracer.span(format!("batch-{batch}"));
                span.set_output(batch * 10);
                batch * 10
            })
            .sum()
    };
    println!(
        "processed {total} items; providers: {}",
        axion::list_providers().join(", ")
    );
    if chosen.is_none() {
        assert_eq!(summary.observations.load(Ordering::Relaxed), 4);
    }
}
