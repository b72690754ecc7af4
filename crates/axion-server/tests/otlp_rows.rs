//! OTLP exports take a direct path to rows (`otlp::prepare`). The reference is the event path
//! every other ingestion takes (`otlp::process` → `PreparedBatch::new`): for every captured
//! export and a set of built ones covering Langfuse's folding rules, both must give the same
//! rows, bodies, patches and rejections.

use std::path::Path;

use axion_model::otlp::{
    any_value, decode_json, AnyValue, ArrayValue, ExportTraceServiceRequest, InstrumentationScope,
    KeyValue, Resource, ResourceSpans, ScopeSpans, Span, Status,
};
use axion_server::cost::Pricing;
use axion_server::ingest::otlp;
use axion_server::store::rows::{ObservationRow, Prepared, PreparedBatch, TraceRow};
use prost::Message;
use serde_json::{json, Value};

fn body(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("body {text:?}: {error}"))
}

fn io(prepared_io: &axion_model::Io) -> Value {
    json!({
        "input": prepared_io.input.as_ref().map(|text| text.as_str().to_owned()),
        "output": prepared_io.output.as_ref().map(|text| text.as_str().to_owned()),
        "from": prepared_io.from_observation,
    })
}

fn trace(prepared: &Prepared<TraceRow>) -> Value {
    let row = &prepared.row;
    json!({
        "id": prepared.id, "fields": Value::Object(prepared.fields().into_owned()),
        "io": io(&prepared.io),
        "timestamp": row.timestamp, "name": row.name, "user": row.user_id,
        "session": row.session_id, "release": row.release, "version": row.version,
        "environment": row.environment, "public": row.public, "tags": row.tags,
        "body": body(&row.body), "io_observation": row.io_observation_id,
    })
}

fn observation(prepared: &Prepared<ObservationRow>) -> Value {
    let row = &prepared.row;
    json!({
        "id": prepared.id, "fields": Value::Object(prepared.fields().into_owned()),
        "io": io(&prepared.io),
        "trace": row.trace_id, "parent": row.parent_observation_id, "type": row.kind,
        "name": row.name, "level": row.level, "version": row.version,
        "environment": row.environment, "model": row.model, "start": row.start_time,
        "end": row.end_time, "cost": row.total_cost, "body": body(&row.body),
        "derived": body(&row.derived),
    })
}

fn batch(batch: &PreparedBatch) -> Value {
    json!({
        "traces": batch.traces.iter().map(trace).collect::<Vec<_>>(),
        "observations": batch.observations.iter().map(observation).collect::<Vec<_>>(),
    })
}

/// Both paths agree on `request`; returns the direct path's rows.
fn same_rows(name: &str, request: &ExportTraceServiceRequest) -> Value {
    let pricing = Pricing::langfuse_defaults();
    let direct = otlp::prepare_request(request, &pricing, 7);
    let reference = otlp::process_request(request);
    let expected = PreparedBatch::new(reference.writes, &pricing, 7);
    let (got, want) = (batch(&direct.batch), batch(&expected));
    if got != want {
        panic!(
            "{name}: rows differ\n direct: {}\n events: {}",
            serde_json::to_string_pretty(&got).unwrap(),
            serde_json::to_string_pretty(&want).unwrap()
        );
    }
    // The request's protobuf bytes, read in place (a view borrowing them), give the same rows.
    let bytes = request.encode_to_vec();
    let in_place = otlp::prepare("application/x-protobuf", None, &bytes, &pricing, 7).unwrap();
    assert_eq!(batch(&in_place.batch), got, "{name}: rows read in place");
    assert_eq!(in_place.errors.len(), direct.errors.len(), "{name}");
    let errors = |errors: &[(String, axion_server::ingest::EventError)]| {
        errors
            .iter()
            .map(|(id, error)| format!("{id}: {} {}", error.status, error.error))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        errors(&direct.errors),
        errors(&reference.errors),
        "{name}: rejections"
    );
    got
}

