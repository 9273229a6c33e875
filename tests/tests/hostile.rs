//! The hostile-input suite: what someone who never read the Rust, and wishes
//! the server ill, might send — over WebSocket framing, the handshake,
//! MessagePack and JSON, tokens, permissions and floods. Each case asserts the
//! documented answer (PROTOCOL.md: an error reply, a close code, an HTTP
//! status), and after each one a control member on the same server must still
//! get its own message back: one attacker never costs anyone else their chat.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hearth_cli::{Client, ClientError, Options};
use hearth_protocol::ops::{AddPin, History, Leave, Members, RemovePin};
use hearth_protocol::{CloseCode, Codec, ErrorCode, Note, PinId, Seq, limits};
use hearth_server::{Limits, Storage};
use hearth_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// What an attack is, and what the server must answer.
enum Attack {
    /// One WebSocket message on a fresh connection: the close code.
    Frame(Codec, Message, u16),
    /// Several messages (fragments) on a fresh connection: the close code.
    Frames(Codec, Vec<Message>, u16),
    /// A request with an id: the error reply's code; the connection stays.
    Request(Codec, Message, ErrorCode),
    /// Bytes on a fresh TCP connection: the HTTP status answered (0: the
    /// connection is just closed).
    Http(Vec<u8>, u16),
    /// A connection with this token: the close code.
    Token(String, CloseCode),
}

fn frame(opcode: OpCode, payload: Vec<u8>, fin: bool) -> Message {
    Message::Frame(WsFrame::message(payload, opcode, fin))
}

fn bin(bytes: &[u8]) -> Message {
    Message::Binary(bytes.to_vec().into())
}

fn text(s: &str) -> Message {
    Message::Text(s.to_string().into())
}

fn upgrade(extra: &str) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{extra}\r\n").into_bytes()
}

