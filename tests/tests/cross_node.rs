//! One user on two nodes: an authorisation decision is never taken on a node's
//! stale copy of a room. A leave acknowledged through one node stops a send
//! through the other right after, and the other connection is told and then
//! receives nothing more. Runs on one node too, where both connections share it.
//! A grant works the other way: a membership, a role, a held post, an
//! invite, an acknowledgement of the rules or a lifted mute acknowledged
//! through one node is honoured through the other right after (a refusal decided on a
//! copy that trails the order is decided again once the copy caught up);
//! and a restriction (probation, rules to acknowledge, a room closed to
//! newcomers or locked read-only, a moderator demoted) set through one node
//! holds through the other right after.
//! And a room that leaves one node's memory (and its subscription) comes back
//! on that node with nothing missed.

use std::time::Duration;

use hearth_cli::{Client, ClientError};
use hearth_protocol::ops::{
    AckRules, AddPin, CreateInvite, Join, Lock, LockLevel, Mute, Ping, React, Release, RoomSettings, SendMessage,
    SetRole, SetRoom, Unmute, Visibility,
};
use hearth_protocol::{ClientMsgId, Codec, Emoji, ErrorCode, Event, Note, Role, RoomId, ShortText, Text};
use hearth_tests::*;

/// Reads `client`'s events until `done` holds for one; all of them, in order.
async fn events_until(client: &mut Client, done: impl Fn(&Event) -> bool) -> Vec<Event> {
    let mut seen = Vec::new();
    loop {
        match client.next_event_within(WAIT).await.expect("an event in time") {
            Some(event) => {
                let stop = done(&event);
                seen.push(event);
                if stop {
                    return seen;
                }
            }
            None => panic!("connection closed after {seen:?}"),
        }
    }
}

/// Two nodes on one Redis; the far one hears everything from Redis a tenth
/// of a second late (its copies trail the order).
async fn near_and_far() -> (hearth_testkit::RedisServer, hearth_testkit::SlowLink, TestServer, TestServer) {
    let redis = hearth_testkit::RedisServer::start().await;
    let slow = hearth_testkit::SlowLink::start(redis.port, Duration::from_millis(100)).await;
    let near = TestServer::start(cluster_config(&redis.url(), "late")).await;
    let far = TestServer::start(cluster_config(&format!("redis://127.0.0.1:{}", slow.port), "late")).await;
    (redis, slow, near, far)
}

/// The room's rules, pinned as a note.
fn rules_pin(r: &RoomId) -> AddPin {
    AddPin {
        room: r.clone(),
        seq: None,
        note: Some(Note::new("Be kind.").unwrap()),
        title: Some(ShortText::new("Rules").unwrap()),
        edit: None,
    }
}

fn is_message(event: &Event, r: &RoomId, text: &str) -> bool {
    matches!(event, Event::Message(m) if &m.room == r && m.text.as_str() == text)
}

