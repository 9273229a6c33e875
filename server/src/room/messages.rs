//! What members do to messages after posting them: edit, delete, react; and
//! how a history page shows a message as it is now (`MessageState`), from the
//! message's annotations (`AnnexTable::Message`). Pure, like the rest of `room`.

use std::collections::BTreeMap;

use hearth_protocol::event::{
    DeleteEvent, EditEvent, FORMER_MEMBER, MessageEvent, MessageState, ReactionCount, ReactionEvent,
};
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

/// Whom a room that keeps erased members' words shows them as from.
pub fn former_member() -> UserId {
    UserId::new(FORMER_MEMBER).expect("a valid name")
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
    /// Its author's account was erased in a room that keeps their words:
    /// shown as from `former-member`, its text as it otherwise is (`None`:
    /// as posted).
    Former(Option<Box<TextNow>>),
}

impl TextNow {
    /// A later change on top of this one: an erasure is final, then a
    /// deletion; a newer edit wins; a message kept from a former member
    /// stays theirs whatever happens to its text.
    pub fn then(&mut self, later: TextNow) {
        match (&mut *self, later) {
            (TextNow::Erased, _) | (TextNow::Former(_), TextNow::Former(_)) => {}
            (TextNow::Former(inner), later) => match inner {
                Some(inner) => inner.then(later),
                None => *inner = Some(Box::new(later)),
            },
            (now, TextNow::Former(_)) => *now = TextNow::Former(Some(Box::new(now.clone()))),
            (TextNow::Deleted, TextNow::Edited(_) | TextNow::Deleted) => {}
            (now, later) => *now = later,
        }
    }

    /// Whether the text is gone (deleted or erased).
    pub fn is_gone(&self) -> bool {
        match self {
            TextNow::Deleted | TextNow::Erased => true,
            TextNow::Former(inner) => inner.as_ref().is_some_and(|t| t.is_gone()),
            TextNow::Edited(_) => false,
        }
    }

    /// Whether it is shown as from `former-member`.
    pub fn is_former(&self) -> bool {
        matches!(self, TextNow::Former(_))
    }

    /// What became of the text itself, whoever it is shown as from.
    pub fn text_change(&self) -> Option<&TextNow> {
        match self {
            TextNow::Former(inner) => inner.as_deref(),
            other => Some(other),
        }
    }

    /// What the annotations say became of the text, if anything.
    pub fn of(notes: &Annotations) -> Option<TextNow> {
        if notes.erased {
            return Some(TextNow::Erased);
        }
        let text = match (&notes.deleted, notes.versions.last()) {
            (Some(_), _) => Some(TextNow::Deleted),
            (None, Some((_, newest))) => Some(TextNow::Edited(newest.clone())),
            (None, None) => None,
        };
        if notes.former { Some(TextNow::Former(text.map(Box::new))) } else { text }
    }

    /// Shows `event` — a message, or an edit of it — with the text as it is
    /// now: a deleted message as its tombstone and its edits with the
    /// placeholder; an edited one, and each of its edits, with the newest
    /// text. What a resume replays, so a member who was away never receives
    /// text its author or a moderator has taken back, nor versions only
    /// moderators may read.
    pub fn apply(&self, event: &mut Event) {
        // The text shown, the message's state, and the pin's note (`None`:
        // the placeholder).
        let (text, state, pinned) = match self {
            TextNow::Edited(newest) => (
                newest.text.clone(),
                MessageState { edited_at: Some(newest.at), ..MessageState::default() },
                Some(note_of(&newest.text)),
            ),
            TextNow::Deleted => (deleted_text(), MessageState { deleted: true, ..MessageState::default() }, None),
            TextNow::Erased => {
                (deleted_text(), MessageState { deleted: true, erased: true, ..MessageState::default() }, None)
            }
            TextNow::Former(text) => {
                if let Some(text) = text {
                    text.apply(event);
                }
                return as_former_member(event);
            }
        };
        match event {
            Event::Message(message) => {
                message.text = text;
                message.state = Some(Box::new(state));
            }
            Event::Edit(edit) => edit.text = text,
            // A pin of the message: its note shows the message as it is now.
            Event::Pin(pin) => retext_pin(&mut pin.pin, pinned.as_ref()),
            Event::Held(held) => held.text = text,
            // A report keeps the text as reported, but not an erased member's.
            Event::Report(report) if *self == TextNow::Erased => report.text = text,
            _ => {}
        }
    }
}

