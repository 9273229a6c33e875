//! The cluster broker: Redis holds every room's order, state and history, and
//! carries committed events to every node that has the room in memory.
//!
//! One server-side script per event ([`order.lua`](order.lua)) checks the client
//! message id, checks what the event requires of the room (membership, role,
//! space) against Redis's state — never a node's copy — assigns the next seq and
//! the time, applies the event's [`room::changes`] to the room's tables, appends
//! the event to the room's history stream (capped by count and age) and
//! publishes it on the room's sharded channel. Every key and the channel of a
//! room carry the room's name as their hash tag, so the script touches one slot
//! and the same code runs on a Redis Cluster.
//!
//! The node encodes the event once, with sentinels where the seq and the time
//! go, and the script writes them in: the bytes stored, published and sent to
//! MessagePack clients are the ones the node encoded.
//!
//! Fan-out: a node subscribes to a room's channel when the room enters its
//! memory and unsubscribes when it leaves — one subscription per room per node.
//! Published events enter the node's one delivery path, which checks
//! continuity and fills gaps from the stream. A subscription that breaks is
//! remade, and every room is then checked against Redis's head; a probe finds
//! subscriptions that stall without breaking (see [`subscriber`]).

mod accounts;
mod subscriber;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use hearth_protocol::codec::encode_event;
use hearth_protocol::ops::{PinnedNote, RoomSettings};
use hearth_protocol::{Codec, Epoch, Millis, Position, Role, RoomId, Seq, UserId};
use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::{FromRedisValue, RedisResult, Value};
use tokio_util::sync::CancellationToken;

use super::{Broker, BrokerError, BrokerFuture, Delivery, Published, Receipt};
use crate::clock::SharedClock;
use crate::room::{
    self, AnnexRow, AnnexTable, Change, Draft, MemberRecord, Rejection, Requires, RoomRecord, Row, RowTable,
};
use crate::store::{RoomListing, RoomLoad, StoreError, StoredEvent};
use subscriber::Subscriber;

/// Where the Redis is, and how to use it.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub target: RedisTarget,
    /// Every key and channel starts with this, so several deployments (or tests)
    /// can share one Redis.
    pub prefix: String,
    /// Events each room's history stream keeps, at least.
    pub history_events: usize,
    /// Events older than this leave the history stream (`None`: kept until the
    /// count cap removes them).
    pub history_age: Option<Duration>,
    /// Client message ids remembered per room for idempotent retries.
    pub dedupe_window: usize,
    /// A Redis call that takes longer fails (and the client is told to retry).
    pub timeout: Duration,
    /// How often subscriptions are probed and quiet rooms' heads compared.
    pub probe_every: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One Redis (`redis://host:port/db`).
    Single(String),
    /// A Redis Cluster, by some of its nodes.
    Cluster(Vec<String>),
}

impl RedisTarget {
    pub fn describe(&self) -> String {
        match self {
            RedisTarget::Single(url) => url.clone(),
            RedisTarget::Cluster(urls) => format!("cluster {}", urls.join(",")),
        }
    }
}

impl RedisConfig {
    pub fn new(target: RedisTarget) -> RedisConfig {
        RedisConfig {
            target,
            prefix: "hearth".into(),
            history_events: 100_000,
            history_age: None,
            dedupe_window: 4096,
            timeout: Duration::from_secs(2),
            probe_every: Duration::from_secs(2),
        }
    }
}

/// The seq and time an event is encoded with before the script knows them:
/// uint64s whose MessagePack starts `0xcf 0x00`, which no UTF-8 text holds.
const SEQ_SENTINEL: Seq = Seq(0x001F_EE5E_9A11_C371);
const TS_SENTINEL: Millis = Millis(0x001F_EE5E_9A11_C372);

/// A connection for commands: one Redis or a cluster. Both multiplex, so a clone
/// per call shares one socket per Redis node. Every call passes the
/// [`Breaker`] first.
#[derive(Clone)]
struct Commands {
    conn: CommandConn,
    breaker: Arc<Breaker>,
}

#[derive(Clone)]
enum CommandConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Commands {
    async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> RedisResult<T> {
        self.breaker.admit()?;
        let result = match &self.conn {
            CommandConn::Single(c) => cmd.query_async(&mut c.clone()).await,
            CommandConn::Cluster(c) => cmd.query_async(&mut c.clone()).await,
        };
        self.breaker.record(result)
    }

    async fn query_pipe<T: FromRedisValue>(&self, pipe: &redis::Pipeline) -> RedisResult<T> {
        self.breaker.admit()?;
        let result = match &self.conn {
            CommandConn::Single(c) => pipe.query_async(&mut c.clone()).await,
            CommandConn::Cluster(c) => pipe.query_async(&mut c.clone()).await,
        };
        self.breaker.record(result)
    }

    async fn invoke<T: FromRedisValue>(&self, call: &redis::ScriptInvocation<'_>) -> RedisResult<T> {
        self.breaker.admit()?;
        let result = match &self.conn {
            CommandConn::Single(c) => call.invoke_async(&mut c.clone()).await,
            CommandConn::Cluster(c) => call.invoke_async(&mut c.clone()).await,
        };
        self.breaker.record(result)
    }
}

/// How long calls are refused at once after Redis failed to answer, before one
/// is let through to try it again.
const RETRY_REDIS_AFTER: Duration = Duration::from_millis(250);

/// What a refused call's error says, so the error can tell it was never sent.
const NOT_SENT: &str = "not sent: Redis did not answer the last call; the node tries again every 250 ms";

/// A circuit breaker in front of Redis: once a call fails for want of an
/// answer (the connection broke, was refused, or timed out), the node knows
/// Redis is unreachable and refuses every call at once — the client is told
/// to retry — instead of queueing each behind the connection's reconnection
/// attempts and timeouts, one after another. Every [`RETRY_REDIS_AFTER`] one
/// call goes through as a trial; the first answer closes it again.
struct Breaker {
    /// 0 while Redis answers; otherwise when (ms on `started`'s clock) the
    /// next trial call may go.
    open_until: std::sync::atomic::AtomicU64,
    started: std::time::Instant,
}

impl Breaker {
    fn new() -> Breaker {
        Breaker { open_until: std::sync::atomic::AtomicU64::new(0), started: std::time::Instant::now() }
    }

    fn now_ms(&self) -> u64 {
        // Never 0, which means closed.
        self.started.elapsed().as_millis() as u64 + 1
    }

