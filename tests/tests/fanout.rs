//! Fan-out: every member sees every message exactly once, in seq order, whatever
//! codec each member speaks — on one node, and with the room's members split
//! over two nodes sharing a Redis.

use std::collections::BTreeSet;

use hearth_protocol::Codec;
use hearth_tests::*;

both_modes! {
async fn two_members_see_each_others_messages(server: Deployment) {
    let mut ada = server.client("ada", Codec::MsgPack).await;
    let mut bo = server.client("bo", Codec::Json).await;
    let r = room("cameras");
    create_room(&ada, "cameras", None).await.unwrap();
    ada.join(&r).await.unwrap();
    bo.join(&r).await.unwrap();
    let first = ada.send(&r, "hello bo").await.unwrap();
    let second = bo.send(&r, "hi ada").await.unwrap();
    assert_eq!(second.seq.0, first.seq.0 + 1);
    for client in [&mut ada, &mut bo] {
        let got = collect_messages(client, &r, 2).await.unwrap();
        assert_eq!(got, vec![(first.seq.0, "hello bo".into()), (second.seq.0, "hi ada".into())]);
    }
    server.stop().await;
}

async fn a_hundred_members_with_mixed_codecs_see_everything_once_in_order(server: Deployment) {
    const MEMBERS: usize = 100;
    const SENDERS: usize = 5;
    const PER_SENDER: usize = 40;
    let r = room("big-room");
    let mut clients = Vec::new();
    for i in 0..MEMBERS {
        let codec = if i % 2 == 0 { Codec::MsgPack } else { Codec::Json };
        let mut client = server.client(&format!("member{i}"), codec).await;
        if i == 0 {
            create_room(&client, "big-room", None).await.unwrap();
        }
        client.join(&r).await.unwrap();
        clients.push(client);
    }
    // Senders send concurrently from their own tasks; everyone else listens.
    let mut readers = Vec::new();
    let mut senders = Vec::new();
    for (i, mut client) in clients.into_iter().enumerate() {
        let r = r.clone();
        if i < SENDERS {
            senders.push(tokio::spawn(async move {
                for n in 0..PER_SENDER {
                    client.send(&r, &format!("from {i} #{n}")).await.unwrap();
                }
                client
            }));
        } else {
            readers.push(tokio::spawn(async move {
                let got = collect_messages(&mut client, &r, SENDERS * PER_SENDER).await.unwrap();
                (i, got)
            }));
        }
    }
    let mut senders_back = Vec::new();
    for sender in senders {
        senders_back.push(sender.await.unwrap());
    }
    let expected_texts: BTreeSet<String> =
        (0..SENDERS).flat_map(|i| (0..PER_SENDER).map(move |n| format!("from {i} #{n}"))).collect();
    let mut reference: Option<Vec<(u64, String)>> = None;
    for reader in readers {
        let (i, got) = reader.await.unwrap();
        assert_strictly_increasing(got.iter().map(|(s, _)| *s), &format!("member{i}"));
        let texts: BTreeSet<String> = got.iter().map(|(_, t)| t.clone()).collect();
        assert_eq!(texts, expected_texts, "member{i} saw a different set of messages");
        // Everyone sees the same order: the room's.
        match &reference {
            None => reference = Some(got),
            Some(reference) => assert_eq!(&got, reference, "member{i} saw another order"),
        }
    }
    // Senders also receive the whole stream, their own messages included.
    for mut sender in senders_back {
        let got = collect_messages(&mut sender, &r, SENDERS * PER_SENDER).await.unwrap();
        assert_eq!(Some(&got), reference.as_ref());
    }
    server.stop().await;
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_members_on_two_nodes_over_a_redis_cluster() {
    a_hundred_members_with_mixed_codecs_see_everything_once_in_order::run(Deployment::redis_cluster().await).await;
}
