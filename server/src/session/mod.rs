//! One connection: a reader that decodes each request and hands it to its
//! handler, and a writer task that drains the connection's outbound queue and
//! flushes once per batch. Each task owns its half of the socket; they meet
//! only at the `Outbound` queue.
//!
//! Requests from one connection are handled in order. Replies to requests that
//! append to a timeline are sent when the event is durable, so replies can arrive
//! in a different order than requests: clients match them by `id`.
//!
//! The parts: this module is the connection (its life, the read loop, the
//! limits, the replies); `writer` the write half; `dispatch` maps each request
//! kind to its one handler, and the handlers live by concern — `membership`,
//! `messages`, `notes`, `moderation`, `vetting`, `reads`, `account`; `ordering`
//! is how a handler has an event ordered and answered.

mod account;
mod direct;
mod dispatch;
mod lockdown;
mod membership;
mod messages;
mod moderation;
mod notes;
mod ordering;
mod push;
mod read_state;
pub(crate) mod reads;
mod reports;
mod search;
mod vetting;
mod writer;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::{FuturesUnordered, SplitSink, SplitStream};
use hearth_protocol::codec::{decode_request, encode_error, encode_reply};
use hearth_protocol::event::Hello;
use hearth_protocol::{CloseCode, Codec, ErrorBody, ErrorCode, Event, Millis, Op, RequestId, RoomId, UserId, limits};
use serde::Serialize;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

use crate::Shared;
use crate::frames::{event_frame, frame_message};
use crate::hub::{Conn, ConnId};
use crate::metered::{Gather, Metered, ReadMeter};
use crate::outbound::Outbound;
use crate::refusals::refused;
use crate::room::Refusal;
use crate::rooms::Room;
use writer::{WriterConfig, write_loop};

/// The write half of a connection's socket: the gathered frames, which the
/// writer frames what it sends into, and tungstenite's half, which sends them
/// (a flush) and writes the close.
pub struct Sink {
    pub socket: SplitSink<WebSocketStream<Metered>, Message>,
    pub gather: Arc<Gather>,
}

/// The read half of a connection's socket.
pub type Stream = SplitStream<WebSocketStream<Metered>>;

/// A request waiting for its event to be ordered and durable; resolves to the
/// reply frame.
type InFlight = Pin<Box<dyn Future<Output = Message> + Send + Sync>>;

struct Session {
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    /// Made on the first request: idle connections do not pay for it.
    rate: Option<Box<Rate>>,
    /// Made on the first publish: an empty set still allocates, and most
    /// connections of a calm room only read.
    in_flight: Option<FuturesUnordered<InFlight>>,
    /// When this connection last said it was typing, per room (only those
    /// it typed in; most connections never do), on the server's clock.
    typed: Vec<(RoomId, Millis)>,
}

