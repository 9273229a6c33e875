//! A node's subscriptions: one sharded channel per room in memory, on a
//! connection of their own (RESP3, whose pushes go straight into the delivery
//! path — decoding and queueing only, never waiting).
//!
//! A subscription can fail three ways, and each ends with every room compared
//! against Redis's head and repaired from the history stream:
//! - the connection breaks (Redis restarted, or it cut the node off with
//!   `CLIENT KILL` or its output-buffer limit): reconnected with back-off and
//!   every channel subscribed again (a Redis Cluster connection does this
//!   itself);
//! - the connection stays up but stops delivering: every `probe_every` the node
//!   publishes a probe on its own channel; a probe not back by the next one
//!   marks the connection broken;
//! - one publish goes missing while the rest flow: the next event of the room
//!   shows the gap, and for quiet rooms each probe also compares heads (a room
//!   still behind the head seen at the previous probe is repaired).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use hearth_protocol::{RoomId, UserId};
use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind, RedisResult, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{RedisTarget, Shared, room_of_channel, unavailable};
use crate::accounts::Notice;
use crate::broker::BrokerError;
use crate::frames::Committed;

pub(super) struct Subscriber {
    shared: Arc<Shared>,
    link: Arc<Link>,
    stripes: Vec<tokio::sync::Mutex<()>>,
}

/// The subscription connection and what its pushes tell.
struct Link {
    conn: Mutex<Option<Conn>>,
    /// The connection broke: the supervisor remakes it.
    broken: Notify,
    probe_channel: String,
    /// Where disabled accounts are announced.
    accounts_channel: String,
    probes_sent: AtomicU64,
    probes_seen: AtomicU64,
}

#[derive(Clone)]
enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Conn {
    async fn command(&self, name: &str, channel: &str) -> RedisResult<()> {
        let cmd = redis::cmd(name).arg(channel).clone();
        let _: Value = match self {
            // One channel per call: the server's one confirmation is the reply.
            Conn::Single(c) => cmd.query_async(&mut c.clone()).await?,
            Conn::Cluster(c) => {
                let mut c = c.clone();
                match name {
                    "SSUBSCRIBE" => c.ssubscribe(channel).await?,
                    _ => c.sunsubscribe(channel).await?,
                }
                Value::Nil
            }
        };
        Ok(())
    }
}

impl Link {
    fn current(&self) -> Option<Conn> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, conn: Option<Conn>) {
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = conn;
    }

    /// Handles one push from Redis: an event, a probe, or the connection's end.
    fn on_push(&self, shared: &Shared, push: PushInfo) {
        match push.kind {
            PushKind::SMessage | PushKind::Message => {
                let mut data = push.data.into_iter();
                let (Some(Value::BulkString(channel)), Some(Value::BulkString(body))) = (data.next(), data.next())
                else {
                    return;
                };
                if channel == self.probe_channel.as_bytes() {
                    let n = std::str::from_utf8(&body).ok().and_then(|n| n.parse().ok()).unwrap_or(0);
                    self.probes_seen.fetch_max(n, Ordering::Relaxed);
                    return;
                }
                if channel == self.accounts_channel.as_bytes() {
                    let _ = shared.account_notices.send(match body.strip_prefix(b"n:") {
                        // A notice for one user: "n:USER\n" and the event.
                        Some(rest) => {
                            let Some(at) = rest.iter().position(|b| *b == b'\n') else { return };
                            let Some(user) = std::str::from_utf8(&rest[..at]).ok().and_then(|u| UserId::new(u).ok())
                            else {
                                return;
                            };
                            Notice::ToUser(user, Bytes::copy_from_slice(&rest[at + 1..]))
                        }
                        None => {
                            let Some(user) = std::str::from_utf8(&body).ok().and_then(|u| UserId::new(u).ok()) else {
                                return;
                            };
                            Notice::Changed(user)
                        }
                    });
                    return;
                }
                let Some(room) = room_of_channel(&shared.config.prefix, &channel) else { return };
                deliver(shared, &room, Bytes::from(body));
            }
            PushKind::Disconnection => self.broken.notify_one(),
            _ => {}
        }
    }
}

