//! Bad input gets the documented error reply or close code, and the server keeps
//! serving everyone else.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hearth_cli::{Client, ClientError, Options};
use hearth_protocol::{CloseCode, Codec, ErrorCode, limits};
use hearth_server::auth;
use hearth_tests::*;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};

/// Sends `frame` on a fresh connection and returns the close code the server sent.
async fn close_code_after(server: &TestServer, codec: Codec, frame: Message) -> u16 {
    let client = server.client("mallory", codec).await;
    client.send_message(frame).await.unwrap();
    let mut client = client;
    loop {
        match client.next_event_within(WAIT).await.expect("server answers in time") {
            Some(_) => continue,
            None => return client.close_info().expect("a close frame").code,
        }
    }
}

/// A frame written as is, past the client library's own checks.
fn raw_frame(opcode: OpCode, payload: &[u8], rsv1: bool) -> Message {
    let header = FrameHeader { is_final: true, rsv1, opcode, ..FrameHeader::default() };
    Message::Frame(Frame::from_payload(header, bytes::Bytes::copy_from_slice(payload)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_the_documented_answer_and_others_keep_going() {
    let server = TestServer::ephemeral().await;
    let mut ada = server.client("ada", Codec::MsgPack).await;
    create_room(&ada, "control", None).await.unwrap();
    ada.join(&room("control")).await.unwrap();

    let cases: Vec<(&str, Codec, Message, CloseCode)> = vec![
        (
            "garbage bytes",
            Codec::MsgPack,
            Message::Binary(vec![0xc1, 0xff, 0x00, 0x13].into()),
            CloseCode::ProtocolError,
        ),
        (
            "text frame on msgpack",
            Codec::MsgPack,
            Message::Text(r#"{"id":1,"op":"ping"}"#.into()),
            CloseCode::WrongFrameType,
        ),
        ("binary frame on json", Codec::Json, Message::Binary(vec![0x80].into()), CloseCode::WrongFrameType),
        ("not JSON", Codec::Json, Message::Text("hello?".into()), CloseCode::ProtocolError),
        (
            "oversized frame",
            Codec::Json,
            Message::Text(
                format!(r#"{{"id":1,"op":"ping","pad":"{}"}}"#, "x".repeat(limits::MAX_REQUEST_BYTES)).into(),
            ),
            CloseCode::MessageTooBig,
        ),
        (
            "a top-level msgpack array",
            Codec::MsgPack,
            Message::Binary(b"\x92\x01\xa4ping".to_vec().into()),
            CloseCode::ProtocolError,
        ),
        ("a top-level JSON array", Codec::Json, Message::Text(r#"[1,"ping"]"#.into()), CloseCode::ProtocolError),
        (
            // {0: 1, 1: "ping"}: a decoder that took integer keys for fields'
            // positions would answer it as a ping.
            "integer keys",
            Codec::MsgPack,
            Message::Binary(b"\x82\x00\x01\x01\xa4ping".to_vec().into()),
            CloseCode::ProtocolError,
        ),
        (
            "text that is not UTF-8",
            Codec::Json,
            raw_frame(OpCode::Data(Data::Text), b"{\"id\":1,\xff}", false),
            CloseCode::InvalidPayload,
        ),
        (
            "a close reason that is not UTF-8",
            Codec::MsgPack,
            raw_frame(OpCode::Control(Control::Close), b"\x03\xe8\xff\xfe", false),
            CloseCode::InvalidPayload,
        ),
        (
            "a reserved bit set",
            Codec::MsgPack,
            raw_frame(OpCode::Data(Data::Binary), b"\x80", true),
            CloseCode::WebSocketProtocol,
        ),
        (
            "an unknown opcode",
            Codec::MsgPack,
            raw_frame(OpCode::Data(Data::Reserved(3)), b"x", false),
            CloseCode::WebSocketProtocol,
        ),
        (
            "deep nesting",
            Codec::MsgPack,
            Message::Binary([&[0x91u8; 200][..], &[0xc0]].concat().into()),
            CloseCode::ProtocolError,
        ),
        (
            "deep JSON nesting",
            Codec::Json,
            Message::Text(format!("{}{}", "[".repeat(500), "]".repeat(500)).into()),
            CloseCode::ProtocolError,
        ),
        (
            "huge length prefix",
            Codec::MsgPack,
            Message::Binary(vec![0xdf, 0xff, 0xff, 0xff, 0xff, 0xa2, b'i', b'd', 0x01].into()),
            CloseCode::ProtocolError,
        ),
    ];
    for (n, (what, codec, frame, want)) in cases.into_iter().enumerate() {
        let got = close_code_after(&server, codec, frame).await;
        assert_eq!(got, want.code(), "{what}: expected {want}");
        still_serving(&mut ada, &room("control"), n).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_with_an_id_get_error_replies_and_the_connection_stays() {
    let server = TestServer::ephemeral().await;
    for codec in [Codec::Json, Codec::MsgPack] {
        let client = server.client("ada", codec).await;
        let unknown = match codec {
            Codec::Json => br#"{"id":41,"op":"teleport"}"#.to_vec(),
            Codec::MsgPack => b"\x82\xa2id\x29\xa2op\xa8teleport".to_vec(),
        };
        client.send_frame(unknown).await.unwrap();
        let bad_args = match codec {
            Codec::Json => br#"{"id":42,"op":"send","room":"NOT VALID","text":"x","cmid":"c"}"#.to_vec(),
            Codec::MsgPack => b"\x82\xa2id\x2a\xa2op\xa4send".to_vec(),
        };
        client.send_frame(bad_args).await.unwrap();
        // The replies carry ids 41 and 42; the client routes them to no one, so check
        // over a raw socket below. Here: the connection still answers requests.
        client.request(hearth_protocol::ops::Ping {}).await.unwrap();
    }
    // Raw socket: read the two error replies.
    let mut request = server.url().into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "hearth.v1.json".parse().unwrap());
    request.headers_mut().insert("Authorization", format!("Bearer {}", server.token("ada")).parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let _hello = ws.next().await.unwrap().unwrap();
    ws.send(Message::Text(r#"{"id":41,"op":"teleport"}"#.into())).await.unwrap();
    ws.send(Message::Text(r#"{"id":42,"op":"send","room":"NOT VALID","text":"x","cmid":"c"}"#.into())).await.unwrap();
    let mut codes = Vec::new();
    while codes.len() < 2 {
        let frame = tokio::time::timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
        let value: serde_json::Value = serde_json::from_str(frame.to_text().unwrap()).unwrap();
        codes.push((value["id"].as_u64().unwrap(), value["err"]["code"].as_str().unwrap().to_string()));
    }
    assert_eq!(codes, vec![(41, ErrorCode::UnknownOp.as_str().into()), (42, ErrorCode::BadRequest.as_str().into())]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_forged_and_expired_tokens_are_closed_with_their_codes() {
    let server = TestServer::ephemeral().await;
    let forged = auth::mint(
        &auth::Secret::new(b"some-other-secret-some-other-secret".to_vec()).unwrap(),
        &user("ada"),
        Duration::from_secs(60),
    );
    let expired = auth::mint(&secret(), &user("ada"), Duration::ZERO);
    for (token, want) in [
        ("", CloseCode::Unauthorized),
        (forged.as_str(), CloseCode::Unauthorized),
        ("x.y.z", CloseCode::Unauthorized),
        (expired.as_str(), CloseCode::TokenExpired),
    ] {
        let options = Options::new(server.url(), token, Codec::MsgPack);
        match Client::connect(options).await {
            Err(ClientError::Closed(Some(close))) => {
                assert_eq!(close.hearth_code(), Some(want), "{}", close.reason);
                assert!(!close.reason.is_empty());
            }
            Err(other) => panic!("expected close {want}, got {other}"),
            Ok(_) => panic!("expected close {want}, got a session"),
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_subprotocol_is_refused_at_the_upgrade() {
    let server = TestServer::ephemeral().await;
    let mut request = server.url().into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "mqtt".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 400),
        other => panic!("expected HTTP 400, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_stops_reading_is_closed_as_a_slow_consumer_and_resumes() {
    let mut config = test_config(hearth_server::Storage::Ephemeral { history_limit: 10_000 });
    config.outbound_queue_bytes = 32 * 1024;
    let server = TestServer::start(config).await;
    let r = room("firehose");
    let writer = server.client("writer", Codec::MsgPack).await;
    create_room(&writer, "firehose", None).await.unwrap();
    // A raw connection that joins and then never reads.
    let mut ws = raw_connect(&server, "sleepy").await;
    ws.send(Message::Binary(b"\x83\xa2id\x01\xa2op\xa4join\xa4room\xa8firehose".to_vec().into())).await.unwrap();
    // Bounded: 4,000 messages of 2 KiB is far past the 32 KiB queue plus the
    // kernel's socket buffers.
    let text = "z".repeat(2048);
    for _ in 0..4000 {
        writer.send(&r, &text).await.unwrap();
    }
    // Now read: after whatever was in flight, the close frame says slow_consumer.
    assert_eq!(read_close_code(&mut ws).await, Some(CloseCode::SlowConsumer.code()));
    // Others were never held up, and the room still works.
    let mut fresh = server.client("sleepy", Codec::MsgPack).await;
    fresh.join(&r).await.unwrap();
    writer.send(&r, "after").await.unwrap();
    assert_eq!(collect_messages(&mut fresh, &r, 1).await.unwrap()[0].1, "after");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_with_idle_timeout() {
    let mut config = test_config(hearth_server::Storage::Ephemeral { history_limit: 100 });
    config.ping_interval = Duration::from_millis(100);
    config.idle_timeout = Duration::from_millis(300);
    let server = TestServer::start(config).await;
    // A client that reads (and so answers pings) connects first...
    let client = server.client("chatty", Codec::MsgPack).await;
    // ...then a socket that reads no WebSocket, so cannot answer pings.
    let mut tcp = deaf_connect(&server, "quiet").await;
    assert_eq!(deaf_read_close_code(&mut tcp).await, Some(CloseCode::IdleTimeout.code()));
    // The quiet one was closed after the idle limit, and the chatty one has been
    // connected longer than that: it is still served.
    client.request(hearth_protocol::ops::Ping {}).await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_are_closed_with_server_full() {
    let mut config = test_config(hearth_server::Storage::Ephemeral { history_limit: 100 });
    config.max_connections = 1;
    let server = TestServer::start(config).await;
    let first = server.client("first", Codec::MsgPack).await;
    match Client::connect(server.options("second", Codec::MsgPack)).await {
        Err(ClientError::Closed(Some(close))) => assert_eq!(close.hearth_code(), Some(CloseCode::ServerFull)),
        Err(other) => panic!("expected server_full, got {other}"),
        Ok(_) => panic!("expected server_full, got a session"),
    }
    first.request(hearth_protocol::ops::Ping {}).await.unwrap();
    server.stop().await;
}
