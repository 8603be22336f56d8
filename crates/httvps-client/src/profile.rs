//! An HTTVPS profile: how to reach a gateway (a session token, or a device
//! login through the control plane) and how to run the local proxy. The app
//! layer's profile enum holds it as its `protocol = "httvps"` variant; its
//! fields are the `[[profile]]` table of `profiles.toml`. Secrets are never in
//! it: they live in a `profiles::SecretStore` under the profile's name.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use routing::{Router, RuleSet};
use serde::{Deserialize, Serialize};

use client_kit::decode_pin;
use engine::backoff::{ReconnectPolicy, secs_f64};
use profiles::{ProfileError, SecretKind, StoredProfile, check_name};

use crate::Transport;

pub use client_kit::DEFAULT_LISTEN;

/// The keychain kind of a gateway session token (single-use with a real
/// backend).
pub const SESSION_TOKEN: SecretKind = SecretKind::new("session-token");
/// The keychain kind of a control-plane device token.
pub const DEVICE_TOKEN: SecretKind = SecretKind::new("device-token");

/// Limits of the client side, in seconds in the file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientLimits {
    /// How long a new proxy connection waits for a free stream slot.
    #[serde(with = "secs_f64")]
    pub slot_wait: Duration,
    /// How long a new proxy connection waits while the tunnel reconnects.
    #[serde(with = "secs_f64")]
    pub reconnect_wait: Duration,
    /// Handshake limit (TCP + TLS + WebSocket + ready).
    #[serde(with = "secs_f64")]
    pub handshake_timeout: Duration,
    /// Time between keepalive pings.
    #[serde(with = "secs_f64")]
    pub keepalive_interval: Duration,
    /// Silence after which the session is declared lost.
    #[serde(with = "secs_f64")]
    pub dead_after: Duration,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            slot_wait: Duration::from_secs(30),
            reconnect_wait: Duration::from_secs(15),
            handshake_timeout: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(15),
            dead_after: Duration::from_secs(45),
        }
    }
}

/// One HTTVPS profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttvpsProfile {
    /// Unique name; also the keychain account prefix.
    pub name: String,
    /// A gateway URL (`wss://host:port/ws`), used with a session token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// A control-plane URL (`https://api.example`), used with a device login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// The device id for the control plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Preferred region for the control plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Extra CA certificates (PEM) to trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Gateway certificate pin: hex SHA-256 of its SubjectPublicKeyInfo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_sha256: Option<String>,
    /// TLS server name, when it differs from the URL's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Local proxy address (default 127.0.0.1:1080).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Local proxy user name; the password is in the keychain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_username: Option<String>,
    /// Reconnect policy.
    #[serde(default)]
    pub reconnect: ReconnectPolicy,
    /// Client-side limits.
    #[serde(default)]
    pub limits: ClientLimits,
    /// Answer a proxy client as soon as a stream is opened, before the
    /// gateway confirms it reached the target: one tunnel round trip less per
    /// new connection (what ss-local and the base protocol do), but an
    /// unreachable target shows as a closed connection instead of a precise
    /// SOCKS/HTTP refusal. See `ClientConfig::optimistic_open`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optimistic_open: bool,
    /// What carries the WebSocket: `h1` (HTTP/1.1 over TLS and TCP, the
    /// default and what every gateway speaks), `h3` (HTTP/3 over QUIC, UDP to
    /// the URL's port) or `auto` (HTTP/3, falling back to HTTP/1.1). Written
    /// only when not `h1`. See `ClientConfig::transport`.
    #[serde(default, skip_serializing_if = "is_h1")]
    pub transport: Transport,
    /// Routing rules (split tunnelling): the `[profile.routing]` table,
    /// `default = "tunnel" | "direct" | "block"` and an ordered `rules`
    /// list (docs/routing.md). Absent: everything through the tunnel, as
    /// before rules existed; written only when set.
    #[serde(default, skip_serializing_if = "RuleSet::is_default")]
    pub routing: RuleSet,
}

fn is_h1(transport: &Transport) -> bool {
    *transport == Transport::H1
}

/// How a profile authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerSpec<'a> {
    /// Straight to a gateway with a session token.
    Gateway(&'a str),
    /// Through the control plane with device credentials.
    ControlPlane {
        /// The control-plane URL.
        backend: &'a str,
        /// The device id.
        device_id: &'a str,
    },
}

impl HttvpsProfile {
    /// A profile with only a name: no server yet, defaults everywhere else.
    pub fn new(name: impl Into<String>) -> HttvpsProfile {
        HttvpsProfile {
            name: name.into(),
            gateway: None,
            backend: None,
            device_id: None,
            region: None,
            ca_file: None,
            pin_sha256: None,
            sni: None,
            listen: None,
            proxy_username: None,
            reconnect: ReconnectPolicy::default(),
            limits: ClientLimits::default(),
            optimistic_open: false,
            transport: Transport::H1,
            routing: RuleSet::default(),
        }
    }

