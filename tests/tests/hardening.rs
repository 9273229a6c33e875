//! What outside clients found: each defect of the hardening pass, over real
//! sockets, with bounded waits.

use hearth_protocol::ops::{History, Join, ResumeMode};
use hearth_protocol::{Codec, Position, Seq};
use hearth_server::Storage;
use hearth_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_after_a_huge_seq_is_an_empty_page() {
    let dir = tempfile::tempdir().unwrap();
    huge_seq_history(TestServer::durable(dir.path().to_path_buf()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_after_a_huge_seq_is_an_empty_page_in_cluster_mode() {
    let redis = hearth_testkit::RedisServer::start().await;
    huge_seq_history(TestServer::start(cluster_config(&redis.url(), "huge")).await).await;
}

/// Seqs past what SQLite's integers and Redis's stream ids hold.
async fn huge_seq_history(server: TestServer) {
    let r = room("huge");
    let ada = server.client("ada", Codec::MsgPack).await;
    create_room(&ada, "huge", None).await.unwrap();
    for n in 0..3 {
        ada.send(&r, &format!("m{n}")).await.unwrap();
    }
    for after in [1u64 << 63, u64::MAX] {
        let page = ada.request(History { room: r.clone(), before: None, after: Some(Seq(after)), limit: None }).await;
        let page = page.unwrap();
        assert!(page.events.is_empty(), "after {after}: {:?}", page.events);
        assert!(!page.more);
    }
    for before in [Seq(0), Seq(1), Seq(u64::MAX)] {
        let page = ada.request(History { room: r.clone(), before: Some(before), after: None, limit: None }).await;
        let held = page.unwrap().events.len();
        assert_eq!(held, if before == Seq(u64::MAX) { 4 } else { 0 }, "before {before}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_history_holds_and_what_a_resume_serves_agree() {
    let server = TestServer::start(test_config(Storage::Ephemeral { history_limit: 10 })).await;
    let r = room("short");
    let ada = server.client("ada", Codec::MsgPack).await;
    create_room(&ada, "short", None).await.unwrap();
    let epoch = ada.request(Join { room: r.clone(), since: None, invite: None }).await.unwrap().room.epoch;
    for n in 0..30 {
        ada.send(&r, &format!("m{n}")).await.unwrap();
    }
    let page = ada.request(History { room: r.clone(), before: None, after: None, limit: None }).await.unwrap();
    let oldest = page.oldest;
    assert_eq!(oldest, Seq(22), "the newest 10 of 31 events are held");
    // From before what is held: truncated. From just inside it: replayed.
    let mut late = server.client("ada", Codec::Json).await;
    let before = Position { epoch, seq: Seq(12) };
    assert_eq!(late.join_since(&r, Some(before)).await.unwrap().resume, ResumeMode::Truncated);
    let mut inside = server.client("ada", Codec::Json).await;
    let edge = Position { epoch, seq: Seq(oldest.0 - 1) };
    assert_eq!(inside.join_since(&r, Some(edge)).await.unwrap().resume, ResumeMode::Replay);
    let replayed = collect_messages(&mut inside, &r, 10).await.unwrap();
    assert_eq!(replayed.first().map(|m| m.0), Some(oldest.0));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_started_by_the_client_gets_a_close_frame_back() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCode;
    let server = TestServer::ephemeral().await;
    for code in [WsCode::Normal, WsCode::Away] {
        let mut ws = raw_connect(&server, "ada").await;
        let _hello = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
        ws.send(Message::Close(Some(CloseFrame { code, reason: "bye".into() }))).await.unwrap();
        let reply = tokio::time::timeout(WAIT, async {
            while let Some(message) = ws.next().await {
                match message {
                    Ok(Message::Close(frame)) => return Ok(frame),
                    Ok(_) => continue,
                    Err(error) => return Err(error),
                }
            }
            panic!("the stream ended without a close frame")
        })
        .await
        .expect("the server answers in time");
        let frame = reply.expect("a clean close, not a dropped connection");
        assert_eq!(frame.map(|f| f.code), Some(code), "the server echoes the client's code");
    }
    server.stop().await;
}

/// Sends raw bytes and reads the whole HTTP answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_and_bad_upgrades_get_an_http_answer() {
    let server = TestServer::ephemeral().await;
    let root = http(&server, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(root.starts_with("HTTP/1.1 200"), "{root}");
    assert!(
        root.contains("Hearth") && root.contains("PROTOCOL.md"),
        "the page, and what it says without script: {root}"
    );
    assert!(http(&server, "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n").await.starts_with("HTTP/1.1 404"));
    let no_key = http(
        &server,
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await;
    assert!(no_key.starts_with("HTTP/1.1 400") && no_key.contains("Sec-WebSocket-Key"), "{no_key}");
    let old_version = http(
        &server,
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
    )
    .await;
    assert!(
        old_version.starts_with("HTTP/1.1 426") && old_version.contains("sec-websocket-version: 13"),
        "{old_version}"
    );
    // The server still serves WebSocket clients.
    server.client("ada", Codec::MsgPack).await.request(hearth_protocol::ops::Ping {}).await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_insensitive() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let server = TestServer::ephemeral().await;
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let mut request = server.url().into_client_request().unwrap();
        request.headers_mut().insert("Authorization", format!("{scheme} {}", server.token("ada")).parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let first = tokio::time::timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
        let frame = first.into_data();
        let hearth_protocol::codec::ServerFrame::Event(event) =
            hearth_protocol::codec::decode_server_frame(Codec::MsgPack, &frame).unwrap()
        else {
            panic!("{scheme}: expected hello, got a reply");
        };
        match *event {
            hearth_protocol::Event::Hello(hello) => assert_eq!(hello.user.as_str(), "ada", "{scheme}"),
            other => panic!("{scheme}: expected hello, got {other:?}"),
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_page_fits_in_a_frame_in_either_codec() {
    let server = TestServer::ephemeral().await;
    let r = room("escapes");
    let ada = server.client("ada", Codec::MsgPack).await;
    create_room(&ada, "escapes", None).await.unwrap();
    // Each escapes to six JSON bytes per byte: 48 KB a message, 2.4 MB for 50.
    let hostile = "\u{1}".repeat(8_000);
    for _ in 0..50 {
        ada.send(&r, &hostile).await.unwrap();
    }
    for codec in [Codec::Json, Codec::MsgPack] {
        let reader = server.client("ada", codec).await;
        let (mut seen, mut before) = (0usize, None);
        loop {
            let page = reader.request(History { room: r.clone(), before, after: None, limit: Some(100) }).await;
            let page = page.unwrap_or_else(|e| panic!("{codec:?}: the page arrives: {e}"));
            seen += page.events.iter().filter(|e| matches!(e, hearth_protocol::Event::Message(_))).count();
            match (page.more, page.events.first().and_then(|e| e.seq())) {
                (true, Some(first)) => before = Some(first),
                _ => break,
            }
        }
        assert_eq!(seen, 50, "{codec:?}: paging reaches every message");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_from_the_recent_events_stays_within_the_queue_bound() {
    // A queue bound far smaller than the recent events a resume replays.
    let mut config = test_config(Storage::Ephemeral { history_limit: 10_000 });
    config.outbound_queue_bytes = 64 * 1024;
    config.rooms.recent_events = 256;
    let server = TestServer::start(config).await;
    let r = room("busy");
    let writer = server.client("writer", Codec::MsgPack).await;
    create_room(&writer, "busy", None).await.unwrap();
    let mut reader = server.client("reader", Codec::MsgPack).await;
    reader.join(&r).await.unwrap();
    let position = reader.position(&r).unwrap();
    drop(reader);
    let text = "r".repeat(4_000);
    for _ in 0..200 {
        writer.send(&r, &text).await.unwrap();
    }
    let mut resumed = server.client("reader", Codec::MsgPack).await;
    assert_eq!(resumed.join_since(&r, Some(position)).await.unwrap().resume, ResumeMode::Replay);
    // Live messages right after the resume: the old burst of 800 KB into a 64 KB
    // queue closed the reader as a slow consumer here.
    for n in 0..20 {
        writer.send(&r, &format!("live {n}")).await.unwrap();
    }
    let got = collect_messages(&mut resumed, &r, 220).await.expect("the reader is not closed");
    assert_strictly_increasing(got.iter().map(|(s, _)| *s), "reader");
    assert_eq!(got.last().map(|(_, t)| t.as_str()), Some("live 19"));
    server.stop().await;
}

/// A server with production limits, some lowered to be reached quickly.
async fn limited(change: impl FnOnce(&mut hearth_server::Limits)) -> TestServer {
    let mut config = test_config(Storage::Ephemeral { history_limit: 10_000 });
    config.limits = hearth_server::Limits::default();
    change(&mut config.limits);
    TestServer::start(config).await
}

fn error_code<T: std::fmt::Debug>(result: Result<T, hearth_cli::ClientError>) -> hearth_protocol::ErrorCode {
    match result {
        Err(hearth_cli::ClientError::Server(error)) => error.code,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_member_flooding_a_room_disconnects_no_one_else() {
    use futures_util::SinkExt;
    use hearth_protocol::ops::SendMessage;
    use hearth_protocol::{ClientMsgId, Op, RequestId, Text};
    use tokio_tungstenite::tungstenite::Message;
    let server = limited(|_| {}).await;
    let r = room("calm");
    let owner = server.client("owner", Codec::MsgPack).await;
    create_room(&owner, "calm", None).await.unwrap();
    let mut readers = Vec::new();
    for n in 0..98 {
        let mut reader =
            server.client(&format!("reader{n}"), if n % 2 == 0 { Codec::MsgPack } else { Codec::Json }).await;
        reader.join(&r).await.unwrap();
        readers.push(reader);
    }
    let flooder_client = server.client("flooder", Codec::MsgPack).await;
    flooder_client.request(Join { room: r.clone(), since: None, invite: None }).await.unwrap();
    drop(flooder_client);
    // 1,000 sends of 8 KB, written as fast as the socket takes them.
    let mut flooder = raw_connect(&server, "flooder").await;
    let text = Text::new("f".repeat(8_000)).unwrap();
    for n in 0..1_000u64 {
        let send = SendMessage {
            room: r.clone(),
            text: text.clone(),
            cmid: ClientMsgId::new(format!("f{n}")).unwrap(),
            thread: None,
        };
        if flooder.send(Message::Binary(Op::from(send).encode(Codec::MsgPack, RequestId(n + 1)).into())).await.is_err()
        {
            break; // closed for flooding
        }
    }
    assert_eq!(read_close_code(&mut flooder).await, Some(hearth_protocol::CloseCode::RateLimited.code()));
    // Everyone else is still there and hears what comes next.
    owner.send(&r, "after the flood").await.unwrap();
    for (n, reader) in readers.iter_mut().enumerate() {
        let mut flood = 0;
        loop {
            match reader.next_event_within(WAIT).await.unwrap_or_else(|e| panic!("reader{n}: {e}")) {
                Some(hearth_protocol::Event::Message(m)) if m.text.as_str() == "after the flood" => break,
                Some(hearth_protocol::Event::Message(_)) => flood += 1,
                Some(_) => {}
                None => panic!("reader{n} was disconnected: {:?}", reader.close_info()),
            }
        }
        // The burst got through, the rest was refused.
        assert!((1..=100).contains(&flood), "reader{n} saw {flood} flood messages");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_rate_get_rate_limited_with_a_retry_time() {
    let server = limited(|l| {
        l.requests_per_sec = 5;
        l.request_burst = 5;
    })
    .await;
    let ada = server.client("ada", Codec::Json).await;
    let mut refused = None;
    for _ in 0..10 {
        if let Err(hearth_cli::ClientError::Server(error)) = ada.request(hearth_protocol::ops::Ping {}).await {
            refused = Some(error);
            break;
        }
    }
    let error = refused.expect("the sixth ping in a burst of five is refused");
    assert_eq!(error.code, hearth_protocol::ErrorCode::RateLimited);
    assert!(error.retry_after_ms.is_some_and(|ms| ms > 0 && ms <= 1_000), "{error:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelining_past_the_depth_gets_errors_not_a_slow_consumer_close() {
    use futures_util::{SinkExt, StreamExt};
    use hearth_protocol::codec::{ServerFrame, decode_server_frame};
    use hearth_protocol::ops::{Ping, SendMessage};
    use hearth_protocol::{ClientMsgId, Op, RequestId, Text};
    use tokio_tungstenite::tungstenite::Message;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(Storage::Dir(dir.path().to_path_buf()));
    config.limits.max_in_flight = 32;
    let hold = config.commit_hold.clone();
    let server = TestServer::start(config).await;
    let r = room("pipe");
    let owner = server.client("ada", Codec::MsgPack).await;
    create_room(&owner, "pipe", None).await.unwrap();
    let mut ws = raw_connect(&server, "ada").await;
    let encode = |op: Op, id: u64| Message::Binary(op.encode(Codec::MsgPack, RequestId(id)).into());
    ws.send(encode(Op::from(Join { room: r.clone(), since: None, invite: None }), 1)).await.unwrap();
    // Commits held: every send stays in flight. 40 of 8 KB pipelined, then a ping.
    hold.hold();
    let text = Text::new("p".repeat(8_000)).unwrap();
    for n in 0..40u64 {
        let send = SendMessage {
            room: r.clone(),
            text: text.clone(),
            cmid: ClientMsgId::new(format!("p{n}")).unwrap(),
            thread: None,
        };
        ws.send(encode(Op::from(send), 100 + n)).await.unwrap();
    }
    ws.send(encode(Op::from(Ping {}), 999)).await.unwrap();
    let (mut refused, mut stored) = (0, 0);
    let mut released = false;
    while stored < 32 {
        let frame = tokio::time::timeout(WAIT, ws.next()).await.expect("in time").expect("open").expect("a frame");
        let Message::Binary(bytes) = frame else { panic!("closed or unexpected: {frame:?}") };
        let Ok(ServerFrame::Reply { id }) = decode_server_frame(Codec::MsgPack, &bytes) else { continue };
        let value: serde_json::Value = rmp_serde::from_slice(&bytes).unwrap();
        match id.0 {
            999 => {
                // Every send was handled before the ping: release the commits.
                assert_eq!(refused, 8, "the 33rd to 40th sends are refused at once");
                hold.release();
                released = true;
            }
            100..=139 if value.get("err").is_some() => {
                assert_eq!(value["err"]["code"], "rate_limited");
                refused += 1;
            }
            100..=139 => {
                assert!(released, "nothing is acknowledged while commits are held");
                stored += 1;
            }
            _ => {}
        }
    }
    server.stop().await;
}

fn assert_refused_with_4010(refused: Result<hearth_cli::Client, hearth_cli::ClientError>, what: &str) {
    match refused {
        Err(hearth_cli::ClientError::Closed(Some(close))) => {
            assert_eq!(
                close.hearth_code(),
                Some(hearth_protocol::CloseCode::TooManyConnections),
                "{what}: {}",
                close.reason
            )
        }
        other => panic!("{what} is refused: {:?}", other.map(|_| ())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_user_are_bounded() {
    let server = limited(|l| l.connections_per_user = 2).await;
    let _kept = [server.client("ada", Codec::MsgPack).await, server.client("ada", Codec::Json).await];
    let third = hearth_cli::Client::connect(server.options("ada", Codec::MsgPack)).await;
    assert_refused_with_4010(third, "a third connection of ada");
    // Another user is not affected.
    server.client("bo", Codec::MsgPack).await.request(hearth_protocol::ops::Ping {}).await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_address_are_bounded_and_freed_on_close() {
    let server = limited(|l| l.connections_per_ip = 3).await;
    let mut kept = vec![
        server.client("ada", Codec::MsgPack).await,
        server.client("bo", Codec::MsgPack).await,
        server.client("cy", Codec::MsgPack).await,
    ];
    let fourth = hearth_cli::Client::connect(server.options("dee", Codec::MsgPack)).await;
    assert_refused_with_4010(fourth, "a fourth connection from 127.0.0.1");
    // A place frees up once a connection (and the refused one) has closed.
    drop(kept.pop());
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match hearth_cli::Client::connect(server.options("dee", Codec::MsgPack)).await {
            Ok(_) => break,
            Err(error) if tokio::time::Instant::now() < deadline => {
                let _ = error;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(error) => panic!("dee never got the freed place: {error}"),
        }
    }
    server.stop().await;
}

fn rooms_pins_and_receivers(l: &mut hearth_server::Limits) {
    l.rooms_per_user = 3;
    l.pins_per_room = 2;
    l.receivers_per_room = 2;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_pins_and_receivers_have_limits_and_rooms_are_listed_in_pages() {
    limits_and_pages(limited(rooms_pins_and_receivers).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_pins_and_receivers_have_limits_and_rooms_are_listed_in_pages_in_cluster_mode() {
    let redis = hearth_testkit::RedisServer::start().await;
    let mut config = cluster_config(&redis.url(), "limits");
    config.limits = hearth_server::Limits::default();
    rooms_pins_and_receivers(&mut config.limits);
    limits_and_pages(TestServer::start(config).await).await;
}

async fn limits_and_pages(server: TestServer) {
    use hearth_protocol::ops::{AddPin, ListRooms};
    let ada = server.client("ada", Codec::MsgPack).await;
    for name in ["r1", "r2", "r3"] {
        create_room(&ada, name, None).await.unwrap();
    }
    let fourth = create_room(&ada, "r4", None).await.map_err(|e| e.downcast::<hearth_cli::ClientError>().unwrap());
    assert_eq!(error_code(fourth), hearth_protocol::ErrorCode::LimitReached);
    let bo = server.client("bo", Codec::MsgPack).await;
    create_room(&bo, "r4", None).await.unwrap();
    // Four rooms, two a page.
    let first = ada.request(ListRooms { after: None, limit: Some(2) }).await.unwrap();
    assert!(first.more);
    let second =
        ada.request(ListRooms { after: first.rooms.last().map(|r| r.room.clone()), limit: Some(2) }).await.unwrap();
    let names: Vec<String> = first.rooms.iter().chain(&second.rooms).map(|r| r.room.to_string()).collect();
    assert_eq!(names, ["r1", "r2", "r3", "r4"]);
    assert!(!second.more);
    // Pins.
    let note = |t: &str| Some(hearth_protocol::Note::new(t).unwrap());
    for t in ["mission", "rules"] {
        ada.request(AddPin { room: room("r1"), seq: None, note: note(t), title: None, edit: None }).await.unwrap();
    }
    let third = ada.request(AddPin { room: room("r1"), seq: None, note: note("faq"), title: None, edit: None }).await;
    assert_eq!(error_code(third), hearth_protocol::ErrorCode::LimitReached);
    // Receivers: two connections may receive r1, the third is told.
    let mut a = server.client("ada", Codec::MsgPack).await;
    let mut b = server.client("bo", Codec::MsgPack).await;
    let mut c = server.client("cy", Codec::MsgPack).await;
    a.join(&room("r1")).await.unwrap();
    b.join(&room("r1")).await.unwrap();
    assert_eq!(error_code(c.join(&room("r1")).await), hearth_protocol::ErrorCode::LimitReached);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_of_pings_and_of_empty_fragments_are_closed() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let server = limited(|_| {}).await;
    let mut pinger = raw_connect(&server, "pinger").await;
    for _ in 0..50_000 {
        if pinger.send(Message::Ping(Default::default())).await.is_err() {
            break;
        }
    }
    assert_eq!(read_close_code(&mut pinger).await, Some(hearth_protocol::CloseCode::RateLimited.code()));
    // A message begun and never finished: empty continuation frames forever.
    let mut fragmenter = raw_connect(&server, "fragmenter").await;
    let start = Frame::message(Vec::new(), OpCode::Data(Data::Binary), false);
    fragmenter.send(Message::Frame(start)).await.unwrap();
    for _ in 0..200_000 {
        let more = Frame::message(Vec::new(), OpCode::Data(Data::Continue), false);
        if fragmenter.send(Message::Frame(more)).await.is_err() {
            break;
        }
    }
    assert_eq!(read_close_code(&mut fragmenter).await, Some(hearth_protocol::CloseCode::RateLimited.code()));
    server.client("ada", Codec::MsgPack).await.request(hearth_protocol::ops::Ping {}).await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_the_server_cannot_read_count_against_the_rate_too() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let server = limited(|_| {}).await;
    // An unknown op, a missing op, bad arguments: each gets an error reply with
    // its id, and none of them is free.
    for (what, request) in [
        ("an unknown op", serde_json::json!({"op": "nope"})),
        ("no op", serde_json::json!({"room": "x"})),
        ("bad arguments", serde_json::json!({"op": "send", "room": 7})),
    ] {
        let ws = raw_connect(&server, "flooder").await;
        // `in_a_row`: refusals since the last answer — what closes it.
        let (mut answered, mut in_a_row, mut close) = (0, 0, None);
        // Written by one task while this one reads, as a pipelining client would.
        let (mut sink, mut stream) = ws.split();
        let writer = tokio::spawn(async move {
            for n in 1..=20_000u64 {
                let mut request = request.clone();
                request["id"] = n.into();
                let bytes = rmp_serde::to_vec_named(&request).unwrap();
                if sink.send(Message::Binary(bytes.into())).await.is_err() {
                    break;
                }
            }
        });
        let reading = async {
            while let Some(Ok(frame)) = stream.next().await {
                match frame {
                    Message::Binary(bytes) => {
                        let value: serde_json::Value = rmp_serde::from_slice(&bytes).unwrap();
                        match value["err"]["code"].as_str() {
                            Some("rate_limited") => in_a_row += 1,
                            Some(_) => {
                                answered += 1;
                                in_a_row = 0;
                            }
                            None => {}
                        }
                    }
                    Message::Close(frame) => {
                        close = frame.map(|f| u16::from(f.code));
                        break;
                    }
                    _ => {}
                }
            }
        };
        tokio::time::timeout(WAIT, reading).await.expect("the server closes the flood in time");
        writer.abort();
        // The burst (200) is answered as asked; past it they are refused, and
        // the 100th refusal in a row closes the connection instead of a reply.
        // (On a loaded machine the bucket refills while the flood is slowed,
        // and a request answered meanwhile starts the count again.)
        assert!(answered >= 1, "{what}: {answered} answered");
        assert_eq!(in_a_row, 99, "{what}: refusals in a row before the close");
        assert_eq!(close, Some(hearth_protocol::CloseCode::RateLimited.code()), "{what}");
    }
    server.client("ada", Codec::MsgPack).await.request(hearth_protocol::ops::Ping {}).await.unwrap();
    server.stop().await;
}
