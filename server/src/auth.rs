//! Signed tokens: compact JWTs with HMAC-SHA256 (`alg: HS256`), holding the user in
//! `sub` and the expiry in `exp` (Unix seconds). Any JWT library can mint them with
//! the server's secret. Tokens an account's login gives also carry `gen`, the
//! account's generation (a password change or a disable bumps it, which ends
//! every token minted before), and refresh and operator tokens say so in
//! `kind`, so neither opens a chat connection. This module only signs and
//! verifies; it knows nothing of rooms, roles or accounts.

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hearth_protocol::UserId;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Name of the file in the data directory that holds a generated secret.
pub const SECRET_FILE: &str = "token.secret";
/// Shortest secret accepted, in bytes: HS256 wants at least 256 bits.
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error(
        "no token: pass it as `Authorization: Bearer TOKEN` or `?token=TOKEN` (mint one with `hearth-server token NAME`)"
    )]
    Missing,
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("token signature does not match this server's secret; mint a new one with `hearth-server token NAME`")]
    BadSignature,
    #[error("token expired {0} seconds ago; mint a new one")]
    Expired(u64),
    #[error("token subject is not a valid user name: {0}")]
    BadSubject(String),
    #[error("this is a {found:?} token where a {expected:?} token is needed")]
    WrongKind { expected: TokenKind, found: TokenKind },
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("HEARTH_TOKEN_SECRET must be at least {MIN_SECRET_BYTES} bytes, got {0}")]
    TooShort(usize),
    #[error("cannot read or create the token secret at {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("the operating system's random source failed: {0}")]
    Random(String),
}

/// The HMAC key tokens are signed with. Never printed.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Secret, SecretError> {
        let bytes = bytes.into();
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort(bytes.len()));
        }
        Ok(Secret(bytes))
    }

    /// A fresh random secret, hex-encoded so it can live in an environment variable.
    pub fn generate() -> Result<Secret, SecretError> {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(|e| SecretError::Random(e.to_string()))?;
        Ok(Secret(hex(&raw).into_bytes()))
    }

    /// Reads `dir/token.secret`, creating it (mode 0600) on first start.
    pub fn load_or_create(dir: &Path) -> Result<Secret, SecretError> {
        let path = dir.join(SECRET_FILE);
        let io = |source| SecretError::Io { path: path.display().to_string(), source };
        match std::fs::read(&path) {
            Ok(bytes) => Secret::new(bytes.trim_ascii().to_vec()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secret = Secret::generate()?;
                std::fs::create_dir_all(dir).map_err(io)?;
                write_private(&path, &secret.0).map_err(io)?;
                Ok(secret)
            }
            Err(e) => Err(io(e)),
        }
    }
}

#[cfg(unix)]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Serialize, Deserialize)]
struct Header<'a> {
    alg: &'a str,
    #[serde(default)]
    typ: Option<&'a str>,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    generation: Option<u64>,
    #[serde(default, skip_serializing_if = "TokenKind::is_access")]
    kind: TokenKind,
    /// A ticket's own random id: no two tickets are alike, so each can be
    /// spent once (`jti`, RFC 7519).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
}

/// What a token is for. Only access tokens open connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Opens a chat connection (no `kind` claim: every operator-minted token).
    #[default]
    Access,
    /// Buys new tokens at `POST /auth/refresh`; nothing else.
    Refresh,
    /// The operator's commands at `/admin/...`.
    Admin,
    /// Opens one chat connection, as `?ticket=` only, once, within seconds
    /// (`POST /ticket`): what a browser puts in a WebSocket URL.
    Ticket,
}

impl TokenKind {
    fn is_access(&self) -> bool {
        *self == TokenKind::Access
    }
}

const HEADER_HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// Seconds since the Unix epoch, as token expiries count them.
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn mac(secret: &Secret) -> HmacSha256 {
    // HMAC accepts keys of any length.
    HmacSha256::new_from_slice(&secret.0).expect("HMAC takes any key length")
}

