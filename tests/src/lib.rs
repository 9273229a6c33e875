//! Helpers for Hearth's integration tests: [`TestServer`] runs a real server
//! in-process on an ephemeral loopback port, and mints tokens for it; clients are
//! the real `hearth_cli::Client` over real sockets. Every wait here is bounded.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use hearth_cli::{Client, Options};
use hearth_protocol::ops::{CreateRoom, SetRole, Visibility};
use hearth_protocol::{Codec, Event, Role, RoomId, ShortText, UserId};
use hearth_server::auth::{self, Secret};
use hearth_server::{Config, Limits, RedisConfig, RedisTarget, Storage};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;

pub mod browser;

/// Bound on any single wait for a reply or event in these tests.
pub const WAIT: Duration = Duration::from_secs(20);

pub fn secret() -> Secret {
    Secret::new(b"integration-test-secret-0123456789".to_vec()).expect("long enough")
}

pub fn room(name: &str) -> RoomId {
    RoomId::new(name).expect("valid room name")
}

pub fn user(name: &str) -> UserId {
    UserId::new(name).expect("valid user name")
}

/// Gives `who` a role in room `name`, for good and without a title.
pub fn set_role(name: &str, who: &str, role: Role) -> SetRole {
    SetRole { room: room(name), user: user(who), role, expires_at: None, title: None }
}

/// Logs to the test's output when RUST_LOG is set.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A server running in this process on 127.0.0.1 with an ephemeral port.
pub struct TestServer {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
    /// Kept so a durable server can be restarted on the same directory.
    pub data_dir: Option<PathBuf>,
}

impl TestServer {
    /// An in-memory server with default settings.
    pub async fn ephemeral() -> TestServer {
        Self::start(test_config(Storage::Ephemeral { history_limit: 10_000 })).await
    }

    /// A durable server on `dir`.
    pub async fn durable(dir: PathBuf) -> TestServer {
        Self::start(test_config(Storage::Dir(dir))).await
    }

    pub async fn start(config: Config) -> TestServer {
        Self::start_at(config, "127.0.0.1:0".parse().expect("an address")).await
    }

    /// A server on `addr` (a restart on the address clients already know).
    pub async fn start_at(config: Config, addr: SocketAddr) -> TestServer {
        init_logging();
        let data_dir = match &config.storage {
            Storage::Dir(dir) => Some(dir.clone()),
            Storage::Ephemeral { .. } | Storage::Redis(_) => None,
        };
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = tokio::spawn(async move {
            hearth_server::run(listener, config, token).await.expect("server runs");
        });
        TestServer { addr, shutdown, task, data_dir }
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// A token for `name` that lasts: ten years, so it is valid on the
    /// manual clocks timed tests start in the future and move by weeks (the
    /// server checks expiry on its own clock).
    pub fn token(&self, name: &str) -> String {
        auth::mint(&secret(), &user(name), Duration::from_secs(10 * 365 * 24 * 3600))
    }

    pub fn options(&self, name: &str, codec: Codec) -> Options {
        let mut options = Options::new(self.url(), self.token(name), codec);
        options.request_timeout = WAIT;
        options
    }

    /// A connected client for user `name`.
    pub async fn client(&self, name: &str, codec: Codec) -> Client {
        Client::connect(self.options(name, codec)).await.unwrap_or_else(|e| panic!("{name} connects: {e}"))
    }

    /// Graceful shutdown: closes connections, commits the journal, waits.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task).await.expect("server stops in time").expect("server task");
    }
}

/// Where a behaviour test runs: one node, or two nodes sharing a Redis with each
/// room's members split across them. The same test body runs on both (see
/// [`both_modes!`]).
pub struct Deployment {
    pub nodes: Vec<TestServer>,
    /// The Redis of a two-node deployment.
    pub redis: Option<hearth_testkit::RedisServer>,
    redis_cluster: Option<hearth_testkit::RedisCluster>,
    /// What every node runs with, for a restart.
    config: Config,
    /// The clock every node reads, when the test moves time itself.
    pub clock: Option<hearth_server::clock::ManualClock>,
    _dir: Option<tempfile::TempDir>,
}

impl Deployment {
    /// One in-memory node.
    pub async fn single() -> Deployment {
        Self::with_nodes(test_config(Storage::Ephemeral { history_limit: 10_000 }), 1).await
    }

    /// One node on a data directory of its own, so a restart keeps its state.
    pub async fn single_durable() -> Deployment {
        let dir = tempfile::tempdir().expect("a data directory");
        let mut d = Self::with_nodes(test_config(Storage::Dir(dir.path().to_path_buf())), 1).await;
        d._dir = Some(dir);
        d
    }

