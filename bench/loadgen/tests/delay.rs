//! The delay link against real sockets: TCP echoes and UDP echoes through
//! it take at least two delays per round trip, the bytes come back
//! unchanged and in order, a large transfer is not slowed beyond the delay,
//! and an end of input crosses like the data before it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use loadgen::delay::{DelayLink, DelayOptions};
use loadgen::udp::Echo;
use testkit::EchoServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const DELAY: Duration = Duration::from_millis(40);
/// Room for a loaded test machine above the expected time.
const SLACK: Duration = Duration::from_millis(400);

async fn link(to: SocketAddr, delay: Duration) -> SocketAddr {
    let link = DelayLink::bind(DelayOptions::new("127.0.0.1:0".parse().unwrap(), to, delay))
        .await
        .expect("bind the link");
    let addr = link.addr();
    tokio::spawn(link.run());
    addr
}

async fn echo_round(tcp: &mut TcpStream, data: &[u8]) -> Duration {
    let started = Instant::now();
    tcp.write_all(data).await.unwrap();
    let mut back = vec![0u8; data.len()];
    tokio::time::timeout(Duration::from_secs(10), tcp.read_exact(&mut back))
        .await
        .expect("echo in time")
        .unwrap();
    assert_eq!(back, data, "the echo is the bytes sent");
    started.elapsed()
}

#[tokio::test]
async fn tcp_round_trips_take_two_delays_and_the_handshake_one_more() {
    let echo = EchoServer::start().await;
    let addr = link(echo.addr(), DELAY).await;
    let started = Instant::now();
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    // The first bytes wait for the handshake's crossings: 3 delays from
    // the connect to the far end, one more back.
    let first = echo_round(&mut tcp, b"hello through the link").await;
    let since_connect = started.elapsed();
    assert!(
        since_connect >= 4 * DELAY,
        "first round trip {since_connect:?}"
    );
    assert!(
        since_connect < 4 * DELAY + SLACK,
        "first round trip {since_connect:?}"
    );
    assert!(first >= 2 * DELAY);
    for i in 0..3u8 {
        let rtt = echo_round(&mut tcp, &[i; 100]).await;
        assert!(rtt >= 2 * DELAY, "round trip {i}: {rtt:?}");
        assert!(rtt < 2 * DELAY + SLACK, "round trip {i}: {rtt:?}");
    }
}

#[tokio::test]
async fn a_large_transfer_is_pipelined_and_arrives_intact() {
    let echo = EchoServer::start().await;
    let addr = link(echo.addr(), DELAY).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    echo_round(&mut tcp, b"warm").await;
    // 8 MiB echoed: held chunk by chunk it would take seconds; pipelined it
    // takes about one round trip more than the copying.
    let data = testkit::pseudo_random_bytes(7, 8 << 20);
    let (mut r, mut w) = tcp.into_split();
    let started = Instant::now();
    let sent = data.clone();
    let writer = tokio::spawn(async move { w.write_all(&sent).await.map(|_| w) });
    let mut back = vec![0u8; data.len()];
    tokio::time::timeout(Duration::from_secs(20), r.read_exact(&mut back))
        .await
        .expect("echo in time")
        .unwrap();
    let took = started.elapsed();
    assert!(back == data, "8 MiB came back changed");
    assert!(took >= 2 * DELAY);
    assert!(took < Duration::from_secs(5), "8 MiB took {took:?}");
    // The end of input crosses too: the echo server closes after ours.
    let mut w = writer.await.unwrap().unwrap();
    w.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), r.read_to_end(&mut rest))
        .await
        .expect("EOF in time")
        .unwrap();
    assert!(rest.is_empty());
    assert!(
        started.elapsed() >= 2 * DELAY,
        "EOF after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_refused_far_end_closes_the_client() {
    let addr = link(testkit::closed_port(), Duration::from_millis(5)).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let got = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(matches!(got, Ok(0) | Err(_)), "{got:?}");
}

