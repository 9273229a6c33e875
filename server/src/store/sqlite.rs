//! The default store: one SQLite database (`hearth.db`) in the data directory, in
//! WAL mode with `synchronous=FULL`, so a committed batch survives `kill -9` and
//! power loss. The journal batches many writes into one transaction, so the cost of
//! the fsync is shared by every message in the batch.
//!
//! Timeline events are stored as the exact MessagePack frames that were fanned out,
//! next to the columns that queries need (seq, time, sender, client id, thread).
//!
//! New events go first to `events_log`, ordered by commit, so a commit rewrites
//! only the log's last page or two however many rooms it touches; five times a
//! second the log is folded into `events`, keyed by (room, seq), in the same kind
//! of atomic transaction. Appending straight to `events` rewrote one 4 KiB page
//! per active room per commit (BENCHMARKS.md). Reads look in both tables.

use std::path::Path;
use std::sync::Mutex;

use bytes::Bytes;
use hearth_protocol::ops::PinnedNote;
use hearth_protocol::{ClientMsgId, Millis, Role, RoomId, Seq, UserId};
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    AnnexRow, AnnexTable, Change, MemberRecord, RoomListing, RoomLoad, RoomRecord, Row, RowTable, SentMessage, Store,
    StoreError, StoredEvent, Write,
};

