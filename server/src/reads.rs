//! Where each member has read up to, per room: the position every device of
//! theirs shares (`mark_read`, `read_state`). Positions only move forward, so
//! a device that is behind never moves another's back. On one node they live
//! in memory and in `reads.db` in the data directory (a SQLite file of its
//! own, like the accounts', so a read mark never queues behind the message
//! store's commits); in cluster mode, in Redis (`broker/cluster/reads.rs`).

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use hearth_protocol::{RoomId, Seq, UserId};
use rusqlite::{Connection, params};

pub const DB_FILE: &str = "reads.db";

#[derive(Debug, Clone, thiserror::Error)]
#[error("the read positions are unavailable: {0}; retry")]
pub struct ReadsUnavailable(pub String);

pub type ReadsFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ReadsUnavailable>> + Send + 'a>>;

/// The read positions of every member.
pub trait ReadStore: Send + Sync {
    /// `user`'s position in each room they marked.
    fn positions(&self, user: UserId) -> ReadsFuture<'_, HashMap<RoomId, Seq>>;
    /// Moves `user`'s position in `room` to `seq` if that is forward; answers
    /// the position now held.
    fn advance(&self, user: UserId, room: RoomId, seq: Seq) -> ReadsFuture<'_, Seq>;
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS reads (
    user TEXT NOT NULL,
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (user, room)
) WITHOUT ROWID;
";

/// One node's read positions: all in memory (a member's are read on every
/// connect), written through to `reads.db` unless ephemeral.
pub struct LocalReads {
    positions: Mutex<HashMap<UserId, HashMap<RoomId, Seq>>>,
    db: Option<Arc<Mutex<Connection>>>,
}

impl LocalReads {
    pub fn in_memory() -> LocalReads {
        LocalReads { positions: Mutex::default(), db: None }
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
        Ok(LocalReads { positions: Mutex::new(positions), db: Some(Arc::new(Mutex::new(db))) })
    }
}

impl ReadStore for LocalReads {
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
}
