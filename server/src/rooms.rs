//! Rooms in memory: each room's applied state, its newest events, the connections
//! receiving it, and the one delivery path every committed event takes, whoever
//! ordered it.
//!
//! A room is loaded from the broker when it is first touched and dropped again
//! when nobody has used it for a while, so memory follows the active rooms, not
//! the stored ones. One `std::sync::Mutex` per room keeps its deliveries in order;
//! nothing awaits while holding it, and fan-out never waits on a slow reader.
//!
//! Delivery checks continuity: an event that does not follow the last applied one
//! starts a repair that reads the missing events from the broker's history, or,
//! where that history is gone, tells the room's receivers `truncated` and reloads
//! the room's state — never a silent hole.
//!
//! Lock order (ARCHITECTURE.md, "Locks and their order"): a sequencer (an
//! inline delivery), then a room, then a connection's queue or room list. A
//! decision under the room's lock only drafts; the order is asked after it is
//! let go.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hearth_protocol::event::TruncatedEvent;
use hearth_protocol::ops::MemberInfo;
use hearth_protocol::{Epoch, ErrorBody, Event, Millis, Position, Role, RoomId, Seq, UserId};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::broker::Broker;
use crate::frames::{Committed, Encoded, event_frame};
use crate::hub::{Conn, ConnId};
use crate::room::{Refusal, RoomState};
use crate::store::{RoomLoad, StoreError};

mod delivery;
mod join;
mod order;
mod registry;

pub use order::Ordered;
pub use registry::{Loaded, Registry};

/// Tunables of the room layer.
#[derive(Debug, Clone, Copy)]
pub struct RoomLimits {
    /// Committed events each room keeps encoded in memory. A resume within this
    /// window is served without a store read.
    pub recent_events: usize,
    /// Client message ids remembered per room for idempotent retries.
    pub dedupe_window: usize,
    /// A room nobody has used (no receivers, no requests) for this long leaves
    /// memory; it loads again from the store when next touched.
    pub idle_after: Duration,
    /// Connections receiving one room at once; past it `join` answers
    /// `limit_reached` (see `config::Limits`).
    pub receivers: usize,
}

impl Default for RoomLimits {
    fn default() -> Self {
        RoomLimits { recent_events: 256, dedupe_window: 4096, idle_after: Duration::from_secs(60), receivers: 2_000 }
    }
}

/// How long a request waits for this node's copy of a room to reach the
/// order's position by itself (an event ordered through another node arrives
/// within a millisecond or two) before reading the rest from history.
const CATCH_UP_NUDGE: Duration = Duration::from_millis(100);
/// How long it then waits for the copy to catch up before being refused.
pub const CATCH_UP_WAIT: Duration = Duration::from_secs(2);

/// Events fetched per history read during a catch-up or a repair.
const PAGE: usize = 256;
/// Events held back while a gap before them is repaired; past this the newest are
/// dropped and read from history like the gap itself.
const REPAIR_BUFFER: usize = 4096;

/// A member is a newcomer for their first week.
use crate::room::NEWCOMER_MS;

pub struct Room {
    pub id: RoomId,
    inner: Mutex<Inner>,
    /// Wakes tasks waiting for an event to be applied (`wait_applied`).
    applied: Notify,
    broker: Arc<dyn Broker>,
    limits: RoomLimits,
}

struct Inner {
    state: RoomState,
    /// The newest applied events, oldest first, at most `recent_events`.
    recent: VecDeque<Arc<Encoded>>,
    /// Connections receiving the room's events now.
    subscribers: Vec<Arc<Conn>>,
    /// Set while a gap is being filled from history.
    repair: Option<Repair>,
    /// The broker's head as last seen by `resync`, while the room was behind it.
    behind_seen: Option<Seq>,
    last_used: Instant,
}

/// Events that arrived past a gap, waiting for it to be filled.
#[derive(Default)]
struct Repair {
    held: BTreeMap<Seq, Committed>,
    /// The newest seq seen: the repair ends when the room has applied it.
    until: Seq,
}

