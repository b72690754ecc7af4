//! `POST /api/public/otel/v1/traces` (and `/v1/traces`): OTLP/HTTP trace exports, protobuf or
//! JSON, gzip or not, mapped to ingestion events by [`axion_model::otlp`].

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::Arc;

use chrono::Utc;
use serde_json::Value;

use axion_model::canonical_time;
use axion_model::otlp::{
    self as mapping, ExportTraceServiceRequest, ExportView, MappedSpan, OtlpError, SpanObservation,
    SpanTrace, TraceRole,
};

use super::langfuse_batch::{process_events, BatchOutcome};
use super::{
    canonical_time_text, check_id_text, check_trace_name, normal_environment, parse_time_text,
    usage_and_cost_of, without_empty, EventError, Scope,
};
use crate::cost::Pricing;
use crate::store::rows::{self, PreparedBatch, TraceFields};

/// The largest decompressed body accepted, so a small gzip bomb cannot exhaust memory.
pub const MAX_DECOMPRESSED_BYTES: u64 = 64 * 1024 * 1024;

/// Why an export was rejected as a whole (→ 400, or 415 for an unknown content type).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OtlpBodyError {
    /// Neither `application/x-protobuf` nor `application/json`.
    #[error("Invalid content type {0:?}: expected application/x-protobuf or application/json")]
    ContentType(String),
    /// `Content-Encoding` other than gzip/identity, or a broken gzip stream.
    #[error("{0}")]
    Encoding(String),
    /// Not an OTLP trace export.
    #[error(transparent)]
    Decode(#[from] OtlpError),
}

/// Decompresses and decodes an export.
pub fn decode(
    content_type: &str,
    content_encoding: Option<&str>,
    body: &[u8],
) -> Result<ExportTraceServiceRequest, OtlpBodyError> {
    let mut decompressed = Vec::new();
    let body = decompress(content_encoding, body, &mut decompressed)?;
    Ok(match body_format(content_type)? {
        BodyFormat::Protobuf => mapping::decode_protobuf(body)?,
        BodyFormat::Json => mapping::decode_json(body)?,
    })
}

/// What a decoded export's view borrows from besides the body: the body decompressed, and
/// the request when it was not read in place (OTLP/JSON, or protobuf left to prost).
#[derive(Default)]
pub struct ExportStorage {
    decompressed: Vec<u8>,
    decoded: Option<ExportTraceServiceRequest>,
}

/// Decompresses and decodes an export into a view that borrows its texts from `body` or
/// from `storage`.
pub fn decode_view<'a>(
    content_type: &str,
    content_encoding: Option<&str>,
    body: &'a [u8],
    storage: &'a mut ExportStorage,
) -> Result<ExportView<'a>, OtlpBodyError> {
    let ExportStorage {
        decompressed,
        decoded,
    } = storage;
    let body = decompress(content_encoding, body, decompressed)?;
    Ok(match body_format(content_type)? {
        BodyFormat::Protobuf => mapping::decode_protobuf_view(body, decoded)?,
        BodyFormat::Json => ExportView::of(decoded.insert(mapping::decode_json(body)?)),
    })
}

/// The two encodings of OTLP/HTTP.
enum BodyFormat {
    Protobuf,
    Json,
}

fn body_format(content_type: &str) -> Result<BodyFormat, OtlpBodyError> {
    if content_type.contains("application/x-protobuf")
        || content_type.contains("application/protobuf")
    {
        Ok(BodyFormat::Protobuf)
    } else if content_type.contains("application/json") {
        Ok(BodyFormat::Json)
    } else {
        Err(OtlpBodyError::ContentType(content_type.to_owned()))
    }
}

/// `body` as sent (no encoding) or gunzipped into `buffer`.
fn decompress<'a>(
    content_encoding: Option<&str>,
    body: &'a [u8],
    buffer: &'a mut Vec<u8>,
) -> Result<&'a [u8], OtlpBodyError> {
    match content_encoding.map(str::trim) {
        None | Some("") | Some("identity") => Ok(body),
        Some(encoding) if encoding.eq_ignore_ascii_case("gzip") => {
            buffer.reserve(body.len() * 4);
            flate2::read::MultiGzDecoder::new(body)
                .take(MAX_DECOMPRESSED_BYTES + 1)
                .read_to_end(buffer)
                .map_err(|error| OtlpBodyError::Encoding(format!("invalid gzip body: {error}")))?;
            if buffer.len() as u64 > MAX_DECOMPRESSED_BYTES {
                return Err(OtlpBodyError::Encoding(format!(
                    "decompressed body exceeds {MAX_DECOMPRESSED_BYTES} bytes"
                )));
            }
            Ok(buffer)
        }
        Some(other) => Err(OtlpBodyError::Encoding(format!(
            "unsupported Content-Encoding {other:?}: send gzip or no encoding"
        ))),
    }
}

