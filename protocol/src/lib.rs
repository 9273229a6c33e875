//! Hearth's v1 wire protocol: every frame a client and a server exchange, the two
//! codecs that carry them (MessagePack in binary frames, JSON in text frames), the
//! closed sets of error and close codes, and the limits every decoder enforces.
//!
//! This crate does no I/O and knows nothing of tokio or sockets: it turns bytes into
//! typed frames and back. Decoding is total — any byte string yields a frame or a
//! [`DecodeError`] — and the structural limits in [`limits`] are checked by a
//! non-recursive scan *before* serde allocates anything.

pub mod codec;
pub mod error;
pub mod event;
pub mod ids;
pub mod limits;
pub mod ops;
mod scan;

pub use codec::{Codec, RequestDecodeError, ServerFrame};
pub use error::{CloseCode, DecodeError, ErrorBody, ErrorCode};
pub use event::Event;
pub use ids::{
    ClientMsgId, Emoji, Epoch, Millis, Note, PinId, Position, RequestId, Role, RoomId, Seq, ShortText, Text, UserId,
};
pub use ops::{Op, Operation, Request};

/// The protocol version this crate speaks; it is part of both subprotocol names.
pub const PROTOCOL_VERSION: u32 = 1;
