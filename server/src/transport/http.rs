//! The plain HTTP the server answers, on hyper: the operator's endpoints
//! (`/healthz`, `/readyz`, `/metrics`), the accounts' (`/auth/...`,
//! `/admin/...`), a browser's ticket (`/ticket`) and its CORS preflight, and a
//! short explanation for anything else. A WebSocket upgrade is handed to
//! `upgrade`. hyper reads and frames the request (Content-Length or chunked,
//! a head over 8 KiB answered 431, two lengths that disagree refused); this
//! module only decides what each request gets.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::Shared;
use crate::auth::{self, AuthError};

/// An answer's type: a whole body, small and in memory.
pub(super) type Answer = Response<Full<Bytes>>;

/// Largest body the accounts' endpoints read.
const MAX_API_BODY: usize = 8 * 1024;

/// What unknown paths say, for someone who typed the address.
const ABOUT: &str = "This is a Hearth chat server: its web page is at /. It speaks WebSocket here: connect \
                     with the subprotocol hearth.v1.msgpack or hearth.v1.json and a token (Authorization: Bearer \
                     TOKEN, or ?token=). The protocol is described in PROTOCOL.md in the Hearth repository. For \
                     operators: /healthz (alive), /readyz (ready to serve), /metrics (Prometheus).\n";

/// Marks an answer after which the connection may carry another request:
/// the page's files, which a browser fetches several of in a row.
#[derive(Debug, Clone, Copy)]
pub(super) struct KeepAlive;

/// Which port asks: the main one answers everything; the admin port
/// (`--admin-listen`) only the operator's and the accounts' endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Port {
    Main,
    Admin,
}

/// A plain-text answer.
pub(super) fn text(status: StatusCode, body: impl Into<String>) -> Answer {
    with_type(status, "text/plain; charset=utf-8", body.into())
}

pub(super) fn json(status: StatusCode, body: String) -> Answer {
    with_type(status, "application/json", body)
}

fn with_type(status: StatusCode, content_type: &'static str, body: String) -> Answer {
    let mut answer = Response::new(Full::new(Bytes::from(body)));
    *answer.status_mut() = status;
    answer.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    answer
}

pub(super) fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The token of an `Authorization: Bearer TOKEN` value; the scheme is
/// case-insensitive (RFC 9110).
pub(super) fn bearer_of(value: &str) -> Option<String> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
}

/// A header's value as text, if present and readable.
pub(super) fn header_text(request: &Request<Incoming>, name: header::HeaderName) -> Option<&str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Whether a browser page at `origin` may use this server: a page it serves
/// itself (`own`: the `Host` the request was addressed to, under http or
/// https alike, since a proxy in front may have ended TLS), or one the
/// operator listed exactly (scheme, host and port; case-insensitive), or
/// any when the list holds `*`.
pub(super) fn origin_allowed(origin: &str, own: Option<&str>, allowed: &[String]) -> bool {
    let origin = origin.trim_end_matches('/');
    let same = |a: &str| a.trim_end_matches('/').eq_ignore_ascii_case(origin);
    let host = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
    let own = own.zip(host).is_some_and(|(own, host)| own.eq_ignore_ascii_case(host));
    own || allowed.iter().any(|a| a == "*" || same(a))
}

/// The host a request was addressed to (its `Host` header): the pages this
/// server serves have it as their origin's host.
pub(super) fn own_host(request: &Request<Incoming>) -> Option<String> {
    let host = header_text(request, header::HOST)?;
    let valid = !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    valid.then(|| host.to_string())
}

/// The origins a request's page may have: its own, and the operator's list.
pub(super) struct Origins<'a> {
    pub(super) own: Option<String>,
    pub(super) allowed: &'a [String],
}

