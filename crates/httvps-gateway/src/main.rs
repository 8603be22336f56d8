//! `httvps-gateway`: parse flags, set up logs, run the library's gateway, and
//! turn SIGTERM/SIGINT into a graceful shutdown and SIGHUP into a token reload.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};
use httvps_gateway::config::parse_duration;
use httvps_gateway::{AuthSource, Gateway, GatewayConfig, OutlineNode, SiteSource, TlsSource};
use net::Secret;
use server_kit::signal::ShutdownSignals;
use tokio::signal::unix::{SignalKind, signal};
use tracing::info;

/// The allocator of every binary we ship (why: the `allocator` crate).
#[global_allocator]
static ALLOCATOR: allocator::Allocator = allocator::Allocator;

/// HTTVPS gateway: multiplexed TCP streams as JSON frames over a TLS
/// WebSocket, carried out through Shadowsocks (Outline) or dialed directly.
///
/// Exactly one of --backend and --tokens says who may log in. Any other
/// path than --ws-path serves a small static website. The Outline node's
/// access key holds its password, so it never goes on the command line
/// (where `ps` shows it to every user): give --outline-file, or set the
/// environment variable HTTVPS_OUTLINE to the ss:// URL. Durations (DUR) are
/// seconds (10, 0.5) or with units (500ms, 2m, 1h30m). Logs are JSON on
/// stderr; set RUST_LOG (default "info").
#[derive(Parser, Debug)]
#[command(name = "httvps-gateway", version, about, long_about)]
struct Args {
    /// Address of the TLS WebSocket listener, e.g. 0.0.0.0:443 (port 0: any free port).
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// Certificate chain, PEM (leaf first).
    #[arg(long, value_name = "PEM")]
    cert: PathBuf,
    /// Private key, PEM.
    #[arg(long, value_name = "PEM")]
    key: PathBuf,
    /// Backend base URL; sessions are validated at {URL}/internal/httvps/validate-session.
    /// The X-Internal-Secret header comes from the environment variable HTTVPS_INTERNAL_SECRET.
    #[arg(
        long,
        value_name = "URL",
        conflicts_with = "tokens",
        required_unless_present = "tokens"
    )]
    backend: Option<String>,
    /// Token file: one session token per line, '#' comments; re-read on SIGHUP and on change.
    #[arg(long, value_name = "FILE")]
    tokens: Option<PathBuf>,
    /// Outline node for token-file sessions: a file holding its ss://… access
    /// key, readable by this user only (chmod 600, like an ssh key). The
    /// environment variable HTTVPS_OUTLINE may hold the URL instead.
    /// Default: direct mode.
    #[arg(long, value_name = "PATH")]
    outline_file: Option<PathBuf>,
    /// Refused: argv is visible to every user (`ps`). Read only from the
    /// environment (HTTVPS_OUTLINE); given as a flag, it is answered with
    /// advice rather than clap's "unexpected argument".
    #[arg(
        long = "outline",
        value_name = "SS_URL",
        env = "HTTVPS_OUTLINE",
        hide = true,
        hide_env_values = true,
        value_parser = secret_value
    )]
    outline_env: Option<Secret>,
    /// Streams per session when the backend does not say.
    #[arg(long, value_name = "N", default_value_t = 8)]
    max_streams: u32,
    /// Let direct mode dial loopback, private, link-local and metadata addresses.
    #[arg(long)]
    allow_private_targets: bool,
    /// Refuse the binary_data extension: stream bytes always travel as base64 in JSON.
    #[arg(long)]
    no_binary_data: bool,
    /// Refuse the flow_control extension: no credit windows; a stream whose
    /// upstream stalls for --stall-timeout is ended instead.
    #[arg(long)]
    no_flow_control: bool,
    /// Refuse the x-httvps-unmasked WebSocket extension: clients mask their frames.
    #[arg(long)]
    no_unmasked_frames: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Also serve the WebSocket over HTTP/3 (QUIC, RFC 9220) on this UDP
    /// address, with the same certificate (usually the TCP port's number).
    #[arg(long, value_name = "ADDR")]
    h3_listen: Option<SocketAddr>,
    /// The path that upgrades to WebSocket.
    #[arg(long, value_name = "PATH", default_value = "/ws")]
    ws_path: String,
    /// Serve the decoy website from this directory (default: a built-in page).
    #[arg(long, value_name = "DIR")]
    site_dir: Option<PathBuf>,
    /// Time allowed from upgrade to hello (seconds, or 500ms / 2m / 1h30m).
    #[arg(long, value_name = "DUR", default_value = "10", value_parser = parse_duration)]
    hello_timeout: Duration,
    /// Close a session that sends nothing this long (a ping goes out at half of it).
    #[arg(long, value_name = "DUR", default_value = "120", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// On SIGTERM, how long open streams may finish before they are cut.
    #[arg(long, value_name = "DUR", default_value = "10", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// How long a stream's full buffer may hold the session reader before the stream is ended.
    #[arg(long, value_name = "DUR", default_value = "2", value_parser = parse_duration)]
    stall_timeout: Duration,
    /// Upstream connect timeout, DNS included.
    #[arg(long, value_name = "DUR", default_value = "10", value_parser = parse_duration)]
    dial_timeout: Duration,
    /// Direct mode's Happy Eyeballs attempt delay: the next address of a
    /// target is tried this long after the previous one (RFC 8305; 0.1 to 2).
    #[arg(long, value_name = "DUR", default_value = "0.25", value_parser = parse_duration)]
    attempt_delay: Duration,
    /// Backend validate-session timeout.
    #[arg(long, value_name = "DUR", default_value = "5", value_parser = parse_duration)]
    backend_timeout: Duration,
    /// How often the token file's modification time is checked (0: only on SIGHUP).
    #[arg(long, value_name = "DUR", default_value = "2", value_parser = parse_duration)]
    tokens_poll: Duration,
    /// Concurrent authenticated sessions (a place is taken only once the
    /// token is valid); upgrades while all are taken are answered 503.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    max_sessions: usize,
    /// Connections not yet in a session (TLS handshakes, decoy visitors,
    /// upgrades waiting for hello); when full, the one that progressed least
    /// recently is closed to make room for the newest.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    max_connections: usize,
    /// Connections from one client address (IPv6: one /64), sessions included.
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_per_source: usize,
    /// TLS handshake time, and then the time for each HTTP request head.
    #[arg(long, value_name = "DUR", default_value = "10", value_parser = parse_duration)]
    handshake_timeout: Duration,
    /// Bytes queued toward a client that does not read before its session
    /// ends (at least the frame limit plus 128 KiB).
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024)]
    max_write_buffer: usize,
    /// Pings a client may send per second (WebSocket or JSON, and frames of
    /// unknown types); past the rate and burst each is a violation.
    #[arg(long, value_name = "N", default_value_t = 4)]
    ping_rate: u32,
    /// Pings a client may send at once; also the most control frames before hello.
    #[arg(long, value_name = "N", default_value_t = 16)]
    ping_burst: u32,
    /// Largest WebSocket message accepted, in bytes (contract: 262144).
    #[arg(long, value_name = "BYTES", default_value_t = proto_httvps::MAX_FRAME_LEN)]
    max_frame_bytes: usize,
    /// Bytes queued toward one stream's upstream before the reader waits.
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024)]
    stream_buffer: usize,
    /// Frames queued toward one stream's upstream before the reader waits.
    #[arg(long, value_name = "N", default_value_t = 32)]
    stream_buffer_frames: usize,
    /// Upstream read size per stream_data frame (capped by the frame limit).
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    read_buffer: usize,
    /// Protocol violations tolerated per session.
    #[arg(long, value_name = "N", default_value_t = 16)]
    max_violations: u32,
    /// With flow_control: how far one stream's receive window may grow (the
    /// bytes a stream may hold toward its upstream).
    #[arg(long, value_name = "BYTES", default_value_t = 16 * 1024 * 1024)]
    max_stream_window: u64,
    /// With flow_control: how far the session's receive window may grow.
    #[arg(long, value_name = "BYTES", default_value_t = 96 * 1024 * 1024)]
    max_session_window: u64,
    /// Messages queued toward the client, shared by the streams (each gets
    /// at least 4); control messages past twice this end the session.
    #[arg(long, value_name = "N", default_value_t = 64)]
    out_queue: usize,
    /// Recently closed stream ids a session remembers (late frames for them
    /// are dropped quietly).
    #[arg(long, value_name = "N", default_value_t = 1024)]
    recently_closed: usize,
    /// Longest stream id accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 128)]
    max_stream_id_len: usize,
    /// A write to a client that makes no progress this long ends the session.
    #[arg(long, value_name = "DUR", default_value = "60", value_parser = parse_duration)]
    write_timeout: Duration,
    /// After the gateway's Close, how long it waits for the client's.
    #[arg(long, value_name = "DUR", default_value = "2", value_parser = parse_duration)]
    close_timeout: Duration,
}

