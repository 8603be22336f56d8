//! From a saved HTTVPS profile and its secrets to what `engine::Engine::start`
//! needs.
//!
//! The one place where the CLI and the desktop app turn an [`HttvpsProfile`]
//! into a transport and proxy settings, so both connect the same way. Where
//! the secrets come from (keychain, stdin, environment) is the caller's
//! business.

use std::sync::Arc;

use engine::StartOptions;
use local_proxy::ProxyConfig;
use net::Secret;
use profiles::ProfileError;

use crate::profile::{HttvpsProfile, ServerSpec};
use crate::transport::{HttvpsAuth, HttvpsTransport};
use crate::{ClientConfig, ControlPlane, DeviceCredentials, KeepaliveConfig};

/// A profile could not be turned into a tunnel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// The profile's fields are invalid.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The TLS settings (CA file, pin) could not be used.
    #[error("profile {profile:?}: {message}")]
    Tls {
        /// The profile.
        profile: String,
        /// What went wrong.
        message: String,
    },
    /// The local proxy has a user name but no password.
    #[error("profile {0:?}: the local proxy has a user name but no password")]
    MissingProxyPassword(String),
}

/// SDK settings for a profile and a gateway URL; `client_name` is sent in
/// `hello` (e.g. `httvps-cli/0.1.0`).
pub fn client_config(
    profile: &HttvpsProfile,
    url: &str,
    client_name: &str,
) -> Result<ClientConfig, LaunchError> {
    let mut config = ClientConfig::new(url);
    config.client_name = client_name.to_owned();
    config.tls.ca_file = profile.ca_file.clone();
    config.tls.pin_sha256 = profile.pin()?;
    config.tls.sni = profile.sni.clone();
    config.handshake_timeout = profile.limits.handshake_timeout;
    config.keepalive = KeepaliveConfig {
        interval: profile.limits.keepalive_interval,
        dead_after: profile.limits.dead_after,
    };
    config.optimistic_open = profile.optimistic_open;
    config.transport = profile.transport;
    Ok(config)
}

/// The HTTVPS transport for a profile, given the token of
/// [`token_kind`]'s kind.
pub fn transport(
    profile: &HttvpsProfile,
    token: Secret,
    client_name: &str,
) -> Result<HttvpsTransport, LaunchError> {
    Ok(match profile.server()? {
        ServerSpec::Gateway(url) => HttvpsTransport::new(
            client_config(profile, url, client_name)?,
            HttvpsAuth::SessionToken(token),
        ),
        ServerSpec::ControlPlane { backend, device_id } => {
            // The control plane hands out the gateway URL at each login.
            let template = client_config(
                profile,
                "wss://set-by-the-control-plane.invalid/ws",
                client_name,
            )?;
            let control =
                ControlPlane::new(backend, &template.tls).map_err(|e| LaunchError::Tls {
                    profile: profile.name.clone(),
                    message: e.to_string(),
                })?;
            let credentials = DeviceCredentials {
                device_id: device_id.to_owned(),
                token,
                region: profile.region.clone(),
            };
            HttvpsTransport::new(
                template,
                HttvpsAuth::Device {
                    control,
                    credentials,
                },
            )
        }
    })
}

/// The local proxy settings for a profile, its routing rules included;
/// `password` is needed when the profile has a proxy user name.
pub fn proxy_config(
    profile: &HttvpsProfile,
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
    profile: &HttvpsProfile,
    transport: HttvpsTransport,
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
    use crate::Transport;

    #[test]
    fn gateway_profiles_need_a_session_token_and_control_planes_a_device_token() {
        use crate::profile::{DEVICE_TOKEN, SESSION_TOKEN};
        let gateway = HttvpsProfile::for_gateway("g", "wss://gw.example/ws");
        assert_eq!(gateway.token_kind().unwrap(), SESSION_TOKEN);
        let mut device = HttvpsProfile::new("d");
        device.backend = Some("https://api.example".into());
        device.device_id = Some("dev-1".into());
        assert_eq!(device.token_kind().unwrap(), DEVICE_TOKEN);
        assert!(HttvpsProfile::new("empty").token_kind().is_err());
    }

    #[test]
    fn a_proxy_user_without_password_is_refused() {
        let mut profile = HttvpsProfile::for_gateway("g", "wss://gw.example/ws");
        profile.proxy_username = Some("me".into());
        assert!(matches!(
            proxy_config(&profile, None),
            Err(LaunchError::MissingProxyPassword(_))
        ));
        let config = proxy_config(&profile, Some(Secret::new("pw"))).unwrap();
        assert!(config.auth.is_some());
        assert_eq!(config.listen, profile.listen());
    }

    #[test]
    fn the_profile_chooses_optimistic_open() {
        let mut profile = HttvpsProfile::for_gateway("g", "wss://gw.example/ws");
        let url = "wss://gw.example/ws";
        assert!(!client_config(&profile, url, "t/1").unwrap().optimistic_open);
        profile.optimistic_open = true;
        assert!(client_config(&profile, url, "t/1").unwrap().optimistic_open);
    }

    #[test]
    fn the_profile_chooses_the_transport() {
        let mut profile = HttvpsProfile::for_gateway("g", "wss://gw.example/ws");
        let url = "wss://gw.example/ws";
        let chosen = |p: &HttvpsProfile| client_config(p, url, "t/1").unwrap().transport;
        assert_eq!(chosen(&profile), Transport::H1);
        for transport in [Transport::H3, Transport::Auto, Transport::H1] {
            profile.transport = transport;
            assert_eq!(chosen(&profile), transport);
        }
        // A device login's template (the gateway URL comes later) too.
        let mut device = HttvpsProfile::new("d");
        device.backend = Some("https://api.example".into());
        device.device_id = Some("dev-1".into());
        device.transport = Transport::Auto;
        assert_eq!(chosen(&device), Transport::Auto);
    }

    #[test]
    fn a_bad_pin_is_reported_with_the_profile() {
        let mut profile = HttvpsProfile::for_gateway("g", "wss://gw.example/ws");
        profile.pin_sha256 = Some("not-hex".into());
        let err = transport(&profile, Secret::new("t"), "test/1").unwrap_err();
        assert!(err.to_string().contains("\"g\""), "{err}");
    }
}
