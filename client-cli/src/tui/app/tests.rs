//! The UI without a terminal: events and keys drive the state, and the key
//! screens are drawn into ratatui's test backend and read back as text.

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use hearth_protocol::event::{MemberJoinedEvent, MessageEvent, PinEvent, TruncatedEvent};
use hearth_protocol::ops::{HistoryPage, Joined, MemberInfo, PinnedNote, ResumeMode, RoomInfo, Visibility};
use hearth_protocol::{ClientMsgId, Epoch, Event, Millis, Note, PinId, Role, RoomId, Seq, ShortText, Text, UserId};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::*;
use crate::tui::view;

fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

fn rid(name: &str) -> RoomId {
    RoomId::new(name).unwrap()
}

fn message(room: &str, seq: u64, from: &str, text: &str) -> Event {
    let cmid = ClientMsgId::new(format!("c{seq}")).unwrap();
    Event::Message(MessageEvent {
        seq: Seq(seq),
        // 09:30 UTC plus a minute per seq.
        ts: Millis(1_700_040_600_000 + seq * 60_000),
        ..MessageEvent::draft(rid(room), user(from), Text::new(text).unwrap(), cmid, None)
    })
}

fn joined(room: &str, head: u64, role: Role) -> Joined {
    Joined {
        room: RoomInfo {
            room: rid(room),
            topic: ShortText::new("Rangefinders and rolls").unwrap(),
            cap: 100,
            visibility: Visibility::Open,
            members: 3,
            epoch: Epoch(7),
            head: Seq(head),
            owner: user("ada"),
            created_at: Millis(1_700_000_000_000),
            slow_mode_secs: 0,
            required_role: None,
            welcome: None,
            probation_secs: 0,
            probation_posts: 0,
            parent: None,
            rules_ack: false,
            direct: Vec::new(),
            warn_expiry_days: 90,
            warn_limit: 0,
            warn_action: None,
            warn_action_secs: 0,
            lockdown: None,
            raid_joins: 0,
            raid_secs: 0,
            raid_lock_secs: 0,
            erased_as_former_member: false,
        },
        role,
        resume: ResumeMode::Fresh,
        pins: vec![pin(1, "Mission", "We shoot film and share what we learn.")],
        first_join: false,
    }
}

fn pin(id: u64, title: &str, text: &str) -> PinnedNote {
    PinnedNote {
        pin: PinId(id),
        seq: None,
        text: Note::new(text).unwrap(),
        by: user("ada"),
        at: Millis(1_700_000_000_000),
        title: Some(ShortText::new(title).unwrap()),
        version: 1,
        note: None,
        deleted: false,
    }
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn typed(app: &mut App, text: &str) -> Vec<Action> {
    for c in text.chars() {
        app.on_key(key(KeyCode::Char(c)), 10);
    }
    app.on_key(key(KeyCode::Enter), 10)
}

/// A member (bo) in a room with a few messages, online.
fn cameras() -> App {
    let mut app = App::new(user("bo"));
    app.on_net(Net::Me(user("bo")));
    app.on_net(Net::Connection(Connection::Online));
    app.on_net(Net::Joined(joined("cameras", 3, Role::Member)));
    app.on_net(Net::Members {
        room: rid("cameras"),
        members: vec![
            MemberInfo {
                user: user("ada"),
                role: Role::Owner,
                joined_at: Millis(1),
                role_expires_at: None,
                online: true,
                title: None,
                muted_until: None,
                newcomer: false,
                rules_acked: None,
            },
            MemberInfo {
                user: user("bo"),
                role: Role::Member,
                joined_at: Millis(2),
                role_expires_at: None,
                online: true,
                title: None,
                muted_until: None,
                newcomer: false,
                rules_acked: None,
            },
            MemberInfo {
                user: user("cy"),
                role: Role::Moderator,
                joined_at: Millis(3),
                role_expires_at: None,
                online: false,
                title: None,
                muted_until: None,
                newcomer: false,
                rules_acked: None,
            },
        ],
    });
    app.on_net(Net::History(HistoryPage {
        room: rid("cameras"),
        epoch: Epoch(7),
        events: vec![
            message("cameras", 2, "ada", "Anyone tried Portra 400 at 800?"),
            message("cameras", 3, "cy", "Yes, push it one stop."),
        ],
        more: true,
        oldest: Seq(1),
    }));
    app
}

fn screen(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| view::draw(frame, app, true)).unwrap();
    let buffer = terminal.backend().buffer().clone();
    let mut text = String::new();
    for y in 0..height {
        let row: String = (0..width).map(|x| buffer[(x, y)].symbol().to_string()).collect();
        text.push_str(row.trim_end());
        text.push('\n');
    }
    text
}

