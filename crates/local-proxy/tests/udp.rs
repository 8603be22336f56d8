//! SOCKS5 UDP ASSOCIATE with real peers: a connector that relays datagrams
//! straight through a tokio `UdpSocket` (standing in for a tunnel that
//! carries UDP), a UDP echo server on loopback, and as clients PySocks
//! (an independent implementation) and hand-written datagrams.

mod util;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use local_proxy::socks5::{self, Reply};
use local_proxy::{
    AssociateFuture, AssociateRequest, BoxDatagrams, BoxFuture, BoxStream, ConnectError,
    ConnectErrorKind, ConnectRequest, Connector, Datagram, DatagramChannel, ProxyConfig,
    TargetAddr,
};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::oneshot;
use util::*;

/// Safety net for events that are awaited; never slept for.
const WITHIN: Duration = Duration::from_secs(5);

/// Associates straight through a local UDP socket and records what it saw.
#[derive(Default)]
struct UdpConnector {
    requests: Mutex<Vec<AssociateRequest>>,
    /// Every datagram a channel was asked to send, in order.
    sent: Arc<Mutex<Vec<Datagram>>>,
    /// One per channel; resolves (with an error) when the channel is dropped.
    dropped: Mutex<Vec<oneshot::Receiver<()>>>,
    /// Channels whose `recv` says at once that the association is over.
    end_at_once: bool,
}

impl UdpConnector {
    fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn sent(&self) -> Vec<Datagram> {
        self.sent.lock().unwrap().clone()
    }

    fn sent_payloads(&self) -> Vec<Vec<u8>> {
        self.sent()
            .into_iter()
            .map(|d| d.payload.to_vec())
            .collect()
    }

    /// Waits until the `index`th channel is dropped.
    async fn wait_dropped(&self, index: usize) {
        let rx = self.dropped.lock().unwrap().remove(index);
        let result = tokio::time::timeout(WITHIN, rx)
            .await
            .expect("the association's channel was not dropped in time");
        assert!(result.is_err(), "the channel is only ever dropped");
    }
}

impl Connector for UdpConnector {
    fn connect(
        &self,
        _request: ConnectRequest,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<BoxStream, ConnectError>> + Send + 'static>>
    {
        Box::pin(async { Err(ConnectError::new(ConnectErrorKind::NotAllowed, "UDP only")) })
    }

    fn associate(&self, request: AssociateRequest) -> AssociateFuture {
        self.requests.lock().unwrap().push(request);
        let (tx, rx) = oneshot::channel();
        self.dropped.lock().unwrap().push(rx);
        let sent = Arc::clone(&self.sent);
        let end_at_once = self.end_at_once;
        Box::pin(async move {
            let socket = UdpSocket::bind("127.0.0.1:0").await?;
            Ok(Box::new(DirectChannel {
                socket,
                sent,
                end_at_once,
                _dropped: tx,
            }) as BoxDatagrams)
        })
    }
}

struct DirectChannel {
    socket: UdpSocket,
    sent: Arc<Mutex<Vec<Datagram>>>,
    end_at_once: bool,
    /// Dropped with the channel, which tells the test.
    _dropped: oneshot::Sender<()>,
}

impl DatagramChannel for DirectChannel {
    fn send(&self, datagram: Datagram) -> BoxFuture<'_, Result<(), ConnectError>> {
        self.sent.lock().unwrap().push(datagram.clone());
        Box::pin(async move {
            let to = match &datagram.target {
                TargetAddr::Ip(sa) => *sa,
                // The far side resolves names; here that is the test itself.
                TargetAddr::Domain(name, port) => tokio::net::lookup_host((name.as_str(), *port))
                    .await?
                    .find(SocketAddr::is_ipv4)
                    .ok_or_else(|| ConnectError::new(ConnectErrorKind::Unreachable, "no IPv4"))?,
            };
            self.socket.send_to(&datagram.payload, to).await?;
            Ok(())
        })
    }

    fn recv(&self) -> BoxFuture<'_, Option<Datagram>> {
        Box::pin(async move {
            if self.end_at_once {
                return None;
            }
            let mut buf = vec![0u8; 65_536];
            let (n, from) = self.socket.recv_from(&mut buf).await.ok()?;
            buf.truncate(n);
            Some(Datagram::new(TargetAddr::Ip(from), buf))
        })
    }
}

