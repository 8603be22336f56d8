//! Two real nodes on loopback UDP: WireGuard handshakes, TCP over the
//! tunnel, backpressure, half-close, resets, limits and counters.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wg_userspace::{Error, Node, NodeConfig, PeerConfig, PrivateKey};

const MIB: usize = 1024 * 1024;

/// The Relay's direction: the server dials the client's listener. 32 MiB
/// each way at once, checked by hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_both_directions() {
    let Pair { server, client } = pair().await;
    let listener = client.listen(22).unwrap();
    let down = testkit::pseudo_random_bytes(1, 32 * MIB);
    let up = testkit::pseudo_random_bytes(2, 32 * MIB);
    let (down_hash, up_hash) = (sha256(&down), sha256(&up));

    let started = Instant::now();
    let accept = tokio::spawn(async move {
        let (stream, remote) = listener.accept().await.unwrap();
        assert_eq!(*remote.ip(), SERVER_IP);
        let (mut r, w) = tokio::io::split(stream);
        let writer = tokio::spawn(async move { write_all_and_close(w, &up).await });
        let got = read_to_end_hash(&mut r).await;
        drop(writer.await.unwrap());
        got
    });
    let stream = server.connect(at(CLIENT_IP, 22)).await.unwrap();
    assert_eq!(stream.peer_addr(), at(CLIENT_IP, 22));
    assert_eq!(*stream.local_addr().ip(), SERVER_IP);
    let (mut r, w) = tokio::io::split(stream);
    let writer = tokio::spawn(async move { write_all_and_close(w, &down).await });
    let (up_len, up_got) = read_to_end_hash(&mut r).await;
    drop(writer.await.unwrap());
    let (down_len, down_got) = accept.await.unwrap();
    let elapsed = started.elapsed();

    assert_eq!(down_len, 32 * MIB);
    assert_eq!(up_len, 32 * MIB);
    assert!(down_got == down_hash, "server→client bytes differ");
    assert!(up_got == up_hash, "client→server bytes differ");
    println!(
        "64 MiB (32 each way) in {elapsed:?}: {:.1} MiB/s total",
        64.0 / elapsed.as_secs_f64()
    );
}

/// One direction only, for a throughput figure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_one_direction() {
    let Pair { server, client } = pair().await;
    let listener = client.listen(80).unwrap();
    let data = testkit::pseudo_random_bytes(3, 32 * MIB);
    let hash = sha256(&data);
    let sink = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        read_to_end_hash(&mut stream).await
    });
    let started = Instant::now();
    let stream = server.connect(at(CLIENT_IP, 80)).await.unwrap();
    let _stream = write_all_and_close(stream, &data).await;
    let (len, got) = sink.await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(len, data.len());
    assert!(got == hash, "bytes differ");
    println!(
        "32 MiB one way in {elapsed:?}: {:.1} MiB/s",
        32.0 / elapsed.as_secs_f64()
    );
}

/// 20 connections at once through an echo server on the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_connections() {
    let Pair { server, client } = pair().await;
    let listener = client.listen(7).unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = tokio::io::split(stream);
                tokio::io::copy(&mut r, &mut w).await.unwrap();
                w.shutdown().await.unwrap();
            });
        }
    });
    let mut tasks = Vec::new();
    for i in 0..20u64 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let data = testkit::pseudo_random_bytes(100 + i, 512 * 1024);
            let stream = server.connect(at(CLIENT_IP, 7)).await.unwrap();
            let (mut r, w) = tokio::io::split(stream);
            let expected = sha256(&data);
            let writer = tokio::spawn(async move { write_all_and_close(w, &data).await });
            let (len, got) = read_to_end_hash(&mut r).await;
            drop(writer.await.unwrap());
            assert_eq!(len, 512 * 1024, "connection {i}");
            assert!(got == expected, "connection {i}: bytes differ");
        }));
    }
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("connection finished in time")
            .unwrap();
    }
}

