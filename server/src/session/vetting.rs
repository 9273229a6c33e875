//! Who comes in: join requests and their decisions, invite codes, and a
//! newcomer's posts held on probation for a moderator's look.

use hearth_protocol::event::JoinDecisionEvent;
use hearth_protocol::ops::{
    Appended, CreateInvite, DecideJoin, Done, HeldList, HeldPosts, Invite, JoinRequestList, JoinRequests, Release,
    RequestJoin, RevokeInvite,
};
use hearth_protocol::{ErrorBody, Event, RequestId, Role};

use super::dispatch::Handle;
use super::{Session, fit_in_frame};
use crate::reads::Mention;
use crate::room;

impl Handle for RequestJoin {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.room(&args.room).await?;
        let pending = session.pending_queue(&room, Role::Welcomer);
        let published =
            session.decide_ordered(&room, args, |s, args| s.decide_request_join(&user, args.note, now)).await?;
        pending.durable(&published);
        session.reply(id, &Done {}).await;
        Ok(())
    }
}

impl Handle for JoinRequests {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.current_room(&args.room).await?;
        let mut requests = room.check(|s| s.join_requests(&user, now))?;
        let more = fit_in_frame(session.conn.codec, &mut requests);
        session.reply(id, &JoinRequestList { requests, more }).await;
        Ok(())
    }
}

impl Handle for DecideJoin {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.room(&args.room).await?;
        let (requester, approved, reason) = (args.user.clone(), args.approve, args.reason.clone());
        session.decide_ordered(&room, args, |s, args| s.decide_on_request(&user, args, now)).await?;
        session.reply(id, &Done {}).await;
        // The requester hears it live, on any node.
        let decision = Event::JoinDecision(JoinDecisionEvent { room: room.id.clone(), approved, by: user, reason });
        session.notify_user(requester, decision).await;
        Ok(())
    }
}

impl Handle for CreateInvite {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.room(&args.room).await?;
        let code = invite_code();
        let invite_id = room::rows::invite_id(&code);
        let decide = |s: &room::RoomState, args: CreateInvite| {
            s.decide_create_invite(&user, invite_id.clone(), args.ttl_secs, args.max_uses, now)
        };
        let expiry = |draft: &room::Draft| match &draft.event {
            Event::Moderation(m) => m.until,
            _ => None,
        };
        let (_, expires_at) = session.decide_ordered_peek(&room, args.clone(), decide, expiry).await?;
        let invite = Invite { code, id: invite_id, expires_at, max_uses: args.max_uses, uses: 0 };
        session.reply(id, &invite).await;
        Ok(())
    }
}

impl Handle for RevokeInvite {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.room(&args.room).await?;
        session.decide_ordered(&room, args, |s, args| s.decide_revoke_invite(&user, &args.code, now)).await?;
        session.reply(id, &Done {}).await;
        Ok(())
    }
}

impl Handle for HeldPosts {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.member_room(&args.room).await?;
        let mut held = room.check(|s| s.held_posts(&user, now))?;
        let more = fit_in_frame(session.conn.codec, &mut held);
        session.reply(id, &HeldList { held, more }).await;
        Ok(())
    }
}

impl Handle for Release {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.member_room(&args.room).await?;
        let posted = args.approve;
        let published = session.decide_ordered(&room, args, |s, args| s.decide_release(&user, args, now)).await?;
        if posted {
            // A released post mentions as a post does: into the inboxes
            // before the answer.
            // (Its author is below moderator, so it names no @room.)
            if let Ok((message, _)) = session.message_at(&room, published.seq).await {
                let mentioned = message.mentions;
                if !mentioned.is_empty() {
                    let mention =
                        Mention { ts: published.ts, room: room.id.clone(), seq: published.seq, from: message.from };
                    if let Err(error) = session.shared.reads.mention(mentioned, mention).await {
                        tracing::warn!(%error, "a released post's mentions could not be added to their inboxes");
                    }
                }
            }
        }
        session.reply(id, &Appended { seq: published.seq, ts: published.ts, held: false }).await;
        Ok(())
    }
}

/// A fresh invite code: 96 random bits, readable and typeable.
fn invite_code() -> String {
    let mut raw = [0u8; 12];
    let _ = getrandom::fill(&mut raw);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}
