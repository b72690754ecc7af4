//! The embedded store: one SQLite file in WAL mode, with an ingest log in front of it.
//!
//! A write is appended to the ingest log and synced to disk (one `fdatasync` for every write
//! appended meanwhile) before it is answered, so a 2xx always means the data is on disk. One
//! writer thread owns the only write connection: it drains whatever rows are queued and applies
//! them in one transaction, recording in it how far into the log it got (see
//! the `ingest_log` module for why). Queued rows are bounded by size: a write waits
//! while the writer is that far behind. Reads use a small pool of read-only connections; a
//! read of traces, observations, sessions or scores first waits until every write answered
//! before it began is applied, so clients read what they wrote.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use rusqlite::types::Value as SqlValue;
use rusqlite::{
    params, params_from_iter, CachedStatement, Connection, OpenFlags, OptionalExtension,
};
use serde_json::Value;

use super::in_place::{InPlaceStatement, Param};
use super::ingest_log::{self, IngestLog};
use super::rows::{self, ObservationRow, PreparedBatch, TraceRow};
use super::sql::{self, Dialect, Filter};
use super::*;
use crate::cost::Pricing;
use crate::ingest::{
    merge_into, merge_owned, OBSERVATION_IMMUTABLE, SCORE_IMMUTABLE, TRACE_IMMUTABLE,
};

/// Schema versions, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE projects (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE api_keys (
    public_key TEXT PRIMARY KEY, secret_hash TEXT NOT NULL,
    project_id TEXT NOT NULL REFERENCES projects(id), created_at INTEGER NOT NULL);
CREATE TABLE traces (
    project_id TEXT NOT NULL, id TEXT NOT NULL, timestamp INTEGER NOT NULL,
    name TEXT, user_id TEXT, session_id TEXT, release TEXT, version TEXT,
    environment TEXT NOT NULL, public INTEGER NOT NULL DEFAULT 0,
    body TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, id));
CREATE INDEX traces_by_time ON traces (project_id, timestamp);
CREATE INDEX traces_by_user ON traces (project_id, user_id, timestamp);
CREATE INDEX traces_by_session ON traces (project_id, session_id, timestamp);
CREATE INDEX traces_by_name ON traces (project_id, name, timestamp);
CREATE INDEX traces_by_environment ON traces (project_id, environment, timestamp);
CREATE TABLE trace_tags (
    project_id TEXT NOT NULL, trace_id TEXT NOT NULL, tag TEXT NOT NULL,
    PRIMARY KEY (project_id, trace_id, tag)) WITHOUT ROWID;
CREATE INDEX trace_tags_by_tag ON trace_tags (project_id, tag);
CREATE TABLE observations (
    project_id TEXT NOT NULL, id TEXT NOT NULL, trace_id TEXT,
    parent_observation_id TEXT, type TEXT NOT NULL, name TEXT, level TEXT NOT NULL,
    version TEXT, environment TEXT NOT NULL, model TEXT,
    start_time INTEGER, end_time INTEGER, total_cost REAL,
    body TEXT NOT NULL, derived TEXT NOT NULL,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, id));
CREATE INDEX observations_by_trace ON observations (project_id, trace_id, start_time, id);
CREATE INDEX observations_by_start ON observations (project_id, start_time, id);
CREATE INDEX observations_by_type ON observations (project_id, type, start_time);
CREATE INDEX observations_by_name ON observations (project_id, name, start_time);
CREATE TABLE scores (
    project_id TEXT NOT NULL, id TEXT NOT NULL, trace_id TEXT, observation_id TEXT,
    session_id TEXT, dataset_run_id TEXT, name TEXT NOT NULL, value REAL,
    data_type TEXT NOT NULL, source TEXT NOT NULL, config_id TEXT, queue_id TEXT,
    environment TEXT NOT NULL, timestamp INTEGER NOT NULL,
    body TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, id));
CREATE INDEX scores_by_time ON scores (project_id, timestamp, id);
CREATE INDEX scores_by_trace ON scores (project_id, trace_id);
CREATE INDEX scores_by_observation ON scores (project_id, observation_id);
CREATE INDEX scores_by_session ON scores (project_id, session_id);
CREATE INDEX scores_by_name ON scores (project_id, name, timestamp);
CREATE TABLE sessions (
    project_id TEXT NOT NULL, id TEXT NOT NULL, environment TEXT NOT NULL,
    created_at INTEGER NOT NULL, PRIMARY KEY (project_id, id));
CREATE INDEX sessions_by_time ON sessions (project_id, created_at);
"#,
    // A trace whose input or output is its root span's refers to the span instead of a copy.
    r#"
ALTER TABLE traces ADD COLUMN io_observation_id TEXT;
"#,
    // Tag filters test each trace through the primary key (`EXISTS … trace_id = ? AND tag =
    // ?`); no query reads this index, and with random trace ids every insert into it dirtied
    // a random page.
    r#"
DROP INDEX trace_tags_by_tag;
"#,
    // A trace's tags live in its row, as a JSON array (NULL when it has none): tag filters
    // read the row they are testing anyway, and a table keyed by random trace ids cost a
    // B-tree insert on a random page per tag.
    r#"
ALTER TABLE traces ADD COLUMN tags TEXT;
UPDATE traces SET tags = (
    SELECT json_group_array(tag) FROM trace_tags g
    WHERE g.project_id = traces.project_id AND g.trace_id = traces.id)
WHERE EXISTS (
    SELECT 1 FROM trace_tags g WHERE g.project_id = traces.project_id AND g.trace_id = traces.id);
DROP TABLE trace_tags;
"#,
    // How far into the ingest log the database is: updated in each writer transaction.
    r#"
CREATE TABLE ingest_state (
    id INTEGER PRIMARY KEY CHECK (id = 0), applied_seq INTEGER NOT NULL);
INSERT INTO ingest_state (id, applied_seq) VALUES (0, 0);
"#,
    // The column that tells entries apart comes first. Every row of a project has the same
    // project id, so with it first each comparison of an insert's B-tree search compared it,
    // found it equal and went on to SQLite's slower compare of the remaining columns; with
    // the trace, user, session, name or environment first, most comparisons end on the first
    // column. Lookups fix both columns, so they read the same entries. Writer instructions
    // per span: -4% (callgrind, 8-span traces).
    r#"
DROP INDEX observations_by_trace;
CREATE INDEX observations_by_trace ON observations (trace_id, project_id, start_time, id);
DROP INDEX traces_by_user;
CREATE INDEX traces_by_user ON traces (user_id, project_id, timestamp);
DROP INDEX traces_by_session;
CREATE INDEX traces_by_session ON traces (session_id, project_id, timestamp);
DROP INDEX traces_by_name;
CREATE INDEX traces_by_name ON traces (name, project_id, timestamp);
DROP INDEX traces_by_environment;
CREATE INDEX traces_by_environment ON traces (environment, project_id, timestamp);
"#,
    // Indexes on columns that are often NULL hold only the rows that have a value: a trace
    // without a user or a session (most of what an SDK sends unasked) costs no insert into
    // those indexes. A lookup `column = ?` implies the value is not NULL, so it still uses
    // them.
    r#"
DROP INDEX traces_by_user;
CREATE INDEX traces_by_user ON traces (user_id, project_id, timestamp) WHERE user_id IS NOT NULL;
DROP INDEX traces_by_session;
CREATE INDEX traces_by_session ON traces (session_id, project_id, timestamp)
    WHERE session_id IS NOT NULL;
DROP INDEX traces_by_name;
CREATE INDEX traces_by_name ON traces (name, project_id, timestamp) WHERE name IS NOT NULL;
DROP INDEX scores_by_observation;
CREATE INDEX scores_by_observation ON scores (observation_id, project_id)
    WHERE observation_id IS NOT NULL;
DROP INDEX scores_by_session;
CREATE INDEX scores_by_session ON scores (session_id, project_id) WHERE session_id IS NOT NULL;
"#,
    // Observations are found by id through a table of their own that the writer fills in its
    // key order: a 64-bit hash of project and id ([`observation_key`]) beside the row's
    // `seq`, 17 bytes an entry where the unique index on (project_id, id) it replaces took
    // about 46. That index was filled in the order rows are written (by trace, so a trace's
    // rows sit together): a random page per insert, and once it outgrew the writer's page
    // cache every insert read a page back and spilled another. A hash can be shared, so a
    // lookup checks the row's project and id. `seq` (the rowid, made explicit so it survives
    // a VACUUM) is handed out in trace order, so new rows are appended. The keys of the rows
    // kept are filled in by `fill_observation_keys`. Live ingest of 8-span traces with
    // 1.6M–2M spans stored: 21.4k → 33.0k spans/s, 32.9 → 18.6 KB written per span.
    // The index by trace, keyed by random trace ids too, keeps the trace and the start only:
    // about 50 bytes an entry where the project and the id made it 85. A trace's rows are few;
    // their project is checked on the row and ties in start time sorted there. Writer -1.2 to
    // -1.5 µs per span at every size up to 2M spans, 1.0–1.4 KB less written per span.
    r#"
CREATE TABLE observations_by_seq (
    seq INTEGER PRIMARY KEY,
    project_id TEXT NOT NULL, id TEXT NOT NULL, trace_id TEXT,
    parent_observation_id TEXT, type TEXT NOT NULL, name TEXT, level TEXT NOT NULL,
    version TEXT, environment TEXT NOT NULL, model TEXT,
    start_time INTEGER, end_time INTEGER, total_cost REAL,
    body TEXT NOT NULL, derived TEXT NOT NULL,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
INSERT INTO observations_by_seq (seq, project_id, id, trace_id, parent_observation_id, type, name,
        level, version, environment, model, start_time, end_time, total_cost, body, derived,
        created_at, updated_at)
    SELECT rowid, project_id, id, trace_id, parent_observation_id, type, name, level, version,
        environment, model, start_time, end_time, total_cost, body, derived, created_at,
        updated_at
    FROM observations ORDER BY rowid;
DROP TABLE observations;
ALTER TABLE observations_by_seq RENAME TO observations;
CREATE INDEX observations_by_trace ON observations (trace_id, start_time);
CREATE INDEX observations_by_start ON observations (project_id, start_time, id);
CREATE INDEX observations_by_type ON observations (project_id, type, start_time);
CREATE INDEX observations_by_name ON observations (project_id, name, start_time);
CREATE TABLE observation_keys (
    key INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (key, seq)) WITHOUT ROWID;
"#,
];

/// Work a migration does beyond its SQL, in the same transaction.
type MigrationStep = fn(&Connection) -> Result<(), StoreError>;

/// The [`MigrationStep`]s, by the schema version they lead to.
const MIGRATION_STEPS: &[(usize, MigrationStep)] = &[(8, fill_observation_keys)];

