//! Reports and warnings, as decisions: a member reports a message to the
//! room's welcomers and moderators (never to the member reported — a report
//! goes to the roles above theirs); a moderator resolves the reports on a
//! message; moderators warn members, and a warning that reaches the room's
//! limit brings the room's escalation with it, in the same event.

use hearth_protocol::event::{MessageEvent, ReportEvent};
use hearth_protocol::ops::{
    Escalation, ModAction, OpenReport, ReportCategory, ReportOutcome, Visibility, WarningInfo, WarningList,
};
use hearth_protocol::{Event, Millis, Role, Seq, ShortText, Text, UserId, limits};

use super::messages::Annotations;
use super::permissions::{Action, least_role};
use super::{Draft, Refusal, Requires, RoomState};

impl RoomState {
    /// The caller's open report on `message`, if they made one: reporting it
    /// again answers with that one.
    pub fn open_report_by(&self, reporter: &UserId, message: Seq) -> Option<(Seq, Millis)> {
        self.rows.reports.iter().find(|(_, r)| r.message == message && r.by == *reporter).map(|(id, r)| (*id, r.at))
    }

    /// A member reports `message` (its text now is `text`).
    #[allow(clippy::too_many_arguments)]
    pub fn decide_report(
        &self,
        reporter: &UserId,
        message: &MessageEvent,
        notes: &Annotations,
        text: Text,
        category: ReportCategory,
        note: ShortText,
        now: Millis,
    ) -> Result<Draft, Refusal> {
        self.require(reporter, Action::Read, now)?;
        if self.record.visibility == Visibility::Direct {
            return Err(Refusal::NoModerators);
        }
        if message.from == *reporter {
            return Err(Refusal::OwnMessage);
        }
        if notes.deleted.is_some() {
            return Err(Refusal::Deleted { seq: message.seq });
        }
        if let Some(resolved) = &notes.resolved {
            return Err(Refusal::AlreadyResolved { message: message.seq, outcome: resolved.outcome });
        }
        // Who hears of it: roles above the author's, so they never do.
        let audience = match self.role_of(&message.from, now).unwrap_or(Role::Member) {
            Role::Member => Role::Welcomer,
            Role::Welcomer => Role::Moderator,
            Role::Moderator => Role::Owner,
            Role::Owner => return Err(Refusal::ReportsOwner { owner: message.from.clone() }),
        };
        let mine = self.rows.reports.values().filter(|r| r.by == *reporter).count();
        if mine >= limits::MAX_OPEN_REPORTS_PER_MEMBER {
            return Err(Refusal::ReportsFull { max: limits::MAX_OPEN_REPORTS_PER_MEMBER, mine: true });
        }
        if self.rows.reports.len() >= limits::MAX_OPEN_REPORTS {
            return Err(Refusal::ReportsFull { max: limits::MAX_OPEN_REPORTS, mine: false });
        }
        let event = Event::Report(ReportEvent {
            room: self.room().clone(),
            seq: Seq::ZERO,
            ts: Millis(0),
            from: reporter.clone(),
            message: message.seq,
            author: message.from.clone(),
            text,
            category,
            note,
            audience,
        });
        Ok(self.draft(event, Requires::Member(reporter.clone())))
    }

    /// The open reports `viewer` may see: every one a welcomer or above may
    /// (none about themselves or anyone above them), and their own.
    pub fn open_reports(&self, viewer: &UserId, now: Millis) -> Result<Vec<OpenReport>, Refusal> {
        let role = self.require(viewer, Action::Read, now)?;
        let sees = |r: &super::rows::ReportRow| r.by == *viewer || (role >= Role::Welcomer && r.audience <= role);
        Ok(self
            .rows
            .reports
            .iter()
            .filter(|(_, r)| sees(r))
            .map(|(id, r)| OpenReport {
                report: *id,
                message: r.message,
                author: r.author.clone(),
                text: r.text.clone(),
                from: r.by.clone(),
                category: r.category,
                note: r.note.clone(),
                at: r.at,
            })
            .collect())
    }

