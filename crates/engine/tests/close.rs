//! Closing one connection from the table (issue 16: the app's ×, `httvps
//! streams --close`): real sockets on loopback. The stand-in session dials
//! the target itself, as a gateway would, so that both ends of a row are
//! real TCP connections: the application's to the local proxy and the
//! "tunnel's" to the target. Closing the row must end both promptly and
//! leave the row closed with its reason.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use engine::control::{ControlError, ControlServer, close_stream};
use engine::table::CLOSED_ON_REQUEST;
use engine::transport::BoxFuture;
use engine::{
    Engine, EngineError, OpenedStream, ReconnectPolicy, StartOptions, StreamInfo, Transport,
    TransportError, TunnelSession,
};
use local_proxy::{ConnectError, ProxyConfig, TargetAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long "promptly" may take on a loaded CI machine.
const PROMPTLY: Duration = Duration::from_secs(3);

/// A target port whose open never completes (a slot that never frees).
const NEVER_OPENS: u16 = 1;

struct DialTransport;
struct DialSession;

impl Transport for DialTransport {
    fn server(&self) -> String {
        "dial".into()
    }
    fn connect(&self) -> BoxFuture<'_, Result<Arc<dyn TunnelSession>, TransportError>> {
        Box::pin(async { Ok(Arc::new(DialSession) as Arc<dyn TunnelSession>) })
    }
}

impl TunnelSession for DialSession {
    fn session_id(&self) -> String {
        "dial".into()
    }
    fn max_streams(&self) -> u32 {
        16
    }
    fn open(
        &self,
        target: TargetAddr,
        _slot_wait: Duration,
    ) -> BoxFuture<'_, Result<OpenedStream, ConnectError>> {
        Box::pin(async move {
            let TargetAddr::Ip(addr) = target else {
                panic!("the tests name IP targets");
            };
            if addr.port() == NEVER_OPENS {
                std::future::pending::<()>().await;
            }
            let stream = TcpStream::connect(addr).await?;
            Ok(OpenedStream {
                stream: Box::new(stream),
                stream_id: "s1".into(),
            })
        })
    }
    fn closed(&self) -> BoxFuture<'_, String> {
        Box::pin(std::future::pending())
    }
    fn close(&self) {}
}

async fn start() -> (Engine, SocketAddr) {
    let engine = Engine::new();
    let proxy = engine
        .start(StartOptions {
            transport: Arc::new(DialTransport),
            proxy: ProxyConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                ..ProxyConfig::default()
            },
            reconnect: ReconnectPolicy::default(),
            retry_initial: false,
            slot_wait: Duration::from_secs(5),
            reconnect_wait: Duration::from_secs(5),
        })
        .await
        .unwrap();
    (engine, proxy)
}

