//! The Relay demo: a real relay server on loopback (a fresh self-signed
//! certificate pinned by the client, a random HS256 secret and a JWT signed
//! with it, userspace WireGuard on a loopback UDP port), so `httvps demo
//! --share` and the app's Remote access panel show a local port reached
//! through a relay with no server and no configuration.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use engine::PublishOptions;
use httvps_client::Secret;
use jsonwebtoken::{EncodingKey, Header};
use rand::RngCore;
use relay_client::{PrivateKey, RelayPublisher, ShareConfig};
use relay_server::config::Config;
use relay_server::jwt::TokenVerifier;
use relay_server::registry::{PortRange, RegistryConfig};
use relay_server::server::{Relay, RunningRelay};
use server_kit::tls::TlsSource;

use crate::{DemoError, SelfSigned};

/// Where the demo relay's public ports are picked from (on loopback): a
/// random block of [`DEMO_FORWARD_BLOCK`] ports whose first ones are free,
/// so two demos on one machine (tests run in parallel) do not hand out the
/// same port.
pub const DEMO_FORWARD_PORTS: (u16, u16) = (40_000, 59_999);
/// Ports in one demo relay's block.
pub const DEMO_FORWARD_BLOCK: u16 = 64;
/// Ports checked free at the start of a block.
const CHECKED: u16 = 8;
/// How long the demo's token lasts.
const TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// A running demo relay and what a client needs to share through it.
pub struct DemoRelay {
    running: RunningRelay,
    token: Secret,
    pin: [u8; 32],
}

impl DemoRelay {
    /// Starts the relay with every listener on `ip` (a loopback address),
    /// on free ports; forwards come from [`DEMO_FORWARD_PORTS`].
    pub async fn start(ip: IpAddr) -> Result<DemoRelay, DemoError> {
        let any_port = SocketAddr::new(ip, 0);
        let cert = SelfSigned::for_loopback(any_port)?;
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let verifier =
            TokenVerifier::from_secret(&secret).map_err(|e| DemoError::Gateway(e.to_string()))?;
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d + TOKEN_LIFETIME)
            .unwrap_or(TOKEN_LIFETIME)
            .as_secs();
        let claims = serde_json::json!({ "sub": "demo", "exp": exp });
        let key =
            EncodingKey::from_secret(&secret).map_err(|e| DemoError::Gateway(e.to_string()))?;
        let token = jsonwebtoken::encode(&Header::default(), &claims, &key)
            .map_err(|e| DemoError::Gateway(e.to_string()))?;
        let first = free_block(ip)?;
        let ports = PortRange::new(first, first + DEMO_FORWARD_BLOCK - 1)
            .map_err(|e| DemoError::Gateway(e.to_string()))?;
        let network = "10.77.0.0/24"
            .parse()
            .map_err(|e: relay_server::registry::ConfigError| DemoError::Gateway(e.to_string()))?;
        let mut config = Config::new(
            any_port,
            TlsSource::Pem {
                cert_pem: cert.cert_pem,
                key_pem: cert.key_pem,
            },
            any_port,
            RegistryConfig::new(network, ports, ip.to_string()),
            verifier,
        );
        config.forward_bind = ip;
        let relay = Relay::bind(config)
            .await
            .map_err(|e| DemoError::Gateway(e.to_string()))?;
        Ok(DemoRelay {
            running: relay.spawn(),
            token: Secret::new(token),
            pin: cert.pin,
        })
    }

    /// The control channel's address.
    pub fn addr(&self) -> SocketAddr {
        self.running.addr()
    }

    /// The demo's JWT.
    pub fn token(&self) -> Secret {
        self.token.clone()
    }

    /// Share settings for `ports` under `name` through this relay.
    pub fn share_config(
        &self,
        name: &str,
        ports: Vec<u16>,
        private_key: PrivateKey,
    ) -> ShareConfig {
        let addr = self.addr();
        let mut config = ShareConfig::new(
            addr.ip().to_string(),
            addr.port(),
            self.token.clone(),
            name,
            ports,
            private_key,
        );
        config.tls.pin_sha256 = Some(self.pin);
        config.tls.sni = Some("localhost".to_owned());
        config
    }

    /// The publisher sharing `ports` (its status shows the forwards) and the
    /// engine options that run it.
    pub fn publish_options(
        &self,
        name: &str,
        ports: Vec<u16>,
    ) -> Result<(PublishOptions, RelayPublisher), DemoError> {
        let publisher = RelayPublisher::new(self.share_config(name, ports, PrivateKey::generate()))
            .map_err(|e| DemoError::Gateway(e.to_string()))?;
        Ok((
            relay_client::launch::publish_options(publisher.clone()),
            publisher,
        ))
    }

    /// Stops the relay.
    pub async fn shutdown(self) {
        let _ = self.running.stop().await;
    }
}

/// The first port of a random block whose first [`CHECKED`] ports can be
/// bound on `ip` now.
fn free_block(ip: IpAddr) -> Result<u16, DemoError> {
    let blocks = (DEMO_FORWARD_PORTS.1 - DEMO_FORWARD_PORTS.0 + 1) / DEMO_FORWARD_BLOCK;
    for _ in 0..32 {
        let first = DEMO_FORWARD_PORTS.0 + rand::random_range(0..blocks) * DEMO_FORWARD_BLOCK;
        let free = (first..first + CHECKED)
            .all(|port| std::net::TcpListener::bind(SocketAddr::new(ip, port)).is_ok());
        if free {
            return Ok(first);
        }
    }
    Err(DemoError::Gateway(
        "no free block of public ports for the demo relay".to_owned(),
    ))
}
