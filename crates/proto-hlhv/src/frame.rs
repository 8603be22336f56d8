//! HLHV frames as plain types: a kind byte, then a JSON object, raw bytes
//! (request and response bodies) or nothing (the two end markers).
//!
//! What the Go implementation really sends, and we therefore accept
//! (`CONTRACTS.md` §4): `null` for empty maps, missing fields, fields we do
//! not know (an old queen's `Form`), a JSON `{}` or nothing at all for the end
//! markers. What we send is what the Go side parses: camelCase keys, maps as
//! objects (never `null`), no payload after the end markers.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Deserializer, Serialize};

use crate::fsock::put_frame;

/// Header, query and cookie maps: a name to its values, in name order (the
/// order Go writes them in).
pub type Multimap = BTreeMap<String, Vec<String>>;

/// The kind byte of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// Cell → queen, first frame of every connection: who I am.
    IAm = 0x00,
    /// Queen → cell: the login is accepted.
    Accept = 0x08,
    /// Cell → queen on the leash: route a host and path to me.
    Mount = 0x10,
    /// Cell → queen on the leash: stop routing to me.
    Unmount = 0x11,
    /// Queen → cell on the leash: open more bands.
    NeedBand = 0x20,
    /// Queen → cell on a band: a request's head.
    ReqHead = 0x30,
    /// Queen → cell: a piece of the request body.
    ReqBody = 0x31,
    /// Queen → cell: the request body is complete.
    ReqEnd = 0x32,
    /// Cell → queen: send me the request body, up to a size.
    ResWant = 0x38,
    /// Cell → queen: the response's status and headers.
    ResHead = 0x39,
    /// Cell → queen: a piece of the response body.
    ResBody = 0x3A,
    /// Cell → queen: the response is complete.
    ResEnd = 0x3B,
}

impl Kind {
    /// The kind for a byte, if it is one.
    pub fn from_byte(byte: u8) -> Option<Kind> {
        Some(match byte {
            0x00 => Kind::IAm,
            0x08 => Kind::Accept,
            0x10 => Kind::Mount,
            0x11 => Kind::Unmount,
            0x20 => Kind::NeedBand,
            0x30 => Kind::ReqHead,
            0x31 => Kind::ReqBody,
            0x32 => Kind::ReqEnd,
            0x38 => Kind::ResWant,
            0x39 => Kind::ResHead,
            0x3A => Kind::ResBody,
            0x3B => Kind::ResEnd,
            _ => return None,
        })
    }
}

/// What an [`IAm`] says the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnKind {
    /// The leash (0): the cell's control connection.
    Cell,
    /// A band (1): a connection carrying requests.
    Band,
}

impl ConnKind {
    /// The number on the wire.
    pub fn code(self) -> i64 {
        match self {
            ConnKind::Cell => 0,
            ConnKind::Band => 1,
        }
    }
}

/// The first frame of every connection, cell → queen. On the leash `uuid` is
/// empty and `key` is the cell key; on a band they are what [`Accept`] gave.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IAm {
    /// The raw connection kind: a queen must close a connection whose kind is
    /// neither 0 nor 1 (see [`IAm::kind`]).
    pub conn_kind: i64,
    /// The cell's id (bands only).
    pub uuid: String,
    /// The cell key (leash) or the session key (band). Never logged.
    pub key: String,
}

impl IAm {
    /// The connection kind, if it is a known one.
    pub fn kind(&self) -> Option<ConnKind> {
        match self.conn_kind {
            0 => Some(ConnKind::Cell),
            1 => Some(ConnKind::Band),
            _ => None,
        }
    }
}

/// Queen → cell: the login is accepted. On the leash it carries the cell's id
/// and the session key its bands log in with; on a band, the id and `""`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Accept {
    /// The cell's id.
    pub uuid: String,
    /// The session key for bands (empty on a band's accept). Never logged.
    pub key: String,
}

/// Cell → queen: route `host` + `path` to this cell; a `path` ending in `/`
/// takes everything below it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Mount {
    /// The public host name.
    pub host: String,
    /// The path, `/`-terminated for a prefix.
    pub path: String,
}

/// Queen → cell: open `count` more bands now; a request is waiting for one.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NeedBand {
    /// How many.
    pub count: i64,
}

