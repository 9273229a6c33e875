//! The input line's grammar: every slash command, what it takes, and the
//! actions it makes; completion of commands, rooms and names.

use std::time::Duration;

use hearth_protocol::{PinId, RoomId, Seq, UserId};

use crate::words;

/// The customary unit of `/mute` and `/prompt`: a plain number is minutes.
const MINUTE: Duration = Duration::from_secs(60);

use super::*;

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
    ("/mute", "USER TIME [REASON] — stop USER posting for TIME (10m, 2h; a number is minutes) (moderators)"),
    ("/held", "— newcomers' posts held for a look (welcomers)"),
    ("/release", "USER — post USER's oldest held message in their name (welcomers)"),
    ("/drop", "USER [REASON] — drop USER's oldest held message (welcomers)"),
    ("/unmute", "USER — lift a mute (moderators)"),
    (
        "/report",
        "SEQ [CATEGORY] [NOTE] — report message SEQ to the room's keepers (spam, harassment, hate, sexual, violence, self_harm, off_topic, other)",
    ),
    ("/reports", "— the open reports (welcomers and moderators; yours otherwise)"),
    (
        "/resolve",
        "SEQ dismiss|delete|warn|kick|ban [REASON], or SEQ mute TIME [REASON] — close the reports on SEQ, acting first",
    ),
    ("/warn", "USER REASON — warn USER; the room's escalation may follow (moderators)"),
    ("/unwarn", "USER ID — lift one of USER's warnings (moderators)"),
    ("/warnings", "[USER] — your live warnings, or (moderators) USER's"),
    ("/lockdown", "joins|readonly|off [TIME] — no new members, or only moderators post, for TIME (moderators)"),
    ("/filters", "— the room's word filter, numbered (moderators)"),
    (
        "/filter",
        "hold|refuse PHRASE — hold or refuse posts with PHRASE (moderators; patterns: hearth filter-add --regex)",
    ),
    ("/unfilter", "N — remove rule N of the word filter (moderators)"),
    ("/slowmode", "TIME — between one member's messages (30s, 2m; a number is seconds; 0 off) (moderators)"),
    ("/topic", "TEXT — set the room's topic (moderators)"),
    ("/modlog", "— the moderation log (moderators)"),
    ("/stats", "— the room's health, last 7 and 30 days (moderators)"),
    (
        "/prompt",
        "TIME TEXT — the server posts TEXT in TIME (2h, 1d; a number is minutes) (moderators; weekly: hearth prompt --weekly)",
    ),
    ("/dm", "USER... — write to members directly (a conversation of up to 10; started, or opened again)"),
    ("/block", "USER — no direct messages from USER; their messages are folded away"),
    ("/unblock", "USER — lift a block"),
    ("/notify", "everything|mentions|nothing — what the web page's notifications tell you of this room while away"),
    ("/search", "TEXT — find messages containing TEXT in your rooms, newest first (Esc closes)"),
    ("/members", "— show the members (F3)"),
    ("/help", "— keys and commands (F1)"),
    ("/quit", "— leave the UI (Ctrl-C)"),
];

/// A protocol word (`spam`, `mute`) as the type the wire names it by.
fn wire_word<T: serde::de::DeserializeOwned>(word: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(word.to_string())).ok()
}

/// Commands of the protocol that this server build does not serve yet; the UI
/// says so instead of pretending.
pub(super) const NOT_YET: &[&str] = &[];

/// What to do in this UI after a refusal whose message names the protocol's
/// operation, not the command: said after it.
pub(super) fn next_step(error: &str) -> &'static str {
    match error.split(':').next().unwrap_or_default() {
        "ack_required" => " — F2 shows the rules; /ack acknowledges them",
        "approval_required" => " — /request ROOM [NOTE] asks to join",
        "invite_required" => " — /join ROOM INVITE with a code from a welcomer",
        _ => "",
    }
}

