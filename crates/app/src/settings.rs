//! What the desktop app persists, and the views the UI gets of it.
//!
//! Settings hold profiles and preferences only: tokens live in the keychain
//! and never pass through these types. The tray process persists [`Settings`] in
//! a JSON file (`desktop_tray::storage`) through a [`SettingsStorage`];
//! tests use [`MemoryStorage`].

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Mutex;

use ht_client::HtProfile;
use httvps_client::profile::ServerSpec;
use httvps_client::{HttvpsProfile, Transport};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::error::{CommandCode, CommandError};
use crate::profile::Profile;
use crate::registry::{Mode, Protocol};
use crate::sysproxy::SavedProxy;

mod hlhv;
mod relay;

/// The local proxy port when the user has not chosen one.
pub const DEFAULT_PROXY_PORT: u16 = 1080;

/// Everything the app keeps between runs (no secrets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Saved profiles (servers and options; tokens are in the keychain).
    pub profiles: Vec<Profile>,
    /// The profile Connect uses.
    pub selected: Option<String>,
    /// The local SOCKS5/HTTP proxy port on 127.0.0.1.
    pub proxy_port: u16,
    /// Start hidden in the tray.
    pub start_minimized: bool,
    /// Start on login.
    pub autostart: bool,
    /// Point the desktop's proxy settings at the tunnel while connected.
    pub system_proxy: bool,
    /// Fast connect: answer apps as soon as a stream is opened instead of
    /// waiting for the gateway to confirm it reached the target (one tunnel
    /// round trip less per new connection), at the cost of an unreachable
    /// site showing as a closed connection instead of a precise SOCKS/HTTP
    /// refusal. Applies to the profile's copy used to connect (and the demo),
    /// never to the saved profile.
    pub fast_connect: bool,
    /// The desktop's proxy settings from before we changed them; kept here so
    /// a crash does not leave the desktop pointing at a dead proxy (restored
    /// at the next start).
    pub saved_system_proxy: Option<SavedProxy>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            profiles: Vec::new(),
            selected: None,
            proxy_port: DEFAULT_PROXY_PORT,
            start_minimized: false,
            autostart: false,
            system_proxy: false,
            fast_connect: false,
            saved_system_proxy: None,
        }
    }
}

impl Settings {
    /// The profile Connect uses: the selected one, or the only outbound
    /// one. A publishing profile (HLHV) is never Connect's: it is started by
    /// name from the Publish panel.
    pub fn current_profile(&self) -> Option<&Profile> {
        match &self.selected {
            Some(name) => self
                .connect_profiles()
                .find(|p| p.name() == name)
                .or_else(|| self.only_connect_profile()),
            None => self.only_connect_profile(),
        }
    }

    /// The profiles Connect can use (outbound modes), in order: what the
    /// tray's "Switch profile" lists.
    pub fn connect_profiles(&self) -> impl Iterator<Item = &Profile> {
        self.profiles
            .iter()
            .filter(|p| p.protocol().info().mode == Mode::Connect)
    }

    fn only_connect_profile(&self) -> Option<&Profile> {
        let mut connect = self.connect_profiles();
        match (connect.next(), connect.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        }
    }

    /// Where the local proxy listens for a profile: its own address if it has
    /// one, else loopback on the chosen port.
    pub fn listen_for(&self, profile: Option<&Profile>) -> SocketAddr {
        profile
            .and_then(|p| p.listen())
            .unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, self.proxy_port)))
    }
}

/// Where [`Settings`] are kept.
pub trait SettingsStorage: Send + Sync {
    /// Loads the settings; `Ok(None)` on first run.
    fn load(&self) -> Result<Option<Settings>, String>;
    /// Saves the settings durably.
    fn save(&self, settings: &Settings) -> Result<(), String>;
}

