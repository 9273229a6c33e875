//! The community tools' decisions: roles, room settings, and moderation
//! (kick, ban, mute, slow mode). Like the rest of `room`, pure: the state,
//! the request and the time in; one drafted event or a typed error out.

use hearth_protocol::event::{ModerationEvent, RoleEvent, RoomUpdatedEvent};
use hearth_protocol::ops::{ModAction, RoomSettings, SetRole, Visibility};
use hearth_protocol::{Event, Millis, Role, RoomId, Seq, ShortText, UserId, limits};

use super::permissions::{Action, least_role};
use super::{Draft, Refusal, Requires, RoomState};

/// Longest a mute or a timed ban may be given for, and a role for a time.
pub const MAX_SANCTION_SECS: u32 = 365 * 24 * 3600;
/// Longest slow mode between one member's messages.
pub const MAX_SLOW_MODE_SECS: u32 = 3600;
/// Longest probation a room may set.
pub const MAX_PROBATION_SECS: u32 = 90 * 24 * 3600;
/// Most posts a room may keep a newcomer on probation for.
pub const MAX_PROBATION_POSTS: u32 = 1000;

impl RoomState {
    pub(super) fn room(&self) -> &RoomId {
        &self.record.room
    }

    /// `actor` may do `action` (returns its role at `now`).
    pub fn require(&self, actor: &UserId, action: Action, now: Millis) -> Result<Role, Refusal> {
        self.require_role(actor, least_role(action), action, now)
    }

    /// `actor` may do `action` to `target`: it also holds a role above theirs.
    pub(super) fn require_over(
        &self,
        actor: &UserId,
        action: Action,
        target: &UserId,
        now: Millis,
    ) -> Result<Role, Refusal> {
        let held = self.require(actor, action, now)?;
        if actor == target {
            return Err(Refusal::NotOnYourself);
        }
        if let Some(theirs) = self.role_of(target, now)
            && theirs >= held
        {
            return Err(Refusal::Outranked { held, target: theirs });
        }
        if *target == self.record.owner {
            return Err(Refusal::OwnerIsUntouchable { owner: target.clone() });
        }
        Ok(held)
    }

    pub(super) fn moderation(
        &self,
        actor: &UserId,
        action: ModAction,
        user: &UserId,
        until: Option<Millis>,
        reason: ShortText,
    ) -> Event {
        Event::Moderation(ModerationEvent {
            room: self.room().clone(),
            seq: Seq::ZERO,
            ts: Millis(0),
            from: actor.clone(),
            action,
            user: Some(user.clone()),
            until,
            reason,
            invite: None,
            max_uses: None,
            held: None,
            message: None,
            outcome: None,
            reports: Vec::new(),
            escalation: None,
            warnings: Vec::new(),
            audience: None,
        })
    }

    pub fn decide_set_role(&self, actor: &UserId, args: SetRole, now: Millis) -> Result<Draft, Refusal> {
        let held = self.require_over(actor, Action::AssignRoles, &args.user, now)?;
        if !self.members.contains_key(&args.user) {
            return Err(Refusal::NoSuchMember { user: args.user });
        }
        match args.role {
            Role::Owner => {
                return Err(Refusal::OneOwner);
            }
            Role::Moderator if held < least_role(Action::AppointModerators) => {
                let least = least_role(Action::AppointModerators);
                return Err(Refusal::Forbidden { least, held, action: Some(Action::AppointModerators) });
            }
            _ => {}
        }
        if let Some(end) = args.expires_at {
            let longest = Millis(now.0 + u64::from(MAX_SANCTION_SECS) * 1000);
            if end <= now || end > longest {
                return Err(Refusal::NotAhead { field: "expires_at" });
            }
        }
        let event = Event::Role(RoleEvent {
            room: self.room().clone(),
            seq: Seq::ZERO,
            ts: Millis(0),
            from: actor.clone(),
            user: args.user.clone(),
            role: args.role,
            expires_at: args.expires_at.filter(|_| args.role != Role::Member),
            title: args.title,
        });
        let least = if args.role == Role::Moderator { Role::Owner } else { least_role(Action::AssignRoles) };
        let requires = Requires::Over { user: actor.clone(), least, target: args.user };
        Ok(self.draft(event, requires))
    }

