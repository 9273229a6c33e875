//! The terminal UI's state and what changes it: keys the member presses,
//! events and replies from the server, the connection coming and going. No
//! terminal and no socket here — the loop in `tui/mod.rs` feeds it and draws
//! it, and tests drive it directly. What the member asks for leaves as
//! [`Action`]s for the network task.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use hearth_protocol::event::LeftReason;
use hearth_protocol::event::ReactionCount;
use hearth_protocol::ops::ModAction;
use hearth_protocol::ops::{HistoryPage, Joined, MemberInfo, PinnedNote, ResumeMode, RoomSummary};
use hearth_protocol::{Emoji, Event, Millis, PinId, Role, RoomId, Seq, UserId};

use super::input::Input;

/// Lines each room keeps on screen; older ones are read again from history.
const KEEP_LINES: usize = 5_000;
/// Messages fetched per history page.
pub const PAGE: u16 = 50;
/// How long someone's typing indicator shows after the last one (PROTOCOL.md).
pub const TYPING_SHOWN: Duration = Duration::from_secs(5);
/// How often the member's own typing is told to a room: the server passes it
/// on at most this often anyway (PROTOCOL.md).
const TYPING_EVERY: Duration = Duration::from_secs(3);

/// What the member asked for, for the network task to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start receiving a room (becoming a member if not one), then show its
    /// newest page of history.
    Join(RoomId),
    /// Join with an invite code, then as [`Action::Join`].
    JoinInvited {
        room: RoomId,
        code: String,
    },
    Leave(RoomId),
    Send {
        room: RoomId,
        text: String,
        thread: Option<Seq>,
    },
    Create {
        room: RoomId,
        topic: String,
    },
    Pin {
        room: RoomId,
        seq: Option<Seq>,
        note: Option<String>,
        title: Option<String>,
    },
    Unpin {
        room: RoomId,
        pin: PinId,
    },
    Members(RoomId),
    /// The page of history before `before`.
    Older {
        room: RoomId,
        before: Seq,
    },
    ListRooms,
    /// A community request (react, edit, moderate, ...): `what` it is, said
    /// back when done.
    Request {
        what: String,
        op: hearth_protocol::Op,
    },
    /// An invite code for the room, shown when made.
    Invite {
        room: RoomId,
        uses: Option<u32>,
    },
    /// The room's join requests, or its moderation log, shown.
    Requests(RoomId),
    /// The posts held for a look, shown.
    Held(RoomId),
    /// Post (`approve`) or drop the oldest held post of `user`.
    Release {
        room: RoomId,
        user: UserId,
        approve: bool,
        reason: hearth_protocol::ShortText,
    },
    ModLog(RoomId),
    Stats(RoomId),
    /// The member is typing in the room: tell the others (nothing is said
    /// back, and a refusal — muted, say — is not worth a word).
    Typing(RoomId),
}

/// What the network task reports back.
#[derive(Debug, Clone)]
pub enum Net {
    /// Something to tell the member on the status line (a request done, an
    /// invite's code, a short list).
    Said(String),
    /// Who the server says the member is.
    Me(UserId),
    Connection(Connection),
    Event(Event),
    Joined(Joined),
    /// History asked for by [`Action::Join`] or [`Action::Older`].
    History(HistoryPage),
    Members {
        room: RoomId,
        members: Vec<MemberInfo>,
    },
    /// The rooms the member can see; `asked` when the member asked (`/rooms`)
    /// rather than the UI loading them at start.
    Rooms {
        rooms: Vec<RoomSummary>,
        asked: bool,
    },
    /// Back after a disconnection: every room resumed from where it was;
    /// these could not be replayed whole.
    Resumed {
        truncated: Vec<RoomId>,
    },
    /// A request failed; `what` says which.
    Failed {
        what: String,
        error: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Connection {
    Connecting,
    Online,
    /// Lost; trying again (attempt number, wait before it).
    Reconnecting {
        attempt: u32,
        retry_in: Duration,
    },
    /// Gave up, with why (a refused token, say): the member must act.
    Closed(String),
}

/// One line of a room's timeline as shown.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub seq: Option<Seq>,
    pub ts: Millis,
    pub kind: LineKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LineKind {
    Message {
        from: UserId,
        text: String,
        thread: Option<Seq>,
        mentions_me: bool,
        /// Replies in its thread, and the newest one counted (so a reply seen
        /// twice, in history and live, counts once).
        replies: u32,
        last_reply: Option<Seq>,
        reactions: Vec<ReactionCount>,
    },
    /// Joins, leaves, pins, gaps: said by the room, not a member.
    Notice(String),
}

/// What to do in this UI after a refusal whose message names the protocol's
/// operation, not the command: said after it.
fn next_step(error: &str) -> &'static str {
    match error.split(':').next().unwrap_or_default() {
        "ack_required" => " — F2 shows the rules; /ack acknowledges them",
        "approval_required" => " — /request ROOM [NOTE] asks to join",
        "invite_required" => " — /join ROOM INVITE with a code from a welcomer",
        _ => "",
    }
}

/// Applies one member's reaction turned on or off to a message's counts. Who
/// reacted is known for up to 20 per emoji (the server's list), so the same
/// reaction seen twice — in a history page and live — counts once.
pub fn toggle_reaction(reactions: &mut Vec<ReactionCount>, emoji: &Emoji, from: &UserId, on: bool) {
    let at = match reactions.iter().position(|r| &r.emoji == emoji) {
        Some(at) => at,
        None if on => {
            reactions.push(ReactionCount { emoji: emoji.clone(), count: 0, users: Vec::new() });
            reactions.len() - 1
        }
        None => return,
    };
    let entry = &mut reactions[at];
    let listed = entry.users.iter().position(|u| u == from);
    match (on, listed) {
        (true, None) => {
            entry.users.push(from.clone());
            entry.count += 1;
        }
        (false, Some(i)) => {
            entry.users.remove(i);
            entry.count = entry.count.saturating_sub(1);
        }
        // Beyond the listed names: trust the event.
        (false, None) if entry.count as usize > entry.users.len() => entry.count -= 1,
        _ => {}
    }
    if entry.count == 0 {
        reactions.remove(at);
    }
}

/// A room as the UI holds it.
#[derive(Debug, Clone)]
pub struct RoomView {
    pub id: RoomId,
    pub topic: String,
    pub role: Option<Role>,
    pub members_count: u32,
    pub lines: VecDeque<Line>,
    /// Messages that arrived while another room was shown.
    pub unread: usize,
    /// Of those, the ones that name the member.
    pub mentions: usize,
    pub pins: Vec<PinnedNote>,
    pub members: Vec<MemberInfo>,
    /// Lines scrolled up from the newest (0: following the newest).
    pub scroll: usize,
    /// The oldest seq shown, and whether the server holds older ones.
    pub oldest: Option<Seq>,
    pub more_history: bool,
    pub loading_older: bool,
    /// Receiving it on this connection.
    pub joined: bool,
}

impl RoomView {
    fn new(id: RoomId) -> RoomView {
        RoomView {
            id,
            topic: String::new(),
            role: None,
            members_count: 0,
            lines: VecDeque::new(),
            unread: 0,
            mentions: 0,
            pins: Vec::new(),
            members: Vec::new(),
            scroll: 0,
            oldest: None,
            more_history: true,
            loading_older: false,
            joined: false,
        }
    }

