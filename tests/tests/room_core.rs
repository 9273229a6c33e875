//! The room core over real sockets: what a member sees is durable, a leave
//! reaches every connection of the user, and a replay never has a silent hole.
//! Races are made deterministic by holding the server's commits.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use hearth_cli::{Client, ClientError};
use hearth_protocol::codec::{ServerFrame, decode_server_frame};
use hearth_protocol::ops::{AddPin, History, Join, ListRooms, Members, Ping, ResumeMode};
use hearth_protocol::{ClientMsgId, Codec, ErrorCode, Event, Note, Position, Seq};
use hearth_server::Storage;
use hearth_server::journal::CommitHold;
use hearth_tests::*;
use tokio_tungstenite::tungstenite::Message;

/// A durable server whose commits the test can hold.
async fn held_server(dir: &tempfile::TempDir) -> (TestServer, CommitHold) {
    let mut config = test_config(Storage::Dir(dir.path().to_path_buf()));
    // A small cache sends replays through the store.
    config.rooms.recent_events = 4;
    let hold = config.commit_hold.clone();
    (TestServer::start(config).await, hold)
}

fn join_args(room: &str) -> Join {
    Join { room: hearth_tests::room(room), since: None, invite: None }
}

/// Events that arrived before the reply to a request sent now: everything the
/// server queued for this connection so far.
async fn events_so_far(client: &mut Client) -> Vec<Event> {
    client.request(Ping {}).await.expect("ping");
    std::iter::from_fn(|| client.try_next_event()).collect()
}

