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

pub mod community;
pub mod messages;
pub mod permissions;
pub mod rows;
pub mod stats;

use std::collections::HashMap;

use hearth_protocol::event::{
    ArrivedEvent, LeftReason, MemberJoinedEvent, MemberLeftEvent, MessageEvent, PinEvent, UnpinEvent,
};
use hearth_protocol::ops::{
    CreateRoom, ModAction, ModEntry, PinnedNote, RoomInfo, RoomSettings, SendMessage, Visibility,
};
use hearth_protocol::{
    ClientMsgId, Epoch, ErrorBody, ErrorCode, Event, Millis, Note, PinId, Position, Role, RoomId, Seq, ShortText,
    UserId, limits,
};
use serde::{Deserialize, Serialize};

pub use self::rows::{AnnexRow, AnnexTable, Row, RowTable, Rows, Sanction};

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
    #[serde(default)]
    pub probation_posts: u32,
    /// The lobby room whose `required_role` a member must hold to join.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<RoomId>,
    /// Members acknowledge the rules before posting.
    #[serde(default)]
    pub rules_ack: bool,
    /// The order of the pinned notes, by note id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pin_order: Vec<PinId>,
}

impl RoomRecord {
    /// A new room's record: what it is made with, and every setting a room
    /// may change later at its default (no slow mode, gate, welcome,
    /// probation, rules acknowledgement or order of pins). The one place a
    /// record is built: a new setting is added here, not at each maker.
    pub fn new(
        room: RoomId,
        epoch: Epoch,
        owner: UserId,
        created_at: Millis,
        topic: ShortText,
        cap: u32,
        visibility: Visibility,
    ) -> RoomRecord {
        RoomRecord {
            room,
            epoch,
            owner,
            created_at,
            topic,
            cap,
            visibility,
            slow_mode_secs: 0,
            required_role: None,
            welcome: None,
            probation_secs: 0,
            probation_posts: 0,
            parent: None,
            rules_ack: false,
            pin_order: Vec::new(),
        }
    }

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
        if let Some(posts) = settings.probation_posts {
            self.probation_posts = posts;
        }
        if let Some(parent) = &settings.parent {
            // An empty name lifts it.
            self.parent = RoomId::new(parent.as_str()).ok();
        }
        if let Some(ack) = settings.rules_ack {
            self.rules_ack = ack;
        }
        if let Some(order) = &settings.pin_order {
            self.pin_order.clone_from(order);
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
    /// A member's role changes; when it joined stays.
    SetRole {
        user: UserId,
        role: Role,
        expires_at: Option<Millis>,
    },
    PutPin(PinnedNote),
    RemovePin(PinId),
    UpdateSettings(RoomSettings),
    PutRow(Row),
    RemoveRow {
        table: RowTable,
        key: String,
    },
    PutAnnex(AnnexRow),
    RemoveAnnex {
        table: AnnexTable,
        target: Seq,
        key: String,
    },
    /// One more join came with this invite (by id).
    UseInvite(String),
    /// The pins of message `message` show its text as it is now: `text`
    /// after an edit (cut to a note's length), the placeholder after its
    /// deletion (`None`).
    RetextPins {
        message: Seq,
        text: Option<Note>,
    },
}

/// Who may receive an event: every member, or (a join request, a denial, an
/// invite made or revoked, a held post and its dropping) only welcomers and
/// above. Others never get it — live, in a replay or in history — so their
/// seqs skip it. A held post's author is not told it was dropped, as nobody
/// below welcomer was told it was held.
pub fn audience(event: &Event) -> Role {
    match event {
        Event::JoinRequest(_) | Event::Ack(_) | Event::Arrived(_) | Event::Prompt(_) | Event::Held(_) => Role::Welcomer,
        Event::Moderation(e)
            if matches!(e.action, ModAction::Reject | ModAction::CreateInvite | ModAction::RevokeInvite)
                || e.held.is_some() =>
        {
            Role::Welcomer
        }
        _ => Role::Member,
    }
}

/// The member an event removes from the room, if any: one who left, or one a
/// moderator kicked or banned. From that event on they receive nothing.
pub fn removed_member(event: &Event) -> Option<&UserId> {
    match event {
        Event::MemberLeft(e) => Some(&e.user),
        Event::Moderation(e) if matches!(e.action, ModAction::Kick | ModAction::Ban) => e.user.as_ref(),
        _ => None,
    }
}

/// The moderation log entry an event makes, if it is a moderator's action.
fn mod_entry(event: &Event) -> Option<ModEntry> {
    let entry = |seq: Seq, at, by: &UserId, action, user: Option<&UserId>, reason: ShortText, until| ModEntry {
        entry: seq.0,
        at,
        by: by.clone(),
        action,
        user: user.cloned(),
        reason,
        until,
    };
    Some(match event {
        Event::Moderation(e) => entry(e.seq, e.ts, &e.from, e.action, e.user.as_ref(), e.reason.clone(), e.until),
        Event::Role(e) => {
            entry(e.seq, e.ts, &e.from, ModAction::SetRole, Some(&e.user), ShortText::default(), e.expires_at)
        }
        Event::RoomUpdated(e) => entry(e.seq, e.ts, &e.from, ModAction::SetRoom, None, ShortText::default(), None),
        Event::Pin(e) => entry(e.seq, e.ts, &e.from, ModAction::Pin, None, ShortText::default(), None),
        Event::Unpin(e) => entry(e.seq, e.ts, &e.from, ModAction::Unpin, None, ShortText::default(), None),
        Event::MemberJoined(e) => {
            let by = e.approved_by.as_ref()?;
            entry(e.seq, e.ts, by, ModAction::Approve, Some(&e.from), ShortText::default(), None)
        }
        Event::Delete(e) => {
            entry(e.seq, e.ts, &e.from, ModAction::Delete, Some(e.of.as_ref()?), ShortText::default(), None)
        }
        _ => return None,
    })
}

/// The changes `event` makes. The one definition of what each event kind means for
/// members, pins and settings; the event must be stamped (`Event::stamp`).
/// How long a member counts as new (`members` shows `newcomer`).
pub const NEWCOMER_MS: u64 = 7 * 24 * 3600 * 1000;

pub fn changes(event: &Event) -> Vec<Change> {
    let forget = |user: &UserId| {
        [RowTable::Ack, RowTable::Title, RowTable::Request, RowTable::Posts, RowTable::Approved]
            .map(|table| Change::RemoveRow { table, key: user.to_string() })
    };
    let mut changes = match event {
        Event::MemberJoined(e) => {
            let mut changes = vec![
                Change::PutMember(MemberRecord {
                    user: e.from.clone(),
                    role: e.role,
                    joined_at: e.ts,
                    role_expires_at: None,
                }),
                Change::RemoveRow { table: RowTable::Request, key: e.from.to_string() },
                Change::RemoveRow { table: RowTable::Denied, key: e.from.to_string() },
            ];
            if let Some(invite) = &e.invite {
                changes.push(Change::UseInvite(invite.clone()));
            }
            // Let in by someone else: they have not joined on a connection
            // yet, and their first `join` will be their first.
            if let Some(by) = &e.approved_by {
                changes.push(Change::PutRow(Row::approved(&e.from, by)));
            }
            changes
        }
        Event::Ack(e) => vec![Change::PutRow(Row::ack(&e.from, e.version))],
        Event::Arrived(e) => vec![Change::RemoveRow { table: RowTable::Approved, key: e.from.to_string() }],
        Event::JoinRequest(e) => vec![
            Change::PutRow(Row::request(&e.from, &rows::Request { note: e.note.clone(), at: e.ts })),
            Change::RemoveRow { table: RowTable::Denied, key: e.from.to_string() },
        ],
        Event::MemberLeft(e) => {
            let mut changes = vec![Change::RemoveMember(e.user.clone())];
            changes.extend(forget(&e.user));
            changes
        }
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
        Event::Role(e) => {
            let mut changes = vec![Change::SetRole { user: e.user.clone(), role: e.role, expires_at: e.expires_at }];
            match &e.title {
                Some(title) if title.as_str().is_empty() => {
                    changes.push(Change::RemoveRow { table: RowTable::Title, key: e.user.to_string() });
                }
                Some(title) => changes.push(Change::PutRow(Row::title(&e.user, title))),
                None => {}
            }
            changes
        }
        Event::Moderation(e) => match (e.action, &e.user) {
            (ModAction::Kick, Some(user)) => {
                let mut changes = vec![Change::RemoveMember(user.clone())];
                changes.extend(forget(user));
                changes
            }
            (ModAction::Ban, Some(user)) => {
                let sanction = Sanction { by: e.from.clone(), at: e.ts, until: e.until, reason: e.reason.clone() };
                let mut changes = vec![Change::RemoveMember(user.clone()), Change::PutRow(Row::ban(user, &sanction))];
                changes.extend(forget(user));
                changes
            }
            (ModAction::Unban, Some(user)) => vec![Change::RemoveRow { table: RowTable::Ban, key: user.to_string() }],
            (ModAction::Mute, Some(user)) => {
                let sanction = Sanction { by: e.from.clone(), at: e.ts, until: e.until, reason: e.reason.clone() };
                vec![Change::PutRow(Row::mute(user, &sanction))]
            }
            (ModAction::Unmute, Some(user)) => {
                vec![Change::RemoveRow { table: RowTable::Mute, key: user.to_string() }]
            }
            (ModAction::Delete, Some(user)) => match &e.held {
                Some(cmid) => {
                    vec![Change::RemoveRow { table: RowTable::Held, key: rows::held_key(user, cmid.as_str()) }]
                }
                None => Vec::new(),
            },
            (ModAction::Reject, Some(user)) => {
                let denial = rows::Denial { by: e.from.clone(), at: e.ts, reason: e.reason.clone() };
                vec![
                    Change::RemoveRow { table: RowTable::Request, key: user.to_string() },
                    Change::PutRow(Row::denied(user, &denial)),
                ]
            }
            (ModAction::CreateInvite, _) => match &e.invite {
                Some(id) => {
                    let invite = rows::InviteRow {
                        by: e.from.clone(),
                        at: e.ts,
                        expires_at: e.until,
                        max_uses: e.max_uses,
                        uses: 0,
                    };
                    vec![Change::PutRow(Row::invite(id, &invite))]
                }
                None => Vec::new(),
            },
            (ModAction::RevokeInvite, _) => match &e.invite {
                Some(id) => vec![Change::RemoveRow { table: RowTable::Invite, key: id.clone() }],
                None => Vec::new(),
            },
            _ => Vec::new(),
        },
        Event::Message(e) => {
            let mut changes = Vec::new();
            if let Some(root) = e.thread {
                let reply = rows::ByAt { by: e.from.clone(), at: e.ts };
                changes.push(Change::PutAnnex(AnnexRow::message(root, rows::seq_key("reply:", e.seq), &reply)));
            }
            if let Some(count) = e.probation_post {
                changes.push(Change::PutRow(Row::posts(&e.from, count)));
            }
            // A held message released: it is held no more.
            if e.released_by.is_some() {
                changes
                    .push(Change::RemoveRow { table: RowTable::Held, key: rows::held_key(&e.from, e.cmid.as_str()) });
            }
            // A prompt the server posted: its next time, or gone if that was the last.
            if let Some(posted) = &e.prompt {
                changes.push(match posted.next_at {
                    Some(next_at) => Change::PutRow(Row::prompt(
                        posted.prompt,
                        &rows::PromptRow { by: e.from.clone(), text: e.text.clone(), next_at, weekly: true },
                    )),
                    None => Change::RemoveRow { table: RowTable::Prompt, key: posted.prompt.to_string() },
                });
            }
            changes
        }
        Event::Held(e) => vec![Change::PutRow(Row::held(
            &e.from,
            e.cmid.as_str(),
            &rows::HeldRow { text: e.text.clone(), thread: e.thread, at: e.ts },
        ))],
        Event::Prompt(e) => match (&e.text, e.next_at) {
            (Some(text), Some(next_at)) => vec![Change::PutRow(Row::prompt(
                e.prompt,
                &rows::PromptRow { by: e.from.clone(), text: text.clone(), next_at, weekly: e.weekly },
            ))],
            _ => vec![Change::RemoveRow { table: RowTable::Prompt, key: e.prompt.to_string() }],
        },
        Event::Edit(e) => {
            let version = rows::VersionAnn { text: e.text.clone(), at: e.ts };
            vec![
                Change::PutAnnex(AnnexRow::message(e.target, rows::seq_key("v:", e.seq), &version)),
                Change::RetextPins { message: e.target, text: Some(messages::note_of(&e.text)) },
            ]
        }
        Event::Delete(e) => {
            vec![
                Change::PutAnnex(AnnexRow::message(
                    e.target,
                    "del".into(),
                    &rows::ByAt { by: e.from.clone(), at: e.ts },
                )),
                Change::RetextPins { message: e.target, text: None },
            ]
        }
        Event::Reaction(e) => {
            let key = format!("r:{}\u{1f}{}", e.emoji, e.from);
            if e.on {
                vec![Change::PutAnnex(AnnexRow::message(e.target, key, &e.ts))]
            } else {
                vec![Change::RemoveAnnex { table: AnnexTable::Message, target: e.target, key }]
            }
        }
        Event::Hello(_) | Event::Typing(_) | Event::Presence(_) | Event::JoinDecision(_) | Event::Truncated(_) => {
            Vec::new()
        }
    };
    if let Some(entry) = mod_entry(event) {
        changes.push(Change::PutAnnex(AnnexRow::mod_log(&entry)));
    }
    changes
}

/// The state of one room: what applying its events, in order, gives.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomState {
    pub record: RoomRecord,
    pub members: HashMap<UserId, Member>,
    /// Pins in the order they were made (a pin's id is its event's seq).
    pub pins: Vec<PinnedNote>,
    /// Bans, mutes, requests, invites, acknowledgements, titles, prompts.
    pub rows: Rows,
    /// When each member last posted, for slow mode. Not stored: after a
    /// restart slow mode starts afresh.
    pub last_post: HashMap<UserId, Millis>,
    /// The seq of the last applied event.
    pub head: Seq,
    /// The time of the last applied event.
    pub last_ts: Millis,
    /// The last applied event that changed what a post is decided against
    /// (the settings, the pins — the rules among them), as far as this copy
    /// knows: at most `head`, and `head` itself after a load. In a cluster the
    /// order refuses a post decided on a copy behind its own (`RulesChanged`),
    /// and the post is decided again once the copy has caught up.
    pub rules_seq: Seq,
}

