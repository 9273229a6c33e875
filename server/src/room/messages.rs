//! What members do to messages after posting them: edit, delete, react; and
//! how a history page shows a message as it is now (`MessageState`), from the
//! message's annotations (`AnnexTable::Message`). Pure, like the rest of `room`.

use std::collections::BTreeMap;

use hearth_protocol::event::{DeleteEvent, EditEvent, MessageEvent, MessageState, ReactionCount, ReactionEvent};
use hearth_protocol::ops::PinnedNote;
use hearth_protocol::{Emoji, Event, Millis, Note, Seq, ShortText, Text, UserId, limits};

use super::permissions::Action;
use super::rows::{self, AnnexRow, ByAt, VersionAnn};
use super::{Draft, Refusal, Requires, RoomState};

/// Different emoji one message may carry, and the names listed per emoji.
pub const MAX_EMOJI_PER_MESSAGE: usize = 20;
pub const MAX_REACTORS_LISTED: usize = 20;

/// What a deleted message's text reads as, wherever it is shown again.
pub fn deleted_text() -> Text {
    Text::new("(deleted)").expect("a valid text")
}

/// A message's text as a pinned note: cut to a note's length, on a character
/// boundary.
pub fn note_of(text: &Text) -> Note {
    let text = text.as_str();
    let mut cut = text.len().min(limits::MAX_NOTE_BYTES);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    Note::new(&text[..cut]).expect("cut to the note limit")
}

/// Shows a pin of a message with the message's text as it is now: `text`
/// (its newest edit, as a note), or the placeholder once it is deleted.
pub fn retext_pin(pin: &mut PinnedNote, text: Option<&Note>) {
    match text {
        Some(text) => pin.text = text.clone(),
        None => {
            pin.text = Note::new(deleted_text().as_str()).expect("a valid note");
            pin.deleted = true;
        }
    }
}

/// What became of a message's text after it was posted.
#[derive(Debug, Clone, PartialEq)]
pub enum TextNow {
    /// Edited: its newest text, and when.
    Edited(VersionAnn),
    Deleted,
    /// Its author's account was erased: gone like a deletion, and also from
    /// the reports that quote it (which keep a deleted message's text for
    /// the moderators).
    Erased,
}

impl TextNow {
    /// A later change on top of this one: an erasure is final, then a
    /// deletion; a newer edit wins.
    pub fn then(&mut self, later: TextNow) {
        match (&self, &later) {
            (TextNow::Erased, _) | (TextNow::Deleted, TextNow::Edited(_) | TextNow::Deleted) => {}
            _ => *self = later,
        }
    }

    /// Whether the text is gone (deleted or erased).
    pub fn is_gone(&self) -> bool {
        matches!(self, TextNow::Deleted | TextNow::Erased)
    }

    /// What the annotations say became of the text, if anything.
    pub fn of(notes: &Annotations) -> Option<TextNow> {
        if notes.erased {
            return Some(TextNow::Erased);
        }
        match (&notes.deleted, notes.versions.last()) {
            (Some(_), _) => Some(TextNow::Deleted),
            (None, Some((_, newest))) => Some(TextNow::Edited(newest.clone())),
            (None, None) => None,
        }
    }

    /// Shows `event` — a message, or an edit of it — with the text as it is
    /// now: a deleted message as its tombstone and its edits with the
    /// placeholder; an edited one, and each of its edits, with the newest
    /// text. What a resume replays, so a member who was away never receives
    /// text its author or a moderator has taken back, nor versions only
    /// moderators may read.
    pub fn apply(&self, event: &mut Event) {
        let text = match self {
            TextNow::Edited(newest) => newest.text.clone(),
            TextNow::Deleted | TextNow::Erased => deleted_text(),
        };
        match event {
            Event::Message(message) => {
                message.text = text;
                let state = match self {
                    TextNow::Edited(newest) => MessageState { edited_at: Some(newest.at), ..MessageState::default() },
                    TextNow::Deleted => MessageState { deleted: true, ..MessageState::default() },
                    TextNow::Erased => MessageState { deleted: true, erased: true, ..MessageState::default() },
                };
                message.state = Some(Box::new(state));
            }
            Event::Edit(edit) => edit.text = text,
            // A pin of the message: its note shows the message as it is now.
            Event::Pin(pinned) => match self {
                TextNow::Edited(_) => retext_pin(&mut pinned.pin, Some(&note_of(&text))),
                TextNow::Deleted | TextNow::Erased => retext_pin(&mut pinned.pin, None),
            },
            Event::Held(held) => held.text = text,
            // A report keeps the text as reported, but not an erased member's.
            Event::Report(report) if *self == TextNow::Erased => report.text = text,
            _ => {}
        }
    }
}

/// What a message's annotations say.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Annotations {
    /// Its edits, oldest first (seq of the edit, text, time).
    pub versions: Vec<(Seq, VersionAnn)>,
    pub deleted: Option<ByAt>,
    /// Its author's account was erased (`deleted` is set too).
    pub erased: bool,
    /// Emoji → who reacted, in the order of their names.
    pub reactions: BTreeMap<String, Vec<UserId>>,
    /// Replies in its thread, oldest first.
    pub replies: Vec<Seq>,
    /// How its reports were resolved, if they were.
    pub resolved: Option<rows::Resolution>,
}

