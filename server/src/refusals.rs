//! The words of every refusal, in one place at the edge: where a typed reason
//! — a room's [`Refusal`], a [`BrokerError`] — becomes the [`ErrorBody`] a
//! client reads: its code (PROTOCOL.md, "Error codes"), its text, its
//! `retry_after_ms`. The room core and the broker say what happened; only
//! this module says it to a person, and it only maps (a failure worth a log
//! line is logged where it happened, or by the session for `internal`).

use hearth_protocol::ops::{LockLevel, ReportOutcome};
use hearth_protocol::{ErrorBody, ErrorCode, Role, RoomId};

use crate::broker::BrokerError;
use crate::room::permissions::Action;
use crate::room::{Refusal, Term, Vetting};

/// What a client reads when room `room` refuses with `why`.
pub fn refused(room: &RoomId, why: &Refusal) -> ErrorBody {
    use Refusal::*;
    let (code, text) = match why {
        NotMember => (ErrorCode::NotMember, format!("you are not a member of room {room}; join it first")),
        NoLongerMember => (
            ErrorCode::NotMember,
            format!(
                "you are no longer a member of room {room} (you left or were removed), so there is \
                 nothing to resume; join without since to become a member again"
            ),
        ),
        AlreadyMember => (ErrorCode::AlreadyExists, format!("you are already a member of room {room}")),
        RoomFull { cap } => {
            (ErrorCode::RoomFull, format!("room {room} is full ({cap} members); ask a moderator to raise the cap"))
        }
        Forbidden { least, held, action } => (
            ErrorCode::Forbidden,
            format!(
                "only a {} or above may {} in room {room}; you are a {}",
                least.as_str(),
                action.map_or("do that", deed),
                held.as_str()
            ),
        ),
        Outranked { held, target } => (
            ErrorCode::Forbidden,
            format!(
                "in room {room} you are a {} and they are a {}: you may act only on members below you",
                held.as_str(),
                target.as_str()
            ),
        ),
        Gated { required, lobby: Some(lobby) } => (
            ErrorCode::Forbidden,
            format!("room {room} is for {}s of room {lobby}; ask there, or for an invite", required.as_str()),
        ),
        Gated { lobby: None, .. } => {
            (ErrorCode::Forbidden, format!("room {room} is gated: join it with an invite, or ask its owner"))
        }
        OwnerIsUntouchable { owner } => (ErrorCode::Forbidden, format!("{owner} owns room {room}")),
        OwnerCannotLeave { owner } => {
            (ErrorCode::Forbidden, format!("{owner} owns room {room}; an owner cannot leave it"))
        }
        OneOwner => (ErrorCode::Forbidden, "a room has one owner; it cannot be given".to_string()),
        NotOnYourself => (ErrorCode::BadRequest, "you cannot do that to yourself".to_string()),
        PinsFull { max } => (
            ErrorCode::LimitReached,
            format!(
                "room {room} has {max} pinned notes, the most it may have; unpin one, or pin with the title \
                 of one to replace it"
            ),
        ),
        Banned(term) => (ErrorCode::Banned, format!("you are banned from room {room}{}", until(term))),
        Muted(term) => {
            let error = ErrorBody::new(ErrorCode::Muted, format!("you are muted in room {room}{}", until(term)));
            return match term {
                Term::Until { left_ms, .. } => error.retry_after(*left_ms),
                _ => error,
            };
        }
        SlowMode { retry_ms, every_secs, probation } => {
            let stricter = if *probation { " (stricter while you are on probation)" } else { "" };
            let text = match every_secs {
                Some(secs) => format!("room {room} is in slow mode{stricter}: one message every {secs} s"),
                None => format!("room {room} is in slow mode{stricter}: wait before posting again"),
            };
            return ErrorBody::new(ErrorCode::SlowMode, text).retry_after(*retry_ms);
        }
        AckRequired { version } => (
            ErrorCode::AckRequired,
            format!(
                "room {room} asks you to read its rules (the pinned \"Rules\", version {version}) and \
                 acknowledge them with ack_rules before posting"
            ),
        ),
        RulesVersion { current } => {
            (ErrorCode::BadRequest, format!("the rules are at version {current}; read them and acknowledge that one"))
        }
        ApprovalRequired(vetting) => {
            let why = match vetting {
                Vetting::Waiting => "your request is waiting for a welcomer or moderator".to_string(),
                Vetting::Denied { by, reason } if reason.as_str().is_empty() => {
                    format!("{by} denied your request; you may ask again with request_join")
                }
                Vetting::Denied { by, reason } => {
                    format!("{by} denied your request: {reason}; you may ask again with request_join")
                }
                Vetting::NotAsked => "send request_join and wait for approval".to_string(),
            };
            (ErrorCode::ApprovalRequired, format!("room {room} vets new members: {why}"))
        }
        InviteRequired => {
            (ErrorCode::InviteRequired, format!("room {room} is invite-only: join with an invite code from a member"))
        }
        RoomIsOpen => (ErrorCode::BadRequest, format!("room {room} is open: join it")),
        InvalidInvite => (
            ErrorCode::InvalidInvite,
            format!("that invite to room {room} is unknown, expired, used up or revoked; ask for a new one"),
        ),
        NoRequest { user: Some(user) } => {
            (ErrorCode::NoSuchTarget, format!("{user} has no pending request to join room {room}"))
        }
        NoRequest { user: None } => {
            (ErrorCode::NoSuchTarget, format!("no pending request to join room {room} from them"))
        }
        RequestsFull { max } => (
            ErrorCode::LimitReached,
            format!("room {room} has {max} pending join requests, the most it takes; try again later"),
        ),
        InvitesFull { max } => {
            (ErrorCode::LimitReached, format!("room {room} has {max} live invites, the most it keeps; revoke one"))
        }
        PromptsFull { max } => {
            (ErrorCode::LimitReached, format!("room {room} has {max} scheduled prompts, the most it keeps"))
        }
        ReactionsFull { max } => {
            (ErrorCode::LimitReached, format!("a message carries at most {max} different reactions"))
        }
        AlreadyReacted => (ErrorCode::BadRequest, "you reacted with that already".to_string()),
        NotReacted => (ErrorCode::BadRequest, "you have not reacted with that".to_string()),
        NotAReaction => (
            ErrorCode::BadRequest,
            "a reaction is an emoji or a :shortcode:, without spaces or control characters".to_string(),
        ),
        NoSuchMember { user } => (ErrorCode::NoSuchTarget, format!("{user} is not a member of room {room}")),
        NotBanned { user } => (ErrorCode::NoSuchTarget, format!("{user} is not banned from room {room}")),
        NotMuted { user } => (ErrorCode::NoSuchTarget, format!("{user} is not muted in room {room}")),
        NoSuchInvite => (ErrorCode::NoSuchTarget, format!("room {room} has no such invite")),
        NoSuchPin { pin } => (ErrorCode::NoSuchTarget, format!("room {room} has no pinned note {}", pin.0)),
        NoRules => (ErrorCode::NoSuchTarget, format!("room {room} has no pinned rules")),
        NoSuchPrompt { prompt } => (ErrorCode::NoSuchTarget, format!("room {room} has no prompt {prompt}")),
        NoSuchHeld { user, cmid } => {
            (ErrorCode::NoSuchTarget, format!("no held post {} of {user} in room {room}", cmid.as_str()))
        }
        NoThreadRoot { root } => (ErrorCode::NoSuchTarget, format!("no event {root} in room {room} to thread under")),
        Deleted { seq } => (ErrorCode::NoSuchTarget, format!("message {seq} was deleted")),
        NotYourMessage => (ErrorCode::Forbidden, "you may edit only your own messages".to_string()),
        TitleTaken { pin, title } => (
            ErrorCode::AlreadyExists,
            format!("pin {} is titled {:?} already; edit that one, or pick another title", pin.0, title.as_str()),
        ),
        OutOfRange { field, least, most } => {
            let range = match (*least, *most) {
                (least, u64::MAX) => format!("at least {least}"),
                (0, most) => format!("at most {most}"),
                (least, most) => format!("{least} to {most}"),
            };
            (ErrorCode::BadRequest, format!("{field} must be {range}"))
        }
        NotAhead { field } => (ErrorCode::BadRequest, format!("{field} must be from now to a year ahead")),
        NothingToChange => (ErrorCode::BadRequest, "set_room changes nothing: give at least one setting".to_string()),
        OwnLobby => (ErrorCode::BadRequest, "a room cannot be its own lobby".to_string()),
        DirectOnly => (
            ErrorCode::Forbidden,
            format!(
                "room {room} is a direct conversation: only the members it started with are in it, and it stays \
                 one; to talk with someone directly, use start_direct"
            ),
        ),
        NameReserved => (
            ErrorCode::BadRequest,
            format!(
                "room names starting {} are kept for direct conversations; pick another name",
                crate::room::DIRECT_PREFIX
            ),
        ),
        NoModerators => (
            ErrorCode::Forbidden,
            format!("room {room} is a direct conversation and has no moderators; block the member instead"),
        ),
        OwnMessage => (ErrorCode::BadRequest, "that is your own message: edit or delete it instead".to_string()),
        ReportsOwner { owner } => (
            ErrorCode::Forbidden,
            format!("{owner} owns room {room}; reports go to the roles below the owner, so there is nobody to tell"),
        ),
        AlreadyResolved { message, outcome } => (
            ErrorCode::AlreadyResolved,
            format!(
                "the reports on message {message} of room {room} were resolved already ({}); if it goes on, \
                 report a newer message",
                outcome_word(*outcome)
            ),
        ),
        ReportsFull { max, mine: true } => (
            ErrorCode::LimitReached,
            format!("you have {max} open reports in room {room}, the most at once; the moderators will get to them"),
        ),
        ReportsFull { max, mine: false } => (
            ErrorCode::LimitReached,
            format!("room {room} has {max} open reports, the most it keeps; try again once moderators resolve some"),
        ),
        NoReports { message } => {
            (ErrorCode::NoSuchTarget, format!("no open report on message {message} of room {room}"))
        }
        ReasonRequired => (ErrorCode::BadRequest, "a warning needs a reason: say what crossed the line".to_string()),
        WarningsFull { max } => (
            ErrorCode::LimitReached,
            format!("they have {max} live warnings in room {room}, the most kept; mute or ban them instead"),
        ),
        NoSuchWarning { user, warning } => {
            (ErrorCode::NoSuchTarget, format!("{user} has no warning {warning} in room {room}"))
        }
        NotAnEscalation => (ErrorCode::BadRequest, "warn_action must be mute, kick or ban".to_string()),
        Locked { level, term } => {
            let what = match level {
                LockLevel::ReadOnly => format!("room {room} is read-only for now: only its moderators post"),
                _ => format!("room {room} takes no new members for now (a moderator's lockdown, or too many at once)"),
            };
            let lifts = match term {
                Term::Until { .. } => " — it lifts by itself; try again then",
                _ => " — until a moderator lifts it",
            };
            let error = ErrorBody::new(ErrorCode::Locked, format!("{what}{lifts}"));
            return match term {
                Term::Until { left_ms, .. } => error.retry_after(*left_ms),
                _ => error,
            };
        }
        NotLocked => (ErrorCode::BadRequest, format!("room {room} is not locked down")),
        Filtered { reason } if reason.as_str().is_empty() => (
            ErrorCode::Filtered,
            format!("room {room}'s word filter does not take this text; change it and send again"),
        ),
        Filtered { reason } => (
            ErrorCode::Filtered,
            format!("room {room}'s word filter does not take this text: {reason}; change it and send again"),
        ),
        BadFilter { pattern, why } => (ErrorCode::BadRequest, format!("the filter {pattern:?} cannot be taken: {why}")),
        // Seen by a client only when the node could not catch up in time.
        RulesChanged => {
            return ErrorBody::new(
                ErrorCode::Overloaded,
                format!("room {room}'s rules (settings, pins or roles) changed as this was decided; nothing was stored, retry"),
            )
            .retry_after(200);
        }
    };
    ErrorBody::new(code, text)
}