    /// A profile for a gateway URL with defaults everywhere else.
    pub fn for_gateway(name: impl Into<String>, gateway: impl Into<String>) -> HttvpsProfile {
        HttvpsProfile {
            gateway: Some(gateway.into()),
            ..HttvpsProfile::new(name)
        }
    }

    /// Checks the fields and says how this profile reaches its server.
    pub fn server(&self) -> Result<ServerSpec<'_>, ProfileError> {
        let invalid = |message: &str| ProfileError::invalid(&self.name, message);
        check_name(&self.name)?;
        if let Some(pin) = &self.pin_sha256 {
            decode_pin(pin).map_err(|m| invalid(&m))?;
        }
        match (&self.gateway, &self.backend, &self.device_id) {
            (Some(gw), None, None) => {
                if !gw.starts_with("wss://") {
                    return Err(invalid(
                        "gateway must be a wss:// URL, e.g. wss://gw.example/ws",
                    ));
                }
                Ok(ServerSpec::Gateway(gw))
            }
            (None, Some(backend), Some(device_id)) => {
                if !(backend.starts_with("https://") || backend.starts_with("http://")) {
                    return Err(invalid("backend must be an https:// URL"));
                }
                Ok(ServerSpec::ControlPlane { backend, device_id })
            }
            (None, Some(_), None) => Err(invalid("a backend needs a device_id")),
            (None, None, Some(_)) => Err(invalid("a device_id needs a backend URL")),
            (None, None, None) => Err(invalid(
                "set either gateway = \"wss://…\" or backend + device_id",
            )),
            _ => Err(invalid(
                "set either gateway or backend + device_id, not both",
            )),
        }
    }

    /// The local proxy address.
    pub fn listen(&self) -> SocketAddr {
        self.listen.unwrap_or(DEFAULT_LISTEN)
    }

    /// The decoded pin, if any.
    pub fn pin(&self) -> Result<Option<[u8; 32]>, ProfileError> {
        self.pin_sha256
            .as_deref()
            .map(decode_pin)
            .transpose()
            .map_err(|message| ProfileError::Invalid {
                name: self.name.clone(),
                message,
            })
    }

    /// The secret this profile needs to connect: a session token for a
    /// gateway, a device token for a control plane.
    pub fn token_kind(&self) -> Result<SecretKind, ProfileError> {
        Ok(match self.server()? {
            ServerSpec::Gateway(_) => SESSION_TOKEN,
            ServerSpec::ControlPlane { .. } => DEVICE_TOKEN,
        })
    }
}

impl HttvpsProfile {
    /// The validated routing rules; a bad rule is reported with the
    /// profile's name, the rule's position and what is wrong.
    pub fn router(&self) -> Result<Router, ProfileError> {
        self.routing
            .compile()
            .map_err(|e| ProfileError::invalid(&self.name, format!("routing: {e}")))
    }
}

