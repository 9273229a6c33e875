//! Being in a room: creating one, finding rooms, joining (with a resume, an
//! invite, a room's gate) and leaving; who its members are and who is online.

use hearth_protocol::ops::{
    CreateRoom, Done, Join, Leave, ListRooms, MemberList, Members, OnlineMember, Presence, PresenceList, RoomList,
};
use hearth_protocol::{ErrorBody, Millis, RequestId, Role, UserId, limits};

use super::dispatch::Handle;
use super::ordering::{applied, applied_within};
use super::{Session, fit_in_frame};
use crate::broker::BrokerError;
use crate::refusals::refused;
use crate::room::{self, Refusal, RoomState};
use crate::rooms::Room;

impl Handle for CreateRoom {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let name = args.room.clone();
        let (record, first) =
            room::decide_create(&session.conn.user, args, crate::broker::new_epoch(), session.shared.clock.now())
                .map_err(|why| refused(&name, &why))?;
        let max_owned = Some(session.shared.config.limits.rooms_per_user);
        let receipt = session.shared.registry.broker().create_room(record, first, max_owned).await?;
        let published = receipt.durable().await?;
        let room = session.room(&name).await?;
        applied_within(room.wait_applied(published.seq)).await?;
        session.reply(id, &room.decide(|s| s.info())).await;
        Ok(())
    }
}

impl Handle for ListRooms {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let limit = self.limit.unwrap_or(limits::DEFAULT_ROOM_PAGE).clamp(1, limits::MAX_ROOM_PAGE);
        let user = &session.conn.user;
        let (mut rooms, more) = session.shared.registry.list_for(user, self.after, usize::from(limit)).await?;
        let cut = fit_in_frame(session.conn.codec, &mut rooms);
        session.reply(id, &RoomList { rooms, more: more || cut }).await;
        Ok(())
    }
}

/// Join: membership (durable and applied before the reply), the reply, then
/// the missed events, then live ones.
impl Handle for Join {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let user = session.conn.user.clone();
        // Decided on the room as its order stands: a ban or kick acknowledged
        // through another node a moment ago holds here too.
        let room = session.current_room(&args.room).await?;
        // A second join on the same connection restarts the stream from its `since`.
        room.unsubscribe(session.conn.id);
        session.conn.not_receiving(&room.id);
        let now = session.shared.clock.now();
        let invite = args.invite.as_deref().filter(|_| args.since.is_none());
        if invite.is_none() {
            session.check_gate(&room, now).await?;
        }
        let decide = |s: &RoomState, ()| match invite {
            // With a code: the invite is the way in, whatever the room's gate.
            Some(code) => s.decide_join_invited(&user, code, now),
            None => s.decide_join(&user, args.since, now),
        };
        let first_join = match session.shared.registry.decide_and_order_any(&room, (), decide, |_| ()).await {
            Ok(None) => false,
            Ok(Some(ordered)) => {
                let published = applied(&room, ordered.receipt).await?;
                // The join that tripped raid detection brought the lockdown
                // with it (it changed the room's rules): moderators who are
                // away are told.
                if room.decide(|s| s.rules_seq == published.seq && s.record.lockdown.is_some()) {
                    session.pending_queue(&room, Role::Moderator).durable(&published);
                }
                true
            }
            // Joined meanwhile on another connection: wait to see it applied.
            Err(BrokerError::Rejected { why: Refusal::AlreadyMember, .. }) => {
                applied_within(room.wait_for(|s| s.members.contains_key(&user))).await?;
                false
            }
            Err(error) => return Err(error.into()),
        };
        room.join(&session.conn, id, args.since, first_join, session.shared.clock.now()).await
    }
}

impl Handle for Leave {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let user = session.conn.user.clone();
        let room = session.room(&self.room).await?;
        session.decide_published(id, &room, (), |s, ()| s.decide_leave(&user), |_| Done {}).await
    }
}

impl Handle for Members {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let room = session.member_room(&self.room).await?;
        let elsewhere = session.online_elsewhere(&room).await;
        let mut members = room.members(session.shared.clock.now());
        for member in members.iter_mut() {
            member.online |= elsewhere.contains(&member.user);
        }
        session.reply(id, &MemberList { members }).await;
        Ok(())
    }
}

impl Handle for Presence {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let now = session.shared.clock.now();
        let room = session.member_room(&self.room).await?;
        let elsewhere = session.online_elsewhere(&room).await;
        let mut users: Vec<UserId> = room.online_here().into_iter().chain(elsewhere).collect();
        let online = room.decide(|s| {
            users.sort();
            users.dedup();
            users
                .into_iter()
                .filter_map(|user| Some(OnlineMember { role: s.role_of(&user, now)?, user }))
                .collect::<Vec<_>>()
        });
        session.reply(id, &PresenceList { online }).await;
        Ok(())
    }
}

impl Session {
    /// A gated room (`required_role`) takes a new member who holds that role in
    /// its lobby (`parent`); without a lobby, only by invite or approval.
    async fn check_gate(&self, room: &Room, now: Millis) -> Result<(), ErrorBody> {
        let user = &self.conn.user;
        let (required, parent, member) =
            room.decide(|s| (s.record.required_role, s.record.parent.clone(), s.members.contains_key(user)));
        let Some(required) = required.filter(|_| !member) else { return Ok(()) };
        let held = match &parent {
            Some(parent) => self.current_room(parent).await?.decide(|s| s.role_of(user, now)),
            None => None,
        };
        if held.is_some_and(|held| held >= required) {
            return Ok(());
        }
        Err(refused(&room.id, &Refusal::Gated { required, lobby: parent }))
    }

    /// Who the other nodes say is online in `room` (none on one node).
    async fn online_elsewhere(&self, room: &Room) -> Vec<UserId> {
        self.shared.registry.broker().presence(room.id.clone()).await.unwrap_or_default()
    }
}
