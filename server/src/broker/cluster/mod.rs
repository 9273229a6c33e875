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
mod batch;
mod commands;
mod keys;
mod reads;
mod reply;
mod script;
mod subscriber;

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use hearth_protocol::codec::encode_event;
use hearth_protocol::{Codec, Epoch, Millis, Position, RoomId, Seq, UserId};
use redis::{RedisResult, Value};
use tokio_util::sync::CancellationToken;

use super::{Broker, BrokerError, BrokerFuture, Delivery, Receipt};
use crate::clock::SharedClock;
use crate::room::{AnnexRow, AnnexTable, Draft, RoomRecord};
use crate::store::{RoomListing, RoomLoad, StoredEvent};
use commands::{Breaker, CommandConn, Commands, unavailable};
use keys::{PRESENCE_TTL_SECS, RoomKeys, room_of_channel};
use reply::stream_entries;
use script::Scripts;
use subscriber::Subscriber;

/// Entries the search feed keeps, about: a node that falls further behind
/// reads every room again.
const SEARCH_FEED_LENGTH: usize = 100_000;
/// How often a node adds the rooms that moved to the search feed (nodes read
/// it every 250 ms).
const SEARCH_FEED_EVERY: Duration = Duration::from_millis(100);
/// Rooms named by one entry of the search feed, at most.
const SEARCH_FEED_ROOMS_PER_ENTRY: usize = 500;

/// A stream entry id (`MS-N`) as numbers, to compare.
fn stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, n) = id.split_once('-')?;
    Some((ms.parse().ok()?, n.parse().ok()?))
}

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
pub(super) const SEQ_SENTINEL: Seq = Seq(0x001F_EE5E_9A11_C371);
pub(super) const TS_SENTINEL: Millis = Millis(0x001F_EE5E_9A11_C372);

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
    /// Where order-script calls wait for the next batch (one Redis; a Redis
    /// Cluster's are sent one by one).
    orders: Option<batch::Batcher>,
    /// Rooms that moved since the search feed's last entry, with their seqs.
    search_pending: std::sync::Mutex<std::collections::HashMap<RoomId, Seq>>,
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
        let orders = match &config.target {
            RedisTarget::Single(_) => Some(batch::Batcher::start(commands.clone(), script::ORDER_LUA, stop.clone())),
            RedisTarget::Cluster(_) => None,
        };
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
            search_pending: Default::default(),
            orders,
        });
        // The mark that this Redis has kept its data since a node first saw
        // it (`Shared::lost_data`).
        let _: RedisResult<Option<String>> = shared.commands.query(&shared.alive_mark()).await;
        tokio::spawn(shared.clone().feed_search_until(stop.clone()));
        let subscriber = Subscriber::start(shared.clone(), stop).await?;
        Ok(RedisBroker { shared, subscriber })
    }

    /// The accounts, kept in the same Redis.
    pub fn accounts(&self) -> Arc<dyn crate::accounts::AccountStore> {
        Arc::new(accounts::RedisAccounts::new(self.shared.clone()))
    }

    /// Read positions, in Redis like the rooms.
    pub fn reads(&self) -> Arc<dyn crate::reads::ReadStore> {
        Arc::new(reads::RedisReads::new(self.shared.clone()))
    }

    /// What this node hears of accounts changed through any node.
    pub fn account_notices(&self) -> tokio::sync::broadcast::Receiver<crate::accounts::Notice> {
        self.shared.account_notices.subscribe()
    }
}

impl Shared {
    fn keys(&self, room: &RoomId) -> RoomKeys {
        RoomKeys::new(&self.config.prefix, room)
    }

    /// Names the rooms whose messages changed, for every node's search
    /// index (`search.rs`): a stream of (room, seq), trimmed to its newest
    /// `SEARCH_FEED_LENGTH`, outside any room's slot.
    fn search_feed_key(&self) -> String {
        format!("{}:search", self.config.prefix)
    }

    /// Notes that `room` reached `seq`, for the search feed's next entry.
    fn feed_search(&self, room: RoomId, seq: Seq) {
        let mut pending = self.search_pending.lock().unwrap_or_else(|e| e.into_inner());
        let at = pending.entry(room).or_insert(seq);
        *at = (*at).max(seq);
    }

    /// Adds the rooms that moved since the last call to the search feed, as
    /// one entry of `r ROOM s SEQ` pairs: a node's few entries a second cost
    /// Redis next to nothing, where one a message cost a command and a round
    /// trip each. Rooms not added (Redis unreachable) wait for the next call.
    async fn flush_search_feed(&self) {
        let pending = std::mem::take(&mut *self.search_pending.lock().unwrap_or_else(|e| e.into_inner()));
        let mut rooms: Vec<(RoomId, Seq)> = pending.into_iter().collect();
        while !rooms.is_empty() {
            let chunk: Vec<_> = rooms.drain(..rooms.len().min(SEARCH_FEED_ROOMS_PER_ENTRY)).collect();
            let mut add = redis::cmd("XADD");
            add.arg(self.search_feed_key()).arg("MAXLEN").arg("~").arg(SEARCH_FEED_LENGTH).arg("*");
            for (room, seq) in &chunk {
                add.arg("r").arg(room.as_str()).arg("s").arg(seq.0);
            }
            let added: RedisResult<String> = self.commands.query(&add).await;
            if let Err(error) = added {
                tracing::debug!(%error, "cannot add to the search feed; trying again");
                for (room, seq) in chunk.into_iter().chain(rooms) {
                    self.feed_search(room, seq);
                }
                return;
            }
        }
    }

