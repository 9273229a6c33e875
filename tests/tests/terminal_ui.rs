//! The terminal UI's state and network task against a real server (no
//! terminal: the test reads the UI's state instead of the screen). Two members
//! chat; the server stops and comes back on the same address; the UI
//! reconnects by itself and shows every message once, in order.

use std::time::Duration;

use hearth_cli::account::{AccountApi, Keeper};
use hearth_cli::tui::app::{Action, App, Connection, LineKind, Net};
use hearth_cli::tui::net;
use hearth_protocol::Codec;
use hearth_server::Storage;
use hearth_tests::*;
use tokio::sync::mpsc;

/// The UI of one member: its state, fed by its network task.
struct Ui {
    app: App,
    actions: mpsc::Sender<Action>,
    news: mpsc::Receiver<Net>,
    /// The connection was lost at some point.
    reconnected: bool,
}

impl Ui {
    fn start(server: &TestServer, name: &str) -> Ui {
        Self::start_with(server.options(name, Codec::MsgPack), None, name)
    }

    fn start_with(options: hearth_cli::Options, keeper: Option<Keeper>, name: &str) -> Ui {
        let (actions, action_rx) = mpsc::channel(64);
        let (news_tx, news) = mpsc::channel(1024);
        tokio::spawn(net::run(options, keeper, action_rx, news_tx));
        Ui { app: App::new(user(name)), actions, news, reconnected: false }
    }

    /// Feeds the UI what its network task says until `done` holds of its state.
    async fn until(&mut self, what: &str, done: impl Fn(&App) -> bool) {
        if !self.until_within(WAIT, what, done).await {
            panic!("no {what} within {WAIT:?}; status {:?}, connection {:?}", self.app.status, self.app.connection);
        }
    }

