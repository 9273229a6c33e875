//! A bad day's tools over real sockets, on one node and on two nodes
//! sharing a Redis, with a clock the tests move: a lockdown of the doors
//! refuses joins, requests and invites with `locked` and the time left, and
//! lifts by itself; a read-only one silences members but not moderators; a
//! burst of joins locks the doors with the join that made the count, and
//! moderators hear of it; the word filter holds or refuses posts, and
//! members never learn its rules.

use std::time::Duration;

use hearth_cli::{Client, ClientError};
use hearth_protocol::ops::{
    CreateInvite, CreateRoom, Edit, FilterAction, Filters, Lock, LockLevel, React, RequestJoin, RoomSettings, SetRole,
    SetRoom, Visibility, WordFilter,
};
use hearth_protocol::{Codec, Emoji, ErrorCode, Event, Note, Role};
use hearth_tests::*;

fn lock(name: &str, level: LockLevel, duration_secs: Option<u32>) -> Lock {
    Lock { room: room(name), level, duration_secs }
}

/// The refusal `result` holds: its code and when to retry.
fn locked<T: std::fmt::Debug>(result: Result<T, ClientError>) -> Option<u64> {
    let body = refusal(result);
    assert_eq!(body.code, ErrorCode::Locked, "{body:?}");
    body.retry_after_ms
}

async fn stranger(d: &Deployment, name: &str) -> Client {
    d.client(name, Codec::Json).await
}

