//! What has the allocator return what was freed, so a quiet server's memory
//! goes back down after a burst.
//!
//! mimalloc keeps freed memory mapped for a second (its purge delay) for reuse,
//! and then returns it only when it next frees or takes pages, which a quiet
//! server may not do for hours. For the hot path that reuse is what makes it
//! fast; after a burst, or a login, it is memory held for nothing. Each
//! password hash (Argon2id) frees 46 MiB: a server that had seen two logins at
//! once held 92 MiB more until it restarted, and one that had sent twenty
//! pages of history held their 20 MiB. So a task asks mimalloc once a second
//! to return what has waited its delay: both go back within about two seconds
//! (`tests/tests/memory_bound.rs`).
//!
//! That call tidies only the calling thread's pages. Pages a thread emptied
//! stay with it until it allocates again, and a runtime worker that went
//! quiet after a burst (10,000 members joining, then idle) may not: 0.7 KB
//! per joined member stayed resident. So each worker of the server's runtime
//! also tidies its own pages when it parks, at most once a second
//! ([`tidy_this_thread`]), and so does the journal's committer after a commit.
//!
//! The only `unsafe` of the workspace: a call into mimalloc (see
//! ARCHITECTURE.md, "Memory per connection").
#![allow(unsafe_code)]

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often mimalloc is asked to return freed memory: its purge delay.
const RETURN_EVERY: Duration = Duration::from_secs(1);

/// Tidies this thread's pages if it has not for a second: the runtime's
/// `on_thread_park` hook, and the committer's after each commit. Both are
/// frequent under load, so the check is a thread-local read and a clock read.
pub fn tidy_this_thread() {
    thread_local! {
        static LAST_MS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }
    let now = crate::clock::monotonic_ms();
    let due = LAST_MS.with(|last| {
        let due = now.saturating_sub(last.get()) >= RETURN_EVERY.as_millis() as u64;
        if due {
            last.set(now);
        }
        due
    });
    if due {
        collect();
    }
}

fn collect() {
    // SAFETY: `mi_collect` has no preconditions and may be called from any
    // thread at any time. Not forced: only memory past its purge delay goes,
    // and this thread's free lists are tidied, which takes microseconds.
    unsafe { libmimalloc_sys::mi_collect(false) };
}

/// Has mimalloc return freed memory that has waited its delay, until `stop`.
pub async fn return_freed_memory(stop: CancellationToken) {
    let mut tick = tokio::time::interval(RETURN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        collect();
    }
}