/// Queen → cell: the head of a public request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReqHead {
    /// The client's address as seen behind any proxy (the Go queen: empty).
    pub remote_addr_real: String,
    /// The client's `ip:port`.
    pub remote_addr: String,
    /// The request method.
    pub method: String,
    /// The URL scheme (the Go queen: empty).
    pub scheme: String,
    /// The URL host (the Go queen: empty; the `host` header has it).
    pub host: String,
    /// The URL port (the Go queen: 0).
    pub port: i64,
    /// The path, with the mounted prefix replaced by `/`.
    pub path: String,
    /// The URL fragment.
    pub fragment: String,
    /// The query parameters, decoded.
    #[serde(deserialize_with = "nullable_multimap")]
    pub query: Multimap,
    /// `HTTP/1.1`, `HTTP/2.0`, …
    pub proto: String,
    /// The protocol's major version.
    pub proto_major: i64,
    /// The protocol's minor version.
    pub proto_minor: i64,
    /// The request headers, names in lower case, same-named headers merged.
    #[serde(deserialize_with = "nullable_multimap")]
    pub headers: Multimap,
    /// The cookies, by name.
    #[serde(deserialize_with = "nullable_multimap")]
    pub cookies: Multimap,
}

/// Cell → queen: send the request body, at most `max_size` bytes of it
/// (the Go queen cuts the body there without saying so).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResWant {
    /// The most body bytes the cell takes.
    pub max_size: i64,
}

/// Cell → queen: the response's status and headers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResHead {
    /// The status; the Go queen answers 502 to one below 200.
    pub status_code: i64,
    /// The response headers.
    #[serde(deserialize_with = "nullable_multimap")]
    pub headers: Multimap,
}

impl ResHead {
    /// Writes this head as a ResHead frame, length prefix included: what
    /// `Frame::ResHead(head).write` writes, without a copy of the head.
    pub fn write_frame(&self, out: &mut BytesMut) {
        put_json(out, Kind::ResHead as u8, self);
    }
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// See [`IAm`].
    IAm(IAm),
    /// See [`Accept`].
    Accept(Accept),
    /// See [`Mount`].
    Mount(Mount),
    /// Cell → queen: stop routing to me.
    Unmount,
    /// See [`NeedBand`].
    NeedBand(NeedBand),
    /// See [`ReqHead`].
    ReqHead(Box<ReqHead>),
    /// A piece of the request body.
    ReqBody(Bytes),
    /// The request body is complete.
    ReqEnd,
    /// See [`ResWant`].
    ResWant(ResWant),
    /// See [`ResHead`].
    ResHead(ResHead),
    /// A piece of the response body.
    ResBody(Bytes),
    /// The response is complete.
    ResEnd,
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix announces more than the cap.
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// A frame without even a kind byte.
    #[error("empty frame")]
    Empty,
    /// A kind byte the protocol does not define.
    #[error("unknown frame kind 0x{0:02x}")]
    UnknownKind(u8),
    /// A JSON payload that does not parse as its kind's object.
    #[error("bad {kind:?} frame: {reason}")]
    Json {
        /// The frame's kind.
        kind: Kind,
        /// serde_json's description.
        reason: String,
    },
}

impl Frame {
    /// The frame's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Frame::IAm(_) => Kind::IAm,
            Frame::Accept(_) => Kind::Accept,
            Frame::Mount(_) => Kind::Mount,
            Frame::Unmount => Kind::Unmount,
            Frame::NeedBand(_) => Kind::NeedBand,
            Frame::ReqHead(_) => Kind::ReqHead,
            Frame::ReqBody(_) => Kind::ReqBody,
            Frame::ReqEnd => Kind::ReqEnd,
            Frame::ResWant(_) => Kind::ResWant,
            Frame::ResHead(_) => Kind::ResHead,
            Frame::ResBody(_) => Kind::ResBody,
            Frame::ResEnd => Kind::ResEnd,
        }
    }

    /// Parses a frame body (kind byte and payload, without the length).
    /// Body frames keep the payload without copying it.
    pub fn parse(mut body: Bytes) -> Result<Frame, FrameError> {
        let Some(&byte) = body.first() else {
            return Err(FrameError::Empty);
        };
        let kind = Kind::from_byte(byte).ok_or(FrameError::UnknownKind(byte))?;
        let payload = body.split_off(1);
        Ok(match kind {
            Kind::ReqBody => Frame::ReqBody(payload),
            Kind::ResBody => Frame::ResBody(payload),
            // The Go side sends nothing after these kind bytes; `{}` or
            // anything else there carries no meaning either.
            Kind::ReqEnd => Frame::ReqEnd,
            Kind::ResEnd => Frame::ResEnd,
            Kind::Unmount => Frame::Unmount,
            Kind::IAm => Frame::IAm(json(kind, &payload)?),
            Kind::Accept => Frame::Accept(json(kind, &payload)?),
            Kind::Mount => Frame::Mount(json(kind, &payload)?),
            Kind::NeedBand => Frame::NeedBand(json(kind, &payload)?),
            Kind::ReqHead => Frame::ReqHead(Box::new(json(kind, &payload)?)),
            Kind::ResWant => Frame::ResWant(json(kind, &payload)?),
            Kind::ResHead => Frame::ResHead(json(kind, &payload)?),
        })
    }

    /// Appends the frame to `out`, length prefix included.
    pub fn write(&self, out: &mut BytesMut) {
        let kind = self.kind() as u8;
        match self {
            Frame::ReqBody(data) | Frame::ResBody(data) => put_frame(out, kind, data),
            Frame::ReqEnd | Frame::ResEnd => put_frame(out, kind, &[]),
            // Go's encoding/json writes an empty struct as `{}`.
            Frame::Unmount => put_frame(out, kind, b"{}"),
            Frame::IAm(v) => put_json(out, kind, v),
            Frame::Accept(v) => put_json(out, kind, v),
            Frame::Mount(v) => put_json(out, kind, v),
            Frame::NeedBand(v) => put_json(out, kind, v),
            Frame::ReqHead(v) => put_json(out, kind, v),
            Frame::ResWant(v) => put_json(out, kind, v),
            Frame::ResHead(v) => put_json(out, kind, v),
        }
    }

    /// The frame as bytes, length prefix included.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.write(&mut out);
        out.freeze()
    }
}

