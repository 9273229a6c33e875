//! The WebSocket upgrade (RFC 6455, 4.2): whether a request is one, whether
//! it may be (version 13, a key, an allowed `Origin`, one of the protocol's
//! subprotocols), the `101 Switching Protocols` answer, and what the socket
//! will need once hyper hands it over — the codec, and the token or ticket.

use bytes::Bytes;
use hearth_protocol::Codec;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Request, Response, StatusCode};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::http::{Answer, Origins, bearer_of, header_text, text};

/// An upgrade answered `101`: what the connection becomes once hyper hands
/// its socket over.
pub(super) struct Upgrade {
    pub(super) codec: Codec,
    pub(super) token: Option<String>,
    /// The token came as a one-use `?ticket=`.
    pub(super) ticket: bool,
    pub(super) socket: OnUpgrade,
}

/// Whether `request` asks to become a WebSocket (`Upgrade: websocket`).
pub(super) fn asks_for_websocket(request: &Request<Incoming>) -> bool {
    has_token(request, header::UPGRADE, "websocket")
}

fn has_token(request: &Request<Incoming>, name: header::HeaderName, token: &str) -> bool {
    request
        .headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Answers an upgrade request: `101` and what it becomes, or a refusal that
/// says why.
pub(super) fn answer(mut request: Request<Incoming>, origins: &Origins) -> (Answer, Option<Upgrade>) {
    let refuse = |status: StatusCode, why: String| (text(status, why), None);
    if request.method() != Method::GET {
        return refuse(StatusCode::BAD_REQUEST, "a WebSocket upgrade is a GET request\n".into());
    }
    if !has_token(&request, header::CONNECTION, "upgrade") {
        return refuse(StatusCode::BAD_REQUEST, "a WebSocket upgrade needs Connection: Upgrade\n".into());
    }
    let Some(key) = header_text(&request, header::SEC_WEBSOCKET_KEY).filter(|k| !k.is_empty()) else {
        return refuse(StatusCode::BAD_REQUEST, "a WebSocket upgrade needs Sec-WebSocket-Key\n".into());
    };
    let accept = derive_accept_key(key.as_bytes());
    if header_text(&request, header::SEC_WEBSOCKET_VERSION) != Some("13") {
        let (mut answer, none) =
            refuse(StatusCode::UPGRADE_REQUIRED, "this server speaks WebSocket version 13\n".into());
        answer.headers_mut().insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return (answer, none);
    }
    // Browsers say which page opened the socket; a page on another site must not
    // use a member's credentials here (cross-site WebSocket hijacking). The
    // server's own page may; clients that are not browsers send no Origin.
    if let Some(origin) = header_text(&request, header::ORIGIN)
        && !origins.allow(origin)
    {
        let allows = if origins.allowed.is_empty() {
            "only its own pages (see --allowed-origins)".to_string()
        } else {
            format!("its own pages and {}", origins.allowed.join(", "))
        };
        let why = format!("origin {origin:?} is not allowed to open a WebSocket here; the operator allows {allows}");
        return refuse(StatusCode::FORBIDDEN, why);
    }
    let offers = request.headers().get_all(header::SEC_WEBSOCKET_PROTOCOL).iter().filter_map(|v| v.to_str().ok());
    let (codec, echo) = match Codec::negotiate(offers) {
        Ok(negotiated) => negotiated,
        Err(error) => return refuse(StatusCode::BAD_REQUEST, error.to_string()),
    };
    let (token, ticket) = token_from(&request);
    let socket = hyper::upgrade::on(&mut request);
    let mut answer = Response::new(Full::new(Bytes::new()));
    *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = answer.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if echo {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(codec.subprotocol()));
    }
    (answer, Some(Upgrade { codec, token, ticket, socket }))
}

/// The token from `Authorization: Bearer ...`, else from the `token` query
/// parameter (browsers cannot set headers on a WebSocket), or a one-use
/// `ticket`.
fn token_from(request: &Request<Incoming>) -> (Option<String>, bool) {
    if let Some(bearer) = header_text(request, header::AUTHORIZATION).and_then(bearer_of) {
        return (Some(bearer), false);
    }
    let query =
        |name: &str| request.uri().query()?.split('&').find_map(|pair| pair.strip_prefix(name).map(str::to_string));
    match query("ticket=") {
        Some(ticket) => (Some(ticket), true),
        None => (query("token="), false),
    }
}
