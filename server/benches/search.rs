//! Search over a large store: builds an index of `--messages` synthetic
//! messages (default 1,000,000) in `--rooms` rooms (default 1,000) — words
//! drawn with a Zipf-like skew, some Japanese and Chinese — then times the
//! first page (20 results) of queries of each kind for a member of
//! `--member-of` rooms (default 20), and for one room. Prints p50, p99 and
//! the slowest per kind, and how fast the index was built.
//!
//!     cargo bench -p hearth-server --bench search
//!     cargo bench -p hearth-server --bench search -- --messages 100000
//!
//! It times the index (`SearchIndex::search`), which is what grows with the
//! store; a `search` request adds the checks of the page's hits against
//! their rooms (two reads per room with hits).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use hearth_protocol::{Millis, RoomId, Seq, UserId};
use hearth_server::search::index::{Change, Query, RoomBatch, SearchIndex};

const COMMON: &[&str] = &[
    "the",
    "and",
    "film",
    "roll",
    "camera",
    "lens",
    "shot",
    "light",
    "print",
    "photo",
    "developer",
    "scan",
    "darkroom",
    "portra",
    "hp5",
    "tri-x",
    "fixer",
    "stop",
    "push",
    "pull",
    "grain",
    "contrast",
    "meter",
    "shutter",
    "aperture",
    "rangefinder",
    "leica",
    "pentax",
    "nikon",
    "canon",
    "minolta",
    "yashica",
    "expired",
    "bulk",
    "loader",
    "reel",
    "tank",
    "agitation",
    "minutes",
    "temperature",
    "recipe",
    "sunday",
    "walk",
    "harbour",
    "portrait",
    "street",
];
const CJK: &[&str] =
    &["フィルム写真が好きです", "現像の時間は九分", "我喜欢胶片摄影", "暗房里的红灯", "사진을 찍었어요"];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A rank in 0..n, small ranks far likelier (about 1/rank).
    fn zipf(&mut self, n: usize) -> usize {
        let u = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        ((n as f64).powf(u) as usize).saturating_sub(1).min(n - 1)
    }
}

