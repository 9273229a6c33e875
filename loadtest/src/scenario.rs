//! Scenarios: what load to offer. Built-in ones have names; any field can be set
//! from a TOML file and then overridden by flags.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a scenario measures beyond steady fan-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Fixed rate for the duration.
    Steady,
    /// Raise the rate step by step until loss, errors or p99 over the limit.
    Saturate,
    /// Connect idle members and report server memory per connection.
    Idle,
    /// Every member drops and reconnects with resume at once.
    ReconnectStorm,
    /// Some members never read; compare everyone else's latency with a run without them.
    SlowConsumer,
    /// One extra member floods a room with the largest messages as fast as the
    /// socket takes them; compare everyone's latency with a run without it. Meant
    /// for a server with its production rate limits.
    Flood,
    /// Extra clients join and leave rooms at a rate while messages flow.
    Churn,
    /// Many stored rooms, few active, members moving between them: the server's
    /// memory over time and the time to join a room that must be loaded first.
    Wander,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    pub kind: Kind,
    pub rooms: usize,
    pub members_per_room: usize,
    pub senders_per_room: usize,
    /// Messages per second per sender.
    pub rate: f64,
    /// Bytes of message text (at least the 40 the timestamp header takes).
    pub payload: usize,
    #[serde(with = "humantime_serde_compat")]
    pub duration: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub warmup: Duration,
    /// New connections per second while ramping up.
    pub ramp: f64,
    pub json: bool,
    /// `idle`: connections to open.
    pub idle_connections: usize,
    /// `slow-consumer`: percent of members that never read.
    pub slow_percent: f64,
    /// `churn`: joins plus leaves per second.
    pub churn_rate: f64,
    /// `saturate`: factor between steps, step count, and the p99 limit in ms.
    pub step_factor: f64,
    pub max_steps: usize,
    pub p99_limit_ms: f64,
    /// `wander`: connections moving between rooms.
    pub wanderers: usize,
    /// `wander`: how many rooms are hot, and the percent of stays spent in them.
    pub hot_rooms: usize,
    pub hot_percent: f64,
    /// `wander`: how long a wanderer stays in a room.
    #[serde(with = "humantime_serde_compat")]
    pub dwell: Duration,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario::named(Kind::Steady)
    }
}

impl Scenario {
    /// The built-in scenario of this kind.
    pub fn named(kind: Kind) -> Scenario {
        let steady = Scenario {
            kind,
            rooms: 20,
            members_per_room: 50,
            senders_per_room: 2,
            rate: 50.0,
            payload: 100,
            duration: Duration::from_secs(20),
            warmup: Duration::from_secs(3),
            ramp: 2000.0,
            json: false,
            idle_connections: 20_000,
            slow_percent: 1.0,
            churn_rate: 50.0,
            step_factor: 1.5,
            max_steps: 12,
            p99_limit_ms: 100.0,
            wanderers: 500,
            hot_rooms: 20,
            hot_percent: 80.0,
            dwell: Duration::from_secs(2),
        };
        match kind {
            Kind::Steady | Kind::SlowConsumer | Kind::Churn => steady,
            // Under the default limit of 20 messages a second per connection.
            Kind::Flood => Scenario { rate: 10.0, ..steady },
            Kind::Saturate => Scenario { duration: Duration::from_secs(6), warmup: Duration::from_secs(2), ..steady },
            Kind::Idle => Scenario { rooms: 0, duration: Duration::from_secs(5), ..steady },
            Kind::Wander => Scenario { rooms: 10_000, duration: Duration::from_secs(30), ..steady },
            Kind::ReconnectStorm => Scenario {
                rooms: 100,
                members_per_room: 100,
                senders_per_room: 1,
                rate: 10.0,
                duration: Duration::from_secs(10),
                ramp: 5000.0,
                ..steady
            },
        }
    }

    pub fn members(&self) -> usize {
        self.rooms * self.members_per_room
    }

