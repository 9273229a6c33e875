//! Exports over HTTP, on one node and on two nodes sharing a Redis: a
//! room with an edit, a deletion, a thread and reactions, exported by its
//! owner as JSON Lines (compared with `export_expected.jsonl`, checked by
//! hand) and as a page with no script that escapes hostile text; a member's
//! own data; and who may export what.

use hearth_protocol::ops::{Delete, Edit, React, SendMessage};
use hearth_protocol::{ClientMsgId, Emoji, Seq, Text};
use hearth_tests::*;

/// `GET path` with `user`'s token: the status and the body.
async fn get_as(server: &TestServer, path: &str, user: Option<&str>) -> (u16, String) {
    let auth = user.map(|u| format!("Authorization: Bearer {}\r\n", server.token(u))).unwrap_or_default();
    let answer = http(server, &format!("GET {path} HTTP/1.1\r\nHost: hearth\r\n{auth}Connection: close\r\n\r\n")).await;
    let status = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

fn cmid(id: &str) -> ClientMsgId {
    ClientMsgId::new(id).unwrap()
}

in_deployments! { single_durable_timed, cluster_timed;
    async fn a_room_exports_as_it_is_now_and_a_member_takes_their_own_data(d: Deployment) {
        let (ada, bo, cy) = trio(&d, "club").await;
        let club = room("club");
        let welcome = ada.send_with_cmid(&club, "Welcome to the club", &cmid("a1")).await.unwrap().seq;
        let question = bo.send_with_cmid(&club, "Portra or Ektar?", &cmid("b1")).await.unwrap().seq;
        let reply = SendMessage { room: club.clone(), text: Text::new("Portra, always").unwrap(), cmid: cmid("c1"), thread: Some(question) };
        cy.request(reply).await.unwrap();
        bo.request(Edit { room: club.clone(), target: question, text: Text::new("Portra 400 or Ektar 100?").unwrap() }).await.unwrap();
        cy.send_with_cmid(&club, "<script>alert('x')</script> & \"quotes\"", &cmid("c2")).await.unwrap();
        let oops = cy.send_with_cmid(&club, "oops, wrong room", &cmid("c3")).await.unwrap().seq;
        cy.request(Delete { room: club.clone(), target: oops }).await.unwrap();
        let thumbs = || Emoji::new("👍").unwrap();
        ada.request(React { room: club.clone(), target: question, emoji: thumbs(), on: true }).await.unwrap();
        cy.request(React { room: club.clone(), target: question, emoji: thumbs(), on: true }).await.unwrap();
        bo.request(React { room: club.clone(), target: welcome, emoji: Emoji::new("❤️").unwrap(), on: true }).await.unwrap();
        assert_eq!(welcome, Seq(4));

        let node = d.node("ada");
        let (status, jsonl) = get_as(node, "/export/room/club.jsonl", Some("ada")).await;
        assert_eq!(status, 200, "{jsonl}");
        let expected_path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/export_expected.jsonl");
        if std::env::var_os("HEARTH_WRITE_EXPECTED").is_some() {
            std::fs::write(expected_path, &jsonl).unwrap();
        }
        let expected = std::fs::read_to_string(expected_path).expect("the expected export");
        assert_eq!(jsonl, expected, "the export differs from the expected file");
        assert!(!jsonl.contains("oops") && !jsonl.contains("\"Portra or Ektar?\""), "text taken back is in no export");

        // The page: no script anywhere, hostile text escaped, the room as it is now.
        let (status, page) = get_as(node, "/export/room/club.html", Some("ada")).await;
        assert_eq!(status, 200);
        assert!(!page.to_lowercase().contains("<script"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quotes&quot;"), "{page}");
        assert!(page.contains("Portra 400 or Ektar 100?") && page.contains("This message was deleted."), "{page}");
        assert!(page.contains("reply to <a href=\"#m5\">#5</a>") && page.contains("👍 2"), "{page}");
        assert!(!page.contains("oops"), "{page}");

        // Only the owner exports the room; a token is needed.
        assert_eq!(get_as(node, "/export/room/club.jsonl", Some("bo")).await.0, 403);
        assert_eq!(get_as(node, "/export/room/club.jsonl", None).await.0, 401);
        assert_eq!(get_as(node, "/export/room/nowhere.jsonl", Some("ada")).await.0, 404);

        // A member's own data: their messages as they are now, their reactions, their rooms.
        let (status, mine) = get_as(d.node("bo"), "/export/me.json", Some("bo")).await;
        assert_eq!(status, 200, "{mine}");
        let mine: serde_json::Value = serde_json::from_str(&mine).unwrap();
        assert_eq!(mine["user"], "bo");
        let texts: Vec<&str> = mine["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
        assert_eq!(texts, ["Portra 400 or Ektar 100?"]);
        assert_eq!(mine["reactions"], serde_json::json!([{"room": "club", "message": 4, "emoji": "❤️"}]));
        assert_eq!(mine["memberships"][0]["room"], "club");
        let (_, cys) = get_as(d.node("cy"), "/export/me.json", Some("cy")).await;
        assert!(!cys.contains("oops") && cys.contains("Portra, always"), "{cys}");
        d.stop().await;
    }
}
