//! `httvps connect`, and the supervision loop `demo` shares.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use app::Profile;
use engine::control::{ControlServer, default_control_file};
use engine::{DnsLimits, Engine, EngineEvent, SessionState, StartOptions, Warning, WarningCode};
use ht_client::launch as ht_launch;
use ht_client::{HT_KEY, HtProfile};
use httvps_client::profile::DEVICE_TOKEN;
use httvps_client::{HttvpsProfile, HttvpsTransport, launch};
use net::Secret;
use profiles::{
    KeyringStore, ProfileError, ProfileStore, ProfilesFile, SecretKind, SecretStore, account,
};
use routing::RuleSet;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::args::{ConnectArgs, Global, ServerArgs};
use crate::failure::MissingSecret;
use crate::output::{describe_state, event_line};

pub async fn run(global: &Global, args: ConnectArgs) -> anyhow::Result<ExitCode> {
    let store = profile_store(global)?;
    let server = &args.server;
    let (profile, saved) = match &args.profile {
        Some(name) => (load(&store)?.pick(Some(name))?.clone(), true),
        None if server.gateway.is_none() && server.backend.is_none() && server.ht.is_none() => {
            let file = load(&store)?;
            let profile = file.pick(None).with_context(|| {
                format!(
                    "no server given: pass --gateway URL, --backend URL --device-id ID or --ht URL, or save a profile with `httvps login` ({})",
                    store.path().display()
                )
            })?;
            (profile.clone(), true)
        }
        None => (profile_from_args("command-line", server)?, false),
    };
    let mut profile = profile;
    if let Some(path) = &args.rules {
        let rules = load_rules(profile.name(), path)?;
        match profile.routing_mut() {
            Some(routing) => *routing = rules,
            None => bail!("--rules applies to Connect profiles (HTTVPS, HT)"),
        }
    }
    let secrets = KeyringStore::with_service(&global.keyring_service);
    let keychain = saved.then_some(&secrets as &dyn SecretStore);
    let (mut options, dns_listen) = match profile {
        Profile::Httvps(mut profile) => {
            if args.dns_listen.is_some() {
                bail!(
                    "--dns-listen needs a tunnel that resolves names: HTTVPS carries no DNS (use an HT server)"
                );
            }
            // The flags that also override a saved profile for this run.
            if let Some(optimistic) = server.optimistic_open {
                profile.optimistic_open = optimistic;
            }
            if let Some(transport) = server.transport {
                profile.transport = transport;
            }
            let transport = transport_for(&profile, keychain, args.token_stdin)?;
            let password = proxy_password(&profile.name, &profile.proxy_username, keychain)?;
            let proxy = launch::proxy_config(&profile, password)?;
            let options = launch::start_options(&profile, transport, proxy, args.reconnect);
            (options, None)
        }
        Profile::Ht(mut profile) => {
            if server.transport.is_some() {
                bail!(
                    "--transport chooses what carries an HTTVPS tunnel; profile {:?} is an HT profile",
                    profile.name
                );
            }
            if let Some(n) = server.connections {
                profile.connections = Some(usize::from(n));
            }
            let key = resolve_secret(
                &profile.name,
                HT_KEY,
                keychain,
                args.token_stdin,
                "HTTVPS_HT_KEY",
            )?;
            let transport = ht_launch::transport(&profile, key)?;
            let password = proxy_password(&profile.name, &profile.proxy_username, keychain)?;
            let proxy = ht_launch::proxy_config(&profile, password)?;
            let dns = args.dns_listen.or(profile.dns_listen);
            let options = ht_launch::start_options(&profile, transport, proxy, args.reconnect);
            (options, dns)
        }
        other => bail!(
            "profile {:?} is a {} profile, which the `httvps` command cannot connect yet (use the desktop app)",
            other.name(),
            other.protocol().title()
        ),
    };
    options.reconnect.keep_trying = args.keep_trying;
    supervise(global, options, args.json, None, dns_listen).await
}

pub fn profile_store(global: &Global) -> anyhow::Result<ProfileStore> {
    Ok(match &global.config {
        Some(path) => ProfileStore::at(path),
        None => ProfileStore::default_location()?,
    })
}

/// The profiles file (every protocol's profiles).
pub fn load(store: &ProfileStore) -> anyhow::Result<ProfilesFile<Profile>> {
    Ok(store.load()?)
}

