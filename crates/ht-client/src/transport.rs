//! HT as an engine [`Transport`]: every `connect` is a fresh session with a
//! new random PHPSESSID and `N` transport connections, each opening with
//! the probe. It returns once one connection answered (key and session
//! proven), or with the reason none did.

use std::sync::Arc;

use engine::transport::{BoxFuture, Transport, TransportError, TunnelSession};
use net::ErrorCode;
use proto_ht::SessionId;
use proto_ht::client::Client;

use crate::config::{HtClientConfig, ServerUrl};
use crate::connection::run_slot;
use crate::error::HtError;
use crate::session::HtSession;
use crate::shared::Shared;

/// The HT transport.
#[derive(Debug, Clone)]
pub struct HtTransport {
    config: HtClientConfig,
    url: ServerUrl,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl HtTransport {
    /// Checks `config` and loads its TLS trust (once, not per connection).
    pub fn new(config: HtClientConfig) -> Result<HtTransport, HtError> {
        let url = config.validate()?;
        let tls = if url.tls {
            Some(Arc::new(client_kit::client_config(
                &config.tls,
                &[b"http/1.1"],
            )?))
        } else {
            tracing::warn!(
                url = %config.url,
                "HT over plain http://: the HT cipher has no integrity and reuses its keystream; use https://"
            );
            None
        };
        Ok(HtTransport { config, url, tls })
    }

    /// Makes a session (what [`Transport::connect`] does, with the typed
    /// session).
    pub async fn connect_session(&self) -> Result<HtSession, TransportError> {
        let session = SessionId::from_random(random()?);
        let seed = u64::from_le_bytes(random()?);
        let machine = Client::new(proto_ht::client::Config {
            seed,
            ..self.config.machine.clone()
        });
        let shared = Arc::new(Shared::new(
            self.config.clone(),
            self.url.clone(),
            session,
            self.tls.clone(),
            machine,
        ));
        for _ in 0..self.config.connections {
            tokio::spawn(run_slot(shared.clone()));
        }
        let session = HtSession {
            shared: shared.clone(),
        };
        let mut state = shared.state.subscribe();
        let outcome = state
            .wait_for(|s| s.live > 0 || s.ended.is_some())
            .await
            .map(|s| s.ended.clone());
        match outcome {
            Ok(None) => Ok(session),
            Ok(Some((code, message))) => Err(TransportError::new(code, message)),
            Err(_) => Err(TransportError::new(
                ErrorCode::SessionLost,
                "the HT session ended",
            )),
        }
    }
}

fn random<const N: usize>() -> Result<[u8; N], TransportError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| {
        TransportError::new(
            ErrorCode::HandshakeFailed,
            format!("no system randomness: {e}"),
        )
    })?;
    Ok(bytes)
}

impl Transport for HtTransport {
    fn server(&self) -> String {
        self.config.url.clone()
    }

    fn connect(&self) -> BoxFuture<'_, Result<Arc<dyn TunnelSession>, TransportError>> {
        Box::pin(async move {
            let session = self.connect_session().await?;
            Ok(Arc::new(session) as Arc<dyn TunnelSession>)
        })
    }
}
