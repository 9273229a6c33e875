//! Direct messages: starting a conversation of a few members (`start_direct`)
//! and blocking (`block`, `blocks`). A conversation is a room of kind
//! `direct` made by the room core, so everything a room does works in it
//! unchanged; what is particular is who may start one. Whether a member may
//! is asked of every room the other member is in, so a member the community
//! is still vetting, or has muted or banned, cannot go around it in private.

use hearth_protocol::event::{BlocksEvent, DirectStartedEvent};
use hearth_protocol::ops::{Block, BlockList, Blocks, MAX_BLOCKS, MAX_DIRECT_MEMBERS, StartDirect, Visibility};
use hearth_protocol::{ErrorBody, ErrorCode, Event, Millis, RequestId, RoomId, Seq, UserId};

use super::Session;
use super::dispatch::Handle;
use super::ordering::{applied, applied_within};
use crate::broker::BrokerError;
use crate::room::{self, DirectStanding, Refusal};

/// A refusal of a direct conversation: `reason` is the word clients match.
fn direct_refused(reason: &str, message: String) -> ErrorBody {
    ErrorBody::new(ErrorCode::DirectRefused, message).because(reason)
}

impl Handle for StartDirect {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        if session.shared.config.limits.direct_per_hour == 0 {
            return Err(direct_refused("off", "direct messages are turned off on this server".to_string()));
        }
        let (starter, now) = session.caller();
        let mut others = self.with;
        others.sort();
        others.dedup();
        others.retain(|other| *other != starter);
        if others.is_empty() || others.len() >= MAX_DIRECT_MEMBERS {
            return Err(ErrorBody::new(
                ErrorCode::BadRequest,
                format!("with names 1 to {} members other than you", MAX_DIRECT_MEMBERS - 1),
            ));
        }
        for other in &others {
            session.may_start_direct(&starter, other, now).await?;
        }
        let mut members = vec![starter.clone()];
        members.extend(others.iter().cloned());
        let name = room::direct_room(&members);
        let room = match session.current_room(&name).await {
            Ok(room) => room,
            Err(error) if error.code == ErrorCode::NotFound => {
                session.refuse_blocked_pairs(&others).await?;
                session.start_direct(&starter, &others, now).await?;
                session.room(&name).await?
            }
            Err(error) => return Err(error),
        };
        // There already (started before, by anyone of them): back in if the
        // caller had left it.
        let decide = |s: &room::RoomState, ()| s.decide_return_to_direct(&starter);
        match session.shared.registry.decide_and_order_any(&room, (), decide, |_| ()).await {
            Ok(None) | Err(BrokerError::Rejected { why: Refusal::AlreadyMember, .. }) => {}
            Ok(Some(ordered)) => {
                applied(&room, ordered.receipt).await?;
            }
            Err(error) => return Err(error.into()),
        }
        session.reply(id, &room.decide(|s| s.info())).await;
        Ok(())
    }
}

impl Handle for Block {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let user = session.conn.user.clone();
        if self.user == user {
            return Err(ErrorBody::new(ErrorCode::BadRequest, "you cannot block yourself"));
        }
        let reads = session.shared.reads.clone();
        let before = reads.blocks(user.clone()).await?;
        if self.on && !before.contains(&self.user) && before.len() >= MAX_BLOCKS {
            return Err(ErrorBody::new(
                ErrorCode::LimitReached,
                format!("you block {MAX_BLOCKS} members already; lift a block first"),
            ));
        }
        reads.block(user.clone(), self.user, self.on).await?;
        let users = reads.blocks(user.clone()).await?;
        session.notify_user(user, Event::Blocks(BlocksEvent { users: users.clone() })).await;
        session.reply(id, &BlockList { users }).await;
        Ok(())
    }
}

impl Handle for Blocks {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let users = session.shared.reads.blocks(session.conn.user.clone()).await?;
        session.reply(id, &BlockList { users }).await;
        Ok(())
    }
}

