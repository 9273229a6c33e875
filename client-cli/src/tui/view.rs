//! Draws the [`App`] into a ratatui frame: rooms on the left, the open room's
//! timeline, a side panel (pins, members, help) when asked for, a status line
//! and the input line. Everything other members wrote goes through
//! `render::printable` first, so it is shown and never obeyed. Colours are
//! dropped when `plain` (NO_COLOR, or a terminal without them).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line as TextLine, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use hearth_protocol::UserId;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::app::{App, COMMANDS, Connection, Line, LineKind, Panel, RoomView};
use crate::render::{clock, printable};

/// The sidebar's width, when the terminal is wide enough for one.
const SIDEBAR: u16 = 20;

pub fn draw(frame: &mut Frame, app: &App, plain: bool) {
    let theme = Theme { plain };
    let area = frame.area();
    let [body, status, input] =
        Layout::vertical([Constraint::Min(1), Constraint::Length(1), Constraint::Length(1)]).areas(area);
    let main = if body.width >= 60 {
        let [side, main] = Layout::horizontal([Constraint::Length(SIDEBAR), Constraint::Min(1)]).areas(body);
        draw_rooms(frame, app, side, &theme);
        main
    } else {
        body
    };
    if app.panel == Panel::None {
        draw_room(frame, app, main, &theme);
    } else if main.width >= 60 && app.panel != Panel::Help {
        // Beside the timeline, which wraps to what is left. Help is read, not
        // kept beside the talk: it takes the timeline's place, to fit whole.
        let width = (main.width * 2 / 5).max(28);
        let [room, panel] = Layout::horizontal([Constraint::Min(1), Constraint::Length(width)]).areas(main);
        draw_room(frame, app, room, &theme);
        draw_panel(frame, app, panel, &theme);
    } else {
        // Help, or too narrow for both: the panel covers the timeline until Esc.
        frame.render_widget(Clear, main);
        draw_panel(frame, app, main, &theme);
    }
    draw_status(frame, app, status, &theme);
    draw_input(frame, app, input, &theme);
}

struct Theme {
    plain: bool,
}

impl Theme {
    fn fg(&self, color: Color) -> Style {
        if self.plain { Style::default() } else { Style::default().fg(color) }
    }

    fn dim(&self) -> Style {
        if self.plain { Style::default() } else { Style::default().add_modifier(Modifier::DIM) }
    }

    /// A stable colour per name, so a speaker is recognisable at a glance.
    fn name(&self, name: &str) -> Style {
        const COLOURS: [Color; 6] = [Color::Cyan, Color::Green, Color::Yellow, Color::Magenta, Color::Blue, Color::Red];
        let hash = name.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(usize::from(b)));
        self.fg(COLOURS[hash % COLOURS.len()]).add_modifier(Modifier::BOLD)
    }
}

