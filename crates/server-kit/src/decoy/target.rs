//! Request targets and host names, by nginx's observed rules.
//!
//! A target is `/path[?args][#fragment]`, or an absolute URI
//! `scheme://host[:port][/path...]` whose host then names the site. The
//! path is percent-decoded first (`%2F` is a slash like any other; a bad
//! escape or `%00` is 400), then its empty and `.` segments go and `..`
//! takes one back (above the root: 400). The arguments stay as sent; the
//! fragment is dropped.
//!
//! A host (from `Host:` or an absolute URI) may not hold controls, spaces
//! or `/`, nor `..`; a trailing dot and the port go, and it is lower-cased.

use percent_encoding::{AsciiSet, CONTROLS, percent_decode, percent_encode};

/// A target that nginx takes.
#[derive(Debug, Clone, Default)]
pub(super) struct Target {
    /// The path as sent (an absolute URI's path part), before any `?`.
    pub raw_path: Vec<u8>,
    /// The path decoded and normalised: what the site looks up.
    pub decoded: Vec<u8>,
    /// The arguments as sent, when not empty.
    pub args: Option<Vec<u8>>,
    /// An absolute URI's host, checked and lower-cased.
    pub host: Option<Vec<u8>>,
}

/// The target or host is refused (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid request target or host")]
pub(super) struct Invalid;

