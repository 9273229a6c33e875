//! A room's rules, as pure functions: the state that applying the room's events
//! gives ([`RoomState::apply`]), and the decision that turns a request into one
//! event or a typed error ([`RoomState::decide_send`] and its siblings). No I/O,
//! no locks, no clock: time is an argument. Everything else in the server is
//! plumbing around these functions.
//!
//! An event changes durable state only through [`changes`]: the one place that
//! says what each kind of event does to members, pins and settings. The room's
//! in-memory state ([`RoomState`]), the broker's admission view ([`Gate`]) and
//! the store's tables all apply the same changes, so they cannot disagree about
//! what an event meant.
//!
//! A decision comes with the preconditions that must still hold when the event
//! is ordered ([`Requires`]). A room decides against the state it has applied,
//! which can lag the room's order by the events in flight (a leave on another
//! connection, or in cluster mode on another node); the broker re-checks the
//! preconditions atomically with assigning the seq, so no event is ordered on a
//! stale decision.

use std::collections::HashMap;

use hearth_protocol::event::{LeftReason, MemberJoinedEvent, MemberLeftEvent, MessageEvent, PinEvent, UnpinEvent};
use hearth_protocol::ops::{CreateRoom, PinnedNote, RoomInfo, RoomSettings, SendMessage, Visibility};
use hearth_protocol::{
    ClientMsgId, Epoch, ErrorBody, ErrorCode, Event, Millis, Note, PinId, Position, Role, RoomId, Seq, ShortText,
    UserId, limits,
};
use serde::{Deserialize, Serialize};

/// A room's settings: fixed at creation (name, epoch, owner, time) or changed by
/// `room_updated` events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomRecord {
    pub room: RoomId,
    pub epoch: Epoch,
    pub owner: UserId,
    pub created_at: Millis,
    pub topic: ShortText,
    pub cap: u32,
    pub visibility: Visibility,
    #[serde(default)]
    pub slow_mode_secs: u32,
    #[serde(default)]
    pub required_role: Option<Role>,
    #[serde(default)]
    pub welcome: Option<ShortText>,
    #[serde(default)]
    pub probation_secs: u32,
}

impl RoomRecord {
    /// Applies the settings a `room_updated` event carries; absent ones stay.
    pub fn apply_settings(&mut self, settings: &RoomSettings) {
        if let Some(topic) = &settings.topic {
            self.topic = topic.clone();
        }
        if let Some(cap) = settings.cap {
            self.cap = cap;
        }
        if let Some(visibility) = settings.visibility {
            self.visibility = visibility;
        }
        if let Some(secs) = settings.slow_mode_secs {
            self.slow_mode_secs = secs;
        }
        if let Some(role) = settings.required_role {
            // `member` is everyone's role: requiring it is requiring nothing.
            self.required_role = (role != Role::Member).then_some(role);
        }
        if let Some(welcome) = &settings.welcome {
            self.welcome = (!welcome.as_str().is_empty()).then(|| welcome.clone());
        }
        if let Some(secs) = settings.probation_secs {
            self.probation_secs = secs;
        }
    }
}

/// One member of a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    pub user: UserId,
    pub role: Role,
    pub joined_at: Millis,
    pub role_expires_at: Option<Millis>,
}

/// What one event does to durable room state. Messages change none of it.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    PutMember(MemberRecord),
    RemoveMember(UserId),
    PutPin(PinnedNote),
    RemovePin(PinId),
    UpdateSettings(RoomSettings),
}

/// The changes `event` makes. The one definition of what each event kind means for
/// members, pins and settings; the event must be stamped (`Event::stamp`).
pub fn changes(event: &Event) -> Vec<Change> {
    match event {
        Event::MemberJoined(e) => vec![Change::PutMember(MemberRecord {
            user: e.from.clone(),
            role: e.role,
            joined_at: e.ts,
            role_expires_at: None,
        })],
        Event::MemberLeft(e) => vec![Change::RemoveMember(e.user.clone())],
        Event::Pin(e) => {
            let mut changes = Vec::with_capacity(2);
            if let Some(old) = e.replaces {
                changes.push(Change::RemovePin(old));
            }
            changes.push(Change::PutPin(e.pin.clone()));
            changes
        }
        Event::Unpin(e) => vec![Change::RemovePin(e.pin)],
        Event::RoomUpdated(e) => vec![Change::UpdateSettings(e.settings.clone())],
        Event::Message(_)
        | Event::Edit(_)
        | Event::Delete(_)
        | Event::Reaction(_)
        | Event::Role(_)
        | Event::Moderation(_)
        | Event::Hello(_)
        | Event::Typing(_)
        | Event::Presence(_)
        | Event::JoinRequest(_)
        | Event::Truncated(_) => Vec::new(),
    }
}

