//! `#[trace]`: sync, async, methods, capture, errors, panics, noop cost.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axion::{trace, HasTracer, MetadataType, ObservationLevel, ObservationType, Tracer};
use common::tracer;
use serde_json::json;

#[trace(capture_args, capture_result)]
fn add(a: u32, b: u32) -> u32 {
    a + b
}

#[trace(name = "renamed", capture_args, skip(secret))]
fn with_secret(user: &str, secret: &str) -> usize {
    user.len() + secret.len()
}

#[derive(Debug)]
struct LookupError(String);
impl std::fmt::Display for LookupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not found: {}", self.0)
    }
}

#[trace(capture_result)]
fn lookup(key: &str) -> Result<String, LookupError> {
    if key == "missing" {
        return Err(LookupError(key.into()));
    }
    let value = key.to_uppercase();
    Ok(value)
}

#[trace]
fn early_return_with_question_mark(input: &str) -> Result<u32, std::num::ParseIntError> {
    let number: u32 = input.parse()?;
    Ok(number * 2)
}

#[trace(span_type = "generation", capture_args)]
async fn generate(prompt: String) -> String {
    tokio::task::yield_now().await;
    format!("echo: {prompt}")
}

#[trace]
fn explode() {
    panic!("kaboom");
}

struct NotSerializable;

#[trace(capture_args)]
fn opaque(value: NotSerializable, list: Vec<u8>, debug_only: std::time::Duration) -> usize {
    let _ = value;
    list.len() + debug_only.as_secs() as usize
}

fn elided(text: &str) -> &str {
    text
}

#[trace(capture_result)]
fn borrows(text: &str) -> &str {
    elided(text)
}

#[trace]
fn returns_impl_trait(n: u32) -> impl Iterator<Item = u32> {
    0..n
}

#[test]
fn free_functions_use_the_context_tracer() {
    let (tracer, sink) = tracer(MetadataType::Base);
    assert_eq!(add(1, 2), 3, "no tracer in context: runs untraced");
    assert!(sink.observations().is_empty());
    {
        let _guard = tracer.context();
        assert_eq!(add(2, 3), 5);
        assert_eq!(with_secret("ann", "hunter2"), 10);
        assert_eq!(borrows("x"), "x");
        assert_eq!(returns_impl_trait(3).count(), 3);
    }
    let add = sink.observation("add");
    assert_eq!(add.input, Some(json!({"a": 2, "b": 3})));
    assert_eq!(add.output, Some(json!(5)));
    let renamed = sink.observation("renamed");
    assert_eq!(
        renamed.input,
        Some(json!({"user": "ann"})),
        "skipped parameters are left out"
    );
    assert_eq!(renamed.output, None, "no capture_result");
    assert_eq!(sink.observation("borrows").output, Some(json!("x")));
    sink.observation("returns_impl_trait");
}

#[test]
fn errors_mark_the_span_and_values_are_returned_unchanged() {
    let (tracer, sink) = tracer(MetadataType::Base);
    let _guard = tracer.context();
    assert_eq!(lookup("key").unwrap(), "KEY");
    assert_eq!(lookup("missing").unwrap_err().0, "missing");
    assert_eq!(early_return_with_question_mark("21").unwrap(), 42);
    assert!(early_return_with_question_mark("x").is_err());
    let observations = sink.observations();
    let lookups: Vec<_> = observations
        .iter()
        .filter(|o| o.name.as_deref() == Some("lookup"))
        .collect();
    assert_eq!(
        lookups[0].output,
        Some(json!("KEY")),
        "the Ok value, not {{\"Ok\": …}}"
    );
    assert_eq!(lookups[0].level, ObservationLevel::Default);
    assert_eq!(lookups[1].level, ObservationLevel::Error);
    assert_eq!(
        lookups[1].status_message.as_deref(),
        Some("not found: missing")
    );
    assert!(lookups[1].metadata.as_ref().unwrap()["error.type"]
        .as_str()
        .unwrap()
        .ends_with("LookupError"));
    let parses: Vec<_> = observations
        .iter()
        .filter(|o| o.name.as_deref() == Some("early_return_with_question_mark"))
        .collect();
    assert_eq!(parses[0].level, ObservationLevel::Default);
    assert_eq!(
        parses[1].level,
        ObservationLevel::Error,
        "an early return through ? is still seen"
    );
    assert_eq!(
        parses[1].status_message.as_deref(),
        Some("invalid digit found in string")
    );
}

