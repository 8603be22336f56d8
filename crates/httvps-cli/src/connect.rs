//! `httvps connect`, and the supervision loop `demo` shares.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use app::Profile;
use engine::control::{ControlServer, default_control_file};
use engine::{Engine, EngineEvent, SessionState, StartOptions};
use httvps_client::profile::DEVICE_TOKEN;
use httvps_client::{HttvpsProfile, HttvpsTransport, launch};
use local_proxy::ProxyConfig;
use net::Secret;
use profiles::{KeyringStore, ProfileStore, ProfilesFile, SecretKind, SecretStore, account};
use tokio::sync::broadcast::error::RecvError;

use crate::args::{ConnectArgs, Global, ServerArgs};
use crate::failure::MissingSecret;
use crate::output::{describe_state, print_event};

pub async fn run(global: &Global, args: ConnectArgs) -> anyhow::Result<ExitCode> {
    let store = profile_store(global)?;
    let (mut profile, saved) = match &args.profile {
        Some(name) => (httvps(load(&store)?.pick(Some(name))?)?.clone(), true),
        None if args.server.gateway.is_none() && args.server.backend.is_none() => {
            let file = load(&store)?;
            let profile = file.pick(None).with_context(|| {
                format!(
                    "no server given: pass --gateway URL or --backend URL --device-id ID, or save a profile with `httvps login` ({})",
                    store.path().display()
                )
            })?;
            (httvps(profile)?.clone(), true)
        }
        None => (profile_from_args("command-line", &args.server)?, false),
    };
    // The one flag that also overrides a saved profile for this run.
    if let Some(optimistic) = args.server.optimistic_open {
        profile.optimistic_open = optimistic;
    }
    let secrets = KeyringStore::with_service(&global.keyring_service);
    let transport = transport_for(
        &profile,
        saved.then_some(&secrets as &dyn SecretStore),
        args.token_stdin,
    )?;
    let proxy = proxy_config(&profile, saved.then_some(&secrets as &dyn SecretStore))?;
    let options = launch::start_options(&profile, transport, proxy, args.reconnect);
    supervise(global, options, args.json, None).await
}

pub fn profile_store(global: &Global) -> anyhow::Result<ProfileStore> {
    Ok(match &global.config {
        Some(path) => ProfileStore::at(path),
        None => ProfileStore::default_location()?,
    })
}

/// The profiles file (every protocol's profiles; this command uses the
/// HTTVPS ones).
pub fn load(store: &ProfileStore) -> anyhow::Result<ProfilesFile<Profile>> {
    Ok(store.load()?)
}

/// The HTTVPS settings of a profile, or why this command cannot use it.
pub fn httvps(profile: &Profile) -> anyhow::Result<&HttvpsProfile> {
    match profile {
        Profile::Httvps(p) => Ok(p),
        other => bail!(
            "profile {:?} is a {} profile; the `httvps` command connects HTTVPS profiles (use the desktop app)",
            other.name(),
            other.protocol().title()
        ),
    }
}

/// A profile made from command-line flags.
pub fn profile_from_args(name: &str, server: &ServerArgs) -> anyhow::Result<HttvpsProfile> {
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
    profile.server()?;
    Ok(profile)
}

fn absolute(path: PathBuf) -> PathBuf {
    std::fs::canonicalize(&path).unwrap_or(path)
}

/// The name sent in `hello`.
const CLIENT_NAME: &str = concat!("httvps-cli/", env!("CARGO_PKG_VERSION"));

/// Finds a secret: stdin when asked, else the keychain (saved profiles), else
/// the environment variable.
fn resolve_secret(
    profile: &HttvpsProfile,
    kind: SecretKind,
    keychain: Option<&dyn SecretStore>,
    from_stdin: bool,
    env_var: &str,
) -> anyhow::Result<Secret> {
    if from_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the token from standard input")?;
        let token = text.trim();
        if token.is_empty() {
            bail!("standard input held no token");
        }
        return Ok(Secret::new(token));
    }
    if let Some(store) = keychain {
        match store.get(&account(&profile.name, kind)) {
            Ok(Some(secret)) => return Ok(secret),
            Ok(None) => {}
            Err(e) => tracing::warn!("{e}; trying {env_var}"),
        }
    }
    match std::env::var(env_var) {
        Ok(value) if !value.trim().is_empty() => Ok(Secret::new(value.trim())),
        _ => Err(MissingSecret(format!(
            "no token for profile {:?}: run `httvps login --profile {}`, set {env_var}, or pass --token-stdin",
            profile.name, profile.name
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
    let token = resolve_secret(profile, kind, keychain, token_stdin, env_var)?;
    Ok(launch::transport(profile, token, CLIENT_NAME)?)
}

/// The local proxy settings for a profile.
fn proxy_config(
    profile: &HttvpsProfile,
    keychain: Option<&dyn SecretStore>,
) -> anyhow::Result<ProxyConfig> {
    let password = match &profile.proxy_username {
        None => None,
        Some(_) => Some(
            resolve_secret(
                profile,
                SecretKind::PROXY_PASSWORD,
                keychain,
                false,
                "HTTVPS_PROXY_PASSWORD",
            )
            .context("the local proxy has a user name but no password")?,
        ),
    };
    Ok(launch::proxy_config(profile, password)?)
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
) -> anyhow::Result<ExitCode> {
    let engine = Engine::new();
    let mut events = engine.subscribe();
    let proxy_addr = engine.start(options).await?;
    let control_file = global
        .control_file
        .clone()
        .unwrap_or_else(default_control_file);
    let _control = match ControlServer::start(engine.clone(), &control_file).await {
        Ok(server) => Some(server),
        Err(e) => {
            tracing::warn!("`httvps status` will not work: {e}");
            None
        }
    };
    let extra = banner.map(|b| b(proxy_addr));
    if json {
        // Scripts learn the bound address (with --listen …:0) from this line.
        let data =
            serde_json::json!({ "proxy": proxy_addr.to_string(), "control_file": control_file });
        println!(
            "{}",
            serde_json::json!({ "type": "listening", "data": data })
        );
        if let Some((_, data)) = extra {
            println!("{}", serde_json::json!({ "type": "demo", "data": data }));
        }
    } else {
        println!("local proxy on {proxy_addr} (SOCKS5 and HTTP)");
        if let Some((text, _)) = extra {
            println!("{text}");
        }
    }
    // Streams created once: a signal that arrives while an event is being
    // printed is kept for the next turn (a fresh `ctrl_c()` per turn would
    // miss it).
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let code = loop {
        let event = tokio::select! {
            _ = interrupt.recv() => break ExitCode::SUCCESS,
            _ = terminate.recv() => break ExitCode::SUCCESS,
            event = events.recv() => event,
        };
        match event {
            Ok(event) => {
                print_event(&event, json);
                if let EngineEvent::State(SessionState::Disconnected { reason }) = &event {
                    break if reason.is_some() {
                        ExitCode::FAILURE
                    } else {
                        ExitCode::SUCCESS
                    };
                }
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "event printer lagged");
                if let SessionState::Disconnected { reason } = engine.state() {
                    if !json {
                        println!(
                            "{}",
                            describe_state(&SessionState::Disconnected {
                                reason: reason.clone()
                            })
                        );
                    }
                    break if reason.is_some() {
                        ExitCode::FAILURE
                    } else {
                        ExitCode::SUCCESS
                    };
                }
            }
            Err(RecvError::Closed) => break ExitCode::SUCCESS,
        }
    };
    engine.stop().await;
    Ok(code)
}
