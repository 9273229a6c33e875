//! Every reply that can grow fits in one frame (1 MiB), in either codec, on
//! one node and on two: a list longer than a frame holds is cut where it
//! would pass it and says `more`, and the rest is there on the next page —
//! never a frame the client must refuse, never a connection dropped without
//! a close frame. Texts of control characters are the worst case: JSON
//! writes each as a six-byte escape.

use hearth_protocol::ops::{
    CreateRoom, JoinRequests, ListRooms, RequestJoin, RoomSettings, SetRoom, ThreadHistory, Visibility,
};
use hearth_protocol::{ClientMsgId, Codec, Note, Seq, ShortText, Text};
use hearth_tests::*;

/// `n` bytes of control characters: 6n in JSON.
fn escapes(n: usize) -> String {
    "\u{1}".repeat(n)
}

both_modes! {
    async fn a_page_of_rooms_fits_in_a_frame_and_the_rest_follows(d: Deployment) {
        // 8 owners × 50 rooms with 512-byte topics: ~3 KiB each in JSON, so a
        // page of 500 would be ~1.3 MB.
        let topic = ShortText::new(escapes(512)).unwrap();
        let mut made = 0;
        for owner in 0..8 {
            let client = d.client(&format!("owner{owner}"), Codec::MsgPack).await;
            for n in 0..50 {
                let room = room(&format!("r{owner}-{n:02}"));
                let args = CreateRoom { room, topic: topic.clone(), cap: None, visibility: Visibility::Open };
                client.request(args).await.unwrap();
                made += 1;
            }
        }
        let reader = d.client("reader", Codec::Json).await;
        let (mut seen, mut after, mut pages) = (Vec::new(), None, 0);
        loop {
            let page = reader.request(ListRooms { after: after.clone(), limit: Some(500) }).await.unwrap();
            pages += 1;
            assert!(!page.rooms.is_empty());
            after = page.rooms.last().map(|r| r.room.clone());
            seen.extend(page.rooms.into_iter().map(|r| r.room));
            if !page.more {
                break;
            }
        }
        assert!(pages >= 2, "400 rooms of 3 KiB are more than a frame");
        let unique: std::collections::BTreeSet<_> = seen.iter().collect();
        assert_eq!((seen.len(), unique.len()), (made, made), "every room once");
        d.stop().await;
    }

    async fn a_thread_page_and_the_join_requests_fit_in_a_frame(d: Deployment) {
        let ada = d.client("ada", Codec::MsgPack).await;
        create_room(&ada, "long", None).await.unwrap();
        let root = ada.send(&room("long"), "root").await.unwrap().seq;
        // 40 replies of 8 KiB of control characters: 48 KiB each in JSON.
        let text = Text::new(escapes(8_000)).unwrap();
        for n in 0..40 {
            let reply = hearth_protocol::ops::SendMessage {
                room: room("long"),
                text: text.clone(),
                cmid: ClientMsgId::new(format!("r{n}")).unwrap(),
                thread: Some(root),
            };
            ada.request(reply).await.unwrap();
        }
        let bo = d.client("bo", Codec::Json).await;
        bo.request(hearth_protocol::ops::Join { room: room("long"), since: None, invite: None }).await.unwrap();
        let (mut replies, mut after, mut pages) = (Vec::new(), None::<Seq>, 0);
        loop {
            let page = bo.request(ThreadHistory { room: room("long"), root, after, limit: Some(100) }).await.unwrap();
            pages += 1;
            let mine: Vec<Seq> = page.events.iter().skip(1).filter_map(|e| e.seq()).collect();
            assert!(!mine.is_empty(), "each page carries replies");
            after = mine.last().copied();
            replies.extend(mine);
            if !page.more {
                break;
            }
        }
        assert!(pages >= 2, "40 replies of 48 KiB are more than a frame");
        assert_eq!(replies.len(), 40, "every reply once: {replies:?}");
        assert_strictly_increasing(replies.iter().map(|s| s.0), "thread");

        // Join requests with 4 KiB notes: 24 KiB each in JSON.
        let vetted = RoomSettings { visibility: Some(Visibility::Approval), ..RoomSettings::default() };
        ada.request(SetRoom { room: room("long"), settings: vetted }).await.unwrap();
        let note = Note::new(escapes(4_000)).unwrap();
        for n in 0..60 {
            let asker = d.client(&format!("asker{n}"), Codec::MsgPack).await;
            asker.request(RequestJoin { room: room("long"), note: note.clone() }).await.unwrap();
        }
        let ada_json = d.client("ada", Codec::Json).await;
        let listed = ada_json.request(JoinRequests { room: room("long") }).await.unwrap();
        assert!(listed.more, "60 requests of 24 KiB are more than a frame");
        assert!((20..60).contains(&listed.requests.len()), "{}", listed.requests.len());
        // In MessagePack the same requests all fit.
        let all = ada.request(JoinRequests { room: room("long") }).await.unwrap();
        assert_eq!((all.requests.len(), all.more), (60, false));
        d.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_that_cannot_fit_in_a_frame_is_refused_clearly_and_the_connection_stays() {
    use hearth_protocol::ops::{Members, SetRole};
    use hearth_protocol::{ErrorCode, Role};
    let d = Deployment::single().await;
    let ada = d.client("ada", Codec::MsgPack).await;
    let big = CreateRoom { room: room("big"), topic: short(""), cap: Some(1000), visibility: Visibility::Open };
    ada.request(big).await.unwrap();
    // 400 members, each titled with 512 control characters: 3 KiB each in
    // JSON, and `members` is one list with no pages.
    let title = ShortText::new(escapes(512)).unwrap();
    for n in 0..400 {
        let name = format!("m{n}");
        let member = d.client(&name, Codec::MsgPack).await;
        member.request(hearth_protocol::ops::Join { room: room("big"), since: None, invite: None }).await.unwrap();
        let titled = SetRole {
            room: room("big"),
            user: user(&name),
            role: Role::Member,
            expires_at: None,
            title: Some(title.clone()),
        };
        ada.request(titled).await.unwrap();
    }
    let json = d.client("ada", Codec::Json).await;
    let refused = refusal(json.request(Members { room: room("big") }).await);
    assert_eq!(refused.code, ErrorCode::LimitReached);
    assert!(refused.message.contains("frame"), "{}", refused.message);
    json.request(hearth_protocol::ops::Ping {}).await.expect("the connection stays open");
    assert_eq!(ada.request(Members { room: room("big") }).await.unwrap().members.len(), 401, "fits in MessagePack");
    d.stop().await;
}
