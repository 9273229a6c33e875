//! How a handler has its request decided, ordered and answered — through the
//! registry's one decide-and-order path (`Registry::decide_and_order`, which
//! decides again where a cluster node's copy trailed the order) — and
//! answered when durable from the bounded set of in-flight replies (messages),
//! or once this node's copy of the room has applied it, so the member's next
//! request sees it (the community tools).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use hearth_protocol::codec::{encode_error, encode_reply};
use hearth_protocol::ops::Appended;
use hearth_protocol::{ErrorBody, ErrorCode, Event, RequestId, UserId};
use serde::Serialize;

use super::Session;
use crate::broker::{Published, Receipt};
use crate::frames::frame_message;
use crate::room::{Draft, Refusal, RoomState};
use crate::rooms::Room;

/// How long a join or a room creation waits to see its own event applied. The
/// journal answers within milliseconds or stops the server, so this only guards
/// against a bug turning into a stuck connection.
const APPLY_WAIT: Duration = Duration::from_secs(30);

impl Session {
    /// Decides `args` on `room` and has the event ordered, then replies (made
    /// by `reply` from where it landed) once it is durable, from the in-flight
    /// set: the session waits until it is ordered, so one connection's events
    /// keep the order it sent them in, not until it is durable.
    pub(super) async fn decide_published<A, F, R>(
        &mut self,
        id: RequestId,
        room: &Arc<Room>,
        args: A,
        decide: impl Fn(&RoomState, A) -> Result<Draft, Refusal>,
        reply: F,
    ) -> Result<(), ErrorBody>
    where
        A: Clone,
        R: Serialize,
        F: FnOnce(Published) -> R + Send + Sync + 'static,
    {
        self.check_in_flight()?;
        let ordered = self.shared.registry.decide_and_order(room, args, decide, |_| ()).await?;
        self.reply_when_durable(id, ordered.receipt, reply);
        Ok(())
    }

    /// Decides `args` on `room` and has the event ordered; resolves once it is
    /// durable and this node's copy has applied it (in cluster mode the copy
    /// follows Redis a moment behind), with what `peek` took of the draft.
    pub(super) async fn decide_ordered_peek<A: Clone, T>(
        &self,
        room: &Arc<Room>,
        args: A,
        decide: impl Fn(&RoomState, A) -> Result<Draft, Refusal>,
        peek: impl Fn(&Draft) -> T,
    ) -> Result<(Published, T), ErrorBody> {
        let ordered = self.shared.registry.decide_and_order(room, args, decide, peek).await?;
        let published = applied(room, ordered.receipt).await?;
        Ok((published, ordered.seen))
    }

    /// [`decide_ordered_peek`](Self::decide_ordered_peek), taking nothing of
    /// the draft.
    pub(super) async fn decide_ordered<A: Clone>(
        &self,
        room: &Arc<Room>,
        args: A,
        decide: impl Fn(&RoomState, A) -> Result<Draft, Refusal>,
    ) -> Result<Published, ErrorBody> {
        Ok(self.decide_ordered_peek(room, args, decide, |_| ()).await?.0)
    }

    /// Decides and orders (`decide_ordered`), then replies `{seq, ts}`: for
    /// the community tools, whose member's next request — decided on this
    /// copy — must see it.
    pub(super) async fn decide_applied<A: Clone>(
        &mut self,
        id: RequestId,
        room: &Arc<Room>,
        args: A,
        decide: impl Fn(&RoomState, A) -> Result<Draft, Refusal>,
    ) -> Result<(), ErrorBody> {
        let published = self.decide_ordered(room, args, decide).await?;
        self.reply(id, &Appended { seq: published.seq, ts: published.ts, held: false }).await;
        Ok(())
    }

    /// Refuses a write while the most allowed are waiting to be stored.
    pub(super) fn check_in_flight(&self) -> Result<(), ErrorBody> {
        let waiting = self.in_flight.as_ref().map_or(0, FuturesUnordered::len);
        let max = self.shared.config.limits.max_in_flight;
        if waiting >= max {
            return Err(ErrorBody::new(
                ErrorCode::RateLimited,
                format!("{waiting} requests of this connection are waiting to be stored, the most allowed; wait for their replies"),
            )
            .retry_after(50));
        }
        Ok(())
    }

    /// Replies to `id` once the ordered write of `receipt` is durable.
    pub(super) fn reply_when_durable<T, F>(&mut self, id: RequestId, receipt: Receipt, reply: F)
    where
        T: Serialize,
        F: FnOnce(Published) -> T + Send + Sync + 'static,
    {
        let codec = self.conn.codec;
        self.in_flight.get_or_insert_with(FuturesUnordered::new).push(Box::pin(async move {
            let bytes = match receipt.durable().await {
                Ok(published) => encode_reply(codec, id, &reply(published)),
                Err(error) => encode_error(codec, id, &ErrorBody::from(error)),
            };
            frame_message(codec, bytes)
        }));
    }

    /// As [`Session::reply_when_durable`], running `after` once the event is
    /// durable and before the reply is sent.
    pub(super) fn reply_when_durable_after<T, F, A, Fut>(&mut self, id: RequestId, receipt: Receipt, after: A, reply: F)
    where
        T: Serialize,
        F: FnOnce(Published) -> T + Send + Sync + 'static,
        A: FnOnce(Published) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let codec = self.conn.codec;
        self.in_flight.get_or_insert_with(FuturesUnordered::new).push(Box::pin(async move {
            let bytes = match receipt.durable().await {
                Ok(published) => {
                    // On a task of its own: what it awaits need not be Sync,
                    // as everything a connection keeps in flight must.
                    let _ = tokio::spawn(after(published)).await;
                    encode_reply(codec, id, &reply(published))
                }
                Err(error) => encode_error(codec, id, &ErrorBody::from(error)),
            };
            frame_message(codec, bytes)
        }));
    }

    /// Sends `event` to every connection of `user`, on every node.
    pub(super) async fn notify_user(&self, user: UserId, event: Event) {
        if let Err(error) = self.shared.registry.broker().notify_user(user.clone(), event).await {
            // They find it on their next join (PROTOCOL.md, "Vetting").
            tracing::warn!(%user, %error, "could not notify a user");
        }
    }
}

/// Waits until `receipt`'s event is durable and `room`'s copy here has
/// applied it.
pub(super) async fn applied(room: &Room, receipt: Receipt) -> Result<Published, ErrorBody> {
    let published = receipt.durable().await?;
    applied_within(room.wait_applied(published.seq)).await?;
    Ok(published)
}

/// Waits for a room to apply an event this connection caused, within a bound.
pub(super) async fn applied_within(wait: impl Future<Output = ()>) -> Result<(), ErrorBody> {
    tokio::time::timeout(APPLY_WAIT, wait)
        .await
        .map_err(|_| ErrorBody::new(ErrorCode::Internal, "the write was not confirmed in time; retry"))
}
