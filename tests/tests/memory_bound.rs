//! A connection that asks and never reads holds at most its queue's bound on the
//! server, replies included. Alone in its test binary, so the process's memory is
//! this test's.

use futures_util::SinkExt;
use hearth_protocol::ops::History;
use hearth_protocol::{Codec, Op, RequestId};
use hearth_tests::*;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_ask_and_never_read_hold_a_bounded_amount() {
    const CONNECTIONS: usize = 20;
    let server = TestServer::ephemeral().await;
    let r = room("pages");
    let ada = server.client("ada", Codec::MsgPack).await;
    create_room(&ada, "pages", None).await.unwrap();
    let text = "p".repeat(8_000);
    for _ in 0..100 {
        ada.send(&r, &text).await.unwrap();
    }
    let before = rss_bytes();
    let mut sockets = Vec::new();
    for n in 0..CONNECTIONS {
        let mut ws = raw_connect(&server, &format!("greedy{n}")).await;
        let join = Op::from(hearth_protocol::ops::Join { room: r.clone(), since: None, invite: None });
        ws.send(Message::Binary(join.encode(Codec::MsgPack, RequestId(1)).into())).await.unwrap();
        // 200 pages of 800 KB each, about 40 KB of requests, never read.
        for id in 2..202 {
            let page = Op::from(History { room: r.clone(), before: None, after: None, limit: Some(100) });
            ws.send(Message::Binary(page.encode(Codec::MsgPack, RequestId(id)).into())).await.unwrap();
        }
        sockets.push(ws);
    }
    // Give the server the time it would take to build and queue every reply it is
    // allowed to: a second is hundreds of pages on this machine.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let grown = rss_bytes().saturating_sub(before);
    let per_connection = grown / CONNECTIONS as u64;
    eprintln!("RSS grew {grown} bytes: {per_connection} per non-reading connection");
    // The queue's bound is 1 MiB, of which replies may fill half (or one reply
    // larger than that); the socket library holds what the writer could not send.
    // Before replies counted against the bound, this was 2.8 MB here.
    assert!(per_connection < 3 * 1024 * 1024 / 2, "{per_connection} bytes per connection");
    // Others are still served.
    ada.request(hearth_protocol::ops::Ping {}).await.unwrap();
    drop(sockets);
    server.stop().await;
}
