//! Timeline events as WebSocket frames, encoded once. The MessagePack encoding made
//! when an event is ordered is also its stored row; a JSON frame is made the first
//! time a JSON connection needs it and shared after that. Cloning a frame is a
//! reference-count bump, so fan-out to a hundred members encodes nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use hearth_protocol::codec::encode_event;
use hearth_protocol::{Codec, Event, Role, Seq};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::room::messages::TextNow;
use crate::store::{StoreError, StoredEvent};

/// What a timeline event does with a message's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextRole {
    None,
    /// It is a message: it carries its own text.
    Posts,
    /// It edits that message: it carries a new text for it.
    Edits(Seq),
    /// It deletes that message.
    Deletes(Seq),
    /// It pins that message: its note carries the message's text.
    Pins(Seq),
    /// It reports that message: it carries the text as reported.
    Reports(Seq),
    /// It erases a member's messages (several: read from the event).
    Erases,
}

/// A timeline event's frames, encoded once per codec in use. This is what a room
/// keeps of its recent events: no decoded copy, which would be most of the size.
#[derive(Debug)]
pub struct Encoded {
    pub seq: Seq,
    /// The least role that receives it (`room::audience`).
    pub audience: Role,
    /// What it does with a message's text: how a replay finds text changed since.
    pub text: TextRole,
    msgpack: Bytes,
    json: OnceLock<Utf8Bytes>,
}

impl Encoded {
    /// The MessagePack encoding: the stored row and the binary frame.
    pub fn msgpack(&self) -> &Bytes {
        &self.msgpack
    }

    fn new(seq: Seq, event: &Event, msgpack: Bytes) -> Encoded {
        let text = match event {
            Event::Message(_) | Event::Held(_) => TextRole::Posts,
            Event::Edit(edit) => TextRole::Edits(edit.target),
            Event::Delete(delete) => TextRole::Deletes(delete.target),
            Event::Pin(pinned) => pinned.pin.seq.map_or(TextRole::None, TextRole::Pins),
            Event::Report(report) => TextRole::Reports(report.message),
            Event::Erased(_) => TextRole::Erases,
            _ => TextRole::None,
        };
        Encoded { seq, audience: crate::room::audience(event), text, msgpack, json: OnceLock::new() }
    }

    /// The message whose text this event carries, if it carries one.
    pub fn carries_text_of(&self) -> Option<Seq> {
        match self.text {
            TextRole::Posts => Some(self.seq),
            TextRole::Edits(message) | TextRole::Pins(message) | TextRole::Reports(message) => Some(message),
            TextRole::None | TextRole::Deletes(_) | TextRole::Erases => None,
        }
    }

    /// The decoded event (for the few frames that are made again).
    pub fn event(&self) -> Event {
        rmp_serde::from_slice::<Event>(&self.msgpack).expect("frames hold events this server encoded or checked")
    }

    /// The frame for `codec` of this event showing the text of the messages
    /// in `changed` as it is now (`TextNow::apply`): encoded for this one
    /// connection, since a replay across an edit or a deletion is rare.
    pub fn frame_now(&self, codec: Codec, changed: &BTreeMap<Seq, TextNow>) -> Message {
        let Some(now) = self.carries_text_of().and_then(|message| changed.get(&message)) else {
            return self.frame(codec, None);
        };
        let mut event = self.event();
        now.apply(&mut event);
        event_frame(codec, &event)
    }

    /// The WebSocket message for `codec`; a reference-count bump after the first.
    /// The first JSON frame is encoded from `event` when given, else decoded from
    /// the MessagePack bytes (a resume from the recent events).
    pub fn frame(&self, codec: Codec, event: Option<&Event>) -> Message {
        match codec {
            Codec::MsgPack => Message::Binary(self.msgpack.clone()),
            Codec::Json => Message::Text(
                self.json
                    .get_or_init(|| {
                        let decoded;
                        let event = match event {
                            Some(event) => event,
                            None => {
                                decoded = rmp_serde::from_slice::<Event>(&self.msgpack)
                                    .expect("frames hold events this server encoded or checked");
                                &decoded
                            }
                        };
                        let json = encode_event(Codec::Json, event);
                        Utf8Bytes::try_from(json).expect("serde_json writes UTF-8")
                    })
                    .clone(),
            ),
        }
    }
}

/// A committed timeline event on its way through delivery: the decoded event,
/// which the room applies, and its shared frames, which it fans out and keeps.
#[derive(Debug, Clone)]
pub struct Committed {
    pub event: Event,
    pub encoded: Arc<Encoded>,
}

impl Committed {
    /// Encodes a stamped timeline event.
    pub fn new(event: Event) -> Committed {
        let seq = event.seq().expect("timeline events carry a seq");
        let msgpack = Bytes::from(encode_event(Codec::MsgPack, &event));
        let encoded = Arc::new(Encoded::new(seq, &event, msgpack));
        Committed { event, encoded }
    }

    /// An event read back from the store (or, in cluster mode, from the broker).
    pub fn from_stored(stored: &StoredEvent) -> Result<Committed, StoreError> {
        let committed = Committed::decode(stored.body.clone())?;
        if committed.seq() != stored.seq {
            return Err(StoreError::Corrupt {
                what: "stored event",
                detail: format!("row {} holds event {}", stored.seq, committed.seq()),
            });
        }
        Ok(committed)
    }

    /// A timeline event's MessagePack bytes, decoded once; those bytes stay its
    /// frame.
    pub fn decode(msgpack: Bytes) -> Result<Committed, StoreError> {
        let event: Event = rmp_serde::from_slice(&msgpack)
            .map_err(|e| StoreError::Corrupt { what: "stored event", detail: e.to_string() })?;
        Committed::from_decoded(event, msgpack)
    }

    /// A timeline event already decoded from `msgpack`, its encoding.
    pub fn from_decoded(event: Event, msgpack: Bytes) -> Result<Committed, StoreError> {
        let seq = event
            .seq()
            .ok_or_else(|| StoreError::Corrupt { what: "stored event", detail: format!("{event:?} has no seq") })?;
        let encoded = Arc::new(Encoded::new(seq, &event, msgpack));
        Ok(Committed { event, encoded })
    }

    pub fn seq(&self) -> Seq {
        self.encoded.seq
    }

    /// The WebSocket message for `codec`.
    pub fn frame(&self, codec: Codec) -> Message {
        self.encoded.frame(codec, Some(&self.event))
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

/// Longest close reason the WebSocket protocol allows.
const MAX_CLOSE_REASON: usize = 123;

/// A close frame with `code` and as much of `reason` as fits.
pub fn close_message(code: hearth_protocol::CloseCode, reason: &str) -> Message {
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame { code: code.code().into(), reason: Utf8Bytes::from(&reason[..end]) }))
}
