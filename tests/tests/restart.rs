//! A graceful restart keeps rooms, memberships, pins and history, and a resume
//! across it has no gap. (Crashes: see server/tests/crash.rs, which kills the real
//! binary with SIGKILL.)

use hearth_protocol::ops::{AddPin, History, ListRooms, Members, ResumeMode};
use hearth_protocol::{CloseCode, Codec, Event, Note};
use hearth_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_a_graceful_restart_and_clients_resume_across_it() {
    survives_a_restart(Deployment::single_durable().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_restarting_every_node_of_a_cluster() {
    survives_a_restart(Deployment::cluster().await).await;
}

/// Everything stops and starts again on the same store (the data directory,
/// or Redis); bo comes back on the other node in a cluster.
async fn survives_a_restart(server: Deployment) {
    let r = room("archive");
    let mut ada = server.client("ada", Codec::MsgPack).await;
    create_room(&ada, "archive", None).await.unwrap();
    ada.join(&r).await.unwrap();
    let mut bo = server.client("bo", Codec::Json).await;
    bo.join(&r).await.unwrap();
    ada.request(AddPin {
        room: r.clone(),
        seq: None,
        note: Some(Note::new("Keep it analog.").unwrap()),
        title: None,
        edit: None,
    })
    .await
    .unwrap();
    let mut acked = Vec::new();
    for n in 0..30 {
        acked.push(ada.send(&r, &format!("before {n}")).await.unwrap().seq);
    }
    collect_messages(&mut bo, &r, 10).await.unwrap();
    let bo_position = bo.position(&r).unwrap();
    let server = server.restart().await;
    // Shutdown closed bo with going_away, which tells it to reconnect.
    while bo.next_event_within(WAIT).await.unwrap().is_some() {}
    assert_eq!(bo.close_info().and_then(|c| c.hearth_code()), Some(CloseCode::GoingAway));

    let ada = server.client("ada", Codec::MsgPack).await;
    let rooms = ada.request(ListRooms::default()).await.unwrap();
    assert_eq!(rooms.rooms.len(), 1);
    assert_eq!(rooms.rooms[0].members, 2);
    let members = ada.request(Members { room: r.clone() }).await.unwrap();
    assert_eq!(members.members.iter().map(|m| m.user.as_str()).collect::<Vec<_>>(), ["ada", "bo"]);
    let page = ada.request(History { room: r.clone(), before: None, after: None, limit: Some(100) }).await.unwrap();
    let seqs: Vec<_> = page.events.iter().filter(|e| matches!(e, Event::Message(_))).filter_map(Event::seq).collect();
    assert_eq!(seqs, acked, "every acknowledged message is in history");

    // bo resumes from where it stopped reading: 20 before the restart, then new ones.
    let mut bo = server.other_node("bo").client("bo", Codec::Json).await;
    let joined = bo.join_since(&r, Some(bo_position)).await.unwrap();
    assert_eq!(joined.resume, ResumeMode::Replay);
    assert_eq!(joined.pins.len(), 1);
    ada.send(&r, "after restart").await.unwrap();
    let got = collect_messages(&mut bo, &r, 21).await.unwrap();
    assert_strictly_increasing(got.iter().map(|(s, _)| *s), "bo");
    assert_eq!(got[0].1, "before 10");
    assert_eq!(got[20].1, "after restart");
    server.stop().await;
}
