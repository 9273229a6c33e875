//! The room's rules without sockets, stores or clocks: decisions against a state,
//! and the state that applying events gives.

use hearth_protocol::ops::{CreateRoom, RoomSettings, SendMessage, Visibility};
use hearth_protocol::{ClientMsgId, Epoch, Event, Millis, Note, PinId, Position, Role, Seq, Text};
use proptest::prelude::*;

use super::*;

fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

fn room_id() -> RoomId {
    RoomId::new("cameras").unwrap()
}

/// Orders drafts the way a broker does: checks the gate, stamps, applies.
struct Order {
    genesis: RoomRecord,
    state: RoomState,
    gate: Gate,
    events: Vec<Event>,
    now: Millis,
}

impl Order {
    fn new(cap: u32) -> Order {
        let args =
            CreateRoom { room: room_id(), topic: ShortText::default(), cap: Some(cap), visibility: Visibility::Open };
        let (record, first) = decide_create(&user("ada"), args, Epoch(7), Millis(1_000)).unwrap();
        let mut order = Order {
            gate: Gate::new(record.cap, []),
            genesis: record.clone(),
            state: RoomState::genesis(record),
            events: Vec::new(),
            now: Millis(1_000),
        };
        order.publish(first).unwrap();
        order
    }

    fn publish(&mut self, draft: Draft) -> Result<Seq, Refusal> {
        self.gate.check(&draft.requires, self.now)?;
        let seq = Seq(self.events.len() as u64 + 1);
        self.now = Millis(self.now.0 + 10);
        let mut event = draft.event;
        event.stamp(seq, self.now);
        self.gate.apply(&changes(&event));
        self.state.apply(&event).unwrap();
        self.events.push(event);
        Ok(seq)
    }

    fn join(&mut self, name: &str) -> Seq {
        let draft = self.state.decide_join(&user(name), None, Millis(0)).unwrap().expect("not a member yet");
        self.publish(draft).unwrap()
    }

    fn send(&self, name: &str, text: &str) -> Result<Draft, Refusal> {
        self.state.decide_send(&user(name), message(text, None), Millis(0))
    }
}

fn message(text: &str, thread: Option<Seq>) -> SendMessage {
    SendMessage {
        room: room_id(),
        text: Text::new(text).unwrap(),
        cmid: ClientMsgId::new(format!("c-{text}")).unwrap(),
        thread,
    }
}

#[test]
fn the_creator_is_the_owner_and_first_member() {
    let order = Order::new(100);
    assert_eq!(order.state.head, Seq(1));
    assert_eq!(order.state.role_of(&user("ada"), Millis(0)), Some(Role::Owner));
    assert_eq!(order.state.members[&user("ada")].joined_at, Millis(1_010));
    assert_eq!(order.state.info().members, 1);
}

#[test]
fn members_send_and_others_are_told_to_join() {
    let mut order = Order::new(100);
    assert_eq!(order.send("bo", "hi").unwrap_err(), Refusal::NotMember);
    order.join("bo");
    let draft = order.send("bo", "hi").unwrap();
    assert_eq!(draft.requires, Requires::Post { user: user("bo"), slow_ms: 0, rules: Some(Seq::ZERO) });
    assert_eq!(draft.cmid.as_ref().map(|c| c.as_str()), Some("c-hi"));
    let seq = order.publish(draft).unwrap();
    assert_eq!(seq, Seq(3));
    // A message changes no member, pin or setting: only the head and the time.
    assert_eq!(order.state.members.len(), 2);
}

#[test]
fn a_thread_root_must_be_an_event_of_the_room() {
    let mut order = Order::new(100);
    let root = order.publish(order.send("ada", "root").unwrap()).unwrap();
    let ok = order.state.decide_send(&user("ada"), message("reply", Some(root)), Millis(0));
    assert!(ok.is_ok());
    for bad in [Seq(0), Seq(root.0 + 1), Seq(u64::MAX)] {
        let error = order.state.decide_send(&user("ada"), message("reply", Some(bad)), Millis(0)).unwrap_err();
        assert_eq!(error, Refusal::NoThreadRoot { root: bad }, "thread {bad}");
    }
}

