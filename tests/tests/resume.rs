//! Resume: a member that reconnects with its last {epoch, seq} gets exactly what it
//! missed, then live events — no gap, no duplicate — or an explicit `truncated`.

use hearth_protocol::ops::{Join, ResumeMode};
use hearth_protocol::{Codec, Epoch, Position, Seq};
use hearth_server::Storage;
use hearth_tests::*;

/// `server` is where the reader first connects, `again` where it resumes.
async fn resume_while_others_send(server: &TestServer, again: &TestServer, codec: Codec) {
    let r = room("resume-room");
    let writer = server.client("writer", Codec::MsgPack).await;
    create_room(&writer, "resume-room", None).await.unwrap();
    let mut reader = server.client("reader", codec).await;
    reader.join(&r).await.unwrap();

    for n in 0..10 {
        writer.send(&r, &format!("m{n}")).await.unwrap();
    }
    let before = collect_messages(&mut reader, &r, 5).await.unwrap();
    // Drop the connection with 5 messages taken and 5 still unread, then keep
    // sending while the reader is away and while it rejoins.
    let position = reader.position(&r).unwrap();
    let stale = reader;
    let background = {
        let r = r.clone();
        tokio::spawn(async move {
            for n in 10..60 {
                writer.send(&r, &format!("m{n}")).await.unwrap();
            }
            writer
        })
    };
    drop(stale);
    // Resume explicitly to check the reply too.
    let mut resumed = again.client("reader", codec).await;
    let joined = resumed.join_since(&r, Some(position)).await.unwrap();
    assert_eq!(joined.resume, ResumeMode::Replay);
    background.await.unwrap();
    let after = collect_messages(&mut resumed, &r, 55).await.unwrap();
    let all: Vec<_> = before.iter().chain(after.iter()).collect();
    assert_strictly_increasing(all.iter().map(|(s, _)| *s), "reader");
    let texts: Vec<String> = all.iter().map(|(_, t)| t.clone()).collect();
    let expected: Vec<String> = (0..60).map(|n| format!("m{n}")).collect();
    assert_eq!(texts, expected, "the reader missed or repeated something");
}

both_modes! {
async fn resume_has_no_gap_and_no_duplicate_on_any_node(d: Deployment) {
    // In a cluster the reader comes back on the other node.
    resume_while_others_send(d.node("reader"), d.other_node("reader"), Codec::Json).await;
    d.stop().await;
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_has_no_gap_and_no_duplicate_on_disk_past_the_recent_cache() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(Storage::Dir(dir.path().to_path_buf()));
    // A tiny cache forces the catch-up through the store.
    config.rooms.recent_events = 4;
    let server = TestServer::start(config).await;
    resume_while_others_send(&server, &server, Codec::MsgPack).await;
    server.stop().await;
}

both_modes! {
async fn client_resume_rejoins_every_room_from_its_position(server: Deployment) {
    let r = room("lounge");
    let writer = server.client("writer", Codec::MsgPack).await;
    create_room(&writer, "lounge", None).await.unwrap();
    let mut reader = server.client("reader", Codec::MsgPack).await;
    reader.join(&r).await.unwrap();
    writer.send(&r, "one").await.unwrap();
    assert_eq!(collect_messages(&mut reader, &r, 1).await.unwrap()[0].1, "one");
    writer.send(&r, "two").await.unwrap();
    writer.send(&r, "three").await.unwrap();
    let mut resumed = reader.resume().await.unwrap();
    assert!(resumed.truncated_on_resume().is_empty());
    drop(reader);
    let got = collect_messages(&mut resumed, &r, 2).await.unwrap();
    assert_eq!(got.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>(), ["two", "three"]);
    server.stop().await;
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_past_what_is_held_is_truncated() {
    let mut config = test_config(Storage::Ephemeral { history_limit: 5 });
    config.rooms.recent_events = 5;
    let server = TestServer::start(config).await;
    let r = room("short-memory");
    let writer = server.client("writer", Codec::MsgPack).await;
    create_room(&writer, "short-memory", None).await.unwrap();
    let joined = writer.request(Join { room: r.clone(), since: None, invite: None }).await.unwrap();
    for n in 0..20 {
        writer.send(&r, &format!("m{n}")).await.unwrap();
    }
    let mut late = server.client("writer", Codec::MsgPack).await;
    let old = Position { epoch: joined.room.epoch, seq: Seq(2) };
    let rejoined = late.join_since(&r, Some(old)).await.unwrap();
    assert_eq!(rejoined.resume, ResumeMode::Truncated);
    // After a truncated answer, events continue live from the head.
    writer.send(&r, "live").await.unwrap();
    assert_eq!(collect_messages(&mut late, &r, 1).await.unwrap()[0].1, "live");

    // The client library says so when its own resume comes back truncated.
    let mut tracked = server.client("writer", Codec::MsgPack).await;
    tracked.join(&r).await.unwrap();
    for n in 0..20 {
        writer.send(&r, &format!("n{n}")).await.unwrap();
    }
    drop(collect_messages(&mut tracked, &r, 1).await.unwrap());
    for n in 0..20 {
        writer.send(&r, &format!("o{n}")).await.unwrap();
    }
    let resumed = tracked.resume().await.unwrap();
    assert_eq!(resumed.truncated_on_resume(), std::slice::from_ref(&r));

    let wrong_epoch = Position { epoch: Epoch(joined.room.epoch.0 ^ 1), seq: Seq(3) };
    let mut other = server.client("writer", Codec::Json).await;
    assert_eq!(other.join_since(&r, Some(wrong_epoch)).await.unwrap().resume, ResumeMode::Truncated);
    server.stop().await;
}
