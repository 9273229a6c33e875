//! Probation over real sockets, on one node and on two nodes sharing a
//! Redis, with a clock the test moves: in a room with `probation_secs`, a
//! newcomer waits longer between posts and their links are held for a
//! moderator's look — released (posted in their name) or dropped (logged) —
//! until the probation is over.

use std::time::Duration;

use hearth_protocol::ops::{HeldPosts, ModAction, ModLog, Release, RoomSettings, SendMessage, SetRoom};
use hearth_protocol::{ClientMsgId, Codec, ErrorCode, Event, Text};
use hearth_tests::*;

fn post(name: &str, text: &str, cmid: &str) -> SendMessage {
    SendMessage {
        room: room(name),
        text: Text::new(text).unwrap(),
        cmid: ClientMsgId::new(cmid).unwrap(),
        thread: None,
    }
}

both_modes_timed! {
    async fn a_newcomers_links_wait_for_a_moderator(d: Deployment) {
        let mut ada = d.client("ada", Codec::MsgPack).await;
        create_room(&ada, "careful", None).await.unwrap();
        ada.join(&room("careful")).await.unwrap();
        let three_days = RoomSettings { probation_secs: Some(3 * 86_400), ..RoomSettings::default() };
        ada.request(SetRoom { room: room("careful"), settings: three_days }).await.unwrap();
        let mut cy = d.client("cy", Codec::Json).await;
        cy.join(&room("careful")).await.unwrap();
        // Plain text goes through, but only every 30 seconds.
        cy.request(post("careful", "hello!", "c1")).await.unwrap();
        assert_eq!(code(cy.request(post("careful", "anyone?", "c2")).await), ErrorCode::SlowMode);
        d.advance(Duration::from_secs(31));
        // A link is held: the moderator sees it, nobody else.
        let held = cy.request(post("careful", "my photos: https://example.org/roll1", "c3")).await.unwrap();
        assert!(held.held);
        let seen = until_event(&mut ada, "the held post", |e| matches!(e, Event::Held(_))).await;
        assert!(matches!(seen, Event::Held(h) if h.from.as_str() == "cy"));
        let queue = ada.request(HeldPosts { room: room("careful") }).await.unwrap();
        assert_eq!(queue.held.len(), 1);
        assert_eq!(code(cy.request(HeldPosts { room: room("careful") }).await), ErrorCode::Forbidden);
        // Released: posted in cy's name, for everyone.
        let release = |cmid: &str, approve, reason: &str| Release {
            room: room("careful"),
            user: user("cy"),
            cmid: ClientMsgId::new(cmid).unwrap(),
            approve,
            reason: short(reason),
        };
        ada.request(release("c3", true, "")).await.unwrap();
        let shown = until_event(&mut cy, "the released post", |e| matches!(e, Event::Message(m) if m.cmid.as_str() == "c3")).await;
        assert!(matches!(shown, Event::Message(m) if m.from.as_str() == "cy" && m.released_by.as_ref().map(|u| u.as_str()) == Some("ada")));
        assert!(!seen_held(&mut cy).await, "members never see held posts");
        // Another, dropped with a reason (logged).
        d.advance(Duration::from_secs(31));
        assert!(cy.request(post("careful", "buy at www.shop.example", "c4")).await.unwrap().held);
        ada.request(release("c4", false, "no selling")).await.unwrap();
        assert_eq!(code(ada.request(release("c4", true, "")).await), ErrorCode::NoSuchTarget);
        let log = ada.request(ModLog { room: room("careful"), before: None, limit: None }).await.unwrap();
        assert!(log.entries.iter().any(|e| e.action == ModAction::Delete && e.reason.as_str() == "no selling"));
        // The moderators see it dropped; the author is not told, live or in history.
        let dropped = |e: &Event| matches!(e, Event::Moderation(m) if m.held.is_some());
        until_event(&mut ada, "the drop", dropped).await;
        // Three days on, cy is no newcomer: links go straight through.
        d.advance(Duration::from_secs(3 * 86_400));
        assert!(!cy.request(post("careful", "https://example.org/roll2", "c5")).await.unwrap().held);
        let c5 = |e: &Event| matches!(e, Event::Message(m) if m.cmid.as_str() == "c5");
        loop {
            let event = cy.next_event_within(WAIT).await.unwrap().expect("cy's own post");
            assert!(!dropped(&event), "the author of a dropped post is not told: {event:?}");
            if c5(&event) {
                break;
            }
        }
        let history = cy.history_all(&room("careful")).await.unwrap();
        assert!(!history.iter().any(dropped), "nor does cy's history show it");
        assert!(ada.history_all(&room("careful")).await.unwrap().iter().any(dropped), "moderators' does");
        cy.request(post("careful", "and again", "c6")).await.unwrap();
        d.stop().await;
    }
}

