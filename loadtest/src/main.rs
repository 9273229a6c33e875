//! `hearth-loadtest`: drives a Hearth server (or several, or the built-in floor
//! server) with a scenario, checks every delivery — no loss, no duplicate, per-room
//! order — and reports throughput, latency percentiles, connect times, errors and,
//! given the server's PID, its CPU cost per delivery and its memory.
//! `redis-cost` measures what a message costs Redis in cluster mode, beside the
//! floor of that design.

mod floor;
mod member;
mod redis_cost;
mod report;
mod run;
mod scenario;
mod stats;
mod wander;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use hearth_server::auth::Secret;

use crate::scenario::{Kind, Scenario};

#[derive(Parser)]
#[command(name = "hearth-loadtest", version, about = "Load scenarios for Hearth")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario and print (and optionally save) the report.
    Run(Box<RunArgs>),
    /// Serve the floor: a bare broadcast server on the same stack, no Hearth logic.
    FloorServer {
        #[arg(long, default_value = "127.0.0.1:7979")]
        listen: SocketAddr,
    },
    /// Measure Redis's CPU per message in cluster mode at the scenario's rate
    /// and size: Hearth's order path (two nodes' brokers) and the floor (a
    /// script that only appends each message to its room's stream and
    /// publishes it).
    RedisCost {
        #[command(flatten)]
        run: Box<RunArgs>,
        #[arg(long, default_value = "redis://127.0.0.1:6379")]
        redis: String,
        /// PID of the Redis server, for its CPU time.
        #[arg(long)]
        redis_pid: u32,
        /// `floor` (XADD + SPUBLISH only), `hearth` (the order path of two
        /// nodes' brokers); repeat for several, run one after the other.
        #[arg(long = "path", value_enum, default_values_t = [redis_cost::RedisPath::Floor])]
        paths: Vec<redis_cost::RedisPath>,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Built-in scenario to start from.
    #[arg(long, value_enum, default_value_t = Kind::Steady)]
    scenario: Kind,
    /// TOML file with scenario fields (see BENCHMARKS.md); flags override it.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Server URL; repeat to spread members over several nodes.
    #[arg(long = "url", default_value = "ws://127.0.0.1:7878")]
    urls: Vec<String>,
    /// Token secret of the server(s).
    #[arg(long, env = "HEARTH_TOKEN_SECRET", hide_env_values = true)]
    secret: String,
    /// For wss:// URLs: a PEM file of CA certificates to trust besides the
    /// public ones (a self-signed test certificate's CA).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// PID of the server, for its CPU time and memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Another process whose CPU time is measured per message (e.g. a second
    /// node or Redis), as NAME=PID; repeat for several.
    #[arg(long = "watch-pid", value_parser = parse_watch)]
    watch: Vec<(String, u32)>,
    /// Also run the same scenario against a floor server at this URL.
    #[arg(long)]
    floor_url: Option<String>,
    #[arg(long)]
    floor_pid: Option<u32>,
    /// Run Hearth and the floor alternately this many times; ratios are reported
    /// per pair and as a median, because one pair on a noisy machine proves little.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Write the report as JSON here.
    #[arg(long = "json-out")]
    json_out: Option<PathBuf>,
    /// Hide the live progress bar.
    #[arg(long)]
    quiet: bool,
    #[arg(long)]
    rooms: Option<usize>,
    #[arg(long)]
    members: Option<usize>,
    #[arg(long)]
    senders: Option<usize>,
    /// Messages per second per sender.
    #[arg(long)]
    rate: Option<f64>,
    #[arg(long)]
    payload: Option<usize>,
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    #[arg(long, value_parser = humantime::parse_duration)]
    warmup: Option<Duration>,
    /// New connections per second.
    #[arg(long)]
    ramp: Option<f64>,
    /// Speak JSON instead of MessagePack.
    #[arg(long)]
    json: bool,
    #[arg(long)]
    idle_connections: Option<usize>,
    #[arg(long)]
    slow_percent: Option<f64>,
    #[arg(long)]
    churn_rate: Option<f64>,
    #[arg(long)]
    max_steps: Option<usize>,
    /// `wander`: connections moving between rooms.
    #[arg(long)]
    wanderers: Option<usize>,
    /// `wander`: rooms most stays go to.
    #[arg(long)]
    hot_rooms: Option<usize>,
    /// `wander`: how long a wanderer stays in a room, e.g. 2s.
    #[arg(long, value_parser = humantime::parse_duration)]
    dwell: Option<Duration>,
}