/// The key under which an observation is found (schema 8): FNV-1a over the project id, a
/// byte no UTF-8 text holds, and the id, then SplitMix64's finaliser to spread the bits. Stored
/// keys depend on it: it must never change.
fn observation_key(project_id: &str, id: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in project_id
        .as_bytes()
        .iter()
        .chain(&[0xff])
        .chain(id.as_bytes())
    {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (hash ^ (hash >> 31)) as i64
}

/// Keys for the observations a database of an earlier schema holds, inserted in key order:
/// computed row by row into a scratch table, which SQLite then sorts (on disk when large), so
/// memory stays bounded however many observations there are.
fn fill_observation_keys(connection: &Connection) -> Result<(), StoreError> {
    connection.execute_batch("CREATE TEMP TABLE unsorted_keys (key INTEGER, seq INTEGER)")?;
    {
        let mut insert =
            connection.prepare("INSERT INTO temp.unsorted_keys (key, seq) VALUES (?1, ?2)")?;
        let mut select = connection.prepare("SELECT seq, project_id, id FROM observations")?;
        let mut rows = select.query([])?;
        while let Some(row) = rows.next()? {
            let (seq, project_id, id): (i64, String, String) =
                (row.get(0)?, row.get(1)?, row.get(2)?);
            insert.execute([observation_key(&project_id, &id), seq])?;
        }
    }
    connection.execute_batch(
        "INSERT INTO observation_keys (key, seq) SELECT key, seq FROM temp.unsorted_keys ORDER BY key, seq;
         DROP TABLE temp.unsorted_keys;",
    )?;
    Ok(())
}

/// The rows (alias `o`) of the observation with key `?1`, project `?2` and id `?3`: its key's
/// entries whose row is this project's and id. The unary `+` keeps the planner from searching
/// an index by project for the row (every observation of the project, per lookup) instead of
/// taking it by `seq`.
macro_rules! observation_by_key {
    () => {
        " FROM observation_keys k CROSS JOIN observations o ON o.seq = k.seq
         WHERE k.key = ?1 AND +o.project_id = ?2 AND +o.id = ?3"
    };
}

/// The `seq` of a stored observation ([`observation_by_key`]).
const FIND_OBSERVATION: &str = concat!("SELECT o.seq", observation_by_key!());

/// The most records the writer folds into one transaction.
const MAX_GROUP_RECORDS: usize = 65_536;

/// How much (encoded) data may wait for the writer before writes wait for it: bounds memory
/// while letting transactions grow large under load. The writer gathers up to half of it per
/// transaction ([`GATHER_BYTES`]). Bytes the server wrote per span ingested (8-span traces,
/// 200k spans into a new database) by group size: 1 MB 18.5 KB, 2 MB 14.2, 4 MB 10.2, 8 MB
/// 7.75, 12 MB 5.75, 16 MB 5.6. Peak RSS after that ingest / after loading 1M traces: 16 MB
/// queued 113 / 146 MB, 24 MB 136 / 171 MB, 32 MB 148 / 196 MB (the goal is 200).
const MAX_PENDING_BYTES: usize = 24 * 1024 * 1024;

/// What the writer receives.
enum Message {
    /// Rows to apply.
    Job(Job),
    /// A reader waits for what is queued: apply it now instead of gathering more.
    Flush,
}

/// Rows logged and waiting for the writer.
struct Job {
    seq: u64,
    project_id: String,
    batch: PreparedBatch,
    /// Its encoded size, counted against [`MAX_PENDING_BYTES`].
    bytes: usize,
}

/// What the writer has applied, and how much waits for it.
#[derive(Default)]
struct Progress {
    state: Mutex<ProgressState>,
    changed: Condvar,
}

#[derive(Default)]
struct ProgressState {
    applied: u64,
    pending_bytes: usize,
    /// The writer has ended: nothing will be applied any more.
    stopped: bool,
}

impl Progress {
    fn lock(&self) -> std::sync::MutexGuard<'_, ProgressState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `bytes` more fit in the queue (always when it is empty), and counts them.
    fn admit(&self, bytes: usize) {
        let mut state = self.lock();
        while state.pending_bytes > 0
            && state.pending_bytes + bytes > MAX_PENDING_BYTES
            && !state.stopped
        {
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.pending_bytes += bytes;
    }

    /// Un-counts `bytes` that never reached the queue.
    fn refund(&self, bytes: usize) {
        self.applied(0, bytes);
    }

    /// Everything up to `seq` is applied, and `bytes` left the queue.
    fn applied(&self, seq: u64, bytes: usize) {
        let mut state = self.lock();
        state.applied = state.applied.max(seq);
        state.pending_bytes = state.pending_bytes.saturating_sub(bytes);
        drop(state);
        self.changed.notify_all();
    }

    fn stop(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
    }

    /// Waits until the writer has applied everything up to `seq`.
    fn wait_applied(&self, seq: u64) {
        let mut state = self.lock();
        while state.applied < seq && !state.stopped {
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// The SQLite store.
pub struct SqliteStore {
    path: PathBuf,
    pricing: Arc<Pricing>,
    jobs: Mutex<Option<mpsc::Sender<Message>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    freer: Mutex<Option<JoinHandle<()>>>,
    checkpointer: Mutex<Option<JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    log: Arc<IngestLog>,
    payloads: ingest_log::PayloadBuffers,
    progress: Arc<Progress>,
}

/// Waits for the thread in `slot`, if it still runs.
fn join(slot: &Mutex<Option<JoinHandle<()>>>) {
    let handle = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(handle) = handle {
        let _ = handle.join();
    }
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn open(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let connection = Connection::open_with_flags(path, flags)?;
    connection.busy_timeout(std::time::Duration::from_secs(10))?;
    // Page caches are per connection: the writer gets 8 MB, each reader 4 MB, which keeps the
    // server's RSS bounded however large the database grows. The writer's cache is most of
    // the server's peak RSS under ingest: 1M traces loaded, 16 MB → 205 MB peak, 8 MB → 139 MB,
    // at the same ingest rate (measured at 204k spans earlier: 32 MB → 195 MB, 2 MB → 70 MB).
    connection.pragma_update(None, "cache_size", if read_only { -4_000 } else { -8_000 })?;
    if !read_only {
        // 16 KB pages: a commit of a few hundred ~1 KB observations writes half as many frames
        // as with 4 KB pages (measured: commit 17 → 9 ms per 512 spans). Only takes effect when
        // the file is created.
        connection.pragma_update(None, "page_size", 16_384)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        // Fewer, larger checkpoints on occasional writers: each one fsyncs the database file.
        // The ingest writer raises this (`WRITER_CHECKPOINT_PAGES`): its checkpoints run on
        // their own thread.
        connection.pragma_update(None, "wal_autocheckpoint", 4000)?;
    }
    Ok(connection)
}

fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let applied: usize = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if applied > 0 && applied < MIGRATIONS.len() {
        // Some rebuild a table: about 8 s per million observations (schema 8, this VM).
        log::info!(
            "upgrading the database from schema {applied} to {}",
            MIGRATIONS.len()
        );
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = connection.transaction()?;
        tx.execute_batch(migration)?;
        for (_, step) in MIGRATION_STEPS.iter().filter(|(to, _)| *to == index + 1) {
            step(&tx)?;
        }
        tx.pragma_update(None, "user_version", index + 1)?;
        tx.commit()?;
    }
    Ok(())
}

impl SqliteStore {
    /// [`open`](Self::open) with Langfuse's default model prices, as `axion serve` runs.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let store = axion_server::store::SqliteStore::open_with_default_prices(dir.path().join("axion.db"))?;
    /// # drop(store);
    /// # Ok(()) }
    /// ```
    pub fn open_with_default_prices(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open(path, Arc::new(Pricing::langfuse_defaults()))
    }

    /// Opens (creating and migrating when needed) the database at `path`.
    pub fn open(path: impl AsRef<Path>, pricing: Arc<Pricing>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut connection = open(&path, false)?;
        migrate(&mut connection)?;
        optimize(&connection)?;
        // Checkpoints (copying the WAL back into the database and syncing it) run on their
        // own connection and thread, so the writer only appends to the WAL. The writer's own
        // automatic checkpoint stays as a bound on the WAL's size should this one fall behind.
        connection.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)?;
        let checkpoint_connection = open(&path, false)?;
        checkpoint_connection.pragma_update(None, "cache_size", -1_000)?;
        let (commits, committed) = mpsc::sync_channel::<()>(1);
        let checkpointer = std::thread::Builder::new()
            .name("axion-sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpoint_connection, committed))
            .map_err(|error| StoreError::Database(error.to_string()))?;
        // Commits write SQLite's log without waiting for the disk: a write is durable in the
        // ingest log before it reaches the writer, and the database's log is synced before an
        // ingest log segment it covers is deleted. Where the file system refused WAL mode,
        // commits stay synchronous.
        let journal: String =
            connection.pragma_query_value(None, "journal_mode", |row| row.get(0))?;
        let wal = if journal.eq_ignore_ascii_case("wal") {
            let wal = std::fs::File::open(wal_path(&path)).map_err(|error| {
                StoreError::Database(format!("opening the write-ahead log: {error}"))
            })?;
            connection.pragma_update(None, "synchronous", "NORMAL")?;
            Some(wal)
        } else {
            log::warn!(
                "the database is not in WAL mode ({journal}); every commit waits for the disk"
            );
            None
        };
        // Writes answered before a crash but not yet applied are applied first.
        let applied: u64 = connection.query_row(
            "SELECT applied_seq FROM ingest_state WHERE id = 0",
            [],
            |row| row.get::<_, i64>(0),
        )? as u64;
        let (log, pending) = IngestLog::open(&path, applied)?;
        let mut applied_now = applied;
        if !pending.is_empty() {
            log::info!("applying {} writes from the ingest log", pending.len());
            let jobs: Vec<Job> = pending
                .into_iter()
                .map(|record| Job {
                    seq: record.seq,
                    project_id: record.project_id,
                    batch: record.batch,
                    bytes: 0,
                })
                .collect();
            for group in jobs.chunks(64) {
                applied_now = apply_logged(&mut connection, &pricing, group);
            }
        }
        log.release_applied(applied_now, || sync_wal(&wal));
        let log = Arc::new(log);
        let progress = Arc::new(Progress::default());
        progress.applied(applied_now, 0);

        let (freed, to_free) = mpsc::channel::<Vec<Job>>();
        // Freeing a group's rows (large maps and strings) took a seventh of the writer's time:
        // a thread of its own does it.
        let freer = std::thread::Builder::new()
            .name("axion-sqlite-free".into())
            .spawn(move || to_free.into_iter().for_each(drop))
            .map_err(|error| StoreError::Database(error.to_string()))?;
        let (sender, receiver) = mpsc::channel::<Message>();
        let writer = {
            let (pricing, log, progress) = (
                Arc::clone(&pricing),
                Arc::clone(&log),
                Arc::clone(&progress),
            );
            std::thread::Builder::new()
                .name("axion-sqlite-writer".into())
                .spawn(move || {
                    writer_loop(
                        connection, receiver, &pricing, commits, &log, &progress, wal, freed,
                    )
                })
                .map_err(|error| StoreError::Database(error.to_string()))?
        };
        Ok(Self {
            path,
            pricing,
            jobs: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
            freer: Mutex::new(Some(freer)),
            checkpointer: Mutex::new(Some(checkpointer)),
            readers: Mutex::new(Vec::new()),
            log,
            payloads: Default::default(),
            progress,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting writes, finishes the queued ones and waits for the writer.
    pub fn close(&self) {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take();
        join(&self.writer);
        join(&self.freer);
        // The writer is gone, and with it the checkpointer's wake-ups: it ends by itself.
        join(&self.checkpointer);
    }

    /// Waits until every write answered so far is applied, telling the writer not to wait
    /// for more before it applies them.
    fn catch_up(&self) {
        let last = self.log.last_seq();
        if self.progress.lock().applied < last {
            if let Some(sender) = self.jobs.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                let _ = sender.send(Message::Flush);
            }
        }
        self.progress.wait_applied(last);
    }

    /// [`Self::read`] of data that writes change: it first waits for the writes answered so
    /// far (the writer is at most [`MAX_PENDING_BYTES`] behind).
    fn read_applied<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.catch_up();
        self.read(f)
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let connection = match pooled {
            Some(connection) => connection,
            None => open(&self.path, true)?,
        };
        let result = f(&connection);
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if readers.len() < 8 {
            readers.push(connection);
        }
        result
    }

    fn submit(&self, project_id: &str, batch: PreparedBatch) -> Result<(), StoreError> {
        let mut record = self.payloads.take(ingest_log::encoded_size_hint(&batch));
        ingest_log::encode(project_id, &batch, record.payload());
        let bytes = record.payload_len();
        self.progress.admit(bytes);
        let appended = {
            let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
            match jobs.as_ref() {
                None => Err(StoreError::Closed),
                Some(sender) => self.log.append(&mut record, |seq| {
                    sender
                        .send(Message::Job(Job {
                            seq,
                            project_id: project_id.to_owned(),
                            batch,
                            bytes,
                        }))
                        .map_err(|_| StoreError::Closed)
                }),
            }
        };
        self.payloads.give_back(record);
        match appended {
            Ok(seq) => self.log.sync_to(seq),
            Err(error) => {
                self.progress.refund(bytes);
                Err(error)
            }
        }
    }

    fn execute(&self, sql: &str, values: Vec<SqlValue>) -> Result<usize, StoreError> {
        // Management writes are rare: a separate connection is fine (WAL serialises writers).
        let connection = open(&self.path, false)?;
        Ok(connection.execute(sql, params_from_iter(values))?)
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

/// Refreshes the planner's statistics where tables grew a lot (cheap: sampled), so filters pick
/// the selective index instead of scanning in sort order.
fn optimize(connection: &Connection) -> Result<(), StoreError> {
    connection.pragma_update(None, "analysis_limit", 1000)?;
    connection.execute_batch("PRAGMA optimize;")?;
    Ok(())
}

/// Rows written between statistics refreshes.
const OPTIMIZE_EVERY: usize = 50_000;

/// The writer's own automatic checkpoint, in pages (16 KB): only reached when the checkpoint
/// thread falls behind.
const WRITER_CHECKPOINT_PAGES: i64 = 16_000;

/// Shortest pause between background checkpoints: each one syncs the database file, so a
/// burst of commits shares one.
const CHECKPOINT_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// Copies committed WAL frames into the database after commits (passive: never blocks the
/// writer or readers). Ends when the writer does.
fn checkpoint_loop(connection: Connection, committed: mpsc::Receiver<()>) {
    while committed.recv().is_ok() {
        let started = std::time::Instant::now();
        if let Err(error) = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            log::warn!("background checkpoint failed: {error}");
        }
        std::thread::sleep(CHECKPOINT_PAUSE.saturating_sub(started.elapsed()));
    }
}

/// Syncs SQLite's write-ahead log (nothing to do without one: commits were synchronous).
fn sync_wal(wal: &Option<std::fs::File>) -> std::io::Result<()> {
    wal.as_ref().map_or(Ok(()), std::fs::File::sync_data)
}

/// How long the writer waits for more rows once some arrived, at most: a commit writes every
/// page its inserts touched, and inserts keyed by random ids touch a page each, so a larger
/// group shares each page written among more rows. Writes are durable in the ingest log
/// already, and a reader cuts the wait short ([`Message::Flush`]).
const GATHER_WINDOW: std::time::Duration = std::time::Duration::from_millis(250);

/// The encoded size at which a group stops gathering: half of what may be queued, so request
/// threads do not wait for room while the writer waits for rows.
const GATHER_BYTES: usize = MAX_PENDING_BYTES / 2;

/// The next group to apply and its number of records: waits for a first job, then takes
/// what arrives within [`GATHER_WINDOW`] until the group is full or a reader waits. `None`
/// once the channel has closed and is drained.
fn gather(jobs: &mpsc::Receiver<Message>) -> Option<(Vec<Job>, usize)> {
    let first = loop {
        match jobs.recv().ok()? {
            Message::Job(job) => break job,
            Message::Flush => continue,
        }
    };
    let deadline = std::time::Instant::now() + GATHER_WINDOW;
    let (mut records, mut bytes) = (first.batch.len(), first.bytes);
    let mut group = vec![first];
    while records < MAX_GROUP_RECORDS && bytes < GATHER_BYTES {
        // A message already queued is taken even past the deadline; the channel closing
        // (shutdown) ends the group at once.
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(message) = jobs.recv_timeout(left) else {
            break;
        };
        match message {
            Message::Job(job) => {
                records += job.batch.len();
                bytes += job.bytes;
                group.push(job);
            }
            Message::Flush => break,
        }
    }
    Some((group, records))
}

/// Applies logged writes (see [`apply_group`]); one that cannot be stored is reported and left
/// behind, as it was answered already. Returns the last sequence number applied.
fn apply_logged(connection: &mut Connection, pricing: &Pricing, group: &[Job]) -> u64 {
    for (job, result) in group.iter().zip(apply_group(connection, pricing, group)) {
        if let Err(error) = result {
            log::error!(
                "{} logged records of project {} could not be stored: {error}",
                job.batch.len(),
                job.project_id
            );
        }
    }
    group.last().map_or(0, |job| job.seq)
}

fn wal_path(database: &Path) -> PathBuf {
    let mut path = database.as_os_str().to_owned();
    path.push("-wal");
    PathBuf::from(path)
}

#[allow(clippy::too_many_arguments)] // the writer's whole world, handed over once
fn writer_loop(
    mut connection: Connection,
    jobs: mpsc::Receiver<Message>,
    pricing: &Pricing,
    commits: mpsc::SyncSender<()>,
    log: &IngestLog,
    progress: &Progress,
    wal: Option<std::fs::File>,
    freed: mpsc::Sender<Vec<Job>>,
) {
    let mut written_since_optimize = 0usize;
    while let Some((group, records)) = gather(&jobs) {
        written_since_optimize += records;
        if written_since_optimize >= OPTIMIZE_EVERY {
            written_since_optimize = 0;
            if let Err(error) = optimize(&connection) {
                log::warn!("refreshing query statistics failed: {error}");
            }
        }
        let last = apply_logged(&mut connection, pricing, &group);
        progress.applied(last, group.iter().map(|job| job.bytes).sum());
        log.release_applied(last, || sync_wal(&wal));
        let _ = freed.send(group);
        // A wake-up already pending covers this commit too.
        let _ = commits.try_send(());
    }
    progress.stop();
}

/// The whole group in one transaction, which also records the last log sequence number
/// applied. Should a job fail (rare: a disk or constraint error), the transaction is rolled
/// back and every job runs again in its own, so only that job fails. Savepoints per job would
/// do the same in one pass, but every page they touch is copied to a sub-journal first
/// (measured: a fifth of the writer's time).
fn apply_group(
    connection: &mut Connection,
    pricing: &Pricing,
    group: &[Job],
) -> Vec<Result<(), StoreError>> {
    let now = now_micros();
    let apply = |connection: &mut Connection, jobs: &[Job]| -> Result<(), StoreError> {
        let tx = connection.transaction()?;
        apply_jobs(&tx, pricing, jobs, now)?;
        if let Some(last) = jobs.last() {
            record_applied(&tx, last.seq)?;
        }
        tx.commit()?;
        Ok(())
    };
    match apply(connection, group) {
        Ok(()) => group.iter().map(|_| Ok(())).collect(),
        Err(error) if group.len() == 1 => {
            // Past it all the same: a record that cannot be stored must not block the log.
            let _ = record_applied(connection, group[0].seq);
            vec![Err(error)]
        }
        Err(_) => {
            let results = group
                .iter()
                .map(|job| apply(connection, std::slice::from_ref(job)))
                .collect();
            if let Some(last) = group.last() {
                let _ = record_applied(connection, last.seq);
            }
            results
        }
    }
}

fn record_applied(connection: &Connection, seq: u64) -> Result<(), StoreError> {
    connection
        .prepare_cached("UPDATE ingest_state SET applied_seq = max(applied_seq, ?1) WHERE id = 0")?
        .execute([seq as i64])?;
    Ok(())
}

fn load_body(
    tx: &Connection,
    sql: &str,
    project_id: &str,
    id: &str,
) -> Result<Option<JsonMap>, StoreError> {
    let text: Option<String> = tx
        .prepare_cached(sql)?
        .query_row(params![project_id, id], |row| row.get(0))
        .optional()?;
    text.map(|text| parse_body(&text)).transpose()
}

macro_rules! insert_trace {
    () => {
        "INSERT INTO traces (project_id, id, timestamp, name, user_id, session_id, release, version,
        environment, public, body, io_observation_id, created_at, updated_at, tags)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13, ?14)"
    };
}
macro_rules! upsert_trace_tail {
    () => {
        " ON CONFLICT (project_id, id) DO UPDATE SET timestamp = excluded.timestamp,
        name = excluded.name, user_id = excluded.user_id, session_id = excluded.session_id,
        release = excluded.release, version = excluded.version, environment = excluded.environment,
        public = excluded.public, body = excluded.body, tags = excluded.tags,
        io_observation_id = coalesce(excluded.io_observation_id, traces.io_observation_id),
        updated_at = excluded.updated_at"
    };
}
/// The parameters of one row of `insert_trace!` (see [`bind_trace`]).
const TRACE_PARAMETERS: usize = 14;

/// New traces inserted by one statement execution, for the reason given at
/// [`OBSERVATION_ROWS_PER_INSERT`]. A trace row binds many texts; with 8 rows they outgrew
/// the connection's lookaside slots and went to `malloc`. Writer instructions per span:
/// 38.9k one at a time, 37.9k with 4 rows, 39.5k with 8 (8-span traces); 89.2k, 82.8k and
/// 83.3k for single-span traces with 1 KB input and output.
const TRACE_ROWS_PER_INSERT: usize = 4;

/// `insert_trace!` for [`TRACE_ROWS_PER_INSERT`] rows, an id that exists left as it is.
fn insert_traces_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let single = concat!(insert_trace!(), " ON CONFLICT (project_id, id) DO NOTHING");
        multi_row_insert(single, TRACE_ROWS_PER_INSERT, TRACE_PARAMETERS)
    })
}

/// An observation's row; `?1` is its `seq`, `?17` the time written (see [`bind_observation`]).
const INSERT_OBSERVATION: &str = "INSERT INTO observations (seq, project_id, id, trace_id,
        parent_observation_id, type, name, level, version, environment, model, start_time, end_time,
        total_cost, body, derived, created_at, updated_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?17)";

/// The parameters of one row of [`INSERT_OBSERVATION`].
const OBSERVATION_PARAMETERS: usize = 17;

/// New observations inserted by one statement execution. Each execution of a statement opens
/// a cursor on the table and on each of its indexes, and closes them at the end; within one
/// execution the cursors stay where the last row went, so SQLite skips the descent from the
/// root for a row that goes next to it (an append to the index by start, the same type or
/// name). Larger statements cost more per row to set up: writer instructions per span with
/// the keys also inserted 64 at a time, 8-span traces (46.3k one row at a time): 40.0k with 4
/// rows, 38.9k with 8, 40.1k with 16, 41.0k with 32.
const OBSERVATION_ROWS_PER_INSERT: usize = 8;

/// [`INSERT_OBSERVATION`] for [`OBSERVATION_ROWS_PER_INSERT`] rows.
fn insert_observations_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        multi_row_insert(
            INSERT_OBSERVATION,
            OBSERVATION_ROWS_PER_INSERT,
            OBSERVATION_PARAMETERS,
        )
    })
}