/// Reads a `--rules` file (the `routing` table of a profile, at the top
/// level) and checks every rule, so a mistake names the file and the rule.
pub fn load_rules(profile: &str, path: &Path) -> anyhow::Result<RuleSet> {
    let invalid = |message: String| {
        ProfileError::invalid(profile, format!("--rules {}: {message}", path.display()))
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the routing rules {}", path.display()))?;
    let rules: RuleSet = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    rules.compile().map_err(|e| invalid(e.to_string()))?;
    Ok(rules)
}

/// A profile made from command-line flags: HT with `--ht`, else HTTVPS.
pub fn profile_from_args(name: &str, server: &ServerArgs) -> anyhow::Result<Profile> {
    if let Some(url) = &server.ht {
        let mut profile = HtProfile::new(name, url.clone());
        profile.ca_file = server.ca.clone().map(absolute);
        profile.pin_sha256 = server.pin.clone();
        profile.sni = server.sni.clone();
        profile.listen = server.listen;
        profile.proxy_username = server.proxy_user.clone();
        profile.connections = server.connections.map(usize::from);
        profile.server()?;
        return Ok(Profile::Ht(profile));
    }
    let mut profile = HttvpsProfile::new(name);
    profile.gateway = server.gateway.clone();
    profile.backend = server.backend.clone();
    profile.device_id = server.device_id.clone();
    profile.region = server.region.clone();
    profile.ca_file = server.ca.clone().map(absolute);
    profile.pin_sha256 = server.pin.clone();
    profile.sni = server.sni.clone();
    profile.listen = server.listen;
    profile.proxy_username = server.proxy_user.clone();
    profile.optimistic_open = server.optimistic_open.unwrap_or(false);
    profile.transport = server.transport.unwrap_or_default();
    profile.server()?;
    Ok(Profile::Httvps(profile))
}

pub fn absolute(path: PathBuf) -> PathBuf {
    std::fs::canonicalize(&path).unwrap_or(path)
}

/// The name sent in `hello`.
const CLIENT_NAME: &str = concat!("httvps-cli/", env!("CARGO_PKG_VERSION"));

/// Finds profile `name`'s secret of `kind`: stdin when asked, else the
/// keychain (saved profiles), else the environment variable.
pub fn resolve_secret(
    name: &str,
    kind: SecretKind,
    keychain: Option<&dyn SecretStore>,
    from_stdin: bool,
    env_var: &str,
) -> anyhow::Result<Secret> {
    let what = if kind == HT_KEY || kind == hlhv_cell::CELL_KEY {
        "key"
    } else {
        "token"
    };
    if from_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .with_context(|| format!("reading the {what} from standard input"))?;
        let secret = text.trim();
        if secret.is_empty() {
            bail!("standard input held no {what}");
        }
        return Ok(Secret::new(secret));
    }
    if let Some(store) = keychain {
        match store.get(&account(name, kind)) {
            Ok(Some(secret)) => return Ok(secret),
            Ok(None) => {}
            Err(e) => tracing::warn!("{e}; trying {env_var}"),
        }
    }
    match std::env::var(env_var) {
        Ok(value) if !value.trim().is_empty() => Ok(Secret::new(value.trim())),
        _ => Err(MissingSecret(format!(
            "no {what} for profile {name:?}: run `httvps login --profile {name}`, set {env_var}, or pass --token-stdin"
        ))
        .into()),
    }
}

/// The HTTVPS transport for a profile, with its secret.
pub fn transport_for(
    profile: &HttvpsProfile,
    keychain: Option<&dyn SecretStore>,
    token_stdin: bool,
) -> anyhow::Result<HttvpsTransport> {
    let kind = profile.token_kind()?;
    let env_var = if kind == DEVICE_TOKEN {
        "HTTVPS_DEVICE_TOKEN"
    } else {
        "HTTVPS_SESSION_TOKEN"
    };
    let token = resolve_secret(&profile.name, kind, keychain, token_stdin, env_var)?;
    Ok(launch::transport(profile, token, CLIENT_NAME)?)
}

/// The local proxy's password, when the profile names a proxy user.
fn proxy_password(
    name: &str,
    username: &Option<String>,
    keychain: Option<&dyn SecretStore>,
) -> anyhow::Result<Option<Secret>> {
    match username {
        None => Ok(None),
        Some(_) => Ok(Some(
            resolve_secret(
                name,
                SecretKind::PROXY_PASSWORD,
                keychain,
                false,
                "HTTVPS_PROXY_PASSWORD",
            )
            .context("the local proxy has a user name but no password")?,
        )),
    }
}

/// What the CLI prints on stderr for an engine warning: the engine's
/// sentence and how to fix it with this command's flags.
fn warning_text(warning: &Warning) -> String {
    let remedy = match warning.code {
        WarningCode::OpenProxy => format!(
            "Listen on loopback only (--listen 127.0.0.1:{}), or require a user name and password (--proxy-user NAME, the password from the keychain or HTTVPS_PROXY_PASSWORD).",
            warning.addr.port()
        ),
        WarningCode::OpenDns => format!(
            "Serve DNS on loopback only (--dns-listen 127.0.0.1:{}).",
            warning.addr.port()
        ),
    };
    format!("WARNING: {}. {remedy}", warning.message)
}

