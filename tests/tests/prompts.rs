//! Scheduled prompts over real sockets, on one node and on two nodes sharing
//! a Redis, with a clock the test moves: a moderator schedules a weekly
//! prompt and a one-off, lists and cancels them; the server posts each when
//! due — once, even with two nodes looking — in the moderator's name; and a
//! schedule survives a restart.

use std::time::Duration;

use hearth_cli::Client;
use hearth_protocol::ops::{CancelPrompt, Prompts, SchedulePrompt};
use hearth_protocol::{Codec, ErrorCode, Event, Millis, Text};
use hearth_tests::*;

const HOUR: u64 = 3600 * 1000;

fn schedule(name: &str, text: &str, at: Millis, weekly: bool) -> SchedulePrompt {
    SchedulePrompt { room: room(name), text: Text::new(text).unwrap(), at, weekly }
}

/// The prompts posted in `name` that `client` hears within a few seconds.
async fn posted(client: &mut Client, wait: Duration) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut texts = Vec::new();
    while let Ok(Some(Some(event))) = tokio::time::timeout_at(deadline, client.next_event()).await.map(Some) {
        if let Event::Message(m) = event
            && m.prompt.is_some()
        {
            texts.push(format!("{}: {}", m.from, m.text));
        }
    }
    texts
}

both_modes_timed! {
    async fn prompts_are_posted_when_due_once_and_weekly(d: Deployment) {
        let (ada, bo, mut cy) = trio(&d, "prompts").await;
        let now = d.now();
        let weekly = ada.request(schedule("prompts", "What is one small win you had this week?", Millis(now.0 + HOUR), true)).await.unwrap();
        let once = ada.request(schedule("prompts", "Photo walk tomorrow!", Millis(now.0 + 2 * HOUR), false)).await.unwrap();
        assert_eq!(code(bo.request(schedule("prompts", "spam", Millis(now.0 + HOUR), false)).await), ErrorCode::Forbidden);
        assert_eq!(code(ada.request(schedule("prompts", "late", Millis(now.0 - HOUR), false)).await), ErrorCode::BadRequest);
        let list = ada.request(Prompts { room: room("prompts") }).await.unwrap();
        assert_eq!(list.prompts.iter().map(|p| p.prompt).collect::<Vec<_>>(), [weekly.prompt, once.prompt]);
        // Nothing before its time.
        assert!(posted(&mut cy, Duration::from_millis(1500)).await.is_empty());
        d.advance(Duration::from_millis(HOUR));
        assert_eq!(posted(&mut cy, Duration::from_millis(3000)).await, ["ada: What is one small win you had this week?"]);
        d.advance(Duration::from_millis(HOUR));
        assert_eq!(posted(&mut cy, Duration::from_millis(3000)).await, ["ada: Photo walk tomorrow!"]);
        // The one-off is gone; the weekly one comes again a week after its time.
        let list = ada.request(Prompts { room: room("prompts") }).await.unwrap();
        assert_eq!(list.prompts.len(), 1);
        assert_eq!(list.prompts[0].next_at, Millis(now.0 + HOUR + 7 * 24 * HOUR));
        d.advance(Duration::from_millis(7 * 24 * HOUR));
        assert_eq!(posted(&mut cy, Duration::from_millis(3000)).await.len(), 1);
        // Cancelled, it is posted no more.
        ada.request(CancelPrompt { room: room("prompts"), prompt: weekly.prompt }).await.unwrap();
        assert_eq!(code(ada.request(CancelPrompt { room: room("prompts"), prompt: weekly.prompt }).await), ErrorCode::NoSuchTarget);
        d.advance(Duration::from_millis(7 * 24 * HOUR));
        assert!(posted(&mut cy, Duration::from_millis(2500)).await.is_empty());
        d.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = hearth_server::clock::ManualClock::new(START);
    let mut config = test_config(hearth_server::Storage::Dir(dir.path().to_path_buf()));
    config.clock = std::sync::Arc::new(clock.clone());
    let server = TestServer::start(config.clone()).await;
    let ada = server.client("ada", Codec::MsgPack).await;
    create_room(&ada, "kept", None).await.unwrap();
    ada.request(schedule("kept", "Monday check-in", Millis(START.0 + HOUR), true)).await.unwrap();
    server.stop().await;
    let server = TestServer::start(config).await;
    let mut bo = server.client("bo", Codec::MsgPack).await;
    bo.join(&room("kept")).await.unwrap();
    clock.advance(Duration::from_millis(HOUR));
    assert_eq!(posted(&mut bo, Duration::from_millis(3000)).await, ["ada: Monday check-in"]);
    server.stop().await;
}
