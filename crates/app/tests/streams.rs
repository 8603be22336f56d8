//! The Connect panel's table commands (issue 16) over the embedded demo
//! gateway: a connection closed from the table ends both ways with its
//! reason, and the export writes the table and the log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use app::settings::MemoryStorage;
use app::{CommandCode, Controller, Parts, Preferences};
use engine::SessionState;
use engine::table::CLOSED_ON_REQUEST;
use profiles::{MemoryStore, SecretStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

async fn demo() -> (Controller, SocketAddr) {
    let c = Controller::new(Parts {
        storage: Box::new(MemoryStorage::default()),
        secrets: Arc::new(MemoryStore::default()) as Arc<dyn SecretStore>,
        system_proxy: None,
        autostart: None,
    });
    let port = testkit::free_port();
    c.set_preferences(Preferences {
        proxy_port: port,
        start_minimized: false,
        autostart: false,
        system_proxy: false,
        fast_connect: false,
    })
    .await
    .unwrap();
    c.start_demo().await.unwrap();
    let mut state = c.engine().watch_state();
    tokio::time::timeout(
        Duration::from_secs(20),
        state.wait_for(|s| matches!(s, SessionState::Active { .. })),
    )
    .await
    .expect("the demo connects")
    .unwrap();
    (c, SocketAddr::from(([127, 0, 0, 1], port)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_from_the_table_ends_and_is_exported_with_its_reason() {
    let (c, proxy) = demo().await;
    let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target_addr = target.local_addr().unwrap();
    let mut client = testkit::socks5_connect(proxy, target_addr).await.unwrap();
    let (mut server, _) = target.accept().await.unwrap();
    client.write_all(b"hello").await.unwrap();
    let mut buf = [0u8; 5];
    server.read_exact(&mut buf).await.unwrap();

    let row = c
        .engine()
        .snapshot()
        .open
        .into_iter()
        .find(|s| s.target == target_addr.to_string())
        .expect("the connection has a row");
    assert_eq!(row.route, Some(app::Action::Tunnel));
    c.close_stream(row.key).unwrap();

    // Both ends see the connection end, though neither sends anything.
    let ends = |mut s: tokio::net::TcpStream| async move {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), s.read(&mut byte)).await,
            Ok(Ok(0) | Err(_))
        )
    };
    assert!(ends(client).await, "the application's side ended");
    assert!(ends(server).await, "the target's side ended");
    let mut closed = None;
    for _ in 0..300 {
        closed = c
            .engine()
            .snapshot()
            .closed
            .into_iter()
            .find(|s| s.key == row.key);
        if closed.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let closed = closed.expect("the row closed");
    assert_eq!(closed.close_reason.as_deref(), Some(CLOSED_ON_REQUEST));

    let gone = c.close_stream(row.key).unwrap_err();
    assert_eq!(gone.code, CommandCode::NotFound);
    assert!(gone.message.contains("not open"), "{}", gone.message);

    let dir = tempfile::tempdir().unwrap();
    let exported = c.export_log_to(dir.path().join("Downloads")).await.unwrap();
    let csv = std::fs::read_to_string(&exported.connections).unwrap();
    assert!(
        exported.connections.ends_with(".csv"),
        "{}",
        exported.connections
    );
    let line = csv
        .lines()
        .find(|l| l.starts_with(&format!("{},", row.key)))
        .expect("the closed row is exported");
    assert!(line.contains(&format!(",{target_addr},")), "{line}");
    assert!(
        line.contains(",tunnel,") && line.ends_with(CLOSED_ON_REQUEST),
        "{line}"
    );
    assert_eq!(csv.lines().count() as u32, exported.rows + 1);
    let log = std::fs::read_to_string(&exported.log).unwrap();
    assert!(log.contains("Local proxy on"), "{log}");
    assert_eq!(log.lines().count() as u32, exported.entries);
    // The export is logged, for the next one.
    let overview = c.overview().await;
    assert!(
        overview
            .log
            .last()
            .is_some_and(|e| e.message.contains(&exported.log)),
        "{:?}",
        overview.log.last()
    );
    c.disconnect().await;
}
