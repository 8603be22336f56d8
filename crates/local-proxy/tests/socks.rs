//! SOCKS5 behaviour, driven by hand-written client bytes.

mod util;

use std::time::{Duration, Instant};

use local_proxy::{ConnectErrorKind, Credentials, ProxyConfig, ProxyProtocol, TargetAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use util::*;

const CLOSE_WITHIN: Duration = Duration::from_secs(3);

#[tokio::test]
async fn connect_ipv4_relays_both_ways() {
    let echo = echo_server().await;
    let connector = DirectConnector::new();
    let proxy = start(config(), connector.clone()).await;
    let target = TargetAddr::Ip(echo.addr);
    let mut s = socks_connect(proxy.local_addr(), &target).await;
    s.write_all(b"ping").await.unwrap();
    assert_eq!(read_n(&mut s, 4).await, b"ping");
    // Half-close: our EOF reaches the echo server, whose EOF comes back.
    s.shutdown().await.unwrap();
    assert_eq!(read_all(&mut s, CLOSE_WITHIN).await, b"");
    let reqs = connector.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].target, target);
    assert_eq!(reqs[0].protocol, ProxyProtocol::Socks5);
    assert_eq!(reqs[0].client, s.local_addr().unwrap());
}

#[tokio::test]
async fn optimistic_data_after_request_is_forwarded() {
    let echo = echo_server().await;
    let proxy = start(config(), DirectConnector::new()).await;
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    // Greeting, request and payload in one write, no waiting for replies.
    let mut bytes = vec![5, 1, 0, 5, 1, 0];
    TargetAddr::Ip(echo.addr).encode(&mut bytes);
    bytes.extend_from_slice(b"early");
    s.write_all(&bytes).await.unwrap();
    assert_eq!(read_n(&mut s, 2 + 10 + 5).await[12..], *b"early");
}

#[tokio::test]
async fn half_close_keeps_the_response_flowing() {
    // A server that reads everything first, then answers and closes.
    let server = raw_server(|mut s| async move {
        let mut data = Vec::new();
        s.read_to_end(&mut data).await.unwrap();
        s.write_all(format!("got {} bytes", data.len()).as_bytes())
            .await
            .unwrap();
    })
    .await;
    let proxy = start(config(), DirectConnector::new()).await;
    let mut s = socks_connect(proxy.local_addr(), &TargetAddr::Ip(server.addr)).await;
    s.write_all(&vec![7u8; 100_000]).await.unwrap();
    s.shutdown().await.unwrap();
    assert_eq!(read_all(&mut s, CLOSE_WITHIN).await, b"got 100000 bytes");
}

#[tokio::test]
async fn garbage_and_tls_first_bytes_are_closed_silently() {
    let connector = DirectConnector::new();
    let proxy = start(config(), connector.clone()).await;
    for first in [
        &[0x16u8, 0x03, 0x01, 0x00, 0x10][..],
        &[0xff; 32],
        &[0x00],
        b"\r\n",
    ] {
        let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
        s.write_all(first).await.unwrap();
        assert_eq!(read_all(&mut s, CLOSE_WITHIN).await, b"", "{first:?}");
    }
    assert!(connector.requests().is_empty());
}

#[tokio::test]
async fn socks4_gets_rejected_reply() {
    let connector = DirectConnector::new();
    let proxy = start(config(), connector.clone()).await;
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    s.write_all(&[4, 1, 0, 80, 127, 0, 0, 1, b'u', 0])
        .await
        .unwrap();
    assert_eq!(
        read_all(&mut s, CLOSE_WITHIN).await,
        [0, 0x5B, 0, 0, 0, 0, 0, 0]
    );
    assert!(connector.requests().is_empty());
}

#[tokio::test]
async fn truncated_greeting_then_close() {
    let connector = DirectConnector::new();
    let proxy = start(config(), connector.clone()).await;
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    s.write_all(&[5, 3, 0]).await.unwrap();
    s.shutdown().await.unwrap();
    assert_eq!(read_all(&mut s, CLOSE_WITHIN).await, b"");
    assert!(connector.requests().is_empty());
}

#[tokio::test]
async fn truncated_messages_then_silence_are_closed_at_the_handshake_timeout() {
    let timeout = Duration::from_millis(300);
    let proxy = start(
        ProxyConfig {
            handshake_timeout: timeout,
            ..config()
        },
        DirectConnector::new(),
    )
    .await;
    // Nothing at all; half a greeting; a greeting and half a request.
    let cases: [&[u8]; 3] = [&[], &[5, 2, 0], &[5, 1, 0, 5, 1, 0, 3, 10, b'e', b'x']];
    for bytes in cases {
        let start = Instant::now();
        let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
        s.write_all(bytes).await.unwrap();
        let got = read_all(&mut s, CLOSE_WITHIN).await;
        let elapsed = start.elapsed();
        assert!(
            elapsed >= timeout - Duration::from_millis(50),
            "{elapsed:?}"
        );
        // The method selection may have been answered; nothing else.
        assert!(got.is_empty() || got == [5, 0], "{got:?}");
    }
}

