//! A browser's sign-in (`/auth/session/...`): the same accounts as
//! `/auth/...`, with the long-lived credential kept where the page's script
//! cannot read it. The refresh token (or a token the operator minted and the
//! member pasted once) lives in an `HttpOnly`, `SameSite=Strict` cookie
//! scoped to these endpoints; the page gets only short access tokens, which
//! it holds in memory and trades for one-use WebSocket tickets.
//!
//! Every endpoint here acts on the cookie, so each one first checks that the
//! request comes from the server's own page (or one the operator listed):
//! `Origin`, or `Sec-Fetch-Site: same-origin` where a browser sends no
//! `Origin`. A request with neither is refused — a browser always sends one.

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::http::{Answer, Origins, forbidden_origin, header_text, json, json_body, no_store, status};
use crate::Shared;
use crate::accounts::api::{Login, Register};
use crate::accounts::{AccountError, Tokens};
use crate::auth::{self, AuthError, TokenKind};

/// The cookie's name and the one path it is sent to.
const COOKIE: &str = "hearth_session";
const COOKIE_PATH: &str = "/auth/session";

/// Whether `path` is one of this module's.
pub(super) fn serves(path: &str) -> bool {
    path.starts_with("/auth/session/")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangePassword {
    password: String,
    new_password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Paste {
    token: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Nothing {}

/// What an endpoint does to the cookie besides answering.
enum Cookie {
    Keep,
    Set { value: String, expires_at_ms: u64 },
    Clear,
}

/// Answers `/auth/session/...`.
pub(super) async fn answer(shared: &Shared, request: Request<Incoming>) -> Answer {
    let origins = Origins::of(shared, &request);
    match header_text(&request, header::ORIGIN) {
        Some(origin) if !origins.allow(origin) => return forbidden_origin(origin),
        Some(_) => {}
        None if header_text(&request, header::HeaderName::from_static("sec-fetch-site")) == Some("same-origin") => {}
        None => {
            return refusal(
                StatusCode::FORBIDDEN,
                "forbidden",
                "a cookie sign-in needs the page's Origin (or Sec-Fetch-Site: same-origin); clients that are not \
                 browsers use /auth/login and /auth/refresh",
            );
        }
    }
    if request.method() != Method::POST {
        return refusal(StatusCode::METHOD_NOT_ALLOWED, "bad_request", "these endpoints take POST with a JSON body");
    }
    let path = request.uri().path().to_string();
    let cookie = cookie_of(&request);
    // Secure whenever the page is on https: served so here, or through a
    // proxy that ended TLS (the browser's Origin says which).
    let tls = shared.tls.is_some() || header_text(&request, header::ORIGIN).is_some_and(|o| o.starts_with("https://"));
    let body = match json_body(request).await {
        Ok(body) => body,
        Err(refusal) => return refusal,
    };
    let accounts = &shared.accounts;
    let result: Result<(StatusCode, serde_json::Value, Cookie), AccountError> = async {
        match path.as_str() {
            "/auth/session/register" => {
                let request: Register = parse(&body)?;
                let tokens = accounts.register(&request.name, &request.password, request.invite).await?;
                Ok(signed_in(StatusCode::CREATED, tokens))
            }
            "/auth/session/login" => {
                let request: Login = parse(&body)?;
                Ok(signed_in(StatusCode::OK, accounts.login(&request.name, &request.password).await?))
            }
            "/auth/session/refresh" => {
                let _: Nothing = parse(&body)?;
                let held = cookie.ok_or(AccountError::Token(AuthError::Missing))?;
                refresh(shared, &held).await
            }
            "/auth/session/password" => {
                let request: ChangePassword = parse(&body)?;
                let held = cookie.ok_or(AccountError::Token(AuthError::Missing))?;
                let secret = &shared.config.token_secret;
                let verified = auth::verify_kind_at(secret, &held, TokenKind::Refresh, accounts.now_secs())?;
                let changed =
                    accounts.change_password(verified.user.as_str(), &request.password, &request.new_password).await?;
                Ok(signed_in(StatusCode::OK, changed))
            }
            "/auth/session/token" => {
                let request: Paste = parse(&body)?;
                let secret = &shared.config.token_secret;
                let verified = auth::verify_kind_at(secret, &request.token, TokenKind::Access, accounts.now_secs())?;
                accounts.admit(&verified).await?;
                let expires_at_ms = verified.expires.saturating_mul(1000);
                let body = access(verified.user.as_str(), &request.token, expires_at_ms);
                Ok((StatusCode::OK, body, Cookie::Set { value: request.token, expires_at_ms }))
            }
            "/auth/session/logout" => {
                let _: Nothing = parse(&body)?;
                Ok((StatusCode::OK, json!({}), Cookie::Clear))
            }
            _ => Err(AccountError::BadRequest(format!(
                "no endpoint {path}; see PROTOCOL.md, \"Signing in from a browser\""
            ))),
        }
    }
    .await;
    let (code, body, cookie) = match result {
        Ok(done) => done,
        Err(error) => {
            if matches!(error, AccountError::Token(_) | AccountError::WrongPassword) {
                crate::metrics::get().auth_failures.increment(1);
            }
            // A cookie that no longer signs anyone in is dropped with the refusal.
            let stale =
                matches!(error, AccountError::Token(_) | AccountError::SignedOut(_) | AccountError::Disabled(_));
            let body = json!({ "error": error.code(), "message": error.to_string() });
            (status(error.status()), body, if stale { Cookie::Clear } else { Cookie::Keep })
        }
    };
    let mut answer = no_store(json(code, body.to_string()));
    let now_ms = accounts.now_secs().saturating_mul(1000);
    let set = match cookie {
        Cookie::Keep => None,
        Cookie::Set { value, expires_at_ms } => {
            let max_age = expires_at_ms.saturating_sub(now_ms) / 1000;
            Some(set_cookie(&value, max_age, tls))
        }
        Cookie::Clear => Some(set_cookie("", 0, tls)),
    };
    if let Some(set) = set.and_then(|s| HeaderValue::from_str(&s).ok()) {
        answer.headers_mut().insert(header::SET_COOKIE, set);
    }
    answer
}

/// A new access token for the cookie's credential: a refresh token buys a
/// new pair (the cookie moves on to the new refresh token); a pasted token
/// is handed back while it lasts and its account may connect.
async fn refresh(shared: &Shared, held: &str) -> Result<(StatusCode, serde_json::Value, Cookie), AccountError> {
    let secret = &shared.config.token_secret;
    let now = shared.accounts.now_secs();
    match auth::verify_kind_at(secret, held, TokenKind::Refresh, now) {
        Ok(_) => Ok(signed_in(StatusCode::OK, shared.accounts.refresh(held).await?)),
        Err(AuthError::Expired(why)) => Err(AccountError::Token(AuthError::Expired(why))),
        Err(_) => {
            let verified = auth::verify_kind_at(secret, held, TokenKind::Access, now)?;
            shared.accounts.admit(&verified).await?;
            let expires_at_ms = verified.expires.saturating_mul(1000);
            Ok((StatusCode::OK, access(verified.user.as_str(), held, expires_at_ms), Cookie::Keep))
        }
    }
}

/// A login's answer: the access token in the body, the refresh token in
/// the cookie only.
fn signed_in(code: StatusCode, tokens: Tokens) -> (StatusCode, serde_json::Value, Cookie) {
    let body = access(tokens.user.as_str(), &tokens.token, tokens.expires_at);
    (code, body, Cookie::Set { value: tokens.refresh_token, expires_at_ms: tokens.refresh_expires_at })
}

fn access(user: &str, token: &str, expires_at: u64) -> serde_json::Value {
    json!({ "user": user, "token": token, "expires_at": expires_at })
}

fn set_cookie(value: &str, max_age_secs: u64, tls: bool) -> String {
    let secure = if tls { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path={COOKIE_PATH}; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{secure}")
}

/// The session cookie's value, if the request carries one.
fn cookie_of(request: &Request<Incoming>) -> Option<String> {
    request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('=').map(str::to_string))
        .filter(|v| !v.is_empty())
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, AccountError> {
    // An empty body is `{}`: refresh and sign-out carry nothing.
    let body = if body.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { body };
    crate::accounts::api::parse(body)
}

fn refusal(code: StatusCode, error: &str, message: &str) -> Answer {
    json(code, json!({ "error": error, "message": message }).to_string())
}
