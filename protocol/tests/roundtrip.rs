//! Every request, reply and event survives encode → decode in both codecs, and the
//! samples cover every operation and every event kind.

use std::collections::BTreeSet;

use hearth_protocol::codec::{
    decode_reply, decode_request, decode_server_frame, encode_error, encode_event, encode_reply,
};
use hearth_protocol::event::*;
use hearth_protocol::ops::*;
use hearth_protocol::*;

fn room() -> RoomId {
    RoomId::new("cameras").unwrap()
}
fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}
fn short(s: &str) -> ShortText {
    ShortText::new(s).unwrap()
}

fn pinned() -> PinnedNote {
    PinnedNote {
        pin: PinId(3),
        seq: Some(Seq(9)),
        text: Note::new("Be kind. Film only.").unwrap(),
        by: user("ada"),
        at: Millis(1_764_140_000_000),
        title: Some(short("Rules")),
        version: 2,
        note: None,
        deleted: false,
    }
}

fn room_info() -> RoomInfo {
    RoomInfo {
        room: room(),
        topic: short("Rangefinders and rolls"),
        cap: 100,
        visibility: Visibility::Approval,
        members: 42,
        epoch: Epoch(7),
        head: Seq(1234),
        owner: user("ada"),
        created_at: Millis(1_700_000_000_000),
        slow_mode_secs: 5,
        required_role: Some(Role::Welcomer),
        welcome: Some(short("Hi! Read the pins.")),
        probation_secs: 86_400,
        probation_posts: 0,
        parent: Some(RoomId::new("lobby").unwrap()),
        rules_ack: true,
        direct: Vec::new(),
        warn_expiry_days: 30,
        warn_limit: 3,
        warn_action: Some(ModAction::Mute),
        warn_action_secs: 86_400,
        lockdown: Some(Lockdown { level: LockLevel::ReadOnly, until: None }),
        raid_joins: 10,
        raid_secs: 60,
        raid_lock_secs: 3600,
        erased_as_former_member: true,
    }
}

