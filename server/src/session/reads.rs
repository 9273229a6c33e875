//! Reading a room: history pages, thread pages, the room's health, and the
//! message reads the handlers share — a message as stored with its
//! annotations, and pages shown as messages are now.

use hearth_protocol::codec::encode_event;
use hearth_protocol::event::MessageEvent;
use hearth_protocol::ops::{History, HistoryPage, RoomStats, Stats, ThreadHistory};
use hearth_protocol::{Codec, ErrorBody, ErrorCode, Event, Millis, RequestId, Seq, limits};

use super::dispatch::Handle;
use super::{PAGE_BYTES, Session, fit_in_frame};
use crate::room::messages::{Annotations, TextNow};
use crate::room::permissions::Action;
use crate::room::{self, AnnexTable};
use crate::rooms::Room;

impl Handle for History {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let room = session.member_room(&args.room).await?;
        let page = session.history(&room, args.before, args.after, args.limit).await?;
        session.reply(id, &page).await;
        Ok(())
    }
}

impl Handle for ThreadHistory {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let room = session.member_room(&args.room).await?;
        let page = session.thread(&room, args).await?;
        session.reply(id, &page).await;
        Ok(())
    }
}

impl Handle for Stats {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.member_room(&args.room).await?;
        room.check(|s| s.require(&user, Action::Moderate, now))?;
        let windows = match args.days {
            Some(days) if (1..=90).contains(&days) => vec![days],
            Some(_) => return Err(ErrorBody::new(ErrorCode::BadRequest, "days must be 1 to 90")),
            None => vec![7, 30],
        };
        let longest = windows.iter().copied().max().unwrap_or(30);
        let events = session.events_since(&room, Millis(now.0.saturating_sub(u64::from(longest) * 86_400_000))).await?;
        let windows = windows.into_iter().map(|days| room::stats::window(&events, now, days)).collect();
        session.reply(id, &RoomStats { windows }).await;
        Ok(())
    }
}

