//! Getting records out of the process: one batching pipeline shared by every exporter, and
//! the exporters themselves.

pub mod console;
pub mod http;
pub mod langfuse;
pub mod logfire;
pub mod opik;
pub mod otel;
pub mod otlp;
mod pipeline;
mod reaper;

pub use pipeline::{BatchPipeline, Delivery, Exporter, PipelineConfig, PipelineTracer};