    /// Lets a call through, or refuses it without sending anything.
    fn admit(&self) -> RedisResult<()> {
        use std::sync::atomic::Ordering::Relaxed;
        let until = self.open_until.load(Relaxed);
        if until == 0 {
            return Ok(());
        }
        let now = self.now_ms();
        let next = now + RETRY_REDIS_AFTER.as_millis() as u64;
        // Past the wait, the first caller is the trial; the others wait for it.
        if now >= until && self.open_until.compare_exchange(until, next, Relaxed, Relaxed).is_ok() {
            return Ok(());
        }
        Err(redis::RedisError::from((redis::ErrorKind::Io, "Redis unreachable", NOT_SENT.to_string())))
    }

    /// Notes what a call's outcome says about Redis.
    fn record<T>(&self, result: RedisResult<T>) -> RedisResult<T> {
        use std::sync::atomic::Ordering::Relaxed;
        match &result {
            Ok(_) => {
                if self.open_until.swap(0, Relaxed) != 0 {
                    tracing::info!("Redis answers again");
                    crate::metrics::get().redis_up.set(1.0);
                }
            }
            Err(error) if unanswered(error) => {
                let next = self.now_ms() + RETRY_REDIS_AFTER.as_millis() as u64;
                if self.open_until.swap(next, Relaxed) == 0 {
                    tracing::warn!(%error, "Redis is not answering; refusing calls at once until it does");
                    crate::metrics::get().redis_up.set(0.0);
                }
            }
            // Redis answered, with an error: it is there.
            Err(_) => {}
        }
        result
    }
}

/// Whether `error` means Redis gave no answer (rather than answering with an
/// error): a connection that broke, was refused or timed out.
fn unanswered(error: &redis::RedisError) -> bool {
    error.is_timeout() || error.is_connection_dropped() || error.is_connection_refusal() || error.is_io_error()
}

/// Whether `error` is a call the breaker refused: never sent, so nothing of it
/// happened.
fn never_sent(error: &redis::RedisError) -> bool {
    error.detail() == Some(NOT_SENT)
}

/// A room's keys and channel, all in the room's hash slot.
struct RoomKeys {
    room: String,
    members: String,
    pins: String,
    log: String,
    cmids: String,
    cmid_queue: String,
    settings: String,
    channel: String,
    rows: String,
    modlog: String,
    last_post: String,
    /// The seqs of messages with annotations (sorted set, score = seq), so
    /// the annotations of messages trimmed from history can be found.
    annotated: String,
}

/// How long a node's record of who is online in a room lasts unrefreshed.
const PRESENCE_TTL_SECS: i64 = 30;

impl RoomKeys {
    fn tag(&self) -> &str {
        self.room.strip_suffix(":room").unwrap_or(&self.room)
    }

    /// Who is online in the room on `node`: a set that expires.
    fn presence(&self, node: &str) -> String {
        format!("{}:on:{node}", self.tag())
    }

    /// The nodes that recorded presence in the room.
    fn presence_nodes(&self) -> String {
        format!("{}:onnodes", self.tag())
    }

    /// The annotations of message `seq`: `PREFIX:{room}:msg:SEQ`.
    fn message(&self, seq: Seq) -> String {
        format!("{}:msg:{}", self.tag(), seq.0)
    }

    fn new(prefix: &str, room: &RoomId) -> RoomKeys {
        let tag = format!("{prefix}:{{{room}}}");
        RoomKeys {
            room: format!("{tag}:room"),
            members: format!("{tag}:members"),
            pins: format!("{tag}:pins"),
            log: format!("{tag}:log"),
            cmids: format!("{tag}:cmids"),
            cmid_queue: format!("{tag}:cmidq"),
            settings: format!("{tag}:settings"),
            channel: format!("{tag}:events"),
            rows: format!("{tag}:rows"),
            modlog: format!("{tag}:modlog"),
            last_post: format!("{tag}:lastpost"),
            annotated: format!("{tag}:annotated"),
        }
    }
}

/// The room a channel name carries events of.
fn room_of_channel(prefix: &str, channel: &[u8]) -> Option<RoomId> {
    let name = std::str::from_utf8(channel).ok()?;
    let rest = name.strip_prefix(prefix)?.strip_prefix(":{")?;
    let room = rest.strip_suffix("}:events")?;
    RoomId::new(room).ok()
}

struct Scripts {
    order: redis::Script,
    load: redis::Script,
    summary: redis::Script,
    own: redis::Script,
    restore: redis::Script,
}

impl Scripts {
    fn new() -> Scripts {
        Scripts {
            order: redis::Script::new(include_str!("order.lua")),
            load: redis::Script::new(include_str!("load.lua")),
            summary: redis::Script::new(include_str!("summary.lua")),
            own: redis::Script::new(include_str!("own.lua")),
            restore: redis::Script::new(include_str!("restore.lua")),
        }
    }
}

pub struct RedisBroker {
    shared: Arc<Shared>,
    subscriber: Subscriber,
}

/// What the broker's calls and its background tasks share.
struct Shared {
    commands: Commands,
    config: RedisConfig,
    clock: SharedClock,
    delivery: Arc<dyn Delivery>,
    /// Rooms this node has in memory, whose events it receives, with how many
    /// times each is subscribed (a room evicted while loaded again is both).
    subscribed: DashMap<RoomId, usize>,
    scripts: Scripts,
    /// This node's name in Redis (presence): random per start.
    node: String,
    /// Disabled accounts announced on the accounts' channel, and `Recheck`
    /// when the subscription was remade (announcements may have been missed).
    account_notices: tokio::sync::broadcast::Sender<crate::accounts::Notice>,
    /// When (ms on the breaker's clock) this node last found that Redis had
    /// lost its data (0: never): for a while after, a room missing from
    /// Redis may be on its way back (`Shared::room_missing`).
    lost_data_at: std::sync::atomic::AtomicU64,
}

