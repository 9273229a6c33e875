//! Edits, deletes, reactions and threads over real sockets, on one node and
//! on two nodes sharing a Redis: each change is a live event, and history
//! shows every message as it is now — edited text, tombstones, reaction
//! counts, reply counts — for a member who was there, one who resumes after
//! a disconnect, and after a restart.

use hearth_cli::Client;
use hearth_protocol::ops::{Delete, Edit, ModAction, ModLog, React, SetRole, ThreadHistory, Versions};
use hearth_protocol::{Codec, Emoji, ErrorCode, Event, Role, Seq, Text};
use hearth_tests::*;

fn text(t: &str) -> Text {
    Text::new(t).unwrap()
}

fn emoji(e: &str) -> Emoji {
    Emoji::new(e).unwrap()
}

async fn messages(client: &Client, name: &str) -> Vec<hearth_protocol::event::MessageEvent> {
    history_messages(client, name).await
}

/// A moderator's pin of message `seq` of room `name`.
fn pin_message(name: &str, seq: Seq) -> hearth_protocol::ops::AddPin {
    hearth_protocol::ops::AddPin { room: room(name), seq: Some(seq), note: None, title: None, edit: None }
}

async fn message(client: &Client, name: &str, seq: Seq) -> hearth_protocol::event::MessageEvent {
    messages(client, name).await.into_iter().find(|m| m.seq == seq).expect("the message is in history")
}

