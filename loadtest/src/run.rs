//! The run controller: sets a scenario up (rooms, members with ramp-up), steps it
//! through its phases, and turns the shared counters into phase reports.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::SinkExt;
use hearth_protocol::codec::encode_request;
use hearth_protocol::ops::Leave;
use hearth_protocol::{Codec, RequestId, RoomId, UserId};
use hearth_server::auth::{self, Secret};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;

use tokio::sync::{Semaphore, mpsc, watch};

use crate::member::{self, Clock, Member, Phase, Target as WsTarget};
use crate::report::{Latency, PhaseReport, Section, StormReport};
use crate::scenario::{Kind, Scenario};
use crate::stats::{ProcSample, Stats, proc_sample};

/// A server (or set of nodes) to load.
pub struct Target {
    pub name: String,
    pub urls: Vec<String>,
    pub pid: Option<u32>,
    /// Other processes the load costs CPU in (named): more nodes, Redis.
    pub watch: Vec<(String, u32)>,
}

/// Connections opened at once while ramping up.
const CONNECT_CONCURRENCY: usize = 500;
/// Longest wait for members to catch up after sending stops.
const DRAIN_LIMIT: Duration = Duration::from_secs(15);

struct Ctx<'a> {
    scenario: &'a Scenario,
    target: &'a Target,
    stats: Arc<Stats>,
    phase: watch::Sender<Phase>,
    progress: ProgressBar,
    slow: Vec<bool>,
}

pub(crate) fn token(secret: &Secret, name: &str) -> String {
    auth::mint(secret, &UserId::new(name).expect("valid user name"), Duration::from_secs(3600))
}

fn run_tag() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    format!("{:x}", nanos % 0xffff_ffff)
}

pub(crate) fn ws_target(target: &Target, index: usize, codec: Codec) -> WsTarget {
    WsTarget { url: target.urls[index % target.urls.len()].clone(), codec }
}