/// Whether `client` receives a held post within a moment.
async fn seen_held(client: &mut hearth_cli::Client) -> bool {
    while let Ok(Some(event)) = client.next_event_within(Duration::from_millis(300)).await {
        if matches!(event, Event::Held(_)) {
            return true;
        }
    }
    false
}

both_modes_timed! {
    async fn probation_by_posts_ends_with_the_newcomers_nth_post(d: Deployment) {
        let mut ada = d.client("ada", Codec::MsgPack).await;
        create_room(&ada, "steady", None).await.unwrap();
        ada.join(&room("steady")).await.unwrap();
        // bo has been around for more than a week when the room turns it on.
        let bo = d.client("bo", Codec::MsgPack).await;
        bo.request(hearth_protocol::ops::Join { room: room("steady"), since: None, invite: None }).await.unwrap();
        d.advance(Duration::from_secs(8 * 86_400));
        let two_posts = RoomSettings { probation_posts: Some(2), ..RoomSettings::default() };
        ada.request(SetRoom { room: room("steady"), settings: two_posts }).await.unwrap();
        let too_many = RoomSettings { probation_posts: Some(1001), ..RoomSettings::default() };
        assert_eq!(code(ada.request(SetRoom { room: room("steady"), settings: too_many }).await), ErrorCode::BadRequest);
        assert!(!bo.request(post("steady", "old hand: https://example.org", "b1")).await.unwrap().held);

        let mut cy = d.client("cy", Codec::Json).await;
        cy.join(&room("steady")).await.unwrap();
        cy.request(post("steady", "hello!", "c1")).await.unwrap();
        let first = until_event(&mut ada, "cy's first post", |e| matches!(e, Event::Message(m) if m.cmid.as_str() == "c1")).await;
        assert!(matches!(first, Event::Message(m) if m.probation_post == Some(1)), "marked as cy's first post on probation");
        // On probation: slow mode is stricter and a link is held.
        let slow = code(cy.request(post("steady", "anyone?", "c2")).await);
        assert_eq!(slow, ErrorCode::SlowMode);
        d.advance(Duration::from_secs(31));
        assert!(cy.request(post("steady", "my roll: https://example.org/roll1", "c3")).await.unwrap().held);
        until_event(&mut ada, "the held post", |e| matches!(e, Event::Held(_))).await;
        // Released, it is cy's second post: probation is over.
        let release = Release {
            room: room("steady"),
            user: user("cy"),
            cmid: ClientMsgId::new("c3").unwrap(),
            approve: true,
            reason: short(""),
        };
        ada.request(release).await.unwrap();
        let second = until_event(&mut cy, "the released post", |e| matches!(e, Event::Message(m) if m.cmid.as_str() == "c3")).await;
        assert!(matches!(second, Event::Message(m) if m.probation_post == Some(2)));
        assert!(!cy.request(post("steady", "https://example.org/roll2", "c4")).await.unwrap().held);
        let after = until_event(&mut cy, "a post after probation", |e| matches!(e, Event::Message(m) if m.cmid.as_str() == "c4")).await;
        assert!(matches!(after, Event::Message(m) if m.probation_post.is_none()));
        cy.request(post("steady", "and right away", "c5")).await.unwrap();
        d.stop().await;
    }
}
