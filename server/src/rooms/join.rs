//! A connection starts receiving a room: the `join` reply, then — resuming
//! from a position — the events it missed, older ones paged from the broker
//! with backpressure, the rest in one step with the switch to live under the
//! room's lock: no gap, no duplicate, and no text taken back since.

use std::collections::BTreeMap;
use std::sync::Arc;

use hearth_protocol::codec::encode_reply;
use hearth_protocol::event::TruncatedEvent;
use hearth_protocol::ops::{Joined, ResumeMode};
use hearth_protocol::{Epoch, ErrorBody, Event, Millis, Position, RequestId, Role, RoomId, Seq};

use super::{PAGE, Room};
use crate::broker::BrokerError;
use crate::frames::{Committed, Encoded, TextRole, event_frame, frame_message};
use crate::hub::Conn;
use crate::outbound::BurstError;
use crate::refusals::{self, refused};
use crate::room::messages::{Annotations, TextNow};
use crate::room::rows::VersionAnn;
use crate::room::{Refusal, RoomState};

impl Room {
    /// Starts receiving the room on `conn`, answering the `join` request `id` first:
    /// with `since`, the events after it, then live ones — no gap, no duplicate at
    /// the switch, which happens under the room's lock after checking, in the
    /// room's order, that the user is still a member.
    pub async fn join(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        id: RequestId,
        since: Option<Position>,
        first_join: bool,
        now: Millis,
    ) -> Result<(), ErrorBody> {
        let (after, replied) = {
            let mut inner = self.lock();
            let role = inner.state.role_of(&conn.user, now).ok_or_else(|| refused(&self.id, &Refusal::NotMember))?;
            if inner.subscribers.len() >= self.limits.receivers {
                return Err(refusals::receivers_full(&self.id, self.limits.receivers));
            }
            let head = inner.state.head;
            let mode = match since {
                None => ResumeMode::Fresh,
                Some(p) if p.epoch != inner.state.record.epoch || p.seq > head => ResumeMode::Truncated,
                Some(_) => ResumeMode::Replay,
            };
            let after = since.map_or(head, |p| p.seq);
            if mode != ResumeMode::Replay {
                push_reply(conn, id, &joined_reply(&inner.state, role, mode, first_join));
                inner.subscribe(&self.id, conn);
                return Ok(());
            }
            // Covered by the recent events: reply now; the catch-up below sends
            // them and subscribes in one step under the lock.
            let replied = inner.recent_covers(after);
            if replied {
                push_reply(conn, id, &joined_reply(&inner.state, role, mode, first_join));
            }
            (after, replied)
        };
        let after = if replied {
            after
        } else {
            // What follows `after` is older than the recent events: is it still held?
            let oldest = self.broker.oldest(self.id.clone()).await?;
            let mode = if oldest > after.next() { ResumeMode::Truncated } else { ResumeMode::Replay };
            let inner = self.lock();
            let role = inner.state.role_of(&conn.user, now).ok_or_else(|| refused(&self.id, &Refusal::NotMember))?;
            push_reply(conn, id, &joined_reply(&inner.state, role, mode, first_join));
            if mode == ResumeMode::Truncated { inner.state.head } else { after }
        };
        if let Err(error) = self.catch_up_and_subscribe(conn, after, now).await {
            // The request has its reply already; a stream with a hole in it is worse
            // than a reconnect, which resumes from the client's last position.
            tracing::warn!(conn = conn.id.0, room = %self.id, %error, "catch-up failed; closing");
            conn.out.close(
                hearth_protocol::CloseCode::InternalError,
                format!("internal_error: catch-up failed ({}); reconnect and resume", error.code),
            );
        }
        Ok(())
    }

