//! Vetting, invites and gated rooms over real sockets, on one node and on two
//! nodes sharing a Redis, with a clock the tests move: a request reaches the
//! welcomers live (and nobody else), is approved or denied, and the requester
//! hears it live or finds it on the next join; invite codes skip the queue
//! until they expire, are used up or revoked; a gated room takes the holders
//! of a role in its lobby. And pending requests and invites survive a restart.

use std::time::Duration;

use hearth_cli::{Client, ClientError};
use hearth_protocol::ops::{
    CreateInvite, CreateRoom, DecideJoin, History, Join, JoinRequests, ModAction, ModLog, RequestJoin, RevokeInvite,
    RoomSettings, SetRole, SetRoom, Visibility,
};
use hearth_protocol::{Codec, ErrorCode, Event, Note, Role};
use hearth_tests::*;

/// Every event `client` has received so far (reading for a moment).
async fn drain(client: &mut Client) -> Vec<Event> {
    let mut seen = Vec::new();
    while let Ok(Some(event)) = client.next_event_within(Duration::from_millis(300)).await {
        seen.push(event);
    }
    seen
}

async fn make_room(owner: &Client, name: &str, visibility: Visibility) {
    owner.request(CreateRoom { room: room(name), topic: short(""), cap: None, visibility }).await.unwrap();
}

async fn join_with(client: &mut Client, name: &str, invite: &str) -> Result<(), ClientError> {
    client.request(Join { room: room(name), since: None, invite: Some(invite.into()) }).await.map(drop)
}

fn request(name: &str, note: &str) -> RequestJoin {
    RequestJoin { room: room(name), note: Note::new(note).unwrap() }
}

fn decide(name: &str, who: &str, approve: bool, reason: &str) -> DecideJoin {
    DecideJoin { room: room(name), user: user(who), approve, reason: short(reason) }
}