/// Runs a connection until the peer leaves, the queue closes, or shutdown.
/// Starts the writer and registers the connection when called; the rest runs
/// when awaited. Not an `async fn`, so what only the start needs (the socket's
/// write half, the codec) is not kept for the connection's life
/// (rust-lang/rust#62958).
#[allow(clippy::too_many_arguments)] // one call site, each argument a different thing
pub fn run(
    sink: Sink,
    mut stream: Stream,
    meter: ReadMeter,
    shared: Arc<Shared>,
    token: crate::auth::Verified,
    codec: Codec,
    conn: ConnId,
    shutdown: CancellationToken,
) -> impl std::future::Future<Output = ()> + Send {
    let out = Arc::new(Outbound::new(shared.config.outbound_queue_bytes));
    let writer = tokio::spawn(write_loop(sink, out.clone(), WriterConfig::from(&shared.config), conn));
    let conn = Arc::new(Conn::new(conn, token.user.clone(), codec, out));
    conn.set_token(token.generation, token.expires_at());
    let max = shared.config.limits.connections_per_user;
    if !shared.registry.hub().try_register(conn.clone(), max) {
        tracing::info!(conn = conn.id.0, user = %conn.user, max, "connection limit per user reached");
        conn.out.close(
            CloseCode::TooManyConnections,
            format!("too_many_connections: {} has {max} connections open already; close one first", conn.user),
        );
    }
    // Checked once registered, so a disable that lands meanwhile finds this
    // connection to close (the check before would let it slip past). Boxed and
    // owning the token: what the future below captures it keeps for the
    // connection's life, and the token is 72 bytes.
    let admitted = {
        let shared = shared.clone();
        Box::pin(async move { shared.accounts.admit(&token).await })
    };
    async move {
        if let Err(refusal) = admitted.await {
            tracing::info!(conn = conn.id.0, user = %conn.user, ?refusal, "token refused by its account");
            crate::metrics::get().auth_failures.increment(1);
            conn.out.close(refusal.close_code(), refusal.reason());
        }
        let metrics = crate::metrics::get();
        metrics.connections_total.increment(1);
        metrics.connections.increment(1.0);
        let mut session = Session { shared, conn, rate: None, in_flight: None, typed: Vec::new() };
        session.hello();
        // The upgrade's own bytes do not count.
        meter.message_seen();
        let ended = session.read_loop(&mut stream, &meter, &shutdown).await;
        let Session { shared, conn, .. } = session;
        // Boxed: what a connection does once at its end should not size the task it
        // waits in for the rest of its life.
        Box::pin(finish(shared, conn, writer, stream, ended)).await;
        metrics.connections.decrement(1.0);
    }
}

/// Leaves the rooms, lets the writer send its close frame, and finishes the
/// closing handshake.
async fn finish(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    writer: tokio::task::JoinHandle<()>,
    mut stream: Stream,
    ended: Ended,
) {
    for room in conn.receiving_rooms() {
        if let Some(room) = shared.registry.loaded().get(&room) {
            room.unsubscribe(conn.id);
        }
    }
    shared.registry.hub().unregister(&conn);
    // The writer ends after sending the close frame (or failing to).
    conn.out.close(CloseCode::GoingAway, "going_away: connection ended");
    let grace = shared.config.write_timeout + Duration::from_secs(1);
    if tokio::time::timeout(grace, writer).await.is_err() {
        tracing::debug!(conn = conn.id.0, "writer did not finish in time");
    }
    if ended == Ended::ByServer {
        // Finish the closing handshake: read until the client's close frame, so the
        // socket is not dropped with unread data (which resets the connection and
        // can destroy the close frame before the client reads it).
        let drain = async { while stream.next().await.is_some_and(|m| m.is_ok_and(|m| !m.is_close())) {} };
        let _ = tokio::time::timeout(CLOSE_HANDSHAKE, drain).await;
    }
}

/// How the read loop ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// The client closed or the socket failed: nothing more to say.
    ByPeer,
    /// The server queued a close frame.
    ByServer,
}

/// How long the server waits for a client's reply to its close frame.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(2);

impl Session {
    fn hello(&self) {
        let hello = Event::Hello(Hello {
            user: self.conn.user.clone(),
            conn: self.conn.id.0,
            server: concat!("hearth-server/", env!("CARGO_PKG_VERSION")).to_string(),
            protocol: hearth_protocol::PROTOCOL_VERSION,
            max_request_bytes: limits::MAX_REQUEST_BYTES as u32,
            max_text_bytes: limits::MAX_TEXT_BYTES as u32,
        });
        let _ = self.conn.out.push(event_frame(self.conn.codec, &hello));
        self.conn.greeted();
    }

    /// Closes the connection (4002) if its token has expired by the server's
    /// clock; says whether it did.
    fn close_if_token_expired(&self) -> bool {
        if self.shared.clock.now() < self.conn.token_expires() {
            return false;
        }
        self.conn.out.close(CloseCode::TokenExpired, crate::keepalive::TOKEN_EXPIRED);
        true
    }

