//! Chromium loading a page with a dozen sub-resources through the proxy, as
//! HTTP proxy and as SOCKS5 proxy. Needs Debian's chromium (scripts/test
//! installs it).

mod util;

use local_proxy::ProxyProtocol;
use util::*;

const CHROMIUM: &str = "/usr/bin/chromium";

async fn load_page(proxy_arg: &str, url: &str) -> String {
    let profile = std::env::temp_dir().join(format!(
        "local-proxy-chromium-{}-{}",
        std::process::id(),
        proxy_arg.len()
    ));
    let out = tokio::process::Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            &format!("--user-data-dir={}", profile.display()),
            &format!("--proxy-server={proxy_arg}"),
            // Chromium never proxies loopback unless told to.
            "--proxy-bypass-list=<-loopback>",
            "--virtual-time-budget=5000",
            "--dump-dom",
            url,
        ])
        .output()
        .await
        .expect("run chromium");
    let _ = std::fs::remove_dir_all(&profile);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn chromium_loads_a_page_with_many_resources() {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: apt-get install chromium (scripts/test does)"
    );
    let server = http_server().await;
    let url = format!("http://127.0.0.1:{}/page", server.port());
    for scheme in ["http", "socks5"] {
        let connector = DirectConnector::loopback_only();
        let proxy = start(config(), connector.clone()).await;
        let dom = load_page(&format!("{scheme}://{}", proxy.local_addr()), &url).await;
        for n in 0..12 {
            assert!(
                dom.contains(&format!("script-{n}-ok")),
                "{scheme}: script {n} missing in {dom}"
            );
        }
        // Only the test server's requests (Chromium also phones home).
        let reqs: Vec<_> = connector
            .requests()
            .into_iter()
            .filter(|r| r.target.port() == server.port())
            .collect();
        let expected = if scheme == "http" {
            ProxyProtocol::HttpForward
        } else {
            ProxyProtocol::Socks5
        };
        assert!(!reqs.is_empty());
        assert!(reqs.iter().all(|r| r.protocol == expected), "{reqs:?}");
        eprintln!(
            "{scheme}: 13 resources over {} upstream connection(s)",
            reqs.len()
        );
    }
}
