//! hearth-server: the Hearth chat server as a library. [`run`] serves WebSocket
//! connections on a listener until a shutdown token fires; the `hearth-server`
//! binary only parses flags, sets up logging and binds. Everything else — rooms,
//! the store, the journal, sessions — is reachable from tests.
//!
//! The path of one message: `session` decodes the request → `rooms` checks it,
//! assigns the seq and encodes the event once → `journal` commits it in a group to
//! the `store` → `rooms` fans the shared frame out to each subscriber's bounded
//! `outbound` queue → each connection's writer flushes its batch.

pub mod auth;
pub mod config;
pub mod journal;
pub mod outbound;
pub mod rooms;
pub mod session;
pub mod store;
pub mod transport;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use crate::config::{Config, Storage};
use crate::journal::Journal;
use crate::rooms::{ConnId, Registry};
use crate::store::memory::MemoryStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};

/// State shared by every connection of one server.
pub struct Shared {
    pub config: Config,
    pub registry: Arc<Registry>,
    next_conn: AtomicU64,
}

impl Shared {
    pub fn next_conn_id(&self) -> ConnId {
        ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
}

/// Opens the store the config names.
pub fn open_store(config: &Config) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match &config.storage {
        Storage::Dir(dir) => Arc::new(SqliteStore::open(dir)?),
        Storage::Ephemeral { history_limit } => Arc::new(MemoryStore::new(*history_limit)),
    })
}

/// Serves `listener` until `shutdown` is cancelled, then closes every connection
/// with `going_away`, waits up to `shutdown_grace` for them, and commits whatever
/// the journal still holds.
pub async fn run(listener: TcpListener, config: Config, shutdown: CancellationToken) -> Result<(), ServerError> {
    let store = open_store(&config)?;
    let journal = Arc::new(Journal::new(store.clone()));
    let registry = Arc::new(Registry::load(store, journal.clone(), config.rooms)?);
    tracing::info!(rooms = registry.len(), addr = ?listener.local_addr().ok(), "serving");
    let shared = Arc::new(Shared { config, registry, next_conn: AtomicU64::new(1) });
    let tracker = TaskTracker::new();
    transport::accept_loop(listener, shared.clone(), shutdown.clone(), tracker.clone()).await;
    tracker.close();
    if tokio::time::timeout(shared.config.shutdown_grace, tracker.wait()).await.is_err() {
        tracing::warn!(open = tracker.len(), "connections still open after the shutdown grace period");
    }
    // Blocking: the committer thread commits what is queued, then exits.
    let _ = tokio::task::spawn_blocking(move || journal.shutdown()).await;
    tracing::info!("stopped");
    Ok(())
}
