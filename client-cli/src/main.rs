//! `hearth`: the Hearth chat client. With no command it opens the full-screen
//! UI (`hearth_cli::tui`); with one, it does that one thing and exits (script
//! mode), printing text or, with `--json`, one JSON value per line. The exit
//! code tells success from each class of failure (see [`Exit`]).

use std::io::BufRead;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use hearth_cli::account::{AccountApi, AccountError, Keeper, Tokens};
use hearth_cli::profile::{self, ConfigFile, Profile};
use hearth_cli::{Client, ClientError, Options, render};
use hearth_protocol::ops::Stats as StatsOp;
use hearth_protocol::ops::{
    AckRules, AddPin, Appended, Ban, CreateInvite, CreateRoom, DecideJoin, Delete, Edit, History, Join, JoinRequests,
    Kick, Leave, Members, ModLog, Mute, OrderPins, Presence, React, RemovePin, RequestJoin, RevokeInvite, RoomSettings,
    SetRole, SetRoom, ThreadHistory, Unban, Unmute, Visibility,
};
use hearth_protocol::ops::{CancelPrompt, HeldPosts, Prompts, Release, SchedulePrompt};
use hearth_protocol::{
    CloseCode, Codec, Emoji, ErrorCode, Event, Millis, Note, PinId, Role, RoomId, Seq, ShortText, Text, UserId,
};

#[derive(Parser)]
#[command(name = "hearth", version, about = "Hearth chat client: a chat UI with no command, script mode with one")]
struct Cli {
    /// Server URL [default: the profile's, else ws://127.0.0.1:7878].
    #[arg(long, env = "HEARTH_URL", global = true)]
    url: Option<String>,
    /// Your token (mint one with `hearth-server token NAME`) [default: the profile's].
    #[arg(long, env = "HEARTH_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// Profile of the config file to use [default: its `default`].
    #[arg(long, env = "HEARTH_PROFILE", global = true)]
    profile: Option<String>,
    /// Wire encoding.
    #[arg(long, value_enum, default_value_t = Wire::Msgpack, global = true)]
    wire: Wire,
    /// For wss://: a PEM file of CA certificates to trust besides the public
    /// ones (a self-signed or private CA's).
    #[arg(long, env = "HEARTH_CA_FILE", global = true)]
    ca_file: Option<std::path::PathBuf>,
    /// Script mode: print JSON (one value per line) instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Member,
    Welcomer,
    Moderator,
}

