//! The broker: where a room's events are ordered, where they are kept, and where
//! committed events come from. Rooms decide; the broker orders.
//!
//! The contract, for every implementation:
//!
//! - [`Broker::publish`] takes a decided event ([`Draft`]), checks its
//!   preconditions against the room's current order (not a node's possibly stale
//!   copy), gives it the room's next seq and a timestamp that never goes back, and
//!   resolves with a [`Receipt`]: its position, and a wait for it to be durable. A
//!   message whose client message id the room has seen (within a bounded window)
//!   is not ordered again: the original's position comes back, marked
//!   `duplicate`, durable when the original is.
//! - Every ordered event reaches the node's one delivery path ([`Delivery`]) after
//!   it is durable and in seq order per room, whoever published it. Delivery may
//!   still see gaps (a publish lost on its way from another node); it checks
//!   continuity and fills them from [`Broker::history_after`].
//! - History reads, room loads and listings see only durable events and state.
//! - Nothing here holds a lock across a round trip; per-room order is kept by
//!   whatever owns the room's order (a sequencer per room here; the server-side
//!   script in a Redis broker).
//!
//! [`local::LocalBroker`] is the single-node broker: an in-process sequencer per
//! room, the journal's group commit, and the store.

pub mod cluster;
pub mod local;

#[cfg(test)]
mod conformance;

use hearth_protocol::{Epoch, Millis, Position, RoomId, Seq, UserId};
use std::future::Future;
use std::pin::Pin;

use crate::frames::Committed;
use crate::room::{AnnexRow, AnnexTable};
use crate::room::{Draft, Refusal, RoomRecord};
use crate::store::{RoomListing, RoomLoad, StoreError, StoredEvent};

/// A new epoch: random, below 2^53 so JavaScript reads it exactly, never zero.
pub fn new_epoch() -> Epoch {
    let mut bytes = [0u8; 8];
    // If the OS random source fails, the clock still makes epochs differ across restarts.
    if getrandom::fill(&mut bytes).is_err() {
        bytes = crate::clock::Clock::now(&crate::clock::SystemClock).0.to_le_bytes();
    }
    Epoch((u64::from_le_bytes(bytes) >> 11).max(1))
}

/// What a broker call returns: boxed, so servers can pick a broker at start-up.
pub type BrokerFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BrokerError>> + Send + 'a>>;

/// An ordered event: where it landed, and a way to wait until it is durable.
#[derive(Debug)]
pub struct Receipt {
    pub published: Published,
    /// Fires when the event is durable; `None` when it already is.
    durable: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl Receipt {
    pub fn durable_now(published: Published) -> Receipt {
        Receipt { published, durable: None }
    }

    pub fn durable_when(published: Published, durable: tokio::sync::oneshot::Receiver<()>) -> Receipt {
        Receipt { published, durable: Some(durable) }
    }

    /// Resolves once the event is durable (and delivered on this node).
    pub async fn durable(self) -> Result<Published, BrokerError> {
        if let Some(durable) = self.durable {
            // The sender is dropped without firing only if the broker stopped.
            durable.await.map_err(|_| BrokerError::Stopping)?;
        }
        Ok(self.published)
    }
}

/// Where a published event landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub epoch: Epoch,
    pub seq: Seq,
    pub ts: Millis,
    /// A retry of a message already ordered: this is the original's position.
    pub duplicate: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("no room named {0}")]
    NoSuchRoom(RoomId),
    #[error("a room named {0} already exists")]
    AlreadyExists(RoomId),
    #[error("{user} owns {max} rooms already")]
    TooManyRooms { user: UserId, max: usize },
    /// The room's rules refused it: a decision on a copy of the room, or
    /// the order's re-check of what the draft requires.
    #[error("room {room} refused: {why:?}")]
    Rejected { room: RoomId, why: Refusal },
    #[error("the write queue is full")]
    Overloaded,
    #[error("the broker is shutting down")]
    Stopping,
    /// Redis could not be reached (cluster mode): the call never reached it,
    /// so nothing of it happened.
    #[error("Redis is unreachable: {0}")]
    Unavailable(String),
    /// A call was sent to Redis and no answer came in time (cluster mode): it
    /// may or may not have taken effect.
    #[error("Redis did not answer: {0}")]
    Unanswered(String),
    /// The room is missing from Redis, which lost its data a moment ago; a
    /// node that holds a copy is making it again (cluster mode).
    #[error("room {0} is being restored")]
    Restoring(RoomId),
    /// The room was made again (Redis lost it) since the event was decided.
    #[error("room {room} was made again (epoch {}) since the request was decided", epoch.0)]
    Stale { room: RoomId, epoch: Epoch },
    #[error("storage failed: {0}")]
    Store(#[from] StoreError),
    /// A bug: only timeline events (with a room, a seq and an actor) are ordered.
    #[error("only timeline events can be published")]
    NotTimeline,
}

