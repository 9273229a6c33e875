//! Erasing a member (`erase_account`, or the operator's
//! `hearth-server accounts erase`): every message they wrote becomes a
//! tombstone (or, in a room whose owner chose it, stays, shown as from
//! `former-member`), their reactions and held posts go, they leave every
//! room, and
//! what the server kept for them alone — read positions, mentions, blocks,
//! devices — is forgotten; their account is closed for good, so the name
//! never signs in (or registers) again.
//!
//! Each room's part is an ordered `erased` event listing the messages and
//! reactions it takes back, so it goes through the room's order like any
//! deletion: every node and every replay agrees, and history, search,
//! exports, mentions and pins show the tombstone (`TextNow::Erased`).
//!
//! The erasure log (`ReadStore::erasures`) records each erasure before it
//! starts and marks it done after; at every start the server goes through
//! those not done again. `hearth-server restore` carries the log of the
//! data directory it replaces into the backup it restores, marking every
//! entry to do again, so restoring a backup older than an erasure never
//! brings the erased text back.

use std::collections::BTreeMap;

use hearth_protocol::event::{ErasedEvent, ErasedReaction};
use hearth_protocol::{ClientMsgId, Emoji, Event, Millis, RoomId, Seq, UserId};

use crate::Shared;
use crate::broker::BrokerError;
use crate::reads::{ErasureRecord, ReadsUnavailable};
use crate::room::{Draft, Requires};
use crate::rooms::Registry;
use crate::store::AnnexTable;

/// Messages (and reactions) one `erased` event lists, which keeps it well
/// under a frame's size.
pub const PER_EVENT: usize = 500;
/// Events read per history page while looking for the member's.
const PAGE: usize = 500;

