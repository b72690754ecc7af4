//! Every write path ends here: Langfuse ingestion events (sent directly, or mapped from OTLP
//! spans, or built from `POST /scores` bodies) are validated and normalised one by one into a
//! [`WriteBatch`] of upserts that any [`Store`](crate::store::Store) can merge.
//!
//! One invalid event fails alone; the rest of its batch is stored.

pub mod langfuse_batch;
pub mod otlp;
pub mod scores;

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use axion_model::{canonical_time, IngestionEvent, Io, JsonText};

use crate::JsonMap;

/// A change to one entity: the fields to merge into the stored record with the same id.
#[derive(Debug, Clone, PartialEq)]
pub struct Upsert {
    /// The entity id (`body.id`).
    pub id: String,
    /// Normalised fields, in Langfuse's camelCase names; absent keys leave stored values alone.
    pub patch: JsonMap,
    /// Input and output, as JSON text beside the patch (never `null` or `{}`, which a merge
    /// skips): stored as they came, never parsed.
    pub io: Io,
}

impl Upsert {
    /// An upsert of `patch` without input or output.
    pub fn new(id: String, patch: JsonMap) -> Self {
        Self {
            id,
            patch,
            io: Io::default(),
        }
    }

    /// Adds input and output carried beside the event's body (OTLP), over any of the body's.
    pub fn carry(&mut self, io: Io) {
        self.io.update(without_empty(io));
    }
}

/// `null` and `{}` dropped: a merge skips them and a stored body leaves them out.
pub fn without_empty(mut io: Io) -> Io {
    for slot in [&mut io.input, &mut io.output] {
        if slot.as_ref().is_some_and(JsonText::is_empty_value) {
            *slot = None;
        }
    }
    io
}

/// Moves `input` and `output` out of a body, as text.
fn take_io(body: &mut JsonMap) -> Io {
    let mut take = |key: &str| {
        body.remove(key)
            .filter(|value| !value.is_null())
            .map(|value| JsonText::from_value(&value))
    };
    let input = take("input");
    let output = take("output");
    without_empty(Io {
        input,
        output,
        from_observation: None,
    })
}

/// Everything one request writes, applied atomically and in order by a store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteBatch {
    /// Trace upserts.
    pub traces: Vec<Upsert>,
    /// Observation upserts.
    pub observations: Vec<Upsert>,
    /// Score upserts.
    pub scores: Vec<Upsert>,
}

impl WriteBatch {
    /// Whether nothing is to be written.
    pub fn is_empty(&self) -> bool {
        self.traces.is_empty() && self.observations.is_empty() && self.scores.is_empty()
    }

    /// Number of upserts.
    pub fn len(&self) -> usize {
        self.traces.len() + self.observations.len() + self.scores.len()
    }

    /// Appends another batch.
    pub fn extend(&mut self, other: WriteBatch) {
        self.traces.extend(other.traces);
        self.observations.extend(other.observations);
        self.scores.extend(other.scores);
    }
}

/// Why one event was rejected; becomes an entry of the 207 `errors` list.
#[derive(Debug, Clone, PartialEq)]
pub struct EventError {
    /// HTTP-like status for this event (400 invalid, 401 scope).
    pub status: u16,
    /// Short message (`Invalid request data`, `Access Scope Denied`).
    pub message: String,
    /// Details naming the offending field.
    pub error: String,
}

impl EventError {
    pub(crate) fn invalid(detail: impl Into<String>) -> Self {
        Self {
            status: 400,
            message: "Invalid request data".into(),
            error: detail.into(),
        }
    }
}

/// What a credential may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Basic auth with a project key pair: everything.
    Project,
    /// Bearer public key: scores only.
    ScoresOnly,
}

/// Parses an ISO-8601 datetime that carries an offset (naive datetimes are rejected).
pub fn parse_time(value: &Value, field: &str) -> Result<DateTime<Utc>, EventError> {
    let text = value.as_str().ok_or_else(|| {
        EventError::invalid(format!("{field}: expected an ISO-8601 datetime string"))
    })?;
    parse_time_text(text, field)
}

