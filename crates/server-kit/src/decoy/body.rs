//! Request bodies, which the site never wants: they are read only to be
//! dropped, so that the next request on the connection is found.
//!
//! A chunked body follows nginx's observed rules: a size line is hex digits
//! (below 2^59), then optionally a space, tab or `;` and anything up to the
//! end of the line; the data must end with the line; after the last chunk
//! come trailer lines up to an empty one. Lines end in LF or CR LF, and a
//! CR anywhere else is an error (400).

use super::fields::Framing;

/// The body is not valid chunked data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid chunked body")]
pub(super) struct Invalid;

/// A body being dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Body {
    /// Bytes of a `Content-Length` body still to come.
    Length(u64),
    Chunked(Chunked),
    Done,
}

/// Where a chunked body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunked {
    /// Before the first digit of a size.
    SizeStart,
    /// Among the digits of a size.
    Size(u64),
    /// After a size, up to the end of its line.
    SizeRest(u64),
    /// A CR came; the LF must follow, then `Line` decides what is next.
    Lf(Line),
    /// Bytes of chunk data still to come.
    Data(u64),
    /// Right after a chunk's data: the line must end.
    DataEnd,
    /// At the start of a trailer line.
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
}

/// Which line a CR ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Line {
    Size(u64),
    Data,
    Trailer,
    Last,
}

/// Chunk sizes from here on are refused.
const MAX_CHUNK: u64 = 1 << 59;

impl Body {
    pub fn new(framing: Framing) -> Body {
        match framing {
            Framing::None | Framing::Length(0) => Body::Done,
            Framing::Length(n) => Body::Length(n),
            Framing::Chunked => Body::Chunked(Chunked::SizeStart),
        }
    }

    pub fn is_done(&self) -> bool {
        *self == Body::Done
    }

    /// Drops what of `bytes` belongs to the body; returns how many did.
    pub fn eat(&mut self, bytes: &[u8]) -> Result<usize, Invalid> {
        match self {
            Body::Done => Ok(0),
            Body::Length(left) => {
                let n = usize::try_from(*left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                *left -= n as u64;
                if *left == 0 {
                    *self = Body::Done;
                }
                Ok(n)
            }
            Body::Chunked(state) => {
                let mut at = 0;
                while at < bytes.len() {
                    if let Chunked::Data(left) = *state {
                        let n = usize::try_from(left)
                            .unwrap_or(usize::MAX)
                            .min(bytes.len() - at);
                        at += n;
                        *state = match left - n as u64 {
                            0 => Chunked::DataEnd,
                            left => Chunked::Data(left),
                        };
                        continue;
                    }
                    let next = step(*state, bytes[at])?;
                    at += 1;
                    match next {
                        Some(next) => *state = next,
                        None => {
                            *self = Body::Done;
                            break;
                        }
                    }
                }
                Ok(at)
            }
        }
    }
}

/// One byte of chunked framing (not data); `None`: the body is complete.
fn step(state: Chunked, b: u8) -> Result<Option<Chunked>, Invalid> {
    let hex = (b as char).to_digit(16).map(u64::from);
    Ok(Some(match state {
        Chunked::SizeStart => Chunked::Size(hex.ok_or(Invalid)?),
        Chunked::Size(size) => match (hex, b) {
            (Some(d), _) => {
                let size = size * 16 + d;
                if size >= MAX_CHUNK {
                    return Err(Invalid);
                }
                Chunked::Size(size)
            }
            (None, b' ' | b'\t' | b';') => Chunked::SizeRest(size),
            (None, b'\r') => Chunked::Lf(Line::Size(size)),
            (None, b'\n') => return Ok(Some(after_size(size))),
            (None, _) => return Err(Invalid),
        },
        Chunked::SizeRest(size) => match b {
            b'\r' => Chunked::Lf(Line::Size(size)),
            b'\n' => after_size(size),
            _ => state,
        },
        Chunked::Lf(line) => {
            if b != b'\n' {
                return Err(Invalid);
            }
            match line {
                Line::Size(size) => after_size(size),
                Line::Data => Chunked::SizeStart,
                Line::Trailer => Chunked::TrailerStart,
                Line::Last => return Ok(None),
            }
        }
        Chunked::DataEnd => match b {
            b'\r' => Chunked::Lf(Line::Data),
            b'\n' => Chunked::SizeStart,
            _ => return Err(Invalid),
        },
        Chunked::TrailerStart => match b {
            b'\r' => Chunked::Lf(Line::Last),
            b'\n' => return Ok(None),
            _ => Chunked::Trailer,
        },
        Chunked::Trailer => match b {
            b'\r' => Chunked::Lf(Line::Trailer),
            b'\n' => Chunked::TrailerStart,
            _ => state,
        },
        Chunked::Data(_) => unreachable!("data is taken in bulk"),
    }))
}

fn after_size(size: u64) -> Chunked {
    if size == 0 {
        Chunked::TrailerStart
    } else {
        Chunked::Data(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(bytes: &[u8]) -> Result<(usize, bool), Invalid> {
        let mut body = Body::new(Framing::Chunked);
        let n = body.eat(bytes)?;
        Ok((n, body.is_done()))
    }

    #[test]
    fn chunked_bodies() {
        let whole = b"5;a=b\r\nabcde\r\nA \r\n0123456789\n0\r\nX: y\r\n\r\nGET";
        assert_eq!(chunked(whole), Ok((whole.len() - 3, true)));
        // Byte by byte, the same.
        let mut body = Body::new(Framing::Chunked);
        let eaten: usize = whole
            .iter()
            .map(|b| body.eat(std::slice::from_ref(b)).unwrap())
            .sum();
        assert_eq!(eaten, whole.len() - 3);
        assert_eq!(chunked(b"5\r\nab"), Ok((5, false)));
        for bad in [
            &b"zz\r\n"[..],
            b" 5\r\n",
            b"\r\n",
            b";\r\n",
            b"5x\r\n",
            b"5;a\rb",
            b"5\r\nabcdeX",
            b"5\r\nabcde\r\r\n",
            b"0\r\n\rx",
            b"800000000000000\r\n",
        ] {
            assert_eq!(
                chunked(bad),
                Err(Invalid),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(chunked(b"7ffffffffffffff\r\n"), Ok((17, false)));
    }

    #[test]
    fn lengths() {
        let mut body = Body::new(Framing::Length(5));
        assert_eq!(body.eat(b"abc"), Ok(3));
        assert_eq!(body.eat(b"deGET"), Ok(2));
        assert!(body.is_done());
        assert!(Body::new(Framing::Length(0)).is_done());
    }
}
