//! Reports and warnings over real sockets, on one node and on two nodes
//! sharing a Redis, with a clock the tests move: a report reaches the
//! welcomers and moderators live and in their queue, never the member
//! reported (live, in history, in the queue, in the log); resolved by
//! dismissing or acting in one request; a resolved message says so; a
//! member's open reports are limited; reports outlive a restart. Warnings
//! are a record the member and moderators read; they expire, and the room's
//! escalation applies with the warning that reaches it.

use std::time::Duration;

use hearth_cli::Client;
use hearth_protocol::ops::{
    History, ModAction, ModLog, Report, ReportCategory, ReportOutcome, Reports, ResolveReport, RoomSettings, SetRole,
    SetRoom, Unwarn, Warn, Warnings,
};
use hearth_protocol::{Codec, ErrorCode, Event, Role, Seq};
use hearth_tests::*;

fn report(name: &str, seq: Seq, note: &str) -> Report {
    Report { room: room(name), seq, category: ReportCategory::Spam, note: short(note) }
}

fn resolve(name: &str, seq: Seq, outcome: ReportOutcome, reason: &str, duration_secs: Option<u32>) -> ResolveReport {
    ResolveReport { room: room(name), seq, outcome, reason: short(reason), duration_secs }
}

fn warn(name: &str, who: &str, reason: &str) -> Warn {
    Warn { room: room(name), user: user(who), reason: short(reason) }
}

async fn live_warnings(client: &Client, name: &str, who: &str) -> Vec<Seq> {
    let list = client.request(Warnings { room: room(name), user: Some(user(who)) }).await.unwrap();
    list.warnings.iter().map(|w| w.warning).collect()
}

/// Reads `client`'s events up to `marker`'s message, and asserts none of
/// them was a report on its member's messages or a resolution of one.
async fn nothing_of_reports_until(client: &mut Client, marker: &str) {
    let me = client.hello().user.clone();
    loop {
        match until_event(client, marker, |_| true).await {
            Event::Report(r) if r.author == me => panic!("a report reached {me}: {r:?}"),
            Event::Moderation(m) if m.action == ModAction::Resolve && m.user.as_ref() == Some(&me) => {
                panic!("a resolution reached {me}: {m:?}")
            }
            Event::Message(m) if m.text.as_str() == marker => return,
            _ => {}
        }
    }
}

