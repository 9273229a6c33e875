//! The command line: every flag and subcommand of `hearth`, and how values parse.

use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use hearth_protocol::ops::{FilterAction, LockLevel, ModAction, ReportCategory, ReportOutcome};
use hearth_protocol::{Role, RoomId, UserId};

/// A protocol word (`spam`, `self_harm`, `mute`) as the type the wire names it by.
fn wire<T: serde::de::DeserializeOwned>(word: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(word.to_string()))
        .map_err(|_| format!("{word:?} is not one of the words this takes (see --help)"))
}

#[derive(Parser)]
#[command(name = "hearth", version, about = "Hearth chat client: a chat UI with no command, script mode with one")]
pub(crate) struct Cli {
    /// Server URL [default: the profile's, else ws://127.0.0.1:7878].
    #[arg(long, env = "HEARTH_URL", global = true)]
    pub(crate) url: Option<String>,
    /// Your token (mint one with `hearth-server token NAME`) [default: the profile's].
    #[arg(long, env = "HEARTH_TOKEN", global = true, hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// Profile of the config file to use [default: its `default`].
    #[arg(long, env = "HEARTH_PROFILE", global = true)]
    pub(crate) profile: Option<String>,
    /// Wire encoding.
    #[arg(long, value_enum, default_value_t = Wire::Msgpack, global = true)]
    pub(crate) wire: Wire,
    /// For wss://: a PEM file of CA certificates to trust besides the public
    /// ones (a self-signed or private CA's).
    #[arg(long, env = "HEARTH_CA_FILE", global = true)]
    pub(crate) ca_file: Option<std::path::PathBuf>,
    /// Script mode: print JSON (one value per line) instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum RoleArg {
    Member,
    Welcomer,
    Moderator,
}

