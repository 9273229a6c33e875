//! `hearth`: script-mode commands over the Hearth client library. The full-screen
//! terminal UI is a later piece of work; until it lands, `hearth` with no command
//! says so.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use hearth_cli::{Client, ClientError, Options, render};
use hearth_protocol::ops::{CreateRoom, History, ListRooms, Visibility};
use hearth_protocol::{Codec, Event, RoomId, Seq, ShortText};

#[derive(Parser)]
#[command(name = "hearth", version, about = "Hearth chat client (script mode)")]
struct Cli {
    /// Server URL.
    #[arg(long, env = "HEARTH_URL", default_value = "ws://127.0.0.1:7878", global = true)]
    url: String,
    /// Your token (mint one with `hearth-server token NAME`).
    #[arg(long, env = "HEARTH_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// Wire encoding.
    #[arg(long, value_enum, default_value_t = Wire::Msgpack, global = true)]
    wire: Wire,
    #[command(subcommand)]
    command: Option<Command>,
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
    },
    /// Print a room's messages as they arrive; reconnects and resumes on its own.
    Tail {
        #[arg(long)]
        room: RoomId,
        /// Also print the events after this seq first.
        #[arg(long)]
        since: Option<u64>,
        /// One JSON object per event instead of text.
        #[arg(long)]
        json: bool,
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
}

#[derive(Clone, Copy, ValueEnum)]
enum Vis {
    Open,
    Approval,
    InviteOnly,
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        bail!("the interactive terminal UI is not built yet; use a command: send, tail, rooms, create (see --help)");
    };
    let token =
        cli.token.context("no token: pass --token or set HEARTH_TOKEN (mint one with `hearth-server token NAME`)")?;
    let codec = match cli.wire {
        Wire::Msgpack => Codec::MsgPack,
        Wire::Json => Codec::Json,
    };
    let options = Options::new(cli.url.clone(), token, codec);
    let mut client = Client::connect(options).await.with_context(|| format!("connecting to {}", cli.url))?;
    match command {
        Command::Send { room, text } => {
            client.join(&room).await?;
            let sent = client.send(&room, &text).await?;
            println!("sent #{} to {room}", sent.seq);
        }
        Command::Rooms => {
            // Every page, in name order.
            let mut list = client.request(ListRooms::default()).await?;
            while list.more {
                let after = list.rooms.last().map(|r| r.room.clone());
                let next = client.request(ListRooms { after, limit: None }).await?;
                list.rooms.extend(next.rooms);
                list.more = next.more;
            }
            if list.rooms.is_empty() {
                println!("no rooms yet; make one with `hearth create NAME`");
            }
            for r in list.rooms {
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
            let topic = ShortText::new(topic).map_err(anyhow::Error::msg)?;
            let visibility = match visibility {
                Vis::Open => Visibility::Open,
                Vis::Approval => Visibility::Approval,
                Vis::InviteOnly => Visibility::InviteOnly,
            };
            let info = client.request(CreateRoom { room, topic, cap, visibility }).await?;
            println!("created {} (cap {}, {})", info.room, info.cap, self::visibility(info.visibility));
        }
        Command::Tail { room, since, json } => tail(client, room, since, json).await?,
    }
    Ok(())
}

fn visibility(v: Visibility) -> &'static str {
    match v {
        Visibility::Open => "open",
        Visibility::Approval => "approval",
        Visibility::InviteOnly => "invite-only",
    }
}

async fn tail(mut client: Client, room: RoomId, since: Option<u64>, json: bool) -> Result<()> {
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
    loop {
        while let Some(event) = client.next_event().await {
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
        if let Some(code) = close.as_ref().and_then(|c| c.hearth_code()) {
            if !code.should_reconnect() {
                bail!("server closed the connection: {}", close.map(|c| c.reason).unwrap_or_default());
            }
        }
        eprintln!("disconnected; resuming in {backoff:?}");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
        match client.resume().await {
            Ok(next) => {
                if next.truncated_on_resume().contains(&room) {
                    eprintln!("resumed {room}, but some events missed meanwhile are no longer held by the server");
                }
                client = next;
            }
            Err(ClientError::Server(error)) => bail!("cannot rejoin {room}: {error}"),
            Err(error) => eprintln!("resume failed: {error}"),
        }
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