/// A member's standing in the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub role: Role,
    pub joined_at: Millis,
    pub role_expires_at: Option<Millis>,
}

impl Member {
    /// The role in force at `now`: a role given for a time falls back to
    /// `member` when it ends, by itself.
    pub fn role_at(&self, now: Millis) -> Role {
        effective_role(self.role, self.role_expires_at, now)
    }
}

/// `role` at `now`, when it was given until `expires_at`.
pub fn effective_role(role: Role, expires_at: Option<Millis>, now: Millis) -> Role {
    match expires_at {
        Some(end) if end <= now && role != Role::Owner => Role::Member,
        _ => role,
    }
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
        RoomState {
            record,
            members: HashMap::new(),
            pins: Vec::new(),
            rows: Rows::default(),
            last_post: HashMap::new(),
            head: Seq::ZERO,
            last_ts,
            rules_seq: Seq::ZERO,
        }
    }

    /// The state stored at `head`: the store's tables hold what `changes` made of
    /// every event up to there.
    pub fn restore(
        record: RoomRecord,
        members: Vec<MemberRecord>,
        pins: Vec<PinnedNote>,
        rows: &[Row],
        head: Seq,
        last_ts: Millis,
    ) -> Result<RoomState, rows::BadRow> {
        let members = members
            .into_iter()
            .map(|m| (m.user, Member { role: m.role, joined_at: m.joined_at, role_expires_at: m.role_expires_at }))
            .collect();
        let mut pins = pins;
        pins.sort_by_key(|p| p.pin);
        let mut typed = Rows::default();
        for row in rows {
            typed.put(row)?;
        }
        let last_post = HashMap::new();
        Ok(RoomState { record, members, pins, rows: typed, last_post, head, last_ts, rules_seq: head })
    }

    /// The members as stored (for making a room again from a copy).
    pub fn member_records(&self) -> Vec<MemberRecord> {
        self.members
            .iter()
            .map(|(user, m)| MemberRecord {
                user: user.clone(),
                role: m.role,
                joined_at: m.joined_at,
                role_expires_at: m.role_expires_at,
            })
            .collect()
    }

    /// Applies the next event of the timeline. An event that is not the next one
    /// changes nothing.
    /// Keeps when each member last posted (slow mode) up to date with `event`,
    /// applied now or, for a room just loaded, among its recent events.
    pub fn note_last_post(&mut self, event: &Event) {
        if let Event::Message(m) = event {
            self.last_post.insert(m.from.clone(), m.ts);
        }
        if let Some(gone) = removed_member(event) {
            self.last_post.remove(gone);
        }
    }

    pub fn apply(&mut self, event: &Event) -> Result<(), OutOfOrder> {
        let Some(seq) = event.seq() else { return Ok(()) };
        if seq != self.head.next() {
            return Err(OutOfOrder { head: self.head, got: seq });
        }
        for change in changes(event) {
            if matches!(change, Change::PutPin(_) | Change::RemovePin(_) | Change::UpdateSettings(_)) {
                self.rules_seq = seq;
            }
            self.apply_change(change);
        }
        self.note_last_post(event);
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
            Change::SetRole { user, role, expires_at } => {
                if let Some(member) = self.members.get_mut(&user) {
                    member.role = role;
                    member.role_expires_at = expires_at;
                }
            }
            Change::PutRow(row) => {
                if let Err(error) = self.rows.put(&row) {
                    // The room wrote it itself a moment ago: a bug if it cannot read it.
                    tracing::error!(room = %self.record.room, %error, "an applied row does not read back");
                }
            }
            Change::RemoveRow { table, key } => self.rows.remove(table, &key),
            Change::PutAnnex(_) | Change::RemoveAnnex { .. } => {}
            Change::UseInvite(id) => self.rows.use_invite(&id),
            Change::RetextPins { message, text } => {
                for pin in self.pins.iter_mut().filter(|p| p.seq == Some(message)) {
                    messages::retext_pin(pin, text.as_ref());
                }
            }
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
            probation_posts: r.probation_posts,
            parent: r.parent.clone(),
            rules_ack: r.rules_ack,
        }
    }

    /// The pinned notes in the room's order: those `order_pins` named first,
    /// then the rest, oldest first.
    pub fn ordered_pins(&self) -> Vec<PinnedNote> {
        let place = |pin: &PinnedNote| {
            let note = pin.note_id();
            self.record.pin_order.iter().position(|p| *p == note).unwrap_or(usize::MAX)
        };
        let mut pins = self.pins.clone();
        pins.sort_by_key(|p| (place(p), p.note_id()));
        pins
    }

    /// The rules: the pin titled "Rules" (any case), if there is one.
    pub fn rules(&self) -> Option<&PinnedNote> {
        self.pin_titled("rules")
    }

    /// The pin whose title is `title` in any case: a room holds at most one.
    fn pin_titled(&self, title: &str) -> Option<&PinnedNote> {
        self.pins.iter().find(|p| p.title.as_ref().is_some_and(|t| same_title(t.as_str(), title)))
    }

    pub fn position(&self) -> Position {
        Position { epoch: self.record.epoch, seq: self.head }
    }

    /// A member's role at `now` (a role given for a time may have ended).
    pub fn role_of(&self, user: &UserId, now: Millis) -> Option<Role> {
        self.members.get(user).map(|m| m.role_at(now))
    }

    fn require_member(&self, user: &UserId) -> Result<&Member, ErrorBody> {
        self.members.get(user).ok_or_else(|| not_member(&self.record.room))
    }

    fn require_role(&self, user: &UserId, least: Role, what: &str, now: Millis) -> Result<Role, ErrorBody> {
        let role = self.require_member(user)?.role_at(now);
        if role < least {
            return Err(forbidden(&self.record.room, least, role, what));
        }
        Ok(role)
    }

    /// A join: nothing to order for a member; a first join for anyone else the
    /// room admits. A join with `since` resumes a membership, so it needs one.
    pub fn decide_join(&self, user: &UserId, since: Option<Position>, now: Millis) -> Result<Option<Draft>, ErrorBody> {
        if self.members.contains_key(user) {
            // Let in by a welcomer while away: this join is their first, and
            // says so (the welcome), once.
            if since.is_none() && self.rows.approved.contains_key(user) {
                let event = Event::Arrived(ArrivedEvent {
                    room: self.record.room.clone(),
                    seq: Seq::ZERO,
                    ts: Millis(0),
                    from: user.clone(),
                });
                return Ok(Some(Draft { event, requires: Requires::Member(user.clone()), cmid: None }));
            }
            return Ok(None);
        }
        let room = &self.record.room;
        if let Some(ban) = self.rows.bans.get(user).filter(|b| b.holds(now)) {
            let until = ban.until.map_or("until a moderator lifts it".to_string(), |t| format!("until {}", t.0));
            return Err(ErrorBody::new(ErrorCode::Banned, format!("you are banned from room {room} {until}")));
        }
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
                let why = match (self.rows.requests.get(user), self.rows.denied.get(user)) {
                    (Some(_), _) => "your request is waiting for a welcomer or moderator".to_string(),
                    (None, Some(denial)) => format!(
                        "{} denied your request{}; you may ask again with request_join",
                        denial.by,
                        if denial.reason.as_str().is_empty() { String::new() } else { format!(": {}", denial.reason) }
                    ),
                    (None, None) => "send request_join and wait for approval".to_string(),
                };
                return Err(ErrorBody::new(
                    ErrorCode::ApprovalRequired,
                    format!("room {room} vets new members: {why}"),
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
            approved_by: None,
            invite: None,
        });
        let requires = Requires::Admit { user: user.clone(), rules: Some(self.rules_seq) };
        Ok(Some(Draft { event, requires, cmid: None }))
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

    /// The message event of `msg`, posted by `user` (see `decide_send`, which
    /// decides whether and how it is posted).
    fn message_draft(&self, user: &UserId, msg: SendMessage) -> Result<Draft, ErrorBody> {
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
            state: None,
            prompt: None,
            released_by: None,
            probation_post: None,
        });
        let requires = Requires::Post { user: user.clone(), slow_ms: 0, rules: Some(self.rules_seq) };
        Ok(Draft { event, requires, cmid: Some(cmid) })
    }

    /// Pins `text` (a message's, when `seq` names one, or a free note). A pin with
    /// the title of an existing pin replaces it as its next version.
    #[allow(clippy::too_many_arguments)] // the pin request's fields, each its own
    pub fn decide_pin(
        &self,
        user: &UserId,
        seq: Option<Seq>,
        text: Note,
        title: Option<ShortText>,
        edit: Option<PinId>,
        max_pins: usize,
        now: Millis,
    ) -> Result<Draft, ErrorBody> {
        self.require_role(user, permissions::least_role(permissions::Action::Pin), "pin", now)?;
        let title = title.filter(|t| !t.as_str().is_empty());
        let titled = title.as_ref().and_then(|t| self.pin_titled(t.as_str()));
        let replaced = match edit {
            Some(id) => {
                let edited = self.pins.iter().find(|p| p.pin == id).ok_or_else(|| {
                    ErrorBody::new(ErrorCode::NoSuchTarget, format!("room {} has no pin {}", self.record.room, id.0))
                })?;
                // Retitled as another note is titled: two notes would answer to it.
                if let Some(other) = titled.filter(|other| other.pin != edited.pin) {
                    return Err(ErrorBody::new(
                        ErrorCode::AlreadyExists,
                        format!(
                            "pin {} is titled {:?} already; edit that one, or pick another title",
                            other.pin.0,
                            other.title.as_ref().map_or("", |t| t.as_str())
                        ),
                    ));
                }
                Some(edited)
            }
            // The same title in any case is the same note ("Rules", "RULES").
            None => titled,
        };
        // An edit keeps the note's title unless given a new one.
        let title = title.or_else(|| edit.and(replaced).and_then(|r| r.title.clone()));
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
            note: replaced.map(|r| r.note_id()),
            deleted: false,
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

    pub fn decide_unpin(&self, user: &UserId, pin: PinId, now: Millis) -> Result<Draft, ErrorBody> {
        self.require_role(user, permissions::least_role(permissions::Action::Pin), "unpin", now)?;
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

/// Whether two pin titles name the same note: equal but for case, in any
/// script ("Rules" and "RULES" are one rules note).
pub fn same_title(a: &str, b: &str) -> bool {
    a.chars().flat_map(char::to_lowercase).eq(b.chars().flat_map(char::to_lowercase))
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
    let record = RoomRecord::new(args.room.clone(), epoch, owner.clone(), now, args.topic, cap, args.visibility);
    let event = Event::MemberJoined(MemberJoinedEvent {
        room: args.room,
        seq: Seq::ZERO,
        ts: Millis(0),
        from: owner.clone(),
        role: Role::Owner,
        approved_by: None,
        invite: None,
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
        Event::JoinRequest(e) => &e.from,
        Event::Ack(e) => &e.from,
        Event::Arrived(e) => &e.from,
        Event::Prompt(e) => &e.from,
        Event::Held(e) => &e.from,
        Event::Hello(_) | Event::Typing(_) | Event::Presence(_) | Event::JoinDecision(_) | Event::Truncated(_) => {
            return None;
        }
    })
}

/// What must still be true of the room when a drafted event is ordered. Roles
/// are the ones in force when it is ordered (a role given for a time may end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requires {
    Nothing,
    /// The user is a member.
    Member(UserId),
    /// The user is a member who is not muted, and (with `slow_ms` > 0, the
    /// room's slow mode for this member) posted last at least that long ago;
    /// and, for a message decided against the room's rules, none have changed
    /// since the event at `rules` (`RoomState::rules_seq`).
    Post {
        user: UserId,
        slow_ms: u64,
        rules: Option<Seq>,
    },
    /// The user is a member holding at least this role.
    RoleAtLeast(UserId, Role),
    /// `user` holds at least `least`, and outranks `target` if that is a member.
    Over {
        user: UserId,
        least: Role,
        target: UserId,
    },
    /// The user is not a member yet, not banned, and the room has space for one
    /// more; and, for a join decided against the room's settings (visibility,
    /// gate), none have changed since the event at `rules`.
    Admit {
        user: UserId,
        rules: Option<Seq>,
    },
    /// As `Admit`, with an invite (by id) that is still valid.
    AdmitInvite {
        user: UserId,
        invite: String,
    },
    /// `actor` (a welcomer or above) lets `user` in: `user` has a pending
    /// request, and `Admit` holds for them.
    Approve {
        actor: UserId,
        user: UserId,
    },
    /// `actor` (a welcomer or above) decides on `user`'s pending request.
    Decide {
        actor: UserId,
        user: UserId,
    },
    /// `user` may ask to join: not a member, not banned, and (unless asking
    /// again) fewer than `max` requests are pending.
    Request {
        user: UserId,
        max: usize,
    },
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
    #[error("banned from the room")]
    Banned,
    #[error("muted in the room")]
    Muted,
    #[error("slow mode: the next post in {retry_ms} ms")]
    SlowMode { retry_ms: u64 },
    #[error("the target holds {target:?}, not below {held:?}")]
    Outranked { held: Role, target: Role },
    #[error("the invite is unknown, expired or used up")]
    InvalidInvite,
    #[error("no pending request")]
    NoRequest,
    #[error("{max} requests are pending already")]
    RequestsFull { max: usize },
    #[error("the room's rules changed after the copy that decided it")]
    RulesChanged,
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
            Rejection::Banned => banned(room),
            Rejection::Muted => ErrorBody::new(ErrorCode::Muted, format!("you are muted in room {room}")),
            Rejection::SlowMode { retry_ms } => {
                ErrorBody::new(ErrorCode::SlowMode, format!("room {room} is in slow mode: wait before posting again"))
                    .retry_after(retry_ms)
            }
            Rejection::Outranked { held, target } => outranked(room, held, target),
            Rejection::InvalidInvite => ErrorBody::new(
                ErrorCode::InvalidInvite,
                format!("that invite to room {room} is unknown, expired, used up or revoked; ask for a new one"),
            ),
            Rejection::NoRequest => {
                ErrorBody::new(ErrorCode::NoSuchTarget, format!("no pending request to join room {room} from them"))
            }
            Rejection::RequestsFull { max } => ErrorBody::new(
                ErrorCode::LimitReached,
                format!("room {room} has {max} pending join requests, the most it takes; try again later"),
            ),
            // Seen by a client only when the node could not catch up in time.
            Rejection::RulesChanged => ErrorBody::new(
                ErrorCode::Overloaded,
                format!("room {room}'s settings changed as this was posted; nothing was stored, retry"),
            )
            .retry_after(200),
        }
    }
}