impl RedisBroker {
    /// Connects to Redis and starts receiving; fails when Redis cannot be
    /// reached. Background tasks stop when `stop` fires.
    pub async fn connect(
        config: RedisConfig,
        clock: SharedClock,
        delivery: Arc<dyn Delivery>,
        stop: CancellationToken,
    ) -> Result<RedisBroker, BrokerError> {
        let commands = match &config.target {
            RedisTarget::Single(url) => {
                let client = redis::Client::open(url.as_str()).map_err(unavailable)?;
                let manager = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(config.timeout))
                    .set_response_timeout(Some(config.timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_secs(2));
                CommandConn::Single(client.get_connection_manager_with_config(manager).await.map_err(unavailable)?)
            }
            RedisTarget::Cluster(urls) => {
                let client = redis::cluster::ClusterClient::builder(urls.clone())
                    .connection_timeout(config.timeout)
                    .response_timeout(config.timeout)
                    .build()
                    .map_err(unavailable)?;
                CommandConn::Cluster(client.get_async_connection().await.map_err(unavailable)?)
            }
        };
        let commands = Commands { conn: commands, breaker: Arc::new(Breaker::new()) };
        let (account_notices, _) = tokio::sync::broadcast::channel(1024);
        let mut node = [0u8; 8];
        let _ = getrandom::fill(&mut node);
        let shared = Arc::new(Shared {
            node: node.iter().map(|b| format!("{b:02x}")).collect(),
            commands,
            config,
            clock,
            delivery,
            subscribed: DashMap::new(),
            scripts: Scripts::new(),
            account_notices,
            lost_data_at: std::sync::atomic::AtomicU64::new(0),
        });
        // The mark that this Redis has kept its data since a node first saw
        // it (`Shared::lost_data`).
        let _: RedisResult<Option<String>> = shared.commands.query(&shared.alive_mark()).await;
        let subscriber = Subscriber::start(shared.clone(), stop).await?;
        Ok(RedisBroker { shared, subscriber })
    }

    /// The accounts, kept in the same Redis.
    pub fn accounts(&self) -> Arc<dyn crate::accounts::AccountStore> {
        Arc::new(accounts::RedisAccounts::new(self.shared.clone()))
    }

    /// What this node hears of accounts changed through any node.
    pub fn account_notices(&self) -> tokio::sync::broadcast::Receiver<crate::accounts::Notice> {
        self.shared.account_notices.subscribe()
    }
}

/// A failed call as the broker reports it: refused before it reached Redis
/// (nothing happened), or sent and never answered (it may have happened).
fn unavailable(error: redis::RedisError) -> BrokerError {
    if never_sent(&error) || error.is_connection_refusal() {
        BrokerError::Unavailable(error.to_string())
    } else if unanswered(&error) {
        BrokerError::Unanswered(error.to_string())
    } else {
        BrokerError::Unavailable(error.to_string())
    }
}

fn corrupt(what: &'static str, detail: impl Into<String>) -> BrokerError {
    BrokerError::Store(StoreError::Corrupt { what, detail: detail.into() })
}

fn rank(role: Role) -> u8 {
    match role {
        Role::Member => 0,
        Role::Welcomer => 1,
        Role::Moderator => 2,
        Role::Owner => 3,
    }
}

fn role_of_rank(rank: u8) -> Option<Role> {
    Some(match rank {
        0 => Role::Member,
        1 => Role::Welcomer,
        2 => Role::Moderator,
        3 => Role::Owner,
        _ => return None,
    })
}

/// A member as stored: `rank:joined_at:expires`.
fn parse_member(user: UserId, value: &[u8]) -> Result<MemberRecord, BrokerError> {
    let text = std::str::from_utf8(value).map_err(|e| corrupt("member", e.to_string()))?;
    let mut parts = text.split(':');
    let bad = || corrupt("member", format!("{user}: {text:?}"));
    let role = parts.next().and_then(|r| r.parse().ok()).and_then(role_of_rank).ok_or_else(bad)?;
    let joined_at = parts.next().and_then(|t| t.parse().ok()).map(Millis).ok_or_else(bad)?;
    let role_expires_at = match parts.next() {
        Some("") | None => None,
        Some(t) => Some(Millis(t.parse().map_err(|_| bad())?)),
    };
    Ok(MemberRecord { user, role, joined_at, role_expires_at })
}

fn parse_record(blob: &[u8], settings: &[Vec<u8>]) -> Result<RoomRecord, BrokerError> {
    let mut record: RoomRecord = serde_json::from_slice(blob).map_err(|e| corrupt("room record", e.to_string()))?;
    for blob in settings {
        let update: RoomSettings = serde_json::from_slice(blob).map_err(|e| corrupt("room settings", e.to_string()))?;
        record.apply_settings(&update);
    }
    Ok(record)
}

/// A row's field in the room's rows hash: `table\x1fkey`.
fn row_field(table: RowTable, key: &str) -> String {
    format!("{}\u{1f}{key}", table.as_str())
}

/// Reads script results, which come back as nested arrays.
struct Reply(std::vec::IntoIter<Value>);

impl Reply {
    fn new(value: Value) -> Result<Reply, BrokerError> {
        match value {
            Value::Array(items) => Ok(Reply(items.into_iter())),
            other => Err(corrupt("redis reply", format!("expected an array, got {other:?}"))),
        }
    }

    fn is_empty(&self) -> bool {
        self.0.len() == 0
    }

    fn value(&mut self) -> Result<Value, BrokerError> {
        self.0.next().ok_or_else(|| corrupt("redis reply", "too short"))
    }

    fn bytes(&mut self) -> Result<Vec<u8>, BrokerError> {
        match self.value()? {
            Value::BulkString(b) => Ok(b),
            Value::SimpleString(s) => Ok(s.into_bytes()),
            Value::Int(n) => Ok(n.to_string().into_bytes()),
            other => Err(corrupt("redis reply", format!("expected a string, got {other:?}"))),
        }
    }

    fn text(&mut self) -> Result<String, BrokerError> {
        String::from_utf8(self.bytes()?).map_err(|e| corrupt("redis reply", e.to_string()))
    }

    fn number(&mut self) -> Result<u64, BrokerError> {
        match self.value()? {
            Value::Int(n) => u64::try_from(n).map_err(|_| corrupt("redis reply", format!("negative {n}"))),
            Value::BulkString(b) => std::str::from_utf8(&b)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| corrupt("redis reply", "not a number")),
            other => Err(corrupt("redis reply", format!("expected a number, got {other:?}"))),
        }
    }

    fn list(&mut self) -> Result<Reply, BrokerError> {
        Reply::new(self.value()?)
    }

    fn byte_list(&mut self) -> Result<Vec<Vec<u8>>, BrokerError> {
        let mut list = self.list()?;
        let mut out = Vec::with_capacity(list.0.len());
        while !list.is_empty() {
            out.push(list.bytes()?);
        }
        Ok(out)
    }
}

/// Stream entries (`[[id, [field, value, ...]], ...]`) as stored events.
fn stream_events(value: Value) -> Result<Vec<StoredEvent>, BrokerError> {
    Ok(stream_entries(value, b"b")?
        .into_iter()
        .map(|(seq, body)| StoredEvent { seq, body: Bytes::from(body) })
        .collect())
}

