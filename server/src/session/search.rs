//! Search: messages containing a text, in the caller's rooms or one of them,
//! newest first. The node's index (`search.rs`) finds them; each is checked
//! against its room as it is now before it is shown — the caller still a
//! member, the message not deleted and still held, its text as last edited —
//! so an index that trails the timeline by a moment never shows more than
//! `history` would.

use std::collections::{BTreeMap, HashSet};

use hearth_protocol::ops::{MAX_SEARCH_PAGE, MAX_SEARCH_QUERY, Search, SearchResult, SearchResults};
use hearth_protocol::{ErrorBody, ErrorCode, Millis, RequestId, RoomId};

use super::Session;
use super::dispatch::Handle;
use crate::room::AnnexTable;
use crate::room::messages::{Annotations, TextNow};
use crate::search::{Hit, Query};

/// Results per page when the client does not say.
const DEFAULT_PAGE: u16 = 20;

impl Handle for Search {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let query = Query::new(&self.query).ok_or_else(|| {
            ErrorBody::new(
                ErrorCode::BadRequest,
                format!("query must be 1 to {MAX_SEARCH_QUERY} characters (not only spaces)"),
            )
        })?;
        let limit = usize::from(self.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_SEARCH_PAGE));
        let before = match self.before.as_deref() {
            None => None,
            Some(cursor) => Some(cursor.parse::<i64>().ok().filter(|c| *c > 0).ok_or_else(|| {
                ErrorBody::new(ErrorCode::BadRequest, "before is not a cursor from a search page's next")
            })?),
        };
        let rooms: HashSet<RoomId> = match self.room {
            Some(room) => HashSet::from([session.member_room(&room).await?.id.clone()]),
            None => session.my_rooms().await?.into_iter().collect(),
        };
        let index = session.shared.search.index().clone();
        let page = {
            let query = query.clone();
            tokio::task::spawn_blocking(move || index.search(&query, &rooms, before, limit))
                .await
                .map_err(|_| ErrorBody::new(ErrorCode::Internal, "the search was stopped; retry"))?
                .map_err(|error| {
                    tracing::error!(%error, "a search failed");
                    ErrorBody::new(ErrorCode::Internal, "the search index failed; retry")
                })?
        };
        let results = session.as_now(&query, page.hits).await?;
        let next = page.next.map(|key| key.to_string());
        session.reply(id, &SearchResults { results, next }).await;
        Ok(())
    }
}

impl Session {
    /// The hits the caller may still see, as their messages are now, newest
    /// first.
    async fn as_now(&self, query: &Query, hits: Vec<Hit>) -> Result<Vec<SearchResult>, ErrorBody> {
        let mut by_room: BTreeMap<RoomId, Vec<Hit>> = BTreeMap::new();
        for hit in hits {
            by_room.entry(hit.room.clone()).or_default().push(hit);
        }
        let broker = self.shared.registry.broker();
        let mut shown = Vec::new();
        for (room_id, hits) in by_room {
            let Ok(room) = self.current_room(&room_id).await else { continue };
            if !room.is_member(&self.conn.user) {
                continue;
            }
            let oldest = broker.oldest(room_id.clone()).await?;
            let seqs = hits.iter().map(|h| h.seq).collect();
            let rows = broker.annex(room_id.clone(), AnnexTable::Message, seqs).await?;
            for hit in hits {
                if hit.seq < oldest {
                    continue;
                }
                let now = TextNow::of(&Annotations::read(rows.iter().filter(|r| r.target == hit.seq)));
                if now.as_ref().is_some_and(TextNow::is_gone) {
                    continue;
                }
                let from = match now.as_ref().is_some_and(TextNow::is_former) {
                    true => crate::room::messages::former_member(),
                    false => hit.from,
                };
                let text = match now.as_ref().and_then(TextNow::text_change) {
                    // An edit the index has not read yet: the new text decides.
                    Some(TextNow::Edited(newest))
                        if newest.text.as_str() != hit.text && !query.found_in(newest.text.as_str()) =>
                    {
                        continue;
                    }
                    Some(TextNow::Edited(newest)) => newest.text.as_str().to_string(),
                    _ => hit.text,
                };
                shown.push((
                    hit.key,
                    SearchResult {
                        parts: query.parts(&text),
                        room: hit.room,
                        seq: hit.seq,
                        ts: Millis((hit.key >> 20) as u64),
                        from,
                        thread: hit.thread,
                    },
                ));
            }
        }
        shown.sort_by_key(|(key, _)| std::cmp::Reverse(*key));
        Ok(shown.into_iter().map(|(_, result)| result).collect())
    }
}
