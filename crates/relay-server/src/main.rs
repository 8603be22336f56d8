//! `relay-server`: parse flags, set up the seed-shaped JSON logs, run the
//! library's relay, and turn SIGTERM/SIGINT into a graceful shutdown.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use relay_server::config::{Config, Limits, RegistryBackend};
use relay_server::jwt::TokenVerifier;
use relay_server::limits::{LimitsConfig, RateQuota};
use relay_server::registry::{PortRange, RegistryConfig, TunnelNetwork};
use relay_server::server::Relay;
use server_kit::signal::ShutdownSignals;
use server_kit::tls::TlsSource;
use tracing::info;

/// Relay server (seed 004): machines behind NAT share local TCP ports
/// through it. Clients sign in with a JWT on a TLS control channel
/// (`--listen`), register a tunnel and carry it over WireGuard
/// (`--wg-listen`, userspace: no root, no TUN); each shared port gets a
/// public port from `--forward-ports` on `--public-host`.
///
/// Secrets come from files, never from the command line. Logs are JSON
/// lines on stderr (timestamp, level, event, tunnel_id, details); set
/// RUST_LOG (default "info").
#[derive(Parser, Debug)]
#[command(name = "relay-server", version, about, long_about)]
struct Args {
    /// The control channel's TLS listener, e.g. 0.0.0.0:443 (port 0: any).
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// TLS certificate chain, PEM (leaf first).
    #[arg(long, value_name = "PEM")]
    cert: PathBuf,
    /// TLS private key, PEM.
    #[arg(long, value_name = "PEM")]
    key: PathBuf,
    /// The WireGuard UDP endpoint, e.g. 0.0.0.0:51820 (port 0: any).
    #[arg(long, value_name = "UDPADDR")]
    wg_listen: SocketAddr,
    /// File holding the relay's WireGuard private key (base64, as `wg
    /// genkey` writes it). Without it, a new key per start: clients pick
    /// it up when they resume.
    #[arg(long, value_name = "FILE")]
    wg_key_file: Option<PathBuf>,
    /// The WireGuard endpoint told to clients, HOST:PORT [default: the
    /// public host and the bound UDP port].
    #[arg(long, value_name = "HOST:PORT")]
    wg_endpoint: Option<String>,
    /// The tunnel network; its first address is the relay's, clients get
    /// the others.
    #[arg(long, value_name = "CIDR", default_value = "10.0.0.0/24")]
    network: TunnelNetwork,
    /// The host people reach public forwards at (`forwards[].public`).
    #[arg(long, value_name = "HOST")]
    public_host: String,
    /// Public ports handed out, one per shared port: LO-HI.
    #[arg(long, value_name = "LO-HI")]
    forward_ports: PortRange,
    /// The address public forwards listen on.
    #[arg(long, value_name = "IP", default_value = "0.0.0.0")]
    forward_bind: IpAddr,
    /// HS256: file holding the shared secret (at least 32 bytes).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "jwt_public_key",
        conflicts_with = "jwt_public_key"
    )]
    jwt_secret_file: Option<PathBuf>,
    /// RS256 / ES256 / EdDSA: the public key (PEM); its type pins the
    /// algorithm.
    #[arg(long, value_name = "PEM")]
    jwt_public_key: Option<PathBuf>,
    /// Required `iss` claim.
    #[arg(long, value_name = "S")]
    jwt_issuer: Option<String>,
    /// Required `aud` claim.
    #[arg(long, value_name = "S")]
    jwt_audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "5s")]
    jwt_leeway: Duration,
    /// Share the tunnel registry through Redis (redis://HOST:PORT/DB), so
    /// several relays behind a load balancer know every tunnel.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// A tunnel without heartbeats stays live this long.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "120s")]
    lease: Duration,
    /// After its lease, a tunnel stays resumable this long.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "10m")]
    resume_window: Duration,
    /// Sign-in attempts per source address per minute.
    #[arg(long, value_name = "N", default_value_t = 5)]
    auth_per_minute: u32,
    /// Tunnel creations per account (`sub`) per hour.
    #[arg(long, value_name = "N", default_value_t = 10)]
    tunnels_per_hour: u32,
    /// Minimum time between a tunnel's heartbeats.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "30s")]
    heartbeat_interval: Duration,
    /// Longest control line, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = proto_relay::DEFAULT_MAX_LINE)]
    max_line: usize,
    /// From a control connection to its successful sign-in.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "10s")]
    auth_timeout: Duration,
    /// Ports per tunnel.
    #[arg(long, value_name = "N", default_value_t = 16)]
    max_ports: usize,
    /// Control connections at once.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_control_connections)]
    max_connections: usize,
    /// Control connections in TLS or before sign-in; when full, the one
    /// that progressed least recently is closed.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_pending)]
    max_pending: usize,
    /// Control connections from one address (IPv6: one /64).
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_per_source)]
    max_per_source: usize,
    /// Connections through one public forward at once.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_forward_connections)]
    max_forward_connections: usize,
    /// How long a tunnel whose control connection ended keeps its
    /// WireGuard peer and forwards for the client to resume.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "120s")]
    detach_grace: Duration,
}

