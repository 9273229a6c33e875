//! The listener: accepts TCP connections, answers their HTTP (the web page,
//! the operator's and the accounts' endpoints), upgrades them to WebSocket
//! with the protocol's size limits, picks the codec from the subprotocol,
//! checks the token, and hands the connection to a session. Connection
//! limits and the handshake timeout live here; nothing here knows about rooms.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use futures_util::{SinkExt, StreamExt};
use hearth_protocol::{CloseCode, Codec, limits};
use hyper::Request;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Shared;
use crate::auth::{self, AuthError};
use crate::frames::close_message;
use crate::metered::{Io, Metered, ReadMeter};
use crate::session;
use http::{Answer, Port};
use upgrade::Upgrade;

mod http;
mod signin;
mod upgrade;

/// Connections the kernel holds for the server before it accepts them (it
/// caps this at `net.core.somaxconn`, 4,096 on current kernels). Tokio's
/// default of 1,024 overflows when a restarted node's members all come back
/// at once: a connection whose handshake the kernel dropped waits a second
/// for its retry.
const LISTEN_BACKLOG: u32 = 65_535;

/// Listens on `addr` with a backlog deep enough for a reconnect storm.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    // As `TcpListener::bind` does: a restarted server need not wait for the
    // old one's connections to time out.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// WebSocket settings for server connections: limits from the protocol and small
/// buffers, because most connections are idle most of the time.
pub fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        // Allocated up front for every connection, and most connections are idle:
        // 512 bytes hold a typical request or two; larger frames grow it as needed.
        .read_buffer_size(512)
        // Each frame goes on to the socket's own buffer at once, which gathers
        // a batch until the writer's flush and then frees it (`Metered`):
        // tungstenite's buffer never shrinks, and an idle connection would
        // keep the largest burst it was ever sent.
        .write_buffer_size(0)
        // Writes only pile up past this when the socket errors: fail instead of growing.
        .max_write_buffer_size(1024 * 1024)
        .max_message_size(Some(limits::MAX_REQUEST_BYTES))
        .max_frame_size(Some(limits::MAX_REQUEST_BYTES))
}

/// Connections being refused with `server_full` at once; past this they are dropped.
const MAX_REFUSING: usize = 64;

