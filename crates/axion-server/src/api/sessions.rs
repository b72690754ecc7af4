//! `GET /api/public/sessions[/{id}]`.

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

use super::{iso, page_meta, traces::trace_json, ProjectRequest};
use crate::error::{ApiError, ApiResult};
use crate::store::{SessionQuery, SessionRecord};
use crate::AppState;

fn session_json(session: &SessionRecord) -> Value {
    json!({
        "id": session.id, "createdAt": iso(session.created_at),
        "projectId": session.project_id, "environment": session.environment,
    })
}

/// `GET /api/public/sessions`.
pub async fn list(
    State(state): State<AppState>,
    ProjectRequest { project_id, params }: ProjectRequest,
) -> ApiResult<Json<Value>> {
    let page = params.offset_page(100)?;
    let query = SessionQuery {
        from_timestamp: params.time("fromTimestamp")?,
        to_timestamp: params.time("toTimestamp")?,
        environments: params.all("environment"),
    };
    let (found, page) = state
        .blocking(move |store| Ok((store.list_sessions(&project_id, &query, &page)?, page)))
        .await?;
    let data: Vec<Value> = found.items.iter().map(session_json).collect();
    Ok(Json(
        json!({"data": data, "meta": page_meta(&page, found.total)}),
    ))
}

/// `GET /api/public/sessions/{id}`: the session and its traces.
pub async fn get_one(
    State(state): State<AppState>,
    ProjectRequest { project_id, .. }: ProjectRequest,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (session, traces) = state
        .blocking(move |store| {
            let session = store.session(&project_id, &id)?.ok_or_else(|| {
                ApiError::NotFound(format!("Session {id} not found within authorized project"))
            })?;
            Ok((session, store.session_traces(&project_id, &id)?))
        })
        .await?;
    let mut body = session_json(&session);
    body["traces"] = traces.iter().map(|trace| trace_json(trace, true)).collect();
    Ok(Json(body))
}