/// [`parse_time`] of a string.
pub fn parse_time_text(text: &str, field: &str) -> Result<DateTime<Utc>, EventError> {
    if let Some(time) = canonical_time::parse(text) {
        return Ok(time);
    }
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|error| {
            EventError::invalid(format!(
                "{field}: {text:?} is not an ISO-8601 datetime with offset ({error})"
            ))
        })
}

/// The canonical stored form of a time: RFC 3339, microseconds, `Z`.
pub fn format_time(time: DateTime<Utc>) -> String {
    canonical_time::format(time)
}

/// Microseconds since the epoch of a stored time string (0 when unreadable).
pub fn time_micros(value: Option<&Value>) -> Option<i64> {
    let text = value?.as_str()?;
    if let Some(time) = canonical_time::parse(text) {
        return Some(time.timestamp_micros());
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.timestamp_micros())
}

/// Langfuse's environment rule: lower-case, `langfuse` prefixes stripped, ≤ 40 characters of
/// `[a-z0-9-_]`, else `default`.
pub fn normalize_environment(value: Option<&Value>) -> String {
    let Some(text) = value.and_then(Value::as_str) else {
        return "default".into();
    };
    let lower = text.trim().to_lowercase();
    let mut name = lower.as_str();
    for prefix in ["langfuse-", "langfuse_", "langfuse"] {
        if let Some(rest) = name.strip_prefix(prefix) {
            name = rest;
            break;
        }
    }
    let name: String = name.chars().take(40).collect();
    if is_environment_name(&name) {
        name
    } else {
        "default".into()
    }
}

/// 1 to 40 characters of `[a-z0-9-_]`.
fn is_environment_name(name: &str) -> bool {
    (1..=40).contains(&name.len())
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
}

/// Moves `environment` into the patch, normalised; with `always`, a missing one becomes
/// `default`. A name that is normal already keeps its string.
fn move_environment(body: &mut JsonMap, patch: &mut JsonMap, always: bool) {
    match body.remove_entry("environment") {
        Some((key, Value::String(text))) => {
            patch.insert(key, Value::String(normal_environment(text)));
        }
        None | Some((_, Value::Null)) if !always => {}
        entry => {
            let value = entry.map(|(_, value)| value);
            patch.insert(
                "environment".into(),
                Value::String(normalize_environment(value.as_ref())),
            );
        }
    }
}

/// An environment name as stored: sent names that are normal already keep their string.
pub fn normal_environment(text: String) -> String {
    if is_environment_name(&text) && !text.starts_with("langfuse") {
        text
    } else {
        normalize_environment(Some(&Value::String(text)))
    }
}

fn valid_id(value: &Value, field: &str) -> Result<String, EventError> {
    check_id(value, field)?;
    Ok(value.as_str().unwrap_or_default().to_owned())
}

fn check_id(value: &Value, field: &str) -> Result<(), EventError> {
    match value {
        Value::String(id) => check_id_text(id, field),
        _ => Err(EventError::invalid(format!("{field}: expected a string"))),
    }
}

/// An id is 1 to 800 characters without carriage returns.
pub fn check_id_text(id: &str, field: &str) -> Result<(), EventError> {
    if !id.is_empty() && id.len() <= 800 && !id.contains('\r') {
        Ok(())
    } else {
        Err(EventError::invalid(format!(
            "{field}: must be 1..800 characters without carriage returns"
        )))
    }
}

/// A time in its canonical stored form (kept as sent when it already is).
pub fn canonical_time_text(text: String, field: &str) -> Result<String, EventError> {
    canonical_time_of(text, field).map(|(_, text)| text)
}

/// A time sent as text, and its canonical stored form (the text itself when it already is).
fn canonical_time_of(text: String, field: &str) -> Result<(DateTime<Utc>, String), EventError> {
    match canonical_time::parse(&text) {
        Some(time) => Ok((time, text)),
        None => {
            let time = parse_time_text(&text, field)?;
            Ok((time, format_time(time)))
        }
    }
}