/// Shows `event` — a message, an edit of it, a report or a held post —
/// as from `former-member`: its author's account was erased, and the room
/// keeps their words.
fn as_former_member(event: &mut Event) {
    let former = former_member();
    match event {
        Event::Message(message) => {
            message.from = former;
            message.state.get_or_insert_with(Box::default).erased = true;
        }
        Event::Edit(edit) => edit.from = former,
        Event::Held(held) => held.from = former,
        Event::Report(report) => report.author = former,
        _ => {}
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
    /// Its author's account was erased, and the room keeps their words.
    pub former: bool,
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
            } else if row.key == "former" {
                notes.former = true;
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
        if self.former {
            message.from = former_member();
            state.erased = true;
        }
        if state != MessageState::default() {
            message.state = Some(Box::new(state));
        }
    }
}

fn gone(target: Seq) -> Refusal {
    Refusal::Deleted { seq: target }
}

impl RoomState {
    /// A draft about a message that a muted member may not make, decided
    /// against the same rules as a post (a read-only lockdown, the rules to
    /// acknowledge, who moderates), and required to hold as a post's are:
    /// a member, not muted.
    fn about(&self, actor: &UserId, event: Event) -> Result<Draft, Refusal> {
        let requires = Requires::Post { user: actor.clone(), slow_ms: 0 };
        Ok(self.draft(event, requires))
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
        self.about(actor, event)
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
        Ok(self.draft(event, requires))
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
        // Checked here, not where reactions are read: one given before this
        // rule (" 👍", a lone space) can still be taken back, and history keeps it.
        if on && emoji.as_str().chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Refusal::NotAReaction);
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
        self.about(actor, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edited(text: &str) -> TextNow {
        TextNow::Edited(VersionAnn { text: Text::new(text).unwrap(), at: Millis(1) })
    }

    #[test]
    fn what_became_of_a_text_folds_in_order() {
        // A kept message of a former member stays theirs; its text still changes.
        let mut now = TextNow::Former(None);
        now.then(edited("v2"));
        assert_eq!(now, TextNow::Former(Some(Box::new(edited("v2")))));
        now.then(TextNow::Deleted);
        assert!(now.is_former() && now.is_gone());
        now.then(edited("v3"));
        assert_eq!(now.text_change(), Some(&TextNow::Deleted), "a deletion is final");
        // Changes before the erasure are kept under it.
        let mut now = edited("v2");
        now.then(TextNow::Former(None));
        assert_eq!(now.text_change(), Some(&edited("v2")));
        // An erasure is final.
        let mut now = TextNow::Erased;
        now.then(TextNow::Former(None));
        now.then(edited("v4"));
        assert_eq!(now, TextNow::Erased);
    }

    #[test]
    fn a_former_member_s_message_keeps_its_text_and_loses_its_author() {
        let mut event = Event::Message(MessageEvent::draft(
            hearth_protocol::RoomId::new("club").unwrap(),
            UserId::new("eve").unwrap(),
            Text::new("v1").unwrap(),
            hearth_protocol::ClientMsgId::new("c").unwrap(),
            None,
        ));
        TextNow::Former(Some(Box::new(edited("v2")))).apply(&mut event);
        let Event::Message(message) = event else { unreachable!() };
        assert_eq!((message.from.as_str(), message.text.as_str()), (FORMER_MEMBER, "v2"));
        let state = message.state.unwrap();
        assert!(state.erased && !state.deleted && state.edited_at.is_some());
    }
}
