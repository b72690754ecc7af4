//! Rows ready to store: column values and the serialised body of every trace and observation
//! in a batch, computed on the request's thread so a store's single writer only runs SQL.
//!
//! The common case is a new id, and its row comes straight from the normalised patch. An id
//! that exists already is merged with the stored record by the writer ([`trace_row`] and
//! [`observation_row`] then run on the merged body).

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use axion_model::otlp::{SharedObject, SpanObservation};
use axion_model::{canonical_time, Io};

use crate::cost::{Priceable, Pricing};
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
        let mut body = ObjectWriter::with_capacity(1024 + io_len(self.io));
        for (key, value) in self.fields {
            let overridden = self.overrides.iter().any(|(name, _)| name == key)
                || self.io.fields().any(|(name, _)| name == key);
            if !overridden && !is_empty(value) {
                body.value(key, value);
            }
        }
        for (key, value) in &self.overrides {
            body.value(key, value);
        }
        body.io(self.io);
        body.finish()
    }
}

/// Bytes the input and output take in a body: bodies are sized for them up front, as growing
/// from serde_json's 128 bytes copied each body several times.
fn io_len(io: &Io) -> usize {
    io.fields().map(|(_, text)| text.as_str().len() + 12).sum()
}

/// Microseconds since the epoch of a canonical time.
fn micros(text: &str) -> Option<i64> {
    canonical_time::parse(text).map(|time| time.timestamp_micros())
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
    let derived = priced.to_json();
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

/// A span's observation, already normalised (see `ingest::otlp`), as a row. Its body is
/// written field by field; the metadata the whole export shares (resource and scope) goes in
/// as the text made once for all its spans.
///
/// The observation is taken whole: the row's columns are its strings, moved rather than copied.
pub fn span_observation_row(
    observation: SpanObservation,
    pricing: &Pricing,
) -> Prepared<ObservationRow> {
    let o = &observation;
    let shared_len = o.metadata.resource.text().len() + o.metadata.scope.text().len();
    let mut body = ObjectWriter::with_capacity(512 + io_len(&o.io) + shared_len);
    body.text("id", &o.id);
    body.text("traceId", &o.trace_id);
    body.some_text("parentObservationId", o.parent_observation_id.as_deref());
    body.text("name", &o.name);
    body.text("startTime", &o.start_time);
    body.some_text("endTime", o.end_time.as_deref());
    body.text("environment", &o.environment);
    body.text("level", o.level);
    body.some_text("statusMessage", o.status_message.as_deref());
    body.some_text("version", o.version.as_deref());
    body.some_text("model", o.model.as_deref());
    for (key, map) in [
        ("modelParameters", &o.model_parameters),
        ("usageDetails", &o.usage_details),
        ("costDetails", &o.cost_details),
    ] {
        body.some(key, map.as_ref().filter(|map| !map.is_empty()));
    }
    body.some_text("completionStartTime", o.completion_start_time.as_deref());
    body.some_text("promptName", o.prompt_name.as_deref());
    body.some("promptVersion", o.prompt_version.as_ref());
    let metadata = &o.metadata;
    body.object("metadata", |fields| {
        for (key, value) in &metadata.entries {
            if !metadata.is_fixed(key) {
                fields.value(key, value);
            }
        }
        fields.raw("resourceAttributes", metadata.resource.text());
        fields.raw("scope", metadata.scope.text());
        fields.some("attributes", metadata.attributes.as_ref());
    });
    body.text("type", o.kind);
    body.io(&o.io);
    let priced = pricing.price(&PricedSpan(o));
    let start_time = micros(&o.start_time);
    let end_time = o.end_time.as_deref().and_then(micros);
    let body = body.finish();
    let SpanObservation {
        id,
        trace_id,
        parent_observation_id,
        kind,
        name,
        level,
        version,
        environment,
        model,
        io,
        ..
    } = observation;
    Prepared {
        id,
        patch: None,
        io,
        row: ObservationRow {
            trace_id: Some(trace_id),
            parent_observation_id,
            kind: kind.to_owned(),
            name: Some(name),
            level: level.to_owned(),
            version,
            environment,
            model,
            start_time,
            end_time,
            total_cost: priced.cost.get("total").copied(),
            body,
            derived: priced.to_json(),
        },
    }
}

struct PricedSpan<'a>(&'a SpanObservation);

