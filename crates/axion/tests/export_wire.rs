//! What the exporters put on the wire, captured on a local listener and compared field by field
//! with the official SDKs' captures in `fixtures/` (endpoints, headers, attribute names and
//! value types).

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axion::{MetadataType, ObservationLevel, ObservationType, Settings, Tracer, TracerRegistry};
use axion_model::otlp::{any_value, decode_protobuf, ExportTraceServiceRequest, KeyValue};
use axum::body::Bytes;
use axum::http::{HeaderMap, Uri};
use serde_json::{json, Value};

#[derive(Debug, Clone)]
struct Captured {
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

async fn capture_listener() -> (SocketAddr, Arc<Mutex<Vec<Captured>>>) {
    let captured = Arc::new(Mutex::new(Vec::new()));
    let sink = captured.clone();
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
        let sink = sink.clone();
        async move {
            let headers = headers
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_owned(),
                        value.to_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            sink.lock().unwrap().push(Captured {
                path: uri.path().to_owned(),
                headers,
                body: body.to_vec(),
            });
            "{}"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, captured)
}

fn fixture(path: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(path);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn scenario(tracer: &Tracer) {
    let root = tracer.span("answer_question");
    root.update_trace(
        axion::TraceUpdate::new()
            .tags(["capture", "demo"])
            .user_id("u1"),
    );
    {
        let generation = tracer
            .span_builder("chat")
            .kind(ObservationType::Generation)
            .enter();
        generation.set_attribute("provider", "openai");
        generation.set_model("gpt-4o-mini");
        generation.set_model_parameters(json!({"temperature": 0.0}));
        generation
            .set_input(json!([{"role": "user", "content": "What is the capital of France?"}]));
        generation.set_output(json!({"role": "assistant", "content": "Paris."}));
        generation.set_usage(12, 3);
        generation.set_cost(0.00002);
        generation.add_event(
            "cache miss",
            ObservationLevel::Warning,
            json!({"query": "capital"}),
        );
    }
    {
        let failing = tracer.span("lookup");
        failing.set_level(ObservationLevel::Error);
        failing.set_status_message("ZeroDivisionError: division by zero");
    }
}

/// `(key, kind)` of OTLP/JSON attributes, kind being the value's field name.
fn fixture_kinds(attributes: &Value) -> HashMap<String, String> {
    attributes
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            let kind = pair["value"]
                .as_object()
                .unwrap()
                .keys()
                .next()
                .unwrap()
                .clone();
            (pair["key"].as_str().unwrap().to_owned(), kind)
        })
        .collect()
}

fn our_kinds(attributes: &[KeyValue]) -> HashMap<String, String> {
    attributes
        .iter()
        .map(|pair| {
            let kind = match pair.value.as_ref().and_then(|value| value.value.as_ref()) {
                Some(any_value::Value::StringValue(_)) => "stringValue",
                Some(any_value::Value::IntValue(_)) => "intValue",
                Some(any_value::Value::DoubleValue(_)) => "doubleValue",
                Some(any_value::Value::BoolValue(_)) => "boolValue",
                Some(any_value::Value::ArrayValue(_)) => "arrayValue",
                _ => "other",
            };
            (pair.key.clone(), kind.to_owned())
        })
        .collect()
}

fn string_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|pair| pair.key == key)
        .and_then(|pair| match pair.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(text) => Some(text.as_str()),
            _ => None,
        })
}

fn decode(captured: &Captured) -> ExportTraceServiceRequest {
    let mut body = Vec::new();
    if captured.headers.get("content-encoding").map(String::as_str) == Some("gzip") {
        flate2::read::GzDecoder::new(captured.body.as_slice())
            .read_to_end(&mut body)
            .unwrap();
    } else {
        body = captured.body.clone();
    }
    decode_protobuf(&body).unwrap()
}

