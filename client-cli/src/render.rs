//! Events as lines of terminal text. Text from other members is shown, never
//! obeyed: control characters (escape sequences that clear a screen, recolour
//! it or set the window title; a carriage return that overwrites a line) and
//! bidirectional overrides (which make text read backwards) are made visible
//! instead of being written to the terminal. `--json` output stays exact.

use std::borrow::Cow;
use std::fmt::Write;

use hearth_protocol::event::LeftReason;
use hearth_protocol::{Event, Millis};

/// One event as a line (or, for a message with line breaks, indented lines) for
/// a terminal; `None` for events `hearth tail` does not show.
pub fn event_line(event: &Event) -> Option<String> {
    Some(match event {
        // Brought from Discord: its author and time there (an author no
        // member was mapped to by that name only).
        Event::Message(m) if let Some(imported) = &m.imported => {
            let author = printable(imported.author.as_str()).into_owned();
            let who = if m.from.as_str() == "discord-import" { author } else { format!("{} ({author})", m.from) };
            let when = imported.at.date_time_utc();
            format!("#{:<5} {when} {who} [Discord]: {}", m.seq, printable(m.text.as_str()))
        }
        Event::Message(m) => format!("#{:<5} {} {}: {}", m.seq, clock(m.ts), m.from, printable(m.text.as_str())),
        Event::MemberJoined(j) => format!("#{:<5} {} -- {} joined as {}", j.seq, clock(j.ts), j.from, j.role.as_str()),
        Event::MemberLeft(l) => {
            let how = match l.reason {
                LeftReason::Left => "left",
                LeftReason::Kicked => "was kicked",
                LeftReason::Banned => "was banned",
            };
            format!("#{:<5} {} -- {} {how}", l.seq, clock(l.ts), l.user)
        }
        Event::Pin(p) => {
            format!("#{:<5} {} -- {} pinned: {}", p.seq, clock(p.ts), p.from, printable(p.pin.text.as_str()))
        }
        Event::Unpin(p) => format!("#{:<5} {} -- {} unpinned pin {}", p.seq, clock(p.ts), p.from, p.pin.0),
        Event::Truncated(t) => {
            format!("-- events {} to {} are no longer held by the server", t.after.0 + 1, t.next.0.saturating_sub(1))
        }
        _ => return None,
    })
}

/// What else a member list says of `m` at `now`, for a person: their title,
/// newcomer, how long a time-limited role or a mute has left. Empty if
/// nothing.
pub fn member_notes(m: &hearth_protocol::ops::MemberInfo, now: Millis) -> String {
    let mut notes = Vec::new();
    if let Some(title) = m.title.as_ref().filter(|t| !t.as_str().is_empty()) {
        notes.push(format!("\u{201c}{}\u{201d}", printable(title.as_str())));
    }
    if m.newcomer {
        notes.push("new".to_string());
    }
    if let Some(until) = m.role_expires_at {
        notes.push(format!("{} for {} more", m.role.as_str(), time_left(until, now)));
    }
    if let Some(until) = m.muted_until {
        notes.push(format!("muted for {} more", time_left(until, now)));
    }
    notes.join(" · ")
}

/// How long from `now` until `until`, roughly: `40s`, `12m`, `3h`, `2d`.
pub fn time_left(until: Millis, now: Millis) -> String {
    let secs = until.0.saturating_sub(now.0).div_ceil(1000);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs.div_ceil(60)),
        3600..86_400 => format!("{}h", secs.div_ceil(3600)),
        _ => format!("{}d", secs.div_ceil(86_400)),
    }
}

/// `HH:MM:SS` in UTC.
pub fn clock(ts: Millis) -> String {
    let secs = ts.0 / 1000;
    format!("{:02}:{:02}:{:02}", (secs / 3600) % 24, (secs / 60) % 60, secs % 60)
}

/// `YYYY-MM-DD HH:MM` in UTC: for messages from any day (search results).
pub fn date_time(ts: Millis) -> String {
    ts.date_time_utc()
}

