//! The allocator policy of `hati serve` (glibc malloc), chosen from measured runs
//! (`scripts/session_bench.py many` and `serial`, figures in docs/performance.md):
//!
//! - At most two malloc arenas. Each GStreamer streaming thread, sender thread and compositor
//!   of a session would otherwise get an arena of its own (up to 8 per core), and memory freed
//!   when the session ends stays spread over them: after two rounds of ten sessions the host
//!   kept 94 MB with glibc's default, 84 MB with two arenas, at the same CPU.
//! - After a session ends, free memory at the top of each arena goes back to the system
//!   (`malloc_trim`), so the host's RSS falls back toward its idle size between sessions.
//!
//! A `MALLOC_ARENA_MAX` in the environment is the user's choice and is left alone.

/// Limits glibc to two malloc arenas, unless `MALLOC_ARENA_MAX` is set. Call before the
/// runtime and any other thread start.
pub fn limit_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    // SAFETY: mallopt only changes a tunable of glibc's allocator; no thread has started yet.
    let applied = unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    if applied != 1 {
        tracing::debug!("glibc refused M_ARENA_MAX; keeping its default arenas");
    }
}

/// Hands free heap memory back to the system (glibc `malloc_trim`). It walks every arena, so
/// call it off the async runtime, once per ended session.
pub fn release_free_memory() {
    // SAFETY: malloc_trim takes glibc's arena locks itself; it frees nothing still in use.
    unsafe {
        libc::malloc_trim(0);
    }
}