impl App {
    pub(super) fn submit(&mut self, line: &str) -> Vec<Action> {
        if line.is_empty() {
            return Vec::new();
        }
        if let Some(command) = line.strip_prefix('/')
            && !command.starts_with('/')
        {
            return self.command(line);
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

    pub(super) fn command(&mut self, line: &str) -> Vec<Action> {
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
            | "/stats" | "/prompt" | "/held" | "/release" | "/drop" | "/revoke" | "/report" | "/reports"
            | "/resolve" | "/warn" | "/unwarn" | "/warnings" | "/lockdown" | "/filters" | "/filter" | "/unfilter" => {
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
            "/search" if rest.trim().is_empty() => {
                self.says("/search TEXT — find messages containing TEXT in your rooms");
                Vec::new()
            }
            "/search" => {
                let query = rest.trim().to_string();
                self.found = super::Found { query: query.clone(), results: None, more: false };
                self.panel = Panel::Search;
                vec![Action::Search { query }]
            }
            "/dm" => {
                let with: Result<Vec<UserId>, _> = rest.split_whitespace().map(UserId::new).collect();
                match with {
                    Ok(with) if !with.is_empty() => {
                        self.show_next_direct = true;
                        vec![Action::Direct { with }]
                    }
                    _ => {
                        self.says("/dm USER... — the names of members you share a room with");
                        Vec::new()
                    }
                }
            }
            "/block" | "/unblock" => match UserId::new(rest.trim()) {
                Ok(user) => {
                    let on = name == "/block";
                    let what = format!("{} {user}", if on { "blocked" } else { "unblocked" });
                    vec![Action::Request { what, op: hearth_protocol::ops::Block { user, on }.into() }]
                }
                Err(_) => {
                    self.says(format!("{name} USER — a member's name"));
                    Vec::new()
                }
            },
            "/notify" => {
                use hearth_protocol::ops::{PushLevel, SetPushLevel};
                let level = match rest.trim() {
                    "everything" => Some(PushLevel::Everything),
                    "mentions" => Some(PushLevel::Mentions),
                    "nothing" => Some(PushLevel::Nothing),
                    _ => None,
                };
                match (level, self.active.clone()) {
                    (Some(level), Some(room)) => {
                        let what = format!("notifications for {room}: {}", rest.trim());
                        vec![Action::Request { what, op: SetPushLevel { room, level }.into() }]
                    }
                    _ => {
                        self.says("/notify everything|mentions|nothing — in the room shown");
                        Vec::new()
                    }
                }
            }
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
    pub(super) fn community(&self, name: &str, rest: &str, room: RoomId) -> Result<Action, String> {
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
            "/report" => {
                let target = seq(word()?)?;
                let first = parts.next().unwrap_or_default();
                // The category is optional: a first word that is not one starts the note.
                let (category, note) = match wire_word::<ReportCategory>(first) {
                    Some(category) => (category, tail(2)),
                    None => (ReportCategory::Other, tail(1)),
                };
                let op = Report { room, seq: target, category, note: short(note)? };
                request(format!("reported #{} to the room's keepers", target.0), op.into())
            }
            "/reports" => Ok(Action::Reports(room)),
            "/resolve" => {
                let target = seq(word()?)?;
                let outcome = wire_word::<ReportOutcome>(word()?).ok_or_else(usage)?;
                let (duration_secs, reason) = if outcome == ReportOutcome::Mute {
                    let time = words::duration(word()?, Some(MINUTE))?;
                    (Some(u32::try_from(time.as_secs()).unwrap_or(u32::MAX)), tail(3))
                } else {
                    (None, tail(2))
                };
                let op = ResolveReport { room, seq: target, outcome, reason: short(reason)?, duration_secs };
                request(format!("resolved the reports on #{}", target.0), op.into())
            }
            "/warn" => {
                let who = user(word()?)?;
                let reason = tail(1);
                if reason.is_empty() {
                    return Err(usage());
                }
                request(format!("warned {who}"), Warn { room, user: who, reason: short(reason)? }.into())
            }
            "/unwarn" => {
                let who = user(word()?)?;
                let warning = seq(word()?)?;
                request(format!("lifted warning #{} of {who}", warning.0), Unwarn { room, user: who, warning }.into())
            }
            "/filters" => Ok(Action::Filter { room, add: None, remove: None }),
            "/filter" => {
                let action = match word()? {
                    "hold" => FilterAction::Hold,
                    "refuse" => FilterAction::Refuse,
                    _ => return Err(usage()),
                };
                let pattern = tail(1);
                if pattern.is_empty() {
                    return Err(usage());
                }
                let rule = WordFilter { pattern, regex: false, action, reason: ShortText::default() };
                Ok(Action::Filter { room, add: Some(rule), remove: None })
            }
            "/unfilter" => {
                let number = word()?.parse::<usize>().map_err(|_| usage())?;
                Ok(Action::Filter { room, add: None, remove: Some(number) })
            }
            "/lockdown" => {
                let level = match word()? {
                    "joins" => LockLevel::Joins,
                    "readonly" | "read_only" => LockLevel::ReadOnly,
                    "off" => LockLevel::Off,
                    _ => return Err(usage()),
                };
                let time = parts.next().map(|t| words::duration(t, Some(MINUTE))).transpose()?;
                let duration_secs = time.map(|t| u32::try_from(t.as_secs()).unwrap_or(u32::MAX));
                let said = match (level, time) {
                    (LockLevel::Off, _) => "lockdown lifted".to_string(),
                    (_, Some(time)) => format!("locked down for {}", words::say(time)),
                    (_, None) => "locked down until lifted".to_string(),
                };
                request(said, Lock { room, level, duration_secs }.into())
            }
            "/warnings" => {
                let who = parts.next().map(user).transpose()?;
                Ok(Action::Warnings { room, user: who })
            }
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
                let after = words::duration(word()?, Some(MINUTE))?;
                let text = Text::new(tail(1)).map_err(|e| e.to_string())?;
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                let at = hearth_protocol::Millis((now + after).as_millis() as u64);
                request(
                    format!("prompt scheduled in {}", words::say(after)),
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
                let time = words::duration(word()?, Some(MINUTE))?;
                let reason = short(tail(2))?;
                let duration_secs = u32::try_from(time.as_secs()).unwrap_or(u32::MAX);
                let op = Mute { room, user: who.clone(), duration_secs, reason };
                request(format!("muted {who} for {}", words::say(time)), op.into())
            }
            "/unmute" => {
                let who = user(word()?)?;
                request(format!("unmuted {who}"), Unmute { room, user: who }.into())
            }
            "/slowmode" => {
                let every = words::duration(word()?, Some(Duration::from_secs(1)))?;
                let secs = u32::try_from(every.as_secs()).unwrap_or(u32::MAX);
                let settings = RoomSettings { slow_mode_secs: Some(secs), ..RoomSettings::default() };
                let said = if secs == 0 {
                    "slow mode off".to_string()
                } else {
                    format!("slow mode: one message every {}", words::say(every))
                };
                request(said, SetRoom { room, settings }.into())
            }
            "/topic" => {
                let settings = RoomSettings { topic: Some(short(rest.to_string())?), ..RoomSettings::default() };
                request("topic set".into(), SetRoom { room, settings }.into())
            }
            _ => Err(usage()),
        }
    }

    /// Completes the word before the cursor: a command, a room, or a member.
    pub(super) fn complete(&mut self) {
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

pub(super) fn common_prefix(words: &[String]) -> String {
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
