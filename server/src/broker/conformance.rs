//! One suite, run against every `Broker`: what rooms and sessions may rely on.
//! The local broker runs it over the memory store and over SQLite; the cluster
//! broker over a real standalone Redis and a real three-master Redis Cluster.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth_protocol::ops::{CreateRoom, SendMessage, Visibility};
use hearth_protocol::{ClientMsgId, Epoch, Event, Millis, Note, Role, RoomId, Seq, ShortText, Text, UserId};
use tokio_util::sync::CancellationToken;

use super::cluster::{RedisBroker, RedisConfig, RedisTarget};
use super::local::LocalBroker;
use super::*;
use crate::clock::{Clock, ManualClock};
use crate::journal::CommitHold;
use crate::room::{self, RoomState};
use crate::store::Store;
use crate::store::memory::MemoryStore;
use crate::store::sqlite::SqliteStore;

/// Bound on every wait in this suite.
const WAIT: Duration = Duration::from_secs(10);

/// Records what reaches the delivery path.
#[derive(Default)]
struct Recorder {
    delivered: Mutex<Vec<(RoomId, Seq)>>,
}

impl Delivery for Recorder {
    fn deliver(&self, room: &RoomId, events: &[Committed]) {
        let mut delivered = self.delivered.lock().unwrap();
        delivered.extend(events.iter().map(|e| (room.clone(), e.seq())));
    }

    fn position(&self, _room: &RoomId) -> Option<hearth_protocol::Position> {
        None
    }

    fn resync(&self, _room: &RoomId, _at: Option<hearth_protocol::Position>, _now: bool) {}

    fn snapshot(&self, _room: &RoomId) -> Option<crate::store::RoomLoad> {
        None
    }
}

impl Recorder {
    fn seqs(&self, room: &RoomId) -> Vec<u64> {
        self.delivered.lock().unwrap().iter().filter(|(r, _)| r == room).map(|(_, s)| s.0).collect()
    }

