//! A room's durable state beyond members, pins and settings, in two shapes
//! every store keeps the same way, so a new community feature adds a table
//! here rather than a column in three stores:
//!
//! - [`Row`]s: small, bounded tables loaded with the room (bans, mutes, join
//!   requests, invites, rules acknowledgements, titles, scheduled prompts,
//!   held posts, newcomers' post counts).
//!   The room decides against them, so they live in [`RoomState`](super::RoomState).
//! - [`AnnexRow`]s: per-event annotations read on demand, never loaded (the
//!   moderation log). A store keeps them by (table, target seq, key).
//!
//! Values are MessagePack (named fields) of the typed records below; the
//! stores never look inside, except Redis's scripts, which read a ban's or a
//! mute's `until` (`cmsgpack`) and put the event's real seq and time in place
//! of the sentinels a cluster node encodes them with, as in events and pins.

use std::collections::{BTreeMap, HashMap};

use hearth_protocol::ops::{ModEntry, ReportCategory, ReportOutcome};
use hearth_protocol::{Millis, Note, Role, Seq, ShortText, Text, UserId};
use serde::{Deserialize, Serialize};

/// The loaded tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RowTable {
    Ban,
    Mute,
    Request,
    Denied,
    Invite,
    Ack,
    Title,
    Prompt,
    Held,
    /// How many posts a member on probation by posts has made.
    Posts,
    /// Members a welcomer or moderator let in who have not joined on a
    /// connection since (their first `join` is their first: the welcome).
    Approved,
    /// Open reports, by report id (the seq of the `report` event, 20 digits).
    Report,
    /// Members' warnings, by member and warning id (`user\x1fSEQ`, 20 digits).
    Warning,
}

impl RowTable {
    pub const ALL: [RowTable; 13] = [
        RowTable::Ban,
        RowTable::Mute,
        RowTable::Request,
        RowTable::Denied,
        RowTable::Invite,
        RowTable::Ack,
        RowTable::Title,
        RowTable::Prompt,
        RowTable::Held,
        RowTable::Posts,
        RowTable::Approved,
        RowTable::Report,
        RowTable::Warning,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RowTable::Ban => "ban",
            RowTable::Mute => "mute",
            RowTable::Request => "request",
            RowTable::Denied => "denied",
            RowTable::Invite => "invite",
            RowTable::Ack => "ack",
            RowTable::Title => "title",
            RowTable::Prompt => "prompt",
            RowTable::Held => "held",
            RowTable::Posts => "posts",
            RowTable::Approved => "approved",
            RowTable::Report => "report",
            RowTable::Warning => "warning",
        }
    }

    pub fn parse(name: &str) -> Option<RowTable> {
        RowTable::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// One row of a loaded table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub table: RowTable,
    pub key: String,
    pub value: Vec<u8>,
}

/// The annotation tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AnnexTable {
    /// One entry per moderation action, under the seq of its event.
    ModLog,
    /// What happened to a message since, under its seq: its edits (`v:SEQ`),
    /// its deletion (`del`), reactions (`r:EMOJI\x1fUSER`), and the replies
    /// in its thread (`reply:SEQ`). SEQ is zero-padded to 20 digits, so keys
    /// sort by it.
    Message,
}

impl AnnexTable {
    pub fn as_str(self) -> &'static str {
        match self {
            AnnexTable::ModLog => "modlog",
            AnnexTable::Message => "msg",
        }
    }

    pub fn parse(name: &str) -> Option<AnnexTable> {
        match name {
            "modlog" => Some(AnnexTable::ModLog),
            "msg" => Some(AnnexTable::Message),
            _ => None,
        }
    }
}

/// A seq in an annotation key: 20 digits, so keys sort by it.
pub fn seq_key(prefix: &str, seq: hearth_protocol::Seq) -> String {
    format!("{prefix}{:020}", seq.0)
}

/// A version of a message's text: its edit's text and time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionAnn {
    pub text: Text,
    pub at: Millis,
}

/// Who deleted a message, and when; or who replied in its thread, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByAt {
    pub by: UserId,
    pub at: Millis,
}

/// One annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnexRow {
    pub table: AnnexTable,
    pub target: hearth_protocol::Seq,
    pub key: String,
    pub value: Vec<u8>,
}