impl RoleArg {
    fn role(self) -> Role {
        match self {
            RoleArg::Member => Role::Member,
            RoleArg::Welcomer => Role::Welcomer,
            RoleArg::Moderator => Role::Moderator,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Wire {
    Msgpack,
    Json,
}

#[derive(Subcommand)]
enum Command {
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
        #[arg(long, value_parser = humantime::parse_duration)]
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
        #[arg(long, value_parser = humantime::parse_duration)]
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
        #[arg(long, value_parser = humantime::parse_duration)]
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
        #[arg(long, value_parser = humantime::parse_duration)]
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
        #[arg(long, value_parser = humantime::parse_duration)]
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
        #[arg(long = "in", value_parser = humantime::parse_duration)]
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
enum Vis {
    Open,
    Approval,
    InviteOnly,
}

/// Exit codes, one per class of failure, so scripts can tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    /// Something else failed (a bad argument the server refused, a bug).
    Other = 1,
    /// Bad usage or configuration: no token, an unknown profile (clap's own
    /// usage errors exit with 2 too).
    Usage = 2,
    /// The server could not be reached, or the connection was lost.
    Unreachable = 3,
    /// The token was refused or has expired.
    Unauthorized = 4,
    /// No such room, message or pin.
    NotFound = 5,
    /// Not allowed: not a member, not the right role, banned, muted.
    Forbidden = 6,
    /// Try again later: rate limits, slow mode, a full room, an overloaded server.
    Later = 7,
}

impl Exit {
    fn of(error: &anyhow::Error) -> Exit {
        if let Some(AccountFailure(exit, _)) = error.chain().find_map(|e| e.downcast_ref::<AccountFailure>()) {
            return *exit;
        }
        let Some(client) = error.chain().find_map(|e| e.downcast_ref::<ClientError>()) else {
            return if error.chain().any(|e| e.downcast_ref::<UsageError>().is_some()) {
                Exit::Usage
            } else {
                Exit::Other
            };
        };
        match client {
            ClientError::Connect(_) | ClientError::Timeout(_) => Exit::Unreachable,
            ClientError::Closed(close) => match close.as_ref().and_then(|c| c.hearth_code()) {
                Some(CloseCode::Unauthorized | CloseCode::TokenExpired | CloseCode::AccountDisabled) => {
                    Exit::Unauthorized
                }
                _ => Exit::Unreachable,
            },
            ClientError::Setup(_) => Exit::Usage,
            ClientError::Decode(_) => Exit::Other,
            ClientError::Server(body) => match body.code {
                ErrorCode::NotFound | ErrorCode::NoSuchTarget => Exit::NotFound,
                ErrorCode::NotMember
                | ErrorCode::Forbidden
                | ErrorCode::Banned
                | ErrorCode::Muted
                | ErrorCode::ApprovalRequired
                | ErrorCode::InviteRequired
                | ErrorCode::InvalidInvite => Exit::Forbidden,
                ErrorCode::RateLimited
                | ErrorCode::SlowMode
                | ErrorCode::Overloaded
                | ErrorCode::RoomFull
                | ErrorCode::LimitReached => Exit::Later,
                _ => Exit::Other,
            },
        }
    }
}

/// A mistake in how `hearth` was asked to run (not the server's answer).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("hearth: cannot start: {error}");
            return ExitCode::from(Exit::Other as u8);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hearth: {}", explain(&error));
            ExitCode::from(Exit::of(&error) as u8)
        }
    }
}

/// The error and its causes on one line, each said once (an I/O error tends
/// to repeat its cause in its own message).
fn explain(error: &anyhow::Error) -> String {
    let mut said = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if said.contains(&text) {
            continue;
        }
        if !said.is_empty() {
            said.push_str(": ");
        }
        said.push_str(&text);
    }
    said
}

/// What to connect with: flags and environment first, then the profile.
struct Resolved {
    url: String,
    token: Option<String>,
    /// The login behind the token, when it came from a profile holding one.
    keeper: Option<Keeper>,
}

/// The server and token to use: flags and environment first, then the profile.
fn resolve(cli: &Cli) -> Result<Resolved> {
    let path = profile::path();
    let config = match &path {
        Some(path) => ConfigFile::load(path).map_err(|e| usage(format!("{e:#}")))?,
        None => ConfigFile::default(),
    };
    let chosen = config.profile(cli.profile.as_deref()).map_err(|e| usage(e.to_string()))?;
    let url = cli.url.clone().or_else(|| chosen.map(|p| p.url.clone())).unwrap_or_else(|| "ws://127.0.0.1:7878".into());
    let token = cli.token.clone().or_else(|| chosen.map(|p| p.token.clone()));
    let profile_name = cli.profile.clone().or(config.default.clone());
    // A token given on the command line is used as it is.
    let keeper = match (cli.token.is_none(), chosen.and_then(Profile::tokens), path, profile_name) {
        (true, Some(tokens), Some(path), Some(name)) => {
            let api = AccountApi::new(url.clone(), cli.ca_file.clone());
            Some(Keeper::new(api, tokens, Some((path, name))))
        }
        _ => None,
    };
    Ok(Resolved { url, token, keeper })
}

/// A password from the terminal (not echoed), or a line of standard input.
fn read_password(prompt: &str, from_stdin: bool) -> Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("reading the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        rpassword::prompt_password(prompt).context("reading the password (or pass --password-stdin)")?
    };
    if password.is_empty() {
        return Err(usage("no password given"));
    }
    Ok(password)
}

/// Writes a login's tokens as profile `name` (the default if there is none).
fn save_login(url: &str, tokens: &Tokens, name: &str) -> Result<std::path::PathBuf> {
    let path = profile::path().ok_or_else(|| usage("no config directory here; set HEARTH_CONFIG to a file path"))?;
    let mut config = ConfigFile::load(&path)?;
    config.profiles.insert(name.to_string(), Profile::from_login(url, tokens));
    if config.default.is_none() {
        config.default = Some(name.to_string());
    }
    config.save(&path)?;
    Ok(path)
}

