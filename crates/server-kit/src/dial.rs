//! Direct dialing: an async resolver and Happy Eyeballs (RFC 8305) racing.
//!
//! [`Dialer::resolve`] asks hickory-resolver, configured from the system's
//! `/etc/resolv.conf` and `/etc/hosts`, for AAAA and A records together
//! (no blocking `getaddrinfo` on the blocking pool). One resolver per
//! gateway, so its cache serves every stream (a page names the same hosts
//! over and over). [`interleave`] orders
//! the answers as RFC 8305 §4 asks: address families alternate, IPv6 first.
//! [`race`] then staggers connection attempts: the next address starts after
//! the connection attempt delay, or at once when an earlier attempt fails; the
//! first success wins and the other attempts are dropped. So a blackholed
//! IPv6 address costs one attempt delay, not the whole dial timeout.
//!
//! Not done from RFC 8305: the 50 ms "resolution delay" (connecting on the
//! first of the AAAA/A answers); both answers are awaited together.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use hickory_resolver::Resolver;
use hickory_resolver::config::{LookupIpStrategy, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use tokio::net::TcpStream;

/// RFC 8305 §5's recommended connection attempt delay.
pub const DEFAULT_ATTEMPT_DELAY: Duration = Duration::from_millis(250);
/// The smallest attempt delay RFC 8305 §5 allows.
pub const MIN_ATTEMPT_DELAY: Duration = Duration::from_millis(100);
/// The largest attempt delay RFC 8305 §5 allows.
pub const MAX_ATTEMPT_DELAY: Duration = Duration::from_secs(2);

/// How direct dials race their addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialOptions {
    /// Time between starting one connection attempt and the next, unless the
    /// earlier one fails first. Clamped to
    /// [`MIN_ATTEMPT_DELAY`]..=[`MAX_ATTEMPT_DELAY`] when used.
    pub attempt_delay: Duration,
    /// Gives up on one address after this long (it then counts as timed out);
    /// `None`: an attempt lasts until the overall dial timeout.
    pub attempt_timeout: Option<Duration>,
}

impl Default for DialOptions {
    fn default() -> Self {
        DialOptions {
            attempt_delay: DEFAULT_ATTEMPT_DELAY,
            attempt_timeout: None,
        }
    }
}

impl DialOptions {
    /// The attempt delay in force: `attempt_delay` within RFC 8305's bounds.
    pub fn effective_attempt_delay(&self) -> Duration {
        self.attempt_delay
            .clamp(MIN_ATTEMPT_DELAY, MAX_ATTEMPT_DELAY)
    }
}

/// The system resolver configuration, read once; `None` when it cannot be
/// read (then [`resolve`] falls back to tokio's `lookup_host`).
fn system_conf() -> Option<&'static (ResolverConfig, ResolverOpts)> {
    static CONF: OnceLock<Option<(ResolverConfig, ResolverOpts)>> = OnceLock::new();
    CONF.get_or_init(|| match hickory_resolver::system_conf::read_system_conf() {
        Ok(conf) => Some(conf),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the system resolver configuration; using getaddrinfo");
            None
        }
    })
    .as_ref()
}

/// A gateway's direct dialing: its race settings and its resolver.
///
/// The resolver is built on first use and kept: its connections' background
/// tasks live on the tokio runtime of that first use, which is the
/// gateway's (a gateway runs on one runtime; several gateways in one process,
/// as in tests or the app's demo mode, each have their own dialer).
#[derive(Default)]
pub struct Dialer {
    options: DialOptions,
    resolver: OnceLock<Option<Resolver<TokioRuntimeProvider>>>,
}

impl Dialer {
    /// A dialer racing with `options`.
    pub fn new(options: DialOptions) -> Dialer {
        Dialer {
            options,
            resolver: OnceLock::new(),
        }
    }

    /// How addresses are raced.
    pub fn options(&self) -> &DialOptions {
        &self.options
    }

    /// The resolver (built on first use), for lookups other than a dial's
    /// (the HT server's `n` queries); `None` when the system configuration
    /// cannot be read, and callers fall back as [`Dialer::resolve`] does.
    pub fn resolver(&self) -> Option<&Resolver<TokioRuntimeProvider>> {
        self.resolver
            .get_or_init(|| {
                let (config, opts) = system_conf()?;
                let mut builder =
                    Resolver::builder_with_config(config.clone(), TokioRuntimeProvider::default());
                *builder.options_mut() = opts.clone();
                builder.options_mut().ip_strategy = LookupIpStrategy::Ipv6AndIpv4;
                builder
                    .build()
                    .inspect_err(|e| tracing::warn!(error = %e, "cannot build the resolver; using getaddrinfo"))
                    .ok()
            })
            .as_ref()
    }

    /// Resolves `name` to its addresses (IPv6 and IPv4, in the resolver's
    /// order), with `/etc/hosts` consulted first, answers cached as their
    /// TTLs allow.
    pub async fn resolve(&self, name: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        let Some(resolver) = self.resolver() else {
            // Fallback: blocking getaddrinfo on tokio's blocking pool.
            return Ok(tokio::net::lookup_host((name, port)).await?.collect());
        };
        let lookup = resolver.lookup_ip(name).await.map_err(io::Error::other)?;
        Ok(lookup.iter().map(|ip| SocketAddr::new(ip, port)).collect())
    }
}

