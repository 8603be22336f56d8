//! The extended CONNECT checks of a WebSocket-over-HTTP/3 server (RFC 9220
//! §3, RFC 8441 §4), in the order the public proxy makes them
//! (CONTRACTS.md §3), so that its clients meet the same answers from ours:
//! not CONNECT → 405; a path the server does not serve → 404; `:protocol`
//! other than `websocket`, or a `sec-websocket-version` other than 13 → 400
//! (a missing version is accepted). The capacity check (503) comes first
//! and is the driver's, since only it counts sessions.

use crate::fields::Request;

/// What to answer an extended CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it: `200`, then WebSocket frames in DATA.
    Accept {
        /// The request's path and query, as sent (`/ws?token=x`).
        path_and_query: String,
    },
    /// Refuse it with this status.
    Reject { status: u16, reason: &'static str },
}

/// The `:protocol` RFC 9220 registers for WebSockets.
pub const WEBSOCKET: &str = "websocket";

/// Checks `req`; `serves(path)` says whether the path (without its query)
/// is one the server serves.
pub fn check(req: &Request, serves: impl Fn(&str) -> bool) -> Verdict {
    let reject = |status, reason| Verdict::Reject { status, reason };
    if req.method != "CONNECT" {
        return reject(405, "method");
    }
    let path_and_query = req.path.clone().unwrap_or_default();
    let path = path_and_query.split('?').next().unwrap_or_default();
    if !serves(path) {
        return reject(404, "path");
    }
    if req.protocol.as_deref() != Some(WEBSOCKET) {
        return reject(400, "protocol");
    }
    if req
        .fields
        .get("sec-websocket-version")
        .is_some_and(|v| v != b"13")
    {
        return reject(400, "version");
    }
    // RFC 8441 §4: an extended CONNECT carries :scheme and :path (checked
    // above) and :authority.
    if req.scheme.is_none() || req.authority.is_none() || !path_and_query.starts_with('/') {
        return reject(400, "pseudo_headers");
    }
    Verdict::Accept { path_and_query }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::{Fields, Request};

    fn req(pairs: &[(&str, &str)]) -> Request {
        let mut f = Fields::default();
        for (n, v) in pairs {
            f.push(n, v);
        }
        Request::from_fields(f).unwrap()
    }

    fn status(v: Verdict) -> u16 {
        match v {
            Verdict::Accept { .. } => 200,
            Verdict::Reject { status, .. } => status,
        }
    }

    #[test]
    fn the_checks_come_in_the_contracts_order() {
        let ws = |p: &str| p == "/ws";
        let base = [
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", "https"),
            (":authority", "h"),
            (":path", "/ws?t=1"),
        ];
        let with = |i: usize, v: &'static str| {
            let mut p = base.to_vec();
            p[i].1 = v;
            p
        };
        assert_eq!(
            check(&req(&base), ws),
            Verdict::Accept {
                path_and_query: "/ws?t=1".into()
            }
        );
        // A GET to a wrong path: the method is checked first.
        let mut get = with(0, "GET");
        get[4].1 = "/nope";
        assert_eq!(status(check(&req(&get), ws)), 405);
        // A wrong path with a wrong protocol: the path first.
        let mut both = with(4, "/nope");
        both[1].1 = "webtransport";
        assert_eq!(status(check(&req(&both), ws)), 404);
        assert_eq!(status(check(&req(&with(1, "webtransport")), ws)), 400);
        let mut v12 = base.to_vec();
        v12.push(("sec-websocket-version", "12"));
        assert_eq!(status(check(&req(&v12), ws)), 400);
        let mut v13 = base.to_vec();
        v13.push(("sec-websocket-version", "13"));
        assert_eq!(status(check(&req(&v13), ws)), 200);
        // A classic CONNECT (no :protocol) is not a WebSocket.
        let classic = [
            (":method", "CONNECT"),
            (":authority", "h:1"),
            (":path", "/ws"),
        ];
        assert_eq!(status(check(&req(&classic), ws)), 400);
        let no_authority: Vec<_> = base
            .iter()
            .copied()
            .filter(|(n, _)| *n != ":authority")
            .collect();
        assert_eq!(status(check(&req(&no_authority), ws)), 400);
    }
}
