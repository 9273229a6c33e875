//! The input line: text with a cursor, the usual editing keys (readline's
//! Ctrl-A/E/U/K/W among them), and a history of what was entered, walked with
//! Up and Down.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Lines of history kept.
const HISTORY: usize = 500;
/// The longest line accepted: a message's limit, with room for a command.
const MAX_CHARS: usize = 8_200;

#[derive(Debug, Default)]
pub struct Input {
    chars: Vec<char>,
    /// Position in `chars`, 0..=len.
    cursor: usize,
    history: Vec<String>,
    /// While walking the history: the entry shown, and what was typed before.
    walking: Option<(usize, Vec<char>)>,
}

impl Input {
    pub fn text(&self) -> String {
        self.chars.iter().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// The cursor as a column count from the start of the line.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Takes the line (and keeps it in the history).
    pub fn submit(&mut self) -> String {
        let line: String = self.chars.drain(..).collect();
        self.cursor = 0;
        self.walking = None;
        if !line.trim().is_empty() && self.history.last() != Some(&line) {
            self.history.push(line.clone());
            if self.history.len() > HISTORY {
                self.history.remove(0);
            }
        }
        line
    }

    pub fn edit(&mut self, key: KeyEvent) {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('a') if ctrl => self.cursor = 0,
            KeyCode::Char('e') if ctrl => self.cursor = self.chars.len(),
            KeyCode::Char('u') if ctrl => {
                self.chars.drain(..self.cursor);
                self.cursor = 0;
            }
            KeyCode::Char('k') if ctrl => self.chars.truncate(self.cursor),
            KeyCode::Char('w') if ctrl => {
                let start = self.word_start();
                self.chars.drain(start..self.cursor);
                self.cursor = start;
            }
            KeyCode::Char(c) if !ctrl && self.chars.len() < MAX_CHARS => {
                self.chars.insert(self.cursor, c);
                self.cursor += 1;
            }
            KeyCode::Backspace if self.cursor > 0 => {
                self.cursor -= 1;
                self.chars.remove(self.cursor);
            }
            KeyCode::Delete if self.cursor < self.chars.len() => {
                self.chars.remove(self.cursor);
            }
            KeyCode::Left => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Right => self.cursor = (self.cursor + 1).min(self.chars.len()),
            KeyCode::Home => self.cursor = 0,
            KeyCode::End => self.cursor = self.chars.len(),
            KeyCode::Up => self.walk(-1),
            KeyCode::Down => self.walk(1),
            _ => {}
        }
    }

    /// Shows the previous (`-1`) or next (`1`) history entry; past the newest,
    /// what was being typed comes back.
    fn walk(&mut self, step: isize) {
        if self.history.is_empty() {
            return;
        }
        let (at, typed) = match self.walking.take() {
            Some(walking) => walking,
            None if step < 0 => (self.history.len(), self.chars.clone()),
            None => return,
        };
        let next = at as isize + step;
        if next < 0 {
            self.walking = Some((at, typed));
            return;
        }
        let next = next as usize;
        if next >= self.history.len() {
            self.chars = typed;
        } else {
            self.chars = self.history[next].chars().collect();
            self.walking = Some((next, typed));
        }
        self.cursor = self.chars.len();
    }

    fn word_start(&self) -> usize {
        let mut start = self.cursor;
        while start > 0 && self.chars[start - 1].is_whitespace() {
            start -= 1;
        }
        while start > 0 && !self.chars[start - 1].is_whitespace() {
            start -= 1;
        }
        start
    }

    /// The word the cursor is at the end of.
    pub fn word_before_cursor(&self) -> String {
        let mut start = self.cursor;
        while start > 0 && !self.chars[start - 1].is_whitespace() {
            start -= 1;
        }
        self.chars[start..self.cursor].iter().collect()
    }

    /// Whether that word is the first of the line.
    pub fn cursor_word_is_first(&self) -> bool {
        let word = self.word_before_cursor().chars().count();
        self.chars[..self.cursor - word].iter().all(|c| c.is_whitespace())
    }

    pub fn replace_word_before_cursor(&mut self, with: &str) {
        let word = self.word_before_cursor().chars().count();
        let start = self.cursor - word;
        self.chars.splice(start..self.cursor, with.chars());
        self.cursor = start + with.chars().count();
    }
}