impl RoleArg {
    pub(crate) fn role(self) -> Role {
        match self {
            RoleArg::Member => Role::Member,
            RoleArg::Welcomer => Role::Welcomer,
            RoleArg::Moderator => Role::Moderator,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Wire {
    Msgpack,
    Json,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Send one message (joining the room first if needed).
    Send {
        #[arg(long)]
        room: RoomId,
        text: String,
        /// Reply in the thread of this message.
        #[arg(long)]
        thread: Option<u64>,
    },
    /// Print a room's events as they arrive; reconnects and resumes on its own.
    Tail {
        #[arg(long)]
        room: RoomId,
        /// Also print the events after this seq first.
        #[arg(long)]
        since: Option<u64>,
    },
    /// Print a room's history, oldest first.
    History {
        #[arg(long)]
        room: RoomId,
        /// Only events after this seq.
        #[arg(long)]
        after: Option<u64>,
        /// At most this many of the newest events (default: all held).
        #[arg(long)]
        last: Option<usize>,
    },
    /// List the rooms you can see.
    Rooms,
    /// Find messages containing a text (any case; not search syntax: quotes,
    /// `*`, OR and NOT are text), newest first, in your rooms or one.
    Search {
        query: String,
        #[arg(long)]
        room: Option<RoomId>,
        /// At most this many results.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Your rooms with how many messages you have not read (on any device).
    Unread,
    /// Start (or open again) a direct conversation with members you share a
    /// room with; prints its room, for `send`, `tail` and `history`.
    Dm {
        #[arg(required = true)]
        with: Vec<UserId>,
    },
    /// Block a member: no direct messages from them (the terminal UI folds
    /// their messages away).
    Block { user: UserId },
    /// Lift a block.
    Unblock { user: UserId },
    /// The members you block.
    Blocks,
    /// What you are notified of in a room while away, on the devices where
    /// the web page turned notifications on.
    Notify {
        room: RoomId,
        #[arg(value_enum)]
        level: Level,
    },
    /// Mark a room read up to its newest message (or SEQ), on every device;
    /// `--all` marks every room of yours.
    Read {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        room: Option<RoomId>,
        #[arg(long)]
        seq: Option<u64>,
        #[arg(long)]
        all: bool,
    },
    /// Create a room (you become its owner).
    Create {
        room: RoomId,
        #[arg(long, default_value = "")]
        topic: String,
        /// Member cap.
        #[arg(long)]
        cap: Option<u32>,
        #[arg(long, value_enum, default_value_t = Vis::Open)]
        visibility: Vis,
    },
    /// Become a member of a room (with an invite code, for invite-only,
    /// approval or gated rooms).
    Join {
        room: RoomId,
        #[arg(long)]
        invite: Option<String>,
    },
    /// Stop being a member of a room.
    Leave { room: RoomId },
    /// List a room's members with their roles.
    Members {
        #[arg(long)]
        room: RoomId,
    },
    /// Pin message SEQ, or a free note (moderators and owners).
    Pin {
        #[arg(long)]
        room: RoomId,
        /// The message to pin.
        #[arg(long, conflicts_with = "note")]
        seq: Option<u64>,
        /// A free note to pin instead.
        #[arg(long)]
        note: Option<String>,
        /// A title; pinning with an existing title replaces that pin (versioned rules).
        #[arg(long)]
        title: Option<String>,
    },
    /// Remove a pin by its number.
    Unpin {
        #[arg(long)]
        room: RoomId,
        pin: u64,
    },
    /// Ask to join an approval room, with your answer to its entry question.
    Request {
        room: RoomId,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// List a room's pending join requests (welcomers and above).
    Requests { room: RoomId },
    /// Approve a join request.
    Approve {
        #[arg(long)]
        room: RoomId,
        user: String,
    },
    /// Deny a join request, saying why.
    Deny {
        #[arg(long)]
        room: RoomId,
        user: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Make an invite code (welcomers and above); prints the code.
    Invite {
        room: RoomId,
        /// How long it is valid, e.g. 7d [default: a week].
        #[arg(long, value_parser = hearth_cli::words::duration_flag)]
        valid_for: Option<Duration>,
        /// How many may join with it [default: any number].
        #[arg(long)]
        uses: Option<u32>,
    },
    /// Revoke an invite, by its code or its id.
    RevokeInvite {
        #[arg(long)]
        room: RoomId,
        code: String,
    },
    /// Give a member a role (moderators give welcomer, owners moderator).
    Role {
        #[arg(long)]
        room: RoomId,
        user: String,
        #[arg(value_enum)]
        role: RoleArg,
        /// For this long only, e.g. 7d.
        #[arg(long, value_parser = hearth_cli::words::duration_flag)]
        r#for: Option<Duration>,
        /// A title shown beside the name ("topic lead"); "" removes it.
        #[arg(long)]
        title: Option<String>,
    },
    /// Remove a member (they may join again).
    Kick {
        #[arg(long)]
        room: RoomId,
        user: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Remove a member and keep them out, for a time or until lifted.
    Ban {
        #[arg(long)]
        room: RoomId,
        user: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long, value_parser = hearth_cli::words::duration_flag)]
        r#for: Option<Duration>,
    },
    /// Lift a ban.
    Unban {
        #[arg(long)]
        room: RoomId,
        user: String,
    },
    /// Stop a member posting for a time.
    Mute {
        #[arg(long)]
        room: RoomId,
        user: String,
        #[arg(long, value_parser = hearth_cli::words::duration_flag)]
        r#for: Duration,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Lift a mute.
    Unmute {
        #[arg(long)]
        room: RoomId,
        user: String,
    },
    /// The room's moderation log, newest first (moderators).
    Modlog { room: RoomId },
    /// Report a message to the room's welcomers and moderators.
    Report {
        #[arg(long)]
        room: RoomId,
        seq: u64,
        /// spam, harassment, hate, sexual, violence, self_harm, off_topic or other.
        #[arg(long, value_parser = wire::<ReportCategory>, default_value = "other")]
        category: ReportCategory,
        /// What the moderators should know.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// The open reports (welcomers and moderators see the room's; others their own).
    Reports { room: RoomId },
    /// Resolve the reports on a message: dismiss, or delete, warn, mute, kick or ban.
    Resolve {
        #[arg(long)]
        room: RoomId,
        /// The reported message.
        seq: u64,
        #[arg(value_parser = wire::<ReportOutcome>)]
        outcome: ReportOutcome,
        #[arg(long, default_value = "")]
        reason: String,
        /// How long a mute (required) or a ban holds, e.g. 1h.
        #[arg(long, value_parser = hearth_cli::words::duration_flag)]
        r#for: Option<Duration>,
    },
    /// Warn a member, saying why (moderators).
    Warn {
        #[arg(long)]
        room: RoomId,
        user: String,
        #[arg(long)]
        reason: String,
    },
    /// Lift one of a member's warnings by its number (moderators).
    Unwarn {
        #[arg(long)]
        room: RoomId,
        user: String,
        warning: u64,
    },
    /// Lock a room down — joins (no new members) or read_only (only
    /// moderators post) — for a time, or lift it with off (moderators).
    Lockdown {
        room: RoomId,
        #[arg(value_parser = wire::<LockLevel>)]
        level: LockLevel,
        /// For this long, e.g. 2h; without it, until lifted.
        #[arg(long, value_parser = hearth_cli::words::duration_flag)]
        r#for: Option<Duration>,
    },
    /// Export a room you own (JSON Lines, or --html a page to keep), or with
    /// --mine your own data (JSON), to standard output or --output FILE.
    Export {
        room: Option<RoomId>,
        #[arg(long)]
        html: bool,
        #[arg(long, conflicts_with = "room")]
        mine: bool,
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
    /// Erase your account for good: every message you wrote becomes a
    /// tombstone, your reactions, read state and devices go, and the name
    /// can never sign in again. Asks for your name again with --confirm.
    EraseAccount {
        #[arg(long)]
        confirm: String,
    },
    /// The room's word filter, numbered (moderators).
    Filters { room: RoomId },
    /// Add a rule to the room's word filter (moderators).
    FilterAdd {
        #[arg(long)]
        room: RoomId,
        /// A phrase (whole words, any case), or with --regex a pattern.
        pattern: String,
        /// hold (for a moderator's look) or refuse.
        #[arg(long, value_parser = wire::<FilterAction>)]
        action: FilterAction,
        #[arg(long)]
        regex: bool,
        /// What the author reads when refused.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Remove rule N (from `hearth filters`) of the room's word filter.
    FilterRemove {
        #[arg(long)]
        room: RoomId,
        number: usize,
    },
    /// A member's live warnings: yours, or (moderators) anyone's.
    Warnings { room: RoomId, user: Option<String> },
    /// Change a room's settings (only those given).
    Set {
        room: RoomId,
        #[arg(long)]
        topic: Option<String>,
        #[arg(long, value_enum)]
        visibility: Option<Vis>,
        #[arg(long)]
        cap: Option<u32>,
        /// Seconds between one member's messages (0: off).
        #[arg(long)]
        slow_mode: Option<u32>,
        /// Shown to new members on their first join.
        #[arg(long)]
        welcome: Option<String>,
        /// Whether members must acknowledge the pinned Rules before posting.
        #[arg(long)]
        rules_ack: Option<bool>,
        /// How long new members stay on probation (links held for a look,
        /// stricter slow mode), e.g. 3d; 0s turns it off.
        #[arg(long, value_parser = hearth_cli::words::duration_flag)]
        probation: Option<Duration>,
        /// Or until their Nth post (within their first week); 0 turns it off.
        #[arg(long)]
        probation_posts: Option<u32>,
        /// Only members holding this role (in --lobby, if set) may join; member lifts it.
        #[arg(long, value_enum)]
        require_role: Option<RoleArg>,
        /// The lobby room where --require-role must be held; "" lifts it.
        #[arg(long)]
        lobby: Option<String>,
        /// Days a warning counts (0: until lifted).
        #[arg(long)]
        warn_expiry_days: Option<u32>,
        /// The live warning that brings --warn-action (0: none).
        #[arg(long)]
        warn_limit: Option<u32>,
        /// mute, kick or ban.
        #[arg(long, value_parser = wire::<ModAction>)]
        warn_action: Option<ModAction>,
        /// How long the warn action's mute or ban holds, e.g. 1d; 0s: until lifted.
        #[arg(long, value_parser = hearth_cli::words::duration_flag)]
        warn_action_for: Option<Duration>,
        /// Raid detection: this many joins or requests within --raid-within
        /// lock new members out (0: off).
        #[arg(long)]
        raid_joins: Option<u32>,
        #[arg(long, value_parser = hearth_cli::words::duration_flag)]
        raid_within: Option<Duration>,
        /// How long a raid's lockdown lasts, e.g. 1h.
        #[arg(long, value_parser = hearth_cli::words::duration_flag)]
        raid_lock_for: Option<Duration>,
        /// When a member erases their account, keep what they wrote here,
        /// shown as from a former member (true), or make it deleted
        /// placeholders (false, the default). The owner's choice.
        #[arg(long)]
        keep_erased: Option<bool>,
    },
    /// Edit one of your messages.
    Edit {
        #[arg(long)]
        room: RoomId,
        seq: u64,
        text: String,
    },
    /// Delete a message (yours, or any as a moderator).
    Delete {
        #[arg(long)]
        room: RoomId,
        seq: u64,
    },
    /// React to a message (again with --off to take it back).
    React {
        #[arg(long)]
        room: RoomId,
        seq: u64,
        emoji: String,
        #[arg(long)]
        off: bool,
    },
    /// Print a thread: its root message, then the replies.
    Thread {
        #[arg(long)]
        room: RoomId,
        root: u64,
    },
    /// Acknowledge a room's pinned Rules (rooms that ask it).
    AckRules { room: RoomId },
    /// Set the order of a room's pinned notes, by note id (moderators).
    OrderPins {
        #[arg(long)]
        room: RoomId,
        notes: Vec<u64>,
    },
    /// Who is online in a room now.
    Online { room: RoomId },
    /// Schedule a post the server makes, once or weekly (moderators).
    Prompt {
        #[arg(long)]
        room: RoomId,
        text: String,
        /// When, from now, e.g. 2h or 3d.
        #[arg(long = "in", value_parser = hearth_cli::words::duration_flag)]
        after: Duration,
        #[arg(long)]
        weekly: bool,
    },
    /// List a room's scheduled prompts (moderators).
    Prompts { room: RoomId },
    /// Cancel a scheduled prompt by its number.
    CancelPrompt {
        #[arg(long)]
        room: RoomId,
        prompt: u64,
    },
    /// Newcomers' messages held for a look (moderators).
    Held { room: RoomId },
    /// Post a held message in its author's name, or drop it with --drop.
    Release {
        #[arg(long)]
        room: RoomId,
        user: String,
        /// The held message's client id (from `hearth held`).
        cmid: String,
        #[arg(long)]
        drop: bool,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// The room's health over the last 7 and 30 days (moderators).
    Stats {
        room: RoomId,
        /// One window of this many days instead.
        #[arg(long)]
        days: Option<u16>,
    },
    /// Log in and store the server and token as a profile of the config file.
    /// With --name, with that account's password (asked for, or a line on
    /// standard input with --password-stdin); without, a token the operator
    /// minted (from --token, HEARTH_TOKEN, or a line on standard input).
    Login {
        /// The profile to write (and make the default if there is none).
        #[arg(long = "as", default_value = "default")]
        name: String,
        /// Your account's name.
        #[arg(long = "name", id = "account")]
        account: Option<String>,
        /// Read the password from standard input instead of the terminal.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Register an account on the server (with the operator's invite code,
    /// unless the server's registration is open), then log in as `login` does.
    Register {
        /// The name to register (1–32 of A-Z a-z 0-9 _ . -).
        account: String,
        /// The invite code the operator gave you.
        #[arg(long)]
        invite: Option<String>,
        /// The profile to write.
        #[arg(long = "as", default_value = "default")]
        name: String,
        /// Read the password from standard input instead of the terminal.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change the password of the profile's account (asks for the current one
    /// and the new one; with --password-stdin, two lines). Other sessions of
    /// the account are signed out.
    Passwd {
        /// Read both passwords from standard input, one per line.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Level {
    /// Every message.
    Everything,
    /// Mentions of you, replies to you, and (welcomers) waiting requests.
    Mentions,
    Nothing,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Vis {
    Open,
    Approval,
    InviteOnly,
}
