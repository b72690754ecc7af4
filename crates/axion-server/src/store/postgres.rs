//! The PostgreSQL store, for when one machine's SQLite file is no longer enough: several
//! `axion serve` processes can share one database.
//!
//! Each write is one transaction, committed (and so durable, with PostgreSQL's default
//! `synchronous_commit`) before the request is answered. New rows of a batch go in with one
//! statement per table (`INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING`); only ids that
//! exist already are read back under a row lock, merged as the SQLite store merges them, and
//! written again. Rows are inserted in id order, so concurrent writers of the same ids take
//! their locks in the same order; should PostgreSQL still report a deadlock or a serialisation
//! failure, the whole transaction is retried.
//!
//! Reads share their SQL with the SQLite store (the `store::sql` module).
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use axion_server::store::{PostgresStore, Store};
//!
//! let store = PostgresStore::connect_with_default_prices("postgres://axion@127.0.0.1/axion")?;
//! println!("{} projects", store.projects()?.len());
//! # Ok(()) }
//! ```

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ::postgres::types::{ToSql, Type};
use ::postgres::{Client, Row, Statement, Transaction};
use rusqlite::types::Value as SqlValue;

use super::postgres_tls::SslMode;
use super::rows::{self, ObservationRow, PreparedBatch, TraceRow};
use super::sql::{self, numbered, Dialect};
use super::*;
use crate::cost::Pricing;
use crate::ingest::{
    merge_into, merge_owned, OBSERVATION_IMMUTABLE, SCORE_IMMUTABLE, TRACE_IMMUTABLE,
};

/// Schema versions, applied in order; `axion_schema.version` records how many ran.
///
/// Texts compare bytewise (`COLLATE "C"`), as SQLite's do: ids need no linguistic order, and
/// a database created with a language's collation would otherwise compare every index key
/// through it. Indexes start with the column that tells entries apart (the id, the trace, the
/// user), not the project, which is the same on nearly every row: in a profile of the ingest
/// bench, B-tree key comparisons were the largest part of PostgreSQL's time.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE projects (
    id TEXT COLLATE "C" PRIMARY KEY, name TEXT NOT NULL, created_at BIGINT NOT NULL);
CREATE TABLE api_keys (
    public_key TEXT COLLATE "C" PRIMARY KEY, secret_hash TEXT NOT NULL,
    project_id TEXT COLLATE "C" NOT NULL REFERENCES projects(id), created_at BIGINT NOT NULL);
CREATE TABLE traces (
    project_id TEXT COLLATE "C" NOT NULL, id TEXT COLLATE "C" NOT NULL,
    timestamp BIGINT NOT NULL, name TEXT COLLATE "C", user_id TEXT COLLATE "C",
    session_id TEXT COLLATE "C", release TEXT COLLATE "C", version TEXT COLLATE "C",
    environment TEXT COLLATE "C" NOT NULL, public INTEGER NOT NULL DEFAULT 0,
    tags TEXT[] COLLATE "C", body JSON NOT NULL, io_observation_id TEXT COLLATE "C",
    created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
    PRIMARY KEY (id, project_id));
CREATE INDEX traces_by_time ON traces (project_id, timestamp);
CREATE INDEX traces_by_user ON traces (user_id, project_id, timestamp) WHERE user_id IS NOT NULL;
CREATE INDEX traces_by_session ON traces (session_id, project_id, timestamp)
    WHERE session_id IS NOT NULL;
CREATE INDEX traces_by_name ON traces (name, project_id, timestamp) WHERE name IS NOT NULL;
CREATE INDEX traces_by_environment ON traces (environment, project_id, timestamp);
CREATE TABLE observations (
    project_id TEXT COLLATE "C" NOT NULL, id TEXT COLLATE "C" NOT NULL,
    trace_id TEXT COLLATE "C", parent_observation_id TEXT COLLATE "C",
    type TEXT COLLATE "C" NOT NULL, name TEXT COLLATE "C", level TEXT COLLATE "C" NOT NULL,
    version TEXT COLLATE "C", environment TEXT COLLATE "C" NOT NULL, model TEXT COLLATE "C",
    start_time BIGINT, end_time BIGINT, total_cost DOUBLE PRECISION,
    body JSON NOT NULL, derived JSON NOT NULL,
    created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
    PRIMARY KEY (id, project_id));
CREATE INDEX observations_by_trace ON observations (trace_id, project_id, start_time);
CREATE INDEX observations_by_start ON observations (project_id, start_time, id);
CREATE INDEX observations_by_type ON observations (project_id, type, start_time);
CREATE INDEX observations_by_name ON observations (name, project_id, start_time);
CREATE TABLE scores (
    project_id TEXT COLLATE "C" NOT NULL, id TEXT COLLATE "C" NOT NULL,
    trace_id TEXT COLLATE "C", observation_id TEXT COLLATE "C", session_id TEXT COLLATE "C",
    dataset_run_id TEXT COLLATE "C", name TEXT COLLATE "C" NOT NULL, value DOUBLE PRECISION,
    data_type TEXT COLLATE "C" NOT NULL, source TEXT COLLATE "C" NOT NULL,
    config_id TEXT COLLATE "C", queue_id TEXT COLLATE "C", environment TEXT COLLATE "C" NOT NULL,
    timestamp BIGINT NOT NULL, body JSON NOT NULL,
    created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
    PRIMARY KEY (id, project_id));
CREATE INDEX scores_by_time ON scores (project_id, timestamp, id);
CREATE INDEX scores_by_trace ON scores (trace_id, project_id);
CREATE INDEX scores_by_observation ON scores (observation_id, project_id)
    WHERE observation_id IS NOT NULL;
CREATE INDEX scores_by_session ON scores (session_id, project_id) WHERE session_id IS NOT NULL;
CREATE INDEX scores_by_name ON scores (name, project_id, timestamp);
CREATE TABLE sessions (
    project_id TEXT COLLATE "C" NOT NULL, id TEXT COLLATE "C" NOT NULL,
    environment TEXT COLLATE "C" NOT NULL, created_at BIGINT NOT NULL,
    PRIMARY KEY (id, project_id));