/// New observations' keys inserted by one statement execution, for the reason given at
/// [`OBSERVATION_ROWS_PER_INSERT`].
const KEYS_PER_INSERT: usize = 64;

/// `INSERT INTO observation_keys` for [`KEYS_PER_INSERT`] keys.
fn insert_keys_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let single = "INSERT INTO observation_keys (key, seq) VALUES (?1, ?2)";
        multi_row_insert(single, KEYS_PER_INSERT, 2)
    })
}

/// The single-row `INSERT … VALUES (…) [tail]` `single`, whose row takes the parameters
/// `?1`…`?{parameters}`, for `rows` rows: row `r`'s parameters are numbered from
/// `r * parameters + 1`, in the single row's order.
///
/// `OR FAIL`: a statement that writes several rows and may stop on a constraint keeps a
/// statement journal (a copy of each page it changes, to undo its own rows), and past 64 KB
/// SQLite spills it to a file. The writer never goes on after a failed statement (the whole
/// transaction is rolled back and retried request by request), so it needs no statement
/// journal. Writer instructions per span, traces 8 rows at a time: 40.6k → 39.5k for 8-span
/// traces, 85.9k → 83.3k for single-span traces with 1 KB input and output.
fn multi_row_insert(single: &str, rows: usize, parameters: usize) -> String {
    let (head, values) = single.split_once("VALUES").expect("an INSERT has VALUES");
    let start = values.find('(').expect("a row of values");
    let end = values.find(')').expect("a row of values") + 1;
    let (row, tail) = (&values[start..end], &values[end..]);
    let head = head.replacen("INSERT", "INSERT OR FAIL", 1);
    let mut sql = format!("{head}VALUES ");
    for index in 0..rows {
        if index > 0 {
            sql.push_str(", ");
        }
        // `?N` becomes `?{N + base}`.
        let base = index * parameters;
        let mut rest = row;
        while let Some(mark) = rest.find('?') {
            sql.push_str(&rest[..=mark]);
            let digits = rest[mark + 1..]
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len() - mark - 1);
            let number: usize = rest[mark + 1..mark + 1 + digits]
                .parse()
                .expect("numbered parameters");
            sql.push_str(&(number + base).to_string());
            rest = &rest[mark + 1 + digits..];
        }
        sql.push_str(rest);
    }
    sql.push_str(tail);
    sql
}