impl Session {
    /// Whether `starter` may start a direct conversation with `other`: no
    /// block either way, and in every room `other` is in, `starter` neither
    /// banned nor waiting on a request nor muted nor on probation — and a
    /// member of at least one of them.
    async fn may_start_direct(&self, starter: &UserId, other: &UserId, now: Millis) -> Result<(), ErrorBody> {
        if self.shared.reads.blocks(starter.clone()).await?.contains(other) {
            return Err(direct_refused("blocked", format!("you block {other}; lift the block to write to them")));
        }
        if self.shared.reads.blocks(other.clone()).await?.contains(starter) {
            return Err(direct_refused("blocked", format!("{other} does not take direct messages from you")));
        }
        let mut shared = None;
        for name in self.rooms_of(other).await? {
            let Ok(room) = self.current_room(&name).await else { continue };
            let (kind, standing) = room.decide(|s| (s.record.visibility, s.direct_standing(starter, now)));
            if kind == Visibility::Direct {
                continue;
            }
            let refusal = |reason, why: &str| {
                direct_refused(reason, format!("you cannot write to {other} directly while {why} in room {name}"))
            };
            match standing {
                DirectStanding::Outside => {}
                DirectStanding::Member => shared = Some(name),
                DirectStanding::Banned => return Err(refusal("banned", "you are banned")),
                DirectStanding::Pending => return Err(refusal("pending", "your request to join is waiting")),
                DirectStanding::Muted => return Err(refusal("muted", "you are muted")),
                DirectStanding::OnProbation => return Err(refusal("probation", "you are new (on probation)")),
            }
        }
        if shared.is_none() {
            return Err(direct_refused(
                "no_shared_room",
                format!("you and {other} share no room; direct messages are between members of a room"),
            ));
        }
        Ok(())
    }

    /// In a new group, no one is put in a conversation with someone they
    /// block; who blocks whom is theirs, so the refusal does not say.
    async fn refuse_blocked_pairs(&self, others: &[UserId]) -> Result<(), ErrorBody> {
        if others.len() < 2 {
            return Ok(());
        }
        for other in others {
            let blocks = self.shared.reads.blocks(other.clone()).await?;
            if others.iter().any(|o| blocks.contains(o)) {
                return Err(direct_refused(
                    "blocked",
                    "two of the members you named do not take direct messages from each other; start it without one \
                     of them"
                        .to_string(),
                ));
            }
        }
        Ok(())
    }

    /// Makes a new conversation (counted against the starter's rate) and
    /// tells its other members, on every node, that they are in it.
    async fn start_direct(&self, starter: &UserId, others: &[UserId], now: Millis) -> Result<(), ErrorBody> {
        let most = self.shared.config.limits.direct_per_hour;
        if let Err(ms) = self.shared.reads.take_direct_start(starter.clone(), now, most).await? {
            let ms = ms.max(1);
            return Err(ErrorBody::new(
                ErrorCode::RateLimited,
                format!("you started many direct conversations lately; the next one can start in {} s", ms / 1000 + 1),
            )
            .retry_after(ms));
        }
        let (record, first) = room::decide_start_direct(starter, others, crate::broker::new_epoch(), now);
        let name = record.room.clone();
        let members = record.direct.clone();
        match self.shared.registry.broker().create_room(record, first, None).await {
            Ok(receipt) => {
                let published = receipt.durable().await?;
                let room = self.room(&name).await?;
                applied_within(room.wait_applied(published.seq)).await?;
                self.tell_direct_members(name, members, published.ts).await;
                Ok(())
            }
            // Started by another of them a moment ago.
            Err(BrokerError::AlreadyExists(_)) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    async fn tell_direct_members(&self, room: RoomId, members: Vec<UserId>, ts: Millis) {
        let from = self.conn.user.clone();
        let event = DirectStartedEvent { room, seq: Seq(1), ts, from: from.clone(), members: members.clone() };
        for member in members.into_iter().filter(|m| *m != from) {
            self.notify_user(member, Event::DirectStarted(event.clone())).await;
        }
    }

    /// Refuses a post to a conversation while the operator has direct
    /// messages off, and to a conversation of two whose other member blocks
    /// the poster: "no direct messages from them". In a larger conversation
    /// the blocker's clients collapse the blocked member's messages instead,
    /// so one member cannot silence another for the rest.
    pub(super) async fn check_direct_post(&self, room: &crate::rooms::Room) -> Result<(), ErrorBody> {
        let poster = &self.conn.user;
        let (direct, other) = room.decide(|s| {
            let direct = s.record.visibility == Visibility::Direct;
            let other = (direct && s.members.len() == 2).then(|| s.members.keys().find(|m| *m != poster).cloned());
            (direct, other.flatten())
        });
        if direct && self.shared.config.limits.direct_per_hour == 0 {
            return Err(direct_refused("off", "direct messages are turned off on this server".to_string()));
        }
        let Some(other) = other else { return Ok(()) };
        if self.shared.reads.blocks(other.clone()).await?.contains(poster) {
            return Err(direct_refused("blocked", format!("{other} does not take direct messages from you")));
        }
        Ok(())
    }
}
