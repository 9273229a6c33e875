//! The task that has the allocator return what was freed, so a quiet server's
//! memory goes back down after a burst.
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
//! The only `unsafe` of the workspace: a call into mimalloc (see
//! ARCHITECTURE.md, "Memory per connection").
#![allow(unsafe_code)]

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often mimalloc is asked to return freed memory: its purge delay.
const RETURN_EVERY: Duration = Duration::from_secs(1);

/// Has mimalloc return freed memory that has waited its delay, until `stop`.
pub async fn return_freed_memory(stop: CancellationToken) {
    let mut tick = tokio::time::interval(RETURN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        // SAFETY: `mi_collect` has no preconditions and may be called from any
        // thread at any time. Not forced: only memory past its purge delay goes,
        // and this thread's free lists are tidied, which takes microseconds.
        unsafe { libmimalloc_sys::mi_collect(false) };
    }
}