pub const DB_FILE: &str = "hearth.db";
const SCHEMA_VERSION: i64 = 3;
/// Fold the log into `events` when it holds this many rows (bounding the log a
/// read must scan, as it has no index)...
const FOLD_ROWS: u64 = 2048;
/// ...or when the last fold is this old.
/// Small folds keep the committer's stall short (a fold of a second's worth of
/// busy traffic held commits for ~10 ms and showed in p99); 5 a second still
/// writes each room's pages ~25× less often than once per commit.
const FOLD_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rooms (
    room TEXT PRIMARY KEY,
    record TEXT NOT NULL            -- RoomRecord as JSON
);
CREATE TABLE IF NOT EXISTS members (
    room TEXT NOT NULL,
    user TEXT NOT NULL,
    role TEXT NOT NULL,
    joined_at INTEGER NOT NULL,
    role_expires_at INTEGER,
    PRIMARY KEY (room, user)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    sender TEXT NOT NULL,
    cmid TEXT,
    thread INTEGER,
    body BLOB NOT NULL,             -- the MessagePack event frame
    PRIMARY KEY (room, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events_log (
    id INTEGER PRIMARY KEY,         -- commit order
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    sender TEXT NOT NULL,
    cmid TEXT,
    thread INTEGER,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS pins (
    room TEXT NOT NULL,
    pin INTEGER NOT NULL,
    record TEXT NOT NULL,           -- PinnedNote as JSON
    PRIMARY KEY (room, pin)
) WITHOUT ROWID;
-- Which rooms a user owns (the per-user room limit), without a full scan.
CREATE INDEX IF NOT EXISTS members_by_user ON members (user, role);
-- A room's loaded tables (room::rows): bans, mutes, requests, invites, ...
CREATE TABLE IF NOT EXISTS room_rows (
    room TEXT NOT NULL,
    tbl TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (room, tbl, key)
) WITHOUT ROWID;
-- Annotations under an event's seq, read on demand (the moderation log).
CREATE TABLE IF NOT EXISTS annex (
    room TEXT NOT NULL,
    tbl TEXT NOT NULL,
    target INTEGER NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (room, tbl, target, key)
) WITHOUT ROWID;
";

pub struct SqliteStore {
    /// Held while the store is open (a shared lock on `hearth.lock`): a
    /// restore takes it exclusively, so it never runs under a server.
    _held: std::fs::File,
    /// Used only by the journal's committer thread; the Mutex makes the store Sync.
    writer: Mutex<Writer>,
    /// Reads (history, catch-up, load). WAL lets them run beside the writer.
    readers: Readers,
}

/// Reading connections. WAL lets each read beside the writer and beside each
/// other; several of them let history pages, catch-ups and room loads from many
/// connections proceed at once instead of queueing on one.
struct Readers {
    conns: Vec<Mutex<Connection>>,
    next: std::sync::atomic::AtomicUsize,
}

/// Reading connections per store: the blocking pool runs more reads than this
/// only when they queue anyway, and each connection keeps its own page cache.
const READERS: usize = 4;

impl Readers {
    fn open(path: &Path) -> Result<Readers, StoreError> {
        let conns = (0..READERS).map(|_| Connection::open(path).map(Mutex::new)).collect::<Result<_, _>>()?;
        Ok(Readers { conns, next: std::sync::atomic::AtomicUsize::new(0) })
    }

    /// A free connection if there is one, else the next in turn.
    fn get(&self) -> std::sync::MutexGuard<'_, Connection> {
        for conn in &self.conns {
            if let Ok(conn) = conn.try_lock() {
                return conn;
            }
        }
        let at = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.conns.len();
        lock(&self.conns[at])
    }
}

/// The writing connection and when its log was last folded.
struct Writer {
    conn: Connection,
    log_rows: u64,
    fold_rows: u64,
    last_fold: std::time::Instant,
}

fn lock<T>(conn: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic mid-transaction rolls the transaction back when it drops: the
    // connection itself stays usable.
    conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn parse_role(role: String) -> Result<Role, StoreError> {
    Role::parse(&role).ok_or(StoreError::Corrupt { what: "member role", detail: role })
}

fn corrupt(what: &'static str) -> impl Fn(serde_json::Error) -> StoreError {
    move |e| StoreError::Corrupt { what, detail: e.to_string() }
}

/// The file a data directory's users lock: shared while a store is open,
/// exclusive for a restore.
pub const LOCK_FILE: &str = "hearth.lock";

/// Opens `dir/hearth.lock` and takes `how` on it (the kernel drops it when
/// the file closes, or the process ends).
pub fn hold(dir: &Path, how: rustix::fs::FlockOperation) -> std::io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(LOCK_FILE))?;
    rustix::fs::flock(&file, how)?;
    Ok(file)
}

impl SqliteStore {
    /// Opens (or creates) `dir/hearth.db`.
    pub fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
        Self::open_folding_at(dir, FOLD_ROWS)
    }

    /// Opens with a chosen fold size; tests use a tiny one so reads cross both tables.
    pub(crate) fn open_folding_at(dir: &Path, fold_rows: u64) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|source| StoreError::DataDir { path: dir.display().to_string(), source })?;
        let held = hold(dir, rustix::fs::FlockOperation::LockShared)
            .map_err(|source| StoreError::DataDir { path: dir.join(LOCK_FILE).display().to_string(), source })?;
        let path = dir.join(DB_FILE);
        let writer = Connection::open(&path)?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        writer.pragma_update(None, "synchronous", "FULL")?;
        let version: i64 = writer.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew { found: version, supported: SCHEMA_VERSION });
        }
        writer.execute_batch(SCHEMA)?;
        writer.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        let log_rows: i64 = writer.query_row("SELECT COUNT(*) FROM events_log", [], |row| row.get(0))?;
        let readers = Readers::open(&path)?;
        let writer =
            Writer { conn: writer, log_rows: log_rows as u64, fold_rows, last_fold: std::time::Instant::now() };
        Ok(SqliteStore { _held: held, writer: Mutex::new(writer), readers })
    }

    fn apply(tx: &rusqlite::Transaction<'_>, write: &Write) -> Result<(), StoreError> {
        match write {
            Write::CreateRoom(record) => {
                let json = serde_json::to_string(record).expect("room records serialise");
                tx.prepare_cached("INSERT INTO rooms (room, record) VALUES (?1, ?2)")?
                    .execute(params![record.room.as_str(), json])?;
            }
            Write::Change { room, change } => Self::apply_change(tx, room, change)?,
            Write::AppendEvent(row) => {
                tx.prepare_cached(
                    "INSERT INTO events_log (room, seq, ts, sender, cmid, thread, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![
                    row.room.as_str(),
                    row.seq.0 as i64,
                    row.ts.0 as i64,
                    row.from.as_str(),
                    row.cmid.as_ref().map(|c| c.as_str()),
                    row.thread.map(|t| t.0 as i64),
                    &row.body[..],
                ])?;
            }
        }
        Ok(())
    }

    fn apply_change(tx: &rusqlite::Transaction<'_>, room: &RoomId, change: &Change) -> Result<(), StoreError> {
        match change {
            Change::PutMember(member) => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO members (room, user, role, joined_at, role_expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                    room.as_str(),
                    member.user.as_str(),
                    member.role.as_str(),
                    member.joined_at.0 as i64,
                    member.role_expires_at.map(|t| t.0 as i64),
                ])?;
            }
            Change::RemoveMember(user) => {
                tx.prepare_cached("DELETE FROM members WHERE room = ?1 AND user = ?2")?
                    .execute(params![room.as_str(), user.as_str()])?;
            }
            Change::PutPin(pin) => {
                let json = serde_json::to_string(pin).expect("pins serialise");
                tx.prepare_cached("INSERT OR REPLACE INTO pins (room, pin, record) VALUES (?1, ?2, ?3)")?
                    .execute(params![room.as_str(), pin.pin.0 as i64, json])?;
            }
            Change::RemovePin(pin) => {
                tx.prepare_cached("DELETE FROM pins WHERE room = ?1 AND pin = ?2")?
                    .execute(params![room.as_str(), pin.0 as i64])?;
            }
            Change::UpdateSettings(settings) => {
                let json: Option<String> = tx
                    .prepare_cached("SELECT record FROM rooms WHERE room = ?1")?
                    .query_row([room.as_str()], |row| row.get(0))
                    .optional()?;
                let Some(json) = json else { return Ok(()) };
                let mut record: RoomRecord = serde_json::from_str(&json).map_err(corrupt("room record"))?;
                record.apply_settings(settings);
                let json = serde_json::to_string(&record).expect("room records serialise");
                tx.prepare_cached("UPDATE rooms SET record = ?2 WHERE room = ?1")?
                    .execute(params![room.as_str(), json])?;
            }
            Change::SetRole { user, role, expires_at } => {
                tx.prepare_cached("UPDATE members SET role = ?3, role_expires_at = ?4 WHERE room = ?1 AND user = ?2")?
                    .execute(params![room.as_str(), user.as_str(), role.as_str(), expires_at.map(|t| t.0 as i64)])?;
            }
            Change::PutRow(row) => {
                tx.prepare_cached("INSERT OR REPLACE INTO room_rows (room, tbl, key, value) VALUES (?1, ?2, ?3, ?4)")?
                    .execute(params![room.as_str(), row.table.as_str(), row.key, row.value])?;
            }
            Change::RemoveRow { table, key } => {
                tx.prepare_cached("DELETE FROM room_rows WHERE room = ?1 AND tbl = ?2 AND key = ?3")?
                    .execute(params![room.as_str(), table.as_str(), key])?;
            }
            Change::RemoveAnnex { table, target, key } => {
                tx.prepare_cached("DELETE FROM annex WHERE room = ?1 AND tbl = ?2 AND target = ?3 AND key = ?4")?
                    .execute(params![room.as_str(), table.as_str(), target.0 as i64, key])?;
            }
            Change::UseInvite(id) => {
                let value: Option<Vec<u8>> = tx
                    .prepare_cached("SELECT value FROM room_rows WHERE room = ?1 AND tbl = 'invite' AND key = ?2")?
                    .query_row(params![room.as_str(), id], |row| row.get(0))
                    .optional()?;
                if let Some(value) = value {
                    tx.prepare_cached(
                        "UPDATE room_rows SET value = ?3 WHERE room = ?1 AND tbl = 'invite' AND key = ?2",
                    )?
                    .execute(params![room.as_str(), id, crate::room::rows::count_use(&value)])?;
                }
            }
            Change::RetextPins { message, text } => {
                // A room holds at most a few dozen pins: read them all, rewrite
                // those of the message.
                let pins: Vec<(i64, String)> = tx
                    .prepare_cached("SELECT pin, record FROM pins WHERE room = ?1")?
                    .query_map(params![room.as_str()], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                for (id, record) in pins {
                    let Ok(mut pin) = serde_json::from_str::<PinnedNote>(&record) else { continue };
                    if pin.seq == Some(*message) {
                        crate::room::messages::retext_pin(&mut pin, text.as_ref());
                        let json = serde_json::to_string(&pin).expect("pins serialise");
                        tx.prepare_cached("UPDATE pins SET record = ?3 WHERE room = ?1 AND pin = ?2")?
                            .execute(params![room.as_str(), id, json])?;
                    }
                }
            }
            Change::PutAnnex(a) => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO annex (room, tbl, target, key, value) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                    room.as_str(),
                    a.table.as_str(),
                    a.target.0 as i64,
                    a.key,
                    a.value
                ])?;
            }
        }
        Ok(())
    }

    fn annex_rows(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        table: AnnexTable,
    ) -> Result<Vec<AnnexRow>, StoreError> {
        let conn = self.readers.get();
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params, |row| {
            Ok(AnnexRow { table, target: Seq(row.get::<_, i64>(0)? as u64), key: row.get(1)?, value: row.get(2)? })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn query_events(&self, sql: &str, room: &RoomId, bound: Seq, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let conn = self.readers.get();
        let mut stmt = conn.prepare_cached(sql)?;
        // SQLite integers are signed: a bound past i64::MAX would wrap negative and
        // select the start of the timeline. No seq gets that large, so clamping
        // keeps every comparison's meaning.
        let bound = bound.0.min(i64::MAX as u64) as i64;
        let rows = stmt.query_map(params![room.as_str(), bound, limit as i64], |row| {
            Ok(StoredEvent { seq: Seq(row.get::<_, i64>(0)? as u64), body: Bytes::from(row.get::<_, Vec<u8>>(1)?) })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

impl Store for SqliteStore {
    fn load_room(&self, room: &RoomId, recent: usize) -> Result<Option<RoomLoad>, StoreError> {
        let (record, members, pins, rows, head, last_ts) = {
            let conn = self.readers.get();
            let json: Option<String> = conn
                .prepare_cached("SELECT record FROM rooms WHERE room = ?1")?
                .query_row([room.as_str()], |row| row.get(0))
                .optional()?;
            let Some(json) = json else { return Ok(None) };
            let record: RoomRecord = serde_json::from_str(&json).map_err(corrupt("room record"))?;
            let mut stmt =
                conn.prepare_cached("SELECT user, role, joined_at, role_expires_at FROM members WHERE room = ?1")?;
            let members = stmt
                .query_map([room.as_str()], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, Option<i64>>(3)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let members = members
                .into_iter()
                .map(|(user, role, joined_at, expires)| {
                    Ok(MemberRecord {
                        user: UserId::new(user)
                            .map_err(|detail| StoreError::Corrupt { what: "member name", detail })?,
                        role: parse_role(role)?,
                        joined_at: Millis(joined_at as u64),
                        role_expires_at: expires.map(|t| Millis(t as u64)),
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let mut stmt = conn.prepare_cached("SELECT record FROM pins WHERE room = ?1 ORDER BY pin")?;
            let pins = stmt
                .query_map([room.as_str()], |row| row.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?
                .iter()
                .map(|j| serde_json::from_str::<PinnedNote>(j).map_err(corrupt("pin")))
                .collect::<Result<Vec<_>, _>>()?;
            let mut stmt = conn.prepare_cached("SELECT tbl, key, value FROM room_rows WHERE room = ?1")?;
            let rows = stmt
                .query_map([room.as_str()], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, Vec<u8>>(2)?))
                })?
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .map(|(table, key, value)| {
                    let table = RowTable::parse(&table)
                        .ok_or(StoreError::Corrupt { what: "room row table", detail: table.clone() })?;
                    Ok(Row { table, key, value })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let newest: Option<(i64, i64)> = conn
                .prepare_cached(
                    "SELECT seq, ts FROM (
                         SELECT * FROM (SELECT seq, ts FROM events WHERE room = ?1 ORDER BY seq DESC LIMIT 1)
                         UNION ALL
                         SELECT * FROM (SELECT seq, ts FROM events_log WHERE room = ?1 ORDER BY seq DESC LIMIT 1)
                     ) ORDER BY seq DESC LIMIT 1",
                )?
                .query_row([room.as_str()], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            let (head, last_ts) = match newest {
                Some((seq, ts)) => (Seq(seq as u64), Millis(ts as u64).max(record.created_at)),
                None => (Seq::ZERO, record.created_at),
            };
            (record, members, pins, rows, head, last_ts)
        };
        let recent = if recent == 0 { Vec::new() } else { self.events_before(room, head.next(), recent)? };
        Ok(Some(RoomLoad { record, members, pins, rows, head, last_ts, recent }))
    }

    fn room_names(&self, after: Option<&RoomId>, limit: usize) -> Result<Vec<RoomId>, StoreError> {
        let conn = self.readers.get();
        let mut stmt = conn.prepare_cached("SELECT room FROM rooms WHERE room > ?1 ORDER BY room LIMIT ?2")?;
        let rows =
            stmt.query_map(params![after.map_or("", |a| a.as_str()), limit as i64], |row| row.get::<_, String>(0))?;
        let mut names = Vec::new();
        for name in rows {
            let name = name?;
            names.push(RoomId::new(name).map_err(|detail| StoreError::Corrupt { what: "room name", detail })?);
        }
        Ok(names)
    }

    fn list_rooms(&self, user: &UserId, after: Option<&RoomId>, limit: usize) -> Result<Vec<RoomListing>, StoreError> {
        let conn = self.readers.get();
        // Invite-only rooms and direct conversations are filtered after reading (their visibility is in the
        // record's JSON), so read pages until `limit` visible ones are found.
        let mut stmt = conn.prepare_cached(
            "SELECT r.room, r.record,
                    (SELECT COUNT(*) FROM members m WHERE m.room = r.room),
                    (SELECT role FROM members m WHERE m.room = r.room AND m.user = ?1)
             FROM rooms r WHERE r.room > ?2 ORDER BY r.room LIMIT ?3",
        )?;
        let mut listed = Vec::new();
        let mut from = after.map(|r| r.as_str().to_string()).unwrap_or_default();
        loop {
            let rows = stmt
                .query_map(params![user.as_str(), from, limit as i64], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, Option<String>>(3)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let exhausted = rows.len() < limit;
            for (name, json, members, role) in rows {
                from = name;
                let record: RoomRecord = serde_json::from_str(&json).map_err(corrupt("room record"))?;
                let role = role.map(parse_role).transpose()?;
                if !record.visibility.listed_to_outsiders() && role.is_none() {
                    continue;
                }
                listed.push(RoomListing { record, members: members as u32, role });
                if listed.len() == limit {
                    return Ok(listed);
                }
            }
            if exhausted {
                return Ok(listed);
            }
        }
    }

    fn rooms_owned(&self, user: &UserId) -> Result<usize, StoreError> {
        let conn = self.readers.get();
        let count: i64 = conn
            .prepare_cached("SELECT COUNT(*) FROM members WHERE user = ?1 AND role = 'owner'")?
            .query_row([user.as_str()], |row| row.get(0))?;
        Ok(count as usize)
    }

    fn recent_cmids(&self, room: &RoomId, limit: usize) -> Result<Vec<SentMessage>, StoreError> {
        let conn = self.readers.get();
        let mut stmt = conn.prepare_cached(
            "SELECT seq, ts, sender, cmid FROM (
                 SELECT * FROM (SELECT seq, ts, sender, cmid FROM events WHERE room = ?1 ORDER BY seq DESC LIMIT ?2)
                 UNION ALL
                 SELECT * FROM (SELECT seq, ts, sender, cmid FROM events_log WHERE room = ?1 ORDER BY seq DESC LIMIT ?2)
             ) WHERE cmid IS NOT NULL ORDER BY seq DESC LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![room.as_str(), limit as i64], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, String>(2)?, row.get::<_, String>(3)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut sent = rows
            .into_iter()
            .map(|(seq, ts, from, cmid)| {
                Ok(SentMessage {
                    seq: Seq(seq as u64),
                    ts: Millis(ts as u64),
                    from: UserId::new(from).map_err(|detail| StoreError::Corrupt { what: "sender", detail })?,
                    cmid: ClientMsgId::new(cmid).map_err(|detail| StoreError::Corrupt { what: "cmid", detail })?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        sent.reverse();
        Ok(sent)
    }

    fn commit(&self, writes: &[Write]) -> Result<(), StoreError> {
        let mut writer = lock(&self.writer);
        let appended = writes.iter().filter(|w| matches!(w, Write::AppendEvent(_))).count() as u64;
        let fold = writer.log_rows + appended >= writer.fold_rows || writer.last_fold.elapsed() >= FOLD_EVERY;
        let tx = writer.conn.transaction()?;
        for write in writes {
            Self::apply(&tx, write)?;
        }
        if fold {
            // Sorted by (room, seq), each room's pages are written once per fold.
            // A seq stored twice fails here, on `events`' primary key, and the
            // whole transaction with it: rooms never hand out a seq twice.
            tx.prepare_cached(
                "INSERT INTO events (room, seq, ts, sender, cmid, thread, body)
                 SELECT room, seq, ts, sender, cmid, thread, body FROM events_log ORDER BY room, seq",
            )?
            .execute([])?;
            tx.prepare_cached("DELETE FROM events_log")?.execute([])?;
        }
        tx.commit()?;
        if fold {
            writer.log_rows = 0;
            writer.last_fold = std::time::Instant::now();
        } else {
            writer.log_rows += appended;
        }
        Ok(())
    }

    fn events_after(&self, room: &RoomId, after: Seq, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        // Each branch is limited on its own so a long history is never sorted whole.
        self.query_events(
            "SELECT seq, body FROM (
                 SELECT * FROM (SELECT seq, body FROM events WHERE room = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3)
                 UNION ALL
                 SELECT * FROM (SELECT seq, body FROM events_log WHERE room = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3)
             ) ORDER BY seq ASC LIMIT ?3",
            room,
            after,
            limit,
        )
    }

    fn events_before(&self, room: &RoomId, before: Seq, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let mut events = self.query_events(
            "SELECT seq, body FROM (
                 SELECT * FROM (SELECT seq, body FROM events WHERE room = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3)
                 UNION ALL
                 SELECT * FROM (SELECT seq, body FROM events_log WHERE room = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3)
             ) ORDER BY seq DESC LIMIT ?3",
            room,
            before,
            limit,
        )?;
        events.reverse();
        Ok(events)
    }

    fn oldest(&self, room: &RoomId) -> Result<Seq, StoreError> {
        let conn = self.readers.get();
        // Nothing is ever pruned yet, so the oldest held event is the first one.
        let min: Option<i64> = conn
            .prepare_cached(
                "SELECT MIN(seq) FROM (SELECT MIN(seq) AS seq FROM events WHERE room = ?1
                 UNION ALL SELECT MIN(seq) FROM events_log WHERE room = ?1)",
            )?
            .query_row([room.as_str()], |row| row.get(0))?;
        Ok(Seq(min.unwrap_or(1) as u64))
    }

    fn is_durable(&self) -> bool {
        true
    }

    fn rooms_with(&self, table: RowTable) -> Result<Vec<RoomId>, StoreError> {
        let conn = self.readers.get();
        let mut stmt = conn.prepare_cached("SELECT DISTINCT room FROM room_rows WHERE tbl = ?1")?;
        let names = stmt.query_map([table.as_str()], |row| row.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
        Ok(names.into_iter().filter_map(|name| RoomId::new(name).ok()).collect())
    }

    fn annex(&self, room: &RoomId, table: AnnexTable, targets: &[Seq]) -> Result<Vec<AnnexRow>, StoreError> {
        let (Some(low), Some(high)) = (targets.iter().min(), targets.iter().max()) else { return Ok(Vec::new()) };
        // One range read for a page's targets, then only those asked for.
        let mut rows = self.annex_rows(
            "SELECT target, key, value FROM annex WHERE room = ?1 AND tbl = ?2 AND target BETWEEN ?3 AND ?4
             ORDER BY target, key",
            params![room.as_str(), table.as_str(), low.0 as i64, high.0 as i64],
            table,
        )?;
        rows.retain(|r| targets.contains(&r.target));
        Ok(rows)
    }

    fn annex_before(
        &self,
        room: &RoomId,
        table: AnnexTable,
        before: Seq,
        limit: usize,
    ) -> Result<Vec<AnnexRow>, StoreError> {
        let before = before.0.min(i64::MAX as u64) as i64;
        self.annex_rows(
            "SELECT target, key, value FROM annex WHERE room = ?1 AND tbl = ?2 AND target IN (
                 SELECT DISTINCT target FROM annex WHERE room = ?1 AND tbl = ?2 AND target < ?3
                 ORDER BY target DESC LIMIT ?4)
             ORDER BY target DESC, key",
            params![room.as_str(), table.as_str(), before, limit as i64],
            table,
        )
    }
}

#[cfg(test)]
mod tests {
    /// `.cargo/config.toml` compiles SQLite without the process-wide page
    /// cache and allocation counter: their global mutexes let a preempted
    /// indexer hold up the committer. A build that lost the flags shows here.
    #[test]
    fn sqlite_is_built_without_its_process_wide_locks() {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        let options: Vec<String> = db
            .prepare("SELECT compile_options FROM pragma_compile_options")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(!options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"), "{options:?}");
        assert!(options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"), "{options:?}");
    }
}