/// The account commands: register, log in with a password, change it.
async fn account_command(cli: &Cli, resolved: &Resolved, command: &Command) -> Result<()> {
    let api = AccountApi::new(resolved.url.clone(), cli.ca_file.clone());
    let url = &resolved.url;
    match command {
        Command::Register { account, invite, name, password_stdin } => {
            let password = read_password("choose a password: ", *password_stdin)?;
            if !password_stdin && read_password("the same again: ", false)? != password {
                return Err(usage("the two passwords differ; nothing was registered"));
            }
            let tokens = api.register(account, &password, invite.as_deref()).await.map_err(refused)?;
            let path = save_login(url, &tokens, name)?;
            println!("registered {} at {url}; logged in, saved as profile {name:?} in {}", tokens.user, path.display());
        }
        Command::Login { name, account: Some(account), password_stdin } => {
            let password = read_password(&format!("password for {account}: "), *password_stdin)?;
            let tokens = api.login(account, &password).await.map_err(refused)?;
            let path = save_login(url, &tokens, name)?;
            println!("logged in to {url} as {}; saved as profile {name:?} in {}", tokens.user, path.display());
        }
        Command::Passwd { password_stdin } => {
            let Some(user) = resolved.keeper.as_ref().map(|k| k.user().to_string()) else {
                return Err(usage("this profile holds no account login; log in with `hearth login --name NAME` first"));
            };
            let password = read_password(&format!("current password for {user}: "), *password_stdin)?;
            let new_password = read_password("new password: ", *password_stdin)?;
            if !password_stdin && read_password("the same again: ", false)? != new_password {
                return Err(usage("the two new passwords differ; nothing was changed"));
            }
            let tokens = api.change_password(&user, &password, &new_password).await.map_err(refused)?;
            let name = cli
                .profile
                .clone()
                .or_else(|| profile::path().and_then(|p| ConfigFile::load(&p).ok()).and_then(|c| c.default));
            let path = save_login(url, &tokens, name.as_deref().unwrap_or("default"))?;
            println!("password changed for {user}; other sessions are signed out; saved in {}", path.display());
        }
        _ => unreachable!("only account commands come here"),
    }
    Ok(())
}

/// An account refusal as an error whose exit code says what kind it is.
fn refused(error: AccountError) -> anyhow::Error {
    match &error {
        AccountError::Unreachable(_) => anyhow::Error::new(AccountFailure(Exit::Unreachable, error.to_string())),
        AccountError::Refused { status, .. } => {
            let exit = match status {
                400 => Exit::Usage,
                401 => Exit::Unauthorized,
                403 | 409 => Exit::Forbidden,
                429 | 503 => Exit::Later,
                _ => Exit::Other,
            };
            anyhow::Error::new(AccountFailure(exit, error.to_string()))
        }
    }
}

/// A failed account request, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
#[error("{1}")]
struct AccountFailure(Exit, String);

