//! Erasure over real sockets, on one node and on two nodes sharing a Redis:
//! a member erases their account (or the operator does) and their text is
//! nowhere — not live, not in history, a catch-up, search, the reports
//! queue, pins or the room's export — their reactions are gone, they are no
//! longer a member, and their name never connects again. And with backups:
//! restoring one taken before an erasure over a directory that had it, the
//! erasure is gone through again at start.

use std::time::{Duration, Instant};

use hearth_cli::{Client, Options};
use hearth_protocol::ops::{
    AddPin, EraseAccount, History, Members, React, Report, ReportCategory, Reports, Search, SendMessage,
};
use hearth_protocol::{ClientMsgId, CloseCode, Codec, Emoji, ErrorCode, Event, Position, Seq};
use hearth_tests::*;

async fn closed_with(client: &mut Client) -> Option<CloseCode> {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline && client.next_event_within(WAIT).await.unwrap_or(None).is_some() {}
    client.close_info().and_then(|c| c.hearth_code())
}

/// How `name`'s connection to `server` is refused.
async fn refused(server: &TestServer, name: &str) -> Option<CloseCode> {
    let mut options = Options::new(server.url(), server.token(name), Codec::Json);
    options.request_timeout = WAIT;
    match Client::connect(options).await {
        Err(hearth_cli::ClientError::Closed(Some(close))) => close.hearth_code(),
        Err(other) => panic!("refused with a close code, not {other}"),
        Ok(mut client) => closed_with(&mut client).await,
    }
}

