//! Rooms: the registry of every room on this node, and each room's live state —
//! members, pins, the seq counter, the recent events, and the connections
//! subscribed to it. This is the hot path.
//!
//! One `std::sync::Mutex` per room decides the order of its events. Under it a
//! request is checked, gets the next seq, and is handed to the journal; when the
//! journal reports the event durable (`commit_through`), the room encodes nothing
//! new — the MessagePack frame was encoded once at append time, JSON lazily once —
//! and pushes a reference-counted copy into each subscriber's bounded queue.
//! Nothing here awaits while holding the lock; fan-out never waits on a slow reader.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;
use dashmap::DashMap;
use hearth_protocol::codec::{encode_event, encode_reply};
use hearth_protocol::event::{LeftReason, MemberJoinedEvent, MemberLeftEvent, MessageEvent, PinEvent, UnpinEvent};
use hearth_protocol::ops::{
    Appended, CreateRoom, Done, Joined, MemberInfo, Pinned, PinnedNote, ResumeMode, RoomInfo, RoomSummary, SendMessage,
    Visibility,
};
use hearth_protocol::{
    ClientMsgId, Codec, Epoch, ErrorBody, ErrorCode, Event, Millis, Note, PinId, Position, RequestId, Role, RoomId,
    Seq, ShortText, UserId, limits,
};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::journal::{Job, Journal, JournalError, Submitted};
use crate::outbound::Outbound;
use crate::store::{EventRow, MemberRecord, RoomRecord, RoomSnapshot, Store, StoreError, StoredEvent, Write};

/// Tunables of the room layer.
#[derive(Debug, Clone, Copy)]
pub struct RoomLimits {
    /// Committed events each room keeps encoded in memory. A resume within this
    /// window is served without touching the store.
    pub recent_events: usize,
    /// Client message ids remembered per room for idempotent retries.
    pub dedupe_window: usize,
}

impl Default for RoomLimits {
    fn default() -> Self {
        RoomLimits { recent_events: 256, dedupe_window: 4096 }
    }
}

/// Identifies one connection on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

/// A connection receiving a room's events.
#[derive(Clone)]
pub struct Subscriber {
    pub conn: ConnId,
    pub user: UserId,
    pub codec: Codec,
    pub out: Arc<Outbound>,
}

/// A timeline event, encoded once per codec in use.
pub struct Encoded {
    pub seq: Seq,
    event: Event,
    msgpack: Bytes,
    json: OnceLock<Utf8Bytes>,
}

impl Encoded {
    fn new(event: Event) -> Encoded {
        let seq = event.seq().expect("timeline events carry a seq");
        let msgpack = Bytes::from(encode_event(Codec::MsgPack, &event));
        Encoded { seq, event, msgpack, json: OnceLock::new() }
    }

    fn from_stored(stored: &StoredEvent) -> Result<Encoded, StoreError> {
        let event: Event = rmp_serde::from_slice(&stored.body)
            .map_err(|e| StoreError::Corrupt { what: "stored event", detail: e.to_string() })?;
        Ok(Encoded { seq: stored.seq, event, msgpack: stored.body.clone(), json: OnceLock::new() })
    }

    /// The WebSocket message for `codec`; a reference-count bump after the first.
    pub fn frame(&self, codec: Codec) -> Message {
        match codec {
            Codec::MsgPack => Message::Binary(self.msgpack.clone()),
            Codec::Json => Message::Text(
                self.json
                    .get_or_init(|| {
                        let json = encode_event(Codec::Json, &self.event);
                        Utf8Bytes::try_from(json).expect("serde_json writes UTF-8")
                    })
                    .clone(),
            ),
        }
    }
}

/// Turns a stored MessagePack event into a frame for `codec`.
pub fn stored_frame(codec: Codec, stored: &StoredEvent) -> Result<Message, StoreError> {
    match codec {
        Codec::MsgPack => Ok(Message::Binary(stored.body.clone())),
        Codec::Json => Encoded::from_stored(stored).map(|e| e.frame(Codec::Json)),
    }
}