async fn run(cli: Cli) -> Result<()> {
    let mut resolved = resolve(&cli)?;
    let codec = match cli.wire {
        Wire::Msgpack => Codec::MsgPack,
        Wire::Json => Codec::Json,
    };
    match &cli.command {
        Some(
            command @ (Command::Register { .. } | Command::Passwd { .. } | Command::Login { account: Some(_), .. }),
        ) => {
            return account_command(&cli, &resolved, command).await;
        }
        Some(Command::Login { name, account: None, .. }) => {
            return login(&resolved.url, resolved.token.clone(), codec, cli.ca_file.clone(), name).await;
        }
        _ => {}
    }
    // A login's token that expired (or nearly) while hearth was not running.
    if let Some(keeper) = resolved.keeper.as_mut().filter(|k| k.refresh_in() < Duration::from_secs(5)) {
        let token = keeper.refresh().await.map_err(|e| match e.code() {
            Some("signed_out" | "account_disabled" | "unauthorized" | "token_expired") => anyhow::Error::new(
                AccountFailure(Exit::Unauthorized, format!("{e}; log in again with `hearth login --name NAME`")),
            ),
            _ => refused(e),
        })?;
        resolved.token = Some(token);
    }
    let Resolved { url, token, keeper } = resolved;
    let token = token.ok_or_else(|| {
        usage("no token: log in with `hearth login --name NAME` (or `hearth register`), pass --token, or set HEARTH_TOKEN")
    })?;
    let mut options = Options::new(url.clone(), token, codec);
    options.ca_file = cli.ca_file.clone();
    let Some(command) = cli.command else {
        return hearth_cli::tui::run(options, keeper).await;
    };
    let mut client = Client::connect(options).await.with_context(|| format!("connecting to {url}"))?;
    let json = cli.json;
    match command {
        Command::Send { room, text, thread } => {
            client.join(&room).await?;
            let text = hearth_protocol::Text::new(text).map_err(usage)?;
            let cmid = client.new_cmid();
            // Retried with the same cmid while the server says to (a cluster's
            // Redis in trouble): stored once, whatever happened to a try.
            let sent = client
                .send_reliably(hearth_protocol::ops::SendMessage {
                    room: room.clone(),
                    text,
                    cmid,
                    thread: thread.map(Seq),
                })
                .await?;
            if json {
                print_json(&sent);
            } else if sent.held {
                println!(
                    "held #{} for a moderator's look before it shows in {room} (a newcomer's links are)",
                    sent.seq
                );
            } else {
                println!("sent #{} to {room}", sent.seq);
            }
        }
        Command::Rooms => {
            let rooms = client.rooms_all().await?;
            if json {
                rooms.iter().for_each(print_json);
            } else if rooms.is_empty() {
                println!("no rooms yet; make one with `hearth create NAME`");
            }
            for r in rooms.iter().filter(|_| !json) {
                let role = r.role.map(|r| r.as_str()).unwrap_or("-");
                println!(
                    "{:<24} {:>3}/{:<4} {:<11} {:<9} {}",
                    r.room,
                    r.members,
                    r.cap,
                    visibility(r.visibility),
                    role,
                    // Topics are other people's text too.
                    render::printable(r.topic.as_str())
                );
            }
        }
        Command::Create { room, topic, cap, visibility } => {
            let topic = ShortText::new(topic).map_err(usage)?;
            let visibility = match visibility {
                Vis::Open => Visibility::Open,
                Vis::Approval => Visibility::Approval,
                Vis::InviteOnly => Visibility::InviteOnly,
            };
            let info = client.request(CreateRoom { room, topic, cap, visibility }).await?;
            if json {
                print_json(&info);
            } else {
                println!("created {} (cap {}, {})", info.room, info.cap, self::visibility(info.visibility));
            }
        }
        Command::Join { room, invite: Some(code) } => {
            let joined = client.request(Join { room: room.clone(), since: None, invite: Some(code) }).await?;
            if json {
                print_json(&joined);
            } else {
                println!("joined {room} with an invite ({} members)", joined.room.members);
            }
        }
        Command::Join { room, invite: None } => {
            let joined = client.join(&room).await?;
            if json {
                print_json(&joined);
            } else {
                let how = if joined.first_join { "joined" } else { "already a member of" };
                println!("{how} {room} as {} ({} members)", joined.role.as_str(), joined.room.members);
            }
        }
        Command::Leave { room } => {
            client.request(Leave { room: room.clone() }).await?;
            if !json {
                println!("left {room}");
            }
        }
        Command::Members { room } => {
            let list = client.request(Members { room }).await?;
            for m in &list.members {
                if json {
                    print_json(m);
                } else {
                    let notes = render::member_notes(m, Millis(now_ms()));
                    let online = if m.online { "online" } else { "" };
                    println!("{:<24} {:<10} {online:<7} {notes}", m.user, m.role.as_str());
                }
            }
        }
        Command::Pin { room, seq, note, title } => {
            if seq.is_none() && note.is_none() {
                return Err(usage("pin what? give --seq SEQ or --note TEXT"));
            }
            let note = note.map(Note::new).transpose().map_err(usage)?;
            let title = title.map(ShortText::new).transpose().map_err(usage)?;
            let pinned = client.request(AddPin { room, seq: seq.map(Seq), note, title, edit: None }).await?;
            if json {
                print_json(&pinned);
            } else {
                println!("pinned #{}: {}", pinned.pin.pin.0, render::printable(pinned.pin.text.as_str()));
            }
        }
        Command::Unpin { room, pin } => {
            client.request(RemovePin { room, pin: PinId(pin) }).await?;
            if !json {
                println!("unpinned #{pin}");
            }
        }
        Command::History { room, after, last } => history(&mut client, room, after, last, json).await?,
        Command::Tail { room, since } => tail(client, room, since, json, keeper).await?,
        Command::Login { .. } | Command::Register { .. } | Command::Passwd { .. } => unreachable!("handled above"),
        command => community(&mut client, command, json).await?,
    }
    Ok(())
}

