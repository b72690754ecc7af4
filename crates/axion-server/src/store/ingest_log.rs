//! The ingest log: where a write becomes durable before the database has it.
//!
//! A request's rows are appended to a log file and `fdatasync`ed (one sync for every request
//! appended meanwhile), and the request is answered; the store's single writer applies the
//! queued rows to the database in large transactions of its own pace. Why: every insert into
//! an index keyed by random ids (span ids, trace ids) dirties a page of its own, and SQLite
//! writes whole pages. The larger the transaction, the more inserts share each page written;
//! answering only after the database commit capped a transaction at what the clients had in
//! flight (measured: 2 connections 27k → 43k spans/s, 4 connections 40k → 56k once writes
//! were answered before their commit).
//!
//! The log is a series of segment files `<database>-ingest-<first sequence number>`, each a run
//! of records `[length u32][crc32 u32][sequence u64][payload]`, the payload a project id and a
//! [`PreparedBatch`] in the codec below (a row's input and output, when its body holds them,
//! as their place in the body). The database records the last sequence number it
//! applied in the same transaction as the rows, so after a crash exactly the records after it
//! are applied again. A segment is deleted once everything in it is applied and the
//! database's own log has been synced.
//!
//! Segments are written with direct I/O (`O_DIRECT`) where the file system allows it: the log
//! is only read back after a crash, and copying every record into the page cache first cost
//! the request threads more than anything else in the kernel (measured with `dd`, 512 KB
//! writes and one sync: 2.5 s of system time per GB buffered, 0.29 s direct). Direct I/O
//! writes whole blocks from aligned memory, so each record is followed by a padding record
//! (sequence number 0, which no reader applies) up to the next [`BLOCK`] boundary.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axion_model::{Io, JsonText};

use super::rows::{ObservationRow, Prepared, PreparedBatch, TraceRow};
use super::StoreError;
use crate::JsonMap;

/// A segment is sealed (synced, and a new one started) past this size.
const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

const HEADER_BYTES: usize = 16;

/// What direct I/O writes at once and aligns to: records (with their padding) start and end
/// on these boundaries, in memory and in the file.
const BLOCK: usize = 4096;

/// The sequence number of padding records, which hold nothing (real records count from 1).
const PADDING_SEQ: u64 = 0;

/// The append side of the log.
pub(crate) struct IngestLog {
    base: PathBuf,
    state: Mutex<Segments>,
    /// Serialises `fdatasync` calls: one caller syncs for everybody waiting.
    sync: Mutex<()>,
    /// Every record up to this sequence number is on disk.
    synced: AtomicU64,
}

struct Segments {
    current: Arc<File>,
    /// Whether `current` was opened for direct I/O; the next segment tries it only if so.
    direct: bool,
    current_path: PathBuf,
    current_bytes: u64,
    /// The last sequence number appended.
    last_seq: u64,
    /// Full segments, oldest first, with the last sequence number each holds.
    sealed: Vec<(PathBuf, u64)>,
}

/// A record found when the log was opened that the database has not applied yet.
pub(crate) struct Pending {
    pub seq: u64,
    pub project_id: String,
    pub batch: PreparedBatch,
}

fn segment_path(base: &Path, first_seq: u64) -> PathBuf {
    let mut path = base.as_os_str().to_owned();
    path.push(format!("-ingest-{first_seq:020}"));
    PathBuf::from(path)
}

fn io_error(what: &str, error: std::io::Error) -> StoreError {
    StoreError::Database(format!("ingest log: {what}: {error}"))
}