both_modes_timed! {
    async fn a_request_reaches_the_welcomers_and_its_outcome_the_requester(d: Deployment) {
        let mut ada = d.client("ada", Codec::MsgPack).await;
        make_room(&ada, "vetted", Visibility::Approval).await;
        ada.join(&room("vetted")).await.unwrap();
        // Dee welcomes; cy is a member, approved earlier.
        let mut dee = d.client("dee", Codec::Json).await;
        dee.request(request("vetted", "hi")).await.unwrap();
        ada.request(decide("vetted", "dee", true, "")).await.unwrap();
        dee.join(&room("vetted")).await.unwrap();
        let set = |who: &str, role| SetRole { room: room("vetted"), user: user(who), role, expires_at: None, title: None };
        ada.request(set("dee", Role::Welcomer)).await.unwrap();
        let mut cy = d.client("cy", Codec::MsgPack).await;
        cy.request(request("vetted", "photographer")).await.unwrap();
        dee.request(decide("vetted", "cy", true, "")).await.unwrap();
        cy.join(&room("vetted")).await.unwrap();
        drain(&mut cy).await;

        // Bo may not join; asks with the answer to the room's question.
        let mut bo = d.client("bo", Codec::Json).await;
        assert_eq!(code(bo.join(&room("vetted")).await), ErrorCode::ApprovalRequired);
        bo.request(request("vetted", "I shoot a Leica M6")).await.unwrap();
        let asked = until_event(&mut dee, "the request", |e| matches!(e, Event::JoinRequest(r) if r.from.as_str() == "bo")).await;
        let Event::JoinRequest(asked) = asked else { unreachable!() };
        assert_eq!((asked.from.as_str(), asked.note.as_str()), ("bo", "I shoot a Leica M6"));
        let queue = dee.request(JoinRequests { room: room("vetted") }).await.unwrap();
        assert_eq!(queue.requests.iter().map(|r| r.user.as_str()).collect::<Vec<_>>(), ["bo"]);
        // A member neither sees the request nor reads the queue.
        assert_eq!(code(cy.request(JoinRequests { room: room("vetted") }).await), ErrorCode::Forbidden);
        // Pending, bo reads nothing of the room.
        let peek = History { room: room("vetted"), before: None, after: None, limit: None };
        assert_eq!(code(bo.request(peek.clone()).await), ErrorCode::NotMember);

        // Approved: bo hears it live, then joins; everyone sees who let bo in.
        let welcome = RoomSettings { welcome: Some(short("Hi! Read the pins.")), ..RoomSettings::default() };
        ada.request(SetRoom { room: room("vetted"), settings: welcome }).await.unwrap();
        dee.request(decide("vetted", "bo", true, "")).await.unwrap();
        let told = until_event(&mut bo, "the decision", |e| matches!(e, Event::JoinDecision(_))).await;
        assert!(matches!(told, Event::JoinDecision(d) if d.approved && d.by.as_str() == "dee"));
        // The first join after the approval is bo's first: the welcome is shown
        // then, and once; the welcomers see bo arrive.
        let first = bo.join(&room("vetted")).await.unwrap();
        assert!(first.first_join, "the join that brings a vetted newcomer in is their first");
        assert_eq!(first.room.welcome.as_ref().map(|w| w.as_str()), Some("Hi! Read the pins."));
        let arrived = until_event(&mut dee, "bo's arrival", |e| matches!(e, Event::Arrived(_))).await;
        assert!(matches!(arrived, Event::Arrived(a) if a.from.as_str() == "bo"));
        let mut again = d.other_node("bo").client("bo", Codec::MsgPack).await;
        assert!(!again.join(&room("vetted")).await.unwrap().first_join, "the second is not");
        let joined = until_event(&mut cy, "bo's arrival", |e| matches!(e, Event::MemberJoined(j) if j.from.as_str() == "bo")).await;
        assert!(matches!(joined, Event::MemberJoined(j) if j.approved_by.as_ref().map(|u| u.as_str()) == Some("dee")));
        let seen = drain(&mut cy).await;
        assert!(!seen.iter().any(|e| matches!(e, Event::JoinRequest(_))), "members never see requests: {seen:?}");
        assert!(!seen.iter().any(|e| matches!(e, Event::Arrived(_))), "nor arrivals: {seen:?}");
        // A member's history skips the requests; a welcomer's shows them.
        let page = cy.request(peek.clone()).await.unwrap();
        assert!(!page.events.iter().any(|e| matches!(e, Event::JoinRequest(_))));
        let page = dee.request(peek.clone()).await.unwrap();
        assert!(page.events.iter().any(|e| matches!(e, Event::JoinRequest(r) if r.from.as_str() == "bo")));

        // Denied: eve hears why, and her next join says it too; she may ask again.
        let mut eve = d.client("eve", Codec::MsgPack).await;
        eve.request(request("vetted", "sell cameras")).await.unwrap();
        dee.request(decide("vetted", "eve", false, "no sellers here")).await.unwrap();
        let told = until_event(&mut eve, "the denial", |e| matches!(e, Event::JoinDecision(_))).await;
        assert!(matches!(told, Event::JoinDecision(d) if !d.approved && d.reason.as_str() == "no sellers here"));
        match eve.join(&room("vetted")).await {
            Err(ClientError::Server(e)) => {
                assert_eq!(e.code, ErrorCode::ApprovalRequired);
                assert!(e.message.contains("no sellers here"), "{}", e.message);
            }
            other => panic!("denied, not {other:?}"),
        }
        assert_eq!(code(eve.request(peek).await), ErrorCode::NotMember);
        eve.request(request("vetted", "I only shoot film, promise")).await.unwrap();
        // Deciding twice, or on nobody, finds nothing.
        assert_eq!(code(dee.request(decide("vetted", "bo", true, "")).await), ErrorCode::NoSuchTarget);
        let log = ada.request(ModLog { room: room("vetted"), before: None, limit: None }).await.unwrap();
        let actions: Vec<_> = log.entries.iter().map(|e| (e.action, e.user.as_ref().map(|u| u.to_string()))).collect();
        assert!(actions.contains(&(ModAction::Approve, Some("bo".into()))), "{actions:?}");
        assert!(actions.contains(&(ModAction::Reject, Some("eve".into()))), "{actions:?}");
        d.stop().await;
    }

    async fn an_offline_requester_finds_the_outcome_on_the_next_join(d: Deployment) {
        let ada = d.client("ada", Codec::MsgPack).await;
        make_room(&ada, "later", Visibility::Approval).await;
        let bo = d.client("bo", Codec::MsgPack).await;
        bo.request(request("later", "")).await.unwrap();
        let cy = d.client("cy", Codec::MsgPack).await;
        cy.request(request("later", "")).await.unwrap();
        drop((bo, cy));
        ada.request(decide("later", "bo", true, "")).await.unwrap();
        ada.request(decide("later", "cy", false, "full for now")).await.unwrap();
        let mut bo = d.client("bo", Codec::Json).await;
        let rooms = bo.rooms_all().await.unwrap();
        assert!(rooms.iter().any(|r| r.room.as_str() == "later" && r.role == Some(Role::Member)), "{rooms:?}");
        bo.join(&room("later")).await.unwrap();
        let mut cy = d.client("cy", Codec::Json).await;
        match cy.join(&room("later")).await {
            Err(ClientError::Server(e)) => assert!(e.message.contains("full for now"), "{}", e.message),
            other => panic!("denied, not {other:?}"),
        }
        d.stop().await;
    }

    async fn invites_skip_the_queue_until_used_up_expired_or_revoked(d: Deployment) {
        let mut ada = d.client("ada", Codec::MsgPack).await;
        make_room(&ada, "secret", Visibility::InviteOnly).await;
        ada.join(&room("secret")).await.unwrap();
        let mut bo = d.client("bo", Codec::MsgPack).await;
        assert_eq!(code(bo.join(&room("secret")).await), ErrorCode::InviteRequired);
        assert_eq!(code(bo.request(request("secret", "")).await), ErrorCode::InviteRequired);
        let two = ada.request(CreateInvite { room: room("secret"), ttl_secs: Some(3600), max_uses: Some(2) }).await.unwrap();
        assert_eq!((two.max_uses, two.uses), (Some(2), 0));
        join_with(&mut bo, "secret", &two.code).await.unwrap();
        let joined = until_event(&mut ada, "bo's arrival", |e| matches!(e, Event::MemberJoined(j) if j.from.as_str() == "bo")).await;
        assert!(matches!(&joined, Event::MemberJoined(j) if j.invite.as_deref() == Some(two.id.as_str())));
        // The code never shows: neither in the event nor in history.
        let history = ada.request(History { room: room("secret"), before: None, after: None, limit: None }).await.unwrap();
        assert!(!format!("{history:?}").contains(&two.code));
        // A member does not see invites being made.
        bo.join(&room("secret")).await.unwrap();
        drain(&mut bo).await;
        let mut cy = d.client("cy", Codec::Json).await;
        join_with(&mut cy, "secret", &two.code).await.unwrap();
        let mut dan = d.client("dan", Codec::Json).await;
        assert_eq!(code(join_with(&mut dan, "secret", &two.code).await), ErrorCode::InvalidInvite);
        assert_eq!(code(join_with(&mut dan, "secret", "made-up").await), ErrorCode::InvalidInvite);
        // An hour's invite, an hour and a minute later.
        let hour = ada.request(CreateInvite { room: room("secret"), ttl_secs: Some(3600), max_uses: None }).await.unwrap();
        d.advance(Duration::from_secs(3660));
        assert_eq!(code(join_with(&mut dan, "secret", &hour.code).await), ErrorCode::InvalidInvite);
        // Revoked: by its code or its id.
        let week = ada.request(CreateInvite { room: room("secret"), ttl_secs: None, max_uses: None }).await.unwrap();
        assert_eq!(code(bo.request(RevokeInvite { room: room("secret"), code: week.id.clone() }).await), ErrorCode::Forbidden);
        ada.request(RevokeInvite { room: room("secret"), code: week.code.clone() }).await.unwrap();
        assert_eq!(code(join_with(&mut dan, "secret", &week.code).await), ErrorCode::InvalidInvite);
        // A member makes no invites; a banned user cannot use one.
        assert_eq!(code(bo.request(CreateInvite { room: room("secret"), ttl_secs: None, max_uses: None }).await), ErrorCode::Forbidden);
        let open = ada.request(CreateInvite { room: room("secret"), ttl_secs: None, max_uses: None }).await.unwrap();
        ada.request(hearth_protocol::ops::Ban { room: room("secret"), user: user("dan"), reason: short(""), duration_secs: None }).await.unwrap();
        assert_eq!(code(join_with(&mut dan, "secret", &open.code).await), ErrorCode::Banned);
        let seen = drain(&mut bo).await;
        assert!(
            !seen.iter().any(|e| matches!(e, Event::Moderation(m) if matches!(m.action, ModAction::CreateInvite | ModAction::RevokeInvite))),
            "members are not told of invites: {seen:?}"
        );
        d.stop().await;
    }

    async fn a_gated_room_takes_the_holders_of_a_role_in_its_lobby(d: Deployment) {
        let ada = d.client("ada", Codec::MsgPack).await;
        make_room(&ada, "lobby", Visibility::Open).await;
        make_room(&ada, "backstage", Visibility::Open).await;
        let gate = RoomSettings {
            required_role: Some(Role::Welcomer),
            parent: Some(short("lobby")),
            ..RoomSettings::default()
        };
        ada.request(SetRoom { room: room("backstage"), settings: gate }).await.unwrap();
        let mut bo = d.client("bo", Codec::MsgPack).await;
        assert_eq!(code(bo.join(&room("backstage")).await), ErrorCode::Forbidden);
        bo.join(&room("lobby")).await.unwrap();
        assert_eq!(code(bo.join(&room("backstage")).await), ErrorCode::Forbidden);
        ada.request(SetRole { room: room("lobby"), user: user("bo"), role: Role::Welcomer, expires_at: None, title: None }).await.unwrap();
        // bo's role is read from the lobby's copy on bo's node: wait for it there.
        let mut joined = bo.join(&room("backstage")).await;
        for _ in 0..50 {
            if joined.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            joined = bo.join(&room("backstage")).await;
        }
        joined.unwrap();
        // An invite opens it to anyone else.
        let invite = ada.request(CreateInvite { room: room("backstage"), ttl_secs: None, max_uses: Some(1) }).await.unwrap();
        let mut cy = d.client("cy", Codec::Json).await;
        assert_eq!(code(cy.join(&room("backstage")).await), ErrorCode::Forbidden);
        join_with(&mut cy, "backstage", &invite.code).await.unwrap();
        d.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_invites_survive_a_restart() {
    let d = Deployment::single_durable().await;
    let ada = d.client("ada", Codec::MsgPack).await;
    make_room(&ada, "kept", Visibility::Approval).await;
    let bo = d.client("bo", Codec::MsgPack).await;
    bo.request(request("kept", "still waiting")).await.unwrap();
    let invite = ada.request(CreateInvite { room: room("kept"), ttl_secs: None, max_uses: Some(1) }).await.unwrap();
    let d = d.restart().await;
    let ada = d.client("ada", Codec::MsgPack).await;
    let queue = ada.request(JoinRequests { room: room("kept") }).await.unwrap();
    assert_eq!(queue.requests.len(), 1);
    assert_eq!(queue.requests[0].note.as_str(), "still waiting");
    let mut cy = d.client("cy", Codec::MsgPack).await;
    join_with(&mut cy, "kept", &invite.code).await.unwrap();
    let mut di = d.client("di", Codec::MsgPack).await;
    assert_eq!(
        code(join_with(&mut di, "kept", &invite.code).await),
        ErrorCode::InvalidInvite,
        "its one use was counted"
    );
    d.stop().await;
}
