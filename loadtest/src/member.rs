//! One simulated member: a real WebSocket connection speaking the Hearth protocol.
//! It joins its room, checks every timeline event it receives (no gap, no
//! duplicate, seq order), measures message latency from the timestamp the sender
//! wrote into the text, and — if it is a sender — sends at its share of the rate
//! without waiting for acknowledgements.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use hearth_protocol::codec::encode_request;
use hearth_protocol::ops::{CreateRoom, Join, SendMessage, Visibility};
use hearth_protocol::{ClientMsgId, Codec, Epoch, Position, RequestId, RoomId, Seq, ShortText, Text};
use serde::Deserialize;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::stats::Stats;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What the run controller tells members.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    /// Connected and joined; waiting.
    Ready,
    /// Senders send at `rate` messages per second each.
    Run { rate: f64 },
    /// Stop sending; keep reading.
    Drain,
    /// Every member drops its connection and resumes.
    Storm,
    /// Slow members stop reading.
    StopReading,
    /// Close and end.
    Done,
}

/// How to reach the server.
#[derive(Clone)]
pub struct Target {
    pub url: String,
    pub codec: Codec,
}

/// The time base of the run: message texts carry microseconds since it.
#[derive(Clone, Copy)]
pub struct Clock(pub Instant);

impl Clock {
    pub fn now_us(&self) -> u64 {
        self.0.elapsed().as_micros() as u64
    }
}

/// What `wss://` targets are checked against: made once (`trust`), shared by
/// every connection.
static TLS: std::sync::OnceLock<tokio_tungstenite::Connector> = std::sync::OnceLock::new();

/// Trusts the public CAs and those in `ca_file` for `wss://` targets.
pub fn trust(ca_file: Option<&std::path::Path>) -> Result<()> {
    let connector = hearth_cli::tls_connector(ca_file)?;
    let _ = TLS.set(connector);
    Ok(())
}

/// Opens a WebSocket with the given token.
pub async fn connect(target: &Target, token: &str) -> Result<Ws> {
    let mut request = target.url.as_str().into_client_request()?;
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static(target.codec.subprotocol()));
    request.headers_mut().insert("Authorization", HeaderValue::from_str(&format!("Bearer {token}"))?);
    // Small buffers: thousands of these live in one process.
    let config = WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(16 * 1024)
        .max_message_size(Some(hearth_protocol::limits::MAX_SERVER_FRAME_BYTES));
    let tls = match target.url.starts_with("wss://") {
        true => Some(match TLS.get() {
            Some(connector) => connector.clone(),
            None => hearth_cli::tls_connector(None)?,
        }),
        false => None,
    };
    let connecting = async {
        let stream = open_tcp(request.uri()).await?;
        let (ws, _) = tokio_tungstenite::client_async_tls_with_config(request, stream, Some(config), tls).await?;
        anyhow::Ok(ws)
    };
    connecting.await.with_context(|| format!("connecting to {}", target.url))
}

/// How many loopback addresses a run's connections come from, in turn. One
/// generator stands for thousands of members on as many machines; from one
/// address, the kernel's search for a free ephemeral port grows with every
/// connection open or in `TIME_WAIT`, and a reconnect storm of 10,000 spent
/// half a second of the generator's core in `__inet_hash_connect` while the
/// server sat idle — the generator's cost, not the server's.
const LOOPBACK_SOURCES: u8 = 64;
static NEXT_SOURCE: AtomicU8 = AtomicU8::new(0);

/// A TCP connection to the URI's host, without Nagle's delay; to an IPv4
/// loopback target, from one of [`LOOPBACK_SOURCES`] addresses of 127.0.1.0/24.
async fn open_tcp(uri: &tokio_tungstenite::tungstenite::http::Uri) -> Result<TcpStream> {
    let host = uri.host().context("the URL has no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let default_port = if uri.scheme_str() == Some("wss") { 443 } else { 80 };
    let port = uri.port_u16().unwrap_or(default_port);
    let address = tokio::net::lookup_host((host, port))
        .await?
        .next()
        .with_context(|| format!("{host} resolves to no address"))?;
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let IpAddr::V4(ip) = address.ip()
        && ip.is_loopback()
    {
        let source = NEXT_SOURCE.fetch_add(1, Ordering::Relaxed) % LOOPBACK_SOURCES;
        socket.bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 1, source + 1)), 0))?;
    }
    socket.set_nodelay(true)?;
    Ok(socket.connect(address).await?)
}

