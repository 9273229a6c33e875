//! The full-text index: every message as it is now (an edit replaces its
//! text, a deletion removes it), in SQLite FTS5 — a word index
//! (`unicode61`, diacritics folded) and a `trigram` index, so that
//! substrings and Chinese, Japanese and Korean text, which have no spaces
//! between words, match too.
//!
//! A document's rowid is its time: `ts << 20`, then a hash of the room and
//! the seq's low bits (probed upwards on a collision), so "newest first" is
//! the order both FTS5 indexes already walk, a page stops after `limit`
//! hits, one room's messages of one millisecond keep their order, and every
//! node of a cluster, whatever order its messages arrived in, pages the
//! same way.
//!
//! The index is derived data: it can be rebuilt from the rooms' timelines at
//! any time (`search.db` is written without fsync; lost or corrupt, it is
//! made again), and what it answers is checked against the rooms before a
//! member sees it (`session/search.rs`).

use std::collections::HashSet;
use std::ops::Range;
use std::path::Path;
use std::sync::Mutex;

use hearth_protocol::{Millis, RoomId, Seq, UserId};
use rusqlite::{Connection, OptionalExtension, params};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

pub const DB_FILE: &str = "search.db";

/// Bumped when the schema or the tokenizers change: an index of another
/// version is dropped and rebuilt from the timelines.
const SCHEMA_VERSION: i64 = 3;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS docs (
    id INTEGER PRIMARY KEY,         -- ts << 20 | hash(room, seq): newest first is rowid order
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    sender TEXT NOT NULL,
    thread INTEGER,
    text TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS docs_by_message ON docs (room, seq);
CREATE VIRTUAL TABLE IF NOT EXISTS words USING fts5(
    text, content='docs', content_rowid='id', tokenize='unicode61 remove_diacritics 2', columnsize=0);
-- Rowids only (detail=none): which messages hold each trigram, not where.
-- Less to write, and a query ANDs a third of its trigrams, whose hits are
-- then checked for the whole query in their text. Neither index keeps
-- document sizes (columnsize=0): they rank nothing, results are by time.
CREATE VIRTUAL TABLE IF NOT EXISTS grams USING fts5(
    text, content='docs', content_rowid='id', tokenize='trigram remove_diacritics 1', detail=none, columnsize=0);
CREATE TRIGGER IF NOT EXISTS docs_added AFTER INSERT ON docs BEGIN
    INSERT INTO words (rowid, text) VALUES (new.id, new.text);
    INSERT INTO grams (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER IF NOT EXISTS docs_removed AFTER DELETE ON docs BEGIN
    INSERT INTO words (words, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO grams (grams, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER IF NOT EXISTS docs_retexted AFTER UPDATE OF text ON docs BEGIN
    INSERT INTO words (words, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO grams (grams, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO words (rowid, text) VALUES (new.id, new.text);
    INSERT INTO grams (rowid, text) VALUES (new.id, new.text);
END;
-- How far each room's timeline has been read into the index.
CREATE TABLE IF NOT EXISTS indexed (
    room TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
) WITHOUT ROWID;
";

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("the search index failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot make the search index's directory {path}: {source}")]
    Dir { path: String, source: std::io::Error },
}

/// What one timeline event does to the index.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Add { seq: Seq, ts: Millis, from: UserId, thread: Option<Seq>, text: String },
    Retext { target: Seq, text: String },
    Remove { target: Seq },
}

impl Change {
    /// About what it holds in memory, for bounding a queue of changes.
    pub fn size(&self) -> usize {
        64 + match self {
            Change::Add { text, .. } | Change::Retext { text, .. } => text.len(),
            Change::Remove { .. } => 0,
        }
    }
}

/// A room's timeline read from `after` (exclusive) to `through` (inclusive),
/// with what its messages, edits and deletions do to the index.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomBatch {
    pub room: RoomId,
    pub through: Seq,
    pub changes: Vec<(Seq, Change)>,
}

/// A message the index found.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Where it sorts: newer is larger. The next page starts below it.
    pub key: i64,
    pub room: RoomId,
    pub seq: Seq,
    pub from: UserId,
    pub thread: Option<Seq>,
    pub text: String,
}

/// A page of hits, newest first, and where the next page starts when the
/// search stopped before reaching the oldest message (a full page, or the
/// page's share of work done).
#[derive(Debug, Default, PartialEq)]
pub struct HitPage {
    pub hits: Vec<Hit>,
    pub next: Option<i64>,
}

/// How much one page may look at: index matches of a word or substring
/// query, messages of a short query's scan. A member whose query matches
/// mostly in rooms they are not in gets the hits found so far and a `next`.
pub const MATCHES_PER_PAGE: usize = 20_000;

pub struct SearchIndex {
    writer: Mutex<Connection>,
    /// Reading connections beside the writer (WAL); none for an index in
    /// memory, which has only its one connection.
    readers: Vec<Mutex<Connection>>,
}

fn lock(conn: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SearchIndex {
    /// Opens (or creates) `dir/search.db`. An index of another schema is
    /// dropped: the caller reads every room again.
    pub fn open(dir: &Path) -> Result<SearchIndex, IndexError> {
        std::fs::create_dir_all(dir).map_err(|source| IndexError::Dir { path: dir.display().to_string(), source })?;
        let path = dir.join(DB_FILE);
        let writer = match Self::prepare(Connection::open(&path)?) {
            Ok(conn) => conn,
            Err(error) => {
                // Derived data: a damaged index is made again, not repaired.
                tracing::warn!(%error, path = %path.display(), "the search index is unreadable; rebuilding it");
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
                Self::prepare(Connection::open(&path)?)?
            }
        };
        let readers = (0..2)
            .map(|_| {
                let conn = Connection::open(&path)?;
                // A query walks index pages all over the file: mapped, they are
                // read without a copy, and a larger cache keeps the hot ones.
                conn.pragma_update(None, "mmap_size", 1i64 << 30)?;
                conn.pragma_update(None, "cache_size", -32_768)?;
                Ok(Mutex::new(conn))
            })
            .collect::<Result<_, IndexError>>()?;
        Ok(SearchIndex { writer: Mutex::new(writer), readers })
    }

    /// An index in memory (an ephemeral server).
    pub fn in_memory() -> Result<SearchIndex, IndexError> {
        Ok(SearchIndex { writer: Mutex::new(Self::prepare(Connection::open_in_memory()?)?), readers: Vec::new() })
    }

    fn prepare(conn: Connection) -> Result<Connection, IndexError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // Rebuilt from the timelines when lost: no fsync on the hot path's behalf.
        conn.pragma_update(None, "synchronous", "OFF")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if version != SCHEMA_VERSION && version != 0 {
            conn.execute_batch(
                "DROP TABLE IF EXISTS words; DROP TABLE IF EXISTS grams; DROP TABLE IF EXISTS docs;
                 DROP TABLE IF EXISTS indexed;",
            )?;
        }
        conn.execute_batch(SCHEMA)?;
        // Merge segments 16 at a time rather than 4: each entry is rewritten
        // half as often as the index grows (the hot path's share of the
        // indexer's work); queries read a few more segments.
        conn.execute_batch(
            "INSERT INTO words (words, rank) VALUES ('automerge', 16);
             INSERT INTO grams (grams, rank) VALUES ('automerge', 16);",
        )?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        Ok(conn)
    }

    fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        for conn in &self.readers {
            if let Ok(conn) = conn.try_lock() {
                return conn;
            }
        }
        match self.readers.first() {
            Some(conn) => lock(conn),
            None => lock(&self.writer),
        }
    }

    /// How far each room has been read into the index.
    pub fn positions(&self) -> Result<Vec<(RoomId, Seq)>, IndexError> {
        let conn = self.reader();
        let mut statement = conn.prepare_cached("SELECT room, seq FROM indexed")?;
        let rows = statement.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))?;
        let mut positions = Vec::new();
        for row in rows {
            let (room, seq) = row?;
            if let Ok(room) = RoomId::new(room) {
                positions.push((room, Seq(seq as u64)));
            }
        }
        Ok(positions)
    }

    /// Applies `batches` in one transaction. `keep_events`: a room's
    /// messages more than this many events behind its newest are dropped
    /// too, as the store that bounds its history drops them.
    pub fn apply(&self, batches: &[RoomBatch], keep_events: Option<u64>) -> Result<(), IndexError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        for batch in batches {
            let room = batch.room.as_str();
            for (_, change) in &batch.changes {
                match change {
                    Change::Add { seq, ts, from, thread, text } => {
                        let id = free_id(&tx, *ts, room, *seq)?;
                        tx.prepare_cached(
                            "INSERT OR IGNORE INTO docs (id, room, seq, sender, thread, text) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        )?
                        .execute(params![id, room, seq.0 as i64, from.as_str(), thread.map(|t| t.0 as i64), text])?;
                    }
                    Change::Retext { target, text } => {
                        tx.prepare_cached("UPDATE docs SET text = ?3 WHERE room = ?1 AND seq = ?2")?
                            .execute(params![room, target.0 as i64, text])?;
                    }
                    Change::Remove { target } => {
                        tx.prepare_cached("DELETE FROM docs WHERE room = ?1 AND seq = ?2")?
                            .execute(params![room, target.0 as i64])?;
                    }
                }
            }
            if let Some(keep) = keep_events
                && batch.through.0 > keep
            {
                tx.prepare_cached("DELETE FROM docs WHERE room = ?1 AND seq <= ?2")?
                    .execute(params![room, (batch.through.0 - keep) as i64])?;
            }
            tx.prepare_cached(
                "INSERT INTO indexed (room, seq) VALUES (?1, ?2)
                 ON CONFLICT (room) DO UPDATE SET seq = max(seq, excluded.seq)",
            )?
            .execute(params![room, batch.through.0 as i64])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Messages in `rooms` older than `before` that contain `query` (see
    /// [`Query`]), newest first, at most `limit`.
    pub fn search(
        &self,
        query: &Query,
        rooms: &HashSet<RoomId>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<HitPage, IndexError> {
        const COLUMNS: &str = "d.id, d.room, d.seq, d.sender, d.thread, d.text";
        let conn = self.reader();
        let before = before.unwrap_or(i64::MAX);
        let mut page = HitPage::default();
        if query.short() {
            // Fewer than 3 characters make no trigram: the newest messages
            // are read one by one, a page's share at a time.
            let mut statement =
                conn.prepare_cached(&format!("SELECT {COLUMNS} FROM docs d WHERE d.id < ?1 ORDER BY d.id DESC"))?;
            let mut candidates =
                statement.query_map(params![before], |row| Candidate::read(row, rooms, Some(query)))?;
            page.collect(&mut candidates, limit)?;
            return Ok(page);
        }
        // Each index walks its matches newest first (FTS5 reads rowids in
        // order); the two walks are merged, a message found by both once.
        let walk = |table: &str| {
            format!(
                "SELECT {COLUMNS} FROM {table} JOIN docs d ON d.id = {table}.rowid
                 WHERE {table} MATCH ?2 AND {table}.rowid < ?1 ORDER BY {table}.rowid DESC"
            )
        };
        let mut grams = conn.prepare_cached(&walk("grams"))?;
        let mut words = conn.prepare_cached(&walk("words"))?;
        // A message with every trigram of the query may still not hold the
        // query: its text says.
        let gram_walk =
            grams.query_map(params![before, query.trigrams()], |row| Candidate::read(row, rooms, Some(query)))?;
        let word_walk = words.query_map(params![before, query.phrase()], |row| Candidate::read(row, rooms, None))?;
        let mut merged = Merge { a: gram_walk.peekable(), b: word_walk.peekable() };
        page.collect(&mut merged, limit)?;
        Ok(page)
    }
}

/// A row a walk found: its key, and the hit when it is one (in a room
/// asked, holding the query).
struct Candidate {
    key: i64,
    hit: Option<Hit>,
}

impl Candidate {
    /// Reads the row's room first, and the rest only for a room asked, so
    /// the rows of other rooms cost no copies. With `check`, the text must
    /// hold the query.
    fn read(row: &rusqlite::Row<'_>, rooms: &HashSet<RoomId>, check: Option<&Query>) -> rusqlite::Result<Candidate> {
        let key = row.get(0)?;
        let room = row.get_ref(1)?.as_str()?;
        let Some(room) = rooms.get(room) else { return Ok(Candidate { key, hit: None }) };
        let text = row.get_ref(5)?.as_str()?;
        if check.is_some_and(|query| !query.occurs_in(text)) {
            return Ok(Candidate { key, hit: None });
        }
        let Ok(from) = UserId::new(row.get::<_, String>(3)?) else { return Ok(Candidate { key, hit: None }) };
        let thread: Option<i64> = row.get(4)?;
        let hit = Hit {
            key,
            room: room.clone(),
            seq: Seq(row.get::<_, i64>(2)? as u64),
            from,
            thread: thread.map(|t| Seq(t as u64)),
            text: text.to_string(),
        };
        Ok(Candidate { key, hit: Some(hit) })
    }
}

/// Two walks newest first, merged newest first, each key once.
struct Merge<A: Iterator, B: Iterator> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<A, B> Iterator for Merge<A, B>
where
    A: Iterator<Item = rusqlite::Result<Candidate>>,
    B: Iterator<Item = rusqlite::Result<Candidate>>,
{
    type Item = rusqlite::Result<Candidate>;

    fn next(&mut self) -> Option<Self::Item> {
        let key = |c: Option<&rusqlite::Result<Candidate>>| match c {
            Some(Ok(c)) => Some(c.key),
            Some(Err(_)) => Some(i64::MAX),
            None => None,
        };
        match (key(self.a.peek()), key(self.b.peek())) {
            (Some(a), Some(b)) if a == b => {
                // Found by both: a hit if either walk says so.
                let (a, b) = (self.a.next(), self.b.next());
                match (&a, &b) {
                    (Some(Ok(Candidate { hit: Some(_), .. })), _) => a,
                    _ => b,
                }
            }
            (Some(a), Some(b)) if a < b => self.b.next(),
            (Some(_), _) => self.a.next(),
            (None, _) => self.b.next(),
        }
    }
}

impl HitPage {
    /// Takes hits from `candidates` (newest first) until the page is full
    /// or has looked at its share; a page that stopped early offers a next
    /// page from where it stopped, since whether anything older matches is
    /// not known until looked at.
    fn collect(
        &mut self,
        candidates: &mut dyn Iterator<Item = rusqlite::Result<Candidate>>,
        limit: usize,
    ) -> rusqlite::Result<()> {
        let mut looked = 0;
        for candidate in candidates {
            let candidate = candidate?;
            looked += 1;
            let key = candidate.key;
            if let Some(hit) = candidate.hit {
                self.hits.push(hit);
            }
            if self.hits.len() == limit || looked == MATCHES_PER_PAGE {
                self.next = Some(key);
                break;
            }
        }
        Ok(())
    }
}

/// The document id for a message at `ts`: its time in the high bits, then
/// a hash of its room and its seq's low 8 bits, the next free one on a
/// collision.
fn free_id(tx: &rusqlite::Transaction<'_>, ts: Millis, room: &str, seq: Seq) -> Result<i64, IndexError> {
    const SLOT_BITS: u32 = 20;
    const SLOTS: u64 = 1 << SLOT_BITS;
    // FNV-1a: stable across builds and machines, unlike std's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in room.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    // Times past 2^43 ms (year 2248) share the top slot range.
    let base = (ts.0.min((1 << 43) - 1)) << SLOT_BITS;
    let mut slot = ((hash % (SLOTS >> 8)) << 8) | (seq.0 & 0xff);
    let mut taken = tx.prepare_cached("SELECT 1 FROM docs WHERE id = ?1")?;
    for _ in 0..SLOTS {
        let id = (base | slot) as i64;
        if taken.query_row([id], |_| Ok(())).optional()?.is_none() {
            return Ok(id);
        }
        slot = (slot + 1) % SLOTS;
    }
    Ok((base | (SLOTS - 1)) as i64)
}

/// A member's query: always text, never FTS5 syntax.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    text: String,
    folded: Vec<char>,
    /// Its words as the word index reads them (see [`words`]).
    words: Vec<String>,
}

/// The longest query, in characters.
pub const MAX_QUERY_CHARS: usize = hearth_protocol::ops::MAX_SEARCH_QUERY;

impl Query {
    /// The query as typed, trimmed; `None` when empty or longer than
    /// [`MAX_QUERY_CHARS`].
    pub fn new(text: &str) -> Option<Query> {
        let text = text.trim();
        let chars = text.chars().count();
        if chars == 0 || chars > MAX_QUERY_CHARS {
            return None;
        }
        Some(Query {
            text: text.to_string(),
            folded: fold(text).into_iter().map(|(c, _)| c).collect(),
            words: words(text).into_iter().map(|(word, _)| word).collect(),
        })
    }

    /// Shorter than a trigram: found by reading messages, not by the index.
    pub fn short(&self) -> bool {
        self.folded.len() < 3
    }

    /// The query as one FTS5 phrase: in double quotes, its own quotes
    /// doubled, so `NOT`, `OR`, `*`, `"` and parentheses are only text.
    pub fn phrase(&self) -> String {
        format!("\"{}\"", self.text.replace('"', "\"\""))
    }

    /// The query's trigrams as an FTS5 query that wants them all: one
    /// quoted string per trigram (quotes doubled), every third one and the
    /// last, which together cover the query. (All of them walk more lists
    /// and were slower: BENCHMARKS.md, "Search".)
    pub fn trigrams(&self) -> String {
        let chars: Vec<char> = self.text.chars().collect();
        let mut starts: Vec<usize> = (0..chars.len().saturating_sub(2)).step_by(3).collect();
        let last = chars.len().saturating_sub(3);
        if starts.last() != Some(&last) {
            starts.push(last);
        }
        starts
            .into_iter()
            .map(|at| format!("\"{}\"", chars[at..at + 3].iter().collect::<String>().replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Whether the search finds `text`: it contains the query, ignoring
    /// case, or (from 3 characters on) the query's words, ignoring accents.
    pub fn found_in(&self, text: &str) -> bool {
        self.occurs_in(text) || !self.word_marks(text).is_empty()
    }

    /// Whether `text` contains the query, ignoring case: what a walk of the
    /// trigram index, or of the newest messages, checks each candidate for
    /// (the word index's walk finds the rest).
    pub fn occurs_in(&self, text: &str) -> bool {
        !self.occurrences(text).is_empty()
    }

    /// Where the query matches in `text`, as byte ranges in order: where it
    /// occurs ignoring case, and, from 3 characters on, where its words stand
    /// ignoring accents too, as the word index matched them (`cafe` marks
    /// `Café`). Without the second, a message the word index found showed no
    /// match at all.
    pub fn marks(&self, text: &str) -> Vec<Range<usize>> {
        let mut marks = self.occurrences(text);
        let by_words = self.word_marks(text);
        if by_words.is_empty() {
            return marks;
        }
        marks.extend(by_words);
        marks.sort_by_key(|mark| (mark.start, std::cmp::Reverse(mark.end)));
        let mut kept: Vec<Range<usize>> = Vec::with_capacity(marks.len());
        for mark in marks {
            if kept.last().is_none_or(|last| last.end <= mark.start) {
                kept.push(mark);
            }
        }
        kept
    }

    /// Where the query occurs in `text` (ignoring case), as byte ranges.
    fn occurrences(&self, text: &str) -> Vec<Range<usize>> {
        let folded = fold(text);
        let needle = &self.folded;
        let mut marks = Vec::new();
        let mut at = 0;
        while !needle.is_empty() && at + needle.len() <= folded.len() {
            if folded[at..at + needle.len()].iter().map(|(c, _)| c).eq(needle.iter()) {
                let start = folded[at].1;
                let end = folded.get(at + needle.len()).map_or(text.len(), |(_, offset)| *offset);
                // A folded character that came from the same source character
                // as the next one (ß → ss) cannot split it: widen to whole chars.
                if marks.last().is_none_or(|last: &Range<usize>| last.end <= start) && start < end {
                    marks.push(start..end);
                }
                at += needle.len();
            } else {
                at += 1;
            }
        }
        marks
    }

    /// Where the query's words stand in `text` one after another, as the
    /// word index's phrase query matches them, from the first word's start
    /// to the last one's end.
    fn word_marks(&self, text: &str) -> Vec<Range<usize>> {
        let wanted = self.words.len();
        if self.short() || wanted == 0 {
            return Vec::new();
        }
        let words = words(text);
        let mut marks = Vec::new();
        let mut at = 0;
        while at + wanted <= words.len() {
            if words[at..at + wanted].iter().map(|(word, _)| word).eq(self.words.iter()) {
                marks.push(words[at].1.start..words[at + wanted - 1].1.end);
                at += wanted;
            } else {
                at += 1;
            }
        }
        marks
    }

    /// `text` cut at the query's occurrences: the parts at odd places match.
    pub fn parts(&self, text: &str) -> Vec<String> {
        let mut parts = Vec::new();
        let mut from = 0;
        for mark in self.marks(text) {
            parts.push(text[from..mark.start].to_string());
            parts.push(text[mark.clone()].to_string());
            from = mark.end;
        }
        parts.push(text[from..].to_string());
        parts
    }
}

/// `text`'s words as the word index (`unicode61 remove_diacritics 2`) reads
/// them: runs of letters, digits and combining marks, in lower case, with
/// accents and other combining marks taken off; each with the bytes it spans.
fn words(text: &str) -> Vec<(String, Range<usize>)> {
    let mut words = Vec::new();
    let mut current: Option<(String, Range<usize>)> = None;
    for (offset, c) in text.char_indices() {
        if c.is_alphanumeric() || is_combining_mark(c) {
            let (word, span) = current.get_or_insert_with(|| (String::new(), offset..offset));
            span.end = offset + c.len_utf8();
            word.extend(c.to_lowercase().nfd().filter(|d| !is_combining_mark(*d)));
        } else if let Some(done) = current.take() {
            words.push(done);
        }
    }
    words.extend(current);
    // A mark with no letter before it makes no word.
    words.retain(|(word, _)| !word.is_empty());
    words
}

/// `text` in lower case, each folded character with the byte offset of the
/// character it came from.
fn fold(text: &str) -> Vec<(char, usize)> {
    let mut folded = Vec::with_capacity(text.len());
    for (offset, c) in text.char_indices() {
        for lower in c.to_lowercase() {
            folded.push((lower, offset));
        }
    }
    folded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(seq: u64, ts: u64, text: &str) -> (Seq, Change) {
        (
            Seq(seq),
            Change::Add {
                seq: Seq(seq),
                ts: Millis(ts),
                from: UserId::new("ann").unwrap(),
                thread: None,
                text: text.to_string(),
            },
        )
    }

    fn room(name: &str) -> RoomId {
        RoomId::new(name).unwrap()
    }

    fn found(index: &SearchIndex, query: &str, rooms: &[&str]) -> Vec<u64> {
        let rooms = rooms.iter().map(|r| room(r)).collect();
        let query = Query::new(query).unwrap();
        index.search(&query, &rooms, None, 50).unwrap().hits.iter().map(|h| h.seq.0).collect()
    }

    #[test]
    fn words_substrings_and_cjk_match_newest_first() {
        let index = SearchIndex::in_memory().unwrap();
        let changes = vec![
            add(1, 1000, "The Portra 400 recipe: push one stop"),
            add(2, 2000, "フィルム写真が好きです"),
            add(3, 3000, "我喜欢胶片摄影"),
            add(4, 4000, "portraits at dusk"),
            add(5, 5000, "Café crème in the darkroom"),
        ];
        index.apply(&[RoomBatch { room: room("film"), through: Seq(5), changes }], None).unwrap();
        assert_eq!(found(&index, "portra", &["film"]), vec![4, 1]);
        assert_eq!(found(&index, "recipe", &["film"]), vec![1]);
        assert_eq!(found(&index, "写真", &["film"]), vec![2]);
        assert_eq!(found(&index, "フィルム写真", &["film"]), vec![2]);
        assert_eq!(found(&index, "胶片摄影", &["film"]), vec![3]);
        assert_eq!(found(&index, "cafe", &["film"]), vec![5], "diacritics folded");
        assert_eq!(found(&index, "DARKROOM", &["film"]), vec![5]);
        assert!(found(&index, "portra", &["other"]).is_empty(), "only the rooms asked");
    }

    #[test]
    fn query_syntax_is_text() {
        let index = SearchIndex::in_memory().unwrap();
        let changes = vec![
            add(1, 1000, "do NOT touch the fixer"),
            add(2, 2000, "tea OR coffee"),
            add(3, 3000, "she said \"hello\" twice"),
            add(4, 4000, "a*b and (c)"),
            add(5, 5000, "touch the fixer"),
        ];
        index.apply(&[RoomBatch { room: room("r"), through: Seq(5), changes }], None).unwrap();
        assert_eq!(found(&index, "NOT touch", &["r"]), vec![1]);
        assert_eq!(found(&index, "tea OR coffee", &["r"]), vec![2]);
        assert_eq!(found(&index, "\"hello\"", &["r"]), vec![3]);
        assert_eq!(found(&index, "a*b", &["r"]), vec![4]);
        assert_eq!(found(&index, "(c)", &["r"]), vec![4]);
        assert!(found(&index, "NOT", &["r"]).contains(&1));
        assert!(found(&index, "\"", &["r"]).contains(&3), "a lone quote is a short query");
    }

    #[test]
    fn edits_replace_and_deletions_remove() {
        let index = SearchIndex::in_memory().unwrap();
        let room_id = room("r");
        let batch = |through, changes| RoomBatch { room: room_id.clone(), through: Seq(through), changes };
        index.apply(&[batch(2, vec![add(1, 1000, "old words here"), add(2, 2000, "going away")])], None).unwrap();
        index
            .apply(
                &[batch(
                    4,
                    vec![
                        (Seq(3), Change::Retext { target: Seq(1), text: "new words here".into() }),
                        (Seq(4), Change::Remove { target: Seq(2) }),
                    ],
                )],
                None,
            )
            .unwrap();
        assert!(found(&index, "old words", &["r"]).is_empty());
        assert_eq!(found(&index, "new words", &["r"]), vec![1]);
        assert!(found(&index, "going", &["r"]).is_empty());
        assert_eq!(index.positions().unwrap(), vec![(room_id, Seq(4))]);
    }

    #[test]
    fn short_queries_scan_and_pages_continue() {
        let index = SearchIndex::in_memory().unwrap();
        let changes = (1..=30).map(|n| add(n, n * 10, if n % 2 == 0 { "go 写 x" } else { "nothing" })).collect();
        index.apply(&[RoomBatch { room: room("r"), through: Seq(30), changes }], None).unwrap();
        let rooms = [room("r")].into_iter().collect();
        let query = Query::new("写").unwrap();
        let first = index.search(&query, &rooms, None, 10).unwrap();
        assert_eq!(
            first.hits.iter().map(|h| h.seq.0).collect::<Vec<_>>(),
            vec![30, 28, 26, 24, 22, 20, 18, 16, 14, 12]
        );
        let rest = index.search(&query, &rooms, first.next, 10).unwrap();
        assert_eq!(rest.hits.iter().map(|h| h.seq.0).collect::<Vec<_>>(), vec![10, 8, 6, 4, 2]);
        assert_eq!(rest.next, None);
    }

    #[test]
    fn one_rooms_messages_of_one_millisecond_keep_their_order() {
        let index = SearchIndex::in_memory().unwrap();
        let changes = (1..=40).map(|n| add(n, 7, "same instant")).collect();
        index.apply(&[RoomBatch { room: room("r"), through: Seq(40), changes }], None).unwrap();
        assert_eq!(found(&index, "instant", &["r"]), (1..=40).rev().collect::<Vec<_>>());
    }

    #[test]
    fn bounded_history_drops_old_messages() {
        let index = SearchIndex::in_memory().unwrap();
        let changes = (1..=10).map(|n| add(n, n, "kept or not")).collect();
        index.apply(&[RoomBatch { room: room("r"), through: Seq(10), changes }], Some(4)).unwrap();
        assert_eq!(found(&index, "kept", &["r"]), vec![10, 9, 8, 7]);
    }

    #[test]
    fn marks_ignore_case_and_keep_whole_characters() {
        let query = Query::new("portra").unwrap();
        assert_eq!(query.parts("PORTRA and portra"), vec!["", "PORTRA", " and ", "portra", ""]);
        let query = Query::new("写真").unwrap();
        assert_eq!(query.parts("フィルム写真が"), vec!["フィルム", "写真", "が"]);
        let query = Query::new("i̇").unwrap();
        assert!(!query.parts("İstanbul").is_empty());
        assert_eq!(Query::new("  "), None);
        assert_eq!(Query::new(&"x".repeat(201)), None);
        assert_eq!(Query::new("a\"b").unwrap().phrase(), "\"a\"\"b\"");
    }

    #[test]
    fn marks_show_where_words_matched_with_accents_ignored() {
        // What the word index finds, the parts show: `cafe` in `Café`.
        let query = Query::new("cafe").unwrap();
        assert_eq!(query.parts("Un Café crème"), vec!["Un ", "Café", " crème"]);
        // A phrase, its words apart by punctuation; an accent written as a
        // combining mark; a dotted capital I.
        let query = Query::new("creme brulee").unwrap();
        assert_eq!(query.parts("Crème, brûlée!"), vec!["", "Crème, brûlée", "!"]);
        assert_eq!(Query::new("accent").unwrap().parts("a\u{301}ccent"), vec!["", "a\u{301}ccent", ""]);
        assert_eq!(Query::new("istanbul").unwrap().parts("İstanbul trip"), vec!["", "İstanbul", " trip"]);
        // Whole words only, as the index: `caf` is a substring of `Café`,
        // `cafes` is another word.
        assert_eq!(Query::new("cafes").unwrap().parts("Café"), vec!["Café"]);
        // Both kinds in one text, in order, none overlapping.
        let query = Query::new("cafe").unwrap();
        assert_eq!(query.parts("cafeteria, café"), vec!["", "cafe", "teria, ", "café", ""]);
        assert!(query.found_in("CAFÉ") && !query.found_in("cafés"));
        // Short queries match substrings only, as their search reads them.
        assert_eq!(Query::new("ca").unwrap().parts("Ça va"), vec!["Ça va"]);
    }
}
