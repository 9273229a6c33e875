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

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use dashmap::DashMap;
use hearth_protocol::codec::encode_reply;
use hearth_protocol::event::TruncatedEvent;
use hearth_protocol::ops::{Joined, MemberInfo, ResumeMode, RoomSummary};
use hearth_protocol::{Epoch, ErrorBody, ErrorCode, Event, Millis, Position, RequestId, Role, RoomId, Seq, UserId};
use tokio::sync::{Notify, OnceCell};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::broker::{Broker, BrokerError, Delivery};
use crate::frames::{Committed, Encoded, TextRole, event_frame, frame_message};
use crate::hub::{Conn, ConnId, Hub};
use crate::outbound::BurstError;
use crate::room::messages::{Annotations, TextNow};
use crate::room::rows::VersionAnn;
use crate::room::{RoomState, not_member};
use crate::store::{RoomLoad, StoreError};

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

    /// The one delivery path: committed events of this room, in seq order.
    pub fn deliver(self: &Arc<Self>, events: &[Committed]) {
        let mut inner = self.lock();
        let mut start_repair = false;
        for event in events {
            if let Some(repair) = &mut inner.repair {
                repair.hold(event);
            } else if event.seq() <= inner.state.head {
                // Delivered twice (a repair read it first): already applied.
            } else if event.seq() != inner.state.head.next() {
                let mut repair = Repair::default();
                repair.hold(event);
                inner.repair = Some(repair);
                start_repair = true;
            } else {
                inner.apply(&self.id, event, self.limits.recent_events);
            }
        }
        drop(inner);
        self.applied.notify_waiters();
        if start_repair {
            crate::metrics::get().repairs.increment(1);
            tracing::warn!(room = %self.id, "gap in delivery; reading the missing events from history");
            tokio::spawn(self.clone().repair());
        }
    }

    /// The broker says its order of the room is at `at` (see
    /// [`Delivery::resync`]): catch up from history if behind, reload if the room
    /// was made again under a new epoch.
    pub fn resync(self: &Arc<Self>, at: Option<Position>, now: bool) {
        let Some(at) = at else {
            tracing::error!(room = %self.id, "the broker no longer has this room; its receivers keep what they have");
            return;
        };
        // Not `lock()`: a check is not a use, and must not keep the room in memory.
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.repair.is_some() {
            return;
        }
        let head = inner.state.head;
        if at.epoch != inner.state.record.epoch {
            tracing::warn!(room = %self.id, epoch = %at.epoch.0, "the room was made again; reloading it");
            inner.repair = Some(Repair { held: BTreeMap::new(), until: head });
            drop(inner);
            let room = self.clone();
            tokio::spawn(async move {
                room.reload_after_hole(head).await;
                // The new epoch's events held meanwhile follow the reloaded head:
                // the repair applies them (or reads what is missing) and ends.
                room.repair().await;
            });
            return;
        }
        if at.seq <= head {
            inner.behind_seen = None;
            return;
        }
        let seen = inner.behind_seen.replace(at.seq);
        if now || seen.is_some_and(|seen| seen > head) {
            crate::metrics::get().repairs.increment(1);
            tracing::warn!(room = %self.id, %head, broker = %at.seq, "behind the broker's order; reading history");
            inner.behind_seen = None;
            inner.repair = Some(Repair { held: BTreeMap::new(), until: at.seq });
            drop(inner);
            tokio::spawn(self.clone().repair());
        }
    }

    /// Fills a gap: reads what is missing from history and applies it, then what
    /// was held back. Where history no longer has it, receivers are told
    /// `truncated` and the state is reloaded.
    async fn repair(self: Arc<Self>) {
        let mut failures = 0u32;
        loop {
            let (after, until) = {
                let mut inner = self.lock();
                let limits = self.limits;
                if inner.repair.is_none() {
                    return;
                }
                // Apply what was held back and now follows.
                let head = inner.state.head;
                let mut next = head.next();
                let mut ready = Vec::new();
                let repair = inner.repair.as_mut().expect("checked above");
                while let Some(event) = repair.held.remove(&next) {
                    next = next.next();
                    ready.push(event);
                }
                repair.held.retain(|seq, _| *seq >= next);
                let until = repair.until;
                for event in &ready {
                    inner.apply(&self.id, event, limits.recent_events);
                }
                if inner.state.head >= until {
                    inner.repair = None;
                    drop(inner);
                    self.applied.notify_waiters();
                    return;
                }
                (inner.state.head, until)
            };
            self.applied.notify_waiters();
            let want = usize::try_from(until.0 - after.0).unwrap_or(PAGE).min(PAGE);
            let page = match self.broker.history_after(self.id.clone(), after, want).await {
                Ok(page) => page,
                Err(error) => {
                    failures += 1;
                    tracing::warn!(room = %self.id, %error, failures, "repair could not read history; retrying");
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(failures.min(50)))).await;
                    continue;
                }
            };
            failures = 0;
            let hole = page.first().is_none_or(|first| first.seq != after.next());
            if hole {
                self.reload_after_hole(after).await;
                continue;
            }
            let mut inner = self.lock();
            for stored in page.iter().filter(|s| s.seq <= until) {
                if stored.seq != inner.state.head.next() {
                    break;
                }
                match Committed::from_stored(stored) {
                    Ok(event) => inner.apply(&self.id, &event, self.limits.recent_events),
                    Err(error) => {
                        tracing::error!(room = %self.id, %error, "unreadable event in history");
                        break;
                    }
                }
            }
        }
    }

    /// History lost the events after `after`: reload the state as the broker has it
    /// now, and tell receivers what they will never get.
    async fn reload_after_hole(&self, after: Seq) {
        let load = match self.broker.load_room(self.id.clone(), 0).await {
            Ok(Some(load)) => load,
            Ok(None) | Err(_) => {
                tracing::error!(room = %self.id, "room vanished during a repair");
                tokio::time::sleep(Duration::from_secs(1)).await;
                return;
            }
        };
        let mut inner = self.lock();
        if inner.state.head != after {
            return; // someone else moved on meanwhile; look again
        }
        // A room made again (a new epoch) counts on from the head it was made
        // with; within one epoch the head never goes back.
        let head = if load.record.epoch == inner.state.record.epoch { load.head.max(after) } else { load.head };
        tracing::warn!(room = %self.id, %after, next = %head.next(), "history lost; receivers told truncated");
        inner.tell_truncated(&self.id, load.record.epoch, after, head.next());
        match RoomState::restore(load.record, load.members, load.pins, &load.rows, head, load.last_ts) {
            Ok(state) => inner.state = state,
            Err(error) => {
                tracing::error!(room = %self.id, %error, "the reloaded room is unreadable; kept the old copy")
            }
        }
        inner.recent.clear();
        if let Some(repair) = inner.repair.as_mut() {
            repair.held.retain(|seq, _| *seq > head);
        }
    }

    /// Starts receiving the room on `conn`, answering the `join` request `id` first:
    /// with `since`, the events after it, then live ones — no gap, no duplicate at
    /// the switch, which happens under the room's lock after checking, in the
    /// room's order, that the user is still a member.
    pub async fn join(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        id: RequestId,
        since: Option<Position>,
        first_join: bool,
        now: Millis,
    ) -> Result<(), ErrorBody> {
        let (after, replied) = {
            let mut inner = self.lock();
            let role = inner.state.role_of(&conn.user, now).ok_or_else(|| not_member(&self.id))?;
            if inner.subscribers.len() >= self.limits.receivers {
                return Err(ErrorBody::new(
                    ErrorCode::LimitReached,
                    format!(
                        "room {} has {} connections receiving it, the most this server allows",
                        self.id, self.limits.receivers
                    ),
                ));
            }
            let head = inner.state.head;
            let mode = match since {
                None => ResumeMode::Fresh,
                Some(p) if p.epoch != inner.state.record.epoch || p.seq > head => ResumeMode::Truncated,
                Some(_) => ResumeMode::Replay,
            };
            let after = since.map_or(head, |p| p.seq);
            if mode != ResumeMode::Replay {
                push_reply(conn, id, &joined_reply(&inner.state, role, mode, first_join));
                inner.subscribe(&self.id, conn);
                return Ok(());
            }
            // Covered by the recent events: reply now; the catch-up below sends
            // them and subscribes in one step under the lock.
            let replied = inner.recent_covers(after);
            if replied {
                push_reply(conn, id, &joined_reply(&inner.state, role, mode, first_join));
            }
            (after, replied)
        };
        let after = if replied {
            after
        } else {
            // What follows `after` is older than the recent events: is it still held?
            let oldest = self.broker.oldest(self.id.clone()).await.map_err(|e| e.to_error())?;
            let mode = if oldest > after.next() { ResumeMode::Truncated } else { ResumeMode::Replay };
            let inner = self.lock();
            let role = inner.state.role_of(&conn.user, now).ok_or_else(|| not_member(&self.id))?;
            push_reply(conn, id, &joined_reply(&inner.state, role, mode, first_join));
            if mode == ResumeMode::Truncated { inner.state.head } else { after }
        };
        if let Err(error) = self.catch_up_and_subscribe(conn, after, now).await {
            // The request has its reply already; a stream with a hole in it is worse
            // than a reconnect, which resumes from the client's last position.
            tracing::warn!(conn = conn.id.0, room = %self.id, %error, "catch-up failed; closing");
            conn.out.close(
                hearth_protocol::CloseCode::InternalError,
                format!("internal_error: catch-up failed ({}); reconnect and resume", error.code),
            );
        }
        Ok(())
    }

    /// Sends `conn` every applied event after `after` — older ones read from the
    /// broker page by page, with backpressure — then subscribes it under the lock.
    /// A page that does not start where the last one ended means the events in
    /// between are gone: the client is told `truncated`, never left with a hole.
    /// The final step sends the rest from the recent events in one burst, which
    /// must fit in the connection's queue; when it does not, those events go out
    /// with backpressure first and the step is tried again closer to the head.
    async fn catch_up_and_subscribe(&self, conn: &Arc<Conn>, mut after: Seq, now: Millis) -> Result<(), ErrorBody> {
        // What this member may receive of the events for welcomers and above.
        let role = self.lock().state.role_of(&conn.user, now).unwrap_or(Role::Member);
        // Each pass either finishes or moves `after` forward; the bound only stops a
        // reader that can never catch a room writing faster than it.
        for _ in 0..100_000 {
            // Messages edited or deleted after `after`: their old text is not replayed.
            let (recent, changed): (Vec<Arc<Encoded>>, BTreeMap<Seq, TextNow>) = {
                let mut inner = self.lock();
                if !inner.recent_covers(after) {
                    (Vec::new(), BTreeMap::new())
                } else {
                    if !inner.state.members.contains_key(&conn.user) {
                        // They left while catching up; the replay showed it.
                        return Ok(());
                    }
                    let recent: Vec<Arc<Encoded>> = inner.recent.iter().filter(|e| e.seq > after).cloned().collect();
                    let changed = changes_among(&recent);
                    let burst = recent
                        .iter()
                        .filter(|e| e.audience <= role)
                        .map(|e| e.frame_now(conn.codec, &changed))
                        .collect();
                    match conn.out.try_push_burst(burst) {
                        Ok(()) => {
                            inner.subscribe(&self.id, conn);
                            return Ok(());
                        }
                        Err(BurstError::Closed) => return Ok(()),
                        // Too much at once for the queue's bound: send these with
                        // backpressure first, then try again closer to the head.
                        Err(BurstError::TooBig(_)) => (recent, changed),
                    }
                }
            };
            if !recent.is_empty() {
                for encoded in recent {
                    if encoded.audience <= role
                        && conn.out.push_wait(encoded.frame_now(conn.codec, &changed)).await.is_err()
                    {
                        return Ok(());
                    }
                    after = encoded.seq;
                }
                continue;
            }
            let page = self.broker.history_after(self.id.clone(), after, PAGE).await.map_err(|e| e.to_error())?;
            match page.first() {
                None => {
                    // Nothing held after `after`, yet the room is past it: the rest is
                    // gone. Skip to the recent events (or the head) next pass.
                    let next = {
                        let inner = self.lock();
                        inner.recent.front().map_or(inner.state.head.next(), |e| e.seq)
                    };
                    if conn.out.push_wait(truncated_frame(conn, &self.id, self.epoch(), after, next)).await.is_err() {
                        return Ok(());
                    }
                    after = Seq(next.0 - 1);
                    continue;
                }
                Some(first) if first.seq != after.next() => {
                    if conn
                        .out
                        .push_wait(truncated_frame(conn, &self.id, self.epoch(), after, first.seq))
                        .await
                        .is_err()
                    {
                        return Ok(());
                    }
                }
                Some(_) => {}
            }
            let page = page
                .iter()
                .map(Committed::from_stored)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| BrokerError::from(e).to_error())?;
            let changed = self.changes_to(&page).await?;
            for committed in &page {
                let encoded = &committed.encoded;
                if encoded.audience <= role
                    && conn.out.push_wait(encoded.frame_now(conn.codec, &changed)).await.is_err()
                {
                    return Ok(());
                }
                after = encoded.seq;
            }
        }
        Err(ErrorBody::new(ErrorCode::Overloaded, "could not catch up with this room; rejoin with since")
            .retry_after(1000))
    }

    /// What became of the text of the messages `page` carries text of — by
    /// now, wherever the edit or deletion is in the timeline, so it is read
    /// from their annotations (one read for the page).
    async fn changes_to(&self, page: &[Committed]) -> Result<BTreeMap<Seq, TextNow>, ErrorBody> {
        let mut texts: Vec<Seq> = page.iter().filter_map(|c| c.encoded.carries_text_of()).collect();
        texts.sort();
        texts.dedup();
        if texts.is_empty() {
            return Ok(BTreeMap::new());
        }
        let rows = self
            .broker
            .annex(self.id.clone(), crate::store::AnnexTable::Message, texts.clone())
            .await
            .map_err(|e| e.to_error())?;
        Ok(texts
            .into_iter()
            .filter_map(|seq| {
                let notes = Annotations::read(rows.iter().filter(|r| r.target == seq));
                TextNow::of(&notes).map(|now| (seq, now))
            })
            .collect())
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

fn joined_reply(state: &RoomState, role: Role, resume: ResumeMode, first_join: bool) -> Joined {
    Joined { room: state.info(), role, resume, pins: state.ordered_pins(), first_join }
}

fn push_reply(conn: &Conn, id: RequestId, joined: &Joined) {
    let _ = conn.out.push(frame_message(conn.codec, encode_reply(conn.codec, id, joined)));
}

fn truncated_frame(
    conn: &Conn,
    room: &RoomId,
    epoch: Epoch,
    after: Seq,
    next: Seq,
) -> tokio_tungstenite::tungstenite::Message {
    event_frame(conn.codec, &Event::Truncated(TruncatedEvent { room: room.clone(), epoch, after, next }))
}

/// What the edits and deletions among `events` (consecutive, oldest first)
/// made of their messages' text. A message's later edits and its deletion
/// always follow it, so for a replay of `events` this is all there is.
fn changes_among(events: &[Arc<Encoded>]) -> BTreeMap<Seq, TextNow> {
    let mut changed: BTreeMap<Seq, TextNow> = BTreeMap::new();
    for encoded in events {
        let (message, now) = match encoded.text {
            TextRole::Deletes(message) => (message, TextNow::Deleted),
            TextRole::Edits(message) => match encoded.event() {
                Event::Edit(edit) => (message, TextNow::Edited(VersionAnn { text: edit.text, at: edit.ts })),
                _ => continue,
            },
            TextRole::None | TextRole::Posts | TextRole::Pins(_) => continue,
        };
        match changed.get_mut(&message) {
            Some(earlier) => earlier.then(now),
            None => {
                changed.insert(message, now);
            }
        }
    }
    changed
}

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
                Err(error.to_error())
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
        let Some(order) = self.broker.order_position(room.clone()).await.map_err(|e| e.to_error())? else {
            return Ok(loaded);
        };
        let reached = |s: &RoomState| s.record.epoch == order.epoch && s.head >= order.seq;
        if tokio::time::timeout(CATCH_UP_NUDGE, loaded.wait_for(reached)).await.is_err() {
            // Not there by now: the event on its way may have been lost;
            // read what is missing from history instead of waiting for a probe.
            loaded.resync(Some(order), true);
            tokio::time::timeout(CATCH_UP_WAIT, loaded.wait_for(reached)).await.map_err(|_| {
                ErrorBody::new(
                    ErrorCode::Overloaded,
                    format!("this node is still catching up with room {room}; retry shortly"),
                )
                .retry_after(500)
            })?;
        }
        Ok(loaded)
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
        let mut rooms = self.broker.list_rooms(user.clone(), after, limit + 1).await.map_err(|e| e.to_error())?;
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

#[cfg(test)]
mod tests;
