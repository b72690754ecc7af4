//! OTLP ⇄ model: decoding OTLP/HTTP trace exports (protobuf or OTLP/JSON) and mapping each span
//! to Langfuse ingestion events with Langfuse's attribute rules (`langfuse.*`, `gen_ai.*`,
//! `llm.*`, OpenInference, `user.id`, `session.id`, OTel status → level, root span → trace).
//!
//! ```
//! use axion_model::otlp;
//!
//! let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{
//!     "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
//!     "name":"chat","startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000001000000000",
//!     "attributes":[{"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o"}},
//!                   {"key":"user.id","value":{"stringValue":"u1"}}]}]}]}]}"#;
//! let request = otlp::decode_json(body).unwrap();
//! let events = otlp::to_ingestion_events(&request);
//! assert_eq!(events[0].kind, "trace-create");
//! assert_eq!(events[0].body["userId"], "u1");
//! assert_eq!(events[1].kind, "generation-create");
//! assert_eq!(events[1].body["model"], "gpt-4o");
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{SecondsFormat, TimeZone, Utc};
use prost::Message;
use serde_json::{json, Map, Value};

pub use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
pub use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
pub use opentelemetry_proto::tonic::resource::v1::Resource;
pub use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};

use crate::{to_hex, IngestionEvent, Io, JsonMap, JsonText};

mod view;
mod wire;

pub use view::{
    EventView, ExportView, KeyValueView, ResourceSpansView, ResourceView, ScopeSpansView,
    ScopeView, SpanView, StatusView, ValueView,
};

/// Why an OTLP export could not be read. The whole export is rejected (Langfuse does the same).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OtlpError {
    /// The protobuf bytes are not an `ExportTraceServiceRequest`.
    #[error("invalid OTLP protobuf: {0}")]
    Protobuf(String),
    /// The body is not JSON.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// The JSON is not an OTLP trace export (wrong shape, missing ids).
    #[error("Invalid OTLP trace export: {0}")]
    Shape(String),
}

/// Decodes an OTLP/HTTP protobuf body (already decompressed).
pub fn decode_protobuf(bytes: &[u8]) -> Result<ExportTraceServiceRequest, OtlpError> {
    match wire::decode(bytes) {
        Some(view) => {
            check_ids(&view)?;
            Ok(view.to_request())
        }
        None => {
            let request = prost_decode(bytes)?;
            check_ids(&ExportView::of(&request))?;
            Ok(request)
        }
    }
}

fn prost_decode(bytes: &[u8]) -> Result<ExportTraceServiceRequest, OtlpError> {
    ExportTraceServiceRequest::decode(bytes).map_err(|error| OtlpError::Protobuf(error.to_string()))
}

fn check_ids(view: &ExportView<'_>) -> Result<(), OtlpError> {
    if view
        .spans()
        .any(|span| span.trace_id.is_empty() || span.span_id.is_empty())
    {
        return Err(OtlpError::Shape(
            "every span needs traceId and spanId".into(),
        ));
    }
    Ok(())
}

/// Decodes an OTLP/HTTP protobuf body (already decompressed) into a view that borrows its
/// texts and ids from `bytes`. An export the direct reader leaves to prost (links, a field
/// sent twice, anything malformed) is decoded into `fallback`, and the view borrows from it.
///
/// ```
/// use axion_model::otlp::{self, ExportTraceServiceRequest, Span};
/// use prost::Message;
///
/// let mut request = ExportTraceServiceRequest::default();
/// request.resource_spans.push(Default::default());
/// request.resource_spans[0].scope_spans.push(Default::default());
/// request.resource_spans[0].scope_spans[0].spans.push(Span {
///     trace_id: vec![1; 16],
///     span_id: vec![2; 8],
///     name: "chat".into(),
///     ..Default::default()
/// });
/// let bytes = request.encode_to_vec();
/// let mut fallback = None;
/// let view = otlp::decode_protobuf_view(&bytes, &mut fallback).unwrap();
/// assert_eq!(view.spans().next().unwrap().name, "chat");
/// assert!(fallback.is_none(), "read without prost");
/// ```
pub fn decode_protobuf_view<'a>(
    bytes: &'a [u8],
    fallback: &'a mut Option<ExportTraceServiceRequest>,
) -> Result<ExportView<'a>, OtlpError> {
    let view = match wire::decode(bytes) {
        Some(view) => view,
        None => ExportView::of(fallback.insert(prost_decode(bytes)?)),
    };
    check_ids(&view)?;
    Ok(view)
}

/// Decodes an OTLP/JSON body, as leniently as Langfuse: ids are hex strings, int64 values and
/// timestamps may be strings, numbers or `{high, low}`, enums are integers.
pub fn decode_json(bytes: &[u8]) -> Result<ExportTraceServiceRequest, OtlpError> {
    let root: Value =
        serde_json::from_slice(bytes).map_err(|error| OtlpError::Json(error.to_string()))?;
    let root = root
        .as_object()
        .ok_or_else(|| OtlpError::Shape("the body must be a JSON object".into()))?;
    let mut request = ExportTraceServiceRequest::default();
    for resource_spans in optional_array(root, "resourceSpans")? {
        let resource_spans = object(resource_spans, "resourceSpans[]")?;
        let resource = match resource_spans.get("resource") {
            Some(Value::Object(resource)) => Some(Resource {
                attributes: json_attributes(resource)?,
                ..Default::default()
            }),
            _ => None,
        };
        let mut scope_spans_out = Vec::new();
        for scope_spans in optional_array(resource_spans, "scopeSpans")? {
            let scope_spans = object(scope_spans, "scopeSpans[]")?;
            let scope = match scope_spans.get("scope") {
                Some(Value::Object(scope)) => Some(InstrumentationScope {
                    name: string_field(scope, "name"),
                    version: string_field(scope, "version"),
                    attributes: json_attributes(scope)?,
                    ..Default::default()
                }),
                _ => None,
            };
            let mut spans = Vec::new();
            for span in optional_array(scope_spans, "spans")? {
                spans.push(json_span(object(span, "spans[]")?)?);
            }
            scope_spans_out.push(ScopeSpans {
                scope,
                spans,
                schema_url: string_field(scope_spans, "schemaUrl"),
            });
        }
        request.resource_spans.push(ResourceSpans {
            resource,
            scope_spans: scope_spans_out,
            schema_url: string_field(resource_spans, "schemaUrl"),
        });
    }
    Ok(request)
}

fn object<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, OtlpError> {
    value
        .as_object()
        .ok_or_else(|| OtlpError::Shape(format!("{what} must be an object")))
}

fn optional_array<'a>(map: &'a Map<String, Value>, key: &str) -> Result<&'a [Value], OtlpError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(OtlpError::Shape(format!("{key} must be an array"))),
    }
}

fn string_field(map: &Map<String, Value>, key: &str) -> String {
    map.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn json_id(map: &Map<String, Value>, key: &str, required: bool) -> Result<Vec<u8>, OtlpError> {
    match map.get(key).and_then(Value::as_str) {
        Some(hex) if !hex.is_empty() => crate::from_hex(hex)
            .ok_or_else(|| OtlpError::Shape(format!("{key} {hex:?} is not hex"))),
        _ if required => Err(OtlpError::Shape(format!("every span needs {key}"))),
        _ => Ok(Vec::new()),
    }
}

/// A uint64 as OTLP/JSON may carry it: decimal string, number, or `{high, low}`.
fn json_u64(value: Option<&Value>) -> u64 {
    match value {
        Some(Value::String(text)) => text.trim().parse().unwrap_or(0),
        Some(Value::Number(number)) => number
            .as_u64()
            .or_else(|| number.as_f64().map(|f| f.max(0.0) as u64))
            .unwrap_or(0),
        Some(Value::Object(parts)) => {
            let part = |key| parts.get(key).and_then(Value::as_u64).unwrap_or(0) & 0xffff_ffff;
            (part("high") << 32) | part("low")
        }
        _ => 0,
    }
}

fn json_attributes(map: &Map<String, Value>) -> Result<Vec<KeyValue>, OtlpError> {
    optional_array(map, "attributes")?
        .iter()
        .filter_map(|pair| {
            let pair = pair.as_object()?;
            let key = pair.get("key")?.as_str()?.to_owned();
            Some(Ok(KeyValue {
                key,
                value: pair.get("value").map(json_any_value),
            }))
        })
        .collect()
}

fn json_any_value(value: &Value) -> AnyValue {
    use any_value::Value as V;
    let Some(map) = value.as_object() else {
        return AnyValue { value: None };
    };
    let inner = if let Some(text) = map.get("stringValue") {
        V::StringValue(
            text.as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| text.to_string()),
        )
    } else if let Some(flag) = map.get("boolValue") {
        V::BoolValue(
            flag.as_bool()
                .unwrap_or_else(|| flag.as_str() == Some("true")),
        )
    } else if let Some(int) = map.get("intValue") {
        match int {
            Value::String(text) => V::IntValue(text.trim().parse().unwrap_or(0)),
            Value::Number(number) => V::IntValue(number.as_i64().unwrap_or(0)),
            _ => V::IntValue(json_u64(Some(int)) as i64),
        }
    } else if let Some(double) = map.get("doubleValue") {
        V::DoubleValue(match double {
            Value::Number(number) => number.as_f64().unwrap_or(0.0),
            Value::String(text) => text.parse().unwrap_or(f64::NAN),
            _ => f64::NAN,
        })
    } else if let Some(Value::Object(array)) = map.get("arrayValue") {
        let values = array.get("values").and_then(Value::as_array);
        V::ArrayValue(ArrayValue {
            values: values.into_iter().flatten().map(json_any_value).collect(),
        })
    } else if let Some(Value::Object(list)) = map.get("kvlistValue") {
        let values = list.get("values").and_then(Value::as_array);
        V::KvlistValue(KeyValueList {
            values: values
                .into_iter()
                .flatten()
                .filter_map(|pair| {
                    Some(KeyValue {
                        key: pair.get("key")?.as_str()?.to_owned(),
                        value: pair.get("value").map(json_any_value),
                    })
                })
                .collect(),
        })
    } else if let Some(bytes) = map.get("bytesValue") {
        V::StringValue(bytes.as_str().unwrap_or_default().to_owned())
    } else {
        return AnyValue { value: None };
    };
    AnyValue { value: Some(inner) }
}

