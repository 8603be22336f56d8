//! The HTTP/1.1 of one transport connection, written by hand.
//!
//! Why not hyper: an HT connection is one request whose chunked body and
//! chunked response stream at the same time, and the server sends its
//! response head only after the first request chunk. hyper's HTTP/1 client
//! hands back the response only as a whole future and ties the request
//! body's progress to it, which makes this full-duplex dance awkward and
//! adds a task and channel per connection; the framing itself is small (a
//! request head, `httparse` for the one response head, and the chunked
//! coding that `proto_ht::chunked` already provides sans-IO for both
//! sides), so it is done here, every limit checked.

use bytes::{Buf, BytesMut};
use proto_ht::chunked::{self, ChunkError, Decoded};

use crate::config::ServerUrl;

/// The request head of a transport connection (CONTRACTS.md §2).
pub fn request_head(url: &ServerUrl, session: &str) -> Vec<u8> {
    format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\n\
         Cookie: PHPSESSID={session}\r\nTransfer-Encoding: chunked\r\n\r\n",
        url.create_path(),
        url.host_header(),
    )
    .into_bytes()
}

/// Appends one chunk of the request body. `data` is never empty (an empty
/// chunk would end the body; every query has a verb and an id).
pub fn encode_chunk(out: &mut Vec<u8>, data: &[u8]) {
    debug_assert!(!data.is_empty());
    chunked::encode_chunk(data, out);
}

/// The end of the request body.
pub const LAST_CHUNK: &[u8] = chunked::LAST_CHUNK;

/// What broke the HTTP framing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The response head is longer than allowed.
    #[error("a response head over {0} bytes")]
    HeadTooLarge(usize),
    /// The response head does not parse.
    #[error("a malformed response head: {0}")]
    BadHead(String),
    /// A `200` whose body is not chunked.
    #[error("a 200 response without chunked transfer encoding")]
    NotChunked,
    /// The response body is not chunked coding, or a chunk is too large.
    #[error("bad chunked coding: {0}")]
    Chunk(#[from] ChunkError),
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// Whether the body is chunked.
    pub chunked: bool,
}

/// Reads the response head from the front of `buf`: `None` until it is
/// complete; the head's bytes are removed.
pub fn parse_response_head(
    buf: &mut BytesMut,
    max_head: usize,
) -> Result<Option<ResponseHead>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => {
            let status = response.code.unwrap_or(0);
            let chunked = response.headers.iter().any(|h| {
                h.name.eq_ignore_ascii_case("transfer-encoding")
                    && std::str::from_utf8(h.value)
                        .is_ok_and(|v| v.to_ascii_lowercase().contains("chunked"))
            });
            buf.advance(len);
            Ok(Some(ResponseHead { status, chunked }))
        }
        Ok(httparse::Status::Partial) if buf.len() > max_head => {
            Err(HttpError::HeadTooLarge(max_head))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(HttpError::BadHead(e.to_string())),
    }
}

/// One item of a chunked body.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    /// A chunk's data.
    Data(BytesMut),
    /// The last chunk: the body ended.
    End,
}

