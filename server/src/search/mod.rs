//! Full-text search over the rooms' messages: the index ([`index`]) and what
//! keeps it current.
//!
//! Every node keeps its own index of every room, fed from the ordered
//! timelines, never from a request: committed events reach it through the
//! node's delivery path ([`SearchTap`], which sees every event ordered on one
//! node), and in cluster mode a feed in Redis names the rooms that moved on
//! other nodes (each node adds one entry every 100 ms naming the rooms whose
//! messages moved there; `Broker::search_feed`).
//! A room whose events arrived with a gap, that the feed named, or that the
//! node has not read since it started, is read again from the broker's history
//! after the index's position in it. So the index only trails the timelines,
//! by the indexer's batching, and never holds what they no longer say.
//!
//! The indexer runs beside the hot path: a delivery costs one push onto a
//! queue, and the index is written by its own task in batches, the SQLite
//! work on a thread of its own at the lowest CPU priority ([`IndexWriter`]).
//! When the queue is full a room is read again later instead, so a burst
//! never grows memory.

pub mod index;
mod scratch;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth_protocol::{Event, Position, RoomId, Seq};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::broker::{Broker, Delivery};
use crate::frames::Committed;
use crate::store::{RoomLoad, StoredEvent};
use index::{Change, RoomBatch};
pub use index::{Hit, HitPage, IndexError, Query, SearchIndex};

/// Bytes of text waiting for the indexer, at most (a change counts its
/// text and a little more); past it rooms are read again from history.
const MAX_QUEUED_BYTES: usize = 16 << 20;
/// Events read from history per call when a room is read again.
const READ_PAGE: usize = 500;
/// Changes written per transaction.
const BATCH_CHANGES: usize = 5_000;
/// How often a node looks at the cluster's feed.
const FEED_EVERY: Duration = Duration::from_millis(250);
/// Deliveries a wake-up gathers before writing: a burst becomes one write.
/// Each write adds a segment to each FTS5 index, which later merges cost
/// again: at 2,000 messages/s, writes every 20 ms cost the hot path 1.13×
/// the CPU per delivery of the tree before search, every 500 ms 1.09×, and
/// with merges of 16 segments 1.04× (BENCHMARKS.md, "Search").
const GATHER: Duration = Duration::from_millis(500);

/// A node's search: its index and the queue that feeds it.
pub struct Search {
    index: Arc<SearchIndex>,
    queue: Mutex<Queue>,
    wake: Notify,
    /// A store that bounds each room's history to this many events: the
    /// index drops what it drops.
    keep_events: Option<u64>,
    /// The directory of an index that lives only as long as the node.
    _scratch: Option<scratch::ScratchDir>,
    /// The delivery path past the tap: a room it has in memory gets every
    /// event through the tap, so the feed's word on it is not needed.
    delivered: std::sync::OnceLock<Arc<dyn Delivery>>,
}

/// What deliveries left for the indexer.
#[derive(Default)]
struct Queue {
    /// Consecutive events per room: from `first` to `through`.
    pending: HashMap<RoomId, Pending>,
    /// Rooms to read again from history, to at least this seq.
    behind: HashMap<RoomId, Seq>,
    bytes: usize,
}

struct Pending {
    first: Seq,
    through: Seq,
    changes: Vec<(Seq, Change)>,
}

/// Adds what the timeline event at `seq` does to the index, if anything, to
/// `changes`: one change (an erasure: one per message it erases).
fn changes_of(seq: Seq, event: &Event, changes: &mut Vec<(Seq, Change)>) {
    let change = match event {
        Event::Message(m) => Change::Add {
            seq: m.seq,
            ts: m.ts,
            from: m.from.clone(),
            thread: m.thread,
            text: m.text.as_str().to_string(),
        },
        Event::Edit(e) => Change::Retext { target: e.target, text: e.text.as_str().to_string() },
        Event::Delete(d) => Change::Remove { target: d.target },
        Event::Erased(e) => {
            // Kept from a former member, the text stays findable.
            if !e.former_member {
                changes.extend(e.messages.iter().map(|&target| (seq, Change::Remove { target })));
            }
            return;
        }
        _ => return,
    };
    changes.push((seq, change));
}

