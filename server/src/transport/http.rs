//! The plain HTTP the listener answers before (or instead of) a WebSocket
//! upgrade: reading a request head without consuming it, judging it (an
//! upgrade to hand over, an operator or account endpoint, or something to
//! explain), the endpoints' answers, and the bytes of an answer. Written by
//! hand: a request head and a small JSON body, nothing else.

use std::time::Duration;

use tokio::net::TcpStream;

use crate::Shared;
use crate::auth::{self, AuthError};

/// Longest request head the server reads: a browser's upgrade with cookies fits.
const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// What a new connection turned out to be.
pub(super) enum Opening {
    /// A WebSocket upgrade with what tungstenite needs: hand it over.
    WebSocket,
    /// Anything else gets a short HTTP answer instead of a closed socket.
    Answer(HttpAnswer),
    /// One of the operator's endpoints, answered from the server's state.
    Endpoint(Endpoint),
    /// The peer went away before sending a whole request head.
    Gone,
}

/// What operators and orchestrators ask over plain HTTP on the same port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Endpoint {
    /// `/healthz`: the process is alive and answering.
    Health,
    /// `/readyz`: it can serve: the store has not failed; in cluster mode Redis
    /// answers.
    Ready,
    /// `/metrics`: Prometheus text.
    Metrics,
    /// `POST /ticket` with a token: a short-lived, one-use ticket for a
    /// browser's WebSocket URL (`?ticket=`), so no long-lived token ends up in
    /// a URL (and in access logs or a console).
    Ticket { bearer: Option<String>, origin: Option<String> },
    /// `OPTIONS /ticket` or `/auth/...`: the browser's CORS preflight.
    Preflight { origin: Option<String> },
    /// The accounts' endpoints (`accounts::api`), whose JSON body follows
    /// the `head_bytes` of the request head.
    Api {
        method: String,
        path: String,
        bearer: Option<String>,
        origin: Option<String>,
        head_bytes: usize,
        content_length: usize,
    },
}

/// Largest body the accounts' endpoints read.
const MAX_API_BODY: usize = 8 * 1024;

/// The token of an `Authorization: Bearer TOKEN` value; the scheme is
/// case-insensitive (RFC 9110).
pub(super) fn bearer_of(value: &str) -> Option<String> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
}

/// The reason phrase of the statuses the endpoints answer with.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// The CORS headers for `origin`, when it is allowed (none otherwise, which
/// the browser reads as a refusal).
fn cors(origin: Option<&str>, allowed: &[String]) -> Vec<String> {
    match origin.filter(|o| origin_allowed(o, allowed)) {
        Some(origin) => vec![
            format!("access-control-allow-origin: {origin}"),
            "access-control-allow-methods: POST".into(),
            "access-control-allow-headers: authorization, content-type".into(),
            "vary: origin".into(),
        ],
        None => Vec::new(),
    }
}

