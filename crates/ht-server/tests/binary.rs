//! The `ht-server` binary: flags, logs, and a graceful SIGTERM.

mod util;

use std::path::Path;
use std::time::Duration;

use proto_ht::Key;
use testkit::TestHtServer;
use util::{open_tls, open_with, session_id};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ht-server"))
}

#[tokio::test]
async fn serves_warns_without_tls_never_logs_the_key_and_stops_on_sigterm() {
    let mut srv = TestHtServer::start(bin(), false, &["--max-streams", "4"])
        .await
        .unwrap();
    let key = Key::from_hex(srv.key_hex()).unwrap();
    let mut t = open_with(srv.addr(), &key, &session_id(), b"qp 0")
        .await
        .tunnel();
    assert_eq!(t.recv_text().await, "!p");
    srv.process()
        .wait_for_log("plain HTTP", Duration::from_secs(10))
        .await
        .unwrap();
    srv.process_mut().sigterm();
    let status = srv
        .process_mut()
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert_eq!(t.recv().await, None, "the tunnel ended with the server");
    let logs = srv.process().logs().join("\n");
    assert!(
        !logs.contains(srv.key_hex()),
        "the key never appears in logs"
    );
}

#[tokio::test]
async fn serves_over_tls() {
    let srv = TestHtServer::start(bin(), true, &[]).await.unwrap();
    let logs = srv.process().logs().join("\n");
    assert!(!logs.contains("plain HTTP"), "no warning with TLS");
    let key = Key::from_hex(srv.key_hex()).unwrap();
    let ca = srv.ca().unwrap();
    let mut t = open_tls(srv.addr(), ca, &key, &session_id(), b"n1 localhost A")
        .await
        .tunnel();
    assert_eq!(t.recv_text().await, ".1 127.0.0.1");
    let wrong = Key::from_hex(&"ab".repeat(32)).unwrap();
    let (status, page) = open_tls(srv.addr(), ca, &wrong, &session_id(), b"qp 0")
        .await
        .refused();
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&page).contains("Server: nginx"));
}
