//! Server configuration: every knob with its default and the reason for it. The
//! binary builds a `Config` from flags and environment; tests build one directly.

use std::path::PathBuf;
use std::time::Duration;

use crate::auth::Secret;
use crate::clock::{self, SharedClock};
use crate::journal::CommitHold;
use crate::rooms::RoomLimits;

/// Where state lives.
#[derive(Debug, Clone)]
pub enum Storage {
    /// SQLite in this directory: survives restarts and crashes.
    Dir(PathBuf),
    /// Memory only; each room keeps its newest `history_limit` events.
    Ephemeral { history_limit: usize },
}

#[derive(Debug, Clone)]
pub struct Config {
    pub storage: Storage,
    pub token_secret: Secret,
    /// Open WebSocket connections at most; past it new ones are closed with
    /// `server_full` (4009). Each idle connection costs a few KiB.
    pub max_connections: usize,
    /// Bytes a connection may have waiting to be written before it is closed as a
    /// slow consumer (4006). 1 MiB is minutes of a calm room and about a second of
    /// the busiest one.
    pub outbound_queue_bytes: usize,
    /// Time for a TCP connection to complete the WebSocket upgrade.
    pub handshake_timeout: Duration,
    /// How often an otherwise quiet connection is pinged.
    pub ping_interval: Duration,
    /// Silence after which a connection is closed with `idle_timeout` (4007).
    pub idle_timeout: Duration,
    /// Time one batch of frames may take to write before the peer is given up on.
    pub write_timeout: Duration,
    /// After a writer wakes, how long it waits for more frames before writing, so
    /// one `write` carries several. Zero (the default) writes at once; see
    /// BENCHMARKS.md for what a window buys.
    pub write_coalesce: Duration,
    /// How long shutdown waits for connections to take their close frames.
    pub shutdown_grace: Duration,
    pub rooms: RoomLimits,
    /// Where event timestamps and time rules read the time. Tests set a manual one.
    pub clock: SharedClock,
    /// Test hook: commits wait while this is held. Never held in production.
    pub commit_hold: CommitHold,
}

impl Config {
    /// Defaults for everything but where state lives and the token secret.
    pub fn new(storage: Storage, token_secret: Secret) -> Config {
        Config {
            storage,
            token_secret,
            max_connections: 100_000,
            outbound_queue_bytes: 1024 * 1024,
            handshake_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
            write_coalesce: Duration::ZERO,
            shutdown_grace: Duration::from_secs(5),
            rooms: RoomLimits::default(),
            clock: clock::system(),
            commit_hold: CommitHold::default(),
        }
    }
}

/// Default number of events an ephemeral room keeps.
pub const DEFAULT_EPHEMERAL_HISTORY: usize = 10_000;