/// The state of one room: what applying its events, in order, gives.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomState {
    pub record: RoomRecord,
    pub members: HashMap<UserId, Member>,
    /// Pins in the order they were made (a pin's id is its event's seq).
    pub pins: Vec<PinnedNote>,
    /// The seq of the last applied event.
    pub head: Seq,
    /// The time of the last applied event.
    pub last_ts: Millis,
}

/// A member's standing in the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub role: Role,
    pub joined_at: Millis,
    pub role_expires_at: Option<Millis>,
}

/// An event that does not continue the room's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("event {got} does not follow {head}")]
pub struct OutOfOrder {
    pub head: Seq,
    pub got: Seq,
}

impl RoomState {
    /// A room with no events yet.
    pub fn genesis(record: RoomRecord) -> RoomState {
        let last_ts = record.created_at;
        RoomState { record, members: HashMap::new(), pins: Vec::new(), head: Seq::ZERO, last_ts }
    }

    /// The state stored at `head`: the store's tables hold what `changes` made of
    /// every event up to there.
    pub fn restore(
        record: RoomRecord,
        members: Vec<MemberRecord>,
        pins: Vec<PinnedNote>,
        head: Seq,
        last_ts: Millis,
    ) -> RoomState {
        let members = members
            .into_iter()
            .map(|m| (m.user, Member { role: m.role, joined_at: m.joined_at, role_expires_at: m.role_expires_at }))
            .collect();
        let mut pins = pins;
        pins.sort_by_key(|p| p.pin);
        RoomState { record, members, pins, head, last_ts }
    }

    /// Applies the next event of the timeline. An event that is not the next one
    /// changes nothing.
    pub fn apply(&mut self, event: &Event) -> Result<(), OutOfOrder> {
        let Some(seq) = event.seq() else { return Ok(()) };
        if seq != self.head.next() {
            return Err(OutOfOrder { head: self.head, got: seq });
        }
        for change in changes(event) {
            self.apply_change(change);
        }
        self.head = seq;
        self.last_ts = self.last_ts.max(event.ts().unwrap_or(Millis(0)));
        Ok(())
    }

    fn apply_change(&mut self, change: Change) {
        match change {
            Change::PutMember(m) => {
                self.members.insert(
                    m.user,
                    Member { role: m.role, joined_at: m.joined_at, role_expires_at: m.role_expires_at },
                );
            }
            Change::RemoveMember(user) => {
                self.members.remove(&user);
            }
            Change::PutPin(pin) => {
                self.pins.retain(|p| p.pin != pin.pin);
                let at = self.pins.partition_point(|p| p.pin < pin.pin);
                self.pins.insert(at, pin);
            }
            Change::RemovePin(pin) => self.pins.retain(|p| p.pin != pin),
            Change::UpdateSettings(settings) => self.record.apply_settings(&settings),
        }
    }

    pub fn info(&self) -> RoomInfo {
        let r = &self.record;
        RoomInfo {
            room: r.room.clone(),
            topic: r.topic.clone(),
            cap: r.cap,
            visibility: r.visibility,
            members: self.members.len() as u32,
            epoch: r.epoch,
            head: self.head,
            owner: r.owner.clone(),
            created_at: r.created_at,
            slow_mode_secs: r.slow_mode_secs,
            required_role: r.required_role,
            welcome: r.welcome.clone(),
            probation_secs: r.probation_secs,
        }
    }

    pub fn position(&self) -> Position {
        Position { epoch: self.record.epoch, seq: self.head }
    }

    pub fn role_of(&self, user: &UserId) -> Option<Role> {
        self.members.get(user).map(|m| m.role)
    }

