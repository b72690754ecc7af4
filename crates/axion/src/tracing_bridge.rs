//! A [`tracing_subscriber::Layer`] that turns `tracing` spans (`#[instrument]`, `info_span!`)
//! into axion observations in the same traces: a `tracing` span opened inside an axion span is
//! its child, an axion span opened inside an entered `tracing` span is the tracing span's child,
//! and `tracing` events become zero-duration EVENT observations.
//!
//! Fields named `input` and `output` become the observation's input and output (JSON text is
//! decoded); other fields become attributes. `ERROR`/`WARN` events raise the event's level.
//!
//! ```
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let tracer = axion::Tracer::new(axion::MetadataType::Base);
//! let subscriber = tracing_subscriber::registry().with(axion::tracing_bridge::AxionLayer::with_tracer(tracer));
//! tracing::subscriber::with_default(subscriber, || {
//!     let _span = tracing::info_span!("load_config", path = "app.toml").entered();
//!     tracing::info!(keys = 3, "config loaded");
//! });
//! ```

use std::cell::RefCell;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::context::{current_span, current_tracer, TraceContext};
use crate::{MetadataType, ObservationLevel, Span, Tracer};

/// The layer. Spans go to the given tracer, else the current one, else the default.
#[derive(Debug, Clone, Default)]
pub struct AxionLayer {
    tracer: Option<Tracer>,
}

impl AxionLayer {
    /// Records into the tracer current where each span starts (or the default tracer).
    pub fn new() -> Self {
        Self::default()
    }

    /// Records into `tracer`.
    pub fn with_tracer(tracer: Tracer) -> Self {
        Self {
            tracer: Some(tracer),
        }
    }

    fn tracer(&self) -> Tracer {
        self.tracer
            .clone()
            .or_else(current_tracer)
            .unwrap_or_else(|| crate::init_tracer(MetadataType::Base))
    }
}

/// The axion span of a `tracing` span, kept in its extensions.
struct Bridged(Span);

thread_local! {
    /// Contexts replaced by `on_enter`, restored by `on_exit` (spans enter and exit LIFO per thread).
    static ENTERED: RefCell<Vec<TraceContext>> = const { RefCell::new(Vec::new()) };
}

#[derive(Default)]
struct Fields {
    input: Option<Value>,
    output: Option<Value>,
    message: Option<String>,
    other: Map<String, Value>,
}

fn json_or_text(text: &str) -> Value {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        if let Ok(value) = serde_json::from_str(trimmed) {
            return value;
        }
    }
    Value::String(text.to_owned())
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        match field.name() {
            "input" => self.input = Some(value),
            "output" => self.output = Some(value),
            "message" => {
                self.message = Some(
                    value
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| value.to_string()),
                )
            }
            name => {
                self.other.insert(name.to_owned(), value);
            }
        }
    }

    fn apply(self, span: &Span) {
        if let Some(input) = self.input {
            span.set_input(input);
        }
        if let Some(output) = self.output {
            span.set_output(output);
        }
        for (key, value) in self.other {
            span.set_attribute(key, value);
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, json_or_text(&format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, json_or_text(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(value.to_string()));
    }
}

impl<S> Layer<S> for AxionLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span_ref) = ctx.span(id) else { return };
        let tracer = self.tracer();
        if !tracer.is_recording() {
            return;
        }
        let parent = span_ref
            .parent()
            .and_then(|parent| {
                parent
                    .extensions()
                    .get::<Bridged>()
                    .map(|bridged| bridged.0.clone())
            })
            .or_else(current_span);
        let builder = tracer.span_builder(attributes.metadata().name());
        let builder = match &parent {
            Some(parent) => builder.child_of(parent),
            None => builder,
        };
        let span = builder.start();
        let mut fields = Fields::default();
        attributes.record(&mut fields);
        span.set_attribute("code.target", attributes.metadata().target().to_owned());
        fields.apply(&span);
        span_ref.extensions_mut().insert(Bridged(span));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span_ref) = ctx.span(id) else { return };
        let span = span_ref
            .extensions()
            .get::<Bridged>()
            .map(|bridged| bridged.0.clone());
        if let Some(span) = span {
            let mut fields = Fields::default();
            values.record(&mut fields);
            fields.apply(&span);
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span_ref) = ctx.span(id) else { return };
        let Some(context) = span_ref
            .extensions()
            .get::<Bridged>()
            .map(|bridged| bridged.0.context())
        else {
            return;
        };
        let previous = crate::context::swap_current(context);
        let _ = ENTERED.try_with(|stack| stack.borrow_mut().push(previous));
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span_ref) = ctx.span(id) else { return };
        if span_ref.extensions().get::<Bridged>().is_none() {
            return;
        }
        if let Ok(Some(previous)) = ENTERED.try_with(|stack| stack.borrow_mut().pop()) {
            crate::context::swap_current(previous);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let parent = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| {
                if event.is_contextual() {
                    ctx.lookup_current()
                } else {
                    None
                }
            })
            .and_then(|span_ref| {
                span_ref
                    .extensions()
                    .get::<Bridged>()
                    .map(|bridged| bridged.0.clone())
            })
            .or_else(current_span);
        let Some(parent) = parent else { return };
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = match *event.metadata().level() {
            Level::ERROR => ObservationLevel::Error,
            Level::WARN => ObservationLevel::Warning,
            Level::DEBUG | Level::TRACE => ObservationLevel::Debug,
            _ => ObservationLevel::Default,
        };
        let name = fields
            .message
            .clone()
            .unwrap_or_else(|| event.metadata().name().to_owned());
        let mut data = fields.other;
        if let Some(input) = fields.input {
            data.insert("input".into(), input);
        }
        if let Some(output) = fields.output {
            data.insert("output".into(), output);
        }
        data.insert(
            "target".into(),
            Value::String(event.metadata().target().to_owned()),
        );
        parent.add_event(name, level, Value::Object(data));
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span_ref) = ctx.span(&id) else {
            return;
        };
        let bridged = span_ref.extensions_mut().remove::<Bridged>();
        if let Some(bridged) = bridged {
            bridged.0.end();
        }
    }
}