impl RunArgs {
    fn scenario(&self) -> Result<Scenario> {
        let mut s = match &self.file {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => Scenario::named(self.scenario),
        };
        macro_rules! apply {
            ($($flag:ident => $field:ident),*) => { $( if let Some(v) = self.$flag { s.$field = v; } )* };
        }
        apply!(rooms => rooms, members => members_per_room, senders => senders_per_room, rate => rate,
               payload => payload, duration => duration, warmup => warmup, ramp => ramp,
               idle_connections => idle_connections, slow_percent => slow_percent,
               churn_rate => churn_rate, max_steps => max_steps, wanderers => wanderers,
               hot_rooms => hot_rooms, dwell => dwell);
        s.json |= self.json;
        s.validate()?;
        Ok(s)
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // Thousands of sockets: raise this process's own open-files limit as far as
    // the hard limit allows (nothing system-wide changes).
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::FloorServer { listen } => runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
            eprintln!("floor server listening on ws://{}", listener.local_addr()?);
            floor::serve(listener).await
        }),
        Command::Run(args) => runtime.block_on(run_command(*args)),
        Command::RedisCost { run, redis, redis_pid, paths } => runtime.block_on(async {
            let scenario = run.scenario()?;
            for path in (0..run.repeat).flat_map(|_| paths.iter().copied()) {
                redis_cost::run(redis_cost::FloorRun {
                    path,
                    redis_url: redis.clone(),
                    redis_pid: redis_pid.to_string(),
                    rooms: scenario.rooms,
                    senders_per_room: scenario.senders_per_room,
                    rate: scenario.rate,
                    payload: scenario.payload,
                    warmup: scenario.warmup,
                    duration: scenario.duration,
                })
                .await?;
            }
            Ok(())
        }),
    }
}

async fn run_command(args: RunArgs) -> Result<()> {
    member::trust(args.ca_file.as_deref())?;
    let scenario = args.scenario()?;
    scenario.check_open_files(rlimit::getrlimit(rlimit::Resource::NOFILE)?.0)?;
    let secret = Secret::new(args.secret.clone().into_bytes()).context("the token secret")?;
    let mut sections = Vec::new();
    for round in 1..=args.repeat.max(1) {
        let suffix = if args.repeat > 1 { format!(" #{round}") } else { String::new() };
        let hearth = run::Target {
            name: format!("hearth{suffix}"),
            urls: args.urls.clone(),
            pid: args.server_pid,
            watch: args.watch.clone(),
        };
        sections.push(run::run(&scenario, &hearth, &secret, !args.quiet).await?);
        if let Some(url) = &args.floor_url {
            let floor = run::Target {
                name: format!("floor{suffix}"),
                urls: vec![url.clone()],
                pid: args.floor_pid,
                watch: Vec::new(),
            };
            sections.push(run::run(&scenario, &floor, &secret, !args.quiet).await?);
        }
    }
    let report = report::Report::new(scenario, sections, args.floor_url.is_some());
    report.print();
    if let Some(path) = &args.json_out {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if !report.correct() {
        anyhow::bail!("deliveries were lost, duplicated or out of order (see the report)");
    }
    // Slow members are closed by design, and saturate ends on its first bad
    // step; anywhere else an error is a failure.
    let errors_expected = matches!(report.scenario.kind, Kind::SlowConsumer | Kind::Saturate);
    if !errors_expected && report.errors() > 0 {
        anyhow::bail!("{} errors during the run (see the report)", report.errors());
    }
    Ok(())
}

/// `NAME=PID` for `--watch-pid`.
fn parse_watch(value: &str) -> Result<(String, u32), String> {
    let (name, pid) = value.split_once('=').ok_or_else(|| format!("expected NAME=PID, got {value:?}"))?;
    let pid = pid.parse().map_err(|_| format!("{pid:?} is not a process id"))?;
    Ok((name.to_string(), pid))
}