/// What the order of a room needs to know to check [`Requires`]: each member's
/// role and the cap. It follows the same [`changes`] as [`RoomState`], applied
/// when an event is ordered rather than when it is durable, so it already counts
/// the events still on their way to disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    /// Each member's role and when a role given for a time ends.
    members: HashMap<UserId, (Role, Option<Millis>)>,
    cap: u32,
    pins: usize,
    /// Until when each banned or muted user is (`None`: until lifted).
    bans: HashMap<UserId, Option<Millis>>,
    mutes: HashMap<UserId, Option<Millis>>,
    /// When members in slow mode last posted.
    last_post: HashMap<UserId, Millis>,
    /// Pending join requests.
    requests: std::collections::HashSet<UserId>,
    /// Invites by id: until when, how many uses, how many used.
    invites: HashMap<String, rows::InviteRow>,
}

impl Gate {
    pub fn new(cap: u32, members: impl IntoIterator<Item = (UserId, Role)>) -> Gate {
        Gate {
            members: members.into_iter().map(|(user, role)| (user, (role, None))).collect(),
            cap,
            pins: 0,
            bans: HashMap::new(),
            mutes: HashMap::new(),
            last_post: HashMap::new(),
            requests: std::collections::HashSet::new(),
            invites: HashMap::new(),
        }
    }

