//! `tracing` spans and events inside axion traces, and axion spans inside `tracing` spans.
#![cfg(feature = "tracing")]

mod common;

use std::sync::Arc;

use axion::tracing_bridge::AxionLayer;
use axion::{MetadataType, ObservationLevel, ObservationType, Tracer};
use tracing_subscriber::layer::SubscriberExt;

#[tracing::instrument(skip_all, fields(input = %r#"{"query": "refund"}"#, output = tracing::field::Empty))]
fn lookup(tracer: &Tracer) -> usize {
    tracing::warn!(misses = 2, "cache cold");
    // An axion span opened while the `tracing` span is entered is its child.
    let inner = tracer.span("score_documents");
    inner.set_output(serde_json::json!([0.9, 0.4]));
    tracing::Span::current().record("output", "2 documents");
    2
}

#[test]
fn spans_nest_both_ways_and_events_become_observations() {
    let collector = Arc::new(common::Collector::default());
    let tracer = Tracer::builder(MetadataType::Base)
        .provider(collector.clone())
        .force_new(true)
        .build();
    let subscriber = tracing_subscriber::registry().with(AxionLayer::with_tracer(tracer.clone()));
    tracing::subscriber::with_default(subscriber, || {
        let root = tracer.span("handle_request");
        let found = lookup(&tracer);
        assert_eq!(found, 2);
        drop(root);
    });
    let root = collector.observation("handle_request");
    let lookup = collector.observation("lookup");
    assert_eq!(
        lookup.parent_observation_id.as_ref(),
        Some(&root.id),
        "tracing span under the axion span"
    );
    assert_eq!(lookup.trace_id, root.trace_id);
    assert_eq!(lookup.input, Some(serde_json::json!({"query": "refund"})));
    assert_eq!(lookup.output, Some(serde_json::json!("2 documents")));
    let inner = collector.observation("score_documents");
    assert_eq!(
        inner.parent_observation_id.as_ref(),
        Some(&lookup.id),
        "axion span under the entered tracing span"
    );
    let event = collector.observation("cache cold");
    assert_eq!(
        (event.r#type, event.level),
        (ObservationType::Event, ObservationLevel::Warning)
    );
    assert_eq!(event.parent_observation_id.as_ref(), Some(&lookup.id));
}

#[test]
fn a_tracing_span_outside_any_axion_span_starts_a_trace() {
    let collector = Arc::new(common::Collector::default());
    let tracer = Tracer::builder(MetadataType::Base)
        .provider(collector.clone())
        .force_new(true)
        .build();
    let subscriber = tracing_subscriber::registry().with(AxionLayer::with_tracer(tracer));
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("batch_job", items = 3u64);
        let _entered = span.enter();
        tracing::error!("one item failed");
    });
    let job = collector.observation("batch_job");
    assert!(job.parent_observation_id.is_none());
    assert_eq!(job.metadata.as_ref().unwrap()["items"], 3);
    let failure = collector.observation("one item failed");
    assert_eq!(failure.level, ObservationLevel::Error);
    assert!(collector
        .traces()
        .iter()
        .any(|trace| trace.name.as_deref() == Some("batch_job")));
}
