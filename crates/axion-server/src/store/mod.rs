//! Storage: one trait, implemented by SQLite (embedded, the default) and PostgreSQL, and one
//! conformance suite (`tests/store_conformance.rs`) both pass. Their reads share one SQL
//! module (`sql`).
//!
//! Calls block; the HTTP layer runs them on tokio's blocking pool. A returned `Ok` from
//! [`Store::write`] means the data is durable.

pub mod filter;
mod in_place;
mod ingest_log;
pub mod metrics;
pub mod postgres;
mod postgres_tls;
pub mod rows;
mod sql;
pub mod sqlite;

use std::collections::{BTreeMap, HashMap};

use crate::ingest::WriteBatch;
use crate::JsonMap;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Storage failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database reported an error.
    #[error("database error: {0}")]
    Database(String),
    /// The writer thread is gone (the server is shutting down).
    #[error("the store is closed")]
    Closed,
    /// Stored data could not be read back.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        Self::Database(error.to_string())
    }
}

/// A project: the unit of isolation; every key belongs to exactly one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// Stable id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Creation time, microseconds since the epoch.
    pub created_at: i64,
}

/// A stored API key (the secret only as its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// `pk-lf-…`
    pub public_key: String,
    /// Hex SHA-256 of the secret key.
    pub secret_hash: String,
    /// The project the key opens.
    pub project_id: String,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Ascending.
    Asc,
    /// Descending (the default everywhere).
    #[default]
    Desc,
}

/// Offset (v1) or keyset (v2/v3 cursor) pagination.
#[derive(Debug, Clone, PartialEq)]
pub enum Pagination {
    /// `page` from 1, `limit` items per page; the total is counted.
    Offset {
        /// 1-based page.
        page: u32,
        /// Items per page.
        limit: u32,
    },
    /// Items strictly after `after` (time in µs, id) in descending order; no total.
    Keyset {
        /// Items per page.
        limit: u32,
        /// The last item of the previous page.
        after: Option<(i64, String)>,
    },
}

impl Pagination {
    pub(crate) fn limit(&self) -> u32 {
        match self {
            Self::Offset { limit, .. } | Self::Keyset { limit, .. } => *limit,
        }
    }
}

/// Filters of `GET /traces`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceQuery {
    /// Exact user id.
    pub user_id: Option<String>,
    /// Exact name.
    pub name: Option<String>,
    /// Exact session id.
    pub session_id: Option<String>,
    /// Exact version.
    pub version: Option<String>,
    /// Exact release.
    pub release: Option<String>,
    /// The trace must carry all of these.
    pub tags: Vec<String>,
    /// Any of these environments.
    pub environments: Vec<String>,
    /// Timestamp ≥ (µs).
    pub from_timestamp: Option<i64>,
    /// Timestamp < (µs).
    pub to_timestamp: Option<i64>,
    /// Column (`timestamp`, `name`, `userId`, …) and direction.
    pub order_by: Option<(String, Direction)>,
    /// Conditions of the structured `filter` parameter, all of which must hold.
    pub conditions: Vec<filter::Condition>,
    /// Leave out input and output a trace shows from its root observation (`fields` without
    /// `io`: nobody reads them, so they are not looked up).
    pub skip_borrowed_io: bool,
}

/// A trace as stored: the merged Langfuse-shaped body.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceRecord {
    /// Owning project.
    pub project_id: String,
    /// Merged fields (`id`, `timestamp`, `name`, `tags`, `metadata`, …).
    pub body: JsonMap,
    /// First write, µs.
    pub created_at: i64,
    /// Last write, µs.
    pub updated_at: i64,
}

/// Aggregates of a trace's observations and scores.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceMetrics {
    /// Seconds from the earliest observation start to the latest end.
    pub latency: f64,
    /// Sum of the observations' total cost, USD.
    pub total_cost: f64,
    /// Observation ids.
    pub observation_ids: Vec<String>,
    /// Score ids.
    pub score_ids: Vec<String>,
}

/// Filters of `GET /observations` and `GET /v2/observations`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObservationQuery {
    /// Exact name.
    pub name: Option<String>,
    /// The trace's user id.
    pub user_id: Option<String>,
    /// The trace's session id.
    pub session_id: Option<String>,
    /// Observation type (`GENERATION`, …).
    pub observation_type: Option<String>,
    /// Trace id.
    pub trace_id: Option<String>,
    /// Level.
    pub level: Option<String>,
    /// Parent observation id.
    pub parent_observation_id: Option<String>,
    /// Only roots (true) or only children (false).
    pub is_root: Option<bool>,
    /// Exact version.
    pub version: Option<String>,
    /// Any of these environments.
    pub environments: Vec<String>,
    /// Start ≥ (µs).
    pub from_start_time: Option<i64>,
    /// Start < (µs).
    pub to_start_time: Option<i64>,
    /// Conditions of the structured `filter` parameter, all of which must hold.
    pub conditions: Vec<filter::Condition>,
}

