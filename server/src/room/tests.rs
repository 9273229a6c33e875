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
        self.state.decide_send(&user(name), message(text, None), None, Millis(0))
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
    assert_eq!(draft.requires, Requires::Post { user: user("bo"), slow_ms: 0 });
    assert_eq!(draft.decided_at, Some(Seq(2)));
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
    let ok = order.state.decide_send(&user("ada"), message("reply", Some(root)), None, Millis(0));
    assert!(ok.is_ok());
    for bad in [Seq(0), Seq(root.0 + 1), Seq(u64::MAX)] {
        let error = order.state.decide_send(&user("ada"), message("reply", Some(bad)), None, Millis(0)).unwrap_err();
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
    expected.arrivals.clear();
    expected.rules_seq = expected.head;
    assert_eq!(restored, expected);
}

/// A request some user makes, for the property below: the membership and
/// timeline kinds, and the community tools' (roles, bans, mutes, kicks, the
/// room's visibility, join requests and their decisions, invites) — with time
/// passing between them, so timed roles, bans, mutes and invites end.
#[derive(Debug, Clone)]
enum Request {
    Join(u8),
    Leave(u8),
    Send(u8),
    Pin(u8, Option<u8>),
    Unpin(u8, u8),
    Cap(u8),
    SetRole(u8, u8, u8, Option<u8>),
    Ban(u8, u8, Option<u8>),
    Unban(u8, u8),
    Mute(u8, u8, u8),
    Unmute(u8, u8),
    Kick(u8, u8),
    Visibility(u8, u8),
    AskToJoin(u8),
    Decide(u8, u8, bool),
    CreateInvite(u8, u8, Option<u8>),
    JoinInvited(u8, u8),
    RevokeInvite(u8, u8),
    /// Seconds pass.
    Wait(u8),
}

fn requests() -> impl Strategy<Value = Vec<Request>> {
    let user = || 0..6u8;
    // Mostly the owner acts, so the tools are used, not only refused.
    let actor = || prop_oneof![2 => Just(0u8), 1 => 1..6u8];
    let request = prop_oneof![
        3 => user().prop_map(Request::Join),
        1 => user().prop_map(Request::Leave),
        1 => user().prop_map(Request::Send),
        1 => (user(), proptest::option::of(0..2u8)).prop_map(|(u, t)| Request::Pin(u, t)),
        1 => (user(), 0..40u8).prop_map(|(u, p)| Request::Unpin(u, p)),
        1 => (1..6u8).prop_map(Request::Cap),
        1 => (actor(), user(), 0..4u8, proptest::option::of(1..30u8)).prop_map(|(a, u, r, t)| Request::SetRole(a, u, r, t)),
        1 => (actor(), user(), proptest::option::of(1..30u8)).prop_map(|(a, u, d)| Request::Ban(a, u, d)),
        1 => (actor(), user()).prop_map(|(a, u)| Request::Unban(a, u)),
        1 => (actor(), user(), 1..30u8).prop_map(|(a, u, d)| Request::Mute(a, u, d)),
        1 => (actor(), user()).prop_map(|(a, u)| Request::Unmute(a, u)),
        1 => (actor(), user()).prop_map(|(a, u)| Request::Kick(a, u)),
        1 => (actor(), 0..3u8).prop_map(|(a, v)| Request::Visibility(a, v)),
        1 => user().prop_map(Request::AskToJoin),
        1 => (actor(), user(), any::<bool>()).prop_map(|(a, u, yes)| Request::Decide(a, u, yes)),
        1 => (actor(), 0..3u8, proptest::option::of(1..3u8)).prop_map(|(a, c, n)| Request::CreateInvite(a, c, n)),
        1 => (user(), 0..3u8).prop_map(|(u, c)| Request::JoinInvited(u, c)),
        1 => (actor(), 0..3u8).prop_map(|(a, c)| Request::RevokeInvite(a, c)),
        1 => (1..40u8).prop_map(Request::Wait),
    ];
    proptest::collection::vec(request, 0..120)
}