    fn require_member(&self, user: &UserId) -> Result<&Member, ErrorBody> {
        self.members.get(user).ok_or_else(|| not_member(&self.record.room))
    }

    fn require_role(&self, user: &UserId, least: Role, what: &str) -> Result<(), ErrorBody> {
        let member = self.require_member(user)?;
        if member.role < least {
            return Err(forbidden(&self.record.room, least, member.role, what));
        }
        Ok(())
    }

    /// A join: nothing to order for a member; a first join for anyone else the
    /// room admits. A join with `since` resumes a membership, so it needs one.
    pub fn decide_join(&self, user: &UserId, since: Option<Position>) -> Result<Option<Draft>, ErrorBody> {
        if self.members.contains_key(user) {
            return Ok(None);
        }
        let room = &self.record.room;
        if since.is_some() {
            return Err(ErrorBody::new(
                ErrorCode::NotMember,
                format!(
                    "you are no longer a member of room {room} (you left or were removed), so there is \
                     nothing to resume; join without since to become a member again"
                ),
            ));
        }
        match self.record.visibility {
            Visibility::Open => {}
            Visibility::Approval => {
                return Err(ErrorBody::new(
                    ErrorCode::ApprovalRequired,
                    format!("room {room} vets new members: send request_join and wait for approval"),
                ));
            }
            Visibility::InviteOnly => {
                return Err(ErrorBody::new(
                    ErrorCode::InviteRequired,
                    format!("room {room} is invite-only: join with an invite code from a member"),
                ));
            }
        }
        // The cap is left to the order (`Requires::Admit`): this copy of the room
        // may not have applied a leave ordered elsewhere (another node) yet, and
        // must not refuse a place the room has.
        let event = Event::MemberJoined(MemberJoinedEvent {
            room: room.clone(),
            seq: Seq::ZERO,
            ts: Millis(0),
            from: user.clone(),
            role: Role::Member,
        });
        Ok(Some(Draft { event, requires: Requires::Admit(user.clone()), cmid: None }))
    }

    pub fn decide_leave(&self, user: &UserId) -> Result<Draft, ErrorBody> {
        self.require_member(user)?;
        if self.record.owner == *user {
            return Err(ErrorBody::new(
                ErrorCode::Forbidden,
                format!("{user} owns room {}; an owner cannot leave it", self.record.room),
            ));
        }
        let event = Event::MemberLeft(MemberLeftEvent {
            room: self.record.room.clone(),
            seq: Seq::ZERO,
            ts: Millis(0),
            from: user.clone(),
            user: user.clone(),
            reason: LeftReason::Left,
        });
        Ok(Draft { event, requires: Requires::Member(user.clone()), cmid: None })
    }

    pub fn decide_send(&self, user: &UserId, msg: SendMessage) -> Result<Draft, ErrorBody> {
        self.require_member(user)?;
        if let Some(root) = msg.thread {
            if root == Seq::ZERO || root > self.head {
                return Err(ErrorBody::new(
                    ErrorCode::NoSuchTarget,
                    format!("no event {root} in room {} to thread under", self.record.room),
                ));
            }
        }
        let cmid = msg.cmid.clone();
        let event = Event::Message(MessageEvent {
            room: msg.room,
            seq: Seq::ZERO,
            ts: Millis(0),
            from: user.clone(),
            text: msg.text,
            cmid: msg.cmid,
            thread: msg.thread,
        });
        Ok(Draft { event, requires: Requires::Member(user.clone()), cmid: Some(cmid) })
    }

    /// Pins `text` (a message's, when `seq` names one, or a free note). A pin with
    /// the title of an existing pin replaces it as its next version.
    pub fn decide_pin(
        &self,
        user: &UserId,
        seq: Option<Seq>,
        text: Note,
        title: Option<ShortText>,
        max_pins: usize,
    ) -> Result<Draft, ErrorBody> {
        self.require_role(user, Role::Moderator, "pin")?;
        let replaced = title.as_ref().and_then(|t| self.pins.iter().find(|p| p.title.as_ref() == Some(t)));
        if replaced.is_none() && self.pins.len() >= max_pins {
            return Err(pins_full(&self.record.room, max_pins));
        }
        let pin = PinnedNote {
            pin: PinId(0),
            seq,
            text,
            by: user.clone(),
            at: Millis(0),
            title,
            version: replaced.map_or(1, |r| r.version + 1),
        };
        let event = Event::Pin(PinEvent {
            room: self.record.room.clone(),
            seq: Seq::ZERO,
            ts: Millis(0),
            from: user.clone(),
            pin,
            replaces: replaced.map(|r| r.pin),
        });
        // A new pin needs a free place in the order too (two moderators may pin
        // at once); a replacement takes its predecessor's.
        let requires = match replaced {
            Some(_) => Requires::RoleAtLeast(user.clone(), Role::Moderator),
            None => Requires::PinSlot { user: user.clone(), least: Role::Moderator, max: max_pins },
        };
        Ok(Draft { event, requires, cmid: None })
    }