    /// Two nodes on a Redis of their own.
    pub async fn cluster() -> Deployment {
        let redis = hearth_testkit::RedisServer::start().await;
        let mut d = Self::with_nodes(cluster_config(&redis.url(), "behaviour"), 2).await;
        d.redis = Some(redis);
        d
    }

    /// Two nodes on a Redis Cluster of three masters of their own.
    pub async fn redis_cluster() -> Deployment {
        let cluster = hearth_testkit::RedisCluster::start().await;
        let mut config = cluster_config(&cluster.urls()[0], "behaviour");
        if let Storage::Redis(redis) = &mut config.storage {
            redis.target = RedisTarget::Cluster(cluster.urls());
        }
        let mut d = Self::with_nodes(config, 2).await;
        d.redis_cluster = Some(cluster);
        d
    }

    /// `count` nodes running `config`.
    pub async fn with_nodes(config: Config, count: usize) -> Deployment {
        let mut nodes = Vec::new();
        for _ in 0..count {
            nodes.push(TestServer::start(config.clone()).await);
        }
        Deployment { nodes, redis: None, redis_cluster: None, config, clock: None, _dir: None }
    }

    /// One in-memory node whose time the test moves ([`Deployment::advance`]).
    pub async fn single_timed() -> Deployment {
        let clock = hearth_server::clock::ManualClock::new(START);
        let mut config = test_config(Storage::Ephemeral { history_limit: 10_000 });
        config.clock = std::sync::Arc::new(clock.clone());
        let mut d = Self::with_nodes(config, 1).await;
        d.clock = Some(clock);
        d
    }

    /// One node on a data directory of its own whose time the test moves:
    /// a restart keeps its state and its clock.
    pub async fn single_durable_timed() -> Deployment {
        let dir = tempfile::tempdir().expect("a data directory");
        let clock = hearth_server::clock::ManualClock::new(START);
        let mut config = test_config(Storage::Dir(dir.path().to_path_buf()));
        config.clock = std::sync::Arc::new(clock.clone());
        let mut d = Self::with_nodes(config, 1).await;
        d.clock = Some(clock);
        d._dir = Some(dir);
        d
    }

    /// Two nodes on a Redis, both reading one clock the test moves.
    pub async fn cluster_timed() -> Deployment {
        let redis = hearth_testkit::RedisServer::start().await;
        let clock = hearth_server::clock::ManualClock::new(START);
        let mut config = cluster_config(&redis.url(), "behaviour");
        config.clock = std::sync::Arc::new(clock.clone());
        let mut d = Self::with_nodes(config, 2).await;
        d.redis = Some(redis);
        d.clock = Some(clock);
        d
    }

    /// Moves the deployment's manual clock on.
    pub fn advance(&self, by: Duration) {
        self.clock.as_ref().expect("a timed deployment (single_timed, cluster_timed)").advance(by);
    }

    /// The deployment's time now.
    pub fn now(&self) -> hearth_protocol::Millis {
        use hearth_server::clock::Clock as _;
        self.clock.as_ref().map_or_else(|| hearth_server::clock::SystemClock.now(), |c| c.now())
    }

    pub fn is_cluster(&self) -> bool {
        self.nodes.len() > 1
    }

    /// The node `name` connects to: fixed per name, so the members of a room
    /// land on different nodes.
    pub fn node(&self, name: &str) -> &TestServer {
        let spread = name.bytes().map(usize::from).sum::<usize>();
        &self.nodes[spread % self.nodes.len()]
    }

    /// The node `name` does not usually connect to (the same one on one node).
    pub fn other_node(&self, name: &str) -> &TestServer {
        let spread = name.bytes().map(usize::from).sum::<usize>();
        &self.nodes[(spread + 1) % self.nodes.len()]
    }

    pub async fn client(&self, name: &str, codec: Codec) -> Client {
        self.node(name).client(name, codec).await
    }

    /// Stops every node gracefully and starts as many again on the same store.
    pub async fn restart(self) -> Deployment {
        self.restart_after(|| ()).await
    }

    /// [`Deployment::restart`], doing `between` while every node is stopped
    /// (to damage what a node keeps, say).
    pub async fn restart_after(mut self, between: impl FnOnce()) -> Deployment {
        let count = self.nodes.len();
        for node in self.nodes.drain(..) {
            node.stop().await;
        }
        between();
        for _ in 0..count {
            self.nodes.push(TestServer::start(self.config.clone()).await);
        }
        self
    }

    pub async fn stop(self) {
        for node in self.nodes {
            node.stop().await;
        }
    }
}

/// Where timed deployments' clocks start: a fixed moment, so tests read alike.
pub const START: hearth_protocol::Millis = hearth_protocol::Millis(1_800_000_000_000);