#[tokio::test]
async fn udp_associate_and_bind_are_not_supported() {
    // BIND and unknown commands never are; UDP ASSOCIATE is refused by the
    // TCP-only connector's default `associate` (tests/udp.rs has the rest).
    let connector = DirectConnector::new();
    let proxy = start(config(), connector.clone()).await;
    for cmd in [2u8, 3, 9] {
        let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
        s.write_all(&[5, 1, 0]).await.unwrap();
        assert_eq!(read_n(&mut s, 2).await, [5, 0]);
        s.write_all(&[5, cmd, 0, 1, 127, 0, 0, 1, 0, 53])
            .await
            .unwrap();
        assert_eq!(
            read_all(&mut s, CLOSE_WITHIN).await,
            [5, 7, 0, 1, 0, 0, 0, 0, 0, 0],
            "cmd {cmd}"
        );
    }
    assert!(connector.requests().is_empty());
}

#[tokio::test]
async fn unknown_address_type_gets_0x08() {
    let proxy = start(config(), DirectConnector::new()).await;
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    s.write_all(&[5, 1, 0, 5, 1, 0, 7, 1, 2, 3]).await.unwrap();
    assert_eq!(
        read_all(&mut s, CLOSE_WITHIN).await,
        [5, 0, 5, 8, 0, 1, 0, 0, 0, 0, 0, 0]
    );
}

#[tokio::test]
async fn empty_domain_gets_general_failure() {
    let proxy = start(config(), DirectConnector::new()).await;
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    s.write_all(&[5, 1, 0, 5, 1, 0, 3, 0, 0, 80]).await.unwrap();
    assert_eq!(
        read_all(&mut s, CLOSE_WITHIN).await,
        [5, 0, 5, 1, 0, 1, 0, 0, 0, 0, 0, 0]
    );
}