#[test]
fn every_captured_export_gives_the_rows_of_the_event_path() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let mut checked = 0;
    for dir in [
        "langfuse/2.60.10",
        "langfuse/3.15.0",
        "langfuse/5.0.4",
        "otlp",
        "logfire",
    ] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let capture: Value = match std::fs::read(&path) {
                Ok(bytes) if path.extension().is_some_and(|ext| ext == "json") => {
                    serde_json::from_slice(&bytes).unwrap()
                }
                _ => continue,
            };
            let is_export = capture["method"] == "POST"
                && capture["path"]
                    .as_str()
                    .is_some_and(|path| path.ends_with("/v1/traces"));
            if !is_export {
                continue;
            }
            let request = decode_json(&serde_json::to_vec(&capture["body"]).unwrap()).unwrap();
            let rows = same_rows(&path.display().to_string(), &request);
            assert!(
                !rows["observations"].as_array().unwrap().is_empty(),
                "{path:?}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 4, "only {checked} exports found");
}

fn string(key: &str, value: &str) -> KeyValue {
    any(key, any_value::Value::StringValue(value.into()))
}

fn any(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
    }
}

fn span(trace: u8, id: u8, parent: Option<u8>, start_ms: u64, attributes: Vec<KeyValue>) -> Span {
    let start = 1_767_225_600_000_000_000 + start_ms * 1_000_000;
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        parent_span_id: parent.map(|parent| vec![parent; 8]).unwrap_or_default(),
        name: format!("span-{id}"),
        start_time_unix_nano: start,
        end_time_unix_nano: start + 5_000_000,
        attributes,
        ..Default::default()
    }
}