impl Endpoint {
    /// The answer; `io` is the connection, for an endpoint that reads a body.
    pub(super) async fn answer(self, shared: &Shared, io: &mut (impl tokio::io::AsyncRead + Unpin)) -> HttpAnswer {
        match self {
            Endpoint::Api { method, path, bearer, origin, head_bytes, content_length } => {
                use tokio::io::AsyncReadExt as _;
                // A page on a site the operator did not name never gets to use a
                // member's password or refresh token here (CSRF), nor the
                // operator's endpoints.
                if let Some(origin) = origin.as_deref().filter(|o| !origin_allowed(o, &shared.config.allowed_origins)) {
                    let message = format!("origin {origin:?} is not allowed here (see --allowed-origins)");
                    let mut answer = HttpAnswer::new(
                        403,
                        "Forbidden",
                        serde_json::json!({ "error": "forbidden", "message": message }).to_string(),
                    );
                    answer.content_type = "application/json";
                    return answer;
                }
                // The head was only looked at (or is read again first): skip it.
                let mut body = vec![0u8; head_bytes + content_length];
                if io.read_exact(&mut body).await.is_err() {
                    return HttpAnswer::new(400, "Bad Request", "the body ended before its Content-Length\n");
                }
                let body = &body[head_bytes..];
                let secret = &shared.config.token_secret;
                let answer =
                    crate::accounts::api::answer(&shared.accounts, secret, &method, &path, bearer.as_deref(), body)
                        .await;
                let mut http = HttpAnswer::new(answer.status, reason_phrase(answer.status), answer.body);
                http.content_type = "application/json";
                http.extra_headers.push("cache-control: no-store".into());
                if path.starts_with("/auth/") {
                    http.extra_headers.extend(cors(origin.as_deref(), &shared.config.allowed_origins));
                }
                http
            }
            Endpoint::Health => HttpAnswer::new(200, "OK", "ok\n"),
            Endpoint::Ready => {
                let check = tokio::time::timeout(Duration::from_secs(2), shared.registry.broker().ready()).await;
                match check {
                    Ok(Ok(())) => HttpAnswer::new(200, "OK", "ready\n"),
                    Ok(Err(error)) => HttpAnswer::new(503, "Service Unavailable", format!("not ready: {error}\n")),
                    Err(_) => {
                        HttpAnswer::new(503, "Service Unavailable", "not ready: the store did not answer in 2 s\n")
                    }
                }
            }
            Endpoint::Preflight { origin } => {
                let mut answer = HttpAnswer::new(204, "No Content", "");
                answer.extra_headers = cors(origin.as_deref(), &shared.config.allowed_origins);
                answer
            }
            Endpoint::Ticket { bearer, origin } => {
                if let Some(origin) = origin.as_deref().filter(|o| !origin_allowed(o, &shared.config.allowed_origins)) {
                    return HttpAnswer::new(
                        403,
                        "Forbidden",
                        format!("origin {origin:?} is not allowed here (see --allowed-origins)\n"),
                    );
                }
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
                        let mut answer = HttpAnswer::new(200, "OK", body);
                        answer.content_type = "application/json";
                        answer.extra_headers.push("cache-control: no-store".into());
                        answer
                    }
                    Err(error) => {
                        crate::metrics::get().auth_failures.increment(1);
                        HttpAnswer::new(error.status(), reason_phrase(error.status()), format!("{error}\n"))
                    }
                };
                answer.extra_headers.extend(cors(origin.as_deref(), &shared.config.allowed_origins));
                answer
            }
            Endpoint::Metrics => {
                let metrics = crate::metrics::get();
                metrics.rooms_loaded.set(shared.registry.loaded().len() as f64);
                match crate::metrics::render() {
                    Some(text) => {
                        let mut answer = HttpAnswer::new(200, "OK", text);
                        answer.content_type = "text/plain; version=0.0.4; charset=utf-8";
                        answer
                    }
                    None => HttpAnswer::new(
                        500,
                        "Internal Server Error",
                        "metrics unavailable: another metrics recorder was installed in this process first\n",
                    ),
                }
            }
        }
    }
}

pub(super) struct HttpAnswer {
    pub(super) status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: String,
    extra_headers: Vec<String>,
}

impl HttpAnswer {
    pub(super) fn new(status: u16, reason: &'static str, body: impl Into<String>) -> HttpAnswer {
        HttpAnswer {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            extra_headers: Vec::new(),
        }
    }

    pub(super) async fn send(&self, stream: &mut (impl tokio::io::AsyncWrite + Unpin)) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        let extra: String = self.extra_headers.iter().map(|h| format!("{h}\r\n")).collect();
        let response = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\n{extra}connection: close\r\n\r\n{}",
            self.status,
            self.reason,
            self.content_type,
            self.body.len(),
            self.body
        );
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    }
}

