//! Reading traces back from Langfuse (or `axion serve`) through the public read API.

use std::time::Duration;

use axion_model::{Observation, Score, Trace};
use base64::Engine;
use serde_json::Value;

use super::{FetchTraces, LoadedTrace};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::export::http::{HttpSender, Outgoing, RetryPolicy};
use crate::export::langfuse::DEFAULT_HOST;

/// Pages through `GET /api/public/traces` and fetches full traces with bounded concurrency.
/// Retries 429 (honouring `Retry-After`), 5xx and timeouts with backoff.
#[derive(Debug, Clone)]
pub struct LangfuseTraceLoader {
    host: String,
    authorization: String,
    sender: HttpSender,
    /// Parallel per-trace fetches.
    pub concurrency: usize,
}

/// The readers' retry policy: every 5xx and 429 retried for up to a minute, a host with
/// nothing listening reported at once.
pub(crate) fn reader_policy(timeout: Duration) -> RetryPolicy {
    RetryPolicy {
        request_timeout: timeout,
        initial_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(10),
        retry_all_server_errors: true,
        fail_fast_when_unreachable: true,
        ..RetryPolicy::default()
    }
}

fn failure(reason: impl Into<String>) -> Error {
    Error::Export {
        backend: "langfuse loader".into(),
        reason: reason.into(),
    }
}

impl LangfuseTraceLoader {
    /// A loader for `host` with a key pair.
    pub fn new(host: &str, public_key: &str, secret_key: &str) -> Result<Self> {
        Self::with_timeout(host, public_key, secret_key, Duration::from_secs(30))
    }

    fn with_timeout(
        host: &str,
        public_key: &str,
        secret_key: &str,
        timeout: Duration,
    ) -> Result<Self> {
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{public_key}:{secret_key}"));
        Ok(Self {
            host: host.trim_end_matches('/').to_owned(),
            authorization: format!("Basic {credentials}"),
            sender: HttpSender::new("langfuse loader", reader_policy(timeout)),
            concurrency: 8,
        })
    }

    /// From `LANGFUSE_PUBLIC_KEY`, `LANGFUSE_SECRET_KEY`, `LANGFUSE_BASE_URL`/`LANGFUSE_HOST`
    /// and `LANGFUSE_TIMEOUT` (seconds).
    pub fn from_settings(settings: &Settings) -> Result<Self> {
        let public_key = settings.require("langfuse", "LANGFUSE_PUBLIC_KEY")?;
        let secret_key = settings.require("langfuse", "LANGFUSE_SECRET_KEY")?;
        let host = settings
            .get("LANGFUSE_BASE_URL")
            .or_else(|| settings.get("LANGFUSE_HOST"))
            .unwrap_or(DEFAULT_HOST);
        let timeout: f64 = settings.parse_or("LANGFUSE_TIMEOUT", 30.0)?;
        Self::with_timeout(
            host,
            public_key,
            secret_key,
            Duration::from_secs_f64(timeout.max(0.001)),
        )
    }

    /// [`LangfuseTraceLoader::from_settings`] with the process environment.
    pub fn from_env() -> Result<Self> {
        Self::from_settings(&Settings::from_env())
    }

    /// `GET path?query`; `Ok(None)` on 404.
    fn get(&self, path: &str, query: &[(String, String)]) -> Result<Option<Value>> {
        let url = reqwest::Url::parse_with_params(&format!("{}{path}", self.host), query).map_err(
            |error| {
                failure(format!(
                    "{}{path}: {error} (check LANGFUSE_HOST)",
                    self.host
                ))
            },
        )?;
        let request = Outgoing {
            method: "GET",
            url: url.to_string(),
            content_type: "application/json",
            gzip: false,
            headers: vec![("authorization".into(), self.authorization.clone())],
            body: Vec::new(),
        };
        let answer = self
            .sender
            .exchange(&request)
            .map_err(|error| match error {
                Error::Export { reason, .. } if reason.starts_with("cannot reach") => {
                    failure(format!("{reason} (check LANGFUSE_HOST)"))
                }
                other => other,
            })?;
        match answer.status {
            200..=299 => serde_json::from_str(&answer.body)
                .map(Some)
                .map_err(|error| failure(format!("{url}: the answer is not JSON: {error}"))),
            404 => Ok(None),
            status @ (401 | 403) => Err(failure(format!(
                "{url} answered {status}: check LANGFUSE_PUBLIC_KEY/LANGFUSE_SECRET_KEY and the host ({})",
                answer.body
            ))),
            status => Err(failure(format!("{url} answered {status}: {}", answer.body))),
        }
    }

    /// Trace summaries (or full traces) matching `query`, newest first, up to `query.limit`.
    pub fn fetch_traces(&self, query: &FetchTraces) -> Result<Vec<LoadedTrace>> {
        let mut traces = Vec::new();
        self.for_each_trace(query, |trace| {
            traces.push(trace);
            Ok(())
        })?;
        Ok(traces)
    }

