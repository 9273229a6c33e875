//! A connection's writer task: drains the outbound queue and writes every frame
//! queued since the last write in one flush, sending large messages as
//! fragments. It owns the socket's write half; it meets the reader only at the
//! `Outbound` queue (and at the socket, where tungstenite writes its pongs).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_util::Sink as _;
use hearth_protocol::CloseCode;
use tokio::time::Sleep;
use tokio_tungstenite::tungstenite::{self, Message};

use super::Sink;
use crate::frames::close_message;
use crate::hub::ConnId;
use crate::outbound::{Outbound, Taken};

/// The writer's timing knobs.
#[derive(Clone, Copy)]
pub(super) struct WriterConfig {
    timeout: Duration,
    coalesce: Duration,
}

impl From<&crate::Config> for WriterConfig {
    fn from(config: &crate::Config) -> Self {
        WriterConfig { timeout: config.write_timeout, coalesce: config.write_coalesce }
    }
}

/// Drains the outbound queue: every frame queued since the last write goes out
/// in one flush. Ends after sending the close frame, or when the peer stops
/// reading (a write that has not finished after `timeout`).
///
/// Written out as a state machine, not an `async fn`: every idle connection's
/// writer waits in it for hours, and the compiler's layout of the async
/// version kept room for each step's futures side by side (792 bytes; this is
/// a quarter of that, `tests::an_idle_writer_stays_small`).
pub(super) struct WriteLoop {
    sink: Sink,
    out: Arc<Outbound>,
    config: WriterConfig,
    conn: ConnId,
    /// Frames taken from the queue (see `Outbound::take_queued`), written
    /// front first; handed back once written, unless a burst grew it.
    batch: VecDeque<Message>,
    /// What the batch weighs, for the queue's bound (`Outbound::wrote`).
    bytes: usize,
    /// How much of the front message has gone out as fragments.
    fragmented: usize,
    step: Step,
    /// The coalescing pause, or the deadline of a write that could not finish
    /// at once. Boxed and made only when needed: almost every write fits in
    /// the socket's buffer, and a timer per write is measurable on the hot path.
    timer: Option<Pin<Box<Sleep>>>,
}

enum Step {
    /// Waiting for frames or a close.
    Waiting,
    /// Frames taken; letting more join this write (`write_coalesce`).
    Coalescing,
    /// Writing the batch and flushing it.
    Writing,
    /// Writing our close frame, the batch's only one, and flushing it.
    Closing,
    /// The client closed: tungstenite writes the reply it has queued, and the
    /// socket sends it when dropped (see `Metered`'s `Drop`).
    ClosingByPeer,
    Done,
}

pub(super) fn write_loop(sink: Sink, out: Arc<Outbound>, config: WriterConfig, conn: ConnId) -> WriteLoop {
    WriteLoop {
        sink,
        out,
        config,
        conn,
        batch: VecDeque::new(),
        bytes: 0,
        fragmented: 0,
        step: Step::Waiting,
        timer: None,
    }
}

