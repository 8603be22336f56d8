//! `n` queries: A, AAAA and PTR through the server's resolver (hickory,
//! `/etc/hosts` first), so the client's DNS never leaves the tunnel.
//!
//! "No such name" and resolver errors are `!{q}`; a name with no record of
//! the type is an empty answer (`.{q}` alone). An IP literal asked for A or
//! AAAA answers itself (or nothing, for the other family), as a stub
//! resolver would.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_resolver::proto::rr::RData;
use proto_ht::DnsType;
use proto_ht::server::{DnsFailure, LookupId};
use tracing::debug;

use crate::core::Core;
use crate::metrics;

fn type_label(kind: DnsType) -> &'static str {
    match kind {
        DnsType::A => "A",
        DnsType::Aaaa => "AAAA",
        DnsType::Ptr => "PTR",
    }
}

pub async fn run(core: Arc<Core>, lookup: LookupId, host: String, kind: DnsType) {
    let result = tokio::time::timeout(core.dial.timeout, resolve(&core, &host, kind))
        .await
        .unwrap_or(Err(DnsFailure::Failed));
    let label = if result.is_ok() { "ok" } else { "fail" };
    metrics::counter_dns(type_label(kind), label);
    core.with(|m| m.handle_dns(lookup, result));
}

async fn resolve(core: &Core, host: &str, kind: DnsType) -> Result<Vec<String>, DnsFailure> {
    let literal = host.parse::<IpAddr>().ok();
    match (kind, literal) {
        (DnsType::A, Some(ip)) => {
            return Ok(ip.is_ipv4().then(|| ip.to_string()).into_iter().collect());
        }
        (DnsType::Aaaa, Some(ip)) => {
            return Ok(ip.is_ipv6().then(|| ip.to_string()).into_iter().collect());
        }
        // PTR takes an IP literal.
        (DnsType::Ptr, None) => return Err(DnsFailure::Failed),
        _ => {}
    }
    let Some(resolver) = core.dial.dialer.resolver() else {
        return fallback(host, kind).await;
    };
    let lookup = match (kind, literal) {
        (DnsType::A, _) => resolver.ipv4_lookup(host).await,
        (DnsType::Aaaa, _) => resolver.ipv6_lookup(host).await,
        (DnsType::Ptr, Some(ip)) => resolver.reverse_lookup(ip).await,
        (DnsType::Ptr, None) => return Err(DnsFailure::Failed),
    };
    match lookup {
        Ok(lookup) => Ok(lookup
            .answers()
            .iter()
            .filter_map(|record| match (&record.data, kind) {
                (RData::A(a), DnsType::A) => Some(a.0.to_string()),
                (RData::AAAA(a), DnsType::Aaaa) => Some(a.0.to_string()),
                (RData::PTR(name), DnsType::Ptr) => {
                    Some(name.0.to_utf8().trim_end_matches('.').to_owned())
                }
                _ => None,
            })
            .collect()),
        Err(e) if e.is_no_records_found() && !e.is_nx_domain() => Ok(Vec::new()),
        Err(e) => {
            debug!(%host, error = %e, "DNS lookup failed");
            Err(DnsFailure::Failed)
        }
    }
}

/// Without a resolver configuration: the system's `getaddrinfo` for A and
/// AAAA; PTR cannot be asked.
async fn fallback(host: &str, kind: DnsType) -> Result<Vec<String>, DnsFailure> {
    let addrs = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|_| DnsFailure::Failed)?;
    let mut out: Vec<String> = Vec::new();
    for sa in addrs {
        let ip = sa.ip();
        let wanted = match kind {
            DnsType::A => ip.is_ipv4(),
            DnsType::Aaaa => ip.is_ipv6(),
            DnsType::Ptr => return Err(DnsFailure::Failed),
        };
        if wanted && !out.contains(&ip.to_string()) {
            out.push(ip.to_string());
        }
    }
    Ok(out)
}