/// How reports were resolved, in a sentence.
fn outcome_word(outcome: ReportOutcome) -> &'static str {
    match outcome {
        ReportOutcome::Dismiss => "dismissed",
        ReportOutcome::Delete => "the message was deleted",
        ReportOutcome::Warn => "its author was warned",
        ReportOutcome::Mute => "its author was muted",
        ReportOutcome::Kick => "its author was removed",
        ReportOutcome::Ban => "its author was banned",
    }
}

fn until(term: &Term) -> String {
    match term {
        Term::UntilLifted => " until a moderator lifts it".to_string(),
        Term::Until { at, .. } => format!(" until {}", at.0),
        Term::Unsaid => String::new(),
    }
}

/// What `action` is, as the end of "only a moderator or above may ...".
fn deed(action: Action) -> &'static str {
    match action {
        Action::Read => "read this room",
        Action::Post => "post",
        Action::Welcome => "welcome newcomers (join requests, invites, the welcome message)",
        Action::Moderate => "moderate",
        Action::AssignRoles => "give roles",
        Action::Configure => "change the room's settings",
        Action::AppointModerators => "appoint moderators",
        Action::Pin => "pin",
    }
}

/// A refusal of the role a request needs, worded like the room's.
pub fn forbidden(room: &RoomId, least: Role, held: Role, action: Action) -> ErrorBody {
    refused(room, &Refusal::Forbidden { least, held, action: Some(action) })
}