    pub fn decide_unpin(&self, user: &UserId, pin: PinId) -> Result<Draft, ErrorBody> {
        self.require_role(user, Role::Moderator, "unpin")?;
        if !self.pins.iter().any(|p| p.pin == pin) {
            return Err(ErrorBody::new(
                ErrorCode::NoSuchTarget,
                format!("room {} has no pin {}", self.record.room, pin.0),
            ));
        }
        let event = Event::Unpin(UnpinEvent {
            room: self.record.room.clone(),
            seq: Seq::ZERO,
            ts: Millis(0),
            from: user.clone(),
            pin,
        });
        Ok(Draft { event, requires: Requires::RoleAtLeast(user.clone(), Role::Moderator), cmid: None })
    }
}

/// A new room: its record and its first event, the owner joining.
pub fn decide_create(
    owner: &UserId,
    args: CreateRoom,
    epoch: Epoch,
    now: Millis,
) -> Result<(RoomRecord, Draft), ErrorBody> {
    let cap = args.cap.unwrap_or(limits::DEFAULT_ROOM_CAP);
    if !(1..=limits::MAX_ROOM_CAP).contains(&cap) {
        return Err(ErrorBody::new(
            ErrorCode::BadRequest,
            format!("cap must be 1-{}, got {cap}", limits::MAX_ROOM_CAP),
        ));
    }
    let record = RoomRecord {
        room: args.room.clone(),
        epoch,
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
    let event = Event::MemberJoined(MemberJoinedEvent {
        room: args.room,
        seq: Seq::ZERO,
        ts: Millis(0),
        from: owner.clone(),
        role: Role::Owner,
    });
    Ok((record, Draft { event, requires: Requires::Nothing, cmid: None }))
}

/// A decided event, not yet ordered: whoever orders the room stamps it with the
/// next seq and the time, once `requires` still holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// The event, with seq and ts still zero.
    pub event: Event,
    pub requires: Requires,
    /// For a message: its client message id, which makes a retry idempotent.
    pub cmid: Option<ClientMsgId>,
}

impl Draft {
    /// Who caused the event: the sender of a message, the member joining, the
    /// moderator acting.
    pub fn actor(&self) -> Option<&UserId> {
        actor(&self.event)
    }
}

/// The user who caused a timeline event; `None` for ephemeral events.
pub fn actor(event: &Event) -> Option<&UserId> {
    Some(match event {
        Event::Message(e) => &e.from,
        Event::Edit(e) => &e.from,
        Event::Delete(e) => &e.from,
        Event::Reaction(e) => &e.from,
        Event::Pin(e) => &e.from,
        Event::Unpin(e) => &e.from,
        Event::MemberJoined(e) => &e.from,
        Event::MemberLeft(e) => &e.from,
        Event::Role(e) => &e.from,
        Event::RoomUpdated(e) => &e.from,
        Event::Moderation(e) => &e.from,
        Event::Hello(_) | Event::Typing(_) | Event::Presence(_) | Event::JoinRequest(_) | Event::Truncated(_) => {
            return None;
        }
    })
}

/// What must still be true of the room when a drafted event is ordered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requires {
    Nothing,
    /// The user is a member.
    Member(UserId),
    /// The user is a member holding at least this role.
    RoleAtLeast(UserId, Role),
    /// The user is not a member yet and the room has space for one more.
    Admit(UserId),
    /// The user holds at least `least`, and the room has fewer than `max` pins.
    PinSlot {
        user: UserId,
        least: Role,
        max: usize,
    },
}

