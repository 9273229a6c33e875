//! The delivery path without sockets: a registry over a local broker whose
//! deliveries can be made to lose events, as a publish from another node can be
//! lost on its way.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use hearth_protocol::ops::{CreateRoom, SendMessage, Visibility};
use hearth_protocol::{ClientMsgId, Codec, Epoch, Event, Millis, RequestId, RoomId, Seq, ShortText, Text, UserId};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::broker::Delivery;
use crate::broker::local::LocalBroker;
use crate::clock;
use crate::hub::Hub;
use crate::journal::CommitHold;
use crate::outbound::{Outbound, Taken};
use crate::room;
use crate::store::memory::MemoryStore;

/// Passes deliveries on, except the seqs it is told to lose.
struct Lossy {
    inner: Arc<Loaded>,
    lose: Mutex<HashSet<u64>>,
}

impl Delivery for Lossy {
    fn deliver(&self, room: &RoomId, events: &[Committed]) {
        let lose = self.lose.lock().unwrap();
        let kept: Vec<Committed> = events.iter().filter(|e| !lose.contains(&e.seq().0)).cloned().collect();
        drop(lose);
        if !kept.is_empty() {
            self.inner.deliver(room, &kept);
        }
    }

    fn position(&self, room: &RoomId) -> Option<hearth_protocol::Position> {
        self.inner.position(room)
    }

    fn resync(&self, room: &RoomId, at: Option<hearth_protocol::Position>, now: bool) {
        self.inner.resync(room, at, now);
    }

    fn snapshot(&self, room: &RoomId) -> Option<crate::store::RoomLoad> {
        self.inner.snapshot(room)
    }
}

const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

struct Fixture {
    registry: Registry,
    lossy: Arc<Lossy>,
    room: Arc<Room>,
    reader: Arc<Outbound>,
}

fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

async fn fixture(history_limit: usize, idle_after: std::time::Duration) -> Fixture {
    let loaded = Arc::new(Loaded::default());
    let lossy = Arc::new(Lossy { inner: loaded.clone(), lose: Mutex::default() });
    let store = Arc::new(MemoryStore::new(history_limit));
    let hub = Arc::new(Hub::default());
    let broker: Arc<dyn Broker> = Arc::new(LocalBroker::start(
        store,
        clock::system(),
        lossy.clone(),
        hub.clone(),
        4096,
        HOUR,
        CommitHold::default(),
        CancellationToken::new(),
    ));
    let limits = RoomLimits { recent_events: 8, idle_after, ..RoomLimits::default() };
    let registry = Registry::new(loaded, broker.clone(), hub, limits);
    let name = RoomId::new("gaps").unwrap();
    let args = CreateRoom { room: name.clone(), topic: ShortText::default(), cap: None, visibility: Visibility::Open };
    let (record, first) = room::decide_create(&user("ada"), args, Epoch(3), Millis(1)).unwrap();
    broker.create_room(record, first, Some(1000)).await.unwrap().durable().await.unwrap();
    let room = registry.get(&name).await.unwrap();
    let reader = Arc::new(Outbound::new(1 << 30));
    let conn = Arc::new(Conn::new(ConnId(1), user("ada"), Codec::MsgPack, reader.clone()));
    room.join(&conn, RequestId(1), None, false, Millis(0)).await.unwrap();
    Fixture { registry, lossy, room, reader }
}

async fn send(f: &Fixture, n: u64) -> Seq {
    let msg = SendMessage {
        room: f.room.id.clone(),
        text: Text::new(format!("m{n}")).unwrap(),
        cmid: ClientMsgId::new(format!("c{n}")).unwrap(),
        thread: None,
    };
    let draft = f.room.decide(|s| s.decide_send(&user("ada"), msg, None, Millis(0))).unwrap();
    f.registry.broker().publish(draft).await.unwrap().durable().await.unwrap().seq
}

/// What the reader has been sent: timeline seqs, and `truncated` as (after, next).
#[derive(Debug, PartialEq)]
enum Seen {
    Event(u64),
    Truncated(u64, u64),
}

fn seen(out: &Outbound) -> Vec<Seen> {
    let mut batch = std::collections::VecDeque::new();
    let _ = out.take_queued(&mut batch);
    batch
        .into_iter()
        .filter_map(|m| {
            let Message::Binary(bytes) = m else { return None };
            match rmp_serde::from_slice::<Event>(&bytes).ok()? {
                Event::Truncated(t) => Some(Seen::Truncated(t.after.0, t.next.0)),
                event => event.seq().map(|s| Seen::Event(s.0)),
            }
        })
        .collect()
}

async fn settle(f: &Fixture, seq: Seq) {
    tokio::time::timeout(std::time::Duration::from_secs(10), f.room.wait_applied(seq)).await.expect("repaired in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_delivery_is_read_back_from_history_in_order() {
    let f = fixture(1000, HOUR).await;
    let _ = seen(&f.reader);
    f.lossy.lose.lock().unwrap().extend([3, 4]);
    let mut last = Seq(0);
    for n in 0..5 {
        last = send(&f, n).await;
    }
    settle(&f, last).await;
    let got = seen(&f.reader);
    assert_eq!(got, (2..=6).map(Seen::Event).collect::<Vec<_>>(), "in order, nothing missing, nothing twice");
    assert_eq!(f.room.position().seq, Seq(6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_history_no_longer_holds_is_told_as_truncated() {
    // History keeps 3 events: losing 3..=7 leaves a hole nobody can fill.
    let f = fixture(3, HOUR).await;
    let _ = seen(&f.reader);
    f.lossy.lose.lock().unwrap().extend(3..=7);
    let mut last = Seq(0);
    for n in 0..7 {
        last = send(&f, n).await;
    }
    settle(&f, last).await;
    let got = seen(&f.reader);
    assert_eq!(got, vec![Seen::Event(2), Seen::Truncated(2, 9)], "told, not left with a hole");
    // The room goes on from the head it reloaded.
    let next = send(&f, 99).await;
    settle(&f, next).await;
    assert_eq!(seen(&f.reader), vec![Seen::Event(9)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_rooms_leave_memory_and_come_back_as_they_were() {
    let f = fixture(1000, std::time::Duration::ZERO).await;
    send(&f, 1).await;
    let name = f.room.id.clone();
    // Receivers and holders keep a room in memory.
    assert_eq!(f.registry.evict_idle_now().await, 0);
    let Fixture { registry, room, reader, .. } = f;
    room.unsubscribe(ConnId(1));
    drop(room);
    assert_eq!(registry.evict_idle_now().await, 1);
    assert!(registry.loaded().get(&name).is_none());
    let back = registry.get(&name).await.unwrap();
    assert_eq!(back.position().seq, Seq(2));
    assert!(back.is_member(&user("ada")));
    let _ = reader.take_queued(&mut std::collections::VecDeque::new());
    assert!(matches!(reader.take_queued(&mut std::collections::VecDeque::new()), Taken::Nothing));
}