    /// Streams the traces of [`LangfuseTraceLoader::fetch_traces`] one page (≤ 100) at a time
    /// into `visit`, so memory stays bounded by a page however many traces match.
    pub fn for_each_trace(
        &self,
        query: &FetchTraces,
        mut visit: impl FnMut(LoadedTrace) -> Result<()>,
    ) -> Result<()> {
        let (from, to) = query.window.bounds();
        let mut params: Vec<(String, String)> = Vec::new();
        let iso = |time: chrono::DateTime<chrono::Utc>| {
            time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        };
        if let Some(from) = from {
            params.push(("fromTimestamp".into(), iso(from)));
        }
        if let Some(to) = to {
            params.push(("toTimestamp".into(), iso(to)));
        }
        for tag in &query.tags {
            params.push(("tags".into(), tag.clone()));
        }
        for (key, value) in [
            ("name", &query.name),
            ("userId", &query.user_id),
            ("sessionId", &query.session_id),
        ] {
            if let Some(value) = value {
                params.push((key.into(), value.clone()));
            }
        }
        params.extend(query.extra.iter().cloned());
        let mut delivered = 0usize;
        let mut page = 1u32;
        while delivered < query.limit {
            let limit = (query.limit - delivered).min(100);
            let mut page_params = params.clone();
            page_params.push(("page".into(), page.to_string()));
            page_params.push(("limit".into(), limit.to_string()));
            let answer = self
                .get("/api/public/traces", &page_params)?
                .ok_or_else(|| failure("GET /api/public/traces is not available on this server"))?;
            let data = answer
                .get("data")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let count = data.len();
            let mut summaries = Vec::with_capacity(count);
            for item in data.into_iter().take(query.limit - delivered) {
                summaries.push(summary(item)?);
            }
            let batch = if query.fetch_full_traces {
                let ids: Vec<String> = summaries
                    .iter()
                    .map(|loaded| loaded.trace.id.clone())
                    .collect();
                self.fetch_many(&ids)?
            } else {
                summaries
            };
            for trace in batch {
                delivered += 1;
                visit(trace)?;
            }
            let total_pages = answer
                .pointer("/meta/totalPages")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            if count < limit || u64::from(page) >= total_pages {
                break;
            }
            page += 1;
        }
        Ok(())
    }

    /// Full traces for `ids`, `concurrency` at a time, in the order given.
    pub fn fetch_many(&self, ids: &[String]) -> Result<Vec<LoadedTrace>> {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results: Vec<std::sync::Mutex<Option<Result<LoadedTrace>>>> =
            ids.iter().map(|_| Default::default()).collect();
        std::thread::scope(|scope| {
            for _ in 0..self.concurrency.clamp(1, ids.len().max(1)) {
                scope.spawn(|| loop {
                    let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(id) = ids.get(index) else { break };
                    let result = self.fetch_trace(id);
                    *results[index].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
                });
            }
        });
        results
            .into_iter()
            .map(|slot| {
                slot.into_inner()
                    .unwrap_or_else(|e| e.into_inner())
                    .unwrap_or_else(|| Err(failure("not fetched")))
            })
            .collect()
    }

    /// One full trace: `GET /traces/{id}`, or — on servers without the v1 endpoint — the trace
    /// summary plus `/v2/observations` and `/v3/scores` (cursor pages).
    pub fn fetch_trace(&self, id: &str) -> Result<LoadedTrace> {
        let path = format!("/api/public/traces/{}", urlencode(id));
        if let Some(answer) = self.get(&path, &[])? {
            return full(answer);
        }
        let observations = self.fetch_observations_v2(id)?;
        let Some(root) = observations
            .iter()
            .find(|o| o.parent_observation_id.is_none())
            .or(observations.first())
        else {
            return Err(failure(format!("trace {id} not found")));
        };
        let mut trace = Trace::new(id);
        trace.name = root.name.clone();
        trace.timestamp = root.start_time;
        trace.input = root.input.clone();
        trace.output = root.output.clone();
        trace.environment = root.environment.clone();
        let scores = self.fetch_scores_v3(id)?;
        Ok(LoadedTrace {
            trace,
            observations,
            scores,
            latency: None,
            total_cost: None,
        })
    }

