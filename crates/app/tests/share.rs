//! Remote access end to end: a real relay (`demo::DemoRelay`: TLS with a
//! pinned self-signed certificate, a JWT, userspace WireGuard on loopback
//! UDP), the controller sharing local ports through it, and a plain TCP
//! client on the public forward; each connection must show in the live
//! table as a row the Remote access panel can read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use app::settings::{MemoryStorage, ProfileInput, ProfileKind, SettingsStorage};
use app::{AppEvent, CommandCode, Connection, Controller, Parts, Preferences, Protocol, TrayIcon};
use demo::DemoRelay;
use engine::{SessionState, StreamInfo};
use profiles::{MemoryStore, SecretStore, account};
use relay_client::ShareStatus;
use relay_client::profile::{DEVICE, WIREGUARD_KEY};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

const WAIT: Duration = Duration::from_secs(30);

fn controller(storage: &Arc<MemoryStorage>, secrets: &Arc<MemoryStore>) -> Controller {
    Controller::new(Parts {
        storage: Box::new(storage.clone()),
        secrets: secrets.clone() as Arc<dyn SecretStore>,
        system_proxy: None,
        autostart: None,
    })
}

/// The profile form's input for sharing `port` through `relay`.
fn office_input(relay: &DemoRelay, port: u16) -> ProfileInput {
    let pin: String = relay
        .share_config("x", vec![port], relay_client::PrivateKey::generate())
        .tls
        .pin_sha256
        .expect("the demo relay is pinned")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    ProfileInput {
        name: "office".into(),
        protocol: Some(Protocol::Relay),
        kind: ProfileKind::RelayToken,
        server: relay.addr().to_string(),
        device_id: None,
        region: None,
        ca_file: None,
        pin_sha256: Some(pin),
        sni: Some("localhost".into()),
        connections: None,
        dns_listen: None,
        transport: None,
        mount: None,
        to: None,
        max_body: None,
        public_url: None,
        tunnel: Some("desk".into()),
        ports: Some(vec![port]),
    }
}

/// A local service: says hello, then echoes one line.
async fn hello_service() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                tcp.write_all(b"hello from the shared port\n").await?;
                let mut line = [0u8; 64];
                let n = tcp.read(&mut line).await?;
                tcp.write_all(&line[..n]).await?;
                tcp.shutdown().await
            });
        }
    });
    port
}

/// Waits until the app reports a share status matching `want` (from its
/// events: what the window sees).
async fn share_event(
    events: &mut broadcast::Receiver<AppEvent>,
    want: impl Fn(&ShareStatus) -> bool,
) -> ShareStatus {
    tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Ok(AppEvent::Share(status)) if want(&status) => return status,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await
    .expect("the share status in time")
}

/// Opens a connection to a public forward (the relay opens it a moment
/// after the share is Active) and returns what the service says first.
async fn through(public: &str, line: &[u8]) -> Vec<u8> {
    // Active means the relay has answered a heartbeat sent after
    // register_ack, so its forwards are already listening.
    let addr: SocketAddr = public.parse().expect("a loopback HOST:PORT");
    let mut tcp = TcpStream::connect(addr).await.expect("the forward accepts");
    tcp.write_all(line).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut got))
        .await
        .expect("the answer in time")
        .expect("the answer");
    got
}

/// The share's connection rows closed so far for `port`.
fn closed_rows(c: &Controller, port: u16) -> Vec<StreamInfo> {
    c.engine()
        .snapshot()
        .closed
        .into_iter()
        .filter(|s| s.protocol == "inbound" && s.target == format!("127.0.0.1:{port}"))
        .collect()
}