#[test]
fn a_room_with_messages_shows_rooms_timeline_badges_and_status() {
    let mut app = cameras();
    app.on_net(Net::Event(message("cameras", 4, "ada", "bo, bring the Leica on Sunday")));
    let shown = screen(&app, 80, 24);
    assert!(shown.contains("1 #cameras"), "the sidebar lists the room:\n{shown}");
    assert!(shown.contains("#cameras — Rangefinders and rolls (3 members, you: member)"), "{shown}");
    assert!(shown.contains("09:32 #2 ada (owner): Anyone tried Portra 400 at 800?"), "{shown}");
    assert!(shown.contains("#3 cy (mod): Yes, push it one stop."), "{shown}");
    assert!(shown.contains("bo, bring the Leica on Sunday"), "{shown}");
    assert!(shown.contains("[online]"), "{shown}");
    assert!(shown.contains("#cameras>"), "the input line names the room:\n{shown}");
}

#[test]
fn the_pins_panel_shows_the_mission_and_updates_live() {
    let mut app = cameras();
    app.on_key(key(KeyCode::F(2)), 10);
    let shown = screen(&app, 120, 24);
    assert!(shown.contains("pinned (F2)"), "{shown}");
    assert!(shown.contains("#1 Mission"), "{shown}");
    assert!(shown.contains("We shoot film and share what we learn."), "{shown}");
    let mut rules = pin(5, "Rules", "Be kind. Credit photographers.");
    rules.version = 2;
    app.on_net(Net::Event(Event::Pin(PinEvent {
        room: rid("cameras"),
        seq: Seq(5),
        ts: Millis(1_700_040_900_000),
        from: user("ada"),
        pin: rules,
        replaces: None,
    })));
    let shown = screen(&app, 120, 24);
    assert!(shown.contains("#5 Rules v2"), "{shown}");
    assert!(shown.contains("ada pinned #5"), "the timeline says so too:\n{shown}");
    app.on_key(key(KeyCode::Esc), 10);
    assert!(!screen(&app, 80, 24).contains("pinned (F2)"));
}

#[test]
fn the_members_panel_shows_roles_and_who_is_online() {
    let mut app = cameras();
    let asked = app.on_key(key(KeyCode::F(3)), 10);
    assert_eq!(asked, vec![Action::Members(rid("cameras"))], "opening it refreshes the list");
    let shown = screen(&app, 80, 24);
    assert!(shown.contains("members (F3)"), "{shown}");
    assert!(shown.contains("● ada (owner)"), "{shown}");
    assert!(shown.contains("○ cy (mod)"), "{shown}");
}

#[test]
fn reconnecting_is_shown_and_a_replay_never_doubles_a_line() {
    let mut app = cameras();
    app.on_net(Net::Connection(Connection::Reconnecting { attempt: 2, retry_in: Duration::from_secs(1) }));
    assert!(screen(&app, 80, 24).contains("[reconnecting (try 2, in 1.0s)]"));
    // The resume replays from the last seq the UI showed; a repeat is dropped.
    app.on_net(Net::Connection(Connection::Online));
    app.on_net(Net::Event(message("cameras", 3, "cy", "Yes, push it one stop.")));
    app.on_net(Net::Event(message("cameras", 4, "ada", "new after the reconnect")));
    app.on_net(Net::Resumed { truncated: Vec::new() });
    let room = app.active_room().unwrap();
    let seqs: Vec<u64> = room.lines.iter().filter_map(|l| l.seq).map(|s| s.0).collect();
    assert_eq!(seqs, [2, 3, 4]);
    assert!(screen(&app, 80, 24).contains("[online] reconnected"));
}

#[test]
fn unread_counts_and_mentions_follow_the_room_shown() {
    let mut app = cameras();
    app.on_net(Net::Joined(joined("darkroom", 0, Role::Member)));
    app.on_net(Net::Event(message("darkroom", 1, "ada", "chemistry is mixed")));
    // The server resolved the mention (the event's `mentions`).
    let Event::Message(mut mention) = message("darkroom", 2, "ada", "@bo your rolls are dry") else { unreachable!() };
    mention.mentions = vec![user("bo")];
    app.on_net(Net::Event(Event::Message(mention)));
    let room = &app.rooms[&rid("darkroom")];
    assert_eq!((room.unread, room.mentions), (2, 1));
    assert!(screen(&app, 80, 24).contains("2 #darkroom @1 2"), "{}", screen(&app, 80, 24));
    app.on_key(KeyEvent::new(KeyCode::Char('n'), KeyModifiers::CONTROL), 10);
    assert_eq!(app.active, Some(rid("darkroom")));
    assert_eq!(app.rooms[&rid("darkroom")].unread, 0);
}

