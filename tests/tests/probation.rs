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
        // Three days on, cy is no newcomer: links go straight through.
        d.advance(Duration::from_secs(3 * 86_400));
        assert!(!cy.request(post("careful", "https://example.org/roll2", "c5")).await.unwrap().held);
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
