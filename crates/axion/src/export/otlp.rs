//! OTLP/HTTP trace export, shared by the `langfuse`, `otel` (and later `logfire`) providers.
//!
//! The worker turns each batch into one `ExportTraceServiceRequest` with the attribute
//! vocabulary of the backend ([`Convention`]), encodes it (protobuf or JSON), optionally gzips
//! it and sends it with retries. A trace record rides on a span of its trace in the same batch
//! (the root when present); a trace update whose spans already left is handed to the
//! exporter's [`SideChannel`] (Langfuse: the ingestion API) or, without one, sent as a
//! zero-duration `trace-update` span.

use std::collections::HashMap;

use axion_model::otlp::{
    export_request, io_attributes, io_keys, observation_to_span, trace_update_span, Convention,
    ExportResource, Span,
};
use axion_model::{Observation, Record, Score, Trace};
use prost::Message;

use super::http::{gzip, HttpSender, Outgoing};
use super::pipeline::{Delivery, Exporter};
use crate::error::{Error, Result};
use crate::provider::RawRecord;

/// OTLP body encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// `application/x-protobuf` (default).
    Protobuf,
    /// `application/json` (OTLP/JSON).
    Json,
}

/// Where records that OTLP cannot carry go (scores; trace updates without a span).
pub trait SideChannel: Send + 'static {
    /// Delivers them; an error drops them (counted with the batch).
    fn send(&mut self, traces: Vec<Trace>, scores: Vec<Score>) -> Result<()>;
}

/// Ships batches as OTLP/HTTP.
pub struct OtlpExporter {
    endpoint: String,
    headers: Vec<(String, String)>,
    protocol: OtlpProtocol,
    compress: bool,
    convention: Convention,
    resource: ExportResource,
    sender: HttpSender,
    side_channel: Option<Box<dyn SideChannel>>,
    warned_scores: bool,
    /// Where the protobuf spans of a request are written (see `protobuf_body`).
    spans_buffer: Vec<u8>,
}

impl std::fmt::Debug for OtlpExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpExporter")
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl OtlpExporter {
    /// An exporter posting to `endpoint` (the full `/v1/traces` URL).
    pub fn new(
        endpoint: String,
        headers: Vec<(String, String)>,
        protocol: OtlpProtocol,
        compress: bool,
        convention: Convention,
        resource: ExportResource,
        sender: HttpSender,
    ) -> Self {
        Self {
            endpoint,
            headers,
            protocol,
            compress,
            convention,
            resource,
            sender,
            side_channel: None,
            warned_scores: false,
            spans_buffer: Vec::new(),
        }
    }

    /// Routes scores and orphan trace updates to `channel`.
    pub fn with_side_channel(mut self, channel: impl SideChannel) -> Self {
        self.side_channel = Some(Box::new(channel));
        self
    }

    fn encode(&mut self, spans: Vec<(Span, Option<Io>)>) -> Unsent {
        let (body, content_type) = match self.protocol {
            OtlpProtocol::Protobuf => {
                let mut spans = spans;
                let out = &mut self.spans_buffer;
                let head = protobuf_body(&mut spans, &self.resource, self.convention, out);
                super::reaper::discard(spans);
                let body = [&head, out.as_slice()].concat();
                if out.capacity() > MAX_KEPT_BUFFER {
                    // A batch of unusually large spans: not worth holding on to.
                    *out = Vec::new();
                }
                (body, "application/x-protobuf")
            }
            OtlpProtocol::Json => {
                let spans = with_io_attributes(spans, self.convention);
                let request = export_request(spans, &self.resource, self.convention);
                let body = otlp_json(&request).to_string().into_bytes();
                super::reaper::discard(request);
                (body, "application/json")
            }
        };
        Unsent {
            request: Outgoing {
                method: "POST",
                url: self.endpoint.clone(),
                content_type,
                gzip: false,
                headers: self.headers.clone(),
                body,
            },
            compress: self.compress,
        }
    }
}

/// The largest spans buffer an exporter keeps between batches (a default batch of spans with
/// 1 KB input and output takes about 1.3 MB).
const MAX_KEPT_BUFFER: usize = 8 << 20;

/// A span's input and output, still as captured (serialised where the request is encoded).
type Io = (Option<crate::Payload>, Option<crate::Payload>);

