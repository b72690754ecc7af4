//! Write routes: `POST /ingestion`, `POST /otel/v1/traces`, `POST /scores`, legacy `POST /traces`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::auth::require_project;
use crate::error::{ApiError, ApiResult};
use crate::ingest::{
    langfuse_batch, otlp, scores::score_upsert, trace_upsert, EventError, Scope, WriteBatch,
};
use crate::{AppState, MAX_INGESTION_BYTES};

fn too_large(body: &Bytes) -> ApiResult<()> {
    if body.len() > MAX_INGESTION_BYTES {
        return Err(ApiError::PayloadTooLarge(format!(
            "request body is {} bytes; the limit is {MAX_INGESTION_BYTES} bytes (4.5 MB): send smaller batches",
            body.len()
        )));
    }
    Ok(())
}

/// `POST /api/public/ingestion`: 207 with a result per event.
pub async fn ingestion(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let caller = state.caller(&headers, true).await?;
    too_large(&body)?;
    let project_id = caller.project_id.clone();
    let outcome = state
        .blocking(move |store| {
            let mut outcome = langfuse_batch::process(&body, caller.scope)
                .map_err(|error| ApiError::BadRequest(error.0))?;
            store.write(&project_id, std::mem::take(&mut outcome.writes))?;
            Ok(outcome)
        })
        .await?;
    let successes: Vec<Value> = outcome
        .successes
        .iter()
        .map(|id| json!({"id": id, "status": 201}))
        .collect();
    let errors: Vec<Value> = outcome
        .errors
        .iter()
        .map(|(id, error)| json!({"id": id, "status": error.status, "message": error.message, "error": error.error}))
        .collect();
    Ok((
        StatusCode::MULTI_STATUS,
        Json(json!({"successes": successes, "errors": errors})),
    )
        .into_response())
}

/// `POST /api/public/otel/v1/traces` (and `/v1/traces`): OTLP/HTTP protobuf or JSON, gzip or not.
pub async fn otlp_traces(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let caller = state.caller(&headers, false).await?;
    if caller.scope != Scope::Project {
        return Err(ApiError::Forbidden(
            "OTLP ingestion needs Basic auth with the secret key".into(),
        ));
    }
    if let Some(version) = headers.get("x-langfuse-ingestion-version") {
        let valid = version
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok())
            .is_some_and(|v| v <= 4);
        if !valid {
            return Err(ApiError::BadRequest(
                "x-langfuse-ingestion-version: expected an integer ≤ 4".into(),
            ));
        }
    }
    let content_type = header_text(&headers, header::CONTENT_TYPE).unwrap_or_default();
    let encoding = header_text(&headers, header::CONTENT_ENCODING);
    let project_id = caller.project_id;
    let rejected = state
        .blocking(move |store| {
            let now = chrono::Utc::now().timestamp_micros();
            let export = otlp::prepare(
                &content_type,
                encoding.as_deref(),
                &body,
                store.pricing(),
                now,
            )
            .map_err(|error| ApiError::BadRequest(error.to_string()))?;
            store.write_prepared(&project_id, export.batch)?;
            Ok(export.errors)
        })
        .await?;
    if rejected.is_empty() {
        return Ok((StatusCode::OK, Json(json!({}))).into_response());
    }
    // OTLP's partial-success answer: the export succeeded, some spans were not stored.
    let message = rejected
        .iter()
        .map(|(_, error)| error.error.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    Ok((
        StatusCode::OK,
        Json(json!({"partialSuccess": {"rejectedSpans": rejected.len(), "errorMessage": message}})),
    )
        .into_response())
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// `POST /api/public/scores`: one score → `{id}`; an array → 202, or 207 when some failed.
pub async fn scores(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let caller = state.caller(&headers, false).await?;
    too_large(&body)?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|error| ApiError::BadRequest(format!("body is not JSON: {error}")))?;
    let now = chrono::Utc::now();
    let project_id = caller.project_id;
    match value {
        Value::Object(score) => {
            let upsert =
                score_upsert(score, now).map_err(|error| ApiError::BadRequest(error.error))?;
            let id = upsert.id.clone();
            let batch = WriteBatch {
                scores: vec![upsert],
                ..WriteBatch::default()
            };
            state
                .blocking(move |store| Ok(store.write(&project_id, batch)?))
                .await?;
            Ok(Json(json!({"id": id})).into_response())
        }
        Value::Array(items) => {
            let mut batch = WriteBatch::default();
            let mut errors: Vec<EventError> = Vec::new();
            for item in &items {
                let result = match item {
                    Value::Object(score) => score_upsert(score.clone(), now),
                    _ => Err(EventError::invalid("each score must be an object")),
                };
                match result {
                    Ok(upsert) => batch.scores.push(upsert),
                    Err(error) => errors.push(error),
                }
            }
            let accepted = batch.scores.len();
            state
                .blocking(move |store| Ok(store.write(&project_id, batch)?))
                .await?;
            if errors.is_empty() {
                return Ok(
                    (StatusCode::ACCEPTED, Json(json!({"message": "Accepted"}))).into_response()
                );
            }
            let errors: Vec<Value> = errors
                .iter()
                .map(|error| json!({"message": error.error}))
                .collect();
            Ok((
                StatusCode::MULTI_STATUS,
                Json(json!({"accepted": accepted, "rejected": errors.len(), "errors": errors})),
            )
                .into_response())
        }
        _ => Err(ApiError::BadRequest(
            "body: expected a score object or an array of scores".into(),
        )),
    }
}

/// Legacy `POST /api/public/traces`: a `trace-create` body → `{id}`.
pub async fn legacy_trace(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let caller = state.caller(&headers, false).await?;
    require_project(&caller)?;
    too_large(&body)?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|error| ApiError::BadRequest(format!("body is not JSON: {error}")))?;
    let mut trace = value
        .as_object()
        .cloned()
        .ok_or_else(|| ApiError::BadRequest("body: expected a trace object".into()))?;
    trace
        .entry("id")
        .or_insert_with(|| Value::String(axion_model::random_event_id()));
    let upsert = trace_upsert(trace, chrono::Utc::now())
        .map_err(|error| ApiError::BadRequest(error.error))?;
    let id = upsert.id.clone();
    let project_id = caller.project_id;
    let batch = WriteBatch {
        traces: vec![upsert],
        ..WriteBatch::default()
    };
    state
        .blocking(move |store| Ok(store.write(&project_id, batch)?))
        .await?;
    Ok(Json(json!({"id": id})).into_response())
}
