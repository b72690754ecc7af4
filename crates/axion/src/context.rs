//! The current tracer and span, following the logical call tree.
//!
//! The context lives in a thread-local slot. Sync spans set it until their guard drops; async
//! spans and [`TraceContext::wrap`] set it around every `poll` of their future, so it follows the
//! future across `.await` points and worker threads. Futures polled *inside* another (the
//! branches of `join!` or `join_all`) see the context of the future that polls them, so
//! concurrent children each nest under the span that awaited them. Spawned tasks and threads do
//! not inherit anything by themselves: carry the context with
//! [`FutureExt::in_current_trace`](crate::FutureExt::in_current_trace) or
//! [`bind_current_trace`](crate::bind_current_trace).

use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use crate::span::{Span, SpanCell};
use crate::Tracer;

/// A snapshot of "where we are": the current tracer and the current span. Cheap to clone.
#[derive(Clone, Default)]
pub struct TraceContext {
    /// The tracer set for this context ([`set_current_tracer`]). `None` with a span: the
    /// span's own tracer, which the span holds anyway (one reference count less per span).
    pub(crate) tracer: Option<Tracer>,
    pub(crate) span: Option<Arc<SpanCell>>,
}

thread_local! {
    static CURRENT: RefCell<TraceContext> = const { RefCell::new(TraceContext { tracer: None, span: None }) };
}

impl TraceContext {
    /// The context of the calling code.
    pub fn current() -> Self {
        CURRENT
            .try_with(|current| current.borrow().clone())
            .unwrap_or_default()
    }

    /// Whether neither a tracer nor a span is set.
    pub fn is_empty(&self) -> bool {
        self.tracer.is_none() && self.span.is_none()
    }

    /// The tracer of this context.
    pub fn tracer(&self) -> Option<&Tracer> {
        self.tracer
            .as_ref()
            .or_else(|| self.span.as_ref().map(|cell| &cell.tracer))
    }

    /// The span of this context.
    pub fn span(&self) -> Option<Span> {
        self.span.clone().map(Span::from_cell)
    }

    /// Makes this context current until the guard drops.
    pub fn attach(self) -> ContextGuard {
        ContextGuard {
            previous: Some(swap(self)),
            _not_send: PhantomData,
        }
    }

    /// Wraps a future so that it runs in this context whenever it is polled.
    pub fn wrap<F: Future>(self, future: F) -> Instrumented<F> {
        Instrumented::new(future, self, None)
    }
}

/// Replaces the calling thread's context, returning the previous one (for layers that cannot
/// hold a guard across callbacks).
#[cfg(feature = "tracing")]
pub(crate) fn swap_current(context: TraceContext) -> TraceContext {
    swap(context)
}

fn swap(context: TraceContext) -> TraceContext {
    CURRENT
        .try_with(|current| current.replace(context))
        .unwrap_or_default()
}

/// Restores the previous context when dropped. Not `Send`: it belongs to the thread that made it.
/// Guards must be dropped in the reverse order of their creation.
#[must_use = "the context is restored as soon as the guard is dropped"]
pub struct ContextGuard {
    previous: Option<TraceContext>,
    _not_send: PhantomData<*const ()>,
}

impl ContextGuard {
    /// Restores the previous context now (the same as dropping the guard).
    pub fn reset(self) {}
}

impl Drop for ContextGuard {
    // Inline with the restore out of line, so a disabled span's guard drops to nothing.
    #[inline]
    fn drop(&mut self) {
        if let Some(previous) = self.previous.take() {
            restore(previous);
        }
    }
}

#[cold]
#[inline(never)]
fn restore(previous: TraceContext) {
    // Dropped outside the borrow: dropping the replaced context may end a span, which must be
    // free to look at the context.
    drop(swap(previous));
}

/// The tracer of the current context, if any.
pub fn current_tracer() -> Option<Tracer> {
    CURRENT
        .try_with(|current| current.borrow().tracer().cloned())
        .ok()
        .flatten()
}

/// Whether a tracer is current.
pub fn has_current_tracer() -> bool {
    CURRENT
        .try_with(|current| current.borrow().tracer().is_some())
        .unwrap_or(false)
}

/// The current span, if any.
pub fn current_span() -> Option<Span> {
    current_span_cell().map(Span::from_cell)
}

pub(crate) fn current_span_cell() -> Option<Arc<SpanCell>> {
    CURRENT
        .try_with(|current| current.borrow().span.clone())
        .ok()
        .flatten()
}

