//! Requests (client → server) and the reply each one gets.
//!
//! On the wire a request is one flat map: `{"id": 7, "op": "send", "room": ..., ...}`.
//! `id` is chosen by the client and echoed in the reply; `op` names the operation;
//! the other keys are that operation's arguments, the fields of its struct here.
//! Every operation's reply type is fixed by [`Operation::Reply`].

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::ids::{
    ClientMsgId, Emoji, Epoch, Millis, Note, PinId, Position, RequestId, Role, RoomId, Seq, ShortText, Text, UserId,
};

/// Arguments that are maps, read only from maps. serde's derive also reads a
/// struct from a list, by its fields' positions (`"since": [7, 3]`): a form no
/// client is told it may send, which would mean something else the day a field
/// is added. (The request itself is checked to be a map before it is read.)
mod by_name {
    use std::fmt;
    use std::marker::PhantomData;

    use serde::de::value::MapAccessDeserializer;
    use serde::de::{MapAccess, Visitor};
    use serde::{Deserialize, Deserializer};

    struct Named<T>(T);

    impl<'de, T: Deserialize<'de>> Deserialize<'de> for Named<T> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct MapOnly<T>(PhantomData<T>);
            impl<'de, T: Deserialize<'de>> Visitor<'de> for MapOnly<T> {
                type Value = T;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a map of named fields")
                }
                fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                    T::deserialize(MapAccessDeserializer::new(map))
                }
            }
            deserializer.deserialize_map(MapOnly(PhantomData)).map(Named)
        }
    }

    pub fn one<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<T, D::Error> {
        Named::deserialize(deserializer).map(|named| named.0)
    }

    pub fn optional<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
        Ok(Option::<Named<T>>::deserialize(deserializer)?.map(|named| named.0))
    }

    pub fn optional_list<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        deserializer: D,
    ) -> Result<Option<Vec<T>>, D::Error> {
        Ok(Option::<Vec<Named<T>>>::deserialize(deserializer)?.map(|list| list.into_iter().map(|n| n.0).collect()))
    }
}

/// One operation: its wire name and the type of its successful reply.
pub trait Operation: Serialize + for<'de> Deserialize<'de> + Into<Op> {
    const NAME: &'static str;
    type Reply: Serialize + for<'de> Deserialize<'de> + std::fmt::Debug;
}

/// A decoded request: the client's id and the operation with its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: RequestId,
    pub op: Op,
}

