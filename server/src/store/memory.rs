//! The `--ephemeral` store: everything in memory, nothing written. Each room keeps
//! at most `history_limit` events, so memory stays bounded; older events are gone
//! and a resume from before them is answered with `truncated`. Members, pins and
//! settings are kept whole, so a room that left memory on a quiet spell loads
//! again as it was.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use hearth_protocol::ops::PinnedNote;
use hearth_protocol::{Millis, PinId, Role, RoomId, Seq, UserId};

use super::{
    AnnexRow, AnnexTable, Change, EventRow, MemberRecord, RoomListing, RoomLoad, RoomRecord, Row, RowTable,
    SentMessage, Store, StoreError, StoredEvent, Write,
};

pub struct MemoryStore {
    /// One lock for all rooms: each critical section is a push or a short copy.
    rooms: Mutex<BTreeMap<RoomId, MemoryRoom>>,
    history_limit: usize,
}

struct MemoryRoom {
    record: RoomRecord,
    members: HashMap<UserId, MemberRecord>,
    pins: BTreeMap<PinId, PinnedNote>,
    rows: BTreeMap<(RowTable, String), Vec<u8>>,
    /// Annotations, kept only for events still held (forgotten with them).
    annex: BTreeMap<(AnnexTable, Seq, String), Vec<u8>>,
    events: VecDeque<EventRow>,
    head: Seq,
    last_ts: Millis,
}

