//! The accounts' HTTP endpoints, JSON in and out, on the WebSocket port (and
//! the admin port): `/auth/...` for people (register, log in, refresh, change
//! password) and `/admin/...` for the operator, who authenticates with an
//! operator token (`hearth-server accounts ...` mints one from the server's
//! secret for each command). The transport frames the HTTP; this module only
//! routes and answers.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::{AccountError, Accounts, Tokens};
use crate::auth::{self, Secret, TokenKind};

/// An answer: the HTTP status and a JSON body.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    fn ok(status: u16, body: serde_json::Value) -> Answer {
        Answer { status, body: body.to_string() }
    }

    pub(crate) fn error(error: &AccountError) -> Answer {
        let mut body = json!({ "error": error.code(), "message": error.to_string() });
        let retry_after_ms = match error {
            AccountError::TooManyAttempts(secs) => Some(secs * 1000),
            AccountError::Busy | AccountError::Unavailable(_) => Some(2000),
            _ => None,
        };
        if let Some(ms) = retry_after_ms {
            body["retry_after_ms"] = json!(ms);
        }
        Answer { status: error.status(), body: body.to_string() }
    }
}

/// Whether `path` is one of this module's (so the transport reads a body for it).
pub fn serves(path: &str) -> bool {
    path.starts_with("/auth/") || path.starts_with("/admin/")
}

/// `register`'s body, here and in a browser's sign-in.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Register {
    pub(crate) name: String,
    pub(crate) password: String,
    #[serde(default)]
    pub(crate) invite: Option<String>,
}

/// `login`'s body, here and in a browser's sign-in.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    pub(crate) name: String,
    pub(crate) password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Refresh {
    refresh_token: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangePassword {
    name: String,
    password: String,
    new_password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Disable {
    name: String,
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Enable {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewInvite {
    #[serde(default = "one")]
    uses: u32,
    /// Seconds; a week by default.
    #[serde(default = "a_week")]
    valid_for_secs: u64,
}

fn one() -> u32 {
    1
}

fn a_week() -> u64 {
    7 * 24 * 3600
}

pub(crate) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, AccountError> {
    // serde reads a struct from a JSON array too, by its fields' positions
    // (`["ada", "secret"]` as a login); a body names its fields.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(AccountError::BadRequest("the body is not the JSON expected: it must be an object".into()));
    }
    serde_json::from_slice(body)
        .map_err(|e| AccountError::BadRequest(format!("the body is not the JSON expected: {e}")))
}

fn tokens(tokens: Tokens) -> serde_json::Value {
    serde_json::to_value(tokens).expect("tokens serialise")
}

/// Answers `method path` with `body`; `bearer` is the `Authorization` token.
pub async fn answer(
    accounts: &Accounts,
    secret: &Secret,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: &[u8],
) -> Answer {
    const ENDPOINTS: [&str; 8] = [
        "/auth/register",
        "/auth/login",
        "/auth/refresh",
        "/auth/password",
        "/admin/accounts",
        "/admin/accounts/disable",
        "/admin/accounts/enable",
        "/admin/invites",
    ];
    if !ENDPOINTS.contains(&path) {
        let message = format!("no endpoint {path}; see PROTOCOL.md, \"Accounts\"");
        return Answer::ok(404, json!({ "error": "not_found", "message": message }));
    }
    let result = async {
        if path.starts_with("/admin/") {
            let token = bearer.ok_or(AccountError::Token(auth::AuthError::Missing))?;
            auth::verify_kind_at(secret, token, TokenKind::Admin, accounts.now_secs())?;
        }
        match (method, path) {
            ("POST", "/auth/register") => {
                let request: Register = parse(body)?;
                let made = accounts.register(&request.name, &request.password, request.invite).await?;
                Ok((201, tokens(made)))
            }
            ("POST", "/auth/login") => {
                let request: Login = parse(body)?;
                Ok((200, tokens(accounts.login(&request.name, &request.password).await?)))
            }
            ("POST", "/auth/refresh") => {
                let request: Refresh = parse(body)?;
                Ok((200, tokens(accounts.refresh(&request.refresh_token).await?)))
            }
            ("POST", "/auth/password") => {
                let request: ChangePassword = parse(body)?;
                let changed = accounts.change_password(&request.name, &request.password, &request.new_password).await?;
                Ok((200, tokens(changed)))
            }
            ("GET", "/admin/accounts") => {
                let list: Vec<serde_json::Value> = accounts
                    .list()
                    .await?
                    .into_iter()
                    .map(|a| json!({ "name": a.name, "created_at": a.created_at, "disabled": a.disabled }))
                    .collect();
                Ok((200, json!({ "accounts": list })))
            }
            ("POST", "/admin/accounts/disable") => {
                let request: Disable = parse(body)?;
                let account = accounts.disable(&request.name, &request.reason).await?;
                Ok((200, json!({ "name": account.name, "disabled": account.disabled })))
            }
            ("POST", "/admin/accounts/enable") => {
                let request: Enable = parse(body)?;
                let account = accounts.enable(&request.name).await?;
                Ok((200, json!({ "name": account.name, "disabled": account.disabled })))
            }
            ("POST", "/admin/invites") => {
                let request: NewInvite = parse(body)?;
                let valid_for = std::time::Duration::from_secs(request.valid_for_secs.min(365 * 24 * 3600));
                let invite = accounts.invite(request.uses, valid_for).await?;
                Ok((201, json!({ "code": invite.code, "uses": invite.uses_left, "expires_at": invite.expires_at })))
            }
            (
                _,
                "/auth/register"
                | "/auth/login"
                | "/auth/refresh"
                | "/auth/password"
                | "/admin/accounts/disable"
                | "/admin/accounts/enable"
                | "/admin/invites",
            ) => Err(AccountError::BadRequest(format!("{path} takes POST with a JSON body"))),
            _ => Ok((
                404,
                json!({ "error": "not_found", "message": format!("no endpoint {path}; see README, \"Accounts\"") }),
            )),
        }
    };
    match result.await {
        Ok((status, body)) => Answer::ok(status, body),
        Err(error) => {
            if matches!(error, AccountError::Token(_) | AccountError::WrongPassword) {
                crate::metrics::get().auth_failures.increment(1);
            }
            Answer::error(&error)
        }
    }
}
