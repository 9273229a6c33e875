//! Durable state: rooms, memberships, roles, pins and each room's timeline.
//!
//! A [`Store`] is synchronous and knows nothing of sessions or fan-out. Writes arrive
//! in batches from the journal's committer (see `journal.rs`), which is the only
//! writer; a batch is applied atomically and durably before `commit` returns. Reads
//! (history pages, catch-up, loading a room) may run concurrently from blocking
//! tasks.
//!
//! The timeline is the source of truth. Next to it the store keeps each room's
//! members, pins and settings as tables, written in the same transaction as the
//! event whose `room::changes` they are, so a room loads at its head without
//! replaying its history, and rooms can be listed without loading them.
//!
//! Two implementations share one conformance suite: [`memory::MemoryStore`]
//! (`--ephemeral`, bounded history per room) and [`sqlite::SqliteStore`] (the
//! default, SQLite in WAL mode).

pub mod memory;
pub mod sqlite;

use bytes::Bytes;
use hearth_protocol::ops::PinnedNote;
use hearth_protocol::{ClientMsgId, Millis, Role, RoomId, Seq, UserId};

pub use crate::room::{AnnexRow, AnnexTable, Change, MemberRecord, RoomRecord, Row, RowTable};

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
    /// A new room, before any of its events.
    CreateRoom(RoomRecord),
    /// What an event did to the room's members, pins or settings
    /// (`room::changes`): the tables a room is restored from.
    Change {
        room: RoomId,
        change: Change,
    },
    AppendEvent(EventRow),
}

/// A room as stored: its state at `head` and its newest events.
#[derive(Debug, Clone)]
pub struct RoomLoad {
    pub record: RoomRecord,
    pub members: Vec<MemberRecord>,
    pub pins: Vec<PinnedNote>,
    /// The room's loaded tables (bans, mutes, requests, ...; `room::rows`).
    pub rows: Vec<Row>,
    /// The seq of the newest event.
    pub head: Seq,
    /// The time of the newest event (the creation time when there is none).
    pub last_ts: Millis,
    /// The newest events, oldest first.
    pub recent: Vec<StoredEvent>,
}

/// A message's client id, for idempotent retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    pub seq: Seq,
    pub ts: Millis,
    pub from: UserId,
    pub cmid: ClientMsgId,
}

/// A room in a listing, with what a user needs to see about it.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomListing {
    pub record: RoomRecord,
    pub members: u32,
    /// The listing user's role, when a member.
    pub role: Option<Role>,
}

pub trait Store: Send + Sync + 'static {
    /// The room's state and its newest `recent` events, or `None` if there is no
    /// such room.
    fn load_room(&self, room: &RoomId, recent: usize) -> Result<Option<RoomLoad>, StoreError>;
    /// Up to `limit` rooms whose names sort after `after`, by name, that `user`
    /// may see: every open and approval room, and invite-only rooms `user` is a
    /// member of; with `user`'s role in each.
    fn list_rooms(&self, user: &UserId, after: Option<&RoomId>, limit: usize) -> Result<Vec<RoomListing>, StoreError>;
    /// Up to `limit` room names after `after`, by name: every room.
    fn room_names(&self, after: Option<&RoomId>, limit: usize) -> Result<Vec<RoomId>, StoreError>;
    /// How many rooms `user` owns.
    fn rooms_owned(&self, user: &UserId) -> Result<usize, StoreError>;
    /// The client ids of the room's messages among its newest `limit` events,
    /// oldest first.
    fn recent_cmids(&self, room: &RoomId, limit: usize) -> Result<Vec<SentMessage>, StoreError>;
    /// Applies `writes` atomically; when it returns Ok they survive a crash (and, for
    /// a durable store, a power loss).
    fn commit(&self, writes: &[Write]) -> Result<(), StoreError>;
    /// Up to `limit` events with seq > `after`, oldest first.
    fn events_after(&self, room: &RoomId, after: Seq, limit: usize) -> Result<Vec<StoredEvent>, StoreError>;
    /// Up to `limit` events with seq < `before`, the newest of them, oldest first.
    fn events_before(&self, room: &RoomId, before: Seq, limit: usize) -> Result<Vec<StoredEvent>, StoreError>;
    /// Seq of the oldest event still held (head + 1 when none is).
    fn oldest(&self, room: &RoomId) -> Result<Seq, StoreError>;
    /// The rooms with at least one row in `table`.
    fn rooms_with(&self, table: RowTable) -> Result<Vec<RoomId>, StoreError>;
    /// The annotations of `table` under `targets`.
    fn annex(&self, room: &RoomId, table: AnnexTable, targets: &[Seq]) -> Result<Vec<AnnexRow>, StoreError>;
    /// The annotations of `table` under the newest `limit` targets below
    /// `before`, newest target first.
    fn annex_before(
        &self,
        room: &RoomId,
        table: AnnexTable,
        before: Seq,
        limit: usize,
    ) -> Result<Vec<AnnexRow>, StoreError>;
    /// Whether state survives a restart.
    fn is_durable(&self) -> bool;
}

#[cfg(test)]
mod conformance;
