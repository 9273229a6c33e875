//! Accounts: for communities that do not want an operator minting tokens.
//! A person registers a name with a password (with an operator's invite code,
//! or freely when the operator opened registration), logs in for a pair of
//! tokens — a short-lived access token for connections and a longer refresh
//! token that buys new pairs — and changes the password. The operator disables
//! an account: its live connections close at once, on every node, and none of
//! its tokens work again.
//!
//! Tokens stay stateless JWTs (`auth`); what ties them to an account is the
//! account's `generation`, carried in each token and bumped by a password
//! change or a disable. Checking a token against its account is one lookup:
//! a map in memory on one node, one Redis read in a cluster.
//!
//! Passwords are hashed with Argon2id, two at a time at most, so a flood of
//! logins costs bounded memory and CPU. The parameters are OWASP's first
//! choice, 46 MiB and one pass, rather than its equal 19 MiB and two: glibc
//! serves blocks over 32 MiB straight from `mmap` and gives them back when
//! freed, while 19 MiB blocks raised its reuse threshold and stayed — fifty
//! logins at once left the server 470 MB larger (measured; see the note in
//! ARCHITECTURE.md).
//! The stores: [`local`] (in memory, or SQLite in the data directory) and
//! Redis (in `broker::cluster`), behind [`AccountStore`].

pub mod api;
mod errors;
pub mod local;

pub use self::errors::{AccountError, Refusal};

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use hearth_protocol::{Millis, UserId};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::auth::{self, Secret, TokenKind, Verified};
use crate::clock::SharedClock;
use crate::hub::{Conn, Hub};

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub name: UserId,
    /// Argon2id, in the PHC string format (salt and parameters included).
    pub password_hash: String,
    pub created_at: Millis,
    /// Tokens minted in another generation are not valid.
    pub generation: u64,
    /// Why the operator disabled it; `None` while it is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<String>,
}

/// A registration invite: what `--registration invite` asks of a newcomer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignupInvite {
    pub code: String,
    pub uses_left: u32,
    pub expires_at: Millis,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreFailure {
    #[error("the name is taken")]
    Taken,
    #[error("no such account")]
    NoSuchAccount,
    #[error("the invite code is unknown, expired or used up")]
    InvalidInvite,
    #[error("the account store is unavailable: {0}")]
    Unavailable(String),
}

pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreFailure>> + Send + 'a>>;

/// Where accounts and registration invites live. Each call is atomic.
pub trait AccountStore: Send + Sync + 'static {
    fn get(&self, name: UserId) -> StoreFuture<'_, Option<Account>>;
    /// Adds `account` unless its name is taken; with `invite`, only if the
    /// invite has a use left at `now`, which it then spends.
    fn create(&self, account: Account, invite: Option<String>, now: Millis) -> StoreFuture<'_, ()>;
    /// Replaces the password hash and bumps the generation.
    fn set_password(&self, name: UserId, password_hash: String) -> StoreFuture<'_, Account>;
    /// Disables (with the reason; the generation is bumped) or enables.
    fn set_disabled(&self, name: UserId, reason: Option<String>) -> StoreFuture<'_, Account>;
    /// Adds `invite`, forgetting those expired at `now`.
    fn add_invite(&self, invite: SignupInvite, now: Millis) -> StoreFuture<'_, ()>;
    /// Every account, by name (the operator's list; communities are small).
    fn list(&self) -> StoreFuture<'_, Vec<Account>>;
    /// Counts a login attempt on `name` where every node sees it: how long to
    /// wait when this minute's `limit` is spent. A store only one node uses
    /// counts nothing (that node's own limiter is the whole count).
    fn count_attempt(&self, name: UserId, limit: u32) -> StoreFuture<'_, Option<Duration>> {
        let _ = (name, limit);
        Box::pin(async { Ok(None) })
    }
    /// Spends the ticket `id` (good for `ttl`) where every node sees it:
    /// whether it was still unspent. `None` from a store only one node uses
    /// (that node's own memory of spent tickets is the whole record).
    fn spend_ticket(&self, id: String, ttl: Duration) -> StoreFuture<'_, Option<bool>> {
        let _ = (id, ttl);
        Box::pin(async { Ok(None) })
    }
}

