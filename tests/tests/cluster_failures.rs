//! Cluster mode when Redis fails: two nodes on a real Redis that the tests
//! stop, restart (with its append-only file, and empty), pause, and cut the
//! nodes' subscriptions off from. Every acknowledged message reaches every
//! member once and in order, a send that cannot be stored gets an error with a
//! retry time (never an acknowledgement), and members keep their connections.
//! (A node killed with SIGKILL is in the server crate's `cluster_crash` test.)

use std::time::Duration;

use hearth_cli::{Client, ClientError};
use hearth_protocol::event::TruncatedEvent;
use hearth_protocol::ops::{Appended, Join, Ping};
use hearth_protocol::{ClientMsgId, Codec, ErrorCode, Event, RoomId};
use hearth_testkit::{Persistence, RedisServer};
use hearth_tests::*;

/// Two nodes on `redis`, keys under `prefix`.
async fn two_nodes(redis: &RedisServer, prefix: &str) -> (TestServer, TestServer) {
    let config = cluster_config(&redis.url(), prefix);
    (TestServer::start(config.clone()).await, TestServer::start(config).await)
}

/// A room `name` made by ada on `a`, with bo joined on `b`.
async fn room_across(a: &TestServer, b: &TestServer, name: &str) -> (RoomId, Client, Client) {
    let r = room(name);
    let mut ada = a.client("ada", Codec::MsgPack).await;
    create_room(&ada, name, None).await.unwrap();
    ada.join(&r).await.unwrap();
    let mut bo = b.client("bo", Codec::Json).await;
    bo.join(&r).await.unwrap();
    (r, ada, bo)
}

/// Sends until the server takes it, retrying with the same client message id
/// (so a send that was stored but not answered is not stored twice). Returns
/// the reply and the errors met on the way, all of which must say when to retry.
async fn send_until_stored(client: &Client, r: &RoomId, text: &str) -> (Appended, Vec<ErrorCode>) {
    let cmid: ClientMsgId = client.new_cmid();
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut errors = Vec::new();
    loop {
        match client.send_with_cmid(r, text, &cmid).await {
            Ok(appended) => return (appended, errors),
            Err(ClientError::Server(error)) => {
                assert!(error.retry_after_ms.is_some(), "{error:?} says when to retry");
                errors.push(error.code);
            }
            Err(other) => panic!("{text}: the connection failed instead of an error reply: {other}"),
        }
        assert!(tokio::time::Instant::now() < deadline, "{text} was never stored: {errors:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every message of `r` in the room's history, in order.
async fn history_texts(client: &Client, r: &RoomId) -> Vec<String> {
    let events = client.history_all(r).await.unwrap();
    events
        .into_iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.text.to_string()),
            _ => None,
        })
        .collect()
}

