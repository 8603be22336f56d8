//! From a saved HT profile and its key to what `engine::Engine::start`
//! needs: the one place where the CLI and the desktop app turn an
//! [`HtProfile`] into a transport and proxy settings, so both connect the
//! same way. Where the key comes from (keychain, stdin, environment) is the
//! caller's business.

use std::sync::Arc;

use engine::StartOptions;
use local_proxy::ProxyConfig;
use net::Secret;
use profiles::ProfileError;
use proto_ht::Key;

use crate::config::HtClientConfig;
use crate::error::HtError;
use crate::profile::HtProfile;
use crate::transport::HtTransport;

/// A profile could not be turned into a tunnel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// The profile's fields are invalid.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The key is not 64 hex characters (the key itself is never shown).
    #[error("profile {0:?}: the HT key must be 64 hex characters (32 bytes)")]
    BadKey(String),
    /// The transport could not be set up (TLS files, settings).
    #[error("profile {profile:?}: {source}")]
    Transport {
        /// The profile.
        profile: String,
        /// What went wrong.
        source: HtError,
    },
    /// The local proxy has a user name but no password.
    #[error("profile {0:?}: the local proxy has a user name but no password")]
    MissingProxyPassword(String),
}

/// The client settings of a profile with its key.
pub fn client_config(profile: &HtProfile, key: Key) -> Result<HtClientConfig, LaunchError> {
    profile.server()?;
    let mut config = HtClientConfig::new(profile.url.clone(), key);
    config.tls.ca_file = profile.ca_file.clone();
    config.tls.pin_sha256 = profile.pin()?;
    config.tls.sni = profile.sni.clone();
    config.connections = profile.connections();
    config.connect_timeout = profile.limits.connect_timeout;
    config.open_timeout = profile.limits.open_timeout;
    Ok(config)
}

/// The HT transport for a profile, given its key as 64 hex characters.
pub fn transport(profile: &HtProfile, key: Secret) -> Result<HtTransport, LaunchError> {
    let key = Key::from_hex(key.expose().trim())
        .map_err(|_| LaunchError::BadKey(profile.name.clone()))?;
    HtTransport::new(client_config(profile, key)?).map_err(|source| LaunchError::Transport {
        profile: profile.name.clone(),
        source,
    })
}

/// The local proxy settings for a profile, its routing rules included;
/// `password` is needed when the profile has a proxy user name.
pub fn proxy_config(
    profile: &HtProfile,
    password: Option<Secret>,
) -> Result<ProxyConfig, LaunchError> {
    // The rules first: a bad one names the profile and the rule.
    let router = profile.router()?;
    client_kit::proxy_config(
        profile.listen(),
        profile.proxy_username.as_deref(),
        password,
    )
    .map(|config| ProxyConfig {
        rules: Arc::new(router),
        ..config
    })
    .map_err(|_| LaunchError::MissingProxyPassword(profile.name.clone()))
}

/// Start options from a profile's policies, a transport and proxy settings.
/// `retry_initial`: whether a failed first connect is retried like a lost
/// session.
pub fn start_options(
    profile: &HtProfile,
    transport: HtTransport,
    proxy: ProxyConfig,
    retry_initial: bool,
) -> StartOptions {
    StartOptions {
        transport: Arc::new(transport),
        proxy,
        reconnect: profile.reconnect,
        retry_initial,
        slot_wait: profile.limits.slot_wait,
        reconnect_wait: profile.limits.reconnect_wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_key_is_refused_without_showing_it() {
        let profile = HtProfile::new("p", "https://ht.example");
        let err = transport(&profile, Secret::new("not-a-key-secret")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("64 hex") && !text.contains("not-a-key-secret"),
            "{text}"
        );
        assert!(transport(&profile, Secret::new("ab".repeat(32))).is_ok());
    }

    #[test]
    fn the_profile_sets_connections_and_trust() {
        let mut profile = HtProfile::new("p", "https://ht.example");
        profile.connections = Some(2);
        profile.pin_sha256 = Some("cd".repeat(32));
        let config = client_config(&profile, Key::from_hex(&"ab".repeat(32)).unwrap()).unwrap();
        assert_eq!(config.connections, 2);
        assert_eq!(config.tls.pin_sha256, Some([0xcd; 32]));
    }
}
