//! Posting: whether a member may post now (membership, mute, the rules'
//! acknowledgement, slow mode), and the one post decision — a message, or on
//! probation a newcomer's link held for a look. Pure, like the rest of
//! `room`.

use hearth_protocol::event::{HeldEvent, MessageEvent};
use hearth_protocol::ops::{FilterAction, HeldPost, ModAction, Release, SendMessage};
use hearth_protocol::{Event, Millis, Role, Seq, UserId};

use super::permissions::{Action, least_role};
use super::{Draft, NEWCOMER_MS, Refusal, Requires, RoomState, Term};

/// During probation, at least this long between a newcomer's posts.
pub const PROBATION_SLOW_SECS: u32 = 30;

/// Whether `text` carries a link (held during probation).
pub fn has_link(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    ["http://", "https://", "www."].iter().any(|l| lower.contains(l))
}

/// Most members one message mentions: a bound on the work and the event.
const MAX_MENTIONS: usize = 50;

impl RoomState {
    /// Whom `text`, posted by `author`, mentions: the members named `@name`
    /// (in any case; not inside an address like `ada@example.org`), and for
    /// a reply `root_author`, the author of the thread's root; and whether a
    /// moderator's `@room` calls everyone (anyone else's is only text).
    pub fn mentions_in(
        &self,
        author: &UserId,
        text: &str,
        root_author: Option<&UserId>,
        now: Millis,
    ) -> (Vec<UserId>, bool) {
        let mut named: Vec<UserId> = Vec::new();
        let mut everyone = false;
        let name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        for (at, _) in text.match_indices('@') {
            if text[..at].chars().next_back().is_some_and(name_char) || named.len() >= MAX_MENTIONS {
                continue;
            }
            let rest = &text[at + 1..];
            let end = rest.find(|c: char| !name_char(c)).unwrap_or(rest.len());
            // A name at the end of a sentence keeps its full stop outside.
            let name = rest[..end].trim_end_matches('.');
            if name.eq_ignore_ascii_case("room") {
                everyone |= self.role_of(author, now).is_some_and(|r| r >= Role::Moderator);
                continue;
            }
            let Some(member) = self.member_named(name) else { continue };
            if member != author && !named.contains(member) {
                named.push(member.clone());
            }
        }
        if let Some(root) = root_author.filter(|r| *r != author && self.members.contains_key(*r))
            && !named.contains(root)
        {
            named.push(root.clone());
        }
        (named, everyone)
    }

    /// The member called `name`, in any case.
    fn member_named(&self, name: &str) -> Option<&UserId> {
        if name.is_empty() {
            return None;
        }
        if let Some((id, _)) = UserId::new(name).ok().and_then(|id| self.members.get_key_value(&id)) {
            return Some(id);
        }
        self.members.keys().find(|id| id.as_str().eq_ignore_ascii_case(name))
    }

    /// Whether `user` may post at `now`: not muted, and past slow mode.
    /// Returns the slow mode the order must hold them to (ms; 0: none).
    pub fn check_post(&self, user: &UserId, now: Millis) -> Result<u64, Refusal> {
        let role = self.require(user, Action::Post, now)?;
        self.check_read_only(role, now)?;
        if let Some(mute) = self.rows.mutes.get(user).filter(|m| m.holds(now)) {
            return Err(Refusal::Muted(Term::of(mute.until, now)));
        }
        if let Some(rules) = self.rules().filter(|_| self.record.rules_ack && role < least_role(Action::Welcome))
            && self.rows.acks.get(user).is_none_or(|acked| *acked < rules.version)
        {
            return Err(Refusal::AckRequired { version: rules.version });
        }
        let mut slow = u64::from(self.record.slow_mode_secs) * 1000;
        let on_probation = self.on_probation(user, now);
        if on_probation {
            // Newcomers on probation wait longer between posts.
            slow = (slow * 2).max(u64::from(PROBATION_SLOW_SECS) * 1000);
        }
        if slow > 0 && role < least_role(Action::Moderate) {
            if let Some(last) = self.last_post.get(user) {
                let next = last.0 + slow;
                if next > now.0 {
                    return Err(Refusal::SlowMode {
                        retry_ms: next - now.0,
                        every_secs: Some(slow / 1000),
                        probation: on_probation,
                    });
                }
            }
            return Ok(slow);
        }
        Ok(0)
    }

    /// Whether `user` is on probation at `now`: a member (not a welcomer or
    /// above) who joined less than the room's `probation_secs` ago, or who
    /// has made fewer than its `probation_posts` posts — counted within their
    /// first week (or `probation_secs`, if longer), so turning it on never
    /// puts long-standing members on probation.
    pub fn on_probation(&self, user: &UserId, now: Millis) -> bool {
        let by_time = u64::from(self.record.probation_secs) * 1000;
        if by_time == 0 && self.record.probation_posts == 0 {
            return false;
        }
        let Some(member) = self.members.get(user) else { return false };
        if member.role_at(now) != Role::Member {
            return false;
        }
        let age = now.0.saturating_sub(member.joined_at.0);
        age < by_time || (self.probation_post(user).is_some() && age < by_time.max(NEWCOMER_MS))
    }

    /// In a room with `probation_posts`: which post of `user`'s the next one
    /// would be, while they have made fewer than that.
    fn probation_post(&self, user: &UserId) -> Option<u32> {
        let made = self.rows.posts.get(user).copied().unwrap_or(0);
        (made < self.record.probation_posts).then_some(made + 1)
    }

