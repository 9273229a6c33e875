//! The connection's own requests: `ping`, and `auth`, which moves the
//! connection onto a fresh token of its user.

use hearth_protocol::ops::{Auth, Authed, Ping, Pong};
use hearth_protocol::{ErrorBody, ErrorCode, RequestId};

use super::Session;
use super::dispatch::Handle;

impl Handle for Ping {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        session.reply(id, &Pong { ts: session.shared.clock.now() }).await;
        Ok(())
    }
}

/// Moves the connection onto a fresh token of the same user.
impl Handle for Auth {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let refused = |why: String| {
            crate::metrics::get().auth_failures.increment(1);
            ErrorBody::new(ErrorCode::Unauthorized, why)
        };
        let (secret, now) = (&session.shared.config.token_secret, session.shared.accounts.now_secs());
        let verified = crate::auth::verify_kind_at(secret, &args.token, crate::auth::TokenKind::Access, now)
            .map_err(|e| refused(format!("{e}; this connection keeps its current token")))?;
        if verified.user != session.conn.user {
            return Err(refused(format!(
                "that token is {}'s; this connection is {}'s",
                verified.user, session.conn.user
            )));
        }
        session.shared.accounts.admit(&verified).await.map_err(|refusal| refused(refusal.reason()))?;
        session.conn.set_generation(verified.generation);
        session.token_expires = verified.expires_at();
        let expires_at = verified.expires_at();
        session.reply(id, &Authed { user: verified.user, expires_at }).await;
        Ok(())
    }
}
