//! What members do with messages: post (and reply in a thread), edit,
//! delete, react; read a message's earlier versions (moderators); say they
//! are typing.

use hearth_protocol::event::TypingEvent;
use hearth_protocol::ops::{Appended, Delete, Done, Edit, React, SendMessage, Typing, Version, VersionList, Versions};
use hearth_protocol::{ErrorBody, Event, Millis, RequestId};

use super::dispatch::Handle;
use super::ordering::caught_up;
use super::{Session, fit_in_frame};
use crate::broker::BrokerError;
use crate::room::permissions::Action;
use crate::room::{self, Rejection};

/// A typing indicator is passed on at most this often per member and room;
/// clients show one for 5 s unless it is repeated (PROTOCOL.md).
const TYPING_EVERY_MS: u64 = 3_000;

impl Handle for SendMessage {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.room(&args.room).await?;
        session.check_in_flight()?;
        let broker = session.shared.registry.broker();
        // Kept only where a copy may trail the order (a cluster), to
        // decide the post again.
        let spare = broker.copies_trail().then(|| (args.clone(), room.position()));
        let post =
            |s: &room::RoomState, args: hearth_protocol::ops::SendMessage, now: Millis| s.decide_send(&user, args, now);
        let draft = room.decide(|s| post(s, args, now))?;
        let mut held = matches!(draft.event, Event::Held(_));
        let mut published = broker.publish(draft).await;
        if let (Err(BrokerError::Rejected { why: Rejection::RulesChanged, .. }), Some((args, before))) =
            (&published, spare)
        {
            // The settings or pins changed through another node a moment
            // ago and this copy had not applied it: decide again on the
            // room as it is now (probation, rules acknowledgement, slow
            // mode), once the copy has.
            if caught_up(broker, &room, before).await {
                let draft = room.decide(|s| post(s, args, session.shared.clock.now()))?;
                held = matches!(draft.event, Event::Held(_));
                published = broker.publish(draft).await;
            }
        }
        let receipt = published.map_err(|e| e.to_error())?;
        session.reply_when_durable(id, receipt, move |p| Appended { seq: p.seq, ts: p.ts, held });
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
        let draft = room.decide(|s| s.decide_edit(&user, &target, &notes, args.text, now))?;
        session.publish_applied(id, &room, draft).await?;
        Ok(())
    }
}

impl Handle for Delete {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.member_room(&args.room).await?;
        let (target, notes) = session.message_at(&room, args.target).await?;
        let draft = room.decide(|s| s.decide_delete(&user, &target, &notes, now))?;
        session.publish_applied(id, &room, draft).await?;
        Ok(())
    }
}

impl Handle for React {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.member_room(&args.room).await?;
        let (target, notes) = session.message_at(&room, args.target).await?;
        let draft = room.decide(|s| s.decide_react(&user, &target, &notes, args.emoji, args.on, now))?;
        session.publish_applied(id, &room, draft).await?;
        Ok(())
    }
}

impl Handle for Versions {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.member_room(&args.room).await?;
        room.decide(|s| s.require(&user, Action::Moderate, now))?;
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
        room.decide(|s| s.check_post(&user, now))?;
        let lately = |when: &Millis| now.0.saturating_sub(when.0) < TYPING_EVERY_MS;
        let recent = session.typed.iter().any(|(r, when)| *r == room.id && lately(when));
        if !recent {
            session.typed.retain(|(r, when)| *r != room.id && lately(when));
            session.typed.push((room.id.clone(), now));
            let event = Event::Typing(TypingEvent { room: room.id.clone(), user: user.clone() });
            match session.shared.registry.broker().broadcast(room.id.clone(), event.clone()).await {
                Ok(true) => {}
                Ok(false) | Err(_) => room.ephemeral(&event),
            }
        }
        session.reply(id, &Done {}).await;
        Ok(())
    }
}
