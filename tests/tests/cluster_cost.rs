//! What a message costs Redis in cluster mode: one script call, one sharded
//! publish and one search feed entry per message, one subscription per room
//! per node — the same for a
//! room of 2 members as for one of 100 spread over two nodes. Counted by
//! watching Redis (`MONITOR`, which shows a script's own calls too) while a
//! burst of messages goes through, taking the commands on the room's keys
//! that are not presence's: the figure ARCHITECTURE.md and BENCHMARKS.md give
//! is this test's.

use std::collections::BTreeMap;
use std::time::Duration;

use hearth_protocol::Codec;
use hearth_server::Storage;
use hearth_testkit::RedisServer;
use hearth_tests::*;

/// The commands of `seen` (MONITOR lines) on room `name`'s keys, by name,
/// leaving out presence's (its own keys, and its events on the room's channel),
/// which come once a second or less, not per message.
fn room_commands(seen: &[String], name: &str) -> BTreeMap<String, u64> {
    let tag = format!("{{{name}}}");
    let mut calls = BTreeMap::new();
    // The search feed names the room as a field, outside the room's slot.
    let fed = format!("\"r\" \"{name}\"");
    for line in seen.iter().filter(|l| l.contains("\"cost:search\"") && l.contains(&fed)) {
        let Some(command) = line.split('"').nth(1) else { continue };
        *calls.entry(format!("{} (search feed)", command.to_lowercase())).or_insert(0) += 1;
    }
    for line in seen.iter().filter(|l| l.contains(&tag)) {
        if line.contains(&format!("{tag}:on")) || line.contains("presence") {
            continue;
        }
        // `TIME [DB SOURCE] "cmd" "arg" ...`
        let Some(command) = line.split('"').nth(1) else { continue };
        *calls.entry(command.to_lowercase()).or_insert(0) += 1;
    }
    calls
}

/// Sends `messages` to a room of `members` (split over both nodes), after
/// `before` messages not counted, and returns the commands Redis ran on the
/// room's keys for the counted ones, once every member has every message.
async fn cost_of(
    d: &Deployment,
    redis: &RedisServer,
    name: &str,
    members: usize,
    (before, messages): (usize, usize),
) -> BTreeMap<String, u64> {
    let r = room(name);
    let mut clients = Vec::new();
    for i in 0..members {
        let user = format!("{name}{i}");
        let mut client = d.client(&user, if i % 2 == 0 { Codec::MsgPack } else { Codec::Json }).await;
        if i == 0 {
            create_room(&client, name, Some(100)).await.unwrap();
        }
        client.join(&r).await.unwrap();
        clients.push(client);
    }
    let nodes: std::collections::BTreeSet<_> = (0..members).map(|i| d.node(&format!("{name}{i}")).addr).collect();
    assert_eq!(nodes.len(), 2, "members are on both nodes");
    let subscriptions = redis.must(&["PUBSUB", "SHARDNUMSUB", &format!("cost:{{{name}}}:events")]).await;
    assert_eq!(subscriptions.lines().nth(1), Some("2"), "one subscription per node, not per member");

    for n in 0..before {
        clients[n % members].send(&r, &format!("w{n}")).await.unwrap();
    }
    for client in &mut clients {
        collect_messages(client, &r, before).await.unwrap();
    }
    let mut watch = redis.monitor().await;
    for n in 0..messages {
        clients[n % members].send(&r, &format!("m{n}")).await.unwrap();
    }
    for client in &mut clients {
        assert_eq!(collect_messages(client, &r, messages).await.unwrap().len(), messages);
    }
    // The search feed's entry is added after the order, not waited for.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut cost = room_commands(&watch.seen().await, name);
    // A node's search index reads a room's history once when the room first
    // reaches it (what came before it was loaded there): a read per room
    // and node, not per message.
    cost.remove("xrange");
    cost
}

/// Commands per message, all kinds together.
fn per_message(cost: &BTreeMap<String, u64>, messages: usize) -> f64 {
    cost.values().sum::<u64>() as f64 / messages as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_costs_redis_the_same_whatever_the_room_size() {
    const MESSAGES: usize = 50;
    /// Client message ids a room remembers in this test: small, so a room's
    /// window fills within the test, as every busy room's does.
    const WINDOW: usize = 16;
    let redis = RedisServer::start().await;
    let mut config = cluster_config(&redis.url(), "cost");
    if let Storage::Redis(r) = &mut config.storage {
        // No probes during the count.
        r.probe_every = Duration::from_secs(3600);
    }
    config.rooms.dedupe_window = WINDOW;
    let d = Deployment::with_nodes(config, 2).await;

    // While the room's window of client message ids has room.
    let small = cost_of(&d, &redis, "pair", 2, (0, WINDOW)).await;
    let big = cost_of(&d, &redis, "hundred", 100, (0, WINDOW)).await;
    // Once it is full, as in any room that has seen 4,096 messages.
    let full = cost_of(&d, &redis, "full", 2, (WINDOW, MESSAGES)).await;
    println!("Redis commands for {WINDOW} messages, 2 members: {small:?}");
    println!("Redis commands for {WINDOW} messages, 100 members on two nodes: {big:?}");
    println!("Redis commands for {MESSAGES} messages once the cmid window is full: {full:?}");
    for (cost, messages) in [(&small, WINDOW), (&big, WINDOW), (&full, MESSAGES)] {
        assert_eq!(cost.get("evalsha").copied(), Some(messages as u64), "one script call per message: {cost:?}");
        assert_eq!(cost.get("spublish").copied(), Some(messages as u64), "one publish per message: {cost:?}");
        let fed = cost.get("xadd (search feed)").copied();
        assert_eq!(fed, Some(messages as u64), "one search feed entry per message: {cost:?}");
    }
    assert_eq!(small, big, "the room's size changes nothing Redis does");
    // The figures ARCHITECTURE.md and BENCHMARKS.md give.
    assert_eq!(per_message(&small, WINDOW), 12.0, "{small:?}");
    assert_eq!(per_message(&full, MESSAGES), 14.0, "{full:?}");
    assert_eq!(full.get("lpop").copied(), Some(MESSAGES as u64), "the oldest cmid leaves the window: {full:?}");
    d.stop().await;
}
