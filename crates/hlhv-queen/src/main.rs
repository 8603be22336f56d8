//! `hlhv-queen`: parse flags (or the Go queen's config file), set up logs,
//! run the library's queen, and turn SIGTERM/SIGINT into a graceful
//! shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use hlhv_queen::conf::ConfFile;
use hlhv_queen::{CellKey, Config, Limits, Queen, TlsSource};
use server_kit::signal::ShutdownSignals;
use tracing::{info, warn};

/// HLHV queen: cells log in over TLS (the leash, then bands) and mount a
/// host and path; the queen serves them over public HTTPS (HTTP/1.1 and
/// HTTP/2).
///
/// Either give the listeners, certificate and cell key as flags, or
/// --conf-path with a Go queen config file (connKey as a bcrypt hash);
/// flags given beside --conf-path override the file. The cell key is read
/// from a file, never from the command line. Logs are JSON on stderr; set
/// RUST_LOG (default "info").
#[derive(Parser, Debug)]
#[command(name = "hlhv-queen", version, about, long_about)]
struct Args {
    /// A Go queen config file (`key value` lines: keyPath, certPath,
    /// connKey, portHlhv, portHttps, maxBandAge, timeout,
    /// timeoutReadHeader, alias, unalias).
    #[arg(long, value_name = "FILE")]
    conf_path: Option<PathBuf>,
    /// Address of the cells' TLS listener, e.g. 0.0.0.0:2001 (port 0: any).
    #[arg(long, value_name = "ADDR", required_unless_present = "conf_path")]
    cells: Option<SocketAddr>,
    /// Address of the public HTTPS listener, e.g. 0.0.0.0:443 (port 0: any).
    #[arg(long, value_name = "ADDR", required_unless_present = "conf_path")]
    https: Option<SocketAddr>,
    /// TLS certificate chain, PEM (leaf first), for both listeners.
    #[arg(long, value_name = "PEM", required_unless_present = "conf_path")]
    cert: Option<PathBuf>,
    /// TLS private key, PEM.
    #[arg(long, value_name = "PEM", required_unless_present = "conf_path")]
    key: Option<PathBuf>,
    /// File holding the cell key (one trailing newline is ignored).
    #[arg(long, value_name = "FILE", required_unless_present = "conf_path")]
    cell_key_file: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Host alias FROM=TO (repeatable): requests for FROM go to mounts on
    /// TO. localhost, 127.0.0.1, ::1 and ::ffff:127.0.0.1 are aliases of @.
    #[arg(long, value_name = "FROM=TO")]
    alias: Vec<String>,
    /// Hosts that no alias names go to mounts on this host.
    #[arg(long, value_name = "HOST")]
    alias_fallback: Option<String>,
    /// Largest frame accepted from a cell, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_frame)]
    max_frame: usize,
    /// Cells connected at once.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_cells)]
    max_cells: usize,
    /// Bands per cell.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_bands_per_cell)]
    max_bands_per_cell: usize,
    /// Requests waiting for a band, per cell; more get 503 at once.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_waiting_per_cell)]
    max_waiting_per_cell: usize,
    /// How long a request waits for a band before 503.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "10s")]
    band_wait: Duration,
    /// A band free this long is closed [default: 60s, or maxBandAge].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    band_idle: Option<Duration>,
    /// From accepting a cell connection to its login frame, TLS included
    /// [default: 1s, or timeout].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    login_timeout: Option<Duration>,
    /// Longest silence of a cell within a request (504 before the head).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "60s")]
    response_timeout: Duration,
    /// Largest request body piece (ReqBody frame) sent to a cell, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_body_piece)]
    max_body_piece: usize,
    /// Cell connections not yet logged in; when full, the one that
    /// progressed least recently is closed.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_pending_logins)]
    max_pending_logins: usize,
    /// Cell connections (leashes and bands) from one address.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_cell_conns_per_source)]
    max_cell_conns_per_source: usize,
    /// Public connections at once.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// Public connections still in their TLS handshake.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_pending)]
    max_pending: usize,
    /// Public connections from one address (IPv6: one /64).
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_per_source)]
    max_per_source: usize,
    /// HTTP/1.1 request head bound [default: 10s, or timeoutReadHeader].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    header_read_timeout: Option<Duration>,
    /// At shutdown, how long open public requests may take to finish.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "10s")]
    drain_timeout: Duration,
}

