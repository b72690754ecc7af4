//! `GET /api/public/health` (no auth) and `GET /api/public/projects` (the SDKs' auth check).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{iso, ProjectRequest};
use crate::error::ApiResult;
use crate::AppState;

/// `GET /api/public/health`: 200 when the database answers, 503 otherwise.
pub async fn health(State(state): State<AppState>) -> Response {
    let version = env!("CARGO_PKG_VERSION");
    match state.blocking(|store| Ok(store.projects()?)).await {
        Ok(_) => Json(json!({"status": "OK", "version": version})).into_response(),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "Database not available", "version": version, "error": error.to_string()})),
        )
            .into_response(),
    }
}

/// `GET /api/public/projects`: the caller's project.
pub async fn list(
    State(state): State<AppState>,
    ProjectRequest { project_id, .. }: ProjectRequest,
) -> ApiResult<Json<Value>> {
    let projects = state.blocking(|store| Ok(store.projects()?)).await?;
    let data: Vec<Value> = projects
        .iter()
        .filter(|project| project.id == project_id)
        .map(|project| {
            json!({
                "id": project.id, "name": project.name, "metadata": {},
                "organization": {"id": "axion", "name": "axion"},
                "createdAt": iso(project.created_at),
            })
        })
        .collect();
    Ok(Json(json!({"data": data})))
}