/// Why the order refused a drafted event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("not a member")]
    NotMember,
    #[error("already a member")]
    AlreadyMember,
    #[error("the room is full ({cap} members)")]
    RoomFull { cap: u32 },
    #[error("needs the role {least:?}, holds {held:?}")]
    Forbidden { least: Role, held: Role },
    #[error("the room has {max} pinned notes already")]
    PinsFull { max: usize },
}

impl Rejection {
    /// The error a client gets for it.
    pub fn to_error(self, room: &RoomId) -> ErrorBody {
        match self {
            Rejection::NotMember => not_member(room),
            Rejection::AlreadyMember => {
                ErrorBody::new(ErrorCode::AlreadyExists, format!("you are already a member of room {room}"))
            }
            Rejection::RoomFull { cap } => room_full(room, cap),
            Rejection::Forbidden { least, held } => forbidden(room, least, held, "do that"),
            Rejection::PinsFull { max } => pins_full(room, max),
        }
    }
}

/// What the order of a room needs to know to check [`Requires`]: each member's
/// role and the cap. It follows the same [`changes`] as [`RoomState`], applied
/// when an event is ordered rather than when it is durable, so it already counts
/// the events still on their way to disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    members: HashMap<UserId, Role>,
    cap: u32,
    pins: usize,
}

impl Gate {
    pub fn new(cap: u32, members: impl IntoIterator<Item = (UserId, Role)>) -> Gate {
        Gate { members: members.into_iter().collect(), cap, pins: 0 }
    }

    /// The gate of a room that has `pins` pinned notes.
    pub fn with_pins(mut self, pins: usize) -> Gate {
        self.pins = pins;
        self
    }

    fn role_at_least(&self, user: &UserId, least: Role) -> Result<(), Rejection> {
        match self.members.get(user) {
            None => Err(Rejection::NotMember),
            Some(held) if *held < least => Err(Rejection::Forbidden { least, held: *held }),
            Some(_) => Ok(()),
        }
    }

    pub fn check(&self, requires: &Requires) -> Result<(), Rejection> {
        match requires {
            Requires::Nothing => Ok(()),
            Requires::Member(user) => self.members.get(user).map(|_| ()).ok_or(Rejection::NotMember),
            Requires::RoleAtLeast(user, least) => self.role_at_least(user, *least),
            Requires::PinSlot { user, least, max } => {
                self.role_at_least(user, *least)?;
                if self.pins >= *max { Err(Rejection::PinsFull { max: *max }) } else { Ok(()) }
            }
            Requires::Admit(user) => {
                if self.members.contains_key(user) {
                    Err(Rejection::AlreadyMember)
                } else if self.members.len() >= self.cap as usize {
                    Err(Rejection::RoomFull { cap: self.cap })
                } else {
                    Ok(())
                }
            }
        }
    }

    pub fn apply(&mut self, changes: &[Change]) {
        for change in changes {
            match change {
                Change::PutMember(m) => {
                    self.members.insert(m.user.clone(), m.role);
                }
                Change::RemoveMember(user) => {
                    self.members.remove(user);
                }
                Change::UpdateSettings(settings) => {
                    if let Some(cap) = settings.cap {
                        self.cap = cap;
                    }
                }
                Change::PutPin(_) => self.pins += 1,
                Change::RemovePin(_) => self.pins = self.pins.saturating_sub(1),
            }
        }
    }
}

pub fn not_member(room: &RoomId) -> ErrorBody {
    ErrorBody::new(ErrorCode::NotMember, format!("you are not a member of room {room}; join it first"))
}

fn pins_full(room: &RoomId, max: usize) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::LimitReached,
        format!(
            "room {room} has {max} pinned notes, the most it may have; unpin one, or pin with the title of one to replace it"
        ),
    )
}

fn room_full(room: &RoomId, cap: u32) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::RoomFull,
        format!("room {room} is full ({cap} members); ask a moderator to raise the cap"),
    )
}

fn forbidden(room: &RoomId, least: Role, held: Role, what: &str) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::Forbidden,
        format!("only a {} or above may {what} in room {room}; you are a {}", least.as_str(), held.as_str()),
    )
}

#[cfg(test)]
mod tests;
