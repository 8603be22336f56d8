//! Header lines and what they mean to the site, by nginx's observed rules.
//!
//! A line is `name[:value]`. Its name must be visible bytes (a control,
//! space or DEL is 400, so is an empty name before a colon, so a folded
//! line is 400); a name of anything but letters, digits and `-` is ignored.
//! The value loses leading and trailing spaces (tabs stay); a NUL in it is
//! 400, and so is a CR anywhere but in a run of them before the LF (the
//! empty line ending the head allows only one).
//!
//! `httparse` would do the splitting, but it skips or refuses the lines
//! nginx takes differently (a name with a space is 400 for nginx, skipped
//! by httparse's lenient mode; control bytes in values are fine for nginx,
//! skipped by httparse; a line without a colon is a header for nginx), and
//! working around each would be longer than this.
//!
//! Some headers may come only once (400 for a second), `Host` is checked
//! as it comes, and once the head is complete [`Fields::framing`] decides
//! how its body is framed.

use super::line::Version;
use super::pages;
use super::target;

/// What one header line is.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Field<'a> {
    /// The empty line: the head is complete.
    End,
    /// A header nginx keeps.
    Header { name: &'a [u8], value: &'a [u8] },
    /// A line nginx accepts but ignores (an odd name).
    Ignored,
    /// A partial line, fine so far.
    Partial,
}

/// The line is refused (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid header line")]
pub(super) struct Invalid;

/// Reads one header line (without its LF; `complete`: the LF came).
pub(super) fn read(line: &[u8], complete: bool) -> Result<Field<'_>, Invalid> {
    if line.is_empty() || line == b"\r" {
        return Ok(if complete { Field::End } else { Field::Partial });
    }
    // Any number of CRs may end a header line (not the empty one).
    let line = &line[..line.len() - line.iter().rev().take_while(|&&b| b == b'\r').count()];
    if line.is_empty() {
        return Err(Invalid);
    }
    let colon = line.iter().position(|&b| b == b':');
    let name = &line[..colon.unwrap_or(line.len())];
    if !name.iter().all(|&b| b > b' ' && b != 0x7f) || (colon.is_some() && name.is_empty()) {
        return Err(Invalid);
    }
    let value = colon.map_or(&[][..], |c| &line[c + 1..]);
    if value.iter().any(|&b| b == 0 || b == b'\r') {
        return Err(Invalid);
    }
    if !complete {
        return Ok(Field::Partial);
    }
    if !name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-') {
        return Ok(Field::Ignored);
    }
    let start = value.iter().take_while(|&&b| b == b' ').count();
    let end = value.len()
        - value[start..]
            .iter()
            .rev()
            .take_while(|&&b| b == b' ')
            .count();
    Ok(Field::Header {
        name,
        value: &value[start..end],
    })
}

/// Whether the client asked to keep the connection, or to close it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Persistence {
    /// Whatever the version implies.
    #[default]
    Default,
    Close,
    KeepAlive,
}

/// How a request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// The headers of a request, and what the site makes of them.
#[derive(Debug, Default)]
pub(super) struct Fields {
    /// The headers kept, in order, as sent (values trimmed).
    pub list: Vec<(Vec<u8>, Vec<u8>)>,
    /// The host `Host:` names (checked and lower-cased).
    pub host: Option<Vec<u8>>,
    pub persistence: Persistence,
    /// The first `User-Agent` asks for padded error pages.
    pub padding: bool,
    /// The first `User-Agent` is an MSIE that gets no keep-alive after POST.
    pub old_msie: bool,
    seen_agent: bool,
    /// The first `Range`.
    pub range: Option<Vec<u8>>,
    /// Headers that may come only once.
    pub once: Once,
}

/// The headers nginx refuses to see twice (by case-insensitive name).
#[derive(Debug, Default)]
pub(super) struct Once {
    pub content_length: Option<Vec<u8>>,
    pub transfer_encoding: Option<Vec<u8>>,
    pub if_modified_since: Option<Vec<u8>>,
    pub if_unmodified_since: Option<Vec<u8>>,
    pub if_match: Option<Vec<u8>>,
    pub if_none_match: Option<Vec<u8>>,
    pub if_range: Option<Vec<u8>>,
    pub expect: Option<Vec<u8>>,
    content_range: Option<Vec<u8>>,
    authorization: Option<Vec<u8>>,
}