impl<'a> Origins<'a> {
    pub(super) fn of(shared: &'a Shared, request: &Request<Incoming>) -> Origins<'a> {
        Origins { own: own_host(request), allowed: &shared.config.allowed_origins }
    }

    pub(super) fn allow(&self, origin: &str) -> bool {
        origin_allowed(origin, self.own.as_deref(), self.allowed)
    }
}

/// The CORS headers for `origin`, when it is allowed and another site (none
/// otherwise, which the browser reads as a refusal; its own pages need none).
fn allow_cors(answer: &mut Answer, origin: Option<&str>, origins: &Origins) {
    let Some(origin) = origin.filter(|o| origins.allow(o)) else { return };
    let Ok(origin) = HeaderValue::from_str(origin) else { return };
    let headers = answer.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("authorization, content-type"));
    headers.insert(header::VARY, HeaderValue::from_static("origin"));
}

pub(super) fn no_store(mut answer: Answer) -> Answer {
    answer.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    answer
}

/// The answer to a plain HTTP request (not an upgrade) on `port`.
pub(super) async fn answer(shared: &Shared, port: Port, request: Request<Incoming>) -> Answer {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let get = method == Method::GET || method == Method::HEAD;
    match (port, path.as_str()) {
        (_, "/healthz") if get => text(StatusCode::OK, "ok\n"),
        (_, "/readyz") if get => ready(shared).await,
        (_, "/metrics") if get => metrics(shared),
        (_, path) if super::signin::serves(path) => super::signin::answer(shared, request).await,
        (_, path) if crate::accounts::api::serves(path) && method == Method::OPTIONS => preflight(shared, &request),
        (_, path) if crate::accounts::api::serves(path) => accounts(shared, request).await,
        (Port::Admin, _) => text(
            StatusCode::NOT_FOUND,
            "this is Hearth's admin port: /healthz, /readyz, /metrics, /auth/... and /admin/... only; chat on the main port\n",
        ),
        (Port::Main, "/ticket") if method == Method::OPTIONS => preflight(shared, &request),
        (Port::Main, "/ticket") if method == Method::POST => ticket(shared, &request).await,
        (Port::Main, path) if get && path.starts_with("/export/") => export(shared, &request).await,
        (Port::Main, path) if get => match crate::web::Site::get().answer(path) {
            Some(file) => page(file, &request),
            None => text(StatusCode::NOT_FOUND, format!("nothing here. {ABOUT}")),
        },
        (Port::Main, _) => text(StatusCode::BAD_REQUEST, format!("not a WebSocket upgrade. {ABOUT}")),
    }
}

async fn ready(shared: &Shared) -> Answer {
    let check = tokio::time::timeout(Duration::from_secs(2), shared.registry.broker().ready()).await;
    match check {
        Ok(Ok(())) => text(StatusCode::OK, "ready\n"),
        Ok(Err(error)) => text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {error}\n")),
        Err(_) => text(StatusCode::SERVICE_UNAVAILABLE, "not ready: the store did not answer in 2 s\n"),
    }
}

fn metrics(shared: &Shared) -> Answer {
    crate::metrics::get().rooms_loaded.set(shared.registry.loaded().len() as f64);
    match crate::metrics::render() {
        Some(text) => with_type(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", text),
        None => self::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics unavailable: another metrics recorder was installed in this process first\n",
        ),
    }
}

/// `OPTIONS /ticket` or `/auth/...`: the browser's CORS preflight.
fn preflight(shared: &Shared, request: &Request<Incoming>) -> Answer {
    let mut answer = text(StatusCode::NO_CONTENT, "");
    allow_cors(&mut answer, header_text(request, header::ORIGIN), &Origins::of(shared, request));
    answer
}

