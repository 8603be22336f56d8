//! SOCKS5 `UDP ASSOCIATE` (RFC 1928 §4, §7): one UDP relay socket per
//! association, between the client and the connector's datagram channel.
//!
//! ```text
//!  client UDP ──[RSV FRAG ATYP addr port data]──▶ relay socket ── Datagram ──▶ channel.send
//!  client UDP ◀──[RSV FRAG ATYP from port data]── relay socket ◀── Datagram ── channel.recv
//!  client TCP (control) ── EOF or error ──▶ association over
//! ```
//!
//! Everything lives in the task of the control connection, so an association
//! holds that connection's slot under [`crate::ProxyConfig::max_connections`]
//! and is torn down (socket and channel dropped) with it, on shutdown too.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use net::{Datagram, TargetAddr};
use tokio::io::AsyncWriteExt;
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tracing::{debug, info};

use super::ClientConn;
use super::socks::{UNSPECIFIED, normalize};
use crate::socks5::{self, Reply};
use crate::{AssociateRequest, ConnectError, DatagramChannel};

/// Runs one association after its request was read: asks the connector,
/// replies, relays until the end, then releases everything.
pub(super) async fn serve(mut conn: ClientConn, requested: TargetAddr) {
    let mut source = match ClientSource::new(conn.addr, &requested) {
        Ok(source) => source,
        Err(named) => {
            // RFC 1928 §4 lets the server limit the association to DST.ADDR;
            // an address that is not the client's own could never send
            // anything we accept, so say so at once instead of dropping
            // every datagram.
            info!(%named, client = %conn.addr, "UDP ASSOCIATE names another host as its source; refused");
            refuse(conn, Reply::NotAllowed).await;
            return;
        }
    };
    let request = AssociateRequest { client: conn.addr };
    let channel = match conn.shared.connector.associate(request).await {
        Ok(channel) => channel,
        Err(err) => {
            let reply = Reply::from_connect_error(err.kind);
            info!(error = %err, reply = reply as u8, "UDP ASSOCIATE refused by the connector");
            refuse(conn, reply).await;
            return;
        }
    };
    // The relay listens where the client reached us: the listener's IP, or
    // the interface's when the listener is a wildcard (a reply naming
    // 0.0.0.0 would leave the client guessing). Canonical, so that a
    // dual-stack listener still hands IPv4 clients an IPv4 address.
    let socket = match bind_relay(&conn).await {
        Ok(socket) => socket,
        Err(err) => {
            info!(error = %err, "cannot bind the UDP relay socket");
            refuse(conn, Reply::GeneralFailure).await;
            return;
        }
    };
    let bound = match socket.local_addr() {
        Ok(bound) => bound,
        Err(err) => {
            info!(error = %err, "UDP relay socket has no address");
            refuse(conn, Reply::GeneralFailure).await;
            return;
        }
    };
    let mut out = Vec::new();
    socks5::encode_reply(Reply::Succeeded, bound, &mut out);
    if let Err(err) = conn.writer.write_all(&out).await {
        debug!(error = %err, "client left before the UDP ASSOCIATE reply");
        return;
    }
    debug!(%bound, expected = ?source, "UDP association open");
    let limits = Limits {
        max_datagram: conn.shared.config.udp_max_datagram,
        idle: conn.shared.config.udp_idle_timeout,
    };
    let mut stats = Stats::default();
    let end = relay(
        &mut conn,
        &socket,
        &*channel,
        &mut source,
        limits,
        &mut stats,
    )
    .await;
    // Release the socket and the tunnel's side first; then tell the client.
    drop(socket);
    drop(channel);
    match &end {
        End::ChannelError(err) => info!(error = %err, ?stats, "UDP association failed"),
        End::Socket(err) => info!(error = %err, ?stats, "UDP relay socket failed"),
        end => debug!(?end, ?stats, "UDP association closed"),
    }
    if !matches!(end, End::ControlClosed) {
        // RFC 1928 ties the association to the control connection: closing
        // it is how the client learns the association is gone.
        let _ = conn.writer.shutdown().await;
    }
}

/// Sends an error reply (BND 0.0.0.0:0) and closes the control connection.
async fn refuse(conn: ClientConn, reply: Reply) {
    let mut out = Vec::new();
    socks5::encode_reply(reply, UNSPECIFIED, &mut out);
    conn.reply_and_close(&out).await;
}

async fn bind_relay(conn: &ClientConn) -> io::Result<UdpSocket> {
    let local = conn.writer.local_addr()?.ip().to_canonical();
    UdpSocket::bind(SocketAddr::new(local, 0)).await
}

/// Who may send datagrams into the association (RFC 1928 §7: the relay
/// "MUST drop any datagrams arriving from any source IP address other than
/// the one recorded for the particular association").
#[derive(Debug)]
struct ClientSource {
    /// The control connection's peer IP, canonical (no v4-mapped form).
    ip: IpAddr,
    /// The client's UDP port: from DST.PORT when the request named one,
    /// else from the first valid datagram. Later datagrams from other ports
    /// are dropped: another program on the same host must not be able to
    /// inject into, or take over, the association.
    port: Option<u16>,
    /// Where replies go: set with `port`, as the datagram's source address.
    reply_to: Option<SocketAddr>,
}

