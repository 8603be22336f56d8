//! A Relay profile: the relay, how to trust it, which local ports to share
//! under which tunnel name. The app layer's profile enum holds it as its
//! `protocol = "relay"` variant; its fields are the `[[profile]]` table of
//! `profiles.toml`. Secrets are never in it: the JWT lives in a
//! `profiles::SecretStore` under the profile's name as kind [`RELAY_TOKEN`],
//! and the device's WireGuard private key under [`DEVICE`] as kind
//! [`WIREGUARD_KEY`].

use std::path::PathBuf;

use engine::ReconnectPolicy;
use profiles::{ProfileError, SecretKind, StoredProfile, check_name};
use serde::{Deserialize, Serialize};

/// The keychain kind of the relay's JWT.
pub const RELAY_TOKEN: SecretKind = SecretKind::new("relay-token");
/// The keychain kind of this device's WireGuard private key.
pub const WIREGUARD_KEY: SecretKind = SecretKind::new("wireguard-key");
/// The keychain "profile" the device key is stored under: one key per
/// device, whatever the profile (the relay sees one machine).
pub const DEVICE: &str = "this-device";

/// The relay's control port when a profile names none (the contract's
/// default, TLS on 443).
pub const DEFAULT_PORT: u16 = 443;

/// One Relay profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayProfile {
    /// Unique name; also the keychain account prefix.
    pub name: String,
    /// The relay's control channel, `HOST[:PORT]` (port 443 when absent).
    pub relay: String,
    /// Extra CA certificates (PEM) to trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Relay certificate pin: hex SHA-256 of its SubjectPublicKeyInfo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_sha256: Option<String>,
    /// TLS server name, when it differs from the relay's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// The tunnel's name at the relay (unique per account there).
    pub tunnel: String,
    /// The local TCP ports shared (reached at 127.0.0.1:PORT).
    pub ports: Vec<u16>,
    /// Reconnect policy (seed 004 §6.1 by default).
    #[serde(default)]
    pub reconnect: ReconnectPolicy,
}

impl RelayProfile {
    /// A profile with defaults everywhere but the relay, name and ports.
    pub fn new(
        name: impl Into<String>,
        relay: impl Into<String>,
        tunnel: impl Into<String>,
        ports: Vec<u16>,
    ) -> RelayProfile {
        RelayProfile {
            name: name.into(),
            relay: relay.into(),
            ca_file: None,
            pin_sha256: None,
            sni: None,
            tunnel: tunnel.into(),
            ports,
            reconnect: ReconnectPolicy::default(),
        }
    }

    /// The decoded pin, if any.
    pub fn pin(&self) -> Result<Option<[u8; 32]>, ProfileError> {
        self.pin_sha256
            .as_deref()
            .map(client_kit::decode_pin)
            .transpose()
            .map_err(|message| ProfileError::invalid(&self.name, message))
    }

    /// The relay's host and port.
    pub fn relay_addr(&self) -> Result<(String, u16), ProfileError> {
        split_host_port(&self.relay, DEFAULT_PORT)
            .map_err(|message| ProfileError::invalid(&self.name, message))
    }

    /// Checks the fields (the same rules as the relay's, so a bad profile
    /// is refused here rather than by the server).
    pub fn check(&self) -> Result<(), ProfileError> {
        check_name(&self.name)?;
        self.relay_addr()?;
        self.pin()?;
        // The relay's own rules (proto_relay::validate), with a stand-in key:
        // the device key is not part of the profile.
        let info = proto_relay::TunnelInfo {
            name: self.tunnel.clone(),
            protocol: "tcp".to_owned(),
            ports: self.ports.clone(),
            public_key: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_owned(),
        };
        if let Err(e) =
            proto_relay::validate_tunnel_info(&info, &proto_relay::TunnelLimits::default())
        {
            let message = if e.reason == "invalid_name" {
                format!("tunnel name {:?}: {e}", self.tunnel)
            } else {
                format!("ports: {e}")
            };
            return Err(ProfileError::invalid(&self.name, message));
        }
        Ok(())
    }
}

impl StoredProfile for RelayProfile {
    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self) -> Result<(), ProfileError> {
        self.check()
    }
}

/// `HOST[:PORT]` or `[V6]:PORT` into host and port.
pub fn split_host_port(text: &str, default_port: u16) -> Result<(String, u16), String> {
    let text = text.trim();
    let bad = || format!("{text:?} is not HOST[:PORT]");
    if text.is_empty() || text.contains('/') {
        return Err(bad());
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if after.is_empty() => default_port,
            None => return Err(bad()),
        };
        return Ok((host.to_owned(), port));
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => {
            let port: u16 = port.parse().map_err(|_| bad())?;
            if host.is_empty() || port == 0 {
                return Err(bad());
            }
            Ok((host.to_owned(), port))
        }
        Some(_) => Err(bad()),
        None => Ok((text.to_owned(), default_port)),
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
        let mut file = ProfilesFile::default();
        let mut office = RelayProfile::new("office", "relay.example:8443", "desk", vec![22, 3389]);
        office.pin_sha256 = Some("ab".repeat(32));
        file.upsert(office.clone());
        store.save(&file).unwrap();
        let text = std::fs::read_to_string(store.path()).unwrap();
        assert!(!text.contains("token") && !text.contains("key"), "{text}");
        let back: ProfilesFile<RelayProfile> = store.load().unwrap();
        assert_eq!(back, file);
        assert_eq!(
            back.pick(Some("office")).unwrap().relay_addr().unwrap(),
            ("relay.example".to_owned(), 8443)
        );
    }

    #[test]
    fn explains_bad_profiles() {
        let bad = |p: RelayProfile| p.validate().unwrap_err().to_string();
        let good = RelayProfile::new("x", "relay.example", "desk", vec![22]);
        assert!(good.validate().is_ok());
        assert_eq!(good.relay_addr().unwrap().1, DEFAULT_PORT);
        let mut ports = good.clone();
        ports.ports = vec![];
        assert!(bad(ports).contains("ports"));
        let mut dup = good.clone();
        dup.ports = vec![22, 22];
        assert!(bad(dup).contains("ports"));
        let mut tunnel = good.clone();
        tunnel.tunnel = "a b".into();
        assert!(bad(tunnel).contains("tunnel name"));
        let mut relay = good.clone();
        relay.relay = "relay.example:99999".into();
        assert!(bad(relay).contains("HOST[:PORT]"));
        let mut pin = good;
        pin.pin_sha256 = Some("zz".into());
        assert!(bad(pin).contains("64 hex"));
    }

    #[test]
    fn splits_host_and_port() {
        assert_eq!(
            split_host_port("[::1]:9", 443).unwrap(),
            ("::1".to_owned(), 9)
        );
        assert_eq!(
            split_host_port("[::1]", 443).unwrap(),
            ("::1".to_owned(), 443)
        );
        assert_eq!(split_host_port("h:1", 443).unwrap(), ("h".to_owned(), 1));
        assert!(split_host_port("::1", 443).is_err());
        assert!(split_host_port("h:0", 443).is_err());
        assert!(split_host_port("", 443).is_err());
    }
}
