//! A room's moderators at work: roles and settings, kick, ban and unban,
//! mute and unmute, and the moderation log.

use hearth_protocol::ops::{Ban, Kick, ModEntry, ModLog, ModLogPage, Mute, SetRole, SetRoom, Unban, Unmute};
use hearth_protocol::{ErrorBody, ErrorCode, RequestId, RoomId, Seq, limits};

use super::Session;
use super::dispatch::Handle;
use crate::room::permissions::Action;
use crate::room::{self, AnnexTable};

impl Handle for SetRole {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.room(&args.room).await?;
        session.decide_applied(id, &room, args, |s, args| s.decide_set_role(&user, args, now)).await?;
        Ok(())
    }
}

impl Handle for SetRoom {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.room(&args.room).await?;
        if let Some(parent) = args.settings.parent.as_ref().filter(|p| !p.as_str().is_empty()) {
            let parent = RoomId::new(parent.as_str())
                .map_err(|e| ErrorBody::new(ErrorCode::BadRequest, format!("parent: {e}")))?;
            session.room(&parent).await?;
        }
        session.decide_applied(id, &room, args, |s, args| s.decide_set_room(&user, args.settings, now)).await?;
        Ok(())
    }
}

impl Handle for Kick {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.room(&args.room).await?;
        session.decide_applied(id, &room, args, |s, args| s.decide_kick(&user, &args.user, args.reason, now)).await?;
        Ok(())
    }
}

impl Handle for Ban {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.room(&args.room).await?;
        session
            .decide_applied(id, &room, args, |s, args| {
                s.decide_ban(&user, &args.user, args.reason, args.duration_secs, now)
            })
            .await?;
        Ok(())
    }
}

impl Handle for Unban {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.room(&args.room).await?;
        session.decide_applied(id, &room, args, |s, args| s.decide_unban(&user, &args.user, now)).await?;
        Ok(())
    }
}

impl Handle for Mute {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.room(&args.room).await?;
        session
            .decide_applied(id, &room, args, |s, args| {
                s.decide_mute(&user, &args.user, args.duration_secs, args.reason, now)
            })
            .await?;
        Ok(())
    }
}

impl Handle for Unmute {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.room(&args.room).await?;
        session.decide_applied(id, &room, args, |s, args| s.decide_unmute(&user, &args.user, now)).await?;
        Ok(())
    }
}

/// The room's moderation log, newest first, a page at a time.
impl Handle for ModLog {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let room = session.member_room(&args.room).await?;
        let now = session.shared.clock.now();
        room.check(|s| s.require(&session.conn.user, Action::Moderate, now))?;
        let limit = usize::from(args.limit.unwrap_or(limits::DEFAULT_PAGE_LIMIT).clamp(1, limits::MAX_PAGE_LIMIT));
        let before = Seq(args.before.unwrap_or(u64::MAX));
        let rows = session
            .shared
            .registry
            .broker()
            .annex_before(room.id.clone(), AnnexTable::ModLog, before, limit + 1)
            .await?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in &rows {
            let entry: ModEntry = room::rows::decode(&row.value).map_err(|e| {
                ErrorBody::new(ErrorCode::Internal, format!("a moderation log entry is unreadable: {e}"))
            })?;
            entries.push(entry);
        }
        let more = entries.len() > limit;
        entries.truncate(limit);
        session.reply(id, &ModLogPage { entries, more }).await;
        Ok(())
    }
}
