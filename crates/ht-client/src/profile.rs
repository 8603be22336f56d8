//! An HT profile: the server, how to trust it, and how to run the local
//! proxy and DNS server. The app layer's profile enum holds it as its
//! `protocol = "ht"` variant; its fields are the `[[profile]]` table of
//! `profiles.toml`. The key is never in it: it lives in a
//! `profiles::SecretStore` under the profile's name, as kind [`HT_KEY`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use engine::backoff::{ReconnectPolicy, secs_f64};
use profiles::{ProfileError, SecretKind, StoredProfile, check_name};
use routing::{Router, RuleSet};
use serde::{Deserialize, Serialize};

use crate::config::ServerUrl;

/// The keychain kind of the HT pre-shared key (64 hex characters).
pub const HT_KEY: SecretKind = SecretKind::new("ht-key");

/// The default number of transport connections per session.
pub const DEFAULT_CONNECTIONS: usize = 4;

/// Limits of the client side, in seconds in the file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HtLimits {
    /// How long a new proxy connection waits for a free stream slot.
    #[serde(with = "secs_f64")]
    pub slot_wait: Duration,
    /// How long a new proxy connection waits while the tunnel reconnects.
    #[serde(with = "secs_f64")]
    pub reconnect_wait: Duration,
    /// TCP connect + TLS + the response head of one transport connection.
    #[serde(with = "secs_f64")]
    pub connect_timeout: Duration,
    /// The server's answer to a stream open.
    #[serde(with = "secs_f64")]
    pub open_timeout: Duration,
}

impl Default for HtLimits {
    fn default() -> Self {
        HtLimits {
            slot_wait: Duration::from_secs(30),
            reconnect_wait: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(10),
            open_timeout: Duration::from_secs(30),
        }
    }
}

/// One HT profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HtProfile {
    /// Unique name; also the keychain account prefix.
    pub name: String,
    /// The server's base URL: `https://host[:port][/base]` (plain
    /// `http://` works, with a warning).
    pub url: String,
    /// Extra CA certificates (PEM) to trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Server certificate pin: hex SHA-256 of its SubjectPublicKeyInfo.
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
    /// Transport connections per session (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<usize>,
    /// Serve plain DNS here, answered through the server (off by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_listen: Option<SocketAddr>,
    /// Reconnect policy of the session.
    #[serde(default)]
    pub reconnect: ReconnectPolicy,
    /// Client-side limits.
    #[serde(default)]
    pub limits: HtLimits,
    /// Routing rules (split tunnelling): the `[profile.routing]` table,
    /// `default = "tunnel" | "direct" | "block"` and an ordered `rules`
    /// list (docs/routing.md). Absent: everything through the tunnel, as
    /// before rules existed; written only when set.
    #[serde(default, skip_serializing_if = "RuleSet::is_default")]
    pub routing: RuleSet,
}

impl HtProfile {
    /// A profile for a server URL with defaults everywhere else.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> HtProfile {
        HtProfile {
            name: name.into(),
            url: url.into(),
            ca_file: None,
            pin_sha256: None,
            sni: None,
            listen: None,
            proxy_username: None,
            connections: None,
            dns_listen: None,
            reconnect: ReconnectPolicy::default(),
            limits: HtLimits::default(),
            routing: RuleSet::default(),
        }
    }

    /// Checks the fields; the URL comes back parsed.
    pub fn server(&self) -> Result<ServerUrl, ProfileError> {
        let invalid = |message: &str| ProfileError::invalid(&self.name, message);
        check_name(&self.name)?;
        if let Some(pin) = &self.pin_sha256 {
            client_kit::decode_pin(pin).map_err(|m| invalid(&m))?;
        }
        if let Some(n) = self.connections
            && !(1..=64).contains(&n)
        {
            return Err(invalid("connections must be 1 to 64"));
        }
        ServerUrl::parse(&self.url).map_err(|e| invalid(&e.to_string()))
    }

    /// The local proxy address.
    pub fn listen(&self) -> SocketAddr {
        self.listen.unwrap_or(client_kit::DEFAULT_LISTEN)
    }

    /// Transport connections per session.
    pub fn connections(&self) -> usize {
        self.connections.unwrap_or(DEFAULT_CONNECTIONS)
    }

    /// The decoded pin, if any.
    pub fn pin(&self) -> Result<Option<[u8; 32]>, ProfileError> {
        self.pin_sha256
            .as_deref()
            .map(client_kit::decode_pin)
            .transpose()
            .map_err(|message| ProfileError::invalid(&self.name, &message))
    }
}

impl HtProfile {
    /// The validated routing rules; a bad rule is reported with the
    /// profile's name, the rule's position and what is wrong.
    pub fn router(&self) -> Result<Router, ProfileError> {
        self.routing
            .compile()
            .map_err(|e| ProfileError::invalid(&self.name, format!("routing: {e}")))
    }
}

impl StoredProfile for HtProfile {
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
    fn routing_rules_round_trip_and_bad_ones_are_named() {
        use routing::{Action, Rule, RuleKind};
        let mut file = ProfilesFile::default();
        let mut p = HtProfile::new("ht", "https://ht.example");
        p.routing
            .rules
            .push(Rule::new(RuleKind::Port, "25", Action::Block));
        file.upsert(p.clone());
        file.upsert(HtProfile::new("plain", "https://ht.example"));
        let text = toml::to_string(&file).unwrap();
        assert_eq!(text.matches("[profile.routing]").count(), 1, "{text}");
        let back: ProfilesFile<HtProfile> = toml::from_str(&text).unwrap();
        assert_eq!(back, file);
        p.routing
            .rules
            .push(Rule::new(RuleKind::Domain, "", Action::Direct));
        let err = p.validate().unwrap_err().to_string();
        assert!(
            err.contains("routing: rule 2 (domain → direct): domain needs a value"),
            "{err}"
        );
    }

    #[test]
    fn round_trips_through_toml_without_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = ProfileStore::at(dir.path().join("profiles.toml"));
        let mut file = ProfilesFile::default();
        let mut work = HtProfile::new("work", "https://ht.example");
        work.connections = Some(8);
        work.dns_listen = Some("127.0.0.1:5353".parse().unwrap());
        file.upsert(work.clone());
        store.save(&file).unwrap();
        let text = std::fs::read_to_string(store.path()).unwrap();
        assert!(!text.contains("key"), "{text}");
        let back: ProfilesFile<HtProfile> = store.load().unwrap();
        assert_eq!(back, file);
        assert_eq!(back.pick(Some("work")).unwrap().connections(), 8);
    }

    #[test]
    fn explains_bad_profiles() {
        let bad = |p: HtProfile| p.server().unwrap_err().to_string();
        assert!(bad(HtProfile::new("x", "wss://a/ws")).contains("https or http"));
        let mut many = HtProfile::new("x", "https://a");
        many.connections = Some(0);
        assert!(bad(many).contains("connections"));
        let mut pin = HtProfile::new("x", "https://a");
        pin.pin_sha256 = Some("zz".into());
        assert!(bad(pin).contains("64 hex"));
        assert!(HtProfile::new("x", "http://a:8080").server().is_ok());
    }
}
