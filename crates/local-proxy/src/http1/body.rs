//! Where an HTTP/1.1 message body ends, found without decoding it.
//!
//! The proxy forwards bodies byte for byte (chunked stays chunked), but it must
//! know where each body ends so that the next request or response on a
//! keep-alive connection starts in the right place. [`BodyScanner`] answers
//! "how many of these bytes still belong to the body" and nothing else.

/// How a message's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body at all.
    Empty,
    /// Exactly this many bytes (`Content-Length`).
    Length(u64),
    /// `Transfer-Encoding: chunked`, up to the last chunk and trailers.
    Chunked,
    /// Until the sender closes the connection (responses only).
    UntilClose,
}

/// Longest chunk extension accepted; extensions are never used in practice
/// and an unbounded one would let a peer make us scan forever.
pub const MAX_CHUNK_EXTENSION: usize = 4096;
/// Longest trailer section accepted.
pub const MAX_TRAILERS: usize = 16 * 1024;

/// Why a chunked body is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// A chunk-size line has no hex digits, too many, or a bad character.
    #[error("invalid chunk size line")]
    BadChunkSize,
    /// A chunk extension is longer than [`MAX_CHUNK_EXTENSION`].
    #[error("chunk extension too long")]
    ExtensionTooLong,
    /// The trailer section is longer than [`MAX_TRAILERS`].
    #[error("chunked trailers too long")]
    TrailersTooLong,
    /// A line is not ended by CRLF, or chunk data is not followed by CRLF.
    #[error("chunked body line not terminated by CRLF")]
    MissingCrlf,
}

/// Tracks one body as its bytes go by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyScanner {
    state: Scan,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Scan {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
    Done,
}

impl BodyScanner {
    /// Starts scanning a body framed as `framing`.
    pub fn new(framing: BodyFraming) -> Self {
        let state = match framing {
            BodyFraming::Empty | BodyFraming::Length(0) => Scan::Done,
            BodyFraming::Length(n) => Scan::Length(n),
            BodyFraming::Chunked => Scan::Chunked(Chunked::default()),
            BodyFraming::UntilClose => Scan::UntilClose,
        };
        BodyScanner { state }
    }

    /// Takes the next bytes of the stream; returns how many of them belong to
    /// the body. Fewer than `buf.len()` means the body ended inside `buf`.
    pub fn advance(&mut self, buf: &[u8]) -> Result<usize, BodyError> {
        match &mut self.state {
            Scan::Done => Ok(0),
            Scan::UntilClose => Ok(buf.len()),
            Scan::Length(remaining) => {
                let n = usize::try_from(*remaining).map_or(buf.len(), |r| r.min(buf.len()));
                *remaining -= n as u64;
                if *remaining == 0 {
                    self.state = Scan::Done;
                }
                Ok(n)
            }
            Scan::Chunked(chunked) => {
                let n = chunked.advance(buf)?;
                if chunked.is_done() {
                    self.state = Scan::Done;
                }
                Ok(n)
            }
        }
    }

    /// Whether the whole body has gone by.
    pub fn is_done(&self) -> bool {
        self.state == Scan::Done
    }

    /// Whether the end of the stream is the end of this body (rather than a
    /// truncation).
    pub fn ends_at_eof(&self) -> bool {
        matches!(self.state, Scan::UntilClose | Scan::Done)
    }
}

/// The chunked-coding grammar (RFC 9112 §7.1), one byte class at a time:
///
/// ```text
/// chunked-body = *chunk last-chunk trailer-section CRLF
/// chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
/// last-chunk   = 1*("0") [ chunk-ext ] CRLF
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
enum Chunked {
    /// Reading hex digits of a chunk size.
    Size { value: u64, digits: u8 },
    /// After the size: extension bytes up to CR.
    Extension { size: u64, len: usize },
    /// CR seen after the size line; LF expected.
    SizeLf { size: u64 },
    /// Inside chunk data.
    Data { remaining: u64 },
    /// After chunk data: CR expected.
    DataCr,
    /// After chunk data: LF expected.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart { total: usize },
    /// Inside a trailer field line.
    TrailerLine { total: usize },
    /// CR seen at the end of a trailer line; LF expected.
    TrailerLf { total: usize },
    /// CR seen on the final empty line; LF expected.
    EndLf,
    /// The body is complete.
    Done,
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked::Size {
            value: 0,
            digits: 0,
        }
    }
}