/// An observation as stored, with what the price table derived from it.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservationRecord {
    /// Owning project.
    pub project_id: String,
    /// Merged fields.
    pub body: JsonMap,
    /// Usage with `total`.
    pub usage: BTreeMap<String, f64>,
    /// Cost per key with `total` (provided or computed).
    pub cost: BTreeMap<String, f64>,
    /// Matched model id.
    pub model_id: Option<String>,
    /// Matched tier's unit prices (`input`, `output`, `total`).
    pub prices: BTreeMap<String, f64>,
    /// First write, µs.
    pub created_at: i64,
    /// Last write, µs.
    pub updated_at: i64,
}

/// A session: made by the first trace that names it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    /// Session id.
    pub id: String,
    /// Owning project.
    pub project_id: String,
    /// Environment of its first trace.
    pub environment: String,
    /// First trace's time, µs.
    pub created_at: i64,
}

/// Filters of `GET /sessions`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionQuery {
    /// Created ≥ (µs).
    pub from_timestamp: Option<i64>,
    /// Created < (µs).
    pub to_timestamp: Option<i64>,
    /// Any of these environments.
    pub environments: Vec<String>,
}

/// Filters of the score list endpoints.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoreQuery {
    /// Score ids.
    pub ids: Vec<String>,
    /// Any of these names.
    pub names: Vec<String>,
    /// The trace's user id.
    pub user_id: Option<String>,
    /// Any of these data types.
    pub data_types: Vec<String>,
    /// Any of these sources.
    pub sources: Vec<String>,
    /// Config id.
    pub config_id: Option<String>,
    /// Queue id.
    pub queue_id: Option<String>,
    /// The trace must carry all of these tags.
    pub trace_tags: Vec<String>,
    /// Any of these environments.
    pub environments: Vec<String>,
    /// Comparison on `value` (`<`, `>`, `<=`, `>=`, `=`, `!=`).
    pub value: Option<(String, f64)>,
    /// value ≥.
    pub value_min: Option<f64>,
    /// value ≤.
    pub value_max: Option<f64>,
    /// Timestamp ≥ (µs).
    pub from_timestamp: Option<i64>,
    /// Timestamp < (µs).
    pub to_timestamp: Option<i64>,
    /// Any of these trace ids.
    pub trace_ids: Vec<String>,
    /// Any of these observation ids.
    pub observation_ids: Vec<String>,
    /// Any of these session ids.
    pub session_ids: Vec<String>,
    /// Dataset run id.
    pub dataset_run_id: Option<String>,
}

/// A score as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRecord {
    /// Owning project.
    pub project_id: String,
    /// Merged fields.
    pub body: JsonMap,
    /// First write, µs.
    pub created_at: i64,
    /// Last write, µs.
    pub updated_at: i64,
}

/// A page of results; `total` only for offset pagination.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Total matching items (offset pagination only).
    pub total: Option<u64>,
}

