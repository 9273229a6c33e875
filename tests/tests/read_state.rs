//! Read state over real sockets, on one node and on two nodes sharing a
//! Redis: a member's mark reaches every device of theirs live, positions
//! move forward only, unread counts are exact (others' messages only), and
//! positions survive a restart.

use hearth_cli::Client;
use hearth_protocol::event::ReadEvent;
use hearth_protocol::ops::{MarkAllRead, MarkRead, ReadState, RoomRead};
use hearth_protocol::{Codec, ErrorCode, Event, Seq};
use hearth_tests::*;

async fn state_of(client: &Client, name: &str) -> RoomRead {
    let list = client.request(ReadState {}).await.unwrap();
    list.rooms.into_iter().find(|r| r.room == room(name)).unwrap_or_else(|| panic!("{name} in the read state"))
}

async fn mark(client: &Client, name: &str, seq: u64) -> Seq {
    client.request(MarkRead { room: room(name), seq: Seq(seq) }).await.unwrap().seq
}

both_modes! {
    async fn a_mark_reaches_every_device_and_unread_counts_are_exact(d: Deployment) {
        let ada = d.client("ada", Codec::MsgPack).await;
        create_room(&ada, "cameras", None).await.unwrap();
        // Bo on two devices, on different nodes when there are two.
        let mut phone = d.nodes[0].client("bo", Codec::Json).await;
        let mut laptop = d.nodes[d.nodes.len() - 1].client("bo", Codec::MsgPack).await;
        phone.join(&room("cameras")).await.unwrap();
        laptop.join(&room("cameras")).await.unwrap();
        let start = state_of(&phone, "cameras").await;
        let mut seqs = Vec::new();
        for n in 1..=3 {
            seqs.push(ada.send(&room("cameras"), &format!("ada {n}")).await.unwrap().seq);
        }
        phone.send(&room("cameras"), "bo's own").await.unwrap();
        let now = state_of(&laptop, "cameras").await;
        assert_eq!(now.unread, start.unread + 3, "ada's three; bo's own post does not count");
        assert!(!now.more);

        // The phone marks ada's second message read; the laptop hears it.
        assert_eq!(mark(&phone, "cameras", seqs[1].0).await, seqs[1]);
        let heard = until_event(&mut laptop, "the read mark", |e| matches!(e, Event::Read(_))).await;
        assert_eq!(heard, Event::Read(ReadEvent { room: room("cameras"), seq: seqs[1] }));
        let after = state_of(&laptop, "cameras").await;
        assert_eq!((after.seq, after.unread), (seqs[1], 1), "one of ada's left");

        // Never back; never past the newest.
        assert_eq!(mark(&laptop, "cameras", seqs[0].0).await, seqs[1], "a device that is behind moves nothing");
        let head = mark(&laptop, "cameras", u64::MAX).await;
        assert_eq!(head, state_of(&phone, "cameras").await.head, "past the newest is the newest");
        let _ = until_event(&mut phone, "the second mark", |e| matches!(e, Event::Read(r) if r.seq == head)).await;
        assert_eq!(state_of(&phone, "cameras").await.unread, 0);

        // A message deleted since is no longer unread.
        let gone = ada.send(&room("cameras"), "oops, wrong room").await.unwrap().seq;
        assert_eq!(state_of(&phone, "cameras").await.unread, 1);
        ada.request(hearth_protocol::ops::Delete { room: room("cameras"), target: gone }).await.unwrap();
        assert_eq!(state_of(&phone, "cameras").await.unread, 0, "deleted, so nothing to read");

        // All read at once, across rooms.
        create_room(&ada, "darkroom", None).await.unwrap();
        phone.join(&room("darkroom")).await.unwrap();
        ada.send(&room("darkroom"), "fixer is exhausted").await.unwrap();
        ada.send(&room("cameras"), "one more").await.unwrap();
        assert_eq!(state_of(&phone, "darkroom").await.unread, 1);
        assert_eq!(phone.request(MarkAllRead {}).await.unwrap().rooms, 2);
        for name in ["cameras", "darkroom"] {
            assert_eq!(state_of(&laptop, name).await.unread, 0, "{name}");
        }

        // Only a member marks a room.
        let cy = d.client("cy", Codec::MsgPack).await;
        let refused = cy.request(MarkRead { room: room("cameras"), seq: Seq(1) }).await;
        assert_eq!(code(refused), ErrorCode::NotMember);
        d.stop().await;
    }
}

async fn survives(d: Deployment) {
    let ada = d.client("ada", Codec::MsgPack).await;
    create_room(&ada, "cameras", None).await.unwrap();
    let mut bo = d.client("bo", Codec::MsgPack).await;
    bo.join(&room("cameras")).await.unwrap();
    let first = ada.send(&room("cameras"), "one").await.unwrap().seq;
    ada.send(&room("cameras"), "two").await.unwrap();
    mark(&bo, "cameras", first.0).await;
    drop((ada, bo));
    let d = d.restart().await;
    let bo = d.client("bo", Codec::MsgPack).await;
    let state = state_of(&bo, "cameras").await;
    assert_eq!((state.seq, state.unread), (first, 1), "where bo stood, and what came after");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_positions_survive_a_restart_on_one_node() {
    survives(Deployment::single_durable().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_positions_survive_a_restart_of_a_cluster() {
    survives(Deployment::cluster().await).await;
}
