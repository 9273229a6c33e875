//! The room's notes and rhythm: pinned notes and their order, the rules and
//! their acknowledgement, and scheduled prompts. Pure, like the rest of
//! `room`.

use hearth_protocol::event::{
    AckEvent, MessageEvent, PinEvent, PromptEvent, PromptPosted, RoomUpdatedEvent, UnpinEvent,
};
use hearth_protocol::ops::{PinnedNote, Prompt, RoomSettings};
use hearth_protocol::{Event, Millis, Note, PinId, Role, Seq, ShortText, UserId};

use super::community::MAX_SANCTION_SECS;
use super::permissions::{Action, least_role};
use super::{Draft, Refusal, Requires, RoomState};

impl RoomState {
    /// Sets the order of the room's pinned notes (by note id).
    pub fn decide_order_pins(&self, actor: &UserId, notes: Vec<PinId>, now: Millis) -> Result<Draft, Refusal> {
        self.require(actor, Action::Pin, now)?;
        if let Some(unknown) = notes.iter().find(|n| !self.pins.iter().any(|p| p.note_id() == **n)) {
            return Err(Refusal::NoSuchPin { pin: *unknown });
        }
        let settings = RoomSettings { pin_order: Some(notes), ..RoomSettings::default() };
        let event = Event::RoomUpdated(RoomUpdatedEvent {
            room: self.room().clone(),
            seq: Seq::ZERO,
            ts: Millis(0),
            from: actor.clone(),
            settings,
        });
        Ok(self.draft(event, Requires::RoleAtLeast(actor.clone(), least_role(Action::Pin))))
    }

    /// Acknowledges the rules at `version`, which must be the current one.
    pub fn decide_ack_rules(&self, actor: &UserId, version: u32, now: Millis) -> Result<Draft, Refusal> {
        self.require(actor, Action::Read, now)?;
        let Some(rules) = self.rules() else {
            return Err(Refusal::NoRules);
        };
        if rules.version != version {
            return Err(Refusal::RulesVersion { current: rules.version });
        }
        let event = Event::Ack(AckEvent {
            room: self.room().clone(),
            seq: Seq::ZERO,
            ts: Millis(0),
            from: actor.clone(),
            version,
        });
        Ok(self.draft(event, Requires::Member(actor.clone())))
    }
}

/// Most prompts a room may have scheduled at once.
pub const MAX_PROMPTS: usize = 20;
const WEEK_MS: u64 = 7 * 24 * 3600 * 1000;

impl RoomState {
    /// Schedules a prompt (by the id the caller chose) for `at`, once or weekly.
    pub fn decide_schedule_prompt(
        &self,
        actor: &UserId,
        id: u64,
        text: hearth_protocol::Text,
        at: Millis,
        weekly: bool,
        now: Millis,
    ) -> Result<Draft, Refusal> {
        self.require(actor, Action::Moderate, now)?;
        if at < now || at.0 > now.0 + u64::from(MAX_SANCTION_SECS) * 1000 {
            return Err(Refusal::NotAhead { field: "at" });
        }
        if self.rows.prompts.len() >= MAX_PROMPTS {
            return Err(Refusal::PromptsFull { max: MAX_PROMPTS });
        }
        let event = Event::Prompt(PromptEvent {
            room: self.room().clone(),
            seq: Seq::ZERO,
            ts: Millis(0),
            from: actor.clone(),
            prompt: id,
            text: Some(text),
            next_at: Some(at),
            weekly,
        });
        Ok(self.draft(event, Requires::RoleAtLeast(actor.clone(), least_role(Action::Moderate))))
    }

    pub fn decide_cancel_prompt(&self, actor: &UserId, id: u64, now: Millis) -> Result<Draft, Refusal> {
        self.require(actor, Action::Moderate, now)?;
        if !self.rows.prompts.contains_key(&id) {
            return Err(Refusal::NoSuchPrompt { prompt: id });
        }
        let event = Event::Prompt(PromptEvent {
            room: self.room().clone(),
            seq: Seq::ZERO,
            ts: Millis(0),
            from: actor.clone(),
            prompt: id,
            text: None,
            next_at: None,
            weekly: false,
        });
        Ok(self.draft(event, Requires::RoleAtLeast(actor.clone(), least_role(Action::Moderate))))
    }

    /// The scheduled prompts, soonest first.
    pub fn prompts(&self, actor: &UserId, now: Millis) -> Result<Vec<Prompt>, Refusal> {
        self.require(actor, Action::Moderate, now)?;
        let mut list: Vec<Prompt> = self
            .rows
            .prompts
            .iter()
            .map(|(id, p)| Prompt {
                prompt: *id,
                text: p.text.clone(),
                next_at: p.next_at,
                weekly: p.weekly,
                by: Some(p.by.clone()),
            })
            .collect();
        list.sort_by_key(|p| p.next_at);
        Ok(list)
    }

