//! Notifications for members who are away, with no vendor account: Web Push
//! (RFC 8030) to the push service each browser names, the payload encrypted
//! for the device (RFC 8291, `aes128gcm`) and the server identified by its
//! own key (VAPID, RFC 8292), through `web-push-native`.
//!
//! The session that had a message ordered hands a [`Notice`] to [`Push`]
//! (a bounded queue: a push past it is dropped and counted, the message
//! never waits). One worker decides who hears of it — a member with a
//! device, who does not block the author, whose level in the room allows
//! it, with no connection receiving the room (the room's presence, on every
//! node), not told of the room in the last few minutes — and sends, a few at a time, with bounded retries;
//! a device its push service says is gone (404, 410) is forgotten. Only the
//! node that had the event ordered hands it over, so in a cluster each
//! notification is sent once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hearth_protocol::ops::PushLevel;
use hearth_protocol::{Millis, RoomId, Seq, UserId};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use web_push_native::jwt_simple::algorithms::{ECDSAP256PublicKeyLike, ES256KeyPair};
use web_push_native::{Auth, WebPushBuilder};

use crate::broker::Broker;
use crate::reads::{Device, ReadStore};

/// How a member is concerned by a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// They are named in it, or it replies to them.
    Mention,
    /// It is in a direct conversation of theirs.
    Direct,
    /// It waits in a queue of theirs (a join request, a held post).
    Queue,
    /// It is in a room whose every message they asked to hear of.
    Message,
}

impl Why {
    fn as_str(self) -> &'static str {
        match self {
            Why::Mention => "mention",
            Why::Direct => "direct",
            Why::Queue => "queue",
            Why::Message => "message",
        }
    }
}

/// An event some members may need telling of.
#[derive(Debug, Clone)]
pub struct Notice {
    pub room: RoomId,
    pub seq: Seq,
    pub ts: Millis,
    pub from: UserId,
    /// The message's text, for devices whose member chose to see it.
    pub text: Option<String>,
    /// The members concerned and why; the room's `everything` listeners
    /// are added for a message (`message: true`).
    pub users: Vec<(UserId, Why)>,
    pub message: bool,
    /// In a direct conversation (whose default level is `everything`).
    pub direct: bool,
}

/// The operator's settings for notifications.
#[derive(Debug, Clone)]
pub struct PushConfig {
    /// Who runs this server, for push services (`mailto:` or `https:`).
    pub contact: String,
    /// Hosts a push endpoint may be on (a name, or a name's suffix after a
    /// dot): the server posts only to known push services.
    pub hosts: Vec<String>,
    /// Endpoints may be `http://` (a test's push service on loopback).
    pub plain_http: bool,
    /// At most one notification per member and room in this time.
    pub coalesce: Duration,
    /// Notices waiting for the worker; past it they are dropped and counted.
    pub queue: usize,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            contact: "mailto:hearth@localhost".to_string(),
            hosts: ["fcm.googleapis.com", "push.services.mozilla.com", "notify.windows.com", "push.apple.com"]
                .map(String::from)
                .to_vec(),
            plain_http: false,
            coalesce: Duration::from_secs(180),
            queue: 10_000,
        }
    }
}

/// Most bytes of a notification's payload before encryption: push services
/// take 4 KiB after it.
pub const MAX_PAYLOAD: usize = 3 * 1024;
/// Attempts per notification and device (the first and two retries).
const ATTEMPTS: u32 = 3;
/// Sends in flight at once.
const SENDING: usize = 16;
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a room's `everything` listeners, once read, are taken as they
/// were: a level set to `everything` applies within this.
const WATCHERS_KEPT: Duration = Duration::from_secs(5);

/// The server's VAPID key pair, kept with the members' push settings
/// (`ReadStore::push_key`) so subscriptions outlive a restart and every node
/// of a cluster signs alike (a new key would void them all).
pub struct Keys {
    pair: ES256KeyPair,
    public: String,
}