    /// Offered messages per second in and deliveries per second out.
    pub fn offered(&self) -> (f64, f64) {
        let msgs = self.rooms as f64 * self.senders_per_room as f64 * self.rate;
        (msgs, msgs * self.members_per_room as f64)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.senders_per_room <= self.members_per_room, "senders_per_room exceeds members_per_room");
        anyhow::ensure!(self.members_per_room <= 1000, "members_per_room is at most 1000 (the room cap limit)");
        anyhow::ensure!(self.payload >= 40 && self.payload <= 8000, "payload must be 40-8000 bytes");
        anyhow::ensure!(self.rate > 0.0 && self.ramp > 0.0, "rate and ramp must be positive");
        anyhow::ensure!(self.duration <= Duration::from_secs(3600), "duration is at most an hour");
        Ok(())
    }

    /// The most connections this scenario holds open at once (each is a file
    /// of this process's), and the flag that sets how many. (A storm's dropped
    /// connections are closed before their members reconnect; churn and flood
    /// clients are a handful more.)
    fn connections(&self) -> (usize, &'static str) {
        match self.kind {
            Kind::Idle => (self.idle_connections, "--idle-connections"),
            Kind::Wander => (self.wanderers, "--wanderers"),
            _ => (self.rooms * self.members_per_room, "--rooms or --members"),
        }
    }

    /// Refuses a scenario that would run out of files part-way through
    /// connecting, with the OS's bare "Too many open files": `open_files` is
    /// this process's limit on them, already raised as far as it may go.
    pub fn check_open_files(&self, open_files: u64) -> anyhow::Result<()> {
        let (connections, flag) = self.connections();
        let needed = (connections + FILES_BESIDES_CONNECTIONS) as u64;
        anyhow::ensure!(
            needed <= open_files,
            "this scenario holds {connections} connections open, but this process may open only {open_files} files \
             (its hard limit); lower {flag}, or raise the hard limit (`ulimit -Hn {needed}` as root, \
             or LimitNOFILE= in a systemd unit)"
        );
        Ok(())
    }
}

/// Files the load generator opens besides members' connections: the runtime's
/// epoll and wake-up descriptors, the admin connection, churn and flood
/// clients, a report file, the server's `/proc` files.
const FILES_BESIDES_CONNECTIONS: usize = 32;

/// Durations in TOML as humantime strings ("20s", "2m").
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scenario_that_would_run_out_of_files_is_refused_before_it_connects() {
        let idle = Scenario { idle_connections: 20_000, ..Scenario::named(Kind::Idle) };
        let refused = idle.check_open_files(20_000).unwrap_err().to_string();
        assert!(refused.contains("20000 connections") && refused.contains("--idle-connections"), "{refused}");
        idle.check_open_files(20_032).unwrap();
        let steady = Scenario::named(Kind::Steady);
        assert_eq!(steady.connections().0, steady.rooms * steady.members_per_room);
        steady.check_open_files(4096).unwrap();
        let wander = Scenario { wanderers: 5_000, ..Scenario::named(Kind::Wander) };
        assert!(wander.check_open_files(1024).unwrap_err().to_string().contains("--wanderers"));
    }

    #[test]
    fn the_example_file_parses_and_validates() {
        let text = include_str!("../scenarios/evening-rush.toml");
        let scenario: Scenario = toml::from_str(text).unwrap();
        scenario.validate().unwrap();
        assert_eq!((scenario.rooms, scenario.members_per_room, scenario.senders_per_room), (40, 80, 4));
        assert_eq!(scenario.duration, Duration::from_secs(30));
        // Fields left out keep the steady defaults.
        assert_eq!(scenario.p99_limit_ms, 100.0);
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(toml::from_str::<Scenario>("rooms = 1\nromos = 2").is_err());
    }

    #[test]
    fn steady_offers_what_the_issue_names() {
        let (msgs, deliveries) = Scenario::named(Kind::Steady).offered();
        assert_eq!((msgs, deliveries), (2000.0, 100_000.0));
    }
}
