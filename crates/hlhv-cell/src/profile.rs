//! An HLHV profile: the queen, how to trust it, what to publish where. The
//! app layer's profile enum holds it as its `protocol = "hlhv"` variant; its
//! fields are the `[[profile]]` table of `profiles.toml`. The cell key is
//! never in it: it lives in a `profiles::SecretStore` under the profile's
//! name, as kind [`CELL_KEY`].

use std::path::PathBuf;

use engine::ReconnectPolicy;
use net::Secret;
use profiles::{ProfileError, SecretKind, StoredProfile, check_name};
use serde::{Deserialize, Serialize};

use crate::config::{CellConfig, Checked};

/// The keychain kind of the cell key (the queen's `connKey`).
pub const CELL_KEY: SecretKind = SecretKind::new("cell-key");

/// One HLHV profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HlhvProfile {
    /// Unique name; also the keychain account prefix.
    pub name: String,
    /// The queen's cell port, `HOST:PORT` (port 2001 when absent).
    pub queen: String,
    /// Extra CA certificates (PEM) to trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Queen certificate pin: hex SHA-256 of its SubjectPublicKeyInfo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_sha256: Option<String>,
    /// TLS server name, when it differs from the queen's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Where to publish, `HOST/PATH` (`demo.example/app/`).
    pub mount: String,
    /// The local app, `http://127.0.0.1:PORT`.
    pub to: String,
    /// The largest request body passed on, in bytes (default 8 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body: Option<u64>,
    /// The URL shown to people, when it is not `https://HOST/PATH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Reconnect policy of the publication (after a queen restart).
    #[serde(default)]
    pub reconnect: ReconnectPolicy,
}

impl HlhvProfile {
    /// A profile with defaults everywhere but the queen, mount and app.
    pub fn new(
        name: impl Into<String>,
        queen: impl Into<String>,
        mount: impl Into<String>,
        to: impl Into<String>,
    ) -> HlhvProfile {
        HlhvProfile {
            name: name.into(),
            queen: queen.into(),
            ca_file: None,
            pin_sha256: None,
            sni: None,
            mount: mount.into(),
            to: to.into(),
            max_body: None,
            public_url: None,
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

    /// The cell settings of this profile with `key`.
    pub fn cell_config(&self, key: Secret) -> Result<CellConfig, ProfileError> {
        check_name(&self.name)?;
        let mut config = CellConfig::new(&self.queen, &self.mount, &self.to, key);
        config.tls.ca_file = self.ca_file.clone();
        config.tls.pin_sha256 = self.pin()?;
        config.tls.sni = self.sni.clone();
        config.public_url = self.public_url.clone();
        if let Some(max) = self.max_body {
            config.max_body = max;
        }
        Ok(config)
    }

    /// Checks the fields; they come back parsed.
    pub fn check(&self) -> Result<Checked, ProfileError> {
        // A placeholder key: the profile is checked without its secret.
        self.cell_config(Secret::new("-"))?
            .validate()
            .map_err(|e| ProfileError::invalid(&self.name, e.to_string()))
    }
}

impl StoredProfile for HlhvProfile {
    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self) -> Result<(), ProfileError> {
        self.check().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use profiles::{ProfileStore, ProfilesFile};

    #[test]
    fn round_trips_through_toml_without_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = ProfileStore::at(dir.path().join("profiles.toml"));
        let mut file = ProfilesFile::default();
        let mut demo = HlhvProfile::new(
            "demo",
            "queen.example:2001",
            "demo.example/app/",
            "http://127.0.0.1:3000",
        );
        demo.max_body = Some(1024);
        demo.pin_sha256 = Some("ab".repeat(32));
        file.upsert(demo.clone());
        store.save(&file).unwrap();
        let text = std::fs::read_to_string(store.path()).unwrap();
        assert!(!text.contains("key"), "{text}");
        let back: ProfilesFile<HlhvProfile> = store.load().unwrap();
        assert_eq!(back, file);
        let config = back
            .pick(Some("demo"))
            .unwrap()
            .cell_config(Secret::new("k"))
            .unwrap();
        assert_eq!(config.max_body, 1024);
        assert_eq!(config.tls.pin_sha256, Some([0xab; 32]));
    }

    #[test]
    fn explains_bad_profiles() {
        let bad = |p: HlhvProfile| p.validate().unwrap_err().to_string();
        let good = HlhvProfile::new("x", "q:2001", "d.example/", "http://127.0.0.1:1");
        assert!(good.validate().is_ok());
        let mut pin = good.clone();
        pin.pin_sha256 = Some("zz".into());
        assert!(bad(pin).contains("64 hex"));
        let mut to = good.clone();
        to.to = "127.0.0.1:1".into();
        assert!(bad(to).contains("http://"));
        let mut name = good;
        name.name = "a/b".into();
        assert!(bad(name).contains("name"));
        assert_eq!(CELL_KEY.name(), "cell-key");
    }
}