    fn newest_seq(&self) -> Option<Seq> {
        self.lines.iter().rev().find_map(|l| l.seq)
    }

    fn push(&mut self, line: Line) {
        // Shown once: a replay after a reconnect never doubles a line.
        if let (Some(seq), Some(newest)) = (line.seq, self.newest_seq()) {
            if seq <= newest {
                return;
            }
        }
        if self.oldest.is_none() {
            self.oldest = line.seq;
        }
        self.lines.push_back(line);
        if self.scroll > 0 {
            // Reading older lines: keep them still while new ones arrive.
            self.scroll += 1;
        }
        while self.lines.len() > KEEP_LINES {
            self.lines.pop_front();
            self.oldest = self.lines.iter().find_map(|l| l.seq);
            self.more_history = true;
        }
    }
}

/// Which side panel is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Panel {
    None,
    Pins,
    Members,
    Help,
}

pub struct App {
    pub me: UserId,
    pub rooms: BTreeMap<RoomId, RoomView>,
    pub active: Option<RoomId>,
    pub input: Input,
    pub connection: Connection,
    pub panel: Panel,
    /// The thread open in the shown room (its root message), if any: the
    /// timeline shows only it, and what is typed replies in it.
    pub thread: Option<Seq>,
    /// The last thing the UI has to tell (an error, a result), until the next.
    pub status: Option<String>,
    /// Rooms the server lists, for `/rooms` and completion.
    pub directory: Vec<RoomSummary>,
    /// Who is typing where, each until their indicator goes out by itself.
    pub typing: Vec<Typist>,
    /// The room the member last said they were typing in, and when.
    told_typing: Option<(RoomId, Instant)>,
    pub quit: bool,
}

/// Someone typing in a room, shown until `until` or until their message comes.
#[derive(Debug, Clone, PartialEq)]
pub struct Typist {
    pub room: RoomId,
    pub user: UserId,
    pub until: Instant,
}

/// The commands of the input line, with what they take, for `/help` and Tab.
pub const COMMANDS: &[(&str, &str)] = &[
    ("/join", "ROOM [INVITE] — join a room (or switch to it), with an invite code if it takes one"),
    ("/leave", "[ROOM] — leave the room"),
    ("/create", "ROOM [TOPIC] — create a room you own"),
    ("/rooms", "— list the rooms you can see"),
    ("/reply", "SEQ TEXT — reply in the thread of message SEQ"),
    ("/thread", "SEQ — show message SEQ's thread and reply in it (Esc closes)"),
    ("/pin", "SEQ | TEXT — pin message SEQ, or a note (moderators)"),
    ("/unpin", "ID — remove pin ID (moderators)"),
    ("/pins", "— show the pinned notes (F2)"),
    ("/react", "SEQ EMOJI — react to message SEQ (/unreact takes it back)"),
    ("/edit", "SEQ TEXT — edit your message SEQ"),
    ("/delete", "SEQ — delete message SEQ (yours; any, as a moderator)"),
    ("/ack", "— acknowledge the room's pinned Rules"),
    ("/request", "ROOM [NOTE] — ask to join an approval room"),
    ("/requests", "— the room's join requests (welcomers)"),
    ("/approve", "USER — let USER in (welcomers)"),
    ("/deny", "USER [REASON] — turn USER's request down (welcomers)"),
    ("/invite", "[USES] — make an invite code (welcomers)"),
    ("/revoke", "CODE — revoke an invite, by its code or id (its maker, moderators)"),
    ("/role", "USER ROLE — member, welcomer or moderator (moderators)"),
    ("/kick", "USER [REASON] — remove USER (moderators)"),
    ("/ban", "USER [REASON] — remove USER and keep them out (moderators)"),
    ("/unban", "USER — lift a ban (moderators)"),
    ("/mute", "USER MINUTES [REASON] — stop USER posting for a while (moderators)"),
    ("/held", "— newcomers' posts held for a look (welcomers)"),
    ("/release", "USER — post USER's oldest held message in their name (welcomers)"),
    ("/drop", "USER [REASON] — drop USER's oldest held message (welcomers)"),
    ("/unmute", "USER — lift a mute (moderators)"),
    ("/slowmode", "SECS — seconds between one member's messages, 0 off (moderators)"),
    ("/topic", "TEXT — set the room's topic (moderators)"),
    ("/modlog", "— the moderation log (moderators)"),
    ("/stats", "— the room's health, last 7 and 30 days (moderators)"),
    ("/prompt", "MINUTES TEXT — the server posts TEXT then (moderators; weekly: hearth prompt --weekly)"),
    ("/members", "— show the members (F3)"),
    ("/help", "— keys and commands (F1)"),
    ("/quit", "— leave the UI (Ctrl-C)"),
];