/// The spans with their input and output as attributes (the path that builds whole
/// messages: OTLP/JSON).
fn with_io_attributes(spans: Vec<(Span, Option<Io>)>, convention: Convention) -> Vec<Span> {
    spans
        .into_iter()
        .map(|(mut span, io)| {
            if let Some((input, output)) = io {
                let text = |payload: Option<crate::Payload>| payload.map(|p| p.to_json_string());
                span.attributes
                    .extend(io_attributes(convention, text(input), text(output)));
            }
            span
        })
        .collect()
}

/// Starts a length-delimited field of `len` bytes: its key and its length.
fn put_field_head(out: &mut Vec<u8>, field: u32, len: usize) {
    use prost::encoding::{encode_key, encode_varint, WireType};
    encode_key(field, WireType::LengthDelimited, out);
    encode_varint(len as u64, out);
}

/// The bytes of a length-delimited field holding `len` bytes: key (one byte, every field
/// written here being below 16), length, contents.
fn field_len(len: usize) -> usize {
    1 + prost::encoding::encoded_len_varint(len as u64) + len
}

fn put_field(out: &mut Vec<u8>, field: u32, contents: &[u8]) {
    put_field_head(out, field, contents.len());
    out.extend_from_slice(contents);
}

/// The length of a `KeyValue` whose value is a string of `value_len` bytes.
fn string_kv_len(key: &str, value_len: usize) -> usize {
    field_len(key.len()) + field_len(field_len(value_len))
}

/// Appends a span attribute (`Span.attributes`, field 9) with a string value.
fn put_string_attribute(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    put_field_head(out, 9, string_kv_len(key, value.len()));
    put_field(out, 1, key.as_bytes());
    put_field_head(out, 2, field_len(value.len())); // KeyValue.value: AnyValue
    put_field(out, 1, value); // AnyValue.string_value
}

/// The protobuf encoding of an `ExportTraceServiceRequest` holding `spans`, in two parts to
/// send one after the other: the envelope (resource and scope), returned, and the spans,
/// written to `out` (cleared first; kept by the exporter from batch to batch, so that a
/// megabyte of spans is not regrown from nothing for every request). Each span is
/// encoded by prost without its input and output, which are written as its last attributes
/// straight from the captured values: the kilobytes of JSON they hold never become strings
/// of their own, and are copied once. Byte for byte what prost writes for the request that
/// [`export_request`] builds with [`io_attributes`] (a test compares them).
fn protobuf_body(
    spans: &mut [(Span, Option<Io>)],
    resource: &ExportResource,
    convention: Convention,
    out: &mut Vec<u8>,
) -> Vec<u8> {
    const JSON_MIME: &[u8] = b"application/json";
    let (input_key, output_key, mime) = io_keys(convention);
    let attribute_len = |key: &str, value_len: usize| field_len(string_kv_len(key, value_len));
    out.clear();
    // Input, then output: the attribute key, the mime type's key, the JSON text.
    let mut texts = [
        (input_key, "input.mime_type", Vec::new()),
        (output_key, "output.mime_type", Vec::new()),
    ];
    for (span, io) in spans.iter_mut() {
        let payloads = match io {
            Some((input, output)) => [input.as_ref(), output.as_ref()],
            None => [None, None],
        };
        let mut extra = 0;
        for ((key, mime_key, text), payload) in texts.iter_mut().zip(payloads) {
            text.clear();
            if let Some(payload) = payload {
                payload.write_json(text);
                extra += attribute_len(key, text.len());
                if mime {
                    extra += attribute_len(mime_key, JSON_MIME.len());
                }
            }
        }
        // The fields after the attributes, moved to a span of their own, so that the input
        // and output go where prost would put them: after the other attributes.
        let tail = Span {
            events: std::mem::take(&mut span.events),
            dropped_events_count: std::mem::take(&mut span.dropped_events_count),
            links: std::mem::take(&mut span.links),
            dropped_links_count: std::mem::take(&mut span.dropped_links_count),
            status: span.status.take(),
            flags: std::mem::take(&mut span.flags),
            ..Default::default()
        };
        // ScopeSpans.spans
        put_field_head(out, 2, span.encoded_len() + extra + tail.encoded_len());
        span.encode_raw(out);
        for ((key, mime_key, text), payload) in texts.iter().zip(payloads) {
            if payload.is_some() {
                put_string_attribute(out, key, text);
                if mime {
                    put_string_attribute(out, mime_key, JSON_MIME);
                }
            }
        }
        tail.encode_raw(out);
    }
    let envelope = export_request(Vec::new(), resource, convention);
    let resource_spans = &envelope.resource_spans[0];
    let resource = resource_spans
        .resource
        .as_ref()
        .map(Message::encode_to_vec)
        .unwrap_or_default();
    let scope = resource_spans.scope_spans[0]
        .scope
        .as_ref()
        .map(Message::encode_to_vec)
        .unwrap_or_default();
    let scope_spans_len = field_len(scope.len()) + out.len();
    let mut head = Vec::with_capacity(resource.len() + scope.len() + 16);
    // ExportTraceServiceRequest.resource_spans
    put_field_head(
        &mut head,
        1,
        field_len(resource.len()) + field_len(scope_spans_len),
    );
    put_field(&mut head, 1, &resource); // ResourceSpans.resource
    put_field_head(&mut head, 2, scope_spans_len); // ResourceSpans.scope_spans
    put_field(&mut head, 1, &scope); // ScopeSpans.scope
    head
}

