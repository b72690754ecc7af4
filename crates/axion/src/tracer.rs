//! [`Tracer`]: creates spans, keeps statistics, and hands records to its provider.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use axion_model::{ObservationType, Score, TraceId};
use serde::Serialize;
use serde_json::{json, Value};

use crate::context::{current_span_cell, ContextGuard, Instrumented, TraceContext};
use crate::provider::{BaseTracer, FlushReport, RawObservation, RawRecord, RawTrace};
use crate::span::{lock, Span, SpanCell, SpanGuard};
use crate::stats::{Counters, TracerStats};
use crate::trace_update::ScoreValue;
use crate::Result;

/// How many recording tracers exist; `#[trace]` on a free function skips all work while zero.
static RECORDING_TRACERS: AtomicUsize = AtomicUsize::new(0);

/// Whether any tracer in the process records. One relaxed load.
#[inline]
pub(crate) fn any_recording() -> bool {
    RECORDING_TRACERS.load(Ordering::Relaxed) != 0
}

/// What a tracer measures; decides which statistics table [`Tracer::stats`] prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum MetadataType {
    /// Execution status, latency and counts only.
    #[default]
    Base,
    /// LLM calls: tokens, cost, failures, latency.
    Llm,
    /// Retrieval: retrievals and documents.
    Knowledge,
    /// Database: queries and latency.
    Database,
    /// Evaluation: datapoints, failures, latency.
    Evaluation,
}

impl MetadataType {
    /// The lowercase name (`base`, `llm`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            MetadataType::Base => "base",
            MetadataType::Llm => "llm",
            MetadataType::Knowledge => "knowledge",
            MetadataType::Database => "database",
            MetadataType::Evaluation => "evaluation",
        }
    }
}

impl std::str::FromStr for MetadataType {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        [
            MetadataType::Base,
            MetadataType::Llm,
            MetadataType::Knowledge,
            MetadataType::Database,
            MetadataType::Evaluation,
        ]
        .into_iter()
        .find(|kind| kind.as_str().eq_ignore_ascii_case(s))
        .ok_or_else(|| crate::Error::InvalidSetting {
            setting: "metadata type".into(),
            value: s.into(),
            reason: "expected base, llm, knowledge, database or evaluation".into(),
        })
    }
}

/// Describes the tool a tracer instruments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ToolMetadata {
    /// Tool name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Its version (default `0.0.0`).
    pub version: String,
}

impl ToolMetadata {
    /// A tool with a name and description, version `0.0.0`.
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            version: "0.0.0".into(),
        }
    }

    /// Sets the version.
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }
}

/// The tracer's own lifecycle, driven by [`Tracer::start`], [`Tracer::complete`] and [`Tracer::fail`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LifecycleStatus {
    /// Created, not started.
    Started,
    /// `start` was called.
    Running,
    /// `complete` was called.
    Completed,
    /// `fail` was called.
    Failed,
}

impl fmt::Display for LifecycleStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LifecycleStatus::Started => "started",
            LifecycleStatus::Running => "running",
            LifecycleStatus::Completed => "completed",
            LifecycleStatus::Failed => "failed",
        })
    }
}

/// A local event added with [`Tracer::add_trace`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TraceEvent {
    /// Event type (`execution_start`, `llm_call`, anything of yours).
    pub event_type: String,
    /// What happened.
    pub message: String,
    /// Extra data, with `span_id` and `trace_id` stamped in.
    pub metadata: Value,
    /// When.
    pub timestamp: axion_model::Timestamp,
}

/// Local events kept per tracer; older ones are dropped (and counted) beyond this.
pub const MAX_LOCAL_EVENTS: usize = 1024;

struct Lifecycle {
    status: LifecycleStatus,
    started: Option<Instant>,
    latency: Option<Duration>,
    output: Option<Value>,
    error: Option<String>,
    events: VecDeque<TraceEvent>,
    events_total: u64,
}

#[derive(Debug, Clone, Default)]
struct TraceDefaults {
    trace_id: Option<TraceId>,
    tags: Vec<String>,
    /// Shared, because every observation carries it: a clone is a refcount, not a copy.
    environment: Option<Arc<str>>,
    session_id: Option<String>,
    user_id: Option<String>,
    release: Option<String>,
    version: Option<String>,
}

