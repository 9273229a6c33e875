//! What one `history` page costs end to end — a client's request through a
//! real server to its store and back, over loopback — on one node and on two
//! nodes sharing a Redis, for a page of 50 messages, some reacted to (so the
//! page carries their `state`).
//!
//!     cargo bench -p hearth-tests --bench history

use divan::Bencher;
use hearth_cli::Client;
use hearth_protocol::ops::{History, React};
use hearth_protocol::{Codec, Emoji};
use hearth_tests::{Deployment, create_room, room};

fn main() {
    divan::main();
}

/// A room of 60 messages, every tenth reacted to, and a member reading it.
async fn reading(d: &Deployment) -> Client {
    let ada = d.client("ada", Codec::MsgPack).await;
    create_room(&ada, "shelf", None).await.expect("the room");
    for n in 0..60 {
        let sent = ada.send(&room("shelf"), &format!("roll {n} developed")).await.expect("a message");
        if n % 10 == 0 {
            let react = React { room: room("shelf"), target: sent.seq, emoji: Emoji::new("📷").unwrap(), on: true };
            ada.request(react).await.expect("a reaction");
        }
    }
    ada
}

#[divan::bench(args = ["one_node", "two_nodes_on_redis"], sample_count = 30, sample_size = 20)]
fn history_page_of_50(bencher: Bencher, mode: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (d, reader) = runtime.block_on(async {
        let d = match mode {
            "one_node" => Deployment::single().await,
            _ => Deployment::cluster().await,
        };
        let reader = reading(&d).await;
        (d, reader)
    });
    let page = || History { room: room("shelf"), before: None, after: None, limit: Some(50) };
    bencher.bench_local(|| {
        let got = runtime.block_on(reader.request(page())).expect("a page");
        assert_eq!(got.events.len(), 50);
    });
    drop(reader);
    runtime.block_on(d.stop());
}