/// Splits a batch into observations, traces (merged per id, in order) and scores.
pub(crate) fn split(batch: Vec<RawRecord>) -> (Vec<Observation>, Vec<Trace>, Vec<Score>) {
    let mut observations = Vec::with_capacity(batch.len());
    let mut traces: Vec<Trace> = Vec::new();
    let mut trace_index: HashMap<String, usize> = HashMap::with_capacity(batch.len() / 2);
    let mut scores = Vec::new();
    for record in batch {
        match record.into_model() {
            Record::Observation(observation) => observations.push(observation),
            Record::Trace(trace) => match trace_index.get(&trace.id) {
                Some(&at) => merge_trace(&mut traces[at], trace),
                None => {
                    trace_index.insert(trace.id.clone(), traces.len());
                    traces.push(trace);
                }
            },
            Record::Score(score) => scores.push(score),
            _ => {}
        }
    }
    (observations, traces, scores)
}

fn merge_trace(into: &mut Trace, later: Trace) {
    macro_rules! take {
        ($($field:ident),*) => { $( if later.$field.is_some() { into.$field = later.$field; } )* };
    }
    take!(
        timestamp,
        name,
        user_id,
        session_id,
        metadata,
        input,
        output,
        environment,
        release,
        version,
        public
    );
    for tag in later.tags {
        if !into.tags.contains(&tag) {
            into.tags.push(tag);
        }
    }
}

impl Exporter for OtlpExporter {
    fn export(&mut self, batch: Vec<RawRecord>) -> Result<()> {
        let (spans, side) = self.prepare(batch)?;
        let sent = match spans {
            Some(unsent) => self.sender.send(&unsent.ready()).map(|_| ()),
            None => Ok(()),
        };
        sent.and(side)
    }

    fn export_deferred(&mut self, batch: Vec<RawRecord>) -> Result<Option<Delivery>> {
        // OTLP batches may arrive in any order: the span request can be compressed and sent
        // while the next batch is encoded. Scores and orphan traces (the side channel) went
        // out in `prepare`.
        match self.prepare(batch)? {
            (Some(unsent), Ok(())) => {
                let sender = self.sender.clone();
                Ok(Some(Delivery::new(move || {
                    sender.send(&unsent.ready()).map(|_| ())
                })))
            }
            (Some(unsent), Err(error)) => {
                let _ = self.sender.send(&unsent.ready());
                Err(error)
            }
            (None, side) => side.map(|()| None),
        }
    }
}

/// An encoded request whose body is compressed where it is sent: on a sender thread, while
/// the worker encodes the next batch (gzip was a quarter of the worker's time).
struct Unsent {
    request: Outgoing,
    compress: bool,
}

impl Unsent {
    /// The request as it goes on the wire.
    fn ready(self) -> Outgoing {
        let Self {
            mut request,
            compress,
        } = self;
        if compress {
            request.body = gzip(&request.body);
            request.gzip = true;
        }
        request
    }
}

