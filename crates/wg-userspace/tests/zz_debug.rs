mod common;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use common::*;
use testkit::wireguard::{WgPeer, WireguardGo};
use tokio::io::AsyncWriteExt;
use tokio::net::UdpSocket;
use wg_userspace::{AllowedIp, Node, NodeConfig, PeerConfig, PrivateKey, PublicKey};
const MIB: usize = 1024 * 1024;
static ON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
struct L;
impl log::Log for L {
    fn enabled(&self, _: &log::Metadata) -> bool { true }
    fn log(&self, r: &log::Record) { if ON.load(std::sync::atomic::Ordering::Relaxed) { eprintln!("{:?} {} {}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() % 100000, r.level(), r.args()); } }
    fn flush(&self) {}
}
static LOGGER: L = L;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_server() {
    log::set_logger(&LOGGER).unwrap(); log::set_max_level(log::LevelFilter::Trace);
    let client_key = PrivateKey::generate();
    let our_ip = Ipv4Addr::new(10, 79, 0, 1);
    let client_ip = Ipv4Addr::new(10, 79, 0, 2);
    let wg = WireguardGo::start(&client_key.to_base64(), "10.79.0.2/24").unwrap();
    let client_pk = PublicKey::from_base64(wg.public_key()).unwrap();
    let our_key = PrivateKey::generate();
    let our_pk = our_key.public_key();
    let node = Node::start(UdpSocket::bind("0.0.0.0:0").await.unwrap(), NodeConfig::new(our_key, our_ip)).unwrap();
    node.add_peer(PeerConfig::new(client_pk, vec![AllowedIp::host(client_ip)])).unwrap();
    let our_port = node.local_addr().unwrap().port();
    wg.set_peer(&WgPeer { public_key: our_pk.to_base64(), endpoint: Some(SocketAddr::from((wg.host_addr(), our_port))), allowed_ips: vec![format!("{our_ip}/32")], persistent_keepalive: Some(1) }).unwrap();
    node.handshake_completed(&client_pk).await.unwrap();
    let listener = node.listen(7000).unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tokio::io::split(stream);
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    for round in 0..15 {
        let target = SocketAddr::from((our_ip, 7000));
        let stream = tokio::task::block_in_place(|| wg.tcp_connect(target, STEP)).unwrap();
        let data = testkit::pseudo_random_bytes(round, 4 * MIB);
        let (mut r, w) = tokio::io::split(stream);
        let t = Instant::now();
        let writer = tokio::spawn(async move { drop(write_all_and_close(w, &data).await) });
        match tokio::time::timeout(Duration::from_secs(8), read_to_end_hash(&mut r)).await {
            Ok((n, _)) => println!("round {round}: {n} in {:?}", t.elapsed()),
            Err(_) => {
                println!("STALL round {round}");
                ON.store(true, std::sync::atomic::Ordering::Relaxed);
                println!("node {:?}\npeer {:?}", node.stats(), node.peer_stats(&client_pk));
                println!("{}", std::process::Command::new("ip").args(["netns","exec",wg.namespace(),"ss","-tinoe"]).output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap());
                println!("wg {:?}", wg.transfer(&our_pk.to_base64()));
                println!("NS SNMP {}", std::process::Command::new("ip").args(["netns","exec",wg.namespace(),"grep","Udp:","/proc/net/snmp"]).output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap());
                println!("ROOT SNMP {}", std::fs::read_to_string("/proc/net/snmp").unwrap().lines().filter(|l| l.starts_with("Udp:")).collect::<Vec<_>>().join("\n"));
                println!("{}", node.debug_sockets());
                tokio::time::sleep(Duration::from_secs(3)).await;
                println!("node {:?}\npeer {:?}", node.stats(), node.peer_stats(&client_pk));
                println!("{}", std::process::Command::new("ip").args(["netns","exec",wg.namespace(),"ss","-tinoe"]).output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap());
                println!("{}", node.debug_sockets());
                panic!("stall");
            }
        }
        writer.abort();
    }
}
