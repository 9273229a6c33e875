//! Backups of the embedded store, taken while the server serves, and their
//! restoring. Every database of a data directory — the rooms
//! (`hearth.db`), the accounts, read state, the search index — is copied
//! with `VACUUM INTO`: SQLite writes a consistent snapshot of the database
//! as of one read transaction, beside a running writer (WAL mode), so every
//! message acknowledged before the backup began is in it. The token secret
//! goes with them, or a restored server would refuse every token.
//!
//! Each database is its own snapshot: read state or the search index may
//! be a moment apart from the rooms. Both follow the rooms when they differ
//! (a read mark past a room's head is only a mark; the index catches up
//! from the timeline).
//!
//! A cluster's store is Redis: its own persistence (RDB snapshots, the AOF)
//! is the backup there (README, "Run in production"), and `check` verifies
//! what a node sees after a restore.

use std::path::{Path, PathBuf};

use hearth_protocol::Seq;
use serde::{Deserialize, Serialize};

use crate::store::Store;

/// The databases of a data directory, in the order they are copied.
pub const DATABASES: [&str; 4] = [
    crate::store::sqlite::DB_FILE,
    crate::accounts::local::DB_FILE,
    crate::reads::DB_FILE,
    crate::search::index::DB_FILE,
];

/// What a backup directory says of itself.
pub const MANIFEST: &str = "hearth-backup.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Unix milliseconds when the backup began.
    pub taken_at: u64,
    /// The build that took it.
    pub server: String,
    /// The files in it.
    pub files: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path} is not a Hearth data directory (no {})", crate::store::sqlite::DB_FILE)]
    NotADataDir { path: String },
    #[error("{path} is not empty: back up into a new directory")]
    NotEmpty { path: String },
    #[error("{path} is not a Hearth backup (no {MANIFEST})")]
    NotABackup { path: String },
    #[error(
        "the server is running on {path} (its database is in use): stop it first, then restore; the backup is \
         not touched"
    )]
    InUse { path: String },
    #[error(
        "cannot carry the erasure log over ({0}): fix that and restore again, or the erasures made since the backup \
         would not be done again"
    )]
    Erasures(String),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{what}: {source}")]
    Sqlite { what: String, source: rusqlite::Error },
    #[error("the manifest is unreadable: {0}")]
    Manifest(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Io { what, source }
}

fn sqlite(what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Sqlite { what, source }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Takes a backup of `data_dir` into `dest` (made; it must not exist or be
/// empty), while a server may be running on `data_dir`.
pub fn backup(data_dir: &Path, dest: &Path) -> Result<Manifest, BackupError> {
    if !data_dir.join(crate::store::sqlite::DB_FILE).exists() {
        return Err(BackupError::NotADataDir { path: data_dir.display().to_string() });
    }
    if dest.read_dir().is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(BackupError::NotEmpty { path: dest.display().to_string() });
    }
    std::fs::create_dir_all(dest).map_err(io(format!("making {}", dest.display())))?;
    let taken_at = now_ms();
    let mut files = Vec::new();
    for name in DATABASES {
        let source = data_dir.join(name);
        if !source.exists() {
            continue;
        }
        let db = rusqlite::Connection::open_with_flags(&source, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(sqlite(format!("opening {}", source.display())))?;
        // A writer may hold the database a moment: wait for it, as the server's own readers do.
        db.busy_timeout(std::time::Duration::from_secs(30)).map_err(sqlite("setting a busy timeout"))?;
        let target = dest.join(name);
        db.execute("VACUUM INTO ?1", [target.to_string_lossy()])
            .map_err(sqlite(format!("copying {}", source.display())))?;
        files.push(name.to_string());
    }
    let secret = data_dir.join(crate::auth::SECRET_FILE);
    if secret.exists() {
        let target = dest.join(crate::auth::SECRET_FILE);
        std::fs::copy(&secret, &target).map_err(io("copying the token secret"))?;
        private(&target)?;
        files.push(crate::auth::SECRET_FILE.to_string());
    }
    let manifest = Manifest { taken_at, server: format!("hearth-server/{}", env!("CARGO_PKG_VERSION")), files };
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| BackupError::Manifest(e.to_string()))?;
    std::fs::write(dest.join(MANIFEST), text).map_err(io("writing the manifest"))?;
    Ok(manifest)
}

/// The secret stays readable by its owner only.
fn private(path: &Path) -> Result<(), BackupError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io("protecting the secret"))?;
    }
    Ok(())
}

