//! Reading traces from Logfire with its query API: `POST {base}/v2/query` runs SQL over the
//! `records` table with a read token; the span tree is rebuilt from `span_id`/`parent_span_id`.

use std::collections::HashMap;
use std::time::Duration;

use axion_model::{Observation, ObservationLevel, ObservationType, Trace};
use serde_json::{json, Map, Value};

use super::langfuse::reader_policy;
use super::{post_json, renamed_counts, rfc3339, text, total_cost};
use super::{FetchTraces, LoadedTrace};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::export::http::HttpSender;
use crate::export::logfire::base_url_for_token;

const COLUMNS: &str = "trace_id, span_id, parent_span_id, span_name, message, kind, level, tags, attributes, \
                       start_timestamp, end_timestamp, otel_status_code, otel_status_message, exception_message";

/// Runs the queries with a read token.
#[derive(Debug, Clone)]
pub struct LogfireTraceLoader {
    base: String,
    token: String,
    sender: HttpSender,
}

fn failure(reason: impl Into<String>) -> Error {
    Error::Export {
        backend: "logfire loader".into(),
        reason: reason.into(),
    }
}

/// A SQL string literal.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

impl LogfireTraceLoader {
    /// From `LOGFIRE_READ_TOKEN` and `LOGFIRE_BASE_URL` (else the token's region).
    pub fn from_settings(settings: &Settings) -> Result<Self> {
        let token = settings
            .require("logfire", "LOGFIRE_READ_TOKEN")?
            .to_owned();
        let base = settings
            .get("LOGFIRE_BASE_URL")
            .map(|url| url.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| base_url_for_token(&token).to_owned());
        let sender = HttpSender::new("logfire loader", reader_policy(Duration::from_secs(60)));
        Ok(Self {
            base,
            token,
            sender,
        })
    }

    /// From the environment.
    pub fn from_env() -> Result<Self> {
        Self::from_settings(&Settings::from_env())
    }

    /// Runs SQL; rows as JSON objects.
    pub fn query(
        &self,
        sql: &str,
        min_timestamp: &str,
        limit: usize,
    ) -> Result<Vec<Map<String, Value>>> {
        let body = json!({
            "sql": sql, "explain": false, "include_schema": true, "limit": limit.clamp(1, 10_000),
            "min_timestamp": min_timestamp,
        });
        let headers = vec![
            ("authorization".to_owned(), self.token.clone()),
            (
                "accept".to_owned(),
                "application/json, application/problem+json;q=0.9".to_owned(),
            ),
        ];
        let url = format!("{}/v2/query", self.base);
        let text = post_json(
            &self.sender,
            url,
            headers,
            &body,
            "check LOGFIRE_READ_TOKEN",
        )?;
        let answer: Value =
            serde_json::from_str(&text).map_err(|error| failure(format!("/v2/query: {error}")))?;
        Ok(answer
            .get("data")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|row| row.as_object().cloned())
            .collect())
    }

    /// Root spans matching `query` (newest first), each with its whole span tree.
    pub fn fetch_traces(&self, query: &FetchTraces) -> Result<Vec<LoadedTrace>> {
        let (from, to) = query.window.bounds();
        let iso = |time: axion_model::Timestamp| {
            time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        };
        let min = from
            .map(iso)
            .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned());
        let mut conditions = vec!["parent_span_id IS NULL".to_owned()];
        if let Some(to) = to {
            conditions.push(format!("start_timestamp < {}", quote(&iso(to))));
        }
        if let Some(name) = &query.name {
            conditions.push(format!("span_name = {}", quote(name)));
        }
        for tag in &query.tags {
            conditions.push(format!("array_has(tags, {})", quote(tag)));
        }
        for (attribute, value) in [
            ("user.id", &query.user_id),
            ("session.id", &query.session_id),
        ] {
            if let Some(value) = value {
                conditions.push(format!(
                    "attributes->>{} = {}",
                    quote(attribute),
                    quote(value)
                ));
            }
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM records WHERE {} ORDER BY start_timestamp DESC LIMIT {}",
            conditions.join(" AND "),
            query.limit
        );
        let roots = self.query(&sql, &min, query.limit)?;
        let ids: Vec<String> = roots
            .iter()
            .filter_map(|row| {
                row.get("trace_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = if query.fetch_full_traces {
            let list = ids
                .iter()
                .map(|id| quote(id))
                .collect::<Vec<_>>()
                .join(", ");
            self.query(
                &format!("SELECT {COLUMNS} FROM records WHERE trace_id IN ({list}) ORDER BY start_timestamp"),
                &min,
                10_000,
            )?
        } else {
            roots
        };
        let mut by_trace: HashMap<String, Vec<Map<String, Value>>> = HashMap::new();
        for row in rows {
            if let Some(trace_id) = row.get("trace_id").and_then(Value::as_str) {
                by_trace.entry(trace_id.to_owned()).or_default().push(row);
            }
        }
        Ok(ids
            .iter()
            .map(|id| trace_from_rows(id, by_trace.remove(id).unwrap_or_default()))
            .collect())
    }
}

