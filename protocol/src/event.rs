//! Events: frames the server sends without being asked. On the wire an event is a
//! flat map tagged by `ev`: `{"ev": "message", "room": ..., "seq": ..., ...}`.
//!
//! Timeline events (`message`, `edit`, `pin`, `member_joined`, ...) carry the room's
//! `seq` and are stored: they are what `join ... since` replays and `history` pages
//! through. Ephemeral events (`hello`, `typing`, `presence`, `join_request`) carry no
//! seq and are never replayed.

use serde::{Deserialize, Serialize};

use crate::ids::{ClientMsgId, Emoji, Epoch, Millis, Note, PinId, Role, RoomId, Seq, ShortText, Text, UserId};
use crate::ops::{Escalation, Lockdown, ModAction, PinnedNote, ReportCategory, ReportOutcome, RoomSettings};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum Event {
    Hello(Hello),
    Message(MessageEvent),
    Edit(EditEvent),
    Delete(DeleteEvent),
    Reaction(ReactionEvent),
    Pin(PinEvent),
    Unpin(UnpinEvent),
    MemberJoined(MemberJoinedEvent),
    MemberLeft(MemberLeftEvent),
    Role(RoleEvent),
    RoomUpdated(RoomUpdatedEvent),
    Moderation(ModerationEvent),
    Typing(TypingEvent),
    Presence(PresenceEvent),
    JoinRequest(JoinRequestEvent),
    JoinDecision(JoinDecisionEvent),
    Ack(AckEvent),
    Arrived(ArrivedEvent),
    Prompt(PromptEvent),
    Held(HeldEvent),
    Truncated(TruncatedEvent),
    Read(ReadEvent),
    DirectStarted(DirectStartedEvent),
    Blocks(BlocksEvent),
    Report(ReportEvent),
    Erased(ErasedEvent),
}

impl Event {
    /// The timeline position of a stored event; `None` for ephemeral events.
    pub fn seq(&self) -> Option<Seq> {
        Some(match self {
            Event::Message(e) => e.seq,
            Event::Edit(e) => e.seq,
            Event::Delete(e) => e.seq,
            Event::Reaction(e) => e.seq,
            Event::Pin(e) => e.seq,
            Event::Unpin(e) => e.seq,
            Event::MemberJoined(e) => e.seq,
            Event::MemberLeft(e) => e.seq,
            Event::Role(e) => e.seq,
            Event::RoomUpdated(e) => e.seq,
            Event::Moderation(e) => e.seq,
            Event::JoinRequest(e) => e.seq,
            Event::Ack(e) => e.seq,
            Event::Arrived(e) => e.seq,
            Event::Prompt(e) => e.seq,
            Event::Held(e) => e.seq,
            Event::DirectStarted(e) => e.seq,
            Event::Report(e) => e.seq,
            Event::Erased(e) => e.seq,
            Event::Hello(_)
            | Event::Typing(_)
            | Event::Presence(_)
            | Event::JoinDecision(_)
            | Event::Truncated(_)
            | Event::Read(_)
            | Event::Blocks(_) => {
                return None;
            }
        })
    }

    /// When a stored event happened; `None` for ephemeral events.
    pub fn ts(&self) -> Option<Millis> {
        Some(match self {
            Event::Message(e) => e.ts,
            Event::Edit(e) => e.ts,
            Event::Delete(e) => e.ts,
            Event::Reaction(e) => e.ts,
            Event::Pin(e) => e.ts,
            Event::Unpin(e) => e.ts,
            Event::MemberJoined(e) => e.ts,
            Event::MemberLeft(e) => e.ts,
            Event::Role(e) => e.ts,
            Event::RoomUpdated(e) => e.ts,
            Event::Moderation(e) => e.ts,
            Event::JoinRequest(e) => e.ts,
            Event::Ack(e) => e.ts,
            Event::Arrived(e) => e.ts,
            Event::Prompt(e) => e.ts,
            Event::Held(e) => e.ts,
            Event::DirectStarted(e) => e.ts,
            Event::Report(e) => e.ts,
            Event::Erased(e) => e.ts,
            Event::Hello(_)
            | Event::Typing(_)
            | Event::Presence(_)
            | Event::JoinDecision(_)
            | Event::Truncated(_)
            | Event::Read(_)
            | Event::Blocks(_) => {
                return None;
            }
        })
    }

