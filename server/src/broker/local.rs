//! The single-node broker: one sequencer per room in memory, the journal's group
//! commit, and the store.
//!
//! A sequencer is the room's order. Under its lock a draft's preconditions are
//! checked against the room's [`Gate`] (which already counts the events still on
//! their way to disk), the client message id is looked up, the event gets the next
//! seq and a timestamp, is encoded once — those bytes are the stored row and every
//! MessagePack frame — and is submitted to the journal, all without waiting. Once
//! the journal reports the group durable, the events go to the delivery path and
//! then the publishers are woken.
//!
//! With a store that keeps nothing on disk (`--ephemeral`) there is no journal:
//! the write and the delivery happen inline, still under the sequencer's lock, so
//! each room's events are delivered in order.
//!
//! A sequencer is made from the store when its room is loaded or first published
//! to, and dropped once nothing is in flight and the room has left memory
//! (`unsubscribe`) or gone unused for the idle time, so memory follows the active
//! rooms.
//!
//! Lock order (ARCHITECTURE.md, "Locks and their order"): `creating`, then the
//! sequencers' map, then a sequencer, then — delivering inline — a room; a
//! room's lock is never held while a sequencer's is taken.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use hearth_protocol::{ClientMsgId, Epoch, Millis, RoomId, Seq, UserId};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::{Broker, BrokerError, BrokerFuture, Delivery, Published, Receipt};
use crate::clock::SharedClock;
use crate::frames::Committed;
use crate::journal::{CommitHold, Journal, JournalError};
use crate::room::{self, AnnexRow, AnnexTable, Draft, Gate, RoomRecord};
use crate::store::{EventRow, RoomListing, RoomLoad, SentMessage, Store, StoreError, StoredEvent, Write};

/// What the journal hands back for each committed event.
type Done = (Arc<Sequencer>, Committed);

pub struct LocalBroker {
    store: Arc<dyn Store>,
    /// `None` with a store that is not durable: writes apply inline.
    journal: Option<Arc<Journal<Done>>>,
    clock: SharedClock,
    delivery: Arc<dyn Delivery>,
    /// Every connection here, by user: where a notice for a user goes.
    hub: Arc<crate::hub::Hub>,
    /// Sequencers of rooms in use, sharded so rooms rarely meet on a lock. Shared
    /// with the task that drops the idle ones.
    sequencers: Arc<DashMap<RoomId, Arc<Sequencer>>>,
    /// Serialises room creation, so two creations of one name cannot both pass the
    /// existence check. Rare, and never held by a publish.
    creating: tokio::sync::Mutex<()>,
    /// Client message ids remembered per room for idempotent retries.
    dedupe_window: usize,
}

/// One room's order.
pub struct Sequencer {
    room: RoomId,
    /// std Mutex: held to decide and submit, never across an await.
    order: Mutex<Order>,
}

struct Order {
    epoch: Epoch,
    /// The seq of the last ordered event.
    head: Seq,
    /// Every event up to here is durable and delivered.
    durable: Seq,
    last_ts: Millis,
    gate: Gate,
    sent: SentWindow,
    /// Ordered events not yet durable, in seq order, with whoever waits for them.
    in_flight: VecDeque<InFlight>,
    last_used: Instant,
    /// Who is creating the room, while its creation is not yet durable: such
    /// rooms count toward their owner's limit before the store knows them.
    creator: Option<UserId>,
}

struct InFlight {
    seq: Seq,
    waiters: Vec<oneshot::Sender<()>>,
}

/// The newest client message ids of a room: (sender, cmid) → (seq, ts).
#[derive(Default)]
struct SentWindow {
    map: HashMap<(UserId, ClientMsgId), (Seq, Millis)>,
    order: VecDeque<(UserId, ClientMsgId)>,
}

impl SentWindow {
    fn remember(&mut self, key: (UserId, ClientMsgId), at: (Seq, Millis), window: usize) {
        if self.map.insert(key.clone(), at).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > window {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }
}

impl Order {
    /// The order of a room whose events up to `head` are durable.
    fn at(epoch: Epoch, head: Seq, last_ts: Millis, gate: Gate) -> Order {
        Order {
            epoch,
            head,
            durable: head,
            last_ts,
            gate,
            sent: SentWindow::default(),
            in_flight: VecDeque::new(),
            last_used: Instant::now(),
            creator: None,
        }
    }

