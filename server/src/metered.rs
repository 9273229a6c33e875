//! A connection's socket, with two jobs tungstenite's own does not do.
//!
//! It counts the bytes a client sends between complete messages. tungstenite
//! assembles fragments and answers control frames inside one read, so a flood
//! of empty continuation frames never reaches the session as a message:
//! without a count, a client could keep a core busy forever while sending
//! nothing. Past the limit the read fails, and the session closes the
//! connection with `rate_limited`.
//!
//! Once the connection is a WebSocket, it gathers the frames of one write and
//! gives their buffer back when they are sent ([`Metered::gather_writes`]).
//! tungstenite's own write buffer never shrinks: an idle member kept the
//! largest burst it was ever sent (0.9 KB after joining a room of 50; a page
//! of history's 64 KiB). tungstenite now hands each frame over at once, so
//! its buffer holds one frame at most.

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
    /// Frames written but not yet sent; `None` until [`Metered::gather_writes`]
    /// (writes then go straight to the socket, as hyper expects).
    gathered: Option<Vec<u8>>,
}

/// Past this many gathered bytes a write sends them before taking more: what
/// bounds a burst's memory (tungstenite's write threshold did before).
const GATHER_BYTES: usize = 64 * 1024;

impl Metered {
    pub fn new(inner: Io, limit: usize) -> (Metered, ReadMeter) {
        let meter = ReadMeter::default();
        (Metered { inner, meter: meter.clone(), limit, rewound: Bytes::new(), gathered: None }, meter)
    }

    /// From now on, writes gather in a buffer that a flush sends and then
    /// frees; a write that finds [`GATHER_BYTES`] gathered sends them first.
    /// For the WebSocket's life: tungstenite then writes each frame at once
    /// (`transport::websocket_config`), and one flush still sends a batch with
    /// one system call.
    pub fn gather_writes(&mut self) {
        self.gathered.get_or_insert_with(Vec::new);
    }

    /// Sends what was gathered; ready once all of it is with the socket.
    fn poll_send_gathered(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(gathered) = self.gathered.as_mut() else { return Poll::Ready(Ok(())) };
        let mut sent = 0;
        let result = loop {
            if sent == gathered.len() {
                break Poll::Ready(Ok(()));
            }
            match Pin::new(&mut self.inner).poll_write(cx, &gathered[sent..]) {
                Poll::Ready(Ok(0)) => break Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => sent += n,
                Poll::Ready(Err(error)) => break Poll::Ready(Err(error)),
                Poll::Pending => break Poll::Pending,
            }
        };
        if sent == gathered.len() {
            // Given back, not kept: an idle connection holds no buffer.
            *gathered = Vec::new();
        } else {
            gathered.drain(..sent);
        }
        result
    }

    /// Has `bytes`, read from the socket already, read again first.
    pub fn rewind(&mut self, bytes: Bytes) {
        self.rewound = bytes;
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        // tungstenite answers a closing handshake the client started by writing
        // its close frame and reporting the connection closed, with no flush
        // after: send what is gathered now. Without waiting: the socket closes
        // next, and its buffer has room for a close frame.
        if self.gathered.as_ref().is_some_and(|gathered| !gathered.is_empty()) {
            let mut cx = Context::from_waker(std::task::Waker::noop());
            if let Poll::Ready(Ok(())) = self.poll_send_gathered(&mut cx) {
                let _ = Pin::new(&mut self.inner).poll_flush(&mut cx);
            }
        }
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
        let this = &mut *self;
        let Some(gathered) = this.gathered.as_ref() else { return Pin::new(&mut this.inner).poll_write(cx, data) };
        if gathered.len() >= GATHER_BYTES {
            std::task::ready!(this.poll_send_gathered(cx))?;
        }
        this.gathered.get_or_insert_with(Vec::new).extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_send_gathered(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_send_gathered(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.gathered.is_some() {
            let first = bufs.iter().find(|buf| !buf.is_empty()).map_or(&[][..], |buf| &buf[..]);
            return self.poll_write(cx, first);
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.gathered.is_none() && self.inner.is_write_vectored()
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