    /// Gives a timeline event its position and time, which whoever orders the room
    /// assigns after the event was decided. A pin's id is the seq of the event that
    /// made it, so pin ids need no counter of their own. Ephemeral events are left
    /// as they are.
    pub fn stamp(&mut self, seq: Seq, ts: Millis) {
        let (event_seq, event_ts) = match self {
            Event::Message(e) => (&mut e.seq, &mut e.ts),
            Event::Edit(e) => (&mut e.seq, &mut e.ts),
            Event::Delete(e) => (&mut e.seq, &mut e.ts),
            Event::Reaction(e) => (&mut e.seq, &mut e.ts),
            Event::Pin(e) => {
                e.pin.pin = PinId(seq.0);
                e.pin.at = ts;
                (&mut e.seq, &mut e.ts)
            }
            Event::Unpin(e) => (&mut e.seq, &mut e.ts),
            Event::MemberJoined(e) => (&mut e.seq, &mut e.ts),
            Event::MemberLeft(e) => (&mut e.seq, &mut e.ts),
            Event::Role(e) => (&mut e.seq, &mut e.ts),
            Event::RoomUpdated(e) => (&mut e.seq, &mut e.ts),
            Event::Moderation(e) => (&mut e.seq, &mut e.ts),
            Event::JoinRequest(e) => (&mut e.seq, &mut e.ts),
            Event::Ack(e) => (&mut e.seq, &mut e.ts),
            Event::Arrived(e) => (&mut e.seq, &mut e.ts),
            Event::Prompt(e) => (&mut e.seq, &mut e.ts),
            Event::Held(e) => (&mut e.seq, &mut e.ts),
            Event::DirectStarted(e) => (&mut e.seq, &mut e.ts),
            Event::Report(e) => (&mut e.seq, &mut e.ts),
            Event::Erased(e) => (&mut e.seq, &mut e.ts),
            Event::Hello(_)
            | Event::Typing(_)
            | Event::Presence(_)
            | Event::JoinDecision(_)
            | Event::Truncated(_)
            | Event::Read(_)
            | Event::Blocks(_) => {
                return;
            }
        };
        *event_seq = seq;
        *event_ts = ts;
    }

    /// The room an event belongs to; `None` for `hello`.
    pub fn room(&self) -> Option<&RoomId> {
        Some(match self {
            Event::Hello(_) => return None,
            Event::Message(e) => &e.room,
            Event::Edit(e) => &e.room,
            Event::Delete(e) => &e.room,
            Event::Reaction(e) => &e.room,
            Event::Pin(e) => &e.room,
            Event::Unpin(e) => &e.room,
            Event::MemberJoined(e) => &e.room,
            Event::MemberLeft(e) => &e.room,
            Event::Role(e) => &e.room,
            Event::RoomUpdated(e) => &e.room,
            Event::Moderation(e) => &e.room,
            Event::Typing(e) => &e.room,
            Event::Presence(e) => &e.room,
            Event::JoinRequest(e) => &e.room,
            Event::JoinDecision(e) => &e.room,
            Event::Ack(e) => &e.room,
            Event::Arrived(e) => &e.room,
            Event::Prompt(e) => &e.room,
            Event::Held(e) => &e.room,
            Event::Truncated(e) => &e.room,
            Event::Read(e) => &e.room,
            Event::DirectStarted(e) => &e.room,
            Event::Report(e) => &e.room,
            Event::Erased(e) => &e.room,
            Event::Blocks(_) => return None,
        })
    }
}