macro_rules! operations {
    // `$d` is a `$`, passed in so the macro this one defines can have
    // metavariables of its own.
    ($d:tt; $( $(#[$doc:meta])* $variant:ident = $name:literal => $reply:ty; )*) => {
        /// Every operation of protocol v1.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Op {
            $( $(#[$doc])* $variant($variant), )*
        }

        impl Op {
            /// The wire name of this operation.
            pub fn name(&self) -> &'static str {
                match self {
                    $( Op::$variant(_) => $name, )*
                }
            }

            /// Encodes this operation as a request frame.
            pub fn encode(&self, codec: crate::Codec, id: RequestId) -> Vec<u8> {
                match self {
                    $( Op::$variant(args) => crate::codec::encode_request(codec, id, args), )*
                }
            }

            /// Decodes the arguments of operation `name` from a whole request frame.
            pub(crate) fn decode_args(codec: crate::Codec, name: &str, frame: &[u8]) -> Result<Op, crate::DecodeError> {
                match name {
                    $( $name => Ok(Op::$variant(codec.decode_value::<$variant>(frame)?)), )*
                    other => Err(crate::DecodeError::UnknownOp(other.chars().take(64).collect())),
                }
            }
        }

        /// Wire names of every operation, in declaration order.
        pub const OP_NAMES: &[&str] = &[$($name),*];

        /// Calls `CALLBACK! { Variant, Variant, ... }` with the [`Op`] variant of
        /// every operation, in declaration order: a server's dispatch is made
        /// from the protocol's one table, so adding an operation here asks for
        /// its handler there and nowhere else.
        #[macro_export]
        macro_rules! for_each_op {
            ($d callback:ident) => {
                $d callback! { $($variant),* }
            };
        }

        $(
            impl Operation for $variant {
                const NAME: &'static str = $name;
                type Reply = $reply;
            }

            impl From<$variant> for Op {
                fn from(args: $variant) -> Op {
                    Op::$variant(args)
                }
            }
        )*
    };
}

operations! {
    $;
    /// Liveness check at the application level; replies with the server's clock.
    Ping = "ping" => Pong;
    /// Create a room; the caller becomes its owner and first member.
    CreateRoom = "create_room" => RoomInfo;
    /// Rooms the caller can see: open and approval rooms, and rooms it belongs to.
    ListRooms = "list_rooms" => RoomList;
    /// Become a member (if not already) and receive the room's events on this
    /// connection; with `since`, first the events missed after that position.
    Join = "join" => Joined;
    /// Stop being a member of the room.
    Leave = "leave" => Done;
    /// Post a message. Retrying with the same `cmid` stores it once.
    SendMessage = "send" => Appended;
    /// A page of the room's timeline before or after a seq.
    History = "history" => HistoryPage;
    /// A page of one thread: its root message and the replies naming it.
    ThreadHistory = "thread" => HistoryPage;
    /// Replace the text of one's own message.
    Edit = "edit" => Appended;
    /// Delete one's own message, or any message as a moderator.
    Delete = "delete" => Appended;
    /// Add or remove a reaction on a message.
    React = "react" => Appended;
    /// Pin a message, or a free note (the room's mission, its rules).
    AddPin = "pin" => Pinned;
    /// Remove a pin.
    RemovePin = "unpin" => Appended;
    /// The room's members with their roles.
    Members = "members" => MemberList;
    /// Give a member a role, optionally until a time.
    SetRole = "set_role" => Appended;
    /// Change room settings (topic, cap, visibility, slow mode, ...); absent fields stay.
    SetRoom = "set_room" => Appended;
    /// Ask to join a room with approval visibility.
    RequestJoin = "request_join" => Done;
    /// Pending join requests (moderators and welcomers).
    JoinRequests = "join_requests" => JoinRequestList;
    /// Approve or reject a join request.
    DecideJoin = "decide_join" => Done;
    /// Make an invite code for an invite-only room.
    CreateInvite = "create_invite" => Invite;
    /// Revoke an invite code.
    RevokeInvite = "revoke_invite" => Done;
    /// Remove a member; they may join again.
    Kick = "kick" => Appended;
    /// Remove a member and keep them out, optionally for a time.
    Ban = "ban" => Appended;
    /// Lift a ban.
    Unban = "unban" => Appended;
    /// Stop a member from posting until a time.
    Mute = "mute" => Appended;
    /// Lift a mute.
    Unmute = "unmute" => Appended;
    /// The room's moderation log, newest first.
    ModLog = "mod_log" => ModLogPage;
    /// Tell the room the caller is typing (ephemeral, not stored).
    Typing = "typing" => Done;
    /// Who is online in the room now.
    Presence = "presence" => PresenceList;
    /// The room's health signals over a window of days.
    Stats = "stats" => RoomStats;
    /// Schedule a prompt the server posts, once or weekly.
    SchedulePrompt = "schedule_prompt" => Prompt;
    /// Cancel a scheduled prompt.
    CancelPrompt = "cancel_prompt" => Done;
    /// Replace this connection's token with a fresh one for the same user, so
    /// the connection outlives the token it opened with.
    Auth = "auth" => Authed;
    /// Every version of an edited message (moderators).
    Versions = "versions" => VersionList;
    /// Set the order the room's pinned notes are shown in (moderators).
    OrderPins = "order_pins" => Appended;
    /// Acknowledge the room's rules, so posting is allowed (rooms that ask it).
    AckRules = "ack_rules" => Appended;
    /// The room's scheduled prompts (moderators).
    Prompts = "prompts" => PromptList;
    /// Messages held for a moderator's look (moderators).
    HeldPosts = "held" => HeldList;
    /// Release a held message (it is posted) or drop it (moderators).
    Release = "release" => Appended;
    /// Mark a room read up to a seq, for every device of the caller.
    MarkRead = "mark_read" => ReadMark;
    /// Mark every room of the caller read, up to its newest event.
    MarkAllRead = "mark_all_read" => AllRead;
    /// Where the caller stands in each of their rooms: read up to, and how
    /// many messages from others came after.
    ReadState = "read_state" => ReadStateList;
    /// Messages that mentioned the caller, in every room, newest first.
    Mentions = "mentions" => MentionList;
    /// Messages containing a text, in the caller's rooms or one of them,
    /// newest first.
    Search = "search" => SearchResults;
    /// Start (or open again) a direct conversation with members the caller
    /// shares a room with.
    StartDirect = "start_direct" => RoomInfo;
    /// Block a member (no direct messages from them; clients collapse their
    /// messages), or lift the block.
    Block = "block" => BlockList;
    /// The members the caller blocks.
    Blocks = "blocks" => BlockList;
    /// The server's push key (VAPID), for a browser's push subscription.
    PushKey = "push_key" => PushKeyInfo;
    /// Keep a device's push subscription: notifications reach it while the
    /// member is away.
    PushSubscribe = "push_subscribe" => Done;
    /// Forget a device's push subscription.
    PushUnsubscribe = "push_unsubscribe" => Done;
    /// What the caller is notified of in a room while away.
    SetPushLevel = "push_level" => Done;
    /// The levels the caller set, room by room.
    PushLevels = "push_levels" => PushLevelList;
    /// Report a message to the room's moderators and welcomers.
    Report = "report" => Appended;
    /// The room's open reports (welcomers and above), or the caller's own.
    Reports = "reports" => ReportList;
    /// Resolve the reports on a message: dismiss them, or act on its author
    /// (delete, warn, mute, kick, ban) in the same step.
    ResolveReport = "resolve_report" => Appended;
    /// Warn a member, with a reason; the room's escalation may follow.
    Warn = "warn" => Appended;
    /// Lift one of a member's warnings.
    Unwarn = "unwarn" => Appended;
    /// A member's live warnings (their own, or anyone's for moderators).
    Warnings = "warnings" => WarningList;
    /// Lock the room for a time — no new members, or read-only below
    /// moderator — or lift a lockdown.
    Lock = "lockdown" => Appended;
    /// The room's word filter (moderators).
    Filters = "filters" => FilterList;
    /// Erase the caller's account: every message they wrote becomes a
    /// tombstone, their reactions, read state, devices and sessions go, and
    /// the name can never sign in again. Asks for the caller's name again.
    EraseAccount = "erase_account" => Erasure;
}

impl Op {
    /// The room this operation is about; `None` for the few about no room.
    pub fn room(&self) -> Option<&RoomId> {
        match self {
            Op::Ping(_)
            | Op::ListRooms(_)
            | Op::Auth(_)
            | Op::MarkAllRead(_)
            | Op::ReadState(_)
            | Op::Mentions(_)
            | Op::StartDirect(_)
            | Op::Block(_)
            | Op::Blocks(_)
            | Op::PushKey(_)
            | Op::PushSubscribe(_)
            | Op::PushUnsubscribe(_)
            | Op::PushLevels(_)
            | Op::EraseAccount(_) => None,
            Op::CreateRoom(args) => Some(&args.room),
            Op::Join(args) => Some(&args.room),
            Op::Leave(args) => Some(&args.room),
            Op::SendMessage(args) => Some(&args.room),
            Op::History(args) => Some(&args.room),
            Op::ThreadHistory(args) => Some(&args.room),
            Op::Edit(args) => Some(&args.room),
            Op::Delete(args) => Some(&args.room),
            Op::React(args) => Some(&args.room),
            Op::AddPin(args) => Some(&args.room),
            Op::RemovePin(args) => Some(&args.room),
            Op::Members(args) => Some(&args.room),
            Op::SetRole(args) => Some(&args.room),
            Op::SetRoom(args) => Some(&args.room),
            Op::RequestJoin(args) => Some(&args.room),
            Op::JoinRequests(args) => Some(&args.room),
            Op::DecideJoin(args) => Some(&args.room),
            Op::CreateInvite(args) => Some(&args.room),
            Op::RevokeInvite(args) => Some(&args.room),
            Op::Kick(args) => Some(&args.room),
            Op::Ban(args) => Some(&args.room),
            Op::Unban(args) => Some(&args.room),
            Op::Mute(args) => Some(&args.room),
            Op::Unmute(args) => Some(&args.room),
            Op::ModLog(args) => Some(&args.room),
            Op::Typing(args) => Some(&args.room),
            Op::Presence(args) => Some(&args.room),
            Op::Stats(args) => Some(&args.room),
            Op::SchedulePrompt(args) => Some(&args.room),
            Op::CancelPrompt(args) => Some(&args.room),
            Op::Versions(args) => Some(&args.room),
            Op::OrderPins(args) => Some(&args.room),
            Op::AckRules(args) => Some(&args.room),
            Op::Prompts(args) => Some(&args.room),
            Op::HeldPosts(args) => Some(&args.room),
            Op::Release(args) => Some(&args.room),
            Op::MarkRead(args) => Some(&args.room),
            Op::Search(args) => args.room.as_ref(),
            Op::SetPushLevel(args) => Some(&args.room),
            Op::Report(args) => Some(&args.room),
            Op::Reports(args) => Some(&args.room),
            Op::ResolveReport(args) => Some(&args.room),
            Op::Warn(args) => Some(&args.room),
            Op::Unwarn(args) => Some(&args.room),
            Op::Warnings(args) => Some(&args.room),
            Op::Lock(args) => Some(&args.room),
            Op::Filters(args) => Some(&args.room),
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

// ---- shared value types ------------------------------------------------------

/// Who may join a room, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Anyone with a token may join.
    #[default]
    Open,
    /// Joining takes a request approved by a moderator or welcomer.
    Approval,
    /// Joining takes an invite code; the room is not listed to non-members.
    InviteOnly,
    /// A direct conversation (`start_direct`): its members are fixed when it
    /// starts; nobody joins it otherwise, and it is listed to its members only.
    Direct,
}

impl Visibility {
    /// Whether the room is listed to those who are not its members.
    pub fn listed_to_outsiders(self) -> bool {
        matches!(self, Visibility::Open | Visibility::Approval)
    }
}

/// A room as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomInfo {
    pub room: RoomId,
    pub topic: ShortText,
    pub cap: u32,
    pub visibility: Visibility,
    /// Members now (not connections).
    pub members: u32,
    pub epoch: Epoch,
    /// Seq of the newest event in the timeline (0 when empty).
    pub head: Seq,
    pub owner: UserId,
    pub created_at: Millis,
    /// Seconds a member waits between messages (0: off).
    #[serde(default)]
    pub slow_mode_secs: u32,
    /// Only members holding at least this role may join.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_role: Option<Role>,
    /// Shown to members on their first join.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub welcome: Option<ShortText>,
    /// Seconds a new member stays on probation (links held, stricter slow mode).
    #[serde(default)]
    pub probation_secs: u32,
    /// Posts a new member makes on probation (with `probation_secs` too, both
    /// must be over).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub probation_posts: u32,
    /// The lobby room in which `required_role` must be held to join.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<RoomId>,
    /// Members acknowledge the rules before posting.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rules_ack: bool,
    /// A direct conversation's members as it started, its starter first
    /// (visibility `direct` only; `members` says who is in it now).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub direct: Vec<UserId>,
    /// Days a warning counts (0: until lifted); absent: the default, 90.
    #[serde(default = "default_warn_expiry_days", skip_serializing_if = "is_default_warn_expiry_days")]
    pub warn_expiry_days: u32,
    /// The live warning that brings `warn_action` (0: none does).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub warn_limit: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_action: Option<ModAction>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub warn_action_secs: u32,
    /// The room's lockdown as last set: it holds until `until` (absent:
    /// until lifted); a past `until` has ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lockdown: Option<Lockdown>,
    /// Raid detection (0: off): `raid_joins` joins or requests within
    /// `raid_secs` lock new members out for `raid_lock_secs`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub raid_joins: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub raid_secs: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub raid_lock_secs: u32,
    /// When a member's account is erased, their messages here stay,
    /// attributed to `former-member`, instead of becoming tombstones.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub erased_as_former_member: bool,
}

fn is_blank(text: &ShortText) -> bool {
    text.as_str().is_empty()
}

fn default_warn_expiry_days() -> u32 {
    crate::limits::DEFAULT_WARN_EXPIRY_DAYS
}

fn is_default_warn_expiry_days(days: &u32) -> bool {
    *days == crate::limits::DEFAULT_WARN_EXPIRY_DAYS
}

/// A pinned message or free note.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PinnedNote {
    pub pin: PinId,
    /// The pinned message, when a message was pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<Seq>,
    /// The note's text: the pinned message's text as it is now (its newest
    /// edit, cut to a note's length), or the free note.
    pub text: Note,
    pub by: UserId,
    pub at: Millis,
    /// Bumped each time a pin with the same `title` is replaced (versioned rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<ShortText>,
    #[serde(default)]
    pub version: u32,
    /// The note this pin is a later version of: the first version's id. It
    /// names the note across its versions (`order_pins` takes these).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<PinId>,
    /// The pinned message was deleted since: `text` is the placeholder
    /// `(deleted)`, and a moderator may unpin it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

impl PinnedNote {
    /// The note's id across its versions.
    pub fn note_id(&self) -> PinId {
        self.note.unwrap_or(self.pin)
    }
}

/// A member and its role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub user: UserId,
    pub role: Role,
    pub joined_at: Millis,
    /// When a time-limited role ends and the member returns to `member`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_expires_at: Option<Millis>,
    #[serde(default)]
    pub online: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<ShortText>,
    /// Muted until then (moderators see it; absent when not muted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub muted_until: Option<Millis>,
    /// Joined within the last 7 days.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub newcomer: bool,
    /// The rules version they acknowledged, in rooms that ask it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules_acked: Option<u32>,
}

/// Room settings that `set_room` changes; absent fields are left as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoomSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<ShortText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_mode_secs: Option<u32>,
    /// `member` lifts the requirement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub welcome: Option<ShortText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probation_secs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probation_posts: Option<u32>,
    /// The lobby room in which a member must hold `required_role` to join
    /// this one; an empty name lifts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ShortText>,
    /// New members must acknowledge the rules (the pin titled "Rules") before
    /// their first post, and again when the rules change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules_ack: Option<bool>,
    /// The order of the pinned notes (set by `order_pins`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_order: Option<Vec<PinId>>,
    /// Days a warning counts (0: until a moderator lifts it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_expiry_days: Option<u32>,
    /// The live warning that brings `warn_action` with it (0: none does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_limit: Option<u32>,
    /// What reaching `warn_limit` does: `mute`, `kick` or `ban`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_action: Option<ModAction>,
    /// For how long a `warn_action` mute or ban holds (0: until lifted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_action_secs: Option<u32>,
    /// The room's lockdown (`lockdown` sets it; level `off` lifts it).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "by_name::optional")]
    pub lockdown: Option<Lockdown>,
    /// Raid detection: this many joins or requests to join within
    /// `raid_secs` lock the room's doors for `raid_lock_secs` (0: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raid_joins: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raid_secs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raid_lock_secs: Option<u32>,
    /// What an erasure does to the erased member's messages here: keep
    /// them, attributed to `former-member` (`true`), or make them
    /// tombstones (`false`, the default). The owner's choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased_as_former_member: Option<bool>,
    /// The room's word filter, whole (an empty list lifts it). Moderators
    /// only: a `room_updated` carrying it reaches moderators alone.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "by_name::optional_list")]
    pub filters: Option<Vec<WordFilter>>,
}

/// What a moderation action did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModAction {
    Kick,
    Ban,
    Unban,
    Mute,
    Unmute,
    Delete,
    SetRole,
    SetRoom,
    Approve,
    Reject,
    Pin,
    Unpin,
    CreateInvite,
    RevokeInvite,
    /// A warning, with the room's escalation if it reached it.
    Warn,
    /// A warning lifted.
    Unwarn,
    /// Reports on a message resolved (`outcome` says how).
    Resolve,
}