CREATE INDEX sessions_by_time ON sessions (project_id, created_at);
"#];

/// Any number, so two servers starting on one database migrate it one after the other.
const MIGRATION_LOCK: i64 = 0x0061_7869_6f6e;

/// Idle connections kept for reuse.
const MAX_IDLE: usize = 8;

/// Connections open at once unless the URL's `pool_max_conns` says otherwise: as many as
/// `axion serve`'s blocking threads, which make every store call.
const DEFAULT_MAX_CONNECTIONS: usize = 16;

/// How long a store call waits for a connection when all `pool_max_conns` are in use.
const CONNECTION_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Times a transaction PostgreSQL aborted for a deadlock or a serialisation conflict is tried.
const ATTEMPTS: usize = 5;

/// New traces (`$1` project, `$2` time written, then one array per column); the tail decides
/// what an existing id does.
const TRACE_ROWS: &str = "INSERT INTO traces (project_id, id, timestamp, name, user_id, session_id,
        release, version, environment, public, tags, body, io_observation_id, created_at, updated_at)
    SELECT $1, r.id, r.ts, r.name, r.user_id, r.session_id, r.release, r.version, r.environment,
        r.public, CASE WHEN r.tags IS NULL THEN NULL
                       ELSE ARRAY(SELECT json_array_elements_text(CAST(r.tags AS JSON))) END,
        CAST(r.body AS JSON), r.io, $2, $2
    FROM unnest($3::TEXT[], $4::BIGINT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[],
                $9::TEXT[], $10::TEXT[], $11::INTEGER[], $12::TEXT[], $13::TEXT[], $14::TEXT[])
        AS r(id, ts, name, user_id, session_id, release, version, environment, public, tags,
             body, io)";

const TRACE_MERGE: &str =
    " ON CONFLICT (project_id, id) DO UPDATE SET timestamp = excluded.timestamp,
        name = excluded.name, user_id = excluded.user_id, session_id = excluded.session_id,
        release = excluded.release, version = excluded.version, environment = excluded.environment,
        public = excluded.public, body = excluded.body, tags = excluded.tags,
        io_observation_id = coalesce(excluded.io_observation_id, traces.io_observation_id),
        updated_at = excluded.updated_at";

/// New observations, as [`TRACE_ROWS`].
const OBSERVATION_ROWS: &str = "INSERT INTO observations (project_id, id, trace_id,
        parent_observation_id, type, name, level, version, environment, model, start_time,
        end_time, total_cost, body, derived, created_at, updated_at)
    SELECT $1, r.id, r.trace_id, r.parent, r.type, r.name, r.level, r.version, r.environment,
        r.model, r.start_time, r.end_time, r.total_cost, CAST(r.body AS JSON),
        CAST(r.derived AS JSON), $2, $2
    FROM unnest($3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[],
                $9::TEXT[], $10::TEXT[], $11::TEXT[], $12::BIGINT[], $13::BIGINT[],
                $14::DOUBLE PRECISION[], $15::TEXT[], $16::TEXT[])
        AS r(id, trace_id, parent, type, name, level, version, environment, model, start_time,
             end_time, total_cost, body, derived)";

const OBSERVATION_MERGE: &str = " ON CONFLICT (project_id, id) DO UPDATE SET
        trace_id = excluded.trace_id, parent_observation_id = excluded.parent_observation_id,
        type = excluded.type, name = excluded.name, level = excluded.level,
        version = excluded.version, environment = excluded.environment, model = excluded.model,
        start_time = excluded.start_time, end_time = excluded.end_time,
        total_cost = excluded.total_cost, body = excluded.body, derived = excluded.derived,
        updated_at = excluded.updated_at";

/// Rows an insert skipped are named by what it returns.
const NEW_IDS: &str = " ON CONFLICT (project_id, id) DO NOTHING RETURNING id";

/// The columns a record is read from, as macros so fixed statements are built at compile time
/// (`fixed` keys its statement cache by `&'static str`).
macro_rules! trace_columns {
    () => {
        "t.project_id, CAST(t.body AS TEXT), t.io_observation_id, t.created_at, t.updated_at"
    };
}
macro_rules! observation_columns {
    () => {
        "o.project_id, CAST(o.body AS TEXT), CAST(o.derived AS TEXT), o.created_at, o.updated_at"
    };
}
macro_rules! score_columns {
    () => {
        "s.project_id, CAST(s.body AS TEXT), s.created_at, s.updated_at"
    };
}
const TRACE_COLUMNS: &str = trace_columns!();
const OBSERVATION_COLUMNS: &str = observation_columns!();
const SCORE_COLUMNS: &str = score_columns!();

impl From<::postgres::Error> for StoreError {
    fn from(error: ::postgres::Error) -> Self {
        match error.as_db_error() {
            Some(db) => Self::Database(format!("{}: {}", db.code().code(), db.message())),
            None => Self::Database(error.to_string()),
        }
    }
}

/// A value bound to a placeholder [`numbered`] typed after it.
#[derive(Debug)]
struct Param<'v>(&'v SqlValue);

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut ::postgres::types::private::BytesMut,
    ) -> Result<::postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self.0 {
            SqlValue::Null => Ok(::postgres::types::IsNull::Yes),
            SqlValue::Integer(number) => number.to_sql(ty, out),
            SqlValue::Real(number) => number.to_sql(ty, out),
            SqlValue::Text(text) => text_value(text).as_ref().to_sql(ty, out),
            SqlValue::Blob(bytes) => bytes.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    ::postgres::types::to_sql_checked!();
}