/// What an erasure did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    pub rooms: u32,
    pub messages: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    #[error("erasing failed in a room ({0}); it stays in the erasure log and is done again at the next start")]
    Broker(#[from] BrokerError),
    #[error("erasing failed in room {0} ({1}); it stays in the erasure log and is done again at the next start")]
    Room(RoomId, String),
    #[error("{0}")]
    Reads(#[from] ReadsUnavailable),
    #[error("closing the account failed ({0}); it stays in the erasure log and is done again at the next start")]
    Account(String),
}

/// Erases `user` through: logs it, goes through every room, forgets their
/// data, closes the account, and goes through the rooms once more for
/// anything a device of theirs posted meanwhile. `at` is when it was asked.
pub async fn erase(shared: &Shared, user: &UserId, at: Millis) -> Result<Erased, EraseError> {
    let erased = begin(shared, user, at).await?;
    let late = finish(shared, user, at).await?;
    Ok(Erased { rooms: erased.rooms.max(late.rooms), messages: erased.messages + late.messages })
}

/// The first part: logged as not done, every room, the member's data.
pub async fn begin(shared: &Shared, user: &UserId, at: Millis) -> Result<Erased, EraseError> {
    shared.reads.record_erasure(ErasureRecord { user: user.clone(), at, done: false }).await?;
    // Rooms that keep erased members' words show them from this name:
    // nobody may ever sign in as it.
    let former = crate::room::messages::former_member();
    shared
        .accounts
        .close_for_good(&former, "shows erased members' words")
        .await
        .map_err(|e| EraseError::Account(e.to_string()))?;
    let erased = everywhere(&shared.registry, user).await?;
    shared.reads.forget(user.clone()).await?;
    Ok(erased)
}

/// The rest: the account closed (its connections too), the rooms again,
/// the log entry done.
pub async fn finish(shared: &Shared, user: &UserId, at: Millis) -> Result<Erased, EraseError> {
    shared.accounts.erase(user).await.map_err(|e| EraseError::Account(e.to_string()))?;
    let late = everywhere(&shared.registry, user).await?;
    shared.reads.forget(user.clone()).await?;
    shared.reads.record_erasure(ErasureRecord { user: user.clone(), at, done: true }).await?;
    tracing::warn!(%user, rooms = late.rooms, "erasure done");
    Ok(late)
}

/// Goes through the erasures the log has not seen done: one stopped
/// half-way, or one made after the backup this store was restored from.
pub async fn resume(shared: &Shared) {
    let pending = match shared.reads.erasures().await {
        Ok(log) => log.into_iter().filter(|r| !r.done).collect::<Vec<_>>(),
        Err(error) => {
            tracing::error!(%error, "cannot read the erasure log; erasures not done will be tried at the next start");
            return;
        }
    };
    for record in pending {
        tracing::warn!(user = %record.user, "going through an erasure not done yet");
        if let Err(error) = erase(shared, &record.user, record.at).await {
            tracing::error!(user = %record.user, %error, "erasure not done");
        }
    }
}

/// Erases `user` in every room; counts the rooms where there was anything.
async fn everywhere(registry: &Registry, user: &UserId) -> Result<Erased, EraseError> {
    let mut total = Erased::default();
    let mut after = None;
    loop {
        let names = registry.broker().room_names(after.clone(), 200).await?;
        let Some(last) = names.last().cloned() else { break };
        for room in &names {
            if let Some(messages) = in_room(registry, room, user).await? {
                total.rooms += 1;
                total.messages += messages;
            }
        }
        after = Some(last);
    }
    Ok(total)
}

/// What of `user` a room still shows.
#[derive(Default)]
struct Found {
    messages: Vec<Seq>,
    /// Each reaction's last state (by message and emoji): on or off.
    reactions: BTreeMap<(Seq, String), (Emoji, bool)>,
}

/// Erases `user` in `room`: how many messages, or `None` when there was
/// nothing of theirs left to erase.
async fn in_room(registry: &Registry, id: &RoomId, user: &UserId) -> Result<Option<u32>, EraseError> {
    let room = registry.get(id).await.map_err(|e| EraseError::Room(id.clone(), e.message.to_string()))?;
    let broker = registry.broker();
    let mut found = Found::default();
    let mut after = Seq::ZERO;
    loop {
        let page = broker.history_after(id.clone(), after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for stored in &page {
            let Ok(event) = rmp_serde::from_slice::<Event>(&stored.body) else { continue };
            match event {
                Event::Message(m) if m.from == *user => found.messages.push(m.seq),
                Event::Held(h) if h.from == *user => found.messages.push(h.seq),
                Event::Reaction(r) if r.from == *user => {
                    found.reactions.insert((r.target, r.emoji.as_str().to_string()), (r.emoji, r.on));
                }
                _ => {}
            }
        }
        if page.len() < PAGE {
            break;
        }
    }
    // What an earlier pass erased already (this one may be a second, or
    // one after a restart): read from the messages' annotations.
    let mut targets: Vec<Seq> = found.messages.clone();
    targets.extend(found.reactions.keys().map(|(target, _)| *target));
    targets.sort();
    targets.dedup();
    let mut rows = Vec::new();
    for chunk in targets.chunks(PER_EVENT) {
        rows.extend(broker.annex(id.clone(), AnnexTable::Message, chunk.to_vec()).await?);
    }
    let annotated: std::collections::HashSet<(Seq, &str)> = rows.iter().map(|r| (r.target, r.key.as_str())).collect();
    let has = |target: Seq, key: &str| annotated.contains(&(target, key));
    let messages: Vec<Seq> =
        found.messages.into_iter().filter(|&seq| !has(seq, "erased") && !has(seq, "former")).collect();
    let reactions: Vec<ErasedReaction> = found
        .reactions
        .into_iter()
        .filter(|((target, emoji), (_, on))| *on && has(*target, &format!("r:{emoji}\u{1f}{user}")))
        .map(|((target, _), (emoji, _))| ErasedReaction { target, emoji })
        .collect();
    let held: Vec<ClientMsgId> = room.decide(|s| {
        s.rows
            .held
            .keys()
            .filter(|(from, _)| from == user)
            .filter_map(|(_, cmid)| ClientMsgId::new(cmid).ok())
            .collect()
    });
    let member = room.is_member(user);
    let former_member = room.decide(|s| s.record.erased_as_former_member);
    if messages.is_empty() && reactions.is_empty() && held.is_empty() && !member {
        return Ok(None);
    }
    let count = messages.len() as u32;
    let chunks = messages.len().max(reactions.len()).div_ceil(PER_EVENT).max(1);
    for chunk in 0..chunks {
        let part = |len: usize| (chunk * PER_EVENT).min(len)..((chunk + 1) * PER_EVENT).min(len);
        let event = Event::Erased(ErasedEvent {
            room: id.clone(),
            seq: Seq::ZERO,
            ts: Millis(0),
            user: user.clone(),
            messages: messages[part(messages.len())].to_vec(),
            reactions: reactions[part(reactions.len())].to_vec(),
            held: if chunk == 0 { held.clone() } else { Vec::new() },
            former_member,
        });
        let receipt = broker.publish(Draft::new(event, Requires::Nothing)).await?;
        let published = receipt.durable().await?;
        room.wait_applied(published.seq).await;
    }
    tracing::info!(room = %id, %user, messages = count, "erased");
    Ok(Some(count))
}