/// Why a member reports a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportCategory {
    Spam,
    Harassment,
    Hate,
    Sexual,
    Violence,
    SelfHarm,
    OffTopic,
    Other,
}

/// How a moderator resolved the reports on a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportOutcome {
    /// Nothing wrong: the reports are closed.
    Dismiss,
    /// The message deleted.
    Delete,
    /// Its author warned.
    Warn,
    /// Its author muted for `duration_secs`.
    Mute,
    /// Its author removed from the room.
    Kick,
    /// Its author banned (for `duration_secs`, or until lifted).
    Ban,
}

/// What a room's word filter does with a post that matches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterAction {
    /// Held for a moderator's look (the queue of held posts).
    Hold,
    /// Refused (`filtered`), with the filter's reason.
    Refuse,
}

/// One rule of a room's word filter: a phrase (matched as whole words, in
/// any case) or a regular expression (`regex: true`; matched in linear time,
/// case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WordFilter {
    pub pattern: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub regex: bool,
    pub action: FilterAction,
    /// What the author is told (a refusal), or the moderators (a hold).
    #[serde(default, skip_serializing_if = "is_blank")]
    pub reason: ShortText,
}

/// How far a room is locked down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockLevel {
    /// Lifted (in `lockdown`): nothing is locked.
    Off,
    /// No new members: joins, requests to join and invites are refused.
    Joins,
    /// As `joins`, and only moderators and the owner post, edit or react.
    ReadOnly,
}

