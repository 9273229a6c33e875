//! Notifications for members who are away, against a push service written
//! here (an HTTP endpoint on loopback) that checks each request as a real
//! one would: the VAPID signature (RFC 8292) against the server's key, and
//! the `aes128gcm` payload (RFC 8291), decrypted with the subscription's own
//! keys. On one node and on two nodes sharing a Redis.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hearth_cli::Client;
use hearth_protocol::ops::{
    Presence, PushKey, PushLevel, PushLevels, PushSubscribe, SendMessage, SetPushLevel, StartDirect,
};
use hearth_protocol::{ClientMsgId, Codec, ErrorCode, Text};
use hearth_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use web_push_native::jwt_simple::algorithms::{ECDSAP256PublicKeyLike, ES256PublicKey};
use web_push_native::jwt_simple::prelude::{NoCustomClaims, VerificationOptions};
use web_push_native::p256::SecretKey;

/// One request the push service took.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A push service on loopback: keeps every request; answers 410 (gone) on
/// paths starting `/gone`, 503 to the first request on paths starting
/// `/busy`, 201 otherwise.
struct PushService {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
}

impl PushService {
    async fn start() -> PushService {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::<Received>::new()));
        let keep = received.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let keep = keep.clone();
                tokio::spawn(async move {
                    let Some(request) = read_request(&mut socket).await else { return };
                    let status = {
                        let mut kept = keep.lock().unwrap();
                        let before = kept.iter().filter(|r| r.path == request.path).count();
                        let status = match request.path.as_str() {
                            path if path.starts_with("/gone") => "410 Gone",
                            path if path.starts_with("/busy") && before == 0 => "503 Service Unavailable",
                            _ => "201 Created",
                        };
                        kept.push(request);
                        status
                    };
                    let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        PushService { port, received }
    }

    fn endpoint(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn to(&self, path: &str) -> Vec<Received> {
        self.received.lock().unwrap().iter().filter(|r| r.path == path).cloned().collect()
    }

    /// Waits (bounded) until `path` has taken `count` requests.
    async fn wait_for(&self, path: &str, count: usize) -> Vec<Received> {
        for _ in 0..100 {
            let got = self.to(path);
            if got.len() >= count {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{path} took {} requests, not {count}", self.to(path).len());
    }
}

/// An HTTP/1.1 request: its head, then `content-length` bytes of body.
async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Received> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut chunk)).await.ok()?.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_string();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':').map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))).collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut chunk)).await.ok()?.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Received { path, headers, body })
}

/// A browser's side of a subscription: its key pair and auth secret.
struct DeviceKeys {
    secret: SecretKey,
    auth: [u8; 16],
}

impl DeviceKeys {
    fn new() -> DeviceKeys {
        let secret = loop {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).unwrap();
            if let Ok(secret) = SecretKey::from_slice(&bytes) {
                break secret;
            }
        };
        let mut auth = [0u8; 16];
        getrandom::fill(&mut auth).unwrap();
        DeviceKeys { secret, auth }
    }

    fn subscription(&self, endpoint: String, text: bool) -> PushSubscribe {
        use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint;
        let public = self.secret.public_key().to_encoded_point(false);
        PushSubscribe {
            endpoint,
            p256dh: URL_SAFE_NO_PAD.encode(public.as_bytes()),
            auth: URL_SAFE_NO_PAD.encode(self.auth),
            text,
        }
    }

    /// Checks `request` as a push service and a browser would, and gives
    /// what it carries.
    fn open(&self, request: &Received, server_key: &str, audience: &str) -> serde_json::Value {
        assert_eq!(request.header("content-encoding"), Some("aes128gcm"));
        assert!(request.header("ttl").and_then(|t| t.parse::<u64>().ok()).is_some_and(|t| t > 0), "{request:?}");
        // Authorization: vapid t=JWT, k=KEY (RFC 8292 section 3).
        let authorization = request.header("authorization").expect("a VAPID authorization");
        let rest = authorization.strip_prefix("vapid ").expect("the vapid scheme");
        let mut token = None;
        let mut key = None;
        for part in rest.split(',') {
            match part.trim().split_once('=') {
                Some(("t", value)) => token = Some(value.to_string()),
                Some(("k", value)) => key = Some(value.to_string()),
                _ => {}
            }
        }
        let key = key.expect("k=");
        assert_eq!(key, server_key, "signed with the key the server gives clients");
        let public = ES256PublicKey::from_bytes(&URL_SAFE_NO_PAD.decode(&key).unwrap()).unwrap();
        let options = VerificationOptions {
            allowed_audiences: Some(HashSet::from([audience.to_string()])),
            ..VerificationOptions::default()
        };
        let claims =
            public.verify_token::<NoCustomClaims>(&token.expect("t="), Some(options)).expect("a valid VAPID JWT");
        assert!(claims.subject.is_some_and(|s| s.starts_with("mailto:") || s.starts_with("https:")));
        let auth = web_push_native::Auth::clone_from_slice(&self.auth);
        let plain = web_push_native::decrypt(request.body.clone(), &self.secret, &auth)
            .expect("decrypts with the device's keys");
        assert!(plain.len() <= 3 * 1024);
        serde_json::from_slice(&plain).expect("a JSON payload")
    }
}

