//! Orders go to one Redis in batches: a node keeps one batch of order-script
//! calls in flight, and the calls that arrive meanwhile go out together as
//! one pipeline when it is answered. Redis then reads, runs and answers a
//! batch in one turn of its loop — one read, one write of the replies, one
//! write of the published events to each subscribed node, one append to its
//! file — where each call alone cost it all of those (about 60 µs a message
//! at 2,000 messages/s on the bench machine, XADD + SPUBLISH alone). A quiet
//! node sends each call at once, as before: nothing waits for a batch to
//! fill. Each call is still its own script run, checked, idempotent and
//! atomically sequenced; a batch only shares the trip.
//!
//! A Redis Cluster's calls are not batched here (a batch would span slots on
//! several servers); its connection multiplexes them as before.

use redis::{RedisResult, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::commands::{Commands, unavailable};
use crate::broker::BrokerError;

/// Calls sent in one pipeline, at most.
const MAX_BATCH: usize = 256;
/// Calls waiting for the batch in flight, at most; a caller past it waits.
const QUEUE: usize = 8192;

struct Queued {
    call: redis::Cmd,
    answer: oneshot::Sender<Result<Value, BrokerError>>,
}

/// Where a node's order-script calls wait for the next batch.
pub(super) struct Batcher {
    queue: mpsc::Sender<Queued>,
}

impl Batcher {
    /// Starts the task that sends batches over `commands`, until `stop`.
    pub(super) fn start(commands: Commands, script: &'static str, stop: CancellationToken) -> Batcher {
        let (queue, calls) = mpsc::channel(QUEUE);
        tokio::spawn(send_batches(commands, script, calls, stop));
        Batcher { queue }
    }

    /// Runs `call` (an `EVALSHA` of the script) in the next batch.
    pub(super) async fn call(&self, call: redis::Cmd) -> Result<Value, BrokerError> {
        let (answer, answered) = oneshot::channel();
        self.queue.send(Queued { call, answer }).await.map_err(|_| BrokerError::Stopping)?;
        answered.await.map_err(|_| BrokerError::Stopping)?
    }
}

async fn send_batches(
    commands: Commands,
    script: &'static str,
    mut calls: mpsc::Receiver<Queued>,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let received = tokio::select! {
            _ = stop.cancelled() => 0,
            received = calls.recv_many(&mut batch, MAX_BATCH) => received,
        };
        if received == 0 {
            return;
        }
        let (answers, pipe): (Vec<_>, redis::Pipeline) = {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            let answers = batch.drain(..).map(|q| {
                pipe.add_command(q.call);
                q.answer
            });
            (answers.collect(), pipe)
        };
        let replies = send(&commands, script, &pipe).await;
        match replies {
            Ok(replies) => {
                for (answer, reply) in answers.into_iter().zip(replies) {
                    let _ = answer.send(reply.map_err(unavailable));
                }
            }
            Err(error) => {
                // Unanswered or never sent, like each call alone would be.
                let error = unavailable(error);
                for answer in answers {
                    let _ = answer.send(Err(same(&error)));
                }
            }
        }
    }
}

/// Sends a batch; the calls Redis did not know the script for (it restarted,
/// or its scripts were flushed) go again as `EVAL`, which teaches it.
async fn send(commands: &Commands, script: &str, pipe: &redis::Pipeline) -> RedisResult<Vec<RedisResult<Value>>> {
    let mut replies: Vec<RedisResult<Value>> = commands.query_pipe(pipe).await?;
    let unknown: Vec<usize> = replies.iter().enumerate().filter(|(_, r)| unknown_script(r)).map(|(i, _)| i).collect();
    if unknown.is_empty() {
        return Ok(replies);
    }
    let mut again = redis::pipe();
    again.ignore_errors();
    let calls: Vec<&redis::Cmd> = pipe.cmd_iter().collect();
    for &i in &unknown {
        again.add_command(eval_of(calls[i], script));
    }
    let answered: Vec<RedisResult<Value>> = commands.query_pipe(&again).await?;
    for (i, reply) in unknown.into_iter().zip(answered) {
        replies[i] = reply;
    }
    Ok(replies)
}

/// Whether a reply says Redis does not know the script (`NOSCRIPT`).
pub(super) fn unknown_script<T>(reply: &RedisResult<T>) -> bool {
    matches!(reply, Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript))
}

/// `EVALSHA hash N ...` as `EVAL script N ...`.
pub(super) fn eval_of(call: &redis::Cmd, script: &str) -> redis::Cmd {
    let mut eval = redis::cmd("EVAL");
    eval.arg(script);
    for arg in call.args_iter().skip(2) {
        if let redis::Arg::Simple(bytes) = arg {
            eval.arg(bytes);
        }
    }
    eval
}

/// The same failure, for each caller of a batch.
fn same(error: &BrokerError) -> BrokerError {
    match error {
        BrokerError::Unanswered(why) => BrokerError::Unanswered(why.clone()),
        other => BrokerError::Unavailable(other.to_string()),
    }
}