fn json_span(map: &Map<String, Value>) -> Result<Span, OtlpError> {
    let mut events = Vec::new();
    for event in optional_array(map, "events")? {
        let event = object(event, "events[]")?;
        events.push(span::Event {
            time_unix_nano: json_u64(event.get("timeUnixNano")),
            name: string_field(event, "name"),
            attributes: json_attributes(event)?,
            dropped_attributes_count: 0,
        });
    }
    let status = map
        .get("status")
        .and_then(Value::as_object)
        .map(|status| Status {
            message: string_field(status, "message"),
            code: match status.get("code") {
                Some(Value::String(name)) if name.ends_with("ERROR") => 2,
                Some(Value::String(name)) if name.ends_with("OK") => 1,
                other => json_u64(other) as i32,
            },
        });
    Ok(Span {
        trace_id: json_id(map, "traceId", true)?,
        span_id: json_id(map, "spanId", true)?,
        parent_span_id: json_id(map, "parentSpanId", false)?,
        name: string_field(map, "name"),
        kind: json_u64(map.get("kind")) as i32,
        start_time_unix_nano: json_u64(map.get("startTimeUnixNano")),
        end_time_unix_nano: json_u64(map.get("endTimeUnixNano")),
        attributes: json_attributes(map)?,
        events,
        status,
        ..Default::default()
    })
}

/// An OTLP attribute value as JSON: arrays and key-value lists become arrays and objects,
/// non-finite doubles become their string names.
///
/// ```
/// use axion_model::otlp::{value_to_json, ValueView};
///
/// let value = ValueView::Array(vec![ValueView::Int(1), ValueView::String("a")]);
/// assert_eq!(value_to_json(&value), serde_json::json!([1, "a"]));
/// ```
pub fn value_to_json(value: &ValueView<'_>) -> Value {
    match value {
        ValueView::Empty => Value::Null,
        ValueView::String(text) => Value::String((*text).to_owned()),
        ValueView::Bool(flag) => Value::Bool(*flag),
        ValueView::Int(int) => Value::from(*int),
        ValueView::Double(double) => serde_json::Number::from_f64(*double)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(double.to_string())),
        ValueView::Array(values) => values.iter().map(value_to_json).collect(),
        ValueView::Kvlist(pairs) => Value::Object(
            pairs
                .iter()
                .map(|pair| (pair.key.to_owned(), value_to_json(pair.value())))
                .collect(),
        ),
        ValueView::Bytes(bytes) => Value::String(to_hex(bytes)),
    }
}

/// A JSON-encoded string attribute decoded; anything else (or unparsable text) as is.
fn decoded(value: &ValueView<'_>) -> Value {
    match value {
        ValueView::String(text) if looks_json(text) => {
            serde_json::from_str(text).unwrap_or_else(|_| Value::String((*text).to_owned()))
        }
        _ => value_to_json(value),
    }
}

/// [`decoded`] as text: a JSON-encoded string attribute kept as the JSON it holds, without
/// building it; anything else (or unparsable text) as its JSON.
fn decoded_text(value: &ValueView<'_>) -> JsonText {
    match value {
        ValueView::String(text) => looks_json(text)
            .then(|| JsonText::parse(text))
            .flatten()
            .unwrap_or_else(|| JsonText::string(text)),
        _ => JsonText::from_value(&value_to_json(value)),
    }
}

fn looks_json(text: &str) -> bool {
    let trimmed = text.trim_start();
    trimmed.starts_with(['{', '[', '"'])
        || matches!(trimmed, "true" | "false" | "null")
        || trimmed.parse::<f64>().is_ok()
}

fn iso_from_nanos(nanos: u64) -> String {
    let seconds = (nanos / 1_000_000_000) as i64;
    let sub = (nanos % 1_000_000_000) as u32;
    crate::canonical_time::format(
        Utc.timestamp_opt(seconds, sub)
            .single()
            .unwrap_or_else(Utc::now),
    )
}

/// A span's (or resource's) attributes, read where they lie: only the values a mapping asks
/// for become JSON (a span's input and output, often kilobytes, are parsed from the decoded
/// request's own text). A list, not a hash map: spans carry a dozen or so attributes, and a
/// scan of short keys beats hashing each one.
struct Attributes<'a> {
    values: Vec<(&'a str, &'a ValueView<'a>)>,
    /// Bit `n` is set when a key of `n` bytes is present (bit 63: 63 or more). A mapping asks
    /// for about eighty keys per span, most of them absent; nearly all of those are answered
    /// by this mask instead of a scan.
    lengths: u64,
}

/// [`Attributes::lengths`]' bit for a key.
fn length_bit(key: &str) -> u64 {
    1 << key.len().min(63)
}

impl<'a> Attributes<'a> {
    fn new(pairs: &'a [KeyValueView<'a>]) -> Self {
        let values: Vec<_> = pairs.iter().map(|pair| (pair.key, pair.value())).collect();
        let lengths = values
            .iter()
            .fold(0, |lengths, (key, _)| lengths | length_bit(key));
        Self { values, lengths }
    }

    /// The value of `key` (the last one when a key repeats), unless it is null.
    fn get(&self, key: &str) -> Option<&'a ValueView<'a>> {
        if self.lengths & length_bit(key) == 0 {
            return None;
        }
        self.values
            .iter()
            .rev()
            .find(|(name, _)| *name == key)
            .map(|(_, value)| *value)
            .filter(|value| value.is_set())
    }

    /// The value of `key` when it is a string.
    fn str(&self, key: &str) -> Option<&'a str> {
        match self.get(key)? {
            ValueView::String(text) => Some(text),
            _ => None,
        }
    }

    fn first(&self, keys: &[&str]) -> Option<&'a ValueView<'a>> {
        keys.iter().find_map(|key| self.get(key))
    }

    /// [`Self::first`] as JSON.
    fn first_json(&self, keys: &[&str]) -> Option<Value> {
        self.first(keys).map(value_to_json)
    }

    fn first_string(&self, keys: &[&str]) -> Option<String> {
        self.first(keys).and_then(|value| match value {
            ValueView::String(text) if !text.is_empty() => Some((*text).to_owned()),
            ValueView::String(_) => None,
            _ => Some(value_to_json(value).to_string()),
        })
    }

    fn truthy(&self, keys: &[&str]) -> Option<bool> {
        self.first(keys).map(|value| match value {
            ValueView::Bool(flag) => *flag,
            ValueView::String(text) => text.eq_ignore_ascii_case("true"),
            _ => false,
        })
    }

    /// `prefix.<key>` entries as a map `key → decoded value`.
    fn with_prefix(&self, prefix: &str, into: &mut JsonMap) {
        for (key, value) in &self.values {
            if let Some(rest) = key.strip_prefix(prefix) {
                if let Some(rest) = rest.strip_prefix('.') {
                    if !rest.is_empty() {
                        into.insert(rest.to_owned(), decoded(value));
                    }
                }
            }
        }
    }

    fn object(&self, key: &str) -> Option<JsonMap> {
        match self.get(key).map(decoded) {
            Some(Value::Object(map)) => Some(map),
            _ => None,
        }
    }
}

const TRACE_NAME: &[&str] = &["langfuse.trace.name"];
const USER_ID: &[&str] = &[
    "langfuse.user.id",
    "user.id",
    "langfuse.observation.metadata.langfuse_user_id",
    "langfuse.trace.metadata.langfuse_user_id",
    "ai.telemetry.metadata.userId",
];
const SESSION_ID: &[&str] = &[
    "langfuse.session.id",
    "session.id",
    "gen_ai.conversation.id",
    "langfuse.observation.metadata.langfuse_session_id",
    "langfuse.trace.metadata.langfuse_session_id",
    "ai.telemetry.metadata.sessionId",
];
const TAGS: &[&str] = &[
    "langfuse.trace.tags",
    "langfuse.tags",
    "langfuse.observation.metadata.langfuse_tags",
    "langfuse.trace.metadata.langfuse_tags",
    "ai.telemetry.metadata.tags",
    "tag.tags",
];
const PUBLIC: &[&str] = &["langfuse.trace.public", "langfuse.public"];
const ENVIRONMENT: &[&str] = &[
    "langfuse.environment",
    "deployment.environment.name",
    "deployment.environment",
];
const MODEL: &[&str] = &[
    "langfuse.observation.model.name",
    "gen_ai.response.model",
    "ai.model.id",
    "gen_ai.request.model",
    "llm.response.model",
    "llm.model_name",
    "model",
];
const OBSERVATION_NAME: &[&str] = &[
    "gen_ai.tool.name",
    "genkit:name",
    "logfire.msg",
    "ai.toolCall.name",
];

fn tags_from(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| item.to_string())
            })
            .collect(),
        Value::String(text) => {
            let trimmed = text.trim();
            if trimmed.starts_with('[') {
                if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(trimmed) {
                    return tags_from(&Value::Array(items));
                }
            }
            trimmed
                .split(',')
                .map(str::trim)
                .filter(|tag| !tag.is_empty())
                .map(str::to_owned)
                .collect()
        }
        other => vec![other.to_string()],
    }
}