impl Repair {
    fn hold(&mut self, event: &Committed) {
        self.until = self.until.max(event.seq());
        if self.held.len() < REPAIR_BUFFER {
            self.held.insert(event.seq(), event.clone());
        }
    }
}

impl Inner {
    fn recent_covers(&self, after: Seq) -> bool {
        after >= self.state.head || self.recent.front().is_some_and(|oldest| oldest.seq <= after.next())
    }

    fn subscribe(&mut self, room: &RoomId, conn: &Arc<Conn>) {
        self.subscribers.retain(|s| s.id != conn.id);
        self.subscribers.push(conn.clone());
        conn.receiving(room);
    }

    /// Applies the next event and fans it out.
    fn apply(&mut self, room: &RoomId, event: &Committed, recent_events: usize) {
        if let Err(error) = self.state.apply(&event.event) {
            // Callers check continuity first; this would be a bug, and a hole.
            tracing::error!(room = %room, %error, "delivery out of order");
            return;
        }
        let mut overflowed = false;
        let audience = event.encoded.audience;
        for sub in &self.subscribers {
            // A few events (join requests, invites) go to welcomers and above only.
            if audience > Role::Member
                && self.state.role_of(&sub.user, event.event.ts().unwrap_or(Millis(0))).is_none_or(|r| r < audience)
            {
                continue;
            }
            overflowed |= sub.out.push(event.frame(sub.codec)).is_err();
        }
        let metrics = crate::metrics::get();
        metrics.deliveries.increment(self.subscribers.len() as u64);
        if let Some(ts) = event.event.ts() {
            let now = crate::clock::Clock::now(&crate::clock::SystemClock).0;
            metrics.deliver_seconds.record(now.saturating_sub(ts.0) as f64 / 1000.0);
        }
        if overflowed {
            // Their queues closed themselves as slow consumers; they resume later.
            self.subscribers.retain(|s| !s.out.is_closed());
        }
        if let Some(gone) = crate::room::removed_member(&event.event) {
            // The leave (or kick, or ban) reached every connection of theirs
            // above; from here on they receive nothing. (One still joining stops
            // at its switch to live.)
            self.subscribers.retain(|s| {
                let stays = s.user != *gone;
                if !stays {
                    s.not_receiving(room);
                }
                stays
            });
        }
        self.recent.push_back(event.encoded.clone());
        if self.recent.len() > recent_events {
            self.recent.pop_front();
        }
    }

    /// Tells the receivers that the events after `after` and before `next`
    /// are gone; `epoch` is the room's from here on.
    fn tell_truncated(&self, room: &RoomId, epoch: Epoch, after: Seq, next: Seq) {
        let event = Event::Truncated(TruncatedEvent { room: room.clone(), epoch, after, next });
        for sub in &self.subscribers {
            let _ = sub.out.push(event_frame(sub.codec, &event));
        }
    }
}

