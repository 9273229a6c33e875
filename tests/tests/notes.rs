//! Pinned notes and the rules over real sockets, on one node and on two nodes
//! sharing a Redis: notes shown in the order moderators set, edited in place
//! (a new version keeps its note id and its place), reaching members live
//! and first on join; and rooms that ask newcomers to acknowledge the rules
//! before posting — again whenever the rules change.

use hearth_cli::Client;
use hearth_protocol::ops::{AckRules, AddPin, Members, OrderPins, PinnedNote, RoomSettings, SetRoom};
use hearth_protocol::{Codec, ErrorCode, Event, Note, PinId};
use hearth_tests::*;

async fn pin(client: &Client, name: &str, title: &str, text: &str, edit: Option<PinId>) -> PinnedNote {
    let args =
        AddPin { room: room(name), seq: None, note: Some(Note::new(text).unwrap()), title: Some(short(title)), edit };
    client.request(args).await.unwrap().pin
}

fn titles(pins: &[PinnedNote]) -> Vec<String> {
    pins.iter().map(|p| format!("{} v{}", p.title.as_ref().map_or("", |t| t.as_str()), p.version)).collect()
}

both_modes! {
    async fn notes_keep_the_order_moderators_give_them(d: Deployment) {
        let (ada, mut bo, _cy) = trio(&d, "notes").await;
        let mission = pin(&ada, "notes", "Mission", "Share film photos, kindly.", None).await;
        let rules = pin(&ada, "notes", "Rules", "Be kind. Credit photographers.", None).await;
        let faq = pin(&ada, "notes", "FAQ", "Meetups on Sundays.", None).await;
        until_event(&mut bo, "the FAQ pin", |e| matches!(e, Event::Pin(p) if p.pin.pin == faq.pin)).await;
        // Members do not order notes; moderators do, by note id.
        let order = OrderPins { room: room("notes"), notes: vec![rules.note_id(), mission.note_id()] };
        assert_eq!(code(bo.request(order.clone()).await), ErrorCode::Forbidden);
        ada.request(order).await.unwrap();
        assert_eq!(code(ada.request(OrderPins { room: room("notes"), notes: vec![PinId(999)] }).await), ErrorCode::NoSuchTarget);
        // An edit is the note's next version: same note id, same place, same title.
        let mission2 = pin(&ada, "notes", "", "Share film photos, kindly. Ask before reposting.", Some(mission.pin)).await;
        assert_eq!((mission2.note_id(), mission2.version), (mission.note_id(), 2));
        assert_eq!(mission2.title.as_ref().map(|t| t.as_str()), Some("Mission"));
        let edited = until_event(&mut bo, "the edit", |e| matches!(e, Event::Pin(p) if p.replaces == Some(mission.pin))).await;
        assert!(matches!(edited, Event::Pin(p) if p.pin.version == 2));
        // A newcomer gets the notes first, in that order.
        let mut cy2 = d.client("dee", Codec::Json).await;
        let joined = cy2.join(&room("notes")).await.unwrap();
        assert_eq!(titles(&joined.pins), ["Rules v1", "Mission v2", "FAQ v1"]);
        d.stop().await;
    }

    async fn a_room_can_ask_for_the_rules_to_be_acknowledged_again_when_they_change(d: Deployment) {
        let (ada, bo, _cy) = trio(&d, "ruled").await;
        pin(&ada, "ruled", "Rules", "Be kind.", None).await;
        let ask = SetRoom { room: room("ruled"), settings: RoomSettings { rules_ack: Some(true), ..RoomSettings::default() } };
        ada.request(ask).await.unwrap();
        assert_eq!(code(bo.send(&room("ruled"), "hello!").await), ErrorCode::AckRequired);
        assert_eq!(code(bo.request(AckRules { room: room("ruled"), version: 2 }).await), ErrorCode::BadRequest);
        bo.request(AckRules { room: room("ruled"), version: 1 }).await.unwrap();
        bo.send(&room("ruled"), "hello!").await.unwrap();
        // The owner (and moderators) need not.
        ada.send(&room("ruled"), "welcome").await.unwrap();
        // New rules: everyone acknowledges again.
        pin(&ada, "ruled", "Rules", "Be kind. No gear wars.", None).await;
        assert_eq!(code(bo.send(&room("ruled"), "again?").await), ErrorCode::AckRequired);
        bo.request(AckRules { room: room("ruled"), version: 2 }).await.unwrap();
        bo.send(&room("ruled"), "again!").await.unwrap();
        let list = ada.request(Members { room: room("ruled") }).await.unwrap();
        let bo_info = list.members.iter().find(|m| m.user.as_str() == "bo").unwrap();
        assert_eq!(bo_info.rules_acked, Some(2));
        assert!(bo_info.newcomer, "joined minutes ago");
        // "RULES" is the same note as "Rules": its next version, not a second
        // rules note beside it, so the acknowledgement is asked for again.
        let shouted = pin(&ada, "ruled", "RULES", "Be kind. No gear wars. No selling.", None).await;
        assert_eq!(shouted.version, 3);
        assert_eq!(code(bo.send(&room("ruled"), "still?").await), ErrorCode::AckRequired);
        bo.request(AckRules { room: room("ruled"), version: 3 }).await.unwrap();
        bo.send(&room("ruled"), "understood").await.unwrap();
        // Nor can another note be retitled into a second one.
        let faq = pin(&ada, "ruled", "FAQ", "Meetups on Sundays.", None).await;
        let retitle = AddPin {
            room: room("ruled"),
            seq: None,
            note: Some(Note::new("Sundays").unwrap()),
            title: Some(short("rules")),
            edit: Some(faq.pin),
        };
        assert_eq!(code(ada.request(retitle).await), ErrorCode::AlreadyExists);
        let mut dee = d.client("dee", Codec::Json).await;
        let joined = dee.join(&room("ruled")).await.unwrap();
        assert_eq!(titles(&joined.pins), ["RULES v3", "FAQ v1"], "one rules note");
        d.stop().await;
    }
}
