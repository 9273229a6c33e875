//! Being in a room: making one, starting a direct conversation, joining
//! (and arriving after an approval), leaving. Pure, like the rest of `room`.

use hearth_protocol::event::{ArrivedEvent, DirectStartedEvent, LeftReason, MemberJoinedEvent, MemberLeftEvent};
use hearth_protocol::ops::{CreateRoom, Visibility};
use hearth_protocol::{Epoch, Event, Millis, Position, Role, RoomId, Seq, ShortText, UserId, limits};
use sha2::{Digest, Sha256};

use super::community::cap_out_of_range;
use super::{Draft, Refusal, Requires, RoomRecord, RoomState, Term, Vetting};

/// A new room: its record and its first event, the owner joining.
pub fn decide_create(
    owner: &UserId,
    args: CreateRoom,
    epoch: Epoch,
    now: Millis,
) -> Result<(RoomRecord, Draft), Refusal> {
    if args.visibility == Visibility::Direct {
        return Err(Refusal::DirectOnly);
    }
    if args.room.as_str().starts_with(DIRECT_PREFIX) {
        return Err(Refusal::NameReserved);
    }
    let cap = args.cap.unwrap_or(limits::DEFAULT_ROOM_CAP);
    if !(1..=limits::MAX_ROOM_CAP).contains(&cap) {
        return Err(cap_out_of_range());
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
        lockdown: None,
    });
    Ok((record, Draft::new(event, Requires::Nothing)))
}

/// Names of direct conversations start with this; no other room's may.
pub const DIRECT_PREFIX: &str = "dm-";

/// The room of a direct conversation between `members` (in any order):
/// the same members always make the same name, so starting again finds the
/// conversation there is. A hash, so a name tells nobody who is in it; 80
/// bits of SHA-256, so nobody can choose names that make another's.
pub fn direct_room(members: &[UserId]) -> RoomId {
    let mut sorted: Vec<&str> = members.iter().map(UserId::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let digest = Sha256::digest(sorted.join("\n").as_bytes());
    let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
    RoomId::new(format!("{DIRECT_PREFIX}{hex}")).expect("dm- and 20 hex digits make a valid room name")
}

/// A new direct conversation: `starter` and `others` (distinct, checked by
/// the caller against who may talk to whom), all members from its first
/// event on. Nobody owns it: every member is a `member`, and may leave.
pub fn decide_start_direct(starter: &UserId, others: &[UserId], epoch: Epoch, now: Millis) -> (RoomRecord, Draft) {
    let mut members = vec![starter.clone()];
    members.extend(others.iter().cloned());
    let room = direct_room(&members);
    let cap = members.len() as u32;
    let mut record =
        RoomRecord::new(room.clone(), epoch, starter.clone(), now, ShortText::default(), cap, Visibility::Direct);
    record.direct.clone_from(&members);
    let event = Event::DirectStarted(DirectStartedEvent {
        room,
        seq: Seq::ZERO,
        ts: Millis(0),
        from: starter.clone(),
        members,
    });
    (record, Draft::new(event, Requires::Nothing))
}

/// Where a member stands in a room, for starting a direct conversation with
/// someone in it (`session/direct.rs` says what each allows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectStanding {
    /// Not a member, and nothing against them here.
    Outside,
    Member,
    Banned,
    /// Asked to join; not let in yet.
    Pending,
    Muted,
    OnProbation,
}

impl RoomState {
    /// Where `user` stands in this room at `now`.
    pub fn direct_standing(&self, user: &UserId, now: Millis) -> DirectStanding {
        if self.rows.bans.get(user).is_some_and(|b| b.holds(now)) {
            return DirectStanding::Banned;
        }
        if !self.members.contains_key(user) {
            if self.rows.requests.contains_key(user) {
                return DirectStanding::Pending;
            }
            return DirectStanding::Outside;
        }
        if self.rows.mutes.get(user).is_some_and(|m| m.holds(now)) {
            return DirectStanding::Muted;
        }
        if self.on_probation(user, now) {
            return DirectStanding::OnProbation;
        }
        DirectStanding::Member
    }

    /// One of a direct conversation's members, who left it, starting it
    /// again: back in as a member. Anyone else never gets in.
    pub fn decide_return_to_direct(&self, user: &UserId) -> Result<Option<Draft>, Refusal> {
        if self.record.visibility != Visibility::Direct || !self.record.direct.contains(user) {
            return Err(Refusal::DirectOnly);
        }
        if self.members.contains_key(user) {
            return Ok(None);
        }
        Ok(Some(self.admission(user)))
    }