    /// The order of a stored room, with its newest client message ids.
    fn new(load: &RoomLoad, sent: Vec<SentMessage>, window: usize) -> Order {
        let gate = Gate::of(load.record.cap, &load.members, load.pins.len(), &load.rows);
        let mut order = Order::at(load.record.epoch, load.head, load.last_ts, gate);
        for s in sent {
            order.sent.remember((s.from, s.cmid), (s.seq, s.ts), window);
        }
        order
    }

    /// Nothing in flight: the store holds all of it, so the sequencer can be
    /// dropped and loaded again later.
    fn is_settled(&self) -> bool {
        self.in_flight.is_empty() && self.durable == self.head
    }
}

impl Sequencer {
    fn lock(&self) -> MutexGuard<'_, Order> {
        // Every mutation leaves the order consistent before anything that can panic.
        self.order.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Wakes everyone waiting for events up to `seq`, now durable and delivered.
    fn complete_through(&self, seq: Seq) {
        let mut order = self.lock();
        order.durable = order.durable.max(seq);
        while order.in_flight.front().is_some_and(|f| f.seq <= seq) {
            if let Some(done) = order.in_flight.pop_front() {
                for waiter in done.waiters {
                    let _ = waiter.send(());
                }
            }
        }
    }
}

impl LocalBroker {
    /// A broker over `store`, delivering to `delivery`. With a durable store it
    /// starts the journal (so it must be called inside the Tokio runtime); a failed
    /// commit cancels `fatal`.
    #[allow(clippy::too_many_arguments)] // each a different thing; the server and tests build it
    pub fn start(
        store: Arc<dyn Store>,
        clock: SharedClock,
        delivery: Arc<dyn Delivery>,
        hub: Arc<crate::hub::Hub>,
        dedupe_window: usize,
        idle_after: Duration,
        hold: CommitHold,
        fatal: CancellationToken,
    ) -> LocalBroker {
        let journal = store.is_durable().then(|| {
            let delivery = delivery.clone();
            let mut batch: Vec<Committed> = Vec::new();
            Arc::new(Journal::start(store.clone(), hold, fatal, move |group: Vec<Done>| {
                deliver_group(&*delivery, group, &mut batch);
            }))
        });
        let sequencers = Arc::new(DashMap::new());
        tokio::spawn(drop_idle_sequencers(Arc::downgrade(&sequencers), idle_after));
        LocalBroker {
            store,
            journal,
            clock,
            delivery,
            hub,
            sequencers,
            creating: tokio::sync::Mutex::new(()),
            dedupe_window,
        }
    }

    /// Why the broker stopped, if its store failed.
    pub fn failure(&self) -> Option<String> {
        self.journal.as_ref().and_then(|j| j.failure()).map(|e| e.to_string())
    }

    /// Runs a blocking store call off the runtime's workers.
    async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, BrokerError> {
        let store = self.store.clone();
        let result = tokio::task::spawn_blocking(move || call(&*store)).await.map_err(|_| BrokerError::Stopping)?;
        // Logged here, where the detail is: the client is told only that
        // storage failed (`refusals`).
        result.map_err(|error| {
            tracing::error!(%error, "a store call failed");
            BrokerError::from(error)
        })
    }

    /// The room's sequencer, loaded from the store on first use.
    async fn sequencer(&self, room: &RoomId) -> Result<Arc<Sequencer>, BrokerError> {
        if let Some(found) = self.sequencers.get(room) {
            return Ok(found.clone());
        }
        let window = self.dedupe_window;
        let key = room.clone();
        let (load, sent) = self
            .blocking(move |store| {
                let Some(load) = store.load_room(&key, 0)? else { return Ok((None, Vec::new())) };
                Ok((Some(load), store.recent_cmids(&key, window)?))
            })
            .await?;
        let load = load.ok_or_else(|| BrokerError::NoSuchRoom(room.clone()))?;
        let order = Order::new(&load, sent, window);
        Ok(self.install(room, order))
    }

    /// Makes `order` the room's sequencer unless it has one. Two loads may race;
    /// the first one in wins and the other is dropped. Both read the same durable
    /// state: nothing is in flight for a room with no sequencer.
    fn install(&self, room: &RoomId, order: Order) -> Arc<Sequencer> {
        let fresh = Arc::new(Sequencer { room: room.clone(), order: Mutex::new(order) });
        self.sequencers.entry(room.clone()).or_insert(fresh).clone()
    }