impl Once {
    fn slot(&mut self, lower: &[u8]) -> Option<&mut Option<Vec<u8>>> {
        Some(match lower {
            b"content-length" => &mut self.content_length,
            b"transfer-encoding" => &mut self.transfer_encoding,
            b"if-modified-since" => &mut self.if_modified_since,
            b"if-unmodified-since" => &mut self.if_unmodified_since,
            b"if-match" => &mut self.if_match,
            b"if-none-match" => &mut self.if_none_match,
            b"if-range" => &mut self.if_range,
            b"expect" => &mut self.expect,
            b"content-range" => &mut self.content_range,
            b"authorization" => &mut self.authorization,
            _ => return None,
        })
    }
}

/// The largest `Content-Length` nginx can read at all.
const MAX_LENGTH: u64 = i64::MAX as u64;

impl Fields {
    /// Takes one kept header; `Err` is the 400 nginx answers at once.
    pub fn add(&mut self, name: &[u8], value: &[u8]) -> Result<(), Invalid> {
        self.list.push((name.to_vec(), value.to_vec()));
        let lower = name.to_ascii_lowercase();
        if let Some(slot) = self.once.slot(&lower) {
            if slot.is_some() {
                return Err(Invalid);
            }
            *slot = Some(value.to_vec());
            return Ok(());
        }
        match lower.as_slice() {
            b"host" => {
                if self.host.is_some() {
                    return Err(Invalid);
                }
                self.host = Some(target::host(value).map_err(|_| Invalid)?);
            }
            // A substring test, the last such header deciding.
            b"connection" => {
                if contains_ignore_case(value, b"close") {
                    self.persistence = Persistence::Close;
                } else if contains_ignore_case(value, b"keep-alive") {
                    self.persistence = Persistence::KeepAlive;
                }
            }
            b"user-agent" if !self.seen_agent => {
                self.seen_agent = true;
                self.padding = pages::wants_padding(value);
                self.old_msie = pages::is_old_msie(value);
            }
            b"range" if self.range.is_none() => self.range = Some(value.to_vec()),
            _ => {}
        }
        Ok(())
    }

    /// The checks of a complete head, in nginx's order: `Host` on HTTP/1.1,
    /// `Content-Length`, then `Transfer-Encoding` (HTTP/1.1 only; `chunked`
    /// alone, 501 for anything else, and not with a length). `Err` is the
    /// status; a valid `Content-Length` counts even then (the body it
    /// announces is still coming).
    pub fn framing(&self, version: Version) -> Result<Framing, (u16, Framing)> {
        if version > Version::HTTP_10 && self.host.is_none() {
            return Err((400, Framing::None));
        }
        let framing = match &self.once.content_length {
            None => Framing::None,
            Some(value) => match parse_length(value) {
                Some(length) => Framing::Length(length),
                None => return Err((400, Framing::None)),
            },
        };
        let Some(coding) = &self.once.transfer_encoding else {
            return Ok(framing);
        };
        if version <= Version::HTTP_10 {
            return Err((400, framing));
        }
        if !coding.eq_ignore_ascii_case(b"chunked") {
            return Err((501, framing));
        }
        if framing != Framing::None {
            return Err((400, framing));
        }
        Ok(Framing::Chunked)
    }

    /// Whether `Expect` asks for `100 Continue`.
    pub fn expects_continue(&self) -> bool {
        self.once
            .expect
            .as_deref()
            .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"))
    }
}