fn sample_ops() -> Vec<Op> {
    let r = room;
    vec![
        Ping {}.into(),
        CreateRoom { room: r(), topic: short("t"), cap: Some(30), visibility: Visibility::InviteOnly }.into(),
        ListRooms { after: Some(room()), limit: Some(50) }.into(),
        Join { room: r(), since: Some(Position { epoch: Epoch(7), seq: Seq(10) }), invite: Some("abc".into()) }.into(),
        Leave { room: r() }.into(),
        SendMessage {
            room: r(),
            text: Text::new("hello").unwrap(),
            cmid: ClientMsgId::new("c1").unwrap(),
            thread: Some(Seq(4)),
        }
        .into(),
        History { room: r(), before: Some(Seq(100)), after: None, limit: Some(20) }.into(),
        ThreadHistory { room: r(), root: Seq(4), after: Some(Seq(5)), limit: None }.into(),
        Edit { room: r(), target: Seq(5), text: Text::new("fixed").unwrap() }.into(),
        Delete { room: r(), target: Seq(5) }.into(),
        React { room: r(), target: Seq(5), emoji: Emoji::new("📷").unwrap(), on: true }.into(),
        AddPin {
            room: r(),
            seq: None,
            note: Some(Note::new("Our mission").unwrap()),
            title: Some(short("Mission")),
            edit: None,
        }
        .into(),
        RemovePin { room: r(), pin: PinId(3) }.into(),
        Members { room: r() }.into(),
        SetRole {
            room: r(),
            user: user("bo"),
            role: Role::Welcomer,
            expires_at: Some(Millis(5)),
            title: Some(short("topic lead")),
        }
        .into(),
        SetRoom { room: r(), settings: RoomSettings { slow_mode_secs: Some(10), ..Default::default() } }.into(),
        RequestJoin { room: r(), note: Note::new("I shoot Leicas").unwrap() }.into(),
        JoinRequests { room: r() }.into(),
        DecideJoin { room: r(), user: user("bo"), approve: false, reason: short("not a fit") }.into(),
        CreateInvite { room: r(), ttl_secs: Some(3600), max_uses: Some(5) }.into(),
        RevokeInvite { room: r(), code: "abc".into() }.into(),
        Kick { room: r(), user: user("bo"), reason: short("spam") }.into(),
        Ban { room: r(), user: user("bo"), reason: short("spam"), duration_secs: Some(60) }.into(),
        Unban { room: r(), user: user("bo") }.into(),
        Mute { room: r(), user: user("bo"), duration_secs: 600, reason: short("heated") }.into(),
        Unmute { room: r(), user: user("bo") }.into(),
        ModLog { room: r(), before: Some(10), limit: Some(5) }.into(),
        Typing { room: r() }.into(),
        Presence { room: r() }.into(),
        Stats { room: r(), days: Some(7) }.into(),
        SchedulePrompt {
            room: r(),
            text: Text::new("What did you shoot this week?").unwrap(),
            at: Millis(1),
            weekly: true,
        }
        .into(),
        CancelPrompt { room: r(), prompt: 2 }.into(),
        Auth { token: "eyJhbGciOiJIUzI1NiJ9.e30.c2ln".into() }.into(),
        Versions { room: r(), target: Seq(12) }.into(),
        OrderPins { room: r(), notes: vec![PinId(3), PinId(9)] }.into(),
        AckRules { room: r(), version: 2 }.into(),
        Prompts { room: r() }.into(),
        HeldPosts { room: r() }.into(),
        Release {
            room: r(),
            user: user("cy"),
            cmid: ClientMsgId::new("c-9").unwrap(),
            approve: true,
            reason: short(""),
        }
        .into(),
        MarkRead { room: r(), seq: Seq(44) }.into(),
        MarkAllRead {}.into(),
        ReadState {}.into(),
        Mentions { before: Some("00000000000000000001|00000000000000000002|cameras|ada".into()), limit: Some(20) }
            .into(),
        Search {
            query: "NOT \"portra\" OR *".into(),
            room: Some(r()),
            before: Some("1849836227789115992".into()),
            limit: Some(5),
        }
        .into(),
        StartDirect { with: vec![user("bo"), user("cy")] }.into(),
        Block { user: user("eve"), on: true }.into(),
        Blocks {}.into(),
        PushKey {}.into(),
        PushSubscribe {
            endpoint: "https://fcm.googleapis.com/fcm/send/abc".into(),
            p256dh: "BNc".into(),
            auth: "tBH".into(),
            text: true,
        }
        .into(),
        PushUnsubscribe { endpoint: "https://fcm.googleapis.com/fcm/send/abc".into() }.into(),
        SetPushLevel { room: r(), level: PushLevel::Everything }.into(),
        PushLevels {}.into(),
        Report { room: r(), seq: Seq(17), category: ReportCategory::Harassment, note: short("again") }.into(),
        Reports { room: r() }.into(),
        ResolveReport {
            room: r(),
            seq: Seq(17),
            outcome: ReportOutcome::Mute,
            reason: short("cool off"),
            duration_secs: Some(3600),
        }
        .into(),
        Warn { room: r(), user: user("bo"), reason: short("no links to shops") }.into(),
        Unwarn { room: r(), user: user("bo"), warning: Seq(40) }.into(),
        Warnings { room: r(), user: Some(user("bo")) }.into(),
        Lock { room: r(), level: LockLevel::ReadOnly, duration_secs: Some(3600) }.into(),
        Filters { room: r() }.into(),
        EraseAccount { confirm: user("bo") }.into(),
    ]
}