fn has_trace_updates(attributes: &Attributes<'_>) -> bool {
    const KEYS: &[&str] = &[
        "langfuse.trace.name",
        "langfuse.trace.input",
        "langfuse.trace.output",
        "langfuse.trace.metadata",
        "langfuse.trace.public",
        "langfuse.trace.tags",
        "user.id",
        "session.id",
        "langfuse.user.id",
        "langfuse.session.id",
        "langfuse.observation.metadata.langfuse_user_id",
        "langfuse.observation.metadata.langfuse_session_id",
        "langfuse.observation.metadata.langfuse_tags",
        "ai.telemetry.metadata.userId",
        "ai.telemetry.metadata.sessionId",
        "ai.telemetry.metadata.tags",
        "tag.tags",
    ];
    KEYS.iter().any(|key| attributes.get(key).is_some())
        || attributes
            .values
            .iter()
            .any(|(key, _)| key.starts_with("langfuse.trace.metadata"))
}

fn observation_type(attributes: &Attributes<'_>) -> &'static str {
    if let Some(kind) = attributes.str("langfuse.observation.type") {
        if let Ok(kind) = kind.parse::<crate::ObservationType>() {
            return kind.as_str();
        }
    }
    if let Some(kind) = attributes.str("openinference.span.kind") {
        match kind.to_ascii_uppercase().as_str() {
            "LLM" => return "GENERATION",
            "CHAIN" => return "CHAIN",
            "RETRIEVER" => return "RETRIEVER",
            "EMBEDDING" => return "EMBEDDING",
            "AGENT" => return "AGENT",
            "TOOL" => return "TOOL",
            "GUARDRAIL" => return "GUARDRAIL",
            "EVALUATOR" => return "EVALUATOR",
            _ => {}
        }
    }
    if let Some(operation) = attributes.str("gen_ai.operation.name") {
        match operation {
            "chat" | "completion" | "text_completion" | "generate_content" | "generate" => {
                return "GENERATION"
            }
            "embeddings" => return "EMBEDDING",
            "invoke_agent" | "create_agent" => return "AGENT",
            "execute_tool" => return "TOOL",
            _ => {}
        }
    }
    if attributes
        .first(&["gen_ai.tool.name", "gen_ai.tool.call.id"])
        .is_some()
    {
        return "TOOL";
    }
    if attributes.first(MODEL).is_some() {
        return "GENERATION";
    }
    "SPAN"
}

fn level(attributes: &Attributes<'_>, span: &SpanView<'_>) -> &'static str {
    if let Some(level) = attributes.str("langfuse.observation.level") {
        match level.to_ascii_uppercase().as_str() {
            "DEBUG" | "TRACE" | "VERBOSE" => return "DEBUG",
            "DEFAULT" | "INFO" | "LOG" | "NOTICE" | "OK" | "SUCCESS" => return "DEFAULT",
            "WARNING" | "WARN" => return "WARNING",
            "ERROR" | "FATAL" | "CRITICAL" => return "ERROR",
            _ => {}
        }
    }
    match &span.status {
        Some(status) if status.code == status::StatusCode::Error as i32 => "ERROR",
        _ => "DEFAULT",
    }
}

/// Flattened `prefix.N.field` attributes as `[{field: value}, …]` ordered by N.
fn indexed_messages(attributes: &Attributes<'_>, prefix: &str) -> Option<Value> {
    let mut messages: BTreeMap<usize, JsonMap> = BTreeMap::new();
    for (key, value) in &attributes.values {
        let Some(rest) = key
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('.'))
        else {
            continue;
        };
        let Some((index, field)) = rest.split_once('.') else {
            continue;
        };
        let Ok(index) = index.parse::<usize>() else {
            continue;
        };
        let field = field.strip_prefix("message.").unwrap_or(field);
        messages
            .entry(index)
            .or_default()
            .insert(field.to_owned(), decoded(value));
    }
    (!messages.is_empty()).then(|| messages.into_values().map(Value::Object).collect())
}

fn event_messages(span: &SpanView<'_>, names: &[&str]) -> Option<Value> {
    let messages: Vec<Value> = span
        .events
        .iter()
        .filter(|event| names.contains(&event.name))
        .map(|event| {
            let mut message: JsonMap = event
                .attributes
                .iter()
                .map(|pair| (pair.key.to_owned(), decoded(pair.value())))
                .collect();
            if !message.contains_key("role") {
                if let Some(role) = event
                    .name
                    .strip_prefix("gen_ai.")
                    .and_then(|rest| rest.strip_suffix(".message"))
                {
                    message.insert("role".into(), Value::String(role.to_owned()));
                }
            }
            Value::Object(message)
        })
        .collect();
    (!messages.is_empty()).then_some(Value::Array(messages))
}

fn input_output(attributes: &Attributes<'_>, span: &SpanView<'_>) -> Io {
    const PAIRS: &[(&str, &str)] = &[
        ("langfuse.observation.input", "langfuse.observation.output"),
        ("gen_ai.input.messages", "gen_ai.output.messages"),
        ("gen_ai.tool.call.arguments", "gen_ai.tool.call.result"),
        ("input.value", "output.value"),
        ("traceloop.entity.input", "traceloop.entity.output"),
        ("mlflow.spanInputs", "mlflow.spanOutputs"),
        ("ai.prompt.messages", "ai.response.text"),
        ("ai.prompt", "ai.result.text"),
    ];
    for (input_key, output_key) in PAIRS {
        let input = attributes.get(input_key).map(decoded_text);
        let output = attributes.get(output_key).map(decoded_text);
        if input.is_some() || output.is_some() {
            return Io {
                input,
                output,
                from_observation: None,
            };
        }
    }
    let input = indexed_messages(attributes, "gen_ai.prompt")
        .or_else(|| indexed_messages(attributes, "llm.input_messages"))
        .or_else(|| {
            event_messages(
                span,
                &[
                    "gen_ai.system.message",
                    "gen_ai.user.message",
                    "gen_ai.assistant.message",
                    "gen_ai.tool.message",
                ],
            )
        });
    let output = indexed_messages(attributes, "gen_ai.completion")
        .or_else(|| indexed_messages(attributes, "llm.output_messages"))
        .or_else(|| event_messages(span, &["gen_ai.choice"]));
    Io {
        input: input.as_ref().map(JsonText::from_value),
        output: output.as_ref().map(JsonText::from_value),
        from_observation: None,
    }
}

fn usage_details(attributes: &Attributes<'_>) -> Option<JsonMap> {
    if let Some(usage) = attributes.object("langfuse.observation.usage_details") {
        return Some(usage);
    }
    // GenAI keys win; OpenInference's `llm.token_count.*` only count when there are none (an
    // exporter that writes both conventions must not be counted twice).
    for prefix in ["gen_ai.usage.", "llm.token_count."] {
        if let Some(usage) = usage_with_prefix(attributes, prefix) {
            return Some(usage);
        }
    }
    None
}

fn usage_with_prefix(attributes: &Attributes<'_>, prefix: &str) -> Option<JsonMap> {
    let mut usage: BTreeMap<String, u64> = BTreeMap::new();
    let (mut cached, mut cache_write, mut reasoning, mut audio) = (0u64, 0u64, 0u64, 0u64);
    for (key, value) in &attributes.values {
        let Some(rest) = key.strip_prefix(prefix) else {
            continue;
        };
        let Some(count) = crate::observation::count_from_json(&value_to_json(value)) else {
            continue;
        };
        let rest = rest.strip_prefix("details.").unwrap_or(rest);
        let target = match rest {
            "cost" => continue,
            "prompt_tokens" | "input_tokens" | "prompt" => "input",
            "completion_tokens" | "output_tokens" | "completion" => "output",
            "total_tokens" | "total" => "total",
            key if key.contains("cache_read") || key.ends_with("cached_tokens") => {
                cached += count;
                "input_cached_tokens"
            }
            key if key.contains("cache_creation") || key.contains("cache_write") => {
                cache_write += count;
                "input_cache_creation"
            }
            key if key.contains("reasoning") => {
                reasoning += count;
                "output_reasoning_tokens"
            }
            key if key.contains("audio") && !key.contains("input") && !key.contains("prompt") => {
                audio += count;
                "output_audio_tokens"
            }
            other => other,
        };
        *usage.entry(target.to_owned()).or_default() += count;
    }
    if usage.is_empty() {
        return None;
    }
    if let Some(input) = usage.get_mut("input") {
        *input = input.saturating_sub(cached + cache_write);
    }
    if let Some(output) = usage.get_mut("output") {
        *output = output.saturating_sub(reasoning + audio);
    }
    Some(
        usage
            .into_iter()
            .map(|(key, count)| (key, Value::from(count)))
            .collect(),
    )
}

fn cost_details(attributes: &Attributes<'_>) -> Option<JsonMap> {
    if let Some(cost) = attributes.object("langfuse.observation.cost_details") {
        return Some(cost);
    }
    let total = attributes.first_json(&["gen_ai.usage.cost", "llm.cost.total"])?;
    let total = match total {
        Value::Number(_) => total,
        Value::String(text) => Value::from(text.trim().parse::<f64>().ok()?),
        _ => return None,
    };
    Some(JsonMap::from_iter([("total".to_owned(), total)]))
}

fn model_parameters(attributes: &Attributes<'_>) -> Option<JsonMap> {
    for key in [
        "langfuse.observation.model.parameters",
        "llm.invocation_parameters",
        "model_config",
    ] {
        if let Some(parameters) = attributes.object(key) {
            return Some(parameters);
        }
    }
    let mut parameters = JsonMap::new();
    for (key, value) in &attributes.values {
        let Some(name) = key
            .strip_prefix("gen_ai.request.")
            .or_else(|| key.strip_prefix("llm.invocation_parameters."))
        else {
            continue;
        };
        if name == "model" {
            continue;
        }
        let value = match value_to_json(value) {
            value @ (Value::String(_) | Value::Number(_)) => value,
            other => Value::String(other.to_string()),
        };
        parameters.insert(name.to_owned(), value);
    }
    (!parameters.is_empty()).then_some(parameters)
}

fn environment(attributes: &Attributes<'_>, resource: &Attributes<'_>) -> String {
    attributes
        .first_string(ENVIRONMENT)
        .or_else(|| resource.first_string(ENVIRONMENT))
        .unwrap_or_else(|| "default".to_owned())
}

