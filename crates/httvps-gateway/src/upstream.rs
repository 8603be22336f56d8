//! Upstream connections: the direct-mode target policy and the two dialers.
//!
//! Direct mode goes through `server-kit`'s one policy path
//! ([`server_kit::direct`], shared with the HT server): names are resolved
//! on the gateway and *every* resolved address is checked before any is
//! dialed, so a name that resolves to both a public and a private address
//! cannot be used to reach the private one; the addresses are then raced
//! Happy-Eyeballs style ([`crate::dial`]). Outline mode hands the
//! target to the Shadowsocks node, which resolves names there: only an
//! IP-literal target can be checked here, and it is, under the same policy
//! (with [`UpstreamMode::outline`]).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use proto_httvps::TargetAddr;
use shadowsocks::config::{ServerAddr, ServerConfig};
use shadowsocks::context::SharedContext;
use shadowsocks::crypto::CipherKind;
use shadowsocks::net::{ConnectOpts, TcpStream as SsTcpStream};
use shadowsocks::relay::socks5::Address;
use shadowsocks::relay::tcprelay::proxy_stream::ProxyClientStream;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::config::OutlineNode;
use crate::dial::Dialer;
use crate::session::{CloseReason, StreamEnd};
use server_kit::direct::{self, DialError};

/// How one session reaches targets.
#[derive(Clone)]
pub enum UpstreamMode {
    /// Dial targets from the gateway, under the address policy.
    Direct {
        /// Skip the policy (tests, trusted deployments).
        allow_private: bool,
    },
    /// Through a Shadowsocks AEAD node; IP-literal targets are checked against
    /// the address policy before the node sees them (names are resolved by
    /// the node and cannot be checked here).
    Outline {
        /// The node.
        node: Arc<ServerConfig>,
        /// Skip the policy (tests, trusted deployments).
        allow_private: bool,
    },
}

impl UpstreamMode {
    /// The `mode` label of the dial histogram.
    pub fn label(&self) -> &'static str {
        match self {
            UpstreamMode::Direct { .. } => "direct",
            UpstreamMode::Outline { .. } => "outline",
        }
    }

    /// Outline mode through `node`, with IP-literal targets under the address
    /// policy (`allow_private` skips it, as in direct mode).
    pub fn outline(node: Arc<ServerConfig>, allow_private: bool) -> UpstreamMode {
        UpstreamMode::Outline {
            node,
            allow_private,
        }
    }
}

/// Builds the Shadowsocks client configuration of an Outline node.
pub fn outline_config(node: &OutlineNode) -> Result<ServerConfig, String> {
    let method: CipherKind = node
        .method
        .parse()
        .map_err(|_| format!("unsupported Shadowsocks method {:?}", node.method))?;
    let addr = match node.host.parse::<IpAddr>() {
        Ok(ip) => ServerAddr::SocketAddr(SocketAddr::new(ip, node.port)),
        Err(_) => ServerAddr::DomainName(node.host.clone(), node.port),
    };
    ServerConfig::new(addr, node.password.clone(), method)
        .map_err(|e| format!("bad Outline node configuration: {e}"))
}

/// A connected upstream of either kind.
pub enum Upstream {
    /// A plain TCP connection to the target.
    Direct(TcpStream),
    /// A Shadowsocks stream through the Outline node.
    Outline(Box<ProxyClientStream<SsTcpStream>>),
}

