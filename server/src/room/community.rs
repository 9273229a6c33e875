//! The community tools' decisions: roles, room settings, and moderation
//! (kick, ban, mute, slow mode). Like the rest of `room`, pure: the state,
//! the request and the time in; one drafted event or a typed error out.

use hearth_protocol::event::{
    AckEvent, HeldEvent, JoinRequestEvent, MemberJoinedEvent, MessageEvent, ModerationEvent, PromptEvent, PromptPosted,
    RoleEvent, RoomUpdatedEvent,
};
use hearth_protocol::ops::{
    DecideJoin, HeldPost, JoinRequestInfo, ModAction, Prompt, Release, RoomSettings, SetRole, Visibility,
};
use hearth_protocol::{ErrorBody, ErrorCode, Event, Millis, Note, PinId, Role, RoomId, Seq, ShortText, UserId, limits};

use super::permissions::{Action, least_role};
use super::rows::invite_id;
use super::{Draft, NEWCOMER_MS, Requires, RoomState, forbidden, outranked};

/// Longest a mute or a timed ban may be given for, and a role for a time.
pub const MAX_SANCTION_SECS: u32 = 365 * 24 * 3600;
/// Longest slow mode between one member's messages.
pub const MAX_SLOW_MODE_SECS: u32 = 3600;
/// Longest probation a room may set.
pub const MAX_PROBATION_SECS: u32 = 90 * 24 * 3600;
/// Most posts a room may keep a newcomer on probation for.
pub const MAX_PROBATION_POSTS: u32 = 1000;

fn bad(message: impl Into<String>) -> ErrorBody {
    ErrorBody::new(ErrorCode::BadRequest, message)
}

impl RoomState {
    fn room(&self) -> &RoomId {
        &self.record.room
    }

    /// `actor` may do `action` (returns its role at `now`).
    pub fn require(&self, actor: &UserId, action: Action, now: Millis) -> Result<Role, ErrorBody> {
        let what = match action {
            Action::Read => "read this room",
            Action::Post => "post",
            Action::Welcome => "welcome newcomers (join requests, invites, the welcome message)",
            Action::Moderate => "moderate",
            Action::AssignRoles => "give roles",
            Action::Configure => "change the room's settings",
            Action::AppointModerators => "appoint moderators",
            Action::Pin => "pin",
        };
        self.require_role(actor, least_role(action), what, now)
    }

    /// `actor` may do `action` to `target`: it also holds a role above theirs.
    fn require_over(&self, actor: &UserId, action: Action, target: &UserId, now: Millis) -> Result<Role, ErrorBody> {
        let held = self.require(actor, action, now)?;
        if actor == target {
            return Err(bad("you cannot do that to yourself"));
        }
        if let Some(theirs) = self.role_of(target, now) {
            if theirs >= held {
                return Err(outranked(self.room(), held, theirs));
            }
        }
        if *target == self.record.owner {
            return Err(ErrorBody::new(ErrorCode::Forbidden, format!("{target} owns room {}", self.room())));
        }
        Ok(held)
    }