impl Future for WriteLoop {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            match &mut this.step {
                Step::Waiting => match ready!(this.out.poll_take(cx, &mut this.batch)) {
                    Taken::Frames if !this.config.coalesce.is_zero() => {
                        this.timer = Some(Box::pin(tokio::time::sleep(this.config.coalesce)));
                        this.step = Step::Coalescing;
                    }
                    Taken::Frames => this.start_writing(),
                    Taken::Closed(close) => {
                        // Closed and drained: what was queued before the close is
                        // written, and the close goes last.
                        this.timer = Some(Box::pin(tokio::time::sleep(this.config.timeout)));
                        this.step = match close.by_peer {
                            true => Step::ClosingByPeer,
                            false => {
                                this.batch.push_back(close_message(close.code, &close.reason));
                                Step::Closing
                            }
                        };
                    }
                    Taken::Nothing => unreachable!("poll_take is pending when there is nothing"),
                },
                Step::Coalescing => {
                    if let Some(timer) = this.timer.as_mut() {
                        ready!(timer.as_mut().poll(cx));
                    }
                    this.timer = None;
                    // A close found here is found again once this batch is written.
                    let _ = this.out.take_queued(&mut this.batch);
                    this.start_writing();
                }
                Step::Writing => {
                    let written = match this.poll_write_batch(cx) {
                        Poll::Ready(written) => written.map_err(Some),
                        Poll::Pending => match this.poll_deadline(cx) {
                            Poll::Ready(()) => Err(None),
                            Poll::Pending => return Poll::Pending,
                        },
                    };
                    this.timer = None;
                    let bytes = this.bytes;
                    match written {
                        Ok(()) => {
                            this.out.wrote(bytes);
                            crate::metrics::get().bytes_out.increment(bytes as u64);
                            let drained = std::mem::take(&mut this.batch);
                            // A burst grew it: let it go rather than keep its size.
                            if drained.capacity() <= BATCH_KEPT {
                                this.batch = this.out.give_back(drained);
                            }
                            this.step = Step::Waiting;
                            continue;
                        }
                        // At the default level: a write that fails loses what was in
                        // it, and an operator should be able to see that it happened.
                        Err(Some(error)) => {
                            tracing::info!(conn = this.conn.0, %error, bytes, "write failed; closing")
                        }
                        Err(None) => {
                            tracing::info!(
                                conn = this.conn.0,
                                bytes,
                                "write timed out (the peer stopped reading); closing"
                            )
                        }
                    }
                    this.out.close(CloseCode::GoingAway, "going_away: write failed");
                    this.step = Step::Done;
                }
                // Either way the connection ends: once sent, failed, or timed out.
                Step::Closing => {
                    if this.poll_write_batch(cx).is_pending() && this.poll_deadline(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.step = Step::Done;
                }
                Step::ClosingByPeer => {
                    if Pin::new(&mut this.sink.socket).poll_close(cx).is_pending()
                        && this.poll_deadline(cx).is_pending()
                    {
                        return Poll::Pending;
                    }
                    this.step = Step::Done;
                }
                Step::Done => {
                    this.timer = None;
                    return Poll::Ready(());
                }
            }
        }
    }
}

impl WriteLoop {
    fn start_writing(&mut self) {
        self.bytes = self.batch.iter().map(Message::len).sum();
        self.step = Step::Writing;
    }

    /// Frames the batch into the socket's gathered frames, a large message as
    /// fragments, sending them whenever they fill up, and flushes them. The
    /// close goes through tungstenite, after everything before it.
    fn poll_write_batch(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), tungstenite::Error>> {
        loop {
            let full = {
                let Some(mut frames) = self.sink.gather.frames() else {
                    // The client closed, and tungstenite has answered.
                    return Poll::Ready(Err(tungstenite::Error::Protocol(
                        tungstenite::error::ProtocolError::SendAfterClosing,
                    )));
                };
                while !frames.is_full() {
                    let Some(message) = self.batch.front() else { break };
                    let Some((opcode, payload)) = frame_of(message) else { break };
                    // Past FRAGMENT_BYTES, a fragment at a time (RFC 6455, 5.4;
                    // every WebSocket client reassembles them): what is gathered
                    // stays bounded, and a pong may go between two of them.
                    let start = self.fragmented;
                    let end = (start + FRAGMENT_BYTES).min(payload.len());
                    let opcode = if start == 0 { opcode } else { CONTINUATION };
                    frames.push(opcode, end == payload.len(), &payload[start..end]);
                    if end == payload.len() {
                        self.fragmented = 0;
                        self.batch.pop_front();
                    } else {
                        self.fragmented = end;
                    }
                }
                frames.is_full()
            };
            if !full && !self.batch.is_empty() {
                // The close, written by tungstenite so that it knows the
                // connection is closing.
                ready!(Pin::new(&mut self.sink.socket).poll_ready(cx))?;
                let close = self.batch.pop_front().expect("the batch is not empty");
                Pin::new(&mut self.sink.socket).start_send(close)?;
            }
            ready!(Pin::new(&mut self.sink.socket).poll_flush(cx))?;
            if self.batch.is_empty() {
                return Poll::Ready(Ok(()));
            }
        }
    }

    /// Ready once a write or close that could not finish at once has taken
    /// `timeout`; the timer starts at its first wait.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let timeout = self.config.timeout;
        self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout))).as_mut().poll(cx)
    }
}

