//! `hearth` in script mode, the real binary against a real server: what it
//! prints (text and `--json`), and its exit code for each class of failure.

use std::process::Output;
use std::time::Duration;

use hearth_protocol::UserId;
use hearth_server::auth::{self, Secret};
use hearth_server::{Config, Storage};
use tokio_util::sync::CancellationToken;

const SECRET: &[u8] = b"script-mode-test-secret-0123456789abcdef";

fn token(name: &str) -> String {
    auth::mint(&Secret::new(SECRET.to_vec()).unwrap(), &UserId::new(name).unwrap(), Duration::from_secs(600))
}

async fn server() -> (String, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let config = Config::new(Storage::Ephemeral { history_limit: 1000 }, Secret::new(SECRET.to_vec()).unwrap());
    let stop = CancellationToken::new();
    tokio::spawn(hearth_server::run(listener, config, stop.clone()));
    (url, stop)
}

/// Runs `hearth ARGS` as `user` (no token when `None`), bounded in time.
async fn hearth(url: &str, user: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hearth"));
    cmd.args(args)
        .env("HEARTH_URL", url)
        .env("HEARTH_CONFIG", "/nonexistent/hearth-test.toml")
        .env_remove("HEARTH_TOKEN");
    if let Some(user) = user {
        cmd.env("HEARTH_TOKEN", token(user));
    }
    cmd.kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(20), cmd.output()).await.expect("hearth finishes in time").unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_mode_prints_text_or_json_and_exits_with_the_class_of_failure() {
    let (url, stop) = server().await;
    let ok = hearth(&url, Some("ada"), &["create", "lab", "--topic", "Film lab"]).await;
    assert!(ok.status.success(), "{ok:?}");
    assert_eq!(stdout(&ok), "created lab (cap 100, open)\n");
    assert!(hearth(&url, Some("ada"), &["send", "--room", "lab", "first roll"]).await.status.success());
    let pinned = hearth(&url, Some("ada"), &["pin", "--room", "lab", "--note", "Be kind", "--json"]).await;
    let pinned: serde_json::Value = serde_json::from_str(stdout(&pinned).trim()).unwrap();
    assert_eq!(pinned["pin"]["text"], "Be kind");
    let joined = hearth(&url, Some("bo"), &["join", "lab"]).await;
    assert_eq!(stdout(&joined), "joined lab as member (2 members)\n");
    let history = hearth(&url, Some("bo"), &["history", "--room", "lab", "--json"]).await;
    let kinds: Vec<String> = stdout(&history)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["ev"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["member_joined", "message", "pin", "member_joined"]);
    let members = hearth(&url, Some("bo"), &["members", "--room", "lab"]).await;
    assert!(stdout(&members).starts_with("ada"), "{}", stdout(&members));
    // Ada's message is unread for bo until bo marks the room read.
    let unread = hearth(&url, Some("bo"), &["unread", "--json"]).await;
    let unread: serde_json::Value = serde_json::from_str(stdout(&unread).trim()).unwrap();
    assert_eq!((unread["room"].as_str(), unread["unread"].as_u64()), (Some("lab"), Some(1)), "{unread}");
    let read = hearth(&url, Some("bo"), &["read", "lab"]).await;
    assert!(stdout(&read).starts_with("lab read up to #"), "{}", stdout(&read));
    assert!(stdout(&hearth(&url, Some("bo"), &["unread"]).await).contains("   0  unread"));
    // Search: the index follows the timeline a moment behind.
    let mut found = String::new();
    for _ in 0..100 {
        found = stdout(&hearth(&url, Some("bo"), &["search", "ROLL"]).await);
        if found != "nothing found\n" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(found.starts_with("lab #2 ") && found.ends_with(" ada: first roll\n"), "{found}");
    let json = stdout(&hearth(&url, Some("bo"), &["search", "irst", "--room", "lab", "--json"]).await);
    let json: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(json["parts"], serde_json::json!(["f", "irst", " roll"]));
    assert_eq!(stdout(&hearth(&url, Some("bo"), &["search", "NOT \"roll\" OR *"]).await), "nothing found\n");

    // A direct conversation: its room, then the usual commands in it.
    let dm = stdout(&hearth(&url, Some("bo"), &["dm", "ada"]).await);
    assert!(dm.starts_with("dm-") && dm.ends_with(" (with ada; 2 members now)\n"), "{dm}");
    let dm_room = dm.split_whitespace().next().unwrap().to_string();
    assert!(hearth(&url, Some("bo"), &["send", "--room", &dm_room, "psst"]).await.status.success());
    let rooms = stdout(&hearth(&url, Some("ada"), &["rooms"]).await);
    assert!(rooms.contains(&dm_room) && rooms.contains("direct") && rooms.contains("between bo, ada"), "{rooms}");
    assert_eq!(stdout(&hearth(&url, Some("ada"), &["block", "bo"]).await), "blocked bo\n");
    assert_eq!(stdout(&hearth(&url, Some("ada"), &["blocks"]).await), "bo\n");
    let refused = hearth(&url, Some("bo"), &["send", "--room", &dm_room, "again?"]).await;
    assert_eq!(refused.status.code(), Some(6), "a blocked member is refused like a forbidden one");
    assert_eq!(stdout(&hearth(&url, Some("ada"), &["unblock", "bo"]).await), "unblocked bo\n");
    assert_eq!(stdout(&hearth(&url, Some("ada"), &["blocks"]).await), "you block nobody\n");
    let notify = stdout(&hearth(&url, Some("bo"), &["notify", "lab", "everything"]).await);
    assert_eq!(notify, "while you are away, lab tells you of every message\n");

    // Each class of failure has its code.
    let code = |output: Output| output.status.code();
    assert_eq!(code(hearth(&url, None, &["rooms"]).await), Some(2), "no token: usage");
    assert_eq!(code(hearth("ws://127.0.0.1:1", Some("ada"), &["rooms"]).await), Some(3), "unreachable");
    let forged = hearth(&url, None, &["--token", "not.a.token", "rooms"]).await;
    assert_eq!(code(forged), Some(4), "refused token");
    assert_eq!(code(hearth(&url, Some("ada"), &["history", "--room", "nowhere"]).await), Some(5), "not found");
    assert_eq!(code(hearth(&url, Some("cy"), &["history", "--room", "lab"]).await), Some(6), "not a member");
    assert_eq!(code(hearth(&url, Some("bo"), &["unpin", "--room", "lab", "3"]).await), Some(6), "not a moderator");
    let wrong = hearth(&url, Some("ada"), &["send", "--room", "lab"]).await;
    assert_eq!(code(wrong), Some(2), "clap's usage error");
    stop.cancel();
}

/// Runs `hearth ARGS` with the config file `config` and `input` on standard input.
async fn hearth_as(url: &str, config: &std::path::Path, args: &[&str], input: &str) -> Output {
    use tokio::io::AsyncWriteExt;
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hearth"));
    cmd.args(args)
        .env("HEARTH_URL", url)
        .env("HEARTH_CONFIG", config)
        .env_remove("HEARTH_TOKEN")
        .env_remove("HEARTH_PROFILE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    tokio::time::timeout(Duration::from_secs(20), child.wait_with_output()).await.expect("in time").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_login_refresh_and_passwd_keep_the_profile() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let mut config = Config::new(Storage::Ephemeral { history_limit: 1000 }, Secret::new(SECRET.to_vec()).unwrap());
    config.accounts.registration = hearth_server::accounts::Registration::Open;
    let stop = CancellationToken::new();
    tokio::spawn(hearth_server::run(listener, config, stop.clone()));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    let profile = || hearth_cli::profile::ConfigFile::load(&file).unwrap().profiles["default"].clone();

    let registered = hearth_as(&url, &file, &["register", "ada", "--password-stdin"], "correct horse\n").await;
    assert!(registered.status.success(), "{registered:?}");
    assert!(stdout(&registered).starts_with("registered ada"), "{}", stdout(&registered));
    let first = profile();
    assert_eq!(first.user.as_deref(), Some("ada"));
    assert!(first.refresh_token.is_some());
    let made = hearth_as(&url, &file, &["create", "lab"], "").await;
    assert!(made.status.success(), "{made:?}");

    // An expired access token is refreshed before connecting, and saved.
    let mut stale = hearth_cli::profile::ConfigFile::load(&file).unwrap();
    stale.profiles.get_mut("default").unwrap().expires_at = Some(1);
    stale.save(&file).unwrap();
    let rooms = hearth_as(&url, &file, &["rooms"], "").await;
    assert!(rooms.status.success(), "{rooms:?}");
    assert!(stdout(&rooms).starts_with("lab"), "{}", stdout(&rooms));
    assert!(profile().expires_at.unwrap() > 1);

    let changed = hearth_as(&url, &file, &["passwd", "--password-stdin"], "correct horse\nbattery staple\n").await;
    assert!(changed.status.success(), "{changed:?}");
    let wrong = hearth_as(&url, &file, &["login", "--name", "ada", "--password-stdin"], "correct horse\n").await;
    assert_eq!(wrong.status.code(), Some(4), "{wrong:?}");
    let right = hearth_as(&url, &file, &["login", "--name", "ada", "--password-stdin"], "battery staple\n").await;
    assert!(right.status.success(), "{right:?}");
    let sent = hearth_as(&url, &file, &["send", "--room", "lab", "after the change"], "").await;
    assert!(sent.status.success(), "{sent:?}");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_keeps_its_login_fresh_without_reconnecting() {
    use tokio::io::AsyncBufReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let mut config = Config::new(Storage::Ephemeral { history_limit: 1000 }, Secret::new(SECRET.to_vec()).unwrap());
    config.accounts.registration = hearth_server::accounts::Registration::Open;
    config.accounts.token_ttl = Duration::from_secs(3);
    let stop = CancellationToken::new();
    tokio::spawn(hearth_server::run(listener, config, stop.clone()));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    assert!(hearth_as(&url, &file, &["register", "ada", "--password-stdin"], "correct horse\n").await.status.success());
    assert!(hearth_as(&url, &file, &["create", "lab"], "").await.status.success());

    let mut tail = tokio::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["tail", "--room", "lab"])
        .env("HEARTH_URL", &url)
        .env("HEARTH_CONFIG", &file)
        .env_remove("HEARTH_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(tail.stdout.take().unwrap()).lines();
    // Past the first token's life (3 s, plus up to a second of rounding).
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    let sent = hearth(&url, Some("bo"), &["send", "--room", "lab", "late news"]).await;
    assert!(sent.status.success(), "{sent:?}");
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("late news") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(seen, Ok(true), "tail printed the message sent after its first token expired");
    tail.start_kill().unwrap();
    let stderr = tail.wait_with_output().await.unwrap().stderr;
    let stderr = String::from_utf8_lossy(&stderr);
    assert!(!stderr.contains("disconnected"), "moved onto fresh tokens, never closed: {stderr}");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_community_tools_have_a_subcommand_each() {
    let (url, stop) = server().await;
    let run = |user: &'static str, args: &[&str]| {
        let (url, args) = (url.clone(), args.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = hearth(&url, Some(user), &args).await;
            assert!(out.status.success(), "{user} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            stdout(&out)
        }
    };
    run("ada", &["create", "club", "--visibility", "approval"]).await;
    run("ada", &["pin", "--room", "club", "--title", "Rules", "--note", "Be kind."]).await;
    run("ada", &["set", "club", "--welcome", "Hi! Read the pins.", "--rules-ack", "true"]).await;
    // Bo asks; ada sees the queue and approves.
    assert_eq!(hearth(&url, Some("bo"), &["join", "club"]).await.status.code(), Some(6), "approval required");
    run("bo", &["request", "club", "--note", "I shoot a Leica"]).await;
    assert!(run("ada", &["requests", "club"]).await.contains("I shoot a Leica"));
    assert_eq!(run("ada", &["approve", "--room", "club", "bo"]).await, "approved bo\n");
    // Bo acknowledges the rules, then posts in a thread.
    assert!(run("bo", &["ack-rules", "club"]).await.contains("acknowledged the rules, version 1"));
    let sent = run("bo", &["send", "--room", "club", "Portra at 800?"]).await;
    let root = sent.split('#').nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let root = root.as_str();
    run("ada", &["send", "--room", "club", "--thread", root, "Push one stop"]).await;
    run("ada", &["react", "--room", "club", root, "👍"]).await;
    let thread = run("bo", &["thread", "--room", "club", root]).await;
    assert!(thread.contains("Portra at 800?") && thread.contains("Push one stop"), "{thread}");
    // Roles, moderation and its log.
    run("ada", &["role", "--room", "club", "bo", "welcomer", "--for", "7d", "--title", "topic lead"]).await;
    assert!(run("ada", &["members", "--room", "club"]).await.contains("welcomer"));
    let invite = run("bo", &["invite", "club", "--uses", "1"]).await;
    let code = invite.trim();
    run("cy", &["join", "club", "--invite", code]).await;
    run("ada", &["mute", "--room", "club", "cy", "--for", "10m", "--reason", "heated"]).await;
    assert_eq!(hearth(&url, Some("cy"), &["ack-rules", "club"]).await.status.code(), Some(0));
    assert_eq!(hearth(&url, Some("cy"), &["send", "--room", "club", "but"]).await.status.code(), Some(6), "muted");
    run("ada", &["unmute", "--room", "club", "cy"]).await;
    run("ada", &["kick", "--room", "club", "cy", "--reason", "cool off"]).await;
    // Probation: a newcomer's link is held, and the author is told so.
    run("ada", &["set", "club", "--probation", "3d"]).await;
    run("dee", &["join", "club", "--invite", run("ada", &["invite", "club"]).await.trim()]).await;
    run("dee", &["ack-rules", "club"]).await;
    let held = run("dee", &["send", "--room", "club", "my scans: https://example.org/roll"]).await;
    assert!(held.starts_with("held #") && held.contains("a moderator's look"), "{held}");
    let queue = run("ada", &["held", "club"]).await;
    assert!(queue.contains("my scans"), "{queue}");
    // Reports and warnings: dee reports bo's post, bo (a welcomer) never
    // sees it, ada resolves it with a warning; the warning is bo's to read.
    run("dee", &["report", "--room", "club", root, "--category", "off_topic", "--note", "not film"]).await;
    assert!(run("bo", &["reports", "club"]).await.is_empty(), "a report on bo reaches only those above bo");
    let reports = run("ada", &["reports", "club"]).await;
    assert!(reports.contains("OffTopic by dee (not film): Portra at 800?"), "{reports}");
    let wrong = hearth(&url, Some("dee"), &["report", "--room", "club", root, "--category", "rude"]).await;
    assert_eq!(wrong.status.code(), Some(2), "an unknown category is a usage error");
    run("ada", &["set", "club", "--warn-limit", "3", "--warn-action", "mute", "--warn-action-for", "1d"]).await;
    run("ada", &["resolve", "--room", "club", root, "warn", "--reason", "keep to film"]).await;
    assert!(run("ada", &["reports", "club"]).await.is_empty());
    let warnings = run("bo", &["warnings", "club"]).await;
    assert!(warnings.contains("ada") && warnings.contains("keep to film"), "{warnings}");
    assert!(warnings.contains("3 live warnings bring: Mute"), "{warnings}");
    run("ada", &["warn", "--room", "club", "dee", "--reason", "be kind"]).await;
    let warning = run("ada", &["warnings", "club", "dee"]).await;
    let number = warning.trim_start_matches('#').split_whitespace().next().unwrap().to_string();
    run("ada", &["unwarn", "--room", "club", "dee", &number]).await;
    assert!(!run("ada", &["warnings", "club", "dee"]).await.contains("be kind"));
    // The word filter: a rule added, a post refused with its reason, the rule removed.
    run(
        "ada",
        &["filter-add", "--room", "club", "spam\\.example", "--regex", "--action", "refuse", "--reason", "no shops"],
    )
    .await;
    assert!(run("ada", &["filters", "club"]).await.starts_with("1   Refuse pattern spam\\.example — no shops"));
    let refused = hearth(&url, Some("dee"), &["send", "--room", "club", "at spam.example"]).await;
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no shops"), "{refused:?}");
    run("ada", &["filter-remove", "--room", "club", "1"]).await;
    assert!(run("ada", &["filters", "club"]).await.is_empty());
    // Exports: the owner's room as JSON Lines and as a page; a member's own data.
    let lines = run("ada", &["export", "club"]).await;
    assert!(lines.starts_with("{\"ev\":\"member_joined\"") && lines.contains("Portra at 800?"), "{lines}");
    assert!(run("ada", &["export", "club", "--html"]).await.starts_with("<!doctype html>"));
    let mine: serde_json::Value = serde_json::from_str(&run("bo", &["export", "--mine"]).await).unwrap();
    assert_eq!(mine["user"], "bo");
    assert_eq!(hearth(&url, Some("bo"), &["export", "club"]).await.status.code(), Some(6), "only the owner");
    // A lockdown keeps newcomers out until lifted.
    assert!(run("ada", &["lockdown", "club", "joins", "--for", "1h"]).await.starts_with("club takes no new members"));
    let refused = hearth(&url, Some("eve"), &["request", "club"]).await;
    assert_eq!(refused.status.code(), Some(7), "locked: try again later");
    run("ada", &["lockdown", "club", "off"]).await;
    run("eve", &["request", "club"]).await;
    let log = run("ada", &["modlog", "club"]).await;
    for action in ["Kick", "Unmute", "Mute", "SetRole", "Approve", "Warn", "Unwarn", "Resolve"] {
        assert!(log.contains(action), "{action} in {log}");
    }
    stop.cancel();
}