fn member_name(n: u8) -> UserId {
    if n == 0 { user("ada") } else { user(&format!("m{n}")) }
}

const ROLES: [Role; 4] = [Role::Member, Role::Welcomer, Role::Moderator, Role::Owner];

impl Order {
    /// What the room decides for `request` now, if it drafts an event.
    fn decide(&mut self, request: Request) -> Option<Draft> {
        let who = member_name;
        let now = self.now;
        let s = &self.state;
        let reason = ShortText::default;
        let code = |c: u8| format!("code-{c}");
        let decided = match request {
            Request::Join(u) => s.decide_join(&who(u), None, now).transpose()?,
            Request::Leave(u) => s.decide_leave(&who(u)),
            Request::Send(u) => s.decide_send(&who(u), message("x", None), None, now),
            Request::Pin(u, title) => {
                let title = title.map(|t| ShortText::new(format!("t{t}")).unwrap());
                s.decide_pin(&who(u), None, Note::new("n").unwrap(), title, None, 20, now)
            }
            Request::Unpin(u, pin) => s.decide_unpin(&who(u), PinId(u64::from(pin)), now),
            Request::Cap(cap) => {
                let settings = RoomSettings { cap: Some(u32::from(cap)), ..Default::default() };
                s.decide_set_room(&user("ada"), settings, now)
            }
            Request::SetRole(a, u, role, secs) => {
                let expires_at = secs.map(|t| Millis(now.0 + u64::from(t) * 1000));
                let role = ROLES[usize::from(role)];
                let args =
                    hearth_protocol::ops::SetRole { room: room_id(), user: who(u), role, expires_at, title: None };
                s.decide_set_role(&who(a), args, now)
            }
            Request::Ban(a, u, secs) => s.decide_ban(&who(a), &who(u), reason(), secs.map(u32::from), now),
            Request::Unban(a, u) => s.decide_unban(&who(a), &who(u), now),
            Request::Mute(a, u, secs) => s.decide_mute(&who(a), &who(u), u32::from(secs), reason(), now),
            Request::Unmute(a, u) => s.decide_unmute(&who(a), &who(u), now),
            Request::Kick(a, u) => s.decide_kick(&who(a), &who(u), reason(), now),
            Request::Visibility(a, v) => {
                let visibility = [Visibility::Open, Visibility::Approval, Visibility::InviteOnly][usize::from(v)];
                let settings = RoomSettings { visibility: Some(visibility), ..Default::default() };
                s.decide_set_room(&who(a), settings, now)
            }
            Request::AskToJoin(u) => s.decide_request_join(&who(u), Note::new("me").unwrap(), now),
            Request::Decide(a, u, approve) => {
                let args =
                    hearth_protocol::ops::DecideJoin { room: room_id(), user: who(u), approve, reason: reason() };
                s.decide_on_request(&who(a), args, now)
            }
            Request::CreateInvite(a, c, uses) => {
                s.decide_create_invite(&who(a), rows::invite_id(&code(c)), Some(20), uses.map(u32::from), now)
            }
            Request::JoinInvited(u, c) => s.decide_join_invited(&who(u), &code(c), now).transpose()?,
            Request::RevokeInvite(a, c) => s.decide_revoke_invite(&who(a), &code(c), now),
            Request::Wait(secs) => {
                self.now = Millis(now.0 + u64::from(secs) * 1000);
                return None;
            }
        };
        decided.ok()
    }
}