/// Extra start-up lines, given the proxy address: (text for people, JSON data).
pub type Banner = Box<dyn Fn(std::net::SocketAddr) -> (String, serde_json::Value) + Send>;

/// Runs the engine until Ctrl-C/SIGTERM, or until it gives up; prints events.
/// `banner` is printed once the proxy listens (the demo's instructions).
pub async fn supervise(
    global: &Global,
    options: StartOptions,
    json: bool,
    banner: Option<Banner>,
    dns_listen: Option<SocketAddr>,
) -> anyhow::Result<ExitCode> {
    let engine = Engine::new();
    engine.watch_system_network();
    let events = engine.subscribe();
    let proxy_addr = engine.start(options).await?;
    let dns_addr = match dns_listen {
        None => None,
        Some(listen) => match engine.serve_dns(listen, DnsLimits::default()).await {
            Ok(addr) => Some(addr),
            Err(e) => {
                engine.stop().await;
                return Err(e).context("starting the DNS server (--dns-listen)");
            }
        },
    };
    let control_file = global
        .control_file
        .clone()
        .unwrap_or_else(default_control_file);
    let _control = control_server(global, &engine).await;
    let extra = banner.map(|b| b(proxy_addr));
    // On stderr even with --json (stdout is for scripts): whoever started
    // the client must see it. The engine also logged it.
    let warnings = engine.warnings();
    for warning in &warnings {
        eprintln!("{}", warning_text(warning));
    }
    if json {
        // Scripts learn the bound address (with --listen …:0) from this line.
        let data = serde_json::json!({
            "proxy": proxy_addr.to_string(),
            "dns": dns_addr.map(|a| a.to_string()),
            "control_file": control_file,
            "warnings": warnings,
        });
        println!(
            "{}",
            serde_json::json!({ "type": "listening", "data": data })
        );
        if let Some((_, data)) = extra {
            println!("{}", serde_json::json!({ "type": "demo", "data": data }));
        }
    } else {
        println!("local proxy on {proxy_addr} (SOCKS5 and HTTP)");
        if let Some(dns) = dns_addr {
            println!("DNS on {dns} (UDP and TCP), answered through the tunnel");
        }
        if let Some((text, _)) = extra {
            println!("{text}");
        }
    }
    let code = follow(&engine, events, json).await;
    engine.stop().await;
    code
}

/// Starts the control endpoint `httvps status` talks to (a warning when it
/// cannot).
pub async fn control_server(global: &Global, engine: &Engine) -> Option<ControlServer> {
    let control_file = global
        .control_file
        .clone()
        .unwrap_or_else(default_control_file);
    match ControlServer::start(engine.clone(), &control_file).await {
        Ok(server) => Some(server),
        Err(e) => {
            tracing::warn!("`httvps status` will not work: {e}");
            None
        }
    }
}

/// How long the event printer lets a burst of events gather before it
/// prints them in one write. Without it every stream woke the printer (the
/// thread that runs `main`) twice, each a futex wake and a context switch:
/// over 100 sequential fetches through new streams the client made 414
/// futex calls and 206 writes before, 142 and 107 after (strace), and the
/// median fetch took ~5 % less. The first event after a quiet spell is
/// printed at once.
const PRINT_BATCH: Duration = Duration::from_millis(10);

/// Prints the engine's events until Ctrl-C/SIGTERM, or until it gives up
/// (then the exit code says whether it ended on an error).
pub async fn follow(
    engine: &Engine,
    mut events: tokio::sync::broadcast::Receiver<EngineEvent>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    // Streams created once: a signal that arrives while an event is being
    // printed is kept for the next turn (a fresh `ctrl_c()` per turn would
    // miss it).
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut printer = Printer::new(json);
    loop {
        let first = tokio::select! {
            _ = interrupt.recv() => return Ok(ExitCode::SUCCESS),
            _ = terminate.recv() => return Ok(ExitCode::SUCCESS),
            event = events.recv() => event,
        };
        if let Some(code) = printer.take(engine, first) {
            printer.flush();
            return Ok(code);
        }
        printer.flush();
        tokio::select! {
            _ = interrupt.recv() => return Ok(ExitCode::SUCCESS),
            _ = terminate.recv() => return Ok(ExitCode::SUCCESS),
            () = tokio::time::sleep(PRINT_BATCH) => {}
        }
        let ended = loop {
            let received = match events.try_recv() {
                Err(TryRecvError::Empty) => break None,
                Ok(event) => Ok(event),
                Err(TryRecvError::Lagged(missed)) => Err(RecvError::Lagged(missed)),
                Err(TryRecvError::Closed) => Err(RecvError::Closed),
            };
            if let Some(code) = printer.take(engine, received) {
                break Some(code);
            }
        };
        printer.flush();
        if let Some(code) = ended {
            return Ok(code);
        }
    }
}

