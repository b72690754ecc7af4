//! The `langfuse` provider: OTLP/HTTP (protobuf, gzip) to `/api/public/otel/v1/traces` with
//! Langfuse's `langfuse.*` attributes, scores and orphan trace updates through the ingestion
//! API; or, with `AXION_LANGFUSE_TRANSPORT=ingestion`, everything through the legacy ingestion
//! batch API (for older self-hosted servers).

use std::sync::Arc;
use std::time::Duration;

use axion_model::otlp::{Convention, ExportResource};
use axion_model::{Observation, Score, ScoreDataType, Trace};
use base64::Engine;
use serde_json::{json, Value};

use super::http::{HttpSender, Outgoing, RetryPolicy};
use super::otlp::{invalid, split, OtlpExporter, OtlpProtocol, SideChannel};
use super::pipeline::{Delivery, Exporter, PipelineConfig, PipelineTracer};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::provider::{BaseTracer, RawRecord};

/// Langfuse Cloud (EU), the SDKs' default host.
pub const DEFAULT_HOST: &str = "https://cloud.langfuse.com";
/// Largest ingestion request body sent (Langfuse accepts 3.5 MB; SDKs use 2.5 MB).
const MAX_INGESTION_BYTES: usize = 2_500_000;

/// Everything the Langfuse exporters need to know, read from settings.
#[derive(Debug, Clone)]
pub struct LangfuseConfig {
    /// Base URL without trailing slash.
    pub host: String,
    /// `pk-lf-…`
    pub public_key: String,
    /// `sk-lf-…`
    pub secret_key: String,
    /// Tags added to every trace (`LANGFUSE_TAGS`, `LANGFUSE_DEFAULT_TAGS`).
    pub default_tags: Vec<String>,
    /// `LANGFUSE_ENVIRONMENT`.
    pub environment: Option<String>,
    /// `LANGFUSE_RELEASE`.
    pub release: Option<String>,
    /// Retry and timeout policy (`LANGFUSE_TIMEOUT` in seconds sets the request timeout).
    pub retry: RetryPolicy,
}

impl LangfuseConfig {
    /// Reads `LANGFUSE_*` settings.
    pub fn from_settings(settings: &Settings) -> Result<Self> {
        let public_key = settings
            .require("langfuse", "LANGFUSE_PUBLIC_KEY")?
            .to_owned();
        let secret_key = settings
            .require("langfuse", "LANGFUSE_SECRET_KEY")?
            .to_owned();
        let host = settings
            .get("LANGFUSE_BASE_URL")
            .or_else(|| settings.get("LANGFUSE_HOST"))
            .unwrap_or(DEFAULT_HOST)
            .trim_end_matches('/')
            .to_owned();
        if !(host.starts_with("http://") || host.starts_with("https://")) {
            return Err(invalid(
                "LANGFUSE_HOST",
                &host,
                "expected an http:// or https:// URL",
            ));
        }
        let mut default_tags = Vec::new();
        for name in ["LANGFUSE_TAGS", "LANGFUSE_DEFAULT_TAGS"] {
            for tag in settings.get(name).unwrap_or_default().split(',') {
                let tag = tag.trim();
                if !tag.is_empty() && !default_tags.iter().any(|t| t == tag) {
                    default_tags.push(tag.to_owned());
                }
            }
        }
        let mut retry = RetryPolicy::default();
        let timeout: f64 = settings.parse_or("LANGFUSE_TIMEOUT", 10.0)?;
        if !(timeout > 0.0 && timeout.is_finite()) {
            return Err(invalid(
                "LANGFUSE_TIMEOUT",
                &timeout.to_string(),
                "expected a positive number of seconds",
            ));
        }
        retry.request_timeout = Duration::from_secs_f64(timeout);
        Ok(Self {
            host,
            public_key,
            secret_key,
            default_tags,
            environment: settings.get("LANGFUSE_ENVIRONMENT").map(str::to_owned),
            release: settings.get("LANGFUSE_RELEASE").map(str::to_owned),
            retry,
        })
    }

    fn headers(&self) -> Vec<(String, String)> {
        let credentials = format!("{}:{}", self.public_key, self.secret_key);
        vec![
            (
                "authorization".into(),
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(credentials)
                ),
            ),
            ("x-langfuse-sdk-name".into(), "axion-rust".into()),
            (
                "x-langfuse-sdk-version".into(),
                env!("CARGO_PKG_VERSION").into(),
            ),
            ("x-langfuse-public-key".into(), self.public_key.clone()),
        ]
    }

    fn resource(&self) -> ExportResource {
        ExportResource {
            service_name: "axion".into(),
            environment: self.environment.clone(),
            release: self.release.clone(),
            attributes: Vec::new(),
            scope: ("axion".into(), env!("CARGO_PKG_VERSION").into()),
        }
    }
}

