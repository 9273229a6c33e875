//! Durable state: rooms, memberships, roles, pins and each room's timeline.
//!
//! A [`Store`] is synchronous and knows nothing of sessions or fan-out. Writes arrive
//! in batches from the journal's committer (see `journal.rs`), which is the only
//! writer; a batch is applied atomically and durably before `commit` returns. Reads
//! (history pages, catch-up) may run concurrently from blocking tasks.
//!
//! Two implementations share one conformance suite: [`memory::MemoryStore`]
//! (`--ephemeral`, bounded history per room) and [`sqlite::SqliteStore`] (the
//! default, SQLite in WAL mode).

pub mod memory;
pub mod sqlite;

use bytes::Bytes;
use hearth_protocol::ops::{PinnedNote, Visibility};
use hearth_protocol::{ClientMsgId, Epoch, Millis, PinId, Role, RoomId, Seq, ShortText, UserId};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot open the data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("stored record is corrupt ({what}): {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("the data directory was written by a newer Hearth (schema {found}, this build reads {supported}); upgrade")]
    SchemaTooNew { found: i64, supported: i64 },
}

/// A room's durable settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomRecord {
    pub room: RoomId,
    pub epoch: Epoch,
    pub owner: UserId,
    pub created_at: Millis,
    pub topic: ShortText,
    pub cap: u32,
    pub visibility: Visibility,
    #[serde(default)]
    pub slow_mode_secs: u32,
    #[serde(default)]
    pub required_role: Option<Role>,
    #[serde(default)]
    pub welcome: Option<ShortText>,
    #[serde(default)]
    pub probation_secs: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemberRecord {
    pub user: UserId,
    pub role: Role,
    pub joined_at: Millis,
    pub role_expires_at: Option<Millis>,
}

/// One timeline event as stored: its seq and its MessagePack event frame, the same
/// bytes that were fanned out to `hearth.v1.msgpack` connections.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: Seq,
    pub body: Bytes,
}

/// A timeline event to append, with the columns the store indexes.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub room: RoomId,
    pub seq: Seq,
    pub ts: Millis,
    pub from: UserId,
    pub cmid: Option<ClientMsgId>,
    pub thread: Option<Seq>,
    pub body: Bytes,
}

/// One change to durable state. A batch of them commits atomically.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    PutRoom(RoomRecord),
    PutMember { room: RoomId, member: MemberRecord },
    RemoveMember { room: RoomId, user: UserId },
    AppendEvent(EventRow),
    PutPin { room: RoomId, pin: PinnedNote },
    RemovePin { room: RoomId, pin: PinId },
}

/// Everything needed to rebuild a room in memory at start-up.
#[derive(Debug, Clone)]
pub struct RoomSnapshot {
    pub record: RoomRecord,
    pub members: Vec<MemberRecord>,
    pub pins: Vec<PinnedNote>,
    pub head: Seq,
    /// The newest events, oldest first: the room's recent cache and its window of
    /// client message ids for idempotent retries.
    pub recent: Vec<StoredEvent>,
}

pub trait Store: Send + Sync + 'static {
    /// Every room, with its newest `recent` events.
    fn load(&self, recent: usize) -> Result<Vec<RoomSnapshot>, StoreError>;
    /// Applies `writes` atomically; when it returns Ok they survive a crash (and, for
    /// a durable store, a power loss).
    fn commit(&self, writes: &[Write]) -> Result<(), StoreError>;
    /// Up to `limit` events with seq > `after`, oldest first.
    fn events_after(&self, room: &RoomId, after: Seq, limit: usize) -> Result<Vec<StoredEvent>, StoreError>;
    /// Up to `limit` events with seq < `before`, the newest of them, oldest first.
    fn events_before(&self, room: &RoomId, before: Seq, limit: usize) -> Result<Vec<StoredEvent>, StoreError>;
    /// Seq of the oldest event still held (head + 1 when none is).
    fn oldest(&self, room: &RoomId) -> Result<Seq, StoreError>;
    /// Whether state survives a restart.
    fn is_durable(&self) -> bool;
}

#[cfg(test)]
mod conformance;
