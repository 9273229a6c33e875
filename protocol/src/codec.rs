//! The two codecs over one schema, and the frame-level encode/decode functions.
//!
//! `hearth.v1.msgpack` carries MessagePack maps with named fields in binary frames;
//! `hearth.v1.json` carries the same maps as JSON in text frames. Every decode runs
//! the structural scan in [`crate::scan`] first.

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{DecodeError, ErrorBody, ErrorCode};
use crate::event::Event;
use crate::ids::RequestId;
use crate::limits;
use crate::ops::{Op, Operation, Request};
use crate::scan::{ScanLimits, scan_json, scan_msgpack};

const REQUEST_LIMITS: ScanLimits = ScanLimits {
    max_bytes: limits::MAX_REQUEST_BYTES,
    max_depth: limits::MAX_REQUEST_DEPTH,
    max_list_len: limits::MAX_REQUEST_LIST_LEN,
};

const SERVER_FRAME_LIMITS: ScanLimits = ScanLimits {
    max_bytes: limits::MAX_SERVER_FRAME_BYTES,
    max_depth: limits::MAX_SERVER_FRAME_DEPTH,
    max_list_len: limits::MAX_SERVER_LIST_LEN,
};

/// A connection's encoding, chosen once by WebSocket subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Codec {
    /// MessagePack with named fields, in binary frames. The default.
    #[default]
    MsgPack,
    /// JSON, in text frames.
    Json,
}

/// The client offered subprotocols, none of them Hearth's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("none of the offered subprotocols ({offered}) is supported; offer hearth.v1.msgpack or hearth.v1.json")]
pub struct NoCommonSubprotocol {
    pub offered: String,
}

impl Codec {
    pub const MSGPACK_SUBPROTOCOL: &'static str = "hearth.v1.msgpack";
    pub const JSON_SUBPROTOCOL: &'static str = "hearth.v1.json";

    pub fn subprotocol(self) -> &'static str {
        match self {
            Codec::MsgPack => Self::MSGPACK_SUBPROTOCOL,
            Codec::Json => Self::JSON_SUBPROTOCOL,
        }
    }

    pub fn from_subprotocol(name: &str) -> Option<Codec> {
        match name.trim() {
            Self::MSGPACK_SUBPROTOCOL => Some(Codec::MsgPack),
            Self::JSON_SUBPROTOCOL => Some(Codec::Json),
            _ => None,
        }
    }

    /// Picks the codec from the values of `Sec-WebSocket-Protocol` headers (each a
    /// comma-separated list), honouring the client's order. Returns the codec and
    /// whether the server must echo the subprotocol (only when one was offered).
    pub fn negotiate<'a>(offers: impl IntoIterator<Item = &'a str>) -> Result<(Codec, bool), NoCommonSubprotocol> {
        let offered: Vec<&str> = offers.into_iter().flat_map(|h| h.split(',')).map(str::trim).collect();
        if offered.iter().all(|o| o.is_empty()) {
            return Ok((Codec::MsgPack, false));
        }
        offered
            .iter()
            .find_map(|o| Codec::from_subprotocol(o))
            .map(|codec| (codec, true))
            .ok_or_else(|| NoCommonSubprotocol { offered: offered.join(", ") })
    }

    /// Whether this codec's frames are binary (else text) WebSocket messages.
    pub fn is_binary(self) -> bool {
        self == Codec::MsgPack
    }

    /// Serialises any protocol value (no envelope).
    pub fn encode_value<T: Serialize + ?Sized>(self, value: &T) -> Vec<u8> {
        match self {
            // Both serialisers write into a Vec, which cannot fail, and every type in
            // this crate has string keys and no non-finite floats, so encoding is total.
            Codec::MsgPack => rmp_serde::to_vec_named(value).expect("protocol values always encode"),
            Codec::Json => serde_json::to_vec(value).expect("protocol values always encode"),
        }
    }

    /// Deserialises a value from bytes that already passed the structural scan.
    pub(crate) fn decode_value<T: DeserializeOwned>(self, frame: &[u8]) -> Result<T, DecodeError> {
        match self {
            Codec::MsgPack => rmp_serde::from_slice(frame).map_err(|e| DecodeError::Malformed(e.to_string())),
            Codec::Json => serde_json::from_slice(frame).map_err(|e| DecodeError::Malformed(e.to_string())),
        }
    }

    fn scan(self, frame: &[u8], limits: ScanLimits) -> Result<(), DecodeError> {
        match self {
            Codec::MsgPack => scan_msgpack(frame, limits),
            Codec::Json => scan_json(frame, limits),
        }
    }
}