/// `POST /ticket` with a token: a short-lived, one-use ticket for a browser's
/// WebSocket URL (`?ticket=`), so no long-lived token ends up in a URL (and
/// in access logs or a console).
async fn ticket(shared: &Shared, request: &Request<Incoming>) -> Answer {
    let origin = header_text(request, header::ORIGIN);
    let origins = Origins::of(shared, request);
    if let Some(origin) = origin.filter(|o| !origins.allow(o)) {
        return text(StatusCode::FORBIDDEN, format!("origin {origin:?} is not allowed here (see --allowed-origins)\n"));
    }
    let bearer = header_text(request, header::AUTHORIZATION).and_then(bearer_of);
    let verified = bearer.ok_or(AuthError::Missing).and_then(|token| {
        let now = shared.accounts.now_secs();
        auth::verify_kind_at(&shared.config.token_secret, &token, auth::TokenKind::Access, now)
    });
    let bought = match verified {
        Ok(verified) => shared.accounts.ticket(&verified).await,
        Err(error) => Err(error.into()),
    };
    let mut answer = match bought {
        Ok((ticket, ttl)) => {
            let body = format!(r#"{{"ticket":"{ticket}","expires_in_ms":{}}}"#, ttl.as_millis());
            no_store(json(StatusCode::OK, body))
        }
        Err(error) => {
            crate::metrics::get().auth_failures.increment(1);
            text(status(error.status()), format!("{error}\n"))
        }
    };
    allow_cors(&mut answer, origin, &origins);
    answer
}

/// `GET /export/room/NAME.jsonl` or `.html` (the room's owner) and `GET
/// /export/me.json` (anyone: their own data), with an access token
/// (`Authorization: Bearer`). Never cached; a download, not a page.
async fn export(shared: &Shared, request: &Request<Incoming>) -> Answer {
    let bearer = header_text(request, header::AUTHORIZATION).and_then(bearer_of);
    let verified = bearer.ok_or(AuthError::Missing).and_then(|token| {
        auth::verify_kind_at(&shared.config.token_secret, &token, auth::TokenKind::Access, shared.accounts.now_secs())
    });
    let user = match verified {
        Ok(verified) => match shared.accounts.admit(&verified).await {
            Ok(()) => verified.user,
            Err(refusal) => return text(StatusCode::UNAUTHORIZED, format!("{}\n", refusal.reason())),
        },
        Err(error) => {
            crate::metrics::get().auth_failures.increment(1);
            return text(StatusCode::UNAUTHORIZED, format!("{error}; send Authorization: Bearer ACCESS_TOKEN\n"));
        }
    };
    let now = shared.clock.now();
    let broker = shared.registry.broker().as_ref();
    let path = request.uri().path();
    let refused = |status, why: String| text(status, format!("{why}\n"));
    let answer = if path == "/export/me.json" {
        let mut rooms = Vec::new();
        let names = match shared.registry.rooms_of(&user).await {
            Ok(names) => names,
            Err(error) => return refused(StatusCode::SERVICE_UNAVAILABLE, error.message),
        };
        for name in names {
            match shared.registry.get(&name).await {
                Ok(room) => rooms.push(room),
                Err(error) => return refused(StatusCode::SERVICE_UNAVAILABLE, error.message),
            }
        }
        match crate::export::member_data(broker, &rooms, &user, now).await {
            Ok(data) => attachment(
                "application/json",
                &format!("hearth-{user}.json"),
                serde_json::to_string_pretty(&data).unwrap_or_default(),
            ),
            Err(error) => refused(StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
        }
    } else {
        let Some((name, format)) = path.strip_prefix("/export/room/").and_then(|rest| rest.rsplit_once('.')) else {
            return refused(StatusCode::NOT_FOUND, "export /export/room/NAME.jsonl, .html, or /export/me.json".into());
        };
        let Ok(name) = hearth_protocol::RoomId::new(name) else {
            return refused(StatusCode::NOT_FOUND, format!("{name:?} is not a room name"));
        };
        let room = match shared.registry.get(&name).await {
            Ok(room) => room,
            Err(error) => return refused(StatusCode::NOT_FOUND, error.message),
        };
        let (owner, info) = room.decide(|s| (s.record.owner.clone(), s.info()));
        if owner != user {
            return refused(
                StatusCode::FORBIDDEN,
                format!("only {name}'s owner exports it; export your own data at /export/me.json"),
            );
        }
        let events = match crate::export::room_history(broker, &room).await {
            Ok(events) => events,
            Err(error) => return refused(StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
        };
        match format {
            "jsonl" => {
                attachment("application/x-ndjson", &format!("hearth-{name}.jsonl"), crate::export::jsonl(&events))
            }
            "html" => attachment(
                "text/html; charset=utf-8",
                &format!("hearth-{name}.html"),
                crate::export::html(&info, &events, now),
            ),
            other => refused(StatusCode::NOT_FOUND, format!("no export as {other:?}: jsonl or html")),
        }
    };
    no_store(answer)
}

/// A file to save: its type, its name, and a policy that runs nothing in it.
fn attachment(content_type: &'static str, file_name: &str, body: String) -> Answer {
    let mut answer = with_type(StatusCode::OK, content_type, body);
    let headers = answer.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; sandbox"),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    answer
}

/// The accounts' endpoints (`accounts::api`): JSON in, JSON out.
async fn accounts(shared: &Shared, request: Request<Incoming>) -> Answer {
    let origins = Origins::of(shared, &request);
    let origin = header_text(&request, header::ORIGIN).map(str::to_string);
    // A page on a site the operator did not name never gets to use a
    // member's password or refresh token here (CSRF), nor the operator's
    // endpoints.
    if let Some(origin) = origin.as_deref().filter(|o| !origins.allow(o)) {
        return forbidden_origin(origin);
    }
    let (method, path) = (request.method().to_string(), request.uri().path().to_string());
    let bearer = header_text(&request, header::AUTHORIZATION).and_then(bearer_of);
    if path == "/admin/import/discord" {
        return no_store(import(shared, &method, bearer.as_deref(), request).await);
    }
    let body = match json_body(request).await {
        Ok(body) => body,
        Err(refusal) => return refusal,
    };
    let secret = &shared.config.token_secret;
    if path == "/admin/accounts/erase" {
        return no_store(erase(shared, &method, bearer.as_deref(), &body).await);
    }
    let answer = crate::accounts::api::answer(&shared.accounts, secret, &method, &path, bearer.as_deref(), &body).await;
    let mut http = no_store(json(status(answer.status), answer.body));
    if path.starts_with("/auth/") {
        allow_cors(&mut http, origin.as_deref(), &origins);
    }
    http
}

/// Checks an operator's token and the method (`POST`).
fn operator(shared: &Shared, method: &str, bearer: Option<&str>) -> Result<(), crate::accounts::AccountError> {
    use crate::accounts::AccountError;
    let token = bearer.ok_or(AccountError::Token(crate::auth::AuthError::Missing))?;
    crate::auth::verify_kind_at(
        &shared.config.token_secret,
        token,
        crate::auth::TokenKind::Admin,
        shared.accounts.now_secs(),
    )?;
    if method != "POST" {
        return Err(AccountError::BadRequest("this endpoint takes POST with a JSON body".into()));
    }
    Ok(())
}

/// An account error as the operator's endpoints answer it.
fn account_error(error: &crate::accounts::AccountError) -> Answer {
    let answer = crate::accounts::api::Answer::error(error);
    json(status(answer.status), answer.body)
}

/// `POST /admin/import/discord {room, mapping, export}` (an operator's
/// token): a DiscordChatExporter export read into a room (`import`),
/// answered when it is in.
async fn import(shared: &Shared, method: &str, bearer: Option<&str>, request: Request<Incoming>) -> Answer {
    if let Err(error) = operator(shared, method, bearer) {
        return account_error(&error);
    }
    let body = match json_body_up_to(request, crate::import::MAX_IMPORT_BYTES).await {
        Ok(body) => body,
        Err(refusal) => return refusal,
    };
    let request: crate::import::Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            let message =
                format!("the body is not {{room, mapping?, export}} with a DiscordChatExporter JSON export: {error}");
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({ "error": "bad_request", "message": message }).to_string(),
            );
        }
    };
    match crate::import::discord(shared, request).await {
        Ok(outcome) => json(StatusCode::OK, serde_json::to_string(&outcome).expect("an outcome serialises")),
        Err(error @ crate::import::ImportError::NoRoom(_)) => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({ "error": "not_found", "message": error.to_string() }).to_string(),
        ),
        Err(error @ crate::import::ImportError::BadMapping(..)) => json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({ "error": "bad_request", "message": error.to_string() }).to_string(),
        ),
        Err(error) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "error": "unavailable", "message": error.to_string() }).to_string(),
        ),
    }
}