/// Opens a segment for appending: with direct I/O when `direct` is asked for and the file
/// system takes it (tmpfs before Linux 6.6 and other systems do not), buffered otherwise.
/// Returns the file and whether it is direct.
fn open_segment(path: &Path, direct: bool) -> Result<(File, bool), StoreError> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(target_os = "linux")]
    if direct {
        use std::os::unix::fs::OpenOptionsExt;
        let mut direct_options = options.clone();
        direct_options.custom_flags(libc::O_DIRECT);
        if let Ok(file) = direct_options.open(path) {
            return Ok((file, true));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = direct;
    let file = options
        .open(path)
        .map_err(|error| io_error("creating a segment", error))?;
    Ok((file, false))
}

/// A record being built in a buffer laid out for direct I/O: the header starts on a
/// [`BLOCK`] boundary of memory, the payload follows it, and [`Record::seal`] pads the whole
/// to a multiple of [`BLOCK`].
pub(crate) struct Record {
    buffer: Vec<u8>,
    /// Where the header starts in `buffer`.
    start: usize,
    /// Bytes of payload and of header, payload and padding, once sealed.
    sealed: Option<(usize, usize)>,
}

impl Record {
    /// A record in `buffer` (emptied) with room for a payload of `payload_capacity` bytes.
    pub(crate) fn new(mut buffer: Vec<u8>, payload_capacity: usize) -> Self {
        buffer.clear();
        buffer.reserve(payload_capacity + 3 * BLOCK);
        let start = buffer.as_ptr().align_offset(BLOCK).min(BLOCK);
        buffer.resize(start + HEADER_BYTES, 0);
        Self {
            buffer,
            start,
            sealed: None,
        }
    }

    /// The payload, for [`encode`] to append to.
    pub(crate) fn payload(&mut self) -> &mut Vec<u8> {
        &mut self.buffer
    }

    /// Bytes of payload.
    pub(crate) fn payload_len(&self) -> usize {
        match self.sealed {
            Some((payload_len, _)) => payload_len,
            None => self.buffer.len() - self.start - HEADER_BYTES,
        }
    }

    /// Writes the header (the sequence number comes at [`IngestLog::append`]) and the padding
    /// record, and moves the record to a [`BLOCK`] boundary of memory should its buffer have
    /// grown (and moved) while the payload was encoded.
    fn seal(&mut self) {
        if self.sealed.is_some() {
            return;
        }
        let payload_len = self.payload_len();
        let payload = &self.buffer[self.start + HEADER_BYTES..];
        let record_header = header(payload, PADDING_SEQ);
        self.buffer[self.start..self.start + HEADER_BYTES].copy_from_slice(&record_header);
        let mut gap = (BLOCK - (self.buffer.len() - self.start) % BLOCK) % BLOCK;
        if gap != 0 && gap < HEADER_BYTES {
            gap += BLOCK;
        }
        if gap != 0 {
            let zeros = [0u8; 2 * BLOCK];
            let padding = &zeros[..gap - HEADER_BYTES];
            self.buffer.extend_from_slice(&header(padding, PADDING_SEQ));
            self.buffer.extend_from_slice(padding);
        }
        let sealed_len = self.buffer.len() - self.start;
        self.sealed = Some((payload_len, sealed_len));
        if self.buffer[self.start..].as_ptr().align_offset(BLOCK) != 0 {
            let mut moved: Vec<u8> = Vec::with_capacity(sealed_len + BLOCK);
            let start = moved.as_ptr().align_offset(BLOCK).min(BLOCK);
            moved.resize(start, 0);
            moved.extend_from_slice(&self.buffer[self.start..]);
            self.buffer = moved;
            self.start = start;
        }
    }

    fn set_seq(&mut self, seq: u64) {
        self.buffer[self.start + 8..self.start + HEADER_BYTES].copy_from_slice(&seq.to_le_bytes());
    }

    /// The sealed record as written: header, payload, padding.
    fn bytes(&self) -> &[u8] {
        let (_, sealed_len) = self.sealed.unwrap_or_default();
        &self.buffer[self.start..self.start + sealed_len]
    }

    /// The buffer, for the next record.
    pub(crate) fn into_buffer(self) -> Vec<u8> {
        self.buffer
    }
}

/// A record header: payload length, its CRC-32 and the sequence number.
fn header(payload: &[u8], seq: u64) -> [u8; HEADER_BYTES] {
    let mut header = [0u8; HEADER_BYTES];
    header[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[4..8].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    header[8..].copy_from_slice(&seq.to_le_bytes());
    header
}

impl IngestLog {
    /// Opens the log of the database at `database`: returns it with the records after
    /// `applied` (to apply before anything else), in order. Older segments stay until
    /// [`IngestLog::release_applied`] finds them applied.
    pub(crate) fn open(database: &Path, applied: u64) -> Result<(Self, Vec<Pending>), StoreError> {
        Self::open_with(database, applied, true)
    }

    /// [`IngestLog::open`], with direct I/O tried for new segments or not.
    fn open_with(
        database: &Path,
        applied: u64,
        try_direct: bool,
    ) -> Result<(Self, Vec<Pending>), StoreError> {
        let base = database.to_path_buf();
        let mut segments = existing_segments(&base)?;
        segments.sort();
        let mut pending = Vec::new();
        let mut sealed = Vec::new();
        let mut last_seq = applied;
        for (_, path) in &segments {
            let (records, good_len) = read_segment(path)?;
            let mut segment_last = 0;
            for (seq, payload) in records {
                segment_last = segment_last.max(seq);
                last_seq = last_seq.max(seq);
                if seq > applied {
                    let (project_id, batch) = decode(&payload).map_err(|error| {
                        StoreError::Corrupt(format!("ingest log record {seq}: {error}"))
                    })?;
                    pending.push(Pending {
                        seq,
                        project_id,
                        batch,
                    });
                }
            }
            // A torn tail (a crash mid-append, never acknowledged) is cut off.
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|error| io_error("opening a segment", error))?;
            if file.metadata().map(|m| m.len()).unwrap_or(0) > good_len {
                file.set_len(good_len)
                    .map_err(|error| io_error("cutting a torn record", error))?;
            }
            sealed.push((path.clone(), segment_last));
        }
        let current_path = segment_path(&base, last_seq + 1);
        let (current, direct) = open_segment(&current_path, try_direct)?;
        let log = Self {
            base,
            state: Mutex::new(Segments {
                current: Arc::new(current),
                direct,
                current_path,
                current_bytes: 0,
                last_seq,
                sealed,
            }),
            sync: Mutex::new(()),
            synced: AtomicU64::new(last_seq),
        };
        Ok((log, pending))
    }

    /// The last sequence number appended.
    pub(crate) fn last_seq(&self) -> u64 {
        self.lock().last_seq
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Segments> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a record and, still in order with other appends, hands its sequence number to
    /// `then` (which queues the rows for the writer). Not yet durable: see [`Self::sync_to`].
    pub(crate) fn append(
        &self,
        record: &mut Record,
        then: impl FnOnce(u64) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        record.seal();
        let mut state = self.lock();
        let seq = state.last_seq + 1;
        record.set_seq(seq);
        let written = (&*state.current).write_all(record.bytes());
        if let Err(error) = written {
            // A file system may take `O_DIRECT` at open and refuse the write (alignment it
            // needs larger than a block): the segment goes on buffered. Nothing was written.
            if !(state.direct && error.kind() == std::io::ErrorKind::InvalidInput) {
                return Err(io_error("appending", error));
            }
            let (buffered, _) = open_segment(&state.current_path, false)?;
            (&buffered)
                .write_all(record.bytes())
                .map_err(|error| io_error("appending", error))?;
            state.current = Arc::new(buffered);
            state.direct = false;
        }
        state.last_seq = seq;
        state.current_bytes += record.bytes().len() as u64;
        then(seq)?;
        if state.current_bytes >= SEGMENT_BYTES {
            // Sealed segments are synced here, so a sync of the current one covers the rest.
            state
                .current
                .sync_data()
                .map_err(|error| io_error("syncing a full segment", error))?;
            let path = segment_path(&self.base, seq + 1);
            let (next, direct) = open_segment(&path, state.direct)?;
            let full = std::mem::replace(&mut state.current_path, path);
            state.sealed.push((full, seq));
            state.current = Arc::new(next);
            state.direct = direct;
            state.current_bytes = 0;
        }
        Ok(seq)
    }

    /// Returns once every record up to `seq` is on disk. Callers arriving while a sync runs
    /// share the next one.
    pub(crate) fn sync_to(&self, seq: u64) -> Result<(), StoreError> {
        if self.synced.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let _syncing = self.sync.lock().unwrap_or_else(|e| e.into_inner());
        if self.synced.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let (file, upto) = {
            let state = self.lock();
            (Arc::clone(&state.current), state.last_seq)
        };
        file.sync_data()
            .map_err(|error| io_error("syncing", error))?;
        self.synced.fetch_max(upto, Ordering::AcqRel);
        Ok(())
    }

    /// Deletes the segments whose records are all applied at `applied`, after
    /// `make_database_durable` (which syncs the database's own log) succeeds.
    pub(crate) fn release_applied(
        &self,
        applied: u64,
        make_database_durable: impl FnOnce() -> std::io::Result<()>,
    ) {
        let done: Vec<PathBuf> = {
            let state = self.lock();
            state
                .sealed
                .iter()
                .filter(|(_, last)| *last <= applied)
                .map(|(path, _)| path.clone())
                .collect()
        };
        if done.is_empty() {
            return;
        }
        if let Err(error) = make_database_durable() {
            log::warn!("ingest log: syncing the database before deleting segments: {error}");
            return;
        }
        for path in &done {
            if let Err(error) = std::fs::remove_file(path) {
                log::warn!("ingest log: deleting {}: {error}", path.display());
            }
        }
        self.lock().sealed.retain(|(path, _)| !done.contains(path));
    }
}

fn existing_segments(base: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let dir = match base.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let prefix = format!(
        "{}-ingest-",
        base.file_name().unwrap_or_default().to_string_lossy()
    );
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|error| io_error("listing segments", error))? {
        let entry = entry.map_err(|error| io_error("listing segments", error))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(first) = name
            .strip_prefix(&prefix)
            .and_then(|n| n.parse::<u64>().ok())
        {
            segments.push((first, entry.path()));
        }
    }
    Ok(segments)
}

/// A stored record's sequence number and payload.
type StoredRecord = (u64, Vec<u8>);

/// The records of a segment up to the first torn or corrupt one, and the length they span.
fn read_segment(path: &Path) -> Result<(Vec<StoredRecord>, u64), StoreError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut file| file.read_to_end(&mut bytes))
        .map_err(|error| io_error("reading a segment", error))?;
    let mut records = Vec::new();
    let mut at = 0usize;
    while bytes.len() - at >= HEADER_BYTES {
        let field = |offset: usize, len: usize| &bytes[at + offset..at + offset + len];
        let len = u32::from_le_bytes(field(0, 4).try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(field(4, 4).try_into().unwrap_or_default());
        let seq = u64::from_le_bytes(field(8, 8).try_into().unwrap_or_default());
        let Some(payload) = bytes.get(at + HEADER_BYTES..at + HEADER_BYTES + len) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        if seq != PADDING_SEQ {
            records.push((seq, payload.to_vec()));
        }
        at += HEADER_BYTES + len;
    }
    Ok((records, at as u64))
}

