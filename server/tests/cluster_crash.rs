//! Cluster mode, a node killed with SIGKILL mid-traffic: the members it served
//! resume on the other node with no gap and no duplicate, and every message
//! whose send was acknowledged — by either node — reaches every member.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::{ServerProcess, WAIT};
use hearth_cli::{Client, Options};
use hearth_protocol::ops::{CreateRoom, Visibility};
use hearth_protocol::{Codec, Event, RoomId, ShortText, UserId};
use hearth_server::auth::{self, Secret};
use hearth_testkit::RedisServer;

const SECRET: &str = "cluster-crash-test-secret-0123456789abcdef";
const EACH: usize = 400;

fn options(node: &ServerProcess, name: &str, codec: Codec) -> Options {
    let secret = Secret::new(SECRET.as_bytes().to_vec()).unwrap();
    let token = auth::mint(&secret, &UserId::new(name).unwrap(), Duration::from_secs(3600));
    let mut options = Options::new(node.url.clone(), token, codec);
    options.request_timeout = WAIT;
    options
}

async fn member(node: &ServerProcess, name: &str, codec: Codec, room: &RoomId) -> Client {
    let mut client = Client::connect(options(node, name, codec)).await.expect("connect");
    client.join(room).await.expect("join");
    client
}

/// Reads messages until the connection ends, or until `until` arrives.
async fn read_messages(client: &mut Client, until: Option<&str>) -> Vec<(u64, String)> {
    let mut got = Vec::new();
    while let Some(event) = tokio::time::timeout(WAIT, client.next_event()).await.expect("events keep coming") {
        if let Event::Message(m) = event {
            let done = until == Some(m.text.as_str());
            got.push((m.seq.0, m.text.to_string()));
            if done {
                break;
            }
        }
    }
    got
}

fn assert_once_in_order(got: &[(u64, String)], who: &str) {
    for pair in got.windows(2) {
        assert!(pair[1].0 > pair[0].0, "{who}: seq {} after {} (gap is fine, repeat is not)", pair[1].0, pair[0].0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_traffic_loses_nothing_acknowledged() {
    let redis = RedisServer::start().await;
    let a = ServerProcess::cluster(&redis.url(), "crash", SECRET);
    let b = ServerProcess::cluster(&redis.url(), "crash", SECRET);
    let r = RoomId::new("relay").unwrap();
    let mut owner = Client::connect(options(&b, "ada", Codec::MsgPack)).await.unwrap();
    owner
        .request(CreateRoom {
            room: r.clone(),
            topic: ShortText::new("t").unwrap(),
            cap: None,
            visibility: Visibility::Open,
        })
        .await
        .unwrap();
    owner.join(&r).await.unwrap();
    let mut ro = member(&a, "ro", Codec::MsgPack, &r).await;
    let mut rita = member(&b, "rita", Codec::Json, &r).await;
    let wa = Arc::new(member(&a, "wa", Codec::MsgPack, &r).await);
    let wb = Arc::new(member(&b, "wb", Codec::Json, &r).await);

    let (acks_tx, mut acks) = tokio::sync::watch::channel(0usize);
    let acks_tx = Arc::new(acks_tx);
    let writer = |client: Arc<Client>, name: &'static str, end: bool| {
        let (r, acks_tx) = (r.clone(), acks_tx.clone());
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for n in 0..EACH {
                let text = format!("{name} {n}");
                match client.send(&r, &text).await {
                    Ok(_) => acked.push(text),
                    Err(_) => break, // its node died under it
                }
                acks_tx.send_modify(|n| *n += 1);
            }
            if end {
                client.send(&r, "end").await.unwrap();
                acked.push("end".to_string());
            }
            acked
        })
    };
    let from_a = writer(wa.clone(), "wa", false);
    let from_b = writer(wb.clone(), "wb", true);
    let ro_before = tokio::spawn(async move {
        let got = read_messages(&mut ro, None).await;
        (ro, got)
    });

    tokio::time::timeout(WAIT, acks.wait_for(|n| *n >= 150)).await.expect("sends are acknowledged").unwrap();
    a.kill_9();
    let mut acked: Vec<String> = tokio::time::timeout(WAIT, from_a).await.unwrap().unwrap();
    let stopped_at = acked.len();
    assert!(stopped_at < EACH, "the kill landed while wa was sending");
    acked.extend(tokio::time::timeout(WAIT, from_b).await.unwrap().unwrap());

    // ro's node is gone: it resumes on the other one from where it was.
    let (ro, mut ro_got) = tokio::time::timeout(WAIT, ro_before).await.unwrap().unwrap();
    let mut resumed = ro.resume_with(options(&b, "ro", Codec::MsgPack)).await.expect("resume on the other node");
    assert!(resumed.truncated_on_resume().is_empty());
    ro_got.extend(read_messages(&mut resumed, Some("end")).await);
    let rita_got = read_messages(&mut rita, Some("end")).await;

    // The room's history is the truth: wa's sends that were stored but not
    // acknowledged are in it too.
    let history: Vec<(u64, String)> = owner
        .history_all(&r)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some((m.seq.0, m.text.to_string())),
            _ => None,
        })
        .collect();
    let stored: HashSet<&str> = history.iter().map(|(_, t)| t.as_str()).collect();
    for text in &acked {
        assert!(stored.contains(text.as_str()), "acknowledged {text} is not in history");
    }
    for (who, got) in [("ro", &ro_got), ("rita", &rita_got)] {
        assert_once_in_order(got, who);
        assert_eq!(got, &history, "{who} got exactly the room's history");
    }
    drop((wa, wb));
}