struct TracerInner {
    recording: AtomicBool,
    provider: Arc<dyn BaseTracer>,
    metadata_type: MetadataType,
    tool: Option<ToolMetadata>,
    defaults: TraceDefaults,
    execution_id: String,
    observations: AtomicU64,
    lifecycle: Mutex<Lifecycle>,
    counters: Mutex<Counters>,
}

impl TracerInner {
    /// Turns recording off, once, keeping the process-wide count of recording tracers right.
    fn stop_recording(&self) {
        if self.recording.swap(false, Ordering::Relaxed) {
            RECORDING_TRACERS.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for TracerInner {
    fn drop(&mut self) {
        self.stop_recording();
    }
}

/// Creates spans and sends what they record to a provider (see [`configure_tracing`](crate::configure_tracing)).
///
/// A `Tracer` is a cheap handle: clones share the provider, the statistics and the defaults
/// (tags, user, session, environment) that every trace it starts carries.
///
/// ```
/// use axion::{MetadataType, Tracer};
///
/// let tracer = Tracer::builder(MetadataType::Llm).tags(["rag"]).user_id("u-1").build();
/// {
///     let span = tracer.span("retrieve");
///     span.set_input("what is axion?");
///     span.set_output(vec!["doc-1", "doc-2"]);
/// } // the span ends here
/// tracer.flush(std::time::Duration::from_secs(5)).unwrap();
/// ```
#[derive(Clone)]
pub struct Tracer {
    inner: Arc<TracerInner>,
}

impl fmt::Debug for Tracer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracer")
            .field("provider", &self.inner.provider.name())
            .field("metadata_type", &self.inner.metadata_type)
            .field("recording", &self.is_recording())
            .finish()
    }
}

/// Builds a [`Tracer`]; [`build`](Self::build) always makes a new one, [`init`](Self::init)
/// reuses one as [`init_tracer`](crate::init_tracer) does.
#[derive(Clone, Default)]
#[must_use]
pub struct TracerBuilder {
    metadata_type: MetadataType,
    tool: Option<ToolMetadata>,
    defaults: TraceDefaults,
    provider: Option<Arc<dyn BaseTracer>>,
    force_new: bool,
    reuse: Option<Tracer>,
}

macro_rules! default_setters {
    ($($(#[$doc:meta])* $field:ident),+ $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $field(mut self, value: impl Into<String>) -> Self {
                self.defaults.$field = Some(value.into());
                self
            }
        )+
    };
}

impl TracerBuilder {
    /// Environment of every trace and observation (`production`, `staging`, …).
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.defaults.environment = Some(Arc::from(environment.into()));
        self
    }

    default_setters!(
        /// Session of every trace.
        session_id,
        /// User of every trace.
        user_id,
        /// Release of every trace.
        release,
        /// Version of every trace.
        version,
    );

    /// Tags of every trace.
    pub fn tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.defaults.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// Puts every root span of this tracer in the given trace instead of a new one.
    pub fn trace_id(mut self, trace_id: TraceId) -> Self {
        self.defaults.trace_id = Some(trace_id);
        self
    }

    /// Describes the instrumented tool.
    pub fn tool_metadata(mut self, tool: ToolMetadata) -> Self {
        self.tool = Some(tool);
        self
    }

    /// Uses this provider instead of the configured one.
    pub fn provider(mut self, provider: Arc<dyn BaseTracer>) -> Self {
        self.provider = Some(provider);
        self
    }

    /// For [`init`](Self::init): always build a new tracer.
    pub fn force_new(mut self, force_new: bool) -> Self {
        self.force_new = force_new;
        self
    }

    /// For [`init`](Self::init): return this tracer, whatever else is set.
    pub fn tracer(mut self, tracer: Tracer) -> Self {
        self.reuse = Some(tracer);
        self
    }

    /// A new tracer.
    pub fn build(self) -> Tracer {
        let provider = self.provider.unwrap_or_else(crate::config::active_provider);
        let recording = provider.is_recording();
        if recording {
            RECORDING_TRACERS.fetch_add(1, Ordering::Relaxed);
        }
        Tracer {
            inner: Arc::new(TracerInner {
                recording: AtomicBool::new(recording),
                provider,
                metadata_type: self.metadata_type,
                tool: self.tool,
                defaults: self.defaults,
                execution_id: {
                    let now = SystemTime::now();
                    crate::ids::new_trace_id(now).to_uuid7(unix_millis(now))
                },
                observations: AtomicU64::new(0),
                lifecycle: Mutex::new(Lifecycle {
                    status: LifecycleStatus::Started,
                    started: None,
                    latency: None,
                    output: None,
                    error: None,
                    events: VecDeque::new(),
                    events_total: 0,
                }),
                counters: Mutex::new(Counters::default()),
            }),
        }
    }