/// Text as PostgreSQL can hold it: it has no NUL character, which a client's JSON may carry
/// (`\u0000`); it becomes U+FFFD. Bodies keep it, escaped, in their JSON.
fn text_value(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{fffd}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// JSON text as PostgreSQL's `json` operators can read it: an escaped NUL (`\u0000`, which
/// they refuse to extract) becomes U+FFFD, as in [`text_value`]. An escaped backslash followed
/// by `u0000` is text, and stays.
fn json_value(json: &str) -> Cow<'_, str> {
    if !json.contains("\\u0000") {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len());
    let mut rest = json;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let escape = &rest[at..];
        if let Some(after) = escape.strip_prefix("\\u0000") {
            out.push_str("\\ufffd");
            rest = after;
        } else {
            // Any other escape is two characters (`\uXXXX` keeps its digits as they are).
            let length = escape[1..].chars().next().map_or(1, |c| 1 + c.len_utf8());
            out.push_str(&escape[..length]);
            rest = &escape[length..];
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn optional_text(text: &Option<String>) -> Option<Cow<'_, str>> {
    text.as_deref().map(text_value)
}

/// A pooled connection with the statements it prepared.
struct Connection {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

/// The PostgreSQL store.
pub struct PostgresStore {
    config: ::postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    pricing: Arc<Pricing>,
    pool: Mutex<Pool>,
    /// Signalled when a connection is returned or closed.
    returned: std::sync::Condvar,
    max_connections: usize,
    closed: AtomicBool,
}

/// The connections the store holds.
#[derive(Default)]
struct Pool {
    idle: Vec<Connection>,
    /// Connections open, idle or in use.
    open: usize,
}

/// A connection taken from the pool; it goes back when dropped, unless it broke.
struct Pooled<'s> {
    store: &'s PostgresStore,
    connection: Option<Connection>,
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.connection.as_ref().expect("taken until dropped")
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.connection.as_mut().expect("taken until dropped")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            let mut pool = self.store.lock_pool();
            let keep = !connection.client.is_closed()
                && !self.store.closed.load(Ordering::Relaxed)
                && pool.idle.len() < MAX_IDLE;
            if keep {
                pool.idle.push(connection);
            } else {
                // Counted as open until it is closed, so `pool_max_conns` holds throughout.
                drop(pool);
                drop(connection);
                self.store.lock_pool().open -= 1;
            }
            self.store.returned.notify_one();
        }
    }
}

impl Connection {
    /// `sql` prepared once per connection.
    fn prepared(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }
}

/// Closes connections on a thread of their own: closing one blocks on its own runtime, which
/// tokio refuses on an async worker thread, where the last reference to a store may go.
fn disconnect(connections: Vec<Connection>) {
    if connections.is_empty() {
        return;
    }
    let _ = std::thread::spawn(move || drop(connections)).join();
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        disconnect(std::mem::take(
            &mut self.pool.get_mut().unwrap_or_else(|e| e.into_inner()).idle,
        ));
    }
}