fn draw_rooms(frame: &mut Frame, app: &App, area: Rect, theme: &Theme) {
    let mut lines = Vec::new();
    for (n, room) in app.rooms.values().enumerate() {
        let active = app.active.as_ref() == Some(&room.id);
        let mut style = if active { Style::default().add_modifier(Modifier::REVERSED) } else { Style::default() };
        if !room.joined {
            style = style.add_modifier(Modifier::DIM);
        }
        let mut spans = vec![Span::styled(format!("{} {}", n + 1, app.room_label(room)), style)];
        if room.mentions > 0 {
            spans.push(Span::styled(format!(" @{}", room.mentions), theme.fg(Color::Red).add_modifier(Modifier::BOLD)));
        }
        if room.unread > 0 {
            spans.push(Span::styled(format!(" {}", room.unread), theme.fg(Color::Yellow)));
        }
        lines.push(TextLine::from(spans));
    }
    if lines.is_empty() {
        lines.push(TextLine::styled("no rooms: /join", theme.dim()));
    }
    let block = Block::default().borders(Borders::RIGHT).title(" rooms ");
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_room(frame: &mut Frame, app: &App, area: Rect, theme: &Theme) {
    let [header, timeline] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
    let Some(room) = app.active_room() else {
        let hello = vec![
            TextLine::from(format!("Welcome to Hearth, {}.", app.me)),
            TextLine::from(""),
            TextLine::from("/rooms lists the rooms you can see, /join ROOM opens one,"),
            TextLine::from("/create ROOM TOPIC makes a new one. F1 shows every key."),
        ];
        frame.render_widget(Paragraph::new(hello).wrap(Wrap { trim: false }), timeline);
        return;
    };
    let role = room.role.map(|r| format!(", you: {}", r.as_str())).unwrap_or_default();
    let title = match app.thread {
        Some(root) => format!("{} › thread of #{} (replies go here; Esc closes)", app.room_label(room), root.0),
        None if !room.direct.is_empty() => format!("{} ({} members)", app.room_label(room), room.members_count),
        None => format!("#{} — {} ({} members{role})", room.id, printable(&room.topic), room.members_count),
    };
    frame.render_widget(Paragraph::new(TextLine::styled(title, Style::default().add_modifier(Modifier::BOLD))), header);
    let rows = timeline_rows(room, app, timeline.width.max(1) as usize, timeline.height as usize, theme);
    frame.render_widget(Paragraph::new(rows), timeline);
}

/// The rows that fill a timeline `height` rows high, bottom-aligned, ending
/// `room.scroll` lines above the newest; only one thread's when `thread`.
fn timeline_rows(room: &RoomView, app: &App, width: usize, height: usize, theme: &Theme) -> Vec<TextLine<'static>> {
    let thread = app.thread;
    let end = room.lines.len().saturating_sub(room.scroll);
    let in_thread = |line: &Line| match (thread, &line.kind) {
        (None, _) => true,
        (Some(root), LineKind::Message { thread, .. }) => line.seq == Some(root) || *thread == Some(root),
        (Some(_), LineKind::Notice(_)) => false,
    };
    let mut rows: Vec<TextLine<'static>> = Vec::new();
    for line in room.lines.iter().take(end).filter(|l| in_thread(l)).rev() {
        let mut wrapped = line_rows(room, line, thread.is_none(), &app.blocked, width, theme);
        wrapped.reverse();
        rows.extend(wrapped);
        if rows.len() >= height {
            break;
        }
    }
    if end == 0 || (rows.len() < height && room.more_history && room.oldest.is_some()) {
        let more = if room.loading_older { "loading older messages…" } else { "PgUp for older messages" };
        rows.push(TextLine::styled(more, theme.dim()));
    }
    rows.truncate(height);
    // Bottom-aligned, as chat reads: the newest line sits above the input.
    rows.resize(height, TextLine::default());
    rows.reverse();
    if room.scroll > 0
        && let Some(last) = rows.last_mut()
    {
        *last = TextLine::styled(format!("-- {} newer below (End) --", room.scroll), theme.fg(Color::Yellow));
    }
    rows
}

/// One timeline line as display rows of at most `width` characters: a message
/// with its reactions, and (outside a thread's view) a thread root with how
/// many replies it has.
fn line_rows(
    room: &RoomView,
    line: &Line,
    show_replies: bool,
    blocked: &std::collections::BTreeSet<UserId>,
    width: usize,
    theme: &Theme,
) -> Vec<TextLine<'static>> {
    let time = if line.ts.0 == 0 { "     ".to_string() } else { clock(line.ts)[..5].to_string() };
    let seq = line.seq.map(|s| format!("#{} ", s.0)).unwrap_or_default();
    let mut head = vec![Span::styled(format!("{time} {seq}"), theme.dim())];
    let text = match &line.kind {
        LineKind::Notice(text) => {
            head.push(Span::styled(format!("-- {}", printable(text)), theme.dim()));
            return wrap_spans(head, String::new(), width, Style::default());
        }
        // Folded, not hidden: the conversation around it still makes sense.
        LineKind::Message { from, .. } if blocked.contains(from) => {
            head.push(Span::styled("-- a message from someone you blocked (/unblock shows them)", theme.dim()));
            return wrap_spans(head, String::new(), width, Style::default());
        }
        LineKind::Message { from, text, thread, mentions_me, replies, reactions, .. } => {
            if let Some(root) = thread {
                head.push(Span::styled(format!("re #{} ", root.0), theme.fg(Color::Blue)));
            }
            head.push(Span::styled(from.to_string(), theme.name(from.as_str())));
            let member = room.members.iter().find(|m| &m.user == from);
            if let Some(badge) = member.and_then(|m| badge(m.role)) {
                head.push(Span::styled(format!(" {badge}"), theme.dim()));
            }
            // Newcomers are flagged to everyone, so the room greets them.
            if member.is_some_and(|m| m.newcomer) {
                head.push(Span::styled(" (new)", theme.fg(Color::Green)));
            }
            head.push(Span::raw(": "));
            let style = if *mentions_me { theme.fg(Color::Red) } else { Style::default() };
            let mut text = printable(text).into_owned();
            for reaction in reactions {
                text.push_str(&format!("  {} {}", reaction.emoji, reaction.count));
            }
            if show_replies && *replies > 0 {
                text.push_str(&format!("  [{replies} {}]", if *replies == 1 { "reply" } else { "replies" }));
            }
            (text, style)
        }
    };
    wrap_spans(head, text.0, width, text.1)
}