impl Keys {
    pub fn from_secret(secret: &[u8]) -> Result<Keys, String> {
        let pair = ES256KeyPair::from_bytes(secret).map_err(|e| format!("the push key is not valid: {e}"))?;
        let public = URL_SAFE_NO_PAD.encode(pair.public_key().public_key().to_bytes_uncompressed());
        Ok(Keys { pair, public })
    }

    pub fn generate() -> Keys {
        let secret = ES256KeyPair::generate().to_bytes();
        Keys::from_secret(&secret).expect("a fresh key is valid")
    }

    /// The secret, to keep.
    pub fn secret(&self) -> Vec<u8> {
        self.pair.to_bytes()
    }

    /// The public key, base64url: a browser's `applicationServerKey`.
    pub fn public(&self) -> &str {
        &self.public
    }
}

/// Counts of what became of notifications, for `/metrics`.
fn count(what: &'static str) {
    metrics::counter!("hearth_push_total", "outcome" => what).increment(1);
}

pub struct Push {
    queue: mpsc::Sender<Notice>,
    keys: Arc<Keys>,
    config: PushConfig,
    /// The worker, awaited once stopped (it holds the broker).
    worker: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Push {
    /// Starts the worker, which stops when `stop` fires.
    pub fn start(
        keys: Keys,
        config: PushConfig,
        reads: Arc<dyn ReadStore>,
        broker: Arc<dyn Broker>,
        loaded: Arc<crate::rooms::Loaded>,
        stop: CancellationToken,
    ) -> Arc<Push> {
        let (queue, notices) = mpsc::channel(config.queue.max(1));
        let keys = Arc::new(keys);
        let worker = Worker {
            keys: keys.clone(),
            config: config.clone(),
            reads,
            broker,
            loaded,
            told: HashMap::new(),
            watchers: HashMap::new(),
            sending: Arc::new(Semaphore::new(SENDING)),
        };
        let worker = std::sync::Mutex::new(Some(tokio::spawn(worker.run(notices, stop))));
        Arc::new(Push { queue, keys, config, worker })
    }

    /// Resolves once the worker has stopped (after `stop` fired).
    pub async fn stopped(&self) {
        let worker = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(worker) = worker {
            let _ = worker.await;
        }
    }

    pub fn public_key(&self) -> &str {
        self.keys.public()
    }

    /// Hands a notice to the worker; a full queue drops it (counted).
    pub fn notify(&self, notice: Notice) {
        if notice.users.is_empty() && !notice.message {
            return;
        }
        if self.queue.try_send(notice).is_err() {
            count("dropped_queue_full");
        }
    }

    /// Why `endpoint` is not one this server will post to, if it is not.
    pub fn refuse_endpoint(&self, endpoint: &str) -> Option<String> {
        let uri: http::Uri = match endpoint.parse() {
            Ok(uri) => uri,
            Err(_) => return Some("endpoint is not a URL".to_string()),
        };
        let allowed = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => self.config.plain_http,
            _ => false,
        };
        if !allowed {
            return Some("endpoint must be an https:// URL of a push service".to_string());
        }
        let host = uri.host().unwrap_or_default().to_ascii_lowercase();
        let known = self.config.hosts.iter().any(|h| host == *h || host.ends_with(&format!(".{h}")));
        (!known).then(|| format!("{host} is not a push service this server sends to (its operator lists them)"))
    }
}

struct Worker {
    keys: Arc<Keys>,
    config: PushConfig,
    reads: Arc<dyn ReadStore>,
    broker: Arc<dyn Broker>,
    /// This node's rooms, whose receivers are online here.
    loaded: Arc<crate::rooms::Loaded>,
    /// When each member was last told of each room.
    told: HashMap<(UserId, RoomId), Instant>,
    /// Who hears every message of a room, as read lately: a read per
    /// message would be a Redis command per message in a cluster.
    watchers: HashMap<RoomId, (Instant, Vec<UserId>)>,
    sending: Arc<Semaphore>,
}

