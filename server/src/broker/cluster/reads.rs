//! Read positions and mention inboxes in Redis, shared by every node: one
//! hash per member (`PREFIX:{reads}:USER`, field the room, value the seq),
//! moved forward only, by a script, so two devices marking at once keep the
//! later seq; and one sorted set per member (`PREFIX:{reads}:mentions:USER`,
//! members `TS|SEQ|ROOM|FROM` all scored 0 so they sort by their text, which
//! puts the time first), trimmed to the newest; and one set per member of
//! the members they block (`PREFIX:{reads}:blocks:USER`); a member's push
//! settings as JSON (`PREFIX:{reads}:push:USER`), and per room the members
//! who hear every message of it (a set, `PREFIX:{reads}:everything:ROOM`);
//! the erasure log (a hash, `PREFIX:{reads}:erasures`, user → JSON).

use std::collections::HashMap;
use std::sync::Arc;

use hearth_protocol::{Millis, RoomId, Seq, UserId};

use super::Shared;
use crate::reads::{
    DIRECT_START_WINDOW_MS, ErasureRecord, MAX_INBOX, Mention, PushSettings, ReadStore, ReadsFuture, ReadsUnavailable,
};

/// Sets the field to ARGV[2] unless it holds a larger seq; answers the seq held.
const ADVANCE: &str = r"
local held = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local seq = tonumber(ARGV[2])
if seq > held then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return seq
end
return held
";

/// Counts a start in the member's window unless it holds ARGV[3] already;
/// answers -1, or the milliseconds until one more may start.
const TAKE_START: &str = r"
local now, window, most = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= most then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tonumber(oldest[2]) + window - now
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
return -1
";

pub(super) struct RedisReads {
    shared: Arc<Shared>,
    advance: redis::Script,
    take_start: redis::Script,
}

impl RedisReads {
    pub(super) fn new(shared: Arc<Shared>) -> RedisReads {
        RedisReads { shared, advance: redis::Script::new(ADVANCE), take_start: redis::Script::new(TAKE_START) }
    }

    fn key(&self, user: &UserId) -> String {
        format!("{}:{{reads}}:{}", self.shared.config.prefix, user.as_str())
    }

    fn blocks_key(&self, user: &UserId) -> String {
        format!("{}:{{reads}}:blocks:{}", self.shared.config.prefix, user.as_str())
    }

    fn push_key(&self, user: &UserId) -> String {
        format!("{}:{{reads}}:push:{}", self.shared.config.prefix, user.as_str())
    }

    fn watchers_key(&self, room: &RoomId) -> String {
        format!("{}:{{reads}}:everything:{}", self.shared.config.prefix, room.as_str())
    }

    fn erasures_key(&self) -> String {
        format!("{}:{{reads}}:erasures", self.shared.config.prefix)
    }

    fn inbox(&self, user: &UserId) -> String {
        format!("{}:{{reads}}:mentions:{}", self.shared.config.prefix, user.as_str())
    }
}

fn unavailable(error: redis::RedisError) -> ReadsUnavailable {
    ReadsUnavailable(error.to_string())
}