/// The time now, for how long a mute or a role has left.
fn wall_clock() -> hearth_protocol::Millis {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    hearth_protocol::Millis(since_epoch.as_millis() as u64)
}

fn badge(role: hearth_protocol::Role) -> Option<&'static str> {
    match role {
        hearth_protocol::Role::Owner => Some("(owner)"),
        hearth_protocol::Role::Moderator => Some("(mod)"),
        hearth_protocol::Role::Welcomer => Some("(welcomer)"),
        hearth_protocol::Role::Member => None,
    }
}

/// `head` then `text` (which may hold line breaks), wrapped at `width`;
/// continuation rows are indented by two.
fn wrap_spans(head: Vec<Span<'static>>, text: String, width: usize, style: Style) -> Vec<TextLine<'static>> {
    let mut rows = Vec::new();
    let mut row: Vec<Span<'static>> = Vec::new();
    let mut used = 0;
    let push_piece = |rows: &mut Vec<TextLine<'static>>,
                      row: &mut Vec<Span<'static>>,
                      used: &mut usize,
                      piece: &str,
                      style: Style| {
        let mut rest: Vec<char> = piece.chars().collect();
        while !rest.is_empty() {
            // Cells, not characters: a wide character takes two.
            let room = width.saturating_sub(*used).max(1);
            let mut take = 0;
            let mut cells = 0;
            while take < rest.len() {
                let w = rest[take].width().unwrap_or(0);
                if cells + w > room && take > 0 {
                    break;
                }
                cells += w;
                take += 1;
            }
            if take < rest.len() {
                // Break after the last space that fits, unless the word is longer
                // than a whole row.
                if let Some(space) = rest[..take].iter().rposition(|c| *c == ' ')
                    && (space > 0 || *used > 2)
                {
                    take = space + 1;
                    cells = rest[..take].iter().map(|c| c.width().unwrap_or(0)).sum();
                }
            }
            let chunk: String = rest.drain(..take).collect();
            *used += cells;
            row.push(Span::styled(chunk, style));
            if !rest.is_empty() || *used >= width {
                rows.push(TextLine::from(std::mem::take(row)));
                row.push(Span::raw("  "));
                *used = 2;
            }
        }
    };
    for span in head {
        let style = span.style;
        push_piece(&mut rows, &mut row, &mut used, &span.content, style);
    }
    for (n, part) in text.split('\n').enumerate() {
        if n > 0 {
            rows.push(TextLine::from(std::mem::take(&mut row)));
            row.push(Span::raw("  "));
            used = 2;
        }
        push_piece(&mut rows, &mut row, &mut used, part, style);
    }
    if row.iter().any(|s| !s.content.trim().is_empty()) || rows.is_empty() {
        rows.push(TextLine::from(row));
    }
    rows
}

/// The search panel: each result's room, seq, time and author, then its
/// text with the matches in bold.
fn found_lines(app: &App, theme: &Theme) -> Vec<TextLine<'static>> {
    let found = &app.found;
    let mut lines = vec![TextLine::styled(format!("\"{}\"", printable(&found.query)), theme.dim())];
    let Some(results) = &found.results else {
        lines.push(TextLine::styled("searching…", theme.dim()));
        return lines;
    };
    if results.is_empty() {
        lines.push(TextLine::from(if found.more {
            "nothing yet among the newest; search again more precisely"
        } else {
            "nothing found"
        }));
    }
    for result in results {
        let thread = result.thread.map(|t| format!(" in thread #{t}")).unwrap_or_default();
        lines.push(TextLine::from(vec![
            Span::styled(format!("{} #{}{thread} ", result.room, result.seq.0), theme.dim()),
            Span::styled(result.from.to_string(), theme.name(result.from.as_str())),
            Span::styled(format!(" {}", crate::render::date_time(result.ts)), theme.dim()),
        ]));
        let spans: Vec<Span> = result
            .parts
            .iter()
            .enumerate()
            .map(|(n, part)| {
                let text = printable(part).replace('\n', " ");
                if n % 2 == 1 {
                    Span::styled(text, Style::default().add_modifier(Modifier::BOLD))
                } else {
                    Span::raw(text)
                }
            })
            .collect();
        lines.push(TextLine::from(spans));
    }
    if found.more && !results.is_empty() {
        lines.push(TextLine::styled("older results: hearth search", theme.dim()));
    }
    lines
}

