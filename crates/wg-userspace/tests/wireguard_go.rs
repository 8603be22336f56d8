//! Interoperability with a real WireGuard peer: Debian's wireguard-go in a
//! network namespace, with the kernel's TCP behind it. Skipped (with a
//! message) where namespaces or wireguard-go are unavailable.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;
use testkit::wireguard::{WgPeer, WireguardGo};
use tokio::io::AsyncWriteExt;
use tokio::net::UdpSocket;
use wg_userspace::{AllowedIp, Node, NodeConfig, PeerConfig, PrivateKey, PublicKey};

const MIB: usize = 1024 * 1024;

fn skip() -> bool {
    match WireguardGo::unavailable() {
        Some(reason) => {
            println!("skipping the wireguard-go test: {reason}");
            true
        }
        None => false,
    }
}

/// Echoes every connection on `listener` (kernel TCP inside the namespace).
fn spawn_echo(listener: tokio::net::TcpListener) {
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
}

/// Echoes every connection accepted by a node's listener.
fn spawn_node_echo(listener: wg_userspace::WgListener) {
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tokio::io::split(stream);
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
}

/// Sends `data` through `stream` to an echo server and checks every byte
/// comes back.
async fn echo_round_trip<S>(stream: S, data: Vec<u8>, what: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let expected = sha256(&data);
    let len = data.len();
    let (mut r, w) = tokio::io::split(stream);
    let started = Instant::now();
    let writer = tokio::spawn(async move { drop(write_all_and_close(w, &data).await) });
    let (got_len, got) = tokio::time::timeout(Duration::from_secs(60), read_to_end_hash(&mut r))
        .await
        .unwrap_or_else(|_| panic!("{what}: echo finished in time"));
    writer.await.unwrap();
    assert_eq!(got_len, len, "{what}: length");
    assert!(got == expected, "{what}: bytes differ");
    println!(
        "{what}: {} MiB echoed in {:?}",
        len / MIB,
        started.elapsed()
    );
}

/// Our node as the Relay CLIENT: wireguard-go plays the relay, and learns
/// our endpoint from our handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_as_client_against_wireguard_go() {
    if skip() {
        return;
    }
    let relay_key = PrivateKey::generate();
    let relay_ip = Ipv4Addr::new(10, 78, 0, 1);
    let our_ip = Ipv4Addr::new(10, 78, 0, 2);
    let wg = WireguardGo::start(&relay_key.to_base64(), "10.78.0.1/24").unwrap();
    // `wg pubkey` and our derivation agree.
    assert_eq!(wg.public_key(), relay_key.public_key().to_base64());

    let our_key = PrivateKey::generate();
    let our_pk = our_key.public_key();
    wg.set_peer(&WgPeer {
        public_key: our_pk.to_base64(),
        endpoint: None,
        allowed_ips: vec![format!("{our_ip}/32")],
        persistent_keepalive: None,
    })
    .unwrap();

    let node = Node::start(
        UdpSocket::bind("0.0.0.0:0").await.unwrap(),
        NodeConfig::new(our_key, our_ip),
    )
    .unwrap();
    let relay_pk = PublicKey::from_base64(wg.public_key()).unwrap();
    node.add_peer(PeerConfig {
        public_key: relay_pk,
        endpoint: Some(wg.endpoint()),
        allowed_ips: vec!["10.78.0.0/24".parse().unwrap()],
        persistent_keepalive: Some(25),
    })
    .unwrap();
    tokio::time::timeout(STEP, node.handshake_completed(&relay_pk))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "handshake with wireguard-go in time; its log:\n{}",
                wg.log()
            )
        })
        .unwrap();
    assert!(wg.latest_handshake(&our_pk.to_base64()).unwrap().is_some());

    // Our node dials a kernel TCP server behind wireguard-go.
    spawn_echo(wg.tcp_listener(SocketAddr::from((relay_ip, 5000))).unwrap());
    let stream = node.connect(at(relay_ip, 5000)).await.unwrap();
    echo_round_trip(
        stream,
        testkit::pseudo_random_bytes(21, 4 * MIB),
        "node → namespace",
    )
    .await;

    // A kernel TCP client behind wireguard-go reaches our listener.
    spawn_node_echo(node.listen(6000).unwrap());
    let target = SocketAddr::from((our_ip, 6000));
    let stream = tokio::task::block_in_place(|| wg.tcp_connect(target, STEP)).unwrap();
    echo_round_trip(
        stream,
        testkit::pseudo_random_bytes(22, 4 * MIB),
        "namespace → node",
    )
    .await;

    // Both ends count the traffic.
    let stats = node.peer_stats(&relay_pk).unwrap();
    let (wg_rx, wg_tx) = wg.transfer(&our_pk.to_base64()).unwrap();
    assert!(stats.tx_bytes >= (8 * MIB) as u64, "{stats:?}");
    assert!(
        wg_rx >= (8 * MIB) as u64 && wg_tx >= (8 * MIB) as u64,
        "{wg_rx} {wg_tx}"
    );
}

