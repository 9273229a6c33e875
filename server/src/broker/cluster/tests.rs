//! What the cluster broker does beyond the common conformance suite: the
//! history stream's age cap, the values the script writes into templates
//! (pins, members), listing across many rooms, channel names, and the
//! refusal of what a node decided on a copy from before a change of the
//! room's rules. Against a real Redis.

use std::sync::Arc;
use std::time::Duration;

use hearth_protocol::event::MessageEvent;
use hearth_protocol::ops::{CreateRoom, LockLevel, Release, RoomSettings, SendMessage, SetRole, Visibility};
use hearth_protocol::{
    ClientMsgId, Emoji, Epoch, Event, Millis, Note, PinId, Position, Role, RoomId, Seq, ShortText, Text, UserId,
};
use hearth_testkit::RedisServer;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::broker::{Published, Receipt};
use crate::clock::{Clock, ManualClock};
use crate::frames::Committed;
use crate::room::{self, RoomState};

struct Nowhere;

impl Delivery for Nowhere {
    fn deliver(&self, _room: &RoomId, _events: &[Committed]) {}
    fn position(&self, _room: &RoomId) -> Option<Position> {
        None
    }
    fn resync(&self, _room: &RoomId, _at: Option<Position>, _now: bool) {}
    fn snapshot(&self, _room: &RoomId) -> Option<RoomLoad> {
        None
    }
}

fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

fn rid(name: &str) -> RoomId {
    RoomId::new(name).unwrap()
}

async fn broker(
    redis: &RedisServer,
    config: impl FnOnce(&mut RedisConfig),
) -> (RedisBroker, ManualClock, CancellationToken) {
    let mut settings = RedisConfig::new(RedisTarget::Single(redis.url()));
    config(&mut settings);
    let clock = ManualClock::new(Millis(1_000_000));
    let stop = CancellationToken::new();
    let broker =
        RedisBroker::connect(settings, Arc::new(clock.clone()), Arc::new(Nowhere), stop.clone()).await.unwrap();
    (broker, clock, stop)
}

async fn create(broker: &RedisBroker, owner: &str, name: &str, visibility: Visibility, now: Millis) {
    let args = CreateRoom { room: rid(name), topic: ShortText::default(), cap: None, visibility };
    let (record, first) = room::decide_create(&user(owner), args, Epoch(9), now).unwrap();
    broker.create_room(record, first, Some(1000)).await.unwrap().durable().await.unwrap();
}

/// `who` joins room `name` (decided on its state as loaded now).
async fn join_as(broker: &RedisBroker, name: &str, who: &str, now: Millis) {
    let join = state(broker, name).await.decide_join(&user(who), None, now).unwrap().unwrap();
    broker.publish(join).await.unwrap().durable().await.unwrap();
}

async fn state(broker: &RedisBroker, name: &str) -> RoomState {
    let load = broker.load_room(rid(name), 0).await.unwrap().unwrap();
    RoomState::restore(load.record, load.members, load.pins, &load.rows, load.head, load.last_ts).unwrap()
}

async fn say(broker: &RedisBroker, name: &str, n: usize) -> Published {
    post(broker, name, format!("message {n}"), format!("c{n}"), None).await
}

/// A reply in the thread under `root`.
async fn reply(broker: &RedisBroker, name: &str, root: Seq, n: usize) -> Published {
    post(broker, name, format!("reply {n}"), format!("r{n}"), Some(root)).await
}

