//! The listener: accepts TCP connections, upgrades them to WebSocket with the
//! protocol's size limits, picks the codec from the subprotocol, checks the token,
//! and hands the connection to a session. Connection limits and the handshake
//! timeout live here; nothing here knows about rooms.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use futures_util::{SinkExt, StreamExt};
use hearth_protocol::{CloseCode, Codec, limits};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Shared;
use crate::auth::{self, AuthError};
use crate::frames::close_message;
use crate::metered::{Io, Metered, ReadMeter, Rewound};
use crate::session;

/// WebSocket settings for server connections: limits from the protocol and small
/// buffers, because most connections are idle most of the time.
pub fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        // Allocated up front for every connection, and most connections are idle:
        // 512 bytes hold a typical request or two; larger frames grow it as needed.
        .read_buffer_size(512)
        // Frames queue here between our explicit flushes; past 64 KiB tungstenite
        // writes early, which bounds a burst's memory.
        .write_buffer_size(64 * 1024)
        // Writes only pile up past this when the socket errors: fail instead of growing.
        .max_write_buffer_size(1024 * 1024)
        .max_message_size(Some(limits::MAX_REQUEST_BYTES))
        .max_frame_size(Some(limits::MAX_REQUEST_BYTES))
}

/// Connections being refused with `server_full` at once; past this they are dropped.
const MAX_REFUSING: usize = 64;

/// Serves the operator endpoints alone (`--admin-listen`): `/healthz`,
/// `/readyz`, `/metrics`; anything else, WebSocket upgrades included, gets 404.
/// Until `shutdown` fires.
pub async fn admin_loop(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    loop {
        let (mut stream, _) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + shared.config.handshake_timeout;
            let answer = match tokio::time::timeout_at(deadline, look_at_request(&stream)).await {
                Ok(Opening::Endpoint(
                    endpoint @ (Endpoint::Health | Endpoint::Ready | Endpoint::Metrics | Endpoint::Api { .. }),
                )) => match tokio::time::timeout_at(deadline, endpoint.answer(&shared, &mut stream)).await {
                    Ok(answer) => answer,
                    Err(_) => return,
                },
                Ok(Opening::Gone) | Err(_) => return,
                Ok(_) => HttpAnswer::new(
                    404,
                    "Not Found",
                    "this is Hearth's admin port: /healthz, /readyz, /metrics, /auth/... and /admin/... only; chat on the main port\n",
                ),
            };
            let _ = tokio::time::timeout_at(deadline, answer.send(&mut stream)).await;
        });
    }
}

/// Accepts connections until `shutdown` fires. Each connection runs on `tracker`.
pub async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let connections = Arc::new(Semaphore::new(shared.config.max_connections));
    let per_ip: PerIp = Arc::default();
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(ok) => {
                backoff = Duration::from_millis(10);
                ok
            }
            Err(error) => {
                // Usually out of file descriptors: wait for some to be released
                // instead of spinning.
                tracing::warn!(%error, ?backoff, "accept failed");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let permit = match connections.clone().try_acquire_owned() {
            Ok(permit) => Ok(permit),
            Err(_) => match refusing.clone().try_acquire_owned() {
                Ok(refusal) => Err(refusal),
                Err(_) => continue, // flooded: drop the TCP connection unanswered
            },
        };
        let from_ip = IpSlot::take(&per_ip, peer.ip());
        let (shared, shutdown) = (shared.clone(), shutdown.clone());
        tracker.spawn(handle_connection(stream, peer, shared, permit, from_ip, shutdown));
    }
}

/// Open connections per client address, for `Limits::connections_per_ip`.
type PerIp = Arc<DashMap<IpAddr, usize>>;

/// One connection's place in its address's count, given back when it ends.
struct IpSlot {
    per_ip: PerIp,
    ip: IpAddr,
    /// Connections from this address, this one included, when it was accepted.
    count: usize,
}

impl IpSlot {
    fn take(per_ip: &PerIp, ip: IpAddr) -> IpSlot {
        let mut count = per_ip.entry(ip).or_insert(0);
        *count += 1;
        IpSlot { per_ip: per_ip.clone(), ip, count: *count }
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        self.per_ip.remove_if_mut(&self.ip, |_, count| {
            *count -= 1;
            *count == 0
        });
    }
}