/// A stream's entries (ids `<seq>-0`) as their seq and their field `field`.
fn stream_entries(value: Value, field: &[u8]) -> Result<Vec<(Seq, Vec<u8>)>, BrokerError> {
    let mut entries = Reply::new(value)?;
    let mut found = Vec::new();
    while !entries.is_empty() {
        let mut entry = entries.list()?;
        let id = entry.text()?;
        let seq = id.split('-').next().and_then(|s| s.parse().ok()).ok_or_else(|| corrupt("stream id", id.clone()))?;
        let mut fields = entry.list()?;
        let mut body = None;
        while !fields.is_empty() {
            let name = fields.bytes()?;
            let value = fields.bytes()?;
            if name == field {
                body = Some(value);
            }
        }
        let body = body.ok_or_else(|| corrupt("stream entry", format!("{id} has no body")))?;
        found.push((Seq(seq), body));
    }
    Ok(found)
}

impl Shared {
    fn keys(&self, room: &RoomId) -> RoomKeys {
        RoomKeys::new(&self.config.prefix, room)
    }

    fn rooms_index(&self) -> String {
        format!("{}:rooms", self.config.prefix)
    }

    fn owned_key(&self, owner: &UserId) -> String {
        format!("{}:owned:{{{owner}}}", self.config.prefix)
    }

    /// The oldest time the history stream keeps, as the script's argument.
    fn oldest_kept(&self, now: Millis) -> u64 {
        self.config.history_age.map_or(0, |age| now.0.saturating_sub(age.as_millis() as u64).max(1))
    }

    /// Runs the order script for `draft`; `create` carries the room's record.
    async fn order(&self, draft: Draft, create: Option<&RoomRecord>, epoch: Epoch) -> Result<Receipt, BrokerError> {
        let actor = draft.actor().cloned().ok_or(BrokerError::NotTimeline)?;
        let room = draft.event.room().cloned().ok_or(BrokerError::NotTimeline)?;
        let mut event = draft.event;
        event.stamp(SEQ_SENTINEL, TS_SENTINEL);
        let template = encode_event(Codec::MsgPack, &event);
        let keys = self.keys(&room);
        let now = self.clock.now();
        let mut call = self.scripts.order.prepare_invoke();
        for key in [
            &keys.room,
            &keys.members,
            &keys.pins,
            &keys.log,
            &keys.cmids,
            &keys.cmid_queue,
            &keys.settings,
            &keys.channel,
            &keys.rows,
            &keys.modlog,
            &keys.last_post,
        ] {
            call.key(key);
        }
        // The annotations of the message this event is about (the same slot).
        let about = match &event {
            hearth_protocol::Event::Edit(e) => e.target,
            hearth_protocol::Event::Delete(e) => e.target,
            hearth_protocol::Event::Reaction(e) => e.target,
            hearth_protocol::Event::Message(m) => m.thread.unwrap_or(Seq::ZERO),
            _ => Seq::ZERO,
        };
        call.key(keys.message(about)).key(&keys.annotated);
        let record = match create {
            Some(record) => serde_json::to_vec(record).map_err(|e| corrupt("room record", e.to_string()))?,
            None => Vec::new(),
        };
        call.arg(if create.is_some() { "create" } else { "publish" })
            .arg(epoch.0)
            .arg(now.0)
            .arg(actor.as_str())
            .arg(draft.cmid.as_ref().map_or("", |c| c.as_str()))
            .arg(self.config.dedupe_window)
            .arg(self.config.history_events)
            .arg(self.oldest_kept(now))
            .arg(template)
            .arg(record)
            .arg(create.map_or(0, |r| r.cap));
        match &draft.requires {
            Requires::Nothing => call.arg("none").arg("").arg(0).arg(0),
            Requires::Member(user) => call.arg("member").arg(user.as_str()).arg(0).arg(0),
            Requires::Post { user, slow_ms, rules } => {
                let rules = rules.map_or_else(String::new, |seq| seq.0.to_string());
                call.arg("post").arg(user.as_str()).arg(rules).arg(*slow_ms)
            }
            Requires::Over { user, least, target } => {
                call.arg("over").arg(user.as_str()).arg(rank(*least)).arg(target.as_str())
            }
            Requires::RoleAtLeast(user, least) => call.arg("role").arg(user.as_str()).arg(rank(*least)).arg(0),
            Requires::Admit { user, rules } => {
                let rules = rules.map_or_else(String::new, |seq| seq.0.to_string());
                call.arg("admit").arg(user.as_str()).arg(rules).arg(0)
            }
            Requires::AdmitInvite { user, invite } => call.arg("admit_invite").arg(user.as_str()).arg(0).arg(invite),
            Requires::Approve { actor, user } => call.arg("approve").arg(actor.as_str()).arg(0).arg(user.as_str()),
            Requires::Decide { actor, user } => call.arg("decide").arg(actor.as_str()).arg(0).arg(user.as_str()),
            Requires::Request { user, max } => call.arg("request").arg(user.as_str()).arg(0).arg(*max),
            Requires::PinSlot { user, least, max } => call.arg("pin").arg(user.as_str()).arg(rank(*least)).arg(*max),
        };
        for change in room::changes(&event) {
            match change {
                Change::PutMember(m) => call.arg("join").arg(m.user.as_str()).arg(rank(m.role)),
                Change::RemoveMember(user) => call.arg("leave").arg(user.as_str()).arg(""),
                Change::PutPin(pin) => call.arg("pin").arg("").arg(encode_pin(&pin)?),
                Change::RemovePin(pin) => call.arg("unpin").arg(pin.0).arg(""),
                Change::UpdateSettings(settings) => call
                    .arg("settings")
                    .arg(settings.cap.map(|c| c.to_string()).unwrap_or_default())
                    .arg(serde_json::to_vec(&settings).map_err(|e| corrupt("room settings", e.to_string()))?),
                Change::SetRole { user, role, expires_at } => call.arg("role").arg(user.as_str()).arg(format!(
                    "{}:{}",
                    rank(role),
                    expires_at.map(|t| t.0.to_string()).unwrap_or_default()
                )),
                Change::PutRow(row) => call.arg("put").arg(row_field(row.table, &row.key)).arg(row.value),
                Change::RemoveRow { table, key } => call.arg("del").arg(row_field(table, &key)).arg(""),
                Change::UseInvite(id) => call.arg("useinvite").arg(row_field(RowTable::Invite, &id)).arg(""),
                // The new text, or nothing for a deletion.
                Change::RetextPins { message, text } => {
                    call.arg("pintext").arg(message.0).arg(text.as_ref().map_or("", |t| t.as_str()))
                }
                Change::PutAnnex(annex) => match annex.table {
                    AnnexTable::ModLog => call.arg("modlog").arg("").arg(annex.value),
                    AnnexTable::Message => call.arg("mput").arg(annex.key).arg(annex.value),
                },
                Change::RemoveAnnex { key, .. } => call.arg("mdel").arg(key).arg(""),
            };
        }
        let reply: Value = self.commands.invoke(&call).await.map_err(unavailable)?;
        let mut reply = Reply::new(reply)?;
        let outcome = reply.text()?;
        let rejected = |why| BrokerError::Rejected { room: room.clone(), why };
        match outcome.as_str() {
            "ok" | "dup" => {
                let seq = Seq(reply.number()?);
                let ts = Millis(reply.number()?);
                // Durable as far as Redis's persistence goes once the script ran;
                // the event reaches this node's rooms through its subscription.
                Ok(Receipt::durable_now(Published { epoch, seq, ts, duplicate: outcome == "dup" }))
            }
            "no_room" => Err(self.room_missing(&room).await),
            "exists" => Err(BrokerError::AlreadyExists(room)),
            "epoch" => {
                let current = reply.number()?;
                // The room was made again under this name (Redis lost it): the
                // node's copy is stale; have it reloaded.
                self.check_room(&room, true).await;
                Err(BrokerError::Stale { room, epoch: Epoch(current) })
            }
            "not_member" => Err(rejected(Rejection::NotMember)),
            "already_member" => Err(rejected(Rejection::AlreadyMember)),
            "full" => Err(rejected(Rejection::RoomFull { cap: reply.number()? as u32 })),
            "pins_full" => Err(rejected(Rejection::PinsFull { max: reply.number()? as usize })),
            "banned" => Err(rejected(Rejection::Banned)),
            "muted" => Err(rejected(Rejection::Muted)),
            "slow" => Err(rejected(Rejection::SlowMode { retry_ms: reply.number()? })),
            "rules_changed" => Err(rejected(Rejection::RulesChanged)),
            "invalid_invite" => Err(rejected(Rejection::InvalidInvite)),
            "no_request" => Err(rejected(Rejection::NoRequest)),
            "requests_full" => Err(rejected(Rejection::RequestsFull { max: reply.number()? as usize })),
            "outranked" => {
                let held = role_of_rank(reply.number()? as u8).unwrap_or(Role::Member);
                let target = role_of_rank(reply.number()? as u8).unwrap_or(Role::Owner);
                Err(rejected(Rejection::Outranked { held, target }))
            }
            "forbidden" => {
                let least = role_of_rank(reply.number()? as u8).unwrap_or(Role::Owner);
                let held = role_of_rank(reply.number()? as u8).unwrap_or(Role::Member);
                Err(rejected(Rejection::Forbidden { least, held }))
            }
            other => Err(corrupt("order script reply", other)),
        }
    }