    /// The gate of a stored room: its members, pins and rows.
    pub fn of(cap: u32, members: &[MemberRecord], pins: usize, rows: &[Row]) -> Gate {
        let mut gate = Gate::new(cap, []).with_pins(pins);
        for m in members {
            gate.members.insert(m.user.clone(), (m.role, m.role_expires_at));
        }
        gate.apply(&rows.iter().cloned().map(Change::PutRow).collect::<Vec<_>>());
        gate
    }

    /// The gate of a room that has `pins` pinned notes.
    pub fn with_pins(mut self, pins: usize) -> Gate {
        self.pins = pins;
        self
    }

    fn role_at(&self, user: &UserId, now: Millis) -> Option<Role> {
        self.members.get(user).map(|(role, expires)| effective_role(*role, *expires, now))
    }

    fn role_at_least(&self, user: &UserId, least: Role, now: Millis) -> Result<Role, Rejection> {
        match self.role_at(user, now) {
            None => Err(Rejection::NotMember),
            Some(held) if held < least => Err(Rejection::Forbidden { least, held }),
            Some(held) => Ok(held),
        }
    }

    /// Whether `requires` holds at `now`.
    pub fn check(&self, requires: &Requires, now: Millis) -> Result<(), Rejection> {
        let holds = |until: &Option<Millis>| until.is_none_or(|t| t > now);
        match requires {
            Requires::Nothing => Ok(()),
            Requires::Member(user) => self.members.get(user).map(|_| ()).ok_or(Rejection::NotMember),
            // The rules are this copy's own: there is no other copy to be behind.
            Requires::Post { user, slow_ms, rules: _ } => {
                self.members.get(user).ok_or(Rejection::NotMember)?;
                if self.mutes.get(user).is_some_and(holds) {
                    return Err(Rejection::Muted);
                }
                match self.last_post.get(user) {
                    Some(last) if *slow_ms > 0 && last.0 + slow_ms > now.0 => {
                        Err(Rejection::SlowMode { retry_ms: last.0 + slow_ms - now.0 })
                    }
                    _ => Ok(()),
                }
            }
            Requires::RoleAtLeast(user, least) => self.role_at_least(user, *least, now).map(drop),
            Requires::Over { user, least, target } => {
                let held = self.role_at_least(user, *least, now)?;
                match self.role_at(target, now) {
                    Some(target) if target >= held => Err(Rejection::Outranked { held, target }),
                    _ => Ok(()),
                }
            }
            Requires::PinSlot { user, least, max } => {
                self.role_at_least(user, *least, now)?;
                if self.pins >= *max { Err(Rejection::PinsFull { max: *max }) } else { Ok(()) }
            }
            Requires::Admit { user, rules: _ } => self.admit(user, now),
            Requires::AdmitInvite { user, invite } => {
                if !self.invites.get(invite).is_some_and(|i| i.valid(now)) {
                    return Err(Rejection::InvalidInvite);
                }
                self.admit(user, now)
            }
            Requires::Approve { actor, user } => {
                self.role_at_least(actor, Role::Welcomer, now)?;
                if !self.requests.contains(user) {
                    return Err(Rejection::NoRequest);
                }
                self.admit(user, now)
            }
            Requires::Decide { actor, user } => {
                self.role_at_least(actor, Role::Welcomer, now)?;
                if self.requests.contains(user) { Ok(()) } else { Err(Rejection::NoRequest) }
            }
            Requires::Request { user, max } => {
                if self.members.contains_key(user) {
                    Err(Rejection::AlreadyMember)
                } else if self.bans.get(user).is_some_and(holds) {
                    Err(Rejection::Banned)
                } else if !self.requests.contains(user) && self.requests.len() >= *max {
                    Err(Rejection::RequestsFull { max: *max })
                } else {
                    Ok(())
                }
            }
        }
    }

