//! What the UI asks of the network task ([`Action`]), and what the network
//! task tells the UI ([`Net`], [`Connection`]).

use std::time::Duration;

use hearth_protocol::ops::{HistoryPage, Joined, MemberInfo, RoomSummary};
use hearth_protocol::{Event, PinId, RoomId, Seq, UserId};

/// What the member asked for, for the network task to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start receiving a room (becoming a member if not one), then show its
    /// newest page of history.
    Join(RoomId),
    /// Join with an invite code, then as [`Action::Join`].
    JoinInvited {
        room: RoomId,
        code: String,
    },
    Leave(RoomId),
    Send {
        room: RoomId,
        text: String,
        thread: Option<Seq>,
    },
    Create {
        room: RoomId,
        topic: String,
    },
    Pin {
        room: RoomId,
        seq: Option<Seq>,
        note: Option<String>,
        title: Option<String>,
    },
    Unpin {
        room: RoomId,
        pin: PinId,
    },
    Members(RoomId),
    /// The page of history before `before`.
    Older {
        room: RoomId,
        before: Seq,
    },
    ListRooms,
    /// A community request (react, edit, moderate, ...): `what` it is, said
    /// back when done.
    Request {
        what: String,
        op: hearth_protocol::Op,
    },
    /// An invite code for the room, shown when made.
    Invite {
        room: RoomId,
        uses: Option<u32>,
    },
    /// The room's join requests, or its moderation log, shown.
    Requests(RoomId),
    /// The posts held for a look, shown.
    Held(RoomId),
    /// The open reports, shown.
    Reports(RoomId),
    /// The room's word filter shown, after adding a rule or removing rule
    /// N (counted from 1) when asked.
    Filter {
        room: RoomId,
        add: Option<hearth_protocol::ops::WordFilter>,
        remove: Option<usize>,
    },
    /// A member's live warnings (the caller's when `user` is absent), shown.
    Warnings {
        room: RoomId,
        user: Option<UserId>,
    },
    /// Post (`approve`) or drop the oldest held post of `user`.
    Release {
        room: RoomId,
        user: UserId,
        approve: bool,
        reason: hearth_protocol::ShortText,
    },
    ModLog(RoomId),
    Stats(RoomId),
    /// Start (or open again) a direct conversation, then as [`Action::Join`].
    Direct {
        with: Vec<UserId>,
    },
    /// Find messages containing a text in the member's rooms.
    Search {
        query: String,
    },
    /// The member is typing in the room: tell the others (nothing is said
    /// back, and a refusal — muted, say — is not worth a word).
    Typing(RoomId),
    /// The member has seen the room up to `seq`: for every device of theirs.
    MarkRead {
        room: RoomId,
        seq: Seq,
    },
}

/// What the network task reports back.
#[derive(Debug, Clone)]
pub enum Net {
    /// Something to tell the member on the status line (a request done, an
    /// invite's code, a short list).
    Said(String),
    /// What a search found, newest first; `more` when older ones were not
    /// looked for.
    Found {
        query: String,
        results: Vec<hearth_protocol::ops::SearchResult>,
        more: bool,
    },
    /// Who the server says the member is.
    Me(UserId),
    Connection(Connection),
    Event(Event),
    Joined(Joined),
    /// History asked for by [`Action::Join`] or [`Action::Older`].
    History(HistoryPage),
    Members {
        room: RoomId,
        members: Vec<MemberInfo>,
    },
    /// The rooms the member can see; `asked` when the member asked (`/rooms`)
    /// rather than the UI loading them at start.
    Rooms {
        rooms: Vec<RoomSummary>,
        asked: bool,
    },
    /// Back after a disconnection: every room resumed from where it was;
    /// these could not be replayed whole.
    Resumed {
        truncated: Vec<RoomId>,
    },
    /// Where the member stands in each of their rooms, on every device.
    ReadState(Vec<hearth_protocol::ops::RoomRead>),
    /// A request failed; `what` says which.
    Failed {
        what: String,
        error: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Connection {
    Connecting,
    Online,
    /// Lost; trying again (attempt number, wait before it).
    Reconnecting {
        attempt: u32,
        retry_in: Duration,
    },
    /// Gave up, with why (a refused token, say): the member must act.
    Closed(String),
}
