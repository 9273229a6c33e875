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

use bytes::Bytes;
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

/// A connection's socket whose reads are counted against `limit`.
#[derive(Debug)]
pub struct Metered {
    inner: Io,
    meter: ReadMeter,
    limit: usize,
    /// Bytes read from the socket before it changed hands (what a client
    /// sent after its upgrade request, read by the HTTP server along with
    /// it): read again first. Empty almost always.
    rewound: Bytes,
}

impl Metered {
    pub fn new(inner: Io, limit: usize) -> (Metered, ReadMeter) {
        let meter = ReadMeter::default();
        (Metered { inner, meter: meter.clone(), limit, rewound: Bytes::new() }, meter)
    }

    /// Has `bytes`, read from the socket already, read again first.
    pub fn rewind(&mut self, bytes: Bytes) {
        self.rewound = bytes;
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
        if !self.rewound.is_empty() {
            let n = self.rewound.len().min(buf.remaining());
            let again = self.rewound.split_to(n);
            buf.put_slice(&again);
            return Poll::Ready(Ok(()));
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

/// The socket under a connection: plain TCP, or TLS over it.
pub enum Io {
    Plain(TcpStream),
    /// Boxed: TLS state is large, and most deployments terminate TLS elsewhere.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl std::fmt::Debug for Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Io::Plain(_) => "Io::Plain",
            Io::Tls(_) => "Io::Tls",
        })
    }
}

impl AsyncRead for Io {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, data),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(_) => false,
        }
    }
}
