//! The local DNS server (`Engine::serve_dns`) with `dig` (Debian's dnsutils)
//! as the client. The far side's resolver is a fixed table here, so that
//! every path (addresses, names, no record, no such name, a big answer that
//! needs TCP) is exercised deterministically; the HT end-to-end tests put a
//! real server's resolver behind it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use engine::transport::BoxFuture;
use engine::{
    DnsLimits, DnsQuestion, DnsRecord, Engine, OpenedStream, ReconnectPolicy, Resolver,
    StartOptions, Transport, TransportError, TunnelSession,
};
use local_proxy::{ConnectError, ConnectErrorKind, ProxyConfig, TargetAddr};

struct TableTransport;
struct TableSession;

impl Transport for TableTransport {
    fn server(&self) -> String {
        "table".into()
    }
    fn connect(&self) -> BoxFuture<'_, Result<Arc<dyn TunnelSession>, TransportError>> {
        Box::pin(async { Ok(Arc::new(TableSession) as Arc<dyn TunnelSession>) })
    }
}

impl TunnelSession for TableSession {
    fn session_id(&self) -> String {
        "table".into()
    }
    fn max_streams(&self) -> u32 {
        1
    }
    fn open(
        &self,
        _target: TargetAddr,
        _slot_wait: Duration,
    ) -> BoxFuture<'_, Result<OpenedStream, ConnectError>> {
        Box::pin(async {
            Err(ConnectError::new(
                ConnectErrorKind::Unsupported,
                "no streams",
            ))
        })
    }
    fn closed(&self) -> BoxFuture<'_, String> {
        Box::pin(std::future::pending())
    }
    fn close(&self) {}
    fn resolver(&self) -> Option<&dyn Resolver> {
        Some(self)
    }
}

impl Resolver for TableSession {
    fn lookup(&self, question: DnsQuestion) -> BoxFuture<'_, Result<Vec<DnsRecord>, ConnectError>> {
        let addr = |s: &str| DnsRecord::Addr(s.parse::<IpAddr>().unwrap());
        let result = match question {
            DnsQuestion::A(name) if name == "web.test" => {
                Ok(vec![addr("192.0.2.1"), addr("192.0.2.2")])
            }
            DnsQuestion::Aaaa(name) if name == "web.test" => Ok(vec![addr("2001:db8::1")]),
            DnsQuestion::A(name) if name == "v6only.test" => Ok(vec![]),
            DnsQuestion::Ptr(ip) if ip == "192.0.2.1".parse::<IpAddr>().unwrap() => {
                Ok(vec![DnsRecord::Name("web.test".into())])
            }
            // Sixteen long names: more than 512 bytes, so UDP is truncated.
            DnsQuestion::Ptr(_) => Ok((0..16)
                .map(|i| DnsRecord::Name(format!("host-{i:02}-{}.test", "x".repeat(40))))
                .collect()),
            _ => Err(ConnectError::new(
                ConnectErrorKind::Unreachable,
                "no such name",
            )),
        };
        Box::pin(async move { result })
    }
}

async fn start() -> (Engine, SocketAddr) {
    let engine = Engine::new();
    engine
        .start(StartOptions {
            transport: Arc::new(TableTransport),
            proxy: ProxyConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                ..ProxyConfig::default()
            },
            reconnect: ReconnectPolicy::default(),
            retry_initial: false,
            slot_wait: Duration::from_secs(5),
            reconnect_wait: Duration::from_secs(5),
        })
        .await
        .unwrap();
    let dns = engine
        .serve_dns("127.0.0.1:0".parse().unwrap(), DnsLimits::default())
        .await
        .unwrap();
    (engine, dns)
}

fn answers(output: &str) -> Vec<String> {
    let mut lines: Vec<String> = output
        .lines()
        .skip_while(|l| !l.starts_with(";; ANSWER SECTION"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().last().unwrap_or_default().to_owned())
        .collect();
    lines.sort();
    lines
}

#[tokio::test]
async fn dig_gets_a_aaaa_and_ptr_through_the_tunnel_resolver() {
    let (engine, dns) = start().await;
    let a = testkit::dig(dns, &["web.test", "A"]).await;
    assert!(a.contains("status: NOERROR"), "{a}");
    assert_eq!(answers(&a), ["192.0.2.1", "192.0.2.2"]);
    let aaaa = testkit::dig(dns, &["web.test", "AAAA"]).await;
    assert_eq!(answers(&aaaa), ["2001:db8::1"], "{aaaa}");
    let ptr = testkit::dig(dns, &["-x", "192.0.2.1"]).await;
    assert_eq!(answers(&ptr), ["web.test."], "{ptr}");
    let tcp = testkit::dig(dns, &["+tcp", "web.test", "A"]).await;
    assert_eq!(answers(&tcp), ["192.0.2.1", "192.0.2.2"], "{tcp}");

    // Each query is a row of the live table, with its outcome.
    let closed = engine.snapshot().closed;
    let row = closed
        .iter()
        .find(|s| s.target == "192.0.2.1 PTR")
        .expect("the PTR query has a row");
    assert_eq!(row.protocol, "dns");
    assert_eq!(row.close_reason.as_deref(), Some("1 record(s)"));
    engine.stop().await;
}

#[tokio::test]
async fn other_types_missing_names_and_big_answers() {
    let (engine, dns) = start().await;
    let mx = testkit::dig(dns, &["web.test", "MX"]).await;
    assert!(mx.contains("status: NOTIMP"), "{mx}");
    let missing = testkit::dig(dns, &["nowhere.test", "A"]).await;
    assert!(missing.contains("status: NXDOMAIN"), "{missing}");
    let empty = testkit::dig(dns, &["v6only.test", "A"]).await;
    assert!(
        empty.contains("status: NOERROR") && answers(&empty).is_empty(),
        "{empty}"
    );
    // Without EDNS the answer does not fit 512 bytes: dig is told it was
    // truncated and retries over TCP on the same port, getting all 16.
    let big = testkit::dig(dns, &["+noedns", "-x", "192.0.2.99"]).await;
    assert!(big.contains("Truncated, retrying in TCP mode"), "{big}");
    assert_eq!(answers(&big).len(), 16, "{big}");
    engine.stop().await;
}