/// What a node hears of accounts changed elsewhere (cluster mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// This account was disabled or its password changed: close its
    /// connections here that it no longer admits.
    Changed(UserId),
    /// Announcements may have been missed: check every connected user.
    Recheck,
    /// An event (MessagePack) for every connection of this user here.
    ToUser(UserId, bytes::Bytes),
}

/// Who may register.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Registration {
    /// Nobody registers; accounts made before keep working, and so do the
    /// operator's minted tokens.
    Closed,
    /// With an invite code from the operator (`hearth-server accounts invite`).
    #[default]
    Invite,
    /// Anyone who can reach the server.
    Open,
}

#[derive(Debug, Clone)]
pub struct AccountsConfig {
    pub registration: Registration,
    /// Life of an access token from a login or refresh.
    pub token_ttl: Duration,
    /// Life of a refresh token.
    pub refresh_ttl: Duration,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        AccountsConfig {
            registration: Registration::Invite,
            token_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// An erased account's reason for being closed, and the password hash of
/// every account closed for good (one no password matches: it is not a hash).
pub const ERASED: &str = "erased";

/// Names no one registers: whom erased members' kept words and imported
/// messages of unmapped authors are shown as from.
pub const RESERVED: [&str; 2] = [hearth_protocol::event::FORMER_MEMBER, crate::import::GUEST];

/// Shortest and longest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 256;
/// Passwords hashed at once; each Argon2id run holds 46 MiB while it runs.
const HASHING_AT_ONCE: usize = 2;
/// How long a request waits for a hashing slot before being told to retry.
const HASHING_WAIT: Duration = Duration::from_secs(5);
/// Login attempts per account per minute (a guesser gets 10, a person needs one).
const ATTEMPTS_PER_MINUTE: u32 = 10;
/// What a login verifies against when the name has no account, so a guesser
/// cannot tell names from the time the answer takes: a hash made once with
/// [`argon2`]'s parameters (a test keeps them equal). A constant, because
/// hashing one at start-up cost every start a hash's time and left 46 MiB
/// resident that the allocator had no reason to give back.
const DECOY_HASH: &str =
    "$argon2id$v=19$m=47104,t=1,p=1$LUhc/w9smfS9JoV5gjCVfg$4RtYBufhmXK9ZScpG7t3v0/PE66ssPlqNPjSvaf3Y20";

/// What a login, registration, refresh or password change gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub user: UserId,
    pub token: String,
    /// Unix milliseconds, like every time in the protocol.
    pub expires_at: u64,
    pub refresh_token: String,
    pub refresh_expires_at: u64,
}

type AttemptLimiter = governor::DefaultKeyedRateLimiter<UserId>;

/// The accounts of one server: policy over an [`AccountStore`].
pub struct Accounts {
    store: Arc<dyn AccountStore>,
    config: AccountsConfig,
    secret: Secret,
    clock: SharedClock,
    hub: Arc<Hub>,
    hashing: Semaphore,
    attempts: AttemptLimiter,
    /// Tickets spent on this node, by id, with when: each works once. Those
    /// older than a ticket lives are forgotten as new ones come.
    spent_tickets: dashmap::DashMap<String, std::time::Instant>,
}

/// How long a ticket is good for: the time to open a WebSocket with it.
pub const TICKET_TTL: Duration = Duration::from_secs(30);

impl Accounts {
    pub fn new(
        store: Arc<dyn AccountStore>,
        config: AccountsConfig,
        secret: Secret,
        clock: SharedClock,
        hub: Arc<Hub>,
    ) -> Accounts {
        let quota = governor::Quota::per_minute(NonZeroU32::new(ATTEMPTS_PER_MINUTE).expect("nonzero"));
        Accounts {
            store,
            config,
            secret,
            clock,
            hub,
            hashing: Semaphore::new(HASHING_AT_ONCE),
            attempts: governor::RateLimiter::keyed(quota),
            spent_tickets: dashmap::DashMap::new(),
        }
    }

