//! Importing from Discord over the operator's endpoint (what `hearth-server
//! import discord` posts), on one node and on two nodes sharing a Redis: a
//! small hand-made DiscordChatExporter export (tests/discord_export.json:
//! a pinned welcome with reactions, Discord's own join notice, an edited
//! question, a reply and a reply to the reply, attachments, an author the
//! mapping names by id, one by name, one it does not) is read into a room;
//! importing it again adds nothing.

use std::time::{Duration, Instant};

use hearth_cli::{Client, Options};
use hearth_protocol::ops::Search;
use hearth_protocol::{CloseCode, Codec, Millis, Seq};
use hearth_tests::*;

const EXPORT: &str = include_str!("discord_export.json");

/// Posts the export to `/admin/import/discord`: the status and the answer.
async fn import(server: &TestServer, room: &str) -> (u16, serde_json::Value) {
    let export: serde_json::Value = serde_json::from_str(EXPORT).unwrap();
    let body = serde_json::json!({ "room": room, "mapping": { "1": "ada", "bob_films": "bo" }, "export": export });
    let answer = operator_post(server, "/admin/import/discord", &body).await;
    let status = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
}

in_deployments! { single_durable, cluster;
    async fn a_discord_export_is_imported_once_with_its_threads_pins_and_names(d: Deployment) {
        let mut ada = d.client("ada", Codec::MsgPack).await;
        create_room(&ada, "darkroom", None).await.unwrap();
        ada.join(&room("darkroom")).await.unwrap();
        assert_eq!(import(&d.nodes[0], "nowhere").await.0, 404, "into a room that exists");

        let (status, outcome) = import(&d.nodes[0], "darkroom").await;
        assert_eq!(status, 200, "{outcome}");
        assert_eq!(
            (&outcome["imported"], &outcome["already"], &outcome["skipped"], &outcome["pinned"]),
            (&5.into(), &0.into(), &1.into(), &1.into()),
            "{outcome}"
        );
        let imported = history_messages(&ada, "darkroom").await;
        let by_id = |id: &str| {
            imported
                .iter()
                .find(|m| m.imported.as_ref().is_some_and(|i| i.id == id))
                .unwrap_or_else(|| panic!("message {id} imported: {imported:?}"))
        };
        let welcome = by_id("100");
        let origin = welcome.imported.as_ref().unwrap();
        assert_eq!((welcome.from.as_str(), origin.author.as_str(), origin.source.as_str()), ("ada", "Alice", "discord"));
        assert_eq!(origin.at, Millis(1_614_861_296_789));
        assert_eq!(origin.reactions.iter().map(|r| (r.emoji.as_str(), r.count)).collect::<Vec<_>>(), [("👋", 3)]);
        let question = by_id("102");
        let asked = question.imported.as_ref().unwrap();
        assert_eq!((question.from.as_str(), asked.author.as_str()), ("bo", "Bobby"));
        assert_eq!(asked.at, Millis(1_614_861_660_000), "its zone taken into account");
        assert_eq!(asked.edited_at, Some(Millis(1_614_861_750_500)));
        // Replies are thread replies; a reply to a reply is in the first one's thread.
        let (answer, scan) = (by_id("103"), by_id("104"));
        assert_eq!((answer.thread, scan.thread), (Some(question.seq), Some(question.seq)));
        // An author the mapping does not name: shown by their old name.
        assert_eq!((scan.from.as_str(), scan.imported.as_ref().unwrap().author.as_str()), ("discord-import", "carol"));
        assert_eq!(
            scan.text.as_str(),
            "Me too <b>see</b> my scan\n📎 scan.jpg: https://cdn.discordapp.com/attachments/901/5/scan.jpg"
        );
        assert_eq!(by_id("105").text.as_str(), "📎 contact-sheet.pdf: https://cdn.discordapp.com/attachments/901/6/contact-sheet.pdf");
        assert!(imported.iter().all(|m| m.imported.as_ref().is_none_or(|i| i.id != "101")), "Discord's join notice left out");
        let pins = ada.join(&room("darkroom")).await.unwrap().pins;
        assert_eq!(pins.iter().filter_map(|p| p.seq).collect::<Vec<_>>(), [welcome.seq]);

        // Again: nothing added, nothing pinned twice.
        let head = imported.last().map(|m| m.seq).unwrap_or(Seq::ZERO);
        let (status, again) = import(&d.nodes[0], "darkroom").await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(
            (&again["imported"], &again["already"], &again["skipped"], &again["pinned"]),
            (&0.into(), &5.into(), &1.into(), &0.into()),
            "{again}"
        );
        let after = history_messages(&ada, "darkroom").await;
        assert_eq!(after.len(), imported.len());
        assert_eq!(after.last().map(|m| m.seq), Some(head));

        // Found by search like any message; nobody signs in as the importer.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let search = Search { query: "Portra".into(), room: None, before: None, limit: None };
            let results = ada.request(search).await.unwrap().results;
            if results.iter().any(|r| r.seq == question.seq) {
                break;
            }
            assert!(Instant::now() < deadline, "the import is searchable: {results:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut options = Options::new(d.nodes[0].url(), d.nodes[0].token("discord-import"), Codec::Json);
        options.request_timeout = WAIT;
        match Client::connect(options).await {
            Err(hearth_cli::ClientError::Closed(Some(close))) => assert_eq!(close.hearth_code(), Some(CloseCode::AccountDisabled)),
            Err(other) => panic!("refused with a close code, not {other}"),
            Ok(mut client) => {
                let deadline = Instant::now() + WAIT;
                while Instant::now() < deadline && client.next_event_within(WAIT).await.unwrap_or(None).is_some() {}
                assert_eq!(client.close_info().and_then(|c| c.hearth_code()), Some(CloseCode::AccountDisabled));
            }
        }
        let _ = &mut ada;
    }
}
