//! Limits of the v1 protocol. Decoders check the structural ones (bytes, depth, list
//! lengths, string lengths) before allocating; field limits are checked right after
//! decoding, so a frame that decodes is a frame that fits.

/// Largest frame a client may send. Requests are small; 16 KiB holds the longest text
/// with room to spare, and keeps a hostile peer from parking megabytes per connection.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// Largest frame a server sends (history pages, room lists). Clients size their
/// WebSocket limits to this.
pub const MAX_SERVER_FRAME_BYTES: usize = 1024 * 1024;
/// Deepest nesting of maps and arrays in a request. The deepest valid request
/// (`set_room` with its settings) needs 2.
pub const MAX_REQUEST_DEPTH: usize = 8;
/// Deepest nesting in a server frame (a reply holding a page of events holding a pin).
pub const MAX_SERVER_FRAME_DEPTH: usize = 16;
/// Longest array or map in a request.
pub const MAX_REQUEST_LIST_LEN: usize = 64;
/// Longest array or map in a server frame.
pub const MAX_SERVER_LIST_LEN: usize = 10_000;

/// Longest message text, in UTF-8 bytes (about 4,000 characters of Latin text).
pub const MAX_TEXT_BYTES: usize = 8 * 1024;
/// Longest topic, welcome message or moderation reason, in UTF-8 bytes.
pub const MAX_TOPIC_BYTES: usize = 512;
/// Longest pinned note, in UTF-8 bytes.
pub const MAX_NOTE_BYTES: usize = 4 * 1024;
/// Longest room name (`[a-z0-9_-]`, starting with a letter or digit).
pub const MAX_ROOM_NAME_BYTES: usize = 48;
/// Longest user name (`[A-Za-z0-9_.-]`).
pub const MAX_USER_NAME_BYTES: usize = 32;
/// Longest client message id (any printable ASCII).
pub const MAX_CLIENT_MSG_ID_BYTES: usize = 64;
/// Longest reaction (an emoji sequence or a `:shortcode:`).
pub const MAX_EMOJI_BYTES: usize = 32;

/// Default and largest member cap of a room.
pub const DEFAULT_ROOM_CAP: u32 = 100;
pub const MAX_ROOM_CAP: u32 = 1_000;

/// Default and largest page of history or thread events in one reply. 100 events of
/// the longest text stay under [`MAX_SERVER_FRAME_BYTES`].
pub const DEFAULT_PAGE_LIMIT: u16 = 50;
pub const MAX_PAGE_LIMIT: u16 = 100;

/// Default and largest page of `list_rooms`.
pub const DEFAULT_ROOM_PAGE: u16 = 100;
pub const MAX_ROOM_PAGE: u16 = 500;

/// Open reports one member may have in a room at once: more wait until the
/// room's moderators resolve some.
pub const MAX_OPEN_REPORTS_PER_MEMBER: usize = 5;
/// Open reports a room keeps at once.
pub const MAX_OPEN_REPORTS: usize = 100;
/// How long a warning counts, by default and at most (days; 0: until lifted).
pub const DEFAULT_WARN_EXPIRY_DAYS: u32 = 90;
pub const MAX_WARN_EXPIRY_DAYS: u32 = 3650;
/// Live warnings a member may have in a room; a room's escalation is at most this.
pub const MAX_LIVE_WARNINGS: usize = 20;
/// Rules a room's word filter holds, and the longest pattern of one.
pub const MAX_FILTERS: usize = 50;
pub const MAX_FILTER_PATTERN_BYTES: usize = 200;