/// Whether an event changes what search finds (the cluster's feed names only these).
pub fn indexed(event: &Event) -> bool {
    matches!(event, Event::Message(_) | Event::Edit(_) | Event::Delete(_) | Event::Erased(_))
}

impl Search {
    /// An index in `dir/search.db`, kept across restarts.
    pub fn open(dir: &Path) -> Result<Search, IndexError> {
        Ok(Search::with(SearchIndex::open(dir)?, None, None))
    }

    /// An index in memory, for a store that keeps `keep_events` per room.
    pub fn in_memory(keep_events: u64) -> Result<Search, IndexError> {
        Ok(Search::with(SearchIndex::in_memory()?, Some(keep_events), None))
    }

    /// An index in a directory of its own that goes with the node (a cluster
    /// node, which keeps no data of its own: the index is read from Redis at
    /// start), for history streams of `keep_events` each.
    pub fn scratch(keep_events: u64) -> Result<Search, IndexError> {
        let dir = scratch::ScratchDir::make()
            .map_err(|source| IndexError::Dir { path: std::env::temp_dir().display().to_string(), source })?;
        Ok(Search::with(SearchIndex::open(dir.path())?, Some(keep_events), Some(dir)))
    }

    fn with(index: SearchIndex, keep_events: Option<u64>, scratch: Option<scratch::ScratchDir>) -> Search {
        Search {
            index: Arc::new(index),
            queue: Mutex::default(),
            wake: Notify::new(),
            keep_events,
            _scratch: scratch,
            delivered: std::sync::OnceLock::new(),
        }
    }

    /// The delivery path to `inner` with this search beside it.
    pub fn tap(self: &Arc<Search>, inner: Arc<dyn Delivery>) -> Arc<SearchTap> {
        let _ = self.delivered.set(inner.clone());
        Arc::new(SearchTap { search: self.clone(), inner })
    }