/// A stored observation rewritten after a merge (same parameters as [`INSERT_OBSERVATION`]).
const UPDATE_OBSERVATION: &str = "UPDATE observations SET trace_id = ?4,
        parent_observation_id = ?5, type = ?6, name = ?7, level = ?8, version = ?9,
        environment = ?10, model = ?11, start_time = ?12, end_time = ?13, total_cost = ?14,
        body = ?15, derived = ?16, updated_at = ?17
     WHERE seq = ?1 AND project_id = ?2 AND id = ?3";

/// The statements every new record runs, prepared once per request's batch: taking each from
/// the statement cache per row hashed its SQL text twice (about a tenth of the writer's
/// instructions).
/// The merge path's upserts (an id that exists already: rare) are prepared when first needed.
struct Statements<'c> {
    tx: &'c Connection,
    /// The sessions this group's traces name, by project: the earliest start among them and
    /// the environment of the first. Each is written once, by [`write_sessions`] after the
    /// traces: a session's traces come in id order, not time order, and upserting at each
    /// earlier start took about 2.7 statements per session of 8 traces.
    sessions: HashMap<String, HashMap<String, (i64, String)>>,
    insert_trace: InPlaceStatement<'c>,
    upsert_trace: Option<InPlaceStatement<'c>>,
    upsert_session: CachedStatement<'c>,
    insert_observation: InPlaceStatement<'c>,
    update_observation: Option<InPlaceStatement<'c>>,
    /// Whether any observation has a key: most new ids find none, and skip the join of
    /// [`FIND_OBSERVATION`].
    key_in_use: CachedStatement<'c>,
    insert_observation_key: CachedStatement<'c>,
    /// [`insert_observations_sql`], [`insert_keys_sql`] and [`insert_traces_sql`], prepared
    /// when a group has that many rows.
    insert_observations: Option<InPlaceStatement<'c>>,
    insert_keys: Option<InPlaceStatement<'c>>,
    insert_traces: Option<InPlaceStatement<'c>>,
}

impl<'c> Statements<'c> {
    fn new(tx: &'c Connection) -> Result<Self, StoreError> {
        Ok(Self {
            tx,
            sessions: HashMap::new(),
            insert_trace: InPlaceStatement::prepare(
                tx,
                concat!(insert_trace!(), " ON CONFLICT (project_id, id) DO NOTHING"),
            )?,
            upsert_session: tx.prepare_cached(
                "INSERT INTO sessions (project_id, id, environment, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (project_id, id) DO UPDATE SET created_at = excluded.created_at
                 WHERE excluded.created_at < sessions.created_at",
            )?,
            insert_observation: InPlaceStatement::prepare(tx, INSERT_OBSERVATION)?,
            key_in_use: tx.prepare_cached("SELECT 1 FROM observation_keys WHERE key = ?1")?,
            insert_observation_key: tx
                .prepare_cached("INSERT INTO observation_keys (key, seq) VALUES (?1, ?2)")?,
            upsert_trace: None,
            update_observation: None,
            insert_observations: None,
            insert_keys: None,
            insert_traces: None,
        })
    }
}

/// `insert`, or for a merge the statement in `upsert` (prepared from `upsert_sql` on first use).
fn insert_or_upsert<'s, 'c>(
    tx: &'c Connection,
    insert: &'s mut InPlaceStatement<'c>,
    upsert: &'s mut Option<InPlaceStatement<'c>>,
    merge: bool,
    upsert_sql: &str,
) -> Result<&'s mut InPlaceStatement<'c>, StoreError> {
    if !merge {
        return Ok(insert);
    }
    prepared(tx, upsert, upsert_sql)
}

/// The statement in `slot`, prepared from `sql` on first use: statements most groups never
/// run are not prepared for every group.
fn prepared<'s, 'c>(
    tx: &'c Connection,
    slot: &'s mut Option<InPlaceStatement<'c>>,
    sql: &str,
) -> Result<&'s mut InPlaceStatement<'c>, StoreError> {
    let statement = match slot.take() {
        Some(statement) => statement,
        None => InPlaceStatement::prepare(tx, sql)?,
    };
    Ok(slot.insert(statement))
}

/// Merges a trace write into the stored row (read back) and writes the result.
fn merge_trace(
    statements: &mut Statements<'_>,
    project: &str,
    trace: &rows::Prepared<TraceRow>,
    now: i64,
) -> Result<(), StoreError> {
    let id = trace.id.as_str();
    let mut stored = load_body(
        statements.tx,
        "SELECT body FROM traces WHERE project_id = ?1 AND id = ?2",
        project,
        id,
    )?
    .unwrap_or_default();
    merge_owned(&mut stored, trace.fields().into_owned(), TRACE_IMMUTABLE);
    let row = rows::trace_row(&stored, &trace.io, now);
    write_trace(statements, project, id, &row, true, now)?;
    Ok(())
}

/// Inserts [`TRACE_ROWS_PER_INSERT`] new traces with one statement; `false` when not all of
/// them were new (those that were are inserted).
fn insert_traces(
    statements: &mut Statements<'_>,
    chunk: &[(&str, &rows::Prepared<TraceRow>)],
    now: i64,
) -> Result<bool, StoreError> {
    let statement = prepared(
        statements.tx,
        &mut statements.insert_traces,
        insert_traces_sql(),
    )?;
    let tags: Vec<Option<String>> = chunk
        .iter()
        .map(|(_, trace)| tags_json(&trace.row.tags))
        .collect();
    let params = chunk
        .iter()
        .zip(&tags)
        .flat_map(|(&(project, trace), tags)| {
            trace_params(project, trace.id.as_str(), &trace.row, tags, now)
        });
    if statement.execute(params)? < chunk.len() {
        return Ok(false);
    }
    for &(project, trace) in chunk {
        note_session(statements, project, &trace.row)?;
    }
    Ok(true)
}

/// One trace's [`TRACE_PARAMETERS`], `tags` being [`tags_json`] of its tags.
fn trace_params<'v>(
    project: &'v str,
    id: &'v str,
    row: &'v TraceRow,
    tags: &'v Option<String>,
    now: i64,
) -> [Param<'v>; TRACE_PARAMETERS] {
    [
        project.into(),
        id.into(),
        row.timestamp.into(),
        (&row.name).into(),
        (&row.user_id).into(),
        (&row.session_id).into(),
        (&row.release).into(),
        (&row.version).into(),
        (&row.environment).into(),
        row.public.into(),
        (&row.body).into(),
        (&row.io_observation_id).into(),
        now.into(),
        tags.into(),
    ]
}

/// Writes a trace row; `merge` turns the insert into an upsert of a record read back first.
/// `false` when the id exists and `merge` is off.
fn write_trace(
    statements: &mut Statements<'_>,
    project: &str,
    id: &str,
    row: &TraceRow,
    merge: bool,
    now: i64,
) -> Result<bool, StoreError> {
    let statement = insert_or_upsert(
        statements.tx,
        &mut statements.insert_trace,
        &mut statements.upsert_trace,
        merge,
        concat!(insert_trace!(), upsert_trace_tail!()),
    )?;
    let tags = tags_json(&row.tags);
    if statement.execute(trace_params(project, id, row, &tags, now))? == 0 {
        return Ok(false);
    }
    note_session(statements, project, row)?;
    Ok(true)
}

/// Creates or moves back the session of a trace written: only an earlier start changes a
/// stored session (the statement's WHERE), so a session's later traces (most of them) need
/// no statement.
fn note_session(
    statements: &mut Statements<'_>,
    project: &str,
    row: &TraceRow,
) -> Result<(), StoreError> {
    let Some(session_id) = &row.session_id else {
        return Ok(());
    };
    let noted = statements
        .sessions
        .get_mut(project)
        .and_then(|sessions| sessions.get_mut(session_id.as_str()));
    match noted {
        Some((earliest, _)) => *earliest = (*earliest).min(row.timestamp),
        None => {
            let session = (row.timestamp, row.environment.clone());
            statements
                .sessions
                .entry(project.to_owned())
                .or_default()
                .insert(session_id.clone(), session);
        }
    }
    Ok(())
}

/// Creates the sessions [`note_session`] noted, or moves them back to an earlier start (the
/// statement's WHERE: a later start changes nothing), in key order.
fn write_sessions(statements: &mut Statements<'_>) -> Result<(), StoreError> {
    let mut sessions: Vec<(&str, &str, &(i64, String))> = statements
        .sessions
        .iter()
        .flat_map(|(project, sessions)| {
            sessions
                .iter()
                .map(move |(id, noted)| (project.as_str(), id.as_str(), noted))
        })
        .collect();
    sessions.sort_unstable_by_key(|&(project, id, _)| (project, id));
    for (project, id, (earliest, environment)) in sessions {
        statements
            .upsert_session
            .execute(params![project, id, environment, earliest])?;
    }
    Ok(())
}

/// A trace's tags as stored: a JSON array, NULL when there are none.
fn tags_json(tags: &[String]) -> Option<String> {
    (!tags.is_empty()).then(|| serde_json::to_string(tags).unwrap_or_default())
}

/// Writes an observation's row under `seq`: a new row, or with `update` the stored one.
fn write_observation(
    statements: &mut Statements<'_>,
    seq: i64,
    project: &str,
    id: &str,
    row: &ObservationRow,
    update: bool,
    now: i64,
) -> Result<(), StoreError> {
    let statement = insert_or_upsert(
        statements.tx,
        &mut statements.insert_observation,
        &mut statements.update_observation,
        update,
        UPDATE_OBSERVATION,
    )?;
    statement.execute(observation_params(seq, project, id, row, now))?;
    Ok(())
}

