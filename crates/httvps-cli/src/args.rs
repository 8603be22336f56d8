//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use httvps_client::Transport;

/// A tunnel client: a local SOCKS5/HTTP proxy whose connections travel through
/// an HTTVPS gateway (JSON frames over TLS WebSocket) or an HT server
/// (chunked HTTP, with UDP and DNS).
///
/// Secrets are never taken from the command line: they come from the OS
/// keychain (`httvps login`), standard input, or an environment variable.
#[derive(Debug, Parser)]
#[command(name = "httvps", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// The profiles file [default: the platform config dir, e.g. ~/.config/httvps/profiles.toml].
    #[arg(long, global = true, env = "HTTVPS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where a running instance publishes its control endpoint (address and
    /// bearer token, mode 0600) [default: $XDG_RUNTIME_DIR/httvps/control.json,
    /// or without a runtime directory ~/.local/state/httvps/control.json].
    #[arg(long, global = true, env = "HTTVPS_CONTROL_FILE", value_name = "FILE")]
    pub control_file: Option<PathBuf>,
    /// Keychain service name the secrets are filed under.
    #[arg(
        long,
        global = true,
        env = "HTTVPS_KEYRING_SERVICE",
        default_value = "httvps",
        hide = true
    )]
    pub keyring_service: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Connect and run the local proxy until Ctrl-C, printing state changes.
    Connect(ConnectArgs),
    /// Start an embedded gateway on loopback plus the client: a working tunnel
    /// with no server and no configuration.
    Demo(DemoArgs),
    /// Publish a local web app through an HLHV queen until Ctrl-C, printing
    /// each request it serves.
    Publish(PublishArgs),
    /// Share local TCP ports through a relay (WireGuard, no root) until
    /// Ctrl-C, printing the tunnel, its public forwards and each connection.
    Share(ShareArgs),
    /// Save a profile and store its secret (session or device token, HT key) in the OS keychain.
    Login(LoginArgs),
    /// Print a saved profile's share link (docs/links.md), without its
    /// secret unless --with-secret; `httvps login --link` adds it elsewhere.
    Link(LinkArgs),
    /// Delete a profile's secrets from the keychain (and, with --forget, the profile).
    Logout(LogoutArgs),
    /// List the saved profiles.
    Profiles,
    /// Show the state of the running instance.
    Status(StatusArgs),
    /// Show the live stream table of the running instance (or close one
    /// of its connections with --close KEY).
    Streams(StreamsArgs),
}

/// Where the server is and how to trust it (command-line profile).
#[derive(Debug, Args, Clone, Default)]
pub struct ServerArgs {
    /// Gateway URL (wss://HOST:PORT/ws); the session token comes from the
    /// keychain, --token-stdin, or HTTVPS_SESSION_TOKEN.
    #[arg(long, value_name = "URL", conflicts_with_all = ["backend", "device_id", "ht"])]
    pub gateway: Option<String>,
    /// HT server URL (https://HOST:PORT; plain http:// works, with a
    /// warning): the chunked-HTTP tunnel, which also carries UDP and DNS.
    /// The key (64 hex characters) comes from the keychain, --token-stdin,
    /// or HTTVPS_HT_KEY.
    #[arg(long, value_name = "URL", conflicts_with_all = ["backend", "device_id", "optimistic_open", "transport"])]
    pub ht: Option<String>,
    /// HT: transport connections per session [default: 4].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64),
          conflicts_with_all = ["gateway", "backend"])]
    pub connections: Option<u16>,
    /// Control-plane URL (https://…); the device token comes from the keychain,
    /// --token-stdin, or HTTVPS_DEVICE_TOKEN.
    #[arg(long, value_name = "URL", requires = "device_id")]
    pub backend: Option<String>,
    /// Device id for the control plane.
    #[arg(long, value_name = "ID", requires = "backend")]
    pub device_id: Option<String>,
    /// Preferred region for the control plane.
    #[arg(long)]
    pub region: Option<String>,
    /// Extra CA certificate(s) to trust, PEM.
    #[arg(long, value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// Pin the gateway certificate: hex SHA-256 of its SubjectPublicKeyInfo.
    #[arg(long, value_name = "HEX")]
    pub pin: Option<String>,
    /// TLS server name, when it differs from the URL's host.
    #[arg(long, value_name = "NAME")]
    pub sni: Option<String>,
    /// Local proxy address (SOCKS5 and HTTP on one port) [default: 127.0.0.1:1080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Require this user name on the local proxy; the password comes from the
    /// keychain or HTTVPS_PROXY_PASSWORD.
    #[arg(long, value_name = "NAME")]
    pub proxy_user: Option<String>,
    /// Answer applications before the gateway confirms each new stream: one
    /// round trip faster per connection, like ss-local, but an unreachable
    /// target shows as a closed connection instead of a proxy error.
    /// `--optimistic-open=false` turns a saved profile's setting off.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true")]
    pub optimistic_open: Option<bool>,
    /// What carries the tunnel: h1 (WebSocket over HTTP/1.1: TLS, TCP), h3
    /// (over HTTP/3: QUIC, UDP to the URL's port; RFC 9220) or auto (HTTP/3,
    /// falling back to HTTP/1.1 within about a second when UDP is blocked,
    /// and remembering that for the gateway for 10 minutes) [default: h1].
    #[arg(long, value_name = "h1|h3|auto", value_parser = parse_transport)]
    pub transport: Option<Transport>,
}

