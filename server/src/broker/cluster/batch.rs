//! Orders go to one Redis in batches: a node keeps up to two batches of
//! order-script calls in flight, and the calls that arrive while both are
//! out go together as one pipeline when the first is answered. Redis then
//! reads, runs and answers a batch in one turn of its loop — one read, one
//! write of the replies, one write of the published events to each
//! subscribed node, one append to its file — where each call alone cost it
//! all of those (about 60 µs a message at 2,000 messages/s on the bench
//! machine, XADD + SPUBLISH alone). A quiet node sends each call at once, as
//! before: nothing waits for a batch to fill. Each call is still its own
//! script run, checked, idempotent and atomically sequenced; a batch only
//! shares the trip.
//!
//! A Redis Cluster's calls are not batched here (a batch would span slots on
//! several servers); its connection multiplexes them as before.

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use redis::{RedisResult, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::commands::{Commands, unavailable};
use crate::broker::BrokerError;

/// Calls sent in one pipeline, at most.
const MAX_BATCH: usize = 256;
/// Calls waiting for a batch, at most; a caller past it waits.
const QUEUE: usize = 8192;
/// Batches a node has sent and Redis has not yet answered, at most. Two, so
/// that Redis has the next batch in hand while the last one's answers travel
/// back to the node and the node forms its next: with one, a busy Redis went
/// to sleep for that trip 2–4× as often (BENCHMARKS, "One Redis core's
/// capacity").
const IN_FLIGHT: usize = 2;

struct Queued {
    call: redis::Cmd,
    answer: Answer,
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
    // A batch pushed here is polled before the next is formed (the select is
    // biased to it), and that first poll writes its pipeline to the
    // connection: batches reach Redis in the order they were formed.
    let mut in_flight = FuturesOrdered::new();
    let mut stopping = false;
    loop {
        tokio::select! {
            biased;
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            _ = stop.cancelled(), if !stopping => stopping = true,
            received = calls.recv_many(&mut batch, MAX_BATCH), if !stopping && in_flight.len() < IN_FLIGHT => {
                if received == 0 {
                    stopping = true;
                } else {
                    let (pipe, answers) = pipeline_of(&mut batch);
                    in_flight.push_back(run_batch(&commands, script, pipe, answers));
                }
            }
        }
        // A batch already sent is answered, as a call alone would be.
        if stopping && in_flight.is_empty() {
            return;
        }
    }
}

type Answer = oneshot::Sender<Result<Value, BrokerError>>;

/// The calls of `batch` as one pipeline, and who waits for each answer.
fn pipeline_of(batch: &mut Vec<Queued>) -> (redis::Pipeline, Vec<Answer>) {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    let answers = batch
        .drain(..)
        .map(|q| {
            pipe.add_command(q.call);
            q.answer
        })
        .collect();
    (pipe, answers)
}

/// Sends one batch and answers each of its callers.
async fn run_batch(commands: &Commands, script: &str, pipe: redis::Pipeline, answers: Vec<Answer>) {
    match send(commands, script, &pipe).await {
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