/// One observation's [`OBSERVATION_PARAMETERS`].
fn observation_params<'v>(
    seq: i64,
    project: &'v str,
    id: &'v str,
    row: &'v ObservationRow,
    now: i64,
) -> [Param<'v>; OBSERVATION_PARAMETERS] {
    [
        seq.into(),
        project.into(),
        id.into(),
        (&row.trace_id).into(),
        (&row.parent_observation_id).into(),
        (&row.kind).into(),
        (&row.name).into(),
        (&row.level).into(),
        (&row.version).into(),
        (&row.environment).into(),
        (&row.model).into(),
        row.start_time.into(),
        row.end_time.into(),
        row.total_cost.into(),
        (&row.body).into(),
        (&row.derived).into(),
        now.into(),
    ]
}

/// Inserts new observations, `(seq, project, id, row)` in the order given:
/// [`OBSERVATION_ROWS_PER_INSERT`] at a time, the rest one by one.
fn insert_observations(
    statements: &mut Statements<'_>,
    rows: &[(i64, &str, &str, &ObservationRow)],
    now: i64,
) -> Result<(), StoreError> {
    let mut chunks = rows.chunks_exact(OBSERVATION_ROWS_PER_INSERT);
    for chunk in &mut chunks {
        let statement = prepared(
            statements.tx,
            &mut statements.insert_observations,
            insert_observations_sql(),
        )?;
        let params = chunk
            .iter()
            .flat_map(|&(seq, project, id, row)| observation_params(seq, project, id, row, now));
        statement.execute(params)?;
    }
    for &(seq, project, id, row) in chunks.remainder() {
        write_observation(statements, seq, project, id, row, false, now)?;
    }
    Ok(())
}

/// Inserts observation keys, `(key, seq)` in the order given: [`KEYS_PER_INSERT`] at a time,
/// the rest one by one.
fn insert_keys(statements: &mut Statements<'_>, keys: &[(i64, i64)]) -> Result<(), StoreError> {
    let mut chunks = keys.chunks_exact(KEYS_PER_INSERT);
    for chunk in &mut chunks {
        let statement = prepared(
            statements.tx,
            &mut statements.insert_keys,
            insert_keys_sql(),
        )?;
        let params = chunk
            .iter()
            .flat_map(|&(key, seq)| [Param::Integer(key), Param::Integer(seq)]);
        statement.execute(params)?;
    }
    for &(key, seq) in chunks.remainder() {
        statements.insert_observation_key.execute([key, seq])?;
    }
    Ok(())
}

/// The indexes `0..count` ordered by the `(id, project)` that `key` gives each, and those
/// that tie in arrival (index) order. The sort compares the ids' first eight bytes, one
/// integer; only a run of equal prefixes that holds more than one key is sorted again by
/// the whole key. A trace's rows share the prefix and the key, so that second sort is rare.
/// Comparing the strings in the sort was a tenth of the writer's instructions (8-span traces).
fn order_by_id<'k>(count: usize, key: impl Fn(usize) -> (Option<&'k str>, &'k str)) -> Vec<usize> {
    let prefix = |id: Option<&str>| {
        let mut bytes = [0u8; 8];
        if let Some(id) = id {
            let head = &id.as_bytes()[..id.len().min(8)];
            bytes[..head.len()].copy_from_slice(head);
        }
        u64::from_be_bytes(bytes)
    };
    let mut order: Vec<(u64, usize)> = (0..count)
        .map(|index| (prefix(key(index).0), index))
        .collect();
    order.sort_by_key(|&(prefix, _)| prefix);
    let mut start = 0;
    while start < order.len() {
        let (run_prefix, first) = order[start];
        let run = order[start..].partition_point(|&(prefix, _)| prefix == run_prefix);
        let run = &mut order[start..start + run];
        if run.iter().any(|&(_, index)| key(index) != key(first)) {
            run.sort_by(|a, b| key(a.1).cmp(&key(b.1)));
        }
        start += run.len();
    }
    order.into_iter().map(|(_, index)| index).collect()
}

/// New records are inserted from their prepared rows, several per statement (the common
/// case); only an id that exists already is read back, merged and written again. The rows of
/// the whole group go in key order: traces by id (writes of one id keep their order),
/// observations by trace and their ids by id, so the pages of those indexes are each
/// visited once per group instead of once per row. Writes to observations that exist are
/// applied last, in the order they arrived.
fn apply_jobs(
    tx: &Connection,
    pricing: &Pricing,
    jobs: &[Job],
    now: i64,
) -> Result<(), StoreError> {
    let statements = &mut Statements::new(tx)?;
    let traces: Vec<(&str, &rows::Prepared<TraceRow>)> = jobs
        .iter()
        .flat_map(|job| {
            job.batch
                .traces
                .iter()
                .map(|trace| (job.project_id.as_str(), trace))
        })
        .collect();
    let trace_order = order_by_id(traces.len(), |index| {
        (Some(traces[index].1.id.as_str()), traces[index].0)
    });
    let traces: Vec<(&str, &rows::Prepared<TraceRow>)> =
        trace_order.into_iter().map(|index| traces[index]).collect();
    let mut chunks = traces.chunks_exact(TRACE_ROWS_PER_INSERT);
    for chunk in &mut chunks {
        if insert_traces(statements, chunk, now)? {
            continue;
        }
        // Some id of the chunk exists, or repeats in it. Every write of the chunk is merged
        // in turn; for one that was inserted, that merges the row into itself and changes
        // nothing.
        for &(project, trace) in chunk {
            merge_trace(statements, project, trace, now)?;
        }
    }
    for &(project, trace) in chunks.remainder() {
        if !write_trace(
            statements,
            project,
            trace.id.as_str(),
            &trace.row,
            false,
            now,
        )? {
            merge_trace(statements, project, trace, now)?;
        }
    }

    // In arrival order; each write's place in the row order (by trace) comes next.
    let observations: Vec<(&str, &rows::Prepared<ObservationRow>)> = jobs
        .iter()
        .flat_map(|job| {
            let project = job.project_id.as_str();
            job.batch
                .observations
                .iter()
                .map(move |observation| (project, observation))
        })
        .collect();
    let row_order = order_by_id(observations.len(), |index| {
        let (project, observation) = observations[index];
        (observation.row.trace_id.as_deref(), project)
    });
    // New rows are numbered in row order, so they are appended.
    let first_seq: i64 = tx
        .prepare_cached("SELECT coalesce(max(seq), 0) + 1 FROM observations")?
        .query_row([], |row| row.get(0))?;
    let mut seq_of = vec![0i64; observations.len()];
    for (position, &index) in row_order.iter().enumerate() {
        seq_of[index] = first_seq + position as i64;
    }
    // Ids are looked up and claimed in key order, one pass over the key table's pages (see
    // schema 8). Several writes of one id are then next to each other, in arrival order: the
    // first claims it.
    let keys: Vec<i64> = observations
        .iter()
        .map(|(project, observation)| observation_key(project, &observation.id))
        .collect();
    let mut key_order: Vec<usize> = (0..observations.len()).collect();
    key_order.sort_unstable_by_key(|&index| {
        let (project, observation) = observations[index];
        (keys[index], project, observation.id.as_str(), index)
    });
    let mut taken: Vec<Option<i64>> = vec![None; observations.len()];
    let mut new_keys: Vec<(i64, i64)> = Vec::with_capacity(observations.len());
    let mut first_write: Option<usize> = None;
    for index in key_order {
        let (project, observation) = observations[index];
        let id = observation.id.as_str();
        if let Some(first) = first_write.filter(|&first| {
            keys[first] == keys[index]
                && observations[first].0 == project
                && observations[first].1.id == id
        }) {
            taken[index] = Some(taken[first].unwrap_or(seq_of[first]));
            continue;
        }
        first_write = Some(index);
        // Keys claimed by this group are inserted after the loop, so the probe does not see
        // them. It need not: their rows are not written yet either, so no lookup could find
        // them, and a second id under one key gets an entry of its own.
        if statements.key_in_use.exists([keys[index]])? {
            taken[index] = tx
                .prepare_cached(FIND_OBSERVATION)?
                .query_row(params![keys[index], project, id], |row| row.get(0))
                .optional()?;
        }
        if taken[index].is_none() {
            new_keys.push((keys[index], seq_of[index]));
        }
    }
    insert_keys(statements, &new_keys)?;
    let new_rows: Vec<(i64, &str, &str, &ObservationRow)> = row_order
        .iter()
        .filter(|&&index| taken[index].is_none())
        .map(|&index| {
            let (project, observation) = observations[index];
            (
                seq_of[index],
                project,
                observation.id.as_str(),
                &observation.row,
            )
        })
        .collect();
    insert_observations(statements, &new_rows, now)?;
    // Writes of ids taken, in arrival order, after the new rows: one may merge into a row this
    // group created.
    for (index, (project, observation)) in observations.iter().enumerate() {
        let Some(seq) = taken[index] else { continue };
        let text: Option<String> = tx
            .prepare_cached("SELECT body FROM observations WHERE seq = ?1")?
            .query_row([seq], |row| row.get(0))
            .optional()?;
        let mut stored = text
            .map(|text| parse_body(&text))
            .transpose()?
            .unwrap_or_default();
        merge_owned(
            &mut stored,
            observation.fields().into_owned(),
            OBSERVATION_IMMUTABLE,
        );
        let row = rows::observation_row(&stored, &observation.io, pricing);
        write_observation(
            statements,
            seq,
            project,
            observation.id.as_str(),
            &row,
            true,
            now,
        )?;
    }

    write_sessions(statements)?;
    for job in jobs {
        apply_scores(tx, &job.project_id, &job.batch.scores, now)?;
    }
    Ok(())
}

fn apply_scores(
    tx: &Connection,
    project: &str,
    scores: &[(String, JsonMap)],
    now: i64,
) -> Result<(), StoreError> {
    for (id, patch) in scores {
        let id = id.as_str();
        let stored = load_body(
            tx,
            "SELECT body FROM scores WHERE project_id = ?1 AND id = ?2",
            project,
            id,
        )?;
        let mut body = stored.unwrap_or_default();
        merge_into(&mut body, patch, SCORE_IMMUTABLE);
        let row = rows::score_row(&body, now);
        tx.prepare_cached(
            "INSERT INTO scores (project_id, id, trace_id, observation_id, session_id, dataset_run_id, name, value,
                                 data_type, source, config_id, queue_id, environment, timestamp, body,
                                 created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?16)
             ON CONFLICT (project_id, id) DO UPDATE SET trace_id = excluded.trace_id,
                 observation_id = excluded.observation_id, session_id = excluded.session_id,
                 dataset_run_id = excluded.dataset_run_id, name = excluded.name, value = excluded.value,
                 data_type = excluded.data_type, source = excluded.source, config_id = excluded.config_id,
                 queue_id = excluded.queue_id, environment = excluded.environment, timestamp = excluded.timestamp,
                 body = excluded.body, updated_at = excluded.updated_at",
        )?
        .execute(params![
            project,
            id,
            row.trace_id,
            row.observation_id,
            row.session_id,
            row.dataset_run_id,
            row.name,
            row.value,
            row.data_type,
            row.source,
            row.config_id,
            row.queue_id,
            row.environment,
            row.timestamp,
            Value::Object(body).to_string(),
            now,
        ])?;
    }
    Ok(())
}

fn count(
    connection: &Connection,
    table: &str,
    filter: &Filter,
    page: &Pagination,
) -> Result<Option<u64>, StoreError> {
    if !matches!(page, Pagination::Offset { .. }) {
        return Ok(None);
    }
    let sql = filter.count(table);
    let total: i64 = connection.query_row(&sql, params_from_iter(filter.values.iter()), |row| {
        row.get(0)
    })?;
    Ok(Some(total as u64))
}

