//! hearth-server: the Hearth chat server as a library. [`run`] serves WebSocket
//! connections on a listener until a shutdown token fires; the `hearth-server`
//! binary only parses flags, sets up logging and binds. Everything else — rooms,
//! the broker, the store, sessions — is reachable from tests.
//!
//! The path of one message: `session` decodes the request → `room` decides it
//! against the room's applied state → the `broker` checks its preconditions,
//! assigns the seq and encodes the event once → the `journal` commits it in a
//! group to the `store` → `rooms` applies it and fans the shared frame out to each
//! receiver's bounded `outbound` queue → each connection's writer flushes its
//! batch, and the sender gets its reply.

pub mod accounts;
pub mod alloc;
pub mod auth;
pub mod backup;
pub mod broker;
pub mod clock;
pub mod config;
pub mod erasure;
pub mod export;
pub mod frames;
pub mod hub;
pub mod import;
pub mod journal;
mod keepalive;
pub mod metered;
pub mod metrics;
pub mod outbound;
pub mod presence;
pub mod prompts;
pub mod push;
pub mod reads;
pub mod refusals;
pub mod room;
pub mod rooms;
pub mod search;
pub mod session;
pub mod store;
pub mod tls;
pub mod transport;
pub mod web;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// mimalloc, not the system's malloc, for every process that runs a server —
/// the binary, and the tests that run one in-process, so what they measure is
/// what the binary does. glibc's malloc keeps the memory of freed large
/// buffers (history pages, bursts of replies) in its arenas: a node's RSS
/// stayed ~70 MiB higher after twenty greedy connections left. mimalloc
/// returns freed pages within seconds, asked by a task once a second (see
/// [`alloc`]; ARCHITECTURE.md, "Memory per connection"; BENCHMARKS.md has the
/// hot path measured on it).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accounts::local::LocalAccounts;
use crate::accounts::{AccountStore, Accounts, Notice};
use crate::broker::cluster::RedisBroker;
use crate::broker::local::LocalBroker;
use crate::broker::{Broker, BrokerError};
use crate::clock::SharedClock;
pub use crate::config::{Config, Limits, RedisConfig, RedisTarget, Storage};
use crate::hub::{ConnId, Hub};
use crate::rooms::{Loaded, Registry};
use crate::store::memory::MemoryStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};

/// State shared by every connection of one server.
pub struct Shared {
    pub config: Config,
    /// The TLS configuration, when the server speaks `wss://`.
    pub tls: Option<Arc<tls::Tls>>,
    pub registry: Arc<Registry>,
    pub accounts: Arc<Accounts>,
    /// Where each member has read up to, per room.
    pub reads: Arc<dyn reads::ReadStore>,
    /// This node's full-text index of every room.
    pub search: Arc<search::Search>,
    pub clock: SharedClock,
    /// Tells the prompt poster a prompt was scheduled here.
    pub prompts_relist: prompts::Relist,
    /// Notifications for members who are away.
    pub push: Arc<push::Push>,
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
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("cannot reach Redis at {target} ({detail}); start it, or fix --redis / --redis-cluster")]
    Redis { target: String, detail: String },
    #[error(
        "the store failed while serving, so the server stopped: {0}; restart it to recover from the last good commit"
    )]
    StoreFailed(String),
    #[error("cannot open the accounts: {0}")]
    Accounts(accounts::StoreFailure),
    #[error("cannot open the read positions: {0}")]
    Reads(reads::ReadsUnavailable),
    #[error("cannot open the search index: {0}")]
    Search(#[from] search::IndexError),
}

/// Opens the embedded store the config names (`None` in cluster mode, where
/// Redis is the store).
pub fn open_store(config: &Config) -> Result<Option<Arc<dyn Store>>, StoreError> {
    Ok(Some(match &config.storage {
        Storage::Dir(dir) => Arc::new(SqliteStore::open(dir)?),
        Storage::Ephemeral { history_limit } => Arc::new(MemoryStore::new(*history_limit)),
        Storage::Redis(_) => return Ok(None),
    }))
}

/// What `start_broker` opens: the broker, the local one when it is local, the
/// accounts' store, and (in cluster mode) what other nodes announce of accounts.
struct Opened {
    broker: Arc<dyn Broker>,
    local: Option<Arc<LocalBroker>>,
    accounts: Arc<dyn AccountStore>,
    reads: Arc<dyn reads::ReadStore>,
    account_notices: Option<tokio::sync::broadcast::Receiver<Notice>>,
}

