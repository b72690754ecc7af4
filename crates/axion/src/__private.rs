//! Support for the code that `#[trace]` generates. Not a public API.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;
use serde_json::Value;

pub use serde_json;

use crate::context::{Instrumented, SpanOwner};
use crate::{HasTracer, ObservationType, Span, SpanGuard, Tracer};

/// Whether any tracer records (one relaxed load); when not, `#[trace]` does nothing else.
#[inline(always)]
pub fn any_recording() -> bool {
    crate::tracer::any_recording()
}

/// Wraps a value so that method resolution can pick the best available behaviour for its type.
pub struct Probe<'a, T: ?Sized>(pub &'a T);

/// `self` has its own tracer.
pub trait ViaOwnTracer {
    fn __axion_tracer(&self) -> Option<Tracer>;
}

impl<T: HasTracer + ?Sized> ViaOwnTracer for &Probe<'_, T> {
    #[inline]
    fn __axion_tracer(&self) -> Option<Tracer> {
        let tracer = self.0.tracer();
        tracer.is_recording().then(|| tracer.clone())
    }
}

/// Anything else: the context's tracer, then the global default.
pub trait ViaContext {
    fn __axion_tracer(&self) -> Option<Tracer>;
}

impl<T: ?Sized> ViaContext for Probe<'_, T> {
    #[inline]
    fn __axion_tracer(&self) -> Option<Tracer> {
        context_tracer()
    }
}

/// The context's tracer, then the global default, if it records.
#[inline]
pub fn context_tracer() -> Option<Tracer> {
    crate::context::current_tracer()
        .or_else(crate::tracer::default_global_tracer)
        .filter(Tracer::is_recording)
}

/// Starts a span for a traced function (not current yet).
#[inline]
pub fn start(tracer: Option<Tracer>, name: &'static str, kind: Option<ObservationType>) -> Span {
    match tracer {
        Some(tracer) => {
            let builder = tracer.span_builder(Cow::Borrowed(name));
            match kind {
                Some(kind) => builder.kind(kind).start(),
                None => builder.start(),
            }
        }
        None => Span::none(),
    }
}

/// Makes the span current until the guard drops (sync functions).
#[inline]
pub fn enter(span: Span) -> SpanGuard {
    SpanGuard::enter(span)
}

/// Runs a future with the span current, without ending it (async functions end it through
/// [`own`], after capturing the result).
#[inline]
pub fn instrument<F: std::future::Future>(span: &Span, future: F) -> Instrumented<F> {
    Instrumented::new(future, span.context(), None)
}

/// Ends the span when dropped; marks it cancelled unless `SpanOwner::complete` was called.
#[inline]
pub fn own(span: Span) -> SpanOwner {
    SpanOwner::new(span)
}

/// Captured form of a value: JSON if it implements `Serialize`.
pub struct Capture<'a, T: ?Sized>(pub &'a T);

pub trait CaptureSerialize {
    fn __axion_capture(&self) -> Value;
}
impl<T: Serialize + ?Sized> CaptureSerialize for &&Capture<'_, T> {
    fn __axion_capture(&self) -> Value {
        crate::payload::to_json_lossy(self.0)
    }
}

/// …else its `Debug` text…
pub trait CaptureDebug {
    fn __axion_capture(&self) -> Value;
}
impl<T: fmt::Debug + ?Sized> CaptureDebug for &Capture<'_, T> {
    fn __axion_capture(&self) -> Value {
        Value::String(format!("{:?}", self.0))
    }
}

/// …else `<TypeName>`.
pub trait CaptureOpaque {
    fn __axion_capture(&self) -> Value;
}
impl<T: ?Sized> CaptureOpaque for Capture<'_, T> {
    fn __axion_capture(&self) -> Value {
        Value::String(format!("<{}>", std::any::type_name::<T>()))
    }
}

/// An error's message: `Display` if it has one…
pub trait ErrorDisplay {
    fn __axion_message(&self) -> String;
}
impl<T: fmt::Display + ?Sized> ErrorDisplay for &&Capture<'_, T> {
    fn __axion_message(&self) -> String {
        self.0.to_string()
    }
}

/// …else `Debug`…
pub trait ErrorDebug {
    fn __axion_message(&self) -> String;
}
impl<T: fmt::Debug + ?Sized> ErrorDebug for &Capture<'_, T> {
    fn __axion_message(&self) -> String {
        format!("{:?}", self.0)
    }
}

/// …else the type name.
pub trait ErrorOpaque {
    fn __axion_message(&self) -> String;
}
impl<T: ?Sized> ErrorOpaque for Capture<'_, T> {
    fn __axion_message(&self) -> String {
        std::any::type_name::<T>().to_owned()
    }
}

/// Records a failed result: level `ERROR`, the message as status, the error type as attribute.
pub fn record_err<E: ?Sized>(span: &Span, _error: &E, message: String) {
    span.set_attribute("error.type", std::any::type_name::<E>());
    span.fail(message);
}