fn message_texts(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.text.to_string()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leave_reaches_every_connection_of_the_user_and_a_resume_after_it_is_refused() {
    let server = TestServer::ephemeral().await;
    let r = room("lounge");
    let ada = server.client("ada", Codec::MsgPack).await;
    create_room(&ada, "lounge", None).await.unwrap();
    let mut phone = server.client("bo", Codec::MsgPack).await;
    let mut laptop = server.client("bo", Codec::Json).await;
    phone.join(&r).await.unwrap();
    laptop.join(&r).await.unwrap();
    ada.send(&r, "before").await.unwrap();
    assert_eq!(message_texts(&events_so_far(&mut laptop).await), ["before"]);

    // Where the laptop stood: it forgets the room once told of the leave.
    let since = laptop.position(&r).unwrap();
    phone.leave(&r).await.unwrap();
    // The laptop hears of the leave, then nothing more from the room.
    let seen = events_so_far(&mut laptop).await;
    assert!(
        seen.iter().any(|e| matches!(e, Event::MemberLeft(m) if m.user.as_str() == "bo")),
        "the laptop is told bo left: {seen:?}"
    );
    ada.send(&r, "after").await.unwrap();
    assert_eq!(message_texts(&events_so_far(&mut laptop).await), Vec::<String>::new());
    // Resuming the membership it no longer has is refused, not a silent rejoin.
    match laptop.join_since(&r, Some(since)).await {
        Err(ClientError::Server(error)) => assert_eq!(error.code, ErrorCode::NotMember, "{error}"),
        other => panic!("expected not_member, got {other:?}"),
    }
    let members = ada.request(Members { room: r.clone() }).await.unwrap();
    assert!(members.members.iter().all(|m| m.user.as_str() != "bo"), "bo is still no member");
    // Joining anew (without since) is a new membership.
    let joined = laptop.request(join_args("lounge")).await.unwrap();
    assert!(joined.first_join);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_racing_a_leave_of_the_same_user_does_not_keep_receiving() {
    let dir = tempfile::tempdir().unwrap();
    let (server, hold) = held_server(&dir).await;
    let r = room("race");
    let ada = server.client("ada", Codec::MsgPack).await;
    create_room(&ada, "race", None).await.unwrap();
    let phone = Arc::new(server.client("bo", Codec::MsgPack).await);
    phone.request(join_args("race")).await.unwrap();
    let mut laptop = server.client("bo", Codec::MsgPack).await;

    // The leave is ordered but not yet durable when the laptop joins: the laptop
    // still sees a member and starts receiving.
    hold.hold();
    let leave = {
        let phone = phone.clone();
        tokio::spawn(async move { phone.request(hearth_protocol::ops::Leave { room: room("race") }).await })
    };
    let joined = laptop.request(join_args("race")).await.unwrap();
    assert!(!joined.first_join);
    hold.release();
    tokio::time::timeout(WAIT, leave).await.unwrap().unwrap().unwrap();

    let seen = events_so_far(&mut laptop).await;
    assert!(seen.iter().any(|e| matches!(e, Event::MemberLeft(m) if m.user.as_str() == "bo")), "{seen:?}");
    ada.send(&r, "not for bo").await.unwrap();
    assert_eq!(message_texts(&events_so_far(&mut laptop).await), Vec::<String>::new());
    let history = laptop.request(History { room: r.clone(), before: None, after: None, limit: None }).await;
    assert!(matches!(history, Err(ClientError::Server(e)) if e.code == ErrorCode::NotMember));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_and_pins_are_visible_only_once_durable() {
    let dir = tempfile::tempdir().unwrap();
    let (server, hold) = held_server(&dir).await;
    let r = room("durable");
    let ada = server.client("ada", Codec::MsgPack).await;
    create_room(&ada, "durable", None).await.unwrap();
    let cy = Arc::new(server.client("cy", Codec::Json).await);

    hold.hold();
    let cy_joins = {
        let cy = cy.clone();
        tokio::spawn(async move { cy.request(join_args("durable")).await })
    };
    // Sent without waiting for its reply: ada's next requests are handled after
    // the pin has its place in the room's order.
    let note = Note::new("Film only.").unwrap();
    let pin =
        hearth_protocol::Op::from(AddPin { room: r.clone(), seq: None, note: Some(note), title: None, edit: None });
    ada.send_frame(pin.encode(Codec::MsgPack, hearth_protocol::RequestId(900))).await.unwrap();
    let members = ada.request(Members { room: r.clone() }).await.unwrap();
    assert_eq!(members.members.len(), 1, "cy is not shown before the join is durable");
    let rooms = ada.request(ListRooms::default()).await.unwrap();
    assert_eq!(rooms.rooms[0].members, 1, "nor counted");
    let rejoined = ada.request(join_args("durable")).await.unwrap();
    assert!(rejoined.pins.is_empty(), "the pin is not shown before it is durable");
    assert!(!cy_joins.is_finished(), "the join's reply waits for durability");
    hold.release();

    let joined = tokio::time::timeout(WAIT, cy_joins).await.unwrap().unwrap().unwrap();
    assert!(joined.first_join);
    // Ordered after the pin, so durable after it.
    ada.send(&r, "after the pin").await.unwrap();
    let members = ada.request(Members { room: r.clone() }).await.unwrap();
    assert_eq!(members.members.len(), 2);
    let rejoined = ada.request(join_args("durable")).await.unwrap();
    assert_eq!(rejoined.pins.len(), 1);
    let pin = &rejoined.pins[0];
    assert_eq!(pin.text.as_str(), "Film only.");
    let page = ada.request(History { room: r.clone(), before: None, after: None, limit: None }).await.unwrap();
    let pin_event_seq = page.events.iter().find_map(|e| match e {
        Event::Pin(p) => Some(p.seq),
        _ => None,
    });
    assert_eq!(Some(Seq(pin.pin.0)), pin_event_seq, "a pin's id is the seq of the event that made it");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_of_a_send_still_in_flight_gets_the_same_seq() {
    let dir = tempfile::tempdir().unwrap();
    let (server, hold) = held_server(&dir).await;
    let r = room("retry");
    let mut ada = server.client("ada", Codec::MsgPack).await;
    create_room(&ada, "retry", None).await.unwrap();
    ada.join(&r).await.unwrap();
    let ada = Arc::new(ada);
    let cmid = ClientMsgId::new("once").unwrap();
    hold.hold();
    let send = |ada: Arc<Client>| {
        let (r, cmid) = (r.clone(), cmid.clone());
        tokio::spawn(async move { ada.send_with_cmid(&r, "only once", &cmid).await })
    };
    let first = send(ada.clone());
    // The retry comes on another connection, as after a reconnect.
    let other = Arc::new(server.client("ada", Codec::Json).await);
    let retry = send(other.clone());
    // Ordered but not durable: history does not have it yet.
    let page = other.request(History { room: r.clone(), before: None, after: None, limit: None }).await.unwrap();
    assert!(message_texts(&page.events).is_empty());
    hold.release();
    let first = tokio::time::timeout(WAIT, first).await.unwrap().unwrap().unwrap();
    let retry = tokio::time::timeout(WAIT, retry).await.unwrap().unwrap().unwrap();
    assert_eq!(first, retry);
    let page = other.request(History { room: r.clone(), before: None, after: None, limit: None }).await.unwrap();
    assert_eq!(message_texts(&page.events), ["only once"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_switch_from_replay_to_live_has_no_gap_and_no_duplicate_with_events_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let (server, hold) = held_server(&dir).await;
    let r = room("switch");
    let writer = Arc::new(server.client("writer", Codec::MsgPack).await);
    create_room(&writer, "switch", None).await.unwrap();
    let mut reader = server.client("reader", Codec::MsgPack).await;
    reader.join(&r).await.unwrap();
    let position = reader.position(&r).unwrap();
    drop(reader);
    for n in 0..10 {
        writer.send(&r, &format!("m{n}")).await.unwrap();
    }
    // Ten more are ordered while the reader replays: they are in flight at the
    // switch and arrive live once durable.
    hold.hold();
    let in_flight = {
        let (writer, r) = (writer.clone(), r.clone());
        tokio::spawn(async move {
            for n in 10..20 {
                writer.send(&r, &format!("m{n}")).await.unwrap();
            }
        })
    };
    let mut resumed = server.client("reader", Codec::Json).await;
    let joined = resumed.join_since(&r, Some(position)).await.unwrap();
    assert_eq!(joined.resume, ResumeMode::Replay);
    hold.release();
    let got = collect_messages(&mut resumed, &r, 20).await.unwrap();
    tokio::time::timeout(WAIT, in_flight).await.unwrap().unwrap();
    assert_strictly_increasing(got.iter().map(|(s, _)| *s), "reader");
    let texts: Vec<String> = got.into_iter().map(|(_, t)| t).collect();
    assert_eq!(texts, (0..20).map(|n| format!("m{n}")).collect::<Vec<_>>());
    server.stop().await;
}

/// What a raw reader saw: timeline seqs, and `truncated` as (after, next).
#[derive(Debug, PartialEq)]
enum Seen {
    Event(u64),
    Truncated(u64, u64),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_dropped_during_a_slow_replay_is_told_as_truncated_never_a_hole() {
    // The memory store keeps 2,000 events. A member resumes from near the start
    // and does not read; the replay stalls on its full socket; meanwhile 2,000 more
    // messages push the events it has not been sent out of history.
    const HELD: usize = 2_000;
    let mut config = test_config(Storage::Ephemeral { history_limit: HELD });
    config.rooms.recent_events = 4;
    let server = TestServer::start(config).await;
    let r = room("rolling");
    let writer = Arc::new(server.client("writer", Codec::MsgPack).await);
    create_room(&writer, "rolling", None).await.unwrap();
    let mut reader = server.client("reader", Codec::MsgPack).await;
    let joined = reader.join(&r).await.unwrap();
    let since = Position { epoch: joined.room.epoch, seq: joined.room.head };
    drop(reader);
    // 8 KB each: a first wave of 16 MB is far more than the socket buffers hold,
    // so the replay stalls on them while the second wave drops what it has not sent.
    let text = "x".repeat(8_000);
    let wave = |writer: Arc<Client>| {
        let text = text.clone();
        let r = r.clone();
        async move {
            let mut tasks = Vec::new();
            for lane in 0..8 {
                let (writer, text, r) = (writer.clone(), text.clone(), r.clone());
                tasks.push(tokio::spawn(async move {
                    for _ in 0..HELD / 8 {
                        writer.send(&r, &text).await.unwrap();
                    }
                    let _ = lane;
                }));
            }
            for task in tasks {
                tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
            }
        }
    };
    wave(writer.clone()).await;

    let mut ws = raw_connect(&server, "reader").await;
    let join = Join { room: r.clone(), since: Some(since), invite: None };
    ws.send(Message::Binary(
        hearth_protocol::Op::from(join).encode(Codec::MsgPack, hearth_protocol::RequestId(1)).into(),
    ))
    .await
    .unwrap();
    // Read up to the join reply only; the replay behind it stalls.
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
        if let Ok(ServerFrame::Reply { id }) = decode_server_frame(Codec::MsgPack, &frame.into_data()) {
            assert_eq!(id.0, 1);
            break;
        }
    }
    wave(writer.clone()).await;
    let head = writer.send(&r, "last").await.unwrap().seq;

    let mut seen = Vec::new();
    while seen.last() != Some(&Seen::Event(head.0)) {
        let frame = tokio::time::timeout(WAIT, ws.next()).await.expect("the replay goes on").unwrap().unwrap();
        match decode_server_frame(Codec::MsgPack, &frame.into_data()).unwrap() {
            ServerFrame::Event(event) => match *event {
                Event::Truncated(t) => seen.push(Seen::Truncated(t.after.0, t.next.0)),
                event => seen.extend(event.seq().map(|s| Seen::Event(s.0))),
            },
            ServerFrame::Reply { .. } => {}
        }
    }
    let mut last = since.seq.0;
    let mut truncations = 0;
    for item in &seen {
        match *item {
            Seen::Event(seq) => {
                assert_eq!(seq, last + 1, "a silent hole after {last}");
                last = seq;
            }
            Seen::Truncated(after, next) => {
                assert_eq!(after, last, "truncated names the last event sent");
                assert!(next > after + 1);
                truncations += 1;
                last = next - 1;
            }
        }
    }
    // At least once: the second wave certainly dropped events the reader had not
    // been sent. More than once is right too when a page was read while the wave
    // was still dropping (the replay had not stalled yet, on a busy machine): each
    // gap found is its own `truncated`, and none is left silent.
    assert!(truncations >= 1, "history was dropped mid-replay, and the reader was told");
    server.stop().await;
}