fn draw_panel(frame: &mut Frame, app: &App, area: Rect, theme: &Theme) {
    let room = app.active_room();
    let (title, lines): (&str, Vec<TextLine>) = match app.panel {
        Panel::Pins => {
            let pins = room.map(|r| r.pins.as_slice()).unwrap_or_default();
            let mut lines = Vec::new();
            if pins.is_empty() {
                lines.push(TextLine::styled("nothing pinned yet", theme.dim()));
            }
            for pin in pins {
                let title = pin.title.as_ref().map(|t| format!(" {}", printable(t.as_str()))).unwrap_or_default();
                let version = if pin.version > 1 { format!(" v{}", pin.version) } else { String::new() };
                lines.push(TextLine::styled(
                    format!("#{}{title}{version}", pin.pin.0),
                    Style::default().add_modifier(Modifier::BOLD),
                ));
                for part in printable(pin.text.as_str()).split('\n') {
                    lines.push(TextLine::from(part.trim().to_string()));
                }
                lines.push(TextLine::styled(format!("  — {}", pin.by), theme.dim()));
            }
            (" pinned (F2) ", lines)
        }
        Panel::Members => {
            let members = room.map(|r| r.members.as_slice()).unwrap_or_default();
            let mut lines = Vec::new();
            if members.is_empty() {
                lines.push(TextLine::styled("loading…", theme.dim()));
            }
            for m in members {
                let dot = if m.online {
                    Span::styled("● ", theme.fg(Color::Green))
                } else {
                    Span::styled("○ ", theme.dim())
                };
                let mut spans = vec![dot, Span::styled(m.user.to_string(), theme.name(m.user.as_str()))];
                if let Some(badge) = badge(m.role) {
                    spans.push(Span::styled(format!(" {badge}"), theme.dim()));
                }
                let notes = crate::render::member_notes(m, wall_clock());
                if !notes.is_empty() {
                    spans.push(Span::styled(format!(" {notes}"), theme.dim()));
                }
                lines.push(TextLine::from(spans));
            }
            (" members (F3) ", lines)
        }
        Panel::Search => (" search (Esc closes) ", found_lines(app, theme)),
        Panel::Help | Panel::None => {
            let mut lines = vec![
                TextLine::styled("keys", Style::default().add_modifier(Modifier::BOLD)),
                TextLine::from("Enter send · Tab complete · Up/Down history"),
                TextLine::from("PgUp/PgDn scroll · Home/End oldest/newest"),
                TextLine::from("Ctrl-N/Ctrl-P or Alt-Up/Down next/prev room"),
                TextLine::from("Alt-1..9 room by number"),
                TextLine::from("F1 help · F2 pins · F3 members · Esc close"),
                TextLine::from("Ctrl-C quit"),
                TextLine::from(""),
                TextLine::styled("commands", Style::default().add_modifier(Modifier::BOLD)),
                TextLine::from("/help NAME says what one takes"),
            ];
            // Names only: with what each takes, they would not fit a terminal.
            let names: Vec<&str> = COMMANDS.iter().map(|(c, _)| *c).collect();
            lines.push(TextLine::from(names.join(" ")));
            (" help (F1) ", lines)
        }
    };
    let block = Block::default().borders(Borders::ALL).title(title);
    frame.render_widget(Paragraph::new(lines).block(block).wrap(Wrap { trim: false }), area);
}

