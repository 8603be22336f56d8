//! Helpers shared by the integration tests: node pairs on loopback, and
//! deterministic payloads checked by hash.

#![allow(dead_code)] // each test file uses its own subset

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UdpSocket;
use wg_userspace::{AllowedIp, Node, NodeConfig, PeerConfig, PrivateKey};

pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// Generous bound for anything that should take milliseconds.
pub const STEP: Duration = Duration::from_secs(10);

/// A relay-shaped pair: the client knows the server's endpoint and
/// initiates; the server learns the client's endpoint from the handshake.
pub struct Pair {
    pub server: Node,
    pub client: Node,
}

pub async fn pair() -> Pair {
    pair_with(|_| {}).await
}

/// A pair whose two configs are adjusted by `tweak` first.
pub async fn pair_with(tweak: impl Fn(&mut NodeConfig)) -> Pair {
    let server_key = PrivateKey::generate();
    let client_key = PrivateKey::generate();
    let (server_pk, client_pk) = (server_key.public_key(), client_key.public_key());
    let mut server_config = NodeConfig::new(server_key, SERVER_IP);
    let mut client_config = NodeConfig::new(client_key, CLIENT_IP);
    tweak(&mut server_config);
    tweak(&mut client_config);
    let server = Node::start(udp().await, server_config).expect("server node");
    let client = Node::start(udp().await, client_config).expect("client node");
    server
        .add_peer(PeerConfig::new(client_pk, vec![AllowedIp::host(CLIENT_IP)]))
        .expect("server adds client");
    client
        .add_peer(PeerConfig {
            public_key: server_pk,
            endpoint: Some(server.local_addr().unwrap()),
            allowed_ips: vec!["10.77.0.0/24".parse().unwrap()],
            persistent_keepalive: Some(25),
        })
        .expect("client adds server");
    tokio::time::timeout(STEP, client.handshake_completed(&server_pk))
        .await
        .expect("client handshake in time")
        .expect("client handshake");
    tokio::time::timeout(STEP, server.handshake_completed(&client_pk))
        .await
        .expect("server handshake in time")
        .expect("server handshake");
    Pair { server, client }
}

pub async fn udp() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.expect("bind UDP")
}

pub fn at(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Writes `data` in uneven chunks, then half-closes.
pub async fn write_all_and_close<W: AsyncWrite + Unpin>(mut w: W, data: &[u8]) -> W {
    let mut sent = 0;
    let mut chunk = 1000;
    while sent < data.len() {
        let end = (sent + chunk).min(data.len());
        w.write_all(&data[sent..end]).await.expect("write");
        sent = end;
        // 1000 B .. ~256 KiB: exercises small and large writes alike.
        chunk = if chunk > 256 * 1024 { 1000 } else { chunk * 3 };
    }
    w.shutdown().await.expect("shutdown");
    w
}

/// Reads to EOF, returning the byte count and SHA-256 (no buffering of
/// the whole stream, nothing large printed on failure).
pub async fn read_to_end_hash<R: AsyncRead + Unpin>(r: &mut R) -> (usize, [u8; 32]) {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        let n = r.read(&mut buf).await.expect("read");
        if n == 0 {
            return (total, hasher.finalize().into());
        }
        total += n;
        hasher.update(&buf[..n]);
    }
}

/// A UDP relay between two nodes that loses datagrams on purpose: after
/// the first `spare` datagrams of each direction, `burst` consecutive ones
/// out of every `period` are dropped (bursts, as a full queue drops them).
pub struct LossyRelay {
    pub addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl LossyRelay {
    pub async fn start(
        a: std::net::SocketAddr,
        b: std::net::SocketAddr,
        spare: u64,
        period: u64,
        burst: u64,
    ) -> LossyRelay {
        let socket = udp().await;
        let addr = socket.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            let (mut from_a, mut from_b) = (0u64, 0u64);
            loop {
                let Ok((n, src)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let (count, dst) = if src == a {
                    (&mut from_a, b)
                } else if src == b {
                    (&mut from_b, a)
                } else {
                    continue;
                };
                *count += 1;
                if *count > spare && (*count % period) >= period - burst {
                    continue;
                }
                let _ = socket.send_to(&buf[..n], dst).await;
            }
        });
        LossyRelay { addr, task }
    }
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}