/// `POST /admin/accounts/erase {"name"}` (an admin token): the operator
/// erases an account, answered when it is done (`erasure::erase`).
async fn erase(shared: &Shared, method: &str, bearer: Option<&str>, body: &[u8]) -> Answer {
    use crate::accounts::AccountError;
    #[derive(serde::Deserialize)]
    struct Erase {
        name: String,
    }
    let result = async {
        operator(shared, method, bearer)?;
        let request: Erase = crate::accounts::api::parse(body)?;
        let user =
            hearth_protocol::UserId::new(&request.name).map_err(|e| AccountError::BadRequest(format!("name: {e}")))?;
        let erased = crate::erasure::erase(shared, &user, shared.clock.now())
            .await
            .map_err(|e| AccountError::Unavailable(e.to_string()))?;
        Ok(serde_json::json!({ "name": user, "rooms": erased.rooms, "messages": erased.messages }))
    };
    match result.await {
        Ok(body) => json(StatusCode::OK, body.to_string()),
        Err(error) => account_error(&error),
    }
}

/// `403` for a page at `origin`, which may not use this endpoint.
pub(super) fn forbidden_origin(origin: &str) -> Answer {
    let message = format!("origin {origin:?} is not allowed here (see --allowed-origins)");
    json(StatusCode::FORBIDDEN, serde_json::json!({ "error": "forbidden", "message": message }).to_string())
}

