//! The relay-server binary's data plane: its public forwards and its
//! WireGuard endpoint.
//!
//! The endpoint meets another implementation: Debian's wireguard-go plays
//! the Relay client, in a network namespace with the kernel's TCP behind
//! it. The test speaks the control channel itself
//! (tests/support/control.rs), configures wireguard-go from the
//! `register_response` as a client would, and reaches the namespace's
//! service through the relay's public forward. Skipped, with a message,
//! where namespaces or wireguard-go are unavailable (not root).

#[path = "support/control.rs"]
mod control;
#[path = "support/relay_bin.rs"]
mod relay_bin;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use control::{Control, WAIT, wireguard_key};
use relay_bin::{RelayBin, sample, scrape};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use testkit::wireguard::{WgPeer, WireguardGo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BANNER: &[u8] = b"SSH-2.0-OpenSSH_9.2 behind-wireguard-go\r\n";
/// The port the "client" shares (any: it lives in the namespace).
const SHARED_PORT: u16 = 2222;
const MIB: usize = 1024 * 1024;

/// An SSH-like service inside the namespace: a banner, then an echo of
/// everything until the peer's EOF.
fn spawn_banner_echo(listener: tokio::net::TcpListener) {
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.into_split();
                if w.write_all(BANNER).await.is_err() {
                    return;
                }
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
}

/// Through `public`: the banner, then `data` echoed back byte for byte.
async fn banner_and_echo(public: &str, data: Vec<u8>) {
    let tcp = TcpStream::connect(public)
        .await
        .expect("the public forward accepts");
    let (mut r, mut w) = tcp.into_split();
    let mut banner = vec![0u8; BANNER.len()];
    tokio::time::timeout(WAIT, r.read_exact(&mut banner))
        .await
        .expect("the banner in time")
        .expect("the banner");
    assert_eq!(banner, BANNER);
    let expected: [u8; 32] = Sha256::digest(&data).into();
    let len = data.len();
    let writer = tokio::spawn(async move {
        w.write_all(&data).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    loop {
        let n = tokio::time::timeout(Duration::from_secs(30), r.read(&mut buf))
            .await
            .expect("the echo in time")
            .expect("the echo");
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        got += n;
    }
    writer.await.unwrap();
    assert_eq!(got, len, "echoed length");
    assert!(
        <[u8; 32]>::from(hasher.finalize()) == expected,
        "bytes differ"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wireguard_go_client_is_reached_through_the_public_forward() {
    if let Some(reason) = WireguardGo::unavailable() {
        println!("skipping: wireguard-go cannot run here: {reason}");
        return;
    }
    let wg = WireguardGo::start_unaddressed(&wireguard_key()).unwrap();
    // The relay listens where the namespace reaches it: the veth's root end.
    let host = wg.host_addr().to_string();
    let relay = RelayBin::start(&[
        "--wg-listen",
        &format!("{host}:0"),
        "--public-host",
        &host,
        "--forward-bind",
        &host,
        "--metrics",
        "127.0.0.1:0",
    ])
    .await;
    let metrics = relay.process.wait_metrics_addr(WAIT).await.unwrap();
    let mut control = relay.signed_in("grace").await;
    control
        .send(&json!({
            "type": "register",
            "tunnel_info": {
                "name": "wg-go",
                "protocol": "tcp",
                "ports": [SHARED_PORT],
                "public_key": wg.public_key(),
            },
        }))
        .await;
    let answer: Value = control.recv().await;
    assert_eq!(answer["status"], "success", "{answer}");
    let tunnel_id = answer["tunnel_id"].as_str().unwrap().to_owned();
    let config = &answer["config"];

    // wireguard-go configured from the answer alone, as a client would be.
    let address = config["address"].as_str().unwrap();
    wg.add_address(address).unwrap();
    let allowed: Vec<String> = config["allowed_ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    for network in &allowed {
        wg.add_route(network).unwrap();
    }
    let relay_key = config["public_key"].as_str().unwrap().to_owned();
    wg.set_peer(&WgPeer {
        public_key: relay_key.clone(),
        endpoint: Some(config["endpoint"].as_str().unwrap().parse().unwrap()),
        allowed_ips: allowed,
        // Makes wireguard-go handshake at once, as the seed's client does.
        persistent_keepalive: Some(25),
    })
    .unwrap();
    let ip: Ipv4Addr = address.split('/').next().unwrap().parse().unwrap();
    spawn_banner_echo(
        wg.tcp_listener(SocketAddr::from((ip, SHARED_PORT)))
            .unwrap(),
    );

    // wireguard-go reports a handshake only through `wg show`: poll it.
    let deadline = Instant::now() + WAIT;
    while wg.latest_handshake(&relay_key).unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "no handshake with the relay: {}",
            wg.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // register_ack opens the forwards; a heartbeat answered after it means
    // they are listening.
    control
        .send(&json!({"type": "register_ack", "tunnel_id": tunnel_id}))
        .await;
    let beat = control.heartbeat(&tunnel_id).await;
    assert_eq!(beat["type"], "heartbeat_response", "{beat}");
    let public = config["forwards"][0]["public"].as_str().unwrap().to_owned();
    assert!(public.starts_with(&format!("{host}:")), "{public}");

    // The bytes metric counts a connection while it is still open (an SSH
    // session can last hours): the banner is in before anything closes.
    let mut held = TcpStream::connect(&public).await.unwrap();
    let mut banner = vec![0u8; BANNER.len()];
    held.read_exact(&mut banner).await.unwrap();
    let out = r#"relay_bytes_transferred_total{direction="out"}"#;
    assert_eq!(
        sample(&scrape(metrics).await, out),
        Some(BANNER.len() as f64),
        "counted while open"
    );
    drop(held);

    banner_and_echo(&public, testkit::pseudo_random_bytes(5, 16 * MIB)).await;
    let mut parallel = Vec::new();
    for seed in 0..8 {
        let public = public.clone();
        parallel.push(tokio::spawn(async move {
            banner_and_echo(&public, testkit::pseudo_random_bytes(seed, MIB)).await
        }));
    }
    for task in parallel {
        task.await.unwrap();
    }
    let (received, sent) = wg.transfer(&relay_key).unwrap();
    assert!(
        received > (24 * MIB) as u64 && sent > (24 * MIB) as u64,
        "wireguard-go counted {received} in, {sent} out"
    );
    control.close().await;
}

/// Sends `register_ack` for `tunnel_id`, then a heartbeat whose answer
/// (read after the relay handled the ack) says whether the forwards opened.
async fn acknowledge(control: &mut Control, tunnel_id: &str) -> Value {
    control
        .send(&json!({"type": "register_ack", "tunnel_id": tunnel_id}))
        .await;
    control.heartbeat(tunnel_id).await
}

/// A tunnel whose client went away keeps its forwards through the detach
/// grace, but once the registry has forgotten it and hands its address
/// and public port to a new tunnel, the old one is torn down at once: the
/// new tunnel's forward opens on that port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_tunnel_gives_up_its_public_port_at_once() {
    // One client address (a /30) and one public port; forgotten 2 s after
    // its last heartbeat; the default grace (120 s) would hold the port.
    let relay = RelayBin::start(&[
        "--network",
        "10.77.0.0/30",
        "--forward-ports",
        "41099-41099",
        "--lease",
        "1s",
        "--resume-window",
        "1s",
    ])
    .await;
    let mut first = relay.signed_in("hank").await;
    let answer = first.registered("desk", &[22]).await;
    let old_id = answer["tunnel_id"].as_str().unwrap().to_owned();
    let beat = acknowledge(&mut first, &old_id).await;
    assert_eq!(beat["type"], "heartbeat_response", "{beat}");
    TcpStream::connect("127.0.0.1:41099")
        .await
        .expect("the first tunnel's forward listens");
    first.close().await;

    // Nothing to await but the registry's clock: ask until the address
    // and the port are free again.
    let deadline = Instant::now() + Duration::from_secs(15);
    let (mut second, answer) = loop {
        let mut control = relay.signed_in("hank").await;
        let answer = control.register("laptop", &[22]).await;
        if answer["type"] == "register_response" {
            break (control, answer);
        }
        assert!(Instant::now() < deadline, "never registered: {answer}");
        control.close().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let new_id = answer["tunnel_id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, old_id);
    assert_eq!(answer["config"]["address"], "10.77.0.2/32", "{answer}");
    assert_eq!(
        answer["config"]["forwards"][0]["public"], "relay.test:41099",
        "{answer}"
    );
    let beat = acknowledge(&mut second, &new_id).await;
    assert_eq!(
        beat["type"], "heartbeat_response",
        "the forward opened on the port: {beat}"
    );
    TcpStream::connect("127.0.0.1:41099")
        .await
        .expect("the new tunnel's forward listens");
    let line = relay
        .process
        .wait_for_log("tunnel replaced: torn down", WAIT)
        .await
        .expect("the old tunnel's teardown is logged");
    assert!(line.contains(&old_id), "{line}");
    second.close().await;
}
