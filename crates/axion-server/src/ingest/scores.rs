//! Scores, from `score-create` events and `POST /api/public/scores` (object or array).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{
    format_time, move_metadata, move_string, normalize_environment, take_string, valid_id,
    EventError, Upsert,
};
use crate::JsonMap;

/// Validates a score body and fills in what Langfuse derives: the data type from the value,
/// `stringValue` for booleans and categories, a fresh id when none was sent.
pub fn score_upsert(mut body: JsonMap, time: DateTime<Utc>) -> Result<Upsert, EventError> {
    let id = match body.get("id") {
        None | Some(Value::Null) => axion_model::random_event_id(),
        Some(value) => valid_id(value, "id")?,
    };
    let name = take_string(&mut body, "name")?
        .filter(|name| !name.is_empty())
        .ok_or_else(|| EventError::invalid("name: required, non-empty"))?;
    let declared = take_string(&mut body, "dataType")?.map(|kind| kind.to_ascii_uppercase());
    let value = body
        .get("value")
        .filter(|value| !value.is_null())
        .ok_or_else(|| EventError::invalid("value: required (number or string)"))?;
    let data_type = match (declared.as_deref(), value) {
        (Some(kind), _) => kind.to_owned(),
        (None, Value::String(_)) => "CATEGORICAL".into(),
        (None, Value::Bool(_)) => "BOOLEAN".into(),
        (None, _) => "NUMERIC".into(),
    };
    let mut patch = JsonMap::new();
    let mut name = name;
    let (number, text) = match (data_type.as_str(), value) {
        ("NUMERIC", Value::Number(number)) => (number.as_f64().unwrap_or(0.0), None),
        ("BOOLEAN", Value::Bool(flag)) => (f64::from(u8::from(*flag)), None),
        ("BOOLEAN", Value::Number(number)) if matches!(number.as_f64(), Some(v) if v == 0.0 || v == 1.0) => {
            (number.as_f64().unwrap_or(0.0), None)
        }
        ("BOOLEAN", _) => return Err(EventError::invalid("value: a BOOLEAN score must be 0 or 1")),
        ("CATEGORICAL", Value::String(category)) => (0.0, Some(category.clone())),
        ("TEXT", Value::String(text)) if (1..=500).contains(&text.chars().count()) => (0.0, Some(text.clone())),
        ("TEXT", _) => return Err(EventError::invalid("value: a TEXT score is a string of 1..500 characters")),
        ("CORRECTION", Value::String(text)) => {
            name = "output".into();
            (0.0, Some(text.clone()))
        }
        ("NUMERIC" | "CATEGORICAL" | "CORRECTION", _) => {
            return Err(EventError::invalid(format!(
                "value: does not match dataType {data_type} (NUMERIC takes a number, CATEGORICAL/CORRECTION a string)"
            )))
        }
        (other, _) => {
            return Err(EventError::invalid(format!(
                "dataType: unknown {other:?}; expected NUMERIC, CATEGORICAL, BOOLEAN, TEXT or CORRECTION"
            )))
        }
    };
    let text = match data_type.as_str() {
        "BOOLEAN" => Some(if number == 1.0 { "True" } else { "False" }.to_owned()),
        _ => text,
    };
    patch.insert("id".into(), Value::String(id.clone()));
    patch.insert("name".into(), Value::String(name));
    patch.insert("value".into(), Value::from(number));
    if let Some(text) = text {
        patch.insert("stringValue".into(), Value::String(text));
    }
    patch.insert("dataType".into(), Value::String(data_type));
    for key in ["traceId", "observationId", "sessionId", "datasetRunId"] {
        if let Some(value) = body.get(key).filter(|value| !value.is_null()) {
            patch.insert(key.into(), Value::String(valid_id(value, key)?));
        }
    }
    if !["traceId", "sessionId", "datasetRunId"]
        .iter()
        .any(|key| patch.contains_key(*key))
    {
        return Err(EventError::invalid(
            "a score needs a traceId, sessionId or datasetRunId to attach to",
        ));
    }
    for key in ["comment", "configId", "queueId"] {
        move_string(&mut body, key, &mut patch)?;
    }
    move_metadata(&mut body, &mut patch);
    let source = take_string(&mut body, "source")?
        .map(|source| source.to_ascii_uppercase())
        .unwrap_or_else(|| "API".into());
    if !matches!(source.as_str(), "API" | "ANNOTATION" | "EVAL") {
        return Err(EventError::invalid(
            "source: expected API, ANNOTATION or EVAL",
        ));
    }
    patch.insert("source".into(), Value::String(source));
    let timestamp = match body.get("timestamp") {
        None | Some(Value::Null) => time,
        Some(value) => super::parse_time(value, "timestamp")?,
    };
    patch.insert("timestamp".into(), Value::String(format_time(timestamp)));
    patch.insert(
        "environment".into(),
        Value::String(normalize_environment(body.get("environment"))),
    );
    Ok(Upsert::new(id, patch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn score(body: Value) -> Result<JsonMap, EventError> {
        score_upsert(body.as_object().unwrap().clone(), Utc::now()).map(|upsert| upsert.patch)
    }

    #[test]
    fn data_types_are_inferred_and_checked() {
        let numeric = score(json!({"name": "accuracy", "value": 0.95, "traceId": "t"})).unwrap();
        assert_eq!(numeric["dataType"], "NUMERIC");
        assert!(!numeric.contains_key("stringValue"));
        let category = score(json!({"name": "tone", "value": "friendly", "traceId": "t"})).unwrap();
        assert_eq!(
            (
                &category["dataType"],
                &category["stringValue"],
                &category["value"]
            ),
            (&json!("CATEGORICAL"), &json!("friendly"), &json!(0.0))
        );
        let boolean = score(json!({"name": "ok", "value": 1, "dataType": "BOOLEAN", "observationId": "o", "traceId": "t"})).unwrap();
        assert_eq!(boolean["stringValue"], "True");
        assert!(
            score(json!({"name": "ok", "value": 2, "dataType": "BOOLEAN", "traceId": "t"}))
                .is_err()
        );
        assert!(score(json!({"name": "", "value": 1, "traceId": "t"})).is_err());
        assert!(score(json!({"name": "n", "value": 1}))
            .unwrap_err()
            .error
            .contains("traceId"));
    }
}
