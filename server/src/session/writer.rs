//! A connection's writer task: drains the outbound queue and writes every frame
//! queued since the last write in one flush, sending large messages as
//! fragments. It owns the socket's write half; it meets the reader only at the
//! `Outbound` queue.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use hearth_protocol::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

use super::Sink;
use crate::frames::close_message;
use crate::hub::ConnId;
use crate::outbound::{Outbound, Taken};

/// Runs a write, giving up after `limit`. The timer is armed only if the write
/// cannot finish at once: almost every write fits in the socket's buffer, and a
/// timer per write is measurable on the hot path. The write is borrowed, not
/// moved in, and the timed path is boxed: every idle connection's writer task
/// is sized by this future, which was 920 bytes around a 360-byte write.
async fn write_within<F: std::future::Future>(
    limit: Duration,
    mut write: std::pin::Pin<&mut F>,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(write.as_mut().poll(cx))).await;
    match first {
        std::task::Poll::Ready(done) => Ok(done),
        std::task::Poll::Pending => Box::pin(tokio::time::timeout(limit, write)).await,
    }
}

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

/// Drains the outbound queue: every frame queued since the last write goes out in
/// one flush. Ends after sending the close frame, or when the peer stops reading.
pub(super) async fn write_loop(mut sink: Sink, out: Arc<Outbound>, config: WriterConfig, conn: ConnId) {
    // Takes the queue's buffer (see `Outbound::take_queued`) and hands it back
    // once written, unless a burst grew it.
    let mut batch = VecDeque::new();
    loop {
        let mut close = out.next_batch(&mut batch).await;
        if !batch.is_empty() && !config.coalesce.is_zero() {
            // Let more frames join this write; a close found meanwhile waits its turn.
            // Boxed here and below: paths most connections never take should not
            // size every connection's writer.
            Box::pin(tokio::time::sleep(config.coalesce)).await;
            if let Taken::Closed(found) = out.take_queued(&mut batch) {
                close = Some(found);
            }
        }
        if !batch.is_empty() {
            let bytes: usize = batch.iter().map(Message::len).sum();
            let written = {
                let write = std::pin::pin!(async {
                    for message in batch.drain(..) {
                        feed_in_fragments(&mut sink, message).await?;
                    }
                    sink.flush().await
                });
                write_within(config.timeout, write).await
            };
            match written {
                Ok(Ok(())) => {
                    out.wrote(bytes);
                    crate::metrics::get().bytes_out.increment(bytes as u64);
                    let drained = std::mem::take(&mut batch);
                    // A burst grew it: let it go rather than keep its size.
                    if drained.capacity() <= BATCH_KEPT {
                        batch = out.give_back(drained);
                    }
                    continue;
                }
                // At the default level: a write that fails loses what was in it, and
                // an operator should be able to see that it happened.
                Ok(Err(error)) => tracing::info!(conn = conn.0, %error, bytes, "write failed; closing"),
                Err(_) => tracing::info!(conn = conn.0, bytes, "write timed out (the peer stopped reading); closing"),
            }
            out.close(CloseCode::GoingAway, "going_away: write failed");
            return;
        }
        if let Some(close) = close {
            if close.by_peer {
                // Flushes the close reply tungstenite queued when the client's arrived.
                let _ = Box::pin(tokio::time::timeout(config.timeout, sink.close())).await;
            } else {
                let send = tokio::time::timeout(config.timeout, sink.send(close_message(close.code, &close.reason)));
                let _ = Box::pin(send).await;
            }
            return;
        }
    }
}

/// Largest WebSocket frame the writer sends: a message larger than this (a
/// page of history, a long list) goes as a fragmented message of frames this
/// size. The socket library copies each frame into a buffer it never shrinks,
/// so a connection that once got a 1 MiB page whole would keep 1 MiB for the
/// rest of its life; in fragments it keeps about its write threshold (64 KiB,
/// `transport::websocket_config`) plus one fragment, and a peer that stops
/// reading holds the rest in the outbound queue, within its bound.
const FRAGMENT_BYTES: usize = 32 * 1024;

/// Feeds `message` to the socket, as one frame or, past [`FRAGMENT_BYTES`], as
/// consecutive fragments of it (RFC 6455, 5.4; every WebSocket client
/// reassembles them). Fragments are slices of the one encoded message.
async fn feed_in_fragments(sink: &mut Sink, message: Message) -> Result<(), tungstenite::Error> {
    use tungstenite::protocol::frame::Frame;
    use tungstenite::protocol::frame::coding::{Data, OpCode};
    if message.len() <= FRAGMENT_BYTES {
        return sink.feed(message).await;
    }
    let (payload, first): (bytes::Bytes, _) = match message {
        Message::Binary(bytes) => (bytes, Data::Binary),
        // A fragment may end inside a character: UTF-8 holds for the whole
        // message, which is what a client checks.
        Message::Text(text) => (text.into(), Data::Text),
        other => return sink.feed(other).await,
    };
    let mut opcode = OpCode::Data(first);
    let mut start = 0;
    while start < payload.len() {
        let end = (start + FRAGMENT_BYTES).min(payload.len());
        let frame = Frame::message(payload.slice(start..end), opcode, end == payload.len());
        sink.feed(Message::Frame(frame)).await?;
        opcode = OpCode::Data(Data::Continue);
        start = end;
    }
    Ok(())
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

    /// Every connection's writer waits in this future; see the transport's
    /// test of the connection's task for why it is bounded.
    #[tokio::test]
    async fn an_idle_writer_stays_small() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let (metered, _meter) = Metered::new(Io::Plain(stream), 1 << 20);
        let socket =
            WebSocketStream::from_raw_socket(metered, Role::Server, Some(crate::transport::websocket_config())).await;
        let (sink, _stream) = socket.split();
        let config = WriterConfig { timeout: Duration::from_secs(10), coalesce: Duration::ZERO };
        let writer = write_loop(sink, Arc::new(Outbound::new(1 << 20)), config, ConnId(1));
        let size = std::mem::size_of_val(&writer);
        assert!(size <= 1_024, "a writer's task holds {size} bytes (792 measured; 1,256 before)");
        drop((writer, client));
    }
}