// ---------------------------------------------------------------------------------------------
// The record codec: length-prefixed fields, no escaping (a record is mostly bodies already
// serialised; copying them is all encoding costs).
// ---------------------------------------------------------------------------------------------

/// Record payload buffers, kept for the next request instead of freed.
///
/// A payload is hundreds of kilobytes. Allocated per request, it came from pages the allocator
/// had just handed back to the system, and every one of them was faulted in again while
/// encoding: a sixth of the request threads' page faults during ingest. A few buffers serve
/// any number of requests, since a buffer is only held from encoding until the log has it.
#[derive(Debug, Default)]
pub(crate) struct PayloadBuffers {
    free: Mutex<Vec<Vec<u8>>>,
}

impl PayloadBuffers {
    /// Buffers kept at most: as many as requests usually write at once.
    const KEPT: usize = 4;
    /// A buffer larger than this (a rare huge request) is freed, not kept.
    const LARGEST_KEPT: usize = 8 << 20;

    /// A record with room for a payload of `capacity` bytes, in a kept buffer when there is
    /// one.
    pub(crate) fn take(&self, capacity: usize) -> Record {
        let kept = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
        Record::new(kept.unwrap_or_default(), capacity)
    }

    /// Returns a record's buffer for later requests.
    pub(crate) fn give_back(&self, record: Record) {
        let mut buffer = record.into_buffer();
        if buffer.capacity() > Self::LARGEST_KEPT {
            return;
        }
        buffer.clear();
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < Self::KEPT {
            free.push(buffer);
        }
    }
}

