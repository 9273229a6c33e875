//! The floor: a broadcast server on the same stack as Hearth (tokio and
//! tokio-tungstenite) with none of Hearth's logic — no store, no auth check, no
//! membership or idempotency. It speaks just enough of the protocol for the load
//! test (hello, create_room, join, send) and forwards each message to its room's
//! connections, encoded once, through bounded per-connection queues drained with
//! one flush per batch. Running a scenario against it measures the stack's own
//! cost, so Hearth's overhead is the difference.

use std::sync::{Arc, Mutex};

use anyhow::Result;
use bytes::Bytes;
use dashmap::DashMap;
use futures_util::{SinkExt, StreamExt};
use hearth_protocol::codec::{decode_request, encode_event, encode_reply};
use hearth_protocol::event::{Hello, MessageEvent};
use hearth_protocol::ops::{Appended, Done, Op};
use hearth_protocol::{Codec, Event, Millis, Seq, UserId};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Frames a connection may have queued before it is dropped as too slow.
const QUEUE_FRAMES: usize = 8192;

#[derive(Default)]
struct FloorRoom {
    seq: u64,
    members: Vec<(u64, Codec, mpsc::Sender<Message>)>,
}

type Rooms = Arc<DashMap<String, Arc<Mutex<FloorRoom>>>>;

pub async fn serve(listener: TcpListener) -> Result<()> {
    let rooms: Rooms = Arc::default();
    let mut next_conn = 0u64;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        next_conn += 1;
        tokio::spawn(connection(stream, rooms.clone(), next_conn));
    }
}

fn frame(codec: Codec, bytes: Vec<u8>) -> Message {
    match codec {
        Codec::MsgPack => Message::Binary(Bytes::from(bytes)),
        Codec::Json => Message::Text(Utf8Bytes::try_from(bytes).expect("JSON is UTF-8")),
    }
}

async fn connection(stream: TcpStream, rooms: Rooms, conn: u64) {
    let mut codec = Codec::MsgPack;
    // tungstenite fixes the callback's (large) error type.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, mut response: Response| {
        let offers = request.headers().get_all(header::SEC_WEBSOCKET_PROTOCOL).iter().filter_map(|v| v.to_str().ok());
        if let Ok((chosen, echo)) = Codec::negotiate(offers) {
            codec = chosen;
            if echo {
                response
                    .headers_mut()
                    .insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(chosen.subprotocol()));
            }
        }
        Ok(response)
    };
    // Hearth's limits and read buffer, but frames gather in tungstenite's own
    // write buffer, as a plain tokio-tungstenite server's do (Hearth gathers
    // them in its socket, which gives the buffer back; see its `metered`).
    let config = hearth_server::transport::websocket_config().write_buffer_size(64 * 1024);
    let Ok(ws) = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await else { return };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Message>(QUEUE_FRAMES);
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            if sink.feed(first).await.is_err() {
                return;
            }
            while let Ok(next) = rx.try_recv() {
                if sink.feed(next).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    let user = UserId::new("floor").expect("valid");
    let hello = Event::Hello(Hello {
        user: user.clone(),
        conn,
        server: "hearth-floor".into(),
        protocol: 1,
        max_request_bytes: 16384,
        max_text_bytes: 8192,
    });
    let _ = tx.try_send(frame(codec, encode_event(codec, &hello)));
    let mut joined: Vec<Arc<Mutex<FloorRoom>>> = Vec::new();
    while let Some(Ok(message)) = stream.next().await {
        let bytes = match message {
            Message::Binary(b) => b,
            Message::Text(t) => Bytes::from(t),
            Message::Close(_) => break,
            _ => continue,
        };
        let Ok(request) = decode_request(codec, &bytes) else { break };
        let reply = match request.op {
            Op::CreateRoom(_) => encode_reply(codec, request.id, &Done {}),
            Op::Join(args) => {
                let room = rooms.entry(args.room.to_string()).or_default().clone();
                let head = {
                    let mut state = room.lock().unwrap();
                    state.members.push((conn, codec, tx.clone()));
                    state.seq
                };
                joined.push(room);
                // Enough of a join reply for the load test: the head to count from.
                let reply = serde_json::json!({"room": {"head": head, "epoch": 1}});
                encode_reply(codec, request.id, &reply)
            }
            Op::SendMessage(args) => {
                let room = rooms.entry(args.room.to_string()).or_default().clone();
                let ts = Millis(0);
                let mut state = room.lock().unwrap();
                state.seq += 1;
                let seq = Seq(state.seq);
                let event = Event::Message(MessageEvent {
                    seq,
                    ts,
                    ..MessageEvent::draft(args.room, user.clone(), args.text, args.cmid, None)
                });
                // Encoded once per codec, shared by every member.
                let msgpack = Bytes::from(encode_event(Codec::MsgPack, &event));
                let mut json: Option<Utf8Bytes> = None;
                state.members.retain(|(_, member_codec, queue)| {
                    let message = match member_codec {
                        Codec::MsgPack => Message::Binary(msgpack.clone()),
                        Codec::Json => Message::Text(
                            json.get_or_insert_with(|| {
                                Utf8Bytes::try_from(encode_event(Codec::Json, &event)).expect("JSON is UTF-8")
                            })
                            .clone(),
                        ),
                    };
                    queue.try_send(message).is_ok()
                });
                drop(state);
                encode_reply(codec, request.id, &Appended { seq, ts, held: false })
            }
            _ => encode_reply(codec, request.id, &Done {}),
        };
        if tx.send(frame(codec, reply)).await.is_err() {
            break;
        }
    }
    for room in joined {
        room.lock().unwrap().members.retain(|(c, _, _)| *c != conn);
    }
}
