//! Exports, for people taking their history with them: a room's timeline
//! as it is now — JSON Lines, and a self-contained HTML page with no script
//! — for its owner, and a member's own data (their messages, reactions,
//! memberships, open reports and warnings) as one JSON document. Served
//! over HTTP (`transport::http`, `GET /export/...` with an access token);
//! built in memory from what the server holds, so bounded by the history it
//! keeps (`--history-limit`, or Redis's stream length in a cluster).
//!
//! "As it is now" is the rule of every page of history: a message shows its
//! newest text, a deleted one is a tombstone, reactions and reply counts are
//! folded into it — and the edits, deletions and reactions themselves are
//! not exported, so text taken back is in no export. Events only welcomers
//! and above receive (join requests, held posts, reports) are left out: an
//! export is the room as its members see it.

use std::fmt::Write as _;
use std::sync::Arc;

use hearth_protocol::codec::encode_event;
use hearth_protocol::ops::RoomInfo;
use hearth_protocol::{Codec, Event, Millis, Role, Seq, UserId};
use serde::Serialize;

use crate::broker::{Broker, BrokerError};
use crate::room;
use crate::rooms::Room;
use crate::store::StoreError;

/// Events read from the store at a time.
const PAGE: usize = 500;

/// The room's timeline as its members see it now, oldest first.
pub async fn room_history(broker: &dyn Broker, room: &Room) -> Result<Vec<Event>, BrokerError> {
    let head = room.position().seq;
    let mut events = Vec::new();
    let mut after = Seq::ZERO;
    loop {
        let page = broker.history_after(room.id.clone(), after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        let mut decoded: Vec<Event> = Vec::with_capacity(page.len());
        for stored in page.iter().filter(|s| s.seq <= head) {
            let event: Event = rmp_serde::from_slice(&stored.body)
                .map_err(|e| StoreError::Corrupt { what: "a stored event", detail: e.to_string() })?;
            let folded = matches!(event, Event::Edit(_) | Event::Delete(_) | Event::Reaction(_));
            if !folded && room::audience(&event) == Role::Member {
                decoded.push(event);
            }
        }
        crate::session::reads::overlay(broker, &room.id, &mut decoded).await?;
        events.extend(decoded);
        if after >= head {
            break;
        }
    }
    Ok(events)
}

/// One JSON value per line, each event as the protocol's JSON frames write it.
pub fn jsonl(events: &[Event]) -> String {
    let mut out = String::new();
    for event in events {
        out.push_str(&String::from_utf8_lossy(&encode_event(Codec::Json, event)));
        out.push('\n');
    }
    out
}

/// `text` safe inside HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page's own policy, inside it: a saved copy opened from disk runs no
/// script and loads nothing either.
const HTML_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'";

const HTML_STYLE: &str = "body{font:16px/1.45 system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;\
color:#1f1a17;background:#faf7f2}h1{margin-bottom:0}.m{margin:.7rem 0}.who{font-weight:600}.meta,.ev{color:#5c524a;\
font-size:.9em}.text{white-space:pre-wrap;overflow-wrap:anywhere}.deleted{font-style:italic;color:#5c524a}\
.reply{border-left:3px solid #d9cfc3;padding-left:.75rem;margin-left:1rem}";

/// A self-contained page of the room's timeline: no script, every member's
/// text escaped.
pub fn html(info: &RoomInfo, events: &[Event], exported_at: Millis) -> String {
    let mut out = String::new();
    let name = escape(info.room.as_str());
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{HTML_POLICY}\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>#{name} — exported from Hearth</title><style>{HTML_STYLE}</style></head>\n<body>\
         <h1>#{name}</h1><p>{}</p><p class=\"meta\">Exported {} UTC: {} messages.</p>\n<main>\n",
        escape(info.topic.as_str()),
        exported_at.date_time_utc(),
        events.iter().filter(|e| matches!(e, Event::Message(_))).count(),
    );
    for event in events {
        let Some(ts) = event.ts() else { continue };
        let when = format!("<time datetime=\"{}\">{}</time>", ts.0, ts.date_time_utc());
        match event {
            Event::Message(m) => {
                let state = m.state.as_deref();
                let deleted = state.is_some_and(|s| s.deleted);
                let class = if m.thread.is_some() { "m reply" } else { "m" };
                let _ = write!(
                    out,
                    "<article class=\"{class}\" id=\"m{}\"><span class=\"who\">{}</span> ",
                    m.seq.0,
                    escape(m.from.as_str())
                );
                let _ = write!(out, "<span class=\"meta\">{when} · #{}", m.seq.0);
                if let Some(root) = m.thread {
                    let _ = write!(out, " · reply to <a href=\"#m{0}\">#{0}</a>", root.0);
                }
                if state.is_some_and(|s| s.edited_at.is_some()) && !deleted {
                    out.push_str(" · edited");
                }
                out.push_str("</span>");
                if deleted {
                    out.push_str("<div class=\"text deleted\">This message was deleted.</div>");
                } else {
                    let _ = write!(out, "<div class=\"text\">{}</div>", escape(m.text.as_str()));
                }
                if let Some(state) = state.filter(|s| !s.reactions.is_empty()) {
                    let reactions: Vec<String> =
                        state.reactions.iter().map(|r| format!("{} {}", escape(r.emoji.as_str()), r.count)).collect();
                    let _ = write!(out, "<div class=\"meta\">{}</div>", reactions.join(" · "));
                }
                out.push_str("</article>\n");
            }
            other => {
                if let Some(line) = describe(other) {
                    let _ = writeln!(out, "<p class=\"ev\">{when} · {}</p>", escape(&line));
                }
            }
        }
    }
    out.push_str("</main>\n</body></html>\n");
    out
}