pub async fn run(scenario: &Scenario, target: &Target, secret: &Secret, show_progress: bool) -> Result<Section> {
    let progress = if show_progress { ProgressBar::new_spinner() } else { ProgressBar::hidden() };
    progress.set_style(ProgressStyle::with_template("{spinner} [{elapsed}] {prefix}: {msg}").expect("valid template"));
    progress.set_prefix(target.name.clone());
    progress.enable_steady_tick(Duration::from_millis(200));
    let codec = if scenario.json { Codec::Json } else { Codec::MsgPack };
    if scenario.kind == Kind::Idle {
        let section = idle(scenario, target, secret, codec, &progress).await;
        progress.finish_and_clear();
        return section;
    }
    if scenario.kind == Kind::Wander {
        let section = crate::wander::run(scenario, target, secret, codec, &progress).await;
        progress.finish_and_clear();
        return section;
    }
    let tag = run_tag();
    let rooms: Vec<RoomId> =
        (0..scenario.rooms).map(|r| RoomId::new(format!("lt-{tag}-{r}")).expect("valid room name")).collect();
    let members = scenario.members();
    let stats = Arc::new(Stats::new(scenario.rooms, members));
    let (phase_tx, phase_rx) = watch::channel(Phase::Ready);
    let (storm_tx, mut storm_rx) = mpsc::channel::<Duration>(members.max(1));
    let clock = Clock(Instant::now());

    // Rooms first, by one admin connection; caps leave room for churn clients.
    progress.set_message(format!("creating {} rooms", rooms.len()));
    let mut admin = member::connect(&ws_target(target, 0, codec), &token(secret, "lt-admin")).await?;
    let cap = (scenario.members_per_room + 10) as u32;
    for room in &rooms {
        member::create_room(&mut admin, codec, room, cap).await?;
    }
    drop(admin);

    let slow = slow_members(scenario);
    progress.set_message(format!("connecting {members} members"));
    let limit = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut joins = tokio::task::JoinSet::new();
    let ramp_start = Instant::now();
    for (index, &slow) in slow.iter().enumerate() {
        // Ramp: member `index` connects no earlier than index / ramp seconds in.
        let at = ramp_start + Duration::from_secs_f64(index as f64 / scenario.ramp);
        tokio::time::sleep_until(at.into()).await;
        let permit = limit.clone().acquire_owned().await.expect("semaphore open");
        let room_index = index / scenario.members_per_room;
        let member = Member {
            index,
            room_index,
            room: rooms[room_index].clone(),
            sender: index % scenario.members_per_room < scenario.senders_per_room,
            slow,
            token: token(secret, &format!("lt{index}")),
            target: ws_target(target, index, codec),
            payload: scenario.payload,
        };
        let (stats, phase, storm) = (stats.clone(), phase_rx.clone(), storm_tx.clone());
        joins.spawn(async move {
            let started = Instant::now();
            let mut ws = member::connect(&member.target, &member.token).await?;
            let position = member::join(&mut ws, member.target.codec, &member.room, None).await?;
            stats.record_connect(started.elapsed().as_micros() as u64);
            drop(permit);
            tokio::spawn(member.run(ws, position, stats, clock, phase, storm));
            Ok::<(), anyhow::Error>(())
        });
    }
    let mut failed = 0;
    let mut first_error = None;
    while let Some(joined) = joins.join_next().await {
        if let Err(e) = joined.context("connect task")? {
            failed += 1;
            first_error.get_or_insert(e);
        }
    }
    if let Some(error) = first_error {
        bail!("{failed} of {members} members could not connect and join; first error: {error:#}");
    }
    drop(storm_tx);

    let ctx = Ctx { scenario, target, stats: stats.clone(), phase: phase_tx, progress, slow };
    let mut section = Section::new(&target.name);
    match scenario.kind {
        Kind::Steady => {
            ctx.run_at(scenario.rate, scenario.warmup).await;
            section.phases.push(ctx.window("steady", scenario.rate).await);
        }
        Kind::Churn => {
            let churn =
                tokio::spawn(churn(scenario.clone(), ws_target(target, 0, codec), secret.clone(), rooms.clone()));
            ctx.run_at(scenario.rate, scenario.warmup).await;
            section.phases.push(ctx.window("steady + churn", scenario.rate).await);
            churn.abort();
        }
        Kind::SlowConsumer => {
            ctx.run_at(scenario.rate, scenario.warmup).await;
            section.phases.push(ctx.window("baseline", scenario.rate).await);
            let slow_count = ctx.slow.iter().filter(|s| **s).count();
            ctx.phase.send_replace(Phase::StopReading);
            ctx.sleep(Duration::from_secs(2), "slow members stopped reading").await;
            section.phases.push(ctx.window(&format!("with {slow_count} slow"), scenario.rate).await);
        }
        Kind::Flood => {
            ctx.run_at(scenario.rate, scenario.warmup).await;
            section.phases.push(ctx.window("baseline", scenario.rate).await);
            let stop = tokio_util::sync::CancellationToken::new();
            let flooder = tokio::spawn(flood(
                ws_target(target, 0, codec),
                token(secret, &format!("lt-flooder-{tag}")),
                rooms[0].clone(),
                stop.clone(),
            ));
            ctx.sleep(Duration::from_secs(1), "a member floods room 0").await;
            section.phases.push(ctx.window("with a flooder", scenario.rate).await);
            stop.cancel();
            let flood = tokio::time::timeout(Duration::from_secs(10), flooder).await.ok().and_then(|r| r.ok());
            section.flood = flood.transpose().ok().flatten();
        }
        Kind::Saturate => {
            let mut rate = scenario.rate;
            for step in 0..scenario.max_steps {
                ctx.run_at(rate, scenario.warmup).await;
                let report = ctx.window(&format!("step {}", step + 1), rate).await;
                let good = report.good(scenario.p99_limit_ms);
                section.phases.push(report);
                if !good {
                    break;
                }
                rate *= scenario.step_factor;
            }
        }
        Kind::ReconnectStorm => {
            ctx.run_at(scenario.rate, scenario.warmup).await;
            section.phases.push(ctx.window("before storm", scenario.rate).await);
            let (gaps, dups) = (stats.gaps.load(Ordering::Relaxed), stats.duplicates.load(Ordering::Relaxed));
            ctx.progress.set_message(format!("storm: {members} members reconnecting"));
            ctx.phase.send_replace(Phase::Storm);
            let mut times = Vec::with_capacity(members);
            while times.len() < members {
                match tokio::time::timeout(Duration::from_secs(60), storm_rx.recv()).await {
                    Ok(Some(t)) => times.push(t),
                    _ => break,
                }
            }
            section.storm = Some(StormReport::new(
                members,
                &times,
                stats.gaps.load(Ordering::Relaxed) - gaps,
                stats.duplicates.load(Ordering::Relaxed) - dups,
            ));
            ctx.run_at(scenario.rate, Duration::from_secs(1)).await;
        }
        Kind::Idle | Kind::Wander => unreachable!("handled above"),
    }
    ctx.phase.send_replace(Phase::Drain);
    section.unreached = ctx.drain().await;
    section.gaps = stats.gaps.load(Ordering::Relaxed);
    section.duplicates = stats.duplicates.load(Ordering::Relaxed);
    ctx.phase.send_replace(Phase::Done);
    ctx.progress.finish_and_clear();
    // Give members a moment to close cleanly before the next target starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(section)
}

