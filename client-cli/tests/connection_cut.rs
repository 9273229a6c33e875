//! The client library when its connection is cut without a closing handshake,
//! as when the node it talks to is killed: a request made after that fails at
//! once with `Closed` instead of waiting out its timeout for a reply that
//! nothing can deliver (the likely cause of a rare hang in `cluster_crash`).

use std::time::Duration;

use hearth_cli::{Client, ClientError, Options};
use hearth_protocol::{Codec, RoomId, UserId};
use hearth_server::auth::{self, Secret};
use hearth_server::{Config, Storage};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const SECRET: &[u8] = b"connection-cut-test-secret-0123456789abcdef";
/// Far longer than the test waits: a request that waits for it has hung.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
const BOUND: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_after_the_connection_was_cut_fails_at_once() {
    let secret = Secret::new(SECRET.to_vec()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_address = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let config = Config::new(Storage::Ephemeral { history_limit: 100 }, secret.clone());
    tokio::spawn(hearth_server::run(listener, config, stop.clone()));

    // A relay between the client and the server: aborting it drops both of its
    // sockets, so the client sees its connection end with no close frame.
    let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_url = format!("ws://{}", relay.local_addr().unwrap());
    let relaying = tokio::spawn(async move {
        let (mut client_side, _) = relay.accept().await.unwrap();
        let mut server_side = TcpStream::connect(server_address).await.unwrap();
        let _ = tokio::io::copy_bidirectional(&mut client_side, &mut server_side).await;
    });

    let token = auth::mint(&secret, &UserId::new("ada").unwrap(), Duration::from_secs(600));
    let mut options = Options::new(relay_url, token, Codec::MsgPack);
    options.request_timeout = REQUEST_TIMEOUT;
    let mut client = tokio::time::timeout(BOUND, Client::connect(options)).await.expect("connects in time").unwrap();

    relaying.abort();
    loop {
        let event = tokio::time::timeout(BOUND, client.next_event()).await.expect("the client sees the cut");
        if event.is_none() {
            break;
        }
    }
    let room = RoomId::new("anywhere").unwrap();
    let answer = tokio::time::timeout(BOUND, client.join(&room))
        .await
        .expect("a request on a cut connection fails at once, not after its timeout");
    assert!(matches!(answer, Err(ClientError::Closed(None))), "{answer:?}");
    stop.cancel();
}