/// Losses in bursts, and an echo server whose writes stall its reads (so
/// its receive window closes while ours has data in flight): every byte
/// arrives, quickly. Regression test for src/ack_rescue.rs: without it,
/// smoltcp dropped ACKs in a zero window and after go-back-N rewinds, and
/// this echo stalled for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_path_with_echo() {
    let server_key = PrivateKey::generate();
    let client_key = PrivateKey::generate();
    let (server_pk, client_pk) = (server_key.public_key(), client_key.public_key());
    let server = Node::start(udp().await, NodeConfig::new(server_key, SERVER_IP)).unwrap();
    let client = Node::start(udp().await, NodeConfig::new(client_key, CLIENT_IP)).unwrap();
    // 2 of every 100 datagrams lost each way (in pairs), after the handshake.
    let relay = LossyRelay::start(
        client.local_addr().unwrap(),
        server.local_addr().unwrap(),
        8,
        100,
        2,
    )
    .await;
    server
        .add_peer(PeerConfig::new(
            client_pk,
            vec![wg_userspace::AllowedIp::host(CLIENT_IP)],
        ))
        .unwrap();
    client
        .add_peer(PeerConfig {
            public_key: server_pk,
            endpoint: Some(relay.addr),
            allowed_ips: vec!["10.77.0.0/24".parse().unwrap()],
            persistent_keepalive: None,
        })
        .unwrap();
    tokio::time::timeout(STEP, client.handshake_completed(&server_pk))
        .await
        .unwrap()
        .unwrap();

    let listener = client.listen(7).unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (mut r, mut w) = tokio::io::split(stream);
        tokio::io::copy(&mut r, &mut w).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let data = testkit::pseudo_random_bytes(12, 4 * MIB);
    let expected = sha256(&data);
    let started = Instant::now();
    let stream = server.connect(at(CLIENT_IP, 7)).await.unwrap();
    let (mut r, w) = tokio::io::split(stream);
    let writer = tokio::spawn(async move { write_all_and_close(w, &data).await });
    // About a second with the workarounds of src/ack_rescue.rs; without
    // them smoltcp needs ~45 s, or stalls for good.
    let (len, got) = tokio::time::timeout(Duration::from_secs(30), read_to_end_hash(&mut r))
        .await
        .expect("the echo completes despite losses");
    drop(writer.await.unwrap());
    assert_eq!(len, 4 * MIB);
    assert!(got == expected, "bytes differ");
    // The server learned the relay as the client's endpoint.
    assert_eq!(
        server.peer_stats(&client_pk).unwrap().endpoint,
        Some(relay.addr)
    );
    println!(
        "4 MiB echoed over a 2%-loss path in {:?}",
        started.elapsed()
    );
}

/// A reader that stops reading stalls only its own connection, which then
/// resumes with every byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_reader_does_not_block_others() {
    let Pair { server, client } = pair().await;
    let listener = client.listen(9).unwrap();
    let paused_data = testkit::pseudo_random_bytes(7, 4 * MIB);
    let other_data = testkit::pseudo_random_bytes(8, 4 * MIB);
    let (paused_hash, other_hash) = (sha256(&paused_data), sha256(&other_data));

    let paused = server.connect(at(CLIENT_IP, 9)).await.unwrap();
    let (mut paused_in, _) = listener.accept().await.unwrap();
    // 4 MiB cannot fit in the two 1 MiB socket buffers: the writer must block.
    let paused_writer =
        tokio::spawn(async move { write_all_and_close(paused, &paused_data).await });

    let other = server.connect(at(CLIENT_IP, 9)).await.unwrap();
    let (mut other_in, _) = listener.accept().await.unwrap();
    let other_writer = tokio::spawn(async move { write_all_and_close(other, &other_data).await });
    let (len, got) = tokio::time::timeout(Duration::from_secs(60), read_to_end_hash(&mut other_in))
        .await
        .expect("the other stream flows while one reader is paused");
    assert_eq!(len, 4 * MIB);
    assert!(got == other_hash, "other stream bytes differ");
    drop(other_writer.await.unwrap());
    assert!(
        !paused_writer.is_finished(),
        "the paused stream's writer should be held back by the closed window"
    );

    let (len, got) =
        tokio::time::timeout(Duration::from_secs(60), read_to_end_hash(&mut paused_in))
            .await
            .expect("paused stream resumes");
    assert_eq!(len, 4 * MIB);
    assert!(got == paused_hash, "paused stream bytes differ");
    drop(paused_writer.await.unwrap());
}

