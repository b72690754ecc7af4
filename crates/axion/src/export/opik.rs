//! The `opik` provider: Opik's REST API as its Python SDK uses it — batch creates of traces and
//! spans, `PATCH` for trace updates whose trace was already created, feedback scores, gzip for
//! bodies of 256 bytes or more, UUIDv7 ids derived from the W3C ids (so a child names its parent
//! without waiting for it), `Authorization` (raw key) and `Comet-Workspace` headers.

use std::collections::HashMap;
use std::sync::Arc;

use axion_model::{
    Observation, ObservationLevel, ObservationType, Score, ScoreDataType, SpanId, Trace, TraceId,
};
use base64::Engine;
use serde_json::{json, Map, Value};

use super::http::{gzip, HttpSender, Outgoing, RetryPolicy};
use super::otlp::{invalid, split};
use super::pipeline::{Exporter, PipelineTracer};
use crate::config::Settings;
use crate::error::Result;
use crate::provider::{BaseTracer, RawRecord};

/// Comet's hosted Opik.
pub const CLOUD_URL: &str = "https://www.comet.com/opik/api/";
const GZIP_FROM_BYTES: usize = 256;

/// Where and as whom to send.
#[derive(Debug, Clone)]
pub struct OpikConfig {
    /// API base ending in `/` (`…/api/`).
    pub base: String,
    /// Raw API key (absent for an unauthenticated self-hosted server).
    pub api_key: Option<String>,
    /// `Comet-Workspace`.
    pub workspace: String,
    /// `project_name` on every write.
    pub project: String,
}

impl OpikConfig {
    /// Reads `OPIK_URL_OVERRIDE`, `OPIK_API_KEY`, `OPIK_WORKSPACE`, `OPIK_PROJECT_NAME`.
    pub fn from_settings(settings: &Settings) -> Result<Self> {
        let api_key = settings.get("OPIK_API_KEY").map(str::to_owned);
        let base = match settings.get("OPIK_URL_OVERRIDE") {
            Some(url) => url.to_owned(),
            None => {
                let key = settings.require("opik", "OPIK_API_KEY")?;
                smart_key_base(key).unwrap_or_else(|| CLOUD_URL.to_owned())
            }
        };
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(invalid(
                "OPIK_URL_OVERRIDE",
                &base,
                "expected an http:// or https:// URL",
            ));
        }
        let base = if base.ends_with('/') {
            base
        } else {
            format!("{base}/")
        };
        Ok(Self {
            base,
            api_key,
            workspace: settings
                .get("OPIK_WORKSPACE")
                .unwrap_or("default")
                .to_owned(),
            project: settings
                .get("OPIK_PROJECT_NAME")
                .unwrap_or("axion")
                .to_owned(),
        })
    }
}

/// "Smart" keys carry `*<base64 JSON>` with a `baseUrl`: the API base is `<baseUrl>/opik/api/`.
fn smart_key_base(key: &str) -> Option<String> {
    let (_, encoded) = key.split_once('*')?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded.trim()))
        .ok()?;
    let attributes: Value = serde_json::from_slice(&decoded).ok()?;
    let base = attributes.get("baseUrl")?.as_str()?.trim_end_matches('/');
    Some(format!("{base}/opik/api/"))
}

pub(crate) fn opik_provider(settings: &Settings) -> Result<Arc<dyn BaseTracer>> {
    let config = OpikConfig::from_settings(settings)?;
    let exporter = OpikExporter::new(config, HttpSender::new("opik", RetryPolicy::default()));
    PipelineTracer::provider("opik", exporter, settings)
}

/// Ships batches to Opik's REST API.
#[derive(Debug)]
pub struct OpikExporter {
    config: OpikConfig,
    sender: HttpSender,
}

fn time(value: &Option<axion_model::Timestamp>) -> Value {
    value
        .as_ref()
        .map(|time| Value::String(time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)))
        .unwrap_or(Value::Null)
}