impl Priceable for PricedSpan<'_> {
    fn model(&self) -> Option<&str> {
        self.0.model.as_deref()
    }

    fn object(&self, name: &str) -> Option<&JsonMap> {
        match name {
            "usageDetails" => self.0.usage_details.as_ref(),
            "costDetails" => self.0.cost_details.as_ref(),
            "modelParameters" => self.0.model_parameters.as_ref(),
            _ => None,
        }
    }

    fn entry(&self, name: &str, key: &str) -> Option<&Value> {
        match name {
            "metadata" => self.0.metadata.get(key),
            _ => self.object(name)?.get(key),
        }
    }
}

/// A trace's fields as typed sources give them, folded with the rules of
/// [`crate::ingest::merge_owned`] (see [`TraceFields::absorb_fields`] and
/// [`TraceFields::absorb_placeholder`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TraceFields {
    /// Trace id.
    pub id: String,
    /// Start, canonical RFC 3339: the earliest one wins.
    pub timestamp: String,
    /// Normalised environment, fixed by the first write unless that was `default`.
    pub environment: String,
    /// Name.
    pub name: Option<String>,
    /// User id.
    pub user_id: Option<String>,
    /// Session id.
    pub session_id: Option<String>,
    /// Release.
    pub release: Option<String>,
    /// Version.
    pub version: Option<String>,
    /// Public flag.
    pub public: Option<bool>,
    /// Tags: unioned and sorted when a later write has some.
    pub tags: Option<Vec<String>>,
    /// Metadata (never empty): deep-merged.
    pub metadata: Option<JsonMap>,
    /// More metadata: objects every span of the export shares (a root span's
    /// `resourceAttributes` and `scope`), sorted by key, none of them a key of `metadata`.
    /// They are written as the text made once for the export instead of copied into
    /// `metadata` for each trace and serialised again.
    pub shared_metadata: Vec<(&'static str, Arc<SharedObject>)>,
    /// Input and output.
    pub io: Io,
}

impl TraceFields {
    /// A trace that only has to exist: id, timestamp and environment.
    pub fn placeholder(id: String, timestamp: String, environment: String) -> Self {
        Self {
            id,
            timestamp,
            environment,
            name: None,
            user_id: None,
            session_id: None,
            release: None,
            version: None,
            public: None,
            tags: None,
            metadata: None,
            shared_metadata: Vec::new(),
            io: Io::default(),
        }
    }

    /// Moves the shared metadata objects into `metadata`, as copies of their own.
    fn own_shared_metadata(&mut self) {
        for (key, object) in self.shared_metadata.drain(..) {
            self.metadata
                .get_or_insert_with(JsonMap::new)
                .insert(key.to_owned(), object.value().clone());
        }
    }

    /// Merges a later [`TraceFields::placeholder`] of this trace into this one, without
    /// making the placeholder: every span of an export names its trace so, and most traces
    /// exist by then.
    pub fn absorb_placeholder(&mut self, timestamp: &str, environment: &str) {
        if timestamp < self.timestamp.as_str() {
            self.timestamp = timestamp.to_owned();
        }
        if self.environment == "default" && environment != "default" {
            self.environment = environment.to_owned();
        }
    }

    /// Merges a later write of the same trace into this one, all but its timestamp and
    /// environment (those of a placeholder, which [`TraceFields::absorb_placeholder`] merges).
    pub fn absorb_fields(&mut self, mut later: TraceFields) {
        // Shared objects stay shared unless a merge would change them (rare: a trace with two
        // roots in one export): what merges into a key this write shares, or a shared object
        // into a key this write has, merges as copies.
        let later_shared = std::mem::take(&mut later.shared_metadata);
        let shares = |key: &str| self.shared_metadata.iter().any(|(name, _)| *name == key);
        let clashes = later
            .metadata
            .iter()
            .flat_map(|new| new.keys())
            .any(|key| shares(key))
            || later_shared.iter().any(|(key, _)| shares(key));
        if clashes {
            self.own_shared_metadata();
        }
        for (key, object) in later_shared {
            if self
                .metadata
                .as_ref()
                .is_some_and(|old| old.contains_key(key))
            {
                later
                    .metadata
                    .get_or_insert_with(JsonMap::new)
                    .insert(key.to_owned(), object.value().clone());
            } else {
                self.shared_metadata.push((key, object));
            }
        }
        self.shared_metadata.sort_by_key(|(key, _)| *key);
        for (slot, value) in [
            (&mut self.name, later.name),
            (&mut self.user_id, later.user_id),
            (&mut self.session_id, later.session_id),
            (&mut self.release, later.release),
            (&mut self.version, later.version),
        ] {
            if value.is_some() {
                *slot = value;
            }
        }
        if later.public.is_some() {
            self.public = later.public;
        }
        if let Some(new) = later.tags {
            self.tags = Some(crate::ingest::union_tags(
                self.tags.take().unwrap_or_default(),
                new,
            ));
        }
        if let Some(new) = later.metadata {
            match &mut self.metadata {
                Some(old) => crate::ingest::deep_merge(old, new),
                None => self.metadata = Some(new),
            }
        }
        self.io.update(later.io);
    }

