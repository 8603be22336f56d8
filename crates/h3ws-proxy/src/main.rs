//! `h3ws-proxy`: parse flags (the Go proxy's, single or double dash), set up
//! logs, run the proxy, and turn SIGTERM/SIGINT into a graceful shutdown.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use h3ws_proxy::Proxy;
use h3ws_proxy::config::{Config, parse_duration, parse_listen};
use server_kit::signal::ShutdownSignals;
use tracing::info;

/// WebSocket over HTTP/3 proxy: accepts WebSockets by extended CONNECT
/// (RFC 9220) and carries each to an HTTP/1.1 WebSocket backend.
///
/// Flags are the Go h3ws2h1ws-proxy's, written with one dash as it does
/// (-listen :443) or with two. Logs are JSON on stderr; set RUST_LOG
/// (default "info").
#[derive(Parser, Debug)]
#[command(name = "h3ws-proxy", version, about, long_about)]
struct Args {
    /// UDP address to listen on; ":443" is every interface.
    #[arg(long, value_name = "ADDR", default_value = ":443", value_parser = parse_listen)]
    listen: SocketAddr,
    /// TLS certificate chain, PEM.
    #[arg(long, value_name = "PEM", default_value = "cert.pem")]
    cert: PathBuf,
    /// TLS private key, PEM.
    #[arg(long, value_name = "PEM", default_value = "key.pem")]
    key: PathBuf,
    /// The backend's base URL (ws:// or wss://); the request's path and
    /// query are appended.
    #[arg(long, value_name = "URL", default_value = "ws://127.0.0.1:8080")]
    backend: String,
    /// Extra CA certificates (PEM) trusted for a wss:// backend.
    #[arg(long, value_name = "PEM")]
    backend_ca: Option<PathBuf>,
    /// Paths served: a regular expression matched against the request path.
    #[arg(long, value_name = "REGEX", default_value = "^/ws$")]
    path: regex::Regex,
    /// Serve Prometheus metrics at http://ADDR/metrics (off unless given).
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    metrics: Option<SocketAddr>,
    /// Largest WebSocket frame in bytes; a bigger one aborts the session.
    #[arg(long, value_name = "BYTES", default_value_t = Config::new().max_frame)]
    max_frame: usize,
    /// Largest WebSocket message in bytes; a bigger one closes with 1009.
    #[arg(long, value_name = "BYTES", default_value_t = Config::new().max_message)]
    max_message: usize,
    /// Sessions at once; more are answered 503.
    #[arg(long, value_name = "N", default_value_t = Config::new().max_conns)]
    max_conns: usize,
    /// Silence from either side that ends a session (Go duration: 120s, 2m).
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse_duration)]
    read_timeout: Duration,
    /// How long one write may wait (Go duration).
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    write_timeout: Duration,
}

/// The flags Go's `flag` package lets be written with one dash.
const LONG_FLAGS: [&str; 13] = [
    "listen",
    "cert",
    "key",
    "backend",
    "backend-ca",
    "path",
    "metrics",
    "max-frame",
    "max-message",
    "max-conns",
    "read-timeout",
    "write-timeout",
    "help",
];

/// Rewrites `-flag` and `-flag=value` to their double-dash form for clap.
fn double_dashed(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    args.into_iter()
        .map(|arg| {
            let Some(text) = arg.to_str() else { return arg };
            let Some(rest) = text.strip_prefix('-').filter(|r| !r.starts_with('-')) else {
                return arg;
            };
            let name = rest.split('=').next().unwrap_or_default();
            if LONG_FLAGS.contains(&name) {
                OsString::from(format!("--{rest}"))
            } else {
                arg
            }
        })
        .collect()
}

impl Args {
    fn into_config(self) -> Config {
        Config {
            listen: self.listen,
            cert: self.cert,
            key: self.key,
            backend: self.backend,
            backend_ca: self.backend_ca,
            path: self.path,
            metrics: self.metrics,
            max_frame: self.max_frame.max(1),
            max_message: self.max_message.max(1),
            max_conns: self.max_conns,
            read_timeout: self.read_timeout,
            write_timeout: self.write_timeout,
            ..Config::new()
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let signals = ShutdownSignals::install().context("installing signal handlers")?;
    let proxy = Proxy::bind(args.into_config())
        .await
        .context("starting the proxy")?;
    let stop = async move {
        let which = signals.wait().await;
        info!(signal = which, "shutdown requested");
    };
    proxy.run(stop).await;
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse_from(double_dashed(std::env::args_os()));
    server_kit::binary::run_server("h3ws-proxy", run(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_flags_parse_like_double_dashed_ones() {
        let argv = |v: &[&str]| double_dashed(v.iter().map(OsString::from));
        let go = Args::parse_from(argv(&[
            "h3ws-proxy",
            "-listen",
            ":8443",
            "-backend=wss://gw.example:443",
            "--max-conns",
            "5",
            "-read-timeout",
            "2m0s",
        ]));
        assert_eq!(go.listen, "[::]:8443".parse().unwrap());
        assert_eq!(go.backend, "wss://gw.example:443");
        assert_eq!(go.max_conns, 5);
        assert_eq!(go.read_timeout, Duration::from_secs(120));
        let defaults = Args::parse_from(argv(&["h3ws-proxy"])).into_config();
        let c = Config::new();
        assert_eq!(
            (defaults.max_frame, defaults.max_message, defaults.max_conns),
            (c.max_frame, c.max_message, c.max_conns)
        );
        assert_eq!(defaults.path.as_str(), "^/ws$");
        // Values that look like flags are left alone.
        assert_eq!(
            argv(&["-x", "-"]),
            vec![OsString::from("-x"), OsString::from("-")]
        );
    }
}