/// A ban, a mute or a warning: who, when, until when (`None`: until
/// lifted), why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sanction {
    pub by: UserId,
    pub at: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Millis>,
    #[serde(default)]
    pub reason: ShortText,
}

impl Sanction {
    /// In force at `now`.
    pub fn holds(&self, now: Millis) -> bool {
        self.until.is_none_or(|until| until > now)
    }
}

/// A pending request to join an approval room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub note: Note,
    pub at: Millis,
}

/// A denied request: who denied it, when, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    pub by: UserId,
    pub at: Millis,
    #[serde(default)]
    pub reason: ShortText,
}

/// A room's invite, by its id (the code itself is never stored: its id is a
/// hash of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteRow {
    pub by: UserId,
    pub at: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u32>,
    pub uses: u32,
}

impl InviteRow {
    /// Usable at `now`.
    pub fn valid(&self, now: Millis) -> bool {
        self.expires_at.is_none_or(|t| t > now) && self.max_uses.is_none_or(|max| self.uses < max)
    }
}

/// A scheduled prompt the server posts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptRow {
    pub by: UserId,
    pub text: Text,
    pub next_at: Millis,
    pub weekly: bool,
}

/// The loaded tables of one room, typed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    pub bans: HashMap<UserId, Sanction>,
    pub mutes: HashMap<UserId, Sanction>,
    pub requests: BTreeMap<UserId, Request>,
    pub denied: HashMap<UserId, Denial>,
    pub invites: HashMap<String, InviteRow>,
    /// The rules version each member acknowledged.
    pub acks: HashMap<UserId, u32>,
    pub titles: HashMap<UserId, ShortText>,
    pub prompts: BTreeMap<u64, PromptRow>,
    /// Newcomers' messages held for a look, by author and client message id.
    pub held: BTreeMap<(UserId, String), HeldRow>,
    /// Posts made so far by members on probation by posts (counted only
    /// while it applies to them).
    pub posts: HashMap<UserId, u32>,
    /// Members let in by a welcomer or moderator, with who did, who have not
    /// joined on a connection since.
    pub approved: HashMap<UserId, UserId>,
    /// Open reports, by id (oldest first).
    pub reports: BTreeMap<Seq, ReportRow>,
    /// Warnings (live or expired, until the member's next one forgets the
    /// expired ones), by member and id.
    pub warnings: BTreeMap<(UserId, Seq), Sanction>,
}

/// An open report: what was reported, by whom, why, and who may see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRow {
    pub by: UserId,
    pub message: Seq,
    pub author: UserId,
    pub text: Text,
    pub category: ReportCategory,
    #[serde(default)]
    pub note: ShortText,
    pub at: Millis,
    pub audience: Role,
}

/// How the reports on a message were resolved (an annotation of the message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    pub by: UserId,
    pub at: Millis,
    pub outcome: ReportOutcome,
}

/// A warning's key: its member and id.
pub fn warning_key(user: &UserId, warning: Seq) -> String {
    seq_key(&format!("{user}\u{1f}"), warning)
}

/// A held message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldRow {
    pub text: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<hearth_protocol::Seq>,
    pub at: Millis,
}

/// A held message's key: its author and client message id.
pub fn held_key(user: &UserId, cmid: &str) -> String {
    format!("{user}\u{1f}{cmid}")
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(value).expect("rows serialise")
}

/// A row's value as its record.
pub fn decode<T: serde::de::DeserializeOwned>(value: &[u8]) -> Result<T, rmp_serde::decode::Error> {
    rmp_serde::from_slice(value)
}

impl Row {
    pub fn ban(user: &UserId, sanction: &Sanction) -> Row {
        Row { table: RowTable::Ban, key: user.to_string(), value: encode(sanction) }
    }

    pub fn mute(user: &UserId, sanction: &Sanction) -> Row {
        Row { table: RowTable::Mute, key: user.to_string(), value: encode(sanction) }
    }

    pub fn request(user: &UserId, request: &Request) -> Row {
        Row { table: RowTable::Request, key: user.to_string(), value: encode(request) }
    }

    pub fn denied(user: &UserId, denial: &Denial) -> Row {
        Row { table: RowTable::Denied, key: user.to_string(), value: encode(denial) }
    }

