//! Why the accounts refuse: an account operation (`AccountError`, answered
//! over HTTP with its status and a short code) and a token that may not open
//! or keep a connection (`Refusal`, answered with a close code).

use hearth_protocol::CloseCode;

use super::StoreFailure;
use crate::auth::AuthError;

/// Why an account operation was refused, each with its HTTP status.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccountError {
    #[error("{0}")]
    BadRequest(String),
    #[error("wrong name or password")]
    WrongPassword,
    #[error("this account was disabled by the operator: {0}")]
    Disabled(String),
    #[error("registration is closed on this server; ask its operator for a token")]
    RegistrationClosed,
    #[error("this server registers with an invite code only; ask its operator for one")]
    InviteNeeded,
    #[error("the invite code is unknown, expired or used up")]
    InvalidInvite,
    #[error("the name {0:?} is taken")]
    Taken(String),
    #[error("no account named {0:?}")]
    NoSuchAccount(String),
    #[error("too many attempts for this account; retry in {0} s")]
    TooManyAttempts(u64),
    #[error("signed out: {0}; log in again")]
    SignedOut(String),
    #[error("{0}")]
    Token(#[from] AuthError),
    #[error("busy hashing passwords; retry in a few seconds")]
    Busy,
    #[error("the account store is unavailable ({0}); retry later")]
    Unavailable(String),
}

impl AccountError {
    /// The HTTP status this refusal is answered with.
    pub fn status(&self) -> u16 {
        match self {
            AccountError::BadRequest(_) => 400,
            AccountError::WrongPassword | AccountError::SignedOut(_) | AccountError::Token(_) => 401,
            AccountError::Disabled(_)
            | AccountError::RegistrationClosed
            | AccountError::InviteNeeded
            | AccountError::InvalidInvite => 403,
            AccountError::NoSuchAccount(_) => 404,
            AccountError::Taken(_) => 409,
            AccountError::TooManyAttempts(_) => 429,
            AccountError::Busy | AccountError::Unavailable(_) => 503,
        }
    }

    /// A short machine-readable name, the `error` field of the JSON answer.
    pub fn code(&self) -> &'static str {
        match self {
            AccountError::BadRequest(_) => "bad_request",
            AccountError::WrongPassword => "wrong_password",
            AccountError::Disabled(_) => "account_disabled",
            AccountError::RegistrationClosed => "registration_closed",
            AccountError::InviteNeeded => "invite_required",
            AccountError::InvalidInvite => "invalid_invite",
            AccountError::Taken(_) => "name_taken",
            AccountError::NoSuchAccount(_) => "no_such_account",
            AccountError::TooManyAttempts(_) => "rate_limited",
            AccountError::SignedOut(_) => "signed_out",
            AccountError::Token(AuthError::Expired(_)) => "token_expired",
            AccountError::Token(_) => "unauthorized",
            AccountError::Busy | AccountError::Unavailable(_) => "overloaded",
        }
    }
}

impl From<StoreFailure> for AccountError {
    fn from(failure: StoreFailure) -> Self {
        match failure {
            StoreFailure::Taken => AccountError::Taken(String::new()),
            StoreFailure::NoSuchAccount => AccountError::NoSuchAccount(String::new()),
            StoreFailure::InvalidInvite => AccountError::InvalidInvite,
            StoreFailure::Unavailable(detail) => AccountError::Unavailable(detail),
        }
    }
}

impl From<Refusal> for AccountError {
    /// The same refusal where an HTTP endpoint meets it (`/ticket`, a
    /// browser's sign-in).
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Disabled(why) => AccountError::Disabled(why),
            Refusal::SignedOut(why) => AccountError::SignedOut(why.to_string()),
            Refusal::Unavailable(detail) => AccountError::Unavailable(detail),
        }
    }
}

/// Why a token may not open or keep a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Disabled(String),
    SignedOut(&'static str),
    Unavailable(String),
}

impl Refusal {
    pub fn close_code(&self) -> CloseCode {
        match self {
            Refusal::Disabled(_) => CloseCode::AccountDisabled,
            Refusal::SignedOut(_) => CloseCode::Unauthorized,
            Refusal::Unavailable(_) => CloseCode::InternalError,
        }
    }

    pub fn reason(&self) -> String {
        match self {
            Refusal::Disabled(why) => format!("account_disabled: the operator disabled this account: {why}"),
            Refusal::SignedOut(why) => format!("unauthorized: {why}; log in again"),
            Refusal::Unavailable(detail) => format!("internal_error: cannot check the account ({detail}); retry"),
        }
    }
}