fn scope_json(scope: Option<&ScopeView<'_>>) -> Value {
    let Some(scope) = scope else {
        return json!({});
    };
    let attributes: JsonMap = scope
        .attributes
        .iter()
        .map(|pair| (pair.key.to_owned(), value_to_json(pair.value())))
        .collect();
    json!({"name": scope.name, "version": scope.version, "attributes": attributes})
}

fn insert_some(map: &mut JsonMap, key: &str, value: Option<impl Into<Value>>) {
    if let Some(value) = value {
        map.insert(key.to_owned(), value.into());
    }
}

/// Maps every span of an export to Langfuse ingestion events: per span one `<type>-create`
/// observation event, preceded by a `trace-create` when the span is a root, carries trace
/// attributes, or is the first span seen of its trace in this export.
pub fn to_ingestion_events(request: &ExportTraceServiceRequest) -> Vec<IngestionEvent> {
    let events = to_events(request);
    // Clones share the text.
    let observation_io: HashMap<String, Io> = events
        .iter()
        .filter(|(event, _)| event.kind != "trace-create")
        .filter_map(|(event, io)| Some((event.entity_id()?.to_owned(), io.clone())))
        .collect();
    events
        .into_iter()
        .map(|(mut event, io)| {
            for (key, text) in io.fields() {
                event.body.insert(key.into(), text.to_value());
            }
            // A trace that shows its root span's input and output gets a copy of them here.
            let root = io.from_observation.as_ref();
            if let Some(root_io) = root.and_then(|id| observation_io.get(id)) {
                for (key, text) in root_io.fields() {
                    event.body.entry(key).or_insert_with(|| text.to_value());
                }
            }
            event
        })
        .collect()
}

/// [`to_ingestion_events`] with each event's input and output beside its body, as the JSON
/// text the span carried (a server stores them without ever parsing them). A root span's
/// trace refers to the span for input and output it has none of ([`Io::from_observation`]).
pub fn to_events(request: &ExportTraceServiceRequest) -> Vec<(IngestionEvent, Io)> {
    let spans = map_spans(request);
    let mut events = Vec::with_capacity(spans.len() * 2);
    let mut shallow_done: HashSet<&str> = HashSet::new();
    let named: HashSet<&str> = spans
        .iter()
        .filter(|span| span.trace.role != TraceRole::Shallow)
        .map(|span| span.observation.trace_id.as_str())
        .collect();
    for span in &spans {
        let observation = &span.observation;
        let trace_id = observation.trace_id.as_str();
        // A shallow trace only matters when nothing else in this export names the trace.
        let keep_trace = span.trace.role != TraceRole::Shallow
            || (!named.contains(trace_id) && shallow_done.insert(trace_id));
        if keep_trace {
            // Event ids derived from the span id: unique within the export, and cheaper
            // than fresh random ids (the server only ever reports them in errors).
            events.push((
                event(
                    format!("{}-trace", observation.id),
                    "trace-create",
                    observation.start_time.clone(),
                    span.trace_body(),
                ),
                span.trace.io.clone(),
            ));
        }
        events.push((
            event(
                observation.id.clone(),
                &format!("{}-create", observation.kind.to_ascii_lowercase()),
                observation.start_time.clone(),
                observation.to_body(),
            ),
            observation.io.clone(),
        ));
    }
    events
}

fn event(id: String, kind: &str, timestamp: String, body: JsonMap) -> IngestionEvent {
    IngestionEvent {
        id,
        kind: kind.to_owned(),
        timestamp,
        body,
        metadata: None,
    }
}

/// A JSON object every span of one resource (or scope) carries in its metadata, with its text
/// made once: a server writes it into each observation's body without serialising it again.
#[derive(Debug, PartialEq)]
pub struct SharedObject {
    value: Value,
    text: String,
}

impl SharedObject {
    fn new(value: Value) -> Arc<Self> {
        let text = value.to_string();
        Arc::new(Self { value, text })
    }

    /// The object.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Its JSON text.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// An observation's metadata as Langfuse builds it from a span: the span's own metadata
/// entries, then `resourceAttributes`, `scope` and (for spans not from Langfuse's SDK) the raw
/// `attributes`, which win over entries of the same names.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanMetadata {
    /// From `langfuse.observation.metadata`, `langfuse.metadata.*`, `ai.telemetry.metadata.*`.
    pub entries: JsonMap,
    /// The resource's attributes.
    pub resource: Arc<SharedObject>,
    /// The instrumentation scope (`name`, `version`, `attributes`).
    pub scope: Arc<SharedObject>,
    /// Every non-`langfuse.*` attribute as text, for spans of other SDKs.
    pub attributes: Option<Value>,
}

impl SpanMetadata {
    /// The keys that come after the entries, and their values.
    pub fn fixed(&self) -> impl Iterator<Item = (&'static str, &Value)> {
        [
            ("resourceAttributes", Some(self.resource.value())),
            ("scope", Some(self.scope.value())),
            ("attributes", self.attributes.as_ref()),
        ]
        .into_iter()
        .filter_map(|(key, value)| Some((key, value?)))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fixed()
            .find(|(name, _)| *name == key)
            .map(|(_, value)| value)
            .or_else(|| self.entries.get(key))
    }

    /// Whether `key` is one of the keys that come after the entries.
    pub fn is_fixed(&self, key: &str) -> bool {
        self.fixed().any(|(name, _)| name == key)
    }

    /// Adds to `metadata` every key of this metadata it lacks (a root span's trace takes its
    /// observation's metadata beneath its own).
    pub fn fill_under(&self, metadata: &mut JsonMap) {
        for (key, value) in self.fixed() {
            metadata.entry(key).or_insert_with(|| value.clone());
        }
        for (key, value) in &self.entries {
            if !self.is_fixed(key) {
                metadata.entry(key).or_insert_with(|| value.clone());
            }
        }
    }

    /// The metadata as one object.
    pub fn to_map(&self) -> JsonMap {
        let mut map = self.entries.clone();
        for (key, value) in self.fixed() {
            map.insert(key.to_owned(), value.clone());
        }
        map
    }
}

/// A span as a Langfuse observation, its fields already in Langfuse's form.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanObservation {
    /// The span id, hex.
    pub id: String,
    /// The trace id, hex.
    pub trace_id: String,
    /// The parent span id, hex.
    pub parent_observation_id: Option<String>,
    /// Observation type (`SPAN`, `GENERATION`, …).
    pub kind: &'static str,
    /// Name.
    pub name: String,
    /// Start, canonical RFC 3339.
    pub start_time: String,
    /// End, canonical RFC 3339 and never before the start; `None` for events.
    pub end_time: Option<String>,
    /// Environment as the span names it (`default` when it does not).
    pub environment: String,
    /// Level from `langfuse.observation.level` or the span status.
    pub level: &'static str,
    /// Status message.
    pub status_message: Option<String>,
    /// Version (`langfuse.version`, else the resource's `service.version`).
    pub version: Option<String>,
    /// Model name.
    pub model: Option<String>,
    /// Model parameters.
    pub model_parameters: Option<JsonMap>,
    /// Usage by kind, as sent.
    pub usage_details: Option<JsonMap>,
    /// Cost by kind, as sent.
    pub cost_details: Option<JsonMap>,
    /// When the first token arrived, as sent.
    pub completion_start_time: Option<String>,
    /// Prompt name (generations).
    pub prompt_name: Option<String>,
    /// Prompt version (generations).
    pub prompt_version: Option<u64>,
    /// Metadata.
    pub metadata: SpanMetadata,
    /// Input and output, as the JSON text the span carried.
    pub io: Io,
}

impl SpanObservation {
    /// The ingestion event body (without input and output).
    pub fn to_body(&self) -> JsonMap {
        let mut body = JsonMap::new();
        body.insert("id".into(), Value::String(self.id.clone()));
        body.insert("traceId".into(), Value::String(self.trace_id.clone()));
        insert_some(
            &mut body,
            "parentObservationId",
            self.parent_observation_id.clone(),
        );
        body.insert("name".into(), Value::String(self.name.clone()));
        body.insert("startTime".into(), Value::String(self.start_time.clone()));
        insert_some(&mut body, "endTime", self.end_time.clone());
        body.insert(
            "environment".into(),
            Value::String(self.environment.clone()),
        );
        body.insert("level".into(), Value::String(self.level.into()));
        insert_some(&mut body, "statusMessage", self.status_message.clone());
        insert_some(&mut body, "version", self.version.clone());
        insert_some(&mut body, "model", self.model.clone());
        insert_some(&mut body, "modelParameters", self.model_parameters.clone());
        insert_some(&mut body, "usageDetails", self.usage_details.clone());
        insert_some(&mut body, "costDetails", self.cost_details.clone());
        insert_some(
            &mut body,
            "completionStartTime",
            self.completion_start_time.clone(),
        );
        insert_some(&mut body, "promptName", self.prompt_name.clone());
        insert_some(&mut body, "promptVersion", self.prompt_version);
        body.insert("metadata".into(), Value::Object(self.metadata.to_map()));
        body
    }
}

/// What a span says of its trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceRole {
    /// A root span: it names the trace and lends it its name, metadata, input and output.
    Root,
    /// A child span with trace attributes (`langfuse.trace.*`, `user.id`, …).
    Update,
    /// A child span without any: the trace only has to exist.
    Shallow,
}

/// The trace fields a span carries (id, timestamp and environment are its observation's).
#[derive(Debug, Clone, PartialEq)]
pub struct SpanTrace {
    /// Root, update or shallow.
    pub role: TraceRole,
    /// Trace name (a root's defaults to its span name).
    pub name: Option<String>,
    /// User id.
    pub user_id: Option<String>,
    /// Session id.
    pub session_id: Option<String>,
    /// Tags.
    pub tags: Option<Vec<String>>,
    /// Public flag.
    pub public: Option<bool>,
    /// Version.
    pub version: Option<String>,
    /// Release.
    pub release: Option<String>,
    /// Trace metadata entries; a root's also takes its observation's metadata under them.
    pub metadata: JsonMap,
    /// Trace input and output; a root's refers to its observation for what it lacks.
    pub io: Io,
}

