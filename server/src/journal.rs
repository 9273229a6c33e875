//! Group commit: the single writer of a durable store.
//!
//! Whoever orders events (the local broker's sequencers) submits each event's
//! writes here, in order, without waiting. One committer thread takes everything
//! queued, commits it as one transaction (one fsync for the whole group), and
//! only then hands the group's completions to a task on the async runtime, which
//! delivers the events and wakes whoever waits for them. No one sees an event that
//! a crash could take back.
//!
//! The committer does not deliver itself: waking thousands of connection writers
//! from a foreign thread costs a cross-thread wake-up each; from the runtime's own
//! task they are cheap local wakes, and the committer goes straight back to disk.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::store::{Store, StoreError, Write};

/// Jobs waiting for the committer. About a second of peak traffic: enough to ride
/// out a slow fsync, small enough that a stuck disk turns into `overloaded` replies
/// within a second instead of growing memory. Counted beside an unbounded channel
/// rather than given to `sync_channel`, whose ring is allocated (and touched)
/// whole at start: 5.6 MiB resident on a server that may never see a message.
const QUEUE_CAPACITY: usize = 16 * 1024;
/// Room for writes the committer keeps between groups: a steady group's worth.
const KEPT_WRITES: usize = 256;
/// Most writes in one transaction, so one group cannot hold the queue for long.
const MAX_GROUP: usize = 4096;
/// Least time between two commits under load (see `run_committer`). 1 ms: 2 ms
/// saved a little more CPU but pushed p99 at 200,000 deliveries/s past 10 ms.
const COMMIT_INTERVAL: Duration = Duration::from_millis(1);
/// Committed groups waiting for the delivery task. When it falls behind, the
/// committer blocks, then the write queue fills and senders get `overloaded`:
/// backpressure instead of memory.
const DELIVERY_QUEUE: usize = 64;

enum Msg<T> {
    Job(Vec<Write>, T),
    Stop,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("the write queue is full; retry shortly")]
    Full,
    #[error("the journal has stopped")]
    Stopped,
}

/// Holds commits while held: a test hook that makes "the event is ordered but not
/// yet durable" last as long as a test needs. Never held in production.
#[derive(Clone, Default)]
pub struct CommitHold {
    inner: Arc<(Mutex<bool>, Condvar)>,
}

impl std::fmt::Debug for CommitHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitHold").field("held", &*self.flag()).finish()
    }
}

impl CommitHold {
    fn flag(&self) -> std::sync::MutexGuard<'_, bool> {
        self.inner.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Commits wait from now on (the one in progress, if any, finishes).
    pub fn hold(&self) {
        *self.flag() = true;
    }

    pub fn release(&self) {
        *self.flag() = false;
        self.inner.1.notify_all();
    }

