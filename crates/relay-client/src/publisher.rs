//! The share as an engine [`Publisher`]: `connect` runs a share until its
//! tunnel is Active and hands the engine a [`RelayPublication`]. The
//! protocol's own reconnects (seed §6.1, resuming the same tunnel) happen
//! inside the publication, so the engine is given no second reconnect
//! loop (see [`crate::launch::publish_options`]).

use std::sync::Arc;
use std::time::Duration;

use client_kit::TlsOptions;
use engine::transport::BoxFuture;
use engine::{Inbound, Publication, Publisher, TransportError};
use net::{ErrorCode, Secret};
use proto_relay::{ClientConfig, ClientMachine, Token, TunnelState};
use rustls::pki_types::ServerName;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use wg_userspace::PrivateKey;

use crate::error::ShareError;
use crate::share::{Dialer, Driver};
use crate::status::ShareStatus;

/// What a share needs.
#[derive(Clone)]
pub struct ShareConfig {
    /// The relay's control host.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// How to trust it.
    pub tls: TlsOptions,
    /// The JWT.
    pub token: Secret,
    /// The tunnel's name.
    pub name: String,
    /// The local ports shared.
    pub ports: Vec<u16>,
    /// This device's WireGuard key.
    pub private_key: PrivateKey,
    /// Seed §6.1 by default.
    pub reconnect: proto_relay::ReconnectPolicy,
    /// TCP + TLS to the relay.
    pub connect_timeout: Duration,
    /// The heartbeat interval (seed: 30 s).
    pub heartbeat_interval: Duration,
}

impl std::fmt::Debug for ShareConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("name", &self.name)
            .field("ports", &self.ports)
            .finish_non_exhaustive()
    }
}

impl ShareConfig {
    /// A share of `ports` under `name` through `host:port`, with defaults.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        token: Secret,
        name: impl Into<String>,
        ports: Vec<u16>,
        private_key: PrivateKey,
    ) -> ShareConfig {
        ShareConfig {
            host: host.into(),
            port,
            tls: TlsOptions::default(),
            token,
            name: name.into(),
            ports,
            private_key,
            reconnect: proto_relay::ReconnectPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(30),
        }
    }

    fn machine(&self) -> Result<ClientMachine, ShareError> {
        let mut config = ClientConfig::new(
            Token::new(self.token.expose()),
            self.name.clone(),
            self.ports.clone(),
            self.private_key.public_key().to_base64(),
        );
        config.reconnect = self.reconnect;
        config.dial_timeout = self.connect_timeout;
        config.heartbeat_interval = self.heartbeat_interval;
        ClientMachine::new(config).map_err(|e| ShareError::InvalidConfig(e.to_string()))
    }
}

/// Shares local ports through a relay.
#[derive(Clone)]
pub struct RelayPublisher {
    config: ShareConfig,
    dialer: Dialer,
    status: watch::Sender<ShareStatus>,
}

impl std::fmt::Debug for RelayPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayPublisher")
            .field("config", &self.config)
            .finish()
    }
}

impl RelayPublisher {
    /// Checks `config` and loads its TLS trust (TLS 1.3 only, as the
    /// contract says).
    pub fn new(config: ShareConfig) -> Result<RelayPublisher, ShareError> {
        config.machine()?;
        let tls =
            client_kit::client_config_with_versions(&config.tls, &[], &[&rustls::version::TLS13])
                .map_err(|e| ShareError::InvalidConfig(e.to_string()))?;
        let name = config
            .tls
            .sni
            .clone()
            .unwrap_or_else(|| config.host.clone());
        let name = ServerName::try_from(name.clone())
            .map_err(|_| ShareError::InvalidConfig(format!("{name:?} is not a TLS server name")))?;
        let dialer = Dialer {
            host: config.host.clone(),
            port: config.port,
            name,
            tls: Arc::new(tls),
            timeout: config.connect_timeout,
        };
        let status = watch::Sender::new(ShareStatus {
            relay: dialer.addr(),
            state: TunnelState::Disconnected.as_str().to_owned(),
            ..ShareStatus::default()
        });
        Ok(RelayPublisher {
            config,
            dialer,
            status,
        })
    }