impl Worker {
    async fn run(mut self, mut notices: mpsc::Receiver<Notice>, stop: CancellationToken) {
        loop {
            let notice = tokio::select! {
                () = stop.cancelled() => return,
                notice = notices.recv() => match notice {
                    Some(notice) => notice,
                    None => return,
                },
            };
            if let Err(error) = self.handle(notice).await {
                tracing::warn!(%error, "a notification could not be decided");
            }
        }
    }

    async fn watchers(&mut self, room: &RoomId) -> Result<Vec<UserId>, crate::reads::ReadsUnavailable> {
        let now = Instant::now();
        if let Some((at, users)) = self.watchers.get(room)
            && now.duration_since(*at) < WATCHERS_KEPT
        {
            return Ok(users.clone());
        }
        if self.watchers.len() > 10_000 {
            self.watchers.retain(|_, (at, _)| now.duration_since(*at) < WATCHERS_KEPT);
        }
        let users = self.reads.push_watchers(room.clone()).await?;
        self.watchers.insert(room.clone(), (now, users.clone()));
        Ok(users)
    }

    async fn handle(&mut self, notice: Notice) -> Result<(), crate::reads::ReadsUnavailable> {
        let mut whom = notice.users.clone();
        if notice.message {
            let mut named: HashSet<UserId> = whom.iter().map(|(u, _)| u.clone()).collect();
            for user in self.watchers(&notice.room).await? {
                if named.insert(user.clone()) {
                    whom.push((user, Why::Message));
                }
            }
        }
        whom.retain(|(user, _)| *user != notice.from);
        if whom.is_empty() {
            return Ok(());
        }
        let mut present: Option<HashSet<UserId>> = None;
        let now = Instant::now();
        let coalesce = self.config.coalesce;
        self.told.retain(|_, at| now.duration_since(*at) < coalesce);
        for (user, why) in whom {
            let settings = self.reads.push_settings(user.clone()).await?;
            if settings.devices.is_empty() {
                continue;
            }
            // Nothing from someone they block reaches their devices.
            if self.reads.blocks(user.clone()).await?.contains(&notice.from) {
                continue;
            }
            let default = if notice.direct { PushLevel::Everything } else { PushLevel::Mentions };
            let allowed = match settings.levels.get(&notice.room).copied().unwrap_or(default) {
                PushLevel::Everything => true,
                PushLevel::Mentions => why != Why::Message,
                PushLevel::Nothing => false,
            };
            if !allowed {
                continue;
            }
            if present.is_none() {
                // Receiving the room on any connection, on any node: away is
                // having none.
                let mut online: HashSet<UserId> =
                    self.broker.presence(notice.room.clone()).await.unwrap_or_default().into_iter().collect();
                if let Some(room) = self.loaded.get(&notice.room) {
                    online.extend(room.online_here());
                }
                present = Some(online);
            }
            if present.as_ref().is_some_and(|p| p.contains(&user)) {
                continue;
            }
            let key = (user.clone(), notice.room.clone());
            if self.told.contains_key(&key) {
                count("coalesced");
                continue;
            }
            self.told.insert(key, now);
            for device in settings.devices {
                let payload = payload(&notice, why, device.text);
                let sending = self.sending.clone().acquire_owned().await.expect("never closed");
                let (keys, contact, reads, user) =
                    (self.keys.clone(), self.config.contact.clone(), self.reads.clone(), user.clone());
                tokio::spawn(async move {
                    deliver(&keys, &contact, &reads, &user, device, payload).await;
                    drop(sending);
                });
            }
        }
        Ok(())
    }
}

/// What the device is told, as JSON, within `MAX_PAYLOAD`.
fn payload(notice: &Notice, why: Why, with_text: bool) -> Vec<u8> {
    let mut body = serde_json::json!({
        "room": notice.room,
        "seq": notice.seq,
        "ts": notice.ts,
        "from": notice.from,
        "kind": why.as_str(),
    });
    if with_text && let Some(text) = &notice.text {
        let mut cut = text.len().min(MAX_PAYLOAD - 512);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        body["text"] = serde_json::Value::String(text[..cut].to_string());
    }
    let mut bytes = serde_json::to_vec(&body).expect("JSON of strings and numbers");
    if bytes.len() > MAX_PAYLOAD {
        // Escapes grew the text past the bound: without it.
        body.as_object_mut().expect("an object").remove("text");
        bytes = serde_json::to_vec(&body).expect("JSON of strings and numbers");
    }
    bytes
}

