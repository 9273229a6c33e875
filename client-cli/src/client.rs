//! The client: one reader task routes replies to their waiting requests and events
//! to a bounded channel; one writer task sends frames. Positions of joined rooms
//! are tracked from the events the application has taken, so a resumed connection
//! asks the server for exactly what the application has not yet seen.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hearth_protocol::codec::{ServerFrame, decode_reply, decode_server_frame, encode_request};
use hearth_protocol::event::Hello;
use hearth_protocol::ops::{Appended, History, Join, Joined, Leave, ListRooms, ModAction, RoomSummary, SendMessage};
use hearth_protocol::{
    ClientMsgId, CloseCode, Codec, DecodeError, ErrorBody, ErrorCode, Event, Operation, Position, RequestId, RoomId,
    Seq, Text, limits,
};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

/// How to reach a server.
#[derive(Debug, Clone)]
pub struct Options {
    /// `ws://host:port` (a path and query are kept).
    pub url: String,
    pub token: String,
    pub codec: Codec,
    /// How long a request waits for its reply.
    pub request_timeout: Duration,
    /// For `wss://`: a PEM file of CA certificates to trust besides the public
    /// ones (a self-signed or private CA's certificate).
    pub ca_file: Option<std::path::PathBuf>,
}

impl Options {
    pub fn new(url: impl Into<String>, token: impl Into<String>, codec: Codec) -> Options {
        Options { url: url.into(), token: token.into(), codec, request_timeout: Duration::from_secs(30), ca_file: None }
    }
}

/// Why and how the server closed the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    pub code: u16,
    pub reason: String,
}

