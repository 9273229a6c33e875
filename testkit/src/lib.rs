//! Real Redis servers for tests: [`RedisServer`] runs one `redis-server` on a
//! free loopback port in a directory of its own, [`RedisCluster`] three of them
//! as a Redis Cluster. Each is stopped when dropped. They can be killed,
//! restarted (keeping or wiping their data), paused and cut off, which is what
//! the failure tests need. A machine without Redis fails with the command that
//! installs it; nothing is skipped. [`SlowLink`] puts a slow network between a
//! node and its Redis.

use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncBufReadExt as _;
use tokio::process::{Child, Command};

/// Bound on waiting for a Redis to start or to form a cluster.
const START_WAIT: Duration = Duration::from_secs(20);

const INSTALL_HINT: &str = "redis-server was not found: run the tests with scripts/test, which installs \
    it (apt-get install -y redis-server, with sudo when not root) and then runs them";

/// How a Redis keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Memory only: a restart starts empty.
    None,
    /// Append-only file, fsynced before each write is acknowledged.
    AofAlways,
}

/// One `redis-server` on 127.0.0.1.
pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    persistence: Persistence,
    cluster: bool,
    child: Option<Child>,
}

/// A loopback port nobody listens on now (and whose cluster bus port, +10000,
/// fits too).
fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = listener.local_addr().expect("local address").port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

impl RedisServer {
    /// A standalone Redis that keeps nothing on disk.
    pub async fn start() -> RedisServer {
        Self::start_with(Persistence::None, false).await
    }

