//! The terminal UI's network task: owns the [`Client`], does what the UI asks
//! ([`Action`]), passes on what the server says ([`Net`]), and when the
//! connection drops, reconnects with back-off and resumes every room from the
//! last event shown — no gap, no duplicate.

use std::time::Duration;

use hearth_protocol::event::BlocksEvent;
use hearth_protocol::ops::{
    AddPin, CreateInvite, CreateRoom, HeldPosts, History, Join, JoinRequests, Members, ModLog, Release, RemovePin,
    SendMessage, Stats, Typing, Visibility,
};
use hearth_protocol::{Event, Note, RoomId, ShortText, Text};
use tokio::sync::mpsc;

use super::app::{Action, Connection, Net, PAGE};
use crate::account::Keeper;
use crate::{Client, ClientError, Options};

/// First and longest wait between reconnection attempts.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const LONGEST_RETRY: Duration = Duration::from_secs(15);

/// How long after a failed refresh the next try is.
const REFRESH_RETRY: Duration = Duration::from_secs(30);

/// Runs until the UI drops its end of `actions`. With a `keeper`, the login's
/// access token is refreshed before it expires and the connection moved onto
/// the new one.
pub async fn run(
    options: Options,
    mut keeper: Option<Keeper>,
    mut actions: mpsc::Receiver<Action>,
    updates: mpsc::Sender<Net>,
) {
    let tell = |net: Net| {
        let updates = updates.clone();
        async move { updates.send(net).await.is_ok() }
    };
    let Some(mut client) = connect_first(&options, &mut actions, &updates).await else { return };
    if !tell(Net::Me(client.hello().user.clone())).await || !tell(Net::Connection(Connection::Online)).await {
        return;
    }
    if let Err(error) = open_my_rooms(&mut client, &updates).await {
        tell(Net::Failed { what: "loading your rooms".into(), error: error.to_string() }).await;
    }
    let mut refresh_at = keeper.as_ref().map(|k| tokio::time::Instant::now() + k.refresh_in());
    loop {
        tokio::select! {
            _ = sleep_until_some(refresh_at) => {
                let Some(keeper) = keeper.as_mut() else { continue };
                let refreshed = match keeper.refresh().await {
                    Ok(token) => client.reauthenticate(token).await.map_err(|e| e.to_string()),
                    Err(error) => Err(error.to_string()),
                };
                refresh_at = Some(tokio::time::Instant::now() + match refreshed {
                    Ok(()) => keeper.refresh_in(),
                    Err(error) => {
                        tell(Net::Failed { what: "refreshing your login".into(), error }).await;
                        REFRESH_RETRY
                    }
                });
            }
            action = actions.recv() => {
                let Some(action) = action else { return };
                let what = describe(&action);
                if let Err(error) = perform(&mut client, action, &updates).await
                    && !tell(Net::Failed { what, error: error.to_string() }).await {
                        return;
                    }
            }
            event = client.next_event() => match event {
                Some(event) => {
                    if !tell(Net::Event(event)).await {
                        return;
                    }
                }
                None => match reconnect(&client, keeper.as_mut(), &mut actions, &updates).await {
                    Some(next) => {
                        client = next;
                        refresh_at = keeper.as_ref().map(|k| tokio::time::Instant::now() + k.refresh_in());
                    }
                    None => return,
                },
            },
        }
    }
}

/// The first connection, retried with back-off; `None` when the UI has gone or
/// the server refused for good (a bad token).
async fn connect_first(
    options: &Options,
    actions: &mut mpsc::Receiver<Action>,
    updates: &mpsc::Sender<Net>,
) -> Option<Client> {
    let mut attempt = 0;
    loop {
        match Client::connect(options.clone()).await {
            Ok(client) => return Some(client),
            Err(error) => {
                if let Some(fatal) = refused_for_good(&error) {
                    let _ = updates.send(Net::Connection(Connection::Closed(fatal))).await;
                    return None;
                }
                attempt += 1;
                wait_before_retry(attempt, &error, actions, updates).await?;
            }
        }
    }
}

