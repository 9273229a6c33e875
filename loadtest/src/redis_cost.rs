//! What a message costs Redis in cluster mode, against the floor of that
//! design, measured the same way: at a scenario's rate and message size, from
//! two connections standing for two nodes, to two subscriptions.
//!
//! - `floor`: a script that does nothing but append the event to its room's
//!   stream and publish it (`XADD` + `SPUBLISH`), one call per message.
//! - `hearth`: Hearth's own order path without the nodes around it — two
//!   `RedisBroker`s (each a node's broker: batches, script, subscription)
//!   publishing members' posts, every event delivered to both.
//!
//! Without the nodes' sessions and fan-out on Redis's core, this isolates
//! Redis's cost; `bench-cluster.sh` runs the floor beside real nodes too.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hearth_protocol::codec::encode_event;
use hearth_protocol::event::{Event, MessageEvent};
use hearth_protocol::{ClientMsgId, Codec, Millis, RoomId, Seq, Text, UserId};
use redis::aio::MultiplexedConnection;

use crate::stats::proc_sample;

const FLOOR_SCRIPT: &str = r"
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'b', ARGV[2])
redis.call('SPUBLISH', KEYS[2], ARGV[2])
return 1
";

/// Which path messages take to Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RedisPath {
    Floor,
    Hearth,
}

/// What to send, and where Redis runs.
pub struct FloorRun {
    pub path: RedisPath,
    pub redis_url: String,
    pub redis_pid: String,
    pub rooms: usize,
    pub senders_per_room: usize,
    /// Messages per second per sender.
    pub rate: f64,
    /// Bytes of message text, as a scenario's `payload`.
    pub payload: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

fn log_key(room: usize) -> String {
    format!("floor:{{r{room}}}:log")
}

fn channel(room: usize) -> String {
    format!("floor:{{r{room}}}:events")
}

/// An event as a node publishes it: a message of `payload` bytes, encoded once.
fn event_bytes(room: usize, payload: usize) -> Vec<u8> {
    let text = "x".repeat(payload.max(1));
    let mut message = MessageEvent::draft(
        RoomId::new(format!("r{room}")).expect("a valid room name"),
        UserId::new("floor-sender").expect("a valid user name"),
        Text::new(text).expect("payload within limits"),
        ClientMsgId::new("c-0000000000").expect("a valid client message id"),
        None,
    );
    // Real numbers where a node's sentinels would be: the same width.
    message.seq = Seq(u64::MAX / 2);
    message.ts = Millis(u64::MAX / 2);
    encode_event(Codec::MsgPack, &Event::Message(message))
}

/// A RESP3 connection whose pushes (published events) are counted.
async fn subscriber(url: &str, rooms: usize, received: Arc<AtomicU64>) -> Result<MultiplexedConnection> {
    let info = redis::IntoConnectionInfo::into_connection_info(url).context("parsing the Redis URL")?;
    let settings = info.redis_settings().clone().set_protocol(redis::ProtocolVersion::RESP3);
    let client = redis::Client::open(info.set_redis_settings(settings))?;
    let config = redis::AsyncConnectionConfig::new().set_push_sender(move |push: redis::PushInfo| {
        if push.kind == redis::PushKind::SMessage {
            received.fetch_add(1, Ordering::Relaxed);
        }
        Ok::<(), std::convert::Infallible>(())
    });
    let mut conn = client.get_multiplexed_async_connection_with_config(&config).await?;
    for room in 0..rooms {
        let _: () = redis::cmd("SSUBSCRIBE").arg(channel(room)).query_async(&mut conn).await?;
    }
    Ok(conn)
}

/// Something that orders one message of `room` (a floor script call, or a
/// node's broker publishing a post) and whose events reach two subscribers.
trait Orderer: Send + Sync + 'static {
    fn order(&self, sender: usize, room: usize) -> impl std::future::Future<Output = bool> + Send;
}