#[test]
fn a_room_seen_is_marked_read_and_a_mark_from_another_device_clears_the_count() {
    let mut app = cameras();
    app.take_actions();
    app.on_net(Net::Joined(joined("darkroom", 0, Role::Member)));
    for seq in 1..=3 {
        app.on_net(Net::Event(message("darkroom", seq, "ada", "news")));
    }
    // The server's counts, as another device left them.
    let read = |seq, unread| hearth_protocol::ops::RoomRead {
        room: rid("darkroom"),
        seq: Seq(seq),
        head: Seq(3),
        unread,
        more: false,
    };
    app.on_net(Net::ReadState(vec![read(1, 2)]));
    assert_eq!(app.rooms[&rid("darkroom")].unread, 2);
    // Read on the phone up to 3: cleared here.
    app.on_net(Net::Event(Event::Read(hearth_protocol::event::ReadEvent { room: rid("darkroom"), seq: Seq(3) })));
    assert_eq!(app.rooms[&rid("darkroom")].unread, 0);
    // Seen here: a message while the room is shown is marked read, for every device.
    app.on_net(Net::Event(message("cameras", 9, "ada", "on screen")));
    assert_eq!(app.take_actions(), vec![Action::MarkRead { room: rid("cameras"), seq: Seq(9) }]);
}

#[test]
fn other_members_text_is_shown_never_obeyed() {
    let mut app = cameras();
    app.on_net(Net::Event(message("cameras", 4, "mallory", "\u{1b}[2J\u{1b}]0;pwned\u{7}gotcha \u{202e}txet")));
    let shown = screen(&app, 100, 24);
    assert!(shown.contains("^[[2J^[]0;pwned^Ggotcha <U+202E>txet"), "{shown}");
}

#[test]
fn scrolling_up_past_the_oldest_line_asks_for_older_history_and_keeps_the_view() {
    let mut app = cameras();
    let asked = app.on_key(key(KeyCode::PageUp), 10);
    assert_eq!(asked, vec![Action::Older { room: rid("cameras"), before: Seq(2) }]);
    assert!(app.on_key(key(KeyCode::PageUp), 10).is_empty(), "one request at a time");
    app.on_net(Net::History(HistoryPage {
        room: rid("cameras"),
        epoch: Epoch(7),
        events: vec![Event::MemberJoined(MemberJoinedEvent {
            room: rid("cameras"),
            seq: Seq(1),
            ts: Millis(1_700_040_600_000),
            from: user("ada"),
            role: Role::Owner,
            approved_by: None,
            invite: None,
            lockdown: None,
        })],
        more: false,
        oldest: Seq(1),
    }));
    let room = app.active_room().unwrap();
    assert_eq!(room.lines.front().and_then(|l| l.seq), Some(Seq(1)));
    assert!(!room.more_history);
    app.on_key(key(KeyCode::End), 10);
    assert_eq!(app.active_room().unwrap().scroll, 0);
}

