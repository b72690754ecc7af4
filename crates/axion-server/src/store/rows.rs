//! Rows ready to store: column values and the serialised body of every trace and observation
//! in a batch, computed on the request's thread so a store's single writer only runs SQL.
//!
//! The common case is a new id, and its row comes straight from the normalised patch. An id
//! that exists already is merged with the stored record by the writer ([`trace_row`] and
//! [`observation_row`] then run on the merged body).

use std::collections::HashMap;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use axion_model::Io;

use crate::cost::Pricing;
use crate::ingest::{merge_owned, time_micros, Upsert, WriteBatch};
use crate::ingest::{OBSERVATION_IMMUTABLE, SCORE_IMMUTABLE, TRACE_IMMUTABLE};
use crate::JsonMap;

/// A record's body as stored: the merged fields without nulls and empty objects (a merge skips
/// them too), with `overrides` replacing or adding fields (defaults, a clamped end time), and
/// the input and output text as it came (over any in `fields`).
struct Body<'a> {
    fields: &'a JsonMap,
    io: &'a Io,
    overrides: Vec<(&'static str, Value)>,
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

impl<'a> Body<'a> {
    fn new(fields: &'a JsonMap, io: &'a Io) -> Self {
        Self {
            fields,
            io,
            overrides: Vec::new(),
        }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.overrides
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, value)| value)
            .or_else(|| self.fields.get(key).filter(|value| !is_empty(value)))
    }

    fn text(&self, key: &str) -> Option<String> {
        self.get(key).and_then(Value::as_str).map(str::to_owned)
    }

    fn default(&mut self, key: &'static str, value: &str) {
        if self.get(key).is_none() {
            self.overrides.push((key, Value::String(value.to_owned())));
        }
    }

    fn to_json(&self) -> String {
        // Sized for a typical body up front: growing from serde_json's 128 bytes copied each
        // body several times.
        let io_len: usize = self
            .io
            .fields()
            .map(|(_, text)| text.as_str().len() + 12)
            .sum();
        let mut out = Vec::with_capacity(1024 + io_len);
        if serde_json::to_writer(&mut out, self).is_err() {
            return "{}".into();
        }
        // The input and output text goes in as it came: it is valid JSON already.
        if out.last() == Some(&b'}') && !self.io.is_empty() {
            out.pop();
            for (key, text) in self.io.fields() {
                if out.len() > 1 {
                    out.push(b',');
                }
                out.extend_from_slice(b"\"");
                out.extend_from_slice(key.as_bytes());
                out.extend_from_slice(b"\":");
                out.extend_from_slice(text.as_str().as_bytes());
            }
            out.push(b'}');
        }
        String::from_utf8(out).unwrap_or_else(|_| "{}".into())
    }
}

impl Serialize for Body<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self.fields {
            let overridden = self.overrides.iter().any(|(name, _)| name == key)
                || self.io.fields().any(|(name, _)| name == key);
            if !overridden && !is_empty(value) {
                map.serialize_entry(key, value)?;
            }
        }
        for (key, value) in &self.overrides {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// A trace's columns.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceRow {
    /// Microseconds since the epoch (`now` when the body has none).
    pub timestamp: i64,
    /// `name`.
    pub name: Option<String>,
    /// `userId`.
    pub user_id: Option<String>,
    /// `sessionId`.
    pub session_id: Option<String>,
    /// `release`.
    pub release: Option<String>,
    /// `version`.
    pub version: Option<String>,
    /// `environment` (`default` when unset).
    pub environment: String,
    /// `public`.
    pub public: bool,
    /// `tags`.
    pub tags: Vec<String>,
    /// The body as JSON text.
    pub body: String,
    /// The observation whose input and output the trace shows where it has none.
    pub io_observation_id: Option<String>,
}

/// The row of a trace body and its input and output.
pub fn trace_row(fields: &JsonMap, io: &Io, now: i64) -> TraceRow {
    let mut body = Body::new(fields, io);
    body.default("environment", "default");
    TraceRow {
        timestamp: time_micros(body.get("timestamp")).unwrap_or(now),
        name: body.text("name"),
        user_id: body.text("userId"),
        session_id: body.text("sessionId"),
        release: body.text("release"),
        version: body.text("version"),
        environment: body.text("environment").unwrap_or_default(),
        public: body.get("public").and_then(Value::as_bool).unwrap_or(false),
        tags: tags_of(fields),
        body: body.to_json(),
        io_observation_id: io.from_observation.clone(),
    }
}

/// A trace body's tags.
pub fn tags_of(fields: &JsonMap) -> Vec<String> {
    fields
        .get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|tag| tag.as_str().map(str::to_owned))
        .collect()
}

/// An observation's columns, with its priced usage and cost.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservationRow {
    /// `traceId`.
    pub trace_id: Option<String>,
    /// `parentObservationId`.
    pub parent_observation_id: Option<String>,
    /// `type` (`SPAN` when unset).
    pub kind: String,
    /// `name`.
    pub name: Option<String>,
    /// `level` (`DEFAULT` when unset).
    pub level: String,
    /// `version`.
    pub version: Option<String>,
    /// `environment` (`default` when unset).
    pub environment: String,
    /// `model`.
    pub model: Option<String>,
    /// `startTime`, microseconds.
    pub start_time: Option<i64>,
    /// `endTime`, microseconds (never before the start).
    pub end_time: Option<i64>,
    /// Total cost, sent or computed.
    pub total_cost: Option<f64>,
    /// The body as JSON text.
    pub body: String,
    /// Usage, cost, matched model and prices as JSON text.
    pub derived: String,
}

