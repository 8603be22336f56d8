//! The embedded demo: a real gateway on loopback in direct mode, with a fresh
//! self-signed certificate (pinned by the client) and a random token, so a
//! newcomer sees a working tunnel with no server and no configuration.
//!
//! It listens on loopback only, so it allows loopback and private targets: a
//! machine with no internet can try it against a local web server.

use std::collections::HashSet;
use std::net::SocketAddr;

use httvps_client::{ClientConfig, Secret};
use httvps_gateway::{AuthSource, Gateway, GatewayConfig, RunningGateway, TlsSource};
use rand::RngCore;

/// A running demo gateway and what a client needs to use it.
pub struct DemoGateway {
    running: RunningGateway,
    token: Secret,
    client: ClientConfig,
}

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The certificate could not be generated.
    #[error("cannot generate the demo certificate: {0}")]
    Certificate(String),
    /// The gateway could not start.
    #[error("cannot start the demo gateway: {0}")]
    Gateway(String),
}

impl DemoGateway {
    /// Starts the gateway on `listen`, which must be a loopback address
    /// (`127.0.0.1:0` picks a free port).
    pub async fn start(listen: SocketAddr) -> Result<DemoGateway, DemoError> {
        if !listen.ip().is_loopback() {
            return Err(DemoError::Gateway(format!(
                "the demo gateway allows private targets, so it only listens on loopback, not {listen}"
            )));
        }
        let cert = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            listen.ip().to_string(),
        ])
        .map_err(|e| DemoError::Certificate(e.to_string()))?;
        let pin = httvps_client::spki_sha256(cert.cert.der())
            .map_err(|e| DemoError::Certificate(e.to_string()))?;
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();

        let tls = TlsSource::Pem {
            cert_pem: cert.cert.pem(),
            key_pem: cert.signing_key.serialize_pem(),
        };
        let mut config = GatewayConfig::new(
            listen,
            tls,
            AuthSource::Tokens(HashSet::from([token.clone()])),
        );
        config.allow_private_targets = true;
        // Only our own client uses it, and it disconnects first: stopping the
        // demo must not wait the production drain time.
        config.timeouts.drain = std::time::Duration::from_secs(1);
        let gateway = Gateway::bind(config)
            .await
            .map_err(|e| DemoError::Gateway(e.to_string()))?;
        let addr = gateway.local_addr();
        let mut client = ClientConfig::new(format!("wss://{addr}/ws"));
        client.tls.pin_sha256 = Some(pin);
        Ok(DemoGateway {
            running: gateway.spawn(),
            token: Secret::new(token),
            client,
        })
    }

    /// The gateway's address.
    pub fn addr(&self) -> SocketAddr {
        self.running.local_addr()
    }

    /// Client settings (URL and certificate pin) for this gateway.
    pub fn client_config(&self) -> ClientConfig {
        self.client.clone()
    }

    /// The demo's session token (accepted again on reconnect).
    pub fn token(&self) -> Secret {
        self.token.clone()
    }

    /// Stops the gateway, closing its sessions properly.
    pub async fn shutdown(self) {
        let _ = self.running.shutdown().await;
    }
}
