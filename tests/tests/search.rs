//! Search over real sockets, on one node and on two nodes sharing a Redis,
//! against a hand-built corpus: English words and substrings, Japanese and
//! Chinese phrases, query syntax that is only text, messages as they are now
//! (edited, deleted), and only the rooms a member can read.

use std::time::Duration;

use hearth_cli::Client;
use hearth_protocol::ops::{
    Ban, CreateRoom, Delete, Edit, Leave, RequestJoin, Search, SearchResult, SendMessage, Visibility,
};
use hearth_protocol::{ClientMsgId, Codec, ErrorCode, Event, Note, Seq, Text};
use hearth_tests::*;

/// Every page of a search, in order.
async fn search_all(client: &Client, query: &str, in_room: Option<&str>, limit: u16) -> Vec<SearchResult> {
    let mut all = Vec::new();
    let mut before = None;
    for _ in 0..100 {
        let page = client
            .request(Search { query: query.to_string(), room: in_room.map(room), before, limit: Some(limit) })
            .await
            .unwrap();
        all.extend(page.results);
        match page.next {
            Some(next) => before = Some(next),
            None => return all,
        }
    }
    panic!("a search of {query:?} did not end in 100 pages");
}

fn texts(results: &[SearchResult]) -> Vec<String> {
    results.iter().map(|r| r.parts.concat()).collect()
}

/// The texts a search finds, once the index has caught up with them: the
/// index trails the timeline by a moment (a batch; in a cluster, the feed).
async fn found(client: &Client, query: &str, in_room: Option<&str>, expected: &[&str]) -> Vec<SearchResult> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let results = search_all(client, query, in_room, 20).await;
        if texts(&results) == expected || tokio::time::Instant::now() > deadline {
            assert_eq!(texts(&results), expected, "searching {query:?} in {in_room:?}");
            return results;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn post(client: &Client, name: &str, text: &str) -> Seq {
    let cmid = ClientMsgId::new(format!("c{}", text.len() + text.chars().next().map_or(0, |c| c as usize))).unwrap();
    let text = Text::new(text).unwrap();
    let seq = client.request(SendMessage { room: room(name), text, cmid, thread: None }).await.unwrap().seq;
    // Results are newest first by time to the millisecond: each its own.
    tokio::time::sleep(Duration::from_millis(2)).await;
    seq
}

const CORPUS: &[&str] = &[
    "The Portra 400 recipe: push one stop, develop 9 minutes",
    "portraits at dusk, handheld",
    "フィルム写真が好きです",
    "我喜欢胶片摄影和暗房",
    "do NOT touch the fixer",
    "tea OR coffee before the darkroom?",
    "she said \"hello\" twice",
    "f/2.8 * 1/60 = blur",
    "Café crème after the walk",
];

both_modes! {
    async fn search_finds_words_substrings_and_cjk_and_takes_syntax_as_text(d: Deployment) {
        let ada = d.client("ada", Codec::MsgPack).await;
        create_room(&ada, "cameras", None).await.unwrap();
        create_room(&ada, "darkroom", None).await.unwrap();
        let mut bo = d.client("bo", Codec::Json).await;
        bo.join(&room("cameras")).await.unwrap();
        bo.join(&room("darkroom")).await.unwrap();
        for (n, text) in CORPUS.iter().enumerate() {
            post(&ada, if n % 2 == 0 { "cameras" } else { "darkroom" }, text).await;
        }

        // Words and substrings, any case, newest first across rooms.
        found(&bo, "portra", None, &[CORPUS[1], CORPUS[0]]).await;
        found(&ada, "RECIPE", None, &[CORPUS[0]]).await;
        found(&bo, "ortrai", None, &[CORPUS[1]]).await;
        // Accents ignored for whole words, and the word shown as the match.
        let hit = &found(&bo, "cafe", None, &[CORPUS[8]]).await[0];
        assert_eq!(hit.parts, ["", "Café", " crème after the walk"]);
        // Japanese and Chinese: no spaces between words, found inside phrases.
        found(&bo, "写真", None, &[CORPUS[2]]).await;
        found(&ada, "フィルム写真", None, &[CORPUS[2]]).await;
        found(&bo, "胶片摄影", None, &[CORPUS[3]]).await;
        found(&bo, "暗房", Some("darkroom"), &[CORPUS[3]]).await;
        // Query syntax is text.
        found(&bo, "NOT touch", None, &[CORPUS[4]]).await;
        found(&bo, "tea OR coffee", None, &[CORPUS[5]]).await;
        found(&bo, "\"hello\"", None, &[CORPUS[6]]).await;
        found(&ada, "* 1/60", None, &[CORPUS[7]]).await;
        // Two characters: a substring too, in any case.
        found(&bo, "OR", None, &[CORPUS[5], CORPUS[1], CORPUS[0]]).await;
        found(&bo, "\"", None, &[CORPUS[6]]).await;
        // One room.
        found(&bo, "the", Some("cameras"), &[CORPUS[8], CORPUS[4], CORPUS[0]]).await;
        // The match is marked: the parts at odd places.
        let hit = &found(&bo, "hello", None, &[CORPUS[6]]).await[0];
        assert_eq!(hit.parts, ["she said \"", "hello", "\" twice"]);
        assert_eq!((hit.room.clone(), hit.from.clone()), (room("cameras"), user("ada")));
        // Pages of one, in the same order.
        assert_eq!(texts(&search_all(&bo, "the", None, 1).await), texts(&search_all(&bo, "the", None, 20).await));

        // Bad queries and cursors are refused, with the reason.
        for query in ["", "   ", &"x".repeat(201)] {
            let refused = bo.request(Search { query: query.to_string(), room: None, before: None, limit: None }).await;
            assert_eq!(code(refused), ErrorCode::BadRequest);
        }
        let cursor = Some("next page please".to_string());
        let refused = bo.request(Search { query: "tea".into(), room: None, before: cursor, limit: None }).await;
        assert_eq!(code(refused), ErrorCode::BadRequest);
        drop(bo.next_event_within(Duration::from_millis(1)).await);
        d.stop().await;
    }

    async fn search_shows_messages_as_they_are_now_to_members_only(d: Deployment) {
        let ada = d.client("ada", Codec::MsgPack).await;
        create_room(&ada, "cameras", None).await.unwrap();
        create_room(&ada, "lab", None).await.unwrap();
        let mut bo = d.client("bo", Codec::Json).await;
        bo.join(&room("cameras")).await.unwrap();
        bo.join(&room("lab")).await.unwrap();
        let edited = post(&ada, "cameras", "meet at the old pier").await;
        let deleted = post(&ada, "cameras", "pier photos are up").await;
        post(&ada, "lab", "the lab's pier prints").await;
        found(&bo, "pier", None, &["the lab's pier prints", "pier photos are up", "meet at the old pier"]).await;

        // An edit is found by its new text only; a deletion not at all.
        ada.request(Edit { room: room("cameras"), target: edited, text: Text::new("meet at the new jetty").unwrap() })
            .await
            .unwrap();
        ada.request(Delete { room: room("cameras"), target: deleted }).await.unwrap();
        found(&bo, "jetty", None, &["meet at the new jetty"]).await;
        found(&bo, "pier", None, &["the lab's pier prints"]).await;
        found(&bo, "old pier", None, &[]).await;

        // A room left, or banned from, is not searched.
        bo.request(Leave { room: room("lab") }).await.unwrap();
        found(&bo, "pier", None, &[]).await;
        assert_eq!(code(bo.request(Search { query: "pier".into(), room: Some(room("lab")), before: None, limit: None }).await), ErrorCode::NotMember);
        let ban = Ban { room: room("cameras"), user: user("bo"), reason: short(""), duration_secs: None };
        ada.request(ban).await.unwrap();
        found(&bo, "jetty", None, &[]).await;

        // A pending requester of an approval room finds nothing in it.
        ada.request(CreateRoom {
            room: room("circle"),
            topic: short("by approval"),
            cap: None,
            visibility: Visibility::Approval,
        })
        .await
        .unwrap();
        post(&ada, "circle", "the circle meets on thursdays").await;
        let cy = d.client("cy", Codec::MsgPack).await;
        cy.request(RequestJoin { room: room("circle"), note: Note::new("hello").unwrap() }).await.unwrap();
        found(&ada, "thursdays", None, &["the circle meets on thursdays"]).await;
        found(&cy, "thursdays", None, &[]).await;
        let refused = cy.request(Search { query: "thursdays".into(), room: Some(room("circle")), before: None, limit: None }).await;
        assert_eq!(code(refused), ErrorCode::NotMember);
        d.stop().await;
    }
}

/// On two nodes, a message ordered through one node is found from the other
/// even when nobody there receives the room: the cluster's feed names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_the_room_in_memory_finds_its_messages() {
    let d = Deployment::cluster().await;
    let ada = d.node("ada").client("ada", Codec::MsgPack).await;
    create_room(&ada, "cameras", None).await.unwrap();
    let mut bo = d.node("ada").client("bo", Codec::MsgPack).await;
    bo.join(&room("cameras")).await.unwrap();
    drop(bo);
    post(&ada, "cameras", "the rangefinder is back from repair").await;
    let elsewhere = d.other_node("ada").client("bo", Codec::Json).await;
    found(&elsewhere, "rangefinder", None, &["the rangefinder is back from repair"]).await;
    d.stop().await;
}