/// About how many bytes [`encode`] writes for `batch`: a buffer of this size rarely grows
/// (growing a payload of hundreds of kilobytes by doubling copied it about twice over). Inputs
/// and outputs are counted in the bodies, where they are logged from.
pub(crate) fn encoded_size_hint(batch: &PreparedBatch) -> usize {
    let traces: usize = batch
        .traces
        .iter()
        .map(|trace| 256 + trace.row.body.len())
        .sum();
    let observations: usize = batch
        .observations
        .iter()
        .map(|observation| 256 + observation.row.body.len() + observation.row.derived.len())
        .sum();
    1024 + traces + observations + batch.scores.len() * 512
}

/// Encodes a project's prepared rows as one record payload.
pub(crate) fn encode(project_id: &str, batch: &PreparedBatch, out: &mut Vec<u8>) {
    let mut w = Encoder(out);
    w.str(project_id);
    w.len(batch.traces.len());
    for trace in &batch.traces {
        let row = &trace.row;
        w.prepared_head(&trace.id, trace.patch.as_ref(), &trace.io, &row.body);
        w.i64(row.timestamp);
        for text in [
            &row.name,
            &row.user_id,
            &row.session_id,
            &row.release,
            &row.version,
        ] {
            w.opt_str(text.as_deref());
        }
        w.str(&row.environment);
        w.u8(row.public as u8);
        w.len(row.tags.len());
        for tag in &row.tags {
            w.str(tag);
        }
        w.str(&row.body);
        w.opt_str(row.io_observation_id.as_deref());
    }
    w.len(batch.observations.len());
    for observation in &batch.observations {
        let row = &observation.row;
        w.prepared_head(
            &observation.id,
            observation.patch.as_ref(),
            &observation.io,
            &row.body,
        );
        w.opt_str(row.trace_id.as_deref());
        w.opt_str(row.parent_observation_id.as_deref());
        w.str(&row.kind);
        w.opt_str(row.name.as_deref());
        w.str(&row.level);
        w.opt_str(row.version.as_deref());
        w.str(&row.environment);
        w.opt_str(row.model.as_deref());
        w.opt_i64(row.start_time);
        w.opt_i64(row.end_time);
        w.opt(row.total_cost, |w, cost| {
            w.0.extend_from_slice(&cost.to_le_bytes())
        });
        w.str(&row.body);
        w.str(&row.derived);
    }
    w.len(batch.scores.len());
    for (id, patch) in &batch.scores {
        w.str(id);
        w.str(&json_text(patch));
    }
}

struct Encoder<'a>(&'a mut Vec<u8>);