#[test]
fn the_input_line_sends_runs_commands_and_completes() {
    let mut app = cameras();
    assert_eq!(
        typed(&mut app, "hello all"),
        vec![Action::Send { room: rid("cameras"), text: "hello all".into(), thread: None }]
    );
    assert_eq!(
        typed(&mut app, "/reply 2 I did, it works"),
        vec![Action::Send { room: rid("cameras"), text: "I did, it works".into(), thread: Some(Seq(2)) }]
    );
    assert_eq!(
        typed(&mut app, "//slash"),
        vec![Action::Send { room: rid("cameras"), text: "/slash".into(), thread: None }]
    );
    assert_eq!(typed(&mut app, "/join darkroom"), vec![Action::Join(rid("darkroom"))]);
    assert_eq!(app.active, Some(rid("darkroom")));
    assert_eq!(
        typed(&mut app, "/pin 3"),
        vec![Action::Pin { room: rid("darkroom"), seq: Some(Seq(3)), note: None, title: None }]
    );
    // Community commands become requests; a missing argument shows the usage.
    let kick = typed(&mut app, "/kick cy too loud");
    assert!(
        matches!(&kick[..], [Action::Request { what, op: hearth_protocol::Op::Kick(k) }] if what == "kicked cy" && k.reason.as_str() == "too loud"),
        "{kick:?}"
    );
    let react = typed(&mut app, "/react 3 👍");
    assert!(
        matches!(&react[..], [Action::Request { op: hearth_protocol::Op::React(r), .. }] if r.on && r.target == Seq(3)),
        "{react:?}"
    );
    // Reports: the category is optional; a resolve by mute takes a time.
    let report = typed(&mut app, "/report 3 spam third shop link");
    assert!(
        matches!(&report[..], [Action::Request { op: hearth_protocol::Op::Report(r), .. }]
            if r.seq == Seq(3) && r.category == hearth_protocol::ops::ReportCategory::Spam && r.note.as_str() == "third shop link"),
        "{report:?}"
    );
    let report = typed(&mut app, "/report 3 not film at all");
    assert!(
        matches!(&report[..], [Action::Request { op: hearth_protocol::Op::Report(r), .. }]
            if r.category == hearth_protocol::ops::ReportCategory::Other && r.note.as_str() == "not film at all"),
        "{report:?}"
    );
    let resolve = typed(&mut app, "/resolve 3 mute 2h keep to film");
    assert!(
        matches!(&resolve[..], [Action::Request { op: hearth_protocol::Op::ResolveReport(r), .. }]
            if r.duration_secs == Some(7200) && r.reason.as_str() == "keep to film"),
        "{resolve:?}"
    );
    assert!(typed(&mut app, "/warn cy").is_empty(), "a warning needs a reason");
    assert_eq!(typed(&mut app, "/warnings"), vec![Action::Warnings { room: rid("darkroom"), user: None }]);
    assert!(typed(&mut app, "/mute cy").is_empty());
    assert!(app.status.as_deref().unwrap().starts_with("/mute USER TIME"), "{:?}", app.status);
    // A length of time reads as in script mode (`--for 2h`), or a plain number
    // in the command's own unit (minutes for /mute).
    for (typed_time, secs, said) in [("2h", 7200, "muted cy for 2h"), ("10", 600, "muted cy for 10m")] {
        let mute = typed(&mut app, &format!("/mute cy {typed_time} flooding"));
        assert!(
            matches!(&mute[..], [Action::Request { what, op: hearth_protocol::Op::Mute(m) }]
                if m.duration_secs == secs && m.reason.as_str() == "flooding" && what == said),
            "{mute:?}"
        );
    }
    assert!(typed(&mut app, "/mute cy soon").is_empty());
    assert!(app.status.as_deref().unwrap().contains("not a length of time"), "{:?}", app.status);
    let prompt = typed(&mut app, "/prompt 30 Weekly roll?");
    assert!(
        matches!(&prompt[..], [Action::Request { op: hearth_protocol::Op::SchedulePrompt(p), .. }] if p.text.as_str() == "Weekly roll?"),
        "{prompt:?}"
    );
    assert!(typed(&mut app, "/frobnicate").is_empty());
    assert!(app.status.as_deref().unwrap().contains("no such command"));
    // Up brings the last line back; Tab completes commands and members.
    app.on_key(key(KeyCode::Up), 10);
    assert_eq!(app.input.text(), "/frobnicate");
    app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL), 10);
    for c in "/mem".chars() {
        app.on_key(key(KeyCode::Char(c)), 10);
    }
    app.on_key(key(KeyCode::Tab), 10);
    assert_eq!(app.input.text(), "/members ");
    app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL), 10);
    app.on_key(KeyEvent::new(KeyCode::Char('p'), KeyModifiers::CONTROL), 10);
    assert_eq!(app.active, Some(rid("cameras")));
    for c in "thanks ad".chars() {
        app.on_key(key(KeyCode::Char(c)), 10);
    }
    app.on_key(key(KeyCode::Tab), 10);
    assert_eq!(app.input.text(), "thanks ada ");
}

#[test]
fn a_gap_and_a_truncated_resume_are_said_plainly() {
    let mut app = cameras();
    app.on_net(Net::Event(Event::Truncated(TruncatedEvent {
        room: rid("cameras"),
        epoch: hearth_protocol::Epoch(1),
        after: Seq(3),
        next: Seq(40),
    })));
    assert!(screen(&app, 80, 24).contains("events #4–#39 are no longer held by the server"));
    app.on_net(Net::Resumed { truncated: vec![rid("cameras")] });
    assert!(screen(&app, 120, 24).contains("reconnected; some events missed meanwhile are no longer held"));
}

#[test]
fn the_layout_fits_80_by_24_and_narrow_terminals_drop_the_sidebar() {
    let app = cameras();
    let wide = screen(&app, 80, 24);
    assert_eq!(wide.lines().count(), 24);
    let narrow = screen(&app, 50, 12);
    assert!(!narrow.contains("1 #cameras"), "no sidebar at 50 columns:\n{narrow}");
    assert!(narrow.contains("Yes, push it one stop."), "{narrow}");
}

#[test]
fn the_help_panel_lists_keys_and_commands() {
    let mut app = cameras();
    app.on_key(key(KeyCode::F(1)), 10);
    let shown = screen(&app, 100, 30);
    assert!(shown.contains("F1 help · F2 pins · F3 members"), "{shown}");
    // Every command's name fits an 80×24 terminal; /help NAME says the rest.
    let small = screen(&app, 80, 24);
    for (name, _) in COMMANDS {
        assert!(small.split(|c: char| c.is_whitespace() || c == '│').any(|w| w == *name), "{name} in\n{small}");
    }
    typed(&mut app, "/help reply");
    assert_eq!(app.status.as_deref(), Some("/reply SEQ TEXT — reply in the thread of message SEQ"));
    typed(&mut app, "/help /nope");
    assert_eq!(app.status.as_deref(), Some("/nope: no such command; /help lists them"));
}

