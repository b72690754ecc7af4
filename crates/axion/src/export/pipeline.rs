//! The batch pipeline: a bounded lock-free queue in front of a background worker that
//! serialises and exports. The application's thread only pushes into the queue; when the queue
//! is full the record is dropped and counted (never blocking the host), with one warning.
//! Batch jobs that would rather wait than lose spans opt in to backpressure with
//! [`PipelineConfig::max_block`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};

use crossbeam_queue::ArrayQueue;
use std::time::{Duration, Instant};

use crate::config::{warn, Settings};
use crate::provider::{
    BaseTracer, ExportStats, FlushReport, RawObservation, RawRecord, RawRoot, RawTrace,
};
use crate::{Error, Result};

/// Sends batches somewhere. Runs on the pipeline's worker thread, so it may block and
/// serialise at leisure.
///
/// ```
/// use axion::export::{Delivery, Exporter, PipelineConfig, PipelineTracer};
/// use axion::RawRecord;
///
/// /// Encodes on the worker; the "sending" runs on a sender thread, overlapping the next batch.
/// struct Lines;
///
/// impl Exporter for Lines {
///     fn export(&mut self, batch: Vec<RawRecord>) -> axion::Result<()> {
///         // The sequential path (`max_concurrent_exports == 1`): encode and send right here.
///         self.export_deferred(batch)?.map_or(Ok(()), Delivery::run)
///     }
///     fn export_deferred(&mut self, batch: Vec<RawRecord>) -> axion::Result<Option<Delivery>> {
///         let body: Vec<String> = batch
///             .into_iter()
///             .map(|record| serde_json::to_string(&record.into_model()).unwrap_or_default())
///             .collect();
///         Ok(Some(Delivery::new(move || {
///             assert!(!body.is_empty());
///             Ok(())
///         })))
///     }
/// }
///
/// let provider = PipelineTracer::new("lines", Lines, PipelineConfig::default()).unwrap();
/// let tracer = axion::Tracer::builder(axion::MetadataType::Base)
///     .provider(std::sync::Arc::new(provider))
///     .build();
/// drop(tracer.span("work"));
/// let report = tracer.flush(std::time::Duration::from_secs(5)).unwrap();
/// assert_eq!(report.dropped_total, 0);
/// ```
pub trait Exporter: Send + 'static {
    /// Delivers one batch. An error drops the batch (it is counted as failed).
    fn export(&mut self, batch: Vec<RawRecord>) -> Result<()>;

    /// Encodes `batch` here and hands back the sending of it, which the pipeline runs on a
    /// sender thread while the worker encodes the next batch (at most
    /// [`PipelineConfig::max_concurrent_exports`] at once). Only for backends that accept
    /// batches in any order (OTLP). The default does the whole export here and returns `None`.
    fn export_deferred(&mut self, batch: Vec<RawRecord>) -> Result<Option<Delivery>> {
        self.export(batch).map(|()| None)
    }

    /// Called once when the pipeline shuts down, after the last batch.
    fn shutdown(&mut self) {}
}

/// The network half of an export (see [`Exporter::export_deferred`]): runs once, on a sender
/// thread, and says whether the batch was delivered.
pub struct Delivery(Box<dyn FnOnce() -> Result<()> + Send>);

impl Delivery {
    /// Wraps the sending of one encoded batch.
    pub fn new(send: impl FnOnce() -> Result<()> + Send + 'static) -> Self {
        Self(Box::new(send))
    }

    /// Sends now, on this thread (what a sender thread does with it).
    pub fn run(self) -> Result<()> {
        (self.0)()
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Delivery")
    }
}

