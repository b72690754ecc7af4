//! `GET /api/public/observations[/{id}]` (v1, offset pages) and `GET /api/public/v2/observations`
//! (cursor pages, field groups).

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

use super::{encode_cursor, iso, page_meta, Params, ProjectRequest};
use crate::error::{ApiError, ApiResult};
use crate::ingest::time_micros;
use crate::store::{filter, ObservationQuery, ObservationRecord};
use crate::AppState;

fn seconds_between(body: &crate::JsonMap, from: &str, to: &str) -> Value {
    match (time_micros(body.get(from)), time_micros(body.get(to))) {
        (Some(start), Some(end)) => json!((end - start) as f64 / 1e6),
        _ => Value::Null,
    }
}

/// Usage counts as integers (Langfuse's shape) when they are whole.
fn whole_numbers(map: &std::collections::BTreeMap<String, f64>) -> Value {
    Value::Object(
        map.iter()
            .map(|(key, value)| {
                let number = if value.fract() == 0.0 && value.abs() < 9e15 {
                    json!(*value as i64)
                } else {
                    json!(value)
                };
                (key.clone(), number)
            })
            .collect(),
    )
}

/// The v1 `Observation` shape.
pub fn to_v1(record: &ObservationRecord) -> Value {
    serde_json::to_value(V1(record)).unwrap_or(Value::Null)
}

/// An observation in the v1 shape, serialised straight from the record: a trace's detail
/// answers with all its observations, and building each as a JSON tree first (copying its
/// body) was most of that answer's time.
pub struct V1<'a>(pub &'a ObservationRecord);

impl serde::Serialize for V1<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let record = self.0;
        let body = &record.body;
        let null = Value::Null;
        let get = |key: &str| body.get(key).unwrap_or(&null);
        let or = |key: &str, default: Value| body.get(key).cloned().unwrap_or(default);
        let usage = |key: &str| {
            let value = record.usage.get(key).copied().unwrap_or(0.0);
            if value.fract() == 0.0 {
                json!(value as i64)
            } else {
                json!(value)
            }
        };
        let cost = |key: &str| record.cost.get(key).copied();
        let price = |key: &str| record.prices.get(key).copied();
        let mut map = serializer.serialize_map(Some(45))?;
        map.serialize_entry("id", get("id"))?;
        map.serialize_entry("projectId", &record.project_id)?;
        map.serialize_entry("traceId", get("traceId"))?;
        map.serialize_entry("parentObservationId", get("parentObservationId"))?;
        map.serialize_entry("type", &or("type", json!("SPAN")))?;
        map.serialize_entry("name", get("name"))?;
        map.serialize_entry("environment", &or("environment", json!("default")))?;
        map.serialize_entry("startTime", get("startTime"))?;
        map.serialize_entry("endTime", get("endTime"))?;
        map.serialize_entry("completionStartTime", get("completionStartTime"))?;
        map.serialize_entry("version", get("version"))?;
        map.serialize_entry("statusMessage", get("statusMessage"))?;
        map.serialize_entry("level", &or("level", json!("DEFAULT")))?;
        map.serialize_entry("input", get("input"))?;
        map.serialize_entry("output", get("output"))?;
        match body.get("metadata") {
            Some(metadata) => map.serialize_entry("metadata", metadata)?,
            None => map.serialize_entry("metadata", &json!({}))?,
        }
        map.serialize_entry("model", get("model"))?;
        match body.get("modelParameters") {
            Some(parameters) => map.serialize_entry("modelParameters", parameters)?,
            None => map.serialize_entry("modelParameters", &json!({}))?,
        }
        map.serialize_entry("promptId", &null)?;
        map.serialize_entry("promptName", get("promptName"))?;
        map.serialize_entry("promptVersion", get("promptVersion"))?;
        map.serialize_entry("usageDetails", &whole_numbers(&record.usage))?;
        map.serialize_entry("costDetails", &record.cost)?;
        map.serialize_entry(
            "usage",
            &json!({"unit": "TOKENS", "input": usage("input"), "output": usage("output"), "total": usage("total")}),
        )?;
        map.serialize_entry("unit", "TOKENS")?;
        map.serialize_entry("promptTokens", &usage("input"))?;
        map.serialize_entry("completionTokens", &usage("output"))?;
        map.serialize_entry("totalTokens", &usage("total"))?;
        map.serialize_entry("modelId", &record.model_id)?;
        map.serialize_entry("inputPrice", &price("input"))?;
        map.serialize_entry("outputPrice", &price("output"))?;
        map.serialize_entry("totalPrice", &price("total"))?;
        map.serialize_entry("calculatedInputCost", &cost("input"))?;
        map.serialize_entry("calculatedOutputCost", &cost("output"))?;
        map.serialize_entry("calculatedTotalCost", &cost("total"))?;
        map.serialize_entry("usagePricingTierId", &null)?;
        map.serialize_entry("usagePricingTierName", &null)?;
        map.serialize_entry("latency", &seconds_between(body, "startTime", "endTime"))?;
        map.serialize_entry(
            "timeToFirstToken",
            &seconds_between(body, "startTime", "completionStartTime"),
        )?;
        map.serialize_entry("createdAt", &iso(record.created_at))?;
        map.serialize_entry("updatedAt", &iso(record.updated_at))?;
        map.end()
    }
}