impl ClientSource {
    /// The expected source for a client at `client` that asked with
    /// DST.ADDR/DST.PORT `requested`. A DST.ADDR that is an IP other than
    /// the client's own is an error (returned as is). A domain (PySocks
    /// sends the name `"0"`) is not resolved: only its port is used.
    fn new(client: SocketAddr, requested: &TargetAddr) -> Result<Self, TargetAddr> {
        let ip = client.ip().to_canonical();
        if let TargetAddr::Ip(named) = requested {
            let named_ip = named.ip().to_canonical();
            if !named_ip.is_unspecified() && named_ip != ip {
                return Err(requested.clone());
            }
        }
        let port = Some(requested.port()).filter(|&p| p != 0);
        Ok(ClientSource {
            ip,
            port,
            reply_to: port.map(|p| SocketAddr::new(ip, p)),
        })
    }

    /// Whether a datagram from `from` may come in.
    fn admits(&self, from: SocketAddr) -> bool {
        from.ip().to_canonical() == self.ip && self.port.is_none_or(|p| p == from.port())
    }

    /// Records `from` (already admitted) as the client's UDP address.
    fn pin(&mut self, from: SocketAddr) {
        self.port = Some(from.port());
        // The address form the datagram came with is the one to answer to.
        self.reply_to = Some(from);
    }
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    max_datagram: usize,
    idle: Duration,
}

/// What happened on one association, for the closing log line.
#[derive(Debug, Default)]
struct Stats {
    /// Datagrams relayed client → channel and channel → client.
    up: u64,
    down: u64,
    /// Dropped from the client: wrong source, malformed header (including
    /// fragments), payload over the limit.
    foreign: u64,
    malformed: u64,
    oversized: u64,
    /// Dropped towards the client: no client port known yet, over the
    /// limit, or the send failed.
    undeliverable: u64,
}

/// Why an association ended.
#[derive(Debug)]
enum End {
    /// The client closed the control connection (or it failed).
    ControlClosed,
    /// The channel's `recv` returned `None`: the far side ended it.
    ChannelClosed,
    /// Nothing relayed for [`crate::ProxyConfig::udp_idle_timeout`].
    Idle,
    /// The channel's `send` failed.
    ChannelError(ConnectError),
    /// The relay socket failed.
    Socket(io::Error),
}

/// The control connection said something: `Some(end)` when it is over.
/// RFC 1928 gives the client nothing to send on it after the request, so
/// any bytes are read and discarded (bounded by the reader's buffer).
fn control_event(conn: &mut ClientConn, read: io::Result<usize>) -> Option<End> {
    match read {
        Ok(0) => Some(End::ControlClosed),
        Err(err) => {
            debug!(error = %err, "UDP control connection failed");
            Some(End::ControlClosed)
        }
        Ok(_) => {
            conn.reader.buf.clear();
            None
        }
    }
}