/// Everything the server needs from storage.
pub trait Store: Send + Sync + 'static {
    /// Merges a batch of upserts; `Ok` means durable.
    fn write(&self, project_id: &str, batch: WriteBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        // Folding, pricing and serialising happen here, on the caller's thread (requests run
        // in parallel); a store's writer only runs SQL.
        let now = chrono::Utc::now().timestamp_micros();
        self.write_prepared(
            project_id,
            rows::PreparedBatch::new(batch, self.pricing(), now),
        )
    }

    /// Stores rows already folded, priced and serialised (`rows`); `Ok` means durable.
    fn write_prepared(
        &self,
        project_id: &str,
        batch: rows::PreparedBatch,
    ) -> Result<(), StoreError>;

    /// The price table the store's rows are priced with.
    fn pricing(&self) -> &crate::cost::Pricing;

    /// Finishes what was accepted and stops taking writes (the server's last call).
    fn close(&self) {}

    /// Where the data lives, for people: the SQLite file, or the PostgreSQL database and
    /// server (never a password).
    fn location(&self) -> String;

    /// Creates a project under a new id.
    fn create_project(&self, name: &str) -> Result<Project, StoreError> {
        let project = Project {
            id: format!(
                "project-{}",
                &axion_model::random_event_id()[..13].replace('-', "")
            ),
            name: name.to_owned(),
            created_at: chrono::Utc::now().timestamp_micros(),
        };
        self.put_project(&project)?;
        Ok(project)
    }
    /// All projects, oldest first.
    fn projects(&self) -> Result<Vec<Project>, StoreError>;
    /// Stores a key (replacing one with the same public key).
    fn put_api_key(&self, key: &ApiKey) -> Result<(), StoreError>;
    /// The key with this public key.
    fn api_key(&self, public_key: &str) -> Result<Option<ApiKey>, StoreError>;
    /// How many keys exist (the first start generates one when there are none).
    fn api_key_count(&self) -> Result<usize, StoreError>;

    /// Traces matching `query`.
    fn list_traces(
        &self,
        project_id: &str,
        query: &TraceQuery,
        page: &Pagination,
    ) -> Result<Page<TraceRecord>, StoreError>;
    /// One trace.
    fn trace(&self, project_id: &str, id: &str) -> Result<Option<TraceRecord>, StoreError>;
    /// Latency, cost and child ids of these traces.
    fn trace_metrics(
        &self,
        project_id: &str,
        trace_ids: &[String],
    ) -> Result<HashMap<String, TraceMetrics>, StoreError>;
    /// Deletes traces with their observations and scores; returns how many traces existed.
    fn delete_traces(&self, project_id: &str, ids: &[String]) -> Result<usize, StoreError>;

    /// Observations matching `query`, newest start first.
    fn list_observations(
        &self,
        project_id: &str,
        query: &ObservationQuery,
        page: &Pagination,
    ) -> Result<Page<ObservationRecord>, StoreError>;
    /// One observation.
    fn observation(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<Option<ObservationRecord>, StoreError>;
    /// All observations of a trace, by start time.
    fn trace_observations(
        &self,
        project_id: &str,
        trace_id: &str,
    ) -> Result<Vec<ObservationRecord>, StoreError>;

    /// Sessions, newest first.
    fn list_sessions(
        &self,
        project_id: &str,
        query: &SessionQuery,
        page: &Pagination,
    ) -> Result<Page<SessionRecord>, StoreError>;
    /// One session.
    fn session(&self, project_id: &str, id: &str) -> Result<Option<SessionRecord>, StoreError>;
    /// Traces of a session, oldest first.
    fn session_traces(
        &self,
        project_id: &str,
        session_id: &str,
    ) -> Result<Vec<TraceRecord>, StoreError>;

    /// Scores matching `query`, newest first.
    fn list_scores(
        &self,
        project_id: &str,
        query: &ScoreQuery,
        page: &Pagination,
    ) -> Result<Page<ScoreRecord>, StoreError>;
    /// One score.
    fn score(&self, project_id: &str, id: &str) -> Result<Option<ScoreRecord>, StoreError>;
    /// Deletes a score; whether it existed.
    fn delete_score(&self, project_id: &str, id: &str) -> Result<bool, StoreError>;

    /// Answers a metrics query (see [`metrics`]): the store reads the matching rows, a
    /// [`metrics::Aggregator`] groups them.
    fn metrics(
        &self,
        project_id: &str,
        query: &metrics::MetricsQuery,
    ) -> Result<Vec<crate::JsonMap>, StoreError>;

    /// Every API key (copying a store: see [`copy`]).
    fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError>;
    /// Creates a project under its id and name unless one with the id exists.
    fn put_project(&self, project: &Project) -> Result<(), StoreError>;
    /// A page of a project's records of one kind as stored, as the upserts that store them
    /// again ([`copy`]): after the cursor the previous page returned (from the first when
    /// `None`), `limit` at most. A trace's upsert names the observation it shows input and
    /// output from, instead of a copy of them.
    fn export(
        &self,
        project_id: &str,
        kind: RecordKind,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ExportPage, StoreError>;
}

/// What [`Store::export`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// Traces.
    Traces,
    /// Observations.
    Observations,
    /// Scores.
    Scores,
}

/// A page of [`Store::export`].
#[derive(Debug, Clone, PartialEq)]
pub struct ExportPage {
    /// The records, as upserts.
    pub upserts: Vec<crate::ingest::Upsert>,
    /// Where the next page starts; `None` after the last.
    pub cursor: Option<String>,
}

/// Opens the store at `location`: a PostgreSQL URL (`postgres://…`, `postgresql://…`, or
/// libpq's `host=… dbname=…` form), or else a data directory ([`open_data_dir`]). Langfuse's
/// default model prices.
pub fn open(location: &str) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    let pricing = std::sync::Arc::new(crate::cost::Pricing::langfuse_defaults());
    if postgres_tls::is_database(location) {
        return Ok(std::sync::Arc::new(PostgresStore::connect(
            location, pricing,
        )?));
    }
    open_data_dir(std::path::Path::new(location), pricing)
}

