//! The room's health over real sockets, on one node and on two nodes sharing
//! a Redis, with a clock the test moves: a small story told through the
//! protocol, and the numbers `stats` gives for it (the same numbers the
//! hand-built fixture in `room/stats.rs` checks in detail).

use std::time::Duration;

use hearth_protocol::ops::{SendMessage, Stats};
use hearth_protocol::{Codec, ErrorCode, Text};
use hearth_tests::*;

fn reply(client: &hearth_cli::Client, name: &str, root: hearth_protocol::Seq, text: &str) -> SendMessage {
    SendMessage { room: room(name), text: Text::new(text).unwrap(), cmid: client.new_cmid(), thread: Some(root) }
}

both_modes_timed! {
    async fn stats_count_a_weeks_story(d: Deployment) {
        let ada = d.client("ada", Codec::MsgPack).await;
        create_room(&ada, "club", None).await.unwrap();
        // Ten days ago bo joined and asked; ada answered an hour later.
        d.advance(Duration::from_secs(20 * 86_400));
        let mut bo = d.client("bo", Codec::Json).await;
        bo.join(&room("club")).await.unwrap();
        let q1 = bo.send(&room("club"), "first roll?").await.unwrap().seq;
        d.advance(Duration::from_secs(3600));
        ada.request(reply(&ada, "club", q1, "welcome!")).await.unwrap();
        // Three days ago cy joined and asked; bo answered after 20 minutes,
        // then ada; bo and ada talked in ada's thread too.
        d.advance(Duration::from_secs(7 * 86_400));
        let mut cy = d.client("cy", Codec::MsgPack).await;
        cy.join(&room("club")).await.unwrap();
        let q2 = cy.send(&room("club"), "hello all").await.unwrap().seq;
        d.advance(Duration::from_secs(1200));
        bo.request(reply(&bo, "club", q2, "hi cy")).await.unwrap();
        ada.request(reply(&ada, "club", q2, "welcome")).await.unwrap();
        let q3 = ada.send(&room("club"), "Sunday walk?").await.unwrap().seq;
        bo.request(reply(&bo, "club", q3, "in")).await.unwrap();
        d.advance(Duration::from_secs(3 * 86_400));

        assert_eq!(code(bo.request(Stats { room: room("club"), days: None }).await), ErrorCode::Forbidden);
        let stats = ada.request(Stats { room: room("club"), days: None }).await.unwrap();
        let (week, month) = (&stats.windows[0], &stats.windows[1]);
        assert_eq!((week.days, month.days), (7, 30));
        assert_eq!((week.messages, week.active_members, week.new_members), (5, 3, 1));
        assert_eq!((month.messages, month.active_members, month.new_members), (7, 3, 2));
        assert_eq!((week.threads, month.threads), (2, 3));
        assert!((month.avg_replies_per_thread - 4.0 / 3.0).abs() < 1e-4, "{month:?}");
        // ada and bo answered each other three times; the other pairs once.
        assert_eq!(month.repeat_interactions, 1);
        // Newcomers' first posts waited 60 and 20 minutes: the median is 40.
        assert_eq!(month.newcomer_first_reply_secs, Some(2400));
        assert_eq!(week.newcomer_first_reply_secs, Some(1200));
        let one = ada.request(Stats { room: room("club"), days: Some(1) }).await.unwrap();
        assert_eq!(one.windows.len(), 1);
        assert_eq!(one.windows[0].messages, 0);
        d.stop().await;
    }
}