proptest! {
    /// What a second node relies on: the same events in the same order give the
    /// same state, whatever they are; and the order's gate agrees with the state
    /// about what it re-checks — who is a member, with which role, who is
    /// banned or muted, whose request is pending, which invites hold — because
    /// both follow the same changes.
    #[test]
    fn the_same_events_give_the_same_state(requests in requests()) {
        let mut order = Order::new(4);
        for request in requests {
            if let Some(draft) = order.decide(request) {
                let _ = order.publish(draft);
            }
        }
        let mut replica = RoomState::genesis(order.genesis.clone());
        for event in &order.events {
            replica.apply(event).unwrap();
        }
        prop_assert_eq!(&replica, &order.state);
        let (state, gate, now) = (&order.state, &order.gate, order.now);
        for n in 0..6 {
            let who = member_name(n);
            let member = state.members.contains_key(&who);
            prop_assert_eq!(gate.check(&Requires::Member(who.clone()), now).is_ok(), member);
            for least in ROLES {
                let holds = state.role_of(&who, now).is_some_and(|held| held >= least);
                prop_assert_eq!(gate.check(&Requires::RoleAtLeast(who.clone(), least), now).is_ok(), holds, "{} {:?}", who, least);
            }
            let banned = state.rows.bans.get(&who).is_some_and(|b| b.holds(now));
            let asks = gate.check(&Requires::Request { user: who.clone(), max: usize::MAX }, now);
            prop_assert_eq!(matches!(asks, Err(Refusal::Banned(_))), banned && !member);
            if member {
                let muted = state.rows.mutes.get(&who).is_some_and(|m| m.holds(now));
                let posts = gate.check(&Requires::Post { user: who.clone(), slow_ms: 0 }, now);
                prop_assert_eq!(matches!(posts, Err(Refusal::Muted(_))), muted);
            }
            let pending = state.rows.requests.contains_key(&who);
            let decides = gate.check(&Requires::Decide { actor: user("ada"), user: who.clone() }, now);
            prop_assert_eq!(decides.is_ok(), pending);
        }
        let stranger = user("zz");
        let room_for_one = state.members.len() < state.record.cap as usize;
        for c in 0..3u8 {
            let id = rows::invite_id(&format!("code-{c}"));
            let valid = state.rows.invites.get(&id).is_some_and(|i| i.valid(now));
            let admitted = gate.check(&Requires::AdmitInvite { user: stranger.clone(), invite: id }, now);
            prop_assert_eq!(admitted.is_ok(), valid && room_for_one);
        }
    }
}

#[test]
fn a_warning_forgets_expired_ones_and_brings_the_escalation_with_it() {
    let mut order = Order::new(100);
    order.join("bo");
    let settings = RoomSettings {
        warn_expiry_days: Some(1),
        warn_limit: Some(2),
        warn_action: Some(hearth_protocol::ops::ModAction::Mute),
        warn_action_secs: Some(60),
        ..RoomSettings::default()
    };
    order.publish(order.state.decide_set_room(&user("ada"), settings, order.now).unwrap()).unwrap();
    let reason = || ShortText::new("links").unwrap();
    let first =
        order.publish(order.state.decide_warn(&user("ada"), &user("bo"), reason(), order.now).unwrap()).unwrap();
    // Two days on, the first has expired: the next one forgets it, and is
    // the first live one (no escalation).
    order.now = Millis(order.now.0 + 2 * 24 * 3600 * 1000);
    let draft = order.state.decide_warn(&user("ada"), &user("bo"), reason(), order.now).unwrap();
    let Event::Moderation(warned) = &draft.event else { panic!("a moderation event") };
    assert_eq!((warned.warnings.as_slice(), warned.escalation), ([first].as_slice(), None));
    let second = order.publish(draft).unwrap();
    assert_eq!(order.state.rows.warnings.keys().map(|(_, id)| *id).collect::<Vec<_>>(), [second]);
    // The second live one mutes, in the same event: the room and the order
    // both refuse bo's posts.
    order.publish(order.state.decide_warn(&user("ada"), &user("bo"), reason(), order.now).unwrap()).unwrap();
    assert!(matches!(order.send("bo", "hm"), Err(Refusal::Muted(_))));
    let post = Requires::Post { user: user("bo"), slow_ms: 0 };
    assert!(matches!(order.gate.check(&post, order.now), Err(Refusal::Muted(_))));
}