/// Whether PostgreSQL asks for the transaction to be run again.
fn retryable(error: &::postgres::Error) -> bool {
    use ::postgres::error::SqlState;
    matches!(
        error.code(),
        Some(code) if *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::T_R_SERIALIZATION_FAILURE
    )
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl PostgresStore {
    /// [`connect`](Self::connect) with Langfuse's default model prices, as `axion serve` runs.
    pub fn connect_with_default_prices(url: &str) -> Result<Self, StoreError> {
        Self::connect(url, Arc::new(Pricing::langfuse_defaults()))
    }

    /// Connects to the database at `url` (`postgres://user:password@host:port/database` or
    /// `host=… user=…`), creating and migrating the schema when needed. `sslmode` and
    /// `sslrootcert` have libpq's meanings (encrypted when the server offers it by default;
    /// `verify-full` checks the certificate and host name).
    pub fn connect(url: &str, pricing: Arc<Pricing>) -> Result<Self, StoreError> {
        let split = super::postgres_tls::split(url)?;
        let mut config: ::postgres::Config = split
            .url
            .parse()
            .map_err(|error| StoreError::Database(format!("database URL: {error}")))?;
        config.ssl_mode(match split.mode {
            SslMode::Disable => ::postgres::config::SslMode::Disable,
            SslMode::Prefer => ::postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                ::postgres::config::SslMode::Require
            }
        });
        // Named in `pg_stat_activity`, for whoever runs the database.
        if config.get_application_name().is_none() {
            config.application_name("axion");
        }
        let tls = super::postgres_tls::connector(split.mode, split.root_cert.as_deref())?;
        let store = Self {
            config,
            tls,
            pricing,
            pool: Mutex::default(),
            returned: std::sync::Condvar::new(),
            max_connections: split.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
            closed: AtomicBool::new(false),
        };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut connection = self.connection()?;
        let mut tx = connection.client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS axion_schema (version INTEGER NOT NULL)")?;
        let applied: Option<i32> = tx
            .query_opt("SELECT version FROM axion_schema", &[])?
            .map(|row| row.get(0));
        if applied.is_none() {
            tx.execute("INSERT INTO axion_schema (version) VALUES (0)", &[])?;
        }
        let applied = applied.unwrap_or(0) as usize;
        if applied > MIGRATIONS.len() {
            return Err(StoreError::Database(format!(
                "the database has schema {applied}, newer than this server's {}",
                MIGRATIONS.len()
            )));
        }
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
            tx.batch_execute(migration)?;
            tx.execute(
                "UPDATE axion_schema SET version = $1",
                &[&((index + 1) as i32)],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn lock_pool(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An idle connection, or a new one while fewer than `pool_max_conns` are open; otherwise
    /// waits up to [`CONNECTION_WAIT`] for one to come back.
    fn connection(&self) -> Result<Pooled<'_>, StoreError> {
        let deadline = std::time::Instant::now() + CONNECTION_WAIT;
        let mut pool = self.lock_pool();
        loop {
            if self.closed.load(Ordering::Relaxed) {
                return Err(StoreError::Closed);
            }
            if let Some(connection) = pool.idle.pop() {
                return Ok(Pooled {
                    store: self,
                    connection: Some(connection),
                });
            }
            if pool.open < self.max_connections {
                pool.open += 1;
                drop(pool);
                return match self.config.connect(self.tls.clone()) {
                    Ok(client) => Ok(Pooled {
                        store: self,
                        connection: Some(Connection {
                            client,
                            statements: HashMap::new(),
                        }),
                    }),
                    Err(error) => {
                        self.lock_pool().open -= 1;
                        self.returned.notify_one();
                        Err(error.into())
                    }
                };
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(StoreError::Database(format!(
                    "all {} database connections stayed busy for {} s (raise pool_max_conns in the database URL)",
                    self.max_connections,
                    CONNECTION_WAIT.as_secs()
                )));
            }
            pool = self
                .returned
                .wait_timeout(pool, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Closes the idle connections; later calls fail with [`StoreError::Closed`].
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        let idle = {
            let mut pool = self.lock_pool();
            let idle = std::mem::take(&mut pool.idle);
            pool.open -= idle.len();
            idle
        };
        self.returned.notify_all();
        disconnect(idle);
    }

    /// Rows of `sql` (with `?` placeholders) for `values`.
    fn query(&self, sql: &str, values: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
        let params: Vec<Param<'_>> = values.iter().map(Param).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|param| param as &(dyn ToSql + Sync))
            .collect();
        Ok(self
            .connection()?
            .client
            .query(numbered(sql, values).as_str(), &refs)?)
    }

    /// Rows of a fixed statement, prepared once per connection.
    fn fixed(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let mut connection = self.connection()?;
        let statement = connection.prepared(sql)?;
        Ok(connection.client.query(&statement, params)?)
    }

    /// `count(*)` of `table` under `filter`, for offset pages.
    fn count(
        &self,
        table: &str,
        filter: &sql::Filter,
        page: &Pagination,
    ) -> Result<Option<u64>, StoreError> {
        if !matches!(page, Pagination::Offset { .. }) {
            return Ok(None);
        }
        let sql = filter.count(table);
        let rows = self.query(&sql, &filter.values)?;
        Ok(Some(
            rows.first().map_or(0, |row| row.get::<_, i64>(0)) as u64
        ))
    }

    /// Trace records of `rows` ([`TRACE_COLUMNS`]), with input and output shown from their
    /// root observations where they have none (unless `skip_borrowed_io`).
    fn traces(
        &self,
        rows: Vec<Row>,
        skip_borrowed_io: bool,
    ) -> Result<Vec<TraceRecord>, StoreError> {
        let mut records = Vec::with_capacity(rows.len());
        // (record, observation) of the traces that show an observation's input and output.
        let mut borrowing: Vec<(usize, String)> = Vec::new();
        for row in rows {
            let body = parse_body(row.get(1))?;
            let io_observation_id: Option<String> = row.get(2);
            if let Some(observation_id) = io_observation_id.filter(|_| !skip_borrowed_io) {
                if !(body.contains_key("input") && body.contains_key("output")) {
                    borrowing.push((records.len(), observation_id));
                }
            }
            records.push(TraceRecord {
                project_id: row.get(0),
                body,
                created_at: row.get(3),
                updated_at: row.get(4),
            });
        }
        if borrowing.is_empty() {
            return Ok(records);
        }
        // One query for the page, not one per trace. A page is one project's.
        let ids: Vec<&str> = borrowing.iter().map(|(_, id)| id.as_str()).collect();
        let bodies: HashMap<String, String> = self
            .fixed(
                "SELECT id, CAST(body AS TEXT) FROM observations WHERE project_id = $1 AND id = ANY($2)",
                &[&records[borrowing[0].0].project_id, &ids],
            )?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        for (index, observation_id) in &borrowing {
            if let Some(observation) = bodies.get(observation_id) {
                fill_io(&mut records[*index].body, observation)?;
            }
        }
        Ok(records)
    }

    /// Applies a batch in one transaction (see the module's documentation).
    fn apply(
        &self,
        tx: &mut Transaction<'_>,
        project: &str,
        batch: &PreparedBatch,
        now: i64,
    ) -> Result<(), ::postgres::Error> {
        let traces = write_records(
            tx,
            &batch.traces,
            &TRACES,
            project,
            |tx, rows, tail| insert_traces(tx, project, rows, now, tail),
            |stored, io| rows::trace_row(stored, io, now),
        )?;
        let sessions = sessions_of(traces.iter().map(|row| row.as_ref()));
        if !sessions.is_empty() {
            let ids: Vec<String> = sessions
                .keys()
                .map(|id| text_value(id).into_owned())
                .collect();
            let environments: Vec<String> = sessions
                .values()
                .map(|(_, environment)| text_value(environment).into_owned())
                .collect();
            let starts: Vec<i64> = sessions.values().map(|(start, _)| *start).collect();
            tx.execute(
                "INSERT INTO sessions (project_id, id, environment, created_at)
                 SELECT $1, r.id, r.environment, r.created_at
                 FROM unnest($2::TEXT[], $3::TEXT[], $4::BIGINT[]) AS r(id, environment, created_at)
                 ON CONFLICT (project_id, id) DO UPDATE SET created_at = excluded.created_at
                 WHERE excluded.created_at < sessions.created_at",
                &[&project, &ids, &environments, &starts],
            )?;
        }

        write_records(
            tx,
            &batch.observations,
            &OBSERVATIONS,
            project,
            |tx, rows, tail| insert_observations(tx, project, rows, now, tail),
            |stored, io| rows::observation_row(stored, io, &self.pricing),
        )?;

        let mut scores: Vec<&(String, JsonMap)> = batch.scores.iter().collect();
        scores.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (id, patch) in scores {
            let mut body = stored_body(tx, "scores", project, id)?;
            merge_into(&mut body, patch, SCORE_IMMUTABLE);
            let row = rows::score_row(&body, now);
            tx.execute(
                "INSERT INTO scores (project_id, id, trace_id, observation_id, session_id,
                     dataset_run_id, name, value, data_type, source, config_id, queue_id,
                     environment, timestamp, body, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                         CAST($15::TEXT AS JSON), $16, $16)
                 ON CONFLICT (project_id, id) DO UPDATE SET trace_id = excluded.trace_id,
                     observation_id = excluded.observation_id, session_id = excluded.session_id,
                     dataset_run_id = excluded.dataset_run_id, name = excluded.name,
                     value = excluded.value, data_type = excluded.data_type,
                     source = excluded.source, config_id = excluded.config_id,
                     queue_id = excluded.queue_id, environment = excluded.environment,
                     timestamp = excluded.timestamp, body = excluded.body,
                     updated_at = excluded.updated_at",
                &[
                    &project,
                    &text_value(id).as_ref(),
                    &optional_text(&row.trace_id),
                    &optional_text(&row.observation_id),
                    &optional_text(&row.session_id),
                    &optional_text(&row.dataset_run_id),
                    &text_value(&row.name).as_ref(),
                    &row.value,
                    &text_value(&row.data_type).as_ref(),
                    &text_value(&row.source).as_ref(),
                    &optional_text(&row.config_id),
                    &optional_text(&row.queue_id),
                    &text_value(&row.environment).as_ref(),
                    &row.timestamp,
                    &json_value(&serde_json::Value::Object(body).to_string()).as_ref(),
                    &now,
                ],
            )?;
        }
        Ok(())
    }
}

/// A table [`write_records`] writes.
struct Table {
    name: &'static str,
    /// The tail that turns its insert into an upsert.
    merge: &'static str,
    /// Fields a merge never changes.
    immutable: &'static [&'static str],
}

const TRACES: Table = Table {
    name: "traces",
    merge: TRACE_MERGE,
    immutable: TRACE_IMMUTABLE,
};

const OBSERVATIONS: Table = Table {
    name: "observations",
    merge: OBSERVATION_MERGE,
    immutable: OBSERVATION_IMMUTABLE,
};

/// Writes a batch's records of one table: every new id with one `insert` (tail [`NEW_IDS`]:
/// it returns the ids it inserted), then each id that existed read back under a lock, merged and
/// written again (tail `table.merge`), all in id order. The rows as written.
fn write_records<'b, R>(
    tx: &mut Transaction<'_>,
    records: &'b [rows::Prepared<R>],
    table: &Table,
    project: &str,
    insert: impl Fn(
        &mut Transaction<'_>,
        &[(&str, &R)],
        &str,
    ) -> Result<std::collections::HashSet<String>, ::postgres::Error>,
    rebuild: impl Fn(&JsonMap, &axion_model::Io) -> R,
) -> Result<Vec<Cow<'b, R>>, ::postgres::Error>
where
    R: Clone + rows::HasBody,
{
    let mut records: Vec<&rows::Prepared<R>> = records.iter().collect();
    records.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    let new: Vec<(&str, &R)> = records
        .iter()
        .map(|record| (record.id.as_str(), &record.row))
        .collect();
    let inserted = insert(tx, &new, NEW_IDS)?;
    let mut written = Vec::with_capacity(records.len());
    let mut merged: Vec<(&str, R)> = Vec::new();
    for record in records {
        if inserted.contains(record.id.as_str()) {
            written.push(Cow::Borrowed(&record.row));
            continue;
        }
        let mut stored = stored_body(tx, table.name, project, &record.id)?;
        merge_owned(&mut stored, record.fields().into_owned(), table.immutable);
        merged.push((record.id.as_str(), rebuild(&stored, &record.io)));
    }
    if !merged.is_empty() {
        let rows: Vec<(&str, &R)> = merged.iter().map(|(id, row)| (*id, row)).collect();
        insert(tx, &rows, table.merge)?;
    }
    written.extend(merged.into_iter().map(|(_, row)| Cow::Owned(row)));
    Ok(written)
}

/// The stored body of a record, locked until the transaction ends (empty when there is none).
fn stored_body(
    tx: &mut Transaction<'_>,
    table: &str,
    project: &str,
    id: &str,
) -> Result<JsonMap, ::postgres::Error> {
    let sql = format!(
        "SELECT CAST(body AS TEXT) FROM {table} WHERE project_id = $1 AND id = $2 FOR UPDATE"
    );
    let row = tx.query_opt(sql.as_str(), &[&project, &text_value(id).as_ref()])?;
    // The column is `json` and only objects are written to it, so the parse cannot fail.
    Ok(row
        .and_then(|row| serde_json::from_str(row.get::<_, &str>(0)).ok())
        .unwrap_or_default())
}

/// The session each trace names: its earliest start and its first trace's environment.
fn sessions_of<'r>(rows: impl Iterator<Item = &'r TraceRow>) -> BTreeMap<String, (i64, String)> {
    let mut sessions: BTreeMap<String, (i64, String)> = BTreeMap::new();
    for row in rows {
        let Some(session_id) = &row.session_id else {
            continue;
        };
        sessions
            .entry(session_id.clone())
            .and_modify(|(start, _)| *start = (*start).min(row.timestamp))
            .or_insert_with(|| (row.timestamp, row.environment.clone()));
    }
    sessions
}

