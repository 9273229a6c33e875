//! One suite, run against every `Store`: what the rest of the server may rely on.

use bytes::Bytes;
use hearth_protocol::ops::{PinnedNote, RoomSettings, Visibility};
use hearth_protocol::{ClientMsgId, Epoch, Millis, Note, PinId, Role, RoomId, Seq, ShortText, UserId};

use super::memory::MemoryStore;
use super::sqlite::SqliteStore;
use super::*;

fn room(name: &str) -> RoomId {
    RoomId::new(name).unwrap()
}

fn record(name: &str) -> RoomRecord {
    RoomRecord::new(
        room(name),
        Epoch(42),
        UserId::new("ada").unwrap(),
        Millis(1),
        ShortText::new("film").unwrap(),
        100,
        Visibility::Open,
    )
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
        note: None,
        deleted: false,
    }
}

fn seqs(events: &[StoredEvent]) -> Vec<u64> {
    events.iter().map(|e| e.seq.0).collect()
}

fn change(name: &str, change: Change) -> Write {
    Write::Change { room: room(name), change }
}

fn rooms_members_and_pins_load_back(store: &dyn Store) {
    let mut writes = vec![
        Write::CreateRoom(record("cameras")),
        change("cameras", Change::PutMember(member("ada", Role::Owner))),
        change("cameras", Change::PutMember(member("bo", Role::Member))),
        change("cameras", Change::PutPin(pin(1))),
        change("cameras", Change::PutPin(pin(2))),
    ];
    writes.extend((1..=5).map(|s| event("cameras", s)));
    store.commit(&writes).unwrap();
    let settings = RoomSettings { topic: Some(ShortText::new("lenses").unwrap()), cap: Some(30), ..Default::default() };
    store
        .commit(&[
            change("cameras", Change::RemoveMember(UserId::new("bo").unwrap())),
            change("cameras", Change::RemovePin(PinId(1))),
            change("cameras", Change::UpdateSettings(settings.clone())),
        ])
        .unwrap();

    let load = store.load_room(&room("cameras"), 3).unwrap().expect("the room is there");
    let mut expected = record("cameras");
    expected.apply_settings(&settings);
    assert_eq!(load.record, expected);
    assert_eq!(load.record.cap, 30);
    assert_eq!(load.members, vec![member("ada", Role::Owner)]);
    assert_eq!(load.pins, vec![pin(2)]);
    assert_eq!(load.head, Seq(5));
    assert_eq!(load.last_ts, Millis(50));
    assert_eq!(seqs(&load.recent), vec![3, 4, 5]);
    assert_eq!(load.recent[2].body, Bytes::from("event-5"));
    assert!(store.load_room(&room("nowhere"), 3).unwrap().is_none());
}

fn pins_of_a_message_follow_its_edits_and_its_deletion(store: &dyn Store) {
    let of = |id: u64, message: u64, text: &str| PinnedNote {
        seq: Some(Seq(message)),
        text: Note::new(text).unwrap(),
        ..pin(id)
    };
    store
        .commit(&[
            Write::CreateRoom(record("pinned")),
            change("pinned", Change::PutPin(of(4, 2, "first words"))),
            change("pinned", Change::PutPin(of(5, 3, "say no more"))),
            change("pinned", Change::PutPin(pin(6))),
        ])
        .unwrap();
    let edited = Note::new("second thoughts").unwrap();
    store
        .commit(&[
            change("pinned", Change::RetextPins { message: Seq(2), text: Some(edited.clone()) }),
            change("pinned", Change::RetextPins { message: Seq(3), text: None }),
            // A message nobody pinned: nothing changes.
            change("pinned", Change::RetextPins { message: Seq(9), text: None }),
        ])
        .unwrap();
    let load = store.load_room(&room("pinned"), 0).unwrap().unwrap();
    let mut gone = of(5, 3, "(deleted)");
    gone.deleted = true;
    assert_eq!(load.pins, vec![of(4, 2, "second thoughts"), gone, pin(6)]);
}

fn an_empty_room_loads_at_its_creation(store: &dyn Store) {
    store.commit(&[Write::CreateRoom(record("empty"))]).unwrap();
    let load = store.load_room(&room("empty"), 10).unwrap().unwrap();
    assert_eq!((load.head, load.last_ts), (Seq(0), Millis(1)));
    assert!(load.recent.is_empty() && load.members.is_empty());
    assert_eq!(store.oldest(&room("empty")).unwrap(), Seq(1));
}