/// Largest WebSocket frame the writer sends: a message larger than this (a
/// page of history, a long list) goes as a fragmented message of frames this
/// size, and a peer that stops reading holds the rest in the outbound queue,
/// within its bound, not in the gathered frames.
const FRAGMENT_BYTES: usize = 32 * 1024;

const CONTINUATION: u8 = 0x0;

/// The opcode and payload `message` is framed with; `None` for what
/// tungstenite writes (the close).
fn frame_of(message: &Message) -> Option<(u8, &[u8])> {
    match message {
        Message::Text(text) => Some((0x1, text.as_bytes())),
        Message::Binary(bytes) => Some((0x2, bytes)),
        Message::Ping(bytes) => Some((0x9, bytes)),
        Message::Pong(bytes) => Some((0xA, bytes)),
        Message::Close(_) | Message::Frame(_) => None,
    }
}

/// Frames of room a writer's buffer keeps between writes: what one wake-up of a
/// busy room usually brings.
const BATCH_KEPT: usize = 4;

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;
    use tokio::net::{TcpListener, TcpStream};
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::protocol::Role;

    use super::*;
    use crate::metered::{Io, Metered};

    /// A server socket's halves and the client end of it, on loopback.
    async fn server_socket() -> (Sink, super::super::Stream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let (mut metered, _meter) = Metered::new(Io::Plain(stream), 1 << 20);
        let gather = metered.gather_writes();
        let socket =
            WebSocketStream::from_raw_socket(metered, Role::Server, Some(crate::transport::websocket_config())).await;
        let (socket, stream) = socket.split();
        (Sink { socket, gather }, stream, client)
    }

    /// The writer frames messages itself: every length a frame header has a
    /// form for, a message fragmented past `FRAGMENT_BYTES`, text and pings,
    /// all read back whole by another WebSocket implementation, the close last.
    #[tokio::test]
    async fn what_the_writer_frames_reads_back_whole_and_the_close_comes_last() {
        let out = Arc::new(Outbound::new(16 << 20));
        let (sink, _stream, client) = server_socket().await;
        let config = WriterConfig { timeout: Duration::from_secs(10), coalesce: Duration::ZERO };
        let writer = tokio::spawn(write_loop(sink, out.clone(), config, ConnId(1)));
        let mut client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        let sizes = [0, 1, 125, 126, 127, 65_535, 65_536, FRAGMENT_BYTES, FRAGMENT_BYTES + 1, 200_000];
        let mut sent = Vec::new();
        for (i, size) in sizes.into_iter().enumerate() {
            let bytes: Vec<u8> = (0..size).map(|b| (b * 7 + i) as u8).collect();
            sent.push(Message::Binary(bytes.into()));
            sent.push(Message::Text("é".repeat(size / 2).into()));
        }
        sent.push(Message::Ping(Default::default()));
        for message in &sent {
            out.push(message.clone()).unwrap();
        }
        out.close(CloseCode::GoingAway, "going_away: done");
        for expected in &sent {
            let got = tokio::time::timeout(Duration::from_secs(10), client.next()).await.unwrap().unwrap().unwrap();
            assert_eq!(&got, expected);
        }
        let close = tokio::time::timeout(Duration::from_secs(10), client.next()).await.unwrap().unwrap().unwrap();
        let Message::Close(Some(frame)) = close else { panic!("the close comes last, got {close:?}") };
        assert_eq!(u16::from(frame.code), CloseCode::GoingAway.code());
        tokio::time::timeout(Duration::from_secs(10), writer).await.unwrap().unwrap();
    }

    /// Every connection's writer waits in this future; see the transport's
    /// test of the connection's task for why it is bounded.
    #[tokio::test]
    async fn an_idle_writer_stays_small() {
        let (sink, _stream, client) = server_socket().await;
        let config = WriterConfig { timeout: Duration::from_secs(10), coalesce: Duration::ZERO };
        let writer = write_loop(sink, Arc::new(Outbound::new(1 << 20)), config, ConnId(1));
        let size = std::mem::size_of_val(&writer);
        assert!(
            size <= 208,
            "a writer's task holds {size} bytes (184 measured; 792 as an async fn, 1,256 before that)"
        );
        drop((writer, client));
    }
}
