//! The permission matrix, tried: every community operation by every kind of
//! member — owner, moderator, welcomer, member — and by a non-member, a
//! pending requester, a banned and a muted user, each in a room of its own
//! set up the same way, against the table below. The table is written out
//! here on purpose: generated from `room/permissions.rs` it would prove
//! nothing. PROTOCOL.md, "Roles and permissions", prints the same rules.

use hearth_cli::{Client, ClientError};
use hearth_protocol::ops::*;
use hearth_protocol::{Codec, Emoji, Note, Op, PinId, Role, RoomId, Seq, Text};
use hearth_server::Storage;
use hearth_tests::*;

/// Who asks, as the columns of the table.
const ACTORS: [&str; 8] = ["owner", "moder", "welco", "membr", "outsd", "pendg", "banned", "muted"];

/// Each operation and what each actor gets: `ok` or the error code.
const TABLE: &[(&str, [&str; 8])] = &[
    //                owner      moder        welco        membr        outsd         pendg         banned        muted
    ("send", ["ok", "ok", "ok", "ok", "not_member", "not_member", "not_member", "muted"]),
    ("edit_own", ["ok", "ok", "ok", "ok", "not_member", "not_member", "not_member", "muted"]),
    ("delete_own", ["ok", "ok", "ok", "ok", "not_member", "not_member", "not_member", "ok"]),
    ("delete_other", ["ok", "ok", "forbidden", "forbidden", "not_member", "not_member", "not_member", "forbidden"]),
    ("react", ["ok", "ok", "ok", "ok", "not_member", "not_member", "not_member", "muted"]),
    ("typing", ["ok", "ok", "ok", "ok", "not_member", "not_member", "not_member", "muted"]),
    ("history", ["ok", "ok", "ok", "ok", "not_member", "not_member", "not_member", "ok"]),
    ("thread", ["ok", "ok", "ok", "ok", "not_member", "not_member", "not_member", "ok"]),
    ("members", ["ok", "ok", "ok", "ok", "not_member", "not_member", "not_member", "ok"]),
    ("presence", ["ok", "ok", "ok", "ok", "not_member", "not_member", "not_member", "ok"]),
    ("ack_rules", ["ok", "ok", "ok", "ok", "not_member", "not_member", "not_member", "ok"]),
    ("pin", ["ok", "ok", "forbidden", "forbidden", "not_member", "not_member", "not_member", "forbidden"]),
    ("unpin", ["ok", "ok", "forbidden", "forbidden", "not_member", "not_member", "not_member", "forbidden"]),
    ("order_pins", ["ok", "ok", "forbidden", "forbidden", "not_member", "not_member", "not_member", "forbidden"]),
    (
        "set_role_welcomer",
        ["ok", "ok", "forbidden", "forbidden", "not_member", "not_member", "not_member", "forbidden"],
    ),
    (
        "set_role_moderator",
        ["ok", "forbidden", "forbidden", "forbidden", "not_member", "not_member", "not_member", "forbidden"],
    ),
    ("set_room", ["ok", "ok", "forbidden", "forbidden", "not_member", "not_member", "not_member", "forbidden"]),
    ("set_welcome", ["ok", "ok", "ok", "forbidden", "not_member", "not_member", "not_member", "forbidden"]),
    ("kick", ["ok", "ok", "forbidden", "forbidden", "not_member", "not_member", "not_member", "forbidden"]),
    ("ban", ["ok", "ok", "forbidden", "forbidden", "not_member", "not_member", "not_member", "forbidden"]),
    ("unban", ["ok", "ok", "forbidden", "forbidden", "not_member", "not_member", "not_member", "forbidden"]),
    ("mute", ["ok", "ok", "forbidden", "forbidden", "not_member", "not_member", "not_member", "forbidden"]),
    ("unmute", ["ok", "ok", "forbidden", "forbidden", "not_member", "not_member", "not_member", "forbidden"]),
    ("mod_log", ["ok", "ok", "forbidden", "forbidden", "not_member", "not_member", "not_member", "forbidden"]),
    ("versions", ["ok", "ok", "forbidden", "forbidden", "not_member", "not_member", "not_member", "forbidden"]),
    ("stats", ["ok", "ok", "forbidden", "forbidden", "not_member", "not_member", "not_member", "forbidden"]),
    ("schedule_prompt", ["ok", "ok", "forbidden", "forbidden", "not_member", "not_member", "not_member", "forbidden"]),
    ("prompts", ["ok", "ok", "forbidden", "forbidden", "not_member", "not_member", "not_member", "forbidden"]),
    ("held", ["ok", "ok", "forbidden", "forbidden", "not_member", "not_member", "not_member", "forbidden"]),
    // Nothing is held in these rooms: those who may release find nothing.
    (
        "release",
        [
            "no_such_target",
            "no_such_target",
            "forbidden",
            "forbidden",
            "not_member",
            "not_member",
            "not_member",
            "forbidden",
        ],
    ),
    ("report", ["ok", "ok", "ok", "ok", "not_member", "not_member", "not_member", "ok"]),
    ("reports", ["ok", "ok", "ok", "ok", "not_member", "not_member", "not_member", "ok"]),
    // Nothing is reported in these rooms: those who may resolve find nothing.
    (
        "resolve_report",
        [
            "no_such_target",
            "no_such_target",
            "no_such_target",
            "forbidden",
            "not_member",
            "not_member",
            "not_member",
            "forbidden",
        ],
    ),
    ("warn", ["ok", "ok", "forbidden", "forbidden", "not_member", "not_member", "not_member", "forbidden"]),
    // Nobody is warned in these rooms.
    (
        "unwarn",
        [
            "no_such_target",
            "no_such_target",
            "forbidden",
            "forbidden",
            "not_member",
            "not_member",
            "not_member",
            "forbidden",
        ],
    ),
    ("lockdown", ["ok", "ok", "forbidden", "forbidden", "not_member", "not_member", "not_member", "forbidden"]),
    ("warnings_own", ["ok", "ok", "ok", "ok", "not_member", "not_member", "not_member", "ok"]),
    ("warnings_other", ["ok", "ok", "forbidden", "forbidden", "not_member", "not_member", "not_member", "forbidden"]),
    ("join_requests", ["ok", "ok", "ok", "forbidden", "not_member", "not_member", "not_member", "forbidden"]),
    ("decide_join", ["ok", "ok", "ok", "forbidden", "not_member", "not_member", "not_member", "forbidden"]),
    ("create_invite", ["ok", "ok", "ok", "forbidden", "not_member", "not_member", "not_member", "forbidden"]),
    ("revoke_invite", ["ok", "ok", "forbidden", "forbidden", "not_member", "not_member", "not_member", "forbidden"]),
    (
        "request_join",
        [
            "already_exists",
            "already_exists",
            "already_exists",
            "already_exists",
            "ok",
            "ok",
            "banned",
            "already_exists",
        ],
    ),
    ("join", ["ok", "ok", "ok", "ok", "approval_required", "approval_required", "banned", "ok"]),
    ("leave", ["forbidden", "ok", "ok", "ok", "not_member", "not_member", "not_member", "ok"]),
];