    fn moderation(
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
        })
    }

    pub fn decide_set_role(&self, actor: &UserId, args: SetRole, now: Millis) -> Result<Draft, ErrorBody> {
        let held = self.require_over(actor, Action::AssignRoles, &args.user, now)?;
        if !self.members.contains_key(&args.user) {
            return Err(ErrorBody::new(
                ErrorCode::NoSuchTarget,
                format!("{} is not a member of room {}", args.user, self.room()),
            ));
        }
        match args.role {
            Role::Owner => {
                return Err(ErrorBody::new(ErrorCode::Forbidden, "a room has one owner; it cannot be given"));
            }
            Role::Moderator if held < least_role(Action::AppointModerators) => {
                return Err(forbidden(self.room(), Role::Owner, held, "appoint moderators"));
            }
            _ => {}
        }
        if let Some(end) = args.expires_at {
            let longest = Millis(now.0 + u64::from(MAX_SANCTION_SECS) * 1000);
            if end <= now || end > longest {
                return Err(bad("expires_at must be in the future, within a year"));
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
        Ok(Draft { event, requires: Requires::Over { user: actor.clone(), least, target: args.user }, cmid: None })
    }

    pub fn decide_set_room(&self, actor: &UserId, settings: RoomSettings, now: Millis) -> Result<Draft, ErrorBody> {
        let only_welcome = RoomSettings { welcome: settings.welcome.clone(), ..RoomSettings::default() } == settings;
        if settings == RoomSettings::default() {
            return Err(bad("set_room changes nothing: give at least one setting"));
        }
        let action = if only_welcome { Action::Welcome } else { Action::Configure };
        self.require(actor, action, now)?;
        if let Some(cap) = settings.cap {
            if !(1..=limits::MAX_ROOM_CAP).contains(&cap) {
                return Err(bad(format!("cap must be 1-{}, got {cap}", limits::MAX_ROOM_CAP)));
            }
        }
        if settings.slow_mode_secs.is_some_and(|s| s > MAX_SLOW_MODE_SECS) {
            return Err(bad(format!("slow_mode_secs is at most {MAX_SLOW_MODE_SECS}")));
        }
        if settings.probation_secs.is_some_and(|s| s > MAX_PROBATION_SECS) {
            return Err(bad(format!("probation_secs is at most {MAX_PROBATION_SECS} (90 days)")));
        }
        if settings.probation_posts.is_some_and(|p| p > MAX_PROBATION_POSTS) {
            return Err(bad(format!("probation_posts is at most {MAX_PROBATION_POSTS}")));
        }
        if settings.parent.as_ref().is_some_and(|p| p.as_str() == self.room().as_str()) {
            return Err(bad("a room cannot be its own lobby"));
        }
        let event = Event::RoomUpdated(RoomUpdatedEvent {
            room: self.room().clone(),
            seq: Seq::ZERO,
            ts: Millis(0),
            from: actor.clone(),
            settings,
        });
        Ok(Draft { event, requires: Requires::RoleAtLeast(actor.clone(), least_role(action)), cmid: None })
    }

    pub fn decide_kick(
        &self,
        actor: &UserId,
        user: &UserId,
        reason: ShortText,
        now: Millis,
    ) -> Result<Draft, ErrorBody> {
        self.require_over(actor, Action::Moderate, user, now)?;
        if !self.members.contains_key(user) {
            return Err(ErrorBody::new(
                ErrorCode::NoSuchTarget,
                format!("{user} is not a member of room {}", self.room()),
            ));
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
    ) -> Result<Draft, ErrorBody> {
        self.require_over(actor, Action::Moderate, user, now)?;
        let until = self.until(now, duration_secs)?;
        let event = self.moderation(actor, ModAction::Ban, user, until, reason);
        Ok(self.over(actor, user, event))
    }

    pub fn decide_unban(&self, actor: &UserId, user: &UserId, now: Millis) -> Result<Draft, ErrorBody> {
        let banned = self.rows.bans.get(user).is_some_and(|b| b.holds(now));
        self.lift(actor, user, ModAction::Unban, banned, "banned from", now)
    }

    /// Lifts a ban or a mute `user` is under (`under`).
    fn lift(
        &self,
        actor: &UserId,
        user: &UserId,
        action: ModAction,
        under: bool,
        what: &str,
        now: Millis,
    ) -> Result<Draft, ErrorBody> {
        self.require(actor, Action::Moderate, now)?;
        if !under {
            return Err(ErrorBody::new(ErrorCode::NoSuchTarget, format!("{user} is not {what} room {}", self.room())));
        }
        let event = self.moderation(actor, action, user, None, ShortText::default());
        Ok(Draft { event, requires: Requires::RoleAtLeast(actor.clone(), least_role(Action::Moderate)), cmid: None })
    }

    pub fn decide_mute(
        &self,
        actor: &UserId,
        user: &UserId,
        duration_secs: u32,
        reason: ShortText,
        now: Millis,
    ) -> Result<Draft, ErrorBody> {
        self.require_over(actor, Action::Moderate, user, now)?;
        if !self.members.contains_key(user) {
            return Err(ErrorBody::new(
                ErrorCode::NoSuchTarget,
                format!("{user} is not a member of room {}", self.room()),
            ));
        }
        if duration_secs == 0 {
            return Err(bad("duration_secs must be at least 1"));
        }
        let until = self.until(now, Some(duration_secs))?;
        let event = self.moderation(actor, ModAction::Mute, user, until, reason);
        Ok(self.over(actor, user, event))
    }

    pub fn decide_unmute(&self, actor: &UserId, user: &UserId, now: Millis) -> Result<Draft, ErrorBody> {
        let muted = self.rows.mutes.get(user).is_some_and(|m| m.holds(now));
        self.lift(actor, user, ModAction::Unmute, muted, "muted in", now)
    }

    /// Whether `user` may post at `now`: not muted, and past slow mode.
    /// Returns the slow mode the order must hold them to (ms; 0: none).
    pub fn check_post(&self, user: &UserId, now: Millis) -> Result<u64, ErrorBody> {
        let role = self.require(user, Action::Post, now)?;
        if let Some(mute) = self.rows.mutes.get(user).filter(|m| m.holds(now)) {
            let until = mute.until.map_or("until a moderator lifts it".to_string(), |t| format!("until {}", t.0));
            let mut error = ErrorBody::new(ErrorCode::Muted, format!("you are muted in room {} {until}", self.room()));
            if let Some(t) = mute.until {
                error = error.retry_after(t.0 - now.0);
            }
            return Err(error);
        }
        if let Some(rules) = self.rules().filter(|_| self.record.rules_ack && role < least_role(Action::Welcome)) {
            if self.rows.acks.get(user).is_none_or(|acked| *acked < rules.version) {
                return Err(ErrorBody::new(
                    ErrorCode::AckRequired,
                    format!(
                        "room {} asks you to read its rules (the pinned \"Rules\", version {}) and acknowledge them with ack_rules before posting",
                        self.room(),
                        rules.version
                    ),
                ));
            }
        }
        let mut slow = u64::from(self.record.slow_mode_secs) * 1000;
        let on_probation = self.on_probation(user, now);
        if on_probation {
            // Newcomers on probation wait longer between posts.
            slow = (slow * 2).max(u64::from(PROBATION_SLOW_SECS) * 1000);
        }
        if slow > 0 && role < least_role(Action::Moderate) {
            if let Some(last) = self.last_post.get(user) {
                let next = last.0 + slow;
                if next > now.0 {
                    return Err(ErrorBody::new(
                        ErrorCode::SlowMode,
                        format!(
                            "room {} is in slow mode{}: one message every {} s",
                            self.room(),
                            if on_probation { " (stricter while you are on probation)" } else { "" },
                            slow / 1000
                        ),
                    )
                    .retry_after(next - now.0));
                }
            }
            return Ok(slow);
        }
        Ok(0)
    }

    fn until(&self, now: Millis, duration_secs: Option<u32>) -> Result<Option<Millis>, ErrorBody> {
        match duration_secs {
            None => Ok(None),
            Some(secs) if secs > MAX_SANCTION_SECS => {
                Err(bad(format!("a duration is at most {MAX_SANCTION_SECS} s (a year)")))
            }
            Some(secs) => Ok(Some(Millis(now.0 + u64::from(secs) * 1000))),
        }
    }

    fn over(&self, actor: &UserId, target: &UserId, event: Event) -> Draft {
        Draft {
            event,
            requires: Requires::Over {
                user: actor.clone(),
                least: least_role(Action::Moderate),
                target: target.clone(),
            },
            cmid: None,
        }
    }
}

/// Most pending join requests a room takes; most live invites it keeps.
pub const MAX_REQUESTS: usize = 200;
pub const MAX_INVITES: usize = 100;
/// Longest an invite may live, and how long one lives by default.
pub const MAX_INVITE_SECS: u32 = 90 * 24 * 3600;
pub const DEFAULT_INVITE_SECS: u32 = 7 * 24 * 3600;

impl RoomState {
    /// Asks to join an approval room, with a note (the answer to the room's
    /// entry question). Asking again replaces the note.
    pub fn decide_request_join(&self, user: &UserId, note: Note, now: Millis) -> Result<Draft, ErrorBody> {
        let room = self.room();
        if self.members.contains_key(user) {
            return Err(ErrorBody::new(ErrorCode::AlreadyExists, format!("you are already a member of room {room}")));
        }
        if self.rows.bans.get(user).is_some_and(|b| b.holds(now)) {
            return Err(ErrorBody::new(ErrorCode::Banned, format!("you are banned from room {room}")));
        }
        match self.record.visibility {
            Visibility::Approval => {}
            Visibility::Open => return Err(bad(format!("room {room} is open: join it"))),
            Visibility::InviteOnly => {
                return Err(ErrorBody::new(
                    ErrorCode::InviteRequired,
                    format!("room {room} is invite-only: join with an invite code from a member"),
                ));
            }
        }
        let event = Event::JoinRequest(JoinRequestEvent {
            room: room.clone(),
            seq: Seq::ZERO,
            ts: Millis(0),
            from: user.clone(),
            note,
        });
        Ok(Draft { event, requires: Requires::Request { user: user.clone(), max: MAX_REQUESTS }, cmid: None })
    }

    /// Approves or denies a pending request.
    pub fn decide_on_request(&self, actor: &UserId, args: DecideJoin, now: Millis) -> Result<Draft, ErrorBody> {
        self.require(actor, Action::Welcome, now)?;
        if !self.rows.requests.contains_key(&args.user) {
            return Err(ErrorBody::new(
                ErrorCode::NoSuchTarget,
                format!("{} has no pending request to join room {}", args.user, self.room()),
            ));
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
            });
            return Ok(Draft {
                event,
                requires: Requires::Approve { actor: actor.clone(), user: args.user },
                cmid: None,
            });
        }
        let event = self.moderation(actor, ModAction::Reject, &args.user, None, args.reason);
        Ok(Draft { event, requires: Requires::Decide { actor: actor.clone(), user: args.user }, cmid: None })
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
    ) -> Result<Draft, ErrorBody> {
        self.require(actor, Action::Welcome, now)?;
        let ttl = ttl_secs.unwrap_or(DEFAULT_INVITE_SECS);
        if ttl == 0 || ttl > MAX_INVITE_SECS {
            return Err(bad(format!("ttl_secs must be 1 to {MAX_INVITE_SECS} (90 days)")));
        }
        if max_uses == Some(0) {
            return Err(bad("max_uses must be at least 1"));
        }
        if self.rows.invites.values().filter(|i| i.valid(now)).count() >= MAX_INVITES {
            return Err(ErrorBody::new(
                ErrorCode::LimitReached,
                format!("room {} has {MAX_INVITES} live invites, the most it keeps; revoke one", self.room()),
            ));
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
        Ok(Draft {
            event: Event::Moderation(event),
            requires: Requires::RoleAtLeast(actor.clone(), least_role(Action::Welcome)),
            cmid: None,
        })
    }

    /// Revokes an invite (by its code or its id): moderators, or whoever made it.
    pub fn decide_revoke_invite(&self, actor: &UserId, code_or_id: &str, now: Millis) -> Result<Draft, ErrorBody> {
        let id =
            if self.rows.invites.contains_key(code_or_id) { code_or_id.to_string() } else { invite_id(code_or_id) };
        let Some(invite) = self.rows.invites.get(&id) else {
            return Err(ErrorBody::new(ErrorCode::NoSuchTarget, format!("room {} has no such invite", self.room())));
        };
        let least = if invite.by == *actor { least_role(Action::Welcome) } else { least_role(Action::Moderate) };
        self.require_role(actor, least, "revoke that invite", now)?;
        let Event::Moderation(mut event) =
            self.moderation(actor, ModAction::RevokeInvite, actor, None, ShortText::default())
        else {
            unreachable!("moderation makes moderation events")
        };
        event.user = None;
        event.invite = Some(id);
        Ok(Draft { event: Event::Moderation(event), requires: Requires::RoleAtLeast(actor.clone(), least), cmid: None })
    }

    /// A join with an invite code: skips the queue, and any gate.
    pub fn decide_join_invited(&self, user: &UserId, code: &str, now: Millis) -> Result<Option<Draft>, ErrorBody> {
        if self.members.contains_key(user) {
            return Ok(None);
        }
        if self.rows.bans.get(user).is_some_and(|b| b.holds(now)) {
            return Err(ErrorBody::new(ErrorCode::Banned, format!("you are banned from room {}", self.room())));
        }
        let id = invite_id(code);
        if !self.rows.invites.get(&id).is_some_and(|i| i.valid(now)) {
            return Err(super::Rejection::InvalidInvite.to_error(self.room()));
        }
        let event = Event::MemberJoined(MemberJoinedEvent {
            room: self.room().clone(),
            seq: Seq::ZERO,
            ts: Millis(0),
            from: user.clone(),
            role: Role::Member,
            approved_by: None,
            invite: Some(id.clone()),
        });
        Ok(Some(Draft { event, requires: Requires::AdmitInvite { user: user.clone(), invite: id }, cmid: None }))
    }

    /// The pending requests, oldest first.
    pub fn join_requests(&self, actor: &UserId, now: Millis) -> Result<Vec<JoinRequestInfo>, ErrorBody> {
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

impl RoomState {
    /// Sets the order of the room's pinned notes (by note id).
    pub fn decide_order_pins(&self, actor: &UserId, notes: Vec<PinId>, now: Millis) -> Result<Draft, ErrorBody> {
        self.require(actor, Action::Pin, now)?;
        if let Some(unknown) = notes.iter().find(|n| !self.pins.iter().any(|p| p.note_id() == **n)) {
            return Err(ErrorBody::new(
                ErrorCode::NoSuchTarget,
                format!("room {} has no pinned note {}", self.room(), unknown.0),
            ));
        }
        let settings = RoomSettings { pin_order: Some(notes), ..RoomSettings::default() };
        let event = Event::RoomUpdated(RoomUpdatedEvent {
            room: self.room().clone(),
            seq: Seq::ZERO,
            ts: Millis(0),
            from: actor.clone(),
            settings,
        });
        Ok(Draft { event, requires: Requires::RoleAtLeast(actor.clone(), least_role(Action::Pin)), cmid: None })
    }

    /// Acknowledges the rules at `version`, which must be the current one.
    pub fn decide_ack_rules(&self, actor: &UserId, version: u32, now: Millis) -> Result<Draft, ErrorBody> {
        self.require(actor, Action::Read, now)?;
        let Some(rules) = self.rules() else {
            return Err(ErrorBody::new(ErrorCode::NoSuchTarget, format!("room {} has no pinned rules", self.room())));
        };
        if rules.version != version {
            return Err(bad(format!("the rules are at version {}; read them and acknowledge that one", rules.version)));
        }
        let event = Event::Ack(AckEvent {
            room: self.room().clone(),
            seq: Seq::ZERO,
            ts: Millis(0),
            from: actor.clone(),
            version,
        });
        Ok(Draft { event, requires: Requires::Member(actor.clone()), cmid: None })
    }
}

/// Most prompts a room may have scheduled at once.
pub const MAX_PROMPTS: usize = 20;
const WEEK_MS: u64 = 7 * 24 * 3600 * 1000;

impl RoomState {
    /// Schedules a prompt (by the id the caller chose) for `at`, once or weekly.
    pub fn decide_schedule_prompt(
        &self,
        actor: &UserId,
        id: u64,
        text: hearth_protocol::Text,
        at: Millis,
        weekly: bool,
        now: Millis,
    ) -> Result<Draft, ErrorBody> {
        self.require(actor, Action::Moderate, now)?;
        if at < now || at.0 > now.0 + u64::from(MAX_SANCTION_SECS) * 1000 {
            return Err(bad("at must be from now to a year ahead"));
        }
        if self.rows.prompts.len() >= MAX_PROMPTS {
            return Err(ErrorBody::new(
                ErrorCode::LimitReached,
                format!("room {} has {MAX_PROMPTS} scheduled prompts, the most it keeps", self.room()),
            ));
        }
        let event = Event::Prompt(PromptEvent {
            room: self.room().clone(),
            seq: Seq::ZERO,
            ts: Millis(0),
            from: actor.clone(),
            prompt: id,
            text: Some(text),
            next_at: Some(at),
            weekly,
        });
        Ok(Draft { event, requires: Requires::RoleAtLeast(actor.clone(), least_role(Action::Moderate)), cmid: None })
    }

    pub fn decide_cancel_prompt(&self, actor: &UserId, id: u64, now: Millis) -> Result<Draft, ErrorBody> {
        self.require(actor, Action::Moderate, now)?;
        if !self.rows.prompts.contains_key(&id) {
            return Err(ErrorBody::new(ErrorCode::NoSuchTarget, format!("room {} has no prompt {id}", self.room())));
        }
        let event = Event::Prompt(PromptEvent {
            room: self.room().clone(),
            seq: Seq::ZERO,
            ts: Millis(0),
            from: actor.clone(),
            prompt: id,
            text: None,
            next_at: None,
            weekly: false,
        });
        Ok(Draft { event, requires: Requires::RoleAtLeast(actor.clone(), least_role(Action::Moderate)), cmid: None })
    }

    /// The scheduled prompts, soonest first.
    pub fn prompts(&self, actor: &UserId, now: Millis) -> Result<Vec<Prompt>, ErrorBody> {
        self.require(actor, Action::Moderate, now)?;
        let mut list: Vec<Prompt> = self
            .rows
            .prompts
            .iter()
            .map(|(id, p)| Prompt {
                prompt: *id,
                text: p.text.clone(),
                next_at: p.next_at,
                weekly: p.weekly,
                by: Some(p.by.clone()),
            })
            .collect();
        list.sort_by_key(|p| p.next_at);
        Ok(list)
    }

    /// The posts of the prompts due at `now`, in their schedulers' names. A
    /// weekly one comes next on the first of its weeks after `now` (weeks
    /// missed while no server ran are skipped, not posted in a burst). The
    /// client message id names the occurrence, so the nodes of a cluster
    /// posting at once post it once.
    pub fn due_prompts(&self, now: Millis) -> Vec<Draft> {
        self.rows
            .prompts
            .iter()
            .filter(|(_, p)| p.next_at <= now)
            .filter_map(|(id, p)| {
                let next_at = p.weekly.then(|| {
                    let missed = (now.0 - p.next_at.0) / WEEK_MS + 1;
                    Millis(p.next_at.0 + missed * WEEK_MS)
                });
                let cmid = hearth_protocol::ClientMsgId::new(format!("prompt-{id}-{}", p.next_at.0)).ok()?;
                let event = Event::Message(MessageEvent {
                    room: self.room().clone(),
                    seq: Seq::ZERO,
                    ts: Millis(0),
                    from: p.by.clone(),
                    text: p.text.clone(),
                    cmid: cmid.clone(),
                    thread: None,
                    state: None,
                    prompt: Some(PromptPosted { prompt: *id, next_at }),
                    released_by: None,
                    probation_post: None,
                });
                Some(Draft { event, requires: Requires::Nothing, cmid: Some(cmid) })
            })
            .collect()
    }
}

/// During probation, at least this long between a newcomer's posts.
pub const PROBATION_SLOW_SECS: u32 = 30;

/// Whether `text` carries a link (held during probation).
pub fn has_link(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    ["http://", "https://", "www."].iter().any(|l| lower.contains(l))
}

impl RoomState {
    /// Whether `user` is on probation at `now`: a member (not a welcomer or
    /// above) who joined less than the room's `probation_secs` ago, or who
    /// has made fewer than its `probation_posts` posts — counted within their
    /// first week (or `probation_secs`, if longer), so turning it on never
    /// puts long-standing members on probation.
    pub fn on_probation(&self, user: &UserId, now: Millis) -> bool {
        let by_time = u64::from(self.record.probation_secs) * 1000;
        if by_time == 0 && self.record.probation_posts == 0 {
            return false;
        }
        let Some(member) = self.members.get(user) else { return false };
        if member.role_at(now) != Role::Member {
            return false;
        }
        let age = now.0.saturating_sub(member.joined_at.0);
        age < by_time || (self.probation_post(user).is_some() && age < by_time.max(NEWCOMER_MS))
    }

    /// In a room with `probation_posts`: which post of `user`'s the next one
    /// would be, while they have made fewer than that.
    fn probation_post(&self, user: &UserId) -> Option<u32> {
        let made = self.rows.posts.get(user).copied().unwrap_or(0);
        (made < self.record.probation_posts).then_some(made + 1)
    }

    /// A post at `now`: refused (not a member, muted, rules not acknowledged,
    /// too soon in slow mode), or the message — or, a newcomer's link in a
    /// room with probation, a held post for a moderator's look. The one post
    /// decision: the session, the tests and the benches all make it here.
    /// The order holds the member to slow mode too (`Requires::Post`): two
    /// posts in a row may both pass this copy before either is applied.
    pub fn decide_send(
        &self,
        user: &UserId,
        msg: hearth_protocol::ops::SendMessage,
        now: Millis,
    ) -> Result<Draft, ErrorBody> {
        let slow_ms = self.check_post(user, now)?;
        let mut draft = self.message_draft(user, msg)?;
        draft.requires = Requires::Post { user: user.clone(), slow_ms, rules: Some(self.rules_seq) };
        let on_probation = self.on_probation(user, now);
        if let Event::Message(m) = &mut draft.event {
            if on_probation {
                m.probation_post = self.probation_post(user);
            }
            if on_probation && has_link(m.text.as_str()) {
                let event = Event::Held(HeldEvent {
                    room: self.room().clone(),
                    seq: Seq::ZERO,
                    ts: Millis(0),
                    from: user.clone(),
                    text: m.text.clone(),
                    cmid: m.cmid.clone(),
                    thread: m.thread,
                });
                // No client message id: the released post takes it.
                return Ok(Draft { event, requires: draft.requires, cmid: None });
            }
        }
        Ok(draft)
    }

    /// The held posts, oldest first (moderators).
    pub fn held_posts(&self, actor: &UserId, now: Millis) -> Result<Vec<HeldPost>, ErrorBody> {
        self.require(actor, Action::Moderate, now)?;
        let mut list: Vec<HeldPost> = self
            .rows
            .held
            .iter()
            .filter_map(|((user, cmid), h)| {
                Some(HeldPost {
                    user: user.clone(),
                    cmid: hearth_protocol::ClientMsgId::new(cmid.as_str()).ok()?,
                    text: h.text.clone(),
                    thread: h.thread,
                    at: h.at,
                })
            })
            .collect();
        list.sort_by_key(|h| h.at);
        Ok(list)
    }

    /// Posts a held message in its author's name, or drops it (logged).
    pub fn decide_release(&self, actor: &UserId, args: Release, now: Millis) -> Result<Draft, ErrorBody> {
        self.require(actor, Action::Moderate, now)?;
        let Some(held) = self.rows.held.get(&(args.user.clone(), args.cmid.as_str().to_string())) else {
            return Err(ErrorBody::new(
                ErrorCode::NoSuchTarget,
                format!("no held post {} of {} in room {}", args.cmid.as_str(), args.user, self.room()),
            ));
        };
        if !args.approve {
            let Event::Moderation(mut event) = self.moderation(actor, ModAction::Delete, &args.user, None, args.reason)
            else {
                unreachable!("moderation makes moderation events")
            };
            event.held = Some(args.cmid);
            return Ok(Draft {
                event: Event::Moderation(event),
                requires: Requires::RoleAtLeast(actor.clone(), least_role(Action::Moderate)),
                cmid: None,
            });
        }
        let event = Event::Message(MessageEvent {
            room: self.room().clone(),
            seq: Seq::ZERO,
            ts: Millis(0),
            from: args.user.clone(),
            text: held.text.clone(),
            cmid: args.cmid.clone(),
            thread: held.thread,
            state: None,
            prompt: None,
            released_by: Some(actor.clone()),
            // Released, it counts as one of its author's posts on probation.
            probation_post: if self.on_probation(&args.user, now) { self.probation_post(&args.user) } else { None },
        });
        Ok(Draft { event, requires: Requires::Member(args.user), cmid: Some(args.cmid) })
    }
}