impl Chunked {
    fn is_done(&self) -> bool {
        *self == Chunked::Done
    }

    fn advance(&mut self, buf: &[u8]) -> Result<usize, BodyError> {
        let mut i = 0;
        while i < buf.len() {
            let byte = buf[i];
            *self = match *self {
                Chunked::Done => return Ok(i),
                Chunked::Data { remaining } => {
                    // Skip the data in one step rather than byte by byte.
                    let take =
                        usize::try_from(remaining).map_or(buf.len() - i, |r| r.min(buf.len() - i));
                    i += take;
                    let left = remaining - take as u64;
                    *self = if left == 0 {
                        Chunked::DataCr
                    } else {
                        Chunked::Data { remaining: left }
                    };
                    continue;
                }
                Chunked::Size { value, digits } => match hex_value(byte) {
                    Some(d) => {
                        // Overflow, not a digit count, bounds the size: leading
                        // zeros are allowed however many there are.
                        Chunked::Size {
                            value: value.checked_mul(16).ok_or(BodyError::BadChunkSize)?
                                | u64::from(d),
                            digits: digits.saturating_add(1),
                        }
                    }
                    None if digits == 0 => return Err(BodyError::BadChunkSize),
                    // BWS before an extension, or the extension itself.
                    None if byte == b';' || byte == b' ' || byte == b'\t' => Chunked::Extension {
                        size: value,
                        len: 1,
                    },
                    None if byte == b'\r' => Chunked::SizeLf { size: value },
                    None => return Err(BodyError::BadChunkSize),
                },
                Chunked::Extension { size, len } => match byte {
                    b'\r' => Chunked::SizeLf { size },
                    b'\n' => return Err(BodyError::MissingCrlf),
                    _ if len >= MAX_CHUNK_EXTENSION => return Err(BodyError::ExtensionTooLong),
                    _ => Chunked::Extension { size, len: len + 1 },
                },
                Chunked::SizeLf { size } => match byte {
                    b'\n' if size == 0 => Chunked::TrailerStart { total: 0 },
                    b'\n' => Chunked::Data { remaining: size },
                    _ => return Err(BodyError::MissingCrlf),
                },
                Chunked::DataCr => match byte {
                    b'\r' => Chunked::DataLf,
                    _ => return Err(BodyError::MissingCrlf),
                },
                Chunked::DataLf => match byte {
                    b'\n' => Chunked::default(),
                    _ => return Err(BodyError::MissingCrlf),
                },
                Chunked::TrailerStart { total } => match byte {
                    b'\r' => Chunked::EndLf,
                    b'\n' => return Err(BodyError::MissingCrlf),
                    _ => Chunked::TrailerLine {
                        total: trailer_len(total)?,
                    },
                },
                Chunked::TrailerLine { total } => match byte {
                    b'\r' => Chunked::TrailerLf {
                        total: trailer_len(total)?,
                    },
                    b'\n' => return Err(BodyError::MissingCrlf),
                    _ => Chunked::TrailerLine {
                        total: trailer_len(total)?,
                    },
                },
                Chunked::TrailerLf { total } => match byte {
                    b'\n' => Chunked::TrailerStart {
                        total: trailer_len(total)?,
                    },
                    _ => return Err(BodyError::MissingCrlf),
                },
                Chunked::EndLf => match byte {
                    b'\n' => Chunked::Done,
                    _ => return Err(BodyError::MissingCrlf),
                },
            };
            i += 1;
        }
        Ok(i)
    }
}

