//! What members do with messages: post (and reply in a thread), edit,
//! delete, react; read a message's earlier versions (moderators); say they
//! are typing.

use hearth_protocol::event::TypingEvent;
use hearth_protocol::ops::{Appended, Delete, Done, Edit, React, SendMessage, Typing, Version, VersionList, Versions};
use hearth_protocol::{ErrorBody, Event, Millis, RequestId, Role};

use super::dispatch::Handle;
use super::{Session, fit_in_frame};
use crate::broker::Published;
use crate::reads::Mention;
use crate::room::permissions::Action;
use crate::room::{self};

/// A typing indicator is passed on at most this often per member and room;
/// clients show one for 5 s unless it is repeated (PROTOCOL.md).
const TYPING_EVERY_MS: u64 = 3_000;

impl Handle for SendMessage {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let user = session.conn.user.clone();
        let room = session.room(&self.room).await?;
        session.check_in_flight()?;
        session.check_direct_post(&room).await?;
        // A reply mentions its root's author: looked up before the decision,
        // so the event carries it (only replies pay for the read).
        let root_author = match self.thread {
            Some(root) if room.is_member(&user) => session.message_at(&room, root).await.ok().map(|(m, _)| m.from),
            _ => None,
        };
        // Decided at the time it is decided: a second decision, on a copy
        // that caught up, reads the clock again.
        let clock = session.shared.clock.clone();
        let decide = |s: &room::RoomState, args| s.decide_send(&user, args, root_author.as_ref(), clock.now());
        let peek = |draft: &room::Draft| match &draft.event {
            Event::Message(m) => (false, m.mentions.clone(), m.mentions_room),
            event => (matches!(event, Event::Held(_)), Vec::new(), false),
        };
        let text = self.text.clone();
        let ordered = session.shared.registry.decide_and_order(&room, self, decide, peek).await?;
        let (held, mut mentioned, everyone) = ordered.seen;
        if everyone {
            // A moderator's @room: in every member's inbox but the author's.
            let members = room.check(|s| Ok(s.members.keys().filter(|m| **m != user).cloned().collect::<Vec<_>>()))?;
            mentioned = members;
        }
        let pending = if held {
            session.pending_queue(&room, Role::Welcomer)
        } else {
            session.pending_message(&room, text.as_str(), &mentioned)
        };
        if mentioned.is_empty() {
            session.reply_when_durable(id, ordered.receipt, move |p| {
                pending.durable(&p);
                Appended { seq: p.seq, ts: p.ts, held }
            });
        } else {
            // Into each inbox before the answer: an acknowledged mention is kept.
            let (reads, room, from) = (session.shared.reads.clone(), room.id.clone(), user.clone());
            let note = move |p: Published| async move {
                let mention = Mention { ts: p.ts, room, seq: p.seq, from };
                if let Err(error) = reads.mention(mentioned, mention).await {
                    tracing::warn!(%error, "a mention could not be added to its inboxes");
                }
            };
            session.reply_when_durable_after(id, ordered.receipt, note, move |p| {
                pending.durable(&p);
                Appended { seq: p.seq, ts: p.ts, held }
            });
        }
        crate::metrics::get().messages.increment(1);
        Ok(())
    }
}

impl Handle for Edit {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.member_room(&args.room).await?;
        let (target, notes) = session.message_at(&room, args.target).await?;
        session
            .decide_applied(id, &room, args, |s, args| s.decide_edit(&user, &target, &notes, args.text, now))
            .await?;
        Ok(())
    }
}

impl Handle for Delete {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.member_room(&args.room).await?;
        let (target, notes) = session.message_at(&room, args.target).await?;
        session.decide_applied(id, &room, args, |s, _args| s.decide_delete(&user, &target, &notes, now)).await?;
        Ok(())
    }
}

impl Handle for React {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.member_room(&args.room).await?;
        let (target, notes) = session.message_at(&room, args.target).await?;
        session
            .decide_applied(id, &room, args, |s, args| s.decide_react(&user, &target, &notes, args.emoji, args.on, now))
            .await?;
        Ok(())
    }
}

impl Handle for Versions {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.member_room(&args.room).await?;
        room.check(|s| s.require(&user, Action::Moderate, now))?;
        let (target, notes) = session.message_at(&room, args.target).await?;
        let original = session.original_text(&room, args.target).await?;
        let mut versions = vec![Version { text: original, at: target.ts }];
        versions.extend(notes.versions.into_iter().map(|(_, v)| Version { text: v.text, at: v.at }));
        let more = fit_in_frame(session.conn.codec, &mut versions);
        session.reply(id, &VersionList { versions, more }).await;
        Ok(())
    }
}

impl Handle for Typing {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.member_room(&args.room).await?;
        room.check(|s| s.check_post(&user, now))?;
        let lately = |when: &Millis| now.0.saturating_sub(when.0) < TYPING_EVERY_MS;
        let recent = session.typed.iter().any(|(r, when)| *r == room.id && lately(when));
        if !recent {
            session.typed.retain(|(r, when)| *r != room.id && lately(when));
            session.typed.push((room.id.clone(), now));
            let event = Event::Typing(TypingEvent { room: room.id.clone(), user: user.clone() });
            if let Err(error) = session.shared.registry.broker().broadcast(room.id.clone(), event).await {
                // A typing indicator is gone in seconds anyway.
                tracing::debug!(room = %room.id, %error, "typing not passed on");
            }
        }
        session.reply(id, &Done {}).await;
        Ok(())
    }
}
