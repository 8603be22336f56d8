//! The share's driver: `proto_relay::ClientMachine` over a TLS control
//! connection, and the userspace WireGuard node carrying the relay's
//! connections to this machine's ports.
//!
//! One task runs the machine: it dials when told, feeds it lines and
//! timers, configures WireGuard when a tunnel is granted (or resumed) and
//! reports `wireguard_up` once a *fresh* handshake with the relay has
//! completed. The WireGuard node outlives control connections: a control
//! drop does not cut the connections already carried, and a resume with the
//! same address keeps the same node.

use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use proto_relay::{ClientEvent, ClientMachine, Registration, TunnelState};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use wg_userspace::{AllowedIp, Node, NodeConfig, PeerConfig, PrivateKey, PublicKey};

use crate::error::ShareError;
use crate::forward::Forwards;
use crate::status::{ForwardInfo, ShareStatus};

/// How often the status (traffic, handshake) and the heartbeat's counters
/// are refreshed.
const STATS_EVERY: Duration = Duration::from_secs(1);
/// Keeps the NAT mapping toward the relay open, as `wg-quick` users set.
const KEEPALIVE_SECS: u16 = 25;
/// Read buffer of the control connection.
const READ_CHUNK: usize = 16 * 1024;

type Control = TlsStream<TcpStream>;
type DialFuture = Pin<Box<dyn std::future::Future<Output = Result<Control, ShareError>> + Send>>;

/// Where and how to reach the relay's control channel.
#[derive(Clone)]
pub(crate) struct Dialer {
    pub host: String,
    pub port: u16,
    pub name: ServerName<'static>,
    pub tls: Arc<rustls::ClientConfig>,
    pub timeout: Duration,
}

impl Dialer {
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    fn dial(&self) -> DialFuture {
        let this = self.clone();
        Box::pin(async move {
            let connect = async {
                let tcp = TcpStream::connect((this.host.as_str(), this.port)).await?;
                tcp.set_nodelay(true)?;
                TlsConnector::from(this.tls.clone())
                    .connect(this.name.clone(), tcp)
                    .await
            };
            tokio::time::timeout(this.timeout, connect)
                .await
                .map_err(|_| ShareError::Timeout("connecting to the relay"))?
                .map_err(|source| ShareError::Connect {
                    addr: this.addr(),
                    source,
                })
        })
    }
}

/// The WireGuard side of a share, kept across control connections.
struct DataPlane {
    node: Node,
    address: Ipv4Addr,
    relay_key: PublicKey,
    relay_endpoint: SocketAddr,
    forwards: Forwards,
}

/// Everything one share's task owns.
pub(crate) struct Driver {
    pub machine: ClientMachine,
    pub dialer: Dialer,
    pub private_key: PrivateKey,
    pub ports: Vec<u16>,
    pub inbound: Option<engine::Inbound>,
    pub status: watch::Sender<ShareStatus>,
    pub cancel: CancellationToken,
}