/// Sizes and timings of a [`BatchPipeline`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PipelineConfig {
    /// Entries the queue holds before new ones are dropped (`AXION_EXPORT_QUEUE_SIZE`, 8192).
    /// An entry is one record, or a root span with its trace.
    pub max_queue_size: usize,
    /// Records per export call at most (`AXION_EXPORT_BATCH_SIZE`, 512; one more when a root
    /// span and its trace straddle the limit).
    pub max_batch_size: usize,
    /// Longest wait before a partial batch is exported (`AXION_EXPORT_INTERVAL_MS`, 1000).
    pub scheduled_delay: Duration,
    /// How long a span's end may wait for room in a full queue before its record is dropped
    /// (`AXION_EXPORT_BLOCK_MS`, 0: never wait). For batch jobs such as evaluations, where
    /// every span matters more than latency. While the worker makes no progress (backend
    /// down), records are dropped at once instead of each waiting again.
    pub max_block: Duration,
    /// Batches being sent at once at most (`AXION_EXPORT_MAX_CONCURRENT`, 2), for exporters
    /// that defer their sending ([`Exporter::export_deferred`]); the worker encodes the next
    /// batch meanwhile. With a remote backend, one request at a time caps throughput at one
    /// batch per round trip.
    pub max_concurrent_exports: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            max_queue_size: 8192,
            max_batch_size: 512,
            scheduled_delay: Duration::from_millis(1000),
            max_block: Duration::ZERO,
            max_concurrent_exports: 2,
        }
    }
}

impl PipelineConfig {
    /// The defaults, overridden by `AXION_EXPORT_*` settings; a bad value is an error naming it.
    pub fn from_settings(settings: &Settings) -> Result<Self> {
        let defaults = Self::default();
        let positive = |name: &str, default: usize| -> Result<usize> {
            let value = settings.parse_or(name, default)?;
            if value == 0 {
                return Err(Error::InvalidSetting {
                    setting: name.into(),
                    value: "0".into(),
                    reason: "must be at least 1".into(),
                });
            }
            Ok(value)
        };
        Ok(Self {
            max_queue_size: positive("AXION_EXPORT_QUEUE_SIZE", defaults.max_queue_size)?,
            max_batch_size: positive("AXION_EXPORT_BATCH_SIZE", defaults.max_batch_size)?,
            scheduled_delay: Duration::from_millis(positive(
                "AXION_EXPORT_INTERVAL_MS",
                defaults.scheduled_delay.as_millis() as usize,
            )? as u64),
            max_block: Duration::from_millis(settings.parse_or("AXION_EXPORT_BLOCK_MS", 0u64)?),
            max_concurrent_exports: positive(
                "AXION_EXPORT_MAX_CONCURRENT",
                defaults.max_concurrent_exports,
            )?,
        })
    }
}

/// How often a worker that has seen records lately looks at the queue.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

enum Control {
    Flush(Sender<u64>),
    Shutdown(Sender<u64>),
}

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    exported: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_export_failed: AtomicU64,
    dropped_after_shutdown: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> ExportStats {
        ExportStats {
            queued: self.queued.load(Ordering::Relaxed),
            exported: self.exported.load(Ordering::Relaxed),
            dropped_queue_full: self.dropped_queue_full.load(Ordering::Relaxed),
            dropped_export_failed: self.dropped_export_failed.load(Ordering::Relaxed),
            dropped_after_shutdown: self.dropped_after_shutdown.load(Ordering::Relaxed),
        }
    }

    fn pending(&self) -> u64 {
        let stats = self.snapshot();
        stats
            .queued
            .saturating_sub(stats.exported + stats.dropped_export_failed)
    }
}

/// One queue slot: a record, or a root span with its trace (two records in one allocation,
/// split by the worker).
enum Entry {
    Record(RawRecord),
    Root(Box<RawRoot>),
    /// A root span and its trace's update, if any (see [`BaseTracer::export_root_span`]).
    RootSpan(Box<RawObservation>, Option<Box<RawTrace>>),
}

impl Entry {
    fn records(&self) -> u64 {
        match self {
            Entry::Record(_) => 1,
            Entry::Root(_) | Entry::RootSpan(..) => 2,
        }
    }
}