/// First frame on every connection: who the server thinks you are, and its limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub user: UserId,
    /// This connection's id on the server, for support and logs.
    pub conn: u64,
    /// Server name and version, e.g. `hearth-server/0.1.0`.
    pub server: String,
    pub protocol: u32,
    pub max_request_bytes: u32,
    pub max_text_bytes: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageEvent {
    pub room: RoomId,
    pub seq: Seq,
    pub ts: Millis,
    pub from: UserId,
    pub text: Text,
    pub cmid: ClientMsgId,
    /// The thread's root message, for a reply in a thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<Seq>,
    /// In `history` and `thread` pages: what happened to the message since
    /// (edits, deletion, reactions, replies). Never on a live event.
    /// Boxed: rare, and large next to the rest of an event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Box<MessageState>>,
    /// A scheduled prompt the server posted (in its scheduler's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<PromptPosted>,
    /// The moderator who released it, when it was held for a look.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_by: Option<UserId>,
    /// In a room with probation by posts: this is its author's Nth post while
    /// on probation (1 for the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probation_post: Option<u32>,
    /// Members it mentions, as the server resolved them: those named `@name`
    /// in the text, and for a reply the author of the thread's root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<UserId>,
    /// A moderator's `@room`: for everyone in the room.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mentions_room: bool,
    /// Brought from another chat (`hearth-server import discord`): who wrote
    /// it there, when, and its reactions there. Boxed: rare.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported: Option<Box<Imported>>,
}

impl MessageEvent {
    /// A message as posted, before it is ordered (seq and time zero), with
    /// nothing else said of it: the rest is filled in with `..` where it is.
    pub fn draft(room: RoomId, from: UserId, text: Text, cmid: ClientMsgId, thread: Option<Seq>) -> MessageEvent {
        MessageEvent {
            room,
            seq: Seq(0),
            ts: Millis(0),
            from,
            text,
            cmid,
            thread,
            state: None,
            prompt: None,
            released_by: None,
            probation_post: None,
            mentions: Vec::new(),
            mentions_room: false,
            imported: None,
        }
    }
}

/// Where an imported message came from. `from` is the member its author
/// was mapped to, or the room's importer (`discord-import`) for an author
/// who was not: clients show `author` then, never `from`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Imported {
    /// `discord`.
    pub source: String,
    /// The message's id there (what makes an import idempotent).
    pub id: String,
    /// Its author's name there.
    pub author: ShortText,
    /// When it was written and last edited there (Unix milliseconds).
    pub at: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<Millis>,
    /// Its reactions there: each emoji (its name for a custom one) and how
    /// many reacted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<ImportedReaction>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportedReaction {
    pub emoji: ShortText,
    pub count: u32,
}

/// A newcomer's message held for a moderator's look. To welcomers and above.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldEvent {
    pub room: RoomId,
    pub seq: Seq,
    pub ts: Millis,
    pub from: UserId,
    pub text: Text,
    pub cmid: ClientMsgId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<Seq>,
}

/// Which prompt a message is, and when it comes next (none: it was the last).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptPosted {
    pub prompt: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_at: Option<Millis>,
}

/// A prompt scheduled, or cancelled (`text` absent). To welcomers and above.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptEvent {
    pub room: RoomId,
    pub seq: Seq,
    pub ts: Millis,
    pub from: UserId,
    pub prompt: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_at: Option<Millis>,
    #[serde(default)]
    pub weekly: bool,
}

