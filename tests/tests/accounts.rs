//! Accounts over real sockets, on one node and on two nodes sharing a Redis:
//! register with an operator's invite, log in and chat, refresh, change a
//! password (earlier tokens end, and the connections opened with them), and
//! the operator's disable closing the
//! account's connections on every node at once. Also: a live connection
//! moved onto a fresh token outlives the one it opened with; accounts survive
//! a restart; the endpoints' answers to bad requests.

use std::time::{Duration, Instant};

use hearth_cli::account::{AccountApi, Tokens};
use hearth_cli::{Client, Options};
use hearth_protocol::ops::Ping;
use hearth_protocol::{CloseCode, Codec, ErrorCode};
use hearth_server::auth::{self, TokenKind};
use hearth_server::{Config, Storage};
use hearth_tests::*;

const PASSWORD: &str = "correct horse";

/// A request to `server`'s endpoint `path` with a JSON body: status and JSON answer.
async fn call(
    server: &TestServer,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    let auth = bearer.map(|t| format!("authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: hearth\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = http(server, &request).await;
    let status = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or_else(|_| serde_json::Value::String(body.to_string())))
}

/// `POST /ticket` with `token`: the ticket, or the whole answer when refused.
async fn buy_ticket(server: &TestServer, token: &str) -> Result<String, String> {
    let request =
        format!("POST /ticket HTTP/1.1\r\nhost: hearth\r\nauthorization: Bearer {token}\r\ncontent-length: 0\r\n\r\n");
    let answer = http(server, &request).await;
    if !answer.starts_with("HTTP/1.1 200") {
        return Err(answer);
    }
    let body: serde_json::Value = serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
    Ok(body["ticket"].as_str().expect("a ticket").to_string())
}

/// A connection opened with `?ticket=`, as a browser opens one.
async fn open_with_ticket(server: &TestServer, ticket: &str) -> Client {
    let mut options = Options::new(format!("{}/?ticket={ticket}", server.url()), "", Codec::Json);
    options.request_timeout = WAIT;
    Client::connect(options).await.expect("the ticket opens a connection")
}

/// Opens with a spent or wrong ticket: the close code.
async fn refused_ticket(server: &TestServer, ticket: &str) -> Option<CloseCode> {
    let mut options = Options::new(format!("{}/?ticket={ticket}", server.url()), "", Codec::Json);
    options.request_timeout = WAIT;
    match Client::connect(options).await {
        Err(hearth_cli::ClientError::Closed(Some(close))) => close.hearth_code(),
        Err(other) => panic!("refused with a close code, not {other}"),
        Ok(mut client) => closed_with(&mut client).await,
    }
}

fn operator_token() -> String {
    auth::mint_with(&secret(), &user("operator"), Duration::from_secs(60), TokenKind::Admin, None)
}

/// An invite code for `uses` registrations, from the operator's endpoint.
async fn invite(server: &TestServer, uses: u32) -> String {
    let body = format!(r#"{{"uses":{uses}}}"#);
    let (status, answer) = call(server, "POST", "/admin/invites", Some(&operator_token()), &body).await;
    assert_eq!(status, 201, "{answer}");
    answer["code"].as_str().unwrap().to_string()
}

fn api(server: &TestServer) -> AccountApi {
    AccountApi::new(server.url(), None)
}

async fn connect(server: &TestServer, token: &str) -> Result<Client, hearth_cli::ClientError> {
    let mut options = Options::new(server.url(), token, Codec::Json);
    options.request_timeout = WAIT;
    Client::connect(options).await
}

/// Reads until the connection ends; its close code.
async fn closed_with(client: &mut Client) -> Option<CloseCode> {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline && client.next_event_within(WAIT).await.unwrap_or(None).is_some() {}
    client.close_info().and_then(|c| c.hearth_code())
}

/// Connects with a token the server should refuse: the close code and its reason.
async fn refused(server: &TestServer, token: &str) -> (Option<CloseCode>, String) {
    match connect(server, token).await {
        Err(hearth_cli::ClientError::Closed(Some(close))) => (close.hearth_code(), close.reason),
        Err(other) => panic!("refused with a close code, not {other}"),
        Ok(mut client) => {
            let code = closed_with(&mut client).await;
            (code, client.close_info().map(|c| c.reason).unwrap_or_default())
        }
    }
}

/// Registers `name` through `server` with a fresh invite.
async fn register(d: &Deployment, name: &str) -> Tokens {
    let code = invite(&d.nodes[0], 1).await;
    api(d.node(name)).register(name, PASSWORD, Some(&code)).await.expect("registered")
}

both_modes! {
    async fn login_attempts_are_counted_across_every_node(d: Deployment) {
        register(&d, "ada").await;
        register(&d, "bo").await;
        // Ten guesses, spread over the nodes: a guesser gets ten a minute in
        // all, not ten per node.
        for n in 0..10 {
            let node = if n % 2 == 0 { d.node("ada") } else { d.other_node("ada") };
            let wrong = api(node).login("ada", "wrong horse").await.unwrap_err();
            assert_eq!(wrong.code(), Some("wrong_password"), "guess {n}");
        }
        for node in [d.node("ada"), d.other_node("ada")] {
            let limited = api(node).login("ada", PASSWORD).await.unwrap_err();
            assert_eq!(limited.code(), Some("rate_limited"), "{limited}");
        }
        // Another account is not held back.
        api(d.other_node("ada")).login("bo", PASSWORD).await.expect("bo logs in");
        d.stop().await;
    }

    async fn a_registered_member_logs_in_chats_and_refreshes(d: Deployment) {
        let tokens = register(&d, "ada").await;
        let ada = connect(d.node("ada"), &tokens.token).await.unwrap();
        assert_eq!(ada.hello().user.as_str(), "ada");
        create_room(&ada, "darkroom", None).await.unwrap();
        // A login and a refresh through the other node give working tokens.
        let other = d.other_node("ada");
        let login = api(other).login("ada", PASSWORD).await.unwrap();
        let mut again = connect(other, &login.token).await.unwrap();
        again.join(&room("darkroom")).await.unwrap();
        let refreshed = api(other).refresh(&login.refresh_token).await.unwrap();
        connect(d.node("ada"), &refreshed.token).await.unwrap().join(&room("darkroom")).await.unwrap();
        // Wrong passwords, taken names and spent invites are refused.
        let wrong = api(other).login("ada", "wrong horse").await.unwrap_err();
        assert_eq!(wrong.code(), Some("wrong_password"));
        let code = invite(&d.nodes[0], 1).await;
        let taken = api(other).register("ada", PASSWORD, Some(&code)).await.unwrap_err();
        assert_eq!(taken.code(), Some("name_taken"));
        api(d.node("bo")).register("bo", PASSWORD, Some(&code)).await.unwrap();
        let spent = api(other).register("cy", PASSWORD, Some(&code)).await.unwrap_err();
        assert_eq!(spent.code(), Some("invalid_invite"));
        let none = api(other).register("cy", PASSWORD, None).await.unwrap_err();
        assert_eq!(none.code(), Some("invite_required"));
        d.stop().await;
    }

    async fn a_disabled_account_is_closed_on_every_node_at_once(d: Deployment) {
        let tokens = register(&d, "ada").await;
        let mut here = connect(d.node("ada"), &tokens.token).await.unwrap();
        let mut there = connect(d.other_node("ada"), &tokens.token).await.unwrap();
        let mut bo = d.client("bo", Codec::MsgPack).await;
        create_room(&bo, "club", None).await.unwrap();
        bo.join(&room("club")).await.unwrap();
        here.join(&room("club")).await.unwrap();
        // The operator disables ada through the first node.
        let body = r#"{"name":"ada","reason":"spam"}"#;
        let (status, answer) = call(&d.nodes[0], "POST", "/admin/accounts/disable", Some(&operator_token()), body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(closed_with(&mut here).await, Some(CloseCode::AccountDisabled));
        assert_eq!(closed_with(&mut there).await, Some(CloseCode::AccountDisabled));
        assert!(here.close_info().unwrap().reason.contains("spam"));
        // Nothing of the account works any more, on any node.
        for node in &d.nodes {
            assert_eq!(refused(node, &tokens.token).await.0, Some(CloseCode::AccountDisabled));
            assert_eq!(api(node).login("ada", PASSWORD).await.unwrap_err().code(), Some("account_disabled"));
            assert_eq!(api(node).refresh(&tokens.refresh_token).await.unwrap_err().code(), Some("account_disabled"));
        }
        // Others are still served.
        still_serving(&mut bo, &room("club"), 3).await;
        // Enabled again: a new login works, the old tokens stay dead.
        let (status, _) =
            call(&d.nodes[0], "POST", "/admin/accounts/enable", Some(&operator_token()), r#"{"name":"ada"}"#).await;
        assert_eq!(status, 200);
        let login = api(d.other_node("ada")).login("ada", PASSWORD).await.unwrap();
        connect(d.node("ada"), &login.token).await.unwrap().join(&room("club")).await.unwrap();
        assert_eq!(refused(d.node("ada"), &tokens.token).await.0, Some(CloseCode::Unauthorized));
        d.stop().await;
    }

    async fn a_ticket_is_unique_works_once_on_any_node_and_only_as_a_ticket(d: Deployment) {
        let tokens = register(&d, "ada").await;
        // Two bought in the same second are two tickets.
        let (first, second) = (buy_ticket(d.node("ada"), &tokens.token).await, buy_ticket(d.node("ada"), &tokens.token).await);
        let (first, second) = (first.expect("a ticket"), second.expect("another"));
        assert_ne!(first, second);
        // Each opens one connection, through either node; then never again.
        let opened = open_with_ticket(d.other_node("ada"), &first).await;
        assert_eq!(opened.hello().user.as_str(), "ada");
        opened.request(Ping {}).await.unwrap();
        assert_eq!(refused_ticket(d.node("ada"), &first).await, Some(CloseCode::Unauthorized));
        assert_eq!(refused_ticket(d.other_node("ada"), &first).await, Some(CloseCode::Unauthorized));
        // A ticket is not a token: not as `?token=`, not as a Bearer.
        let mut as_query = Options::new(format!("{}/?token={second}", d.node("ada").url()), "", Codec::Json);
        as_query.request_timeout = WAIT;
        let refused_query = match Client::connect(as_query).await {
            Err(hearth_cli::ClientError::Closed(Some(close))) => close.hearth_code(),
            other => panic!("a ticket as ?token= is refused, not {:?}", other.map(|_| ())),
        };
        assert_eq!(refused_query, Some(CloseCode::Unauthorized));
        assert_eq!(refused(d.node("ada"), &second).await.0, Some(CloseCode::Unauthorized));
        // ... and still unspent: it opens its one connection.
        open_with_ticket(d.node("ada"), &second).await.request(Ping {}).await.unwrap();
        // A disabled account buys none.
        let body = r#"{"name":"ada","reason":"spam"}"#;
        let (status, _) = call(&d.nodes[0], "POST", "/admin/accounts/disable", Some(&operator_token()), body).await;
        assert_eq!(status, 200);
        for node in &d.nodes {
            let refused = buy_ticket(node, &tokens.token).await.unwrap_err();
            assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
            assert!(refused.contains("disabled"), "{refused}");
        }
        d.stop().await;
    }

    async fn a_password_change_signs_out_earlier_tokens_and_their_connections(d: Deployment) {
        let first = register(&d, "ada").await;
        let mut here = connect(d.node("ada"), &first.token).await.unwrap();
        let mut there = connect(d.other_node("ada"), &first.token).await.unwrap();
        // An operator-minted token is tied to no password: it stays.
        let minted = d.client("ada", Codec::MsgPack).await;
        let changed =
            api(d.other_node("ada")).change_password("ada", PASSWORD, "battery staple").await.unwrap();
        // The connections on earlier tokens end at once, on every node.
        for client in [&mut here, &mut there] {
            assert_eq!(closed_with(client).await, Some(CloseCode::Unauthorized));
            assert!(client.close_info().unwrap().reason.contains("password was changed"));
        }
        minted.request(Ping {}).await.unwrap();
        let (code, reason) = refused(d.node("ada"), &first.token).await;
        assert_eq!(code, Some(CloseCode::Unauthorized));
        assert!(reason.contains("log in again"), "{reason}");
        assert_eq!(api(d.node("ada")).refresh(&first.refresh_token).await.unwrap_err().code(), Some("signed_out"));
        connect(d.node("ada"), &changed.token).await.unwrap().request(Ping {}).await.unwrap();
        assert_eq!(api(d.node("ada")).login("ada", PASSWORD).await.unwrap_err().code(), Some("wrong_password"));
        api(d.node("ada")).login("ada", "battery staple").await.unwrap();
        d.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_work_on_a_redis_cluster() {
    let d = Deployment::redis_cluster().await;
    let tokens = register(&d, "ada").await;
    let mut there = connect(d.other_node("ada"), &tokens.token).await.unwrap();
    let login = api(d.other_node("ada")).login("ada", PASSWORD).await.unwrap();
    api(d.node("ada")).refresh(&login.refresh_token).await.unwrap();
    let body = r#"{"name":"ada","reason":"left"}"#;
    let (status, _) = call(&d.nodes[0], "POST", "/admin/accounts/disable", Some(&operator_token()), body).await;
    assert_eq!(status, 200);
    assert_eq!(closed_with(&mut there).await, Some(CloseCode::AccountDisabled));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_connection_moves_onto_a_fresh_token_and_outlives_the_first() {
    // Tokens expire on the server's clock, which the test moves (from now:
    // the operator's token is minted on the real one).
    use hearth_server::clock::Clock as _;
    let clock = hearth_server::clock::ManualClock::new(hearth_server::clock::SystemClock.now());
    let mut config = test_config(Storage::Ephemeral { history_limit: 100 });
    config.accounts.token_ttl = Duration::from_secs(6);
    config.clock = std::sync::Arc::new(clock.clone());
    let mut d = Deployment::with_nodes(config, 1).await;
    d.clock = Some(clock);
    let first = register(&d, "ada").await;
    let mut ada = connect(&d.nodes[0], &first.token).await.unwrap();
    let stays = connect(&d.nodes[0], &first.token).await.unwrap();
    d.advance(Duration::from_secs(3));
    // Another member's token, or a refresh token, is refused and changes nothing.
    let bo = auth::mint(&secret(), &user("bo"), Duration::from_secs(60));
    let refused = ada.reauthenticate(bo).await.unwrap_err();
    assert!(matches!(&refused, hearth_cli::ClientError::Server(e) if e.code == ErrorCode::Unauthorized), "{refused}");
    let refused = ada.reauthenticate(first.refresh_token.clone()).await.unwrap_err();
    assert!(matches!(&refused, hearth_cli::ClientError::Server(e) if e.code == ErrorCode::Unauthorized), "{refused}");
    let fresh = api(&d.nodes[0]).refresh(&first.refresh_token).await.unwrap();
    ada.reauthenticate(fresh.token).await.unwrap();
    // Past the first token's 6 s (and any rounding), before the fresh one's 9.
    d.advance(Duration::from_millis(4_400));
    ada.request(Ping {}).await.expect("still connected past the first token's expiry");
    // The connection that stayed on the first token is not served past it.
    let mut stays = stays;
    assert!(stays.request(Ping {}).await.is_err(), "a request on an expired token is not answered");
    assert_eq!(closed_with(&mut stays).await, Some(CloseCode::TokenExpired));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_survive_a_restart() {
    let d = Deployment::single_durable().await;
    register(&d, "ada").await;
    let bo = register(&d, "bo").await;
    let body = r#"{"name":"bo","reason":"asked to leave"}"#;
    call(&d.nodes[0], "POST", "/admin/accounts/disable", Some(&operator_token()), body).await;
    let d = d.restart().await;
    let login = api(&d.nodes[0]).login("ada", PASSWORD).await.unwrap();
    connect(&d.nodes[0], &login.token).await.unwrap().request(Ping {}).await.unwrap();
    assert_eq!(api(&d.nodes[0]).login("bo", PASSWORD).await.unwrap_err().code(), Some("account_disabled"));
    assert_eq!(refused(&d.nodes[0], &bo.token).await.0, Some(CloseCode::AccountDisabled));
    let (status, list) = call(&d.nodes[0], "GET", "/admin/accounts", Some(&operator_token()), "").await;
    assert_eq!(status, 200);
    assert_eq!(list["accounts"][1]["disabled"], "asked to leave");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoints_answer_bad_requests_plainly() {
    let mut config: Config = test_config(Storage::Ephemeral { history_limit: 100 });
    config.accounts.registration = hearth_server::accounts::Registration::Open;
    let server = TestServer::start(config).await;
    let tokens = api(&server).register("ada", PASSWORD, None).await.unwrap();
    // method, path, bearer, body; the status and `error` expected.
    type Case<'a> = (&'a str, &'a str, Option<String>, String, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("POST", "/auth/login", None, "not json".into(), 400, "bad_request"),
        ("POST", "/auth/login", None, r#"{"name":"ada"}"#.into(), 400, "bad_request"),
        ("POST", "/auth/login", None, r#"{"name":"ada","password":"x","admin":true}"#.into(), 400, "bad_request"),
        ("GET", "/auth/login", None, String::new(), 400, "bad_request"),
        // The right name and password, as a list: serde would read them by position.
        ("POST", "/auth/login", None, format!(r#"["ada","{PASSWORD}"]"#), 400, "bad_request"),
        (
            "POST",
            "/auth/register",
            None,
            format!(r#"{{"name":"bo","password":"{}"}}"#, "x".repeat(300)),
            400,
            "bad_request",
        ),
        ("POST", "/auth/refresh", None, format!(r#"{{"refresh_token":"{}"}}"#, tokens.token), 401, "unauthorized"),
        ("POST", "/auth/refresh", None, r#"{"refresh_token":"a.b.c"}"#.into(), 401, "unauthorized"),
        ("GET", "/admin/accounts", None, String::new(), 401, "unauthorized"),
        ("GET", "/admin/accounts", Some(tokens.token.clone()), String::new(), 401, "unauthorized"),
        ("GET", "/admin/accounts", Some(tokens.refresh_token.clone()), String::new(), 401, "unauthorized"),
        (
            "POST",
            "/admin/accounts/disable",
            Some(operator_token()),
            r#"{"name":"nobody"}"#.into(),
            404,
            "no_such_account",
        ),
        ("POST", "/auth/nothing", None, "{}".into(), 404, "not_found"),
    ];
    for (method, path, bearer, body, status, code) in cases {
        let (got, answer) = call(&server, method, path, bearer.as_deref(), &body).await;
        assert_eq!(
            (got, answer["error"].as_str().unwrap_or_default()),
            (status, code),
            "{method} {path} {body}: {answer}"
        );
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()), "{answer}");
    }
    // A body over 8 KiB is refused unread.
    let big = format!(
        "POST /auth/login HTTP/1.1\r\ncontent-type: application/json\r\ncontent-length: 9000\r\n\r\n{}",
        "x".repeat(100)
    );
    assert!(http(&server, &big).await.starts_with("HTTP/1.1 413"));
    // The account still logs in; the server still serves.
    let mut ada = connect(&server, &api(&server).login("ada", PASSWORD).await.unwrap().token).await.unwrap();
    create_room(&ada, "still", None).await.unwrap();
    ada.join(&room("still")).await.unwrap();
    still_serving(&mut ada, &room("still"), 2).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_and_ambiguous_requests_to_the_endpoints_are_refused() {
    let mut config: Config = test_config(Storage::Ephemeral { history_limit: 100 });
    config.accounts.registration = hearth_server::accounts::Registration::Open;
    config.allowed_origins = vec!["https://chat.example.org".into()];
    let server = TestServer::start(config).await;
    api(&server).register("ada", PASSWORD, None).await.unwrap();
    let login = format!(r#"{{"name":"ada","password":"{PASSWORD}"}}"#);
    let post = |headers: &str, body: &str| {
        format!("POST /auth/login HTTP/1.1\r\nhost: hearth\r\n{headers}\r\n{body}", body = body)
    };
    let length = format!("content-length: {}\r\n", login.len());
    let json = "content-type: application/json\r\n";
    let chunked = format!("{:x}\r\n{login}\r\n0\r\n\r\n", login.len());
    // (what, headers, the body, the status expected)
    let cases = [
        // A form on any site can send text/plain without a preflight.
        ("JSON as text/plain", format!("content-type: text/plain\r\n{length}"), &login, 415),
        ("no content type", length.clone(), &login, 415),
        ("a foreign origin", format!("{json}{length}origin: https://evil.example\r\n"), &login, 403),
        // Transfer-Encoding wins over Content-Length, and the connection
        // closes after the answer (RFC 9112, 6.3): nothing is left to be read
        // as a second request. A body that is not chunked is refused.
        ("both framings, the body not chunked", format!("{json}{length}transfer-encoding: chunked\r\n"), &login, 400),
        ("both framings, chunked", format!("{json}{length}transfer-encoding: chunked\r\n"), &chunked, 200),
        ("two lengths", format!("{json}{length}content-length: 3\r\n"), &login, 400),
        ("two lengths in one", format!("{json}content-length: {}, 3\r\n", login.len()), &login, 400),
        ("chunked alone", format!("{json}transfer-encoding: chunked\r\n"), &chunked, 200),
        ("an encoding other than chunked", format!("{json}transfer-encoding: gzip\r\n"), &login, 400),
        ("the operator's site", format!("{json}{length}origin: https://chat.example.org\r\n"), &login, 200),
        ("the same length twice", format!("{json}{length}{length}"), &login, 200),
        ("JSON with a charset", format!("content-type: application/json; charset=utf-8\r\n{length}"), &login, 200),
    ];
    for (what, headers, body, status) in cases {
        let answer = http(&server, &post(&headers, body)).await;
        let got: u16 = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        assert_eq!(got, status, "{what}: {answer}");
        assert_eq!(answer.contains("refresh_token"), status == 200, "{what}: tokens only when allowed: {answer}");
    }
    // The operator's endpoints too.
    let disable = r#"{"name":"ada"}"#;
    let from_elsewhere = format!(
        "POST /admin/accounts/disable HTTP/1.1\r\nauthorization: Bearer {}\r\norigin: https://evil.example\r\n{json}content-length: {}\r\n\r\n{disable}",
        operator_token(),
        disable.len()
    );
    assert!(http(&server, &from_elsewhere).await.starts_with("HTTP/1.1 403"));
    api(&server).login("ada", PASSWORD).await.expect("ada was not disabled");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disable_announced_while_a_node_was_not_listening_is_caught_up() {
    let d = Deployment::cluster().await;
    let tokens = register(&d, "ada").await;
    let mut here = connect(&d.nodes[0], &tokens.token).await.unwrap();
    let mut there = connect(&d.nodes[1], &tokens.token).await.unwrap();
    let redis = d.redis.as_ref().unwrap();
    // Disabled behind the nodes' backs (as if its announcement were lost),
    // then their subscriptions broken: remade, they check their connections.
    redis.must(&["HSET", "behaviour:{accounts}:user:ada", "disabled", "lost announcement"]).await;
    redis.must(&["CLIENT", "KILL", "TYPE", "pubsub"]).await;
    assert_eq!(closed_with(&mut here).await, Some(CloseCode::AccountDisabled));
    assert_eq!(closed_with(&mut there).await, Some(CloseCode::AccountDisabled));
    d.stop().await;
}