/// A shared store: several controllers (tests, or one across a restart)
/// read and write the same settings.
impl<T: SettingsStorage + ?Sized> SettingsStorage for std::sync::Arc<T> {
    fn load(&self) -> Result<Option<Settings>, String> {
        (**self).load()
    }
    fn save(&self, settings: &Settings) -> Result<(), String> {
        (**self).save(settings)
    }
}

/// Settings kept in memory (tests, and a fallback when the store cannot be
/// opened).
#[derive(Debug, Default)]
pub struct MemoryStorage(Mutex<Option<Settings>>);

impl SettingsStorage for MemoryStorage {
    fn load(&self) -> Result<Option<Settings>, String> {
        Ok(self.0.lock().unwrap().clone())
    }

    fn save(&self, settings: &Settings) -> Result<(), String> {
        *self.0.lock().unwrap() = Some(settings.clone());
        Ok(())
    }
}

/// How a profile signs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ProfileKind {
    /// A gateway URL and a session token.
    Gateway,
    /// A control-plane URL, a device id and a device token.
    ControlPlane,
    /// A server URL and a pre-shared key (HT: 64 hex characters).
    PresharedKey,
    /// A queen's `HOST:PORT` and a cell key (HLHV: the queen's `connKey`).
    CellKey,
    /// A relay's `HOST[:PORT]` and a JWT the relay verifies (Relay).
    RelayToken,
}

/// A profile as the UI shows it. `signed_in` says whether the keychain holds
/// its token; the token itself never leaves the keychain.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct ProfileView {
    /// Unique name.
    pub name: String,
    /// Its protocol.
    pub protocol: Protocol,
    /// How it signs in.
    pub kind: ProfileKind,
    /// The gateway or control-plane URL.
    pub server: String,
    /// The device id (control plane only).
    pub device_id: Option<String>,
    /// Preferred region (control plane only).
    pub region: Option<String>,
    /// Extra CA file.
    pub ca_file: Option<String>,
    /// Certificate pin (hex SHA-256 of the SPKI).
    pub pin_sha256: Option<String>,
    /// TLS server name override.
    pub sni: Option<String>,
    /// Transport connections per session (HT).
    pub connections: Option<u32>,
    /// Where DNS is served through the tunnel (HT), `host:port`.
    pub dns_listen: Option<String>,
    /// What carries the tunnel (HTTVPS).
    #[ts(as = "Option<TransportName>")]
    pub transport: Option<Transport>,
    /// Where the app is published, `HOST/PATH` (HLHV).
    pub mount: Option<String>,
    /// The local app published, `http://HOST:PORT` (HLHV).
    pub to: Option<String>,
    /// The largest request body passed to the local app, in bytes (HLHV;
    /// null: the cell's default).
    pub max_body: Option<u64>,
    /// Where people reach the app: the profile's own URL, or
    /// `https://` + the mount (HLHV).
    pub public_url: Option<String>,
    /// The tunnel's name at the relay (Relay).
    pub tunnel: Option<String>,
    /// The local TCP ports shared (Relay).
    pub ports: Option<Vec<u16>>,
    /// Whether the keychain holds its token.
    pub signed_in: bool,
}

/// What carries an HTTVPS tunnel, as the UI spells it: `h1` (WebSocket over
/// HTTP/1.1, TLS, TCP), `h3` (over HTTP/3, QUIC) or `auto` (HTTP/3, falling
/// back to HTTP/1.1). Only the TypeScript twin of
/// [`httvps_client::Transport`], whose serde names these are (a test checks).
#[derive(TS)]
#[ts(rename = "Transport", rename_all = "lowercase")]
#[allow(dead_code)]
pub enum TransportName {
    /// HTTP/1.1 over TLS over TCP.
    H1,
    /// HTTP/3 over QUIC.
    H3,
    /// HTTP/3 first, HTTP/1.1 when it does not connect.
    Auto,
}

