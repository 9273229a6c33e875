//! One connection: a reader that decodes and dispatches requests, and a writer task
//! that drains the connection's outbound queue and flushes once per batch. Each task
//! owns its half of the socket; they meet only at the `Outbound` queue.
//!
//! Requests from one connection are handled in order. Replies to requests that
//! append to a timeline are sent when the event is durable, so replies can arrive
//! in a different order than requests: clients match them by `id`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hearth_protocol::codec::{decode_request, encode_error, encode_event, encode_reply};
use hearth_protocol::event::Hello;
use hearth_protocol::ops::{AddPin, HistoryPage, Join, MemberList, Op, Pong, ResumeMode, RoomList};
use hearth_protocol::{CloseCode, Codec, ErrorBody, ErrorCode, Event, RequestId, RoomId, Seq, UserId, limits};
use serde::Serialize;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

use crate::Shared;
use crate::outbound::{Outbound, Taken};
use crate::rooms::{Ack, AckBody, ConnId, Room, SendOutcome, Subscriber, frame_message, now_millis};
use crate::store::StoredEvent;
use crate::transport::close_message;

type Sink = SplitSink<WebSocketStream<TcpStream>, Message>;
type Stream = SplitStream<WebSocketStream<TcpStream>>;

/// How long a connection waits for its own durable write before giving up.
/// The committer answers within milliseconds or stops the process, so this only
/// guards against a bug turning into a stuck connection.
const DURABLE_WAIT: Duration = Duration::from_secs(30);

struct Session {
    shared: Arc<Shared>,
    user: UserId,
    codec: Codec,
    conn: ConnId,
    out: Arc<Outbound>,
    /// Rooms this connection is subscribed to, to unsubscribe when it ends.
    joined: HashMap<RoomId, Arc<Room>>,
}