impl OtlpExporter {
    /// Encodes a batch: the span request (if any spans), and the outcome of the side channel
    /// (scores, traces without spans here), which is sent right away.
    fn prepare(&mut self, batch: Vec<RawRecord>) -> Result<(Option<Unsent>, Result<()>)> {
        // Input and output go straight from the captured values to JSON text (no JSON tree in
        // between), except for Logfire, whose attributes need the structure.
        let direct_io = self.convention != Convention::Logfire;
        // A trace whose input/output default to its root span's (the same capture) need not
        // carry them again: backends take the trace's I/O from the root span.
        let mut batch = batch;
        let roots: HashMap<axion_model::TraceId, Io> = batch
            .iter()
            .filter_map(|record| match record {
                RawRecord::Observation(o) if direct_io && o.parent_id.is_none() => {
                    // Only a shared capture can be the trace's too (cloning it is cheap).
                    let shared = |payload: &Option<crate::Payload>| {
                        payload.as_ref().filter(|p| p.is_shared()).cloned()
                    };
                    Some((o.trace_id, (shared(&o.input), shared(&o.output))))
                }
                _ => None,
            })
            .collect();
        if direct_io {
            for record in &mut batch {
                if let RawRecord::Trace(trace) = record {
                    if let Some((input, output)) = roots.get(&trace.id) {
                        let same = |a: &Option<crate::Payload>, b: &Option<crate::Payload>| matches!((a, b), (Some(a), Some(b)) if a.same_as(b));
                        if same(&trace.input, input) {
                            trace.input = None;
                        }
                        if same(&trace.output, output) {
                            trace.output = None;
                        }
                    }
                }
            }
        }
        let mut io: Vec<Io> = Vec::new();
        let batch: Vec<RawRecord> = batch
            .into_iter()
            .map(|record| match record {
                RawRecord::Observation(mut observation) if direct_io => {
                    io.push((observation.input.take(), observation.output.take()));
                    RawRecord::Observation(observation)
                }
                other => other,
            })
            .collect();
        let (observations, traces, scores) = split(batch);
        // Each trace rides on one span of this batch: its root span when the root is here,
        // else the first of its spans. `carried[span]` is the trace a span carries.
        let mut carried: Vec<Option<usize>> = vec![None; observations.len()];
        {
            let slots: HashMap<&str, usize> = traces
                .iter()
                .enumerate()
                .map(|(slot, trace)| (trace.id.as_str(), slot))
                .collect();
            let mut carrier: Vec<Option<usize>> = vec![None; traces.len()];
            for (index, observation) in observations.iter().enumerate() {
                let Some(&slot) = slots.get(observation.trace_id.as_str()) else {
                    continue;
                };
                let is_root = observation.parent_observation_id.is_none();
                match carrier[slot] {
                    Some(at) if !is_root || observations[at].parent_observation_id.is_none() => {}
                    _ => carrier[slot] = Some(index),
                }
            }
            for (slot, at) in carrier.into_iter().enumerate() {
                if let Some(at) = at {
                    carried[at] = Some(slot);
                }
            }
        }
        let mut traces: Vec<Option<Trace>> = traces.into_iter().map(Some).collect();
        let mut spans = Vec::with_capacity(observations.len() + 1);
        let mut io = io.into_iter();
        for (observation, slot) in observations.iter().zip(&carried) {
            let trace = slot.and_then(|slot| traces[slot].take());
            let span = observation_to_span(observation, trace.as_ref(), self.convention);
            spans.push((span, if direct_io { io.next() } else { None }));
        }
        // Traces none of whose spans are in this batch, in the order they came.
        let orphans: Vec<Trace> = traces.into_iter().flatten().collect();
        let mut side_traces = Vec::new();
        match &self.side_channel {
            Some(_) => side_traces = orphans,
            None => spans.extend(
                orphans
                    .iter()
                    .map(|trace| (trace_update_span(trace, self.convention), None)),
            ),
        }
        // The captured values are freed elsewhere (the last references are in `roots`).
        super::reaper::discard((roots, observations));
        let outgoing = (!spans.is_empty()).then(|| self.encode(spans));
        let mut side = Ok(());
        match &mut self.side_channel {
            Some(channel) if !side_traces.is_empty() || !scores.is_empty() => {
                side = channel.send(side_traces, scores);
            }
            Some(_) => {}
            None if !scores.is_empty() && !self.warned_scores => {
                self.warned_scores = true;
                crate::config::warn(&format!(
                    "{} scores were not sent: OTLP has no scores (use the langfuse or opik provider for scores)",
                    scores.len()
                ));
            }
            None => {}
        }
        Ok((outgoing, side))
    }
}