/// Opens the SQLite store of a data directory ([`DATABASE_FILE`] in it), creating both when
/// missing.
pub fn open_data_dir(
    dir: &std::path::Path,
    pricing: std::sync::Arc<crate::cost::Pricing>,
) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    std::fs::create_dir_all(dir)
        .map_err(|error| StoreError::Database(format!("creating {}: {error}", dir.display())))?;
    Ok(std::sync::Arc::new(SqliteStore::open(
        dir.join(DATABASE_FILE),
        pricing,
    )?))
}

/// The SQLite file in a data directory.
pub const DATABASE_FILE: &str = "axion.db";

/// How much [`copy`] has copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Projects.
    pub projects: usize,
    /// API keys.
    pub keys: usize,
    /// Traces.
    pub traces: u64,
    /// Observations.
    pub observations: u64,
    /// Scores.
    pub scores: u64,
}

/// Records [`copy`] moves per write.
const COPY_PAGE: u32 = 1_000;

/// Copies every project, key, trace, observation and score of `from` into `to` (sessions
/// follow from the traces), page by page, calling `progress` after each page: moving from the
/// SQLite file to PostgreSQL, or back. Records are merged into what `to` holds, so running it
/// again changes nothing. Record times (`timestamp`, `startTime`, …) are kept; `createdAt` and
/// `updatedAt` become the time of the copy.
pub fn copy(
    from: &dyn Store,
    to: &dyn Store,
    mut progress: impl FnMut(&CopyReport),
) -> Result<CopyReport, StoreError> {
    use crate::ingest::WriteBatch;
    let mut report = CopyReport::default();
    let keys = from.api_keys()?;
    for project in from.projects()? {
        to.put_project(&project)?;
        report.projects += 1;
        for key in keys.iter().filter(|key| key.project_id == project.id) {
            to.put_api_key(key)?;
            report.keys += 1;
        }
        for kind in [
            RecordKind::Traces,
            RecordKind::Observations,
            RecordKind::Scores,
        ] {
            let mut cursor: Option<String> = None;
            loop {
                let page = from.export(&project.id, kind, cursor.as_deref(), COPY_PAGE)?;
                let count = page.upserts.len() as u64;
                let mut batch = WriteBatch::default();
                match kind {
                    RecordKind::Traces => {
                        batch.traces = page.upserts;
                        report.traces += count;
                    }
                    RecordKind::Observations => {
                        batch.observations = page.upserts;
                        report.observations += count;
                    }
                    RecordKind::Scores => {
                        batch.scores = page.upserts;
                        report.scores += count;
                    }
                }
                to.write(&project.id, batch)?;
                progress(&report);
                match page.cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
    }
    Ok(report)
}

/// JSON text a store wrote, parsed (a failure means the stored data is corrupt).
fn parse_stored<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|error| StoreError::Corrupt(error.to_string()))
}

/// A body stored as JSON text, parsed.
fn parse_body(text: &str) -> Result<JsonMap, StoreError> {
    parse_stored(text)
}

/// Fills a trace `body`'s missing input and output from the body (JSON text) of the
/// observation it shows them from.
fn fill_io(body: &mut JsonMap, observation_body: &str) -> Result<(), StoreError> {
    /// Only these two fields of the observation body are built; the rest is skipped.
    #[derive(serde::Deserialize)]
    struct IoFields {
        input: Option<serde_json::Value>,
        output: Option<serde_json::Value>,
    }
    let fields: IoFields = parse_stored(observation_body)?;
    for (key, value) in [("input", fields.input), ("output", fields.output)] {
        if let Some(value) = value.filter(|value| !value.is_null()) {
            body.entry(key).or_insert(value);
        }
    }
    Ok(())
}

/// An observation read back: its project, body and derived fields (JSON texts) and times.
fn to_observation(
    (project_id, body, derived, created_at, updated_at): (String, String, String, i64, i64),
) -> Result<ObservationRecord, StoreError> {
    use crate::cost::numeric_map;
    let derived: serde_json::Value = parse_stored(&derived)?;
    Ok(ObservationRecord {
        project_id,
        body: parse_body(&body)?,
        usage: numeric_map(derived.get("usage")),
        cost: numeric_map(derived.get("cost")),
        model_id: derived
            .get("modelId")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned),
        prices: numeric_map(derived.get("prices")),
        created_at,
        updated_at,
    })
}

/// A score read back: its project, body (JSON text) and times.
fn to_score(
    (project_id, body, created_at, updated_at): (String, String, i64, i64),
) -> Result<ScoreRecord, StoreError> {
    Ok(ScoreRecord {
        project_id,
        body: parse_body(&body)?,
        created_at,
        updated_at,
    })
}
