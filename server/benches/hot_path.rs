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
use hearth_protocol::{ClientMsgId, Codec, Epoch, Event, Millis, RequestId, RoomId, Seq, ShortText, Text, UserId};
use hearth_server::broker::Broker;
use hearth_server::broker::local::LocalBroker;
use hearth_server::hub::{Conn, ConnId, Hub};
use hearth_server::journal::CommitHold;
use hearth_server::outbound::Outbound;
use hearth_server::rooms::{Loaded, Registry, RoomLimits};
use hearth_server::store::memory::MemoryStore;
use hearth_server::store::sqlite::SqliteStore;
use hearth_server::store::{EventRow, RoomRecord, Store, Write};
use hearth_server::{clock, room};
use tokio_util::sync::CancellationToken;

fn main() {
    divan::main();
}

fn message() -> Event {
    Event::Message(MessageEvent {
        seq: Seq(123_456),
        ts: Millis(1_764_140_000_000),
        ..MessageEvent::draft(
            RoomId::new("cameras").unwrap(),
            UserId::new("ada").unwrap(),
            Text::new("x".repeat(100)).unwrap(),
            ClientMsgId::new("c-123456").unwrap(),
            None,
        )
    })
}

#[divan::bench(args = [Codec::MsgPack, Codec::Json])]
fn encode_message_event(bencher: Bencher, codec: Codec) {
    let event = message();
    bencher.bench(|| encode_event(codec, black_box(&event)));
}

/// One `send` into a room with 100 receiving members (in memory, so the event is
/// fanned out inline): decide, order, deliver, then every member's writer taking
/// its frame.
#[divan::bench(args = [Codec::MsgPack, Codec::Json])]
fn fan_out_to_100_members(bencher: Bencher, codec: Codec) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _guard = runtime.enter();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new(1000));
    let loaded = Arc::new(Loaded::default());
    let hub = Arc::new(Hub::default());
    let broker: Arc<dyn Broker> = Arc::new(LocalBroker::start(
        store,
        clock::system(),
        loaded.clone(),
        hub.clone(),
        4096,
        std::time::Duration::from_secs(3600),
        CommitHold::default(),
        CancellationToken::new(),
    ));
    let registry = Registry::new(loaded, broker.clone(), hub, RoomLimits::default());
    let owner = UserId::new("owner").unwrap();
    let name = RoomId::new("bench").unwrap();
    let args =
        CreateRoom { room: name.clone(), topic: ShortText::default(), cap: Some(100), visibility: Visibility::Open };
    let (record, first) = room::decide_create(&owner, args, Epoch(1), Millis(0)).unwrap();
    runtime.block_on(broker.create_room(record, first, Some(1000))).unwrap();
    let room = runtime.block_on(registry.get(&name)).unwrap();
    let mut queues = Vec::new();
    for i in 0..100u64 {
        let user = if i == 0 { owner.clone() } else { UserId::new(format!("m{i}")).unwrap() };
        if let Some(draft) = room.decide(|s| s.decide_join(&user, None, hearth_protocol::Millis(0))).unwrap() {
            runtime.block_on(broker.publish(draft)).unwrap();
        }
        let out = Arc::new(Outbound::new(usize::MAX / 2));
        let conn = Arc::new(Conn::new(ConnId(i), user, codec, out.clone()));
        runtime.block_on(room.join(&conn, RequestId(i), None, false, hearth_protocol::Millis(0))).unwrap();
        queues.push(out);
    }
    let counter = AtomicU64::new(0);
    let text = Text::new("x".repeat(100)).unwrap();
    let mut batch = std::collections::VecDeque::new();
    bencher.counter(ItemsCount::new(100usize)).bench_local(|| {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let send = SendMessage {
            room: name.clone(),
            text: text.clone(),
            cmid: ClientMsgId::new(format!("c{n}")).unwrap(),
            thread: None,
        };
        let draft = room.decide(|s| s.decide_send(&owner, send, None, hearth_protocol::Millis(0))).unwrap();
        let receipt = runtime.block_on(broker.publish(draft)).unwrap();
        black_box(receipt);
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
    let record = RoomRecord::new(
        room.clone(),
        hearth_protocol::Epoch(1),
        UserId::new("ada").unwrap(),
        Millis(0),
        ShortText::default(),
        100,
        Visibility::Open,
    );
    store.commit(&[Write::CreateRoom(record)]).unwrap();
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