/// What to do once an event is durable.
pub enum Ack {
    /// Reply to the request that caused the event.
    Reply { out: Arc<Outbound>, codec: Codec, id: RequestId, body: AckBody },
    /// Wake a task waiting for the event (a join waiting for its membership).
    Wake(oneshot::Sender<()>),
}

pub enum AckBody {
    Appended,
    Pinned(PinnedNote),
    Done,
}

impl Ack {
    fn fire(self, seq: Seq, ts: Millis) {
        match self {
            Ack::Reply { out, codec, id, body } => {
                let frame = match body {
                    AckBody::Appended => encode_reply(codec, id, &Appended { seq, ts }),
                    AckBody::Pinned(pin) => encode_reply(codec, id, &Pinned { seq, pin }),
                    AckBody::Done => encode_reply(codec, id, &Done {}),
                };
                // A full queue closes the connection as a slow consumer; the client
                // retries with the same cmid and gets this same seq.
                let _ = out.push(frame_message(codec, frame));
            }
            Ack::Wake(tx) => {
                let _ = tx.send(());
            }
        }
    }
}

/// Wraps encoded bytes in the frame type of `codec`.
pub fn frame_message(codec: Codec, bytes: Vec<u8>) -> Message {
    match codec {
        Codec::MsgPack => Message::Binary(Bytes::from(bytes)),
        Codec::Json => Message::Text(Utf8Bytes::try_from(bytes).expect("serde_json writes UTF-8")),
    }
}

struct Pending {
    encoded: Arc<Encoded>,
    ts: Millis,
    ack: Ack,
    /// Retries of the same send that arrived before it was durable.
    retries: Vec<Ack>,
}

pub struct Room {
    pub id: RoomId,
    state: Mutex<RoomState>,
    journal: Arc<Journal>,
    limits: RoomLimits,
}

struct RoomState {
    record: RoomRecord,
    members: HashMap<UserId, MemberRecord>,
    pins: Vec<PinnedNote>,
    next_pin: u64,
    /// The seq the next event gets.
    next_seq: Seq,
    /// Every event up to here is durable and has been fanned out.
    committed: Seq,
    /// Events with a seq, handed to the journal, not yet durable; seq order.
    pending: VecDeque<Pending>,
    /// The newest committed events, oldest first, at most `recent_events`.
    recent: VecDeque<Arc<Encoded>>,
    subscribers: Vec<Subscriber>,
    /// (sender, cmid) → (seq, ts) of recent sends, for idempotent retries.
    sent: HashMap<(UserId, ClientMsgId), (Seq, Millis)>,
    sent_order: VecDeque<(UserId, ClientMsgId)>,
    last_ts: Millis,
}

/// The start of a join: the reply to send, and where the catch-up begins.
pub struct JoinStart {
    pub joined: Joined,
    /// Replay events with seq greater than this, then go live.
    pub after: Seq,
    /// Resolves when the new membership is durable (first joins only).
    pub durable: Option<oneshot::Receiver<()>>,
}

pub enum SendOutcome {
    /// Appended; the reply follows when the event is durable.
    Queued,
    /// A retry of a send that is already durable: here is its original result.
    Duplicate(Appended),
}

/// Events fetched per store read during a catch-up.
const CATCH_UP_PAGE: usize = 256;

pub fn now_millis() -> Millis {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Millis(now.as_millis() as u64)
}

fn journal_error(error: JournalError) -> ErrorBody {
    match error {
        JournalError::Full => {
            ErrorBody::new(ErrorCode::Overloaded, "the server's write queue is full; retry shortly").retry_after(100)
        }
        JournalError::Stopped => {
            ErrorBody::new(ErrorCode::Overloaded, "the server is shutting down; reconnect and retry").retry_after(1000)
        }
        JournalError::Store(e) => ErrorBody::new(ErrorCode::Internal, format!("storage failed: {e}")),
    }
}

