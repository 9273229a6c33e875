//! The `wander` scenario: many stored rooms, few of them active, members moving
//! between them. Each wanderer joins a room (most often one of a few hot rooms,
//! sometimes any of the others), stays a while reading and saying one thing,
//! leaves, and moves on. What it measures is the server's memory over time —
//! it should follow the rooms in use, not the rooms stored — and the time a join
//! takes when the room has to be loaded first. Every stay is checked: the events
//! seen after the join continue its head with no gap and no duplicate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use hearth_protocol::codec::{ServerFrame, decode_reply, decode_server_frame, encode_request};
use hearth_protocol::ops::{Join, Leave, SendMessage};
use hearth_protocol::{ClientMsgId, Codec, RequestId, RoomId, Text};
use hearth_server::auth::Secret;
use indicatif::ProgressBar;
use serde::Serialize;
use tokio_tungstenite::tungstenite::Message;

use crate::member::{self, Ws};
use crate::report::{Latency, Section};
use crate::run::{Target, token, ws_target};
use crate::scenario::Scenario;
use crate::stats::proc_sample;

#[derive(Debug, Clone, Serialize)]
pub struct WanderReport {
    pub rooms: usize,
    pub wanderers: usize,
    /// Seconds to create the rooms that did not exist yet (0 when all did).
    pub create_secs: f64,
    pub stays: u64,
    pub joins_per_sec: f64,
    pub join_ms: Latency,
    pub messages_acked: u64,
    pub gaps: u64,
    pub duplicates: u64,
    pub errors: u64,
    pub server_rss_start_mib: Option<f64>,
    pub server_rss_max_mib: Option<f64>,
    pub server_rss_end_mib: Option<f64>,
    /// The server's RSS every 10 s of the run: flat once the rooms in use are
    /// loaded, if memory follows them rather than the stored ones.
    pub server_rss_every_10s_mib: Vec<f64>,
}

#[derive(Default)]
struct Counters {
    stays: AtomicU64,
    acked: AtomicU64,
    gaps: AtomicU64,
    duplicates: AtomicU64,
    errors: AtomicU64,
}

/// Room names are the same on every run, so a data directory keeps them and a
/// second run (or a restarted server) starts with them stored.
fn room_name(index: usize) -> RoomId {
    RoomId::new(format!("wander-{index}")).expect("valid room name")
}

pub async fn run(
    s: &Scenario,
    target: &Target,
    secret: &Secret,
    codec: Codec,
    progress: &ProgressBar,
) -> Result<Section> {
    let pid = target.pid.map(|p| p.to_string());
    progress.set_message(format!("creating up to {} rooms", s.rooms));
    let started = Instant::now();
    // A few admin connections in parallel: each creation waits for its commit.
    const CREATORS: usize = 8;
    let mut creators = tokio::task::JoinSet::new();
    for lane in 0..CREATORS {
        let (t, admin_token, rooms) = (ws_target(target, lane, codec), token(secret, "wander-admin"), s.rooms);
        creators.spawn(async move {
            let mut admin = member::connect(&t, &admin_token).await?;
            for index in (lane..rooms).step_by(CREATORS) {
                member::create_room(&mut admin, codec, &room_name(index), 1000).await?;
            }
            Ok::<(), anyhow::Error>(())
        });
    }
    while let Some(done) = creators.join_next().await {
        done.context("room creator")??;
    }
    let create_secs = started.elapsed().as_secs_f64();
    let rss = |pid: &Option<String>| pid.as_deref().and_then(proc_sample).map(|p| p.rss_bytes as f64 / 1048576.0);
    let rss_start = rss(&pid);

    let counters = Arc::new(Counters::default());
    let joins = Arc::new(std::sync::Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?));
    let deadline = Instant::now() + s.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..s.wanderers {
        let wanderer = Wanderer {
            index,
            target: ws_target(target, index, codec),
            token: token(secret, &format!("wanderer{index}")),
            rooms: s.rooms,
            hot_rooms: s.hot_rooms.min(s.rooms).max(1),
            hot_percent: s.hot_percent,
            dwell: s.dwell,
            deadline,
            counters: counters.clone(),
            joins: joins.clone(),
        };
        tasks.spawn(wanderer.run());
    }
    let mut rss_max = rss_start;
    let mut rss_timeline = Vec::new();
    let mut next_mark = Instant::now() + Duration::from_secs(10);
    let sampling = async {
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if let Some(now) = rss(&pid) {
                rss_max = Some(rss_max.map_or(now, |m: f64| m.max(now)));
                if Instant::now() >= next_mark {
                    rss_timeline.push((now * 10.0).round() / 10.0);
                    next_mark += Duration::from_secs(10);
                }
            }
            let stays = counters.stays.load(Ordering::Relaxed);
            progress.set_message(format!("{} wanderers, {stays} stays", s.wanderers));
        }
    };
    sampling.await;
    let mut first_error = None;
    while let Some(done) = tasks.join_next().await {
        if let Err(error) = done.context("wanderer task")? {
            counters.errors.fetch_add(1, Ordering::Relaxed);
            first_error.get_or_insert(error);
        }
    }
    if let Some(error) = first_error {
        eprintln!("a wanderer failed: {error:#}");
    }
    let joins = joins.lock().expect("not poisoned").clone();
    let mut section = Section::new(&target.name);
    let stays = counters.stays.load(Ordering::Relaxed);
    section.gaps = counters.gaps.load(Ordering::Relaxed);
    section.duplicates = counters.duplicates.load(Ordering::Relaxed);
    section.wander = Some(WanderReport {
        rooms: s.rooms,
        wanderers: s.wanderers,
        create_secs,
        stays,
        joins_per_sec: joins.len() as f64 / s.duration.as_secs_f64(),
        join_ms: Latency::from(&joins),
        messages_acked: counters.acked.load(Ordering::Relaxed),
        gaps: section.gaps,
        duplicates: section.duplicates,
        errors: counters.errors.load(Ordering::Relaxed),
        server_rss_start_mib: rss_start,
        server_rss_max_mib: rss_max,
        server_rss_end_mib: rss(&pid),
        server_rss_every_10s_mib: rss_timeline,
    });
    Ok(section)
}