async fn say(client: &Client, room: &str, text: &str) {
    let cmid = ClientMsgId::new(format!("p-{}-{}", text.len(), text.chars().next().unwrap_or('x'))).unwrap();
    client
        .request(SendMessage { room: hearth_tests::room(room), text: Text::new(text).unwrap(), cmid, thread: None })
        .await
        .unwrap();
}

/// Waits (bounded) until none of `users` receives `room` anywhere (`here:
/// false`), or until they all do (`here: true`): a cluster's nodes learn of
/// each other's connections a moment later.
async fn online(watcher: &Client, room: &str, users: &[&str], here: bool) {
    for _ in 0..100 {
        let online = watcher.request(Presence { room: hearth_tests::room(room) }).await.unwrap().online;
        let seen = users.iter().filter(|u| online.iter().any(|o| o.user.as_str() == **u)).count();
        if (here && seen == users.len()) || (!here && seen == 0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{users:?} never {} in {room}", if here { "online" } else { "away" });
}

both_modes! {
    async fn members_who_are_away_are_notified_once_and_those_here_are_not(d: Deployment) {
        let service = PushService::start().await;
        let audience = format!("http://127.0.0.1:{}", service.port);
        let ada = d.client("ada", Codec::MsgPack).await;
        for name in ["club", "darkroom", "lobby", "attic"] {
            create_room(&ada, name, None).await.unwrap();
        }
        let server_key = ada.request(PushKey {}).await.unwrap().key;
        let (bo_keys, cy_keys, gone_keys, dee_keys) =
            (DeviceKeys::new(), DeviceKeys::new(), DeviceKeys::new(), DeviceKeys::new());
        {
            let mut bo = d.client("bo", Codec::Json).await;
            let mut cy = d.client("cy", Codec::MsgPack).await;
            for name in ["club", "darkroom", "lobby", "attic"] {
                bo.join(&hearth_tests::room(name)).await.unwrap();
                cy.join(&hearth_tests::room(name)).await.unwrap();
            }
            bo.request(bo_keys.subscription(service.endpoint("/bo"), false)).await.unwrap();
            cy.request(cy_keys.subscription(service.endpoint("/cy"), true)).await.unwrap();
            cy.request(gone_keys.subscription(service.endpoint("/gone"), false)).await.unwrap();
            let mut dee = d.client("dee", Codec::Json).await;
            dee.join(&hearth_tests::room("club")).await.unwrap();
            dee.request(dee_keys.subscription(service.endpoint("/busy"), false)).await.unwrap();
            cy.request(SetPushLevel { room: hearth_tests::room("lobby"), level: PushLevel::Everything }).await.unwrap();
            bo.request(SetPushLevel { room: hearth_tests::room("lobby"), level: PushLevel::Nothing }).await.unwrap();
            let levels = bo.request(PushLevels {}).await.unwrap();
            assert_eq!((levels.levels.len(), levels.levels[0].level, levels.devices), (1, PushLevel::Nothing, 1));
            // Endpoints are checked: only push services, and keys that work.
            let mut bad = bo_keys.subscription("http://192.0.2.1/x".into(), false);
            assert_eq!(code(bo.request(bad.clone()).await), ErrorCode::BadRequest);
            bad.endpoint = service.endpoint("/bo2");
            bad.auth = "short".into();
            assert_eq!(code(bo.request(bad).await), ErrorCode::BadRequest);
        }
        online(&ada, "club", &["bo", "cy", "dee"], false).await;

        // A mention reaches each device of the away members, encrypted for it.
        say(&ada, "club", "@bo @cy film day on saturday").await;
        let to_bo = service.wait_for("/bo", 1).await;
        let to_cy = service.wait_for("/cy", 1).await;
        let gone = service.wait_for("/gone", 1).await;
        let bo_sees = bo_keys.open(&to_bo[0], &server_key, &audience);
        assert_eq!((bo_sees["room"].as_str(), bo_sees["from"].as_str(), bo_sees["kind"].as_str()), (Some("club"), Some("ada"), Some("mention")));
        assert!(bo_sees.get("text").is_none(), "no text unless the member chose it");
        let cy_sees = cy_keys.open(&to_cy[0], &server_key, &audience);
        assert_eq!(cy_sees["text"], "@bo @cy film day on saturday");
        gone_keys.open(&gone[0], &server_key, &audience);

        // A push service in trouble is tried again, a second later.
        say(&ada, "club", "@dee are you in?").await;
        let to_dee = service.wait_for("/busy", 2).await;
        assert_eq!(dee_keys.open(&to_dee[0], &server_key, &audience), dee_keys.open(&to_dee[1], &server_key, &audience));

        // Coalesced: one per member and room in a few minutes.
        say(&ada, "club", "@bo and the developer too").await;
        // Not while a connection receives the room.
        let mut bo = d.client("bo", Codec::Json).await;
        bo.join(&hearth_tests::room("darkroom")).await.unwrap();
        online(&ada, "darkroom", &["bo"], true).await;
        say(&ada, "darkroom", "@bo @cy fixer is mixed").await;
        // Cy is away: told, on the device that is left (the one gone was forgotten).
        let to_cy = service.wait_for("/cy", 2).await;
        assert_eq!(cy_keys.open(&to_cy[1], &server_key, &audience)["room"], "darkroom");
        // A direct conversation: every message, with its text for cy.
        let dm = ada.request(StartDirect { with: vec![user("cy")] }).await.unwrap().room;
        say(&ada, dm.as_str(), "psst").await;
        let to_cy = service.wait_for("/cy", 3).await;
        let direct = cy_keys.open(&to_cy[2], &server_key, &audience);
        assert_eq!((direct["kind"].as_str(), direct["text"].as_str()), (Some("direct"), Some("psst")));
        // A room cy hears every message of; bo hears nothing of it.
        say(&ada, "lobby", "the lobby is open").await;
        let to_cy = service.wait_for("/cy", 4).await;
        assert_eq!(cy_keys.open(&to_cy[3], &server_key, &audience)["kind"], "message");

        // Nothing from someone the member blocks.
        let cy = d.client("cy", Codec::MsgPack).await;
        cy.request(hearth_protocol::ops::Block { user: user("ada"), on: true }).await.unwrap();
        drop(cy);
        online(&ada, "attic", &["cy"], false).await;
        say(&ada, "attic", "@cy are you there?").await;

        // Give a wrongly sent push time to arrive, then count.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let to_bo: Vec<serde_json::Value> = service.to("/bo").iter().map(|r| bo_keys.open(r, &server_key, &audience)).collect();
        assert_eq!(to_bo.len(), 1, "bo: once for club (coalesced), never while in darkroom, nothing in lobby: {to_bo:?}");
        assert_eq!(service.to("/gone").len(), 1, "a device its service says is gone is forgotten");
        assert_eq!(service.to("/cy").len(), 4, "nothing from ada once cy blocks her");
        // What became of them, on the node that sent them.
        let (_, metrics) = http_get(d.node("ada"), "/metrics").await;
        assert!(metrics.contains("hearth_push_total{outcome=\"sent\"}"), "{metrics}");
        assert!(metrics.contains("hearth_push_total{outcome=\"gone\"}"), "{metrics}");
        drop(bo);
        d.stop().await;
    }

    async fn a_report_tells_the_keepers_who_are_away_and_never_the_member_reported(d: Deployment) {
        let service = PushService::start().await;
        let audience = format!("http://127.0.0.1:{}", service.port);
        let ada = d.client("ada", Codec::MsgPack).await;
        create_room(&ada, "club", None).await.unwrap();
        let server_key = ada.request(PushKey {}).await.unwrap().key;
        let (ada_keys, bo_keys, dee_keys) = (DeviceKeys::new(), DeviceKeys::new(), DeviceKeys::new());
        ada.request(ada_keys.subscription(service.endpoint("/ada"), false)).await.unwrap();
        let reported = {
            let mut bo = d.client("bo", Codec::Json).await;
            let mut dee = d.client("dee", Codec::MsgPack).await;
            bo.join(&hearth_tests::room("club")).await.unwrap();
            dee.join(&hearth_tests::room("club")).await.unwrap();
            bo.request(bo_keys.subscription(service.endpoint("/bo"), false)).await.unwrap();
            dee.request(dee_keys.subscription(service.endpoint("/dee"), false)).await.unwrap();
            ada.request(set_role("club", "dee", hearth_protocol::Role::Welcomer)).await.unwrap();
            bo.send(&hearth_tests::room("club"), "cheap lenses at spam.example").await.unwrap().seq
        };
        online(&ada, "club", &["bo", "dee"], false).await;
        let mut cy = d.client("cy", Codec::Json).await;
        cy.join(&hearth_tests::room("club")).await.unwrap();
        let report = hearth_protocol::ops::Report {
            room: hearth_tests::room("club"),
            seq: reported,
            category: hearth_protocol::ops::ReportCategory::Spam,
            note: short(""),
        };
        cy.request(report).await.unwrap();
        // The keepers who are away hear of it, as a queue waiting for them.
        for (path, keys) in [("/dee", &dee_keys), ("/ada", &ada_keys)] {
            let told = service.wait_for(path, 1).await;
            let seen = keys.open(&told[0], &server_key, &audience);
            assert_eq!((seen["room"].as_str(), seen["kind"].as_str()), (Some("club"), Some("queue")), "{path}: {seen}");
            assert!(seen.get("text").is_none(), "{seen}");
        }
        // The member reported is never told.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(service.to("/bo").is_empty(), "bo was told of a report on his own message");
        d.stop().await;
    }

    async fn a_raid_that_locks_the_room_tells_the_moderators_who_are_away(d: Deployment) {
        let service = PushService::start().await;
        let audience = format!("http://127.0.0.1:{}", service.port);
        let ada = d.client("ada", Codec::MsgPack).await;
        create_room(&ada, "club", None).await.unwrap();
        let server_key = ada.request(PushKey {}).await.unwrap().key;
        let mo_keys = DeviceKeys::new();
        {
            let mut mo = d.client("mo", Codec::Json).await;
            mo.join(&hearth_tests::room("club")).await.unwrap();
            mo.request(mo_keys.subscription(service.endpoint("/mo"), false)).await.unwrap();
            ada.request(set_role("club", "mo", hearth_protocol::Role::Moderator)).await.unwrap();
        }
        online(&ada, "club", &["mo"], false).await;
        // Three arrivals within the minute lock the doors. Which join is
        // the third depends on what the deciding node's copy counted (mo's
        // own join, made just before, counts where it was applied).
        let raid = hearth_protocol::ops::RoomSettings {
            raid_joins: Some(3),
            raid_secs: Some(60),
            raid_lock_secs: Some(600),
            ..hearth_protocol::ops::RoomSettings::default()
        };
        ada.request(hearth_protocol::ops::SetRoom { room: hearth_tests::room("club"), settings: raid }).await.unwrap();
        // One stranger is a newcomer: nobody is told.
        let mut first = d.client("x1", Codec::Json).await;
        first.join(&hearth_tests::room("club")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(service.to("/mo").is_empty(), "a lone join told mo");
        // More within the minute lock the doors (the last may find them shut): mo hears of it.
        let (mut second, mut third) = (d.client("x2", Codec::Json).await, d.client("x3", Codec::Json).await);
        second.join(&hearth_tests::room("club")).await.unwrap();
        let _ = third.join(&hearth_tests::room("club")).await;
        let told = service.wait_for("/mo", 1).await;
        let seen = mo_keys.open(&told[0], &server_key, &audience);
        assert_eq!((seen["room"].as_str(), seen["kind"].as_str()), (Some("club"), Some("queue")), "{seen}");
        assert!(matches!(seen["from"].as_str(), Some("x2" | "x3")), "{seen}");
        d.stop().await;
    }
}