    fn wait_released(&self) {
        let mut held = self.flag();
        while *held {
            held = self.inner.1.wait(held).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// The committer and the task that delivers what it committed. `T` is what the
/// submitter wants back once its writes are durable.
pub struct Journal<T> {
    tx: Sender<Msg<T>>,
    /// Jobs sent and not yet taken by the committer.
    queued: Arc<AtomicUsize>,
    thread: Mutex<Option<JoinHandle<()>>>,
    failure: Arc<OnceLock<StoreError>>,
}

impl<T: Send + 'static> Journal<T> {
    /// Starts the committer over `store`; `on_durable` runs on the runtime with
    /// each committed group's completions, in commit order. If a commit fails the
    /// journal stops and cancels `fatal` (see [`Journal::failure`]). Must be called
    /// inside the Tokio runtime.
    pub fn start(
        store: Arc<dyn Store>,
        hold: CommitHold,
        fatal: CancellationToken,
        mut on_durable: impl FnMut(Vec<T>) + Send + 'static,
    ) -> Journal<T> {
        let (tx, rx) = channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let (deliver_tx, mut deliver_rx) = tokio::sync::mpsc::channel::<Vec<T>>(DELIVERY_QUEUE);
        tokio::spawn(async move {
            while let Some(group) = deliver_rx.recv().await {
                on_durable(group);
            }
        });
        let failure = Arc::new(OnceLock::new());
        let committer =
            Committer { store, rx, queued: queued.clone(), deliver: deliver_tx, hold, fatal, failure: failure.clone() };
        let thread = std::thread::Builder::new()
            .name("hearth-committer".into())
            .spawn(move || committer.run())
            .expect("spawning the committer thread");
        Journal { tx, queued, thread: Mutex::new(Some(thread)), failure }
    }

    /// Queues one event's writes. Call in the room's order: the committer keeps
    /// it. Never blocks.
    pub fn submit(&self, writes: Vec<Write>, done: T) -> Result<(), JournalError> {
        if self.queued.fetch_add(1, Ordering::Relaxed) >= QUEUE_CAPACITY {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(JournalError::Full);
        }
        self.tx.send(Msg::Job(writes, done)).map_err(|_| {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            JournalError::Stopped
        })
    }

    /// Why the journal stopped, if a commit failed.
    pub fn failure(&self) -> Option<&StoreError> {
        self.failure.get()
    }

    /// Commits everything submitted so far and stops the committer. Blocking: call
    /// from `spawn_blocking` or a plain thread.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Msg::Stop);
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

struct Committer<T> {
    store: Arc<dyn Store>,
    rx: Receiver<Msg<T>>,
    queued: Arc<AtomicUsize>,
    deliver: tokio::sync::mpsc::Sender<Vec<T>>,
    hold: CommitHold,
    fatal: CancellationToken,
    failure: Arc<OnceLock<StoreError>>,
}

impl<T> Committer<T> {
    fn run(self) {
        let mut writes = Vec::new();
        let mut done = Vec::new();
        let mut stopping = false;
        let mut last_commit = Instant::now() - COMMIT_INTERVAL;
        while !stopping {
            // Block for the first job, then take whatever else is already queued: the
            // group grows by itself while the previous commit's fsync runs.
            match self.rx.recv() {
                Ok(Msg::Job(w, d)) => {
                    writes.extend(w);
                    done.push(d);
                }
                Ok(Msg::Stop) | Err(_) => break,
            }
            // Under sustained load, wait out the rest of the commit interval so one
            // commit (and its fsync) covers more events; jobs arriving meanwhile cost
            // this thread no wake-up. When commits are rarer, nothing waits.
            let wait = (last_commit + COMMIT_INTERVAL).saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                #[allow(clippy::disallowed_methods)] // a dedicated thread, not a runtime worker
                std::thread::sleep(wait);
            }
            self.hold.wait_released();
            while writes.len() < MAX_GROUP {
                match self.rx.try_recv() {
                    Ok(Msg::Job(w, d)) => {
                        writes.extend(w);
                        done.push(d);
                    }
                    Ok(Msg::Stop) => {
                        stopping = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.queued.fetch_sub(done.len(), Ordering::Relaxed);
            let metrics = crate::metrics::get();
            metrics.journal_waiting.set(writes.len() as f64);
            let started = Instant::now();
            if let Err(error) = self.store.commit(&writes) {
                // Seqs in this group were handed out; carrying on would let a later
                // event take the place of one that is not on disk. Stop taking jobs
                // (dropping the receiver fails every later submit) and stop the
                // server: a restart recovers from the last good commit.
                tracing::error!(%error, writes = writes.len(), "store commit failed; stopping the server");
                let _ = self.failure.set(error);
                self.fatal.cancel();
                return;
            }
            last_commit = Instant::now();
            metrics.commit_seconds.record(last_commit.duration_since(started).as_secs_f64());
            writes.clear();
            if writes.capacity() > KEPT_WRITES {
                // A burst (10,000 members joining) grows it to a whole group of
                // writes, ~0.4 MB that would stay for the server's life.
                writes = Vec::new();
            }
            crate::alloc::tidy_this_thread();
            // Fails only once the runtime is gone, at the very end of shutdown.
            let _ = self.deliver.blocking_send(std::mem::take(&mut done));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    #[tokio::test]
    async fn a_full_queue_refuses_then_drains_and_takes_jobs_again() {
        let hold = CommitHold::default();
        hold.hold();
        let (durable_tx, mut durable) = tokio::sync::mpsc::channel(QUEUE_CAPACITY + 2);
        let journal = Journal::start(
            Arc::new(MemoryStore::new(10)),
            hold.clone(),
            CancellationToken::new(),
            move |group: Vec<usize>| {
                for job in group {
                    durable_tx.try_send(job).expect("room for every job");
                }
            },
        );
        for job in 0..QUEUE_CAPACITY {
            journal.submit(Vec::new(), job).expect("room in the queue");
        }
        assert!(matches!(journal.submit(Vec::new(), QUEUE_CAPACITY), Err(JournalError::Full)));

        hold.release();
        for expected in 0..QUEUE_CAPACITY {
            let job = tokio::time::timeout(Duration::from_secs(10), durable.recv()).await.expect("committed in time");
            assert_eq!(job, Some(expected));
        }
        journal.submit(Vec::new(), QUEUE_CAPACITY + 1).expect("room again once committed");
        let job = tokio::time::timeout(Duration::from_secs(10), durable.recv()).await.expect("committed in time");
        assert_eq!(job, Some(QUEUE_CAPACITY + 1));
        tokio::task::spawn_blocking(move || journal.shutdown()).await.unwrap();
    }
}