impl Annotations {
    /// Reads a message's annotation rows (any order; others ignored).
    pub fn read<'a>(rows: impl IntoIterator<Item = &'a AnnexRow>) -> Annotations {
        let mut notes = Annotations::default();
        for row in rows {
            let seq_of = |prefix: &str| row.key.strip_prefix(prefix).and_then(|s| s.parse().ok()).map(Seq);
            if let Some(seq) = seq_of("v:") {
                if let Ok(version) = rows::decode::<VersionAnn>(&row.value) {
                    notes.versions.push((seq, version));
                }
            } else if let Some(seq) = seq_of("reply:") {
                notes.replies.push(seq);
            } else if row.key == "del" {
                notes.deleted = notes.deleted.take().or_else(|| rows::decode::<ByAt>(&row.value).ok());
            } else if row.key == "erased" {
                notes.erased = true;
                notes.deleted = rows::decode::<ByAt>(&row.value).ok();
            } else if row.key == "resolved" {
                notes.resolved = rows::decode(&row.value).ok();
            } else if let Some((emoji, user)) = row.key.strip_prefix("r:").and_then(|r| r.split_once('\u{1f}'))
                && let Ok(user) = UserId::new(user)
            {
                notes.reactions.entry(emoji.to_string()).or_default().push(user);
            }
        }
        notes.versions.sort_by_key(|(seq, _)| *seq);
        notes.replies.sort();
        notes.reactions.values_mut().for_each(|users| users.sort());
        notes
    }

    /// Shows `message` as it is now: edited text, a tombstone, reactions, replies.
    pub fn apply(&self, message: &mut MessageEvent) {
        let mut state = MessageState::default();
        if let Some((_, last)) = self.versions.last() {
            message.text = last.text.clone();
            state.edited_at = Some(last.at);
        }
        if self.deleted.is_some() {
            message.text = deleted_text();
            state = MessageState { deleted: true, erased: self.erased, ..MessageState::default() };
        } else {
            state.reactions = self
                .reactions
                .iter()
                .filter_map(|(emoji, users)| {
                    Some(ReactionCount {
                        emoji: Emoji::new(emoji.as_str()).ok()?,
                        count: users.len() as u32,
                        users: users.iter().take(MAX_REACTORS_LISTED).cloned().collect(),
                    })
                })
                .collect();
        }
        state.replies = self.replies.len() as u32;
        state.last_reply = self.replies.last().copied();
        if state != MessageState::default() {
            message.state = Some(Box::new(state));
        }
    }
}

fn gone(target: Seq) -> Refusal {
    Refusal::Deleted { seq: target }
}

impl RoomState {
    /// A draft about a message that a muted member may not make.
    fn about(actor: &UserId, event: Event) -> Result<Draft, Refusal> {
        Ok(Draft { event, requires: Requires::Post { user: actor.clone(), slow_ms: 0, rules: None }, cmid: None })
    }

    /// Edits one's own message (a muted member cannot).
    pub fn decide_edit(
        &self,
        actor: &UserId,
        target: &MessageEvent,
        notes: &Annotations,
        text: Text,
        now: Millis,
    ) -> Result<Draft, Refusal> {
        self.check_post(actor, now)?;
        if target.from != *actor {
            return Err(Refusal::NotYourMessage);
        }
        // An edit is not held: text the filter would hold or refuse is refused.
        if self.filtered(actor, text.as_str(), now)? {
            return Err(Refusal::Filtered { reason: ShortText::default() });
        }
        if notes.deleted.is_some() {
            return Err(gone(target.seq));
        }
        let event = Event::Edit(EditEvent {
            room: self.record.room.clone(),
            seq: Seq::ZERO,
            ts: Millis(0),
            from: actor.clone(),
            target: target.seq,
            text,
        });
        Self::about(actor, event)
    }

    /// Deletes one's own message, or (moderators) anyone's.
    pub fn decide_delete(
        &self,
        actor: &UserId,
        target: &MessageEvent,
        notes: &Annotations,
        now: Millis,
    ) -> Result<Draft, Refusal> {
        let own = target.from == *actor;
        let action = if own { Action::Post } else { Action::Moderate };
        let role = self.require(actor, action, now)?;
        if notes.deleted.is_some() {
            return Err(gone(target.seq));
        }
        let event = Event::Delete(DeleteEvent {
            room: self.record.room.clone(),
            seq: Seq::ZERO,
            ts: Millis(0),
            from: actor.clone(),
            target: target.seq,
            of: (!own).then(|| target.from.clone()),
        });
        let requires = if own {
            Requires::Member(actor.clone())
        } else {
            Requires::RoleAtLeast(actor.clone(), role.min(super::permissions::least_role(Action::Moderate)))
        };
        Ok(Draft { event, requires, cmid: None })
    }

    /// Adds (`on`) or removes a reaction.
    pub fn decide_react(
        &self,
        actor: &UserId,
        target: &MessageEvent,
        notes: &Annotations,
        emoji: Emoji,
        on: bool,
        now: Millis,
    ) -> Result<Draft, Refusal> {
        self.check_post(actor, now)?;
        if notes.deleted.is_some() {
            return Err(gone(target.seq));
        }
        let mine = notes.reactions.get(emoji.as_str()).is_some_and(|users| users.contains(actor));
        if on == mine {
            return Err(if on { Refusal::AlreadyReacted } else { Refusal::NotReacted });
        }
        if on && !notes.reactions.contains_key(emoji.as_str()) && notes.reactions.len() >= MAX_EMOJI_PER_MESSAGE {
            return Err(Refusal::ReactionsFull { max: MAX_EMOJI_PER_MESSAGE });
        }
        let event = Event::Reaction(ReactionEvent {
            room: self.record.room.clone(),
            seq: Seq::ZERO,
            ts: Millis(0),
            from: actor.clone(),
            target: target.seq,
            emoji,
            on,
        });
        Self::about(actor, event)
    }
}