    fn admit(&self, user: &UserId, now: Millis) -> Result<(), Rejection> {
        if self.members.contains_key(user) {
            Err(Rejection::AlreadyMember)
        } else if self.bans.get(user).is_some_and(|until| until.is_none_or(|t| t > now)) {
            Err(Rejection::Banned)
        } else if self.members.len() >= self.cap as usize {
            Err(Rejection::RoomFull { cap: self.cap })
        } else {
            Ok(())
        }
    }

    /// Notes what an ordered event that `requires` this means for the next
    /// check: a post in slow mode starts the poster's wait.
    pub fn ordered(&mut self, requires: &Requires, at: Millis) {
        if let Requires::Post { user, slow_ms, .. } = requires {
            if *slow_ms > 0 {
                self.last_post.insert(user.clone(), at);
            }
        }
    }

    pub fn apply(&mut self, changes: &[Change]) {
        for change in changes {
            match change {
                Change::PutMember(m) => {
                    self.members.insert(m.user.clone(), (m.role, m.role_expires_at));
                }
                Change::RemoveMember(user) => {
                    self.members.remove(user);
                    self.last_post.remove(user);
                }
                Change::SetRole { user, role, expires_at } => {
                    if let Some(member) = self.members.get_mut(user) {
                        *member = (*role, *expires_at);
                    }
                }
                Change::UpdateSettings(settings) => {
                    if let Some(cap) = settings.cap {
                        self.cap = cap;
                    }
                }
                Change::PutPin(_) => self.pins += 1,
                Change::RemovePin(_) => self.pins = self.pins.saturating_sub(1),
                Change::PutRow(row) if matches!(row.table, RowTable::Ban | RowTable::Mute) => {
                    let until = rows::decode::<Sanction>(&row.value).map(|s| s.until);
                    let (Ok(user), Ok(until)) = (UserId::new(row.key.clone()), until) else { continue };
                    let sanctions = if row.table == RowTable::Ban { &mut self.bans } else { &mut self.mutes };
                    sanctions.insert(user, until);
                }
                Change::PutRow(row) if row.table == RowTable::Request => {
                    if let Ok(user) = UserId::new(row.key.clone()) {
                        self.requests.insert(user);
                    }
                }
                Change::PutRow(row) if row.table == RowTable::Invite => {
                    if let Ok(invite) = rows::decode::<rows::InviteRow>(&row.value) {
                        self.invites.insert(row.key.clone(), invite);
                    }
                }
                Change::PutRow(_) => {}
                Change::RemoveRow { table: RowTable::Invite, key } => {
                    self.invites.remove(key);
                }
                Change::RemoveRow { table, key } => {
                    let Ok(user) = UserId::new(key.clone()) else { continue };
                    match table {
                        RowTable::Ban => self.bans.remove(&user).map(drop),
                        RowTable::Mute => self.mutes.remove(&user).map(drop),
                        RowTable::Request => self.requests.remove(&user).then_some(()),
                        _ => None,
                    };
                }
                // What pins say changes nothing the order checks.
                Change::PutAnnex(_) | Change::RemoveAnnex { .. } | Change::RetextPins { .. } => {}
                Change::UseInvite(id) => {
                    if let Some(invite) = self.invites.get_mut(id) {
                        invite.uses += 1;
                    }
                }
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

fn banned(room: &RoomId) -> ErrorBody {
    ErrorBody::new(ErrorCode::Banned, format!("you are banned from room {room}"))
}

fn outranked(room: &RoomId, held: Role, target: Role) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::Forbidden,
        format!(
            "in room {room} you are a {} and they are a {}: you may act only on members below you",
            held.as_str(),
            target.as_str()
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