fn now() -> Value {
    Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

/// Opik takes objects (or strings); anything else is wrapped as `{"<field>": value}`.
fn wrap(value: &Option<Value>, field: &str) -> Value {
    match value {
        None => Value::Null,
        Some(Value::Object(map)) => Value::Object(map.clone()),
        Some(other) => json!({ field: other }),
    }
}

/// A W3C trace id's Opik UUID; other ids (user-chosen) get a stable UUID from their text.
pub fn trace_uuid(trace_id: &str) -> String {
    match TraceId::from_hex(trace_id) {
        Ok(id) => id.opik_uuid(),
        Err(_) => text_uuid(trace_id),
    }
}

/// A span's Opik UUID within its trace.
pub fn span_uuid(span_id: &str, trace_id: &str) -> String {
    match (SpanId::from_hex(span_id), TraceId::from_hex(trace_id)) {
        (Ok(span), Ok(trace)) => span.opik_uuid(trace),
        _ => text_uuid(&format!("{trace_id}/{span_id}")),
    }
}

fn text_uuid(text: &str) -> String {
    let mut entropy = [0u8; 10];
    let mut state: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, byte) in text.bytes().enumerate() {
        state = (state ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        entropy[i % 10] ^= (state >> 32) as u8;
    }
    axion_model::uuid7_from_parts(0, &entropy)
}

fn span_type(kind: ObservationType) -> &'static str {
    match kind {
        ObservationType::Generation => "llm",
        ObservationType::Tool => "tool",
        ObservationType::Guardrail => "guardrail",
        _ => "general",
    }
}

fn insert(map: &mut Map<String, Value>, key: &str, value: Value) {
    if !value.is_null() {
        map.insert(key.to_owned(), value);
    }
}

impl OpikExporter {
    /// An exporter for `config`.
    pub fn new(config: OpikConfig, sender: HttpSender) -> Self {
        Self { config, sender }
    }

    fn send(&mut self, method: &'static str, path: &str, body: Value) -> Result<()> {
        let bytes = body.to_string().into_bytes();
        let compress = bytes.len() >= GZIP_FROM_BYTES;
        let mut headers = vec![("comet-workspace".to_owned(), self.config.workspace.clone())];
        if let Some(key) = &self.config.api_key {
            headers.push(("authorization".to_owned(), key.clone()));
        }
        let outgoing = Outgoing {
            method,
            url: format!("{}{path}", self.config.base),
            content_type: "application/json",
            gzip: compress,
            headers,
            body: if compress { gzip(&bytes) } else { bytes },
        };
        self.sender.send(&outgoing).map(|_| ())
    }