    /// The share's live status.
    pub fn status(&self) -> watch::Receiver<ShareStatus> {
        self.status.subscribe()
    }

    /// Runs a share until its tunnel is Active (through the protocol's own
    /// retries), recording connections through `inbound` when given.
    pub async fn share(&self, inbound: Option<Inbound>) -> Result<RelayPublication, ShareError> {
        let machine = self.config.machine()?;
        let cancel = CancellationToken::new();
        let (ended_tx, ended) = watch::channel(None);
        let driver = Driver {
            machine,
            dialer: self.dialer.clone(),
            private_key: self.config.private_key.clone(),
            ports: self.config.ports.clone(),
            inbound,
            status: self.status.clone(),
            cancel: cancel.clone(),
        };
        tokio::spawn(async move {
            let end = driver.run().await;
            let _ = ended_tx.send(Some(end));
        });
        let mut status = self.status.subscribe();
        let mut ended_rx = ended.clone();
        // A caller that gives up waiting (the user pressed Stop while the
        // share was still signing in or retrying) must stop the share too.
        let stop_unless_active = cancel.clone().drop_guard();
        tokio::select! {
            active = status.wait_for(|s| s.state == TunnelState::Active.as_str()) => {
                if active.is_err() {
                    return Err(ShareError::Ended { code: ErrorCode::SessionLost, message: "the share stopped".into() });
                }
            }
            end = ended_rx.wait_for(Option::is_some) => {
                let (message, code) = end.ok().and_then(|e| e.clone()).unwrap_or_default();
                return Err(ended_error(message, code));
            }
        }
        stop_unless_active.disarm();
        let snapshot = self.status.borrow().clone();
        Ok(RelayPublication {
            tunnel_id: snapshot.tunnel_id.clone().unwrap_or_default(),
            endpoints: snapshot
                .forwards
                .iter()
                .map(|f| format!("{} → 127.0.0.1:{}", f.public, f.port))
                .collect(),
            cancel,
            ended,
        })
    }
}

fn ended_error(message: String, code: Option<proto_relay::ErrorCode>) -> ShareError {
    let code = match code {
        Some(c) if c.requires_sign_in() => ErrorCode::AuthFailed,
        Some(proto_relay::ErrorCode::TunnelExists | proto_relay::ErrorCode::InvalidConfig) => {
            ErrorCode::ConfigError
        }
        _ => ErrorCode::ReconnectFailed,
    };
    ShareError::Ended { code, message }
}

impl Publisher for RelayPublisher {
    fn server(&self) -> String {
        self.dialer.addr()
    }

    fn connect(
        &self,
        inbound: Inbound,
    ) -> BoxFuture<'_, Result<Arc<dyn Publication>, TransportError>> {
        Box::pin(async move {
            let publication = self.share(Some(inbound)).await?;
            Ok(Arc::new(publication) as Arc<dyn Publication>)
        })
    }
}

/// One running share. Dropping it stops the share.
pub struct RelayPublication {
    tunnel_id: String,
    endpoints: Vec<String>,
    cancel: CancellationToken,
    ended: watch::Receiver<Option<(String, Option<proto_relay::ErrorCode>)>>,
}

impl RelayPublication {
    /// The tunnel's id at the relay.
    pub fn tunnel_id(&self) -> &str {
        &self.tunnel_id
    }

    /// Resolves when the share has ended, with why.
    pub async fn ended(&self) -> String {
        let mut ended = self.ended.clone();
        match ended.wait_for(Option::is_some).await {
            Ok(end) => end.clone().map(|(m, _)| m).unwrap_or_default(),
            Err(_) => "the share stopped".to_owned(),
        }
    }
}

impl Publication for RelayPublication {
    fn session_id(&self) -> String {
        self.tunnel_id.clone()
    }

    fn endpoints(&self) -> Vec<String> {
        self.endpoints.clone()
    }

    fn closed(&self) -> BoxFuture<'_, String> {
        Box::pin(self.ended())
    }

    fn close(&self) {
        self.cancel.cancel();
    }
}

impl Drop for RelayPublication {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
