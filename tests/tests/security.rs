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
