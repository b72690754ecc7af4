//! Spans: one observation each, recorded when they end.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::SystemTime;

use axion_model::{ObservationLevel, ObservationType, Score, SpanId, TraceId};
use serde::Serialize;
use serde_json::Value;

use crate::context::{ContextGuard, TraceContext};
use crate::payload::{into_object, Payload};
use crate::provider::{timestamp, RawObservation, RawRecord, RawTrace};
use crate::trace_update::{ObservationUpdate, ScoreValue, TraceUpdate};
use crate::Tracer;

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while a span was being updated must not turn every later call into a panic.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What every span type offers (the Python SDK's `BaseSpan` protocol). Write helpers generic
/// over it to accept both [`Span`] and [`SpanGuard`].
pub trait BaseSpan {
    /// Sets an attribute (exported as metadata).
    fn set_attribute<V: Serialize + Send + Sync + 'static>(
        &self,
        key: impl Into<Cow<'static, str>>,
        value: V,
    );
    /// Sets the input.
    fn set_input<V: Serialize + Send + Sync + 'static>(&self, value: V);
    /// Sets the output.
    fn set_output<V: Serialize + Send + Sync + 'static>(&self, value: V);
}

/// The record a span fills while it runs. It is allocated when the span starts, so that ending
/// the span hands it to the exporter whole: no copy, no allocation at the end.
pub(crate) enum Building {
    Span(Box<RawObservation>),
    /// A root span's observation and its trace's pending update, which exists only once
    /// something is set on the trace (the tracer's trace defaults, `update_current_trace`):
    /// most traces are their root span's name, times, input and output, filled in by the
    /// exporter, so most root spans write and hand over one small record.
    Root(Box<RawObservation>, Option<Box<RawTrace>>),
    Ended,
}

impl Building {
    fn observation_mut(&mut self) -> Option<&mut RawObservation> {
        match self {
            Building::Span(observation) => Some(observation),
            Building::Root(observation, _) => Some(observation),
            Building::Ended => None,
        }
    }
}

/// The shared part of a recording span.
pub(crate) struct SpanCell {
    pub(crate) tracer: Tracer,
    pub(crate) trace_id: TraceId,
    pub(crate) id: SpanId,
    pub(crate) parent: Option<SpanId>,
    /// The trace's root span, for any other span: trace updates go to it. Weakly: a span that
    /// outlives its root (a spawned task) must not keep the root from ending when its last
    /// handle drops; once the root is gone, updates go out as records of their own.
    root: Option<Weak<SpanCell>>,
    ended: AtomicBool,
    state: Mutex<SpanState>,
}

struct SpanState {
    /// Set by [`Span::set_type`]; otherwise inferred when the span ends.
    kind: Option<ObservationType>,
    record: Building,
}

impl SpanCell {
    /// Starts the root span of a new trace, with the trace's defaults when it has any.
    #[inline]
    pub(crate) fn new_root(
        tracer: Tracer,
        trace_id: TraceId,
        trace: Option<Box<RawTrace>>,
        name: Cow<'static, str>,
        kind: Option<ObservationType>,
        start: SystemTime,
    ) -> Arc<Self> {
        let id = crate::ids::new_span_id();
        let observation = crate::recycle::started_observation(id, trace_id, None, name, start);
        Arc::new(Self {
            tracer,
            trace_id,
            id,
            parent: None,
            root: None,
            ended: AtomicBool::new(false),
            state: Mutex::new(SpanState {
                kind,
                record: Building::Root(observation, trace),
            }),
        })
    }

    /// Starts a span under `parent`, in its trace.
    #[inline]
    pub(crate) fn new_child(
        tracer: Tracer,
        parent: &Arc<SpanCell>,
        name: Cow<'static, str>,
        kind: Option<ObservationType>,
        start: SystemTime,
    ) -> Arc<Self> {
        let id = crate::ids::new_span_id();
        let observation =
            crate::recycle::started_observation(id, parent.trace_id, Some(parent.id), name, start);
        let root = match &parent.root {
            None => Arc::downgrade(parent),
            Some(root) => root.clone(),
        };
        Arc::new(Self {
            tracer,
            trace_id: parent.trace_id,
            id,
            parent: Some(parent.id),
            root: Some(root),
            ended: AtomicBool::new(false),
            state: Mutex::new(SpanState {
                kind,
                record: Building::Span(observation),
            }),
        })
    }

