//! What a decision hands the order, and what the order checks: a drafted
//! event ([`Draft`]) with what must still hold when it is ordered
//! ([`Requires`]), the order's view of the room to check it against
//! ([`Gate`]); why it may refuse is a [`Refusal`], like a decision's.

use std::collections::HashMap;

use hearth_protocol::{ClientMsgId, Event, Millis, Role, Seq, UserId};

use super::rows::{self, Row, RowTable, Sanction};
use super::{Change, MemberRecord, Refusal, Term, effective_role};

/// A decided event, not yet ordered: whoever orders the room stamps it with the
/// next seq and the time, once `requires` still holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// The event, with seq and ts still zero.
    pub event: Event,
    pub requires: Requires,
    /// For a message: its client message id, which makes a retry idempotent.
    pub cmid: Option<ClientMsgId>,
    /// The head of the room's copy it was decided on; `None` when it was not
    /// decided on a copy (a room's creation, an import, an erasure) or does
    /// not depend on its rules (a scheduled prompt, due whatever they are). A
    /// cluster node's copy trails the order by a delivery, so the order
    /// refuses a draft decided before the room's rules last changed (its
    /// settings, pins, roles or warnings), and the node decides it again on
    /// the caught-up copy. One node's order is its copy: it has nothing to
    /// trail.
    pub decided_at: Option<Seq>,
}

impl Draft {
    /// A draft not decided on a copy of the room.
    pub fn new(event: Event, requires: Requires) -> Draft {
        Draft { event, requires, cmid: None, decided_at: None }
    }

    /// The same draft, idempotent under `cmid`.
    pub fn with_cmid(mut self, cmid: ClientMsgId) -> Draft {
        self.cmid = Some(cmid);
        self
    }

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
        Event::DirectStarted(e) => &e.from,
        Event::Report(e) => &e.from,
        // The erased member: the events of their erasure are theirs.
        Event::Erased(e) => &e.user,
        Event::Hello(_)
        | Event::Typing(_)
        | Event::Presence(_)
        | Event::JoinDecision(_)
        | Event::Truncated(_)
        | Event::Read(_)
        | Event::Blocks(_) => {
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
    /// room's slow mode for this member) posted last at least that long ago.
    /// A cluster's order takes membership and mutes as decided when no
    /// member's standing changed since the draft's `decided_at`, and reads
    /// them again when one did.
    Post {
        user: UserId,
        slow_ms: u64,
    },
    /// The user is a member holding at least this role.
    RoleAtLeast(UserId, Role),
    /// `user` holds at least `least`, and outranks `target` if that is a
    /// member.
    Over {
        user: UserId,
        least: Role,
        target: UserId,
    },
    /// The user is not a member yet, not banned, and the room has space for one
    /// more.
    Admit(UserId),
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
    /// `actor` holds at least `least` (a moderator releasing a held post) and
    /// `author` is a member.
    Release {
        actor: UserId,
        least: Role,
        author: UserId,
    },
    /// The user holds at least `least`, and the room has fewer than `max` pins.
    PinSlot {
        user: UserId,
        least: Role,
        max: usize,
    },
}

impl super::RoomState {
    /// A draft decided on this copy of the room, at its head.
    pub(super) fn draft(&self, event: Event, requires: Requires) -> Draft {
        Draft { event, requires, cmid: None, decided_at: Some(self.head) }
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

    fn role_at_least(&self, user: &UserId, least: Role, now: Millis) -> Result<Role, Refusal> {
        match self.role_at(user, now) {
            None => Err(Refusal::NotMember),
            Some(held) if held < least => Err(Refusal::Forbidden { least, held, action: None }),
            Some(held) => Ok(held),
        }
    }

    /// Whether `requires` holds at `now`.
    pub fn check(&self, requires: &Requires, now: Millis) -> Result<(), Refusal> {
        let holds = |until: &Option<Millis>| until.is_none_or(|t| t > now);
        match requires {
            Requires::Nothing => Ok(()),
            Requires::Member(user) => self.members.get(user).map(|_| ()).ok_or(Refusal::NotMember),
            Requires::Post { user, slow_ms } => {
                self.members.get(user).ok_or(Refusal::NotMember)?;
                if self.mutes.get(user).is_some_and(holds) {
                    return Err(Refusal::Muted(Term::Unsaid));
                }
                match self.last_post.get(user) {
                    Some(last) if *slow_ms > 0 && last.0 + slow_ms > now.0 => Err(Refusal::SlowMode {
                        retry_ms: last.0 + slow_ms - now.0,
                        every_secs: None,
                        probation: false,
                    }),
                    _ => Ok(()),
                }
            }
            Requires::RoleAtLeast(user, least) => self.role_at_least(user, *least, now).map(drop),
            Requires::Over { user, least, target } => {
                let held = self.role_at_least(user, *least, now)?;
                match self.role_at(target, now) {
                    Some(target) if target >= held => Err(Refusal::Outranked { held, target }),
                    _ => Ok(()),
                }
            }
            Requires::PinSlot { user, least, max } => {
                self.role_at_least(user, *least, now)?;
                if self.pins >= *max { Err(Refusal::PinsFull { max: *max }) } else { Ok(()) }
            }
            Requires::Release { actor, least, author } => {
                self.role_at_least(actor, *least, now)?;
                self.members.get(author).map(|_| ()).ok_or(Refusal::NotMember)
            }
            Requires::Admit(user) => self.admit(user, now),
            Requires::AdmitInvite { user, invite } => {
                if !self.invites.get(invite).is_some_and(|i| i.valid(now)) {
                    return Err(Refusal::InvalidInvite);
                }
                self.admit(user, now)
            }
            Requires::Approve { actor, user } => {
                self.role_at_least(actor, Role::Welcomer, now)?;
                if !self.requests.contains(user) {
                    return Err(Refusal::NoRequest { user: None });
                }
                self.admit(user, now)
            }
            Requires::Decide { actor, user } => {
                self.role_at_least(actor, Role::Welcomer, now)?;
                if self.requests.contains(user) { Ok(()) } else { Err(Refusal::NoRequest { user: None }) }
            }
            Requires::Request { user, max } => {
                if self.members.contains_key(user) {
                    Err(Refusal::AlreadyMember)
                } else if self.bans.get(user).is_some_and(holds) {
                    Err(Refusal::Banned(Term::Unsaid))
                } else if !self.requests.contains(user) && self.requests.len() >= *max {
                    Err(Refusal::RequestsFull { max: *max })
                } else {
                    Ok(())
                }
            }
        }
    }

    fn admit(&self, user: &UserId, now: Millis) -> Result<(), Refusal> {
        if self.members.contains_key(user) {
            Err(Refusal::AlreadyMember)
        } else if self.bans.get(user).is_some_and(|until| until.is_none_or(|t| t > now)) {
            Err(Refusal::Banned(Term::Unsaid))
        } else if self.members.len() >= self.cap as usize {
            Err(Refusal::RoomFull { cap: self.cap })
        } else {
            Ok(())
        }
    }

    /// Notes what an ordered event that `requires` this means for the next
    /// check: a post in slow mode starts the poster's wait.
    pub fn ordered(&mut self, requires: &Requires, at: Millis) {
        if let Requires::Post { user, slow_ms, .. } = requires
            && *slow_ms > 0
        {
            self.last_post.insert(user.clone(), at);
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
