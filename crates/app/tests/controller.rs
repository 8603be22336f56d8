//! The controller end to end: a real gateway (in process, real TLS with a
//! CA file), the real local proxy, curl as the application, and the secret
//! store the keychain tests prove (here in memory, so these tests do not
//! depend on a keyring daemon).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use app::settings::{MemoryStorage, ProfileInput, ProfileKind, SettingsStorage};
use app::{AppEvent, CommandCode, Controller, Parts, Preferences};
use engine::SessionState;
use httvps_client::Transport;
use httvps_gateway::{AuthSource, Gateway, GatewayConfig, RunningGateway, TlsSource};
use profiles::{MemoryStore, SecretStore};
use testkit::{HttpServer, TestCert, closed_port, closes_without_data, free_port, socks5_connect};

const TOKEN: &str = "desk-top-secret-token-1";

struct Fixture {
    _gateway: RunningGateway,
    url: String,
    ca: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn gateway() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = TestCert::generate(&["localhost", "127.0.0.1"]).write_to(dir.path());
    let mut config = GatewayConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        TlsSource::Files {
            cert: cert.clone(),
            key,
        },
        AuthSource::Tokens(HashSet::from([TOKEN.to_owned()])),
    );
    config.allow_private_targets = true;
    let gateway = Gateway::bind(config).await.unwrap();
    let url = format!("wss://{}/ws", gateway.local_addr());
    Fixture {
        _gateway: gateway.spawn(),
        url,
        ca: cert,
        _dir: dir,
    }
}

/// Shares the settings between controllers, as a file would across runs.
#[derive(Clone, Default)]
struct SharedStorage(Arc<MemoryStorage>);

impl SettingsStorage for SharedStorage {
    fn load(&self) -> Result<Option<app::Settings>, String> {
        self.0.load()
    }
    fn save(&self, settings: &app::Settings) -> Result<(), String> {
        self.0.save(settings)
    }
}

fn controller(storage: &SharedStorage, secrets: &Arc<MemoryStore>) -> Controller {
    Controller::new(Parts {
        storage: Box::new(storage.clone()),
        secrets: secrets.clone() as Arc<dyn SecretStore>,
        system_proxy: None,
        autostart: None,
    })
}

fn profile_input(name: &str, fixture: &Fixture) -> ProfileInput {
    profile_input_at(name, &fixture.url, &fixture.ca)
}

/// A gateway profile for `url`, trusting the CA file `ca`.
fn profile_input_at(name: &str, url: &str, ca: &std::path::Path) -> ProfileInput {
    ProfileInput {
        name: name.into(),
        protocol: None,
        kind: ProfileKind::Gateway,
        server: url.to_owned(),
        device_id: None,
        region: None,
        ca_file: Some(ca.display().to_string()),
        pin_sha256: None,
        sni: None,
        connections: None,
        dns_listen: None,
        transport: None,
        mount: None,
        to: None,
        max_body: None,
        public_url: None,
        tunnel: None,
        ports: None,
    }
}

fn prefs(proxy_port: u16, fast_connect: bool) -> Preferences {
    Preferences {
        proxy_port,
        start_minimized: false,
        autostart: false,
        system_proxy: false,
        fast_connect,
    }
}

/// A controller with a free proxy port and the profile "work" saved for
/// `fixture`'s gateway, not signed in yet: where the connect tests start.
async fn with_work_profile(fixture: &Fixture) -> (Controller, u16) {
    let c = controller(&SharedStorage::default(), &Arc::new(MemoryStore::default()));
    let port = set_port(&c).await;
    c.save_profile(profile_input("work", fixture))
        .await
        .unwrap();
    (c, port)
}

async fn set_port(c: &Controller) -> u16 {
    let port = free_port();
    c.set_preferences(prefs(port, false)).await.unwrap();
    port
}

/// Waits for the outcome of a connect: `Active`, or `Disconnected` with a
/// reason (the state before the manager starts is `Disconnected` without one).
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
    .expect("the session settles")
    .expect("the engine is alive")
    .clone()
}