    /// Flushes the search feed every `SEARCH_FEED_EVERY` until `stop`, then once more.
    async fn feed_search_until(self: Arc<Self>, stop: CancellationToken) {
        let mut every = tokio::time::interval(SEARCH_FEED_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = every.tick() => self.flush_search_feed().await,
            }
        }
        let _ = tokio::time::timeout(self.config.timeout, self.flush_search_feed()).await;
    }

    /// The search feed after `cursor` (from its newest entry when `None`).
    async fn search_feed(&self, cursor: Option<String>) -> Result<crate::search::FeedPage, BrokerError> {
        const PAGE: usize = 1000;
        let key = self.search_feed_key();
        let Some(cursor) = cursor else {
            let newest: Vec<(String, Vec<(String, String)>)> = self
                .commands
                .query(redis::cmd("XREVRANGE").arg(&key).arg("+").arg("-").arg("COUNT").arg(1))
                .await
                .map_err(unavailable)?;
            let cursor = newest.into_iter().next().map_or_else(|| "0-0".to_string(), |(id, _)| id);
            return Ok(crate::search::FeedPage { cursor, ..Default::default() });
        };
        let oldest: Vec<(String, Vec<(String, String)>)> = self
            .commands
            .query(redis::cmd("XRANGE").arg(&key).arg("-").arg("+").arg("COUNT").arg(1))
            .await
            .map_err(unavailable)?;
        let entries: Vec<(String, Vec<(String, String)>)> = self
            .commands
            .query(redis::cmd("XRANGE").arg(&key).arg(format!("({cursor}")).arg("+").arg("COUNT").arg(PAGE))
            .await
            .map_err(unavailable)?;
        // The oldest entry is past the cursor: entries after the cursor may
        // have been trimmed, or Redis lost the feed. (A cursor of 0-0 is a
        // feed that was empty when this node started: nothing was lost.)
        let lost_place = cursor != "0-0" && oldest.first().is_some_and(|(id, _)| stream_id(id) > stream_id(&cursor));
        let full = entries.len() == PAGE;
        let next = entries.last().map_or(cursor, |(id, _)| id.clone());
        let rooms = entries
            .into_iter()
            .flat_map(|(_, fields)| {
                // `r ROOM s SEQ`, once or many times.
                fields
                    .chunks_exact(2)
                    .filter_map(|pair| match pair {
                        [(r, room), (s, seq)] if r == "r" && s == "s" => {
                            Some((RoomId::new(room.as_str()).ok()?, Seq(seq.parse().ok()?)))
                        }
                        _ => None,
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        Ok(crate::search::FeedPage { rooms, cursor: next, full, lost_place })
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
}

impl Broker for RedisBroker {
    fn create_room(&self, record: RoomRecord, first: Draft, max_owned: Option<usize>) -> BrokerFuture<'_, Receipt> {
        Box::pin(async move {
            let s = &self.shared;
            let owned = s.owned_key(&record.owner);
            if let Some(max) = max_owned {
                let mut own = s.scripts.own.prepare_invoke();
                own.key(&owned).arg(max);
                let counted: i64 = s.commands.invoke(&own).await.map_err(unavailable)?;
                if counted == 0 {
                    return Err(BrokerError::TooManyRooms { user: record.owner.clone(), max });
                }
            }
            // Listed before it exists: a listing skips names with no room behind
            // them, while a room that exists unlisted would be lost to listings.
            let indexed: RedisResult<()> =
                s.commands.query(redis::cmd("ZADD").arg(s.rooms_index()).arg(0).arg(record.room.as_str())).await;
            let result = match indexed {
                Ok(()) => s.order(first, Some(&record), record.epoch).await,
                Err(error) => Err(unavailable(error)),
            };
            if result.is_err() && max_owned.is_some() {
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
            let searched = crate::search::indexed(&draft.event);
            let receipt = self.shared.order(draft, None, epoch).await?;
            if searched && !receipt.published.duplicate {
                self.shared.feed_search(room, receipt.published.seq);
            }
            Ok(receipt)
        })
    }

    fn room_names(&self, after: Option<RoomId>, limit: usize) -> BrokerFuture<'_, Vec<RoomId>> {
        Box::pin(async move {
            let from = after.map_or_else(|| "-".to_string(), |a| format!("({a}"));
            let names: Vec<String> = self
                .shared
                .commands
                .query(
                    redis::cmd("ZRANGE")
                        .arg(self.shared.rooms_index())
                        .arg(from)
                        .arg("+")
                        .arg("BYLEX")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(limit),
                )
                .await
                .map_err(unavailable)?;
            Ok(names.into_iter().filter_map(|n| RoomId::new(n).ok()).collect())
        })
    }

    fn search_feed(&self, cursor: Option<String>) -> BrokerFuture<'_, Option<crate::search::FeedPage>> {
        Box::pin(async move { self.shared.search_feed(cursor).await.map(Some) })
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
            // Invite-only rooms and direct conversations the user is not in are skipped, so a page may take
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
                    let visible = listing.record.visibility.listed_to_outsiders() || listing.role.is_some();
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

    fn broadcast(&self, room: RoomId, event: hearth_protocol::Event) -> BrokerFuture<'_, ()> {
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
            Ok(())
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

    fn notify_user(&self, user: UserId, event: hearth_protocol::Event) -> BrokerFuture<'_, ()> {
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
            Ok(())
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