    /// `user` joining as a member, if the order finds a place and the rules
    /// unchanged since this copy decided (`Requires::Admit`).
    fn admission(&self, user: &UserId) -> Draft {
        let event = Event::MemberJoined(MemberJoinedEvent {
            room: self.record.room.clone(),
            seq: Seq::ZERO,
            ts: Millis(0),
            from: user.clone(),
            role: Role::Member,
            approved_by: None,
            invite: None,
            lockdown: None,
        });
        let requires = Requires::Admit(user.clone());
        self.draft(event, requires)
    }

    /// A join: nothing to order for a member; a first join for anyone else the
    /// room admits. A join with `since` resumes a membership, so it needs one.
    pub fn decide_join(&self, user: &UserId, since: Option<Position>, now: Millis) -> Result<Option<Draft>, Refusal> {
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
                return Ok(Some(self.draft(event, Requires::Member(user.clone()))));
            }
            return Ok(None);
        }
        if let Some(ban) = self.rows.bans.get(user).filter(|b| b.holds(now)) {
            return Err(Refusal::Banned(Term::of(ban.until, now)));
        }
        if since.is_some() {
            return Err(Refusal::NoLongerMember);
        }
        match self.record.visibility {
            Visibility::Open => {}
            Visibility::Approval => {
                let vetting = match (self.rows.requests.get(user), self.rows.denied.get(user)) {
                    (Some(_), _) => Vetting::Waiting,
                    (None, Some(denial)) => Vetting::Denied { by: denial.by.clone(), reason: denial.reason.clone() },
                    (None, None) => Vetting::NotAsked,
                };
                return Err(Refusal::ApprovalRequired(vetting));
            }
            Visibility::InviteOnly => return Err(Refusal::InviteRequired),
            Visibility::Direct => return Err(Refusal::DirectOnly),
        }
        self.check_doors(now)?;
        // The cap is left to the order (`Requires::Admit`): this copy of the room
        // may not have applied a leave ordered elsewhere (another node) yet, and
        // must not refuse a place the room has.
        let mut draft = self.admission(user);
        if let Event::MemberJoined(joined) = &mut draft.event {
            joined.lockdown = self.raid(now);
        }
        Ok(Some(draft))
    }

    pub fn decide_leave(&self, user: &UserId) -> Result<Draft, Refusal> {
        self.require_member(user)?;
        // A direct conversation's starter is a member like the others.
        if self.record.owner == *user && self.record.visibility != Visibility::Direct {
            return Err(Refusal::OwnerCannotLeave { owner: user.clone() });
        }
        let event = Event::MemberLeft(MemberLeftEvent {
            room: self.record.room.clone(),
            seq: Seq::ZERO,
            ts: Millis(0),
            from: user.clone(),
            user: user.clone(),
            reason: LeftReason::Left,
        });
        Ok(self.draft(event, Requires::Member(user.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(names: &[&str]) -> Vec<UserId> {
        names.iter().map(|n| UserId::new(*n).unwrap()).collect()
    }

    #[test]
    fn the_same_members_make_the_same_conversation_in_any_order() {
        let room = direct_room(&users(&["bo", "ada"]));
        assert_eq!(room, direct_room(&users(&["ada", "bo", "ada"])));
        assert_ne!(room, direct_room(&users(&["ada", "bo", "cy"])));
        // Fixed for good: a conversation's name is stored, so the hash may never change.
        assert_eq!(room.as_str(), "dm-9ea2d714f5d004145c7f");
    }

    #[test]
    fn only_its_members_come_back_to_a_conversation() {
        let (ada, bo, cy) = (UserId::new("ada").unwrap(), UserId::new("bo").unwrap(), UserId::new("cy").unwrap());
        let (record, first) = decide_start_direct(&ada, std::slice::from_ref(&bo), Epoch(1), Millis(5));
        let mut state = RoomState::genesis(record);
        let mut event = first.event;
        event.stamp(Seq(1), Millis(5));
        state.apply(&event).unwrap();
        assert_eq!(state.decide_return_to_direct(&bo).unwrap(), None, "already in");
        assert_eq!(state.decide_return_to_direct(&cy).unwrap_err(), Refusal::DirectOnly);
        assert_eq!(state.decide_join(&cy, None, Millis(6)).unwrap_err(), Refusal::DirectOnly);
        let leave = state.decide_leave(&ada).expect("the starter may leave");
        let mut left = leave.event;
        left.stamp(Seq(2), Millis(6));
        state.apply(&left).unwrap();
        assert!(state.decide_return_to_direct(&ada).unwrap().is_some(), "back in");
    }
}
