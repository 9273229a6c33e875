//! Read state: where the member has read up to in each room, shared by every
//! device of theirs (`mark_read`, `mark_all_read`, `read_state`). A mark is
//! told to each of the member's connections, on every node, as a `read`
//! event; unread counts are made from the timeline when asked.

use hearth_protocol::event::ReadEvent;
use hearth_protocol::ops::{
    AllRead, MAX_MENTION_PAGE, MAX_UNREAD_COUNTED, MarkAllRead, MarkRead, MentionItem, MentionList, Mentions, ReadMark,
    ReadState, ReadStateList, RoomRead,
};
use hearth_protocol::{ErrorBody, ErrorCode, Event, RequestId, RoomId, Seq, UserId};

use super::Session;
use super::dispatch::Handle;
use crate::reads::Mention;
use crate::room::AnnexTable;
use crate::room::messages::{Annotations, TextNow};

impl Handle for MarkRead {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let room = session.member_room(&self.room).await?;
        let seq = self.seq.min(room.position().seq);
        let held = session.mark(room.id.clone(), seq).await?;
        session.reply(id, &ReadMark { room: room.id.clone(), seq: held }).await;
        Ok(())
    }
}

impl Handle for MarkAllRead {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let mut rooms = 0;
        for room in session.my_rooms().await? {
            let room = session.current_room(&room).await?;
            session.mark(room.id.clone(), room.position().seq).await?;
            rooms += 1;
        }
        session.reply(id, &AllRead { rooms }).await;
        Ok(())
    }
}

impl Handle for ReadState {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let user = session.conn.user.clone();
        let positions = session.shared.reads.positions(user.clone()).await?;
        let mut rooms = Vec::new();
        for room in session.my_rooms().await? {
            let room = session.current_room(&room).await?;
            let seq = positions.get(&room.id).copied().unwrap_or(Seq(0));
            let head = room.position().seq;
            let (unread, more) = session.unread(&room.id, &user, seq).await?;
            rooms.push(RoomRead { room: room.id.clone(), seq, head, unread, more });
        }
        session.reply(id, &ReadStateList { rooms }).await;
        Ok(())
    }
}

impl Handle for Mentions {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let limit = usize::from(self.limit.unwrap_or(MAX_MENTION_PAGE).clamp(1, MAX_MENTION_PAGE));
        let mut cursor = match self.before.as_deref() {
            None => None,
            Some(text) => Some(Mention::from_cursor(text).ok_or_else(|| {
                ErrorBody::new(ErrorCode::BadRequest, "before is not a cursor from a mentions page's next")
            })?),
        };
        let user = session.conn.user.clone();
        let reads = session.shared.reads.clone();
        let positions = reads.positions(user.clone()).await?;
        let mut mentions = Vec::new();
        // Mentions in rooms left since, or of messages deleted since, are
        // passed over; a few more reads fill the page.
        'pages: for _ in 0..4 {
            let batch = reads.mentions(user.clone(), cursor.clone(), limit * 2).await?;
            let last_batch = batch.len() < limit * 2;
            for mention in batch {
                if mentions.len() == limit {
                    break 'pages;
                }
                cursor = Some(mention.clone());
                if let Some(item) = session.mention_now(&mention, &user, &positions).await {
                    mentions.push(item);
                }
            }
            if last_batch {
                cursor = None;
                break;
            }
        }
        let next = cursor.filter(|_| mentions.len() == limit).map(|c| c.cursor());
        session.reply(id, &MentionList { mentions, next }).await;
        Ok(())
    }
}

impl Session {
    /// A mention as its message is now, if the member may still read it
    /// (still in the room) and it is still there (not deleted).
    async fn mention_now(
        &self,
        mention: &Mention,
        user: &UserId,
        positions: &std::collections::HashMap<RoomId, Seq>,
    ) -> Option<MentionItem> {
        let room = self.current_room(&mention.room).await.ok()?;
        if !room.is_member(user) {
            return None;
        }
        let (message, notes) = self.message_at(&room, mention.seq).await.ok()?;
        let now = TextNow::of(&notes);
        if now.as_ref().is_some_and(TextNow::is_gone) {
            return None;
        }
        let from = match now.as_ref().is_some_and(TextNow::is_former) {
            true => crate::room::messages::former_member(),
            false => mention.from.clone(),
        };
        let text = match now.as_ref().and_then(TextNow::text_change) {
            Some(TextNow::Edited(newest)) => newest.text.clone(),
            _ => message.text,
        };
        let read = positions.get(&room.id).is_some_and(|at| *at >= mention.seq);
        Some(MentionItem {
            room: room.id.clone(),
            seq: mention.seq,
            ts: mention.ts,
            from,
            text,
            thread: message.thread,
            read,
        })
    }

    /// Moves the caller's position in `room` forward to `seq` and tells each
    /// of their connections where it now is.
    async fn mark(&self, room: RoomId, seq: Seq) -> Result<Seq, ErrorBody> {
        let user = self.conn.user.clone();
        let held = self.shared.reads.advance(user.clone(), room.clone(), seq).await?;
        self.notify_user(user, Event::Read(ReadEvent { room, seq: held })).await;
        Ok(held)
    }

    /// Every room the caller is a member of, by name.
    pub(super) async fn my_rooms(&self) -> Result<Vec<RoomId>, ErrorBody> {
        self.rooms_of(&self.conn.user).await
    }

    /// Every room `user` is a member of, by name.
    pub(super) async fn rooms_of(&self, user: &UserId) -> Result<Vec<RoomId>, ErrorBody> {
        self.shared.registry.rooms_of(user).await
    }

    /// Messages in `room` after `seq` from others than `user` and not
    /// deleted since, up to `MAX_UNREAD_COUNTED`, and whether there are more.
    /// Only messages count: the events a member may not see (join requests,
    /// held posts) are not messages.
    async fn unread(&self, room: &RoomId, user: &UserId, seq: Seq) -> Result<(u32, bool), ErrorBody> {
        let broker = self.shared.registry.broker();
        let mut after = seq;
        let mut count = 0;
        loop {
            let page = broker.history_after(room.clone(), after, 500).await?;
            let Some(last) = page.last() else { return Ok((count, false)) };
            after = last.seq;
            let others: Vec<Seq> = page
                .iter()
                .filter_map(|stored| match rmp_serde::from_slice::<Event>(&stored.body) {
                    Ok(Event::Message(message)) if &message.from != user => Some(message.seq),
                    _ => None,
                })
                .collect();
            if others.is_empty() {
                continue;
            }
            let rows = broker.annex(room.clone(), AnnexTable::Message, others.clone()).await?;
            for seq in others {
                if Annotations::read(rows.iter().filter(|r| r.target == seq)).deleted.is_some() {
                    continue;
                }
                if count == MAX_UNREAD_COUNTED {
                    return Ok((count, true));
                }
                count += 1;
            }
        }
    }
}