    /// The trace's record: its row, whose columns are this trace's strings, moved.
    pub fn into_prepared(self) -> Prepared<TraceRow> {
        let body = self.body();
        let Self {
            id,
            timestamp,
            environment,
            name,
            user_id,
            session_id,
            release,
            version,
            public,
            tags,
            io,
            ..
        } = self;
        Prepared {
            id,
            patch: None,
            row: TraceRow {
                timestamp: micros(&timestamp).unwrap_or_default(),
                name,
                user_id,
                session_id,
                release,
                version,
                environment,
                public: public.unwrap_or(false),
                tags: tags.unwrap_or_default(),
                body,
                io_observation_id: io.from_observation.clone(),
            },
            io,
        }
    }

    fn body(&self) -> String {
        let mut body = ObjectWriter::with_capacity(512 + io_len(&self.io));
        body.text("id", &self.id);
        body.text("timestamp", &self.timestamp);
        body.text("environment", &self.environment);
        body.some_text("name", self.name.as_deref());
        body.some_text("userId", self.user_id.as_deref());
        body.some_text("sessionId", self.session_id.as_deref());
        body.some_text("release", self.release.as_deref());
        body.some_text("version", self.version.as_deref());
        body.some("public", self.public.as_ref());
        body.some("tags", self.tags.as_ref());
        let entries = self.metadata.iter().flatten();
        if entries.clone().next().is_some() || !self.shared_metadata.is_empty() {
            body.object("metadata", |fields| {
                // In key order, as the whole map would be written.
                let mut shared = self.shared_metadata.iter().peekable();
                for (key, value) in entries {
                    while let Some((name, object)) =
                        shared.next_if(|(name, _)| *name < key.as_str())
                    {
                        fields.raw(name, object.text());
                    }
                    fields.value(key, value);
                }
                for (name, object) in shared {
                    fields.raw(name, object.text());
                }
            });
        }
        body.io(&self.io);
        body.finish()
    }
}

/// One record of a batch: its id, the patch to merge when the id exists already, and the row
/// to insert when it does not.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared<R> {
    /// The record id.
    pub id: String,
    /// The normalised fields this batch writes; `None` when the row's body says the same
    /// (rows built straight from typed sources, see [`Prepared::fields`]).
    pub patch: Option<JsonMap>,
    /// The input and output this batch writes.
    pub io: Io,
    /// The row for a new id.
    pub row: R,
}

/// A row with a stored body.
pub trait HasBody {
    /// The body as JSON text.
    fn body(&self) -> &str;
}

impl HasBody for TraceRow {
    fn body(&self) -> &str {
        &self.body
    }
}

impl HasBody for ObservationRow {
    fn body(&self) -> &str {
        &self.body
    }
}

impl<R: HasBody> Prepared<R> {
    /// The fields to merge into a stored record of the same id (rare: the common case inserts
    /// the row). Without a patch they are read back from the row's body, which holds exactly
    /// the patch's fields (a typed source sets every field a default would fill) plus the input
    /// and output, which are carried beside it.
    pub fn fields(&self) -> std::borrow::Cow<'_, JsonMap> {
        if let Some(patch) = &self.patch {
            return std::borrow::Cow::Borrowed(patch);
        }
        let mut fields: JsonMap = serde_json::from_str(self.row.body()).unwrap_or_default();
        fields.remove("input");
        fields.remove("output");
        std::borrow::Cow::Owned(fields)
    }
}

/// A JSON object written field by field, for bodies built from typed fields.
pub struct ObjectWriter {
    out: Vec<u8>,
    /// Whether the object being written has a field already.
    comma: bool,
}

