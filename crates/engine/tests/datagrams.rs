//! SOCKS5 UDP ASSOCIATE through the engine: a transport whose sessions carry
//! datagrams gets a working association (counted in the stream table), one
//! without them a clear refusal. The datagram transport here relays through a
//! real UDP socket, as a UDP-capable tunnel's far side does; the target is a
//! real UDP echo server and the client speaks SOCKS5 over real sockets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use engine::transport::BoxFuture;
use engine::{
    DatagramSession, Engine, OpenedStream, ReconnectPolicy, StartOptions, Transport,
    TransportError, TunnelSession,
};
use local_proxy::{
    BoxDatagrams, ConnectError, ConnectErrorKind, Datagram, DatagramChannel, ProxyConfig,
    TargetAddr,
};
use tokio::net::UdpSocket;
use tokio::sync::Mutex;

/// Sessions that carry datagrams (or not), and no streams.
struct UdpTransport {
    datagrams: bool,
}

struct UdpSession {
    relay: Option<DirectUdp>,
}

/// Datagrams relayed through a real UDP socket of this machine.
struct DirectUdp;

struct DirectChannel {
    socket: UdpSocket,
    buf: Mutex<Vec<u8>>,
}

impl Transport for UdpTransport {
    fn server(&self) -> String {
        "udp-test".into()
    }

    fn connect(&self) -> BoxFuture<'_, Result<Arc<dyn TunnelSession>, TransportError>> {
        let relay = self.datagrams.then_some(DirectUdp);
        Box::pin(async move { Ok(Arc::new(UdpSession { relay }) as Arc<dyn TunnelSession>) })
    }
}

impl TunnelSession for UdpSession {
    fn session_id(&self) -> String {
        "u1".into()
    }
    fn max_streams(&self) -> u32 {
        1
    }
    fn open(
        &self,
        _target: TargetAddr,
        _slot_wait: Duration,
    ) -> BoxFuture<'_, Result<OpenedStream, ConnectError>> {
        Box::pin(async { Err(ConnectError::new(ConnectErrorKind::Other, "no streams")) })
    }
    fn closed(&self) -> BoxFuture<'_, String> {
        Box::pin(std::future::pending())
    }
    fn close(&self) {}
    fn datagrams(&self) -> Option<&dyn DatagramSession> {
        self.relay.as_ref().map(|r| r as &dyn DatagramSession)
    }
}

impl DatagramSession for DirectUdp {
    fn associate(&self) -> BoxFuture<'_, Result<BoxDatagrams, ConnectError>> {
        Box::pin(async {
            let socket = UdpSocket::bind("127.0.0.1:0").await?;
            Ok(Box::new(DirectChannel {
                socket,
                buf: Mutex::new(vec![0; 65_536]),
            }) as BoxDatagrams)
        })
    }
}

impl DatagramChannel for DirectChannel {
    fn send(&self, datagram: Datagram) -> BoxFuture<'_, Result<(), ConnectError>> {
        Box::pin(async move {
            let TargetAddr::Ip(to) = datagram.target else {
                return Err(ConnectError::new(
                    ConnectErrorKind::Unreachable,
                    "names are not resolved here",
                ));
            };
            self.socket.send_to(&datagram.payload, to).await?;
            Ok(())
        })
    }

    fn recv(&self) -> BoxFuture<'_, Option<Datagram>> {
        Box::pin(async move {
            let mut buf = self.buf.lock().await;
            let (n, from) = self.socket.recv_from(&mut buf).await.ok()?;
            Some(Datagram::new(TargetAddr::Ip(from), buf[..n].to_vec()))
        })
    }
}

async fn start(datagrams: bool) -> (Engine, SocketAddr) {
    let engine = Engine::new();
    let addr = engine
        .start(StartOptions {
            transport: Arc::new(UdpTransport { datagrams }),
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
    let mut state = engine.watch_state();
    tokio::time::timeout(Duration::from_secs(5), state.wait_for(|s| s.is_active()))
        .await
        .expect("the session comes up")
        .unwrap();
    (engine, addr)
}

async fn echo_server() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    addr
}

#[tokio::test]
async fn datagrams_travel_where_the_session_carries_them_and_are_counted() {
    let (engine, proxy) = start(true).await;
    let echo = echo_server().await;
    let (control, relay) = testkit::socks5_udp_associate(proxy)
        .await
        .expect("association granted");
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut packet = Vec::new();
    packet.extend_from_slice(&[0, 0, 0]);
    TargetAddr::Ip(echo).encode(&mut packet);
    let header_len = packet.len();
    packet.extend_from_slice(b"ping through the engine");
    client.send_to(&packet, relay).await.unwrap();
    let mut buf = [0u8; 1024];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf))
        .await
        .expect("the echo comes back")
        .unwrap();
    assert_eq!(&buf[header_len..n], b"ping through the engine");
    assert_eq!(
        &buf[3..header_len],
        &packet[3..header_len],
        "from the echo server"
    );
    let open = engine.snapshot().open;
    let row = open
        .iter()
        .find(|s| s.protocol == "socks5-udp")
        .expect("the association has a row");
    assert_eq!(row.bytes_up, 23);
    assert_eq!(row.bytes_down, 23);
    drop(control);
    let mut events = engine.subscribe();
    tokio::time::timeout(Duration::from_secs(5), async {
        while engine
            .snapshot()
            .open
            .iter()
            .any(|s| s.protocol == "socks5-udp")
        {
            let _ = events.recv().await;
        }
    })
    .await
    .expect("closing the control connection ends the association");
    engine.stop().await;
}

#[tokio::test]
async fn sessions_without_datagrams_refuse_with_command_not_supported() {
    let (engine, proxy) = start(false).await;
    assert_eq!(testkit::socks5_udp_associate(proxy).await.err(), Some(0x07));
    let closed = engine.snapshot().closed;
    assert!(
        closed.iter().any(|s| s.protocol == "socks5-udp"
            && s.close_reason
                .as_deref()
                .is_some_and(|r| r.contains("carries no UDP"))),
        "{closed:?}"
    );
    engine.stop().await;
}