    pub fn config(&self) -> &AccountsConfig {
        &self.config
    }

    /// The server's time in Unix seconds, as tokens count it: its clock, which
    /// tests move instead of waiting for a token to expire.
    pub fn now_secs(&self) -> u64 {
        self.clock.now().0 / 1000
    }

    /// Whether `token` may open (or keep) a connection: its account, if it
    /// has one, is enabled and still in the token's generation. Tokens the
    /// operator minted for names without an account need no account.
    pub async fn admit(&self, token: &Verified) -> Result<(), Refusal> {
        let account = self.store.get(token.user.clone()).await.map_err(|e| Refusal::Unavailable(e.to_string()))?;
        match (account, token.generation) {
            (Some(account), _) if account.disabled.is_some() => {
                Err(Refusal::Disabled(account.disabled.unwrap_or_default()))
            }
            (Some(account), Some(generation)) if account.generation != generation => {
                Err(Refusal::SignedOut("the password was changed or the account disabled since this token was made"))
            }
            (None, Some(_)) => Err(Refusal::SignedOut("this token's account no longer exists")),
            _ => Ok(()),
        }
    }

    /// A one-use ticket for a connection of `token`'s user (`POST /ticket`),
    /// and how long it is good for: never past the token, and only for an
    /// account that may connect now.
    pub async fn ticket(&self, token: &Verified) -> Result<(String, Duration), AccountError> {
        self.admit(token).await?;
        let now = self.now_secs();
        let ttl = TICKET_TTL.min(Duration::from_secs(token.expires.saturating_sub(now)));
        let (ticket, _) = auth::mint_ticket(&self.secret, &token.user, now + ttl.as_secs(), token.generation)
            .map_err(|e| AccountError::Unavailable(e.to_string()))?;
        Ok((ticket, ttl))
    }

    /// Spends the ticket `ticket` (verified): whether this is its first use,
    /// on any node.
    pub async fn spend_ticket(&self, ticket: &Verified) -> Result<bool, Refusal> {
        /// Tickets remembered at most on one node: a bound on memory even
        /// under a flood (past it, tickets are refused until old ones expire).
        const MAX_REMEMBERED: usize = 100_000;
        let Some(id) = ticket.id.clone() else { return Ok(false) };
        let shared = self.store.spend_ticket(id.clone(), TICKET_TTL).await;
        match shared.map_err(|e| Refusal::Unavailable(e.to_string()))? {
            Some(first) => Ok(first),
            None => {
                let now = std::time::Instant::now();
                if self.spent_tickets.len() > 1024 {
                    self.spent_tickets.retain(|_, at| now.duration_since(*at) < TICKET_TTL * 2);
                }
                if self.spent_tickets.len() >= MAX_REMEMBERED {
                    tracing::warn!("too many tickets in use at once; refusing this one");
                    return Ok(false);
                }
                Ok(self.spent_tickets.insert(id, now).is_none())
            }
        }
    }

