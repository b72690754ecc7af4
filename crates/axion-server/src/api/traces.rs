//! `GET/DELETE /api/public/traces[/{id}]`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{iso, observations, order_by, page_meta, scores, Params, ProjectRequest};
use crate::error::{ApiError, ApiResult};
use crate::store::{filter, TraceMetrics, TraceQuery, TraceRecord};
use crate::AppState;

/// Field groups of `fields=`.
struct Fields {
    io: bool,
    scores: bool,
    observations: bool,
    metrics: bool,
}

impl Fields {
    fn parse(params: &Params) -> Self {
        let groups = params.list("fields");
        if groups.is_empty() {
            return Self {
                io: true,
                scores: true,
                observations: true,
                metrics: true,
            };
        }
        let has = |name: &str| groups.iter().any(|group| group == name);
        Self {
            io: has("io"),
            scores: has("scores"),
            observations: has("observations"),
            metrics: has("metrics"),
        }
    }
}

/// The `Trace` shape, without the detail fields.
pub fn trace_json(record: &TraceRecord, io: bool) -> Value {
    let body = &record.body;
    let get = |key: &str| body.get(key).cloned().unwrap_or(Value::Null);
    let id = get("id");
    json!({
        "id": id,
        "projectId": record.project_id,
        "timestamp": get("timestamp"),
        "name": get("name"),
        "input": if io { get("input") } else { Value::Null },
        "output": if io { get("output") } else { Value::Null },
        "sessionId": get("sessionId"),
        "release": get("release"),
        "version": get("version"),
        "userId": get("userId"),
        "metadata": if io { body.get("metadata").cloned().unwrap_or_else(|| json!({})) } else { Value::Null },
        "tags": body.get("tags").cloned().unwrap_or_else(|| json!([])),
        "public": body.get("public").and_then(Value::as_bool).unwrap_or(false),
        "bookmarked": false,
        "environment": body.get("environment").cloned().unwrap_or_else(|| json!("default")),
        "externalId": null,
        "htmlPath": format!("/project/{}/traces/{}", record.project_id, id.as_str().unwrap_or_default()),
        "createdAt": iso(record.created_at),
        "updatedAt": iso(record.updated_at),
    })
}

fn query(params: &Params) -> ApiResult<TraceQuery> {
    // A structured filter takes precedence over the simple ones, as in Langfuse.
    if let Some(text) = params.get("filter") {
        return Ok(TraceQuery {
            conditions: filter::parse(&text, filter::TRACE_COLUMNS)
                .map_err(ApiError::BadRequest)?,
            order_by: order_by(params.get("orderBy"))?,
            ..TraceQuery::default()
        });
    }
    Ok(TraceQuery {
        user_id: params.get("userId"),
        name: params.get("name"),
        session_id: params.get("sessionId"),
        version: params.get("version"),
        release: params.get("release"),
        tags: params.all("tags"),
        environments: params.all("environment"),
        from_timestamp: params.time("fromTimestamp")?,
        to_timestamp: params.time("toTimestamp")?,
        order_by: order_by(params.get("orderBy"))?,
        conditions: Vec::new(),
        skip_borrowed_io: false,
    })
}

