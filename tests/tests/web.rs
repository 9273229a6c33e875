//! The web page as HTTP serves it (no browser): its files, their caching,
//! compression and security headers, and the browser's sign-in with an
//! HttpOnly cookie — including the cross-site requests it must refuse.

use std::io::Read;

use hearth_server::Storage;
use hearth_server::web::Site;
use hearth_tests::*;

/// A raw request's answer split into status, headers (lower-case names) and body bytes.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("JSON: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Sends `head` (request line and headers, without `Host`) and `body`, as a
/// browser at the server's own address would: `Host: 127.0.0.1:PORT`.
async fn request(server: &TestServer, head: &str, body: &str) -> Answer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.expect("connect");
    let length = if head.starts_with("GET") { String::new() } else { format!("Content-Length: {}\r\n", body.len()) };
    let port = server.addr.port();
    let whole = format!("{head}\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{length}\r\n{body}");
    tcp.write_all(whole.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut raw)).await.expect("answered in time").expect("read");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer { status, headers, body: raw[split + 4..].to_vec() }
}

async fn get(server: &TestServer, path: &str, extra: &str) -> Answer {
    request(server, &format!("GET {path} HTTP/1.1{extra}"), "").await
}

/// A POST of JSON to a sign-in endpoint, with `headers` (each `\r\nName: value`).
async fn post_with(server: &TestServer, path: &str, headers: &str, body: &str) -> Answer {
    request(server, &format!("POST {path} HTTP/1.1{headers}\r\nContent-Type: application/json"), body).await
}

/// A POST of JSON from the page itself (`Origin` the server's own).
async fn post(server: &TestServer, path: &str, body: &str, cookie: Option<&str>) -> Answer {
    let cookie = cookie.map(|c| format!("\r\nCookie: {c}")).unwrap_or_default();
    let origin = format!("\r\nOrigin: http://127.0.0.1:{}", server.addr.port());
    post_with(server, path, &format!("{origin}{cookie}"), body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_cached_compressed_and_under_a_strict_policy() {
    let server = TestServer::ephemeral().await;
    let version = &Site::get().version;

    for path in ["/", "/r/cameras", "/invite/3f9c2a71?room=cameras"] {
        let page = get(&server, path, "").await;
        assert_eq!(page.status, 200, "{path}");
        assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(page.header("cache-control"), Some("no-cache"), "the page is revalidated on every visit");
        let policy = page.header("content-security-policy").expect("a policy");
        assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'") && policy.contains("default-src 'none'"), "{policy}");
        assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
        let html = String::from_utf8_lossy(&page.body);
        assert!(html.contains(&format!("/assets/{version}/js/app.js")), "names this build's script: {html}");
        assert!(!html.contains("<script>") && !html.contains("onload="), "no inline script");
    }

    // The page revalidates with its ETag.
    let page = get(&server, "/", "").await;
    let etag = page.header("etag").expect("an ETag").to_string();
    let again = get(&server, "/", &format!("\r\nIf-None-Match: {etag}")).await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());

    // Scripts are cached for good, and compressed when the browser takes gzip.
    let script = get(&server, &format!("/assets/{version}/js/app.js"), "\r\nAccept-Encoding: gzip, br").await;
    assert_eq!(script.status, 200);
    assert_eq!(script.header("content-type"), Some("text/javascript; charset=utf-8"));
    assert_eq!(script.header("cache-control"), Some("public, max-age=31536000, immutable"));
    assert_eq!(script.header("content-encoding"), Some("gzip"));
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&script.body[..]).read_to_string(&mut unzipped).expect("gzip");
    assert!(unzipped.contains("Connection"), "the script itself");
    let plain = get(&server, &format!("/assets/{version}/js/app.js"), "").await;
    assert_eq!(plain.header("content-encoding"), None, "no gzip unless asked");
    assert_eq!(plain.body, unzipped.as_bytes());
    let refused = get(&server, &format!("/assets/{version}/js/app.js"), "\r\nAccept-Encoding: gzip;q=0").await;
    assert_eq!(refused.header("content-encoding"), None, "q=0 refuses gzip");

    // An old build's file, or a path out of the folder, is not there.
    assert_eq!(get(&server, "/assets/0123456789abcdef/js/app.js", "").await.status, 404);
    assert_eq!(get(&server, &format!("/assets/{version}/../../Cargo.toml"), "").await.status, 404);
    let manifest = get(&server, "/manifest.webmanifest", "").await;
    assert_eq!(manifest.header("content-type"), Some("application/manifest+json"));
    assert!(manifest.json()["icons"][0]["src"].as_str().unwrap().contains(version.as_str()));
    server.stop().await;
}

