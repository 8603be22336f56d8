//! `httvps login`, `logout` and `profiles`: profiles in the settings file,
//! secrets in the OS keychain.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use anyhow::{Context, bail};
use app::Profile;
use hlhv_cell::CELL_KEY;
use ht_client::HT_KEY;
use httvps_client::profile::{DEVICE_TOKEN, SESSION_TOKEN, ServerSpec};
use httvps_client::{HttvpsProfile, Transport};
use net::Secret;
use profiles::{KeyringStore, SecretKind, SecretStore, account};
use relay_client::RELAY_TOKEN;

use crate::args::{Global, LoginArgs, LogoutArgs, ServerArgs};
use crate::connect::{absolute, load, profile_from_args, profile_store};
use crate::publish::cell_profile;
use crate::share::relay_profile;

/// Reads one secret: a hidden prompt on a terminal, else a line of stdin.
pub fn read_secret(prompt: &str) -> anyhow::Result<Secret> {
    let text = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(prompt).context("reading from the terminal")?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading standard input")?;
        line
    };
    let text = text.trim();
    if text.is_empty() {
        bail!("no secret given");
    }
    Ok(Secret::new(text))
}

/// What `login` asks for, by the secret's kind.
pub fn prompt_for(kind: SecretKind) -> &'static str {
    match kind {
        SESSION_TOKEN => "Session token: ",
        DEVICE_TOKEN => "Device token: ",
        CELL_KEY => "Cell key: ",
        RELAY_TOKEN => "Relay token (JWT): ",
        _ => "HT key (64 hex characters): ",
    }
}