/// Characters that change how a terminal shows text rather than being text:
/// bidirectional embeddings, overrides and isolates, and the invisible marks.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `text` safe to write to a terminal. A line break continues the text on an
/// indented line (so it cannot pose as another event); a tab stays; every other
/// control character is shown in caret notation (`^[` for escape) and bidi
/// controls and C1 controls as `<U+202E>`.
pub fn printable(text: &str) -> Cow<'_, str> {
    let needs = |c: char| c.is_control() && c != '\t' || is_bidi_control(c);
    if !text.chars().any(needs) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\n      "),
            '\t' => out.push('\t'),
            c if (c as u32) < 0x20 => {
                out.push('^');
                out.push(char::from(b'@' + c as u8));
            }
            '\u{7f}' => out.push_str("^?"),
            c if c.is_control() || is_bidi_control(c) => {
                let _ = write!(out, "<U+{:04X}>", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_civil_dates_in_utc() {
        use hearth_protocol::Millis;
        assert_eq!(super::date_time(Millis(0)), "1970-01-01 00:00");
        assert_eq!(super::date_time(Millis(1_764_141_300_000)), "2025-11-26 07:15");
        assert_eq!(super::date_time(Millis(951_782_400_000)), "2000-02-29 00:00");
    }

    use hearth_protocol::event::MessageEvent;
    use hearth_protocol::{ClientMsgId, RoomId, Seq, Text, UserId};

    use super::*;

    fn message(text: &str) -> Event {
        Event::Message(MessageEvent {
            seq: Seq(7),
            ts: Millis(0),
            ..MessageEvent::draft(
                RoomId::new("cameras").unwrap(),
                UserId::new("mallory").unwrap(),
                Text::new(text).unwrap(),
                ClientMsgId::new("c").unwrap(),
                None,
            )
        })
    }

    /// Nothing a terminal would act on: no C0 or C1 control but the line breaks
    /// and tabs we wrote, no bidi control.
    fn inert(line: &str) -> bool {
        line.chars().all(|c| !(is_bidi_control(c) || c.is_control() && c != '\n' && c != '\t'))
    }

    #[test]
    fn hostile_text_is_shown_not_obeyed() {
        let attacks = [
            "\u{1b}[2J\u{1b}[H",             // clear the screen
            "\u{1b}[31mred\u{1b}[0m",        // recolour
            "\u{1b}]0;pwned\u{7}",           // set the window title
            "ok\r#8     00:00:00 ada: fake", // overwrite the line
            "\u{202E}txet desrever",         // read backwards
            "bell\u{7} and delete\u{7f}",
            "\u{9b}31m C1 CSI",
        ];
        for text in attacks {
            let line = event_line(&message(text)).unwrap();
            assert!(inert(&line), "{text:?} became {line:?}");
        }
        let line = event_line(&message("\u{1b}[2J")).unwrap();
        assert!(line.ends_with("^[[2J"), "{line}");
        assert!(event_line(&message("\u{202E}x")).unwrap().contains("<U+202E>"));
    }

    #[test]
    fn a_line_break_cannot_pose_as_another_event() {
        let line = event_line(&message("hi\n#8     00:00:00 ada: I agree")).unwrap();
        let second = line.lines().nth(1).unwrap();
        assert!(second.starts_with("      #8"), "{line}");
    }

    #[test]
    fn an_imported_message_shows_its_author_and_time_there_and_their_name_is_inert() {
        use hearth_protocol::ShortText;
        use hearth_protocol::event::Imported;
        let mut event = message("Welcome!");
        let Event::Message(m) = &mut event else { unreachable!() };
        m.from = UserId::new("discord-import").unwrap();
        m.imported = Some(Box::new(Imported {
            source: "discord".into(),
            id: "100".into(),
            author: ShortText::new("carol\u{1b}[2J").unwrap(),
            at: Millis(1_614_861_296_789),
            edited_at: None,
            reactions: Vec::new(),
        }));
        let by_guest = event.clone();
        assert_eq!(event_line(&by_guest).unwrap(), "#7     2021-03-04 12:34 carol^[[2J [Discord]: Welcome!");
        let Event::Message(m) = &mut event else { unreachable!() };
        m.from = UserId::new("ada").unwrap();
        assert!(event_line(&event).unwrap().contains(" ada (carol^[[2J) [Discord]: "));
    }

    #[test]
    fn ordinary_text_is_untouched() {
        let text = "Portra 400 at 800? Ça marche — 東京 🎞️\ttabbed";
        assert!(matches!(printable(text), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn a_member_list_says_title_newcomer_and_what_time_is_left() {
        use hearth_protocol::ops::MemberInfo;
        use hearth_protocol::{Role, ShortText};
        let now = Millis(1_000_000_000);
        let mut m = MemberInfo {
            user: UserId::new("bo").unwrap(),
            role: Role::Welcomer,
            joined_at: now,
            role_expires_at: Some(Millis(now.0 + 3 * 86_400_000)),
            online: true,
            title: Some(ShortText::new("topic lead").unwrap()),
            muted_until: Some(Millis(now.0 + 90 * 60_000)),
            newcomer: true,
            rules_acked: None,
        };
        assert_eq!(
            member_notes(&m, now),
            "\u{201c}topic lead\u{201d} · new · welcomer for 3d more · muted for 2h more"
        );
        m.title = Some(ShortText::new("\u{1b}[2J").unwrap());
        assert!(member_notes(&m, now).starts_with("\u{201c}^[[2J"), "a title is shown, never obeyed");
        assert_eq!(time_left(Millis(now.0 + 40_500), now), "41s");
        assert_eq!(time_left(Millis(now.0 + 12 * 60_000), now), "12m");
        let plain = MemberInfo { title: None, newcomer: false, role_expires_at: None, muted_until: None, ..m };
        assert_eq!(member_notes(&plain, now), "");
    }
}
