//! Why a room refuses a request: one typed reason, with the data a client's
//! answer needs, for every refusal the room's rules make — a decision on a
//! copy of the room (`RoomState::decide_*`) or the order's re-check of what a
//! draft requires (`Gate::check`, `order.lua`). The words a client reads are
//! made from it in one place at the edge (`crate::refusals`); here, a refusal
//! is what it means, so the decide-and-order path can ask of it whether it may
//! have come from a copy that trailed the order.

use hearth_protocol::ops::{LockLevel, ReportOutcome};
use hearth_protocol::{ClientMsgId, Millis, PinId, Role, RoomId, Seq, ShortText, UserId};

use super::permissions::Action;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The actor is not a member of the room.
    NotMember,
    /// A resume (`join` with `since`) of a membership that ended.
    NoLongerMember,
    AlreadyMember,
    RoomFull {
        cap: u32,
    },
    /// The actor's role is below the least that may do it (`action`, where
    /// the refusing side knows which).
    Forbidden {
        least: Role,
        held: Role,
        action: Option<Action>,
    },
    /// The actor may act only on members below them.
    Outranked {
        held: Role,
        target: Role,
    },
    /// Nobody acts on a room's owner.
    OwnerIsUntouchable {
        owner: UserId,
    },
    OwnerCannotLeave {
        owner: UserId,
    },
    /// A gated room takes a new member who holds `required` in its lobby
    /// (where it has one), or comes by invite or approval.
    Gated {
        required: Role,
        lobby: Option<RoomId>,
    },
    /// The owner role is never given.
    OneOwner,
    NotOnYourself,
    PinsFull {
        max: usize,
    },
    Banned(Term),
    Muted(Term),
    /// Too soon after the member's last post; `every_secs` where known.
    SlowMode {
        retry_ms: u64,
        every_secs: Option<u64>,
        probation: bool,
    },
    /// The room asks members to acknowledge its rules (at `version`) first.
    AckRequired {
        version: u32,
    },
    /// Acknowledging rules at a version that is not the current one.
    RulesVersion {
        current: u32,
    },
    ApprovalRequired(Vetting),
    InviteRequired,
    /// A request to join a room anyone may join.
    RoomIsOpen,
    InvalidInvite,
    /// No pending request to join (from `user`, where the refusing side knows).
    NoRequest {
        user: Option<UserId>,
    },
    RequestsFull {
        max: usize,
    },
    InvitesFull {
        max: usize,
    },
    PromptsFull {
        max: usize,
    },
    ReactionsFull {
        max: usize,
    },
    AlreadyReacted,
    NotReacted,
    /// A new reaction that is blank or holds spaces or control characters.
    NotAReaction,
    NoSuchMember {
        user: UserId,
    },
    NotBanned {
        user: UserId,
    },
    NotMuted {
        user: UserId,
    },
    NoSuchInvite,
    NoSuchPin {
        pin: PinId,
    },
    NoRules,
    NoSuchPrompt {
        prompt: u64,
    },
    NoSuchHeld {
        user: UserId,
        cmid: ClientMsgId,
    },
    /// A thread under an event the room does not have.
    NoThreadRoot {
        root: Seq,
    },
    Deleted {
        seq: Seq,
    },
    NotYourMessage,
    /// Retitling a note as another note is titled.
    TitleTaken {
        pin: PinId,
        title: ShortText,
    },
    /// A number outside `least..=most` (`u64::MAX`: no upper bound).
    OutOfRange {
        field: &'static str,
        least: u64,
        most: u64,
    },
    /// A time that must lie from now to a year ahead.
    NotAhead {
        field: &'static str,
    },
    NothingToChange,
    OwnLobby,
    /// The room is a direct conversation: only the members it started with
    /// are in it, and its kind never changes.
    DirectOnly,
    /// Room names starting `dm-` are kept for direct conversations.
    NameReserved,
    /// The order found the room's rules changed after the copy that decided
    /// the draft (slow mode, probation, the rules to acknowledge).
    RulesChanged,
    /// A direct conversation has no moderators to report to.
    NoModerators,
    /// Reporting one's own message.
    OwnMessage,
    /// The room's owner is above every report.
    ReportsOwner {
        owner: UserId,
    },
    /// The reports on `message` were resolved already.
    AlreadyResolved {
        message: Seq,
        outcome: ReportOutcome,
    },
    /// Open reports at the most allowed: the caller's own (`mine`) or the room's.
    ReportsFull {
        max: usize,
        mine: bool,
    },
    /// No open report (that the caller may see) on `message`.
    NoReports {
        message: Seq,
    },
    /// A warning needs a reason.
    ReasonRequired,
    WarningsFull {
        max: usize,
    },
    NoSuchWarning {
        user: UserId,
        warning: Seq,
    },
    /// A room's escalation is a mute, a kick or a ban.
    NotAnEscalation,
    /// The room is locked down (no new members; or read-only below moderator).
    Locked {
        level: LockLevel,
        term: Term,
    },
    /// Lifting a lockdown that does not hold.
    NotLocked,
    /// The room's word filter refuses the text, for `reason`.
    Filtered {
        reason: ShortText,
    },
    /// A word filter rule that cannot be taken.
    BadFilter {
        pattern: String,
        why: String,
    },
}

/// How long a ban or a mute holds, as far as the refusing side knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Term {
    /// Until a moderator lifts it.
    UntilLifted,
    /// Until `at`, `left_ms` from the refusal.
    Until { at: Millis, left_ms: u64 },
    /// The order refused without saying (it checks only that it holds).
    Unsaid,
}

impl Term {
    pub fn of(until: Option<Millis>, now: Millis) -> Term {
        match until {
            None => Term::UntilLifted,
            Some(at) => Term::Until { at, left_ms: at.0.saturating_sub(now.0) },
        }
    }
}

/// Where an approval room's request to join stands, for the one asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vetting {
    Waiting,
    Denied { by: UserId, reason: ShortText },
    NotAsked,
}

impl Refusal {
    /// Whether this refusal depends on room state that an event ordered
    /// through another node a moment ago may have changed (a role, a
    /// membership, a held post, an invite): decided on a copy that trailed
    /// the order, it may not stand. Bad input, limits and slow mode do not.
    pub fn may_be_stale(&self) -> bool {
        use Refusal::*;
        matches!(
            self,
            NotMember
                | NoLongerMember
                | Forbidden { .. }
                | Outranked { .. }
                | Gated { .. }
                | Banned(_)
                | Muted(_)
                | AckRequired { .. }
                | ApprovalRequired(_)
                | InviteRequired
                | InvalidInvite
                | NoRequest { .. }
                | NoSuchMember { .. }
                | NotBanned { .. }
                | NotMuted { .. }
                | NoSuchInvite
                | NoSuchPin { .. }
                | NoRules
                | NoSuchPrompt { .. }
                | NoSuchHeld { .. }
                | NoThreadRoot { .. }
                | Deleted { .. }
                | RulesChanged
                | AlreadyResolved { .. }
                | NoReports { .. }
                | NoSuchWarning { .. }
                | Locked { .. }
        )
    }
}