    pub fn index(&self) -> &Arc<SearchIndex> {
        &self.index
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Consecutive committed events of `room`, as delivered.
    fn offer(&self, room: &RoomId, events: &[Committed]) {
        let (Some(first), Some(last)) = (events.first(), events.last()) else { return };
        let (first, through) = (first.encoded.seq, last.encoded.seq);
        let mut changes: Vec<(Seq, Change)> = Vec::new();
        for committed in events {
            changes_of(committed.encoded.seq, &committed.event, &mut changes);
        }
        let mut queue = self.queue();
        let size: usize = changes.iter().map(|(_, change)| change.size()).sum();
        let Queue { pending, behind, bytes: queued } = &mut *queue;
        if *queued + size > MAX_QUEUED_BYTES {
            let at = behind.entry(room.clone()).or_insert(through);
            *at = (*at).max(through);
            drop(queue);
            self.wake.notify_one();
            return;
        }
        let wake = !changes.is_empty();
        match pending.get_mut(room) {
            Some(waiting) if waiting.through.next() == first => {
                *queued += size;
                waiting.through = through;
                waiting.changes.extend(changes);
            }
            Some(_) => {
                // A gap (or a repeat): history has what came between.
                let at = behind.entry(room.clone()).or_insert(through);
                *at = (*at).max(through);
            }
            None => {
                *queued += size;
                pending.insert(room.clone(), Pending { first, through, changes });
            }
        }
        drop(queue);
        if wake {
            self.wake.notify_one();
        }
    }

    /// Marks every room the broker has to be read again (at start-up, or
    /// when the cluster's feed moved on without this node), retrying while
    /// the broker cannot list them; `false` if `stop` came first.
    async fn mark_every_room(&self, broker: &dyn Broker, stop: &CancellationToken) -> bool {
        const PAGE: usize = 500;
        let mut after = None;
        loop {
            let page = match broker.room_names(after.clone(), PAGE).await {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(%error, "cannot list the rooms to index; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return false,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            let done = page.len() < PAGE;
            after = page.last().cloned();
            let mut queue = self.queue();
            for room in page {
                queue.behind.entry(room).or_insert(Seq::ZERO);
            }
            drop(queue);
            if done {
                self.wake.notify_one();
                return true;
            }
        }
    }

    /// `room` moved to `seq` somewhere in the cluster: read it again if the
    /// index is not there yet.
    pub fn hint(&self, room: RoomId, seq: Seq) {
        let mut queue = self.queue();
        let at = queue.behind.entry(room).or_insert(seq);
        *at = (*at).max(seq);
        drop(queue);
        self.wake.notify_one();
    }

    /// Keeps the index current until `stop`: reads every room the broker has
    /// that the index is behind on, then follows deliveries (and the
    /// cluster's feed).
    pub async fn run(self: Arc<Search>, broker: Arc<dyn Broker>, stop: CancellationToken) {
        let writer = IndexWriter::start(self.index.clone(), self.keep_events);
        let mut indexer = Indexer { search: self.clone(), broker: broker.clone(), positions: HashMap::new(), writer };
        match tokio::task::spawn_blocking({
            let index = self.index.clone();
            move || index.positions()
        })
        .await
        {
            Ok(Ok(positions)) => indexer.positions = positions.into_iter().collect(),
            Ok(Err(error)) => tracing::error!(%error, "cannot read the search index's positions; reading every room"),
            Err(_) => return,
        }
        let feed = tokio::spawn(follow_feed(self.clone(), broker.clone(), stop.clone()));
        // Whatever changed while the node was down (or, on a cluster node,
        // the whole index) is read from the rooms' histories.
        if !self.mark_every_room(&*broker, &stop).await {
            feed.abort();
            return;
        }
        indexer.round().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = self.wake.notified() => {}
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(GATHER) => {}
            }
            indexer.round().await;
        }
        feed.abort();
        indexer.writer.stop().await;
    }
}

/// The indexer's own view: how far each room is in the index.
struct Indexer {
    search: Arc<Search>,
    broker: Arc<dyn Broker>,
    positions: HashMap<RoomId, Seq>,
    writer: IndexWriter,
}

type WriteJob = (Vec<RoomBatch>, tokio::sync::oneshot::Sender<Result<Vec<RoomBatch>, IndexError>>);

/// The thread that writes the index, at the lowest CPU priority (nice 19).
/// A write gathers half a second of messages into one FTS5 transaction, tens
/// of milliseconds of CPU in one go; on a blocking-pool thread of ordinary
/// priority it took the server's core from the runtime for that long, and
/// the delivery latency's tail was the indexer's (`steady` on one core: p99
/// 36–46 ms with the index, 13–20 ms without it; BENCHMARKS.md, "Search").
/// At the lowest priority it runs in the time deliveries leave; under
/// saturation the index trails further, and catches up after.
struct IndexWriter {
    jobs: Option<std::sync::mpsc::Sender<WriteJob>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl IndexWriter {
    fn start(index: Arc<SearchIndex>, keep_events: Option<u64>) -> IndexWriter {
        let (jobs, queue) = std::sync::mpsc::channel::<WriteJob>();
        let thread = std::thread::Builder::new()
            .name("hearth-indexer".into())
            .spawn(move || {
                if let Err(error) = rustix::process::setpriority_process(None, 19) {
                    tracing::debug!(%error, "cannot lower the indexer's CPU priority; it runs at the server's");
                }
                while let Ok((batches, reply)) = queue.recv() {
                    let _ = reply.send(index.apply(&batches, keep_events).map(|()| batches));
                }
            })
            .expect("spawning the indexer's thread");
        IndexWriter { jobs: Some(jobs), thread: Some(thread) }
    }

    /// Writes `batches`; gives them back once they are in the index. `None`
    /// when the thread has gone (it panicked).
    async fn write(&self, batches: Vec<RoomBatch>) -> Option<Result<Vec<RoomBatch>, IndexError>> {
        let (reply, written) = tokio::sync::oneshot::channel();
        self.jobs.as_ref()?.send((batches, reply)).ok()?;
        written.await.ok()
    }

    /// Lets the thread finish what it was given, and waits for it.
    async fn stop(mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Indexer {
    /// Writes what the queue holds, and reads the rooms that are behind.
    async fn round(&mut self) {
        let Queue { pending, mut behind, .. } = std::mem::take(&mut *self.search.queue());
        let mut batches = Vec::new();
        for (room, waiting) in pending {
            let at = self.positions.get(&room).copied().unwrap_or(Seq::ZERO);
            if waiting.through <= at {
                continue;
            }
            if let Some(target) = behind.get_mut(&room) {
                // Read from history anyway: to these events at least.
                *target = (*target).max(waiting.through);
                continue;
            }
            if waiting.first > at.next() {
                // Events before these are not in the index: history has them.
                behind.insert(room, waiting.through);
                continue;
            }
            let changes = waiting.changes.into_iter().filter(|(seq, _)| *seq > at).collect();
            batches.push(RoomBatch { room, through: waiting.through, changes });
        }
        self.write(&mut batches).await;
        for (room, target) in behind {
            self.read_again(room, target).await;
        }
    }

    /// Reads `room` from history after the index's position (to its head).
    async fn read_again(&mut self, room: RoomId, target: Seq) {
        let mut batches = Vec::new();
        let mut at = self.positions.get(&room).copied().unwrap_or(Seq::ZERO);
        if target != Seq::ZERO && at >= target {
            return;
        }
        loop {
            let events = match self.broker.history_after(room.clone(), at, READ_PAGE).await {
                Ok(events) => events,
                Err(error) => {
                    tracing::warn!(%error, room = %room, "cannot read a room's history to index it; later");
                    // Asked again by the next delivery or feed entry of the room.
                    break;
                }
            };
            let Some(last) = events.last() else { break };
            let through = last.seq;
            batches.push(RoomBatch { room: room.clone(), through, changes: decode(&events) });
            at = through;
            if batches.iter().map(|b| b.changes.len()).sum::<usize>() >= BATCH_CHANGES {
                self.write(&mut batches).await;
            }
            if events.len() < READ_PAGE {
                break;
            }
        }
        self.write(&mut batches).await;
    }

    /// Writes `batches` (emptying it) and moves the positions on.
    async fn write(&mut self, batches: &mut Vec<RoomBatch>) {
        if batches.is_empty() {
            return;
        }
        match self.writer.write(std::mem::take(batches)).await {
            Some(Ok(written)) => {
                for batch in written {
                    let at = self.positions.entry(batch.room).or_insert(Seq::ZERO);
                    *at = (*at).max(batch.through);
                }
            }
            Some(Err(error)) => tracing::error!(%error, "cannot write to the search index"),
            None => {}
        }
    }
}

/// What stored events do to the index.
fn decode(events: &[StoredEvent]) -> Vec<(Seq, Change)> {
    let mut changes = Vec::new();
    for stored in events {
        if let Ok(event) = rmp_serde::from_slice::<Event>(&stored.body) {
            changes_of(stored.seq, &event, &mut changes);
        }
    }
    changes
}

/// Follows the cluster's feed of rooms that moved, if the broker has one.
async fn follow_feed(search: Arc<Search>, broker: Arc<dyn Broker>, stop: CancellationToken) {
    let mut cursor = None;
    loop {
        match broker.search_feed(cursor.clone()).await {
            Ok(None) => return,
            Ok(Some(page)) => {
                if page.lost_place && cursor.is_some() {
                    tracing::info!("the search feed moved on without this node; reading every room again");
                    if !search.mark_every_room(&*broker, &stop).await {
                        return;
                    }
                }
                let full = page.full;
                let delivered = search.delivered.get();
                for (room, seq) in page.rooms {
                    // A room in memory here has its events through the tap.
                    if delivered.is_none_or(|d| d.position(&room).is_none()) {
                        search.hint(room, seq);
                    }
                }
                cursor = Some(page.cursor);
                if full {
                    continue;
                }
            }
            Err(error) => tracing::debug!(%error, "cannot read the search feed; retrying"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(FEED_EVERY) => {}
        }
    }
}

/// A page of the cluster's search feed: the rooms that moved (to at least
/// this seq) since the cursor.
#[derive(Debug, Default)]
pub struct FeedPage {
    pub rooms: Vec<(RoomId, Seq)>,
    /// Where the next read starts.
    pub cursor: String,
    /// More are waiting.
    pub full: bool,
    /// Entries after the cursor are gone (trimmed, or Redis lost the feed):
    /// every room must be read again.
    pub lost_place: bool,
}

/// The delivery path with search beside it: every committed event a node
/// delivers is offered to the indexer first (a queue push), then delivered.
pub struct SearchTap {
    search: Arc<Search>,
    inner: Arc<dyn Delivery>,
}

impl Delivery for SearchTap {
    fn deliver(&self, room: &RoomId, events: &[Committed]) {
        self.search.offer(room, events);
        self.inner.deliver(room, events);
    }

    fn position(&self, room: &RoomId) -> Option<Position> {
        self.inner.position(room)
    }

    fn resync(&self, room: &RoomId, at: Option<Position>, now: bool) {
        self.inner.resync(room, at, now);
    }

    fn snapshot(&self, room: &RoomId) -> Option<RoomLoad> {
        self.inner.snapshot(room)
    }

    fn ephemeral(&self, room: &RoomId, event: &Event) {
        self.inner.ephemeral(room, event);
    }
}

#[cfg(test)]
mod tests {
    use hearth_protocol::event::MessageEvent;
    use hearth_protocol::{ClientMsgId, Millis, Text, UserId};

    use super::*;

    fn message(seq: u64, text: &str) -> Committed {
        Committed::new(Event::Message(MessageEvent {
            seq: Seq(seq),
            ts: Millis(seq),
            ..MessageEvent::draft(
                RoomId::new("r").unwrap(),
                UserId::new("ann").unwrap(),
                Text::new(text).unwrap(),
                ClientMsgId::new(format!("c{seq}")).unwrap(),
                None,
            )
        }))
    }

    #[test]
    fn a_full_queue_sends_rooms_to_history_instead_of_growing() {
        let search = Search::in_memory(100).unwrap();
        let room = RoomId::new("r").unwrap();
        let big = "x".repeat(4000);
        for seq in 1..=10_000 {
            search.offer(&room, &[message(seq, &big)]);
        }
        let queue = search.queue();
        assert!(queue.bytes <= MAX_QUEUED_BYTES, "{} bytes queued", queue.bytes);
        assert_eq!(queue.behind.get(&room), Some(&Seq(10_000)), "read again from history, to the newest");
    }

    #[test]
    fn a_gap_in_deliveries_sends_the_room_to_history() {
        let search = Search::in_memory(100).unwrap();
        let room = RoomId::new("r").unwrap();
        search.offer(&room, &[message(1, "one"), message(2, "two")]);
        search.offer(&room, &[message(3, "three")]);
        assert!(search.queue().behind.is_empty());
        search.offer(&room, &[message(5, "five")]);
        assert_eq!(search.queue().behind.get(&room), Some(&Seq(5)));
        assert_eq!(search.queue().pending[&room].through, Seq(3));
    }
}