fn export(scope: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    string("service.name", "rows-test"),
                    string("service.version", "1.2.3"),
                    string("langfuse.trace.metadata.region", "eu"),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: scope.into(),
                    version: "5.0.4".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn tags(values: &[&str]) -> KeyValue {
    let values = values
        .iter()
        .map(|tag| AnyValue {
            value: Some(any_value::Value::StringValue((*tag).into())),
        })
        .collect();
    any(
        "langfuse.trace.tags",
        any_value::Value::ArrayValue(ArrayValue { values }),
    )
}

#[test]
fn built_exports_give_the_rows_of_the_event_path() {
    let generation = |extra: Vec<KeyValue>| {
        let mut attributes = vec![
            string("langfuse.observation.type", "generation"),
            string("langfuse.observation.model.name", "gpt-4o-mini"),
            string(
                "langfuse.observation.usage_details",
                r#"{"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                    "prompt_tokens_details": {"cached_tokens": 30}}"#,
            ),
            string(
                "langfuse.observation.input",
                r#"{"messages":[{"role":"user"}]}"#,
            ),
            string("langfuse.observation.output", "{}"),
        ];
        attributes.extend(extra);
        attributes
    };
    let cases: Vec<(&str, ExportTraceServiceRequest)> = vec![
        (
            // Children first, with earlier starts; trace attributes repeated with other tags,
            // metadata and names on several spans; one span of another trace in between.
            "folding",
            export(
                "langfuse-sdk",
                vec![
                    span(1, 3, Some(1), 5, {
                        let mut a = generation(vec![]);
                        a.extend([
                            tags(&["b", "a"]),
                            string("user.id", "u1"),
                            string("langfuse.trace.metadata.step", r#"{"x": 1}"#),
                            string("langfuse.environment", "prod"),
                        ]);
                        a
                    }),
                    span(
                        2,
                        9,
                        None,
                        1,
                        vec![string("langfuse.environment", "Langfuse-Staging")],
                    ),
                    span(
                        1,
                        2,
                        Some(1),
                        2,
                        vec![
                            tags(&["c"]),
                            string("session.id", "s1"),
                            string("langfuse.trace.name", "named-by-child"),
                            string("langfuse.trace.metadata.step", r#"{"y": 2}"#),
                            string("langfuse.observation.metadata.k", "v"),
                        ],
                    ),
                    span(
                        1,
                        1,
                        None,
                        3,
                        vec![
                            string("langfuse.observation.input", r#""question""#),
                            string("langfuse.trace.output", r#"{"answer": 42}"#),
                            string("langfuse.trace.public", "true"),
                            string("langfuse.release", "r9"),
                            string(
                                "langfuse.observation.metadata",
                                r#"{"scope": "mine", "a": 1}"#,
                            ),
                        ],
                    ),
                    span(1, 4, Some(2), 4, vec![]),
                ],
            ),
        ),
        (
            // Spans of other SDKs: raw attributes in metadata, GenAI and OpenInference keys,
            // status errors, events, and a trace only children name.
            "other sdks",
            export(
                "opentelemetry.instrumentation.openai",
                vec![
                    span(
                        5,
                        1,
                        Some(7),
                        1,
                        vec![
                            string("gen_ai.request.model", "gpt-4o"),
                            any("gen_ai.usage.input_tokens", any_value::Value::IntValue(10)),
                            any("gen_ai.usage.output_tokens", any_value::Value::IntValue(3)),
                            any(
                                "gen_ai.request.temperature",
                                any_value::Value::DoubleValue(0.5),
                            ),
                            string("deployment.environment", "prod"),
                        ],
                    ),
                    Span {
                        status: Some(Status {
                            code: 2,
                            message: "boom".into(),
                        }),
                        ..span(
                            5,
                            2,
                            Some(7),
                            1,
                            vec![
                                string("openinference.span.kind", "TOOL"),
                                string("input.value", "not json"),
                                string("output.value", "null"),
                            ],
                        )
                    },
                    span(
                        5,
                        3,
                        Some(7),
                        0,
                        vec![
                            string("langfuse.observation.type", "event"),
                            string("langfuse.observation.level", "warn"),
                            string("gen_ai.usage.cost", "0.25"),
                        ],
                    ),
                ],
            ),
        ),
        (
            // Rejections: a trace name over 1000 characters, an unreadable completion start
            // time; the rest of each span still lands.
            "rejections",
            export(
                "langfuse-sdk",
                vec![
                    span(
                        6,
                        1,
                        None,
                        1,
                        vec![string("langfuse.trace.name", &"n".repeat(1001))],
                    ),
                    span(
                        6,
                        2,
                        Some(1),
                        2,
                        generation(vec![string(
                            "langfuse.observation.completion_start_time",
                            "yesterday",
                        )]),
                    ),
                    span(
                        6,
                        3,
                        Some(1),
                        3,
                        generation(vec![string(
                            "langfuse.observation.completion_start_time",
                            r#""2026-01-01T01:00:00.5+01:00""#,
                        )]),
                    ),
                ],
            ),
        ),
        (
            // Trace metadata meeting the objects every root shares (the resource and scope):
            // a second root of one trace, and children naming `scope` in trace metadata,
            // before and after the root. Span ids differ across the two traces: a repeated
            // one would send the whole export down the event path.
            "shared metadata",
            export(
                "langfuse-sdk",
                vec![
                    span(
                        9,
                        2,
                        Some(1),
                        1,
                        vec![string("langfuse.trace.metadata.scope", r#"{"early": 1}"#)],
                    ),
                    span(9, 1, None, 2, vec![]),
                    span(
                        9,
                        3,
                        Some(1),
                        3,
                        vec![string("langfuse.trace.metadata.scope", r#"{"late": 2}"#)],
                    ),
                    span(
                        10,
                        4,
                        None,
                        1,
                        vec![string("langfuse.trace.metadata.zeta", "1")],
                    ),
                    span(
                        10,
                        5,
                        None,
                        2,
                        vec![string(
                            "langfuse.trace.metadata.resourceAttributes",
                            r#"{"service.name": "renamed"}"#,
                        )],
                    ),
                    span(10, 6, Some(4), 3, vec![string("user.id", "u")]),
                ],
            ),
        ),
        (
            // A repeated span id takes the event path as a whole.
            "repeated span",
            export(
                "langfuse-sdk",
                vec![
                    span(
                        8,
                        1,
                        None,
                        2,
                        vec![string("langfuse.observation.output", "1")],
                    ),
                    span(
                        8,
                        1,
                        None,
                        1,
                        vec![string("langfuse.observation.input", "2")],
                    ),
                ],
            ),
        ),
    ];
    for (name, request) in &cases {
        same_rows(name, request);
    }
    let rows = same_rows("folding", &cases[0].1);
    let folded = rows["traces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|trace| trace["id"] == "01".repeat(16))
        .unwrap();
    assert_eq!(folded["tags"], json!(["a", "b", "c"]), "{folded}");
    assert_eq!(folded["body"]["metadata"]["step"], json!({"x": 1, "y": 2}));
    assert_eq!(folded["user"], "u1");
    assert_eq!(
        folded["environment"], "prod",
        "a default environment gives way"
    );
    assert_eq!(folded["io_observation"], "01".repeat(8));
}
