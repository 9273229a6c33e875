//! How a handler has its event ordered and answered: published to the
//! broker (waiting until it is ordered, so one connection's events keep its
//! order) and answered when durable from the bounded set of in-flight
//! replies — or, for the community tools, answered once this node's copy of
//! the room has applied it, so the member's next request sees it. And, in a
//! cluster, when a refusal decided on a copy that trails the order may be
//! decided again.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use hearth_protocol::codec::{encode_error, encode_reply};
use hearth_protocol::ops::Appended;
use hearth_protocol::{ErrorBody, ErrorCode, Event, RequestId, UserId};
use serde::Serialize;

use super::Session;
use crate::broker::Published;
use crate::frames::frame_message;
use crate::room::Draft;
use crate::rooms::Room;

/// How long a join or a room creation waits to see its own event applied. The
/// journal answers within milliseconds or stops the server, so this only guards
/// against a bug turning into a stuck connection.
const APPLY_WAIT: Duration = Duration::from_secs(30);

/// How long a request refused on a trailing copy waits for the copy to catch
/// up before the refusal stands.
const STALE_WAIT: Duration = Duration::from_secs(2);

/// Refusals that depend on room state an event ordered through another node
/// may have just changed. The rest (bad input, limits, slow mode, ...) do not.
pub(super) fn may_be_stale(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::NotMember
            | ErrorCode::Forbidden
            | ErrorCode::NoSuchTarget
            | ErrorCode::Muted
            | ErrorCode::Banned
            | ErrorCode::AckRequired
            | ErrorCode::InvalidInvite
            | ErrorCode::ApprovalRequired
            | ErrorCode::InviteRequired
    )
}

impl Session {
    /// Publishes `draft`: waits until it is ordered (so one connection's events
    /// keep the order it sent them in), not until it is durable. The reply, made
    /// by `reply` from where the event landed, goes out once it is.
    pub(super) async fn publish<T, F>(&mut self, id: RequestId, draft: Draft, reply: F) -> Result<(), ErrorBody>
    where
        T: Serialize,
        F: FnOnce(Published) -> T + Send + Sync + 'static,
    {
        self.check_in_flight()?;
        let receipt = self.shared.registry.broker().publish(draft).await.map_err(|e| e.to_error())?;
        self.reply_when_durable(id, receipt, reply);
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
    pub(super) fn reply_when_durable<T, F>(&mut self, id: RequestId, receipt: crate::broker::Receipt, reply: F)
    where
        T: Serialize,
        F: FnOnce(Published) -> T + Send + Sync + 'static,
    {
        let codec = self.conn.codec;
        self.in_flight.get_or_insert_with(FuturesUnordered::new).push(Box::pin(async move {
            let bytes = match receipt.durable().await {
                Ok(published) => encode_reply(codec, id, &reply(published)),
                Err(error) => encode_error(codec, id, &error.to_error()),
            };
            frame_message(codec, bytes)
        }));
    }

    /// Orders `draft` and waits until it is durable and `room`'s copy here has
    /// applied it (in cluster mode the copy follows Redis a moment behind), so
    /// the member's next request sees it.
    pub(super) async fn order(&self, room: &Room, draft: Draft) -> Result<Published, ErrorBody> {
        let receipt = self.shared.registry.broker().publish(draft).await.map_err(|e| e.to_error())?;
        let published = receipt.durable().await.map_err(|e| e.to_error())?;
        applied_within(room.wait_applied(published.seq)).await?;
        Ok(published)
    }

    /// Sends `event` to every connection of `user`, on every node.
    pub(super) async fn notify_user(&self, user: UserId, event: Event) {
        match self.shared.registry.broker().notify_user(user.clone(), event.clone()).await {
            Ok(true) => {}
            Ok(false) => self.shared.registry.hub().send_to_user(&user, &event),
            Err(error) => tracing::warn!(%user, %error, "could not notify a user"),
        }
    }

    /// Orders `draft` and replies once this node's copy of the room has
    /// applied it, so the member's next request — decided on this copy — sees
    /// it (in cluster mode the copy follows Redis a moment behind). For the
    /// community tools' requests; messages reply when durable (`publish`).
    pub(super) async fn publish_applied(&mut self, id: RequestId, room: &Room, draft: Draft) -> Result<(), ErrorBody> {
        let published = self.order(room, draft).await?;
        self.reply(id, &Appended { seq: published.seq, ts: published.ts, held: false }).await;
        Ok(())
    }
}

/// Waits for a room to apply an event this connection caused, within a bound.
pub(super) async fn applied_within(wait: impl Future<Output = ()>) -> Result<(), ErrorBody> {
    tokio::time::timeout(APPLY_WAIT, wait)
        .await
        .map_err(|_| ErrorBody::new(ErrorCode::Internal, "the write was not confirmed in time; retry"))
}

/// After a refusal decided on `copy`, which stood at `before` when the request
/// came: whether the room's order was then further on — an event ordered
/// through another node a moment ago (a role, a membership, a held post) may
/// be missing from what the refusal saw — and the copy has now caught up with
/// it, so deciding again may answer otherwise. Events ordered before the
/// request came are at or below the order's position read now; if that is
/// not past `before`, the copy had them all and the refusal stands.
pub(super) async fn caught_up(broker: &Arc<dyn crate::Broker>, copy: &Room, before: hearth_protocol::Position) -> bool {
    let Ok(Some(order)) = broker.order_position(copy.id.clone()).await else { return false };
    if order.epoch != before.epoch || order.seq <= before.seq {
        return false;
    }
    tokio::time::timeout(STALE_WAIT, copy.wait_applied(order.seq)).await.is_ok()
}
