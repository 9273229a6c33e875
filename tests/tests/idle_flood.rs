//! 10,000 idle connections at once (fewer where the open-files limit is lower): each upgraded and authenticated, then
//! silent. The server's memory grows by a bounded amount per connection and a
//! member keeps chatting throughout. Alone in its test binary, so the process's
//! memory is this test's (the idle clients are bare sockets, a few bytes each).

use hearth_protocol::Codec;
use hearth_server::Storage;
use hearth_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Wanted; fewer when the process may not open twice as many files (each
/// connection is two sockets here: the client's and the server's).
const WANTED: usize = 10_000;

/// A WebSocket upgrade done by hand, then nothing: the cheapest idle client.
async fn idle_connection(server: &TestServer, n: usize) -> tokio::net::TcpStream {
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: hearth.v1.msgpack\r\n\
         Authorization: Bearer {}\r\n\r\n",
        server.token(&format!("idle{n}"))
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    tcp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_connections_cost_bounded_memory_and_nobody_else_notices() {
    let files = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    let connections = WANTED.min((files.saturating_sub(256) / 2) as usize);
    eprintln!("{connections} idle connections (open-files limit {files})");
    let mut config = test_config(Storage::Ephemeral { history_limit: 100 });
    config.limits.connections_per_ip = connections + 10;
    let server = TestServer::start(config).await;
    let r = room("lively");
    let mut ada = server.client("ada", Codec::MsgPack).await;
    create_room(&ada, "lively", None).await.unwrap();
    ada.join(&r).await.unwrap();
    let before = rss_bytes();
    let mut idle = Vec::with_capacity(connections);
    for n in 0..connections {
        idle.push(tokio::time::timeout(WAIT, idle_connection(&server, n)).await.expect("upgraded in time"));
        if n % 2_500 == 0 {
            ada.send(&r, &format!("at {n}")).await.unwrap();
            assert_eq!(collect_messages(&mut ada, &r, 1).await.unwrap()[0].1, format!("at {n}"));
        }
    }
    let per_connection = rss_bytes().saturating_sub(before) / connections as u64;
    eprintln!("{per_connection} bytes of RSS per idle connection");
    // The release build measures about 5 KiB (BENCHMARKS.md, `idle`); a debug
    // build's futures are larger. What matters here is a bound, not the figure.
    assert!(per_connection < 64 * 1024, "{per_connection} bytes per idle connection");
    ada.send(&r, "still chatting").await.unwrap();
    assert_eq!(collect_messages(&mut ada, &r, 1).await.unwrap()[0].1, "still chatting");
    drop(idle);
    server.stop().await;
}
