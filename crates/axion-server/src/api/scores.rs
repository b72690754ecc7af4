//! Score reads: v1 and v2 (offset pages), v3 (cursor pages, typed values), get and delete.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{encode_cursor, iso, page_meta, Params, ProjectRequest};
use crate::error::{ApiError, ApiResult};
use crate::ingest::time_micros;
use crate::store::{ScoreQuery, ScoreRecord};
use crate::{AppState, JsonMap};

/// The v1/v2 `Score` shape; `trace` adds `{userId, tags, environment, sessionId}` of its trace.
pub fn to_v1(record: &ScoreRecord, trace: Option<&JsonMap>) -> Value {
    let body = &record.body;
    let get = |key: &str| body.get(key).cloned().unwrap_or(Value::Null);
    let mut score = json!({
        "id": get("id"),
        "projectId": record.project_id,
        "environment": body.get("environment").cloned().unwrap_or_else(|| json!("default")),
        "name": get("name"),
        "value": get("value"),
        "dataType": get("dataType"),
        "source": body.get("source").cloned().unwrap_or_else(|| json!("API")),
        "authorUserId": null,
        "comment": get("comment"),
        "metadata": body.get("metadata").cloned().unwrap_or_else(|| json!({})),
        "configId": get("configId"),
        "queueId": get("queueId"),
        "executionTraceId": null,
        "traceId": get("traceId"),
        "observationId": get("observationId"),
        "sessionId": get("sessionId"),
        "datasetRunId": get("datasetRunId"),
        "timestamp": get("timestamp"),
        "createdAt": iso(record.created_at),
        "updatedAt": iso(record.updated_at),
    });
    if body.get("stringValue").is_some() {
        score["stringValue"] = get("stringValue");
    }
    if let Some(trace) = trace {
        score["trace"] = json!({
            "userId": trace.get("userId"), "tags": trace.get("tags").cloned().unwrap_or_else(|| json!([])),
            "environment": trace.get("environment"), "sessionId": trace.get("sessionId"),
        });
    }
    score
}

fn to_v3(record: &ScoreRecord, groups: &[String]) -> Value {
    let body = &record.body;
    let get = |key: &str| body.get(key).cloned().unwrap_or(Value::Null);
    let data_type = body
        .get("dataType")
        .and_then(Value::as_str)
        .unwrap_or("NUMERIC");
    let value = match data_type {
        "BOOLEAN" => json!(body.get("value").and_then(Value::as_f64) == Some(1.0)),
        "CATEGORICAL" | "TEXT" | "CORRECTION" => get("stringValue"),
        _ => get("value"),
    };
    let subject = if let Some(observation_id) = body.get("observationId").filter(|v| !v.is_null()) {
        json!({"kind": "observation", "id": observation_id, "traceId": get("traceId")})
    } else if let Some(trace_id) = body.get("traceId").filter(|v| !v.is_null()) {
        json!({"kind": "trace", "id": trace_id})
    } else if let Some(session_id) = body.get("sessionId").filter(|v| !v.is_null()) {
        json!({"kind": "session", "id": session_id})
    } else {
        json!({"kind": "experiment", "id": get("datasetRunId")})
    };
    let mut score = json!({
        "id": get("id"), "projectId": record.project_id, "name": get("name"), "value": value,
        "dataType": data_type,
        "source": body.get("source").cloned().unwrap_or_else(|| json!("API")),
        "timestamp": get("timestamp"),
        "environment": body.get("environment").cloned().unwrap_or_else(|| json!("default")),
        "createdAt": iso(record.created_at),
        "updatedAt": iso(record.updated_at),
    });
    if groups.iter().any(|group| group == "subject") {
        score["subject"] = subject;
    }
    let has = |name: &str| groups.iter().any(|group| group == name);
    if has("details") {
        score["comment"] = get("comment");
        score["metadata"] = body.get("metadata").cloned().unwrap_or_else(|| json!({}));
    }
    if has("annotation") {
        score["configId"] = get("configId");
        score["queueId"] = get("queueId");
        score["authorUserId"] = Value::Null;
    }
    score
}

fn query_v1(params: &Params) -> ApiResult<ScoreQuery> {
    let value = match (params.number("value")?, params.get("operator")) {
        (Some(value), operator) => {
            let operator = operator.unwrap_or_else(|| "=".into());
            if !["<", ">", "<=", ">=", "=", "!="].contains(&operator.as_str()) {
                return Err(ApiError::BadRequest(format!(
                    "operator: expected one of < > <= >= = !=, got {operator:?}"
                )));
            }
            Some((operator, value))
        }
        (None, _) => None,
    };
    Ok(ScoreQuery {
        ids: params.list("scoreIds"),
        names: params.all("name"),
        user_id: params.get("userId"),
        data_types: params
            .all("dataType")
            .into_iter()
            .map(|t| t.to_ascii_uppercase())
            .collect(),
        sources: params
            .all("source")
            .into_iter()
            .map(|s| s.to_ascii_uppercase())
            .collect(),
        config_id: params.get("configId"),
        queue_id: params.get("queueId"),
        trace_tags: params.all("traceTags"),
        environments: params.all("environment"),
        value,
        from_timestamp: params.time("fromTimestamp")?,
        to_timestamp: params.time("toTimestamp")?,
        trace_ids: params.all("traceId"),
        observation_ids: params.all("observationId"),
        session_ids: params.all("sessionId"),
        dataset_run_id: params.get("datasetRunId"),
        ..ScoreQuery::default()
    })
}

