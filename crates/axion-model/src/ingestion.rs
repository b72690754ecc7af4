//! The Langfuse ingestion envelope: the unit every write path speaks.
//!
//! `POST /api/public/ingestion` carries these events directly; OTLP spans are mapped to them
//! ([`crate::otlp`]) so a server has exactly one way to store traces, observations and scores.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::JsonMap;

/// One event of an ingestion batch, e.g. `{"id", "type": "span-create", "timestamp", "body"}`.
///
/// ```
/// use axion_model::IngestionEvent;
///
/// let event = IngestionEvent::new("trace-create", serde_json::json!({"id": "t1", "name": "chat"}));
/// assert_eq!(event.entity_id(), Some("t1"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IngestionEvent {
    /// Unique per event (the entity id lives in `body.id`).
    pub id: String,
    /// The event type, e.g. `trace-create`, `generation-update`, `score-create`.
    #[serde(rename = "type")]
    pub kind: String,
    /// ISO-8601 with offset; the default for a missing trace timestamp or observation start.
    pub timestamp: String,
    /// The entity fields, in Langfuse's camelCase names.
    pub body: JsonMap,
    /// Free-form metadata about the event itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

impl IngestionEvent {
    /// An event of `kind` with a fresh id and the current time.
    pub fn new(kind: impl Into<String>, body: Value) -> Self {
        let body = match body {
            Value::Object(map) => map,
            other => {
                let mut map = JsonMap::new();
                map.insert("value".into(), other);
                map
            }
        };
        Self {
            id: crate::ids::random_event_id(),
            kind: kind.into(),
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            body,
            metadata: None,
        }
    }

    /// `body.id` when it is a string.
    pub fn entity_id(&self) -> Option<&str> {
        self.body.get("id").and_then(Value::as_str)
    }
}

/// The body of `POST /api/public/ingestion`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IngestionBatch {
    /// The events, in the order the client produced them.
    pub batch: Vec<IngestionEvent>,
    /// SDK information (`sdk_name`, `sdk_version`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}
