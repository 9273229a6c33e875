//! The WebSocket upgrade (RFC 6455, 4.2): whether a request is one, whether
//! it may be (a GET over HTTP/1.1, version 13, a 16-byte key, an allowed
//! `Origin`, one of the protocol's subprotocols, at most one credential), the
//! `101 Switching Protocols` answer, and what the socket will need once hyper
//! hands it over — the codec, and the token or ticket.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use hearth_protocol::Codec;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Request, Response, StatusCode, Version};
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
    // RFC 6455 asks for HTTP/1.1 at least; an HTTP/1.0 connection cannot be
    // handed over, and the client would get a 101 and then silence.
    if request.version() < Version::HTTP_11 {
        return refuse(StatusCode::BAD_REQUEST, "a WebSocket upgrade needs HTTP/1.1\n".into());
    }
    if !has_token(&request, header::CONNECTION, "upgrade") {
        return refuse(StatusCode::BAD_REQUEST, "a WebSocket upgrade needs Connection: Upgrade\n".into());
    }
    let Some(key) = header_text(&request, header::SEC_WEBSOCKET_KEY).filter(|k| !k.is_empty()) else {
        return refuse(StatusCode::BAD_REQUEST, "a WebSocket upgrade needs Sec-WebSocket-Key\n".into());
    };
    if !STANDARD.decode(key).is_ok_and(|nonce| nonce.len() == 16) {
        let why = "Sec-WebSocket-Key must be 16 random bytes in base64 (24 characters)\n";
        return refuse(StatusCode::BAD_REQUEST, why.into());
    }
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
    let (token, ticket) = match credential_of(&request) {
        Ok(credential) => credential,
        Err(why) => return refuse(StatusCode::BAD_REQUEST, why.into()),
    };
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

/// The connection's one credential: the token from `Authorization: Bearer
/// ...`, or from the `token` query parameter (browsers cannot set headers on
/// a WebSocket), or a one-use `ticket`; and whether it is a ticket. Two of
/// them (two headers, a header and a parameter, a ticket and a token, one
/// parameter twice) are refused: which one counted would be a guess, and one
/// of them may not be the member's.
fn credential_of(request: &Request<Incoming>) -> Result<(Option<String>, bool), &'static str> {
    let headers = request.headers().get_all(header::AUTHORIZATION).iter().count();
    let mut params = request.uri().query().unwrap_or_default().split('&').filter_map(|pair| {
        let ticket = pair.strip_prefix("ticket=").map(|value| (value, true));
        ticket.or_else(|| pair.strip_prefix("token=").map(|value| (value, false)))
    });
    match (headers, params.next(), params.next()) {
        (0, None, _) => Ok((None, false)),
        (1, None, _) => Ok((header_text(request, header::AUTHORIZATION).and_then(bearer_of), false)),
        (0, Some((value, ticket)), None) => Ok((Some(value.to_string()), ticket)),
        _ => Err("give one credential: an Authorization header, a ?ticket= or a ?token=, not two\n"),
    }
}
