//! A plain DNS server on a local address (`--dns-listen`) answered through
//! the tunnel: applications or the system resolver point at it, and no DNS
//! query leaves this machine in clear.
//!
//! It answers what a tunnel's [`Resolver`] can ask the far side: `A`,
//! `AAAA` and `PTR`; every other type gets `NOTIMP`. UDP answers that do not
//! fit the client's limit (512 bytes, or its EDNS size) come back truncated
//! so the client retries over TCP, which is served on the same port.
//!
//! The message codec is hickory-proto's (the one our servers' resolver
//! uses); what is ours is the mapping in [`answer`], kept free of sockets so
//! it is unit-tested directly.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use local_proxy::{ConnectError, ConnectErrorKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Semaphore, broadcast};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::connector::CurrentSession;
use crate::events::EngineEvent;
use crate::table::StreamTable;
use crate::transport::{DnsQuestion, DnsRecord};

/// The limits of the local DNS server.
#[derive(Debug, Clone)]
pub struct DnsLimits {
    /// Queries answered at once (UDP and TCP together); more wait.
    pub max_in_flight: usize,
    /// TCP connections at once; more are refused.
    pub max_tcp_connections: usize,
    /// A TCP connection with no query for this long is closed.
    pub tcp_idle: Duration,
    /// How long a query waits for a session and its answer.
    pub answer_timeout: Duration,
    /// TTL given to answers (the tunnel does not carry the server's TTL).
    pub ttl: u32,
}

impl Default for DnsLimits {
    fn default() -> Self {
        DnsLimits {
            max_in_flight: 256,
            max_tcp_connections: 64,
            tcp_idle: Duration::from_secs(10),
            answer_timeout: Duration::from_secs(10),
            ttl: 60,
        }
    }
}

/// What a request asks, once read.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// A question the tunnel can answer.
    Lookup(Message, DnsQuestion),
    /// Answered at once with this message (bad request, unsupported type).
    Immediate(Message),
    /// Not worth an answer (not even a header could be read, or a response).
    Ignore,
}

/// Reads one DNS message from a client.
pub fn read_request(packet: &[u8]) -> Request {
    let message = match Message::from_vec(packet) {
        Ok(message) => message,
        Err(_) => {
            // A readable id still gets FORMERR, as resolvers expect.
            return match packet {
                [a, b, ..] => Request::Immediate(Message::error_msg(
                    u16::from_be_bytes([*a, *b]),
                    OpCode::Query,
                    ResponseCode::FormErr,
                )),
                _ => Request::Ignore,
            };
        }
    };
    if message.metadata.message_type != MessageType::Query {
        return Request::Ignore;
    }
    let refuse = |code| Request::Immediate(reply(&message, code));
    if message.metadata.op_code != OpCode::Query {
        return refuse(ResponseCode::NotImp);
    }
    let [query] = message.queries.as_slice() else {
        return refuse(ResponseCode::FormErr);
    };
    if query.query_class() != DNSClass::IN {
        return refuse(ResponseCode::NotImp);
    }
    let name = query.name().to_ascii();
    let name = name.trim_end_matches('.').to_owned();
    let question = match query.query_type() {
        RecordType::A => DnsQuestion::A(name),
        RecordType::AAAA => DnsQuestion::Aaaa(name),
        RecordType::PTR => match query.name().parse_arpa_name() {
            Ok(net) if net.prefix_len() == net.max_prefix_len() => DnsQuestion::Ptr(net.addr()),
            // A partial reverse zone names no single address.
            _ => return refuse(ResponseCode::NXDomain),
        },
        _ => return refuse(ResponseCode::NotImp),
    };
    Request::Lookup(message, question)
}

