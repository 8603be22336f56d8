//! Field sections (RFC 9114 §4.2, §4.3): QPACK-encoded lists of names and
//! values carried in HEADERS frames, and the pseudo-header rules that make
//! one a request or a response.
//!
//! QPACK is the `qpack` crate's stateless half: we advertise a dynamic
//! table of capacity 0, so every section a well-behaved peer sends decodes
//! from the static table and literals alone; one that refers to a dynamic
//! table is `QPACK_DECOMPRESSION_FAILED`.

use bytes::{Bytes, BytesMut};
use qpack::HeaderField;

use crate::error::{Code, H3Error};

/// A decoded field section: names (lowercase, as HTTP/3 requires) and
/// values, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields(pub Vec<(Vec<u8>, Vec<u8>)>);

impl Fields {
    /// Decodes a HEADERS frame's payload, refusing sections whose size
    /// (RFC 9114 §4.2.2: names + values + 32 per line) exceeds `max_size`.
    pub fn decode(payload: &[u8], max_size: u64) -> Result<Fields, H3Error> {
        let mut buf = payload;
        let decoded = qpack::decode_stateless(&mut buf, max_size).map_err(|e| match e {
            qpack::DecoderError::HeaderTooLong(n) => H3Error::new(
                Code::ExcessiveLoad,
                format!("field section of {n} bytes over the limit of {max_size}"),
            ),
            e => H3Error::new(Code::QpackDecompressionFailed, e.to_string()),
        })?;
        Ok(Fields(
            decoded
                .fields
                .into_iter()
                .map(|f| {
                    let (n, v) = f.into_inner();
                    (n.into_owned(), v.into_owned())
                })
                .collect(),
        ))
    }

    /// The QPACK encoding, ready for a HEADERS frame.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        let fields = self
            .0
            .iter()
            .map(|(n, v)| HeaderField::new(n.clone(), v.clone()));
        // The stateless encoder fails only on a dynamic-table operation,
        // which it never makes.
        qpack::encode_stateless(&mut out, fields).expect("stateless QPACK encoding");
        out.freeze()
    }

    /// Appends a field.
    pub fn push(&mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.0
            .push((name.as_ref().to_vec(), value.as_ref().to_vec()));
    }

    /// The first value of `name` (lowercase).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(n, _)| n == name.as_bytes())
            .map(|(_, v)| v.as_slice())
    }

    /// The regular (non-pseudo) fields.
    pub fn regular(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.0
            .iter()
            .filter(|(n, _)| !n.starts_with(b":"))
            .map(|(n, v)| (n.as_slice(), v.as_slice()))
    }

    /// Checks the rules every HTTP/3 message obeys (RFC 9114 §4.2, §4.3):
    /// lowercase names, pseudo-headers only from `allowed`, each at most
    /// once and all before the regular fields, no connection-specific
    /// fields. A violation makes the message malformed (`H3_MESSAGE_ERROR`).
    pub fn check(&self, allowed: &[&str]) -> Result<(), H3Error> {
        let malformed = |why: String| Err(H3Error::new(Code::MessageError, why));
        let mut seen: Vec<&[u8]> = Vec::new();
        let mut regular = false;
        for (name, value) in &self.0 {
            if name.is_empty() || name.iter().any(|b| b.is_ascii_uppercase()) {
                return malformed(format!("field name {:?}", String::from_utf8_lossy(name)));
            }
            if name.starts_with(b":") {
                if regular {
                    return malformed("a pseudo-header after a regular field".into());
                }
                if !allowed.iter().any(|a| a.as_bytes() == name.as_slice()) {
                    return malformed(format!(
                        "pseudo-header {} not allowed here",
                        String::from_utf8_lossy(name)
                    ));
                }
                if seen.contains(&name.as_slice()) {
                    return malformed(format!(
                        "pseudo-header {} twice",
                        String::from_utf8_lossy(name)
                    ));
                }
                seen.push(name);
                continue;
            }
            regular = true;
            let connection_specific = [
                b"connection".as_slice(),
                b"keep-alive",
                b"proxy-connection",
                b"transfer-encoding",
                b"upgrade",
            ];
            if connection_specific.contains(&name.as_slice())
                || (name == b"te" && value != b"trailers")
            {
                return malformed(format!(
                    "connection-specific field {}",
                    String::from_utf8_lossy(name)
                ));
            }
        }
        Ok(())
    }
}

/// The pseudo-headers a request may carry (RFC 9114 §4.3.1, RFC 9220 §3).
pub const REQUEST_PSEUDO: [&str; 5] = [":method", ":scheme", ":authority", ":path", ":protocol"];

/// A request's head: its pseudo-headers and the whole section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub scheme: Option<String>,
    pub authority: Option<String>,
    /// Path and query, as sent.
    pub path: Option<String>,
    /// Extended CONNECT's `:protocol` (RFC 8441 §4).
    pub protocol: Option<String>,
    pub fields: Fields,
}

