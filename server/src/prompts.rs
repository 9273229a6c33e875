//! Scheduled prompts: a moderator schedules a post for a time, once or
//! weekly ("What is one small win you had this week?"), and the server posts
//! it then, in the moderator's name. The schedule is room state (rows), so it
//! survives restarts; this task looks, every second, at the rooms that have
//! prompts and posts those due. In a cluster every node looks: a post's
//! client message id names its occurrence, so the order stores it once.

use std::sync::Arc;
use std::time::Duration;

use hearth_protocol::RoomId;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::rooms::Registry;

/// How often due prompts are looked for, and how often the list of rooms
/// with prompts is read again (rooms gain prompts through any node).
const TICK: Duration = Duration::from_secs(1);
const RELIST_TICKS: u64 = 15;

/// Set when a prompt was scheduled here: the rooms are listed again at once.
pub type Relist = Arc<std::sync::atomic::AtomicBool>;

/// Runs until `stop`.
pub async fn run(registry: Arc<Registry>, clock: SharedClock, relist: Relist, stop: CancellationToken) {
    let broker = registry.broker().clone();
    let mut rooms: Vec<RoomId> = Vec::new();
    let mut ticks = crate::clock::Ticks::every(TICK);
    while let Some(n) = ticks.next(&stop).await {
        if n % RELIST_TICKS == 0 || relist.swap(false, std::sync::atomic::Ordering::Relaxed) {
            match broker.prompt_rooms().await {
                Ok(list) => rooms = list,
                Err(error) => tracing::debug!(%error, "could not list the rooms with prompts"),
            }
        }
        for id in &rooms {
            let Ok(room) = registry.get(id).await else { continue };
            let now = clock.now();
            for draft in room.decide(|s| s.due_prompts(now)) {
                match broker.publish(draft).await {
                    Ok(receipt) => {
                        if let Ok(published) = receipt.durable().await {
                            room.wait_applied(published.seq).await;
                        }
                    }
                    Err(error) => tracing::warn!(room = %id, %error, "could not post a scheduled prompt"),
                }
            }
            if room.decide(|s| s.rows.prompts.is_empty()) {
                let _ = broker.index_prompts(id.clone(), false).await;
            }
        }
        rooms.retain(|id| registry.loaded().get(id).is_none_or(|room| !room.decide(|s| s.rows.prompts.is_empty())));
    }
}