/// What the flooder sent and what the server did about it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FloodReport {
    pub sent: u64,
    pub stored: u64,
    pub refused: u64,
    /// The close code the server ended the flood with, if it did.
    pub closed_with: Option<u16>,
}

/// Sends the largest messages into `room` as fast as the socket takes them,
/// never waiting for replies, until `stop` or the server closes the connection.
async fn flood(
    target: WsTarget,
    token: String,
    room: RoomId,
    stop: tokio_util::sync::CancellationToken,
) -> Result<FloodReport> {
    use futures_util::StreamExt;
    use hearth_protocol::ops::SendMessage;
    use hearth_protocol::{ClientMsgId, Text};
    use tokio_tungstenite::tungstenite::Message;
    let mut ws = member::connect(&target, &token).await?;
    member::join(&mut ws, target.codec, &room, None).await?;
    let (mut sink, mut stream) = ws.split();
    let counting = tokio::spawn(async move {
        let (mut stored, mut refused, mut closed_with) = (0u64, 0u64, None);
        while let Some(Ok(message)) = stream.next().await {
            let bytes = match message {
                Message::Binary(b) => b,
                Message::Text(t) => bytes::Bytes::from(t),
                Message::Close(frame) => {
                    closed_with = frame.map(|f| u16::from(f.code));
                    break;
                }
                _ => continue,
            };
            let value: Option<serde_json::Value> = match target.codec {
                Codec::MsgPack => rmp_serde::from_slice(&bytes).ok(),
                Codec::Json => serde_json::from_slice(&bytes).ok(),
            };
            let Some(value) = value else { continue };
            if value.get("id").is_some() {
                if value.get("err").is_some() { refused += 1 } else { stored += 1 }
            }
        }
        (stored, refused, closed_with)
    });
    let text = Text::new("x".repeat(hearth_protocol::limits::MAX_TEXT_BYTES)).expect("the largest text");
    let mut sent = 0u64;
    while !stop.is_cancelled() {
        let send = SendMessage {
            room: room.clone(),
            text: text.clone(),
            cmid: ClientMsgId::new(format!("flood-{sent}")).expect("valid id"),
            thread: None,
        };
        let frame = encode_request(target.codec, RequestId(100 + sent), &send);
        let message = match target.codec {
            Codec::MsgPack => Message::Binary(frame.into()),
            Codec::Json => Message::Text(String::from_utf8(frame).expect("JSON is UTF-8").into()),
        };
        if sink.send(message).await.is_err() {
            break;
        }
        sent += 1;
    }
    let _ = sink.close().await;
    let (stored, refused, closed_with) =
        tokio::time::timeout(Duration::from_secs(5), counting).await.ok().and_then(|r| r.ok()).unwrap_or_default();
    Ok(FloodReport { sent, stored, refused, closed_with })
}

/// Which members never read in the slow-consumer scenario: spread evenly, never senders.
fn slow_members(s: &Scenario) -> Vec<bool> {
    let members = s.members();
    let mut slow = vec![false; members];
    if s.kind != Kind::SlowConsumer || s.slow_percent <= 0.0 {
        return slow;
    }
    let count = ((members as f64 * s.slow_percent / 100.0).round() as usize).max(1);
    let stride = (members / count).max(1);
    for i in (stride - 1..members).step_by(stride).take(count) {
        // The last member of a room is never a sender unless everyone is.
        let index = if i % s.members_per_room < s.senders_per_room { i + s.senders_per_room } else { i };
        if index < members {
            slow[index] = true;
        }
    }
    slow
}