/// The parts of any server frame the load test looks at, borrowed from the frame.
#[derive(Deserialize)]
struct Lean<'a> {
    #[serde(default)]
    id: Option<u64>,
    #[serde(default, borrow)]
    ev: Option<&'a str>,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default, borrow)]
    text: Option<&'a str>,
    #[serde(default)]
    ok: Option<LeanOk>,
    #[serde(default, borrow)]
    err: Option<LeanErr<'a>>,
}

#[derive(Deserialize)]
struct LeanOk {
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    room: Option<RoomField>,
}

/// `room` is a map in a join reply and a name in a create_room reply.
#[derive(Deserialize)]
#[serde(untagged)]
enum RoomField {
    Info(LeanRoom),
    Name(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct LeanRoom {
    #[serde(default)]
    head: Option<u64>,
    #[serde(default)]
    epoch: Option<u64>,
}

#[derive(Deserialize)]
struct LeanErr<'a> {
    #[serde(borrow)]
    code: &'a str,
    #[serde(default)]
    retry_after_ms: Option<u64>,
}

/// How the report names sends the server said to retry, which were.
pub const RETRIED: &str = "retried: ";

/// A send's request id: this plus its number, so a refusal names the send to
/// make again.
const SEND_IDS: u64 = 1 << 40;

/// Whether a send refused with `code` is made again, with the same cmid, after
/// the wait the server gives: not stored (`overloaded`, `rate_limited`), or
/// perhaps stored (`outcome_unknown`: the cmid stores it once either way).
fn retried(code: &str) -> bool {
    matches!(code, "overloaded" | "outcome_unknown" | "rate_limited")
}

fn decode<'a>(codec: Codec, frame: &'a [u8]) -> Option<Lean<'a>> {
    match codec {
        Codec::MsgPack => rmp_serde::from_slice(frame).ok(),
        Codec::Json => serde_json::from_slice(frame).ok(),
    }
}

fn frame(codec: Codec, bytes: Vec<u8>) -> Message {
    match codec {
        Codec::MsgPack => Message::Binary(Bytes::from(bytes)),
        Codec::Json => Message::Text(String::from_utf8(bytes).expect("JSON is UTF-8").into()),
    }
}

/// Creates `room` (ignoring `already_exists`) with a cap that fits the scenario.
pub async fn create_room(ws: &mut Ws, codec: Codec, room: &RoomId, cap: u32) -> Result<()> {
    let args =
        CreateRoom { room: room.clone(), topic: ShortText::default(), cap: Some(cap), visibility: Visibility::Open };
    ws.send(frame(codec, encode_request(codec, RequestId(1), &args))).await?;
    match await_reply(ws, codec, 1).await? {
        Ok(_) => Ok(()),
        Err(code) if code == "already_exists" => Ok(()),
        Err(code) => bail!("create_room {room}: {code}"),
    }
}

/// Joins and returns the room's position (epoch, head) from the reply.
pub async fn join(ws: &mut Ws, codec: Codec, room: &RoomId, since: Option<Position>) -> Result<Position> {
    let args = Join { room: room.clone(), since, invite: None };
    ws.send(frame(codec, encode_request(codec, RequestId(2), &args))).await?;
    match await_reply(ws, codec, 2).await? {
        Ok((epoch, head)) => Ok(Position { epoch: Epoch(epoch), seq: Seq(head) }),
        Err(code) => bail!("join {room}: {code}"),
    }
}

