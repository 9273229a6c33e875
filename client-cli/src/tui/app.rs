//! The terminal UI's state and what changes it: keys the member presses,
//! events and replies from the server, the connection coming and going. No
//! terminal and no socket here — the loop in `tui/mod.rs` feeds it and draws
//! it, and tests drive it directly. What the member asks for leaves as
//! [`Action`]s for the network task.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use hearth_protocol::event::ReactionCount;
use hearth_protocol::ops::{MemberInfo, PinnedNote, RoomSummary};
use hearth_protocol::{Millis, Role, RoomId, Seq, UserId};

use super::input::Input;

mod commands;
mod events;
mod wire;

pub use commands::COMMANDS;
use commands::next_step;
pub use events::toggle_reaction;
pub use wire::{Action, Connection, Net};

/// Lines each room keeps on screen; older ones are read again from history.
const KEEP_LINES: usize = 5_000;
/// Messages fetched per history page.
pub const PAGE: u16 = 50;
/// How long someone's typing indicator shows after the last one (PROTOCOL.md).
pub const TYPING_SHOWN: Duration = Duration::from_secs(5);
/// How often the member's own typing is told to a room: the server passes it
/// on at most this often anyway (PROTOCOL.md).
const TYPING_EVERY: Duration = Duration::from_secs(3);

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
    /// Read up to here, on any device of the member's.
    pub read: Seq,
    /// A direct conversation's members as it started (empty for a room).
    pub direct: Vec<UserId>,
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
            read: Seq(0),
            direct: Vec::new(),
        }
    }

    fn newest_seq(&self) -> Option<Seq> {
        self.lines.iter().rev().find_map(|l| l.seq)
    }

    fn push(&mut self, line: Line) {
        // Shown once: a replay after a reconnect never doubles a line.
        if let (Some(seq), Some(newest)) = (line.seq, self.newest_seq())
            && seq <= newest
        {
            return;
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
    Search,
}

/// The last `/search`: what was asked and what came back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Found {
    pub query: String,
    /// `None` while the answer is on its way.
    pub results: Option<Vec<hearth_protocol::ops::SearchResult>>,
    /// Older results were not looked for (the page was full).
    pub more: bool,
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
    /// The search panel's contents.
    pub found: Found,
    /// Members this one blocks: their messages are folded away.
    pub blocked: BTreeSet<UserId>,
    /// A `/dm` asked for: the conversation it joins is shown (its name is
    /// the server's to say).
    show_next_direct: bool,
    /// Who is typing where, each until their indicator goes out by itself.
    pub typing: Vec<Typist>,
    /// The room the member last said they were typing in, and when.
    told_typing: Option<(RoomId, Instant)>,
    /// What the UI asks of the network by itself (a room seen is marked
    /// read), taken with [`App::take_actions`].
    outbox: Vec<Action>,
    pub quit: bool,
}

/// Someone typing in a room, shown until `until` or until their message comes.
#[derive(Debug, Clone, PartialEq)]
pub struct Typist {
    pub room: RoomId,
    pub user: UserId,
    pub until: Instant,
}

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
            found: Found::default(),
            blocked: BTreeSet::new(),
            show_next_direct: false,
            typing: Vec::new(),
            told_typing: None,
            outbox: Vec::new(),
            quit: false,
        }
    }

    /// What a room is called here: a conversation by who else is in it.
    pub fn room_label(&self, room: &RoomView) -> String {
        if room.direct.is_empty() {
            return format!("#{}", room.id);
        }
        let others: Vec<&str> = room.direct.iter().filter(|u| **u != self.me).map(|u| u.as_str()).collect();
        format!("✉ {}", others.join(", "))
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
        if let Some((last, at)) = &self.told_typing
            && *last == room
            && now.duration_since(*at) < TYPING_EVERY
        {
            return Vec::new();
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
        self.seen(id);
    }

    /// The shown room is read up to its newest line: clear its count and
    /// tell every device.
    fn seen(&mut self, id: &RoomId) {
        let room = self.room_mut(id);
        room.unread = 0;
        room.mentions = 0;
        if let Some(newest) = room.newest_seq().filter(|s| *s > room.read && room.joined) {
            room.read = newest;
            self.outbox.push(Action::MarkRead { room: id.clone(), seq: newest });
        }
    }

    /// What the UI asked of the network by itself since last taken.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.outbox)
    }

    fn says(&mut self, text: impl Into<String>) {
        self.status = Some(text.into());
    }

    /// Whether the server says message `m` mentions the member (by name,
    /// as its thread root's author, or a moderator's `@room`).
    fn mentions_me(&self, m: &hearth_protocol::event::MessageEvent) -> bool {
        m.mentions_room || m.mentions.contains(&self.me)
    }

    // ---- from the server ---------------------------------------------------

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
        if room.scroll >= max
            && room.more_history
            && !room.loading_older
            && let Some(before) = room.oldest
        {
            room.loading_older = true;
            return vec![Action::Older { room: room.id.clone(), before }];
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests;