impl Session {
    /// The room's events from `since` on (oldest first), read back from the
    /// newest a page at a time; at most 100,000, the newest of them.
    pub(super) async fn events_since(&self, room: &Room, since: Millis) -> Result<Vec<Event>, ErrorBody> {
        const MOST: usize = 100_000;
        let broker = self.shared.registry.broker();
        let mut before = room.position().seq.next();
        let mut newest_first = Vec::new();
        'pages: while newest_first.len() < MOST {
            let page = broker.history_before(room.id.clone(), before, 500).await?;
            let Some(first) = page.first() else { break };
            before = first.seq;
            for stored in page.iter().rev() {
                let Ok(event) = rmp_serde::from_slice::<Event>(&stored.body) else { continue };
                if event.ts().is_some_and(|ts| ts < since) {
                    break 'pages;
                }
                newest_first.push(event);
            }
        }
        newest_first.reverse();
        Ok(newest_first)
    }

    /// Message `seq` of `room` as stored, and its annotations.
    pub(super) async fn message_at(&self, room: &Room, seq: Seq) -> Result<(MessageEvent, Annotations), ErrorBody> {
        let broker = self.shared.registry.broker();
        let found = broker.events_at(room.id.clone(), vec![seq]).await?;
        let event = match found.first().map(|stored| rmp_serde::from_slice::<Event>(&stored.body)) {
            Some(Ok(Event::Message(message))) => message,
            _ => {
                return Err(ErrorBody::new(
                    ErrorCode::NoSuchTarget,
                    format!("room {} has no message at seq {seq} (or it is no longer held)", room.id),
                ));
            }
        };
        let rows = broker.annex(room.id.clone(), AnnexTable::Message, vec![seq]).await?;
        Ok((event, Annotations::read(&rows)))
    }

    /// The text message `seq` was posted with.
    pub(super) async fn original_text(&self, room: &Room, seq: Seq) -> Result<hearth_protocol::Text, ErrorBody> {
        let found = self.shared.registry.broker().events_at(room.id.clone(), vec![seq]).await?;
        match found.first().map(|stored| rmp_serde::from_slice::<Event>(&stored.body)) {
            Some(Ok(Event::Message(message))) => Ok(message.text),
            _ => Err(ErrorBody::new(ErrorCode::NoSuchTarget, format!("no message at seq {seq}"))),
        }
    }

    /// Shows the messages among `events` as they are now (edits, deletions,
    /// reactions, replies), and the pins of messages with the message's text
    /// as it is now, reading their annotations in one call.
    pub(super) async fn overlay(&self, room: &Room, events: &mut [Event]) -> Result<(), ErrorBody> {
        overlay(self.shared.registry.broker().as_ref(), &room.id, events).await?;
        Ok(())
    }

    /// A page of a thread: its root, then the replies after `after`.
    pub(super) async fn thread(&self, room: &Room, args: ThreadHistory) -> Result<HistoryPage, ErrorBody> {
        let limit = usize::from(args.limit.unwrap_or(limits::DEFAULT_PAGE_LIMIT).clamp(1, limits::MAX_PAGE_LIMIT));
        let (root, notes) = self.message_at(room, args.root).await?;
        let after = args.after.unwrap_or(Seq::ZERO);
        let later: Vec<Seq> = notes.replies.iter().copied().filter(|s| *s > after).collect();
        let more = later.len() > limit;
        let page: Vec<Seq> = later.into_iter().take(limit).collect();
        let broker = self.shared.registry.broker();
        let stored = broker.events_at(room.id.clone(), page).await?;
        let mut events = vec![Event::Message(root)];
        for stored in &stored {
            let event = rmp_serde::from_slice::<Event>(&stored.body)
                .map_err(|e| ErrorBody::new(ErrorCode::Internal, format!("a stored event is unreadable: {e}")))?;
            events.push(event);
        }
        self.overlay(room, &mut events).await?;
        // Replies of 8 KiB of control characters are 48 KiB each in JSON.
        let more = fit_in_frame(self.conn.codec, &mut events) || more;
        let oldest = broker.oldest(room.id.clone()).await?;
        Ok(HistoryPage { room: room.id.clone(), epoch: room.position().epoch, events, more, oldest })
    }

    async fn history(
        &self,
        room: &Room,
        before: Option<Seq>,
        after: Option<Seq>,
        limit: Option<u16>,
    ) -> Result<HistoryPage, ErrorBody> {
        if before.is_some() && after.is_some() {
            return Err(ErrorBody::new(ErrorCode::BadRequest, "history takes before or after, not both"));
        }
        let limit = usize::from(limit.unwrap_or(limits::DEFAULT_PAGE_LIMIT).clamp(1, limits::MAX_PAGE_LIMIT));
        // Read the position first: a page never shows events past it, so it never
        // runs ahead of what this connection's stream has delivered.
        let position = room.position();
        let broker = self.shared.registry.broker();
        let fetched = match after {
            Some(after) => broker.history_after(room.id.clone(), after, limit + 1).await,
            None => {
                let before = before.unwrap_or(Seq::MAX).min(position.seq.next());
                broker.history_before(room.id.clone(), before, limit + 1).await
            }
        };
        let mut stored: Vec<_> = fetched?.into_iter().filter(|e| e.seq <= position.seq).collect();
        let oldest = broker.oldest(room.id.clone()).await?;
        let mut more = stored.len() > limit;
        if more {
            if after.is_some() {
                stored.truncate(limit);
            } else {
                stored.remove(0);
            }
        }
        // Pages go out from the end the client asked from: the oldest first when
        // paging forward, the newest first when paging back.
        if after.is_none() {
            stored.reverse();
        }
        let mut events = Vec::with_capacity(stored.len());
        let mut bytes = 0;
        let role = room
            .decide(|s| s.role_of(&self.conn.user, self.shared.clock.now()))
            .unwrap_or(hearth_protocol::Role::Member);
        for stored in &stored {
            let event = rmp_serde::from_slice::<Event>(&stored.body)
                .map_err(|e| ErrorBody::new(ErrorCode::Internal, format!("a stored event is unreadable: {e}")))?;
            if room::audience(&event) > role {
                continue;
            }
            // A page is bounded by its size in this connection's codec too: JSON
            // escapes can make a message six times longer than its MessagePack.
            bytes += match self.conn.codec {
                Codec::MsgPack => stored.body.len(),
                Codec::Json => encode_event(Codec::Json, &event).len(),
            };
            if bytes > PAGE_BYTES && !events.is_empty() {
                more = true;
                break;
            }
            events.push(event);
        }
        self.overlay(room, &mut events).await?;
        if bytes > PAGE_BYTES / 2 {
            // What messages are now (reactions, replies) adds to each: measured
            // again, keeping the end the client asked from.
            more |= fit_in_frame(self.conn.codec, &mut events);
        }
        if after.is_none() {
            events.reverse();
        }
        Ok(HistoryPage { room: room.id.clone(), epoch: position.epoch, events, more, oldest })
    }
}

/// Shows the messages among `events` as they are now (edits, deletions,
/// reactions, replies), and the pins of messages with the message's text as
/// it is now, reading their annotations in one call; returns those rows.
pub(crate) async fn overlay(
    broker: &dyn crate::broker::Broker,
    room: &hearth_protocol::RoomId,
    events: &mut [Event],
) -> Result<Vec<crate::room::AnnexRow>, crate::broker::BrokerError> {
    // The message whose text (or author) an event shows: its own, a pin's,
    // a report's; a held post's own, for an erased member's.
    let about = |event: &Event| match event {
        Event::Message(m) => Some(m.seq),
        Event::Held(h) => Some(h.seq),
        Event::Pin(p) => p.pin.seq,
        Event::Report(r) => Some(r.message),
        _ => None,
    };
    let mut targets: Vec<Seq> = events.iter().filter_map(about).collect();
    targets.sort();
    targets.dedup();
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let rows = broker.annex(room.clone(), AnnexTable::Message, targets).await?;
    for event in events.iter_mut() {
        let Some(target) = about(event) else { continue };
        let notes = Annotations::read(rows.iter().filter(|r| r.target == target));
        match event {
            // All it says: edits, deletion, reactions, replies.
            Event::Message(message) => notes.apply(message),
            _ => {
                if let Some(now) = TextNow::of(&notes) {
                    now.apply(event);
                }
            }
        }
    }
    Ok(rows)
}
