//! Reading traces from Opik: the streaming search endpoints the Python SDK uses
//! (`POST v1/private/traces/search`, `POST v1/private/spans/search`, newline-separated JSON,
//! paged by `last_retrieved_id`).

use std::time::Duration;

use axion_model::{Observation, ObservationLevel, ObservationType, Score, ScoreDataType, Trace};
use serde_json::{json, Value};

use super::langfuse::reader_policy;
use super::{post_json, renamed_counts, rfc3339, text, total_cost};
use super::{FetchTraces, LoadedTrace};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::export::http::HttpSender;
use crate::export::opik::OpikConfig;

/// Searches a project's traces and their spans.
#[derive(Debug, Clone)]
pub struct OpikTraceLoader {
    config: OpikConfig,
    sender: HttpSender,
}

fn failure(reason: impl Into<String>) -> Error {
    Error::Export {
        backend: "opik loader".into(),
        reason: reason.into(),
    }
}

fn object(value: Option<&Value>) -> Option<Value> {
    value.filter(|v| !v.is_null()).cloned()
}

impl OpikTraceLoader {
    /// From `OPIK_*` settings (as the `opik` provider).
    pub fn from_settings(settings: &Settings) -> Result<Self> {
        let config = OpikConfig::from_settings(settings)?;
        let sender = HttpSender::new("opik loader", reader_policy(Duration::from_secs(30)));
        Ok(Self { config, sender })
    }

    /// From the environment.
    pub fn from_env() -> Result<Self> {
        Self::from_settings(&Settings::from_env())
    }

    /// POSTs a search and parses the newline-separated objects it streams back.
    fn search(&self, path: &str, body: &Value) -> Result<Vec<Value>> {
        let mut headers = vec![("comet-workspace".to_owned(), self.config.workspace.clone())];
        if let Some(key) = &self.config.api_key {
            headers.push(("authorization".to_owned(), key.clone()));
        }
        let url = format!("{}{path}", self.config.base);
        let text = post_json(
            &self.sender,
            url,
            headers,
            body,
            "check OPIK_API_KEY, OPIK_WORKSPACE",
        )?;
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line)
                    .map_err(|error| failure(format!("{path}: bad stream line: {error}")))
            })
            .collect()
    }

    /// Traces of the project (newest first), with their spans and feedback scores when
    /// `fetch_full_traces`.
    pub fn fetch_traces(&self, query: &FetchTraces) -> Result<Vec<LoadedTrace>> {
        let mut filters = Vec::new();
        for tag in &query.tags {
            filters.push(json!({"field": "tags", "operator": "contains", "key": "", "value": tag, "type": "list"}));
        }
        if let Some(name) = &query.name {
            filters.push(json!({"field": "name", "operator": "=", "key": "", "value": name, "type": "string"}));
        }
        if let Some(session) = &query.session_id {
            filters.push(json!({"field": "thread_id", "operator": "=", "key": "", "value": session, "type": "string"}));
        }
        let (from, to) = query.window.bounds();
        let iso = |time: axion_model::Timestamp| {
            time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        };
        let mut traces = Vec::new();
        let mut last: Option<String> = None;
        while traces.len() < query.limit {
            let limit = (query.limit - traces.len()).min(1000);
            let mut body = json!({
                "project_name": self.config.project, "project_id": null,
                "filters": if filters.is_empty() { Value::Null } else { Value::Array(filters.clone()) },
                "last_retrieved_id": last, "limit": limit, "truncate": false, "exclude": null,
            });
            if let Some(from) = from {
                body["from_time"] = json!(iso(from));
            }
            if let Some(to) = to {
                body["to_time"] = json!(iso(to));
            }
            let page = self.search("v1/private/traces/search", &body)?;
            let count = page.len();
            for item in page {
                last = text(item.get("id"));
                let loaded = trace_from_public(&item);
                if query
                    .user_id
                    .as_ref()
                    .map_or(true, |user| loaded.trace.user_id.as_ref() == Some(user))
                {
                    traces.push(loaded);
                }
            }
            if count < limit {
                break;
            }
        }
        traces.truncate(query.limit);
        if query.fetch_full_traces {
            for loaded in &mut traces {
                let (observations, scores) = self.fetch_spans(&loaded.trace.id)?;
                loaded.observations = observations;
                loaded.scores.extend(scores);
            }
        }
        Ok(traces)
    }

    /// The spans of a trace (and their feedback scores), by start time.
    pub fn fetch_spans(&self, trace_id: &str) -> Result<(Vec<Observation>, Vec<Score>)> {
        let mut observations = Vec::new();
        let mut scores = Vec::new();
        let mut last: Option<String> = None;
        loop {
            let body = json!({
                "trace_id": trace_id, "project_name": self.config.project, "filters": null,
                "limit": 1000, "last_retrieved_id": last, "truncate": false, "exclude": null,
            });
            let page = self.search("v1/private/spans/search", &body)?;
            let count = page.len();
            for item in page {
                last = text(item.get("id"));
                let (observation, span_scores) = observation_from_span(&item, trace_id);
                observations.push(observation);
                scores.extend(span_scores);
            }
            if count < 1000 {
                break;
            }
        }
        observations.sort_by_key(|observation| observation.start_time);
        Ok((observations, scores))
    }
}