/// The vocabulary: the common words first, then 50,000 made-up words of one
/// to three syllables (onset, vowel, coda: as varied in their letters, and
/// so in their trigrams, as a natural language's words), rarer and rarer.
fn vocabulary(rng: &mut Rng) -> Vec<String> {
    const ONSETS: &[&str] = &[
        "b", "br", "c", "ch", "d", "dr", "f", "fl", "g", "gr", "h", "j", "k", "l", "m", "n", "p", "pl", "qu", "r", "s",
        "st", "sh", "t", "tr", "th", "v", "w", "y", "z",
    ];
    const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ou", "ee", "y"];
    const CODAS: &[&str] = &["", "", "n", "r", "s", "t", "l", "ck", "ng", "m"];
    let mut words: Vec<String> = COMMON.iter().map(|w| w.to_string()).collect();
    let mut seen: HashSet<String> = words.iter().cloned().collect();
    while words.len() < COMMON.len() + 50_000 {
        let syllables = 1 + rng.below(3);
        let word: String = (0..syllables)
            .map(|_| {
                format!(
                    "{}{}{}",
                    ONSETS[rng.below(ONSETS.len())],
                    VOWELS[rng.below(VOWELS.len())],
                    CODAS[rng.below(CODAS.len())]
                )
            })
            .collect();
        if seen.insert(word.clone()) {
            words.push(word);
        }
    }
    words
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|at| args.get(at + 1))
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn main() {
    let messages = arg("--messages", 1_000_000);
    let rooms = arg("--rooms", 1_000);
    let member_of = arg("--member-of", 20).min(rooms);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let words = vocabulary(&mut rng);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let index = SearchIndex::open(dir.path()).expect("an index");
    let room_names: Vec<RoomId> = (0..rooms).map(|n| RoomId::new(format!("room-{n}")).unwrap()).collect();
    let from = UserId::new("ada").unwrap();

    let started = Instant::now();
    let mut heads = vec![0u64; rooms];
    let mut texts = Vec::new();
    let mut written = 0;
    while written < messages {
        let mut batches: Vec<RoomBatch> = Vec::new();
        for _ in 0..5_000.min(messages - written) {
            let room = rng.below(rooms);
            heads[room] += 1;
            let seq = Seq(heads[room]);
            let length = 6 + rng.below(15);
            let mut text: Vec<String> = (0..length).map(|_| words[rng.zipf(words.len())].clone()).collect();
            if rng.below(20) == 0 {
                text.insert(rng.below(text.len()), CJK[rng.below(CJK.len())].to_string());
            }
            let text = text.join(" ");
            if texts.len() < 1000 {
                texts.push(text.clone());
            }
            // A year of messages, a few a minute, in order.
            let ts = Millis(1_730_000_000_000 + written as u64 * 30_000);
            let change = Change::Add { seq, ts, from: from.clone(), thread: None, text };
            batches.push(RoomBatch { room: room_names[room].clone(), through: seq, changes: vec![(seq, change)] });
            written += 1;
        }
        index.apply(&batches, None).expect("indexed");
    }
    let built = started.elapsed();
    let size: u64 =
        std::fs::read_dir(dir.path()).unwrap().filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum();
    println!(
        "indexed {messages} messages in {rooms} rooms in {:.1} s ({:.0} messages/s), {} MB on disk",
        built.as_secs_f64(),
        messages as f64 / built.as_secs_f64(),
        size / 1_000_000
    );

    let mine: HashSet<RoomId> = room_names.iter().step_by(rooms / member_of).take(member_of).cloned().collect();
    let one: HashSet<RoomId> = room_names.iter().take(1).cloned().collect();
    let mut kinds: Vec<(&str, Vec<String>)> = vec![
        ("common word", (0..200).map(|n| COMMON[n % 10].to_string()).collect()),
        ("mid word", (0..200).map(|n| words[100 + n * 7].clone()).collect()),
        ("rare word", (0..200).map(|n| words[words.len() - 1 - n * 5].clone()).collect()),
        ("two-word phrase", (0..200).map(|n| phrase(&texts[n % texts.len()])).collect()),
        ("substring (4 chars)", (0..200).map(|n| words[50 + n * 11].chars().skip(1).take(4).collect()).collect()),
        ("CJK phrase", (0..200).map(|n| CJK[n % CJK.len()].chars().skip(2).take(4).collect()).collect()),
        ("CJK 2 chars (short)", (0..200).map(|n| CJK[n % CJK.len()].chars().skip(4).take(2).collect()).collect()),
        ("absent word", (0..200).map(|n| format!("zzq{n}x")).collect()),
    ];
    kinds.retain(|(_, queries)| !queries.is_empty());
    {
        // The queries, each kind in turn.
        println!("\nfirst page (20) of each query, member of {member_of} of {rooms} rooms / one room:");
        println!(
            "{:<22} {:>10} {:>10} {:>10}   {:>10} {:>10}",
            "query", "p50 ms", "p99 ms", "max ms", "1 room p50", "p99"
        );
        let mut all = Histogram::<u64>::new(3).unwrap();
        for (kind, queries) in &kinds {
            let mut times = Histogram::<u64>::new(3).unwrap();
            let mut one_room = Histogram::<u64>::new(3).unwrap();
            for text in queries {
                let query = Query::new(text).expect("a query");
                let took = time(|| index.search(&query, &mine, None, 20).expect("searched"));
                times.record(took.as_micros() as u64).unwrap();
                all.record(took.as_micros() as u64).unwrap();
                let took = time(|| index.search(&query, &one, None, 20).expect("searched"));
                one_room.record(took.as_micros() as u64).unwrap();
            }
            let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            println!(
                "{kind:<22} {:>10.2} {:>10.2} {:>10.2}   {:>10.2} {:>10.2}",
                ms(&times, 0.5),
                ms(&times, 0.99),
                times.max() as f64 / 1000.0,
                ms(&one_room, 0.5),
                ms(&one_room, 0.99)
            );
        }
        println!(
            "{:<22} {:>10.2} {:>10.2} {:>10.2}",
            "all kinds",
            all.value_at_quantile(0.5) as f64 / 1000.0,
            all.value_at_quantile(0.99) as f64 / 1000.0,
            all.max() as f64 / 1000.0
        );
    }
}

fn time<T>(work: impl FnOnce() -> T) -> Duration {
    let started = Instant::now();
    std::hint::black_box(work());
    started.elapsed()
}

/// Two neighbouring words of a message.
fn phrase(text: &str) -> String {
    let words: Vec<&str> = text.split(' ').collect();
    let at = words.len() / 2;
    format!("{} {}", words[at - 1], words[at])
}