impl ProfileView {
    /// The view of a valid profile.
    pub fn of(profile: &Profile, signed_in: bool) -> Option<ProfileView> {
        let profile = match profile {
            Profile::Httvps(profile) => profile,
            Profile::Ht(ht) => return ProfileView::of_ht(ht, signed_in),
            Profile::Hlhv(hlhv) => return ProfileView::of_hlhv(hlhv, signed_in),
            Profile::Relay(relay) => return ProfileView::of_relay(relay, signed_in),
        };
        let (kind, server, device_id) = match profile.server().ok()? {
            ServerSpec::Gateway(url) => (ProfileKind::Gateway, url.to_owned(), None),
            ServerSpec::ControlPlane { backend, device_id } => (
                ProfileKind::ControlPlane,
                backend.to_owned(),
                Some(device_id.to_owned()),
            ),
        };
        Some(ProfileView {
            name: profile.name.clone(),
            protocol: Protocol::Httvps,
            kind,
            server,
            device_id,
            region: profile.region.clone(),
            ca_file: path_text(&profile.ca_file),
            pin_sha256: profile.pin_sha256.clone(),
            sni: profile.sni.clone(),
            connections: None,
            dns_listen: None,
            transport: Some(profile.transport),
            mount: None,
            to: None,
            max_body: None,
            public_url: None,
            tunnel: None,
            ports: None,
            signed_in,
        })
    }

    fn of_ht(profile: &HtProfile, signed_in: bool) -> Option<ProfileView> {
        profile.server().ok()?;
        Some(ProfileView {
            name: profile.name.clone(),
            protocol: Protocol::Ht,
            kind: ProfileKind::PresharedKey,
            server: profile.url.clone(),
            device_id: None,
            region: None,
            ca_file: path_text(&profile.ca_file),
            pin_sha256: profile.pin_sha256.clone(),
            sni: profile.sni.clone(),
            connections: Some(profile.connections() as u32),
            dns_listen: profile.dns_listen.map(|a| a.to_string()),
            transport: None,
            mount: None,
            to: None,
            max_body: None,
            public_url: None,
            tunnel: None,
            ports: None,
            signed_in,
        })
    }
}

fn path_text(path: &Option<PathBuf>) -> Option<String> {
    path.as_ref().map(|p| p.to_string_lossy().into_owned())
}

/// A new or edited profile, from the sign-in form (no token: that goes
/// straight to the keychain through its own command).
#[derive(Debug, Clone, PartialEq, Deserialize, TS)]
pub struct ProfileInput {
    /// Unique name (no `/`).
    pub name: String,
    /// Its protocol (absent: HTTVPS, as from a UI before there were others).
    #[serde(default = "default_protocol")]
    #[ts(optional)]
    pub protocol: Option<Protocol>,
    /// How it signs in.
    pub kind: ProfileKind,
    /// `wss://…` gateway URL or `https://…` control-plane URL; for HLHV
    /// the queen's `HOST:PORT`; for Relay the relay's `HOST[:PORT]`.
    pub server: String,
    /// The device id (control plane only).
    #[ts(optional)]
    pub device_id: Option<String>,
    /// Preferred region (control plane only).
    #[ts(optional)]
    pub region: Option<String>,
    /// Extra CA file (PEM).
    #[ts(optional)]
    pub ca_file: Option<String>,
    /// Certificate pin (hex SHA-256 of the SPKI).
    #[ts(optional)]
    pub pin_sha256: Option<String>,
    /// TLS server name override.
    #[ts(optional)]
    pub sni: Option<String>,
    /// Transport connections per session (HT; absent: 4).
    #[serde(default)]
    #[ts(optional)]
    pub connections: Option<u32>,
    /// Serve DNS through the tunnel on this `host:port` (HT; absent: off).
    #[serde(default)]
    #[ts(optional)]
    pub dns_listen: Option<String>,
    /// What carries the tunnel (HTTVPS; absent: `h1`, as from a UI before
    /// there was a choice).
    #[serde(default)]
    #[ts(optional, as = "Option<TransportName>")]
    pub transport: Option<Transport>,
    /// Where to publish, `HOST/PATH` (HLHV).
    #[serde(default)]
    #[ts(optional)]
    pub mount: Option<String>,
    /// The local app to publish, `http://HOST:PORT` (HLHV).
    #[serde(default)]
    #[ts(optional)]
    pub to: Option<String>,
    /// The largest request body passed on, in bytes (HLHV; absent: the
    /// cell's default).
    #[serde(default)]
    #[ts(optional)]
    pub max_body: Option<u64>,
    /// The URL shown to people, when it is not `https://` + the mount
    /// (HLHV).
    #[serde(default)]
    #[ts(optional)]
    pub public_url: Option<String>,
    /// The tunnel's name at the relay (Relay).
    #[serde(default)]
    #[ts(optional)]
    pub tunnel: Option<String>,
    /// The local TCP ports to share (Relay).
    #[serde(default)]
    #[ts(optional)]
    pub ports: Option<Vec<u16>>,
}

