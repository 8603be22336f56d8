//! `dig` (Debian's dnsutils) as the independent DNS client of the tests.

use std::net::SocketAddr;

/// `dig @server -p PORT +tries=1 +time=10 ARGS…`; its whole output.
pub async fn dig(server: SocketAddr, args: &[&str]) -> String {
    let out = tokio::process::Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), "+tries=1", "+time=10"])
        .args(args)
        .output()
        .await
        .expect("dig runs (Debian's dnsutils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
