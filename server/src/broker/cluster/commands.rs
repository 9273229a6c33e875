//! The node's calls to Redis: one connection for commands (one Redis or a
//! Redis Cluster, multiplexed) behind a circuit breaker, and what a failed
//! call means for the client — never sent, or sent and unanswered.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::{FromRedisValue, RedisResult};

use crate::broker::BrokerError;

/// A connection for commands: one Redis or a cluster. Both multiplex, so a clone
/// per call shares one socket per Redis node. Every call passes the
/// [`Breaker`] first.
#[derive(Clone)]
pub(super) struct Commands {
    pub(super) conn: CommandConn,
    pub(super) breaker: Arc<Breaker>,
}

#[derive(Clone)]
pub(super) enum CommandConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Commands {
    pub(super) async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> RedisResult<T> {
        self.breaker.admit()?;
        let result = match &self.conn {
            CommandConn::Single(c) => cmd.query_async(&mut c.clone()).await,
            CommandConn::Cluster(c) => cmd.query_async(&mut c.clone()).await,
        };
        self.breaker.record(result)
    }

    pub(super) async fn query_pipe<T: FromRedisValue>(&self, pipe: &redis::Pipeline) -> RedisResult<T> {
        self.breaker.admit()?;
        let result = match &self.conn {
            CommandConn::Single(c) => pipe.query_async(&mut c.clone()).await,
            CommandConn::Cluster(c) => pipe.query_async(&mut c.clone()).await,
        };
        self.breaker.record(result)
    }

    /// Runs an `EVALSHA` of `script`, teaching Redis the script first if it
    /// does not know it.
    pub(super) async fn evalsha(&self, call: &redis::Cmd, script: &str) -> RedisResult<redis::Value> {
        let reply = self.query(call).await;
        if super::batch::unknown_script(&reply) {
            return self.query(&super::batch::eval_of(call, script)).await;
        }
        reply
    }

    pub(super) async fn invoke<T: FromRedisValue>(&self, call: &redis::ScriptInvocation<'_>) -> RedisResult<T> {
        self.breaker.admit()?;
        let result = match &self.conn {
            CommandConn::Single(c) => call.invoke_async(&mut c.clone()).await,
            CommandConn::Cluster(c) => call.invoke_async(&mut c.clone()).await,
        };
        self.breaker.record(result)
    }
}

/// How long calls are refused at once after Redis failed to answer, before one
/// is let through to try it again.
pub(super) const RETRY_REDIS_AFTER: Duration = Duration::from_millis(250);

/// What a refused call's error says, so the error can tell it was never sent.
pub(super) const NOT_SENT: &str = "not sent: Redis did not answer the last call; the node tries again every 250 ms";

/// A circuit breaker in front of Redis: once a call fails for want of an
/// answer (the connection broke, was refused, or timed out), the node knows
/// Redis is unreachable and refuses every call at once — the client is told
/// to retry — instead of queueing each behind the connection's reconnection
/// attempts and timeouts, one after another. Every [`RETRY_REDIS_AFTER`] one
/// call goes through as a trial; the first answer closes it again.
pub(super) struct Breaker {
    /// 0 while Redis answers; otherwise when (ms on `started`'s clock) the
    /// next trial call may go.
    open_until: std::sync::atomic::AtomicU64,
    started: std::time::Instant,
}

impl Breaker {
    pub(super) fn new() -> Breaker {
        Breaker { open_until: std::sync::atomic::AtomicU64::new(0), started: std::time::Instant::now() }
    }

    pub(super) fn now_ms(&self) -> u64 {
        // Never 0, which means closed.
        self.started.elapsed().as_millis() as u64 + 1
    }

    /// Lets a call through, or refuses it without sending anything.
    pub(super) fn admit(&self) -> RedisResult<()> {
        use std::sync::atomic::Ordering::Relaxed;
        let until = self.open_until.load(Relaxed);
        if until == 0 {
            return Ok(());
        }
        let now = self.now_ms();
        let next = now + RETRY_REDIS_AFTER.as_millis() as u64;
        // Past the wait, the first caller is the trial; the others wait for it.
        if now >= until && self.open_until.compare_exchange(until, next, Relaxed, Relaxed).is_ok() {
            return Ok(());
        }
        Err(redis::RedisError::from((redis::ErrorKind::Io, "Redis unreachable", NOT_SENT.to_string())))
    }

    /// Notes what a call's outcome says about Redis.
    pub(super) fn record<T>(&self, result: RedisResult<T>) -> RedisResult<T> {
        use std::sync::atomic::Ordering::Relaxed;
        match &result {
            Ok(_) => {
                if self.open_until.swap(0, Relaxed) != 0 {
                    tracing::info!("Redis answers again");
                    crate::metrics::get().redis_up.set(1.0);
                }
            }
            Err(error) if unanswered(error) => {
                let next = self.now_ms() + RETRY_REDIS_AFTER.as_millis() as u64;
                if self.open_until.swap(next, Relaxed) == 0 {
                    tracing::warn!(%error, "Redis is not answering; refusing calls at once until it does");
                    crate::metrics::get().redis_up.set(0.0);
                }
            }
            // Redis answered, with an error: it is there.
            Err(_) => {}
        }
        result
    }
}

/// Whether `error` means Redis gave no answer (rather than answering with an
/// error): a connection that broke, was refused or timed out.
pub(super) fn unanswered(error: &redis::RedisError) -> bool {
    error.is_timeout() || error.is_connection_dropped() || error.is_connection_refusal() || error.is_io_error()
}

/// Whether `error` is a call the breaker refused: never sent, so nothing of it
/// happened.
pub(super) fn never_sent(error: &redis::RedisError) -> bool {
    error.detail() == Some(NOT_SENT)
}

/// A failed call as the broker reports it: refused before it reached Redis
/// (nothing happened), or sent and never answered (it may have happened).
pub(super) fn unavailable(error: redis::RedisError) -> BrokerError {
    if never_sent(&error) || error.is_connection_refusal() {
        BrokerError::Unavailable(error.to_string())
    } else if unanswered(&error) {
        BrokerError::Unanswered(error.to_string())
    } else {
        BrokerError::Unavailable(error.to_string())
    }
}