/// Says what a community request did: its event's seq, or the reply as JSON.
fn done(what: &str, appended: &Appended, json: bool) {
    if json {
        print_json(appended);
    } else {
        println!("{what} (#{})", appended.seq);
    }
}

fn short(text: String) -> Result<ShortText> {
    ShortText::new(text).map_err(usage)
}

fn name(text: &str) -> Result<UserId> {
    UserId::new(text).map_err(usage)
}

/// The community tools, a subcommand each.
async fn community(client: &mut Client, command: Command, json: bool) -> Result<()> {
    match command {
        Command::Request { room, note } => {
            client.request(RequestJoin { room: room.clone(), note: Note::new(note).map_err(usage)? }).await?;
            if !json {
                println!("asked to join {room}; you will be told when a welcomer decides");
            }
        }
        Command::Requests { room } => {
            let list = client.request(JoinRequests { room }).await?;
            for r in &list.requests {
                if json {
                    print_json(r);
                } else {
                    println!("{:<24} {}", r.user, render::printable(r.note.as_str()));
                }
            }
        }
        Command::Approve { room, user } => {
            let user = name(&user)?;
            client
                .request(DecideJoin { room, user: user.clone(), approve: true, reason: ShortText::default() })
                .await?;
            if !json {
                println!("approved {user}");
            }
        }
        Command::Deny { room, user, reason } => {
            let user = name(&user)?;
            client.request(DecideJoin { room, user: user.clone(), approve: false, reason: short(reason)? }).await?;
            if !json {
                println!("denied {user}");
            }
        }
        Command::Invite { room, valid_for, uses } => {
            let ttl_secs = valid_for.map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
            let invite = client.request(CreateInvite { room: room.clone(), ttl_secs, max_uses: uses }).await?;
            if json {
                print_json(&invite);
            } else {
                println!("{}", invite.code);
                eprintln!("an invite to {room} (id {}); join with `hearth join {room} --invite CODE`", invite.id);
            }
        }
        Command::RevokeInvite { room, code } => {
            client.request(RevokeInvite { room, code }).await?;
            if !json {
                println!("revoked");
            }
        }
        Command::Role { room, user, role, r#for, title } => {
            let role = role.role();
            let expires_at = r#for.map(|d| Millis(now_ms() + d.as_millis() as u64));
            let title = title.map(short).transpose()?;
            let done_ = client.request(SetRole { room, user: name(&user)?, role, expires_at, title }).await?;
            done(&format!("{user} is now a {}", role.as_str()), &done_, json);
        }
        Command::Kick { room, user, reason } => {
            let done_ = client.request(Kick { room, user: name(&user)?, reason: short(reason)? }).await?;
            done(&format!("kicked {user}"), &done_, json);
        }
        Command::Ban { room, user, reason, r#for } => {
            let duration_secs = r#for.map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
            let done_ = client.request(Ban { room, user: name(&user)?, reason: short(reason)?, duration_secs }).await?;
            done(&format!("banned {user}"), &done_, json);
        }
        Command::Unban { room, user } => {
            let done_ = client.request(Unban { room, user: name(&user)? }).await?;
            done(&format!("unbanned {user}"), &done_, json);
        }
        Command::Mute { room, user, r#for, reason } => {
            let duration_secs = u32::try_from(r#for.as_secs()).unwrap_or(u32::MAX);
            let done_ =
                client.request(Mute { room, user: name(&user)?, duration_secs, reason: short(reason)? }).await?;
            done(&format!("muted {user}"), &done_, json);
        }
        Command::Unmute { room, user } => {
            let done_ = client.request(Unmute { room, user: name(&user)? }).await?;
            done(&format!("unmuted {user}"), &done_, json);
        }
        Command::Modlog { room } => {
            let log = client.request(ModLog { room, before: None, limit: Some(100) }).await?;
            for e in &log.entries {
                if json {
                    print_json(e);
                } else {
                    let whom = e.user.as_ref().map(|u| format!(" {u}")).unwrap_or_default();
                    println!(
                        "#{:<6} {:<10} {:?}{whom} {}",
                        e.entry,
                        e.by,
                        e.action,
                        render::printable(e.reason.as_str())
                    );
                }
            }
        }
        Command::Set {
            room,
            topic,
            visibility,
            cap,
            slow_mode,
            welcome,
            rules_ack,
            probation,
            probation_posts,
            require_role,
            lobby,
        } => {
            let settings = RoomSettings {
                topic: topic.map(short).transpose()?,
                visibility: visibility.map(|v| match v {
                    Vis::Open => Visibility::Open,
                    Vis::Approval => Visibility::Approval,
                    Vis::InviteOnly => Visibility::InviteOnly,
                }),
                cap,
                slow_mode_secs: slow_mode,
                welcome: welcome.map(short).transpose()?,
                rules_ack,
                probation_secs: probation.map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX)),
                probation_posts,
                required_role: require_role.map(RoleArg::role),
                parent: lobby.map(short).transpose()?,
                ..RoomSettings::default()
            };
            let done_ = client.request(SetRoom { room: room.clone(), settings }).await?;
            done(&format!("updated {room}"), &done_, json);
        }
        Command::Edit { room, seq, text } => {
            let text = Text::new(text).map_err(usage)?;
            let done_ = client.request(Edit { room, target: Seq(seq), text }).await?;
            done(&format!("edited #{seq}"), &done_, json);
        }
        Command::Delete { room, seq } => {
            let done_ = client.request(Delete { room, target: Seq(seq) }).await?;
            done(&format!("deleted #{seq}"), &done_, json);
        }
        Command::React { room, seq, emoji, off } => {
            let emoji = Emoji::new(emoji).map_err(usage)?;
            let done_ = client.request(React { room, target: Seq(seq), emoji, on: !off }).await?;
            done(if off { "reaction taken back" } else { "reacted" }, &done_, json);
        }
        Command::Thread { room, root } => {
            let page = client.request(ThreadHistory { room, root: Seq(root), after: None, limit: Some(100) }).await?;
            page.events.iter().for_each(|e| print_event(e, json));
        }
        Command::AckRules { room } => {
            let joined = client.join(&room).await?;
            let rules =
                joined.pins.iter().find(|p| p.title.as_ref().is_some_and(|t| t.as_str().eq_ignore_ascii_case("rules")));
            let Some(rules) = rules else { return Err(usage(format!("room {room} has no pinned Rules"))) };
            if !json {
                println!("{}", render::printable(rules.text.as_str()));
            }
            let done_ = client.request(AckRules { room, version: rules.version }).await?;
            done(&format!("acknowledged the rules, version {}", rules.version), &done_, json);
        }
        Command::OrderPins { room, notes } => {
            let done_ = client.request(OrderPins { room, notes: notes.into_iter().map(PinId).collect() }).await?;
            done("pins ordered", &done_, json);
        }
        Command::Online { room } => {
            let list = client.request(Presence { room }).await?;
            for m in &list.online {
                if json {
                    print_json(m);
                } else {
                    println!("{:<24} {}", m.user, m.role.as_str());
                }
            }
        }
        Command::Prompt { room, text, after, weekly } => {
            let text = Text::new(text).map_err(usage)?;
            let at = Millis(now_ms() + after.as_millis() as u64);
            let prompt = client.request(SchedulePrompt { room, text, at, weekly }).await?;
            if json {
                print_json(&prompt);
            } else {
                println!("prompt {} scheduled{}", prompt.prompt, if weekly { ", weekly" } else { "" });
            }
        }
        Command::Prompts { room } => {
            let list = client.request(Prompts { room }).await?;
            for p in &list.prompts {
                if json {
                    print_json(p);
                } else {
                    let every = if p.weekly { "weekly" } else { "once" };
                    println!(
                        "{:<18} {every:<6} next at {} {}",
                        p.prompt,
                        p.next_at.0,
                        render::printable(p.text.as_str())
                    );
                }
            }
        }
        Command::CancelPrompt { room, prompt } => {
            client.request(CancelPrompt { room, prompt }).await?;
            if !json {
                println!("cancelled prompt {prompt}");
            }
        }
        Command::Held { room } => {
            let list = client.request(HeldPosts { room }).await?;
            for h in &list.held {
                if json {
                    print_json(h);
                } else {
                    println!("{:<20} {:<20} {}", h.user, h.cmid.as_str(), render::printable(h.text.as_str()));
                }
            }
        }
        Command::Release { room, user, cmid, drop, reason } => {
            let cmid = hearth_protocol::ClientMsgId::new(cmid).map_err(usage)?;
            let args = Release { room, user: name(&user)?, cmid, approve: !drop, reason: short(reason)? };
            let done_ = client.request(args).await?;
            done(if drop { "dropped" } else { "released" }, &done_, json);
        }
        Command::Stats { room, days } => {
            let stats = client.request(StatsOp { room, days }).await?;
            for w in &stats.windows {
                if json {
                    print_json(w);
                    continue;
                }
                let wait = w.newcomer_first_reply_secs.map_or("-".to_string(), |s| format!("{} min", s / 60));
                println!(
                    "last {:>2} days: {} messages by {} members, {} new; {} threads, {:.1} replies each; {} pairs talking again; a newcomer's first post answered in {wait}",
                    w.days,
                    w.messages,
                    w.active_members,
                    w.new_members,
                    w.threads,
                    w.avg_replies_per_thread,
                    w.repeat_interactions
                );
            }
        }
        _ => unreachable!("the other commands are handled in run"),
    }
    Ok(())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Checks `url` and `token` by connecting, then stores them as profile `name`.
