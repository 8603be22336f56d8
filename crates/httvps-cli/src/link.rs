//! `httvps link` (print a saved profile's share link) and `httvps login
//! --link` (save the profile a link carries). The format is the app's
//! (`app::link`, docs/links.md). A secret never passes through argv or the
//! output unless the user asked for it with `--with-secret`, and a link
//! carrying one is refused on the command line, where `ps` shows it.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use anyhow::{Context, bail};
use app::link::{LinkContents, ShareLink};
use profiles::{KeyringStore, SecretStore, account};

use crate::args::{Global, LinkArgs};
use crate::connect::{load, profile_store};
use crate::login::{prompt_for, read_secret};

/// Reads the link from standard input (`--link -`): a hidden prompt on a
/// terminal (the link may carry a secret), else the first line.
fn read_link() -> anyhow::Result<String> {
    let text = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Share link: ").context("reading from the terminal")?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading standard input")?;
        line
    };
    Ok(text.trim().to_owned())
}

/// `httvps login --link URL|-`: saves the link's profile (as `name` if
/// given), replacing one of the same name, and files its secret in the
/// keychain: the link's, else one asked for as `login` does.
pub fn login(global: &Global, link: &str, name: Option<&str>) -> anyhow::Result<ExitCode> {
    let from_argv = link != "-";
    let text = if from_argv {
        link.to_owned()
    } else {
        read_link()?
    };
    let mut contents = LinkContents::parse(&text).context("reading the share link")?;
    if from_argv && contents.secret.is_some() {
        bail!(
            "this link carries a secret, and the command line is visible to other users of this computer (ps, shell history); nothing was saved. Pass the link on standard input instead: httvps login --link -"
        );
    }
    if let Some(name) = name {
        contents = contents.renamed(name)?;
    }
    let LinkContents { profile, secret } = contents;
    let kind = profile.token_kind()?;
    let with_link = secret.is_some();
    let secret = match secret {
        Some(secret) => secret,
        None => {
            let secret = read_secret(prompt_for(kind))?;
            if kind == ht_client::HT_KEY && ht_client::Key::from_hex(secret.expose()).is_err() {
                bail!("an HT key is 64 hexadecimal characters (32 bytes); nothing was saved");
            }
            secret
        }
    };
    let store = profile_store(global)?;
    let mut file = load(&store)?;
    let name = profile.name().to_owned();
    let replaced = file.profiles.iter().any(|p| p.name() == name);
    let keychain = KeyringStore::with_service(&global.keyring_service);
    if replaced {
        // The old profile's other secrets belonged to its old server.
        let old = file.pick(Some(&name))?;
        for kind in old.secret_kinds() {
            keychain.delete(&account(&name, *kind))?;
        }
    }
    keychain.set(&account(&name, kind), &secret)?;
    if file.default.is_none() {
        file.default = Some(name.clone());
    }
    let title = profile.protocol().title();
    file.upsert(profile);
    store.save(&file)?;
    println!(
        "{} {title} profile {name:?} from the link in {}; its secret {}is in the OS keychain",
        if replaced { "replaced" } else { "saved" },
        store.path().display(),
        if with_link {
            "came with the link and "
        } else {
            ""
        },
    );
    Ok(ExitCode::SUCCESS)
}

/// `httvps link --profile NAME [--with-secret] [--qr]`.
pub fn print(global: &Global, args: LinkArgs) -> anyhow::Result<ExitCode> {
    let store = profile_store(global)?;
    let file = load(&store)?;
    let profile = file.pick(Some(&args.profile))?;
    let secret = if args.with_secret {
        let kind = profile.token_kind()?;
        let keychain = KeyringStore::with_service(&global.keyring_service);
        let secret = keychain.get(&account(profile.name(), kind))?;
        Some(secret.with_context(|| {
            format!(
                "the keychain has no secret for profile {:?} to put in the link (httvps login --profile {0})",
                profile.name()
            )
        })?)
    } else {
        None
    };
    let link = ShareLink::create(profile, secret.as_ref())?;
    println!("{}", link.as_str());
    if args.qr {
        println!("{}", link.qr_text());
    }
    if !link.left_out().is_empty() {
        eprintln!(
            "note: not in the link (they describe this computer only): {}",
            link.left_out().join(", ")
        );
    }
    if link.contains_secret() {
        eprintln!(
            "warning: this link contains the profile's secret: whoever has it can sign in as you. Send it only over a channel you trust; the receiver runs `httvps login --link -` and pastes it."
        );
    }
    Ok(ExitCode::SUCCESS)
}