impl Encoder<'_> {
    fn u8(&mut self, value: u8) {
        self.0.push(value);
    }

    fn len(&mut self, len: usize) {
        self.0.extend_from_slice(&(len as u32).to_le_bytes());
    }

    fn str(&mut self, text: &str) {
        self.len(text.len());
        self.0.extend_from_slice(text.as_bytes());
    }

    /// A presence byte, then the value when there is one.
    fn opt<T>(&mut self, value: Option<T>, write: impl FnOnce(&mut Self, T)) {
        match value {
            Some(value) => {
                self.u8(1);
                write(self, value);
            }
            None => self.u8(0),
        }
    }

    fn opt_str(&mut self, text: Option<&str>) {
        self.opt(text, Self::str);
    }

    fn i64(&mut self, value: i64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    fn opt_i64(&mut self, value: Option<i64>) {
        self.opt(value, Self::i64);
    }

    /// The id, patch and input and output of a row whose body is `body`. An input or output
    /// that the body holds as it is (where a row's body writes them: last) is written as
    /// its place in the body rather than a second copy: it is often most of the record.
    fn prepared_head(&mut self, id: &str, patch: Option<&JsonMap>, io: &Io, body: &str) {
        self.str(id);
        self.opt_str(patch.map(json_text).as_deref());
        let (input_at, output_at) = io_in_body(body, io);
        self.io_text(io.input.as_ref(), input_at);
        self.io_text(io.output.as_ref(), output_at);
        self.opt_str(io.from_observation.as_deref());
    }

    /// Absent (0), the text (1), or where the body holds it (2: offset and length).
    fn io_text(&mut self, text: Option<&JsonText>, in_body: Option<InBody>) {
        match (text, in_body) {
            (None, _) => self.u8(0),
            (Some(_), Some((start, len))) => {
                self.u8(2);
                self.len(start);
                self.len(len);
            }
            (Some(text), None) => {
                self.u8(1);
                self.str(text.as_str());
            }
        }
    }
}

/// Offset and length of a text in a row's body.
type InBody = (usize, usize);

/// Where `body` holds `io`'s input and output verbatim as its last fields (`…,"input":…,
/// "output":…}`), as (offset, length); `None` for a text found elsewhere or not at all.
/// Checked byte for byte, so a reference always reads back the same text.
fn io_in_body(body: &str, io: &Io) -> (Option<InBody>, Option<InBody>) {
    /// The text just before `end` when it is `text` preceded by `"key":`; returns its range
    /// and where the field (with its comma) begins.
    fn field_before(bytes: &[u8], end: usize, key: &[u8], text: &str) -> Option<(InBody, usize)> {
        let start = end.checked_sub(text.len())?;
        if &bytes[start..end] != text.as_bytes() || !bytes[..start].ends_with(key) {
            return None;
        }
        let field = start - key.len();
        let field = if bytes[..field].ends_with(b",") {
            field - 1
        } else {
            field
        };
        Some(((start, text.len()), field))
    }
    let bytes = body.as_bytes();
    let Some(mut end) = bytes.len().checked_sub(1).filter(|_| body.ends_with('}')) else {
        return (None, None);
    };
    let mut output_at = None;
    if let Some(output) = &io.output {
        match field_before(bytes, end, b"\"output\":", output.as_str()) {
            Some((range, field)) => {
                output_at = Some(range);
                end = field;
            }
            None => return (None, None),
        }
    }
    let input_at = io.input.as_ref().and_then(|input| {
        field_before(bytes, end, b"\"input\":", input.as_str()).map(|(range, _)| range)
    });
    (input_at, output_at)
}

/// An input or output as a record holds it.
enum TextSource {
    Absent,
    Text(String),
    /// Offset and length in the row's body.
    InBody(usize, usize),
}

/// A row's input and output before its body is read.
struct IoSource {
    input: TextSource,
    output: TextSource,
    from_observation: Option<String>,
}

impl IoSource {
    fn resolve(self, body: &str) -> Result<Io, String> {
        let text = |source: TextSource| -> Result<Option<JsonText>, String> {
            Ok(match source {
                TextSource::Absent => None,
                TextSource::Text(text) => JsonText::parse(&text),
                TextSource::InBody(start, len) => JsonText::parse(
                    body.get(start..start + len)
                        .ok_or("an input or output reference outside its body")?,
                ),
            })
        };
        Ok(Io {
            input: text(self.input)?,
            output: text(self.output)?,
            from_observation: self.from_observation,
        })
    }
}