    fn update(&self, apply: impl FnOnce(&mut RawObservation)) {
        if self.ended.load(Ordering::Acquire) {
            log::debug!("axion: span {} already ended; update ignored", self.id);
            return;
        }
        if let Some(observation) = lock(&self.state).record.observation_mut() {
            apply(observation);
        }
    }

    fn set_kind(&self, kind: ObservationType) {
        lock(&self.state).kind = Some(kind);
    }

    fn end(&self, end_time: SystemTime) {
        if self.ended.swap(true, Ordering::AcqRel) {
            return;
        }
        let (kind, mut record) = {
            let mut state = lock(&self.state);
            (
                state.kind,
                std::mem::replace(&mut state.record, Building::Ended),
            )
        };
        let Some(observation) = record.observation_mut() else {
            return;
        };
        observation.end_time = Some(end_time.max(observation.start_time));
        observation.r#type = kind.unwrap_or_else(|| infer_type(observation));
        observation.environment = self.tracer.shared_environment();
        self.tracer.record_observation_stats(observation);
        match record {
            Building::Span(observation) => self.tracer.emit(RawRecord::Observation(observation)),
            // The trace's defaults (name, timestamp, input, output from the root span) are
            // filled in where the two are split, on the exporter's side.
            Building::Root(observation, trace) => self.tracer.emit_root(observation, trace),
            Building::Ended => {}
        }
    }

    pub(crate) fn update_trace(&self, update: TraceUpdate) {
        match &self.root {
            None => {
                if let Building::Root(_, trace) = &mut lock(&self.state).record {
                    let trace_id = self.trace_id;
                    update.apply(trace.get_or_insert_with(|| Box::new(RawTrace::new(trace_id))));
                    return;
                }
            }
            Some(root) => {
                if let Some(root) = root.upgrade() {
                    return root.update_trace(update);
                }
            }
        }
        // The root span has ended: the update goes out on its own.
        let mut trace = RawTrace::new(self.trace_id);
        update.apply(&mut trace);
        self.tracer.emit(RawRecord::Trace(Box::new(trace)));
    }
}

impl Drop for SpanCell {
    fn drop(&mut self) {
        // Nothing else can see the span any more: a plain read, not an atomic swap.
        if *self.ended.get_mut() {
            return;
        }
        // The last handle of a span nobody ended: record it rather than lose it.
        self.end(SystemTime::now());
    }
}

/// The observation type of a span that did not set one: a model makes it a generation, and
/// otherwise its name decides (Langfuse's rules, first match wins).
fn infer_type(state: &RawObservation) -> ObservationType {
    if state.model.is_some() {
        return ObservationType::Generation;
    }
    // In priority order; the first rule with a needle anywhere in the name wins.
    const RULES: [ObservationType; 7] = [
        ObservationType::Retriever,
        ObservationType::Embedding,
        ObservationType::Evaluator,
        ObservationType::Tool,
        ObservationType::Agent,
        ObservationType::Chain,
        ObservationType::Guardrail,
    ];
    // One pass over the name, case-insensitive and in place: this runs for every span that
    // ends, and a lower-cased copy searched once per needle was a third of a span's cost.
    let name = state.name.as_bytes();
    let at = |index: usize, needle: &[u8]| {
        name.get(index..index + needle.len())
            .is_some_and(|window| window.eq_ignore_ascii_case(needle))
    };
    let mut best = RULES.len();
    for (index, byte) in name.iter().enumerate() {
        let rule = match byte.to_ascii_lowercase() {
            b'r' if at(index, b"retriev") => 0,
            b'r' if at(index, b"relevancy") => 2,
            b'k' if at(index, b"knowledge") => 0,
            b'e' if at(index, b"embed") => 1,
            b'e' if at(index, b"eval") => 2,
            b'm' if at(index, b"metric") => 2,
            b's' if at(index, b"score") => 2,
            b'f' if at(index, b"faithful") => 2,
            b't' if at(index, b"tool") => 3,
            b'a' if at(index, b"agent") => 4,
            b'c' if at(index, b"chain") => 5,
            b'g' if at(index, b"guard") => 6,
            _ => continue,
        };
        best = best.min(rule);
        if best == 0 {
            break;
        }
    }
    RULES.get(best).copied().unwrap_or(ObservationType::Span)
}