/// A token in HS256's shape, signed with `key`, with `header` and `claims` as given.
fn signed(key: &[u8], header: &str, claims: &str) -> String {
    use hmac::Mac;
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

fn cases() -> Vec<(&'static str, Attack)> {
    use Attack::*;
    let (pp, mp) = (CloseCode::ProtocolError.code(), Codec::MsgPack);
    let far = r#"{"sub":"ada","exp":99999999999}"#;
    let hs256 = r#"{"alg":"HS256","typ":"JWT"}"#;
    let key = b"integration-test-secret-0123456789";
    let big = "x".repeat(limits::MAX_REQUEST_BYTES);
    let fragment = vec![b'x'; 8 * 1024];
    vec![
        // ---- WebSocket framing ----
        ("text frame on msgpack", Frame(mp, text(r#"{"id":1,"op":"ping"}"#), CloseCode::WrongFrameType.code())),
        ("binary frame on json", Frame(Codec::Json, bin(&[0x80]), CloseCode::WrongFrameType.code())),
        ("a frame over 16 KiB", Frame(Codec::Json, text(&format!(r#"{{"id":1,"op":"ping","p":"{big}"}}"#)), 1009)),
        (
            "text that is not UTF-8",
            Frame(Codec::Json, frame(OpCode::Data(Data::Text), vec![0xff, 0xfe, 0x7b], true), 1007),
        ),
        ("a reserved opcode", Frame(mp, frame(OpCode::Data(Data::Reserved(3)), vec![1], true), 1002)),
        (
            "a continuation with nothing to continue",
            Frame(mp, frame(OpCode::Data(Data::Continue), vec![1], true), 1002),
        ),
        (
            "RSV1 set with no extension",
            Frame(
                mp,
                {
                    let mut f = WsFrame::message(vec![0x80], OpCode::Data(Data::Binary), true);
                    f.header_mut().rsv1 = true;
                    Message::Frame(f)
                },
                1002,
            ),
        ),
        (
            "fragments adding up past 16 KiB",
            Frames(
                mp,
                vec![
                    frame(OpCode::Data(Data::Binary), fragment.clone(), false),
                    frame(OpCode::Data(Data::Continue), fragment.clone(), false),
                    frame(OpCode::Data(Data::Continue), fragment, true),
                ],
                1009,
            ),
        ),
        ("an empty binary frame", Frame(mp, bin(&[]), pp)),
        // ---- MessagePack ----
        ("garbage bytes", Frame(mp, bin(&[0xc1, 0xff, 0x00, 0x13]), pp)),
        ("a top-level msgpack array", Frame(mp, bin(b"\x92\x01\xa4ping"), pp)),
        ("msgpack nested 500 deep", Frame(mp, bin(&[0x91; 500]), pp)),
        ("a str32 claiming 4 GiB", Frame(mp, bin(&[0x81, 0xa2, b'i', b'd', 0xdb, 0xff, 0xff, 0xff, 0xff, b'x']), pp)),
        (
            "a map32 claiming 4 billion entries",
            Frame(mp, bin(&[0xdf, 0xff, 0xff, 0xff, 0xff, 0xa2, b'i', b'd', 0x01]), pp),
        ),
        ("a map cut short", Frame(mp, bin(&[0x82, 0xa2, b'i', b'd', 0x01]), pp)),
        ("an ext type where a map belongs", Frame(mp, bin(&[0xd4, 0x01, 0x02]), pp)),
        ("a map with no id", Frame(mp, bin(&[0x81, 0xa2, b'o', b'p', 0xa4, b'p', b'i', b'n', b'g']), pp)),
        // ---- JSON ----
        ("not JSON", Frame(Codec::Json, text("hello?"), pp)),
        ("a top-level JSON array", Frame(Codec::Json, text(r#"[1,"ping"]"#), pp)),
        ("JSON nested 500 deep", Frame(Codec::Json, text(&format!("{}{}", "[".repeat(500), "]".repeat(500))), pp)),
        ("JSON with bytes after the object", Frame(Codec::Json, text(r#"{"id":1,"op":"ping"}garbage"#), pp)),
        ("a string id", Frame(Codec::Json, text(r#"{"id":"1","op":"ping"}"#), pp)),
        ("an id past any integer", Frame(Codec::Json, text(r#"{"id":1e400,"op":"ping"}"#), pp)),
        ("a negative id", Frame(Codec::Json, text(r#"{"id":-1,"op":"ping"}"#), pp)),
        // ---- requests with an id: an error reply, and the connection stays ----
        ("an unknown op", Request(Codec::Json, text(r#"{"id":7,"op":"format_disk"}"#), ErrorCode::UnknownOp)),
        (
            "a send with no room",
            Request(Codec::Json, text(r#"{"id":7,"op":"send","text":"x","cmid":"c"}"#), ErrorCode::BadRequest),
        ),
        (
            "a room that is a number",
            Request(Codec::Json, text(r#"{"id":7,"op":"join","room":5}"#), ErrorCode::BadRequest),
        ),
        (
            "a room name with capitals and slashes",
            Request(Codec::Json, text(r#"{"id":7,"op":"join","room":"../ETC"}"#), ErrorCode::BadRequest),
        ),
        (
            "a message over 8 KiB",
            Request(
                Codec::Json,
                text(&format!(r#"{{"id":7,"op":"send","room":"control","text":"{}","cmid":"c"}}"#, "y".repeat(9000))),
                ErrorCode::BadRequest,
            ),
        ),
        (
            "a client message id of 65 characters",
            Request(
                Codec::Json,
                text(&format!(r#"{{"id":7,"op":"send","room":"control","text":"x","cmid":"{}"}}"#, "c".repeat(65))),
                ErrorCode::BadRequest,
            ),
        ),
        (
            "a control character in a client message id",
            Request(
                Codec::Json,
                text(r#"{"id":7,"op":"send","room":"control","text":"x","cmid":"a\u0007b"}"#),
                ErrorCode::BadRequest,
            ),
        ),
        (
            "a msgpack op of the wrong type",
            Request(mp, bin(&[0x82, 0xa2, b'i', b'd', 0x07, 0xa2, b'o', b'p', 0x05]), ErrorCode::BadRequest),
        ),
        // ---- the handshake ----
        (
            "a request head over 8 KiB",
            Http(format!("GET / HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "p".repeat(9000)).into_bytes(), 431),
        ),
        ("a POST", Http(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".to_vec(), 400)),
        ("an upgrade with no key", Http(upgrade("Sec-WebSocket-Version: 13\r\n"), 400)),
        ("an upgrade with a key of 3 bytes", Http(upgrade("Sec-WebSocket-Key: YWJj\r\nSec-WebSocket-Version: 13\r\n"), 400)),
        (
            // A 101 here was followed by nothing: HTTP/1.0 cannot hand the socket over.
            "an upgrade over HTTP/1.0",
            Http(
                b"GET / HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                    .to_vec(),
                400,
            ),
        ),
        (
            "two credentials, a header and a parameter",
            Http(
                b"GET /?token=someone.elses.token HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer a.b.c\r\n\r\n"
                    .to_vec(),
                400,
            ),
        ),
        (
            "two Authorization headers",
            Http(
                upgrade(
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
                     Authorization: Bearer a.b.c\r\nAuthorization: Bearer d.e.f\r\n",
                ),
                400,
            ),
        ),
        (
            "a ticket and a token",
            Http(
                b"GET /?ticket=t&token=a.b.c HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                    .to_vec(),
                400,
            ),
        ),
        (
            "an upgrade of version 8",
            Http(upgrade("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n"), 426),
        ),
        (
            "an upgrade with another subprotocol",
            Http(
                upgrade(
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n",
                ),
                400,
            ),
        ),
        (
            "an upgrade from a foreign Origin",
            Http(
                upgrade(
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: https://evil.example\r\n",
                ),
                403,
            ),
        ),
        (
            "binary noise instead of HTTP",
            Http(
                [0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00, b'\r', b'\n', b'\r', b'\n'].to_vec(),
                400,
            ),
        ),
        ("a path that is not there", Http(b"GET /admin/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 404)),
        // ---- tokens ----
        ("no token", Token(String::new(), CloseCode::Unauthorized)),
        ("a token that is not a JWT", Token("x.y.z".into(), CloseCode::Unauthorized)),
        (
            "a forged signature",
            Token(signed(b"some-other-secret-entirely-0123456789", hs256, far), CloseCode::Unauthorized),
        ),
        (
            "alg none",
            Token(
                format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), URL_SAFE_NO_PAD.encode(far)),
                CloseCode::Unauthorized,
            ),
        ),
        ("alg HS512 signed with the right key", Token(signed(key, r#"{"alg":"HS512"}"#, far), CloseCode::Unauthorized)),
        ("an expired token", Token(signed(key, hs256, r#"{"sub":"ada","exp":1000}"#), CloseCode::TokenExpired)),
        ("a token with no exp", Token(signed(key, hs256, r#"{"sub":"ada"}"#), CloseCode::Unauthorized)),
        (
            "a token for an invalid user name",
            Token(signed(key, hs256, r#"{"sub":"../root","exp":99999999999}"#), CloseCode::Unauthorized),
        ),
        ("a token of 5 KiB", Token("a".repeat(5000), CloseCode::Unauthorized)),
    ]
}

/// Runs one attack and returns what came back, as text for the assertion.
async fn attack(server: &TestServer, what: Attack) -> Result<(), String> {
    match what {
        Attack::Frame(codec, message, want) => frames(server, codec, vec![message], want).await,
        Attack::Frames(codec, messages, want) => frames(server, codec, messages, want).await,
        Attack::Request(codec, message, want) => {
            let mut ws = raw_connect(server, "mallory").await;
            if codec == Codec::Json {
                // raw_connect speaks msgpack; this attack needs JSON.
                ws = json_connect(server).await;
            }
            use futures_util::{SinkExt, StreamExt};
            ws.send(message).await.map_err(|e| e.to_string())?;
            let answer = tokio::time::timeout(WAIT, async {
                while let Some(Ok(frame)) = ws.next().await {
                    let bytes = frame.into_data();
                    let value: Option<serde_json::Value> = match codec {
                        Codec::Json => serde_json::from_slice(&bytes).ok(),
                        Codec::MsgPack => rmp_serde::from_slice(&bytes).ok(),
                    };
                    let Some(value) = value else { continue };
                    if let (Some(id), Some(code)) = (value["id"].as_u64(), value["err"]["code"].as_str()) {
                        return Some((id, code.to_string()));
                    }
                }
                None
            })
            .await
            .map_err(|_| "no reply in time".to_string())?;
            if answer != Some((7, want.as_str().to_string())) {
                return Err(format!("answered {answer:?}, want id 7 with {want:?}"));
            }
            // The connection stays: a ping still gets its pong.
            let ping = if codec == Codec::Json {
                text(r#"{"id":8,"op":"ping"}"#)
            } else {
                bin(&[0x82, 0xa2, b'i', b'd', 0x08, 0xa2, b'o', b'p', 0xa4, b'p', b'i', b'n', b'g'])
            };
            ws.send(ping).await.map_err(|e| format!("connection gone after the error: {e}"))?;
            Ok(())
        }
        Attack::Http(bytes, want) => {
            let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
            let _ = tcp.write_all(&bytes).await;
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer)).await.map_err(|_| "no answer in time")?;
            let answer = String::from_utf8_lossy(&answer);
            let status: u16 = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            if status == want { Ok(()) } else { Err(format!("answered {:?}", answer.lines().next())) }
        }
        Attack::Token(token, want) => {
            let options = Options::new(server.url(), token, Codec::MsgPack);
            match Client::connect(options).await {
                Err(ClientError::Closed(Some(close))) if close.hearth_code() == Some(want) => Ok(()),
                Err(other) => Err(format!("failed otherwise: {other}")),
                Ok(_) => Err("got a session".into()),
            }
        }
    }
}

/// Sends `messages` on a fresh connection; the close code must be `want`.
async fn frames(server: &TestServer, codec: Codec, messages: Vec<Message>, want: u16) -> Result<(), String> {
    let mut client = server.client("mallory", codec).await;
    for message in messages {
        if client.send_message(message).await.is_err() {
            break;
        }
    }
    while client.next_event_within(WAIT).await.map_err(|e| e.to_string())?.is_some() {}
    let got = client.close_info().map(|c| c.code);
    if got == Some(want) { Ok(()) } else { Err(format!("closed with {got:?}, want {want}")) }
}

async fn json_connect(server: &TestServer) -> RawSocket {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = server.url().into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "hearth.v1.json".parse().unwrap());
    request.headers_mut().insert("Authorization", format!("Bearer {}", server.token("mallory")).parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_input_gets_its_documented_answer_and_no_one_else_notices() {
    let server = TestServer::ephemeral().await;
    let mut control = server.client("ada", Codec::MsgPack).await;
    create_room(&control, "control", None).await.unwrap();
    control.join(&room("control")).await.unwrap();
    let cases = cases();
    assert!(cases.len() >= 40, "the suite has {} cases", cases.len());
    let mut failures = Vec::new();
    for (n, (name, case)) in cases.into_iter().enumerate() {
        if let Err(got) = Box::pin(attack(&server, case)).await {
            failures.push(format!("{name}: {got}"));
        }
        still_serving(&mut control, &room("control"), n).await;
    }
    assert!(failures.is_empty(), "{} cases failed:\n{}", failures.len(), failures.join("\n"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_cannot_do_what_their_role_does_not_allow() {
    let server = TestServer::ephemeral().await;
    let r = room("guarded");
    let mut owner = server.client("ada", Codec::MsgPack).await;
    create_room(&owner, "guarded", None).await.unwrap();
    owner.join(&r).await.unwrap();
    let pin = owner
        .request(AddPin {
            room: r.clone(),
            seq: None,
            note: Some(Note::new("Rules").unwrap()),
            title: None,
            edit: None,
        })
        .await
        .unwrap();
    let outsider = server.client("eve", Codec::Json).await;
    let mut member = server.client("bo", Codec::MsgPack).await;
    member.join(&r).await.unwrap();
    let code = |result: Result<(), ClientError>| match result {
        Err(ClientError::Server(error)) => error.code,
        other => panic!("expected an error reply, got {other:?}"),
    };
    let history = History { room: r.clone(), before: None, after: None, limit: None };
    assert_eq!(
        code(outsider.request(history.clone()).await.map(|_| ())),
        ErrorCode::NotMember,
        "outsiders read nothing"
    );
    assert_eq!(code(outsider.send(&r, "hi").await.map(|_| ())), ErrorCode::NotMember, "nor write");
    assert_eq!(code(outsider.request(Members { room: r.clone() }).await.map(|_| ())), ErrorCode::NotMember);
    let note = Some(Note::new("mine now").unwrap());
    assert_eq!(
        code(member.request(AddPin { room: r.clone(), seq: None, note, title: None, edit: None }).await.map(|_| ())),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(member.request(RemovePin { room: r.clone(), pin: pin.pin.pin }).await.map(|_| ())),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(owner.request(Leave { room: r.clone() }).await.map(|_| ())),
        ErrorCode::Forbidden,
        "the owner cannot orphan it"
    );
    assert_eq!(
        code(owner.request(RemovePin { room: r.clone(), pin: PinId(999) }).await.map(|_| ())),
        ErrorCode::NoSuchTarget
    );
    let since = member.position(&r).unwrap();
    member.leave(&r).await.unwrap();
    let mut back = server.client("bo", Codec::MsgPack).await;
    assert_eq!(code(back.join_since(&r, Some(since)).await.map(|_| ())), ErrorCode::NotMember, "no silent rejoin");
    assert_eq!(
        code(
            back.request(History { room: r.clone(), before: None, after: Some(Seq(0)), limit: None }).await.map(|_| ())
        ),
        ErrorCode::NotMember,
        "a former member reads nothing"
    );
    still_serving(&mut owner, &r, 0).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_and_leave_churn_is_rate_limited_and_others_keep_chatting() {
    let mut config = test_config(Storage::Ephemeral { history_limit: 100 });
    config.limits = Limits::default();
    let server = TestServer::start(config).await;
    let r = room("busy");
    let mut owner = server.client("ada", Codec::MsgPack).await;
    create_room(&owner, "busy", None).await.unwrap();
    owner.join(&r).await.unwrap();
    let mut churner = server.client("mallory", Codec::MsgPack).await;
    let mut refused = 0;
    for _ in 0..300 {
        let joined = churner.join(&r).await;
        let left = churner.leave(&r).await;
        match (joined, left) {
            (Err(ClientError::Server(e)), _) | (_, Err(ClientError::Server(e))) if e.code == ErrorCode::RateLimited => {
                assert!(e.retry_after_ms.is_some());
                refused += 1;
                break;
            }
            (Err(ClientError::Closed(_)), _) | (_, Err(ClientError::Closed(_))) => break,
            _ => {}
        }
    }
    assert!(refused > 0, "300 join/leave rounds at full speed must meet the request rate limit");
    still_serving(&mut owner, &r, 0).await;
    server.stop().await;
}
