//! Room rules: idempotent sends, the member cap, pins, and the clear errors a
//! client gets when it asks for something it may not have.

use hearth_cli::ClientError;
use hearth_protocol::ops::{AddPin, History, Leave, ListRooms, Members, RemovePin};
use hearth_protocol::{ClientMsgId, Codec, ErrorCode, Event, Note, Role, Seq};
use hearth_tests::*;

fn code(result: Result<impl std::fmt::Debug, ClientError>) -> ErrorCode {
    match result {
        Err(ClientError::Server(error)) => error.code,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

both_modes! {
async fn a_retried_send_is_stored_once_with_the_same_seq(server: Deployment) {
    let r = room("retry");
    let mut ada = server.client("ada", Codec::MsgPack).await;
    create_room(&ada, "retry", None).await.unwrap();
    ada.join(&r).await.unwrap();
    let cmid = ClientMsgId::new("retry-1").unwrap();
    let first = ada.send_with_cmid(&r, "only once", &cmid).await.unwrap();
    let again = ada.send_with_cmid(&r, "only once", &cmid).await.unwrap();
    assert_eq!(first, again);
    // Same id from another connection of the same user (a reconnect, to the
    // other node in a cluster) also dedupes.
    let other = server.other_node("ada").client("ada", Codec::Json).await;
    assert_eq!(other.send_with_cmid(&r, "only once", &cmid).await.unwrap(), first);
    // The same id from a different user is a different message.
    let bo = server.client("bo", Codec::MsgPack).await;
    bo.request(hearth_protocol::ops::Join { room: r.clone(), since: None, invite: None }).await.unwrap();
    assert_ne!(bo.send_with_cmid(&r, "mine", &cmid).await.unwrap().seq, first.seq);

    let page = ada.request(History { room: r.clone(), before: None, after: None, limit: None }).await.unwrap();
    let copies =
        page.events.iter().filter(|e| matches!(e, Event::Message(m) if m.text.as_str() == "only once")).count();
    assert_eq!(copies, 1, "history holds the retried message once");
    assert_eq!(collect_messages(&mut ada, &r, 2).await.unwrap().len(), 2);
    server.stop().await;
}

async fn the_101st_join_to_a_100_member_room_is_refused(server: Deployment) {
    let r = room("full-house");
    let owner = server.client("owner", Codec::MsgPack).await;
    create_room(&owner, "full-house", Some(100)).await.unwrap();
    for i in 1..100 {
        let mut member = server.client(&format!("m{i}"), Codec::MsgPack).await;
        member.join(&r).await.unwrap();
    }
    let members = owner.request(Members { room: r.clone() }).await.unwrap();
    assert_eq!(members.members.len(), 100);
    assert_eq!(members.members[0].role, Role::Owner);
    let mut late = server.client("late", Codec::Json).await;
    match late.join(&r).await {
        Err(ClientError::Server(error)) => {
            assert_eq!(error.code, ErrorCode::RoomFull);
            assert!(error.message.contains("full"), "{}", error.message);
        }
        other => panic!("expected room_full, got {other:?}"),
    }
    // A member leaving makes room.
    let m1 = server.client("m1", Codec::MsgPack).await;
    m1.request(Leave { room: r.clone() }).await.unwrap();
    late.join(&r).await.unwrap();
    server.stop().await;
}

async fn requests_that_cannot_be_served_get_typed_errors(server: Deployment) {
    let r = room("rules");
    let mut ada = server.client("ada", Codec::MsgPack).await;
    let bo = server.client("bo", Codec::Json).await;
    assert_eq!(code(bo.send(&r, "hi").await), ErrorCode::NotFound);
    create_room(&ada, "rules", None).await.unwrap();
    assert_eq!(
        code(create_room(&bo, "rules", None).await.map_err(|e| e.downcast::<ClientError>().unwrap())),
        ErrorCode::AlreadyExists
    );
    assert_eq!(code(bo.send(&r, "hi").await), ErrorCode::NotMember);
    assert_eq!(
        code(bo.request(History { room: r.clone(), before: None, after: None, limit: None }).await),
        ErrorCode::NotMember
    );
    assert_eq!(code(ada.request(Leave { room: r.clone() }).await), ErrorCode::Forbidden);
    ada.join(&r).await.unwrap();
    let listed = bo.request(ListRooms::default()).await.unwrap();
    assert_eq!(listed.rooms.len(), 1);
    assert_eq!(listed.rooms[0].role, None);
    server.stop().await;
}

async fn pins_reach_members_and_show_on_join(server: Deployment) {
    let r = room("darkroom");
    let mut ada = server.client("ada", Codec::MsgPack).await;
    create_room(&ada, "darkroom", None).await.unwrap();
    ada.join(&r).await.unwrap();
    let mut bo = server.client("bo", Codec::Json).await;
    bo.join(&r).await.unwrap();

    let mission = ada
        .request(AddPin {
            room: r.clone(),
            seq: None,
            note: Some(Note::new("We develop film together.").unwrap()),
            title: Some(hearth_protocol::ShortText::new("Mission").unwrap()),
            edit: None,
        })
        .await
        .unwrap();
    let sent = bo.send(&r, "Rodinal 1+50 for 11 minutes").await.unwrap();
    let pinned_msg =
        ada.request(AddPin { room: r.clone(), seq: Some(sent.seq), note: None, title: None, edit: None }).await.unwrap();
    assert_eq!(pinned_msg.pin.text.as_str(), "Rodinal 1+50 for 11 minutes");
    assert_eq!(
        code(bo.request(AddPin { room: r.clone(), seq: Some(sent.seq), note: None, title: None, edit: None }).await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(ada.request(AddPin { room: r.clone(), seq: Some(Seq(999)), note: None, title: None, edit: None }).await),
        ErrorCode::NoSuchTarget
    );
    ada.request(RemovePin { room: r.clone(), pin: pinned_msg.pin.pin }).await.unwrap();

    // bo sees the pin events live.
    let mut pins_seen = Vec::new();
    while pins_seen.len() < 3 {
        match bo.next_event_within(WAIT).await.unwrap().unwrap() {
            Event::Pin(p) => pins_seen.push(format!("pin {}", p.pin.text)),
            Event::Unpin(u) => pins_seen.push(format!("unpin {}", u.pin.0)),
            _ => {}
        }
    }
    assert_eq!(pins_seen[0], "pin We develop film together.");
    // A newcomer gets the mission first in the join reply.
    let mut cy = server.client("cy", Codec::MsgPack).await;
    let joined = cy.join(&r).await.unwrap();
    assert_eq!(joined.pins.len(), 1);
    assert_eq!(joined.pins[0].pin, mission.pin.pin);
    assert!(joined.first_join);
    server.stop().await;
}
}