#[test]
fn everything_a_first_visit_loads_is_under_150_kb_compressed() {
    let site = Site::get();
    let total: usize = site.files().map(|(_, file)| file.gzip.as_ref().map_or(file.plain.len(), |g| g.len())).sum();
    let listing: Vec<String> = site
        .files()
        .map(|(name, file)| format!("{name}: {} B", file.gzip.as_ref().map_or(file.plain.len(), |g| g.len())))
        .collect();
    println!("the page's files, compressed: {total} bytes in all\n{}", listing.join("\n"));
    assert!(total <= 150 * 1024, "{total} bytes: {listing:?}");
}

/// The `Set-Cookie` of an answer, as `name=value` and its attributes.
fn cookie_of(answer: &Answer) -> (String, String) {
    let set = answer.header("set-cookie").expect("a Set-Cookie").to_string();
    let (pair, attributes) = set.split_once(';').unwrap_or((&set, ""));
    (pair.to_string(), attributes.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_signs_in_with_a_cookie_its_script_cannot_read_and_other_sites_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(Storage::Dir(dir.path().to_path_buf()));
    config.accounts.registration = hearth_server::accounts::Registration::Open;
    let server = TestServer::start(config).await;

    let made = post(&server, "/auth/session/register", r#"{"name":"ada","password":"correct horse"}"#, None).await;
    assert_eq!(made.status, 201, "{}", String::from_utf8_lossy(&made.body));
    let body = made.json();
    assert_eq!(body["user"], "ada");
    assert!(body["token"].as_str().is_some_and(|t| !t.is_empty()), "a short access token for the page");
    assert!(body.get("refresh_token").is_none(), "the long-lived token never reaches the script");
    let (cookie, attributes) = cookie_of(&made);
    assert!(cookie.starts_with("hearth_session=") && cookie.len() > 40, "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/auth/session", "Max-Age="] {
        assert!(attributes.contains(attribute), "{attribute} in {attributes}");
    }
    assert!(!attributes.contains("Secure"), "not over plain HTTP (the browser would drop it)");

    // A reload: the cookie alone buys an access token and a moved-on cookie.
    let refreshed = post(&server, "/auth/session/refresh", "{}", Some(&cookie)).await;
    assert_eq!(refreshed.status, 200, "{}", String::from_utf8_lossy(&refreshed.body));
    assert_eq!(refreshed.json()["user"], "ada");
    let (cookie, _) = cookie_of(&refreshed);
    // That token opens a connection (through a ticket, as the page does).
    let token = refreshed.json()["token"].as_str().unwrap().to_string();
    let origin = format!("\r\nOrigin: http://127.0.0.1:{}", server.addr.port());
    let ticket = request(&server, &format!("POST /ticket HTTP/1.1{origin}\r\nAuthorization: Bearer {token}"), "").await;
    assert_eq!(ticket.status, 200, "the server's own page buys tickets without --allowed-origins");

    // Cross-site: another origin, or no sign of a browser's own page at all.
    let at = &server;
    let refresh_with = |headers: String| async move { post_with(at, "/auth/session/refresh", &headers, "{}").await };
    let foreign = refresh_with(format!("\r\nOrigin: https://evil.example\r\nCookie: {cookie}")).await;
    assert_eq!(foreign.status, 403, "a page on another site cannot use the cookie");
    let blind = refresh_with(format!("\r\nCookie: {cookie}")).await;
    assert_eq!(blind.status, 403, "neither Origin nor Sec-Fetch-Site: refused");
    let fetch_site = refresh_with(format!("\r\nSec-Fetch-Site: same-origin\r\nCookie: {cookie}")).await;
    assert_eq!(fetch_site.status, 200, "Sec-Fetch-Site: same-origin is the page's own");
    let (cookie, _) = cookie_of(&fetch_site);
    let form = request(
        &server,
        &format!("POST /auth/session/logout HTTP/1.1{origin}\r\nCookie: {cookie}\r\nContent-Type: text/plain"),
        "{}",
    )
    .await;
    assert_eq!(form.status, 415, "a form post is not JSON");

    // Changing the password moves the cookie on and ends the old one.
    let old_cookie = cookie.clone();
    let changed = post(
        &server,
        "/auth/session/password",
        r#"{"password":"correct horse","new_password":"battery staple"}"#,
        Some(&cookie),
    )
    .await;
    assert_eq!(changed.status, 200, "{}", String::from_utf8_lossy(&changed.body));
    let (cookie, _) = cookie_of(&changed);
    let stale = post(&server, "/auth/session/refresh", "{}", Some(&old_cookie)).await;
    assert_eq!(stale.status, 401);
    assert_eq!(stale.json()["error"], "signed_out");
    assert!(cookie_of(&stale).0 == "hearth_session=", "a stale cookie is dropped");

    // Sign-out drops the cookie; without it nothing refreshes.
    let out = post(&server, "/auth/session/logout", "{}", Some(&cookie)).await;
    assert_eq!(out.status, 200);
    let (cleared, attributes) = cookie_of(&out);
    assert_eq!(cleared, "hearth_session=");
    assert!(attributes.contains("Max-Age=0"), "{attributes}");
    let none = post(&server, "/auth/session/refresh", "{}", None).await;
    assert_eq!(none.status, 401);

    // A login with the new password works; with the old one it does not.
    let wrong = post(&server, "/auth/session/login", r#"{"name":"ada","password":"correct horse"}"#, None).await;
    assert_eq!(wrong.status, 401);
    let right = post(&server, "/auth/session/login", r#"{"name":"ada","password":"battery staple"}"#, None).await;
    assert_eq!(right.status, 200);

    // A token the operator minted, pasted once, is kept in the cookie too.
    let pasted = post(&server, "/auth/session/token", &format!(r#"{{"token":"{}"}}"#, server.token("cy")), None).await;
    assert_eq!(pasted.status, 200, "{}", String::from_utf8_lossy(&pasted.body));
    let (cookie, _) = cookie_of(&pasted);
    let back = post(&server, "/auth/session/refresh", "{}", Some(&cookie)).await;
    assert_eq!(back.status, 200);
    assert_eq!(back.json()["user"], "cy");
    let forged = post(&server, "/auth/session/token", r#"{"token":"x.y.z"}"#, None).await;
    assert_eq!(forged.status, 401);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_own_page_may_open_a_websocket_and_other_sites_may_not() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let server = TestServer::ephemeral().await;
    let open = |origin: String| {
        let mut request = server.url().into_client_request().unwrap();
        request.headers_mut().insert("Authorization", format!("Bearer {}", server.token("ada")).parse().unwrap());
        request.headers_mut().insert("Origin", origin.parse().unwrap());
        async move { tokio_tungstenite::connect_async(request).await.map(|_| ()).map_err(|e| e.to_string()) }
    };
    // tungstenite sends `Host: 127.0.0.1:PORT`: the page's own origin is that.
    assert_eq!(open(format!("http://127.0.0.1:{}", server.addr.port())).await, Ok(()));
    let refused = open(format!("http://127.0.0.1:{}", server.addr.port() + 1)).await;
    assert!(refused.is_err_and(|e| e.contains("403")), "another port is another origin");
    let behind_a_proxy = open(format!("https://127.0.0.1:{}", server.addr.port())).await;
    assert_eq!(behind_a_proxy, Ok(()), "https for the same host: a proxy in front ended TLS");
    assert!(open("https://127.0.0.1".to_string()).await.is_err(), "another port is another site");
    server.stop().await;
}