    pub fn invite(id: &str, invite: &InviteRow) -> Row {
        Row { table: RowTable::Invite, key: id.to_string(), value: encode(invite) }
    }

    pub fn ack(user: &UserId, version: u32) -> Row {
        Row { table: RowTable::Ack, key: user.to_string(), value: encode(&version) }
    }

    pub fn posts(user: &UserId, count: u32) -> Row {
        Row { table: RowTable::Posts, key: user.to_string(), value: encode(&count) }
    }

    pub fn title(user: &UserId, title: &ShortText) -> Row {
        Row { table: RowTable::Title, key: user.to_string(), value: encode(title) }
    }

    pub fn held(user: &UserId, cmid: &str, held: &HeldRow) -> Row {
        Row { table: RowTable::Held, key: held_key(user, cmid), value: encode(held) }
    }

    pub fn approved(user: &UserId, by: &UserId) -> Row {
        Row { table: RowTable::Approved, key: user.to_string(), value: encode(by) }
    }

    pub fn report(id: Seq, report: &ReportRow) -> Row {
        Row { table: RowTable::Report, key: seq_key("", id), value: encode(report) }
    }

    pub fn warning(user: &UserId, id: Seq, warning: &Sanction) -> Row {
        Row { table: RowTable::Warning, key: warning_key(user, id), value: encode(warning) }
    }

    pub fn prompt(id: u64, prompt: &PromptRow) -> Row {
        Row { table: RowTable::Prompt, key: id.to_string(), value: encode(prompt) }
    }
}

impl AnnexRow {
    pub fn message(target: hearth_protocol::Seq, key: String, value: &impl Serialize) -> AnnexRow {
        AnnexRow { table: AnnexTable::Message, target, key, value: encode(value) }
    }

    pub fn mod_log(entry: &ModEntry) -> AnnexRow {
        AnnexRow {
            table: AnnexTable::ModLog,
            target: hearth_protocol::Seq(entry.entry),
            key: String::new(),
            value: encode(entry),
        }
    }
}

/// A stored row that does not read as its table's record.
#[derive(Debug, thiserror::Error)]
#[error("a stored {table} row {key:?} is unreadable: {detail}")]
pub struct BadRow {
    pub table: &'static str,
    pub key: String,
    pub detail: String,
}

