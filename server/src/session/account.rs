//! The connection's own requests: `ping`; `auth`, which moves the
//! connection onto a fresh token of its user; `erase_account`.

use hearth_protocol::ops::{Auth, Authed, EraseAccount, Erasure, Ping, Pong};
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
        let expires_at = verified.expires_at();
        session.conn.set_token(verified.generation, expires_at);
        session.reply(id, &Authed { user: verified.user, expires_at }).await;
        Ok(())
    }
}

/// Erases the caller's account (`erasure`): answered once every room is
/// gone through, then the account closes, which closes this connection.
impl Handle for EraseAccount {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let user = session.conn.user.clone();
        if self.confirm != user {
            return Err(ErrorBody::new(
                ErrorCode::BadRequest,
                format!("confirm must be your own name, {user}, to erase your account; nothing was erased"),
            ));
        }
        let shared = session.shared.clone();
        let at = shared.clock.now();
        let (told, first_part) = tokio::sync::oneshot::channel();
        let (replied, answered) = tokio::sync::oneshot::channel::<()>();
        // Its own task: the erasure goes on if this connection drops.
        let erasing = user.clone();
        tokio::spawn(async move {
            let first = crate::erasure::begin(&shared, &erasing, at).await;
            let went = first.is_ok();
            let _ = told.send(first);
            if went {
                // The answer goes out before the account closes the connection.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), answered).await;
                if let Err(error) = crate::erasure::finish(&shared, &erasing, at).await {
                    tracing::error!(user = %erasing, %error, "erasure not finished");
                }
            }
        });
        let erased = first_part
            .await
            .map_err(|_| {
                ErrorBody::new(ErrorCode::Internal, "the erasure stopped; it is done again at the next start")
            })?
            .map_err(|error| ErrorBody::new(ErrorCode::Overloaded, error.to_string()))?;
        session.reply(id, &Erasure { user, rooms: erased.rooms, messages: erased.messages }).await;
        let _ = replied.send(());
        Ok(())
    }
}