/// Longest request head the server reads: a browser's upgrade with cookies fits.
const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// What a new connection turned out to be.
enum Opening {
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
enum Endpoint {
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
fn bearer_of(value: &str) -> Option<String> {
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
    async fn answer(self, shared: &Shared, io: &mut (impl tokio::io::AsyncRead + Unpin)) -> HttpAnswer {
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
                let verified = bearer
                    .ok_or(AuthError::Missing)
                    .and_then(|token| auth::verify_token(&shared.config.token_secret, &token));
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

struct HttpAnswer {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: String,
    extra_headers: Vec<String>,
}

impl HttpAnswer {
    fn new(status: u16, reason: &'static str, body: impl Into<String>) -> HttpAnswer {
        HttpAnswer {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            extra_headers: Vec::new(),
        }
    }

    async fn send(&self, stream: &mut (impl tokio::io::AsyncWrite + Unpin)) -> std::io::Result<()> {
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
async fn look_at_request(stream: &TcpStream) -> Opening {
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
async fn read_request_head(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> Option<(Vec<u8>, Opening)> {
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

/// What the upgrade request said.
struct Upgrade {
    codec: Codec,
    token: Option<String>,
    /// The token came as a one-use `?ticket=`.
    ticket: bool,
}

async fn handle_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    permit: Result<OwnedSemaphorePermit, OwnedSemaphorePermit>,
    from_ip: IpSlot,
    shutdown: CancellationToken,
) {
    // Everything the handshake may take, the look at the request included.
    let deadline = tokio::time::Instant::now() + shared.config.handshake_timeout;
    let (mut io, opening) = match &shared.tls {
        None => {
            let opening = Box::pin(tokio::time::timeout_at(deadline, look_at_request(&stream))).await;
            (Io::Plain(stream), opening)
        }
        Some(tls) => {
            let accepted = Box::pin(tokio::time::timeout_at(deadline, tls.acceptor().accept(stream))).await;
            let mut tls_stream = match accepted {
                Ok(Ok(tls_stream)) => tls_stream,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            match Box::pin(tokio::time::timeout_at(deadline, read_request_head(&mut tls_stream))).await {
                Ok(Some((head, opening))) => (Io::Tls(Box::new(Rewound::new(tls_stream, head))), Ok(opening)),
                Ok(None) => return,
                Err(elapsed) => (Io::Tls(Box::new(Rewound::new(tls_stream, Vec::new()))), Err(elapsed)),
            }
        }
    };
    match opening {
        Ok(Opening::WebSocket) => {}
        Ok(Opening::Answer(answer)) => {
            tracing::debug!(%peer, status = answer.status, "not a WebSocket upgrade; answered over HTTP");
            let _ = Box::pin(tokio::time::timeout_at(deadline, answer.send(&mut io))).await;
            return;
        }
        Ok(Opening::Endpoint(endpoint)) => {
            let answer = match Box::pin(tokio::time::timeout_at(deadline, endpoint.answer(&shared, &mut io))).await {
                Ok(answer) => answer,
                Err(_) => HttpAnswer::new(408, "Request Timeout", "the request did not arrive in time\n"),
            };
            let _ = Box::pin(tokio::time::timeout_at(deadline, answer.send(&mut io))).await;
            return;
        }
        Ok(Opening::Gone) => return,
        Err(_) => {
            tracing::debug!(%peer, "no complete request before the handshake deadline");
            return;
        }
    }
    let (metered, meter) = Metered::new(io, shared.config.limits.bytes_without_message);
    let mut upgrade = None;
    let origins = &shared.config.allowed_origins;
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| negotiate(request, response, origins, &mut upgrade);
    // Boxed: the handshake's state is large and short-lived; a connection should
    // not carry its space for the rest of its life.
    let handshake =
        Box::pin(tokio_tungstenite::accept_hdr_async_with_config(metered, callback, Some(websocket_config())));
    let mut ws = match tokio::time::timeout_at(deadline, handshake).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "websocket handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "websocket handshake timed out");
            return;
        }
    };
    let Some(Upgrade { codec, token, ticket }) = upgrade else { return };
    let _permit = match permit {
        Ok(permit) => permit,
        Err(_refusal) => {
            tracing::warn!(%peer, max = shared.config.max_connections, "connection limit reached");
            // Boxed, like the other refusal below: rare paths should not size the task.
            Box::pin(close_now(
                &mut ws,
                CloseCode::ServerFull,
                "server_full: too many connections; retry with backoff",
            ))
            .await;
            return;
        }
    };
    if from_ip.count > shared.config.limits.connections_per_ip {
        let max = shared.config.limits.connections_per_ip;
        tracing::info!(%peer, max, "connection limit per address reached");
        let reason = format!("too_many_connections: {max} from your address already; close one first");
        Box::pin(close_now(&mut ws, CloseCode::TooManyConnections, &reason)).await;
        return;
    }
    // Held until the connection ends: its place in the address's count.
    let _from_ip = from_ip;
    // A ticket opens a connection as `?ticket=` only, and once; a token never
    // does as a ticket, nor a ticket as a token.
    let kind = if ticket { auth::TokenKind::Ticket } else { auth::TokenKind::Access };
    let verified = match token
        .ok_or(AuthError::Missing)
        .and_then(|t| auth::verify_kind(&shared.config.token_secret, &t, kind))
    {
        Ok(verified) if ticket => match shared.accounts.spend_ticket(&verified).await {
            Ok(true) => verified,
            Ok(false) => {
                tracing::debug!(%peer, "a ticket used twice");
                crate::metrics::get().auth_failures.increment(1);
                let reason = "unauthorized: this ticket was used already; ask POST /ticket for another";
                Box::pin(close_now(&mut ws, CloseCode::Unauthorized, reason)).await;
                return;
            }
            Err(refusal) => {
                Box::pin(close_now(&mut ws, refusal.close_code(), &refusal.reason())).await;
                return;
            }
        },
        Ok(verified) => verified,
        Err(error) => {
            tracing::debug!(%peer, %error, "authentication failed");
            crate::metrics::get().auth_failures.increment(1);
            let code =
                if matches!(error, AuthError::Expired(_)) { CloseCode::TokenExpired } else { CloseCode::Unauthorized };
            Box::pin(close_now(&mut ws, code, &format!("{}: {error}", code.name()))).await;
            return;
        }
    };
    // Split here, not inside the session: an async fn keeps its arguments for its
    // whole life, and the unsplit socket is 300 bytes every connection would carry.
    let (sink, stream) = ws.split();
    run_session(sink, stream, meter, peer, shared, verified, codec, shutdown).await;
}

#[allow(clippy::too_many_arguments)] // one call site, each argument a different thing
async fn run_session(
    sink: session::Sink,
    stream: session::Stream,
    meter: ReadMeter,
    peer: SocketAddr,
    shared: Arc<Shared>,
    token: auth::Verified,
    codec: Codec,
    shutdown: CancellationToken,
) {
    let conn = shared.next_conn_id();
    tracing::debug!(conn = conn.0, %peer, user = %token.user, ?codec, "connected");
    session::run(sink, stream, meter, shared, token, codec, conn, shutdown).await;
    tracing::debug!(conn = conn.0, "disconnected");
}

// The handshake callback's signature is tungstenite's, large error type included.
#[allow(clippy::result_large_err)]
fn negotiate(
    request: &Request,
    mut response: Response,
    allowed_origins: &[String],
    out: &mut Option<Upgrade>,
) -> Result<Response, ErrorResponse> {
    // Browsers say which page opened the socket; a page on another site must not
    // use a member's credentials here (cross-site WebSocket hijacking). Clients
    // that are not browsers send no Origin.
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        if !origin_allowed(origin, allowed_origins) {
            let why = format!(
                "origin {origin:?} is not allowed to open a WebSocket here; the operator allows {}",
                if allowed_origins.is_empty() {
                    "no browser origins (see --allowed-origins)".to_string()
                } else {
                    allowed_origins.join(", ")
                }
            );
            let mut refusal = ErrorResponse::new(Some(why));
            *refusal.status_mut() = StatusCode::FORBIDDEN;
            return Err(refusal);
        }
    }
    let offers = request.headers().get_all(header::SEC_WEBSOCKET_PROTOCOL).iter().filter_map(|v| v.to_str().ok());
    let (codec, echo) = Codec::negotiate(offers).map_err(|e| {
        let mut refusal = ErrorResponse::new(Some(e.to_string()));
        *refusal.status_mut() = StatusCode::BAD_REQUEST;
        refusal
    })?;
    if echo {
        response.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(codec.subprotocol()));
    }
    let (token, ticket) = token_from(request);
    *out = Some(Upgrade { codec, token, ticket });
    Ok(response)
}

/// Whether a browser page at `origin` may connect: listed exactly (scheme,
/// host and port; case-insensitive), or the list holds `*`.
fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin.trim_end_matches('/')))
}

/// The token from `Authorization: Bearer ...`, else from the `token` query parameter
/// (browsers cannot set headers on a WebSocket).
fn token_from(request: &Request) -> (Option<String>, bool) {
    let bearer = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_of);
    if bearer.is_some() {
        return (bearer, false);
    }
    let query =
        |name: &str| request.uri().query()?.split('&').find_map(|pair| pair.strip_prefix(name).map(str::to_string));
    match query("ticket=") {
        Some(ticket) => (Some(ticket), true),
        None => (query("token="), false),
    }
}

/// Closes a connection that never became a session, giving the client a moment to
/// read the close frame.
async fn close_now(ws: &mut WebSocketStream<Metered>, code: CloseCode, reason: &str) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        ws.send(close_message(code, reason)).await?;
        // Wait for the client's close reply (or the end of the stream).
        while ws.next().await.is_some_and(|m| m.is_ok()) {}
        Ok::<(), tokio_tungstenite::tungstenite::Error>(())
    })
    .await;
}