/// One span mapped to Langfuse's model: its observation, and what it says of its trace.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedSpan {
    /// The observation.
    pub observation: SpanObservation,
    /// The trace.
    pub trace: SpanTrace,
}

impl MappedSpan {
    /// The trace's metadata: its own entries, and for a root its observation's beneath them.
    pub fn trace_metadata(&self) -> JsonMap {
        let mut metadata = self.trace.metadata.clone();
        if self.trace.role == TraceRole::Root {
            self.observation.metadata.fill_under(&mut metadata);
        }
        metadata
    }

    /// The `trace-create` event body (without input and output).
    pub fn trace_body(&self) -> JsonMap {
        let observation = &self.observation;
        let trace = &self.trace;
        let mut body = JsonMap::new();
        body.insert("id".into(), Value::String(observation.trace_id.clone()));
        body.insert(
            "timestamp".into(),
            Value::String(observation.start_time.clone()),
        );
        body.insert(
            "environment".into(),
            Value::String(observation.environment.clone()),
        );
        if trace.role == TraceRole::Shallow {
            return body;
        }
        insert_some(&mut body, "name", trace.name.clone());
        let metadata = self.trace_metadata();
        if !metadata.is_empty() {
            body.insert("metadata".into(), Value::Object(metadata));
        }
        insert_some(&mut body, "userId", trace.user_id.clone());
        insert_some(&mut body, "sessionId", trace.session_id.clone());
        insert_some(&mut body, "tags", trace.tags.clone());
        insert_some(&mut body, "public", trace.public);
        insert_some(&mut body, "version", trace.version.clone());
        insert_some(&mut body, "release", trace.release.clone());
        body
    }
}

/// Every span of an export in Langfuse's model, in the export's order.
pub fn map_spans(request: &ExportTraceServiceRequest) -> Vec<MappedSpan> {
    map_export(&ExportView::of(request))
}

/// [`map_spans`] of an export's view.
pub fn map_export(request: &ExportView<'_>) -> Vec<MappedSpan> {
    let mut spans = Vec::new();
    for resource_spans in &request.resource_spans {
        let resource_pairs = resource_spans
            .resource
            .as_ref()
            .map(|resource| resource.attributes.as_slice())
            .unwrap_or_default();
        let resource = Attributes::new(resource_pairs);
        let resource_json = SharedObject::new(Value::Object(
            resource
                .values
                .iter()
                .map(|(key, value)| ((*key).to_owned(), value_to_json(value)))
                .collect(),
        ));
        for scope_spans in &resource_spans.scope_spans {
            let scope = scope_spans.scope.as_ref();
            let scope_json = SharedObject::new(scope_json(scope));
            let is_langfuse_scope =
                scope.is_some_and(|scope| scope.name.starts_with("langfuse-sdk"));
            spans.extend(scope_spans.spans.iter().map(|span| {
                map_span(
                    span,
                    &resource,
                    &resource_json,
                    &scope_json,
                    is_langfuse_scope,
                )
            }));
        }
    }
    spans
}

fn map_span(
    span: &SpanView<'_>,
    resource: &Attributes<'_>,
    resource_json: &Arc<SharedObject>,
    scope_json: &Arc<SharedObject>,
    is_langfuse_scope: bool,
) -> MappedSpan {
    let attributes = Attributes::new(&span.attributes);
    let trace_id = to_hex(span.trace_id);
    let span_id = to_hex(span.span_id);
    let parent_id = (!span.parent_span_id.is_empty()).then(|| to_hex(span.parent_span_id));
    let (start, end) = match (span.start_time_unix_nano, span.end_time_unix_nano) {
        (0, 0) => {
            let now = Utc::now().timestamp_nanos_opt().unwrap_or(0).max(0) as u64;
            (now, now)
        }
        (0, end) => (end, end),
        (start, 0) => (start, start),
        both => both,
    };
    let start_time = iso_from_nanos(start);
    let environment = environment(&attributes, resource);
    let kind = observation_type(&attributes);

    let mut entries = attributes
        .object("langfuse.observation.metadata")
        .unwrap_or_default();
    attributes.with_prefix("langfuse.observation.metadata", &mut entries);
    attributes.with_prefix("langfuse.metadata", &mut entries);
    attributes.with_prefix("ai.telemetry.metadata", &mut entries);
    let others = (!is_langfuse_scope).then(|| {
        Value::Object(
            attributes
                .values
                .iter()
                .filter(|(key, _)| !key.starts_with("langfuse."))
                .map(|(key, value)| {
                    let value = match value_to_json(value) {
                        value @ Value::String(_) => value,
                        other => Value::String(other.to_string()),
                    };
                    ((*key).to_owned(), value)
                })
                .collect(),
        )
    });
    let metadata = SpanMetadata {
        entries,
        resource: Arc::clone(resource_json),
        scope: Arc::clone(scope_json),
        attributes: others,
    };

    let io = input_output(&attributes, span);
    let version = attributes
        .first_string(&["langfuse.version"])
        .or_else(|| resource.first_string(&["service.version"]));
    let name = attributes
        .first_string(OBSERVATION_NAME)
        .unwrap_or_else(|| span.name.to_owned());
    let completion_start_time = attributes
        .get("langfuse.observation.completion_start_time")
        .and_then(|value| match decoded(value) {
            Value::String(iso) => Some(iso),
            _ => None,
        });
    let (prompt_name, prompt_version) = if kind == "GENERATION" {
        (
            attributes.first_string(&["langfuse.observation.prompt.name", "langfuse.prompt.name"]),
            attributes
                .first_json(&[
                    "langfuse.observation.prompt.version",
                    "langfuse.prompt.version",
                ])
                .as_ref()
                .and_then(crate::observation::count_from_json),
        )
    } else {
        (None, None)
    };

    // The trace.
    let is_root =
        parent_id.is_none() || attributes.truthy(&["langfuse.internal.as_root"]) == Some(true);
    let role = if is_root {
        TraceRole::Root
    } else if has_trace_updates(&attributes) {
        TraceRole::Update
    } else {
        TraceRole::Shallow
    };
    let mut trace = SpanTrace {
        role,
        name: None,
        user_id: None,
        session_id: None,
        tags: None,
        public: None,
        version: None,
        release: None,
        metadata: JsonMap::new(),
        io: Io::default(),
    };
    if role != TraceRole::Shallow {
        let mut trace_metadata = attributes
            .object("langfuse.trace.metadata")
            .unwrap_or_default();
        if let Some(extra) = attributes.object("langfuse.metadata") {
            trace_metadata.extend(extra);
        }
        for prefix in [
            "langfuse.trace.metadata",
            "langfuse.metadata",
            "ai.telemetry.metadata",
        ] {
            resource.with_prefix(prefix, &mut trace_metadata);
            attributes.with_prefix(prefix, &mut trace_metadata);
        }
        let trace_name = attributes.first_string(TRACE_NAME);
        let trace_input = attributes.get("langfuse.trace.input").map(decoded_text);
        let trace_output = attributes.get("langfuse.trace.output").map(decoded_text);
        if is_root {
            trace.name = trace_name.or_else(|| Some(name.clone()));
            // Where the trace has no input or output of its own it shows the root span's.
            let borrows = (trace_input.is_none() && io.input.is_some())
                || (trace_output.is_none() && io.output.is_some());
            trace.io = Io {
                input: trace_input,
                output: trace_output,
                from_observation: borrows.then(|| span_id.clone()),
            };
        } else {
            trace.name = trace_name;
            trace.io = Io {
                input: trace_input,
                output: trace_output,
                from_observation: None,
            };
        }
        trace.metadata = trace_metadata;
        trace.user_id = attributes.first_string(USER_ID);
        trace.session_id = attributes.first_string(SESSION_ID);
        trace.tags = attributes.first_json(TAGS).as_ref().map(tags_from);
        trace.public = attributes.truthy(PUBLIC);
        trace.version = version.clone();
        trace.release = attributes
            .first_string(&["langfuse.release"])
            .or_else(|| resource.first_string(&["langfuse.release"]));
    }

    let observation = SpanObservation {
        id: span_id,
        trace_id,
        parent_observation_id: parent_id,
        kind,
        name,
        end_time: (kind != "EVENT").then(|| iso_from_nanos(end.max(start))),
        start_time,
        environment,
        level: level(&attributes, span),
        status_message: attributes
            .first_string(&["langfuse.observation.status_message"])
            .or_else(|| {
                span.status
                    .as_ref()
                    .map(|status| status.message.to_owned())
                    .filter(|message| !message.is_empty())
            }),
        version,
        model: attributes.first_string(MODEL),
        model_parameters: model_parameters(&attributes),
        usage_details: usage_details(&attributes),
        cost_details: cost_details(&attributes),
        completion_start_time,
        prompt_name,
        prompt_version,
        metadata,
        io,
    };
    MappedSpan { observation, trace }
}

// ---------------------------------------------------------------------------------------------
// Export direction: model → OTLP spans.
// ---------------------------------------------------------------------------------------------

/// Which attribute vocabulary exported spans carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Convention {
    /// Langfuse's own `langfuse.*` attributes (what the official Langfuse SDKs send).
    Langfuse,
    /// OpenTelemetry GenAI (`gen_ai.*`) plus OpenInference (`openinference.span.kind`,
    /// `input.value`, `llm.*`), which Langfuse, Phoenix, Opik and Logfire all read.
    GenAi,
    /// [`Convention::GenAi`] plus Logfire's display attributes (`logfire.msg`,
    /// `logfire.msg_template`, `logfire.span_type`, `logfire.level_num`, `logfire.tags`,
    /// `logfire.json_schema`), `gen_ai.input/output.messages` in the parts format and
    /// `operation.cost`.
    Logfire,
}