    /// Waits (bounded) until the room's deliveries are `want`.
    async fn wait_for(&self, room: &RoomId, want: &[u64]) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.seqs(room) != want {
            assert!(tokio::time::Instant::now() < deadline, "delivered {:?}, want {want:?}", self.seqs(room));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// A broker under test, with what the suite drives it by.
struct Subject {
    broker: Arc<dyn Broker>,
    delivered: Arc<Recorder>,
    clock: ManualClock,
    /// Holds commits, for brokers whose durability takes a while (`None`: durable
    /// at once).
    hold: Option<CommitHold>,
    _dir: Option<tempfile::TempDir>,
    /// Stops the broker's background tasks when the case ends.
    _stop: tokio_util::sync::DropGuard,
}

fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

fn rid(name: &str) -> RoomId {
    RoomId::new(name).unwrap()
}

async fn create(subject: &Subject, name: &str, cap: u32) -> Receipt {
    // As the registry does: a node receives a room's events once it has it in memory.
    subject.broker.subscribe(rid(name)).await.unwrap();
    let args =
        CreateRoom { room: rid(name), topic: ShortText::default(), cap: Some(cap), visibility: Visibility::Open };
    let (record, first) = room::decide_create(&user("ada"), args, Epoch(77), subject.clock.now()).unwrap();
    subject.broker.create_room(record, first, Some(1000)).await.unwrap()
}

/// The room's state as the broker keeps it durably.
async fn state(subject: &Subject, name: &str) -> RoomState {
    let load = subject.broker.load_room(rid(name), 0).await.unwrap().expect("room exists");
    RoomState::restore(load.record, load.members, load.pins, &load.rows, load.head, load.last_ts).unwrap()
}

fn send(state: &RoomState, from: &str, cmid: &str) -> Draft {
    let msg = SendMessage {
        room: state.record.room.clone(),
        text: Text::new(format!("hi from {from}")).unwrap(),
        cmid: ClientMsgId::new(cmid).unwrap(),
        thread: None,
    };
    state.decide_send(&user(from), msg, None, Millis(0)).unwrap()
}

async fn durable(receipt: Receipt) -> Published {
    tokio::time::timeout(WAIT, receipt.durable()).await.expect("durable in time").unwrap()
}

async fn join(subject: &Subject, name: &str, who: &str) -> Published {
    let state = state(subject, name).await;
    let draft = state.decide_join(&user(who), None, Millis(0)).unwrap().expect("not a member yet");
    durable(subject.broker.publish(draft).await.unwrap()).await
}

async fn events_order_gap_free_and_reach_delivery_once(subject: Subject) {
    let first = durable(create(&subject, "order", 100).await).await;
    assert_eq!((first.epoch, first.seq, first.duplicate), (Epoch(77), Seq(1), false));
    join(&subject, "order", "bo").await;
    let state = state(&subject, "order").await;
    let mut receipts = Vec::new();
    for n in 0..20 {
        receipts.push(subject.broker.publish(send(&state, "bo", &format!("c{n}"))).await.unwrap());
    }
    let seqs: Vec<u64> = receipts.iter().map(|r| r.published.seq.0).collect();
    assert_eq!(seqs, (3..23).collect::<Vec<_>>(), "ordered in publish order, no gap");
    for receipt in receipts {
        durable(receipt).await;
    }
    subject.delivered.wait_for(&rid("order"), &(1..23).collect::<Vec<_>>()).await;
    let load = subject.broker.load_room(rid("order"), 5).await.unwrap().unwrap();
    assert_eq!(load.head, Seq(22));
    assert_eq!(load.recent.iter().map(|e| e.seq.0).collect::<Vec<_>>(), [18, 19, 20, 21, 22]);
    assert_eq!(load.members.len(), 2);
}

async fn timestamps_come_from_the_clock_and_never_go_back(subject: Subject) {
    subject.clock.set(Millis(5_000));
    durable(create(&subject, "time", 100).await).await;
    let state = state(&subject, "time").await;
    let at = durable(subject.broker.publish(send(&state, "ada", "t1")).await.unwrap()).await;
    assert_eq!(at.ts, Millis(5_000));
    subject.clock.set(Millis(4_000)); // the system clock stepped back
    let back = durable(subject.broker.publish(send(&state, "ada", "t2")).await.unwrap()).await;
    assert_eq!(back.ts, Millis(5_000));
    subject.clock.advance(Duration::from_secs(2));
    let later = durable(subject.broker.publish(send(&state, "ada", "t3")).await.unwrap()).await;
    assert_eq!(later.ts, Millis(6_000));
}

async fn rooms_exist_once(subject: Subject) {
    durable(create(&subject, "once", 100).await).await;
    let args = CreateRoom { room: rid("once"), topic: ShortText::default(), cap: None, visibility: Visibility::Open };
    let (record, first) = room::decide_create(&user("bo"), args, Epoch(1), Millis(1)).unwrap();
    assert!(matches!(subject.broker.create_room(record, first, Some(1000)).await, Err(BrokerError::AlreadyExists(_))));
    let mut draft = send(&state(&subject, "once").await, "ada", "x");
    if let Event::Message(m) = &mut draft.event {
        m.room = rid("nowhere");
    }
    assert!(matches!(subject.broker.publish(draft).await, Err(BrokerError::NoSuchRoom(_))));
    assert!(subject.broker.load_room(rid("nowhere"), 1).await.unwrap().is_none());
    let list = subject.broker.list_rooms(user("ada"), None, 100).await.unwrap();
    assert_eq!(
        list.iter().map(|l| (l.record.room.as_str(), l.role)).collect::<Vec<_>>(),
        [("once", Some(Role::Owner))]
    );
}

async fn a_repeated_client_message_id_is_ordered_once(subject: Subject) {
    durable(create(&subject, "dedupe", 100).await).await;
    join(&subject, "dedupe", "bo").await;
    let state = state(&subject, "dedupe").await;
    let original = durable(subject.broker.publish(send(&state, "bo", "same")).await.unwrap()).await;
    let retry = durable(subject.broker.publish(send(&state, "bo", "same")).await.unwrap()).await;
    assert_eq!((retry.seq, retry.ts, retry.duplicate), (original.seq, original.ts, true));
    // The id is the sender's: someone else's message with it is a new one.
    let other = durable(subject.broker.publish(send(&state, "ada", "same")).await.unwrap()).await;
    assert_eq!((other.seq, other.duplicate), (original.seq.next(), false));
    subject.delivered.wait_for(&rid("dedupe"), &[1, 2, 3, 4]).await;
    // Still known after the room leaves the broker's memory and comes back.
    subject.broker.unsubscribe(rid("dedupe")).await.unwrap();
    let again = durable(subject.broker.publish(send(&state, "bo", "same")).await.unwrap()).await;
    assert_eq!((again.seq, again.duplicate), (original.seq, true));
    let next = durable(subject.broker.publish(send(&state, "bo", "new")).await.unwrap()).await;
    assert_eq!(next.seq, Seq(5), "the order continues where it was");
}

async fn a_retry_while_the_original_is_in_flight_gets_the_original(subject: Subject) {
    let Some(hold) = subject.hold.clone() else { return };
    durable(create(&subject, "pending", 100).await).await;
    let state = state(&subject, "pending").await;
    hold.hold();
    let original = subject.broker.publish(send(&state, "ada", "p1")).await.unwrap();
    let retry = subject.broker.publish(send(&state, "ada", "p1")).await.unwrap();
    assert_eq!(retry.published.seq, original.published.seq);
    assert!(retry.published.duplicate);
    let waiting = tokio::spawn(retry.durable());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "a retry is answered only when the original is durable");
    assert!(subject.delivered.seqs(&rid("pending")).len() == 1, "nothing delivered before it is durable");
    hold.release();
    let retried = tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap().unwrap();
    assert_eq!(retried.seq, durable(original).await.seq);
    subject.delivered.wait_for(&rid("pending"), &[1, 2]).await;
}

async fn preconditions_are_checked_in_the_order(subject: Subject) {
    durable(create(&subject, "gate", 2).await).await;
    let stale = state(&subject, "gate").await;
    // Decided against a state where bo was not a member yet: refused once bo is.
    let bo_twice = stale.decide_join(&user("bo"), None, Millis(0)).unwrap().unwrap();
    join(&subject, "gate", "bo").await;
    let refused = subject.broker.publish(bo_twice).await.unwrap_err();
    assert!(matches!(refused, BrokerError::Rejected { why: Refusal::AlreadyMember, .. }), "{refused:?}");
    // The cap: cy was decided in while a place was free.
    let cy = stale.decide_join(&user("cy"), None, Millis(0)).unwrap().unwrap();
    let refused = subject.broker.publish(cy).await.unwrap_err();
    assert!(matches!(refused, BrokerError::Rejected { why: Refusal::RoomFull { cap: 2 }, .. }), "{refused:?}");
    // A send decided while bo was a member, ordered after bo's leave.
    let member = state(&subject, "gate").await;
    let late_send = send(&member, "bo", "late");
    durable(subject.broker.publish(member.decide_leave(&user("bo")).unwrap()).await.unwrap()).await;
    let refused = subject.broker.publish(late_send).await.unwrap_err();
    assert!(matches!(refused, BrokerError::Rejected { why: Refusal::NotMember, .. }), "{refused:?}");
    // Refusals take no seq.
    assert_eq!(state(&subject, "gate").await.head, Seq(3));
}

/// Refused as `expected` says, or — by a cluster's order — as decided on a
/// copy from before the room's rules last changed (a pin and a role among
/// them), which the node then decides again on its caught-up copy.
fn refused_or_stale(refused: &BrokerError, expected: impl Fn(&Refusal) -> bool) -> bool {
    matches!(refused, BrokerError::Rejected { why, .. } if *why == Refusal::RulesChanged || expected(why))
}

async fn the_pin_limit_holds_in_the_order(subject: Subject) {
    durable(create(&subject, "pinned", 100).await).await;
    let stale = state(&subject, "pinned").await;
    let note = |t: &str| Note::new(t).unwrap();
    // Decided against the same state, one place left: only one is ordered.
    let first = stale.decide_pin(&user("ada"), None, note("Mission"), None, None, 1, Millis(0)).unwrap();
    let second = stale.decide_pin(&user("ada"), None, note("Rules"), None, None, 1, Millis(0)).unwrap();
    durable(subject.broker.publish(first).await.unwrap()).await;
    let refused = subject.broker.publish(second.clone()).await.unwrap_err();
    assert!(refused_or_stale(&refused, |why| matches!(why, Refusal::PinsFull { max: 1 })), "{refused:?}");
    // The order's own count, for a draft without a copy's head (a cluster's
    // order refuses one with a head from before the first pin as a whole).
    let refused = subject.broker.publish(Draft { decided_at: None, ..second }).await.unwrap_err();
    assert!(matches!(refused, BrokerError::Rejected { why: Refusal::PinsFull { max: 1 }, .. }), "{refused:?}");
    // Still full after the room leaves the broker's memory and comes back.
    subject.broker.unsubscribe(rid("pinned")).await.unwrap();
    let third = stale.decide_pin(&user("ada"), None, note("FAQ"), None, None, 1, Millis(0)).unwrap();
    let refused = subject.broker.publish(Draft { decided_at: None, ..third }).await.unwrap_err();
    assert!(matches!(refused, BrokerError::Rejected { why: Refusal::PinsFull { .. }, .. }), "{refused:?}");
}

async fn moderation_holds_in_the_order_and_is_logged(subject: Subject) {
    durable(create(&subject, "modded", 100).await).await;
    join(&subject, "modded", "bo").await;
    join(&subject, "modded", "cy").await;
    let now = subject.clock.now();
    let stale = state(&subject, "modded").await;
    let reason = |t: &str| ShortText::new(t).unwrap();
    // Decided before the ban: bo's rejoin after a kick, and a post of cy's.
    let ban = stale.decide_ban(&user("ada"), &user("bo"), reason("spam"), Some(60), now).unwrap();
    durable(subject.broker.publish(ban).await.unwrap()).await;
    let banned = state(&subject, "modded").await;
    assert!(!banned.members.contains_key(&user("bo")), "a ban removes the member");
    assert!(banned.rows.bans.contains_key(&user("bo")));
    let rejoin = stale.decide_join(&user("bo"), None, now).unwrap();
    assert!(rejoin.is_none(), "the stale copy still has bo");
    let rejoin = room::RoomState { members: Default::default(), ..stale.clone() }
        .decide_join(&user("bo"), None, now)
        .unwrap()
        .unwrap();
    let refused = subject.broker.publish(rejoin.clone()).await.unwrap_err();
    assert!(matches!(refused, BrokerError::Rejected { why: Refusal::Banned(_), .. }), "{refused:?}");
    // The ban ends by itself: the same join is ordered a minute later.
    subject.clock.advance(Duration::from_secs(61));
    durable(subject.broker.publish(rejoin).await.unwrap()).await;
    // A mute decided after, a post decided before: the post is refused.
    let post = send(&stale, "cy", "shouting");
    let mute =
        state(&subject, "modded").await.decide_mute(&user("ada"), &user("cy"), 30, reason(""), subject.clock.now());
    durable(subject.broker.publish(mute.unwrap()).await.unwrap()).await;
    let refused = subject.broker.publish(post).await.unwrap_err();
    assert!(matches!(refused, BrokerError::Rejected { why: Refusal::Muted(_), .. }), "{refused:?}");
    // Slow mode in the order: two posts decided on one copy, only one ordered.
    let copy = state(&subject, "modded").await;
    let slow = |text: &str| {
        let mut draft = send(&copy, "bo", text);
        draft.requires = room::Requires::Post { user: user("bo"), slow_ms: 10_000 };
        draft
    };
    durable(subject.broker.publish(slow("first")).await.unwrap()).await;
    let refused = subject.broker.publish(slow("second")).await.unwrap_err();
    assert!(matches!(refused, BrokerError::Rejected { why: Refusal::SlowMode { .. }, .. }), "{refused:?}");
    // A moderator cannot act on the owner, even decided on a copy that allowed it.
    let promote = copy
        .decide_set_role(
            &user("ada"),
            hearth_protocol::ops::SetRole {
                room: rid("modded"),
                user: user("bo"),
                role: Role::Moderator,
                expires_at: None,
                title: None,
            },
            subject.clock.now(),
        )
        .unwrap();
    durable(subject.broker.publish(promote).await.unwrap()).await;
    let demote_cy =
        state(&subject, "modded").await.decide_kick(&user("bo"), &user("cy"), reason(""), subject.clock.now()).unwrap();
    let cy_up = state(&subject, "modded")
        .await
        .decide_set_role(
            &user("ada"),
            hearth_protocol::ops::SetRole {
                room: rid("modded"),
                user: user("cy"),
                role: Role::Moderator,
                expires_at: None,
                title: None,
            },
            subject.clock.now(),
        )
        .unwrap();
    durable(subject.broker.publish(cy_up).await.unwrap()).await;
    let refused = subject.broker.publish(demote_cy.clone()).await.unwrap_err();
    assert!(refused_or_stale(&refused, |why| matches!(why, Refusal::Outranked { .. })), "{refused:?}");
    // The order's own ranks, for a draft without a copy's head.
    let refused = subject.broker.publish(Draft { decided_at: None, ..demote_cy }).await.unwrap_err();
    assert!(matches!(refused, BrokerError::Rejected { why: Refusal::Outranked { .. }, .. }), "{refused:?}");
    // Every action is in the log, newest first, with who and why.
    let log = subject.broker.annex_before(rid("modded"), room::AnnexTable::ModLog, Seq::MAX, 10).await.unwrap();
    let entries: Vec<hearth_protocol::ops::ModEntry> =
        log.iter().map(|row| room::rows::decode(&row.value).unwrap()).collect();
    let actions: Vec<_> = entries.iter().map(|e| e.action).collect();
    use hearth_protocol::ops::ModAction;
    assert_eq!(actions, [ModAction::SetRole, ModAction::SetRole, ModAction::Mute, ModAction::Ban]);
    assert_eq!(entries[3].reason.as_str(), "spam");
    assert_eq!(entries[3].entry, log[3].target.0, "an entry's id is its event's seq");
    assert!(entries.iter().all(|e| e.at.0 >= 1_000), "times are the events' own");
    let older = subject.broker.annex_before(rid("modded"), room::AnnexTable::ModLog, log[1].target, 10).await.unwrap();
    assert_eq!(older.len(), 2);
    // The rows survive the room leaving the broker's memory.
    subject.broker.unsubscribe(rid("modded")).await.unwrap();
    let loaded = state(&subject, "modded").await;
    assert!(loaded.rows.bans.contains_key(&user("bo")) && loaded.rows.mutes.contains_key(&user("cy")));
}

async fn requests_and_invites_hold_in_the_order(subject: Subject) {
    durable(create(&subject, "vetted", 100).await).await;
    let now = subject.clock.now();
    let settings = hearth_protocol::ops::RoomSettings {
        visibility: Some(Visibility::Approval),
        ..hearth_protocol::ops::RoomSettings::default()
    };
    let approval = state(&subject, "vetted").await.decide_set_room(&user("ada"), settings, now).unwrap();
    durable(subject.broker.publish(approval).await.unwrap()).await;
    let asking = state(&subject, "vetted").await;
    let ask = asking.decide_request_join(&user("bo"), Note::new("hi").unwrap(), now).unwrap();
    // Approved on a copy that has the request; ordered twice: the second finds none.
    durable(subject.broker.publish(ask).await.unwrap()).await;
    let pending = state(&subject, "vetted").await;
    assert!(pending.rows.requests.contains_key(&user("bo")));
    let approve = |s: &RoomState| {
        let args = hearth_protocol::ops::DecideJoin {
            room: rid("vetted"),
            user: user("bo"),
            approve: true,
            reason: ShortText::default(),
        };
        s.decide_on_request(&user("ada"), args, now).unwrap()
    };
    let (first, second) = (approve(&pending), approve(&pending));
    durable(subject.broker.publish(first).await.unwrap()).await;
    let refused = subject.broker.publish(second).await.unwrap_err();
    assert!(matches!(refused, BrokerError::Rejected { why: Refusal::NoRequest { .. }, .. }), "{refused:?}");
    let joined = state(&subject, "vetted").await;
    assert!(joined.members.contains_key(&user("bo")) && joined.rows.requests.is_empty());
    // A one-use invite, used by two joins decided on one copy: one gets in.
    let invite = joined.decide_create_invite(&user("ada"), room::rows::invite_id("c0de"), None, Some(1), now).unwrap();
    durable(subject.broker.publish(invite).await.unwrap()).await;
    let invited = state(&subject, "vetted").await;
    let cy = invited.decide_join_invited(&user("cy"), "c0de", now).unwrap().unwrap();
    let di = invited.decide_join_invited(&user("di"), "c0de", now).unwrap().unwrap();
    durable(subject.broker.publish(cy).await.unwrap()).await;
    let refused = subject.broker.publish(di).await.unwrap_err();
    assert!(matches!(refused, BrokerError::Rejected { why: Refusal::InvalidInvite, .. }), "{refused:?}");
    let used = state(&subject, "vetted").await;
    assert_eq!(used.rows.invites.values().map(|i| i.uses).collect::<Vec<_>>(), [1]);
    // The pending count bounds new requests only.
    let many = used.clone();
    for n in 0..room::vetting::MAX_REQUESTS {
        let ask = many.decide_request_join(&user(&format!("u{n}")), Note::new("").unwrap(), now).unwrap();
        durable(subject.broker.publish(ask).await.unwrap()).await;
    }
    let one_more = many.decide_request_join(&user("late"), Note::new("").unwrap(), now).unwrap();
    let refused = subject.broker.publish(one_more).await.unwrap_err();
    assert!(matches!(refused, BrokerError::Rejected { why: Refusal::RequestsFull { .. }, .. }), "{refused:?}");
    let again = many.decide_request_join(&user("u0"), Note::new("again").unwrap(), now).unwrap();
    durable(subject.broker.publish(again).await.unwrap()).await;
}

async fn history_shows_only_durable_events(subject: Subject) {
    durable(create(&subject, "history", 100).await).await;
    let state = state(&subject, "history").await;
    for n in 0..9 {
        durable(subject.broker.publish(send(&state, "ada", &format!("h{n}"))).await.unwrap()).await;
    }
    let seqs = |events: Vec<StoredEvent>| events.iter().map(|e| e.seq.0).collect::<Vec<_>>();
    let b = &subject.broker;
    assert_eq!(seqs(b.history_after(rid("history"), Seq(0), 3).await.unwrap()), [1, 2, 3]);
    assert_eq!(seqs(b.history_after(rid("history"), Seq(8), 5).await.unwrap()), [9, 10]);
    assert_eq!(seqs(b.history_before(rid("history"), Seq::MAX, 2).await.unwrap()), [9, 10]);
    assert_eq!(seqs(b.history_before(rid("history"), Seq(3), 5).await.unwrap()), [1, 2]);
    assert_eq!(b.oldest(rid("history")).await.unwrap(), Seq(1));
    let Some(hold) = subject.hold.clone() else { return };
    hold.hold();
    let pending = b.publish(send(&state, "ada", "pending")).await.unwrap();
    assert_eq!(seqs(b.history_after(rid("history"), Seq(9), 5).await.unwrap()), [10]);
    assert_eq!(seqs(b.history_before(rid("history"), Seq::MAX, 1).await.unwrap()), [10]);
    hold.release();
    durable(pending).await;
    assert_eq!(seqs(b.history_after(rid("history"), Seq(9), 5).await.unwrap()), [10, 11]);
}

/// Runs every case, each on a fresh broker from `make`.
async fn run_suite<F: Future<Output = Subject>>(make: impl Fn() -> F) {
    events_order_gap_free_and_reach_delivery_once(make().await).await;
    timestamps_come_from_the_clock_and_never_go_back(make().await).await;
    rooms_exist_once(make().await).await;
    a_repeated_client_message_id_is_ordered_once(make().await).await;
    a_retry_while_the_original_is_in_flight_gets_the_original(make().await).await;
    preconditions_are_checked_in_the_order(make().await).await;
    the_pin_limit_holds_in_the_order(make().await).await;
    history_shows_only_durable_events(make().await).await;
    moderation_holds_in_the_order_and_is_logged(make().await).await;
    requests_and_invites_hold_in_the_order(make().await).await;
}

async fn local(store: Arc<dyn Store>, dir: Option<tempfile::TempDir>) -> Subject {
    let delivered = Arc::new(Recorder::default());
    let clock = ManualClock::new(Millis(1_000));
    let hold = CommitHold::default();
    let durable = store.is_durable();
    let broker = LocalBroker::start(
        store,
        Arc::new(clock.clone()),
        delivered.clone(),
        Arc::new(crate::hub::Hub::default()),
        4096,
        Duration::from_secs(3600),
        hold.clone(),
        CancellationToken::new(),
    );
    let stop = CancellationToken::new();
    Subject {
        broker: Arc::new(broker),
        delivered,
        clock,
        hold: durable.then_some(hold),
        _dir: dir,
        _stop: stop.drop_guard(),
    }
}

/// A cluster broker on `target`, under a key prefix no other case uses.
async fn cluster(target: RedisTarget) -> Subject {
    static CASE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let case = CASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut config = RedisConfig::new(target);
    config.prefix = format!("conformance{}-{case}", std::process::id());
    let delivered = Arc::new(Recorder::default());
    let clock = ManualClock::new(Millis(1_000));
    let stop = CancellationToken::new();
    let broker = RedisBroker::connect(config, Arc::new(clock.clone()), delivered.clone(), stop.clone())
        .await
        .expect("connect to the test Redis");
    Subject { broker: Arc::new(broker), delivered, clock, hold: None, _dir: None, _stop: stop.drop_guard() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_broker_on_the_memory_store_conforms() {
    run_suite(|| local(Arc::new(MemoryStore::new(1000)), None)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_broker_on_redis_conforms() {
    let redis = hearth_testkit::RedisServer::start().await;
    run_suite(|| cluster(RedisTarget::Single(redis.url()))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_broker_on_a_redis_cluster_conforms() {
    let redis = hearth_testkit::RedisCluster::start().await;
    run_suite(|| cluster(RedisTarget::Cluster(redis.urls()))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_broker_on_sqlite_conforms() {
    run_suite(|| async {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        local(Arc::new(store), Some(dir)).await
    })
    .await;
}