/// Builds the provider from settings (the registry's `langfuse` entry).
pub(crate) fn langfuse_provider(settings: &Settings) -> Result<Arc<dyn BaseTracer>> {
    let config = LangfuseConfig::from_settings(settings)?;
    let pipeline = PipelineConfig::from_settings(settings)?;
    let transport = settings.get("AXION_LANGFUSE_TRANSPORT").unwrap_or("otlp");
    let tracer = match transport {
        "otlp" => PipelineTracer::new("langfuse", otlp_exporter(config), pipeline)?,
        "ingestion" => PipelineTracer::new("langfuse", IngestionExporter::new(config), pipeline)?,
        other => {
            return Err(invalid(
                "AXION_LANGFUSE_TRANSPORT",
                other,
                "expected otlp or ingestion",
            ))
        }
    };
    Ok(Arc::new(tracer))
}

/// The default transport: OTLP plus the ingestion API for scores and orphan trace updates.
pub fn otlp_exporter(config: LangfuseConfig) -> DefaultTags<OtlpExporter> {
    let mut headers = config.headers();
    headers.push(("x-langfuse-ingestion-version".into(), "4".into()));
    let exporter = OtlpExporter::new(
        format!("{}/api/public/otel/v1/traces", config.host),
        headers,
        OtlpProtocol::Protobuf,
        true,
        Convention::Langfuse,
        config.resource(),
        HttpSender::new("langfuse", config.retry.clone()),
    )
    .with_side_channel(IngestionChannel::new(&config));
    DefaultTags {
        tags: config.default_tags.clone(),
        environment: config.environment.clone(),
        inner: exporter,
    }
}

/// Adds the configured default tags and environment to every trace and observation.
#[derive(Debug)]
pub struct DefaultTags<E> {
    tags: Vec<String>,
    environment: Option<String>,
    inner: E,
}

impl<E> DefaultTags<E> {
    fn apply(&self, batch: &mut [RawRecord]) {
        if self.tags.is_empty() && self.environment.is_none() {
            return;
        }
        for record in batch {
            match record {
                RawRecord::Trace(trace) => {
                    for tag in &self.tags {
                        if !trace.tags.contains(tag) {
                            trace.tags.push(tag.clone());
                        }
                    }
                    if trace.environment.is_none() {
                        trace.environment = self.environment.clone();
                    }
                }
                RawRecord::Observation(observation) if observation.environment.is_none() => {
                    observation.environment = self.environment.as_deref().map(Arc::from);
                }
                _ => {}
            }
        }
    }
}

impl<E: Exporter> Exporter for DefaultTags<E> {
    fn export(&mut self, mut batch: Vec<RawRecord>) -> Result<()> {
        self.apply(&mut batch);
        self.inner.export(batch)
    }

    // Forwarded, so that the OTLP transport sends one batch while the worker encodes the next.
    fn export_deferred(&mut self, mut batch: Vec<RawRecord>) -> Result<Option<Delivery>> {
        self.apply(&mut batch);
        self.inner.export_deferred(batch)
    }

    fn shutdown(&mut self) {
        self.inner.shutdown();
    }
}

/// The legacy ingestion batch API as a side channel (and the core of [`IngestionExporter`]).
#[derive(Debug)]
pub struct IngestionChannel {
    url: String,
    headers: Vec<(String, String)>,
    sender: HttpSender,
}

impl IngestionChannel {
    fn new(config: &LangfuseConfig) -> Self {
        Self {
            url: format!("{}/api/public/ingestion", config.host),
            headers: config.headers(),
            sender: HttpSender::new("langfuse", config.retry.clone()),
        }
    }

    /// Posts events in requests of at most 2.5 MB; per-event rejections (207) are logged.
    fn post(&mut self, events: Vec<Value>) -> Result<()> {
        let mut chunk: Vec<String> = Vec::new();
        let mut size = 0;
        let mut result = Ok(());
        for event in events {
            let text = event.to_string();
            if !chunk.is_empty() && size + text.len() > MAX_INGESTION_BYTES {
                result = result.and(self.post_chunk(std::mem::take(&mut chunk)));
                size = 0;
            }
            size += text.len() + 1;
            chunk.push(text);
        }
        if !chunk.is_empty() {
            result = result.and(self.post_chunk(chunk));
        }
        result
    }

    fn post_chunk(&mut self, events: Vec<String>) -> Result<()> {
        let body = format!(
            r#"{{"batch":[{}],"metadata":{{"sdk_name":"axion-rust","sdk_version":"{}"}}}}"#,
            events.join(","),
            env!("CARGO_PKG_VERSION")
        );
        let outgoing = Outgoing {
            method: "POST",
            url: self.url.clone(),
            content_type: "application/json",
            gzip: false,
            headers: self.headers.clone(),
            body: body.into_bytes(),
        };
        let answer = self.sender.send(&outgoing)?;
        let rejected = serde_json::from_str::<Value>(&answer.body)
            .ok()
            .and_then(|value| value.get("errors").and_then(Value::as_array).cloned())
            .unwrap_or_default();
        if rejected.is_empty() {
            return Ok(());
        }
        Err(Error::Export {
            backend: "langfuse".into(),
            reason: format!("{} events rejected, first: {}", rejected.len(), rejected[0]),
        })
    }
}

