//! One connection: a reader that decodes and dispatches requests, and a writer task
//! that drains the connection's outbound queue and flushes once per batch. Each task
//! owns its half of the socket; they meet only at the `Outbound` queue.
//!
//! Requests from one connection are handled in order. Replies to requests that
//! append to a timeline are sent when the event is durable, so replies can arrive
//! in a different order than requests: clients match them by `id`.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hearth_protocol::codec::{decode_request, encode_error, encode_event, encode_reply};
use hearth_protocol::event::{Hello, JoinDecisionEvent, MessageEvent, TypingEvent};
use hearth_protocol::ops::{
    AddPin, Appended, Auth, Authed, CreateRoom, Done, HeldList, HistoryPage, Invite, Join, JoinRequestList, MemberList,
    ModEntry, ModLog, ModLogPage, OnlineMember, Op, Pinned, Pong, PresenceList, Prompt, PromptList, RoomList,
    RoomStats, ThreadHistory, Version, VersionList,
};
use hearth_protocol::{CloseCode, Codec, ErrorBody, ErrorCode, Event, Millis, RequestId, RoomId, Seq, UserId, limits};
use serde::Serialize;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

use crate::Shared;
use crate::broker::{BrokerError, Published};
use crate::frames::{event_frame, frame_message};
use crate::hub::{Conn, ConnId};
use crate::metered::{Metered, ReadMeter};
use crate::outbound::{Outbound, Taken};
use crate::room::messages::{Annotations, TextNow};
use crate::room::permissions::Action;
use crate::room::{self, AnnexTable, Draft, Rejection};
use crate::rooms::Room;
use crate::transport::close_message;

/// The write half of a connection's socket.
pub type Sink = SplitSink<WebSocketStream<Metered>, Message>;
/// The read half of a connection's socket.
pub type Stream = SplitStream<WebSocketStream<Metered>>;

/// A request waiting for its event to be ordered and durable; resolves to the
/// reply frame.
type InFlight = Pin<Box<dyn Future<Output = Message> + Send + Sync>>;

/// Most bytes of events in one history page, in the connection's codec: the
/// largest frame clients accept (`MAX_SERVER_FRAME_BYTES`) less room for the
/// reply around them.
const PAGE_BYTES: usize = limits::MAX_SERVER_FRAME_BYTES - 16 * 1024;

/// How long a join or a room creation waits to see its own event applied. The
/// journal answers within milliseconds or stops the server, so this only guards
/// against a bug turning into a stuck connection.
const APPLY_WAIT: Duration = Duration::from_secs(30);

/// How long a request refused on a trailing copy waits for the copy to catch
/// up before the refusal stands.
const STALE_WAIT: Duration = Duration::from_secs(2);

/// Refusals that depend on room state an event ordered through another node
/// may have just changed. The rest (bad input, limits, slow mode, ...) do not.
fn may_be_stale(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::NotMember
            | ErrorCode::Forbidden
            | ErrorCode::NoSuchTarget
            | ErrorCode::Muted
            | ErrorCode::Banned
            | ErrorCode::AckRequired
            | ErrorCode::InvalidInvite
            | ErrorCode::ApprovalRequired
            | ErrorCode::InviteRequired
    )
}

struct Session {
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    /// Made on the first request: idle connections do not pay for it.
    rate: Option<Box<Rate>>,
    /// Made on the first publish: an empty set still allocates, and most
    /// connections of a calm room only read.
    in_flight: Option<FuturesUnordered<InFlight>>,
    /// When the token the connection was opened with expires: the connection
    /// is closed then (4002), not left open on a token no longer valid.
    token_expires: Instant,
    /// When this connection last said it was typing, per room (only those
    /// it typed in; most connections never do), on the server's clock.
    typed: Vec<(RoomId, Millis)>,
}

/// A typing indicator is passed on at most this often per member and room;
/// clients show one for 5 s unless it is repeated (PROTOCOL.md).
const TYPING_EVERY_MS: u64 = 3_000;

