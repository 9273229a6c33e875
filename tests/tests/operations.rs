//! What operators ask over plain HTTP on the WebSocket port: `/healthz`,
//! `/readyz` (which follows the store, and Redis in cluster mode) and
//! `/metrics` in Prometheus text.

use std::time::Duration;

use hearth_protocol::Codec;
use hearth_testkit::RedisServer;
use hearth_tests::*;

/// The value of a sample line `name value` (no labels) in Prometheus text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_are_served_on_the_same_port() {
    let server = TestServer::ephemeral().await;
    assert_eq!(http_get(&server, "/healthz").await, (200, "ok\n".to_string()));
    assert_eq!(http_get(&server, "/readyz").await, (200, "ready\n".to_string()));
    let (status, root) = http_get(&server, "/").await;
    assert_eq!(status, 200);
    assert!(root.contains("<title>Hearth</title>"), "the root is the web page: {root}");
    let (status, elsewhere) = http_get(&server, "/nothing-here").await;
    assert_eq!(status, 404);
    assert!(elsewhere.contains("/metrics"), "an unknown path says what is here: {elsewhere}");

    let (_, before) = http_get(&server, "/metrics").await;
    let delivered_before = sample(&before, "hearth_deliveries_total").unwrap_or(0.0);
    let r = room("metered");
    let mut ada = server.client("ada", Codec::MsgPack).await;
    create_room(&ada, "metered", None).await.unwrap();
    ada.join(&r).await.unwrap();
    let mut bo = server.client("bo", Codec::Json).await;
    bo.join(&r).await.unwrap();
    for n in 0..5 {
        ada.send(&r, &format!("m{n}")).await.unwrap();
    }
    collect_messages(&mut bo, &r, 5).await.unwrap();

    let answer = http(&server, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(answer.contains("content-type: text/plain; version=0.0.4"), "{answer}");
    let (_, text) = http_get(&server, "/metrics").await;
    for name in [
        "hearth_connections",
        "hearth_connections_total",
        "hearth_requests_total",
        "hearth_messages_total",
        "hearth_bytes_in_total",
        "hearth_bytes_out_total",
        "hearth_rooms_loaded",
    ] {
        assert!(sample(&text, name).is_some(), "{name} is exported:\n{text}");
    }
    assert!(sample(&text, "hearth_messages_total").unwrap() >= 5.0);
    assert!(sample(&text, "hearth_requests_total").unwrap() >= 8.0, "create, two joins, five sends:\n{text}");
    // Five messages to two receivers (and the joins) at least.
    assert!(sample(&text, "hearth_deliveries_total").unwrap() >= delivered_before + 10.0, "{text}");
    assert!(sample(&text, "hearth_connections").unwrap() >= 2.0);
    assert!(text.contains("# HELP hearth_deliver_seconds"), "{text}");
    assert!(text.contains("hearth_deliver_seconds_bucket{le="), "a histogram, not a summary:\n{text}");
    drop((ada, bo));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_redis_in_cluster_mode() {
    let mut redis = RedisServer::start().await;
    let server = TestServer::start(cluster_config(&redis.url(), "ready")).await;
    assert_eq!(http_get(&server, "/readyz").await.0, 200);
    redis.kill().await;
    let (status, body) = http_get(&server, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("not ready: Redis is unreachable"), "{body}");
    assert_eq!(http_get(&server, "/healthz").await.0, 200, "alive all the same");
    redis.restart().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while http_get(&server, "/readyz").await.0 != 200 {
        assert!(tokio::time::Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_port_serves_the_operator_endpoints_and_nothing_else() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let admin = {
        // A free loopback port for the admin listener.
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let mut config = test_config(hearth_server::Storage::Ephemeral { history_limit: 10 });
    config.admin_listen = Some(admin);
    let server = TestServer::start(config).await;
    let get = |path: &'static str| async move {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut tcp = loop {
            match tokio::net::TcpStream::connect(admin).await {
                Ok(tcp) => break tcp,
                Err(_) if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(error) => panic!("the admin port never opened: {error}"),
            }
        };
        tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(WAIT, tcp.read_to_string(&mut answer)).await.unwrap().unwrap();
        answer
    };
    assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
    assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
    assert!(get("/metrics").await.contains("hearth_connections"));
    let other = get("/").await;
    assert!(other.starts_with("HTTP/1.1 404") && other.contains("admin port"), "{other}");
    // And the main port still has them.
    assert_eq!(http_get(&server, "/healthz").await.0, 200);
    server.stop().await;
}
