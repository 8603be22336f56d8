//! `httvps demo`: an embedded gateway on loopback plus the client, and a tiny
//! local web page to fetch through it, so the tunnel can be tried with no
//! server, no configuration and no internet.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use anyhow::Context;
use demo::{DemoGateway, DemoHt, DemoPage, DemoQueen};

use crate::args::{DemoArgs, Global};
use crate::connect::supervise;

pub async fn run(global: &Global, args: DemoArgs) -> anyhow::Result<ExitCode> {
    if args.ht {
        return run_ht(global, args).await;
    }
    if args.publish {
        return run_publish(global, args).await;
    }
    if args.share {
        return crate::share::run_demo(global, args.json).await;
    }
    let gateway = DemoGateway::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
    let page = DemoPage::start()
        .await
        .context("starting the demo web page")?;
    let page_url = page.url();
    let listen = args
        .listen
        .unwrap_or(httvps_client::profile::DEFAULT_LISTEN);
    let options = gateway.start_options(listen, false);
    let gateway_addr = gateway.addr();
    let banner: crate::connect::Banner = Box::new(move |proxy: SocketAddr| {
        let text = format!(
            "demo gateway on wss://{gateway_addr}/ws (direct mode, loopback only)\n\
             try it:\n  curl --socks5-hostname {proxy} {page_url}\n  curl -x http://{proxy} {page_url}\n\
             or point a browser's SOCKS5 proxy at {proxy}; Ctrl-C stops."
        );
        let data = serde_json::json!({ "gateway": format!("wss://{gateway_addr}/ws"), "page": page_url.clone() });
        (text, data)
    });
    let code = supervise(global, options, args.json, Some(banner), None).await;
    drop(page);
    gateway.shutdown().await;
    code
}

/// `httvps demo --ht`: the same with an embedded HT server, whose tunnel
/// also carries UDP and (with --dns-listen) DNS.
async fn run_ht(global: &Global, args: DemoArgs) -> anyhow::Result<ExitCode> {
    let server = DemoHt::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
    let page = DemoPage::start()
        .await
        .context("starting the demo web page")?;
    let page_url = page.url();
    let listen = args
        .listen
        .unwrap_or(httvps_client::profile::DEFAULT_LISTEN);
    let options = server.start_options(listen)?;
    let server_addr = server.addr();
    let banner: crate::connect::Banner = Box::new(move |proxy: SocketAddr| {
        let text = format!(
            "demo HT server on https://{server_addr} (loopback only)\n\
             try it:\n  curl --socks5-hostname {proxy} {page_url}\n  curl -x http://{proxy} {page_url}\n\
             SOCKS5 UDP ASSOCIATE works too; Ctrl-C stops."
        );
        let data = serde_json::json!({ "server": format!("https://{server_addr}"), "page": page_url.clone() });
        (text, data)
    });
    let code = supervise(global, options, args.json, Some(banner), args.dns_listen).await;
    drop(page);
    server.shutdown().await;
    code
}

/// `httvps demo --publish`: an embedded HLHV queen on loopback and a cell
/// publishing a local page through it, reached at the queen's HTTPS port.
async fn run_publish(global: &Global, args: DemoArgs) -> anyhow::Result<ExitCode> {
    let queen = DemoQueen::start(Ipv4Addr::LOCALHOST.into()).await?;
    let page = DemoPage::start()
        .await
        .context("starting the demo web page")?;
    let options = queen.publish_options(&page.url())?;
    let banner = format!(
        "demo queen: cells on {}, HTTPS on {} (self-signed, loopback only)\n\
         try it:\n  curl -k {}\nor open it in a browser (accept the certificate); Ctrl-C stops.",
        queen.cells_addr(),
        queen.https_addr(),
        queen.public_url()
    );
    let code = crate::publish::publish(global, options, args.json, Some(banner)).await;
    drop(page);
    queen.shutdown().await;
    code
}
