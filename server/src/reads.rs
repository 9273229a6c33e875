//! What each member keeps across their devices: where they have read up to,
//! per room — the position every device of theirs shares (`mark_read`,
//! `read_state`; only forward, so a device that is behind never moves
//! another's back) —, the messages that mentioned them (`mentions`, the
//! newest `MAX_INBOX` kept), the members they block (`block`), and where
//! their notifications go while they are away (`PushSettings`: devices and
//! a level per room). On one node they live in memory and in
//! `reads.db` in the data directory (a SQLite file of its own, like the
//! accounts', so a read mark never queues behind the message store's
//! commits); in cluster mode, in Redis (`broker/cluster/reads.rs`).

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use std::collections::BTreeSet;

use hearth_protocol::{Millis, RoomId, Seq, UserId};
use rusqlite::{Connection, params};

pub const DB_FILE: &str = "reads.db";

#[derive(Debug, Clone, thiserror::Error)]
#[error("the read positions are unavailable: {0}; retry")]
pub struct ReadsUnavailable(pub String);

pub type ReadsFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ReadsUnavailable>> + Send + 'a>>;

/// Mentions kept per member: the newest.
pub const MAX_INBOX: usize = 500;

/// A message that mentioned a member: where and by whom. Its text is read
/// from the room when shown, so an edit or a deletion shows there too.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mention {
    /// Ordered by time first: an inbox reads newest first.
    pub ts: Millis,
    pub room: RoomId,
    pub seq: Seq,
    pub from: UserId,
}

impl Mention {
    /// The mention as text that sorts as mentions do (the time first,
    /// zero-padded): a page's cursor, and a sorted set's member in Redis.
    pub fn cursor(&self) -> String {
        format!("{:020}|{:020}|{}|{}", self.ts.0, self.seq.0, self.room.as_str(), self.from.as_str())
    }

    pub fn from_cursor(text: &str) -> Option<Mention> {
        let mut parts = text.splitn(4, '|');
        let ts = parts.next()?.parse().ok()?;
        let seq = parts.next()?.parse().ok()?;
        let room = RoomId::new(parts.next()?).ok()?;
        let from = UserId::new(parts.next()?).ok()?;
        Some(Mention { ts: Millis(ts), room, seq: Seq(seq), from })
    }
}

/// A device's push subscription (RFC 8030): where to send, and the keys to
/// encrypt for it (RFC 8291).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Device {
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
    /// The member chose to have the message's text in notifications.
    #[serde(default)]
    pub text: bool,
}

/// A member's notifications: their devices, and a level per room they set.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PushSettings {
    #[serde(default)]
    pub devices: Vec<Device>,
    #[serde(default)]
    pub levels: std::collections::BTreeMap<RoomId, hearth_protocol::ops::PushLevel>,
}

impl PushSettings {
    /// The rooms this member hears every message of.
    pub fn everything(&self) -> BTreeSet<RoomId> {
        use hearth_protocol::ops::PushLevel;
        self.levels.iter().filter(|(_, l)| **l == PushLevel::Everything).map(|(r, _)| r.clone()).collect()
    }
}