both_modes! {
async fn a_leave_through_one_node_stops_a_send_through_the_other_at_once(d: Deployment) {
    let r = room("lounge");
    let ada = d.client("ada", Codec::MsgPack).await;
    create_room(&ada, "lounge", None).await.unwrap();
    let mut phone = d.node("bo").client("bo", Codec::MsgPack).await;
    let mut laptop = d.other_node("bo").client("bo", Codec::Json).await;
    // cy shares the laptop's node: when cy has an event, that node has it.
    let mut cy = d.other_node("bo").client("cy", Codec::MsgPack).await;
    for client in [&mut phone, &mut laptop, &mut cy] {
        client.join(&r).await.unwrap();
    }
    ada.send(&r, "before").await.unwrap();
    events_until(&mut laptop, |e| is_message(e, &r, "before")).await;

    // Where the laptop stood: it forgets the room once told of the leave.
    let since = laptop.position(&r).unwrap();
    phone.leave(&r).await.unwrap();
    // Right after, before the laptop's node may have heard of the leave.
    match laptop.send(&r, "too late").await {
        Err(ClientError::Server(error)) => assert_eq!(error.code, ErrorCode::NotMember, "{error}"),
        other => panic!("a send after the leave must be refused, got {other:?}"),
    }
    let seen = events_until(&mut laptop, |e| matches!(e, Event::MemberLeft(m) if m.user.as_str() == "bo")).await;
    assert!(!seen.iter().any(|e| is_message(e, &r, "too late")));
    ada.send(&r, "after").await.unwrap();
    events_until(&mut cy, |e| is_message(e, &r, "after")).await;
    laptop.request(Ping {}).await.unwrap();
    let late: Vec<Event> = std::iter::from_fn(|| laptop.try_next_event()).collect();
    assert!(late.is_empty(), "nothing reaches bo after the leave: {late:?}");
    // Resuming the membership it no longer has is refused, not a silent rejoin.
    match laptop.join_since(&r, Some(since)).await {
        Err(ClientError::Server(error)) => assert_eq!(error.code, ErrorCode::NotMember, "{error}"),
        other => panic!("expected not_member, got {other:?}"),
    }
    d.stop().await;
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_through_one_node_holds_through_a_node_that_hears_of_it_late() {
    let (_redis, _slow, near, far) = near_and_far().await;
    let ada = near.client("ada", Codec::MsgPack).await;
    let mut phone = near.client("bo", Codec::MsgPack).await;
    let laptop = far.client("bo", Codec::Json).await;
    for round in 0..3 {
        let name = format!("late{round}");
        let r = room(&name);
        create_room(&ada, &name, None).await.unwrap();
        // Joined through the near node: the far node's copy does not know yet.
        phone.join(&r).await.unwrap();
        laptop.send(&r, "joined on the phone, posting from the laptop").await.unwrap();
        // Not a moderator: that refusal stands, however late the copy.
        let topic = |text: &str| SetRoom {
            room: r.clone(),
            settings: RoomSettings { topic: Some(ShortText::new(text).unwrap()), ..RoomSettings::default() },
        };
        match laptop.request(topic("mine now")).await {
            Err(ClientError::Server(error)) => assert_eq!(error.code, ErrorCode::Forbidden, "{error}"),
            other => panic!("a member may not set the topic, got {other:?}"),
        }
        let grant = SetRole { room: r.clone(), user: user("bo"), role: Role::Moderator, expires_at: None, title: None };
        ada.request(grant).await.unwrap();
        laptop.request(topic(&format!("round {round}"))).await.unwrap();
    }
    // A newcomer's link held through the near node, released through the far
    // one (bo moderates late0 now) the moment the newcomer is answered.
    let r = room("late0");
    let probation = RoomSettings { probation_secs: Some(86_400), ..RoomSettings::default() };
    ada.request(SetRoom { room: r.clone(), settings: probation }).await.unwrap();
    let mut cy = near.client("cy", Codec::MsgPack).await;
    cy.join(&r).await.unwrap();
    let link = SendMessage {
        room: r.clone(),
        text: Text::new("my roll: https://example.org/roll").unwrap(),
        cmid: ClientMsgId::new("c1").unwrap(),
        thread: None,
    };
    assert!(cy.request(link).await.unwrap().held);
    let release = Release {
        room: r.clone(),
        user: user("cy"),
        cmid: ClientMsgId::new("c1").unwrap(),
        approve: true,
        reason: ShortText::default(),
    };
    laptop.request(release).await.unwrap();
    // An invite made through the near node opens the room through the far one at once.
    let r = room("late1");
    let closed = RoomSettings { visibility: Some(Visibility::InviteOnly), ..RoomSettings::default() };
    ada.request(SetRoom { room: r.clone(), settings: closed }).await.unwrap();
    let invite = ada.request(CreateInvite { room: r.clone(), ttl_secs: None, max_uses: Some(1) }).await.unwrap();
    let dee = far.client("dee", Codec::Json).await;
    dee.request(Join { room: r.clone(), since: None, invite: Some(invite.code) }).await.unwrap();
    // The rules acknowledged, and a mute lifted, through the near node, once
    // the far node knows of the rules and the mute: the laptop posts through
    // the far node at once.
    create_room(&ada, "rules", None).await.unwrap();
    let r = room("rules");
    let mut laptop = laptop;
    laptop.join(&r).await.unwrap();
    let rules = rules_pin(&r);
    let version = ada.request(rules).await.unwrap().pin.version;
    let ack = RoomSettings { rules_ack: Some(true), ..RoomSettings::default() };
    ada.request(SetRoom { room: r.clone(), settings: ack }).await.unwrap();
    until_event(&mut laptop, "rules_ack on", |e| matches!(e, Event::RoomUpdated(_))).await;
    phone.request(AckRules { room: r.clone(), version }).await.unwrap();
    laptop.send(&r, "read them").await.unwrap();
    let mute = Mute { room: r.clone(), user: user("bo"), duration_secs: 3600, reason: ShortText::default() };
    ada.request(mute).await.unwrap();
    until_event(&mut laptop, "the mute", |e| matches!(e, Event::Moderation(_))).await;
    ada.request(Unmute { room: r.clone(), user: user("bo") }).await.unwrap();
    laptop.send(&r, "back").await.unwrap();
    near.stop().await;
    far.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restriction_through_one_node_holds_through_a_node_that_hears_of_it_late() {
    let (_redis, _slow, near, far) = near_and_far().await;
    let ada = near.client("ada", Codec::MsgPack).await;
    create_room(&ada, "strict", None).await.unwrap();
    let r = room("strict");
    let mut cy = far.client("cy", Codec::Json).await;
    cy.join(&r).await.unwrap();
    let post = |text: &str, cmid: &str| SendMessage {
        room: r.clone(),
        text: Text::new(text).unwrap(),
        cmid: ClientMsgId::new(cmid).unwrap(),
        thread: None,
    };
    // Probation turned on through the near node: cy's link, posted through the
    // far node right after, is held — not posted on the far node's old copy.
    let probation = RoomSettings { probation_secs: Some(86_400), ..RoomSettings::default() };
    ada.request(SetRoom { room: r.clone(), settings: probation }).await.unwrap();
    let sent = cy.request(post("my roll: https://example.org/roll", "c1")).await.unwrap();
    assert!(sent.held, "a newcomer's link on probation is held, whichever node took it");
    // The rules pinned and their acknowledgement asked for through the near
    // node: cy's next post through the far node must wait for cy's ack.
    let off = RoomSettings { probation_secs: Some(0), ..RoomSettings::default() };
    ada.request(SetRoom { room: r.clone(), settings: off }).await.unwrap();
    let rules = rules_pin(&r);
    ada.request(rules).await.unwrap();
    let ack = RoomSettings { rules_ack: Some(true), ..RoomSettings::default() };
    ada.request(SetRoom { room: r.clone(), settings: ack }).await.unwrap();
    match cy.request(post("did not read them", "c2")).await {
        Err(ClientError::Server(error)) => assert_eq!(error.code, ErrorCode::AckRequired, "{error}"),
        other => panic!("a post before the acknowledgement must be refused, got {other:?}"),
    }
    let seen =
        events_until(&mut cy, |e| matches!(e, Event::RoomUpdated(u) if u.settings.rules_ack == Some(true))).await;
    assert!(!seen.iter().any(|e| is_message(e, &r, "did not read them")));
    // The room closed to newcomers through the near node: a join through the
    // far node right after is refused, not let in by its old copy.
    let dee = far.client("dee", Codec::MsgPack).await;
    let closed = RoomSettings { visibility: Some(Visibility::InviteOnly), ..RoomSettings::default() };
    ada.request(SetRoom { room: r.clone(), settings: closed }).await.unwrap();
    match dee.request(Join { room: r.clone(), since: None, invite: None }).await {
        Err(ClientError::Server(error)) => assert_eq!(error.code, ErrorCode::InviteRequired, "{error}"),
        other => panic!("a join of a room just made invite-only must be refused, got {other:?}"),
    }
    // A moderator demoted through the near node, in a room only moderators
    // may post in: cy's post through the far node right after is refused,
    // not posted on the far node's copy where cy still moderates.
    let open = RoomSettings { rules_ack: Some(false), ..RoomSettings::default() };
    ada.request(SetRoom { room: r.clone(), settings: open }).await.unwrap();
    // And first the lockdown itself: a reaction through the far node right
    // after it is refused, as a post is.
    let target = ada.send(&r, "react to me").await.unwrap().seq;
    events_until(&mut cy, |e| is_message(e, &r, "react to me")).await;
    ada.request(Lock { room: r.clone(), level: LockLevel::ReadOnly, duration_secs: None }).await.unwrap();
    let react = React { room: r.clone(), target, emoji: Emoji::new("👍").unwrap(), on: true };
    match cy.request(react).await {
        Err(ClientError::Server(error)) => assert_eq!(error.code, ErrorCode::Locked, "{error}"),
        other => panic!("a member's reaction in a read-only room must be refused, got {other:?}"),
    }
    let role = |role: Role| SetRole { room: r.clone(), user: user("cy"), role, expires_at: None, title: None };
    ada.request(role(Role::Moderator)).await.unwrap();
    let seen = events_until(&mut cy, |e| matches!(e, Event::Role(_))).await;
    assert!(!seen.iter().any(|e| matches!(e, Event::Reaction(_))), "{seen:?}");
    cy.send(&r, "moderators only").await.unwrap();
    ada.request(role(Role::Member)).await.unwrap();
    match cy.request(post("still a moderator?", "c3")).await {
        Err(ClientError::Server(error)) => assert_eq!(error.code, ErrorCode::Locked, "{error}"),
        other => panic!("a member's post in a read-only room must be refused, got {other:?}"),
    }
    ada.send(&r, "after the demotion").await.unwrap();
    let seen = events_until(&mut cy, |e| is_message(e, &r, "after the demotion")).await;
    assert!(!seen.iter().any(|e| is_message(e, &r, "still a moderator?")));
    near.stop().await;
    far.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_leaves_a_node_s_memory_and_subscription_and_comes_back_whole() {
    let redis = hearth_testkit::RedisServer::start().await;
    let mut config = cluster_config(&redis.url(), "idle");
    config.rooms.idle_after = std::time::Duration::from_millis(200);
    let d = Deployment::with_nodes(config, 2).await;
    let r = room("quiet");
    let mut ada = d.nodes[0].client("ada", Codec::MsgPack).await;
    create_room(&ada, "quiet", None).await.unwrap();
    ada.join(&r).await.unwrap();
    let mut bo = d.nodes[1].client("bo", Codec::Json).await;
    bo.join(&r).await.unwrap();
    ada.send(&r, "one").await.unwrap();
    events_until(&mut bo, |e| is_message(e, &r, "one")).await;
    let subscribers = || async { redis.must(&["PUBSUB", "SHARDNUMSUB", "idle:{quiet}:events"]).await };
    assert_eq!(subscribers().await.lines().nth(1), Some("2"));

    // bo goes away; nobody on node 1 receives the room, so it leaves that node.
    let position = bo.position(&r).unwrap();
    drop(bo);
    let deadline = tokio::time::Instant::now() + WAIT;
    while subscribers().await.lines().nth(1) != Some("1") {
        assert!(tokio::time::Instant::now() < deadline, "node 1 never let the room go");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for text in ["two", "three"] {
        ada.send(&r, text).await.unwrap();
    }
    // Back on node 1: loaded again, subscribed again, and the resume is whole.
    let mut bo = d.nodes[1].client("bo", Codec::Json).await;
    bo.join_since(&r, Some(position)).await.unwrap();
    ada.send(&r, "four").await.unwrap();
    let seen = events_until(&mut bo, |e| is_message(e, &r, "four")).await;
    let texts: Vec<&str> = seen
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["two", "three", "four"]);
    assert_eq!(subscribers().await.lines().nth(1), Some("2"));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_and_reads_through_a_node_that_hears_late_know_every_change_acknowledged_before() {
    use hearth_protocol::ops::{Ban, History, Kick, Members, Stats};
    let (_redis, _slow, near, far) = near_and_far().await;
    let ada = near.client("ada", Codec::MsgPack).await;
    for round in 0..3 {
        let name = format!("told{round}");
        let r = room(&name);
        create_room(&ada, &name, None).await.unwrap();
        // bo is a member and receives the room through the far node.
        let mut laptop = far.client("bo", Codec::Json).await;
        laptop.join(&r).await.unwrap();
        let since = laptop.position(&r).unwrap();
        // A post acknowledged through the near node is in what the far node
        // counts and shows right after (read your writes, across nodes).
        ada.send(&r, &format!("post {round}")).await.unwrap();
        let stats = ada_far(&far).await.request(Stats { room: r.clone(), days: Some(1) }).await.unwrap();
        assert_eq!(stats.windows[0].messages, 1, "round {round}: the post acknowledged a moment ago counts");
        let page = laptop.request(History { room: r.clone(), before: None, after: None, limit: None }).await.unwrap();
        assert!(page.events.iter().any(|e| is_message(e, &r, &format!("post {round}"))), "round {round}: {page:?}");
        // A member who joined through the near node is listed through the far one.
        let cy = near.client("cy", Codec::MsgPack).await;
        cy.request(Join { room: r.clone(), since: None, invite: None }).await.unwrap();
        let members = laptop.request(Members { room: r.clone() }).await.unwrap();
        assert!(members.members.iter().any(|m| m.user.as_str() == "cy"), "round {round}: cy joined a moment ago");
        // Banned through the near node: a join or a resume through the far
        // node right after is refused, and tells nothing of the room.
        let ban = Ban { room: r.clone(), user: user("bo"), reason: ShortText::default(), duration_secs: None };
        ada.request(ban).await.unwrap();
        let late = far.client("bo", Codec::MsgPack).await;
        for (what, since) in [("a resume", Some(since)), ("a join", None)] {
            match late.request(Join { room: r.clone(), since, invite: None }).await {
                Err(ClientError::Server(error)) => assert_eq!(error.code, ErrorCode::Banned, "{what}: {error}"),
                Ok(joined) => panic!("round {round}: {what} of a banned member was let in: {joined:?}"),
                Err(other) => panic!("{what}: {other}"),
            }
        }
        // Kicked through the near node: a resume through the far node is refused.
        let kicked = far.client("cy", Codec::Json).await;
        let cy_since = {
            let mut cy_far = far.client("cy", Codec::Json).await;
            cy_far.join(&r).await.unwrap();
            cy_far.position(&r).unwrap()
        };
        ada.request(Kick { room: r.clone(), user: user("cy"), reason: ShortText::default() }).await.unwrap();
        match kicked.request(Join { room: r.clone(), since: Some(cy_since), invite: None }).await {
            Err(ClientError::Server(error)) => assert_eq!(error.code, ErrorCode::NotMember, "{error}"),
            other => panic!("round {round}: a resume after a kick must be refused, got {other:?}"),
        }
    }
    near.stop().await;
    far.stop().await;
}

/// Ada, the rooms' owner, through the far node.
async fn ada_far(far: &TestServer) -> Client {
    far.client("ada", Codec::Json).await
}
