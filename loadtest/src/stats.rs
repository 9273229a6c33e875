//! Counters shared by every simulated member, and the process figures read from
//! /proc. Members keep small local buffers and merge them here in batches, so the
//! instrument does not serialise on a lock per delivery.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hdrhistogram::Histogram;

pub struct Stats {
    /// Whether deliveries and latencies count now (off during warm-up and drain).
    pub measuring: AtomicBool,
    pub deliveries: AtomicU64,
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    /// Seqs a member never saw, seqs seen twice or going backwards. Always counted.
    pub gaps: AtomicU64,
    pub duplicates: AtomicU64,
    pub errors: Mutex<BTreeMap<String, u64>>,
    /// Delivery latency in microseconds.
    pub latency: Mutex<Histogram<u64>>,
    /// Connect-and-join time in microseconds.
    pub connect: Mutex<Histogram<u64>>,
    /// Highest acknowledged seq per room: what every member must reach.
    pub room_heads: Vec<AtomicU64>,
    /// Last seq each member has seen: at the end every reading member must have
    /// reached its room's head.
    pub member_last: Vec<AtomicU64>,
}

fn histogram() -> Histogram<u64> {
    // Up to 10 minutes in microseconds, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

impl Stats {
    pub fn new(rooms: usize, members: usize) -> Stats {
        Stats {
            measuring: AtomicBool::new(false),
            deliveries: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            latency: Mutex::new(histogram()),
            connect: Mutex::new(histogram()),
            room_heads: (0..rooms).map(|_| AtomicU64::new(0)).collect(),
            member_last: (0..members).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn error(&self, kind: impl Into<String>) {
        *self.errors.lock().unwrap().entry(kind.into()).or_default() += 1;
    }

    pub fn record_latencies(&self, samples: &mut Vec<u64>) {
        if samples.is_empty() {
            return;
        }
        let mut histogram = self.latency.lock().unwrap();
        for &us in samples.iter() {
            histogram.saturating_record(us.max(1));
        }
        samples.clear();
    }

    pub fn record_connect(&self, us: u64) {
        self.connect.lock().unwrap().saturating_record(us.max(1));
    }

    /// Starts a measurement window: zeroes what the window counts.
    pub fn start_window(&self) {
        self.deliveries.store(0, Ordering::Relaxed);
        self.sent.store(0, Ordering::Relaxed);
        self.acked.store(0, Ordering::Relaxed);
        self.latency.lock().unwrap().reset();
        self.measuring.store(true, Ordering::Release);
    }

    pub fn stop_window(&self) {
        self.measuring.store(false, Ordering::Release);
    }

    pub fn measuring(&self) -> bool {
        self.measuring.load(Ordering::Relaxed)
    }
}

/// CPU time and resident memory of a process, from /proc.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    pub cpu_secs: f64,
    pub rss_bytes: u64,
}

/// Reads `/proc/PID/stat` and `/proc/PID/status` ("self" for this process).
pub fn proc_sample(pid: &str) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    // Linux reports CPU time in USER_HZ ticks, 100 per second on every mainstream build.
    Some(ProcSample { cpu_secs: ticks / 100.0, rss_bytes: rss_kb * 1024 })
}
