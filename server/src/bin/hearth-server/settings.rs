//! Where each setting comes from: command line > environment > config file >
//! default (`apply_file`), whether the whole makes sense (`validate`), and the
//! settings in effect as `check-config` prints them (`effective`).

use super::*;

/// Whether `id` was given on the command line or by its environment variable
/// (which win over the file).
fn given(matches: &ArgMatches, id: &str) -> bool {
    matches!(matches.value_source(id), Some(ValueSource::CommandLine | ValueSource::EnvVariable))
}

/// Takes each setting the file has, unless a flag or variable gave it.
pub(crate) fn apply_file(cli: &mut Cli, file: FileSettings, matches: &ArgMatches) -> Result<()> {
    macro_rules! take {
        ($($field:ident),* $(,)?) => {$(
            if let Some(value) = file.$field {
                if !given(matches, stringify!($field)) {
                    cli.$field = value.into();
                }
            }
        )*};
    }
    take!(
        listen,
        data_dir,
        ephemeral,
        history_limit,
        redis,
        redis_cluster,
        redis_prefix,
        redis_history_events,
        redis_history_age,
        redis_timeout,
        redis_probe,
        admin_listen,
        tls_cert,
        tls_key,
        allowed_origins,
        push_contact,
        push_hosts,
        shutdown_grace,
        max_connections,
        write_coalesce,
        room_idle,
        request_rate,
        request_burst,
        message_rate,
        message_burst,
        max_in_flight,
        connections_per_user,
        connections_per_ip,
        rooms_per_user,
        receivers_per_room,
        pins_per_room,
        direct_per_hour,
        token_ttl,
        refresh_ttl,
    );
    if let Some(registration) = file.registration
        && !given(matches, "registration")
    {
        cli.registration = Registration::from_str(&registration, true).map_err(|_| {
            anyhow::anyhow!("config key `registration`: {registration:?} is not one of closed, invite, open")
        })?;
    }
    if let Some(format) = file.log_format
        && !given(matches, "log_format")
    {
        cli.log_format = LogFormat::from_str(&format, true)
            .map_err(|_| anyhow::anyhow!("config key `log-format`: {format:?} is not one of text, json"))?;
    }
    Ok(())
}

/// Checks the settings together; each error names the key (and flag) and the fix.
pub(crate) fn validate(cli: &Cli) -> Result<()> {
    if cli.ephemeral && (cli.redis.is_some() || !cli.redis_cluster.is_empty()) {
        bail!(
            "`ephemeral` (--ephemeral) and `redis` / `redis-cluster` exclude each other: pick memory only or cluster mode"
        );
    }
    if cli.redis.is_some() && !cli.redis_cluster.is_empty() {
        bail!(
            "`redis` (--redis) and `redis-cluster` (--redis-cluster) exclude each other: name one Redis or a cluster"
        );
    }
    let at_least_one = [
        ("history-limit", cli.history_limit as u64),
        ("redis-history-events", cli.redis_history_events as u64),
        ("max-connections", cli.max_connections as u64),
        ("request-rate", u64::from(cli.request_rate)),
        ("request-burst", u64::from(cli.request_burst)),
        ("message-rate", u64::from(cli.message_rate)),
        ("message-burst", u64::from(cli.message_burst)),
        ("max-in-flight", cli.max_in_flight as u64),
        ("connections-per-user", cli.connections_per_user as u64),
        ("connections-per-ip", cli.connections_per_ip as u64),
        ("receivers-per-room", cli.receivers_per_room as u64),
    ];
    for (key, value) in at_least_one {
        if value == 0 {
            bail!("`{key}` (--{key}) must be at least 1; 0 would refuse everything");
        }
    }
    if cli.redis_prefix.is_empty() || cli.redis_prefix.contains(['{', '}']) {
        bail!(
            "`redis-prefix` (--redis-prefix) {:?} must be non-empty and without braces: braces are Redis Cluster \
             hash tags, and each room's keys take the room's name as theirs",
            cli.redis_prefix
        );
    }
    if cli.tls_cert.is_some() != cli.tls_key.is_some() {
        bail!("`tls-cert` and `tls-key` (--tls-cert, --tls-key) go together: give both, or neither for ws://");
    }
    if cli.token_ttl < Duration::from_secs(10) || cli.refresh_ttl <= cli.token_ttl {
        bail!(
            "`token-ttl` (--token-ttl) must be at least 10s and `refresh-ttl` (--refresh-ttl) longer than it \
             (defaults 15m and 30d)"
        );
    }
    if cli.redis_timeout.is_zero() || cli.redis_probe.is_zero() {
        bail!("`redis-timeout` and `redis-probe` (--redis-timeout, --redis-probe) must be longer than zero");
    }
    for origin in &cli.allowed_origins {
        let scheme = origin.starts_with("https://") || origin.starts_with("http://");
        if origin != "*" && (!scheme || origin.trim_end_matches('/').matches('/').count() != 2) {
            bail!(
                "`allowed-origins` (--allowed-origins): {origin:?} is not an origin; write scheme://host[:port], \
                 e.g. https://chat.example.org, or * for any"
            );
        }
    }
    Ok(())
}