/// One published event into the delivery path: a timeline event, or an
/// ephemeral one (typing, presence), which has no seq.
fn deliver(shared: &Shared, room: &RoomId, body: Bytes) {
    let event = match rmp_serde::from_slice::<hearth_protocol::Event>(&body) {
        Ok(event) => event,
        Err(error) => return tracing::error!(%room, %error, "unreadable event on the room's channel"),
    };
    if event.seq().is_none() {
        return shared.delivery.ephemeral(room, &event);
    }
    match Committed::from_decoded(event, body) {
        Ok(committed) => shared.delivery.deliver(room, std::slice::from_ref(&committed)),
        Err(error) => tracing::error!(%room, %error, "unreadable event on the room's channel"),
    }
}

impl Subscriber {
    pub(super) async fn start(shared: Arc<Shared>, stop: CancellationToken) -> Result<Subscriber, BrokerError> {
        let mut node = [0u8; 8];
        let _ = getrandom::fill(&mut node);
        let link = Arc::new(Link {
            conn: Mutex::new(None),
            broken: Notify::new(),
            probe_channel: format!("{}:probe:{{{:016x}}}", shared.config.prefix, u64::from_le_bytes(node)),
            accounts_channel: super::accounts::channel(&shared.config.prefix),
            probes_sent: AtomicU64::new(0),
            probes_seen: AtomicU64::new(0),
        });
        let conn = connect(&shared, &link).await?;
        conn.command("SSUBSCRIBE", &link.probe_channel).await.map_err(unavailable)?;
        conn.command("SSUBSCRIBE", &link.accounts_channel).await.map_err(unavailable)?;
        link.set(Some(conn));
        crate::metrics::get().redis_up.set(1.0);
        tokio::spawn(supervise(shared.clone(), link.clone(), stop));
        Ok(Subscriber { shared, link, stripes: (0..64).map(|_| tokio::sync::Mutex::new(())).collect() })
    }

    /// Serialises the subscription changes of one room (and of the rooms that
    /// share its stripe), so a room's `SSUBSCRIBE` and `SUNSUBSCRIBE` reach
    /// Redis in the order its count changed.
    fn stripe(&self, room: &RoomId) -> &tokio::sync::Mutex<()> {
        let hash = room.as_str().bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(usize::from(b)));
        &self.stripes[hash % self.stripes.len()]
    }

    pub(super) async fn subscribe(&self, room: RoomId) -> Result<(), BrokerError> {
        let _order = self.stripe(&room).lock().await;
        // Counted first: a reconnect under way subscribes it too.
        let first = {
            let mut count = self.shared.subscribed.entry(room.clone()).or_insert(0);
            *count += 1;
            *count == 1
        };
        if !first {
            return Ok(());
        }
        let channel = self.shared.keys(&room).channel;
        let Some(conn) = self.link.current() else {
            // Reconnecting: it subscribes every counted room when it is back.
            return Ok(());
        };
        let subscribed = conn.command("SSUBSCRIBE", &channel).await.map_err(unavailable);
        if subscribed.is_err() {
            self.shared.subscribed.remove_if(&room, |_, count| *count == 1);
        }
        subscribed
    }

    pub(super) async fn unsubscribe(&self, room: RoomId) -> Result<(), BrokerError> {
        let _order = self.stripe(&room).lock().await;
        let last = match self.shared.subscribed.get_mut(&room) {
            None => return Ok(()),
            Some(mut count) => {
                *count -= 1;
                *count == 0
            }
        };
        if !last {
            return Ok(());
        }
        self.shared.subscribed.remove_if(&room, |_, count| *count == 0);
        if let Some(conn) = self.link.current() {
            conn.command("SUNSUBSCRIBE", &self.shared.keys(&room).channel).await.map_err(unavailable)?;
        }
        Ok(())
    }
}

/// A subscription connection whose pushes go to `link`.
async fn connect(shared: &Arc<Shared>, link: &Arc<Link>) -> Result<Conn, BrokerError> {
    let on_push = {
        let (shared, link) = (Arc::downgrade(shared), Arc::downgrade(link));
        move |push: PushInfo| -> Result<(), std::convert::Infallible> {
            if let (Some(shared), Some(link)) = (shared.upgrade(), link.upgrade()) {
                link.on_push(&shared, push);
            }
            Ok(())
        }
    };
    let timeout = shared.config.timeout;
    Ok(match &shared.config.target {
        RedisTarget::Single(url) => {
            let info = redis::IntoConnectionInfo::into_connection_info(url.as_str()).map_err(unavailable)?;
            let settings = info.redis_settings().clone().set_protocol(redis::ProtocolVersion::RESP3);
            let client = redis::Client::open(info.set_redis_settings(settings)).map_err(unavailable)?;
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_push_sender(on_push);
            Conn::Single(client.get_multiplexed_async_connection_with_config(&config).await.map_err(unavailable)?)
        }
        RedisTarget::Cluster(urls) => {
            let client = redis::cluster::ClusterClient::builder(urls.clone())
                .use_protocol(redis::ProtocolVersion::RESP3)
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .push_sender(on_push)
                .build()
                .map_err(unavailable)?;
            Conn::Cluster(client.get_async_connection().await.map_err(unavailable)?)
        }
    })
}

