//! The seam between the tracing API and the backends: [`BaseTracer`] receives what tracers
//! emit ([`RawRecord`]s) and is responsible for getting them somewhere.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axion_model::{
    JsonMap, Observation, ObservationLevel, ObservationType, Record, Score, SpanId, Timestamp,
    Trace, TraceId,
};
use serde_json::Value;

use crate::payload::Payload;
use crate::Result;

/// A tracing backend: where the spans, trace updates and scores of a [`Tracer`](crate::Tracer)
/// go. Built-in providers are registered in the [`TracerRegistry`](crate::TracerRegistry) under
/// `noop`, `console`, `langfuse`, `opik`, `logfire` and `otel`; register your own under a new name
/// and select it with [`configure_tracing`](crate::configure_tracing).
///
/// The span API itself (nesting, context, statistics) lives in [`Tracer`](crate::Tracer) and is
/// the same for every provider, so a provider only decides what happens to finished records.
/// [`export`](Self::export) is called on the application's thread: hand the record to a queue
/// and return; do serialisation and I/O elsewhere (see [`RawRecord::into_model`]).
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use axion::{BaseTracer, RawRecord};
///
/// #[derive(Default)]
/// struct Collect(Mutex<Vec<axion_model::Record>>);
///
/// impl BaseTracer for Collect {
///     fn name(&self) -> &str { "collect" }
///     fn export(&self, record: RawRecord) {
///         self.0.lock().unwrap().push(record.into_model());
///     }
/// }
///
/// let sink = Arc::new(Collect::default());
/// let tracer = axion::Tracer::builder(axion::MetadataType::Base).provider(sink.clone()).build();
/// drop(tracer.span("work"));
/// assert_eq!(sink.0.lock().unwrap().len(), 2); // the observation and its trace
/// ```
pub trait BaseTracer: Send + Sync + 'static {
    /// The provider's name, as registered.
    fn name(&self) -> &str;

    /// `false` makes every span of tracers using this provider a no-op that costs nothing.
    fn is_recording(&self) -> bool {
        true
    }

    /// Takes one finished record. Must not block.
    fn export(&self, record: RawRecord);

    /// Delivers everything exported so far, waiting at most `timeout`.
    fn flush(&self, timeout: Duration) -> Result<FlushReport> {
        let _ = timeout;
        Ok(FlushReport::default())
    }

    /// Flushes, then releases resources; later exports are dropped and counted.
    fn shutdown(&self, timeout: Duration) -> Result<FlushReport> {
        self.flush(timeout)
    }

    /// Counters of the export pipeline.
    fn export_stats(&self) -> ExportStats {
        ExportStats::default()
    }

    /// Takes a finished root span together with its trace. The default hands both to
    /// [`export`](Self::export) as two records ([`RawRoot::into_records`]); a provider that
    /// queues records can keep them as one entry and split them off the caller's thread.
    fn export_root(&self, root: Box<RawRoot>) {
        let [observation, trace] = root.into_records();
        self.export(observation);
        self.export(trace);
    }

    /// Takes a finished root span, with its trace's update when anything was set on the trace
    /// (the tracer's trace defaults, `update_current_trace`); without one, the trace is made of
    /// the span's defaults alone. The default joins the two into a [`RawRoot`] for
    /// [`export_root`](Self::export_root); a provider that queues records can keep them apart
    /// and join them off the caller's thread ([`RawRoot::from_parts`]).
    fn export_root_span(&self, observation: Box<RawObservation>, trace: Option<Box<RawTrace>>) {
        self.export_root(Box::new(RawRoot::from_parts(*observation, trace)));
    }
}

/// What a flush achieved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlushReport {
    /// Records delivered by this flush.
    pub exported: u64,
    /// Records dropped since the provider started (queue full, export failed, after shutdown).
    pub dropped_total: u64,
}

