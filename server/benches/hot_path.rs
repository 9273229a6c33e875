//! Micro-benchmarks of the hot path's parts, for profiling between load runs:
//! encoding one event, fanning one message out to a 100-member room, and the
//! store's group commit at several group sizes.
//!
//!     cargo bench -p hearth-server --bench hot_path

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use divan::counter::ItemsCount;
use divan::{Bencher, black_box};
use hearth_protocol::codec::encode_event;
use hearth_protocol::event::MessageEvent;
use hearth_protocol::ops::{CreateRoom, SendMessage, Visibility};
use hearth_protocol::{ClientMsgId, Codec, Event, Millis, RequestId, RoomId, Seq, ShortText, Text, UserId};
use hearth_server::journal::Journal;
use hearth_server::outbound::Outbound;
use hearth_server::rooms::{Ack, AckBody, ConnId, Registry, RoomLimits, Subscriber};
use hearth_server::store::memory::MemoryStore;
use hearth_server::store::sqlite::SqliteStore;
use hearth_server::store::{EventRow, RoomRecord, Store, Write};

fn main() {
    divan::main();
}

fn message() -> Event {
    Event::Message(MessageEvent {
        room: RoomId::new("cameras").unwrap(),
        seq: Seq(123_456),
        ts: Millis(1_764_140_000_000),
        from: UserId::new("ada").unwrap(),
        text: Text::new("x".repeat(100)).unwrap(),
        cmid: ClientMsgId::new("c-123456").unwrap(),
        thread: None,
    })
}

#[divan::bench(args = [Codec::MsgPack, Codec::Json])]
fn encode_message_event(bencher: Bencher, codec: Codec) {
    let event = message();
    bencher.bench(|| encode_event(codec, black_box(&event)));
}

/// One `send` into a room with 100 subscribed members (in memory, so the event is
/// fanned out inline), then every member's writer taking its frame.
#[divan::bench(args = [Codec::MsgPack, Codec::Json])]
fn fan_out_to_100_members(bencher: Bencher, codec: Codec) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new(1000));
    let journal = Arc::new(Journal::new(store.clone()));
    let registry = Registry::load(store.clone(), journal, RoomLimits::default()).unwrap();
    let owner = UserId::new("owner").unwrap();
    let name = RoomId::new("bench").unwrap();
    let (tx, _rx) = tokio::sync::oneshot::channel();
    let args =
        CreateRoom { room: name.clone(), topic: ShortText::default(), cap: Some(100), visibility: Visibility::Open };
    registry.create(&owner, args, Ack::Wake(tx)).unwrap();
    let room = registry.get(&name).unwrap();
    let mut queues = Vec::new();
    for i in 0..100u64 {
        let user = if i == 0 { owner.clone() } else { UserId::new(format!("m{i}")).unwrap() };
        let start = room.begin_join(&user, None).unwrap();
        let out = Arc::new(Outbound::new(usize::MAX / 2));
        let sub = Subscriber { conn: ConnId(i), user, codec, out: out.clone() };
        runtime.block_on(room.catch_up_and_subscribe(&store, sub, start.joined.room.head)).unwrap();
        queues.push(out);
    }
    let counter = AtomicU64::new(0);
    let text = Text::new("x".repeat(100)).unwrap();
    let mut batch = Vec::new();
    bencher.counter(ItemsCount::new(100usize)).bench_local(|| {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let send = SendMessage {
            room: name.clone(),
            text: text.clone(),
            cmid: ClientMsgId::new(format!("c{n}")).unwrap(),
            thread: None,
        };
        let ack = Ack::Reply { out: queues[0].clone(), codec, id: RequestId(n), body: AckBody::Appended };
        let _ = room.send(&owner, send, ack).unwrap();
        for out in &queues {
            out.take_queued(&mut batch);
            batch.clear();
        }
    });
}

/// One SQLite transaction (WAL, synchronous=FULL: one fsync) holding `group` events.
#[divan::bench(args = [1, 64, 1024], sample_count = 30)]
fn sqlite_group_commit(bencher: Bencher, group: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let room = RoomId::new("bench").unwrap();
    let record = RoomRecord {
        room: room.clone(),
        epoch: hearth_protocol::Epoch(1),
        owner: UserId::new("ada").unwrap(),
        created_at: Millis(0),
        topic: ShortText::default(),
        cap: 100,
        visibility: Visibility::Open,
        slow_mode_secs: 0,
        required_role: None,
        welcome: None,
        probation_secs: 0,
    };
    store.commit(&[Write::PutRoom(record)]).unwrap();
    let body = Bytes::from(encode_event(Codec::MsgPack, &message()));
    let from = UserId::new("ada").unwrap();
    let mut next_seq = 1u64;
    bencher
        .counter(ItemsCount::new(group))
        .with_inputs(|| {
            (0..group)
                .map(|_| {
                    next_seq += 1;
                    Write::AppendEvent(EventRow {
                        room: room.clone(),
                        seq: Seq(next_seq),
                        ts: Millis(0),
                        from: from.clone(),
                        cmid: None,
                        thread: None,
                        body: body.clone(),
                    })
                })
                .collect::<Vec<_>>()
        })
        .bench_local_values(|writes| store.commit(&writes).unwrap());
}