struct Wanderer {
    index: usize,
    target: member::Target,
    token: String,
    rooms: usize,
    hot_rooms: usize,
    hot_percent: f64,
    dwell: Duration,
    deadline: Instant,
    counters: Arc<Counters>,
    joins: Arc<std::sync::Mutex<Histogram<u64>>>,
}

impl Wanderer {
    async fn run(self) -> Result<()> {
        let codec = self.target.codec;
        let mut ws = member::connect(&self.target, &self.token).await?;
        // A small xorshift per wanderer: reproducible, no shared state.
        let mut rng = (self.index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut ids = 10u64..;
        let mut said = 0u64;
        while Instant::now() < self.deadline {
            let hot = (next() % 10_000) as f64 / 100.0 < self.hot_percent;
            let room = room_name(if hot { next() as usize % self.hot_rooms } else { next() as usize % self.rooms });
            let id = ids.next().expect("endless");
            let started = Instant::now();
            send(&mut ws, codec, id, &Join { room: room.clone(), since: None, invite: None }).await?;
            let frame = until_reply(&mut ws, codec, id, |_| {}).await?;
            let joined = match decode_reply::<Join>(codec, &frame)? {
                Ok(joined) => joined,
                Err(error) => bail!("join {room}: {error}"),
            };
            self.joins.lock().expect("not poisoned").saturating_record(started.elapsed().as_micros() as u64);
            let mut last = joined.room.head.0;
            let counters = &self.counters;
            let mut check = |frame: &ServerFrame| {
                if let ServerFrame::Event(event) = frame
                    && let (Some(r), Some(seq)) = (event.room(), event.seq())
                    && *r == room
                {
                    if seq.0 <= last {
                        counters.duplicates.fetch_add(1, Ordering::Relaxed);
                    } else if seq.0 != last + 1 {
                        counters.gaps.fetch_add(seq.0 - last - 1, Ordering::Relaxed);
                    }
                    last = last.max(seq.0);
                }
            };
            // Say one thing, then read until the stay is over.
            said += 1;
            let text = Text::new(format!("wanderer {} says {said}", self.index)).expect("short text");
            let cmid = ClientMsgId::new(format!("w{}-{said}", self.index)).expect("valid id");
            let send_id = ids.next().expect("endless");
            send(&mut ws, codec, send_id, &SendMessage { room: room.clone(), text, cmid, thread: None }).await?;
            until_reply(&mut ws, codec, send_id, &mut check).await?;
            self.counters.acked.fetch_add(1, Ordering::Relaxed);
            let stay_end = started + self.dwell;
            while let Ok(frame) = tokio::time::timeout_at(stay_end.into(), ws.next()).await {
                let bytes = frame_bytes(frame)?;
                if let Ok(frame) = decode_server_frame(codec, &bytes) {
                    check(&frame);
                }
            }
            let leave_id = ids.next().expect("endless");
            send(&mut ws, codec, leave_id, &Leave { room: room.clone() }).await?;
            until_reply(&mut ws, codec, leave_id, &mut check).await?;
            self.counters.stays.fetch_add(1, Ordering::Relaxed);
        }
        let _ = ws.close(None).await;
        Ok(())
    }
}

async fn send<O: hearth_protocol::Operation>(ws: &mut Ws, codec: Codec, id: u64, args: &O) -> Result<()> {
    let bytes = encode_request(codec, RequestId(id), args);
    let message = match codec {
        Codec::MsgPack => Message::Binary(Bytes::from(bytes)),
        Codec::Json => Message::Text(String::from_utf8(bytes).expect("JSON is UTF-8").into()),
    };
    ws.send(message).await?;
    Ok(())
}

fn frame_bytes(frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>) -> Result<Bytes> {
    match frame {
        Some(Ok(Message::Binary(b))) => Ok(b),
        Some(Ok(Message::Text(t))) => Ok(Bytes::from(t)),
        Some(Ok(Message::Close(close))) => bail!("closed: {close:?}"),
        Some(Ok(_)) => Ok(Bytes::new()),
        Some(Err(e)) => Err(e.into()),
        None => bail!("connection ended"),
    }
}

/// Reads until the reply to `id`, passing every other frame to `seen`.
async fn until_reply(ws: &mut Ws, codec: Codec, id: u64, mut seen: impl FnMut(&ServerFrame)) -> Result<Bytes> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(30), ws.next()).await.context("no reply in 30 s")?;
        let bytes = frame_bytes(frame)?;
        if bytes.is_empty() {
            continue;
        }
        match decode_server_frame(codec, &bytes) {
            Ok(ServerFrame::Reply { id: got }) if got.0 == id => return Ok(bytes),
            Ok(frame) => seen(&frame),
            Err(error) => bail!("undecodable frame: {error}"),
        }
    }
}
