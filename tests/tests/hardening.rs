//! What outside clients found: each defect of the hardening pass, over real
//! sockets, with bounded waits.

use hearth_protocol::ops::{History, Join, ResumeMode};
use hearth_protocol::{Codec, Position, Seq};
use hearth_server::Storage;
use hearth_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_after_a_huge_seq_is_an_empty_page() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::durable(dir.path().to_path_buf()).await;
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
async fn http(server: &TestServer, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(WAIT, tcp.read_to_string(&mut answer)).await.expect("answered in time").unwrap();
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_and_bad_upgrades_get_an_http_answer() {
    let server = TestServer::ephemeral().await;
    let root = http(&server, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(root.starts_with("HTTP/1.1 200"), "{root}");
    assert!(root.contains("Hearth") && root.contains("PROTOCOL.md"), "{root}");
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
        match hearth_protocol::codec::decode_server_frame(Codec::MsgPack, &frame).unwrap() {
            hearth_protocol::codec::ServerFrame::Event(hearth_protocol::Event::Hello(hello)) => {
                assert_eq!(hello.user.as_str(), "ada", "{scheme}")
            }
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
