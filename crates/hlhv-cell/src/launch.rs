//! From a saved HLHV profile and its cell key to what
//! `engine::Engine::publish` needs: the one place where the CLI and the
//! desktop app turn an [`HlhvProfile`] into a publisher, so both publish the
//! same way. Where the key comes from (keychain, `HTTVPS_CELL_KEY`, stdin)
//! is the caller's business.

use std::sync::Arc;

use engine::PublishOptions;
use net::Secret;
use profiles::ProfileError;

use crate::config::CellConfig;
use crate::error::HlhvError;
use crate::profile::HlhvProfile;
use crate::publisher::HlhvPublisher;

/// A profile could not be turned into a publisher.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// The profile's fields are invalid.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The key is empty (the key itself is never shown).
    #[error("profile {0:?}: the cell key is empty")]
    EmptyKey(String),
    /// The publisher could not be set up (TLS files, settings).
    #[error("profile {profile:?}: {source}")]
    Publisher {
        /// The profile.
        profile: String,
        /// What went wrong.
        source: HlhvError,
    },
}

/// The cell settings of a profile with its key.
pub fn cell_config(profile: &HlhvProfile, key: Secret) -> Result<CellConfig, LaunchError> {
    if key.expose().trim().is_empty() {
        return Err(LaunchError::EmptyKey(profile.name.clone()));
    }
    Ok(profile.cell_config(Secret::new(key.expose().trim()))?)
}

/// The publisher for a profile, given its cell key.
pub fn publisher(profile: &HlhvProfile, key: Secret) -> Result<HlhvPublisher, LaunchError> {
    HlhvPublisher::new(cell_config(profile, key)?).map_err(|source| LaunchError::Publisher {
        profile: profile.name.clone(),
        source,
    })
}

/// Publish options from a profile's policy and its publisher.
/// `retry_initial`: whether a failed first connect is retried like a lost
/// publication.
pub fn publish_options(
    profile: &HlhvProfile,
    publisher: HlhvPublisher,
    retry_initial: bool,
) -> PublishOptions {
    PublishOptions {
        publisher: Arc::new(publisher),
        reconnect: profile.reconnect,
        retry_initial,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::Publisher;

    fn profile() -> HlhvProfile {
        HlhvProfile::new(
            "p",
            "127.0.0.1:2001",
            "demo.example/app/",
            "http://127.0.0.1:3000",
        )
    }

    #[test]
    fn an_empty_key_is_refused_and_a_bad_profile_named() {
        assert!(matches!(
            publisher(&profile(), Secret::new("  ")),
            Err(LaunchError::EmptyKey(_))
        ));
        let mut bad = profile();
        bad.mount = "".into();
        let err = publisher(&bad, Secret::new("secret-cell-key")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("mount") && !text.contains("secret-cell-key"),
            "{text}"
        );
    }

    #[test]
    fn the_profile_sets_trust_limits_and_the_public_url() {
        let mut p = profile();
        p.pin_sha256 = Some("cd".repeat(32));
        p.max_body = Some(10);
        p.public_url = Some("https://pretty.example/".into());
        let publisher = publisher(&p, Secret::new("k")).unwrap();
        assert_eq!(publisher.public_url(), "https://pretty.example/");
        assert_eq!(publisher.server(), "127.0.0.1:2001");
        let debug = format!("{publisher:?}");
        assert!(!debug.contains("\"k\""), "{debug}");
        let config = cell_config(&p, Secret::new(" k\n")).unwrap();
        assert_eq!(config.key.expose(), "k");
        assert_eq!(config.max_body, 10);
        assert_eq!(config.tls.pin_sha256, Some([0xcd; 32]));
    }
}
