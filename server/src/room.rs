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

pub mod changes;
pub mod community;
pub mod filter;
pub mod lockdown;
pub mod membership;
pub mod messages;
pub mod notes;
pub mod order;
pub mod permissions;
pub mod posting;
pub mod refusal;
pub mod reports;
pub mod rows;
pub mod stats;
pub mod vetting;

use std::collections::HashMap;

use hearth_protocol::ops::{
    LockLevel, Lockdown, ModAction, PinnedNote, RoomInfo, RoomSettings, Visibility, WordFilter,
};
use hearth_protocol::{Epoch, Event, Millis, PinId, Position, Role, RoomId, Seq, ShortText, UserId};
use serde::{Deserialize, Serialize};

pub use self::changes::{Change, NEWCOMER_MS, audience, changes, removed_member};
pub use self::membership::{DIRECT_PREFIX, DirectStanding, decide_create, decide_start_direct, direct_room};
pub use self::notes::same_title;
pub use self::order::{Draft, Gate, Requires, actor};
use self::permissions::Action;
pub use self::refusal::{Refusal, Term, Vetting};
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
    /// A direct conversation's members as it started, its starter first:
    /// only they are ever in it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub direct: Vec<UserId>,
    /// Days a warning counts (0: until lifted).
    #[serde(default = "default_warn_expiry_days")]
    pub warn_expiry_days: u32,
    /// The live warning that brings `warn_action` (0: none does).
    #[serde(default)]
    pub warn_limit: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_action: Option<ModAction>,
    #[serde(default)]
    pub warn_action_secs: u32,
    /// The room's lockdown (it holds until `until`, or until lifted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lockdown: Option<Lockdown>,
    /// Raid detection: `raid_joins` joins or requests within `raid_secs`
    /// lock new members out for `raid_lock_secs` (0: off).
    #[serde(default)]
    pub raid_joins: u32,
    #[serde(default)]
    pub raid_secs: u32,
    #[serde(default)]
    pub raid_lock_secs: u32,
    /// The room's word filter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<WordFilter>,
    /// An erased member's messages stay, attributed to `former-member`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub erased_as_former_member: bool,
}

fn default_warn_expiry_days() -> u32 {
    hearth_protocol::limits::DEFAULT_WARN_EXPIRY_DAYS
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
            direct: Vec::new(),
            warn_expiry_days: default_warn_expiry_days(),
            warn_limit: 0,
            warn_action: None,
            warn_action_secs: 0,
            lockdown: None,
            raid_joins: 0,
            raid_secs: 0,
            raid_lock_secs: 0,
            erased_as_former_member: false,
            filters: Vec::new(),
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
        // A direct conversation stays one, and no room becomes one.
        if let Some(visibility) = settings.visibility.filter(|_| self.visibility != Visibility::Direct) {
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
        if let Some(days) = settings.warn_expiry_days {
            self.warn_expiry_days = days;
        }
        if let Some(limit) = settings.warn_limit {
            self.warn_limit = limit;
        }
        if let Some(action) = settings.warn_action {
            self.warn_action = Some(action);
        }
        if let Some(secs) = settings.warn_action_secs {
            self.warn_action_secs = secs;
        }
        if let Some(lockdown) = settings.lockdown {
            self.lockdown = (lockdown.level != LockLevel::Off).then_some(lockdown);
        }
        if let Some(joins) = settings.raid_joins {
            self.raid_joins = joins;
        }
        if let Some(secs) = settings.raid_secs {
            self.raid_secs = secs;
        }
        if let Some(secs) = settings.raid_lock_secs {
            self.raid_lock_secs = secs;
        }
        if let Some(keep) = settings.erased_as_former_member {
            self.erased_as_former_member = keep;
        }
        if let Some(filters) = &settings.filters {
            self.filters.clone_from(filters);
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
    /// knows: at most `head`, and `head` itself after a load. (A cluster's
    /// order compares its own with the `head` a post was decided at, and
    /// refuses one decided before the last change, `RulesChanged`; the post
    /// is decided again once the copy has caught up.)
    pub rules_seq: Seq,
    /// When the latest joins and requests to join came, for raid
    /// detection. Not stored: after a restart the count starts afresh.
    pub arrivals: std::collections::VecDeque<Millis>,
    /// The record's word filter, compiled.
    pub filters: filter::CompiledFilters,
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
        let filters = filter::CompiledFilters::of(&record.filters);
        RoomState {
            record,
            members: HashMap::new(),
            pins: Vec::new(),
            rows: Rows::default(),
            last_post: HashMap::new(),
            head: Seq::ZERO,
            last_ts,
            rules_seq: Seq::ZERO,
            arrivals: Default::default(),
            filters,
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
        Ok(RoomState {
            members,
            pins,
            rows: typed,
            last_post,
            head,
            last_ts,
            rules_seq: head,
            arrivals: Default::default(),
            filters: filter::CompiledFilters::of(&record.filters),
            record,
        })
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
        self.note_arrival(event);
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
            Change::UpdateSettings(settings) => {
                self.record.apply_settings(&settings);
                if settings.filters.is_some() {
                    self.filters = filter::CompiledFilters::of(&self.record.filters);
                }
            }
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
            direct: r.direct.clone(),
            warn_expiry_days: r.warn_expiry_days,
            warn_limit: r.warn_limit,
            warn_action: r.warn_action,
            warn_action_secs: r.warn_action_secs,
            lockdown: r.lockdown,
            raid_joins: r.raid_joins,
            raid_secs: r.raid_secs,
            raid_lock_secs: r.raid_lock_secs,
            erased_as_former_member: r.erased_as_former_member,
        }
    }

    pub fn position(&self) -> Position {
        Position { epoch: self.record.epoch, seq: self.head }
    }

    /// A member's role at `now` (a role given for a time may have ended).
    pub fn role_of(&self, user: &UserId, now: Millis) -> Option<Role> {
        self.members.get(user).map(|m| m.role_at(now))
    }

    fn require_member(&self, user: &UserId) -> Result<&Member, Refusal> {
        self.members.get(user).ok_or(Refusal::NotMember)
    }

    /// `user` holds at least `least` (the role `action` needs here).
    fn require_role(&self, user: &UserId, least: Role, action: Action, now: Millis) -> Result<Role, Refusal> {
        let held = self.require_member(user)?.role_at(now);
        if held < least {
            return Err(Refusal::Forbidden { least, held, action: Some(action) });
        }
        Ok(held)
    }
}

#[cfg(test)]
mod tests;