/// Commands of the protocol that this server build does not serve yet; the UI
/// says so instead of pretending.
const NOT_YET: &[&str] = &[];

impl App {
    pub fn new(me: UserId) -> App {
        App {
            me,
            rooms: BTreeMap::new(),
            active: None,
            input: Input::default(),
            connection: Connection::Connecting,
            panel: Panel::None,
            thread: None,
            status: None,
            directory: Vec::new(),
            typing: Vec::new(),
            told_typing: None,
            quit: false,
        }
    }

    /// Who is typing in the room shown, in the order they started.
    pub fn typing_here(&self) -> Vec<&UserId> {
        self.typing.iter().filter(|t| self.active.as_ref() == Some(&t.room)).map(|t| &t.user).collect()
    }

    /// When the next typing indicator goes out, if any shows.
    pub fn next_typing_expiry(&self) -> Option<Instant> {
        self.typing.iter().map(|t| t.until).min()
    }

    /// Puts out the typing indicators not repeated in time.
    pub fn expire_typing(&mut self, now: Instant) {
        self.typing.retain(|t| t.until > now);
    }

    /// After a key that changed the input: the member is writing a message
    /// (not a command) in the room shown, so tell it, once in a while.
    fn typing_action(&mut self, key: &KeyEvent) -> Vec<Action> {
        // Offline, the network task would only answer "not connected".
        let writes = matches!(key.code, KeyCode::Char(_))
            && !key.modifiers.intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
            && !self.input.text().starts_with('/')
            && self.connection == Connection::Online;
        let Some(room) = self.active.clone().filter(|r| writes && self.rooms.get(r).is_some_and(|v| v.joined)) else {
            return Vec::new();
        };
        let now = Instant::now();
        if let Some((last, at)) = &self.told_typing {
            if *last == room && now.duration_since(*at) < TYPING_EVERY {
                return Vec::new();
            }
        }
        self.told_typing = Some((room.clone(), now));
        vec![Action::Typing(room)]
    }

    pub fn active_room(&self) -> Option<&RoomView> {
        self.active.as_ref().and_then(|r| self.rooms.get(r))
    }

    fn active_mut(&mut self) -> Option<&mut RoomView> {
        let id = self.active.clone()?;
        self.rooms.get_mut(&id)
    }

    fn room_mut(&mut self, id: &RoomId) -> &mut RoomView {
        self.rooms.entry(id.clone()).or_insert_with(|| RoomView::new(id.clone()))
    }

    fn show(&mut self, id: &RoomId) {
        if self.active.as_ref() != Some(id) {
            self.thread = None;
        }
        self.active = Some(id.clone());
        let room = self.room_mut(id);
        room.unread = 0;
        room.mentions = 0;
    }

    fn says(&mut self, text: impl Into<String>) {
        self.status = Some(text.into());
    }

    /// Whether `text` names the member (`@name` or the name as a word).
    fn mentions_me(&self, text: &str) -> bool {
        let me = self.me.as_str();
        text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.' || c == '-'))
            .any(|word| word.eq_ignore_ascii_case(me))
    }

    // ---- from the server ---------------------------------------------------

    pub fn on_net(&mut self, net: Net) {
        match net {
            Net::Me(user) => self.me = user,
            Net::Connection(connection) => {
                if connection == Connection::Online && self.connection != Connection::Online {
                    self.status = None;
                }
                self.connection = connection;
            }
            Net::Event(event) => self.on_event(event),
            Net::Joined(joined) => {
                let id = joined.room.room.clone();
                let room = self.room_mut(&id);
                room.topic = joined.room.topic.to_string();
                room.role = Some(joined.role);
                room.members_count = joined.room.members;
                room.pins = joined.pins;
                room.joined = true;
                if let Some(welcome) = joined.room.welcome.as_ref().filter(|_| joined.first_join) {
                    room.push(Line { seq: None, ts: Millis(0), kind: LineKind::Notice(format!("welcome: {welcome}")) });
                }
                if joined.resume == ResumeMode::Truncated {
                    let at = joined.room.head;
                    room.push(Line {
                        seq: None,
                        ts: Millis(0),
                        kind: LineKind::Notice(format!("some events before #{} are no longer held", at.0 + 1)),
                    });
                }
                if self.active.is_none() {
                    self.show(&id);
                }
            }
            Net::History(page) => self.on_history(page),
            Net::Members { room, members } => {
                let view = self.room_mut(&room);
                view.members_count = members.len() as u32;
                view.members = members;
            }
            Net::Rooms { rooms, asked: false } => self.directory = rooms,
            Net::Rooms { rooms, asked: true } => {
                let listing: Vec<String> = rooms
                    .iter()
                    .map(|r| format!("{}{} ({}/{})", r.room, if r.role.is_some() { "*" } else { "" }, r.members, r.cap))
                    .collect();
                self.says(if listing.is_empty() {
                    "no rooms yet: /create NAME".to_string()
                } else {
                    format!("rooms (* yours): {}", listing.join(", "))
                });
                self.directory = rooms;
            }
            Net::Resumed { truncated } => {
                for id in &truncated {
                    self.room_mut(id).push(Line {
                        seq: None,
                        ts: Millis(0),
                        kind: LineKind::Notice("reconnected; some events missed meanwhile are no longer held".into()),
                    });
                }
                self.says("reconnected");
            }
            Net::Failed { what, error } => {
                let hint = next_step(&error);
                self.says(format!("{what}: {error}{hint}"))
            }
            Net::Said(text) => self.says(text),
        }
    }

