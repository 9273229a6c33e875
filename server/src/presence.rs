//! Who is online in each room, on every node, told to members as it changes.
//! Each node counts the users with a connection receiving each room it has in
//! memory, records that set where the other nodes read it (`Broker::
//! set_presence`: in cluster mode a set in Redis that expires unless
//! refreshed, so a node that died stops counting), and once a second sends
//! one `presence` event per room whose online members changed — however
//! many connected or left meanwhile: a reconnect storm of a hundred members
//! is one event per second per room, not a hundred. The rooms are looked at
//! in tenths, one every tenth of a second, so a node's thousands of presence
//! frames after a storm leave spread over the second, not in one burst that
//! would hold up everything else it serves.

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use hearth_protocol::event::PresenceEvent;
use hearth_protocol::{Event, RoomId, UserId};
use tokio_util::sync::CancellationToken;

use crate::rooms::Registry;

/// How often a room's changes are gathered into an event: each room once
/// every `SLICES` ticks, in the slice its name falls in.
const TICK: Duration = Duration::from_millis(100);
const SLICES: u64 = 10;
/// Every this many looks, each room's record is refreshed and the other nodes'
/// are read again even without a change here (a node that died, one that
/// changed without this node hearing).
const REFRESH_LOOKS: u64 = 10;

/// The slice of each second in which `room` is looked at: the same on every
/// run and every node (SipHash with its fixed keys).
fn slice_of(room: &RoomId) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    room.as_str().hash(&mut hasher);
    hasher.finish() % SLICES
}

/// Runs until `stop`.
pub async fn run(registry: Arc<Registry>, stop: CancellationToken) {
    let broker = registry.broker();
    // Per room: who was online here at the last tick, and who this node last
    // told the room was online anywhere.
    let mut here_before: HashMap<RoomId, Vec<UserId>> = HashMap::new();
    let mut told: HashMap<RoomId, BTreeSet<UserId>> = HashMap::new();
    let mut ticks = crate::clock::Ticks::every(TICK);
    while let Some(n) = ticks.next(&stop).await {
        let slice = n % SLICES;
        let refresh = (n / SLICES).is_multiple_of(REFRESH_LOOKS);
        let rooms = registry.loaded().all();
        if slice == 0 {
            here_before.retain(|id, _| rooms.iter().any(|r| r.id == *id));
            told.retain(|id, _| rooms.iter().any(|r| r.id == *id));
        }
        for room in rooms.into_iter().filter(|r| slice_of(&r.id) == slice) {
            let here = room.online_here();
            let changed = here_before.get(&room.id) != Some(&here);
            if !changed && !refresh {
                continue;
            }
            if let Err(error) = broker.set_presence(room.id.clone(), here.clone()).await {
                tracing::debug!(room = %room.id, %error, "could not record presence");
                continue;
            }
            let others: BTreeSet<UserId> =
                broker.presence(room.id.clone()).await.unwrap_or_default().into_iter().collect();
            let now: BTreeSet<UserId> = here.iter().cloned().chain(others.iter().cloned()).collect();
            here_before.insert(room.id.clone(), here);
            // A room new here: what the other nodes had is known already; the
            // members here are news.
            let before = told.insert(room.id.clone(), now.clone()).unwrap_or(others);
            let online: Vec<UserId> = now.difference(&before).cloned().collect();
            let offline: Vec<UserId> = before.difference(&now).cloned().collect();
            if online.is_empty() && offline.is_empty() {
                continue;
            }
            let event = Event::Presence(PresenceEvent { room: room.id.clone(), online, offline });
            if let Err(error) = broker.broadcast(room.id.clone(), event).await {
                // The next look sends the room's state again.
                tracing::debug!(room = %room.id, %error, "presence not passed on");
            }
        }
    }
}
