//! Being in a room: making one, joining (and arriving after an approval),
//! leaving. Pure, like the rest of `room`.

use hearth_protocol::event::{ArrivedEvent, LeftReason, MemberJoinedEvent, MemberLeftEvent};
use hearth_protocol::ops::{CreateRoom, Visibility};
use hearth_protocol::{Epoch, Event, Millis, Position, Role, Seq, UserId, limits};

use super::community::cap_out_of_range;
use super::{Draft, Refusal, Requires, RoomRecord, RoomState, Term, Vetting};

/// A new room: its record and its first event, the owner joining.
pub fn decide_create(
    owner: &UserId,
    args: CreateRoom,
    epoch: Epoch,
    now: Millis,
) -> Result<(RoomRecord, Draft), Refusal> {
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
    });
    Ok((record, Draft { event, requires: Requires::Nothing, cmid: None }))
}

impl RoomState {
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
                return Ok(Some(Draft { event, requires: Requires::Member(user.clone()), cmid: None }));
            }
            return Ok(None);
        }
        let room = &self.record.room;
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

    pub fn decide_leave(&self, user: &UserId) -> Result<Draft, Refusal> {
        self.require_member(user)?;
        if self.record.owner == *user {
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
        Ok(Draft { event, requires: Requires::Member(user.clone()), cmid: None })
    }
}