/// The broker the config names: local over the embedded store, or Redis.
async fn start_broker(
    config: &Config,
    delivery: Arc<dyn crate::broker::Delivery>,
    hub: Arc<Hub>,
    failed: CancellationToken,
    stop: CancellationToken,
) -> Result<Opened, ServerError> {
    if let Storage::Redis(redis) = &config.storage {
        let mut redis = redis.clone();
        redis.dedupe_window = config.rooms.dedupe_window;
        let target = redis.target.describe();
        let broker =
            RedisBroker::connect(redis, config.clock.clone(), delivery, stop).await.map_err(|error| match error {
                BrokerError::Unavailable(detail) => ServerError::Redis { target, detail },
                other => ServerError::Redis { target, detail: other.to_string() },
            })?;
        let (accounts, account_notices) = (broker.accounts(), Some(broker.account_notices()));
        let reads = broker.reads();
        return Ok(Opened { broker: Arc::new(broker), local: None, accounts, reads, account_notices });
    }
    let accounts: Arc<dyn AccountStore> = match &config.storage {
        Storage::Dir(dir) => Arc::new(LocalAccounts::open(dir).map_err(ServerError::Accounts)?),
        _ => Arc::new(LocalAccounts::in_memory()),
    };
    let reads: Arc<dyn reads::ReadStore> = match &config.storage {
        Storage::Dir(dir) => Arc::new(reads::LocalReads::open(dir).map_err(ServerError::Reads)?),
        _ => Arc::new(reads::LocalReads::in_memory()),
    };
    let store = open_store(config)?.expect("an embedded store");
    let local = Arc::new(LocalBroker::start(
        store,
        config.clock.clone(),
        delivery,
        hub,
        config.rooms.dedupe_window,
        config.rooms.idle_after,
        config.commit_hold.clone(),
        failed,
    ));
    Ok(Opened { broker: local.clone(), local: Some(local), accounts, reads, account_notices: None })
}

/// Serves `listener` until `shutdown` is cancelled (or the store fails), then
/// closes every connection with `going_away`, waits up to `shutdown_grace` for
/// them, and makes durable whatever is still queued.
pub async fn run(listener: TcpListener, config: Config, shutdown: CancellationToken) -> Result<(), ServerError> {
    Server::start(config).await?.serve(listener, shutdown).await
}

/// A server whose store is open (or whose Redis answered), not yet serving:
/// what the binary has once it may say it is up.
pub struct Server {
    shared: Arc<Shared>,
    broker: Arc<dyn Broker>,
    local: Option<Arc<LocalBroker>>,
    account_notices: Option<tokio::sync::broadcast::Receiver<Notice>>,
    store_failed: CancellationToken,
    broker_stop: CancellationToken,
}

impl Server {
    /// Opens the store, or connects to Redis, as `config` says.
    pub async fn start(mut config: Config) -> Result<Server, ServerError> {
        config.rooms.receivers = config.limits.receivers_per_room;
        // A resume served from a room's recent events must not reach further back
        // than `history` says the server holds.
        match &config.storage {
            Storage::Ephemeral { history_limit } => {
                config.rooms.recent_events = config.rooms.recent_events.min(*history_limit);
            }
            Storage::Redis(redis) => {
                config.rooms.recent_events = config.rooms.recent_events.min(redis.history_events);
            }
            Storage::Dir(_) => {}
        }
        let tls = match &config.tls {
            Some(files) => Some(Arc::new(tls::Tls::load(files.clone())?)),
            None => None,
        };
        let loaded = Arc::new(Loaded::default());
        let store_failed = CancellationToken::new();
        let broker_stop = CancellationToken::new();
        let hub = Arc::new(Hub::default());
        let search = Arc::new(match &config.storage {
            Storage::Dir(dir) => search::Search::open(dir)?,
            Storage::Ephemeral { history_limit } => search::Search::in_memory(*history_limit as u64)?,
            Storage::Redis(redis) => search::Search::scratch(redis.history_events as u64)?,
        });
        let tap = search.tap(loaded.clone());
        let Opened { broker, local, accounts, reads, account_notices } =
            start_broker(&config, tap, hub.clone(), store_failed.clone(), broker_stop.clone()).await?;
        let registry = Arc::new(Registry::new(loaded.clone(), broker.clone(), hub.clone(), config.rooms));
        let clock = config.clock.clone();
        let accounts =
            Arc::new(Accounts::new(accounts, config.accounts.clone(), config.token_secret.clone(), clock.clone(), hub));
        let secret = reads.push_key(push::Keys::generate().secret()).await.map_err(ServerError::Reads)?;
        let keys = push::Keys::from_secret(&secret).map_err(|e| ServerError::Reads(reads::ReadsUnavailable(e)))?;
        let push = push::Push::start(
            keys,
            config.push.clone(),
            reads.clone(),
            broker.clone(),
            loaded.clone(),
            broker_stop.clone(),
        );
        let shared = Arc::new(Shared {
            config,
            tls,
            registry,
            accounts,
            reads,
            search,
            clock,
            prompts_relist: prompts::Relist::default(),
            push,
            next_conn: AtomicU64::new(1),
        });
        Ok(Server { shared, broker, local, account_notices, store_failed, broker_stop })
    }

