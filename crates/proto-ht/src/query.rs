//! The plaintext of one chunk: a verb byte, the query id, then fields
//! separated by one space (CONTRACTS.md §2).
//!
//! Client → server ([`Query`]):
//!
//! ```text
//! c{q} {host} {tcp|udp} {port}     connect          → .{q} {streamid} | !{q}
//! q{q} {streamid}                  disconnect       → .{q}
//! n{q} {host} {A|AAAA|PTR}         resolve          → .{q} {r1} {r2} … | !{q}
//! u{q} {streamid}                  upload batch     → .{q} {p}
//! U{q} {payload}                   upload a packet  → .{q} {p+1}
//! d{q} {streamid} {p} [{w}]        download batch   → .{q} {payload_p} …
//! .{q} {k}                         "every packet below k arrived"
//! !{q}                             end the batch
//! ```
//!
//! Server → client ([`Answer`]): `.{q}` with an optional body after one
//! space, or `!{q}`. What the body means depends on the query it answers,
//! which only the client knows, so it stays bytes here (with helpers for the
//! textual ones).
//!
//! Payloads are raw bytes after the first space: the chunk's length frames
//! them, so they need no escaping. Everything else is ASCII and checked
//! exactly; a chunk that breaks a rule is a [`DecodeError`], never a panic.

use std::fmt::Write as _;

/// Largest payload of one `U` query or download answer.
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// Longest query id.
pub const MAX_QUERY_ID: usize = 16;
/// Longest stream id.
pub const MAX_STREAM_ID: usize = 32;
/// Longest host name or address.
pub const MAX_HOST: usize = 255;
/// Most records in one DNS answer.
pub const MAX_DNS_ANSWERS: usize = 16;

/// The transport a `c` query connects with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// A TCP stream.
    Tcp,
    /// A UDP flow: each upload payload is one datagram, each download
    /// payload one datagram back.
    Udp,
}

/// The record type an `n` query asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsType {
    /// IPv4 addresses.
    A,
    /// IPv6 addresses.
    Aaaa,
    /// The name of an IP address.
    Ptr,
}

impl DnsType {
    fn as_str(self) -> &'static str {
        match self {
            DnsType::A => "A",
            DnsType::Aaaa => "AAAA",
            DnsType::Ptr => "PTR",
        }
    }
}

/// One chunk from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query<'a> {
    /// `c`: open a stream to `host:port`.
    Connect {
        /// The query id.
        q: &'a str,
        /// A name (resolved by the server) or an IP literal (IPv6 without
        /// brackets).
        host: &'a str,
        /// TCP or UDP.
        proto: Proto,
        /// The target port (1–65535).
        port: u16,
    },
    /// `q`: close a stream.
    Disconnect {
        /// The query id.
        q: &'a str,
        /// The stream.
        stream: &'a str,
    },
    /// `n`: resolve a name (or, for PTR, an address) at the server.
    Dns {
        /// The query id.
        q: &'a str,
        /// What to resolve.
        host: &'a str,
        /// The record type.
        kind: DnsType,
    },
    /// `u`: start an upload batch on a stream.
    Upload {
        /// The query id.
        q: &'a str,
        /// The stream.
        stream: &'a str,
    },
    /// `U`: one upload packet of the batch `q`.
    UploadData {
        /// The batch's query id.
        q: &'a str,
        /// The bytes (at most [`MAX_PAYLOAD`]; for UDP, one datagram).
        payload: &'a [u8],
    },
    /// `d`: start a download batch on a stream from packet `packet`.
    Download {
        /// The query id.
        q: &'a str,
        /// The stream.
        stream: &'a str,
        /// The first packet wanted.
        packet: u64,
        /// Packets the server may send ahead (our extension); `None` is
        /// the seed's stop-and-wait, the same as 1.
        window: Option<u64>,
    },
    /// `.`: every packet of batch `q` below `next` arrived.
    Ack {
        /// The batch's query id.
        q: &'a str,
        /// The first packet not yet received.
        next: u64,
    },
    /// `!`: the client ends batch `q`.
    End {
        /// The batch's query id.
        q: &'a str,
    },
}

/// One chunk from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<'a> {
    /// `.{q}`, with what follows the first space (`None` when nothing does).
    Ok {
        /// The query answered.
        q: &'a str,
        /// The answer's body: a stream id, a packet id, DNS records or a
        /// payload, depending on the query.
        body: Option<&'a [u8]>,
    },
    /// `!{q}`: the query failed, or (for a download) the target closed.
    Fail {
        /// The query answered.
        q: &'a str,
    },
}

