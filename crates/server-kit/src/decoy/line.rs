//! The request line, by nginx's observed rules (`httparse` only knows
//! HTTP/1.0 and 1.1 and takes methods and spacing nginx refuses, so this
//! small reader is our own):
//!
//! - `METHOD SP+ target [SP+ HTTP/major.minor] SP* EOL`, where EOL is LF
//!   or CR LF; no tabs anywhere, and a CR only right before the LF;
//! - a method is upper-case letters, `_` and `-` (any such word: unknown
//!   ones are 405 later, not 400);
//! - a target is an origin form (`/...`) or an absolute URI (see
//!   [`target`]); its bytes are anything visible, 8-bit included;
//! - the version: `HTTP/` (upper case), a major without a leading zero, a
//!   minor of up to 999 (leading zeros allowed); a major above 1 is 505 as
//!   soon as its digits show, whatever follows;
//! - without a version the request is HTTP/0.9 (GET only); its line may
//!   not end right after an absolute URI's host (400).
//!
//! nginx refuses a line as soon as a byte cannot fit, before the line is
//! complete: [`read`] checks partial lines too.
//!
//! [`target`]: super::target

use super::target;

/// An HTTP version; HTTP/0.9 is `0.9`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Version {
    pub major: u32,
    pub minor: u32,
}

impl Version {
    pub const HTTP_09: Version = Version { major: 0, minor: 9 };
    pub const HTTP_10: Version = Version { major: 1, minor: 0 };
}

/// A complete request line.
#[derive(Debug, Clone, Copy)]
pub(super) struct RequestLine<'a> {
    pub method: &'a [u8],
    pub target: &'a [u8],
    pub version: Version,
}

/// What a (possibly partial) request line amounts to.
#[derive(Debug)]
pub(super) enum Read<'a> {
    Complete(RequestLine<'a>),
    /// Fine so far; more bytes are needed.
    Partial,
    /// Refused with `status`; `method` if the method word was complete.
    Refused {
        status: u16,
        method: Option<&'a [u8]>,
    },
}

/// Reads `line` (without its LF; `complete`: the LF came).
pub(super) fn read(line: &[u8], complete: bool) -> Read<'_> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let bad = |method| Read::Refused {
        status: 400,
        method,
    };
    // More bytes may still make a valid line.
    let more = |method| if complete { bad(method) } else { Read::Partial };

    let method_len = line
        .iter()
        .position(|&b| !(b.is_ascii_uppercase() || b == b'_' || b == b'-'))
        .unwrap_or(line.len());
    if method_len == line.len() {
        return more(None);
    }
    if method_len == 0 || line[method_len] != b' ' {
        return bad(None);
    }
    let method = Some(&line[..method_len]);
    let at = skip_spaces(line, method_len);
    if at == line.len() {
        return more(method);
    }

    let rest = &line[at..];
    let target_len = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    let target = &rest[..target_len];
    if !target.iter().all(|&b| b > b' ' && b != 0x7f)
        || target::check_form(target, target_len < rest.len() || complete).is_err()
    {
        return bad(method);
    }
    let after = skip_spaces(rest, target_len);
    if after == rest.len() {
        // Nothing after the target: HTTP/0.9, once the line ends; but not
        // when the line ends right after an absolute URI's host.
        if complete && after == target_len && target::is_authority_only(target) {
            return bad(method);
        }
        return if complete {
            Read::Complete(RequestLine {
                method: &line[..method_len],
                target,
                version: Version::HTTP_09,
            })
        } else {
            Read::Partial
        };
    }
    match read_version(&rest[after..], complete) {
        Ok(Some(version)) if version.major > 1 => Read::Refused {
            status: 505,
            method,
        },
        Ok(Some(version)) => Read::Complete(RequestLine {
            method: &line[..method_len],
            target,
            version,
        }),
        Ok(None) => Read::Partial,
        Err(()) => bad(method),
    }
}

fn skip_spaces(s: &[u8], from: usize) -> usize {
    from + s[from..].iter().take_while(|&&b| b == b' ').count()
}