async fn post(broker: &RedisBroker, name: &str, text: String, cmid: String, thread: Option<Seq>) -> Published {
    let msg =
        SendMessage { room: rid(name), text: Text::new(text).unwrap(), cmid: ClientMsgId::new(cmid).unwrap(), thread };
    let draft = state(broker, name).await.decide_send(&user("ada"), msg, None, Millis(0)).unwrap();
    broker.publish(draft).await.unwrap().durable().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_older_than_the_age_cap_leaves_the_stream() {
    let redis = RedisServer::start().await;
    let (broker, clock, _stop) = broker(&redis, |c| c.history_age = Some(Duration::from_secs(3600))).await;
    create(&broker, "ada", "aging", Visibility::Open, clock.now()).await;
    for n in 0..5 {
        say(&broker, "aging", n).await;
    }
    assert_eq!(broker.oldest(rid("aging")).await.unwrap(), Seq(1));
    clock.advance(Duration::from_secs(2 * 3600));
    let fresh = say(&broker, "aging", 5).await;
    assert_eq!(broker.oldest(rid("aging")).await.unwrap(), fresh.seq, "everything older than an hour is gone");
    let held = broker.history_after(rid("aging"), Seq(0), 100).await.unwrap();
    assert_eq!(held.iter().map(|e| e.seq).collect::<Vec<_>>(), [fresh.seq]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotations_of_messages_trimmed_from_history_are_deleted() {
    let redis = RedisServer::start().await;
    let (broker, clock, _stop) = broker(&redis, |c| c.history_age = Some(Duration::from_secs(3600))).await;
    create(&broker, "ada", "trims", Visibility::Open, clock.now()).await;
    let old_roots = [say(&broker, "trims", 0).await.seq, say(&broker, "trims", 1).await.seq];
    for (n, root) in old_roots.iter().enumerate() {
        reply(&broker, "trims", *root, n).await;
    }
    let keys = RoomKeys::new(&RedisConfig::new(RedisTarget::Single(redis.url())).prefix, &rid("trims"));
    let key = |seq: Seq| keys.message(seq);
    for root in old_roots {
        assert_eq!(redis.must(&["EXISTS", &key(root)]).await.trim(), "1", "a thread's replies are noted on its root");
    }

    clock.advance(Duration::from_secs(2 * 3600));
    let fresh = say(&broker, "trims", 2).await;
    assert_eq!(broker.oldest(rid("trims")).await.unwrap(), fresh.seq);
    reply(&broker, "trims", fresh.seq, 2).await;

    for root in old_roots {
        assert_eq!(redis.must(&["EXISTS", &key(root)]).await.trim(), "0", "message {root} left history");
    }
    assert_eq!(redis.must(&["EXISTS", &key(fresh.seq)]).await.trim(), "1");
    assert_eq!(redis.must(&["ZCARD", &keys.annotated]).await.trim(), "1", "only the message history holds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_script_writes_the_real_seq_and_time_into_events_pins_and_members() {
    let redis = RedisServer::start().await;
    let (broker, clock, _stop) = broker(&redis, |_| {}).await;
    create(&broker, "ada", "stamps", Visibility::Open, clock.now()).await;
    clock.advance(Duration::from_secs(5));
    let join = state(&broker, "stamps").await.decide_join(&user("bo"), None, Millis(0)).unwrap().unwrap();
    let joined = broker.publish(join).await.unwrap().durable().await.unwrap();
    let pin = state(&broker, "stamps")
        .await
        .decide_pin(&user("ada"), None, Note::new("Be kind").unwrap(), None, None, 20, Millis(0))
        .unwrap();
    clock.advance(Duration::from_secs(5));
    let pinned = broker.publish(pin).await.unwrap().durable().await.unwrap();

    let load = broker.load_room(rid("stamps"), 10).await.unwrap().unwrap();
    let bo = load.members.iter().find(|m| m.user == user("bo")).unwrap();
    assert_eq!(bo.joined_at, joined.ts);
    assert_eq!(load.pins.len(), 1);
    assert_eq!((load.pins[0].pin, load.pins[0].at), (PinId(pinned.seq.0), pinned.ts));
    // The stored event decodes to the same values, with no sentinel left.
    let stored = load.recent.last().unwrap();
    let event = Committed::from_stored(stored).unwrap().event;
    assert_eq!((event.seq(), event.ts()), (Some(pinned.seq), Some(pinned.ts)));
    let Event::Pin(pin) = event else { panic!("a pin event") };
    assert_eq!((pin.pin.pin, pin.pin.at), (PinId(pinned.seq.0), pinned.ts));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_page_through_many_rooms_and_hide_invite_only_ones_from_outsiders() {
    let redis = RedisServer::start().await;
    let (broker, clock, _stop) = broker(&redis, |_| {}).await;
    for n in 0..30 {
        create(&broker, "ada", &format!("open-{n:02}"), Visibility::Open, clock.now()).await;
    }
    for n in 0..10 {
        create(&broker, "ada", &format!("hidden-{n:02}"), Visibility::InviteOnly, clock.now()).await;
    }
    let page_through = |who: &'static str| {
        let broker = &broker;
        async move {
            let mut names = Vec::new();
            let mut after = None;
            loop {
                let page = broker.list_rooms(user(who), after.clone(), 7).await.unwrap();
                if page.is_empty() {
                    return names;
                }
                after = page.last().map(|l| l.record.room.clone());
                names.extend(page.into_iter().map(|l| l.record.room.to_string()));
            }
        }
    };
    let outsider = page_through("bo").await;
    assert_eq!(outsider, (0..30).map(|n| format!("open-{n:02}")).collect::<Vec<_>>());
    let owner = page_through("ada").await;
    assert_eq!(owner.len(), 40, "the owner sees the invite-only rooms too");
    assert!(owner.windows(2).all(|w| w[0] < w[1]), "by name");
}

#[test]
fn channel_names_carry_their_room_and_probes_are_no_room() {
    let keys = RoomKeys::new("hearth", &rid("cameras"));
    assert_eq!(keys.channel, "hearth:{cameras}:events");
    assert_eq!(room_of_channel("hearth", keys.channel.as_bytes()), Some(rid("cameras")));
    assert_eq!(room_of_channel("other", keys.channel.as_bytes()), None);
    assert_eq!(room_of_channel("hearth", b"hearth:probe:{00ff}"), None);
}

#[test]
fn the_scripts_know_the_seq_sentinel_as_keys_write_it() {
    // Annotation keys carry their event's seq, written as 20 digits; a node
    // writes the sentinel there and order.lua swaps in the real seq.
    let key_mark = crate::room::rows::seq_key("", super::SEQ_SENTINEL);
    assert!(include_str!("order.lua").contains(&format!("local SEQ_KEY_MARK = '{key_mark}'")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_window_of_client_message_ids_is_remembered_in_bounded_space() {
    const WINDOW: usize = 4;
    let redis = RedisServer::start().await;
    let (broker, clock, _stop) = broker(&redis, |c| c.dedupe_window = WINDOW).await;
    create(&broker, "ada", "retries", Visibility::Open, clock.now()).await;
    let keys = RoomKeys::new(&RedisConfig::new(RedisTarget::Single(redis.url())).prefix, &rid("retries"));
    let mut sent = Vec::new();
    for n in 0..5 * WINDOW {
        let first = say(&broker, "retries", n).await;
        assert!(!first.duplicate);
        sent.push(first);
        // Every one of the last WINDOW sends, retried, is answered as it was
        // (whichever generation holds it).
        for (m, earlier) in sent.iter().enumerate().skip((n + 1).saturating_sub(WINDOW)) {
            let again = say(&broker, "retries", m).await;
            assert!(again.duplicate, "send {m} retried after send {n}");
            assert_eq!((again.seq, again.ts), (earlier.seq, earlier.ts));
        }
        let mut held = 0;
        for key in [&keys.cmids, &keys.cmids_odd] {
            held += redis.must(&["HLEN", key]).await.trim().parse::<usize>().unwrap();
        }
        assert!(held <= 2 * WINDOW, "{held} ids held after {} sends", n + 1);
    }
    // Two generations back, an id is forgotten: sent again, it is a new message.
    let forgotten = say(&broker, "retries", 0).await;
    assert!(!forgotten.duplicate);
    assert!(forgotten.seq > sent.last().unwrap().seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_go_on_after_redis_forgets_its_scripts() {
    let redis = RedisServer::start().await;
    let (broker, clock, _stop) = broker(&redis, |_| {}).await;
    create(&broker, "ada", "flushed", Visibility::Open, clock.now()).await;
    let before = say(&broker, "flushed", 0).await;
    redis.must(&["SCRIPT", "FLUSH"]).await;
    // Several at once: one batch, every call of it taught the script again.
    let sends = (1..6).map(|n| say(&broker, "flushed", n));
    let after = futures_util::future::join_all(sends).await;
    let mut seqs: Vec<Seq> = after.iter().map(|p| p.seq).collect();
    seqs.sort();
    assert_eq!(seqs, (1..6).map(|n| Seq(before.seq.0 + n)).collect::<Vec<_>>());
}

#[test]
fn an_event_is_cut_at_its_sentinels_for_the_script_to_join() {
    use hearth_protocol::codec::encode_event;
    use hearth_protocol::event::MessageEvent;
    let mut event = Event::Message(MessageEvent::draft(
        rid("cut"),
        user("ada"),
        Text::new("a message").unwrap(),
        ClientMsgId::new("c-1").unwrap(),
        None,
    ));
    event.stamp(super::SEQ_SENTINEL, super::TS_SENTINEL);
    let template = encode_event(hearth_protocol::Codec::MsgPack, &event);
    let (before_seq, between, after_ts) = super::script::split_template(&template);
    assert!(!between.is_empty(), "cut: {before_seq:?} {between:?} {after_ts:?}");
    // The sentinels as MessagePack writes them, made here independently.
    let encoded = |value: u64| [&[0xcf][..], &value.to_be_bytes()].concat();
    let (seq, ts) = (encoded(super::SEQ_SENTINEL.0), encoded(super::TS_SENTINEL.0));
    // What the script does with the real values, done here with the sentinels.
    assert_eq!([before_seq, &seq, between, &ts, after_ts].concat(), template);
    // Anything else stays whole, for the script to fill by searching.
    let plain = b"no sentinel here";
    assert_eq!(super::script::split_template(plain), (&plain[..], &plain[..0], &plain[..0]));
    let swapped = [&b"a"[..], &ts, b"b", &seq, b"c"].concat();
    assert_eq!(super::script::split_template(&swapped).1, b"", "the time before the seq stays whole");
}

/// Edits and reactions are decided on a node's copy against the same rules as
/// a post (a read-only lockdown, who moderates), so the order refuses one
/// decided on a copy from before a change of them; the node decides again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_decided_before_a_lockdown_or_a_demotion_is_decided_again() {
    let redis = RedisServer::start().await;
    let (broker, clock, stop) = broker(&redis, |_| {}).await;
    create(&broker, "ada", "locked", Visibility::Open, clock.now()).await;
    join_as(&broker, "locked", "bo", clock.now()).await;
    let said = say(&broker, "locked", 1).await;
    let promote = |role| SetRole { room: rid("locked"), user: user("bo"), role, expires_at: None, title: None };
    let draft =
        state(&broker, "locked").await.decide_set_role(&user("ada"), promote(Role::Moderator), clock.now()).unwrap();
    broker.publish(draft).await.unwrap().durable().await.unwrap();
    let target = MessageEvent {
        seq: said.seq,
        ts: said.ts,
        ..MessageEvent::draft(
            rid("locked"),
            user("ada"),
            Text::new("message 1").unwrap(),
            ClientMsgId::new("c1").unwrap(),
            None,
        )
    };
    let thumbs = || Emoji::new("+1").unwrap();
    let rejected = |result: Result<Receipt, BrokerError>| {
        matches!(result, Err(BrokerError::Rejected { why: room::Refusal::RulesChanged, .. }))
    };

    // A reaction decided before the room was locked read-only.
    let before = state(&broker, "locked").await;
    let reaction = before.decide_react(&user("bo"), &target, &Default::default(), thumbs(), true, clock.now()).unwrap();
    let lock = before.decide_lockdown(&user("ada"), LockLevel::ReadOnly, None, clock.now()).unwrap();
    broker.publish(lock).await.unwrap().durable().await.unwrap();
    assert!(rejected(broker.publish(reaction).await), "a reaction decided before the lockdown");

    // bo still moderates: a post in the read-only room, decided before bo's demotion.
    let moderating = state(&broker, "locked").await;
    let post = SendMessage {
        room: rid("locked"),
        text: Text::new("still moderating?").unwrap(),
        cmid: ClientMsgId::new("b1").unwrap(),
        thread: None,
    };
    let post = moderating.decide_send(&user("bo"), post, None, clock.now()).unwrap();
    let demote = moderating.decide_set_role(&user("ada"), promote(Role::Member), clock.now()).unwrap();
    broker.publish(demote).await.unwrap().durable().await.unwrap();
    assert!(rejected(broker.publish(post).await), "a post decided before the demotion");

    // The lockdown lifted.
    let open = state(&broker, "locked").await;
    let lift = open.decide_lockdown(&user("ada"), LockLevel::Off, None, clock.now()).unwrap();
    broker.publish(lift).await.unwrap().durable().await.unwrap();

    // A held post (a newcomer's link, on probation) released by bo, decided
    // before bo's demotion: a role moves the rules, and the order also
    // checks the releasing moderator's role itself (a draft without a copy's
    // head, as a node from before every draft carried one sends it).
    let probation = RoomSettings { probation_secs: Some(86_400), ..RoomSettings::default() };
    let draft = state(&broker, "locked").await.decide_set_room(&user("ada"), probation, clock.now()).unwrap();
    broker.publish(draft).await.unwrap().durable().await.unwrap();
    join_as(&broker, "locked", "dee", clock.now()).await;
    let link = SendMessage {
        room: rid("locked"),
        text: Text::new("my roll: https://example.org/roll").unwrap(),
        cmid: ClientMsgId::new("d1").unwrap(),
        thread: None,
    };
    let held = state(&broker, "locked").await.decide_send(&user("dee"), link, None, clock.now()).unwrap();
    broker.publish(held).await.unwrap().durable().await.unwrap();
    let draft =
        state(&broker, "locked").await.decide_set_role(&user("ada"), promote(Role::Moderator), clock.now()).unwrap();
    broker.publish(draft).await.unwrap().durable().await.unwrap();
    let moderating = state(&broker, "locked").await;
    let release = Release {
        room: rid("locked"),
        user: user("dee"),
        cmid: ClientMsgId::new("d1").unwrap(),
        approve: true,
        reason: ShortText::default(),
    };
    let release = moderating.decide_release(&user("bo"), release, clock.now()).unwrap();
    let demote = moderating.decide_set_role(&user("ada"), promote(Role::Member), clock.now()).unwrap();
    broker.publish(demote).await.unwrap().durable().await.unwrap();
    let headless = Draft { decided_at: None, ..release.clone() };
    assert!(rejected(broker.publish(release).await), "a release decided before the demotion");
    let refused = broker.publish(headless).await;
    assert!(
        matches!(refused, Err(BrokerError::Rejected { why: room::Refusal::Forbidden { .. }, .. })),
        "a release by a moderator demoted meanwhile: {refused:?}"
    );

    // A join by invite decided before the doors were locked.
    let open = state(&broker, "locked").await;
    let invite =
        open.decide_create_invite(&user("ada"), room::rows::invite_id("c0de"), None, None, clock.now()).unwrap();
    broker.publish(invite).await.unwrap().durable().await.unwrap();
    let invited = state(&broker, "locked").await;
    let join = invited.decide_join_invited(&user("cy"), "c0de", clock.now()).unwrap().unwrap();
    let lock = invited.decide_lockdown(&user("ada"), LockLevel::Joins, None, clock.now()).unwrap();
    broker.publish(lock).await.unwrap().durable().await.unwrap();
    assert!(rejected(broker.publish(join).await), "a join by invite decided before the lockdown");

    // A request to join decided before the doors were locked.
    create(&broker, "ada", "vetted", Visibility::Approval, clock.now()).await;
    let vetted = state(&broker, "vetted").await;
    let ask = vetted.decide_request_join(&user("cy"), Note::new("hello").unwrap(), clock.now()).unwrap();
    let lock = vetted.decide_lockdown(&user("ada"), LockLevel::Joins, None, clock.now()).unwrap();
    broker.publish(lock).await.unwrap().durable().await.unwrap();
    assert!(rejected(broker.publish(ask).await), "a request to join decided before the lockdown");
    stop.cancel();
}

/// A warning's escalation counts the member's warnings on the node's copy:
/// two warnings decided on one copy (two moderators at once, through two
/// nodes) would each count one, and the second would not escalate. The
/// order refuses the second, and decided again it escalates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_warnings_decided_on_one_copy_are_counted_in_turn() {
    let redis = RedisServer::start().await;
    let (broker, clock, stop) = broker(&redis, |_| {}).await;
    create(&broker, "ada", "warned", Visibility::Open, clock.now()).await;
    join_as(&broker, "warned", "bo", clock.now()).await;
    let two = RoomSettings {
        warn_limit: Some(2),
        warn_action: Some(hearth_protocol::ops::ModAction::Mute),
        ..RoomSettings::default()
    };
    let draft = state(&broker, "warned").await.decide_set_room(&user("ada"), two, clock.now()).unwrap();
    broker.publish(draft).await.unwrap().durable().await.unwrap();
    let copy = state(&broker, "warned").await;
    let warn = |copy: &RoomState, why: &str| {
        copy.decide_warn(&user("ada"), &user("bo"), ShortText::new(why).unwrap(), clock.now()).unwrap()
    };
    let (first, second) = (warn(&copy, "one"), warn(&copy, "two"));
    broker.publish(first).await.unwrap().durable().await.unwrap();
    let refused = broker.publish(second).await;
    assert!(
        matches!(refused, Err(BrokerError::Rejected { why: room::Refusal::RulesChanged, .. })),
        "a warning counted on a copy from before the first: {refused:?}"
    );
    let again = warn(&state(&broker, "warned").await, "two");
    let Event::Moderation(escalated) = &again.event else { panic!("a warning is a moderation event") };
    assert!(escalated.escalation.is_some(), "the second live warning brings the mute");
    broker.publish(again).await.unwrap().durable().await.unwrap();
    assert!(state(&broker, "warned").await.rows.mutes.contains_key(&user("bo")));
    stop.cancel();
}
