//! The `--ephemeral` store: everything in memory, nothing written. Each room keeps
//! at most `history_limit` events, so memory stays bounded; older events are gone
//! and a resume from before them is answered with `truncated`.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use hearth_protocol::ops::PinnedNote;
use hearth_protocol::{RoomId, Seq, UserId};

use super::{MemberRecord, RoomRecord, RoomSnapshot, Store, StoreError, StoredEvent, Write};

pub struct MemoryStore {
    /// One lock for all rooms: each critical section is a push or a short copy.
    rooms: Mutex<HashMap<RoomId, MemoryRoom>>,
    history_limit: usize,
}

struct MemoryRoom {
    record: RoomRecord,
    members: HashMap<UserId, MemberRecord>,
    pins: Vec<PinnedNote>,
    events: VecDeque<StoredEvent>,
    head: Seq,
}

impl MemoryStore {
    pub fn new(history_limit: usize) -> MemoryStore {
        MemoryStore { rooms: Mutex::new(HashMap::new()), history_limit: history_limit.max(1) }
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<RoomId, MemoryRoom>> {
        self.rooms.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Store for MemoryStore {
    fn load(&self, recent: usize) -> Result<Vec<RoomSnapshot>, StoreError> {
        let rooms = self.rooms();
        Ok(rooms
            .values()
            .map(|room| RoomSnapshot {
                record: room.record.clone(),
                members: room.members.values().cloned().collect(),
                pins: room.pins.clone(),
                head: room.head,
                recent: room.events.iter().skip(room.events.len().saturating_sub(recent)).cloned().collect(),
            })
            .collect())
    }

    fn commit(&self, writes: &[Write]) -> Result<(), StoreError> {
        let mut rooms = self.rooms();
        for write in writes {
            match write {
                Write::PutRoom(record) => {
                    rooms.entry(record.room.clone()).and_modify(|room| room.record = record.clone()).or_insert_with(
                        || MemoryRoom {
                            record: record.clone(),
                            members: HashMap::new(),
                            pins: Vec::new(),
                            events: VecDeque::new(),
                            head: Seq::ZERO,
                        },
                    );
                }
                Write::PutMember { room, member } => {
                    if let Some(room) = rooms.get_mut(room) {
                        room.members.insert(member.user.clone(), member.clone());
                    }
                }
                Write::RemoveMember { room, user } => {
                    if let Some(room) = rooms.get_mut(room) {
                        room.members.remove(user);
                    }
                }
                Write::AppendEvent(row) => {
                    if let Some(room) = rooms.get_mut(&row.room) {
                        room.events.push_back(StoredEvent { seq: row.seq, body: row.body.clone() });
                        room.head = row.seq;
                        while room.events.len() > self.history_limit {
                            room.events.pop_front();
                        }
                    }
                }
                Write::PutPin { room, pin } => {
                    if let Some(room) = rooms.get_mut(room) {
                        room.pins.retain(|p| p.pin != pin.pin);
                        room.pins.push(pin.clone());
                    }
                }
                Write::RemovePin { room, pin } => {
                    if let Some(room) = rooms.get_mut(room) {
                        room.pins.retain(|p| p.pin != *pin);
                    }
                }
            }
        }
        Ok(())
    }

    fn events_after(&self, room: &RoomId, after: Seq, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let rooms = self.rooms();
        let Some(room) = rooms.get(room) else { return Ok(Vec::new()) };
        let start = room.events.partition_point(|e| e.seq <= after);
        Ok(room.events.iter().skip(start).take(limit).cloned().collect())
    }

    fn events_before(&self, room: &RoomId, before: Seq, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let rooms = self.rooms();
        let Some(room) = rooms.get(room) else { return Ok(Vec::new()) };
        let end = room.events.partition_point(|e| e.seq < before);
        let start = end.saturating_sub(limit);
        Ok(room.events.range(start..end).cloned().collect())
    }

    fn oldest(&self, room: &RoomId) -> Result<Seq, StoreError> {
        let rooms = self.rooms();
        Ok(rooms.get(room).map_or(Seq(1), |room| room.events.front().map_or(room.head.next(), |e| e.seq)))
    }

    fn is_durable(&self) -> bool {
        false
    }
}