/// Decodes a record payload.
pub(crate) fn decode(payload: &[u8]) -> Result<(String, PreparedBatch), String> {
    let mut r = Decoder {
        bytes: payload,
        at: 0,
    };
    let project_id = r.string()?;
    let mut batch = PreparedBatch::default();
    for _ in 0..r.len()? {
        let (id, patch, io) = r.prepared_head()?;
        let row = TraceRow {
            timestamp: r.i64()?,
            name: r.opt_string()?,
            user_id: r.opt_string()?,
            session_id: r.opt_string()?,
            release: r.opt_string()?,
            version: r.opt_string()?,
            environment: r.string()?,
            public: r.u8()? == 1,
            tags: (0..r.len()?)
                .map(|_| r.string())
                .collect::<Result<_, _>>()?,
            body: r.string()?,
            io_observation_id: r.opt_string()?,
        };
        let io = io.resolve(&row.body)?;
        batch.traces.push(Prepared { id, patch, io, row });
    }
    for _ in 0..r.len()? {
        let (id, patch, io) = r.prepared_head()?;
        let row = ObservationRow {
            trace_id: r.opt_string()?,
            parent_observation_id: r.opt_string()?,
            kind: r.string()?,
            name: r.opt_string()?,
            level: r.string()?,
            version: r.opt_string()?,
            environment: r.string()?,
            model: r.opt_string()?,
            start_time: r.opt_i64()?,
            end_time: r.opt_i64()?,
            total_cost: r.opt(|r| {
                Ok(f64::from_le_bytes(
                    r.take(8)?.try_into().map_err(|_| "cost")?,
                ))
            })?,
            body: r.string()?,
            derived: r.string()?,
        };
        let io = io.resolve(&row.body)?;
        batch.observations.push(Prepared { id, patch, io, row });
    }
    for _ in 0..r.len()? {
        let id = r.string()?;
        let patch = json_map(&r.string()?)?;
        batch.scores.push((id, patch));
    }
    Ok((project_id, batch))
}

/// A patch as JSON text, serialised from the map in place.
fn json_text(patch: &JsonMap) -> String {
    serde_json::to_string(patch).unwrap_or_else(|_| "{}".into())
}

fn json_map(text: &str) -> Result<JsonMap, String> {
    serde_json::from_str(text).map_err(|error| format!("a patch is not a JSON object: {error}"))
}