fn per(count: u32, period: Duration, what: &str) -> anyhow::Result<RateQuota> {
    let count = NonZeroU32::new(count).with_context(|| format!("{what} must be at least 1"))?;
    Ok(RateQuota::new(count, period))
}

impl Args {
    fn into_config(self) -> anyhow::Result<Config> {
        let verifier = match (&self.jwt_secret_file, &self.jwt_public_key) {
            (Some(file), None) => TokenVerifier::from_secret_file(file)
                .with_context(|| format!("the JWT secret file {}", file.display()))?,
            (None, Some(file)) => {
                let pem = std::fs::read(file)
                    .with_context(|| format!("reading the JWT public key {}", file.display()))?;
                TokenVerifier::from_public_key_pem(&pem)
                    .with_context(|| format!("the JWT public key {}", file.display()))?
            }
            _ => bail!("give exactly one of --jwt-secret-file and --jwt-public-key"),
        };
        let mut verifier = verifier.with_leeway(self.jwt_leeway);
        if let Some(iss) = &self.jwt_issuer {
            verifier = verifier.with_issuer(iss.clone());
        }
        if let Some(aud) = &self.jwt_audience {
            verifier = verifier.with_audience(aud.clone());
        }
        let wg_key = match &self.wg_key_file {
            Some(file) => {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("reading the WireGuard key {}", file.display()))?;
                // The error never quotes the key.
                Some(
                    wg_userspace::PrivateKey::from_base64(text.trim()).map_err(|_| {
                        anyhow::anyhow!(
                            "the WireGuard key file {} does not hold a base64 32-byte key",
                            file.display()
                        )
                    })?,
                )
            }
            None => None,
        };
        let mut registry =
            RegistryConfig::new(self.network, self.forward_ports, self.public_host.clone());
        registry.lease = self.lease;
        registry.resume_window = self.resume_window;
        registry.max_ports_per_tunnel = self.max_ports;
        registry.validate().context("registry settings")?;
        let mut config = Config::new(
            self.listen,
            TlsSource::Files {
                cert: self.cert,
                key: self.key,
            },
            self.wg_listen,
            registry,
            verifier,
        );
        config.wg_key = wg_key;
        config.wg_endpoint = self.wg_endpoint;
        config.forward_bind = self.forward_bind;
        config.backend = match self.redis {
            Some(url) => RegistryBackend::Redis(url),
            None => RegistryBackend::Memory,
        };
        config.rate_limits = LimitsConfig {
            auth: per(
                self.auth_per_minute,
                Duration::from_secs(60),
                "--auth-per-minute",
            )?,
            creation: per(
                self.tunnels_per_hour,
                Duration::from_secs(3600),
                "--tunnels-per-hour",
            )?,
            ..LimitsConfig::default()
        };
        config.session.heartbeat_interval = self.heartbeat_interval;
        if self.max_line < 1024 {
            bail!("--max-line must be at least 1024 bytes (a register line is a few hundred)");
        }
        config.session.max_line = self.max_line;
        config.session.auth_timeout = self.auth_timeout;
        config.session.limits.max_ports = self.max_ports;
        config.metrics_listen = self.metrics;
        config.limits = Limits {
            max_control_connections: self.max_connections,
            max_pending: self.max_pending,
            max_per_source: self.max_per_source,
            max_forward_connections: self.max_forward_connections,
            detach_grace: self.detach_grace,
            ..Limits::default()
        };
        Ok(config)
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config = args.into_config()?;
    // Handlers go in before serving so that an early signal is not lost.
    let signals = ShutdownSignals::install().context("installing signal handlers")?;
    let relay = Relay::bind(config).await.context("starting the relay")?;
    let stop = async move {
        let which = signals.wait().await;
        info!(signal = which, "shutdown requested");
    };
    relay.run(stop).await.context("serving")?;
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    relay_server::logs::init();
    server_kit::binary::run_server("relay-server", run(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse() {
        <Args as clap::CommandFactory>::command().debug_assert();
        let base = [
            "relay-server",
            "--listen",
            "127.0.0.1:0",
            "--cert",
            "c",
            "--key",
            "k",
            "--wg-listen",
            "127.0.0.1:0",
            "--public-host",
            "relay.example",
            "--forward-ports",
            "40000-40099",
        ];
        let mut with_secret = base.to_vec();
        with_secret.extend(["--jwt-secret-file", "s"]);
        let a = Args::try_parse_from(&with_secret).unwrap();
        assert_eq!(a.network.to_string(), "10.0.0.0/24");
        assert_eq!(a.forward_ports.len(), 100);
        assert!(Args::try_parse_from(base).is_err(), "a JWT key is required");
        let mut both = with_secret.clone();
        both.extend(["--jwt-public-key", "p"]);
        assert!(Args::try_parse_from(&both).is_err(), "one JWT key only");
        let mut bad = base.to_vec();
        bad.extend(["--jwt-secret-file", "s", "--forward-ports", "9-1"]);
        assert!(Args::try_parse_from(&bad).is_err());
    }
}