    /// The TLS configuration, to reload when its files change (SIGHUP).
    pub fn tls(&self) -> Option<Arc<tls::Tls>> {
        self.shared.tls.clone()
    }

    /// Serves `listener` until `shutdown` is cancelled (see [`run`]).
    pub async fn serve(self, listener: TcpListener, shutdown: CancellationToken) -> Result<(), ServerError> {
        let Server { shared, broker, local, account_notices, store_failed, broker_stop } = self;
        tracing::info!(addr = ?listener.local_addr().ok(), "serving");
        let follower = account_notices.map(|notices| tokio::spawn(shared.accounts.clone().follow(notices)));
        let stop = shutdown.child_token();
        let stop_on_failure = {
            let stop = stop.clone();
            tokio::spawn(async move {
                store_failed.cancelled().await;
                stop.cancel();
            })
        };
        let evictor = tokio::spawn(shared.registry.clone().evict_idle(stop.clone()));
        let allocator = tokio::spawn(alloc::return_freed_memory(stop.clone()));
        let indexer = tokio::spawn(shared.search.clone().run(broker.clone(), stop.clone()));
        let presence = tokio::spawn(presence::run(shared.registry.clone(), stop.clone()));
        let keepalive = tokio::spawn(keepalive::run(shared.clone(), stop.clone()));
        let prompts = tokio::spawn(prompts::run(
            shared.registry.clone(),
            shared.clock.clone(),
            shared.prompts_relist.clone(),
            stop.clone(),
        ));
        // Erasures a stop cut short, or made after the backup restored here.
        let erasures = tokio::spawn({
            let shared = shared.clone();
            async move { erasure::resume(&shared).await }
        });
        let tracker = TaskTracker::new();
        if let Some(addr) = shared.config.admin_listen {
            match TcpListener::bind(addr).await {
                Ok(admin) => {
                    tracing::info!(%addr, "admin endpoints listening");
                    tokio::spawn(transport::admin_loop(admin, shared.clone(), stop.clone()));
                }
                Err(error) => {
                    tracing::error!(%addr, %error, "cannot listen for the admin endpoints; they stay on the main port")
                }
            }
        }
        transport::accept_loop(listener, shared.clone(), stop.clone(), tracker.clone()).await;
        tracker.close();
        if tokio::time::timeout(shared.config.shutdown_grace, tracker.wait()).await.is_err() {
            tracing::warn!(open = tracker.len(), "connections still open after the shutdown grace period");
        }
        // Every task that holds the broker ends before this returns, so a
        // store's files are let go of when `serve` is done.
        let stopped = [stop_on_failure, erasures, presence, prompts, allocator, keepalive].into_iter().chain(follower);
        for task in stopped {
            task.abort();
            let _ = task.await;
        }
        let _ = evictor.await;
        let _ = indexer.await;
        let _ = broker.shutdown().await;
        shared.registry.loaded().clear();
        broker_stop.cancel();
        shared.push.stopped().await;
        if let Some(failure) = local.and_then(|local| local.failure()) {
            return Err(ServerError::StoreFailed(failure));
        }
        tracing::info!("stopped");
        Ok(())
    }
}