    /// The explicit tracer if one was given; else (unless `force_new`) the current context's
    /// tracer, then the global default; else a new one.
    pub fn init(self) -> Tracer {
        if let Some(tracer) = self.reuse.clone() {
            return tracer;
        }
        if !self.force_new {
            if let Some(tracer) = crate::context::current_tracer().or_else(default_global_tracer) {
                return tracer;
            }
        }
        self.build()
    }
}

/// A tracer for `metadata_type`: the current context's, else the global default, else a new
/// one on the configured provider. See [`TracerBuilder::init`] for the options form.
pub fn init_tracer(metadata_type: MetadataType) -> Tracer {
    Tracer::builder(metadata_type).init()
}

/// [`init_tracer`] with options: `init_tracer_with(Tracer::builder(MetadataType::Llm).force_new(true).tags(["a"]))`.
pub fn init_tracer_with(options: TracerBuilder) -> Tracer {
    options.init()
}

static DEFAULT_TRACER: RwLock<Option<Tracer>> = RwLock::new(None);

/// Sets (or with `None`, clears) the process-wide default tracer that [`init_tracer`] and
/// `#[trace]` fall back to outside any context.
pub fn set_default_global_tracer(tracer: Option<Tracer>) {
    *DEFAULT_TRACER
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = tracer;
}

/// The process-wide default tracer, if set.
pub fn default_global_tracer() -> Option<Tracer> {
    DEFAULT_TRACER
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
}

/// Where a new span attaches.
#[derive(Clone, Default)]
enum Parent {
    #[default]
    Current,
    Explicit(Span),
    NewTrace,
}

/// Options for one span: type, parent, new trace.
#[must_use]
pub struct SpanBuilder<'a> {
    tracer: &'a Tracer,
    name: Cow<'static, str>,
    kind: Option<ObservationType>,
    parent: Parent,
}

impl SpanBuilder<'_> {
    /// Sets the observation type (otherwise inferred: a model makes a generation, then the name).
    pub fn kind(mut self, kind: ObservationType) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Nests under `parent` instead of the current span.
    pub fn child_of(mut self, parent: &Span) -> Self {
        self.parent = Parent::Explicit(parent.clone());
        self
    }

    /// Starts a new trace even inside another one.
    pub fn new_trace(mut self) -> Self {
        self.parent = Parent::NewTrace;
        self
    }

    /// Starts the span without making it current.
    pub fn start(self) -> Span {
        self.tracer.open(self.name, self.kind, self.parent)
    }

    /// Starts the span and makes it current until the guard drops.
    pub fn enter(self) -> SpanGuard {
        SpanGuard::enter(self.start())
    }

    /// Runs the future made by `make` with the span current, ending the span when it finishes.
    pub fn run_async<F, Fut>(self, make: F) -> Instrumented<Fut>
    where
        F: FnOnce(Span) -> Fut,
        Fut: Future,
    {
        let span = self.start();
        let context = span.context();
        let future = {
            let _entered = span.cell().map(|_| context.clone().attach());
            make(span.clone())
        };
        let owner = span.is_recording().then_some(span);
        Instrumented::new(future, context, owner)
    }
}

/// One LLM call for [`Tracer::log_llm_call`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct LlmCall {
    name: Option<String>,
    model: String,
    provider: Option<String>,
    prompt: Option<crate::payload::Payload>,
    response: Option<crate::payload::Payload>,
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: Option<u64>,
    cost_usd: Option<f64>,
    latency: Option<Duration>,
    error: Option<String>,
}