/// Relays until the association ends.
///
/// One task, no queue of its own: a datagram from the client is handed to
/// `channel.send` before the next one is read (the channel's backpressure
/// reaches the client's socket buffer, where the kernel drops the excess as
/// UDP allows). The `recv` future is kept across loop turns rather than
/// re-created, so a channel whose `recv` is not cancel-safe loses nothing.
async fn relay(
    conn: &mut ClientConn,
    socket: &UdpSocket,
    channel: &dyn DatagramChannel,
    source: &mut ClientSource,
    limits: Limits,
    stats: &mut Stats,
) -> End {
    // One byte more than the largest acceptable datagram: a datagram that
    // fills the buffer was cut by the kernel and is over the limit anyway.
    let mut buf = vec![0u8; socks5::MAX_UDP_HEADER_LEN + limits.max_datagram + 1];
    let mut out = Vec::with_capacity(socks5::MAX_UDP_HEADER_LEN + limits.max_datagram);
    let idle = tokio::time::sleep(limits.idle);
    tokio::pin!(idle);
    let mut from_channel = channel.recv();
    // Bytes the client sent ahead of the request on the control connection.
    conn.reader.buf.clear();
    loop {
        tokio::select! {
            read = conn.reader.fill() => {
                if let Some(end) = control_event(conn, read) {
                    return end;
                }
            }
            () = &mut idle => return End::Idle,
            inbound = &mut from_channel => {
                from_channel = channel.recv();
                let Some(datagram) = inbound else {
                    return End::ChannelClosed;
                };
                if deliver(socket, source, &datagram, limits, &mut out).await {
                    stats.down += 1;
                    idle.as_mut().reset(Instant::now() + limits.idle);
                } else {
                    stats.undeliverable += 1;
                }
            }
            received = socket.recv_from(&mut buf) => {
                let (len, from) = match received {
                    Ok(got) => got,
                    // An ICMP error for an earlier send to the client
                    // (reported this way on some systems): not fatal.
                    Err(err) if matches!(err.kind(), io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset) => {
                        debug!(error = %err, "UDP relay socket reported an ICMP error");
                        continue;
                    }
                    Err(err) => return End::Socket(err),
                };
                let Some(datagram) = accept(&buf[..len], from, source, limits, stats) else {
                    continue;
                };
                idle.as_mut().reset(Instant::now() + limits.idle);
                let send = channel.send(datagram);
                tokio::pin!(send);
                loop {
                    tokio::select! {
                        sent = &mut send => {
                            if let Err(err) = sent {
                                return End::ChannelError(err);
                            }
                            stats.up += 1;
                            break;
                        }
                        read = conn.reader.fill() => {
                            if let Some(end) = control_event(conn, read) {
                                return end;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Checks one datagram from the client; `None` when it is dropped (each
/// reason logged at debug level and counted).
fn accept(
    bytes: &[u8],
    from: SocketAddr,
    source: &mut ClientSource,
    limits: Limits,
    stats: &mut Stats,
) -> Option<Datagram> {
    if !source.admits(from) {
        stats.foreign += 1;
        debug!(%from, expected = ?source, dropped = stats.foreign, "UDP datagram from a foreign source dropped");
        return None;
    }
    let (target, payload) = match socks5::decode_udp_datagram(bytes) {
        Ok(decoded) => decoded,
        Err(err) => {
            stats.malformed += 1;
            debug!(%from, error = %err, dropped = stats.malformed, "malformed UDP datagram dropped");
            return None;
        }
    };
    if payload.len() > limits.max_datagram {
        stats.oversized += 1;
        debug!(%from, len = payload.len(), max = limits.max_datagram, dropped = stats.oversized, "oversized UDP datagram dropped");
        return None;
    }
    // Only a valid datagram may fix the client's port.
    source.pin(from);
    Some(Datagram {
        target: normalize(target),
        payload: Bytes::copy_from_slice(payload),
    })
}

/// Sends one datagram from the channel to the client, with the header
/// naming its sender. `false` when it was dropped: a lost datagram is
/// ordinary UDP life and does not end the association.
async fn deliver(
    socket: &UdpSocket,
    source: &ClientSource,
    datagram: &Datagram,
    limits: Limits,
    out: &mut Vec<u8>,
) -> bool {
    let Some(to) = source.reply_to else {
        debug!(from = %datagram.target, "UDP reply before the client's first datagram dropped");
        return false;
    };
    if datagram.payload.len() > limits.max_datagram {
        debug!(from = %datagram.target, len = datagram.payload.len(), max = limits.max_datagram, "oversized UDP reply dropped");
        return false;
    }
    out.clear();
    socks5::encode_udp_header(&datagram.target, out);
    out.extend_from_slice(&datagram.payload);
    match socket.send_to(out, to).await {
        Ok(_) => true,
        Err(err) => {
            debug!(%to, error = %err, "UDP reply to the client failed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn source_without_port_pins_on_first_datagram() {
        let mut s =
            ClientSource::new(sa("127.0.0.1:5000"), &TargetAddr::Ip(sa("0.0.0.0:0"))).unwrap();
        assert!(s.reply_to.is_none());
        assert!(s.admits(sa("127.0.0.1:7000")));
        assert!(!s.admits(sa("127.0.0.2:7000")));
        s.pin(sa("127.0.0.1:7000"));
        assert!(s.admits(sa("127.0.0.1:7000")));
        assert!(!s.admits(sa("127.0.0.1:7001")));
        assert_eq!(s.reply_to, Some(sa("127.0.0.1:7000")));
    }

    #[test]
    fn source_named_in_request_restricts() {
        // PySocks names its port with the domain "0".
        let s =
            ClientSource::new(sa("127.0.0.1:5000"), &TargetAddr::Domain("0".into(), 7000)).unwrap();
        assert!(s.admits(sa("127.0.0.1:7000")));
        assert!(!s.admits(sa("127.0.0.1:7001")));
        assert_eq!(s.reply_to, Some(sa("127.0.0.1:7000")));
        let s =
            ClientSource::new(sa("127.0.0.1:5000"), &TargetAddr::Ip(sa("127.0.0.1:7000"))).unwrap();
        assert!(s.admits(sa("127.0.0.1:7000")));
        assert!(
            ClientSource::new(sa("127.0.0.1:5000"), &TargetAddr::Ip(sa("10.0.0.1:7000"))).is_err()
        );
    }

    #[test]
    fn v4_mapped_addresses_compare_equal() {
        let s = ClientSource::new(sa("[::ffff:127.0.0.1]:5000"), &TargetAddr::Ip(sa("[::]:0")))
            .unwrap();
        assert!(s.admits(sa("127.0.0.1:7000")));
        assert!(s.admits(sa("[::ffff:127.0.0.1]:7000")));
    }
}