async fn run(provider: Arc<dyn axion::BaseTracer>) {
    let tracer = Tracer::builder(MetadataType::Llm)
        .provider(provider)
        .force_new(true)
        .build();
    tokio::task::spawn_blocking(move || {
        scenario(&tracer);
        tracer.flush(Duration::from_secs(10)).unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn logfire_requests_match_the_python_sdk_capture() {
    let (addr, captured) = capture_listener().await;
    let settings = Settings::from_pairs([
        ("LOGFIRE_TOKEN", "pylf_v1_us_0123456789abcdef".to_owned()),
        ("LOGFIRE_BASE_URL", format!("http://{addr}")),
        ("LOGFIRE_SERVICE_NAME", "capture-demo".to_owned()),
        ("LOGFIRE_SERVICE_VERSION", "1.2.3".to_owned()),
        ("LOGFIRE_ENVIRONMENT", "capture".to_owned()),
    ]);
    run(TracerRegistry::create("logfire", &settings).unwrap()).await;
    let reference = fixture("logfire/002-post-v1-traces.json");
    let requests = captured.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.path, reference["path"]);
    let reference_headers: HashMap<String, String> = reference["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, value)| {
            (
                name.to_ascii_lowercase(),
                value.as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for name in ["content-type", "content-encoding"] {
        assert_eq!(
            request.headers.get(name),
            reference_headers.get(name),
            "{name}"
        );
    }
    assert_eq!(
        request.headers["authorization"], "pylf_v1_us_0123456789abcdef",
        "raw token, no Bearer"
    );

    let ours = decode(request);
    let theirs = &reference["body"]["resourceSpans"][0];
    let resource = our_kinds(&ours.resource_spans[0].resource.as_ref().unwrap().attributes);
    for key in [
        "service.name",
        "service.version",
        "deployment.environment.name",
    ] {
        assert_eq!(
            resource.get(key),
            fixture_kinds(&theirs["resource"]["attributes"]).get(key),
            "{key}"
        );
    }
    let their_spans = theirs["scopeSpans"][0]["spans"].as_array().unwrap();
    let their_kinds: Vec<HashMap<String, String>> = their_spans
        .iter()
        .map(|span| fixture_kinds(&span["attributes"]))
        .collect();
    let our_spans = &ours.resource_spans[0].scope_spans[0].spans;
    assert_eq!(our_spans.len(), 4);
    for span in our_spans {
        let kinds = our_kinds(&span.attributes);
        for key in [
            "logfire.msg_template",
            "logfire.msg",
            "logfire.span_type",
            "logfire.level_num",
            "logfire.json_schema",
        ] {
            let theirs = their_kinds.iter().find_map(|k| k.get(key)).unwrap();
            assert_eq!(kinds.get(key), Some(theirs), "{} {key}", span.name);
        }
        let schema: Value = serde_json::from_str(
            string_attribute(&span.attributes, "logfire.json_schema").unwrap(),
        )
        .unwrap();
        for pair in &span.attributes {
            if !pair.key.starts_with("logfire.") {
                assert!(
                    schema["properties"].get(&pair.key).is_some(),
                    "{}: {} missing from the schema",
                    span.name,
                    pair.key
                );
            }
        }
    }
    let by_name = |name: &str| our_spans.iter().find(|span| span.name == name).unwrap();
    // The Python capture's LLM span: every GenAI key it sends, with the same value types.
    let their_llm = their_kinds
        .iter()
        .find(|kinds| kinds.contains_key("gen_ai.request.model"))
        .unwrap();
    let our_llm = our_kinds(&by_name("chat").attributes);
    for key in [
        "gen_ai.system",
        "gen_ai.provider.name",
        "gen_ai.operation.name",
        "gen_ai.request.model",
        "gen_ai.response.model",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "operation.cost",
        "gen_ai.request.temperature",
    ] {
        assert_eq!(our_llm.get(key), their_llm.get(key), "chat {key}");
    }
    let schema: Value = serde_json::from_str(
        string_attribute(&by_name("chat").attributes, "logfire.json_schema").unwrap(),
    )
    .unwrap();
    assert_eq!(
        schema["properties"]["gen_ai.input.messages"],
        json!({"type": "array"})
    );
    let messages: Value = serde_json::from_str(
        string_attribute(&by_name("chat").attributes, "gen_ai.input.messages").unwrap(),
    )
    .unwrap();
    assert_eq!(
        messages,
        json!([{"role": "user", "parts": [{"type": "text", "content": "What is the capital of France?"}]}])
    );
    let event = by_name("cache miss");
    assert_eq!(
        string_attribute(&event.attributes, "logfire.span_type"),
        Some("log")
    );
    let level = |span: &axion_model::otlp::Span| {
        span.attributes
            .iter()
            .find(|p| p.key == "logfire.level_num")
            .cloned()
    };
    assert_eq!(
        format!("{:?}", level(event)),
        format!(
            "{:?}",
            Some(KeyValue {
                key: "logfire.level_num".into(),
                value: Some(axion_model::otlp::AnyValue {
                    value: Some(any_value::Value::IntValue(13))
                })
            })
        )
    );
    let failing = by_name("lookup");
    assert_eq!(failing.status.as_ref().map(|status| status.code), Some(2));
    assert!(failing.events.iter().any(|event| event.name == "exception"));
    let root = by_name("answer_question");
    assert_eq!(
        our_kinds(&root.attributes)
            .get("logfire.tags")
            .map(String::as_str),
        Some("arrayValue")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn langfuse_otlp_requests_match_the_5x_sdk_capture() {
    let (addr, captured) = capture_listener().await;
    let settings = Settings::from_pairs([
        ("LANGFUSE_PUBLIC_KEY", "pk-lf-test".to_owned()),
        ("LANGFUSE_SECRET_KEY", "sk-lf-test".to_owned()),
        ("LANGFUSE_HOST", format!("http://{addr}")),
    ]);
    run(TracerRegistry::create("langfuse", &settings).unwrap()).await;
    let reference = fixture("langfuse/5.0.4/001-POST-otel-v1-traces.json");
    let requests = captured.lock().unwrap().clone();
    let otlp = requests
        .iter()
        .find(|request| request.path == reference["path"])
        .expect("an OTLP export");
    for name in [
        "content-type",
        "content-encoding",
        "x-langfuse-ingestion-version",
        "x-langfuse-public-key",
    ] {
        let expected = reference["headers"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .unwrap()
            .1;
        assert_eq!(
            otlp.headers.get(name).map(String::as_str),
            expected.as_str(),
            "{name}"
        );
    }
    assert_eq!(
        otlp.headers["authorization"],
        "Basic cGstbGYtdGVzdDpzay1sZi10ZXN0"
    );
    let ours = decode(otlp);
    let their_spans = reference["body"]["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array()
        .unwrap();
    let their_generation = their_spans
        .iter()
        .find(|span| span["name"] == "llm-call")
        .unwrap();
    let their_kinds = fixture_kinds(&their_generation["attributes"]);
    let our_generation = ours.resource_spans[0].scope_spans[0]
        .spans
        .iter()
        .find(|span| span.name == "chat")
        .unwrap();
    let kinds = our_kinds(&our_generation.attributes);
    for key in [
        "langfuse.observation.type",
        "langfuse.observation.input",
        "langfuse.observation.output",
        "langfuse.observation.model.name",
        "langfuse.observation.model.parameters",
        "langfuse.observation.usage_details",
        "langfuse.observation.cost_details",
        "langfuse.observation.metadata.provider",
    ] {
        assert_eq!(kinds.get(key), their_kinds.get(key), "{key}");
    }
    assert_eq!(
        string_attribute(&our_generation.attributes, "langfuse.observation.type"),
        Some("generation")
    );
    // Scores and trace updates that OTLP cannot carry go through the ingestion API.
    let root = ours.resource_spans[0].scope_spans[0]
        .spans
        .iter()
        .find(|span| span.name == "answer_question")
        .unwrap();
    assert_eq!(
        our_kinds(&root.attributes)
            .get("langfuse.trace.tags")
            .map(String::as_str),
        Some("arrayValue")
    );
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_uuid7(text: &str) -> bool {
    text.len() == 36 && &text[14..15] == "7" && matches!(&text[19..20], "8" | "9" | "a" | "b")
}

fn body_json(captured: &Captured) -> Value {
    let mut body = Vec::new();
    if captured.headers.get("content-encoding").map(String::as_str) == Some("gzip") {
        flate2::read::GzDecoder::new(captured.body.as_slice())
            .read_to_end(&mut body)
            .unwrap();
    } else {
        body = captured.body.clone();
    }
    serde_json::from_slice(&body).unwrap()
}

/// Every key we send is one the Python SDK sends, with the same JSON type (nulls aside).
fn assert_same_shape(ours: &Value, theirs: &Value, what: &str) {
    let theirs = theirs.as_object().unwrap();
    for (key, value) in ours.as_object().unwrap() {
        let reference = theirs
            .get(key)
            .unwrap_or_else(|| panic!("{what}: {key} is not in the capture"));
        if !value.is_null() && !reference.is_null() {
            assert_eq!(json_kind(value), json_kind(reference), "{what}.{key}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn opik_requests_match_the_python_sdk_capture() {
    let (addr, captured) = capture_listener().await;
    let settings = Settings::from_pairs([
        ("OPIK_URL_OVERRIDE", format!("http://{addr}/api")),
        ("OPIK_API_KEY", "opik-key".to_owned()),
        ("OPIK_WORKSPACE", "capture-workspace".to_owned()),
        ("OPIK_PROJECT_NAME", "capture-opik-demo".to_owned()),
    ]);
    let provider = TracerRegistry::create("opik", &settings).unwrap();
    let tracer = Tracer::builder(MetadataType::Llm)
        .provider(provider)
        .force_new(true)
        .build();
    tokio::task::spawn_blocking(move || {
        let root = tracer.span("answer_question");
        root.set_input(json!({"question": "What is the capital of France?"}));
        root.update_trace(
            axion::TraceUpdate::new()
                .tags(["capture", "demo"])
                .user_id("user-42")
                .session_id("session-123"),
        );
        {
            let generation = tracer
                .span_builder("chat_completion")
                .kind(ObservationType::Generation)
                .enter();
            generation.set_attribute("provider", "openai");
            generation.set_model("gpt-4o-mini");
            generation.set_input(json!({"messages": [{"role": "user", "content": "capital?"}]}));
            generation.set_output(json!({"role": "assistant", "content": "Paris."}));
            generation.set_usage(12, 3);
            generation.score("accuracy", 1.0, None);
        }
        {
            let retrieve = tracer.span("retrieve_context");
            retrieve.set_output(json!(["Paris is the capital of France."]));
        }
        root.set_output(json!({"answer": "Paris."}));
        root.score_trace("relevance", 0.9, Some("on topic"));
        drop(root);
        tracer.flush(Duration::from_secs(10)).unwrap();
    })
    .await
    .unwrap();
    let requests = captured.lock().unwrap().clone();
    let find = |path: &str| {
        requests
            .iter()
            .find(|request| request.path == path)
            .unwrap_or_else(|| panic!("no {path}: {requests:#?}"))
    };
    let traces = find("/api/v1/private/traces/batch");
    let spans = find("/api/v1/private/spans/batch");
    for request in [traces, spans] {
        assert_eq!(
            request.headers["authorization"], "opik-key",
            "raw key, no Bearer"
        );
        assert_eq!(request.headers["comet-workspace"], "capture-workspace");
        assert_eq!(request.headers["content-type"], "application/json");
        assert_eq!(
            request.headers.get("content-encoding").map(String::as_str),
            Some("gzip"),
            "bodies ≥ 256 bytes are gzipped"
        );
    }
    let reference_trace =
        &fixture("opik/001-post-api-v1-private-traces-batch.json")["body"]["traces"][0];
    let trace = &body_json(traces)["traces"][0];
    assert_same_shape(trace, reference_trace, "TraceWrite");
    assert!(is_uuid7(trace["id"].as_str().unwrap()), "{}", trace["id"]);
    assert_eq!(trace["thread_id"], "session-123");
    assert_eq!(trace["metadata"]["user_id"], "user-42");
    assert_eq!(trace["project_name"], "capture-opik-demo");
    assert_eq!(trace["output"], json!({"answer": "Paris."}));

    let reference_spans =
        fixture("opik/002-post-api-v1-private-spans-batch.json")["body"]["spans"].clone();
    let reference_llm = reference_spans
        .as_array()
        .unwrap()
        .iter()
        .find(|span| span["type"] == "llm")
        .unwrap();
    let reference_general = reference_spans
        .as_array()
        .unwrap()
        .iter()
        .find(|span| span["type"] == "general")
        .unwrap();
    let spans = body_json(spans)["spans"].as_array().unwrap().clone();
    let by_name = |name: &str| {
        spans
            .iter()
            .find(|span| span["name"] == name)
            .unwrap()
            .clone()
    };
    let llm = by_name("chat_completion");
    assert_same_shape(&llm, reference_llm, "SpanWrite(llm)");
    assert_eq!(
        (&llm["type"], &llm["model"], &llm["provider"]),
        (&json!("llm"), &json!("gpt-4o-mini"), &json!("openai"))
    );
    assert_eq!(llm["usage"]["prompt_tokens"], 12);
    assert_eq!(llm["usage"]["total_tokens"], 15);
    let root = by_name("answer_question");
    let retrieve = by_name("retrieve_context");
    assert_same_shape(&retrieve, reference_general, "SpanWrite(general)");
    assert_eq!(
        retrieve["output"],
        json!({"output": ["Paris is the capital of France."]}),
        "non-objects are wrapped"
    );
    assert_eq!(llm["parent_span_id"], root["id"]);
    assert_eq!(llm["trace_id"], trace["id"]);
    assert!(root.get("parent_span_id").is_none());

    let reference_score =
        &fixture("opik/009-put-api-v1-private-traces-feedback-scores.json")["body"]["scores"][0];
    let trace_scores = body_json(find("/api/v1/private/traces/feedback-scores"));
    assert_same_shape(
        &trace_scores["scores"][0],
        reference_score,
        "FeedbackScoreBatchItem",
    );
    assert_eq!(
        (
            &trace_scores["scores"][0]["id"],
            &trace_scores["scores"][0]["reason"]
        ),
        (&trace["id"], &json!("on topic"))
    );
    let span_scores = body_json(find("/api/v1/private/spans/feedback-scores"));
    assert_eq!(span_scores["scores"][0]["id"], llm["id"]);
}