/// Sends one notification to one device, retrying a few times; forgets the
/// device if its push service says it is gone.
async fn deliver(keys: &Keys, contact: &str, reads: &Arc<dyn ReadStore>, user: &UserId, device: Device, body: Vec<u8>) {
    let request = match request(keys, contact, &device, body) {
        Ok(request) => request,
        Err(error) => {
            tracing::warn!(%user, %error, "a push subscription is not usable; forgetting it");
            forget(reads, user, &device.endpoint).await;
            return;
        }
    };
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(u64::from(4u32.pow(attempt - 1)))).await;
        }
        match tokio::time::timeout(SEND_TIMEOUT, post(request.clone())).await {
            Ok(Ok(status)) if status.is_success() => {
                count("sent");
                return;
            }
            Ok(Ok(status)) if status == 404 || status == 410 => {
                count("gone");
                forget(reads, user, &device.endpoint).await;
                return;
            }
            // Worth another try: too many, or the service's trouble.
            Ok(Ok(status)) if status == 429 || status.is_server_error() => {}
            Ok(Ok(status)) => {
                tracing::warn!(%user, %status, "a push service refused a notification");
                count("refused");
                return;
            }
            Ok(Err(error)) => tracing::debug!(%user, %error, "a push service could not be reached"),
            Err(_) => tracing::debug!(%user, "a push service did not answer in time"),
        }
    }
    count("failed");
}

fn request(keys: &Keys, contact: &str, device: &Device, body: Vec<u8>) -> Result<http::Request<Vec<u8>>, String> {
    let endpoint: http::Uri = device.endpoint.parse().map_err(|_| "endpoint is not a URL".to_string())?;
    let p256dh = URL_SAFE_NO_PAD.decode(device.p256dh.trim_end_matches('=')).map_err(|e| e.to_string())?;
    let public = web_push_native::p256::PublicKey::from_sec1_bytes(&p256dh).map_err(|e| e.to_string())?;
    let auth = URL_SAFE_NO_PAD.decode(device.auth.trim_end_matches('=')).map_err(|e| e.to_string())?;
    if auth.len() != 16 {
        return Err("auth is not 16 bytes".to_string());
    }
    let valid = Duration::from_secs(12 * 3600);
    let vapid = vapid(keys, contact, &endpoint, valid)?;
    let mut request = WebPushBuilder::new(endpoint, public, Auth::clone_from_slice(&auth))
        .with_valid_duration(valid)
        .build(body)
        .map_err(|e| e.to_string())?;
    request.headers_mut().insert(http::header::AUTHORIZATION, vapid.parse().map_err(|_| "bad VAPID header")?);
    Ok(request)
}

/// The VAPID `Authorization` (RFC 8292): a JWT for the push resource's
/// origin, signed with the server's key, and that key. Made here rather than
/// by `web-push-native`, whose audience leaves out a port that is not the
/// scheme's default (an origin keeps it, RFC 6454).
fn vapid(keys: &Keys, contact: &str, endpoint: &http::Uri, valid: Duration) -> Result<String, String> {
    use web_push_native::jwt_simple::algorithms::ECDSAP256KeyPairLike;
    use web_push_native::jwt_simple::claims::Claims;
    let scheme = endpoint.scheme_str().ok_or("endpoint has no scheme")?;
    let host = endpoint.host().ok_or("endpoint has no host")?;
    let default_port = if scheme == "https" { 443 } else { 80 };
    let origin = match endpoint.port_u16() {
        Some(port) if port != default_port => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    };
    let claims = Claims::create(valid.into()).with_audience(origin).with_subject(contact);
    let token = keys.pair.sign(claims).map_err(|e| e.to_string())?;
    Ok(format!("vapid t={token}, k={}", keys.public))
}

