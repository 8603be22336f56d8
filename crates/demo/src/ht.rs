//! The HT demo: a real `ht-server` on loopback with a fresh self-signed
//! certificate (pinned by the client) and a random key, so `httvps demo
//! --ht` shows TCP, UDP and DNS through HT with no server and no
//! configuration.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use engine::{ReconnectPolicy, StartOptions};
use ht_client::{HtClientConfig, HtTransport, Key};
use ht_server::{Config, HtServer, RunningServer, TlsSource};
use local_proxy::ProxyConfig;
use rand::RngCore;

use crate::{DemoError, SelfSigned};

/// A running demo HT server and what a client needs to use it.
pub struct DemoHt {
    running: RunningServer,
    client: HtClientConfig,
}

impl DemoHt {
    /// Starts the server on `listen`, which must be a loopback address
    /// (`127.0.0.1:0` picks a free port).
    pub async fn start(listen: SocketAddr) -> Result<DemoHt, DemoError> {
        let cert = SelfSigned::for_loopback(listen)?;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let key = Key::from_hex(&hex).expect("64 hex characters");
        let mut config = Config::new(listen, key.clone());
        config.tls = Some(TlsSource::Pem {
            cert_pem: cert.cert_pem,
            key_pem: cert.key_pem,
        });
        config.allow_private_targets = true;
        let server = HtServer::bind(config)
            .await
            .map_err(|e| DemoError::Gateway(e.to_string()))?;
        let addr = server.local_addr();
        let mut client = HtClientConfig::new(format!("https://{addr}"), key);
        client.tls.pin_sha256 = Some(cert.pin);
        Ok(DemoHt {
            running: server.spawn(),
            client,
        })
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.running.local_addr()
    }

    /// Engine options for a client of this server with its proxy on
    /// `listen`; a failed first connect is retried (the server is ours).
    pub fn start_options(&self, listen: SocketAddr) -> Result<StartOptions, DemoError> {
        let transport =
            HtTransport::new(self.client.clone()).map_err(|e| DemoError::Gateway(e.to_string()))?;
        Ok(StartOptions {
            transport: Arc::new(transport),
            proxy: ProxyConfig {
                listen,
                ..ProxyConfig::default()
            },
            reconnect: ReconnectPolicy::default(),
            retry_initial: true,
            slot_wait: Duration::from_secs(30),
            reconnect_wait: Duration::from_secs(15),
        })
    }

    /// Stops the server.
    pub async fn shutdown(self) {
        let _ = self.running.shutdown().await;
    }
}
