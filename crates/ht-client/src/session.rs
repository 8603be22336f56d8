//! One HT session as the engine sees it: streams, UDP associations, DNS,
//! its connections and its end.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use engine::transport::{
    BoxFuture, DatagramSession, DnsQuestion, DnsRecord, OpenedStream, Resolver, SlotStats,
    TunnelSession,
};
use local_proxy::{BoxDatagrams, ConnectError, ConnectErrorKind};
use net::TargetAddr;
use proto_ht::client::EndReason;
use proto_ht::{DnsType, Proto};

use crate::datagram::{Association, host_port};
use crate::shared::Shared;
use crate::stream::HtStream;

/// A live HT session (one PHPSESSID, `N` transport connections).
pub struct HtSession {
    pub(crate) shared: Arc<Shared>,
}

impl TunnelSession for HtSession {
    fn session_id(&self) -> String {
        self.shared.session.as_str().to_owned()
    }

    fn max_streams(&self) -> u32 {
        self.shared.config.machine.max_streams
    }

    fn open(
        &self,
        target: TargetAddr,
        slot_wait: Duration,
    ) -> BoxFuture<'_, Result<OpenedStream, ConnectError>> {
        Box::pin(async move {
            let (host, port) = host_port(&target);
            let (key, id) = self
                .shared
                .open_stream(&host, Proto::Tcp, port, None, slot_wait)
                .await?;
            Ok(OpenedStream {
                stream: Box::new(HtStream::new(self.shared.clone(), key)),
                stream_id: id,
            })
        })
    }

    fn closed(&self) -> BoxFuture<'_, String> {
        Box::pin(async move {
            let mut state = self.shared.state.subscribe();
            match state.wait_for(|s| s.ended.is_some()).await {
                Ok(s) => s.ended.as_ref().map(|(_, m)| m.clone()).unwrap_or_default(),
                Err(_) => "the HT session ended".to_owned(),
            }
        })
    }

    fn close(&self) {
        self.shared
            .end(EndReason::Local("the HT session was closed".into()));
    }

    /// Every transport connection carries the probe query `q{q} 0` (close
    /// stream `0`, which never exists: no effect at the server, no DNS, an
    /// answer straight from its machine) and must answer within `deadline`.
    /// A silent one is closed and replaced, its batches resuming on the
    /// others; when none answers, the session ends with a reason that says
    /// so (see `proto_ht::client::Client::check`).
    fn probe(&self, deadline: Duration) -> bool {
        self.shared.check(deadline)
    }

    fn datagrams(&self) -> Option<&dyn DatagramSession> {
        Some(self)
    }

    fn resolver(&self) -> Option<&dyn Resolver> {
        Some(self)
    }

    fn slot_stats(&self) -> SlotStats {
        SlotStats {
            connections: u32::try_from(self.shared.state.borrow().live).unwrap_or(u32::MAX),
            ..SlotStats::default()
        }
    }
}

impl Drop for HtSession {
    fn drop(&mut self) {
        // The connection tasks hold the shared state too: without this they
        // would keep the session up after the engine let go of it.
        self.shared
            .end(EndReason::Local("the HT session was dropped".into()));
    }
}

impl DatagramSession for HtSession {
    fn associate(&self) -> BoxFuture<'_, Result<BoxDatagrams, ConnectError>> {
        Box::pin(async move {
            if let Some(reason) = self.shared.ended() {
                return Err(ConnectError::new(ConnectErrorKind::Unavailable, reason));
            }
            Ok(Box::new(Association::new(self.shared.clone())) as BoxDatagrams)
        })
    }
}

impl Resolver for HtSession {
    fn lookup(&self, question: DnsQuestion) -> BoxFuture<'_, Result<Vec<DnsRecord>, ConnectError>> {
        Box::pin(async move {
            let (host, kind) = match &question {
                DnsQuestion::A(name) => (name.clone(), DnsType::A),
                DnsQuestion::Aaaa(name) => (name.clone(), DnsType::Aaaa),
                DnsQuestion::Ptr(ip) => (ip.to_string(), DnsType::Ptr),
            };
            let answer = self.shared.lookup(&host, kind)?;
            let timeout = self.shared.config.lookup_timeout;
            match tokio::time::timeout(timeout, answer).await {
                Ok(Ok(Some(records))) => records_of(kind, records),
                Ok(Ok(None)) => Err(ConnectError::new(
                    ConnectErrorKind::Unreachable,
                    format!("{host} does not resolve at the HT server"),
                )),
                Ok(Err(_)) => Err(ConnectError::new(
                    ConnectErrorKind::Unavailable,
                    self.shared
                        .ended()
                        .unwrap_or_else(|| "the HT session ended".into()),
                )),
                Err(_) => Err(ConnectError::new(
                    ConnectErrorKind::TimedOut,
                    format!("no DNS answer from the HT server within {timeout:?}"),
                )),
            }
        })
    }
}

/// The records of an `n` answer: addresses for A/AAAA (of the asked
/// family), names without their trailing dot for PTR.
pub(crate) fn records_of(
    kind: DnsType,
    records: Vec<String>,
) -> Result<Vec<DnsRecord>, ConnectError> {
    records
        .into_iter()
        .map(|r| match kind {
            DnsType::Ptr => Ok(DnsRecord::Name(r.trim_end_matches('.').to_owned())),
            DnsType::A | DnsType::Aaaa => match r.parse::<IpAddr>() {
                Ok(ip) if ip.is_ipv4() == (kind == DnsType::A) => Ok(DnsRecord::Addr(ip)),
                _ => Err(ConnectError::new(
                    ConnectErrorKind::Other,
                    format!("the HT server answered {r:?}, not an address of the asked family"),
                )),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_answers_become_records_of_their_kind() {
        let a = records_of(DnsType::A, vec!["192.0.2.1".into(), "192.0.2.2".into()]).unwrap();
        assert_eq!(
            a,
            [
                DnsRecord::Addr("192.0.2.1".parse().unwrap()),
                DnsRecord::Addr("192.0.2.2".parse().unwrap())
            ]
        );
        assert!(records_of(DnsType::A, vec!["2001:db8::1".into()]).is_err());
        assert!(records_of(DnsType::Aaaa, vec!["nonsense".into()]).is_err());
        assert_eq!(
            records_of(DnsType::Ptr, vec!["host.example.".into()]).unwrap(),
            [DnsRecord::Name("host.example".into())]
        );
        assert_eq!(records_of(DnsType::Aaaa, Vec::new()).unwrap(), []);
    }
}