fn store_error(error: StoreError) -> ErrorBody {
    tracing::error!(%error, "store read failed");
    ErrorBody::new(ErrorCode::Internal, "reading history failed on the server; retry later")
}

impl Room {
    fn lock(&self) -> MutexGuard<'_, RoomState> {
        // Every mutation below leaves the state consistent before anything that can
        // panic, so a poisoned lock still guards valid state.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn from_snapshot(snapshot: RoomSnapshot, journal: Arc<Journal>, limits: RoomLimits) -> Result<Room, StoreError> {
        let mut state = RoomState {
            next_pin: snapshot.pins.iter().map(|p| p.pin.0).max().unwrap_or(0) + 1,
            record: snapshot.record,
            members: snapshot.members.into_iter().map(|m| (m.user.clone(), m)).collect(),
            pins: snapshot.pins,
            next_seq: snapshot.head.next(),
            committed: snapshot.head,
            pending: VecDeque::new(),
            recent: VecDeque::new(),
            subscribers: Vec::new(),
            sent: HashMap::new(),
            sent_order: VecDeque::new(),
            last_ts: Millis(0),
        };
        for stored in &snapshot.recent {
            let encoded = Encoded::from_stored(stored)?;
            if let Event::Message(m) = &encoded.event {
                state.remember_send(m.from.clone(), m.cmid.clone(), m.seq, m.ts, limits.dedupe_window);
            }
            state.last_ts = state.last_ts.max(encoded.event.ts().unwrap_or(Millis(0)));
            state.recent.push_back(Arc::new(encoded));
        }
        while state.recent.len() > limits.recent_events {
            state.recent.pop_front();
        }
        let id = state.record.room.clone();
        Ok(Room { id, state: Mutex::new(state), journal, limits })
    }

    fn info_locked(state: &RoomState) -> RoomInfo {
        let r = &state.record;
        RoomInfo {
            room: r.room.clone(),
            topic: r.topic.clone(),
            cap: r.cap,
            visibility: r.visibility,
            members: state.members.len() as u32,
            epoch: r.epoch,
            head: state.committed,
            owner: r.owner.clone(),
            created_at: r.created_at,
            slow_mode_secs: r.slow_mode_secs,
            required_role: r.required_role,
            welcome: r.welcome.clone(),
            probation_secs: r.probation_secs,
        }
    }

    pub fn info(&self) -> RoomInfo {
        Self::info_locked(&self.lock())
    }

    /// The room as `user` sees it in a listing, or `None` if it is hidden from them.
    pub fn summary_for(&self, user: &UserId) -> Option<RoomSummary> {
        let state = self.lock();
        let role = state.members.get(user).map(|m| m.role);
        if state.record.visibility == Visibility::InviteOnly && role.is_none() {
            return None;
        }
        Some(RoomSummary {
            room: state.record.room.clone(),
            topic: state.record.topic.clone(),
            visibility: state.record.visibility,
            members: state.members.len() as u32,
            cap: state.record.cap,
            role,
        })
    }

    /// Members, owners first, with whether any of their connections is subscribed.
    pub fn members(&self) -> Vec<MemberInfo> {
        let state = self.lock();
        let mut list: Vec<MemberInfo> = state
            .members
            .values()
            .map(|m| MemberInfo {
                user: m.user.clone(),
                role: m.role,
                joined_at: m.joined_at,
                role_expires_at: m.role_expires_at,
                online: state.subscribers.iter().any(|s| s.user == m.user),
            })
            .collect();
        list.sort_by(|a, b| b.role.cmp(&a.role).then_with(|| a.user.cmp(&b.user)));
        list
    }

    pub fn role_of(&self, user: &UserId) -> Option<Role> {
        self.lock().members.get(user).map(|m| m.role)
    }

    /// Epoch and committed head, for history replies.
    pub fn position(&self) -> Position {
        let state = self.lock();
        Position { epoch: state.record.epoch, seq: state.committed }
    }

    /// Assigns the next seq to the event `build` makes and submits it with `writes`.
    /// The caller applies its in-memory change only after this returns Ok.
    fn append_locked(
        self: &Arc<Self>,
        state: &mut RoomState,
        from: &UserId,
        build: impl FnOnce(Seq, Millis) -> Event,
        mut writes: Vec<Write>,
        ack: Ack,
    ) -> Result<(Seq, Millis), ErrorBody> {
        let seq = state.next_seq;
        // Timestamps never go backwards within a room, even if the clock does.
        let ts = now_millis().max(state.last_ts);
        let event = build(seq, ts);
        let (cmid, thread) = match &event {
            Event::Message(m) => (Some(m.cmid.clone()), m.thread),
            _ => (None, None),
        };
        let encoded = Arc::new(Encoded::new(event));
        writes.push(Write::AppendEvent(EventRow {
            room: self.id.clone(),
            seq,
            ts,
            from: from.clone(),
            cmid,
            thread,
            body: encoded.msgpack.clone(),
        }));
        let submitted = self.journal.submit(Job { writes, room: self.clone(), seq }).map_err(journal_error)?;
        state.next_seq = seq.next();
        state.last_ts = ts;
        state.pending.push_back(Pending { encoded, ts, ack, retries: Vec::new() });
        if submitted == Submitted::Applied {
            state.commit_through(seq, self.limits);
        }
        Ok((seq, ts))
    }

    /// Called by the journal once every event up to `seq` is durable.
    pub fn commit_through(&self, seq: Seq) {
        self.lock().commit_through(seq, self.limits);
    }

    /// Starts a join: checks the caller may join, makes it a member if it is not,
    /// and decides how its `since` is served.
    pub fn begin_join(self: &Arc<Self>, user: &UserId, since: Option<Position>) -> Result<JoinStart, ErrorBody> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut durable = None;
        let first_join = !state.members.contains_key(user);
        if first_join {
            match state.record.visibility {
                Visibility::Open => {}
                Visibility::Approval => {
                    return Err(ErrorBody::new(
                        ErrorCode::ApprovalRequired,
                        format!("room {} vets new members: send request_join and wait for approval", self.id),
                    ));
                }
                Visibility::InviteOnly => {
                    return Err(ErrorBody::new(
                        ErrorCode::InviteRequired,
                        format!("room {} is invite-only: join with an invite code from a member", self.id),
                    ));
                }
            }
            if state.members.len() >= state.record.cap as usize {
                return Err(ErrorBody::new(
                    ErrorCode::RoomFull,
                    format!(
                        "room {} is full ({} members); ask a moderator to raise the cap",
                        self.id, state.record.cap
                    ),
                ));
            }
            let member =
                MemberRecord { user: user.clone(), role: Role::Member, joined_at: now_millis(), role_expires_at: None };
            let (tx, rx) = oneshot::channel();
            let room = self.id.clone();
            self.append_locked(
                state,
                user,
                |seq, ts| {
                    Event::MemberJoined(MemberJoinedEvent { room, seq, ts, from: user.clone(), role: Role::Member })
                },
                vec![Write::PutMember { room: self.id.clone(), member: member.clone() }],
                Ack::Wake(tx),
            )?;
            state.members.insert(user.clone(), member);
            durable = Some(rx);
        }
        let head = state.committed;
        let (resume, after) = match since {
            None => (ResumeMode::Fresh, head),
            Some(pos) if pos.epoch != state.record.epoch || pos.seq >= state.next_seq => (ResumeMode::Truncated, head),
            Some(pos) => (ResumeMode::Replay, pos.seq),
        };
        let joined = Joined {
            room: Self::info_locked(state),
            role: state.members[user].role,
            resume,
            pins: state.pins.clone(),
            first_join,
        };
        Ok(JoinStart { joined, after, durable })
    }

    /// True when the events after `after` are no longer all held: the recent cache
    /// does not reach back that far and the store's oldest event is later.
    pub async fn history_gap(&self, store: &Arc<dyn Store>, after: Seq) -> Result<bool, ErrorBody> {
        if self.lock().recent_covers(after) {
            return Ok(false);
        }
        let (store, room) = (store.clone(), self.id.clone());
        let oldest = tokio::task::spawn_blocking(move || store.oldest(&room))
            .await
            .map_err(|_| ErrorBody::new(ErrorCode::Internal, "history read was cancelled"))?
            .map_err(store_error)?;
        Ok(oldest > after.next())
    }

    /// Sends `sub` every committed event after `after`, then subscribes it, with no
    /// gap and no duplicate at the switch: the final step runs under the room lock,
    /// so no event can be fanned out between the last replayed one and the
    /// subscription. Older events come from the store in pages, with backpressure.
    pub async fn catch_up_and_subscribe(
        &self,
        store: &Arc<dyn Store>,
        sub: Subscriber,
        mut after: Seq,
    ) -> Result<(), ErrorBody> {
        // Each pass either finishes or moves `after` forward by a page; the bound
        // only stops a reader that can never catch a room writing faster than it.
        for _ in 0..10_000 {
            let committed = {
                let mut state = self.lock();
                if state.recent_covers(after) || after >= state.committed {
                    let burst = state.recent.iter().filter(|e| e.seq > after).map(|e| e.frame(sub.codec));
                    if sub.out.push_unbounded_burst(burst).is_err() {
                        return Ok(()); // the connection is closing
                    }
                    state.subscribers.retain(|s| s.conn != sub.conn);
                    state.subscribers.push(sub);
                    return Ok(());
                }
                state.committed
            };
            let (store, room) = (store.clone(), self.id.clone());
            let page = tokio::task::spawn_blocking(move || store.events_after(&room, after, CATCH_UP_PAGE))
                .await
                .map_err(|_| ErrorBody::new(ErrorCode::Internal, "history read was cancelled"))?
                .map_err(store_error)?;
            if page.is_empty() {
                // The store lags the cache only if events vanished: never expected.
                return Err(ErrorBody::new(ErrorCode::Internal, "history ended early; rejoin without since"));
            }
            for stored in page.iter().filter(|e| e.seq <= committed) {
                let frame = stored_frame(sub.codec, stored).map_err(store_error)?;
                if sub.out.push_wait(frame).await.is_err() {
                    return Ok(());
                }
                after = stored.seq;
            }
        }
        Err(ErrorBody::new(ErrorCode::Overloaded, "could not catch up with this room; rejoin with since")
            .retry_after(1000))
    }

    pub fn unsubscribe(&self, conn: ConnId) {
        self.lock().subscribers.retain(|s| s.conn != conn);
    }

    /// Ends `user`'s membership. All its connections stop receiving the room.
    pub fn leave(self: &Arc<Self>, user: &UserId, ack: Ack) -> Result<(), ErrorBody> {
        let mut guard = self.lock();
        let state = &mut *guard;
        if !state.members.contains_key(user) {
            return Err(not_member(&self.id));
        }
        if state.record.owner == *user {
            return Err(ErrorBody::new(
                ErrorCode::Forbidden,
                format!("{user} owns room {}; an owner cannot leave it", self.id),
            ));
        }
        let room = self.id.clone();
        self.append_locked(
            state,
            user,
            |seq, ts| {
                Event::MemberLeft(MemberLeftEvent {
                    room,
                    seq,
                    ts,
                    from: user.clone(),
                    user: user.clone(),
                    reason: LeftReason::Left,
                })
            },
            vec![Write::RemoveMember { room: self.id.clone(), user: user.clone() }],
            ack,
        )?;
        state.members.remove(user);
        state.subscribers.retain(|s| s.user != *user);
        Ok(())
    }

    /// Appends a message. A retry with a `cmid` already seen gets the original seq.
    pub fn send(self: &Arc<Self>, user: &UserId, msg: SendMessage, ack: Ack) -> Result<SendOutcome, ErrorBody> {
        let mut guard = self.lock();
        let state = &mut *guard;
        if !state.members.contains_key(user) {
            return Err(not_member(&self.id));
        }
        let key = (user.clone(), msg.cmid.clone());
        if let Some(&(seq, ts)) = state.sent.get(&key) {
            // Still pending: answer the retry together with the original.
            if let Some(pending) = state.pending.iter_mut().find(|p| p.encoded.seq == seq) {
                pending.retries.push(ack);
                return Ok(SendOutcome::Queued);
            }
            return Ok(SendOutcome::Duplicate(Appended { seq, ts }));
        }
        if let Some(root) = msg.thread {
            if root == Seq::ZERO || root >= state.next_seq {
                return Err(ErrorBody::new(
                    ErrorCode::NoSuchTarget,
                    format!("no event {root} in room {} to thread under", self.id),
                ));
            }
        }
        let room = self.id.clone();
        let (seq, ts) = self.append_locked(
            state,
            user,
            |seq, ts| {
                Event::Message(MessageEvent {
                    room,
                    seq,
                    ts,
                    from: user.clone(),
                    text: msg.text,
                    cmid: msg.cmid,
                    thread: msg.thread,
                })
            },
            Vec::new(),
            ack,
        )?;
        state.remember_send(key.0, key.1, seq, ts, self.limits.dedupe_window);
        Ok(SendOutcome::Queued)
    }

    /// The text of event `seq` if it is a message, for pinning it.
    pub async fn message_text(&self, store: &Arc<dyn Store>, seq: Seq) -> Result<Note, ErrorBody> {
        let cached = self.lock().recent.iter().find(|e| e.seq == seq).cloned();
        let encoded = match cached {
            Some(encoded) => encoded,
            None => {
                let (store, room) = (store.clone(), self.id.clone());
                let page =
                    tokio::task::spawn_blocking(move || store.events_after(&room, Seq(seq.0.saturating_sub(1)), 1))
                        .await
                        .map_err(|_| ErrorBody::new(ErrorCode::Internal, "history read was cancelled"))?
                        .map_err(store_error)?;
                match page.first() {
                    Some(stored) if stored.seq == seq => Arc::new(Encoded::from_stored(stored).map_err(store_error)?),
                    _ => return Err(no_message(&self.id, seq)),
                }
            }
        };
        match &encoded.event {
            Event::Message(m) => {
                // A note holds less than a message: cut long texts at a char boundary.
                let text = m.text.as_str();
                let mut cut = text.len().min(limits::MAX_NOTE_BYTES);
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                Ok(Note::new(&text[..cut]).expect("cut to the note limit"))
            }
            _ => Err(no_message(&self.id, seq)),
        }
    }

    /// Pins a message or a free note. Moderators and owners only.
    pub fn pin(
        self: &Arc<Self>,
        user: &UserId,
        seq: Option<Seq>,
        text: Note,
        title: Option<ShortText>,
        reply: impl FnOnce(PinnedNote) -> Ack,
    ) -> Result<(), ErrorBody> {
        let mut guard = self.lock();
        let state = &mut *guard;
        state.require_role(&self.id, user, Role::Moderator, "pin")?;
        let replaced = title.as_ref().and_then(|t| state.pins.iter().find(|p| p.title.as_ref() == Some(t))).cloned();
        let pin = PinnedNote {
            pin: PinId(state.next_pin),
            seq,
            text,
            by: user.clone(),
            at: now_millis(),
            title,
            version: replaced.as_ref().map_or(1, |r| r.version + 1),
        };
        let mut writes = vec![Write::PutPin { room: self.id.clone(), pin: pin.clone() }];
        if let Some(old) = &replaced {
            writes.push(Write::RemovePin { room: self.id.clone(), pin: old.pin });
        }
        let room = self.id.clone();
        let event_pin = pin.clone();
        self.append_locked(
            state,
            user,
            |seq, ts| {
                Event::Pin(PinEvent {
                    room,
                    seq,
                    ts,
                    from: user.clone(),
                    pin: event_pin,
                    replaces: replaced.as_ref().map(|r| r.pin),
                })
            },
            writes,
            reply(pin.clone()),
        )?;
        state.next_pin += 1;
        if let Some(old) = replaced {
            state.pins.retain(|p| p.pin != old.pin);
        }
        state.pins.push(pin);
        Ok(())
    }

    pub fn unpin(self: &Arc<Self>, user: &UserId, pin: PinId, ack: Ack) -> Result<(), ErrorBody> {
        let mut guard = self.lock();
        let state = &mut *guard;
        state.require_role(&self.id, user, Role::Moderator, "unpin")?;
        if !state.pins.iter().any(|p| p.pin == pin) {
            return Err(ErrorBody::new(ErrorCode::NoSuchTarget, format!("room {} has no pin {}", self.id, pin.0)));
        }
        let room = self.id.clone();
        self.append_locked(
            state,
            user,
            |seq, ts| Event::Unpin(UnpinEvent { room, seq, ts, from: user.clone(), pin }),
            vec![Write::RemovePin { room: self.id.clone(), pin }],
            ack,
        )?;
        state.pins.retain(|p| p.pin != pin);
        Ok(())
    }
}