fn trailer_len(total: usize) -> Result<usize, BodyError> {
    if total >= MAX_TRAILERS {
        Err(BodyError::TrailersTooLong)
    } else {
        Ok(total + 1)
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `input` in pieces of `step` bytes; returns the body length found
    /// (if the body ended) and whether it ended.
    fn scan(framing: BodyFraming, input: &[u8], step: usize) -> Result<(usize, bool), BodyError> {
        let mut s = BodyScanner::new(framing);
        let mut used = 0;
        for piece in input.chunks(step.max(1)) {
            let n = s.advance(piece)?;
            used += n;
            if n < piece.len() {
                break;
            }
        }
        Ok((used, s.is_done()))
    }

    fn encode_chunked(chunks: &[Vec<u8>], ext: bool, trailers: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in chunks.iter().filter(|c| !c.is_empty()) {
            out.extend_from_slice(format!("{:X}", c.len()).as_bytes());
            if ext {
                out.extend_from_slice(b";name=\"v\"");
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(c);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n");
        for t in trailers {
            out.extend_from_slice(t.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    #[test]
    fn chunked_example() {
        let body = b"4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\nExpires: never\r\n\r\nGET /next";
        let (used, done) = scan(BodyFraming::Chunked, body, 1000).unwrap();
        assert!(done);
        assert_eq!(&body[used..], b"GET /next");
    }

    #[test]
    fn length_and_empty() {
        assert_eq!(scan(BodyFraming::Length(3), b"abcdef", 2), Ok((3, true)));
        assert_eq!(scan(BodyFraming::Length(10), b"abc", 2), Ok((3, false)));
        assert_eq!(scan(BodyFraming::Empty, b"abc", 2), Ok((0, true)));
        let mut s = BodyScanner::new(BodyFraming::UntilClose);
        assert_eq!(s.advance(b"abc"), Ok(3));
        assert!(s.ends_at_eof() && !s.is_done());
        assert!(!BodyScanner::new(BodyFraming::Length(1)).ends_at_eof());
    }

    #[test]
    fn chunked_errors() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"4\nWiki",
            b"4\r\nWikiXX",
            b"11111111111111111\r\n",
            b"0\r\nfoo\n",
        ] {
            assert!(
                scan(BodyFraming::Chunked, bad, 100).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long_ext = format!("1;{}\r\n", "e".repeat(MAX_CHUNK_EXTENSION + 1));
        assert_eq!(
            scan(BodyFraming::Chunked, long_ext.as_bytes(), 100),
            Err(BodyError::ExtensionTooLong)
        );
        let long_trailer = format!("0\r\nX: {}\r\n\r\n", "t".repeat(MAX_TRAILERS));
        assert_eq!(
            scan(BodyFraming::Chunked, long_trailer.as_bytes(), 100),
            Err(BodyError::TrailersTooLong)
        );
        // Leading zeros are fine, however many.
        let zeros = b"000000000000000000001\r\na\r\n0\r\n\r\n";
        assert_eq!(
            scan(BodyFraming::Chunked, zeros, 3),
            Ok((zeros.len(), true))
        );
    }

    proptest! {
        #[test]
        fn chunked_finds_the_end_whatever_the_split(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
            ext in any::<bool>(),
            trailer in any::<bool>(),
            step in 1usize..64,
            tail in proptest::collection::vec(any::<u8>(), 0..32),
        ) {
            let trailers: &[&str] = if trailer { &["X-Sum: 1", "Y: 2"] } else { &[] };
            let body = encode_chunked(&chunks, ext, trailers);
            let mut input = body.clone();
            input.extend_from_slice(&tail);
            prop_assert_eq!(scan(BodyFraming::Chunked, &input, step), Ok((body.len(), true)));
            // Truncated at every length: all bytes consumed, not done.
            for cut in 0..body.len() {
                prop_assert_eq!(scan(BodyFraming::Chunked, &body[..cut], step), Ok((cut, false)));
            }
        }

        #[test]
        fn scanner_never_panics_or_overclaims(
            bytes in proptest::collection::vec(any::<u8>(), 0..400),
            step in 1usize..50,
        ) {
            if let Ok((used, _)) = scan(BodyFraming::Chunked, &bytes, step) {
                prop_assert!(used <= bytes.len());
            }
        }
    }
}