/// Moves a string field out of the body (a number becomes its text). Moving, not copying:
/// the body is dropped afterwards, and freeing its copies was a fifth of the mapping's cost.
fn take_string(body: &mut JsonMap, key: &str) -> Result<Option<String>, EventError> {
    Ok(take_string_entry(body, key)?.map(|(_, text)| text))
}

/// [`take_string`] with the body's own key string, for a patch of the same keys: allocating
/// each key again (and freeing the old) was a large share of ingest's allocations.
fn take_string_entry(
    body: &mut JsonMap,
    key: &str,
) -> Result<Option<(String, String)>, EventError> {
    match body.remove_entry(key) {
        None | Some((_, Value::Null)) => Ok(None),
        Some((key, Value::String(text))) => Ok(Some((key, text))),
        Some((key, Value::Number(number))) => Ok(Some((key, number.to_string()))),
        Some(_) => Err(EventError::invalid(format!("{key}: expected a string"))),
    }
}

fn move_string(body: &mut JsonMap, key: &str, patch: &mut JsonMap) -> Result<(), EventError> {
    if let Some((key, text)) = take_string_entry(body, key)? {
        patch.insert(key, Value::String(text));
    }
    Ok(())
}

fn move_json(body: &mut JsonMap, key: &str, patch: &mut JsonMap) {
    if let Some((key, value)) = body.remove_entry(key).filter(|(_, value)| !value.is_null()) {
        patch.insert(key, value);
    }
}

/// Moves a time field into the patch in its canonical form (kept as sent when it already is).
fn move_time(
    body: &mut JsonMap,
    key: &str,
    patch: &mut JsonMap,
) -> Result<Option<DateTime<Utc>>, EventError> {
    match body.remove_entry(key) {
        None | Some((_, Value::Null)) => Ok(None),
        Some((key, value)) => {
            // A time already in the canonical form keeps its string.
            let (time, text) = match value {
                Value::String(text) => canonical_time_of(text, &key)?,
                other => {
                    let time = parse_time(&other, &key)?;
                    (time, format_time(time))
                }
            };
            patch.insert(key, Value::String(text));
            Ok(Some(time))
        }
    }
}

/// Metadata as an object (a non-object becomes `{"metadata": value}`).
fn move_metadata(body: &mut JsonMap, patch: &mut JsonMap) {
    match body.remove_entry("metadata") {
        None | Some((_, Value::Null)) => {}
        Some((key, Value::Object(map))) => {
            patch.insert(key, Value::Object(map));
        }
        Some((key, other)) => {
            let mut map = Map::new();
            map.insert("metadata".into(), other);
            patch.insert(key, Value::Object(map));
        }
    }
}

/// Normalises a `trace-create` body.
pub fn trace_upsert(mut body: JsonMap, envelope_time: DateTime<Utc>) -> Result<Upsert, EventError> {
    let id = valid_id(body.get("id").unwrap_or(&Value::Null), "body.id")?;
    let mut patch = JsonMap::new();
    move_json(&mut body, "id", &mut patch);
    let timestamp = move_time(&mut body, "timestamp", &mut patch)?;
    if timestamp.is_none() {
        patch.insert(
            "timestamp".into(),
            Value::String(format_time(envelope_time)),
        );
    }
    if let Some(name) = take_string(&mut body, "name")? {
        check_trace_name(&name)?;
        patch.insert("name".into(), Value::String(name));
    }
    for key in ["userId", "sessionId", "release", "version"] {
        move_string(&mut body, key, &mut patch)?;
    }
    let io = take_io(&mut body);
    move_metadata(&mut body, &mut patch);
    move_environment(&mut body, &mut patch, false);
    match body.remove_entry("tags") {
        None | Some((_, Value::Null)) => {}
        Some((key, Value::Array(tags))) if tags.iter().all(Value::is_string) => {
            patch.insert(key, Value::Array(tags));
        }
        Some(_) => return Err(EventError::invalid("tags: expected an array of strings")),
    }
    let body = &body;
    match body.get("public") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(flag)) => {
            patch.insert("public".into(), Value::Bool(*flag));
        }
        Some(_) => return Err(EventError::invalid("public: expected a boolean")),
    }
    Ok(Upsert { id, patch, io })
}