    async fn read_loop(&mut self, stream: &mut Stream, meter: &ReadMeter, shutdown: &CancellationToken) -> Ended {
        let out = self.conn.out.clone();
        loop {
            let in_flight = self.in_flight.as_ref().map_or(0, FuturesUnordered::len);
            let message = tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    out.close(CloseCode::GoingAway, "going_away: server shutting down; reconnect and resume");
                    return Ended::ByServer;
                }
                _ = out.wait_closed() => return Ended::ByServer,
                Some(reply) = next_reply(&mut self.in_flight), if in_flight > 0 => {
                    // A full queue closes the connection as a slow consumer; the client
                    // retries with the same cmid and gets the same seq.
                    let _ = out.push(reply);
                    continue;
                }
                message = stream.next() => message,
            };
            let message = match message {
                None => return Ended::ByPeer,
                Some(Ok(message)) => message,
                Some(Err(error)) => return self.on_read_error(error),
            };
            self.conn.heard();
            meter.message_seen();
            // Boxed: handling a message needs far more state than waiting for
            // one, and an idle connection should only pay for the waiting.
            if let Some(ended) = Box::pin(self.handle_message(message, &out, shutdown)).await {
                return ended;
            }
        }
    }

    /// Handles one message from the client once its queue has room; says how
    /// the connection ended if it did.
    async fn handle_message(
        &mut self,
        message: Message,
        out: &Outbound,
        shutdown: &CancellationToken,
    ) -> Option<Ended> {
        // Backpressure: a client that does not read its replies is not served
        // until it does, instead of the server building replies it cannot send.
        // (A client that never reads is closed by the writer's timeout.)
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                out.close(CloseCode::GoingAway, "going_away: server shutting down; reconnect and resume");
                return Some(Ended::ByServer);
            }
            _ = out.wait_for_room() => {}
        }
        crate::metrics::get().bytes_in.increment(message.len() as u64);
        match (message, self.conn.codec) {
            (Message::Binary(bytes), Codec::MsgPack) => self.handle_frame(&bytes).await,
            (Message::Text(text), Codec::Json) => self.handle_frame(text.as_bytes()).await,
            (Message::Binary(_) | Message::Text(_), codec) => {
                let reason = format!(
                    "wrong_frame_type: {} expects {} frames",
                    codec.subprotocol(),
                    if codec.is_binary() { "binary" } else { "text" }
                );
                out.close(CloseCode::WrongFrameType, reason);
                return Some(Ended::ByServer);
            }
            (Message::Close(_), _) => {
                // tungstenite has queued the echo of the client's close frame;
                // the writer must have it written, or the client sees the TCP
                // connection dropped instead of a clean close.
                out.close_by_peer();
                return Some(Ended::ByPeer);
            }
            // tungstenite answers pings itself, so they cost a write each: they
            // count as requests. Pongs only prove the peer is alive.
            (Message::Ping(_), _) => {
                if self.admit(None).is_err() && self.close_if_flooding() {
                    return Some(Ended::ByServer);
                }
            }
            (Message::Pong(_) | Message::Frame(_), _) => {}
        }
        None
    }

    fn on_read_error(&self, error: tungstenite::Error) -> Ended {
        use tungstenite::error::{CapacityError, Error};
        // WebSocket-level violations get RFC 6455's codes, which every WebSocket
        // library and conformance suite understands; 4xxx stay for Hearth's own.
        let (code, reason) = match error {
            Error::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
                (CloseCode::MessageTooBig, format!("message_too_big: {size} bytes, limit {max_size}"))
            }
            Error::Capacity(error) => (CloseCode::MessageTooBig, format!("message_too_big: {error}")),
            Error::Protocol(error) => (CloseCode::WebSocketProtocol, format!("websocket_protocol_error: {error}")),
            Error::Utf8(_) => {
                (CloseCode::InvalidPayload, "invalid_payload: a text frame or a close reason is not UTF-8".to_string())
            }
            Error::Io(error) if crate::metered::is_flood(&error) => {
                tracing::info!(conn = self.conn.id.0, user = %self.conn.user, "closing a connection that sends frames but no messages");
                (CloseCode::RateLimited, format!("rate_limited: {}", crate::metered::FLOOD))
            }
            error => {
                tracing::debug!(conn = self.conn.id.0, %error, "read ended");
                return Ended::ByPeer;
            }
        };
        self.conn.out.close(code, reason);
        Ended::ByServer
    }

    async fn handle_frame(&mut self, frame: &[u8]) {
        // A request on a token expired meanwhile (by the server's clock) is
        // not served: the connection closes as its timer would have.
        if self.close_if_token_expired() {
            return;
        }
        crate::metrics::get().requests.increment(1);
        let request = match decode_request(self.conn.codec, frame) {
            Ok(request) => request,
            Err(error) => match error.id {
                Some(id) => {
                    // A request the server cannot read costs it as much as one
                    // it can: it counts against the rate like any other.
                    let body = match self.admit(None) {
                        Ok(()) => ErrorBody::new(error.code(), error.error.to_string()),
                        Err(_) if self.close_if_flooding() => return,
                        Err(refused) => refused,
                    };
                    return self.reply_error(id, &body).await;
                }
                None => {
                    tracing::debug!(conn = self.conn.id.0, %error, "not a request; closing");
                    return self.conn.out.close(CloseCode::ProtocolError, format!("protocol_error: {error}"));
                }
            },
        };
        let id = request.id;
        if let Err(error) = self.admit(Some(&request.op)) {
            if !self.close_if_flooding() {
                self.reply_error(id, &error).await;
            }
            return;
        }
        // A refusal decided on a copy that trailed the order is decided again
        // where it was decided: `Registry::decide_and_order`.
        if let Err(error) = self.dispatch(id, request.op).await {
            if error.code == ErrorCode::Internal {
                tracing::warn!(conn = self.conn.id.0, user = %self.conn.user, %error, "request failed");
            }
            self.reply_error(id, &error).await;
        }
    }

    fn rate(&mut self) -> &mut Rate {
        let limits = self.shared.config.limits;
        self.rate.get_or_insert_with(|| Box::new(Rate::new(&limits)))
    }

    /// Closes the connection with `rate_limited` once it has been refused too
    /// many times in a row (it ignores `retry_after_ms`); says whether it did.
    fn close_if_flooding(&mut self) -> bool {
        let refused = self.rate().refused;
        if refused < self.shared.config.limits.refusals_before_close {
            return false;
        }
        tracing::info!(conn = self.conn.id.0, user = %self.conn.user, refused, "closing a flooding connection");
        self.conn.out.close(
            CloseCode::RateLimited,
            format!("rate_limited: {refused} requests refused in a row; wait for retry_after_ms"),
        );
        true
    }

    /// Whether this connection may make another request (`op`; `None` for a
    /// ping frame) now. Counts refusals in a row.
    fn admit(&mut self, op: Option<&Op>) -> Result<(), ErrorBody> {
        let rate = self.rate();
        let mut verdict = rate.requests.check().map_err(|wait| ("requests", wait));
        if verdict.is_ok() && matches!(op, Some(Op::SendMessage(_))) {
            verdict = rate.messages.check().map_err(|wait| ("messages", wait));
        }
        match verdict {
            Ok(()) => {
                rate.refused = 0;
                Ok(())
            }
            Err((what, not_until)) => {
                rate.refused += 1;
                crate::metrics::get().rate_limited.increment(1);
                let wait =
                    not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
                let ms = (wait.as_millis() as u64).max(1);
                Err(ErrorBody::new(
                    ErrorCode::RateLimited,
                    format!("too many {what} from this connection; retry in {ms} ms"),
                )
                .retry_after(ms))
            }
        }
    }

    async fn reply<T: Serialize>(&self, id: RequestId, body: &T) {
        let codec = self.conn.codec;
        let mut bytes = encode_reply(codec, id, body);
        if bytes.len() > limits::MAX_SERVER_FRAME_BYTES {
            // Lists that can grow are cut to fit (`fit_in_frame`); this is the
            // backstop for the rest: a clear refusal, never a frame the client
            // must drop (or a connection closed without a word).
            let error = ErrorBody::new(
                ErrorCode::LimitReached,
                format!(
                    "the answer would be {} bytes in {}, over the {} a frame may hold; ask for less",
                    bytes.len(),
                    codec.subprotocol(),
                    limits::MAX_SERVER_FRAME_BYTES
                ),
            );
            tracing::info!(conn = self.conn.id.0, bytes = bytes.len(), "a reply too large for a frame was refused");
            bytes = encode_error(codec, id, &error);
        }
        let _ = self.conn.out.push_wait(frame_message(codec, bytes)).await;
    }

    async fn reply_error(&self, id: RequestId, error: &ErrorBody) {
        let frame = frame_message(self.conn.codec, encode_error(self.conn.codec, id, error));
        let _ = self.conn.out.push_wait(frame).await;
    }

    async fn room(&self, room: &RoomId) -> Result<Arc<Room>, ErrorBody> {
        self.shared.registry.get(room).await
    }

    /// The room as its order stands (`Registry::current`): what a read shows,
    /// or a decision is made on, includes every change acknowledged before the
    /// request, through any node.
    async fn current_room(&self, room: &RoomId) -> Result<Arc<Room>, ErrorBody> {
        self.shared.registry.current(room).await
    }

    /// The room as its order stands, if the caller is a member of it.
    async fn member_room(&self, room: &RoomId) -> Result<Arc<Room>, ErrorBody> {
        let room = self.current_room(room).await?;
        if !room.is_member(&self.conn.user) {
            return Err(refused(&room.id, &Refusal::NotMember));
        }
        Ok(room)
    }

    /// Who asks, and when by the server's clock.
    fn caller(&self) -> (UserId, Millis) {
        (self.conn.user.clone(), self.shared.clock.now())
    }
}

