//! The HT server over real sockets, driven by the small wire client in
//! `util`: what strangers see, how broken input ends only its connection,
//! and data through to echo targets, with a resume in the middle.

mod util;

use std::time::Duration;

use proto_ht::Key;
use testkit::{EchoServer, UdpEchoServer, pseudo_random_bytes};
use util::{Tunnel, open, open_raw, open_with, server, session_id};

fn allow_private(c: &mut ht_server::Config) {
    c.allow_private_targets = true;
}

/// A response without its `Date` line (the only part that may differ).
fn without_date(response: &[u8]) -> String {
    String::from_utf8_lossy(response)
        .split("\r\n")
        .filter(|line| !line.starts_with("Date: "))
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// Strangers see the decoy website (answered as nginx answers); a tunnel
/// attempt that fails — a wrong key, a garbage first chunk, no cookie —
/// gets exactly the 404 of a missing file, Date aside.
#[tokio::test]
async fn strangers_see_the_decoy_and_failed_tunnels_a_plain_404() {
    let srv = server(|_| {}).await;
    let addr = srv.local_addr();
    let (status, missing) = open_raw(
        addr,
        b"GET /nothing-here HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .refused();
    assert_eq!(status, 404);
    assert!(
        without_date(&missing).contains("Server: nginx"),
        "{}",
        without_date(&missing)
    );
    let wrong = Key::from_hex(&"ee".repeat(32)).unwrap();
    let (status, page) = open_with(addr, &wrong, &session_id(), b"qp 0")
        .await
        .refused();
    assert_eq!((status, without_date(&page)), (404, without_date(&missing)));
    let sid = session_id();
    let failed_tunnels = [
        format!(
            "POST /ht/create.php HTTP/1.1\r\nHost: x\r\nCookie: PHPSESSID={sid}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n\x01\x02\x03\x04\x05\r\n"
        ),
        "POST /ht/create.php HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n"
            .to_owned(),
    ];
    for request in failed_tunnels {
        let (status, page) = open_raw(addr, request.as_bytes()).await.refused();
        assert_eq!(
            (status, without_date(&page)),
            (404, without_date(&missing)),
            "{request:?}"
        );
    }
    // The site itself, and nginx's 400 for what is not HTTP.
    let (status, page) = open_raw(
        addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .refused();
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&page).contains("under construction"));
    let (status, _) = open_raw(addr, b"not http at all\r\n\r\n").await.refused();
    assert_eq!(status, 400);
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_garbage_chunk_ends_its_connection_and_the_session_goes_on() {
    let srv = server(|_| {}).await;
    let sid = session_id();
    let mut a = open(srv.local_addr(), &sid, b"qp 0").await.tunnel();
    assert_eq!(
        a.recv_text().await,
        "!p",
        "the probe: stream 0 does not exist"
    );
    let mut b = open(srv.local_addr(), &sid, b"qp 0").await.tunnel();
    assert_eq!(b.recv_text().await, "!p");
    a.send(b"\xff\xfe\xfd not a query").await;
    assert_eq!(a.recv().await, None, "the broken connection ends");
    assert_eq!(
        b.ask("qz 0").await,
        "!z",
        "the other connection still works"
    );
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_oversized_chunk_ends_the_connection() {
    let srv = server(|c| c.limits.max_chunk = 1024).await;
    let mut t = open(srv.local_addr(), &session_id(), b"qp 0")
        .await
        .tunnel();
    t.recv().await;
    // Only the size line: the server judges it before any data.
    t.send_raw(b"401\r\n").await;
    assert_eq!(t.recv().await, None);
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_streams_and_refused_targets_are_failures() {
    let echo = EchoServer::start().await;
    let srv = server(|_| {}).await;
    let mut t = open(srv.local_addr(), &session_id(), b"da 5 0")
        .await
        .tunnel();
    assert_eq!(t.recv_text().await, "!a");
    assert_eq!(t.ask("ub 7").await, "!b");
    // Loopback is private: refused without --allow-private-targets.
    let target = echo.addr();
    let answer = t
        .ask(&format!("cc {} tcp {}", target.ip(), target.port()))
        .await;
    assert_eq!(answer, "!c");
    assert_eq!(
        t.ask(&format!("cd localhost tcp {}", target.port())).await,
        "!d"
    );
    srv.shutdown().await.unwrap();
}

/// Our choice (docs/ht.md): an acknowledgement beyond the packets sent ends
/// the connection, since `!{q}` on a download would read as "target closed".
#[tokio::test]
async fn an_ack_beyond_what_was_sent_ends_the_connection() {
    let echo = EchoServer::start().await;
    let srv = server(allow_private).await;
    let mut t = open(srv.local_addr(), &session_id(), b"qp 0")
        .await
        .tunnel();
    t.recv().await;
    let sid = t.connect(echo.addr(), "tcp").await;
    assert_eq!(t.ask(&format!("uu {sid}")).await, ".u 0");
    assert_eq!(t.ask("Uu ping").await, ".u 1");
    assert_eq!(t.ask(&format!("dd {sid} 0")).await, ".d ping");
    t.send(b".d 9").await;
    assert_eq!(t.recv().await, None);
    srv.shutdown().await.unwrap();
}

/// Uploads `data` in `piece`-byte packets on batch `u`, then half-closes.
async fn upload(t: &mut Tunnel, sid: &str, data: &[u8], piece: usize) {
    assert_eq!(t.ask(&format!("uu {sid}")).await, ".u 0");
    let mut next = 0u64;
    for part in data.chunks(piece) {
        let mut q = b"Uu ".to_vec();
        q.extend_from_slice(part);
        t.send(&q).await;
        next += 1;
        assert_eq!(t.recv_text().await, format!(".u {next:x}"));
    }
    assert_eq!(t.ask("Uu ").await, format!(".u {:x}", next + 1));
}

/// Reads a download batch `q` until `!{q}`, acknowledging every packet;
/// stops early (without acknowledging the last) after `stop_after`.
async fn download(
    t: &mut Tunnel,
    q: &str,
    from: u64,
    stop_after: Option<usize>,
) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut next = from;
    let mut packets = 0;
    loop {
        let answer = t.recv().await.expect("an answer");
        if answer == format!("!{q}").as_bytes() {
            return (got, true);
        }
        let prefix = format!(".{q} ");
        assert!(answer.starts_with(prefix.as_bytes()), "{answer:?}");
        packets += 1;
        if stop_after == Some(packets) {
            return (got, false);
        }
        got.extend_from_slice(&answer[prefix.len()..]);
        next += 1;
        t.send(format!(".{q} {next:x}").as_bytes()).await;
    }
}

#[tokio::test]
async fn tcp_through_to_an_echo_server() {
    let echo = EchoServer::start().await;
    let srv = server(allow_private).await;
    let mut t = open(srv.local_addr(), &session_id(), b"qp 0")
        .await
        .tunnel();
    t.recv().await;
    let sid = t.connect(echo.addr(), "tcp").await;
    assert_eq!(sid, "1", "stream ids count from 1");
    let data = pseudo_random_bytes(7, 300 * 1024);
    upload(&mut t, &sid, &data, 16 * 1024).await;
    t.send(format!("dd {sid} 0 8").as_bytes()).await;
    let (got, ended) = download(&mut t, "d", 0, None).await;
    assert!(ended, "the target's end follows its last byte");
    assert_eq!(got, data);
    assert_eq!(t.ask(&format!("qx {sid}")).await, ".x");
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_download_cut_mid_way_resumes_on_another_connection() {
    let echo = EchoServer::start().await;
    let srv = server(allow_private).await;
    let session = session_id();
    let mut a = open(srv.local_addr(), &session, b"qp 0").await.tunnel();
    a.recv().await;
    let sid = a.connect(echo.addr(), "tcp").await;
    let data = pseudo_random_bytes(9, 256 * 1024);
    upload(&mut a, &sid, &data, 8 * 1024).await;
    a.send(format!("dd {sid} 0 4").as_bytes()).await;
    // Three packets arrive and are acknowledged; the fourth arrives but the
    // connection breaks before its acknowledgement.
    let (first, ended) = download(&mut a, "d", 0, Some(4)).await;
    assert!(!ended);
    drop(a);
    let acked = 3;
    let mut b = open(
        srv.local_addr(),
        &session,
        format!("dr {sid} {acked:x} 4").as_bytes(),
    )
    .await
    .tunnel();
    let (rest, ended) = download(&mut b, "r", acked, None).await;
    assert!(ended);
    assert_eq!([first, rest].concat(), data, "nothing lost, nothing twice");
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn dns_at_the_server() {
    let srv = server(|_| {}).await;
    let mut t = open(srv.local_addr(), &session_id(), b"n1 localhost A")
        .await
        .tunnel();
    let answer = t.recv_text().await;
    assert_eq!(answer, ".1 127.0.0.1");
    assert_eq!(
        t.ask("n2 127.0.0.1 AAAA").await,
        ".2",
        "no record of that type"
    );
    assert_eq!(t.ask("n3 name.invalid A").await, "!3");
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn udp_through_to_an_echo_server() {
    let echo = UdpEchoServer::start().await;
    let srv = server(allow_private).await;
    let mut t = open(srv.local_addr(), &session_id(), b"qp 0")
        .await
        .tunnel();
    t.recv().await;
    let sid = t.connect(echo.addr(), "udp").await;
    t.send(format!("dd {sid} 0 4").as_bytes()).await;
    assert_eq!(t.ask(&format!("uu {sid}")).await, ".u 0");
    t.send(b"Uu first datagram").await;
    t.send(b"Uu second").await;
    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.push(t.recv_text().await);
    }
    answers.sort();
    assert_eq!(answers, [".d first datagram", ".d second", ".u 1", ".u 2"]);
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_reclaimed_session_is_answered_403() {
    let idle = Duration::from_millis(300);
    let srv = server(|c| c.limits.session_idle = idle).await;
    let sid = session_id();
    let mut t = open(srv.local_addr(), &sid, b"qp 0").await.tunnel();
    t.recv().await;
    drop(t);
    // The idle time itself is what the test waits for: no event to await.
    tokio::time::sleep(idle * 3).await;
    let (status, _) = open(srv.local_addr(), &sid, b"qp 0").await.refused();
    assert_eq!(status, 403);
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn too_many_sessions_are_answered_503() {
    let srv = server(|c| c.limits.max_sessions = 1).await;
    let mut first = open(srv.local_addr(), &session_id(), b"qp 0")
        .await
        .tunnel();
    first.recv().await;
    let (status, _) = open(srv.local_addr(), &session_id(), b"qp 0")
        .await
        .refused();
    assert_eq!(status, 503);
    srv.shutdown().await.unwrap();
}

/// Strangers wait in the pending stage, where a full stage closes the
/// oldest; a tunnel connection, once its first chunk proved the key, is
/// never evicted, and tunnel connections past their bound get 503.
#[tokio::test]
async fn strangers_are_evicted_for_newcomers_and_tunnels_are_bounded() {
    let srv = server(|c| {
        c.max_pending = 2;
        c.max_connections = 1;
    })
    .await;
    let addr = srv.local_addr();
    let mut idle = Vec::new();
    for _ in 0..2 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let mut tunnel = open(addr, &session_id(), b"qp 0").await.tunnel();
    tunnel.recv().await.expect("the tunnel is served");
    let mut byte = [0u8; 1];
    let first = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut idle[0], &mut byte),
    )
    .await;
    assert!(
        matches!(first, Ok(Ok(0) | Err(_))),
        "the oldest stranger is closed"
    );
    let (status, _) = open(addr, &session_id(), b"qp 0").await.refused();
    assert_eq!(status, 503, "no tunnel place left");
    for _ in 0..3 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    assert_eq!(
        tunnel.ask("qp 0").await,
        "!p",
        "the tunnel is never evicted"
    );
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_ends_tunnels_with_the_last_chunk() {
    let srv = server(|_| {}).await;
    let mut t = open(srv.local_addr(), &session_id(), b"qp 0")
        .await
        .tunnel();
    t.recv().await;
    srv.shutdown().await.unwrap();
    assert_eq!(t.recv().await, None);
}

#[tokio::test]
async fn metrics_count_queries_and_refusals() {
    let srv = server(|c| c.metrics_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let mut t = open(srv.local_addr(), &session_id(), b"n1 localhost A")
        .await
        .tunnel();
    t.recv().await;
    let wrong = Key::from_hex(&"ee".repeat(32)).unwrap();
    open_with(srv.local_addr(), &wrong, &session_id(), b"qp 0")
        .await
        .refused();
    let mut http = tokio::net::TcpStream::connect(srv.metrics_addr().unwrap())
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    http.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut page = String::new();
    http.read_to_string(&mut page).await.unwrap();
    assert!(
        page.contains("ht_server_queries_total{verb=\"dns\",result=\"ok\"}"),
        "{page}"
    );
    assert!(
        page.contains("ht_server_refused_total{status=\"404\"}"),
        "{page}"
    );
    assert!(page.contains("ht_server_dns_queries_total"), "{page}");
    srv.shutdown().await.unwrap();
}