/// A trace name has at most 1000 characters.
pub fn check_trace_name(name: &str) -> Result<(), EventError> {
    if name.len() > 1000 && name.chars().count() > 1000 {
        return Err(EventError::invalid("name: at most 1000 characters"));
    }
    Ok(())
}

/// A placeholder trace (id, timestamp, environment) for a new observation, from its normalised
/// patch, in case its trace was not sent. The ordinary merge gives it its meaning: it creates
/// the trace when missing, and otherwise only moves the timestamp earlier (environment and id
/// are fixed by the first write). `None` when the observation names no trace.
pub fn shallow_trace(observation: &Upsert) -> Option<Upsert> {
    let patch = &observation.patch;
    let trace_id = patch.get("traceId")?.as_str()?;
    let mut trace = JsonMap::new();
    trace.insert("id".into(), Value::String(trace_id.to_owned()));
    for (trace_key, observation_key) in SHALLOW_TRACE_FIELDS {
        if let Some(value) = patch.get(observation_key) {
            trace.insert(trace_key.into(), value.clone());
        }
    }
    Some(Upsert::new(trace_id.to_owned(), trace))
}

/// Whether `trace`'s upsert already says all that [`shallow_trace`] of `observation` would
/// (same id, timestamp and environment), so that merging the placeholder would change nothing.
pub fn shallow_trace_covered(trace: &Upsert, observation: &Upsert) -> bool {
    let patch = &observation.patch;
    patch.get("traceId").and_then(Value::as_str) == Some(trace.id.as_str())
        && SHALLOW_TRACE_FIELDS
            .iter()
            .all(|(trace_key, observation_key)| {
                trace.patch.get(*trace_key) == patch.get(*observation_key)
            })
}

/// What a placeholder trace takes from its observation: trace field ← observation field.
const SHALLOW_TRACE_FIELDS: [(&str, &str); 2] =
    [("timestamp", "startTime"), ("environment", "environment")];

/// The observation type a `<kind>-create`/`-update` event writes; `None` for other kinds.
pub fn observation_kind(kind: &str) -> Option<(&'static str, bool)> {
    let (name, is_update) = match kind.strip_suffix("-create") {
        Some(name) => (name, false),
        None => (kind.strip_suffix("-update")?, true),
    };
    let observation_type = match name {
        "span" => "SPAN",
        "generation" => "GENERATION",
        "event" if !is_update => "EVENT",
        "agent" if !is_update => "AGENT",
        "tool" if !is_update => "TOOL",
        "chain" if !is_update => "CHAIN",
        "retriever" if !is_update => "RETRIEVER",
        "evaluator" if !is_update => "EVALUATOR",
        "embedding" if !is_update => "EMBEDDING",
        "guardrail" if !is_update => "GUARDRAIL",
        "observation" => "",
        _ => return None,
    };
    Some((observation_type, is_update))
}