/// RFC 3339, or the `YYYY-MM-DD HH:MM:SS.f` (UTC) form SQL results may use.
fn parse_time(value: Option<&Value>) -> Option<axion_model::Timestamp> {
    if let Some(time) = rfc3339(value) {
        return Some(time);
    }
    chrono::NaiveDateTime::parse_from_str(value?.as_str()?, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|time| time.and_utc())
}

/// A JSON-encoded attribute decoded, anything else as is.
fn decoded(value: &Value) -> Value {
    match value {
        Value::String(text) if text.starts_with('{') || text.starts_with('[') => {
            serde_json::from_str(text).unwrap_or_else(|_| value.clone())
        }
        other => other.clone(),
    }
}

/// Rows of one trace as a loaded trace: the root gives the trace fields.
pub fn trace_from_rows(trace_id: &str, rows: Vec<Map<String, Value>>) -> LoadedTrace {
    let observations: Vec<Observation> = rows
        .iter()
        .map(|row| observation_from_row(trace_id, row))
        .collect();
    let root_row = rows
        .iter()
        .find(|row| row.get("parent_span_id").map_or(true, Value::is_null));
    let mut trace = Trace::new(trace_id);
    if let Some(root) = root_row {
        let attributes = root.get("attributes").map(decoded).unwrap_or(Value::Null);
        trace.name = text(root.get("span_name"));
        trace.timestamp = parse_time(root.get("start_timestamp"));
        trace.user_id = text(attributes.get("user.id"));
        trace.session_id = text(
            attributes
                .get("session.id")
                .or_else(|| attributes.get("gen_ai.conversation.id")),
        );
        trace.tags = root
            .get("tags")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|tag| tag.as_str().map(str::to_owned))
            .collect();
        if let Some(root_observation) = observations
            .iter()
            .find(|o| o.parent_observation_id.is_none())
        {
            trace.input = root_observation.input.clone();
            trace.output = root_observation.output.clone();
        }
    }
    let latency = {
        let start = observations.iter().filter_map(|o| o.start_time).min();
        let end = observations
            .iter()
            .filter_map(|o| o.end_time.or(o.start_time))
            .max();
        match (start, end) {
            (Some(start), Some(end)) => (end - start).num_microseconds().map(|us| us as f64 / 1e6),
            _ => None,
        }
    };
    LoadedTrace {
        trace,
        observations,
        scores: Vec::new(),
        latency,
        total_cost: None,
    }
}

fn observation_from_row(trace_id: &str, row: &Map<String, Value>) -> Observation {
    let field = |key: &str| text(row.get(key));
    let mut observation = Observation::new(field("span_id").unwrap_or_default(), trace_id);
    observation.parent_observation_id = field("parent_span_id");
    observation.name = field("span_name");
    observation.start_time = parse_time(row.get("start_timestamp"));
    observation.end_time = parse_time(row.get("end_timestamp"));
    let attributes = match row.get("attributes").map(decoded) {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let get = |key: &str| attributes.get(key).map(decoded);
    observation.model = [
        "gen_ai.response.model",
        "gen_ai.request.model",
        "llm.model_name",
    ]
    .iter()
    .find_map(|key| {
        attributes
            .get(*key)
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    observation.r#type = if field("kind").as_deref() == Some("log") {
        ObservationType::Event
    } else if observation.model.is_some() {
        ObservationType::Generation
    } else if attributes.contains_key("gen_ai.tool.name") {
        ObservationType::Tool
    } else {
        ObservationType::Span
    };
    observation.input = get("input.value").or_else(|| get("gen_ai.input.messages"));
    observation.output = get("output.value").or_else(|| get("gen_ai.output.messages"));
    observation.usage_details = renamed_counts(
        &attributes,
        &[
            ("gen_ai.usage.input_tokens", "input"),
            ("gen_ai.usage.output_tokens", "output"),
        ],
    );
    observation.cost_details = total_cost(attributes.get("operation.cost"));
    let level = row.get("level").and_then(Value::as_i64).unwrap_or(9);
    let failed =
        level >= 17 || row.get("otel_status_code").and_then(Value::as_str) == Some("ERROR");
    observation.level = if failed {
        ObservationLevel::Error
    } else if level >= 13 {
        ObservationLevel::Warning
    } else if level <= 5 {
        ObservationLevel::Debug
    } else {
        ObservationLevel::Default
    };
    if failed {
        observation.status_message =
            field("otel_status_message").or_else(|| field("exception_message"));
    }
    let metadata: Map<String, Value> = attributes
        .into_iter()
        .filter(|(key, _)| {
            !key.starts_with("logfire.") && key != "input.value" && key != "output.value"
        })
        .collect();
    if !metadata.is_empty() {
        observation.metadata = Some(Value::Object(metadata));
    }
    observation
}