/// Counters of an export pipeline, since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportStats {
    /// Records accepted into the queue.
    pub queued: u64,
    /// Records delivered.
    pub exported: u64,
    /// Records dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Records dropped because the backend refused them or could not be reached.
    pub dropped_export_failed: u64,
    /// Records dropped because the provider was shut down.
    pub dropped_after_shutdown: u64,
}

impl ExportStats {
    /// All drops, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full + self.dropped_export_failed + self.dropped_after_shutdown
    }
}

/// The provider that drops everything, at the cost of one atomic load per span.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopTracer;

impl BaseTracer for NoopTracer {
    fn name(&self) -> &str {
        "noop"
    }
    fn is_recording(&self) -> bool {
        false
    }
    fn export(&self, _record: RawRecord) {}
}

/// A record as a tracer emits it: ids still binary, times still `SystemTime`, values not yet
/// serialised. [`into_model`](Self::into_model) turns it into the wire model; call it in a
/// background worker.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum RawRecord {
    /// A finished observation (span, generation, event, …).
    Observation(Box<RawObservation>),
    /// A trace, or an update of one.
    Trace(Box<RawTrace>),
    /// A score.
    Score(Box<Score>),
}

impl RawRecord {
    /// Serialises the captured values and converts to the shared model.
    pub fn into_model(self) -> Record {
        match self {
            // The emptied allocations go back to the span records' pools (see `recycle`).
            RawRecord::Observation(observation) => {
                Record::Observation(crate::recycle::observation_contents(observation).into_model())
            }
            RawRecord::Trace(trace) => {
                Record::Trace(crate::recycle::trace_contents(trace).into_model())
            }
            RawRecord::Score(score) => Record::Score(*score),
        }
    }
}

/// A root span as it ends, with its trace. The trace's name, timestamp, environment, input
/// and output, when never set, are the root span's; they are filled in by
/// [`into_records`](Self::into_records).
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use axion::{BaseTracer, RawRecord, RawRoot};
///
/// /// Keeps root spans whole; other records one by one.
/// #[derive(Default)]
/// struct Roots(Mutex<Vec<RawRoot>>);
///
/// impl BaseTracer for Roots {
///     fn name(&self) -> &str { "roots" }
///     fn export(&self, _record: RawRecord) {}
///     fn export_root(&self, root: Box<RawRoot>) {
///         self.0.lock().unwrap().push(*root);
///     }
/// }
///
/// let sink = Arc::new(Roots::default());
/// let tracer = axion::Tracer::builder(axion::MetadataType::Base).provider(sink.clone()).build();
/// {
///     let span = tracer.span("chat");
///     span.set_input("hello");
/// }
/// let root = sink.0.lock().unwrap().pop().unwrap();
/// let [observation, trace] = root.into_records();
/// match (observation, trace) {
///     (RawRecord::Observation(observation), RawRecord::Trace(trace)) => {
///         assert_eq!(trace.name.as_deref(), Some("chat"));
///         assert!(trace.input.unwrap().same_as(observation.input.as_ref().unwrap()));
///     }
///     _ => unreachable!(),
/// }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RawRoot {
    /// The root observation.
    pub observation: RawObservation,
    /// The trace as updated while it ran.
    pub trace: RawTrace,
}

impl RawRoot {
    /// Creates a root record; see [`BaseTracer::export_root`].
    #[inline]
    pub fn new(observation: RawObservation, trace: RawTrace) -> Self {
        Self { observation, trace }
    }

    /// A root record from a root span and its trace's update, if any (see
    /// [`BaseTracer::export_root_span`]).
    pub fn from_parts(observation: RawObservation, trace: Option<Box<RawTrace>>) -> Self {
        // The update's allocation goes back to the trace records' pool (see `recycle`).
        let trace = trace.map_or_else(
            || RawTrace::new(observation.trace_id),
            crate::recycle::trace_contents,
        );
        Self { observation, trace }
    }

