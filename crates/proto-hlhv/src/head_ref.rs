//! Request and response heads whose text is borrowed, not copied: the
//! queen writes each public request's head straight from the request's own
//! header map and reads each response head straight into its HTTP answer.
//! Written or read, they are byte for byte (and error for error) the owned
//! [`ReqHead`] and [`ResHead`] of [`crate::frame`]; the tests hold them to
//! it. Why by hand (issue 14, the HLHV bench row): the owned heads, a
//! string and a list per header, were ~8 % of the queen's CPU per request.

use std::borrow::Cow;
use std::collections::BTreeMap;

use bytes::BytesMut;
use serde::{Deserialize, Deserializer, Serialize};

use crate::frame::{FrameError, Kind, Multimap, ReqHead, ResHead, json, put_json};

/// A [`Multimap`] whose text is borrowed where it can be.
pub type CowMultimap<'a> = BTreeMap<Cow<'a, str>, Vec<Cow<'a, str>>>;

/// The owned copy of a borrowed multimap.
fn owned(map: &CowMultimap<'_>) -> Multimap {
    map.iter()
        .map(|(n, vs)| {
            (
                n.clone().into_owned(),
                vs.iter().map(|v| v.clone().into_owned()).collect(),
            )
        })
        .collect()
}

/// A [`ReqHead`] to write, its text borrowed where it can be (the queen
/// builds one per public request from the request's own header map, and
/// writes it straight into the band's buffer). Written, it is byte for
/// byte the [`ReqHead`] with the same content.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReqHeadRef<'a> {
    /// See [`ReqHead::remote_addr_real`].
    pub remote_addr_real: Cow<'a, str>,
    /// See [`ReqHead::remote_addr`].
    pub remote_addr: Cow<'a, str>,
    /// See [`ReqHead::method`].
    pub method: Cow<'a, str>,
    /// See [`ReqHead::scheme`].
    pub scheme: Cow<'a, str>,
    /// See [`ReqHead::host`].
    pub host: Cow<'a, str>,
    /// See [`ReqHead::port`].
    pub port: i64,
    /// See [`ReqHead::path`].
    pub path: Cow<'a, str>,
    /// See [`ReqHead::fragment`].
    pub fragment: Cow<'a, str>,
    /// See [`ReqHead::query`].
    pub query: Multimap,
    /// See [`ReqHead::proto`].
    pub proto: Cow<'a, str>,
    /// See [`ReqHead::proto_major`].
    pub proto_major: i64,
    /// See [`ReqHead::proto_minor`].
    pub proto_minor: i64,
    /// See [`ReqHead::headers`].
    pub headers: CowMultimap<'a>,
    /// See [`ReqHead::cookies`].
    pub cookies: Multimap,
}

impl ReqHeadRef<'_> {
    /// Writes this head as a ReqHead frame, length prefix included.
    pub fn write_frame(&self, out: &mut BytesMut) {
        put_json(out, Kind::ReqHead as u8, self);
    }

    /// The owned head.
    pub fn to_owned_head(&self) -> ReqHead {
        ReqHead {
            remote_addr_real: self.remote_addr_real.clone().into_owned(),
            remote_addr: self.remote_addr.clone().into_owned(),
            method: self.method.clone().into_owned(),
            scheme: self.scheme.clone().into_owned(),
            host: self.host.clone().into_owned(),
            port: self.port,
            path: self.path.clone().into_owned(),
            fragment: self.fragment.clone().into_owned(),
            query: self.query.clone(),
            proto: self.proto.clone().into_owned(),
            proto_major: self.proto_major,
            proto_minor: self.proto_minor,
            headers: owned(&self.headers),
            cookies: self.cookies.clone(),
        }
    }
}

/// A [`ResHead`] read without copying its text: names and values borrow
/// the frame's bytes (copied only when the JSON escapes something). The
/// queen reads every response head this way and turns it into its HTTP
/// response's headers at once (the HLHV bench row, issue 14: reading the
/// owned head, a string and a list for every header, was ~8 % of the
/// queen's CPU per request).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResHeadRef<'a> {
    /// The status.
    pub status_code: i64,
    /// The response headers, as [`ResHead::headers`] holds them.
    pub headers: CowMultimap<'a>,
}