#[tokio::test]
async fn ipv6_and_domain_targets_reach_the_connector_unresolved() {
    let connector = FailConnector::new(ConnectErrorKind::NotAllowed);
    let proxy = start(config(), connector.clone()).await;
    let name = b"no-such-host.invalid";
    let mut domain_req = vec![5, 1, 0, 3, name.len() as u8];
    domain_req.extend_from_slice(name);
    domain_req.extend_from_slice(&443u16.to_be_bytes());
    let mut v6_req = vec![5, 1, 0, 4];
    v6_req.extend_from_slice(
        &"2001:db8::7"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    v6_req.extend_from_slice(&8443u16.to_be_bytes());
    // An IP literal sent as a name needs no lookup: it arrives as an IP.
    let mut literal_req = vec![5, 1, 0, 3, 8];
    literal_req.extend_from_slice(b"10.1.2.3");
    literal_req.extend_from_slice(&80u16.to_be_bytes());
    for req in [&domain_req, &v6_req, &literal_req] {
        let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
        s.write_all(&[5, 1, 0]).await.unwrap();
        assert_eq!(read_n(&mut s, 2).await, [5, 0]);
        s.write_all(req).await.unwrap();
        // NotAllowed → 0x02.
        assert_eq!(
            read_all(&mut s, CLOSE_WITHIN).await,
            [5, 2, 0, 1, 0, 0, 0, 0, 0, 0]
        );
    }
    assert_eq!(
        connector.targets(),
        [
            TargetAddr::Domain("no-such-host.invalid".into(), 443),
            TargetAddr::Ip("[2001:db8::7]:8443".parse().unwrap()),
            TargetAddr::Ip("10.1.2.3:80".parse().unwrap()),
        ]
    );
}

#[tokio::test]
async fn connect_errors_map_to_reply_codes() {
    let expected = [
        (ConnectErrorKind::Refused, 0x05),
        (ConnectErrorKind::Unreachable, 0x04),
        (ConnectErrorKind::NotAllowed, 0x02),
        (ConnectErrorKind::TimedOut, 0x06),
        (ConnectErrorKind::Busy, 0x01),
        (ConnectErrorKind::Unavailable, 0x01),
        (ConnectErrorKind::Other, 0x01),
    ];
    assert_eq!(expected.len(), ALL_KINDS.len());
    for (kind, code) in expected {
        let proxy = start(config(), FailConnector::new(kind)).await;
        let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
        s.write_all(&[5, 1, 0, 5, 1, 0, 1, 192, 0, 2, 1, 0, 80])
            .await
            .unwrap();
        assert_eq!(
            read_all(&mut s, CLOSE_WITHIN).await,
            [5, 0, 5, code, 0, 1, 0, 0, 0, 0, 0, 0],
            "{kind:?}"
        );
    }
}

fn auth_config() -> ProxyConfig {
    ProxyConfig {
        auth: Some(Credentials::new("user", "s3cret")),
        ..config()
    }
}

#[tokio::test]
async fn auth_required_refuses_no_auth_clients() {
    let connector = DirectConnector::new();
    let proxy = start(auth_config(), connector.clone()).await;
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    s.write_all(&[5, 1, 0]).await.unwrap();
    assert_eq!(read_all(&mut s, CLOSE_WITHIN).await, [5, 0xFF]);
    assert!(connector.requests().is_empty());
}

#[tokio::test]
async fn auth_with_right_and_wrong_credentials() {
    let echo = echo_server().await;
    let connector = DirectConnector::new();
    let proxy = start(auth_config(), connector.clone()).await;
    let mut request = vec![5, 1, 0];
    TargetAddr::Ip(echo.addr).encode(&mut request);

    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    s.write_all(&[5, 2, 0, 2]).await.unwrap();
    assert_eq!(read_n(&mut s, 2).await, [5, 2]);
    s.write_all(b"\x01\x04user\x06s3cret").await.unwrap();
    assert_eq!(read_n(&mut s, 2).await, [1, 0]);
    s.write_all(&request).await.unwrap();
    assert_eq!(read_n(&mut s, 10).await[1], 0);
    s.write_all(b"hi").await.unwrap();
    assert_eq!(read_n(&mut s, 2).await, b"hi");

    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    s.write_all(&[5, 1, 2]).await.unwrap();
    assert_eq!(read_n(&mut s, 2).await, [5, 2]);
    s.write_all(b"\x01\x04user\x06s3creT").await.unwrap();
    assert_eq!(read_all(&mut s, CLOSE_WITHIN).await, [1, 1]);
    assert_eq!(connector.requests().len(), 1);
}

#[tokio::test]
async fn connection_limit_refuses_extra_clients_cleanly() {
    let proxy = start(
        ProxyConfig {
            max_connections: 2,
            ..config()
        },
        DirectConnector::new(),
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
        s.write_all(&[5, 1, 0]).await.unwrap();
        assert_eq!(read_n(&mut s, 2).await, [5, 0]);
        held.push(s);
    }
    assert_eq!(proxy.active_connections(), 2);
    let mut extra = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let _ = extra.write_all(&[5, 1, 0]).await;
    assert_eq!(read_all(&mut extra, CLOSE_WITHIN).await, b"");
    drop(held);
    // Slots come back once the held connections are gone.
    let deadline = Instant::now() + CLOSE_WITHIN;
    while proxy.active_connections() > 0 {
        assert!(Instant::now() < deadline, "slots not released");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    s.write_all(&[5, 1, 0]).await.unwrap();
    assert_eq!(read_n(&mut s, 2).await, [5, 0]);
}

#[tokio::test]
async fn shutdown_closes_live_connections() {
    let echo = echo_server().await;
    let proxy = start(config(), DirectConnector::new()).await;
    let addr = proxy.local_addr();
    let mut s = socks_connect(addr, &TargetAddr::Ip(echo.addr)).await;
    assert_eq!(proxy.active_connections(), 1);
    proxy.shutdown().await;
    assert_eq!(read_all(&mut s, CLOSE_WITHIN).await, b"");
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn two_hundred_concurrent_connections() {
    let echo = echo_server().await;
    let proxy = start(config(), DirectConnector::new()).await;
    let addr = proxy.local_addr();
    let target = TargetAddr::Ip(echo.addr);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200usize {
        let target = target.clone();
        tasks.spawn(async move {
            let data: Vec<u8> = (0..32 * 1024 + i).map(|j| (i * 7 + j) as u8).collect();
            let s = socks_connect(addr, &target).await;
            let (mut r, mut w) = s.into_split();
            let send = data.clone();
            let writer = tokio::spawn(async move {
                w.write_all(&send).await.unwrap();
                w.shutdown().await.unwrap();
            });
            let mut back = Vec::new();
            r.read_to_end(&mut back).await.unwrap();
            writer.await.unwrap();
            assert_eq!(back, data, "connection {i}");
        });
    }
    let all = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
    });
    all.await.expect("200 connections did not finish in time");
}
