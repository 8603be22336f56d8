//! "Set as system proxy": point the desktop's proxy settings at our local
//! proxy while connected, and put back exactly what was there before.
//!
//! One interface ([`SystemProxy`]), one implementation per desktop:
//! - GNOME (and desktops that read GSettings): `gsettings`, schema
//!   `org.gnome.system.proxy` (tested here with a real dconf backend).
//! - KDE Plasma: `kioslaverc` through `kreadconfig`/`kwriteconfig` 5 or 6,
//!   then KIO's reparse signal.
//! - macOS: `networksetup` on every network service.
//! - Windows: the per-user WinINet keys through `reg`.
//!
//! The previous values are returned as a [`SavedProxy`], which the app also
//! persists so that a crash does not leave the desktop pointing at a dead
//! proxy. The platform tools are run as commands (rather than linking
//! GLib/KConfig/CoreFoundation) because they are present wherever the
//! settings they change exist, and a missing tool is a clear error.

use std::net::SocketAddr;
use std::process::Command;

use serde::{Deserialize, Serialize};

/// Changing the desktop's proxy settings failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("system proxy ({desktop}): {message}")]
pub struct SystemProxyError {
    /// Which implementation.
    pub desktop: &'static str,
    /// What failed.
    pub message: String,
}

/// One saved setting: where it lives and its previous value, in the
/// platform tool's own text form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedValue {
    /// Schema, file group, network service or registry path.
    pub scope: String,
    /// Key name.
    pub key: String,
    /// Previous value (`None`: it was absent).
    pub value: Option<String>,
}

/// The desktop's proxy settings before we changed them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedProxy {
    /// Which implementation saved them (restore uses the same one).
    pub desktop: String,
    /// The values.
    pub values: Vec<SavedValue>,
}

/// A desktop's proxy settings.
pub trait SystemProxy: Send + Sync {
    /// The implementation's name (`gnome`, `kde`, `macos`, `windows`).
    fn desktop(&self) -> &'static str;
    /// Points the desktop at `proxy` (SOCKS5 and HTTP on one port) and
    /// returns what was there before.
    fn apply(&self, proxy: SocketAddr) -> Result<SavedProxy, SystemProxyError>;
    /// Puts the saved settings back.
    fn restore(&self, saved: &SavedProxy) -> Result<(), SystemProxyError>;
}

/// The implementation for this desktop, if there is one.
pub fn detect() -> Option<Box<dyn SystemProxy>> {
    if cfg!(target_os = "macos") {
        return Some(Box::new(MacOs));
    }
    if cfg!(target_os = "windows") {
        return Some(Box::new(Windows));
    }
    let desktop = std::env::var("XDG_CURRENT_DESKTOP")
        .unwrap_or_default()
        .to_ascii_lowercase();
    if desktop.contains("kde") {
        return Kde::find().map(|k| Box::new(k) as Box<dyn SystemProxy>);
    }
    which("gsettings").then(|| Box::new(Gnome) as Box<dyn SystemProxy>)
}