/// Reads a backup's manifest.
pub fn manifest(backup: &Path) -> Result<Manifest, BackupError> {
    let text = std::fs::read_to_string(backup.join(MANIFEST))
        .map_err(|_| BackupError::NotABackup { path: backup.display().to_string() })?;
    serde_json::from_str(&text).map_err(|e| BackupError::Manifest(e.to_string()))
}

/// Restores `backup` into `data_dir`, which no server may be running on.
/// What `data_dir` held is moved aside into `before-restore-TIME/` in it,
/// never deleted. Returns where it went.
pub fn restore(backup: &Path, data_dir: &Path) -> Result<Option<PathBuf>, BackupError> {
    let manifest = manifest(backup)?;
    // Held until the restore is done: no server starts on it meanwhile.
    let _held = hold_for_restore(data_dir)?;
    // Erasures made here, perhaps after the backup was taken: carried over
    // and marked to do again, so the restored store never shows them back.
    let erasures = erasure_log(&data_dir.join(crate::reads::DB_FILE))?;
    let aside = data_dir.join(format!("before-restore-{}", now_ms()));
    let mut moved = false;
    for name in DATABASES.iter().copied().chain([crate::auth::SECRET_FILE]) {
        for file in [name.to_string(), format!("{name}-wal"), format!("{name}-shm")] {
            let path = data_dir.join(&file);
            if path.exists() {
                std::fs::create_dir_all(&aside).map_err(io(format!("making {}", aside.display())))?;
                std::fs::rename(&path, aside.join(&file)).map_err(io(format!("moving {} aside", path.display())))?;
                moved = true;
            }
        }
    }
    for name in &manifest.files {
        // Only the files a backup holds: a manifest never names a path.
        if !DATABASES.contains(&name.as_str()) && name != crate::auth::SECRET_FILE {
            return Err(BackupError::Manifest(format!("it names {name:?}, which no backup holds")));
        }
        let target = data_dir.join(name);
        std::fs::copy(backup.join(name), &target).map_err(io(format!("copying {name}")))?;
        if name == crate::auth::SECRET_FILE {
            private(&target)?;
        }
    }
    if !erasures.is_empty() {
        let reads = data_dir.join(crate::reads::DB_FILE);
        let carry = || -> rusqlite::Result<()> {
            let db = rusqlite::Connection::open(&reads)?;
            for record in &erasures {
                crate::reads::write_erasure(&db, &crate::reads::ErasureRecord { done: false, ..record.clone() })?;
            }
            Ok(())
        };
        carry().map_err(|e| BackupError::Erasures(format!("{}: {e}", reads.display())))?;
    }
    Ok(moved.then_some(aside))
}

/// The erasure log of a `reads.db`, if there is one.
fn erasure_log(reads: &Path) -> Result<Vec<crate::reads::ErasureRecord>, BackupError> {
    if !reads.exists() {
        return Ok(Vec::new());
    }
    let read = || -> rusqlite::Result<Vec<crate::reads::ErasureRecord>> {
        let db = rusqlite::Connection::open(reads)?;
        let has_log: bool = db.query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'erasures'",
            [],
            |row| row.get(0),
        )?;
        if has_log { crate::reads::read_erasures(&db) } else { Ok(Vec::new()) }
    };
    read().map_err(|e| BackupError::Erasures(format!("{}: {e}", reads.display())))
}

/// Holds `data_dir` for a restore, or says a server has it open: every open
/// store holds a shared lock on `hearth.lock`, which an exclusive one waits
/// for — so this asks without waiting.
fn hold_for_restore(data_dir: &Path) -> Result<std::fs::File, BackupError> {
    use crate::store::sqlite::{LOCK_FILE, hold};
    std::fs::create_dir_all(data_dir).map_err(io(format!("making {}", data_dir.display())))?;
    hold(data_dir, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(|e| {
        if e.kind() == std::io::ErrorKind::WouldBlock {
            BackupError::InUse { path: data_dir.display().to_string() }
        } else {
            BackupError::Io { what: format!("locking {}", data_dir.join(LOCK_FILE).display()), source: e }
        }
    })
}

/// What `check` found in one room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomCheck {
    pub room: hearth_protocol::RoomId,
    pub head: Seq,
    /// Events held: from `oldest` to `head`.
    pub oldest: Seq,
    pub problems: Vec<String>,
}