/// Mints an access token for `user`, valid for `ttl`.
pub fn mint(secret: &Secret, user: &UserId, ttl: Duration) -> String {
    mint_with(secret, user, ttl, TokenKind::Access, None)
}

/// Mints a token of `kind`, tied to an account's `generation` when given.
pub fn mint_with(secret: &Secret, user: &UserId, ttl: Duration, kind: TokenKind, generation: Option<u64>) -> String {
    mint_until(secret, user, now_secs().saturating_add(ttl.as_secs()), kind, generation)
}

/// Mints a token of `kind` that expires at `exp` (Unix seconds).
pub fn mint_until(secret: &Secret, user: &UserId, exp: u64, kind: TokenKind, generation: Option<u64>) -> String {
    sign(secret, &Claims { sub: user.to_string(), exp, generation, kind, jti: None })
}

/// Mints a one-use ticket for `user` that expires at `exp` (Unix seconds),
/// tied to `generation` like the token it was bought with. Returns it and its
/// id.
pub fn mint_ticket(
    secret: &Secret,
    user: &UserId,
    exp: u64,
    generation: Option<u64>,
) -> Result<(String, String), SecretError> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| SecretError::Random(e.to_string()))?;
    let id = hex(&raw);
    let claims = Claims { sub: user.to_string(), exp, generation, kind: TokenKind::Ticket, jti: Some(id.clone()) };
    Ok((sign(secret, &claims), id))
}

fn sign(secret: &Secret, claims: &Claims) -> String {
    let claims = serde_json::to_vec(claims).expect("claims always serialise");
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(HEADER_HS256), URL_SAFE_NO_PAD.encode(claims));
    let mut mac = mac(secret);
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// A verified token: whose it is, and when it stops being valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub user: UserId,
    /// Seconds since the Unix epoch.
    pub expires: u64,
    /// The account generation it was minted in (tokens from a login).
    pub generation: Option<u64>,
    /// A ticket's id (`jti`), by which it is spent.
    pub id: Option<String>,
}

impl Verified {
    /// When the token expires, as the protocol tells times.
    pub fn expires_at(&self) -> hearth_protocol::Millis {
        hearth_protocol::Millis(self.expires.saturating_mul(1000))
    }
}

/// Verifies a token and returns its user. Tokens over 4 KiB are refused unread.
pub fn verify(secret: &Secret, token: &str) -> Result<UserId, AuthError> {
    verify_token(secret, token).map(|v| v.user)
}

/// Verifies an access token and returns its user and expiry.
pub fn verify_token(secret: &Secret, token: &str) -> Result<Verified, AuthError> {
    verify_kind(secret, token, TokenKind::Access)
}

/// Verifies a token of `kind`: a refresh token cannot open a connection, and an
/// access token cannot refresh.
pub fn verify_kind(secret: &Secret, token: &str, kind: TokenKind) -> Result<Verified, AuthError> {
    verify_kind_at(secret, token, kind, now_secs())
}