/// Reads until the reply to `id`, skipping events. Ok carries (epoch, head) when
/// the reply has a room.
async fn await_reply(ws: &mut Ws, codec: Codec, id: u64) -> Result<Result<(u64, u64), String>> {
    let deadline = Duration::from_secs(30);
    loop {
        let message = tokio::time::timeout(deadline, ws.next()).await.context("no reply in 30 s")?;
        let bytes = match message {
            Some(Ok(Message::Binary(b))) => b,
            Some(Ok(Message::Text(t))) => Bytes::from(t),
            Some(Ok(Message::Close(frame))) => bail!("closed: {frame:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => bail!("connection ended"),
        };
        let Some(lean) = decode(codec, &bytes) else { bail!("undecodable frame") };
        if lean.id != Some(id) {
            continue;
        }
        if let Some(err) = lean.err {
            return Ok(Err(err.code.to_string()));
        }
        let room = match lean.ok.and_then(|ok| ok.room) {
            Some(RoomField::Info(info)) => Some(info),
            _ => None,
        };
        let epoch = room.as_ref().and_then(|r| r.epoch).unwrap_or(0);
        let head = room.and_then(|r| r.head).unwrap_or(0);
        return Ok(Ok((epoch, head)));
    }
}

/// Everything a member needs to know about itself.
pub struct Member {
    pub index: usize,
    pub room_index: usize,
    pub room: RoomId,
    pub sender: bool,
    /// Never reads once told `StopReading` (slow-consumer scenario).
    pub slow: bool,
    pub token: String,
    pub target: Target,
    pub payload: usize,
}

/// Per-member state while running.
struct Tracker {
    last_seq: u64,
    epoch: u64,
    latencies: Vec<u64>,
    deliveries: u64,
}

impl Member {
    /// Runs the member until `Done`. `ws` is already joined at `position`.
    pub async fn run(
        self,
        mut ws: Ws,
        position: Position,
        stats: Arc<Stats>,
        clock: Clock,
        mut phase: watch::Receiver<Phase>,
        storm_done: tokio::sync::mpsc::Sender<Duration>,
    ) {
        let codec = self.target.codec;
        stats.member_last[self.index].store(position.seq.0, Ordering::Relaxed);
        let mut tracker = Tracker {
            last_seq: position.seq.0,
            epoch: position.epoch.0,
            latencies: Vec::with_capacity(512),
            deliveries: 0,
        };
        let mut sent = 0u64;
        // Sends refused for now, by number, with when to make them again.
        let mut retries: std::collections::VecDeque<(Instant, u64)> = Default::default();
        let mut run_started: Option<(Instant, u64)> = None;
        let mut rate = 0.0;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut reading = true;
        let mut storm: Option<(Instant, u64)> = None;
        let filler = "x".repeat(self.payload);
        loop {
            tokio::select! {
                changed = phase.changed() => {
                    if changed.is_err() { break; }
                    let now = *phase.borrow_and_update();
                    tracker.flush(&stats);
                    match now {
                        Phase::Run { rate: r } => { rate = r; run_started = Some((Instant::now(), sent)); }
                        Phase::Drain | Phase::Ready => { rate = 0.0; run_started = None; }
                        Phase::StopReading if self.slow => reading = false,
                        Phase::StopReading => {}
                        Phase::Storm => {
                            let head = stats.room_heads[self.room_index].load(Ordering::Acquire);
                            let started = Instant::now();
                            let since = Position { epoch: Epoch(tracker.epoch), seq: Seq(tracker.last_seq) };
                            drop(ws);
                            ws = match reconnect(&self, since).await {
                                Ok(ws) => ws,
                                Err(e) => { stats.error(format!("storm reconnect: {e:#}")); return; }
                            };
                            storm = Some((started, head));
                            if tracker.last_seq >= head {
                                let _ = storm_done.send(started.elapsed()).await;
                                storm = None;
                            }
                        }
                        Phase::Done => break,
                    }
                }
                _ = tick.tick(), if self.sender && (rate > 0.0 || !retries.is_empty()) => {
                    // Refused sends whose wait is over go again, with their cmid.
                    let mut again = Vec::new();
                    while retries.front().is_some_and(|(at, _)| *at <= Instant::now()) {
                        again.extend(retries.pop_front().map(|(_, n)| n));
                    }
                    let due = match run_started {
                        Some((t0, base)) if rate > 0.0 => (t0.elapsed().as_secs_f64() * rate) as u64 + base,
                        _ => sent,
                    };
                    // Cap one burst so a stalled task does not flood on wake-up.
                    let burst = due.saturating_sub(sent).min(1000);
                    let fresh = sent..sent + burst;
                    for n in again.into_iter().chain(fresh) {
                        let text = message_text(clock.now_us(), self.index, n, &filler, self.payload);
                        let args = SendMessage {
                            room: self.room.clone(),
                            text: Text::new(text).expect("payload within limits"),
                            cmid: ClientMsgId::new(format!("{}-{n}", self.index)).expect("valid cmid"),
                            thread: None,
                        };
                        if ws.feed(frame(codec, encode_request(codec, RequestId(SEND_IDS + n), &args))).await.is_err() {
                            stats.error("send failed");
                            return;
                        }
                        if n == sent {
                            sent += 1;
                            if stats.measuring() { stats.sent.fetch_add(1, Ordering::Relaxed); }
                        }
                    }
                    if ws.flush().await.is_err() {
                        stats.error("send failed");
                        return;
                    }
                }
                message = ws.next(), if reading => {
                    let bytes = match message {
                        Some(Ok(Message::Binary(b))) => b,
                        Some(Ok(Message::Text(t))) => Bytes::from(t),
                        Some(Ok(Message::Close(close))) => {
                            let code = close.map(|c| u16::from(c.code)).unwrap_or(0);
                            stats.error(format!("closed by server ({code})"));
                            break;
                        }
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => { stats.error(format!("read error: {e}")); break; }
                        None => { stats.error("connection ended"); break; }
                    };
                    self.on_frame(codec, &bytes, &mut tracker, &stats, clock, &mut retries);
                    if let Some((started, head)) = storm
                        && tracker.last_seq >= head {
                            let _ = storm_done.send(started.elapsed()).await;
                            storm = None;
                        }
                }
            }
        }
        tracker.flush(&stats);
        let _ = ws.close(None).await;
    }

    fn on_frame(
        &self,
        codec: Codec,
        bytes: &[u8],
        tracker: &mut Tracker,
        stats: &Stats,
        clock: Clock,
        retries: &mut std::collections::VecDeque<(Instant, u64)>,
    ) {
        let Some(lean) = decode(codec, bytes) else {
            stats.error("undecodable frame");
            return;
        };
        if let Some(id) = lean.id {
            match (lean.ok, lean.err) {
                // What a client is told to do with it: the same send again,
                // later. Shown in the report, and never counted as lost.
                (_, Some(err)) if id >= SEND_IDS && retried(err.code) => {
                    stats.error(format!("{RETRIED}{}", err.code));
                    let wait = Duration::from_millis(err.retry_after_ms.unwrap_or(500).clamp(10, 5_000));
                    let at = Instant::now() + wait;
                    // Waits are short and alike: keep the queue in time order.
                    let place = retries.partition_point(|(t, _)| *t <= at);
                    retries.insert(place, (at, id - SEND_IDS));
                }
                (_, Some(err)) => stats.error(format!("error reply: {}", err.code)),
                (Some(ok), None) => {
                    if let Some(seq) = ok.seq {
                        stats.room_heads[self.room_index].fetch_max(seq, Ordering::AcqRel);
                        if stats.measuring() {
                            stats.acked.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                (None, None) => stats.error("reply without ok or err"),
            }
            return;
        }
        let Some(seq) = lean.seq else { return };
        if seq <= tracker.last_seq {
            stats.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if seq > tracker.last_seq + 1 {
            stats.gaps.fetch_add(seq - tracker.last_seq - 1, Ordering::Relaxed);
        }
        tracker.last_seq = seq;
        stats.member_last[self.index].store(seq, Ordering::Relaxed);
        if lean.ev != Some("message") || !stats.measuring() {
            return;
        }
        if let Some(sent_us) = lean.text.and_then(|t| t.get(..20)).and_then(|t| t.parse::<u64>().ok()) {
            tracker.latencies.push(clock.now_us().saturating_sub(sent_us));
            tracker.deliveries += 1;
            if tracker.latencies.len() >= 512 {
                tracker.flush(stats);
            }
        }
    }
}

impl Tracker {
    fn flush(&mut self, stats: &Stats) {
        stats.record_latencies(&mut self.latencies);
        stats.deliveries.fetch_add(std::mem::take(&mut self.deliveries), Ordering::Relaxed);
    }
}

async fn reconnect(member: &Member, since: Position) -> Result<Ws> {
    let mut ws = connect(&member.target, &member.token).await?;
    join(&mut ws, member.target.codec, &member.room, Some(since)).await?;
    Ok(ws)
}

/// `TIMESTAMP(20)|MEMBER|N|xxxx...` padded to `payload` bytes.
fn message_text(ts_us: u64, member: usize, n: u64, filler: &str, payload: usize) -> String {
    let mut text = format!("{ts_us:020}|{member}|{n}|");
    let pad = payload.saturating_sub(text.len());
    text.push_str(&filler[..pad.min(filler.len())]);
    text
}