fn default_protocol() -> Option<Protocol> {
    Some(Protocol::Httvps)
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

impl ProfileInput {
    /// The profile, checked; keeps the reconnect policy and limits of
    /// `previous` when editing.
    pub fn into_profile(self, previous: Option<&Profile>) -> Result<Profile, CommandError> {
        let name = self.name.trim().to_owned();
        if name.chars().count() > 64 {
            return Err(CommandError::invalid(
                "a profile name has at most 64 characters",
            ));
        }
        let protocol = self.protocol.unwrap_or(Protocol::Httvps);
        if !protocol.info().available {
            return Err(CommandError::new(
                CommandCode::Unsupported,
                format!("{} profiles are not available yet", protocol.title()),
            ));
        }
        if protocol == Protocol::Relay {
            return self.into_relay_profile(name, previous);
        }
        if non_empty(&self.tunnel).is_some() || self.ports.is_some() {
            return Err(CommandError::invalid(format!(
                "a tunnel name and shared ports are Relay settings; {} profiles do not take them",
                protocol.title()
            )));
        }
        if protocol == Protocol::Hlhv {
            return self.into_hlhv_profile(name, previous);
        }
        if self.mount.is_some() || self.to.is_some() {
            return Err(CommandError::invalid(
                "a mount and a local app are HLHV settings; outbound profiles do not take them",
            ));
        }
        if protocol == Protocol::Ht {
            if self.transport.is_some_and(|t| t != Transport::H1) {
                return Err(CommandError::invalid(
                    "the transport (HTTP/3, automatic) is an HTTVPS setting; HT profiles do not take it",
                ));
            }
            return self.into_ht_profile(name, previous);
        }
        let mut profile = match previous {
            Some(Profile::Httvps(p)) => HttvpsProfile {
                name: name.clone(),
                ..p.clone()
            },
            _ => HttvpsProfile::new(name.clone()),
        };
        let server = self.server.trim().to_owned();
        match self.kind {
            ProfileKind::Gateway => {
                profile.gateway = Some(server);
                profile.backend = None;
                profile.device_id = None;
                profile.region = None;
            }
            ProfileKind::ControlPlane => {
                profile.gateway = None;
                profile.backend = Some(server);
                profile.device_id = non_empty(&self.device_id);
                profile.region = non_empty(&self.region);
            }
            ProfileKind::PresharedKey | ProfileKind::CellKey | ProfileKind::RelayToken => {
                return Err(CommandError::invalid(
                    "HTTVPS signs in with a session or device token, not a pre-shared key, cell key or relay token",
                ));
            }
        }
        profile.ca_file = non_empty(&self.ca_file).map(PathBuf::from);
        profile.pin_sha256 = non_empty(&self.pin_sha256);
        profile.sni = non_empty(&self.sni);
        profile.transport = self.transport.unwrap_or_default();
        profile
            .server()
            .map_err(|e| CommandError::invalid(e.to_string()))?;
        check_ca_file(&profile.ca_file)?;
        Ok(Profile::Httvps(profile))
    }

    /// An HT profile: a server URL and (in the keychain) its key; keeps the
    /// policies of `previous` when it was an HT profile too.
    fn into_ht_profile(
        self,
        name: String,
        previous: Option<&Profile>,
    ) -> Result<Profile, CommandError> {
        let url = self.server.trim().to_owned();
        let mut profile = match previous {
            Some(Profile::Ht(p)) => HtProfile {
                name,
                url,
                ..p.clone()
            },
            _ => HtProfile::new(name, url),
        };
        profile.ca_file = non_empty(&self.ca_file).map(PathBuf::from);
        profile.pin_sha256 = non_empty(&self.pin_sha256);
        profile.sni = non_empty(&self.sni);
        profile.connections = self.connections.map(|n| n as usize);
        profile.dns_listen = match non_empty(&self.dns_listen) {
            None => None,
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
                CommandError::invalid(format!(
                    "the DNS address {text:?} is not host:port, e.g. 127.0.0.1:5353"
                ))
            })?),
        };
        profile
            .server()
            .map_err(|e| CommandError::invalid(e.to_string()))?;
        check_ca_file(&profile.ca_file)?;
        Ok(Profile::Ht(profile))
    }
}

