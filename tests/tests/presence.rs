//! Typing and presence over real sockets, on one node and on two nodes
//! sharing a Redis: typing reaches the others (not the typist), at most once
//! per three seconds; presence follows members connecting and leaving on any
//! node, gathered into one event a second however many arrive at once.

use std::collections::BTreeSet;
use std::time::Duration;

use hearth_cli::Client;
use hearth_protocol::ops::{Members, Presence, Typing};
use hearth_protocol::{Codec, ErrorCode, Event, Role};
use hearth_tests::*;

/// Presence changes `client` hears within `wait`: who came online, who left.
async fn presence_changes(client: &mut Client, wait: Duration) -> (Vec<Vec<String>>, BTreeSet<String>) {
    let deadline = tokio::time::Instant::now() + wait;
    let (mut events, mut offline) = (Vec::new(), BTreeSet::new());
    while let Ok(Ok(Some(event))) = tokio::time::timeout_at(deadline, client.next_event()).await.map(Ok::<_, ()>) {
        if let Event::Presence(p) = event {
            events.push(p.online.iter().map(|u| u.to_string()).collect());
            offline.extend(p.offline.iter().map(|u| u.to_string()));
        }
    }
    (events, offline)
}

both_modes_timed! {
    async fn typing_reaches_the_others_once_in_a_while(d: Deployment) {
        let (mut ada, bo, mut cy) = trio(&d, "typing").await;
        bo.request(Typing { room: room("typing") }).await.unwrap();
        let typing = until_event(&mut ada, "bo typing", |e| matches!(e, Event::Typing(_))).await;
        assert!(matches!(typing, Event::Typing(t) if t.user.as_str() == "bo"));
        until_event(&mut cy, "bo typing", |e| matches!(e, Event::Typing(_))).await;
        // Again within 3 s: answered, not passed on.
        d.advance(Duration::from_millis(2_900));
        bo.request(Typing { room: room("typing") }).await.unwrap();
        ada.send(&room("typing"), "marker").await.unwrap();
        let next = until_event(&mut cy, "the next event", |e| matches!(e, Event::Typing(_) | Event::Message(_))).await;
        assert!(matches!(next, Event::Message(_)), "the repeat was not passed on: {next:?}");
        // 3 s after the last one passed on: passed on again.
        d.advance(Duration::from_millis(100));
        bo.request(Typing { room: room("typing") }).await.unwrap();
        let again = until_event(&mut cy, "bo typing again", |e| matches!(e, Event::Typing(_) | Event::Message(_))).await;
        assert!(matches!(&again, Event::Typing(t) if t.user.as_str() == "bo"), "{again:?}");
        let outsider = d.client("zed", Codec::Json).await;
        assert_eq!(code(outsider.request(Typing { room: room("typing") }).await), ErrorCode::NotMember);
        d.stop().await;
    }
}

both_modes! {
    async fn presence_follows_members_on_every_node_one_event_a_second(d: Deployment) {
        let mut ada = d.client("ada", Codec::MsgPack).await;
        create_room(&ada, "lounge", None).await.unwrap();
        ada.join(&room("lounge")).await.unwrap();
        // Let ada's own arrival settle.
        presence_changes(&mut ada, Duration::from_millis(2500)).await;
        // Twelve members arrive at once, half on each node.
        let mut crowd = Vec::new();
        for n in 0..12 {
            let name = format!("m{n:02}");
            let mut member = d.node(&name).client(&name, Codec::MsgPack).await;
            member.join(&room("lounge")).await.unwrap();
            crowd.push(member);
        }
        let (events, _) = presence_changes(&mut ada, Duration::from_millis(3500)).await;
        let seen: BTreeSet<String> = events.iter().flatten().cloned().collect();
        let want: BTreeSet<String> = (0..12).map(|n| format!("m{n:02}")).collect();
        assert!(want.is_subset(&seen), "everyone came online: {seen:?}");
        assert!(events.len() <= 6, "gathered into a few events, not one each: {events:?}");
        // The presence request and the member list see every node.
        let online = ada.request(Presence { room: room("lounge") }).await.unwrap();
        assert_eq!(online.online.len(), 13);
        assert!(online.online.iter().any(|m| m.user.as_str() == "ada" && m.role == Role::Owner));
        let members = ada.request(Members { room: room("lounge") }).await.unwrap();
        assert!(members.members.iter().all(|m| m.online), "{members:?}");
        // Three leave.
        crowd.truncate(9);
        let (_, offline) = presence_changes(&mut ada, Duration::from_millis(3500)).await;
        assert_eq!(offline, ["m09", "m10", "m11"].into_iter().map(String::from).collect());
        d.stop().await;
    }
}
