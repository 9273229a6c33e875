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