in_deployments! { single_durable_timed, cluster_timed;
    async fn a_lockdown_keeps_newcomers_out_until_it_lifts_by_itself(d: Deployment) {
        let (mut ada, bo, cy) = trio(&d, "doors").await;
        // Only moderators lock.
        assert_eq!(code(bo.request(lock("doors", LockLevel::Joins, Some(3600))).await), ErrorCode::Forbidden);
        ada.request(lock("doors", LockLevel::Joins, Some(3600))).await.unwrap();
        let mut dee = stranger(&d, "dee").await;
        assert_eq!(locked(dee.join(&room("doors")).await), Some(3_600_000));
        // An invite does not get round it; members go on talking.
        let code_ = ada.request(CreateInvite { room: room("doors"), ttl_secs: None, max_uses: None }).await.unwrap().code;
        let with_invite = hearth_protocol::ops::Join { room: room("doors"), since: None, invite: Some(code_) };
        assert!(locked(dee.request(with_invite.clone()).await).is_some());
        bo.send(&room("doors"), "quiet in here").await.unwrap();
        // The room says so, and the lockdown outlives a restart.
        let info = ada.join(&room("doors")).await.unwrap().room;
        assert_eq!(info.lockdown.map(|l| (l.level, l.until.is_some())), Some((LockLevel::Joins, true)));
        drop((ada, bo, cy, dee));
        let d = d.restart().await;
        let mut dee = stranger(&d, "dee").await;
        assert!(locked(dee.join(&room("doors")).await).is_some());
        // An hour on it has lifted by itself.
        d.advance(Duration::from_secs(3601));
        dee.request(with_invite).await.unwrap();
        // An approval room: a lockdown refuses requests too, until lifted by hand.
        let ada = d.client("ada", Codec::MsgPack).await;
        let vetted = CreateRoom { room: room("vetted"), topic: short(""), cap: None, visibility: Visibility::Approval };
        ada.request(vetted).await.unwrap();
        ada.request(lock("vetted", LockLevel::Joins, None)).await.unwrap();
        let ask = RequestJoin { room: room("vetted"), note: Note::new("hi").unwrap() };
        assert_eq!(locked(dee.request(ask.clone()).await), None, "until lifted: no time to give");
        ada.request(lock("vetted", LockLevel::Off, None)).await.unwrap();
        dee.request(ask).await.unwrap();
        assert_eq!(code(ada.request(lock("vetted", LockLevel::Off, None)).await), ErrorCode::BadRequest);
        d.stop().await;
    }

    async fn read_only_silences_members_but_not_moderators(d: Deployment) {
        let (ada, bo, cy) = trio(&d, "quiet").await;
        ada.request(SetRole { room: room("quiet"), user: user("cy"), role: Role::Moderator, expires_at: None, title: None }).await.unwrap();
        let before = bo.send(&room("quiet"), "before").await.unwrap().seq;
        cy.request(lock("quiet", LockLevel::ReadOnly, Some(600))).await.unwrap();
        assert!(locked(bo.send(&room("quiet"), "but").await).is_some());
        let react = React { room: room("quiet"), target: before, emoji: Emoji::new("👍").unwrap(), on: true };
        assert!(locked(bo.request(react.clone()).await).is_some());
        // Read-only locks the doors as well.
        let mut dee = stranger(&d, "dee").await;
        assert!(locked(dee.join(&room("quiet")).await).is_some());
        cy.send(&room("quiet"), "a moderator may still speak").await.unwrap();
        ada.send(&room("quiet"), "and the owner").await.unwrap();
        d.advance(Duration::from_secs(601));
        bo.send(&room("quiet"), "after").await.unwrap();
        bo.request(react).await.unwrap();
        d.stop().await;
    }

    async fn a_burst_of_joins_locks_the_doors_with_the_join_that_made_it(d: Deployment) {
        let (mut ada, _bo, _cy) = trio(&d, "raided").await;
        let raid = RoomSettings { raid_joins: Some(3), raid_secs: Some(60), raid_lock_secs: Some(600), ..RoomSettings::default() };
        ada.request(SetRoom { room: room("raided"), settings: raid }).await.unwrap();
        // Newcomers a minute apart are no raid (the members' own joins are
        // a minute back too).
        d.advance(Duration::from_secs(61));
        let mut first = stranger(&d, "r1").await;
        first.join(&room("raided")).await.unwrap();
        d.advance(Duration::from_secs(61));
        for name in ["r2", "r3"] {
            stranger(&d, name).await.join(&room("raided")).await.unwrap();
        }
        // The third within the minute makes three: its join locks the doors.
        let mut third = stranger(&d, "r4").await;
        assert!(third.join(&room("raided")).await.unwrap().room.lockdown.is_some());
        let joined = until_event(&mut ada, "the join that locked the doors", |e| {
            matches!(e, Event::MemberJoined(j) if j.lockdown.is_some())
        })
        .await;
        let Event::MemberJoined(joined) = joined else { unreachable!() };
        assert_eq!(joined.from.as_str(), "r4");
        let lockdown = joined.lockdown.unwrap();
        assert_eq!((lockdown.level, lockdown.until.map(|t| t.0)), (LockLevel::Joins, Some(joined.ts.0 + 600_000)));
        let mut fourth = stranger(&d, "r5").await;
        assert!(locked(fourth.join(&room("raided")).await).is_some());
        // Ten minutes on, the doors open again.
        d.advance(Duration::from_secs(601));
        fourth.join(&room("raided")).await.unwrap();
        d.stop().await;
    }

    async fn the_word_filter_holds_or_refuses_and_members_never_see_its_rules(d: Deployment) {
        let (mut ada, mut bo, cy) = trio(&d, "filtered").await;
        let rule = |pattern: &str, regex, action, reason: &str| WordFilter { pattern: pattern.into(), regex, action, reason: short(reason) };
        let filters = vec![
            rule("cheap lenses", false, FilterAction::Hold, ""),
            rule(r"spam\.(example|test)", true, FilterAction::Refuse, "no shop links, please"),
        ];
        let set = |filters| SetRoom { room: room("filtered"), settings: RoomSettings { filters: Some(filters), ..RoomSettings::default() } };
        // Rules that cannot be taken are refused, naming the rule.
        let bad = refusal(ada.request(set(vec![rule("(unclosed", true, FilterAction::Hold, "")])).await);
        assert!(bad.code == ErrorCode::BadRequest && bad.message.contains("(unclosed"), "{bad:?}");
        assert_eq!(code(bo.request(set(filters.clone())).await), ErrorCode::Forbidden);
        ada.request(set(filters.clone())).await.unwrap();
        // Held: bo is told, the moderators get it in their queue.
        assert!(bo.send(&room("filtered"), "CHEAP LENSES, two for one").await.unwrap().held);
        until_event(&mut ada, "the held post", |e| matches!(e, Event::Held(h) if h.text.as_str().contains("two for one"))).await;
        // Refused, with the rule's reason; an edit cannot bring it in either.
        let refused = refusal(bo.send(&room("filtered"), "buy at spam.example").await);
        assert!(refused.code == ErrorCode::Filtered && refused.message.contains("no shop links, please"), "{refused:?}");
        let mine = bo.send(&room("filtered"), "a calm message").await.unwrap().seq;
        let edit = Edit { room: room("filtered"), target: mine, text: hearth_protocol::Text::new("spam.test").unwrap() };
        assert_eq!(code(bo.request(edit).await), ErrorCode::Filtered);
        // Moderators are not filtered; only they read the rules.
        ada.send(&room("filtered"), "spam.example is the test domain").await.unwrap();
        assert_eq!(ada.request(Filters { room: room("filtered") }).await.unwrap().filters, filters);
        assert_eq!(code(cy.request(Filters { room: room("filtered") }).await), ErrorCode::Forbidden);
        // The event that set them never reached a member.
        ada.send(&room("filtered"), "marker").await.unwrap();
        loop {
            match until_event(&mut bo, "the marker", |_| true).await {
                Event::RoomUpdated(u) => assert!(u.settings.filters.is_none(), "{u:?}"),
                Event::Message(m) if m.text.as_str() == "marker" => break,
                _ => {}
            }
        }
        // The filter outlives a restart.
        drop((ada, bo, cy));
        let d = d.restart().await;
        let bo = d.client("bo", Codec::Json).await;
        assert_eq!(code(bo.send(&room("filtered"), "spam.test").await), ErrorCode::Filtered);
        d.stop().await;
    }
}