/// An invite's id: a hash of its code, so a stored row or an event never
/// holds a usable code.
pub fn invite_id(code: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(code.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// A stored invite's value with one more use counted (unchanged if unreadable).
pub fn count_use(value: &[u8]) -> Vec<u8> {
    match decode::<InviteRow>(value) {
        Ok(mut invite) => {
            invite.uses += 1;
            encode(&invite)
        }
        Err(_) => value.to_vec(),
    }
}

impl Rows {
    /// Counts one use of invite `id`.
    pub fn use_invite(&mut self, id: &str) {
        if let Some(invite) = self.invites.get_mut(id) {
            invite.uses += 1;
        }
    }

    /// Puts one stored row in its place.
    pub fn put(&mut self, row: &Row) -> Result<(), BadRow> {
        let bad = |detail: String| BadRow { table: row.table.as_str(), key: row.key.clone(), detail };
        let user = || UserId::new(row.key.clone()).map_err(bad);
        let value = |e: rmp_serde::decode::Error| bad(e.to_string());
        match row.table {
            RowTable::Ban => {
                self.bans.insert(user()?, decode(&row.value).map_err(value)?);
            }
            RowTable::Mute => {
                self.mutes.insert(user()?, decode(&row.value).map_err(value)?);
            }
            RowTable::Request => {
                self.requests.insert(user()?, decode(&row.value).map_err(value)?);
            }
            RowTable::Denied => {
                self.denied.insert(user()?, decode(&row.value).map_err(value)?);
            }
            RowTable::Invite => {
                self.invites.insert(row.key.clone(), decode(&row.value).map_err(value)?);
            }
            RowTable::Ack => {
                self.acks.insert(user()?, decode(&row.value).map_err(value)?);
            }
            RowTable::Title => {
                self.titles.insert(user()?, decode(&row.value).map_err(value)?);
            }
            RowTable::Posts => {
                self.posts.insert(user()?, decode(&row.value).map_err(value)?);
            }
            RowTable::Approved => {
                self.approved.insert(user()?, decode(&row.value).map_err(value)?);
            }
            RowTable::Report => {
                let id = row.key.parse().map_err(|_| bad("not a report id".into()))?;
                self.reports.insert(Seq(id), decode(&row.value).map_err(value)?);
            }
            RowTable::Warning => {
                let key = parse_warning_key(&row.key).ok_or_else(|| bad("not a warning key".into()))?;
                self.warnings.insert(key, decode(&row.value).map_err(value)?);
            }
            RowTable::Prompt => {
                let id = row.key.parse().map_err(|_| bad("not a prompt id".into()))?;
                self.prompts.insert(id, decode(&row.value).map_err(value)?);
            }
            RowTable::Held => {
                let (user, cmid) = row.key.split_once('\u{1f}').ok_or_else(|| bad("not a held key".into()))?;
                let user = UserId::new(user).map_err(bad)?;
                self.held.insert((user, cmid.to_string()), decode(&row.value).map_err(value)?);
            }
        }
        Ok(())
    }

    pub fn remove(&mut self, table: RowTable, key: &str) {
        let user = UserId::new(key).ok();
        match table {
            RowTable::Ban => user.and_then(|u| self.bans.remove(&u)).map(drop),
            RowTable::Mute => user.and_then(|u| self.mutes.remove(&u)).map(drop),
            RowTable::Request => user.and_then(|u| self.requests.remove(&u)).map(drop),
            RowTable::Denied => user.and_then(|u| self.denied.remove(&u)).map(drop),
            RowTable::Invite => self.invites.remove(key).map(drop),
            RowTable::Ack => user.and_then(|u| self.acks.remove(&u)).map(drop),
            RowTable::Title => user.and_then(|u| self.titles.remove(&u)).map(drop),
            RowTable::Posts => user.and_then(|u| self.posts.remove(&u)).map(drop),
            RowTable::Approved => user.and_then(|u| self.approved.remove(&u)).map(drop),
            RowTable::Prompt => key.parse().ok().and_then(|id| self.prompts.remove(&id)).map(drop),
            RowTable::Report => key.parse().ok().and_then(|id| self.reports.remove(&Seq(id))).map(drop),
            RowTable::Warning => parse_warning_key(key).and_then(|k| self.warnings.remove(&k)).map(drop),
            RowTable::Held => key
                .split_once('\u{1f}')
                .and_then(|(u, c)| Some((UserId::new(u).ok()?, c.to_string())))
                .and_then(|k| self.held.remove(&k))
                .map(drop),
        };
    }

    /// Every row, as stored (for making a room again from a copy).
    pub fn to_rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        rows.extend(self.bans.iter().map(|(u, s)| Row::ban(u, s)));
        rows.extend(self.mutes.iter().map(|(u, s)| Row::mute(u, s)));
        rows.extend(self.requests.iter().map(|(u, r)| Row::request(u, r)));
        rows.extend(self.denied.iter().map(|(u, d)| Row::denied(u, d)));
        rows.extend(self.invites.iter().map(|(c, i)| Row::invite(c, i)));
        rows.extend(self.acks.iter().map(|(u, v)| Row::ack(u, *v)));
        rows.extend(self.titles.iter().map(|(u, t)| Row::title(u, t)));
        rows.extend(self.prompts.iter().map(|(id, p)| Row::prompt(*id, p)));
        rows.extend(self.held.iter().map(|((u, c), h)| Row::held(u, c, h)));
        rows.extend(self.posts.iter().map(|(u, n)| Row::posts(u, *n)));
        rows.extend(self.approved.iter().map(|(u, by)| Row::approved(u, by)));
        rows.extend(self.reports.iter().map(|(id, r)| Row::report(*id, r)));
        rows.extend(self.warnings.iter().map(|((u, id), w)| Row::warning(u, *id, w)));
        rows
    }
}

fn parse_warning_key(key: &str) -> Option<(UserId, Seq)> {
    let (user, id) = key.split_once('\u{1f}')?;
    Some((UserId::new(user).ok()?, Seq(id.parse().ok()?)))
}