#[tokio::test]
async fn udp_round_trips_take_two_delays_in_order_and_intact() {
    let echo = Echo::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let echo_addr = echo.addr().unwrap();
    tokio::spawn(echo.run_forever());
    let addr = link(echo_addr, DELAY).await;
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.connect(addr).await.unwrap();
    let mut buf = vec![0u8; 65_536];
    for round in 0..3u8 {
        let payload: Vec<u8> = (0..1200u32).map(|i| (i as u8) ^ round).collect();
        let started = Instant::now();
        udp.send(&payload).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(5), udp.recv(&mut buf))
            .await
            .expect("echo in time")
            .unwrap();
        let rtt = started.elapsed();
        assert_eq!(&buf[..n], &payload[..], "round {round}");
        assert!(rtt >= 2 * DELAY, "round {round}: {rtt:?}");
        assert!(rtt < 2 * DELAY + SLACK, "round {round}: {rtt:?}");
    }
    // A burst keeps its order and is not spread out by the delay.
    let started = Instant::now();
    for seq in 0..200u32 {
        udp.send(&seq.to_be_bytes()).await.unwrap();
    }
    for seq in 0..200u32 {
        let n = tokio::time::timeout(Duration::from_secs(5), udp.recv(&mut buf))
            .await
            .expect("echo in time")
            .unwrap();
        assert_eq!(&buf[..n], &seq.to_be_bytes(), "datagram {seq}");
    }
    let took = started.elapsed();
    assert!(
        took >= 2 * DELAY && took < 2 * DELAY + SLACK,
        "burst {took:?}"
    );
}

#[tokio::test]
async fn udp_clients_get_their_own_answers() {
    let echo = Echo::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let echo_addr = echo.addr().unwrap();
    tokio::spawn(echo.run_forever());
    let addr = link(echo_addr, Duration::from_millis(5)).await;
    let mut clients = Vec::new();
    for _ in 0..4 {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        udp.connect(addr).await.unwrap();
        clients.push(udp);
    }
    for (i, udp) in clients.iter().enumerate() {
        udp.send(format!("client {i}").as_bytes()).await.unwrap();
    }
    let mut buf = [0u8; 64];
    for (i, udp) in clients.iter().enumerate() {
        let n = tokio::time::timeout(Duration::from_secs(5), udp.recv(&mut buf))
            .await
            .expect("echo in time")
            .unwrap();
        assert_eq!(&buf[..n], format!("client {i}").as_bytes());
    }
}

#[tokio::test]
async fn the_same_port_serves_tcp_and_udp() {
    let echo = EchoServer::start().await;
    let link = DelayLink::bind(DelayOptions::new(
        "127.0.0.1:0".parse().unwrap(),
        echo.addr(),
        Duration::ZERO,
    ))
    .await
    .unwrap();
    let addr = link.addr();
    assert_ne!(addr.port(), 0);
    // Both are bound: a second link on the same port fails.
    let again = DelayLink::bind(DelayOptions::new(addr, echo.addr(), Duration::ZERO)).await;
    assert!(again.is_err());
    let udp_taken = std::net::UdpSocket::bind(addr);
    assert!(udp_taken.is_err(), "UDP {addr} is the link's");
}

#[tokio::test]
async fn a_connect_costs_one_round_trip_and_not_more() {
    // Long enough to tell 4 delays (the handshake's round trip, then the
    // first bytes there and back) from 5 on a loaded machine.
    let delay = Duration::from_millis(150);
    let echo = EchoServer::start().await;
    let addr = link(echo.addr(), delay).await;
    let started = Instant::now();
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    // Sent at once, before the link has dialled the far end: these bytes
    // are timed from their arrival, not from when the far end was reached.
    echo_round(&mut tcp, b"first").await;
    let took = started.elapsed();
    assert!(took >= 4 * delay, "{took:?}");
    assert!(took < 4 * delay + delay / 2, "{took:?}");
}

#[tokio::test]
async fn work_before_the_first_send_counts_after_the_connect_round_trip() {
    // On a real path connect returns a round trip after it was called, so
    // a client that works `pause` before sending sends at 2 × delay +
    // pause: its bytes arrive at 3 × delay + pause and the echo is back at
    // 4 × delay + pause. Through a relay connect returns at once; the link
    // makes up for it.
    let delay = Duration::from_millis(100);
    let pause = Duration::from_millis(120);
    let echo = EchoServer::start().await;
    let addr = link(echo.addr(), delay).await;
    let started = Instant::now();
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(pause).await;
    echo_round(&mut tcp, b"late").await;
    let took = started.elapsed();
    assert!(took >= 4 * delay + pause, "{took:?}");
    assert!(took < 4 * delay + pause + delay / 2, "{took:?}");
    // Having heard from the far end, the client is in step: one round trip.
    let rtt = echo_round(&mut tcp, b"next").await;
    assert!(rtt >= 2 * delay && rtt < 2 * delay + delay / 2, "{rtt:?}");
}
