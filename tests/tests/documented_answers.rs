//! The answers PROTOCOL.md gives in its operations' rows, as a client written
//! from it meets them, on one node and on two sharing a Redis: the error code
//! of each refusal a client author asked about, and the few behaviours that
//! are easy to get wrong from the outside.

use std::time::Duration;

use hearth_protocol::ops::{
    AckRules, AddPin, CreateInvite, DecideJoin, Edit, Mute, React, RequestJoin, RevokeInvite, RoomSettings,
    SendMessage, SetRoom, Typing, Visibility,
};
use hearth_protocol::{ClientMsgId, Codec, Emoji, ErrorCode, Note, Seq, Text};
use hearth_tests::*;

fn post(name: &str, text: &str, cmid: &str, thread: Option<Seq>) -> SendMessage {
    SendMessage { room: room(name), text: Text::new(text).unwrap(), cmid: ClientMsgId::new(cmid).unwrap(), thread }
}

both_modes_timed! {
    async fn each_refusal_has_the_code_the_operation_row_gives(d: Deployment) {
        let (ada, bo, cy) = trio(&d, "answers").await;
        let r = || room("answers");
        let mine = bo.send(&r(), "bo's words").await.unwrap();

        // edit: someone else's message is not yours to edit.
        let edit = Edit { room: r(), target: mine.seq, text: Text::new("cy's words").unwrap() };
        assert_eq!(code(cy.request(edit).await), ErrorCode::Forbidden);

        // react: 20 different emoji on one message at most.
        let emoji = ["😀", "😁", "😂", "🤣", "😃", "😄", "😅", "😆", "😉", "😊", "😋", "😎", "😍", "😘", "🥰", "😗", "😙", "😚", "🙂", "🤗", "🤩"];
        for (n, e) in emoji.iter().enumerate() {
            let react = React { room: r(), target: mine.seq, emoji: Emoji::new(*e).unwrap(), on: true };
            let answer = cy.request(react).await;
            if n < 20 {
                answer.unwrap();
            } else {
                assert_eq!(code(answer), ErrorCode::LimitReached, "the 21st emoji");
            }
        }

        // send: a reply to a root that is not a message.
        assert_eq!(code(bo.request(post("answers", "re: nothing", "r1", Some(Seq(9_999)))).await), ErrorCode::NoSuchTarget);

        // ack_rules: a version other than the rules' current one.
        let rules = AddPin { room: r(), seq: None, note: Some(Note::new("Be kind.").unwrap()), title: Some(short("Rules")), edit: None };
        let version = ada.request(rules).await.unwrap().pin.version;
        assert_eq!(code(bo.request(AckRules { room: r(), version: version + 1 }).await), ErrorCode::BadRequest);
        bo.request(AckRules { room: r(), version }).await.unwrap();

        // typing: not while muted.
        let mute = Mute { room: r(), user: user("cy"), duration_secs: 600, reason: short("") };
        ada.request(mute).await.unwrap();
        assert_eq!(code(cy.request(Typing { room: r() }).await), ErrorCode::Muted);

        // request_join: by a member, and by someone banned.
        let vetted = RoomSettings { visibility: Some(Visibility::Approval), ..RoomSettings::default() };
        ada.request(SetRoom { room: r(), settings: vetted }).await.unwrap();
        let ask = |note: &str| RequestJoin { room: r(), note: Note::new(note).unwrap() };
        assert_eq!(code(bo.request(ask("again?")).await), ErrorCode::AlreadyExists);
        let ban = hearth_protocol::ops::Ban { room: r(), user: user("dee"), reason: short(""), duration_secs: None };
        ada.request(ban).await.unwrap();
        let dee = d.client("dee", Codec::Json).await;
        assert_eq!(code(dee.request(ask("let me in")).await), ErrorCode::Banned);
        // decide_join: nobody asked.
        let decide = DecideJoin { room: r(), user: user("eve"), approve: true, reason: short("") };
        assert_eq!(code(ada.request(decide).await), ErrorCode::NoSuchTarget);

        // revoke_invite: by its code or by its id.
        for by_id in [false, true] {
            let invite = ada.request(CreateInvite { room: r(), ttl_secs: None, max_uses: None }).await.unwrap();
            let code_or_id = if by_id { invite.id.clone() } else { invite.code.clone() };
            ada.request(RevokeInvite { room: r(), code: code_or_id.clone() }).await.unwrap();
            assert_eq!(code(ada.request(RevokeInvite { room: r(), code: code_or_id }).await), ErrorCode::NoSuchTarget);
        }
        d.stop().await;
    }

    async fn a_newcomer_on_probation_waits_between_posts_with_slow_mode(d: Deployment) {
        let ada = d.client("ada", Codec::MsgPack).await;
        create_room(&ada, "careful", None).await.unwrap();
        let probation = RoomSettings { probation_secs: Some(86_400), ..RoomSettings::default() };
        ada.request(SetRoom { room: room("careful"), settings: probation }).await.unwrap();
        let mut cy = d.client("cy", Codec::Json).await;
        cy.join(&room("careful")).await.unwrap();
        cy.request(post("careful", "hello", "c1", None)).await.unwrap();
        let early = refusal(cy.request(post("careful", "anyone?", "c2", None)).await);
        assert_eq!(early.code, ErrorCode::SlowMode, "probation's spacing answers slow_mode");
        assert!(early.retry_after_ms.is_some_and(|ms| ms > 0 && ms <= 30_000), "{early:?}");
        d.advance(Duration::from_secs(31));
        cy.request(post("careful", "anyone?", "c2", None)).await.unwrap();
        d.stop().await;
    }
}