/// Connects and waits for this connect's own outcome (`Active`, or
/// `Disconnected` with a reason), from the engine's events.
async fn connect_outcome(c: &Controller) -> Result<SessionState, app::CommandError> {
    let mut events = c.engine().subscribe();
    c.connect().await?;
    let outcome = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match events.recv().await {
                Ok(engine::EngineEvent::State(
                    s @ (SessionState::Active { .. }
                    | SessionState::Disconnected { reason: Some(_) }),
                )) => return s,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await
    .expect("the session settles");
    Ok(outcome)
}

async fn curl_socks(proxy: SocketAddr, url: &str) -> (bool, Vec<u8>) {
    let out = tokio::process::Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--max-time",
            "30",
            "--socks5-hostname",
        ])
        .arg(proxy.to_string())
        .arg(url)
        .output()
        .await
        .expect("curl (apt-get install curl)");
    if !out.status.success() {
        eprintln!("curl {url}: {}", String::from_utf8_lossy(&out.stderr));
    }
    (out.status.success(), out.stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_connect_fetch_and_disconnect() {
    let fixture = gateway().await;
    let storage = SharedStorage::default();
    let secrets = Arc::new(MemoryStore::default());
    let c = controller(&storage, &secrets);
    let port = set_port(&c).await;

    let overview = c
        .save_profile(profile_input("work", &fixture))
        .await
        .unwrap();
    assert_eq!(overview.selected.as_deref(), Some("work"));
    assert!(!overview.profiles[0].signed_in);
    let err = c.connect().await.unwrap_err();
    assert_eq!(err.code, CommandCode::NotSignedIn);

    let overview = c
        .sign_in("work".into(), format!("  {TOKEN}\n"))
        .await
        .unwrap();
    assert!(overview.profiles[0].signed_in);
    // The token is in the secret store, and nowhere in the settings or the
    // overview the UI gets.
    let settings_json = serde_json::to_string(&c.settings()).unwrap();
    assert!(!settings_json.contains(TOKEN));
    let overview_json = serde_json::to_string(&c.overview().await).unwrap();
    assert!(!overview_json.contains(TOKEN));

    let mut app_events = c.subscribe();
    c.connect().await.unwrap();
    assert!(matches!(settled(&c).await, SessionState::Active { .. }));
    let proxy: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(c.engine().proxy_addr(), Some(proxy));

    let http = HttpServer::start().await;
    let (ok, body) = curl_socks(proxy, &format!("{}/bytes/300000", http.url())).await;
    assert!(ok);
    assert_eq!(body.len(), 300_000);
    // The stream shows up closed, with its bytes, in the snapshot.
    let snapshot = c.engine().snapshot();
    let row = snapshot
        .closed
        .iter()
        .chain(snapshot.open.iter())
        .find(|s| s.target == http.addr().to_string())
        .expect("the stream is in the table");
    assert!(row.bytes_down >= 300_000, "{row:?}");

    let overview = c.disconnect().await;
    assert!(matches!(
        overview.snapshot.state,
        SessionState::Disconnected { reason: None }
    ));
    assert!(overview.connection.is_none());
    assert!(
        std::net::TcpStream::connect(proxy).is_err(),
        "the proxy port is released"
    );
    let mut saw_connected_log = false;
    while let Ok(event) = app_events.try_recv() {
        match event {
            AppEvent::Log(entry) if entry.message.starts_with("Connected to") => {
                saw_connected_log = true
            }
            AppEvent::Notice(n) => panic!("a user disconnect is silent: {n:?}"),
            _ => {}
        }
    }
    assert!(saw_connected_log);

    // A second run of the app finds the profile, still signed in through the
    // secret store only.
    drop(c);
    let again = controller(&storage, &secrets);
    let overview = again.overview().await;
    assert_eq!(overview.profiles.len(), 1);
    assert!(overview.profiles[0].signed_in);

    // Sign out removes the token.
    let overview = again.sign_out("work".into()).await.unwrap();
    assert!(!overview.profiles[0].signed_in);
    assert!(secrets.get("work/session-token").unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_shows_auth_failed_and_connect_works_after_fixing_it() {
    let fixture = gateway().await;
    let (c, _port) = with_work_profile(&fixture).await;
    c.sign_in("work".into(), "wrong-token".into())
        .await
        .unwrap();

    c.connect().await.unwrap();
    let state = settled(&c).await;
    let SessionState::Disconnected {
        reason: Some(reason),
    } = state
    else {
        panic!("expected a refusal, got {state:?}");
    };
    assert!(reason.contains("auth_failed"), "{reason}");
    // The log carries the contract's code for the UI's error area.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let overview = c.overview().await;
    assert!(
        overview
            .log
            .iter()
            .any(|e| e.code.as_deref() == Some("auth_failed")),
        "{:?}",
        overview.log
    );
    // The refused session released the proxy: connecting again works, at
    // once (no waiting for the background wind-down).
    c.sign_in("work".into(), TOKEN.into()).await.unwrap();
    c.connect()
        .await
        .expect("Connect right after a refusal succeeds on the first try");
    let mut state = c.engine().watch_state();
    tokio::time::timeout(
        Duration::from_secs(20),
        state.wait_for(SessionState::is_active),
    )
    .await
    .expect("the corrected token connects")
    .unwrap();
    c.disconnect().await;
}

/// Connect issued the moment the engine gives up on its own (the state
/// says `Disconnected` with a reason) succeeds on the first try, with no
/// pause for the controller's background wind-down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_right_after_a_refusal_works_at_once() {
    let fixture = gateway().await;
    let (c, port) = with_work_profile(&fixture).await;
    for _ in 0..3 {
        c.sign_in("work".into(), "wrong-token".into())
            .await
            .unwrap();
        let refused = connect_outcome(&c).await.expect("Connect is accepted");
        assert!(matches!(
            refused,
            SessionState::Disconnected { reason: Some(_) }
        ));
        // Straight away: the token stays wrong, so the result is another
        // refusal, but Connect itself is accepted.
        let refused = connect_outcome(&c)
            .await
            .expect("Connect after the engine gave up is accepted at once");
        assert!(matches!(
            refused,
            SessionState::Disconnected { reason: Some(_) }
        ));
        c.sign_in("work".into(), TOKEN.into()).await.unwrap();
        let active = connect_outcome(&c)
            .await
            .expect("and at once again with the right token");
        assert!(matches!(active, SessionState::Active { .. }));
        assert!(matches!(
            c.overview().await.connection,
            Some(app::Connection::Profile { .. })
        ));
        c.disconnect().await;
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "the proxy port is released"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_its_page_through_the_tunnel() {
    let storage = SharedStorage::default();
    let secrets = Arc::new(MemoryStore::default());
    let c = controller(&storage, &secrets);
    let port = set_port(&c).await;
    let overview = c.start_demo().await.unwrap();
    let Some(app::Connection::Demo { page, .. }) = overview.connection else {
        panic!("the demo is connected");
    };
    assert!(matches!(settled(&c).await, SessionState::Active { .. }));
    let proxy: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (ok, body) = curl_socks(proxy, &page).await;
    assert!(ok);
    assert!(String::from_utf8_lossy(&body).contains("It works."));
    // HTTVPS carries no datagrams: UDP ASSOCIATE gets a clear refusal
    // (0x07 "command not supported") instead of a relay that drops everything.
    assert_eq!(testkit::socks5_udp_associate(proxy).await.err(), Some(0x07));
    let err = c.start_demo().await.unwrap_err();
    assert_eq!(err.code, CommandCode::AlreadyRunning);
    c.disconnect().await;
    assert!(matches!(
        c.engine().state(),
        SessionState::Disconnected { reason: None }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_are_refused_and_change_nothing() {
    let storage = SharedStorage::default();
    let secrets = Arc::new(MemoryStore::default());
    let c = controller(&storage, &secrets);
    let bad = ProfileInput {
        name: "x".into(),
        protocol: None,
        kind: ProfileKind::Gateway,
        server: "ws://plain.example/ws".into(),
        device_id: None,
        region: None,
        ca_file: None,
        pin_sha256: None,
        sni: None,
        connections: None,
        dns_listen: None,
        transport: None,
        mount: None,
        to: None,
        max_body: None,
        public_url: None,
        tunnel: None,
        ports: None,
    };
    assert_eq!(
        c.save_profile(bad).await.unwrap_err().code,
        CommandCode::InvalidInput
    );
    assert!(c.settings().profiles.is_empty());
    assert_eq!(
        c.sign_in("nobody".into(), "t".into())
            .await
            .unwrap_err()
            .code,
        CommandCode::NotFound
    );
    let err = c.set_preferences(prefs(0, false)).await.unwrap_err();
    assert_eq!(err.code, CommandCode::InvalidInput);
    let err = c
        .set_preferences(Preferences {
            system_proxy: true,
            ..prefs(1080, false)
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.code,
        CommandCode::Unsupported,
        "no system proxy implementation was given"
    );
    assert_eq!(c.connect().await.unwrap_err().code, CommandCode::NoProfile);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_connect_answers_apps_before_the_gateway_confirms() {
    let fixture = gateway().await;
    let (c, port) = with_work_profile(&fixture).await;
    c.sign_in("work".into(), TOKEN.into()).await.unwrap();
    let proxy: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let http = HttpServer::start().await;
    let nothing = closed_port();

    // Off (the default): the proxy waits for the gateway, so the app gets
    // the precise refusal.
    assert!(!c.overview().await.preferences.fast_connect);
    c.connect().await.unwrap();
    assert!(matches!(settled(&c).await, SessionState::Active { .. }));
    assert_eq!(
        socks5_connect(proxy, nothing).await.err(),
        Some(5),
        "connection refused, from the gateway"
    );
    c.disconnect().await;

    // On: success at once, then the connection closes without data.
    let overview = c.set_preferences(prefs(port, true)).await.unwrap();
    assert!(overview.preferences.fast_connect);
    assert!(c.settings().fast_connect, "the preference is saved");
    c.connect().await.unwrap();
    assert!(matches!(settled(&c).await, SessionState::Active { .. }));
    let mut stream = socks5_connect(proxy, nothing)
        .await
        .expect("fast connect answers success before the dial");
    assert!(closes_without_data(&mut stream).await);
    // Reachable targets work as before.
    let (ok, body) = curl_socks(proxy, &format!("{}/bytes/70000", http.url())).await;
    assert!(ok);
    assert_eq!(body.len(), 70_000);
    c.disconnect().await;
    assert!(
        c.settings()
            .profiles
            .iter()
            .all(|p| matches!(p, app::Profile::Httvps(p) if !p.optimistic_open)),
        "the saved profile is left alone"
    );

    // The demo follows the preference too.
    c.start_demo().await.unwrap();
    assert!(matches!(settled(&c).await, SessionState::Active { .. }));
    let mut stream = socks5_connect(proxy, nothing)
        .await
        .expect("fast connect answers success before the dial");
    assert!(closes_without_data(&mut stream).await);
    c.disconnect().await;
    c.set_preferences(prefs(port, false)).await.unwrap();
    c.start_demo().await.unwrap();
    assert!(matches!(settled(&c).await, SessionState::Active { .. }));
    assert_eq!(socks5_connect(proxy, nothing).await.err(), Some(5));
    c.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transport_is_saved_with_the_profile_and_shown_while_connected() {
    let fixture = gateway().await;
    let storage = SharedStorage::default();
    let secrets = Arc::new(MemoryStore::default());
    let c = controller(&storage, &secrets);
    set_port(&c).await;
    let transport_of = |c: &Controller| match &c.settings().profiles[0] {
        app::Profile::Httvps(p) => p.transport,
        other => panic!("not HTTVPS: {other:?}"),
    };

    // Saved without a choice: HTTP/1.1.
    let overview = c
        .save_profile(profile_input("work", &fixture))
        .await
        .unwrap();
    assert_eq!(overview.profiles[0].transport, Some(Transport::H1));
    assert_eq!(transport_of(&c), Transport::H1);
    c.sign_in("work".into(), TOKEN.into()).await.unwrap();

    // Chosen in the form: saved, shown, and still there at the next start.
    let mut quic = profile_input("work", &fixture);
    quic.transport = Some(Transport::H3);
    let overview = c.save_profile(quic).await.unwrap();
    assert_eq!(overview.profiles[0].transport, Some(Transport::H3));
    assert_eq!(transport_of(&c), Transport::H3);
    assert!(overview.profiles[0].signed_in, "editing keeps the sign-in");
    let json = serde_json::to_string(&overview).unwrap();
    assert!(json.contains(r#""transport":"h3""#), "{json}");
    drop(c);
    let c = controller(&storage, &secrets);
    assert_eq!(transport_of(&c), Transport::H3);
    assert_eq!(
        c.overview().await.profiles[0].transport,
        Some(Transport::H3)
    );

    // The connection says which transport this run was started with.
    let mut app_events = c.subscribe();
    let overview = c.connect().await.unwrap();
    assert_eq!(
        overview.connection,
        Some(app::Connection::Profile {
            name: "work".into(),
            transport: Some(Transport::H3),
        })
    );
    let json = serde_json::to_string(&overview.connection).unwrap();
    assert_eq!(json, r#"{"kind":"profile","name":"work","transport":"h3"}"#);
    let mut said = false;
    while let Ok(event) = app_events.try_recv() {
        if let AppEvent::Log(entry) = event {
            said |= entry.message.contains("profile \"work\" over HTTP/3");
        }
    }
    assert!(said, "the log names the transport");
    c.disconnect().await;

    // Back to HTTP/1.1, which this gateway speaks: a working session.
    let overview = c
        .save_profile(ProfileInput {
            transport: Some(Transport::H1),
            ..profile_input("work", &fixture)
        })
        .await
        .unwrap();
    assert_eq!(overview.profiles[0].transport, Some(Transport::H1));
    let active = connect_outcome(&c).await.unwrap();
    assert!(matches!(active, SessionState::Active { .. }), "{active:?}");
    assert_eq!(
        c.overview().await.connection,
        Some(app::Connection::Profile {
            name: "work".into(),
            transport: Some(Transport::H1),
        })
    );
    c.disconnect().await;
}

/// The shell runs these on Tauri's async runtime: their futures must stay
/// `Send` (no std lock guard held across an await).
#[allow(dead_code, clippy::let_underscore_future)]
fn commands_are_send(c: &Controller, input: ProfileInput) {
    fn send<T: Send>(_: T) {}
    send(c.connect());
    send(c.start_demo());
    send(c.disconnect());
    send(c.shutdown());
    send(c.overview());
    send(c.save_profile(input));
    send(c.remove_profile(String::new()));
    send(c.select_profile(String::new()));
    send(c.sign_in(String::new(), String::new()));
    send(c.sign_out(String::new()));
    send(c.set_preferences(prefs(1080, false)));
}

/// A profile whose proxy listens on every interface (its `listen`, from the
/// profiles file): the overview the UI gets carries the warning while
/// connected, and the log says it at warn level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_open_to_the_network_is_a_warning_in_the_overview_and_the_log() {
    let fixture = gateway().await;
    let storage = SharedStorage::default();
    let secrets = Arc::new(MemoryStore::default());
    let first = controller(&storage, &secrets);
    first
        .save_profile(profile_input("work", &fixture))
        .await
        .unwrap();
    first.sign_in("work".into(), TOKEN.into()).await.unwrap();
    // The profiles file names an address on every interface.
    let mut settings = storage.load().unwrap().unwrap();
    let port = free_port();
    let app::Profile::Httvps(profile) = &mut settings.profiles[0] else {
        panic!("an HTTVPS profile");
    };
    profile.listen = Some(SocketAddr::from(([0, 0, 0, 0], port)));
    storage.save(&settings).unwrap();
    let c = controller(&storage, &secrets);

    let overview = c.connect().await.unwrap();
    let warnings = &overview.snapshot.warnings;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].code, engine::WarningCode::OpenProxy);
    assert_eq!(warnings[0].addr.port(), port);
    let logged = overview
        .log
        .iter()
        .find(|e| e.code.as_deref() == Some("open_proxy"))
        .expect("a log entry");
    assert_eq!(logged.level, app::LogLevel::Warn);
    assert!(
        logged
            .message
            .contains("anyone who can reach this address can use your tunnel"),
        "{}",
        logged.message
    );
    assert!(matches!(settled(&c).await, SessionState::Active { .. }));
    assert_eq!(c.overview().await.snapshot.warnings.len(), 1);
    let overview = c.disconnect().await;
    assert!(overview.snapshot.warnings.is_empty());

    // The same profile on loopback: no warning.
    let mut settings = storage.load().unwrap().unwrap();
    let app::Profile::Httvps(profile) = &mut settings.profiles[0] else {
        panic!("an HTTVPS profile");
    };
    profile.listen = Some(SocketAddr::from(([127, 0, 0, 1], free_port())));
    storage.save(&settings).unwrap();
    let c = controller(&storage, &secrets);
    let overview = c.connect().await.unwrap();
    assert!(overview.snapshot.warnings.is_empty());
    assert!(
        overview
            .log
            .iter()
            .all(|e| e.code.as_deref() != Some("open_proxy"))
    );
    c.disconnect().await;
}

/// After the engine gives up on the user's tunnel (the gateway gone for
/// all its attempts), the next network change connects it again, as the
/// user would; a change while nothing was given up does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_change_after_giving_up_connects_again() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = TestCert::generate(&["localhost", "127.0.0.1"]).write_to(dir.path());
    let start_gateway = |listen: SocketAddr| {
        let (cert, key) = (cert.clone(), key.clone());
        async move {
            let mut config = GatewayConfig::new(
                listen,
                TlsSource::Files { cert, key },
                AuthSource::Tokens(HashSet::from([TOKEN.to_owned()])),
            );
            config.allow_private_targets = true;
            Gateway::bind(config).await.unwrap()
        }
    };
    let gateway = start_gateway("127.0.0.1:0".parse().unwrap()).await;
    let listen = gateway.local_addr();
    let gateway = gateway.spawn();

    // The profile saved as the app saves it, then given a short reconnect
    // policy in its settings (one quick attempt) and read by a new
    // controller, as after a restart.
    let storage = SharedStorage::default();
    let secrets = Arc::new(MemoryStore::default());
    let first = controller(&storage, &secrets);
    first
        .set_preferences(prefs(free_port(), false))
        .await
        .unwrap();
    first
        .save_profile(profile_input_at(
            "work",
            &format!("wss://{listen}/ws"),
            &cert,
        ))
        .await
        .unwrap();
    first.sign_in("work".into(), TOKEN.into()).await.unwrap();
    drop(first);
    let mut settings = storage.load().unwrap().unwrap();
    for profile in &mut settings.profiles {
        if let app::Profile::Httvps(p) = profile {
            p.reconnect = engine::ReconnectPolicy {
                initial_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(20),
                max_attempts: 1,
                ..engine::ReconnectPolicy::default()
            };
        }
    }
    storage.save(&settings).unwrap();
    let c = controller(&storage, &secrets);
    let (changes, network) = engine::NetworkChanges::manual();
    c.watch_network(Some(network));

    // A change while connected does not reconnect anything.
    assert!(matches!(
        connect_outcome(&c).await.unwrap(),
        SessionState::Active { .. }
    ));
    changes.send_modify(|n| *n += 1);

    // The gateway goes away for good: one attempt, then the engine gives up.
    let mut state = c.engine().watch_state();
    gateway.shutdown().await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(20),
        state.wait_for(|s| matches!(s, SessionState::Disconnected { reason: Some(r) } if r.contains("gave up"))),
    )
    .await
    .expect("the engine gives up")
    .unwrap();
    // The app has taken it in (its log says so) before the network changes.
    tokio::time::timeout(Duration::from_secs(20), async {
        while !c
            .overview()
            .await
            .log
            .iter()
            .any(|e| e.code.as_deref() == Some("reconnect_failed"))
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the app notes that the engine gave up");

    // It is back, on the same address; the network changes: connected again.
    let _back = start_gateway(listen).await.spawn();
    let mut state = c.engine().watch_state();
    changes.send_modify(|n| *n += 1);
    tokio::time::timeout(
        Duration::from_secs(20),
        state.wait_for(|s| matches!(s, SessionState::Active { .. })),
    )
    .await
    .expect("a new cycle on the network change")
    .unwrap();
    let log = c.overview().await.log;
    assert!(
        log.iter()
            .any(|e| e.message.contains("The network changed: connecting again")),
        "{log:?}"
    );
    c.disconnect().await;
}
