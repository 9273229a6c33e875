//! A socket that counts the bytes a client sends between complete messages.
//! tungstenite assembles fragments and answers control frames inside one read,
//! so a flood of empty continuation frames never reaches the session as a
//! message: without a count, a client could keep a core busy forever while
//! sending nothing. Past the limit the read fails, and the session closes the
//! connection with `rate_limited`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The error a read returns once the limit is passed.
pub const FLOOD: &str = "too many bytes without a complete message";

/// How many bytes were read since the session last saw a message.
#[derive(Debug, Clone, Default)]
pub struct ReadMeter(Arc<AtomicUsize>);

impl ReadMeter {
    /// The session saw a complete message: start counting again.
    pub fn message_seen(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

/// A TCP stream whose reads are counted against `limit`.
#[derive(Debug)]
pub struct Metered {
    inner: TcpStream,
    meter: ReadMeter,
    limit: usize,
}

impl Metered {
    pub fn new(inner: TcpStream, limit: usize) -> (Metered, ReadMeter) {
        let meter = ReadMeter::default();
        (Metered { inner, meter: meter.clone(), limit }, meter)
    }
}

/// Whether a read failed because of the meter.
pub fn is_flood(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::Other && error.to_string() == FLOOD
}

impl AsyncRead for Metered {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.meter.0.load(Ordering::Relaxed) > self.limit {
            return Poll::Ready(Err(io::Error::other(FLOOD)));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let read = buf.filled().len() - before;
            self.meter.0.fetch_add(read, Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Metered {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
