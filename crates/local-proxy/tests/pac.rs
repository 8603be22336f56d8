//! The proxy auto-config file served on the proxy port.

mod util;

use std::sync::Arc;
use std::time::Duration;

use local_proxy::{Credentials, ProxyConfig};
use routing::{Action, Rule, RuleKind, RuleSet};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use util::*;

/// Sends `bytes` and reads until the proxy closes.
async fn exchange_text(proxy: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(bytes).await.unwrap();
    String::from_utf8_lossy(&read_all(&mut s, Duration::from_secs(3)).await).into_owned()
}

/// `GET /proxy.pac` to the proxy port is the PAC file of the configured
/// rules, naming the address the client reached, and needs no credentials
/// (browsers send none for it); anything else still does.
#[tokio::test]
async fn the_pac_file_is_served_on_the_proxy_port() {
    let rules = RuleSet {
        default: Action::Tunnel,
        rules: vec![Rule::new(
            RuleKind::DomainSuffix,
            "corp.example",
            Action::Direct,
        )],
    };
    let connector = DirectConnector::new();
    let config = ProxyConfig {
        auth: Some(Credentials::new("user", "pw")),
        rules: Arc::new(rules.compile().unwrap()),
        ..config()
    };
    let proxy = start(config, connector.clone()).await;
    let addr = proxy.local_addr();
    let text = exchange_text(
        addr,
        b"GET /proxy.pac HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.contains("Content-Type: application/x-ns-proxy-autoconfig\r\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!("var proxy = \"SOCKS5 {addr}; PROXY {addr}\";")),
        "{text}"
    );
    assert!(
        text.contains("dnsDomainIs(h, \".corp.example\"))) return \"DIRECT\";"),
        "{text}"
    );
    let head = exchange_text(
        addr,
        b"HEAD /proxy.pac HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
    // Other origin-form requests: credentials first, as before.
    let other = exchange_text(addr, b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(other.starts_with("HTTP/1.1 407 "), "{other}");
    assert!(connector.requests().is_empty());
}
