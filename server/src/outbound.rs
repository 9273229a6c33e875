//! One connection's outbound queue: frames waiting for its writer task.
//!
//! Bounded in bytes, not frames, because one history page weighs as much as a
//! thousand small messages. Fan-out pushes without waiting; a push that would pass
//! the bound instead drops the backlog and marks the queue closed with
//! `slow_consumer`, so a stalled reader costs the room nothing and the client
//! recovers by resuming. The writer takes everything queued at once and flushes it
//! with one write; until the kernel has the bytes they still count against the
//! bound, so a connection that stops reading holds at most the bound, replies and
//! replayed history included.
//!
//! The queue's lock is a leaf (ARCHITECTURE.md, "Locks and their order"):
//! taken under a room's lock by fan-out, it never takes another.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use hearth_protocol::CloseCode;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

/// Why and how the writer should end the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    pub code: CloseCode,
    pub reason: String,
    /// The client started the closing handshake: the writer answers with the
    /// reply tungstenite has queued instead of a close frame of its own.
    pub by_peer: bool,
}

/// What [`Outbound::take_queued`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    Frames,
    Closed(Close),
    Nothing,
}

/// Why a burst was not queued.
#[derive(Debug)]
pub enum BurstError {
    /// It does not fit now; here are its frames back.
    TooBig(Vec<Message>),
    Closed,
}

#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    /// This push overflowed the queue; it is now closed with `slow_consumer`.
    Overflowed,
    /// The queue was already closed.
    Closed,
}

pub struct Outbound {
    /// std Mutex: held only to move frames in or out, never across an await.
    queue: Mutex<Queue>,
    /// Wakes the writer when frames arrive or the queue closes. The writer
    /// registers before it looks at the queue, so no wake-up is lost; a waker,
    /// not a `Notify`, because the writer is a hand-written future
    /// (`session::writer`) with no place to keep a `Notified` borrowing this.
    ready: AtomicWaker,
    /// Wakes a producer in `push_wait` when the writer has drained the queue.
    space: Notify,
    /// Wakes the session's reader when the queue closes.
    closed: Notify,
    max_bytes: usize,
}

struct Queue {
    frames: VecDeque<Message>,
    bytes: usize,
    close: Option<Close>,
    /// A producer found no room and waits on `space` (set under this lock
    /// after its `Notified` exists, so `wrote`'s wake-up cannot miss it). The
    /// writer wakes `space` only then: a wake-up takes `Notify`'s own lock
    /// and was 1.2% of the server's CPU at `steady`, paid after every write
    /// for waiters that almost never exist.
    space_wanted: bool,
}

fn frame_bytes(message: &Message) -> usize {
    message.len()
}

