//! The report: a table for people, JSON for tools. Ratios between the Hearth and
//! floor sections are the headline, because absolute figures on a small shared
//! machine are noisy.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::scenario::Scenario;

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub samples: u64,
}

impl From<&Histogram<u64>> for Latency {
    fn from(h: &Histogram<u64>) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            samples: h.len(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    pub name: String,
    pub window_secs: f64,
    pub offered_msgs_per_sec: f64,
    pub offered_deliveries_per_sec: f64,
    pub sent_per_sec: f64,
    pub acked_per_sec: f64,
    pub deliveries_per_sec: f64,
    /// Seqs some member never received (within this window).
    pub gaps: u64,
    pub duplicates: u64,
    pub latency_ms: Latency,
    pub connect_ms: Latency,
    pub errors: BTreeMap<String, u64>,
    pub server_cpu_secs: Option<f64>,
    pub server_cpu_us_per_delivery: Option<f64>,
    pub server_rss_mib: Option<f64>,
    pub loadtest_cpu_percent: Option<f64>,
    /// CPU microseconds per acknowledged message, for the server (`server`) and
    /// each watched process (`--watch-pid`).
    pub cpu_us_per_message: BTreeMap<String, f64>,
}

impl PhaseReport {
    /// No loss, no error, the offered rate delivered, p99 within the limit.
    pub fn good(&self, p99_limit_ms: f64) -> bool {
        self.gaps == 0
            && self.duplicates == 0
            && self.errors.is_empty()
            && self.latency_ms.p99 <= p99_limit_ms
            && self.deliveries_per_sec >= 0.95 * self.offered_deliveries_per_sec
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StormReport {
    pub members: usize,
    pub caught_up: usize,
    pub all_caught_up_secs: Option<f64>,
    pub p50_secs: f64,
    pub p99_secs: f64,
    pub gaps: u64,
    pub duplicates: u64,
}

impl StormReport {
    pub fn new(members: usize, times: &[std::time::Duration], gaps: u64, duplicates: u64) -> Self {
        let mut secs: Vec<f64> = times.iter().map(|d| d.as_secs_f64()).collect();
        secs.sort_by(f64::total_cmp);
        let at = |q: f64| secs.get(((secs.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0);
        StormReport {
            members,
            caught_up: secs.len(),
            all_caught_up_secs: (secs.len() == members).then(|| secs.last().copied().unwrap_or(0.0)),
            p50_secs: at(0.5),
            p99_secs: at(0.99),
            gaps,
            duplicates,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    pub connections: usize,
    /// Each connection a member joined to a room of this many (0: not joined).
    pub members_per_room: usize,
    pub connect_ms: Latency,
    pub server_rss_before_mib: Option<f64>,
    pub server_rss_after_mib: Option<f64>,
    pub server_bytes_per_connection: Option<f64>,
}

/// What one target (Hearth, or the floor) did under the scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    pub target: String,
    pub phases: Vec<PhaseReport>,
    pub storm: Option<StormReport>,
    pub idle: Option<IdleReport>,
    pub wander: Option<crate::wander::WanderReport>,
    pub flood: Option<crate::run::FloodReport>,
    /// Events reading members had still not received when the drain ended.
    pub unreached: u64,
    pub gaps: u64,
    pub duplicates: u64,
}

impl Section {
    pub fn new(target: &str) -> Section {
        Section {
            target: target.into(),
            phases: Vec::new(),
            storm: None,
            idle: None,
            wander: None,
            flood: None,
            unreached: 0,
            gaps: 0,
            duplicates: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: Scenario,
    pub sections: Vec<Section>,
    /// Per phase: Hearth's server CPU per delivery over the floor's, one per
    /// (Hearth, floor) pair of runs, and their median.
    pub cpu_ratios: BTreeMap<String, Ratios>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ratios {
    pub runs: Vec<f64>,
    pub median: f64,
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}")).unwrap_or_else(|| "-".into())
}

impl Report {
    /// Builds the report; with a floor, sections alternate Hearth, floor.
    pub fn new(scenario: Scenario, sections: Vec<Section>, with_floor: bool) -> Report {
        let mut cpu_ratios: BTreeMap<String, Ratios> = BTreeMap::new();
        if with_floor {
            for pair in sections.chunks(2) {
                let [hearth, floor] = pair else { continue };
                for (h, f) in hearth.phases.iter().zip(&floor.phases) {
                    if let (Some(hc), Some(fc)) = (h.server_cpu_us_per_delivery, f.server_cpu_us_per_delivery) {
                        let entry =
                            cpu_ratios.entry(h.name.clone()).or_insert(Ratios { runs: Vec::new(), median: 0.0 });
                        entry.runs.push(hc / fc);
                    }
                }
            }
            for ratios in cpu_ratios.values_mut() {
                let mut sorted = ratios.runs.clone();
                sorted.sort_by(f64::total_cmp);
                ratios.median = sorted[sorted.len() / 2];
            }
        }
        Report { scenario, sections, cpu_ratios }
    }

    /// Whether every delivery arrived exactly once, in order.
    pub fn correct(&self) -> bool {
        self.sections.iter().all(|s| s.unreached == 0 && s.gaps == 0 && s.duplicates == 0)
    }

    /// Errors of every kind in every measured phase, but sends the server
    /// said to retry and that were retried (`retried: CODE`, shown in the
    /// report): a client doing as told is not failing.
    pub fn errors(&self) -> u64 {
        let phases: u64 = self
            .sections
            .iter()
            .flat_map(|s| &s.phases)
            .flat_map(|p| &p.errors)
            .filter(|(kind, _)| !kind.starts_with(crate::member::RETRIED))
            .map(|(_, n)| n)
            .sum();
        phases + self.sections.iter().filter_map(|s| s.wander.as_ref()).map(|w| w.errors).sum::<u64>()
    }

    pub fn print(&self) {
        let s = &self.scenario;
        let (msgs, deliveries) = s.offered();
        if s.kind == crate::scenario::Kind::Wander {
            println!(
                "\nscenario Wander: {} wanderers over {} rooms, {}% of stays in {} hot rooms, {:?} per stay, {:?}",
                s.wanderers, s.rooms, s.hot_percent, s.hot_rooms, s.dwell, s.duration
            );
        } else {
            println!(
                "\nscenario {:?}: {} rooms x {} members, {} senders/room at {} msg/s, {} B payload, {:?} windows, {}",
                s.kind,
                s.rooms,
                s.members_per_room,
                s.senders_per_room,
                s.rate,
                s.payload,
                s.duration,
                if s.json { "json" } else { "msgpack" }
            );
        }
        if s.rooms > 0 && !matches!(s.kind, crate::scenario::Kind::Wander | crate::scenario::Kind::Idle) {
            println!("offered at the base rate: {msgs:.0} msg/s in, {deliveries:.0} deliveries/s out");
        }
        for section in &self.sections {
            println!("\n[{}]", section.target);
            if !section.phases.is_empty() {
                println!(
                    "{:<16} {:>10} {:>10} {:>12} {:>5} {:>5} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>6}",
                    "phase",
                    "offer/s",
                    "acked/s",
                    "deliv/s",
                    "loss",
                    "dup",
                    "p50ms",
                    "p90ms",
                    "p99ms",
                    "p999ms",
                    "maxms",
                    "srv cpu s",
                    "us/deliv",
                    "rss MiB",
                    "lt cpu"
                );
            }
            for p in &section.phases {
                println!(
                    "{:<16} {:>10.0} {:>10.0} {:>12.0} {:>5} {:>5} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9} {:>8} {:>8} {:>5}%",
                    p.name,
                    p.offered_msgs_per_sec,
                    p.acked_per_sec,
                    p.deliveries_per_sec,
                    p.gaps,
                    p.duplicates,
                    p.latency_ms.p50,
                    p.latency_ms.p90,
                    p.latency_ms.p99,
                    p.latency_ms.p999,
                    p.latency_ms.max,
                    opt(p.server_cpu_secs, 2),
                    opt(p.server_cpu_us_per_delivery, 3),
                    opt(p.server_rss_mib, 1),
                    opt(p.loadtest_cpu_percent, 0),
                );
                if p.cpu_us_per_message.len() > 1 {
                    let each: Vec<String> =
                        p.cpu_us_per_message.iter().map(|(name, us)| format!("{name} {us:.1}")).collect();
                    println!("    cpu us per message: {}", each.join(", "));
                }
                for (kind, count) in &p.errors {
                    println!("    error: {kind} x{count}");
                }
                if p.loadtest_cpu_percent.is_some_and(|c| c > 70.0) {
                    println!(
                        "    warning: the load test used over 70% of a core; it may be the bottleneck, not the server"
                    );
                }
            }
            if let Some(first) = section.phases.first() {
                println!(
                    "connect+join ms: p50 {:.2}  p99 {:.2}  max {:.2}",
                    first.connect_ms.p50, first.connect_ms.p99, first.connect_ms.max
                );
            }
            if let Some(storm) = &section.storm {
                println!(
                    "reconnect storm: {} of {} members caught up; all in {} s; p50 {:.2} s, p99 {:.2} s; gaps {}, duplicates {}",
                    storm.caught_up,
                    storm.members,
                    opt(storm.all_caught_up_secs, 2),
                    storm.p50_secs,
                    storm.p99_secs,
                    storm.gaps,
                    storm.duplicates
                );
            }
            if let Some(f) = &section.flood {
                println!(
                    "flooder: {} sends of 8 KB written, {} stored, {} refused with rate_limited; closed with {}",
                    f.sent,
                    f.stored,
                    f.refused,
                    f.closed_with.map_or("-".to_string(), |c| c.to_string())
                );
            }
            if let Some(w) = &section.wander {
                println!(
                    "wander: {} wanderers over {} rooms (created in {:.1} s); {} stays, {:.0} joins/s; join ms p50 {:.2} p99 {:.2} max {:.2}; {} messages acked; {} errors",
                    w.wanderers,
                    w.rooms,
                    w.create_secs,
                    w.stays,
                    w.joins_per_sec,
                    w.join_ms.p50,
                    w.join_ms.p99,
                    w.join_ms.max,
                    w.messages_acked,
                    w.errors
                );
                println!(
                    "wander: server RSS start {} MiB, max {} MiB, end {} MiB; every 10 s: {:?}",
                    opt(w.server_rss_start_mib, 1),
                    opt(w.server_rss_max_mib, 1),
                    opt(w.server_rss_end_mib, 1),
                    w.server_rss_every_10s_mib
                );
            }
            if let Some(idle) = &section.idle {
                let joined = match idle.members_per_room {
                    0 => "not joined to rooms".to_string(),
                    n => format!("each joined to a room of {n}"),
                };
                println!(
                    "idle: {} connections, {joined}; server RSS {} -> {} MiB; {} bytes per connection; connect p99 {:.2} ms",
                    idle.connections,
                    opt(idle.server_rss_before_mib, 1),
                    opt(idle.server_rss_after_mib, 1),
                    opt(idle.server_bytes_per_connection, 0),
                    idle.connect_ms.p99
                );
            }
            println!(
                "checks: {} gaps, {} duplicates, {} events unreached after the drain",
                section.gaps, section.duplicates, section.unreached
            );
        }
        for (phase, ratios) in &self.cpu_ratios {
            let runs: Vec<String> = ratios.runs.iter().map(|r| format!("{r:.2}x")).collect();
            println!(
                "{phase}: hearth / floor server CPU per delivery = {:.2}x median (runs: {})",
                ratios.median,
                runs.join(", ")
            );
        }
    }
}