    /// The line `event` shows as, if any; `live` events may mention the member
    /// (history does not count as news).
    fn line_of(&self, event: &Event, live: bool) -> Option<Line> {
        Some(match event {
            Event::Message(m) => Line {
                seq: Some(m.seq),
                ts: m.ts,
                kind: LineKind::Message {
                    from: m.from.clone(),
                    // History shows a message as it is now (edited, deleted).
                    text: match m.state.as_deref() {
                        Some(state) if state.deleted => "(deleted)".to_string(),
                        Some(state) if state.edited_at.is_some() => format!("{} (edited)", m.text),
                        _ => m.text.to_string(),
                    },
                    thread: m.thread,
                    mentions_me: live && m.from != self.me && self.mentions_me(m.text.as_str()),
                    replies: m.state.as_deref().map_or(0, |s| s.replies),
                    last_reply: m.state.as_deref().and_then(|s| s.last_reply),
                    reactions: m.state.as_deref().map(|s| s.reactions.clone()).unwrap_or_default(),
                },
            },
            other => {
                Line { seq: other.seq(), ts: other.ts().unwrap_or(Millis(0)), kind: LineKind::Notice(notice(other)?) }
            }
        })
    }

    fn on_event(&mut self, event: Event) {
        let Some(id) = event.room().cloned() else { return };
        // What changes a message already shown, or only says something.
        match &event {
            Event::Edit(e) => {
                // A pin of the message shows its text as it is now too.
                let text = e.text.as_str();
                let mut cut = text.len().min(hearth_protocol::limits::MAX_NOTE_BYTES);
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                let note = hearth_protocol::Note::new(&text[..cut]).expect("cut to a note's length");
                for pin in self.room_mut(&id).pins.iter_mut().filter(|p| p.seq == Some(e.target)) {
                    pin.text = note.clone();
                }
                return self.rewrite(&id, e.target, format!("{} (edited)", e.text));
            }
            Event::Delete(e) => {
                for pin in self.room_mut(&id).pins.iter_mut().filter(|p| p.seq == Some(e.target)) {
                    pin.text = hearth_protocol::Note::new("(deleted)").expect("a valid note");
                    pin.deleted = true;
                }
                return self.rewrite(&id, e.target, "(deleted)".to_string());
            }
            Event::Reaction(r) => {
                let view = self.room_mut(&id);
                for line in view.lines.iter_mut().filter(|l| l.seq == Some(r.target)) {
                    if let LineKind::Message { reactions, .. } = &mut line.kind {
                        toggle_reaction(reactions, &r.emoji, &r.from, r.on);
                    }
                }
                if r.on && r.from != self.me {
                    self.says(format!("{} reacted {} to #{}", r.from, r.emoji, r.target.0));
                }
                return;
            }
            Event::Typing(t) => {
                self.typing.retain(|x| !(x.room == id && x.user == t.user));
                self.typing.push(Typist { room: id, user: t.user.clone(), until: Instant::now() + TYPING_SHOWN });
                return;
            }
            // Their message is what they were typing.
            Event::Message(m) => self.typing.retain(|x| !(x.room == id && x.user == m.from)),
            Event::Presence(p) => {
                let room = self.room_mut(&id);
                for member in room.members.iter_mut() {
                    if p.online.contains(&member.user) {
                        member.online = true;
                    } else if p.offline.contains(&member.user) {
                        member.online = false;
                    }
                }
                return;
            }
            Event::JoinDecision(d) => {
                let outcome = if d.approved {
                    format!("{} let you into {}: /join {}", d.by, d.room, d.room)
                } else {
                    format!("{} turned down your request to join {}: {}", d.by, d.room, d.reason)
                };
                return self.says(outcome);
            }
            _ => {}
        }
        let me = self.me.clone();
        let Some(line) = self.line_of(&event, true) else { return };
        let shown = self.active.as_ref() == Some(&id);
        let room = self.room_mut(&id);
        match &event {
            Event::Pin(p) => {
                if let Some(old) = p.replaces {
                    room.pins.retain(|x| x.pin != old);
                }
                room.pins.retain(|x| x.pin != p.pin.pin);
                room.pins.push(p.pin.clone());
                room.pins.sort_by_key(|x| x.pin);
            }
            Event::Unpin(u) => room.pins.retain(|x| x.pin != u.pin),
            Event::MemberJoined(j) => {
                room.members_count += 1;
                if !room.members.iter().any(|m| m.user == j.from) {
                    room.members.push(MemberInfo {
                        user: j.from.clone(),
                        role: j.role,
                        joined_at: j.ts,
                        role_expires_at: None,
                        online: true,
                        title: None,
                        muted_until: None,
                        newcomer: true,
                        rules_acked: None,
                    });
                }
            }
            Event::MemberLeft(l) => {
                room.members_count = room.members_count.saturating_sub(1);
                room.members.retain(|m| m.user != l.user);
                if l.user == me {
                    room.joined = false;
                    room.role = None;
                }
            }
            _ => {}
        }
        let is_message = matches!(line.kind, LineKind::Message { .. });
        let mentions_me = matches!(line.kind, LineKind::Message { mentions_me: true, .. });
        let reply = match &line.kind {
            LineKind::Message { thread: Some(root), .. } => line.seq.map(|seq| (*root, seq)),
            _ => None,
        };
        let before = room.lines.len();
        room.push(line);
        let added = room.lines.len() != before;
        if let Some((root, seq)) = reply.filter(|_| added) {
            for line in room.lines.iter_mut().filter(|l| l.seq == Some(root)) {
                if let LineKind::Message { replies, last_reply, .. } = &mut line.kind {
                    if last_reply.is_none_or(|last| last < seq) {
                        *replies += 1;
                        *last_reply = Some(seq);
                    }
                }
            }
        }
        if added && is_message && !shown {
            room.unread += 1;
            if mentions_me {
                room.mentions += 1;
            }
        }
    }