/// A handle to one observation. Cheap to clone; every clone updates the same observation.
///
/// A span of a tracer that is not recording (the noop provider, or after shutdown) holds
/// nothing, and every method returns at once without allocating. The observation is recorded
/// when the scope that created it ends ([`SpanGuard`] drop, async span completion), when
/// [`end`](Self::end) is called, or at the latest when the last handle is dropped. Updates after
/// the end are ignored.
#[derive(Clone, Default)]
pub struct Span {
    cell: Option<Arc<SpanCell>>,
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cell {
            Some(cell) => f
                .debug_struct("Span")
                .field("trace_id", &cell.trace_id)
                .field("span_id", &cell.id)
                .finish(),
            None => f.write_str("Span(disabled)"),
        }
    }
}

impl Span {
    /// A span that records nothing.
    #[inline]
    pub const fn none() -> Self {
        Self { cell: None }
    }

    pub(crate) fn from_cell(cell: Arc<SpanCell>) -> Self {
        Self { cell: Some(cell) }
    }

    pub(crate) fn cell(&self) -> Option<&Arc<SpanCell>> {
        self.cell.as_ref()
    }

    #[inline]
    fn update(&self, apply: impl FnOnce(&mut RawObservation)) {
        if let Some(cell) = &self.cell {
            cell.update(apply);
        }
    }

    /// Whether this span records anything.
    #[inline]
    pub fn is_recording(&self) -> bool {
        self.cell.is_some()
    }

    /// The observation id (`None` when not recording).
    pub fn span_id(&self) -> Option<SpanId> {
        self.cell.as_ref().map(|cell| cell.id)
    }

    /// The trace id (`None` when not recording).
    pub fn trace_id(&self) -> Option<TraceId> {
        self.cell.as_ref().map(|cell| cell.trace_id)
    }

    /// The parent observation id (`None` for a root span or when not recording).
    pub fn parent_id(&self) -> Option<SpanId> {
        self.cell.as_ref().and_then(|cell| cell.parent)
    }