fn feedback_scores(item: &Value, trace_id: &str, observation_id: Option<&str>) -> Vec<Score> {
    item.get("feedback_scores")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|feedback| {
            let name = feedback.get("name")?.as_str()?;
            let value = feedback.get("value").and_then(Value::as_f64).unwrap_or(0.0);
            let mut score = Score::numeric(name, value);
            if let Some(category) = feedback.get("category_name").and_then(Value::as_str) {
                score.string_value = Some(category.to_owned());
                score.data_type = Some(ScoreDataType::Categorical);
            }
            score.comment = feedback
                .get("reason")
                .and_then(Value::as_str)
                .map(str::to_owned);
            score.trace_id = Some(trace_id.to_owned());
            score.observation_id = observation_id.map(str::to_owned);
            Some(score)
        })
        .collect()
}

/// An Opik `TracePublic` as a loaded trace (spans not yet fetched).
pub fn trace_from_public(item: &Value) -> LoadedTrace {
    let id = item
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut trace = Trace::new(id.clone());
    trace.name = text(item.get("name"));
    trace.timestamp = rfc3339(item.get("start_time"));
    trace.input = object(item.get("input"));
    trace.output = object(item.get("output"));
    trace.metadata = object(item.get("metadata"));
    trace.user_id = text(item.pointer("/metadata/user_id"));
    trace.session_id = text(item.get("thread_id"));
    trace.environment = text(item.get("environment"));
    trace.tags = item
        .get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|tag| tag.as_str().map(str::to_owned))
        .collect();
    let latency = item
        .get("duration")
        .and_then(Value::as_f64)
        .map(|ms| ms / 1000.0);
    let total_cost = item.get("total_estimated_cost").and_then(Value::as_f64);
    let scores = feedback_scores(item, &id, None);
    LoadedTrace {
        trace,
        observations: Vec::new(),
        scores,
        latency,
        total_cost,
    }
}

/// An Opik `SpanPublic` as an observation, with its feedback scores.
pub fn observation_from_span(item: &Value, trace_id: &str) -> (Observation, Vec<Score>) {
    let id = item
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut observation = Observation::new(id.clone(), trace_id);
    observation.parent_observation_id = text(item.get("parent_span_id"));
    observation.name = text(item.get("name"));
    observation.r#type = match item.get("type").and_then(Value::as_str) {
        Some("llm") => ObservationType::Generation,
        Some("tool") => ObservationType::Tool,
        Some("guardrail") => ObservationType::Guardrail,
        _ => ObservationType::Span,
    };
    observation.start_time = rfc3339(item.get("start_time"));
    observation.end_time = rfc3339(item.get("end_time"));
    observation.input = object(item.get("input"));
    observation.output = object(item.get("output"));
    observation.metadata = object(item.get("metadata"));
    observation.model = text(item.get("model"));
    if let Some(Value::Object(usage)) = item.get("usage") {
        observation.usage_details = renamed_counts(
            usage,
            &[
                ("prompt_tokens", "input"),
                ("completion_tokens", "output"),
                ("total_tokens", "total"),
            ],
        );
    }
    observation.cost_details = total_cost(item.get("total_estimated_cost"));
    if let Some(error) = item.get("error_info").filter(|v| v.is_object()) {
        observation.level = ObservationLevel::Error;
        observation.status_message = error
            .get("message")
            .and_then(Value::as_str)
            .or_else(|| error.get("exception_type").and_then(Value::as_str))
            .map(str::to_owned);
    }
    let scores = feedback_scores(item, trace_id, Some(&id));
    (observation, scores)
}