/// Most bytes of events in one history page, in the connection's codec: the
/// largest frame clients accept (`MAX_SERVER_FRAME_BYTES`) less room for the
/// reply around them.
const PAGE_BYTES: usize = limits::MAX_SERVER_FRAME_BYTES - 16 * 1024;

/// Keeps the leading `items` whose encodings in `codec` fit in a page
/// (`PAGE_BYTES`: a frame, less room for the reply around them); says whether
/// any were left out. JSON can make a text six times its MessagePack size
/// (control characters escaped), so the measure is the connection's codec.
fn fit_in_frame<T: Serialize>(codec: Codec, items: &mut Vec<T>) -> bool {
    let mut bytes = 0;
    for (kept, item) in items.iter().enumerate() {
        bytes += codec.encode_value(item).len();
        if bytes > PAGE_BYTES && kept > 0 {
            items.truncate(kept);
            return true;
        }
    }
    false
}

/// The next reply whose event became durable.
async fn next_reply(in_flight: &mut Option<FuturesUnordered<InFlight>>) -> Option<Message> {
    match in_flight {
        Some(in_flight) => in_flight.next().await,
        None => None,
    }
}

/// A connection's request and message rates (token buckets, `governor`).
struct Rate {
    requests: governor::DefaultDirectRateLimiter,
    messages: governor::DefaultDirectRateLimiter,
    /// Requests refused in a row.
    refused: u32,
}

impl Rate {
    fn new(limits: &crate::Limits) -> Rate {
        let quota = |per_sec: u32, burst: u32| {
            let nonzero = |n: u32| std::num::NonZeroU32::new(n.max(1)).expect("at least 1");
            governor::Quota::per_second(nonzero(per_sec)).allow_burst(nonzero(burst))
        };
        Rate {
            requests: governor::RateLimiter::direct(quota(limits.requests_per_sec, limits.request_burst)),
            messages: governor::RateLimiter::direct(quota(limits.messages_per_sec, limits.message_burst)),
            refused: 0,
        }
    }
}