/// Room `room` already has `max` connections receiving it on this node.
pub fn receivers_full(room: &RoomId, max: usize) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::LimitReached,
        format!("room {room} has {max} connections receiving it, the most this server allows"),
    )
}

/// A join's catch-up could not reach the room's head (history kept moving).
pub fn catch_up_failed(room: &RoomId) -> ErrorBody {
    ErrorBody::new(ErrorCode::Overloaded, format!("could not catch up with room {room}; rejoin with since"))
        .retry_after(1000)
}

/// This node's copy of `room` did not reach the order in time for a read.
pub fn still_catching_up(room: &RoomId) -> ErrorBody {
    ErrorBody::new(ErrorCode::Overloaded, format!("this node is still catching up with room {room}; retry shortly"))
        .retry_after(500)
}

impl From<&BrokerError> for ErrorBody {
    fn from(error: &BrokerError) -> ErrorBody {
        match error {
            BrokerError::NoSuchRoom(room) => {
                ErrorBody::new(ErrorCode::NotFound, format!("no room named {room}; list rooms with list_rooms"))
            }
            BrokerError::AlreadyExists(room) => ErrorBody::new(
                ErrorCode::AlreadyExists,
                format!("a room named {room} already exists; join it or pick another name"),
            ),
            BrokerError::TooManyRooms { user, max } => ErrorBody::new(
                ErrorCode::LimitReached,
                format!("{user} owns {max} rooms, the most one user may own on this server"),
            ),
            BrokerError::Rejected { room, why } => refused(room, why),
            BrokerError::Overloaded => {
                ErrorBody::new(ErrorCode::Overloaded, "the server's write queue is full; retry shortly")
                    .retry_after(100)
            }
            BrokerError::Stopping => {
                ErrorBody::new(ErrorCode::Overloaded, "the server is shutting down; reconnect and retry")
                    .retry_after(1000)
            }
            BrokerError::Unavailable(_) => ErrorBody::new(
                ErrorCode::Overloaded,
                "the cluster's shared store (Redis) is unreachable; nothing was stored, retry shortly",
            )
            .retry_after(250),
            BrokerError::Unanswered(_) => ErrorBody::new(
                ErrorCode::OutcomeUnknown,
                "the cluster's shared store (Redis) did not answer in time: this may or may not have been \
                 stored; retry (a send with the same cmid is stored once)",
            )
            .retry_after(500),
            BrokerError::Restoring(room) => ErrorBody::new(
                ErrorCode::Overloaded,
                format!(
                    "room {room} is being restored (the cluster's shared store lost its data a moment ago); \
                     nothing was stored, retry shortly"
                ),
            )
            .retry_after(250),
            BrokerError::Stale { room, .. } => ErrorBody::new(
                ErrorCode::Overloaded,
                format!("room {room} lost its history and was restored; nothing was stored, retry shortly"),
            )
            .retry_after(200),
            BrokerError::Store(_) => ErrorBody::new(ErrorCode::Internal, "the server's storage failed; retry later"),
            BrokerError::NotTimeline => {
                ErrorBody::new(ErrorCode::Internal, "the server tried to store an event it cannot; this is a bug")
            }
        }
    }
}