    /// As [`Ui::until`], giving up (`false`) after `wait`.
    async fn until_within(&mut self, wait: Duration, what: &str, done: impl Fn(&App) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        while !done(&self.app) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.news.recv()).await {
                Ok(Some(news)) => {
                    if matches!(news, Net::Connection(Connection::Reconnecting { .. })) {
                        self.reconnected = true;
                    }
                    self.app.on_net(news)
                }
                Ok(None) => panic!("the network task ended while waiting for {what}"),
                Err(_) => return false,
            }
        }
        true
    }

    /// The member presses a key; what it asks for goes to the network task.
    async fn press(&mut self, code: crossterm::event::KeyCode) {
        let key = crossterm::event::KeyEvent::new(code, crossterm::event::KeyModifiers::NONE);
        for action in self.app.on_key(key, 10) {
            self.actions.send(action).await.expect("the network task runs");
        }
    }

    /// The member types `line` and presses Enter.
    async fn enter(&mut self, line: &str) {
        for c in line.chars() {
            self.press(crossterm::event::KeyCode::Char(c)).await;
        }
        self.press(crossterm::event::KeyCode::Enter).await;
    }

    /// Waits until the status line says something containing `text`.
    async fn until_said(&mut self, text: &str) {
        self.until(text, |app| app.status.as_deref().is_some_and(|s| s.contains(text))).await;
    }

    fn messages(&self, room: &str) -> Vec<(u64, String)> {
        self.app.rooms.get(&hearth_tests::room(room)).map_or_else(Vec::new, |r| {
            r.lines
                .iter()
                .filter_map(|l| match &l.kind {
                    LineKind::Message { text, .. } => Some((l.seq.map_or(0, |s| s.0), text.clone())),
                    LineKind::Notice(_) => None,
                })
                .collect()
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_reconnects_after_a_restart_and_shows_every_message_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(Storage::Dir(dir.path().to_path_buf()));
    let server = TestServer::start(config.clone()).await;
    let addr = server.addr;
    let ada = server.client("ada", Codec::Json).await;
    create_room(&ada, "lounge", None).await.unwrap();
    ada.send(&room("lounge"), "before bo came").await.unwrap();

    let mut bo = Ui::start(&server, "bo");
    bo.until("online", |app| app.connection == Connection::Online).await;
    bo.actions.send(Action::Join(room("lounge"))).await.unwrap();
    bo.until("the room", |app| app.rooms.get(&room("lounge")).is_some_and(|r| r.joined)).await;
    for n in 0..10 {
        ada.send(&room("lounge"), &format!("one {n}")).await.unwrap();
    }
    bo.actions.send(Action::Send { room: room("lounge"), text: "hi ada".into(), thread: None }).await.unwrap();
    let wanted = |n: usize| {
        move |app: &App| {
            app.rooms
                .get(&room("lounge"))
                .is_some_and(|r| r.lines.iter().filter(|l| matches!(l.kind, LineKind::Message { .. })).count() >= n)
        }
    };
    bo.until("the first messages", wanted(12)).await;

    server.stop().await;
    drop(ada);
    bo.until("the lost connection", |app| matches!(app.connection, Connection::Reconnecting { .. })).await;
    let server = TestServer::start_at(config, addr).await;
    // Sent before bo is back: the resume replays them.
    let ada = server.client("ada", Codec::Json).await;
    for n in 0..10 {
        ada.send(&room("lounge"), &format!("two {n}")).await.unwrap();
    }
    bo.until("online again", |app| app.connection == Connection::Online).await;
    ada.send(&room("lounge"), "after bo is back").await.unwrap();
    bo.until("every message", wanted(23)).await;

    let got = bo.messages("lounge");
    assert_strictly_increasing(got.iter().map(|(s, _)| *s), "bo's screen");
    let texts: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
    let mut want = vec!["before bo came".to_string()];
    want.extend((0..10).map(|n| format!("one {n}")));
    want.push("hi ada".into());
    want.extend((0..10).map(|n| format!("two {n}")));
    want.push("after bo is back".into());
    assert_eq!(texts, want, "nothing missing, nothing twice");
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_refreshes_a_login_before_it_expires_without_reconnecting() {
    let mut config = test_config(Storage::Ephemeral { history_limit: 100 });
    config.accounts.registration = hearth_server::accounts::Registration::Open;
    config.accounts.token_ttl = Duration::from_secs(4);
    let server = TestServer::start(config).await;
    let api = AccountApi::new(server.url(), None);
    let tokens = api.register("ada", "correct horse", None).await.unwrap();
    let opened = tokio::time::Instant::now();
    let options = hearth_cli::Options::new(server.url(), tokens.token.clone(), Codec::MsgPack);
    let mut ada = Ui::start_with(options, Some(Keeper::new(api, tokens, None)), "ada");
    ada.until("online", |app| app.connection == Connection::Online).await;
    ada.actions.send(Action::Create { room: room("den"), topic: String::new() }).await.unwrap();
    ada.actions.send(Action::Join(room("den"))).await.unwrap();
    ada.until("the room", |app| app.rooms.get(&room("den")).is_some_and(|r| r.joined)).await;
    // Past the first token's life (4 s, plus up to a second of rounding).
    tokio::time::sleep_until(opened + Duration::from_millis(5_500)).await;
    ada.actions.send(Action::Send { room: room("den"), text: "still here".into(), thread: None }).await.unwrap();
    ada.until("the message", |app| {
        app.rooms.get(&room("den")).is_some_and(|r| {
            r.lines.iter().any(|l| matches!(&l.kind, LineKind::Message { text, .. } if text == "still here"))
        })
    })
    .await;
    assert!(!ada.reconnected, "the connection moved onto the fresh token instead of being closed");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_goes_on_with_the_login_a_password_change_saved() {
    use hearth_cli::profile::{ConfigFile, Profile};
    let mut config = test_config(Storage::Ephemeral { history_limit: 100 });
    config.accounts.registration = hearth_server::accounts::Registration::Open;
    let server = TestServer::start(config).await;
    let api = AccountApi::new(server.url(), None);
    let tokens = api.register("ada", "correct horse", None).await.unwrap();
    // The profile the UI's login came from, as `hearth login` writes it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hearth.toml");
    let save = |tokens: &hearth_cli::account::Tokens| {
        let mut file = ConfigFile::default();
        file.profiles.insert("default".into(), Profile::from_login(server.url(), tokens));
        file.save(&path).unwrap();
    };
    save(&tokens);
    let options = hearth_cli::Options::new(server.url(), tokens.token.clone(), Codec::MsgPack);
    let keeper = Keeper::new(api.clone(), tokens, Some((path.clone(), "default".into())));
    let mut ada = Ui::start_with(options, Some(keeper), "ada");
    ada.until("online", |app| app.connection == Connection::Online).await;
    ada.actions.send(Action::Create { room: room("den"), topic: String::new() }).await.unwrap();
    ada.actions.send(Action::Join(room("den"))).await.unwrap();
    ada.until("the room", |app| app.rooms.get(&room("den")).is_some_and(|r| r.joined)).await;

    // `hearth passwd` in another terminal: the server signs the UI's
    // connection out, and the new login lands in the profile.
    let changed = api.change_password("ada", "correct horse", "battery staple").await.unwrap();
    save(&changed);
    ada.until("back online", |app| {
        app.status.as_deref() == Some("reconnected") && app.connection == Connection::Online
    })
    .await;
    ada.actions.send(Action::Send { room: room("den"), text: "after the change".into(), thread: None }).await.unwrap();
    ada.until("the message", |app| {
        app.rooms.get(&room("den")).is_some_and(|r| {
            r.lines.iter().any(|l| matches!(&l.kind, LineKind::Message { text, .. } if text == "after the change"))
        })
    })
    .await;
    assert!(ada.reconnected, "the signed-out connection was made again with the new login");
    assert_eq!(ada.app.connection, Connection::Online);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_one_member_writes_shows_the_other_as_typing_until_the_message_comes() {
    use crossterm::event::KeyCode;
    let server = TestServer::start(test_config(Storage::Ephemeral { history_limit: 100 })).await;
    let owner = server.client("ada", Codec::Json).await;
    create_room(&owner, "lounge", None).await.unwrap();
    let mut uis = [Ui::start(&server, "ada"), Ui::start(&server, "bo")];
    for ui in uis.iter_mut() {
        ui.until("online", |app| app.connection == Connection::Online).await;
        ui.actions.send(Action::Join(room("lounge"))).await.unwrap();
        ui.until("the room", |app| app.rooms.get(&room("lounge")).is_some_and(|r| r.joined)).await;
    }
    let [ada, bo] = &mut uis;
    for c in "Portra at 800?".chars() {
        bo.press(KeyCode::Char(c)).await;
    }
    // Typing is ephemeral, told at most every few seconds: on a loaded
    // machine bo keeps typing, as a person would, until ada sees it.
    let bo_typing = |app: &App| app.typing_here().iter().any(|u| u.as_str() == "bo");
    for attempt in 0.. {
        if ada.until_within(Duration::from_secs(4), "bo typing", bo_typing).await {
            break;
        }
        assert!(attempt < 5, "ada never saw bo typing");
        bo.press(KeyCode::Char(' ')).await;
        bo.press(KeyCode::Backspace).await;
    }
    bo.press(KeyCode::Enter).await;
    ada.until("bo's message", |app| {
        app.rooms.get(&room("lounge")).is_some_and(|r| {
            r.lines.iter().any(|l| matches!(&l.kind, LineKind::Message { text, .. } if text == "Portra at 800?"))
        })
    })
    .await;
    assert!(ada.app.typing_here().is_empty(), "the message ends the indicator");
    assert!(bo.app.typing_here().is_empty(), "nobody is told of their own typing");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moderator_lists_releases_and_drops_held_posts_in_the_ui() {
    use hearth_protocol::ops::{RoomSettings, SendMessage, SetRoom};
    let d = Deployment::single_timed().await;
    let owner = d.client("ada", Codec::Json).await;
    create_room(&owner, "careful", None).await.unwrap();
    let probation = RoomSettings { probation_secs: Some(86_400), ..RoomSettings::default() };
    owner.request(SetRoom { room: room("careful"), settings: probation }).await.unwrap();
    let mut cy = d.client("cy", Codec::Json).await;
    cy.join(&room("careful")).await.unwrap();
    let link = |text: &str, cmid: &str| SendMessage {
        room: room("careful"),
        text: hearth_protocol::Text::new(text).unwrap(),
        cmid: hearth_protocol::ClientMsgId::new(cmid).unwrap(),
        thread: None,
    };
    assert!(cy.request(link("my rolls: https://example.org/roll1", "c1")).await.unwrap().held);

    let mut ada = Ui::start(&d.nodes[0], "ada");
    ada.until("online", |app| app.connection == Connection::Online).await;
    ada.until("the room", |app| app.rooms.get(&room("careful")).is_some_and(|r| r.joined)).await;
    ada.enter("/held").await;
    ada.until_said("cy: my rolls").await;
    ada.enter("/release cy").await;
    ada.until_said("released cy's post").await;
    ada.until("the released post", |app| {
        app.rooms.get(&room("careful")).is_some_and(|r| {
            r.lines.iter().any(|l| matches!(&l.kind, LineKind::Message { from, text, .. } if from.as_str() == "cy" && text.contains("roll1")))
        })
    })
    .await;

    // Probation's slow mode: the next post 30 s on, from cy's own UI, which
    // says it is held.
    d.advance(Duration::from_secs(31));
    drop(cy);
    let mut cy = Ui::start(&d.nodes[0], "cy");
    cy.until("the room", |app| app.rooms.get(&room("careful")).is_some_and(|r| r.joined)).await;
    cy.enter("buy now: https://example.org/spam").await;
    cy.until_said("held for a moderator's look").await;
    ada.until("the held notice", |app| {
        app.rooms.get(&room("careful")).is_some_and(|r| {
            r.lines
                .iter()
                .any(|l| matches!(&l.kind, LineKind::Notice(n) if n.contains("spam") && n.contains("/release cy")))
        })
    })
    .await;
    ada.enter("/drop cy selling").await;
    ada.until_said("dropped cy's post").await;
    ada.enter("/release cy").await;
    ada.until("the refusal", |app| app.status.as_deref().is_some_and(|s| s.contains("nothing of cy's is held"))).await;
    let shown = ada.messages("careful");
    assert!(!shown.iter().any(|(_, text)| text.contains("spam")), "a dropped post is never shown: {shown:?}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_opens_a_room_from_the_ui_and_an_approval_room_says_how_to_ask() {
    use hearth_protocol::ops::{CreateInvite, CreateRoom, Visibility};
    let server = TestServer::start(test_config(Storage::Ephemeral { history_limit: 100 })).await;
    let owner = server.client("ada", Codec::Json).await;
    for (name, visibility) in [("vault", Visibility::InviteOnly), ("porch", Visibility::Approval)] {
        let create = CreateRoom { room: room(name), topic: Default::default(), cap: None, visibility };
        owner.request(create).await.unwrap();
    }
    let invite = owner.request(CreateInvite { room: room("vault"), ttl_secs: None, max_uses: Some(1) }).await.unwrap();

    let mut bo = Ui::start(&server, "bo");
    bo.until("online", |app| app.connection == Connection::Online).await;
    bo.enter(&format!("/join vault {}", invite.code)).await;
    bo.until("the vault", |app| app.rooms.get(&room("vault")).is_some_and(|r| r.joined)).await;
    bo.enter("/join porch").await;
    bo.until_said("approval_required").await;
    assert!(bo.app.status.as_deref().is_some_and(|s| s.ends_with("/request ROOM [NOTE] asks to join")));
    bo.enter("/request porch I develop my own C-41").await;
    bo.until_said("asked to join porch").await;
    server.stop().await;
}
