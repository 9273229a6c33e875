//! Script mode: connect, do the one thing asked, print it; and the community
//! tools' commands.

use super::*;
use std::time::Duration;

use anyhow::{Context, Result};
use hearth_cli::{Client, Options, render};
use hearth_protocol::ops::Stats as StatsOp;
use hearth_protocol::ops::{
    AckRules, AddPin, Appended, Ban, CreateInvite, CreateRoom, DecideJoin, Delete, Edit, Join, JoinRequests, Kick,
    Leave, Members, ModLog, Mute, OrderPins, Presence, React, RemovePin, RequestJoin, RevokeInvite, RoomSettings,
    SetRole, SetRoom, ThreadHistory, Unban, Unmute, Visibility,
};
use hearth_protocol::ops::{CancelPrompt, HeldPosts, Prompts, Release, SchedulePrompt};
use hearth_protocol::ops::{
    EraseAccount, Filters, Lock, LockLevel, Report, Reports, ResolveReport, Unwarn, Warn, Warnings, WordFilter,
};
use hearth_protocol::{Codec, Emoji, Millis, Note, PinId, Seq, ShortText, Text, UserId};

pub(crate) async fn run(cli: Cli) -> Result<()> {
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
    if let Command::Export { room, html, mine, output } = &command {
        return export(&options, room.as_ref(), *html, *mine, output.as_deref()).await;
    }
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
                    if r.direct.is_empty() {
                        render::printable(r.topic.as_str()).into_owned()
                    } else {
                        let names: Vec<&str> = r.direct.iter().map(|u| u.as_str()).collect();
                        format!("between {}", names.join(", "))
                    }
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
        Command::Search { query, room, limit } => {
            let mut shown = 0;
            let mut before = None;
            // Pages can come back short (each looks at a bounded share of
            // the messages): ask on while there is a next and room for more.
            for _ in 0..100 {
                let page_limit = u16::try_from(limit.saturating_sub(shown).clamp(1, 50)).unwrap_or(50);
                let ask = hearth_protocol::ops::Search {
                    query: query.clone(),
                    room: room.clone(),
                    before: before.take(),
                    limit: Some(page_limit),
                };
                let page = client.request(ask).await?;
                for result in page.results.iter().take(limit - shown) {
                    if json {
                        print_json(result);
                    } else {
                        let thread = result.thread.map(|t| format!(" (in thread #{t})")).unwrap_or_default();
                        println!(
                            "{} #{} {} {}{thread}: {}",
                            result.room,
                            result.seq,
                            render::date_time(result.ts),
                            result.from,
                            render::printable(&result.parts.concat())
                        );
                    }
                    shown += 1;
                }
                match page.next {
                    Some(next) if shown < limit => before = Some(next),
                    _ => break,
                }
            }
            if shown == 0 && !json {
                println!("nothing found");
            }
        }
        Command::Dm { with } => {
            let info = client.request(hearth_protocol::ops::StartDirect { with }).await?;
            if json {
                print_json(&info);
            } else {
                let me = client.hello().user.as_str();
                let others: Vec<&str> = info.direct.iter().map(|u| u.as_str()).filter(|u| *u != me).collect();
                println!("{} (with {}; {} members now)", info.room, others.join(", "), info.members);
            }
        }
        Command::Block { user } => block(&client, user, true, json).await?,
        Command::Unblock { user } => block(&client, user, false, json).await?,
        Command::Notify { room, level } => {
            use hearth_protocol::ops::PushLevel;
            let (level, words) = match level {
                Level::Everything => (PushLevel::Everything, "every message"),
                Level::Mentions => (PushLevel::Mentions, "mentions, replies and waiting requests"),
                Level::Nothing => (PushLevel::Nothing, "nothing"),
            };
            client.request(hearth_protocol::ops::SetPushLevel { room: room.clone(), level }).await?;
            if !json {
                println!("while you are away, {room} tells you of {words}");
            }
        }
        Command::Blocks => {
            let list = client.request(hearth_protocol::ops::Blocks {}).await?;
            if json {
                print_json(&list);
            } else if list.users.is_empty() {
                println!("you block nobody");
            }
            for user in list.users.iter().filter(|_| !json) {
                println!("{user}");
            }
        }
        Command::Unread => {
            let state = client.request(hearth_protocol::ops::ReadState {}).await?;
            for r in &state.rooms {
                if json {
                    print_json(r);
                } else {
                    let more = if r.more { "+" } else { "" };
                    println!(
                        "{:<24} {:>4}{more:<1} unread  (read up to #{}, newest #{})",
                        r.room, r.unread, r.seq, r.head
                    );
                }
            }
            if state.rooms.is_empty() && !json {
                println!("you are in no room yet");
            }
        }
        Command::Read { room, seq, all } => {
            if all {
                let done = client.request(hearth_protocol::ops::MarkAllRead {}).await?;
                if json {
                    print_json(&done);
                } else {
                    let rooms = if done.rooms == 1 { "room" } else { "rooms" };
                    println!("marked {} {rooms} read", done.rooms);
                }
            } else if let Some(room) = room {
                // Past the newest is taken as the newest.
                let seq = hearth_protocol::Seq(seq.unwrap_or(u64::MAX));
                let mark = client.request(hearth_protocol::ops::MarkRead { room, seq }).await?;
                if json {
                    print_json(&mark);
                } else {
                    println!("{} read up to #{}", mark.room, mark.seq);
                }
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
pub(crate) fn done(what: &str, appended: &Appended, json: bool) {
    if json {
        print_json(appended);
    } else {
        println!("{what} (#{})", appended.seq);
    }
}

/// `hearth export`: a room its caller owns, or their own data, over HTTP.
async fn export(
    options: &Options,
    room: Option<&hearth_protocol::RoomId>,
    html: bool,
    mine: bool,
    output: Option<&std::path::Path>,
) -> Result<()> {
    let path = match (room, mine) {
        (_, true) => "/export/me.json".to_string(),
        (Some(room), false) => format!("/export/room/{room}.{}", if html { "html" } else { "jsonl" }),
        (None, false) => return Err(usage("export ROOM (a room you own), or export --mine (your own data)")),
    };
    let api = hearth_cli::account::AccountApi::new(options.url.clone(), options.ca_file.clone());
    let (status, body) = api.download(&path, &options.token).await.map_err(refused)?;
    match status {
        200 => {}
        401 => return Err(AccountFailure(Exit::Unauthorized, String::from_utf8_lossy(&body).trim().to_string()).into()),
        403 => return Err(AccountFailure(Exit::Forbidden, String::from_utf8_lossy(&body).trim().to_string()).into()),
        404 => return Err(AccountFailure(Exit::NotFound, String::from_utf8_lossy(&body).trim().to_string()).into()),
        _ => return Err(AccountFailure(Exit::Later, String::from_utf8_lossy(&body).trim().to_string()).into()),
    }
    match output {
        Some(file) => std::fs::write(file, &body).with_context(|| format!("writing {}", file.display()))?,
        None => {
            use std::io::Write as _;
            std::io::stdout().write_all(&body)?;
        }
    }
    Ok(())
}

pub(crate) fn short(text: String) -> Result<ShortText> {
    ShortText::new(text).map_err(usage)
}

pub(crate) fn name(text: &str) -> Result<UserId> {
    UserId::new(text).map_err(usage)
}

/// The community tools, a subcommand each.
pub(crate) async fn community(client: &mut Client, command: Command, json: bool) -> Result<()> {
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
            warn_expiry_days,
            warn_limit,
            warn_action,
            warn_action_for,
            raid_joins,
            raid_within,
            raid_lock_for,
            keep_erased,
        } => {
            let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
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
                warn_expiry_days,
                warn_limit,
                warn_action,
                warn_action_secs: warn_action_for.map(secs),
                raid_joins,
                raid_secs: raid_within.map(secs),
                raid_lock_secs: raid_lock_for.map(secs),
                erased_as_former_member: keep_erased,
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
        Command::Report { room, seq, category, note } => {
            let args = Report { room, seq: Seq(seq), category, note: short(note)? };
            let done_ = client.request(args).await?;
            done(&format!("reported #{seq}"), &done_, json);
        }
        Command::Reports { room } => {
            let list = client.request(Reports { room }).await?;
            for r in &list.reports {
                if json {
                    print_json(r);
                } else {
                    let note = if r.note.as_str().is_empty() { String::new() } else { format!(" ({})", r.note) };
                    println!(
                        "#{:<6} {:<12} {:?} by {}{}: {}",
                        r.message.0,
                        r.author,
                        r.category,
                        r.from,
                        render::printable(&note),
                        render::printable(r.text.as_str())
                    );
                }
            }
        }
        Command::Resolve { room, seq, outcome, reason, r#for } => {
            let duration_secs = r#for.map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
            let args = ResolveReport { room, seq: Seq(seq), outcome, reason: short(reason)?, duration_secs };
            let done_ = client.request(args).await?;
            done(&format!("resolved the reports on #{seq}"), &done_, json);
        }
        Command::Warn { room, user, reason } => {
            let done_ = client.request(Warn { room, user: name(&user)?, reason: short(reason)? }).await?;
            done(&format!("warned {user}"), &done_, json);
        }
        Command::Unwarn { room, user, warning } => {
            let done_ = client.request(Unwarn { room, user: name(&user)?, warning: Seq(warning) }).await?;
            done(&format!("lifted warning #{warning} of {user}"), &done_, json);
        }
        Command::EraseAccount { confirm } => {
            let erased = client.request(EraseAccount { confirm: name(&confirm)? }).await?;
            if json {
                print_json(&erased);
            } else {
                println!(
                    "erased {}: {} message(s) in {} room(s) are gone; this name can never sign in again",
                    erased.user, erased.messages, erased.rooms
                );
            }
        }
        Command::Filters { room } => {
            let list = client.request(Filters { room }).await?;
            for (n, f) in list.filters.iter().enumerate() {
                if json {
                    print_json(f);
                } else {
                    let kind = if f.regex { "pattern" } else { "phrase" };
                    let reason =
                        if f.reason.as_str().is_empty() { String::new() } else { format!(" — {}", f.reason) };
                    println!(
                        "{:<3} {:?} {kind} {}{}",
                        n + 1,
                        f.action,
                        render::printable(&f.pattern),
                        render::printable(&reason)
                    );
                }
            }
        }
        Command::FilterAdd { room, pattern, action, regex, reason } => {
            let mut filters = client.request(Filters { room: room.clone() }).await?.filters;
            filters.push(WordFilter { pattern, regex, action, reason: short(reason)? });
            let settings = RoomSettings { filters: Some(filters), ..RoomSettings::default() };
            let done_ = client.request(SetRoom { room: room.clone(), settings }).await?;
            done(&format!("{room}'s filter has a new rule"), &done_, json);
        }
        Command::FilterRemove { room, number } => {
            let mut filters = client.request(Filters { room: room.clone() }).await?.filters;
            if number == 0 || number > filters.len() {
                return Err(usage(format!("{room}'s filter has {} rules; see hearth filters {room}", filters.len())));
            }
            filters.remove(number - 1);
            let settings = RoomSettings { filters: Some(filters), ..RoomSettings::default() };
            let done_ = client.request(SetRoom { room: room.clone(), settings }).await?;
            done(&format!("removed rule {number} of {room}'s filter"), &done_, json);
        }
        Command::Lockdown { room, level, r#for } => {
            let duration_secs = r#for.map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
            let done_ = client.request(Lock { room: room.clone(), level, duration_secs }).await?;
            let what = match level {
                LockLevel::Off => format!("lifted the lockdown of {room}"),
                LockLevel::Joins => format!("{room} takes no new members"),
                LockLevel::ReadOnly => format!("{room} is read-only below moderator"),
            };
            done(&what, &done_, json);
        }
        Command::Warnings { room, user } => {
            let user = user.as_deref().map(name).transpose()?;
            let list = client.request(Warnings { room, user }).await?;
            if json {
                print_json(&list);
            } else {
                for w in &list.warnings {
                    let until = w.until.map(|t| format!(" until {}", render::date_time(t))).unwrap_or_default();
                    println!("#{:<6} {:<12}{until} {}", w.warning.0, w.by, render::printable(w.reason.as_str()));
                }
                if let Some(action) = list.warn_action {
                    println!("{} live warnings bring: {action:?}", list.warn_limit);
                }
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

/// Blocks `user` (`on`) or lifts the block.
async fn block(client: &Client, user: UserId, on: bool, json: bool) -> Result<()> {
    let list = client.request(hearth_protocol::ops::Block { user: user.clone(), on }).await?;
    if json {
        print_json(&list);
    } else {
        println!("{} {user}", if on { "blocked" } else { "unblocked" });
    }
    Ok(())
}