/// Checks every room a store holds: its events run without a gap from the
/// oldest held to the head, and each decodes as the event of that seq and
/// room. Reads only.
pub fn check(store: &dyn Store) -> Result<Vec<RoomCheck>, crate::store::StoreError> {
    let mut checks = Vec::new();
    let mut after: Option<hearth_protocol::RoomId> = None;
    loop {
        let names = store.room_names(after.as_ref(), 500)?;
        let Some(last) = names.last().cloned() else { return Ok(checks) };
        for room in names {
            checks.push(check_room(store, room)?);
        }
        after = Some(last);
    }
}

fn check_room(store: &dyn Store, room: hearth_protocol::RoomId) -> Result<RoomCheck, crate::store::StoreError> {
    let Some(load) = store.load_room(&room, 0)? else { return Ok(RoomWalk::unstored(room)) };
    let oldest = store.oldest(&room)?;
    let mut walk = RoomWalk::new(room, load.head, oldest);
    loop {
        let page = store.events_after(&walk.room, walk.after(), 1000)?;
        if !walk.take(&page) {
            return Ok(walk.finish());
        }
    }
}

/// Checks every room a broker holds, as `check` does a store: a cluster's
/// rooms in Redis (after restoring a snapshot, say). Reads only.
pub async fn check_broker(broker: &dyn crate::broker::Broker) -> Result<Vec<RoomCheck>, crate::broker::BrokerError> {
    let mut checks = Vec::new();
    let mut after: Option<hearth_protocol::RoomId> = None;
    loop {
        let names = broker.room_names(after.clone(), 500).await?;
        let Some(last) = names.last().cloned() else { return Ok(checks) };
        for room in names {
            let Some(load) = broker.load_room(room.clone(), 0).await? else {
                checks.push(RoomWalk::unstored(room));
                continue;
            };
            let oldest = broker.oldest(room.clone()).await?;
            let mut walk = RoomWalk::new(room, load.head, oldest);
            loop {
                let page = broker.history_after(walk.room.clone(), walk.after(), 1000).await?;
                if !walk.take(&page) {
                    break;
                }
            }
            checks.push(walk.finish());
        }
        after = Some(last);
    }
}

/// One room's events read in pages, oldest first, and what is wrong with them.
struct RoomWalk {
    room: hearth_protocol::RoomId,
    head: Seq,
    oldest: Seq,
    expected: Seq,
    problems: Vec<String>,
}

impl RoomWalk {
    fn new(room: hearth_protocol::RoomId, head: Seq, oldest: Seq) -> RoomWalk {
        RoomWalk { room, head, oldest, expected: oldest, problems: Vec::new() }
    }

    fn unstored(room: hearth_protocol::RoomId) -> RoomCheck {
        RoomCheck { room, head: Seq::ZERO, oldest: Seq::ZERO, problems: vec!["listed, not stored".into()] }
    }

    /// Where the next page starts after.
    fn after(&self) -> Seq {
        Seq(self.expected.0.saturating_sub(1))
    }

    /// Takes the next page; false once there is none.
    fn take(&mut self, page: &[crate::store::StoredEvent]) -> bool {
        for stored in page {
            if stored.seq != self.expected {
                self.problems.push(format!("event {} follows {}: a gap", stored.seq, self.after()));
            }
            match rmp_serde::from_slice::<hearth_protocol::Event>(&stored.body) {
                Ok(event) if event.seq() == Some(stored.seq) && event.room() == Some(&self.room) => {}
                Ok(_) => self.problems.push(format!("event {} is stored under another seq or room", stored.seq)),
                Err(e) => self.problems.push(format!("event {} does not decode: {e}", stored.seq)),
            }
            self.expected = stored.seq.next();
        }
        !page.is_empty()
    }

    fn finish(mut self) -> RoomCheck {
        if self.expected != self.head.next() {
            self.problems.push(format!("the room's head is {}, its last event {}", self.head, self.after()));
        }
        RoomCheck { room: self.room, head: self.head, oldest: self.oldest, problems: self.problems }
    }
}

/// A delivery that goes nowhere: `check` reads a cluster's rooms without
/// serving them.
pub struct NoDelivery;

impl crate::broker::Delivery for NoDelivery {
    fn deliver(&self, _room: &hearth_protocol::RoomId, _events: &[crate::frames::Committed]) {}
    fn position(&self, _room: &hearth_protocol::RoomId) -> Option<hearth_protocol::Position> {
        None
    }
    fn resync(&self, _room: &hearth_protocol::RoomId, _at: Option<hearth_protocol::Position>, _now: bool) {}
    fn snapshot(&self, _room: &hearth_protocol::RoomId) -> Option<crate::store::RoomLoad> {
        None
    }
}
