//! The memory allocator `axion serve` runs on: mimalloc, tuned to hand freed memory back to
//! the system within 10 ms.
//!
//! Ingest allocates and frees a few dozen strings and maps per span on the request threads,
//! and frees whole batches of rows on another thread. With glibc's allocator a third of a
//! request thread's instructions were `malloc` and `free`; mimalloc cuts the request side by
//! a quarter (callgrind, 10 240 spans: 932M → 689M instructions). Its default one-second
//! purge delay let the server's peak RSS grow from ~112 to ~180 MB during the ingest
//! benchmark; at 10 ms it stays at ~120 MB. Transparent huge pages are off for the same
//! reason (`no_thp`).
//!
//! A binary opts in with two lines (a library must not choose the allocator of the program
//! that links it):
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOCATOR: axion_server::allocator::ServerAllocator =
//!     axion_server::allocator::ServerAllocator;
//!
//! fn main() {
//!     axion_server::allocator::configure();
//!     // … serve
//! }
//! ```

/// The global allocator for binaries that run the server.
pub use mimalloc::MiMalloc as ServerAllocator;

/// How long mimalloc keeps freed memory before returning it to the system, in milliseconds.
pub const PURGE_DELAY_MS: i64 = 10;

/// `mi_option_purge_delay` in the `mi_option_t` enum of the mimalloc that
/// `libmimalloc-sys` 0.1.49 builds (the crate names no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Applies the server's allocator options. Call it first thing in `main`; without
/// [`ServerAllocator`] as the global allocator it only tunes an allocator nobody uses. A
/// purge delay set in the environment (`MIMALLOC_PURGE_DELAY`, read by mimalloc itself) is
/// left as it is.
pub fn configure() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: `mi_option_set` only stores an integer in mimalloc's option table (an atomic),
    // valid at any time and from any thread; the option number is that of the pinned version.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS as _);
    }
}

/// The purge delay mimalloc uses now, in milliseconds.
pub fn purge_delay_ms() -> i64 {
    // SAFETY: `mi_option_get` reads an integer from mimalloc's option table.
    #[allow(unsafe_code)]
    let value = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
    value as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configure_sets_the_purge_delay_of_the_linked_mimalloc() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return; // the environment's choice stands
        }
        // The option number is right for the pinned version: the default reads back as
        // mimalloc's documented default (1 s here), and `configure` changes it.
        let before = purge_delay_ms();
        assert!(before == 1000 || before == PURGE_DELAY_MS, "{before}");
        configure();
        assert_eq!(purge_delay_ms(), PURGE_DELAY_MS);
    }
}