/// A message's state now, as history pages show it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageState {
    /// When it was last edited (`text` is the edited text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<Millis>,
    /// Deleted: `text` is a placeholder, the original is gone from history.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// Its author's account was erased: with `deleted`, it is a
    /// tombstone; without, the room keeps it, `from` is `former-member`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub erased: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<ReactionCount>,
    /// Replies in its thread, and the newest one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub replies: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reply: Option<Seq>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One emoji's reactions to a message: how many, and (up to 20) who.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReactionCount {
    pub emoji: Emoji,
    pub count: u32,
    pub users: Vec<UserId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditEvent {
    pub room: RoomId,
    pub seq: Seq,
    pub ts: Millis,
    pub from: UserId,
    pub target: Seq,
    pub text: Text,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteEvent {
    pub room: RoomId,
    pub seq: Seq,
    pub ts: Millis,
    pub from: UserId,
    pub target: Seq,
    /// Whose message it was, when a moderator deleted someone else's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub of: Option<UserId>,
}

/// A member's account was erased: the messages they wrote in this room (those
/// listed, and the seqs of their held posts) are tombstones from now on,
/// their reactions (those listed) are gone, and they are no longer a member. A member with many messages is
/// erased in several such events, each listing up to 500 of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErasedEvent {
    pub room: RoomId,
    pub seq: Seq,
    pub ts: Millis,
    pub user: UserId,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Seq>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<ErasedReaction>,
    /// Their posts still held for a moderator's look (by client message
    /// id), dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<ClientMsgId>,
    /// The room keeps erased members' messages: those listed stay, with
    /// their text, attributed to `former-member` instead of becoming
    /// tombstones.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub former_member: bool,
}

/// Whom a room that keeps erased members' messages shows them as from.
pub const FORMER_MEMBER: &str = "former-member";

/// A reaction an erasure took back: on which message, which emoji.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasedReaction {
    pub target: Seq,
    pub emoji: Emoji,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReactionEvent {
    pub room: RoomId,
    pub seq: Seq,
    pub ts: Millis,
    pub from: UserId,
    pub target: Seq,
    pub emoji: Emoji,
    pub on: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PinEvent {
    pub room: RoomId,
    pub seq: Seq,
    pub ts: Millis,
    pub from: UserId,
    pub pin: PinnedNote,
    /// The pin this one replaces (same title, new version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<PinId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnpinEvent {
    pub room: RoomId,
    pub seq: Seq,
    pub ts: Millis,
    pub from: UserId,
    pub pin: PinId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberJoinedEvent {
    pub room: RoomId,
    pub seq: Seq,
    pub ts: Millis,
    /// The member who joined.
    pub from: UserId,
    pub role: Role,
    /// The welcomer or moderator who approved their request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<UserId>,
    /// The invite they came with (its id, not its code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite: Option<String>,
    /// This join made the room's raid threshold (`raid_joins` within
    /// `raid_secs`): the room takes no new members until then, from this event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lockdown: Option<Lockdown>,
}

/// Why a member is no longer in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeftReason {
    Left,
    Kicked,
    Banned,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberLeftEvent {
    pub room: RoomId,
    pub seq: Seq,
    pub ts: Millis,
    /// Who acted: the member itself, or the moderator.
    pub from: UserId,
    pub user: UserId,
    pub reason: LeftReason,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleEvent {
    pub room: RoomId,
    pub seq: Seq,
    pub ts: Millis,
    pub from: UserId,
    pub user: UserId,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Millis>,
    /// A title shown beside the name ("topic lead"); empty removes it, absent
    /// leaves it as it was. It grants nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<ShortText>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomUpdatedEvent {
    pub room: RoomId,
    pub seq: Seq,
    pub ts: Millis,
    pub from: UserId,
    /// The settings that changed.
    pub settings: RoomSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModerationEvent {
    pub room: RoomId,
    pub seq: Seq,
    pub ts: Millis,
    pub from: UserId,
    pub action: ModAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Millis>,
    #[serde(default)]
    pub reason: ShortText,
    /// For `create_invite` and `revoke_invite`: the invite's id (never its code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite: Option<String>,
    /// For `create_invite`: how many joins it allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u32>,
    /// For a held message dropped (`delete`): its client message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<ClientMsgId>,
    /// For `resolve`: the reported message, how its reports were resolved,
    /// and which reports (their ids) this closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Seq>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<ReportOutcome>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reports: Vec<Seq>,
    /// For `warn`: what the room's escalation did with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<Escalation>,
    /// For `warn`: the member's warnings that had expired, forgotten with
    /// this one; for `unwarn`: the warning lifted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Seq>,
    /// For `resolve`: the least role that receives it (above the reported
    /// member's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<Role>,
}

/// A member reported a message. To welcomers and above — above the reported
/// member's own role, so they never learn who reported them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportEvent {
    pub room: RoomId,
    /// The report's id.
    pub seq: Seq,
    pub ts: Millis,
    /// The reporter.
    pub from: UserId,
    /// The message, its author and its text when reported.
    pub message: Seq,
    pub author: UserId,
    pub text: Text,
    pub category: ReportCategory,
    #[serde(default)]
    pub note: ShortText,
    /// The least role that receives it.
    pub audience: Role,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypingEvent {
    pub room: RoomId,
    pub user: UserId,
}

/// Who came online in a room and who went offline, on any node: changes
/// gathered over about a second, so many members connecting at once make
/// one event, not one each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresenceEvent {
    pub room: RoomId,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub online: Vec<UserId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offline: Vec<UserId>,
}

/// Someone asks to join an approval room. Sent only to its welcomers,
/// moderators and owner (stored, so a resume replays it to them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinRequestEvent {
    pub room: RoomId,
    pub seq: Seq,
    pub ts: Millis,
    /// Who asks.
    pub from: UserId,
    /// Their answer to the room's entry question, or a word about themselves.
    #[serde(default)]
    pub note: Note,
    /// As a join's: this request made the room's raid threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lockdown: Option<Lockdown>,
}

/// A member acknowledged the room's rules at a version. Sent to welcomers
/// and above only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AckEvent {
    pub room: RoomId,
    pub seq: Seq,
    pub ts: Millis,
    pub from: UserId,
    pub version: u32,
}

/// A member a welcomer or moderator let in (`decide_join`) joined the room
/// on a connection for the first time since: their `join` answered
/// `first_join: true`, so they were shown the room's welcome. Sent to
/// welcomers and above only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArrivedEvent {
    pub room: RoomId,
    pub seq: Seq,
    pub ts: Millis,
    pub from: UserId,
}