/// Settings for a cluster-mode node on `redis_url`: test limits, a probe fast
/// enough for failure tests to be quick, and keys under `prefix`.
pub fn cluster_config(redis_url: &str, prefix: &str) -> Config {
    let mut redis = RedisConfig::new(RedisTarget::Single(redis_url.to_string()));
    redis.prefix = prefix.to_string();
    redis.probe_every = Duration::from_millis(200);
    redis.timeout = Duration::from_millis(500);
    test_config(Storage::Redis(redis))
}

/// Runs each test body twice: on one node and on two nodes sharing a Redis.
/// Each body is an `async fn NAME(d: Deployment)`; the tests are `NAME::one_node`
/// and `NAME::two_nodes_on_redis`.
#[macro_export]
macro_rules! both_modes {
    ($(async fn $name:ident($d:ident: Deployment) $body:block)*) => {
        $crate::in_deployments! { single, cluster; $(async fn $name($d: Deployment) $body)* }
    };
}

/// [`both_modes!`] for time rules: each deployment's nodes read one manual
/// clock, moved with [`Deployment::advance`] instead of sleeping.
#[macro_export]
macro_rules! both_modes_timed {
    ($(async fn $name:ident($d:ident: Deployment) $body:block)*) => {
        $crate::in_deployments! { single_timed, cluster_timed; $(async fn $name($d: Deployment) $body)* }
    };
}

/// The two modes' tests, on the deployments the two constructors make.
#[doc(hidden)]
#[macro_export]
macro_rules! in_deployments {
    ($one:ident, $two:ident; $(async fn $name:ident($d:ident: Deployment) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                pub(super) async fn run($d: $crate::Deployment) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn one_node() {
                    run($crate::Deployment::$one().await).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn two_nodes_on_redis() {
                    run($crate::Deployment::$two().await).await;
                }
            }
        )*
    };
}

/// Defaults for tests: the fixed test secret and production settings, except
/// that one connection may send as fast as a test likes. Tests of the limits
/// themselves start from `Limits::default()`.
pub fn test_config(storage: Storage) -> Config {
    let mut config = Config::new(storage, secret());
    config.limits = unlimited_rates();
    // Push services written in the tests listen on loopback, in plain HTTP.
    config.push.hosts.push("127.0.0.1".to_string());
    config.push.plain_http = true;
    config
}

/// Production limits with the request and message rates lifted.
pub fn unlimited_rates() -> Limits {
    Limits {
        requests_per_sec: 1_000_000,
        request_burst: 1_000_000,
        messages_per_sec: 1_000_000,
        message_burst: 1_000_000,
        max_in_flight: 1_000_000,
        ..Limits::default()
    }
}

/// Creates an open room with the given cap as `client`.
pub async fn create_room(client: &Client, name: &str, cap: Option<u32>) -> Result<()> {
    client
        .request(CreateRoom {
            room: room(name),
            topic: ShortText::new("test").unwrap(),
            cap,
            visibility: Visibility::Open,
        })
        .await?;
    Ok(())
}

/// Takes events until `want` messages of `room` have arrived (other events are
/// skipped); fails if the connection closes or a wait passes [`WAIT`].
pub async fn collect_messages(client: &mut Client, room: &RoomId, want: usize) -> Result<Vec<(u64, String)>> {
    let mut got = Vec::with_capacity(want);
    while got.len() < want {
        match client.next_event_within(WAIT).await.with_context(|| format!("after {} of {want} messages", got.len()))? {
            Some(Event::Message(m)) if &m.room == room => got.push((m.seq.0, m.text.to_string())),
            Some(_) => {}
            None => bail!("connection closed after {} of {want} messages: {:?}", got.len(), client.close_info()),
        }
    }
    Ok(got)
}

/// Proves the server still serves `client`: its message `still here N` to
/// `room` (which it receives) comes back.
pub async fn still_serving(client: &mut Client, room: &RoomId, n: usize) {
    let text = format!("still here {n}");
    client.send(room, &text).await.expect("the control member can still send");
    let got = collect_messages(client, room, 1).await.expect("and receive");
    assert_eq!(got[0].1, text);
}

/// Asserts seqs strictly increase (no duplicates, in order).
pub fn assert_strictly_increasing(seqs: impl IntoIterator<Item = u64>, who: &str) {
    let mut last = 0;
    for seq in seqs {
        assert!(seq > last, "{who}: seq {seq} after {last} (duplicate or out of order)");
        last = seq;
    }
}

/// This process's resident memory, in bytes (Linux).
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next());
    kb.and_then(|kb| kb.parse::<u64>().ok()).expect("VmRSS in kB") * 1024
}

pub fn short(text: &str) -> ShortText {
    ShortText::new(text).expect("a short text")
}

/// The error code of a refused request; panics if it was not refused.
pub fn code<T: std::fmt::Debug>(result: Result<T, hearth_cli::ClientError>) -> hearth_protocol::ErrorCode {
    refusal(result).code
}