/// A CA file that does not exist is refused when saving, not at connect.
fn check_ca_file(ca: &Option<PathBuf>) -> Result<(), CommandError> {
    match ca {
        Some(ca) if !ca.is_file() => Err(CommandError::invalid(format!(
            "the CA file {} does not exist",
            ca.display()
        ))),
        _ => Ok(()),
    }
}

/// The preferences as the UI shows and edits them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Preferences {
    /// Local proxy port on 127.0.0.1 (1–65535).
    pub proxy_port: u16,
    /// Start hidden in the tray.
    pub start_minimized: bool,
    /// Start on login.
    pub autostart: bool,
    /// Point the desktop's proxy settings at the tunnel while connected.
    pub system_proxy: bool,
    /// Fast connect: answer apps before the gateway confirms each connection
    /// (one tunnel round trip less per new connection); an unreachable site
    /// then shows as a closed connection instead of a precise proxy error.
    /// Absent (an older UI) means off.
    #[serde(default)]
    pub fast_connect: bool,
}

impl Preferences {
    /// The preferences part of the settings.
    pub fn of(settings: &Settings) -> Preferences {
        Preferences {
            proxy_port: settings.proxy_port,
            start_minimized: settings.start_minimized,
            autostart: settings.autostart,
            system_proxy: settings.system_proxy,
            fast_connect: settings.fast_connect,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn gateway_input(name: &str, server: &str) -> ProfileInput {
        ProfileInput {
            name: name.into(),
            protocol: None,
            kind: ProfileKind::Gateway,
            server: server.into(),
            device_id: None,
            region: None,
            ca_file: None,
            pin_sha256: None,
            sni: Some("  ".into()),
            connections: None,
            dns_listen: None,
            transport: None,
            mount: None,
            to: None,
            max_body: None,
            public_url: None,
            tunnel: None,
            ports: None,
        }
    }

    #[test]
    fn inputs_become_checked_profiles() {
        let Profile::Httvps(profile) = gateway_input(" work ", "wss://gw.example/ws")
            .into_profile(None)
            .unwrap()
        else {
            panic!("not an HTTVPS profile")
        };
        assert_eq!(profile.name, "work");
        assert_eq!(profile.gateway.as_deref(), Some("wss://gw.example/ws"));
        assert_eq!(profile.sni, None, "blank fields are absent");

        let err = gateway_input("w", "http://gw.example/ws")
            .into_profile(None)
            .unwrap_err();
        assert_eq!(err.code, CommandCode::InvalidInput);
        assert!(err.message.contains("wss://"), "{}", err.message);
        assert!(
            gateway_input("a/b", "wss://x/ws")
                .into_profile(None)
                .is_err()
        );
        assert!(gateway_input("", "wss://x/ws").into_profile(None).is_err());

        let mut device = gateway_input("d", "https://api.example");
        device.kind = ProfileKind::ControlPlane;
        assert!(
            device.clone().into_profile(None).is_err(),
            "needs a device id"
        );
        device.device_id = Some("dev-7".into());
        let view = ProfileView::of(&device.into_profile(None).unwrap(), false).unwrap();
        assert_eq!(view.kind, ProfileKind::ControlPlane);
        assert_eq!(view.device_id.as_deref(), Some("dev-7"));
    }

    #[test]
    fn ht_inputs_become_ht_profiles() {
        let mut input = gateway_input("h", "https://ht.example:8443");
        input.protocol = Some(Protocol::Ht);
        input.kind = ProfileKind::PresharedKey;
        input.connections = Some(6);
        input.dns_listen = Some("127.0.0.1:5353".into());
        let profile = input.clone().into_profile(None).unwrap();
        let Profile::Ht(ht) = &profile else {
            panic!("not an HT profile: {profile:?}")
        };
        assert_eq!(ht.url, "https://ht.example:8443");
        assert_eq!(ht.connections, Some(6));
        let view = ProfileView::of(&profile, true).unwrap();
        assert_eq!(view.protocol, Protocol::Ht);
        assert_eq!(view.kind, ProfileKind::PresharedKey);
        assert_eq!(view.dns_listen.as_deref(), Some("127.0.0.1:5353"));

        input.dns_listen = Some("nowhere".into());
        assert!(
            input
                .clone()
                .into_profile(None)
                .unwrap_err()
                .message
                .contains("DNS")
        );
        input.dns_listen = None;
        input.server = "wss://ht.example/ws".into();
        assert!(
            input.into_profile(None).is_err(),
            "HT takes https:// or http://"
        );
    }

    #[test]
    fn the_transport_is_saved_with_the_profile_and_shown() {
        let httvps = |input: ProfileInput, previous: Option<&Profile>| {
            let profile = input.into_profile(previous).unwrap();
            let view = ProfileView::of(&profile, false).unwrap();
            let Profile::Httvps(saved) = profile else {
                panic!("not an HTTVPS profile")
            };
            assert_eq!(view.transport, Some(saved.transport));
            saved
        };
        // Absent (an older UI): h1.
        assert_eq!(
            httvps(gateway_input("w", "wss://gw.example/ws"), None).transport,
            Transport::H1
        );
        let mut input = gateway_input("w", "wss://gw.example/ws");
        for transport in [Transport::H3, Transport::Auto] {
            input.transport = Some(transport);
            assert_eq!(httvps(input.clone(), None).transport, transport);
        }
        // Editing: the form's choice wins, back to h1 included; the
        // policies of the previous profile stay.
        let mut previous = HttvpsProfile::for_gateway("w", "wss://gw.example/ws");
        previous.transport = Transport::Auto;
        previous.reconnect.max_attempts = 3;
        let previous = Profile::Httvps(previous);
        input.transport = Some(Transport::H1);
        let edited = httvps(input.clone(), Some(&previous));
        assert_eq!(edited.transport, Transport::H1);
        assert_eq!(edited.reconnect.max_attempts, 3);

        // In the settings file (JSON): written only when not h1, and read back.
        let mut settings = Settings::default();
        input.transport = Some(Transport::H3);
        settings
            .profiles
            .push(input.clone().into_profile(None).unwrap());
        let json = serde_json::to_string(&settings).unwrap();
        assert!(json.contains(r#""transport":"h3""#), "{json}");
        let back: Settings = serde_json::from_str(&json).unwrap();
        assert_eq!(back, settings);
        input.transport = Some(Transport::H1);
        let h1 = serde_json::to_string(&input.into_profile(None).unwrap()).unwrap();
        assert!(!h1.contains("transport"), "{h1}");

        // From the UI's JSON.
        let from_ui: ProfileInput = serde_json::from_str(
            r#"{"name":"q","kind":"gateway","server":"wss://gw.example/ws","transport":"auto"}"#,
        )
        .unwrap();
        assert_eq!(from_ui.transport, Some(Transport::Auto));
        let bad = serde_json::from_str::<ProfileInput>(
            r#"{"name":"q","kind":"gateway","server":"wss://gw.example/ws","transport":"h2"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(bad.contains("h2"), "{bad}");
    }

    #[test]
    fn ht_profiles_take_no_transport() {
        let mut input = gateway_input("h", "https://ht.example:8443");
        input.protocol = Some(Protocol::Ht);
        input.kind = ProfileKind::PresharedKey;
        input.transport = Some(Transport::H3);
        let err = input.clone().into_profile(None).unwrap_err();
        assert_eq!(err.code, CommandCode::InvalidInput);
        assert!(err.message.contains("HTTVPS"), "{}", err.message);
        input.transport = Some(Transport::H1);
        let profile = input.into_profile(None).unwrap();
        assert_eq!(ProfileView::of(&profile, true).unwrap().transport, None);
    }

    #[test]
    fn the_typescript_transport_names_are_the_serde_names() {
        let cfg = ts_rs::Config::new();
        let decl = TransportName::decl(&cfg);
        let names: Vec<String> = [Transport::H1, Transport::H3, Transport::Auto]
            .iter()
            .map(|t| serde_json::to_string(t).unwrap())
            .collect();
        assert_eq!(names, [r#""h1""#, r#""h3""#, r#""auto""#]);
        assert_eq!(decl, format!("type Transport = {};", names.join(" | ")));
    }

    #[test]
    fn missing_ca_files_are_refused() {
        let mut input = gateway_input("w", "wss://gw.example/ws");
        input.ca_file = Some("/nonexistent/ca.pem".into());
        let err = input.into_profile(None).unwrap_err();
        assert!(err.message.contains("/nonexistent/ca.pem"));
    }

    #[test]
    fn the_listen_address_is_loopback_on_the_chosen_port() {
        let settings = Settings {
            proxy_port: 2080,
            ..Settings::default()
        };
        assert_eq!(settings.listen_for(None), "127.0.0.1:2080".parse().unwrap());
    }

    #[test]
    fn old_or_partial_settings_load_with_defaults() {
        let settings: Settings = serde_json::from_str(r#"{"start_minimized":true}"#).unwrap();
        assert!(settings.start_minimized);
        assert_eq!(settings.proxy_port, DEFAULT_PROXY_PORT);
    }

    #[test]
    fn settings_from_before_fast_connect_load_with_it_off() {
        // A settings file written before the field existed.
        let old = r#"{"profiles":[],"selected":null,"proxy_port":2080,
            "start_minimized":false,"autostart":true,"system_proxy":false,
            "saved_system_proxy":null}"#;
        let settings: Settings = serde_json::from_str(old).unwrap();
        assert!(!settings.fast_connect);
        assert_eq!(settings.proxy_port, 2080);
        assert!(settings.autostart);
        let prefs = Preferences::of(&settings);
        assert!(!prefs.fast_connect);

        // It round-trips once set.
        let on = Settings {
            fast_connect: true,
            ..settings
        };
        let back: Settings = serde_json::from_str(&serde_json::to_string(&on).unwrap()).unwrap();
        assert!(back.fast_connect);

        // Preferences from a UI that does not know the field: off.
        let prefs: Preferences = serde_json::from_str(
            r#"{"proxy_port":1080,"start_minimized":false,"autostart":false,"system_proxy":false}"#,
        )
        .unwrap();
        assert!(!prefs.fast_connect);
    }
}