fn sample_events() -> Vec<Event> {
    let (r, ts) = (room, Millis(1_764_140_000_000));
    vec![
        Event::Hello(Hello {
            user: user("ada"),
            conn: 17,
            server: "hearth-server/0.1.0".into(),
            protocol: 1,
            max_request_bytes: 16384,
            max_text_bytes: 8192,
        }),
        Event::Message(MessageEvent {
            room: r(),
            seq: Seq(12),
            ts,
            from: user("ada"),
            text: Text::new("héllo 📷").unwrap(),
            cmid: ClientMsgId::new("c-1").unwrap(),
            thread: Some(Seq(3)),
            state: None,
            prompt: None,
            released_by: None,
            probation_post: None,
            mentions: Vec::new(),
            mentions_room: false,
            imported: None,
        }),
        Event::Edit(EditEvent {
            room: r(),
            seq: Seq(13),
            ts,
            from: user("ada"),
            target: Seq(12),
            text: Text::new("x").unwrap(),
        }),
        Event::Delete(DeleteEvent {
            room: r(),
            seq: Seq(14),
            ts,
            from: user("ada"),
            target: Seq(12),
            of: Some(user("bo")),
        }),
        Event::Reaction(ReactionEvent {
            room: r(),
            seq: Seq(15),
            ts,
            from: user("bo"),
            target: Seq(12),
            emoji: Emoji::new(":+1:").unwrap(),
            on: false,
        }),
        Event::Pin(PinEvent {
            room: r(),
            seq: Seq(16),
            ts,
            from: user("ada"),
            pin: pinned(),
            replaces: Some(PinId(1)),
        }),
        Event::Unpin(UnpinEvent { room: r(), seq: Seq(17), ts, from: user("ada"), pin: PinId(3) }),
        Event::MemberJoined(MemberJoinedEvent {
            room: r(),
            seq: Seq(18),
            ts,
            from: user("bo"),
            role: Role::Member,
            approved_by: Some(user("ada")),
            invite: Some("0011223344556677".into()),
            lockdown: Some(Lockdown { level: LockLevel::Joins, until: Some(Millis(77)) }),
        }),
        Event::MemberLeft(MemberLeftEvent {
            room: r(),
            seq: Seq(19),
            ts,
            from: user("ada"),
            user: user("bo"),
            reason: LeftReason::Kicked,
        }),
        Event::Role(RoleEvent {
            room: r(),
            seq: Seq(20),
            ts,
            from: user("ada"),
            user: user("bo"),
            role: Role::Moderator,
            expires_at: None,
            title: None,
        }),
        Event::RoomUpdated(RoomUpdatedEvent {
            room: r(),
            seq: Seq(21),
            ts,
            from: user("ada"),
            settings: RoomSettings {
                topic: Some(short("new")),
                cap: Some(50),
                filters: Some(vec![WordFilter {
                    pattern: r"spam\.example".into(),
                    regex: true,
                    action: FilterAction::Refuse,
                    reason: short("no shop links"),
                }]),
                ..Default::default()
            },
        }),
        Event::Moderation(ModerationEvent {
            room: r(),
            seq: Seq(22),
            ts,
            from: user("ada"),
            action: ModAction::Mute,
            user: Some(user("bo")),
            until: Some(Millis(9)),
            reason: short(""),
            invite: None,
            max_uses: Some(3),
            held: None,
            message: None,
            outcome: None,
            reports: Vec::new(),
            escalation: None,
            warnings: Vec::new(),
            audience: None,
        }),
        Event::Moderation(ModerationEvent {
            room: r(),
            seq: Seq(40),
            ts,
            from: user("ada"),
            action: ModAction::Warn,
            user: Some(user("bo")),
            until: Some(Millis(99)),
            reason: short("third time"),
            invite: None,
            max_uses: None,
            held: None,
            message: None,
            outcome: None,
            reports: Vec::new(),
            escalation: Some(Escalation { action: ModAction::Mute, until: Some(Millis(120)) }),
            warnings: vec![Seq(3)],
            audience: None,
        }),
        Event::Moderation(ModerationEvent {
            room: r(),
            seq: Seq(41),
            ts,
            from: user("ada"),
            action: ModAction::Resolve,
            user: Some(user("bo")),
            until: None,
            reason: short(""),
            invite: None,
            max_uses: None,
            held: None,
            message: Some(Seq(17)),
            outcome: Some(ReportOutcome::Dismiss),
            reports: vec![Seq(38), Seq(39)],
            escalation: None,
            warnings: Vec::new(),
            audience: Some(Role::Welcomer),
        }),
        Event::Report(ReportEvent {
            room: r(),
            seq: Seq(42),
            ts,
            from: user("cy"),
            message: Seq(17),
            author: user("bo"),
            text: Text::new("buy now").unwrap(),
            category: ReportCategory::Spam,
            note: short("third link today"),
            audience: Role::Welcomer,
        }),
        Event::Erased(ErasedEvent {
            room: r(),
            seq: Seq(43),
            ts,
            user: user("eve"),
            messages: vec![Seq(12), Seq(17)],
            reactions: vec![ErasedReaction { target: Seq(9), emoji: Emoji::new("👍").unwrap() }],
            held: vec![ClientMsgId::new("c-31").unwrap()],
            former_member: true,
        }),
        Event::Typing(TypingEvent { room: r(), user: user("bo") }),
        Event::Presence(PresenceEvent { room: r(), online: vec![user("bo")], offline: vec![user("cy")] }),
        Event::JoinRequest(JoinRequestEvent {
            room: r(),
            seq: Seq(23),
            ts,
            from: user("cy"),
            note: Note::new("hi").unwrap(),
            lockdown: None,
        }),
        Event::Ack(AckEvent { room: r(), seq: Seq(24), ts, from: user("bo"), version: 2 }),
        Event::Arrived(ArrivedEvent { room: r(), seq: Seq(26), ts, from: user("eve") }),
        Event::Held(HeldEvent {
            room: r(),
            seq: Seq(26),
            ts,
            from: user("cy"),
            text: Text::new("see https://example.org").unwrap(),
            cmid: ClientMsgId::new("c-9").unwrap(),
            thread: None,
        }),
        Event::Prompt(PromptEvent {
            room: r(),
            seq: Seq(25),
            ts,
            from: user("ada"),
            prompt: 9,
            text: Some(Text::new("Weekly roll?").unwrap()),
            next_at: Some(ts),
            weekly: true,
        }),
        Event::JoinDecision(JoinDecisionEvent {
            room: r(),
            approved: false,
            by: user("ada"),
            reason: short("not now"),
        }),
        Event::Truncated(TruncatedEvent { room: r(), epoch: Epoch(7), after: Seq(3), next: Seq(9) }),
        Event::Read(ReadEvent { room: r(), seq: Seq(41) }),
        Event::DirectStarted(DirectStartedEvent {
            room: RoomId::new("dm-00112233445566778899").unwrap(),
            seq: Seq(1),
            ts,
            from: user("ada"),
            members: vec![user("ada"), user("bo")],
        }),
        Event::Blocks(BlocksEvent { users: vec![user("eve")] }),
    ]
}