impl ReadStore for RedisReads {
    fn positions(&self, user: UserId) -> ReadsFuture<'_, HashMap<RoomId, Seq>> {
        Box::pin(async move {
            let fields: HashMap<String, u64> =
                self.shared.commands.query(redis::cmd("HGETALL").arg(self.key(&user))).await.map_err(unavailable)?;
            Ok(fields.into_iter().filter_map(|(room, seq)| Some((RoomId::new(room).ok()?, Seq(seq)))).collect())
        })
    }

    fn advance(&self, user: UserId, room: RoomId, seq: Seq) -> ReadsFuture<'_, Seq> {
        Box::pin(async move {
            let mut call = self.advance.prepare_invoke();
            call.key(self.key(&user)).arg(room.as_str()).arg(seq.0);
            let held: u64 = self.shared.commands.invoke(&call).await.map_err(unavailable)?;
            Ok(Seq(held))
        })
    }

    fn mention(&self, users: Vec<UserId>, mention: Mention) -> ReadsFuture<'_, ()> {
        Box::pin(async move {
            let member = mention.cursor();
            // One round trip for every inbox (a moderator's @room names the
            // whole room); the keys share the `{reads}` slot.
            let mut pipe = redis::pipe();
            pipe.atomic();
            for user in users {
                let key = self.inbox(&user);
                pipe.zadd(&key, &member, 0).ignore();
                // Keep the newest MAX_INBOX: rank 0 is the oldest.
                pipe.zremrangebyrank(&key, 0, -(MAX_INBOX as isize) - 1).ignore();
            }
            let () = self.shared.commands.query_pipe(&pipe).await.map_err(unavailable)?;
            Ok(())
        })
    }

    fn mentions(&self, user: UserId, before: Option<Mention>, limit: usize) -> ReadsFuture<'_, Vec<Mention>> {
        Box::pin(async move {
            // Members sort as the inbox does, so `(` + the cursor's member is
            // "strictly older than it", ties of time included.
            let max = before.as_ref().map_or_else(|| "+".to_string(), |b| format!("({}", b.cursor()));
            let cmd = redis::cmd("ZREVRANGEBYLEX")
                .arg(self.inbox(&user))
                .arg(max)
                .arg("-")
                .arg("LIMIT")
                .arg(0)
                .arg(limit)
                .clone();
            let members: Vec<String> = self.shared.commands.query(&cmd).await.map_err(unavailable)?;
            Ok(members.iter().filter_map(|m| Mention::from_cursor(m)).collect())
        })
    }

    fn blocks(&self, user: UserId) -> ReadsFuture<'_, Vec<UserId>> {
        Box::pin(async move {
            let names: Vec<String> = self
                .shared
                .commands
                .query(redis::cmd("SMEMBERS").arg(self.blocks_key(&user)))
                .await
                .map_err(unavailable)?;
            let mut users: Vec<UserId> = names.into_iter().filter_map(|n| UserId::new(n).ok()).collect();
            users.sort();
            Ok(users)
        })
    }

    fn block(&self, user: UserId, other: UserId, on: bool) -> ReadsFuture<'_, ()> {
        Box::pin(async move {
            let command = if on { "SADD" } else { "SREM" };
            let _: i64 = self
                .shared
                .commands
                .query(redis::cmd(command).arg(self.blocks_key(&user)).arg(other.as_str()))
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn push_settings(&self, user: UserId) -> ReadsFuture<'_, PushSettings> {
        Box::pin(async move {
            let json: Option<String> =
                self.shared.commands.query(redis::cmd("GET").arg(self.push_key(&user))).await.map_err(unavailable)?;
            Ok(json.and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default())
        })
    }

    fn set_push_settings(&self, user: UserId, settings: PushSettings) -> ReadsFuture<'_, ()> {
        Box::pin(async move {
            let before = self.push_settings(user.clone()).await?.everything();
            let after = if settings.devices.is_empty() { Default::default() } else { settings.everything() };
            let json = serde_json::to_string(&settings).map_err(|e| ReadsUnavailable(e.to_string()))?;
            // One round trip, all in the `{reads}` slot.
            let mut pipe = redis::pipe();
            pipe.atomic();
            pipe.set(self.push_key(&user), json).ignore();
            for room in before.difference(&after) {
                pipe.srem(self.watchers_key(room), user.as_str()).ignore();
            }
            for room in after.difference(&before) {
                pipe.sadd(self.watchers_key(room), user.as_str()).ignore();
            }
            let () = self.shared.commands.query_pipe(&pipe).await.map_err(unavailable)?;
            Ok(())
        })
    }

    fn push_key(&self, candidate: Vec<u8>) -> ReadsFuture<'_, Vec<u8>> {
        Box::pin(async move {
            // Every node offers its own; the first kept is everyone's.
            let key = format!("{}:{{reads}}:push-key", self.shared.config.prefix);
            let _: Option<String> = self
                .shared
                .commands
                .query(redis::cmd("SET").arg(&key).arg(candidate).arg("NX"))
                .await
                .map_err(unavailable)?;
            let kept: Vec<u8> = self.shared.commands.query(redis::cmd("GET").arg(&key)).await.map_err(unavailable)?;
            Ok(kept)
        })
    }

    fn take_direct_start(&self, user: UserId, now: Millis, most: u32) -> ReadsFuture<'_, Result<(), u64>> {
        Box::pin(async move {
            let key = format!("{}:{{reads}}:direct-starts:{}", self.shared.config.prefix, user.as_str());
            // Each start its own member, however close in time.
            let mut nonce = [0u8; 8];
            let _ = getrandom::fill(&mut nonce);
            let mut call = self.take_start.prepare_invoke();
            call.key(key).arg(now.0).arg(DIRECT_START_WINDOW_MS).arg(most).arg(format!("{}-{:x?}", now.0, nonce));
            let answer: i64 = self.shared.commands.invoke(&call).await.map_err(unavailable)?;
            Ok(if answer < 0 { Ok(()) } else { Err(answer as u64) })
        })
    }

    fn push_watchers(&self, room: RoomId) -> ReadsFuture<'_, Vec<UserId>> {
        Box::pin(async move {
            let names: Vec<String> = self
                .shared
                .commands
                .query(redis::cmd("SMEMBERS").arg(self.watchers_key(&room)))
                .await
                .map_err(unavailable)?;
            Ok(names.into_iter().filter_map(|n| UserId::new(n).ok()).collect())
        })
    }

    fn forget(&self, user: UserId) -> ReadsFuture<'_, ()> {
        Box::pin(async move {
            let watching = self.push_settings(user.clone()).await?.everything();
            let starts = format!("{}:{{reads}}:direct-starts:{}", self.shared.config.prefix, user.as_str());
            // One round trip, all in the `{reads}` slot.
            let mut pipe = redis::pipe();
            pipe.atomic();
            pipe.del(&[self.key(&user), self.inbox(&user), self.blocks_key(&user), self.push_key(&user), starts])
                .ignore();
            for room in &watching {
                pipe.srem(self.watchers_key(room), user.as_str()).ignore();
            }
            let () = self.shared.commands.query_pipe(&pipe).await.map_err(unavailable)?;
            Ok(())
        })
    }

    fn erasures(&self) -> ReadsFuture<'_, Vec<ErasureRecord>> {
        Box::pin(async move {
            let entries: HashMap<String, String> = self
                .shared
                .commands
                .query(redis::cmd("HGETALL").arg(self.erasures_key()))
                .await
                .map_err(unavailable)?;
            Ok(entries.values().filter_map(|json| serde_json::from_str(json).ok()).collect())
        })
    }

    fn record_erasure(&self, record: ErasureRecord) -> ReadsFuture<'_, ()> {
        Box::pin(async move {
            let json = serde_json::to_string(&record).map_err(|e| ReadsUnavailable(e.to_string()))?;
            let _: i64 = self
                .shared
                .commands
                .query(redis::cmd("HSET").arg(self.erasures_key()).arg(record.user.as_str()).arg(json))
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }
}