/// Each side half-closes in turn and keeps using the other direction.
#[tokio::test]
async fn half_close_both_ways() {
    let Pair { server, client } = pair().await;
    let listener = client.listen(25).unwrap();
    let responder = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        stream.read_to_end(&mut request).await.unwrap();
        assert_eq!(request, b"request, then FIN");
        // Our receive side is finished; sending still works.
        stream
            .write_all(b"response after the peer's FIN")
            .await
            .unwrap();
        stream.shutdown().await.unwrap();
        let mut rest = [0u8; 1];
        assert_eq!(stream.read(&mut rest).await.unwrap(), 0, "EOF stays EOF");
    });
    let mut stream = server.connect(at(CLIENT_IP, 25)).await.unwrap();
    stream.write_all(b"request, then FIN").await.unwrap();
    stream.shutdown().await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    assert_eq!(response, b"response after the peer's FIN");
    responder.await.unwrap();
}

/// Dropping a stream without shutdown still delivers what was written, then FIN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_delivers_queued_bytes_then_eof() {
    let Pair { server, client } = pair().await;
    let listener = client.listen(26).unwrap();
    let data = testkit::pseudo_random_bytes(9, MIB);
    let hash = sha256(&data);
    let mut stream = server.connect(at(CLIENT_IP, 26)).await.unwrap();
    let (mut incoming, _) = listener.accept().await.unwrap();
    stream.write_all(&data).await.unwrap();
    drop(stream);
    let (len, got) = read_to_end_hash(&mut incoming).await;
    assert_eq!(len, MIB);
    assert!(got == hash, "bytes differ");
}

/// Dropping a stream with unread data resets the connection, as close() does.
#[tokio::test]
async fn drop_with_unread_data_resets() {
    let Pair { server, client } = pair().await;
    let listener = client.listen(27).unwrap();
    let mut stream = server.connect(at(CLIENT_IP, 27)).await.unwrap();
    let (mut incoming, _) = listener.accept().await.unwrap();
    stream.write_all(b"two bytes and more").await.unwrap();
    let mut first = [0u8; 2];
    incoming.read_exact(&mut first).await.unwrap();
    drop(incoming);
    let mut buf = [0u8; 16];
    let err = tokio::time::timeout(STEP, stream.read(&mut buf))
        .await
        .expect("reset arrives")
        .expect_err("reading a reset connection fails");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
}

/// A port nobody listens on answers with RST: a quick, clear error.
#[tokio::test]
async fn connect_refused_and_unroutable() {
    let Pair {
        server,
        client: _client,
    } = pair().await;
    let started = Instant::now();
    let err = server.connect(at(CLIENT_IP, 9999)).await.unwrap_err();
    assert!(
        matches!(err, Error::ConnectionRefused(a) if a == at(CLIENT_IP, 9999)),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refusal took {:?}",
        started.elapsed()
    );
    let io: std::io::Error = err.into();
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);

    let nowhere = std::net::Ipv4Addr::new(192, 0, 2, 1);
    let err = server.connect(at(nowhere, 80)).await.unwrap_err();
    assert!(matches!(err, Error::NoRoute(ip) if ip == nowhere), "{err}");
}

/// Handshakes from keys the node does not know are dropped unanswered.
#[tokio::test]
async fn unknown_peer_is_dropped() {
    let Pair {
        server,
        client: _client,
    } = pair().await;
    let _listener = server.listen(22).unwrap();
    let mut drops = server.drops();
    let before = server.stats().dropped_unknown_peer;

    let stranger_key = PrivateKey::generate();
    let stranger_pk = stranger_key.public_key();
    let mut config = NodeConfig::new(stranger_key, std::net::Ipv4Addr::new(10, 77, 0, 66));
    config.connect_timeout = Duration::from_millis(500);
    let stranger = Node::start(udp().await, config).unwrap();
    stranger
        .add_peer(PeerConfig {
            public_key: server.public_key(),
            endpoint: Some(server.local_addr().unwrap()),
            allowed_ips: vec!["10.77.0.0/24".parse().unwrap()],
            persistent_keepalive: None,
        })
        .unwrap();
    tokio::time::timeout(
        STEP,
        drops.wait_for(|_| server.stats().dropped_unknown_peer > before),
    )
    .await
    .expect("the stranger's initiation reaches the server")
    .unwrap();
    assert!(server.peer_stats(&stranger_pk).is_none());
    let err = stranger.connect(at(SERVER_IP, 22)).await.unwrap_err();
    assert!(matches!(err, Error::ConnectTimeout(_)), "{err}");
    let seen = stranger.peer_stats(&server.public_key()).unwrap();
    assert_eq!(seen.rx_bytes, 0, "the server never answered");
    assert_eq!(seen.last_handshake, None);
}