fn query(params: &Params) -> ApiResult<ObservationQuery> {
    // A structured filter takes precedence over the simple ones, as in Langfuse.
    if let Some(text) = params.get("filter") {
        return Ok(ObservationQuery {
            conditions: filter::parse(&text, filter::OBSERVATION_COLUMNS)
                .map_err(ApiError::BadRequest)?,
            ..ObservationQuery::default()
        });
    }
    Ok(ObservationQuery {
        name: params.get("name"),
        user_id: params.get("userId"),
        session_id: params.get("sessionId"),
        observation_type: params.get("type").map(|kind| kind.to_ascii_uppercase()),
        trace_id: params.get("traceId"),
        level: params.get("level").map(|level| level.to_ascii_uppercase()),
        parent_observation_id: params.get("parentObservationId"),
        is_root: params.flag("isRootObservation")?,
        version: params.get("version"),
        environments: params.all("environment"),
        from_start_time: params.time("fromStartTime")?,
        to_start_time: params.time("toStartTime")?,
        conditions: Vec::new(),
    })
}

/// `GET /api/public/observations`.
pub async fn list(
    State(state): State<AppState>,
    ProjectRequest { project_id, params }: ProjectRequest,
) -> ApiResult<Json<Value>> {
    let page = params.offset_page(100)?;
    let query = query(&params)?;
    let (found, page) = state
        .blocking(move |store| Ok((store.list_observations(&project_id, &query, &page)?, page)))
        .await?;
    let data: Vec<V1> = found.items.iter().map(V1).collect();
    Ok(Json(
        json!({"data": data, "meta": page_meta(&page, found.total)}),
    ))
}

/// `GET /api/public/observations/{id}`.
pub async fn get_one(
    State(state): State<AppState>,
    ProjectRequest { project_id, .. }: ProjectRequest,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let record = state
        .blocking(move |store| {
            store.observation(&project_id, &id)?.ok_or_else(|| {
                ApiError::NotFound(format!(
                    "Observation {id} not found within authorized project"
                ))
            })
        })
        .await?;
    Ok(Json(to_v1(&record)))
}

fn raw_string(value: Option<&Value>) -> Value {
    match value {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(text)) => Value::String(text.clone()),
        Some(other) => Value::String(other.to_string()),
    }
}