    /// A welcomer or above resolves the reports on `message` that they may
    /// see, after acting on them (`outcome`; the action itself is its own
    /// event, decided before this one).
    pub fn decide_resolve(
        &self,
        actor: &UserId,
        message: Seq,
        notes: &Annotations,
        outcome: ReportOutcome,
        reason: ShortText,
        now: Millis,
    ) -> Result<Draft, Refusal> {
        let role = self.require(actor, Action::Welcome, now)?;
        let open: Vec<_> =
            self.rows.reports.iter().filter(|(_, r)| r.message == message && r.audience <= role).collect();
        let Some((_, first)) = open.first() else {
            return Err(match &notes.resolved {
                Some(resolved) => Refusal::AlreadyResolved { message, outcome: resolved.outcome },
                None => Refusal::NoReports { message },
            });
        };
        let audience = open.iter().map(|(_, r)| r.audience).max().unwrap_or(Role::Welcomer);
        let Event::Moderation(mut event) = self.moderation(actor, ModAction::Resolve, &first.author, None, reason)
        else {
            unreachable!("moderation drafts a moderation event")
        };
        event.message = Some(message);
        event.outcome = Some(outcome);
        event.reports = open.iter().map(|(id, _)| **id).collect();
        event.audience = Some(audience);
        let requires = Requires::RoleAtLeast(actor.clone(), least_role(Action::Welcome));
        Ok(self.draft(Event::Moderation(event), requires))
    }

    /// A moderator warns a member. Warnings count for the room's
    /// `warn_expiry_days`; the member's expired ones are forgotten with this
    /// one; reaching `warn_limit` live ones applies `warn_action` with it.
    pub fn decide_warn(&self, actor: &UserId, user: &UserId, reason: ShortText, now: Millis) -> Result<Draft, Refusal> {
        self.require_over(actor, Action::Moderate, user, now)?;
        if !self.members.contains_key(user) {
            return Err(Refusal::NoSuchMember { user: user.clone() });
        }
        if reason.as_str().trim().is_empty() {
            return Err(Refusal::ReasonRequired);
        }
        let r = &self.record;
        let days = u64::from(r.warn_expiry_days);
        let until = (days > 0).then(|| Millis(now.0 + days * 24 * 3600 * 1000));
        let (live, expired): (Vec<_>, Vec<_>) = self.warnings_on(user).partition(|(_, w)| w.holds(now));
        if live.len() >= limits::MAX_LIVE_WARNINGS {
            return Err(Refusal::WarningsFull { max: limits::MAX_LIVE_WARNINGS });
        }
        let escalation =
            r.warn_action.filter(|_| r.warn_limit > 0 && live.len() + 1 >= r.warn_limit as usize).map(|action| {
                let secs = u64::from(r.warn_action_secs);
                let until = (action != ModAction::Kick && secs > 0).then(|| Millis(now.0 + secs * 1000));
                Escalation { action, until }
            });
        let Event::Moderation(mut event) = self.moderation(actor, ModAction::Warn, user, until, reason) else {
            unreachable!("moderation drafts a moderation event")
        };
        event.escalation = escalation;
        event.warnings = expired.into_iter().map(|(id, _)| id).collect();
        // The escalation was counted on this copy: a warning or a setting
        // ordered through another node since sends it back to be decided
        // again, so two at once neither both escalate nor both miss.
        Ok(self.over(actor, user, Event::Moderation(event)))
    }

    /// A moderator lifts one of a member's warnings.
    pub fn decide_unwarn(&self, actor: &UserId, user: &UserId, warning: Seq, now: Millis) -> Result<Draft, Refusal> {
        self.require(actor, Action::Moderate, now)?;
        if !self.rows.warnings.contains_key(&(user.clone(), warning)) {
            return Err(Refusal::NoSuchWarning { user: user.clone(), warning });
        }
        let Event::Moderation(mut event) = self.moderation(actor, ModAction::Unwarn, user, None, ShortText::default())
        else {
            unreachable!("moderation drafts a moderation event")
        };
        event.warnings = vec![warning];
        let requires = Requires::RoleAtLeast(actor.clone(), least_role(Action::Moderate));
        Ok(self.draft(Event::Moderation(event), requires))
    }

    /// `user`'s live warnings, for themselves or a moderator.
    pub fn warnings_of(&self, viewer: &UserId, user: &UserId, now: Millis) -> Result<WarningList, Refusal> {
        if viewer == user {
            self.require(viewer, Action::Read, now)?;
        } else {
            self.require(viewer, Action::Moderate, now)?;
        }
        let warnings = self
            .warnings_on(user)
            .filter(|(_, w)| w.holds(now))
            .map(|(warning, w)| WarningInfo {
                warning,
                by: w.by.clone(),
                at: w.at,
                until: w.until,
                reason: w.reason.clone(),
            })
            .collect();
        Ok(WarningList {
            user: user.clone(),
            warnings,
            warn_limit: self.record.warn_limit,
            warn_action: self.record.warn_action.filter(|_| self.record.warn_limit > 0),
        })
    }

    fn warnings_on<'a>(&'a self, user: &'a UserId) -> impl Iterator<Item = (Seq, &'a super::rows::Sanction)> + 'a {
        self.rows.warnings.range((user.clone(), Seq::ZERO)..=(user.clone(), Seq(u64::MAX))).map(|((_, id), w)| (*id, w))
    }
}
