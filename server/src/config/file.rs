//! The configuration file (`hearth-server --config FILE`): TOML whose keys are
//! the command-line flags without their dashes (`listen`, `message-rate`,
//! `redis-history-age`, ...). Precedence, highest first: a flag given on the
//! command line, its `HEARTH_*` environment variable, the file, the default.
//! Unknown keys are refused, so a typo cannot silently leave a setting at its
//! default. Secrets do not belong here: the token secret comes from the data
//! directory or `HEARTH_TOKEN_SECRET`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Every setting the file may hold; absent ones are `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FileSettings {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub ephemeral: Option<bool>,
    pub history_limit: Option<usize>,
    pub redis: Option<String>,
    pub redis_cluster: Option<Vec<String>>,
    pub redis_prefix: Option<String>,
    pub redis_history_events: Option<usize>,
    #[serde(default, with = "human")]
    pub redis_history_age: Option<Duration>,
    #[serde(default, with = "human")]
    pub redis_timeout: Option<Duration>,
    #[serde(default, with = "human")]
    pub redis_probe: Option<Duration>,
    pub admin_listen: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub allowed_origins: Option<Vec<String>>,
    #[serde(default, with = "human")]
    pub shutdown_grace: Option<Duration>,
    pub max_connections: Option<usize>,
    #[serde(default, with = "human")]
    pub write_coalesce: Option<Duration>,
    #[serde(default, with = "human")]
    pub room_idle: Option<Duration>,
    pub request_rate: Option<u32>,
    pub request_burst: Option<u32>,
    pub message_rate: Option<u32>,
    pub message_burst: Option<u32>,
    pub max_in_flight: Option<usize>,
    pub connections_per_user: Option<usize>,
    pub connections_per_ip: Option<usize>,
    pub rooms_per_user: Option<usize>,
    pub receivers_per_room: Option<usize>,
    pub pins_per_room: Option<usize>,
    pub direct_per_hour: Option<u32>,
    pub push_contact: Option<String>,
    pub push_hosts: Option<Vec<String>>,
    pub registration: Option<String>,
    #[serde(default, with = "human")]
    pub token_ttl: Option<Duration>,
    #[serde(default, with = "human")]
    pub refresh_ttl: Option<Duration>,
    pub log_format: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read the config file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("the config file {path} is not valid: {detail}")]
    Invalid { path: String, detail: String },
}

impl FileSettings {
    pub fn load(path: &Path) -> Result<FileSettings, FileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| FileError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text).map_err(|detail| FileError::Invalid { path: path.display().to_string(), detail })
    }

    /// The settings in `text`; the error names the key and says what is wrong.
    pub fn parse(text: &str) -> Result<FileSettings, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim().replace('\n', " "))
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

/// Durations written the way flags take them: `90d`, `500ms`, `2s`.
mod human {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_str(&format(*d)),
            None => s.serialize_none(),
        }
    }

    /// The largest whole unit: `90d`, `2s`, `500ms` (what a person writes).
    fn format(d: Duration) -> String {
        let ms = d.as_millis();
        for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
            if ms > 0 && ms.is_multiple_of(size) {
                return format!("{}{unit}", ms / size);
            }
        }
        if ms > 0 && d.subsec_nanos().is_multiple_of(1_000_000) {
            format!("{ms}ms")
        } else {
            format!("{}us", d.as_micros())
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map(Some).map_err(|e| {
            serde::de::Error::custom(format!("{text:?} is not a duration ({e}); write e.g. 500ms, 2s, 90d"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_in_the_repository_is_valid() {
        let text = include_str!("../../../hearth.example.toml");
        let settings = FileSettings::parse(text).unwrap();
        assert_eq!(settings.listen, Some("0.0.0.0:7878".parse().unwrap()));
        assert_eq!(settings.redis_history_age, Some(Duration::from_secs(90 * 86_400)));
        assert_eq!(FileSettings::parse(&settings.to_toml()).unwrap(), settings, "what check-config prints reads back");
    }

    #[test]
    fn mistakes_name_the_key() {
        let unknown = FileSettings::parse("mesage-rate = 5").unwrap_err();
        assert!(unknown.contains("mesage-rate"), "{unknown}");
        let wrong_type = FileSettings::parse("message-rate = \"fast\"").unwrap_err();
        assert!(wrong_type.contains("message-rate"), "{wrong_type}");
        let bad_duration = FileSettings::parse("room-idle = \"soon\"").unwrap_err();
        assert!(bad_duration.contains("room-idle") && bad_duration.contains("500ms"), "{bad_duration}");
        let bad_address = FileSettings::parse("listen = \"localhost\"").unwrap_err();
        assert!(bad_address.contains("listen"), "{bad_address}");
    }
}