/// Reads the request head without consuming it (tungstenite reads it again), and
/// decides whether it is a WebSocket upgrade the handshake can take.
pub(super) async fn look_at_request(stream: &TcpStream) -> Opening {
    let mut buf = vec![0u8; MAX_REQUEST_HEAD];
    let head_len = loop {
        if stream.readable().await.is_err() {
            return Opening::Gone;
        }
        let seen = match stream.peek(&mut buf).await {
            Ok(0) | Err(_) => return Opening::Gone,
            Ok(n) => n,
        };
        if let Some(end) = buf[..seen].windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        if seen == buf.len() {
            return Opening::Answer(HttpAnswer::new(
                431,
                "Request Header Fields Too Large",
                "the request head is over 8 KiB\n",
            ));
        }
        // Part of the head has arrived; the rest is usually in the next packet.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    judge_request(&String::from_utf8_lossy(&buf[..head_len]), head_len + 4)
}

/// The answer to a plain HTTP request that is none of the endpoints.
fn answer_other((method, path): (&str, &str), about: &str) -> HttpAnswer {
    match (method, path) {
        ("GET" | "HEAD", "/") => HttpAnswer::new(200, "OK", about),
        ("GET" | "HEAD", _) => HttpAnswer::new(404, "Not Found", format!("nothing here. {about}")),
        _ => HttpAnswer::new(400, "Bad Request", format!("not a WebSocket upgrade. {about}")),
    }
}

/// Reads a TLS connection's request head (which cannot be peeked at, being
/// encrypted on the wire): the bytes read, to be read again by the handshake,
/// and what they are.
pub(super) async fn read_request_head(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> Option<(Vec<u8>, Opening)> {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&chunk[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            let opening = judge_request(&String::from_utf8_lossy(&head[..end]), end + 4);
            return Some((head, opening));
        }
        if head.len() >= MAX_REQUEST_HEAD {
            let answer = HttpAnswer::new(431, "Request Header Fields Too Large", "the request head is over 8 KiB\n");
            return Some((head, Opening::Answer(answer)));
        }
    }
}

/// The answer to a request head (`head_bytes` long with its blank line): hand
/// over real upgrades, explain everything else.
fn judge_request(head: &str, head_bytes: usize) -> Opening {
    let request_line = head.split("\r\n").next().unwrap_or_default();
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let header = |name: &str| {
        head.split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    let has = |name: &str, token: &str| {
        header(name).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    // A body is framed by Content-Length only. Transfer-Encoding beside it, or
    // two lengths that disagree, is how requests get smuggled past a proxy
    // that reads them the other way: refused (RFC 9112, 6.1 and 6.3).
    let mut lengths = head
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim);
    let first_length = lengths.next();
    if lengths.any(|other| Some(other) != first_length) {
        return Opening::Answer(HttpAnswer::new(400, "Bad Request", "Content-Length is given twice, differently\n"));
    }
    if header("transfer-encoding").is_some() {
        return Opening::Answer(if first_length.is_some() {
            HttpAnswer::new(400, "Bad Request", "a request may not carry both Content-Length and Transfer-Encoding\n")
        } else {
            HttpAnswer::new(501, "Not Implemented", "Transfer-Encoding is not accepted here; send Content-Length\n")
        });
    }
    if !has("upgrade", "websocket") {
        let about = "This is a Hearth chat server. It speaks WebSocket here: connect with the subprotocol \
                     hearth.v1.msgpack or hearth.v1.json and a token (Authorization: Bearer TOKEN, or ?token=). \
                     The protocol is described in PROTOCOL.md in the Hearth repository. For operators: \
                     /healthz (alive), /readyz (ready to serve), /metrics (Prometheus).\n";
        return match (method, path.split('?').next().unwrap_or_default()) {
            ("GET" | "HEAD", "/healthz") => Opening::Endpoint(Endpoint::Health),
            ("GET" | "HEAD", "/readyz") => Opening::Endpoint(Endpoint::Ready),
            ("GET" | "HEAD", "/metrics") => Opening::Endpoint(Endpoint::Metrics),
            ("POST", "/ticket") => Opening::Endpoint(Endpoint::Ticket {
                bearer: header("authorization").as_deref().and_then(bearer_of),
                origin: header("origin"),
            }),
            ("OPTIONS", path) if path == "/ticket" || path.starts_with("/auth/") => {
                Opening::Endpoint(Endpoint::Preflight { origin: header("origin") })
            }
            (method, path) if crate::accounts::api::serves(path) => {
                // JSON only: a form on any site may post text/plain without a
                // preflight, JSON it may not.
                let json = header("content-type").is_some_and(|t| {
                    t.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
                });
                if method == "POST" && !json {
                    let mut answer = HttpAnswer::new(
                        415,
                        "Unsupported Media Type",
                        r#"{"error":"bad_request","message":"send the body as Content-Type: application/json"}"#,
                    );
                    answer.content_type = "application/json";
                    return Opening::Answer(answer);
                }
                let content_length = match first_length.map(|v| v.parse::<usize>()) {
                    None => 0,
                    Some(Ok(n)) if n <= MAX_API_BODY => n,
                    Some(Ok(_)) => {
                        return Opening::Answer(HttpAnswer::new(413, "Content Too Large", "the body is over 8 KiB\n"));
                    }
                    Some(Err(_)) => {
                        return Opening::Answer(HttpAnswer::new(
                            400,
                            "Bad Request",
                            "Content-Length is not a number\n",
                        ));
                    }
                };
                Opening::Endpoint(Endpoint::Api {
                    method: method.to_string(),
                    path: path.to_string(),
                    bearer: header("authorization").as_deref().and_then(bearer_of),
                    origin: header("origin"),
                    head_bytes,
                    content_length,
                })
            }
            other => Opening::Answer(answer_other(other, about)),
        };
    }
    if method != "GET" {
        return Opening::Answer(HttpAnswer::new(400, "Bad Request", "a WebSocket upgrade is a GET request\n"));
    }
    if !has("connection", "upgrade") {
        return Opening::Answer(HttpAnswer::new(400, "Bad Request", "a WebSocket upgrade needs Connection: Upgrade\n"));
    }
    if header("sec-websocket-key").is_none_or(|k| k.is_empty()) {
        return Opening::Answer(HttpAnswer::new(400, "Bad Request", "a WebSocket upgrade needs Sec-WebSocket-Key\n"));
    }
    if header("sec-websocket-version").as_deref() != Some("13") {
        let mut answer = HttpAnswer::new(426, "Upgrade Required", "this server speaks WebSocket version 13\n");
        answer.extra_headers.push("sec-websocket-version: 13".into());
        return Opening::Answer(answer);
    }
    Opening::WebSocket
}

/// Whether a browser page at `origin` may connect: listed exactly (scheme,
/// host and port; case-insensitive), or the list holds `*`.
pub(super) fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin.trim_end_matches('/')))
}