#[test]
fn a_thread_view_shows_the_root_and_its_replies_and_replies_in_it() {
    let mut app = cameras();
    let reply = |seq: u64, from: &str, text: &str| {
        let Event::Message(mut m) = message("cameras", seq, from, text) else { unreachable!() };
        m.thread = Some(Seq(2));
        Event::Message(m)
    };
    app.on_net(Net::Event(reply(4, "bo", "At 800 it gets grainy")));
    app.on_net(Net::Event(message("cameras", 5, "cy", "Off topic: who has a spare lens cap?")));
    app.on_net(Net::Event(reply(6, "ada", "Grain is the point")));
    let whole = screen(&app, 100, 24);
    assert!(whole.contains("Anyone tried Portra 400 at 800?  [2 replies]"), "{whole}");
    assert!(typed(&mut app, "/thread 2").is_empty());
    let thread = screen(&app, 100, 24);
    assert!(thread.contains("#cameras › thread of #2"), "{thread}");
    assert!(thread.contains("re #2 bo: At 800 it gets grainy"), "{thread}");
    assert!(!thread.contains("spare lens cap"), "only the thread:\n{thread}");
    assert!(thread.contains("#cameras › #2>"), "{thread}");
    assert_eq!(
        typed(&mut app, "Agreed"),
        vec![Action::Send { room: rid("cameras"), text: "Agreed".into(), thread: Some(Seq(2)) }]
    );
    app.on_key(key(KeyCode::Esc), 10);
    assert!(screen(&app, 100, 24).contains("spare lens cap"));
    assert!(typed(&mut app, "/thread 99").is_empty());
    assert!(app.status.as_deref().unwrap().contains("no message #99"));
}

#[test]
fn wide_characters_wrap_by_their_width() {
    let mut app = cameras();
    app.on_net(Net::Event(message("cameras", 4, "ada", &"写真".repeat(40))));
    // Counted by characters, the rows would run past the edge and be cut off.
    let shown = screen(&app, 80, 24);
    assert_eq!(shown.matches('写').count(), 40, "every character is on screen:\n{shown}");
    assert_eq!(shown.matches('真').count(), 40, "{shown}");
}

#[test]
fn edits_deletes_and_moderation_show_as_they_happen() {
    use hearth_protocol::event::{DeleteEvent, EditEvent, ModerationEvent};
    let mut app = cameras();
    app.on_net(Net::Event(message("cameras", 50, "bo", "Portra at 800?")));
    app.on_net(Net::Event(message("cameras", 51, "cy", "spam spam")));
    app.on_net(Net::Event(Event::Edit(EditEvent {
        room: rid("cameras"),
        seq: Seq(52),
        ts: Millis(1_700_040_600_000),
        from: user("bo"),
        target: Seq(50),
        text: Text::new("Portra at 1600?").unwrap(),
    })));
    app.on_net(Net::Event(Event::Delete(DeleteEvent {
        room: rid("cameras"),
        seq: Seq(53),
        ts: Millis(1_700_040_600_000),
        from: user("ada"),
        target: Seq(51),
        of: Some(user("cy")),
    })));
    app.on_net(Net::Event(Event::Moderation(ModerationEvent {
        room: rid("cameras"),
        seq: Seq(54),
        ts: Millis(1_700_040_600_000),
        from: user("ada"),
        action: hearth_protocol::ops::ModAction::Mute,
        user: Some(user("cy")),
        until: None,
        reason: ShortText::new("spamming").unwrap(),
        invite: None,
        max_uses: None,
        held: None,
        message: None,
        outcome: None,
        reports: Vec::new(),
        escalation: None,
        warnings: Vec::new(),
        audience: None,
    })));
    app.on_net(Net::Event(Event::Moderation(ModerationEvent {
        room: rid("cameras"),
        seq: Seq(55),
        ts: Millis(1_700_040_700_000),
        from: user("ada"),
        action: hearth_protocol::ops::ModAction::Warn,
        user: Some(user("cy")),
        until: None,
        reason: ShortText::new("links").unwrap(),
        invite: None,
        max_uses: None,
        held: None,
        message: None,
        outcome: None,
        reports: Vec::new(),
        escalation: Some(hearth_protocol::ops::Escalation {
            action: hearth_protocol::ops::ModAction::Mute,
            until: None,
        }),
        warnings: Vec::new(),
        audience: None,
    })));
    let shown = screen(&app, 100, 30);
    assert!(shown.contains("ada warned cy: links — and muted them"), "{shown}");
    assert!(shown.contains("Portra at 1600? (edited)"), "{shown}");
    assert!(shown.contains("(deleted)") && !shown.contains("spam spam"), "{shown}");
    assert!(shown.contains("ada muted cy: spamming"), "{shown}");
}

