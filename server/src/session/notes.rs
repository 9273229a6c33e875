//! The room's notes and rhythm: pinned notes (and their order), the rules'
//! acknowledgement, and scheduled prompts.

use hearth_protocol::event::Event;
use hearth_protocol::ops::{
    AckRules, AddPin, Appended, CancelPrompt, Done, OrderPins, Pinned, Prompt, PromptList, Prompts, RemovePin,
    SchedulePrompt,
};
use hearth_protocol::{ErrorBody, ErrorCode, Note, RequestId};

use super::Session;
use super::dispatch::Handle;
use crate::room::{Draft, RoomState};

impl Handle for AddPin {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let user = session.conn.user.clone();
        let room = session.member_room(&args.room).await?;
        let text = match (args.seq, args.note.clone()) {
            // The message as it is now: its newest edit; a deleted one is gone.
            (Some(seq), None) => {
                let (message, notes) = session.message_at(&room, seq).await?;
                if notes.deleted.is_some() {
                    return Err(ErrorBody::new(
                        ErrorCode::NoSuchTarget,
                        format!("message {seq} of room {} was deleted; there is nothing to pin", room.id),
                    ));
                }
                let text = notes.versions.last().map_or(message.text, |(_, newest)| newest.text.clone());
                crate::room::messages::note_of(&text)
            }
            (None, Some(note)) => note,
            _ => return Err(ErrorBody::new(ErrorCode::BadRequest, "pin takes exactly one of seq (a message) or note")),
        };
        let max_pins = session.shared.config.limits.pins_per_room;
        let now = session.shared.clock.now();
        let decide = |s: &RoomState, (text, args): (Note, AddPin)| {
            s.decide_pin(&user, args.seq, text, args.title, args.edit, max_pins, now)
        };
        let event = |draft: &Draft| draft.event.clone();
        session.check_in_flight()?;
        let ordered = session.shared.registry.decide_and_order(&room, (text, args), decide, event).await?;
        let mut event = ordered.seen;
        session.reply_when_durable(id, ordered.receipt, move |p| {
            // Stamped as the stored event was: the reply's pin is the event's.
            event.stamp(p.seq, p.ts);
            let Event::Pin(pinned) = event else { unreachable!("decide_pin drafts a pin") };
            Pinned { seq: p.seq, pin: pinned.pin }
        });
        Ok(())
    }
}

impl Handle for RemovePin {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.room(&args.room).await?;
        let decide = |s: &RoomState, args: RemovePin| s.decide_unpin(&user, args.pin, now);
        session.decide_published(id, &room, args, decide, |p| Appended { seq: p.seq, ts: p.ts, held: false }).await
    }
}

impl Handle for OrderPins {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.member_room(&args.room).await?;
        session.decide_applied(id, &room, args, |s, args| s.decide_order_pins(&user, args.notes, now)).await?;
        Ok(())
    }
}

impl Handle for AckRules {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.member_room(&args.room).await?;
        session.decide_applied(id, &room, args, |s, args| s.decide_ack_rules(&user, args.version, now)).await?;
        Ok(())
    }
}

impl Handle for SchedulePrompt {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.member_room(&args.room).await?;
        let prompt = random_id();
        let decide = |s: &RoomState, args: SchedulePrompt| {
            s.decide_schedule_prompt(&user, prompt, args.text, args.at, args.weekly, now)
        };
        session.decide_ordered(&room, args.clone(), decide).await?;
        session.shared.registry.broker().index_prompts(room.id.clone(), true).await?;
        session.shared.prompts_relist.store(true, std::sync::atomic::Ordering::Relaxed);
        let reply = Prompt { prompt, text: args.text, next_at: args.at, weekly: args.weekly, by: Some(user) };
        session.reply(id, &reply).await;
        Ok(())
    }
}

impl Handle for CancelPrompt {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.member_room(&args.room).await?;
        session.decide_ordered(&room, args, |s, args| s.decide_cancel_prompt(&user, args.prompt, now)).await?;
        session.reply(id, &Done {}).await;
        Ok(())
    }
}

impl Handle for Prompts {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.member_room(&args.room).await?;
        let prompts = room.check(|s| s.prompts(&user, now))?;
        session.reply(id, &PromptList { prompts }).await;
        Ok(())
    }
}

/// A fresh id for a prompt: random, below 2^53 so JavaScript reads it exactly.
fn random_id() -> u64 {
    crate::broker::new_epoch().0
}