impl CloseInfo {
    /// The Hearth close code, when the code is one.
    pub fn hearth_code(&self) -> Option<CloseCode> {
        CloseCode::from_code(self.code)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect: {0}")]
    Connect(#[from] tungstenite::Error),
    #[error("bad server URL or token: {0}")]
    Setup(String),
    #[error("{0}")]
    Server(ErrorBody),
    #[error("connection closed{}", .0.as_ref().map(|c| format!(": {} {}", c.code, c.reason)).unwrap_or_default())]
    Closed(Option<CloseInfo>),
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("server sent an undecodable frame: {0}")]
    Decode(#[from] DecodeError),
}

/// Events the reader may hold for the application before it stops reading (and
/// the server, seeing its queue grow, eventually closes the connection).
const EVENT_BUFFER: usize = 4096;
/// Frames waiting for the writer.
const OUTGOING_BUFFER: usize = 256;

/// Requests waiting for their reply, by id; `None` once the connection's
/// reader has ended. A request made after that must fail at once: nothing
/// is left to answer it, and its frame may still reach a socket whose peer
/// is gone (a node killed) without an error, so it would wait out its whole
/// timeout.
type Pending = Arc<Mutex<Option<HashMap<RequestId, oneshot::Sender<Bytes>>>>>;

pub struct Client {
    options: Options,
    hello: Hello,
    outgoing: mpsc::Sender<Message>,
    pending: Pending,
    events: mpsc::Receiver<Event>,
    closed: Arc<Mutex<Option<CloseInfo>>>,
    next_id: AtomicU64,
    /// Last position the application has seen, per joined room.
    positions: HashMap<RoomId, Position>,
    cmid_prefix: String,
    next_cmid: AtomicU64,
    /// Rooms that `resume` could not replay because the server no longer held
    /// what was missed.
    truncated: Vec<RoomId>,
}

impl Client {
    /// Connects and waits for the server's `hello`.
    pub async fn connect(options: Options) -> Result<Client, ClientError> {
        let mut request = options.url.as_str().into_client_request()?;
        let headers = request.headers_mut();
        headers.insert("Sec-WebSocket-Protocol", HeaderValue::from_static(options.codec.subprotocol()));
        // No token: the URL carries the credential (`?ticket=`), or there is
        // none; the server takes one credential only.
        if !options.token.is_empty() {
            let bearer = HeaderValue::from_str(&format!("Bearer {}", options.token))
                .map_err(|_| ClientError::Setup("the token has characters a header cannot carry".into()))?;
            headers.insert("Authorization", bearer);
        }
        let config = WebSocketConfig::default()
            .max_message_size(Some(limits::MAX_SERVER_FRAME_BYTES))
            .max_frame_size(Some(limits::MAX_SERVER_FRAME_BYTES));
        let connector =
            if options.url.starts_with("wss://") { Some(tls_connector(options.ca_file.as_deref())?) } else { None };
        let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(request, Some(config), true, connector).await?;
        let (mut sink, mut stream) = ws.split();

        let closed: Arc<Mutex<Option<CloseInfo>>> = Arc::default();
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        let (event_tx, mut events) = mpsc::channel(EVENT_BUFFER);
        let (outgoing, mut outgoing_rx) = mpsc::channel::<Message>(OUTGOING_BUFFER);

        tokio::spawn(async move {
            while let Some(message) = outgoing_rx.recv().await {
                if sink.feed(message).await.is_err() {
                    return;
                }
                while let Ok(message) = outgoing_rx.try_recv() {
                    if sink.feed(message).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
            let _ = sink.close().await;
        });

        let codec = options.codec;
        // Weak: dropping the `Client` drops the last strong sender, which ends the
        // writer, which sends a close frame — the connection closes with it.
        let (reader_pending, reader_closed, reply_close) = (pending.clone(), closed.clone(), outgoing.downgrade());
        tokio::spawn(async move {
            while let Some(message) = stream.next().await {
                let frame = match message {
                    Ok(Message::Binary(bytes)) => bytes,
                    Ok(Message::Text(text)) => Bytes::from(text),
                    Ok(Message::Close(frame)) => {
                        let info = frame.map(|f| CloseInfo { code: f.code.into(), reason: f.reason.to_string() });
                        *reader_closed.lock().unwrap() = info;
                        // Completes the closing handshake: the writer flushes the
                        // close reply tungstenite has queued.
                        if let Some(reply_close) = reply_close.upgrade() {
                            let _ = reply_close.try_send(Message::Close(None));
                        }
                        break;
                    }
                    Ok(_) => continue,
                    Err(_) => break,
                };
                match decode_server_frame(codec, &frame) {
                    Ok(ServerFrame::Reply { id }) => {
                        let waiter = reader_pending.lock().unwrap().as_mut().and_then(|waiting| waiting.remove(&id));
                        if let Some(waiter) = waiter {
                            let _ = waiter.send(frame);
                        }
                    }
                    Ok(ServerFrame::Event(event)) => {
                        if event_tx.send(*event).await.is_err() {
                            break;
                        }
                    }
                    Err(error) => tracing::warn!(%error, "undecodable frame from server"),
                }
            }
            // Dropping the waiters' senders fails their requests with Closed;
            // later ones fail before they are sent (`round_trip`).
            *reader_pending.lock().unwrap() = None;
        });

        let hello = match tokio::time::timeout(options.request_timeout, events.recv()).await {
            Ok(Some(Event::Hello(hello))) => hello,
            Ok(Some(other)) => return Err(ClientError::Setup(format!("expected hello first, got {other:?}"))),
            Ok(None) => return Err(ClientError::Closed(closed.lock().unwrap().clone())),
            Err(_) => return Err(ClientError::Timeout(options.request_timeout)),
        };
        let cmid_prefix = format!("{}-{}", hello.conn, random_tag());
        Ok(Client {
            options,
            hello,
            outgoing,
            pending,
            events,
            closed,
            next_id: AtomicU64::new(1),
            positions: HashMap::new(),
            cmid_prefix,
            next_cmid: AtomicU64::new(1),
            truncated: Vec::new(),
        })
    }

    /// What the server said about this connection.
    /// The options this client connected with (its token included).
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Moves this connection onto a fresh token of the same user (the `auth`
    /// request), which a later [`resume`](Self::resume) uses too.
    pub async fn reauthenticate(&mut self, token: String) -> Result<(), ClientError> {
        self.request(hearth_protocol::ops::Auth { token: token.clone() }).await?;
        self.options.token = token;
        Ok(())
    }

    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    pub fn codec(&self) -> Codec {
        self.options.codec
    }

    /// Sends a request and waits for its reply.
    pub async fn request<O: Operation>(&self, args: O) -> Result<O::Reply, ClientError> {
        let id = RequestId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let frame = self.round_trip(id, encode_request(self.options.codec, id, &args)).await;
        decode_reply::<O>(self.options.codec, &frame?)?.map_err(ClientError::Server)
    }

    /// Sends any operation and says only whether it succeeded (its reply's
    /// body is not read): for callers that hold operations of many kinds.
    pub async fn send_op(&self, op: hearth_protocol::Op) -> Result<(), ClientError> {
        #[derive(serde::Deserialize)]
        struct AnyReply {
            #[serde(default)]
            err: Option<ErrorBody>,
        }
        let id = RequestId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let frame = self.round_trip(id, op.encode(self.options.codec, id)).await?;
        let reply: AnyReply = match self.options.codec {
            Codec::MsgPack => rmp_serde::from_slice(&frame).map_err(|e| DecodeError::Malformed(e.to_string()))?,
            Codec::Json => serde_json::from_slice(&frame).map_err(|e| DecodeError::Malformed(e.to_string()))?,
        };
        reply.err.map_or(Ok(()), |error| Err(ClientError::Server(error)))
    }

    /// Sends request `id` and waits (within the request timeout) for its reply frame.
    async fn round_trip(&self, id: RequestId, frame: Vec<u8>) -> Result<Bytes, ClientError> {
        let (tx, rx) = oneshot::channel();
        match self.pending.lock().unwrap().as_mut() {
            Some(waiting) => waiting.insert(id, tx),
            None => return Err(self.closed_error()),
        };
        let reply = async {
            self.send_frame(frame).await?;
            rx.await.map_err(|_| self.closed_error())
        };
        let frame = match tokio::time::timeout(self.options.request_timeout, reply).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout(self.options.request_timeout)),
        };
        if let Some(waiting) = self.pending.lock().unwrap().as_mut() {
            waiting.remove(&id);
        }
        frame
    }

    /// Sends raw bytes as one frame of this connection's type (for tests of bad input).
    pub async fn send_frame(&self, bytes: Vec<u8>) -> Result<(), ClientError> {
        let message = match self.options.codec {
            Codec::MsgPack => Message::Binary(bytes.into()),
            Codec::Json => Message::Text(
                String::from_utf8(bytes).map_err(|_| ClientError::Setup("JSON frames must be UTF-8".into()))?.into(),
            ),
        };
        self.send_message(message).await
    }

    /// Sends any WebSocket message as is.
    pub async fn send_message(&self, message: Message) -> Result<(), ClientError> {
        self.outgoing.send(message).await.map_err(|_| self.closed_error())
    }

    fn closed_error(&self) -> ClientError {
        ClientError::Closed(self.closed.lock().unwrap().clone())
    }

    /// The next event, or `None` once the connection has closed.
    pub async fn next_event(&mut self) -> Option<Event> {
        let event = self.events.recv().await?;
        self.track(&event);
        Some(event)
    }

    /// The next event if one has arrived already; never waits. Every event the
    /// server sent before the reply to an awaited request has arrived by then.
    pub fn try_next_event(&mut self) -> Option<Event> {
        let event = self.events.try_recv().ok()?;
        self.track(&event);
        Some(event)
    }

    /// Moves the room's position past what the application has now seen.
    fn track(&mut self, event: &Event) {
        let seq = match event {
            // The events before `next` will never come: the stream goes on from there.
            Event::Truncated(t) => Some(Seq(t.next.0.saturating_sub(1))),
            event => event.seq(),
        };
        if let (Some(room), Some(seq)) = (event.room(), seq)
            && let Some(position) = self.positions.get_mut(room)
        {
            position.seq = seq;
            if let Event::Truncated(t) = event {
                position.epoch = t.epoch;
            }
        }
        // Removed (left elsewhere, kicked, banned): nothing to resume there; a
        // later join is a new membership.
        let removed = match event {
            Event::MemberLeft(left) => Some(&left.user),
            Event::Moderation(m) if matches!(m.action, ModAction::Kick | ModAction::Ban) => m.user.as_ref(),
            // A warning that reached the room's escalation to a kick or a ban.
            Event::Moderation(m)
                if m.escalation.is_some_and(|e| matches!(e.action, ModAction::Kick | ModAction::Ban)) =>
            {
                m.user.as_ref()
            }
            _ => None,
        };
        if let (Some(room), Some(user)) = (event.room(), removed)
            && *user == self.hello.user
        {
            self.positions.remove(room);
        }
    }

    /// The next event within `limit`; `Ok(None)` when the connection closed.
    pub async fn next_event_within(&mut self, limit: Duration) -> Result<Option<Event>, ClientError> {
        tokio::time::timeout(limit, self.next_event()).await.map_err(|_| ClientError::Timeout(limit))
    }

    /// How the server closed the connection, once it has.
    pub fn close_info(&self) -> Option<CloseInfo> {
        self.closed.lock().unwrap().clone()
    }

    /// Joins a room (resuming from the last position seen, if this client was in
    /// it) and tracks its position from then on.
    pub async fn join(&mut self, room: &RoomId) -> Result<Joined, ClientError> {
        let since = self.positions.get(room).copied();
        self.join_since(room, since).await
    }

    /// Joins a room, replaying from `since` when given.
    pub async fn join_since(&mut self, room: &RoomId, since: Option<Position>) -> Result<Joined, ClientError> {
        let joined = match self.request(Join { room: room.clone(), since, invite: None }).await {
            Ok(joined) => joined,
            Err(ClientError::Server(error)) if matches!(error.code, ErrorCode::NotMember | ErrorCode::Banned) => {
                // The membership ended (the event saying so may be unread): a
                // later join is a new one, not a resume.
                self.positions.remove(room);
                return Err(ClientError::Server(error));
            }
            Err(error) => return Err(error),
        };
        let seq = match (joined.resume, since) {
            (hearth_protocol::ops::ResumeMode::Replay, Some(since)) => since.seq,
            _ => joined.room.head,
        };
        self.positions.insert(room.clone(), Position { epoch: joined.room.epoch, seq });
        Ok(joined)
    }

    /// Ends the membership of `room`; this client no longer resumes it.
    /// Every room the caller may see, by name, read page by page.
    pub async fn rooms_all(&self) -> Result<Vec<RoomSummary>, ClientError> {
        let mut list = self.request(ListRooms::default()).await?;
        while list.more {
            let after = list.rooms.last().map(|r| r.room.clone());
            let next = self.request(ListRooms { after, limit: None }).await?;
            list.rooms.extend(next.rooms);
            list.more = next.more;
        }
        Ok(list.rooms)
    }

    /// The room's whole history as the server holds it, oldest first, read
    /// page by page.
    pub async fn history_all(&self, room: &RoomId) -> Result<Vec<Event>, ClientError> {
        let mut events = Vec::new();
        let mut after = Seq(0);
        loop {
            let page = self
                .request(History { room: room.clone(), before: None, after: Some(after), limit: Some(100) })
                .await?;
            let last = page.events.last().and_then(Event::seq);
            events.extend(page.events);
            match last {
                Some(last) if page.more => after = last,
                _ => return Ok(events),
            }
        }
    }

    pub async fn leave(&mut self, room: &RoomId) -> Result<(), ClientError> {
        self.request(Leave { room: room.clone() }).await?;
        self.positions.remove(room);
        Ok(())
    }

    /// The last position the application has seen in `room`.
    pub fn position(&self, room: &RoomId) -> Option<Position> {
        self.positions.get(room).copied()
    }

    /// Sends a message with a fresh client message id.
    pub async fn send(&self, room: &RoomId, text: &str) -> Result<Appended, ClientError> {
        self.send_with_cmid(room, text, &self.new_cmid()).await
    }

    /// Sends a message with a chosen client message id (retries reuse it).
    pub async fn send_with_cmid(&self, room: &RoomId, text: &str, cmid: &ClientMsgId) -> Result<Appended, ClientError> {
        let text = Text::new(text).map_err(|e| ClientError::Setup(e.to_string()))?;
        self.request(SendMessage { room: room.clone(), text, cmid: cmid.clone(), thread: None }).await
    }

    /// Sends `args` (its `cmid` names the message) until the server answers
    /// for good: a refusal that says to retry later — `overloaded` (nothing
    /// was stored), `outcome_unknown` (it may have been), `rate_limited` — is
    /// waited out (`retry_after_ms`) and the same send made again, with the
    /// same `cmid`, so a message the server did store is stored once and
    /// answered with its `seq`. Gives up after [`RETRY_SENDS_FOR`] with the
    /// last refusal.
    pub async fn send_reliably(&self, args: SendMessage) -> Result<Appended, ClientError> {
        let deadline = tokio::time::Instant::now() + RETRY_SENDS_FOR;
        loop {
            match self.request(args.clone()).await {
                Err(ClientError::Server(refusal)) if retry_send(&refusal) => {
                    let wait = Duration::from_millis(refusal.retry_after_ms.unwrap_or(500).clamp(10, 5_000));
                    if tokio::time::Instant::now() + wait > deadline {
                        return Err(ClientError::Server(refusal));
                    }
                    tokio::time::sleep(wait).await;
                }
                answer => return answer,
            }
        }
    }

    /// A client message id unique to this client.
    pub fn new_cmid(&self) -> ClientMsgId {
        let n = self.next_cmid.fetch_add(1, Ordering::Relaxed);
        ClientMsgId::new(format!("{}-{n}", self.cmid_prefix)).expect("generated ids are valid")
    }

    /// Connects again with the same options and rejoins every room from the last
    /// position the application saw: nothing missed, nothing twice — or, where
    /// the server no longer holds what was missed, an explicit gap: those rooms
    /// are listed by [`Client::truncated_on_resume`] of the new client, and
    /// continue live from their head.
    pub async fn resume(&self) -> Result<Client, ClientError> {
        self.resume_with(self.options.clone()).await
    }

    /// [`resume`](Self::resume) through other options: another node of a
    /// cluster when this one is gone, or a fresh token.
    pub async fn resume_with(&self, options: Options) -> Result<Client, ClientError> {
        let mut next = Client::connect(options).await?;
        next.cmid_prefix.clone_from(&self.cmid_prefix);
        next.next_cmid = AtomicU64::new(self.next_cmid.load(Ordering::Relaxed));
        let mut rooms: Vec<(RoomId, Position)> = self.positions.iter().map(|(r, p)| (r.clone(), *p)).collect();
        rooms.sort_by(|a, b| a.0.cmp(&b.0));
        for (room, since) in rooms {
            if next.join_since(&room, Some(since)).await?.resume == hearth_protocol::ops::ResumeMode::Truncated {
                next.truncated.push(room);
            }
        }
        Ok(next)
    }

    /// Rooms the `resume` that made this client could not replay: events were
    /// missed there and are no longer held (read what is with `history`).
    pub fn truncated_on_resume(&self) -> &[RoomId] {
        &self.truncated
    }
}

/// How long [`Client::send_reliably`] goes on retrying a send.
pub const RETRY_SENDS_FOR: Duration = Duration::from_secs(30);

/// Whether a send refused with `refusal` is retried as it is, later.
fn retry_send(refusal: &ErrorBody) -> bool {
    matches!(refusal.code, ErrorCode::Overloaded | ErrorCode::OutcomeUnknown | ErrorCode::RateLimited)
}

/// What `wss://` connections trust: the public CAs (Mozilla's list), and the
/// certificates in `ca_file` when given. rustls with its `ring` provider only.
pub fn tls_connector(ca_file: Option<&std::path::Path>) -> Result<tokio_tungstenite::Connector, ClientError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| ClientError::Setup(format!("cannot read the CA file {}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(ClientError::Setup(format!("the CA file {} holds no CERTIFICATE", path.display())));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| ClientError::Setup(format!("a certificate in {} is unusable: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_tungstenite::Connector::Rustls(Arc::new(config)))
}

fn random_tag() -> String {
    let mut bytes = [0u8; 6];
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