    /// The observation record and the trace record, with the trace's defaults taken from the
    /// root span. Input and output are shared between the two, not copied
    /// ([`Payload::share`]).
    pub fn into_records(self) -> [RawRecord; 2] {
        let Self {
            mut observation,
            mut trace,
        } = self;
        if trace.name.is_none() {
            trace.name = Some(observation.name.clone());
        }
        trace.timestamp.get_or_insert(observation.start_time);
        if trace.environment.is_none() {
            trace.environment = observation.environment.as_deref().map(str::to_owned);
        }
        if trace.input.is_none() {
            trace.input = observation.input.as_mut().map(Payload::share);
        }
        if trace.output.is_none() {
            trace.output = observation.output.as_mut().map(Payload::share);
        }
        [
            RawRecord::Observation(crate::recycle::boxed_observation(observation)),
            RawRecord::Trace(crate::recycle::boxed_trace(trace)),
        ]
    }
}

/// Attributes as one JSON object, `None` when there are none.
/// A key set more than once keeps its last value (collecting inserts the pairs in order):
/// spans record every `set_attribute` as it comes and leave resolving repeats to this
/// conversion, on the exporter's thread.
fn attributes_object(pairs: impl ExactSizeIterator<Item = (String, Value)>) -> Option<Value> {
    (pairs.len() > 0).then(|| Value::Object(pairs.collect::<JsonMap>()))
}

/// An observation before serialisation. Field meanings are those of [`Observation`].
#[derive(Debug, Clone)]
#[non_exhaustive]
#[allow(missing_docs)]
pub struct RawObservation {
    pub id: SpanId,
    pub trace_id: TraceId,
    pub parent_id: Option<SpanId>,
    pub r#type: ObservationType,
    pub name: Cow<'static, str>,
    pub start_time: SystemTime,
    pub end_time: Option<SystemTime>,
    pub completion_start_time: Option<SystemTime>,
    pub input: Option<Payload>,
    pub output: Option<Payload>,
    /// Attributes, in the order set, a key again each time it is set again: the later value
    /// replaces the earlier one (as [`metadata_json`](Self::metadata_json) and
    /// [`into_model`](Self::into_model) resolve them).
    pub attributes: Vec<(Cow<'static, str>, Payload)>,
    pub level: ObservationLevel,
    pub status_message: Option<String>,
    pub version: Option<String>,
    pub environment: Option<Arc<str>>,
    pub model: Option<String>,
    pub model_parameters: Option<JsonMap>,
    pub usage_details: Option<BTreeMap<String, u64>>,
    pub cost_details: Option<BTreeMap<String, f64>>,
}

impl RawObservation {
    /// What an emptied record holds (see `recycle`): nothing to free.
    pub(crate) fn placeholder() -> Self {
        Self::started(
            SpanId::from_bytes([0; 8]),
            TraceId::from_bytes([0; 16]),
            None,
            Cow::Borrowed(""),
            SystemTime::UNIX_EPOCH,
        )
    }

    /// A span as it starts: a plain `SPAN` with nothing set yet.
    #[inline]
    pub(crate) fn started(
        id: SpanId,
        trace_id: TraceId,
        parent_id: Option<SpanId>,
        name: Cow<'static, str>,
        start_time: SystemTime,
    ) -> Self {
        Self {
            id,
            trace_id,
            parent_id,
            r#type: ObservationType::Span,
            name,
            start_time,
            end_time: None,
            completion_start_time: None,
            input: None,
            output: None,
            attributes: Vec::new(),
            level: ObservationLevel::Default,
            status_message: None,
            version: None,
            environment: None,
            model: None,
            model_parameters: None,
            usage_details: None,
            cost_details: None,
        }
    }

