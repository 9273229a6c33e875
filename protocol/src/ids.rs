//! Identifiers and small value types shared by requests and events. Names are
//! validated when they are deserialised, so a `RoomId` or `UserId` in hand is always
//! well-formed; a bad one makes the whole frame a `bad_request`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::limits::{MAX_CLIENT_MSG_ID_BYTES, MAX_ROOM_NAME_BYTES, MAX_USER_NAME_BYTES};

/// Client-chosen id of a request; the reply carries the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(pub u64);

/// Position of an event in a room's timeline: gap-free and strictly increasing from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl Seq {
    pub const ZERO: Seq = Seq(0);
    pub const MAX: Seq = Seq(u64::MAX);

    pub fn next(self) -> Seq {
        Seq(self.0 + 1)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Names one unbroken line of a room's history. It changes only when history is lost
/// (an in-memory server restarted), so a `seq` is meaningful only with its epoch.
/// Always below 2^53 so JavaScript clients read it exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Epoch(pub u64);

/// Milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Millis(pub u64);

impl Millis {
    /// `YYYY-MM-DD HH:MM` in UTC, for people reading any day's messages.
    pub fn date_time_utc(self) -> String {
        let secs = self.0 / 1000;
        // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
        let days = (secs / 86_400) as i64 + 719_468;
        let era = days.div_euclid(146_097);
        let day_of_era = days.rem_euclid(146_097);
        let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let month_index = (5 * day_of_year + 2) / 153;
        let day = day_of_year - (153 * month_index + 2) / 5 + 1;
        let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        format!("{year:04}-{month:02}-{day:02} {:02}:{:02}", (secs / 3600) % 24, (secs / 60) % 60)
    }
}

/// Id of a pinned note, unique within its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PinId(pub u64);

/// Where a client's copy of a room's timeline ends: resume from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub epoch: Epoch,
    pub seq: Seq,
}

/// A member's role in one room; see PROTOCOL.md for the permission matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Member,
    Welcomer,
    Moderator,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Welcomer => "welcomer",
            Role::Moderator => "moderator",
            Role::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "member" => Role::Member,
            "welcomer" => Role::Welcomer,
            "moderator" => Role::Moderator,
            "owner" => Role::Owner,
            _ => return None,
        })
    }
}

/// Declares a validated string newtype: deserialising checks `$check`, so an
/// invalid value never exists in memory.
macro_rules! checked_name {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Result<Self, String> {
                let value = value.into();
                $check(&value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(value: String) -> Result<Self, String> {
                Self::new(value)
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(value: &str) -> Result<Self, String> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

checked_name!(
    /// A room's name, which is also its id: 1–48 of `a-z 0-9 _ -`, not starting with
    /// `_` or `-`. Lower case only, so `Cameras` and `cameras` cannot both exist.
    RoomId,
    check_room_name
);
checked_name!(
    /// A user's name as the token's subject: 1–32 of `A-Z a-z 0-9 _ . -`.
    UserId,
    check_user_name
);
checked_name!(
    /// Client-chosen id of a sent message, for idempotent retries: 1–64 printable
    /// ASCII characters.
    ClientMsgId,
    check_client_msg_id
);

fn check_room_name(s: &str) -> Result<(), String> {
    let ok_len = !s.is_empty() && s.len() <= MAX_ROOM_NAME_BYTES;
    let ok_chars = s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    let ok_start = s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if ok_len && ok_chars && ok_start {
        Ok(())
    } else {
        Err(format!(
            "invalid room name {s:?}: use 1-{MAX_ROOM_NAME_BYTES} of a-z, 0-9, '_' and '-', starting with a letter or digit"
        ))
    }
}

pub(crate) fn check_user_name(s: &str) -> Result<(), String> {
    let ok_len = !s.is_empty() && s.len() <= MAX_USER_NAME_BYTES;
    let ok_chars = s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err(format!("invalid user name {s:?}: use 1-{MAX_USER_NAME_BYTES} of A-Z, a-z, 0-9, '_', '.' and '-'"))
    }
}

fn check_client_msg_id(s: &str) -> Result<(), String> {
    let ok_len = !s.is_empty() && s.len() <= MAX_CLIENT_MSG_ID_BYTES;
    if ok_len && s.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(format!("invalid client message id {s:?}: use 1-{MAX_CLIENT_MSG_ID_BYTES} printable ASCII characters"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_are_checked() {
        assert!(RoomId::new("vintage-cameras_2").is_ok());
        for bad in ["", "Cameras", "-x", "_x", "a b", "é", &"x".repeat(49)] {
            assert!(RoomId::new(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn user_names_are_checked() {
        assert!(UserId::new("Ada.L_1-x").is_ok());
        for bad in ["", "a b", "a/b", &"x".repeat(33)] {
            assert!(UserId::new(bad).is_err(), "{bad:?} should be refused");
        }
    }
}

/// Declares a length-bounded text newtype, checked when deserialised.
macro_rules! bounded_text {
    ($(#[$doc:meta])* $name:ident, min = $min:expr, max = $max:path, what = $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Result<Self, String> {
                let value = value.into();
                if !($min..=$max).contains(&value.len()) {
                    return Err(format!(
                        "{} must be {}-{} bytes of UTF-8, got {}",
                        $what,
                        $min,
                        $max,
                        value.len()
                    ));
                }
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(value: String) -> Result<Self, String> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

bounded_text!(
    /// A message's text: 1 to `MAX_TEXT_BYTES` bytes.
    Text, min = 1, max = crate::limits::MAX_TEXT_BYTES, what = "message text"
);
bounded_text!(
    /// A topic, welcome message or moderation reason: up to `MAX_TOPIC_BYTES`.
    ShortText, min = 0, max = crate::limits::MAX_TOPIC_BYTES, what = "this text"
);
bounded_text!(
    /// A pinned note or join-request note: up to `MAX_NOTE_BYTES`.
    Note, min = 0, max = crate::limits::MAX_NOTE_BYTES, what = "a note"
);
bounded_text!(
    /// A reaction: an emoji sequence or `:shortcode:`, 1 to `MAX_EMOJI_BYTES`.
    Emoji, min = 1, max = crate::limits::MAX_EMOJI_BYTES, what = "a reaction"
);
