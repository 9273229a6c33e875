//! The one delivery path: committed events of a room, in seq order, whoever
//! ordered them — applied, fanned out, and kept; a gap is filled from the
//! broker's history, or told (`truncated`) where history lost it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hearth_protocol::{Position, Seq};

use super::{PAGE, Repair, Room};
use crate::frames::Committed;
use crate::room::RoomState;

impl Room {
    /// The one delivery path: committed events of this room, in seq order.
    pub fn deliver(self: &Arc<Self>, events: &[Committed]) {
        let mut inner = self.lock();
        let mut start_repair = false;
        for event in events {
            if let Some(repair) = &mut inner.repair {
                repair.hold(event);
            } else if event.seq() <= inner.state.head {
                // Delivered twice (a repair read it first): already applied.
            } else if event.seq() != inner.state.head.next() {
                let mut repair = Repair::default();
                repair.hold(event);
                inner.repair = Some(repair);
                start_repair = true;
            } else {
                inner.apply(&self.id, event, self.limits.recent_events);
            }
        }
        drop(inner);
        self.applied.notify_waiters();
        if start_repair {
            crate::metrics::get().repairs.increment(1);
            tracing::warn!(room = %self.id, "gap in delivery; reading the missing events from history");
            tokio::spawn(self.clone().repair());
        }
    }

    /// The broker says its order of the room is at `at` (see
    /// [`Delivery::resync`]): catch up from history if behind, reload if the room
    /// was made again under a new epoch.
    pub fn resync(self: &Arc<Self>, at: Option<Position>, now: bool) {
        let Some(at) = at else {
            tracing::error!(room = %self.id, "the broker no longer has this room; its receivers keep what they have");
            return;
        };
        // Not `lock()`: a check is not a use, and must not keep the room in memory.
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.repair.is_some() {
            return;
        }
        let head = inner.state.head;
        if at.epoch != inner.state.record.epoch {
            tracing::warn!(room = %self.id, epoch = %at.epoch.0, "the room was made again; reloading it");
            inner.repair = Some(Repair { held: BTreeMap::new(), until: head });
            drop(inner);
            let room = self.clone();
            tokio::spawn(async move {
                room.reload_after_hole(head).await;
                // The new epoch's events held meanwhile follow the reloaded head:
                // the repair applies them (or reads what is missing) and ends.
                room.repair().await;
            });
            return;
        }
        if at.seq <= head {
            inner.behind_seen = None;
            return;
        }
        let seen = inner.behind_seen.replace(at.seq);
        if now || seen.is_some_and(|seen| seen > head) {
            crate::metrics::get().repairs.increment(1);
            tracing::warn!(room = %self.id, %head, broker = %at.seq, "behind the broker's order; reading history");
            inner.behind_seen = None;
            inner.repair = Some(Repair { held: BTreeMap::new(), until: at.seq });
            drop(inner);
            tokio::spawn(self.clone().repair());
        }
    }

    /// Fills a gap: reads what is missing from history and applies it, then what
    /// was held back. Where history no longer has it, receivers are told
    /// `truncated` and the state is reloaded.
    async fn repair(self: Arc<Self>) {
        let mut failures = 0u32;
        loop {
            let (after, until) = {
                let mut inner = self.lock();
                let limits = self.limits;
                if inner.repair.is_none() {
                    return;
                }
                // Apply what was held back and now follows.
                let head = inner.state.head;
                let mut next = head.next();
                let mut ready = Vec::new();
                let repair = inner.repair.as_mut().expect("checked above");
                while let Some(event) = repair.held.remove(&next) {
                    next = next.next();
                    ready.push(event);
                }
                repair.held.retain(|seq, _| *seq >= next);
                let until = repair.until;
                for event in &ready {
                    inner.apply(&self.id, event, limits.recent_events);
                }
                if inner.state.head >= until {
                    inner.repair = None;
                    drop(inner);
                    self.applied.notify_waiters();
                    return;
                }
                (inner.state.head, until)
            };
            self.applied.notify_waiters();
            let want = usize::try_from(until.0 - after.0).unwrap_or(PAGE).min(PAGE);
            let page = match self.broker.history_after(self.id.clone(), after, want).await {
                Ok(page) => page,
                Err(error) => {
                    failures += 1;
                    tracing::warn!(room = %self.id, %error, failures, "repair could not read history; retrying");
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(failures.min(50)))).await;
                    continue;
                }
            };
            failures = 0;
            let hole = page.first().is_none_or(|first| first.seq != after.next());
            if hole {
                self.reload_after_hole(after).await;
                continue;
            }
            let mut inner = self.lock();
            for stored in page.iter().filter(|s| s.seq <= until) {
                if stored.seq != inner.state.head.next() {
                    break;
                }
                match Committed::from_stored(stored) {
                    Ok(event) => inner.apply(&self.id, &event, self.limits.recent_events),
                    Err(error) => {
                        tracing::error!(room = %self.id, %error, "unreadable event in history");
                        break;
                    }
                }
            }
        }
    }

    /// History lost the events after `after`: reload the state as the broker has it
    /// now, and tell receivers what they will never get.
    async fn reload_after_hole(&self, after: Seq) {
        let load = match self.broker.load_room(self.id.clone(), 0).await {
            Ok(Some(load)) => load,
            Ok(None) | Err(_) => {
                tracing::error!(room = %self.id, "room vanished during a repair");
                tokio::time::sleep(Duration::from_secs(1)).await;
                return;
            }
        };
        let mut inner = self.lock();
        if inner.state.head != after {
            return; // someone else moved on meanwhile; look again
        }
        // A room made again (a new epoch) counts on from the head it was made
        // with; within one epoch the head never goes back.
        let head = if load.record.epoch == inner.state.record.epoch { load.head.max(after) } else { load.head };
        tracing::warn!(room = %self.id, %after, next = %head.next(), "history lost; receivers told truncated");
        inner.tell_truncated(&self.id, load.record.epoch, after, head.next());
        match RoomState::restore(load.record, load.members, load.pins, &load.rows, head, load.last_ts) {
            Ok(state) => inner.state = state,
            Err(error) => {
                tracing::error!(room = %self.id, %error, "the reloaded room is unreadable; kept the old copy")
            }
        }
        inner.recent.clear();
        if let Some(repair) = inner.repair.as_mut() {
            repair.held.retain(|seq, _| *seq > head);
        }
    }
}