async fn login(
    url: &str,
    token: Option<String>,
    codec: Codec,
    ca_file: Option<std::path::PathBuf>,
    name: &str,
) -> Result<()> {
    let token = match token {
        Some(token) => token,
        None => {
            eprintln!("paste your token and press Enter:");
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).context("reading the token")?;
            line.trim().to_string()
        }
    };
    if token.is_empty() {
        return Err(usage("no token given"));
    }
    let mut options = Options::new(url, token.clone(), codec);
    options.ca_file = ca_file;
    let client = Client::connect(options).await.with_context(|| format!("checking the token against {url}"))?;
    let user = client.hello().user.clone();
    let path = profile::path().ok_or_else(|| usage("no config directory here; set HEARTH_CONFIG to a file path"))?;
    let mut config = ConfigFile::load(&path)?;
    config.profiles.insert(name.to_string(), Profile::with_token(url, token));
    if config.default.is_none() {
        config.default = Some(name.to_string());
    }
    config.save(&path)?;
    println!("logged in to {url} as {user}; saved as profile {name:?} in {}", path.display());
    Ok(())
}

fn visibility(v: Visibility) -> &'static str {
    match v {
        Visibility::Open => "open",
        Visibility::Approval => "approval",
        Visibility::InviteOnly => "invite-only",
    }
}