/// Keeps the subscription alive until `stop`: remakes a broken connection, and
/// probes it and the rooms' heads every `probe_every`.
async fn supervise(shared: Arc<Shared>, link: Arc<Link>, stop: CancellationToken) {
    let mut probe = tokio::time::interval(shared.config.probe_every);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = link.broken.notified() => {
                crate::metrics::get().redis_up.set(0.0);
                tracing::warn!("the Redis subscription connection broke; remaking it");
                reconnect(&shared, &link, &stop).await;
            }
            _ = probe.tick() => {
                let sent = link.probes_sent.load(Ordering::Relaxed);
                let single = matches!(shared.config.target, RedisTarget::Single(_));
                if single && sent > 0 && link.probes_seen.load(Ordering::Relaxed) < sent {
                    crate::metrics::get().redis_up.set(0.0);
                    tracing::warn!(probe = sent, "the Redis subscription stopped delivering; remaking it");
                    reconnect(&shared, &link, &stop).await;
                    continue;
                }
                if single {
                    let n = sent + 1;
                    let published: RedisResult<i64> = shared
                        .commands
                        .query(redis::cmd("SPUBLISH").arg(&link.probe_channel).arg(n))
                        .await;
                    match published {
                        Ok(_) => link.probes_sent.store(n, Ordering::Relaxed),
                        // Redis unreachable: nothing to learn from this probe.
                        Err(error) => tracing::debug!(%error, "probe not published"),
                    }
                }
                // A Redis that lost its data without the connection breaking
                // (FLUSHALL): every room is looked at now, not a probe later.
                let lost = shared.lost_data().await;
                check_rooms(&shared, lost).await;
            }
        }
    }
}

/// Remakes the subscription connection with back-off until it works (a
/// cluster connection remakes itself; only the rooms are checked), then has
/// every room catch up with Redis.
async fn reconnect(shared: &Arc<Shared>, link: &Arc<Link>, stop: &CancellationToken) {
    if matches!(shared.config.target, RedisTarget::Single(_)) {
        link.set(None);
        let mut delay = Duration::from_millis(50);
        loop {
            let attempt = async {
                let conn = connect(shared, link).await?;
                conn.command("SSUBSCRIBE", &link.probe_channel).await.map_err(unavailable)?;
                conn.command("SSUBSCRIBE", &link.accounts_channel).await.map_err(unavailable)?;
                // Visible before the walk below: a room subscribed from now on
                // uses this connection, one subscribed earlier is counted.
                link.set(Some(conn.clone()));
                let rooms: Vec<RoomId> = shared.subscribed.iter().map(|r| r.key().clone()).collect();
                for room in rooms {
                    conn.command("SSUBSCRIBE", &shared.keys(&room).channel).await.map_err(unavailable)?;
                }
                Ok::<_, BrokerError>(())
            };
            match attempt.await {
                Ok(()) => break,
                Err(error) => {
                    link.set(None);
                    tracing::warn!(%error, retry_in = ?delay, "cannot remake the Redis subscription");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
        let sent = link.probes_sent.load(Ordering::Relaxed);
        link.probes_seen.fetch_max(sent, Ordering::Relaxed);
        crate::metrics::get().redis_up.set(1.0);
        tracing::info!(rooms = shared.subscribed.len(), "Redis subscription remade");
    }
    // A disable announced while the subscription was down was missed.
    let _ = shared.account_notices.send(Notice::Recheck);
    check_rooms(shared, true).await;
}

/// Compares every subscribed room with Redis's head, a few reads in flight at
/// a time (they share one multiplexed connection).
async fn check_rooms(shared: &Shared, now: bool) {
    let rooms: Vec<RoomId> = shared.subscribed.iter().map(|r| r.key().clone()).collect();
    futures_util::stream::iter(rooms)
        .for_each_concurrent(32, |room| async move { shared.check_room(&room, now).await })
        .await;
}
