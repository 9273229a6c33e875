//! What `hearth` exits with: a code per class of failure, and a mistake in how
//! it was asked to run.

use super::*;

use hearth_cli::ClientError;
use hearth_protocol::{CloseCode, ErrorCode};

/// Exit codes, one per class of failure, so scripts can tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Something else failed (a bad argument the server refused, a bug).
    Other = 1,
    /// Bad usage or configuration: no token, an unknown profile (clap's own
    /// usage errors exit with 2 too).
    Usage = 2,
    /// The server could not be reached, or the connection was lost.
    Unreachable = 3,
    /// The token was refused or has expired.
    Unauthorized = 4,
    /// No such room, message or pin.
    NotFound = 5,
    /// Not allowed: not a member, not the right role, banned, muted.
    Forbidden = 6,
    /// Try again later: rate limits, slow mode, a full room, an overloaded server.
    Later = 7,
}

impl Exit {
    pub(crate) fn of(error: &anyhow::Error) -> Exit {
        if let Some(AccountFailure(exit, _)) = error.chain().find_map(|e| e.downcast_ref::<AccountFailure>()) {
            return *exit;
        }
        let Some(client) = error.chain().find_map(|e| e.downcast_ref::<ClientError>()) else {
            return if error.chain().any(|e| e.downcast_ref::<UsageError>().is_some()) {
                Exit::Usage
            } else {
                Exit::Other
            };
        };
        match client {
            ClientError::Connect(_) | ClientError::Timeout(_) => Exit::Unreachable,
            ClientError::Closed(close) => match close.as_ref().and_then(|c| c.hearth_code()) {
                Some(CloseCode::Unauthorized | CloseCode::TokenExpired | CloseCode::AccountDisabled) => {
                    Exit::Unauthorized
                }
                _ => Exit::Unreachable,
            },
            ClientError::Setup(_) => Exit::Usage,
            ClientError::Decode(_) => Exit::Other,
            ClientError::Server(body) => match body.code {
                ErrorCode::NotFound | ErrorCode::NoSuchTarget => Exit::NotFound,
                ErrorCode::NotMember
                | ErrorCode::Forbidden
                | ErrorCode::Banned
                | ErrorCode::Muted
                | ErrorCode::ApprovalRequired
                | ErrorCode::InviteRequired
                | ErrorCode::InvalidInvite
                | ErrorCode::DirectRefused => Exit::Forbidden,
                ErrorCode::RateLimited
                | ErrorCode::SlowMode
                | ErrorCode::Overloaded
                | ErrorCode::RoomFull
                | ErrorCode::LimitReached
                | ErrorCode::Locked => Exit::Later,
                _ => Exit::Other,
            },
        }
    }
}

/// A mistake in how `hearth` was asked to run (not the server's answer).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub(crate) String);

pub(crate) fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}