    /// SpanWrite for an observation.
    pub fn span_write(&self, observation: &Observation) -> Value {
        let mut span = Map::new();
        span.insert(
            "id".into(),
            json!(span_uuid(&observation.id, &observation.trace_id)),
        );
        span.insert("project_name".into(), json!(self.config.project));
        span.insert("trace_id".into(), json!(trace_uuid(&observation.trace_id)));
        if let Some(parent) = &observation.parent_observation_id {
            span.insert(
                "parent_span_id".into(),
                json!(span_uuid(parent, &observation.trace_id)),
            );
        }
        span.insert(
            "name".into(),
            json!(observation
                .name
                .clone()
                .unwrap_or_else(|| observation.r#type.as_str().to_ascii_lowercase())),
        );
        span.insert("type".into(), json!(span_type(observation.r#type)));
        insert(&mut span, "start_time", time(&observation.start_time));
        let end = if observation.end_time.is_some() {
            &observation.end_time
        } else {
            &observation.start_time
        };
        insert(&mut span, "end_time", time(end));
        insert(&mut span, "input", wrap(&observation.input, "input"));
        insert(&mut span, "output", wrap(&observation.output, "output"));
        let mut metadata = match &observation.metadata {
            Some(Value::Object(map)) => map.clone(),
            Some(other) => Map::from_iter([("metadata".to_owned(), other.clone())]),
            None => Map::new(),
        };
        if let Some(parameters) = &observation.model_parameters {
            metadata.extend(parameters.clone());
        }
        if let Some(version) = &observation.version {
            metadata.insert("version".into(), json!(version));
        }
        if let Some(provider) = metadata.get("provider").and_then(Value::as_str) {
            span.insert("provider".into(), json!(provider));
        }
        if !metadata.is_empty() {
            span.insert("metadata".into(), Value::Object(metadata));
        }
        if let Some(model) = &observation.model {
            span.insert("model".into(), json!(model));
        }
        if let Some(usage) = &observation.usage_details {
            let mut map = Map::new();
            let input = usage.get("input").copied();
            let output = usage.get("output").copied();
            if let Some(input) = input {
                map.insert("prompt_tokens".into(), json!(input));
            }
            if let Some(output) = output {
                map.insert("completion_tokens".into(), json!(output));
            }
            let total = usage
                .get("total")
                .copied()
                .or_else(|| Some(input? + output?));
            if let Some(total) = total {
                map.insert("total_tokens".into(), json!(total));
            }
            for (key, value) in usage {
                map.insert(format!("original_usage.{key}"), json!(value));
            }
            span.insert("usage".into(), Value::Object(map));
        }
        if let Some(cost) = &observation.cost_details {
            let total = cost
                .get("total")
                .copied()
                .unwrap_or_else(|| cost.values().sum());
            span.insert("total_estimated_cost".into(), json!(total));
        }
        if observation.level == ObservationLevel::Error {
            span.insert(
                "error_info".into(),
                json!({
                    "exception_type": "Error",
                    "message": observation.status_message.clone().unwrap_or_default(),
                    "traceback": "",
                }),
            );
        }
        if let Some(environment) = &observation.environment {
            span.insert("environment".into(), json!(environment));
        }
        span.insert("last_updated_at".into(), now());
        span.insert("source".into(), json!("sdk"));
        Value::Object(span)
    }

    /// TraceWrite (or the body of a TraceUpdate) for a trace record.
    pub fn trace_write(&self, trace: &Trace, root: Option<&Observation>) -> Value {
        let mut write = Map::new();
        write.insert("id".into(), json!(trace_uuid(&trace.id)));
        write.insert("project_name".into(), json!(self.config.project));
        let name = trace
            .name
            .clone()
            .or_else(|| root.and_then(|root| root.name.clone()));
        insert(&mut write, "name", json!(name));
        let start = trace
            .timestamp
            .or_else(|| root.and_then(|root| root.start_time));
        insert(&mut write, "start_time", time(&start));
        insert(
            &mut write,
            "end_time",
            time(&root.and_then(|root| root.end_time)),
        );
        let input = trace
            .input
            .clone()
            .or_else(|| root.and_then(|root| root.input.clone()));
        let output = trace
            .output
            .clone()
            .or_else(|| root.and_then(|root| root.output.clone()));
        insert(&mut write, "input", wrap(&input, "input"));
        insert(&mut write, "output", wrap(&output, "output"));
        let mut metadata = match &trace.metadata {
            Some(Value::Object(map)) => map.clone(),
            Some(other) => Map::from_iter([("metadata".to_owned(), other.clone())]),
            None => Map::new(),
        };
        // Opik has no user field; its SDK keeps the user in the metadata.
        if let Some(user) = &trace.user_id {
            metadata.insert("user_id".into(), json!(user));
        }
        for (key, value) in [("release", &trace.release), ("version", &trace.version)] {
            if let Some(value) = value {
                metadata.insert(key.into(), json!(value));
            }
        }
        if !metadata.is_empty() {
            write.insert("metadata".into(), Value::Object(metadata));
        }
        if !trace.tags.is_empty() {
            write.insert("tags".into(), json!(trace.tags));
        }
        if let Some(session) = &trace.session_id {
            write.insert("thread_id".into(), json!(session));
        }
        if let Some(environment) = &trace.environment {
            write.insert("environment".into(), json!(environment));
        }
        write.insert("last_updated_at".into(), now());
        write.insert("source".into(), json!("sdk"));
        Value::Object(write)
    }

    fn feedback(&self, score: &Score) -> (bool, Value) {
        let (value, category) = match (score.data_type, &score.string_value) {
            (Some(ScoreDataType::Categorical | ScoreDataType::Text), Some(text)) => {
                (score.value, Some(text.clone()))
            }
            _ => (score.value, None),
        };
        let trace_id = score.trace_id.clone().unwrap_or_default();
        let (on_span, id) = match &score.observation_id {
            Some(span) => (true, span_uuid(span, &trace_id)),
            None => (false, trace_uuid(&trace_id)),
        };
        let item = json!({
            "project_name": self.config.project, "name": score.name, "value": value,
            "category_name": category, "reason": score.comment, "source": "sdk", "id": id,
        });
        (on_span, item)
    }
}

impl Exporter for OpikExporter {
    fn export(&mut self, batch: Vec<RawRecord>) -> Result<()> {
        let (observations, traces, scores) = split(batch);
        let roots: HashMap<&str, &Observation> = observations
            .iter()
            .filter(|observation| observation.parent_observation_id.is_none())
            .map(|observation| (observation.trace_id.as_str(), observation))
            .collect();
        let mut creates = Vec::new();
        let mut updates = Vec::new();
        for trace in &traces {
            let root = roots.get(trace.id.as_str()).copied();
            let write = self.trace_write(trace, root);
            if write.get("start_time").is_some() {
                creates.push(write);
            } else {
                updates.push((trace_uuid(&trace.id), write));
            }
        }
        let mut result = Ok(());
        if !creates.is_empty() {
            result = result.and(self.send(
                "POST",
                "v1/private/traces/batch",
                json!({ "traces": creates }),
            ));
        }
        for (id, mut update) in updates {
            if let Some(map) = update.as_object_mut() {
                map.remove("id");
            }
            result = result.and(self.send("PATCH", &format!("v1/private/traces/{id}"), update));
        }
        let spans: Vec<Value> = observations
            .iter()
            .map(|observation| self.span_write(observation))
            .collect();
        for chunk in spans.chunks(1000) {
            result =
                result.and(self.send("POST", "v1/private/spans/batch", json!({ "spans": chunk })));
        }
        let mut trace_scores = Vec::new();
        let mut span_scores = Vec::new();
        for score in &scores {
            match self.feedback(score) {
                (true, item) => span_scores.push(item),
                (false, item) => trace_scores.push(item),
            }
        }
        for (path, items) in [
            ("v1/private/traces/feedback-scores", trace_scores),
            ("v1/private/spans/feedback-scores", span_scores),
        ] {
            if !items.is_empty() {
                result = result.and(self.send("PUT", path, json!({ "scores": items })));
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smart_keys_name_their_base() {
        let attributes = base64::engine::general_purpose::STANDARD
            .encode(r#"{"baseUrl": "https://opik.example.com/"}"#);
        assert_eq!(
            smart_key_base(&format!("key*{attributes}")).as_deref(),
            Some("https://opik.example.com/opik/api/")
        );
        assert_eq!(smart_key_base("plain-key"), None);
    }

    #[test]
    fn settings_and_defaults() {
        let config = OpikConfig::from_settings(&Settings::from_pairs([(
            "OPIK_URL_OVERRIDE",
            "http://127.0.0.1:5173/api",
        )]))
        .unwrap();
        assert_eq!(config.base, "http://127.0.0.1:5173/api/");
        assert_eq!(
            (config.workspace.as_str(), config.project.as_str()),
            ("default", "axion")
        );
        assert!(config.api_key.is_none());
        let error = OpikConfig::from_settings(&Settings::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("OPIK_API_KEY"), "{error}");
    }
}
