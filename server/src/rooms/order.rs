//! The one decide-and-order path every request that appends to a timeline
//! takes, on one node and in a cluster: decide on this node's copy of the
//! room, have the broker order the draft (which re-checks what it requires),
//! and — where a copy may trail the order (a cluster) — decide once more when
//! the answer may have come from a copy that had not yet applied an event
//! ordered through another node a moment before: a refusal that depends on
//! such state (a role, a membership, a held post, an invite), or the order
//! saying the room's rules changed after the copy that decided it.

use std::sync::Arc;
use std::time::Duration;

use hearth_protocol::Position;

use super::{Registry, Room};
use crate::broker::{BrokerError, Receipt};
use crate::room::{Draft, Refusal, RoomState};

/// How long a request decided on a trailing copy waits for the copy to catch
/// up before its first answer stands.
const STALE_WAIT: Duration = Duration::from_secs(2);

/// What deciding and ordering gave: where the event landed (and a wait for it
/// to be durable), and what the caller took from the draft before it went.
pub struct Ordered<T> {
    pub receipt: Receipt,
    pub seen: T,
}

impl Registry {
    /// Decides `args` on `room`'s copy with `decide`, and has the order take the
    /// draft; `peek` takes what the caller needs of the draft before it goes.
    /// In a cluster, once, a stale-looking answer is decided again on the copy
    /// caught up with the order (`args` is kept for that only there: one node
    /// has no copy to trail, and pays no clone).
    pub async fn decide_and_order<A, T>(
        &self,
        room: &Arc<Room>,
        args: A,
        decide: impl Fn(&RoomState, A) -> Result<Draft, Refusal>,
        peek: impl Fn(&Draft) -> T,
    ) -> Result<Ordered<T>, BrokerError>
    where
        A: Clone,
    {
        let ordered = self.decide_and_order_any(room, args, |s, a| decide(s, a).map(Some), peek).await?;
        Ok(ordered.unwrap_or_else(|| unreachable!("every decision here drafts an event")))
    }

    /// [`decide_and_order`](Self::decide_and_order) for a decision that may
    /// have nothing to order (a join by a member): `None` then.
    pub async fn decide_and_order_any<A, T>(
        &self,
        room: &Arc<Room>,
        args: A,
        decide: impl Fn(&RoomState, A) -> Result<Option<Draft>, Refusal>,
        peek: impl Fn(&Draft) -> T,
    ) -> Result<Option<Ordered<T>>, BrokerError>
    where
        A: Clone,
    {
        let trails = self.broker().copies_trail();
        let before = room.position();
        let spare = trails.then(|| args.clone());
        let first = self.try_order(room, args, &decide, &peek).await;
        // Refused by the copy or by the order alike: the refusal says whether
        // the state it depends on may have moved on meanwhile.
        let stale = matches!(&first, Err(BrokerError::Rejected { why, .. }) if why.may_be_stale());
        match spare {
            Some(args) if stale && self.caught_up(room, before).await => {
                self.try_order(room, args, &decide, &peek).await
            }
            _ => first,
        }
    }

    async fn try_order<A, T>(
        &self,
        room: &Room,
        args: A,
        decide: &impl Fn(&RoomState, A) -> Result<Option<Draft>, Refusal>,
        peek: &impl Fn(&Draft) -> T,
    ) -> Result<Option<Ordered<T>>, BrokerError> {
        let decided =
            room.decide(|s| decide(s, args)).map_err(|why| BrokerError::Rejected { room: room.id.clone(), why })?;
        let Some(draft) = decided else { return Ok(None) };
        let seen = peek(&draft);
        let receipt = self.broker().publish(draft).await?;
        Ok(Some(Ordered { receipt, seen }))
    }

    /// After an answer decided on `copy`, which stood at `before` when the
    /// request came: whether the room's order was then further on — an event
    /// ordered through another node a moment ago may be missing from what the
    /// answer saw — and the copy has now caught up with it, so deciding again
    /// may answer otherwise. Events ordered before the request came are at or
    /// below the order's position read now; if that is not past `before`, the
    /// copy had them all and the answer stands.
    pub async fn caught_up(&self, copy: &Room, before: Position) -> bool {
        let Ok(Some(order)) = self.broker().order_position(copy.id.clone()).await else { return false };
        if order.epoch != before.epoch || order.seq <= before.seq {
            return false;
        }
        tokio::time::timeout(STALE_WAIT, copy.wait_applied(order.seq)).await.is_ok()
    }
}