/// OTLP/JSON for a request: lowerCamelCase keys, hex ids, int64 as strings, enums as numbers.
pub(crate) fn otlp_json(
    request: &axion_model::otlp::ExportTraceServiceRequest,
) -> serde_json::Value {
    use axion_model::otlp::{any_value::Value as V, AnyValue, KeyValue};
    use serde_json::{json, Value};
    fn any(value: &AnyValue) -> Value {
        match &value.value {
            Some(V::StringValue(text)) => json!({"stringValue": text}),
            Some(V::BoolValue(flag)) => json!({"boolValue": flag}),
            Some(V::IntValue(int)) => json!({"intValue": int.to_string()}),
            Some(V::DoubleValue(double)) => json!({"doubleValue": double}),
            Some(V::ArrayValue(array)) => {
                json!({"arrayValue": {"values": array.values.iter().map(any).collect::<Vec<_>>()}})
            }
            Some(V::KvlistValue(list)) => {
                json!({"kvlistValue": {"values": attributes(&list.values)}})
            }
            Some(V::BytesValue(bytes)) => json!({"bytesValue": axion_model::to_hex(bytes)}),
            None => json!({}),
        }
    }
    fn attributes(pairs: &[KeyValue]) -> Vec<Value> {
        pairs
            .iter()
            .map(|pair| json!({"key": pair.key, "value": pair.value.as_ref().map(any).unwrap_or(json!({}))}))
            .collect()
    }
    let resource_spans: Vec<Value> = request
        .resource_spans
        .iter()
        .map(|resource_spans| {
            let scope_spans: Vec<Value> = resource_spans
                .scope_spans
                .iter()
                .map(|scope_spans| {
                    let spans: Vec<Value> = scope_spans
                        .spans
                        .iter()
                        .map(|span| {
                            let mut out = json!({
                                "traceId": axion_model::to_hex(&span.trace_id),
                                "spanId": axion_model::to_hex(&span.span_id),
                                "name": span.name, "kind": span.kind,
                                "startTimeUnixNano": span.start_time_unix_nano.to_string(),
                                "endTimeUnixNano": span.end_time_unix_nano.to_string(),
                                "attributes": attributes(&span.attributes),
                                "flags": span.flags,
                            });
                            if !span.parent_span_id.is_empty() {
                                out["parentSpanId"] =
                                    json!(axion_model::to_hex(&span.parent_span_id));
                            }
                            if let Some(status) = &span.status {
                                out["status"] =
                                    json!({"code": status.code, "message": status.message});
                            }
                            out
                        })
                        .collect();
                    let scope = scope_spans
                        .scope
                        .as_ref()
                        .map(|scope| json!({"name": scope.name, "version": scope.version}));
                    json!({"scope": scope, "spans": spans})
                })
                .collect();
            let resource = resource_spans
                .resource
                .as_ref()
                .map(|resource| json!({"attributes": attributes(&resource.attributes)}));
            json!({"resource": resource, "scopeSpans": scope_spans})
        })
        .collect();
    json!({"resourceSpans": resource_spans})
}

