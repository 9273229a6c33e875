//! Server configuration: every knob with its default and the reason for it. The
//! binary builds a `Config` from flags and environment; tests build one directly.

use std::path::PathBuf;
use std::time::Duration;

use crate::auth::Secret;
pub use crate::broker::cluster::{RedisConfig, RedisTarget};

pub mod file;
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
    /// Cluster mode: rooms, memberships, pins and history live in Redis, shared
    /// by every node that names the same Redis and prefix.
    Redis(RedisConfig),
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
    /// Browser pages (their `Origin`: scheme, host, port) allowed to open a
    /// WebSocket; `*` allows any. Empty, the default: none — browsers are
    /// refused with 403 until the operator names the site that serves the chat.
    /// Clients that are not browsers send no Origin and are not affected.
    pub allowed_origins: Vec<String>,
    /// Also serve the operator endpoints (`/healthz`, `/readyz`, `/metrics`)
    /// alone on this address, e.g. one a load balancer or Prometheus reaches but
    /// the internet does not. They stay on the main port too.
    pub admin_listen: Option<std::net::SocketAddr>,
    /// Serve `wss://` with this certificate chain and key (PEM); `None`: `ws://`.
    pub tls: Option<crate::tls::TlsFiles>,
    pub rooms: RoomLimits,
    /// What one member with a valid token may do; see [`Limits`].
    pub limits: Limits,
    /// Who may register, and how long login tokens last.
    pub accounts: crate::accounts::AccountsConfig,
    /// Notifications for members who are away (Web Push).
    pub push: crate::push::PushConfig,
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
            allowed_origins: Vec::new(),
            tls: None,
            admin_listen: None,
            rooms: RoomLimits::default(),
            limits: Limits::default(),
            accounts: crate::accounts::AccountsConfig::default(),
            push: crate::push::PushConfig::default(),
            clock: clock::system(),
            commit_hold: CommitHold::default(),
        }
    }
}

/// Limits a member with a valid token cannot get past. Each protects everyone
/// else on the node from one member (or one address); each answers with a
/// documented error or close code (PROTOCOL.md, "Limits").
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Requests a connection may make per second, sustained, and in one burst.
    /// Pings count. Past it: `rate_limited` with `retry_after_ms`.
    pub requests_per_sec: u32,
    pub request_burst: u32,
    /// Messages (`send`) a connection may post per second, sustained, and in one
    /// burst: a burst of 60 of the largest messages is 480 KB in every member's
    /// queue, under half its bound, so one member cannot make the others slow.
    pub messages_per_sec: u32,
    pub message_burst: u32,
    /// Refused requests in a row after which the connection is closed with
    /// `rate_limited` (4008): a client that ignores `retry_after_ms`.
    pub refusals_before_close: u32,
    /// Requests waiting for their event to be durable, per connection. Past it:
    /// `rate_limited`. 32 messages of 8 KiB and their echoes fit in the queue.
    pub max_in_flight: usize,
    /// Connections one user may have open at once (phones, laptops, tabs).
    pub connections_per_user: usize,
    /// Connections from one IP address. Behind a reverse proxy every client has
    /// the proxy's address: raise it there.
    pub connections_per_ip: usize,
    /// Rooms one user may own.
    pub rooms_per_user: usize,
    /// Connections receiving one room at once (a room has at most 1,000 members).
    pub receivers_per_room: usize,
    /// Pinned notes per room: 20 notes of the longest text still fit the `join`
    /// reply in one frame, in JSON with every character escaped.
    pub pins_per_room: usize,
    /// Bytes a connection may send without completing a message before it is
    /// closed with `rate_limited`: a flood of empty fragments is all overhead.
    pub bytes_without_message: usize,
    /// New direct conversations one member may start per hour (at most this
    /// many at once, then one every hour/N); 0 turns direct messages off.
    pub direct_per_hour: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            requests_per_sec: 50,
            request_burst: 200,
            messages_per_sec: 20,
            message_burst: 60,
            refusals_before_close: 100,
            max_in_flight: 32,
            connections_per_user: 20,
            connections_per_ip: 1_000,
            rooms_per_user: 50,
            receivers_per_room: 2_000,
            pins_per_room: 20,
            bytes_without_message: 64 * 1024,
            direct_per_hour: 20,
        }
    }
}

/// Default number of events an ephemeral room keeps.
pub const DEFAULT_EPHEMERAL_HISTORY: usize = 10_000;