impl<'a> ResHeadRef<'a> {
    /// Reads a ResHead frame's payload (after the kind byte) as
    /// [`Frame::parse`] reads it into a [`ResHead`]: the same fields,
    /// defaults, `null`s and errors.
    pub fn parse(payload: &'a [u8]) -> Result<ResHeadRef<'a>, FrameError> {
        json(Kind::ResHead, payload)
    }

    /// The owned head.
    pub fn to_owned_head(&self) -> ResHead {
        ResHead {
            status_code: self.status_code,
            headers: owned(&self.headers),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for ResHeadRef<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// `ResHead`'s derived reading, with borrowed text: a map (or a
        /// sequence, as derived structs take it) of the two fields, others
        /// ignored, a field given twice an error.
        struct Fields<'a>(std::marker::PhantomData<&'a ()>);

        #[derive(Deserialize)]
        #[serde(field_identifier, rename_all = "camelCase")]
        enum Field {
            StatusCode,
            Headers,
            #[serde(other)]
            Other,
        }

        struct Headers<'a>(CowMultimap<'a>);

        impl<'de: 'a, 'a> Deserialize<'de> for Headers<'a> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                borrowed_multimap(d).map(Headers)
            }
        }

        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Fields<'a> {
            type Value = ResHeadRef<'a>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("struct ResHead")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ResHeadRef<'a>, A::Error> {
                let status_code = seq.next_element()?.unwrap_or_default();
                let headers = seq
                    .next_element::<Headers<'a>>()?
                    .map(|h| h.0)
                    .unwrap_or_default();
                Ok(ResHeadRef {
                    status_code,
                    headers,
                })
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ResHeadRef<'a>, A::Error> {
                let mut status_code = None;
                let mut headers = None;
                while let Some(field) = map.next_key::<Field>()? {
                    match field {
                        Field::StatusCode if status_code.is_some() => {
                            return Err(serde::de::Error::duplicate_field("statusCode"));
                        }
                        Field::StatusCode => status_code = Some(map.next_value()?),
                        Field::Headers if headers.is_some() => {
                            return Err(serde::de::Error::duplicate_field("headers"));
                        }
                        Field::Headers => headers = Some(map.next_value::<Headers<'a>>()?.0),
                        Field::Other => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(ResHeadRef {
                    status_code: status_code.unwrap_or_default(),
                    headers: headers.unwrap_or_default(),
                })
            }
        }

        d.deserialize_struct(
            "ResHead",
            &["statusCode", "headers"],
            Fields(std::marker::PhantomData),
        )
    }
}

/// Text borrowed from the frame when it has no escapes.
struct CowStr<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for CowStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text<'a>(std::marker::PhantomData<&'a ()>);

        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Text<'a> {
            type Value = CowStr<'a>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<CowStr<'a>, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<CowStr<'a>, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<CowStr<'a>, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }

        d.deserialize_string(Text(std::marker::PhantomData))
    }
}

