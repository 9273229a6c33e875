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
use http::{Endpoint, HttpAnswer, Opening, bearer_of, look_at_request, origin_allowed, read_request_head};

mod http;

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
        .and_then(|t| auth::verify_kind_at(&shared.config.token_secret, &t, kind, shared.accounts.now_secs()))
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
