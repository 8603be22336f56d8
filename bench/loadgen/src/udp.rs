//! UDP datagrams per second: datagrams go to a UDP echo server, through a
//! SOCKS5 UDP association or straight to it, with a bounded number in flight.
//! Each carries a sequence number; one that has not come back within the
//! loss timeout counts as lost and frees its place in the window.
//!
//! [`echo`] is the other end: a UDP server that sends every datagram back to
//! where it came from.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::net::{TcpStream, UdpSocket};

use crate::socks5::{self, Socks5Error};
use crate::streams::Percentiles;

/// Largest datagram payload accepted by `--size` (with room for a SOCKS5
/// header below the 65,507 bytes of an IPv4 UDP payload).
pub const MAX_SIZE: usize = 65_000;
/// Bytes of the sequence number at the start of every payload.
const SEQ_LEN: usize = 8;

/// What to run.
#[derive(Debug, Clone)]
pub struct UdpOptions {
    /// The SOCKS5 proxy, or `None` to send straight to the target.
    pub proxy: Option<SocketAddr>,
    /// The echo server.
    pub target: SocketAddr,
    /// Payload bytes per datagram, at least 8 (the sequence number).
    pub size: usize,
    /// Most datagrams sent and not yet back (or lost).
    pub in_flight: usize,
    /// How long to keep sending.
    pub duration: Duration,
    /// A datagram not back within this is lost.
    pub loss_timeout: Duration,
}

/// The JSON the `udp` command prints.
#[derive(Debug, Clone, Serialize)]
pub struct UdpReport {
    /// The echo server.
    pub target: SocketAddr,
    /// The proxy, or `null` when sent directly.
    pub proxy: Option<SocketAddr>,
    /// The SOCKS5 UDP relay address the proxy named.
    pub relay: Option<SocketAddr>,
    /// Payload bytes per datagram.
    pub size: usize,
    /// The window: most datagrams in flight.
    pub in_flight: usize,
    /// Datagrams sent.
    pub sent: u64,
    /// Datagrams that came back intact within the loss timeout.
    pub received: u64,
    /// Datagrams that did not come back within the loss timeout.
    pub lost: u64,
    /// Datagrams that came back after being counted lost, or twice.
    pub late_or_duplicate: u64,
    /// Datagrams that came back altered (wrong length or content).
    pub corrupt: u64,
    /// `lost / sent`, percent.
    pub loss_pct: f64,
    /// From the first send to the last datagram received, seconds.
    pub elapsed_s: f64,
    /// Round trips completed per second: `received / elapsed_s`.
    pub datagrams_per_s: f64,
    /// Round-trip time of the datagrams received, milliseconds.
    pub rtt_ms: Option<Percentiles>,
}