/// `--transport`'s value, spelled as in the profiles file.
fn parse_transport(value: &str) -> Result<Transport, String> {
    value.parse()
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Use a saved profile (see `httvps profiles`).
    #[arg(long, short = 'p', conflicts_with_all = ["gateway", "backend", "ht"])]
    pub profile: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Read the secret (session token, device token or HT key) from
    /// standard input.
    #[arg(long, alias = "key-stdin")]
    pub token_stdin: bool,
    /// Also serve plain DNS here (UDP and TCP, e.g. 127.0.0.1:5353),
    /// answered by the server through the tunnel: A, AAAA and PTR. Needs a
    /// tunnel that resolves names (HT).
    #[arg(long, value_name = "ADDR")]
    pub dns_listen: Option<SocketAddr>,
    /// Keep retrying when the first connect fails (a lost session is always
    /// retried; refused credentials never are).
    #[arg(long)]
    pub reconnect: bool,
    /// Never give up: after the 10 reconnect attempts, keep trying every
    /// 30 s (for a machine left unattended; refused credentials still stop).
    #[arg(long)]
    pub keep_trying: bool,
    /// Routing rules for this run, from a TOML file (`default = "tunnel"`
    /// and a `rules` list; docs/routing.md), instead of the profile's.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Print events as JSON lines on stdout, for scripts.
    #[arg(long)]
    pub json: bool,
}

/// Where an HLHV cell publishes what (command-line profile).
#[derive(Debug, Args, Clone, Default)]
pub struct CellArgs {
    /// The queen's cell port, HOST:PORT (port 2001 when absent); the cell
    /// key comes from the keychain, --key-stdin, or HTTVPS_CELL_KEY.
    #[arg(long, value_name = "HOST:PORT", requires_all = ["mount", "to"])]
    pub queen: Option<String>,
    /// Where to publish, HOST/PATH (e.g. demo.example/app/; a path ending
    /// in / takes everything below it).
    #[arg(long, value_name = "HOST/PATH")]
    pub mount: Option<String>,
    /// The local web app, http://127.0.0.1:PORT.
    #[arg(long, value_name = "URL")]
    pub to: Option<String>,
    /// The largest request body passed to the local app, in bytes (larger
    /// requests get 413) [default: 8 MiB].
    #[arg(long, value_name = "BYTES")]
    pub max_body: Option<u64>,
    /// The public URL to show, when it is not https://HOST/PATH.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Use a saved HLHV profile (see `httvps profiles`).
    #[arg(long, short = 'p', conflicts_with = "queen")]
    pub profile: Option<String>,
    #[command(flatten)]
    pub cell: CellArgs,
    /// Extra CA certificate(s) to trust for the queen, PEM.
    #[arg(long, value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// Pin the queen's certificate: hex SHA-256 of its SubjectPublicKeyInfo.
    #[arg(long, value_name = "HEX")]
    pub pin: Option<String>,
    /// TLS server name, when it differs from the queen's host.
    #[arg(long, value_name = "NAME")]
    pub sni: Option<String>,
    /// Read the cell key from standard input.
    #[arg(long, alias = "token-stdin")]
    pub key_stdin: bool,
    /// Keep retrying when the first connect fails (a lost leash is always
    /// retried; a refused key never is).
    #[arg(long)]
    pub reconnect: bool,
    /// Print events as JSON lines on stdout, for scripts.
    #[arg(long)]
    pub json: bool,
}