impl ObjectWriter {
    /// An empty object with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity);
        out.push(b'{');
        Self { out, comma: false }
    }

    fn key(&mut self, key: &str) {
        if self.comma {
            self.out.push(b',');
        }
        self.comma = true;
        // Escaped where needed: metadata keys come from clients.
        axion_model::write_json_string(&mut self.out, key);
        self.out.push(b':');
    }

    /// `"key": "text"`.
    pub fn text(&mut self, key: &str, text: &str) {
        self.key(key);
        axion_model::write_json_string(&mut self.out, text);
    }

    /// `"key": "text"` when there is a text.
    pub fn some_text(&mut self, key: &str, text: Option<&str>) {
        if let Some(text) = text {
            self.text(key, text);
        }
    }

    /// `"key": value`.
    pub fn value(&mut self, key: &str, value: &(impl Serialize + ?Sized)) {
        self.key(key);
        // Writing to a Vec cannot fail, nor can serialising strings, maps and numbers.
        let _ = serde_json::to_writer(&mut self.out, value);
    }

    /// `"key": value` when there is a value.
    pub fn some(&mut self, key: &str, value: Option<&(impl Serialize + ?Sized)>) {
        if let Some(value) = value {
            self.value(key, value);
        }
    }

    /// `"key": <text>`, `text` being JSON already.
    pub fn raw(&mut self, key: &str, text: &str) {
        self.key(key);
        self.out.extend_from_slice(text.as_bytes());
    }

    /// `"key": {…}`, its fields written by `fill`.
    pub fn object(&mut self, key: &str, fill: impl FnOnce(&mut ObjectWriter)) {
        self.key(key);
        self.out.push(b'{');
        self.comma = false;
        fill(self);
        self.out.push(b'}');
        self.comma = true;
    }

    /// The input and output, as the JSON text they came as.
    pub fn io(&mut self, io: &Io) {
        for (key, text) in io.fields() {
            self.raw(key, text.as_str());
        }
    }

    /// The object's text.
    pub fn finish(mut self) -> String {
        self.out.push(b'}');
        String::from_utf8(self.out).unwrap_or_else(|_| "{}".into())
    }
}

/// The upsert that stores a record read back from a store again ([`super::Store::export`]):
/// its body as the patch; for a trace, the observation it shows input and output from.
pub fn export_upsert(
    body: JsonMap,
    io_observation_id: Option<String>,
) -> Result<Upsert, super::StoreError> {
    let id = body
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| super::StoreError::Corrupt("a stored record without an id".into()))?
        .to_owned();
    let mut upsert = Upsert::new(id, body);
    upsert.io.from_observation = io_observation_id;
    Ok(upsert)
}

/// A score's columns.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRow {
    /// `traceId`.
    pub trace_id: Option<String>,
    /// `observationId`.
    pub observation_id: Option<String>,
    /// `sessionId`.
    pub session_id: Option<String>,
    /// `datasetRunId`.
    pub dataset_run_id: Option<String>,
    /// `name` (empty when unset).
    pub name: String,
    /// `value`.
    pub value: Option<f64>,
    /// `dataType` (`NUMERIC` when unset).
    pub data_type: String,
    /// `source` (`API` when unset).
    pub source: String,
    /// `configId`.
    pub config_id: Option<String>,
    /// `queueId`.
    pub queue_id: Option<String>,
    /// `environment` (`default` when unset).
    pub environment: String,
    /// Microseconds since the epoch (`now` when the body has none).
    pub timestamp: i64,
}

/// The row of a merged score body.
pub fn score_row(body: &JsonMap, now: i64) -> ScoreRow {
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
    ScoreRow {
        trace_id: text("traceId"),
        observation_id: text("observationId"),
        session_id: text("sessionId"),
        dataset_run_id: text("datasetRunId"),
        name: text("name").unwrap_or_default(),
        value: body.get("value").and_then(Value::as_f64),
        data_type: text("dataType").unwrap_or_else(|| "NUMERIC".into()),
        source: text("source").unwrap_or_else(|| "API".into()),
        config_id: text("configId"),
        queue_id: text("queueId"),
        environment: text("environment").unwrap_or_else(|| "default".into()),
        timestamp: time_micros(body.get("timestamp")).unwrap_or(now),
    }
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
                    patch: Some(patch),
                    io,
                })
                .collect(),
            observations: coalesce(batch.observations, OBSERVATION_IMMUTABLE)
                .into_iter()
                .map(|Upsert { id, patch, io }| Prepared {
                    row: observation_row(&patch, &io, pricing),
                    id,
                    patch: Some(patch),
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