    pub async fn register(&self, name: &str, password: &str, invite: Option<String>) -> Result<Tokens, AccountError> {
        let name = UserId::new(name).map_err(|e| AccountError::BadRequest(format!("name: {e}")))?;
        // Names the server shows others' words under are nobody's.
        if RESERVED.contains(&name.as_str()) {
            return Err(AccountError::Taken(name.to_string()));
        }
        check_password(password)?;
        let invite = match self.config.registration {
            Registration::Closed => return Err(AccountError::RegistrationClosed),
            Registration::Invite => Some(invite.filter(|c| !c.is_empty()).ok_or(AccountError::InviteNeeded)?),
            Registration::Open => None,
        };
        let password_hash = self.hash(password).await?;
        let account =
            Account { name: name.clone(), password_hash, created_at: self.clock.now(), generation: 1, disabled: None };
        self.store.create(account.clone(), invite, self.clock.now()).await.map_err(|failure| match failure {
            StoreFailure::Taken => AccountError::Taken(name.to_string()),
            other => other.into(),
        })?;
        tracing::info!(user = %name, "account registered");
        Ok(self.tokens(&account))
    }

    pub async fn login(&self, name: &str, password: &str) -> Result<Tokens, AccountError> {
        let account = self.check_password_of(name, password).await?;
        Ok(self.tokens(&account))
    }

    /// A new pair for a valid refresh token of an enabled account.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, AccountError> {
        let verified = auth::verify_kind_at(&self.secret, refresh_token, TokenKind::Refresh, self.now_secs())?;
        let account = self.store.get(verified.user.clone()).await?;
        let account = account.ok_or_else(|| AccountError::SignedOut("this account no longer exists".into()))?;
        if let Some(why) = account.disabled {
            return Err(AccountError::Disabled(why));
        }
        if verified.generation != Some(account.generation) {
            return Err(AccountError::SignedOut("the password was changed since this login".into()));
        }
        Ok(self.tokens(&account))
    }

    /// Changes the password; every token minted before stops working.
    pub async fn change_password(
        &self,
        name: &str,
        password: &str,
        new_password: &str,
    ) -> Result<Tokens, AccountError> {
        check_password(new_password)?;
        let account = self.check_password_of(name, password).await?;
        let password_hash = self.hash(new_password).await?;
        let account = self.store.set_password(account.name, password_hash).await?;
        tracing::info!(user = %account.name, "password changed");
        // The store tells the other nodes of a cluster.
        self.enforce(&account.name).await;
        Ok(self.tokens(&account))
    }

    /// Disables an account and closes its connections on this node (the
    /// store tells the other nodes of a cluster).
    pub async fn disable(&self, name: &str, reason: &str) -> Result<Account, AccountError> {
        let name = UserId::new(name).map_err(|e| AccountError::BadRequest(format!("name: {e}")))?;
        let reason = if reason.trim().is_empty() { "no reason given".to_string() } else { reason.trim().to_string() };
        let account = self.store.set_disabled(name.clone(), Some(reason)).await.map_err(|f| match f {
            StoreFailure::NoSuchAccount => AccountError::NoSuchAccount(name.to_string()),
            other => other.into(),
        })?;
        tracing::warn!(user = %name, "account disabled");
        self.enforce(&name).await;
        Ok(account)
    }

    /// Ends `name` for good (an erasure): no password opens it, no token
    /// of it is admitted, the name cannot be registered again, and its
    /// connections close on every node. A name with no account (the
    /// operator minted its tokens) gets one that is closed, for the same.
    pub async fn erase(&self, name: &UserId) -> Result<(), AccountError> {
        self.close_for_good(name, ERASED).await?;
        tracing::warn!(user = %name, "account erased");
        Ok(())
    }

    /// Whether `name` was closed for good (erased, or reserved).
    pub async fn is_closed_for_good(&self, name: &UserId) -> Result<bool, AccountError> {
        Ok(self.store.get(name.clone()).await?.is_some_and(|a| a.password_hash == ERASED))
    }