#[test]
fn leaving_ends_membership_and_resuming_after_it_is_refused() {
    let mut order = Order::new(100);
    order.join("bo");
    let leave = order.state.decide_leave(&user("bo")).unwrap();
    order.publish(leave).unwrap();
    assert!(!order.state.members.contains_key(&user("bo")));
    assert_eq!(order.send("bo", "still-here").unwrap_err(), Refusal::NotMember);
    // A join with `since` resumes a membership; there is none to resume.
    let since = Position { epoch: Epoch(7), seq: Seq(2) };
    assert_eq!(order.state.decide_join(&user("bo"), Some(since), Millis(0)).unwrap_err(), Refusal::NoLongerMember);
    // Without `since` it is a new membership.
    assert!(order.state.decide_join(&user("bo"), None, Millis(0)).unwrap().is_some());
    // The owner cannot leave.
    assert_eq!(order.state.decide_leave(&user("ada")).unwrap_err(), Refusal::OwnerCannotLeave { owner: user("ada") });
    assert_eq!(order.state.decide_leave(&user("cy")).unwrap_err(), Refusal::NotMember);
}

#[test]
fn a_join_decided_on_a_stale_state_is_refused_by_the_order() {
    // Two connections of bo join at once: both decide "not a member yet".
    let mut order = Order::new(100);
    let first = order.state.decide_join(&user("bo"), None, Millis(0)).unwrap().unwrap();
    let second = order.state.decide_join(&user("bo"), None, Millis(0)).unwrap().unwrap();
    order.publish(first).unwrap();
    assert_eq!(order.publish(second), Err(Refusal::AlreadyMember));
    // A send decided before bo's leave was ordered is refused after it.
    let send = order.send("bo", "late").unwrap();
    order.publish(order.state.decide_leave(&user("bo")).unwrap()).unwrap();
    assert_eq!(order.publish(send), Err(Refusal::NotMember));
}

#[test]
fn the_cap_is_checked_by_the_order() {
    // A full room by this copy's count: the join is still drafted, since a leave
    // may be ordered that this copy has not applied; the order refuses it.
    let mut order = Order::new(2);
    order.join("bo");
    let cy = order.state.decide_join(&user("cy"), None, Millis(0)).unwrap().unwrap();
    assert_eq!(order.publish(cy), Err(Refusal::RoomFull { cap: 2 }));
    // Two joins decided while one place was left: the order admits one.
    let mut order = Order::new(2);
    let bo = order.state.decide_join(&user("bo"), None, Millis(0)).unwrap().unwrap();
    let cy = order.state.decide_join(&user("cy"), None, Millis(0)).unwrap().unwrap();
    order.publish(bo).unwrap();
    assert_eq!(order.publish(cy), Err(Refusal::RoomFull { cap: 2 }));
}

#[test]
fn the_pin_limit_is_checked_by_the_order_and_a_replacement_needs_no_place() {
    let mut order = Order::new(10);
    let note = |t: &str| Note::new(t).unwrap();
    let title = |t: &str| Some(ShortText::new(t).unwrap());
    // Two moderators pin at once with one place left: the order admits one.
    let first =
        order.state.decide_pin(&user("ada"), None, note("Mission"), title("Mission"), None, 1, Millis(0)).unwrap();
    let second = order.state.decide_pin(&user("ada"), None, note("Rules"), title("Rules"), None, 1, Millis(0)).unwrap();
    order.publish(first).unwrap();
    assert_eq!(order.publish(second), Err(Refusal::PinsFull { max: 1 }));
    assert_eq!(
        order.state.decide_pin(&user("ada"), None, note("FAQ"), None, None, 1, Millis(0)).unwrap_err(),
        Refusal::PinsFull { max: 1 }
    );
    // A new version of a pinned note takes its predecessor's place.
    let v2 =
        order.state.decide_pin(&user("ada"), None, note("Mission v2"), title("Mission"), None, 1, Millis(0)).unwrap();
    order.publish(v2).unwrap();
    assert_eq!(order.state.pins.len(), 1);
    assert_eq!(order.state.pins[0].version, 2);
    // Unpinning frees the place again.
    let pin = order.state.pins[0].pin;
    order.publish(order.state.decide_unpin(&user("ada"), pin, Millis(0)).unwrap()).unwrap();
    let again = order.state.decide_pin(&user("ada"), None, note("Rules"), None, None, 1, Millis(0)).unwrap();
    order.publish(again).unwrap();
}