/// Resource and scope of an export.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportResource {
    /// `service.name`.
    pub service_name: String,
    /// Deployment environment (`langfuse.environment` / `deployment.environment.name`).
    pub environment: Option<String>,
    /// Release (`langfuse.release` / `service.version`).
    pub release: Option<String>,
    /// More resource attributes (`OTEL_RESOURCE_ATTRIBUTES`).
    pub attributes: Vec<(String, String)>,
    /// Instrumentation scope name and version.
    pub scope: (String, String),
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
    }
}

fn kv_string(key: &str, value: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

fn kv_int(key: &str, value: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(value))
}

/// A JSON value as the attribute text the Python SDKs send: strings raw only where noted.
fn json_text(value: &Value) -> String {
    value.to_string()
}

fn nanos(time: &crate::Timestamp) -> u64 {
    time.timestamp_nanos_opt().unwrap_or(0).max(0) as u64
}

fn id_bytes<const N: usize>(hex: &str) -> Vec<u8> {
    match crate::from_hex(hex) {
        Some(bytes) if bytes.len() == N && bytes.iter().any(|b| *b != 0) => bytes,
        _ => {
            // Not a W3C id (a user-chosen trace id): derive stable bytes from its text.
            let mut out = vec![0u8; N];
            let mut state: u64 = 0xcbf2_9ce4_8422_2325;
            for (i, byte) in hex.bytes().cycle().take(hex.len().max(1) * 4).enumerate() {
                state = (state ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
                out[i % N] ^= (state >> 24) as u8;
            }
            out
        }
    }
}

fn openinference_kind(kind: crate::ObservationType) -> &'static str {
    use crate::ObservationType as T;
    match kind {
        T::Generation => "LLM",
        T::Tool => "TOOL",
        T::Agent => "AGENT",
        T::Retriever => "RETRIEVER",
        T::Embedding => "EMBEDDING",
        T::Guardrail => "GUARDRAIL",
        T::Evaluator => "EVALUATOR",
        _ => "CHAIN",
    }
}

/// Attributes that make a span carry its trace's fields.
fn trace_attributes(trace: &crate::Trace, convention: Convention, out: &mut Vec<KeyValue>) {
    if let Some(name) = &trace.name {
        out.push(kv_string("langfuse.trace.name", name.clone()));
    }
    if let Some(user) = &trace.user_id {
        out.push(kv_string("user.id", user.clone()));
    }
    if let Some(session) = &trace.session_id {
        out.push(kv_string("session.id", session.clone()));
    }
    if !trace.tags.is_empty() {
        let values = trace
            .tags
            .iter()
            .map(|tag| AnyValue {
                value: Some(any_value::Value::StringValue(tag.clone())),
            })
            .collect();
        let key = match convention {
            Convention::Langfuse => "langfuse.trace.tags",
            Convention::GenAi => "tag.tags",
            Convention::Logfire => "logfire.tags",
        };
        out.push(kv(key, any_value::Value::ArrayValue(ArrayValue { values })));
    }
    if let Some(Value::Object(metadata)) = &trace.metadata {
        for (key, value) in metadata {
            out.push(kv_string(
                &format!("langfuse.trace.metadata.{key}"),
                json_text(value),
            ));
        }
    }
    if let Some(input) = &trace.input {
        out.push(kv_string("langfuse.trace.input", json_text(input)));
    }
    if let Some(output) = &trace.output {
        out.push(kv_string("langfuse.trace.output", json_text(output)));
    }
    if let Some(public) = trace.public {
        out.push(kv(
            "langfuse.trace.public",
            any_value::Value::BoolValue(public),
        ));
    }
    if let Some(release) = &trace.release {
        out.push(kv_string("langfuse.release", release.clone()));
    }
    if let Some(version) = &trace.version {
        out.push(kv_string("langfuse.version", version.clone()));
    }
}

/// One observation as an OTLP span; `trace` (when given) rides on it as trace attributes.
pub fn observation_to_span(
    observation: &crate::Observation,
    trace: Option<&crate::Trace>,
    convention: Convention,
) -> Span {
    use crate::{ObservationLevel, ObservationType};
    let mut attributes = Vec::with_capacity(16);
    let start = observation.start_time.as_ref().map(nanos).unwrap_or(0);
    let end = observation.end_time.as_ref().map(nanos).unwrap_or(start);
    let is_generation = observation.r#type == ObservationType::Generation;
    match convention {
        Convention::Langfuse => {
            attributes.push(kv_string(
                "langfuse.observation.type",
                observation.r#type.as_str().to_ascii_lowercase(),
            ));
            if let Some(input) = &observation.input {
                attributes.push(kv_string("langfuse.observation.input", json_text(input)));
            }
            if let Some(output) = &observation.output {
                attributes.push(kv_string("langfuse.observation.output", json_text(output)));
            }
            if let Some(Value::Object(metadata)) = &observation.metadata {
                for (key, value) in metadata {
                    attributes.push(kv_string(
                        &format!("langfuse.observation.metadata.{key}"),
                        json_text(value),
                    ));
                }
            }
            if observation.level != ObservationLevel::Default {
                attributes.push(kv_string(
                    "langfuse.observation.level",
                    observation.level.as_str(),
                ));
            }
            if let Some(message) = &observation.status_message {
                attributes.push(kv_string(
                    "langfuse.observation.status_message",
                    message.clone(),
                ));
            }
            if let Some(model) = &observation.model {
                attributes.push(kv_string("langfuse.observation.model.name", model.clone()));
            }
            if let Some(parameters) = &observation.model_parameters {
                attributes.push(kv_string(
                    "langfuse.observation.model.parameters",
                    Value::Object(parameters.clone()).to_string(),
                ));
            }
            if let Some(usage) = &observation.usage_details {
                attributes.push(kv_string(
                    "langfuse.observation.usage_details",
                    json!(usage).to_string(),
                ));
            }
            if let Some(cost) = &observation.cost_details {
                attributes.push(kv_string(
                    "langfuse.observation.cost_details",
                    json!(cost).to_string(),
                ));
            }
            if let Some(time) = &observation.completion_start_time {
                let iso = time.to_rfc3339_opts(SecondsFormat::Micros, true);
                attributes.push(kv_string(
                    "langfuse.observation.completion_start_time",
                    json!(iso).to_string(),
                ));
            }
            if let Some(version) = &observation.version {
                attributes.push(kv_string("langfuse.version", version.clone()));
            }
            if let Some(environment) = &observation.environment {
                attributes.push(kv_string("langfuse.environment", environment.clone()));
            }
        }
        Convention::GenAi | Convention::Logfire => {
            attributes.push(kv_string(
                "openinference.span.kind",
                openinference_kind(observation.r#type),
            ));
            if let Some(input) = &observation.input {
                attributes.push(kv_string("input.value", json_text(input)));
                attributes.push(kv_string("input.mime_type", "application/json"));
            }
            if let Some(output) = &observation.output {
                attributes.push(kv_string("output.value", json_text(output)));
                attributes.push(kv_string("output.mime_type", "application/json"));
            }
            if let Some(Value::Object(metadata)) = &observation.metadata {
                for (key, value) in metadata {
                    let text = match value {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    };
                    attributes.push(kv_string(key, text));
                }
            }
            if let Some(model) = &observation.model {
                attributes.push(kv_string("gen_ai.request.model", model.clone()));
                attributes.push(kv_string("gen_ai.response.model", model.clone()));
                attributes.push(kv_string("llm.model_name", model.clone()));
            }
            if is_generation {
                attributes.push(kv_string("gen_ai.operation.name", "chat"));
                let provider = observation
                    .metadata
                    .as_ref()
                    .and_then(|metadata| metadata.get("provider"))
                    .and_then(Value::as_str);
                if let Some(provider) = provider {
                    attributes.push(kv_string("gen_ai.provider.name", provider));
                    attributes.push(kv_string("gen_ai.system", provider));
                }
            }
            if observation.r#type == ObservationType::Tool {
                attributes.push(kv_string("gen_ai.operation.name", "execute_tool"));
                if let Some(name) = &observation.name {
                    attributes.push(kv_string("gen_ai.tool.name", name.clone()));
                }
            }
            if let Some(parameters) = &observation.model_parameters {
                for (key, value) in parameters {
                    let value = match value {
                        Value::Number(number) if number.is_i64() => {
                            any_value::Value::IntValue(number.as_i64().unwrap_or(0))
                        }
                        Value::Number(number) => {
                            any_value::Value::DoubleValue(number.as_f64().unwrap_or(0.0))
                        }
                        Value::Bool(flag) => any_value::Value::BoolValue(*flag),
                        Value::String(text) => any_value::Value::StringValue(text.clone()),
                        other => any_value::Value::StringValue(other.to_string()),
                    };
                    attributes.push(kv(&format!("gen_ai.request.{key}"), value));
                }
                attributes.push(kv_string(
                    "llm.invocation_parameters",
                    Value::Object(parameters.clone()).to_string(),
                ));
            }
            if let Some(usage) = &observation.usage_details {
                let get = |key: &str| usage.get(key).copied();
                if let Some(input) = get("input") {
                    attributes.push(kv_int("gen_ai.usage.input_tokens", input as i64));
                    attributes.push(kv_int("llm.token_count.prompt", input as i64));
                }
                if let Some(output) = get("output") {
                    attributes.push(kv_int("gen_ai.usage.output_tokens", output as i64));
                    attributes.push(kv_int("llm.token_count.completion", output as i64));
                }
                let total = get("total").or_else(|| Some(get("input")? + get("output")?));
                if let Some(total) = total {
                    attributes.push(kv_int("llm.token_count.total", total as i64));
                }
            }
            if let Some(total) = observation.cost_details.as_ref().and_then(|cost| {
                cost.get("total")
                    .copied()
                    .or_else(|| (!cost.is_empty()).then(|| cost.values().sum()))
            }) {
                attributes.push(kv(
                    "gen_ai.usage.cost",
                    any_value::Value::DoubleValue(total),
                ));
            }
            if let Some(version) = &observation.version {
                attributes.push(kv_string("langfuse.version", version.clone()));
            }
            if observation.level != ObservationLevel::Default {
                attributes.push(kv_string(
                    "langfuse.observation.level",
                    observation.level.as_str(),
                ));
            }
        }
    }
    if let Some(trace) = trace {
        trace_attributes(trace, convention, &mut attributes);
    }
    let mut events = Vec::new();
    if convention == Convention::Logfire {
        logfire_attributes(observation, &mut attributes);
        if observation.level == ObservationLevel::Error {
            let message = observation
                .status_message
                .clone()
                .unwrap_or_else(|| "error".into());
            events.push(span::Event {
                time_unix_nano: end.max(start),
                name: "exception".into(),
                attributes: vec![
                    kv_string("exception.type", "Error"),
                    kv_string("exception.message", message),
                ],
                dropped_attributes_count: 0,
            });
        }
    }
    let status = match (observation.level, &observation.status_message) {
        (ObservationLevel::Error, message) => Some(Status {
            code: status::StatusCode::Error as i32,
            message: message.clone().unwrap_or_default(),
        }),
        _ => None,
    };
    Span {
        trace_id: id_bytes::<16>(&observation.trace_id),
        span_id: id_bytes::<8>(&observation.id),
        parent_span_id: observation
            .parent_observation_id
            .as_deref()
            .map(id_bytes::<8>)
            .unwrap_or_default(),
        name: observation
            .name
            .clone()
            .unwrap_or_else(|| observation.r#type.as_str().to_ascii_lowercase()),
        kind: span::SpanKind::Internal as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end.max(start),
        attributes,
        events,
        status,
        flags: 0x100,
        ..Default::default()
    }
}

/// Chat messages (`[{role, content}]`, or one message, or plain text) in the GenAI parts format.
fn parts_messages(value: &Value, default_role: &str) -> Option<Value> {
    let message = |item: &Value| -> Option<Value> {
        match item {
            Value::Object(map) => {
                let role = map.get("role")?.as_str()?;
                let content = match map.get("content")? {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                Some(json!({"role": role, "parts": [{"type": "text", "content": content}]}))
            }
            Value::String(text) => {
                Some(json!({"role": default_role, "parts": [{"type": "text", "content": text}]}))
            }
            _ => None,
        }
    };
    match value {
        Value::Array(items) => items
            .iter()
            .map(message)
            .collect::<Option<Vec<_>>>()
            .map(Value::Array),
        other => message(other).map(|one| Value::Array(vec![one])),
    }
}

fn logfire_attributes(observation: &crate::Observation, attributes: &mut Vec<KeyValue>) {
    use crate::{ObservationLevel, ObservationType};
    let name = observation
        .name
        .clone()
        .unwrap_or_else(|| observation.r#type.as_str().to_ascii_lowercase());
    let message = match &observation.model {
        Some(model) if observation.r#type == ObservationType::Generation => {
            format!("{name} {model}")
        }
        _ => name.clone(),
    };
    if observation.r#type == ObservationType::Generation {
        if let Some(input) = observation
            .input
            .as_ref()
            .and_then(|input| parts_messages(input, "user"))
        {
            attributes.push(kv_string("gen_ai.input.messages", input.to_string()));
        }
        if let Some(output) = observation
            .output
            .as_ref()
            .and_then(|output| parts_messages(output, "assistant"))
        {
            attributes.push(kv_string("gen_ai.output.messages", output.to_string()));
        }
    }
    if let Some(total) = observation
        .cost_details
        .as_ref()
        .and_then(|cost| cost.get("total").copied())
    {
        attributes.push(kv("operation.cost", any_value::Value::DoubleValue(total)));
    }
    // JSON schema of every attribute so far: structured values are JSON strings to OTLP.
    let mut properties = JsonMap::new();
    for pair in attributes.iter() {
        let kind = match pair.value.as_ref().and_then(|value| value.value.as_ref()) {
            Some(any_value::Value::StringValue(text))
                if text.starts_with('{') || text.starts_with('[') =>
            {
                match serde_json::from_str::<Value>(text) {
                    Ok(Value::Object(_)) => json!({"type": "object"}),
                    Ok(Value::Array(_)) => json!({"type": "array"}),
                    _ => json!({}),
                }
            }
            Some(any_value::Value::ArrayValue(_)) => json!({"type": "array"}),
            _ => json!({}),
        };
        if !pair.key.starts_with("logfire.") {
            properties.insert(pair.key.clone(), kind);
        }
    }
    let level = match observation.level {
        ObservationLevel::Debug => 5,
        ObservationLevel::Warning => 13,
        ObservationLevel::Error => 17,
        _ => 9,
    };
    let span_type = if observation.r#type == ObservationType::Event {
        "log"
    } else {
        "span"
    };
    attributes.push(kv_string("logfire.msg_template", name));
    attributes.push(kv_string("logfire.msg", message));
    attributes.push(kv_string("logfire.span_type", span_type));
    attributes.push(kv_int("logfire.level_num", level));
    attributes.push(kv_string(
        "logfire.json_schema",
        json!({"type": "object", "properties": properties}).to_string(),
    ));
}