/// Decodes and maps an export; every span becomes events processed like an ingestion batch.
/// The reference path: [`prepare`] stores the same rows without the events.
pub fn process(
    content_type: &str,
    content_encoding: Option<&str>,
    body: &[u8],
) -> Result<BatchOutcome, OtlpBodyError> {
    Ok(process_request(&decode(
        content_type,
        content_encoding,
        body,
    )?))
}

/// [`process`] of a decoded export.
pub fn process_request(request: &ExportTraceServiceRequest) -> BatchOutcome {
    let events = mapping::to_events(request);
    let mut outcome = BatchOutcome::default();
    let parsed = events
        .into_iter()
        .enumerate()
        .map(|(index, (event, io))| {
            let time =
                parse_time_text(&event.timestamp, "timestamp").unwrap_or_else(|_| Utc::now());
            (index, event, io, time)
        })
        .collect();
    process_events(parsed, Scope::Project, &mut outcome);
    outcome
}

/// An export ready for a store: its rows, and the spans (events) it rejected.
#[derive(Debug, Default)]
pub struct PreparedExport {
    /// The rows.
    pub batch: PreparedBatch,
    /// Rejected events: id (a span id, `<span id>-trace` for its trace) and why.
    pub errors: Vec<(String, EventError)>,
}

/// Decodes an export and maps its spans straight to rows: the same rows, in the same order,
/// as [`process`] followed by [`PreparedBatch::new`], without building an ingestion event (a
/// JSON map per field) for every span and folding them again. An export that repeats a span
/// id (rare) takes that path, whose per-event merge it needs.
pub fn prepare(
    content_type: &str,
    content_encoding: Option<&str>,
    body: &[u8],
    pricing: &Pricing,
    now: i64,
) -> Result<PreparedExport, OtlpBodyError> {
    let mut storage = ExportStorage::default();
    let view = decode_view(content_type, content_encoding, body, &mut storage)?;
    Ok(prepare_view(&view, pricing, now))
}

/// [`prepare`] of a decoded export.
pub fn prepare_request(
    request: &ExportTraceServiceRequest,
    pricing: &Pricing,
    now: i64,
) -> PreparedExport {
    prepare_view(&ExportView::of(request), pricing, now)
}

/// [`prepare`] of a decoded export's view.
pub fn prepare_view(request: &ExportView<'_>, pricing: &Pricing, now: i64) -> PreparedExport {
    let spans = mapping::map_export(request);
    let mut span_ids = HashSet::with_capacity(spans.len());
    if !spans
        .iter()
        .all(|span| span_ids.insert(span.observation.id.as_str()))
    {
        let outcome = process_request(&request.to_request());
        return PreparedExport {
            batch: PreparedBatch::new(outcome.writes, pricing, now),
            errors: outcome.errors,
        };
    }
    drop(span_ids);

    // Which shallow trace events the event path keeps: the first of a trace that no span
    // names (decided in export order).
    let named: HashSet<&str> = spans
        .iter()
        .filter(|span| span.trace.role != TraceRole::Shallow)
        .map(|span| span.observation.trace_id.as_str())
        .collect();
    let mut shallow_seen = HashSet::new();
    let keeps_shallow: Vec<bool> = spans
        .iter()
        .map(|span| {
            let trace_id = span.observation.trace_id.as_str();
            span.trace.role == TraceRole::Shallow
                && !named.contains(trace_id)
                && shallow_seen.insert(trace_id)
        })
        .collect();
    drop((named, shallow_seen));

    // Langfuse's processing order: by start time (the events' envelope time), then position.
    // The order is sorted, not the spans: a mapped span is most of a kilobyte, and moving 512
    // of them into a sorted copy wrote half a megabyte of fresh memory per request.
    let mut order: Vec<(i64, usize)> = spans
        .iter()
        .enumerate()
        .map(|(index, span)| {
            let start = canonical_time::parse(&span.observation.start_time)
                .map(|time| time.timestamp_micros())
                .unwrap_or(i64::MAX);
            (start, index)
        })
        .collect();
    order.sort_unstable();
    let mut spans: Vec<Option<MappedSpan>> = spans.into_iter().map(Some).collect();

    let mut export = PreparedExport::default();
    export.batch.observations.reserve_exact(order.len());
    let mut traces = TraceFold::default();
    for (_, index) in order {
        let Some(MappedSpan {
            mut observation,
            trace,
        }) = spans[index].take()
        else {
            continue;
        };
        let keeps_shallow = keeps_shallow[index];
        observation.environment = normal_environment(std::mem::take(&mut observation.environment));
        if trace.role != TraceRole::Shallow || keeps_shallow {
            match trace_fields(&observation, trace) {
                Ok(fields) => traces.absorb_write(&observation, fields),
                Err(error) => export
                    .errors
                    .push((format!("{}-trace", observation.id), error)),
            }
        }
        match normalise_observation(&mut observation) {
            Ok(()) => {
                // The placeholder every observation makes for its trace (folding it changes
                // nothing when the trace was written just before).
                traces.absorb_placeholder(&observation);
                export
                    .batch
                    .observations
                    .push(rows::span_observation_row(observation, pricing));
            }
            Err(error) => export.errors.push((observation.id, error)),
        }
    }
    export.batch.traces = traces
        .traces
        .into_iter()
        .map(TraceFields::into_prepared)
        .collect();
    export
}