/// To the requester, on every connection of theirs: the room decided on
/// their request. Not stored; a denial is also what `request_join` and
/// `join` answer afterwards, an approval makes them a member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinDecisionEvent {
    pub room: RoomId,
    pub approved: bool,
    pub by: UserId,
    #[serde(default)]
    pub reason: ShortText,
}

/// To every connection of a member: they marked the room read up to `seq`
/// (on this device or another). Not stored in the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadEvent {
    pub room: RoomId,
    pub seq: Seq,
}

/// A direct conversation began: its members, the one who started it
/// (`from`) first. The room's first event (seq 1); it also reaches every
/// connection of the other members, who are members from here on and may
/// `join` the room to receive it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectStartedEvent {
    pub room: RoomId,
    pub seq: Seq,
    pub ts: Millis,
    pub from: UserId,
    pub members: Vec<UserId>,
}

/// To every connection of a member: the members they block now (after a
/// `block` on this device or another). Not stored in any timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlocksEvent {
    pub users: Vec<UserId>,
}

/// Events of a room were lost before this connection received them: the ones
/// with `after` < seq < `next` will never arrive (the history that held them is
/// gone). The stream goes on with `next`. Whatever is still held can be read
/// with `history`; the room's state (members, pins) is current again from here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruncatedEvent {
    pub room: RoomId,
    /// The room's epoch from here on: a new one when the room was made again
    /// (a cluster's Redis lost it), so a resume from `next - 1` needs nothing
    /// else.
    pub epoch: Epoch,
    /// The last event delivered before the hole.
    pub after: Seq,
    /// The next event that will be delivered.
    pub next: Seq,
}