impl Request {
    /// Reads a request out of a checked field section.
    pub fn from_fields(fields: Fields) -> Result<Request, H3Error> {
        fields.check(&REQUEST_PSEUDO)?;
        let text = |name: &str| -> Result<Option<String>, H3Error> {
            fields
                .get(name)
                .map(|v| {
                    String::from_utf8(v.to_vec()).map_err(|_| {
                        H3Error::new(Code::MessageError, format!("{name} is not UTF-8"))
                    })
                })
                .transpose()
        };
        let Some(method) = text(":method")? else {
            return Err(H3Error::new(Code::MessageError, "no :method"));
        };
        Ok(Request {
            method,
            scheme: text(":scheme")?,
            authority: text(":authority")?,
            path: text(":path")?,
            protocol: text(":protocol")?,
            fields,
        })
    }

    /// An extended CONNECT for `protocol` (RFC 9220 §3: `:scheme https`),
    /// with `extra` regular fields after the pseudo-headers.
    pub fn extended_connect(
        authority: &str,
        path: &str,
        protocol: &str,
        extra: &[(&str, &[u8])],
    ) -> Request {
        let mut fields = Fields::default();
        fields.push(":method", "CONNECT");
        fields.push(":protocol", protocol);
        fields.push(":scheme", "https");
        fields.push(":authority", authority);
        fields.push(":path", path);
        for (n, v) in extra {
            fields.push(n, v);
        }
        Request {
            method: "CONNECT".into(),
            scheme: Some("https".into()),
            authority: Some(authority.into()),
            path: Some(path.into()),
            protocol: Some(protocol.into()),
            fields,
        }
    }
}

/// A response's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub fields: Fields,
}

impl Response {
    /// Reads a response out of a field section.
    pub fn from_fields(fields: Fields) -> Result<Response, H3Error> {
        fields.check(&[":status"])?;
        let status = fields
            .get(":status")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse::<u16>().ok())
            .filter(|s| (100..=999).contains(s))
            .ok_or_else(|| H3Error::new(Code::MessageError, "no valid :status"))?;
        Ok(Response { status, fields })
    }

    /// A response with `status` and `extra` regular fields.
    pub fn new(status: u16, extra: &[(&str, &[u8])]) -> Response {
        let mut fields = Fields::default();
        fields.push(":status", status.to_string());
        for (n, v) in extra {
            fields.push(n, v);
        }
        Response { status, fields }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_round_trips_through_qpack() {
        let req = Request::extended_connect(
            "example.com:443",
            "/ws?x=1",
            "websocket",
            &[("sec-websocket-version", b"13")],
        );
        let wire = req.fields.encode();
        let back = Request::from_fields(Fields::decode(&wire, 16_384).unwrap()).unwrap();
        assert_eq!(back, req);
        assert_eq!(back.fields.regular().count(), 1);
    }

    #[test]
    fn huffman_coded_literals_decode() {
        // RFC 7541 §C.4.1's Huffman-coded "www.example.com" as the value of
        // :authority (static index 0, literal with name reference, H bit).
        let mut wire = vec![0x00, 0x00, 0x50, 0x8c];
        wire.extend_from_slice(&[
            0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ]);
        let f = Fields::decode(&wire, 1000).unwrap();
        assert_eq!(f.get(":authority"), Some(b"www.example.com".as_slice()));
    }

    #[test]
    fn malformed_sections_are_message_errors() {
        let bad = [
            vec![(":method", "CONNECT"), ("Host", "x")],
            vec![(":method", "GET"), ("a", "b"), (":path", "/")],
            vec![(":method", "GET"), (":method", "GET")],
            vec![(":method", "GET"), (":status", "200")],
            vec![(":method", "GET"), ("connection", "upgrade")],
            vec![(":method", "GET"), ("te", "gzip")],
            vec![(":path", "/")],
        ];
        for pairs in bad {
            let mut f = Fields::default();
            for (n, v) in &pairs {
                f.push(n, v);
            }
            let err = Request::from_fields(f).unwrap_err();
            assert_eq!(err.code, Code::MessageError, "{pairs:?}");
        }
        let mut ok = Fields::default();
        ok.push(":method", "GET");
        ok.push("te", "trailers");
        assert!(Request::from_fields(ok).is_ok());
    }

    #[test]
    fn oversized_sections_and_dynamic_references_are_refused() {
        let req = Request::extended_connect("a", &"/x".repeat(100), "websocket", &[]);
        let wire = req.fields.encode();
        assert_eq!(
            Fields::decode(&wire, 100).unwrap_err().code,
            Code::ExcessiveLoad
        );
        // Required Insert Count 1: a reference to a dynamic table we never
        // allowed.
        assert_eq!(
            Fields::decode(&[0x02, 0x00, 0x80], 1000).unwrap_err().code,
            Code::QpackDecompressionFailed
        );
    }

    #[test]
    fn responses_need_a_status() {
        let r = Response::new(200, &[("sec-websocket-protocol", b"chat")]);
        let back = Response::from_fields(Fields::decode(&r.fields.encode(), 1000).unwrap());
        assert_eq!(back.unwrap(), r);
        let mut none = Fields::default();
        none.push("a", "b");
        assert_eq!(
            Response::from_fields(none).unwrap_err().code,
            Code::MessageError
        );
    }
}