/// An export's traces, each write of one folded into the first (see
/// [`TraceFields::absorb_fields`]).
#[derive(Default)]
struct TraceFold {
    traces: Vec<TraceFields>,
    index: HashMap<String, usize>,
}

impl TraceFold {
    /// Folds what `observation`'s span writes of its trace ([`trace_fields`], whose id,
    /// timestamp and environment are the observation's).
    fn absorb_write(&mut self, observation: &SpanObservation, mut fields: TraceFields) {
        match self.index.get(observation.trace_id.as_str()) {
            Some(&at) => {
                let trace = &mut self.traces[at];
                trace.absorb_placeholder(&observation.start_time, &observation.environment);
                trace.absorb_fields(fields);
            }
            None => {
                fields.id.clone_from(&observation.trace_id);
                fields.timestamp.clone_from(&observation.start_time);
                fields.environment.clone_from(&observation.environment);
                self.index.insert(fields.id.clone(), self.traces.len());
                self.traces.push(fields);
            }
        }
    }

    /// Folds the placeholder `observation` makes for its trace.
    fn absorb_placeholder(&mut self, observation: &SpanObservation) {
        match self.index.get(observation.trace_id.as_str()) {
            Some(&at) => self.traces[at]
                .absorb_placeholder(&observation.start_time, &observation.environment),
            None => {
                let placeholder =
                    TraceFields::placeholder(String::new(), String::new(), String::new());
                self.absorb_write(observation, placeholder);
            }
        }
    }
}

/// What a span's `trace-create` event would write, validated as that event is.
fn trace_fields(
    observation: &SpanObservation,
    trace: SpanTrace,
) -> Result<TraceFields, EventError> {
    check_id_text(&observation.trace_id, "body.id")?;
    // Id, timestamp and environment are the observation's: `TraceFold::absorb_write` fills
    // them in for a trace it has not seen, and folds them without copies into one it has.
    let mut fields = TraceFields::placeholder(String::new(), String::new(), String::new());
    if trace.role == TraceRole::Shallow {
        return Ok(fields);
    }
    if let Some(name) = &trace.name {
        check_trace_name(name)?;
    }
    let mut metadata = trace.metadata;
    if trace.role == TraceRole::Root {
        // The root span's metadata beneath the trace's own (`SpanMetadata::fill_under`), the
        // objects the export shares by reference.
        let span_metadata = &observation.metadata;
        for (key, object) in [
            ("resourceAttributes", &span_metadata.resource),
            ("scope", &span_metadata.scope),
        ] {
            if !metadata.contains_key(key) {
                fields.shared_metadata.push((key, Arc::clone(object)));
            }
        }
        let others = span_metadata
            .attributes
            .iter()
            .map(|value| ("attributes", value));
        let entries = span_metadata
            .entries
            .iter()
            .filter(|(key, _)| !span_metadata.is_fixed(key))
            .map(|(key, value)| (key.as_str(), value));
        for (key, value) in others.chain(entries) {
            if !metadata.contains_key(key) {
                metadata.insert(key.to_owned(), value.clone());
            }
        }
    }
    fields.name = trace.name;
    fields.user_id = trace.user_id;
    fields.session_id = trace.session_id;
    fields.release = trace.release;
    fields.version = trace.version;
    fields.public = trace.public;
    fields.tags = trace.tags;
    fields.metadata = (!metadata.is_empty()).then_some(metadata);
    fields.io = without_empty(trace.io);
    Ok(fields)
}

/// What a span's observation event would write, validated and normalised as that event is.
fn normalise_observation(observation: &mut SpanObservation) -> Result<(), EventError> {
    check_id_text(&observation.id, "body.id")?;
    check_id_text(&observation.trace_id, "body.traceId")?;
    if let Some(text) = observation.completion_start_time.take() {
        observation.completion_start_time = Some(canonical_time_text(text, "completionStartTime")?);
    }
    if observation.usage_details.is_some() || observation.cost_details.is_some() {
        let usage = observation.usage_details.take().map(Value::Object);
        let cost = observation.cost_details.take().map(Value::Object);
        let (usage, cost) = usage_and_cost_of(None, usage.as_ref(), cost.as_ref())?;
        observation.usage_details = (!usage.is_empty()).then_some(usage);
        observation.cost_details = (!cost.is_empty()).then_some(cost);
    }
    observation.io = without_empty(std::mem::take(&mut observation.io));
    Ok(())
}
