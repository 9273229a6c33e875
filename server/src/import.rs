//! Bringing a community's past along: a DiscordChatExporter JSON export of
//! one channel read into a room's history (`hearth-server import discord`,
//! which posts it to the running server's `POST /admin/import/discord`).
//!
//! Each Discord message becomes a message event ordered like any other, so
//! every node, search, history and exports have it; it carries where it came
//! from (`Imported`: its id there, its author's name, its time there, its
//! reactions there as counts). Authors named in the mapping post as those
//! members; the others as `discord-import` — an account closed for good, so
//! nobody can sign in as it — with their old name shown. Replies become
//! thread replies under the message they answered (or that message's own
//! thread root); pinned messages are pinned by the room's owner;
//! attachments become links in the text. Messages already imported (by
//! their Discord id, read back from the room's history) are skipped, so a
//! second run adds nothing.

use std::collections::{BTreeMap, HashMap, HashSet};

use hearth_protocol::event::{Imported, ImportedReaction, MessageEvent};
use hearth_protocol::{ClientMsgId, Event, Millis, RoomId, Seq, ShortText, Text, UserId, limits};
use serde::{Deserialize, Serialize};

use crate::Shared;
use crate::broker::BrokerError;
use crate::room::{Draft, Requires};

/// Where imported messages say they came from.
pub const SOURCE: &str = "discord";
/// Whom messages of authors the mapping does not name are from.
pub const GUEST: &str = "discord-import";
/// The largest import a request may carry (a channel's whole export).
pub const MAX_IMPORT_BYTES: usize = 64 << 20;

/// What `POST /admin/import/discord` takes.
#[derive(Debug, Deserialize)]
pub struct Request {
    pub room: RoomId,
    /// A Discord author's id or name → the member they are here.
    #[serde(default)]
    pub mapping: BTreeMap<String, String>,
    pub export: Export,
}

/// The parts of a DiscordChatExporter export an import reads.
#[derive(Debug, Deserialize)]
pub struct Export {
    #[serde(default)]
    pub messages: Vec<Message>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    pub timestamp: String,
    #[serde(default)]
    pub timestamp_edited: Option<String>,
    #[serde(default)]
    pub is_pinned: bool,
    #[serde(default)]
    pub content: String,
    pub author: Author,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    #[serde(default)]
    pub reactions: Vec<Reaction>,
    #[serde(default)]
    pub reference: Option<Reference>,
}

#[derive(Debug, Deserialize)]
pub struct Author {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub nickname: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    pub url: String,
    #[serde(default)]
    pub file_name: String,
}

#[derive(Debug, Deserialize)]
pub struct Reaction {
    pub emoji: ReactionEmoji,
    #[serde(default)]
    pub count: u32,
}

