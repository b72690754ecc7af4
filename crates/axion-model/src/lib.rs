//! The data model that every part of axion speaks.
//!
//! The SDK's exporters write it, `axion serve` stores it and the loaders read it back, so the
//! three can never drift apart. The JSON form is Langfuse's public API shape (camelCase names,
//! `SCREAMING_CASE` enums), which is also what the console provider prints.
//!
//! ```
//! use axion_model::{Observation, ObservationLevel, ObservationType, SpanId, TraceId};
//!
//! let trace_id = TraceId::from_bytes([7; 16]);
//! let mut observation = Observation::new(SpanId::from_bytes([1; 8]).to_string(), trace_id.to_string());
//! observation.r#type = ObservationType::Generation;
//! observation.model = Some("gpt-4o-mini".into());
//! observation.level = ObservationLevel::Warning;
//!
//! let json = serde_json::to_value(&observation).unwrap();
//! assert_eq!(json["type"], "GENERATION");
//! assert_eq!(json["traceId"], "07070707070707070707070707070707");
//! ```
#![forbid(unsafe_code)]

pub mod canonical_time;
mod ids;
mod ingestion;
mod json_text;
mod observation;
#[cfg(feature = "otlp")]
pub mod otlp;
mod record;
mod score;
mod trace;

pub use ids::{from_hex, random_event_id, to_hex, uuid7_from_parts, IdParseError, SpanId, TraceId};
pub use ingestion::{IngestionBatch, IngestionEvent};
pub use json_text::{write_json_string, write_json_value, Io, JsonText};
pub use observation::{Observation, ObservationLevel, ObservationType, ParseEnumError};
pub use record::Record;
pub use score::{Score, ScoreDataType, ScoreSource};
pub use trace::Trace;

/// Timestamps everywhere in the model: UTC, serialised as RFC 3339.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// Free-form JSON maps (metadata, model parameters).
pub type JsonMap = serde_json::Map<String, serde_json::Value>;
