//! `GET /api/public/v2/metrics` and the legacy `GET /api/public/metrics`: Langfuse's metrics
//! query (views of observations and scores, dimensions, aggregations, time buckets).

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::ProjectRequest;
use crate::error::{ApiError, ApiResult};
use crate::store::metrics;
use crate::AppState;

/// `GET /api/public/v2/metrics?query=…`.
pub async fn query(
    State(state): State<AppState>,
    request: ProjectRequest,
) -> ApiResult<Json<Value>> {
    answer(state, request, metrics::parse).await
}

/// `GET /api/public/metrics?query=…`: the same query, with the traces view too.
pub async fn legacy(
    State(state): State<AppState>,
    request: ProjectRequest,
) -> ApiResult<Json<Value>> {
    answer(state, request, metrics::parse_legacy).await
}

async fn answer(
    state: AppState,
    ProjectRequest { project_id, params }: ProjectRequest,
    parse: fn(&str) -> Result<metrics::MetricsQuery, String>,
) -> ApiResult<Json<Value>> {
    let text = params.get("query").ok_or_else(|| {
        ApiError::BadRequest("query: the JSON query parameter is required".into())
    })?;
    let query = parse(&text).map_err(ApiError::BadRequest)?;
    let rows = state
        .blocking(move |store| Ok(store.metrics(&project_id, &query)?))
        .await?;
    Ok(Json(json!({ "data": rows })))
}