impl Ctx<'_> {
    async fn sleep(&self, total: Duration, what: &str) {
        let end = Instant::now() + total;
        while Instant::now() < end {
            let d = self.stats.deliveries.load(Ordering::Relaxed);
            self.progress.set_message(format!("{what}: {d} deliveries counted"));
            tokio::time::sleep((end - Instant::now()).min(Duration::from_millis(250))).await;
        }
    }

    async fn run_at(&self, rate: f64, warmup: Duration) {
        self.phase.send_replace(Phase::Run { rate });
        self.sleep(warmup, &format!("warm-up at {rate:.0} msg/s per sender")).await;
    }

    /// Measures one window at the current rate.
    async fn window(&self, name: &str, rate: f64) -> PhaseReport {
        let s = self.scenario;
        let pid = self.target.pid.map(|p| p.to_string());
        let gaps0 = self.stats.gaps.load(Ordering::Relaxed);
        let dups0 = self.stats.duplicates.load(Ordering::Relaxed);
        let errors0 = self.stats.errors.lock().unwrap().clone();
        let server0 = pid.as_deref().and_then(proc_sample);
        let watched0: Vec<Option<ProcSample>> =
            self.target.watch.iter().map(|(_, pid)| proc_sample(&pid.to_string())).collect();
        let acked0 = self.stats.acked.load(Ordering::Relaxed);
        let self0 = proc_sample("self");
        self.stats.start_window();
        let started = Instant::now();
        self.sleep(s.duration, &format!("{name}: measuring")).await;
        self.stats.stop_window();
        let window = started.elapsed().as_secs_f64();
        let server1 = pid.as_deref().and_then(proc_sample);
        let watched1: Vec<Option<ProcSample>> =
            self.target.watch.iter().map(|(_, pid)| proc_sample(&pid.to_string())).collect();
        let acked = self.stats.acked.load(Ordering::Relaxed).saturating_sub(acked0);
        let self1 = proc_sample("self");
        // Re-announce the phase so every member flushes what it has buffered.
        let current = *self.phase.borrow();
        self.phase.send_replace(current);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let deliveries = self.stats.deliveries.load(Ordering::Relaxed);
        let errors_now = self.stats.errors.lock().unwrap().clone();
        let errors = errors_now
            .into_iter()
            .filter_map(|(k, v)| {
                let new = v - errors0.get(&k).copied().unwrap_or(0);
                (new > 0).then_some((k, new))
            })
            .collect();
        let cpu = |a: Option<ProcSample>, b: Option<ProcSample>| Some(b?.cpu_secs - a?.cpu_secs);
        let server_cpu = cpu(server0, server1);
        let self_cpu = cpu(self0, self1);
        let per_message = |secs: f64| secs * 1e6 / acked.max(1) as f64;
        let mut cpu_us_per_message: BTreeMap<String, f64> = BTreeMap::new();
        if let Some(secs) = server_cpu {
            cpu_us_per_message.insert("server".into(), per_message(secs));
        }
        for (((name, _), before), after) in self.target.watch.iter().zip(watched0).zip(watched1) {
            if let Some(secs) = cpu(before, after) {
                cpu_us_per_message.insert(name.clone(), per_message(secs));
            }
        }
        let offered_msgs = s.rooms as f64 * s.senders_per_room as f64 * rate;
        PhaseReport {
            name: name.to_string(),
            window_secs: window,
            offered_msgs_per_sec: offered_msgs,
            offered_deliveries_per_sec: offered_msgs * s.members_per_room as f64,
            sent_per_sec: self.stats.sent.load(Ordering::Relaxed) as f64 / window,
            acked_per_sec: self.stats.acked.load(Ordering::Relaxed) as f64 / window,
            deliveries_per_sec: deliveries as f64 / window,
            gaps: self.stats.gaps.load(Ordering::Relaxed) - gaps0,
            duplicates: self.stats.duplicates.load(Ordering::Relaxed) - dups0,
            latency_ms: Latency::from(&*self.stats.latency.lock().unwrap()),
            connect_ms: Latency::from(&*self.stats.connect.lock().unwrap()),
            errors,
            server_cpu_secs: server_cpu,
            server_cpu_us_per_delivery: server_cpu.map(|c| c * 1e6 / deliveries.max(1) as f64),
            server_rss_mib: server1.map(|p| p.rss_bytes as f64 / (1024.0 * 1024.0)),
            loadtest_cpu_percent: self_cpu.map(|c| c * 100.0 / window),
            cpu_us_per_message,
        }
    }

    /// Waits until every reading member has reached its room's head; returns how
    /// many events are still missing when the wait ends.
    async fn drain(&self) -> u64 {
        let deadline = Instant::now() + DRAIN_LIMIT;
        loop {
            let missing: u64 = (0..self.scenario.members())
                .filter(|&m| !self.slow[m])
                .map(|m| {
                    let head = self.stats.room_heads[m / self.scenario.members_per_room].load(Ordering::Acquire);
                    head.saturating_sub(self.stats.member_last[m].load(Ordering::Relaxed))
                })
                .sum();
            self.progress.set_message(format!("draining: {missing} events in flight"));
            if missing == 0 || Instant::now() >= deadline {
                return missing;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Extra clients that join a room and leave it again, `churn_rate` events a second.
async fn churn(s: Scenario, target: WsTarget, secret: Secret, rooms: Vec<RoomId>) {
    let period = Duration::from_secs_f64(2.0 / s.churn_rate.max(0.1));
    let mut tick = tokio::time::interval(period);
    for n in 0u64.. {
        tick.tick().await;
        let room = &rooms[n as usize % rooms.len()];
        let Ok(mut ws) = member::connect(&target, &token(&secret, &format!("churn{}", n % 1000))).await else {
            continue;
        };
        if member::join(&mut ws, target.codec, room, None).await.is_ok() {
            let leave = encode_request(target.codec, RequestId(3), &Leave { room: room.clone() });
            let message = match target.codec {
                Codec::MsgPack => tokio_tungstenite::tungstenite::Message::Binary(leave.into()),
                Codec::Json => {
                    tokio_tungstenite::tungstenite::Message::Text(String::from_utf8(leave).unwrap_or_default().into())
                }
            };
            let _ = ws.send(message).await;
        }
        let _ = ws.close(None).await;
    }
}

/// Opens idle connections and reports the server's memory per connection. With
/// `members_per_room` above zero each connection is a member of its own name,
/// joined to a room of that many, as members are in life; with zero they only
/// connect.
async fn idle(s: &Scenario, target: &Target, secret: &Secret, codec: Codec, progress: &ProgressBar) -> Result<Section> {
    let pid = target.pid.map(|p| p.to_string());
    let before = pid.as_deref().and_then(proc_sample);
    let tag = run_tag();
    let room_size = s.members_per_room;
    let rooms: Vec<RoomId> = if room_size == 0 {
        Vec::new()
    } else {
        let count = s.idle_connections.div_ceil(room_size);
        (0..count).map(|r| RoomId::new(format!("idle-{tag}-{r}")).expect("valid room name")).collect()
    };
    if !rooms.is_empty() {
        progress.set_message(format!("creating {} rooms", rooms.len()));
        let mut admin = member::connect(&ws_target(target, 0, codec), &token(secret, "idle-admin")).await?;
        for room in &rooms {
            // The admin is the owner and a member too.
            member::create_room(&mut admin, codec, room, room_size as u32 + 1).await?;
        }
    }
    let rooms = Arc::new(rooms);
    let limit = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for index in 0..s.idle_connections {
        let at = started + Duration::from_secs_f64(index as f64 / s.ramp);
        tokio::time::sleep_until(at.into()).await;
        if index % 500 == 0 {
            progress.set_message(format!("opening idle connections: {index}"));
        }
        let permit = limit.clone().acquire_owned().await.expect("semaphore open");
        // A user of its own each: a server allows a user only so many connections.
        let token = token(secret, &format!("idle{tag}-{index}"));
        let (t, rooms) = (ws_target(target, index, codec), rooms.clone());
        tasks.spawn(async move {
            let connected = Instant::now();
            let mut ws = member::connect(&t, &token).await?;
            if rooms.is_empty() {
                // Wait for the hello: the server has set the connection up.
                use futures_util::StreamExt;
                ws.next().await.context("no hello")??;
            } else {
                member::join(&mut ws, t.codec, &rooms[index / room_size], None).await?;
            }
            drop(permit);
            Ok::<_, anyhow::Error>((ws, connected.elapsed()))
        });
    }
    let mut open = Vec::with_capacity(s.idle_connections);
    let mut connect = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    while let Some(result) = tasks.join_next().await {
        let (ws, took) = result??;
        connect.saturating_record(took.as_micros() as u64);
        open.push(ws);
    }
    // Let the server settle, then sample.
    progress.set_message(format!("{} idle connections open", open.len()));
    tokio::time::sleep(s.duration).await;
    let after = pid.as_deref().and_then(proc_sample);
    let mut section = Section::new(&target.name);
    section.idle = Some(crate::report::IdleReport {
        connections: open.len(),
        members_per_room: room_size,
        connect_ms: Latency::from(&connect),
        server_rss_before_mib: before.map(|p| p.rss_bytes as f64 / 1048576.0),
        server_rss_after_mib: after.map(|p| p.rss_bytes as f64 / 1048576.0),
        server_bytes_per_connection: match (before, after) {
            (Some(b), Some(a)) => Some((a.rss_bytes as f64 - b.rss_bytes as f64) / open.len().max(1) as f64),
            _ => None,
        },
    });
    drop(open);
    Ok(section)
}