    /// A post at `now`: refused (not a member, muted, rules not acknowledged,
    /// too soon in slow mode), or the message — or, a newcomer's link in a
    /// room with probation, a held post for a moderator's look. The one post
    /// decision: the session, the tests and the benches all make it here.
    /// The order holds the member to slow mode too (`Requires::Post`): two
    /// posts in a row may both pass this copy before either is applied.
    pub fn decide_send(
        &self,
        user: &UserId,
        msg: hearth_protocol::ops::SendMessage,
        root_author: Option<&UserId>,
        now: Millis,
    ) -> Result<Draft, Refusal> {
        let slow_ms = self.check_post(user, now)?;
        let filtered = self.filtered(user, msg.text.as_str(), now)?;
        let mut draft = self.message_draft(user, msg)?;
        draft.requires = Requires::Post { user: user.clone(), slow_ms };
        let on_probation = self.on_probation(user, now);
        if let Event::Message(m) = &mut draft.event {
            (m.mentions, m.mentions_room) = self.mentions_in(user, m.text.as_str(), root_author, now);
            if on_probation {
                m.probation_post = self.probation_post(user);
            }
            if filtered || (on_probation && has_link(m.text.as_str())) {
                let event = Event::Held(HeldEvent {
                    room: self.room().clone(),
                    seq: Seq::ZERO,
                    ts: Millis(0),
                    from: user.clone(),
                    text: m.text.clone(),
                    cmid: m.cmid.clone(),
                    thread: m.thread,
                });
                // No client message id: the released post takes it.
                return Ok(self.draft(event, draft.requires));
            }
        }
        Ok(draft)
    }

    /// What the room's word filter makes of `text` from `user`: refused
    /// (`Filtered`), held (`true`), or let through; moderators are not
    /// filtered.
    pub fn filtered(&self, user: &UserId, text: &str, now: Millis) -> Result<bool, Refusal> {
        if self.filters.is_empty() || self.role_of(user, now).is_some_and(|r| r >= least_role(Action::Moderate)) {
            return Ok(false);
        }
        match self.filters.matching(text) {
            Some(rule) if rule.action == FilterAction::Refuse => Err(Refusal::Filtered { reason: rule.reason.clone() }),
            Some(_) => Ok(true),
            None => Ok(false),
        }
    }

    /// The held posts, oldest first (moderators).
    pub fn held_posts(&self, actor: &UserId, now: Millis) -> Result<Vec<HeldPost>, Refusal> {
        self.require(actor, Action::Moderate, now)?;
        let mut list: Vec<HeldPost> = self
            .rows
            .held
            .iter()
            .filter_map(|((user, cmid), h)| {
                Some(HeldPost {
                    user: user.clone(),
                    cmid: hearth_protocol::ClientMsgId::new(cmid.as_str()).ok()?,
                    text: h.text.clone(),
                    thread: h.thread,
                    at: h.at,
                })
            })
            .collect();
        list.sort_by_key(|h| h.at);
        Ok(list)
    }

    /// Posts a held message in its author's name, or drops it (logged).
    pub fn decide_release(&self, actor: &UserId, args: Release, now: Millis) -> Result<Draft, Refusal> {
        self.require(actor, Action::Moderate, now)?;
        let Some(held) = self.rows.held.get(&(args.user.clone(), args.cmid.as_str().to_string())) else {
            return Err(Refusal::NoSuchHeld { user: args.user, cmid: args.cmid });
        };
        if !args.approve {
            let Event::Moderation(mut event) = self.moderation(actor, ModAction::Delete, &args.user, None, args.reason)
            else {
                unreachable!("moderation makes moderation events")
            };
            event.held = Some(args.cmid);
            return Ok(self
                .draft(Event::Moderation(event), Requires::RoleAtLeast(actor.clone(), least_role(Action::Moderate))));
        }
        // Its mentions as if posted now (a held reply's root author is not
        // looked up: the room's copy does not hold old messages).
        let (mentions, mentions_room) = self.mentions_in(&args.user, held.text.as_str(), None, now);
        let event = Event::Message(MessageEvent {
            released_by: Some(actor.clone()),
            // Released, it counts as one of its author's posts on probation.
            probation_post: if self.on_probation(&args.user, now) { self.probation_post(&args.user) } else { None },
            mentions,
            mentions_room,
            ..MessageEvent::draft(
                self.room().clone(),
                args.user.clone(),
                held.text.clone(),
                args.cmid.clone(),
                held.thread,
            )
        });
        // The releasing moderator's role is checked again in the order, as
        // any moderator's action is: a demotion through another node holds.
        let requires =
            Requires::Release { actor: actor.clone(), least: least_role(Action::Moderate), author: args.user };
        Ok(self.draft(event, requires).with_cmid(args.cmid))
    }
}

impl RoomState {
    /// The message event of `msg`, posted by `user` (see `decide_send`, which
    /// decides whether and how it is posted).
    fn message_draft(&self, user: &UserId, msg: SendMessage) -> Result<Draft, Refusal> {
        if let Some(root) = msg.thread
            && (root == Seq::ZERO || root > self.head)
        {
            return Err(Refusal::NoThreadRoot { root });
        }
        let cmid = msg.cmid.clone();
        let event = Event::Message(MessageEvent::draft(msg.room, user.clone(), msg.text, msg.cmid, msg.thread));
        let requires = Requires::Post { user: user.clone(), slow_ms: 0 };
        Ok(self.draft(event, requires).with_cmid(cmid))
    }
}
