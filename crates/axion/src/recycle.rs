//! Record allocations handed back by the export worker, for the next records to fill.
//!
//! A span's record is allocated on the application's thread and freed on the worker's. With
//! glibc, memory freed on another thread goes back to the arena it came from, under that
//! arena's lock, so the worker (and the reaper freeing captured values) and the application
//! allocating its next record contend for it: in a steady stream of 10 000 spans/s the
//! application thread blocked on that lock (`futex` wait, 50–450 µs) or woke a waiter in about
//! one span in a hundred, which made the p99 of a span 23–45 µs. So records circulate: when an
//! exporter turns a record into the model ([`RawRecord::into_model`]), its emptied allocation
//! comes back here, and a span that starts takes one instead of calling the allocator (p99
//! 6–8 µs in the same run). The trace records the worker makes from root spans circulate the
//! same way, on the worker alone. A full pool frees as before, an empty one allocates.

use std::borrow::Cow;
use std::sync::OnceLock;
use std::time::SystemTime;

use axion_model::{SpanId, TraceId};
use crossbeam_queue::ArrayQueue;

use crate::provider::{RawObservation, RawRecord, RawRoot, RawTrace};

/// Allocations kept at most: one default batch's worth, about 200 KB.
const CAPACITY: usize = 512;

struct Pool<T> {
    queue: OnceLock<ArrayQueue<Box<T>>>,
}

impl<T> Pool<T> {
    const fn new() -> Self {
        Self {
            queue: OnceLock::new(),
        }
    }

    fn queue(&self) -> &ArrayQueue<Box<T>> {
        self.queue.get_or_init(|| ArrayQueue::new(CAPACITY))
    }

    /// An emptied allocation, when one has come back.
    #[inline]
    fn take(&self) -> Option<Box<T>> {
        self.queue().pop()
    }

    /// Keeps an emptied allocation for a later span (freed when the pool is full).
    fn give_back(&self, emptied: Box<T>) {
        let _ = self.queue().push(emptied);
    }

    /// `contents` in a returned allocation when there is one, else in a new one.
    #[inline]
    fn boxed(&self, contents: T) -> Box<T> {
        match self.take() {
            Some(mut emptied) => {
                *emptied = contents;
                emptied
            }
            None => Box::new(contents),
        }
    }

    /// The contents of `record`, its allocation kept for later with `empty` in it.
    fn take_back(&self, mut record: Box<T>, empty: T) -> T {
        let contents = std::mem::replace(&mut *record, empty);
        self.give_back(record);
        contents
    }
}

static OBSERVATIONS: Pool<RawObservation> = Pool::new();
static TRACES: Pool<RawTrace> = Pool::new();

/// A span's record as it starts, in a returned allocation when there is one. An emptied
/// record needs only its identity and start time written, where building a whole record and
/// moving it in copied its 400 bytes twice.
#[inline]
pub(crate) fn started_observation(
    id: SpanId,
    trace_id: TraceId,
    parent_id: Option<SpanId>,
    name: Cow<'static, str>,
    start: SystemTime,
) -> Box<RawObservation> {
    match OBSERVATIONS.take() {
        Some(mut emptied) => {
            emptied.restart(id, trace_id, parent_id, name, start);
            emptied
        }
        None => Box::new(RawObservation::started(
            id, trace_id, parent_id, name, start,
        )),
    }
}

/// Splits a queued root span into its two records. The span keeps circulating: its
/// allocation goes back to the pool and the two records take theirs from the pools.
pub(crate) fn split_root_span(
    observation: Box<RawObservation>,
    trace: Option<Box<RawTrace>>,
) -> [RawRecord; 2] {
    RawRoot::from_parts(observation_contents(observation), trace).into_records()
}

/// An observation record in a returned allocation when there is one.
#[inline]
pub(crate) fn boxed_observation(contents: RawObservation) -> Box<RawObservation> {
    OBSERVATIONS.boxed(contents)
}

/// A trace record in a returned allocation when there is one.
#[inline]
pub(crate) fn boxed_trace(contents: RawTrace) -> Box<RawTrace> {
    TRACES.boxed(contents)
}

/// The record's contents, its emptied allocation returned to the pool.
pub(crate) fn observation_contents(record: Box<RawObservation>) -> RawObservation {
    OBSERVATIONS.take_back(record, RawObservation::placeholder())
}

/// The record's contents, its emptied allocation returned to the pool.
pub(crate) fn trace_contents(record: Box<RawTrace>) -> RawTrace {
    TRACES.take_back(record, RawTrace::new(TraceId::from_bytes([0; 16])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_returned_record_is_reused_as_a_new_span() {
        let trace_id = TraceId::from_bytes([9; 16]);
        let mut first = RawObservation::placeholder();
        first.name = "first".into();
        first.input = Some(crate::Payload::new("question"));
        first.level = axion_model::ObservationLevel::Error;
        let moved = observation_contents(Box::new(first));
        assert_eq!(moved.name, "first");
        let start = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(5);
        let second = started_observation(
            SpanId::from_bytes([4; 8]),
            trace_id,
            None,
            "second".into(),
            start,
        );
        assert_eq!(second.name, "second");
        assert_eq!(second.trace_id, trace_id);
        assert_eq!(second.start_time, start);
        assert!(second.input.is_none(), "nothing of the first span is left");
        assert_eq!(second.level, axion_model::ObservationLevel::Default);
    }

    #[test]
    fn a_full_pool_frees_what_comes_back() {
        let pool = Pool::new();
        for _ in 0..CAPACITY + 10 {
            pool.give_back(Box::new(0_u64));
        }
        assert_eq!(pool.queue().len(), CAPACITY);
    }

    #[test]
    fn records_turned_into_the_model_keep_their_contents() {
        let mut span = RawObservation::placeholder();
        span.name = "step".into();
        span.level = axion_model::ObservationLevel::Warning;
        let axion_model::Record::Observation(model) =
            RawRecord::Observation(boxed_observation(span)).into_model()
        else {
            panic!("an observation stays an observation");
        };
        assert_eq!(model.name.as_deref(), Some("step"));
        assert_eq!(model.level, axion_model::ObservationLevel::Warning);
        let mut trace = RawTrace::new(TraceId::from_bytes([8; 16]));
        trace.user_id = Some("ada".into());
        let axion_model::Record::Trace(model) = RawRecord::Trace(boxed_trace(trace)).into_model()
        else {
            panic!("a trace stays a trace");
        };
        assert_eq!(model.user_id.as_deref(), Some("ada"));
    }

    #[test]
    fn a_split_root_keeps_both_records() {
        let trace_id = TraceId::from_bytes([7; 16]);
        let mut span = RawObservation::placeholder();
        span.id = SpanId::from_bytes([3; 8]);
        span.trace_id = trace_id;
        span.name = "root".into();
        let [observation, trace] = split_root_span(Box::new(span), None);
        let (RawRecord::Observation(observation), RawRecord::Trace(trace)) = (observation, trace)
        else {
            panic!("an observation and a trace");
        };
        assert_eq!(observation.name, "root");
        assert_eq!(trace.id, trace_id);
        assert_eq!(trace.name.as_deref(), Some("root"));
    }
}
