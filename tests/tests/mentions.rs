//! Mentions over real sockets, on one node and on two nodes sharing a Redis:
//! the server resolves `@name` against the room's members and carries it on
//! the message; a reply mentions its root's author; `@room` is a
//! moderator's; every mention lands in the member's inbox across rooms,
//! shown as the message is now, with its read state, and kept across a
//! restart.

use hearth_cli::Client;
use hearth_protocol::event::MessageEvent;
use hearth_protocol::ops::{Delete, Edit, MarkRead, MentionItem, Mentions, SendMessage, SetRole};
use hearth_protocol::{ClientMsgId, Codec, Event, Role, Seq, Text};
use hearth_tests::*;

async fn posted(author: &Client, reader: &mut Client, name: &str, text: &str, thread: Option<Seq>) -> MessageEvent {
    let cmid = ClientMsgId::new(format!("m-{}", text.len() * 7 + thread.map_or(0, |s| s.0 as usize))).unwrap();
    let sent =
        author.request(SendMessage { room: room(name), text: Text::new(text).unwrap(), cmid, thread }).await.unwrap();
    match until_event(reader, "the message", |e| matches!(e, Event::Message(m) if m.seq == sent.seq)).await {
        Event::Message(m) => m,
        _ => unreachable!(),
    }
}

async fn inbox(client: &Client) -> Vec<MentionItem> {
    let mut all = Vec::new();
    let mut before = None;
    loop {
        let page = client.request(Mentions { before, limit: Some(2) }).await.unwrap();
        all.extend(page.mentions);
        match page.next {
            Some(next) => before = Some(next),
            None => return all,
        }
    }
}

fn texts(items: &[MentionItem]) -> Vec<&str> {
    items.iter().map(|m| m.text.as_str()).collect()
}

both_modes! {
    async fn mentions_are_resolved_by_the_server_and_kept_in_an_inbox(d: Deployment) {
        let ada = d.client("ada", Codec::MsgPack).await;
        create_room(&ada, "cameras", None).await.unwrap();
        create_room(&ada, "darkroom", None).await.unwrap();
        let mut bo = d.client("bo", Codec::Json).await;
        let mut cy = d.client("cy", Codec::MsgPack).await;
        for name in ["cameras", "darkroom"] {
            bo.join(&room(name)).await.unwrap();
            cy.join(&room(name)).await.unwrap();
        }

        // Names of members, in any case, not addresses; not the author.
        let m = posted(&ada, &mut cy, "cameras", "@BO and @cy, mail ada@example.org or @nobody; @ada.", None).await;
        assert_eq!(m.mentions, [user("bo"), user("cy")]);
        assert!(!m.mentions_room);
        // A reply mentions the root's author.
        let reply = posted(&cy, &mut bo, "cameras", "agreed", Some(m.seq)).await;
        assert_eq!(reply.mentions, [user("ada")]);
        // @room: a moderator's calls everyone; a member's is text.
        let plain = posted(&bo, &mut cy, "darkroom", "hello @room", None).await;
        assert!(!plain.mentions_room && plain.mentions.is_empty());
        ada.request(SetRole { room: room("darkroom"), user: user("bo"), role: Role::Moderator, expires_at: None, title: None })
            .await
            .unwrap();
        let loud = posted(&bo, &mut cy, "darkroom", "fixer day, @room", None).await;
        assert!(loud.mentions_room);

        // Bo's inbox, newest first, across rooms, paged.
        let later = posted(&cy, &mut bo, "darkroom", "@bo your negatives are dry", None).await;
        let items = inbox(&bo).await;
        assert_eq!(texts(&items), ["@bo your negatives are dry", "@BO and @cy, mail ada@example.org or @nobody; @ada."]);
        assert_eq!((items[0].room.clone(), items[0].seq, items[0].from.clone()), (room("darkroom"), later.seq, user("cy")));
        assert!(items.iter().all(|m| !m.read));
        // Read state shows; edits show; deletions leave.
        bo.request(MarkRead { room: room("cameras"), seq: m.seq }).await.unwrap();
        ada.request(Edit { room: room("cameras"), target: m.seq, text: Text::new("@bo edited").unwrap() }).await.unwrap();
        let items = inbox(&bo).await;
        assert_eq!(texts(&items), ["@bo your negatives are dry", "@bo edited"]);
        assert_eq!(items.iter().map(|m| m.read).collect::<Vec<_>>(), [false, true]);
        cy.request(Delete { room: room("darkroom"), target: later.seq }).await.unwrap();
        assert_eq!(texts(&inbox(&bo).await), ["@bo edited"]);
        assert_eq!(
            texts(&inbox(&ada).await),
            ["fixer day, @room", "agreed"],
            "a moderator's @room, and the reply in the root author's inbox"
        );
        assert_eq!(texts(&inbox(&cy).await), ["fixer day, @room", "@bo edited"], "as the message is now");
        d.stop().await;
    }
}

async fn kept(d: Deployment) {
    let ada = d.client("ada", Codec::MsgPack).await;
    create_room(&ada, "cameras", None).await.unwrap();
    let mut bo = d.client("bo", Codec::MsgPack).await;
    bo.join(&room("cameras")).await.unwrap();
    posted(&ada, &mut bo, "cameras", "@bo see you sunday", None).await;
    drop((ada, bo));
    let d = d.restart().await;
    let bo = d.client("bo", Codec::MsgPack).await;
    assert_eq!(texts(&inbox(&bo).await), ["@bo see you sunday"]);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_survives_a_restart_on_one_node() {
    kept(Deployment::single_durable().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_survives_a_restart_of_a_cluster() {
    kept(Deployment::cluster().await).await;
}

both_modes! {
    async fn a_released_post_mentions_as_a_post_does(d: Deployment) {
        use hearth_protocol::ops::{Release, RoomSettings, SetRoom};
        let ada = d.client("ada", Codec::MsgPack).await;
        create_room(&ada, "cameras", None).await.unwrap();
        let probation = RoomSettings { probation_secs: Some(3 * 86_400), ..RoomSettings::default() };
        ada.request(SetRoom { room: room("cameras"), settings: probation }).await.unwrap();
        let mut cy = d.client("cy", Codec::MsgPack).await;
        cy.join(&room("cameras")).await.unwrap();
        let cmid = ClientMsgId::new("held-1").unwrap();
        let text = Text::new("@ada my scans: https://example.org/scans").unwrap();
        let sent = cy.request(SendMessage { room: room("cameras"), text, cmid: cmid.clone(), thread: None }).await.unwrap();
        assert!(sent.held, "a newcomer's link waits for a look");
        assert!(inbox(&ada).await.is_empty(), "not before it is posted");
        ada.request(Release { room: room("cameras"), user: user("cy"), cmid, approve: true, reason: hearth_tests::short("") })
            .await
            .unwrap();
        let released = until_event(&mut cy, "the released post", |e| matches!(e, Event::Message(m) if m.released_by.is_some())).await;
        let Event::Message(released) = released else { unreachable!() };
        assert_eq!(released.mentions, [user("ada")]);
        assert_eq!(texts(&inbox(&ada).await), ["@ada my scans: https://example.org/scans"]);
        d.stop().await;
    }
}