pub(crate) fn json<'a, T: Deserialize<'a>>(kind: Kind, payload: &'a [u8]) -> Result<T, FrameError> {
    serde_json::from_slice(payload).map_err(|e| FrameError::Json {
        kind,
        reason: e.to_string(),
    })
}

/// Writes the length prefix after the JSON, so the JSON is encoded once,
/// straight into `out`.
pub(crate) fn put_json<T: Serialize>(out: &mut BytesMut, kind: u8, value: &T) {
    put_frame_with(out, kind, |w| {
        serde_json::to_writer(w, value).map_err(std::io::Error::other)
    });
}

/// Appends one frame of `kind` whose payload `write` writes straight into
/// `out`; the length prefix is filled in after it.
pub(crate) fn put_frame_with(
    out: &mut BytesMut,
    kind: u8,
    write: impl FnOnce(&mut bytes::buf::Writer<&mut BytesMut>) -> std::io::Result<()>,
) {
    let start = out.len();
    out.put_u32(0);
    out.put_u8(kind);
    let mut writer = out.writer();
    // Writing into memory cannot fail, and frame types always serialize.
    write(&mut writer).expect("frames are written into memory");
    let out = writer.into_inner();
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// Go writes a nil map as `null` and a nil value list as `null` too. Read
/// straight into the map (every request and response head has one or
/// three), a repeated name keeping its last list as a map would.
fn nullable_multimap<'de, D: Deserializer<'de>>(d: D) -> Result<Multimap, D::Error> {
    struct Nullable;

    impl<'de> serde::de::Visitor<'de> for Nullable {
        type Value = Multimap;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map of string lists, or null")
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Multimap, E> {
            Ok(Multimap::new())
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Multimap, E> {
            Ok(Multimap::new())
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Multimap, D::Error> {
            d.deserialize_map(self)
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Multimap, A::Error> {
            let mut out = Multimap::new();
            while let Some((name, values)) = map.next_entry::<String, Option<Vec<String>>>()? {
                out.insert(name, values.unwrap_or_default());
            }
            Ok(out)
        }
    }

    d.deserialize_option(Nullable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(kind: u8, payload: &[u8]) -> Result<Frame, FrameError> {
        let mut body = vec![kind];
        body.extend_from_slice(payload);
        Frame::parse(Bytes::from(body))
    }

    #[test]
    fn a_go_queen_request_head_parses() {
        // As the Go queen writes it: empty scheme and host, port 0, HTTP/2.0,
        // merged lower-case headers, a nil query map.
        let head = br#"{"remoteAddrReal":"","remoteAddr":"203.0.113.7:51000","method":"POST","scheme":"","host":"","port":0,"path":"/api/items","fragment":"","query":null,"proto":"HTTP/2.0","protoMajor":2,"protoMinor":0,"headers":{"accept":["a","b"],"content-length":["5"]},"cookies":{"sid":["x"]},"Form":null}"#;
        let Frame::ReqHead(head) = parse(0x30, head).unwrap() else {
            panic!("not a head")
        };
        assert_eq!(head.method, "POST");
        assert_eq!(head.proto, "HTTP/2.0");
        assert_eq!(head.port, 0);
        assert!(head.query.is_empty());
        assert_eq!(head.headers["accept"], vec!["a", "b"]);
        assert_eq!(head.cookies["sid"], vec!["x"]);
    }

    #[test]
    fn missing_fields_and_null_values_default() {
        let Frame::ResHead(head) =
            parse(0x39, br#"{"statusCode":204,"headers":{"x":null}}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(head.status_code, 204);
        assert_eq!(head.headers["x"], Vec::<String>::new());
        assert_eq!(parse(0x00, b"{}").unwrap(), Frame::IAm(IAm::default()));
        // A null map is empty; a repeated name keeps its last list.
        let Frame::ResHead(head) = parse(
            0x39,
            br#"{"statusCode":200,"headers":{"a":["1"],"b":["2"],"a":["3","4"]}}"#,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(head.headers.len(), 2);
        assert_eq!(head.headers["a"], vec!["3", "4"]);
        let Frame::ResHead(head) = parse(0x39, br#"{"statusCode":200,"headers":null}"#).unwrap()
        else {
            panic!()
        };
        assert!(head.headers.is_empty());
        assert!(parse(0x39, br#"{"statusCode":200,"headers":5}"#).is_err());
        assert!(parse(0x39, br#"{"statusCode":200,"headers":{"a":"1"}}"#).is_err());
    }

    #[test]
    fn end_markers_carry_nothing_and_accept_anything() {
        assert_eq!(Frame::ResEnd.to_bytes().as_ref(), &[0, 0, 0, 1, 0x3B]);
        assert_eq!(Frame::ReqEnd.to_bytes().as_ref(), &[0, 0, 0, 1, 0x32]);
        assert_eq!(parse(0x3B, b"{}").unwrap(), Frame::ResEnd);
        assert_eq!(Frame::Unmount.to_bytes().as_ref(), b"\0\0\0\x03\x11{}");
    }

    #[test]
    fn we_write_what_go_reads() {
        let iam = Frame::IAm(IAm {
            conn_kind: ConnKind::Band.code(),
            uuid: "u".into(),
            key: "k".into(),
        });
        assert_eq!(
            &iam.to_bytes()[4..],
            b"\x00{\"connKind\":1,\"uuid\":\"u\",\"key\":\"k\"}"
        );
        let want = Frame::ResWant(ResWant { max_size: 10 });
        assert_eq!(&want.to_bytes()[4..], b"\x38{\"maxSize\":10}");
        // Maps are objects, never null.
        let head = Frame::ResHead(ResHead {
            status_code: 200,
            headers: Multimap::new(),
        });
        assert_eq!(
            &head.to_bytes()[4..],
            b"\x39{\"statusCode\":200,\"headers\":{}}"
        );
    }

    #[test]
    fn a_head_written_alone_is_the_frame() {
        let head = ResHead {
            status_code: 200,
            headers: [("a".to_owned(), vec!["1".to_owned()])]
                .into_iter()
                .collect(),
        };
        let mut out = BytesMut::new();
        head.write_frame(&mut out);
        assert_eq!(out.freeze(), Frame::ResHead(head).to_bytes());
    }

    #[test]
    fn bad_frames_say_what_is_wrong() {
        assert_eq!(parse(0x7F, b""), Err(FrameError::UnknownKind(0x7F)));
        let err = parse(0x10, b"{\"host\":5}").unwrap_err();
        assert!(
            matches!(
                err,
                FrameError::Json {
                    kind: Kind::Mount,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().starts_with("bad Mount frame"));
    }

    #[test]
    fn every_frame_round_trips() {
        let head = ReqHead {
            method: "GET".into(),
            path: "/".into(),
            proto: "HTTP/1.1".into(),
            proto_major: 1,
            proto_minor: 1,
            headers: [("host".to_owned(), vec!["demo.example".to_owned()])].into(),
            ..ReqHead::default()
        };
        let frames = [
            Frame::IAm(IAm::default()),
            Frame::Accept(Accept {
                uuid: "u".into(),
                key: "k".into(),
            }),
            Frame::Mount(Mount::default()),
            Frame::Unmount,
            Frame::NeedBand(NeedBand { count: 1 }),
            Frame::ReqHead(Box::new(head)),
            Frame::ReqBody(Bytes::from_static(b"\0\xff")),
            Frame::ReqEnd,
            Frame::ResWant(ResWant { max_size: 1 }),
            Frame::ResHead(ResHead::default()),
            Frame::ResBody(Bytes::new()),
            Frame::ResEnd,
        ];
        for frame in frames {
            let bytes = frame.to_bytes();
            assert_eq!(Frame::parse(bytes.slice(4..)).unwrap(), frame);
        }
    }
}
