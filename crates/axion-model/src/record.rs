use serde::{Deserialize, Serialize};

use crate::{Observation, Score, Trace};

/// One thing a tracer emits: a finished observation, a trace (or an update of one), or a score.
///
/// Serialised externally tagged, which is the console provider's line format:
/// `{"observation": {...}}`, `{"trace": {...}}`, `{"score": {...}}`.
///
/// ```
/// use axion_model::{Record, Trace};
///
/// let line = serde_json::to_string(&Record::Trace(Trace::new("t1"))).unwrap();
/// assert_eq!(line, r#"{"trace":{"id":"t1"}}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Record {
    /// A trace, or an update of one.
    Trace(Trace),
    /// A finished observation.
    Observation(Observation),
    /// A score.
    Score(Score),
}
