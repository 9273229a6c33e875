//! A bad day's tools: a moderator locking a room down (or lifting it), and
//! reading the room's word filter.

use hearth_protocol::ops::{FilterList, Filters, Lock};
use hearth_protocol::{ErrorBody, RequestId};

use super::Session;
use super::dispatch::Handle;
use crate::room::permissions::Action;

impl Handle for Lock {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.member_room(&args.room).await?;
        session
            .decide_applied(id, &room, args, |s, args| s.decide_lockdown(&user, args.level, args.duration_secs, now))
            .await
    }
}

impl Handle for Filters {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let (user, now) = session.caller();
        let room = session.member_room(&self.room).await?;
        let filters = room.check(|s| {
            s.require(&user, Action::Moderate, now)?;
            Ok(s.record.filters.clone())
        })?;
        session.reply(id, &FilterList { filters }).await;
        Ok(())
    }
}