/// Greets, sends UDP ASSOCIATE naming `source`, and returns the control
/// connection and the reply.
async fn request_associate(
    proxy: SocketAddr,
    source: &TargetAddr,
) -> (TcpStream, socks5::ReplyMessage) {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(&[5, 1, 0]).await.unwrap();
    assert_eq!(read_n(&mut s, 2).await, [5, 0]);
    let request = socks5::Request {
        command: socks5::Command::UdpAssociate,
        target: source.clone(),
    };
    let mut bytes = Vec::new();
    socks5::encode_request(&request, &mut bytes);
    s.write_all(&bytes).await.unwrap();
    // Loopback: an IPv4 reply, 10 bytes.
    let reply = read_n(&mut s, 10).await;
    let (reply, used) = socks5::decode_reply(&reply).unwrap().unwrap();
    assert_eq!(used, 10);
    (s, reply)
}

/// A successful association with no source named: control connection and
/// the relay's address.
async fn associate(proxy: SocketAddr) -> (TcpStream, SocketAddr) {
    let unknown = TargetAddr::Ip("0.0.0.0:0".parse().unwrap());
    let (s, reply) = request_associate(proxy, &unknown).await;
    assert_eq!(reply.reply, Reply::Succeeded as u8);
    let TargetAddr::Ip(relay) = reply.bound else {
        panic!("BND.ADDR is not an IP: {:?}", reply.bound);
    };
    // On the listener's IP, with a real port.
    assert_eq!(relay.ip(), proxy.ip());
    assert_ne!(relay.port(), 0);
    (s, relay)
}

async fn client_socket() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

async fn send_via(client: &UdpSocket, relay: SocketAddr, target: &TargetAddr, payload: &[u8]) {
    let mut bytes = Vec::new();
    socks5::encode_udp_header(target, &mut bytes);
    bytes.extend_from_slice(payload);
    client.send_to(&bytes, relay).await.unwrap();
}

/// The next datagram from the relay: its sender (from the header) and payload.
async fn recv_via(client: &UdpSocket, relay: SocketAddr) -> (TargetAddr, Vec<u8>) {
    let mut buf = vec![0u8; 70_000];
    let (n, from) = tokio::time::timeout(WITHIN, client.recv_from(&mut buf))
        .await
        .expect("no datagram from the relay in time")
        .unwrap();
    assert_eq!(from, relay);
    let (header, offset) = socks5::decode_udp_header(&buf[..n]).unwrap();
    assert_eq!(header.frag, 0);
    (header.target, buf[offset..n].to_vec())
}

/// Sends `payload` to the echo server through the relay and checks the echo.
async fn round_trip(client: &UdpSocket, relay: SocketAddr, echo: SocketAddr, payload: &[u8]) {
    send_via(client, relay, &TargetAddr::Ip(echo), payload).await;
    let (from, back) = recv_via(client, relay).await;
    assert_eq!(from, TargetAddr::Ip(echo));
    assert_eq!(back, payload);
}

/// The control connection is closed by the proxy (EOF) in time.
async fn assert_closed(s: &mut TcpStream) {
    assert_eq!(read_all(s, WITHIN).await, b"");
}

#[tokio::test]
async fn pysocks_datagrams_of_many_sizes_echo_byte_exact() {
    const PYTHON: &str = "/usr/bin/python3";
    let check = std::process::Command::new(PYTHON)
        .args(["-c", "import socks"])
        .output();
    match check {
        Ok(out) if out.status.success() => {}
        other => panic!(
            "this test needs PySocks for {PYTHON}: install the Debian package \
             python3-socks (apt-get install python3-socks); got {other:?}"
        ),
    }
    let echo = udp_echo_server().await;
    let connector = UdpConnector::new();
    let proxy = start(config(), connector.clone()).await;
    // The package directory of the running test, not the compiled-in one: a
    // test binary reused from another checkout would look in that checkout.
    let package = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(
        || env!("CARGO_MANIFEST_DIR").into(),
        std::path::PathBuf::from,
    );
    let script = package.join("tests/socks_udp_client.py");
    let run = tokio::process::Command::new(PYTHON)
        .arg(script)
        .arg(proxy.local_addr().ip().to_string())
        .arg(proxy.local_addr().port().to_string())
        .arg(echo.addr.ip().to_string())
        .arg(echo.addr.port().to_string())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the PySocks client did not finish in time")
        .expect("run the PySocks client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "PySocks client failed ({}): {stderr}",
        out.status
    );
    // 13 sizes, twice; every one went through the channel once.
    assert_eq!(stdout.trim(), "26", "{stderr}");
    assert_eq!(connector.sent().len(), 26);
    assert!(
        connector
            .sent()
            .iter()
            .all(|d| d.target == TargetAddr::Ip(echo.addr))
    );
    assert_eq!(connector.requests.lock().unwrap().len(), 1);
    // The script closed its socket, and with it the control connection.
    connector.wait_dropped(0).await;
}