/// The read positions and mention inboxes of every member.
pub trait ReadStore: Send + Sync {
    /// `user`'s position in each room they marked.
    fn positions(&self, user: UserId) -> ReadsFuture<'_, HashMap<RoomId, Seq>>;
    /// Moves `user`'s position in `room` to `seq` if that is forward; answers
    /// the position now held.
    fn advance(&self, user: UserId, room: RoomId, seq: Seq) -> ReadsFuture<'_, Seq>;
    /// Adds `mention` to each of `users`' inboxes (once, however often asked).
    fn mention(&self, users: Vec<UserId>, mention: Mention) -> ReadsFuture<'_, ()>;
    /// `user`'s mentions older than `before` (all when `None`), newest
    /// first, at most `limit`.
    fn mentions(&self, user: UserId, before: Option<Mention>, limit: usize) -> ReadsFuture<'_, Vec<Mention>>;
    /// The members `user` blocks, by name.
    fn blocks(&self, user: UserId) -> ReadsFuture<'_, Vec<UserId>>;
    /// `user` blocks `other` (`on`) or lifts the block.
    fn block(&self, user: UserId, other: UserId, on: bool) -> ReadsFuture<'_, ()>;
    /// `user`'s devices and notification levels.
    fn push_settings(&self, user: UserId) -> ReadsFuture<'_, PushSettings>;
    /// Replaces `user`'s devices and levels (the last writer wins: one
    /// member's devices rarely change at once).
    fn set_push_settings(&self, user: UserId, settings: PushSettings) -> ReadsFuture<'_, ()>;
    /// The members who hear every message of `room` (level `everything`).
    fn push_watchers(&self, room: RoomId) -> ReadsFuture<'_, Vec<UserId>>;
    /// The server's push key: the one kept, or `candidate`, kept from now on.
    fn push_key(&self, candidate: Vec<u8>) -> ReadsFuture<'_, Vec<u8>>;
    /// Counts a new direct conversation `user` starts at `now` unless they
    /// started `most` in the hour before; else how long until one more may.
    fn take_direct_start(&self, user: UserId, now: Millis, most: u32) -> ReadsFuture<'_, Result<(), u64>>;
    /// Forgets all `user` kept here: read positions, mention inbox, the
    /// members they block, devices and notification levels (an erasure).
    fn forget(&self, user: UserId) -> ReadsFuture<'_, ()>;
    /// The erasure log: every account erased, and whether its erasure has
    /// gone through every room of this store.
    fn erasures(&self) -> ReadsFuture<'_, Vec<ErasureRecord>>;
    /// Adds `record` to the erasure log, or updates its entry.
    fn record_erasure(&self, record: ErasureRecord) -> ReadsFuture<'_, ()>;
}

/// An entry of the erasure log: who was erased, when, and whether every
/// room has been gone through since (a restore of an older backup, or a
/// stop half-way, leaves it to be done again at the next start).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErasureRecord {
    pub user: UserId,
    pub at: Millis,
    pub done: bool,
}

