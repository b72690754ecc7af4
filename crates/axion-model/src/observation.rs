use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{JsonMap, Timestamp};

/// A name that is not one of an enum's variants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {input:?}; expected one of: {expected}")]
pub struct ParseEnumError {
    kind: &'static str,
    input: String,
    expected: &'static str,
}

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident, $kind:literal, { $($(#[$vdoc:meta])* $variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
        #[non_exhaustive]
        pub enum $name {
            $(
                $(#[$vdoc])*
                #[serde(rename = $wire)]
                $variant,
            )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The wire name (`SCREAMING_CASE`).
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $wire),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// Case-insensitive, so `generation`, `Generation` and `GENERATION` all parse.
        impl FromStr for $name {
            type Err = ParseEnumError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $(if s.eq_ignore_ascii_case($wire) { return Ok(Self::$variant); })+
                Err(ParseEnumError {
                    kind: $kind,
                    input: s.to_owned(),
                    expected: concat!($($wire, " "),+),
                })
            }
        }

    };
}

wire_enum!(
    /// What an observation represents; Langfuse renders each type differently.
    ObservationType, "observation type", {
        /// A unit of work with a duration (the default).
        #[default] Span => "SPAN",
        /// An LLM call: model, parameters, usage and cost.
        Generation => "GENERATION",
        /// A point in time without duration.
        Event => "EVENT",
        /// An agent deciding what to do next.
        Agent => "AGENT",
        /// A tool call.
        Tool => "TOOL",
        /// A link between steps (a chain).
        Chain => "CHAIN",
        /// A retrieval step (vector search, database lookup).
        Retriever => "RETRIEVER",
        /// An evaluation of another step's output.
        Evaluator => "EVALUATOR",
        /// An embedding call.
        Embedding => "EMBEDDING",
        /// A guardrail check.
        Guardrail => "GUARDRAIL",
    }
);

wire_enum!(
    /// How noteworthy an observation is; `ERROR` marks failures.
    ObservationLevel, "observation level", {
        /// Verbose detail.
        Debug => "DEBUG",
        /// The ordinary level.
        #[default] Default => "DEFAULT",
        /// Something unexpected that did not fail.
        Warning => "WARNING",
        /// A failure.
        Error => "ERROR",
    }
);

/// One step of a trace: a span, a generation, an event, … (Langfuse's observation).
///
/// Usage and cost are Langfuse's free maps (`input`, `output`, `total`, plus any other key
/// such as `cache_read_input_tokens`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Observation {
    /// Observation id (16 hex characters when it comes from a W3C span id).
    pub id: String,
    /// The trace this observation belongs to.
    pub trace_id: String,
    /// The enclosing observation, `None` for a top-level one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_observation_id: Option<String>,
    /// What kind of step this is.
    #[serde(default)]
    pub r#type: ObservationType,
    /// Step name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When the step began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Timestamp>,
    /// When it ended (`None` for events and for steps still running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Timestamp>,
    /// When the first token arrived (generations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_start_time: Option<Timestamp>,
    /// Input, any JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// Output, any JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Severity.
    #[serde(default)]
    pub level: ObservationLevel,
    /// Why the level is what it is (an error message, usually).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// Version of the code or prompt that produced the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Deployment environment (`production`, `staging`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Model name, as sent by the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Model parameters (temperature, max_tokens, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_parameters: Option<JsonMap>,
    /// Token (or other unit) counts by kind.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_counts"
    )]
    pub usage_details: Option<BTreeMap<String, u64>>,
    /// Cost in USD by kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_details: Option<BTreeMap<String, f64>>,
}

/// Usage counts as read APIs send them: integers, whole floats (`100.0`) or numeric strings;
/// other entries are dropped rather than failing the whole observation.
fn lenient_counts<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<BTreeMap<String, u64>>, D::Error> {
    let raw: Option<BTreeMap<String, Value>> = Option::deserialize(deserializer)?;
    Ok(raw.map(|map| {
        map.into_iter()
            .filter_map(|(key, value)| Some((key, count_from_json(&value)?)))
            .collect()
    }))
}

/// A token count as JSON may carry it: an integer, a non-negative float (rounded) or a numeric
/// string.
pub(crate) fn count_from_json(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => number.as_u64().or_else(|| {
            number
                .as_f64()
                .filter(|f| *f >= 0.0 && f.is_finite())
                .map(|f| f.round() as u64)
        }),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

impl Observation {
    /// An observation of type `SPAN` with only its ids set.
    pub fn new(id: impl Into<String>, trace_id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            trace_id: trace_id.into(),
            parent_observation_id: None,
            r#type: ObservationType::Span,
            name: None,
            start_time: None,
            end_time: None,
            completion_start_time: None,
            input: None,
            output: None,
            metadata: None,
            level: ObservationLevel::Default,
            status_message: None,
            version: None,
            environment: None,
            model: None,
            model_parameters: None,
            usage_details: None,
            cost_details: None,
        }
    }

    /// Seconds between start and end, when both are known.
    pub fn latency_seconds(&self) -> Option<f64> {
        let (start, end) = (self.start_time?, self.end_time?);
        Some((end - start).num_microseconds()? as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_use_wire_names_and_parse_any_case() {
        assert_eq!(
            serde_json::to_string(&ObservationType::Retriever).unwrap(),
            "\"RETRIEVER\""
        );
        assert_eq!(
            "generation".parse::<ObservationType>().unwrap(),
            ObservationType::Generation
        );
        assert_eq!(
            "Warning".parse::<ObservationLevel>().unwrap(),
            ObservationLevel::Warning
        );
        let error = "bogus".parse::<ObservationLevel>().unwrap_err().to_string();
        assert!(error.contains("DEBUG DEFAULT WARNING ERROR"), "{error}");
        assert_eq!(ObservationType::ALL.len(), 10);
    }

    #[test]
    fn optional_fields_are_left_out() {
        let json = serde_json::to_value(Observation::new("a", "b")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"id": "a", "traceId": "b", "type": "SPAN", "level": "DEFAULT"})
        );
    }

    #[test]
    fn reads_langfuse_read_api_shape() {
        let observation: Observation = serde_json::from_value(serde_json::json!({
            "id": "o1", "traceId": "t1", "type": "GENERATION", "name": "llm",
            "startTime": "2024-05-01T10:00:00.000Z", "endTime": "2024-05-01T10:00:01.500Z",
            "usageDetails": {"input": 10, "output": 5, "total": 15}, "projectId": "ignored",
            "level": "ERROR", "statusMessage": "boom"
        }))
        .unwrap();
        assert_eq!(observation.r#type, ObservationType::Generation);
        assert_eq!(observation.latency_seconds(), Some(1.5));
        assert_eq!(observation.usage_details.unwrap()["total"], 15);
        assert_eq!(observation.level, ObservationLevel::Error);
    }
}