    /// `SET PREFIX:alive 1 NX`: answers OK only when the mark is missing —
    /// on a Redis that lost its data (restarted empty, `FLUSHALL`), or one no
    /// node has used yet.
    fn alive_mark(&self) -> redis::Cmd {
        redis::cmd("SET").arg(format!("{}:alive", self.config.prefix)).arg(1).arg("NX").clone()
    }

    /// Whether Redis lost its data lately: its mark is gone now (put back,
    /// so every node learns it once), or this node found so within the time
    /// the nodes take to restore their rooms (a few probes).
    pub(super) async fn lost_data(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let now = self.commands.breaker.now_ms();
        let marked: RedisResult<Option<String>> = self.commands.query(&self.alive_mark()).await;
        if marked.is_ok_and(|set| set.is_some()) {
            tracing::warn!("Redis lost its data; rooms held by the nodes are being restored");
            self.lost_data_at.store(now, Relaxed);
            return true;
        }
        let at = self.lost_data_at.load(Relaxed);
        let window = (self.config.probe_every * 5).max(Duration::from_secs(2)).as_millis() as u64;
        at != 0 && now.saturating_sub(at) < window
    }

    /// What to answer for a room Redis does not have: one this node holds a
    /// copy of is restored from it now and will be back in a moment, and so
    /// may any room while Redis has just lost its data (another node may
    /// hold it); otherwise there is no such room.
    async fn room_missing(&self, room: &RoomId) -> BrokerError {
        if self.delivery.position(room).is_some() {
            self.check_room(room, true).await;
            return BrokerError::Restoring(room.clone());
        }
        if self.lost_data().await {
            BrokerError::Restoring(room.clone())
        } else {
            BrokerError::NoSuchRoom(room.clone())
        }
    }

    /// Compares the room's order in Redis with what this node applied, and has
    /// the room catch up (at once when `now`, else only if it is still behind
    /// what the previous check saw).
    async fn check_room(&self, room: &RoomId, now: bool) {
        let keys = self.keys(room);
        let read: RedisResult<(Option<u64>, Option<u64>)> =
            self.commands.query(redis::cmd("HMGET").arg(&keys.room).arg("epoch").arg("head")).await;
        match read {
            Ok((Some(epoch), Some(head))) => {
                self.delivery.resync(room, Some(Position { epoch: Epoch(epoch), seq: Seq(head) }), now);
            }
            Ok(_) => match self.restore(room).await {
                Ok(Some(at)) => self.delivery.resync(room, Some(at), true),
                Ok(None) => self.delivery.resync(room, None, now),
                Err(error) => tracing::warn!(%room, %error, "could not restore the room Redis lost"),
            },
            Err(error) => tracing::debug!(%room, %error, "could not read the room's head"),
        }
    }