struct Decoder<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Decoder<'_> {
    fn take(&mut self, len: usize) -> Result<&[u8], String> {
        let bytes = self
            .bytes
            .get(self.at..self.at + len)
            .ok_or_else(|| "the record ends early".to_owned())?;
        self.at += len;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn len(&mut self) -> Result<usize, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| "length")?) as usize)
    }

    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(
            self.take(8)?.try_into().map_err(|_| "integer")?,
        ))
    }

    /// A value written by `Encoder::opt`.
    fn opt<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Result<T, String>,
    ) -> Result<Option<T>, String> {
        match self.u8()? {
            1 => read(self).map(Some),
            _ => Ok(None),
        }
    }

    fn opt_i64(&mut self) -> Result<Option<i64>, String> {
        self.opt(Self::i64)
    }

    fn string(&mut self) -> Result<String, String> {
        let len = self.len()?;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| "text is not UTF-8".to_owned())
    }

    fn opt_string(&mut self) -> Result<Option<String>, String> {
        self.opt(Self::string)
    }

    fn prepared_head(&mut self) -> Result<(String, Option<JsonMap>, IoSource), String> {
        let id = self.string()?;
        let patch = self.opt_string()?.map(|text| json_map(&text)).transpose()?;
        let io = IoSource {
            input: self.io_text()?,
            output: self.io_text()?,
            from_observation: self.opt_string()?,
        };
        Ok((id, patch, io))
    }

    /// See [`Encoder::io_text`].
    fn io_text(&mut self) -> Result<TextSource, String> {
        Ok(match self.u8()? {
            0 => TextSource::Absent,
            1 => TextSource::Text(self.string()?),
            2 => TextSource::InBody(self.len()?, self.len()?),
            tag => return Err(format!("unknown input/output tag {tag}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::Pricing;
    use crate::ingest::{trace_upsert, Upsert, WriteBatch};
    use serde_json::{json, Value};

    fn batch() -> PreparedBatch {
        let map = |value: Value| value.as_object().cloned().unwrap();
        let mut trace = trace_upsert(
            map(json!({"id": "t", "name": "n", "tags": ["a"], "input": {"q": 1}})),
            chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap(),
        )
        .unwrap();
        trace.io.from_observation = Some("o".into());
        let observation = Upsert::new(
            "o".into(),
            map(
                json!({"id": "o", "traceId": "t", "model": "gpt-4o", "usageDetails": {"input": 3}}),
            ),
        );
        let score = Upsert::new("s".into(), map(json!({"id": "s", "value": 1.5})));
        PreparedBatch::new(
            WriteBatch {
                traces: vec![trace],
                observations: vec![observation],
                scores: vec![score],
            },
            &Pricing::langfuse_defaults(),
            7,
        )
    }

    #[test]
    fn records_decode_to_what_was_encoded() {
        let batch = batch();
        let mut payload = Vec::new();
        encode("p1", &batch, &mut payload);
        let (project, decoded) = decode(&payload).unwrap();
        assert_eq!(project, "p1");
        assert_eq!(decoded, batch);
        assert!(decode(&payload[..payload.len() - 1]).is_err());
        assert!(
            payload.len() <= encoded_size_hint(&batch),
            "{}",
            payload.len()
        );
    }

    fn occurrences(payload: &[u8], text: &str) -> usize {
        payload
            .windows(text.len())
            .filter(|window| *window == text.as_bytes())
            .count()
    }

    #[test]
    fn an_input_or_output_the_body_holds_is_logged_once() {
        let map = |value: Value| value.as_object().cloned().unwrap();
        let trace = trace_upsert(
            map(json!({"id": "t", "input": "question-Q", "output": {"answer": "A-42"}})),
            chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap(),
        )
        .unwrap();
        let observation = crate::ingest::observation_upsert(
            map(json!({"id": "o", "traceId": "t", "input": ["only-input-I"]})),
            "SPAN",
            false,
            chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap(),
        )
        .unwrap();
        let batch = PreparedBatch::new(
            WriteBatch {
                traces: vec![trace],
                observations: vec![observation],
                scores: vec![],
            },
            &Pricing::langfuse_defaults(),
            7,
        );
        let mut payload = Vec::new();
        encode("p1", &batch, &mut payload);
        for text in ["question-Q", "A-42", "only-input-I"] {
            assert_eq!(occurrences(&payload, text), 1, "{text}");
        }
        assert_eq!(decode(&payload).unwrap().1, batch);

        // A body that holds them elsewhere, or not as they are: the texts go in full.
        let mut moved = batch.clone();
        let body = &mut moved.traces[0].row.body;
        *body = format!("{},\"name\":\"n\"}}", &body[..body.len() - 1]);
        moved.observations[0].row.body = r#"{"id":"o","input":["other"]}"#.into();
        let mut payload = Vec::new();
        encode("p1", &moved, &mut payload);
        assert_eq!(occurrences(&payload, "question-Q"), 2);
        assert_eq!(occurrences(&payload, "only-input-I"), 1);
        assert_eq!(decode(&payload).unwrap().1, moved);
    }

    #[test]
    fn spans_from_otlp_log_their_input_and_output_once() {
        let export = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": "0123456789abcdef0123456789abcdef",
            "spanId": "0123456789abcdef",
            "name": "root",
            "startTimeUnixNano": "1767225600000000000",
            "endTimeUnixNano": "1767225601000000000",
            "attributes": [
                {"key": "langfuse.observation.input",
                 "value": {"stringValue": "{\"q\": \"otlp-input-X\"}"}},
                {"key": "langfuse.observation.output",
                 "value": {"stringValue": "\"otlp-output-Y\""}}
            ]
        }]}]}]});
        let prepared = crate::ingest::otlp::prepare(
            "application/json",
            None,
            export.to_string().as_bytes(),
            &Pricing::langfuse_defaults(),
            7,
        )
        .unwrap();
        assert!(prepared.errors.is_empty());
        let mut payload = Vec::new();
        encode("p1", &prepared.batch, &mut payload);
        for text in ["otlp-input-X", "otlp-output-Y"] {
            assert_eq!(occurrences(&payload, text), 1, "{text}");
        }
        assert_eq!(decode(&payload).unwrap().1, prepared.batch);
    }

    #[test]
    fn a_reference_outside_its_body_is_a_corrupt_record() {
        let mut payload = Vec::new();
        let mut w = Encoder(&mut payload);
        w.str("p1");
        w.len(0);
        w.len(1);
        w.str("o");
        w.u8(0);
        w.u8(2);
        w.len(5);
        w.len(100);
        w.u8(0);
        w.u8(0);
        for _ in 0..2 {
            w.u8(0);
        }
        w.str("SPAN");
        w.u8(0);
        w.str("DEFAULT");
        w.u8(0);
        w.str("default");
        for _ in 0..4 {
            w.u8(0);
        }
        w.str("{}");
        w.str("{}");
        w.len(0);
        let error = decode(&payload).err().unwrap();
        assert!(error.contains("outside its body"), "{error}");
    }

    #[test]
    fn reopening_returns_unapplied_records_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("axion.db");
        let (log, pending) = IngestLog::open(&database, 0).unwrap();
        assert!(pending.is_empty());
        let mut record = Record::new(Vec::new(), 0);
        encode("p1", &batch(), record.payload());
        for _ in 0..3 {
            let seq = log.append(&mut record, |_| Ok(())).unwrap();
            log.sync_to(seq).unwrap();
        }
        assert_eq!(log.last_seq(), 3);
        let path = log.lock().current_path.clone();
        let record_len = record.bytes().len();
        assert_eq!(record_len % BLOCK, 0, "records fill whole blocks");
        drop(log);
        // A crash in the middle of a fourth record.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[9, 9, 9, 9, 9]).unwrap();
        drop(file);

        let (log, pending) = IngestLog::open(&database, 1).unwrap();
        assert_eq!(
            pending.iter().map(|p| p.seq).collect::<Vec<_>>(),
            [2, 3],
            "records after the applied one"
        );
        assert_eq!(pending[0].batch, batch());
        assert_eq!(log.last_seq(), 3);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len() as usize,
            3 * record_len,
            "the torn tail is cut"
        );
        log.release_applied(3, || Ok(()));
        assert!(!path.exists(), "applied segments are deleted");
    }

    /// Every payload length pads to whole blocks, direct or buffered, and reads back; so do
    /// records of earlier versions, which had no padding.
    #[test]
    fn padded_and_unpadded_records_read_back() {
        for try_direct in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let database = dir.path().join("axion.db");
            let (log, _) = IngestLog::open_with(&database, 0, try_direct).unwrap();
            if !try_direct {
                assert!(!log.lock().direct);
            }
            let legacy_path = segment_path(&database, 1_000);
            let mut legacy = Vec::new();
            // Lengths around every padding case: none, a whole padding record, and a gap
            // too small for a padding header (which then takes the next block too).
            let lengths = [
                0,
                1,
                BLOCK - 2 * HEADER_BYTES,
                BLOCK - HEADER_BYTES - 3,
                BLOCK - HEADER_BYTES,
                3 * BLOCK + 5,
            ];
            for (index, &len) in lengths.iter().enumerate() {
                let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
                let mut record = Record::new(Vec::new(), len);
                record.payload().extend_from_slice(&payload);
                let seq = log.append(&mut record, |_| Ok(())).unwrap();
                assert_eq!(seq, index as u64 + 1);
                assert_eq!(record.payload_len(), len);
                assert_eq!(record.bytes().len() % BLOCK, 0, "{len}");
                assert!(
                    record.bytes().len() < HEADER_BYTES + len + BLOCK + HEADER_BYTES,
                    "{len}"
                );
                assert_eq!(record.bytes().as_ptr().align_offset(BLOCK), 0);
                legacy.extend_from_slice(&header(&payload, 1_000 + index as u64));
                legacy.extend_from_slice(&payload);
            }
            log.sync_to(lengths.len() as u64).unwrap();
            let path = log.lock().current_path.clone();
            drop(log);
            std::fs::write(&legacy_path, &legacy).unwrap();
            let (records, good_len) = read_segment(&path).unwrap();
            assert_eq!(good_len, std::fs::metadata(&path).unwrap().len());
            let (legacy_records, _) = read_segment(&legacy_path).unwrap();
            for (index, &len) in lengths.iter().enumerate() {
                let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
                assert_eq!(records[index], (index as u64 + 1, payload.clone()), "{len}");
                assert_eq!(
                    legacy_records[index],
                    (1_000 + index as u64, payload),
                    "{len}"
                );
            }
            assert_eq!(records.len(), lengths.len(), "padding records are skipped");
        }
    }

    /// A direct write the file system refuses (here: memory off the block boundary) goes
    /// through buffered, and the segment stays buffered.
    #[test]
    fn a_refused_direct_write_falls_back_to_buffered() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("axion.db");
        let (log, _) = IngestLog::open(&database, 0).unwrap();
        let direct = log.lock().direct;
        let mut record = Record::new(Vec::new(), 0);
        encode("p1", &batch(), record.payload());
        record.seal();
        record.buffer.insert(record.start, 0);
        record.start += 1;
        assert_ne!(record.bytes().as_ptr().align_offset(BLOCK), 0);
        let seq = log.append(&mut record, |_| Ok(())).unwrap();
        log.sync_to(seq).unwrap();
        assert!(!log.lock().direct);
        let path = log.lock().current_path.clone();
        drop(log);
        let (records, _) = read_segment(&path).unwrap();
        assert_eq!(records.len(), 1, "direct at first: {direct}");
        assert_eq!(decode(&records[0].1).unwrap().1, batch());
    }

    /// A payload that outgrows its buffer moves it; the sealed record is aligned again.
    #[test]
    fn a_record_whose_buffer_moved_is_aligned_again() {
        let mut record = Record::new(Vec::new(), 0);
        let payload: Vec<u8> = (0..10 * BLOCK + 7).map(|i| (i % 13) as u8).collect();
        for chunk in payload.chunks(100) {
            record.payload().extend_from_slice(chunk);
        }
        record.seal();
        assert_eq!(record.bytes().as_ptr().align_offset(BLOCK), 0);
        assert_eq!(
            &record.bytes()[HEADER_BYTES..HEADER_BYTES + payload.len()],
            &payload[..]
        );
        assert_eq!(record.payload_len(), payload.len());
    }
}