/// Runs the chosen path and prints Redis's CPU per message.
pub async fn run(floor: FloorRun) -> Result<()> {
    match floor.path {
        RedisPath::Floor => {
            let orderer = Arc::new(FloorScript::start(&floor).await?);
            measure(&floor, orderer.clone(), orderer.received.clone()).await?;
            orderer.clean(floor.rooms).await;
        }
        RedisPath::Hearth => {
            let orderer = Arc::new(hearth::Nodes::start(&floor).await?);
            measure(&floor, orderer.clone(), orderer.received()).await?;
            orderer.stop();
            orderer.clean(&floor.redis_url).await?;
        }
    }
    Ok(())
}

/// The floor: XADD + SPUBLISH in a script, from two connections.
struct FloorScript {
    nodes: [MultiplexedConnection; 2],
    _subscribers: [MultiplexedConnection; 2],
    received: Arc<AtomicU64>,
    script: redis::Script,
    bodies: Vec<Vec<u8>>,
}

impl FloorScript {
    async fn start(floor: &FloorRun) -> Result<FloorScript> {
        let client = redis::Client::open(floor.redis_url.as_str()).context("parsing the Redis URL")?;
        let nodes =
            [client.get_multiplexed_async_connection().await?, client.get_multiplexed_async_connection().await?];
        let received = Arc::new(AtomicU64::new(0));
        let _subscribers = [
            subscriber(&floor.redis_url, floor.rooms, received.clone()).await?,
            subscriber(&floor.redis_url, floor.rooms, received.clone()).await?,
        ];
        let bodies = (0..floor.rooms).map(|room| event_bytes(room, floor.payload)).collect();
        Ok(FloorScript { nodes, _subscribers, received, script: redis::Script::new(FLOOR_SCRIPT), bodies })
    }

    async fn clean(&self, rooms: usize) {
        for room in 0..rooms {
            let _: redis::RedisResult<()> =
                redis::cmd("DEL").arg(log_key(room)).query_async(&mut self.nodes[0].clone()).await;
        }
    }
}

impl Orderer for FloorScript {
    async fn order(&self, sender: usize, room: usize) -> bool {
        let mut call = self.script.key(log_key(room));
        call.key(channel(room)).arg(100_000).arg(&self.bodies[room][..]);
        call.invoke_async::<i64>(&mut self.nodes[sender % 2].clone()).await.is_ok()
    }
}