#[tokio::test]
async fn default_connector_refuses_with_0x07() {
    // DirectConnector does TCP only: the trait's default `associate`.
    let proxy = start(config(), DirectConnector::new()).await;
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    s.write_all(&[5, 1, 0, 5, 3, 0, 1, 0, 0, 0, 0, 0, 0])
        .await
        .unwrap();
    assert_eq!(
        read_all(&mut s, WITHIN).await,
        [5, 0, 5, 7, 0, 1, 0, 0, 0, 0, 0, 0]
    );
}

#[tokio::test]
async fn connector_errors_map_to_reply_codes() {
    struct Refuse;
    impl Connector for Refuse {
        fn connect(
            &self,
            _: ConnectRequest,
        ) -> std::pin::Pin<Box<dyn Future<Output = Result<BoxStream, ConnectError>> + Send>>
        {
            Box::pin(async { Err(ConnectError::new(ConnectErrorKind::Other, "")) })
        }
        fn associate(&self, _: AssociateRequest) -> AssociateFuture {
            Box::pin(async { Err(ConnectError::new(ConnectErrorKind::Unavailable, "down")) })
        }
    }
    let proxy = start(config(), Arc::new(Refuse)).await;
    let (mut s, reply) = request_associate(
        proxy.local_addr(),
        &TargetAddr::Ip("0.0.0.0:0".parse().unwrap()),
    )
    .await;
    assert_eq!(reply.reply, Reply::GeneralFailure as u8);
    assert_closed(&mut s).await;
}

#[tokio::test]
async fn ip_and_domain_targets_round_trip() {
    let echo = udp_echo_server().await;
    let connector = UdpConnector::new();
    let proxy = start(config(), connector.clone()).await;
    let (control, relay) = associate(proxy.local_addr()).await;
    let client = client_socket().await;
    round_trip(&client, relay, echo.addr, b"by address").await;
    // A name goes to the channel unresolved; the reply names the real sender.
    let by_name = TargetAddr::Domain("localhost".into(), echo.port());
    send_via(&client, relay, &by_name, b"by name").await;
    assert_eq!(
        recv_via(&client, relay).await,
        (TargetAddr::Ip(echo.addr), b"by name".to_vec())
    );
    // An IP literal written as a name needs no lookup: it arrives as an IP.
    let literal = TargetAddr::Domain("127.0.0.1".into(), echo.port());
    send_via(&client, relay, &literal, b"literal").await;
    recv_via(&client, relay).await;
    let targets: Vec<TargetAddr> = connector.sent().into_iter().map(|d| d.target).collect();
    assert_eq!(
        targets,
        [
            TargetAddr::Ip(echo.addr),
            by_name,
            TargetAddr::Ip(echo.addr)
        ]
    );
    assert_eq!(
        connector.requests.lock().unwrap()[0].client,
        control.local_addr().unwrap()
    );
}

#[tokio::test]
async fn datagrams_from_a_foreign_source_port_are_dropped() {
    let echo = udp_echo_server().await;
    let connector = UdpConnector::new();
    let proxy = start(config(), connector.clone()).await;
    let (_control, relay) = associate(proxy.local_addr()).await;
    let client = client_socket().await;
    let intruder = client_socket().await;
    // The first datagram fixes the client's port.
    round_trip(&client, relay, echo.addr, b"first").await;
    send_via(&intruder, relay, &TargetAddr::Ip(echo.addr), b"intruder").await;
    round_trip(&client, relay, echo.addr, b"second").await;
    // The relay handles datagrams in order: by the time "second" came back,
    // the intruder's had been seen and dropped.
    assert_eq!(
        connector.sent_payloads(),
        [b"first".to_vec(), b"second".to_vec()]
    );
}

#[tokio::test]
async fn a_source_named_in_the_request_restricts_the_association() {
    let echo = udp_echo_server().await;
    let connector = UdpConnector::new();
    let proxy = start(config(), connector.clone()).await;
    let client = client_socket().await;
    let other = client_socket().await;
    let named = TargetAddr::Ip(client.local_addr().unwrap());
    let (_control, reply) = request_associate(proxy.local_addr(), &named).await;
    assert_eq!(reply.reply, Reply::Succeeded as u8);
    let TargetAddr::Ip(relay) = reply.bound else {
        panic!("{:?}", reply.bound)
    };
    // Another port sends first: still not the named one.
    send_via(&other, relay, &TargetAddr::Ip(echo.addr), b"other").await;
    round_trip(&client, relay, echo.addr, b"named").await;
    assert_eq!(connector.sent_payloads(), [b"named".to_vec()]);

    // A source on another host could never be accepted: refused at once.
    let elsewhere = TargetAddr::Ip("192.0.2.1:4000".parse().unwrap());
    let (mut s, reply) = request_associate(proxy.local_addr(), &elsewhere).await;
    assert_eq!(reply.reply, Reply::NotAllowed as u8);
    assert_closed(&mut s).await;
}