/// The columns [`trace_row`] reads, in order (a macro, so fixed queries are built at compile
/// time).
macro_rules! trace_columns {
    () => {
        "t.project_id, t.body, t.io_observation_id, t.created_at, t.updated_at"
    };
}
const TRACE_COLUMNS: &str = trace_columns!();

type TraceColumns = (String, String, Option<String>, i64, i64);

fn trace_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TraceColumns> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

/// A trace record, showing its root span's input and output where it has none of its own.
fn to_trace(
    connection: &Connection,
    (project_id, body, io_observation_id, created_at, updated_at): TraceColumns,
) -> Result<TraceRecord, StoreError> {
    let mut body = parse_body(&body)?;
    if let Some(observation_id) = io_observation_id {
        borrow_io(connection, &project_id, &observation_id, &mut body)?;
    }
    Ok(TraceRecord {
        project_id,
        body,
        created_at,
        updated_at,
    })
}

/// Fills `body`'s missing input and output from the observation's.
fn borrow_io(
    connection: &Connection,
    project_id: &str,
    observation_id: &str,
    body: &mut JsonMap,
) -> Result<(), StoreError> {
    if body.contains_key("input") && body.contains_key("output") {
        return Ok(());
    }
    let text: Option<String> = connection
        .prepare_cached(concat!("SELECT o.body", observation_by_key!()))?
        .query_row(
            params![
                observation_key(project_id, observation_id),
                project_id,
                observation_id
            ],
            |row| row.get(0),
        )
        .optional()?;
    match text {
        Some(text) => fill_io(body, &text),
        None => Ok(()),
    }
}

fn observation_row(
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<(String, String, String, i64, i64)> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

fn api_key_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey {
        public_key: row.get(0)?,
        secret_hash: row.get(1)?,
        project_id: row.get(2)?,
    })
}

fn session_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        id: row.get(0)?,
        project_id: row.get(1)?,
        environment: row.get(2)?,
        created_at: row.get(3)?,
    })
}

fn score_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, i64, i64)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

fn collect<R, T>(
    connection: &Connection,
    sql: &str,
    values: &[SqlValue],
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<R>,
    convert: impl Fn(R) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut statement = connection.prepare_cached(sql)?;
    let rows = statement.query_map(params_from_iter(values.iter()), row)?;
    rows.map(|row| convert(row?)).collect()
}

const OBSERVATION_COLUMNS: &str = "o.project_id, o.body, o.derived, o.created_at, o.updated_at";

impl Store for SqliteStore {
    fn write_prepared(&self, project_id: &str, batch: PreparedBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.submit(project_id, batch)
    }

    fn pricing(&self) -> &Pricing {
        &self.pricing
    }

    fn close(&self) {
        SqliteStore::close(self);
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn projects(&self) -> Result<Vec<Project>, StoreError> {
        self.read(|connection| {
            collect(
                connection,
                "SELECT id, name, created_at FROM projects ORDER BY created_at, id",
                &[],
                |row| {
                    Ok(Project {
                        id: row.get(0)?,
                        name: row.get(1)?,
                        created_at: row.get(2)?,
                    })
                },
                Ok,
            )
        })
    }

    fn put_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO api_keys (public_key, secret_hash, project_id, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (public_key) DO UPDATE SET secret_hash = excluded.secret_hash, project_id = excluded.project_id",
            vec![
                key.public_key.clone().into(),
                key.secret_hash.clone().into(),
                key.project_id.clone().into(),
                now_micros().into(),
            ],
        )?;
        Ok(())
    }

    fn api_key(&self, public_key: &str) -> Result<Option<ApiKey>, StoreError> {
        self.read(|connection| {
            Ok(connection
                .prepare_cached("SELECT public_key, secret_hash, project_id FROM api_keys WHERE public_key = ?1")?
                .query_row([public_key], api_key_row)
                .optional()?)
        })
    }

    fn api_key_count(&self) -> Result<usize, StoreError> {
        self.read(|connection| {
            let count: i64 =
                connection.query_row("SELECT COUNT(*) FROM api_keys", [], |row| row.get(0))?;
            Ok(count as usize)
        })
    }

    fn list_traces(
        &self,
        project_id: &str,
        query: &TraceQuery,
        page: &Pagination,
    ) -> Result<Page<TraceRecord>, StoreError> {
        let (filter, order) = sql::trace_list(Dialect::Sqlite, project_id, query);
        let sql = filter.select(TRACE_COLUMNS, "traces t", &order, page);
        self.read_applied(|connection| {
            let items = collect(connection, &sql, &filter.values, trace_row, |mut row| {
                if query.skip_borrowed_io {
                    row.2 = None;
                }
                to_trace(connection, row)
            })?;
            let total = count(connection, "traces t", &filter, page)?;
            Ok(Page { items, total })
        })
    }

    fn trace(&self, project_id: &str, id: &str) -> Result<Option<TraceRecord>, StoreError> {
        self.read_applied(|connection| {
            let row = connection
                .prepare_cached(concat!(
                    "SELECT ",
                    trace_columns!(),
                    " FROM traces t WHERE t.project_id = ?1 AND t.id = ?2"
                ))?
                .query_row([project_id, id], trace_row)
                .optional()?;
            row.map(|row| to_trace(connection, row)).transpose()
        })
    }

    fn trace_metrics(
        &self,
        project_id: &str,
        trace_ids: &[String],
    ) -> Result<HashMap<String, TraceMetrics>, StoreError> {
        if trace_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let marks = vec!["?"; trace_ids.len()].join(", ");
        let mut values: Vec<SqlValue> = vec![project_id.to_owned().into()];
        values.extend(trace_ids.iter().cloned().map(SqlValue::from));
        self.read_applied(|connection| {
            let mut metrics: HashMap<String, TraceMetrics> =
                trace_ids.iter().map(|id| (id.clone(), TraceMetrics::default())).collect();
            let sql = format!(
                "SELECT trace_id, min(start_time), max(coalesce(end_time, start_time)), total(total_cost),
                        group_concat(id, char(31))
                 FROM observations WHERE project_id = ? AND trace_id IN ({marks}) GROUP BY trace_id"
            );
            let mut statement = connection.prepare(&sql)?;
            let mut rows = statement.query(params_from_iter(values.iter()))?;
            while let Some(row) = rows.next()? {
                let id: String = row.get(0)?;
                let start: Option<i64> = row.get(1)?;
                let end: Option<i64> = row.get(2)?;
                let entry = metrics.entry(id).or_default();
                entry.latency = match (start, end) {
                    (Some(start), Some(end)) => (end - start) as f64 / 1e6,
                    _ => 0.0,
                };
                entry.total_cost = row.get(3)?;
                let ids: Option<String> = row.get(4)?;
                entry.observation_ids = ids.unwrap_or_default().split('\u{1f}').map(str::to_owned).collect();
            }
            let sql = format!(
                "SELECT trace_id, group_concat(id, char(31)) FROM scores
                 WHERE project_id = ? AND trace_id IN ({marks}) GROUP BY trace_id"
            );
            let mut statement = connection.prepare(&sql)?;
            let mut rows = statement.query(params_from_iter(values.iter()))?;
            while let Some(row) = rows.next()? {
                let id: String = row.get(0)?;
                let ids: Option<String> = row.get(1)?;
                metrics.entry(id).or_default().score_ids =
                    ids.unwrap_or_default().split('\u{1f}').map(str::to_owned).collect();
            }
            Ok(metrics)
        })
    }

    fn delete_traces(&self, project_id: &str, ids: &[String]) -> Result<usize, StoreError> {
        // After the writes answered so far, or a trace still queued would come back.
        self.catch_up();
        let mut connection = open(&self.path, false)?;
        let tx = connection.transaction()?;
        let mut deleted = 0;
        for id in ids {
            deleted += tx.execute(
                "DELETE FROM traces WHERE project_id = ?1 AND id = ?2",
                [project_id, id],
            )?;
            // A key left behind would do no harm (lookups check the row), but takes room.
            let observations: Vec<(i64, String)> = tx
                .prepare_cached(
                    "SELECT seq, id FROM observations WHERE project_id = ?1 AND trace_id = ?2",
                )?
                .query_map([project_id, id], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<Result<_, _>>()?;
            for (seq, observation_id) in observations {
                tx.prepare_cached("DELETE FROM observation_keys WHERE key = ?1 AND seq = ?2")?
                    .execute([observation_key(project_id, &observation_id), seq])?;
            }
            for table in ["observations", "scores"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE project_id = ?1 AND trace_id = ?2"),
                    [project_id, id],
                )?;
            }
        }
        tx.commit()?;
        Ok(deleted)
    }

    fn list_observations(
        &self,
        project_id: &str,
        query: &ObservationQuery,
        page: &Pagination,
    ) -> Result<Page<ObservationRecord>, StoreError> {
        let mut filter = sql::observation_list(Dialect::Sqlite, project_id, query, page);
        // A condition naming ids also finds their rows through their keys; the condition
        // itself still decides (keys may be shared).
        let mut by_ids = false;
        for condition in &query.conditions {
            let ids = match (condition.column.as_str(), &condition.test) {
                ("id", filter::Test::Text(filter::TextTest::Equals, id)) => {
                    std::slice::from_ref(id)
                }
                ("id", filter::Test::Set(filter::SetTest::AnyOf, ids)) => ids,
                _ => continue,
            };
            filter.clauses.push(format!(
                "o.seq IN (SELECT seq FROM observation_keys WHERE key IN ({}))",
                sql::marks(ids.len())
            ));
            filter.values.extend(
                ids.iter()
                    .map(|id| SqlValue::Integer(observation_key(project_id, id))),
            );
            by_ids = true;
        }
        // Without statistics (a new database) the planner may take the index by start, which
        // gives the order, and read every observation of the project to find a trace's or a
        // few ids'. Ids are taken by `seq` (no index), a trace's rows through its index.
        let table = if by_ids {
            "observations o NOT INDEXED"
        } else if query.trace_id.is_some() {
            "observations o INDEXED BY observations_by_trace"
        } else {
            "observations o"
        };
        let sql = filter.select(
            OBSERVATION_COLUMNS,
            table,
            &sql::observation_order(Dialect::Sqlite),
            page,
        );
        self.read_applied(|connection| {
            let items = collect(
                connection,
                &sql,
                &filter.values,
                observation_row,
                to_observation,
            )?;
            let total = count(connection, table, &filter, page)?;
            Ok(Page { items, total })
        })
    }