in_deployments! { single_durable_timed, cluster_timed;
    async fn reports_reach_the_keepers_and_never_the_member_reported(d: Deployment) {
        let (mut ada, mut bo, cy) = trio(&d, "club").await;
        let mut dee = d.client("dee", Codec::Json).await;
        dee.join(&room("club")).await.unwrap();
        let welcomer = SetRole { room: room("club"), user: user("dee"), role: Role::Welcomer, expires_at: None, title: None };
        ada.request(welcomer).await.unwrap();
        let spam = bo.send(&room("club"), "cheap lenses at spam.example").await.unwrap().seq;

        // cy reports; the welcomer and the owner hear of it, with who and why.
        let reported = cy.request(report("club", spam, "third link today")).await.unwrap();
        for keeper in [&mut ada, &mut dee] {
            let Event::Report(r) = until_event(keeper, "the report", |e| matches!(e, Event::Report(_))).await else {
                unreachable!()
            };
            assert_eq!((r.seq, r.message, r.from.as_str(), r.author.as_str()), (reported.seq, spam, "cy", "bo"));
            assert_eq!((r.text.as_str(), r.note.as_str()), ("cheap lenses at spam.example", "third link today"));
        }
        // Reporting again answers with the same report.
        assert_eq!(cy.request(report("club", spam, "")).await.unwrap().seq, reported.seq);
        // The queue: the keepers see it; cy sees its own; bo sees nothing.
        let queue = dee.request(Reports { room: room("club") }).await.unwrap().reports;
        assert_eq!(queue.iter().map(|r| (r.report, r.from.as_str())).collect::<Vec<_>>(), [(reported.seq, "cy")]);
        assert_eq!(cy.request(Reports { room: room("club") }).await.unwrap().reports.len(), 1);
        assert!(bo.request(Reports { room: room("club") }).await.unwrap().reports.is_empty());
        // Not one's own message, not the owner's, not a message that is not there.
        assert_eq!(code(bo.request(report("club", spam, "")).await), ErrorCode::BadRequest);
        let owners = ada.send(&room("club"), "welcome all").await.unwrap().seq;
        assert_eq!(code(cy.request(report("club", owners, "")).await), ErrorCode::Forbidden);
        assert_eq!(code(cy.request(report("club", Seq(9_999), "")).await), ErrorCode::NoSuchTarget);

        // A report on the welcomer goes above them: dee never hears of it.
        let dees = dee.send(&room("club"), "off-topic rant").await.unwrap().seq;
        cy.request(Report { category: ReportCategory::OffTopic, ..report("club", dees, "") }).await.unwrap();
        let seen = dee.request(Reports { room: room("club") }).await.unwrap().reports;
        assert!(seen.iter().all(|r| r.message != dees), "{seen:?}");
        assert_eq!(ada.request(Reports { room: room("club") }).await.unwrap().reports.len(), 2);

        // A welcomer may dismiss, not act: acting takes a moderator.
        assert_eq!(code(dee.request(resolve("club", spam, ReportOutcome::Warn, "links", None)).await), ErrorCode::Forbidden);
        assert_eq!(code(dee.request(resolve("club", dees, ReportOutcome::Dismiss, "", None)).await), ErrorCode::NoSuchTarget);
        dee.request(resolve("club", spam, ReportOutcome::Dismiss, "a link to a shop is fine here", None)).await.unwrap();
        assert_eq!(ada.request(Reports { room: room("club") }).await.unwrap().reports.len(), 1);
        // The message's reports are resolved: a report on it again says so.
        assert_eq!(code(cy.request(report("club", spam, "")).await), ErrorCode::AlreadyResolved);
        // The owner acts on the other in one request: a mute, then the resolution.
        // A mute says for how long; without it nothing happens.
        assert_eq!(code(ada.request(resolve("club", dees, ReportOutcome::Mute, "keep to cameras", None)).await), ErrorCode::BadRequest);
        ada.request(resolve("club", dees, ReportOutcome::Mute, "keep to cameras", Some(600))).await.unwrap();
        assert_eq!(code(dee.send(&room("club"), "but").await), ErrorCode::Muted);
        assert!(ada.request(Reports { room: room("club") }).await.unwrap().reports.is_empty());

        // bo and dee never saw a report or a resolution: live, or in history.
        ada.send(&room("club"), "marker").await.unwrap();
        nothing_of_reports_until(&mut bo, "marker").await;
        nothing_of_reports_until(&mut dee, "marker").await;
        for member in [&bo, &cy] {
            let history = member.request(History { room: room("club"), before: None, after: None, limit: None }).await.unwrap();
            assert!(!history.events.iter().any(|e| matches!(e, Event::Report(_))), "{:?}", history.events);
        }
        // The log has both resolutions, and never the reporter.
        let log = ada.request(ModLog { room: room("club"), before: None, limit: None }).await.unwrap().entries;
        let resolutions: Vec<_> = log
            .iter()
            .filter(|e| e.action == ModAction::Resolve)
            .map(|e| (e.by.as_str(), e.user.as_ref().map(|u| u.as_str()), e.message, e.outcome))
            .collect();
        assert_eq!(
            resolutions,
            [
                ("ada", Some("dee"), Some(dees), Some(ReportOutcome::Mute)),
                ("dee", Some("bo"), Some(spam), Some(ReportOutcome::Dismiss)),
            ]
        );
        assert!(log.iter().all(|e| e.by.as_str() != "cy" && e.user.as_ref().is_none_or(|u| u.as_str() != "cy")));
        d.stop().await;
    }

    async fn open_reports_are_limited_kept_and_acted_on(d: Deployment) {
        let (ada, bo, cy) = trio(&d, "queue").await;
        let mut posts = Vec::new();
        for n in 0..6 {
            posts.push(bo.send(&room("queue"), &format!("spam {n}")).await.unwrap().seq);
        }
        for seq in &posts[..5] {
            cy.request(report("queue", *seq, "")).await.unwrap();
        }
        // A sixth open report waits until the moderators get to some.
        assert_eq!(code(cy.request(report("queue", posts[5], "")).await), ErrorCode::LimitReached);
        drop((ada, bo, cy));
        // The queue outlives a restart.
        let d = d.restart().await;
        let ada = d.client("ada", Codec::MsgPack).await;
        let cy = d.client("cy", Codec::Json).await;
        assert_eq!(ada.request(Reports { room: room("queue") }).await.unwrap().reports.len(), 5);
        // Deleting resolves in the same request; the sixth report is taken.
        ada.request(resolve("queue", posts[0], ReportOutcome::Delete, "spam", None)).await.unwrap();
        let history = ada.request(History { room: room("queue"), before: None, after: None, limit: None }).await.unwrap();
        let deleted = history.events.iter().any(|e| matches!(e, Event::Delete(x) if x.target == posts[0]));
        assert!(deleted, "{:?}", history.events);
        cy.request(report("queue", posts[5], "")).await.unwrap();
        // A ban as the outcome removes bo; the reports on that message close.
        ada.request(resolve("queue", posts[1], ReportOutcome::Ban, "spam account", None)).await.unwrap();
        let mut bo = d.client("bo", Codec::MsgPack).await;
        assert_eq!(code(bo.join(&room("queue")).await), ErrorCode::Banned);
        let left: Vec<Seq> = ada.request(Reports { room: room("queue") }).await.unwrap().reports.iter().map(|r| r.message).collect();
        assert_eq!(left, [posts[2], posts[3], posts[4], posts[5]]);
        d.stop().await;
    }

    async fn warnings_are_a_record_that_expires_and_escalates(d: Deployment) {
        let (ada, mut bo, cy) = trio(&d, "warned").await;
        let escalation = RoomSettings {
            warn_expiry_days: Some(30),
            warn_limit: Some(3),
            warn_action: Some(ModAction::Mute),
            warn_action_secs: Some(86_400),
            ..RoomSettings::default()
        };
        ada.request(SetRoom { room: room("warned"), settings: escalation }).await.unwrap();
        // Only moderators warn, and a warning says why.
        assert_eq!(code(cy.request(warn("warned", "bo", "rude")).await), ErrorCode::Forbidden);
        assert_eq!(code(ada.request(warn("warned", "bo", " ")).await), ErrorCode::BadRequest);
        let first = ada.request(warn("warned", "bo", "no shop links")).await.unwrap().seq;
        let Event::Moderation(told) = until_event(&mut bo, "the warning", |e| matches!(e, Event::Moderation(_))).await else {
            unreachable!()
        };
        assert_eq!((told.action, told.reason.as_str(), told.escalation), (ModAction::Warn, "no shop links", None));
        // bo reads their own record; cy may not read bo's.
        let mine = bo.request(Warnings { room: room("warned"), user: None }).await.unwrap();
        assert_eq!((mine.warnings.len(), mine.warn_limit, mine.warn_action), (1, 3, Some(ModAction::Mute)));
        assert_eq!(code(cy.request(Warnings { room: room("warned"), user: Some(user("bo")) }).await), ErrorCode::Forbidden);
        ada.request(warn("warned", "bo", "again")).await.unwrap();
        // A month later both have expired: the count starts again.
        d.advance(Duration::from_secs(31 * 24 * 3600));
        assert!(live_warnings(&ada, "warned", "bo").await.is_empty());
        let fresh = ada.request(warn("warned", "bo", "shop links, again")).await.unwrap().seq;
        assert_eq!(live_warnings(&ada, "warned", "bo").await, [fresh]);
        assert!(fresh > first);
        ada.request(warn("warned", "bo", "and again")).await.unwrap();
        // The third live one mutes for a day, in the same event.
        ada.request(warn("warned", "bo", "third time")).await.unwrap();
        let escalated = until_event(&mut bo, "the escalation", |e| {
            matches!(e, Event::Moderation(m) if m.escalation.is_some())
        })
        .await;
        let Event::Moderation(escalated) = escalated else { unreachable!() };
        let until = escalated.escalation.and_then(|e| e.until).expect("a mute for a time");
        assert_eq!(until.0, escalated.ts.0 + 86_400_000);
        assert_eq!(code(bo.send(&room("warned"), "hm").await), ErrorCode::Muted);
        d.advance(Duration::from_secs(86_401));
        bo.send(&room("warned"), "sorry").await.unwrap();
        // A warning lifted counts no more.
        assert_eq!(live_warnings(&ada, "warned", "bo").await.len(), 3);
        ada.request(Unwarn { room: room("warned"), user: user("bo"), warning: fresh }).await.unwrap();
        assert_eq!(live_warnings(&bo, "warned", "bo").await.len(), 2);
        assert_eq!(code(ada.request(Unwarn { room: room("warned"), user: user("bo"), warning: fresh }).await), ErrorCode::NoSuchTarget);
        // The room's escalation may be a ban: the next warning removes bo.
        let ban = RoomSettings { warn_action: Some(ModAction::Ban), warn_action_secs: Some(0), ..RoomSettings::default() };
        ada.request(SetRoom { room: room("warned"), settings: ban }).await.unwrap();
        ada.request(warn("warned", "bo", "enough")).await.unwrap();
        assert_eq!(code(bo.join(&room("warned")).await), ErrorCode::Banned);
        // Warnings outlive a restart.
        drop((ada, bo, cy));
        let d = d.restart().await;
        let ada = d.client("ada", Codec::MsgPack).await;
        assert_eq!(live_warnings(&ada, "warned", "bo").await.len(), 3);
        d.stop().await;
    }
}
