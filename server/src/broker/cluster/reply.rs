//! Reading what Redis answers — script results, stream entries, stored
//! members, records and pins — and the encodings the scripts read back.

use bytes::Bytes;
use hearth_protocol::ops::{PinnedNote, RoomSettings};
use hearth_protocol::{Millis, Role, Seq, UserId};
use redis::Value;

use crate::broker::BrokerError;
use crate::room::{MemberRecord, RoomRecord};
use crate::store::{StoreError, StoredEvent};

pub(super) fn corrupt(what: &'static str, detail: impl Into<String>) -> BrokerError {
    BrokerError::Store(StoreError::Corrupt { what, detail: detail.into() })
}

pub(super) fn rank(role: Role) -> u8 {
    match role {
        Role::Member => 0,
        Role::Welcomer => 1,
        Role::Moderator => 2,
        Role::Owner => 3,
    }
}

pub(super) fn role_of_rank(rank: u8) -> Option<Role> {
    Some(match rank {
        0 => Role::Member,
        1 => Role::Welcomer,
        2 => Role::Moderator,
        3 => Role::Owner,
        _ => return None,
    })
}

/// A member as stored: `rank:joined_at:expires`.
pub(super) fn parse_member(user: UserId, value: &[u8]) -> Result<MemberRecord, BrokerError> {
    let text = std::str::from_utf8(value).map_err(|e| corrupt("member", e.to_string()))?;
    let mut parts = text.split(':');
    let bad = || corrupt("member", format!("{user}: {text:?}"));
    let role = parts.next().and_then(|r| r.parse().ok()).and_then(role_of_rank).ok_or_else(bad)?;
    let joined_at = parts.next().and_then(|t| t.parse().ok()).map(Millis).ok_or_else(bad)?;
    let role_expires_at = match parts.next() {
        Some("") | None => None,
        Some(t) => Some(Millis(t.parse().map_err(|_| bad())?)),
    };
    Ok(MemberRecord { user, role, joined_at, role_expires_at })
}

pub(super) fn parse_record(blob: &[u8], settings: &[Vec<u8>]) -> Result<RoomRecord, BrokerError> {
    let mut record: RoomRecord = serde_json::from_slice(blob).map_err(|e| corrupt("room record", e.to_string()))?;
    for blob in settings {
        let update: RoomSettings = serde_json::from_slice(blob).map_err(|e| corrupt("room settings", e.to_string()))?;
        record.apply_settings(&update);
    }
    Ok(record)
}

/// Reads script results, which come back as nested arrays.
pub(super) struct Reply(std::vec::IntoIter<Value>);

impl Reply {
    pub(super) fn new(value: Value) -> Result<Reply, BrokerError> {
        match value {
            Value::Array(items) => Ok(Reply(items.into_iter())),
            other => Err(corrupt("redis reply", format!("expected an array, got {other:?}"))),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.len() == 0
    }

    pub(super) fn value(&mut self) -> Result<Value, BrokerError> {
        self.0.next().ok_or_else(|| corrupt("redis reply", "too short"))
    }

    pub(super) fn bytes(&mut self) -> Result<Vec<u8>, BrokerError> {
        match self.value()? {
            Value::BulkString(b) => Ok(b),
            Value::SimpleString(s) => Ok(s.into_bytes()),
            Value::Int(n) => Ok(n.to_string().into_bytes()),
            other => Err(corrupt("redis reply", format!("expected a string, got {other:?}"))),
        }
    }

    pub(super) fn text(&mut self) -> Result<String, BrokerError> {
        String::from_utf8(self.bytes()?).map_err(|e| corrupt("redis reply", e.to_string()))
    }

    pub(super) fn number(&mut self) -> Result<u64, BrokerError> {
        match self.value()? {
            Value::Int(n) => u64::try_from(n).map_err(|_| corrupt("redis reply", format!("negative {n}"))),
            Value::BulkString(b) => std::str::from_utf8(&b)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| corrupt("redis reply", "not a number")),
            other => Err(corrupt("redis reply", format!("expected a number, got {other:?}"))),
        }
    }

    pub(super) fn list(&mut self) -> Result<Reply, BrokerError> {
        Reply::new(self.value()?)
    }

    pub(super) fn byte_list(&mut self) -> Result<Vec<Vec<u8>>, BrokerError> {
        let mut list = self.list()?;
        let mut out = Vec::with_capacity(list.0.len());
        while !list.is_empty() {
            out.push(list.bytes()?);
        }
        Ok(out)
    }
}

/// Stream entries (`[[id, [field, value, ...]], ...]`) as stored events.
pub(super) fn stream_events(value: Value) -> Result<Vec<StoredEvent>, BrokerError> {
    Ok(stream_entries(value, b"b")?
        .into_iter()
        .map(|(seq, body)| StoredEvent { seq, body: Bytes::from(body) })
        .collect())
}

/// A stream's entries (ids `<seq>-0`) as their seq and their field `field`.
pub(super) fn stream_entries(value: Value, field: &[u8]) -> Result<Vec<(Seq, Vec<u8>)>, BrokerError> {
    let mut entries = Reply::new(value)?;
    let mut found = Vec::new();
    while !entries.is_empty() {
        let mut entry = entries.list()?;
        let id = entry.text()?;
        let seq = id.split('-').next().and_then(|s| s.parse().ok()).ok_or_else(|| corrupt("stream id", id.clone()))?;
        let mut fields = entry.list()?;
        let mut body = None;
        while !fields.is_empty() {
            let name = fields.bytes()?;
            let value = fields.bytes()?;
            if name == field {
                body = Some(value);
            }
        }
        let body = body.ok_or_else(|| corrupt("stream entry", format!("{id} has no body")))?;
        found.push((Seq(seq), body));
    }
    Ok(found)
}

pub(super) fn encode_pin(pin: &PinnedNote) -> Result<Vec<u8>, BrokerError> {
    rmp_serde::to_vec_named(pin).map_err(|e| corrupt("pinned note", e.to_string()))
}
