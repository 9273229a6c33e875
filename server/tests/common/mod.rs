//! The real `hearth-server` binary as a child process, for tests that kill it.
//! Each test binary uses part of it.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_hearth-server");
pub const WAIT: Duration = Duration::from_secs(20);

pub struct ServerProcess {
    pub child: Child,
    pub url: String,
}

impl ServerProcess {
    /// A durable server on `dir`, with its own token secret there.
    pub fn durable(dir: &Path) -> ServerProcess {
        Self::start([OsStr::new("--data-dir"), dir.as_os_str()], None)
    }

    /// A cluster-mode node on the Redis at `url`, keys under `prefix`, checking
    /// tokens with `secret`.
    pub fn cluster(url: &str, prefix: &str, secret: &str) -> ServerProcess {
        let args = ["--redis", url, "--redis-prefix", prefix, "--redis-timeout", "500ms", "--redis-probe", "200ms"];
        Self::start(args.map(OsStr::new), Some(secret))
    }

    /// Starts the binary on an ephemeral port, rate limits lifted, and reads the
    /// port from its banner.
    fn start<'a>(args: impl IntoIterator<Item = &'a OsStr>, secret: Option<&str>) -> ServerProcess {
        let mut cmd = Command::new(BIN);
        cmd.args(["--listen", "127.0.0.1:0", "--message-rate", "1000000", "--message-burst", "1000000"])
            .args(["--request-rate", "1000000", "--request-burst", "1000000", "--max-in-flight", "100000"])
            .args(args)
            .env("RUST_LOG", "warn")
            .stderr(Stdio::piped());
        match secret {
            Some(secret) => cmd.env("HEARTH_TOKEN_SECRET", secret),
            None => cmd.env_remove("HEARTH_TOKEN_SECRET"),
        };
        let mut child = cmd.spawn().expect("start hearth-server");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, rx) = std::sync::mpsc::channel();
        // The banner line gives the address; keep draining so the pipe never fills.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("hearth-server listening on ") {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_string());
                }
            }
        });
        let url = rx.recv_timeout(WAIT).expect("server printed its address");
        ServerProcess { child, url }
    }

    pub fn kill_9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

impl Drop for ServerProcess {
    /// A failing test must not leave a server running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