/// How many of the newest messages `client` finds with `query`, once the
/// index has read what it waits for (`want`), within a bound.
async fn found(client: &Client, query: &str, want: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let search = Search { query: query.into(), room: None, before: None, limit: None };
        let hits = client.request(search).await.unwrap().results.len();
        if hits == want || Instant::now() > deadline {
            return hits;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a catch-up replays, up to and with the erasure.
async fn replayed_until_erasure(client: &mut Client) -> Vec<Event> {
    let mut replayed = Vec::new();
    loop {
        let event = until_event(client, "the replayed erasure", |_| true).await;
        let erasure = matches!(event, Event::Erased(_));
        replayed.push(event);
        if erasure {
            return replayed;
        }
    }
}

async fn history(client: &Client, name: &str) -> Vec<Event> {
    client.request(History { room: room(name), before: None, after: None, limit: None }).await.unwrap().events
}

async fn export_of(server: &TestServer, name: &str) -> String {
    let request = format!(
        "GET /export/room/{name}.jsonl HTTP/1.1\r\nHost: hearth\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        server.token("ada")
    );
    http(server, &request).await
}

in_deployments! { single_durable_timed, cluster_timed;
    async fn an_erased_member_s_text_is_nowhere(d: Deployment) {
        let (mut ada, mut bo, cy) = trio(&d, "club").await;
        let mut eve = d.client("eve", Codec::Json).await;
        eve.join(&room("club")).await.unwrap();
        let hello = eve.send(&room("club"), "my darkroom recipe: xylophonic developer").await.unwrap().seq;
        let bos = bo.send(&room("club"), "nice").await.unwrap().seq;
        let thread = SendMessage {
            room: room("club"),
            text: hearth_protocol::Text::new("a reply with xylophonic detail").unwrap(),
            cmid: ClientMsgId::new("eve-1").unwrap(),
            thread: Some(bos),
        };
        let reply = eve.request(thread).await.unwrap().seq;
        eve.request(React { room: room("club"), target: bos, emoji: Emoji::new("👍").unwrap(), on: true }).await.unwrap();
        ada.request(AddPin { room: room("club"), seq: Some(hello), note: None, title: None, edit: None }).await.unwrap();
        cy.request(Report { room: room("club"), seq: reply, category: ReportCategory::Spam, note: short("") })
            .await
            .unwrap();
        // From just before eve's first message: a catch-up from there replays hers.
        let epoch = bo.position(&room("club")).expect("bo joined").epoch;
        let before_hers = Position { epoch, seq: Seq(hello.0 - 1) };
        assert_eq!(found(&bo, "xylophonic", 2).await, 2, "indexed before the erasure");

        // Not by mistake: the name must be eve's own.
        assert_eq!(code(eve.request(EraseAccount { confirm: user("bo") }).await), ErrorCode::BadRequest);
        let erased = eve.request(EraseAccount { confirm: user("eve") }).await.unwrap();
        assert_eq!((erased.user.as_str(), erased.rooms, erased.messages), ("eve", 1, 2));
        assert_eq!(closed_with(&mut eve).await, Some(CloseCode::AccountDisabled));
        for node in &d.nodes {
            assert_eq!(refused(node, "eve").await, Some(CloseCode::AccountDisabled), "the name never connects again");
        }

        // Live: bo hears which messages and reactions went.
        let Event::Erased(live) = until_event(&mut bo, "the erasure", |e| matches!(e, Event::Erased(_))).await else {
            unreachable!()
        };
        assert_eq!((live.user.as_str(), live.messages.clone()), ("eve", vec![hello, reply]));
        assert_eq!(live.reactions.iter().map(|r| r.target).collect::<Vec<_>>(), [bos]);

        // History: tombstones, no reaction of eve's, the pin's text gone.
        for event in history(&bo, "club").await {
            match event {
                Event::Message(m) if m.from.as_str() == "eve" => {
                    let state = m.state.expect("a tombstone's state");
                    assert!(state.deleted && state.erased, "{state:?}");
                    assert!(!m.text.as_str().contains("xylophonic"));
                }
                Event::Message(m) if m.seq == bos => {
                    assert!(m.state.as_ref().is_none_or(|s| s.reactions.is_empty()), "eve's reaction went: {m:?}");
                }
                Event::Edit(_) | Event::Pin(_) | Event::Report(_) | Event::Held(_) => {
                    assert!(!format!("{event:?}").contains("xylophonic"), "{event:?}");
                }
                _ => {}
            }
        }
        let pins = ada.join(&room("club")).await.unwrap().pins;
        assert!(pins.iter().all(|p| !p.text.as_str().contains("xylophonic")), "{pins:?}");
        // A catch-up from before her messages replays only tombstones.
        let mut later = d.client("bo", Codec::MsgPack).await;
        later.join_since(&room("club"), Some(before_hers)).await.unwrap();
        let replayed = replayed_until_erasure(&mut later).await;
        assert!(replayed.iter().any(|e| matches!(e, Event::Message(m) if m.seq == hello)), "{replayed:?}");
        assert!(!format!("{replayed:?}").contains("xylophonic"), "{replayed:?}");
        // The reports queue quotes no text of hers.
        let queue = ada.request(Reports { room: room("club") }).await.unwrap().reports;
        assert!(!format!("{queue:?}").contains("xylophonic"), "{queue:?}");
        // Not a member; not found by search; not in the export.
        let members = ada.request(Members { room: room("club") }).await.unwrap();
        assert!(!format!("{members:?}").contains("\"eve\""), "{members:?}");
        assert_eq!(found(&bo, "xylophonic", 0).await, 0, "search finds nothing of hers");
        let export = export_of(&d.nodes[0], "club").await;
        assert!(export.starts_with("HTTP/1.1 200"), "{export}");
        assert!(!export.contains("xylophonic"), "{export}");
    }
}

in_deployments! { single_durable_timed, cluster_timed;
    async fn a_room_that_keeps_erased_words_shows_them_from_a_former_member(d: Deployment) {
        use hearth_protocol::ops::{Edit, Mentions, RoomSettings, SetRole, SetRoom};
        let (ada, mut bo, cy) = trio(&d, "club").await;
        let keep = |on| SetRoom {
            room: room("club"),
            settings: RoomSettings { erased_as_former_member: Some(on), ..RoomSettings::default() },
        };
        // The owner's choice, not a moderator's.
        let moderator = SetRole { room: room("club"), user: user("cy"), role: hearth_protocol::Role::Moderator, expires_at: None, title: None };
        ada.request(moderator).await.unwrap();
        assert_eq!(code(cy.request(keep(true)).await), ErrorCode::Forbidden);
        ada.request(keep(true)).await.unwrap();
        let mut eve = d.client("eve", Codec::Json).await;
        eve.join(&room("club")).await.unwrap();
        let epoch = bo.position(&room("club")).expect("bo joined").epoch;
        let trick = eve.send(&room("club"), "my velvia trick, ask @bo").await.unwrap().seq;
        let before_hers = Position { epoch, seq: Seq(trick.0 - 1) };
        let edit = Edit { room: room("club"), target: trick, text: hearth_protocol::Text::new("my velvia trick: underexpose, ask @bo").unwrap() };
        eve.request(edit).await.unwrap();
        cy.request(Report { room: room("club"), seq: trick, category: ReportCategory::OffTopic, note: short("") }).await.unwrap();
        assert_eq!(found(&bo, "velvia", 1).await, 1, "indexed before the erasure");

        let erased = eve.request(EraseAccount { confirm: user("eve") }).await.unwrap();
        assert_eq!(erased.messages, 1);
        let Event::Erased(live) = until_event(&mut bo, "the erasure", |e| matches!(e, Event::Erased(_))).await else {
            unreachable!()
        };
        assert!(live.former_member && live.messages == [trick], "{live:?}");

        // History: the words stay, edited as they were, from a former member.
        let kept = history_messages(&bo, "club").await.into_iter().find(|m| m.seq == trick).expect("the message kept");
        assert_eq!((kept.from.as_str(), kept.text.as_str()), ("former-member", "my velvia trick: underexpose, ask @bo"));
        let state = kept.state.expect("its state");
        assert!(state.erased && !state.deleted && state.edited_at.is_some(), "{state:?}");
        // A catch-up from before: the message and its edit, neither from eve.
        let mut later = d.client("bo", Codec::MsgPack).await;
        later.join_since(&room("club"), Some(before_hers)).await.unwrap();
        let replayed = replayed_until_erasure(&mut later).await;
        for event in &replayed {
            match event {
                Event::Message(m) => assert_eq!(m.from.as_str(), "former-member", "{m:?}"),
                Event::Edit(e) => assert_eq!(e.from.as_str(), "former-member", "{e:?}"),
                _ => {}
            }
        }
        assert!(replayed.iter().any(|e| matches!(e, Event::Edit(_))), "{replayed:?}");
        // Search (once the index has read past the erasure), bo's mentions
        // and the reports queue: from a former member.
        bo.send(&room("club"), "quixotic marker").await.unwrap();
        assert_eq!(found(&bo, "quixotic", 1).await, 1, "the index read past the erasure");
        let search = Search { query: "velvia".into(), room: None, before: None, limit: None };
        let results = bo.request(search).await.unwrap().results;
        assert_eq!(results.iter().map(|r| r.from.as_str()).collect::<Vec<_>>(), ["former-member"]);
        let mentions = bo.request(Mentions { before: None, limit: None }).await.unwrap().mentions;
        assert!(mentions.iter().all(|m| m.from.as_str() == "former-member") && !mentions.is_empty(), "{mentions:?}");
        let queue = ada.request(Reports { room: room("club") }).await.unwrap().reports;
        assert_eq!(queue.iter().map(|r| r.author.as_str()).collect::<Vec<_>>(), ["former-member"]);
        // The export keeps the words, not whose they were.
        let export = export_of(&d.nodes[0], "club").await;
        let line = export.lines().find(|l| l.contains("velvia")).expect("the words in the export");
        assert!(line.contains("\"from\":\"former-member\""), "{line}");
        // Nobody signs in as the former member.
        assert_eq!(refused(&d.nodes[0], "former-member").await, Some(CloseCode::AccountDisabled));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_a_backup_from_before_an_erasure_erases_again() {
    use hearth_server::backup;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::durable(dir.path().to_path_buf()).await;
    let mut ada = server.client("ada", Codec::MsgPack).await;
    create_room(&ada, "club", None).await.unwrap();
    ada.join(&room("club")).await.unwrap();
    let mut eve = server.client("eve", Codec::Json).await;
    eve.join(&room("club")).await.unwrap();
    let hers = eve.send(&room("club"), "zebrawood tripod for sale").await.unwrap().seq;
    ada.send(&room("club"), "tell me more").await.unwrap();
    assert_eq!(found(&ada, "zebrawood", 1).await, 1, "indexed");

    let backups = tempfile::tempdir().unwrap();
    let (older, newer) = (backups.path().join("before"), backups.path().join("after"));
    backup::backup(dir.path(), &older).unwrap();
    // The operator erases eve; only after that the second backup.
    let answer = operator_post(&server, "/admin/accounts/erase", &serde_json::json!({ "name": "eve" })).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"messages\":1"), "{answer}");
    assert_eq!(closed_with(&mut eve).await, Some(CloseCode::AccountDisabled));
    // Her name does not come back through an import either.
    let import = serde_json::json!({ "room": "club", "mapping": { "1": "eve" }, "export": { "messages": [] } });
    let answer = operator_post(&server, "/admin/import/discord", &import).await;
    assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("erased"), "{answer}");
    backup::backup(dir.path(), &newer).unwrap();
    drop(ada);
    server.stop().await;

    // The server's own directory, which had the erasure, restored from the
    // backup taken before it: the erasure log comes along.
    let aside = backup::restore(&older, dir.path()).unwrap().expect("what was there moved aside");
    assert!(aside.join("hearth.db").exists());
    let restored = TestServer::durable(dir.path().to_path_buf()).await;
    let ada = restored.client("ada", Codec::MsgPack).await;
    // Gone through again at start: within a bound, her message is a tombstone.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let events = history(&ada, "club").await;
        let tomb = events
            .iter()
            .any(|e| matches!(e, Event::Message(m) if m.seq == hers && m.state.as_ref().is_some_and(|s| s.erased)));
        if tomb {
            assert!(!format!("{events:?}").contains("zebrawood"), "{events:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the erasure was not done again: {events:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(found(&ada, "zebrawood", 0).await, 0, "search finds nothing of hers");
    assert!(!export_of(&restored, "club").await.contains("zebrawood"));
    assert_eq!(refused(&restored, "eve").await, Some(CloseCode::AccountDisabled), "her name stays closed");
    let members = ada.request(Members { room: room("club") }).await.unwrap();
    assert!(!format!("{members:?}").contains("\"eve\""), "{members:?}");
}
