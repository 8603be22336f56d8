//! The embedded demo: a real gateway on loopback in direct mode, with a fresh
//! self-signed certificate (pinned by the client) and a random token, so a
//! newcomer sees a working tunnel with no server and no configuration.
//!
//! It listens on loopback only, so it allows loopback and private targets: a
//! machine with no internet can try it against a local web server.
//! [`DemoHt`] does the same with an HT server (TCP, UDP and DNS), and
//! [`DemoQueen`] publishes a local page through an HLHV queen, and
//! [`DemoRelay`] shares a local port through a relay.
#![warn(missing_docs)]

mod hlhv;
mod ht;
mod relay;

pub use hlhv::{DEMO_MOUNT, DemoQueen};
pub use ht::DemoHt;
pub use relay::{DEMO_FORWARD_PORTS, DemoRelay};

use std::collections::HashSet;
use std::net::SocketAddr;

use std::sync::Arc;
use std::time::Duration;

use engine::{ReconnectPolicy, StartOptions};
use httvps_client::{ClientConfig, HttvpsAuth, HttvpsTransport, Secret};
use httvps_gateway::{AuthSource, Gateway, GatewayConfig, RunningGateway, TlsSource};
use local_proxy::ProxyConfig;
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
        let cert = SelfSigned::for_loopback(listen)?;
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();

        let pin = cert.pin;
        let tls = TlsSource::Pem {
            cert_pem: cert.cert_pem,
            key_pem: cert.key_pem,
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

    /// Engine options for a client of this gateway with its proxy on
    /// `listen`; `optimistic_open` is the app's Fast connect. The demo
    /// retries a failed first connect: its gateway is ours and on loopback,
    /// so a failure there is passing.
    pub fn start_options(&self, listen: SocketAddr, optimistic_open: bool) -> StartOptions {
        let mut client = self.client_config();
        client.optimistic_open = optimistic_open;
        StartOptions {
            transport: Arc::new(HttvpsTransport::new(
                client,
                HttvpsAuth::SessionToken(self.token()),
            )),
            proxy: ProxyConfig {
                listen,
                ..ProxyConfig::default()
            },
            reconnect: ReconnectPolicy::default(),
            retry_initial: true,
            slot_wait: Duration::from_secs(30),
            reconnect_wait: Duration::from_secs(15),
        }
    }

    /// Stops the gateway, closing its sessions properly.
    pub async fn shutdown(self) {
        let _ = self.running.shutdown().await;
    }
}

/// A fresh self-signed certificate for a loopback listener, and its pin.
struct SelfSigned {
    cert_pem: String,
    key_pem: String,
    pin: [u8; 32],
}

impl SelfSigned {
    fn for_loopback(listen: SocketAddr) -> Result<SelfSigned, DemoError> {
        if !listen.ip().is_loopback() {
            return Err(DemoError::Gateway(format!(
                "the demo servers allow private targets, so they only listen on loopback, not {listen}"
            )));
        }
        let cert = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            listen.ip().to_string(),
        ])
        .map_err(|e| DemoError::Certificate(e.to_string()))?;
        let pin = httvps_client::spki_sha256(cert.cert.der())
            .map_err(|e| DemoError::Certificate(e.to_string()))?;
        Ok(SelfSigned {
            cert_pem: cert.cert.pem(),
            key_pem: cert.signing_key.serialize_pem(),
            pin,
        })
    }
}

const DEMO_PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>httvps demo</title></head>\
<body><h1>It works.</h1><p>This page came to you through the tunnel: \
your client, TLS to the demo server (an HTTVPS gateway or an HT server), then this local server.</p></body></html>\n";

/// A tiny local web page to fetch through the demo tunnel, so the demo works
/// on a machine with no internet. One request per connection; stops when
/// dropped.
pub struct DemoPage {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl DemoPage {
    /// Serves the page on a free loopback port.
    pub async fn start() -> std::io::Result<DemoPage> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut head = [0u8; 4096];
                    let _ = socket.read(&mut head).await;
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{DEMO_PAGE}",
                        DEMO_PAGE.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Ok(DemoPage { addr, task })
    }

    /// The page's URL.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The page's local port (what the Relay demo shares).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for DemoPage {
    fn drop(&mut self) {
        self.task.abort();
    }
}