/// What a case's room holds: each actor's own message, a victim member's
/// message, the rules pin and an invite's code.
struct Setup {
    room: RoomId,
    own: Option<Seq>,
    victim_message: Seq,
    pin: PinId,
    invite: String,
}

fn text(t: &str) -> Text {
    Text::new(t).unwrap()
}

/// A room with everyone in place: the owner, a moderator, a welcomer, a
/// member, a victim member, a pending requester, a banned and a muted member.
async fn setup(c: &Clients, name: &str, actor: &str) -> Setup {
    let room = room(name);
    let owner = &c.get("owner");
    owner
        .request(CreateRoom { room: room.clone(), topic: short(""), cap: None, visibility: Visibility::Approval })
        .await
        .unwrap();
    for who in ["moder", "welco", "membr", "victim", "banned", "muted"] {
        c.get(who).request(RequestJoin { room: room.clone(), note: Note::default() }).await.unwrap();
        let approve = DecideJoin { room: room.clone(), user: user(who), approve: true, reason: short("") };
        owner.request(approve).await.unwrap();
    }
    c.get("pendg").request(RequestJoin { room: room.clone(), note: Note::default() }).await.unwrap();
    let role = |who: &str, role| SetRole { room: room.clone(), user: user(who), role, expires_at: None, title: None };
    owner.request(role("moder", Role::Moderator)).await.unwrap();
    owner.request(role("welco", Role::Welcomer)).await.unwrap();
    let mut own = None;
    for who in ["owner", "moder", "welco", "membr", "muted"] {
        let sent = c.get(who).send(&room, &format!("{who} was here")).await.unwrap();
        if who == actor {
            own = Some(sent.seq);
        }
    }
    let victim_message = c.get("victim").send(&room, "the victim's message").await.unwrap().seq;
    let ban = Ban { room: room.clone(), user: user("banned"), reason: short(""), duration_secs: None };
    owner.request(ban).await.unwrap();
    let mute = Mute { room: room.clone(), user: user("muted"), duration_secs: 3600, reason: short("") };
    owner.request(mute).await.unwrap();
    let rules = AddPin {
        room: room.clone(),
        seq: None,
        note: Some(Note::new("Be kind").unwrap()),
        title: Some(short("Rules")),
        edit: None,
    };
    let pin = owner.request(rules).await.unwrap().pin.pin;
    let invite = owner.request(CreateInvite { room: room.clone(), ttl_secs: None, max_uses: None }).await.unwrap().code;
    Setup { room, own, victim_message, pin, invite }
}