    /// Sends `conn` every applied event after `after` — older ones read from the
    /// broker page by page, with backpressure — then subscribes it under the lock.
    /// A page that does not start where the last one ended means the events in
    /// between are gone: the client is told `truncated`, never left with a hole.
    /// The final step sends the rest from the recent events in one burst, which
    /// must fit in the connection's queue; when it does not, those events go out
    /// with backpressure first and the step is tried again closer to the head.
    async fn catch_up_and_subscribe(&self, conn: &Arc<Conn>, mut after: Seq, now: Millis) -> Result<(), ErrorBody> {
        // What this member may receive of the events for welcomers and above.
        let role = self.lock().state.role_of(&conn.user, now).unwrap_or(Role::Member);
        // Each pass either finishes or moves `after` forward; the bound only stops a
        // reader that can never catch a room writing faster than it.
        for _ in 0..100_000 {
            // Messages edited or deleted after `after`: their old text is not replayed.
            let (recent, changed): (Vec<Arc<Encoded>>, BTreeMap<Seq, TextNow>) = {
                let mut inner = self.lock();
                if !inner.recent_covers(after) {
                    (Vec::new(), BTreeMap::new())
                } else {
                    if !inner.state.members.contains_key(&conn.user) {
                        // They left while catching up; the replay showed it.
                        return Ok(());
                    }
                    let recent: Vec<Arc<Encoded>> = inner.recent.iter().filter(|e| e.seq > after).cloned().collect();
                    let changed = changes_among(&recent);
                    let burst = recent
                        .iter()
                        .filter(|e| e.audience <= role)
                        .map(|e| e.frame_now(conn.codec, &changed))
                        .collect();
                    match conn.out.try_push_burst(burst) {
                        Ok(()) => {
                            inner.subscribe(&self.id, conn);
                            return Ok(());
                        }
                        Err(BurstError::Closed) => return Ok(()),
                        // Too much at once for the queue's bound: send these with
                        // backpressure first, then try again closer to the head.
                        Err(BurstError::TooBig(_)) => (recent, changed),
                    }
                }
            };
            if !recent.is_empty() {
                for encoded in recent {
                    if encoded.audience <= role
                        && conn.out.push_wait(encoded.frame_now(conn.codec, &changed)).await.is_err()
                    {
                        return Ok(());
                    }
                    after = encoded.seq;
                }
                continue;
            }
            let page = self.broker.history_after(self.id.clone(), after, PAGE).await?;
            match page.first() {
                None => {
                    // Nothing held after `after`, yet the room is past it: the rest is
                    // gone. Skip to the recent events (or the head) next pass.
                    let next = {
                        let inner = self.lock();
                        inner.recent.front().map_or(inner.state.head.next(), |e| e.seq)
                    };
                    if conn.out.push_wait(truncated_frame(conn, &self.id, self.epoch(), after, next)).await.is_err() {
                        return Ok(());
                    }
                    after = Seq(next.0 - 1);
                    continue;
                }
                Some(first) if first.seq != after.next() => {
                    if conn
                        .out
                        .push_wait(truncated_frame(conn, &self.id, self.epoch(), after, first.seq))
                        .await
                        .is_err()
                    {
                        return Ok(());
                    }
                }
                Some(_) => {}
            }
            let page =
                page.iter().map(Committed::from_stored).collect::<Result<Vec<_>, _>>().map_err(BrokerError::from)?;
            let changed = self.changes_to(&page).await?;
            for committed in &page {
                let encoded = &committed.encoded;
                if encoded.audience <= role
                    && conn.out.push_wait(encoded.frame_now(conn.codec, &changed)).await.is_err()
                {
                    return Ok(());
                }
                after = encoded.seq;
            }
        }
        Err(refusals::catch_up_failed(&self.id))
    }

    /// What became of the text of the messages `page` carries text of — by
    /// now, wherever the edit or deletion is in the timeline, so it is read
    /// from their annotations (one read for the page).
    async fn changes_to(&self, page: &[Committed]) -> Result<BTreeMap<Seq, TextNow>, ErrorBody> {
        let mut texts: Vec<Seq> = page.iter().filter_map(|c| c.encoded.carries_text_of()).collect();
        texts.sort();
        texts.dedup();
        if texts.is_empty() {
            return Ok(BTreeMap::new());
        }
        let rows = self.broker.annex(self.id.clone(), crate::store::AnnexTable::Message, texts.clone()).await?;
        Ok(texts
            .into_iter()
            .filter_map(|seq| {
                let notes = Annotations::read(rows.iter().filter(|r| r.target == seq));
                TextNow::of(&notes).map(|now| (seq, now))
            })
            .collect())
    }
}

fn joined_reply(state: &RoomState, role: Role, resume: ResumeMode, first_join: bool) -> Joined {
    Joined { room: state.info(), role, resume, pins: state.ordered_pins(), first_join }
}

fn push_reply(conn: &Conn, id: RequestId, joined: &Joined) {
    let _ = conn.out.push(frame_message(conn.codec, encode_reply(conn.codec, id, joined)));
}

fn truncated_frame(
    conn: &Conn,
    room: &RoomId,
    epoch: Epoch,
    after: Seq,
    next: Seq,
) -> tokio_tungstenite::tungstenite::Message {
    event_frame(conn.codec, &Event::Truncated(TruncatedEvent { room: room.clone(), epoch, after, next }))
}

/// What the edits and deletions among `events` (consecutive, oldest first)
/// made of their messages' text. A message's later edits and its deletion
/// always follow it, so for a replay of `events` this is all there is.
fn changes_among(events: &[Arc<Encoded>]) -> BTreeMap<Seq, TextNow> {
    let mut changed: BTreeMap<Seq, TextNow> = BTreeMap::new();
    for encoded in events {
        let nows: Vec<(Seq, TextNow)> = match encoded.text {
            TextRole::Deletes(message) => vec![(message, TextNow::Deleted)],
            TextRole::Edits(message) => match encoded.event() {
                Event::Edit(edit) => vec![(message, TextNow::Edited(VersionAnn { text: edit.text, at: edit.ts }))],
                _ => continue,
            },
            TextRole::Erases => match encoded.event() {
                Event::Erased(erased) => {
                    let now = if erased.former_member { TextNow::Former(None) } else { TextNow::Erased };
                    erased.messages.into_iter().map(|message| (message, now.clone())).collect()
                }
                _ => continue,
            },
            TextRole::None | TextRole::Posts | TextRole::Pins(_) | TextRole::Reports(_) => continue,
        };
        for (message, now) in nows {
            match changed.get_mut(&message) {
                Some(earlier) => earlier.then(now),
                None => {
                    changed.insert(message, now);
                }
            }
        }
    }
    changed
}