/// The window `take_direct_start` counts in.
pub const DIRECT_START_WINDOW_MS: u64 = 3600 * 1000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS reads (
    user TEXT NOT NULL,
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (user, room)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mentions (
    user TEXT NOT NULL,
    ts INTEGER NOT NULL,
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    sender TEXT NOT NULL,
    PRIMARY KEY (user, ts, room, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS push (
    user TEXT PRIMARY KEY,
    settings TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blocks (
    user TEXT NOT NULL,
    blocked TEXT NOT NULL,
    PRIMARY KEY (user, blocked)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS erasures (
    user TEXT PRIMARY KEY,
    at INTEGER NOT NULL,
    done INTEGER NOT NULL
) WITHOUT ROWID;
";

/// One node's read positions: all in memory (a member's are read on every
/// connect), written through to `reads.db` unless ephemeral.
pub struct LocalReads {
    positions: Mutex<HashMap<UserId, HashMap<RoomId, Seq>>>,
    inboxes: Mutex<HashMap<UserId, BTreeSet<Mention>>>,
    blocks: Mutex<HashMap<UserId, BTreeSet<UserId>>>,
    push: Mutex<HashMap<UserId, PushSettings>>,
    /// When each member started their recent direct conversations (in
    /// memory: a restart forgives them).
    starts: Mutex<HashMap<UserId, std::collections::VecDeque<Millis>>>,
    erasures: Mutex<std::collections::BTreeMap<UserId, ErasureRecord>>,
    db: Option<Arc<Mutex<Connection>>>,
}

impl LocalReads {
    pub fn in_memory() -> LocalReads {
        LocalReads {
            positions: Mutex::default(),
            inboxes: Mutex::default(),
            blocks: Mutex::default(),
            push: Mutex::default(),
            starts: Mutex::default(),
            erasures: Mutex::default(),
            db: None,
        }
    }

    pub fn open(dir: &Path) -> Result<LocalReads, ReadsUnavailable> {
        let fail = |e: rusqlite::Error| ReadsUnavailable(format!("{}: {e}", dir.join(DB_FILE).display()));
        let db = Connection::open(dir.join(DB_FILE)).map_err(fail)?;
        db.pragma_update(None, "journal_mode", "WAL").map_err(fail)?;
        // A read mark lost to a power cut is a message shown unread again:
        // not worth a sync per mark.
        db.pragma_update(None, "synchronous", "NORMAL").map_err(fail)?;
        db.execute_batch(SCHEMA).map_err(fail)?;
        let mut positions: HashMap<UserId, HashMap<RoomId, Seq>> = HashMap::new();
        {
            let mut rows = db.prepare("SELECT user, room, seq FROM reads").map_err(fail)?;
            let rows = rows
                .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, i64>(2)?)))
                .map_err(fail)?;
            for row in rows {
                let (user, room, seq) = row.map_err(fail)?;
                let (Ok(user), Ok(room)) = (UserId::new(user), RoomId::new(room)) else { continue };
                positions.entry(user).or_default().insert(room, Seq(seq.max(0) as u64));
            }
        }
        let mut inboxes: HashMap<UserId, BTreeSet<Mention>> = HashMap::new();
        {
            let mut rows = db.prepare("SELECT user, ts, room, seq, sender FROM mentions").map_err(fail)?;
            let rows = rows
                .query_map([], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, i64>(3)?,
                        row.get::<_, String>(4)?,
                    ))
                })
                .map_err(fail)?;
            for row in rows {
                let (user, ts, room, seq, from) = row.map_err(fail)?;
                let (Ok(user), Ok(room), Ok(from)) = (UserId::new(user), RoomId::new(room), UserId::new(from)) else {
                    continue;
                };
                let mention = Mention { ts: Millis(ts.max(0) as u64), room, seq: Seq(seq.max(0) as u64), from };
                inboxes.entry(user).or_default().insert(mention);
            }
        }
        let mut blocks: HashMap<UserId, BTreeSet<UserId>> = HashMap::new();
        {
            let mut rows = db.prepare("SELECT user, blocked FROM blocks").map_err(fail)?;
            let rows =
                rows.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))).map_err(fail)?;
            for row in rows {
                let (user, blocked) = row.map_err(fail)?;
                let (Ok(user), Ok(blocked)) = (UserId::new(user), UserId::new(blocked)) else { continue };
                blocks.entry(user).or_default().insert(blocked);
            }
        }
        let mut push: HashMap<UserId, PushSettings> = HashMap::new();
        {
            let mut rows = db.prepare("SELECT user, settings FROM push").map_err(fail)?;
            let rows =
                rows.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))).map_err(fail)?;
            for row in rows {
                let (user, json) = row.map_err(fail)?;
                let (Ok(user), Ok(settings)) = (UserId::new(user), serde_json::from_str(&json)) else { continue };
                push.insert(user, settings);
            }
        }
        let erasures = read_erasures(&db).map_err(fail)?.into_iter().map(|r| (r.user.clone(), r)).collect();
        Ok(LocalReads {
            positions: Mutex::new(positions),
            inboxes: Mutex::new(inboxes),
            blocks: Mutex::new(blocks),
            push: Mutex::new(push),
            starts: Mutex::default(),
            erasures: Mutex::new(erasures),
            db: Some(Arc::new(Mutex::new(db))),
        })
    }
}

/// The erasure log of a `reads.db` (also read by `restore`, which carries it
/// over into the backup it restores).
pub fn read_erasures(db: &Connection) -> rusqlite::Result<Vec<ErasureRecord>> {
    let mut rows = db.prepare("SELECT user, at, done FROM erasures")?;
    let rows =
        rows.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?, row.get::<_, bool>(2)?)))?;
    let mut found = Vec::new();
    for row in rows {
        let (user, at, done) = row?;
        if let Ok(user) = UserId::new(user) {
            found.push(ErasureRecord { user, at: Millis(at.max(0) as u64), done });
        }
    }
    Ok(found)
}

/// Writes `record` into a `reads.db`'s erasure log.
pub fn write_erasure(db: &Connection, record: &ErasureRecord) -> rusqlite::Result<()> {
    db.execute_batch(SCHEMA)?;
    db.execute(
        "INSERT INTO erasures (user, at, done) VALUES (?1, ?2, ?3)
         ON CONFLICT (user) DO UPDATE SET at = excluded.at, done = excluded.done",
        params![record.user.as_str(), record.at.0 as i64, record.done],
    )?;
    Ok(())
}

