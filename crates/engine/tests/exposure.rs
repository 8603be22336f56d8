//! What a run exposes: a local proxy beyond loopback without credentials,
//! or a DNS server beyond loopback, is a warning in `Engine::warnings` and
//! the snapshot for as long as the run lasts; loopback, or a proxy with
//! credentials, is not.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use engine::transport::BoxFuture;
use engine::{
    DnsLimits, Engine, OpenedStream, ReconnectPolicy, StartOptions, Transport, TransportError,
    TunnelSession, WarningCode,
};
use local_proxy::{ConnectError, ConnectErrorKind, Credentials, ProxyConfig, TargetAddr};

/// A session that opens nothing and never ends.
struct Idle;

impl Transport for Idle {
    fn server(&self) -> String {
        "idle".into()
    }
    fn connect(&self) -> BoxFuture<'_, Result<Arc<dyn TunnelSession>, TransportError>> {
        Box::pin(async { Ok(Arc::new(Idle) as Arc<dyn TunnelSession>) })
    }
}

impl TunnelSession for Idle {
    fn session_id(&self) -> String {
        "idle".into()
    }
    fn max_streams(&self) -> u32 {
        1
    }
    fn open(
        &self,
        _target: TargetAddr,
        _slot_wait: Duration,
    ) -> BoxFuture<'_, Result<OpenedStream, ConnectError>> {
        Box::pin(async {
            Err(ConnectError::new(
                ConnectErrorKind::Unsupported,
                "no streams",
            ))
        })
    }
    fn closed(&self) -> BoxFuture<'_, String> {
        Box::pin(std::future::pending())
    }
    fn close(&self) {}
}

async fn start(listen: &str, auth: Option<Credentials>) -> (Engine, SocketAddr) {
    let engine = Engine::new();
    let addr = engine
        .start(StartOptions {
            transport: Arc::new(Idle),
            proxy: ProxyConfig {
                listen: listen.parse().unwrap(),
                auth,
                ..ProxyConfig::default()
            },
            reconnect: ReconnectPolicy::default(),
            retry_initial: false,
            slot_wait: Duration::from_secs(5),
            reconnect_wait: Duration::from_secs(5),
        })
        .await
        .unwrap();
    (engine, addr)
}

#[tokio::test]
async fn a_proxy_on_every_interface_without_credentials_is_a_warning() {
    let (engine, addr) = start("0.0.0.0:0", None).await;
    let warnings = engine.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].code, WarningCode::OpenProxy);
    assert_eq!(warnings[0].addr, addr);
    assert!(
        warnings[0]
            .message
            .contains("anyone who can reach this address can use your tunnel"),
        "{}",
        warnings[0].message
    );
    assert!(warnings[0].message.contains(&addr.to_string()));
    // The snapshot (what the app and `httvps status` show) carries it.
    let snapshot = serde_json::to_value(engine.snapshot()).unwrap();
    assert_eq!(snapshot["warnings"][0]["code"], "open_proxy");
    // Gone with the run.
    engine.stop().await;
    assert!(engine.warnings().is_empty());
    assert!(engine.snapshot().warnings.is_empty());
}

#[tokio::test]
async fn loopback_or_credentials_are_no_warning() {
    for listen in ["127.0.0.1:0", "[::1]:0"] {
        let (engine, _) = start(listen, None).await;
        assert!(engine.warnings().is_empty(), "{listen}");
        engine.stop().await;
    }
    let (engine, _) = start("0.0.0.0:0", Some(Credentials::new("me", "secret"))).await;
    assert!(engine.warnings().is_empty());
    engine.stop().await;
}

#[tokio::test]
async fn a_dns_server_beyond_loopback_is_a_warning() {
    let (engine, _) = start("127.0.0.1:0", None).await;
    engine
        .serve_dns("127.0.0.1:0".parse().unwrap(), DnsLimits::default())
        .await
        .unwrap();
    assert!(engine.warnings().is_empty());
    let dns = engine
        .serve_dns("0.0.0.0:0".parse().unwrap(), DnsLimits::default())
        .await
        .unwrap();
    let warnings = engine.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].code, WarningCode::OpenDns);
    assert_eq!(warnings[0].addr, dns);
    engine.stop().await;
}
