//! The HLHV demo: a real `hlhv-queen` on loopback (a fresh self-signed
//! certificate, pinned by the cell, and a random cell key) and the cell
//! publishing a local page through it, so `httvps demo --publish` and the
//! app show a web app published with no server and no configuration.

use std::net::SocketAddr;
use std::sync::Arc;

use engine::{PublishOptions, ReconnectPolicy};
use hlhv_cell::{CellConfig, HlhvPublisher};
use hlhv_queen::{CellKey, Config, Queen, RunningQueen, TlsSource};
use httvps_client::Secret;
use rand::RngCore;

use crate::{DemoError, SelfSigned};

/// Where the demo cell mounts: every path under `/demo/` of the loopback
/// host (the queen treats `localhost`, `127.0.0.1` and `::1` as one host).
pub const DEMO_MOUNT: &str = "localhost/demo/";

/// A running demo queen and what a cell needs to publish through it.
pub struct DemoQueen {
    running: RunningQueen,
    key: Secret,
    pin: [u8; 32],
}

impl DemoQueen {
    /// Starts the queen with both listeners on `ip` (a loopback address),
    /// on free ports.
    pub async fn start(ip: std::net::IpAddr) -> Result<DemoQueen, DemoError> {
        let any_port = SocketAddr::new(ip, 0);
        let cert = SelfSigned::for_loopback(any_port)?;
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let config = Config::new(
            any_port,
            any_port,
            TlsSource::Pem {
                cert_pem: cert.cert_pem,
                key_pem: cert.key_pem,
            },
            CellKey::from_file_text(&key).map_err(|e| DemoError::Gateway(e.to_string()))?,
        );
        let queen = Queen::bind(config)
            .await
            .map_err(|e| DemoError::Gateway(e.to_string()))?;
        Ok(DemoQueen {
            running: queen.spawn(),
            key: Secret::new(key),
            pin: cert.pin,
        })
    }

    /// Where cells connect.
    pub fn cells_addr(&self) -> SocketAddr {
        self.running.cells_addr()
    }

    /// The public HTTPS address.
    pub fn https_addr(&self) -> SocketAddr {
        self.running.https_addr()
    }

    /// Where the demo mount is reached (`https://localhost:PORT/demo/`).
    pub fn public_url(&self) -> String {
        format!("https://localhost:{}/demo/", self.https_addr().port())
    }

    /// The cell settings that publish `to` (a local `http://` app) at
    /// [`DEMO_MOUNT`] through this queen.
    pub fn cell_config(&self, to: &str) -> CellConfig {
        let mut config = CellConfig::new(
            self.cells_addr().to_string(),
            DEMO_MOUNT,
            to,
            self.key.clone(),
        );
        config.tls.pin_sha256 = Some(self.pin);
        config.public_url = Some(self.public_url());
        config
    }

    /// Engine options publishing `to` through this queen; a failed first
    /// connect is retried (the queen is ours).
    pub fn publish_options(&self, to: &str) -> Result<PublishOptions, DemoError> {
        let publisher = HlhvPublisher::new(self.cell_config(to))
            .map_err(|e| DemoError::Gateway(e.to_string()))?;
        Ok(PublishOptions {
            publisher: Arc::new(publisher),
            reconnect: ReconnectPolicy::default(),
            retry_initial: true,
        })
    }

    /// Stops the queen.
    pub async fn shutdown(self) {
        let _ = self.running.shutdown().await;
    }
}