impl From<BrokerError> for ErrorBody {
    fn from(error: BrokerError) -> ErrorBody {
        ErrorBody::from(&error)
    }
}

impl From<crate::reads::ReadsUnavailable> for ErrorBody {
    fn from(error: crate::reads::ReadsUnavailable) -> ErrorBody {
        tracing::warn!(%error, "read positions unavailable");
        ErrorBody::new(ErrorCode::Overloaded, "read positions are unavailable right now; retry shortly")
            .retry_after(1000)
    }
}

#[cfg(test)]
mod tests {
    use hearth_protocol::{Millis, PinId, UserId};

    use super::*;

    #[test]
    fn each_refusal_has_its_code_names_the_room_and_says_when_to_retry() {
        let room = RoomId::new("cameras").unwrap();
        let bo = UserId::new("bo").unwrap();
        let cases = [
            (Refusal::NotMember, ErrorCode::NotMember, None),
            (Refusal::NoLongerMember, ErrorCode::NotMember, None),
            (Refusal::RoomFull { cap: 30 }, ErrorCode::RoomFull, None),
            (
                Refusal::Forbidden { least: Role::Moderator, held: Role::Member, action: None },
                ErrorCode::Forbidden,
                None,
            ),
            (Refusal::Banned(Term::UntilLifted), ErrorCode::Banned, None),
            (Refusal::Muted(Term::Until { at: Millis(9_000), left_ms: 4_000 }), ErrorCode::Muted, Some(4_000)),
            (
                Refusal::SlowMode { retry_ms: 1_500, every_secs: Some(10), probation: true },
                ErrorCode::SlowMode,
                Some(1_500),
            ),
            (Refusal::ApprovalRequired(Vetting::Waiting), ErrorCode::ApprovalRequired, None),
            (Refusal::InvalidInvite, ErrorCode::InvalidInvite, None),
            (Refusal::PinsFull { max: 20 }, ErrorCode::LimitReached, None),
            (Refusal::NoSuchPin { pin: PinId(7) }, ErrorCode::NoSuchTarget, None),
            (Refusal::RulesChanged, ErrorCode::Overloaded, Some(200)),
        ];
        for (why, code, retry) in cases {
            let error = refused(&room, &why);
            assert_eq!((error.code, error.retry_after_ms), (code, retry), "{why:?}");
            assert!(error.message.contains("cameras"), "{why:?}: {}", error.message);
        }
        let denied = Refusal::ApprovalRequired(Vetting::Denied {
            by: bo.clone(),
            reason: hearth_protocol::ShortText::new("no sellers here").unwrap(),
        });
        assert!(refused(&room, &denied).message.contains("bo denied your request: no sellers here"));
        let range = |least, most| refused(&room, &Refusal::OutOfRange { field: "cap", least, most }).message;
        assert_eq!(range(1, 500), "cap must be 1 to 500");
        assert_eq!(range(1, u64::MAX), "cap must be at least 1");
        assert_eq!(range(0, 60), "cap must be at most 60");
        assert_eq!(refused(&room, &Refusal::NoSuchMember { user: bo }).code, ErrorCode::NoSuchTarget);
    }
}
