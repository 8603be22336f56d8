//! The cell as an engine [`Publisher`]: each `connect` logs a new leash in
//! and mounts; the engine's supervisor calls it again after the leash is
//! lost (a queen restart), so re-mounting is a fresh connect.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use engine::transport::BoxFuture;
use engine::{Inbound, Publication, Publisher, TransportError};
use proto_hlhv::cell::BandConfig;
use proto_hlhv::cell::map::Forwarding;
use rustls::pki_types::ServerName;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::band::Bands;
use crate::config::{CellConfig, Checked};
use crate::conn::Dialer;
use crate::error::HlhvError;
use crate::leash;
use crate::local::LocalApp;

/// What a publisher's leash and bands share: settings, trust, the local
/// app's connection pool (kept across reconnects).
pub(crate) struct Shared {
    pub config: CellConfig,
    pub checked: Checked,
    pub dialer: Dialer,
    pub forwarding: Forwarding,
    pub local: LocalApp,
}

impl Shared {
    pub fn band_config(&self) -> BandConfig {
        BandConfig {
            max_body: self.config.max_body,
            max_piece: self.config.max_piece,
            login_timeout: self.config.login_timeout,
        }
    }
}

/// Publishes a local web app through a queen.
#[derive(Clone)]
pub struct HlhvPublisher {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for HlhvPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HlhvPublisher")
            .field("config", &self.shared.config)
            .finish()
    }
}

impl HlhvPublisher {
    /// Checks `config` and loads its TLS trust (once, not per connection).
    pub fn new(config: CellConfig) -> Result<HlhvPublisher, HlhvError> {
        let checked = config.validate()?;
        let tls = Arc::new(client_kit::client_config(&config.tls, &[])?);
        let name = config
            .tls
            .sni
            .clone()
            .unwrap_or_else(|| checked.queen_host.clone());
        let name = ServerName::try_from(name.clone())
            .map_err(|_| HlhvError::InvalidConfig(format!("{name:?} is not a TLS server name")))?;
        let dialer = Dialer {
            host: checked.queen_host.clone(),
            port: checked.queen_port,
            name,
            tls,
            timeout: config.connect_timeout,
            max_frame: config.max_frame,
        };
        let forwarding = Forwarding {
            local_authority: checked.local.authority.clone(),
            public_host: checked.mount_host.clone(),
            mount_path: checked.mount_path.clone(),
        };
        let local = LocalApp::new(
            checked.local.clone(),
            config.local_idle,
            config.local_timeout,
        );
        Ok(HlhvPublisher {
            shared: Arc::new(Shared {
                config,
                checked,
                dialer,
                forwarding,
                local,
            }),
        })
    }

    /// The URL people reach the app at.
    pub fn public_url(&self) -> &str {
        &self.shared.checked.public_url
    }

    /// Logs in and mounts; requests are recorded through `inbound` when
    /// given (the engine gives one; a bare driver may not).
    pub async fn connect_cell(
        &self,
        inbound: Option<Inbound>,
    ) -> Result<HlhvPublication, HlhvError> {
        let logged_in = leash::login(&self.shared).await?;
        let uuid = logged_in.session.uuid.clone();
        tracing::info!(
            uuid = %uuid,
            queen = %self.shared.config.queen,
            url = %self.public_url(),
            "mounted"
        );
        let cancel = CancellationToken::new();
        let bands = Arc::new(Bands::new(
            self.shared.clone(),
            logged_in.session.clone(),
            inbound,
            cancel.clone(),
        ));
        let live = bands.live.clone();
        let (ended_tx, ended) = watch::channel(None);
        tokio::spawn(leash::run(logged_in, bands, cancel.clone(), ended_tx));
        Ok(HlhvPublication {
            uuid,
            public_url: self.public_url().to_owned(),
            cancel,
            ended,
            live,
        })
    }
}

impl Publisher for HlhvPublisher {
    fn server(&self) -> String {
        self.shared.dialer.addr()
    }

    fn connect(
        &self,
        inbound: Inbound,
    ) -> BoxFuture<'_, Result<Arc<dyn Publication>, TransportError>> {
        Box::pin(async move {
            let publication = self.connect_cell(Some(inbound)).await?;
            Ok(Arc::new(publication) as Arc<dyn Publication>)
        })
    }
}

/// One mounted cell: its leash and bands. Dropping it closes everything.
pub struct HlhvPublication {
    uuid: String,
    public_url: String,
    cancel: CancellationToken,
    ended: watch::Receiver<Option<String>>,
    live: Arc<AtomicUsize>,
}

impl std::fmt::Debug for HlhvPublication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HlhvPublication")
            .field("uuid", &self.uuid)
            .field("public_url", &self.public_url)
            .field("bands", &self.bands())
            .finish()
    }
}

impl HlhvPublication {
    /// The cell's id, from the queen.
    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    /// Bands open now (dialling, logging in or serving).
    pub fn bands(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Resolves when the leash has ended, with why.
    pub async fn ended(&self) -> String {
        let mut ended = self.ended.clone();
        match ended.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            Err(_) => "the cell stopped".to_owned(),
        }
    }
}

impl Publication for HlhvPublication {
    fn session_id(&self) -> String {
        self.uuid.clone()
    }

    fn endpoints(&self) -> Vec<String> {
        vec![self.public_url.clone()]
    }

    fn closed(&self) -> BoxFuture<'_, String> {
        Box::pin(self.ended())
    }

    fn close(&self) {
        self.cancel.cancel();
    }
}

impl Drop for HlhvPublication {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