    /// Turns an emptied record ([`placeholder`](Self::placeholder), what the export worker
    /// leaves in a returned allocation) into a span that starts now. Only the fields a start
    /// sets are written; the others are empty already.
    #[inline]
    pub(crate) fn restart(
        &mut self,
        id: SpanId,
        trace_id: TraceId,
        parent_id: Option<SpanId>,
        name: Cow<'static, str>,
        start_time: SystemTime,
    ) {
        debug_assert!(
            self.end_time.is_none()
                && self.input.is_none()
                && self.output.is_none()
                && self.attributes.is_empty()
                && self.model.is_none()
                && self.level == ObservationLevel::Default
                && self.r#type == ObservationType::Span,
            "only an emptied record restarts"
        );
        self.id = id;
        self.trace_id = trace_id;
        self.parent_id = parent_id;
        self.name = name;
        self.start_time = start_time;
    }

    /// The attributes as one JSON object (`None` when there are none).
    pub fn metadata_json(&self) -> Option<Value> {
        attributes_object(
            self.attributes
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_json())),
        )
    }

    /// Serialises into the shared model.
    pub fn into_model(self) -> Observation {
        let mut observation = Observation::new(self.id.to_string(), self.trace_id.to_string());
        observation.metadata = attributes_object(
            self.attributes
                .into_iter()
                .map(|(key, value)| (key.into_owned(), value.into_json())),
        );
        observation.parent_observation_id = self.parent_id.map(|id| id.to_string());
        observation.r#type = self.r#type;
        observation.name = Some(self.name.into_owned());
        observation.start_time = Some(timestamp(self.start_time));
        observation.end_time = self.end_time.map(timestamp);
        observation.completion_start_time = self.completion_start_time.map(timestamp);
        observation.input = self.input.map(Payload::into_json);
        observation.output = self.output.map(Payload::into_json);
        observation.level = self.level;
        observation.status_message = self.status_message;
        observation.version = self.version;
        observation.environment = self.environment.as_deref().map(str::to_owned);
        observation.model = self.model;
        observation.model_parameters = self.model_parameters;
        observation.usage_details = self.usage_details;
        observation.cost_details = self.cost_details;
        observation
    }
}

/// A trace (or trace update) before serialisation. Field meanings are those of [`Trace`].
#[derive(Debug, Clone)]
#[non_exhaustive]
#[allow(missing_docs)]
pub struct RawTrace {
    pub id: TraceId,
    pub timestamp: Option<SystemTime>,
    pub name: Option<Cow<'static, str>>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub tags: Vec<String>,
    pub metadata: Option<Payload>,
    pub input: Option<Payload>,
    pub output: Option<Payload>,
    pub environment: Option<String>,
    pub release: Option<String>,
    pub version: Option<String>,
    pub public: Option<bool>,
}

impl RawTrace {
    pub(crate) fn new(id: TraceId) -> Self {
        Self {
            id,
            timestamp: None,
            name: None,
            user_id: None,
            session_id: None,
            tags: Vec::new(),
            metadata: None,
            input: None,
            output: None,
            environment: None,
            release: None,
            version: None,
            public: None,
        }
    }

    /// Serialises into the shared model.
    pub fn into_model(self) -> Trace {
        let mut trace = Trace::new(self.id.to_string());
        trace.timestamp = self.timestamp.map(timestamp);
        trace.name = self.name.map(Cow::into_owned);
        trace.user_id = self.user_id;
        trace.session_id = self.session_id;
        trace.tags = self.tags;
        trace.metadata = self.metadata.map(Payload::into_json);
        trace.input = self.input.map(Payload::into_json);
        trace.output = self.output.map(Payload::into_json);
        trace.environment = self.environment;
        trace.release = self.release;
        trace.version = self.version;
        trace.public = self.public;
        trace
    }
}

/// Converts a `SystemTime` to the model's UTC timestamp (times before 1970 clamp to 1970).
pub fn timestamp(time: SystemTime) -> Timestamp {
    Timestamp::from(time.max(SystemTime::UNIX_EPOCH))
}
