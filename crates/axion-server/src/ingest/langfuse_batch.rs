//! `POST /api/public/ingestion`: Langfuse's legacy batch of typed events.

use chrono::{DateTime, Utc};
use serde_json::Value;

use axion_model::{IngestionEvent, Io};

use super::{
    observation_kind, observation_upsert, parse_time, processing_order, scores, shallow_trace,
    shallow_trace_covered, trace_upsert, EventError, Scope, WriteBatch,
};

/// What a batch produced: the writes, and one result per event for the 207 answer.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// Everything to store.
    pub writes: WriteBatch,
    /// Ids of accepted events (in arrival order), with their status (201).
    pub successes: Vec<String>,
    /// Rejected events: id (or `unknown`) and why.
    pub errors: Vec<(String, EventError)>,
}

/// Why the envelope itself is unreadable (→ 400 for the whole request).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EnvelopeError(pub String);

/// Parses the envelope `{"batch": [...], "metadata"}` and processes every event.
pub fn process(body: &[u8], scope: Scope) -> Result<BatchOutcome, EnvelopeError> {
    let mut envelope: Value = serde_json::from_slice(body)
        .map_err(|error| EnvelopeError(format!("body is not JSON: {error}")))?;
    let Some(Value::Array(batch)) = envelope.get_mut("batch").map(Value::take) else {
        return Err(EnvelopeError("batch: expected an array of events".into()));
    };
    let mut outcome = BatchOutcome::default();
    let mut parsed = Vec::with_capacity(batch.len());
    for (index, raw) in batch.into_iter().enumerate() {
        let id = raw
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| "unknown".into());
        match parse_event(raw) {
            Ok((event, time)) => parsed.push((index, event, Io::default(), time)),
            Err(error) => outcome.errors.push((id, error)),
        }
    }
    process_events(parsed, scope, &mut outcome);
    Ok(outcome)
}

fn parse_event(raw: Value) -> Result<(IngestionEvent, DateTime<Utc>), EventError> {
    let object = raw
        .as_object()
        .ok_or_else(|| EventError::invalid("event: expected an object"))?;
    for key in ["id", "type", "timestamp"] {
        if !object.get(key).is_some_and(Value::is_string) {
            return Err(EventError::invalid(format!("{key}: expected a string")));
        }
    }
    if !object.get("body").is_some_and(Value::is_object) {
        return Err(EventError::invalid("body: expected an object"));
    }
    let time = parse_time(&object["timestamp"], "timestamp")?;
    let event: IngestionEvent =
        serde_json::from_value(raw).map_err(|error| EventError::invalid(error.to_string()))?;
    Ok((event, time))
}

/// Processes parsed events (from the batch route or mapped from OTLP) in Langfuse's order.
pub fn process_events(
    mut events: Vec<(usize, IngestionEvent, Io, DateTime<Utc>)>,
    scope: Scope,
    outcome: &mut BatchOutcome,
) {
    processing_order(&mut events);
    let mut accepted: Vec<(usize, String)> = Vec::with_capacity(events.len());
    for (index, event, io, time) in events {
        let IngestionEvent { id, kind, body, .. } = event;
        match apply(&kind, body, io, time, scope, &mut outcome.writes) {
            Ok(true) => accepted.push((index, id)),
            Ok(false) => {}
            Err(error) => outcome.errors.push((id, error)),
        }
    }
    accepted.sort_by_key(|(index, _)| *index);
    outcome
        .successes
        .extend(accepted.into_iter().map(|(_, id)| id));
}

/// Adds one event's writes; `Ok(false)` for events that are accepted but not stored (`sdk-log`).
fn apply(
    kind: &str,
    body: crate::JsonMap,
    io: Io,
    time: DateTime<Utc>,
    scope: Scope,
    writes: &mut WriteBatch,
) -> Result<bool, EventError> {
    if scope == Scope::ScoresOnly && !matches!(kind, "score-create" | "sdk-log") {
        return Err(EventError {
            status: 401,
            message: "Access Scope Denied".into(),
            error: format!("a public key alone may only send scores, not {kind}"),
        });
    }
    match kind {
        "trace-create" => {
            let mut trace = trace_upsert(body, time)?;
            trace.carry(io);
            writes.traces.push(trace);
        }
        "score-create" => writes.scores.push(scores::score_upsert(body, time)?),
        "sdk-log" => {
            log::debug!("sdk-log: {}", Value::Object(body));
            return Ok(false);
        }
        _ => {
            let (observation_type, is_update) = observation_kind(kind).ok_or_else(|| {
                EventError::invalid(format!(
                    "type: unknown event type {kind:?}; expected trace-create, score-create, sdk-log, \
                     span-*, generation-*, event-create, agent/tool/chain/retriever/evaluator/embedding/guardrail-create \
                     or observation-*"
                ))
            })?;
            let mut observation = observation_upsert(body, observation_type, is_update, time)?;
            observation.carry(io);
            // OTLP maps a span that carries trace attributes to a trace event just before its
            // observation: then the placeholder would add nothing, and is not made at all.
            let covered = writes
                .traces
                .last()
                .is_some_and(|trace| shallow_trace_covered(trace, &observation));
            if !is_update && !covered {
                writes.traces.extend(shallow_trace(&observation));
            }
            writes.observations.push(observation);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_bad_event_fails_alone() {
        let body = json!({"batch": [
            {"id": "e1", "type": "trace-create", "timestamp": "2024-01-01T00:00:00Z", "body": {"id": "t1"}},
            {"id": "e2", "type": "span-create", "timestamp": "2024-01-01T00:00:00Z", "body": {"id": 5}},
            {"id": "e3", "type": "bogus", "timestamp": "2024-01-01T00:00:00Z", "body": {}},
            {"type": "span-create"},
            {"id": "e5", "type": "span-update", "timestamp": "2024-01-01T00:00:01Z", "body": {"id": "s1", "traceId": "t1"}},
            {"id": "e6", "type": "sdk-log", "timestamp": "2024-01-01T00:00:01Z", "body": {"log": "hi"}}
        ]});
        let outcome = process(body.to_string().as_bytes(), Scope::Project).unwrap();
        assert_eq!(outcome.successes, ["e1", "e5"]);
        let failed: Vec<&str> = outcome.errors.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(failed, ["unknown", "e2", "e3"]);
        assert_eq!(outcome.writes.traces.len(), 1);
        assert_eq!(outcome.writes.observations.len(), 1);
    }

    #[test]
    fn public_key_scope_only_sends_scores() {
        let body = json!({"batch": [
            {"id": "e1", "type": "trace-create", "timestamp": "2024-01-01T00:00:00Z", "body": {"id": "t1"}},
            {"id": "e2", "type": "score-create", "timestamp": "2024-01-01T00:00:00Z",
             "body": {"name": "n", "value": 1, "traceId": "t1"}}
        ]});
        let outcome = process(body.to_string().as_bytes(), Scope::ScoresOnly).unwrap();
        assert_eq!(outcome.successes, ["e2"]);
        assert_eq!(outcome.errors[0].1.status, 401);
    }

    #[test]
    fn envelope_errors_name_the_problem() {
        assert!(process(b"[1]", Scope::Project)
            .unwrap_err()
            .0
            .contains("batch"));
        assert!(process(b"{", Scope::Project)
            .unwrap_err()
            .0
            .contains("not JSON"));
    }
}
