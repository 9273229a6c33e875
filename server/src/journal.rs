//! The journal orders and commits every change to durable state, in groups.
//!
//! A room appends an event by assigning its seq and submitting the writes here
//! while it holds its own lock, so each room's writes reach the journal in seq
//! order. With a durable store, one committer thread takes everything queued,
//! commits it as one transaction (one fsync for the whole group), and only then
//! tells each room its events are durable: the room fans them out and acknowledges
//! the senders. No one sees an event that a crash could take back.
//!
//! The committer thread does not fan out itself: it hands each committed group to
//! a delivery task on the async runtime. Waking thousands of connection writers
//! from a foreign thread costs a cross-thread wake-up each; from the runtime's own
//! task they are cheap local wakes, and the committer goes straight back to disk.
//!
//! With the memory store there is nothing to wait for: writes apply inline and the
//! room delivers at once.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hearth_protocol::Seq;

use crate::rooms::Room;
use crate::store::{Store, Write};

/// Jobs waiting for the committer. About a second of peak traffic: enough to ride
/// out a slow fsync, small enough that a stuck disk turns into `overloaded` replies
/// within a second instead of growing memory.
const QUEUE_CAPACITY: usize = 16 * 1024;
/// Most writes in one transaction, so one group cannot hold the queue for long.
const MAX_GROUP: usize = 4096;
/// Least time between two commits under load (see `run_committer`). 1 ms: 2 ms
/// saved a little more CPU but pushed p99 at 200,000 deliveries/s past 10 ms.
const COMMIT_INTERVAL: Duration = Duration::from_millis(1);
/// Committed groups waiting for the delivery task. When it falls behind, the
/// committer blocks, then the write queue fills and senders get `overloaded`:
/// backpressure instead of memory.
const DELIVERY_QUEUE: usize = 64;

/// Rooms whose events up to the given seq are durable.
type Committed = Vec<(Arc<Room>, Seq)>;

/// The store's writes for one timeline event, and the room to tell when they are
/// durable.
pub struct Job {
    pub writes: Vec<Write>,
    pub room: Arc<Room>,
    pub seq: Seq,
}

enum Msg {
    Job(Job),
    Stop,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Submitted {
    /// Already durable (memory store): the caller completes the event itself.
    Applied,
    /// Queued: the committer will call `Room::commit_through`.
    Queued,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("the write queue is full; retry shortly")]
    Full,
    #[error("the server is shutting down")]
    Stopped,
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

pub struct Journal {
    mode: Mode,
}

enum Mode {
    Inline(Arc<dyn Store>),
    Committer { tx: SyncSender<Msg>, thread: Mutex<Option<JoinHandle<()>>> },
}

impl Journal {
    /// A journal over `store`: group commit on a thread if it is durable, inline if
    /// not. Must be called inside the Tokio runtime, which runs the delivery task.
    pub fn new(store: Arc<dyn Store>) -> Journal {
        if !store.is_durable() {
            return Journal { mode: Mode::Inline(store) };
        }
        let (tx, rx) = sync_channel(QUEUE_CAPACITY);
        let (deliver_tx, mut deliver_rx) = tokio::sync::mpsc::channel::<Committed>(DELIVERY_QUEUE);
        tokio::spawn(async move {
            while let Some(group) = deliver_rx.recv().await {
                for (room, seq) in group {
                    room.commit_through(seq);
                }
            }
        });
        let thread = std::thread::Builder::new()
            .name("hearth-committer".into())
            .spawn(move || run_committer(&*store, rx, deliver_tx))
            .expect("spawning the committer thread");
        Journal { mode: Mode::Committer { tx, thread: Mutex::new(Some(thread)) } }
    }

    /// Submits one event's writes. Call with the room's lock held, so the room's
    /// events keep their seq order here. Never blocks.
    pub fn submit(&self, job: Job) -> Result<Submitted, JournalError> {
        match &self.mode {
            Mode::Inline(store) => {
                store.commit(&job.writes)?;
                Ok(Submitted::Applied)
            }
            Mode::Committer { tx, .. } => match tx.try_send(Msg::Job(job)) {
                Ok(()) => Ok(Submitted::Queued),
                Err(TrySendError::Full(_)) => Err(JournalError::Full),
                Err(TrySendError::Disconnected(_)) => Err(JournalError::Stopped),
            },
        }
    }

    /// Commits everything submitted so far and stops the committer. Blocking: call
    /// from `spawn_blocking` or a plain thread.
    pub fn shutdown(&self) {
        if let Mode::Committer { tx, thread } = &self.mode {
            // A full queue still drains, so this send completes.
            let _ = tx.send(Msg::Stop);
            let handle = thread.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(handle) = handle {
                let _ = handle.join();
            }
        }
    }
}

fn run_committer(store: &dyn Store, rx: Receiver<Msg>, deliver: tokio::sync::mpsc::Sender<Committed>) {
    let mut writes = Vec::new();
    let mut done: Committed = Vec::new();
    let mut stopping = false;
    let mut last_commit = Instant::now() - COMMIT_INTERVAL;
    while !stopping {
        // Block for the first job, then take whatever else is already queued: the
        // group grows by itself while the previous commit's fsync runs.
        match rx.recv() {
            Ok(Msg::Job(job)) => take(job, &mut writes, &mut done),
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
        while writes.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(Msg::Job(job)) => take(job, &mut writes, &mut done),
                Ok(Msg::Stop) => {
                    stopping = true;
                    break;
                }
                Err(_) => break,
            }
        }
        if let Err(error) = store.commit(&writes) {
            // Rooms already handed out these seqs; carrying on would let a later
            // event take the place of one that is not on disk. Stop the process
            // instead: a restart recovers from the last good commit.
            tracing::error!(%error, writes = writes.len(), "store commit failed; stopping the server");
            std::process::exit(74);
        }
        last_commit = Instant::now();
        writes.clear();
        // Fails only once the runtime is gone, at the very end of shutdown.
        let _ = deliver.blocking_send(std::mem::take(&mut done));
    }
}

fn take(job: Job, writes: &mut Vec<Write>, done: &mut Committed) {
    writes.extend(job.writes);
    // Consecutive events of one room complete together.
    match done.last_mut() {
        Some((room, seq)) if Arc::ptr_eq(room, &job.room) => *seq = job.seq,
        _ => done.push((job.room, job.seq)),
    }
}