#[test]
fn reactions_show_beside_their_message_and_count_each_member_once() {
    use hearth_protocol::Emoji;
    use hearth_protocol::event::{MessageState, ReactionCount, ReactionEvent};
    let mut app = cameras();
    // From history, as the message is now: two 📷 (ada's and bo's), 3 replies.
    // (The screen shows a wide character as two cells: "📷  2".)
    let Event::Message(mut root) = message("cameras", 1, "cy", "Which film for snow?") else { unreachable!() };
    root.state = Some(Box::new(MessageState {
        reactions: vec![ReactionCount {
            emoji: Emoji::new("📷").unwrap(),
            count: 2,
            users: vec![user("ada"), user("bo")],
        }],
        replies: 3,
        last_reply: Some(Seq(60)),
        ..MessageState::default()
    }));
    let page = HistoryPage {
        room: rid("cameras"),
        epoch: Epoch(7),
        events: vec![Event::Message(root)],
        more: false,
        oldest: Seq(1),
    };
    app.on_net(Net::History(page));
    assert!(screen(&app, 100, 30).contains("Which film for snow?  📷  2  [3 replies]"), "{}", screen(&app, 100, 30));
    let react = |seq: u64, from: &str, emoji: &str, on: bool| {
        Net::Event(Event::Reaction(ReactionEvent {
            room: rid("cameras"),
            seq: Seq(seq),
            ts: Millis(1_700_040_600_000),
            from: user(from),
            target: Seq(1),
            emoji: Emoji::new(emoji).unwrap(),
            on,
        }))
    };
    // bo's 📷 arrives live too (it was already counted): still 2. dee adds a ❤.
    app.on_net(react(61, "bo", "📷", true));
    app.on_net(react(62, "dee", "❤", true));
    assert!(screen(&app, 100, 30).contains("Which film for snow?  📷  2  ❤ 1  [3 replies]"));
    assert!(app.status.as_deref().unwrap().contains("dee reacted ❤ to #1"));
    // ada takes hers back; dee's goes too, and its emoji with it.
    app.on_net(react(63, "ada", "📷", false));
    app.on_net(react(64, "dee", "❤", false));
    let shown = screen(&app, 100, 30);
    assert!(shown.contains("Which film for snow?  📷  1  [3 replies]"), "{shown}");
    assert!(!shown.contains("❤ 1"), "{shown}");
    // A reply the history already counted changes nothing; a new one counts.
    let reply = |seq: u64| {
        let Event::Message(mut m) = message("cameras", seq, "bo", "Tri-X") else { unreachable!() };
        m.thread = Some(Seq(1));
        Net::Event(Event::Message(m))
    };
    app.on_net(reply(58));
    assert!(screen(&app, 100, 30).contains("Which film for snow?  📷  1  [3 replies]"));
    app.on_net(reply(65));
    assert!(screen(&app, 100, 30).contains("Which film for snow?  📷  1  [4 replies]"));
}

#[test]
fn newcomers_are_flagged_beside_their_messages_and_in_the_members_panel() {
    let mut app = cameras();
    let mut members = app.rooms[&rid("cameras")].members.clone();
    members.push(MemberInfo {
        user: user("dee"),
        role: Role::Member,
        joined_at: Millis(4),
        role_expires_at: None,
        online: true,
        title: Some(ShortText::new("darkroom lead").unwrap()),
        muted_until: None,
        newcomer: true,
        rules_acked: None,
    });
    app.on_net(Net::Members { room: rid("cameras"), members });
    app.on_net(Net::Event(message("cameras", 4, "dee", "Hello, first roll here")));
    assert!(screen(&app, 100, 24).contains("dee (new): Hello, first roll here"));
    app.on_key(key(KeyCode::F(3)), 10);
    let panel = screen(&app, 120, 24);
    assert!(panel.contains("dee “darkroom lead” · new"), "{panel}");
}

fn typing(room: &str, who: &str) -> Event {
    Event::Typing(hearth_protocol::event::TypingEvent { room: rid(room), user: user(who) })
}

/// The status line as drawn (the screen's last line but one).
fn status_line(app: &App) -> String {
    let shown = screen(app, 100, 24);
    shown.lines().nth(22).unwrap_or_default().to_string()
}

