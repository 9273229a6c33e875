//! The hub: every live connection on this node, indexed by user, with the rooms
//! each one receives. A room's own subscriber list (in `rooms`) is the index by
//! room, and what happens to a user in a room — a leave now, a kick or a ban
//! later — reaches every connection of theirs receiving it through that list (one
//! still joining stops at its switch to live). The index by user holds a user's
//! connections: it enforces the per-user connection limit, atomically, and is
//! where something that must reach all of a user's connections, in any room,
//! will find them.
//!
//! Sharded (`DashMap`) by user, so connections of different users rarely meet on
//! a lock; nothing here is on the message hot path.
//!
//! `Conn::rooms` and the user shards are leaves of the lock order
//! (ARCHITECTURE.md, "Locks and their order").

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use dashmap::DashMap;
use hearth_protocol::{Codec, Millis, RoomId, UserId};

use crate::outbound::Outbound;

/// Identifies one connection on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

/// One live connection, as rooms and the hub see it.
pub struct Conn {
    pub id: ConnId,
    pub user: UserId,
    pub codec: Codec,
    pub out: Arc<Outbound>,
    /// Rooms this connection receives, so it can leave them when it closes. A
    /// Vec: a connection receives a handful of rooms, and a set's smallest table
    /// costs more than the whole list. std Mutex: held for a push or a removal.
    rooms: Mutex<Vec<RoomId>>,
    /// The account generation of the token the connection runs on (0: a
    /// token minted for a name, tied to no generation).
    generation: AtomicU64,
    /// Its `hello` is queued: events for its user may follow (the hello is
    /// every connection's first frame).
    greeted: std::sync::atomic::AtomicBool,
    /// When the token the connection runs on expires, on the server's clock
    /// (ms): `keepalive` closes it then (4002). `auth` moves it.
    token_expires: AtomicU64,
    /// When the client was last heard, and last pinged (`clock::monotonic_ms`).
    pub(crate) heard: AtomicU64,
    pub(crate) pinged: AtomicU64,
}

impl Conn {
    pub fn new(id: ConnId, user: UserId, codec: Codec, out: Arc<Outbound>) -> Conn {
        Conn {
            id,
            user,
            codec,
            out,
            rooms: Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
            greeted: std::sync::atomic::AtomicBool::new(false),
            token_expires: AtomicU64::new(u64::MAX),
            heard: AtomicU64::new(crate::clock::monotonic_ms()),
            pinged: AtomicU64::new(crate::clock::monotonic_ms()),
        }
    }

    /// Something came from the client.
    pub fn heard(&self) {
        self.heard.store(crate::clock::monotonic_ms(), Ordering::Relaxed);
    }

    /// Its `hello` is queued.
    pub fn greeted(&self) {
        self.greeted.store(true, Ordering::Release);
    }

    /// The connection now runs on a token of this account generation, which
    /// expires then (on the server's clock).
    pub fn set_token(&self, generation: Option<u64>, expires: Millis) {
        self.generation.store(generation.unwrap_or(0), Ordering::Relaxed);
        self.token_expires.store(expires.0, Ordering::Relaxed);
    }

    pub fn token_expires(&self) -> Millis {
        Millis(self.token_expires.load(Ordering::Relaxed))
    }

    pub fn generation(&self) -> Option<u64> {
        Some(self.generation.load(Ordering::Relaxed)).filter(|g| *g != 0)
    }

    fn rooms(&self) -> MutexGuard<'_, Vec<RoomId>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that this connection now receives `room`.
    pub fn receiving(&self, room: &RoomId) {
        let mut rooms = self.rooms();
        if !rooms.contains(room) {
            // One place at a time: a first push would make room for four (72
            // bytes more than the one room most members are in).
            rooms.reserve_exact(1);
            rooms.push(room.clone());
        }
    }

    /// Records that this connection no longer receives `room`.
    pub fn not_receiving(&self, room: &RoomId) {
        self.rooms().retain(|r| r != room);
    }

    /// Rooms this connection receives now.
    pub fn receiving_rooms(&self) -> Vec<RoomId> {
        self.rooms().clone()
    }
}

#[derive(Default)]
pub struct Hub {
    by_user: DashMap<UserId, Vec<Arc<Conn>>>,
}

impl Hub {
    /// Adds a connection unless its user has `max` already; under the user's
    /// shard lock, so concurrent connections cannot both take the last place.
    pub fn try_register(&self, conn: Arc<Conn>, max: usize) -> bool {
        let mut conns = self.by_user.entry(conn.user.clone()).or_default();
        if conns.len() >= max {
            return false;
        }
        conns.push(conn);
        true
    }

    /// Every connection here, to be acted on after the shards' locks are let
    /// go of.
    pub fn connections(&self) -> Vec<Arc<Conn>> {
        self.by_user.iter().flat_map(|entry| entry.value().clone()).collect()
    }

    /// Users with at least one connection here.
    pub fn users(&self) -> Vec<UserId> {
        self.by_user.iter().map(|entry| entry.key().clone()).collect()
    }

    /// Closes the connections of `user` that `close` picks, with `code`; how
    /// many it closed.
    pub fn close_user(
        &self,
        user: &UserId,
        close: impl Fn(&Conn) -> bool,
        code: hearth_protocol::CloseCode,
        reason: &str,
    ) -> usize {
        let conns = self.by_user.get(user).map(|conns| conns.clone()).unwrap_or_default();
        let mut closed = 0;
        for conn in conns.iter().filter(|c| close(c)) {
            conn.out.close(code, reason);
            closed += 1;
        }
        closed
    }

    /// Queues `event` on every connection of `user` here.
    pub fn send_to_user(&self, user: &UserId, event: &hearth_protocol::Event) {
        let conns = self.by_user.get(user).map(|conns| conns.clone()).unwrap_or_default();
        // A connection still being set up has not sent its hello: what it
        // would be told now it reads when it starts (list_rooms, read_state).
        for conn in conns.iter().filter(|c| c.greeted.load(Ordering::Acquire)) {
            let _ = conn.out.push(crate::frames::event_frame(conn.codec, event));
        }
    }

    pub fn unregister(&self, conn: &Conn) {
        self.by_user.remove_if_mut(&conn.user, |_, conns| {
            conns.retain(|c| c.id != conn.id);
            conns.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::Outbound;
    use std::collections::VecDeque;

    fn queued(conn: &Conn) -> usize {
        let mut batch = VecDeque::new();
        let _ = conn.out.take_queued(&mut batch);
        batch.len()
    }

    #[test]
    fn a_connection_hears_its_users_events_only_after_its_hello() {
        let hub = Hub::default();
        let ada = UserId::new("ada").unwrap();
        let conn = Arc::new(Conn::new(ConnId(1), ada.clone(), Codec::Json, Arc::new(Outbound::new(1 << 20))));
        assert!(hub.try_register(conn.clone(), 10));
        let event = hearth_protocol::Event::Blocks(hearth_protocol::event::BlocksEvent { users: Vec::new() });
        hub.send_to_user(&ada, &event);
        assert_eq!(queued(&conn), 0, "before the hello: its first frame must be the hello");
        conn.greeted();
        hub.send_to_user(&ada, &event);
        assert_eq!(queued(&conn), 1);
    }
}