/// Why a chunk is not a well-formed query or answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A chunk with no byte at all.
    #[error("an empty chunk")]
    Empty,
    /// The first byte is no verb of the protocol.
    #[error("unknown verb {0:#04x}")]
    UnknownVerb(u8),
    /// The query id is not 1–16 of `[A-Za-z0-9]`.
    #[error("the query id is not 1 to 16 letters and digits")]
    BadQueryId,
    /// A field is missing.
    #[error("missing field: {0}")]
    Missing(&'static str),
    /// More fields than the verb takes.
    #[error("extra fields after {0}")]
    Extra(&'static str),
    /// A field breaks its rule.
    #[error("bad {field}: {why}")]
    Bad {
        /// The field.
        field: &'static str,
        /// The rule it breaks.
        why: &'static str,
    },
    /// A payload over [`MAX_PAYLOAD`].
    #[error("a payload of {0} bytes (at most {MAX_PAYLOAD})")]
    PayloadTooLarge(usize),
}

fn is_alnum_id(s: &[u8], max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.iter().all(u8::is_ascii_alphanumeric)
}

fn as_str(s: &[u8]) -> &str {
    // Only called on bytes checked to be ASCII.
    std::str::from_utf8(s).expect("checked ASCII")
}

/// The verb and query id of a chunk, and the rest after one space (`None`
/// when the chunk ends after the id).
fn head(chunk: &[u8]) -> Result<(u8, &str, Option<&[u8]>), DecodeError> {
    let (&verb, rest) = chunk.split_first().ok_or(DecodeError::Empty)?;
    let id_end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    let q = &rest[..id_end];
    if !is_alnum_id(q, MAX_QUERY_ID) {
        return Err(DecodeError::BadQueryId);
    }
    let tail = (id_end < rest.len()).then(|| &rest[id_end + 1..]);
    Ok((verb, as_str(q), tail))
}

/// The query id of a chunk whose verb and id are readable, even when the
/// rest is not: what a server answers `!{q}` to.
pub fn query_id(chunk: &[u8]) -> Option<&str> {
    head(chunk).ok().map(|(_, q, _)| q)
}

/// Text fields after the query id, each checked ASCII without controls.
struct Fields<'a> {
    parts: std::slice::Split<'a, u8, fn(&u8) -> bool>,
}