    /// Orders `draft` on `seqr`: the critical section of every publish.
    fn order(&self, seqr: &Arc<Sequencer>, draft: Draft, mut writes: Vec<Write>) -> Result<Receipt, BrokerError> {
        let Some(actor) = draft.actor().cloned() else {
            return Err(BrokerError::NotTimeline);
        };
        let mut order = seqr.lock();
        order.last_used = Instant::now();
        let published = |order: &Order, seq, ts, duplicate| Published { epoch: order.epoch, seq, ts, duplicate };
        let cmid_key = draft.cmid.as_ref().map(|cmid| (actor.clone(), cmid.clone()));
        if let Some(key) = &cmid_key
            && let Some(&(seq, ts)) = order.sent.map.get(key)
        {
            if seq <= order.durable {
                return Ok(Receipt::durable_now(published(&order, seq, ts, true)));
            }
            // The original is still on its way to disk: answer with it.
            let (tx, rx) = oneshot::channel();
            if let Some(in_flight) = order.in_flight.iter_mut().find(|f| f.seq == seq) {
                in_flight.waiters.push(tx);
            }
            return Ok(Receipt::durable_when(published(&order, seq, ts, true), rx));
        }
        // Timestamps never go backwards within a room, even if the clock does.
        let ts = self.clock.now().max(order.last_ts);
        order.gate.check(&draft.requires, ts).map_err(|why| BrokerError::Rejected { room: seqr.room.clone(), why })?;
        let seq = order.head.next();
        let requires = draft.requires;
        let mut event = draft.event;
        event.stamp(seq, ts);
        let changes = room::changes(&event);
        let thread = match &event {
            hearth_protocol::Event::Message(m) => m.thread,
            _ => None,
        };
        let committed = Committed::new(event);
        writes.extend(changes.iter().map(|c| Write::Change { room: seqr.room.clone(), change: c.clone() }));
        writes.push(Write::AppendEvent(EventRow {
            room: seqr.room.clone(),
            seq,
            ts,
            from: actor,
            cmid: cmid_key.as_ref().map(|k| k.1.clone()),
            thread,
            body: committed.encoded.msgpack().clone(),
        }));
        let inline = match &self.journal {
            Some(journal) => {
                journal.submit(writes, (seqr.clone(), committed)).map_err(|e| match e {
                    JournalError::Full => BrokerError::Overloaded,
                    JournalError::Stopped => BrokerError::Stopping,
                })?;
                None
            }
            None => {
                self.store.commit(&writes)?;
                Some(committed)
            }
        };
        // Submitted: from here on the event exists, so the order moves on.
        order.head = seq;
        order.last_ts = ts;
        order.gate.apply(&changes);
        order.gate.ordered(&requires, ts);
        if let Some(key) = cmid_key {
            order.sent.remember(key, (seq, ts), self.dedupe_window);
        }
        let result = published(&order, seq, ts, false);
        if let Some(committed) = inline {
            order.durable = seq;
            // Inline, under the lock, so this room's deliveries keep seq order.
            self.delivery.deliver(&seqr.room, std::slice::from_ref(&committed));
            return Ok(Receipt::durable_now(result));
        }
        let (tx, rx) = oneshot::channel();
        order.in_flight.push_back(InFlight { seq, waiters: vec![tx] });
        Ok(Receipt::durable_when(result, rx))
    }
}

/// Drops sequencers nobody has published through for `idle_after`, every so
/// often, until the broker is gone. Rooms created and never used again, or used
/// only by publishes, are not kept for the rest of the process's life.
async fn drop_idle_sequencers(sequencers: Weak<DashMap<RoomId, Arc<Sequencer>>>, idle_after: Duration) {
    let every = (idle_after / 2).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        let Some(sequencers) = sequencers.upgrade() else { return };
        let now = Instant::now();
        sequencers.retain(|_, seqr| {
            // A publish holding it, or anything in flight, keeps it.
            Arc::strong_count(seqr) > 1 || {
                let order = seqr.lock();
                !order.is_settled() || now.saturating_duration_since(order.last_used) < idle_after
            }
        });
    }
}

/// Delivers one committed group: each run of one room's events together, then
/// wakes their publishers.
fn deliver_group(delivery: &dyn Delivery, group: Vec<Done>, batch: &mut Vec<Committed>) {
    let mut iter = group.into_iter().peekable();
    while let Some((seqr, first)) = iter.next() {
        batch.clear();
        batch.push(first);
        while let Some((next, _)) = iter.peek() {
            if !Arc::ptr_eq(next, &seqr) {
                break;
            }
            if let Some((_, encoded)) = iter.next() {
                batch.push(encoded);
            }
        }
        delivery.deliver(&seqr.room, batch);
        if let Some(last) = batch.last() {
            seqr.complete_through(last.seq());
        }
    }
    batch.clear();
}