impl StoredProfile for HttvpsProfile {
    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self) -> Result<(), ProfileError> {
        self.server()?;
        self.router().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use profiles::{ProfileStore, ProfilesFile};

    #[test]
    fn round_trips_through_toml_without_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let store = ProfileStore::at(dir.path().join("profiles.toml"));
        assert_eq!(
            store.load::<HttvpsProfile>().unwrap(),
            ProfilesFile::default()
        );
        let mut file = ProfilesFile::default();
        let mut work = HttvpsProfile::for_gateway("work", "wss://gw.example/ws");
        work.pin_sha256 = Some("ab".repeat(32));
        work.proxy_username = Some("me".into());
        file.upsert(work.clone());
        file.upsert(HttvpsProfile {
            backend: Some("https://api.example".into()),
            device_id: Some("dev-1".into()),
            ..HttvpsProfile::new("home")
        });
        file.default = Some("work".into());
        store.save(&file).unwrap();
        let text = std::fs::read_to_string(store.path()).unwrap();
        assert!(
            !text.to_lowercase().contains("token") && !text.contains("password"),
            "{text}"
        );
        let back: ProfilesFile<HttvpsProfile> = store.load().unwrap();
        assert_eq!(back, file);
        assert_eq!(back.pick(None).unwrap().name, "work");
        assert_eq!(
            back.pick(Some("home")).unwrap().server().unwrap(),
            ServerSpec::ControlPlane {
                backend: "https://api.example",
                device_id: "dev-1"
            }
        );
    }

    #[test]
    fn routing_rules_load_from_toml_and_bad_ones_are_named() {
        use routing::{Action, Rule, RuleKind};
        let text = r#"
            [[profile]]
            name = "work"
            gateway = "wss://gw.example/ws"

            [profile.routing]
            default = "direct"
            rules = [
              { match = "domain-suffix", value = "corp.example", action = "tunnel" },
              { match = "private", action = "direct" },
            ]

            [[profile]]
            name = "old"
            gateway = "wss://gw.example/ws"
        "#;
        let file: ProfilesFile<HttvpsProfile> = toml::from_str(text).unwrap();
        let work = file.pick(Some("work")).unwrap();
        assert_eq!(work.routing.default, Action::Direct);
        assert_eq!(
            work.routing.rules[0],
            Rule::new(RuleKind::DomainSuffix, "corp.example", Action::Tunnel)
        );
        work.validate().unwrap();
        // A file from before rules: everything through the tunnel, and
        // nothing new is written back.
        let old = file.pick(Some("old")).unwrap();
        assert!(old.routing.is_default());
        assert!(!toml::to_string(old).unwrap().contains("routing"));
        let mut bad = work.clone();
        bad.routing
            .rules
            .push(Rule::new(RuleKind::Ip, "10.0.0.0/40", Action::Block));
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("\"work\""), "{err}");
        assert!(
            err.contains("routing: rule 3 (ip 10.0.0.0/40 → block)"),
            "{err}"
        );
    }

    #[test]
    fn explains_bad_profiles() {
        let bad = |p: HttvpsProfile| p.server().unwrap_err().to_string();
        assert!(bad(HttvpsProfile::for_gateway("x", "http://a")).contains("wss://"));
        let both = HttvpsProfile {
            backend: Some("https://a".into()),
            ..HttvpsProfile::for_gateway("x", "wss://a/ws")
        };
        assert!(bad(both).contains("not both"));
        let no_device = HttvpsProfile {
            backend: Some("https://a".into()),
            ..HttvpsProfile::new("x")
        };
        assert!(bad(no_device).contains("device_id"));
        let bad_pin = HttvpsProfile {
            pin_sha256: Some("zz".into()),
            ..HttvpsProfile::for_gateway("x", "wss://a/ws")
        };
        assert!(bad(bad_pin).contains("64 hex"));
    }

    #[test]
    fn optimistic_open_is_written_only_when_on() {
        let mut file = ProfilesFile::default();
        file.upsert(HttvpsProfile::for_gateway("careful", "wss://gw.example/ws"));
        let mut fast = HttvpsProfile::for_gateway("fast", "wss://gw.example/ws");
        fast.optimistic_open = true;
        file.upsert(fast);
        let text = toml::to_string_pretty(&file).unwrap();
        assert_eq!(text.matches("optimistic_open = true").count(), 1, "{text}");
        assert!(!text.contains("optimistic_open = false"), "{text}");
        let back: ProfilesFile<HttvpsProfile> = toml::from_str(&text).unwrap();
        assert_eq!(back, file);
    }

    #[test]
    fn the_transport_is_written_only_when_not_h1() {
        let mut file = ProfilesFile::default();
        file.upsert(HttvpsProfile::for_gateway("tcp", "wss://gw.example/ws"));
        let mut quic = HttvpsProfile::for_gateway("quic", "wss://gw.example/ws");
        quic.transport = Transport::H3;
        file.upsert(quic);
        let mut either = HttvpsProfile::for_gateway("either", "wss://gw.example/ws");
        either.transport = Transport::Auto;
        file.upsert(either);
        let text = toml::to_string_pretty(&file).unwrap();
        assert_eq!(text.matches("transport = ").count(), 2, "{text}");
        assert!(text.contains("transport = \"h3\""), "{text}");
        assert!(text.contains("transport = \"auto\""), "{text}");
        assert!(!text.contains("\"h1\""), "{text}");
        let back: ProfilesFile<HttvpsProfile> = toml::from_str(&text).unwrap();
        assert_eq!(back, file);
    }

    #[test]
    fn files_without_a_transport_load_as_h1_and_bad_ones_are_explained() {
        let old = "[[profile]]\nname = \"w\"\ngateway = \"wss://gw.example/ws\"\n";
        let file: ProfilesFile<HttvpsProfile> = toml::from_str(old).unwrap();
        assert_eq!(file.profiles[0].transport, Transport::H1);
        let explicit = format!("{old}transport = \"h1\"\n");
        let file: ProfilesFile<HttvpsProfile> = toml::from_str(&explicit).unwrap();
        assert_eq!(file.profiles[0].transport, Transport::H1);
        let bad = format!("{old}transport = \"h2\"\n");
        let err = toml::from_str::<ProfilesFile<HttvpsProfile>>(&bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("h2") && err.contains("h3"), "{err}");
    }
}
