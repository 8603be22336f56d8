//! The saved inbound profile `share` and `publish` run when no server is
//! given on the command line: one rule for picking it, one set of
//! messages, and its secret from the keychain (or stdin, or the
//! environment).

use anyhow::Context;
use app::Profile;
use net::Secret;
use profiles::{KeyringStore, ProfileStore, SecretKind, SecretStore};

use crate::args::Global;
use crate::connect::{load, resolve_secret};

/// What a command needs, in the words of its messages.
pub struct Wanted<'a> {
    /// The command (`share`).
    pub command: &'a str,
    /// The protocol's title with its article (`a Relay`).
    pub protocol: &'a str,
    /// The flags that make a profile on the command line, with values.
    pub flags: &'a str,
    /// The same flags, names only.
    pub flag_names: &'a str,
    /// How to save such a profile.
    pub login: &'a str,
}

/// The saved profile `name` (or the default one), which must be the
/// protocol `extract` accepts.
pub fn pick<T: Clone>(
    store: &ProfileStore,
    name: Option<&str>,
    wanted: &Wanted<'_>,
    extract: impl Fn(&Profile) -> Option<&T>,
) -> anyhow::Result<T> {
    let file = load(store)?;
    let picked = file.pick(name).with_context(|| {
        format!(
            "nothing to {}: pass {}, or save {} profile with `{}` ({})",
            wanted.command,
            wanted.flags,
            wanted.protocol,
            wanted.login,
            store.path().display()
        )
    })?;
    extract(picked).cloned().with_context(|| {
        format!(
            "profile {:?} is a {} profile; `httvps {}` needs {} profile ({})",
            picked.name(),
            picked.protocol().title(),
            wanted.command,
            wanted.protocol,
            wanted.flag_names
        )
    })
}

/// The profile's secret: from stdin or `env_var`, and from the keychain
/// too when the profile is a saved one.
pub fn secret(
    global: &Global,
    name: &str,
    kind: SecretKind,
    saved: bool,
    from_stdin: bool,
    env_var: &str,
) -> anyhow::Result<Secret> {
    let secrets = KeyringStore::with_service(&global.keyring_service);
    let keychain = saved.then_some(&secrets as &dyn SecretStore);
    resolve_secret(name, kind, keychain, from_stdin, env_var)
}
