//! `ht-server`: parse flags, set up logs, run the library's server, and turn
//! SIGTERM/SIGINT into a graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use ht_server::{Config, HtServer, TlsSource};
use proto_ht::Key;
use proto_ht::server::Limits;
use server_kit::signal::ShutdownSignals;
use tracing::info;

/// HT server: TCP streams, UDP flows and DNS lookups carried as encrypted
/// queries in long-lived chunked `POST /ht/create.php` requests.
///
/// The pre-shared key is read from --key-file (64 hexadecimal characters),
/// never from the command line, where `ps` shows it to every user. Give
/// --cert and --key for HTTPS; without them the server speaks plain HTTP
/// and warns (HT's own encryption has no integrity). Logs are JSON on
/// stderr; set RUST_LOG (default "info").
#[derive(Parser, Debug)]
#[command(name = "ht-server", version, about, long_about)]
struct Args {
    /// Address of the listener, e.g. 0.0.0.0:443 (port 0: any free port).
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// TLS certificate chain, PEM (leaf first).
    #[arg(long, value_name = "PEM", requires = "key")]
    cert: Option<PathBuf>,
    /// TLS private key, PEM.
    #[arg(long, value_name = "PEM", requires = "cert")]
    key: Option<PathBuf>,
    /// File holding the pre-shared HT key: 64 hexadecimal characters.
    #[arg(long, value_name = "FILE")]
    key_file: PathBuf,
    /// Let targets be loopback, private, link-local and metadata addresses.
    #[arg(long)]
    allow_private_targets: bool,
    /// Streams per session (dials in progress included).
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_streams)]
    max_streams: usize,
    /// Sessions at once; more are answered 503.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_sessions)]
    max_sessions: usize,
    /// Largest chunk accepted from a client, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_chunk)]
    max_chunk: usize,
    /// Bytes buffered per stream and direction.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_buffer)]
    max_buffer: usize,
    /// Download bytes one session keeps across all its streams.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_session_buffer)]
    max_session_buffer: usize,
    /// Transport connections one session may hold at once; more get 503.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_connections_per_session)]
    max_connections_per_session: usize,
    /// Queries in flight on one connection (open batches included).
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_in_flight)]
    max_in_flight: usize,
    /// Upload packets a client may send past a withheld acknowledgement.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_upload_ahead)]
    max_upload_ahead: u64,
    /// Datagrams queued per UDP stream; the oldest is dropped when full.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_datagrams)]
    max_datagrams: usize,
    /// Seconds a session without any connection lives before it is reclaimed.
    #[arg(long, value_name = "SECS", default_value_t = Limits::default().session_idle.as_secs())]
    session_idle: u64,
    /// Tunnel connections at once (connections whose first chunk proved the key).
    #[arg(long, value_name = "N", default_value_t = Config::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Connections not yet proven (TLS handshakes, strangers, connections
    /// waiting for their first chunk); when full, the one that progressed
    /// least recently is closed.
    #[arg(long, value_name = "N", default_value_t = Config::DEFAULT_MAX_PENDING)]
    max_pending: usize,
    /// Connections from one client address (IPv6: one /64).
    #[arg(long, value_name = "N", default_value_t = Config::DEFAULT_MAX_PER_SOURCE)]
    max_per_source: usize,
    /// Reclaimed session ids remembered (answered 403) at most; the oldest
    /// is forgotten first.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_reclaimed)]
    max_reclaimed: usize,
    /// Seconds from accepting a connection (TLS handshake included) to its
    /// first complete chunk; then it gets the stranger's 404.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    first_chunk_timeout: u64,
    /// Seconds a dial may take, name resolution included (and a DNS question).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    dial_timeout: u64,
    /// Serve the decoy website strangers see from this directory (default:
    /// a built-in page); it answers as nginx would.
    #[arg(long, value_name = "DIR")]
    site_dir: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
}

impl Args {
    fn into_config(self) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(&self.key_file)
            .with_context(|| format!("reading the key file {}", self.key_file.display()))?;
        // The error names the length only, never the key.
        let key = Key::from_hex(&text)
            .with_context(|| format!("the key file {}", self.key_file.display()))?;
        let mut config = Config::new(self.listen, key);
        config.tls = match (self.cert, self.key) {
            (Some(cert), Some(key)) => Some(TlsSource::Files { cert, key }),
            _ => None,
        };
        config.allow_private_targets = self.allow_private_targets;
        config.metrics_listen = self.metrics;
        config.max_connections = self.max_connections;
        config.max_pending = self.max_pending;
        config.max_per_source = self.max_per_source;
        config.site_dir = self.site_dir;
        let l = &mut config.limits;
        l.max_streams = self.max_streams;
        l.max_sessions = self.max_sessions;
        l.max_chunk = self.max_chunk;
        l.max_buffer = self.max_buffer;
        l.max_session_buffer = self.max_session_buffer;
        l.max_connections_per_session = self.max_connections_per_session;
        l.max_in_flight = self.max_in_flight;
        l.max_upload_ahead = self.max_upload_ahead;
        l.max_datagrams = self.max_datagrams;
        l.session_idle = Duration::from_secs(self.session_idle);
        l.max_reclaimed = self.max_reclaimed;
        config.first_chunk_timeout = Duration::from_secs(self.first_chunk_timeout.max(1));
        config.dial_timeout = Duration::from_secs(self.dial_timeout.max(1));
        l.check()?;
        Ok(config)
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config = args.into_config()?;
    // Handlers go in before serving so that an early signal is not lost.
    let signals = ShutdownSignals::install().context("installing signal handlers")?;
    let server = HtServer::bind(config)
        .await
        .context("starting the server")?;
    let stop = async move {
        let which = signals.wait().await;
        info!(signal = which, "shutdown requested");
    };
    server.run(stop).await.context("serving")?;
    Ok(())
}

/// The allocator of every binary we ship (why: the `allocator` crate).
#[global_allocator]
static ALLOCATOR: allocator::Allocator = allocator::Allocator;

fn main() -> ExitCode {
    allocator::keep_small_pages();
    let args = Args::parse();
    server_kit::binary::run_server("ht-server", run(args))
}
