//! The bridge from the local proxy to the current tunnel session: waits a
//! bounded time for a session (while reconnecting) and for a stream slot, then
//! opens the stream (or, for SOCKS5 `UDP ASSOCIATE`, a datagram association
//! where the session can carry one), counts its bytes into the table and
//! reports its life as events.
//!
//! Routing rules come first ([`routing::Router`]): the target is judged as
//! the client named it, so a domain name is never resolved here before the
//! decision (no DNS leak for tunnelled names). `tunnel` goes on as above;
//! `direct` dials from this machine (resolving the name locally then is the
//! user's choice); `block` fails with [`ConnectErrorKind::NotAllowed`]
//! (SOCKS5 "connection not allowed", HTTP 403) and is logged. Each row of
//! the table records the action and the rule. UDP datagrams are judged one
//! by one: `tunnel` ones go through the association, `block` and `direct`
//! ones are dropped (direct UDP is not carried from this machine).

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use local_proxy::{
    AssociateFuture, AssociateRequest, BoxDatagrams, BoxFuture, BoxStream, ConnectError,
    ConnectErrorKind, ConnectRequest, Connector, Datagram, DatagramChannel, TargetAddr,
};
use routing::{Action, Router};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, watch};
use tracing::{debug, info};

use crate::events::EngineEvent;
use crate::table::{CLOSED_ON_REQUEST, Counted, Counters, StreamTable};
use crate::transport::TunnelSession;

/// The session the proxy serves through, `None` while there is none.
pub(crate) type CurrentSession = watch::Receiver<Option<Arc<dyn TunnelSession>>>;

pub(crate) struct EngineConnector {
    pub current: CurrentSession,
    pub table: StreamTable,
    pub events: broadcast::Sender<EngineEvent>,
    pub reconnect_wait: Duration,
    pub slot_wait: Duration,
    /// The routing rules of this run.
    pub router: Arc<Router>,
}

/// How long a `direct` connection may take (name resolution included),
/// as long as the gateway's own dial timeout.
const DIRECT_DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a `direct` connection from this machine: resolves a name with the
/// system resolver and tries its addresses in order.
async fn dial_direct(target: &TargetAddr) -> Result<TcpStream, ConnectError> {
    let dial = async {
        let addrs: Vec<std::net::SocketAddr> = match target {
            TargetAddr::Ip(addr) => vec![*addr],
            TargetAddr::Domain(name, port) => tokio::net::lookup_host((name.as_str(), *port))
                .await
                .map_err(|e| {
                    ConnectError::new(
                        ConnectErrorKind::Unreachable,
                        format!("cannot resolve {name} (direct): {e}"),
                    )
                })?
                .collect(),
        };
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
                Err(e) => last = Some(ConnectError::from(e)),
            }
        }
        Err(last.unwrap_or_else(|| {
            ConnectError::new(
                ConnectErrorKind::Unreachable,
                format!("{target} has no address (direct)"),
            )
        }))
    };
    match tokio::time::timeout(DIRECT_DIAL_TIMEOUT, dial).await {
        Ok(result) => result,
        Err(_) => Err(ConnectError::new(
            ConnectErrorKind::TimedOut,
            format!("direct connection to {target} took over {DIRECT_DIAL_TIMEOUT:?}"),
        )),
    }
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

    /// A copy for one connection's future (which must be `'static`).
    fn detached(&self) -> EngineConnector {
        EngineConnector {
            current: self.current.clone(),
            table: self.table.clone(),
            events: self.events.clone(),
            reconnect_wait: self.reconnect_wait,
            slot_wait: self.slot_wait,
            router: self.router.clone(),
        }
    }

    /// Closes table row `key` with `reason` and publishes the event.
    fn close_row(
        table: &StreamTable,
        events: &broadcast::Sender<EngineEvent>,
        key: u64,
        reason: String,
    ) {
        if let Some(info) = table.close(key, reason) {
            let _ = events.send(EngineEvent::StreamClosed(info));
        }
    }
}