    /// Makes a room Redis no longer has (it restarted empty) again from this
    /// node's copy, under a new epoch, so its members keep their room and are
    /// told `truncated` instead of finding it gone. Returns the room's position
    /// in Redis now (whichever node restored it), or `None` if this node has no
    /// copy either.
    async fn restore(&self, room: &RoomId) -> Result<Option<Position>, BrokerError> {
        let Some(copy) = self.delivery.snapshot(room) else { return Ok(None) };
        let epoch = crate::broker::new_epoch();
        let keys = self.keys(room);
        let mut record = copy.record;
        record.epoch = epoch;
        let mut call = self.scripts.restore.prepare_invoke();
        call.key(&keys.room).key(&keys.members).key(&keys.pins).key(&keys.rows);
        call.arg(serde_json::to_vec(&record).map_err(|e| corrupt("room record", e.to_string()))?)
            .arg(epoch.0)
            .arg(record.cap)
            .arg(copy.head.0)
            .arg(copy.last_ts.0)
            .arg(copy.members.len())
            .arg(copy.pins.len());
        for m in &copy.members {
            let expires = m.role_expires_at.map(|t| t.0.to_string()).unwrap_or_default();
            call.arg(m.user.as_str()).arg(format!("{}:{}:{expires}", rank(m.role), m.joined_at.0));
        }
        for pin in &copy.pins {
            call.arg(pin.pin.0).arg(encode_pin(pin)?);
        }
        for row in &copy.rows {
            call.arg(row_field(row.table, &row.key)).arg(&row.value);
        }
        let made: i64 = self.commands.invoke(&call).await.map_err(unavailable)?;
        let _: RedisResult<()> =
            self.commands.query(redis::cmd("ZADD").arg(self.rooms_index()).arg(0).arg(room.as_str())).await;
        if made == 1 {
            tracing::warn!(%room, epoch = epoch.0, head = %copy.head, "Redis had lost the room; restored it from this node's copy");
            self.lost_data_at.store(self.commands.breaker.now_ms(), std::sync::atomic::Ordering::Relaxed);
        }
        let (epoch, head): (Option<u64>, Option<u64>) = self
            .commands
            .query(redis::cmd("HMGET").arg(&keys.room).arg("epoch").arg("head"))
            .await
            .map_err(unavailable)?;
        Ok(epoch.zip(head).map(|(epoch, head)| Position { epoch: Epoch(epoch), seq: Seq(head) }))
    }

    async fn load(&self, room: &RoomId, recent: usize) -> Result<Option<RoomLoad>, BrokerError> {
        let keys = self.keys(room);
        let mut call = self.scripts.load.prepare_invoke();
        call.key(&keys.room)
            .key(&keys.members)
            .key(&keys.pins)
            .key(&keys.log)
            .key(&keys.settings)
            .key(&keys.rows)
            .arg(recent);
        let mut reply = Reply::new(self.commands.invoke(&call).await.map_err(unavailable)?)?;
        if reply.is_empty() {
            return Ok(None);
        }
        let record_blob = reply.bytes()?;
        let epoch = Epoch(reply.number()?);
        let head = Seq(reply.number()?);
        let last_ts = Millis(reply.number()?);
        let settings = reply.byte_list()?;
        let mut record = parse_record(&record_blob, &settings)?;
        record.epoch = epoch;
        let mut members = Vec::new();
        let mut flat = reply.list()?;
        while !flat.is_empty() {
            let user = flat.text()?;
            let user = UserId::new(user).map_err(|e| corrupt("member", e))?;
            members.push(parse_member(user, &flat.bytes()?)?);
        }
        let mut pins = Vec::new();
        let mut flat = reply.list()?;
        while !flat.is_empty() {
            let _id = flat.bytes()?;
            let pin: PinnedNote =
                rmp_serde::from_slice(&flat.bytes()?).map_err(|e| corrupt("pinned note", e.to_string()))?;
            pins.push(pin);
        }
        let mut recent_events = Vec::new();
        let mut flat = reply.list()?;
        while !flat.is_empty() {
            let seq = Seq(flat.number()?);
            recent_events.push(StoredEvent { seq, body: Bytes::from(flat.bytes()?) });
        }
        let mut rows = Vec::new();
        let mut flat = reply.list()?;
        while !flat.is_empty() {
            let field = flat.text()?;
            let (table, key) = field.split_once('\u{1f}').ok_or_else(|| corrupt("room row", field.clone()))?;
            let table = RowTable::parse(table).ok_or_else(|| corrupt("room row table", table))?;
            rows.push(Row { table, key: key.to_string(), value: flat.bytes()? });
        }
        Ok(Some(RoomLoad { record, members, pins, rows, head, last_ts, recent: recent_events }))
    }

    async fn summary(&self, room: RoomId, user: &UserId) -> Result<Option<RoomListing>, BrokerError> {
        let keys = self.keys(&room);
        let mut call = self.scripts.summary.prepare_invoke();
        call.key(&keys.room).key(&keys.members).key(&keys.settings).arg(user.as_str());
        let mut reply = Reply::new(self.commands.invoke(&call).await.map_err(unavailable)?)?;
        if reply.is_empty() {
            return Ok(None);
        }
        let record_blob = reply.bytes()?;
        let members = reply.number()? as u32;
        let member = reply.bytes()?;
        let record = parse_record(&record_blob, &reply.byte_list()?)?;
        let role = if member.is_empty() { None } else { Some(parse_member(user.clone(), &member)?.role) };
        Ok(Some(RoomListing { record, members, role }))
    }

    async fn history(&self, cmd: &redis::Cmd) -> Result<Vec<StoredEvent>, BrokerError> {
        let value: Value = self.commands.query(cmd).await.map_err(unavailable)?;
        stream_events(value)
    }
}

fn encode_pin(pin: &PinnedNote) -> Result<Vec<u8>, BrokerError> {
    rmp_serde::to_vec_named(pin).map_err(|e| corrupt("pinned note", e.to_string()))
}