/// [`nullable_multimap`] with borrowed text.
fn borrowed_multimap<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<CowMultimap<'a>, D::Error> {
    type Map<'a> = CowMultimap<'a>;

    struct Nullable<'a>(std::marker::PhantomData<&'a ()>);

    struct List<'a>(Vec<Cow<'a, str>>);

    impl<'de: 'a, 'a> Deserialize<'de> for List<'a> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Items<'a>(std::marker::PhantomData<&'a ()>);

            impl<'de: 'a, 'a> serde::de::Visitor<'de> for Items<'a> {
                type Value = List<'a>;

                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a sequence")
                }

                fn visit_seq<A: serde::de::SeqAccess<'de>>(
                    self,
                    mut seq: A,
                ) -> Result<List<'a>, A::Error> {
                    let mut out = Vec::new();
                    while let Some(CowStr(v)) = seq.next_element()? {
                        out.push(v);
                    }
                    Ok(List(out))
                }
            }

            d.deserialize_seq(Items(std::marker::PhantomData))
        }
    }

    impl<'de: 'a, 'a> serde::de::Visitor<'de> for Nullable<'a> {
        type Value = Map<'a>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map of string lists, or null")
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Map<'a>, E> {
            Ok(Map::new())
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Map<'a>, E> {
            Ok(Map::new())
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Map<'a>, D::Error> {
            d.deserialize_map(self)
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Map<'a>, A::Error> {
            let mut out = Map::new();
            while let Some((CowStr(name), values)) =
                map.next_entry::<CowStr<'a>, Option<List<'a>>>()?
            {
                out.insert(name, values.map(|l| l.0).unwrap_or_default());
            }
            Ok(out)
        }
    }

    d.deserialize_option(Nullable(std::marker::PhantomData))
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::frame::Frame;

    fn parse(kind: u8, payload: &[u8]) -> Result<Frame, FrameError> {
        let mut body = BytesMut::new();
        body.extend_from_slice(&[kind]);
        body.extend_from_slice(payload);
        Frame::parse(body.freeze())
    }

    /// `ResHeadRef::parse` reads what `Frame::parse` reads, and fails
    /// where it fails.
    fn same_head(payload: &[u8]) {
        let owned = match parse(0x39, payload) {
            Ok(Frame::ResHead(head)) => Ok(head),
            Ok(other) => panic!("not a head: {other:?}"),
            Err(e) => Err(e),
        };
        let borrowed = ResHeadRef::parse(payload).map(|h| h.to_owned_head());
        assert_eq!(
            borrowed,
            owned,
            "payload {:?}",
            String::from_utf8_lossy(payload)
        );
    }

    #[test]
    fn a_borrowed_head_reads_like_the_owned_one() {
        for payload in [
            &br#"{"statusCode":200,"headers":{"a":["1"],"b":null,"a":["3","4"]}}"#[..],
            br#"{"statusCode":204,"headers":null,"Form":{"x":[1]}}"#,
            br#"{"headers":{"x-\u00e9\n":["v\"q\\\\","\u0000"]}}"#,
            br#"{}"#,
            br#"[201,{"a":["b"]}]"#,
            br#"[]"#,
            br#"{"statusCode":200,"statusCode":201}"#,
            br#"{"headers":{},"headers":{}}"#,
            br#"{"statusCode":"200"}"#,
            br#"{"statusCode":200,"headers":5}"#,
            br#"{"statusCode":200,"headers":{"a":"1"}}"#,
            br#"{"statusCode":200,"headers":{"a":[null]}}"#,
            br#"{"statusCode":200,"headers":{"a":[1]}}"#,
            br#"{"statusCode":1e3}"#,
            br#"{"statusCode":200"#,
            br#"{"statusCode":200} x"#,
            b"",
            b"null",
        ] {
            same_head(payload);
        }
    }

    proptest::proptest! {
        #[test]
        fn any_head_reads_the_same_borrowed(
            status in proptest::num::i64::ANY,
            headers in proptest::collection::btree_map(
                "\\PC{0,8}", proptest::collection::vec("\\PC{0,8}", 0..3), 0..6),
            cut in 0usize..200,
        ) {
            let head = Frame::ResHead(ResHead { status_code: status, headers });
            let bytes = head.to_bytes();
            same_head(&bytes[5..]);
            // Cut short: both fail alike.
            same_head(&bytes[5..(5 + cut).min(bytes.len())]);
        }
    }

    proptest::proptest! {
        #[test]
        fn a_borrowed_request_head_writes_the_owned_one(
            text in proptest::collection::vec("\\PC{0,8}", 9),
            numbers in proptest::collection::vec(proptest::num::i64::ANY, 3),
            maps in proptest::collection::vec(proptest::collection::btree_map(
                "\\PC{0,8}", proptest::collection::vec("\\PC{0,8}", 0..3), 0..4), 3),
        ) {
            let head = ReqHead {
                remote_addr_real: text[0].clone(),
                remote_addr: text[1].clone(),
                method: text[2].clone(),
                scheme: text[3].clone(),
                host: text[4].clone(),
                port: numbers[0],
                path: text[5].clone(),
                fragment: text[6].clone(),
                query: maps[0].clone(),
                proto: text[7].clone(),
                proto_major: numbers[1],
                proto_minor: numbers[2],
                headers: maps[1].clone(),
                cookies: maps[2].clone(),
            };
            let borrowed = ReqHeadRef {
                remote_addr_real: Cow::Borrowed(&head.remote_addr_real),
                remote_addr: Cow::Borrowed(&head.remote_addr),
                method: Cow::Borrowed(&head.method),
                scheme: Cow::Borrowed(&head.scheme),
                host: Cow::Borrowed(&head.host),
                port: head.port,
                path: Cow::Borrowed(&head.path),
                fragment: Cow::Borrowed(&head.fragment),
                query: head.query.clone(),
                proto: Cow::Borrowed(&head.proto),
                proto_major: head.proto_major,
                proto_minor: head.proto_minor,
                headers: head
                    .headers
                    .iter()
                    .map(|(n, vs)| (Cow::Borrowed(n.as_str()), vs.iter().map(|v| Cow::Borrowed(v.as_str())).collect()))
                    .collect(),
                cookies: head.cookies.clone(),
            };
            proptest::prop_assert_eq!(&borrowed.to_owned_head(), &head);
            let mut out = BytesMut::new();
            borrowed.write_frame(&mut out);
            proptest::prop_assert_eq!(out.freeze(), Frame::ReqHead(Box::new(head)).to_bytes());
        }
    }
}