/// Runs a connection until the peer leaves, the queue closes, or shutdown.
pub async fn run(
    ws: WebSocketStream<TcpStream>,
    shared: Arc<Shared>,
    user: UserId,
    codec: Codec,
    conn: ConnId,
    shutdown: CancellationToken,
) {
    let (sink, stream) = ws.split();
    let out = Arc::new(Outbound::new(shared.config.outbound_queue_bytes));
    let writer = tokio::spawn(write_loop(sink, out.clone(), WriterConfig::from(&shared.config), conn));
    let mut session = Session { shared, user, codec, conn, out, joined: HashMap::new() };
    session.hello();
    let mut stream = stream;
    let ended = session.read_loop(&mut stream, &shutdown).await;
    for room in session.joined.values() {
        room.unsubscribe(session.conn);
    }
    // The writer ends after sending the close frame (or failing to).
    session.out.close(CloseCode::GoingAway, "going_away: connection ended");
    let grace = session.shared.config.write_timeout + Duration::from_secs(1);
    if tokio::time::timeout(grace, writer).await.is_err() {
        tracing::debug!(conn = conn.0, "writer did not finish in time");
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
            user: self.user.clone(),
            conn: self.conn.0,
            server: concat!("hearth-server/", env!("CARGO_PKG_VERSION")).to_string(),
            protocol: hearth_protocol::PROTOCOL_VERSION,
            max_request_bytes: limits::MAX_REQUEST_BYTES as u32,
            max_text_bytes: limits::MAX_TEXT_BYTES as u32,
        });
        let _ = self.out.push(frame_message(self.codec, encode_event(self.codec, &hello)));
    }

    async fn read_loop(&mut self, stream: &mut Stream, shutdown: &CancellationToken) -> Ended {
        let (ping_interval, idle_timeout) = (self.shared.config.ping_interval, self.shared.config.idle_timeout);
        let mut last_heard = Instant::now();
        let mut ping = tokio::time::interval(ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await; // the first tick is immediate
        loop {
            let message = tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    self.out.close(CloseCode::GoingAway, "going_away: server shutting down; reconnect and resume");
                    return Ended::ByServer;
                }
                _ = self.out.wait_closed() => return Ended::ByServer,
                _ = ping.tick() => {
                    if last_heard.elapsed() >= idle_timeout {
                        self.out.close(CloseCode::IdleTimeout, "idle_timeout: nothing heard from the client; reconnect and resume");
                        return Ended::ByServer;
                    }
                    let _ = self.out.push(Message::Ping(Default::default()));
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
            match (message, self.codec) {
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
                    self.out.close(CloseCode::WrongFrameType, reason);
                    return Ended::ByServer;
                }
                (Message::Close(_), _) => return Ended::ByPeer,
                // tungstenite answers pings itself; pongs only prove the peer is alive.
                (Message::Ping(_) | Message::Pong(_) | Message::Frame(_), _) => {}
            }
        }
    }

    fn on_read_error(&self, error: tungstenite::Error) -> Ended {
        use tungstenite::error::{CapacityError, Error};
        let (code, reason) = match error {
            Error::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
                (CloseCode::FrameTooLarge, format!("frame_too_large: {size} bytes, limit {max_size}"))
            }
            Error::Capacity(error) => (CloseCode::FrameTooLarge, format!("frame_too_large: {error}")),
            Error::Protocol(error) => (CloseCode::ProtocolError, format!("protocol_error: {error}")),
            Error::Utf8(_) => (CloseCode::ProtocolError, "protocol_error: text frame is not UTF-8".to_string()),
            error => {
                tracing::debug!(conn = self.conn.0, %error, "read ended");
                return Ended::ByPeer;
            }
        };
        self.out.close(code, reason);
        Ended::ByServer
    }

    async fn handle_frame(&mut self, frame: &[u8]) {
        let request = match decode_request(self.codec, frame) {
            Ok(request) => request,
            Err(error) => match error.id {
                Some(id) => {
                    let body = ErrorBody::new(error.code(), error.error.to_string());
                    return self.reply_error(id, &body).await;
                }
                None => {
                    tracing::debug!(conn = self.conn.0, %error, "not a request; closing");
                    return self.out.close(CloseCode::ProtocolError, format!("protocol_error: {error}"));
                }
            },
        };
        let id = request.id;
        if let Err(error) = self.dispatch(id, request.op).await {
            if error.code == ErrorCode::Internal {
                tracing::warn!(conn = self.conn.0, user = %self.user, %error, "request failed");
            }
            self.reply_error(id, &error).await;
        }
    }

    async fn reply<T: Serialize>(&self, id: RequestId, body: &T) {
        let frame = frame_message(self.codec, encode_reply(self.codec, id, body));
        let _ = self.out.push_wait(frame).await;
    }

    async fn reply_error(&self, id: RequestId, error: &ErrorBody) {
        let frame = frame_message(self.codec, encode_error(self.codec, id, error));
        let _ = self.out.push_wait(frame).await;
    }

    fn ack(&self, id: RequestId, body: AckBody) -> Ack {
        Ack::Reply { out: self.out.clone(), codec: self.codec, id, body }
    }

    async fn dispatch(&mut self, id: RequestId, op: Op) -> Result<(), ErrorBody> {
        let registry = self.shared.registry.clone();
        match op {
            Op::Ping(_) => self.reply(id, &Pong { ts: now_millis() }).await,
            Op::CreateRoom(args) => {
                let room = args.room.clone();
                let (tx, rx) = tokio::sync::oneshot::channel();
                registry.create(&self.user, args, Ack::Wake(tx))?;
                wait_durable(rx).await?;
                self.reply(id, &registry.get(&room)?.info()).await;
            }
            Op::ListRooms(_) => self.reply(id, &RoomList { rooms: registry.list_for(&self.user) }).await,
            Op::Join(args) => self.join(id, args).await?,
            Op::Leave(args) => {
                let room = registry.get(&args.room)?;
                room.leave(&self.user, self.ack(id, AckBody::Done))?;
                self.joined.remove(&args.room);
            }
            Op::SendMessage(args) => {
                let room = registry.get(&args.room)?;
                match room.send(&self.user, args, self.ack(id, AckBody::Appended))? {
                    SendOutcome::Queued => {}
                    SendOutcome::Duplicate(appended) => self.reply(id, &appended).await,
                }
            }
            Op::History(args) => {
                let room = self.member_room(&args.room)?;
                let page = self.history(&room, args.before, args.after, args.limit).await?;
                self.reply(id, &page).await;
            }
            Op::AddPin(args) => self.pin(id, args).await?,
            Op::RemovePin(args) => {
                self.shared.registry.get(&args.room)?.unpin(&self.user, args.pin, self.ack(id, AckBody::Appended))?;
            }
            Op::Members(args) => {
                let room = self.member_room(&args.room)?;
                self.reply(id, &MemberList { members: room.members() }).await;
            }
            other => {
                return Err(ErrorBody::new(
                    ErrorCode::Unsupported,
                    format!("{} is part of protocol v1 but this server does not serve it yet", other.name()),
                ));
            }
        }
        Ok(())
    }

    fn member_room(&self, room: &RoomId) -> Result<Arc<Room>, ErrorBody> {
        let room = self.shared.registry.get(room)?;
        if room.role_of(&self.user).is_none() {
            return Err(ErrorBody::new(
                ErrorCode::NotMember,
                format!("you are not a member of room {}; join it first", room.id),
            ));
        }
        Ok(room)
    }

    /// Join: membership (durable before the reply), the reply, then the missed
    /// events, then live ones.
    async fn join(&mut self, id: RequestId, args: Join) -> Result<(), ErrorBody> {
        let room = self.shared.registry.get(&args.room)?;
        // A second join on the same connection restarts the stream from its `since`.
        room.unsubscribe(self.conn);
        self.joined.remove(&args.room);
        let mut start = room.begin_join(&self.user, args.since)?;
        if let Some(durable) = start.durable.take() {
            wait_durable(durable).await?;
        }
        let store = self.shared.registry.store().clone();
        if start.joined.resume == ResumeMode::Replay && room.history_gap(&store, start.after).await? {
            start.joined.resume = ResumeMode::Truncated;
            start.after = start.joined.room.head;
        }
        self.reply(id, &start.joined).await;
        let sub = Subscriber { conn: self.conn, user: self.user.clone(), codec: self.codec, out: self.out.clone() };
        if let Err(error) = room.catch_up_and_subscribe(&store, sub, start.after).await {
            // The request already has its reply; a stream with a hole in it is worse
            // than a reconnect, which resumes from the client's last position.
            tracing::warn!(conn = self.conn.0, room = %room.id, %error, "catch-up failed; closing");
            self.out.close(
                CloseCode::InternalError,
                format!("internal_error: catch-up failed ({}); reconnect and resume", error.code),
            );
            return Ok(());
        }
        self.joined.insert(args.room, room);
        Ok(())
    }

    async fn pin(&mut self, id: RequestId, args: AddPin) -> Result<(), ErrorBody> {
        let room = self.member_room(&args.room)?;
        let text = match (args.seq, args.note) {
            (Some(seq), None) => room.message_text(self.shared.registry.store(), seq).await?,
            (None, Some(note)) => note,
            _ => return Err(ErrorBody::new(ErrorCode::BadRequest, "pin takes exactly one of seq (a message) or note")),
        };
        let (out, codec) = (self.out.clone(), self.codec);
        room.pin(&self.user, args.seq, text, args.title, |pin| Ack::Reply {
            out,
            codec,
            id,
            body: AckBody::Pinned(pin),
        })
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
        let position = room.position();
        let (store, id) = (self.shared.registry.store().clone(), room.id.clone());
        let (stored, oldest) = tokio::task::spawn_blocking(move || {
            let page = match after {
                Some(after) => store.events_after(&id, after, limit + 1),
                // Past the committed head nothing is visible yet: start below it.
                None => store.events_before(&id, before.unwrap_or(Seq::MAX).min(position.seq.next()), limit + 1),
            }?;
            Ok::<_, crate::store::StoreError>((page, store.oldest(&id)?))
        })
        .await
        .map_err(|_| ErrorBody::new(ErrorCode::Internal, "history read was cancelled"))?
        .map_err(|e| ErrorBody::new(ErrorCode::Internal, format!("reading history failed: {e}")))?;
        // Events past the committed head are on disk but not yet fanned out; they
        // belong to the next page.
        let mut stored: Vec<StoredEvent> = stored.into_iter().filter(|e| e.seq <= position.seq).collect();
        let more = stored.len() > limit;
        if more {
            if after.is_some() {
                stored.truncate(limit);
            } else {
                stored.remove(0);
            }
        }
        let events = stored
            .iter()
            .map(|e| rmp_serde::from_slice::<Event>(&e.body))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ErrorBody::new(ErrorCode::Internal, format!("a stored event is unreadable: {e}")))?;
        Ok(HistoryPage { room: room.id.clone(), epoch: position.epoch, events, more, oldest })
    }
}