fn draw_status(frame: &mut Frame, app: &App, area: Rect, theme: &Theme) {
    let (state, style) = match &app.connection {
        Connection::Connecting => ("connecting…".to_string(), theme.fg(Color::Yellow)),
        Connection::Online => ("online".to_string(), theme.fg(Color::Green)),
        Connection::Reconnecting { attempt, retry_in } => {
            (format!("reconnecting (try {attempt}, in {:.1}s)", retry_in.as_secs_f32()), theme.fg(Color::Yellow))
        }
        Connection::Closed(why) => (format!("disconnected: {why}"), theme.fg(Color::Red)),
    };
    let mut spans = vec![Span::styled(format!("[{state}] "), style.add_modifier(Modifier::BOLD))];
    let typing = typing_line(&app.typing_here());
    match (&app.status, typing) {
        (Some(status), typing) => {
            spans.push(Span::raw(printable(status).into_owned()));
            if let Some(typing) = typing {
                spans.push(Span::styled(format!(" · {typing}"), theme.dim()));
            }
        }
        (None, Some(typing)) => spans.push(Span::styled(typing, theme.dim())),
        (None, None) => spans.push(Span::styled("F1 help · F2 pins · F3 members", theme.dim())),
    }
    frame.render_widget(Paragraph::new(TextLine::from(spans)), area);
}

/// "ada is typing…", "ada and bo are typing…", "4 people are typing…".
fn typing_line(who: &[&UserId]) -> Option<String> {
    let names: Vec<&str> = who.iter().map(|u| u.as_str()).collect();
    match names.as_slice() {
        [] => None,
        [one] => Some(format!("{one} is typing…")),
        [one, two] => Some(format!("{one} and {two} are typing…")),
        [one, two, three] => Some(format!("{one}, {two} and {three} are typing…")),
        more => Some(format!("{} people are typing…", more.len())),
    }
}

fn draw_input(frame: &mut Frame, app: &App, area: Rect, _theme: &Theme) {
    let label = app.active_room().map(|room| app.room_label(room));
    let prompt = match (label, app.thread) {
        (Some(room), Some(root)) => format!("{room} › #{}> ", root.0),
        (Some(room), None) => format!("{room}> "),
        (None, _) => "> ".to_string(),
    };
    let prompt_len = prompt.width();
    let chars: Vec<char> = app.input.text().chars().collect();
    let cursor = app.input.cursor();
    // Scroll sideways so the cursor stays in view (widths in cells).
    let room = (area.width as usize).saturating_sub(prompt_len + 1).max(1);
    let mut skip = 0;
    while chars[skip..cursor].iter().map(|c| c.width().unwrap_or(0)).sum::<usize>() > room {
        skip += 1;
    }
    let shown: String = chars[skip..].iter().collect();
    let before_cursor: usize = chars[skip..cursor].iter().map(|c| c.width().unwrap_or(0)).sum();
    let line = TextLine::from(vec![
        Span::styled(prompt, Style::default().add_modifier(Modifier::BOLD)),
        Span::raw(printable(&shown).into_owned()),
    ]);
    frame.render_widget(Paragraph::new(line), area);
    let x = area.x + (prompt_len + before_cursor).min(area.width.saturating_sub(1) as usize) as u16;
    frame.set_cursor_position((x, area.y));
}