/// Writes trace rows with [`TRACE_ROWS`] and `tail`; the ids it returns.
fn insert_traces(
    tx: &mut Transaction<'_>,
    project: &str,
    rows: &[(&str, &TraceRow)],
    now: i64,
    tail: &str,
) -> Result<std::collections::HashSet<String>, ::postgres::Error> {
    if rows.is_empty() {
        return Ok(Default::default());
    }
    let texts = |get: fn(&TraceRow) -> &Option<String>| -> Vec<Option<Cow<'_, str>>> {
        rows.iter()
            .map(|(_, row)| optional_text(get(row)))
            .collect()
    };
    let ids: Vec<Cow<'_, str>> = rows.iter().map(|(id, _)| text_value(id)).collect();
    let times: Vec<i64> = rows.iter().map(|(_, row)| row.timestamp).collect();
    let environments: Vec<Cow<'_, str>> = rows
        .iter()
        .map(|(_, row)| text_value(&row.environment))
        .collect();
    let public: Vec<i32> = rows.iter().map(|(_, row)| i32::from(row.public)).collect();
    let tags: Vec<Option<String>> = rows
        .iter()
        .map(|(_, row)| {
            (!row.tags.is_empty()).then(|| {
                let tags: Vec<Cow<'_, str>> = row.tags.iter().map(|tag| text_value(tag)).collect();
                serde_json::to_string(&tags).unwrap_or_default()
            })
        })
        .collect();
    let bodies: Vec<Cow<'_, str>> = rows.iter().map(|(_, row)| json_value(&row.body)).collect();
    let sql = format!("{TRACE_ROWS}{tail}");
    let returned = tx.query(
        sql.as_str(),
        &[
            &project,
            &now,
            &ids,
            &times,
            &texts(|row| &row.name),
            &texts(|row| &row.user_id),
            &texts(|row| &row.session_id),
            &texts(|row| &row.release),
            &texts(|row| &row.version),
            &environments,
            &public,
            &tags,
            &bodies,
            &texts(|row| &row.io_observation_id),
        ],
    )?;
    Ok(returned.iter().map(|row| row.get(0)).collect())
}

