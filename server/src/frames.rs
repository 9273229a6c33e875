//! Timeline events as WebSocket frames, encoded once. The MessagePack encoding made
//! when an event is ordered is also its stored row; a JSON frame is made the first
//! time a JSON connection needs it and shared after that. Cloning a frame is a
//! reference-count bump, so fan-out to a hundred members encodes nothing.

use std::sync::OnceLock;

use bytes::Bytes;
use hearth_protocol::codec::encode_event;
use hearth_protocol::{Codec, Event, Seq};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::store::{StoreError, StoredEvent};

/// A timeline event, encoded once per codec in use.
#[derive(Debug)]
pub struct Encoded {
    pub seq: Seq,
    pub event: Event,
    msgpack: Bytes,
    json: OnceLock<Utf8Bytes>,
}

impl Encoded {
    /// Encodes a stamped timeline event.
    pub fn new(event: Event) -> Encoded {
        let seq = event.seq().expect("timeline events carry a seq");
        let msgpack = Bytes::from(encode_event(Codec::MsgPack, &event));
        Encoded { seq, event, msgpack, json: OnceLock::new() }
    }

    /// An event read back from the store (or, in cluster mode, from the broker).
    pub fn from_stored(stored: &StoredEvent) -> Result<Encoded, StoreError> {
        let event: Event = rmp_serde::from_slice(&stored.body)
            .map_err(|e| StoreError::Corrupt { what: "stored event", detail: e.to_string() })?;
        if event.seq() != Some(stored.seq) {
            return Err(StoreError::Corrupt {
                what: "stored event",
                detail: format!("row {} holds event {:?}", stored.seq, event.seq()),
            });
        }
        Ok(Encoded { seq: stored.seq, event, msgpack: stored.body.clone(), json: OnceLock::new() })
    }

    /// The MessagePack encoding: the stored row and the binary frame.
    pub fn msgpack(&self) -> &Bytes {
        &self.msgpack
    }

    /// The WebSocket message for `codec`; a reference-count bump after the first.
    pub fn frame(&self, codec: Codec) -> Message {
        match codec {
            Codec::MsgPack => Message::Binary(self.msgpack.clone()),
            Codec::Json => Message::Text(
                self.json
                    .get_or_init(|| {
                        let json = encode_event(Codec::Json, &self.event);
                        Utf8Bytes::try_from(json).expect("serde_json writes UTF-8")
                    })
                    .clone(),
            ),
        }
    }
}

/// Wraps encoded bytes in the frame type of `codec`.
pub fn frame_message(codec: Codec, bytes: Vec<u8>) -> Message {
    match codec {
        Codec::MsgPack => Message::Binary(Bytes::from(bytes)),
        Codec::Json => Message::Text(Utf8Bytes::try_from(bytes).expect("serde_json writes UTF-8")),
    }
}

/// An ephemeral event (no seq) as a frame for `codec`.
pub fn event_frame(codec: Codec, event: &Event) -> Message {
    frame_message(codec, encode_event(codec, event))
}