    /// Closes `name` so nobody ever signs in as it or registers it (`why`
    /// says for what: `erased`, or a name the server posts imported
    /// messages as), closing its connections on every node.
    pub async fn close_for_good(&self, name: &UserId, why: &str) -> Result<(), AccountError> {
        let closed = Account {
            name: name.clone(),
            password_hash: ERASED.into(),
            created_at: self.clock.now(),
            generation: 1,
            disabled: Some(why.into()),
        };
        if self.store.get(name.clone()).await?.is_none() {
            match self.store.create(closed, None, self.clock.now()).await {
                Ok(()) | Err(StoreFailure::Taken) => {}
                Err(other) => return Err(other.into()),
            }
        }
        // Made just now or long ago: closed the same way (a store may keep
        // only some of a new account's fields).
        self.store.set_password(name.clone(), ERASED.into()).await?;
        self.store.set_disabled(name.clone(), Some(why.into())).await?;
        self.enforce(name).await;
        Ok(())
    }

    pub async fn enable(&self, name: &str) -> Result<Account, AccountError> {
        let name = UserId::new(name).map_err(|e| AccountError::BadRequest(format!("name: {e}")))?;
        if self.store.get(name.clone()).await?.is_some_and(|a| a.disabled.as_deref() == Some(ERASED)) {
            return Err(AccountError::BadRequest(format!("{name} was erased: an erased account cannot be enabled")));
        }
        let account = self.store.set_disabled(name.clone(), None).await.map_err(|f| match f {
            StoreFailure::NoSuchAccount => AccountError::NoSuchAccount(name.to_string()),
            other => other.into(),
        })?;
        tracing::info!(user = %name, "account enabled");
        Ok(account)
    }

    /// A registration invite good for `uses` registrations within `valid_for`.
    pub async fn invite(&self, uses: u32, valid_for: Duration) -> Result<SignupInvite, AccountError> {
        if uses == 0 || uses > 10_000 {
            return Err(AccountError::BadRequest("uses must be 1 to 10000".into()));
        }
        let mut raw = [0u8; 12];
        getrandom::fill(&mut raw).map_err(|e| AccountError::Unavailable(e.to_string()))?;
        let code: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let expires_at = Millis(self.clock.now().0.saturating_add(valid_for.as_millis() as u64));
        let invite = SignupInvite { code, uses_left: uses, expires_at };
        self.store.add_invite(invite.clone(), self.clock.now()).await?;
        Ok(invite)
    }

    pub async fn list(&self) -> Result<Vec<Account>, AccountError> {
        Ok(self.store.list().await?)
    }

    /// Closes this node's connections of `user` that its account no longer
    /// admits (called on a disable or a password change, here or on another
    /// node): every one when it is disabled, else those running on a token of
    /// an earlier generation.
    pub async fn enforce(&self, user: &UserId) {
        let Ok(Some(account)) = self.store.get(user.clone()).await else { return };
        if let Some(why) = account.disabled {
            let refusal = Refusal::Disabled(why);
            let closed = self.hub.close_user(user, |_| true, refusal.close_code(), &refusal.reason());
            if closed > 0 {
                tracing::info!(%user, connections = closed, "closed the connections of a disabled account");
            }
            return;
        }
        let refusal = Refusal::SignedOut("the password was changed since this connection's token was made");
        let stale = |conn: &Conn| conn.generation().is_some_and(|g| g != account.generation);
        let closed = self.hub.close_user(user, stale, refusal.close_code(), &refusal.reason());
        if closed > 0 {
            tracing::info!(%user, connections = closed, "closed the connections signed out by a password change");
        }
    }

    /// Checks every user connected to this node (after notices may have been
    /// missed: a cluster's subscription was remade).
    pub async fn enforce_all(&self) {
        use futures_util::StreamExt as _;
        let users = self.hub.users();
        futures_util::stream::iter(users)
            .for_each_concurrent(16, |user| async move { self.enforce(&user).await })
            .await;
    }