    /// Sets an attribute; attributes are exported as the observation's metadata. Setting a key
    /// again replaces its value.
    pub fn set_attribute<V: Serialize + Send + Sync + 'static>(
        &self,
        key: impl Into<Cow<'static, str>>,
        value: V,
    ) {
        if self.cell.is_some() {
            let entry = (key.into(), Payload::new(value));
            self.update(|state| state.attributes.push(entry));
        }
    }

    /// Sets several attributes at once.
    ///
    /// ```
    /// # let span = axion::Span::none();
    /// span.set_attributes([("k", 1), ("top_k", 5)]);
    /// span.set_attributes(serde_json::json!({"doc": "a", "score": 0.9}).as_object().cloned().unwrap());
    /// ```
    pub fn set_attributes<I, K, V>(&self, attributes: I)
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<Cow<'static, str>>,
        V: Serialize + Send + Sync + 'static,
    {
        if self.cell.is_some() {
            let entries: Vec<_> = attributes
                .into_iter()
                .map(|(key, value)| (key.into(), Payload::new(value)))
                .collect();
            self.update(|state| state.attributes.extend(entries));
        }
    }

    /// Sets the input. The value is moved in and serialised later, off this thread.
    pub fn set_input<V: Serialize + Send + Sync + 'static>(&self, value: V) {
        if self.cell.is_some() {
            let payload = Payload::new(value);
            self.update_payloads(Some(payload), None);
        }
    }

    /// Sets the output. The value is moved in and serialised later, off this thread.
    pub fn set_output<V: Serialize + Send + Sync + 'static>(&self, value: V) {
        if self.cell.is_some() {
            let payload = Payload::new(value);
            self.update_payloads(None, Some(payload));
        }
    }

    /// Sets the input from a borrow, serialising it now.
    pub fn set_input_ref<V: Serialize + ?Sized>(&self, value: &V) {
        if self.cell.is_some() {
            let payload = Payload::from_ref(value);
            self.update_payloads(Some(payload), None);
        }
    }

    /// Sets the output from a borrow, serialising it now.
    pub fn set_output_ref<V: Serialize + ?Sized>(&self, value: &V) {
        if self.cell.is_some() {
            let payload = Payload::from_ref(value);
            self.update_payloads(None, Some(payload));
        }
    }

    /// Sets the input of a value that only implements `Debug`, as its `{:?}` text.
    pub fn set_input_debug<V: fmt::Debug + ?Sized>(&self, value: &V) {
        if self.cell.is_some() {
            let payload = Payload::from_debug(value);
            self.update_payloads(Some(payload), None);
        }
    }

    /// Sets the output of a value that only implements `Debug`, as its `{:?}` text.
    pub fn set_output_debug<V: fmt::Debug + ?Sized>(&self, value: &V) {
        if self.cell.is_some() {
            let payload = Payload::from_debug(value);
            self.update_payloads(None, Some(payload));
        }
    }

    /// Records token usage: `input`, `output` and their `total`.
    pub fn set_usage(&self, input_tokens: u64, output_tokens: u64) {
        self.set_usage_details(token_usage(input_tokens, output_tokens));
    }

    /// Records usage by kind (Langfuse's `usageDetails`: `input`, `output`, `total`,
    /// `cache_read_input_tokens`, …). Merges with earlier usage.
    pub fn set_usage_details<I, K>(&self, usage: I)
    where
        I: IntoIterator<Item = (K, u64)>,
        K: Into<String>,
    {
        if self.cell.is_some() {
            let entries = details(usage);
            self.update(|state| merge_details(&mut state.usage_details, entries));
        }
    }

    /// Records the cost in USD (as `costDetails.total`). A cost sent this way wins over the
    /// one a backend would compute from usage.
    pub fn set_cost(&self, total_usd: f64) {
        self.set_cost_details([("total", total_usd)]);
    }

    /// Records cost in USD by kind (`input`, `output`, `total`, …). Merges with earlier cost.
    pub fn set_cost_details<I, K>(&self, cost: I)
    where
        I: IntoIterator<Item = (K, f64)>,
        K: Into<String>,
    {
        if self.cell.is_some() {
            let entries = details(cost);
            self.update(|state| merge_details(&mut state.cost_details, entries));
        }
    }

    /// Sets the model name, which also makes the span a generation unless a type was set.
    pub fn set_model(&self, model: impl Into<String>) {
        if self.cell.is_some() {
            let model = model.into();
            self.update(|state| state.model = Some(model));
        }
    }

    /// Sets the model parameters (temperature, max_tokens, …) from a JSON object; anything
    /// else is stored under `value`.
    pub fn set_model_parameters(&self, parameters: Value) {
        if self.cell.is_some() {
            let map = into_object(parameters);
            self.update(|state| state.model_parameters = Some(map));
        }
    }

    /// Sets the observation type explicitly.
    pub fn set_type(&self, kind: ObservationType) {
        if let Some(cell) = &self.cell {
            cell.set_kind(kind);
        }
    }

    /// Sets the level.
    pub fn set_level(&self, level: ObservationLevel) {
        self.update(|state| state.level = level);
    }

    /// Sets the status message.
    pub fn set_status_message(&self, message: impl Into<String>) {
        if self.cell.is_some() {
            let message = message.into();
            self.update(|state| state.status_message = Some(message));
        }
    }

    /// Sets the version of the code or prompt behind this step.
    pub fn set_version(&self, version: impl Into<String>) {
        if self.cell.is_some() {
            let version = version.into();
            self.update(|state| state.version = Some(version));
        }
    }

    /// Records when the first token of a streamed completion arrived.
    pub fn set_completion_start_time(&self, time: SystemTime) {
        self.update(|state| state.completion_start_time = Some(time));
    }

    /// Moves the start time (for work measured before the span was created).
    pub fn set_start_time(&self, time: SystemTime) {
        self.update(|state| state.start_time = time);
    }

    pub(crate) fn update_payloads(&self, input: Option<Payload>, output: Option<Payload>) {
        self.update(|state| {
            if input.is_some() {
                state.input = input;
            }
            if output.is_some() {
                state.output = output;
            }
        });
    }

    /// Renames the span.
    pub fn set_name(&self, name: impl Into<Cow<'static, str>>) {
        if self.cell.is_some() {
            let name = name.into();
            self.update(|state| state.name = name);
        }
    }

    /// Marks the span failed: level `ERROR`, and the error and its sources as status message.
    pub fn record_error(&self, error: &(dyn std::error::Error + 'static)) {
        if self.cell.is_some() {
            let mut message = error.to_string();
            let mut source = error.source();
            while let Some(cause) = source {
                message.push_str(": ");
                message.push_str(&cause.to_string());
                source = cause.source();
            }
            self.fail(message);
        }
    }

    /// Marks the span failed with a message: level `ERROR` and status message.
    pub fn fail(&self, message: impl Into<String>) {
        if self.cell.is_some() {
            let message = message.into();
            self.update(|state| {
                state.level = ObservationLevel::Error;
                state.status_message = Some(message);
            });
        }
    }

    pub(crate) fn mark_panicked(&self) {
        self.fail("panicked");
    }

    pub(crate) fn mark_cancelled(&self) {
        self.update(|state| {
            if state.status_message.is_none() {
                state.level = ObservationLevel::Warning;
                state.status_message = Some("cancelled before completion".into());
            }
        });
    }

    /// Applies several changes at once (see [`ObservationUpdate`]).
    pub fn update_observation(&self, update: ObservationUpdate) {
        if self.cell.is_some() {
            self.update(|state| update.apply(state));
        }
    }

    /// Updates the trace this span belongs to (name, user, session, tags, …).
    pub fn update_trace(&self, update: TraceUpdate) {
        if let Some(cell) = &self.cell {
            cell.update_trace(update);
        }
    }

    /// Adds a zero-duration event observation under this span, with `data` as its input.
    pub fn add_event<V: Serialize + Send + Sync + 'static>(
        &self,
        name: impl Into<Cow<'static, str>>,
        level: ObservationLevel,
        data: V,
    ) {
        if let Some(cell) = &self.cell {
            let now = SystemTime::now();
            let name = name.into();
            let input = Payload::new(data);
            let event = SpanCell::new_child(
                cell.tracer.clone(),
                cell,
                name,
                Some(ObservationType::Event),
                now,
            );
            event.update(|event| {
                event.level = level;
                event.input = Some(input);
            });
            event.end(now);
        }
    }

    /// Scores this observation.
    pub fn score(
        &self,
        name: impl Into<String>,
        value: impl Into<ScoreValue>,
        comment: Option<&str>,
    ) {
        self.emit_score(name.into(), value.into(), comment, true);
    }

    /// Scores the trace this span belongs to.
    pub fn score_trace(
        &self,
        name: impl Into<String>,
        value: impl Into<ScoreValue>,
        comment: Option<&str>,
    ) {
        self.emit_score(name.into(), value.into(), comment, false);
    }

    fn emit_score(
        &self,
        name: String,
        value: ScoreValue,
        comment: Option<&str>,
        on_observation: bool,
    ) {
        if let Some(cell) = &self.cell {
            let mut score = value
                .into_score(name, comment)
                .with_trace(cell.trace_id.to_string());
            if on_observation {
                score = score.with_observation(cell.id.to_string());
            }
            cell.tracer.emit_score(score);
        }
    }

    /// Ends the span now. Later calls, and later updates, have no effect.
    pub fn end(&self) {
        if let Some(cell) = &self.cell {
            cell.end(SystemTime::now());
        }
    }

    /// A context with this span current (and its tracer).
    pub fn context(&self) -> TraceContext {
        match &self.cell {
            Some(cell) => TraceContext {
                tracer: None,
                span: Some(cell.clone()),
            },
            None => TraceContext::default(),
        }
    }
}