/// Why the run could not start or went wrong as a whole (single lost
/// datagrams are in the report, not errors).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UdpError {
    /// The options make no sense.
    #[error("{0}")]
    Options(&'static str),
    /// Reaching the proxy or setting up the association failed.
    #[error("udp associate: {0}")]
    Associate(#[from] Socks5Error),
    /// A socket operation failed.
    #[error("udp i/o: {0}")]
    Io(#[from] io::Error),
}

/// The payload of datagram `seq`: its number, then bytes derived from it, so
/// an altered echo is noticed.
fn payload(seq: u64, size: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend((SEQ_LEN..size).map(|i| (i as u64 ^ seq) as u8));
}

fn intact(seq: u64, size: usize, got: &[u8]) -> bool {
    got.len() == size
        && got[SEQ_LEN..]
            .iter()
            .enumerate()
            .all(|(i, b)| *b == ((i + SEQ_LEN) as u64 ^ seq) as u8)
}

fn unspecified_like(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, 0)
}

/// Runs the test. The control connection of the association (if any) stays
/// open until the end.
pub async fn run(opts: UdpOptions) -> Result<UdpReport, UdpError> {
    if opts.size < SEQ_LEN || opts.size > MAX_SIZE {
        return Err(UdpError::Options("--size must be between 8 and 65000"));
    }
    if opts.in_flight == 0 {
        return Err(UdpError::Options("--in-flight must be at least 1"));
    }
    let (relay, _control) = match opts.proxy {
        Some(proxy) => {
            let mut tcp = TcpStream::connect(proxy).await.map_err(Socks5Error::Io)?;
            tcp.set_nodelay(true)?;
            let relay = tokio::time::timeout(
                Duration::from_secs(10),
                socks5::udp_associate(&mut tcp, proxy),
            )
            .await
            .map_err(|_| Socks5Error::Io(io::ErrorKind::TimedOut.into()))??;
            (Some(relay), Some(tcp))
        }
        None => (None, None),
    };
    let peer = relay.unwrap_or(opts.target);
    let socket = UdpSocket::bind(unspecified_like(peer)).await?;
    socket.connect(peer).await?;

    let mut header = Vec::new();
    if relay.is_some() {
        socks5::encode_udp_header(&mut header, opts.target);
    }
    let mut out = Vec::with_capacity(header.len() + opts.size);
    let mut buf = vec![0u8; 65_536];
    // Sequence number → send time, oldest first (numbers only grow).
    let mut flying: BTreeMap<u64, Instant> = BTreeMap::new();
    let mut rtts = Vec::new();
    let (mut sent, mut received, mut lost, mut late, mut corrupt) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let started = Instant::now();
    let stop_sending = started + opts.duration;
    let mut last_received = started;

    loop {
        let now = Instant::now();
        // Expire the datagrams that are overdue: lost, and out of the window.
        while let Some((&seq, &at)) = flying.first_key_value() {
            if now.duration_since(at) < opts.loss_timeout {
                break;
            }
            flying.remove(&seq);
            lost += 1;
        }
        let sending = now < stop_sending;
        if !sending && flying.is_empty() {
            break;
        }
        while sending && flying.len() < opts.in_flight {
            out.clear();
            out.extend_from_slice(&header);
            payload(sent, opts.size, &mut out);
            match socket.try_send(&out) {
                Ok(_) => {
                    flying.insert(sent, Instant::now());
                    sent += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
        // Wait for an echo until the oldest datagram is overdue (or, with an
        // empty window and a full send buffer, briefly).
        let wait = flying
            .first_key_value()
            .map(|(_, at)| (*at + opts.loss_timeout).saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_millis(1));
        let n = match tokio::time::timeout(wait, socket.recv(&mut buf)).await {
            Ok(Ok(n)) => n,
            // Including ConnectionRefused: an ICMP port unreachable from an
            // earlier send, nothing listens.
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => continue,
        };
        let got = if relay.is_some() {
            match socks5::decode_udp(&buf[..n]) {
                Ok((_, payload)) => payload,
                Err(_) => {
                    corrupt += 1;
                    continue;
                }
            }
        } else {
            &buf[..n]
        };
        let Some(seq) = got
            .get(..SEQ_LEN)
            .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
        else {
            corrupt += 1;
            continue;
        };
        if !intact(seq, opts.size, got) {
            corrupt += 1;
            continue;
        }
        match flying.remove(&seq) {
            Some(at) => {
                let now = Instant::now();
                rtts.push(now.duration_since(at).as_secs_f64() * 1000.0);
                received += 1;
                last_received = now;
            }
            None => late += 1,
        }
    }

    let elapsed_s = last_received.duration_since(started).as_secs_f64();
    Ok(UdpReport {
        target: opts.target,
        proxy: opts.proxy,
        relay,
        size: opts.size,
        in_flight: opts.in_flight,
        sent,
        received,
        lost,
        late_or_duplicate: late,
        corrupt,
        loss_pct: if sent == 0 {
            0.0
        } else {
            100.0 * lost as f64 / sent as f64
        },
        elapsed_s,
        datagrams_per_s: if elapsed_s > 0.0 {
            received as f64 / elapsed_s
        } else {
            0.0
        },
        rtt_ms: Percentiles::of(&mut rtts),
    })
}

/// A UDP echo server: every datagram goes back to its sender unchanged.
pub struct Echo {
    socket: UdpSocket,
}

impl Echo {
    /// Binds (port 0 picks one).
    pub async fn bind(addr: SocketAddr) -> io::Result<Echo> {
        Ok(Echo {
            socket: UdpSocket::bind(addr).await?,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Echoes until the process ends. A failed send (the sender went away)
    /// is not an error: the datagram is dropped, as UDP may.
    pub async fn run_forever(self) -> io::Result<()> {
        let mut buf = vec![0u8; 65_536];
        loop {
            let (n, from) = match self.socket.recv_from(&mut buf).await {
                Ok(got) => got,
                // An ICMP error for an earlier echo, reported on this socket.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(e),
            };
            let _ = self.socket.send_to(&buf[..n], from).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_carry_their_number_and_are_checked() {
        let mut out = Vec::new();
        payload(300, 64, &mut out);
        assert_eq!(out.len(), 64);
        assert_eq!(u64::from_be_bytes(out[..8].try_into().unwrap()), 300);
        assert!(intact(300, 64, &out));
        assert!(!intact(301, 64, &out));
        assert!(!intact(300, 65, &out));
        out[40] ^= 1;
        assert!(!intact(300, 64, &out));
    }
}