/// The row of an observation body and its input and output, priced with `pricing`.
pub fn observation_row(fields: &JsonMap, io: &Io, pricing: &Pricing) -> ObservationRow {
    let mut body = Body::new(fields, io);
    let start_time = time_micros(body.get("startTime"));
    let mut end_time = time_micros(body.get("endTime"));
    if let (Some(start), Some(end)) = (start_time, end_time) {
        if end < start {
            let start_text = body.get("startTime").cloned().unwrap_or(Value::Null);
            body.overrides.push(("endTime", start_text));
            end_time = Some(start);
        }
    }
    body.default("environment", "default");
    body.default("level", "DEFAULT");
    body.default("type", "SPAN");
    let priced = pricing.price(fields);
    let derived = serde_json::to_string(&priced).unwrap_or_else(|_| "{}".into());
    ObservationRow {
        trace_id: body.text("traceId"),
        parent_observation_id: body.text("parentObservationId"),
        kind: body.text("type").unwrap_or_default(),
        name: body.text("name"),
        level: body.text("level").unwrap_or_default(),
        version: body.text("version"),
        environment: body.text("environment").unwrap_or_default(),
        model: body.text("model"),
        start_time,
        end_time,
        total_cost: priced.cost.get("total").copied(),
        body: body.to_json(),
        derived,
    }
}

/// One record of a batch: its id, the patch to merge when the id exists already, and the row
/// to insert when it does not.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared<R> {
    /// The record id.
    pub id: String,
    /// The normalised fields this batch writes.
    pub patch: JsonMap,
    /// The input and output this batch writes.
    pub io: Io,
    /// The row for a new id.
    pub row: R,
}

/// A [`WriteBatch`] with upserts of the same id folded together and rows computed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PreparedBatch {
    /// Traces, in first-seen order.
    pub traces: Vec<Prepared<TraceRow>>,
    /// Observations, in first-seen order.
    pub observations: Vec<Prepared<ObservationRow>>,
    /// Scores (few, merged by the writer): id and patch.
    pub scores: Vec<(String, JsonMap)>,
}

impl PreparedBatch {
    /// Folds and prices `batch`; `now` stands in for a missing trace timestamp.
    pub fn new(batch: WriteBatch, pricing: &Pricing, now: i64) -> Self {
        Self {
            traces: coalesce(batch.traces, TRACE_IMMUTABLE)
                .into_iter()
                .map(|Upsert { id, patch, io }| Prepared {
                    row: trace_row(&patch, &io, now),
                    id,
                    patch,
                    io,
                })
                .collect(),
            observations: coalesce(batch.observations, OBSERVATION_IMMUTABLE)
                .into_iter()
                .map(|Upsert { id, patch, io }| Prepared {
                    row: observation_row(&patch, &io, pricing),
                    id,
                    patch,
                    io,
                })
                .collect(),
            scores: coalesce(batch.scores, SCORE_IMMUTABLE)
                .into_iter()
                .map(|upsert| (upsert.id, upsert.patch))
                .collect(),
        }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.traces.len() + self.observations.len() + self.scores.len()
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Folds upserts of the same id together, keeping first-seen order.
fn coalesce(upserts: Vec<Upsert>, immutable: &[&str]) -> Vec<Upsert> {
    let mut order: Vec<Upsert> = Vec::with_capacity(upserts.len());
    let mut index: HashMap<String, usize> = HashMap::with_capacity(upserts.len());
    for upsert in upserts {
        match index.get(upsert.id.as_str()) {
            Some(&at) => {
                let folded = &mut order[at];
                merge_owned(&mut folded.patch, upsert.patch, immutable);
                folded.io.update(upsert.io);
            }
            None => {
                index.insert(upsert.id.clone(), order.len());
                order.push(upsert);
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> JsonMap {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn bodies_drop_empties_and_take_defaults_without_touching_the_patch() {
        let patch = map(json!({
            "id": "o", "startTime": "2024-01-01T00:00:02Z", "endTime": "2024-01-01T00:00:01Z",
            "input": {}, "output": null, "model": "gpt-4o-mini", "usageDetails": {"input": 1000}
        }));
        let row = observation_row(&patch, &Io::default(), &Pricing::langfuse_defaults());
        let body: Value = serde_json::from_str(&row.body).unwrap();
        assert_eq!(
            body,
            json!({"id": "o", "startTime": "2024-01-01T00:00:02Z", "endTime": "2024-01-01T00:00:02Z",
                   "model": "gpt-4o-mini", "usageDetails": {"input": 1000},
                   "environment": "default", "level": "DEFAULT", "type": "SPAN"})
        );
        assert_eq!(row.end_time, row.start_time);
        assert!(row.total_cost.unwrap() > 0.0);
        assert!(patch["input"].as_object().unwrap().is_empty(), "patch kept");
        assert!(!patch.contains_key("level"), "defaults are not merged");
    }

    #[test]
    fn folded_traces_union_tags() {
        let upsert = |tags: Value| Upsert::new("t".into(), map(json!({"id": "t", "tags": tags})));
        let batch = WriteBatch {
            traces: vec![upsert(json!(["b"])), upsert(json!(["a"]))],
            ..WriteBatch::default()
        };
        let prepared = PreparedBatch::new(batch, &Pricing::langfuse_defaults(), 7);
        assert_eq!(prepared.traces.len(), 1);
        assert_eq!(prepared.traces[0].row.tags, ["a", "b"]);
        assert_eq!(prepared.traces[0].row.timestamp, 7);
        assert_eq!(prepared.traces[0].row.environment, "default");
    }
}