/// A room's lockdown: its level, until when (absent: until lifted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lockdown {
    pub level: LockLevel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Millis>,
}

/// What a warning brought with it: the room's escalation (`warn_limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    /// `mute`, `kick` or `ban`.
    pub action: ModAction,
    /// Until then (`mute`, `ban`); absent: until lifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Millis>,
}

// ---- request arguments -------------------------------------------------------

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ping {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateRoom {
    pub room: RoomId,
    #[serde(default)]
    pub topic: ShortText,
    /// Member cap; default `DEFAULT_ROOM_CAP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap: Option<u32>,
    #[serde(default)]
    pub visibility: Visibility,
}

/// A page of the rooms the caller can see, by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListRooms {
    /// Rooms whose name sorts after this one (the last of the previous page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<RoomId>,
    /// At most this many rooms, up to `MAX_ROOM_PAGE` (default `DEFAULT_ROOM_PAGE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Join {
    pub room: RoomId,
    /// The last position this client holds; the server replays what follows.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "by_name::optional")]
    pub since: Option<Position>,
    /// Invite code, for invite-only rooms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leave {
    pub room: RoomId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendMessage {
    pub room: RoomId,
    pub text: Text,
    /// Client message id: a retry with the same id is stored once and gets the same seq.
    pub cmid: ClientMsgId,
    /// Seq of the thread's root message, to reply in a thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<Seq>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub room: RoomId,
    /// Events with seq below this, newest page first (default: the newest page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Seq>,
    /// Events with seq above this, oldest first. Exclusive with `before`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Seq>,
    /// At most this many events, up to `MAX_PAGE_LIMIT` (default `DEFAULT_PAGE_LIMIT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadHistory {
    pub room: RoomId,
    pub root: Seq,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Seq>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edit {
    pub room: RoomId,
    pub target: Seq,
    pub text: Text,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delete {
    pub room: RoomId,
    pub target: Seq,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct React {
    pub room: RoomId,
    pub target: Seq,
    pub emoji: Emoji,
    /// true adds the reaction, false removes it.
    pub on: bool,
}

/// Pin a message (`seq`) or a free note (`note`); exactly one of the two.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddPin {
    pub room: RoomId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<Seq>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Note>,
    /// A title such as "Rules": pinning again with the same title replaces the old
    /// pin and bumps its version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<ShortText>,
    /// Edit this pin: the new text replaces it as its next version (keeping
    /// its title and its place).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit: Option<PinId>,
}

/// The order the room's notes are shown in: note ids (`PinnedNote::note_id`),
/// first shown first; notes not named follow, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPins {
    pub room: RoomId,
    pub notes: Vec<PinId>,
}

/// Acknowledge the room's rules (the pin titled "Rules") at `version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AckRules {
    pub room: RoomId,
    pub version: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemovePin {
    pub room: RoomId,
    pub pin: PinId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Members {
    pub room: RoomId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetRole {
    pub room: RoomId,
    pub user: UserId,
    pub role: Role,
    /// The role ends by itself then (back to `member`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Millis>,
    /// A title shown beside the name ("topic lead"), granting nothing; empty
    /// removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<ShortText>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetRoom {
    pub room: RoomId,
    #[serde(deserialize_with = "by_name::one")]
    pub settings: RoomSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestJoin {
    pub room: RoomId,
    #[serde(default)]
    pub note: Note,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinRequests {
    pub room: RoomId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecideJoin {
    pub room: RoomId,
    pub user: UserId,
    pub approve: bool,
    /// Told to the requester with a denial.
    #[serde(default)]
    pub reason: ShortText,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateInvite {
    pub room: RoomId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevokeInvite {
    pub room: RoomId,
    /// The invite's code, or its id.
    pub code: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kick {
    pub room: RoomId,
    pub user: UserId,
    #[serde(default)]
    pub reason: ShortText,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ban {
    pub room: RoomId,
    pub user: UserId,
    #[serde(default)]
    pub reason: ShortText,
    /// Ban for this long; absent: until lifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unban {
    pub room: RoomId,
    pub user: UserId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mute {
    pub room: RoomId,
    pub user: UserId,
    pub duration_secs: u32,
    #[serde(default)]
    pub reason: ShortText,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unmute {
    pub room: RoomId,
    pub user: UserId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModLog {
    pub room: RoomId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Typing {
    pub room: RoomId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Presence {
    pub room: RoomId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub room: RoomId,
    /// One window of this many days, up to 90 (default: two, 7 and 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchedulePrompt {
    pub room: RoomId,
    pub text: Text,
    pub at: Millis,
    #[serde(default)]
    pub weekly: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelPrompt {
    pub room: RoomId,
    pub prompt: u64,
}

// ---- replies -----------------------------------------------------------------

/// An empty successful reply: `{"id":7,"ok":{}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Done {}

/// Marks `room` read up to `seq` (a seq past the room's newest is taken as
/// the newest). Read positions only move forward: a device that is behind
/// never moves another's back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarkRead {
    pub room: RoomId,
    pub seq: Seq,
}

/// The caller's read position in a room after a `mark_read`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadMark {
    pub room: RoomId,
    pub seq: Seq,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MarkAllRead {}

/// How many rooms `mark_all_read` marked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllRead {
    pub rooms: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReadState {}

/// A page of the caller's mentions: older than `before` (the `next` of the
/// page before), at most `limit` (default and most: `MAX_MENTION_PAGE`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Mentions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u16>,
}

pub const MAX_MENTION_PAGE: u16 = 50;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MentionList {
    pub mentions: Vec<MentionItem>,
    /// Where the next page starts (`before`), while there may be more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A message that mentioned the caller, as it is now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MentionItem {
    pub room: RoomId,
    pub seq: Seq,
    pub ts: Millis,
    pub from: UserId,
    pub text: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<Seq>,
    /// The caller has read the room up to it (`mark_read`).
    pub read: bool,
}

/// Messages that contain `query` (ignoring case and accents): in `room`,
/// or in every room the caller is a member of; older than `before` (the
/// `next` of the page before); at most `limit` (default and most:
/// `MAX_SEARCH_PAGE`). The query is only ever text: quotes, `*`, `OR`,
/// `NOT` and parentheses are searched for as they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Search {
    pub query: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<RoomId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u16>,
}

pub const MAX_SEARCH_PAGE: u16 = 50;
/// The longest query, in characters.
pub const MAX_SEARCH_QUERY: usize = 200;

/// A page of search results. `next`, while there may be more: a page can
/// hold fewer than `limit` results (even none) and still have a `next`, as
/// each page looks at a bounded share of the messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResults {
    pub results: Vec<SearchResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Start a direct conversation with `with` (1 to `MAX_DIRECT_MEMBERS` - 1
/// members, not the caller). The same members always make the same room: if
/// it exists, the caller gets it again (and is let back in if they left it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartDirect {
    pub with: Vec<UserId>,
}

/// Most members of a direct conversation, its starter included.
pub const MAX_DIRECT_MEMBERS: usize = 10;
/// Most members one member may block.
pub const MAX_BLOCKS: usize = 1000;

/// Block `user` (`on: true`) or lift the block (`on: false`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Block {
    pub user: UserId,
    pub on: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Blocks {}

/// The members the caller blocks, by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BlockList {
    pub users: Vec<UserId>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PushKey {}

/// The server's VAPID public key: an uncompressed P-256 point, base64url
/// without padding (a browser's `applicationServerKey`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushKeyInfo {
    pub key: String,
}

/// A device's push subscription, as a browser's `PushSubscription` gives it
/// (`endpoint`, `keys.p256dh`, `keys.auth`), and whether its notifications
/// may carry the message's text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushSubscribe {
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub text: bool,
}

/// Most push subscriptions (devices) one member keeps.
pub const MAX_PUSH_DEVICES: usize = 10;
/// The longest push endpoint, in bytes.
pub const MAX_PUSH_ENDPOINT: usize = 1000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushUnsubscribe {
    pub endpoint: String,
}

/// What a member is notified of in a room while away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushLevel {
    /// Every message.
    Everything,
    /// Mentions of the member, replies to them, and (welcomers and above)
    /// the moderators' queues. A room's default; a direct conversation's is
    /// `everything`.
    Mentions,
    Nothing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetPushLevel {
    pub room: RoomId,
    pub level: PushLevel,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PushLevels {}

/// The levels a member set (rooms not listed have their default), and on
/// how many devices they get notifications.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PushLevelList {
    pub levels: Vec<RoomPushLevel>,
    pub devices: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomPushLevel {
    pub room: RoomId,
    pub level: PushLevel,
}

/// A message that contains the query, as it is now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResult {
    pub room: RoomId,
    pub seq: Seq,
    pub ts: Millis,
    pub from: UserId,
    /// The message's text cut where the query occurs: the parts at odd
    /// places (the 2nd, 4th, ...) are the matches; joined, the whole text.
    pub parts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<Seq>,
}

/// The caller's read position in each room they are a member of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadStateList {
    pub rooms: Vec<RoomRead>,
}

/// Unread messages are counted up to this many per room (`more` past it).
pub const MAX_UNREAD_COUNTED: u32 = 999;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomRead {
    pub room: RoomId,
    /// Read up to here (0: nothing read yet).
    pub seq: Seq,
    /// The room's newest event.
    pub head: Seq,
    /// Messages after `seq` from others that the caller can see, up to
    /// `MAX_UNREAD_COUNTED`.
    pub unread: u32,
    /// There are more unread than `unread` says.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub more: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Versions {
    pub room: RoomId,
    pub target: Seq,
}

/// A message's texts, the original first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionList {
    pub versions: Vec<Version>,
    /// More follow than fit in one frame (the largest a server sends): act
    /// on these, then ask again.
    #[serde(default)]
    pub more: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    pub text: Text,
    pub at: Millis,
}

/// A fresh token for the connection's own user (see `Auth`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Auth {
    pub token: String,
}

/// The connection now runs on the new token, until `expires_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Authed {
    pub user: UserId,
    pub expires_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pong {
    pub ts: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomList {
    pub rooms: Vec<RoomSummary>,
    /// More rooms follow: ask again with `after` set to the last room's name.
    #[serde(default)]
    pub more: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomSummary {
    pub room: RoomId,
    pub topic: ShortText,
    pub visibility: Visibility,
    pub members: u32,
    pub cap: u32,
    /// The caller's role, when it is a member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// A direct conversation's members as it started (visibility `direct`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub direct: Vec<UserId>,
}

/// How a `join` treats the caller's `since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResumeMode {
    /// No `since` was given: events from `head` on arrive live.
    Fresh,
    /// The events after `since` up to `head` follow this reply, in order, then live ones.
    Replay,
    /// The events after `since` are no longer all held (or the epoch changed): nothing
    /// is replayed; live events follow `head`. Use `history` to fill what is held.
    Truncated,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Joined {
    pub room: RoomInfo,
    pub role: Role,
    pub resume: ResumeMode,
    /// Pinned notes, oldest first; the room's mission is the first.
    pub pins: Vec<PinnedNote>,
    /// True when this join made the caller a member.
    #[serde(default)]
    pub first_join: bool,
}

/// A request appended an event to the timeline at `seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Appended {
    pub seq: Seq,
    pub ts: Millis,
    /// The message was held for a moderator's look (a newcomer's link, in a
    /// room with probation): `seq` is the `held` event's, and the message
    /// appears when a moderator releases it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pinned {
    pub seq: Seq,
    pub pin: PinnedNote,
}

/// A page of timeline events, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryPage {
    pub room: RoomId,
    pub epoch: Epoch,
    pub events: Vec<Event>,
    /// More events exist past this page in the direction asked for.
    pub more: bool,
    /// Oldest seq the server still holds; history before it is gone.
    pub oldest: Seq,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberList {
    pub members: Vec<MemberInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinRequestInfo {
    pub user: UserId,
    pub note: Note,
    pub at: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinRequestList {
    pub requests: Vec<JoinRequestInfo>,
    /// More follow than fit in one frame (the largest a server sends): act
    /// on these, then ask again.
    #[serde(default)]
    pub more: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invite {
    /// Give this to the newcomer: `join` with `invite`.
    pub code: String,
    /// What `revoke_invite` and the events name it by (the code is never stored).
    #[serde(default)]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u32>,
    pub uses: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModEntry {
    pub entry: u64,
    pub at: Millis,
    pub by: UserId,
    pub action: ModAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserId>,
    #[serde(default)]
    pub reason: ShortText,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Millis>,
    /// `resolve`: the reported message, and how its reports were resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Seq>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<ReportOutcome>,
    /// `warn`: what the room's escalation did with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<Escalation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModLogPage {
    pub entries: Vec<ModEntry>,
    pub more: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresenceList {
    pub online: Vec<OnlineMember>,
}

/// A member online in a room now, with their role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnlineMember {
    pub user: UserId,
    pub role: Role,
}

/// A room's health over its last `days` days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowStats {
    pub days: u16,
    pub messages: u32,
    /// Members who posted.
    pub active_members: u32,
    /// Members who joined.
    pub new_members: u32,
    /// Messages of the window that got at least one reply in their thread.
    pub threads: u32,
    pub avg_replies_per_thread: f32,
    /// Pairs of members who replied to each other more than once.
    pub repeat_interactions: u32,
    /// Median seconds until a newcomer's first post got a reply (newcomers:
    /// members who joined in the window and posted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newcomer_first_reply_secs: Option<u32>,
}

/// The room's health: the last 7 and 30 days (or the `days` asked for).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomStats {
    pub windows: Vec<WindowStats>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prompt {
    pub prompt: u64,
    pub text: Text,
    pub next_at: Millis,
    pub weekly: bool,
    /// The moderator who scheduled it; the prompt is posted in their name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<UserId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldPosts {
    pub room: RoomId,
}

/// A held message, named by its author and client message id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldPost {
    pub user: UserId,
    pub cmid: ClientMsgId,
    pub text: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<Seq>,
    pub at: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldList {
    pub held: Vec<HeldPost>,
    /// More follow than fit in one frame (the largest a server sends): act
    /// on these, then ask again.
    #[serde(default)]
    pub more: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub room: RoomId,
    pub user: UserId,
    pub cmid: ClientMsgId,
    /// true posts it; false drops it (with `reason`, logged).
    pub approve: bool,
    #[serde(default)]
    pub reason: ShortText,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prompts {
    pub room: RoomId,
}

/// The room's scheduled prompts, soonest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptList {
    pub prompts: Vec<Prompt>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub room: RoomId,
    /// The message reported.
    pub seq: Seq,
    pub category: ReportCategory,
    /// What the reporter adds, for the moderators.
    #[serde(default)]
    pub note: ShortText,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reports {
    pub room: RoomId,
}

/// An open report: the message as it was reported, who reported it and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenReport {
    /// The report's id: the seq of its `report` event.
    pub report: Seq,
    /// The message reported, its author and its text when reported.
    pub message: Seq,
    pub author: UserId,
    pub text: Text,
    /// The reporter.
    pub from: UserId,
    pub category: ReportCategory,
    #[serde(default)]
    pub note: ShortText,
    pub at: Millis,
}

/// Open reports, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportList {
    pub reports: Vec<OpenReport>,
    /// More follow than fit in one frame: resolve these, then ask again.
    #[serde(default)]
    pub more: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolveReport {
    pub room: RoomId,
    /// The reported message.
    pub seq: Seq,
    pub outcome: ReportOutcome,
    /// Logged, and the reason a warning, mute, kick or ban gives.
    #[serde(default)]
    pub reason: ShortText,
    /// For `mute` (required) and `ban` (absent: until lifted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warn {
    pub room: RoomId,
    pub user: UserId,
    pub reason: ShortText,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unwarn {
    pub room: RoomId,
    pub user: UserId,
    /// The warning's id (its `warn` event's seq).
    pub warning: Seq,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warnings {
    pub room: RoomId,
    /// Whose warnings; absent: the caller's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserId>,
}

/// One live warning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WarningInfo {
    /// Its id: the seq of its `warn` event.
    pub warning: Seq,
    pub by: UserId,
    pub at: Millis,
    /// It stops counting then; absent: until lifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Millis>,
    #[serde(default)]
    pub reason: ShortText,
}

/// A member's live warnings, oldest first, and the room's escalation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WarningList {
    pub user: UserId,
    pub warnings: Vec<WarningInfo>,
    /// The live warning that brings `warn_action` (0: none does).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub warn_limit: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_action: Option<ModAction>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lock {
    pub room: RoomId,
    pub level: LockLevel,
    /// For this long; absent: until lifted (`level: off`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Filters {
    pub room: RoomId,
}

/// Erases the caller's account. `confirm` must be the caller's own name: a
/// client that sends it by mistake erases nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EraseAccount {
    pub confirm: UserId,
}

/// What an erasure did: the rooms it went through and the messages it made
/// tombstones. Every connection of the account then closes with
/// `4011 account_disabled` (reason `erased`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Erasure {
    pub user: UserId,
    pub rooms: u32,
    pub messages: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FilterList {
    pub filters: Vec<WordFilter>,
}