pub fn login(global: &Global, args: LoginArgs) -> anyhow::Result<ExitCode> {
    if let Some(link) = &args.link {
        return crate::link::login(global, link, args.profile.as_deref());
    }
    let name = args
        .profile
        .clone()
        .context("--profile NAME is required (or --link URL)")?;
    let store = profile_store(global)?;
    let mut file = load(&store)?;
    let server = &args.server;
    let outbound = server.gateway.is_some() || server.backend.is_some() || server.ht.is_some();
    let mut profile = if args.cell.queen.is_some() {
        if outbound || args.relay.relay.is_some() {
            bail!(
                "--queen makes an HLHV profile; it cannot take --gateway, --backend, --ht or --relay"
            );
        }
        let mut cell = cell_profile(&name, &args.cell)?;
        cell.ca_file = server.ca.clone().map(absolute);
        cell.pin_sha256 = server.pin.clone();
        cell.sni = server.sni.clone();
        Profile::Hlhv(cell)
    } else if args.relay.relay.is_some() {
        if outbound {
            bail!("--relay makes a Relay profile; it cannot take --gateway, --backend or --ht");
        }
        let mut relay = relay_profile(&name, &args.relay)?;
        relay.ca_file = server.ca.clone().map(absolute);
        relay.pin_sha256 = server.pin.clone();
        relay.sni = server.sni.clone();
        relay.check()?;
        Profile::Relay(relay)
    } else {
        profile_from_args(&name, &args.server).context(
            "a profile needs --gateway URL, --backend URL with --device-id ID, --ht URL, --queen HOST:PORT with --mount and --to, or --relay HOST:PORT with --name and --port",
        )?
    };
    keep_unsaid(
        &mut profile,
        file.profiles.iter().find(|p| p.name() == name),
        &args.server,
    );
    let kind = profile.token_kind()?;
    let secret = read_secret(prompt_for(kind))?;
    if kind == HT_KEY && ht_client::Key::from_hex(secret.expose()).is_err() {
        bail!("an HT key is 64 hexadecimal characters (32 bytes); nothing was saved");
    }
    let name = profile.name().to_owned();
    let keychain = KeyringStore::with_service(&global.keyring_service);
    keychain.set(&account(&name, kind), &secret)?;
    if args.proxy_password {
        let user = match &profile {
            Profile::Httvps(p) => p.proxy_username.as_ref(),
            Profile::Ht(p) => p.proxy_username.as_ref(),
            _ => None,
        };
        if user.is_none() {
            bail!("--proxy-password needs --proxy-user NAME");
        }
        let password = read_secret("Local proxy password: ")?;
        keychain.set(&account(&name, SecretKind::PROXY_PASSWORD), &password)?;
    }
    if file.default.is_none() {
        file.default = Some(name.clone());
    }
    file.upsert(profile);
    store.save(&file)?;
    println!(
        "saved profile {name:?} in {}; its secret is in the OS keychain",
        store.path().display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Keeps the settings of an existing profile of the same protocol that were
/// not given again.
fn keep_unsaid(profile: &mut Profile, old: Option<&Profile>, server: &ServerArgs) {
    // The settings both protocols' profiles have, under the same names.
    macro_rules! keep_common {
        ($new:expr, $old:expr) => {{
            $new.reconnect = $old.reconnect;
            $new.limits = $old.limits;
            $new.listen = $new.listen.or($old.listen);
            $new.proxy_username = $new.proxy_username.clone().or($old.proxy_username.clone());
        }};
    }
    match (profile, old) {
        (Profile::Httvps(profile), Some(Profile::Httvps(old))) => {
            keep_common!(profile, old);
            profile.optimistic_open = server.optimistic_open.unwrap_or(old.optimistic_open);
            profile.transport = server.transport.unwrap_or(old.transport);
        }
        (Profile::Ht(profile), Some(Profile::Ht(old))) => {
            keep_common!(profile, old);
            profile.connections = profile.connections.or(old.connections);
            profile.dns_listen = old.dns_listen;
        }
        (Profile::Hlhv(profile), Some(Profile::Hlhv(old))) => {
            profile.reconnect = old.reconnect;
            profile.max_body = profile.max_body.or(old.max_body);
            profile.public_url = profile.public_url.clone().or(old.public_url.clone());
        }
        (Profile::Relay(profile), Some(Profile::Relay(old))) => {
            profile.reconnect = old.reconnect;
        }
        _ => {}
    }
}

pub fn logout(global: &Global, args: LogoutArgs) -> anyhow::Result<ExitCode> {
    let keychain = KeyringStore::with_service(&global.keyring_service);
    let mut removed = 0;
    for kind in [
        SESSION_TOKEN,
        DEVICE_TOKEN,
        HT_KEY,
        CELL_KEY,
        RELAY_TOKEN,
        SecretKind::PROXY_PASSWORD,
    ] {
        if keychain.delete(&account(&args.profile, kind))? {
            removed += 1;
        }
    }
    println!(
        "removed {removed} secret(s) of profile {:?} from the OS keychain",
        args.profile
    );
    if args.forget {
        let store = profile_store(global)?;
        let mut file = load(&store)?;
        if file.remove(&args.profile) {
            store.save(&file)?;
            println!("deleted profile {:?}", args.profile);
        } else {
            println!("no profile {:?} to delete", args.profile);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An HTTVPS profile's server as `httvps profiles` shows it, with its
/// transport when it is not the default, and the secret it signs in with.
fn httvps_server(p: &HttvpsProfile) -> anyhow::Result<(String, SecretKind)> {
    let (mut server, kind, mut notes) = match p.server()? {
        ServerSpec::Gateway(url) => (url.to_owned(), SESSION_TOKEN, Vec::new()),
        ServerSpec::ControlPlane { backend, device_id } => (
            backend.to_owned(),
            DEVICE_TOKEN,
            vec![format!("device {device_id}")],
        ),
    };
    if p.transport != Transport::H1 {
        notes.push(format!("transport {}", p.transport));
    }
    if !notes.is_empty() {
        server = format!("{server} ({})", notes.join(", "));
    }
    Ok((server, kind))
}

pub fn list(global: &Global) -> anyhow::Result<ExitCode> {
    let store = profile_store(global)?;
    let file = load(&store)?;
    if file.profiles.is_empty() {
        println!(
            "no profiles in {} (create one with `httvps login`)",
            store.path().display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let keychain = KeyringStore::with_service(&global.keyring_service);
    for profile in &file.profiles {
        let (server, kind, listen) = match profile {
            Profile::Httvps(p) => {
                let (server, kind) = httvps_server(p)?;
                (server, kind, p.listen())
            }
            Profile::Ht(p) => (format!("{} (HT)", p.url), HT_KEY, p.listen()),
            Profile::Hlhv(p) => {
                let secret = match keychain.get(&account(&p.name, CELL_KEY)) {
                    Ok(Some(_)) => "key in keychain",
                    Ok(None) => "no key",
                    Err(_) => "keychain unavailable",
                };
                println!(
                    "{}\tpublishes {} at {} through {} (HLHV)\t{secret}",
                    p.name, p.to, p.mount, p.queen
                );
                continue;
            }
            other => {
                println!("{}\t{} profile", other.name(), other.protocol().title());
                continue;
            }
        };
        let secret = match keychain.get(&account(profile.name(), kind)) {
            Ok(Some(_)) if kind == HT_KEY => "key in keychain",
            Ok(Some(_)) => "token in keychain",
            Ok(None) if kind == HT_KEY => "no key",
            Ok(None) => "no token",
            Err(_) => "keychain unavailable",
        };
        let default = if file.default.as_deref() == Some(profile.name()) {
            " (default)"
        } else {
            ""
        };
        println!(
            "{}{default}\t{server}\tproxy {listen}\t{secret}",
            profile.name()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway_args(transport: Option<Transport>) -> ServerArgs {
        ServerArgs {
            gateway: Some("wss://gw.example/ws".into()),
            transport,
            ..ServerArgs::default()
        }
    }

    fn transport_of(profile: &Profile) -> Transport {
        match profile {
            Profile::Httvps(p) => p.transport,
            other => panic!("not HTTVPS: {other:?}"),
        }
    }

    #[test]
    fn login_keeps_the_saved_transport_unless_given_again() {
        let mut saved = HttvpsProfile::for_gateway("w", "wss://gw.example/ws");
        saved.transport = Transport::H3;
        let saved = Profile::Httvps(saved);
        // Not given: kept.
        let args = gateway_args(None);
        let mut profile = profile_from_args("w", &args).unwrap();
        keep_unsaid(&mut profile, Some(&saved), &args);
        assert_eq!(transport_of(&profile), Transport::H3);
        // Given: replaced, h1 included.
        for given in [Transport::Auto, Transport::H1] {
            let args = gateway_args(Some(given));
            let mut profile = profile_from_args("w", &args).unwrap();
            keep_unsaid(&mut profile, Some(&saved), &args);
            assert_eq!(transport_of(&profile), given);
        }
        // A new profile: as given, else h1.
        let args = gateway_args(None);
        let mut profile = profile_from_args("w", &args).unwrap();
        keep_unsaid(&mut profile, None, &args);
        assert_eq!(transport_of(&profile), Transport::H1);
    }

    #[test]
    fn the_profile_list_names_a_transport_other_than_h1() {
        let mut p = HttvpsProfile::for_gateway("w", "wss://gw.example/ws");
        assert_eq!(httvps_server(&p).unwrap().0, "wss://gw.example/ws");
        p.transport = Transport::H3;
        assert_eq!(
            httvps_server(&p).unwrap(),
            (
                "wss://gw.example/ws (transport h3)".to_owned(),
                SESSION_TOKEN
            )
        );
        let mut device = HttvpsProfile::new("d");
        device.backend = Some("https://api.example".into());
        device.device_id = Some("dev-1".into());
        assert_eq!(
            httvps_server(&device).unwrap().0,
            "https://api.example (device dev-1)"
        );
        device.transport = Transport::Auto;
        assert_eq!(
            httvps_server(&device).unwrap(),
            (
                "https://api.example (device dev-1, transport auto)".to_owned(),
                DEVICE_TOKEN
            )
        );
    }
}