/// What a Relay share publishes where (command-line profile).
#[derive(Debug, Args, Clone, Default)]
pub struct RelayArgs {
    /// The relay's control channel, HOST[:PORT] (port 443 when absent); the
    /// JWT comes from the keychain, --token-stdin or HTTVPS_RELAY_TOKEN,
    /// never the command line.
    #[arg(long, value_name = "HOST:PORT", requires_all = ["name", "ports"])]
    pub relay: Option<String>,
    /// The tunnel's name at the relay (A-Z a-z 0-9 . _ -).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// A local TCP port to share (repeatable), reached at 127.0.0.1:PORT.
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,
}

#[derive(Debug, Args)]
pub struct ShareArgs {
    /// Use a saved Relay profile (see `httvps profiles`).
    #[arg(long, short = 'p', conflicts_with = "relay")]
    pub profile: Option<String>,
    #[command(flatten)]
    pub relay: RelayArgs,
    /// Extra CA certificate(s) to trust for the relay, PEM.
    #[arg(long, value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// Pin the relay's certificate: hex SHA-256 of its SubjectPublicKeyInfo.
    #[arg(long, value_name = "HEX")]
    pub pin: Option<String>,
    /// TLS server name, when it differs from the relay's host.
    #[arg(long, value_name = "NAME")]
    pub sni: Option<String>,
    /// Read the JWT from standard input.
    #[arg(long)]
    pub token_stdin: bool,
    /// Print events as JSON lines on stdout, for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Local proxy address [default: 127.0.0.1:1080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Demonstrate HT instead of HTTVPS: an embedded ht-server, with UDP
    /// and DNS through the tunnel as well.
    #[arg(long)]
    pub ht: bool,
    /// Also serve DNS here through the tunnel (with --ht), e.g. 127.0.0.1:5353.
    #[arg(long, value_name = "ADDR", requires = "ht")]
    pub dns_listen: Option<SocketAddr>,
    /// Demonstrate publishing instead: an embedded HLHV queen on loopback
    /// and a cell publishing a local page through it.
    #[arg(long, conflicts_with_all = ["ht", "listen"])]
    pub publish: bool,
    /// Demonstrate sharing instead: an embedded relay on loopback and a
    /// local page's port shared through it.
    #[arg(long, conflicts_with_all = ["ht", "listen", "publish"])]
    pub share: bool,
    /// Print events as JSON lines on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The profile to create or update (with --link: the name to save the
    /// link's profile under, instead of the link's own).
    #[arg(long, short = 'p', required_unless_present = "link")]
    pub profile: Option<String>,
    /// Create or update the profile from a share link (docs/links.md); `-`
    /// reads the link from standard input. A link carrying its secret is
    /// refused on the command line, where other users see it (ps): use `-`.
    #[arg(
        long,
        value_name = "URL|-",
        conflicts_with_all = ["gateway", "backend", "ht", "queen", "relay", "proxy_password"]
    )]
    pub link: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
    /// An HLHV profile (with --mount and --to; --ca, --pin and --sni apply
    /// to the queen).
    #[command(flatten)]
    pub cell: CellArgs,
    /// A Relay profile (with --name and --port; --ca, --pin and --sni
    /// apply to the relay).
    #[command(flatten)]
    pub relay: RelayArgs,
    /// Also set the local proxy password (asked after the token).
    #[arg(long)]
    pub proxy_password: bool,
}

