//! Fast random ids for spans and traces, from a per-thread generator seeded by the OS.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use axion_model::{SpanId, TraceId};

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    // RandomState is seeded from the OS once per thread; mixing in the thread id keeps two
    // threads that start at the same instant apart.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(std::process::id() as u64);
    hasher.write(format!("{:?}", std::thread::current().id()).as_bytes());
    hasher.finish() | 1
}

/// wyrand: one multiply per 64 random bits, good enough for ids (not for secrets).
fn next_u64() -> u64 {
    STATE
        .try_with(|state| {
            let s = state.get().wrapping_add(0xa076_1d64_78bd_642f);
            state.set(s);
            let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
            ((t >> 64) as u64) ^ (t as u64)
        })
        .unwrap_or_else(|_| seed())
}

fn non_zero() -> u64 {
    loop {
        let value = next_u64();
        if value != 0 {
            return value;
        }
    }
}

pub(crate) fn new_span_id() -> SpanId {
    SpanId::from_bytes(non_zero().to_be_bytes())
}

/// Time-prefixed (48 bits of the root span's start in Unix ms, then 80 random bits): sorts by
/// start, and Opik's UUIDv7 for the trace follows from the id alone. The caller passes the start
/// it already read, so a root span reads the clock once.
pub(crate) fn new_trace_id(start: std::time::SystemTime) -> TraceId {
    let millis = start
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(1);
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&non_zero().to_be_bytes());
    random[8..].copy_from_slice(&next_u64().to_be_bytes()[..2]);
    TraceId::time_prefixed(millis.max(1), random)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_and_non_zero() {
        let ids: HashSet<_> = (0..10_000).map(|_| new_span_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|id| !id.is_zero()));
        let other_thread = std::thread::spawn(|| new_trace_id(std::time::SystemTime::now()))
            .join()
            .unwrap();
        assert_ne!(other_thread, new_trace_id(std::time::SystemTime::now()));
    }
}