impl Args {
    fn into_config(self) -> anyhow::Result<Config> {
        let conf = match &self.conf_path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the config file {}", path.display()))?;
                let conf = ConfFile::parse(&text)
                    .with_context(|| format!("the config file {}", path.display()))?;
                if !conf.ignored.is_empty() {
                    warn!(keys = ?conf.ignored, "config keys ignored");
                }
                Some(conf)
            }
            None => None,
        };
        let any = |port: u16| SocketAddr::from(([0, 0, 0, 0], port));
        let pick = |flag: Option<SocketAddr>, port: Option<u16>, what: &str| {
            flag.or(port.map(any))
                .with_context(|| format!("--{what} is required"))
        };
        let cells = pick(self.cells, conf.as_ref().map(|c| c.port_hlhv), "cells")?;
        let https = pick(self.https, conf.as_ref().map(|c| c.port_https), "https")?;
        let cert = self
            .cert
            .or(conf.as_ref().map(|c| PathBuf::from(&c.cert_path)))
            .context("--cert is required")?;
        let key = self
            .key
            .or(conf.as_ref().map(|c| PathBuf::from(&c.key_path)))
            .context("--key is required")?;
        let cell_key = match (
            &self.cell_key_file,
            conf.as_ref().and_then(|c| c.conn_key.as_deref()),
        ) {
            (Some(file), _) => {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("reading the cell key file {}", file.display()))?;
                // The error never quotes the key.
                CellKey::from_file_text(&text)
                    .with_context(|| format!("the cell key file {}", file.display()))?
            }
            (None, Some(hash)) => {
                CellKey::from_bcrypt(hash).context("connKey in the config file")?
            }
            (None, None) => bail!(
                "no cell key: give --cell-key-file or connKey in the config file \
                 (unlike the Go queen, we never accept every cell)"
            ),
        };
        let mut aliases = conf.as_ref().map(|c| c.aliases.clone()).unwrap_or_default();
        for alias in &self.alias {
            let (from, to) = alias
                .split_once('=')
                .with_context(|| format!("--alias {alias:?} is not FROM=TO"))?;
            aliases.set(from.trim(), to.trim());
        }
        if let Some(fallback) = &self.alias_fallback {
            aliases.set_fallback(fallback);
        }
        let limits = Limits {
            max_frame: self.max_frame,
            max_cells: self.max_cells.max(1),
            max_bands_per_cell: self.max_bands_per_cell.max(1),
            max_waiting_per_cell: self.max_waiting_per_cell,
            band_wait: self.band_wait,
            band_idle: self
                .band_idle
                .or(conf.as_ref().map(|c| c.max_band_age))
                .unwrap_or(Limits::default().band_idle),
            login_timeout: self
                .login_timeout
                .or(conf.as_ref().map(|c| c.timeout))
                .unwrap_or(Limits::default().login_timeout),
            response_timeout: self.response_timeout,
            max_body_piece: self.max_body_piece.max(1),
            max_pending_logins: self.max_pending_logins,
            max_cell_conns_per_source: self.max_cell_conns_per_source,
            max_connections: self.max_connections,
            max_pending: self.max_pending,
            max_per_source: self.max_per_source,
            handshake_timeout: Limits::default().handshake_timeout,
            header_read_timeout: self
                .header_read_timeout
                .or(conf.as_ref().map(|c| c.timeout_read_header))
                .unwrap_or(Limits::default().header_read_timeout),
            drain_timeout: self.drain_timeout,
        };
        if limits.login_timeout.is_zero() {
            bail!("the login timeout must be above zero");
        }
        let mut config = Config::new(cells, https, TlsSource::Files { cert, key }, cell_key);
        config.aliases = aliases;
        config.metrics_listen = self.metrics;
        config.limits = limits;
        Ok(config)
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config = args.into_config()?;
    // Handlers go in before serving so that an early signal is not lost.
    let signals = ShutdownSignals::install().context("installing signal handlers")?;
    let queen = Queen::bind(config).await.context("starting the queen")?;
    let stop = async move {
        let which = signals.wait().await;
        info!(signal = which, "shutdown requested");
    };
    queen.run(stop).await.context("serving")?;
    Ok(())
}

/// The allocator of every binary we ship (why: the `allocator` crate).
#[global_allocator]
static ALLOCATOR: allocator::Allocator = allocator::Allocator;

fn main() -> ExitCode {
    allocator::keep_small_pages();
    let args = Args::parse();
    server_kit::binary::run_server("hlhv-queen", run(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse() {
        Args::command_for_test().debug_assert();
        let a = Args::try_parse_from([
            "hlhv-queen",
            "--cells",
            "127.0.0.1:0",
            "--https",
            "127.0.0.1:0",
            "--cert",
            "c",
            "--key",
            "k",
            "--cell-key-file",
            "f",
            "--band-wait",
            "250ms",
        ])
        .unwrap();
        assert_eq!(a.band_wait, Duration::from_millis(250));
        assert!(Args::try_parse_from(["hlhv-queen", "--cells", "127.0.0.1:0"]).is_err());
        assert!(Args::try_parse_from(["hlhv-queen", "--conf-path", "x"]).is_ok());
    }

    impl Args {
        fn command_for_test() -> clap::Command {
            <Args as clap::CommandFactory>::command()
        }
    }
}
