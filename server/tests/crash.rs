//! The real `hearth-server` binary, killed with SIGKILL mid-stream: every message
//! whose send was acknowledged, every pin and every membership is there when it
//! comes back, and the timeline continues without a gap. Also: SIGTERM shuts down
//! gracefully with `going_away`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{BIN, ServerProcess, WAIT};

use hearth_cli::{Client, Options};
use hearth_protocol::ops::{AddPin, CreateRoom, Join, Members, Visibility};
use hearth_protocol::{CloseCode, Codec, Event, Note, RoomId, Seq, ShortText};

fn token(dir: &Path, name: &str) -> String {
    let out = Command::new(BIN)
        .args(["token", name, "--ttl", "1h", "--data-dir"])
        .arg(dir)
        .env_remove("HEARTH_TOKEN_SECRET")
        .output()
        .expect("mint token");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

async fn connect(server: &ServerProcess, dir: &Path, name: &str, codec: Codec) -> Client {
    let mut options = Options::new(server.url.clone(), token(dir, name), codec);
    options.request_timeout = WAIT;
    Client::connect(options).await.expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_state_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let room = RoomId::new("survivors").unwrap();
    let server = ServerProcess::durable(dir.path());
    let ada = connect(&server, dir.path(), "ada", Codec::MsgPack).await;
    let bo = connect(&server, dir.path(), "bo", Codec::Json).await;
    ada.request(CreateRoom {
        room: room.clone(),
        topic: ShortText::new("t").unwrap(),
        cap: None,
        visibility: Visibility::Open,
    })
    .await
    .unwrap();
    bo.request(Join { room: room.clone(), since: None, invite: None }).await.unwrap();
    let pin = ada
        .request(AddPin {
            room: room.clone(),
            seq: None,
            note: Some(Note::new("Rules v1").unwrap()),
            title: None,
            edit: None,
        })
        .await
        .unwrap();

    // Three senders pipeline messages; the kill lands while they are in flight,
    // once 300 sends have been acknowledged.
    let ada = std::sync::Arc::new(ada);
    let (acks_tx, mut acks) = tokio::sync::watch::channel(0usize);
    let acks_tx = std::sync::Arc::new(acks_tx);
    let mut senders = Vec::new();
    for s in 0..3 {
        let (ada, room, acks_tx) = (ada.clone(), room.clone(), acks_tx.clone());
        senders.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for n in 0..2000 {
                match ada.send(&room, &format!("s{s} m{n}")).await {
                    Ok(appended) => acked.push((appended.seq, format!("s{s} m{n}"))),
                    Err(_) => break, // the server died under us
                }
                acks_tx.send_modify(|n| *n += 1);
            }
            acked
        }));
    }
    tokio::time::timeout(WAIT, acks.wait_for(|n| *n >= 300)).await.expect("sends are acknowledged").unwrap();
    server.kill_9();
    let mut acked = Vec::new();
    for sender in senders {
        acked.extend(tokio::time::timeout(WAIT, sender).await.unwrap().unwrap());
    }
    assert!(!acked.is_empty(), "some sends were acknowledged before the kill");

    let server = ServerProcess::durable(dir.path());
    let ada = connect(&server, dir.path(), "ada", Codec::MsgPack).await;
    let events = ada.history_all(&room).await.unwrap();
    let seqs: Vec<u64> = events.iter().filter_map(Event::seq).map(|s| s.0).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "the timeline has no gap");
    let stored: std::collections::HashMap<Seq, String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some((m.seq, m.text.to_string())),
            _ => None,
        })
        .collect();
    for (seq, text) in &acked {
        assert_eq!(stored.get(seq), Some(text), "acknowledged message {seq} is missing or different");
    }
    let members = ada.request(Members { room: room.clone() }).await.unwrap();
    assert_eq!(members.members.len(), 2);
    let mut ada = ada;
    let joined = ada.join(&room).await.unwrap();
    assert_eq!(joined.pins.first().map(|p| p.pin), Some(pin.pin.pin));
    // New messages continue right after the recovered head.
    let next = ada.send(&room, "after the crash").await.unwrap();
    assert_eq!(next.seq.0, seqs.len() as u64 + 1);
    server.kill_9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_connections_with_going_away_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::durable(dir.path());
    let mut ada = connect(&server, dir.path(), "ada", Codec::MsgPack).await;
    let status = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    while tokio::time::timeout(WAIT, ada.next_event()).await.unwrap().is_some() {}
    assert_eq!(ada.close_info().and_then(|c| c.hearth_code()), Some(CloseCode::GoingAway));
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "server did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