/// A request frame that could not be decoded. When `id` is known the server answers
/// with an error reply; when it is not, the frame was not a request at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct RequestDecodeError {
    pub id: Option<RequestId>,
    pub error: DecodeError,
}

impl RequestDecodeError {
    /// The error code to reply with when the request's id is known.
    pub fn code(&self) -> ErrorCode {
        match self.error {
            DecodeError::UnknownOp(_) => ErrorCode::UnknownOp,
            _ => ErrorCode::BadRequest,
        }
    }
}

#[derive(Deserialize)]
struct RequestHead<'a> {
    #[serde(default)]
    id: Option<RequestId>,
    #[serde(default, borrow)]
    op: Option<OpField<'a>>,
}

/// The `op` of a request: a name, or anything else — which is still a request
/// with an id, answered with an error reply rather than a close.
#[derive(Deserialize)]
#[serde(untagged)]
enum OpField<'a> {
    Name(#[serde(borrow)] Cow<'a, str>),
    NotAName(serde::de::IgnoredAny),
}

/// Decodes one request frame: scan, read `id` and `op`, then the op's arguments.
pub fn decode_request(codec: Codec, frame: &[u8]) -> Result<Request, RequestDecodeError> {
    let no_id = |error| RequestDecodeError { id: None, error };
    codec.scan(frame, REQUEST_LIMITS).map_err(no_id)?;
    // serde reads a struct from an array too (fields by position); a request is a
    // map, so anything else is not a request at all.
    if !is_map(codec, frame) {
        return Err(no_id(DecodeError::Malformed("a request is a map (a JSON object)".into())));
    }
    let head: RequestHead<'_> = match codec {
        Codec::MsgPack => rmp_serde::from_slice(frame).map_err(|e| DecodeError::Malformed(e.to_string())),
        Codec::Json => serde_json::from_slice(frame).map_err(|e| DecodeError::Malformed(e.to_string())),
    }
    .map_err(no_id)?;
    let Some(id) = head.id else {
        return Err(no_id(DecodeError::Malformed("a request needs a numeric \"id\"".into())));
    };
    let with_id = |error| RequestDecodeError { id: Some(id), error };
    let name = match head.op {
        Some(OpField::Name(name)) => name,
        Some(OpField::NotAName(_)) => {
            return Err(with_id(DecodeError::Invalid("\"op\" must be a string naming an operation".into())));
        }
        None => return Err(with_id(DecodeError::Invalid("a request needs an \"op\"".into()))),
    };
    let op = Op::decode_args(codec, &name, frame).map_err(|e| match e {
        DecodeError::Malformed(msg) => with_id(DecodeError::Invalid(format!("{name}: {msg}"))),
        other => with_id(other),
    })?;
    Ok(Request { id, op })
}

