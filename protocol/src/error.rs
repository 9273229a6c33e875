//! The closed sets of things that can go wrong, as a client sees them: error codes
//! in replies, close codes on the WebSocket, and decode errors.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Machine-readable reason a request failed. The wire strings are stable: clients
/// match on them, so a variant is never renamed, only added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame decoded as a request but its arguments are missing or invalid.
    BadRequest,
    /// The `op` is not one this protocol version defines.
    UnknownOp,
    /// The op is defined by the protocol but this server does not serve it yet.
    Unsupported,
    /// The room does not exist.
    NotFound,
    /// A room with that name already exists.
    AlreadyExists,
    /// The caller must be a member of the room first (`join`).
    NotMember,
    /// The caller's role does not allow this.
    Forbidden,
    /// The room has reached its member cap.
    RoomFull,
    /// The room vets new members: send `request_join` instead.
    ApprovalRequired,
    /// The room is invite-only: join with a valid `invite` code.
    InviteRequired,
    /// The invite code is unknown, expired or used up.
    InvalidInvite,
    /// The caller is banned from the room.
    Banned,
    /// The caller is muted in the room.
    Muted,
    /// Too many requests; retry after `retry_after_ms`.
    RateLimited,
    /// The room is in slow mode; retry after `retry_after_ms`.
    SlowMode,
    /// The target message or pin does not exist.
    NoSuchTarget,
    /// The server is shedding load; retry after `retry_after_ms`.
    Overloaded,
    /// A bug or a failed disk on the server; the request may be retried.
    Internal,
    /// A limit of this server (rooms a user may own, pins in a room, connections
    /// receiving a room, ...) is reached; the message says which.
    LimitReached,
    /// The token given to `auth` is not valid for this connection: malformed,
    /// forged, expired, another user's, or its account was signed out or disabled.
    Unauthorized,
    /// The room asks members to acknowledge its rules (`ack_rules`) before posting.
    AckRequired,
    /// The server sent the write on and got no answer in time (a cluster's
    /// Redis stalled or went away mid-call): it may or may not have taken
    /// effect. Retry after `retry_after_ms`; a `send` with the same `cmid` is
    /// stored once either way.
    OutcomeUnknown,
    /// A direct conversation is not allowed (`start_direct`, or a `send` to a
    /// member who blocked the sender); `reason` says why.
    DirectRefused,
    /// The reports on that message were resolved already (dismissed, or a
    /// moderator acted): a report on it again is not taken.
    AlreadyResolved,
    /// The room is locked down: no new members, or (read-only) no posts
    /// below moderator; `retry_after_ms` says when it lifts, if it does by
    /// itself.
    Locked,
    /// The room's word filter refuses the message; the message says why.
    /// Change the text and send it again.
    Filtered,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 26] = [
        ErrorCode::BadRequest,
        ErrorCode::UnknownOp,
        ErrorCode::Unsupported,
        ErrorCode::NotFound,
        ErrorCode::AlreadyExists,
        ErrorCode::NotMember,
        ErrorCode::Forbidden,
        ErrorCode::RoomFull,
        ErrorCode::ApprovalRequired,
        ErrorCode::InviteRequired,
        ErrorCode::InvalidInvite,
        ErrorCode::Banned,
        ErrorCode::Muted,
        ErrorCode::RateLimited,
        ErrorCode::SlowMode,
        ErrorCode::NoSuchTarget,
        ErrorCode::Overloaded,
        ErrorCode::Internal,
        ErrorCode::LimitReached,
        ErrorCode::Unauthorized,
        ErrorCode::AckRequired,
        ErrorCode::OutcomeUnknown,
        ErrorCode::DirectRefused,
        ErrorCode::AlreadyResolved,
        ErrorCode::Locked,
        ErrorCode::Filtered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownOp => "unknown_op",
            ErrorCode::Unsupported => "unsupported",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::NotMember => "not_member",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RoomFull => "room_full",
            ErrorCode::ApprovalRequired => "approval_required",
            ErrorCode::InviteRequired => "invite_required",
            ErrorCode::InvalidInvite => "invalid_invite",
            ErrorCode::Banned => "banned",
            ErrorCode::Muted => "muted",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::SlowMode => "slow_mode",
            ErrorCode::NoSuchTarget => "no_such_target",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Internal => "internal",
            ErrorCode::LimitReached => "limit_reached",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::AckRequired => "ack_required",
            ErrorCode::OutcomeUnknown => "outcome_unknown",
            ErrorCode::DirectRefused => "direct_refused",
            ErrorCode::AlreadyResolved => "already_resolved",
            ErrorCode::Locked => "locked",
            ErrorCode::Filtered => "filtered",
        }
    }

    /// Whether sending the same request again later can succeed.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimited
                | ErrorCode::SlowMode
                | ErrorCode::Overloaded
                | ErrorCode::Internal
                | ErrorCode::OutcomeUnknown
                | ErrorCode::Locked
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of an error reply: `{"id":7,"err":{"code":"room_full","message":"..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    /// For people: what failed and what to do about it.
    pub message: String,
    /// For `rate_limited`, `slow_mode` and `overloaded`: when a retry may succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// For `direct_refused`: why, as a word (PROTOCOL.md, "Direct messages").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody { code, message: message.into(), retry_after_ms: None, reason: None }
    }

    pub fn because(mut self, reason: &str) -> Self {
        self.reason = Some(reason.to_string());
        self
    }

    pub fn retry_after(mut self, ms: u64) -> Self {
        self.retry_after_ms = Some(ms);
        self
    }
}

impl fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ErrorBody {}

/// Why the server closed a WebSocket. Violations of the WebSocket protocol itself
/// use RFC 6455's codes, which every WebSocket library understands; Hearth's own
/// conditions use the private range 4000–4999. The close frame's reason text says
/// more; the code says what a client should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum CloseCode {
    /// RFC 6455 1002: a WebSocket protocol violation (reserved bits, an unknown
    /// opcode, a fragmented control frame, a bad continuation). A client bug.
    WebSocketProtocol = 1002,
    /// RFC 6455 1007: a text frame that is not UTF-8. A client bug.
    InvalidPayload = 1007,
    /// RFC 6455 1009: a frame or message over the protocol's size limit. A client bug.
    MessageTooBig = 1009,
    /// The server is shutting down or restarting. Reconnect (with backoff) and resume.
    GoingAway = 4000,
    /// No token, a forged token, or a malformed one. Do not reconnect with it.
    Unauthorized = 4001,
    /// The token has expired. Reconnect with a fresh token.
    TokenExpired = 4002,
    /// A frame was not a request at all (garbage, bad structure, too deep, a length
    /// prefix past its end). A client bug: do not reconnect blindly.
    ProtocolError = 4003,
    /// Retired: frames over the limit now close with 1009. Kept so clients that
    /// know the code can still name it.
    FrameTooLarge = 4004,
    /// A text frame on `hearth.v1.msgpack`, or a binary frame on `hearth.v1.json`.
    WrongFrameType = 4005,
    /// The client did not read its frames fast enough and its queue filled.
    /// Reconnect and resume from the last seq seen: nothing is lost.
    SlowConsumer = 4006,
    /// The connection was silent past the idle limit. Reconnect and resume.
    IdleTimeout = 4007,
    /// The client sent requests faster than its limit for too long. Reconnect after
    /// a pause.
    RateLimited = 4008,
    /// The server is at its connection limit. Reconnect with backoff, or elsewhere.
    ServerFull = 4009,
    /// This user (or this address) has as many connections as the server allows.
    /// Close another one first.
    TooManyConnections = 4010,
    /// The operator disabled this user's account. Do not reconnect.
    AccountDisabled = 4011,
    /// A server bug. Reconnect with backoff and resume.
    InternalError = 4500,
}

impl CloseCode {
    pub const ALL: [CloseCode; 16] = [
        CloseCode::WebSocketProtocol,
        CloseCode::InvalidPayload,
        CloseCode::MessageTooBig,
        CloseCode::GoingAway,
        CloseCode::Unauthorized,
        CloseCode::TokenExpired,
        CloseCode::ProtocolError,
        CloseCode::FrameTooLarge,
        CloseCode::WrongFrameType,
        CloseCode::SlowConsumer,
        CloseCode::IdleTimeout,
        CloseCode::RateLimited,
        CloseCode::ServerFull,
        CloseCode::TooManyConnections,
        CloseCode::AccountDisabled,
        CloseCode::InternalError,
    ];

    pub fn code(self) -> u16 {
        self as u16
    }

    pub fn from_code(code: u16) -> Option<CloseCode> {
        CloseCode::ALL.into_iter().find(|c| c.code() == code)
    }

    /// Short name, also the first word of the close reason.
    pub fn name(self) -> &'static str {
        match self {
            CloseCode::WebSocketProtocol => "websocket_protocol_error",
            CloseCode::InvalidPayload => "invalid_payload",
            CloseCode::MessageTooBig => "message_too_big",
            CloseCode::GoingAway => "going_away",
            CloseCode::Unauthorized => "unauthorized",
            CloseCode::TokenExpired => "token_expired",
            CloseCode::ProtocolError => "protocol_error",
            CloseCode::FrameTooLarge => "frame_too_large",
            CloseCode::WrongFrameType => "wrong_frame_type",
            CloseCode::SlowConsumer => "slow_consumer",
            CloseCode::IdleTimeout => "idle_timeout",
            CloseCode::RateLimited => "rate_limited",
            CloseCode::ServerFull => "server_full",
            CloseCode::TooManyConnections => "too_many_connections",
            CloseCode::AccountDisabled => "account_disabled",
            CloseCode::InternalError => "internal_error",
        }
    }

    /// Whether a client should reconnect on its own after this close.
    pub fn should_reconnect(self) -> bool {
        match self {
            CloseCode::GoingAway
            | CloseCode::SlowConsumer
            | CloseCode::IdleTimeout
            | CloseCode::RateLimited
            | CloseCode::ServerFull
            | CloseCode::InternalError => true,
            // Reconnecting with the same token or the same frames fails the same way.
            CloseCode::WebSocketProtocol
            | CloseCode::InvalidPayload
            | CloseCode::MessageTooBig
            | CloseCode::Unauthorized
            | CloseCode::TokenExpired
            | CloseCode::ProtocolError
            | CloseCode::FrameTooLarge
            | CloseCode::WrongFrameType
            | CloseCode::TooManyConnections
            | CloseCode::AccountDisabled => false,
        }
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code(), self.name())
    }
}

/// Why a byte string is not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("frame is {len} bytes, over the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("frame nests deeper than {max} levels")]
    TooDeep { max: usize },
    #[error("frame has a list or map of {len} entries, over the limit of {max}")]
    ListTooLong { len: usize, max: usize },
    #[error("frame declares {declared} bytes or entries but only {remaining} bytes follow")]
    LengthPastEnd { declared: u64, remaining: usize },
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("unknown op {0:?}")]
    UnknownOp(String),
    #[error("invalid request: {0}")]
    Invalid(String),
}