/// The v2 shape: `core` always, other groups on request (`core,basic` by default).
fn to_v2(record: &ObservationRecord, groups: &[String], trace: Option<&crate::JsonMap>) -> Value {
    let body = &record.body;
    let get = |key: &str| body.get(key).cloned().unwrap_or(Value::Null);
    let has = |name: &str| groups.iter().any(|group| group == name);
    let mut item = json!({
        "id": get("id"), "traceId": get("traceId"), "startTime": get("startTime"), "endTime": get("endTime"),
        "projectId": record.project_id, "parentObservationId": get("parentObservationId"),
        "type": body.get("type").cloned().unwrap_or_else(|| json!("SPAN")),
    });
    let trace_get = |key: &str| {
        trace
            .and_then(|trace| trace.get(key))
            .cloned()
            .unwrap_or(Value::Null)
    };
    if has("basic") {
        item["name"] = get("name");
        item["level"] = body
            .get("level")
            .cloned()
            .unwrap_or_else(|| json!("DEFAULT"));
        item["statusMessage"] = get("statusMessage");
        item["version"] = get("version");
        item["environment"] = body
            .get("environment")
            .cloned()
            .unwrap_or_else(|| json!("default"));
        item["bookmarked"] = json!(false);
        item["public"] = json!(trace_get("public").as_bool().unwrap_or(false));
        item["userId"] = trace_get("userId");
        item["sessionId"] = trace_get("sessionId");
        item["isRootObservation"] =
            json!(body.get("parentObservationId").map_or(true, Value::is_null));
    }
    if has("time") {
        item["completionStartTime"] = get("completionStartTime");
        item["createdAt"] = json!(iso(record.created_at));
        item["updatedAt"] = json!(iso(record.updated_at));
    }
    if has("io") {
        item["input"] = raw_string(body.get("input"));
        item["output"] = raw_string(body.get("output"));
    }
    if has("metadata") {
        item["metadata"] = body.get("metadata").cloned().unwrap_or_else(|| json!({}));
    }
    if has("model") {
        item["providedModelName"] = get("model");
        item["internalModelId"] = json!(record.model_id);
        item["modelParameters"] = body
            .get("modelParameters")
            .cloned()
            .unwrap_or_else(|| json!({}));
    }
    if has("usage") {
        item["usageDetails"] = whole_numbers(&record.usage);
        item["costDetails"] = json!(record.cost);
        item["totalCost"] = json!(record.cost.get("total").copied().unwrap_or(0.0));
        item["usagePricingTierName"] = Value::Null;
    }
    if has("prompt") {
        item["promptId"] = Value::Null;
        item["promptName"] = get("promptName");
        item["promptVersion"] = get("promptVersion");
    }
    if has("metrics") {
        item["latency"] = seconds_between(body, "startTime", "endTime");
        item["timeToFirstToken"] = seconds_between(body, "startTime", "completionStartTime");
    }
    if has("trace_context") {
        item["tags"] = trace
            .and_then(|trace| trace.get("tags"))
            .cloned()
            .unwrap_or_else(|| json!([]));
        item["release"] = trace_get("release");
        item["traceName"] = trace_get("name");
    }
    item
}

/// `GET /api/public/v2/observations`.
pub async fn list_v2(
    State(state): State<AppState>,
    ProjectRequest { project_id, params }: ProjectRequest,
) -> ApiResult<Json<Value>> {
    if params.get("parseIoAsJson").as_deref() == Some("true") {
        return Err(ApiError::BadRequest(
            "parseIoAsJson=true is no longer supported: input/output are returned as raw strings"
                .into(),
        ));
    }
    let mut groups = params.list("fields");
    if groups.is_empty() {
        groups = vec!["core".into(), "basic".into()];
    }
    let page = params.keyset_page(1000)?;
    let limit = page.limit() as usize;
    let query = query(&params)?;
    let needs_trace = groups
        .iter()
        .any(|group| group == "basic" || group == "trace_context");
    let (items, traces) = state
        .blocking(move |store| {
            let found = store.list_observations(&project_id, &query, &page)?;
            let mut traces = std::collections::HashMap::new();
            if needs_trace {
                for record in &found.items {
                    if let Some(trace_id) = record.body.get("traceId").and_then(Value::as_str) {
                        if !traces.contains_key(trace_id) {
                            let trace = store.trace(&project_id, trace_id)?.map(|trace| trace.body);
                            traces.insert(trace_id.to_owned(), trace);
                        }
                    }
                }
            }
            Ok((found.items, traces))
        })
        .await?;
    let data: Vec<Value> = items
        .iter()
        .map(|record| {
            let trace = record
                .body
                .get("traceId")
                .and_then(Value::as_str)
                .and_then(|id| traces.get(id))
                .and_then(Option::as_ref);
            to_v2(record, &groups, trace)
        })
        .collect();
    let mut meta = json!({});
    if items.len() == limit {
        if let Some(last) = items.last() {
            let time = time_micros(last.body.get("startTime")).unwrap_or(0);
            let id = last
                .body
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            meta["cursor"] = json!(encode_cursor(time, id));
        }
    }
    Ok(Json(json!({"data": data, "meta": meta})))
}