/// The settings the server would run with, as a config file, secrets redacted.
pub(crate) fn effective(cli: &Cli) -> String {
    let redact = |url: &String| match url.split_once("://").and_then(|(s, rest)| Some((s, rest.split_once('@')?))) {
        Some((scheme, (userinfo, host))) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.clone(),
    };
    let settings = FileSettings {
        listen: Some(cli.listen),
        data_dir: Some(cli.data_dir.clone()),
        ephemeral: Some(cli.ephemeral),
        history_limit: Some(cli.history_limit),
        redis: cli.redis.as_ref().map(redact),
        redis_cluster: Some(cli.redis_cluster.iter().map(redact).collect()),
        redis_prefix: Some(cli.redis_prefix.clone()),
        redis_history_events: Some(cli.redis_history_events),
        redis_history_age: cli.redis_history_age,
        redis_timeout: Some(cli.redis_timeout),
        redis_probe: Some(cli.redis_probe),
        admin_listen: cli.admin_listen,
        tls_cert: cli.tls_cert.clone(),
        tls_key: cli.tls_key.clone(),
        allowed_origins: Some(cli.allowed_origins.clone()),
        push_contact: Some(cli.push_contact.clone()),
        push_hosts: Some(cli.push_hosts.clone()),
        shutdown_grace: Some(cli.shutdown_grace),
        max_connections: Some(cli.max_connections),
        write_coalesce: Some(cli.write_coalesce),
        room_idle: Some(cli.room_idle),
        request_rate: Some(cli.request_rate),
        request_burst: Some(cli.request_burst),
        message_rate: Some(cli.message_rate),
        message_burst: Some(cli.message_burst),
        max_in_flight: Some(cli.max_in_flight),
        connections_per_user: Some(cli.connections_per_user),
        connections_per_ip: Some(cli.connections_per_ip),
        rooms_per_user: Some(cli.rooms_per_user),
        receivers_per_room: Some(cli.receivers_per_room),
        pins_per_room: Some(cli.pins_per_room),
        direct_per_hour: Some(cli.direct_per_hour),
        registration: Some(
            match cli.registration {
                Registration::Closed => "closed",
                Registration::Invite => "invite",
                Registration::Open => "open",
            }
            .to_string(),
        ),
        token_ttl: Some(cli.token_ttl),
        refresh_ttl: Some(cli.refresh_ttl),
        log_format: Some(if cli.log_format == LogFormat::Json { "json" } else { "text" }.to_string()),
    };
    let secret = if std::env::var_os("HEARTH_TOKEN_SECRET").is_some() {
        "HEARTH_TOKEN_SECRET (set; not shown)".to_string()
    } else if cli.ephemeral || cli.redis.is_some() || !cli.redis_cluster.is_empty() {
        "HEARTH_TOKEN_SECRET is NOT set, and this mode needs it".to_string()
    } else {
        format!("the file {} (not shown)", cli.data_dir.join("token.secret").display())
    };
    format!("# the settings hearth-server would run with\n# token secret: {secret}\n{}", settings.to_toml())
}