/// Exhaustive: adding an event kind without a sample fails to compile here first.
fn event_kind(event: &Event) -> &'static str {
    match event {
        Event::Hello(_) => "hello",
        Event::Message(_) => "message",
        Event::Edit(_) => "edit",
        Event::Delete(_) => "delete",
        Event::Reaction(_) => "reaction",
        Event::Pin(_) => "pin",
        Event::Unpin(_) => "unpin",
        Event::MemberJoined(_) => "member_joined",
        Event::MemberLeft(_) => "member_left",
        Event::Role(_) => "role",
        Event::RoomUpdated(_) => "room_updated",
        Event::Moderation(_) => "moderation",
        Event::Typing(_) => "typing",
        Event::Presence(_) => "presence",
        Event::JoinRequest(_) => "join_request",
        Event::JoinDecision(_) => "join_decision",
        Event::Ack(_) => "ack",
        Event::Arrived(_) => "arrived",
        Event::Prompt(_) => "prompt",
        Event::Held(_) => "held",
        Event::Truncated(_) => "truncated",
        Event::Read(_) => "read",
        Event::DirectStarted(_) => "direct_started",
        Event::Blocks(_) => "blocks",
        Event::Report(_) => "report",
        Event::Erased(_) => "erased",
    }
}

const CODECS: [Codec; 2] = [Codec::MsgPack, Codec::Json];

#[test]
fn samples_cover_every_op_and_event() {
    let ops: BTreeSet<&str> = sample_ops().iter().map(Op::name).collect();
    let all: BTreeSet<&str> = OP_NAMES.iter().copied().collect();
    assert_eq!(ops, all);
    let kinds: BTreeSet<&str> = sample_events().iter().map(event_kind).collect();
    assert_eq!(kinds.len(), 26);
}

#[test]
fn every_request_round_trips_in_both_codecs() {
    for codec in CODECS {
        for (i, op) in sample_ops().into_iter().enumerate() {
            let id = RequestId(1000 + i as u64);
            let frame = op.encode(codec, id);
            let decoded = decode_request(codec, &frame).unwrap_or_else(|e| panic!("{codec:?} {}: {e}", op.name()));
            assert_eq!(decoded, Request { id, op });
        }
    }
}

#[test]
fn every_event_round_trips_in_both_codecs() {
    for codec in CODECS {
        for event in sample_events() {
            let frame = encode_event(codec, &event);
            match decode_server_frame(codec, &frame) {
                Ok(ServerFrame::Event(back)) => assert_eq!(*back, event),
                other => panic!("{codec:?} {}: {other:?}", event_kind(&event)),
            }
        }
    }
}