#[test]
fn non_serializable_arguments_fall_back_to_debug_then_type_name() {
    let (tracer, sink) = tracer(MetadataType::Base);
    let _guard = tracer.context();
    opaque(
        NotSerializable,
        vec![1, 2],
        std::time::Duration::from_secs(1),
    );
    let input = sink.observation("opaque").input.unwrap();
    assert_eq!(input["list"], json!([1, 2]));
    assert_eq!(
        input["debug_only"],
        json!({"secs": 1, "nanos": 0}),
        "Duration is Serialize"
    );
    assert!(
        input["value"]
            .as_str()
            .unwrap()
            .ends_with("NotSerializable>"),
        "{input}"
    );
}

#[test]
fn panics_mark_the_span_failed_and_propagate() {
    let (tracer, sink) = tracer(MetadataType::Base);
    let _guard = tracer.context();
    assert!(std::panic::catch_unwind(explode).is_err());
    let observation = sink.observation("explode");
    assert_eq!(observation.level, ObservationLevel::Error);
    assert_eq!(observation.status_message.as_deref(), Some("panicked"));
}

#[derive(HasTracer)]
struct Service {
    tracer: Tracer,
    name: String,
}

impl Service {
    #[trace(capture_args, capture_result)]
    fn span(&self, query: &str) -> String {
        self.internal_span(query.len())
    }

    #[trace]
    fn internal_span(&self, size: usize) -> String {
        format!("{}:{size}", self.name)
    }

    #[trace(capture_result)]
    async fn answer(&self, question: &str) -> Result<String, LookupError> {
        tokio::task::yield_now().await;
        let generated = generate(question.to_owned()).await;
        Ok(generated)
    }

    #[trace]
    fn consume(self) -> String {
        self.name
    }
}

#[test]
fn methods_use_their_own_tracer_and_nest() {
    let (tracer, sink) = tracer(MetadataType::Base);
    let service = Service {
        tracer,
        name: "svc".into(),
    };
    assert_eq!(service.span("abc"), "svc:3");
    let outer = sink.observation("span");
    assert_eq!(
        outer.input,
        Some(json!({"query": "abc"})),
        "self is never captured"
    );
    assert_eq!(outer.output, Some(json!("svc:3")));
    assert_eq!(
        sink.observation("internal_span")
            .parent_observation_id
            .as_deref(),
        Some(outer.id.as_str())
    );
    assert_eq!(service.consume(), "svc");
    sink.observation("consume");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_methods_and_functions() {
    let (tracer, sink) = tracer(MetadataType::Llm);
    let service = Arc::new(Service {
        tracer,
        name: "svc".into(),
    });
    let answers = futures_util::future::join_all((0..10).map(|i| {
        let service = service.clone();
        async move { service.answer(&format!("q{i}")).await.unwrap() }
    }))
    .await;
    assert_eq!(answers[3], "echo: q3");
    let observations = sink.observations();
    assert_eq!(observations.len(), 20);
    for generation in observations
        .iter()
        .filter(|o| o.name.as_deref() == Some("generate"))
    {
        assert_eq!(generation.r#type, ObservationType::Generation);
        let parent = observations
            .iter()
            .find(|o| Some(&o.id) == generation.parent_observation_id.as_ref())
            .unwrap();
        assert_eq!(parent.name.as_deref(), Some("answer"));
        let prompt = generation.input.as_ref().unwrap()["prompt"]
            .as_str()
            .unwrap();
        assert_eq!(
            parent.output.as_ref().unwrap(),
            &json!(format!("echo: {prompt}"))
        );
    }
}

static SERIALIZED: AtomicUsize = AtomicUsize::new(0);

struct Expensive;
impl serde::Serialize for Expensive {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        SERIALIZED.fetch_add(1, Ordering::SeqCst);
        serializer.serialize_str("expensive")
    }
}

#[trace(capture_args, capture_result)]
fn takes_expensive(value: Expensive) -> Expensive {
    value
}

#[derive(HasTracer)]
struct NoopService {
    #[tracer]
    handle: Tracer,
}

impl NoopService {
    #[trace(capture_args, capture_result)]
    fn call(&self, value: Expensive) -> Expensive {
        value
    }
}

#[test]
fn with_noop_nothing_is_serialised() {
    let noop = Tracer::builder(MetadataType::Base)
        .provider(Arc::new(axion::NoopTracer))
        .build();
    {
        let _guard = noop.context();
        takes_expensive(Expensive);
    }
    takes_expensive(Expensive);
    NoopService { handle: noop }.call(Expensive);
    assert_eq!(SERIALIZED.load(Ordering::SeqCst), 0);

    let (tracer, _sink) = tracer(MetadataType::Base);
    let _guard = tracer.context();
    takes_expensive(Expensive);
    assert_eq!(
        SERIALIZED.load(Ordering::SeqCst),
        2,
        "argument and result, once each"
    );
}