/// `HTTP/major.minor` and trailing spaces; `Ok(None)`: fine so far.
fn read_version(s: &[u8], complete: bool) -> Result<Option<Version>, ()> {
    const NAME: &[u8] = b"HTTP/";
    if !NAME.starts_with(&s[..s.len().min(NAME.len())]) {
        return Err(());
    }
    // Out of bytes where more were due: fine only while the line goes on.
    let short = if complete { Err(()) } else { Ok(None) };
    let mut at = NAME.len();
    if at >= s.len() {
        return short;
    }
    if !(b'1'..=b'9').contains(&s[at]) {
        return Err(());
    }
    let major_at = at;
    at += digits(s, at);
    // A major version above 1 is refused as soon as it shows.
    let major = number(&s[major_at..at]);
    if major > 1 {
        return Ok(Some(Version {
            major: u32::try_from(major).unwrap_or(u32::MAX),
            minor: 0,
        }));
    }
    if at == s.len() {
        return short;
    }
    if s[at] != b'.' {
        return Err(());
    }
    at += 1;
    let minor_at = at;
    at += digits(s, at);
    let minor = number(&s[minor_at..at]);
    if minor > 999 {
        return Err(());
    }
    if at == minor_at {
        return if at == s.len() { short } else { Err(()) };
    }
    if skip_spaces(s, at) < s.len() {
        return Err(());
    }
    if !complete {
        return Ok(None);
    }
    Ok(Some(Version {
        major: 1,
        minor: minor as u32,
    }))
}

fn digits(s: &[u8], from: usize) -> usize {
    s[from..].iter().take_while(|b| b.is_ascii_digit()).count()
}

/// A run of digits, saturating.
fn number(digits: &[u8]) -> u64 {
    digits.iter().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(line: &str) -> Option<u16> {
        match read(line.as_bytes(), true) {
            Read::Complete(_) => None,
            Read::Refused { status, .. } => Some(status),
            Read::Partial => Some(0),
        }
    }

    fn version(line: &str) -> Version {
        match read(line.as_bytes(), true) {
            Read::Complete(l) => l.version,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn versions() {
        assert_eq!(version("GET / HTTP/1.1"), Version { major: 1, minor: 1 });
        assert_eq!(version("GET / HTTP/1.0000\r"), Version::HTTP_10);
        assert_eq!(
            version("GET / HTTP/1.999  "),
            Version {
                major: 1,
                minor: 999
            }
        );
        assert_eq!(version("GET /"), Version::HTTP_09);
        assert_eq!(version("GET  /  "), Version::HTTP_09);
        assert_eq!(version("GET http://a "), Version::HTTP_09);
        assert_eq!(version("GET http://a?x"), Version::HTTP_09);
        assert_eq!(status("GET http://a:80"), Some(400));
        for bad in [
            "GET / HTTP/1.1000",
            "GET / HTTP/01.1",
            "GET / HTTP/0.9",
            "GET / HTTP/1.",
            "GET / HTTP/1",
            "GET / http/1.1",
            "GET / HTTP/1.1 x",
            "GET / HTTP/1.1\t",
            "GET / X",
        ] {
            assert_eq!(status(bad), Some(400), "{bad}");
        }
        assert_eq!(status("GET / HTTP/2.0"), Some(505));
        assert_eq!(status("GET / HTTP/9999999999999.0"), Some(505));
        assert_eq!(status("GET / HTTP/11"), Some(505));
        assert_eq!(status("GET / HTTP/2x"), Some(505));
        assert_eq!(status("GET / HTTP/1 "), Some(400));
    }

    #[test]
    fn methods_and_targets() {
        assert_eq!(status("FOO_-BAR /x HTTP/1.1"), None);
        for bad in [
            "get / HTTP/1.1",
            "GET\t/ HTTP/1.1",
            "GET",
            "GET ",
            "GET /a\x01b HTTP/1.1",
            "GET /a\x7f HTTP/1.1",
            "GET * HTTP/1.1",
            "GET hab HTTP/1.1",
            "GET /\tHTTP/1.1",
            "GET / HTTP/1.1\rX",
            " GET / HTTP/1.1",
        ] {
            assert_eq!(status(bad), Some(400), "{bad:?}");
        }
    }

    #[test]
    fn partial_lines_fail_early() {
        fn partial(s: &str) -> Read<'_> {
            read(s.as_bytes(), false)
        }
        for fine in [
            "G",
            "GET",
            "GET ",
            "GET /a",
            "GET / HT",
            "GET / HTTP/1.1",
            "GET / HTTP/1.1\r",
            "GET http:/",
        ] {
            assert!(matches!(partial(fine), Read::Partial), "{fine}");
        }
        for bad in [
            "g",
            "\x16\x03\x01",
            "SSH-2.0",
            "GET / X",
            "GET /\x01",
            "GET / HTTP/0",
            "GET h@",
        ] {
            assert!(
                matches!(partial(bad), Read::Refused { status: 400, .. }),
                "{bad:?}"
            );
        }
    }
}