impl RoomState {
    fn recent_covers(&self, after: Seq) -> bool {
        self.recent.front().is_some_and(|oldest| oldest.seq <= after.next())
    }

    fn remember_send(&mut self, user: UserId, cmid: ClientMsgId, seq: Seq, ts: Millis, window: usize) {
        let key = (user, cmid);
        if self.sent.insert(key.clone(), (seq, ts)).is_none() {
            self.sent_order.push_back(key);
        }
        while self.sent_order.len() > window {
            if let Some(old) = self.sent_order.pop_front() {
                self.sent.remove(&old);
            }
        }
    }

    fn require_role(&self, room: &RoomId, user: &UserId, least: Role, what: &str) -> Result<(), ErrorBody> {
        match self.members.get(user) {
            None => Err(not_member(room)),
            Some(m) if m.role < least => Err(ErrorBody::new(
                ErrorCode::Forbidden,
                format!("only a {} or above may {what} in room {room}; you are a {}", least.as_str(), m.role.as_str()),
            )),
            Some(_) => Ok(()),
        }
    }

    /// Fans out and acknowledges every pending event up to `seq`.
    fn commit_through(&mut self, seq: Seq, limits: RoomLimits) {
        while self.pending.front().is_some_and(|p| p.encoded.seq <= seq) {
            let Some(pending) = self.pending.pop_front() else { break };
            let encoded = pending.encoded;
            self.committed = encoded.seq;
            let mut overflowed = false;
            for sub in &self.subscribers {
                overflowed |= sub.out.push(encoded.frame(sub.codec)).is_err();
            }
            if overflowed {
                // Their queues closed themselves as slow consumers; they resume later.
                self.subscribers.retain(|s| !s.out.is_closed());
            }
            pending.ack.fire(encoded.seq, pending.ts);
            for retry in pending.retries {
                retry.fire(encoded.seq, pending.ts);
            }
            self.recent.push_back(encoded);
            if self.recent.len() > limits.recent_events {
                self.recent.pop_front();
            }
        }
    }
}