impl LlmCall {
    /// A call to `model`.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            ..Self::default()
        }
    }
    /// Observation name (default `llm_call`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Provider (`openai`, `anthropic`, …).
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = Some(provider.into());
        self
    }
    /// The prompt (input).
    pub fn prompt<V: Serialize + Send + Sync + 'static>(mut self, prompt: V) -> Self {
        self.prompt = Some(crate::payload::Payload::new(prompt));
        self
    }
    /// The response (output).
    pub fn response<V: Serialize + Send + Sync + 'static>(mut self, response: V) -> Self {
        self.response = Some(crate::payload::Payload::new(response));
        self
    }
    /// Prompt and completion tokens (total defaults to their sum).
    pub fn tokens(mut self, prompt_tokens: u64, completion_tokens: u64) -> Self {
        self.prompt_tokens = prompt_tokens;
        self.completion_tokens = completion_tokens;
        self
    }
    /// Total tokens, when it is not the sum.
    pub fn total_tokens(mut self, total: u64) -> Self {
        self.total_tokens = Some(total);
        self
    }
    /// Cost in USD.
    pub fn cost(mut self, usd: f64) -> Self {
        self.cost_usd = Some(usd);
        self
    }
    /// How long the call took (the observation starts that long before now).
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = Some(latency);
        self
    }
    /// Marks the call failed.
    pub fn error(mut self, message: impl Into<String>) -> Self {
        self.error = Some(message.into());
        self
    }
}

impl Tracer {
    /// A new tracer on the configured provider (configured from the environment on first use).
    pub fn new(metadata_type: MetadataType) -> Self {
        Self::builder(metadata_type).build()
    }

    /// Options for a new tracer.
    pub fn builder(metadata_type: MetadataType) -> TracerBuilder {
        TracerBuilder {
            metadata_type,
            ..TracerBuilder::default()
        }
    }

    /// Whether spans of this tracer record anything. One relaxed atomic load.
    #[inline]
    pub fn is_recording(&self) -> bool {
        self.inner.recording.load(Ordering::Relaxed)
    }

    /// Whether two handles are the same tracer.
    pub fn same_as(&self, other: &Tracer) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The provider's name.
    pub fn provider_name(&self) -> &str {
        self.inner.provider.name()
    }

    /// The metadata type.
    pub fn metadata_type(&self) -> MetadataType {
        self.inner.metadata_type
    }

    /// The tool description, if one was given.
    pub fn tool_metadata(&self) -> Option<&ToolMetadata> {
        self.inner.tool.as_ref()
    }

    /// The environment of this tracer's traces.
    pub fn environment(&self) -> Option<&str> {
        self.inner.defaults.environment.as_deref()
    }

    pub(crate) fn shared_environment(&self) -> Option<Arc<str>> {
        self.inner.defaults.environment.clone()
    }

    /// The session of this tracer's traces.
    pub fn session_id(&self) -> Option<&str> {
        self.inner.defaults.session_id.as_deref()
    }

    /// The user of this tracer's traces.
    pub fn user_id(&self) -> Option<&str> {
        self.inner.defaults.user_id.as_deref()
    }

    /// The tags of this tracer's traces.
    pub fn tags(&self) -> &[String] {
        &self.inner.defaults.tags
    }

    /// The current span's trace id, else the tracer's fixed trace id.
    pub fn trace_id(&self) -> Option<TraceId> {
        current_span_cell()
            .map(|cell| cell.trace_id)
            .or(self.inner.defaults.trace_id)
    }

    /// A unique id of this tracer (UUIDv7).
    pub fn execution_id(&self) -> &str {
        &self.inner.execution_id
    }

    /// Makes this tracer current (without a span) until the guard drops.
    pub fn context(&self) -> ContextGuard {
        crate::context::set_current_tracer(self.clone())
    }

    /// A span that is current until the returned guard drops.
    ///
    /// ```
    /// let tracer = axion::Tracer::new(axion::MetadataType::Base);
    /// let outer = tracer.span("outer");
    /// let inner = tracer.span("inner");
    /// assert_eq!(inner.parent_id(), outer.span_id());
    /// ```
    #[inline]
    pub fn span(&self, name: impl Into<Cow<'static, str>>) -> SpanGuard {
        if !self.is_recording() {
            return SpanGuard::disabled();
        }
        self.span_builder(name).enter()
    }