/// Makes `tracer` current (without a span) until the guard drops, which restores the previous
/// tracer; [`ContextGuard::reset`] does the same explicitly.
///
/// ```
/// let tracer = axion::Tracer::new(axion::MetadataType::Llm);
/// assert!(axion::current_tracer().is_none());
/// let guard = axion::set_current_tracer(tracer.clone());
/// assert!(axion::current_tracer().unwrap().same_as(&tracer));
/// guard.reset();
/// assert!(axion::current_tracer().is_none());
/// ```
pub fn set_current_tracer(tracer: Tracer) -> ContextGuard {
    let mut context = TraceContext::current();
    context.tracer = Some(tracer);
    context.attach()
}

/// Clears the current tracer and span on this thread until the guard drops.
pub fn reset_tracer_context() -> ContextGuard {
    TraceContext::default().attach()
}

/// Wraps a closure so that it runs in the caller's current context, wherever it is called:
/// the way to carry a trace into `std::thread::spawn` or a thread pool.
///
/// ```
/// let tracer = axion::Tracer::new(axion::MetadataType::Base);
/// let _guard = axion::set_current_tracer(tracer);
/// let work = axion::bind_current_trace(|| axion::current_tracer().is_some());
/// assert!(std::thread::spawn(work).join().unwrap());
/// ```
pub fn bind_current_trace<F, R>(work: F) -> impl FnOnce() -> R
where
    F: FnOnce() -> R,
{
    let context = TraceContext::current();
    move || {
        let _guard = context.attach();
        work()
    }
}

/// Future adapters that carry the trace context.
pub trait FutureExt: Future + Sized {
    /// Runs this future in the context current *now*, wherever it is polled later: the way to
    /// keep a trace across `tokio::spawn`.
    ///
    /// ```
    /// use axion::FutureExt;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let tracer = axion::Tracer::new(axion::MetadataType::Base);
    /// let _guard = axion::set_current_tracer(tracer);
    /// let seen = tokio::spawn(async { axion::current_tracer().is_some() }.in_current_trace());
    /// assert!(seen.await.unwrap());
    /// # }
    /// ```
    fn in_current_trace(self) -> Instrumented<Self> {
        TraceContext::current().wrap(self)
    }
}

impl<F: Future> FutureExt for F {}

/// Ends a span when dropped, marking it cancelled unless it was completed.
#[doc(hidden)]
pub struct SpanOwner {
    span: Span,
    completed: bool,
}

impl SpanOwner {
    pub(crate) fn new(span: Span) -> Self {
        Self {
            span,
            completed: false,
        }
    }

    /// The work finished (successfully or not): end without the cancelled mark.
    pub fn complete(mut self) {
        self.completed = true;
    }
}

impl Drop for SpanOwner {
    fn drop(&mut self) {
        if !self.completed {
            self.span.mark_cancelled();
        }
        self.span.end();
    }
}

pin_project_lite::pin_project! {
    /// A future that runs in a trace context (and, for async spans, owns its span).
    #[must_use = "futures do nothing unless polled"]
    pub struct Instrumented<F> {
        #[pin]
        inner: F,
        context: TraceContext,
        active: bool,
        owner: Option<SpanOwner>,
    }
}

impl<F> Instrumented<F> {
    pub(crate) fn new(inner: F, context: TraceContext, span: Option<Span>) -> Self {
        let active = !context.is_empty();
        Self {
            inner,
            context,
            active,
            owner: span.map(|span| SpanOwner {
                span,
                completed: false,
            }),
        }
    }
}

impl<F: Future> Future for Instrumented<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        if !*this.active {
            return this.inner.poll(cx);
        }
        let entered = Entered::new(this.context, this.owner.as_ref().map(|owner| &owner.span));
        let output = this.inner.poll(cx);
        drop(entered);
        if output.is_ready() {
            if let Some(mut owner) = this.owner.take() {
                owner.completed = true;
            }
        }
        output
    }
}

/// Moves a future's context into the thread-local slot for one poll, and back afterwards,
/// without touching reference counts. Marks the span failed if the poll panics.
struct Entered<'a> {
    slot: &'a mut TraceContext,
    span: Option<&'a Span>,
}

impl<'a> Entered<'a> {
    fn new(slot: &'a mut TraceContext, span: Option<&'a Span>) -> Self {
        let previous = swap(std::mem::take(slot));
        *slot = previous;
        Self { slot, span }
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(span) = self.span {
                span.mark_panicked();
            }
        }
        let previous = std::mem::take(self.slot);
        *self.slot = swap(previous);
    }
}