/// Normalises an observation event body. `observation_type` is empty for the legacy
/// `observation-*` events, whose body names the type.
pub fn observation_upsert(
    mut body: JsonMap,
    observation_type: &str,
    is_update: bool,
    envelope_time: DateTime<Utc>,
) -> Result<Upsert, EventError> {
    let id = valid_id(body.get("id").unwrap_or(&Value::Null), "body.id")?;
    let mut patch = JsonMap::new();
    move_json(&mut body, "id", &mut patch);
    let observation_type = if observation_type.is_empty() {
        let named = body.get("type").and_then(Value::as_str).unwrap_or("SPAN");
        named
            .parse::<axion_model::ObservationType>()
            .map_err(|error| EventError::invalid(format!("type: {error}")))?
            .as_str()
    } else {
        observation_type
    };
    patch.insert("type".into(), Value::String(observation_type.into()));
    match body.get("traceId") {
        None | Some(Value::Null) => {}
        Some(value) => {
            check_id(value, "body.traceId")?;
            move_json(&mut body, "traceId", &mut patch);
        }
    }
    for key in [
        "name",
        "statusMessage",
        "parentObservationId",
        "version",
        "model",
        "promptName",
    ] {
        move_string(&mut body, key, &mut patch)?;
    }
    let start = move_time(&mut body, "startTime", &mut patch)?;
    if start.is_none() && !is_update {
        patch.insert(
            "startTime".into(),
            Value::String(format_time(envelope_time)),
        );
    }
    move_time(&mut body, "endTime", &mut patch)?;
    move_time(&mut body, "completionStartTime", &mut patch)?;
    let io = take_io(&mut body);
    move_metadata(&mut body, &mut patch);
    move_environment(&mut body, &mut patch, !is_update);
    let body = &body;
    if let Some(level) = body.get("level").filter(|value| !value.is_null()) {
        let level = level
            .as_str()
            .ok_or_else(|| EventError::invalid("level: expected a string"))?
            .parse::<axion_model::ObservationLevel>()
            .map_err(|error| EventError::invalid(format!("level: {error}")))?;
        patch.insert("level".into(), Value::String(level.as_str().into()));
    }
    match body.get("modelParameters") {
        None | Some(Value::Null) => {}
        Some(Value::Object(parameters)) => {
            patch.insert("modelParameters".into(), Value::Object(parameters.clone()));
        }
        Some(_) => return Err(EventError::invalid("modelParameters: expected an object")),
    }
    match body.get("promptVersion") {
        None | Some(Value::Null) => {}
        Some(Value::Number(number)) if number.is_u64() || number.is_i64() => {
            patch.insert("promptVersion".into(), Value::Number(number.clone()));
        }
        Some(_) => return Err(EventError::invalid("promptVersion: expected an integer")),
    }
    let (usage, cost) = usage_and_cost(body)?;
    if !usage.is_empty() {
        patch.insert("usageDetails".into(), Value::Object(usage));
    }
    if !cost.is_empty() {
        patch.insert("costDetails".into(), Value::Object(cost));
    }
    Ok(Upsert { id, patch, io })
}

fn count(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => number.as_u64().or_else(|| {
            number
                .as_f64()
                .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                .map(|f| f as u64)
        }),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

fn amount(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64().filter(|f| *f >= 0.0),
        Value::String(text) => text.trim().parse().ok().filter(|f: &f64| *f >= 0.0),
        _ => None,
    }
}

/// Langfuse's usage rules: the legacy `usage` object (Langfuse or OpenAI style) first, then
/// `usageDetails` (free map or OpenAI Chat/Responses usage) and `costDetails` overwrite.
pub fn usage_and_cost(body: &JsonMap) -> Result<(JsonMap, JsonMap), EventError> {
    usage_and_cost_of(
        body.get("usage"),
        body.get("usageDetails"),
        body.get("costDetails"),
    )
}