fn reply_round_trip<O: Operation>(reply: O::Reply)
where
    O::Reply: PartialEq,
{
    for codec in CODECS {
        let frame = encode_reply(codec, RequestId(9), &reply);
        assert_eq!(decode_server_frame(codec, &frame).unwrap(), ServerFrame::Reply { id: RequestId(9) });
        assert_eq!(decode_reply::<O>(codec, &frame).unwrap().unwrap(), reply, "{codec:?} {}", O::NAME);
    }
}

#[test]
fn every_reply_type_round_trips_in_both_codecs() {
    let ts = Millis(1_764_140_000_000);
    reply_round_trip::<Ping>(Pong { ts });
    reply_round_trip::<CreateRoom>(room_info());
    reply_round_trip::<ListRooms>(RoomList {
        rooms: vec![RoomSummary {
            room: room(),
            topic: short("t"),
            visibility: Visibility::Open,
            members: 3,
            cap: 100,
            role: Some(Role::Owner),
            direct: Vec::new(),
        }],
        more: true,
    });
    reply_round_trip::<StartDirect>(RoomInfo {
        visibility: Visibility::Direct,
        direct: vec![user("ada"), user("bo")],
        ..room_info()
    });
    reply_round_trip::<Block>(BlockList { users: vec![user("eve")] });
    reply_round_trip::<Blocks>(BlockList::default());
    reply_round_trip::<Filters>(FilterList {
        filters: vec![WordFilter {
            pattern: "cheap lenses".into(),
            regex: false,
            action: FilterAction::Hold,
            reason: ShortText::default(),
        }],
    });
    reply_round_trip::<Reports>(ReportList {
        reports: vec![OpenReport {
            report: Seq(42),
            message: Seq(17),
            author: user("bo"),
            text: Text::new("buy now").unwrap(),
            from: user("cy"),
            category: ReportCategory::Spam,
            note: ShortText::default(),
            at: Millis(5),
        }],
        more: false,
    });
    reply_round_trip::<Warnings>(WarningList {
        user: user("bo"),
        warnings: vec![WarningInfo {
            warning: Seq(40),
            by: user("ada"),
            at: Millis(5),
            until: Some(Millis(99)),
            reason: ShortText::new("links").unwrap(),
        }],
        warn_limit: 3,
        warn_action: Some(ModAction::Mute),
    });
    reply_round_trip::<PushKey>(PushKeyInfo { key: "BEl6".into() });
    reply_round_trip::<PushSubscribe>(Done {});
    reply_round_trip::<PushLevels>(PushLevelList {
        levels: vec![RoomPushLevel { room: room(), level: PushLevel::Nothing }],
        devices: 2,
    });
    reply_round_trip::<Join>(Joined {
        room: room_info(),
        role: Role::Member,
        resume: ResumeMode::Truncated,
        pins: vec![pinned()],
        first_join: true,
    });
    reply_round_trip::<Leave>(Done {});
    reply_round_trip::<SendMessage>(Appended { seq: Seq(5), ts, held: false });
    reply_round_trip::<History>(HistoryPage {
        room: room(),
        epoch: Epoch(7),
        events: sample_events().into_iter().filter(|e| e.seq().is_some()).collect(),
        more: true,
        oldest: Seq(1),
    });
    reply_round_trip::<AddPin>(Pinned { seq: Seq(16), pin: pinned() });
    reply_round_trip::<Members>(MemberList {
        members: vec![MemberInfo {
            user: user("bo"),
            role: Role::Welcomer,
            joined_at: ts,
            role_expires_at: Some(ts),
            online: true,
            title: Some(short("topic lead")),
            muted_until: Some(ts),
            newcomer: true,
            rules_acked: Some(2),
        }],
    });
    reply_round_trip::<JoinRequests>(JoinRequestList {
        requests: vec![JoinRequestInfo { user: user("cy"), note: Note::new("hi").unwrap(), at: ts }],
        more: true,
    });
    reply_round_trip::<CreateInvite>(Invite {
        code: "k3y".into(),
        id: "0011223344556677".into(),
        expires_at: Some(ts),
        max_uses: None,
        uses: 0,
    });
    reply_round_trip::<ModLog>(ModLogPage {
        entries: vec![ModEntry {
            entry: 1,
            at: ts,
            by: user("ada"),
            action: ModAction::Ban,
            user: Some(user("bo")),
            reason: short("spam"),
            until: None,
            message: Some(Seq(17)),
            outcome: Some(ReportOutcome::Ban),
            escalation: None,
        }],
        more: false,
    });
    reply_round_trip::<Presence>(PresenceList { online: vec![OnlineMember { user: user("ada"), role: Role::Owner }] });
    reply_round_trip::<Stats>(RoomStats {
        windows: vec![WindowStats {
            days: 7,
            messages: 40,
            active_members: 9,
            new_members: 2,
            threads: 3,
            avg_replies_per_thread: 2.5,
            repeat_interactions: 4,
            newcomer_first_reply_secs: Some(90),
        }],
    });
    reply_round_trip::<SchedulePrompt>(Prompt {
        prompt: 1,
        text: Text::new("Weekly roll?").unwrap(),
        next_at: ts,
        weekly: true,
        by: Some(user("ada")),
    });
    reply_round_trip::<Prompts>(PromptList { prompts: Vec::new() });
}