fn texts(prefix: &str, n: std::ops::Range<usize>) -> Vec<String> {
    n.map(|i| format!("{prefix} {i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_gets_errors_with_retry_times_and_nothing_acknowledged_is_lost() {
    let mut redis = RedisServer::start_with(Persistence::AofAlways, false).await;
    let (a, b) = two_nodes(&redis, "outage").await;
    let (r, ada, mut bo) = room_across(&a, &b, "outage").await;
    for text in texts("before", 0..20) {
        ada.send(&r, &text).await.unwrap();
    }

    redis.kill().await;
    let cmid = ada.new_cmid();
    match ada.send_with_cmid(&r, "during", &cmid).await {
        // Refused before it reached Redis, or sent into the connection that
        // broke (Redis may have run it just before dying): retried below
        // with the same cmid either way.
        Err(ClientError::Server(error)) => {
            assert!(matches!(error.code, ErrorCode::Overloaded | ErrorCode::OutcomeUnknown), "{error:?}");
            assert!(error.retry_after_ms.is_some(), "{error:?}");
        }
        other => panic!("a send with Redis down must fail clearly, got {other:?}"),
    }
    // The members keep their connections meanwhile.
    ada.request(Ping {}).await.unwrap();
    bo.request(Ping {}).await.unwrap();

    // Back with its append-only file: nodes reconnect and resubscribe by themselves.
    redis.restart().await;
    let mut sent = vec!["during".to_string()];
    sent.extend(texts("after", 0..10));
    for text in &sent {
        send_until_stored(&ada, &r, text).await;
    }
    let mut want = texts("before", 0..20);
    want.extend(sent);
    let got = collect_messages(&mut bo, &r, want.len()).await.unwrap();
    assert_strictly_increasing(got.iter().map(|(s, _)| *s), "bo");
    assert_eq!(got.into_iter().map(|(_, t)| t).collect::<Vec<_>>(), want);
    assert_eq!(history_texts(&ada, &r).await, want, "history kept every acknowledged message");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_redis_delays_or_refuses_sends_and_loses_none() {
    let redis = RedisServer::start().await;
    let (a, b) = two_nodes(&redis, "pause").await;
    let (r, ada, mut bo) = room_across(&a, &b, "pause").await;
    // Longer than the nodes' Redis timeout (500 ms): some sends time out.
    redis.must(&["CLIENT", "PAUSE", "1500", "ALL"]).await;
    let mut errors = Vec::new();
    for text in texts("paused", 0..10) {
        errors.extend(send_until_stored(&ada, &r, &text).await.1);
    }
    // The one that was sent and timed out may have been stored (Redis runs it
    // when the pause ends): its outcome is unknown, and a retry with the same
    // cmid stores it once. The ones refused meanwhile never reached Redis.
    assert!(errors.contains(&ErrorCode::OutcomeUnknown), "a send timed out: {errors:?}");
    assert!(errors.iter().all(|e| matches!(e, ErrorCode::Overloaded | ErrorCode::OutcomeUnknown)), "{errors:?}");
    let got = collect_messages(&mut bo, &r, 10).await.unwrap();
    assert_eq!(got.into_iter().map(|(_, t)| t).collect::<Vec<_>>(), texts("paused", 0..10));
    assert_eq!(history_texts(&ada, &r).await, texts("paused", 0..10), "each stored once");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_killed_by_redis_is_remade_and_what_it_missed_is_delivered() {
    let redis = RedisServer::start().await;
    let (a, b) = two_nodes(&redis, "cut").await;
    let (r, ada, mut bo) = room_across(&a, &b, "cut").await;
    ada.send(&r, "first").await.unwrap();
    // Both nodes lose their subscriptions; messages go on while they remake them.
    redis.must(&["CLIENT", "KILL", "TYPE", "pubsub"]).await;
    let mut want = vec!["first".to_string()];
    for text in texts("cut", 0..20) {
        ada.send(&r, &text).await.unwrap();
        want.push(text);
    }
    let got = collect_messages(&mut bo, &r, want.len()).await.unwrap();
    assert_strictly_increasing(got.iter().map(|(s, _)| *s), "bo");
    assert_eq!(got.into_iter().map(|(_, t)| t).collect::<Vec<_>>(), want);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_cut_at_the_output_buffer_limit_are_repaired() {
    let redis = RedisServer::start().await;
    let (a, b) = two_nodes(&redis, "buffer").await;
    let (r, ada, mut bo) = room_across(&a, &b, "buffer").await;
    // A subscriber may have 1 byte queued past Redis's 16 KiB reply buffer:
    // bursts of large messages from several senders at once cut the nodes off,
    // again and again while the burst lasts.
    redis.must(&["CONFIG", "SET", "client-output-buffer-limit", "pubsub 1 1 0"]).await;
    const SENDERS: usize = 4;
    const EACH: usize = 25;
    let big = "x".repeat(7_000);
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let client = a.client("ada", Codec::MsgPack).await;
        let (r, big) = (r.clone(), big.clone());
        senders.push(tokio::spawn(async move {
            for n in 0..EACH {
                client.send(&r, &format!("{s}/{n} {big}")).await.unwrap();
            }
        }));
    }
    for sender in senders {
        tokio::time::timeout(WAIT, sender).await.unwrap().unwrap();
    }
    redis.must(&["CONFIG", "SET", "client-output-buffer-limit", "pubsub 32mb 8mb 60"]).await;
    // Nothing more is sent: the nodes' reconnects and probes find the holes.
    let got = collect_messages(&mut bo, &r, SENDERS * EACH).await.unwrap();
    assert_strictly_increasing(got.iter().map(|(s, _)| *s), "bo");
    for s in 0..SENDERS {
        let mine: Vec<&str> = got.iter().filter_map(|(_, t)| t.strip_prefix(&format!("{s}/"))).collect();
        assert_eq!(mine.len(), EACH, "every message of sender {s}, once");
    }
    drop(ada);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_gives_the_room_a_new_epoch_and_members_a_truncated() {
    let mut redis = RedisServer::start().await;
    let (a, b) = two_nodes(&redis, "amnesia").await;
    let (r, ada, mut bo) = room_across(&a, &b, "amnesia").await;
    for text in texts("old", 0..5) {
        ada.send(&r, &text).await.unwrap();
    }
    drop(collect_messages(&mut bo, &r, 5).await.unwrap());
    let old = bo.position(&r).unwrap();

    redis.restart_empty().await;
    // bo is told, live, that what came before is gone; the seq does not restart.
    let deadline = tokio::time::Instant::now() + WAIT;
    let truncated: TruncatedEvent = loop {
        assert!(tokio::time::Instant::now() < deadline, "no truncated event");
        if let Some(Event::Truncated(t)) = bo.next_event_within(WAIT).await.unwrap() {
            break t;
        }
    };
    assert_eq!(truncated.room, r);
    assert!(truncated.next.0 > old.seq.0, "seq goes on after {old:?}: {truncated:?}");
    assert_ne!(truncated.epoch, old.epoch, "the event carries the room's new epoch");
    // The room is there again, with its members, and goes on.
    let (after, _) = send_until_stored(&ada, &r, "new").await;
    assert!(after.seq.0 > old.seq.0, "no seq is reused: {after:?} after {old:?}");
    let got = collect_messages(&mut bo, &r, 1).await.unwrap();
    assert_eq!(got[0].1, "new");
    // A resume from before is answered truncated: the old epoch is gone.
    let mut again = b.client("bo", Codec::MsgPack).await;
    let joined = again.join_since(&r, Some(old)).await.unwrap();
    assert_ne!(joined.room.epoch, old.epoch);
    assert_eq!(joined.resume, hearth_protocol::ops::ResumeMode::Truncated);
    assert_eq!(joined.room.epoch, truncated.epoch);
    // bo, who stayed connected through it, resumes from where the events
    // left him, with no join or history first: nothing is missing.
    let here = bo.position(&r).unwrap();
    assert_eq!(here.epoch, truncated.epoch);
    ada.send(&r, "while bo reconnects").await.unwrap();
    let mut resumed = b.client("bo", Codec::Json).await;
    let joined = resumed.join_since(&r, Some(here)).await.unwrap();
    assert_eq!(joined.resume, hearth_protocol::ops::ResumeMode::Replay);
    assert_eq!(collect_messages(&mut resumed, &r, 1).await.unwrap()[0].1, "while bo reconnects");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_knows_redis_is_down_refuses_at_once_and_answers_pings() {
    use futures_util::{SinkExt, StreamExt};
    use hearth_protocol::codec::{ServerFrame, decode_server_frame};
    use hearth_protocol::ops::SendMessage;
    use hearth_protocol::{Op, RequestId, Text};
    use tokio_tungstenite::tungstenite::Message;
    let mut redis = RedisServer::start_with(Persistence::AofAlways, false).await;
    let mut config = cluster_config(&redis.url(), "down");
    if let hearth_server::Storage::Redis(r) = &mut config.storage {
        // As in production: a call waits up to 2 s for Redis.
        r.timeout = Duration::from_secs(2);
    }
    let a = TestServer::start(config).await;
    let r = room("down");
    let ada = a.client("ada", Codec::MsgPack).await;
    create_room(&ada, "down", None).await.unwrap();
    let mut ws = raw_connect(&a, "ada").await;
    let encode = |op: Op, id: u64| Message::Binary(op.encode(Codec::MsgPack, RequestId(id)).into());
    ws.send(encode(Op::from(Join { room: r.clone(), since: None, invite: None }), 1)).await.unwrap();
    // Joined before Redis goes: the join's reply first.
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next()).await.expect("in time").expect("open").expect("a frame");
        let Message::Binary(bytes) = frame else { continue };
        if matches!(decode_server_frame(Codec::MsgPack, &bytes), Ok(ServerFrame::Reply { .. })) {
            break;
        }
    }

    redis.kill().await;
    // The node learns Redis is gone from the first call that fails.
    assert!(matches!(ada.send(&r, "first").await, Err(ClientError::Server(_))));
    // Then eight pipelined sends and a ping: every one answered at once — the
    // sends refused with a time to retry, nothing held for seconds behind
    // reconnection attempts, nothing acknowledged later.
    let started = std::time::Instant::now();
    for n in 0..8u64 {
        let send = SendMessage {
            room: r.clone(),
            text: Text::new(format!("during {n}")).unwrap(),
            cmid: ClientMsgId::new(format!("d{n}")).unwrap(),
            thread: None,
        };
        ws.send(encode(Op::from(send), 100 + n)).await.unwrap();
    }
    ws.send(encode(Op::from(Ping {}), 999)).await.unwrap();
    let mut answered = std::collections::BTreeMap::new();
    while answered.len() < 9 {
        let frame = tokio::time::timeout(WAIT, ws.next()).await.expect("in time");
        let frame = frame.unwrap_or_else(|| panic!("closed after {answered:?}")).expect("a frame");
        let Message::Binary(bytes) = frame else { panic!("{frame:?} after {answered:?}") };
        let Ok(ServerFrame::Reply { id }) = decode_server_frame(Codec::MsgPack, &bytes) else { continue };
        let value: serde_json::Value = rmp_serde::from_slice(&bytes).unwrap();
        answered.insert(id.0, (started.elapsed(), value));
    }
    for (id, (after, value)) in &answered {
        if *id == 999 {
            assert!(value.get("ok").is_some(), "the ping is answered: {value}");
        } else {
            assert_eq!(value["err"]["code"], "overloaded", "send {id} is refused, not stored: {value}");
            assert!(value["err"]["retry_after_ms"].as_u64().is_some_and(|ms| ms <= 1000), "{value}");
        }
        // Not a speed claim: a node waiting on Redis for each would take the
        // 2 s timeout (or its reconnection's back-off) per request, 16 s for eight.
        assert!(*after < Duration::from_secs(4), "request {id} waited {after:?}: the node did not fail fast");
    }
    // Back: the node finds out by itself and stores again.
    redis.restart().await;
    send_until_stored(&ada, &r, "after").await;
    let stored = history_texts(&ada, &r).await;
    assert!(!stored.iter().any(|t| t.starts_with("during")), "a refused send is never stored: {stored:?}");
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_coming_back_after_redis_lost_its_data_is_retried_not_missing() {
    let redis = RedisServer::start().await;
    let (a, b) = two_nodes(&redis, "flushed").await;
    let (r, ada, _bo) = room_across(&a, &b, "flushed").await;
    ada.send(&r, "before").await.unwrap();
    // Redis loses everything without a restart; the nodes' connections stay up.
    redis.must(&["FLUSHALL"]).await;
    // A send through a node that has the room, and a join through the other
    // by someone new (that node may not have the room in memory): until it is
    // back, each is told to retry — never that the room does not exist.
    let (_, errors) = send_until_stored(&ada, &r, "after").await;
    assert!(!errors.contains(&ErrorCode::NotFound), "{errors:?}");
    let cy = b.client("cy", Codec::Json).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match cy.request(Join { room: r.clone(), since: None, invite: None }).await {
            Ok(_) => break,
            Err(ClientError::Server(error)) => {
                assert_ne!(error.code, ErrorCode::NotFound, "{error}");
                assert!(error.retry_after_ms.is_some(), "{error:?}");
            }
            Err(other) => panic!("{other}"),
        }
        assert!(tokio::time::Instant::now() < deadline, "the room never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A room that never existed is still not found, once the dust settles.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match cy.request(Join { room: room("never-was"), since: None, invite: None }).await {
            Err(ClientError::Server(error)) if error.code == ErrorCode::NotFound => break,
            Err(ClientError::Server(error)) => assert_eq!(error.code, ErrorCode::Overloaded, "{error}"),
            other => panic!("a room nobody made: {other:?}"),
        }
        assert!(tokio::time::Instant::now() < deadline, "never-was never answered not_found");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_library_retries_a_send_with_its_cmid_through_a_stalled_redis() {
    use hearth_protocol::Text;
    use hearth_protocol::ops::SendMessage;
    let redis = RedisServer::start().await;
    let (a, b) = two_nodes(&redis, "stall").await;
    let (r, ada, mut bo) = room_across(&a, &b, "stall").await;
    // What `hearth send` and the UI do: one cmid per message, retried while
    // the server says to. Longer than the nodes' Redis timeout (500 ms).
    redis.must(&["CLIENT", "PAUSE", "1500", "ALL"]).await;
    for text in texts("stalled", 0..5) {
        let send = SendMessage { room: r.clone(), text: Text::new(text).unwrap(), cmid: ada.new_cmid(), thread: None };
        ada.send_reliably(send).await.expect("stored in the end, without an error shown");
    }
    let got = collect_messages(&mut bo, &r, 5).await.unwrap();
    assert_eq!(got.into_iter().map(|(_, t)| t).collect::<Vec<_>>(), texts("stalled", 0..5));
    assert_eq!(history_texts(&ada, &r).await, texts("stalled", 0..5), "each stored once");
    a.stop().await;
    b.stop().await;
}