/// Our node as the Relay SERVER: wireguard-go is a client peer that knows
/// our endpoint and initiates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_as_server_against_wireguard_go() {
    if skip() {
        return;
    }
    let client_key = PrivateKey::generate();
    let our_ip = Ipv4Addr::new(10, 79, 0, 1);
    let client_ip = Ipv4Addr::new(10, 79, 0, 2);
    let wg = WireguardGo::start(&client_key.to_base64(), "10.79.0.2/24").unwrap();
    let client_pk = PublicKey::from_base64(wg.public_key()).unwrap();

    let our_key = PrivateKey::generate();
    let our_pk = our_key.public_key();
    let node = Node::start(
        UdpSocket::bind("0.0.0.0:0").await.unwrap(),
        NodeConfig::new(our_key, our_ip),
    )
    .unwrap();
    node.add_peer(PeerConfig::new(client_pk, vec![AllowedIp::host(client_ip)]))
        .unwrap();
    let our_port = node.local_addr().unwrap().port();
    wg.set_peer(&WgPeer {
        public_key: our_pk.to_base64(),
        endpoint: Some(SocketAddr::from((wg.host_addr(), our_port))),
        allowed_ips: vec![format!("{our_ip}/32")],
        // Makes wireguard-go handshake at once, as a Relay client would.
        persistent_keepalive: Some(1),
    })
    .unwrap();
    tokio::time::timeout(STEP, node.handshake_completed(&client_pk))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "handshake from wireguard-go in time; its log:\n{}",
                wg.log()
            )
        })
        .unwrap();
    let stats = node.peer_stats(&client_pk).unwrap();
    assert!(stats.last_handshake.is_some());
    assert_eq!(
        stats.endpoint.map(|e| e.ip()),
        Some(wg.endpoint().ip()),
        "endpoint learned from the client's packets"
    );

    // The relay's direction: we dial the client's service.
    spawn_echo(wg.tcp_listener(SocketAddr::from((client_ip, 22))).unwrap());
    let stream = node.connect(at(client_ip, 22)).await.unwrap();
    echo_round_trip(
        stream,
        testkit::pseudo_random_bytes(31, 4 * MIB),
        "node → client",
    )
    .await;

    // And the client can reach a listener of ours.
    spawn_node_echo(node.listen(7000).unwrap());
    let target = SocketAddr::from((our_ip, 7000));
    let stream = tokio::task::block_in_place(|| wg.tcp_connect(target, STEP)).unwrap();
    echo_round_trip(
        stream,
        testkit::pseudo_random_bytes(32, 4 * MIB),
        "client → node",
    )
    .await;

    // A refused port behind wireguard-go is reported as such.
    let err = node.connect(at(client_ip, 9)).await.unwrap_err();
    assert!(
        matches!(err, wg_userspace::Error::ConnectionRefused(_)),
        "{err}"
    );
}
