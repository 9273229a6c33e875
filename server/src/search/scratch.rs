//! Where a cluster node keeps its search index: a directory of its own under
//! the system's temporary directory, for as long as the node runs (the index is
//! read from Redis again at start). A node that stops removes it; one that dies
//! (killed, out of memory) cannot, and the index can be as large as the
//! cluster's history, so the next node to start on the machine removes it.
//!
//! Which directories are abandoned is told by a lock: a live node holds one on
//! its directory's lock file (`flock`), and the kernel lets go of it when the
//! process ends, however it ends.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

use crate::store::sqlite::{LOCK_FILE, hold};

const PREFIX: &str = "hearth-search-";
/// A directory is made under this name and locked before it takes its own,
/// so a sweep never finds a live node's directory unlocked.
const MAKING_PREFIX: &str = ".hearth-search-making-";

/// A node's scratch directory: removed when dropped.
#[derive(Debug)]
pub(super) struct ScratchDir {
    path: PathBuf,
    _lock: File,
}

impl ScratchDir {
    /// A new directory under the system's temporary directory, once the
    /// directories of nodes that died are gone.
    pub(super) fn make() -> io::Result<ScratchDir> {
        Self::make_in(&std::env::temp_dir())
    }

    fn make_in(parent: &Path) -> io::Result<ScratchDir> {
        sweep(parent);
        let making = tempfile::Builder::new().prefix(MAKING_PREFIX).tempdir_in(parent)?;
        let lock = hold(making.path(), FlockOperation::NonBlockingLockExclusive)?;
        let name = making.path().file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let path = parent.join(format!("{PREFIX}{}", name.trim_start_matches(MAKING_PREFIX)));
        std::fs::rename(making.path(), &path)?;
        // Renamed: the guard's path is gone, and this one removes the new name.
        let _ = making.keep();
        Ok(ScratchDir { path, _lock: lock })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Removes every node directory in `parent` whose lock no one holds. One with
/// no lock file (made before these locks) is left alone: nothing tells whether
/// its node still runs.
fn sweep(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(PREFIX) {
            continue;
        }
        let path = entry.path();
        if !path.join(LOCK_FILE).is_file() {
            continue;
        }
        let Ok(_abandoned) = hold(&path, FlockOperation::NonBlockingLockExclusive) else { continue };
        match std::fs::remove_dir_all(&path) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "removed the search index of a node that did not stop cleanly")
            }
            Err(error) => tracing::warn!(path = %path.display(), %error, "could not remove an abandoned search index"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_nodes_directory_is_removed_and_a_live_ones_kept() {
        let parent = tempfile::tempdir().unwrap();
        let live = ScratchDir::make_in(parent.path()).unwrap();
        std::fs::write(live.path().join("search.db"), b"index").unwrap();
        // A node that died: its lock file is there, and no one holds it.
        let dead = parent.path().join(format!("{PREFIX}dead"));
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join(LOCK_FILE), b"").unwrap();
        std::fs::write(dead.join("search.db"), b"index").unwrap();
        // One from before the locks: no lock file, so no telling.
        let older = parent.path().join(format!("{PREFIX}older"));
        std::fs::create_dir(&older).unwrap();

        let next = ScratchDir::make_in(parent.path()).unwrap();
        assert!(!dead.exists(), "the dead node's index is removed");
        assert!(live.path().join("search.db").exists(), "the live node's is kept");
        assert!(older.exists(), "one without a lock file is left alone");
        assert!(next.path().file_name().unwrap().to_string_lossy().starts_with(PREFIX));

        let (live_path, next_path) = (live.path().to_path_buf(), next.path().to_path_buf());
        drop(live);
        drop(next);
        assert!(!live_path.exists() && !next_path.exists(), "a node that stops removes its own");
        let left: Vec<_> = std::fs::read_dir(parent.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left, [std::ffi::OsString::from(format!("{PREFIX}older"))], "nothing else is left behind");
    }
}