/// Writes observation rows with [`OBSERVATION_ROWS`] and `tail`; the ids it returns.
fn insert_observations(
    tx: &mut Transaction<'_>,
    project: &str,
    rows: &[(&str, &ObservationRow)],
    now: i64,
    tail: &str,
) -> Result<std::collections::HashSet<String>, ::postgres::Error> {
    if rows.is_empty() {
        return Ok(Default::default());
    }
    let texts = |get: fn(&ObservationRow) -> &Option<String>| -> Vec<Option<Cow<'_, str>>> {
        rows.iter()
            .map(|(_, row)| optional_text(get(row)))
            .collect()
    };
    let required = |get: fn(&ObservationRow) -> &String| -> Vec<Cow<'_, str>> {
        rows.iter().map(|(_, row)| text_value(get(row))).collect()
    };
    let ids: Vec<Cow<'_, str>> = rows.iter().map(|(id, _)| text_value(id)).collect();
    let times = |get: fn(&ObservationRow) -> Option<i64>| -> Vec<Option<i64>> {
        rows.iter().map(|(_, row)| get(row)).collect()
    };
    let costs: Vec<Option<f64>> = rows.iter().map(|(_, row)| row.total_cost).collect();
    let bodies: Vec<Cow<'_, str>> = rows.iter().map(|(_, row)| json_value(&row.body)).collect();
    let derived: Vec<Cow<'_, str>> = rows
        .iter()
        .map(|(_, row)| json_value(&row.derived))
        .collect();
    let sql = format!("{OBSERVATION_ROWS}{tail}");
    let returned = tx.query(
        sql.as_str(),
        &[
            &project,
            &now,
            &ids,
            &texts(|row| &row.trace_id),
            &texts(|row| &row.parent_observation_id),
            &required(|row| &row.kind),
            &texts(|row| &row.name),
            &required(|row| &row.level),
            &texts(|row| &row.version),
            &required(|row| &row.environment),
            &texts(|row| &row.model),
            &times(|row| row.start_time),
            &times(|row| row.end_time),
            &costs,
            &bodies,
            &derived,
        ],
    )?;
    Ok(returned.iter().map(|row| row.get(0)).collect())
}

/// A column of a row as the shared SQL's value type (metrics rows).
fn value_of(row: &Row, index: usize) -> Result<SqlValue, StoreError> {
    let column = &row.columns()[index];
    let ty = column.type_();
    let value = if *ty == Type::INT8 {
        row.try_get::<_, Option<i64>>(index)?.map(SqlValue::Integer)
    } else if *ty == Type::INT4 {
        row.try_get::<_, Option<i32>>(index)?
            .map(|number| SqlValue::Integer(number.into()))
    } else if *ty == Type::INT2 {
        row.try_get::<_, Option<i16>>(index)?
            .map(|number| SqlValue::Integer(number.into()))
    } else if *ty == Type::FLOAT8 {
        row.try_get::<_, Option<f64>>(index)?.map(SqlValue::Real)
    } else if *ty == Type::FLOAT4 {
        row.try_get::<_, Option<f32>>(index)?
            .map(|number| SqlValue::Real(number.into()))
    } else if *ty == Type::BOOL {
        row.try_get::<_, Option<bool>>(index)?
            .map(|flag| SqlValue::Integer(flag.into()))
    } else {
        row.try_get::<_, Option<String>>(index)?.map(SqlValue::Text)
    };
    Ok(value.unwrap_or(SqlValue::Null))
}

fn observation_records(rows: Vec<Row>) -> Result<Vec<ObservationRecord>, StoreError> {
    rows.iter()
        .map(|row| to_observation((row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))))
        .collect()
}

fn score_records(rows: Vec<Row>) -> Result<Vec<ScoreRecord>, StoreError> {
    rows.iter()
        .map(|row| to_score((row.get(0), row.get(1), row.get(2), row.get(3))))
        .collect()
}

fn api_key_record(row: &Row) -> ApiKey {
    ApiKey {
        public_key: row.get(0),
        secret_hash: row.get(1),
        project_id: row.get(2),
    }
}

fn session_record(row: &Row) -> SessionRecord {
    SessionRecord {
        id: row.get(0),
        project_id: row.get(1),
        environment: row.get(2),
        created_at: row.get(3),
    }
}

