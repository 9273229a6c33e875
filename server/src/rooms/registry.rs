//! Every room of the server, loaded on demand: the rooms in memory (where
//! delivery finds them, loads included), and the registry that loads them
//! from the broker, has a copy catch up with the order, and lets idle rooms go.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use hearth_protocol::ops::RoomSummary;
use hearth_protocol::{ErrorBody, Event, Position, RoomId, UserId};
use tokio::sync::OnceCell;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{CATCH_UP_NUDGE, CATCH_UP_WAIT, REPAIR_BUFFER, Room, RoomLimits};
use crate::broker::{Broker, BrokerError, Delivery};
use crate::frames::Committed;
use crate::hub::Hub;
use crate::room::RoomState;
use crate::store::RoomLoad;

/// A room being loaded or loaded. Events delivered while it loads are held and
/// handed to it once it is there, so a load never misses what committed meanwhile.
#[derive(Default)]
struct Slot {
    room: OnceCell<Arc<Room>>,
    early: Mutex<Vec<Committed>>,
}

/// The rooms in memory, by name: where delivery finds them.
#[derive(Default)]
pub struct Loaded {
    rooms: DashMap<RoomId, Arc<Slot>>,
}

impl Loaded {
    /// A room in memory, if it is.
    pub fn get(&self, room: &RoomId) -> Option<Arc<Room>> {
        self.rooms.get(room).and_then(|slot| slot.room.get().cloned())
    }

    /// Forgets every room in memory, at shutdown: a room holds the broker,
    /// whose delivery holds this map, so without it the broker (and a
    /// store's files) would outlive the server that used them.
    pub fn clear(&self) {
        self.rooms.clear();
    }

    /// Every room in memory now.
    pub fn all(&self) -> Vec<Arc<Room>> {
        self.rooms.iter().filter_map(|slot| slot.room.get().cloned()).collect()
    }

    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }
}

impl Delivery for Loaded {
    fn position(&self, room: &RoomId) -> Option<Position> {
        self.get(room).map(|r| r.inner.lock().unwrap_or_else(|p| p.into_inner()).state.position())
    }

    fn resync(&self, room: &RoomId, at: Option<Position>, now: bool) {
        if let Some(room) = self.get(room) {
            room.resync(at, now);
        }
    }

    fn ephemeral(&self, room: &RoomId, event: &Event) {
        if let Some(room) = self.get(room) {
            room.ephemeral(event);
        }
    }

    fn snapshot(&self, room: &RoomId) -> Option<RoomLoad> {
        let room = self.get(room)?;
        let inner = room.inner.lock().unwrap_or_else(|p| p.into_inner());
        let state = &inner.state;
        Some(RoomLoad {
            record: state.record.clone(),
            members: state.member_records(),
            pins: state.pins.clone(),
            rows: state.rows.to_rows(),
            head: state.head,
            last_ts: state.last_ts,
            recent: Vec::new(),
        })
    }

    fn deliver(&self, room: &RoomId, events: &[Committed]) {
        let Some(slot) = self.rooms.get(room).map(|s| s.clone()) else { return };
        if let Some(room) = slot.room.get() {
            return room.deliver(events);
        }
        // The room is loading. Checked again under the lock its loader drains, so
        // the events are either held for the loader or delivered to the room.
        let mut early = slot.early.lock().unwrap_or_else(|p| p.into_inner());
        match slot.room.get() {
            Some(room) => {
                drop(early);
                room.deliver(events);
            }
            // Bounded like a repair: past it, the loaded room repairs from history.
            None if early.len() < REPAIR_BUFFER => early.extend(events.iter().cloned()),
            None => {}
        }
    }
}

/// Every room of the server, loaded on demand: the rooms in memory and the broker
/// that has the rest.
pub struct Registry {
    loaded: Arc<Loaded>,
    broker: Arc<dyn Broker>,
    hub: Arc<Hub>,
    limits: RoomLimits,
}

impl Registry {
    pub fn new(loaded: Arc<Loaded>, broker: Arc<dyn Broker>, hub: Arc<Hub>, limits: RoomLimits) -> Registry {
        Registry { loaded, broker, hub, limits }
    }

    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.broker
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    pub fn loaded(&self) -> &Loaded {
        &self.loaded
    }