/// A `Content-Length`: decimal digits only.
fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = value.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })?;
    (n <= MAX_LENGTH).then_some(n)
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HTTP_11: Version = Version { major: 1, minor: 1 };

    #[test]
    fn lines() {
        fn header(line: &str) -> Result<Field<'_>, Invalid> {
            read(line.as_bytes(), true)
        }
        assert_eq!(
            header("Host:  x \t \r"),
            Ok(Field::Header {
                name: b"Host",
                value: b"x \t"
            })
        );
        assert_eq!(
            header("Novalue"),
            Ok(Field::Header {
                name: b"Novalue",
                value: b""
            })
        );
        assert_eq!(header(""), Ok(Field::End));
        assert_eq!(header("\r"), Ok(Field::End));
        assert_eq!(header("\r\r"), Err(Invalid));
        assert_eq!(
            header("X: a\r\r"),
            Ok(Field::Header {
                name: b"X",
                value: b"a"
            })
        );
        assert_eq!(header("X_Y: 1"), Ok(Field::Ignored));
        assert_eq!(header("X-\u{e9}: 1"), Ok(Field::Ignored));
        assert_eq!(header("X;: 1"), Ok(Field::Ignored));
        assert!(matches!(header("X: a\x01\x7fb"), Ok(Field::Header { .. })));
        for bad in [
            "X Y: 1",
            ": x",
            "  folded",
            "\tX: 1",
            "X: a\0b",
            "X: a\rb",
            "X: a\r \r",
            "X\x7f: 1",
        ] {
            assert_eq!(header(bad), Err(Invalid), "{bad:?}");
        }
        assert_eq!(read(b"X: a\0", false), Err(Invalid));
        assert_eq!(read(b"X: a\r", false), Ok(Field::Partial));
    }

    #[test]
    fn once_and_host() {
        let mut f = Fields::default();
        f.add(b"Host", b"Example.com:443").unwrap();
        assert_eq!(f.host.as_deref(), Some(&b"example.com"[..]));
        assert_eq!(f.add(b"HOST", b"x"), Err(Invalid));
        f.add(b"If-Match", b"\"a\"").unwrap();
        assert_eq!(f.add(b"if-match", b"\"b\""), Err(Invalid));
        f.add(b"Range", b"bytes=0-1").unwrap();
        f.add(b"Range", b"bytes=2-3").unwrap();
        assert_eq!(f.range.as_deref(), Some(&b"bytes=0-1"[..]));
        let mut f = Fields::default();
        assert_eq!(f.add(b"Host", b"a/b"), Err(Invalid));
    }

    #[test]
    fn framing() {
        let with = |headers: &[(&str, &str)], version| {
            let mut f = Fields::default();
            for (n, v) in headers {
                f.add(n.as_bytes(), v.as_bytes()).unwrap();
            }
            f.framing(version)
        };
        assert_eq!(with(&[], HTTP_11), Err((400, Framing::None)), "no Host");
        assert_eq!(with(&[], Version::HTTP_10), Ok(Framing::None));
        let h = ("Host", "x");
        assert_eq!(
            with(&[h, ("Content-Length", "05")], HTTP_11),
            Ok(Framing::Length(5))
        );
        for bad in ["-1", "+1", "", "1 1", "0x1", "9223372036854775808"] {
            assert_eq!(
                with(&[h, ("Content-Length", bad)], HTTP_11),
                Err((400, Framing::None)),
                "{bad}"
            );
        }
        assert_eq!(
            with(&[h, ("Transfer-Encoding", "Chunked")], HTTP_11),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            with(&[h, ("Transfer-Encoding", "gzip")], HTTP_11),
            Err((501, Framing::None))
        );
        assert_eq!(
            with(
                &[h, ("Transfer-Encoding", "chunked"), ("Content-Length", "1")],
                HTTP_11
            ),
            Err((400, Framing::Length(1)))
        );
        assert_eq!(
            with(&[("Transfer-Encoding", "chunked")], Version::HTTP_10),
            Err((400, Framing::None))
        );
    }

    #[test]
    fn persistence() {
        let mut f = Fields::default();
        f.add(b"Connection", b"Keep-Alive").unwrap();
        assert_eq!(f.persistence, Persistence::KeepAlive);
        f.add(b"Connection", b"Upgrade, close").unwrap();
        assert_eq!(f.persistence, Persistence::Close);
        f.add(b"Connection", b"foo").unwrap();
        assert_eq!(f.persistence, Persistence::Close);
    }
}