both_modes! {
    async fn edits_are_live_and_history_shows_the_text_now(d: Deployment) {
        let (ada, bo, mut cy) = trio(&d, "edits").await;
        let sent = bo.send(&room("edits"), "Portra 400 at 800?").await.unwrap();
        bo.request(Edit { room: room("edits"), target: sent.seq, text: text("Portra 400 at 1600?") }).await.unwrap();
        let edited = until_event(&mut cy, "the edit", |e| matches!(e, Event::Edit(_))).await;
        assert!(matches!(edited, Event::Edit(e) if e.target == sent.seq && e.text.as_str() == "Portra 400 at 1600?"));
        let now = message(&bo, "edits", sent.seq).await;
        assert_eq!(now.text.as_str(), "Portra 400 at 1600?");
        assert!(now.state.as_ref().is_some_and(|s| s.edited_at.is_some()));
        // Only the author edits; a moderator reads every version.
        assert_eq!(code(ada.request(Edit { room: room("edits"), target: sent.seq, text: text("x") }).await), ErrorCode::Forbidden);
        assert_eq!(code(cy.request(Versions { room: room("edits"), target: sent.seq }).await), ErrorCode::Forbidden);
        let versions = ada.request(Versions { room: room("edits"), target: sent.seq }).await.unwrap();
        let texts: Vec<&str> = versions.versions.iter().map(|v| v.text.as_str()).collect();
        assert_eq!(texts, ["Portra 400 at 800?", "Portra 400 at 1600?"]);
        // Not a message, or not there.
        assert_eq!(code(bo.request(Edit { room: room("edits"), target: Seq(1), text: text("x") }).await), ErrorCode::NoSuchTarget);
        assert_eq!(code(bo.request(Edit { room: room("edits"), target: Seq(999), text: text("x") }).await), ErrorCode::NoSuchTarget);
        d.stop().await;
    }

    async fn deletes_leave_tombstones_and_moderators_delete_any(d: Deployment) {
        let (ada, bo, mut cy) = trio(&d, "deletes").await;
        let own = bo.send(&room("deletes"), "oops, wrong room").await.unwrap();
        let rude = cy.send(&room("deletes"), "something rude").await.unwrap();
        bo.request(Delete { room: room("deletes"), target: own.seq }).await.unwrap();
        until_event(&mut cy, "the delete", |e| matches!(e, Event::Delete(x) if x.target == own.seq)).await;
        // A member deletes only their own; a moderator anyone's, and it is logged.
        assert_eq!(code(bo.request(Delete { room: room("deletes"), target: rude.seq }).await), ErrorCode::Forbidden);
        ada.request(SetRole { room: room("deletes"), user: user("bo"), role: Role::Moderator, expires_at: None, title: None }).await.unwrap();
        bo.request(Delete { room: room("deletes"), target: rude.seq }).await.unwrap();
        for seq in [own.seq, rude.seq] {
            let gone = message(&ada, "deletes", seq).await;
            assert!(gone.state.as_ref().is_some_and(|s| s.deleted), "{gone:?}");
            assert_eq!(gone.text.as_str(), "(deleted)");
        }
        assert_eq!(code(bo.request(Delete { room: room("deletes"), target: own.seq }).await), ErrorCode::NoSuchTarget);
        assert_eq!(code(cy.request(React { room: room("deletes"), target: own.seq, emoji: emoji("👍"), on: true }).await), ErrorCode::NoSuchTarget);
        let log = ada.request(ModLog { room: room("deletes"), before: None, limit: None }).await.unwrap();
        assert!(log.entries.iter().any(|e| e.action == ModAction::Delete && e.user.as_ref().map(|u| u.as_str()) == Some("cy")));
        assert!(!log.entries.iter().any(|e| e.action == ModAction::Delete && e.user.as_ref().map(|u| u.as_str()) == Some("bo")), "own deletes are not moderation");
        d.stop().await;
    }

    async fn reactions_count_who_reacted_and_toggle(d: Deployment) {
        let (ada, bo, mut cy) = trio(&d, "reacts").await;
        let sent = ada.send(&room("reacts"), "Sunday walk?").await.unwrap();
        let react = |e: &str, on| React { room: room("reacts"), target: sent.seq, emoji: emoji(e), on };
        bo.request(react("👍", true)).await.unwrap();
        cy.request(react("👍", true)).await.unwrap();
        cy.request(react("📷", true)).await.unwrap();
        until_event(&mut cy, "bo's reaction", |e| matches!(e, Event::Reaction(r) if r.from.as_str() == "bo")).await;
        assert_eq!(code(bo.request(react("👍", true)).await), ErrorCode::BadRequest);
        cy.request(react("📷", false)).await.unwrap();
        assert_eq!(code(cy.request(react("📷", false)).await), ErrorCode::BadRequest);
        // A reaction is an emoji or a :shortcode: — not blank, not padded, not
        // a control character (each would be a button of its own, showing nothing).
        for odd in [" ", " 👍", "👍\n", "\u{0}", "a b"] {
            assert_eq!(code(bo.request(react(odd, true)).await), ErrorCode::BadRequest, "{odd:?}");
        }
        cy.request(react(":film:", true)).await.unwrap();
        cy.request(react("👨‍👩‍👧", true)).await.unwrap();
        cy.request(react(":film:", false)).await.unwrap();
        cy.request(react("👨‍👩‍👧", false)).await.unwrap();
        let state = message(&ada, "reacts", sent.seq).await.state.expect("reactions");
        assert_eq!(state.reactions.len(), 1);
        assert_eq!(state.reactions[0].emoji.as_str(), "👍");
        assert_eq!(state.reactions[0].count, 2);
        assert_eq!(state.reactions[0].users.iter().map(|u| u.as_str()).collect::<Vec<_>>(), ["bo", "cy"]);
        d.stop().await;
    }

    async fn threads_page_their_replies_and_roots_count_them(d: Deployment) {
        let (ada, bo, cy) = trio(&d, "threads").await;
        let root = bo.send(&room("threads"), "Anyone tried Portra 400 at 800?").await.unwrap();
        let mut replies = Vec::new();
        for (who, what) in [(&ada, "Yes, push one stop"), (&cy, "Grainy but fine"), (&bo, "Thanks both")] {
            let reply = hearth_protocol::ops::SendMessage {
                room: room("threads"),
                text: text(what),
                cmid: who.new_cmid(),
                thread: Some(root.seq),
            };
            replies.push(who.request(reply).await.unwrap().seq);
        }
        ada.send(&room("threads"), "unrelated").await.unwrap();
        let shown = message(&cy, "threads", root.seq).await.state.expect("a thread");
        assert_eq!((shown.replies, shown.last_reply), (3, Some(replies[2])));
        let page = cy.request(ThreadHistory { room: room("threads"), root: root.seq, after: None, limit: Some(2) }).await.unwrap();
        let seqs: Vec<u64> = page.events.iter().filter_map(|e| e.seq()).map(|s| s.0).collect();
        assert_eq!(seqs, [root.seq.0, replies[0].0, replies[1].0]);
        assert!(page.more);
        let rest = cy.request(ThreadHistory { room: room("threads"), root: root.seq, after: Some(replies[1]), limit: None }).await.unwrap();
        let seqs: Vec<u64> = rest.events.iter().filter_map(|e| e.seq()).map(|s| s.0).collect();
        assert_eq!(seqs, [root.seq.0, replies[2].0]);
        assert!(!rest.more);
        d.stop().await;
    }

    async fn a_member_back_from_a_disconnect_sees_every_change(d: Deployment) {
        let (ada, bo, mut cy) = trio(&d, "away").await;
        let first = ada.send(&room("away"), "draft one").await.unwrap();
        until_event(&mut cy, "the message", |e| matches!(e, Event::Message(_))).await;
        // cy goes away; meanwhile the message is edited, reacted to and another deleted.
        drop(cy);
        ada.request(Edit { room: room("away"), target: first.seq, text: text("final one") }).await.unwrap();
        bo.request(React { room: room("away"), target: first.seq, emoji: emoji("🎉"), on: true }).await.unwrap();
        let second = bo.send(&room("away"), "never mind").await.unwrap();
        bo.request(Delete { room: room("away"), target: second.seq }).await.unwrap();
        let mut cy = d.client("cy", Codec::Json).await;
        let replayed = cy.join_since(&room("away"), Some(hearth_protocol::Position { epoch: bo.position(&room("away")).unwrap().epoch, seq: first.seq })).await.unwrap();
        assert_eq!(replayed.resume, hearth_protocol::ops::ResumeMode::Replay);
        let mut kinds = Vec::new();
        while kinds.len() < 4 {
            match cy.next_event_within(WAIT).await.unwrap() {
                Some(Event::Edit(_)) => kinds.push("edit"),
                Some(Event::Reaction(_)) => kinds.push("reaction"),
                Some(Event::Message(_)) => kinds.push("message"),
                Some(Event::Delete(_)) => kinds.push("delete"),
                Some(_) => {}
                None => panic!("closed"),
            }
        }
        assert_eq!(kinds, ["edit", "reaction", "message", "delete"]);
        let now = messages(&cy, "away").await;
        assert_eq!(now[0].text.as_str(), "final one");
        assert!(now[1].state.as_ref().is_some_and(|s| s.deleted));
        d.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_happened_to_messages_survives_a_restart() {
    let d = Deployment::single_durable().await;
    let (ada, bo, _cy) = trio(&d, "kept").await;
    let sent = bo.send(&room("kept"), "before").await.unwrap();
    ada.request(pin_message("kept", sent.seq)).await.unwrap();
    bo.request(Edit { room: room("kept"), target: sent.seq, text: text("after") }).await.unwrap();
    ada.request(React { room: room("kept"), target: sent.seq, emoji: emoji("👍"), on: true }).await.unwrap();
    let d = d.restart().await;
    let mut ada = d.client("ada", Codec::MsgPack).await;
    let now = message(&ada, "kept", sent.seq).await;
    assert_eq!(now.text.as_str(), "after");
    assert_eq!(now.state.expect("state").reactions[0].count, 1);
    let joined = ada.join(&room("kept")).await.unwrap();
    assert_eq!(joined.pins[0].text.as_str(), "after", "the pin shows the text now, from the store");
    d.stop().await;
}

/// One node or two on a Redis, holding `recent_events` events per room in
/// memory: with few, a resume replays from stored pages, not the recent events.
async fn deployment(nodes: usize, recent_events: usize) -> Deployment {
    if nodes == 1 {
        let mut config = test_config(hearth_server::Storage::Ephemeral { history_limit: 10_000 });
        config.rooms.recent_events = recent_events;
        return Deployment::with_nodes(config, 1).await;
    }
    let redis = hearth_testkit::RedisServer::start().await;
    let mut config = cluster_config(&redis.url(), "behaviour");
    config.rooms.recent_events = recent_events;
    let mut d = Deployment::with_nodes(config, nodes).await;
    d.redis = Some(redis);
    d
}

/// A member away while a message was posted, edited and deleted replays it
/// as its tombstone, and an edited one with its newest text only: text taken
/// back reaches no one later.
async fn a_resume_replays_no_text_taken_back(d: Deployment) {
    let (ada, bo, mut cy) = trio(&d, "gone").await;
    let first = ada.send(&room("gone"), "morning").await.unwrap();
    until_event(&mut cy, "the first message", |e| matches!(e, Event::Message(_))).await;
    let position = cy.position(&room("gone")).unwrap();
    assert_eq!(position.seq, first.seq);
    drop(cy);
    let secret = bo.send(&room("gone"), "call me on 555-0100").await.unwrap();
    // Pinned as it was then; its pin must follow what becomes of it.
    ada.request(pin_message("gone", secret.seq)).await.unwrap();
    bo.request(Edit { room: room("gone"), target: secret.seq, text: text("call me on 555-0199") }).await.unwrap();
    let kept = bo.send(&room("gone"), "thread root").await.unwrap();
    let fixed = bo.send(&room("gone"), "meet at 5 at my flat, 12 Elm St").await.unwrap();
    ada.request(pin_message("gone", fixed.seq)).await.unwrap();
    ada.request(Delete { room: room("gone"), target: secret.seq }).await.unwrap();
    bo.request(Edit { room: room("gone"), target: fixed.seq, text: text("meet at 5 somewhere") }).await.unwrap();
    bo.request(Edit { room: room("gone"), target: fixed.seq, text: text("meet at 6 at the cafe") }).await.unwrap();
    for n in 0..6 {
        ada.send(&room("gone"), &format!("later {n}")).await.unwrap();
    }
    for codec in [Codec::Json, Codec::MsgPack] {
        let mut cy = d.client("cy", codec).await;
        let replayed = cy.join_since(&room("gone"), Some(position)).await.unwrap();
        assert_eq!(replayed.resume, hearth_protocol::ops::ResumeMode::Replay);
        let mut seen = Vec::new();
        loop {
            match cy.next_event_within(WAIT).await.unwrap() {
                Some(Event::Message(m)) if m.text.as_str() == "later 5" => break,
                Some(event) => seen.push(event),
                None => panic!("closed: {:?}", cy.close_info()),
            }
        }
        // The texts only: a cmid is random hex, and may hold "555".
        let texts: Vec<&str> = seen
            .iter()
            .filter_map(|e| match e {
                Event::Message(m) => Some(m.text.as_str()),
                Event::Edit(x) => Some(x.text.as_str()),
                Event::Pin(p) => Some(p.pin.text.as_str()),
                _ => None,
            })
            .collect();
        let pinned: Vec<&str> = replayed.pins.iter().map(|p| p.text.as_str()).collect();
        for taken_back in ["555", "Elm St", "somewhere"] {
            assert!(!texts.iter().any(|t| t.contains(taken_back)), "{codec:?}: {taken_back} replayed: {texts:?}");
            assert!(!pinned.iter().any(|t| t.contains(taken_back)), "{codec:?}: {taken_back} pinned: {pinned:?}");
        }
        // A pin of a deleted message is its tombstone; of an edited one, its newest text.
        let pin_of = |seq| replayed.pins.iter().find(|p| p.seq == Some(seq)).expect("still pinned");
        assert!(pin_of(secret.seq).deleted && pin_of(secret.seq).text.as_str() == "(deleted)");
        assert_eq!(pin_of(fixed.seq).text.as_str(), "meet at 6 at the cafe");
        let replayed_pin = |seq| {
            seen.iter().find_map(|e| match e {
                Event::Pin(p) if p.pin.seq == Some(seq) => Some(p.pin.clone()),
                _ => None,
            })
        };
        assert!(replayed_pin(secret.seq).expect("the pin event").deleted);
        assert_eq!(replayed_pin(fixed.seq).expect("the pin event").text.as_str(), "meet at 6 at the cafe");
        let tombstone = seen.iter().find_map(|e| match e {
            Event::Message(m) if m.seq == secret.seq => Some(m),
            _ => None,
        });
        let tombstone = tombstone.expect("the deleted message's place is kept");
        assert_eq!(tombstone.text.as_str(), "(deleted)");
        assert!(tombstone.state.as_ref().is_some_and(|s| s.deleted), "{tombstone:?}");
        assert!(
            seen.iter()
                .any(|e| matches!(e, Event::Edit(x) if x.target == secret.seq && x.text.as_str() == "(deleted)"))
        );
        assert!(seen.iter().any(|e| matches!(e, Event::Delete(x) if x.target == secret.seq)));
        assert!(seen.iter().any(|e| matches!(e, Event::Message(m) if m.seq == kept.seq && m.text.as_str() == "thread root" && m.state.is_none())));
        let edited = seen.iter().find_map(|e| match e {
            Event::Message(m) if m.seq == fixed.seq => Some(m),
            _ => None,
        });
        let edited = edited.expect("the edited message");
        assert_eq!(edited.text.as_str(), "meet at 6 at the cafe");
        assert!(edited.state.as_ref().is_some_and(|s| s.edited_at.is_some() && !s.deleted), "{edited:?}");
        let edits: Vec<&str> = seen
            .iter()
            .filter_map(|e| match e {
                Event::Edit(x) if x.target == fixed.seq => Some(x.text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(edits, ["meet at 6 at the cafe", "meet at 6 at the cafe"], "each edit, with the newest text");
        // History pages show the pins as they are now too.
        let history = cy.history_all(&room("gone")).await.unwrap();
        let pins: Vec<&hearth_protocol::ops::PinnedNote> = history
            .iter()
            .filter_map(|e| match e {
                Event::Pin(p) => Some(&p.pin),
                _ => None,
            })
            .collect();
        assert!(pins.iter().any(|p| p.seq == Some(secret.seq) && p.deleted), "{pins:?}");
        assert!(pins.iter().any(|p| p.seq == Some(fixed.seq) && p.text.as_str() == "meet at 6 at the cafe"));
        assert!(!pins.iter().any(|p| p.text.as_str().contains("555") || p.text.as_str().contains("Elm")), "{pins:?}");
    }
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_from_the_recent_events_replays_no_text_taken_back() {
    a_resume_replays_no_text_taken_back(deployment(1, 256).await).await;
    a_resume_replays_no_text_taken_back(deployment(2, 256).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_from_stored_pages_replays_no_text_taken_back() {
    a_resume_replays_no_text_taken_back(deployment(1, 2).await).await;
    a_resume_replays_no_text_taken_back(deployment(2, 2).await).await;
}
