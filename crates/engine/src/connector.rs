//! The bridge from the local proxy to the current tunnel session: waits a
//! bounded time for a session (while reconnecting) and for a stream slot, then
//! opens the stream, counts its bytes into the table and reports its life as
//! events.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use local_proxy::{BoxStream, ConnectError, ConnectErrorKind, ConnectRequest, Connector};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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
                    let stream = Tracked {
                        inner: Counted::new(opened.stream, counters),
                        key,
                        table: this.table,
                        events: this.events,
                        outcome: None,
                    };
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

/// A counted stream that closes its table row, with the reason, when dropped.
struct Tracked {
    inner: Counted<BoxStream>,
    key: u64,
    table: StreamTable,
    events: broadcast::Sender<EngineEvent>,
    /// `eof` once a read returned 0 bytes, or the first I/O error.
    outcome: Option<String>,
}

impl Tracked {
    fn note<T>(&mut self, result: &Poll<io::Result<T>>) {
        if let Poll::Ready(Err(e)) = result {
            self.outcome.get_or_insert_with(|| e.to_string());
        }
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(())))
            && buf.filled().len() == before
            && buf.remaining() > 0
        {
            self.outcome.get_or_insert_with(|| "eof".to_owned());
        }
        self.note(&result);
        result
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note(&result);
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let reason = self
            .outcome
            .take()
            .unwrap_or_else(|| "closed by the client".to_owned());
        if let Some(info) = self.table.close(self.key, reason) {
            let _ = self.events.send(EngineEvent::StreamClosed(info));
        }
    }
}
