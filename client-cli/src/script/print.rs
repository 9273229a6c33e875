//! What script mode prints, and the commands that mostly print: `tail` (with
//! its resume and token refresh), `history`.

use std::time::Duration;

use anyhow::{Result, bail};
use hearth_cli::account::Keeper;
use hearth_cli::{Client, ClientError, render};
use hearth_protocol::ops::{History, Visibility};
use hearth_protocol::{Event, RoomId, Seq};

pub(crate) fn visibility(v: Visibility) -> &'static str {
    match v {
        Visibility::Open => "open",
        Visibility::Approval => "approval",
        Visibility::InviteOnly => "invite-only",
        Visibility::Direct => "direct",
    }
}

/// Prints the room's events until the membership ends; reconnects and
/// resumes, and keeps a login's token fresh (moving the connection onto each
/// new one) for as long as it runs.
pub(crate) async fn tail(
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
            if let Event::MemberLeft(left) = &event
                && left.room == room
                && left.user == client.hello().user
            {
                // This membership ended (here or on another connection): the
                // room sends nothing more.
                eprintln!("you are no longer a member of {room}");
                return Ok(());
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
            if keeper.refresh_in().is_zero()
                && let Err(error) = keeper.refresh().await
            {
                eprintln!("cannot refresh the login: {error}");
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
pub(crate) async fn history(
    client: &mut Client,
    room: RoomId,
    after: Option<u64>,
    last: Option<usize>,
    json: bool,
) -> Result<()> {
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

pub(crate) fn print_json(value: &impl serde::Serialize) {
    if let Ok(line) = serde_json::to_string(value) {
        println!("{line}");
    }
}

pub(crate) fn print_event(event: &Event, json: bool) {
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
