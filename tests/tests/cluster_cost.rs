//! What a message costs Redis in cluster mode: one script call and one sharded
//! publish per message, one subscription per room per node — the same for a
//! room of 2 members as for one of 100 spread over two nodes. Counted with
//! `INFO commandstats` around a burst of messages.

use std::collections::BTreeMap;
use std::time::Duration;

use hearth_protocol::Codec;
use hearth_server::Storage;
use hearth_testkit::RedisServer;
use hearth_tests::*;

/// Calls per command so far (`cmdstat_evalsha:calls=12,...`).
async fn command_calls(redis: &RedisServer) -> BTreeMap<String, u64> {
    let info = redis.must(&["INFO", "commandstats"]).await;
    info.lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats.split(',').find_map(|kv| kv.strip_prefix("calls="))?.parse().ok()?;
            Some((name.to_string(), calls))
        })
        .collect()
}

fn delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(name, calls)| (name.clone(), calls - before.get(name).copied().unwrap_or(0)))
        .filter(|(name, calls)| *calls > 0 && name != "info")
        .collect()
}

/// Sends `messages` to a room of `members` (split over both nodes) and returns
/// the commands Redis ran meanwhile, once every member has every message.
async fn cost_of(
    d: &Deployment,
    redis: &RedisServer,
    name: &str,
    members: usize,
    messages: usize,
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

    let before = command_calls(redis).await;
    for n in 0..messages {
        clients[n % members].send(&r, &format!("m{n}")).await.unwrap();
    }
    for client in &mut clients {
        assert_eq!(collect_messages(client, &r, messages).await.unwrap().len(), messages);
    }
    delta(&before, &command_calls(redis).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_costs_redis_the_same_whatever_the_room_size() {
    const MESSAGES: usize = 50;
    let redis = RedisServer::start().await;
    let mut config = cluster_config(&redis.url(), "cost");
    if let Storage::Redis(r) = &mut config.storage {
        // No probes during the count.
        r.probe_every = Duration::from_secs(3600);
    }
    let d = Deployment::with_nodes(config, 2).await;

    let small = cost_of(&d, &redis, "pair", 2, MESSAGES).await;
    let big = cost_of(&d, &redis, "hundred", 100, MESSAGES).await;
    println!("Redis commands for {MESSAGES} messages, 2 members: {small:?}");
    println!("Redis commands for {MESSAGES} messages, 100 members on two nodes: {big:?}");
    for cost in [&small, &big] {
        assert_eq!(cost.get("evalsha").copied(), Some(MESSAGES as u64), "one script call per message: {cost:?}");
        assert_eq!(cost.get("spublish").copied(), Some(MESSAGES as u64), "one publish per message: {cost:?}");
    }
    assert_eq!(small, big, "the room's size changes nothing Redis does");
    d.stop().await;
}