    /// The room, loaded from the broker if it is not in memory. Concurrent callers
    /// share one load.
    pub async fn get(&self, room: &RoomId) -> Result<Arc<Room>, ErrorBody> {
        // Every request starts here: a room in memory costs a read lock on its shard.
        if let Some(loaded) = self.loaded.get(room) {
            return Ok(loaded);
        }
        let slot = self.loaded.rooms.entry(room.clone()).or_default().clone();
        let loaded = slot
            .room
            .get_or_try_init(|| async {
                // Subscribe first, so nothing committed during the load is missed.
                self.broker.subscribe(room.clone()).await?;
                let loaded = async {
                    let load = self.broker.load_room(room.clone(), self.limits.recent_events).await?;
                    let load = load.ok_or_else(|| BrokerError::NoSuchRoom(room.clone()))?;
                    Ok::<_, BrokerError>(Arc::new(Room::new(load, self.broker.clone(), self.limits)?))
                }
                .await;
                if loaded.is_err() {
                    let _ = self.broker.unsubscribe(room.clone()).await;
                }
                loaded
            })
            .await;
        match loaded {
            Ok(loaded) => {
                let early = std::mem::take(&mut *slot.early.lock().unwrap_or_else(|p| p.into_inner()));
                if !early.is_empty() {
                    loaded.deliver(&early);
                }
                Ok(loaded.clone())
            }
            Err(error) => {
                // Forget the failed slot (unless someone else's load is under way).
                self.loaded.rooms.remove_if(room, |_, s| Arc::ptr_eq(s, &slot) && s.room.get().is_none());
                Err(error.into())
            }
        }
    }

    /// The room as its order stands now: loaded and — where a node's copy may
    /// trail the order (a cluster) — once the copy has applied every event
    /// ordered before this call, through whichever node. What a request then
    /// reads or decides on includes every change acknowledged before it was
    /// sent (a ban, a membership, a message): read your writes, across nodes.
    /// One read of the order's position in a cluster; nothing on one node.
    pub async fn current(&self, room: &RoomId) -> Result<Arc<Room>, ErrorBody> {
        let loaded = self.get(room).await?;
        if !self.broker.copies_trail() {
            return Ok(loaded);
        }
        // None: Redis lost the room a moment ago; the copy is what there is.
        let Some(order) = self.broker.order_position(room.clone()).await? else {
            return Ok(loaded);
        };
        let reached = |s: &RoomState| s.record.epoch == order.epoch && s.head >= order.seq;
        if tokio::time::timeout(CATCH_UP_NUDGE, loaded.wait_for(reached)).await.is_err() {
            // Not there by now: the event on its way may have been lost;
            // read what is missing from history instead of waiting for a probe.
            loaded.resync(Some(order), true);
            let waited = tokio::time::timeout(CATCH_UP_WAIT, loaded.wait_for(reached)).await;
            waited.map_err(|_| crate::refusals::still_catching_up(room))?;
        }
        Ok(loaded)
    }

    /// Every room `user` is a member of, by name.
    pub async fn rooms_of(&self, user: &UserId) -> Result<Vec<RoomId>, ErrorBody> {
        let mut mine = Vec::new();
        let mut after = None;
        loop {
            let limit = usize::from(hearth_protocol::limits::MAX_ROOM_PAGE);
            let (page, more) = self.list_for(user, after, limit).await?;
            after = page.last().map(|r| r.room.clone());
            mine.extend(page.into_iter().filter(|r| r.role.is_some()).map(|r| r.room));
            if !more || after.is_none() {
                return Ok(mine);
            }
        }
    }

    /// Rooms `user` can see, by name: open and approval rooms, and invite-only
    /// rooms they belong to. Read from durable state, so nothing shows before it
    /// is durable.
    pub async fn list_for(
        &self,
        user: &UserId,
        after: Option<RoomId>,
        limit: usize,
    ) -> Result<(Vec<RoomSummary>, bool), ErrorBody> {
        let mut rooms = self.broker.list_rooms(user.clone(), after, limit + 1).await?;
        let more = rooms.len() > limit;
        rooms.truncate(limit);
        let rooms = rooms
            .into_iter()
            .map(|r| RoomSummary {
                room: r.record.room,
                topic: r.record.topic,
                visibility: r.record.visibility,
                members: r.members,
                cap: r.record.cap,
                role: r.role,
                direct: r.record.direct,
            })
            .collect();
        Ok((rooms, more))
    }

    /// Drops rooms that have been idle for `idle_after`, every so often, until
    /// `stop` fires.
    pub async fn evict_idle(self: Arc<Self>, stop: CancellationToken) {
        let every = (self.limits.idle_after / 2).max(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            self.evict_idle_now().await;
        }
    }

    /// Drops every room idle for `idle_after` now; returns how many.
    pub async fn evict_idle_now(&self) -> usize {
        let now = Instant::now();
        let candidates: Vec<RoomId> = self.loaded.rooms.iter().map(|e| e.key().clone()).collect();
        let mut evicted = 0;
        for room in candidates {
            // Under the shard's write lock: nobody can take the room out of the map
            // meanwhile, and nobody else holds it (a request or a join in progress).
            let removed = self.loaded.rooms.remove_if(&room, |_, slot| {
                Arc::strong_count(slot) == 1
                    && slot.room.get().is_some_and(|r| Arc::strong_count(r) == 1 && r.is_idle(now))
            });
            if removed.is_some() {
                evicted += 1;
                let _ = self.broker.unsubscribe(room).await;
            }
        }
        if evicted > 0 {
            tracing::debug!(evicted, loaded = self.loaded.len(), "idle rooms left memory");
        }
        evicted
    }
}