impl Broker for RedisBroker {
    fn create_room(&self, record: RoomRecord, first: Draft, max_owned: usize) -> BrokerFuture<'_, Receipt> {
        Box::pin(async move {
            let s = &self.shared;
            let owned = s.owned_key(&record.owner);
            let mut own = s.scripts.own.prepare_invoke();
            own.key(&owned).arg(max_owned);
            let counted: i64 = s.commands.invoke(&own).await.map_err(unavailable)?;
            if counted == 0 {
                return Err(BrokerError::TooManyRooms { user: record.owner.clone(), max: max_owned });
            }
            // Listed before it exists: a listing skips names with no room behind
            // them, while a room that exists unlisted would be lost to listings.
            let indexed: RedisResult<()> =
                s.commands.query(redis::cmd("ZADD").arg(s.rooms_index()).arg(0).arg(record.room.as_str())).await;
            let result = match indexed {
                Ok(()) => s.order(first, Some(&record), record.epoch).await,
                Err(error) => Err(unavailable(error)),
            };
            if result.is_err() {
                // Not created (or not known to be): give the owner's count back.
                let _: RedisResult<()> = s.commands.query(redis::cmd("DECR").arg(&owned)).await;
            }
            result
        })
    }

    fn publish(&self, draft: Draft) -> BrokerFuture<'_, Receipt> {
        Box::pin(async move {
            let room = draft.event.room().cloned().ok_or(BrokerError::NotTimeline)?;
            // The epoch the draft was decided in; Redis refuses it if the room
            // has been made again since.
            let epoch = self.shared.delivery.position(&room).map(|p| p.epoch);
            let epoch = match epoch {
                Some(epoch) => epoch,
                None => {
                    let read: RedisResult<Option<u64>> = self
                        .shared
                        .commands
                        .query(redis::cmd("HGET").arg(self.shared.keys(&room).room).arg("epoch"))
                        .await;
                    match read.map_err(unavailable)? {
                        Some(epoch) => Epoch(epoch),
                        None => return Err(self.shared.room_missing(&room).await),
                    }
                }
            };
            self.shared.order(draft, None, epoch).await
        })
    }

    fn load_room(&self, room: RoomId, recent: usize) -> BrokerFuture<'_, Option<RoomLoad>> {
        Box::pin(async move {
            match self.shared.load(&room, recent).await? {
                Some(load) => Ok(Some(load)),
                // Not loaded here, so no copy of it here: missing for good
                // unless Redis just lost it (another node may restore it).
                None => match self.shared.room_missing(&room).await {
                    BrokerError::NoSuchRoom(_) => Ok(None),
                    restoring => Err(restoring),
                },
            }
        })
    }

    fn list_rooms(&self, user: UserId, after: Option<RoomId>, limit: usize) -> BrokerFuture<'_, Vec<RoomListing>> {
        Box::pin(async move {
            let s = &self.shared;
            let mut from = after.map_or_else(|| "-".to_string(), |a| format!("({a}"));
            let mut found = Vec::new();
            // Invite-only rooms the user is not in are skipped, so a page may take
            // several reads of the index.
            loop {
                let batch = limit.max(16);
                let names: Vec<String> = s
                    .commands
                    .query(
                        redis::cmd("ZRANGE")
                            .arg(s.rooms_index())
                            .arg(&from)
                            .arg("+")
                            .arg("BYLEX")
                            .arg("LIMIT")
                            .arg(0)
                            .arg(batch),
                    )
                    .await
                    .map_err(unavailable)?;
                let Some(last) = names.last() else { break };
                from = format!("({last}");
                let done = names.len() < batch;
                let summaries = futures_util::future::join_all(
                    names.into_iter().filter_map(|n| RoomId::new(n).ok()).map(|room| s.summary(room, &user)),
                )
                .await;
                for summary in summaries {
                    let Some(listing) = summary? else { continue };
                    let visible = listing.record.visibility != hearth_protocol::ops::Visibility::InviteOnly
                        || listing.role.is_some();
                    if visible {
                        found.push(listing);
                    }
                }
                if done || found.len() >= limit {
                    break;
                }
            }
            found.truncate(limit);
            Ok(found)
        })
    }

    fn history_after(&self, room: RoomId, after: Seq, limit: usize) -> BrokerFuture<'_, Vec<StoredEvent>> {
        Box::pin(async move {
            let Some(start) = after.0.checked_add(1) else { return Ok(Vec::new()) };
            let log = self.shared.keys(&room).log;
            let cmd = redis::cmd("XRANGE").arg(log).arg(format!("{start}-0")).arg("+").arg("COUNT").arg(limit).clone();
            self.shared.history(&cmd).await
        })
    }

    fn history_before(&self, room: RoomId, before: Seq, limit: usize) -> BrokerFuture<'_, Vec<StoredEvent>> {
        Box::pin(async move {
            let Some(end) = before.0.checked_sub(1).filter(|e| *e > 0) else { return Ok(Vec::new()) };
            let log = self.shared.keys(&room).log;
            let cmd = redis::cmd("XREVRANGE").arg(log).arg(format!("{end}-0")).arg("-").arg("COUNT").arg(limit).clone();
            let mut events = self.shared.history(&cmd).await?;
            events.reverse();
            Ok(events)
        })
    }

    fn oldest(&self, room: RoomId) -> BrokerFuture<'_, Seq> {
        Box::pin(async move {
            let s = &self.shared;
            let keys = s.keys(&room);
            let cmd = redis::cmd("XRANGE").arg(&keys.log).arg("-").arg("+").arg("COUNT").arg(1).clone();
            if let Some(first) = s.history(&cmd).await?.first() {
                return Ok(first.seq);
            }
            let head: Option<u64> =
                s.commands.query(redis::cmd("HGET").arg(&keys.room).arg("head")).await.map_err(unavailable)?;
            Ok(Seq(head.unwrap_or(0)).next())
        })
    }

    fn copies_trail(&self) -> bool {
        true
    }

    fn order_position(&self, room: RoomId) -> BrokerFuture<'_, Option<Position>> {
        Box::pin(async move {
            let keys = self.shared.keys(&room);
            let (epoch, head): (Option<u64>, Option<u64>) = self
                .shared
                .commands
                .query(redis::cmd("HMGET").arg(&keys.room).arg("epoch").arg("head"))
                .await
                .map_err(unavailable)?;
            Ok(epoch.zip(head).map(|(epoch, head)| Position { epoch: Epoch(epoch), seq: Seq(head) }))
        })
    }

    fn prompt_rooms(&self) -> BrokerFuture<'_, Vec<RoomId>> {
        Box::pin(async move {
            let key = format!("{}:promptrooms", self.shared.config.prefix);
            let names: Vec<String> =
                self.shared.commands.query(redis::cmd("SMEMBERS").arg(key)).await.map_err(unavailable)?;
            Ok(names.into_iter().filter_map(|n| RoomId::new(n).ok()).collect())
        })
    }

    fn index_prompts(&self, room: RoomId, any: bool) -> BrokerFuture<'_, ()> {
        Box::pin(async move {
            let key = format!("{}:promptrooms", self.shared.config.prefix);
            let cmd = if any { "SADD" } else { "SREM" };
            let _: i64 =
                self.shared.commands.query(redis::cmd(cmd).arg(key).arg(room.as_str())).await.map_err(unavailable)?;
            Ok(())
        })
    }

    fn broadcast(&self, room: RoomId, event: hearth_protocol::Event) -> BrokerFuture<'_, bool> {
        Box::pin(async move {
            // On the room's channel, like its events; having no seq tells them apart.
            let channel = self.shared.keys(&room).channel;
            let payload = encode_event(Codec::MsgPack, &event);
            let _: i64 = self
                .shared
                .commands
                .query(redis::cmd("SPUBLISH").arg(channel).arg(payload))
                .await
                .map_err(unavailable)?;
            Ok(true)
        })
    }

    fn set_presence(&self, room: RoomId, users: Vec<UserId>) -> BrokerFuture<'_, ()> {
        Box::pin(async move {
            let keys = self.shared.keys(&room);
            let mine = keys.presence(&self.shared.node);
            let mut pipe = redis::pipe();
            pipe.atomic().del(&mine).ignore();
            if !users.is_empty() {
                pipe.cmd("SADD").arg(&mine).arg(users.iter().map(|u| u.as_str()).collect::<Vec<_>>()).ignore();
                pipe.expire(&mine, PRESENCE_TTL_SECS).ignore();
            }
            pipe.sadd(keys.presence_nodes(), &self.shared.node).ignore();
            pipe.expire(keys.presence_nodes(), PRESENCE_TTL_SECS * 2).ignore();
            let _: () = self.shared.commands.query_pipe(&pipe).await.map_err(unavailable)?;
            Ok(())
        })
    }

    fn presence(&self, room: RoomId) -> BrokerFuture<'_, Vec<UserId>> {
        Box::pin(async move {
            let keys = self.shared.keys(&room);
            let nodes: Vec<String> = self
                .shared
                .commands
                .query(redis::cmd("SMEMBERS").arg(keys.presence_nodes()))
                .await
                .map_err(unavailable)?;
            let mut users = Vec::new();
            for node in nodes.iter().filter(|n| **n != self.shared.node) {
                let here: Vec<String> = self
                    .shared
                    .commands
                    .query(redis::cmd("SMEMBERS").arg(keys.presence(node)))
                    .await
                    .map_err(unavailable)?;
                users.extend(here.into_iter().filter_map(|u| UserId::new(u).ok()));
            }
            users.sort();
            users.dedup();
            Ok(users)
        })
    }

    fn events_at(&self, room: RoomId, seqs: Vec<Seq>) -> BrokerFuture<'_, Vec<StoredEvent>> {
        Box::pin(async move {
            let log = self.shared.keys(&room).log;
            let mut found = Vec::with_capacity(seqs.len());
            for seq in seqs {
                let id = format!("{}-0", seq.0);
                found.extend(self.shared.history(redis::cmd("XRANGE").arg(&log).arg(&id).arg(&id)).await?);
            }
            found.sort_by_key(|e| e.seq);
            Ok(found)
        })
    }

    fn notify_user(&self, user: UserId, event: hearth_protocol::Event) -> BrokerFuture<'_, bool> {
        Box::pin(async move {
            // On the channel every node listens to: "n:USER\n" and the event.
            let mut payload = format!("n:{user}\n").into_bytes();
            payload.extend_from_slice(&encode_event(Codec::MsgPack, &event));
            let channel = accounts::channel(&self.shared.config.prefix);
            let _: i64 = self
                .shared
                .commands
                .query(redis::cmd("SPUBLISH").arg(channel).arg(payload))
                .await
                .map_err(unavailable)?;
            Ok(true)
        })
    }

    fn annex(&self, room: RoomId, table: AnnexTable, targets: Vec<Seq>) -> BrokerFuture<'_, Vec<AnnexRow>> {
        Box::pin(async move {
            if targets.is_empty() {
                return Ok(Vec::new());
            }
            let keys = self.shared.keys(&room);
            // One round trip for a page's targets, however many: the keys share
            // the room's hash tag, so even on a Redis Cluster it is one node's.
            let mut pipe = redis::pipe();
            let mut rows = Vec::new();
            match table {
                AnnexTable::Message => {
                    for target in &targets {
                        pipe.cmd("HGETALL").arg(keys.message(*target));
                    }
                    let replies: Vec<Vec<(String, Vec<u8>)>> =
                        self.shared.commands.query_pipe(&pipe).await.map_err(unavailable)?;
                    for (target, fields) in targets.into_iter().zip(replies) {
                        rows.extend(fields.into_iter().map(|(key, value)| AnnexRow { table, target, key, value }));
                    }
                    rows.sort_by(|a, b| (a.target, &a.key).cmp(&(b.target, &b.key)));
                }
                AnnexTable::ModLog => {
                    for target in &targets {
                        let id = format!("{}-0", target.0);
                        pipe.cmd("XRANGE").arg(&keys.modlog).arg(&id).arg(&id);
                    }
                    let replies: Vec<Value> = self.shared.commands.query_pipe(&pipe).await.map_err(unavailable)?;
                    for value in replies {
                        for (target, value) in stream_entries(value, b"v")? {
                            rows.push(AnnexRow { table, target, key: String::new(), value });
                        }
                    }
                }
            }
            Ok(rows)
        })
    }

    fn annex_before(
        &self,
        room: RoomId,
        table: AnnexTable,
        before: Seq,
        limit: usize,
    ) -> BrokerFuture<'_, Vec<AnnexRow>> {
        Box::pin(async move {
            let Some(end) = before.0.checked_sub(1).filter(|e| *e > 0) else { return Ok(Vec::new()) };
            let stream = match table {
                AnnexTable::ModLog => self.shared.keys(&room).modlog,
                // Read by target (`annex`) only: nothing pages through them.
                AnnexTable::Message => return Ok(Vec::new()),
            };
            let cmd =
                redis::cmd("XREVRANGE").arg(stream).arg(format!("{end}-0")).arg("-").arg("COUNT").arg(limit).clone();
            let value: Value = self.shared.commands.query(&cmd).await.map_err(unavailable)?;
            Ok(stream_entries(value, b"v")?
                .into_iter()
                .map(|(target, value)| AnnexRow { table, target, key: String::new(), value })
                .collect())
        })
    }

    fn subscribe(&self, room: RoomId) -> BrokerFuture<'_, ()> {
        Box::pin(async move { self.subscriber.subscribe(room).await })
    }

    fn unsubscribe(&self, room: RoomId) -> BrokerFuture<'_, ()> {
        Box::pin(async move { self.subscriber.unsubscribe(room).await })
    }

    fn ready(&self) -> BrokerFuture<'_, ()> {
        Box::pin(async move {
            // Not ready is not ready, however the call failed (no write to be
            // unsure of here).
            let pong: String = self
                .shared
                .commands
                .query(&redis::cmd("PING"))
                .await
                .map_err(|e| BrokerError::Unavailable(e.to_string()))?;
            if pong != "PONG" {
                return Err(BrokerError::Unavailable(format!("PING answered {pong:?}")));
            }
            Ok(())
        })
    }

    fn shutdown(&self) -> BrokerFuture<'_, ()> {
        // Every acknowledged event is in Redis already; nothing is queued here.
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests;