/// The open row whose target is `target`, once it is open.
async fn open_row(engine: &Engine, target: SocketAddr) -> StreamInfo {
    let wanted = target.to_string();
    for _ in 0..200 {
        if let Some(row) = engine
            .snapshot()
            .open
            .into_iter()
            .find(|s| s.target == wanted && s.state == engine::table::StreamState::Open)
        {
            return row;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no open row for {wanted}");
}

/// The closed row `key`, once it is closed.
async fn closed_row(engine: &Engine, key: u64) -> StreamInfo {
    for _ in 0..300 {
        if let Some(row) = engine.snapshot().closed.into_iter().find(|s| s.key == key) {
            return row;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("row {key} did not close");
}

/// Reads until the peer closes (EOF or reset), within [`PROMPTLY`].
async fn ends(stream: &mut TcpStream, who: &str) {
    let mut buf = vec![0u8; 64 * 1024];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(PROMPTLY, read_all)
        .await
        .unwrap_or_else(|_| panic!("{who}'s connection still open after {PROMPTLY:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_closed_from_the_table_ends_both_ways_with_the_reason() {
    let (engine, proxy) = start().await;
    let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target_addr = target.local_addr().unwrap();
    // The target sends without end until its peer goes away.
    let server = tokio::spawn(async move {
        let (mut socket, _) = target.accept().await.unwrap();
        let chunk = vec![7u8; 16 * 1024];
        loop {
            if socket.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });

    let mut client = testkit::socks5_connect(proxy, target_addr).await.unwrap();
    let mut got = vec![0u8; 256 * 1024];
    client.read_exact(&mut got).await.unwrap();
    let row = open_row(&engine, target_addr).await;
    assert_eq!(row.protocol, "socks5");

    let asked = engine.close_stream(row.key).unwrap();
    assert_eq!(asked.key, row.key);
    // The application sees its connection end (after what was in flight)…
    ends(&mut client, "the application").await;
    // …and the target's writes fail: its connection is gone too.
    tokio::time::timeout(PROMPTLY, server)
        .await
        .expect("the target's connection still open")
        .unwrap();
    let closed = closed_row(&engine, row.key).await;
    assert_eq!(closed.close_reason.as_deref(), Some(CLOSED_ON_REQUEST));
    assert!(closed.bytes_down >= got.len() as u64, "{closed:?}");
    assert!(matches!(
        engine.close_stream(row.key),
        Err(EngineError::StreamGone { key }) if key == row.key
    ));
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connect_tunnel_closed_through_the_control_endpoint_ends_both_ways() {
    let (engine, proxy) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("control.json");
    let _control = ControlServer::start(engine.clone(), &file).await.unwrap();
    let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target_addr = target.local_addr().unwrap();

    // HTTP CONNECT, one exchange, then both sides wait.
    let mut client = TcpStream::connect(proxy).await.unwrap();
    client
        .write_all(
            format!("CONNECT {target_addr} HTTP/1.1\r\nHost: {target_addr}\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let (mut server, _) = target.accept().await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(
            client.read(&mut byte).await.unwrap(),
            1,
            "proxy closed mid-reply"
        );
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    client.write_all(b"ping").await.unwrap();
    let mut ping = [0u8; 4];
    server.read_exact(&mut ping).await.unwrap();
    server.write_all(b"pong").await.unwrap();
    client.read_exact(&mut ping).await.unwrap();
    assert_eq!(&ping, b"pong");

    let row = open_row(&engine, target_addr).await;
    assert_eq!(row.protocol, "http-connect");
    let asked = close_stream(&file, row.key).await.unwrap();
    assert_eq!(asked["key"], row.key);
    // Nothing moves either way, yet both ends close at once.
    ends(&mut client, "the application").await;
    ends(&mut server, "the target").await;
    let closed = closed_row(&engine, row.key).await;
    assert_eq!(closed.close_reason.as_deref(), Some(CLOSED_ON_REQUEST));
    assert_eq!((closed.bytes_up, closed.bytes_down), (4, 4));
    // A row that is gone: the endpoint says so, with its own error.
    assert!(matches!(
        close_stream(&file, row.key).await,
        Err(ControlError::StreamGone(key)) if key == row.key
    ));
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_http_download_closed_from_the_table_ends_the_client_connection() {
    let (engine, proxy) = start().await;
    let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target_addr = target.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut socket, _) = target.accept().await.unwrap();
        let mut head = [0u8; 1024];
        let _ = socket.read(&mut head).await.unwrap();
        socket
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n")
            .await
            .unwrap();
        let chunk = vec![b'a'; 16 * 1024];
        while socket.write_all(&chunk).await.is_ok() {}
    });
    // An absolute-form request: the proxy forwards it over its own
    // HTTP/1.1 connection to the target (the row), not a tunnel.
    let mut client = TcpStream::connect(proxy).await.unwrap();
    client
        .write_all(
            format!("GET http://{target_addr}/big HTTP/1.1\r\nHost: {target_addr}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut got = vec![0u8; 128 * 1024];
    client.read_exact(&mut got).await.unwrap();
    assert!(got.starts_with(b"HTTP/1.1 200"));
    let row = open_row(&engine, target_addr).await;
    assert_eq!(row.protocol, "http-forward");

    engine.close_stream(row.key).unwrap();
    ends(&mut client, "the application").await;
    tokio::time::timeout(PROMPTLY, server)
        .await
        .expect("the target's connection still open")
        .unwrap();
    let closed = closed_row(&engine, row.key).await;
    assert_eq!(closed.close_reason.as_deref(), Some(CLOSED_ON_REQUEST));
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_closed_while_it_opens_gives_up_its_wait() {
    let (engine, proxy) = start().await;
    let target = SocketAddr::from(([127, 0, 0, 1], NEVER_OPENS));
    let client = tokio::spawn(testkit::socks5_connect(proxy, target));
    let wanted = target.to_string();
    let mut key = None;
    for _ in 0..200 {
        key = engine
            .snapshot()
            .open
            .into_iter()
            .find(|s| s.target == wanted)
            .map(|s| s.key);
        if key.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let key = key.expect("the opening row");
    engine.close_stream(key).unwrap();
    // The application gets a failure reply at once, not after the waits.
    let reply = tokio::time::timeout(PROMPTLY, client)
        .await
        .expect("the open still waits")
        .unwrap();
    assert!(reply.is_err(), "a failure reply");
    let closed = closed_row(&engine, key).await;
    assert_eq!(closed.close_reason.as_deref(), Some(CLOSED_ON_REQUEST));
    engine.stop().await;
}
