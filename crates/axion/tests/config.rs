//! Global configuration: explicit providers, custom tracers, auto-detection, the console provider.
//! The tests share process-wide state, so they take turns.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axion::model::Record;
use axion::{configure_tracing_with, MetadataType, Settings, Tracer, TracerRegistry};
use serde_json::json;

static TURN: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    let guard = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    axion::clear_tracing_config();
    guard
}

#[test]
fn a_custom_tracer_registered_under_a_new_name_is_selectable() {
    let _turn = turn();
    let collector = Arc::new(common::Collector::default());
    let shared = collector.clone();
    TracerRegistry::register("My_Custom", move |_| Ok(shared.clone()));
    assert!(axion::list_providers().contains(&"my_custom".to_owned()));
    axion::configure_tracing(Some("my_custom")).unwrap();
    assert_eq!(
        axion::configured_provider_name().as_deref(),
        Some("my_custom")
    );
    let tracer = Tracer::new(MetadataType::Base);
    assert_eq!(tracer.provider_name(), "collector");
    drop(tracer.span("custom"));
    assert_eq!(collector.observations().len(), 1);
}

#[test]
fn explicit_configuration_errors_keep_the_previous_provider() {
    let _turn = turn();
    configure_tracing_with(
        Some("console"),
        &Settings::from_pairs([("AXION_CONSOLE_PATH", "/dev/null")]),
    )
    .unwrap();
    let error = configure_tracing_with(Some("langfuse"), &Settings::default()).unwrap_err();
    assert!(
        matches!(
            error,
            axion::Error::MissingCredentials {
                variable: "LANGFUSE_PUBLIC_KEY",
                ..
            }
        ),
        "{error}"
    );
    let error = configure_tracing_with(
        Some("opik"),
        &Settings::from_pairs([("OPIK_URL_OVERRIDE", "ftp://opik.example.com")]),
    )
    .unwrap_err();
    assert!(error.to_string().contains("OPIK_URL_OVERRIDE"), "{error}");
    assert!(configure_tracing_with(Some("Zipkin"), &Settings::default())
        .unwrap_err()
        .to_string()
        .contains("zipkin"));
    assert_eq!(
        axion::configured_provider_name().as_deref(),
        Some("console")
    );
}

#[test]
fn auto_detection_never_breaks_the_host() {
    let _turn = turn();
    assert!(!axion::is_tracing_configured());
    let settings = Settings::from_pairs([("LANGFUSE_SECRET_KEY", "sk")]);
    configure_tracing_with(None, &settings).unwrap();
    assert_eq!(
        axion::configured_provider_name().as_deref(),
        Some("noop"),
        "langfuse cannot start: noop"
    );
    axion::clear_tracing_config();
    configure_tracing_with(
        None,
        &Settings::from_pairs([("TRACING_MODE", "no-such-provider")]),
    )
    .unwrap();
    assert_eq!(axion::configured_provider_name().as_deref(), Some("noop"));
    axion::clear_tracing_config();
    assert!(!axion::is_tracing_configured());
    // First use configures from the environment (which has no tracing settings in tests).
    let tracer = Tracer::new(MetadataType::Base);
    assert!(axion::is_tracing_configured());
    assert!(!tracer.span("x").is_recording());
}

#[test]
fn console_writes_one_json_record_per_line_to_the_configured_file() {
    let _turn = turn();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/trace.jsonl");
    let settings = Settings::from_pairs([("AXION_CONSOLE_PATH", path.to_str().unwrap())]);
    configure_tracing_with(Some("console"), &settings).unwrap();
    let tracer = Tracer::builder(MetadataType::Llm).user_id("u").build();
    {
        let root = tracer.span("root");
        root.set_input(json!({"question": "why"}));
        let generation = tracer.span("generate");
        generation.set_model("gpt-4o-mini");
        generation.set_usage(3, 4);
        generation.score("quality", 1.0, None);
    }
    let report = tracer.flush(Duration::from_secs(5)).unwrap();
    assert_eq!(report.exported, 4);
    let text = std::fs::read_to_string(&path).unwrap();
    let records: Vec<Record> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(records.len(), 4, "{text}");
    assert!(matches!(&records[0], Record::Score(score) if score.name == "quality"));
    assert!(
        matches!(&records[1], Record::Observation(o) if o.model.as_deref() == Some("gpt-4o-mini"))
    );
    assert!(
        matches!(&records[2], Record::Observation(o) if o.input == Some(json!({"question": "why"})))
    );
    assert!(matches!(&records[3], Record::Trace(trace) if trace.user_id.as_deref() == Some("u")));
    assert!(text.lines().next().unwrap().starts_with("{\"score\":{"));
    assert_eq!(tracer.stats().export.exported, 4);
    axion::shutdown_tracing(Duration::from_secs(5)).unwrap();
    assert!(!axion::is_tracing_configured());
}

#[test]
fn a_full_console_queue_drops_and_counts_instead_of_blocking() {
    let _turn = turn();
    let settings = Settings::from_pairs([
        ("AXION_CONSOLE_PATH", "/dev/null"),
        ("AXION_EXPORT_QUEUE_SIZE", "4"),
        ("AXION_EXPORT_INTERVAL_MS", "60000"),
        ("AXION_EXPORT_BATCH_SIZE", "1000"),
    ]);
    configure_tracing_with(Some("console"), &settings).unwrap();
    let tracer = Tracer::new(MetadataType::Base);
    for _ in 0..200 {
        drop(tracer.span_builder("burst").start());
    }
    let report = tracer.flush(Duration::from_secs(5)).unwrap();
    let stats = tracer.stats().export;
    assert!(stats.dropped_queue_full > 0, "{stats:?}");
    assert_eq!(
        stats.queued + stats.dropped_queue_full,
        400,
        "every record is either queued or counted"
    );
    assert_eq!(stats.exported, stats.queued);
    assert_eq!(report.dropped_total, stats.dropped_queue_full);
    assert!(tracer.stats().to_string().contains("dropped records"));
    axion::shutdown_tracing(Duration::from_secs(5)).unwrap();
    let bad = Settings::from_pairs([("AXION_EXPORT_QUEUE_SIZE", "0")]);
    let error = configure_tracing_with(Some("console"), &bad)
        .unwrap_err()
        .to_string();
    assert!(error.contains("AXION_EXPORT_QUEUE_SIZE"), "{error}");
}