/// The room's messages as a history page shows them now (the newest 100), by seq.
pub async fn history_messages(client: &Client, name: &str) -> Vec<hearth_protocol::event::MessageEvent> {
    let history = hearth_protocol::ops::History { room: room(name), before: None, after: None, limit: Some(100) };
    let page = client.request(history).await.unwrap();
    page.events
        .into_iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m),
            _ => None,
        })
        .collect()
}

/// An operator's `POST path` with a JSON `body`: the whole answer.
pub async fn operator_post(server: &TestServer, path: &str, body: &serde_json::Value) -> String {
    let token = auth::mint_with(&secret(), &user("operator"), Duration::from_secs(60), auth::TokenKind::Admin, None);
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: hearth\r\nAuthorization: Bearer {token}\r\nContent-Type: \
         application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    http(server, &request).await
}

/// The server's refusal `result` holds; panics on anything else.
pub fn refusal<T: std::fmt::Debug>(result: Result<T, hearth_cli::ClientError>) -> hearth_protocol::ErrorBody {
    match result {
        Err(hearth_cli::ClientError::Server(body)) => body,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Ada owns `name`; bo and cy join. Returns the three connections, each
/// receiving the room.
pub async fn trio(d: &Deployment, name: &str) -> (Client, Client, Client) {
    let mut ada = d.client("ada", Codec::MsgPack).await;
    create_room(&ada, name, None).await.unwrap();
    ada.join(&room(name)).await.unwrap();
    let mut bo = d.client("bo", Codec::Json).await;
    bo.join(&room(name)).await.unwrap();
    let mut cy = d.client("cy", Codec::MsgPack).await;
    cy.join(&room(name)).await.unwrap();
    // Everyone has seen everyone join.
    for client in [&mut ada, &mut bo] {
        until_event(client, "cy's join", |e| matches!(e, Event::MemberJoined(j) if j.from.as_str() == "cy")).await;
    }
    (ada, bo, cy)
}

/// Reads events until one satisfies `wanted`; panics after [`WAIT`].
pub async fn until_event(client: &mut Client, what: &str, wanted: impl Fn(&Event) -> bool) -> Event {
    loop {
        match client.next_event_within(WAIT).await {
            Ok(Some(event)) if wanted(&event) => return event,
            Ok(Some(_)) => {}
            other => panic!("no {what}: {other:?}"),
        }
    }
}

/// Sends a raw HTTP `request` to `server` and reads the whole answer.
pub async fn http(server: &TestServer, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.expect("connect");
    tcp.write_all(request.as_bytes()).await.expect("send the request");
    let mut answer = String::new();
    tokio::time::timeout(WAIT, tcp.read_to_string(&mut answer)).await.expect("answered in time").expect("read");
    answer
}

/// `GET path` over plain HTTP: the answer's status code and body.
pub async fn http_get(server: &TestServer, path: &str) -> (u16, String) {
    // `Connection: close`: the page's files may otherwise keep the connection.
    let answer = http(server, &format!("GET {path} HTTP/1.1\r\nHost: hearth\r\nConnection: close\r\n\r\n")).await;
    let status = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

pub type RawSocket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A bare msgpack WebSocket for `name`, with no client library reading it.
pub async fn raw_connect(server: &TestServer, name: &str) -> RawSocket {
    let mut request = server.url().into_client_request().unwrap();
    request.headers_mut().insert("Authorization", format!("Bearer {}", server.token(name)).parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// Reads until the server's close frame and returns its code.
pub async fn read_close_code(ws: &mut RawSocket) -> Option<u16> {
    let read = async {
        while let Some(Ok(message)) = ws.next().await {
            if let Message::Close(frame) = message {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    };
    tokio::time::timeout(WAIT, read).await.expect("the server closes in time")
}

/// A WebSocket upgraded for `name` and then left as a bare TCP stream: nothing
/// reads it as WebSocket, so nothing answers the server's pings.
pub async fn deaf_connect(server: &TestServer, name: &str) -> tokio::net::TcpStream {
    let ws = raw_connect(server, name).await;
    match ws.into_inner() {
        tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp,
        _ => unreachable!("tests connect without TLS"),
    }
}

/// Reads raw server frames from `tcp` until a close frame, and returns its code.
/// Server frames are unmasked, so a few header bytes are all there is to parse.
pub async fn deaf_read_close_code(tcp: &mut tokio::net::TcpStream) -> Option<u16> {
    use tokio::io::AsyncReadExt;
    let read = async {
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            // Frames the upgrade's reader took are gone; find the close frame's
            // header (FIN + opcode 8) followed by a plausible length and code.
            if let Some(at) = bytes.windows(4).position(|w| w[0] == 0x88 && w[1] >= 2 && w[1] <= 125 && w[2] >= 3) {
                return Some(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
            }
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(WAIT, read).await.expect("the server closes in time")
}
