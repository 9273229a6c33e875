//! Direct messages over real sockets, on one node and on two nodes sharing a
//! Redis: a conversation is a room of kind `direct`, so history, edits,
//! reactions, read state and search work in it unchanged; who may start one
//! is written out as a matrix (probation, pending, muted, banned, blocked, no
//! shared room); blocks, the rate and the operator's switch.

use hearth_cli::Client;
use hearth_protocol::ops::{
    Ban, Block, Blocks, CreateRoom, Edit, History, Join, Leave, ListRooms, MarkRead, Mute, React, ReadState,
    RequestJoin, RoomInfo, RoomSettings, Search, SendMessage, SetRoom, StartDirect, Visibility,
};
use hearth_protocol::{ClientMsgId, Codec, Emoji, ErrorCode, Event, Note, RoomId, Seq, ShortText, Text};
use hearth_server::{Config, Storage};
use hearth_tests::*;

async fn start(client: &Client, with: &[&str]) -> Result<RoomInfo, hearth_cli::ClientError> {
    client.request(StartDirect { with: with.iter().map(|n| user(n)).collect() }).await
}

async fn say(client: &Client, room: &RoomId, text: &str) -> Result<Seq, hearth_cli::ClientError> {
    let cmid = ClientMsgId::new(format!("d-{}", text.len())).unwrap();
    let sent = client.request(SendMessage { room: room.clone(), text: Text::new(text).unwrap(), cmid, thread: None });
    Ok(sent.await?.seq)
}

/// The `reason` of a `direct_refused`.
fn reason<T: std::fmt::Debug>(result: Result<T, hearth_cli::ClientError>) -> String {
    let body = refusal(result);
    assert_eq!(body.code, ErrorCode::DirectRefused, "{body:?}");
    body.reason.unwrap_or_default()
}

async fn finds(client: &Client, room: &RoomId, query: &str) -> bool {
    let search = Search { query: query.into(), room: None, before: None, limit: None };
    client.request(search).await.unwrap().results.iter().any(|r| r.room == *room)
}

async fn listed(client: &Client) -> Vec<RoomId> {
    client.request(ListRooms::default()).await.unwrap().rooms.into_iter().map(|r| r.room).collect()
}

