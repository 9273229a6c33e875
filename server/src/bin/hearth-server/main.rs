//! `hearth-server`: reads its settings (flags, `HEARTH_*` variables, a config
//! file), sets up logging, binds, and serves. `hearth-server token NAME` mints
//! a token instead; `hearth-server check-config` prints the settings it would
//! run with; `hearth-server accounts ...` manages a running server's accounts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use hearth_protocol::UserId;
use hearth_server::accounts::{AccountsConfig, Registration};
use hearth_server::auth::{self, Secret};
use hearth_server::config::DEFAULT_EPHEMERAL_HISTORY;
use hearth_server::config::file::FileSettings;
use hearth_server::{Config, Limits, RedisConfig, RedisTarget, Storage};
use tokio_util::sync::CancellationToken;

mod operator;
mod settings;

use operator::{accounts_command, import_discord};
use settings::{apply_file, effective, validate};

#[derive(Parser)]
#[command(name = "hearth-server", version, about = "Hearth chat server for small, calm communities")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// A TOML file of settings (keys: these flags without their dashes); flags
    /// and HEARTH_* variables win over it. See hearth.example.toml.
    #[arg(long, env = "HEARTH_SERVER_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Address to listen on for WebSocket connections.
    #[arg(long, env = "HEARTH_LISTEN", default_value = "127.0.0.1:7878")]
    listen: SocketAddr,
    /// Directory for the database and the token secret.
    #[arg(long, env = "HEARTH_DATA_DIR", default_value = "./hearth-data", global = true)]
    data_dir: PathBuf,
    /// Keep everything in memory and write nothing (needs HEARTH_TOKEN_SECRET).
    #[arg(long, conflicts_with = "data_dir")]
    ephemeral: bool,
    /// With --ephemeral: events each room keeps; older ones are forgotten.
    #[arg(long, default_value_t = DEFAULT_EPHEMERAL_HISTORY)]
    history_limit: usize,
    /// Cluster mode: keep rooms and history in this Redis (redis://host:port),
    /// shared by every node that names it. Needs HEARTH_TOKEN_SECRET, the same
    /// on every node.
    #[arg(long, env = "HEARTH_REDIS_URL", conflicts_with_all = ["ephemeral", "redis_cluster"])]
    redis: Option<String>,
    /// Cluster mode on a Redis Cluster: some of its nodes, comma-separated.
    #[arg(long, env = "HEARTH_REDIS_CLUSTER", value_delimiter = ',', conflicts_with = "ephemeral")]
    redis_cluster: Vec<String>,
    /// Start of every Redis key and channel, so deployments can share a Redis.
    #[arg(long, env = "HEARTH_REDIS_PREFIX", default_value = "hearth")]
    redis_prefix: String,
    /// Cluster mode: events each room's history keeps (at least).
    #[arg(long, default_value_t = 100_000)]
    redis_history_events: usize,
    /// Cluster mode: events older than this leave history (e.g. 90d; default: kept).
    #[arg(long, value_parser = humantime::parse_duration)]
    redis_history_age: Option<Duration>,
    /// Cluster mode: a Redis call slower than this fails, and the client is told to retry.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    redis_timeout: Duration,
    /// Cluster mode: how often the node checks its Redis subscription (a probe
    /// message) and its quiet rooms' heads.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    redis_probe: Duration,
    /// Serve wss:// with this certificate chain (PEM, leaf first); needs --tls-key.
    /// SIGHUP reloads both files without dropping connections.
    #[arg(long, env = "HEARTH_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "HEARTH_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Also serve /healthz, /readyz and /metrics alone on this address (e.g.
    /// 127.0.0.1:9090 for Prometheus); they stay on the main port too.
    #[arg(long, env = "HEARTH_ADMIN_LISTEN")]
    admin_listen: Option<SocketAddr>,
    /// Browser origins allowed to connect (e.g. https://chat.example.org),
    /// comma-separated; `*` for any. Default: none (browsers get 403).
    #[arg(long, env = "HEARTH_ALLOWED_ORIGINS", value_delimiter = ',')]
    allowed_origins: Vec<String>,
    /// Who runs this server, told to push services with each notification
    /// (mailto:you@example.org or an https URL).
    #[arg(long, default_value = "mailto:hearth@localhost")]
    push_contact: String,
    /// Hosts of the push services the server sends notifications to,
    /// comma-separated (a host, or a domain and its subdomains). Default:
    /// Chrome's, Firefox's, Edge's and Safari's.
    #[arg(long, value_delimiter = ',')]
    push_hosts: Vec<String>,
    /// How long shutdown waits for connections to take their close frames (e.g. 5s).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    shutdown_grace: Duration,
    /// Most simultaneous connections.
    #[arg(long, default_value_t = 100_000)]
    max_connections: usize,
    /// Wait this long after a writer wakes before writing, to batch frames (e.g. 500us).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    write_coalesce: Duration,
    /// A room nobody uses for this long leaves memory (it loads again when next
    /// touched), e.g. 60s.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    room_idle: Duration,
    /// Requests per second one connection may make, sustained (pings count).
    #[arg(long, default_value_t = Limits::default().requests_per_sec)]
    request_rate: u32,
    /// Requests one connection may make in a burst.
    #[arg(long, default_value_t = Limits::default().request_burst)]
    request_burst: u32,
    /// Messages per second one connection may send, sustained.
    #[arg(long, default_value_t = Limits::default().messages_per_sec)]
    message_rate: u32,
    /// Messages one connection may send in a burst.
    #[arg(long, default_value_t = Limits::default().message_burst)]
    message_burst: u32,
    /// Requests one connection may have waiting to be stored.
    #[arg(long, default_value_t = Limits::default().max_in_flight)]
    max_in_flight: usize,
    /// Connections one user may have open.
    #[arg(long, default_value_t = Limits::default().connections_per_user)]
    connections_per_user: usize,
    /// Connections from one IP address (raise it behind a reverse proxy).
    #[arg(long, default_value_t = Limits::default().connections_per_ip)]
    connections_per_ip: usize,
    /// Rooms one user may own.
    #[arg(long, default_value_t = Limits::default().rooms_per_user)]
    rooms_per_user: usize,
    /// Connections receiving one room at once.
    #[arg(long, default_value_t = Limits::default().receivers_per_room)]
    receivers_per_room: usize,
    /// Pinned notes per room.
    #[arg(long, default_value_t = Limits::default().pins_per_room)]
    pins_per_room: usize,
    /// New direct conversations one member may start per hour; 0 turns
    /// direct messages off.
    #[arg(long, default_value_t = Limits::default().direct_per_hour)]
    direct_per_hour: u32,
    /// Who may register an account: closed, invite (with a code from
    /// `hearth-server accounts invite`), or open.
    #[arg(long, env = "HEARTH_REGISTRATION", value_enum, default_value_t = Registration::Invite)]
    registration: Registration,
    /// Life of the access tokens a login or refresh gives (clients refresh
    /// them on their own), e.g. 15m.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15m")]
    token_ttl: Duration,
    /// Life of a login's refresh token: how long a client may stay away and
    /// still come back without the password, e.g. 30d.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30d")]
    refresh_ttl: Duration,
    /// Log format on stderr (level from RUST_LOG, default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Print a token for user NAME, signed with this server's secret.
    Token {
        name: String,
        /// How long the token is valid, e.g. 12h, 30d.
        #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
    /// Check the settings (flags, HEARTH_* variables, --config file) and print
    /// the ones the server would run with, secrets redacted.
    CheckConfig,
    /// Take a consistent backup of --data-dir into DEST (a new directory),
    /// while the server runs: every database, and the token secret.
    Backup { dest: PathBuf },
    /// Restore a backup into --data-dir. Stop the server first; what the
    /// directory held is moved aside (before-restore-TIME/), never deleted.
    Restore { backup: PathBuf },
    /// Check the rooms stored in --data-dir, or with --redis/--redis-cluster
    /// a cluster's rooms in Redis (after a restore, say): every room's
    /// events without a gap up to its head, each where it belongs.
    Check,
    /// Manage accounts on a running server (over its HTTP endpoints, with an
    /// operator token signed by this configuration's secret).
    Accounts {
        /// The server's plain-HTTP address [default: --admin-listen, else --listen].
        #[arg(long)]
        server: Option<SocketAddr>,
        #[command(subcommand)]
        action: AccountsAction,
    },
    /// Bring a channel's past from another chat into a room of a running
    /// server (create the room first); running it again adds nothing twice.
    Import {
        /// The server's plain-HTTP address [default: --admin-listen, else --listen].
        #[arg(long)]
        server: Option<SocketAddr>,
        #[command(subcommand)]
        source: ImportSource,
    },
}

