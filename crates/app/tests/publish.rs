//! Publish mode end to end: a real queen (`demo::DemoQueen`, real TLS with a
//! pinned self-signed certificate), a local page (`demo::DemoPage`), the
//! controller publishing it, and curl as the public client; each request
//! must show in the live table as a row the Publish panel can read.

use std::sync::Arc;
use std::time::Duration;

use app::settings::{MemoryStorage, ProfileInput, ProfileKind, SettingsStorage};
use app::{CommandCode, Connection, Controller, Parts, Protocol, TrayIcon};
use demo::{DEMO_MOUNT, DemoPage, DemoQueen};
use engine::publish::REQUEST_PROTOCOL;
use engine::{SessionState, StreamInfo};
use profiles::{MemoryStore, SecretStore, account};

fn controller(storage: &Arc<MemoryStorage>, secrets: &Arc<MemoryStore>) -> Controller {
    Controller::new(Parts {
        storage: Box::new(storage.clone()),
        secrets: secrets.clone() as Arc<dyn SecretStore>,
        system_proxy: None,
        autostart: None,
    })
}

/// The profile form's input for publishing `page` through `queen`.
fn site_input(queen: &DemoQueen, page: &DemoPage) -> ProfileInput {
    let cell = queen.cell_config(&page.url());
    let pin: String = cell
        .tls
        .pin_sha256
        .expect("the demo queen is pinned")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    ProfileInput {
        name: "site".into(),
        protocol: Some(Protocol::Hlhv),
        kind: ProfileKind::CellKey,
        server: queen.cells_addr().to_string(),
        device_id: None,
        region: None,
        ca_file: None,
        pin_sha256: Some(pin),
        sni: None,
        connections: None,
        dns_listen: None,
        transport: None,
        mount: Some(DEMO_MOUNT.into()),
        to: Some(page.url()),
        max_body: None,
        public_url: Some(queen.public_url()),
        tunnel: None,
        ports: None,
    }
}

/// Waits for `Active`, or `Disconnected` with a reason.
async fn settled(c: &Controller) -> SessionState {
    let mut state = c.engine().watch_state();
    tokio::time::timeout(
        Duration::from_secs(20),
        state.wait_for(|s| {
            matches!(
                s,
                SessionState::Active { .. } | SessionState::Disconnected { reason: Some(_) }
            )
        }),
    )
    .await
    .expect("the publication settles")
    .expect("the engine is alive")
    .clone()
}