async fn rows_closed(c: &Controller, port: u16, n: usize) -> Vec<StreamInfo> {
    tokio::time::timeout(WAIT, async {
        loop {
            let rows = closed_rows(c, port);
            if rows.len() >= n {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the connection rows are closed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_share_becomes_active_and_reaches_the_demo_page() {
    let c = controller(&Default::default(), &Default::default());
    let mut events = c.subscribe();
    let overview = c.share_demo(None).await.unwrap();
    let Some(Connection::Share {
        name: None,
        tunnel,
        ports,
        ..
    }) = overview.connection
    else {
        panic!("the demo shares: {:?}", overview.connection);
    };
    assert_eq!((tunnel.as_str(), ports.len()), ("demo", 1));
    let page_port = ports[0];
    let active = share_event(&mut events, |s| s.state == "active").await;
    assert!(active.tunnel_id.is_some(), "{active:?}");
    assert!(active.address.as_deref().unwrap().starts_with("10.77.0."));
    assert_eq!(active.forwards.len(), 1);
    assert_eq!(active.forwards[0].port, page_port);
    assert_eq!(
        c.overview().await.share.unwrap().tunnel_id,
        active.tunnel_id
    );

    let page = through(&active.forwards[0].public, b"GET / HTTP/1.0\r\n\r\n").await;
    let page = String::from_utf8_lossy(&page);
    assert!(
        page.starts_with("HTTP/1.1 200") && page.contains("It works."),
        "{page}"
    );
    let row = &rows_closed(&c, page_port, 1).await[0];
    assert!(row.bytes_up > 0, "the page is counted as answered: {row:?}");
    assert!(
        row.stream_id
            .as_deref()
            .unwrap()
            .starts_with(active.tunnel_id.as_deref().unwrap()),
        "{row:?}"
    );
    // The WireGuard traffic and handshake reach the window too.
    let live = share_event(&mut events, |s| {
        s.bytes_in > 0 && s.last_handshake_unix.is_some()
    })
    .await;
    assert_eq!(live.state, "active");

    let tray = c.tray_summary();
    assert_eq!(tray.icon, TrayIcon::Connected);
    assert!(tray.sharing && !tray.can_connect);
    assert!(tray.status.starts_with("Sharing port"), "{}", tray.status);
    let log = c.overview().await.log;
    assert!(
        log.iter()
            .any(|l| l.message.starts_with("Remote access on: 127.0.0.1:")),
        "{log:?}"
    );

    // One run slot: no tunnel and no publication while sharing.
    let err = c.start_publish_demo().await.unwrap_err();
    assert_eq!(err.code, CommandCode::AlreadyRunning);
    assert!(
        err.message.contains("stop sharing first"),
        "{}",
        err.message
    );
    let err = c.stop_publishing().await.unwrap_err();
    assert_eq!(err.code, CommandCode::Busy);

    let overview = c.stop_share().await.unwrap();
    assert_eq!((overview.connection, overview.share), (None, None));
    assert!(matches!(
        overview.snapshot.state,
        SessionState::Disconnected { reason: None }
    ));
    let stopped = share_event(&mut events, |s| s.state == "disconnected").await;
    assert!(
        stopped.forwards.is_empty() && stopped.error.is_none(),
        "{stopped:?}"
    );
    let public: SocketAddr = active.forwards[0].public.parse().unwrap();
    assert!(
        TcpStream::connect(public).await.is_err(),
        "the demo relay is gone with the share"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_profile_shares_its_ports_with_its_token_from_the_keychain() {
    let relay = DemoRelay::start([127, 0, 0, 1].into()).await.unwrap();
    let port = hello_service().await;
    let storage = Arc::new(MemoryStorage::default());
    let secrets = Arc::new(MemoryStore::default());
    let c = controller(&storage, &secrets);

    let overview = c.save_profile(office_input(&relay, port)).await.unwrap();
    let view = &overview.profiles[0];
    assert_eq!(
        (view.protocol, view.kind, view.signed_in),
        (Protocol::Relay, ProfileKind::RelayToken, false)
    );
    assert_eq!(view.ports.as_deref(), Some(&[port][..]));
    assert_eq!(overview.selected, None, "Connect does not select it");
    let err = c.select_profile("office".into()).await.unwrap_err();
    assert!(
        err.message.contains("Remote access panel"),
        "{}",
        err.message
    );

    // Not signed in: refused before anything starts.
    let err = c.share("office".into()).await.unwrap_err();
    assert_eq!(err.code, CommandCode::NotSignedIn);
    assert!(err.message.contains("relay token"), "{}", err.message);
    assert_eq!(c.overview().await.connection, None);
    let err = c.publish("office".into()).await.unwrap_err();
    assert!(
        err.message.contains("Remote access panel"),
        "{}",
        err.message
    );

    // A token the relay refuses ends the share, with the relay's code kept
    // for the window until the next start.
    c.sign_in("office".into(), "not-a-jwt".into())
        .await
        .unwrap();
    c.share("office".into()).await.unwrap();
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            let overview = c.overview().await;
            if let (None, Some(share)) = (overview.connection, overview.share) {
                return share;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the refused share winds down");
    assert_eq!(ended.state, "disconnected");
    let error = ended.error.unwrap_or_default();
    assert!(error.contains("100"), "the relay's code: {error}");

    let token = relay.token();
    c.sign_in("office".into(), token.expose().to_owned())
        .await
        .unwrap();
    let stored = secrets
        .get(&account("office", relay_client::RELAY_TOKEN))
        .unwrap()
        .expect("the token is in the keychain");
    assert_eq!(stored.expose(), token.expose());
    let saved = serde_json::to_string(&storage.load().unwrap().unwrap()).unwrap();
    assert!(!saved.contains(token.expose()), "never in the settings");

    let mut events = c.subscribe();
    let overview = c.share("office".into()).await.unwrap();
    assert!(matches!(
        overview.connection,
        Some(Connection::Share { name: Some(ref n), ref tunnel, .. }) if n == "office" && tunnel == "desk"
    ));
    assert_eq!(
        overview.share.unwrap().error,
        None,
        "a new start forgets the old error"
    );
    let active = share_event(&mut events, |s| s.state == "active").await;
    let device = secrets
        .get(&account(DEVICE, WIREGUARD_KEY))
        .unwrap()
        .expect("this device's WireGuard key is made and kept");
    assert!(!device.expose().is_empty());
    let got = through(&active.forwards[0].public, b"ping\n").await;
    assert_eq!(got, b"hello from the shared port\nping\n");
    assert_eq!(rows_closed(&c, port, 1).await.len(), 1);

    // The profile in use stays; stopping frees the slot.
    let err = c.remove_profile("office".into()).await.unwrap_err();
    assert_eq!(err.code, CommandCode::Busy);
    let overview = c.stop_share().await.unwrap();
    assert_eq!((overview.connection, overview.share), (None, None));
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shares_the_ports_it_is_given() {
    let port = hello_service().await;
    let c = controller(&Default::default(), &Default::default());
    let mut events = c.subscribe();
    let overview = c.share_demo(Some(vec![port])).await.unwrap();
    assert!(matches!(
        overview.connection,
        Some(Connection::Share { name: None, ref ports, .. }) if ports == &[port]
    ));
    let active = share_event(&mut events, |s| s.state == "active").await;
    assert_eq!(active.forwards[0].port, port);
    let got = through(&active.forwards[0].public, b"pong\n").await;
    assert_eq!(got, b"hello from the shared port\npong\n");
    c.stop_share().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_tunnel_refuses_a_share_with_the_slot_sentence() {
    let c = controller(&Default::default(), &Default::default());
    let prefs = Preferences {
        proxy_port: testkit::free_port(),
        start_minimized: false,
        autostart: false,
        system_proxy: false,
        fast_connect: false,
    };
    c.set_preferences(prefs).await.unwrap();
    c.start_demo().await.unwrap();
    for refused in [c.share_demo(None).await, c.share("office".into()).await] {
        let err = refused.unwrap_err();
        assert_eq!(err.code, CommandCode::AlreadyRunning);
        assert!(err.message.contains("disconnect first"), "{}", err.message);
    }
    let err = c.stop_share().await.unwrap_err();
    assert_eq!(err.code, CommandCode::Busy);
    assert!(err.message.contains("Connect panel"), "{}", err.message);
    assert!(matches!(
        c.overview().await.connection,
        Some(Connection::Demo { .. })
    ));
    c.disconnect().await;
    // Bad ports for the demo are refused before anything starts.
    let err = c.share_demo(Some(vec![])).await.unwrap_err();
    assert_eq!(err.code, CommandCode::InvalidInput);
    assert!(err.message.contains("ports"), "{}", err.message);
}