    /// Options for a span (type, parent, new trace).
    pub fn span_builder(&self, name: impl Into<Cow<'static, str>>) -> SpanBuilder<'_> {
        SpanBuilder {
            tracer: self,
            name: name.into(),
            kind: None,
            parent: Parent::Current,
        }
    }

    /// Runs the future made by `make` inside a new span, which is current whenever the future
    /// is polled and ends when it completes (or is dropped, marked cancelled).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let tracer = axion::Tracer::new(axion::MetadataType::Base);
    /// let answer = tracer
    ///     .async_span("manual_span", |span| async move {
    ///         span.set_attribute("custom_attr", "value");
    ///         42
    ///     })
    ///     .await;
    /// assert_eq!(answer, 42);
    /// # }
    /// ```
    pub fn async_span<F, Fut>(
        &self,
        name: impl Into<Cow<'static, str>>,
        make: F,
    ) -> Instrumented<Fut>
    where
        F: FnOnce(Span) -> Fut,
        Fut: Future,
    {
        if !self.is_recording() {
            return Instrumented::new(make(Span::none()), TraceContext::default(), None);
        }
        self.span_builder(name).run_async(make)
    }

    fn open(&self, name: Cow<'static, str>, kind: Option<ObservationType>, parent: Parent) -> Span {
        if !self.is_recording() {
            return Span::none();
        }
        let parent = match parent {
            Parent::Current => current_span_cell(),
            Parent::Explicit(span) => span.cell().cloned(),
            Parent::NewTrace => None,
        };
        let start = SystemTime::now();
        Span::from_cell(match parent {
            Some(parent) => SpanCell::new_child(self.clone(), &parent, name, kind, start),
            None => {
                let (trace_id, trace) = self.trace_defaults(start);
                SpanCell::new_root(self.clone(), trace_id, trace, name, kind, start)
            }
        })
    }

    /// A new trace's id, and its update when the tracer has defaults for it. The environment
    /// is not one of them: the exporter takes it from the root span, which carries it anyway.
    fn trace_defaults(&self, start: SystemTime) -> (TraceId, Option<Box<RawTrace>>) {
        let defaults = &self.inner.defaults;
        let id = defaults
            .trace_id
            .unwrap_or_else(|| crate::ids::new_trace_id(start));
        if defaults.tags.is_empty()
            && defaults.session_id.is_none()
            && defaults.user_id.is_none()
            && defaults.release.is_none()
            && defaults.version.is_none()
        {
            return (id, None);
        }
        let mut trace = Box::new(RawTrace::new(id));
        trace.tags.clone_from(&defaults.tags);
        trace.session_id.clone_from(&defaults.session_id);
        trace.user_id.clone_from(&defaults.user_id);
        trace.release.clone_from(&defaults.release);
        trace.version.clone_from(&defaults.version);
        (id, Some(trace))
    }

    pub(crate) fn emit(&self, record: RawRecord) {
        self.inner.provider.export(record);
    }

    pub(crate) fn emit_root(&self, observation: Box<RawObservation>, trace: Option<Box<RawTrace>>) {
        self.inner.provider.export_root_span(observation, trace);
    }

    pub(crate) fn emit_score(&self, mut score: Score) {
        if score.environment.is_none() {
            score.environment = self.environment().map(str::to_owned);
        }
        self.emit(RawRecord::Score(Box::new(score)));
    }

    pub(crate) fn record_observation_stats(&self, observation: &RawObservation) {
        self.inner.observations.fetch_add(1, Ordering::Relaxed);
        if matches!(
            observation.r#type,
            ObservationType::Generation | ObservationType::Retriever | ObservationType::Evaluator
        ) {
            lock(&self.inner.counters).record(observation);
        }
    }

    /// Marks the tracer's execution as running and starts its timer.
    pub fn start(&self) {
        let mut lifecycle = lock(&self.inner.lifecycle);
        lifecycle.status = LifecycleStatus::Running;
        lifecycle.started = Some(Instant::now());
        drop(lifecycle);
        self.add_trace("execution_start", "execution started", None);
    }

    /// Marks the execution completed, with its output.
    pub fn complete<V: Serialize>(&self, output: V) {
        let output = serde_json::to_value(output).unwrap_or(Value::Null);
        let latency = {
            let mut lifecycle = lock(&self.inner.lifecycle);
            lifecycle.status = LifecycleStatus::Completed;
            lifecycle.latency = lifecycle.started.map(|started| started.elapsed());
            lifecycle.output = Some(output);
            lifecycle.latency
        };
        let seconds = latency.map(|latency| latency.as_secs_f64());
        self.add_trace(
            "execution_complete",
            "execution completed",
            Some(json!({ "latency": seconds })),
        );
    }

    /// Marks the execution failed.
    pub fn fail(&self, error: impl fmt::Display) {
        let message = error.to_string();
        {
            let mut lifecycle = lock(&self.inner.lifecycle);
            lifecycle.status = LifecycleStatus::Failed;
            lifecycle.latency = lifecycle.started.map(|started| started.elapsed());
            lifecycle.error = Some(message.clone());
        }
        log::error!(
            "axion: execution {} failed: {message}",
            self.inner.execution_id
        );
        self.add_trace(
            "execution_failed",
            &message,
            Some(json!({ "error": message })),
        );
    }

    /// The output given to [`complete`](Self::complete), and the error given to [`fail`](Self::fail).
    pub fn outcome(&self) -> (Option<Value>, Option<String>) {
        let lifecycle = lock(&self.inner.lifecycle);
        (lifecycle.output.clone(), lifecycle.error.clone())
    }

    /// Adds a local event (kept in memory, see [`events`](Self::events)), stamped with the
    /// current span and trace ids. Keeps the newest [`MAX_LOCAL_EVENTS`].
    pub fn add_trace(&self, event_type: &str, message: &str, metadata: Option<Value>) {
        let mut metadata = metadata
            .map(crate::payload::into_object)
            .unwrap_or_default();
        let span = current_span_cell();
        metadata.insert(
            "span_id".into(),
            span.as_ref()
                .map(|cell| json!(cell.id.to_string()))
                .unwrap_or(Value::Null),
        );
        let trace_id = span
            .as_ref()
            .map(|cell| cell.trace_id)
            .or(self.inner.defaults.trace_id);
        metadata.insert(
            "trace_id".into(),
            trace_id
                .map(|id| json!(id.to_string()))
                .unwrap_or(Value::Null),
        );
        let event = TraceEvent {
            event_type: event_type.to_owned(),
            message: message.to_owned(),
            metadata: Value::Object(metadata),
            timestamp: crate::span::now_timestamp(),
        };
        let mut lifecycle = lock(&self.inner.lifecycle);
        if lifecycle.events.len() == MAX_LOCAL_EVENTS {
            lifecycle.events.pop_front();
        }
        lifecycle.events.push_back(event);
        lifecycle.events_total += 1;
    }

    /// The local events, oldest first.
    pub fn events(&self) -> Vec<TraceEvent> {
        lock(&self.inner.lifecycle).events.iter().cloned().collect()
    }

    /// Records an LLM call as a generation under the current span (or as a trace of its own).
    ///
    /// ```
    /// use axion::{LlmCall, MetadataType, Tracer};
    ///
    /// let tracer = Tracer::new(MetadataType::Llm);
    /// tracer.log_llm_call(
    ///     LlmCall::new("gpt-4o-mini").provider("openai").prompt("Hi").response("Hello!").tokens(3, 2).cost(0.00001),
    /// );
    /// ```
    pub fn log_llm_call(&self, call: LlmCall) {
        if let Some(provider) = &call.provider {
            if self.is_recording() {
                let mut counters = lock(&self.inner.counters);
                if !counters.llm.providers.contains(provider) {
                    counters.llm.providers.insert(provider.clone());
                }
            }
        }
        let span = self
            .span_builder(call.name.unwrap_or_else(|| "llm_call".into()))
            .kind(ObservationType::Generation)
            .start();
        if !span.is_recording() {
            return;
        }
        if let Some(latency) = call.latency {
            span.set_start_time(SystemTime::now() - latency);
        }
        span.set_model(call.model);
        if let Some(provider) = call.provider {
            span.set_attribute("provider", provider);
        }
        span.update_payloads(call.prompt, call.response);
        span.set_usage_details([
            ("input", call.prompt_tokens),
            ("output", call.completion_tokens),
            (
                "total",
                call.total_tokens
                    .unwrap_or(call.prompt_tokens + call.completion_tokens),
            ),
        ]);
        if let Some(cost) = call.cost_usd {
            span.set_cost(cost);
        }
        if let Some(error) = call.error {
            span.fail(error);
        }
        span.end();
    }

    /// Records an evaluation result: a score on the current trace, or, outside any span, an
    /// evaluator observation in a trace of its own that carries the score.
    pub fn log_evaluation(&self, name: &str, score: impl Into<ScoreValue>, comment: Option<&str>) {
        if !self.is_recording() {
            return;
        }
        let score = score.into();
        match crate::context::current_span() {
            Some(span) => {
                span.score_trace(name.to_owned(), score, comment);
                lock(&self.inner.counters).evaluation.datapoints += 1;
            }
            None => {
                let span = self
                    .span_builder(name.to_owned())
                    .kind(ObservationType::Evaluator)
                    .start();
                span.set_output(json!({ "score": score_json(&score), "comment": comment }));
                span.score_trace(name.to_owned(), score, comment);
                span.end();
            }
        }
    }

    /// Records a retrieval of `documents` for `query` as a retriever observation.
    pub fn log_retrieval<Q, D>(&self, query: Q, documents: Vec<D>, latency: Duration)
    where
        Q: Serialize + Send + Sync + 'static,
        D: Serialize + Send + Sync + 'static,
    {
        let span = self
            .span_builder("retrieval")
            .kind(ObservationType::Retriever)
            .start();
        if !span.is_recording() {
            return;
        }
        lock(&self.inner.counters).knowledge.documents += documents.len() as u64;
        span.set_start_time(SystemTime::now() - latency);
        span.set_attribute("documents", documents.len());
        span.set_input(query);
        span.set_output(documents);
        span.end();
    }

    /// Records a database query (the text is cut to 200 characters) as a span.
    pub fn log_database_query(&self, query: &str, latency: Duration, rows_affected: u64) {
        let span = self
            .span_builder("database_query")
            .kind(ObservationType::Span)
            .start();
        if !span.is_recording() {
            return;
        }
        {
            let mut counters = lock(&self.inner.counters);
            counters.database.queries += 1;
            counters.database.rows += rows_affected;
            counters.database.total_latency += latency;
        }
        span.set_start_time(SystemTime::now() - latency);
        span.set_input(query.chars().take(200).collect::<String>());
        span.set_attribute("rows_affected", rows_affected);
        span.end();
        self.add_trace(
            "database_query",
            &format!("Query completed: {rows_affected} rows"),
            None,
        );
    }

    /// A snapshot of the statistics; `Display` prints them as a table.
    pub fn stats(&self) -> TracerStats {
        let lifecycle = lock(&self.inner.lifecycle);
        let counters = lock(&self.inner.counters);
        TracerStats {
            metadata_type: self.inner.metadata_type,
            execution_id: self.inner.execution_id.clone(),
            status: lifecycle.status,
            latency: lifecycle.latency,
            observations: self.inner.observations.load(Ordering::Relaxed),
            events: lifecycle.events_total,
            llm: counters.llm.clone(),
            knowledge: counters.knowledge.clone(),
            evaluation: counters.evaluation.clone(),
            database: counters.database.clone(),
            export: self.inner.provider.export_stats(),
        }
    }

    /// Delivers everything recorded so far, waiting at most `timeout`.
    pub fn flush(&self, timeout: Duration) -> Result<FlushReport> {
        self.inner.provider.flush(timeout)
    }

    /// Flushes and stops recording: later spans of this tracer are no-ops. The provider itself
    /// stays up for other tracers; shut it down with [`shutdown_tracing`](crate::shutdown_tracing).
    pub fn shutdown(&self, timeout: Duration) -> Result<FlushReport> {
        self.inner.stop_recording();
        self.inner.provider.flush(timeout)
    }
}

fn score_json(score: &ScoreValue) -> Value {
    match score {
        ScoreValue::Numeric(value) => json!(value),
        ScoreValue::Boolean(value) => json!(value),
        ScoreValue::Categorical(label) => json!(label),
    }
}

pub(crate) fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Runs `apply` on the current span; `false` (and nothing done) outside a span.
fn with_current_span(apply: impl FnOnce(&Span)) -> bool {
    crate::context::current_span()
        .map(|span| apply(&span))
        .is_some()
}

/// Updates the trace of the current span. Returns `false` (and does nothing) outside a trace.
pub fn update_current_trace(update: crate::TraceUpdate) -> bool {
    with_current_span(|span| span.update_trace(update))
}

/// Updates the current observation. Returns `false` (and does nothing) outside a span.
pub fn update_current_observation(update: crate::ObservationUpdate) -> bool {
    with_current_span(|span| span.update_observation(update))
}

/// Scores the current trace. Returns `false` (and does nothing) outside a trace.
pub fn score_current_trace(
    name: &str,
    value: impl Into<ScoreValue>,
    comment: Option<&str>,
) -> bool {
    with_current_span(|span| span.score_trace(name.to_owned(), value, comment))
}

/// Scores the current observation. Returns `false` (and does nothing) outside a span.
pub fn score_current_observation(
    name: &str,
    value: impl Into<ScoreValue>,
    comment: Option<&str>,
) -> bool {
    with_current_span(|span| span.score(name.to_owned(), value, comment))
}