/// Keeps the URL out of `Debug` (and so out of any log of the flags). Never
/// fails: a parse error from clap would quote the value.
fn secret_value(text: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::from(text))
}

/// Where the Outline node comes from.
fn outline_node(file: Option<PathBuf>, env: Option<Secret>) -> anyhow::Result<Option<OutlineNode>> {
    let env = env.filter(|url| !url.expose().trim().is_empty());
    match (file, env) {
        (Some(_), Some(_)) => bail!("give one of --outline-file and HTTVPS_OUTLINE, not both"),
        (Some(path), None) => Ok(Some(OutlineNode::from_file(&path)?)),
        // The error never quotes the URL.
        (None, Some(url)) => Ok(Some(
            OutlineNode::from_url(url.expose().trim()).context("HTTVPS_OUTLINE")?,
        )),
        (None, None) => Ok(None),
    }
}

impl Args {
    /// Parses the command line; `--outline` given there (not through
    /// HTTVPS_OUTLINE) is refused, since every user can read it with `ps`.
    fn from_command_line() -> Args {
        let matches = Args::command().get_matches();
        if matches.value_source("outline_env") == Some(ValueSource::CommandLine) {
            eprintln!(
                "httvps-gateway: --outline is no longer accepted: the access key holds the \
                 Shadowsocks password, and the command line is visible to every user (ps). \
                 Put the ss:// URL in a file only you can read (chmod 600) and pass \
                 --outline-file PATH, or set the environment variable HTTVPS_OUTLINE."
            );
            std::process::exit(2);
        }
        Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }

    fn into_config(self) -> anyhow::Result<GatewayConfig> {
        let tls = TlsSource::Files {
            cert: self.cert,
            key: self.key,
        };
        let auth = match (self.backend, self.tokens) {
            (Some(url), None) => AuthSource::Backend {
                url,
                secret: std::env::var("HTTVPS_INTERNAL_SECRET")
                    .ok()
                    .filter(|s| !s.is_empty()),
                timeout: self.backend_timeout,
            },
            (None, Some(path)) => AuthSource::TokenFile(path),
            _ => bail!("give exactly one of --backend and --tokens"),
        };
        let mut config = GatewayConfig::new(self.listen, tls, auth);
        config.outline = outline_node(self.outline_file, self.outline_env)?;
        if let Some(dir) = self.site_dir {
            // Gateway::bind checks that it is a directory.
            config.site = SiteSource::Dir(dir);
        }
        config.ws_path = self.ws_path;
        config.metrics_listen = self.metrics;
        config.h3_listen = self.h3_listen;
        config.allow_private_targets = self.allow_private_targets;
        config.binary_data = !self.no_binary_data;
        config.flow_control = !self.no_flow_control;
        config.unmasked_frames = !self.no_unmasked_frames;
        let l = &mut config.limits;
        l.max_streams = self.max_streams;
        l.max_sessions = self.max_sessions;
        l.max_connections = self.max_connections;
        l.max_per_source = self.max_per_source;
        l.max_write_buffer = self.max_write_buffer;
        l.pings = proto_httvps::server::PingLimit {
            per_second: self.ping_rate,
            burst: self.ping_burst,
        };
        l.max_frame_len = self.max_frame_bytes;
        l.stream_buffer_bytes = self.stream_buffer;
        l.stream_buffer_frames = self.stream_buffer_frames;
        l.read_buffer = self.read_buffer;
        l.max_violations = self.max_violations;
        l.windows = proto_httvps::flow::WindowLimits {
            max_stream_window: self.max_stream_window,
            max_session_window: self.max_session_window,
        };
        l.out_queue = self.out_queue;
        l.recently_closed = self.recently_closed;
        l.max_stream_id_len = self.max_stream_id_len;
        let t = &mut config.timeouts;
        t.hello = self.hello_timeout;
        t.handshake = self.handshake_timeout;
        t.write = self.write_timeout;
        t.close = self.close_timeout;
        t.idle = self.idle_timeout;
        t.drain = self.drain_timeout;
        t.stall = self.stall_timeout;
        t.dial = self.dial_timeout;
        t.attempt_delay = self.attempt_delay;
        t.tokens_poll = (!self.tokens_poll.is_zero()).then_some(self.tokens_poll);
        Ok(config)
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config = args.into_config()?;
    // Handlers go in before serving so that an early signal is not lost.
    let shutdown = ShutdownSignals::install().context("installing signal handlers")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let gateway = Gateway::bind(config)
        .await
        .context("starting the gateway")?;
    let reloader = gateway.reloader();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            info!("SIGHUP: reloading tokens");
            let r = reloader.clone();
            let _ = tokio::task::spawn_blocking(move || r.reload()).await;
        }
    });
    let stop = async move {
        let which = shutdown.wait().await;
        info!(signal = which, "shutdown requested");
    };
    gateway.run(stop).await.context("serving")?;
    Ok(())
}

fn main() -> ExitCode {
    allocator::keep_small_pages();
    let args = Args::from_command_line();
    server_kit::binary::run_server("httvps-gateway", run(args))
}
