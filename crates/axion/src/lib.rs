//! # axion: LLM observability for Rust
//!
//! Instrument an LLM application once; send its traces to Langfuse, Opik, Logfire, any
//! OpenTelemetry backend or `axion serve` by changing one environment variable; pay nothing
//! when tracing is off.
//!
//! ## A first trace
//!
//! A [`Tracer`] creates spans. Each span becomes one *observation* (a step: a retrieval, an
//! LLM call, a tool call) and the outermost one defines the *trace*.
//!
//! ```
//! use axion::{MetadataType, Tracer};
//!
//! let tracer = Tracer::new(MetadataType::Llm);
//! let answer = {
//!     let span = tracer.span("answer_question");
//!     span.set_input("What is axion?");
//!     let generation = tracer.span("generate");
//!     generation.set_model("gpt-4o-mini");
//!     generation.set_usage(12, 30);
//!     generation.set_output("An observability toolkit.");
//!     "An observability toolkit."
//! };
//! assert!(!answer.is_empty());
//! ```
//!
//! Which backend receives it is chosen on first use from the environment
//! ([`detect_provider`]): `TRACING_MODE=console` prints JSON lines, `LANGFUSE_SECRET_KEY`
//! selects Langfuse, and so on; with nothing set, tracing is a no-op. [`configure_tracing`]
//! chooses explicitly, and [`TracerRegistry`] takes your own providers.
//!
//! ## `#[trace]`
//!
//! The attribute wraps a function in a span. Arguments and results are captured on request;
//! an `Err` marks the span as failed; a panic marks it failed and keeps unwinding.
//!
//! ```
//! use axion::trace;
//!
//! #[trace(capture_args, capture_result)]
//! fn add(a: u32, b: u32) -> u32 {
//!     a + b
//! }
//!
//! #[trace(name = "fetch_user")]
//! async fn fetch(id: u64) -> Result<String, std::io::Error> {
//!     Ok(format!("user-{id}"))
//! }
//! # assert_eq!(add(1, 2), 3);
//! ```
//!
//! On methods, the span goes to `self`'s tracer when the type implements [`HasTracer`]
//! (`#[derive(HasTracer)]` finds a field named `tracer`); otherwise to the current context's
//! tracer, then the global default ([`set_default_global_tracer`]); with none of them the
//! function runs untraced.
//!
//! ## Async code and context
//!
//! The current span follows the logical call tree: across `.await`, into the branches of
//! `join!` and `join_all` (each child nests under the span that awaited it), and, when you ask
//! for it, into spawned tasks ([`FutureExt::in_current_trace`]) and threads
//! ([`bind_current_trace`]).
//!
//! ```
//! use axion::{FutureExt, MetadataType, Tracer};
//! # #[tokio::main]
//! # async fn main() {
//! let tracer = Tracer::new(MetadataType::Base);
//! tracer
//!     .async_span("pipeline", |_span| async {
//!         let child = tokio::spawn(async { axion::current_span().is_some() }.in_current_trace());
//!         child.await.unwrap()
//!     })
//!     .await;
//! # }
//! ```
//!
//! ## Trace-level data and scores
//!
//! From anywhere inside a trace: [`update_current_trace`] (user, session, tags, metadata, …),
//! [`update_current_observation`], [`score_current_trace`].
//!
//! ## Delivery
//!
//! Providers that ship records queue them (bounded, counted drops) and serialise them on a
//! background thread. Call [`Tracer::flush`] or hold a [`shutdown_guard`] in `main` so that
//! everything is delivered before the process exits.
#![forbid(unsafe_code)]

pub mod collection;
mod config;
mod context;
pub mod dataset;
mod error;
pub mod eval;
pub mod export;
mod ids;
pub mod load;
mod payload;
mod provider;
pub mod publish;
mod recycle;
mod registry;
mod span;
mod stats;
mod trace_update;
mod tracer;
#[cfg(feature = "tracing")]
pub mod tracing_bridge;

#[doc(hidden)]
pub mod __private;

pub use axion_macros::{trace, HasTracer};
pub use axion_model::{self as model, ObservationLevel, ObservationType, SpanId, TraceId};
pub use config::{
    clear_tracing_config, configure_tracing, configure_tracing_with, configured_provider_name,
    detect_provider, flush_tracing, is_tracing_configured, list_providers, shutdown_guard,
    shutdown_tracing, Detection, Settings, ShutdownGuard,
};
pub use context::{
    bind_current_trace, current_span, current_tracer, has_current_tracer, reset_tracer_context,
    set_current_tracer, ContextGuard, FutureExt, Instrumented, TraceContext,
};
pub use error::{Error, Result};
pub use payload::Payload;
pub use provider::{
    BaseTracer, ExportStats, FlushReport, NoopTracer, RawObservation, RawRecord, RawRoot, RawTrace,
};
pub use registry::{ProviderFactory, TracerRegistry};
pub use span::{BaseSpan, Span, SpanGuard};
pub use stats::{DatabaseStats, EvaluationStats, KnowledgeStats, LlmStats, TracerStats};
pub use trace_update::{ObservationUpdate, ScoreValue, TraceUpdate};
pub use tracer::{
    default_global_tracer, init_tracer, init_tracer_with, score_current_observation,
    score_current_trace, set_default_global_tracer, update_current_observation,
    update_current_trace, LifecycleStatus, LlmCall, MetadataType, SpanBuilder, ToolMetadata,
    TraceEvent, Tracer, TracerBuilder, MAX_LOCAL_EVENTS,
};

/// Types that carry their own tracer; `#[trace]` on their methods uses it.
///
/// Derive it for a struct with a field named `tracer` (or marked `#[tracer]`):
///
/// ```
/// use axion::{HasTracer, MetadataType, Tracer};
///
/// #[derive(HasTracer)]
/// struct Service {
///     tracer: Tracer,
/// }
///
/// impl Service {
///     #[axion::trace]
///     fn handle(&self) -> u8 {
///         7
///     }
/// }
///
/// let service = Service { tracer: Tracer::new(MetadataType::Base) };
/// assert_eq!(service.handle(), 7);
/// ```
pub trait HasTracer {
    /// The tracer for this value's spans.
    fn tracer(&self) -> &Tracer;
}
