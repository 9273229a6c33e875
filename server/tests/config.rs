//! `hearth-server --config FILE` and `check-config`, the real binary: the
//! example file in the repository is valid, flags and `HEARTH_*` variables win
//! over the file, secrets are not printed, and mistakes name the key.

mod common;

use std::process::{Command, Output};

use common::BIN;

fn check_config(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).arg("check-config").env_remove("HEARTH_TOKEN_SECRET").env_remove("HEARTH_SERVER_CONFIG");
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.output().expect("run hearth-server check-config")
}

fn text(output: &Output) -> (String, String) {
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// The example file of this checkout (read at run time: a build shared between
/// checkouts must read this one's).
fn example() -> String {
    format!("{}/../hearth.example.toml", std::env::var("CARGO_MANIFEST_DIR").unwrap())
}

#[test]
fn the_example_file_loads_and_flags_and_variables_win_over_it() {
    let output = check_config(&["--config", &example()], &[]);
    let (out, err) = text(&output);
    assert!(output.status.success(), "{err}");
    assert!(out.contains("listen = \"0.0.0.0:7878\""), "{out}");
    assert!(out.contains("message-rate = 20"), "{out}");
    assert!(out.contains("redis-history-age = \"90d\""), "durations print as people write them: {out}");
    assert!(out.contains("room-idle = \"60s\"") || out.contains("room-idle = \"1m\""), "{out}");
    let output = check_config(&["--config", &example(), "--message-rate", "7"], &[("HEARTH_LISTEN", "127.0.0.1:9999")]);
    let (out, _) = text(&output);
    assert!(out.contains("message-rate = 7"), "the flag wins: {out}");
    assert!(out.contains("listen = \"127.0.0.1:9999\""), "the variable wins: {out}");
}

#[test]
fn secrets_are_not_printed() {
    let output = check_config(
        &["--redis", "redis://hearth:hunter2@10.0.0.5:6379"],
        &[("HEARTH_TOKEN_SECRET", "a-secret-that-must-not-appear-anywhere-0123")],
    );
    let (out, err) = text(&output);
    assert!(output.status.success(), "{err}");
    assert!(!out.contains("hunter2") && !out.contains("a-secret-that-must-not"), "{out}");
    assert!(out.contains("redis://hearth:***@10.0.0.5:6379"), "{out}");
}

#[test]
fn mistakes_name_the_key_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    for (contents, expect) in [
        ("mesage-rate = 5\n", "mesage-rate"),
        ("message-rate = 0\n", "`message-rate` (--message-rate) must be at least 1"),
        ("room-idle = \"soon\"\n", "room-idle"),
        ("allowed-origins = [\"chat.example.org\"]\n", "write scheme://host[:port]"),
        ("ephemeral = true\nredis = \"redis://127.0.0.1:6379\"\n", "exclude each other"),
        ("redis-prefix = \"chat{a}\"\n", "hash tags"),
    ] {
        std::fs::write(&file, contents).unwrap();
        let output = check_config(&["--config", file.to_str().unwrap()], &[]);
        let (_, err) = text(&output);
        assert!(!output.status.success(), "{contents} was accepted");
        assert!(err.contains(expect), "{contents}: {err}");
    }
    let output = check_config(&["--config", "/nonexistent/hearth.toml"], &[]);
    assert!(text(&output).1.contains("cannot read the config file /nonexistent/hearth.toml"));
}