    pub fn decide_set_room(&self, actor: &UserId, settings: RoomSettings, now: Millis) -> Result<Draft, Refusal> {
        let only_welcome = RoomSettings { welcome: settings.welcome.clone(), ..RoomSettings::default() } == settings;
        if settings == RoomSettings::default() {
            return Err(Refusal::NothingToChange);
        }
        let action = if only_welcome { Action::Welcome } else { Action::Configure };
        self.require(actor, action, now)?;
        // What becomes of members' words when they leave for good is the
        // owner's to say.
        let least = if settings.erased_as_former_member.is_some() { Role::Owner } else { least_role(action) };
        let held = self.role_of(actor, now).unwrap_or(Role::Member);
        if held < least {
            return Err(Refusal::Forbidden { least, held, action: None });
        }
        if settings.cap.is_some_and(|cap| !(1..=limits::MAX_ROOM_CAP).contains(&cap)) {
            return Err(cap_out_of_range());
        }
        let at_most = |field, most: u32| Refusal::OutOfRange { field, least: 0, most: u64::from(most) };
        if settings.slow_mode_secs.is_some_and(|s| s > MAX_SLOW_MODE_SECS) {
            return Err(at_most("slow_mode_secs", MAX_SLOW_MODE_SECS));
        }
        if settings.probation_secs.is_some_and(|s| s > MAX_PROBATION_SECS) {
            return Err(at_most("probation_secs", MAX_PROBATION_SECS));
        }
        if settings.probation_posts.is_some_and(|p| p > MAX_PROBATION_POSTS) {
            return Err(at_most("probation_posts", MAX_PROBATION_POSTS));
        }
        if settings.warn_expiry_days.is_some_and(|d| d > limits::MAX_WARN_EXPIRY_DAYS) {
            return Err(at_most("warn_expiry_days", limits::MAX_WARN_EXPIRY_DAYS));
        }
        if settings.warn_limit.is_some_and(|n| n as usize > limits::MAX_LIVE_WARNINGS) {
            return Err(at_most("warn_limit", limits::MAX_LIVE_WARNINGS as u32));
        }
        if settings.warn_action_secs.is_some_and(|s| s > MAX_SANCTION_SECS) {
            return Err(at_most("warn_action_secs", MAX_SANCTION_SECS));
        }
        if settings.warn_action.is_some_and(|a| !matches!(a, ModAction::Mute | ModAction::Kick | ModAction::Ban)) {
            return Err(Refusal::NotAnEscalation);
        }
        super::lockdown::check_raid_settings(&settings)?;
        if let Some(filters) = &settings.filters {
            super::filter::check(filters)?;
        }
        if settings.parent.as_ref().is_some_and(|p| p.as_str() == self.room().as_str()) {
            return Err(Refusal::OwnLobby);
        }
        if let Some(visibility) = settings.visibility
            && (visibility == Visibility::Direct || self.record.visibility == Visibility::Direct)
        {
            return Err(Refusal::DirectOnly);
        }
        let event = Event::RoomUpdated(RoomUpdatedEvent {
            room: self.room().clone(),
            seq: Seq::ZERO,
            ts: Millis(0),
            from: actor.clone(),
            settings,
        });
        Ok(self.draft(event, Requires::RoleAtLeast(actor.clone(), least)))
    }

    pub fn decide_kick(&self, actor: &UserId, user: &UserId, reason: ShortText, now: Millis) -> Result<Draft, Refusal> {
        self.require_over(actor, Action::Moderate, user, now)?;
        if !self.members.contains_key(user) {
            return Err(Refusal::NoSuchMember { user: user.clone() });
        }
        let event = self.moderation(actor, ModAction::Kick, user, None, reason);
        Ok(self.over(actor, user, event))
    }

    pub fn decide_ban(
        &self,
        actor: &UserId,
        user: &UserId,
        reason: ShortText,
        duration_secs: Option<u32>,
        now: Millis,
    ) -> Result<Draft, Refusal> {
        self.require_over(actor, Action::Moderate, user, now)?;
        let until = self.until(now, duration_secs)?;
        let event = self.moderation(actor, ModAction::Ban, user, until, reason);
        Ok(self.over(actor, user, event))
    }

    pub fn decide_unban(&self, actor: &UserId, user: &UserId, now: Millis) -> Result<Draft, Refusal> {
        let banned = self.rows.bans.get(user).is_some_and(|b| b.holds(now));
        self.lift(actor, user, ModAction::Unban, banned, Refusal::NotBanned { user: user.clone() }, now)
    }

    /// Lifts a ban or a mute `user` is under (`under`).
    pub(super) fn lift(
        &self,
        actor: &UserId,
        user: &UserId,
        action: ModAction,
        under: bool,
        not_under: Refusal,
        now: Millis,
    ) -> Result<Draft, Refusal> {
        self.require(actor, Action::Moderate, now)?;
        if !under {
            return Err(not_under);
        }
        let event = self.moderation(actor, action, user, None, ShortText::default());
        Ok(self.draft(event, Requires::RoleAtLeast(actor.clone(), least_role(Action::Moderate))))
    }

    pub fn decide_mute(
        &self,
        actor: &UserId,
        user: &UserId,
        duration_secs: u32,
        reason: ShortText,
        now: Millis,
    ) -> Result<Draft, Refusal> {
        self.require_over(actor, Action::Moderate, user, now)?;
        if !self.members.contains_key(user) {
            return Err(Refusal::NoSuchMember { user: user.clone() });
        }
        if duration_secs == 0 {
            return Err(Refusal::OutOfRange { field: "duration_secs", least: 1, most: u64::from(MAX_SANCTION_SECS) });
        }
        let until = self.until(now, Some(duration_secs))?;
        let event = self.moderation(actor, ModAction::Mute, user, until, reason);
        Ok(self.over(actor, user, event))
    }

    pub fn decide_unmute(&self, actor: &UserId, user: &UserId, now: Millis) -> Result<Draft, Refusal> {
        let muted = self.rows.mutes.get(user).is_some_and(|m| m.holds(now));
        self.lift(actor, user, ModAction::Unmute, muted, Refusal::NotMuted { user: user.clone() }, now)
    }

    pub(super) fn until(&self, now: Millis, duration_secs: Option<u32>) -> Result<Option<Millis>, Refusal> {
        match duration_secs {
            None => Ok(None),
            Some(secs) if secs > MAX_SANCTION_SECS => {
                Err(Refusal::OutOfRange { field: "duration_secs", least: 1, most: u64::from(MAX_SANCTION_SECS) })
            }
            Some(secs) => Ok(Some(Millis(now.0 + u64::from(secs) * 1000))),
        }
    }

    /// A moderator's action on `target`.
    pub(super) fn over(&self, actor: &UserId, target: &UserId, event: Event) -> Draft {
        let requires =
            Requires::Over { user: actor.clone(), least: least_role(Action::Moderate), target: target.clone() };
        self.draft(event, requires)
    }
}

/// A room's cap outside what a room may have.
pub(super) fn cap_out_of_range() -> Refusal {
    Refusal::OutOfRange { field: "cap", least: 1, most: u64::from(limits::MAX_ROOM_CAP) }
}