/// Prints the room's events until the membership ends; reconnects and
/// resumes, and keeps a login's token fresh (moving the connection onto each
/// new one) for as long as it runs.
async fn tail(
    mut client: Client,
    room: RoomId,
    since: Option<u64>,
    json: bool,
    mut keeper: Option<Keeper>,
) -> Result<()> {
    let joined = client.join(&room).await?;
    if let Some(since) = since {
        // Live events start after the join's head; history fills (since, head].
        let mut after = Seq(since);
        while after < joined.room.head {
            let page = client
                .request(History { room: room.clone(), before: None, after: Some(after), limit: Some(100) })
                .await?;
            for event in page.events.iter().filter(|e| e.seq() <= Some(joined.room.head)) {
                print_event(event, json);
            }
            match page.events.last().and_then(Event::seq) {
                Some(last) if page.more => after = last,
                _ => break,
            }
        }
    }
    let mut backoff = Duration::from_millis(250);
    let refresh_in = |keeper: &Option<Keeper>| keeper.as_ref().map_or(Duration::from_secs(86_400), Keeper::refresh_in);
    loop {
        loop {
            let event = tokio::select! {
                event = client.next_event() => event,
                _ = tokio::time::sleep(refresh_in(&keeper)) => {
                    let Some(keeper) = keeper.as_mut() else { continue };
                    match keeper.refresh().await {
                        Ok(token) => client.reauthenticate(token).await?,
                        Err(error) => {
                            eprintln!("cannot refresh the login ({error}); retrying in 30 s");
                            tokio::time::sleep(Duration::from_secs(30)).await;
                        }
                    }
                    continue;
                }
            };
            let Some(event) = event else { break };
            print_event(&event, json);
            backoff = Duration::from_millis(250);
            if let Event::MemberLeft(left) = &event {
                if left.room == room && left.user == client.hello().user {
                    // This membership ended (here or on another connection): the
                    // room sends nothing more.
                    eprintln!("you are no longer a member of {room}");
                    return Ok(());
                }
            }
        }
        let close = client.close_info();
        if let Some(close) = close.filter(|c| c.hearth_code().is_some_and(|code| !code.should_reconnect())) {
            if !hearth_cli::account::signed_out_for_a_newer_login(&close, keeper.as_mut()).await {
                bail!("server closed the connection: {}", close.reason);
            }
            eprintln!("signed out by a password change; going on with the newer login in the profile");
        }
        eprintln!("disconnected; resuming in {backoff:?}");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
        let mut options = client.options().clone();
        if let Some(keeper) = keeper.as_mut() {
            if keeper.refresh_in().is_zero() {
                if let Err(error) = keeper.refresh().await {
                    eprintln!("cannot refresh the login: {error}");
                }
            }
            options.token = keeper.token().to_string();
        }
        match client.resume_with(options).await {
            Ok(next) => {
                if next.truncated_on_resume().contains(&room) {
                    eprintln!("resumed {room}, but some events missed meanwhile are no longer held by the server");
                }
                client = next;
            }
            Err(ClientError::Server(error)) if !error.code.retryable() => bail!("cannot rejoin {room}: {error}"),
            Err(error) => eprintln!("resume failed: {error}"),
        }
    }
}