fn event(kind: &str, body: Value) -> Value {
    json!({
        "id": axion_model::random_event_id(),
        "type": kind,
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "body": body,
    })
}

/// A score as Langfuse's ingestion wants it: categorical values as their string.
pub fn score_body(score: &Score) -> Value {
    let mut body = serde_json::to_value(score).unwrap_or(Value::Null);
    if let (Some(ScoreDataType::Categorical | ScoreDataType::Text), Some(text)) =
        (score.data_type, &score.string_value)
    {
        body["value"] = Value::String(text.clone());
        if let Some(map) = body.as_object_mut() {
            map.remove("stringValue");
        }
    }
    if let Some(id) = &score.id {
        body["id"] = json!(id);
    }
    body
}

fn observation_event(observation: &Observation) -> Value {
    let kind = format!(
        "{}-create",
        observation.r#type.as_str().to_ascii_lowercase()
    );
    event(
        &kind,
        serde_json::to_value(observation).unwrap_or(Value::Null),
    )
}

impl SideChannel for IngestionChannel {
    fn send(&mut self, traces: Vec<Trace>, scores: Vec<Score>) -> Result<()> {
        let events = traces
            .iter()
            .map(|trace| {
                event(
                    "trace-create",
                    serde_json::to_value(trace).unwrap_or(Value::Null),
                )
            })
            .chain(
                scores
                    .iter()
                    .map(|score| event("score-create", score_body(score))),
            )
            .collect();
        self.post(events)
    }
}

/// Everything through `POST /api/public/ingestion` (`AXION_LANGFUSE_TRANSPORT=ingestion`).
#[derive(Debug)]
pub struct IngestionExporter {
    channel: IngestionChannel,
    tags: Vec<String>,
    environment: Option<String>,
    release: Option<String>,
}

impl IngestionExporter {
    /// An exporter for `config`.
    pub fn new(config: LangfuseConfig) -> Self {
        Self {
            channel: IngestionChannel::new(&config),
            tags: config.default_tags,
            environment: config.environment,
            release: config.release,
        }
    }
}

impl Exporter for IngestionExporter {
    fn export(&mut self, batch: Vec<RawRecord>) -> Result<()> {
        let (observations, traces, scores) = split(batch);
        let mut events = Vec::with_capacity(observations.len() + traces.len() + scores.len());
        for mut trace in traces {
            for tag in &self.tags {
                if !trace.tags.contains(tag) {
                    trace.tags.push(tag.clone());
                }
            }
            if trace.environment.is_none() {
                trace.environment = self.environment.clone();
            }
            if trace.release.is_none() {
                trace.release = self.release.clone();
            }
            events.push(event(
                "trace-create",
                serde_json::to_value(&trace).unwrap_or(Value::Null),
            ));
        }
        for mut observation in observations {
            if observation.environment.is_none() {
                observation.environment = self.environment.clone();
            }
            events.push(observation_event(&observation));
        }
        events.extend(
            scores
                .iter()
                .map(|score| event("score-create", score_body(score))),
        );
        self.channel.post(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::RawTrace;

    /// Encodes nothing; hands back a delivery that records the batch it was given.
    struct Deferring(std::sync::mpsc::Sender<Vec<RawRecord>>);

    impl Exporter for Deferring {
        fn export(&mut self, batch: Vec<RawRecord>) -> Result<()> {
            self.export_deferred(batch)?.map_or(Ok(()), Delivery::run)
        }
        fn export_deferred(&mut self, batch: Vec<RawRecord>) -> Result<Option<Delivery>> {
            let seen = self.0.clone();
            Ok(Some(Delivery::new(move || {
                seen.send(batch).expect("the test listens");
                Ok(())
            })))
        }
    }

    #[test]
    fn default_tags_keep_the_inner_exporters_deferred_sending() {
        let (seen, batches) = std::sync::mpsc::channel();
        let mut exporter = DefaultTags {
            tags: vec!["nightly".into()],
            environment: Some("staging".into()),
            inner: Deferring(seen),
        };
        let trace = RawTrace::new(axion_model::TraceId::from_bytes([5; 16]));
        let delivery = exporter
            .export_deferred(vec![RawRecord::Trace(Box::new(trace))])
            .unwrap()
            .expect("sending is left to a sender thread");
        assert!(
            batches.try_recv().is_err(),
            "nothing is sent before the delivery runs"
        );
        delivery.run().unwrap();
        let [RawRecord::Trace(trace)] = &batches.recv().unwrap()[..] else {
            panic!("one trace");
        };
        assert_eq!(trace.tags, ["nightly"]);
        assert_eq!(trace.environment.as_deref(), Some("staging"));
    }
}