    fn on_history(&mut self, page: HistoryPage) {
        let oldest_shown = self.room_mut(&page.room).oldest;
        // Older than what is shown, oldest first: put them in front, in order.
        let older: Vec<Line> = page
            .events
            .iter()
            .filter(|e| match (e.seq(), oldest_shown) {
                (Some(seq), Some(oldest)) => seq < oldest,
                _ => true,
            })
            .filter_map(|e| self.line_of(e, false))
            .collect();
        let room = self.room_mut(&page.room);
        room.loading_older = false;
        if let Some(first) = page.events.first().and_then(Event::seq) {
            room.oldest = Some(oldest_shown.map_or(first, |o| o.min(first)));
        }
        room.more_history = page.more;
        if room.scroll > 0 {
            room.scroll += older.len();
        }
        for line in older.into_iter().rev() {
            room.lines.push_front(line);
        }
    }

    // ---- from the keyboard -------------------------------------------------

    /// Handles one key; returns what to ask the server for.
    pub fn on_key(&mut self, key: KeyEvent, page_lines: usize) -> Vec<Action> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        match key.code {
            KeyCode::Char('c') | KeyCode::Char('d') if ctrl => {
                self.quit = true;
                Vec::new()
            }
            KeyCode::F(1) => self.toggle(Panel::Help),
            KeyCode::F(2) => self.toggle(Panel::Pins),
            KeyCode::F(3) => {
                let mut actions = self.toggle(Panel::Members);
                if self.panel == Panel::Members {
                    actions.extend(self.active.clone().map(Action::Members));
                }
                actions
            }
            KeyCode::Esc => {
                // The innermost first: a panel, then a thread.
                if self.panel != Panel::None {
                    self.panel = Panel::None;
                } else {
                    self.thread = None;
                }
                self.status = None;
                Vec::new()
            }
            KeyCode::Char('n') if ctrl => self.cycle(1),
            KeyCode::Char('p') if ctrl => self.cycle(-1),
            KeyCode::Down if alt => self.cycle(1),
            KeyCode::Up if alt => self.cycle(-1),
            KeyCode::Char(d @ '1'..='9') if alt => {
                let index = d as usize - '1' as usize;
                if let Some(id) = self.rooms.keys().nth(index).cloned() {
                    self.show(&id);
                }
                Vec::new()
            }
            KeyCode::PageUp => self.scroll_by(page_lines as isize),
            KeyCode::PageDown => self.scroll_by(-(page_lines as isize)),
            KeyCode::Home if self.input.is_empty() => self.scroll_by(isize::MAX / 2),
            KeyCode::End if self.input.is_empty() => self.scroll_by(isize::MIN / 2),
            KeyCode::Enter => {
                let line = self.input.submit();
                self.submit(line.trim())
            }
            KeyCode::Tab => {
                self.complete();
                Vec::new()
            }
            _ => {
                self.input.edit(key);
                self.typing_action(&key)
            }
        }
    }

    fn toggle(&mut self, panel: Panel) -> Vec<Action> {
        self.panel = if self.panel == panel { Panel::None } else { panel };
        Vec::new()
    }

    fn cycle(&mut self, step: isize) -> Vec<Action> {
        let ids: Vec<RoomId> = self.rooms.keys().cloned().collect();
        if ids.is_empty() {
            return Vec::new();
        }
        let at = self.active.as_ref().and_then(|a| ids.iter().position(|r| r == a)).unwrap_or(0) as isize;
        let next = (at + step).rem_euclid(ids.len() as isize) as usize;
        self.show(&ids[next]);
        Vec::new()
    }

    /// Scrolls the shown room by `lines` (up when positive); reaching the top
    /// asks for the page before it.
    fn scroll_by(&mut self, lines: isize) -> Vec<Action> {
        let Some(room) = self.active_mut() else { return Vec::new() };
        let max = room.lines.len().saturating_sub(1);
        room.scroll = (room.scroll as isize).saturating_add(lines).clamp(0, max as isize) as usize;
        if room.scroll >= max && room.more_history && !room.loading_older {
            if let Some(before) = room.oldest {
                room.loading_older = true;
                return vec![Action::Older { room: room.id.clone(), before }];
            }
        }
        Vec::new()
    }

    fn submit(&mut self, line: &str) -> Vec<Action> {
        if line.is_empty() {
            return Vec::new();
        }
        if let Some(command) = line.strip_prefix('/') {
            if !command.starts_with('/') {
                return self.command(line);
            }
        }
        // `//text` sends `/text`.
        let text = line.strip_prefix('/').filter(|t| t.starts_with('/')).unwrap_or(line);
        match self.active.clone() {
            Some(room) => vec![Action::Send { room, text: text.to_string(), thread: self.thread }],
            None => {
                self.says("no room open: /join ROOM, /create ROOM, or /rooms to see them");
                Vec::new()
            }
        }
    }

    fn command(&mut self, line: &str) -> Vec<Action> {
        let mut words = line.splitn(2, char::is_whitespace);
        let name = words.next().unwrap_or_default();
        let rest = words.next().unwrap_or_default().trim();
        let room_arg = |app: &mut App, arg: &str| -> Option<RoomId> {
            if arg.is_empty() {
                let active = app.active.clone();
                if active.is_none() {
                    app.says(format!("{name}: which room? open one first"));
                }
                return active;
            }
            match RoomId::new(arg.trim_start_matches('#')) {
                Ok(room) => Some(room),
                Err(error) => {
                    app.says(format!("{name}: {error}"));
                    None
                }
            }
        };
        match name {
            "/join" => {
                let mut parts = rest.split_whitespace();
                let Some(room) = room_arg(self, parts.next().unwrap_or_default()) else { return Vec::new() };
                let known = self.rooms.get(&room).is_some_and(|r| r.joined);
                self.show(&room);
                match parts.next() {
                    Some(code) if !known => vec![Action::JoinInvited { room, code: code.to_string() }],
                    _ if known => Vec::new(),
                    _ => vec![Action::Join(room)],
                }
            }
            "/leave" => room_arg(self, rest).map(Action::Leave).into_iter().collect(),
            "/create" => {
                let mut parts = rest.splitn(2, char::is_whitespace);
                let Some(room) = room_arg(self, parts.next().unwrap_or_default()).filter(|_| !rest.is_empty()) else {
                    self.says("/create ROOM [TOPIC]");
                    return Vec::new();
                };
                self.show(&room);
                vec![Action::Create { room, topic: parts.next().unwrap_or_default().trim().to_string() }]
            }
            "/rooms" => vec![Action::ListRooms],
            "/reply" => {
                let mut parts = rest.splitn(2, char::is_whitespace);
                let root = parts.next().and_then(|s| s.trim_start_matches('#').parse::<u64>().ok());
                let text = parts.next().unwrap_or_default().trim();
                match (root, text.is_empty(), self.active.clone()) {
                    (Some(root), false, Some(room)) => {
                        vec![Action::Send { room, text: text.to_string(), thread: Some(Seq(root)) }]
                    }
                    _ => {
                        self.says("/reply SEQ TEXT — in the open room");
                        Vec::new()
                    }
                }
            }
            "/thread" => {
                let root = rest.trim_start_matches('#').parse::<u64>().ok().map(Seq);
                let is_message = |app: &App, root: Seq| {
                    app.active_room().is_some_and(|r| {
                        r.lines.iter().any(|l| l.seq == Some(root) && matches!(l.kind, LineKind::Message { .. }))
                    })
                };
                match root {
                    Some(root) if is_message(self, root) => {
                        self.thread = Some(root);
                        self.panel = Panel::None;
                    }
                    Some(root) => self.says(format!("/thread: no message #{} on screen here", root.0)),
                    None => self.says("/thread SEQ — the number of a message shown"),
                }
                Vec::new()
            }
            "/pin" => {
                let Some(room) = self.active.clone() else {
                    self.says("/pin: open a room first");
                    return Vec::new();
                };
                if rest.is_empty() {
                    self.says("/pin SEQ, or /pin TEXT for a free note");
                    return Vec::new();
                }
                match rest.trim_start_matches('#').parse::<u64>() {
                    Ok(seq) => vec![Action::Pin { room, seq: Some(Seq(seq)), note: None, title: None }],
                    Err(_) => vec![Action::Pin { room, seq: None, note: Some(rest.to_string()), title: None }],
                }
            }
            "/react" | "/unreact" | "/edit" | "/delete" | "/ack" | "/requests" | "/approve" | "/deny" | "/invite"
            | "/role" | "/kick" | "/ban" | "/unban" | "/mute" | "/unmute" | "/slowmode" | "/topic" | "/modlog"
            | "/stats" | "/prompt" | "/held" | "/release" | "/drop" | "/revoke" => {
                let Some(room) = self.active.clone() else {
                    self.says(format!("{name}: open a room first"));
                    return Vec::new();
                };
                match self.community(name, rest, room) {
                    Ok(action) => vec![action],
                    Err(usage) => {
                        self.says(format!("{name} {usage}"));
                        Vec::new()
                    }
                }
            }
            "/request" => {
                let mut parts = rest.splitn(2, char::is_whitespace);
                let Some(room) = room_arg(self, parts.next().unwrap_or_default()).filter(|_| !rest.is_empty()) else {
                    self.says("/request ROOM [NOTE] — ask to join an approval room");
                    return Vec::new();
                };
                match hearth_protocol::Note::new(parts.next().unwrap_or_default().trim()) {
                    Ok(note) => vec![Action::Request {
                        what: format!("asked to join {room}"),
                        op: hearth_protocol::ops::RequestJoin { room, note }.into(),
                    }],
                    Err(error) => {
                        self.says(format!("/request: {error}"));
                        Vec::new()
                    }
                }
            }
            "/unpin" => match (rest.parse::<u64>(), self.active.clone()) {
                (Ok(pin), Some(room)) => vec![Action::Unpin { room, pin: PinId(pin) }],
                _ => {
                    self.says("/unpin ID — the pin's number, shown in the pins panel (F2)");
                    Vec::new()
                }
            },
            "/pins" => self.toggle(Panel::Pins),
            "/members" => {
                self.panel = Panel::Members;
                self.active.clone().map(Action::Members).into_iter().collect()
            }
            "/help" if rest.is_empty() => self.toggle(Panel::Help),
            "/help" => {
                let wanted = format!("/{}", rest.trim_start_matches('/'));
                match COMMANDS.iter().find(|(c, _)| *c == wanted) {
                    Some((c, what)) => self.says(format!("{c} {what}")),
                    None => self.says(format!("{wanted}: no such command; /help lists them")),
                }
                Vec::new()
            }
            "/quit" | "/exit" => {
                self.quit = true;
                Vec::new()
            }
            other if NOT_YET.contains(&other) => {
                self.says(format!("{other}: this server does not offer it yet"));
                Vec::new()
            }
            other => {
                self.says(format!("{other}: no such command; /help lists them"));
                Vec::new()
            }
        }
    }

    /// A community command in `room`, or its usage when `rest` does not fit.
    fn community(&self, name: &str, rest: &str, room: RoomId) -> Result<Action, String> {
        use hearth_protocol::ops::*;
        use hearth_protocol::{Emoji, ShortText, Text, UserId};
        let usage = || COMMANDS.iter().find(|(n, _)| *n == name).map_or(String::new(), |(_, u)| u.to_string());
        let mut parts = rest.split_whitespace();
        let mut word = || parts.next().ok_or_else(usage);
        let seq = |w: &str| w.trim_start_matches('#').parse::<u64>().map(Seq).map_err(|_| usage());
        let user = |w: &str| UserId::new(w).map_err(|e| e.to_string());
        let tail = |skip: usize| rest.split_whitespace().skip(skip).collect::<Vec<_>>().join(" ");
        let short = |t: String| ShortText::new(t).map_err(|e| e.to_string());
        let request = |what: String, op: hearth_protocol::Op| Ok(Action::Request { what, op });
        match name {
            "/react" | "/unreact" => {
                let target = seq(word()?)?;
                let emoji = Emoji::new(word()?).map_err(|e| e.to_string())?;
                let on = name == "/react";
                request(format!("reaction on #{}", target.0), React { room, target, emoji, on }.into())
            }
            "/edit" => {
                let target = seq(word()?)?;
                let text = Text::new(tail(1)).map_err(|e| e.to_string())?;
                request(format!("edited #{}", target.0), Edit { room, target, text }.into())
            }
            "/delete" => {
                let target = seq(word()?)?;
                request(format!("deleted #{}", target.0), Delete { room, target }.into())
            }
            "/ack" => {
                let rules = self.rooms.get(&room).and_then(|r| {
                    r.pins.iter().find(|p| p.title.as_ref().is_some_and(|t| t.as_str().eq_ignore_ascii_case("rules")))
                });
                let version = rules.map(|r| r.version).ok_or("— this room has no pinned Rules")?;
                request(format!("acknowledged the rules (version {version})"), AckRules { room, version }.into())
            }
            "/requests" => Ok(Action::Requests(room)),
            "/held" => Ok(Action::Held(room)),
            "/revoke" => {
                let code = word()?.to_string();
                request(format!("revoked invite {code}"), RevokeInvite { room, code }.into())
            }
            "/release" | "/drop" => {
                let user = user(word()?)?;
                let reason = short(tail(1))?;
                Ok(Action::Release { room, user, approve: name == "/release", reason })
            }
            "/stats" => Ok(Action::Stats(room)),
            "/prompt" => {
                let minutes: u64 = word()?.parse().map_err(|_| usage())?;
                let text = Text::new(tail(1)).map_err(|e| e.to_string())?;
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                let at = hearth_protocol::Millis(now.as_millis() as u64 + minutes * 60_000);
                request(
                    format!("prompt scheduled in {minutes} min"),
                    SchedulePrompt { room, text, at, weekly: false }.into(),
                )
            }
            "/modlog" => Ok(Action::ModLog(room)),
            "/approve" => {
                let who = user(word()?)?;
                let reason = ShortText::default();
                request(format!("let {who} in"), DecideJoin { room, user: who, approve: true, reason }.into())
            }
            "/deny" => {
                let who = user(word()?)?;
                let reason = short(tail(1))?;
                request(format!("turned {who} down"), DecideJoin { room, user: who, approve: false, reason }.into())
            }
            "/invite" => {
                let uses = match parts.next() {
                    Some(n) => Some(n.parse().map_err(|_| usage())?),
                    None => None,
                };
                Ok(Action::Invite { room, uses })
            }
            "/role" => {
                let who = user(word()?)?;
                let role = hearth_protocol::Role::parse(word()?).ok_or_else(usage)?;
                let op = SetRole { room, user: who.clone(), role, expires_at: None, title: None };
                request(format!("{who} is a {}", role.as_str()), op.into())
            }
            "/kick" | "/ban" => {
                let who = user(word()?)?;
                let reason = short(tail(1))?;
                if name == "/kick" {
                    request(format!("kicked {who}"), Kick { room, user: who, reason }.into())
                } else {
                    request(format!("banned {who}"), Ban { room, user: who, reason, duration_secs: None }.into())
                }
            }
            "/unban" => {
                let who = user(word()?)?;
                request(format!("unbanned {who}"), Unban { room, user: who }.into())
            }
            "/mute" => {
                let who = user(word()?)?;
                let minutes: u32 = word()?.parse().map_err(|_| usage())?;
                let reason = short(tail(2))?;
                let op = Mute { room, user: who.clone(), duration_secs: minutes.saturating_mul(60), reason };
                request(format!("muted {who} for {minutes} min"), op.into())
            }
            "/unmute" => {
                let who = user(word()?)?;
                request(format!("unmuted {who}"), Unmute { room, user: who }.into())
            }
            "/slowmode" => {
                let secs: u32 = word()?.parse().map_err(|_| usage())?;
                let settings = RoomSettings { slow_mode_secs: Some(secs), ..RoomSettings::default() };
                request(format!("slow mode {secs} s"), SetRoom { room, settings }.into())
            }
            "/topic" => {
                let settings = RoomSettings { topic: Some(short(rest.to_string())?), ..RoomSettings::default() };
                request("topic set".into(), SetRoom { room, settings }.into())
            }
            _ => Err(usage()),
        }
    }

    /// Shows message `seq` of `room` with `text` from now on.
    fn rewrite(&mut self, room: &RoomId, seq: Seq, text: String) {
        let view = self.room_mut(room);
        for line in view.lines.iter_mut().filter(|l| l.seq == Some(seq)) {
            if let LineKind::Message { text: shown, .. } = &mut line.kind {
                *shown = text.clone();
            }
        }
    }

    /// Completes the word before the cursor: a command, a room, or a member.
    fn complete(&mut self) {
        let word = self.input.word_before_cursor().to_string();
        if word.is_empty() {
            return;
        }
        let candidates: Vec<String> = if word.starts_with('/') && self.input.cursor_word_is_first() {
            COMMANDS.iter().map(|(c, _)| c.to_string()).collect()
        } else if let Some(room) = word.strip_prefix('#') {
            let _ = room;
            self.rooms.keys().chain(self.directory.iter().map(|r| &r.room)).map(|r| format!("#{r}")).collect()
        } else if self.input.text().starts_with("/join ") || self.input.text().starts_with("/leave ") {
            self.rooms.keys().chain(self.directory.iter().map(|r| &r.room)).map(|r| r.to_string()).collect()
        } else {
            let members = self.active_room().map(|r| r.members.iter().map(|m| m.user.to_string()).collect::<Vec<_>>());
            let mut names = members.unwrap_or_default();
            if let Some(room) = self.active_room() {
                for line in room.lines.iter().rev().take(200) {
                    if let LineKind::Message { from, .. } = &line.kind {
                        names.push(from.to_string());
                    }
                }
            }
            names
        };
        let mut matches: Vec<String> = candidates.into_iter().filter(|c| c.starts_with(&word) && c != &word).collect();
        matches.sort();
        matches.dedup();
        match matches.as_slice() {
            [] => {}
            [only] => self.input.replace_word_before_cursor(&format!("{only} ")),
            many => {
                let common = common_prefix(many);
                if common.len() > word.len() {
                    self.input.replace_word_before_cursor(&common);
                }
                self.says(many.join("  "));
            }
        }
    }
}

