//! `wss://`: the server with a certificate made here (rcgen, signed by a test
//! CA), real TLS clients trusting that CA, members chatting over it; clients
//! that do not trust it, or that speak plain `ws://` to it, get nowhere.

use std::path::Path;

use hearth_cli::{Client, Options};
use hearth_protocol::Codec;
use hearth_server::Storage;
use hearth_server::tls::TlsFiles;
use hearth_tests::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

/// A CA and a certificate for 127.0.0.1 and localhost signed by it, written to
/// `dir`: (the server's files, the CA's certificate).
fn certificates(dir: &Path) -> (TlsFiles, std::path::PathBuf) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let files = TlsFiles { cert: dir.join("cert.pem"), key: dir.join("key.pem") };
    std::fs::write(&files.cert, leaf.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    (files, ca_file)
}

fn options(server: &TestServer, name: &str, codec: Codec, ca_file: Option<&Path>) -> Options {
    let mut options = server.options(name, codec);
    options.url = format!("wss://127.0.0.1:{}", server.addr.port());
    options.ca_file = ca_file.map(Path::to_path_buf);
    options
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_chat_over_wss_and_untrusting_or_plain_clients_get_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let (files, ca_file) = certificates(dir.path());
    let mut config = test_config(Storage::Ephemeral { history_limit: 100 });
    config.tls = Some(files);
    let server = TestServer::start(config).await;

    let mut ada = Client::connect(options(&server, "ada", Codec::MsgPack, Some(&ca_file))).await.unwrap();
    let mut bo = Client::connect(options(&server, "bo", Codec::Json, Some(&ca_file))).await.unwrap();
    create_room(&ada, "secure", None).await.unwrap();
    let r = room("secure");
    ada.join(&r).await.unwrap();
    bo.join(&r).await.unwrap();
    ada.send(&r, "over TLS").await.unwrap();
    assert_eq!(collect_messages(&mut bo, &r, 1).await.unwrap()[0].1, "over TLS");

    // Without the CA the certificate is not trusted.
    let untrusting = Client::connect(options(&server, "cy", Codec::MsgPack, None)).await;
    let error = untrusting.err().expect("refused").to_string();
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    // Plain WebSocket to the TLS port is not a TLS handshake: nothing comes back.
    let plain = tokio::time::timeout(WAIT, Client::connect(server.options("cy", Codec::MsgPack))).await;
    assert!(matches!(plain, Ok(Err(_))), "plain ws:// must fail against wss://");
    drop((ada, bo));
    server.stop().await;
}
