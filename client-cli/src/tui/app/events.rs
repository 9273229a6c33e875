//! What the server says changes what the UI shows: replies, events, history
//! pages — lines added or rewritten, pins, members, notices.

use tokio::time::Instant;

use hearth_protocol::event::LeftReason;
use hearth_protocol::event::ReactionCount;
use hearth_protocol::ops::{HistoryPage, MemberInfo, ResumeMode, Visibility};
use hearth_protocol::ops::{LockLevel, ModAction};
use hearth_protocol::{Emoji, Event, Millis, RoomId, Seq, UserId};

use super::*;

impl App {
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
            Net::ReadState(rooms) => {
                for entry in rooms {
                    let shown = self.active.as_ref() == Some(&entry.room);
                    let room = self.room_mut(&entry.room);
                    room.read = room.read.max(entry.seq);
                    if shown {
                        self.seen(&entry.room);
                    } else {
                        room.unread = entry.unread as usize;
                    }
                }
            }
            Net::Joined(joined) => {
                let id = joined.room.room.clone();
                let room = self.room_mut(&id);
                room.topic = joined.room.topic.to_string();
                room.direct.clone_from(&joined.room.direct);
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
                let asked = joined.room.visibility == Visibility::Direct && std::mem::take(&mut self.show_next_direct);
                if self.active.is_none() || asked {
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
            Net::Found { query, results, more } => {
                // An answer to an older search than the one shown is dropped.
                if self.found.query == query {
                    self.found = super::Found { query, results: Some(results), more };
                }
            }
        }
    }