#[derive(Debug, Args)]
pub struct LinkArgs {
    /// The saved profile to share.
    #[arg(long, short = 'p')]
    pub profile: String,
    /// Put the profile's secret (from the keychain) in the link: whoever
    /// has the link can then sign in as you.
    #[arg(long)]
    pub with_secret: bool,
    /// Also print the link as a QR code, for a phone or another computer's
    /// camera.
    #[arg(long)]
    pub qr: bool,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The profile.
    #[arg(long, short = 'p')]
    pub profile: String,
    /// Also delete the profile itself.
    #[arg(long)]
    pub forget: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StreamsArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Close the connection of this row (the KEY column) instead: both of
    /// its ends are dropped and the row closes as "closed from the app".
    #[arg(long, value_name = "KEY")]
    pub close: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("httvps").chain(args.iter().copied()))
    }

    fn server_of(cli: Cli) -> ServerArgs {
        match cli.command {
            Command::Connect(args) => args.server,
            Command::Login(args) => args.server,
            other => panic!("not connect or login: {other:?}"),
        }
    }

    #[test]
    fn streams_closes_one_row_by_its_key() {
        let Command::Streams(args) = parse(&["streams", "--close", "42"]).unwrap().command else {
            panic!("not streams")
        };
        assert_eq!((args.close, args.json), (Some(42), false));
        let Command::Streams(args) = parse(&["streams", "--json"]).unwrap().command else {
            panic!("not streams")
        };
        assert_eq!((args.close, args.json), (None, true));
        assert!(
            parse(&["streams", "--close", "s1"]).is_err(),
            "a row key, not a stream id"
        );
    }

    #[test]
    fn connect_and_login_take_a_transport() {
        let gw = ["--gateway", "wss://gw.example/ws"];
        for (flag, want) in [
            ("h1", Transport::H1),
            ("h3", Transport::H3),
            ("auto", Transport::Auto),
            ("H3", Transport::H3),
        ] {
            let connect = parse(&[&["connect"], &gw[..], &["--transport", flag]].concat()).unwrap();
            assert_eq!(server_of(connect).transport, Some(want), "{flag}");
            let login =
                parse(&[&["login", "-p", "w"], &gw[..], &["--transport", flag]].concat()).unwrap();
            assert_eq!(server_of(login).transport, Some(want), "{flag}");
        }
        let plain = parse(&[&["connect"], &gw[..]].concat()).unwrap();
        assert_eq!(server_of(plain).transport, None, "absent: the profile's");
        // A saved profile's transport can be overridden for one run.
        let saved = parse(&["connect", "--profile", "work", "--transport=auto"]).unwrap();
        assert_eq!(server_of(saved).transport, Some(Transport::Auto));
    }

    #[test]
    fn share_takes_a_relay_with_its_name_and_ports_or_a_profile() {
        let ok = parse(&[
            "share",
            "--relay",
            "r.example",
            "--name",
            "desk",
            "--port",
            "22",
            "--port",
            "3389",
        ])
        .unwrap();
        let Command::Share(args) = ok.command else {
            panic!("not share")
        };
        assert_eq!(args.relay.ports, [22, 3389]);
        assert!(
            parse(&["share", "--relay", "r.example", "--port", "22"]).is_err(),
            "--name is required"
        );
        assert!(
            parse(&["share", "--relay", "r.example", "--name", "d"]).is_err(),
            "a port is required"
        );
        assert!(parse(&["share", "-p", "office"]).is_ok());
        let both = parse(&[
            "share", "-p", "office", "--relay", "r", "--name", "d", "--port", "1",
        ]);
        assert_eq!(
            both.unwrap_err().kind(),
            clap::error::ErrorKind::ArgumentConflict
        );
        let login = parse(&[
            "login",
            "-p",
            "office",
            "--relay",
            "r.example",
            "--name",
            "desk",
            "--port",
            "22",
        ])
        .unwrap();
        let Command::Login(args) = login.command else {
            panic!("not login")
        };
        assert_eq!(args.relay.name.as_deref(), Some("desk"));
    }

    #[test]
    fn a_bad_transport_is_a_clear_usage_error() {
        let err = parse(&["connect", "--gateway", "wss://gw/ws", "--transport", "h2"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        let text = err.to_string();
        assert!(text.contains("--transport"), "{text}");
        assert!(text.contains("h1, h3 or auto"), "{text}");
        // HT has no transport choice.
        let err =
            parse(&["connect", "--ht", "https://ht.example", "--transport", "h3"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }
}