impl BaseSpan for Span {
    fn set_attribute<V: Serialize + Send + Sync + 'static>(
        &self,
        key: impl Into<Cow<'static, str>>,
        value: V,
    ) {
        Span::set_attribute(self, key, value);
    }
    fn set_input<V: Serialize + Send + Sync + 'static>(&self, value: V) {
        Span::set_input(self, value);
    }
    fn set_output<V: Serialize + Send + Sync + 'static>(&self, value: V) {
        Span::set_output(self, value);
    }
}

/// A span that is current until this guard drops; then the span ends and the previous context
/// returns. If the thread panics while the guard is alive, the span is marked failed.
///
/// Not `Send`: do not hold one across an `.await` (use
/// [`Tracer::async_span`](crate::Tracer::async_span) there).
#[must_use = "the span ends as soon as the guard is dropped"]
pub struct SpanGuard {
    /// `None` when not recording: the whole guard is one word that drops to nothing.
    active: Option<ActiveGuard>,
}

/// A recording span and the context it made current (restored after the span ends).
struct ActiveGuard {
    span: Span,
    _context: ContextGuard,
}

/// What a disabled guard derefs to. A `const`, not a `static`: its contents are known where
/// it is used, so the checks on a disabled span fold away.
const DISABLED_SPAN: &Span = &Span::none();

