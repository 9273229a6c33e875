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
//! The connection's writer frames what it sends straight into that buffer
//! ([`Gather`]); tungstenite writes only its own frames (pongs, the close).
//! tungstenite's write buffer never shrinks: an idle member kept the largest
//! frame it was ever sent (0.85 KB after joining a room of 50, a fragment of
//! 32 KiB after a page of history), and every frame was copied twice.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
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
    gathered: Option<Arc<Gather>>,
}

/// Past this many gathered bytes a write sends them before taking more: what
/// bounds a burst's memory (tungstenite's write threshold did before).
const GATHER_BYTES: usize = 64 * 1024;

/// A WebSocket's frames on their way to the socket, shared by the socket
/// (which sends them on a flush, and takes tungstenite's own frames) and the
/// connection's writer (which frames everything else into it, each frame
/// whole: a pong tungstenite writes meanwhile goes between two frames, as
/// control frames may).
#[derive(Debug, Default)]
pub struct Gather(Mutex<Gathered>);

#[derive(Debug, Default)]
struct Gathered {
    bytes: Vec<u8>,
    /// tungstenite wrote a close frame: nothing may follow it (RFC 6455, 5.5.1).
    closed: bool,
}

impl Gather {
    fn lock(&self) -> MutexGuard<'_, Gathered> {
        // Nothing panics while holding it; a poisoned buffer is still whole frames.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The buffer to frame data into, unless the close has been written.
    pub fn frames(&self) -> Option<Frames<'_>> {
        let gathered = self.lock();
        (!gathered.closed).then_some(Frames(gathered))
    }
}

/// The gathered frames, held for adding more (see [`Gather::frames`]).
pub struct Frames<'a>(MutexGuard<'a, Gathered>);

impl Frames<'_> {
    /// Whether the buffer should be sent before more is added.
    pub fn is_full(&self) -> bool {
        self.0.bytes.len() >= GATHER_BYTES
    }

    /// Adds one frame as a server sends it: unmasked, `opcode` with `fin`.
    pub fn push(&mut self, opcode: u8, fin: bool, payload: &[u8]) {
        let bytes = &mut self.0.bytes;
        bytes.reserve(10 + payload.len());
        bytes.push(if fin { 0x80 | opcode } else { opcode });
        match payload.len() {
            len @ 0..=125 => bytes.push(len as u8),
            len @ 126..=0xFFFF => {
                bytes.push(126);
                bytes.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                bytes.push(127);
                bytes.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        bytes.extend_from_slice(payload);
    }
}

/// Whether `frames`, whole frames as tungstenite writes them, hold a close.
fn holds_close(mut frames: &[u8]) -> bool {
    while let [first, second, rest @ ..] = frames {
        if first & 0x0F == 0x8 {
            return true;
        }
        let (len, rest) = match second & 0x7F {
            126 if rest.len() >= 2 => (u16::from_be_bytes([rest[0], rest[1]]) as usize, &rest[2..]),
            127 if rest.len() >= 8 => {
                let len = u64::from_be_bytes(rest[..8].try_into().expect("eight bytes"));
                (usize::try_from(len).unwrap_or(usize::MAX), &rest[8..])
            }
            126 | 127 => return false,
            len => (len as usize, rest),
        };
        let mask = if second & 0x80 != 0 { 4 } else { 0 };
        frames = rest.get(len.saturating_add(mask)..).unwrap_or(&[]);
    }
    false
}

impl Metered {
    pub fn new(inner: Io, limit: usize) -> (Metered, ReadMeter) {
        let meter = ReadMeter::default();
        (Metered { inner, meter: meter.clone(), limit, rewound: Bytes::new(), gathered: None }, meter)
    }

    /// From now on, writes gather in a buffer that a flush sends and then
    /// frees; a write that finds [`GATHER_BYTES`] gathered sends them first.
    /// For the WebSocket's life: tungstenite then writes each frame at once
    /// (`transport::websocket_config`), and one flush still sends a batch with
    /// one system call. The buffer is returned for the writer to frame into.
    pub fn gather_writes(&mut self) -> Arc<Gather> {
        self.gathered.get_or_insert_with(Default::default).clone()
    }

    /// Sends what was gathered; ready once all of it is with the socket.
    fn poll_send_gathered(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(gather) = self.gathered.as_ref() else { return Poll::Ready(Ok(())) };
        send_gathered(&mut self.inner, &mut gather.lock().bytes, cx)
    }

    /// Has `bytes`, read from the socket already, read again first.
    pub fn rewind(&mut self, bytes: Bytes) {
        self.rewound = bytes;
    }
}

/// Sends `gathered` to `socket`; ready once all of it is with the socket.
fn send_gathered(socket: &mut Io, gathered: &mut Vec<u8>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    let mut sent = 0;
    let result = loop {
        if sent == gathered.len() {
            break Poll::Ready(Ok(()));
        }
        match Pin::new(&mut *socket).poll_write(cx, &gathered[sent..]) {
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

impl Drop for Metered {
    fn drop(&mut self) {
        // tungstenite answers a closing handshake the client started by writing
        // its close frame and reporting the connection closed, with no flush
        // after: send what is gathered now. Without waiting: the socket closes
        // next, and its buffer has room for a close frame.
        if self.gathered.as_ref().is_some_and(|gather| !gather.lock().bytes.is_empty()) {
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
        let Some(gather) = this.gathered.as_ref() else { return Pin::new(&mut this.inner).poll_write(cx, data) };
        let mut gathered = gather.lock();
        if gathered.bytes.len() >= GATHER_BYTES {
            std::task::ready!(send_gathered(&mut this.inner, &mut gathered.bytes, cx))?;
        }
        // All or nothing, so what tungstenite writes here starts at a frame.
        if holds_close(data) {
            gathered.closed = true;
        }
        gathered.bytes.extend_from_slice(data);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(opcode: u8, len: usize) -> Vec<u8> {
        let gather = Gather::default();
        gather.frames().unwrap().push(opcode, true, &vec![b'x'; len]);
        std::mem::take(&mut gather.lock().bytes)
    }

    #[test]
    fn a_close_is_found_after_frames_of_every_header_length() {
        for len in [0, 125, 126, 65_535, 65_536] {
            let mut frames = framed(0xA, len.min(125));
            frames.extend(framed(0x2, len));
            assert!(!holds_close(&frames), "no close in a pong and {len} bytes");
            frames.extend(framed(0x8, 2));
            assert!(holds_close(&frames), "the close after {len} bytes");
        }
        assert!(!holds_close(&[0x82, 127, 0]), "a cut header is no close");
    }

    /// What tungstenite writes goes through the socket's `poll_write`: after a
    /// pong the writer may go on, after a close it may not.
    #[tokio::test]
    async fn nothing_is_framed_after_a_close_written_to_the_socket() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let (mut metered, _meter) = Metered::new(Io::Plain(stream), 1 << 20);
        let gather = metered.gather_writes();
        metered.write_all(&framed(0xA, 4)).await.unwrap();
        assert!(gather.frames().is_some(), "a pong closes nothing");
        metered.write_all(&framed(0x8, 2)).await.unwrap();
        assert!(gather.frames().is_none(), "nothing may follow the close");
        metered.flush().await.unwrap();
    }
}
