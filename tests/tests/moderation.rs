//! Roles and moderation over real sockets, on one node and on two nodes
//! sharing a Redis, with a clock the tests move: roles given (and for a
//! time), titles, kick, ban (and for a time), unban, mute, slow mode, the
//! moderation log; what the member acted on sees live and after a
//! reconnect; and that a ban survives a restart.

use std::time::Duration;

use hearth_cli::{Client, ClientError};
use hearth_protocol::ops::{
    Ban, Kick, Members, ModAction, ModLog, Mute, RoomSettings, SetRole, SetRoom, Unban, Unmute, Visibility,
};
use hearth_protocol::{Codec, ErrorCode, Event, Role};
use hearth_tests::*;

async fn role_of(client: &Client, name: &str, who: &str) -> (Role, Option<String>) {
    let list = client.request(Members { room: room(name) }).await.unwrap();
    let member = list.members.into_iter().find(|m| m.user.as_str() == who).expect("a member");
    (member.role, member.title.map(|t| t.to_string()))
}

both_modes_timed! {
    async fn roles_are_given_by_rank_and_end_by_themselves(d: Deployment) {
        let (ada, bo, cy) = trio(&d, "roles").await;
        // A member gives nothing; the owner appoints a moderator.
        assert_eq!(code(bo.request(set_role("roles", "cy", Role::Welcomer)).await), ErrorCode::Forbidden);
        ada.request(set_role("roles", "bo", Role::Moderator)).await.unwrap();
        // A moderator gives welcomer (with a title and for a week), never moderator,
        // and cannot touch the owner or another moderator.
        let week = d.now().0 + 7 * 24 * 3600 * 1000;
        let welcomer = SetRole {
            expires_at: Some(hearth_protocol::Millis(week)),
            title: Some(short("topic lead")),
            ..set_role("roles", "cy", Role::Welcomer)
        };
        bo.request(welcomer).await.unwrap();
        assert_eq!(role_of(&bo, "roles", "cy").await, (Role::Welcomer, Some("topic lead".into())));
        assert_eq!(code(bo.request(set_role("roles", "cy", Role::Moderator)).await), ErrorCode::Forbidden);
        assert_eq!(code(bo.request(set_role("roles", "ada", Role::Member)).await), ErrorCode::Forbidden);
        assert_eq!(code(ada.request(set_role("roles", "ada", Role::Member)).await), ErrorCode::BadRequest);
        assert_eq!(code(ada.request(set_role("roles", "bo", Role::Owner)).await), ErrorCode::Forbidden);
        // A week later the welcomer is a member again; the title stays.
        d.advance(Duration::from_secs(7 * 24 * 3600 + 1));
        assert_eq!(role_of(&ada, "roles", "cy").await, (Role::Member, Some("topic lead".into())));
        // And cannot do a welcomer's work any more.
        let invite = hearth_protocol::ops::SetRoom {
            room: room("roles"),
            settings: RoomSettings { welcome: Some(short("hi")), ..RoomSettings::default() },
        };
        assert_eq!(code(cy.request(invite).await), ErrorCode::Forbidden);
        d.stop().await;
    }

    async fn a_kicked_member_hears_nothing_more_and_may_come_back(d: Deployment) {
        let (ada, mut bo, mut cy) = trio(&d, "kicks").await;
        ada.request(set_role("kicks", "cy", Role::Moderator)).await.unwrap();
        // Moderators cannot kick each other, or the owner; members kick no one.
        assert_eq!(code(bo.request(Kick { room: room("kicks"), user: user("cy"), reason: short("") }).await), ErrorCode::Forbidden);
        assert_eq!(code(cy.request(Kick { room: room("kicks"), user: user("ada"), reason: short("") }).await), ErrorCode::Forbidden);
        cy.request(Kick { room: room("kicks"), user: user("bo"), reason: short("cool off") }).await.unwrap();
        let kicked = until_event(&mut bo, "the kick", |e| matches!(e, Event::Moderation(_))).await;
        let Event::Moderation(kicked) = kicked else { unreachable!() };
        assert_eq!((kicked.action, kicked.reason.as_str()), (ModAction::Kick, "cool off"));
        // Nothing more reaches bo's connection.
        ada.send(&room("kicks"), "after the kick").await.unwrap();
        until_event(&mut cy, "ada's message", |e| matches!(e, Event::Message(_))).await;
        assert!(matches!(bo.next_event_within(Duration::from_millis(300)).await, Err(ClientError::Timeout(_))));
        assert_eq!(code(bo.send(&room("kicks"), "still here?").await), ErrorCode::NotMember);
        // A kick is not a ban: bo may join again.
        bo.join(&room("kicks")).await.unwrap();
        d.stop().await;
    }

    async fn a_ban_keeps_a_member_out_until_lifted_or_over(d: Deployment) {
        let (ada, mut bo, mut cy) = trio(&d, "bans").await;
        let position = bo.position(&room("bans")).unwrap();
        ada.request(Ban { room: room("bans"), user: user("bo"), reason: short("spam"), duration_secs: None }).await.unwrap();
        let banned = until_event(&mut bo, "the ban", |e| matches!(e, Event::Moderation(_))).await;
        assert!(matches!(banned, Event::Moderation(m) if m.action == ModAction::Ban));
        ada.send(&room("bans"), "while bo is banned").await.unwrap();
        until_event(&mut cy, "the message", |e| matches!(e, Event::Message(_))).await;
        // No rejoin, no resume of what followed the ban.
        assert_eq!(code(bo.join(&room("bans")).await), ErrorCode::Banned);
        let mut again = d.node("bo").client("bo", Codec::MsgPack).await;
        assert_eq!(code(again.join_since(&room("bans"), Some(position)).await), ErrorCode::Banned);
        assert_eq!(code(again.request(hearth_protocol::ops::History { room: room("bans"), before: None, after: None, limit: None }).await), ErrorCode::NotMember);
        // Lifted: bo joins again.
        ada.request(Unban { room: room("bans"), user: user("bo") }).await.unwrap();
        again.join(&room("bans")).await.unwrap();
        // A ban for a day ends by itself.
        ada.request(Ban { room: room("bans"), user: user("cy"), reason: short("a day off"), duration_secs: Some(86_400) }).await.unwrap();
        assert_eq!(code(cy.join(&room("bans")).await), ErrorCode::Banned);
        d.advance(Duration::from_secs(86_401));
        cy.join(&room("bans")).await.unwrap();
        // One cannot ban oneself, or the owner.
        assert_eq!(code(ada.request(Ban { room: room("bans"), user: user("ada"), reason: short(""), duration_secs: None }).await), ErrorCode::BadRequest);
        d.stop().await;
    }

    async fn mutes_and_slow_mode_hold_posts_back_for_a_time(d: Deployment) {
        let (ada, mut bo, cy) = trio(&d, "quiet").await;
        ada.request(Mute { room: room("quiet"), user: user("bo"), duration_secs: 60, reason: short("heated") }).await.unwrap();
        match bo.send(&room("quiet"), "but...").await {
            Err(ClientError::Server(e)) => {
                assert_eq!(e.code, ErrorCode::Muted);
                assert_eq!(e.retry_after_ms, Some(60_000));
            }
            other => panic!("muted, not {other:?}"),
        }
        let list = ada.request(Members { room: room("quiet") }).await.unwrap();
        assert!(list.members.iter().any(|m| m.user.as_str() == "bo" && m.muted_until.is_some()));
        d.advance(Duration::from_secs(61));
        bo.send(&room("quiet"), "calm now").await.unwrap();
        // Unmute lifts one early.
        ada.request(Mute { room: room("quiet"), user: user("bo"), duration_secs: 3600, reason: short("") }).await.unwrap();
        ada.request(Unmute { room: room("quiet"), user: user("bo") }).await.unwrap();
        bo.send(&room("quiet"), "thanks").await.unwrap();
        // Slow mode: one message per member per 30 s; moderators are exempt.
        let slow = SetRoom { room: room("quiet"), settings: RoomSettings { slow_mode_secs: Some(30), ..RoomSettings::default() } };
        assert_eq!(code(bo.request(slow.clone()).await), ErrorCode::Forbidden);
        ada.request(slow).await.unwrap();
        cy.send(&room("quiet"), "one").await.unwrap();
        match cy.send(&room("quiet"), "two").await {
            Err(ClientError::Server(e)) => {
                assert_eq!(e.code, ErrorCode::SlowMode);
                assert!(e.retry_after_ms.is_some_and(|ms| ms > 0 && ms <= 30_000), "{e:?}");
            }
            other => panic!("slow mode, not {other:?}"),
        }
        ada.send(&room("quiet"), "owner one").await.unwrap();
        ada.send(&room("quiet"), "owner two").await.unwrap();
        d.advance(Duration::from_secs(31));
        cy.send(&room("quiet"), "two, later").await.unwrap();
        until_event(&mut bo, "cy's later message", |e| matches!(e, Event::Message(m) if m.text.as_str() == "two, later")).await;
        d.stop().await;
    }

    async fn the_moderation_log_lists_every_action_newest_first(d: Deployment) {
        let (ada, bo, _cy) = trio(&d, "log").await;
        ada.request(set_role("log", "bo", Role::Moderator)).await.unwrap();
        bo.request(Mute { room: room("log"), user: user("cy"), duration_secs: 60, reason: short("shouting") }).await.unwrap();
        bo.request(Kick { room: room("log"), user: user("cy"), reason: short("still shouting") }).await.unwrap();
        ada.request(Ban { room: room("log"), user: user("cy"), reason: short("third time"), duration_secs: Some(3600) }).await.unwrap();
        let settings = RoomSettings { topic: Some(short("calm")), visibility: Some(Visibility::Approval), ..RoomSettings::default() };
        ada.request(SetRoom { room: room("log"), settings }).await.unwrap();
        let page = bo.request(ModLog { room: room("log"), before: None, limit: Some(3) }).await.unwrap();
        let actions: Vec<ModAction> = page.entries.iter().map(|e| e.action).collect();
        assert_eq!(actions, [ModAction::SetRoom, ModAction::Ban, ModAction::Kick]);
        assert!(page.more);
        assert_eq!(page.entries[1].reason.as_str(), "third time");
        assert_eq!(page.entries[1].until.map(|t| t.0), Some(page.entries[1].at.0 + 3_600_000));
        assert_eq!(page.entries[2].by.as_str(), "bo");
        let rest = bo.request(ModLog { room: room("log"), before: Some(page.entries[2].entry), limit: None }).await.unwrap();
        let actions: Vec<ModAction> = rest.entries.iter().map(|e| e.action).collect();
        assert_eq!(actions, [ModAction::Mute, ModAction::SetRole]);
        assert!(!rest.more);
        // Members do not read it.
        let mut member = d.client("di", Codec::Json).await;
        member.join(&room("log")).await.ok();
        assert!(matches!(code(member.request(ModLog { room: room("log"), before: None, limit: None }).await), ErrorCode::NotMember | ErrorCode::Forbidden | ErrorCode::ApprovalRequired));
        d.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_mutes_roles_and_the_log_survive_a_restart() {
    let d = Deployment::single_durable().await;
    let (ada, _bo, _cy) = trio(&d, "durable").await;
    ada.request(set_role("durable", "cy", Role::Moderator)).await.unwrap();
    ada.request(Ban { room: room("durable"), user: user("bo"), reason: short("spam"), duration_secs: None })
        .await
        .unwrap();
    ada.request(Mute { room: room("durable"), user: user("cy"), duration_secs: 3600, reason: short("") })
        .await
        .unwrap();
    let d = d.restart().await;
    let mut bo = d.client("bo", Codec::MsgPack).await;
    assert_eq!(code(bo.join(&room("durable")).await), ErrorCode::Banned);
    let ada = d.client("ada", Codec::MsgPack).await;
    assert_eq!(role_of(&ada, "durable", "cy").await.0, Role::Moderator);
    let log = ada.request(ModLog { room: room("durable"), before: None, limit: None }).await.unwrap();
    assert_eq!(
        log.entries.iter().map(|e| e.action).collect::<Vec<_>>(),
        [ModAction::Mute, ModAction::Ban, ModAction::SetRole]
    );
    let list = ada.request(Members { room: room("durable") }).await.unwrap();
    assert!(list.members.iter().any(|m| m.user.as_str() == "cy" && m.muted_until.is_some()), "the mute survived");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_mode_remembers_the_last_post_across_a_restart() {
    let d = Deployment::single_durable().await;
    let mut ada = d.client("ada", Codec::MsgPack).await;
    create_room(&ada, "patient", None).await.unwrap();
    ada.join(&room("patient")).await.unwrap();
    let hourly = RoomSettings { slow_mode_secs: Some(3600), ..RoomSettings::default() };
    ada.request(SetRoom { room: room("patient"), settings: hourly }).await.unwrap();
    let mut bo = d.client("bo", Codec::Json).await;
    bo.join(&room("patient")).await.unwrap();
    bo.send(&room("patient"), "once an hour").await.unwrap();
    let d = d.restart().await;
    let mut bo = d.client("bo", Codec::Json).await;
    bo.join(&room("patient")).await.unwrap();
    let refused = refusal(bo.send(&room("patient"), "again right away").await);
    assert_eq!(refused.code, ErrorCode::SlowMode);
    assert!(refused.retry_after_ms.is_some_and(|ms| ms > 3_500_000), "{refused:?}");
    d.stop().await;
}