impl Room {
    fn new(load: RoomLoad, broker: Arc<dyn Broker>, limits: RoomLimits) -> Result<Room, StoreError> {
        let mut state = RoomState::restore(load.record, load.members, load.pins, &load.rows, load.head, load.last_ts)
            .map_err(|e| StoreError::Corrupt { what: "room row", detail: e.to_string() })?;
        let mut recent = VecDeque::with_capacity(load.recent.len().min(limits.recent_events));
        let keep_from = load.recent.len().saturating_sub(limits.recent_events);
        for (at, stored) in load.recent.iter().enumerate() {
            let committed = Committed::from_stored(stored)?;
            // Slow mode outlives a restart or an eviction as far as the
            // recent events tell who posted when.
            state.note_last_post(&committed.event);
            if at >= keep_from {
                recent.push_back(committed.encoded);
            }
        }
        Ok(Room {
            id: state.record.room.clone(),
            inner: Mutex::new(Inner {
                state,
                recent,
                subscribers: Vec::new(),
                repair: None,
                behind_seen: None,
                last_used: Instant::now(),
            }),
            applied: Notify::new(),
            broker,
            limits,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every mutation below leaves the state consistent before anything that can
        // panic, so a poisoned lock still guards valid state.
        let mut inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        inner.last_used = Instant::now();
        inner
    }

    /// Runs `decide` against the room's applied state.
    pub fn decide<T>(&self, decide: impl FnOnce(&RoomState) -> T) -> T {
        decide(&self.lock().state)
    }

    /// Runs `check` — a question the room's rules may refuse — against the
    /// room's applied state; a refusal comes worded for the client.
    pub fn check<T>(&self, check: impl FnOnce(&RoomState) -> Result<T, Refusal>) -> Result<T, ErrorBody> {
        self.decide(check).map_err(|why| crate::refusals::refused(&self.id, &why))
    }

    pub fn position(&self) -> Position {
        self.lock().state.position()
    }

    fn epoch(&self) -> Epoch {
        self.lock().state.record.epoch
    }

    pub fn is_member(&self, user: &UserId) -> bool {
        self.lock().state.members.contains_key(user)
    }

    /// Members, owners first, with their roles at `now`, their titles, whether
    /// any of their connections receives the room, and mutes in force.
    pub fn members(&self, now: Millis) -> Vec<MemberInfo> {
        let inner = self.lock();
        let rows = &inner.state.rows;
        let mut list: Vec<MemberInfo> = inner
            .state
            .members
            .iter()
            .map(|(user, m)| {
                let role = m.role_at(now);
                MemberInfo {
                    user: user.clone(),
                    role,
                    joined_at: m.joined_at,
                    role_expires_at: m.role_expires_at.filter(|_| role == m.role && role != Role::Member),
                    online: inner.subscribers.iter().any(|s| s.user == *user),
                    title: rows.titles.get(user).cloned(),
                    muted_until: rows.mutes.get(user).filter(|s| s.holds(now)).and_then(|s| s.until),
                    newcomer: now.0.saturating_sub(m.joined_at.0) < NEWCOMER_MS,
                    rules_acked: rows.acks.get(user).copied(),
                }
            })
            .collect();
        list.sort_by(|a, b| b.role.cmp(&a.role).then_with(|| a.user.cmp(&b.user)));
        list
    }

    /// Resolves once the room has applied the event at `seq`.
    pub async fn wait_applied(&self, seq: Seq) {
        self.wait_for(|state| state.head >= seq).await;
    }

    /// Resolves once the room's applied state satisfies `done`.
    pub async fn wait_for(&self, done: impl Fn(&RoomState) -> bool) {
        loop {
            let applied = self.applied.notified();
            if done(&self.lock().state) {
                return;
            }
            applied.await;
        }
    }

    pub fn unsubscribe(&self, conn: ConnId) {
        self.lock().subscribers.retain(|s| s.id != conn);
    }

    /// An ephemeral event (typing, presence) for the connections receiving
    /// the room here; someone's typing is not sent back to them.
    pub fn ephemeral(&self, event: &Event) {
        let inner = self.lock();
        let typist = match event {
            Event::Typing(t) => Some(&t.user),
            _ => None,
        };
        // Encoded once per codec, however many receive it.
        let mut frames: [Option<tokio_tungstenite::tungstenite::Message>; 2] = [None, None];
        for sub in inner.subscribers.iter().filter(|s| Some(&s.user) != typist) {
            let frame = &mut frames[usize::from(sub.codec == hearth_protocol::Codec::Json)];
            let _ = sub.out.push(frame.get_or_insert_with(|| event_frame(sub.codec, event)).clone());
        }
    }

    /// The users with a connection receiving the room here.
    pub fn online_here(&self) -> Vec<UserId> {
        let inner = self.lock();
        let mut users: Vec<UserId> = inner.subscribers.iter().map(|s| s.user.clone()).collect();
        users.sort();
        users.dedup();
        users
    }

    /// Whether the room can leave memory: nobody receives it, nothing is being
    /// repaired, and it has not been used for `idle_after`.
    fn is_idle(&self, now: Instant) -> bool {
        // Not `lock()`: looking must not count as using.
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.subscribers.is_empty()
            && inner.repair.is_none()
            && now.saturating_duration_since(inner.last_used) >= self.limits.idle_after
    }
}

#[cfg(test)]
mod tests;
