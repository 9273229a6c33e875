//! Accounts in Redis, shared by every node: one hash per account and per
//! registration invite, all under the hash tag `{accounts}` so each script's
//! keys share a slot on a Redis Cluster. A disable is published on the
//! accounts' channel, which every node's subscription receives, so each node
//! closes its own connections of that account at once.

use std::collections::HashMap;
use std::sync::Arc;

use hearth_protocol::{Millis, UserId};

use super::Shared;
use crate::accounts::{Account, AccountStore, SignupInvite, StoreFailure, StoreFuture};

/// Adds an account unless the name is taken, spending an invite's use if one
/// is named. Answers `ok`, `taken` or `invalid`.
const CREATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 'taken' end
if ARGV[6] == '1' then
  local uses = tonumber(redis.call('HGET', KEYS[3], 'uses') or '0')
  local expires = tonumber(redis.call('HGET', KEYS[3], 'expires_at') or '0')
  if uses < 1 or expires <= tonumber(ARGV[5]) then return 'invalid' end
  if uses == 1 then redis.call('DEL', KEYS[3]) else redis.call('HINCRBY', KEYS[3], 'uses', -1) end
end
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'hash', ARGV[2], 'created_at', ARGV[3], 'generation', ARGV[4])
redis.call('SADD', KEYS[2], ARGV[1])
return 'ok'
";

/// Changes an account: `password` (ARGV[2] the new hash) or `disable`
/// (ARGV[2] the reason; empty enables). A password change or a disable is
/// announced (ARGV[3], the name) to every node, which closes the account's
/// connections it no longer admits. Answers the account's fields, or nothing
/// when there is no such account.
const CHANGE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if ARGV[1] == 'password' then
  redis.call('HSET', KEYS[1], 'hash', ARGV[2])
  redis.call('HINCRBY', KEYS[1], 'generation', 1)
  redis.call('SPUBLISH', KEYS[2], ARGV[3])
elseif ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], 'disabled')
else
  if redis.call('HEXISTS', KEYS[1], 'disabled') == 0 then redis.call('HINCRBY', KEYS[1], 'generation', 1) end
  redis.call('HSET', KEYS[1], 'disabled', ARGV[2])
  redis.call('SPUBLISH', KEYS[2], ARGV[3])
end
return redis.call('HGETALL', KEYS[1])
";

/// Counts a login attempt in the account's current minute (which starts at
/// its first attempt): answers 0, or the milliseconds until the count starts
/// again once ARGV[2] attempts are spent. ARGV[1]: the window in ms.
const ATTEMPT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
if n <= tonumber(ARGV[2]) then return 0 end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); left = tonumber(ARGV[1]) end
return left
";

pub(super) struct RedisAccounts {
    shared: Arc<Shared>,
    create: redis::Script,
    change: redis::Script,
    attempt: redis::Script,
}

impl RedisAccounts {
    pub(super) fn new(shared: Arc<Shared>) -> RedisAccounts {
        RedisAccounts {
            shared,
            create: redis::Script::new(CREATE),
            change: redis::Script::new(CHANGE),
            attempt: redis::Script::new(ATTEMPT),
        }
    }

    fn key(&self, what: &str, name: &str) -> String {
        format!("{}:{{accounts}}:{what}:{name}", self.shared.config.prefix)
    }

    fn names(&self) -> String {
        format!("{}:{{accounts}}:names", self.shared.config.prefix)
    }
}

/// The channel disables are published on.
pub(super) fn channel(prefix: &str) -> String {
    format!("{prefix}:{{accounts}}:changes")
}

fn unavailable(error: redis::RedisError) -> StoreFailure {
    StoreFailure::Unavailable(error.to_string())
}

/// An account from its hash's fields; `None` when there are none.
fn parse_account(fields: HashMap<String, String>) -> Result<Option<Account>, StoreFailure> {
    if fields.is_empty() {
        return Ok(None);
    }
    let field = |name: &str| fields.get(name).cloned();
    let corrupt = |what: &str| StoreFailure::Unavailable(format!("an account in Redis has no valid {what}"));
    let name = field("name").and_then(|n| UserId::new(n).ok()).ok_or_else(|| corrupt("name"))?;
    Ok(Some(Account {
        name,
        password_hash: field("hash").ok_or_else(|| corrupt("hash"))?,
        created_at: Millis(field("created_at").and_then(|t| t.parse().ok()).ok_or_else(|| corrupt("created_at"))?),
        generation: field("generation").and_then(|g| g.parse().ok()).ok_or_else(|| corrupt("generation"))?,
        disabled: field("disabled"),
    }))
}