/// The lines of a batch of events, written to stdout at once.
struct Printer {
    json: bool,
    pending: String,
}

impl Printer {
    fn new(json: bool) -> Printer {
        Printer {
            json,
            pending: String::new(),
        }
    }

    fn line(&mut self, line: &str) {
        self.pending.push_str(line);
        self.pending.push('\n');
    }

    /// Adds what `received` prints; the exit code once the engine gave up
    /// or ended.
    fn take(
        &mut self,
        engine: &Engine,
        received: Result<EngineEvent, RecvError>,
    ) -> Option<ExitCode> {
        let exit = |reason: &Option<String>| {
            Some(if reason.is_some() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        };
        match received {
            Ok(event) => {
                if let Some(line) = event_line(&event, self.json) {
                    self.line(&line);
                }
                match &event {
                    EngineEvent::State(SessionState::Disconnected { reason }) => exit(reason),
                    _ => None,
                }
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "event printer lagged");
                let SessionState::Disconnected { reason } = engine.state() else {
                    return None;
                };
                if !self.json {
                    let state = SessionState::Disconnected {
                        reason: reason.clone(),
                    };
                    self.line(&describe_state(&state));
                }
                exit(&reason)
            }
            Err(RecvError::Closed) => Some(ExitCode::SUCCESS),
        }
    }

    /// Writes the batch; a closed stdout is not an error worth dying for.
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(self.pending.as_bytes());
        let _ = out.flush();
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transport_flag_goes_into_the_profile() {
        use httvps_client::Transport;
        let mut server = ServerArgs {
            gateway: Some("wss://gw.example/ws".into()),
            ..ServerArgs::default()
        };
        let transport = |server: &ServerArgs| match profile_from_args("t", server).unwrap() {
            Profile::Httvps(p) => p.transport,
            other => panic!("not HTTVPS: {other:?}"),
        };
        assert_eq!(transport(&server), Transport::H1, "the default");
        server.transport = Some(Transport::H3);
        assert_eq!(transport(&server), Transport::H3);
        server.transport = Some(Transport::Auto);
        assert_eq!(transport(&server), Transport::Auto);
    }

    #[test]
    fn a_batch_keeps_every_line_in_order_and_ends_on_disconnected() {
        let engine = Engine::new();
        let mut printer = Printer::new(false);
        let error = EngineEvent::Error {
            code: net::ErrorCode::ConfigError,
            message: "first".into(),
        };
        assert_eq!(printer.take(&engine, Ok(error)), None);
        let gone = SessionState::Disconnected {
            reason: Some("gateway unreachable".into()),
        };
        let code = printer.take(&engine, Ok(EngineEvent::State(gone)));
        assert_eq!(code, Some(ExitCode::FAILURE), "a reason means failure");
        assert_eq!(
            printer.pending,
            "! config_error: first\n✗ disconnected: gateway unreachable\n"
        );
        // Events lost to a lag: the engine's own state says whether it ended
        // (a stopped engine, here, ends the run on a line of its own).
        printer.pending.clear();
        let code = printer.take(&engine, Err(RecvError::Lagged(3)));
        assert_eq!(code, Some(ExitCode::SUCCESS));
        assert_eq!(printer.pending, "✗ disconnected\n");
        let mut json = Printer::new(true);
        let ended = SessionState::Disconnected { reason: None };
        let code = json.take(&engine, Ok(EngineEvent::State(ended)));
        assert_eq!(code, Some(ExitCode::SUCCESS));
        assert!(json.pending.starts_with('{') && json.pending.ends_with("}\n"));
    }

    #[test]
    fn warnings_name_the_address_and_the_flags_that_fix_them() {
        let text = warning_text(&Warning::open_proxy("0.0.0.0:1080".parse().unwrap()));
        assert!(
            text.starts_with("WARNING: the local proxy listens on 0.0.0.0:1080"),
            "{text}"
        );
        assert!(text.contains("anyone who can reach this address can use your tunnel"));
        assert!(text.contains("--listen 127.0.0.1:1080") && text.contains("--proxy-user"));
        let text = warning_text(&Warning::open_dns("[::]:53".parse().unwrap()));
        assert!(text.contains("--dns-listen 127.0.0.1:53"), "{text}");
    }
}