    fn observation(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<Option<ObservationRecord>, StoreError> {
        self.read_applied(|connection| {
            let sql = format!("SELECT {OBSERVATION_COLUMNS}{}", observation_by_key!());
            let key = observation_key(project_id, id);
            let row = connection
                .prepare_cached(&sql)?
                .query_row(params![key, project_id, id], observation_row)
                .optional()?;
            row.map(to_observation).transpose()
        })
    }

    fn trace_observations(
        &self,
        project_id: &str,
        trace_id: &str,
    ) -> Result<Vec<ObservationRecord>, StoreError> {
        self.read_applied(|connection| {
            let sql = format!(
                "SELECT {OBSERVATION_COLUMNS} FROM observations o INDEXED BY observations_by_trace
                 WHERE o.project_id = ?1 AND o.trace_id = ?2 ORDER BY o.start_time, o.id"
            );
            collect(
                connection,
                &sql,
                &[project_id.to_owned().into(), trace_id.to_owned().into()],
                observation_row,
                to_observation,
            )
        })
    }

    fn list_sessions(
        &self,
        project_id: &str,
        query: &SessionQuery,
        page: &Pagination,
    ) -> Result<Page<SessionRecord>, StoreError> {
        let filter = sql::session_list(project_id, query);
        let sql = filter.select(sql::SESSION_COLUMNS, "sessions s", sql::SESSION_ORDER, page);
        self.read_applied(|connection| {
            let items = collect(connection, &sql, &filter.values, session_row, Ok)?;
            let total = count(connection, "sessions s", &filter, page)?;
            Ok(Page { items, total })
        })
    }

    fn session(&self, project_id: &str, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.read_applied(|connection| {
            Ok(connection
                .prepare_cached("SELECT id, project_id, environment, created_at FROM sessions WHERE project_id = ?1 AND id = ?2")?
                .query_row([project_id, id], session_row)
                .optional()?)
        })
    }

    fn session_traces(
        &self,
        project_id: &str,
        session_id: &str,
    ) -> Result<Vec<TraceRecord>, StoreError> {
        self.read_applied(|connection| {
            collect(
                connection,
                concat!(
                    "SELECT ",
                    trace_columns!(),
                    " FROM traces t WHERE t.project_id = ?1 AND t.session_id = ?2
                     ORDER BY t.timestamp, t.id"
                ),
                &[project_id.to_owned().into(), session_id.to_owned().into()],
                trace_row,
                |row| to_trace(connection, row),
            )
        })
    }

    fn list_scores(
        &self,
        project_id: &str,
        query: &ScoreQuery,
        page: &Pagination,
    ) -> Result<Page<ScoreRecord>, StoreError> {
        let filter = sql::score_list(Dialect::Sqlite, project_id, query, page);
        let sql = filter.select(
            "s.project_id, s.body, s.created_at, s.updated_at",
            "scores s",
            sql::SCORE_ORDER,
            page,
        );
        self.read_applied(|connection| {
            let items = collect(connection, &sql, &filter.values, score_row, to_score)?;
            let total = count(connection, "scores s", &filter, page)?;
            Ok(Page { items, total })
        })
    }

    fn score(&self, project_id: &str, id: &str) -> Result<Option<ScoreRecord>, StoreError> {
        self.read_applied(|connection| {
            let row = connection
                .prepare_cached("SELECT project_id, body, created_at, updated_at FROM scores WHERE project_id = ?1 AND id = ?2")?
                .query_row([project_id, id], score_row)
                .optional()?;
            row.map(to_score).transpose()
        })
    }

    fn delete_score(&self, project_id: &str, id: &str) -> Result<bool, StoreError> {
        self.catch_up();
        Ok(self.execute(
            "DELETE FROM scores WHERE project_id = ?1 AND id = ?2",
            vec![project_id.to_owned().into(), id.to_owned().into()],
        )? > 0)
    }

    fn metrics(
        &self,
        project_id: &str,
        query: &metrics::MetricsQuery,
    ) -> Result<Vec<crate::JsonMap>, StoreError> {
        self.read_applied(|connection| {
            // Through the index by start, each row is a random read of its page; when the
            // range holds a good part of the table, reading the table in order is cheaper.
            // The count comes from the index alone.
            let scan = query.view == metrics::MetricsView::Observations && {
                let in_range: i64 = connection.query_row(
                    "SELECT count(*) FROM observations INDEXED BY observations_by_start \
                     WHERE project_id = ?1 AND start_time >= ?2 AND start_time < ?3",
                    params![project_id, query.from, query.to],
                    |row| row.get(0),
                )?;
                let rows: i64 = connection.query_row(
                    "SELECT coalesce(max(seq), 0) FROM observations",
                    [],
                    |row| row.get(0),
                )?;
                in_range * METRICS_SCAN_SHARE > rows
            };
            let observations = if scan {
                "observations o NOT INDEXED"
            } else {
                "observations o"
            };
            let (sql, values) = sql::metrics_rows(Dialect::Sqlite, project_id, query, observations);
            let mut statement = connection.prepare(&sql)?;
            let columns = statement.column_count();
            let rows = statement.query_map(params_from_iter(values.iter()), |row| {
                (0..columns)
                    .map(|index| row.get::<_, SqlValue>(index))
                    .collect()
            })?;
            Ok(sql::aggregate(query, rows)?)
        })
    }

    fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.read(|connection| {
            collect(
                connection,
                "SELECT public_key, secret_hash, project_id FROM api_keys ORDER BY public_key",
                &[],
                api_key_row,
                Ok,
            )
        })
    }