    /// Observations of a trace through `GET /api/public/v2/observations` (all field groups).
    pub fn fetch_observations_v2(&self, trace_id: &str) -> Result<Vec<Observation>> {
        let mut observations = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut params = vec![
                ("traceId".to_owned(), trace_id.to_owned()),
                ("limit".to_owned(), "1000".to_owned()),
                (
                    "fields".to_owned(),
                    "core,basic,time,io,metadata,model,usage,prompt,metrics".to_owned(),
                ),
            ];
            if let Some(cursor) = &cursor {
                params.push(("cursor".into(), cursor.clone()));
            }
            let answer = self
                .get("/api/public/v2/observations", &params)?
                .unwrap_or_default();
            for mut item in answer
                .get("data")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                // v2 returns input/output as raw strings; decode them when they are JSON.
                for key in ["input", "output"] {
                    if let Some(Value::String(text)) = item.get(key) {
                        if let Ok(decoded) = serde_json::from_str::<Value>(text) {
                            item[key] = decoded;
                        }
                    }
                }
                if item.get("model").is_none() {
                    if let Some(model) = item.get("providedModelName").cloned() {
                        item["model"] = model;
                    }
                }
                observations.push(parse(item, "observation")?);
            }
            cursor = answer
                .pointer("/meta/cursor")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if cursor.is_none() {
                return Ok(observations);
            }
        }
    }

    /// Scores of a trace through `GET /api/public/v3/scores`.
    pub fn fetch_scores_v3(&self, trace_id: &str) -> Result<Vec<Score>> {
        let mut scores = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut params = vec![
                ("traceId".to_owned(), trace_id.to_owned()),
                ("limit".to_owned(), "100".to_owned()),
                ("fields".to_owned(), "core,details,subject".to_owned()),
            ];
            if let Some(cursor) = &cursor {
                params.push(("cursor".into(), cursor.clone()));
            }
            let answer = self
                .get("/api/public/v3/scores", &params)?
                .unwrap_or_default();
            for item in answer
                .get("data")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                scores.push(score_from_v3(item)?);
            }
            cursor = answer
                .pointer("/meta/cursor")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if cursor.is_none() {
                return Ok(scores);
            }
        }
    }

    /// The traces of a session (`GET /api/public/sessions/{id}`), each fetched in full.
    pub fn fetch_session(&self, session_id: &str) -> Result<Vec<LoadedTrace>> {
        let answer = self
            .get(
                &format!("/api/public/sessions/{}", urlencode(session_id)),
                &[],
            )?
            .ok_or_else(|| failure(format!("session {session_id} not found")))?;
        let ids: Vec<String> = answer
            .get("traces")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|trace| trace.get("id").and_then(Value::as_str).map(str::to_owned))
            .collect();
        self.fetch_many(&ids)
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn parse<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> Result<T> {
    serde_json::from_value(value)
        .map_err(|error| failure(format!("unexpected {what} shape: {error}")))
}

fn summary(item: Value) -> Result<LoadedTrace> {
    let latency = item
        .get("latency")
        .and_then(Value::as_f64)
        .filter(|v| *v >= 0.0);
    let total_cost = item
        .get("totalCost")
        .and_then(Value::as_f64)
        .filter(|v| *v >= 0.0);
    let mut trace_json = item;
    if let Some(map) = trace_json.as_object_mut() {
        map.remove("observations");
        map.remove("scores");
    }
    Ok(LoadedTrace {
        trace: parse::<Trace>(trace_json, "trace")?,
        observations: Vec::new(),
        scores: Vec::new(),
        latency,
        total_cost,
    })
}

fn full(answer: Value) -> Result<LoadedTrace> {
    let observations = answer
        .get("observations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let scores = answer
        .get("scores")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut loaded = summary(answer)?;
    loaded.observations = observations
        .into_iter()
        .map(|o| parse(o, "observation"))
        .collect::<Result<_>>()?;
    loaded
        .observations
        .sort_by_key(|observation| observation.start_time);
    loaded.scores = scores
        .into_iter()
        .map(|s| parse(s, "score"))
        .collect::<Result<_>>()?;
    Ok(loaded)
}

/// A v3 score (typed `value`, `subject`) in the model's shape.
fn score_from_v3(mut item: Value) -> Result<Score> {
    let value = item.get("value").cloned().unwrap_or(Value::Null);
    match value {
        Value::Bool(flag) => {
            item["value"] = Value::from(u8::from(flag));
            item["stringValue"] = Value::String(if flag { "True" } else { "False" }.into());
        }
        Value::String(text) => {
            item["value"] = Value::from(0.0);
            item["stringValue"] = Value::String(text);
        }
        _ => {}
    }
    if let Some(subject) = item.get("subject").cloned() {
        match subject.get("kind").and_then(Value::as_str) {
            Some("trace") => item["traceId"] = subject["id"].clone(),
            Some("observation") => {
                item["observationId"] = subject["id"].clone();
                item["traceId"] = subject.get("traceId").cloned().unwrap_or(Value::Null);
            }
            Some("session") => item["sessionId"] = subject["id"].clone(),
            _ => {}
        }
    }
    parse(item, "score")
}