fn listings_count_members_and_show_the_callers_role(store: &dyn Store) {
    let mut writes = vec![Write::CreateRoom(record("b-room")), Write::CreateRoom(record("a-room"))];
    writes.push(change("a-room", Change::PutMember(member("ada", Role::Owner))));
    writes.push(change("a-room", Change::PutMember(member("bo", Role::Member))));
    writes.push(change("b-room", Change::PutMember(member("cy", Role::Moderator))));
    store.commit(&writes).unwrap();
    let list = store.list_rooms(&UserId::new("bo").unwrap(), None, 10).unwrap();
    let names: Vec<&str> = list.iter().map(|l| l.record.room.as_str()).collect();
    assert_eq!(names, ["a-room", "b-room"]);
    assert_eq!((list[0].members, list[0].role), (2, Some(Role::Member)));
    assert_eq!((list[1].members, list[1].role), (1, None));
    // Pages, by name.
    let first = store.list_rooms(&UserId::new("bo").unwrap(), None, 1).unwrap();
    assert_eq!(first.len(), 1);
    let next = store.list_rooms(&UserId::new("bo").unwrap(), Some(&first[0].record.room), 10).unwrap();
    assert_eq!(next.iter().map(|l| l.record.room.as_str()).collect::<Vec<_>>(), ["b-room"]);
    // Invite-only rooms show only to their members.
    let mut hidden = record("c-hidden");
    hidden.visibility = Visibility::InviteOnly;
    store.commit(&[Write::CreateRoom(hidden)]).unwrap();
    assert_eq!(store.list_rooms(&UserId::new("bo").unwrap(), None, 10).unwrap().len(), 2);
    assert_eq!(store.rooms_owned(&UserId::new("ada").unwrap()).unwrap(), 1);
    assert_eq!(store.rooms_owned(&UserId::new("cy").unwrap()).unwrap(), 0);
}

fn client_message_ids_come_back_newest_last(store: &dyn Store) {
    store.commit(&[Write::CreateRoom(record("ids"))]).unwrap();
    let mut writes: Vec<Write> = (1..=6).map(|s| event("ids", s)).collect();
    // A join has no client message id.
    if let Write::AppendEvent(row) = &mut writes[2] {
        row.cmid = None;
    }
    store.commit(&writes).unwrap();
    let sent = store.recent_cmids(&room("ids"), 4).unwrap();
    let got: Vec<(u64, &str)> = sent.iter().map(|s| (s.seq.0, s.cmid.as_str())).collect();
    assert_eq!(got, [(4, "c4"), (5, "c5"), (6, "c6")]);
    assert_eq!(sent[0].from.as_str(), "ada");
    assert_eq!(sent[0].ts, Millis(40));
}

fn pages_walk_the_timeline_in_order(store: &dyn Store) {
    store.commit(&[Write::CreateRoom(record("lenses"))]).unwrap();
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
    // Bounds past what SQLite's signed integers hold keep their meaning.
    for huge in [Seq(1 << 63), Seq(u64::MAX)] {
        assert!(store.events_after(&r, huge, 5).unwrap().is_empty(), "after {huge}");
        assert_eq!(seqs(&store.events_before(&r, huge, 2).unwrap()), vec![19, 20], "before {huge}");
    }
}

fn run_suite(make: impl Fn() -> Box<dyn Store>) {
    rooms_members_and_pins_load_back(&*make());
    pins_of_a_message_follow_its_edits_and_its_deletion(&*make());
    an_empty_room_loads_at_its_creation(&*make());
    listings_count_members_and_show_the_callers_role(&*make());
    client_message_ids_come_back_newest_last(&*make());
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
    store.commit(&[Write::CreateRoom(record("cameras"))]).unwrap();
    store.commit(&(1..=10).map(|s| event("cameras", s)).collect::<Vec<_>>()).unwrap();
    assert_eq!(store.oldest(&room("cameras")).unwrap(), Seq(7));
    assert_eq!(seqs(&store.events_after(&room("cameras"), Seq(0), 100).unwrap()), vec![7, 8, 9, 10]);
}

#[test]
fn sqlite_store_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(dir.path()).unwrap();
        store.commit(&[Write::CreateRoom(record("cameras")), event("cameras", 1)]).unwrap();
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(store.load_room(&room("cameras"), 10).unwrap().unwrap().head, Seq(1));
    assert!(store.is_durable());
}

#[test]
fn a_failed_batch_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    // Folding on every commit, so the (room, seq) key sees each batch at once.
    let store = SqliteStore::open_folding_at(dir.path(), 1).unwrap();
    store.commit(&[Write::CreateRoom(record("cameras")), event("cameras", 1)]).unwrap();
    // Seq 1 again violates the primary key: the whole batch, seq 2 included, rolls back.
    assert!(store.commit(&[event("cameras", 2), event("cameras", 1)]).is_err());
    assert_eq!(seqs(&store.events_after(&room("cameras"), Seq(0), 10).unwrap()), vec![1]);
}
