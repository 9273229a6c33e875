//! Who may stay connected and who may connect at all: a token is enforced for
//! as long as the connection lives, and browser pages from sites the operator
//! did not name cannot open a WebSocket with a member's token.

use std::time::{Duration, Instant};

use hearth_cli::{Client, Options};
use hearth_protocol::{CloseCode, Codec};
use hearth_server::Storage;
use hearth_server::auth;
use hearth_tests::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_is_closed_when_its_token_expires() {
    let server = TestServer::ephemeral().await;
    let short = auth::mint(&secret(), &user("ada"), Duration::from_secs(2));
    let mut options = Options::new(server.url(), short, Codec::MsgPack);
    options.request_timeout = WAIT;
    let opened = Instant::now();
    let mut ada = Client::connect(options).await.unwrap();
    create_room(&ada, "ticking", None).await.unwrap();
    let mut bo = server.client("bo", Codec::Json).await;
    while ada.next_event_within(WAIT).await.unwrap().is_some() {}
    let lived = opened.elapsed();
    assert_eq!(ada.close_info().and_then(|c| c.hearth_code()), Some(CloseCode::TokenExpired), "{:?}", ada.close_info());
    assert!(lived >= Duration::from_millis(900) && lived < Duration::from_secs(5), "closed after {lived:?}");
    // Others, with valid tokens, are not affected.
    bo.join(&room("ticking")).await.unwrap();
    server.stop().await;
}

/// Opens a WebSocket to `server` as ada, from a page at `origin` if given:
/// `Ok(())` or the HTTP status and body of the refusal.
async fn open_from(server: &TestServer, origin: Option<&str>) -> Result<(), (u16, String)> {
    let mut request = server.url().into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert("Authorization", format!("Bearer {}", server.token("ada")).parse().unwrap());
    headers.insert("Sec-WebSocket-Protocol", "hearth.v1.json".parse().unwrap());
    if let Some(origin) = origin {
        headers.insert("Origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => Ok(()),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response.body().as_ref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
            Err((response.status().as_u16(), body))
        }
        Err(other) => panic!("unexpected failure: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_from_sites_the_operator_did_not_name_are_refused() {
    // The default: no browser origin at all.
    let closed = TestServer::ephemeral().await;
    assert_eq!(open_from(&closed, None).await, Ok(()), "clients that are not browsers send no Origin");
    let (status, body) = open_from(&closed, Some("https://chat.example.org")).await.unwrap_err();
    assert_eq!(status, 403);
    assert!(body.contains("--allowed-origins"), "the refusal says what to change: {body}");
    closed.stop().await;

    let mut config = test_config(Storage::Ephemeral { history_limit: 100 });
    config.allowed_origins = vec!["https://chat.example.org".into()];
    let open = TestServer::start(config).await;
    assert_eq!(open_from(&open, Some("https://chat.example.org")).await, Ok(()));
    assert_eq!(open_from(&open, Some("HTTPS://CHAT.EXAMPLE.ORG")).await, Ok(()), "case does not matter");
    assert_eq!(open_from(&open, Some("https://evil.example")).await.unwrap_err().0, 403);
    assert_eq!(open_from(&open, Some("https://chat.example.org.evil.example")).await.unwrap_err().0, 403);
    assert_eq!(open_from(&open, Some("null")).await.unwrap_err().0, 403, "sandboxed pages and files");
    open.stop().await;
}

/// `POST /ticket` with `token` and `origin`: the raw HTTP answer.
async fn ask_ticket(server: &TestServer, token: Option<&str>, origin: Option<&str>) -> String {
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let origin = origin.map(|o| format!("Origin: {o}\r\n")).unwrap_or_default();
    http(server, &format!("POST /ticket HTTP/1.1\r\nHost: x\r\n{auth}{origin}Content-Length: 0\r\n\r\n")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_trades_its_token_for_a_one_use_ticket_and_no_token_goes_in_a_url() {
    let mut config = test_config(Storage::Ephemeral { history_limit: 100 });
    config.allowed_origins = vec!["https://chat.example.org".into()];
    let server = TestServer::start(config).await;
    let site = Some("https://chat.example.org");

    assert!(ask_ticket(&server, None, site).await.starts_with("HTTP/1.1 401"), "no token, no ticket");
    assert!(ask_ticket(&server, Some("x.y.z"), site).await.starts_with("HTTP/1.1 401"));
    let elsewhere = ask_ticket(&server, Some(&server.token("ada")), Some("https://evil.example")).await;
    assert!(elsewhere.starts_with("HTTP/1.1 403"), "{elsewhere}");
    let preflight =
        http(&server, "OPTIONS /ticket HTTP/1.1\r\nHost: x\r\nOrigin: https://chat.example.org\r\n\r\n").await;
    assert!(preflight.starts_with("HTTP/1.1 204"), "{preflight}");
    assert!(preflight.contains("access-control-allow-headers: authorization"), "{preflight}");

    let answer = ask_ticket(&server, Some(&server.token("ada")), site).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("access-control-allow-origin: https://chat.example.org"), "{answer}");
    assert!(answer.contains("cache-control: no-store"), "{answer}");
    let body: serde_json::Value = serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert!(body["expires_in_ms"].as_u64().unwrap() <= 30_000);
    let ticket = body["ticket"].as_str().unwrap().to_string();

    // The WebSocket URL carries the ticket, not the token; it works once.
    let open = |ticket: &str| {
        let url = format!("{}/?ticket={ticket}", server.url());
        async move {
            let mut request = url.into_client_request().unwrap();
            request.headers_mut().insert("Origin", "https://chat.example.org".parse().unwrap());
            request.headers_mut().insert("Sec-WebSocket-Protocol", "hearth.v1.json".parse().unwrap());
            tokio_tungstenite::connect_async(request).await.map(|(ws, _)| ws)
        }
    };
    let mut first = open(&ticket).await.expect("the ticket opens a connection");
    assert!(read_first_text(&mut first).await.contains("\"ev\":\"hello\""), "a session for ada");
    let mut again = open(&ticket).await.expect("upgraded, then closed");
    assert_eq!(read_close_code(&mut again).await, Some(CloseCode::Unauthorized.code()), "a ticket is good once");
    server.stop().await;
}

async fn read_first_text(ws: &mut RawSocket) -> String {
    use futures_util::StreamExt;
    match tokio::time::timeout(WAIT, ws.next()).await.expect("in time") {
        Some(Ok(message)) => String::from_utf8_lossy(&message.into_data()).into_owned(),
        other => panic!("no first frame: {other:?}"),
    }
}