impl<'a> Fields<'a> {
    fn new(tail: Option<&'a [u8]>) -> Fields<'a> {
        fn space(b: &u8) -> bool {
            *b == b' '
        }
        // No tail: no fields (`split` would yield one empty part). A tail
        // that is empty — the chunk ends in a space after the id — is one
        // empty field, which every verb refuses: `!66 ` is not `!66`.
        let mut parts = tail.unwrap_or(&[]).split(space as fn(&u8) -> bool);
        if tail.is_none() {
            parts.next();
        }
        Fields { parts }
    }

    fn next(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        match self.parts.next() {
            Some(part) if !part.is_empty() => Ok(part),
            Some(_) => Err(DecodeError::Bad {
                field,
                why: "empty (two spaces in a row?)",
            }),
            None => Err(DecodeError::Missing(field)),
        }
    }

    fn optional(&mut self, field: &'static str) -> Result<Option<&'a [u8]>, DecodeError> {
        match self.parts.next() {
            None => Ok(None),
            Some([]) => Err(DecodeError::Bad {
                field,
                why: "empty (two spaces in a row?)",
            }),
            Some(part) => Ok(Some(part)),
        }
    }

    fn end(mut self, after: &'static str) -> Result<(), DecodeError> {
        match self.parts.next() {
            None => Ok(()),
            Some(_) => Err(DecodeError::Extra(after)),
        }
    }
}

fn stream_id(s: &[u8]) -> Result<&str, DecodeError> {
    if is_alnum_id(s, MAX_STREAM_ID) {
        Ok(as_str(s))
    } else {
        Err(DecodeError::Bad {
            field: "stream id",
            why: "not 1 to 32 letters and digits",
        })
    }
}

/// A packet id or window: lowercase hex, no leading zero (but `0` itself).
fn hex(s: &[u8], field: &'static str) -> Result<u64, DecodeError> {
    let bad = |why| DecodeError::Bad { field, why };
    if !s
        .iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    {
        return Err(bad("not lowercase hexadecimal"));
    }
    if s.len() > 1 && s[0] == b'0' {
        return Err(bad("a leading zero"));
    }
    u64::from_str_radix(as_str(s), 16).map_err(|_| bad("too large"))
}

fn host(s: &[u8]) -> Result<&str, DecodeError> {
    if s.len() <= MAX_HOST && s.iter().all(|b| b.is_ascii_graphic()) {
        Ok(as_str(s))
    } else {
        Err(DecodeError::Bad {
            field: "host",
            why: "not 1 to 255 printable characters",
        })
    }
}

impl<'a> Query<'a> {
    /// Reads one decrypted chunk from the client.
    pub fn decode(chunk: &'a [u8]) -> Result<Query<'a>, DecodeError> {
        let (verb, q, tail) = head(chunk)?;
        if verb == b'U' {
            let payload = tail.ok_or(DecodeError::Missing("payload"))?;
            if payload.len() > MAX_PAYLOAD {
                return Err(DecodeError::PayloadTooLarge(payload.len()));
            }
            return Ok(Query::UploadData { q, payload });
        }
        let mut f = Fields::new(tail);
        let query = match verb {
            b'c' => {
                let host = host(f.next("host")?)?;
                let proto = match f.next("protocol")? {
                    b"tcp" => Proto::Tcp,
                    b"udp" => Proto::Udp,
                    _ => {
                        return Err(DecodeError::Bad {
                            field: "protocol",
                            why: "neither tcp nor udp",
                        });
                    }
                };
                let port = f.next("port")?;
                // Digits only and no leading zero, so that a query reads
                // back as written (found by fuzzing: `043` read as 43).
                let port = (port.iter().all(u8::is_ascii_digit) && port.first() != Some(&b'0'))
                    .then(|| as_str(port).parse::<u16>().ok())
                    .flatten()
                    .filter(|&p| p != 0)
                    .ok_or(DecodeError::Bad {
                        field: "port",
                        why: "not a decimal number from 1 to 65535 without leading zeros",
                    })?;
                f.end("port")?;
                Query::Connect {
                    q,
                    host,
                    proto,
                    port,
                }
            }
            b'q' | b'u' => {
                let stream = stream_id(f.next("stream id")?)?;
                f.end("stream id")?;
                if verb == b'q' {
                    Query::Disconnect { q, stream }
                } else {
                    Query::Upload { q, stream }
                }
            }
            b'n' => {
                let host = host(f.next("host")?)?;
                let kind = match f.next("record type")? {
                    b"A" => DnsType::A,
                    b"AAAA" => DnsType::Aaaa,
                    b"PTR" => DnsType::Ptr,
                    _ => {
                        return Err(DecodeError::Bad {
                            field: "record type",
                            why: "not A, AAAA or PTR",
                        });
                    }
                };
                f.end("record type")?;
                Query::Dns { q, host, kind }
            }
            b'd' => {
                let stream = stream_id(f.next("stream id")?)?;
                let packet = hex(f.next("packet id")?, "packet id")?;
                let window = match f.optional("window")? {
                    Some(w) => match hex(w, "window")? {
                        0 => {
                            return Err(DecodeError::Bad {
                                field: "window",
                                why: "zero",
                            });
                        }
                        w => Some(w),
                    },
                    None => None,
                };
                f.end("window")?;
                Query::Download {
                    q,
                    stream,
                    packet,
                    window,
                }
            }
            b'.' => {
                let next = hex(f.next("packet id")?, "packet id")?;
                f.end("packet id")?;
                Query::Ack { q, next }
            }
            b'!' => {
                f.end("query id")?;
                Query::End { q }
            }
            other => return Err(DecodeError::UnknownVerb(other)),
        };
        Ok(query)
    }

    /// Appends this query's plaintext chunk to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut text = String::new();
        let _ = match self {
            Query::Connect {
                q,
                host,
                proto,
                port,
            } => {
                let proto = match proto {
                    Proto::Tcp => "tcp",
                    Proto::Udp => "udp",
                };
                write!(text, "c{q} {host} {proto} {port}")
            }
            Query::Disconnect { q, stream } => write!(text, "q{q} {stream}"),
            Query::Dns { q, host, kind } => write!(text, "n{q} {host} {}", kind.as_str()),
            Query::Upload { q, stream } => write!(text, "u{q} {stream}"),
            Query::UploadData { q, payload } => {
                out.push(b'U');
                out.extend_from_slice(q.as_bytes());
                out.push(b' ');
                out.extend_from_slice(payload);
                return;
            }
            Query::Download {
                q,
                stream,
                packet,
                window,
            } => match window {
                Some(w) => write!(text, "d{q} {stream} {packet:x} {w:x}"),
                None => write!(text, "d{q} {stream} {packet:x}"),
            },
            Query::Ack { q, next } => write!(text, ".{q} {next:x}"),
            Query::End { q } => write!(text, "!{q}"),
        };
        out.extend_from_slice(text.as_bytes());
    }
}

impl<'a> Answer<'a> {
    /// Reads one decrypted chunk from the server.
    pub fn decode(chunk: &'a [u8]) -> Result<Answer<'a>, DecodeError> {
        let (verb, q, body) = head(chunk)?;
        match verb {
            b'.' => {
                if body.is_some_and(|b| b.len() > MAX_PAYLOAD) {
                    return Err(DecodeError::PayloadTooLarge(body.map_or(0, <[u8]>::len)));
                }
                Ok(Answer::Ok { q, body })
            }
            b'!' if body.is_none() => Ok(Answer::Fail { q }),
            b'!' => Err(DecodeError::Extra("query id")),
            other => Err(DecodeError::UnknownVerb(other)),
        }
    }

    /// Appends this answer's plaintext chunk to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Answer::Ok { q, body } => {
                out.push(b'.');
                out.extend_from_slice(q.as_bytes());
                if let Some(body) = body {
                    out.push(b' ');
                    out.extend_from_slice(body);
                }
            }
            Answer::Fail { q } => {
                out.push(b'!');
                out.extend_from_slice(q.as_bytes());
            }
        }
    }

