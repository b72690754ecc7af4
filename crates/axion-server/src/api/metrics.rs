//! `GET /api/public/v2/metrics` and the legacy `GET /api/public/metrics`: Langfuse's metrics
//! query (views of observations and scores, dimensions, aggregations, time buckets).

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::ProjectRequest;
use crate::error::{ApiError, ApiResult};
use crate::store::metrics;
use crate::AppState;

/// `GET /api/public/v2/metrics?query=…` (and `/api/public/metrics`, which takes the same query).
pub async fn query(
    State(state): State<AppState>,
    ProjectRequest { project_id, params }: ProjectRequest,
) -> ApiResult<Json<Value>> {
    let text = params.get("query").ok_or_else(|| {
        ApiError::BadRequest("query: the JSON query parameter is required".into())
    })?;
    let query = metrics::parse(&text).map_err(ApiError::BadRequest)?;
    let rows = state
        .blocking(move |store| Ok(store.metrics(&project_id, &query)?))
        .await?;
    Ok(Json(json!({ "data": rows })))
}