async fn kept(d: Deployment) {
    let ada = d.client("ada", Codec::MsgPack).await;
    create_room(&ada, "cameras", None).await.unwrap();
    let first = post(&ada, "cameras", "a message from before the restart").await;
    found(&ada, "before the restart", None, &["a message from before the restart"]).await;
    drop(ada);
    let d = d.restart().await;
    let mut ada = d.client("ada", Codec::MsgPack).await;
    found(&ada, "before the restart", None, &["a message from before the restart"]).await;
    // And the index goes on from where it was.
    ada.request(Edit { room: room("cameras"), target: first, text: Text::new("edited after the restart").unwrap() })
        .await
        .unwrap();
    found(&ada, "after the restart", None, &["edited after the restart"]).await;
    drop(ada.next_event_within(Duration::from_millis(1)).await.map(|e| matches!(e, Some(Event::Edit(_)))));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_survives_a_restart_on_one_node() {
    kept(Deployment::single_durable().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_cluster_reads_its_index_from_redis() {
    kept(Deployment::cluster().await).await;
}

/// An index lost between runs is made again from the rooms' timelines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_index_is_rebuilt_from_the_store() {
    let d = Deployment::single_durable().await;
    let ada = d.client("ada", Codec::MsgPack).await;
    create_room(&ada, "cameras", None).await.unwrap();
    post(&ada, "cameras", "kept in the store").await;
    found(&ada, "kept", None, &["kept in the store"]).await;
    drop(ada);
    let dir = d.node("ada").data_dir.clone().expect("a durable node");
    let d = d
        .restart_after(|| {
            std::fs::write(dir.join("search.db"), b"not a database at all").unwrap();
            for suffix in ["-wal", "-shm"] {
                let _ = std::fs::remove_file(dir.join(format!("search.db{suffix}")));
            }
        })
        .await;
    let ada = d.client("ada", Codec::MsgPack).await;
    found(&ada, "kept", None, &["kept in the store"]).await;
    d.stop().await;
}