/// A line for an event other than a message, in the export's page.
fn describe(event: &Event) -> Option<String> {
    use hearth_protocol::ops::ModAction;
    Some(match event {
        Event::MemberJoined(j) => format!("{} joined", j.from),
        Event::MemberLeft(l) => format!("{} left", l.user),
        Event::DirectStarted(d) => format!("{} started the conversation", d.from),
        Event::Pin(p) => format!("{} pinned: {}", p.from, p.pin.text),
        Event::Unpin(u) => format!("{} unpinned a note", u.from),
        Event::Role(r) => format!("{} made {} a {}", r.from, r.user, r.role.as_str()),
        Event::RoomUpdated(r) => format!("{} changed the room's settings", r.from),
        Event::Moderation(m) => {
            let whom = m.user.as_ref().map(|u| u.as_str()).unwrap_or("");
            let what = match m.action {
                ModAction::Kick => "removed",
                ModAction::Ban => "banned",
                ModAction::Unban => "lifted the ban of",
                ModAction::Mute => "muted",
                ModAction::Unmute => "unmuted",
                ModAction::Warn => "warned",
                ModAction::Unwarn => "lifted a warning of",
                _ => return None,
            };
            format!("{} {what} {whom}", m.from)
        }
        _ => return None,
    })
}

/// What a member takes with them: their data in every room they are in.
#[derive(Debug, Serialize)]
pub struct MemberData {
    pub user: UserId,
    pub exported_at: Millis,
    pub memberships: Vec<Membership>,
    /// Their messages as they are now (edited text, tombstones), oldest first per room.
    pub messages: Vec<Event>,
    pub reactions: Vec<Reaction>,
    /// Their reports still open, and their live warnings.
    pub reports: Vec<(hearth_protocol::RoomId, hearth_protocol::ops::OpenReport)>,
    pub warnings: Vec<(hearth_protocol::RoomId, hearth_protocol::ops::WarningInfo)>,
}

#[derive(Debug, Serialize)]
pub struct Membership {
    pub room: hearth_protocol::RoomId,
    pub role: Role,
    pub joined_at: Millis,
}

#[derive(Debug, Serialize)]
pub struct Reaction {
    pub room: hearth_protocol::RoomId,
    pub message: Seq,
    pub emoji: String,
}

/// `user`'s own data in `rooms` (the rooms they are in), at `now`.
pub async fn member_data(
    broker: &dyn Broker,
    rooms: &[Arc<Room>],
    user: &UserId,
    now: Millis,
) -> Result<MemberData, BrokerError> {
    let mut data = MemberData {
        user: user.clone(),
        exported_at: now,
        memberships: Vec::new(),
        messages: Vec::new(),
        reactions: Vec::new(),
        reports: Vec::new(),
        warnings: Vec::new(),
    };
    let reaction_suffix = format!("\u{1f}{user}");
    for room in rooms {
        let (member, reports, warnings) = room.decide(|s| {
            let member = s.members.get(user).map(|m| (m.role_at(now), m.joined_at));
            let reports = s
                .open_reports(user, now)
                .unwrap_or_default()
                .into_iter()
                .filter(|r| r.from == *user)
                .collect::<Vec<_>>();
            let warnings = s.warnings_of(user, user, now).map(|w| w.warnings).unwrap_or_default();
            (member, reports, warnings)
        });
        let Some((role, joined_at)) = member else { continue };
        data.memberships.push(Membership { room: room.id.clone(), role, joined_at });
        data.reports.extend(reports.into_iter().map(|r| (room.id.clone(), r)));
        data.warnings.extend(warnings.into_iter().map(|w| (room.id.clone(), w)));
        // Every message of the room, for the reactions; the member's own kept.
        let head = room.position().seq;
        let mut after = Seq::ZERO;
        loop {
            let page = broker.history_after(room.id.clone(), after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            let mut messages: Vec<Event> = page
                .iter()
                .filter(|s| s.seq <= head)
                .filter_map(|s| match rmp_serde::from_slice::<Event>(&s.body) {
                    Ok(event @ Event::Message(_)) => Some(event),
                    _ => None,
                })
                .collect();
            let rows = crate::session::reads::overlay(broker, &room.id, &mut messages).await?;
            for row in &rows {
                if let Some(emoji) = row.key.strip_prefix("r:").and_then(|k| k.strip_suffix(&reaction_suffix)) {
                    data.reactions.push(Reaction {
                        room: room.id.clone(),
                        message: row.target,
                        emoji: emoji.to_string(),
                    });
                }
            }
            data.messages.extend(messages.into_iter().filter(|e| matches!(e, Event::Message(m) if m.from == *user)));
            if after >= head {
                break;
            }
        }
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }
}
