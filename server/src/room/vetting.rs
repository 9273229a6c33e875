//! Who comes in: a join request and its decision, invite codes, and a join
//! with one. Pure, like the rest of `room`.

use hearth_protocol::event::{JoinRequestEvent, MemberJoinedEvent};
use hearth_protocol::ops::{DecideJoin, JoinRequestInfo, ModAction, Visibility};
use hearth_protocol::{Event, Millis, Note, Role, Seq, ShortText, UserId};

use super::permissions::{Action, least_role};
use super::rows::invite_id;
use super::{Draft, Refusal, Requires, RoomState, Term};

/// Most pending join requests a room takes; most live invites it keeps.
pub const MAX_REQUESTS: usize = 200;
pub const MAX_INVITES: usize = 100;
/// Longest an invite may live, and how long one lives by default.
pub const MAX_INVITE_SECS: u32 = 90 * 24 * 3600;
pub const DEFAULT_INVITE_SECS: u32 = 7 * 24 * 3600;

impl RoomState {
    /// Asks to join an approval room, with a note (the answer to the room's
    /// entry question). Asking again replaces the note.
    pub fn decide_request_join(&self, user: &UserId, note: Note, now: Millis) -> Result<Draft, Refusal> {
        if self.members.contains_key(user) {
            return Err(Refusal::AlreadyMember);
        }
        if let Some(ban) = self.rows.bans.get(user).filter(|b| b.holds(now)) {
            return Err(Refusal::Banned(Term::of(ban.until, now)));
        }
        match self.record.visibility {
            Visibility::Approval => {}
            Visibility::Open => return Err(Refusal::RoomIsOpen),
            Visibility::InviteOnly => return Err(Refusal::InviteRequired),
            Visibility::Direct => return Err(Refusal::DirectOnly),
        }
        self.check_doors(now)?;
        let event = Event::JoinRequest(JoinRequestEvent {
            room: self.room().clone(),
            seq: Seq::ZERO,
            ts: Millis(0),
            from: user.clone(),
            note,
            lockdown: self.raid(now),
        });
        let requires = Requires::Request { user: user.clone(), max: MAX_REQUESTS };
        Ok(self.draft(event, requires))
    }

    /// Approves or denies a pending request.
    pub fn decide_on_request(&self, actor: &UserId, args: DecideJoin, now: Millis) -> Result<Draft, Refusal> {
        self.require(actor, Action::Welcome, now)?;
        if !self.rows.requests.contains_key(&args.user) {
            return Err(Refusal::NoRequest { user: Some(args.user) });
        }
        if args.approve {
            let event = Event::MemberJoined(MemberJoinedEvent {
                room: self.room().clone(),
                seq: Seq::ZERO,
                ts: Millis(0),
                from: args.user.clone(),
                role: Role::Member,
                approved_by: Some(actor.clone()),
                invite: None,
                lockdown: None,
            });
            return Ok(self.draft(event, Requires::Approve { actor: actor.clone(), user: args.user }));
        }
        let event = self.moderation(actor, ModAction::Reject, &args.user, None, args.reason);
        Ok(self.draft(event, Requires::Decide { actor: actor.clone(), user: args.user }))
    }

    /// An invite, by the id of a code the caller made: good for `ttl_secs`
    /// (a week by default) and `max_uses` joins (any number by default).
    pub fn decide_create_invite(
        &self,
        actor: &UserId,
        id: String,
        ttl_secs: Option<u32>,
        max_uses: Option<u32>,
        now: Millis,
    ) -> Result<Draft, Refusal> {
        self.require(actor, Action::Welcome, now)?;
        let ttl = ttl_secs.unwrap_or(DEFAULT_INVITE_SECS);
        if ttl == 0 || ttl > MAX_INVITE_SECS {
            return Err(Refusal::OutOfRange { field: "ttl_secs", least: 1, most: u64::from(MAX_INVITE_SECS) });
        }
        if max_uses == Some(0) {
            return Err(Refusal::OutOfRange { field: "max_uses", least: 1, most: u64::MAX });
        }
        if self.rows.invites.values().filter(|i| i.valid(now)).count() >= MAX_INVITES {
            return Err(Refusal::InvitesFull { max: MAX_INVITES });
        }
        let Event::Moderation(mut event) = self.moderation(
            actor,
            ModAction::CreateInvite,
            actor,
            Some(Millis(now.0 + u64::from(ttl) * 1000)),
            ShortText::default(),
        ) else {
            unreachable!("moderation makes moderation events")
        };
        event.user = None;
        event.invite = Some(id);
        event.max_uses = max_uses;
        Ok(self.draft(Event::Moderation(event), Requires::RoleAtLeast(actor.clone(), least_role(Action::Welcome))))
    }

    /// Revokes an invite (by its code or its id): moderators, or whoever made it.
    pub fn decide_revoke_invite(&self, actor: &UserId, code_or_id: &str, now: Millis) -> Result<Draft, Refusal> {
        let id =
            if self.rows.invites.contains_key(code_or_id) { code_or_id.to_string() } else { invite_id(code_or_id) };
        let Some(invite) = self.rows.invites.get(&id) else {
            return Err(Refusal::NoSuchInvite);
        };
        let action = if invite.by == *actor { Action::Welcome } else { Action::Moderate };
        let least = least_role(action);
        self.require_role(actor, least, action, now)?;
        let Event::Moderation(mut event) =
            self.moderation(actor, ModAction::RevokeInvite, actor, None, ShortText::default())
        else {
            unreachable!("moderation makes moderation events")
        };
        event.user = None;
        event.invite = Some(id);
        Ok(self.draft(Event::Moderation(event), Requires::RoleAtLeast(actor.clone(), least)))
    }

    /// A join with an invite code: skips the queue, and any gate.
    pub fn decide_join_invited(&self, user: &UserId, code: &str, now: Millis) -> Result<Option<Draft>, Refusal> {
        if self.members.contains_key(user) {
            return Ok(None);
        }
        if let Some(ban) = self.rows.bans.get(user).filter(|b| b.holds(now)) {
            return Err(Refusal::Banned(Term::of(ban.until, now)));
        }
        let id = invite_id(code);
        if !self.rows.invites.get(&id).is_some_and(|i| i.valid(now)) {
            return Err(Refusal::InvalidInvite);
        }
        self.check_doors(now)?;
        let event = Event::MemberJoined(MemberJoinedEvent {
            room: self.room().clone(),
            seq: Seq::ZERO,
            ts: Millis(0),
            from: user.clone(),
            role: Role::Member,
            approved_by: None,
            invite: Some(id.clone()),
            lockdown: self.raid(now),
        });
        let requires = Requires::AdmitInvite { user: user.clone(), invite: id };
        Ok(Some(self.draft(event, requires)))
    }

    /// The pending requests, oldest first.
    pub fn join_requests(&self, actor: &UserId, now: Millis) -> Result<Vec<JoinRequestInfo>, Refusal> {
        self.require(actor, Action::Welcome, now)?;
        let mut list: Vec<JoinRequestInfo> = self
            .rows
            .requests
            .iter()
            .map(|(user, r)| JoinRequestInfo { user: user.clone(), note: r.note.clone(), at: r.at })
            .collect();
        list.sort_by_key(|r| r.at);
        Ok(list)
    }
}