/// A request's JSON body, at most 8 KiB: or the refusal to answer with.
/// JSON only: a form on any site may post text/plain without a preflight,
/// JSON it may not.
pub(super) async fn json_body(request: Request<Incoming>) -> Result<Bytes, Answer> {
    json_body_up_to(request, MAX_API_BODY).await
}

/// A request's JSON body of at most `limit` bytes, or the refusal to answer with.
async fn json_body_up_to(request: Request<Incoming>, limit: usize) -> Result<Bytes, Answer> {
    let too_large = || text(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is over {} KiB\n", limit / 1024));
    let is_json = header_text(&request, header::CONTENT_TYPE)
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if request.method() == Method::POST && !is_json {
        return Err(json(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            r#"{"error":"bad_request","message":"send the body as Content-Type: application/json"}"#.to_string(),
        ));
    }
    // Refused before reading a byte of it when its length says it is too large.
    if request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok()) > Some(limit)
    {
        return Err(too_large());
    }
    match Limited::new(request.into_body(), limit).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(_) => Err(text(StatusCode::BAD_REQUEST, "the body did not arrive whole\n")),
    }
}

/// A file of the web page, with its caching, compression and security
/// headers; `304` when the browser's copy is current.
fn page(file: &crate::web::File, request: &Request<Incoming>) -> Answer {
    let current = header_text(request, header::IF_NONE_MATCH)
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == file.etag || t.trim() == "*"));
    let gzip = file.gzip.as_ref().filter(|_| {
        header_text(request, header::ACCEPT_ENCODING).is_some_and(|accepts| {
            accepts.split(',').any(|coding| {
                let mut parts = coding.split(';');
                let name = parts.next().unwrap_or("").trim();
                let refused =
                    parts.any(|p| matches!(p.trim().replace(' ', "").as_str(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
                name.eq_ignore_ascii_case("gzip") && !refused
            })
        })
    });
    let mut answer = match (current, gzip) {
        (true, _) => Response::new(Full::new(Bytes::new())),
        (false, Some(gzip)) => Response::new(Full::new(gzip.clone())),
        (false, None) => Response::new(Full::new(file.plain.clone())),
    };
    if current {
        *answer.status_mut() = StatusCode::NOT_MODIFIED;
    }
    let headers = answer.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(file.content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(file.caching.header()));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Ok(etag) = HeaderValue::from_str(&file.etag) {
        headers.insert(header::ETAG, etag);
    }
    if gzip.is_some() && !current {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    security_headers(&mut answer);
    answer.extensions_mut().insert(KeepAlive);
    answer
}

/// The headers every page answer carries: its policy, no sniffing, no
/// framing, no referrer to other sites, no access to the machine's sensors.
pub(super) fn security_headers(answer: &mut Answer) {
    let headers = answer.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(crate::web::CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers
        .insert(header::HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin"));
    headers.insert(
        header::HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
    );
}