/// Orders addresses for racing (RFC 8305 §4): duplicates dropped, families
/// alternating starting with IPv6 when there is any, each family in the
/// resolver's order.
pub fn interleave(addrs: impl IntoIterator<Item = SocketAddr>) -> Vec<SocketAddr> {
    let mut v6 = Vec::new();
    let mut v4 = Vec::new();
    for sa in addrs {
        if v6.contains(&sa) || v4.contains(&sa) {
            continue;
        }
        if sa.is_ipv6() {
            v6.push(sa);
        } else {
            v4.push(sa);
        }
    }
    let mut out = Vec::with_capacity(v6.len() + v4.len());
    let (mut a, mut b) = (v6.into_iter(), v4.into_iter());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
}

/// How telling a failed attempt's error is when every attempt failed: a
/// refusal (the host answered) beats a timeout, which beats other errors,
/// which beat "unreachable" (typically IPv6 without a route).
fn relevance(e: &io::Error) -> u8 {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => 3,
        io::ErrorKind::TimedOut => 2,
        io::ErrorKind::NetworkUnreachable | io::ErrorKind::HostUnreachable => 0,
        _ => 1,
    }
}

/// Races connection attempts to `addrs`, in the given order (see
/// [`interleave`]), with `connect` making one attempt.
///
/// Attempt *n + 1* starts [`DialOptions::effective_attempt_delay`] after
/// attempt *n*, or as soon as any running attempt fails. The first success is
/// returned and the attempts still running are dropped (cancelled). When all
/// fail, the most telling error wins (refused > timed out > other >
/// unreachable; the later one among equals), prefixed with its address when
/// there were several. After `overall` the race gives up with `TimedOut`.
pub async fn race<T, F, Fut>(
    addrs: &[SocketAddr],
    opts: &DialOptions,
    overall: Duration,
    mut connect: F,
) -> io::Result<T>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: Future<Output = io::Result<T>>,
{
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no address to dial",
        ));
    }
    let several = addrs.len() > 1;
    let delay = opts.effective_attempt_delay();
    let attempt_timeout = opts.attempt_timeout;
    let mut start = |sa: SocketAddr| {
        let fut = connect(sa);
        async move {
            let r = match attempt_timeout {
                Some(t) => match tokio::time::timeout(t, fut).await {
                    Ok(r) => r,
                    Err(_) => Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no answer within {t:?}"),
                    )),
                },
                None => fut.await,
            };
            (sa, r)
        }
    };
    let racing = async {
        let mut pending = FuturesUnordered::new();
        let mut rest = addrs.iter().copied();
        let mut next = rest.next();
        let mut best: Option<io::Error> = None;
        loop {
            if let Some(sa) = next.take() {
                pending.push(start(sa));
                next = rest.next();
            }
            let timer = tokio::time::sleep(delay);
            tokio::pin!(timer);
            loop {
                tokio::select! {
                    biased;
                    Some((sa, r)) = pending.next() => match r {
                        Ok(conn) => return Ok(conn),
                        Err(e) => {
                            let e = if several {
                                io::Error::new(e.kind(), format!("{sa}: {e}"))
                            } else {
                                e
                            };
                            best = Some(match best.take() {
                                Some(b) if relevance(&b) > relevance(&e) => b,
                                _ => e,
                            });
                            if next.is_some() {
                                break; // the next address starts at once
                            }
                            if pending.is_empty() {
                                return Err(best.take().expect("an error was just kept"));
                            }
                        }
                    },
                    () = &mut timer, if next.is_some() => break,
                    else => {
                        return Err(best.take().unwrap_or_else(|| io::Error::other("no address to dial")));
                    }
                }
            }
        }
    };
    match tokio::time::timeout(overall, racing).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("timed out after {overall:?}"),
        )),
    }
}

/// Races TCP connections to `addrs` (see [`race`]); the winner has Nagle off.
pub async fn connect_tcp(
    addrs: &[SocketAddr],
    opts: &DialOptions,
    overall: Duration,
) -> io::Result<TcpStream> {
    let stream = race(addrs, opts, overall, TcpStream::connect).await?;
    // Interactive protocols ride on these streams: no Nagle delay.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn interleave_alternates_ipv6_first() {
        let got = interleave([
            sa("1.1.1.1:80"),
            sa("1.1.1.2:80"),
            sa("1.1.1.3:80"),
            sa("[2001:db8::1]:80"),
            sa("1.1.1.1:80"),
            sa("[2001:db8::2]:80"),
        ]);
        assert_eq!(
            got,
            [
                sa("[2001:db8::1]:80"),
                sa("1.1.1.1:80"),
                sa("[2001:db8::2]:80"),
                sa("1.1.1.2:80"),
                sa("1.1.1.3:80"),
            ]
        );
        assert_eq!(interleave([sa("1.1.1.1:1")]), [sa("1.1.1.1:1")]);
        assert!(interleave([]).is_empty());
    }

    #[test]
    fn attempt_delay_is_clamped() {
        let mut o = DialOptions::default();
        assert_eq!(o.effective_attempt_delay(), Duration::from_millis(250));
        o.attempt_delay = Duration::ZERO;
        assert_eq!(o.effective_attempt_delay(), MIN_ATTEMPT_DELAY);
        o.attempt_delay = Duration::from_secs(60);
        assert_eq!(o.effective_attempt_delay(), MAX_ATTEMPT_DELAY);
    }

    #[tokio::test]
    async fn localhost_resolves() {
        let dialer = Dialer::default();
        let addrs = dialer.resolve("localhost", 80).await.unwrap();
        // A second answer comes from the same resolver.
        assert_eq!(dialer.resolve("localhost", 80).await.unwrap(), addrs);
        assert!(
            addrs.iter().any(|a| a.ip().is_loopback()),
            "localhost resolved to {addrs:?}"
        );
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 80));
    }
}