    /// The line `event` shows as, if any; `live` events may mention the member
    /// (history does not count as news).
    pub(super) fn line_of(&self, event: &Event, live: bool) -> Option<Line> {
        Some(match event {
            Event::Message(m) => Line {
                seq: Some(m.seq),
                ts: m.ts,
                kind: LineKind::Message {
                    from: m.from.clone(),
                    // History shows a message as it is now (edited, deleted).
                    text: match (m.state.as_deref(), m.imported.as_deref()) {
                        (Some(state), _) if state.erased => "(erased)".to_string(),
                        (Some(state), _) if state.deleted => "(deleted)".to_string(),
                        (Some(state), _) if state.edited_at.is_some() => format!("{} (edited)", m.text),
                        // Brought from Discord: by whom and when, there.
                        (_, Some(imported)) => {
                            format!("[Discord: {}, {}] {}", imported.author, imported.at.date_time_utc(), m.text)
                        }
                        _ => m.text.to_string(),
                    },
                    thread: m.thread,
                    mentions_me: live && m.from != self.me && self.mentions_me(m),
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

    pub(super) fn on_event(&mut self, event: Event) {
        if let Event::Blocks(blocks) = &event {
            self.blocked = blocks.users.iter().cloned().collect();
            return;
        }
        let Some(id) = event.room().cloned() else { return };
        // A conversation someone started with this member, not open here yet.
        if let Event::DirectStarted(started) = &event
            && !self.rooms.get(&id).is_some_and(|r| r.joined)
        {
            let others: Vec<&str> = started.members.iter().filter(|m| **m != self.me).map(|m| m.as_str()).collect();
            return self.says(format!("{} started a conversation with you: /dm {}", started.from, others.join(" ")));
        }
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
            // Then said, below.
            // Kept by the room, from a former member: only the author changes.
            Event::Erased(e) if e.former_member => {
                let former = UserId::new(hearth_protocol::event::FORMER_MEMBER).expect("a valid name");
                let view = self.room_mut(&id);
                for line in view.lines.iter_mut().filter(|l| l.seq.is_some_and(|s| e.messages.contains(&s))) {
                    if let LineKind::Message { from, .. } = &mut line.kind {
                        *from = former.clone();
                    }
                }
            }
            Event::Erased(e) => {
                for &seq in &e.messages {
                    for pin in self.room_mut(&id).pins.iter_mut().filter(|p| p.seq == Some(seq)) {
                        pin.text = hearth_protocol::Note::new("(deleted)").expect("a valid note");
                        pin.deleted = true;
                    }
                    self.rewrite(&id, seq, "(erased)".to_string());
                }
                let view = self.room_mut(&id);
                for r in &e.reactions {
                    for line in view.lines.iter_mut().filter(|l| l.seq == Some(r.target)) {
                        if let LineKind::Message { reactions, .. } = &mut line.kind {
                            toggle_reaction(reactions, &r.emoji, &e.user, false);
                        }
                    }
                }
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
            Event::Read(r) => {
                // Read on this device or another: what came after is unread.
                let me = self.me.clone();
                let room = self.room_mut(&id);
                room.read = room.read.max(r.seq);
                let read = room.read;
                let after = |l: &&Line| {
                    l.seq.is_some_and(|s| s > read) && matches!(&l.kind, LineKind::Message { from, .. } if *from != me)
                };
                room.unread = room.lines.iter().filter(after).count();
                if room.unread == 0 {
                    room.mentions = 0;
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
            Event::Erased(e) if room.members.iter().any(|m| m.user == e.user) => {
                room.members_count = room.members_count.saturating_sub(1);
                room.members.retain(|m| m.user != e.user);
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
                if let LineKind::Message { replies, last_reply, .. } = &mut line.kind
                    && last_reply.is_none_or(|last| last < seq)
                {
                    *replies += 1;
                    *last_reply = Some(seq);
                }
            }
        }
        if added && is_message && !shown {
            room.unread += 1;
            if mentions_me {
                room.mentions += 1;
            }
        }
        if added && is_message && shown {
            self.seen(&id);
        }
    }

    pub(super) fn on_history(&mut self, page: HistoryPage) {
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
        if self.active.as_ref() == Some(&page.room) {
            self.seen(&page.room);
        }
    }

    /// Shows message `seq` of `room` with `text` from now on.
    pub(super) fn rewrite(&mut self, room: &RoomId, seq: Seq, text: String) {
        let view = self.room_mut(room);
        for line in view.lines.iter_mut().filter(|l| l.seq == Some(seq)) {
            if let LineKind::Message { text: shown, .. } = &mut line.kind {
                *shown = text.clone();
            }
        }
    }
}

/// The line a non-message event shows as, if any.
pub(super) fn notice(event: &Event) -> Option<String> {
    Some(match event {
        Event::MemberJoined(j) if j.lockdown.is_some() => {
            format!("{} joined — so many at once that the room takes no new members for now (a raid?)", j.from)
        }
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
            if let Some(outcome) = m.outcome {
                let how = serde_json::to_value(outcome).ok().and_then(|v| v.as_str().map(str::to_string));
                let how = how.unwrap_or_default();
                return Some(format!("{} resolved the reports on a message of{whom} ({how}){why}", m.from));
            }
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
                ModAction::Warn => "warned",
                ModAction::Unwarn => "lifted a warning of",
                _ => return None,
            };
            let then = match m.escalation {
                Some(e) => format!(" — and {} them (the room's limit of warnings)", escalation_word(e.action)),
                None => String::new(),
            };
            format!("{} {what}{whom}{why}{then}", m.from)
        }
        Event::Erased(e) if e.former_member => {
            format!("{} erased their account: what they wrote here stays, from a former member", e.user)
        }
        Event::Erased(e) => format!("{} erased their account: what they wrote here is gone", e.user),
        Event::Report(r) => format!(
            "{} reported #{} of {}: {} — /reports, /resolve {} dismiss|delete|warn|…",
            r.from, r.message.0, r.author, r.text, r.message.0
        ),
        Event::Role(r) => format!("{} made {} a {}", r.from, r.user, r.role.as_str()),
        Event::RoomUpdated(r) => match r.settings.lockdown {
            Some(l) if l.level == LockLevel::Off => format!("{} lifted the lockdown", r.from),
            Some(l) => {
                let what =
                    if l.level == LockLevel::ReadOnly { "read-only below moderator" } else { "closed to newcomers" };
                format!("{} locked the room down: {what}", r.from)
            }
            None => format!("{} changed the room's settings", r.from),
        },
        Event::JoinRequest(r) => {
            format!("{} asks to join: {} — /approve {} or /deny {}", r.from, r.note, r.from, r.from)
        }
        Event::Held(h) => {
            format!("held for a look: {}: {} — /release {} or /drop {} [REASON]", h.from, h.text, h.from, h.from)
        }
        Event::Arrived(a) => format!("{} arrived (first time in since being let in)", a.from),
        Event::DirectStarted(d) => {
            let others: Vec<&str> = d.members.iter().filter(|m| **m != d.from).map(|m| m.as_str()).collect();
            format!("{} started this conversation with {}", d.from, others.join(", "))
        }
        _ => return None,
    })
}

fn escalation_word(action: ModAction) -> &'static str {
    match action {
        ModAction::Kick => "removed",
        ModAction::Ban => "banned",
        _ => "muted",
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