/// The request for `op` in `s`.
fn request(op: &str, s: &Setup) -> Op {
    let room = s.room.clone();
    let message = s.own.unwrap_or(s.victim_message);
    let setting = |settings| SetRoom { room: room.clone(), settings };
    let who = |name: &str| user(name);
    match op {
        "send" => SendMessage {
            room,
            text: text("hello"),
            cmid: hearth_protocol::ClientMsgId::new("m-1").unwrap(),
            thread: None,
        }
        .into(),
        "edit_own" => Edit { room, target: message, text: text("edited") }.into(),
        "delete_own" => Delete { room, target: message }.into(),
        "delete_other" => Delete { room, target: s.victim_message }.into(),
        "react" => React { room, target: s.victim_message, emoji: Emoji::new("👍").unwrap(), on: true }.into(),
        "typing" => Typing { room }.into(),
        "history" => History { room, before: None, after: None, limit: None }.into(),
        "thread" => ThreadHistory { room, root: s.victim_message, after: None, limit: None }.into(),
        "members" => Members { room }.into(),
        "presence" => Presence { room }.into(),
        "ack_rules" => AckRules { room, version: 1 }.into(),
        "pin" => AddPin { room, seq: None, note: Some(Note::new("FAQ").unwrap()), title: None, edit: None }.into(),
        "unpin" => RemovePin { room, pin: s.pin }.into(),
        "order_pins" => OrderPins { room, notes: vec![s.pin] }.into(),
        "set_role_welcomer" => {
            SetRole { room, user: who("victim"), role: Role::Welcomer, expires_at: None, title: None }.into()
        }
        "set_role_moderator" => {
            SetRole { room, user: who("victim"), role: Role::Moderator, expires_at: None, title: None }.into()
        }
        "set_room" => setting(RoomSettings { topic: Some(short("new topic")), ..RoomSettings::default() }).into(),
        "set_welcome" => setting(RoomSettings { welcome: Some(short("hi!")), ..RoomSettings::default() }).into(),
        "kick" => Kick { room, user: who("victim"), reason: short("") }.into(),
        "ban" => Ban { room, user: who("victim"), reason: short(""), duration_secs: None }.into(),
        "unban" => Unban { room, user: who("banned") }.into(),
        "mute" => Mute { room, user: who("victim"), duration_secs: 60, reason: short("") }.into(),
        "unmute" => Unmute { room, user: who("muted") }.into(),
        "mod_log" => ModLog { room, before: None, limit: None }.into(),
        "versions" => Versions { room, target: s.victim_message }.into(),
        "stats" => Stats { room, days: None }.into(),
        "schedule_prompt" => {
            let in_an_hour = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
                as u64
                + 3_600_000;
            SchedulePrompt { room, text: text("weekly roll?"), at: hearth_protocol::Millis(in_an_hour), weekly: true }
                .into()
        }
        "prompts" => Prompts { room }.into(),
        "held" => HeldPosts { room }.into(),
        "release" => Release {
            room,
            user: who("victim"),
            cmid: hearth_protocol::ClientMsgId::new("c-1").unwrap(),
            approve: true,
            reason: short(""),
        }
        .into(),
        "report" => Report { room, seq: s.victim_message, category: ReportCategory::Spam, note: short("") }.into(),
        "reports" => Reports { room }.into(),
        "resolve_report" => ResolveReport {
            room,
            seq: s.victim_message,
            outcome: ReportOutcome::Dismiss,
            reason: short(""),
            duration_secs: None,
        }
        .into(),
        "warn" => Warn { room, user: who("victim"), reason: short("keep it kind") }.into(),
        "unwarn" => Unwarn { room, user: who("victim"), warning: Seq(1) }.into(),
        "warnings_own" => Warnings { room, user: None }.into(),
        "lockdown" => Lock { room, level: LockLevel::Joins, duration_secs: Some(60) }.into(),
        "warnings_other" => Warnings { room, user: Some(who("victim")) }.into(),
        "join_requests" => JoinRequests { room }.into(),
        "decide_join" => DecideJoin { room, user: who("pendg"), approve: true, reason: short("") }.into(),
        "create_invite" => CreateInvite { room, ttl_secs: None, max_uses: None }.into(),
        "revoke_invite" => RevokeInvite { room, code: s.invite.clone() }.into(),
        "request_join" => RequestJoin { room, note: Note::default() }.into(),
        "join" => Join { room, since: None, invite: None }.into(),
        "leave" => Leave { room }.into(),
        other => panic!("no request for {other}"),
    }
}