/// Serves the operator endpoints alone (`--admin-listen`): `/healthz`,
/// `/readyz`, `/metrics` and the accounts'; anything else, WebSocket upgrades
/// included, gets 404. Until `shutdown` fires.
pub async fn admin_loop(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    loop {
        let (stream, _) = tokio::select! {
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
            let (metered, _) = Metered::new(Io::Plain(stream), usize::MAX);
            let serve = serve_http(metered, shared, Port::Admin, None);
            let _ = tokio::time::timeout_at(deadline, serve).await;
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

/// Serves one connection's HTTP: a request answered (`connection: close`,
/// but for the page's files, after which another may follow), or an upgrade
/// answered `101` and left in `upgrade` for the caller.
async fn serve_http(
    io: Metered,
    shared: Arc<Shared>,
    port: Port,
    upgrade: Option<Arc<Mutex<Option<Upgrade>>>>,
) -> hyper::Result<()> {
    let timeout = shared.config.handshake_timeout;
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let (shared, upgrade) = (shared.clone(), upgrade.clone());
        async move { Ok::<_, std::convert::Infallible>(route(&shared, port, request, upgrade.as_deref()).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        // The least hyper takes: a head over 8 KiB is answered 431.
        .max_buf_size(8 * 1024)
        // Only the page's files keep the connection (`KeepAlive`): a browser
        // fetches several in a row; every other answer closes it.
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    connection.await
}

/// One request's answer: an upgrade's `101` (what it becomes stored in
/// `upgrade`), or an HTTP answer.
async fn route(
    shared: &Shared,
    port: Port,
    request: Request<Incoming>,
    upgrade: Option<&Mutex<Option<Upgrade>>>,
) -> Answer {
    let mut answer = match upgrade {
        Some(slot) if upgrade::asks_for_websocket(&request) => {
            let origins = http::Origins::of(shared, &request);
            let (answer, upgraded) = upgrade::answer(request, &origins);
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = upgraded;
            if answer.status() == hyper::StatusCode::SWITCHING_PROTOCOLS {
                return answer;
            }
            tracing::debug!(status = answer.status().as_u16(), "an upgrade refused");
            answer
        }
        _ => http::answer(shared, port, request).await,
    };
    if answer.extensions().get::<http::KeepAlive>().is_none() {
        answer.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    answer
}

/// A connection's task: the handshake, then the session. Not an `async fn`:
/// an async fn keeps its arguments beside the futures it passes them to for
/// as long as it lives (rust-lang/rust#62958), and this one lives as long as
/// the connection. Built by hand, the task holds the boxed handshake, then
/// the session, and little else.
fn handle_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    permit: Result<OwnedSemaphorePermit, OwnedSemaphorePermit>,
    from_ip: IpSlot,
    shutdown: CancellationToken,
) -> impl std::future::Future<Output = ()> + Send {
    // Boxed: the handshake's states (TLS, hyper's connection, the upgrade, the
    // checks) made this task 7.2 KB; in a box they are freed once the
    // connection is a session, and an idle member's task is only as large as
    // the session.
    let handshake = Box::pin(handshake(stream, peer, shared.clone(), permit, from_ip));
    async move {
        let Some(Admitted { sink, stream, meter, verified, codec, permit, from_ip }) = handshake.await else {
            return;
        };
        let conn = shared.next_conn_id();
        tracing::debug!(conn = conn.0, %peer, user = %verified.user, ?codec, "connected");
        session::run(sink, stream, meter, shared, verified, codec, conn, shutdown).await;
        tracing::debug!(conn = conn.0, "disconnected");
        // Held until the connection ends: its place among the connections and in
        // its address's count.
        drop((permit, from_ip));
    }
}

/// A connection that became a WebSocket with a valid token, ready to be a
/// session.
struct Admitted {
    sink: session::Sink,
    stream: session::Stream,
    meter: ReadMeter,
    verified: auth::Verified,
    codec: Codec,
    permit: OwnedSemaphorePermit,
    from_ip: IpSlot,
}

/// TLS, the HTTP request (answered there unless it asks for an upgrade), the
/// upgrade, the connection limits and the token: `None` when the connection
/// ended or was refused on the way.
async fn handshake(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    permit: Result<OwnedSemaphorePermit, OwnedSemaphorePermit>,
    from_ip: IpSlot,
) -> Option<Admitted> {
    // Everything the handshake may take: TLS, the request, the upgrade.
    let deadline = tokio::time::Instant::now() + shared.config.handshake_timeout;
    let io = match &shared.tls {
        None => Io::Plain(stream),
        Some(tls) => match Box::pin(tokio::time::timeout_at(deadline, tls.acceptor().accept(stream))).await {
            Ok(Ok(tls_stream)) => Io::Tls(Box::new(tls_stream)),
            Ok(Err(error)) => {
                tracing::debug!(%peer, %error, "TLS handshake failed");
                return None;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return None;
            }
        },
    };
    let (metered, meter) = Metered::new(io, shared.config.limits.bytes_without_message);
    let slot = Arc::new(Mutex::new(None));
    // Boxed: hyper's connection state is large and short-lived; a connection
    // should not carry its space for the rest of its life.
    let served = Box::pin(serve_http(metered, shared.clone(), Port::Main, Some(slot.clone())));
    match tokio::time::timeout_at(deadline, served).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "HTTP connection failed");
            return None;
        }
        Err(_) => {
            tracing::debug!(%peer, "no complete request and answer before the handshake deadline");
            return None;
        }
    }
    let upgrade = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    drop(slot); // held by nothing else now; not for the connection's life
    let Some(Upgrade { codec, token, ticket, socket }) = upgrade else {
        return None; // answered over HTTP
    };
    let upgraded = match tokio::time::timeout_at(deadline, socket).await {
        Ok(Ok(upgraded)) => upgraded,
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "the upgrade failed");
            return None;
        }
        Err(_) => return None,
    };
    // Back to the socket itself (no layer of hyper's left on the hot path),
    // with whatever the client sent after its request read again first.
    let Ok(parts) = upgraded.downcast::<TokioIo<Metered>>() else {
        tracing::error!(%peer, "an upgraded connection is not the socket it was; closing");
        return None;
    };
    // Taken apart and dropped here, not with the handshake: the read buffer
    // is hyper's whole 8 KiB, even when nothing is left in it.
    let hyper::upgrade::Parts { io, read_buf, .. } = parts;
    let mut metered = io.into_inner();
    if !read_buf.is_empty() {
        // Copied for the same reason: the bytes are a slice of that buffer.
        metered.rewind(bytes::Bytes::copy_from_slice(&read_buf));
    }
    drop(read_buf);
    let gather = metered.gather_writes();
    let mut ws = WebSocketStream::from_raw_socket(metered, Role::Server, Some(websocket_config())).await;
    let permit = match permit {
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
            return None;
        }
    };
    if from_ip.count > shared.config.limits.connections_per_ip {
        let max = shared.config.limits.connections_per_ip;
        tracing::info!(%peer, max, "connection limit per address reached");
        let reason = format!("too_many_connections: {max} from your address already; close one first");
        Box::pin(close_now(&mut ws, CloseCode::TooManyConnections, &reason)).await;
        return None;
    }
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
                return None;
            }
            Err(refusal) => {
                Box::pin(close_now(&mut ws, refusal.close_code(), &refusal.reason())).await;
                return None;
            }
        },
        Ok(verified) => verified,
        Err(error) => {
            tracing::debug!(%peer, %error, "authentication failed");
            crate::metrics::get().auth_failures.increment(1);
            let code =
                if matches!(error, AuthError::Expired(_)) { CloseCode::TokenExpired } else { CloseCode::Unauthorized };
            Box::pin(close_now(&mut ws, code, &format!("{}: {error}", code.name()))).await;
            return None;
        }
    };
    // Split here, not inside the session: an async fn keeps its arguments for its
    // whole life, and the unsplit socket is 300 bytes every connection would carry.
    let (socket, stream) = ws.split();
    let sink = session::Sink { socket, gather };
    Some(Admitted { sink, stream, meter, verified, codec, permit, from_ip })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Server, Storage};

    /// What an idle member's tasks hold is mostly this future and the writer's
    /// (`session::writer`'s test bounds that one), and a change far away (an
    /// argument added, a future awaited inline) can double them unnoticed:
    /// 7.2 KB once with the handshake inline, 2.8 KB as an `async fn`
    /// (BENCHMARKS.md, "idle"). Sizes are the compiler's, so the bounds leave
    /// room; a regression of the kinds seen is far past.
    #[tokio::test]
    async fn an_idle_connections_tasks_stay_small() {
        let secret = auth::Secret::new(b"transport-test-secret-0123456789".to_vec()).unwrap();
        let config = Config::new(Storage::Ephemeral { history_limit: 10 }, secret);
        let server = Server::start(config).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        let permit = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        let from_ip = IpSlot::take(&PerIp::default(), peer.ip());
        let connection =
            handle_connection(stream, peer, server.shared.clone(), Ok(permit), from_ip, CancellationToken::new());
        let size = std::mem::size_of_val(&connection);
        assert!(
            size <= 720,
            "a connection's task holds {size} bytes (648 measured; 736 with a ping timer, 952 with a message's handling inline)"
        );
        drop((connection, client));
    }
}