/// Runs a connection until the peer leaves, the queue closes, or shutdown.
#[allow(clippy::too_many_arguments)] // one call site, each argument a different thing
pub async fn run(
    sink: Sink,
    mut stream: Stream,
    meter: ReadMeter,
    shared: Arc<Shared>,
    token: crate::auth::Verified,
    codec: Codec,
    conn: ConnId,
    shutdown: CancellationToken,
) {
    let out = Arc::new(Outbound::new(shared.config.outbound_queue_bytes));
    let writer = tokio::spawn(write_loop(sink, out.clone(), WriterConfig::from(&shared.config), conn));
    let token_expires = Instant::now() + token.valid_for();
    let conn = Arc::new(Conn::new(conn, token.user.clone(), codec, out));
    conn.set_generation(token.generation);
    let max = shared.config.limits.connections_per_user;
    if !shared.registry.hub().try_register(conn.clone(), max) {
        tracing::info!(conn = conn.id.0, user = %conn.user, max, "connection limit per user reached");
        conn.out.close(
            CloseCode::TooManyConnections,
            format!("too_many_connections: {} has {max} connections open already; close one first", conn.user),
        );
    }
    // Checked once registered, so a disable that lands meanwhile finds this
    // connection to close (the check before would let it slip past).
    if let Err(refusal) = shared.accounts.admit(&token).await {
        tracing::info!(conn = conn.id.0, user = %conn.user, ?refusal, "token refused by its account");
        crate::metrics::get().auth_failures.increment(1);
        conn.out.close(refusal.close_code(), refusal.reason());
    }
    let metrics = crate::metrics::get();
    metrics.connections_total.increment(1);
    metrics.connections.increment(1.0);
    let mut session = Session { shared, conn, rate: None, in_flight: None, token_expires, typed: Vec::new() };
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
    }

    async fn read_loop(&mut self, stream: &mut Stream, meter: &ReadMeter, shutdown: &CancellationToken) -> Ended {
        let (ping_interval, idle_timeout) = (self.shared.config.ping_interval, self.shared.config.idle_timeout);
        let mut last_heard = Instant::now();
        let mut ping = tokio::time::interval(ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await; // the first tick is immediate
        // The ping timer also wakes the connection when its token expires: no
        // timer of its own, which every idle connection would carry.
        let token_expires = tokio::time::Instant::from_std(self.token_expires);
        if token_expires < tokio::time::Instant::now() + ping_interval {
            ping.reset_at(token_expires);
        }
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
                _ = ping.tick() => {
                    // `auth` may have moved it since.
                    let token_expires = tokio::time::Instant::from_std(self.token_expires);
                    if tokio::time::Instant::now() >= token_expires {
                        out.close(CloseCode::TokenExpired, "token_expired: the token this connection opened with has expired; reconnect with a fresh one");
                        return Ended::ByServer;
                    }
                    let next = tokio::time::Instant::now() + ping_interval;
                    if token_expires < next {
                        ping.reset_at(token_expires);
                    }
                    if last_heard.elapsed() >= idle_timeout {
                        out.close(CloseCode::IdleTimeout, "idle_timeout: nothing heard from the client; reconnect and resume");
                        return Ended::ByServer;
                    }
                    let _ = out.push(Message::Ping(Default::default()));
                    continue;
                }
                message = stream.next() => message,
            };
            let message = match message {
                None => return Ended::ByPeer,
                Some(Ok(message)) => message,
                Some(Err(error)) => return self.on_read_error(error),
            };
            last_heard = Instant::now();
            meter.message_seen();
            // Backpressure: a client that does not read its replies is not served
            // until it does, instead of the server building replies it cannot send.
            // (A client that never reads is closed by the writer's timeout.)
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    out.close(CloseCode::GoingAway, "going_away: server shutting down; reconnect and resume");
                    return Ended::ByServer;
                }
                _ = out.wait_for_room() => {}
            }
            crate::metrics::get().bytes_in.increment(message.len() as u64);
            match (message, self.conn.codec) {
                // Boxed: handling a request needs far more state than waiting for one,
                // and an idle connection should only pay for the waiting.
                (Message::Binary(bytes), Codec::MsgPack) => Box::pin(self.handle_frame(&bytes)).await,
                (Message::Text(text), Codec::Json) => Box::pin(self.handle_frame(text.as_bytes())).await,
                (Message::Binary(_) | Message::Text(_), codec) => {
                    let reason = format!(
                        "wrong_frame_type: {} expects {} frames",
                        codec.subprotocol(),
                        if codec.is_binary() { "binary" } else { "text" }
                    );
                    out.close(CloseCode::WrongFrameType, reason);
                    return Ended::ByServer;
                }
                (Message::Close(_), _) => {
                    // tungstenite has queued the echo of the client's close frame;
                    // the writer must flush it, or the client sees the TCP
                    // connection dropped instead of a clean close.
                    out.close_by_peer();
                    return Ended::ByPeer;
                }
                // tungstenite answers pings itself, so they cost a write each: they
                // count as requests. Pongs only prove the peer is alive.
                (Message::Ping(_), _) => {
                    if self.admit(None).is_err() && self.close_if_flooding() {
                        return Ended::ByServer;
                    }
                }
                (Message::Pong(_) | Message::Frame(_), _) => {}
            }
        }
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
            Error::Utf8(_) => (CloseCode::InvalidPayload, "invalid_payload: text frame is not UTF-8".to_string()),
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
        // Where a refusal may come from a copy that trails the order: the copy
        // and where it stood before deciding, and the request to decide again.
        let again = match request.op.room() {
            Some(room) if self.shared.registry.broker().copies_trail() => {
                self.shared.registry.loaded().get(room).map(|copy| (copy.position(), copy, request.op.clone()))
            }
            _ => None,
        };
        let mut outcome = self.dispatch(id, request.op).await;
        if let (Err(error), Some((before, copy, op))) = (&outcome, again) {
            if may_be_stale(error.code) && caught_up(self.shared.registry.broker(), &copy, before).await {
                outcome = self.dispatch(id, op).await;
            }
        }
        if let Err(error) = outcome {
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

    /// Publishes `draft`: waits until it is ordered (so one connection's events
    /// keep the order it sent them in), not until it is durable. The reply, made
    /// by `reply` from where the event landed, goes out once it is.
    async fn publish<T, F>(&mut self, id: RequestId, draft: Draft, reply: F) -> Result<(), ErrorBody>
    where
        T: Serialize,
        F: FnOnce(Published) -> T + Send + Sync + 'static,
    {
        self.check_in_flight()?;
        let receipt = self.shared.registry.broker().publish(draft).await.map_err(|e| e.to_error())?;
        self.reply_when_durable(id, receipt, reply);
        Ok(())
    }

    /// Refuses a write while the most allowed are waiting to be stored.
    fn check_in_flight(&self) -> Result<(), ErrorBody> {
        let waiting = self.in_flight.as_ref().map_or(0, FuturesUnordered::len);
        let max = self.shared.config.limits.max_in_flight;
        if waiting >= max {
            return Err(ErrorBody::new(
                ErrorCode::RateLimited,
                format!("{waiting} requests of this connection are waiting to be stored, the most allowed; wait for their replies"),
            )
            .retry_after(50));
        }
        Ok(())
    }

    /// Replies to `id` once the ordered write of `receipt` is durable.
    fn reply_when_durable<T, F>(&mut self, id: RequestId, receipt: crate::broker::Receipt, reply: F)
    where
        T: Serialize,
        F: FnOnce(Published) -> T + Send + Sync + 'static,
    {
        let codec = self.conn.codec;
        self.in_flight.get_or_insert_with(FuturesUnordered::new).push(Box::pin(async move {
            let bytes = match receipt.durable().await {
                Ok(published) => encode_reply(codec, id, &reply(published)),
                Err(error) => encode_error(codec, id, &error.to_error()),
            };
            frame_message(codec, bytes)
        }));
    }

    /// The room's events from `since` on (oldest first), read back from the
    /// newest a page at a time; at most 100,000, the newest of them.
    async fn events_since(&self, room: &Room, since: Millis) -> Result<Vec<Event>, ErrorBody> {
        const MOST: usize = 100_000;
        let broker = self.shared.registry.broker();
        let mut before = room.position().seq.next();
        let mut newest_first = Vec::new();
        'pages: while newest_first.len() < MOST {
            let page = broker.history_before(room.id.clone(), before, 500).await.map_err(|e| e.to_error())?;
            let Some(first) = page.first() else { break };
            before = first.seq;
            for stored in page.iter().rev() {
                let Ok(event) = rmp_serde::from_slice::<Event>(&stored.body) else { continue };
                if event.ts().is_some_and(|ts| ts < since) {
                    break 'pages;
                }
                newest_first.push(event);
            }
        }
        newest_first.reverse();
        Ok(newest_first)
    }

    /// Who the other nodes say is online in `room` (none on one node).
    async fn online_elsewhere(&self, room: &Room) -> Vec<UserId> {
        self.shared.registry.broker().presence(room.id.clone()).await.unwrap_or_default()
    }

    /// Message `seq` of `room` as stored, and its annotations.
    async fn message_at(&self, room: &Room, seq: Seq) -> Result<(MessageEvent, Annotations), ErrorBody> {
        let broker = self.shared.registry.broker();
        let found = broker.events_at(room.id.clone(), vec![seq]).await.map_err(|e| e.to_error())?;
        let event = match found.first().map(|stored| rmp_serde::from_slice::<Event>(&stored.body)) {
            Some(Ok(Event::Message(message))) => message,
            _ => {
                return Err(ErrorBody::new(
                    ErrorCode::NoSuchTarget,
                    format!("room {} has no message at seq {seq} (or it is no longer held)", room.id),
                ));
            }
        };
        let rows = broker.annex(room.id.clone(), AnnexTable::Message, vec![seq]).await.map_err(|e| e.to_error())?;
        Ok((event, Annotations::read(&rows)))
    }

    /// The text message `seq` was posted with.
    async fn original_text(&self, room: &Room, seq: Seq) -> Result<hearth_protocol::Text, ErrorBody> {
        let found =
            self.shared.registry.broker().events_at(room.id.clone(), vec![seq]).await.map_err(|e| e.to_error())?;
        match found.first().map(|stored| rmp_serde::from_slice::<Event>(&stored.body)) {
            Some(Ok(Event::Message(message))) => Ok(message.text),
            _ => Err(ErrorBody::new(ErrorCode::NoSuchTarget, format!("no message at seq {seq}"))),
        }
    }

    /// Shows the messages among `events` as they are now (edits, deletions,
    /// reactions, replies), and the pins of messages with the message's text
    /// as it is now, reading their annotations in one call.
    async fn overlay(&self, room: &Room, events: &mut [Event]) -> Result<(), ErrorBody> {
        let mut targets: Vec<Seq> = events
            .iter()
            .filter_map(|e| match e {
                Event::Message(m) => Some(m.seq),
                Event::Pin(p) => p.pin.seq,
                _ => None,
            })
            .collect();
        targets.sort();
        targets.dedup();
        if targets.is_empty() {
            return Ok(());
        }
        let rows = self
            .shared
            .registry
            .broker()
            .annex(room.id.clone(), AnnexTable::Message, targets)
            .await
            .map_err(|e| e.to_error())?;
        for event in events.iter_mut() {
            match event {
                Event::Message(message) => {
                    let mine = rows.iter().filter(|r| r.target == message.seq);
                    Annotations::read(mine).apply(message);
                }
                Event::Pin(pinned) => {
                    let Some(message) = pinned.pin.seq else { continue };
                    let notes = Annotations::read(rows.iter().filter(|r| r.target == message));
                    if let Some(now) = TextNow::of(&notes) {
                        now.apply(event);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A page of a thread: its root, then the replies after `after`.
    async fn thread(&self, room: &Room, args: ThreadHistory) -> Result<HistoryPage, ErrorBody> {
        let limit = usize::from(args.limit.unwrap_or(limits::DEFAULT_PAGE_LIMIT).clamp(1, limits::MAX_PAGE_LIMIT));
        let (root, notes) = self.message_at(room, args.root).await?;
        let after = args.after.unwrap_or(Seq::ZERO);
        let later: Vec<Seq> = notes.replies.iter().copied().filter(|s| *s > after).collect();
        let more = later.len() > limit;
        let page: Vec<Seq> = later.into_iter().take(limit).collect();
        let broker = self.shared.registry.broker();
        let stored = broker.events_at(room.id.clone(), page).await.map_err(|e| e.to_error())?;
        let mut events = vec![Event::Message(root)];
        for stored in &stored {
            let event = rmp_serde::from_slice::<Event>(&stored.body)
                .map_err(|e| ErrorBody::new(ErrorCode::Internal, format!("a stored event is unreadable: {e}")))?;
            events.push(event);
        }
        self.overlay(room, &mut events).await?;
        // Replies of 8 KiB of control characters are 48 KiB each in JSON.
        let more = fit_in_frame(self.conn.codec, &mut events) || more;
        let oldest = broker.oldest(room.id.clone()).await.map_err(|e| e.to_error())?;
        Ok(HistoryPage { room: room.id.clone(), epoch: room.position().epoch, events, more, oldest })
    }

    /// A gated room (`required_role`) takes a new member who holds that role in
    /// its lobby (`parent`); without a lobby, only by invite or approval.
    async fn check_gate(&self, room: &Room, now: Millis) -> Result<(), ErrorBody> {
        let user = &self.conn.user;
        let (required, parent, member) =
            room.decide(|s| (s.record.required_role, s.record.parent.clone(), s.members.contains_key(user)));
        let Some(required) = required.filter(|_| !member) else { return Ok(()) };
        let held = match &parent {
            Some(parent) => self.current_room(parent).await?.decide(|s| s.role_of(user, now)),
            None => None,
        };
        if held.is_some_and(|held| held >= required) {
            return Ok(());
        }
        let room = &room.id;
        Err(ErrorBody::new(
            ErrorCode::Forbidden,
            match parent {
                Some(parent) => {
                    format!("room {room} is for {}s of room {parent}; ask there, or for an invite", required.as_str())
                }
                None => format!("room {room} is gated: join it with an invite, or ask its owner"),
            },
        ))
    }

    /// Orders `draft` and waits until it is durable and `room`'s copy here has
    /// applied it (in cluster mode the copy follows Redis a moment behind), so
    /// the member's next request sees it.
    async fn order(&self, room: &Room, draft: Draft) -> Result<Published, ErrorBody> {
        let receipt = self.shared.registry.broker().publish(draft).await.map_err(|e| e.to_error())?;
        let published = receipt.durable().await.map_err(|e| e.to_error())?;
        applied_within(room.wait_applied(published.seq)).await?;
        Ok(published)
    }

    /// Sends `event` to every connection of `user`, on every node.
    async fn notify_user(&self, user: UserId, event: Event) {
        match self.shared.registry.broker().notify_user(user.clone(), event.clone()).await {
            Ok(true) => {}
            Ok(false) => self.shared.registry.hub().send_to_user(&user, &event),
            Err(error) => tracing::warn!(%user, %error, "could not notify a user"),
        }
    }

    /// Orders `draft` and replies once this node's copy of the room has
    /// applied it, so the member's next request — decided on this copy — sees
    /// it (in cluster mode the copy follows Redis a moment behind). For the
    /// community tools' requests; messages reply when durable (`publish`).
    async fn publish_applied(&mut self, id: RequestId, room: &Room, draft: Draft) -> Result<(), ErrorBody> {
        let published = self.order(room, draft).await?;
        self.reply(id, &Appended { seq: published.seq, ts: published.ts, held: false }).await;
        Ok(())
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
            return Err(room::not_member(&room.id));
        }
        Ok(room)
    }

    async fn dispatch(&mut self, id: RequestId, op: Op) -> Result<(), ErrorBody> {
        let user = self.conn.user.clone();
        let now = self.shared.clock.now();
        match op {
            Op::Ping(_) => self.reply(id, &Pong { ts: self.shared.clock.now() }).await,
            Op::CreateRoom(args) => self.create_room(id, args).await?,
            Op::ListRooms(args) => {
                let limit = args.limit.unwrap_or(limits::DEFAULT_ROOM_PAGE).clamp(1, limits::MAX_ROOM_PAGE);
                let (mut rooms, more) = self.shared.registry.list_for(&user, args.after, usize::from(limit)).await?;
                let cut = fit_in_frame(self.conn.codec, &mut rooms);
                self.reply(id, &RoomList { rooms, more: more || cut }).await;
            }
            Op::Join(args) => self.join(id, args).await?,
            Op::Leave(args) => {
                let draft = self.room(&args.room).await?.decide(|s| s.decide_leave(&user))?;
                self.publish(id, draft, |_| Done {}).await?;
            }
            Op::SendMessage(args) => {
                let room = self.room(&args.room).await?;
                self.check_in_flight()?;
                let broker = self.shared.registry.broker();
                // Kept only where a copy may trail the order (a cluster), to
                // decide the post again.
                let spare = broker.copies_trail().then(|| (args.clone(), room.position()));
                let post = |s: &room::RoomState, args: hearth_protocol::ops::SendMessage, now: Millis| {
                    let slow_ms = s.check_post(&user, now)?;
                    // The order holds the member to slow mode too: two posts in a
                    // row may both pass this copy before either is applied here.
                    s.decide_post(&user, args, slow_ms, now)
                };
                let draft = room.decide(|s| post(s, args, now))?;
                let mut held = matches!(draft.event, Event::Held(_));
                let mut published = broker.publish(draft).await;
                if let (Err(BrokerError::Rejected { why: Rejection::RulesChanged, .. }), Some((args, before))) =
                    (&published, spare)
                {
                    // The settings or pins changed through another node a moment
                    // ago and this copy had not applied it: decide again on the
                    // room as it is now (probation, rules acknowledgement, slow
                    // mode), once the copy has.
                    if caught_up(broker, &room, before).await {
                        let draft = room.decide(|s| post(s, args, self.shared.clock.now()))?;
                        held = matches!(draft.event, Event::Held(_));
                        published = broker.publish(draft).await;
                    }
                }
                let receipt = published.map_err(|e| e.to_error())?;
                self.reply_when_durable(id, receipt, move |p| Appended { seq: p.seq, ts: p.ts, held });
                crate::metrics::get().messages.increment(1);
            }
            Op::HeldPosts(args) => {
                let room = self.member_room(&args.room).await?;
                let mut held = room.decide(|s| s.held_posts(&user, now))?;
                let more = fit_in_frame(self.conn.codec, &mut held);
                self.reply(id, &HeldList { held, more }).await;
            }
            Op::Release(args) => {
                let room = self.member_room(&args.room).await?;
                let draft = room.decide(|s| s.decide_release(&user, args, now))?;
                self.publish_applied(id, &room, draft).await?;
            }
            Op::History(args) => {
                let room = self.member_room(&args.room).await?;
                let page = self.history(&room, args.before, args.after, args.limit).await?;
                self.reply(id, &page).await;
            }
            Op::AddPin(args) => self.pin(id, args).await?,
            Op::RemovePin(args) => {
                let draft = self.room(&args.room).await?.decide(|s| s.decide_unpin(&user, args.pin, now))?;
                self.publish(id, draft, |p| Appended { seq: p.seq, ts: p.ts, held: false }).await?;
            }
            Op::Members(args) => {
                let room = self.member_room(&args.room).await?;
                let elsewhere = self.online_elsewhere(&room).await;
                let mut members = room.members(now);
                for member in members.iter_mut() {
                    member.online |= elsewhere.contains(&member.user);
                }
                self.reply(id, &MemberList { members }).await;
            }
            Op::Presence(args) => {
                let room = self.member_room(&args.room).await?;
                let elsewhere = self.online_elsewhere(&room).await;
                let mut users: Vec<UserId> = room.online_here().into_iter().chain(elsewhere).collect();
                let online = room.decide(|s| {
                    users.sort();
                    users.dedup();
                    users
                        .into_iter()
                        .filter_map(|user| Some(OnlineMember { role: s.role_of(&user, now)?, user }))
                        .collect::<Vec<_>>()
                });
                self.reply(id, &PresenceList { online }).await;
            }
            Op::SchedulePrompt(args) => {
                let room = self.member_room(&args.room).await?;
                let prompt = random_id();
                let draft = room.decide(|s| {
                    s.decide_schedule_prompt(&user, prompt, args.text.clone(), args.at, args.weekly, now)
                })?;
                self.order(&room, draft).await?;
                self.shared.registry.broker().index_prompts(room.id.clone(), true).await.map_err(|e| e.to_error())?;
                self.shared.prompts_relist.store(true, std::sync::atomic::Ordering::Relaxed);
                let reply = Prompt { prompt, text: args.text, next_at: args.at, weekly: args.weekly, by: Some(user) };
                self.reply(id, &reply).await;
            }
            Op::CancelPrompt(args) => {
                let room = self.member_room(&args.room).await?;
                let draft = room.decide(|s| s.decide_cancel_prompt(&user, args.prompt, now))?;
                self.order(&room, draft).await?;
                self.reply(id, &Done {}).await;
            }
            Op::Prompts(args) => {
                let room = self.member_room(&args.room).await?;
                let prompts = room.decide(|s| s.prompts(&user, now))?;
                self.reply(id, &PromptList { prompts }).await;
            }
            Op::Stats(args) => {
                let room = self.member_room(&args.room).await?;
                room.decide(|s| s.require(&user, Action::Moderate, now))?;
                let windows = match args.days {
                    Some(days) if (1..=90).contains(&days) => vec![days],
                    Some(_) => return Err(ErrorBody::new(ErrorCode::BadRequest, "days must be 1 to 90")),
                    None => vec![7, 30],
                };
                let longest = windows.iter().copied().max().unwrap_or(30);
                let events =
                    self.events_since(&room, Millis(now.0.saturating_sub(u64::from(longest) * 86_400_000))).await?;
                let windows = windows.into_iter().map(|days| room::stats::window(&events, now, days)).collect();
                self.reply(id, &RoomStats { windows }).await;
            }
            Op::Typing(args) => {
                let room = self.member_room(&args.room).await?;
                room.decide(|s| s.check_post(&user, now))?;
                let lately = |when: &Millis| now.0.saturating_sub(when.0) < TYPING_EVERY_MS;
                let recent = self.typed.iter().any(|(r, when)| *r == room.id && lately(when));
                if !recent {
                    self.typed.retain(|(r, when)| *r != room.id && lately(when));
                    self.typed.push((room.id.clone(), now));
                    let event = Event::Typing(TypingEvent { room: room.id.clone(), user: user.clone() });
                    match self.shared.registry.broker().broadcast(room.id.clone(), event.clone()).await {
                        Ok(true) => {}
                        Ok(false) | Err(_) => room.ephemeral(&event),
                    }
                }
                self.reply(id, &Done {}).await;
            }
            Op::Auth(args) => self.reauthenticate(id, args).await?,
            Op::SetRole(args) => {
                let room = self.room(&args.room).await?;
                let draft = room.decide(|s| s.decide_set_role(&user, args, now))?;
                self.publish_applied(id, &room, draft).await?;
            }
            Op::SetRoom(args) => {
                let room = self.room(&args.room).await?;
                if let Some(parent) = args.settings.parent.as_ref().filter(|p| !p.as_str().is_empty()) {
                    let parent = RoomId::new(parent.as_str())
                        .map_err(|e| ErrorBody::new(ErrorCode::BadRequest, format!("parent: {e}")))?;
                    self.room(&parent).await?;
                }
                let draft = room.decide(|s| s.decide_set_room(&user, args.settings, now))?;
                self.publish_applied(id, &room, draft).await?;
            }
            Op::Kick(args) => {
                let room = self.room(&args.room).await?;
                let draft = room.decide(|s| s.decide_kick(&user, &args.user, args.reason, now))?;
                self.publish_applied(id, &room, draft).await?;
            }
            Op::Ban(args) => {
                let room = self.room(&args.room).await?;
                let draft = room.decide(|s| s.decide_ban(&user, &args.user, args.reason, args.duration_secs, now))?;
                self.publish_applied(id, &room, draft).await?;
            }
            Op::Unban(args) => {
                let room = self.room(&args.room).await?;
                let draft = room.decide(|s| s.decide_unban(&user, &args.user, now))?;
                self.publish_applied(id, &room, draft).await?;
            }
            Op::Mute(args) => {
                let room = self.room(&args.room).await?;
                let draft = room.decide(|s| s.decide_mute(&user, &args.user, args.duration_secs, args.reason, now))?;
                self.publish_applied(id, &room, draft).await?;
            }
            Op::Unmute(args) => {
                let room = self.room(&args.room).await?;
                let draft = room.decide(|s| s.decide_unmute(&user, &args.user, now))?;
                self.publish_applied(id, &room, draft).await?;
            }
            Op::ModLog(args) => self.mod_log(id, args).await?,
            Op::OrderPins(args) => {
                let room = self.member_room(&args.room).await?;
                let draft = room.decide(|s| s.decide_order_pins(&user, args.notes, now))?;
                self.publish_applied(id, &room, draft).await?;
            }
            Op::AckRules(args) => {
                let room = self.member_room(&args.room).await?;
                let draft = room.decide(|s| s.decide_ack_rules(&user, args.version, now))?;
                self.publish_applied(id, &room, draft).await?;
            }
            Op::Edit(args) => {
                let room = self.member_room(&args.room).await?;
                let (target, notes) = self.message_at(&room, args.target).await?;
                let draft = room.decide(|s| s.decide_edit(&user, &target, &notes, args.text, now))?;
                self.publish_applied(id, &room, draft).await?;
            }
            Op::Delete(args) => {
                let room = self.member_room(&args.room).await?;
                let (target, notes) = self.message_at(&room, args.target).await?;
                let draft = room.decide(|s| s.decide_delete(&user, &target, &notes, now))?;
                self.publish_applied(id, &room, draft).await?;
            }
            Op::React(args) => {
                let room = self.member_room(&args.room).await?;
                let (target, notes) = self.message_at(&room, args.target).await?;
                let draft = room.decide(|s| s.decide_react(&user, &target, &notes, args.emoji, args.on, now))?;
                self.publish_applied(id, &room, draft).await?;
            }
            Op::Versions(args) => {
                let room = self.member_room(&args.room).await?;
                room.decide(|s| s.require(&user, Action::Moderate, now))?;
                let (target, notes) = self.message_at(&room, args.target).await?;
                let original = self.original_text(&room, args.target).await?;
                let mut versions = vec![Version { text: original, at: target.ts }];
                versions.extend(notes.versions.into_iter().map(|(_, v)| Version { text: v.text, at: v.at }));
                let more = fit_in_frame(self.conn.codec, &mut versions);
                self.reply(id, &VersionList { versions, more }).await;
            }
            Op::ThreadHistory(args) => {
                let room = self.member_room(&args.room).await?;
                let page = self.thread(&room, args).await?;
                self.reply(id, &page).await;
            }
            Op::RequestJoin(args) => {
                let room = self.room(&args.room).await?;
                let draft = room.decide(|s| s.decide_request_join(&user, args.note, now))?;
                self.order(&room, draft).await?;
                self.reply(id, &Done {}).await;
            }
            Op::JoinRequests(args) => {
                let room = self.current_room(&args.room).await?;
                let mut requests = room.decide(|s| s.join_requests(&user, now))?;
                let more = fit_in_frame(self.conn.codec, &mut requests);
                self.reply(id, &JoinRequestList { requests, more }).await;
            }
            Op::DecideJoin(args) => {
                let room = self.room(&args.room).await?;
                let (requester, approved, reason) = (args.user.clone(), args.approve, args.reason.clone());
                let draft = room.decide(|s| s.decide_on_request(&user, args, now))?;
                self.order(&room, draft).await?;
                self.reply(id, &Done {}).await;
                // The requester hears it live, on any node.
                let decision =
                    Event::JoinDecision(JoinDecisionEvent { room: room.id.clone(), approved, by: user, reason });
                self.notify_user(requester, decision).await;
            }
            Op::CreateInvite(args) => {
                let room = self.room(&args.room).await?;
                let code = invite_code();
                let invite_id = room::rows::invite_id(&code);
                let draft = room
                    .decide(|s| s.decide_create_invite(&user, invite_id.clone(), args.ttl_secs, args.max_uses, now))?;
                let expires_at = match &draft.event {
                    Event::Moderation(m) => m.until,
                    _ => None,
                };
                self.order(&room, draft).await?;
                let invite = Invite { code, id: invite_id, expires_at, max_uses: args.max_uses, uses: 0 };
                self.reply(id, &invite).await;
            }
            Op::RevokeInvite(args) => {
                let room = self.room(&args.room).await?;
                let draft = room.decide(|s| s.decide_revoke_invite(&user, &args.code, now))?;
                self.order(&room, draft).await?;
                self.reply(id, &Done {}).await;
            }
        }
        Ok(())
    }

    /// Moves the connection onto a fresh token of the same user.
    async fn reauthenticate(&mut self, id: RequestId, args: Auth) -> Result<(), ErrorBody> {
        let refused = |why: String| {
            crate::metrics::get().auth_failures.increment(1);
            ErrorBody::new(ErrorCode::Unauthorized, why)
        };
        let verified = crate::auth::verify_token(&self.shared.config.token_secret, &args.token)
            .map_err(|e| refused(format!("{e}; this connection keeps its current token")))?;
        if verified.user != self.conn.user {
            return Err(refused(format!("that token is {}'s; this connection is {}'s", verified.user, self.conn.user)));
        }
        self.shared.accounts.admit(&verified).await.map_err(|refusal| refused(refusal.reason()))?;
        self.conn.set_generation(verified.generation);
        self.token_expires = Instant::now() + verified.valid_for();
        let expires_at = Millis(verified.expires.saturating_mul(1000));
        self.reply(id, &Authed { user: verified.user, expires_at }).await;
        Ok(())
    }

    async fn create_room(&mut self, id: RequestId, args: CreateRoom) -> Result<(), ErrorBody> {
        let name = args.room.clone();
        let (record, first) = room::decide_create(&self.conn.user, args, crate::new_epoch(), self.shared.clock.now())?;
        let max_owned = self.shared.config.limits.rooms_per_user;
        let receipt =
            self.shared.registry.broker().create_room(record, first, max_owned).await.map_err(|e| e.to_error())?;
        let published = receipt.durable().await.map_err(|e| e.to_error())?;
        let room = self.room(&name).await?;
        applied_within(room.wait_applied(published.seq)).await?;
        self.reply(id, &room.decide(|s| s.info())).await;
        Ok(())
    }

    /// Join: membership (durable and applied before the reply), the reply, then
    /// the missed events, then live ones.
    async fn join(&mut self, id: RequestId, args: Join) -> Result<(), ErrorBody> {
        let user = self.conn.user.clone();
        // Decided on the room as its order stands: a ban or kick acknowledged
        // through another node a moment ago holds here too.
        let room = self.current_room(&args.room).await?;
        // A second join on the same connection restarts the stream from its `since`.
        room.unsubscribe(self.conn.id);
        self.conn.not_receiving(&room.id);
        let mut first_join = false;
        let broker = self.shared.registry.broker();
        let mut tries = 0;
        let published = loop {
            tries += 1;
            let before = room.position();
            let now = self.shared.clock.now();
            let decided = match args.invite.as_deref() {
                // With a code: the invite is the way in, whatever the room's gate.
                Some(code) if args.since.is_none() => room.decide(|s| s.decide_join_invited(&user, code, now))?,
                _ => {
                    self.check_gate(&room, now).await?;
                    room.decide(|s| s.decide_join(&user, args.since, now))?
                }
            };
            let Some(draft) = decided else { break None };
            let published = match broker.publish(draft).await {
                Ok(receipt) => receipt.durable().await,
                Err(error) => Err(error),
            };
            // The room's visibility or gate changed through another node a
            // moment ago and this copy had not applied it: decide the join
            // again on the room as it is now, once the copy has.
            if tries == 1
                && matches!(published, Err(BrokerError::Rejected { why: Rejection::RulesChanged, .. }))
                && caught_up(broker, &room, before).await
            {
                continue;
            }
            break Some(published);
        };
        if let Some(published) = published {
            match published {
                Ok(published) => {
                    first_join = true;
                    applied_within(room.wait_applied(published.seq)).await?;
                }
                // Joined meanwhile on another connection: wait to see it applied.
                Err(BrokerError::Rejected { why: Rejection::AlreadyMember, .. }) => {
                    applied_within(room.wait_for(|s| s.members.contains_key(&user))).await?;
                }
                Err(error) => return Err(error.to_error()),
            }
        }
        room.join(&self.conn, id, args.since, first_join, self.shared.clock.now()).await
    }

    /// The room's moderation log, newest first, a page at a time.
    async fn mod_log(&mut self, id: RequestId, args: ModLog) -> Result<(), ErrorBody> {
        let room = self.member_room(&args.room).await?;
        let now = self.shared.clock.now();
        room.decide(|s| s.require(&self.conn.user, Action::Moderate, now))?;
        let limit = usize::from(args.limit.unwrap_or(limits::DEFAULT_PAGE_LIMIT).clamp(1, limits::MAX_PAGE_LIMIT));
        let before = Seq(args.before.unwrap_or(u64::MAX));
        let rows = self
            .shared
            .registry
            .broker()
            .annex_before(room.id.clone(), AnnexTable::ModLog, before, limit + 1)
            .await
            .map_err(|e| e.to_error())?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in &rows {
            let entry: ModEntry = room::rows::decode(&row.value).map_err(|e| {
                ErrorBody::new(ErrorCode::Internal, format!("a moderation log entry is unreadable: {e}"))
            })?;
            entries.push(entry);
        }
        let more = entries.len() > limit;
        entries.truncate(limit);
        self.reply(id, &ModLogPage { entries, more }).await;
        Ok(())
    }

    async fn pin(&mut self, id: RequestId, args: AddPin) -> Result<(), ErrorBody> {
        let user = self.conn.user.clone();
        let room = self.member_room(&args.room).await?;
        let text = match (args.seq, args.note) {
            // The message as it is now: its newest edit; a deleted one is gone.
            (Some(seq), None) => {
                let (message, notes) = self.message_at(&room, seq).await?;
                if notes.deleted.is_some() {
                    return Err(ErrorBody::new(
                        ErrorCode::NoSuchTarget,
                        format!("message {seq} of room {} was deleted; there is nothing to pin", room.id),
                    ));
                }
                let text = notes.versions.last().map_or(message.text, |(_, newest)| newest.text.clone());
                crate::room::messages::note_of(&text)
            }
            (None, Some(note)) => note,
            _ => return Err(ErrorBody::new(ErrorCode::BadRequest, "pin takes exactly one of seq (a message) or note")),
        };
        let max_pins = self.shared.config.limits.pins_per_room;
        let now = self.shared.clock.now();
        let draft = room.decide(|s| s.decide_pin(&user, args.seq, text, args.title, args.edit, max_pins, now))?;
        let mut event = draft.event.clone();
        self.publish(id, draft, move |p| {
            // Stamped as the stored event was: the reply's pin is the event's.
            event.stamp(p.seq, p.ts);
            let Event::Pin(pinned) = event else { unreachable!("decide_pin drafts a pin") };
            Pinned { seq: p.seq, pin: pinned.pin }
        })
        .await
    }

    async fn history(
        &self,
        room: &Room,
        before: Option<Seq>,
        after: Option<Seq>,
        limit: Option<u16>,
    ) -> Result<HistoryPage, ErrorBody> {
        if before.is_some() && after.is_some() {
            return Err(ErrorBody::new(ErrorCode::BadRequest, "history takes before or after, not both"));
        }
        let limit = usize::from(limit.unwrap_or(limits::DEFAULT_PAGE_LIMIT).clamp(1, limits::MAX_PAGE_LIMIT));
        // Read the position first: a page never shows events past it, so it never
        // runs ahead of what this connection's stream has delivered.
        let position = room.position();
        let broker = self.shared.registry.broker();
        let fetched = match after {
            Some(after) => broker.history_after(room.id.clone(), after, limit + 1).await,
            None => {
                let before = before.unwrap_or(Seq::MAX).min(position.seq.next());
                broker.history_before(room.id.clone(), before, limit + 1).await
            }
        };
        let mut stored: Vec<_> =
            fetched.map_err(|e| e.to_error())?.into_iter().filter(|e| e.seq <= position.seq).collect();
        let oldest = broker.oldest(room.id.clone()).await.map_err(|e| e.to_error())?;
        let mut more = stored.len() > limit;
        if more {
            if after.is_some() {
                stored.truncate(limit);
            } else {
                stored.remove(0);
            }
        }
        // Pages go out from the end the client asked from: the oldest first when
        // paging forward, the newest first when paging back.
        if after.is_none() {
            stored.reverse();
        }
        let mut events = Vec::with_capacity(stored.len());
        let mut bytes = 0;
        let role = room
            .decide(|s| s.role_of(&self.conn.user, self.shared.clock.now()))
            .unwrap_or(hearth_protocol::Role::Member);
        for stored in &stored {
            let event = rmp_serde::from_slice::<Event>(&stored.body)
                .map_err(|e| ErrorBody::new(ErrorCode::Internal, format!("a stored event is unreadable: {e}")))?;
            if room::audience(&event) > role {
                continue;
            }
            // A page is bounded by its size in this connection's codec too: JSON
            // escapes can make a message six times longer than its MessagePack.
            bytes += match self.conn.codec {
                Codec::MsgPack => stored.body.len(),
                Codec::Json => encode_event(Codec::Json, &event).len(),
            };
            if bytes > PAGE_BYTES && !events.is_empty() {
                more = true;
                break;
            }
            events.push(event);
        }
        self.overlay(room, &mut events).await?;
        if bytes > PAGE_BYTES / 2 {
            // What messages are now (reactions, replies) adds to each: measured
            // again, keeping the end the client asked from.
            more |= fit_in_frame(self.conn.codec, &mut events);
        }
        if after.is_none() {
            events.reverse();
        }
        Ok(HistoryPage { room: room.id.clone(), epoch: position.epoch, events, more, oldest })
    }
}

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

/// A fresh id for a prompt: random, below 2^53 so JavaScript reads it exactly.
fn random_id() -> u64 {
    crate::new_epoch().0
}

/// A fresh invite code: 96 random bits, readable and typeable.
fn invite_code() -> String {
    let mut raw = [0u8; 12];
    let _ = getrandom::fill(&mut raw);
    raw.iter().map(|b| format!("{b:02x}")).collect()
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

/// Waits for a room to apply an event this connection caused, within a bound.
async fn applied_within(wait: impl Future<Output = ()>) -> Result<(), ErrorBody> {
    tokio::time::timeout(APPLY_WAIT, wait)
        .await
        .map_err(|_| ErrorBody::new(ErrorCode::Internal, "the write was not confirmed in time; retry"))
}

/// After a refusal decided on `copy`, which stood at `before` when the request
/// came: whether the room's order was then further on — an event ordered
/// through another node a moment ago (a role, a membership, a held post) may
/// be missing from what the refusal saw — and the copy has now caught up with
/// it, so deciding again may answer otherwise. Events ordered before the
/// request came are at or below the order's position read now; if that is
/// not past `before`, the copy had them all and the refusal stands.
async fn caught_up(broker: &Arc<dyn crate::Broker>, copy: &Room, before: hearth_protocol::Position) -> bool {
    let Ok(Some(order)) = broker.order_position(copy.id.clone()).await else { return false };
    if order.epoch != before.epoch || order.seq <= before.seq {
        return false;
    }
    tokio::time::timeout(STALE_WAIT, copy.wait_applied(order.seq)).await.is_ok()
}

/// Runs a write, giving up after `limit`. The timer is armed only if the write
/// cannot finish at once: almost every write fits in the socket's buffer, and a
/// timer per write is measurable on the hot path.
async fn write_within<F: std::future::Future>(
    limit: Duration,
    write: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    let mut write = std::pin::pin!(write);
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(write.as_mut().poll(cx))).await;
    match first {
        std::task::Poll::Ready(done) => Ok(done),
        std::task::Poll::Pending => tokio::time::timeout(limit, write).await,
    }
}

/// The writer's timing knobs.
#[derive(Clone, Copy)]
struct WriterConfig {
    timeout: Duration,
    coalesce: Duration,
}

impl From<&crate::Config> for WriterConfig {
    fn from(config: &crate::Config) -> Self {
        WriterConfig { timeout: config.write_timeout, coalesce: config.write_coalesce }
    }
}

/// Drains the outbound queue: every frame queued since the last write goes out in
/// one flush. Ends after sending the close frame, or when the peer stops reading.
async fn write_loop(mut sink: Sink, out: Arc<Outbound>, config: WriterConfig, conn: ConnId) {
    // Takes the queue's buffer (see `Outbound::take_queued`) and hands it back
    // once written, unless a burst grew it.
    let mut batch = VecDeque::new();
    loop {
        let mut close = out.next_batch(&mut batch).await;
        if !batch.is_empty() && !config.coalesce.is_zero() {
            // Let more frames join this write; a close found meanwhile waits its turn.
            // Boxed here and below: paths most connections never take should not
            // size every connection's writer.
            Box::pin(tokio::time::sleep(config.coalesce)).await;
            if let Taken::Closed(found) = out.take_queued(&mut batch) {
                close = Some(found);
            }
        }
        if !batch.is_empty() {
            let bytes: usize = batch.iter().map(Message::len).sum();
            let write = async {
                for message in batch.drain(..) {
                    feed_in_fragments(&mut sink, message).await?;
                }
                sink.flush().await
            };
            match write_within(config.timeout, write).await {
                Ok(Ok(())) => {
                    out.wrote(bytes);
                    crate::metrics::get().bytes_out.increment(bytes as u64);
                    let drained = std::mem::take(&mut batch);
                    // A burst grew it: let it go rather than keep its size.
                    if drained.capacity() <= BATCH_KEPT {
                        batch = out.give_back(drained);
                    }
                    continue;
                }
                // At the default level: a write that fails loses what was in it, and
                // an operator should be able to see that it happened.
                Ok(Err(error)) => tracing::info!(conn = conn.0, %error, bytes, "write failed; closing"),
                Err(_) => tracing::info!(conn = conn.0, bytes, "write timed out (the peer stopped reading); closing"),
            }
            out.close(CloseCode::GoingAway, "going_away: write failed");
            return;
        }
        if let Some(close) = close {
            if close.by_peer {
                // Flushes the close reply tungstenite queued when the client's arrived.
                let _ = Box::pin(tokio::time::timeout(config.timeout, sink.close())).await;
            } else {
                let send = tokio::time::timeout(config.timeout, sink.send(close_message(close.code, &close.reason)));
                let _ = Box::pin(send).await;
            }
            return;
        }
    }
}

/// Largest WebSocket frame the writer sends: a message larger than this (a
/// page of history, a long list) goes as a fragmented message of frames this
/// size. The socket library copies each frame into a buffer it never shrinks,
/// so a connection that once got a 1 MiB page whole would keep 1 MiB for the
/// rest of its life; in fragments it keeps about its write threshold (64 KiB,
/// `transport::websocket_config`) plus one fragment, and a peer that stops
/// reading holds the rest in the outbound queue, within its bound.
const FRAGMENT_BYTES: usize = 32 * 1024;

/// Feeds `message` to the socket, as one frame or, past [`FRAGMENT_BYTES`], as
/// consecutive fragments of it (RFC 6455, 5.4; every WebSocket client
/// reassembles them). Fragments are slices of the one encoded message.
async fn feed_in_fragments(sink: &mut Sink, message: Message) -> Result<(), tungstenite::Error> {
    use tungstenite::protocol::frame::Frame;
    use tungstenite::protocol::frame::coding::{Data, OpCode};
    if message.len() <= FRAGMENT_BYTES {
        return sink.feed(message).await;
    }
    let (payload, first): (bytes::Bytes, _) = match message {
        Message::Binary(bytes) => (bytes, Data::Binary),
        // A fragment may end inside a character: UTF-8 holds for the whole
        // message, which is what a client checks.
        Message::Text(text) => (text.into(), Data::Text),
        other => return sink.feed(other).await,
    };
    let mut opcode = OpCode::Data(first);
    let mut start = 0;
    while start < payload.len() {
        let end = (start + FRAGMENT_BYTES).min(payload.len());
        let frame = Frame::message(payload.slice(start..end), opcode, end == payload.len());
        sink.feed(Message::Frame(frame)).await?;
        opcode = OpCode::Data(Data::Continue);
        start = end;
    }
    Ok(())
}

/// Frames of room a writer's buffer keeps between writes: what one wake-up of a
/// busy room usually brings.
const BATCH_KEPT: usize = 4;