impl LocalReads {
    /// Runs `write` on the file, if there is one, off the runtime's threads.
    async fn write_db(
        &self,
        write: impl FnOnce(&mut Connection) -> rusqlite::Result<()> + Send + 'static,
    ) -> Result<(), ReadsUnavailable> {
        let Some(db) = self.db.clone() else { return Ok(()) };
        tokio::task::spawn_blocking(move || write(&mut db.lock().unwrap_or_else(|p| p.into_inner())))
            .await
            .map_err(|e| ReadsUnavailable(e.to_string()))?
            .map_err(|e| ReadsUnavailable(e.to_string()))
    }
}

impl ReadStore for LocalReads {
    fn forget(&self, user: UserId) -> ReadsFuture<'_, ()> {
        Box::pin(async move {
            self.positions.lock().unwrap_or_else(|p| p.into_inner()).remove(&user);
            self.inboxes.lock().unwrap_or_else(|p| p.into_inner()).remove(&user);
            self.blocks.lock().unwrap_or_else(|p| p.into_inner()).remove(&user);
            self.push.lock().unwrap_or_else(|p| p.into_inner()).remove(&user);
            self.starts.lock().unwrap_or_else(|p| p.into_inner()).remove(&user);
            self.write_db(move |db| {
                let tx = db.transaction()?;
                for table in ["reads", "mentions", "blocks", "push"] {
                    tx.execute(&format!("DELETE FROM {table} WHERE user = ?1"), params![user.as_str()])?;
                }
                tx.commit()
            })
            .await
        })
    }

    fn erasures(&self) -> ReadsFuture<'_, Vec<ErasureRecord>> {
        let found = self.erasures.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        Box::pin(async move { Ok(found) })
    }

    fn record_erasure(&self, record: ErasureRecord) -> ReadsFuture<'_, ()> {
        Box::pin(async move {
            self.erasures.lock().unwrap_or_else(|p| p.into_inner()).insert(record.user.clone(), record.clone());
            self.write_db(move |db| write_erasure(db, &record)).await
        })
    }

    fn positions(&self, user: UserId) -> ReadsFuture<'_, HashMap<RoomId, Seq>> {
        let found = self.positions.lock().unwrap_or_else(|p| p.into_inner()).get(&user).cloned().unwrap_or_default();
        Box::pin(async move { Ok(found) })
    }

    fn advance(&self, user: UserId, room: RoomId, seq: Seq) -> ReadsFuture<'_, Seq> {
        Box::pin(async move {
            let held = {
                let mut positions = self.positions.lock().unwrap_or_else(|p| p.into_inner());
                let at = positions.entry(user.clone()).or_default().entry(room.clone()).or_insert(Seq(0));
                if seq <= *at {
                    return Ok(*at);
                }
                *at = seq;
                seq
            };
            if let Some(db) = self.db.clone() {
                let write = move || {
                    db.lock().unwrap_or_else(|p| p.into_inner()).execute(
                        "INSERT INTO reads (user, room, seq) VALUES (?1, ?2, ?3)
                         ON CONFLICT (user, room) DO UPDATE SET seq = max(seq, excluded.seq)",
                        params![user.as_str(), room.as_str(), held.0 as i64],
                    )
                };
                tokio::task::spawn_blocking(write)
                    .await
                    .map_err(|e| ReadsUnavailable(e.to_string()))?
                    .map_err(|e| ReadsUnavailable(e.to_string()))?;
            }
            Ok(held)
        })
    }

    fn mention(&self, users: Vec<UserId>, mention: Mention) -> ReadsFuture<'_, ()> {
        Box::pin(async move {
            // The oldest that fall out of a full inbox, to delete from the file too.
            let mut dropped = Vec::new();
            {
                let mut inboxes = self.inboxes.lock().unwrap_or_else(|p| p.into_inner());
                for user in &users {
                    let inbox = inboxes.entry(user.clone()).or_default();
                    inbox.insert(mention.clone());
                    while inbox.len() > MAX_INBOX {
                        if let Some(oldest) = inbox.pop_first() {
                            dropped.push((user.clone(), oldest));
                        }
                    }
                }
            }
            let Some(db) = self.db.clone() else { return Ok(()) };
            let write = move || -> rusqlite::Result<()> {
                let mut db = db.lock().unwrap_or_else(|p| p.into_inner());
                let tx = db.transaction()?;
                for user in &users {
                    tx.execute(
                        "INSERT OR IGNORE INTO mentions (user, ts, room, seq, sender) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![
                            user.as_str(),
                            mention.ts.0 as i64,
                            mention.room.as_str(),
                            mention.seq.0 as i64,
                            mention.from.as_str()
                        ],
                    )?;
                }
                for (user, old) in &dropped {
                    tx.execute(
                        "DELETE FROM mentions WHERE user = ?1 AND ts = ?2 AND room = ?3 AND seq = ?4",
                        params![user.as_str(), old.ts.0 as i64, old.room.as_str(), old.seq.0 as i64],
                    )?;
                }
                tx.commit()
            };
            tokio::task::spawn_blocking(write)
                .await
                .map_err(|e| ReadsUnavailable(e.to_string()))?
                .map_err(|e| ReadsUnavailable(e.to_string()))
        })
    }

    fn mentions(&self, user: UserId, before: Option<Mention>, limit: usize) -> ReadsFuture<'_, Vec<Mention>> {
        let inboxes = self.inboxes.lock().unwrap_or_else(|p| p.into_inner());
        let found = inboxes
            .get(&user)
            .map(|inbox| {
                inbox.iter().rev().filter(|m| before.as_ref().is_none_or(|b| *m < b)).take(limit).cloned().collect()
            })
            .unwrap_or_default();
        Box::pin(async move { Ok(found) })
    }

    fn blocks(&self, user: UserId) -> ReadsFuture<'_, Vec<UserId>> {
        let blocks = self.blocks.lock().unwrap_or_else(|p| p.into_inner());
        let found = blocks.get(&user).map(|b| b.iter().cloned().collect()).unwrap_or_default();
        Box::pin(async move { Ok(found) })
    }

    fn block(&self, user: UserId, other: UserId, on: bool) -> ReadsFuture<'_, ()> {
        Box::pin(async move {
            {
                let mut blocks = self.blocks.lock().unwrap_or_else(|p| p.into_inner());
                let mine = blocks.entry(user.clone()).or_default();
                let changed = if on { mine.insert(other.clone()) } else { mine.remove(&other) };
                if !changed {
                    return Ok(());
                }
            }
            let Some(db) = self.db.clone() else { return Ok(()) };
            let write = move || {
                let sql = if on {
                    "INSERT OR IGNORE INTO blocks (user, blocked) VALUES (?1, ?2)"
                } else {
                    "DELETE FROM blocks WHERE user = ?1 AND blocked = ?2"
                };
                db.lock().unwrap_or_else(|p| p.into_inner()).execute(sql, params![user.as_str(), other.as_str()])
            };
            tokio::task::spawn_blocking(write)
                .await
                .map_err(|e| ReadsUnavailable(e.to_string()))?
                .map_err(|e| ReadsUnavailable(e.to_string()))?;
            Ok(())
        })
    }

    fn push_settings(&self, user: UserId) -> ReadsFuture<'_, PushSettings> {
        let found = self.push.lock().unwrap_or_else(|p| p.into_inner()).get(&user).cloned().unwrap_or_default();
        Box::pin(async move { Ok(found) })
    }

    fn set_push_settings(&self, user: UserId, settings: PushSettings) -> ReadsFuture<'_, ()> {
        Box::pin(async move {
            let json = serde_json::to_string(&settings).map_err(|e| ReadsUnavailable(e.to_string()))?;
            self.push.lock().unwrap_or_else(|p| p.into_inner()).insert(user.clone(), settings);
            let Some(db) = self.db.clone() else { return Ok(()) };
            let write = move || {
                db.lock().unwrap_or_else(|p| p.into_inner()).execute(
                    "INSERT INTO push (user, settings) VALUES (?1, ?2)
                     ON CONFLICT (user) DO UPDATE SET settings = excluded.settings",
                    params![user.as_str(), json],
                )
            };
            tokio::task::spawn_blocking(write)
                .await
                .map_err(|e| ReadsUnavailable(e.to_string()))?
                .map_err(|e| ReadsUnavailable(e.to_string()))?;
            Ok(())
        })
    }

    fn push_key(&self, candidate: Vec<u8>) -> ReadsFuture<'_, Vec<u8>> {
        Box::pin(async move {
            let Some(db) = self.db.clone() else { return Ok(candidate) };
            let keep = move || -> rusqlite::Result<Vec<u8>> {
                let db = db.lock().unwrap_or_else(|p| p.into_inner());
                db.execute("INSERT OR IGNORE INTO secrets (name, value) VALUES ('push', ?1)", params![candidate])?;
                db.query_row("SELECT value FROM secrets WHERE name = 'push'", [], |row| row.get(0))
            };
            tokio::task::spawn_blocking(keep)
                .await
                .map_err(|e| ReadsUnavailable(e.to_string()))?
                .map_err(|e| ReadsUnavailable(e.to_string()))
        })
    }

    fn take_direct_start(&self, user: UserId, now: Millis, most: u32) -> ReadsFuture<'_, Result<(), u64>> {
        let taken = {
            let mut starts = self.starts.lock().unwrap_or_else(|p| p.into_inner());
            let times = starts.entry(user).or_default();
            while times.front().is_some_and(|t| t.0 + DIRECT_START_WINDOW_MS <= now.0) {
                times.pop_front();
            }
            match times.front() {
                Some(oldest) if times.len() >= most as usize => Err(oldest.0 + DIRECT_START_WINDOW_MS - now.0),
                _ => {
                    times.push_back(now);
                    Ok(())
                }
            }
        };
        Box::pin(async move { Ok(taken) })
    }

    fn push_watchers(&self, room: RoomId) -> ReadsFuture<'_, Vec<UserId>> {
        use hearth_protocol::ops::PushLevel;
        let push = self.push.lock().unwrap_or_else(|p| p.into_inner());
        // A node's members, in memory: a scan is cheaper than an index to keep.
        let found = push
            .iter()
            .filter(|(_, s)| !s.devices.is_empty() && s.levels.get(&room) == Some(&PushLevel::Everything))
            .map(|(user, _)| user.clone())
            .collect();
        Box::pin(async move { Ok(found) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (UserId, RoomId) {
        (UserId::new("ada").unwrap(), RoomId::new("cameras").unwrap())
    }

    #[tokio::test]
    async fn positions_move_forward_only_and_outlive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (ada, cameras) = ids();
        let reads = LocalReads::open(dir.path()).unwrap();
        assert_eq!(reads.advance(ada.clone(), cameras.clone(), Seq(7)).await.unwrap(), Seq(7));
        assert_eq!(reads.advance(ada.clone(), cameras.clone(), Seq(3)).await.unwrap(), Seq(7), "never back");
        assert_eq!(reads.advance(ada.clone(), cameras.clone(), Seq(9)).await.unwrap(), Seq(9));
        drop(reads);
        let again = LocalReads::open(dir.path()).unwrap();
        assert_eq!(again.positions(ada).await.unwrap().get(&cameras), Some(&Seq(9)));
    }

    #[tokio::test]
    async fn blocks_are_kept_per_member_and_outlive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (ada, _) = ids();
        let (bo, cy) = (UserId::new("bo").unwrap(), UserId::new("cy").unwrap());
        let reads = LocalReads::open(dir.path()).unwrap();
        reads.block(ada.clone(), bo.clone(), true).await.unwrap();
        reads.block(ada.clone(), cy.clone(), true).await.unwrap();
        reads.block(ada.clone(), cy.clone(), false).await.unwrap();
        assert_eq!(reads.blocks(bo.clone()).await.unwrap(), Vec::<UserId>::new(), "a block is one way");
        drop(reads);
        let again = LocalReads::open(dir.path()).unwrap();
        assert_eq!(again.blocks(ada).await.unwrap(), vec![bo]);
    }
}