impl AccountStore for RedisAccounts {
    fn count_attempt(&self, name: UserId, limit: u32) -> StoreFuture<'_, Option<std::time::Duration>> {
        Box::pin(async move {
            let mut call = self.attempt.prepare_invoke();
            call.key(self.key("attempts", name.as_str())).arg(60_000).arg(limit);
            let wait_ms: u64 = self.shared.commands.invoke(&call).await.map_err(unavailable)?;
            Ok((wait_ms > 0).then(|| std::time::Duration::from_millis(wait_ms)))
        })
    }

    fn spend_ticket(&self, id: String, ttl: std::time::Duration) -> StoreFuture<'_, Option<bool>> {
        Box::pin(async move {
            // Kept twice the ticket's life: by then it has expired anyway.
            let cmd = redis::cmd("SET")
                .arg(self.key("ticket", &id))
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(ttl.as_millis() as u64 * 2)
                .clone();
            let set: Option<String> = self.shared.commands.query(&cmd).await.map_err(unavailable)?;
            Ok(Some(set.is_some()))
        })
    }

    fn get(&self, name: UserId) -> StoreFuture<'_, Option<Account>> {
        Box::pin(async move {
            let key = self.key("user", name.as_str());
            let fields: HashMap<String, String> =
                self.shared.commands.query(redis::cmd("HGETALL").arg(key)).await.map_err(unavailable)?;
            parse_account(fields)
        })
    }

    fn create(&self, account: Account, invite: Option<String>, now: Millis) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let invite_key = self.key("invite", invite.as_deref().unwrap_or("-"));
            let mut call = self.create.prepare_invoke();
            call.key(self.key("user", account.name.as_str()))
                .key(self.names())
                .key(invite_key)
                .arg(account.name.as_str())
                .arg(&account.password_hash)
                .arg(account.created_at.0)
                .arg(account.generation)
                .arg(now.0)
                .arg(if invite.is_some() { "1" } else { "0" });
            let answer: String = self.shared.commands.invoke(&call).await.map_err(unavailable)?;
            match answer.as_str() {
                "ok" => Ok(()),
                "taken" => Err(StoreFailure::Taken),
                _ => Err(StoreFailure::InvalidInvite),
            }
        })
    }

    fn set_password(&self, name: UserId, password_hash: String) -> StoreFuture<'_, Account> {
        Box::pin(async move { self.change(name, "password", password_hash).await })
    }

    fn set_disabled(&self, name: UserId, reason: Option<String>) -> StoreFuture<'_, Account> {
        Box::pin(async move { self.change(name, "disable", reason.unwrap_or_default()).await })
    }

    fn add_invite(&self, invite: SignupInvite, now: Millis) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let key = self.key("invite", &invite.code);
            // Redis forgets it once expired; the scripts check the time too,
            // against the server's clock.
            let ttl_ms = invite.expires_at.0.saturating_sub(now.0).max(1);
            let set = redis::cmd("HSET")
                .arg(&key)
                .arg("uses")
                .arg(invite.uses_left)
                .arg("expires_at")
                .arg(invite.expires_at.0)
                .clone();
            let _: i64 = self.shared.commands.query(&set).await.map_err(unavailable)?;
            let _: i64 =
                self.shared.commands.query(redis::cmd("PEXPIRE").arg(&key).arg(ttl_ms)).await.map_err(unavailable)?;
            Ok(())
        })
    }

    fn list(&self) -> StoreFuture<'_, Vec<Account>> {
        Box::pin(async move {
            let mut names: Vec<String> =
                self.shared.commands.query(redis::cmd("SMEMBERS").arg(self.names())).await.map_err(unavailable)?;
            names.sort();
            let mut accounts = Vec::with_capacity(names.len());
            for name in names {
                let Ok(name) = UserId::new(name) else { continue };
                if let Some(account) = self.get(name).await? {
                    accounts.push(account);
                }
            }
            Ok(accounts)
        })
    }
}

impl RedisAccounts {
    async fn change(&self, name: UserId, what: &str, value: String) -> Result<Account, StoreFailure> {
        let mut call = self.change.prepare_invoke();
        call.key(self.key("user", name.as_str()))
            .key(channel(&self.shared.config.prefix))
            .arg(what)
            .arg(value)
            .arg(name.as_str());
        let answer: Option<HashMap<String, String>> = self.shared.commands.invoke(&call).await.map_err(unavailable)?;
        parse_account(answer.unwrap_or_default())?.ok_or(StoreFailure::NoSuchAccount)
    }
}
