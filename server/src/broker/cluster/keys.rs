//! Where a room lives in Redis: its keys and channel, all under the room's
//! hash tag so one script touches one slot, on one Redis or a Redis Cluster.

use hearth_protocol::{RoomId, Seq};

use crate::room::RowTable;

/// A room's keys and channel, all in the room's hash slot.
pub(super) struct RoomKeys {
    pub(super) room: String,
    pub(super) members: String,
    pub(super) pins: String,
    pub(super) log: String,
    /// The client message ids of the even generations (see `order.lua`).
    pub(super) cmids: String,
    /// Those of the odd generations.
    pub(super) cmids_odd: String,
    /// The list of cmids earlier versions kept, deleted when the room first
    /// counts its cmids.
    pub(super) cmid_queue: String,
    pub(super) settings: String,
    pub(super) channel: String,
    pub(super) rows: String,
    pub(super) modlog: String,
    pub(super) last_post: String,
    /// The seqs of messages with annotations (sorted set, score = seq), so
    /// the annotations of messages trimmed from history can be found.
    pub(super) annotated: String,
}

/// How long a node's record of who is online in a room lasts unrefreshed.
pub(super) const PRESENCE_TTL_SECS: i64 = 30;

impl RoomKeys {
    pub(super) fn tag(&self) -> &str {
        self.room.strip_suffix(":room").unwrap_or(&self.room)
    }

    /// Who is online in the room on `node`: a set that expires.
    pub(super) fn presence(&self, node: &str) -> String {
        format!("{}:on:{node}", self.tag())
    }

    /// The nodes that recorded presence in the room.
    pub(super) fn presence_nodes(&self) -> String {
        format!("{}:onnodes", self.tag())
    }

    /// The annotations of message `seq`: `PREFIX:{room}:msg:SEQ`.
    pub(super) fn message(&self, seq: Seq) -> String {
        format!("{}:msg:{}", self.tag(), seq.0)
    }

    pub(super) fn new(prefix: &str, room: &RoomId) -> RoomKeys {
        let tag = format!("{prefix}:{{{room}}}");
        RoomKeys {
            room: format!("{tag}:room"),
            members: format!("{tag}:members"),
            pins: format!("{tag}:pins"),
            log: format!("{tag}:log"),
            cmids: format!("{tag}:cmids"),
            cmids_odd: format!("{tag}:cmids1"),
            cmid_queue: format!("{tag}:cmidq"),
            settings: format!("{tag}:settings"),
            channel: format!("{tag}:events"),
            rows: format!("{tag}:rows"),
            modlog: format!("{tag}:modlog"),
            last_post: format!("{tag}:lastpost"),
            annotated: format!("{tag}:annotated"),
        }
    }
}

/// The room a channel name carries events of.
pub(super) fn room_of_channel(prefix: &str, channel: &[u8]) -> Option<RoomId> {
    let name = std::str::from_utf8(channel).ok()?;
    let rest = name.strip_prefix(prefix)?.strip_prefix(":{")?;
    let room = rest.strip_suffix("}:events")?;
    RoomId::new(room).ok()
}

/// A row's field in the room's rows hash: `table\x1fkey`.
pub(super) fn row_field(table: RowTable, key: &str) -> String {
    format!("{}\u{1f}{key}", table.as_str())
}
