//! One suite, run against every `Store`: what the rest of the server may rely on.

use bytes::Bytes;
use hearth_protocol::ops::{PinnedNote, Visibility};
use hearth_protocol::{ClientMsgId, Epoch, Millis, Note, PinId, Role, RoomId, Seq, ShortText, UserId};

use super::memory::MemoryStore;
use super::sqlite::SqliteStore;
use super::*;

fn room(name: &str) -> RoomId {
    RoomId::new(name).unwrap()
}

fn record(name: &str) -> RoomRecord {
    RoomRecord {
        room: room(name),
        epoch: Epoch(42),
        owner: UserId::new("ada").unwrap(),
        created_at: Millis(1),
        topic: ShortText::new("film").unwrap(),
        cap: 100,
        visibility: Visibility::Open,
        slow_mode_secs: 0,
        required_role: None,
        welcome: None,
        probation_secs: 0,
    }
}

fn member(name: &str, role: Role) -> MemberRecord {
    MemberRecord { user: UserId::new(name).unwrap(), role, joined_at: Millis(2), role_expires_at: None }
}

fn event(name: &str, seq: u64) -> Write {
    Write::AppendEvent(EventRow {
        room: room(name),
        seq: Seq(seq),
        ts: Millis(seq * 10),
        from: UserId::new("ada").unwrap(),
        cmid: Some(ClientMsgId::new(format!("c{seq}")).unwrap()),
        thread: None,
        body: Bytes::from(format!("event-{seq}")),
    })
}

fn pin(id: u64) -> PinnedNote {
    PinnedNote {
        pin: PinId(id),
        seq: None,
        text: Note::new("mission").unwrap(),
        by: UserId::new("ada").unwrap(),
        at: Millis(3),
        title: None,
        version: 1,
    }
}

fn seqs(events: &[StoredEvent]) -> Vec<u64> {
    events.iter().map(|e| e.seq.0).collect()
}

fn rooms_members_and_pins_load_back(store: &dyn Store) {
    let mut writes = vec![
        Write::PutRoom(record("cameras")),
        Write::PutMember { room: room("cameras"), member: member("ada", Role::Owner) },
        Write::PutMember { room: room("cameras"), member: member("bo", Role::Member) },
        Write::PutPin { room: room("cameras"), pin: pin(1) },
        Write::PutPin { room: room("cameras"), pin: pin(2) },
    ];
    writes.extend((1..=5).map(|s| event("cameras", s)));
    store.commit(&writes).unwrap();
    store
        .commit(&[
            Write::RemoveMember { room: room("cameras"), user: UserId::new("bo").unwrap() },
            Write::RemovePin { room: room("cameras"), pin: PinId(1) },
        ])
        .unwrap();

    let snapshots = store.load(3).unwrap();
    assert_eq!(snapshots.len(), 1);
    let snap = &snapshots[0];
    assert_eq!(snap.record, record("cameras"));
    assert_eq!(snap.members, vec![member("ada", Role::Owner)]);
    assert_eq!(snap.pins, vec![pin(2)]);
    assert_eq!(snap.head, Seq(5));
    assert_eq!(seqs(&snap.recent), vec![3, 4, 5]);
    assert_eq!(snap.recent[2].body, Bytes::from("event-5"));
}

fn pages_walk_the_timeline_in_order(store: &dyn Store) {
    store.commit(&[Write::PutRoom(record("lenses"))]).unwrap();
    for chunk in (1..=20u64).collect::<Vec<_>>().chunks(7) {
        store.commit(&chunk.iter().map(|&s| event("lenses", s)).collect::<Vec<_>>()).unwrap();
    }
    let r = room("lenses");
    assert_eq!(seqs(&store.events_after(&r, Seq(0), 5).unwrap()), vec![1, 2, 3, 4, 5]);
    assert_eq!(seqs(&store.events_after(&r, Seq(17), 5).unwrap()), vec![18, 19, 20]);
    assert_eq!(seqs(&store.events_after(&r, Seq(20), 5).unwrap()), Vec::<u64>::new());
    assert_eq!(seqs(&store.events_before(&r, Seq(21), 3).unwrap()), vec![18, 19, 20]);
    assert_eq!(seqs(&store.events_before(&r, Seq(3), 5).unwrap()), vec![1, 2]);
    assert_eq!(store.oldest(&r).unwrap(), Seq(1));
    assert!(store.events_after(&room("nowhere"), Seq(0), 5).unwrap().is_empty());
}

fn run_suite(make: impl Fn() -> Box<dyn Store>) {
    rooms_members_and_pins_load_back(&*make());
    pages_walk_the_timeline_in_order(&*make());
}

#[test]
fn memory_store_conforms() {
    run_suite(|| Box::new(MemoryStore::new(1000)));
}

#[test]
fn sqlite_store_conforms() {
    let dirs: std::cell::RefCell<Vec<tempfile::TempDir>> = Default::default();
    run_suite(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        dirs.borrow_mut().push(dir);
        Box::new(store)
    });
}

#[test]
fn sqlite_store_conforms_with_reads_across_log_and_table() {
    // Folding every 5 appended events leaves each page split between the two.
    let dirs: std::cell::RefCell<Vec<tempfile::TempDir>> = Default::default();
    run_suite(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_folding_at(dir.path(), 5).unwrap();
        dirs.borrow_mut().push(dir);
        Box::new(store)
    });
}

#[test]
fn memory_store_forgets_past_its_limit() {
    let store = MemoryStore::new(4);
    store.commit(&[Write::PutRoom(record("cameras"))]).unwrap();
    store.commit(&(1..=10).map(|s| event("cameras", s)).collect::<Vec<_>>()).unwrap();
    assert_eq!(store.oldest(&room("cameras")).unwrap(), Seq(7));
    assert_eq!(seqs(&store.events_after(&room("cameras"), Seq(0), 100).unwrap()), vec![7, 8, 9, 10]);
}

#[test]
fn sqlite_store_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(dir.path()).unwrap();
        store.commit(&[Write::PutRoom(record("cameras")), event("cameras", 1)]).unwrap();
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    let snapshots = store.load(10).unwrap();
    assert_eq!(snapshots[0].head, Seq(1));
    assert!(store.is_durable());
}

#[test]
fn a_failed_batch_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    // Folding on every commit, so the (room, seq) key sees each batch at once.
    let store = SqliteStore::open_folding_at(dir.path(), 1).unwrap();
    store.commit(&[Write::PutRoom(record("cameras")), event("cameras", 1)]).unwrap();
    // Seq 1 again violates the primary key: the whole batch, seq 2 included, rolls back.
    assert!(store.commit(&[event("cameras", 2), event("cameras", 1)]).is_err());
    assert_eq!(seqs(&store.events_after(&room("cameras"), Seq(0), 10).unwrap()), vec![1]);
}