fn which(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// Runs a tool and returns its trimmed standard output.
fn run(desktop: &'static str, tool: &str, args: &[&str]) -> Result<String, SystemProxyError> {
    let output = Command::new(tool)
        .args(args)
        .output()
        .map_err(|e| SystemProxyError {
            desktop,
            message: format!("cannot run {tool}: {e}"),
        })?;
    if !output.status.success() {
        return Err(SystemProxyError {
            desktop,
            message: format!(
                "{tool} {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// GNOME: GSettings through the `gsettings` tool.
pub struct Gnome;

/// The GSettings keys we change, and the value each gets (`{host}`/`{port}`
/// are filled in).
const GNOME_KEYS: &[(&str, &str, &str)] = &[
    ("org.gnome.system.proxy.socks", "host", "'{host}'"),
    ("org.gnome.system.proxy.socks", "port", "{port}"),
    ("org.gnome.system.proxy.http", "host", "'{host}'"),
    ("org.gnome.system.proxy.http", "port", "{port}"),
    ("org.gnome.system.proxy.https", "host", "'{host}'"),
    ("org.gnome.system.proxy.https", "port", "{port}"),
    // Last, so that the desktop switches only once the addresses are set.
    ("org.gnome.system.proxy", "mode", "'manual'"),
];

impl SystemProxy for Gnome {
    fn desktop(&self) -> &'static str {
        "gnome"
    }

    fn apply(&self, proxy: SocketAddr) -> Result<SavedProxy, SystemProxyError> {
        let mut values = Vec::new();
        for (schema, key, _) in GNOME_KEYS {
            let value = run("gnome", "gsettings", &["get", schema, key])?;
            values.push(SavedValue {
                scope: (*schema).to_owned(),
                key: (*key).to_owned(),
                value: Some(value),
            });
        }
        let saved = SavedProxy {
            desktop: "gnome".into(),
            values,
        };
        let host = proxy.ip().to_string();
        let port = proxy.port().to_string();
        for (schema, key, template) in GNOME_KEYS {
            let value = template.replace("{host}", &host).replace("{port}", &port);
            if let Err(e) = run("gnome", "gsettings", &["set", schema, key, &value]) {
                let _ = self.restore(&saved);
                return Err(e);
            }
        }
        Ok(saved)
    }

    fn restore(&self, saved: &SavedProxy) -> Result<(), SystemProxyError> {
        // Mode first: the desktop stops using our proxy before the addresses
        // change back.
        let mut first_error = None;
        for value in saved.values.iter().rev() {
            let result = match &value.value {
                Some(v) => run("gnome", "gsettings", &["set", &value.scope, &value.key, v]),
                None => run("gnome", "gsettings", &["reset", &value.scope, &value.key]),
            };
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// KDE Plasma: `kioslaverc`, through the KConfig command-line tools.
pub struct Kde {
    read: &'static str,
    write: &'static str,
}

const KDE_GROUP: &str = "Proxy Settings";
const KDE_KEYS: &[&str] = &["httpProxy", "httpsProxy", "socksProxy", "ProxyType"];

impl Kde {
    /// The Plasma 6 or 5 tools, whichever are installed.
    pub fn find() -> Option<Kde> {
        [
            ("kreadconfig6", "kwriteconfig6"),
            ("kreadconfig5", "kwriteconfig5"),
        ]
        .into_iter()
        .find(|(r, w)| which(r) && which(w))
        .map(|(read, write)| Kde { read, write })
    }

    fn write(&self, key: &str, value: Option<&str>) -> Result<(), SystemProxyError> {
        let mut args = vec!["--file", "kioslaverc", "--group", KDE_GROUP, "--key", key];
        match value {
            Some(v) => args.push(v),
            None => args.push("--delete"),
        }
        run("kde", self.write, &args).map(drop)
    }

    fn notify() {
        // KIO re-reads its settings on this signal; without it running apps
        // keep the old proxy until restarted.
        let _ = Command::new("dbus-send")
            .args([
                "--type=signal",
                "/KIO/Scheduler",
                "org.kde.KIO.Scheduler.reparseSlaveConfiguration",
                "string:",
            ])
            .status();
    }
}

impl SystemProxy for Kde {
    fn desktop(&self) -> &'static str {
        "kde"
    }

    fn apply(&self, proxy: SocketAddr) -> Result<SavedProxy, SystemProxyError> {
        let mut values = Vec::new();
        for key in KDE_KEYS {
            let value = run(
                "kde",
                self.read,
                &["--file", "kioslaverc", "--group", KDE_GROUP, "--key", key],
            )?;
            values.push(SavedValue {
                scope: KDE_GROUP.into(),
                key: (*key).to_owned(),
                value: (!value.is_empty()).then_some(value),
            });
        }
        let saved = SavedProxy {
            desktop: "kde".into(),
            values,
        };
        let (host, port) = (proxy.ip(), proxy.port());
        let http = format!("http://{host} {port}");
        let socks = format!("socks://{host} {port}");
        let result = self
            .write("httpProxy", Some(&http))
            .and_then(|_| self.write("httpsProxy", Some(&http)))
            .and_then(|_| self.write("socksProxy", Some(&socks)))
            .and_then(|_| self.write("ProxyType", Some("1")));
        if let Err(e) = result {
            let _ = self.restore(&saved);
            return Err(e);
        }
        Kde::notify();
        Ok(saved)
    }

    fn restore(&self, saved: &SavedProxy) -> Result<(), SystemProxyError> {
        let mut first_error = None;
        for value in saved.values.iter().rev() {
            if let Err(e) = self.write(&value.key, value.value.as_deref()) {
                first_error.get_or_insert(e);
            }
        }
        Kde::notify();
        first_error.map_or(Ok(()), Err)
    }
}

/// macOS: `networksetup`, SOCKS and web proxies of every network service.
pub struct MacOs;

impl MacOs {
    fn services() -> Result<Vec<String>, SystemProxyError> {
        let list = run("macos", "networksetup", &["-listallnetworkservices"])?;
        // The first line explains that an asterisk marks disabled services.
        Ok(list
            .lines()
            .skip(1)
            .filter(|l| !l.starts_with('*') && !l.trim().is_empty())
            .map(str::to_owned)
            .collect())
    }
}

/// (getter, setter, state setter) for each proxy kind networksetup knows.
const MAC_KINDS: &[(&str, &str, &str)] = &[
    (
        "-getsocksfirewallproxy",
        "-setsocksfirewallproxy",
        "-setsocksfirewallproxystate",
    ),
    ("-getwebproxy", "-setwebproxy", "-setwebproxystate"),
    (
        "-getsecurewebproxy",
        "-setsecurewebproxy",
        "-setsecurewebproxystate",
    ),
];

impl SystemProxy for MacOs {
    fn desktop(&self) -> &'static str {
        "macos"
    }

    fn apply(&self, proxy: SocketAddr) -> Result<SavedProxy, SystemProxyError> {
        let mut values = Vec::new();
        for service in MacOs::services()? {
            for (get, _, _) in MAC_KINDS {
                // "Enabled: No\nServer: …\nPort: …": kept whole, parsed on restore.
                let text = run("macos", "networksetup", &[get, &service])?;
                values.push(SavedValue {
                    scope: service.clone(),
                    key: (*get).to_owned(),
                    value: Some(text),
                });
            }
        }
        let saved = SavedProxy {
            desktop: "macos".into(),
            values,
        };
        let (host, port) = (proxy.ip().to_string(), proxy.port().to_string());
        for service in MacOs::services()? {
            for (_, set, state) in MAC_KINDS {
                let result = run("macos", "networksetup", &[set, &service, &host, &port])
                    .and_then(|_| run("macos", "networksetup", &[state, &service, "on"]));
                if let Err(e) = result {
                    let _ = self.restore(&saved);
                    return Err(e);
                }
            }
        }
        Ok(saved)
    }

    fn restore(&self, saved: &SavedProxy) -> Result<(), SystemProxyError> {
        let field = |text: &str, name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
                .unwrap_or_default()
        };
        let mut first_error = None;
        for value in &saved.values {
            let Some((_, set, state)) = MAC_KINDS.iter().find(|k| k.0 == value.key) else {
                continue;
            };
            let text = value.value.clone().unwrap_or_default();
            let (server, port) = (field(&text, "Server:"), field(&text, "Port:"));
            let enabled = field(&text, "Enabled:") == "Yes";
            let mut result = Ok(String::new());
            if !server.is_empty() {
                result = run(
                    "macos",
                    "networksetup",
                    &[set, &value.scope, &server, &port],
                );
            }
            let on_off = if enabled { "on" } else { "off" };
            result =
                result.and_then(|_| run("macos", "networksetup", &[state, &value.scope, on_off]));
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Windows: the per-user WinINet settings, through `reg`.
pub struct Windows;

const WIN_KEY: &str = r"HKCU\Software\Microsoft\Windows\CurrentVersion\Internet Settings";

impl Windows {
    fn query(name: &str) -> Option<(String, String)> {
        let out = run("windows", "reg", &["query", WIN_KEY, "/v", name]).ok()?;
        // "    ProxyEnable    REG_DWORD    0x1"
        let line = out.lines().find(|l| l.trim_start().starts_with(name))?;
        let mut parts = line.split_whitespace().skip(1);
        let kind = parts.next()?.to_owned();
        Some((kind, parts.collect::<Vec<_>>().join(" ")))
    }

    fn set(name: &str, kind: &str, data: &str) -> Result<(), SystemProxyError> {
        run(
            "windows",
            "reg",
            &["add", WIN_KEY, "/v", name, "/t", kind, "/d", data, "/f"],
        )
        .map(drop)
    }
}

impl SystemProxy for Windows {
    fn desktop(&self) -> &'static str {
        "windows"
    }

    fn apply(&self, proxy: SocketAddr) -> Result<SavedProxy, SystemProxyError> {
        let values = ["ProxyEnable", "ProxyServer"]
            .iter()
            .map(|name| SavedValue {
                scope: WIN_KEY.into(),
                key: (*name).to_owned(),
                value: Windows::query(name).map(|(kind, data)| format!("{kind} {data}")),
            })
            .collect();
        let saved = SavedProxy {
            desktop: "windows".into(),
            values,
        };
        // WinINet speaks HTTP to "http=" and "https=" proxies and SOCKS to
        // "socks="; our port answers all three.
        let server = format!("http={proxy};https={proxy};socks={proxy}");
        let result = Windows::set("ProxyServer", "REG_SZ", &server)
            .and_then(|_| Windows::set("ProxyEnable", "REG_DWORD", "1"));
        if let Err(e) = result {
            let _ = self.restore(&saved);
            return Err(e);
        }
        Ok(saved)
    }

    fn restore(&self, saved: &SavedProxy) -> Result<(), SystemProxyError> {
        let mut first_error = None;
        for value in &saved.values {
            let result = match value.value.as_deref().and_then(|v| v.split_once(' ')) {
                Some((kind, data)) => Windows::set(&value.key, kind, data),
                None => run(
                    "windows",
                    "reg",
                    &["delete", WIN_KEY, "/v", &value.key, "/f"],
                )
                .map(drop),
            };
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Restores with whichever implementation saved the values.
pub fn restore_saved(saved: &SavedProxy) -> Result<(), SystemProxyError> {
    let implementation: Option<Box<dyn SystemProxy>> = match saved.desktop.as_str() {
        "gnome" => Some(Box::new(Gnome)),
        "kde" => Kde::find().map(|k| Box::new(k) as Box<dyn SystemProxy>),
        "macos" => Some(Box::new(MacOs)),
        "windows" => Some(Box::new(Windows)),
        _ => None,
    };
    match implementation {
        Some(i) => i.restore(saved),
        None => Err(SystemProxyError {
            desktop: "unknown",
            message: format!("cannot restore settings saved by {:?}", saved.desktop),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether gsettings with a persistent backend and the GNOME proxy schema
    /// are usable here (they are under scripts/test's D-Bus session).
    fn gsettings_usable() -> bool {
        which("gsettings")
            && std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some()
            && run(
                "gnome",
                "gsettings",
                &["get", "org.gnome.system.proxy", "mode"],
            )
            .is_ok()
    }

    /// Real gsettings, real dconf: apply points every key at our proxy, and
    /// restore brings back the earlier values exactly.
    #[test]
    fn gnome_settings_are_applied_and_restored() {
        if !gsettings_usable() {
            assert!(
                std::env::var_os("HTTVPS_REQUIRE_KEYRING").is_none(),
                "scripts/test installs gsettings and dconf; they must work here"
            );
            eprintln!("skipped: no gsettings with a D-Bus session");
            return;
        }
        let get =
            |schema: &str, key: &str| run("gnome", "gsettings", &["get", schema, key]).unwrap();
        let set = |schema: &str, key: &str, v: &str| {
            run("gnome", "gsettings", &["set", schema, key, v]).unwrap();
        };
        set("org.gnome.system.proxy", "mode", "'auto'");
        set(
            "org.gnome.system.proxy.http",
            "host",
            "'corp-proxy.example'",
        );
        set("org.gnome.system.proxy.http", "port", "3128");

        let saved = Gnome.apply("127.0.0.1:18080".parse().unwrap()).unwrap();
        assert_eq!(get("org.gnome.system.proxy", "mode"), "'manual'");
        assert_eq!(get("org.gnome.system.proxy.socks", "host"), "'127.0.0.1'");
        assert_eq!(get("org.gnome.system.proxy.socks", "port"), "18080");
        assert_eq!(get("org.gnome.system.proxy.https", "port"), "18080");

        // Saved values survive a round trip through the settings file.
        let saved: SavedProxy =
            serde_json::from_str(&serde_json::to_string(&saved).unwrap()).unwrap();
        restore_saved(&saved).unwrap();
        assert_eq!(get("org.gnome.system.proxy", "mode"), "'auto'");
        assert_eq!(
            get("org.gnome.system.proxy.http", "host"),
            "'corp-proxy.example'"
        );
        assert_eq!(get("org.gnome.system.proxy.http", "port"), "3128");
        assert_eq!(get("org.gnome.system.proxy.socks", "port"), "0");
    }

    #[test]
    fn unknown_savers_are_a_clear_error() {
        let err = restore_saved(&SavedProxy {
            desktop: "amiga".into(),
            values: vec![],
        })
        .unwrap_err();
        assert!(err.message.contains("amiga"));
    }
}