    /// The posts of the prompts due at `now`, in their schedulers' names. A
    /// weekly one comes next on the first of its weeks after `now` (weeks
    /// missed while no server ran are skipped, not posted in a burst). The
    /// client message id names the occurrence, so the nodes of a cluster
    /// posting at once post it once.
    pub fn due_prompts(&self, now: Millis) -> Vec<Draft> {
        self.rows
            .prompts
            .iter()
            .filter(|(_, p)| p.next_at <= now)
            .filter_map(|(id, p)| {
                let next_at = p.weekly.then(|| {
                    let missed = (now.0 - p.next_at.0) / WEEK_MS + 1;
                    Millis(p.next_at.0 + missed * WEEK_MS)
                });
                let cmid = hearth_protocol::ClientMsgId::new(format!("prompt-{id}-{}", p.next_at.0)).ok()?;
                let event = Event::Message(MessageEvent {
                    prompt: Some(PromptPosted { prompt: *id, next_at }),
                    ..MessageEvent::draft(self.room().clone(), p.by.clone(), p.text.clone(), cmid.clone(), None)
                });
                // Due whatever the rules are: not tied to this copy's head.
                Some(Draft::new(event, Requires::Nothing).with_cmid(cmid))
            })
            .collect()
    }
}

impl RoomState {
    /// The pinned notes in the room's order: those `order_pins` named first,
    /// then the rest, oldest first.
    pub fn ordered_pins(&self) -> Vec<PinnedNote> {
        let place = |pin: &PinnedNote| {
            let note = pin.note_id();
            self.record.pin_order.iter().position(|p| *p == note).unwrap_or(usize::MAX)
        };
        let mut pins = self.pins.clone();
        pins.sort_by_key(|p| (place(p), p.note_id()));
        pins
    }

    /// The rules: the pin titled "Rules" (any case), if there is one.
    pub fn rules(&self) -> Option<&PinnedNote> {
        self.pin_titled("rules")
    }

    /// The pin whose title is `title` in any case: a room holds at most one.
    fn pin_titled(&self, title: &str) -> Option<&PinnedNote> {
        self.pins.iter().find(|p| p.title.as_ref().is_some_and(|t| same_title(t.as_str(), title)))
    }

    /// Pins `text` (a message's, when `seq` names one, or a free note). A pin with
    /// the title of an existing pin replaces it as its next version.
    #[allow(clippy::too_many_arguments)] // the pin request's fields, each its own
    pub fn decide_pin(
        &self,
        user: &UserId,
        seq: Option<Seq>,
        text: Note,
        title: Option<ShortText>,
        edit: Option<PinId>,
        max_pins: usize,
        now: Millis,
    ) -> Result<Draft, Refusal> {
        self.require(user, Action::Pin, now)?;
        let title = title.filter(|t| !t.as_str().is_empty());
        let titled = title.as_ref().and_then(|t| self.pin_titled(t.as_str()));
        let replaced = match edit {
            Some(id) => {
                let edited = self.pins.iter().find(|p| p.pin == id).ok_or(Refusal::NoSuchPin { pin: id })?;
                // Retitled as another note is titled: two notes would answer to it.
                if let Some(other) = titled.filter(|other| other.pin != edited.pin) {
                    let title = other.title.clone().unwrap_or_default();
                    return Err(Refusal::TitleTaken { pin: other.pin, title });
                }
                Some(edited)
            }
            // The same title in any case is the same note ("Rules", "RULES").
            None => titled,
        };
        // An edit keeps the note's title unless given a new one.
        let title = title.or_else(|| edit.and(replaced).and_then(|r| r.title.clone()));
        if replaced.is_none() && self.pins.len() >= max_pins {
            return Err(Refusal::PinsFull { max: max_pins });
        }
        let pin = PinnedNote {
            pin: PinId(0),
            seq,
            text,
            by: user.clone(),
            at: Millis(0),
            title,
            version: replaced.map_or(1, |r| r.version + 1),
            note: replaced.map(|r| r.note_id()),
            deleted: false,
        };
        let event = Event::Pin(PinEvent {
            room: self.record.room.clone(),
            seq: Seq::ZERO,
            ts: Millis(0),
            from: user.clone(),
            pin,
            replaces: replaced.map(|r| r.pin),
        });
        // A new pin needs a free place in the order too (two moderators may pin
        // at once); a replacement takes its predecessor's.
        let requires = match replaced {
            Some(_) => Requires::RoleAtLeast(user.clone(), Role::Moderator),
            None => Requires::PinSlot { user: user.clone(), least: Role::Moderator, max: max_pins },
        };
        Ok(self.draft(event, requires))
    }

    pub fn decide_unpin(&self, user: &UserId, pin: PinId, now: Millis) -> Result<Draft, Refusal> {
        self.require(user, Action::Pin, now)?;
        if !self.pins.iter().any(|p| p.pin == pin) {
            return Err(Refusal::NoSuchPin { pin });
        }
        let event = Event::Unpin(UnpinEvent {
            room: self.record.room.clone(),
            seq: Seq::ZERO,
            ts: Millis(0),
            from: user.clone(),
            pin,
        });
        Ok(self.draft(event, Requires::RoleAtLeast(user.clone(), Role::Moderator)))
    }
}

/// Whether two pin titles name the same note: equal but for case, in any
/// script ("Rules" and "RULES" are one rules note).
pub fn same_title(a: &str, b: &str) -> bool {
    a.chars().flat_map(char::to_lowercase).eq(b.chars().flat_map(char::to_lowercase))
}
