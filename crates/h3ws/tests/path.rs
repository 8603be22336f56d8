//! Each connection's MTU discovery and initial window fit the route toward
//! its peer (`h3ws::quic::Path`). On loopback the route carries 64 KiB
//! datagrams, so both ends must grow past Ethernet-sized packets; a wrong
//! route lookup would leave them at quinn's 1,452-byte bound, and bulk
//! HTTP/3 at half the speed of HTTP/1.1 (docs/http3.md).

use std::sync::Arc;

use h3ws::quic::{self, Path, Timing};
use tokio::io::AsyncWriteExt;

const ETHERNET_PAYLOAD: u16 = 1452;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

#[tokio::test]
async fn loopback_connections_grow_past_ethernet_sized_datagrams_both_ways() {
    let cert = testkit::TestCert::generate(&["localhost"]);
    let server_tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert_der.clone()], cert.key_der.clone_key())
        .unwrap();
    let (server, configs) = quic::server_endpoint(
        "127.0.0.1:0".parse().unwrap(),
        server_tls,
        Timing::default(),
        4,
    )
    .unwrap();
    let addr = server.local_addr().unwrap();
    assert!(Path::toward(addr).max_udp_payload() > ETHERNET_PAYLOAD);

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert_der.clone()).unwrap();
    let client_tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let config = quic::client_config(client_tls, Timing::default(), Path::toward(addr)).unwrap();
    let client = quic::client_endpoint(addr).unwrap();

    let accept = async {
        let incoming = server.accept().await.expect("an incoming connection");
        h3ws::server::accept_early(incoming, &configs).expect("accepted")
    };
    let connect = async {
        client
            .connect_with(config, addr, "localhost")
            .expect("connecting")
            .await
            .expect("connected")
    };
    let (at_server, at_client) = tokio::join!(accept, connect);

    // Bulk both ways: MTU discovery probes while data flows.
    const BYTES: usize = 16 << 20;
    let echo = async {
        let (mut send, mut recv) = at_server.accept_bi().await.expect("a stream");
        let received = tokio::io::copy(&mut recv, &mut send)
            .await
            .expect("echoing");
        send.shutdown().await.expect("finishing");
        received
    };
    let bulk = async {
        let (mut send, mut recv) = at_client.open_bi().await.expect("a stream");
        let write = async {
            let chunk = vec![0x5a; 64 << 10];
            for _ in 0..BYTES / chunk.len() {
                send.write_all(&chunk).await.expect("sending");
            }
            send.finish().expect("finishing");
        };
        let read = async { recv.read_to_end(BYTES + 1).await.expect("reading").len() };
        tokio::join!(write, read).1
    };
    let (echoed, read) = tokio::join!(echo, bulk);
    assert_eq!((echoed, read), (BYTES as u64, BYTES));

    for (side, conn) in [("client", &at_client), ("server", &at_server)] {
        let mtu = conn.stats().path.current_mtu;
        assert!(
            mtu > 8 * ETHERNET_PAYLOAD,
            "the {side} still sends {mtu}-byte datagrams on loopback"
        );
    }
}