#[tokio::test(start_paused = true)]
async fn typing_shows_for_five_seconds_unless_repeated_and_ends_with_the_message() {
    let mut app = cameras();
    app.on_net(Net::Event(typing("cameras", "ada")));
    assert!(status_line(&app).contains("ada is typing…"), "{}", status_line(&app));
    app.on_net(Net::Event(typing("cameras", "cy")));
    assert!(status_line(&app).contains("ada and cy are typing…"), "{}", status_line(&app));

    // 4 s on, ada says it again: hers lasts, cy's goes out at 5 s.
    tokio::time::advance(Duration::from_secs(4)).await;
    app.on_net(Net::Event(typing("cameras", "ada")));
    tokio::time::advance(Duration::from_millis(1_100)).await;
    app.expire_typing(tokio::time::Instant::now());
    assert_eq!(app.next_typing_expiry(), Some(tokio::time::Instant::now() + Duration::from_millis(3_900)));
    assert!(status_line(&app).contains("ada is typing…") && !status_line(&app).contains("cy"), "{}", status_line(&app));

    // Her message is what she was typing: the indicator goes with it.
    app.on_net(Net::Event(message("cameras", 9, "ada", "Portra at 800 it is.")));
    assert!(!status_line(&app).contains("typing"), "{}", status_line(&app));
    assert_eq!(app.next_typing_expiry(), None);

    // Typing in another room is kept for that room, not shown here.
    app.on_net(Net::Event(typing("lenses", "cy")));
    assert!(!status_line(&app).contains("typing"), "{}", status_line(&app));
    tokio::time::advance(Duration::from_secs(5)).await;
    app.expire_typing(tokio::time::Instant::now());
    assert!(app.typing.is_empty());
}

#[tokio::test(start_paused = true)]
async fn writing_a_message_tells_the_room_once_every_three_seconds_and_commands_never() {
    let mut app = cameras();
    let told = |actions: Vec<Action>| actions.iter().filter(|a| matches!(a, Action::Typing(_))).count();
    assert_eq!(told(app.on_key(key(KeyCode::Char('h')), 10)), 1);
    assert_eq!(told(app.on_key(key(KeyCode::Char('i')), 10)), 0, "within 3 s: said already");
    tokio::time::advance(Duration::from_secs(3)).await;
    assert_eq!(told(app.on_key(key(KeyCode::Char('!')), 10)), 1);
    assert_eq!(told(app.on_key(key(KeyCode::Backspace), 10)), 0, "deleting is not writing");
    let sent = app.on_key(key(KeyCode::Enter), 10);
    assert!(matches!(sent.as_slice(), [Action::Send { .. }]), "{sent:?}");

    // A command is not a message.
    tokio::time::advance(Duration::from_secs(3)).await;
    for c in "/members".chars() {
        assert_eq!(told(app.on_key(key(KeyCode::Char(c)), 10)), 0);
    }
    app.on_key(key(KeyCode::Enter), 10);
    // Offline, nothing is told (the network task could only say it is not connected).
    app.on_net(Net::Connection(Connection::Reconnecting { attempt: 1, retry_in: Duration::from_secs(1) }));
    assert_eq!(told(app.on_key(key(KeyCode::Char('x')), 10)), 0);
    app.on_net(Net::Connection(Connection::Online));
    assert_eq!(told(app.on_key(key(KeyCode::Char('y')), 10)), 1);
}

#[test]
fn joining_with_an_invite_and_refusals_say_what_to_do_here() {
    let mut app = cameras();
    let revoke = typed(&mut app, "/revoke 3f9c2a71be04");
    assert!(
        matches!(&revoke[..], [Action::Request { op: hearth_protocol::Op::RevokeInvite(r), .. }] if r.code == "3f9c2a71be04"),
        "{revoke:?}"
    );
    assert_eq!(
        typed(&mut app, "/join #vault 3f9c2a71be04"),
        vec![Action::JoinInvited { room: rid("vault"), code: "3f9c2a71be04".into() }]
    );
    assert_eq!(app.active, Some(rid("vault")));
    // A room already joined is only shown, code or not.
    assert_eq!(typed(&mut app, "/join cameras 3f9c2a71be04"), vec![]);
    let refused = |app: &mut App, error: &str| {
        app.on_net(Net::Failed { what: "send to cameras".into(), error: error.into() });
        app.status.clone().unwrap_or_default()
    };
    let ack = refused(&mut app, "ack_required: room cameras asks you to acknowledge them with ack_rules");
    assert!(ack.ends_with("— F2 shows the rules; /ack acknowledges them"), "{ack}");
    let approval = refused(&mut app, "approval_required: room vault takes members it approves");
    assert!(approval.ends_with("/request ROOM [NOTE] asks to join"), "{approval}");
    let other = refused(&mut app, "muted: you are muted for 5 more minutes");
    assert_eq!(other, "send to cameras: muted: you are muted for 5 more minutes");
}