impl Broker for LocalBroker {
    fn create_room(&self, record: RoomRecord, first: Draft, max_owned: Option<usize>) -> BrokerFuture<'_, Receipt> {
        Box::pin(async move {
            let room = record.room.clone();
            let seqr = {
                let _creating = self.creating.lock().await;
                if self.sequencers.contains_key(&room) {
                    return Err(BrokerError::AlreadyExists(room));
                }
                let (key, owner) = (room.clone(), record.owner.clone());
                let (exists, owned) = self
                    .blocking(move |store| Ok((store.load_room(&key, 0)?.is_some(), store.rooms_owned(&owner)?)))
                    .await?;
                if exists {
                    return Err(BrokerError::AlreadyExists(room));
                }
                // Rooms whose creation is still in flight count too: they are in
                // the sequencers with nothing durable yet.
                let pending = self
                    .sequencers
                    .iter()
                    .filter(|s| {
                        let order = s.lock();
                        order.durable == Seq::ZERO && order.creator.as_ref() == Some(&record.owner)
                    })
                    .count();
                if let Some(max) = max_owned
                    && owned + pending >= max
                {
                    return Err(BrokerError::TooManyRooms { user: record.owner.clone(), max });
                }
                let mut order = Order::at(record.epoch, Seq::ZERO, record.created_at, Gate::new(record.cap, []));
                order.creator = max_owned.map(|_| record.owner.clone());
                let seqr = Arc::new(Sequencer { room: room.clone(), order: Mutex::new(order) });
                self.sequencers.insert(room.clone(), seqr.clone());
                seqr
            };
            let result = self.order(&seqr, first, vec![Write::CreateRoom(record)]);
            if result.is_err() {
                // Nothing was ordered: the room does not exist after all.
                self.sequencers.remove_if(&room, |_, s| Arc::ptr_eq(s, &seqr));
            }
            result
        })
    }

    fn publish(&self, draft: Draft) -> BrokerFuture<'_, Receipt> {
        Box::pin(async move {
            let room = draft.event.room().cloned().ok_or(BrokerError::NotTimeline)?;
            let seqr = self.sequencer(&room).await?;
            self.order(&seqr, draft, Vec::new())
        })
    }

    fn load_room(&self, room: RoomId, recent: usize) -> BrokerFuture<'_, Option<RoomLoad>> {
        Box::pin(async move {
            // A room loaded is about to be used: make its sequencer from the same
            // read, rather than read the store again on its first publish.
            let needs_order = !self.sequencers.contains_key(&room);
            let (window, key) = (self.dedupe_window, room.clone());
            let (load, sent) = self
                .blocking(move |store| {
                    let load = store.load_room(&key, recent)?;
                    let sent = match &load {
                        Some(_) if needs_order => store.recent_cmids(&key, window)?,
                        _ => Vec::new(),
                    };
                    Ok((load, sent))
                })
                .await?;
            if let (Some(load), true) = (&load, needs_order) {
                self.install(&room, Order::new(load, sent, window));
            }
            Ok(load)
        })
    }

    fn list_rooms(&self, user: UserId, after: Option<RoomId>, limit: usize) -> BrokerFuture<'_, Vec<RoomListing>> {
        Box::pin(self.blocking(move |store| store.list_rooms(&user, after.as_ref(), limit)))
    }

    fn room_names(&self, after: Option<RoomId>, limit: usize) -> BrokerFuture<'_, Vec<RoomId>> {
        Box::pin(self.blocking(move |store| store.room_names(after.as_ref(), limit)))
    }

    fn search_feed(&self, _cursor: Option<String>) -> BrokerFuture<'_, Option<crate::search::FeedPage>> {
        // Every event ordered here is delivered here, past the search tap.
        Box::pin(async { Ok(None) })
    }

    fn history_after(&self, room: RoomId, after: Seq, limit: usize) -> BrokerFuture<'_, Vec<StoredEvent>> {
        Box::pin(async move {
            // Events past the durable head may be on disk already but are not yet
            // delivered: they belong to a later read.
            let durable = self.durable_head(&room);
            let mut events = self.blocking(move |store| store.events_after(&room, after, limit)).await?;
            if let Some(durable) = durable {
                events.retain(|e| e.seq <= durable);
            }
            Ok(events)
        })
    }

    fn history_before(&self, room: RoomId, before: Seq, limit: usize) -> BrokerFuture<'_, Vec<StoredEvent>> {
        Box::pin(async move {
            let before = match self.durable_head(&room) {
                Some(durable) => before.min(durable.next()),
                None => before,
            };
            self.blocking(move |store| store.events_before(&room, before, limit)).await
        })
    }

    fn oldest(&self, room: RoomId) -> BrokerFuture<'_, Seq> {
        Box::pin(self.blocking(move |store| store.oldest(&room)))
    }

    fn copies_trail(&self) -> bool {
        false
    }

    fn order_position(&self, room: RoomId) -> BrokerFuture<'_, Option<hearth_protocol::Position>> {
        // The node's copy is the order: its position is the room's.
        Box::pin(async move { Ok(self.delivery.position(&room)) })
    }

    fn prompt_rooms(&self) -> BrokerFuture<'_, Vec<RoomId>> {
        Box::pin(self.blocking(|store| store.rooms_with(crate::room::RowTable::Prompt)))
    }

    fn index_prompts(&self, _room: RoomId, _any: bool) -> BrokerFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    fn broadcast(&self, room: RoomId, event: hearth_protocol::Event) -> BrokerFuture<'_, ()> {
        // One node: the room's receivers are all here.
        self.delivery.ephemeral(&room, &event);
        Box::pin(async { Ok(()) })
    }

    fn set_presence(&self, _room: RoomId, _users: Vec<UserId>) -> BrokerFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    fn presence(&self, _room: RoomId) -> BrokerFuture<'_, Vec<UserId>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn events_at(&self, room: RoomId, seqs: Vec<Seq>) -> BrokerFuture<'_, Vec<StoredEvent>> {
        Box::pin(async move {
            let durable = self.durable_head(&room);
            self.blocking(move |store| {
                let mut found = Vec::with_capacity(seqs.len());
                for seq in seqs.into_iter().filter(|s| durable.is_none_or(|d| *s <= d)) {
                    let Some(before) = seq.0.checked_sub(1) else { continue };
                    found.extend(store.events_after(&room, Seq(before), 1)?.into_iter().filter(|e| e.seq == seq));
                }
                found.sort_by_key(|e| e.seq);
                Ok(found)
            })
            .await
        })
    }

    fn notify_user(&self, user: UserId, event: hearth_protocol::Event) -> BrokerFuture<'_, ()> {
        // One node: the user's connections are all here.
        self.hub.send_to_user(&user, &event);
        Box::pin(async { Ok(()) })
    }

    fn annex(&self, room: RoomId, table: AnnexTable, targets: Vec<Seq>) -> BrokerFuture<'_, Vec<AnnexRow>> {
        Box::pin(self.blocking(move |store| store.annex(&room, table, &targets)))
    }

    fn annex_before(
        &self,
        room: RoomId,
        table: AnnexTable,
        before: Seq,
        limit: usize,
    ) -> BrokerFuture<'_, Vec<AnnexRow>> {
        Box::pin(self.blocking(move |store| store.annex_before(&room, table, before, limit)))
    }

    fn subscribe(&self, _room: RoomId) -> BrokerFuture<'_, ()> {
        // Every event ordered here is delivered here.
        Box::pin(async { Ok(()) })
    }

    fn unsubscribe(&self, room: RoomId) -> BrokerFuture<'_, ()> {
        Box::pin(async move {
            // Only when nothing is in flight and no publish holds it: a sequencer
            // loaded again later reads the same state back from the store.
            self.sequencers.remove_if(&room, |_, seqr| Arc::strong_count(seqr) == 1 && seqr.lock().is_settled());
            Ok(())
        })
    }

    fn ready(&self) -> BrokerFuture<'_, ()> {
        Box::pin(async move {
            match self.failure() {
                Some(failure) => Err(BrokerError::Store(StoreError::Corrupt { what: "commit", detail: failure })),
                None => Ok(()),
            }
        })
    }

    fn shutdown(&self) -> BrokerFuture<'_, ()> {
        Box::pin(async move {
            if let Some(journal) = self.journal.clone() {
                // Blocking: the committer commits what is queued, then exits.
                tokio::task::spawn_blocking(move || journal.shutdown()).await.map_err(|_| BrokerError::Stopping)?;
            }
            Ok(())
        })
    }
}

impl LocalBroker {
    /// The newest durable seq of a room with a sequencer (others have nothing in
    /// flight, so everything stored is durable).
    fn durable_head(&self, room: &RoomId) -> Option<Seq> {
        self.sequencers.get(room).map(|s| s.lock().durable)
    }
}