/// Fetches a public URL of the demo queen (`https://localhost:PORT/…`,
/// self-signed: `-k`) and returns the status and body.
async fn curl_public(url: &str, port: u16) -> (u16, String) {
    let out = tokio::process::Command::new("curl")
        .args(["--silent", "--show-error", "-k", "--max-time", "20"])
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args(["--write-out", "\n%{http_code}"])
        .arg(url)
        .output()
        .await
        .expect("curl (apt-get install curl)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

/// The request rows closed so far (what the Publish panel's log shows).
fn closed_requests(c: &Controller) -> Vec<StreamInfo> {
    c.engine()
        .snapshot()
        .closed
        .into_iter()
        .filter(|s| s.protocol == REQUEST_PROTOCOL)
        .collect()
}

/// Waits until `n` request rows are closed.
async fn requests_closed(c: &Controller, n: usize) -> Vec<StreamInfo> {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let rows = closed_requests(c);
            if rows.len() >= n {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the request rows are closed")
}

/// "200 in 12 ms" → 200.
fn status_of(row: &StreamInfo) -> u16 {
    let reason = row.close_reason.as_deref().unwrap_or_default();
    let (status, rest) = reason.split_once(" in ").expect("STATUS in N ms");
    assert!(rest.ends_with(" ms"), "{reason}");
    status.parse().expect("a status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_profile_publishes_its_app_and_logs_each_request() {
    let queen = DemoQueen::start([127, 0, 0, 1].into()).await.unwrap();
    let page = DemoPage::start().await.unwrap();
    let key = queen.cell_config(&page.url()).key;
    let storage = Arc::new(MemoryStorage::default());
    let secrets = Arc::new(MemoryStore::default());
    let c = controller(&storage, &secrets);

    let overview = c.save_profile(site_input(&queen, &page)).await.unwrap();
    let view = &overview.profiles[0];
    assert_eq!(
        (view.protocol, view.kind, view.signed_in),
        (Protocol::Hlhv, ProfileKind::CellKey, false)
    );
    assert_eq!(
        view.public_url.as_deref(),
        Some(queen.public_url().as_str())
    );
    assert_eq!(overview.selected, None, "Connect does not select it");

    let err = c.publish("site".into()).await.unwrap_err();
    assert_eq!(err.code, CommandCode::NotSignedIn);
    assert!(err.message.contains("cell key"), "{}", err.message);

    c.sign_in("site".into(), key.expose().to_owned())
        .await
        .unwrap();
    let stored = secrets
        .get(&account("site", hlhv_cell::CELL_KEY))
        .unwrap()
        .expect("the cell key is in the keychain");
    assert_eq!(stored.expose(), key.expose());
    let saved = serde_json::to_string(&storage.load().unwrap().unwrap()).unwrap();
    assert!(!saved.contains(key.expose()), "never in the settings");

    let overview = c.publish("site".into()).await.unwrap();
    assert!(matches!(
        overview.connection,
        Some(Connection::Publish { name: Some(ref n), .. }) if n == "site"
    ));
    assert!(matches!(settled(&c).await, SessionState::Active { .. }));
    let overview = c.overview().await;
    assert_eq!(overview.snapshot.endpoints, [queen.public_url()]);
    let tray = c.tray_summary();
    assert_eq!(tray.icon, TrayIcon::Connected);
    assert_eq!(tray.status, format!("Publishing {}", queen.public_url()));

    let port = queen.https_addr().port();
    let (status, body) = curl_public(&queen.public_url(), port).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("It works."), "{body}");
    let (status, _) = curl_public(&format!("{}more/page.html?q=1", queen.public_url()), port).await;
    assert_eq!(status, 200);

    let rows = requests_closed(&c, 2).await;
    for row in &rows {
        assert!(row.target.starts_with("GET /"), "{}", row.target);
        assert_eq!(status_of(row), 200);
        assert!(row.stream_id.is_some(), "the band is named");
        assert!(row.bytes_up > 0, "the response body is counted");
        assert!(!row.client.is_empty());
    }
    assert!(
        rows.iter().any(|r| r.target.contains("more/page.html")),
        "{rows:?}"
    );

    // One run slot: no tunnel while publishing, and the profile stays.
    let err = c.start_demo().await.unwrap_err();
    assert_eq!(err.code, CommandCode::AlreadyRunning);
    assert!(err.message.contains("stop publishing"), "{}", err.message);
    let err = c.remove_profile("site".into()).await.unwrap_err();
    assert_eq!(err.code, CommandCode::Busy);
    let err = c.select_profile("site".into()).await.unwrap_err();
    assert!(err.message.contains("Publish panel"), "{}", err.message);

    let overview = c.stop_publishing().await.unwrap();
    assert_eq!(overview.connection, None);
    assert!(overview.snapshot.endpoints.is_empty());
    assert!(matches!(
        overview.snapshot.state,
        SessionState::Disconnected { reason: None }
    ));
    assert!(
        overview
            .log
            .iter()
            .any(|l| l.message.starts_with("Published at https://localhost:")),
        "{:?}",
        overview.log
    );
    let (status, _) = curl_public(&queen.public_url(), port).await;
    assert_ne!(status, 200, "no longer published");

    c.sign_out("site".into()).await.unwrap();
    assert!(
        secrets
            .get(&account("site", hlhv_cell::CELL_KEY))
            .unwrap()
            .is_none()
    );
    queen.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_cell_key_ends_the_publication_with_a_reason() {
    let queen = DemoQueen::start([127, 0, 0, 1].into()).await.unwrap();
    let page = DemoPage::start().await.unwrap();
    let c = controller(&Default::default(), &Default::default());
    c.save_profile(site_input(&queen, &page)).await.unwrap();
    c.sign_in("site".into(), "not-the-key".into())
        .await
        .unwrap();
    c.publish("site".into()).await.unwrap();
    let SessionState::Disconnected { reason: Some(_) } = settled(&c).await else {
        panic!("a refused login ends the publication");
    };
    // The controller winds the publication down on its own: the slot is
    // free again, and the log says why it stopped.
    tokio::time::timeout(Duration::from_secs(5), async {
        while c.overview().await.connection.is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the connection record is cleared");
    let log = c.overview().await.log;
    assert!(
        log.iter()
            .any(|l| l.message.starts_with("Publishing stopped:")),
        "{log:?}"
    );
    queen.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publish_demo_serves_its_page_and_shares_the_slot_with_the_connect_demo() {
    let c = controller(&Default::default(), &Default::default());
    let overview = c.start_publish_demo().await.unwrap();
    let Some(Connection::Publish {
        name: None, mount, ..
    }) = overview.connection
    else {
        panic!("the demo publishes: {:?}", overview.connection);
    };
    assert_eq!(mount, DEMO_MOUNT);
    assert!(matches!(settled(&c).await, SessionState::Active { .. }));
    let url = c.engine().snapshot().endpoints[0].clone();
    let port: u16 = url
        .trim_start_matches("https://localhost:")
        .trim_end_matches("/demo/")
        .parse()
        .unwrap();
    let (status, body) = curl_public(&url, port).await;
    assert_eq!((status, body.contains("It works.")), (200, true));
    assert_eq!(status_of(&requests_closed(&c, 1).await[0]), 200);

    let err = c.start_demo().await.unwrap_err();
    assert_eq!(err.code, CommandCode::AlreadyRunning);
    c.stop_publishing().await.unwrap();
    let (status, _) = curl_public(&url, port).await;
    assert_eq!(status, 0, "the demo queen is gone with the publication");

    // The connect demo still works, and holds the slot in turn.
    c.start_demo().await.unwrap();
    assert!(matches!(settled(&c).await, SessionState::Active { .. }));
    let err = c.start_publish_demo().await.unwrap_err();
    assert_eq!(err.code, CommandCode::AlreadyRunning);
    assert!(err.message.contains("disconnect first"), "{}", err.message);
    let err = c.stop_publishing().await.unwrap_err();
    assert_eq!(err.code, CommandCode::Busy);
    c.disconnect().await;
}
