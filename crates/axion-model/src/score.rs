use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Timestamp;

/// How a score's value is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ScoreDataType {
    /// A number (`value`).
    Numeric,
    /// A label (`stringValue`).
    Categorical,
    /// `value` is 0 or 1; `stringValue` is `"True"` or `"False"`.
    Boolean,
    /// Free text (`stringValue`).
    Text,
}

/// Who produced a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ScoreSource {
    /// Sent through the API (SDKs, evaluation runs).
    #[default]
    Api,
    /// Produced by an automated evaluator.
    Eval,
    /// Set by a person in a UI.
    Annotation,
}

/// A score on a trace, an observation or a session.
///
/// ```
/// use axion_model::{Score, ScoreDataType};
///
/// let score = Score::numeric("context_relevance", 0.91).with_trace("abc");
/// assert_eq!(score.data_type, Some(ScoreDataType::Numeric));
/// let flag = Score::boolean("grounded", true);
/// assert_eq!((flag.value, flag.string_value.as_deref()), (1.0, Some("True")));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Score {
    /// Score id; stores treat a repeated id as an update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The trace scored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The observation scored, for observation-level scores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation_id: Option<String>,
    /// The session scored, for session-level scores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Metric name.
    pub name: String,
    /// Numeric value (0/1 for booleans, 0 for categorical and text scores).
    pub value: f64,
    /// The label of categorical, boolean and text scores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_value: Option<String>,
    /// How to read the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<ScoreDataType>,
    /// Why the score is what it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Who produced it.
    #[serde(default)]
    pub source: ScoreSource,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// When it was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    /// Deployment environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

impl Score {
    fn with_value(
        name: impl Into<String>,
        value: f64,
        string_value: Option<String>,
        data_type: ScoreDataType,
    ) -> Self {
        Self {
            id: None,
            trace_id: None,
            observation_id: None,
            session_id: None,
            name: name.into(),
            value,
            string_value,
            data_type: Some(data_type),
            comment: None,
            source: ScoreSource::Api,
            metadata: None,
            timestamp: None,
            environment: None,
        }
    }

    /// A numeric score.
    pub fn numeric(name: impl Into<String>, value: f64) -> Self {
        Self::with_value(name, value, None, ScoreDataType::Numeric)
    }

    /// A boolean score, stored as Langfuse does (`1`/`0` and `"True"`/`"False"`).
    pub fn boolean(name: impl Into<String>, value: bool) -> Self {
        let label = if value { "True" } else { "False" };
        Self::with_value(
            name,
            f64::from(u8::from(value)),
            Some(label.into()),
            ScoreDataType::Boolean,
        )
    }

    /// A categorical score (a label).
    pub fn categorical(name: impl Into<String>, label: impl Into<String>) -> Self {
        Self::with_value(name, 0.0, Some(label.into()), ScoreDataType::Categorical)
    }

    /// Attaches the score to a trace.
    pub fn with_trace(mut self, trace_id: impl Into<String>) -> Self {
        self.trace_id = Some(trace_id.into());
        self
    }

    /// Attaches the score to an observation of its trace.
    pub fn with_observation(mut self, observation_id: impl Into<String>) -> Self {
        self.observation_id = Some(observation_id.into());
        self
    }

    /// Adds a comment.
    pub fn with_comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }
}