/// [`verify_kind`] at `now` (Unix seconds): the server's own clock, which
/// tests move instead of waiting for a token to expire.
pub fn verify_kind_at(secret: &Secret, token: &str, kind: TokenKind, now: u64) -> Result<Verified, AuthError> {
    if token.len() > 4096 {
        return Err(AuthError::Malformed("longer than 4096 bytes"));
    }
    let token = token.trim();
    let mut parts = token.splitn(3, '.');
    let (Some(header), Some(claims), Some(signature)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(AuthError::Malformed("expected three dot-separated parts"));
    };
    // What was signed: `header.claims`, the token up to its last part.
    let signed = &token.as_bytes()[..header.len() + 1 + claims.len()];
    let header_bytes = URL_SAFE_NO_PAD.decode(header).map_err(|_| AuthError::Malformed("header is not base64url"))?;
    let header: Header<'_> =
        serde_json::from_slice(&header_bytes).map_err(|_| AuthError::Malformed("header is not JSON"))?;
    // Only HS256: accepting `none` or another alg is the classic JWT forgery.
    if header.alg != "HS256" {
        return Err(AuthError::Malformed("alg must be HS256"));
    }
    let signature_bytes =
        URL_SAFE_NO_PAD.decode(signature).map_err(|_| AuthError::Malformed("signature is not base64url"))?;
    let mut mac = mac(secret);
    mac.update(signed);
    mac.verify_slice(&signature_bytes).map_err(|_| AuthError::BadSignature)?;
    let claims = URL_SAFE_NO_PAD.decode(claims).map_err(|_| AuthError::Malformed("claims are not base64url"))?;
    let claims: Claims =
        serde_json::from_slice(&claims).map_err(|_| AuthError::Malformed("claims need \"sub\" and numeric \"exp\""))?;
    if claims.kind != kind {
        return Err(AuthError::WrongKind { expected: kind, found: claims.kind });
    }
    if claims.exp <= now {
        return Err(AuthError::Expired(now - claims.exp));
    }
    let user = UserId::new(claims.sub).map_err(AuthError::BadSubject)?;
    Ok(Verified { user, expires: claims.exp, generation: claims.generation, id: claims.jti })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::new(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap()
    }

    #[test]
    fn minted_tokens_verify() {
        let ada = UserId::new("ada").unwrap();
        let token = mint(&secret(), &ada, Duration::from_secs(60));
        assert_eq!(verify(&secret(), &token), Ok(ada));
    }

    #[test]
    fn forged_and_expired_tokens_fail() {
        let ada = UserId::new("ada").unwrap();
        let token = mint(&secret(), &ada, Duration::from_secs(60));
        let other = Secret::new(b"another-secret-another-secret-xx".to_vec()).unwrap();
        assert_eq!(verify(&other, &token), Err(AuthError::BadSignature));
        // Change the subject but keep the signature.
        let parts: Vec<&str> = token.split('.').collect();
        let forged_claims = URL_SAFE_NO_PAD.encode(br#"{"sub":"root","exp":99999999999}"#);
        let forged = format!("{}.{}.{}", parts[0], forged_claims, parts[2]);
        assert_eq!(verify(&secret(), &forged), Err(AuthError::BadSignature));
        let expired = mint(&secret(), &ada, Duration::ZERO);
        assert!(matches!(verify(&secret(), &expired), Err(AuthError::Expired(_))));
        assert!(matches!(verify(&secret(), "x.y"), Err(AuthError::Malformed(_))));
        let none_alg = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), parts[1]);
        assert!(matches!(verify(&secret(), &none_alg), Err(AuthError::Malformed(_))));
    }

    #[test]
    fn kinds_do_not_mix() {
        let ada = UserId::new("ada").unwrap();
        let refresh = mint_with(&secret(), &ada, Duration::from_secs(60), TokenKind::Refresh, Some(3));
        assert!(matches!(verify_token(&secret(), &refresh), Err(AuthError::WrongKind { .. })));
        let verified = verify_kind(&secret(), &refresh, TokenKind::Refresh).unwrap();
        assert_eq!(verified.generation, Some(3));
        let access = mint(&secret(), &ada, Duration::from_secs(60));
        assert!(matches!(verify_kind(&secret(), &access, TokenKind::Admin), Err(AuthError::WrongKind { .. })));
    }

    #[test]
    fn tickets_are_unique_and_open_nothing_as_tokens() {
        let ada = UserId::new("ada").unwrap();
        let (one, one_id) = mint_ticket(&secret(), &ada, now_secs() + 30, None).unwrap();
        let (two, two_id) = mint_ticket(&secret(), &ada, now_secs() + 30, None).unwrap();
        assert_ne!(one, two, "two tickets in the same second differ");
        assert_ne!(one_id, two_id);
        assert!(matches!(verify_token(&secret(), &one), Err(AuthError::WrongKind { .. })));
        assert_eq!(verify_kind(&secret(), &one, TokenKind::Ticket).unwrap().id, Some(one_id));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(matches!(Secret::new(b"short".to_vec()), Err(SecretError::TooShort(5))));
    }
}