/// The one path committed events take to a node's rooms, whoever ordered them.
pub trait Delivery: Send + Sync + 'static {
    /// `events` are consecutive committed events of `room`, in seq order. Called
    /// without waiting: fan-out only queues.
    fn deliver(&self, room: &RoomId, events: &[Committed]);
    /// The position up to which the room has applied events here, when it is in
    /// memory.
    fn position(&self, room: &RoomId) -> Option<Position>;
    /// The broker's order of `room` is at `at` (`None`: the broker has no such
    /// room any more). A room behind it catches up from history — at once when
    /// `now`, else only if it is still behind the `at` of the previous call, so
    /// an event on its way is not read twice.
    fn resync(&self, room: &RoomId, at: Option<Position>, now: bool);
    /// The room's state as applied here (no events), when it is in memory: what
    /// a broker that lost the room can make it again from.
    fn snapshot(&self, room: &RoomId) -> Option<RoomLoad>;
    /// An ephemeral event of `room` (typing, presence) from another node: for
    /// the connections receiving the room here.
    fn ephemeral(&self, room: &RoomId, event: &hearth_protocol::Event) {
        let _ = (room, event);
    }
}

/// Orders, keeps and serves a server's rooms and their events.
pub trait Broker: Send + Sync + 'static {
    /// Creates a room whose first event is `first`. Fails with `AlreadyExists`, or
    /// with `TooManyRooms` when its owner already owns `max_owned` rooms (checked
    /// atomically with the creation); `None` for a room that counts toward no
    /// owner's rooms (a direct conversation: starting those is rate-limited).
    fn create_room(&self, record: RoomRecord, first: Draft, max_owned: Option<usize>) -> BrokerFuture<'_, Receipt>;
    /// Orders `draft` in its room (see the module's contract). Resolves once the
    /// event has its place, so one caller's publishes keep the order it made them
    /// in; [`Receipt::durable`] then waits until it is durable.
    fn publish(&self, draft: Draft) -> BrokerFuture<'_, Receipt>;
    /// The room's durable state and its newest `recent` events; `None` if there is
    /// no such room.
    fn load_room(&self, room: RoomId, recent: usize) -> BrokerFuture<'_, Option<RoomLoad>>;
    /// Up to `limit` rooms `user` may see, by name, after `after`, with `user`'s
    /// role in each.
    fn list_rooms(&self, user: UserId, after: Option<RoomId>, limit: usize) -> BrokerFuture<'_, Vec<RoomListing>>;
    /// Up to `limit` room names after `after`, by name: every room, for the
    /// search index to read.
    fn room_names(&self, after: Option<RoomId>, limit: usize) -> BrokerFuture<'_, Vec<RoomId>>;
    /// The rooms whose messages changed since `cursor` anywhere in the cluster
    /// (the start of the feed's tail when `None`); `None` for a broker whose
    /// every event is delivered on this node, where the delivery path is enough.
    fn search_feed(&self, cursor: Option<String>) -> BrokerFuture<'_, Option<crate::search::FeedPage>>;
    /// Up to `limit` durable events after `after`, oldest first. The first is not
    /// `after + 1` when the events in between are no longer held.
    fn history_after(&self, room: RoomId, after: Seq, limit: usize) -> BrokerFuture<'_, Vec<StoredEvent>>;
    /// Up to `limit` durable events before `before`: the newest of them, oldest first.
    fn history_before(&self, room: RoomId, before: Seq, limit: usize) -> BrokerFuture<'_, Vec<StoredEvent>>;
    /// The seq of the oldest event still held (head + 1 when none is).
    fn oldest(&self, room: RoomId) -> BrokerFuture<'_, Seq>;
    /// Whether a node's copy of a room may trail the room's order (cluster
    /// mode: an event ordered through another node arrives a moment later), so
    /// a refusal decided on the copy may be stale.
    fn copies_trail(&self) -> bool;
    /// Where the order of `room` is now (`None`: unknown — no such room, or on
    /// one node a room not in memory); one read, for a node to learn whether
    /// its copy trails it.
    fn order_position(&self, room: RoomId) -> BrokerFuture<'_, Option<Position>>;
    /// Sends an ephemeral event of `room` (typing, presence) to the connections
    /// receiving the room, on every node (this one's included).
    fn broadcast(&self, room: RoomId, event: hearth_protocol::Event) -> BrokerFuture<'_, ()>;
    /// Records who is online in `room` on this node, for the other nodes'
    /// `presence`; forgotten if not refreshed within half a minute (a node that
    /// died stops counting).
    fn set_presence(&self, room: RoomId, users: Vec<UserId>) -> BrokerFuture<'_, ()>;
    /// Who the other nodes say is online in `room`.
    fn presence(&self, room: RoomId) -> BrokerFuture<'_, Vec<UserId>>;
    /// Rooms that have scheduled prompts (where the prompt poster looks).
    fn prompt_rooms(&self) -> BrokerFuture<'_, Vec<RoomId>>;
    /// Notes whether `room` has scheduled prompts (cluster mode keeps a list;
    /// a local store finds them by its tables).
    fn index_prompts(&self, room: RoomId, any: bool) -> BrokerFuture<'_, ()>;
    /// The durable events at `seqs` that are still held, in seq order.
    fn events_at(&self, room: RoomId, seqs: Vec<Seq>) -> BrokerFuture<'_, Vec<StoredEvent>>;
    /// Sends `event` to every connection of `user`, on every node (this one's
    /// included).
    fn notify_user(&self, user: UserId, event: hearth_protocol::Event) -> BrokerFuture<'_, ()>;
    /// The durable annotations of `table` under `targets`.
    fn annex(&self, room: RoomId, table: AnnexTable, targets: Vec<Seq>) -> BrokerFuture<'_, Vec<AnnexRow>>;
    /// The annotations of `table` under the newest `limit` targets below
    /// `before`, newest target first.
    fn annex_before(
        &self,
        room: RoomId,
        table: AnnexTable,
        before: Seq,
        limit: usize,
    ) -> BrokerFuture<'_, Vec<AnnexRow>>;
    /// This node has the room in memory: its events must reach [`Delivery`].
    fn subscribe(&self, room: RoomId) -> BrokerFuture<'_, ()>;
    /// This node no longer has the room in memory.
    fn unsubscribe(&self, room: RoomId) -> BrokerFuture<'_, ()>;
    /// Makes everything published so far durable, then stops taking publishes.
    fn shutdown(&self) -> BrokerFuture<'_, ()>;
    /// Whether the broker can take publishes now (for `/readyz`): the store has
    /// not failed; in cluster mode, Redis answers.
    fn ready(&self) -> BrokerFuture<'_, ()>;
}