/// `GET /api/public/scores` and `GET /api/public/v2/scores` (one query: v2's session, dataset
/// run, trace and observation filters are read for v1 too).
pub async fn list(
    State(state): State<AppState>,
    ProjectRequest { project_id, params }: ProjectRequest,
) -> ApiResult<Json<Value>> {
    let page = params.offset_page(100)?;
    let query = query_v1(&params)?;
    let (found, traces, page) = state
        .blocking(move |store| {
            let found = store.list_scores(&project_id, &query, &page)?;
            let mut traces: HashMap<String, Option<JsonMap>> = HashMap::new();
            for score in &found.items {
                if let Some(trace_id) = score.body.get("traceId").and_then(Value::as_str) {
                    if !traces.contains_key(trace_id) {
                        let trace = store.trace(&project_id, trace_id)?.map(|trace| trace.body);
                        traces.insert(trace_id.to_owned(), trace);
                    }
                }
            }
            Ok((found, traces, page))
        })
        .await?;
    let data: Vec<Value> = found
        .items
        .iter()
        .map(|score| {
            let trace = score
                .body
                .get("traceId")
                .and_then(Value::as_str)
                .and_then(|id| traces.get(id))
                .and_then(Option::as_ref);
            to_v1(score, trace)
        })
        .collect();
    Ok(Json(
        json!({"data": data, "meta": page_meta(&page, found.total)}),
    ))
}

/// `GET /api/public/v3/scores`: cursor pages, comma-list filters, typed values.
pub async fn list_v3(
    State(state): State<AppState>,
    ProjectRequest { project_id, params }: ProjectRequest,
) -> ApiResult<Json<Value>> {
    let page = params.keyset_page(100)?;
    let limit = page.limit();
    let mut groups = params.list("fields");
    if groups.is_empty() {
        groups = vec!["core".into()];
    }
    let query = ScoreQuery {
        ids: params.list("id"),
        names: params.list("name"),
        sources: params
            .list("source")
            .into_iter()
            .map(|s| s.to_ascii_uppercase())
            .collect(),
        data_types: params
            .list("dataType")
            .into_iter()
            .map(|t| t.to_ascii_uppercase())
            .collect(),
        environments: params.list("environment"),
        config_id: params.get("configId"),
        queue_id: params.get("queueId"),
        trace_ids: params.list("traceId"),
        session_ids: params.list("sessionId"),
        observation_ids: params.list("observationId"),
        dataset_run_id: params.get("experimentId"),
        value_min: params.number("valueMin")?,
        value_max: params.number("valueMax")?,
        from_timestamp: params.time("fromTimestamp")?,
        to_timestamp: params.time("toTimestamp")?,
        ..ScoreQuery::default()
    };
    let found = state
        .blocking(move |store| Ok(store.list_scores(&project_id, &query, &page)?))
        .await?;
    let data: Vec<Value> = found
        .items
        .iter()
        .map(|score| to_v3(score, &groups))
        .collect();
    let mut meta = json!({"limit": limit});
    if found.items.len() == limit as usize {
        if let Some(last) = found.items.last() {
            let time = time_micros(last.body.get("timestamp")).unwrap_or(0);
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

/// `GET /api/public/scores/{id}` and `GET /api/public/v2/scores/{id}`.
pub async fn get_one(
    State(state): State<AppState>,
    ProjectRequest { project_id, .. }: ProjectRequest,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let record = state
        .blocking(move |store| {
            store.score(&project_id, &id)?.ok_or_else(|| {
                ApiError::NotFound(format!("Score {id} not found within authorized project"))
            })
        })
        .await?;
    Ok(Json(to_v1(&record, None)))
}

/// `DELETE /api/public/scores/{id}`.
pub async fn delete(
    State(state): State<AppState>,
    ProjectRequest { project_id, .. }: ProjectRequest,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let existed = state
        .blocking(move |store| Ok(store.delete_score(&project_id, &id)?))
        .await?;
    if !existed {
        return Err(ApiError::NotFound(
            "Score not found within authorized project".into(),
        ));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"message": "Score deletion queued successfully"})),
    )
        .into_response())
}
