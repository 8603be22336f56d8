//! From a saved Relay profile, its JWT and this device's WireGuard key to
//! what `engine::Engine::publish` needs: the one place where the CLI and
//! the desktop app turn a [`RelayProfile`] into a share, so both share the
//! same way.

use std::sync::Arc;

use engine::{PublishOptions, ReconnectPolicy};
use net::Secret;
use profiles::{SecretError, SecretStore, account};
use wg_userspace::PrivateKey;

use crate::error::ShareError;
use crate::profile::{DEVICE, RelayProfile, WIREGUARD_KEY};
use crate::publisher::{RelayPublisher, ShareConfig};

/// The share settings of `profile` with its JWT and the device key.
pub fn share_config(
    profile: &RelayProfile,
    token: Secret,
    private_key: PrivateKey,
) -> Result<ShareConfig, ShareError> {
    profile
        .check()
        .map_err(|e| ShareError::InvalidConfig(e.to_string()))?;
    let token = token.expose().trim();
    if token.is_empty() {
        return Err(ShareError::InvalidConfig(format!(
            "profile {:?}: the relay token is empty",
            profile.name
        )));
    }
    let (host, port) = profile
        .relay_addr()
        .map_err(|e| ShareError::InvalidConfig(e.to_string()))?;
    let mut config = ShareConfig::new(
        host,
        port,
        Secret::new(token),
        profile.tunnel.clone(),
        profile.ports.clone(),
        private_key,
    );
    config.tls.ca_file = profile.ca_file.clone();
    config.tls.pin_sha256 = profile
        .pin()
        .map_err(|e| ShareError::InvalidConfig(e.to_string()))?;
    config.tls.sni = profile.sni.clone();
    let policy = profile.reconnect;
    config.reconnect = proto_relay::ReconnectPolicy {
        initial_delay: policy.initial_delay,
        factor: policy.backoff_factor.round().clamp(1.0, 16.0) as u32,
        max_delay: policy.max_delay,
        max_attempts: policy.max_attempts,
    };
    Ok(config)
}

/// The publisher for a profile.
pub fn publisher(
    profile: &RelayProfile,
    token: Secret,
    private_key: PrivateKey,
) -> Result<RelayPublisher, ShareError> {
    RelayPublisher::new(share_config(profile, token, private_key)?)
}

/// Publish options for a share: the protocol resumes its tunnel itself, so
/// the engine adds no reconnect loop of its own.
pub fn publish_options(publisher: RelayPublisher) -> PublishOptions {
    PublishOptions {
        publisher: Arc::new(publisher),
        reconnect: ReconnectPolicy {
            max_attempts: 0,
            ..ReconnectPolicy::default()
        },
        retry_initial: false,
    }
}

/// This device's WireGuard key from `store`, made and saved on first use.
pub fn device_key(store: &dyn SecretStore) -> Result<PrivateKey, SecretError> {
    if let Some(saved) = store.get(&account(DEVICE, WIREGUARD_KEY))? {
        if let Ok(key) = PrivateKey::from_base64(saved.expose().trim()) {
            return Ok(key);
        }
        tracing::warn!("the saved WireGuard key is unreadable: making a new one");
    }
    let key = PrivateKey::generate();
    store.set(
        &account(DEVICE, WIREGUARD_KEY),
        &Secret::new(key.to_base64()),
    )?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use profiles::MemoryStore;

    #[test]
    fn the_device_key_is_made_once_and_kept() {
        let store = MemoryStore::default();
        let first = device_key(&store).unwrap();
        let again = device_key(&store).unwrap();
        assert_eq!(first.public_key(), again.public_key());
        store
            .set(&account(DEVICE, WIREGUARD_KEY), &Secret::new("garbage"))
            .unwrap();
        let replaced = device_key(&store).unwrap();
        assert_ne!(replaced.public_key(), first.public_key());
    }

    #[test]
    fn a_profile_becomes_a_share_without_leaking_the_token() {
        let mut profile = RelayProfile::new("office", "relay.example:8443", "desk", vec![22]);
        profile.pin_sha256 = Some("cd".repeat(32));
        let config = share_config(
            &profile,
            Secret::new(" jwt-secret\n"),
            PrivateKey::generate(),
        )
        .unwrap();
        assert_eq!((config.host.as_str(), config.port), ("relay.example", 8443));
        assert_eq!(config.token.expose(), "jwt-secret");
        assert_eq!(config.tls.pin_sha256, Some([0xcd; 32]));
        assert_eq!(config.reconnect, proto_relay::ReconnectPolicy::default());
        assert!(!format!("{config:?}").contains("jwt-secret"));
        let empty = share_config(&profile, Secret::new("  "), PrivateKey::generate());
        assert!(matches!(empty, Err(ShareError::InvalidConfig(_))));
    }
}