fn common_prefix(words: &[String]) -> String {
    let first = &words[0];
    let mut end = first.len();
    for word in &words[1..] {
        end = end.min(first.bytes().zip(word.bytes()).take_while(|(a, b)| a == b).count());
    }
    while !first.is_char_boundary(end) {
        end -= 1;
    }
    first[..end].to_string()
}

/// The line a non-message event shows as, if any.
fn notice(event: &Event) -> Option<String> {
    Some(match event {
        Event::MemberJoined(j) => format!("{} joined", j.from),
        Event::MemberLeft(l) => match l.reason {
            LeftReason::Left => format!("{} left", l.user),
            LeftReason::Kicked => format!("{} was removed by {}", l.user, l.from),
            LeftReason::Banned => format!("{} was banned by {}", l.user, l.from),
        },
        Event::Pin(p) => format!("{} pinned #{}: {}", p.from, p.pin.pin.0, p.pin.text),
        Event::Unpin(u) => format!("{} unpinned #{}", u.from, u.pin.0),
        Event::Truncated(t) => {
            format!("events #{}–#{} are no longer held by the server", t.after.0 + 1, t.next.0.saturating_sub(1))
        }
        Event::Moderation(m) => {
            let whom = m.user.as_ref().map(|u| format!(" {u}")).unwrap_or_default();
            let why = if m.reason.as_str().is_empty() { String::new() } else { format!(": {}", m.reason) };
            let what = match m.action {
                ModAction::Kick => "removed",
                ModAction::Ban => "banned",
                ModAction::Unban => "unbanned",
                ModAction::Mute => "muted",
                ModAction::Unmute => "unmuted",
                ModAction::Reject => "turned down",
                ModAction::Delete => "dropped a held post of",
                ModAction::CreateInvite => "made an invite",
                ModAction::RevokeInvite => "revoked an invite",
                _ => return None,
            };
            format!("{} {what}{whom}{why}", m.from)
        }
        Event::Role(r) => format!("{} made {} a {}", r.from, r.user, r.role.as_str()),
        Event::RoomUpdated(r) => format!("{} changed the room's settings", r.from),
        Event::JoinRequest(r) => {
            format!("{} asks to join: {} — /approve {} or /deny {}", r.from, r.note, r.from, r.from)
        }
        Event::Held(h) => {
            format!("held for a look: {}: {} — /release {} or /drop {} [REASON]", h.from, h.text, h.from, h.from)
        }
        Event::Arrived(a) => format!("{} arrived (first time in since being let in)", a.from),
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