/// Waits until `at`, or forever when there is nothing to wait for.
pub(super) async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Connects again and resumes every room from where it was (with a fresh
/// token first, when the login's has expired meanwhile).
async fn reconnect(
    client: &Client,
    mut keeper: Option<&mut Keeper>,
    actions: &mut mpsc::Receiver<Action>,
    updates: &mpsc::Sender<Net>,
) -> Option<Client> {
    if let Some(close) = client.close_info()
        && close.hearth_code().is_some_and(|code| !code.should_reconnect())
        && !crate::account::signed_out_for_a_newer_login(&close, keeper.as_deref_mut()).await
    {
        let why = format!("the server closed the connection ({} {})", close.code, close.reason);
        let _ = updates.send(Net::Connection(Connection::Closed(why))).await;
        return None;
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let lost = ClientError::Closed(client.close_info());
        wait_before_retry(attempt, &lost, actions, updates).await?;
        let mut options = client.options().clone();
        if let Some(keeper) = keeper.as_deref_mut() {
            if keeper.refresh_in().is_zero()
                && let Err(error) = keeper.refresh().await
            {
                let _ =
                    updates.send(Net::Failed { what: "refreshing your login".into(), error: error.to_string() }).await;
            }
            options.token = keeper.token().to_string();
        }
        match client.resume_with(options).await {
            Ok(next) => {
                let truncated = next.truncated_on_resume().to_vec();
                updates.send(Net::Connection(Connection::Online)).await.ok()?;
                updates.send(Net::Resumed { truncated }).await.ok()?;
                return Some(next);
            }
            Err(error) => {
                if let Some(fatal) = refused_for_good(&error) {
                    let _ = updates.send(Net::Connection(Connection::Closed(fatal))).await;
                    return None;
                }
            }
        }
    }
}

/// Says the connection is down and waits (doubling per attempt), answering
/// requests meanwhile with "not connected". `None` when the UI has gone.
async fn wait_before_retry(
    attempt: u32,
    error: &ClientError,
    actions: &mut mpsc::Receiver<Action>,
    updates: &mpsc::Sender<Net>,
) -> Option<()> {
    let retry_in = FIRST_RETRY.saturating_mul(1 << (attempt - 1).min(5)).min(LONGEST_RETRY);
    updates.send(Net::Connection(Connection::Reconnecting { attempt, retry_in })).await.ok()?;
    updates.send(Net::Failed { what: "connection".into(), error: error.to_string() }).await.ok()?;
    let wait = tokio::time::sleep(retry_in);
    tokio::pin!(wait);
    loop {
        tokio::select! {
            _ = &mut wait => return Some(()),
            action = actions.recv() => {
                let action = action?;
                let failed = Net::Failed { what: describe(&action), error: "not connected; try again once online".into() };
                updates.send(failed).await.ok()?;
            }
        }
    }
}

/// Why a connection attempt will never work as it is, if that is the case.
fn refused_for_good(error: &ClientError) -> Option<String> {
    match error {
        ClientError::Closed(Some(close)) if close.hearth_code().is_some_and(|c| !c.should_reconnect()) => {
            Some(format!("the server refused: {} {}", close.code, close.reason))
        }
        ClientError::Setup(why) => Some(why.clone()),
        _ => None,
    }
}

fn describe(action: &Action) -> String {
    match action {
        Action::Join(room) => format!("join {room}"),
        Action::JoinInvited { room, .. } => format!("join {room} with an invite"),
        Action::Leave(room) => format!("leave {room}"),
        Action::Send { room, .. } => format!("send to {room}"),
        Action::Create { room, .. } => format!("create {room}"),
        Action::Pin { .. } => "pin".into(),
        Action::Unpin { pin, .. } => format!("unpin #{}", pin.0),
        Action::Members(room) => format!("members of {room}"),
        Action::Older { room, .. } => format!("history of {room}"),
        Action::ListRooms => "list rooms".into(),
        Action::Request { op, .. } => op.name().replace('_', " "),
        Action::Invite { .. } => "invite".into(),
        Action::Requests(room) => format!("join requests of {room}"),
        Action::Held(room) => format!("held posts of {room}"),
        Action::Reports(room) => format!("reports of {room}"),
        Action::Filter { room, .. } => format!("the word filter of {room}"),
        Action::Warnings { room, .. } => format!("warnings in {room}"),
        Action::Release { user, approve: true, .. } => format!("release {user}'s post"),
        Action::Release { user, .. } => format!("drop {user}'s post"),
        Action::ModLog(room) => format!("moderation log of {room}"),
        Action::Search { query } => format!("searching for {query:?}"),
        Action::Direct { with } => {
            format!("writing to {}", with.iter().map(|u| u.as_str()).collect::<Vec<_>>().join(", "))
        }
        Action::Stats(room) => format!("health of {room}"),
        Action::Typing(room) => format!("typing in {room}"),
        Action::MarkRead { room, .. } => format!("marking {room} read"),
    }
}

/// Every room the member belongs to: joined, with its newest page.
async fn open_my_rooms(client: &mut Client, updates: &mpsc::Sender<Net>) -> Result<(), ClientError> {
    let rooms = client.rooms_all().await?;
    let mine: Vec<RoomId> = rooms.iter().filter(|r| r.role.is_some()).map(|r| r.room.clone()).collect();
    let _ = updates.send(Net::Rooms { rooms, asked: false }).await;
    for room in mine {
        join(client, room, updates).await?;
    }
    let state = client.request(hearth_protocol::ops::ReadState {}).await?;
    let _ = updates.send(Net::ReadState(state.rooms)).await;
    let blocks = client.request(hearth_protocol::ops::Blocks {}).await?;
    let _ = updates.send(Net::Event(Event::Blocks(BlocksEvent { users: blocks.users }))).await;
    Ok(())
}

/// Joins `room` and shows its newest page: everything up to the join's head
/// (what follows arrives live, so nothing shows twice).
async fn join(client: &mut Client, room: RoomId, updates: &mpsc::Sender<Net>) -> Result<(), ClientError> {
    let joined = client.join(&room).await?;
    let head = joined.room.head;
    let _ = updates.send(Net::Joined(joined)).await;
    let page = client
        .request(History { room: room.clone(), before: Some(head.next()), after: None, limit: Some(PAGE) })
        .await?;
    let _ = updates.send(Net::History(page)).await;
    let members = client.request(Members { room: room.clone() }).await?;
    let _ = updates.send(Net::Members { room, members: members.members }).await;
    Ok(())
}

/// Why something the member asked for was not done: what the server or the
/// connection said, or what was wrong with the request before it was sent.
#[derive(Debug, thiserror::Error)]
enum Undone {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Refused(String),
}

async fn perform(client: &mut Client, action: Action, updates: &mpsc::Sender<Net>) -> Result<(), Undone> {
    let bad = Undone::Refused;
    match action {
        Action::Join(room) => join(client, room, updates).await?,
        Action::JoinInvited { room, code } => {
            client.request(Join { room: room.clone(), since: None, invite: Some(code) }).await?;
            join(client, room, updates).await?;
        }
        Action::Leave(room) => client.leave(&room).await?,
        Action::Send { room, text, thread } => {
            let text = Text::new(text).map_err(bad)?;
            let cmid = client.new_cmid();
            let sent = client.send_reliably(SendMessage { room: room.clone(), text, cmid, thread }).await?;
            if sent.held {
                let said = format!("held for a moderator's look before it shows in {room} (a newcomer's links are)");
                let _ = updates.send(Net::Said(said)).await;
            }
        }
        Action::Create { room, topic } => {
            let topic = ShortText::new(topic).map_err(bad)?;
            client.request(CreateRoom { room: room.clone(), topic, cap: None, visibility: Visibility::Open }).await?;
            join(client, room, updates).await?;
        }
        Action::Pin { room, seq, note, title } => {
            let note = note.map(Note::new).transpose().map_err(bad)?;
            let title = title.map(ShortText::new).transpose().map_err(bad)?;
            client.request(AddPin { room, seq, note, title, edit: None }).await?;
        }
        Action::Unpin { room, pin } => {
            client.request(RemovePin { room, pin }).await?;
        }
        Action::Members(room) => {
            let members = client.request(Members { room: room.clone() }).await?;
            let _ = updates.send(Net::Members { room, members: members.members }).await;
        }
        Action::Older { room, before } => {
            let page = client.request(History { room, before: Some(before), after: None, limit: Some(PAGE) }).await?;
            let _ = updates.send(Net::History(page)).await;
        }
        Action::ListRooms => {
            let rooms = client.rooms_all().await?;
            let _ = updates.send(Net::Rooms { rooms, asked: true }).await;
        }
        Action::Request { what, op } => {
            client.send_op(op).await?;
            let _ = updates.send(Net::Said(what)).await;
        }
        Action::Invite { room, uses } => {
            let invite = client.request(CreateInvite { room, ttl_secs: None, max_uses: uses }).await?;
            let _ = updates.send(Net::Said(format!("invite code: {} (valid a week)", invite.code))).await;
        }
        Action::Requests(room) => {
            let list = client.request(JoinRequests { room }).await?;
            let who = list.requests.iter().map(|r| format!("{} ({})", r.user, r.note)).collect();
            let _ = updates.send(Net::Said(listing(who, "no pending requests", "waiting", "/approve or /deny"))).await;
        }
        Action::Held(room) => {
            let list = client.request(HeldPosts { room }).await?;
            let posts = list.held.iter().map(|h| format!("{}: {}", h.user, h.text)).collect();
            let said = listing(posts, "nothing held", "held", "/release USER or /drop USER");
            let _ = updates.send(Net::Said(said)).await;
        }
        Action::Reports(room) => {
            let list = client.request(hearth_protocol::ops::Reports { room }).await?;
            let reports = list
                .reports
                .iter()
                .map(|r| {
                    let category = serde_json::to_value(r.category).ok();
                    let category = category.as_ref().and_then(|c| c.as_str()).unwrap_or("other");
                    format!("#{} by {} ({category}, from {}): {}", r.message.0, r.author, r.from, r.text)
                })
                .collect();
            let said = listing(reports, "no open reports", "open reports", "/resolve SEQ dismiss|delete|warn|…");
            let _ = updates.send(Net::Said(said)).await;
        }
        Action::Filter { room, add, remove } => {
            use hearth_protocol::ops::{Filters, RoomSettings, SetRoom};
            let mut filters = client.request(Filters { room: room.clone() }).await?.filters;
            let changed = add.is_some() || remove.is_some();
            if let Some(rule) = add {
                filters.push(rule);
            }
            if let Some(number) = remove {
                if number == 0 || number > filters.len() {
                    return Err(Undone::Refused(format!(
                        "the filter has {} rules; /filters numbers them",
                        filters.len()
                    )));
                }
                filters.remove(number - 1);
            }
            if changed {
                let settings = RoomSettings { filters: Some(filters.clone()), ..RoomSettings::default() };
                client.request(SetRoom { room, settings }).await?;
            }
            let rules =
                filters.iter().enumerate().map(|(n, f)| format!("{} {:?} {}", n + 1, f.action, f.pattern)).collect();
            let said =
                listing(rules, "the word filter is empty", "word filter", "/filter hold|refuse PHRASE, /unfilter N");
            let _ = updates.send(Net::Said(said)).await;
        }
        Action::Warnings { room, user } => {
            let list = client.request(hearth_protocol::ops::Warnings { room, user }).await?;
            let warnings =
                list.warnings.iter().map(|w| format!("#{} by {}: {}", w.warning.0, w.by, w.reason)).collect();
            let mut said = listing(warnings, &format!("{} has no live warnings", list.user), "live warnings", "");
            if let Some(action) = list.warn_action.filter(|_| list.warn_limit > 0) {
                said.push_str(&format!(" (at {} the room's escalation: {action:?})", list.warn_limit));
            }
            let _ = updates.send(Net::Said(said)).await;
        }
        Action::Release { room, user, approve, reason } => {
            // Held posts are named by author and client id; the oldest of the
            // author's is the one the moderator has seen announced first.
            let list = client.request(HeldPosts { room: room.clone() }).await?;
            let Some(post) = list.held.into_iter().filter(|h| h.user == user).min_by_key(|h| h.at) else {
                return Err(Undone::Refused(format!("nothing of {user}'s is held")));
            };
            client.request(Release { room, user: user.clone(), cmid: post.cmid, approve, reason }).await?;
            let done = if approve { "released" } else { "dropped" };
            let _ = updates.send(Net::Said(format!("{done} {user}'s post: {}", post.text))).await;
        }
        Action::Stats(room) => {
            let stats = client.request(Stats { room, days: None }).await?;
            let said: Vec<String> = stats
                .windows
                .iter()
                .map(|w| {
                    format!(
                        "{} d: {} msgs, {} active, {} new, {} threads",
                        w.days, w.messages, w.active_members, w.new_members, w.threads
                    )
                })
                .collect();
            let _ = updates.send(Net::Said(said.join(" | "))).await;
        }
        Action::Typing(room) => {
            // Only a hint to the others: a refusal (muted, say) changes nothing
            // the member needs to hear, and a lost connection shows anyway.
            let _ = client.request(Typing { room }).await;
        }
        Action::MarkRead { room, seq } => {
            // Said by the `read` event that follows, on every device.
            client.request(hearth_protocol::ops::MarkRead { room, seq }).await?;
        }
        Action::Direct { with } => {
            let info = client.request(hearth_protocol::ops::StartDirect { with }).await?;
            join(client, info.room, updates).await?;
        }
        Action::Search { query } => {
            // Pages can come back short (each looks at a bounded share of the
            // messages): a few more asks fill the panel.
            let (mut results, mut before, mut more) = (Vec::new(), None, false);
            for _ in 0..10 {
                let ask = hearth_protocol::ops::Search { query: query.clone(), room: None, before, limit: Some(20) };
                let page = client.request(ask).await?;
                results.extend(page.results);
                before = page.next;
                more = before.is_some();
                if !more || results.len() >= 20 {
                    break;
                }
            }
            let _ = updates.send(Net::Found { query, results, more }).await;
        }
        Action::ModLog(room) => {
            let log = client.request(ModLog { room, before: None, limit: Some(5) }).await?;
            let said: Vec<String> = log
                .entries
                .iter()
                .map(|e| {
                    format!("{} {:?}{}", e.by, e.action, e.user.as_ref().map(|u| format!(" {u}")).unwrap_or_default())
                })
                .collect();
            let _ = updates.send(Net::Said(format!("newest: {}", said.join("; ")))).await;
        }
    }
    Ok(())
}

/// A short list for the status line: `intro: a | b — hint`, or `empty`.
fn listing(items: Vec<String>, empty: &str, intro: &str, hint: &str) -> String {
    if items.is_empty() {
        return empty.to_string();
    }
    format!("{intro}: {} — {hint}", items.join(" | "))
}