#[tokio::test]
async fn closing_the_control_connection_ends_the_association() {
    let echo = udp_echo_server().await;
    let connector = UdpConnector::new();
    let proxy = start(config(), connector.clone()).await;
    let (control, relay) = associate(proxy.local_addr()).await;
    let client = client_socket().await;
    round_trip(&client, relay, echo.addr, b"alive").await;
    assert_eq!(proxy.active_connections(), 1);
    drop(control);
    connector.wait_dropped(0).await;
    // The connection slot is given back once the task is done.
    let deadline = tokio::time::Instant::now() + WITHIN;
    while proxy.active_connections() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "slot not released");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn malformed_datagrams_are_ignored_and_the_next_good_one_goes_through() {
    let echo = udp_echo_server().await;
    let connector = UdpConnector::new();
    let proxy = start(config(), connector.clone()).await;
    let (_control, relay) = associate(proxy.local_addr()).await;
    let client = client_socket().await;
    let mut fragment = vec![0, 0, 1];
    TargetAddr::Ip(echo.addr).encode(&mut fragment);
    fragment.extend_from_slice(b"fragment");
    let bad: [&[u8]; 6] = [
        &[],                                 // empty
        &[0, 0],                             // cut in the prefix
        &[0, 0, 0, 1, 127, 0],               // cut in the address
        &[0, 0, 0, 9, 1, 2, 3, 4, 0, 80, 1], // unknown address type
        &[0, 0, 0, 3, 1, 0xff, 0, 80, b'x'], // name not UTF-8
        &fragment,                           // FRAG != 0
    ];
    for bytes in bad {
        client.send_to(bytes, relay).await.unwrap();
    }
    round_trip(&client, relay, echo.addr, b"good").await;
    assert_eq!(connector.sent_payloads(), [b"good".to_vec()]);
}

#[tokio::test]
async fn oversized_datagrams_are_refused_by_the_limit() {
    let echo = udp_echo_server().await;
    let connector = UdpConnector::new();
    let config = ProxyConfig {
        udp_max_datagram: 1000,
        ..config()
    };
    let proxy = start(config, connector.clone()).await;
    let (_control, relay) = associate(proxy.local_addr()).await;
    let client = client_socket().await;
    send_via(&client, relay, &TargetAddr::Ip(echo.addr), &[7; 1001]).await;
    send_via(&client, relay, &TargetAddr::Ip(echo.addr), &[8; 60_000]).await;
    round_trip(&client, relay, echo.addr, &[9; 1000]).await;
    assert_eq!(connector.sent_payloads(), [vec![9; 1000]]);
}

#[tokio::test]
async fn idle_association_is_closed() {
    let connector = UdpConnector::new();
    let config = ProxyConfig {
        udp_idle_timeout: Duration::from_millis(200),
        ..config()
    };
    let proxy = start(config, connector.clone()).await;
    let (mut control, _relay) = associate(proxy.local_addr()).await;
    assert_closed(&mut control).await;
    connector.wait_dropped(0).await;
}

#[tokio::test]
async fn end_of_the_channel_closes_the_control_connection() {
    let connector = Arc::new(UdpConnector {
        end_at_once: true,
        ..UdpConnector::default()
    });
    let proxy = start(config(), connector.clone()).await;
    let (mut control, _relay) = associate(proxy.local_addr()).await;
    assert_closed(&mut control).await;
    connector.wait_dropped(0).await;
}

#[tokio::test]
async fn associations_count_against_the_connection_cap() {
    let connector = UdpConnector::new();
    let config = ProxyConfig {
        max_connections: 1,
        ..config()
    };
    let proxy = start(config, connector.clone()).await;
    let (_control, _relay) = associate(proxy.local_addr()).await;
    assert_eq!(proxy.active_connections(), 1);
    let mut extra = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let _ = extra.write_all(&[5, 1, 0]).await;
    assert_closed(&mut extra).await;
    assert_eq!(connector.requests.lock().unwrap().len(), 1);
}