async fn wait_durable(rx: tokio::sync::oneshot::Receiver<()>) -> Result<(), ErrorBody> {
    match tokio::time::timeout(DURABLE_WAIT, rx).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(ErrorBody::new(ErrorCode::Internal, "the write was not confirmed; retry")),
    }
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
    // Grows with the first burst and keeps its capacity; idle connections pay nothing.
    let mut batch = Vec::new();
    loop {
        let mut close = out.next_batch(&mut batch).await;
        if !batch.is_empty() && !config.coalesce.is_zero() {
            // Let more frames join this write; a close found meanwhile waits its turn.
            tokio::time::sleep(config.coalesce).await;
            if let Taken::Closed(found) = out.take_queued(&mut batch) {
                close = Some(found);
            }
        }
        if !batch.is_empty() {
            let write = async {
                for message in batch.drain(..) {
                    sink.feed(message).await?;
                }
                sink.flush().await
            };
            match write_within(config.timeout, write).await {
                Ok(Ok(())) => continue,
                Ok(Err(error)) => tracing::debug!(conn = conn.0, %error, "write failed"),
                Err(_) => tracing::debug!(conn = conn.0, "write timed out; the peer stopped reading"),
            }
            out.close(CloseCode::GoingAway, "going_away: write failed");
            return;
        }
        if let Some(close) = close {
            let _ = tokio::time::timeout(config.timeout, sink.send(close_message(close.code, &close.reason))).await;
            return;
        }
    }
}