impl Connector for EngineConnector {
    fn connect(
        &self,
        request: ConnectRequest,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<BoxStream, ConnectError>> + Send + 'static>>
    {
        let this = self.detached();
        Box::pin(async move {
            let started = Instant::now();
            let protocol = request.protocol.to_string();
            let (key, counters) = this.table.insert(
                request.target.to_string(),
                request.client.to_string(),
                &protocol,
            );
            let decision = this.router.decide(&request.target);
            this.table
                .route(key, decision.action, decision.label.clone());
            let open = async {
                match decision.action {
                    Action::Block => {
                        info!(target = %request.target, client = %request.client, rule = %decision.label, "blocked by the routing rules");
                        Err(ConnectError::new(
                            ConnectErrorKind::NotAllowed,
                            format!("blocked by the routing rules ({})", decision.label),
                        ))
                    }
                    Action::Direct => {
                        debug!(target = %request.target, rule = %decision.label, "direct");
                        dial_direct(&request.target).await.map(|stream| {
                            crate::transport::OpenedStream {
                                stream_id: "direct".to_owned(),
                                stream: Box::new(stream),
                            }
                        })
                    }
                    Action::Tunnel => {
                        async {
                            let session = this.session().await?;
                            session.open(request.target.clone(), this.slot_wait).await
                        }
                        .await
                    }
                }
            };
            // A row closed from the table while it waits for the tunnel or
            // a slot gives up at once.
            let opened = tokio::select! {
                opened = open => opened,
                () = counters.closing() => {
                    Self::close_row(&this.table, &this.events, key, CLOSED_ON_REQUEST.to_owned());
                    return Err(ConnectError::new(ConnectErrorKind::Other, CLOSED_ON_REQUEST));
                }
            };
            match opened {
                Ok(opened) => {
                    let waited = started.elapsed().as_millis() as u64;
                    if let Some(info) = this.table.opened(key, &opened.stream_id, waited) {
                        let _ = this.events.send(EngineEvent::StreamOpened(info));
                    }
                    let (table, events) = (this.table, this.events);
                    let stream = Counted::new(opened.stream, counters)
                        .on_close(move |reason| Self::close_row(&table, &events, key, reason));
                    Ok(Box::new(stream) as BoxStream)
                }
                Err(e) => {
                    Self::close_row(&this.table, &this.events, key, e.to_string());
                    Err(e)
                }
            }
        })
    }

    fn associate(&self, request: AssociateRequest) -> AssociateFuture {
        let this = self.detached();
        Box::pin(async move {
            let (key, counters) = this.table.insert(
                "udp (any target)".to_owned(),
                request.client.to_string(),
                "socks5-udp",
            );
            let opened = async {
                let session = this.session().await?;
                match session.datagrams() {
                    Some(datagrams) => datagrams.associate().await,
                    None => Err(ConnectError::new(
                        ConnectErrorKind::Unsupported,
                        "the active tunnel carries no UDP (SOCKS5 UDP ASSOCIATE needs a protocol with datagrams)",
                    )),
                }
            }
            .await;
            match opened {
                Ok(inner) => {
                    if let Some(info) = this.table.opened(key, "udp", 0) {
                        let _ = this.events.send(EngineEvent::StreamOpened(info));
                    }
                    Ok(Box::new(CountedDatagrams {
                        inner,
                        counters,
                        table: this.table,
                        events: this.events,
                        key,
                        router: this.router,
                    }) as BoxDatagrams)
                }
                Err(e) => {
                    Self::close_row(&this.table, &this.events, key, e.to_string());
                    Err(e)
                }
            }
        })
    }
}

/// A datagram association counted into its table row, closed when dropped.
struct CountedDatagrams {
    inner: BoxDatagrams,
    counters: std::sync::Arc<Counters>,
    table: StreamTable,
    events: broadcast::Sender<EngineEvent>,
    key: u64,
    router: Arc<Router>,
}

impl DatagramChannel for CountedDatagrams {
    fn send(&self, datagram: Datagram) -> BoxFuture<'_, Result<(), ConnectError>> {
        if !self.router.tunnels_everything() {
            let decision = self.router.decide(&datagram.target);
            if decision.action != Action::Tunnel {
                // UDP may drop: a datagram the rules keep out of the tunnel
                // is not sent (direct UDP is not carried from here).
                debug!(target = %datagram.target, rule = %decision.label, "datagram not tunnelled; dropped");
                return Box::pin(async { Ok(()) });
            }
        }
        self.counters.add_up(datagram.payload.len());
        self.inner.send(datagram)
    }

    fn recv(&self) -> BoxFuture<'_, Option<Datagram>> {
        Box::pin(async move {
            // Closed from the table: the association ends as if the tunnel
            // had ended it.
            let datagram = tokio::select! {
                datagram = self.inner.recv() => datagram?,
                () = self.counters.closing() => return None,
            };
            self.counters.add_down(datagram.payload.len());
            Some(datagram)
        })
    }
}

impl Drop for CountedDatagrams {
    fn drop(&mut self) {
        let reason = if self.counters.is_closing() {
            CLOSED_ON_REQUEST
        } else {
            "association ended"
        };
        EngineConnector::close_row(&self.table, &self.events, self.key, reason.to_owned());
    }
}