/// Checks the shape of a target, or of its start when `whole` is false:
/// an origin form, or `scheme://` with a host of letters, digits, dots and
/// hyphens (or `[...]`), an optional numeric port, then `/`, `?` or the
/// end. Its bytes are already known to be visible.
pub(super) fn check_form(target: &[u8], whole: bool) -> Result<(), Invalid> {
    match target.first() {
        None | Some(b'/') => return Ok(()),
        Some(b) if b.is_ascii_alphabetic() => {}
        Some(_) => return Err(Invalid),
    }
    let end_ok = |rest: &[u8]| match rest.first() {
        None => Ok(()),
        Some(b'/' | b'?') => Ok(()),
        Some(_) => Err(Invalid),
    };
    // Out of bytes: the part so far is fine only if more may come.
    let short = if whole { Err(Invalid) } else { Ok(()) };
    let scheme = target
        .iter()
        .take_while(|&&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        .count();
    let rest = &target[scheme..];
    let sep = rest.len().min(3);
    if rest[..sep] != b"://"[..sep] {
        return Err(Invalid);
    }
    if rest.len() < 3 {
        return short;
    }
    let authority = &rest[3..];
    let after_host = if authority.first() == Some(&b'[') {
        match authority.iter().position(|&b| b == b']') {
            Some(close) => &authority[close + 1..],
            None => return short,
        }
    } else {
        let len = authority
            .iter()
            .take_while(|&&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
            .count();
        if len == 0 {
            return if authority.is_empty() {
                short
            } else {
                Err(Invalid)
            };
        }
        &authority[len..]
    };
    match after_host.strip_prefix(b":") {
        Some(port) => {
            let digits = port.iter().take_while(|b| b.is_ascii_digit()).count();
            end_ok(&port[digits..])
        }
        None => end_ok(after_host),
    }
}

/// Whether an absolute URI ends with its host (or port): no path, no
/// arguments.
pub(super) fn is_authority_only(target: &[u8]) -> bool {
    target.first() != Some(&b'/')
        && target
            .windows(3)
            .position(|w| w == b"://")
            .is_some_and(|at| !target[at + 3..].iter().any(|&b| b == b'/' || b == b'?'))
}

impl Target {
    /// Takes a whole target apart (its form already checked).
    pub fn parse(target: &[u8]) -> Result<Target, Invalid> {
        let (host, rest) = if target.first() == Some(&b'/') {
            (None, target)
        } else {
            let authority =
                &target[target.windows(3).position(|w| w == b"://").ok_or(Invalid)? + 3..];
            let end = authority
                .iter()
                .position(|&b| b == b'/' || b == b'?')
                .unwrap_or(authority.len());
            (Some(host(&authority[..end])?), &authority[end..])
        };
        let path_end = rest
            .iter()
            .position(|&b| b == b'?' || b == b'#')
            .unwrap_or(rest.len());
        let args = (rest.get(path_end) == Some(&b'?'))
            .then(|| {
                let args = &rest[path_end + 1..];
                &args[..args.iter().position(|&b| b == b'#').unwrap_or(args.len())]
            })
            .filter(|args| !args.is_empty())
            .map(<[u8]>::to_vec);
        let or_root = |path: &[u8]| {
            if path.is_empty() {
                b"/".to_vec()
            } else {
                path.to_vec()
            }
        };
        let raw_path = &rest[..rest.iter().position(|&b| b == b'?').unwrap_or(rest.len())];
        Ok(Target {
            raw_path: or_root(raw_path),
            decoded: normalize(&decode(&or_root(&rest[..path_end]))?)?,
            args,
            host,
        })
    }

    /// The extension that picks the `Content-Type` of the file `path`
    /// names (after its last dot, if its last segment has one).
    pub fn extension(path: &[u8]) -> &[u8] {
        let name = &path[path.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1)..];
        name.iter()
            .rposition(|&b| b == b'.')
            .map_or(&[][..], |dot| &name[dot + 1..])
    }
}

/// Percent-decodes a path: every `%` must start two hex digits, and none
/// may decode to NUL.
fn decode(raw: &[u8]) -> Result<Vec<u8>, Invalid> {
    for (i, _) in raw.iter().enumerate().filter(|(_, b)| **b == b'%') {
        match raw.get(i + 1..i + 3) {
            Some(hex) if hex.iter().all(u8::is_ascii_hexdigit) && hex != b"00" => {}
            _ => return Err(Invalid),
        }
    }
    Ok(percent_decode(raw).collect())
}

/// Merges slashes and resolves `.` and `..` segments of a decoded path;
/// a path ending in such a segment (or a slash) names a directory.
fn normalize(path: &[u8]) -> Result<Vec<u8>, Invalid> {
    let mut kept: Vec<&[u8]> = Vec::new();
    let mut dir = false;
    for segment in path.split(|&b| b == b'/').skip(1) {
        dir = true;
        match segment {
            b"" | b"." => {}
            b".." => {
                kept.pop().ok_or(Invalid)?;
            }
            name => {
                kept.push(name);
                dir = false;
            }
        }
    }
    let mut out = Vec::with_capacity(path.len());
    for name in &kept {
        out.push(b'/');
        out.extend_from_slice(name);
    }
    if dir || kept.is_empty() {
        out.push(b'/');
    }
    Ok(out)
}

/// A host as nginx takes it (`Host:`, or an absolute URI's).
pub(super) fn host(value: &[u8]) -> Result<Vec<u8>, Invalid> {
    if value.iter().any(|&b| b <= b' ' || b == 0x7f || b == b'/') {
        return Err(Invalid);
    }
    let name = if value.first() == Some(&b'[') {
        &value[..value
            .iter()
            .position(|&b| b == b']')
            .map_or(value.len(), |i| i + 1)]
    } else {
        &value[..value.iter().position(|&b| b == b':').unwrap_or(value.len())]
    };
    if name.windows(2).any(|w| w == b"..") {
        return Err(Invalid);
    }
    let name = name.strip_suffix(b".").unwrap_or(name);
    if name.is_empty() {
        return Err(Invalid);
    }
    Ok(name.to_ascii_lowercase())
}

/// What nginx escapes in a path it sends back in a `Location`.
const LOCATION: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// A decoded path, escaped for a `Location`.
pub(super) fn escape_path(path: &[u8]) -> String {
    percent_encode(path, LOCATION).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(target: &str) -> Result<String, Invalid> {
        Target::parse(target.as_bytes()).map(|t| String::from_utf8(t.decoded).unwrap())
    }

    #[test]
    fn paths_are_decoded_then_normalised() {
        for (target, want) in [
            ("/", "/"),
            ("/sub/..", "/"),
            ("/sub/.", "/sub/"),
            ("/sub/.%2e/style.css", "/style.css"),
            ("/sub%2f%2e%2e%2fstyle.css", "/style.css"),
            ("//style.css", "/style.css"),
            ("/sub//x/", "/sub/x/"),
            ("/sub/...", "/sub/..."),
            ("/a+b", "/a+b"),
            ("/s%75b?x=%zz#y", "/sub"),
            ("/style.css#top", "/style.css"),
            ("/style.css%3f", "/style.css?"),
            ("http://Host/x", "/x"),
            ("http://host", "/"),
            ("http://host?x", "/"),
        ] {
            assert_eq!(path(target).as_deref(), Ok(want), "{target}");
        }
        for bad in [
            "/..",
            "/../",
            "/sub/../..",
            "/%2e%2e/x",
            "/a%zz",
            "/a%2",
            "/a%00",
            "http://a..b/",
        ] {
            assert_eq!(path(bad), Err(Invalid), "{bad}");
        }
    }

    #[test]
    fn arguments_and_raw_paths() {
        let t = Target::parse(b"/sp%20dir?\xe9=1#x").unwrap();
        assert_eq!(t.args.as_deref(), Some(&b"\xe9=1"[..]));
        assert_eq!(t.raw_path, b"/sp%20dir");
        assert_eq!(Target::parse(b"/x?#y").unwrap().args, None);
        let t = Target::parse(b"http://[::1]:8080/ws?a").unwrap();
        assert_eq!(t.host.as_deref(), Some(&b"[::1]"[..]));
        assert_eq!(t.raw_path, b"/ws");
        assert_eq!(Target::extension(b"/a.b/style.CSS"), b"CSS");
        assert_eq!(Target::extension(b"/a.b/noext"), b"");
    }

    #[test]
    fn forms() {
        for fine in [
            "/x",
            "http://a",
            "h2://a-b.c:80/x",
            "HTTP://[::1]:8/",
            "http://a?x",
        ] {
            assert_eq!(check_form(fine.as_bytes(), true), Ok(()), "{fine}");
        }
        for bad in [
            "*",
            "1h://a/",
            "http:/a",
            "http:a",
            "http:///x",
            "http://:80/",
            "http://a_b/",
            "http://a:8x/",
            "http://[::1]x/",
            "http://[::1",
            "localhost:443",
        ] {
            assert_eq!(check_form(bad.as_bytes(), true), Err(Invalid), "{bad}");
        }
        assert_eq!(check_form(b"http://[::1", false), Ok(()));
    }

    #[test]
    fn hosts() {
        let ok = |h: &str| String::from_utf8(host(h.as_bytes()).unwrap()).unwrap();
        assert_eq!(ok("Ev!L.Example.:99999"), "ev!l.example");
        assert_eq!(ok("[::1]:8080"), "[::1]");
        assert_eq!(ok("x:"), "x");
        assert_eq!(ok(".x"), ".x");
        for bad in [
            "", ".", "..", "x..", "a..b", ":80", "a/b", "a b", "a\tb", "x:a/b",
        ] {
            assert_eq!(host(bad.as_bytes()), Err(Invalid), "{bad:?}");
        }
    }

    #[test]
    fn locations_escape_like_nginx() {
        assert_eq!(escape_path(b"/sp dir/\xe9?#%"), "/sp%20dir/%E9%3F%23%25");
        assert_eq!(
            escape_path(b"/a-b_c.d~!$&'()*+,;=:@[]"),
            "/a-b_c.d~!$&'()*+,;=:@[]"
        );
    }
}