/// What the application's threads and the worker share.
struct Shared {
    /// The provider's name, for thread names and messages.
    name: String,
    queue: ArrayQueue<Entry>,
    counters: Counters,
    /// Set when a producer has woken the worker and it has not run yet, so that a burst
    /// costs one wake-up, not one per record.
    woken: AtomicBool,
    /// Records the worker has taken out of the queue (see [`Worker::taken`]), for producers
    /// to tell how many wait.
    taken: AtomicU64,
    /// Set when a producer waited `max_block` in vain; cleared by the worker's next finished
    /// export. While set, full-queue records are dropped without waiting.
    stalled: AtomicBool,
    /// Deliveries handed to sender threads and not finished yet.
    in_flight: AtomicU64,
    warned_failure: AtomicBool,
}

impl Shared {
    /// Counts a finished export of `count` records (on the worker or a sender thread).
    fn finished(&self, count: u64, result: Result<()>) {
        let name = &self.name;
        self.stalled.store(false, Ordering::Relaxed);
        match result {
            Ok(()) => {
                self.counters.exported.fetch_add(count, Ordering::Relaxed);
            }
            Err(error) => {
                self.counters
                    .dropped_export_failed
                    .fetch_add(count, Ordering::Relaxed);
                if !self.warned_failure.swap(true, Ordering::Relaxed) {
                    warn(&format!(
                        "{name} export failed, {count} records dropped: {error}"
                    ));
                } else {
                    log::debug!("axion: {name} export failed, {count} records dropped: {error}");
                }
            }
        }
    }
}

/// A bounded queue and a worker thread that batches records into an [`Exporter`].
///
/// Pushing is a lock-free queue insert. While records flow, the worker polls the queue every
/// few milliseconds, so a producer makes a system call to wake it only when records pile up
/// faster than that (two batches waiting) or on flush; a quiet worker wakes by itself every
/// `scheduled_delay`. The worker is a plain thread, so the pipeline works the same in a sync
/// program and inside any async runtime (a current-thread one included), and never needs the
/// host's executor.
pub struct BatchPipeline {
    name: String,
    shared: Arc<Shared>,
    control: Sender<Control>,
    worker: Mutex<Option<JoinHandle<()>>>,
    worker_thread: Thread,
    max_batch_size: usize,
    max_block: Duration,
    shut_down: AtomicBool,
    warned_full: AtomicBool,
}