/// Whether the frame's top-level value is a map.
fn is_map(codec: Codec, frame: &[u8]) -> bool {
    match codec {
        Codec::MsgPack => matches!(frame.first(), Some(0x80..=0x8f | 0xde | 0xdf)),
        Codec::Json => frame.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{'),
    }
}

/// Encodes a request frame: `{"id": .., "op": .., ...args}`.
pub fn encode_request<O: Operation>(codec: Codec, id: RequestId, args: &O) -> Vec<u8> {
    let body = codec.encode_value(args);
    match codec {
        Codec::MsgPack => {
            // Splice `id` and `op` in front of the argument map's entries, so the frame
            // stays one flat map without serde's buffering `flatten`.
            let (entries, header_len) = match body[0] {
                m @ 0x80..=0x8f => (u32::from(m & 0x0f), 1),
                0xde => (u32::from(u16::from_be_bytes([body[1], body[2]])), 3),
                0xdf => (u32::from_be_bytes([body[1], body[2], body[3], body[4]]), 5),
                other => unreachable!("argument structs encode as maps, got marker {other:#x}"),
            };
            let mut out = Vec::with_capacity(body.len() + 16 + O::NAME.len());
            // Writes into a Vec cannot fail.
            let _ = rmp::encode::write_map_len(&mut out, entries + 2);
            let _ = rmp::encode::write_str(&mut out, "id");
            let _ = rmp::encode::write_uint(&mut out, id.0);
            let _ = rmp::encode::write_str(&mut out, "op");
            let _ = rmp::encode::write_str(&mut out, O::NAME);
            out.extend_from_slice(&body[header_len..]);
            out
        }
        Codec::Json => {
            let mut out = format!("{{\"id\":{},\"op\":\"{}\"", id.0, O::NAME).into_bytes();
            if body.len() > 2 {
                out.push(b',');
            }
            out.extend_from_slice(&body[1..]);
            out
        }
    }
}

#[derive(Serialize)]
struct OkFrame<'a, T> {
    id: RequestId,
    ok: &'a T,
}

#[derive(Serialize)]
struct ErrFrame<'a> {
    id: RequestId,
    err: &'a ErrorBody,
}

/// Encodes a successful reply: `{"id": 7, "ok": {...}}`.
pub fn encode_reply<T: Serialize>(codec: Codec, id: RequestId, ok: &T) -> Vec<u8> {
    codec.encode_value(&OkFrame { id, ok })
}

/// Encodes an error reply: `{"id": 7, "err": {"code": ..., "message": ...}}`.
pub fn encode_error(codec: Codec, id: RequestId, err: &ErrorBody) -> Vec<u8> {
    codec.encode_value(&ErrFrame { id, err })
}

/// Encodes an event: `{"ev": "message", ...}`.
pub fn encode_event(codec: Codec, event: &Event) -> Vec<u8> {
    codec.encode_value(event)
}

/// A frame from the server, as a client first sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerFrame {
    /// The reply to request `id`; decode it with [`decode_reply`] and the op's type.
    Reply { id: RequestId },
    /// Boxed: an event is large next to a reply's id.
    Event(Box<Event>),
}

#[derive(Deserialize)]
struct ServerHead {
    #[serde(default)]
    id: Option<RequestId>,
}

/// Decodes a server frame far enough to route it: a reply's id, or the whole event.
pub fn decode_server_frame(codec: Codec, frame: &[u8]) -> Result<ServerFrame, DecodeError> {
    codec.scan(frame, SERVER_FRAME_LIMITS)?;
    let head: ServerHead = codec.decode_value(frame)?;
    match head.id {
        Some(id) => Ok(ServerFrame::Reply { id }),
        None => codec.decode_value(frame).map(|event| ServerFrame::Event(Box::new(event))),
    }
}

#[derive(Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
struct ReplyFrame<T> {
    #[serde(default = "none")]
    ok: Option<T>,
    #[serde(default)]
    err: Option<ErrorBody>,
}

fn none<T>() -> Option<T> {
    None
}

/// Decodes a reply frame to operation `O`: its result, or the server's error.
pub fn decode_reply<O: Operation>(codec: Codec, frame: &[u8]) -> Result<Result<O::Reply, ErrorBody>, DecodeError> {
    codec.scan(frame, SERVER_FRAME_LIMITS)?;
    let reply: ReplyFrame<O::Reply> = codec.decode_value(frame)?;
    match (reply.ok, reply.err) {
        (_, Some(err)) => Ok(Err(err)),
        (Some(ok), None) => Ok(Ok(ok)),
        (None, None) => Err(DecodeError::Malformed("a reply needs \"ok\" or \"err\"".into())),
    }
}
