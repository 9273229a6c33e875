//! Where `hearth` finds its server and token when no flag or environment
//! variable says: named profiles in a TOML file in the platform's config
//! directory (`~/.config/hearth/config.toml` on Linux; `HEARTH_CONFIG` names
//! another file). `hearth login` writes it, readable by its owner only, since
//! it holds tokens.
//!
//! ```toml
//! default = "camera-club"
//!
//! [profiles.camera-club]
//! url = "wss://chat.example.org"
//! token = "eyJ..."
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The profile used when none is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub url: String,
    pub token: String,
    /// From an account's login: whose it is, when the token expires (Unix
    /// ms), and the refresh token that buys the next one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl Profile {
    /// A profile for a token the operator minted (nothing to refresh).
    pub fn with_token(url: impl Into<String>, token: impl Into<String>) -> Profile {
        Profile { url: url.into(), token: token.into(), user: None, expires_at: None, refresh_token: None }
    }

    /// A profile for a login's tokens.
    pub fn from_login(url: impl Into<String>, tokens: &crate::account::Tokens) -> Profile {
        let mut profile = Profile::with_token(url, "");
        profile.store(tokens);
        profile
    }

    /// Takes a login's (or a refresh's) tokens.
    pub fn store(&mut self, tokens: &crate::account::Tokens) {
        self.token.clone_from(&tokens.token);
        self.user = Some(tokens.user.clone());
        self.expires_at = Some(tokens.expires_at);
        self.refresh_token = Some(tokens.refresh_token.clone());
    }

    /// The login's tokens, when this profile holds one.
    pub fn tokens(&self) -> Option<crate::account::Tokens> {
        Some(crate::account::Tokens {
            user: self.user.clone()?,
            token: self.token.clone(),
            expires_at: self.expires_at?,
            refresh_token: self.refresh_token.clone()?,
            refresh_expires_at: 0,
        })
    }
}

/// The config file's path: `HEARTH_CONFIG`, else the platform's config directory.
pub fn path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("HEARTH_CONFIG") {
        return Some(PathBuf::from(path));
    }
    dirs::config_dir().map(|dir| dir.join("hearth").join("config.toml"))
}

impl ConfigFile {
    /// The file at `path`; an empty configuration when there is none yet.
    pub fn load(path: &Path) -> Result<ConfigFile> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                toml::from_str(&text).with_context(|| format!("{} is not a valid hearth config", path.display()))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(ConfigFile::default()),
            Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// The profile `name`, or the default one when no name is given.
    pub fn profile(&self, name: Option<&str>) -> Result<Option<&Profile>> {
        match name.or(self.default.as_deref()) {
            None => Ok(None),
            Some(name) => match self.profiles.get(name) {
                Some(profile) => Ok(Some(profile)),
                None => anyhow::bail!(
                    "no profile named {name:?}; known: {}; add it with `hearth login --profile {name} --url URL`",
                    if self.profiles.is_empty() {
                        "none".to_string()
                    } else {
                        self.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
                    }
                ),
            },
        }
    }

    /// Writes the file (and its directory), readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let text = toml::to_string_pretty(self).context("writing the config")?;
        let temporary = path.with_extension("toml.tmp");
        write_private(&temporary, &text).with_context(|| format!("writing {}", temporary.display()))?;
        std::fs::rename(&temporary, path).with_context(|| format!("replacing {}", path.display()))
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_round_trip_and_the_default_is_used_when_none_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("config.toml");
        assert!(ConfigFile::load(&path).unwrap().profile(None).unwrap().is_none());
        let mut config = ConfigFile::default();
        let club = Profile::with_token("ws://127.0.0.1:7878", "t1");
        config.profiles.insert("club".into(), club.clone());
        config.default = Some("club".into());
        config.save(&path).unwrap();
        let loaded = ConfigFile::load(&path).unwrap();
        assert_eq!(loaded.profile(None).unwrap(), Some(&club));
        assert!(loaded.profile(Some("other")).unwrap_err().to_string().contains("hearth login --profile other"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "tokens are readable by their owner only");
        }
        std::fs::write(&path, "colour = \"blue\"\n").unwrap();
        assert!(ConfigFile::load(&path).is_err(), "unknown keys are refused");
    }
}