/// One connection per person, reused across every case's room.
struct Clients(Vec<(&'static str, Client)>);

impl Clients {
    fn get(&self, who: &str) -> &Client {
        &self.0.iter().find(|(name, _)| *name == who).expect("a known person").1
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_by_every_kind_of_member_gets_what_the_table_says() {
    let mut config = test_config(Storage::Ephemeral { history_limit: 1000 });
    config.limits.rooms_per_user = 10_000;
    config.limits.connections_per_user = 100;
    let server = TestServer::start(config).await;
    let mut people = Vec::new();
    for name in ["owner", "moder", "welco", "membr", "outsd", "pendg", "banned", "muted", "victim"] {
        people.push((name, server.client(name, Codec::MsgPack).await));
    }
    let clients = Clients(people);
    let mut wrong = Vec::new();
    for (n, (op, expected)) in TABLE.iter().enumerate() {
        for (a, actor) in ACTORS.iter().enumerate() {
            let name = format!("m{n}-{a}");
            let s = setup(&clients, &name, actor).await;
            let got = match clients.get(actor).send_op(request(op, &s)).await {
                Ok(()) => "ok".to_string(),
                Err(ClientError::Server(error)) => error.code.to_string(),
                Err(other) => format!("{other}"),
            };
            if got != expected[a] {
                wrong.push(format!("{op} by {actor}: got {got}, the table says {}", expected[a]));
            }
        }
    }
    assert!(wrong.is_empty(), "{} cells differ:\n{}", wrong.len(), wrong.join("\n"));
    server.stop().await;
}