impl SpanGuard {
    #[inline]
    pub(crate) const fn disabled() -> Self {
        Self { active: None }
    }

    #[inline]
    pub(crate) fn enter(span: Span) -> Self {
        if span.cell.is_none() {
            return Self::disabled();
        }
        let context = span.context().attach();
        Self {
            active: Some(ActiveGuard {
                span,
                _context: context,
            }),
        }
    }

    /// Sets the input (see [`Span::set_input`]). Also reachable through `Deref`; defined here
    /// so that on a disabled guard the call compiles to nothing.
    #[inline]
    pub fn set_input<V: Serialize + Send + Sync + 'static>(&self, value: V) {
        if let Some(active) = &self.active {
            active.span.set_input(value);
        }
    }

    /// Sets the output (see [`Span::set_output`]).
    #[inline]
    pub fn set_output<V: Serialize + Send + Sync + 'static>(&self, value: V) {
        if let Some(active) = &self.active {
            active.span.set_output(value);
        }
    }

    /// Sets an attribute (see [`Span::set_attribute`]).
    #[inline]
    pub fn set_attribute<V: Serialize + Send + Sync + 'static>(
        &self,
        key: impl Into<Cow<'static, str>>,
        value: V,
    ) {
        if let Some(active) = &self.active {
            active.span.set_attribute(key, value);
        }
    }

    /// A handle to the span that outlives the guard.
    pub fn span(&self) -> Span {
        self.active
            .as_ref()
            .map_or_else(Span::none, |active| active.span.clone())
    }
}

impl std::ops::Deref for SpanGuard {
    type Target = Span;
    // Inlined across crates: on the noop path every `guard.set_input(..)` goes through here.
    #[inline]
    fn deref(&self) -> &Span {
        self.active
            .as_ref()
            .map_or(DISABLED_SPAN, |active| &active.span)
    }
}

impl Drop for SpanGuard {
    #[inline]
    fn drop(&mut self) {
        if let Some(active) = self.active.take() {
            finish(active);
        }
    }
}

/// Ends the span, then restores the previous context (the fields drop in that order).
#[cold]
#[inline(never)]
fn finish(active: ActiveGuard) {
    if std::thread::panicking() {
        active.span.mark_panicked();
    }
    active.span.end();
}

impl BaseSpan for SpanGuard {
    fn set_attribute<V: Serialize + Send + Sync + 'static>(
        &self,
        key: impl Into<Cow<'static, str>>,
        value: V,
    ) {
        SpanGuard::set_attribute(self, key, value);
    }
    fn set_input<V: Serialize + Send + Sync + 'static>(&self, value: V) {
        SpanGuard::set_input(self, value);
    }
    fn set_output<V: Serialize + Send + Sync + 'static>(&self, value: V) {
        SpanGuard::set_output(self, value);
    }
}

impl fmt::Debug for SpanGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SpanGuard").field(&**self).finish()
    }
}

/// Langfuse's token usage triple.
pub(crate) fn token_usage(input_tokens: u64, output_tokens: u64) -> [(&'static str, u64); 3] {
    [
        ("input", input_tokens),
        ("output", output_tokens),
        ("total", input_tokens + output_tokens),
    ]
}

fn details<K: Into<String>, V>(entries: impl IntoIterator<Item = (K, V)>) -> Vec<(String, V)> {
    entries
        .into_iter()
        .map(|(key, value)| (key.into(), value))
        .collect()
}

/// Merges usage or cost entries into what a span already has.
pub(crate) fn merge_details<V>(
    slot: &mut Option<BTreeMap<String, V>>,
    entries: impl IntoIterator<Item = (String, V)>,
) {
    slot.get_or_insert_with(BTreeMap::new).extend(entries);
}

pub(crate) fn now_timestamp() -> axion_model::Timestamp {
    timestamp(SystemTime::now())
}

impl ScoreValue {
    pub(crate) fn into_score(self, name: String, comment: Option<&str>) -> Score {
        let mut score = match self {
            ScoreValue::Numeric(value) => Score::numeric(name, value),
            ScoreValue::Boolean(value) => Score::boolean(name, value),
            ScoreValue::Categorical(label) => Score::categorical(name, label),
        };
        score.comment = comment.map(str::to_owned);
        score.timestamp = Some(now_timestamp());
        score
    }
}