impl MemoryStore {
    pub fn new(history_limit: usize) -> MemoryStore {
        MemoryStore { rooms: Mutex::new(BTreeMap::new()), history_limit: history_limit.max(1) }
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, BTreeMap<RoomId, MemoryRoom>> {
        self.rooms.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn stored(row: &EventRow) -> StoredEvent {
    StoredEvent { seq: row.seq, body: row.body.clone() }
}

impl Store for MemoryStore {
    fn load_room(&self, room: &RoomId, recent: usize) -> Result<Option<RoomLoad>, StoreError> {
        let rooms = self.rooms();
        Ok(rooms.get(room).map(|room| RoomLoad {
            record: room.record.clone(),
            members: room.members.values().cloned().collect(),
            pins: room.pins.values().cloned().collect(),
            rows: room
                .rows
                .iter()
                .map(|((table, key), value)| Row { table: *table, key: key.clone(), value: value.clone() })
                .collect(),
            head: room.head,
            last_ts: room.last_ts,
            recent: room.events.iter().skip(room.events.len().saturating_sub(recent)).map(stored).collect(),
        }))
    }

    fn list_rooms(&self, user: &UserId, after: Option<&RoomId>, limit: usize) -> Result<Vec<RoomListing>, StoreError> {
        let rooms = self.rooms();
        let start = match after {
            Some(after) => std::ops::Bound::Excluded(after.clone()),
            None => std::ops::Bound::Unbounded,
        };
        Ok(rooms
            .range((start, std::ops::Bound::Unbounded))
            .map(|(_, room)| RoomListing {
                record: room.record.clone(),
                members: room.members.len() as u32,
                role: room.members.get(user).map(|m| m.role),
            })
            .filter(|l| l.record.visibility.listed_to_outsiders() || l.role.is_some())
            .take(limit)
            .collect())
    }

    fn room_names(&self, after: Option<&RoomId>, limit: usize) -> Result<Vec<RoomId>, StoreError> {
        let rooms = self.rooms();
        let start = match after {
            Some(after) => std::ops::Bound::Excluded(after.clone()),
            None => std::ops::Bound::Unbounded,
        };
        Ok(rooms.range((start, std::ops::Bound::Unbounded)).map(|(name, _)| name.clone()).take(limit).collect())
    }

    fn rooms_owned(&self, user: &UserId) -> Result<usize, StoreError> {
        let rooms = self.rooms();
        Ok(rooms.values().filter(|r| r.members.get(user).is_some_and(|m| m.role == Role::Owner)).count())
    }

    fn recent_cmids(&self, room: &RoomId, limit: usize) -> Result<Vec<SentMessage>, StoreError> {
        let rooms = self.rooms();
        let Some(room) = rooms.get(room) else { return Ok(Vec::new()) };
        Ok(room
            .events
            .iter()
            .skip(room.events.len().saturating_sub(limit))
            .filter_map(|row| {
                let cmid = row.cmid.clone()?;
                Some(SentMessage { seq: row.seq, ts: row.ts, from: row.from.clone(), cmid })
            })
            .collect())
    }

    fn commit(&self, writes: &[Write]) -> Result<(), StoreError> {
        let mut rooms = self.rooms();
        for write in writes {
            match write {
                Write::CreateRoom(record) => {
                    rooms.entry(record.room.clone()).or_insert_with(|| MemoryRoom {
                        record: record.clone(),
                        members: HashMap::new(),
                        pins: BTreeMap::new(),
                        rows: BTreeMap::new(),
                        annex: BTreeMap::new(),
                        events: VecDeque::new(),
                        head: Seq::ZERO,
                        last_ts: record.created_at,
                    });
                }
                Write::Change { room, change } => {
                    let Some(room) = rooms.get_mut(room) else { continue };
                    match change {
                        Change::PutMember(member) => {
                            room.members.insert(member.user.clone(), member.clone());
                        }
                        Change::RemoveMember(user) => {
                            room.members.remove(user);
                        }
                        Change::PutPin(pin) => {
                            room.pins.insert(pin.pin, pin.clone());
                        }
                        Change::RemovePin(pin) => {
                            room.pins.remove(pin);
                        }
                        Change::UpdateSettings(settings) => room.record.apply_settings(settings),
                        Change::SetRole { user, role, expires_at } => {
                            if let Some(member) = room.members.get_mut(user) {
                                member.role = *role;
                                member.role_expires_at = *expires_at;
                            }
                        }
                        Change::PutRow(row) => {
                            room.rows.insert((row.table, row.key.clone()), row.value.clone());
                        }
                        Change::RemoveRow { table, key } => {
                            room.rows.remove(&(*table, key.clone()));
                        }
                        Change::PutAnnex(a) => {
                            room.annex.insert((a.table, a.target, a.key.clone()), a.value.clone());
                        }
                        Change::RemoveAnnex { table, target, key } => {
                            room.annex.remove(&(*table, *target, key.clone()));
                        }
                        Change::UseInvite(id) => {
                            if let Some(value) = room.rows.get_mut(&(RowTable::Invite, id.clone())) {
                                *value = crate::room::rows::count_use(value);
                            }
                        }
                        Change::RetextPins { message, text } => {
                            for pin in room.pins.values_mut().filter(|p| p.seq == Some(*message)) {
                                crate::room::messages::retext_pin(pin, text.as_ref());
                            }
                        }
                    }
                }
                Write::AppendEvent(row) => {
                    if let Some(room) = rooms.get_mut(&row.room) {
                        room.events.push_back(row.clone());
                        room.head = row.seq;
                        room.last_ts = room.last_ts.max(row.ts);
                        while room.events.len() > self.history_limit {
                            room.events.pop_front();
                        }
                        if let Some(oldest) = room.events.front().map(|e| e.seq) {
                            // Each table's annotations go with the events they annotate.
                            room.annex.retain(|(_, target, _), _| *target >= oldest);
                        }
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
        Ok(room.events.iter().skip(start).take(limit).map(stored).collect())
    }

    fn events_before(&self, room: &RoomId, before: Seq, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let rooms = self.rooms();
        let Some(room) = rooms.get(room) else { return Ok(Vec::new()) };
        let end = room.events.partition_point(|e| e.seq < before);
        let start = end.saturating_sub(limit);
        Ok(room.events.range(start..end).map(stored).collect())
    }

    fn oldest(&self, room: &RoomId) -> Result<Seq, StoreError> {
        let rooms = self.rooms();
        Ok(rooms.get(room).map_or(Seq(1), |room| room.events.front().map_or(room.head.next(), |e| e.seq)))
    }

    fn is_durable(&self) -> bool {
        false
    }

    fn rooms_with(&self, table: RowTable) -> Result<Vec<RoomId>, StoreError> {
        let rooms = self.rooms();
        Ok(rooms.iter().filter(|(_, r)| r.rows.keys().any(|(t, _)| *t == table)).map(|(id, _)| id.clone()).collect())
    }

    fn annex(&self, room: &RoomId, table: AnnexTable, targets: &[Seq]) -> Result<Vec<AnnexRow>, StoreError> {
        let rooms = self.rooms();
        let Some(room) = rooms.get(room) else { return Ok(Vec::new()) };
        Ok(room
            .annex
            .iter()
            .filter(|((t, target, _), _)| *t == table && targets.contains(target))
            .map(|((table, target, key), value)| AnnexRow {
                table: *table,
                target: *target,
                key: key.clone(),
                value: value.clone(),
            })
            .collect())
    }

    fn annex_before(
        &self,
        room: &RoomId,
        table: AnnexTable,
        before: Seq,
        limit: usize,
    ) -> Result<Vec<AnnexRow>, StoreError> {
        let rooms = self.rooms();
        let Some(room) = rooms.get(room) else { return Ok(Vec::new()) };
        let (mut rows, mut targets, mut last) = (Vec::new(), 0, None);
        let below = (table, Seq::ZERO, String::new())..(table, before, String::new());
        for ((table, target, key), value) in room.annex.range(below).rev() {
            if last != Some(*target) {
                if targets == limit {
                    break;
                }
                targets += 1;
                last = Some(*target);
            }
            rows.push(AnnexRow { table: *table, target: *target, key: key.clone(), value: value.clone() });
        }
        Ok(rows)
    }
}
