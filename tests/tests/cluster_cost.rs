//! What a message costs Redis in cluster mode: one script call (with the
//! same commands in it whether the room's window of client message ids has
//! room or is full) and one sharded publish per message, one search feed
//! entry per node every 100 ms, one subscription per room per node — the same
//! for a room of 2 members as for one of 100 spread over two nodes. Counted by
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

/// What Redis ran for a burst of messages, and how long the burst took.
struct Cost {
    commands: BTreeMap<String, u64>,
    took: Duration,
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
) -> Cost {
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
    let started = std::time::Instant::now();
    for n in 0..messages {
        clients[n % members].send(&r, &format!("m{n}")).await.unwrap();
    }
    for client in &mut clients {
        assert_eq!(collect_messages(client, &r, messages).await.unwrap().len(), messages);
    }
    // The search feed's entries are added every 100 ms, not waited for.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let took = started.elapsed();
    let mut commands = room_commands(&watch.seen().await, name);
    // A node's search index reads a room's history once when the room first
    // reaches it (what came before it was loaded there): a read per room
    // and node, not per message.
    commands.remove("xrange");
    Cost { commands, took }
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
    // Once it is full (any room that has seen 4,096 messages), over three
    // turns of its generations.
    let full = cost_of(&d, &redis, "full", 2, (WINDOW, MESSAGES)).await;
    println!("Redis commands for {WINDOW} messages, 2 members: {:?}", small.commands);
    println!("Redis commands for {WINDOW} messages, 100 members on two nodes: {:?}", big.commands);
    println!("Redis commands for {MESSAGES} messages once the cmid window is full: {:?}", full.commands);
    let mut per_message = Vec::new();
    for (cost, messages) in [(&small, WINDOW), (&big, WINDOW), (&full, MESSAGES)] {
        let mut commands = cost.commands.clone();
        // The search feed: an entry per node every 100 ms at most, naming the
        // room (and every other room that moved), however many messages.
        let fed = commands.remove("xadd (search feed)").unwrap_or(0);
        let flushes = 2 * (cost.took.as_millis() as u64 / 100 + 2);
        assert!((1..=flushes).contains(&fed), "{fed} search feed entries in {:?}: {:?}", cost.took, cost.commands);
        // A generation's first client message id empties the hash of the one
        // two before (and a room's first one deletes the list earlier versions
        // kept): one DEL per window of messages.
        let emptied = commands.remove("del").unwrap_or(0);
        let turns = (messages as u64).div_ceil(WINDOW as u64);
        assert!(emptied <= turns, "{emptied} DELs for {messages} messages: {:?}", cost.commands);
        assert_eq!(
            commands.get("evalsha").copied(),
            Some(messages as u64),
            "one script call per message: {commands:?}"
        );
        assert_eq!(commands.get("spublish").copied(), Some(messages as u64), "one publish per message: {commands:?}");
        let each: BTreeMap<String, f64> =
            commands.into_iter().map(|(name, calls)| (name, calls as f64 / messages as f64)).collect();
        per_message.push(each);
    }
    assert_eq!(per_message[0], per_message[1], "the room's size changes nothing Redis does");
    assert_eq!(per_message[0], per_message[2], "the same commands per message as the cmid window fills and once full");
    // The figure ARCHITECTURE.md and BENCHMARKS.md give.
    assert_eq!(per_message[2].values().sum::<f64>(), 8.0, "{:?}", full.commands);
    d.stop().await;
}
