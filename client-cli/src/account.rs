//! Accounts from the client's side: register, log in, refresh and change a
//! password over the server's HTTP endpoints (`/auth/...`, on the same address
//! as the WebSocket), and [`Keeper`], which keeps a long-running client's
//! short-lived access token fresh and the profile up to date.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::profile::{ConfigFile, Profile};

/// What a login, registration, refresh or password change gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub user: String,
    pub token: String,
    /// Unix milliseconds.
    pub expires_at: u64,
    pub refresh_token: String,
    pub refresh_expires_at: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The server said no; `code` is its machine-readable reason
    /// (`wrong_password`, `account_disabled`, `signed_out`, ...).
    #[error("{message}")]
    Refused { status: u16, code: String, message: String },
    #[error("cannot reach the server: {0}")]
    Unreachable(String),
}

impl AccountError {
    /// The server's reason code, when it answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            AccountError::Refused { code, .. } => Some(code),
            AccountError::Unreachable(_) => None,
        }
    }
}

/// The accounts' endpoints of the server at a WebSocket URL.
#[derive(Debug, Clone)]
pub struct AccountApi {
    url: String,
    ca_file: Option<PathBuf>,
}

impl AccountApi {
    /// `url` is the server's WebSocket URL (`ws://` or `wss://`).
    pub fn new(url: impl Into<String>, ca_file: Option<PathBuf>) -> AccountApi {
        AccountApi { url: url.into(), ca_file }
    }

    pub async fn register(&self, name: &str, password: &str, invite: Option<&str>) -> Result<Tokens, AccountError> {
        self.post("/auth/register", json!({ "name": name, "password": password, "invite": invite })).await
    }