/// A response to `request` with its question and `code`.
fn reply(request: &Message, code: ResponseCode) -> Message {
    let mut message = Message::error_msg(request.metadata.id, request.metadata.op_code, code);
    message.metadata.recursion_desired = request.metadata.recursion_desired;
    message.metadata.recursion_available = true;
    message.add_queries(request.queries.iter().cloned());
    if let Some(edns) = &request.edns {
        let mut ours = hickory_proto::op::Edns::new();
        ours.set_max_payload(edns.max_payload().max(512));
        message.set_edns(ours);
    }
    message
}

/// The response to `request` from the tunnel's `result`.
///
/// A failed lookup is `NXDOMAIN` when the far side said the name does not
/// resolve (the wire cannot tell that from a resolver failure there), and
/// `SERVFAIL` when the tunnel itself could not ask (down, timed out).
pub fn answer(
    request: &Message,
    result: Result<Vec<DnsRecord>, ConnectError>,
    ttl: u32,
) -> Message {
    let records = match result {
        Ok(records) => records,
        Err(e) if e.kind == ConnectErrorKind::Unreachable => {
            return reply(request, ResponseCode::NXDomain);
        }
        Err(_) => return reply(request, ResponseCode::ServFail),
    };
    let mut message = reply(request, ResponseCode::NoError);
    let Some(query) = request.queries.first() else {
        return message;
    };
    let name = query.name().clone();
    for record in records {
        let rdata = match (query.query_type(), record) {
            (RecordType::A, DnsRecord::Addr(IpAddr::V4(v4))) => RData::A(A(v4)),
            (RecordType::AAAA, DnsRecord::Addr(IpAddr::V6(v6))) => RData::AAAA(AAAA(v6)),
            (RecordType::PTR, DnsRecord::Name(target)) => match Name::from_ascii(&target) {
                Ok(mut target) => {
                    target.set_fqdn(true);
                    RData::PTR(PTR(target))
                }
                Err(_) => continue,
            },
            // A record of another type than asked is not an answer.
            _ => continue,
        };
        message.add_answer(Record::from_rdata(name.clone(), ttl, rdata));
    }
    message
}

/// `message` encoded within `limit` bytes: truncated (TC set, answers
/// dropped) when it does not fit.
pub fn encode_within(message: &Message, limit: usize) -> Option<Vec<u8>> {
    let bytes = message.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    message.truncate().to_vec().ok()
}

/// The running server's shared parts.
#[derive(Clone)]
pub(crate) struct DnsServer {
    pub current: CurrentSession,
    pub table: StreamTable,
    pub events: broadcast::Sender<EngineEvent>,
    pub limits: DnsLimits,
    pub in_flight: Arc<Semaphore>,
}