impl BatchPipeline {
    /// Starts the worker thread.
    pub fn start<E: Exporter>(name: &str, exporter: E, config: PipelineConfig) -> Result<Self> {
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            queue: ArrayQueue::new(config.max_queue_size),
            counters: Counters::default(),
            woken: AtomicBool::new(false),
            taken: AtomicU64::new(0),
            stalled: AtomicBool::new(false),
            in_flight: AtomicU64::new(0),
            warned_failure: AtomicBool::new(false),
        });
        let (control, control_rx) = mpsc::channel();
        let max_batch_size = config.max_batch_size;
        let max_block = config.max_block;
        let worker = Worker {
            exporter,
            shared: shared.clone(),
            control: control_rx,
            config,
            senders: None,
            taken: 0,
        };
        let handle = std::thread::Builder::new()
            .name(format!("axion-export-{name}"))
            .spawn(move || worker.run())
            .map_err(|source| Error::Output {
                target: format!("{name} export thread"),
                source,
            })?;
        Ok(Self {
            name: name.to_owned(),
            shared,
            control,
            worker_thread: handle.thread().clone(),
            worker: Mutex::new(Some(handle)),
            max_batch_size,
            max_block,
            shut_down: AtomicBool::new(false),
            warned_full: AtomicBool::new(false),
        })
    }

    /// Queues a record without blocking; drops and counts it when the queue is full.
    pub fn push(&self, record: RawRecord) {
        self.push_entry(Entry::Record(record));
    }

    /// Queues a root span and its trace as one entry (see [`BaseTracer::export_root`]).
    pub fn push_root(&self, root: Box<RawRoot>) {
        self.push_entry(Entry::Root(root));
    }

    /// Queues a root span and its trace's update as one entry (see
    /// [`BaseTracer::export_root_span`]).
    pub fn push_root_span(&self, observation: Box<RawObservation>, trace: Option<Box<RawTrace>>) {
        self.push_entry(Entry::RootSpan(observation, trace));
    }

    fn push_entry(&self, entry: Entry) {
        let counters = &self.shared.counters;
        let records = entry.records();
        if self.shut_down.load(Ordering::Relaxed) {
            counters
                .dropped_after_shutdown
                .fetch_add(records, Ordering::Relaxed);
            return;
        }
        match self.shared.queue.push(entry) {
            Ok(()) => {
                // Checked once per batch's worth of records: the running count is ours alone,
                // and the worker's side of it is read only here, not on every span.
                let before = counters.queued.fetch_add(records, Ordering::Relaxed);
                let batch = self.max_batch_size as u64;
                if (before + records) / batch != before / batch {
                    self.wake_if_behind(before + records);
                }
            }
            Err(entry) => {
                if !self.max_block.is_zero() && self.wait_for_room(entry) {
                    return;
                }
                counters
                    .dropped_queue_full
                    .fetch_add(records, Ordering::Relaxed);
                if !self.warned_full.swap(true, Ordering::Relaxed) {
                    warn(&format!(
                        "the {} export queue is full; records are being dropped (counted in Tracer::stats().export). \
                         Raise AXION_EXPORT_QUEUE_SIZE or check that the backend keeps up",
                        self.name
                    ));
                }
            }
        }
    }

    /// Wakes the worker when two batches wait: it polls every [`POLL_INTERVAL`] while records
    /// flow, so below that rate it finds them on its own, without a system call here (one
    /// was a thread's longest stall in a steady stream of spans).
    fn wake_if_behind(&self, queued: u64) {
        let shared = &self.shared;
        let waiting = queued.saturating_sub(shared.taken.load(Ordering::Relaxed));
        if waiting >= 2 * self.max_batch_size as u64 && !shared.woken.swap(true, Ordering::AcqRel) {
            self.worker_thread.unpark();
        }
    }

    fn request(
        &self,
        make: impl FnOnce(Sender<u64>) -> Control,
        timeout: Duration,
    ) -> Result<FlushReport> {
        let (reply, reply_rx) = mpsc::channel();
        if self.control.send(make(reply)).is_err() {
            return Err(Error::ShutDown);
        }
        self.worker_thread.unpark();
        match reply_rx.recv_timeout(timeout) {
            Ok(exported) => Ok(self.report(exported)),
            Err(RecvTimeoutError::Timeout) => Err(Error::FlushTimeout {
                pending: self.shared.counters.pending(),
                timeout,
            }),
            Err(RecvTimeoutError::Disconnected) => Err(Error::ShutDown),
        }
    }

    fn report(&self, exported: u64) -> FlushReport {
        FlushReport {
            exported,
            dropped_total: self.shared.counters.snapshot().dropped(),
        }
    }

    /// Exports everything queued before the call, waiting at most `timeout`.
    pub fn flush(&self, timeout: Duration) -> Result<FlushReport> {
        if self.shut_down.load(Ordering::Relaxed) {
            return Ok(self.report(0));
        }
        self.request(Control::Flush, timeout)
    }

    /// Exports everything queued, stops the worker, and drops (counting) later records.
    pub fn shutdown(&self, timeout: Duration) -> Result<FlushReport> {
        if self.shut_down.swap(true, Ordering::Relaxed) {
            return Ok(self.report(0));
        }
        let report = self.request(Control::Shutdown, timeout);
        if report.is_ok() {
            if let Some(handle) = self
                .worker
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take()
            {
                let _ = handle.join();
            }
        }
        report
    }

    /// The pipeline's counters.
    pub fn stats(&self) -> ExportStats {
        self.shared.counters.snapshot()
    }
}

impl Drop for BatchPipeline {
    fn drop(&mut self) {
        if let Err(error) = self.shutdown(Duration::from_secs(5)) {
            warn(&format!(
                "{} exporter did not finish at shutdown: {error}",
                self.name
            ));
        }
    }
}

struct Worker<E> {
    exporter: E,
    shared: Arc<Shared>,
    control: mpsc::Receiver<Control>,
    config: PipelineConfig,
    senders: Option<Senders>,
    /// Records taken out of the queue so far: with the producers' running count, how many
    /// records wait (the queue's own length counts entries, and a root entry is two records).
    taken: u64,
}