#[test]
fn error_replies_round_trip_for_every_code() {
    for codec in CODECS {
        for code in ErrorCode::ALL {
            let body = ErrorBody::new(code, "what failed; what to do").retry_after(250);
            let frame = encode_error(codec, RequestId(3), &body);
            assert_eq!(decode_reply::<Ping>(codec, &frame).unwrap(), Err(body));
        }
    }
}

#[test]
fn invalid_fields_are_bad_requests_that_keep_the_id() {
    let cases: [&[u8]; 4] = [
        br#"{"id":4,"op":"send","room":"Bad Name","text":"x","cmid":"a"}"#,
        br#"{"id":4,"op":"send","room":"ok","text":"","cmid":"a"}"#,
        br#"{"id":4,"op":"send","room":"ok","text":"x"}"#,
        br#"{"id":4,"op":"join"}"#,
    ];
    for frame in cases {
        let err = decode_request(Codec::Json, frame).unwrap_err();
        assert_eq!(err.id, Some(RequestId(4)), "{}", String::from_utf8_lossy(frame));
        assert_eq!(err.code(), ErrorCode::BadRequest);
    }
    let long =
        format!(r#"{{"id":4,"op":"send","room":"ok","cmid":"a","text":"{}"}}"#, "x".repeat(limits::MAX_TEXT_BYTES + 1));
    assert_eq!(decode_request(Codec::Json, long.as_bytes()).unwrap_err().code(), ErrorCode::BadRequest);
}

#[test]
fn unknown_ops_keep_the_id() {
    let err = decode_request(Codec::Json, br#"{"op":"teleport","id":12}"#).unwrap_err();
    assert_eq!(err.id, Some(RequestId(12)));
    assert_eq!(err.code(), ErrorCode::UnknownOp);
}

#[test]
fn frames_without_an_id_are_not_requests() {
    for frame in [&br#"{"op":"ping"}"#[..], b"[1,2]", b"42", br#"{"id":"seven","op":"ping"}"#, b"{"] {
        assert_eq!(decode_request(Codec::Json, frame).unwrap_err().id, None);
    }
}

#[test]
fn subprotocol_negotiation() {
    assert_eq!(Codec::negotiate([]).unwrap(), (Codec::MsgPack, false));
    assert_eq!(Codec::negotiate(["hearth.v1.json"]).unwrap(), (Codec::Json, true));
    assert_eq!(Codec::negotiate(["chat, hearth.v1.json", "hearth.v1.msgpack"]).unwrap(), (Codec::Json, true));
    assert!(Codec::negotiate(["mqtt"]).is_err());
}

#[test]
fn close_codes_are_rfc_or_private_range_and_unique() {
    let mut seen = BTreeSet::new();
    for code in CloseCode::ALL {
        // RFC 6455's codes for WebSocket-level violations, 4000-4999 for Hearth's own.
        assert!([1002, 1007, 1009].contains(&code.code()) || (4000..5000).contains(&code.code()), "{code}");
        assert!(seen.insert(code.code()));
        assert_eq!(CloseCode::from_code(code.code()), Some(code));
    }
}