impl Driver {
    /// Runs the share until the machine is Disconnected; returns why, and
    /// the relay's last error code if it sent one.
    pub async fn run(mut self) -> (String, Option<proto_relay::ErrorCode>) {
        let mut control: Option<(ReadHalf<Control>, WriteHalf<Control>)> = None;
        let mut dialing: Option<DialFuture> = None;
        let mut plane: Option<DataPlane> = None;
        // Armed after a grant: the handshake count to exceed.
        let mut awaiting_handshake: Option<watch::Receiver<u64>> = None;
        let mut buf = vec![0u8; READ_CHUNK];
        let mut stats = tokio::time::interval(STATS_EVERY);
        let connected_since = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let mut last_reason = String::from("stopped");
        let mut last_code = None;
        self.machine.connect(Instant::now());
        loop {
            while let Some(event) = self.machine.poll_event() {
                match event {
                    ClientEvent::Dial => {
                        control = None;
                        dialing = Some(self.dialer.dial());
                    }
                    ClientEvent::CloseTransport => {
                        control = None;
                        dialing = None;
                    }
                    ClientEvent::Registered(reg) | ClientEvent::Resumed(reg) => {
                        match self.configure(&mut plane, &reg).await {
                            Ok(watch) => awaiting_handshake = Some(watch),
                            Err(e) => {
                                warn!(error = %e, "cannot set up WireGuard");
                                last_reason = e.to_string();
                                self.set_error(Some(e.to_string()));
                                self.machine.disconnect();
                            }
                        }
                    }
                    ClientEvent::StateChanged { to, .. } => {
                        info!(state = to.as_str(), relay = %self.dialer.addr(), "share state");
                        self.status.send_modify(|s| {
                            s.state = to.as_str().to_owned();
                            if to != TunnelState::Reconnecting {
                                s.attempt = None;
                                s.retry_in_secs = None;
                            }
                            if to == TunnelState::Active {
                                s.error = None;
                            }
                        });
                    }
                    ClientEvent::ServerError(e) => {
                        let text = format!(
                            "{} ({} {}: {})",
                            e.sentence,
                            e.code.as_u16(),
                            e.code.name(),
                            e.message
                        );
                        warn!(code = e.code.as_u16(), reason = %e.reason, "the relay refused");
                        last_reason = text.clone();
                        last_code = Some(e.code);
                        self.set_error(Some(text));
                    }
                    ClientEvent::ConnectionFailed(e) => {
                        debug!(error = %e, "control connection failed");
                        last_reason = e.to_string();
                        self.set_error(Some(e.to_string()));
                    }
                    ClientEvent::ResumeRefused { tunnel_id } => {
                        info!(tunnel_id = %tunnel_id, "the relay forgot the tunnel: registering a new one");
                    }
                    ClientEvent::Retrying { attempt, delay } => {
                        self.status.send_modify(|s| {
                            s.attempt = Some(attempt);
                            s.retry_in_secs = Some(delay.as_secs_f64());
                        });
                    }
                    ClientEvent::HeartbeatAnswered { rtt, .. } => {
                        debug!(rtt_ms = rtt.as_millis() as u64, "heartbeat answered");
                    }
                    ClientEvent::GaveUp { attempts } => {
                        last_reason = format!("gave up after {attempts} attempts: {last_reason}");
                    }
                }
            }
            if let Some((_, write)) = control.as_mut() {
                let mut failed = false;
                while let Some(line) = self.machine.poll_transmit() {
                    if write.write_all(&line).await.is_err() {
                        failed = true;
                        break;
                    }
                }
                if !failed && write.flush().await.is_err() {
                    failed = true;
                }
                if failed {
                    control = None;
                    self.machine.transport_lost(Instant::now());
                    continue;
                }
            } else {
                // Lines queued with no connection are the machine's to drop.
                while self.machine.poll_transmit().is_some() {}
            }
            if self.machine.state() == TunnelState::Disconnected
                && dialing.is_none()
                && control.is_none()
            {
                break;
            }
            let deadline = self.machine.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let dial = async {
                match dialing.as_mut() {
                    Some(f) => f.await,
                    None => std::future::pending().await,
                }
            };
            let read = async {
                match control.as_mut() {
                    Some((r, _)) => r.read(&mut buf).await,
                    None => std::future::pending().await,
                }
            };
            let handshake = async {
                match awaiting_handshake.as_mut() {
                    // `wait_for`, not `changed`: the watch was taken after the
                    // peer was added, and a handshake that completed in
                    // between (the relay answers within a millisecond, this
                    // task can be preempted longer under load) would never
                    // count as a change: the share stayed "registered" until
                    // WireGuard's next rekey, two minutes later (seen once in
                    // CI as a test timing out after 30 s).
                    Some(w) => w.wait_for(|done| *done > 0).await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = dial => {
                    dialing = None;
                    match r {
                        Ok(tls) => {
                            control = Some(tokio::io::split(tls));
                            self.machine.transport_connected(Instant::now());
                        }
                        Err(e) => {
                            debug!(error = %e, "dial failed");
                            last_reason = e.to_string();
                            self.set_error(Some(e.to_string()));
                            self.machine.transport_lost(Instant::now());
                        }
                    }
                }
                r = read => match r {
                    Ok(n) if n > 0 => self.machine.handle_bytes(&buf[..n], Instant::now()),
                    _ => {
                        control = None;
                        last_reason = "the relay closed the control connection".into();
                        self.machine.transport_lost(Instant::now());
                    }
                },
                ok = handshake => {
                    awaiting_handshake = None;
                    if ok {
                        self.machine.wireguard_up(Instant::now());
                    }
                }
                _ = sleep => self.machine.handle_timeout(Instant::now()),
                _ = stats.tick() => self.refresh(plane.as_ref(), &connected_since),
                _ = self.cancel.cancelled() => {
                    last_reason = "stopped".into();
                    self.machine.disconnect();
                    control = None;
                    dialing = None;
                }
            }
        }
        if let Some(plane) = plane {
            plane.forwards.stop();
            plane.node.shutdown().await;
        }
        self.status
            .send_modify(|s| s.state = TunnelState::Disconnected.as_str().to_owned());
        (last_reason, last_code)
    }

    fn set_error(&self, error: Option<String>) {
        self.status.send_modify(|s| s.error = error);
    }

    /// Traffic and handshake into the status and the next heartbeat.
    fn refresh(&mut self, plane: Option<&DataPlane>, connected_since: &str) {
        let Some(plane) = plane else { return };
        let Some(stats) = plane.node.peer_stats(&plane.relay_key) else {
            return;
        };
        self.machine
            .set_stats(stats.rx_bytes, stats.tx_bytes, connected_since.to_owned());
        let open = plane.forwards.open() as u64;
        self.status.send_if_modified(|s| {
            let handshake = stats
                .last_handshake
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map(|d| d.as_secs());
            let changed = s.bytes_in != stats.rx_bytes
                || s.bytes_out != stats.tx_bytes
                || s.last_handshake_unix != handshake
                || s.open_connections != open;
            s.bytes_in = stats.rx_bytes;
            s.bytes_out = stats.tx_bytes;
            s.last_handshake_unix = handshake;
            s.open_connections = open;
            changed
        });
    }

    /// Sets WireGuard up for a grant: a node on the granted address (kept
    /// when the address is unchanged), the relay as its peer (re-added, so
    /// a fresh handshake proves the relay has us), the listeners on the
    /// shared ports. Returns the handshake watch to await.
    async fn configure(
        &mut self,
        plane: &mut Option<DataPlane>,
        reg: &Registration,
    ) -> Result<watch::Receiver<u64>, ShareError> {
        let config = &reg.config;
        let address = parse_address(&config.address)?;
        let relay_key = PublicKey::from_base64(&config.public_key).map_err(|_| {
            ShareError::BadGrant("the relay's public key is not base64 of 32 bytes".into())
        })?;
        let relay_endpoint = resolve(&config.endpoint, &self.dialer.host).await?;
        let mut allowed = Vec::new();
        for net in &config.allowed_ips {
            allowed.push(
                net.parse::<AllowedIp>()
                    .map_err(|_| ShareError::BadGrant(format!("allowed_ips entry {net:?}")))?,
            );
        }
        if allowed.is_empty() {
            return Err(ShareError::BadGrant("no allowed_ips".into()));
        }
        if plane.as_ref().is_some_and(|p| p.address != address)
            && let Some(old) = plane.take()
        {
            old.forwards.stop();
            old.node.shutdown().await;
        }
        if plane.is_none() {
            let bind: SocketAddr = if relay_endpoint.is_ipv6() {
                "[::]:0".parse().expect("literal")
            } else {
                "0.0.0.0:0".parse().expect("literal")
            };
            let udp = UdpSocket::bind(bind).await.map_err(ShareError::Udp)?;
            let node = Node::start(udp, NodeConfig::new(self.private_key.clone(), address))?;
            let forwards =
                Forwards::start(&node, &self.ports, self.inbound.clone(), &reg.tunnel_id)?;
            *plane = Some(DataPlane {
                node,
                address,
                relay_key,
                relay_endpoint,
                forwards,
            });
        }
        let plane = plane.as_mut().expect("set above");
        plane.node.remove_peer(&plane.relay_key);
        let mut peer = PeerConfig::new(relay_key, allowed);
        peer.endpoint = Some(relay_endpoint);
        peer.persistent_keepalive = Some(KEEPALIVE_SECS);
        plane.node.add_peer(peer)?;
        plane.relay_key = relay_key;
        plane.relay_endpoint = relay_endpoint;
        let watch = plane
            .node
            .handshakes(&relay_key)
            .ok_or(ShareError::BadGrant("the relay peer vanished".into()))?;
        self.status.send_modify(|s| {
            s.tunnel_id = Some(reg.tunnel_id.clone());
            s.address = Some(config.address.clone());
            s.forwards = config
                .forwards
                .iter()
                .map(|f| ForwardInfo {
                    port: f.port,
                    public: f.public.clone(),
                })
                .collect();
        });
        info!(
            tunnel_id = %reg.tunnel_id,
            address = %config.address,
            endpoint = %relay_endpoint,
            "tunnel granted; WireGuard handshake under way"
        );
        Ok(watch)
    }
}

/// `10.0.0.7/32` (or a bare address) into the node's address.
fn parse_address(text: &str) -> Result<Ipv4Addr, ShareError> {
    let ip = text.split('/').next().unwrap_or_default();
    ip.parse()
        .map_err(|_| ShareError::BadGrant(format!("tunnel address {text:?} is not IPv4")))
}

/// The relay's WireGuard endpoint. A wildcard host (`0.0.0.0:P`, a relay
/// that does not know its public name) means the control channel's host.
async fn resolve(endpoint: &str, control_host: &str) -> Result<SocketAddr, ShareError> {
    let (host, port) = crate::profile::split_host_port(endpoint, 51820)
        .map_err(|e| ShareError::BadGrant(format!("endpoint: {e}")))?;
    let host = if host == "0.0.0.0" || host == "::" {
        control_host.to_owned()
    } else {
        host
    };
    let found = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map(|mut addrs| addrs.next());
    match found {
        Ok(Some(addr)) => Ok(addr),
        Ok(None) => Err(ShareError::Resolve {
            host,
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
        }),
        Err(source) => Err(ShareError::Resolve { host, source }),
    }
}