impl AsyncRead for Upstream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Direct(s) => Pin::new(s).poll_read(cx, buf),
            Upstream::Outline(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Upstream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Upstream::Direct(s) => Pin::new(s).poll_write(cx, buf),
            Upstream::Outline(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Direct(s) => Pin::new(s).poll_flush(cx),
            Upstream::Outline(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Direct(s) => Pin::new(s).poll_shutdown(cx),
            Upstream::Outline(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}

/// A failed dial, already sorted into a `stream_close` reason.
pub fn dial_failure(reason: CloseReason, message: String) -> StreamEnd {
    StreamEnd {
        reason,
        error: Some(message),
    }
}

fn io_failure(target: &TargetAddr, via: &str, e: &io::Error) -> StreamEnd {
    let reason = match e.kind() {
        io::ErrorKind::ConnectionRefused => CloseReason::Refused,
        io::ErrorKind::TimedOut => CloseReason::Timeout,
        io::ErrorKind::NetworkUnreachable | io::ErrorKind::HostUnreachable => {
            CloseReason::Unreachable
        }
        _ => CloseReason::UpstreamError,
    };
    dial_failure(reason, format!("cannot connect to {target}{via}: {e}"))
}

/// Connects to `target` in `mode`, within `timeout` (DNS included).
///
/// Returns the connection and how long the dial took.
pub async fn dial(
    mode: &UpstreamMode,
    ss_context: &SharedContext,
    dialer: &Dialer,
    target: &TargetAddr,
    timeout: Duration,
) -> Result<(Upstream, Duration), StreamEnd> {
    let started = Instant::now();
    let target = &as_literal(target);
    let attempt = async {
        match mode {
            UpstreamMode::Direct { allow_private } => {
                dial_direct(target, *allow_private, dialer, timeout)
                    .await
                    .map(Upstream::Direct)
            }
            UpstreamMode::Outline {
                node,
                allow_private,
            } => dial_outline(ss_context, node, target, *allow_private).await,
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(up)) => Ok((up, started.elapsed())),
        Ok(Err(end)) => Err(end),
        Err(_) => Err(dial_failure(
            CloseReason::Timeout,
            format!("connecting to {target} timed out after {timeout:?}"),
        )),
    }
}

/// A "name" that is really an IPv4 address in a spelling resolvers accept
/// becomes that address ([`direct::as_literal`]), so the policy judges it
/// here: an Outline node would otherwise resolve it behind our back.
fn as_literal(target: &TargetAddr) -> TargetAddr {
    direct::as_literal(target)
}

/// The `stream_close` reason of a failed direct dial: the one mapping from
/// `server-kit`'s errors to this protocol's codes.
fn direct_failure(e: DialError) -> StreamEnd {
    let reason = match &e {
        DialError::NotAllowed(_) | DialError::PortZero(_) => CloseReason::NotAllowed,
        DialError::Resolve { .. } | DialError::NoAddress(_) => CloseReason::Unreachable,
        DialError::TimedOut { .. } => CloseReason::Timeout,
        DialError::Connect { source, .. } => match source.kind() {
            io::ErrorKind::ConnectionRefused => CloseReason::Refused,
            io::ErrorKind::TimedOut => CloseReason::Timeout,
            io::ErrorKind::NetworkUnreachable | io::ErrorKind::HostUnreachable => {
                CloseReason::Unreachable
            }
            _ => CloseReason::UpstreamError,
        },
        _ => CloseReason::UpstreamError,
    };
    dial_failure(reason, e.to_string())
}

fn check_policy(
    target: &TargetAddr,
    allow_private: bool,
    addrs: impl IntoIterator<Item = IpAddr>,
) -> Result<(), StreamEnd> {
    direct::check_policy(target, allow_private, addrs).map_err(direct_failure)
}

/// Resolves `target`, checks every address under the policy, then races them
/// (RFC 8305) within `budget`; the winner has Nagle off.
async fn dial_direct(
    target: &TargetAddr,
    allow_private: bool,
    dialer: &Dialer,
    budget: Duration,
) -> Result<TcpStream, StreamEnd> {
    direct::connect_tcp(dialer, target, allow_private, budget)
        .await
        .map_err(direct_failure)
}

/// Connects through the Outline node. An IP-literal target is checked
/// against the policy first (unless `allow_private`); names go to the node
/// unchecked, since the node resolves them.
async fn dial_outline(
    context: &SharedContext,
    cfg: &ServerConfig,
    target: &TargetAddr,
    allow_private: bool,
) -> Result<Upstream, StreamEnd> {
    if let TargetAddr::Ip(sa) = target {
        check_policy(target, allow_private, [sa.ip()])?;
    }
    let address = match target {
        TargetAddr::Ip(sa) => Address::SocketAddress(*sa),
        TargetAddr::Domain(name, port) => Address::DomainNameAddress(name.clone(), *port),
    };
    let mut opts = ConnectOpts::default();
    opts.tcp.nodelay = true;
    let via = format!(" via Outline node {}", cfg.addr());
    let mut stream = ProxyClientStream::connect_with_opts(context.clone(), cfg, address, &opts)
        .await
        .map_err(|e| io_failure(target, &via, &e))?;
    // The crate sends the address header with its first write, as one AEAD
    // chunk capped at 0x3FFF bytes, yet reports the whole write as done: a
    // larger first write silently loses data (NOTES.md). So the first write is
    // empty — header only, which also lets server-first protocols start — and
    // every later write goes through the chunking path that reports honestly.
    let first = stream
        .write(&[])
        .await
        .map_err(|e| io_failure(target, &via, &e));
    first?;
    stream
        .flush()
        .await
        .map_err(|e| io_failure(target, &via, &e))?;
    Ok(Upstream::Outline(Box::new(stream)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outline_config_checks_method() {
        let node = OutlineNode {
            host: "127.0.0.1".into(),
            port: 8388,
            method: "aes-256-gcm".into(),
            password: "pw".into(),
        };
        assert!(outline_config(&node).is_ok());
        let bad = OutlineNode {
            method: "rot13".into(),
            ..node
        };
        assert!(outline_config(&bad).is_err());
    }

    #[tokio::test]
    async fn direct_refuses_loopback_unless_allowed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = TargetAddr::Ip(listener.local_addr().unwrap());
        let dialer = Dialer::default();
        let t = Duration::from_secs(5);
        let err = dial_direct(&target, false, &dialer, t).await.unwrap_err();
        assert_eq!(err.reason, CloseReason::NotAllowed);
        let stream = dial_direct(&target, true, &dialer, t).await.unwrap();
        assert!(stream.nodelay().unwrap());
        let localhost = TargetAddr::Domain("localhost".into(), target.port());
        let err = dial_direct(&localhost, false, &dialer, t)
            .await
            .unwrap_err();
        assert_eq!(err.reason, CloseReason::NotAllowed);
        // `localhost` resolves (through /etc/hosts) and is dialed when allowed.
        assert!(dial_direct(&localhost, true, &dialer, t).await.is_ok());
    }

    #[tokio::test]
    async fn direct_maps_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = TargetAddr::Ip(listener.local_addr().unwrap());
        drop(listener);
        let err = dial_direct(&target, true, &Dialer::default(), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(err.reason, CloseReason::Refused, "{:?}", err.error);
    }

    /// Outline mode checks IP-literal targets before the node sees them; the
    /// node here is a closed loopback port, so reaching it reads "refused".
    #[tokio::test]
    async fn outline_checks_ip_literal_targets() {
        use shadowsocks::config::ServerType;
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let node = OutlineNode {
            host: "127.0.0.1".into(),
            port: closed.local_addr().unwrap().port(),
            method: "aes-256-gcm".into(),
            password: "pw".into(),
        };
        drop(closed);
        let cfg = Arc::new(outline_config(&node).unwrap());
        let ctx = shadowsocks::context::Context::new_shared(ServerType::Local);
        let literal = TargetAddr::Ip("127.0.0.1:9".parse().unwrap());
        let name = TargetAddr::Domain("localhost".into(), 9);
        let t = Duration::from_secs(5);
        let reason = |r: Result<(Upstream, Duration), StreamEnd>| match r {
            Ok(_) => panic!("dialed through a closed node"),
            Err(end) => end.reason,
        };

        let strict = UpstreamMode::outline(cfg.clone(), false);
        assert_eq!(strict.label(), "outline");
        let r = dial(&strict, &ctx, &Dialer::default(), &literal, t).await;
        assert_eq!(reason(r), CloseReason::NotAllowed);
        // Names are resolved by the node: not checked here.
        assert_eq!(
            reason(dial(&strict, &ctx, &Dialer::default(), &name, t).await),
            CloseReason::Refused
        );
        let public = TargetAddr::Ip("192.0.2.1:80".parse().unwrap());
        let r = dial(&strict, &ctx, &Dialer::default(), &public, t).await;
        assert_eq!(
            reason(r),
            CloseReason::NotAllowed,
            "TEST-NET-1 is documentation"
        );
        // A public literal passes and goes (only) to the node, inside its header.
        let public = TargetAddr::Ip("1.1.1.1:80".parse().unwrap());
        assert_eq!(
            reason(dial(&strict, &ctx, &Dialer::default(), &public, t).await),
            CloseReason::Refused
        );

        // A loopback address spelled as a number is judged as what it is.
        for spelling in ["2130706433", "0x7f.1", "0177.0.0.1"] {
            let sneaky = TargetAddr::Domain(spelling.into(), 9);
            assert_eq!(
                reason(dial(&strict, &ctx, &Dialer::default(), &sneaky, t).await),
                CloseReason::NotAllowed,
                "{spelling}"
            );
        }

        let open = UpstreamMode::outline(cfg, true);
        assert_eq!(
            reason(dial(&open, &ctx, &Dialer::default(), &literal, t).await),
            CloseReason::Refused
        );
    }
}