fn not_member(room: &RoomId) -> ErrorBody {
    ErrorBody::new(ErrorCode::NotMember, format!("you are not a member of room {room}; join it first"))
}

fn no_message(room: &RoomId, seq: Seq) -> ErrorBody {
    ErrorBody::new(ErrorCode::NoSuchTarget, format!("room {room} has no message at seq {seq}"))
}

/// Every room on this node, sharded by name so lookups on different rooms rarely
/// meet on a lock.
pub struct Registry {
    rooms: DashMap<RoomId, Arc<Room>>,
    journal: Arc<Journal>,
    store: Arc<dyn Store>,
    limits: RoomLimits,
}

impl Registry {
    /// Loads every room from `store`.
    pub fn load(store: Arc<dyn Store>, journal: Arc<Journal>, limits: RoomLimits) -> Result<Registry, StoreError> {
        let rooms = DashMap::new();
        for snapshot in store.load(limits.recent_events.max(limits.dedupe_window))? {
            let room = Room::from_snapshot(snapshot, journal.clone(), limits)?;
            rooms.insert(room.id.clone(), Arc::new(room));
        }
        Ok(Registry { rooms, journal, store, limits })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn get(&self, room: &RoomId) -> Result<Arc<Room>, ErrorBody> {
        self.rooms.get(room).map(|r| r.clone()).ok_or_else(|| {
            ErrorBody::new(ErrorCode::NotFound, format!("no room named {room}; list rooms with list_rooms"))
        })
    }

    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    /// Rooms `user` can see, by name.
    pub fn list_for(&self, user: &UserId) -> Vec<RoomSummary> {
        let rooms: Vec<Arc<Room>> = self.rooms.iter().map(|r| r.value().clone()).collect();
        let mut list: Vec<RoomSummary> = rooms.iter().filter_map(|r| r.summary_for(user)).collect();
        list.sort_by(|a, b| a.room.cmp(&b.room));
        list
    }

    /// Creates a room owned by `owner`. The reply waits until it is durable.
    pub fn create(&self, owner: &UserId, args: CreateRoom, ack: Ack) -> Result<(), ErrorBody> {
        let cap = args.cap.unwrap_or(limits::DEFAULT_ROOM_CAP);
        if !(1..=limits::MAX_ROOM_CAP).contains(&cap) {
            return Err(ErrorBody::new(
                ErrorCode::BadRequest,
                format!("cap must be 1-{}, got {cap}", limits::MAX_ROOM_CAP),
            ));
        }
        let now = now_millis();
        let record = RoomRecord {
            room: args.room.clone(),
            epoch: new_epoch(),
            owner: owner.clone(),
            created_at: now,
            topic: args.topic,
            cap,
            visibility: args.visibility,
            slow_mode_secs: 0,
            required_role: None,
            welcome: None,
            probation_secs: 0,
        };
        // The creation event is appended before the room is published in the map, so
        // no one can join (and take seq 1) before its owner, and the journal sees the
        // room's record before any write that names it.
        let dashmap::Entry::Vacant(slot) = self.rooms.entry(args.room.clone()) else {
            return Err(ErrorBody::new(
                ErrorCode::AlreadyExists,
                format!("a room named {} already exists; join it or pick another name", args.room),
            ));
        };
        let snapshot = RoomSnapshot {
            record: record.clone(),
            members: Vec::new(),
            pins: Vec::new(),
            head: Seq::ZERO,
            recent: Vec::new(),
        };
        let room = Arc::new(
            Room::from_snapshot(snapshot, self.journal.clone(), self.limits)
                .expect("an empty snapshot has nothing to decode"),
        );
        let member = MemberRecord { user: owner.clone(), role: Role::Owner, joined_at: now, role_expires_at: None };
        {
            let mut guard = room.lock();
            room.append_locked(
                &mut guard,
                owner,
                |seq, ts| {
                    Event::MemberJoined(MemberJoinedEvent {
                        room: args.room.clone(),
                        seq,
                        ts,
                        from: owner.clone(),
                        role: Role::Owner,
                    })
                },
                vec![Write::PutRoom(record), Write::PutMember { room: args.room.clone(), member: member.clone() }],
                ack,
            )?;
            guard.members.insert(owner.clone(), member);
        }
        slot.insert(room);
        Ok(())
    }
}

/// A new epoch: random, below 2^53 so JavaScript reads it exactly, never zero.
fn new_epoch() -> Epoch {
    let mut bytes = [0u8; 8];
    // If the OS random source fails, the clock still makes epochs differ across restarts.
    if getrandom::fill(&mut bytes).is_err() {
        bytes = now_millis().0.to_le_bytes();
    }
    Epoch((u64::from_le_bytes(bytes) >> 11).max(1))
}
