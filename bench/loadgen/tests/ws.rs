//! WebSocket echoes: `loadgen ws` against `loadgen ws-echo` over TCP, and
//! over HTTP/3 through `h3ws-proxy` (in-process) in front of it, directly
//! and through the delay link; and `cold-connect` against a stand-in client
//! that prints `httvps connect --json`'s lines and serves SOCKS5.

use std::net::SocketAddr;
use std::time::Duration;

use loadgen::Target;
use loadgen::cold::ColdOptions;
use loadgen::delay::{DelayLink, DelayOptions};
use loadgen::ws::{EchoServer, WsOptions};
use testkit::{HttpServer, TestCert};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn echo_server() -> SocketAddr {
    let echo = EchoServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = echo.addr().unwrap();
    tokio::spawn(echo.run_forever());
    addr
}

fn options(url: String, ca: Option<std::path::PathBuf>, messages: u64, size: usize) -> WsOptions {
    WsOptions {
        url,
        ca,
        messages,
        size,
        in_flight: 64,
        timeout: Duration::from_secs(20),
    }
}

/// h3ws-proxy on 127.0.0.1:0 in front of `backend`; its address and CA.
async fn proxy(backend: SocketAddr, dir: &std::path::Path) -> (SocketAddr, std::path::PathBuf) {
    testkit::install_crypto_provider();
    let cert = TestCert::generate(&["localhost", "127.0.0.1"]);
    let (cert_path, key_path) = cert.write_to(dir);
    let config = h3ws_proxy::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        cert: cert_path.clone(),
        key: key_path,
        backend: format!("ws://{backend}"),
        ..h3ws_proxy::config::Config::new()
    };
    let proxy = h3ws_proxy::Proxy::bind(config).await.expect("proxy binds");
    let addr = proxy.local_addr();
    tokio::spawn(proxy.run(std::future::pending()));
    (addr, cert_path)
}

#[tokio::test]
async fn messages_echo_over_tcp() {
    let echo = echo_server().await;
    let report = loadgen::ws::run(options(format!("ws://{echo}/ws"), None, 2000, 1024))
        .await
        .expect("exchange");
    assert_eq!((report.sent, report.received), (2000, 2000));
    assert_eq!(report.transport, "h1");
    assert!(report.messages_per_s > 0.0 && report.mb_per_s > 0.0);
    let rtt = report.rtt_ms.expect("rtts");
    assert!(rtt.min <= rtt.p50 && rtt.p50 <= rtt.max);
}

#[tokio::test]
async fn messages_echo_over_http3_through_the_proxy() {
    let dir = tempfile_dir();
    let echo = echo_server().await;
    let (addr, ca) = proxy(echo, dir.path()).await;
    for (messages, size) in [(3000, 1024), (64, 64 * 1024)] {
        let report = loadgen::ws::run(options(
            format!("https://127.0.0.1:{}/ws", addr.port()),
            Some(ca.clone()),
            messages,
            size,
        ))
        .await
        .expect("exchange");
        assert_eq!((report.sent, report.received), (messages, messages));
        assert_eq!(report.transport, "h3");
    }
    // A path the proxy does not serve is refused, and said so.
    let err = loadgen::ws::run(options(
        format!("https://127.0.0.1:{}/other", addr.port()),
        Some(ca.clone()),
        1,
        64,
    ))
    .await
    .unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
}

#[tokio::test]
async fn http3_crosses_the_delay_link() {
    let dir = tempfile_dir();
    let echo = echo_server().await;
    let (addr, ca) = proxy(echo, dir.path()).await;
    let delay = Duration::from_millis(30);
    let link = DelayLink::bind(DelayOptions::new(
        "127.0.0.1:0".parse().unwrap(),
        addr,
        delay,
    ))
    .await
    .unwrap();
    let link_addr = link.addr();
    tokio::spawn(link.run());
    let report = loadgen::ws::run(options(
        format!("https://127.0.0.1:{}/ws", link_addr.port()),
        Some(ca),
        500,
        1024,
    ))
    .await
    .expect("exchange");
    assert_eq!(report.received, 500);
    // QUIC's handshake and the CONNECT: at least two round trips.
    assert!(
        report.connect_ms >= 4.0 * 30.0,
        "connect {} ms",
        report.connect_ms
    );
    assert!(report.rtt_ms.unwrap().min >= 2.0 * 30.0);
}

fn tempfile_dir() -> TempDir {
    let path = std::env::temp_dir().join(format!(
        "loadgen-ws-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&path).unwrap();
    TempDir(path)
}

static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A SOCKS5 server (no auth, CONNECT only) that answers only after `wait`,
/// like a tunnel client whose session is still coming up.
async fn slow_socks5(wait: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut greeting = [0u8; 3];
                tcp.read_exact(&mut greeting).await.unwrap();
                tcp.write_all(&[5, 0]).await.unwrap();
                let mut head = [0u8; 5];
                tcp.read_exact(&mut head).await.unwrap();
                assert_eq!(head[..4], [5, 1, 0, 3], "CONNECT by name");
                let mut name = vec![0u8; head[4] as usize + 2];
                tcp.read_exact(&mut name).await.unwrap();
                let host = String::from_utf8(name[..name.len() - 2].to_vec()).unwrap();
                let port = u16::from_be_bytes([name[name.len() - 2], name[name.len() - 1]]);
                tokio::time::sleep(wait).await;
                let mut target = TcpStream::connect((host.as_str(), port)).await.unwrap();
                tcp.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0])
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut tcp, &mut target).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn cold_connect_times_the_first_byte_from_the_listening_line() {
    let http = HttpServer::start().await;
    let wait = Duration::from_millis(150);
    let socks = slow_socks5(wait).await;
    // The stand-in client: says it listens, later that it is active, then
    // waits to be stopped.
    let script = format!(
        r#"echo '{{"type":"state","data":{{"state":"authenticating","server":"x"}}}}'
echo '{{"type":"listening","data":{{"proxy":"{socks}","dns":null}}}}'
sleep 0.05
echo '{{"type":"state","data":{{"state":"active","session_id":"s"}}}}'
exec sleep 30"#
    );
    let started = std::time::Instant::now();
    let report = loadgen::cold::run(ColdOptions {
        command: vec!["sh".into(), "-c".into(), script.into()],
        target: Target::parse(&format!("{}/stream/1024", http.url())).unwrap(),
        timeout: Duration::from_secs(20),
    })
    .await
    .expect("measured");
    assert_eq!(report.body_bytes, 1024);
    let ms = wait.as_secs_f64() * 1000.0;
    assert!(report.listening_to_first_byte_ms >= ms, "{report:?}");
    assert!(
        report.listening_to_first_byte_ms < ms + 2000.0,
        "{report:?}"
    );
    assert!(report.listening_to_last_byte_ms >= report.listening_to_first_byte_ms);
    assert!(report.spawn_to_first_byte_ms >= report.listening_to_first_byte_ms);
    let active = report.listening_to_active_ms.expect("active seen");
    assert!(
        active >= 40.0 && active < report.listening_to_first_byte_ms,
        "{report:?}"
    );
    // The stand-in was stopped (SIGTERM), not waited out.
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn cold_connect_fails_when_the_client_gives_up() {
    let http = HttpServer::start().await;
    let script = r#"echo '{"type":"error","data":{"code":"auth","message":"refused"}}'; exit 1"#;
    let err = loadgen::cold::run(ColdOptions {
        command: vec!["sh".into(), "-c".into(), script.into()],
        target: Target::parse(&format!("{}/stream/1024", http.url())).unwrap(),
        timeout: Duration::from_secs(20),
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("refused"), "{err}");
}