/// `GET /api/public/traces`.
pub async fn list(
    State(state): State<AppState>,
    ProjectRequest { project_id, params }: ProjectRequest,
) -> ApiResult<Json<Value>> {
    let fields = Fields::parse(&params);
    let page = params.offset_page(100)?;
    let mut query = query(&params)?;
    query.skip_borrowed_io = !fields.io;
    let need_metrics = fields.metrics || fields.scores || fields.observations;
    let (found, page, metrics) = state
        .blocking(move |store| {
            let found = store.list_traces(&project_id, &query, &page)?;
            let ids: Vec<String> = found
                .items
                .iter()
                .filter_map(|trace| {
                    trace
                        .body
                        .get("id")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .collect();
            let metrics = if need_metrics {
                store.trace_metrics(&project_id, &ids)?
            } else {
                Default::default()
            };
            Ok((found, page, metrics))
        })
        .await?;
    let data: Vec<Value> = found
        .items
        .iter()
        .map(|record| {
            let mut trace = trace_json(record, fields.io);
            let id = record
                .body
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let metric = metrics.get(id).cloned().unwrap_or_default();
            add_metrics(&mut trace, &metric, &fields);
            if fields.observations {
                trace["observations"] = json!(metric.observation_ids);
            }
            if fields.scores {
                trace["scores"] = json!(metric.score_ids);
            }
            trace
        })
        .collect();
    Ok(Json(
        json!({"data": data, "meta": page_meta(&page, found.total)}),
    ))
}

fn add_metrics(trace: &mut Value, metric: &TraceMetrics, fields: &Fields) {
    trace["observations"] = json!([]);
    trace["scores"] = json!([]);
    if fields.metrics {
        trace["latency"] = json!(metric.latency);
        trace["totalCost"] = json!(metric.total_cost);
    } else {
        trace["latency"] = json!(-1);
        trace["totalCost"] = json!(-1);
    }
}

/// `GET /api/public/traces/{id}`: the trace with its observations and scores.
pub async fn get_one(
    State(state): State<AppState>,
    ProjectRequest { project_id, params }: ProjectRequest,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let fields = Fields::parse(&params);
    let trace_id = id.clone();
    let (record, observations, scores, metrics) = state
        .blocking(move |store| {
            let record = store.trace(&project_id, &trace_id)?.ok_or_else(|| {
                ApiError::NotFound(format!(
                    "Trace {trace_id} not found within authorized project"
                ))
            })?;
            let observations = store.trace_observations(&project_id, &trace_id)?;
            let scores = store.list_scores(
                &project_id,
                &crate::store::ScoreQuery {
                    trace_ids: vec![trace_id.clone()],
                    ..Default::default()
                },
                &crate::store::Pagination::Keyset {
                    limit: 10_000,
                    after: None,
                },
            )?;
            let metrics = store.trace_metrics(&project_id, std::slice::from_ref(&trace_id))?;
            Ok((record, observations, scores.items, metrics))
        })
        .await?;
    let mut trace = trace_json(&record, fields.io);
    let metric = metrics.get(&id).cloned().unwrap_or_default();
    add_metrics(&mut trace, &metric, &fields);
    if fields.scores {
        trace["scores"] = scores
            .iter()
            .map(|score| scores::to_v1(score, None))
            .collect();
    }
    let observations = fields
        .observations
        .then(|| observations.iter().map(observations::V1).collect());
    Ok(Json(Detail {
        trace,
        observations,
    })
    .into_response())
}

/// A trace with its observations, which are serialised straight from their records.
struct Detail<'a> {
    trace: Value,
    observations: Option<Vec<observations::V1<'a>>>,
}

impl serde::Serialize for Detail<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        if let Value::Object(fields) = &self.trace {
            for (key, value) in fields {
                if key != "observations" || self.observations.is_none() {
                    map.serialize_entry(key, value)?;
                }
            }
        }
        if let Some(observations) = &self.observations {
            map.serialize_entry("observations", observations)?;
        }
        map.end()
    }
}

/// `DELETE /api/public/traces/{id}`.
pub async fn delete_one(
    State(state): State<AppState>,
    ProjectRequest { project_id, .. }: ProjectRequest,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let deleted = state
        .blocking(move |store| Ok(store.delete_traces(&project_id, &[id])?))
        .await?;
    if deleted == 0 {
        return Err(ApiError::NotFound(
            "Trace not found within authorized project".into(),
        ));
    }
    Ok(Json(json!({"message": "Trace deleted successfully"})))
}

/// `DELETE /api/public/traces` with `{"traceIds": [...]}` (1..1000).
pub async fn delete_many(
    State(state): State<AppState>,
    ProjectRequest { project_id, .. }: ProjectRequest,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let value: Value = serde_json::from_slice(&body)
        .map_err(|error| ApiError::BadRequest(format!("body is not JSON: {error}")))?;
    let ids: Vec<String> = value
        .get("traceIds")
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(|id| id.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if ids.is_empty() || ids.len() > 1000 {
        return Err(ApiError::BadRequest(
            "traceIds: expected 1..1000 trace ids".into(),
        ));
    }
    state
        .blocking(move |store| Ok(store.delete_traces(&project_id, &ids)?))
        .await?;
    Ok(Json(json!({"message": "Traces deleted successfully"})))
}