/// Sends at the scenario's rate for warm-up plus duration, and prints Redis's
/// CPU per message ordered in the measured window.
async fn measure<O: Orderer>(floor: &FloorRun, orderer: Arc<O>, received: Arc<AtomicU64>) -> Result<()> {
    let sent = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let ends = started + floor.warmup + floor.duration;
    let senders = floor.rooms * floor.senders_per_room;
    let every = Duration::from_secs_f64(1.0 / floor.rate);
    let mut tasks = Vec::new();
    for sender in 0..senders {
        let room = sender % floor.rooms;
        let (orderer, sent, failed) = (orderer.clone(), sent.clone(), failed.clone());
        // Staggered, as members' sends are.
        let first = tokio::time::Instant::from_std(started + every.mul_f64(sender as f64 / senders as f64));
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(first, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            while Instant::now() < ends {
                tick.tick().await;
                if orderer.order(sender, room).await {
                    sent.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep_until(tokio::time::Instant::from_std(started + floor.warmup)).await;
    let (cpu_before, sent_before) = (proc_sample(&floor.redis_pid), sent.load(Ordering::Relaxed));
    tokio::time::sleep(floor.duration).await;
    let (cpu_after, sent_after) = (proc_sample(&floor.redis_pid), sent.load(Ordering::Relaxed));
    for task in tasks {
        task.await?;
    }
    // Every ordered event reaches both subscribers (bounded wait).
    let expected = 2 * sent.load(Ordering::Relaxed);
    let waiting = Instant::now();
    while received.load(Ordering::Relaxed) < expected && waiting.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (Some(before), Some(after)) = (cpu_before, cpu_after) else {
        bail!("cannot read the CPU time of process {} from /proc", floor.redis_pid);
    };
    let messages = sent_after - sent_before;
    let name = match floor.path {
        RedisPath::Floor => "floor (XADD + SPUBLISH only)",
        RedisPath::Hearth => "hearth (order path, two brokers)",
    };
    println!(
        "{name}: {:.0} msg/s, {} failed, {} of {expected} events received by two subscribers",
        messages as f64 / floor.duration.as_secs_f64(),
        failed.load(Ordering::Relaxed),
        received.load(Ordering::Relaxed),
    );
    println!("    cpu us per message: redis {:.1}", (after.cpu_secs - before.cpu_secs) * 1e6 / messages.max(1) as f64);
    Ok(())
}

mod hearth {
    //! Two nodes' brokers and nothing else of the nodes.

    use super::*;
    use dashmap::DashMap;
    use hearth_protocol::Position;
    use hearth_protocol::ops::{CreateRoom, SendMessage, Visibility};
    use hearth_server::broker::cluster::RedisBroker;
    use hearth_server::broker::{Broker, Delivery};
    use hearth_server::frames::Committed;
    use hearth_server::room::{self, RoomState};
    use hearth_server::store::RoomLoad;
    use hearth_server::{RedisConfig, RedisTarget};
    use tokio_util::sync::CancellationToken;

    /// A node's rooms, reduced to their positions and a count of events.
    #[derive(Default)]
    struct Counting {
        positions: DashMap<RoomId, Position>,
        received: Arc<AtomicU64>,
    }

    impl Delivery for Counting {
        fn deliver(&self, room: &RoomId, events: &[Committed]) {
            if let (Some(last), Some(mut at)) = (events.last(), self.positions.get_mut(room)) {
                at.seq = last.event.seq().unwrap_or(at.seq);
            }
            self.received.fetch_add(events.len() as u64, Ordering::Relaxed);
        }
        fn position(&self, room: &RoomId) -> Option<Position> {
            self.positions.get(room).map(|p| *p)
        }
        fn resync(&self, _room: &RoomId, _at: Option<Position>, _now: bool) {}
        fn snapshot(&self, _room: &RoomId) -> Option<RoomLoad> {
            None
        }
    }

    pub(super) struct Nodes {
        brokers: [RedisBroker; 2],
        /// Each room's state after its senders joined: what a node decides on.
        rooms: Vec<(RoomId, RoomState)>,
        /// Bytes of each message's text.
        payload: usize,
        received: Arc<AtomicU64>,
        stop: CancellationToken,
        /// Where this run's keys live: the rooms are made again each run.
        prefix: String,
    }

    /// Runs in this process so far: each gets keys of its own (`--repeat`).
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    fn sender_name(sender: usize) -> UserId {
        UserId::new(format!("sender{sender}")).expect("a valid user name")
    }

    impl Nodes {
        pub(super) async fn start(floor: &FloorRun) -> Result<Nodes> {
            let received = Arc::new(AtomicU64::new(0));
            let stop = CancellationToken::new();
            let mut config = RedisConfig::new(RedisTarget::Single(floor.redis_url.clone()));
            let run = RUNS.fetch_add(1, Ordering::Relaxed);
            config.prefix = format!("cost-{}-{run}", std::process::id());
            let deliveries = [
                Arc::new(Counting { received: received.clone(), ..Default::default() }),
                Arc::new(Counting { received: received.clone(), ..Default::default() }),
            ];
            let clock = hearth_server::clock::system();
            let mut brokers = Vec::new();
            for delivery in &deliveries {
                let broker =
                    RedisBroker::connect(config.clone(), clock.clone(), delivery.clone(), stop.clone()).await?;
                brokers.push(broker);
            }
            let brokers: [RedisBroker; 2] = brokers.try_into().map_err(|_| anyhow::anyhow!("two brokers"))?;
            let owner = UserId::new("cost-owner").expect("a valid user name");
            let mut rooms = Vec::new();
            for n in 0..floor.rooms {
                let name = RoomId::new(format!("cost{n}")).expect("a valid room name");
                let args = CreateRoom {
                    room: name.clone(),
                    topic: Default::default(),
                    cap: Some(1000),
                    visibility: Visibility::Open,
                };
                let (record, first) =
                    room::decide_create(&owner, args, hearth_server::broker::new_epoch(), clock.now())
                        .map_err(|r| anyhow::anyhow!("cannot create a room: {r:?}"))?;
                let epoch = record.epoch;
                brokers[0].create_room(record, first, None).await?.durable().await?;
                for s in (0..floor.senders_per_room).map(|i| n + i * floor.rooms) {
                    let state = load(&brokers[0], &name).await?;
                    if let Some(join) = state
                        .decide_join(&sender_name(s), None, clock.now())
                        .map_err(|r| anyhow::anyhow!("cannot join: {r:?}"))?
                    {
                        brokers[0].publish(join).await?.durable().await?;
                    }
                }
                let state = load(&brokers[0], &name).await?;
                for (broker, delivery) in brokers.iter().zip(&deliveries) {
                    delivery.positions.insert(name.clone(), Position { epoch, seq: state.head });
                    broker.subscribe(name.clone()).await?;
                }
                rooms.push((name, state));
            }
            received.store(0, Ordering::Relaxed);
            let prefix = config.prefix;
            Ok(Nodes { brokers, rooms, payload: floor.payload, received, stop, prefix })
        }

        pub(super) fn received(&self) -> Arc<AtomicU64> {
            self.received.clone()
        }

        pub(super) fn stop(&self) {
            self.stop.cancel();
        }

        /// Deletes this run's keys, so the next run (and the floor after
        /// it, which cleans its own) starts on the same Redis as this one did.
        pub(super) async fn clean(&self, redis_url: &str) -> Result<()> {
            let client = redis::Client::open(redis_url).context("parsing the Redis URL")?;
            let mut conn = client.get_multiplexed_async_connection().await?;
            let pattern = format!("{}:*", self.prefix);
            let mut cursor = 0u64;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn)
                    .await?;
                if !keys.is_empty() {
                    let _: () = redis::cmd("UNLINK").arg(&keys).query_async(&mut conn).await?;
                }
                if next == 0 {
                    return Ok(());
                }
                cursor = next;
            }
        }
    }

    async fn load(broker: &RedisBroker, name: &RoomId) -> Result<RoomState> {
        let load = broker.load_room(name.clone(), 0).await?.context("the room just made is missing")?;
        RoomState::restore(load.record, load.members, load.pins, &load.rows, load.head, load.last_ts)
            .map_err(|e| anyhow::anyhow!("cannot read the room back: {e:?}"))
    }

    static NEXT_CMID: AtomicU64 = AtomicU64::new(0);

    impl Orderer for Nodes {
        async fn order(&self, sender: usize, room: usize) -> bool {
            let (name, state) = &self.rooms[room];
            let n = NEXT_CMID.fetch_add(1, Ordering::Relaxed);
            let mut text = format!("{n:020}");
            text.push_str(&"x".repeat(self.payload.saturating_sub(text.len())));
            let msg = SendMessage {
                room: name.clone(),
                text: Text::new(text).expect("payload within limits"),
                cmid: ClientMsgId::new(format!("c-{n}")).expect("a valid client message id"),
                thread: None,
            };
            let now = hearth_server::clock::system().now();
            let Ok(draft) = state.decide_send(&sender_name(sender), msg, None, now) else { return false };
            self.brokers[sender % 2].publish(draft).await.is_ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_testkit::RedisServer;

    /// `--repeat` runs the hearth path again in the same process: it makes
    /// its rooms afresh, and leaves none of them behind for the next run.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_hearth_path_runs_again_and_leaves_no_room_behind() {
        let redis = RedisServer::start().await;
        let client = redis::Client::open(redis.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let info: String = redis::cmd("INFO").arg("server").query_async(&mut conn).await.unwrap();
        let pid = info.lines().find_map(|line| line.strip_prefix("process_id:")).unwrap().trim().to_string();
        let run = || FloorRun {
            path: RedisPath::Hearth,
            redis_url: redis.url(),
            redis_pid: pid.clone(),
            rooms: 2,
            senders_per_room: 1,
            rate: 20.0,
            payload: 100,
            warmup: Duration::from_millis(100),
            duration: Duration::from_millis(300),
        };
        for round in 1..=2 {
            let done = tokio::time::timeout(Duration::from_secs(30), super::run(run())).await;
            done.expect("a run ends within its time").unwrap_or_else(|e| panic!("run {round}: {e:#}"));
        }
        let left: Vec<String> = redis::cmd("KEYS").arg("cost-*{cost*").query_async(&mut conn).await.unwrap();
        assert!(left.is_empty(), "the rooms' keys are deleted after each run: {left:?}");
    }
}