impl DnsServer {
    /// Serves UDP and TCP on `udp`/`tcp` (bound to the same address) until
    /// `cancel`.
    pub async fn run(self, udp: UdpSocket, tcp: TcpListener, cancel: CancellationToken) {
        let udp = Arc::new(udp);
        let connections = Arc::new(Semaphore::new(self.limits.max_tcp_connections));
        let mut buf = vec![0u8; 4096];
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                got = udp.recv_from(&mut buf) => {
                    let Ok((n, peer)) = got else { continue };
                    let Some(permit) = self.in_flight.clone().try_acquire_owned().ok() else {
                        debug!(%peer, "dns: too many queries in flight, one dropped");
                        continue;
                    };
                    let (this, udp, packet) = (self.clone(), udp.clone(), buf[..n].to_vec());
                    tokio::spawn(async move {
                        let _permit = permit;
                        if let Some(bytes) = this.respond(&packet, peer, true).await {
                            let _ = udp.send_to(&bytes, peer).await;
                        }
                    });
                }
                accepted = tcp.accept() => {
                    let Ok((stream, peer)) = accepted else { continue };
                    let Ok(permit) = connections.clone().try_acquire_owned() else {
                        debug!(%peer, "dns: too many TCP connections, one refused");
                        continue;
                    };
                    let this = self.clone();
                    let cancel = cancel.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        tokio::select! {
                            _ = cancel.cancelled() => {}
                            _ = this.serve_tcp(stream, peer) => {}
                        }
                    });
                }
            }
        }
    }

    /// Length-prefixed queries (RFC 1035 §4.2.2), answered in order.
    async fn serve_tcp(&self, mut stream: TcpStream, peer: SocketAddr) {
        loop {
            let len = match tokio::time::timeout(self.limits.tcp_idle, stream.read_u16()).await {
                Ok(Ok(len)) => usize::from(len),
                _ => return,
            };
            let mut packet = vec![0u8; len];
            if stream.read_exact(&mut packet).await.is_err() {
                return;
            }
            let Ok(_permit) = self.in_flight.acquire().await else {
                return;
            };
            let Some(bytes) = self.respond(&packet, peer, false).await else {
                continue;
            };
            let Ok(len) = u16::try_from(bytes.len()) else {
                return;
            };
            if stream.write_u16(len).await.is_err() || stream.write_all(&bytes).await.is_err() {
                return;
            }
        }
    }

    /// The encoded response to one request, if it deserves one.
    async fn respond(&self, packet: &[u8], peer: SocketAddr, udp: bool) -> Option<Vec<u8>> {
        let message = match read_request(packet) {
            Request::Ignore => return None,
            Request::Immediate(message) => message,
            Request::Lookup(request, question) => {
                let result = self.lookup(&question, peer).await;
                answer(&request, result, self.limits.ttl)
            }
        };
        let limit = if udp {
            usize::from(message.max_payload())
        } else {
            usize::from(u16::MAX)
        };
        encode_within(&message, limit)
    }

    /// Asks the current session's resolver, with a row in the live table.
    async fn lookup(
        &self,
        question: &DnsQuestion,
        peer: SocketAddr,
    ) -> Result<Vec<DnsRecord>, ConnectError> {
        let target = match question {
            DnsQuestion::A(name) => format!("{name} A"),
            DnsQuestion::Aaaa(name) => format!("{name} AAAA"),
            DnsQuestion::Ptr(addr) => format!("{addr} PTR"),
        };
        let (key, _) = self.table.insert(target, peer.to_string(), "dns");
        let asked = async {
            let mut current = self.current.clone();
            let session = current
                .wait_for(|s| s.is_some())
                .await
                .map_err(|_| {
                    ConnectError::new(ConnectErrorKind::Unavailable, "the tunnel is stopped")
                })?
                .clone()
                .expect("waited for Some");
            let resolver = session.resolver().ok_or_else(|| {
                ConnectError::new(
                    ConnectErrorKind::Unsupported,
                    "the active tunnel cannot resolve names",
                )
            })?;
            resolver.lookup(question.clone()).await
        };
        let result = match tokio::time::timeout(self.limits.answer_timeout, asked).await {
            Ok(result) => result,
            Err(_) => Err(ConnectError::new(
                ConnectErrorKind::TimedOut,
                format!("no answer in {:?}", self.limits.answer_timeout),
            )),
        };
        if let Some(info) = self.table.opened(key, "dns", 0) {
            let _ = self.events.send(EngineEvent::StreamOpened(info));
        }
        let reason = match &result {
            Ok(records) => format!("{} record(s)", records.len()),
            Err(e) => e.to_string(),
        };
        if let Some(info) = self.table.close(key, reason) {
            let _ = self.events.send(EngineEvent::StreamClosed(info));
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Query};

    fn request(name: &str, kind: RecordType) -> Message {
        let mut m = Message::query();
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
        m
    }

    fn read(m: &Message) -> Request {
        read_request(&m.to_vec().unwrap())
    }

    #[test]
    fn a_aaaa_and_ptr_become_questions() {
        let Request::Lookup(_, q) = read(&request("example.com.", RecordType::A)) else {
            panic!("A not a lookup")
        };
        assert_eq!(q, DnsQuestion::A("example.com".into()));
        let Request::Lookup(_, q) = read(&request("example.com", RecordType::AAAA)) else {
            panic!("AAAA not a lookup")
        };
        assert_eq!(q, DnsQuestion::Aaaa("example.com".into()));
        let Request::Lookup(_, q) = read(&request("4.3.2.1.in-addr.arpa.", RecordType::PTR)) else {
            panic!("PTR not a lookup")
        };
        assert_eq!(q, DnsQuestion::Ptr("1.2.3.4".parse().unwrap()));
    }

    #[test]
    fn other_types_get_notimp_and_garbage_formerr() {
        let Request::Immediate(m) = read(&request("example.com.", RecordType::MX)) else {
            panic!("MX answered through the tunnel")
        };
        assert_eq!(m.metadata.response_code, ResponseCode::NotImp);
        assert_eq!(m.queries.len(), 1);
        let Request::Immediate(m) = read_request(&[0x12, 0x34, 0xff]) else {
            panic!("garbage not refused")
        };
        assert_eq!(m.metadata.id, 0x1234);
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        assert_eq!(read_request(&[1]), Request::Ignore);
    }

    #[test]
    fn a_partial_reverse_zone_is_nxdomain() {
        let Request::Immediate(m) = read(&request("3.2.1.in-addr.arpa.", RecordType::PTR)) else {
            panic!("partial zone looked up")
        };
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    }

    #[test]
    fn answers_keep_the_records_of_the_type_asked() {
        let req = request("example.com.", RecordType::A);
        let records = vec![
            DnsRecord::Addr("10.0.0.1".parse().unwrap()),
            DnsRecord::Addr("::1".parse().unwrap()),
            DnsRecord::Addr("10.0.0.2".parse().unwrap()),
        ];
        let m = answer(&req, Ok(records), 60);
        assert_eq!(m.metadata.id, req.metadata.id);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        let got: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
        assert_eq!(got, ["10.0.0.1", "10.0.0.2"]);
        assert!(m.answers.iter().all(|r| r.ttl == 60));

        let req = request("4.3.2.1.in-addr.arpa.", RecordType::PTR);
        let m = answer(&req, Ok(vec![DnsRecord::Name("host.example".into())]), 60);
        assert_eq!(m.answers[0].data.to_string(), "host.example.");
    }

    #[test]
    fn failures_map_to_nxdomain_or_servfail() {
        let req = request("nope.example.", RecordType::A);
        let nx = answer(
            &req,
            Err(ConnectError::new(ConnectErrorKind::Unreachable, "x")),
            60,
        );
        assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
        let down = answer(
            &req,
            Err(ConnectError::new(ConnectErrorKind::Unavailable, "x")),
            60,
        );
        assert_eq!(down.metadata.response_code, ResponseCode::ServFail);
        let empty = answer(&req, Ok(vec![]), 60);
        assert_eq!(empty.metadata.response_code, ResponseCode::NoError);
        assert!(empty.answers.is_empty());
    }

    #[test]
    fn big_udp_answers_are_truncated_unless_edns_allows_them() {
        // Sixteen long PTR names (what `n … PTR` may return at most) do
        // not fit 512 bytes even with name compression.
        let mut req = request("4.3.2.1.in-addr.arpa.", RecordType::PTR);
        let records: Vec<DnsRecord> = (0..16)
            .map(|i| DnsRecord::Name(format!("host-{i:02}-{}.example", "x".repeat(40))))
            .collect();
        let m = answer(&req, Ok(records.clone()), 60);
        let full = m.to_vec().unwrap();
        assert!(full.len() > 512, "16 PTR records are {} bytes", full.len());
        let cut =
            Message::from_vec(&encode_within(&m, usize::from(m.max_payload())).unwrap()).unwrap();
        assert!(cut.metadata.truncation);
        assert!(cut.answers.is_empty());

        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        req.set_edns(edns);
        let m = answer(&req, Ok(records), 60);
        let whole =
            Message::from_vec(&encode_within(&m, usize::from(m.max_payload())).unwrap()).unwrap();
        assert!(!whole.metadata.truncation);
        assert_eq!(whole.answers.len(), 16);
    }
}