in_deployments! { single_durable, cluster;
    async fn a_conversation_is_a_room_of_its_own_kind(d: Deployment) {
        let (mut ada, mut bo, cy) = trio(&d, "cameras").await;

        // Bo starts it; ada hears of it on her connection, with who is in it.
        let info = start(&bo, &["ada"]).await.unwrap();
        let dm = info.room.clone();
        assert!(dm.as_str().starts_with("dm-"), "{dm}");
        assert_eq!((info.visibility, info.members, info.direct.clone()), (Visibility::Direct, 2, vec![user("bo"), user("ada")]));
        match until_event(&mut ada, "the conversation", |e| matches!(e, Event::DirectStarted(_))).await {
            Event::DirectStarted(started) => {
                assert_eq!((started.room, started.from, started.members), (dm.clone(), user("bo"), vec![user("bo"), user("ada")]));
            }
            _ => unreachable!(),
        }
        // The same two make the same room, whoever starts it; nothing new is ordered.
        let again = start(&ada, &["bo", "ada", "bo"]).await.unwrap();
        assert_eq!((again.room.clone(), again.head), (dm.clone(), info.head));

        // Everything a room does.
        ada.join(&dm).await.unwrap();
        bo.join(&dm).await.unwrap();
        let first = say(&bo, &dm, "the Portra scans are up").await.unwrap();
        until_event(&mut ada, "bo's message", |e| matches!(e, Event::Message(m) if m.seq == first)).await;
        ada.request(React { room: dm.clone(), target: first, emoji: Emoji::new("👍").unwrap(), on: true }).await.unwrap();
        bo.request(Edit { room: dm.clone(), target: first, text: Text::new("the Portra 400 scans are up").unwrap() })
            .await
            .unwrap();
        let page = ada.request(History { room: dm.clone(), before: None, after: None, limit: None }).await.unwrap();
        assert!(page.events.iter().any(|e| matches!(e, Event::DirectStarted(s) if s.seq == Seq(1))));
        let read = ada.request(ReadState {}).await.unwrap();
        let mine = read.rooms.iter().find(|r| r.room == dm).expect("the conversation has read state");
        assert_eq!(mine.unread, 1);
        ada.request(MarkRead { room: dm.clone(), seq: first }).await.unwrap();

        // Search finds it for its members only (the index may be a moment behind).
        let mut waited = 0;
        while !finds(&ada, &dm, "portra 400").await {
            waited += 1;
            assert!(waited < 100, "search never found the direct message");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(!finds(&cy, &dm, "portra 400").await, "cy is not in the conversation");

        // Nobody else gets in, or sees it listed; it stays direct.
        assert_eq!(code(cy.request(Join { room: dm.clone(), since: None, invite: None }).await), ErrorCode::Forbidden);
        assert!(!listed(&cy).await.contains(&dm));
        assert!(listed(&ada).await.contains(&dm));
        let open = RoomSettings { visibility: Some(Visibility::Open), ..RoomSettings::default() };
        assert_eq!(code(bo.request(SetRoom { room: dm.clone(), settings: open }).await), ErrorCode::Forbidden);
        let made = |name: &str, visibility| CreateRoom { room: room(name), topic: ShortText::default(), cap: None, visibility };
        assert_eq!(code(cy.request(made("dm-mine", Visibility::Open)).await), ErrorCode::BadRequest);
        assert_eq!(code(cy.request(made("mine", Visibility::Direct)).await), ErrorCode::Forbidden);

        // Anyone may leave, the starter too, and come back by starting it again.
        bo.request(Leave { room: dm.clone() }).await.unwrap();
        assert_eq!(start(&bo, &["ada"]).await.unwrap().members, 2);

        // A conversation of three.
        let group = start(&cy, &["ada", "bo"]).await.unwrap();
        assert_eq!((group.members, group.cap), (3, 3));

        // A block: no more direct messages from bo; ada's other device hears of it.
        let mut ada_phone = d.client("ada", Codec::Json).await;
        ada.request(Block { user: user("bo"), on: true }).await.unwrap();
        match until_event(&mut ada_phone, "the blocks", |e| matches!(e, Event::Blocks(_))).await {
            Event::Blocks(blocks) => assert_eq!(blocks.users, [user("bo")]),
            _ => unreachable!(),
        }
        assert_eq!(reason(say(&bo, &dm, "hello?").await), "blocked");
        assert_eq!(reason(start(&bo, &["ada"]).await), "blocked");
        assert_eq!(reason(start(&ada, &["bo"]).await), "blocked", "the blocker lifts it first");
        // In the shared community room bo still speaks (ada's clients collapse it).
        say(&bo, &room("cameras"), "anyone for a photo walk?").await.unwrap();

        // In a conversation of three started before it, ada's block of bo
        // does not silence bo for cy, and it opens again as it is.
        say(&bo, &group.room, "count me in").await.unwrap();
        assert_eq!(start(&cy, &["ada", "bo"]).await.unwrap().room, group.room);

        // Blocks and conversations outlive a restart.
        drop((ada, bo, cy, ada_phone));
        let d = d.restart().await;
        let ada = d.client("ada", Codec::MsgPack).await;
        assert_eq!(ada.request(Blocks {}).await.unwrap().users, [user("bo")]);
        ada.request(Block { user: user("bo"), on: false }).await.unwrap();
        assert!(listed(&ada).await.contains(&dm));
        let bo = d.client("bo", Codec::Json).await;
        say(&bo, &dm, "back again").await.unwrap();
        d.stop().await;
    }
}

both_modes_timed! {
    async fn who_may_start_a_direct_conversation(d: Deployment) {
        let ada = d.client("ada", Codec::MsgPack).await;
        create_room(&ada, "club", None).await.unwrap();
        create_room(&ada, "lobby", None).await.unwrap();
        ada.request(CreateRoom { room: room("circle"), topic: ShortText::default(), cap: None, visibility: Visibility::Approval })
            .await
            .unwrap();
        let member = |name: &'static str, rooms: &'static [&'static str]| {
            let d = &d;
            async move {
                let mut client = d.client(name, Codec::Json).await;
                for r in rooms {
                    client.join(&room(r)).await.unwrap();
                }
                client
            }
        };
        let bo = member("bo", &["club"]).await;
        let mo = member("mo", &["club"]).await;
        let bax = member("bax", &["club", "lobby"]).await;
        let pia = member("pia", &[]).await;
        pia.request(RequestJoin { room: room("circle"), note: Note::new("hi").unwrap() }).await.unwrap();
        let zed = member("zed", &[]).await;
        create_room(&zed, "elsewhere", None).await.unwrap();
        // Two days on, new members of the club are on probation (those of
        // two days ago are not new).
        d.advance(std::time::Duration::from_secs(2 * 86_400));
        let probation = RoomSettings { probation_secs: Some(86_400), ..RoomSettings::default() };
        ada.request(SetRoom { room: room("club"), settings: probation }).await.unwrap();
        let nan = member("nan", &["club"]).await;
        ada.request(Mute { room: room("club"), user: user("mo"), duration_secs: 3600, reason: ShortText::default() })
            .await
            .unwrap();
        ada.request(Ban { room: room("club"), user: user("bax"), reason: ShortText::default(), duration_secs: None })
            .await
            .unwrap();

        // Each starter writing to ada, who is in club, lobby and circle:
        // the reason, or "" where it is allowed.
        let matrix: [(&str, &Client, &str); 6] = [
            ("a member in good standing", &bo, ""),
            ("on probation in a room ada is in", &nan, "probation"),
            ("waiting on a request to join ada's room", &pia, "pending"),
            ("muted in a room ada is in", &mo, "muted"),
            ("banned from a room ada is in, though both are in the lobby", &bax, "banned"),
            ("sharing no room with ada", &zed, "no_shared_room"),
        ];
        for (who, client, expected) in matrix {
            let got = match start(client, &["ada"]).await {
                Ok(info) => {
                    assert_eq!(info.visibility, Visibility::Direct);
                    String::new()
                }
                Err(error) => reason(Err::<(), _>(error)),
            };
            assert_eq!(got, expected, "a starter {who}");
        }
        // The rules are the starter's: ada may write to the newcomer, and a
        // moderator's welcome is exactly what a newcomer needs.
        start(&ada, &["nan"]).await.unwrap();
        // A block, either way.
        bo.request(Block { user: user("ada"), on: true }).await.unwrap();
        assert_eq!(reason(start(&ada, &["bo"]).await), "blocked");
        assert_eq!(reason(start(&bo, &["ada"]).await), "blocked");
        // Every member of a group is checked, and nobody is put with someone they block.
        assert_eq!(reason(start(&ada, &["nan", "zed"]).await), "no_shared_room");
        nan.request(Block { user: user("mo"), on: true }).await.unwrap();
        assert_eq!(reason(start(&ada, &["nan", "mo"]).await), "blocked");
        // Bad lists.
        assert_eq!(code(start(&ada, &[]).await), ErrorCode::BadRequest);
        assert_eq!(code(start(&ada, &["ada"]).await), ErrorCode::BadRequest);
        let crowd: Vec<String> = (0..10).map(|n| format!("m{n}")).collect();
        let crowd: Vec<&str> = crowd.iter().map(String::as_str).collect();
        assert_eq!(code(start(&ada, &crowd).await), ErrorCode::BadRequest);
        d.stop().await;
    }
}

async fn single_with(direct_per_hour: u32) -> Deployment {
    let mut config: Config = test_config(Storage::Ephemeral { history_limit: 1_000 });
    config.limits.direct_per_hour = direct_per_hour;
    Deployment::with_nodes(config, 1).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_conversations_is_rate_limited_and_operators_can_turn_them_off() {
    let d = single_with(2).await;
    let ada = d.client("ada", Codec::MsgPack).await;
    create_room(&ada, "club", None).await.unwrap();
    for name in ["bo", "cy", "dee"] {
        d.client(name, Codec::Json).await.join(&room("club")).await.unwrap();
    }
    start(&ada, &["bo"]).await.unwrap();
    start(&ada, &["cy"]).await.unwrap();
    let limited = refusal(start(&ada, &["dee"]).await);
    assert_eq!(limited.code, ErrorCode::RateLimited);
    assert!(limited.retry_after_ms.is_some_and(|ms| ms > 60_000), "{limited:?}");
    // Opening one already started is not a new one.
    start(&ada, &["bo"]).await.unwrap();
    // Others have their own rate.
    let dee = d.client("dee", Codec::Json).await;
    start(&dee, &["ada"]).await.unwrap();
    d.stop().await;

    // Off: nothing starts, and the conversations there are fall silent.
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(Storage::Dir(dir.path().to_path_buf()));
    let on = TestServer::start(config.clone()).await;
    let ada = on.client("ada", Codec::MsgPack).await;
    create_room(&ada, "club", None).await.unwrap();
    on.client("bo", Codec::Json).await.join(&room("club")).await.unwrap();
    let dm = start(&ada, &["bo"]).await.unwrap().room;
    say(&ada, &dm, "before").await.unwrap();
    drop(ada);
    on.stop().await;
    config.limits.direct_per_hour = 0;
    let off = TestServer::start(config).await;
    let ada = off.client("ada", Codec::MsgPack).await;
    assert_eq!(reason(start(&ada, &["bo"]).await), "off");
    assert_eq!(reason(say(&ada, &dm, "after").await), "off");
    say(&ada, &room("club"), "rooms go on").await.unwrap();
    off.stop().await;
}

both_modes_timed! {
    async fn the_rate_of_new_conversations_holds_across_devices_and_nodes(d: Deployment) {
        let ada = d.client("ada", Codec::MsgPack).await;
        create_room(&ada, "club", None).await.unwrap();
        let mut partners = Vec::new();
        for n in 0..21 {
            let name = format!("m{n}");
            d.client(&name, Codec::Json).await.join(&room("club")).await.unwrap();
            partners.push(name);
        }
        // Ada's second device is on the other node of a cluster.
        let phone = d.other_node("ada").client("ada", Codec::Json).await;
        for (n, partner) in partners.iter().take(20).enumerate() {
            let device = if n % 2 == 0 { &ada } else { &phone };
            start(device, &[partner.as_str()]).await.unwrap();
        }
        let limited = refusal(start(&phone, &[partners[20].as_str()]).await);
        assert_eq!(limited.code, ErrorCode::RateLimited, "{limited:?}");
        assert!(limited.retry_after_ms.is_some_and(|ms| ms <= 3_600_000), "{limited:?}");
        // An hour on, one more.
        d.advance(std::time::Duration::from_secs(3601));
        start(&ada, &[partners[20].as_str()]).await.unwrap();
        d.stop().await;
    }
}
