//! The HTTP surface: one module per resource under `/api/public`, and the web UI (`ui`).

pub mod ingest;
pub mod metrics;
pub mod observations;
pub mod projects;
pub mod scores;
pub mod sessions;
pub mod traces;
pub mod ui;

use base64::Engine;
use serde_json::{json, Value};

use crate::auth::require_project;
use crate::error::{ApiError, ApiResult};
use crate::ingest::parse_time;
use crate::store::Pagination;
use crate::AppState;

/// A request with full access to one project (Basic auth with its secret key), and its query
/// parameters: where every read and delete handler starts. A public key alone is refused
/// (Bearer may only send scores), with Langfuse's bodies.
pub struct ProjectRequest {
    /// The project the key opens.
    pub project_id: String,
    /// The query string's parameters.
    pub params: Params,
}

impl axum::extract::FromRequestParts<AppState> for ProjectRequest {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = state.caller(&parts.headers, false).await?;
        require_project(&caller)?;
        Ok(Self {
            project_id: caller.project_id,
            params: Params::parse(parts.uri.query()),
        })
    }
}

/// Query parameters, with repeated keys kept (`tags=a&tags=b`).
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Self {
        Self(
            form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .map(|(key, value)| (key.into_owned(), value.into_owned()))
                .collect(),
        )
    }

    /// The first non-empty value of `key`.
    pub fn get(&self, key: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.clone())
    }

    /// Every value of a repeatable key (`key` or `key[]`).
    pub fn all(&self, key: &str) -> Vec<String> {
        let bracketed = format!("{key}[]");
        self.0
            .iter()
            .filter(|(k, v)| (k == key || *k == bracketed) && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Every value of a key, each also split at commas (`fields=core,io`).
    pub fn list(&self, key: &str) -> Vec<String> {
        self.all(key)
            .iter()
            .flat_map(|value| value.split(','))
            .map(|item| item.trim().to_owned())
            .filter(|item| !item.is_empty())
            .collect()
    }

    /// A datetime parameter as µs since the epoch.
    pub fn time(&self, key: &str) -> ApiResult<Option<i64>> {
        self.get(key)
            .map(|text| {
                parse_time(&Value::String(text), key)
                    .map(|time| time.timestamp_micros())
                    .map_err(|error| ApiError::BadRequest(error.error))
            })
            .transpose()
    }

    /// An optional boolean (`true`/`false`).
    pub fn flag(&self, key: &str) -> ApiResult<Option<bool>> {
        match self.get(key).as_deref() {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(ApiError::BadRequest(format!(
                "{key}: expected true or false, got {other:?}"
            ))),
        }
    }

    /// An optional number.
    pub fn number(&self, key: &str) -> ApiResult<Option<f64>> {
        self.get(key)
            .map(|text| {
                text.parse().map_err(|_| {
                    ApiError::BadRequest(format!("{key}: expected a number, got {text:?}"))
                })
            })
            .transpose()
    }

    /// `page` (≥ 1, default 1) and `limit` (1..=`max`, default 50).
    pub fn offset_page(&self, max: u32) -> ApiResult<Pagination> {
        let page = self.integer("page", 1)?;
        let limit = self.integer("limit", 50)?;
        if page < 1 {
            return Err(ApiError::BadRequest("page: must be ≥ 1".into()));
        }
        if !(1..=max).contains(&limit) {
            return Err(ApiError::BadRequest(format!(
                "limit: must be between 1 and {max}"
            )));
        }
        Ok(Pagination::Offset { page, limit })
    }

    /// `limit` (1..=`max`, default 50) and an opaque `cursor` from a previous page.
    pub fn keyset_page(&self, max: u32) -> ApiResult<Pagination> {
        let limit = self.integer("limit", 50)?.max(1);
        if limit > max {
            return Err(ApiError::BadRequest(format!(
                "limit: must be between 1 and {max}"
            )));
        }
        let after = self
            .get("cursor")
            .map(|cursor| decode_cursor(&cursor))
            .transpose()?;
        Ok(Pagination::Keyset { limit, after })
    }

    fn integer(&self, key: &str, default: u32) -> ApiResult<u32> {
        match self.get(key) {
            None => Ok(default),
            Some(text) => text.parse().map_err(|_| {
                ApiError::BadRequest(format!("{key}: expected a positive integer, got {text:?}"))
            }),
        }
    }
}

/// The opaque cursor of keyset pages: base64 JSON of the last item's time and id.
pub fn encode_cursor(time: i64, id: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(json!({"t": time, "id": id}).to_string())
}

fn decode_cursor(cursor: &str) -> ApiResult<(i64, String)> {
    let invalid = || ApiError::BadRequest("cursor: not a cursor returned by this server".into());
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(cursor.trim())
        .map_err(|_| invalid())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    Ok((
        value.get("t").and_then(Value::as_i64).ok_or_else(invalid)?,
        value
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(invalid)?
            .to_owned(),
    ))
}

/// Offset-pagination `meta`.
pub fn page_meta(pagination: &Pagination, total: Option<u64>) -> Value {
    let (page, limit) = match pagination {
        Pagination::Offset { page, limit } => (*page, *limit),
        Pagination::Keyset { limit, .. } => (1, *limit),
    };
    let total = total.unwrap_or(0);
    json!({
        "page": page, "limit": limit, "totalItems": total,
        "totalPages": total.div_ceil(u64::from(limit.max(1))),
    })
}

/// Microseconds since the epoch as RFC 3339 with milliseconds, as Langfuse prints times.
pub fn iso(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `(direction)` from `orderBy=field.asc|desc`.
pub fn order_by(value: Option<String>) -> ApiResult<Option<(String, crate::store::Direction)>> {
    let Some(value) = value else { return Ok(None) };
    let (field, direction) = value.rsplit_once('.').ok_or_else(|| {
        ApiError::BadRequest(format!(
            "orderBy: expected <field>.<asc|desc>, got {value:?}"
        ))
    })?;
    let direction = match direction {
        "asc" | "ASC" => crate::store::Direction::Asc,
        "desc" | "DESC" => crate::store::Direction::Desc,
        _ => {
            return Err(ApiError::BadRequest(format!(
                "orderBy: direction must be asc or desc, got {direction:?}"
            )))
        }
    };
    const FIELDS: &[&str] = &[
        "id",
        "timestamp",
        "name",
        "userId",
        "release",
        "version",
        "public",
        "bookmarked",
        "sessionId",
    ];
    if !FIELDS.contains(&field) {
        return Err(ApiError::BadRequest(format!(
            "orderBy: unknown field {field:?}; expected one of {FIELDS:?}"
        )));
    }
    Ok(Some((field.to_owned(), direction)))
}
