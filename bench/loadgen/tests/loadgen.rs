//! loadgen against real sockets: testkit's HTTP server as the target, the
//! sink fed by a raw HTTP/1.1 client (chunked, with `Expect: 100-continue`),
//! and UDP datagrams to the echo server, directly and through a small
//! UDP-only SOCKS5 proxy.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use loadgen::socks5;
use loadgen::udp::{Echo, UdpOptions};
use loadgen::{Sink, SinkOptions, StreamsOptions, Target};
use testkit::HttpServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

#[tokio::test]
async fn concurrent_streams_all_complete_and_stay_open_together() {
    let server = HttpServer::start().await;
    let report = loadgen::streams::run(StreamsOptions {
        proxy: None,
        target: Target::parse(&format!("{}/stream/1024", server.url())).unwrap(),
        streams: 64,
        timeout: Duration::from_secs(20),
        hold: Duration::from_millis(10),
        max_body: 1 << 20,
    })
    .await;
    assert_eq!(report.completed, 64, "{report:?}");
    assert_eq!(report.failed, 0);
    assert_eq!(report.open_at_peak, 64);
    assert_eq!(report.body_bytes, 64 * 1024);
    let lat = report.latency_ms.expect("latencies");
    assert!(lat.min <= lat.p50 && lat.p50 <= lat.p99 && lat.p99 <= lat.max);
}

#[tokio::test]
async fn failed_streams_are_counted_by_reason() {
    let server = HttpServer::start().await;
    let report = loadgen::streams::run(StreamsOptions {
        proxy: None,
        target: Target::parse(&format!("{}/no-such-path", server.url())).unwrap(),
        streams: 5,
        timeout: Duration::from_secs(20),
        hold: Duration::ZERO,
        max_body: 1 << 20,
    })
    .await;
    assert_eq!((report.completed, report.failed), (0, 5));
    assert_eq!(report.errors.get("http status 404"), Some(&5), "{report:?}");
    assert!(report.latency_ms.is_none());
}

async fn read_answer(tcp: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    // The sink answers with a Content-Length; read until the JSON line ends.
    while !buf.ends_with(b"}\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut chunk))
            .await
            .expect("sink answered in time")
            .unwrap();
        assert!(
            n > 0,
            "sink closed early: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8(buf).unwrap()
}

#[tokio::test]
async fn sink_counts_every_body_byte() {
    let sink = Sink::start(SinkOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        max_body: 1 << 30,
        max_connections: 4,
        connection_timeout: Duration::from_secs(30),
    })
    .await
    .unwrap();
    let mut tcp = TcpStream::connect(sink.addr()).await.unwrap();

    // Content-Length with Expect: 100-continue, as curl -T sends a big file.
    let len = 3 * 1024 * 1024 + 7;
    tcp.write_all(
        format!(
            "PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\nExpect: 100-continue\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut cont = [0u8; 25];
    tcp.read_exact(&mut cont).await.unwrap();
    assert!(cont.starts_with(b"HTTP/1.1 100 Continue\r\n"), "{cont:?}");
    let body = vec![0xa5u8; len];
    tcp.write_all(&body).await.unwrap();
    let answer = read_answer(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.ends_with(&format!("{{\"bytes\":{len}}}\n")),
        "{answer}"
    );

    // Chunked, on the same keep-alive connection.
    tcp.write_all(b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n")
        .await
        .unwrap();
    let answer = read_answer(&mut tcp).await;
    assert!(answer.ends_with("{\"bytes\":8}\n"), "{answer}");
}

#[tokio::test]
async fn sink_refuses_bodies_over_the_limit() {
    let sink = Sink::start(SinkOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        max_body: 1000,
        max_connections: 4,
        connection_timeout: Duration::from_secs(30),
    })
    .await
    .unwrap();
    let mut tcp = TcpStream::connect(sink.addr()).await.unwrap();
    tcp.write_all(b"PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
        .await
        .unwrap();
    tcp.write_all(&[0u8; 5000]).await.unwrap();
    let answer = read_answer(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test]
async fn udp_datagrams_come_back_directly() {
    let echo = Echo::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let target = echo.addr().unwrap();
    tokio::spawn(echo.run_forever());
    let report = loadgen::udp::run(UdpOptions {
        proxy: None,
        target,
        size: 300,
        in_flight: 16,
        duration: Duration::from_millis(300),
        loss_timeout: Duration::from_secs(2),
    })
    .await
    .unwrap();
    assert!(report.sent > 0, "{report:?}");
    assert_eq!(report.received, report.sent, "{report:?}");
    assert_eq!((report.lost, report.corrupt), (0, 0), "{report:?}");
    assert!(report.datagrams_per_s > 0.0 && report.rtt_ms.is_some());
}

/// A SOCKS5 proxy that knows only UDP ASSOCIATE: it answers with the address
/// of its relay socket, then forwards each datagram's payload to the address
/// in its header and wraps the answers in a header naming their source.
async fn udp_only_socks5_proxy() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut control, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 13];
        control.read_exact(&mut request).await.unwrap();
        assert_eq!(request[3..5], [5, 3], "UDP ASSOCIATE");
        let relay = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let out = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let port = relay.local_addr().unwrap().port().to_be_bytes();
        // The relay's address as 0.0.0.0: the client must use the proxy's.
        control
            .write_all(&[5, 0, 5, 0, 0, 1, 0, 0, 0, 0, port[0], port[1]])
            .await
            .unwrap();
        let client = Arc::new(tokio::sync::OnceCell::new());
        let (back_relay, back_out, back_client) = (relay.clone(), out.clone(), client.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            loop {
                let (n, from) = back_out.recv_from(&mut buf).await.unwrap();
                let mut datagram = Vec::new();
                socks5::encode_udp_header(&mut datagram, from);
                datagram.extend_from_slice(&buf[..n]);
                let to: &SocketAddr = back_client.get().unwrap();
                back_relay.send_to(&datagram, to).await.unwrap();
            }
        });
        let mut buf = vec![0u8; 65_536];
        loop {
            let (n, from) = relay.recv_from(&mut buf).await.unwrap();
            let _ = client.set(from);
            let (to, payload) = socks5::decode_udp(&buf[..n]).unwrap();
            out.send_to(payload, to.unwrap()).await.unwrap();
        }
    });
    addr
}

#[tokio::test]
async fn udp_datagrams_travel_through_a_socks5_association() {
    let echo = Echo::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let target = echo.addr().unwrap();
    tokio::spawn(echo.run_forever());
    let proxy = udp_only_socks5_proxy().await;
    let report = loadgen::udp::run(UdpOptions {
        proxy: Some(proxy),
        target,
        size: 64,
        in_flight: 8,
        duration: Duration::from_millis(300),
        loss_timeout: Duration::from_secs(2),
    })
    .await
    .unwrap();
    assert_eq!(report.relay.map(|r| r.ip()), Some(proxy.ip()), "{report:?}");
    assert!(report.sent > 0, "{report:?}");
    assert_eq!(report.received, report.sent, "{report:?}");
    assert_eq!((report.lost, report.corrupt), (0, 0), "{report:?}");
}