    /// A textual body's fields (a stream id, a packet id, DNS records).
    pub fn fields(&self) -> Vec<&'a str> {
        match self {
            Answer::Ok { body: Some(b), .. } => std::str::from_utf8(b)
                .map(|t| t.split(' ').filter(|f| !f.is_empty()).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// A body that is one packet id (the answer to `u` and `U`).
    pub fn packet_id(&self) -> Result<u64, DecodeError> {
        match self {
            Answer::Ok { body: Some(b), .. } => hex(b, "packet id"),
            _ => Err(DecodeError::Missing("packet id")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(query: &Query<'_>) {
        let mut chunk = Vec::new();
        query.encode(&mut chunk);
        assert_eq!(&Query::decode(&chunk).unwrap(), query, "{chunk:?}");
    }

    #[test]
    fn every_query_reads_back_as_written() {
        round_trip(&Query::Connect {
            q: "a1",
            host: "example.com",
            proto: Proto::Tcp,
            port: 443,
        });
        round_trip(&Query::Connect {
            q: "Zz9",
            host: "2001:db8::1",
            proto: Proto::Udp,
            port: 53,
        });
        round_trip(&Query::Disconnect {
            q: "x",
            stream: "s7",
        });
        round_trip(&Query::Dns {
            q: "q",
            host: "1.2.3.4",
            kind: DnsType::Ptr,
        });
        round_trip(&Query::Upload {
            q: "u1",
            stream: "abc",
        });
        round_trip(&Query::UploadData {
            q: "u1",
            payload: b" binary \0 \xff with spaces ",
        });
        round_trip(&Query::Download {
            q: "d",
            stream: "abc",
            packet: 0,
            window: None,
        });
        round_trip(&Query::Download {
            q: "d",
            stream: "abc",
            packet: 0x1f,
            window: Some(64),
        });
        round_trip(&Query::Ack { q: "d", next: 0x10 });
        round_trip(&Query::End { q: "d" });
    }

    #[test]
    fn the_wire_spelling_is_the_contracts() {
        let mut out = Vec::new();
        Query::Download {
            q: "k2",
            stream: "S1",
            packet: 255,
            window: Some(16),
        }
        .encode(&mut out);
        assert_eq!(out, b"dk2 S1 ff 10");
        out.clear();
        Answer::Ok {
            q: "k2",
            body: Some(b"payload"),
        }
        .encode(&mut out);
        assert_eq!(out, b".k2 payload");
        out.clear();
        Answer::Fail { q: "k2" }.encode(&mut out);
        assert_eq!(out, b"!k2");
    }

    #[test]
    fn broken_chunks_are_errors_with_their_reason() {
        let bad = |chunk: &[u8]| Query::decode(chunk).unwrap_err();
        assert_eq!(bad(b""), DecodeError::Empty);
        assert_eq!(bad(b"xq1"), DecodeError::UnknownVerb(b'x'));
        assert_eq!(bad(b"c"), DecodeError::BadQueryId);
        assert_eq!(bad(b"cq-1 a tcp 1"), DecodeError::BadQueryId);
        assert_eq!(bad(&[b'c'; 18]), DecodeError::BadQueryId);
        assert_eq!(bad(b"cq1 a tcp"), DecodeError::Missing("port"));
        assert!(matches!(
            bad(b"cq1 a tcp 0"),
            DecodeError::Bad { field: "port", .. }
        ));
        assert!(matches!(
            bad(b"cq1 a tcp 65536"),
            DecodeError::Bad { field: "port", .. }
        ));
        assert!(matches!(
            bad(b"cq1 a sctp 1"),
            DecodeError::Bad {
                field: "protocol",
                ..
            }
        ));
        assert_eq!(bad(b"cq1 a tcp 1 more"), DecodeError::Extra("port"));
        assert!(matches!(
            bad(b"cq1  tcp 1"),
            DecodeError::Bad { field: "host", .. }
        ));
        assert!(matches!(
            bad(b"dq1 s 01"),
            DecodeError::Bad {
                field: "packet id",
                ..
            }
        ));
        assert!(matches!(
            bad(b"dq1 s FF"),
            DecodeError::Bad {
                field: "packet id",
                ..
            }
        ));
        assert!(matches!(
            bad(b"dq1 s 1 0"),
            DecodeError::Bad {
                field: "window",
                ..
            }
        ));
        assert!(matches!(
            bad(b"dq1 s 1ffffffffffffffff"),
            DecodeError::Bad {
                field: "packet id",
                ..
            }
        ));
        assert!(matches!(
            bad(b"qq1 s-1"),
            DecodeError::Bad {
                field: "stream id",
                ..
            }
        ));
        assert!(matches!(
            bad(b"nq1 a MX"),
            DecodeError::Bad {
                field: "record type",
                ..
            }
        ));
        assert_eq!(bad(b"Uq1"), DecodeError::Missing("payload"));
        let mut big = b"Uq1 ".to_vec();
        big.resize(4 + MAX_PAYLOAD + 1, 0);
        assert_eq!(bad(&big), DecodeError::PayloadTooLarge(MAX_PAYLOAD + 1));
        assert_eq!(bad(b"!q1 x"), DecodeError::Extra("query id"));
        // A trailing space is an empty field, not nothing (found by fuzzing:
        // `!66 ` read as `!66` did not encode back to itself).
        assert_eq!(bad(b"!66 "), DecodeError::Extra("query id"));
        assert!(matches!(
            bad(b"c1 example.com tcp 043"),
            DecodeError::Bad { field: "port", .. }
        ));
        assert!(matches!(
            bad(b"qq1 "),
            DecodeError::Bad { .. } | DecodeError::Missing(_)
        ));
        assert!(matches!(
            bad(b".q1 "),
            DecodeError::Bad { .. } | DecodeError::Missing(_)
        ));
        // The id of a chunk whose rest is broken, for the `!{q}` answer.
        assert_eq!(query_id(b"cq1 a tcp 0"), Some("q1"));
        assert_eq!(query_id(b"c"), None);
    }

    #[test]
    fn answers_keep_their_body_as_bytes() {
        let a = Answer::decode(b".q1 s9").unwrap();
        assert_eq!(a.fields(), ["s9"]);
        let dns = Answer::decode(b".q2 1.2.3.4 5.6.7.8").unwrap();
        assert_eq!(dns.fields(), ["1.2.3.4", "5.6.7.8"]);
        assert_eq!(Answer::decode(b".q3 1f").unwrap().packet_id(), Ok(0x1f));
        assert_eq!(
            Answer::decode(b".q4").unwrap(),
            Answer::Ok {
                q: "q4",
                body: None
            }
        );
        assert_eq!(Answer::decode(b"!q5").unwrap(), Answer::Fail { q: "q5" });
        assert!(Answer::decode(b"cq5 x").is_err());
    }

    fn alnum(max: usize) -> impl Strategy<Value = String> {
        proptest::string::string_regex(&format!("[A-Za-z0-9]{{1,{max}}}")).unwrap()
    }

    proptest! {
        /// Any bytes: an error or a query, never a panic; and what decodes
        /// encodes back to the same chunk.
        #[test]
        fn arbitrary_chunks_never_panic(chunk in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(query) = Query::decode(&chunk) {
                let mut again = Vec::new();
                query.encode(&mut again);
                prop_assert_eq!(&again, &chunk);
            }
            if let Ok(answer) = Answer::decode(&chunk) {
                let mut again = Vec::new();
                answer.encode(&mut again);
                prop_assert_eq!(&again, &chunk);
            }
        }

        #[test]
        fn downloads_and_acks_round_trip(
            q in alnum(MAX_QUERY_ID),
            stream in alnum(MAX_STREAM_ID),
            packet in any::<u64>(),
            window in proptest::option::of(1u64..),
        ) {
            round_trip(&Query::Download { q: &q, stream: &stream, packet, window });
            round_trip(&Query::Ack { q: &q, next: packet });
        }
    }
}
