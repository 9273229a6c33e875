//! Keeping connections honest with no timer of their own: one task looks over
//! every connection of the node a few times per ping interval, pings those it
//! has heard nothing from for an interval, and closes those silent past the
//! idle timeout (4007) and those whose token has expired (4002). A timer per
//! connection cost every idle member ~150 bytes (tokio's `Sleep`, boxed, and
//! the interval beside it in the connection's task) and woke each one on its
//! own; this costs three atomics per connection and one pass a second. The
//! same pass has each connection let go of its outbound queue's spare buffer
//! when empty (`Outbound::release_spare`): 192 bytes an idle member kept.

use std::sync::atomic::Ordering;
use std::time::Duration;

use hearth_protocol::{CloseCode, Millis};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::Shared;
use crate::clock::monotonic_ms;
use crate::hub::Conn;

/// How often connections are looked over: a quarter of the ping interval, at
/// most a second (so an expired token is acted on within one), at least 10 ms.
pub fn sweep_every(ping_interval: Duration) -> Duration {
    (ping_interval / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// The close reason of a connection whose token expired.
pub const TOKEN_EXPIRED: &str =
    "token_expired: the token this connection runs on has expired; reconnect with a fresh one";

enum Due {
    Ping,
    IdleTimeout,
    TokenExpired,
}

/// Looks over the node's connections every [`sweep_every`] until `stop`.
pub async fn run(shared: std::sync::Arc<Shared>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(sweep_every(shared.config.ping_interval));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        sweep(&shared);
    }
}

fn sweep(shared: &Shared) {
    let limits = Limits { ping: shared.config.ping_interval, idle: shared.config.idle_timeout };
    let (now, clock) = (monotonic_ms(), shared.clock.now());
    for conn in shared.registry.hub().connections() {
        conn.out.release_spare();
        let Some(due) = limits.due(&conn, now, clock) else { continue };
        match due {
            Due::Ping => {
                conn.pinged.store(now, Ordering::Relaxed);
                // A full queue closes the connection as a slow consumer.
                let _ = conn.out.push(Message::Ping(Default::default()));
            }
            Due::IdleTimeout => conn
                .out
                .close(CloseCode::IdleTimeout, "idle_timeout: nothing heard from the client; reconnect and resume"),
            Due::TokenExpired => conn.out.close(CloseCode::TokenExpired, TOKEN_EXPIRED),
        }
    }
}

struct Limits {
    ping: Duration,
    idle: Duration,
}

impl Limits {
    /// What `conn` is due, at `now` (`monotonic_ms`) and `clock` (the server's).
    fn due(&self, conn: &Conn, now: u64, clock: Millis) -> Option<Due> {
        if clock >= conn.token_expires() {
            return Some(Due::TokenExpired);
        }
        let silent = now.saturating_sub(conn.heard.load(Ordering::Relaxed));
        if silent >= self.idle.as_millis() as u64 {
            return Some(Due::IdleTimeout);
        }
        let ping = self.ping.as_millis() as u64;
        let since_ping = now.saturating_sub(conn.pinged.load(Ordering::Relaxed));
        (silent >= ping && since_ping >= ping).then_some(Due::Ping)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hearth_protocol::UserId;

    use super::*;
    use crate::hub::ConnId;
    use crate::outbound::Outbound;

    #[test]
    fn a_silent_connection_is_pinged_once_an_interval_then_closed_and_an_expired_token_closes_it() {
        let limits = Limits { ping: Duration::from_secs(20), idle: Duration::from_secs(60) };
        let user = UserId::new("ada").unwrap();
        let conn = Conn::new(ConnId(1), user, hearth_protocol::Codec::MsgPack, Arc::new(Outbound::new(1 << 20)));
        conn.set_token(None, Millis(1_000_000));
        let (heard, clock) = (conn.heard.load(Ordering::Relaxed), Millis(1_000));
        let due = |at: u64| limits.due(&conn, heard + at, clock);
        assert!(due(19_999).is_none(), "heard from lately");
        assert!(matches!(due(20_000), Some(Due::Ping)));
        conn.pinged.store(heard + 20_000, Ordering::Relaxed);
        assert!(due(39_999).is_none(), "pinged lately");
        assert!(matches!(due(40_000), Some(Due::Ping)));
        assert!(matches!(due(60_000), Some(Due::IdleTimeout)));
        conn.heard();
        assert!(limits.due(&conn, monotonic_ms(), clock).is_none(), "heard again");
        assert!(matches!(limits.due(&conn, monotonic_ms(), Millis(1_000_000)), Some(Due::TokenExpired)));
    }
}
