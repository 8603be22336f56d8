//! The bridge from the local proxy to the current tunnel session: waits a
//! bounded time for a session (while reconnecting) and for a stream slot, then
//! opens the stream, counts its bytes into the table and reports its life as
//! events.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use local_proxy::{BoxStream, ConnectError, ConnectErrorKind, ConnectRequest, Connector};
use tokio::sync::{broadcast, watch};

use crate::events::EngineEvent;
use crate::table::{Counted, StreamTable};
use crate::transport::TunnelSession;

/// The session the proxy serves through, `None` while there is none.
pub(crate) type CurrentSession = watch::Receiver<Option<Arc<dyn TunnelSession>>>;

pub(crate) struct EngineConnector {
    pub current: CurrentSession,
    pub table: StreamTable,
    pub events: broadcast::Sender<EngineEvent>,
    pub reconnect_wait: Duration,
    pub slot_wait: Duration,
}

impl EngineConnector {
    /// Waits up to `reconnect_wait` for a live session.
    async fn session(&self) -> Result<Arc<dyn TunnelSession>, ConnectError> {
        let mut current = self.current.clone();
        let wait = current.wait_for(|s| s.is_some());
        match tokio::time::timeout(self.reconnect_wait, wait).await {
            Ok(Ok(session)) => Ok(session.clone().expect("waited for Some")),
            Ok(Err(_)) => Err(ConnectError::new(
                ConnectErrorKind::Unavailable,
                "the tunnel is stopped",
            )),
            Err(_) => Err(ConnectError::new(
                ConnectErrorKind::Unavailable,
                format!(
                    "the tunnel is not connected (waited {:?})",
                    self.reconnect_wait
                ),
            )),
        }
    }
}

impl Connector for EngineConnector {
    fn connect(
        &self,
        request: ConnectRequest,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<BoxStream, ConnectError>> + Send + 'static>>
    {
        let this = EngineConnector {
            current: self.current.clone(),
            table: self.table.clone(),
            events: self.events.clone(),
            reconnect_wait: self.reconnect_wait,
            slot_wait: self.slot_wait,
        };
        Box::pin(async move {
            let started = Instant::now();
            let protocol = request.protocol.to_string();
            let (key, counters) = this.table.insert(
                request.target.to_string(),
                request.client.to_string(),
                &protocol,
            );
            let opened = async {
                let session = this.session().await?;
                session.open(request.target.clone(), this.slot_wait).await
            }
            .await;
            match opened {
                Ok(opened) => {
                    let waited = started.elapsed().as_millis() as u64;
                    if let Some(info) = this.table.opened(key, &opened.stream_id, waited) {
                        let _ = this.events.send(EngineEvent::StreamOpened(info));
                    }
                    let (table, events) = (this.table, this.events);
                    let stream = Counted::new(opened.stream, counters).on_close(move |reason| {
                        if let Some(info) = table.close(key, reason) {
                            let _ = events.send(EngineEvent::StreamClosed(info));
                        }
                    });
                    Ok(Box::new(stream) as BoxStream)
                }
                Err(e) => {
                    if let Some(info) = this.table.close(key, e.to_string()) {
                        let _ = this.events.send(EngineEvent::StreamClosed(info));
                    }
                    Err(e)
                }
            }
        })
    }
}