/// `Error::Export` for configuration problems found while building an exporter.
pub(crate) fn invalid(setting: &str, value: &str, reason: &str) -> Error {
    Error::InvalidSetting {
        setting: setting.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{RawObservation, RawTrace};
    use axion_model::otlp::{decode_protobuf, ExportResource};
    use axion_model::{SpanId, TraceId};
    use std::time::SystemTime;

    fn exporter() -> OtlpExporter {
        let resource = ExportResource {
            service_name: "test".into(),
            environment: None,
            release: None,
            attributes: Vec::new(),
            scope: ("axion".into(), "0".into()),
        };
        OtlpExporter::new(
            "http://127.0.0.1:9/v1/traces".into(),
            Vec::new(),
            OtlpProtocol::Protobuf,
            false,
            Convention::Langfuse,
            resource,
            HttpSender::new("test", Default::default()),
        )
    }

    fn span(id: u8, trace: TraceId, parent: Option<u8>, name: &'static str) -> RawRecord {
        let parent = parent.map(|parent| SpanId::from_bytes([parent; 8]));
        RawRecord::Observation(Box::new(RawObservation::started(
            SpanId::from_bytes([id; 8]),
            trace,
            parent,
            name.into(),
            SystemTime::now(),
        )))
    }

    fn trace(id: TraceId, name: &str) -> RawRecord {
        let mut trace = RawTrace::new(id);
        trace.name = Some(name.to_owned().into());
        RawRecord::Trace(Box::new(trace))
    }

    /// Spans with every shape of input and output: none, one side, both; JSON kept in place,
    /// shared, a string literal, any serialisable value; lengths whose varints take one, two
    /// and three bytes.
    fn spans_with_io() -> Vec<(Span, Option<Io>)> {
        use crate::Payload;
        #[derive(serde::Serialize)]
        struct Question {
            text: String,
            tries: u32,
        }
        let observation = |id: u8| {
            let mut observation = RawObservation::started(
                SpanId::from_bytes([id; 8]),
                TraceId::from_bytes([id; 16]),
                None,
                "step".into(),
                SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
            );
            observation.end_time = Some(observation.start_time);
            observation
        };
        let mut shared = Payload::new(
            serde_json::json!({"messages": [{"role": "user", "content": "é€😀 \"q\""}]}),
        );
        let ios: Vec<Option<Io>> = vec![
            None,
            Some((None, None)),
            Some((Some(Payload::new("x".repeat(100))), None)),
            Some((
                None,
                Some(Payload::new(serde_json::json!({"answer": "y".repeat(300)}))),
            )),
            Some((Some(shared.share()), Some(shared))),
            Some((
                Some(Payload::new("a literal")),
                Some(Payload::new(Question {
                    text: "z".repeat(20_000),
                    tries: 3,
                })),
            )),
        ];
        ios.into_iter()
            .enumerate()
            .map(|(index, io)| {
                let mut observation = observation(index as u8 + 1);
                if index == 4 {
                    // A failed span: its status comes after the attributes.
                    observation.level = axion_model::ObservationLevel::Error;
                    observation.status_message = Some("timed out".into());
                }
                let model = observation.into_model();
                (observation_to_span(&model, None, Convention::Langfuse), io)
            })
            .collect()
    }

    #[test]
    fn the_protobuf_body_decodes_to_the_request_built_whole() {
        use prost::Message as _;
        for convention in [Convention::Langfuse, Convention::GenAi] {
            let resource = ExportResource {
                service_name: "svc".into(),
                environment: Some("staging".into()),
                release: Some("1.2".into()),
                attributes: vec![("team".into(), "evals".into())],
                scope: ("axion".into(), "0.1.0".into()),
            };
            let mut spans = vec![0xff; 10]; // left over from an earlier batch
            let head = protobuf_body(&mut spans_with_io(), &resource, convention, &mut spans);
            let ours = [head, spans].concat();
            let whole = export_request(
                with_io_attributes(spans_with_io(), convention),
                &resource,
                convention,
            );
            let decoded = axion_model::otlp::ExportTraceServiceRequest::decode(ours.as_slice());
            assert!(
                decoded.unwrap() == whole,
                "{convention:?}: decodes to another request"
            );
            assert!(
                ours == whole.encode_to_vec(),
                "{convention:?}: other bytes than prost's"
            );
        }
    }

    #[test]
    fn a_trace_rides_on_its_root_span_and_an_orphan_on_a_span_of_its_own() {
        let (first, second) = (TraceId::from_bytes([1; 16]), TraceId::from_bytes([2; 16]));
        let batch = vec![
            span(11, first, Some(10), "child"),
            span(10, first, None, "root"),
            trace(first, "first trace"),
            trace(second, "orphan trace"),
        ];
        let (outgoing, side) = exporter().prepare(batch).unwrap();
        side.unwrap();
        let request = decode_protobuf(&outgoing.expect("spans to send").ready().body).unwrap();
        let spans = &request.resource_spans[0].scope_spans[0].spans;
        let trace_name = |span: &axion_model::otlp::Span| {
            span.attributes
                .iter()
                .find(|kv| kv.key == "langfuse.trace.name")
                .and_then(|kv| kv.value.as_ref())
                .and_then(|value| match &value.value {
                    Some(axion_model::otlp::any_value::Value::StringValue(text)) => {
                        Some(text.clone())
                    }
                    _ => None,
                })
        };
        let names: Vec<(&str, Option<String>)> = spans
            .iter()
            .map(|span| (span.name.as_str(), trace_name(span)))
            .collect();
        assert_eq!(
            names[0],
            ("child", None),
            "the root is here: the child carries nothing"
        );
        assert_eq!(names[1], ("root", Some("first trace".into())));
        assert_eq!(
            names.len(),
            3,
            "the orphan becomes a span of its own: {names:?}"
        );
        assert_eq!(names[2].1.as_deref(), Some("orphan trace"));
    }
}
