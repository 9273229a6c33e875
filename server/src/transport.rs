//! The listener: accepts TCP connections, upgrades them to WebSocket with the
//! protocol's size limits, picks the codec from the subprotocol, checks the token,
//! and hands the connection to a session. Connection limits and the handshake
//! timeout live here; nothing here knows about rooms.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hearth_protocol::{CloseCode, Codec, UserId, limits};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Shared;
use crate::auth::{self, AuthError};
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

/// Accepts connections until `shutdown` fires. Each connection runs on `tracker`.
pub async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let connections = Arc::new(Semaphore::new(shared.config.max_connections));
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
        let (shared, shutdown) = (shared.clone(), shutdown.clone());
        tracker.spawn(handle_connection(stream, peer, shared, permit, shutdown));
    }
}

/// What the upgrade request said.
struct Upgrade {
    codec: Codec,
    token: Option<String>,
}

async fn handle_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    permit: Result<OwnedSemaphorePermit, OwnedSemaphorePermit>,
    shutdown: CancellationToken,
) {
    let mut upgrade = None;
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| negotiate(request, response, &mut upgrade);
    // Boxed: the handshake's state is large and short-lived; a connection should
    // not carry its space for the rest of its life.
    let handshake =
        Box::pin(tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(websocket_config())));
    let mut ws = match tokio::time::timeout(shared.config.handshake_timeout, handshake).await {
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
    let Some(Upgrade { codec, token }) = upgrade else { return };
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
    let user = match token.ok_or(AuthError::Missing).and_then(|t| auth::verify(&shared.config.token_secret, &t)) {
        Ok(user) => user,
        Err(error) => {
            tracing::debug!(%peer, %error, "authentication failed");
            let code =
                if matches!(error, AuthError::Expired(_)) { CloseCode::TokenExpired } else { CloseCode::Unauthorized };
            Box::pin(close_now(&mut ws, code, &format!("{}: {error}", code.name()))).await;
            return;
        }
    };
    // Split here, not inside the session: an async fn keeps its arguments for its
    // whole life, and the unsplit socket is 300 bytes every connection would carry.
    let (sink, stream) = ws.split();
    run_session(sink, stream, peer, shared, user, codec, shutdown).await;
}

async fn run_session(
    sink: session::Sink,
    stream: session::Stream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    user: UserId,
    codec: Codec,
    shutdown: CancellationToken,
) {
    let conn = shared.next_conn_id();
    tracing::debug!(conn = conn.0, %peer, %user, ?codec, "connected");
    session::run(sink, stream, shared, user, codec, conn, shutdown).await;
    tracing::debug!(conn = conn.0, "disconnected");
}

// The handshake callback's signature is tungstenite's, large error type included.
#[allow(clippy::result_large_err)]
fn negotiate(request: &Request, mut response: Response, out: &mut Option<Upgrade>) -> Result<Response, ErrorResponse> {
    let offers = request.headers().get_all(header::SEC_WEBSOCKET_PROTOCOL).iter().filter_map(|v| v.to_str().ok());
    let (codec, echo) = Codec::negotiate(offers).map_err(|e| {
        let mut refusal = ErrorResponse::new(Some(e.to_string()));
        *refusal.status_mut() = StatusCode::BAD_REQUEST;
        refusal
    })?;
    if echo {
        response.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(codec.subprotocol()));
    }
    *out = Some(Upgrade { codec, token: token_from(request) });
    Ok(response)
}

/// The token from `Authorization: Bearer ...`, else from the `token` query parameter
/// (browsers cannot set headers on a WebSocket).
fn token_from(request: &Request) -> Option<String> {
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").map(|t| t.trim().to_string()));
    bearer
        .or_else(|| request.uri().query()?.split('&').find_map(|pair| pair.strip_prefix("token=").map(str::to_string)))
}

/// Longest close reason the WebSocket protocol allows.
const MAX_CLOSE_REASON: usize = 123;

/// A close frame with `code` and as much of `reason` as fits.
pub fn close_message(code: CloseCode, reason: &str) -> Message {
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame { code: code.code().into(), reason: Utf8Bytes::from(&reason[..end]) }))
}

/// Closes a connection that never became a session, giving the client a moment to
/// read the close frame.
async fn close_now(ws: &mut WebSocketStream<TcpStream>, code: CloseCode, reason: &str) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        ws.send(close_message(code, reason)).await?;
        // Wait for the client's close reply (or the end of the stream).
        while ws.next().await.is_some_and(|m| m.is_ok()) {}
        Ok::<(), tokio_tungstenite::tungstenite::Error>(())
    })
    .await;
}