/// Threads that run deferred deliveries. The hand-off is a rendezvous: when every sender is
/// busy the worker waits, so at most `max_concurrent_exports` batches are in flight.
struct Senders {
    deliveries: mpsc::SyncSender<(Delivery, u64)>,
    threads: Vec<JoinHandle<()>>,
}

impl Senders {
    fn start(count: usize, shared: &Arc<Shared>) -> Option<Self> {
        let (deliveries, receiver) = mpsc::sync_channel::<(Delivery, u64)>(0);
        let receiver = Arc::new(Mutex::new(receiver));
        let worker = std::thread::current();
        let mut threads = Vec::with_capacity(count);
        for index in 0..count {
            let receiver = Arc::clone(&receiver);
            let shared = Arc::clone(shared);
            let worker = worker.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("axion-send-{}-{index}", shared.name))
                .spawn(move || loop {
                    let next = receiver
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .recv();
                    let Ok((delivery, count)) = next else { return };
                    // A panicking delivery counts as a failed one: the in-flight count must
                    // still come down, or every later flush would wait for it.
                    let result =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| delivery.run()))
                            .unwrap_or_else(|_| {
                                Err(Error::Export {
                                    backend: shared.name.clone(),
                                    reason: "the delivery panicked".into(),
                                })
                            });
                    shared.finished(count, result);
                    shared.in_flight.fetch_sub(1, Ordering::AcqRel);
                    worker.unpark();
                });
            match spawned {
                Ok(handle) => threads.push(handle),
                Err(error) => log::debug!("axion: cannot start a sender thread: {error}"),
            }
        }
        (!threads.is_empty()).then_some(Self {
            deliveries,
            threads,
        })
    }

    fn stop(self) {
        drop(self.deliveries);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

impl BatchPipeline {
    /// Backpressure: wakes the worker and retries until the record fits or `max_block` has
    /// passed. `false` when it is to be dropped.
    fn wait_for_room(&self, mut entry: Entry) -> bool {
        let shared = &self.shared;
        if shared.stalled.load(Ordering::Relaxed) {
            return false;
        }
        let deadline = Instant::now() + self.max_block;
        let mut pause = Duration::from_micros(20);
        loop {
            if !shared.woken.swap(true, Ordering::AcqRel) {
                self.worker_thread.unpark();
            }
            std::thread::sleep(pause);
            let records = entry.records();
            match shared.queue.push(entry) {
                Ok(()) => {
                    shared.counters.queued.fetch_add(records, Ordering::Relaxed);
                    return true;
                }
                Err(back) => entry = back,
            }
            if Instant::now() >= deadline {
                shared.stalled.store(true, Ordering::Relaxed);
                return false;
            }
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }
}

impl<E: Exporter> Worker<E> {
    fn run(mut self) {
        let mut next_export = Instant::now() + self.config.scheduled_delay;
        // When records were last seen waiting: until `scheduled_delay` later the worker
        // polls, then it sleeps until its next scheduled export (or a producer's wake-up).
        let mut last_seen = Instant::now();
        loop {
            self.shared.woken.store(false, Ordering::Release);
            let now = Instant::now();
            if self.waiting() > 0 {
                last_seen = now;
            }
            if now >= next_export {
                self.drain();
                next_export = now + self.config.scheduled_delay;
            } else {
                while self.waiting() >= self.config.max_batch_size as u64 {
                    self.export_one_batch();
                }
            }
            loop {
                match self.control.try_recv() {
                    Ok(Control::Flush(reply)) => {
                        let _ = reply.send(self.drain());
                    }
                    Ok(Control::Shutdown(reply)) => {
                        let exported = self.drain();
                        self.stop();
                        let _ = reply.send(exported);
                        return;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        self.drain();
                        self.stop();
                        return;
                    }
                }
            }
            let mut wait = next_export.saturating_duration_since(Instant::now());
            if last_seen.elapsed() < self.config.scheduled_delay {
                wait = wait.min(POLL_INTERVAL);
            }
            if !self.shared.woken.load(Ordering::Acquire)
                && self.waiting() < self.config.max_batch_size as u64
            {
                std::thread::park_timeout(wait);
            }
        }
    }

    /// Exports everything queued and waits for what is in flight; returns how many records
    /// were delivered.
    fn drain(&mut self) -> u64 {
        let before = self.shared.counters.exported.load(Ordering::Relaxed);
        while self.export_one_batch() > 0 {}
        while self.shared.in_flight.load(Ordering::Acquire) > 0 {
            // Senders unpark the worker when they finish; the timeout only guards a lost wake.
            std::thread::park_timeout(Duration::from_millis(10));
        }
        self.shared.counters.exported.load(Ordering::Relaxed) - before
    }

    /// Records in the queue, counted as producers count them when they wake the worker.
    fn waiting(&self) -> u64 {
        let queued = self.shared.counters.queued.load(Ordering::Acquire);
        queued.saturating_sub(self.taken)
    }

    fn stop(&mut self) {
        if let Some(senders) = self.senders.take() {
            senders.stop();
        }
        self.exporter.shutdown();
    }

    fn export_one_batch(&mut self) -> usize {
        let mut batch = Vec::with_capacity(
            self.config
                .max_batch_size
                .min(self.shared.queue.len().max(1)),
        );
        while batch.len() < self.config.max_batch_size {
            match self.shared.queue.pop() {
                Some(Entry::Record(record)) => batch.push(record),
                Some(Entry::Root(root)) => batch.extend(root.into_records()),
                Some(Entry::RootSpan(observation, trace)) => {
                    batch.extend(crate::recycle::split_root_span(observation, trace))
                }
                None => break,
            }
        }
        let count = batch.len();
        self.taken += count as u64;
        self.shared.taken.store(self.taken, Ordering::Relaxed);
        if count > 0 {
            self.export(batch);
        }
        count
    }

    fn export(&mut self, records: Vec<RawRecord>) {
        let count = records.len() as u64;
        if self.config.max_concurrent_exports <= 1 {
            let result = self.exporter.export(records);
            self.shared.finished(count, result);
            return;
        }
        match self.exporter.export_deferred(records) {
            Ok(Some(delivery)) => self.dispatch(delivery, count),
            Ok(None) => self.shared.finished(count, Ok(())),
            Err(error) => self.shared.finished(count, Err(error)),
        }
    }

    /// Hands a delivery to a sender thread, waiting for one to be free.
    fn dispatch(&mut self, delivery: Delivery, count: u64) {
        if self.senders.is_none() {
            self.senders = Senders::start(self.config.max_concurrent_exports, &self.shared);
        }
        let Some(senders) = &self.senders else {
            // No thread could be started: send here.
            return self.shared.finished(count, delivery.run());
        };
        self.shared.in_flight.fetch_add(1, Ordering::AcqRel);
        if let Err(mpsc::SendError((delivery, count))) = senders.deliveries.send((delivery, count))
        {
            self.shared.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.shared.finished(count, delivery.run());
        }
    }
}

/// A provider made of a [`BatchPipeline`] and an [`Exporter`]: the shape of every built-in
/// provider that ships records, and the easy way to write your own.
pub struct PipelineTracer {
    name: String,
    pipeline: BatchPipeline,
}

impl PipelineTracer {
    /// Starts a pipeline for `exporter`.
    pub fn new<E: Exporter>(name: &str, exporter: E, config: PipelineConfig) -> Result<Self> {
        Ok(Self {
            name: name.to_owned(),
            pipeline: BatchPipeline::start(name, exporter, config)?,
        })
    }

    /// A provider for `exporter` with the pipeline sized by `AXION_EXPORT_*` in `settings`:
    /// what a provider factory returns.
    pub fn provider<E: Exporter>(
        name: &str,
        exporter: E,
        settings: &Settings,
    ) -> Result<Arc<dyn BaseTracer>> {
        let config = PipelineConfig::from_settings(settings)?;
        Ok(Arc::new(Self::new(name, exporter, config)?))
    }
}

impl BaseTracer for PipelineTracer {
    fn name(&self) -> &str {
        &self.name
    }
    fn export(&self, record: RawRecord) {
        self.pipeline.push(record);
    }
    fn export_root(&self, root: Box<RawRoot>) {
        self.pipeline.push_root(root);
    }
    fn export_root_span(&self, observation: Box<RawObservation>, trace: Option<Box<RawTrace>>) {
        self.pipeline.push_root_span(observation, trace);
    }
    fn flush(&self, timeout: Duration) -> Result<FlushReport> {
        self.pipeline.flush(timeout)
    }
    fn shutdown(&self, timeout: Duration) -> Result<FlushReport> {
        self.pipeline.shutdown(timeout)
    }
    fn export_stats(&self) -> ExportStats {
        self.pipeline.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Defers every send: each delivery takes a while, and says whether it fails.
    struct Slow {
        in_flight: Arc<AtomicUsize>,
        most_at_once: Arc<AtomicUsize>,
        fail_every: usize,
        batches: usize,
        panic_third: bool,
    }

    impl Exporter for Slow {
        fn export(&mut self, batch: Vec<RawRecord>) -> Result<()> {
            self.export_deferred(batch)?.map_or(Ok(()), Delivery::run)
        }

        fn export_deferred(&mut self, batch: Vec<RawRecord>) -> Result<Option<Delivery>> {
            drop(batch);
            self.batches += 1;
            let fails = self.batches % self.fail_every == 0;
            let panics = self.panic_third && self.batches == 3;
            let in_flight = Arc::clone(&self.in_flight);
            let most = Arc::clone(&self.most_at_once);
            Ok(Some(Delivery::new(move || {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(30));
                in_flight.fetch_sub(1, Ordering::SeqCst);
                if panics {
                    panic!("injected panic in a delivery");
                }
                if fails {
                    Err(Error::Export {
                        backend: "slow".into(),
                        reason: "injected".into(),
                    })
                } else {
                    Ok(())
                }
            })))
        }
    }

    fn run(concurrent: usize) -> (ExportStats, FlushReport, usize) {
        let most = Arc::new(AtomicUsize::new(0));
        let exporter = Slow {
            in_flight: Arc::new(AtomicUsize::new(0)),
            most_at_once: Arc::clone(&most),
            fail_every: 4,
            batches: 0,
            panic_third: concurrent > 1,
        };
        let config = PipelineConfig {
            max_batch_size: 10,
            max_concurrent_exports: concurrent,
            ..PipelineConfig::default()
        };
        let provider = Arc::new(PipelineTracer::new("slow", exporter, config).unwrap());
        let tracer = crate::Tracer::builder(crate::MetadataType::Base)
            .provider(provider.clone())
            .build();
        {
            let _root = tracer.span("root");
            for _ in 0..79 {
                drop(tracer.span("child"));
            }
        }
        // 81 records in batches of 10: every fourth fails, and with concurrent sends the third
        // panics on its sender thread.
        let report = tracer.flush(Duration::from_secs(10)).unwrap();
        (provider.export_stats(), report, most.load(Ordering::SeqCst))
    }

    #[test]
    fn deferred_deliveries_overlap_up_to_the_limit_and_flush_waits_for_them() {
        let (stats, report, most) = run(3);
        assert_eq!(stats.queued, 81, "79 children, the root and its trace");
        // Read right after the flush: it waited for every delivery in flight.
        assert_eq!(
            stats.exported + stats.dropped_export_failed,
            81,
            "{stats:?}"
        );
        assert!(stats.dropped_export_failed >= 30, "{stats:?}");
        assert_eq!(report.dropped_total, stats.dropped_export_failed);
        assert!((2..=3).contains(&most), "{most} deliveries at once");
    }

    #[test]
    fn one_export_at_a_time_when_asked() {
        let (stats, _, most) = run(1);
        assert_eq!(
            stats.exported + stats.dropped_export_failed,
            81,
            "{stats:?}"
        );
        assert_eq!(most, 1);
    }
}