    pub async fn start_with(persistence: Persistence, cluster: bool) -> RedisServer {
        let dir = tempfile::tempdir().expect("a directory for Redis");
        let mut server = RedisServer { port: free_port(), dir, persistence, cluster, child: None };
        server.launch().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn launch(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--save")
            .arg("")
            .arg("--protected-mode")
            .arg("no")
            .arg("--loglevel")
            .arg("warning")
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log"));
        match self.persistence {
            Persistence::None => cmd.args(["--appendonly", "no"]),
            Persistence::AofAlways => cmd.args(["--appendonly", "yes", "--appendfsync", "always"]),
        };
        if self.cluster {
            cmd.args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
                .arg("--cluster-config-file")
                .arg(self.dir.path().join("nodes.conf"));
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).kill_on_drop(true);
        let child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{INSTALL_HINT}"),
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + START_WAIT;
        while self.cli(&["PING"]).await.as_deref() != Some("PONG") {
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server on port {} did not start in {START_WAIT:?}; its log: {}",
                self.port,
                std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs `redis-cli` against this server; its trimmed output, or `None` if
    /// it failed.
    pub async fn cli(&self, args: &[&str]) -> Option<String> {
        redis_cli(self.port, args).await
    }

    /// Like [`cli`](Self::cli), but the command must succeed.
    pub async fn must(&self, args: &[&str]) -> String {
        match self.cli(args).await {
            Some(out) if !out.starts_with("ERR") => out,
            other => panic!("redis-cli {args:?} on port {} failed: {other:?}", self.port),
        }
    }

    /// Starts watching every command the server runs (`MONITOR`), scripts'
    /// own calls included.
    pub async fn monitor(&self) -> Monitor {
        let mut child = Command::new("redis-cli")
            .arg("-p")
            .arg(self.port.to_string())
            .arg("monitor")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{INSTALL_HINT} ({e})"));
        let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("piped")).lines();
        // MONITOR answers OK once it is watching.
        let ok = tokio::time::timeout(START_WAIT, lines.next_line()).await;
        assert!(matches!(ok, Ok(Ok(Some(ref l))) if l.trim() == "OK"), "MONITOR did not start: {ok:?}");
        Monitor { port: self.port, _child: child, lines }
    }

    /// Kills the server at once (SIGKILL): what an acknowledged write survives
    /// depends on its persistence.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts the server again on the same port, with whatever its directory
    /// holds.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.launch().await;
    }

    /// Starts the server again on the same port with nothing: as if its disk
    /// were lost.
    pub async fn restart_empty(&mut self) {
        self.kill().await;
        wipe(self.dir.path());
        self.launch().await;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

fn wipe(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let _ = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
    }
}

async fn redis_cli(port: u16, args: &[&str]) -> Option<String> {
    let run = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(Duration::from_secs(10), run).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => panic!("{INSTALL_HINT}"),
        _ => return None,
    };
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// The commands a Redis ran while watched ([`RedisServer::monitor`]).
pub struct Monitor {
    port: u16,
    _child: Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl Monitor {
    /// Every command seen since the watch began (or the last call), up to
    /// now: each as MONITOR prints it (`TIME [DB SOURCE] "cmd" "arg" ...`,
    /// SOURCE `lua` for a script's own calls).
    pub async fn seen(&mut self) -> Vec<String> {
        let mut marker = [0u8; 8];
        getrandom::fill(&mut marker).expect("random");
        let marker = format!("end-of-watch-{}", u64::from_le_bytes(marker));
        redis_cli(self.port, &["ECHO", &marker]).await.expect("ECHO answers");
        let mut seen = Vec::new();
        let read = async {
            while let Ok(Some(line)) = self.lines.next_line().await {
                if line.contains(&marker) {
                    return true;
                }
                seen.push(line);
            }
            false
        };
        assert!(tokio::time::timeout(START_WAIT, read).await == Ok(true), "MONITOR stopped before {marker}");
        seen
    }
}

/// A Redis Cluster of three masters (no replicas) on loopback.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub async fn start() -> RedisCluster {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(RedisServer::start_with(Persistence::None, true).await);
        }
        let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addrs.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        nodes[0].must(&args).await;
        let deadline = tokio::time::Instant::now() + START_WAIT;
        for node in &nodes {
            loop {
                let info = node.cli(&["CLUSTER", "INFO"]).await.unwrap_or_default();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(tokio::time::Instant::now() < deadline, "the Redis Cluster did not form: {info}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        RedisCluster { nodes }
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}

/// A TCP relay on a loopback port to `target` that holds every byte coming
/// back from it for `delay` (in order): whoever connects through it hears
/// everything a moment late, as over a slow network — a node behind it learns
/// of other nodes' events after they acknowledged them. Stops, with every
/// relayed connection, when dropped.
pub struct SlowLink {
    pub port: u16,
    relay: tokio::task::JoinHandle<()>,
}

impl SlowLink {
    pub async fn start(target_port: u16, delay: Duration) -> SlowLink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind an ephemeral port");
        let port = listener.local_addr().expect("local address").port();
        let relay = tokio::spawn(async move {
            // Dropped with the relay task: aborts every connection's tasks.
            let mut links = tokio::task::JoinSet::new();
            while let Ok((near, _)) = listener.accept().await {
                let Ok(far) = tokio::net::TcpStream::connect(("127.0.0.1", target_port)).await else { continue };
                let (mut near_read, near_write) = near.into_split();
                let (far_read, mut far_write) = far.into_split();
                links.spawn(async move {
                    let _ = tokio::io::copy(&mut near_read, &mut far_write).await;
                });
                links.spawn(hold_back(far_read, near_write, delay));
            }
        });
        SlowLink { port, relay }
    }
}

impl Drop for SlowLink {
    fn drop(&mut self) {
        self.relay.abort();
    }
}

/// Copies `from` to `to`, each chunk `delay` after it was read.
async fn hold_back(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, delay: Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Bounded: a reader far ahead of the delay waits for the writer.
    let (chunks, mut due) = tokio::sync::mpsc::channel::<(tokio::time::Instant, Vec<u8>)>(256);
    let writer = tokio::spawn(async move {
        while let Some((at, chunk)) = due.recv().await {
            tokio::time::sleep_until(at + delay).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    let mut buf = vec![0; 16 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 || chunks.send((tokio::time::Instant::now(), buf[..n].to_vec())).await.is_err() {
            break;
        }
    }
    drop(chunks);
    let _ = writer.await;
}