/// [`usage_and_cost`] of a body's `usage`, `usageDetails` and `costDetails`.
pub fn usage_and_cost_of(
    legacy_usage: Option<&Value>,
    usage_details: Option<&Value>,
    cost_details: Option<&Value>,
) -> Result<(JsonMap, JsonMap), EventError> {
    let mut usage = JsonMap::new();
    let mut cost = JsonMap::new();
    if let Some(Value::Object(legacy)) = legacy_usage {
        let field = |names: &[&str]| {
            names
                .iter()
                .find_map(|name| legacy.get(*name).and_then(count))
        };
        let input = field(&["input", "promptTokens"]);
        let output = field(&["output", "completionTokens"]);
        let total = field(&["total", "totalTokens"]);
        if let Some(input) = input {
            usage.insert("input".into(), input.into());
        }
        if let Some(output) = output {
            usage.insert("output".into(), output.into());
        }
        match total {
            Some(total) => {
                usage.insert("total".into(), total.into());
            }
            None if (input.is_some() || output.is_some()) && usage_details.is_none() => {
                usage.insert(
                    "total".into(),
                    (input.unwrap_or(0) + output.unwrap_or(0)).into(),
                );
            }
            None => {}
        }
        for (key, target) in [
            ("inputCost", "input"),
            ("outputCost", "output"),
            ("totalCost", "total"),
        ] {
            if let Some(value) = legacy.get(key).and_then(amount) {
                cost.insert(target.into(), value.into());
            }
        }
    }
    match usage_details {
        None | Some(Value::Null) => {}
        Some(Value::Object(details)) => {
            let openai = [
                "prompt_tokens",
                "completion_tokens",
                "input_tokens",
                "output_tokens",
            ]
            .iter()
            .any(|key| details.contains_key(*key));
            if openai {
                openai_usage(details, &mut usage);
            } else {
                for (key, value) in details {
                    if let Some(units) = count(value) {
                        usage.insert(key.clone(), units.into());
                    }
                }
            }
        }
        Some(_) => return Err(EventError::invalid("usageDetails: expected an object")),
    }
    match cost_details {
        None | Some(Value::Null) => {}
        Some(Value::Object(details)) => {
            for (key, value) in details {
                if let Some(value) = amount(value) {
                    cost.insert(key.clone(), value.into());
                }
            }
        }
        Some(_) => return Err(EventError::invalid("costDetails: expected an object")),
    }
    Ok((usage, cost))
}

/// OpenAI Chat (`prompt_tokens`, …) and Responses (`input_tokens`, …) usage objects: details
/// become `input_<k>`/`output_<k>` and are subtracted from input/output.
fn openai_usage(details: &JsonMap, usage: &mut JsonMap) {
    let get = |names: &[&str]| {
        names
            .iter()
            .find_map(|name| details.get(*name).and_then(count))
    };
    let mut input = get(&["prompt_tokens", "input_tokens"]);
    let mut output = get(&["completion_tokens", "output_tokens"]);
    if let Some(total) = get(&["total_tokens"]) {
        usage.insert("total".into(), total.into());
    }
    for (details_key, prefix) in [
        ("prompt_tokens_details", "input"),
        ("input_tokens_details", "input"),
        ("completion_tokens_details", "output"),
        ("output_tokens_details", "output"),
    ] {
        if let Some(Value::Object(parts)) = details.get(details_key) {
            for (key, value) in parts {
                if let Some(units) = count(value) {
                    usage.insert(format!("{prefix}_{key}"), units.into());
                    let side = if prefix == "input" {
                        &mut input
                    } else {
                        &mut output
                    };
                    if let Some(side) = side.as_mut() {
                        *side = side.saturating_sub(units);
                    }
                }
            }
        }
    }
    if let Some(input) = input {
        usage.insert("input".into(), input.into());
    }
    if let Some(output) = output {
        usage.insert("output".into(), output.into());
    }
}

/// Orders events as Langfuse processes them: creates before updates, each by envelope time.
pub fn processing_order(events: &mut [(usize, IngestionEvent, Io, DateTime<Utc>)]) {
    events.sort_by(|a, b| {
        let a_update = a.1.kind.ends_with("-update");
        let b_update = b.1.kind.ends_with("-update");
        match a_update.cmp(&b_update) {
            Ordering::Equal => a.3.cmp(&b.3).then(a.0.cmp(&b.0)),
            other => other,
        }
    });
}

/// Merges `patch` into `stored` with Langfuse's rules: present values overwrite, empty objects
/// don't, `metadata` is deep-merged, `tags` are unioned and sorted, and fields fixed by the
/// first write (`immutable`) keep their stored value. Trace timestamps keep the earliest.
pub fn merge_into(stored: &mut JsonMap, patch: &JsonMap, immutable: &[&str]) {
    merge_owned(stored, patch.clone(), immutable);
}