#[test]
fn search_asks_the_server_and_shows_the_matches_in_a_panel() {
    use hearth_protocol::ops::SearchResult;
    let mut app = cameras();
    assert_eq!(typed(&mut app, "/search portra 400"), vec![Action::Search { query: "portra 400".into() }]);
    assert_eq!(app.panel, Panel::Search);
    assert!(screen(&app, 100, 24).contains("searching…"));
    let result = |seq, parts: &[&str]| SearchResult {
        room: rid("cameras"),
        seq: Seq(seq),
        ts: Millis(1_764_141_300_000),
        from: user("mallory"),
        parts: parts.iter().map(|p| p.to_string()).collect(),
        thread: None,
    };
    // An answer to a search no longer shown is dropped.
    app.on_net(Net::Found { query: "older".into(), results: vec![result(1, &["older"])], more: false });
    app.on_net(Net::Found {
        query: "portra 400".into(),
        results: vec![result(9, &["shot on ", "Portra 400", "\u{1b}[2J at box"])],
        more: false,
    });
    let shown = screen(&app, 100, 24);
    assert!(shown.contains("cameras #9 mallory 2025-11-26"), "{shown}");
    assert!(shown.contains("shot on Portra 400^[[2J at box"), "member text shown, never obeyed: {shown}");
    assert!(!shown.contains("cameras #1 "), "{shown}");
    app.on_net(Net::Found { query: "portra 400".into(), results: Vec::new(), more: false });
    assert!(screen(&app, 100, 24).contains("nothing found"));
    assert!(typed(&mut app, "/search   ").is_empty(), "an empty search asks nothing");
}

#[test]
fn direct_conversations_and_blocks_from_the_input_line() {
    use hearth_protocol::event::{BlocksEvent, DirectStartedEvent};
    let mut app = cameras();
    assert_eq!(typed(&mut app, "/dm bo cy"), vec![Action::Direct { with: vec![user("bo"), user("cy")] }]);
    assert!(typed(&mut app, "/dm").is_empty(), "nobody named, nothing asked");
    match typed(&mut app, "/notify everything").as_slice() {
        [Action::Request { op: hearth_protocol::Op::SetPushLevel(set), .. }] => {
            assert_eq!(set.level, hearth_protocol::ops::PushLevel::Everything)
        }
        other => panic!("{other:?}"),
    }
    assert!(typed(&mut app, "/notify loudly").is_empty());
    // The conversation it joins is shown.
    let mut conversation = joined("dm-00112233445566778899", 1, Role::Member);
    conversation.room.visibility = Visibility::Direct;
    conversation.room.members = 2;
    conversation.room.direct = vec![user("bo"), user("cy")];
    app.on_net(Net::Joined(conversation));
    assert_eq!(app.active, Some(rid("dm-00112233445566778899")));
    assert!(screen(&app, 100, 24).contains("✉ cy (2 members)"));
    match typed(&mut app, "/block mallory").as_slice() {
        [Action::Request { op: hearth_protocol::Op::Block(block), .. }] => {
            assert!(block.on && block.user == user("mallory"))
        }
        other => panic!("{other:?}"),
    }
    // Told of a conversation started elsewhere, with how to open it.
    app.on_net(Net::Event(Event::DirectStarted(DirectStartedEvent {
        room: rid("dm-99887766554433221100"),
        seq: Seq(1),
        ts: Millis(1),
        from: user("ada"),
        members: vec![user("ada"), user("bo"), user("cy")],
    })));
    let shown = screen(&app, 100, 24);
    assert!(shown.contains("ada started a conversation with you: /dm ada cy"), "{shown}");
    // A blocked member's messages are folded, not shown.
    app.on_net(Net::Event(Event::Blocks(BlocksEvent { users: vec![user("mallory")] })));
    typed(&mut app, "/join cameras");
    app.on_net(Net::Event(message("cameras", 7, "mallory", "buy my lenses")));
    let shown = screen(&app, 100, 24);
    assert!(shown.contains("a message from someone you blocked") && !shown.contains("buy my lenses"), "{shown}");
}

#[test]
fn an_erasure_takes_the_member_s_messages_and_reactions_back() {
    use hearth_protocol::event::{ErasedEvent, ErasedReaction, ReactionEvent};
    let mut app = cameras();
    app.on_net(Net::Event(message("cameras", 50, "bo", "Portra at 800?")));
    app.on_net(Net::Event(message("cameras", 51, "eve", "my quokka portraits")));
    app.on_net(Net::Event(Event::Reaction(ReactionEvent {
        room: rid("cameras"),
        seq: Seq(52),
        ts: Millis(1_700_040_600_000),
        from: user("eve"),
        target: Seq(50),
        emoji: hearth_protocol::Emoji::new("🦘").unwrap(),
        on: true,
    })));
    assert!(screen(&app, 100, 30).contains("🦘"));
    app.on_net(Net::Event(Event::Erased(ErasedEvent {
        room: rid("cameras"),
        seq: Seq(53),
        ts: Millis(1_700_040_700_000),
        user: user("eve"),
        messages: vec![Seq(51)],
        reactions: vec![ErasedReaction { target: Seq(50), emoji: hearth_protocol::Emoji::new("🦘").unwrap() }],
        held: Vec::new(),
        former_member: false,
    })));
    let shown = screen(&app, 100, 30);
    assert!(!shown.contains("quokka") && shown.contains("(erased)"), "{shown}");
    let bos = shown.lines().find(|l| l.contains("#50 bo")).expect("bo's message");
    assert!(!bos.contains("🦘"), "{shown}");
    assert!(shown.contains("eve erased their account: what they wrote here is gone"), "{shown}");
}