    /// Acts on what other nodes announce, until `notices` ends.
    pub async fn follow(self: Arc<Self>, mut notices: tokio::sync::broadcast::Receiver<Notice>) {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match notices.recv().await {
                Ok(Notice::Changed(user)) => self.enforce(&user).await,
                Ok(Notice::Recheck) | Err(RecvError::Lagged(_)) => self.enforce_all().await,
                Ok(Notice::ToUser(user, event)) => {
                    match hearth_protocol::codec::decode_server_frame(hearth_protocol::Codec::MsgPack, &event) {
                        Ok(hearth_protocol::codec::ServerFrame::Event(event)) => self.hub.send_to_user(&user, &event),
                        _ => tracing::warn!(%user, "an unreadable notice for a user"),
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    async fn check_password_of(&self, name: &str, password: &str) -> Result<Account, AccountError> {
        let name = UserId::new(name).map_err(|_| AccountError::WrongPassword)?;
        if password.len() > MAX_PASSWORD_CHARS * 4 {
            return Err(AccountError::WrongPassword);
        }
        if let Err(not_until) = self.attempts.check_key(&name) {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
            return Err(AccountError::TooManyAttempts(wait.as_secs().max(1)));
        }
        // In a cluster each node's limiter sees only its own share: the
        // shared count keeps a guesser to the limit however many nodes it tries.
        if let Some(wait) = self.store.count_attempt(name.clone(), ATTEMPTS_PER_MINUTE).await? {
            return Err(AccountError::TooManyAttempts(wait.as_secs().max(1)));
        }
        let account = self.store.get(name).await?;
        let hash = account.as_ref().map_or_else(|| DECOY_HASH.to_string(), |a| a.password_hash.clone());
        let matches = self.verify(password, hash).await?;
        match account {
            Some(account) if matches => match account.disabled {
                Some(why) => Err(AccountError::Disabled(why)),
                None => Ok(account),
            },
            _ => Err(AccountError::WrongPassword),
        }
    }

    fn tokens(&self, account: &Account) -> Tokens {
        let generation = Some(account.generation);
        let (access_ttl, refresh_ttl) = (self.config.token_ttl, self.config.refresh_ttl);
        let now = self.now_secs();
        let (expires, refresh_expires) = (now + access_ttl.as_secs(), now + refresh_ttl.as_secs());
        Tokens {
            user: account.name.clone(),
            token: auth::mint_until(&self.secret, &account.name, expires, TokenKind::Access, generation),
            expires_at: expires * 1000,
            refresh_token: auth::mint_until(
                &self.secret,
                &account.name,
                refresh_expires,
                TokenKind::Refresh,
                generation,
            ),
            refresh_expires_at: refresh_expires * 1000,
        }
    }

    async fn hash(&self, password: &str) -> Result<String, AccountError> {
        let _slot = self.hashing_slot().await?;
        let password = password.to_string();
        tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .map_err(|e| AccountError::Unavailable(e.to_string()))?
    }

    async fn verify(&self, password: &str, hash: String) -> Result<bool, AccountError> {
        let _slot = self.hashing_slot().await?;
        let password = password.to_string();
        tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash).is_ok_and(|parsed| argon2().verify_password(password.as_bytes(), &parsed).is_ok())
        })
        .await
        .map_err(|e| AccountError::Unavailable(e.to_string()))
    }

    async fn hashing_slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, AccountError> {
        match tokio::time::timeout(HASHING_WAIT, self.hashing.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(AccountError::Busy),
        }
    }
}

/// Argon2id with 46 MiB and one pass (OWASP's first choice). Verifying reads
/// the parameters from the stored hash, so hashes made with others still work.
fn argon2() -> argon2::Argon2<'static> {
    let params = argon2::Params::new(46 * 1024, 1, 1, None).expect("valid Argon2 parameters");
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

fn check_password(password: &str) -> Result<(), AccountError> {
    let chars = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        return Err(AccountError::BadRequest(format!(
            "a password has {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters; this one has {chars}"
        )));
    }
    Ok(())
}

fn hash_password(password: &str) -> Result<String, AccountError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| AccountError::Unavailable(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AccountError::Unavailable(e.to_string()))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AccountError::Unavailable(e.to_string()))
}

#[cfg(test)]
mod tests;