#[test]
fn visibility_decides_who_may_join() {
    for (visibility, refusal) in [
        (Visibility::Approval, Refusal::ApprovalRequired(Vetting::NotAsked)),
        (Visibility::InviteOnly, Refusal::InviteRequired),
    ] {
        let mut order = Order::new(100);
        let settings = RoomSettings { visibility: Some(visibility), ..Default::default() };
        let mut update = Event::RoomUpdated(hearth_protocol::event::RoomUpdatedEvent {
            room: room_id(),
            seq: Seq(2),
            ts: Millis(2_000),
            from: user("ada"),
            settings,
        });
        update.stamp(Seq(2), Millis(2_000));
        order.state.apply(&update).unwrap();
        assert_eq!(order.state.decide_join(&user("bo"), None, Millis(0)).unwrap_err(), refusal);
    }
}

#[test]
fn pins_are_for_moderators_and_a_title_makes_versions() {
    let mut order = Order::new(100);
    order.join("bo");
    let note = |t: &str| Note::new(t).unwrap();
    let rules = Some(ShortText::new("Rules").unwrap());
    let refused = order.state.decide_pin(&user("bo"), None, note("mine"), None, None, 20, Millis(0)).unwrap_err();
    assert!(matches!(refused, Refusal::Forbidden { least: Role::Moderator, held: Role::Member, .. }), "{refused:?}");
    let first = order.publish(
        order.state.decide_pin(&user("ada"), None, note("be kind"), rules.clone(), None, 20, Millis(0)).unwrap(),
    );
    let first = first.unwrap();
    // A pin's id is the seq of the event that made it.
    assert_eq!(order.state.pins[0].pin, PinId(first.0));
    assert_eq!(order.state.pins[0].at, order.now);
    let second = order.state.decide_pin(&user("ada"), None, note("be kinder"), rules, None, 20, Millis(0)).unwrap();
    order.publish(second).unwrap();
    assert_eq!(order.state.pins.len(), 1);
    assert_eq!((order.state.pins[0].version, order.state.pins[0].text.as_str()), (2, "be kinder"));
    let unpin = order.state.decide_unpin(&user("ada"), order.state.pins[0].pin, Millis(0)).unwrap();
    order.publish(unpin).unwrap();
    assert!(order.state.pins.is_empty());
    assert_eq!(
        order.state.decide_unpin(&user("ada"), PinId(99), Millis(0)).unwrap_err(),
        Refusal::NoSuchPin { pin: PinId(99) }
    );
    // A room holds a bounded number of pins; a titled pin still replaces its namesake.
    for n in 0..3 {
        let pin = order.state.decide_pin(
            &user("ada"),
            None,
            note(&format!("n{n}")),
            Some(ShortText::new(format!("t{n}")).unwrap()),
            None,
            3,
            Millis(0),
        );
        order.publish(pin.unwrap()).unwrap();
    }
    let full = order.state.decide_pin(&user("ada"), None, note("one more"), None, None, 3, Millis(0)).unwrap_err();
    assert_eq!(full, Refusal::PinsFull { max: 3 });
    assert!(
        order
            .state
            .decide_pin(&user("ada"), None, note("v2"), Some(ShortText::new("t1").unwrap()), None, 3, Millis(0))
            .is_ok()
    );
}

#[test]
fn an_event_out_of_order_changes_nothing() {
    let mut order = Order::new(100);
    let before = order.state.clone();
    let mut event = order.state.decide_join(&user("bo"), None, Millis(0)).unwrap().unwrap().event;
    event.stamp(Seq(5), Millis(9_000));
    assert_eq!(order.state.apply(&event), Err(OutOfOrder { head: Seq(1), got: Seq(5) }));
    assert_eq!(order.state, before);
}

