//! `httvps demo`: an embedded gateway on loopback plus the client, and a tiny
//! local web page to fetch through it, so the tunnel can be tried with no
//! server, no configuration and no internet.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use engine::{DemoGateway, HttvpsAuth, HttvpsTransport, ReconnectPolicy, StartOptions};
use local_proxy::ProxyConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::args::{DemoArgs, Global};
use crate::connect::supervise;

const PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>httvps demo</title></head>\
<body><h1>It works.</h1><p>This page came to you through the HTTVPS tunnel: \
your client, a TLS WebSocket, the demo gateway, then this local server.</p></body></html>\n";

/// Serves [`PAGE`] for every request, one request per connection.
async fn serve_demo_page() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .context("starting the demo web page")?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = [0u8; 4096];
                let _ = socket.read(&mut head).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{PAGE}",
                    PAGE.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    Ok(addr)
}

pub async fn run(global: &Global, args: DemoArgs) -> anyhow::Result<ExitCode> {
    let gateway = DemoGateway::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
    let page = serve_demo_page().await?;
    let transport = HttvpsTransport::new(
        gateway.client_config(),
        HttvpsAuth::SessionToken(gateway.token()),
    );
    let listen = args.listen.unwrap_or(engine::profile::DEFAULT_LISTEN);
    let options = StartOptions {
        transport: Arc::new(transport),
        proxy: ProxyConfig {
            listen,
            ..ProxyConfig::default()
        },
        reconnect: ReconnectPolicy::default(),
        retry_initial: true,
        slot_wait: std::time::Duration::from_secs(30),
        reconnect_wait: std::time::Duration::from_secs(15),
    };
    let gateway_addr = gateway.addr();
    let banner: crate::connect::Banner = Box::new(move |proxy: SocketAddr| {
        let text = format!(
            "demo gateway on wss://{gateway_addr}/ws (direct mode, loopback only)\n\
             try it:\n  curl --socks5-hostname {proxy} http://{page}/\n  curl -x http://{proxy} http://{page}/\n\
             or point a browser's SOCKS5 proxy at {proxy}; Ctrl-C stops."
        );
        let data = serde_json::json!({ "gateway": format!("wss://{gateway_addr}/ws"), "page": format!("http://{page}/") });
        (text, data)
    });
    let code = supervise(global, options, args.json, Some(banner)).await;
    gateway.shutdown().await;
    code
}
