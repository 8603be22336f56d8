//! `httvps login`, `logout` and `profiles`: profiles in the settings file,
//! secrets in the OS keychain.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use anyhow::{Context, bail};
use app::Profile;
use httvps_client::profile::{DEVICE_TOKEN, SESSION_TOKEN, ServerSpec};
use net::Secret;
use profiles::{KeyringStore, SecretKind, SecretStore, account};

use crate::args::{Global, LoginArgs, LogoutArgs};
use crate::connect::{httvps, load, profile_from_args, profile_store};

/// Reads one secret: a hidden prompt on a terminal, else a line of stdin.
fn read_secret(prompt: &str) -> anyhow::Result<Secret> {
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

pub fn login(global: &Global, args: LoginArgs) -> anyhow::Result<ExitCode> {
    let store = profile_store(global)?;
    let mut file = load(&store)?;
    let mut profile = profile_from_args(&args.profile, &args.server)
        .context("a profile needs --gateway URL, or --backend URL with --device-id ID")?;
    // Keep settings of an existing profile that were not given again.
    if let Some(old) = file.profiles.iter().find(|p| p.name() == args.profile) {
        let old = httvps(old)?;
        profile.reconnect = old.reconnect;
        profile.limits = old.limits;
        profile.listen = profile.listen.or(old.listen);
        profile.proxy_username = profile
            .proxy_username
            .clone()
            .or(old.proxy_username.clone());
        profile.optimistic_open = args.server.optimistic_open.unwrap_or(old.optimistic_open);
    }
    let kind = profile.token_kind()?;
    let prompt = if kind == SESSION_TOKEN {
        "Session token: "
    } else {
        "Device token: "
    };
    let secret = read_secret(prompt)?;
    let keychain = KeyringStore::with_service(&global.keyring_service);
    keychain.set(&account(&profile.name, kind), &secret)?;
    if args.proxy_password {
        if profile.proxy_username.is_none() {
            bail!("--proxy-password needs --proxy-user NAME");
        }
        let password = read_secret("Local proxy password: ")?;
        keychain.set(
            &account(&profile.name, SecretKind::PROXY_PASSWORD),
            &password,
        )?;
    }
    let name = profile.name.clone();
    if file.default.is_none() {
        file.default = Some(name.clone());
    }
    file.upsert(Profile::Httvps(profile));
    store.save(&file)?;
    println!(
        "saved profile {name:?} in {}; its secret is in the OS keychain",
        store.path().display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn logout(global: &Global, args: LogoutArgs) -> anyhow::Result<ExitCode> {
    let keychain = KeyringStore::with_service(&global.keyring_service);
    let mut removed = 0;
    for kind in [SESSION_TOKEN, DEVICE_TOKEN, SecretKind::PROXY_PASSWORD] {
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
        let Ok(profile) = httvps(profile) else {
            println!("{}	{} profile", profile.name(), profile.protocol().title());
            continue;
        };
        let (server, kind) = match profile.server()? {
            ServerSpec::Gateway(url) => (url.to_owned(), SESSION_TOKEN),
            ServerSpec::ControlPlane { backend, device_id } => {
                (format!("{backend} (device {device_id})"), DEVICE_TOKEN)
            }
        };
        let secret = match keychain.get(&account(&profile.name, kind)) {
            Ok(Some(_)) => "token in keychain",
            Ok(None) => "no token",
            Err(_) => "keychain unavailable",
        };
        let default = if file.default.as_deref() == Some(profile.name.as_str()) {
            " (default)"
        } else {
            ""
        };
        println!(
            "{}{default}\t{server}\tproxy {}\t{secret}",
            profile.name,
            profile.listen()
        );
    }
    Ok(ExitCode::SUCCESS)
}