#[test]
fn restoring_what_the_store_keeps_gives_the_applied_state() {
    let mut order = Order::new(100);
    order.join("bo");
    order.join("cy");
    let pin =
        order.state.decide_pin(&user("ada"), None, Note::new("mission").unwrap(), None, None, 20, Millis(0)).unwrap();
    order.publish(pin).unwrap();
    order.publish(order.state.decide_leave(&user("bo")).unwrap()).unwrap();
    let members = order
        .state
        .members
        .iter()
        .map(|(u, m)| MemberRecord {
            user: u.clone(),
            role: m.role,
            joined_at: m.joined_at,
            role_expires_at: m.role_expires_at,
        })
        .collect();
    let restored = RoomState::restore(
        order.state.record.clone(),
        members,
        order.state.pins.clone(),
        &order.state.rows.to_rows(),
        order.state.head,
        order.state.last_ts,
    )
    .unwrap();
    // When members last posted is not stored: slow mode starts afresh. Which
    // event last changed the rules is not either: a restored copy has them
    // all, up to its head.
    let mut expected = order.state.clone();
    expected.last_post.clear();
    expected.rules_seq = expected.head;
    assert_eq!(restored, expected);
}

/// A request some user makes, for the property below.
#[derive(Debug, Clone)]
enum Request {
    Join(u8),
    Leave(u8),
    Send(u8),
    Pin(u8, Option<u8>),
    Unpin(u8, u8),
    Cap(u8),
}

fn requests() -> impl Strategy<Value = Vec<Request>> {
    let request = prop_oneof![
        (0..6u8).prop_map(Request::Join),
        (0..6u8).prop_map(Request::Leave),
        (0..6u8).prop_map(Request::Send),
        (0..6u8, proptest::option::of(0..2u8)).prop_map(|(u, t)| Request::Pin(u, t)),
        (0..6u8, 0..40u8).prop_map(|(u, p)| Request::Unpin(u, p)),
        (1..6u8).prop_map(Request::Cap),
    ];
    proptest::collection::vec(request, 0..60)
}

fn member_name(n: u8) -> UserId {
    if n == 0 { user("ada") } else { user(&format!("m{n}")) }
}

proptest! {
    /// What a second node relies on: the same events in the same order give the
    /// same state, whatever they are; and the order's gate agrees with the state
    /// about who is a member, because both follow the same changes.
    #[test]
    fn the_same_events_give_the_same_state(requests in requests()) {
        let mut order = Order::new(4);
        for request in requests {
            let who = |n: u8| member_name(n);
            let draft = match request {
                Request::Join(u) => order.state.decide_join(&who(u), None, Millis(0)).ok().flatten(),
                Request::Leave(u) => order.state.decide_leave(&who(u)).ok(),
                Request::Send(u) => order.state.decide_send(&who(u), message("x", None), Millis(0)).ok(),
                Request::Pin(u, title) => order
                    .state
                    .decide_pin(&who(u), None, Note::new("n").unwrap(), title.map(|t| ShortText::new(format!("t{t}")).unwrap()), None, 20, Millis(0))
                    .ok(),
                Request::Unpin(u, pin) => order.state.decide_unpin(&who(u), PinId(u64::from(pin)), Millis(0)).ok(),
                Request::Cap(cap) => {
                    let event = Event::RoomUpdated(hearth_protocol::event::RoomUpdatedEvent {
                        room: room_id(),
                        seq: Seq::ZERO,
                        ts: Millis(0),
                        from: user("ada"),
                        settings: RoomSettings { cap: Some(u32::from(cap)), ..Default::default() },
                    });
                    Some(Draft { event, requires: Requires::RoleAtLeast(user("ada"), Role::Owner), cmid: None })
                }
            };
            if let Some(draft) = draft {
                let _ = order.publish(draft);
            }
        }
        let mut replica = RoomState::genesis(order.genesis.clone());
        for event in &order.events {
            replica.apply(event).unwrap();
        }
        prop_assert_eq!(&replica, &order.state);
        for n in 0..6 {
            let member = Requires::Member(member_name(n));
            prop_assert_eq!(order.gate.check(&member, Millis(0)).is_ok(), order.state.members.contains_key(&member_name(n)));
        }
    }
}
