//! Wall-clock time, injected. Timestamps of events and every time rule a room
//! decides on (later: mutes, slow mode, invite expiry) read the time from a
//! [`Clock`], so tests can set and move it instead of sleeping.
//!
//! Timeouts of sockets (handshake, write) are not wall-clock rules: they use
//! tokio's timers, which tests control with `tokio::time::pause`. What is
//! checked in passes over many connections (when one was last heard, or
//! pinged) reads [`monotonic_ms`]: a number per connection, not a timer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hearth_protocol::Millis;

/// Milliseconds on a monotonic clock since the first call in the process.
pub fn monotonic_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_millis() as u64
}

/// Where the time comes from.
pub trait Clock: std::fmt::Debug + Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now(&self) -> Millis;
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Millis(now.as_millis() as u64)
    }
}

/// A clock that moves only when told to: for tests of time rules.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl ManualClock {
    pub fn new(start: Millis) -> ManualClock {
        ManualClock { now: Arc::new(AtomicU64::new(start.0)) }
    }

    pub fn set(&self, to: Millis) {
        self.now.store(to.0, Ordering::SeqCst);
    }

    pub fn advance(&self, by: std::time::Duration) {
        self.now.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        Millis(self.now.load(Ordering::SeqCst))
    }
}

/// The clock a server uses.
pub type SharedClock = Arc<dyn Clock>;

/// The system clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A background task's clock: the tick count, every `period`, until stopped.
pub(crate) struct Ticks {
    interval: tokio::time::Interval,
    count: u64,
}

impl Ticks {
    pub(crate) fn every(period: std::time::Duration) -> Ticks {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ticks { interval, count: 0 }
    }

    /// The next tick's number (the first is 0, at once); `None` once `stop` fires.
    pub(crate) async fn next(&mut self, stop: &tokio_util::sync::CancellationToken) -> Option<u64> {
        tokio::select! {
            _ = stop.cancelled() => None,
            _ = self.interval.tick() => {
                self.count += 1;
                Some(self.count - 1)
            }
        }
    }
}
