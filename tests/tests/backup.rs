//! Backups of the embedded store, taken by `hearth_server::backup` (what
//! `hearth-server backup` runs) while a real server serves and a writer
//! keeps posting: restored into a fresh directory, the store checks whole,
//! a server starts on it, and every message acknowledged before the backup
//! began is there, under its seq. Restoring over a running server's
//! directory is refused; over a stopped one (in the same process: a stopped
//! server lets go of its files), what was there is moved aside.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth_protocol::{Codec, Event, Seq};
use hearth_server::backup::{self, BackupError};
use hearth_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_every_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::durable(dir.path().to_path_buf()).await;
    let mut ada = server.client("ada", Codec::MsgPack).await;
    create_room(&ada, "busy", None).await.unwrap();
    ada.join(&room("busy")).await.unwrap();

    // A writer posts for the whole test, noting each message once acknowledged.
    let acked: Arc<Mutex<Vec<(Seq, String)>>> = Arc::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let writer = {
        let (acked, stop) = (acked.clone(), stop.clone());
        let bo = server.client("bo", Codec::Json).await;
        tokio::spawn(async move {
            let mut bo = bo;
            bo.join(&room("busy")).await.unwrap();
            for n in 0..20_000 {
                if stop.is_cancelled() {
                    break;
                }
                let text = format!("message {n}");
                let sent = bo.send(&room("busy"), &text).await.unwrap();
                acked.lock().unwrap().push((sent.seq, text));
            }
        })
    };
    let count = || acked.lock().unwrap().len();
    let wait = std::time::Instant::now();
    while count() < 300 {
        assert!(wait.elapsed() < Duration::from_secs(30), "the writer got going");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Everything acknowledged before the backup begins must be in it.
    let before: Vec<(Seq, String)> = acked.lock().unwrap().clone();
    let dest = tempfile::tempdir().unwrap();
    let taken = dest.path().join("nightly");
    let (from, to) = (dir.path().to_path_buf(), taken.clone());
    let manifest = tokio::task::spawn_blocking(move || backup::backup(&from, &to)).await.unwrap().unwrap();
    assert!(manifest.files.contains(&"hearth.db".to_string()), "{manifest:?}");
    let at_backup = count();
    while count() < at_backup + 300 {
        assert!(wait.elapsed() < Duration::from_secs(60), "the writer went on");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A second backup into the same place is refused; a restore over the
    // running server is refused, and touches nothing.
    assert!(matches!(backup::backup(dir.path(), &taken), Err(BackupError::NotEmpty { .. })));
    assert!(matches!(backup::restore(&taken, dir.path()), Err(BackupError::InUse { .. })));
    stop.cancel();
    writer.await.unwrap();
    drop(ada);
    server.stop().await;

    // Restored into a fresh directory: whole, and a server serves it.
    let fresh = tempfile::tempdir().unwrap();
    assert_eq!(backup::restore(&taken, fresh.path()).unwrap(), None, "nothing to move aside");
    let store = hearth_server::store::sqlite::SqliteStore::open(fresh.path()).unwrap();
    let checks = backup::check(&store).unwrap();
    assert!(checks.iter().all(|c| c.problems.is_empty()), "{checks:?}");
    drop(store);
    let restored = TestServer::durable(fresh.path().to_path_buf()).await;
    let ada = restored.client("ada", Codec::MsgPack).await;
    let history = ada.history_all(&room("busy")).await.unwrap();
    let seqs: Vec<Seq> = history.iter().filter_map(Event::seq).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0].next()), "no gap in the restored timeline");
    let texts: std::collections::HashMap<Seq, String> = history
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some((m.seq, m.text.as_str().to_string())),
            _ => None,
        })
        .collect();
    for (seq, text) in &before {
        assert_eq!(texts.get(seq), Some(text), "acknowledged message {seq} before the backup");
    }
    assert!(texts.len() >= before.len());
    drop(ada);
    restored.stop().await;

    // Restored over the directory of a server that stopped (it let go of
    // its files): what was there is moved aside, not lost.
    let aside = backup::restore(&taken, fresh.path()).unwrap().expect("the old files moved aside");
    assert!(aside.join("hearth.db").exists());
}

/// `hearth-server check --redis URL`: a cluster's rooms read from Redis,
/// whole; then a snapshot missing an event (one taken out of a room's
/// stream), and check names the gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reads_a_cluster_s_rooms_in_redis_and_names_a_gap() {
    use hearth_server::broker::cluster::RedisBroker;
    let d = Deployment::cluster().await;
    let (_ada, bo, _cy) = trio(&d, "club").await;
    let mut last = Seq::ZERO;
    for n in 0..5 {
        last = bo.send(&room("club"), &format!("roll {n}")).await.unwrap().seq;
    }
    let redis = d.redis.as_ref().expect("a cluster deployment");
    let hearth_server::Storage::Redis(config) = cluster_config(&redis.url(), "behaviour").storage else {
        unreachable!("a cluster config")
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let broker =
        RedisBroker::connect(config, hearth_server::clock::system(), Arc::new(backup::NoDelivery), stop.clone())
            .await
            .unwrap();
    let checks = backup::check_broker(&broker).await.unwrap();
    let club = checks.iter().find(|c| c.room == room("club")).expect("the room checked");
    assert!(club.problems.is_empty(), "{checks:?}");
    assert_eq!(club.head, last);

    let gone = format!("{}-0", last.0 - 2);
    redis.must(&["XDEL", "behaviour:{club}:log", &gone]).await;
    let checks = backup::check_broker(&broker).await.unwrap();
    let club = checks.iter().find(|c| c.room == room("club")).expect("the room checked");
    assert!(club.problems.iter().any(|p| p.contains("a gap")), "{checks:?}");
    stop.cancel();
}
