//! Where `hearth` connects and as whom: the profile and its login, and the
//! account commands (register, login, passwd).

use super::*;
use std::io::BufRead;

use anyhow::{Context, Result};
use hearth_cli::account::{AccountApi, AccountError, Keeper, Tokens};
use hearth_cli::profile::{self, ConfigFile, Profile};
use hearth_cli::{Client, Options};
use hearth_protocol::Codec;

/// What to connect with: flags and environment first, then the profile.
pub(crate) struct Resolved {
    pub(crate) url: String,
    pub(crate) token: Option<String>,
    /// The login behind the token, when it came from a profile holding one.
    pub(crate) keeper: Option<Keeper>,
}

/// The server and token to use: flags and environment first, then the profile.
pub(crate) fn resolve(cli: &Cli) -> Result<Resolved> {
    let path = profile::path();
    let config = match &path {
        Some(path) => ConfigFile::load(path).map_err(|e| usage(format!("{e:#}")))?,
        None => ConfigFile::default(),
    };
    let chosen = config.profile(cli.profile.as_deref()).map_err(|e| usage(e.to_string()))?;
    let url = cli.url.clone().or_else(|| chosen.map(|p| p.url.clone())).unwrap_or_else(|| "ws://127.0.0.1:7878".into());
    let token = cli.token.clone().or_else(|| chosen.map(|p| p.token.clone()));
    let profile_name = cli.profile.clone().or(config.default.clone());
    // A token given on the command line is used as it is.
    let keeper = match (cli.token.is_none(), chosen.and_then(Profile::tokens), path, profile_name) {
        (true, Some(tokens), Some(path), Some(name)) => {
            let api = AccountApi::new(url.clone(), cli.ca_file.clone());
            Some(Keeper::new(api, tokens, Some((path, name))))
        }
        _ => None,
    };
    Ok(Resolved { url, token, keeper })
}

/// A password from the terminal (not echoed), or a line of standard input.
pub(crate) fn read_password(prompt: &str, from_stdin: bool) -> Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("reading the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        rpassword::prompt_password(prompt).context("reading the password (or pass --password-stdin)")?
    };
    if password.is_empty() {
        return Err(usage("no password given"));
    }
    Ok(password)
}

/// Writes a login's tokens as profile `name` (the default if there is none).
pub(crate) fn save_login(url: &str, tokens: &Tokens, name: &str) -> Result<std::path::PathBuf> {
    let path = profile::path().ok_or_else(|| usage("no config directory here; set HEARTH_CONFIG to a file path"))?;
    let mut config = ConfigFile::load(&path)?;
    config.profiles.insert(name.to_string(), Profile::from_login(url, tokens));
    if config.default.is_none() {
        config.default = Some(name.to_string());
    }
    config.save(&path)?;
    Ok(path)
}

/// The account commands: register, log in with a password, change it.
pub(crate) async fn account_command(cli: &Cli, resolved: &Resolved, command: &Command) -> Result<()> {
    let api = AccountApi::new(resolved.url.clone(), cli.ca_file.clone());
    let url = &resolved.url;
    match command {
        Command::Register { account, invite, name, password_stdin } => {
            let password = read_password("choose a password: ", *password_stdin)?;
            if !password_stdin && read_password("the same again: ", false)? != password {
                return Err(usage("the two passwords differ; nothing was registered"));
            }
            let tokens = api.register(account, &password, invite.as_deref()).await.map_err(refused)?;
            let path = save_login(url, &tokens, name)?;
            println!("registered {} at {url}; logged in, saved as profile {name:?} in {}", tokens.user, path.display());
        }
        Command::Login { name, account: Some(account), password_stdin } => {
            let password = read_password(&format!("password for {account}: "), *password_stdin)?;
            let tokens = api.login(account, &password).await.map_err(refused)?;
            let path = save_login(url, &tokens, name)?;
            println!("logged in to {url} as {}; saved as profile {name:?} in {}", tokens.user, path.display());
        }
        Command::Passwd { password_stdin } => {
            let Some(user) = resolved.keeper.as_ref().map(|k| k.user().to_string()) else {
                return Err(usage("this profile holds no account login; log in with `hearth login --name NAME` first"));
            };
            let password = read_password(&format!("current password for {user}: "), *password_stdin)?;
            let new_password = read_password("new password: ", *password_stdin)?;
            if !password_stdin && read_password("the same again: ", false)? != new_password {
                return Err(usage("the two new passwords differ; nothing was changed"));
            }
            let tokens = api.change_password(&user, &password, &new_password).await.map_err(refused)?;
            let name = cli
                .profile
                .clone()
                .or_else(|| profile::path().and_then(|p| ConfigFile::load(&p).ok()).and_then(|c| c.default));
            let path = save_login(url, &tokens, name.as_deref().unwrap_or("default"))?;
            println!("password changed for {user}; other sessions are signed out; saved in {}", path.display());
        }
        _ => unreachable!("only account commands come here"),
    }
    Ok(())
}

/// An account refusal as an error whose exit code says what kind it is.
pub(crate) fn refused(error: AccountError) -> anyhow::Error {
    match &error {
        AccountError::Unreachable(_) => anyhow::Error::new(AccountFailure(Exit::Unreachable, error.to_string())),
        AccountError::Refused { status, .. } => {
            let exit = match status {
                400 => Exit::Usage,
                401 => Exit::Unauthorized,
                403 | 409 => Exit::Forbidden,
                429 | 503 => Exit::Later,
                _ => Exit::Other,
            };
            anyhow::Error::new(AccountFailure(exit, error.to_string()))
        }
    }
}

/// A failed account request, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
#[error("{1}")]
pub(crate) struct AccountFailure(pub(crate) Exit, pub(crate) String);

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Checks `url` and `token` by connecting, then stores them as profile `name`.
pub(crate) async fn login(
    url: &str,
    token: Option<String>,
    codec: Codec,
    ca_file: Option<std::path::PathBuf>,
    name: &str,
) -> Result<()> {
    let token = match token {
        Some(token) => token,
        None => {
            eprintln!("paste your token and press Enter:");
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).context("reading the token")?;
            line.trim().to_string()
        }
    };
    if token.is_empty() {
        return Err(usage("no token given"));
    }
    let mut options = Options::new(url, token.clone(), codec);
    options.ca_file = ca_file;
    let client = Client::connect(options).await.with_context(|| format!("checking the token against {url}"))?;
    let user = client.hello().user.clone();
    let path = profile::path().ok_or_else(|| usage("no config directory here; set HEARTH_CONFIG to a file path"))?;
    let mut config = ConfigFile::load(&path)?;
    config.profiles.insert(name.to_string(), Profile::with_token(url, token));
    if config.default.is_none() {
        config.default = Some(name.to_string());
    }
    config.save(&path)?;
    println!("logged in to {url} as {user}; saved as profile {name:?} in {}", path.display());
    Ok(())
}