/// Takes the next chunk from the front of `buf` without copying it: `None`
/// until it is whole. A chunk over `max` is an error from its size line on,
/// so a bad size never makes the reader buffer it.
pub fn decode_chunk(buf: &mut BytesMut, max: usize) -> Result<Option<Chunk>, HttpError> {
    match chunked::decode_chunk(buf, max)? {
        None => Ok(None),
        Some(Decoded::End) => Ok(Some(Chunk::End)),
        Some(Decoded::Chunk { data, used }) => {
            let len = data.len();
            // The data ends 2 bytes (CRLF) before `used`.
            buf.advance(used - len - 2);
            let data = buf.split_to(len);
            buf.advance(2);
            Ok(Some(Chunk::Data(data)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn url() -> ServerUrl {
        ServerUrl::parse("https://ht.example:8443/base").unwrap()
    }

    #[test]
    fn the_request_head_is_the_contracts() {
        let head = String::from_utf8(request_head(&url(), "abc")).unwrap();
        assert_eq!(
            head,
            "POST /base/ht/create.php HTTP/1.1\r\nHost: ht.example:8443\r\n\
             Content-Type: application/octet-stream\r\nCookie: PHPSESSID=abc\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
        );
        let mut out = Vec::new();
        encode_chunk(&mut out, &[7; 26]);
        assert_eq!(&out[..4], b"1a\r\n");
        assert_eq!(&out[out.len() - 2..], b"\r\n");
    }

    #[test]
    fn response_heads_parse_when_complete() {
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"[..]);
        assert_eq!(parse_response_head(&mut buf, 1024), Ok(None));
        buf.extend_from_slice(b"\r\n5\r\n");
        assert_eq!(
            parse_response_head(&mut buf, 1024),
            Ok(Some(ResponseHead {
                status: 200,
                chunked: true
            }))
        );
        assert_eq!(&buf[..], b"5\r\n", "the body stays");
        let mut buf = BytesMut::from(&b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\n"[..]);
        assert_eq!(
            parse_response_head(&mut buf, 1024).unwrap().unwrap().status,
            404
        );
        let mut huge = BytesMut::from(&b"HTTP/1.1 200 OK\r\nX: "[..]);
        huge.extend_from_slice(&[b'a'; 2000]);
        assert_eq!(
            parse_response_head(&mut huge, 1024),
            Err(HttpError::HeadTooLarge(1024))
        );
        let mut garbage = BytesMut::from(&b"SSH-2.0\r\n\r\n"[..]);
        assert!(parse_response_head(&mut garbage, 1024).is_err());
    }

    #[test]
    fn chunks_decode_whole_truncated_oversized_and_broken() {
        let mut buf = BytesMut::from(&b"5;ext=1\r\nhello\r\n3\r\nab"[..]);
        assert_eq!(
            decode_chunk(&mut buf, 10),
            Ok(Some(Chunk::Data(BytesMut::from(&b"hello"[..]))))
        );
        assert_eq!(decode_chunk(&mut buf, 10), Ok(None), "truncated");
        buf.extend_from_slice(b"c\r\n0\r\n\r\n");
        assert_eq!(
            decode_chunk(&mut buf, 10),
            Ok(Some(Chunk::Data(BytesMut::from(&b"abc"[..]))))
        );
        assert_eq!(decode_chunk(&mut buf, 10), Ok(Some(Chunk::End)));
        // Oversized: refused from the size line, before any data.
        let mut big = BytesMut::from(&b"ffff\r\n"[..]);
        assert!(matches!(
            decode_chunk(&mut big, 10),
            Err(HttpError::Chunk(ChunkError::TooLarge { max: 10, .. }))
        ));
        let mut bad = BytesMut::from(&b"zz\r\n"[..]);
        assert_eq!(
            decode_chunk(&mut bad, 10),
            Err(HttpError::Chunk(ChunkError::BadSizeLine))
        );
        let mut no_crlf = BytesMut::from(&b"2\r\nabXY"[..]);
        assert_eq!(
            decode_chunk(&mut no_crlf, 10),
            Err(HttpError::Chunk(ChunkError::MissingCrlf))
        );
        let mut endless = BytesMut::from(&[b' '; 300][..]);
        assert!(decode_chunk(&mut endless, 1 << 20).is_err());
    }

    proptest! {
        /// Chunks written by `encode_chunk` read back the same however the
        /// bytes are split on arrival.
        #[test]
        fn chunks_survive_any_split(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut wire = Vec::new();
            for c in &chunks {
                encode_chunk(&mut wire, c);
            }
            wire.extend_from_slice(LAST_CHUNK);
            let cut = cut.index(wire.len());
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut got = Vec::new();
            let mut rest = &wire[cut..];
            loop {
                match decode_chunk(&mut buf, 300).unwrap() {
                    Some(Chunk::Data(d)) => got.push(d.to_vec()),
                    Some(Chunk::End) => break,
                    None => {
                        prop_assert!(!rest.is_empty(), "stuck with all bytes in");
                        buf.extend_from_slice(rest);
                        rest = &[];
                    }
                }
            }
            prop_assert_eq!(got, chunks);
        }
    }
}