/// The room's history (all of it held, or the newest `last`), oldest first.
async fn history(client: &mut Client, room: RoomId, after: Option<u64>, last: Option<usize>, json: bool) -> Result<()> {
    let events = match last {
        Some(last) => {
            // Newest pages backwards until enough.
            let mut events: Vec<Event> = Vec::new();
            let mut before = None;
            while events.len() < last {
                let limit = Some((last - events.len()).min(100) as u16);
                let page = client.request(History { room: room.clone(), before, after: None, limit }).await?;
                let Some(first) = page.events.first().and_then(Event::seq) else { break };
                let more = page.more;
                events.splice(0..0, page.events);
                if !more {
                    break;
                }
                before = Some(first);
            }
            events
        }
        None => client.history_all(&room).await?,
    };
    for event in events.iter().filter(|e| e.seq().is_some_and(|s| s.0 > after.unwrap_or(0))) {
        print_event(event, json);
    }
    Ok(())
}

fn print_json(value: &impl serde::Serialize) {
    if let Ok(line) = serde_json::to_string(value) {
        println!("{line}");
    }
}

fn print_event(event: &Event, json: bool) {
    if json {
        // Exact: JSON escapes control characters itself.
        if let Ok(line) = serde_json::to_string(event) {
            println!("{line}");
        }
        return;
    }
    if let Some(line) = render::event_line(event) {
        println!("{line}");
    }
}