/// [`merge_into`] taking the patch by value: its keys and values move into `stored` instead of
/// being copied (folding the upserts of one batch, whose patches are dropped right after).
pub fn merge_owned(stored: &mut JsonMap, patch: JsonMap, immutable: &[&str]) {
    for (key, value) in patch {
        if value.is_null() {
            continue;
        }
        if let Value::Object(map) = &value {
            if map.is_empty() {
                continue;
            }
        }
        match key.as_str() {
            "metadata" => match (stored.get_mut("metadata"), value) {
                (Some(Value::Object(old)), Value::Object(new)) => deep_merge(old, new),
                (_, value) => {
                    stored.insert(key, value);
                }
            },
            "tags" => {
                let strings = |tags: Option<Value>| match tags {
                    Some(Value::Array(tags)) => tags
                        .into_iter()
                        .filter_map(|tag| match tag {
                            Value::String(tag) => Some(tag),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                let tags = union_tags(strings(stored.remove("tags")), strings(Some(value)));
                stored.insert(key, tags.into_iter().map(Value::String).collect());
            }
            "timestamp" if stored.contains_key("timestamp") => {
                let earlier = match (stored.get("timestamp"), &value) {
                    // Canonical times (the usual case) order as text; no parsing needed.
                    (Some(Value::String(old)), Value::String(new))
                        if canonical_time::has_form(old) && canonical_time::has_form(new) =>
                    {
                        new < old
                    }
                    (old, new) => match (time_micros(old), time_micros(Some(new))) {
                        (Some(old), Some(new)) => new < old,
                        _ => false,
                    },
                };
                if earlier {
                    stored.insert(key, value);
                }
            }
            "environment"
                if stored.get("environment").and_then(Value::as_str) == Some("default") =>
            {
                stored.insert(key, value);
            }
            name if immutable.contains(&name) && stored.contains_key(name) => {}
            _ => {
                stored.insert(key, value);
            }
        }
    }
}

/// Langfuse's merge of tags: the union, sorted.
pub(crate) fn union_tags(mut tags: Vec<String>, more: Vec<String>) -> Vec<String> {
    tags.extend(more);
    tags.sort();
    tags.dedup();
    tags
}

pub(crate) fn deep_merge(old: &mut JsonMap, new: JsonMap) {
    for (key, value) in new {
        match (old.get_mut(&key), value) {
            (Some(Value::Object(old_child)), Value::Object(new_child)) => {
                deep_merge(old_child, new_child)
            }
            (_, value) => {
                old.insert(key, value);
            }
        }
    }
}

/// Fields a trace keeps from its first write.
pub const TRACE_IMMUTABLE: &[&str] = &["id", "environment"];
/// Fields an observation keeps from its first write.
pub const OBSERVATION_IMMUTABLE: &[&str] = &["id", "traceId", "startTime", "environment"];
/// Fields a score keeps from its first write.
pub const SCORE_IMMUTABLE: &[&str] = &["id", "timestamp", "traceId", "environment"];

/// Clamps an `endTime` earlier than `startTime` to the start.
pub fn clamp_end_time(observation: &mut JsonMap) {
    let (Some(start), Some(end)) = (
        time_micros(observation.get("startTime")),
        time_micros(observation.get("endTime")),
    ) else {
        return;
    };
    if end < start {
        let start = observation["startTime"].clone();
        observation.insert("endTime".into(), start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> JsonMap {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn times_are_stored_canonically_whether_moved_or_reformatted() {
        for sent in [
            "2024-01-01T00:00:00.123456Z",
            "2024-01-01T00:00:00Z",
            "2024-01-01T01:00:00.5+01:00",
            "2024-01-01T00:00:00.123456789Z",
            "2024-01-01T00:00:00.123456+00:00",
        ] {
            let mut body = map(json!({ "t": sent }));
            let mut patch = JsonMap::new();
            let time = move_time(&mut body, "t", &mut patch).unwrap().unwrap();
            assert_eq!(patch["t"], json!(format_time(time)), "{sent}");
            assert!(body.is_empty());
        }
    }

    #[test]
    fn environment_rules() {
        assert_eq!(normalize_environment(Some(&json!("Langfuse-Prod"))), "prod");
        assert_eq!(normalize_environment(Some(&json!("has space"))), "default");
        assert_eq!(normalize_environment(None), "default");
        assert_eq!(
            normalize_environment(Some(&json!("x".repeat(50)))).len(),
            40
        );
    }

    #[test]
    fn merge_keeps_first_writes_and_unions_tags() {
        let mut stored = map(
            json!({"id": "t", "timestamp": "2024-01-01T00:00:01Z", "tags": ["b"],
            "metadata": {"a": {"x": 1}}, "environment": "prod", "name": "old"}),
        );
        merge_into(
            &mut stored,
            &map(
                json!({"id": "t", "timestamp": "2024-01-01T00:00:00Z", "tags": ["a", "b"],
                "metadata": {"a": {"y": 2}}, "environment": "dev", "name": "new", "input": {}}),
            ),
            TRACE_IMMUTABLE,
        );
        assert_eq!(stored["tags"], json!(["a", "b"]));
        assert_eq!(stored["metadata"], json!({"a": {"x": 1, "y": 2}}));
        assert_eq!(stored["environment"], "prod");
        assert_eq!(stored["name"], "new");
        assert_eq!(stored["timestamp"], "2024-01-01T00:00:00Z");
        assert!(
            !stored.contains_key("input"),
            "empty objects don't overwrite"
        );
    }

    #[test]
    fn legacy_and_openai_usage() {
        let (usage, cost) = usage_and_cost(&map(json!({
            "usage": {"input": 12, "output": 3, "unit": "TOKENS", "inputCost": 3e-05, "outputCost": 3e-05}
        })))
        .unwrap();
        assert_eq!(
            Value::Object(usage),
            json!({"input": 12, "output": 3, "total": 15})
        );
        assert_eq!(
            Value::Object(cost),
            json!({"input": 3e-05, "output": 3e-05})
        );
        let (usage, _) = usage_and_cost(&map(json!({"usageDetails": {
            "prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
            "prompt_tokens_details": {"cached_tokens": 30}}})))
        .unwrap();
        assert_eq!(
            Value::Object(usage),
            json!({"input": 70, "output": 20, "total": 120, "input_cached_tokens": 30})
        );
    }

    #[test]
    fn environments_are_normalised_and_defaulted_only_on_create() {
        let now = Utc::now();
        let env = |body: Value, is_update: bool| {
            observation_upsert(map(body), "SPAN", is_update, now)
                .unwrap()
                .patch
                .get("environment")
                .cloned()
        };
        assert_eq!(env(json!({"id": "o"}), false), Some(json!("default")));
        assert_eq!(env(json!({"id": "o"}), true), None);
        assert_eq!(
            env(json!({"id": "o", "environment": "prod"}), true),
            Some(json!("prod"))
        );
        assert_eq!(
            env(json!({"id": "o", "environment": "Langfuse-Prod"}), false),
            Some(json!("prod"))
        );
        assert_eq!(
            env(json!({"id": "o", "environment": null}), false),
            Some(json!("default"))
        );
        let trace = trace_upsert(
            map(json!({"id": "t", "environment": "has space", "tags": ["a"]})),
            now,
        )
        .unwrap();
        assert_eq!(trace.patch["environment"], "default");
        assert_eq!(trace.patch["tags"], json!(["a"]));
        assert!(trace_upsert(map(json!({"id": "t", "tags": ["a", 1]})), now).is_err());
    }

    #[test]
    fn naive_datetimes_and_bad_levels_are_rejected() {
        let now = Utc::now();
        let error = observation_upsert(
            map(json!({"id": "o", "startTime": "2024-01-01T00:00:00"})),
            "SPAN",
            false,
            now,
        )
        .unwrap_err();
        assert!(error.error.contains("startTime"), "{error:?}");
        let error =
            observation_upsert(map(json!({"id": "o", "level": "LOUD"})), "SPAN", false, now)
                .unwrap_err();
        assert!(error.error.contains("level"), "{error:?}");
    }
}