/// Whether a browser's keys make a usable subscription.
pub fn check_keys(p256dh: &str, auth: &str) -> Result<(), String> {
    let p256dh = URL_SAFE_NO_PAD.decode(p256dh.trim_end_matches('=')).map_err(|_| "p256dh is not base64url")?;
    web_push_native::p256::PublicKey::from_sec1_bytes(&p256dh).map_err(|_| "p256dh is not a P-256 public key")?;
    let auth = URL_SAFE_NO_PAD.decode(auth.trim_end_matches('=')).map_err(|_| "auth is not base64url")?;
    if auth.len() != 16 {
        return Err("auth must be 16 bytes".to_string());
    }
    Ok(())
}

async fn forget(reads: &Arc<dyn ReadStore>, user: &UserId, endpoint: &str) {
    let Ok(mut settings) = reads.push_settings(user.clone()).await else { return };
    settings.devices.retain(|d| d.endpoint != endpoint);
    let _ = reads.set_push_settings(user.clone(), settings).await;
}

/// POSTs `request` over a connection of its own (push is rare next to
/// messages: no pool to keep), TLS for `https`.
async fn post(request: http::Request<Vec<u8>>) -> Result<http::StatusCode, String> {
    let uri = request.uri().clone();
    let https = uri.scheme_str() == Some("https");
    let host = uri.host().ok_or("no host")?.to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| e.to_string())?;
    let (parts, body) = request.into_parts();
    let mut request = http::Request::from_parts(parts, http_body_util::Full::new(bytes::Bytes::from(body)));
    let authority = uri.authority().map(|a| a.to_string()).unwrap_or(host.clone());
    request.headers_mut().insert(http::header::HOST, authority.parse().map_err(|_| "bad host")?);
    // HTTP/1.1 wants the path alone on the request line.
    *request.uri_mut() = uri.path_and_query().map_or("/", |p| p.as_str()).parse().map_err(|_| "bad path")?;
    if https {
        let name = rustls::pki_types::ServerName::try_from(host).map_err(|e| e.to_string())?;
        let tls = tls_client().connect(name, tcp).await.map_err(|e| e.to_string())?;
        send(hyper_util::rt::TokioIo::new(tls), request).await
    } else {
        send(hyper_util::rt::TokioIo::new(tcp), request).await
    }
}

async fn send<T>(io: T, request: http::Request<http_body_util::Full<bytes::Bytes>>) -> Result<http::StatusCode, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    Ok(response.status())
}

fn tls_client() -> tokio_rustls::TlsConnector {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    });
    tokio_rustls::TlsConnector::from(config.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_stays_within_its_bound_and_carries_text_only_when_chosen() {
        let notice = Notice {
            room: RoomId::new("cameras").unwrap(),
            seq: Seq(7),
            ts: Millis(1),
            from: UserId::new("ada").unwrap(),
            text: Some("\u{1}".repeat(5000)),
            users: Vec::new(),
            message: true,
            direct: false,
        };
        let without: serde_json::Value = serde_json::from_slice(&payload(&notice, Why::Mention, false)).unwrap();
        assert!(without.get("text").is_none());
        assert_eq!(without["kind"], "mention");
        let with = payload(&notice, Why::Mention, true);
        assert!(with.len() <= MAX_PAYLOAD, "{}", with.len());
        let plain = Notice { text: Some("é".repeat(3000)), ..notice };
        let with: serde_json::Value = serde_json::from_slice(&payload(&plain, Why::Direct, true)).unwrap();
        assert!(with["text"].as_str().unwrap().len() <= MAX_PAYLOAD - 512);
    }

    #[test]
    fn a_key_is_kept_as_its_secret() {
        let first = Keys::generate();
        let again = Keys::from_secret(&first.secret()).unwrap();
        assert_eq!(first.public(), again.public());
        assert_eq!(URL_SAFE_NO_PAD.decode(first.public()).unwrap().len(), 65, "an uncompressed P-256 point");
    }
}