/// Input and output attributes from JSON text serialised elsewhere (for exporters that never
/// build a JSON tree): what [`observation_to_span`] adds for `input`/`output` values.
pub fn io_attributes(
    convention: Convention,
    input: Option<String>,
    output: Option<String>,
) -> Vec<KeyValue> {
    let mut attributes = Vec::with_capacity(4);
    let (input_key, output_key, json_mime) = io_keys(convention);
    if let Some(input) = input {
        attributes.push(kv_string(input_key, input));
        if json_mime {
            attributes.push(kv_string("input.mime_type", "application/json"));
        }
    }
    if let Some(output) = output {
        attributes.push(kv_string(output_key, output));
        if json_mime {
            attributes.push(kv_string("output.mime_type", "application/json"));
        }
    }
    attributes
}

/// The attribute keys of a span's input and output JSON in `convention`, and whether each is
/// followed by an `input.mime_type` / `output.mime_type` of `application/json` (what
/// [`io_attributes`] writes, for encoders that write the attributes themselves).
pub fn io_keys(convention: Convention) -> (&'static str, &'static str, bool) {
    match convention {
        Convention::Langfuse => (
            "langfuse.observation.input",
            "langfuse.observation.output",
            false,
        ),
        Convention::GenAi | Convention::Logfire => ("input.value", "output.value", true),
    }
}

/// A span that only carries a trace's fields (for trace updates whose spans were already sent):
/// zero duration, named after the trace, marked so Langfuse treats it as the trace's root.
pub fn trace_update_span(trace: &crate::Trace, convention: Convention) -> Span {
    let now = chrono::Utc::now();
    let start = trace
        .timestamp
        .as_ref()
        .map(nanos)
        .unwrap_or_else(|| nanos(&now));
    let mut attributes = Vec::new();
    attributes.push(kv(
        "langfuse.internal.as_root",
        any_value::Value::BoolValue(false),
    ));
    trace_attributes(trace, convention, &mut attributes);
    let trace_bytes = id_bytes::<16>(&trace.id);
    let mut span_id = trace_bytes[8..].to_vec();
    span_id[0] ^= 0x5a;
    Span {
        trace_id: trace_bytes,
        span_id,
        parent_span_id: vec![0xff; 8],
        name: "trace-update".into(),
        kind: span::SpanKind::Internal as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start,
        attributes,
        ..Default::default()
    }
}