impl Store for PostgresStore {
    fn write_prepared(&self, project_id: &str, batch: PreparedBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let now = now_micros();
        let mut connection = self.connection()?;
        let mut attempt = 1;
        loop {
            let result = connection.client.transaction().and_then(|mut tx| {
                self.apply(&mut tx, project_id, &batch, now)?;
                tx.commit()
            });
            match result {
                Ok(()) => return Ok(()),
                Err(error) if retryable(&error) && attempt < ATTEMPTS => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(5 * (1 << attempt)));
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    fn pricing(&self) -> &Pricing {
        &self.pricing
    }

    fn close(&self) {
        PostgresStore::close(self);
    }

    /// `PostgreSQL database axion on 127.0.0.1:5432`.
    fn location(&self) -> String {
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .zip(
                self.config
                    .get_ports()
                    .iter()
                    .chain(std::iter::repeat(&5432)),
            )
            .map(|(host, port)| match host {
                ::postgres::config::Host::Tcp(host) => format!("{host}:{port}"),
                #[cfg(unix)]
                ::postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        format!(
            "PostgreSQL database {} on {}",
            self.config.get_dbname().unwrap_or("(default)"),
            hosts.join(", ")
        )
    }

    fn projects(&self) -> Result<Vec<Project>, StoreError> {
        Ok(self
            .fixed(
                "SELECT id, name, created_at FROM projects ORDER BY created_at, id",
                &[],
            )?
            .iter()
            .map(|row| Project {
                id: row.get(0),
                name: row.get(1),
                created_at: row.get(2),
            })
            .collect())
    }

    fn put_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        self.fixed(
            "INSERT INTO api_keys (public_key, secret_hash, project_id, created_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (public_key) DO UPDATE SET secret_hash = excluded.secret_hash,
                 project_id = excluded.project_id",
            &[
                &text_value(&key.public_key).as_ref(),
                &key.secret_hash,
                &key.project_id,
                &now_micros(),
            ],
        )?;
        Ok(())
    }

    fn api_key(&self, public_key: &str) -> Result<Option<ApiKey>, StoreError> {
        Ok(self
            .fixed(
                "SELECT public_key, secret_hash, project_id FROM api_keys WHERE public_key = $1",
                &[&text_value(public_key).as_ref()],
            )?
            .first()
            .map(api_key_record))
    }

    fn api_key_count(&self) -> Result<usize, StoreError> {
        let rows = self.fixed("SELECT count(*) FROM api_keys", &[])?;
        Ok(rows.first().map_or(0, |row| row.get::<_, i64>(0)) as usize)
    }

    fn list_traces(
        &self,
        project_id: &str,
        query: &TraceQuery,
        page: &Pagination,
    ) -> Result<Page<TraceRecord>, StoreError> {
        let (filter, order) = sql::trace_list(Dialect::Postgres, project_id, query);
        let sql = filter.select(TRACE_COLUMNS, "traces t", &order, page);
        let rows = self.query(&sql, &filter.values)?;
        Ok(Page {
            items: self.traces(rows, query.skip_borrowed_io)?,
            total: self.count("traces t", &filter, page)?,
        })
    }

    fn trace(&self, project_id: &str, id: &str) -> Result<Option<TraceRecord>, StoreError> {
        let rows = self.fixed(
            concat!(
                "SELECT ",
                trace_columns!(),
                " FROM traces t WHERE t.project_id = $1 AND t.id = $2"
            ),
            &[&project_id, &text_value(id).as_ref()],
        )?;
        Ok(self.traces(rows, false)?.pop())
    }

    fn trace_metrics(
        &self,
        project_id: &str,
        trace_ids: &[String],
    ) -> Result<HashMap<String, TraceMetrics>, StoreError> {
        let mut metrics: HashMap<String, TraceMetrics> = trace_ids
            .iter()
            .map(|id| (id.clone(), TraceMetrics::default()))
            .collect();
        if trace_ids.is_empty() {
            return Ok(metrics);
        }
        let ids: Vec<String> = trace_ids
            .iter()
            .map(|id| text_value(id).into_owned())
            .collect();
        for row in self.fixed(
            "SELECT trace_id, min(start_time), max(coalesce(end_time, start_time)),
                    coalesce(sum(total_cost), 0), array_agg(id ORDER BY start_time, id)
             FROM observations WHERE project_id = $1 AND trace_id = ANY($2) GROUP BY trace_id",
            &[&project_id, &ids],
        )? {
            let entry = metrics.entry(row.get(0)).or_default();
            let (start, end): (Option<i64>, Option<i64>) = (row.get(1), row.get(2));
            entry.latency = match (start, end) {
                (Some(start), Some(end)) => (end - start) as f64 / 1e6,
                _ => 0.0,
            };
            entry.total_cost = row.get(3);
            entry.observation_ids = row.get(4);
        }
        for row in self.fixed(
            "SELECT trace_id, array_agg(id ORDER BY timestamp, id) FROM scores
             WHERE project_id = $1 AND trace_id = ANY($2) GROUP BY trace_id",
            &[&project_id, &ids],
        )? {
            metrics.entry(row.get(0)).or_default().score_ids = row.get(1);
        }
        Ok(metrics)
    }

    fn delete_traces(&self, project_id: &str, ids: &[String]) -> Result<usize, StoreError> {
        let ids: Vec<String> = ids.iter().map(|id| text_value(id).into_owned()).collect();
        let mut connection = self.connection()?;
        let mut tx = connection.client.transaction()?;
        let deleted = tx.execute(
            "DELETE FROM traces WHERE project_id = $1 AND id = ANY($2)",
            &[&project_id, &ids],
        )?;
        for table in ["observations", "scores"] {
            tx.execute(
                format!("DELETE FROM {table} WHERE project_id = $1 AND trace_id = ANY($2)")
                    .as_str(),
                &[&project_id, &ids],
            )?;
        }
        tx.commit()?;
        Ok(deleted as usize)
    }

    fn list_observations(
        &self,
        project_id: &str,
        query: &ObservationQuery,
        page: &Pagination,
    ) -> Result<Page<ObservationRecord>, StoreError> {
        let filter = sql::observation_list(Dialect::Postgres, project_id, query, page);
        let sql = filter.select(
            OBSERVATION_COLUMNS,
            "observations o",
            &sql::observation_order(Dialect::Postgres),
            page,
        );
        let rows = self.query(&sql, &filter.values)?;
        Ok(Page {
            items: observation_records(rows)?,
            total: self.count("observations o", &filter, page)?,
        })
    }

    fn observation(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<Option<ObservationRecord>, StoreError> {
        let rows = self.fixed(
            concat!(
                "SELECT ",
                observation_columns!(),
                " FROM observations o WHERE o.project_id = $1 AND o.id = $2"
            ),
            &[&project_id, &text_value(id).as_ref()],
        )?;
        Ok(observation_records(rows)?.pop())
    }

    fn trace_observations(
        &self,
        project_id: &str,
        trace_id: &str,
    ) -> Result<Vec<ObservationRecord>, StoreError> {
        observation_records(self.fixed(
            concat!(
                "SELECT ",
                observation_columns!(),
                " FROM observations o WHERE o.project_id = $1 AND o.trace_id = $2
                 ORDER BY o.start_time ASC NULLS FIRST, o.id"
            ),
            &[&project_id, &text_value(trace_id).as_ref()],
        )?)
    }

    fn list_sessions(
        &self,
        project_id: &str,
        query: &SessionQuery,
        page: &Pagination,
    ) -> Result<Page<SessionRecord>, StoreError> {
        let filter = sql::session_list(project_id, query);
        let sql = filter.select(sql::SESSION_COLUMNS, "sessions s", sql::SESSION_ORDER, page);
        let rows = self.query(&sql, &filter.values)?;
        Ok(Page {
            items: rows.iter().map(session_record).collect(),
            total: self.count("sessions s", &filter, page)?,
        })
    }

    fn session(&self, project_id: &str, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self
            .fixed(
                "SELECT id, project_id, environment, created_at FROM sessions
                 WHERE project_id = $1 AND id = $2",
                &[&project_id, &text_value(id).as_ref()],
            )?
            .first()
            .map(session_record))
    }

    fn session_traces(
        &self,
        project_id: &str,
        session_id: &str,
    ) -> Result<Vec<TraceRecord>, StoreError> {
        let rows = self.fixed(
            concat!(
                "SELECT ",
                trace_columns!(),
                " FROM traces t WHERE t.project_id = $1 AND t.session_id = $2 ORDER BY t.timestamp, t.id"
            ),
            &[&project_id, &text_value(session_id).as_ref()],
        )?;
        self.traces(rows, false)
    }

    fn list_scores(
        &self,
        project_id: &str,
        query: &ScoreQuery,
        page: &Pagination,
    ) -> Result<Page<ScoreRecord>, StoreError> {
        let filter = sql::score_list(Dialect::Postgres, project_id, query, page);
        let sql = filter.select(SCORE_COLUMNS, "scores s", sql::SCORE_ORDER, page);
        let rows = self.query(&sql, &filter.values)?;
        Ok(Page {
            items: score_records(rows)?,
            total: self.count("scores s", &filter, page)?,
        })
    }

    fn score(&self, project_id: &str, id: &str) -> Result<Option<ScoreRecord>, StoreError> {
        let rows = self.fixed(
            concat!(
                "SELECT ",
                score_columns!(),
                " FROM scores s WHERE s.project_id = $1 AND s.id = $2"
            ),
            &[&project_id, &text_value(id).as_ref()],
        )?;
        Ok(score_records(rows)?.pop())
    }

    fn delete_score(&self, project_id: &str, id: &str) -> Result<bool, StoreError> {
        let mut connection = self.connection()?;
        let deleted = connection.client.execute(
            "DELETE FROM scores WHERE project_id = $1 AND id = $2",
            &[&project_id, &text_value(id).as_ref()],
        )?;
        Ok(deleted > 0)
    }

    fn metrics(
        &self,
        project_id: &str,
        query: &metrics::MetricsQuery,
    ) -> Result<Vec<crate::JsonMap>, StoreError> {
        let (sql, values) =
            sql::metrics_rows(Dialect::Postgres, project_id, query, "observations o");
        // Streamed: a dashboard's range may hold millions of rows.
        let mut connection = self.connection()?;
        let rows = connection
            .client
            .query_raw(numbered(&sql, &values).as_str(), values.iter().map(Param))?;
        sql::aggregate(
            query,
            ::postgres::fallible_iterator::FallibleIterator::iterator(rows).map(|row| {
                let row = row?;
                (0..row.len()).map(|index| value_of(&row, index)).collect()
            }),
        )
    }

    fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        Ok(self
            .fixed(
                "SELECT public_key, secret_hash, project_id FROM api_keys ORDER BY public_key",
                &[],
            )?
            .iter()
            .map(api_key_record)
            .collect())
    }

    fn put_project(&self, project: &Project) -> Result<(), StoreError> {
        self.fixed(
            "INSERT INTO projects (id, name, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO NOTHING",
            &[
                &project.id,
                &text_value(&project.name).as_ref(),
                &project.created_at,
            ],
        )?;
        Ok(())
    }

    fn export(
        &self,
        project_id: &str,
        kind: RecordKind,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ExportPage, StoreError> {
        // In id order, the first column of every primary key; `$2` is the cursor.
        macro_rules! page {
            ($table:literal, $io:literal, $after:literal) => {
                concat!(
                    "SELECT id, CAST(body AS TEXT), ",
                    $io,
                    " FROM ",
                    $table,
                    " WHERE project_id = $1 AND ",
                    $after,
                    " ORDER BY id LIMIT $3"
                )
            };
        }
        let sql: &'static str = match (kind, cursor.is_some()) {
            (RecordKind::Traces, false) => page!("traces", "io_observation_id", "$2::TEXT IS NULL"),
            (RecordKind::Traces, true) => page!("traces", "io_observation_id", "id > $2"),
            (RecordKind::Observations, false) => page!("observations", "NULL", "$2::TEXT IS NULL"),
            (RecordKind::Observations, true) => page!("observations", "NULL", "id > $2"),
            (RecordKind::Scores, false) => page!("scores", "NULL", "$2::TEXT IS NULL"),
            (RecordKind::Scores, true) => page!("scores", "NULL", "id > $2"),
        };
        let rows = self.fixed(sql, &[&project_id, &cursor, &i64::from(limit)])?;
        let cursor = rows
            .last()
            .filter(|_| rows.len() == limit as usize)
            .map(|row| row.get::<_, String>(0));
        let upserts = rows
            .iter()
            .map(|row| {
                rows::export_upsert(parse_body(row.get(1))?, row.get::<_, Option<String>>(2))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(ExportPage { upserts, cursor })
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("location", &self.location())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_nuls_become_replacement_characters_and_nothing_else_changes() {
        assert_eq!(json_value(r#"{"a":"x\u0000y"}"#), r#"{"a":"x\ufffdy"}"#);
        // A backslash, then the text `u0000`.
        assert_eq!(json_value(r#"{"a":"x\\u0000"}"#), r#"{"a":"x\\u0000"}"#);
        assert_eq!(
            json_value(r#"{"a":"\\\u0000é\n"}"#),
            r#"{"a":"\\\ufffdé\n"}"#
        );
        assert!(matches!(json_value(r#"{"a":"\u00e9"}"#), Cow::Borrowed(_)));
        assert_eq!(text_value("a\0b"), "a\u{fffd}b");
    }
}