    fn put_project(&self, project: &Project) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO projects (id, name, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (id) DO NOTHING",
            vec![
                project.id.clone().into(),
                project.name.clone().into(),
                project.created_at.into(),
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
        // Traces and scores in id order (their primary key, project first); observations in
        // row order (the rowid), as they have no index by id: `+project_id` keeps the planner
        // from reading a project's rows through an index by project and sorting them per page.
        macro_rules! page {
            ($key:literal, $table:literal, $io:literal, $project:literal, $after:literal) => {
                concat!(
                    "SELECT ",
                    $key,
                    ", body, ",
                    $io,
                    " FROM ",
                    $table,
                    " WHERE ",
                    $project,
                    " = ?1",
                    $after,
                    " ORDER BY ",
                    $key,
                    " LIMIT ?3"
                )
            };
        }
        let after = cursor.map(|after| SqlValue::from(after.to_owned()));
        let (sql, cursor_value): (&str, SqlValue) = match (kind, after) {
            (RecordKind::Traces, None) => (
                page!("id", "traces", "io_observation_id", "project_id", ""),
                SqlValue::Null,
            ),
            (RecordKind::Traces, Some(after)) => (
                page!(
                    "id",
                    "traces",
                    "io_observation_id",
                    "project_id",
                    " AND id > ?2"
                ),
                after,
            ),
            (RecordKind::Scores, None) => (
                page!("id", "scores", "NULL", "project_id", ""),
                SqlValue::Null,
            ),
            (RecordKind::Scores, Some(after)) => (
                page!("id", "scores", "NULL", "project_id", " AND id > ?2"),
                after,
            ),
            (RecordKind::Observations, _) => (
                page!(
                    "seq",
                    "observations",
                    "NULL",
                    "+project_id",
                    " AND seq > ?2"
                ),
                cursor
                    .and_then(|after| after.parse::<i64>().ok())
                    .unwrap_or(0)
                    .into(),
            ),
        };
        let values = [
            project_id.to_owned().into(),
            cursor_value,
            i64::from(limit).into(),
        ];
        let rows = self.read_applied(|connection| {
            let mut statement = connection.prepare_cached(sql)?;
            let rows = statement.query_map(params_from_iter(values.iter()), |row| {
                Ok((
                    row.get::<_, SqlValue>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Option<String>>(2)?,
                ))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })?;
        let cursor = match rows.last() {
            Some((SqlValue::Integer(seq), _, _)) if rows.len() == limit as usize => {
                Some(seq.to_string())
            }
            Some((SqlValue::Text(id), _, _)) if rows.len() == limit as usize => Some(id.clone()),
            _ => None,
        };
        let upserts = rows
            .into_iter()
            .map(|(_, body, io_observation_id)| {
                rows::export_upsert(parse_body(&body)?, io_observation_id)
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(ExportPage { upserts, cursor })
    }
}

/// A metrics query over observations reads the whole table in order (instead of the rows in
/// its range through the index by start) once its range holds more than one row in this many.
const METRICS_SCAN_SHARE: i64 = 8;

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{Upsert, WriteBatch};

    /// The first column of every row `sql` returns.
    fn column<T: rusqlite::types::FromSql>(
        connection: &Connection,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Vec<T> {
        connection
            .prepare(sql)
            .unwrap()
            .query_map(params, |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn multi_row_inserts_number_each_rows_parameters() {
        assert_eq!(
            multi_row_insert("INSERT INTO k (a, b) VALUES (?1, ?2)", 3, 2),
            "INSERT OR FAIL INTO k (a, b) VALUES (?1, ?2), (?3, ?4), (?5, ?6)"
        );
        let traces = insert_traces_sql();
        assert!(
            traces.ends_with("?53, ?54, ?55, ?55, ?56) ON CONFLICT (project_id, id) DO NOTHING")
        );
        assert_eq!(traces.matches('(').count(), 1 + TRACE_ROWS_PER_INSERT + 1);
        let observations = insert_observations_sql();
        assert!(observations.contains("?17, ?17), (?18, ?19,"));
        assert!(observations.ends_with("?135, ?136, ?136)"));
    }

    #[test]
    fn a_database_of_the_first_schema_is_migrated_and_keeps_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("axion.db");
        {
            let connection = Connection::open(&path).unwrap();
            connection.execute_batch(MIGRATIONS[0]).unwrap();
            connection.pragma_update(None, "user_version", 1).unwrap();
            connection
                .execute(
                    "INSERT INTO traces (project_id, id, timestamp, environment, body, created_at, updated_at)
                     VALUES ('p', 't1', 0, 'default', '{\"id\":\"t1\",\"input\":\"kept\"}', 0, 0),
                            ('p', 't2', 0, 'default', '{\"id\":\"t2\"}', 0, 0)",
                    [],
                )
                .unwrap();
            connection
                .execute(
                    "INSERT INTO trace_tags (project_id, trace_id, tag) VALUES ('p', 't1', 'b'), ('p', 't1', 'a')",
                    [],
                )
                .unwrap();
            connection
                .execute(
                    "INSERT INTO observations (project_id, id, trace_id, type, level, environment,
                         start_time, body, derived, created_at, updated_at)
                     VALUES ('p', 'o1', 't1', 'SPAN', 'DEFAULT', 'default', 0,
                         '{\"id\":\"o1\",\"traceId\":\"t1\",\"type\":\"SPAN\",\"name\":\"old\"}', '{}', 0, 0)",
                    [],
                )
                .unwrap();
        }
        let store = SqliteStore::open(&path, Arc::new(Pricing::langfuse_defaults())).unwrap();
        let trace = store.trace("p", "t1").unwrap().unwrap();
        assert_eq!(trace.body["input"], "kept");
        // Observations keep their ids: found by id, and a later write merges into them.
        assert_eq!(
            store.observation("p", "o1").unwrap().unwrap().body["name"],
            "old"
        );
        let update = WriteBatch {
            observations: vec![Upsert::new(
                "o1".into(),
                serde_json::json!({"id": "o1", "traceId": "t1", "level": "ERROR"})
                    .as_object()
                    .cloned()
                    .unwrap(),
            )],
            ..WriteBatch::default()
        };
        store.write("p", update).unwrap();
        let merged = store.observation("p", "o1").unwrap().unwrap();
        assert_eq!(
            (&merged.body["name"], &merged.body["level"]),
            (&serde_json::json!("old"), &serde_json::json!("ERROR"))
        );
        assert_eq!(store.trace_observations("p", "t1").unwrap().len(), 1);
        store.close();
        let connection = Connection::open(&path).unwrap();
        let version: usize = connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len());
        let unused_tag_index: i64 = connection
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'trace_tags_by_tag'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(unused_tag_index, 0);
        let tags: Vec<Option<String>> =
            column(&connection, "SELECT tags FROM traces ORDER BY id", []);
        assert_eq!(tags, [Some(r#"["a","b"]"#.to_owned()), None]);
        let tag_table: i64 = connection
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'trace_tags'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(tag_table, 0);
        // The plan SQLite picks for `sql`.
        let plan = |sql: &str, values: &[&str]| -> String {
            connection
                .query_row(
                    &format!("EXPLAIN QUERY PLAN {sql}"),
                    params_from_iter(values),
                    |row| row.get(3),
                )
                .unwrap()
        };
        // Schema 6: the distinguishing column leads, the project id follows.
        for (index, leading) in [
            ("traces_by_user", "user_id"),
            ("traces_by_session", "session_id"),
            ("traces_by_name", "name"),
            ("traces_by_environment", "environment"),
        ] {
            let columns: Vec<String> = column(
                &connection,
                &format!("SELECT name FROM pragma_index_info('{index}') ORDER BY seqno"),
                [],
            );
            assert_eq!(columns[..2], [leading, "project_id"], "{index}");
        }
        // …and lookups by both still search it (schema 8: the index by trace holds the trace
        // and the start only).
        let by_trace: Vec<String> = column(
            &connection,
            "SELECT name FROM pragma_index_info('observations_by_trace') ORDER BY seqno",
            [],
        );
        assert_eq!(by_trace, ["trace_id", "start_time"]);
        // Schema 7: those indexes skip NULLs, and lookups by value still search them.
        let partial: i64 = connection
            .query_row(
                "SELECT count(*) FROM pragma_index_list('traces') WHERE partial = 1",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(partial, 3);
        for (column, index) in [
            ("user_id", "traces_by_user"),
            ("session_id", "traces_by_session"),
            ("name", "traces_by_name"),
        ] {
            let lookup = plan(
                &format!(
                    "SELECT t.id FROM traces t
                     WHERE t.project_id = ?1 AND t.{column} = ?2 ORDER BY t.timestamp DESC"
                ),
                &["p", "x"],
            );
            assert!(lookup.contains(index), "{column}: {lookup}");
        }
        let lookup = plan(
            "SELECT id FROM scores WHERE project_id = ?1 AND observation_id = ?2",
            &["p", "o"],
        );
        assert!(lookup.contains("scores_by_observation"), "{lookup}");
    }

    fn job(seq: u64, project: &str, id: &str) -> Job {
        let patch = serde_json::json!({"id": id, "name": "n"})
            .as_object()
            .cloned()
            .unwrap();
        let batch = WriteBatch {
            traces: vec![Upsert::new(id.into(), patch)],
            ..WriteBatch::default()
        };
        Job {
            seq,
            project_id: project.into(),
            batch: PreparedBatch::new(batch, &Pricing::langfuse_defaults(), 1),
            bytes: 0,
        }
    }

    #[test]
    fn the_writer_gathers_until_a_reader_asks_for_what_is_queued() {
        let (sender, receiver) = mpsc::channel();
        sender.send(Message::Flush).unwrap();
        sender.send(Message::Job(job(1, "p", "t1"))).unwrap();
        sender.send(Message::Job(job(2, "p", "t2"))).unwrap();
        sender.send(Message::Flush).unwrap();
        sender.send(Message::Job(job(3, "p", "t3"))).unwrap();
        // A flush with nothing gathered yet is no reason to apply an empty group.
        let (group, records) = gather(&receiver).unwrap();
        let seqs: Vec<u64> = group.iter().map(|job| job.seq).collect();
        assert_eq!((seqs, records), (vec![1, 2], 2));
        // Nothing more arrives: the group closes when the window ends.
        let started = std::time::Instant::now();
        let (group, _) = gather(&receiver).unwrap();
        assert_eq!(group.iter().map(|job| job.seq).collect::<Vec<_>>(), [3]);
        assert!(started.elapsed() >= GATHER_WINDOW);
        drop(sender);
        assert!(gather(&receiver).is_none());
    }

    #[test]
    fn a_group_closes_at_its_byte_bound_and_when_the_channel_closes() {
        let (sender, receiver) = mpsc::channel();
        for seq in 1..=3 {
            let mut job = job(seq, "p", &format!("t{seq}"));
            job.bytes = GATHER_BYTES / 2;
            sender.send(Message::Job(job)).unwrap();
        }
        let (group, _) = gather(&receiver).unwrap();
        assert_eq!(group.len(), 2, "two halves fill a group");
        drop(sender);
        // Closing does not wait out the window, and the rest is still applied.
        let started = std::time::Instant::now();
        let (group, _) = gather(&receiver).unwrap();
        assert_eq!(group.iter().map(|job| job.seq).collect::<Vec<_>>(), [3]);
        assert!(started.elapsed() < GATHER_WINDOW);
        assert!(gather(&receiver).is_none());
    }

    #[test]
    fn answered_writes_the_database_missed_are_applied_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("axion.db");
        let pricing = Arc::new(Pricing::langfuse_defaults());
        let store = SqliteStore::open(&path, Arc::clone(&pricing)).unwrap();
        store.write_prepared("p", job(0, "p", "t1").batch).unwrap();
        store.close();
        drop(store);
        // A write that reached the log (and was answered) but not the database: the process
        // died before the writer applied it.
        let (log, pending) = IngestLog::open(&path, 1).unwrap();
        assert!(pending.is_empty(), "the first write was applied");
        let mut record = ingest_log::Record::new(Vec::new(), 0);
        ingest_log::encode("p", &job(0, "p", "t2").batch, record.payload());
        let seq = log.append(&mut record, |_| Ok(())).unwrap();
        log.sync_to(seq).unwrap();
        drop(log);

        let store = SqliteStore::open(&path, pricing).unwrap();
        for id in ["t1", "t2"] {
            assert!(store.trace("p", id).unwrap().is_some(), "{id}");
        }
        let segments = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|entry| {
                let name = entry.as_ref().unwrap().file_name();
                name.to_string_lossy().contains("-ingest-")
            })
            .count();
        assert_eq!(segments, 1, "applied segments are deleted, one is open");
        store.write_prepared("p", job(0, "p", "t3").batch).unwrap();
        assert!(
            store.trace("p", "t3").unwrap().is_some(),
            "reads see answered writes"
        );
    }

    #[test]
    fn a_failing_job_fails_alone_and_its_group_still_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("axion.db");
        let mut connection = open(&path, false).unwrap();
        migrate(&mut connection).unwrap();
        // A stored body that cannot be parsed: merging an update into it fails.
        connection
            .execute(
                "INSERT INTO traces (project_id, id, timestamp, environment, body, created_at, updated_at)
                 VALUES ('p', 'broken', 0, 'default', 'not json', 0, 0)",
                [],
            )
            .unwrap();
        let pricing = Pricing::langfuse_defaults();
        let group = [job(1, "p", "t1"), job(2, "p", "broken"), job(3, "p", "t2")];
        let results = apply_group(&mut connection, &pricing, &group);
        assert!(results[0].is_ok());
        assert!(matches!(results[1], Err(StoreError::Corrupt(_))));
        assert!(results[2].is_ok());
        let applied: i64 = connection
            .query_row("SELECT applied_seq FROM ingest_state", [], |row| row.get(0))
            .unwrap();
        assert_eq!(applied, 3, "the log moves past the failed job");
        let stored: i64 = connection
            .query_row(
                "SELECT count(*) FROM traces WHERE id IN ('t1', 't2')",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(stored, 2);
    }

    /// `observation_key("project-1", "0123456789abcdef")`, computed apart from this crate
    /// (FNV-1a and SplitMix64's finaliser in a few lines of Python).
    const KEY_OF_A_SPAN: i64 = 8_908_465_656_468_114_030;

    fn observation_job(seq: u64, patch: serde_json::Value) -> Job {
        let patch = patch.as_object().cloned().unwrap();
        let id = patch["id"].as_str().unwrap().to_owned();
        let batch = WriteBatch {
            observations: vec![Upsert::new(id, patch)],
            ..WriteBatch::default()
        };
        Job {
            seq,
            project_id: "p".into(),
            batch: PreparedBatch::new(batch, &Pricing::langfuse_defaults(), 1),
            bytes: 0,
        }
    }

    #[test]
    fn writes_of_one_observation_in_one_group_make_one_row_in_arrival_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut connection = open(&dir.path().join("axion.db"), false).unwrap();
        migrate(&mut connection).unwrap();
        let pricing = Pricing::langfuse_defaults();
        // The update's trace sorts first: rows go in trace order, but of two writes of one id
        // the first to arrive creates it.
        let group = [
            observation_job(
                1,
                serde_json::json!({"id": "o", "traceId": "t-b", "type": "SPAN", "name": "first"}),
            ),
            observation_job(
                2,
                serde_json::json!({"id": "x", "traceId": "t-c", "type": "SPAN"}),
            ),
            observation_job(
                3,
                serde_json::json!({"id": "o", "traceId": "t-a", "name": "second"}),
            ),
        ];
        assert!(apply_group(&mut connection, &pricing, &group)
            .iter()
            .all(Result::is_ok));
        let rows: Vec<(i64, String, String)> = connection
            .prepare("SELECT seq, id, body FROM observations ORDER BY seq")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows.len(), 2, "{rows:?}");
        let o: Value = serde_json::from_str(&rows.iter().find(|r| r.1 == "o").unwrap().2).unwrap();
        assert_eq!(o["name"], "second", "the later write wins");
        assert_eq!(o["type"], "SPAN", "and the first's fields stay");
        assert_eq!(
            o["traceId"], "t-b",
            "a trace id is kept from the first write"
        );
        let mut keys: Vec<(i64, i64)> = connection
            .prepare("SELECT key, seq FROM observation_keys")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        keys.sort_by_key(|&(_, seq)| seq);
        let expected: Vec<(i64, i64)> = rows
            .iter()
            .map(|(seq, id, _)| (observation_key("p", id), *seq))
            .collect();
        assert_eq!(keys, expected);
    }

    #[test]
    fn observation_keys_are_stable_and_tell_project_from_id() {
        // Stored keys depend on these values.
        assert_eq!(
            observation_key("project-1", "0123456789abcdef"),
            KEY_OF_A_SPAN
        );
        assert_ne!(observation_key("ab", "c"), observation_key("a", "bc"));
        assert_ne!(observation_key("p", "o1"), observation_key("p", "o2"));
        assert_ne!(observation_key("p1", "o"), observation_key("p2", "o"));
    }

    #[test]
    fn observations_sharing_a_key_are_told_apart_by_their_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut connection = open(&dir.path().join("axion.db"), false).unwrap();
        migrate(&mut connection).unwrap();
        // A stored row under the key "o" will get, as if two ids hashed alike.
        connection
            .execute(
                "INSERT INTO observations (seq, project_id, id, type, level, environment, body,
                     derived, created_at, updated_at)
                 VALUES (1, 'p', 'other', 'SPAN', 'DEFAULT', 'default', '{\"id\":\"other\"}', '{}', 0, 0)",
                [],
            )
            .unwrap();
        connection
            .execute(
                "INSERT INTO observation_keys (key, seq) VALUES (?1, 1)",
                [observation_key("p", "o")],
            )
            .unwrap();
        let pricing = Pricing::langfuse_defaults();
        let group = [observation_job(
            1,
            serde_json::json!({"id": "o", "traceId": "t", "type": "SPAN", "name": "new"}),
        )];
        // Found through the key, then the row by `seq`.
        // (EXPLAIN cannot be a subquery: its detail is the fourth column.)
        let steps: Vec<String> = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {FIND_OBSERVATION}"))
            .unwrap()
            .query_map(params![1, "p", "o"], |row| row.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            steps[0].contains("k USING PRIMARY KEY (key=?)"),
            "{steps:?}"
        );
        assert!(
            steps[1].contains("o USING INTEGER PRIMARY KEY (rowid=?)"),
            "{steps:?}"
        );
        assert!(apply_group(&mut connection, &pricing, &group)[0].is_ok());
        let bodies: Vec<String> = column(
            &connection,
            "SELECT body FROM observations ORDER BY seq",
            [],
        );
        assert_eq!(
            bodies.len(),
            2,
            "a new observation, the other one untouched: {bodies:?}"
        );
        assert_eq!(bodies[0], r#"{"id":"other"}"#);
        let found: i64 = connection
            .query_row(
                FIND_OBSERVATION,
                params![observation_key("p", "o"), "p", "o"],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(found, 2);
    }
}