/// Wraps spans in an export request with the resource and scope.
pub fn export_request(
    spans: Vec<Span>,
    resource: &ExportResource,
    convention: Convention,
) -> ExportTraceServiceRequest {
    let mut attributes = vec![
        kv_string("service.name", resource.service_name.clone()),
        kv_string("telemetry.sdk.name", "axion"),
        kv_string("telemetry.sdk.language", "rust"),
        kv_string("telemetry.sdk.version", resource.scope.1.clone()),
    ];
    if let Some(environment) = &resource.environment {
        let key = if convention == Convention::Langfuse {
            "langfuse.environment"
        } else {
            "deployment.environment.name"
        };
        attributes.push(kv_string(key, environment.clone()));
    }
    if let Some(release) = &resource.release {
        let key = if convention == Convention::Langfuse {
            "langfuse.release"
        } else {
            "service.version"
        };
        attributes.push(kv_string(key, release.clone()));
    }
    for (key, value) in &resource.attributes {
        attributes.push(kv_string(key, value.clone()));
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: resource.scope.0.clone(),
                    version: resource.scope.1.clone(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_lookups_find_keys_of_every_length() {
        let long = "k".repeat(70);
        let pairs: Vec<KeyValueView<'_>> = ["abcde", long.as_str(), "abcde"]
            .iter()
            .enumerate()
            .map(|(index, key)| KeyValueView {
                key,
                value: Some(ValueView::Int(index as i64)),
            })
            .collect();
        let attributes = Attributes::new(&pairs);
        let int = |key: &str| match attributes.get(key) {
            Some(ValueView::Int(int)) => Some(*int),
            _ => None,
        };
        assert_eq!(int("abcde"), Some(2), "the last of a repeated key");
        assert_eq!(int(&long), Some(1));
        assert_eq!(int(&"k".repeat(80)), None, "long, absent");
        assert_eq!(int("abcdf"), None, "same length, absent");
        assert_eq!(int("abc"), None);
        assert_eq!(int(""), None);
    }

    fn span_json(attributes: Value, parent: Option<&str>) -> Vec<u8> {
        let mut span = json!({
            "traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
            "name": "op", "kind": 1, "startTimeUnixNano": "1700000000000000000",
            "endTimeUnixNano": {"high": 395812250, "low": 1342177280u64},
            "attributes": attributes, "status": {"code": 2, "message": "boom"}
        });
        if let Some(parent) = parent {
            span["parentSpanId"] = json!(parent);
        }
        serde_json::to_vec(&json!({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.version", "value": {"stringValue": "9"}}]},
            "scopeSpans": [{"scope": {"name": "my-lib"}, "spans": [span]}]}]}))
        .unwrap()
    }

    #[test]
    fn usage_is_normalised_and_status_sets_level() {
        let body = span_json(
            json!([
                {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "100"}},
                {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 40}},
                {"key": "gen_ai.usage.cache_read_input_tokens", "value": {"intValue": "30"}},
                {"key": "gen_ai.request.temperature", "value": {"doubleValue": 0.5}},
                {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                {"key": "input.value", "value": {"stringValue": "{\"q\": 1}"}}
            ]),
            Some("00f067aa0ba902b7"),
        );
        let events = to_ingestion_events(&decode_json(&body).unwrap());
        assert_eq!(events.len(), 2, "a shallow trace plus the generation");
        let generation = &events[1];
        assert_eq!(generation.kind, "generation-create");
        assert_eq!(
            generation.body["usageDetails"],
            json!({"input": 70, "output": 40, "input_cached_tokens": 30})
        );
        assert_eq!(
            generation.body["modelParameters"],
            json!({"temperature": 0.5})
        );
        assert_eq!(generation.body["level"], "ERROR");
        assert_eq!(generation.body["statusMessage"], "boom");
        assert_eq!(generation.body["input"], json!({"q": 1}));
        assert_eq!(generation.body["version"], "9");
        assert_eq!(generation.body["parentObservationId"], "00f067aa0ba902b7");
        assert_eq!(generation.body["metadata"]["scope"]["name"], "my-lib");
        assert_eq!(
            generation.body["metadata"]["attributes"]["gen_ai.operation.name"],
            "chat"
        );
        assert_eq!(
            events[0].body.len(),
            3,
            "shallow trace: id, timestamp, environment"
        );
    }

    #[test]
    fn input_and_output_keep_their_text_and_a_root_trace_shares_it() {
        let body = span_json(
            json!([
                {"key": "langfuse.observation.input", "value": {"stringValue": " {\"b\": 1, \"a\": [2]}"}},
                {"key": "langfuse.observation.output", "value": {"stringValue": "not json {"}}
            ]),
            None,
        );
        let events = to_events(&decode_json(&body).unwrap());
        let (trace, trace_io) = &events[0];
        let (observation, io) = &events[1];
        assert_eq!(trace.kind, "trace-create");
        assert!(
            !observation.body.contains_key("input"),
            "kept out of the body"
        );
        let input = io.input.as_ref().unwrap();
        assert_eq!(
            input.as_str(),
            r#"{"b": 1, "a": [2]}"#,
            "as sent, key order too"
        );
        assert_eq!(io.output.as_ref().unwrap().as_str(), r#""not json {""#);
        assert!(trace_io.is_empty(), "no copy for the trace: {trace_io:?}");
        assert_eq!(
            trace_io.from_observation.as_deref(),
            observation.entity_id(),
            "a root span's trace shows its input and output"
        );
        // The tree form puts them back into the bodies.
        let events = to_ingestion_events(&decode_json(&body).unwrap());
        assert_eq!(events[1].body["input"], json!({"a": [2], "b": 1}));
        assert_eq!(events[0].body["output"], "not json {");
    }

    #[test]
    fn root_span_makes_a_full_trace_and_tags_parse_from_strings() {
        let body = span_json(
            json!([
                {"key": "langfuse.trace.tags", "value": {"stringValue": "a, b"}},
                {"key": "langfuse.trace.metadata.team", "value": {"stringValue": "\"rust\""}},
                {"key": "langfuse.observation.level", "value": {"stringValue": "warn"}},
                {"key": "session.id", "value": {"stringValue": "s1"}}
            ]),
            None,
        );
        let events = to_ingestion_events(&decode_json(&body).unwrap());
        let trace = &events[0].body;
        assert_eq!(trace["name"], "op");
        assert_eq!(trace["tags"], json!(["a", "b"]));
        assert_eq!(trace["sessionId"], "s1");
        assert_eq!(trace["metadata"]["team"], "rust");
        assert_eq!(events[1].body["level"], "WARNING");
        assert!(
            events[1].body["endTime"].as_str().unwrap()
                > events[1].body["startTime"].as_str().unwrap()
        );
    }

    #[test]
    fn protobuf_and_json_decode_to_the_same_request() {
        let body = span_json(json!([{"key": "k", "value": {"boolValue": true}}]), None);
        let request = decode_json(&body).unwrap();
        let bytes = request.encode_to_vec();
        assert_eq!(decode_protobuf(&bytes).unwrap(), request);
        assert!(matches!(
            decode_protobuf(b"\xff\xff"),
            Err(OtlpError::Protobuf(_))
        ));
    }

    #[test]
    fn bad_shapes_are_rejected_as_a_whole() {
        let error = decode_json(br#"{"resourceSpans": {}}"#).unwrap_err();
        assert!(
            error.to_string().contains("resourceSpans must be an array"),
            "{error}"
        );
        let error =
            decode_json(br#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": "01"}]}]}]}"#)
                .unwrap_err();
        assert!(error.to_string().contains("traceId"), "{error}");
        assert!(decode_json(br#"{}"#).unwrap().resource_spans.is_empty());
    }

    fn sample() -> (crate::Observation, crate::Trace) {
        let mut observation =
            crate::Observation::new("b7ad6b7169203331", "0af7651916cd43dd8448eb211c80319c");
        observation.r#type = crate::ObservationType::Generation;
        observation.name = Some("generate".into());
        observation.parent_observation_id = Some("00f067aa0ba902b7".into());
        observation.start_time = Some("2024-05-01T10:00:00.000001Z".parse().unwrap());
        observation.end_time = Some("2024-05-01T10:00:01.5Z".parse().unwrap());
        observation.completion_start_time = Some("2024-05-01T10:00:00.5Z".parse().unwrap());
        observation.input = Some(json!([{"role": "user", "content": "hi"}]));
        observation.output = Some(json!("hello"));
        observation.metadata = Some(json!({"provider": "openai", "n": 2}));
        observation.level = crate::ObservationLevel::Error;
        observation.status_message = Some("boom".into());
        observation.version = Some("v3".into());
        observation.environment = Some("prod".into());
        observation.model = Some("gpt-4o".into());
        observation.model_parameters = json!({"temperature": 0.2}).as_object().cloned();
        observation.usage_details =
            Some([("input".to_owned(), 10), ("output".to_owned(), 5)].into());
        observation.cost_details = Some([("total".to_owned(), 0.5)].into());
        let mut trace = crate::Trace::new("0af7651916cd43dd8448eb211c80319c");
        trace.name = Some("chat".into());
        trace.user_id = Some("u1".into());
        trace.session_id = Some("s1".into());
        trace.tags = vec!["a".into(), "b".into()];
        trace.metadata = Some(json!({"team": "rust"}));
        trace.input = Some(json!({"q": 1}));
        trace.release = Some("r1".into());
        (observation, trace)
    }

    fn round_trip(convention: Convention) -> (JsonMap, JsonMap) {
        let (observation, trace) = sample();
        let span = observation_to_span(&observation, Some(&trace), convention);
        let resource = ExportResource {
            service_name: "svc".into(),
            environment: None,
            release: None,
            attributes: vec![],
            scope: ("langfuse-sdk-compatible".into(), "1".into()),
        };
        let request = export_request(vec![span], &resource, convention);
        let bytes = request.encode_to_vec();
        let events = to_ingestion_events(&decode_protobuf(&bytes).unwrap());
        assert_eq!(events.len(), 2);
        (events[0].body.clone(), events[1].body.clone())
    }

    #[test]
    fn langfuse_convention_round_trips_every_field() {
        let (trace, observation) = round_trip(Convention::Langfuse);
        let (original, original_trace) = sample();
        let expected = serde_json::to_value(&original).unwrap();
        for key in [
            "id",
            "traceId",
            "parentObservationId",
            "name",
            "input",
            "output",
            "level",
            "statusMessage",
            "version",
            "environment",
            "model",
            "modelParameters",
            "usageDetails",
            "costDetails",
        ] {
            assert_eq!(observation[key], expected[key], "{key}");
        }
        assert_eq!(observation["startTime"], "2024-05-01T10:00:00.000001Z");
        assert_eq!(observation["endTime"], "2024-05-01T10:00:01.500000Z");
        assert_eq!(
            observation["completionStartTime"],
            "2024-05-01T10:00:00.500000Z"
        );
        assert_eq!(observation["metadata"]["provider"], "openai");
        assert_eq!(observation["metadata"]["n"], 2);
        assert_eq!(trace["name"], "chat");
        assert_eq!(trace["userId"], "u1");
        assert_eq!(trace["sessionId"], "s1");
        assert_eq!(trace["tags"], json!(original_trace.tags));
        assert_eq!(trace["metadata"]["team"], "rust");
        assert_eq!(trace["input"], json!({"q": 1}));
        assert_eq!(trace["release"], "r1");
    }

    #[test]
    fn genai_convention_round_trips_what_backends_read() {
        let (trace, observation) = round_trip(Convention::GenAi);
        assert_eq!(observation["model"], "gpt-4o");
        assert_eq!(
            observation["usageDetails"],
            json!({"input": 10, "output": 5}),
            "the server adds the total"
        );
        assert_eq!(observation["costDetails"], json!({"total": 0.5}));
        assert_eq!(
            observation["input"],
            json!([{"role": "user", "content": "hi"}])
        );
        assert_eq!(observation["output"], "hello");
        assert_eq!(observation["level"], "ERROR");
        assert_eq!(observation["modelParameters"]["temperature"], 0.2);
        assert_eq!(trace["userId"], "u1");
        assert_eq!(trace["tags"], json!(["a", "b"]));
    }
}