/// Counters, the handshake record, and the endpoint learned from packets.
#[tokio::test]
async fn stats_count_bytes_and_handshakes() {
    let Pair { server, client } = pair().await;
    let client_pk = client.public_key();
    let server_pk = server.public_key();
    let at_start = server.peer_stats(&client_pk).unwrap();
    assert!(at_start.last_handshake.is_some());
    // The server was never told where the client is: it learned it.
    assert_eq!(at_start.endpoint, Some(client.local_addr().unwrap()));
    assert_eq!(*server.handshakes(&client_pk).unwrap().borrow(), 1);

    let listener = client.listen(30).unwrap();
    let data = testkit::pseudo_random_bytes(11, MIB);
    let sink = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        read_to_end_hash(&mut stream).await.0
    });
    let stream = server.connect(at(CLIENT_IP, 30)).await.unwrap();
    let _stream = write_all_and_close(stream, &data).await;
    assert_eq!(sink.await.unwrap(), MIB);

    let sent = server.peer_stats(&client_pk).unwrap();
    let received = client.peer_stats(&server_pk).unwrap();
    assert!(
        sent.tx_bytes >= (MIB as u64),
        "server sent {} wire bytes",
        sent.tx_bytes
    );
    assert!(
        received.rx_bytes >= (MIB as u64),
        "client received {} wire bytes",
        received.rx_bytes
    );
    assert!(
        received.rx_bytes <= sent.tx_bytes,
        "nothing is received that was not sent"
    );
    let node = server.stats();
    assert!(node.tx_datagrams > 700 && node.rx_datagrams > 0, "{node:?}");
    assert_eq!(node.dropped_invalid, 0, "{node:?}");

    assert!(server.remove_peer(&client_pk));
    assert!(server.peer_stats(&client_pk).is_none());
    assert!(!server.remove_peer(&client_pk));
    assert!(matches!(
        server.handshake_completed(&client_pk).await,
        Err(Error::UnknownPeer)
    ));
}

/// Configured limits are enforced with typed errors.
#[tokio::test]
async fn limits_and_misuse() {
    let Pair { server, client } = pair_with(|c| {
        c.max_connections = 3;
        c.listen_spares = 1;
    })
    .await;
    let listener = client.listen(40).unwrap();
    assert!(matches!(client.listen(40), Err(Error::PortInUse(40))));
    assert!(matches!(client.listen(0), Err(Error::InvalidPort)));
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(server.connect(at(CLIENT_IP, 40)).await.unwrap());
    }
    let err = server.connect(at(CLIENT_IP, 40)).await.unwrap_err();
    assert!(matches!(err, Error::TooManyConnections(3)), "{err}");
    drop(listener);
    let peer = PeerConfig::new(client.public_key(), vec![]);
    assert!(matches!(server.add_peer(peer), Err(Error::PeerExists(_))));
}

/// Shutdown fails every stream and listener of the node.
#[tokio::test]
async fn shutdown_ends_streams() {
    let Pair { server, client } = pair().await;
    let listener = client.listen(50).unwrap();
    let mut stream = server.connect(at(CLIENT_IP, 50)).await.unwrap();
    let (mut incoming, _) = listener.accept().await.unwrap();
    client.shutdown().await;
    let mut buf = [0u8; 8];
    assert!(incoming.read(&mut buf).await.is_err());
    assert!(matches!(listener.accept().await, Err(Error::NodeClosed)));
    assert!(matches!(client.listen(51), Err(Error::NodeClosed)));
    // The server side hears the reset sent on the way out.
    let err = tokio::time::timeout(STEP, stream.read(&mut buf))
        .await
        .expect("reset arrives")
        .expect_err("reset");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
}