#[derive(Subcommand)]
enum ImportSource {
    /// A DiscordChatExporter JSON export of one channel.
    Discord {
        /// The export (`--format Json` of DiscordChatExporter).
        file: PathBuf,
        /// The room to import into.
        #[arg(long)]
        room: String,
        /// A JSON file mapping Discord authors (id or name) to members here:
        /// {"123456789": "ada", "bo_films": "bo"}. Others are shown by their
        /// Discord names, posted as `discord-import`.
        #[arg(long)]
        map: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AccountsAction {
    /// Make a registration invite code.
    Invite {
        /// Registrations it allows.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// How long it stays valid, e.g. 7d.
        #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
        valid_for: Duration,
    },
    /// Disable an account: its connections close at once, on every node, and
    /// its tokens stop working.
    Disable {
        name: String,
        /// Told to the account's connections as they close.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Enable a disabled account again (its person logs in again).
    Enable { name: String },
    /// Erase an account for good: every message it wrote becomes a tombstone,
    /// its reactions, read state, devices and sessions go, and the name can
    /// never sign in again (kept in the erasure log, which a restore of an
    /// older backup goes through again).
    Erase { name: String },
    /// List the accounts.
    List,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> Result<()> {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Some(path) = cli.config.clone() {
        let file = FileSettings::load(&path)?;
        apply_file(&mut cli, file, &matches)?;
    }
    validate(&cli)?;
    if let Some(Command::CheckConfig) = &cli.command {
        print!("{}", effective(&cli));
        return Ok(());
    }
    match &cli.command {
        Some(Command::Backup { dest }) => {
            let manifest = hearth_server::backup::backup(&cli.data_dir, dest)?;
            println!("backed up {} into {}: {}", cli.data_dir.display(), dest.display(), manifest.files.join(", "));
            return Ok(());
        }
        Some(Command::Restore { backup }) => {
            let aside = hearth_server::backup::restore(backup, &cli.data_dir)?;
            println!("restored {} into {}", backup.display(), cli.data_dir.display());
            if let Some(aside) = aside {
                println!("what was there is in {}", aside.display());
            }
            println!("check it with: hearth-server check --data-dir {}", cli.data_dir.display());
            return Ok(());
        }
        Some(Command::Check) => {
            let checks = match redis_target(&cli) {
                Some(target) => {
                    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
                    runtime.block_on(check_cluster(&cli, target))?
                }
                None => {
                    let store = hearth_server::store::sqlite::SqliteStore::open(&cli.data_dir)?;
                    hearth_server::backup::check(&store)?
                }
            };
            let bad: Vec<_> = checks.iter().filter(|c| !c.problems.is_empty()).collect();
            for room in &checks {
                let state = if room.problems.is_empty() { "ok".to_string() } else { room.problems.join("; ") };
                println!("{:<24} events {}..={}  {state}", room.room, room.oldest, room.head);
            }
            if !bad.is_empty() {
                bail!("{} of {} rooms have problems (above)", bad.len(), checks.len());
            }
            println!("{} rooms, all whole", checks.len());
            return Ok(());
        }
        _ => {}
    }
    if let Some(Command::Token { name, ttl }) = &cli.command {
        let user = UserId::new(name.as_str()).map_err(anyhow::Error::msg)?;
        let secret = secret_for(&cli.data_dir, false)?;
        println!("{}", auth::mint(&secret, &user, *ttl));
        return Ok(());
    }
    if let Some(Command::Accounts { server, action }) = &cli.command {
        let (server, secret) = operator_target(&cli, *server)?;
        let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
        return runtime.block_on(accounts_command(server, &secret, action));
    }
    if let Some(Command::Import { server, source: ImportSource::Discord { file, room, map } }) = &cli.command {
        let (server, secret) = operator_target(&cli, *server)?;
        let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
        return runtime.block_on(import_discord(server, &secret, file, room, map.as_deref()));
    }
    init_logging(cli.log_format);
    let redis = redis_target(&cli);
    let shared_secret = cli.ephemeral || redis.is_some();
    let storage = if let Some(target) = redis {
        Storage::Redis(redis_config(&cli, target))
    } else if cli.ephemeral {
        Storage::Ephemeral { history_limit: cli.history_limit }
    } else {
        Storage::Dir(cli.data_dir.clone())
    };
    let mut config = Config::new(storage, secret_for(&cli.data_dir, shared_secret)?);
    config.max_connections = cli.max_connections;
    config.allowed_origins = cli.allowed_origins.clone();
    config.push.contact = cli.push_contact.clone();
    if !cli.push_hosts.is_empty() {
        config.push.hosts = cli.push_hosts.clone();
    }
    config.admin_listen = cli.admin_listen;
    config.tls = match (&cli.tls_cert, &cli.tls_key) {
        (Some(cert), Some(key)) => Some(hearth_server::tls::TlsFiles { cert: cert.clone(), key: key.clone() }),
        _ => None,
    };
    config.shutdown_grace = cli.shutdown_grace;
    config.accounts =
        AccountsConfig { registration: cli.registration, token_ttl: cli.token_ttl, refresh_ttl: cli.refresh_ttl };
    config.write_coalesce = cli.write_coalesce;
    config.rooms.idle_after = cli.room_idle;
    config.limits = Limits {
        requests_per_sec: cli.request_rate,
        request_burst: cli.request_burst,
        messages_per_sec: cli.message_rate,
        message_burst: cli.message_burst,
        max_in_flight: cli.max_in_flight,
        connections_per_user: cli.connections_per_user,
        connections_per_ip: cli.connections_per_ip,
        rooms_per_user: cli.rooms_per_user,
        receivers_per_room: cli.receivers_per_room,
        pins_per_room: cli.pins_per_room,
        direct_per_hour: cli.direct_per_hour,
        ..Limits::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(hearth_server::alloc::tidy_this_thread)
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(cli.listen, config))
}

async fn serve(listen: SocketAddr, config: Config) -> Result<()> {
    let listener = hearth_server::transport::bind(listen)
        .with_context(|| format!("cannot listen on {listen}; is another server using it? pick one with --listen"))?;
    let data = match &config.storage {
        Storage::Dir(dir) => dir.display().to_string(),
        Storage::Ephemeral { .. } => "memory only".to_string(),
        Storage::Redis(redis) => format!("Redis {}, prefix {}", redis.target.describe(), redis.prefix),
    };
    // Up only once the store is open (or Redis answered): the banner means it.
    let scheme = if config.tls.is_some() { "wss" } else { "ws" };
    let server = hearth_server::Server::start(config).await?;
    eprintln!("hearth-server listening on {scheme}://{} (data: {data})", listener.local_addr()?);
    if let Some(tls) = server.tls() {
        tokio::spawn(reload_tls_on_sighup(tls));
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    server.serve(listener, shutdown).await?;
    Ok(())
}

/// The token secret: HEARTH_TOKEN_SECRET if set, else the data directory's file
/// (unless the server keeps no files of its own: `--ephemeral`, or cluster mode,
/// where every node must check tokens with the same secret).
fn secret_for(data_dir: &Path, from_env_only: bool) -> Result<Secret> {
    if let Some(value) = std::env::var_os("HEARTH_TOKEN_SECRET") {
        let bytes = value.into_encoded_bytes();
        return Secret::new(bytes).context("HEARTH_TOKEN_SECRET is unusable");
    }
    if from_env_only {
        bail!(
            "--ephemeral and cluster mode (--redis) keep no token secret of their own: \
             set HEARTH_TOKEN_SECRET (32+ characters, the same on every node) for the server \
             and for `hearth-server token`"
        );
    }
    Secret::load_or_create(data_dir).context("loading the token secret")
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
    shutdown.cancel();
}

/// Reads the certificate and key again on each SIGHUP; a bad file is logged
/// and the certificate in use stays.
async fn reload_tls_on_sighup(tls: std::sync::Arc<hearth_server::tls::Tls>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else { return };
        while hangups.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => tracing::info!("TLS certificate reloaded"),
                Err(error) => tracing::error!(%error, "TLS certificate not reloaded; the one in use stays"),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tls;
}

/// The Redis the flags name, if any.
fn redis_target(cli: &Cli) -> Option<RedisTarget> {
    match (&cli.redis, cli.redis_cluster.is_empty()) {
        (Some(url), _) => Some(RedisTarget::Single(url.clone())),
        (None, false) => Some(RedisTarget::Cluster(cli.redis_cluster.clone())),
        (None, true) => None,
    }
}

fn redis_config(cli: &Cli, target: RedisTarget) -> RedisConfig {
    let mut redis = RedisConfig::new(target);
    redis.prefix = cli.redis_prefix.clone();
    redis.history_events = cli.redis_history_events;
    redis.history_age = cli.redis_history_age;
    redis.timeout = cli.redis_timeout;
    redis.probe_every = cli.redis_probe;
    redis
}

/// `check` of a cluster's rooms in Redis: read through a broker that serves
/// nobody.
async fn check_cluster(cli: &Cli, target: RedisTarget) -> Result<Vec<hearth_server::backup::RoomCheck>> {
    let described = target.describe();
    let stop = tokio_util::sync::CancellationToken::new();
    let broker = hearth_server::broker::cluster::RedisBroker::connect(
        redis_config(cli, target),
        hearth_server::clock::system(),
        std::sync::Arc::new(hearth_server::backup::NoDelivery),
        stop.clone(),
    )
    .await
    .with_context(|| format!("connecting to Redis at {described}"))?;
    let checks = hearth_server::backup::check_broker(&broker).await;
    stop.cancel();
    checks.with_context(|| format!("reading the rooms in Redis at {described}"))
}

/// Where the operator's commands go (the server's plain-HTTP address) and the
/// secret their token is signed with.
fn operator_target(cli: &Cli, server: Option<SocketAddr>) -> Result<(SocketAddr, Secret)> {
    let secret = secret_for(&cli.data_dir, cli.ephemeral || cli.redis.is_some() || !cli.redis_cluster.is_empty())?;
    let server = server.or(cli.admin_listen).unwrap_or(cli.listen);
    if server == cli.listen && cli.tls_cert.is_some() && cli.admin_listen.is_none() {
        bail!(
            "the main port speaks TLS and this command speaks plain HTTP: give the server an operator \
             address with --admin-listen 127.0.0.1:9090 (it serves these commands too), or pass --server"
        );
    }
    Ok((server, secret))
}