    pub async fn login(&self, name: &str, password: &str) -> Result<Tokens, AccountError> {
        self.post("/auth/login", json!({ "name": name, "password": password })).await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, AccountError> {
        self.post("/auth/refresh", json!({ "refresh_token": refresh_token })).await
    }

    pub async fn change_password(
        &self,
        name: &str,
        password: &str,
        new_password: &str,
    ) -> Result<Tokens, AccountError> {
        self.post("/auth/password", json!({ "name": name, "password": password, "new_password": new_password })).await
    }

    /// `GET path` with an access token (an export): the status and the body,
    /// up to 256 MiB.
    pub async fn download(&self, path: &str, token: &str) -> Result<(u16, Vec<u8>), AccountError> {
        let head = format!("GET {path} HTTP/1.1\r\nauthorization: Bearer {token}\r\n");
        tokio::time::timeout(Duration::from_secs(300), self.exchange(&head, "", 256 * 1024 * 1024))
            .await
            .map_err(|_| AccountError::Unreachable("no answer within 300 s".into()))?
    }

    async fn post(&self, path: &str, body: serde_json::Value) -> Result<Tokens, AccountError> {
        let head = format!("POST {path} HTTP/1.1\r\ncontent-type: application/json\r\n");
        let (status, answer) =
            tokio::time::timeout(Duration::from_secs(30), self.exchange(&head, &body.to_string(), 256 * 1024))
                .await
                .map_err(|_| AccountError::Unreachable("no answer within 30 s".into()))??;
        let answer = String::from_utf8_lossy(&answer);
        let json: serde_json::Value = serde_json::from_str(&answer).map_err(|_| AccountError::Refused {
            status,
            code: "not_json".into(),
            message: format!("the server answered {status}: {}", answer.trim()),
        })?;
        if (200..300).contains(&status) {
            return serde_json::from_value(json).map_err(|e| AccountError::Unreachable(format!("odd answer: {e}")));
        }
        Err(AccountError::Refused {
            status,
            code: json["error"].as_str().unwrap_or("unknown").to_string(),
            message: json["message"].as_str().unwrap_or("refused").to_string(),
        })
    }

    /// One HTTP/1.1 request (`head`: its request line and headers, each
    /// ending in CRLF), `connection: close`, over TCP or TLS as the URL
    /// says; the answer's status and up to `max` bytes of it.
    async fn exchange(&self, head: &str, body: &str, max: u64) -> Result<(u16, Vec<u8>), AccountError> {
        use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
        let unreachable = |e: std::io::Error| AccountError::Unreachable(e.to_string());
        let (tls, rest) = match self.url.split_once("://") {
            Some(("wss" | "https", rest)) => (true, rest),
            Some(("ws" | "http", rest)) => (false, rest),
            _ => return Err(AccountError::Unreachable(format!("{} is not a ws:// or wss:// URL", self.url))),
        };
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => v6.split_once(']').map_or((v6, ""), |(host, rest)| (host, rest.trim_start_matches(':'))),
            None => authority.rsplit_once(':').unwrap_or((authority, "")),
        };
        let port = if port.is_empty() {
            if tls { 443 } else { 80 }
        } else {
            port.parse::<u16>().map_err(|_| AccountError::Unreachable(format!("bad port in {}", self.url)))?
        };
        let request =
            format!("{head}host: {authority}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
        async fn talk(
            mut io: impl AsyncRead + AsyncWrite + Unpin,
            request: &str,
            max: u64,
        ) -> std::io::Result<Vec<u8>> {
            io.write_all(request.as_bytes()).await?;
            let mut answer = Vec::new();
            io.take(max).read_to_end(&mut answer).await?;
            Ok(answer)
        }
        let tcp = tokio::net::TcpStream::connect((host, port)).await.map_err(unreachable)?;
        let answer = if tls {
            let tokio_tungstenite::Connector::Rustls(config) =
                crate::tls_connector(self.ca_file.as_deref()).map_err(|e| AccountError::Unreachable(e.to_string()))?
            else {
                unreachable!("tls_connector makes rustls connectors");
            };
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| AccountError::Unreachable(format!("{host}: {e}")))?;
            let stream = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.map_err(unreachable)?;
            talk(stream, &request, max).await.map_err(unreachable)?
        } else {
            talk(tcp, &request, max).await.map_err(unreachable)?
        };
        let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(answer.len());
        let head = String::from_utf8_lossy(&answer[..split]);
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        Ok((status, answer.get(split + 4..).unwrap_or_default().to_vec()))
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Keeps a login's access token fresh: says when to refresh (a minute before
/// it expires, or at three quarters of its life when that is shorter),
/// refreshes, and writes the new pair to the profile it came from. Another
/// `hearth` may have refreshed (or changed the password) meanwhile: the
/// profile's newer refresh token is then used.
#[derive(Debug, Clone)]
pub struct Keeper {
    api: AccountApi,
    tokens: Tokens,
    /// The config file and profile the tokens came from.
    profile: Option<(PathBuf, String)>,
}

impl Keeper {
    pub fn new(api: AccountApi, tokens: Tokens, profile: Option<(PathBuf, String)>) -> Keeper {
        Keeper { api, tokens, profile }
    }

    pub fn token(&self) -> &str {
        &self.tokens.token
    }

    /// The account's name.
    pub fn user(&self) -> &str {
        &self.tokens.user
    }

    /// How long until the token should be refreshed (zero: now).
    pub fn refresh_in(&self) -> Duration {
        let left = self.tokens.expires_at.saturating_sub(now_ms());
        let margin = (left / 4).min(60_000);
        Duration::from_millis(left.saturating_sub(margin))
    }

    /// Gets a new pair and saves it; the new access token.
    pub async fn refresh(&mut self) -> Result<String, AccountError> {
        if let Some((token, refresh, expires_at)) = self.newer_stored() {
            self.tokens.refresh_token = refresh;
            if expires_at > now_ms() + 60_000 {
                // Another client refreshed already: take its token.
                self.tokens.token = token;
                self.tokens.expires_at = expires_at;
                return Ok(self.tokens.token.clone());
            }
        }
        self.tokens = self.api.refresh(&self.tokens.refresh_token).await?;
        if let Some((path, name)) = &self.profile
            && let Ok(mut config) = ConfigFile::load(path)
            && let Some(profile) = config.profiles.get_mut(name)
        {
            profile.store(&self.tokens);
            if let Err(error) = config.save(path) {
                tracing::warn!(%error, "cannot save the refreshed token");
            }
        }
        Ok(self.tokens.token.clone())
    }

    /// After the server signed this login out (a password change): takes the
    /// login another `hearth` saved to the profile since (`hearth passwd`,
    /// `hearth login`), if there is one for the same account; whether it did.
    pub fn take_newer_login(&mut self) -> bool {
        let Some((token, refresh, expires_at)) = self.newer_stored() else { return false };
        self.tokens.token = token;
        self.tokens.refresh_token = refresh;
        self.tokens.expires_at = expires_at;
        true
    }

    /// The profile's login, when another client saved a different one for
    /// the same account: its token, refresh token and expiry.
    fn newer_stored(&self) -> Option<(String, String, u64)> {
        let stored = self.stored().filter(|p| p.token != self.tokens.token)?;
        if stored.user.as_deref().is_some_and(|u| u != self.tokens.user) {
            return None;
        }
        Some((stored.token, stored.refresh_token?, stored.expires_at?))
    }

    fn stored(&self) -> Option<Profile> {
        let (path, name) = self.profile.as_ref()?;
        ConfigFile::load(path).ok()?.profiles.get(name).cloned()
    }
}

/// Whether the server signed this login out (4001: the password was changed)
/// and another `hearth` saves a newer login of the account to the profile
/// within a few seconds (`hearth passwd` saves it once the server answered,
/// about when this connection was closed); `keeper` then holds it, and
/// reconnecting with it resumes the session.
pub async fn signed_out_for_a_newer_login(close: &crate::client::CloseInfo, keeper: Option<&mut Keeper>) -> bool {
    let Some(keeper) = keeper else { return false };
    if close.hearth_code() != Some(hearth_protocol::CloseCode::Unauthorized) {
        return false;
    }
    let deadline = tokio::time::Instant::now() + NEWER_LOGIN_WAIT;
    loop {
        if keeper.take_newer_login() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How long a signed-out client looks for a newer login in its profile.
const NEWER_LOGIN_WAIT: Duration = Duration::from_secs(3);