#[derive(Debug, Deserialize)]
pub struct ReactionEmoji {
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reference {
    #[serde(default)]
    pub message_id: Option<String>,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub room: String,
    /// Messages added now.
    pub imported: u32,
    /// Messages an earlier import had added.
    pub already: u32,
    /// Messages not brought: Discord's own notices (joins, pins, calls),
    /// empty ones, ones whose time is not understood.
    pub skipped: u32,
    /// Messages pinned now.
    pub pinned: u32,
    /// Pinned there, not pinned here: the room's pins were full.
    pub pins_full: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("no room {0}: create it first (its owner pins what was pinned), then import into it")]
    NoRoom(RoomId),
    #[error("the mapping names {0:?} for {1:?}, which is not a user name here, or an erased one")]
    BadMapping(String, String),
    #[error("importing failed ({0}); what was imported stays, and importing again adds the rest")]
    Broker(#[from] BrokerError),
    #[error("importing failed ({0}); what was imported stays, and importing again adds the rest")]
    Refused(String),
}

/// Imports `request.export` into `request.room`.
pub async fn discord(shared: &Shared, request: Request) -> Result<Outcome, ImportError> {
    let id = request.room.clone();
    let room = shared.registry.get(&id).await.map_err(|_| ImportError::NoRoom(id.clone()))?;
    let broker = shared.registry.broker();
    let mut mapping: HashMap<String, UserId> = HashMap::new();
    for (there, here) in request.mapping {
        let user = UserId::new(here.as_str()).map_err(|_| ImportError::BadMapping(here.clone(), there.clone()))?;
        // An erased member's name never returns, not even for their past.
        if shared.accounts.is_closed_for_good(&user).await.map_err(|e| ImportError::Refused(e.to_string()))? {
            return Err(ImportError::BadMapping(here, there));
        }
        mapping.insert(there, user);
    }
    let guest = UserId::new(GUEST).expect("a valid name");
    let author_of = |m: &Message| mapping.get(&m.author.id).or_else(|| mapping.get(&m.author.name)).cloned();
    if request.export.messages.iter().any(|m| author_of(m).is_none()) {
        shared
            .accounts
            .close_for_good(&guest, "imported messages")
            .await
            .map_err(|e| ImportError::Refused(e.to_string()))?;
    }

    // What earlier imports brought: Discord id → (seq, thread root).
    let mut known: HashMap<String, (Seq, Option<Seq>)> = HashMap::new();
    let mut after = Seq::ZERO;
    loop {
        let page = broker.history_after(id.clone(), after, 500).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for stored in &page {
            if let Ok(Event::Message(m)) = rmp_serde::from_slice::<Event>(&stored.body)
                && let Some(imported) = m.imported.filter(|i| i.source == SOURCE)
            {
                known.insert(imported.id, (m.seq, m.thread));
            }
        }
        if page.len() < 500 {
            break;
        }
    }
    let pinned_here: HashSet<Seq> = room.decide(|s| s.pins.iter().filter_map(|p| p.seq).collect());
    let owner = room.decide(|s| s.record.owner.clone());
    let max_pins = shared.config.limits.pins_per_room;

    let mut outcome = Outcome { room: id.to_string(), ..Outcome::default() };
    let mut to_pin: Vec<(Seq, &Message)> = Vec::new();
    // Ordered one after another without waiting for each to be durable (a
    // channel's years in seconds); every one is waited for below.
    let mut receipts = Vec::new();
    for message in &request.export.messages {
        let seq = match known.get(&message.id) {
            Some((seq, _)) => {
                outcome.already += 1;
                *seq
            }
            None => {
                let from = author_of(message).unwrap_or_else(|| guest.clone());
                let Some(event) = event_of(&id, message, from, &known) else {
                    outcome.skipped += 1;
                    continue;
                };
                let thread = match &event {
                    Event::Message(m) => m.thread,
                    _ => None,
                };
                let cmid = ClientMsgId::new(format!("{SOURCE}-{}", message.id)).ok();
                let receipt = broker.publish(Draft { cmid, ..Draft::new(event, Requires::Nothing) }).await?;
                let seq = receipt.published.seq;
                receipts.push(receipt);
                known.insert(message.id.clone(), (seq, thread));
                outcome.imported += 1;
                seq
            }
        };
        if message.is_pinned && !pinned_here.contains(&seq) {
            to_pin.push((seq, message));
        }
    }
    let mut last = Seq::ZERO;
    for receipt in receipts {
        last = last.max(receipt.durable().await?.seq);
    }
    room.wait_applied(last).await;
    for (seq, message) in to_pin {
        let text = text_of(message).unwrap_or_else(crate::room::messages::deleted_text);
        let note = crate::room::messages::note_of(&text);
        let now = shared.clock.now();
        match room.decide(|s| s.decide_pin(&owner, Some(seq), note, None, None, max_pins, now)) {
            Ok(draft) => {
                let published = broker.publish(draft).await?.durable().await?;
                room.wait_applied(published.seq).await;
                outcome.pinned += 1;
            }
            Err(crate::room::Refusal::PinsFull { .. }) => outcome.pins_full += 1,
            Err(refusal) => {
                return Err(ImportError::Refused(crate::refusals::refused(&id, &refusal).message.to_string()));
            }
        }
    }
    tracing::info!(room = %id, ?outcome, "imported from Discord");
    Ok(outcome)
}

/// The message event a Discord message becomes, or `None` for one not
/// brought (a notice of Discord's own, nothing to show, a time not
/// understood).
fn event_of(
    room: &RoomId,
    message: &Message,
    from: UserId,
    known: &HashMap<String, (Seq, Option<Seq>)>,
) -> Option<Event> {
    if !matches!(message.kind.as_str(), "" | "Default" | "Reply") {
        return None;
    }
    let text = text_of(message)?;
    let at = unix_ms(&message.timestamp)?;
    let answered = message.reference.as_ref().and_then(|r| r.message_id.as_ref()).and_then(|id| known.get(id));
    let name = message.author.nickname.as_deref().filter(|n| !n.is_empty()).unwrap_or(&message.author.name);
    let imported = Imported {
        source: SOURCE.into(),
        id: message.id.clone(),
        author: ShortText::new(cut(name, limits::MAX_TOPIC_BYTES)).ok()?,
        at,
        edited_at: message.timestamp_edited.as_deref().and_then(unix_ms),
        reactions: message
            .reactions
            .iter()
            .filter(|r| r.count > 0)
            .filter_map(|r| {
                Some(ImportedReaction { emoji: ShortText::new(cut(&r.emoji.name, 64)).ok()?, count: r.count })
            })
            .collect(),
    };
    let cmid = ClientMsgId::new(cut(&format!("{SOURCE}-{}", message.id), limits::MAX_CLIENT_MSG_ID_BYTES)).ok()?;
    // A reply to a reply is in the thread of the first.
    let thread = answered.map(|(seq, root)| root.unwrap_or(*seq));
    Some(Event::Message(MessageEvent {
        imported: Some(Box::new(imported)),
        ..MessageEvent::draft(room.clone(), from, text, cmid, thread)
    }))
}

/// The text a message shows here: its content, then a line per attachment
/// (a link), cut to a message's length; `None` when there is nothing.
fn text_of(message: &Message) -> Option<Text> {
    let mut text = message.content.trim().to_string();
    for attachment in &message.attachments {
        if !(attachment.url.starts_with("https://") || attachment.url.starts_with("http://")) {
            continue;
        }
        if !text.is_empty() {
            text.push('\n');
        }
        let name = if attachment.file_name.is_empty() { "attachment" } else { attachment.file_name.as_str() };
        text.push_str(&format!("📎 {name}: {}", attachment.url));
    }
    Text::new(cut(&text, limits::MAX_TEXT_BYTES)).ok()
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn cut(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// An RFC 3339 time (`2021-03-04T12:34:56.789+02:00`, or `Z`) as Unix
/// milliseconds; `None` if it is not one, or before 1970.
pub fn unix_ms(text: &str) -> Option<Millis> {
    let b = text.as_bytes();
    let digits = |from: usize, len: usize| -> Option<i64> {
        let part = text.get(from..from + len)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if b.get(at) == Some(&b'.') {
        let start = at + 1;
        at = start;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        let fraction = &text[start..at];
        if fraction.is_empty() {
            return None;
        }
        millis = format!("{fraction:0<3}")[..3].parse().ok()?;
    }
    let offset_minutes = match b.get(at)? {
        b'Z' | b'z' if at + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if at + 6 == b.len() && b[at + 3] == b':' => {
            let minutes = digits(at + 1, 2)? * 60 + digits(at + 4, 2)?;
            if *sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };
    // Days from 1970-01-01 to the date (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    u64::try_from(seconds * 1000 + millis).ok().map(Millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_discord_chat_exporter_writes_them() {
        assert_eq!(unix_ms("1970-01-01T00:00:00Z"), Some(Millis(0)));
        assert_eq!(unix_ms("2021-03-04T12:34:56.789+00:00"), Some(Millis(1_614_861_296_789)));
        // The same instant in another zone.
        assert_eq!(unix_ms("2021-03-04T14:34:56.789+02:00"), Some(Millis(1_614_861_296_789)));
        assert_eq!(unix_ms("2021-03-04T07:04:56.7-05:30"), Some(Millis(1_614_861_296_700)));
        assert_eq!(unix_ms("2024-02-29T23:59:59.1234567+00:00"), Some(Millis(1_709_251_199_123)));
        for bad in [
            "",
            "yesterday",
            "2021-13-04T12:34:56Z",
            "2021-03-04T12:34:56",
            "2021-03-04T12:34:56.Z",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(unix_ms(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn attachments_become_links_and_long_text_is_cut_on_a_character() {
        let message: Message = serde_json::from_value(serde_json::json!({
            "id": "1", "type": "Default", "timestamp": "2021-03-04T12:34:56+00:00",
            "content": "é".repeat(5000),
            "author": {"id": "9", "name": "ada"},
            "attachments": [{"url": "https://cdn.example/p.jpg", "fileName": "p.jpg"}, {"url": "javascript:alert(1)"}]
        }))
        .unwrap();
        let text = text_of(&message).unwrap();
        assert!(text.as_str().len() <= limits::MAX_TEXT_BYTES);
        assert!(!text.as_str().contains("javascript"));
        let short: Message = serde_json::from_value(serde_json::json!({
            "id": "2", "timestamp": "2021-03-04T12:34:56+00:00", "content": "",
            "author": {"id": "9", "name": "ada"},
            "attachments": [{"url": "https://cdn.example/p.jpg", "fileName": "p.jpg"}]
        }))
        .unwrap();
        assert_eq!(text_of(&short).unwrap().as_str(), "📎 p.jpg: https://cdn.example/p.jpg");
    }
}