impl Outbound {
    pub fn new(max_bytes: usize) -> Outbound {
        Outbound {
            queue: Mutex::new(Queue { frames: VecDeque::new(), bytes: 0, close: None, space_wanted: false }),
            ready: AtomicWaker::new(),
            space: Notify::new(),
            closed: Notify::new(),
            max_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A panic while holding this lock leaves a queue of whole frames: still valid.
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a frame without waiting. Over the bound, closes with `slow_consumer`.
    pub fn push(&self, message: Message) -> Result<(), PushError> {
        let mut queue = self.lock();
        if queue.close.is_some() {
            return Err(PushError::Closed);
        }
        let bytes = frame_bytes(&message);
        if queue.bytes + bytes > self.max_bytes {
            queue.frames.clear();
            queue.bytes = 0;
            queue.close = Some(Close {
                by_peer: false,
                code: CloseCode::SlowConsumer,
                reason: format!("slow_consumer: more than {} bytes queued; reconnect and resume", self.max_bytes),
            });
            drop(queue);
            self.wake_all();
            crate::metrics::get().slow_consumer_closes.increment(1);
            return Err(PushError::Overflowed);
        }
        queue.bytes += bytes;
        queue.frames.push_back(message);
        drop(queue);
        self.ready.wake();
        Ok(())
    }

    /// Whether frames of `bytes` that the connection asked for may be queued now:
    /// they may fill half the bound, so live events always have the other half;
    /// a single frame larger than that goes when nothing else is waiting.
    fn fits_asked(&self, queued: usize, bytes: usize) -> bool {
        queued == 0 || queued + bytes <= self.max_bytes / 2
    }

    /// Queues a burst the connection asked for (its catch-up from a room's recent
    /// events) if it fits now, all or nothing, without waiting. Gives the frames
    /// back when they do not fit: the caller sends them with `push_wait` instead.
    pub fn try_push_burst(&self, messages: Vec<Message>) -> Result<(), BurstError> {
        let mut queue = self.lock();
        if queue.close.is_some() {
            return Err(BurstError::Closed);
        }
        let bytes: usize = messages.iter().map(frame_bytes).sum();
        // A burst of many frames must fit in half the bound even into an empty
        // queue (only a lone frame may be larger): otherwise a catch-up landing
        // just after the writer drained would fill the whole bound, and the next
        // live event would close the connection as a slow consumer.
        let fits = match messages.len() {
            0 => true,
            1 => self.fits_asked(queue.bytes, bytes),
            _ => queue.bytes + bytes <= self.max_bytes / 2,
        };
        if !fits {
            return Err(BurstError::TooBig(messages));
        }
        queue.bytes += bytes;
        queue.frames.extend(messages);
        drop(queue);
        self.ready.wake();
        Ok(())
    }

    /// Resolves once frames the connection asks for may be queued again (the queue
    /// is at most half full) or it is closed: a request is handled only then, so
    /// its reply is not built, and held, while the client is not reading.
    pub async fn wait_for_room(&self) {
        loop {
            let space = self.space.notified();
            {
                let mut queue = self.lock();
                if queue.close.is_some() || self.fits_asked(queue.bytes, 0) {
                    return;
                }
                queue.space_wanted = true;
            }
            space.await;
        }
    }

    /// Queues a frame the connection asked for (a reply, replayed history) once it
    /// fits in half the bound: backpressure for requests, never for fan-out.
    pub async fn push_wait(&self, message: Message) -> Result<(), PushError> {
        let bytes = frame_bytes(&message);
        loop {
            let space = self.space.notified();
            {
                let mut queue = self.lock();
                if queue.close.is_some() {
                    return Err(PushError::Closed);
                }
                if self.fits_asked(queue.bytes, bytes) {
                    queue.bytes += bytes;
                    queue.frames.push_back(message);
                    drop(queue);
                    self.ready.wake();
                    return Ok(());
                }
                queue.space_wanted = true;
            }
            space.await;
        }
    }

    /// Asks the writer to close the connection after sending what is queued. The
    /// first close wins.
    pub fn close(&self, code: CloseCode, reason: impl Into<String>) {
        let mut queue = self.lock();
        if queue.close.is_none() {
            queue.close = Some(Close { code, reason: reason.into(), by_peer: false });
        }
        drop(queue);
        self.wake_all();
    }

    /// The client sent a close frame: the writer sends what is queued, then
    /// completes the handshake with the client's code echoed.
    pub fn close_by_peer(&self) {
        let mut queue = self.lock();
        if queue.close.is_none() {
            queue.close = Some(Close { code: CloseCode::GoingAway, reason: String::new(), by_peer: true });
        }
        drop(queue);
        self.wake_all();
    }

    pub fn is_closed(&self) -> bool {
        self.lock().close.is_some()
    }

    /// Resolves once the queue is closed.
    pub async fn wait_closed(&self) {
        loop {
            let closed = self.closed.notified();
            if self.is_closed() {
                return;
            }
            closed.await;
        }
    }

    /// Writer side: moves every queued frame into `batch` (which must be empty),
    /// waiting while there are none. Returns the close request once the queue is
    /// closed and drained.
    #[cfg(test)]
    pub async fn next_batch(&self, batch: &mut VecDeque<Message>) -> Option<Close> {
        std::future::poll_fn(|cx| match self.poll_take(cx, batch) {
            Poll::Ready(Taken::Closed(close)) => Poll::Ready(Some(close)),
            Poll::Ready(_) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        })
        .await
    }

    /// Writer side: [`Outbound::take_queued`], or, when there is nothing to
    /// take, a wake-up of `cx` once there is.
    pub fn poll_take(&self, cx: &mut Context<'_>, batch: &mut VecDeque<Message>) -> Poll<Taken> {
        self.ready.register(cx.waker());
        match self.take_queued(batch) {
            Taken::Nothing => Poll::Pending,
            taken => Poll::Ready(taken),
        }
    }

    /// Writer side: `bytes` of frames taken with `take_queued` are written.
    pub fn wrote(&self, bytes: usize) {
        let mut queue = self.lock();
        queue.bytes = queue.bytes.saturating_sub(bytes);
        // Every waiter wakes and looks again; one that still finds no room
        // sets it anew. One that gave up leaves it set: one wake-up for nobody.
        let wanted = std::mem::take(&mut queue.space_wanted);
        drop(queue);
        if wanted {
            self.space.notify_waiters();
        }
    }

    /// Writer side: offers a drained batch's buffer back to the queue, so the next
    /// frames reuse it. If frames arrived meanwhile the queue has a buffer of its
    /// own, and the writer keeps this one for the next swap. Either way nothing is
    /// allocated under load, and an idle connection keeps one buffer, not two.
    pub fn give_back(&self, batch: VecDeque<Message>) -> VecDeque<Message> {
        let mut queue = self.lock();
        if queue.frames.capacity() == 0 && batch.is_empty() {
            queue.frames = batch;
            return VecDeque::new();
        }
        batch
    }

    /// Lets go of the queue's empty buffer, if it keeps one: a connection
    /// that has had nothing to send for a while should not hold room for a
    /// burst (`keepalive` asks, once a second; a busy connection makes it
    /// again at most that often).
    pub fn release_spare(&self) {
        let mut queue = self.lock();
        if queue.frames.is_empty() {
            queue.frames = VecDeque::new();
        }
    }

    /// Writer side, without waiting: moves every queued frame into `batch`. An
    /// empty batch trades places with the queue: frames are never copied, and the
    /// writer's spare buffer (if it kept one, see `give_back`) becomes the queue's.
    pub fn take_queued(&self, batch: &mut VecDeque<Message>) -> Taken {
        let mut queue = self.lock();
        if !queue.frames.is_empty() {
            if batch.is_empty() {
                std::mem::swap(batch, &mut queue.frames);
            } else {
                batch.extend(queue.frames.drain(..));
            }
            // The frames still count against the bound until `wrote` says the
            // kernel has them: a writer stuck on a full socket holds memory too.
            return Taken::Frames;
        }
        match &queue.close {
            Some(close) => Taken::Closed(close.clone()),
            None => Taken::Nothing,
        }
    }

    fn wake_all(&self) {
        self.ready.wake();
        self.space.notify_waiters();
        self.closed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize) -> Message {
        Message::Binary(vec![0u8; n].into())
    }

    #[tokio::test]
    async fn overflow_closes_with_slow_consumer_and_drops_backlog() {
        let out = Outbound::new(100);
        out.push(frame(60)).unwrap();
        assert_eq!(out.push(frame(60)), Err(PushError::Overflowed));
        assert_eq!(out.push(frame(1)), Err(PushError::Closed));
        let mut batch = VecDeque::new();
        let close = out.next_batch(&mut batch).await.unwrap();
        assert_eq!(close.code, CloseCode::SlowConsumer);
        assert!(batch.is_empty());
    }

    #[tokio::test]
    async fn writer_gets_everything_queued_in_one_batch() {
        let out = Outbound::new(1000);
        for _ in 0..5 {
            out.push(frame(10)).unwrap();
        }
        let mut batch = VecDeque::new();
        assert_eq!(out.next_batch(&mut batch).await, None);
        assert_eq!(batch.len(), 5);
        out.close(CloseCode::GoingAway, "bye");
        assert_eq!(out.next_batch(&mut batch).await.unwrap().code, CloseCode::GoingAway);
    }

    #[tokio::test]
    async fn an_idle_queue_lets_go_of_its_spare_buffer_and_a_full_one_keeps_it() {
        let out = Outbound::new(1000);
        out.push(frame(10)).unwrap();
        out.release_spare();
        assert!(out.lock().frames.capacity() > 0, "frames waiting keep their buffer");
        let mut batch = VecDeque::new();
        out.next_batch(&mut batch).await;
        batch.clear();
        assert!(out.give_back(batch).capacity() == 0, "the queue takes the drained buffer back");
        assert!(out.lock().frames.capacity() > 0);
        out.release_spare();
        assert_eq!(out.lock().frames.capacity(), 0, "idle: no buffer kept");
        out.push(frame(10)).unwrap();
    }

    #[tokio::test]
    async fn push_wait_resumes_when_the_writer_has_written() {
        let out = std::sync::Arc::new(Outbound::new(100));
        out.push(frame(90)).unwrap();
        let producer = {
            let out = out.clone();
            tokio::spawn(async move { out.push_wait(frame(10)).await })
        };
        let mut batch = VecDeque::new();
        out.next_batch(&mut batch).await;
        // Taken is not written: the 90 bytes still count until the kernel has them.
        tokio::task::yield_now().await;
        assert!(!producer.is_finished());
        batch.clear();
        out.wrote(90);
        tokio::time::timeout(std::time::Duration::from_secs(5), producer).await.unwrap().unwrap().unwrap();
        out.next_batch(&mut batch).await;
        assert_eq!(batch.len(), 1);
    }

    #[tokio::test]
    async fn a_producer_that_still_finds_no_room_is_woken_by_the_next_write() {
        let out = std::sync::Arc::new(Outbound::new(100));
        out.push(frame(90)).unwrap();
        let producer = |n| {
            let out = out.clone();
            tokio::spawn(async move { out.push_wait(frame(n)).await })
        };
        let (first, second) = (producer(10), producer(10));
        let gave_up = {
            let out = out.clone();
            tokio::spawn(async move { out.wait_for_room().await })
        };
        tokio::task::yield_now().await;
        gave_up.abort();
        let mut batch = VecDeque::new();
        out.next_batch(&mut batch).await;
        batch.clear();
        // 40 bytes left: room for one more 10-byte frame within half the bound, not two.
        out.wrote(50);
        let bound = std::time::Duration::from_secs(5);
        tokio::time::timeout(bound, async {
            while !(first.is_finished() || second.is_finished()) {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("one producer fits after the write");
        assert!(!(first.is_finished() && second.is_finished()), "only one fits");
        out.next_batch(&mut batch).await;
        batch.clear();
        out.wrote(50);
        tokio::time::timeout(bound, first).await.unwrap().unwrap().unwrap();
        tokio::time::timeout(bound, second).await.unwrap().unwrap().unwrap();
    }

    #[test]
    fn frames_asked_for_fill_half_the_bound_and_a_burst_is_all_or_nothing() {
        let out = Outbound::new(100);
        out.try_push_burst(vec![frame(20), frame(20)]).unwrap();
        match out.try_push_burst(vec![frame(20)]) {
            Err(BurstError::TooBig(back)) => assert_eq!(back.len(), 1),
            other => panic!("expected the burst back, got {other:?}"),
        }
        // Fan-out still has the other half.
        out.push(frame(50)).unwrap();
        // Unread bytes (taken or not) are what a reader that stopped costs: at most the bound.
        assert_eq!(out.push(frame(20)), Err(PushError::Overflowed));
    }

    #[test]
    fn a_burst_past_half_the_bound_is_refused_even_by_an_empty_queue() {
        let out = Outbound::new(100);
        match out.try_push_burst(vec![frame(30), frame(30)]) {
            Err(BurstError::TooBig(back)) => assert_eq!(back.len(), 2),
            other => panic!("expected the burst back, got {other:?}"),
        }
        // A lone frame larger than half still goes when nothing else waits.
        out.try_push_burst(vec![frame(70)]).unwrap();
    }
}
