//! The queen's mount table: which cell answers a public request, as a plain
//! type (no I/O, no locks; the queen keeps it behind its own lock).
//!
//! The rules are the Go queen's (`srvhttps/mux.go`, `conf/conf.go`), kept
//! where a cell or a user could notice them:
//! - A mount is `host + path`. A request matches a mount of its host whose
//!   path equals its path, else the longest mount path ending in `/` that
//!   starts its path.
//! - The request's path is cleaned first (`.`/`..` and repeated slashes go,
//!   a trailing slash stays). A cleaned path that neither ends in `/` nor
//!   has a file extension in its last segment is answered with a 301 to the
//!   path plus `/`, whatever is mounted (so an exact mount of `/api` is never
//!   reached: the Go queen behaves the same). A path that cleaning changed is
//!   answered with a 301 to the cleaned path.
//! - The mounted path is replaced by `/` before the request goes to the cell:
//!   a mount of `/app/` turns `/app/x` into `/x`, an exact mount turns its
//!   path into `/`.
//! - The request's host loses its port, then goes through the aliases: by
//!   default `localhost`, `127.0.0.1`, `::1` and `::ffff:127.0.0.1` all
//!   become `@`, the host Go cells mount on for "this machine"; a fallback
//!   alias, when set, replaces every host that no alias names.
//!
//! Where we differ, on purpose (`docs/hlhv.md`): hosts compare without case;
//! a mount's host goes through the same aliases as a request's (without the
//! fallback), so a cell mounting `localhost` is reached by `127.0.0.1` too;
//! one cell holds one mount (a new Mount replaces its old one, where the Go
//! queen leaks the old one); `[::1]` loses its brackets.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::Hash;

/// The host the Go queen's default aliases lead to.
pub const LOCAL_HOST: &str = "@";

/// Host aliases, as the Go config's `alias a -> b`, `alias (fallback) -> x`
/// and `unalias a` lines set them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aliases {
    map: HashMap<String, String>,
    fallback: Option<String>,
}

impl Default for Aliases {
    /// The Go queen's defaults: the loopback names are one host, `@`.
    fn default() -> Self {
        let mut aliases = Aliases::none();
        for name in ["localhost", "127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            aliases.set(name, LOCAL_HOST);
        }
        aliases
    }
}

impl Aliases {
    /// No alias at all (not even the loopback ones).
    pub fn none() -> Aliases {
        Aliases {
            map: HashMap::new(),
            fallback: None,
        }
    }

    /// `alias from -> to`: requests for `from` go to mounts on `to`.
    pub fn set(&mut self, from: &str, to: &str) {
        self.map
            .insert(from.to_ascii_lowercase(), to.to_ascii_lowercase());
    }

    /// `unalias from`.
    pub fn remove(&mut self, from: &str) {
        self.map.remove(&from.to_ascii_lowercase());
    }

    /// `alias (fallback) -> to`: hosts no alias names go to `to`.
    pub fn set_fallback(&mut self, to: &str) {
        self.fallback = Some(to.to_ascii_lowercase());
    }

    /// The host a request for `host` (already without port) is matched as.
    /// One step only, as in Go: aliases do not chain.
    pub fn resolve_request(&self, host: &str) -> String {
        let host = host.to_ascii_lowercase();
        match (self.map.get(&host), &self.fallback) {
            (Some(to), _) => to.clone(),
            (None, Some(fallback)) => fallback.clone(),
            (None, None) => host,
        }
    }

    /// [`resolve_request`](Self::resolve_request), copying `host` only when
    /// it is not in lower case.
    pub fn resolve_request_borrowed<'a>(&'a self, host: &'a str) -> Cow<'a, str> {
        if host.bytes().any(|b| b.is_ascii_uppercase()) {
            return self.resolve_request(host).into();
        }
        match (self.map.get(host), &self.fallback) {
            (Some(to), _) => to.as_str().into(),
            (None, Some(fallback)) => fallback.as_str().into(),
            (None, None) => host.into(),
        }
    }

    /// The host a mount on `host` is stored under: the aliases apply, the
    /// fallback does not (it would put every mount on one host).
    pub fn resolve_mount(&self, host: &str) -> String {
        let host = host.to_ascii_lowercase();
        self.map.get(&host).cloned().unwrap_or(host)
    }
}

/// Why a Mount was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MountError {
    /// Another cell holds exactly this host and path.
    #[error("{pattern} is mounted by another cell")]
    Taken {
        /// `host + path` as stored.
        pattern: String,
    },
    /// The host is empty or holds a `/` (the Go queen refuses the first and
    /// panics on some of the second).
    #[error("mount host {0:?} is not a host name")]
    BadHost(String),
    /// The path does not start with `/`.
    #[error("mount path {0:?} does not start with /")]
    BadPath(String),
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<K> {
    /// Hand it to `cell`, with `path` (the mounted path replaced by `/`).
    Cell {
        /// The cell holding the matching mount.
        cell: K,
        /// The path the cell sees.
        path: String,
        /// The matching mount, `host + path`.
        pattern: String,
    },
    /// Answer 301 with this `Location` (path and query, no host).
    Redirect {
        /// The target.
        location: String,
    },
    /// Nothing is mounted there: 404.
    NotFound {
        /// The cleaned, decoded path (for the page).
        path: String,
    },
    /// A request target that is not a path (`*`, bad percent escapes): 400.
    BadRequest,
}

#[derive(Debug, Clone)]
struct HostMounts<K> {
    exact: HashMap<String, K>,
    /// Mount paths ending in `/`, longest first.
    prefixes: Vec<(String, K)>,
}

impl<K> Default for HostMounts<K> {
    fn default() -> Self {
        HostMounts {
            exact: HashMap::new(),
            prefixes: Vec::new(),
        }
    }
}

/// The mounts of every cell, keyed by the cell's id `K`.
#[derive(Debug, Clone)]
pub struct MountTable<K> {
    aliases: Aliases,
    hosts: HashMap<String, HostMounts<K>>,
    /// Each cell's one mount: (host as stored, path).
    by_cell: HashMap<K, (String, String)>,
}

impl<K: Clone + Eq + Hash> MountTable<K> {
    /// An empty table resolving hosts through `aliases`.
    pub fn new(aliases: Aliases) -> MountTable<K> {
        MountTable {
            aliases,
            hosts: HashMap::new(),
            by_cell: HashMap::new(),
        }
    }

    /// The aliases in force.
    pub fn aliases(&self) -> &Aliases {
        &self.aliases
    }

    /// Mounts currently held.
    pub fn len(&self) -> usize {
        self.by_cell.len()
    }

    /// Whether nothing is mounted.
    pub fn is_empty(&self) -> bool {
        self.by_cell.is_empty()
    }

    /// The mount `cell` holds, as `host + path`.
    pub fn mount_of(&self, cell: &K) -> Option<String> {
        self.by_cell.get(cell).map(|(h, p)| format!("{h}{p}"))
    }

    /// Mounts `host + path` for `cell`, replacing the cell's previous mount.
    /// On error the previous mount stays.
    pub fn mount(&mut self, cell: K, host: &str, path: &str) -> Result<String, MountError> {
        if host.is_empty() || host.contains('/') {
            return Err(MountError::BadHost(host.to_owned()));
        }
        if !path.starts_with('/') {
            return Err(MountError::BadPath(path.to_owned()));
        }
        let host = self.aliases.resolve_mount(host);
        let pattern = format!("{host}{path}");
        if let Some(holder) = self.hosts.get(&host).and_then(|m| m.exact.get(path))
            && *holder != cell
        {
            return Err(MountError::Taken { pattern });
        }
        self.unmount(&cell);
        let mounts = self.hosts.entry(host.clone()).or_default();
        mounts.exact.insert(path.to_owned(), cell.clone());
        if path.ends_with('/') {
            // Stable: among equal lengths the older mount stays first (they
            // cannot both match one path anyway).
            let at = mounts
                .prefixes
                .partition_point(|(p, _)| p.len() >= path.len());
            mounts.prefixes.insert(at, (path.to_owned(), cell.clone()));
        }
        self.by_cell.insert(cell, (host, path.to_owned()));
        Ok(pattern)
    }

    /// Removes `cell`'s mount; returns it as `host + path`.
    pub fn unmount(&mut self, cell: &K) -> Option<String> {
        let (host, path) = self.by_cell.remove(cell)?;
        if let Some(mounts) = self.hosts.get_mut(&host) {
            mounts.exact.remove(&path);
            mounts.prefixes.retain(|(p, _)| *p != path);
            if mounts.exact.is_empty() {
                self.hosts.remove(&host);
            }
        }
        Some(format!("{host}{path}"))
    }

    /// Routes a request for `host` (the `Host` header or `:authority`, port
    /// allowed), `raw_path` (percent-encoded, as on the request line) and
    /// `raw_query` (without `?`; kept as is in redirects).
    ///
    /// Every public request is routed: a path without escapes that is
    /// already clean, and a host in lower case, are used as they are
    /// instead of copied (the HLHV bench row, issue 14).
    pub fn route(&self, host: &str, raw_path: &str, raw_query: Option<&str>) -> Route<K> {
        let decoded: Cow<'_, str> = if raw_path.contains('%') {
            match decode_path(raw_path) {
                Some(decoded) => decoded.into(),
                None => return Route::BadRequest,
            }
        } else if raw_path.is_empty() || raw_path.starts_with('/') {
            raw_path.into()
        } else {
            return Route::BadRequest;
        };
        let host = self.aliases.resolve_request_borrowed(strip_port(host));
        let path: Cow<'_, str> = if is_clean(&decoded) {
            Cow::Borrowed(&decoded)
        } else {
            clean_path(&decoded).into()
        };
        let redirect = |to: &str| {
            let mut location = escape_path(to);
            if let Some(q) = raw_query.filter(|q| !q.is_empty()) {
                location.push('?');
                location.push_str(q);
            }
            Route::Redirect { location }
        };
        if !path.ends_with('/') && extension(&path).is_empty() {
            return redirect(&format!("{path}/"));
        }
        if path != decoded {
            return redirect(&path);
        }
        let Some(mounts) = self.hosts.get(&*host) else {
            return Route::NotFound {
                path: path.into_owned(),
            };
        };
        let found = mounts.exact.get_key_value(&*path).or_else(|| {
            mounts
                .prefixes
                .iter()
                .find(|(p, _)| path.starts_with(p.as_str()))
                .map(|(p, c)| (p, c))
        });
        match found {
            Some((mount_path, cell)) => Route::Cell {
                cell: cell.clone(),
                path: format!("/{}", &path[mount_path.len().min(path.len())..]),
                pattern: format!("{host}{mount_path}"),
            },
            None => Route::NotFound {
                path: path.into_owned(),
            },
        }
    }
}

/// Whether [`clean_path`] leaves `path` as it is: rooted, without empty,
/// `.` or `..` segments (a trailing slash allowed).
pub fn is_clean(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    rest.split('/').all(|part| !matches!(part, "" | "." | ".."))
}

/// `host` without a trailing `:port` and without IPv6 brackets. Like Go's
/// `stripHostPort`, a bare IPv6 address (several colons) stays whole.
pub fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return match rest.find(']') {
            Some(end) => &rest[..end],
            None => host,
        };
    }
    match host.split_once(':') {
        Some((name, port)) if !port.contains(':') => name,
        _ => host,
    }
}

/// The percent-decoded path; `None` for what Go's URL parser refuses (`*`
/// and other non-paths, a `%` without two hex digits). Bytes that are not
/// UTF-8 become U+FFFD, as Go's JSON encoder would send them to the cell.
pub fn decode_path(raw: &str) -> Option<String> {
    if !raw.is_empty() && !raw.starts_with('/') {
        return None;
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    )
}

/// Go's `cleanPath`: a rooted path without `.`, `..` or repeated slashes,
/// keeping a trailing slash; `""` becomes `/`.
pub fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    for part in &parts {
        out.push('/');
        out.push_str(part);
    }
    // path.Clean drops a trailing slash; cleanPath puts it back when the
    // input had one.
    if parts.is_empty() || path.ends_with('/') {
        out.push('/');
    }
    out
}

/// Go's `filepath.Ext`: from the last `.` of the last segment, or `""`.
pub fn extension(path: &str) -> &str {
    let last = path.rsplit('/').next().unwrap_or(path);
    last.rfind('.').map_or("", |i| &last[i..])
}

/// Go's path escaping for a URL (`url.URL{Path: p}.String()`): everything
/// but letters, digits, `-._~` and `$&+,/:;=@` is percent-encoded.
pub fn escape_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for &b in path.as_bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-._~$&+,/:;=@".contains(&b);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn table(mounts: &[(u32, &str, &str)]) -> MountTable<u32> {
        let mut t = MountTable::new(Aliases::default());
        for (cell, host, path) in mounts {
            t.mount(*cell, host, path).unwrap();
        }
        t
    }

    fn cell(r: Route<u32>) -> (u32, String) {
        match r {
            Route::Cell { cell, path, .. } => (cell, path),
            other => panic!("not routed to a cell: {other:?}"),
        }
    }

    #[test]
    fn exact_then_longest_prefix() {
        let t = table(&[
            (1, "demo.example", "/"),
            (2, "demo.example", "/a/"),
            (3, "demo.example", "/a/b/"),
            (4, "demo.example", "/a/file.txt"),
        ]);
        let r = |p: &str| cell(t.route("demo.example", p, None));
        assert_eq!(r("/a/b/c.png"), (3, "/c.png".into()));
        assert_eq!(r("/a/b/"), (3, "/".into()));
        assert_eq!(r("/a/x.html"), (2, "/x.html".into()));
        assert_eq!(r("/a/file.txt"), (4, "/".into()), "exact wins");
        assert_eq!(
            r("/ab/x.js"),
            (1, "/ab/x.js".into()),
            "/a/ is not a prefix of /ab/"
        );
        assert_eq!(
            t.route("other.example", "/x.js", None),
            Route::NotFound {
                path: "/x.js".into()
            }
        );
    }

    #[test]
    fn paths_without_slash_or_extension_are_redirected_first() {
        let t = table(&[(1, "h", "/api")]);
        assert_eq!(
            t.route("h", "/api", Some("a=1&b")),
            Route::Redirect {
                location: "/api/?a=1&b".into()
            },
            "even an exact mount: Go redirects before matching"
        );
        assert_eq!(
            t.route("h", "/a//b/../c", None),
            Route::Redirect {
                location: "/a/c/".into()
            }
        );
        assert_eq!(
            t.route("h", "/a/./x.js", Some("")),
            Route::Redirect {
                location: "/a/x.js".into()
            }
        );
        assert_eq!(
            t.route("h", "/sp%20ace", None),
            Route::Redirect {
                location: "/sp%20ace/".into()
            }
        );
        // "/foo." has an extension (".") for Go.
        assert!(matches!(
            t.route("h", "/foo.", None),
            Route::NotFound { .. }
        ));
        assert_eq!(t.route("h", "*", None), Route::BadRequest);
        assert_eq!(t.route("h", "/%zz/", None), Route::BadRequest);
        assert_eq!(t.route("h", "/%4", None), Route::BadRequest);
    }

    #[test]
    fn loopback_names_are_one_host_with_any_port_and_case() {
        let t = table(&[(7, "localhost", "/app/")]);
        for host in [
            "localhost",
            "LOCALHOST:8443",
            "127.0.0.1",
            "127.0.0.1:443",
            "::1",
            "[::1]:8443",
            "[::1]",
            "::ffff:127.0.0.1",
            "@",
        ] {
            assert_eq!(cell(t.route(host, "/app/x/", None)).0, 7, "{host}");
        }
        assert_eq!(t.mount_of(&7).as_deref(), Some("@/app/"));
        assert!(matches!(
            t.route("example.com", "/app/", None),
            Route::NotFound { .. }
        ));
    }

    #[test]
    fn configured_aliases_and_the_fallback() {
        let mut aliases = Aliases::default();
        aliases.set("www.demo.example", "demo.example");
        aliases.set_fallback("demo.example");
        aliases.remove("::1");
        let mut t = MountTable::new(aliases);
        t.mount(1, "demo.example", "/").unwrap();
        t.mount(2, "@", "/").unwrap();
        assert_eq!(cell(t.route("WWW.demo.example", "/", None)).0, 1);
        assert_eq!(cell(t.route("anything.example:1", "/", None)).0, 1);
        assert_eq!(cell(t.route("localhost", "/", None)).0, 2);
        assert_eq!(
            cell(t.route("::1", "/", None)).0,
            1,
            "unaliased, so the fallback applies"
        );
    }

    #[test]
    fn one_mount_per_cell_and_no_stealing() {
        let mut t = table(&[(1, "h", "/a/")]);
        assert_eq!(
            t.mount(2, "h", "/a/"),
            Err(MountError::Taken {
                pattern: "h/a/".into()
            })
        );
        assert_eq!(
            t.mount(1, "h", "/a/").unwrap(),
            "h/a/",
            "re-mounting is fine"
        );
        t.mount(1, "h", "/b/").unwrap();
        assert_eq!(t.len(), 1);
        assert!(matches!(t.route("h", "/a/", None), Route::NotFound { .. }));
        assert_eq!(cell(t.route("h", "/b/", None)).0, 1);
        t.mount(2, "h", "/a/").unwrap();
        assert_eq!(t.unmount(&1).as_deref(), Some("h/b/"));
        assert_eq!(t.unmount(&1), None);
        assert_eq!(cell(t.route("h", "/a/", None)).0, 2);
        assert_eq!(t.mount(3, "", "/"), Err(MountError::BadHost("".into())));
        assert_eq!(
            t.mount(3, "a/b", "/"),
            Err(MountError::BadHost("a/b".into()))
        );
        assert_eq!(t.mount(3, "h", "x/"), Err(MountError::BadPath("x/".into())));
    }

    #[test]
    fn go_path_helpers() {
        for (input, want) in [
            ("", "/"),
            ("/", "/"),
            ("a", "/a"),
            ("//a///b//", "/a/b/"),
            ("/a/../../b", "/b"),
            ("/a/b/..", "/a"),
            ("/a/b/../", "/a/"),
            ("/a/.", "/a"),
            ("/..", "/"),
        ] {
            assert_eq!(clean_path(input), want, "{input:?}");
        }
        assert_eq!(extension("/a.b/c"), "");
        assert_eq!(extension("/a/c.tar.gz"), ".gz");
        assert_eq!(escape_path("/a b/é?#%"), "/a%20b/%C3%A9%3F%23%25");
        assert_eq!(strip_port("Host:80"), "Host");
        assert_eq!(strip_port("::ffff:127.0.0.1"), "::ffff:127.0.0.1");
        assert_eq!(decode_path("/a%2Fb").as_deref(), Some("/a/b"));
    }

    /// The reference: every mount of the host, exact first, then the longest
    /// `/`-terminated path that starts the request's path.
    fn reference(mounts: &[(u32, String)], path: &str) -> Option<(u32, String)> {
        if let Some((c, _)) = mounts.iter().find(|(_, p)| p == path) {
            return Some((*c, "/".into()));
        }
        mounts
            .iter()
            .filter(|(_, p)| p.ends_with('/') && path.starts_with(p.as_str()))
            .max_by_key(|(_, p)| p.len())
            .map(|(c, p)| (*c, format!("/{}", &path[p.len()..])))
    }

    fn segment() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["a", "b", "ab", "x.js", ".", "..", ""]).prop_map(String::from)
    }

    fn path() -> impl Strategy<Value = String> {
        prop::collection::vec(segment(), 0..5).prop_map(|s| format!("/{}", s.join("/")))
    }

    proptest! {
        #[test]
        fn clean_paths_are_told_without_cleaning(
            request in prop_oneof![path(), "[/.a%]{0,10}"],
        ) {
            prop_assert_eq!(is_clean(&request), clean_path(&request) == request, "{}", request);
        }

        #[test]
        fn lower_case_hosts_resolve_alike_borrowed(
            host in prop_oneof![Just("localhost".to_owned()), Just("LocalHost".to_owned()), "[a-zA-Z.:]{0,8}"],
            fallback in any::<bool>(),
        ) {
            let mut aliases = Aliases::default();
            aliases.set("Www.Demo", "demo");
            if fallback {
                aliases.set_fallback("@");
            }
            prop_assert_eq!(
                aliases.resolve_request_borrowed(&host).into_owned(),
                aliases.resolve_request(&host)
            );
        }

        #[test]
        fn routing_matches_the_reference(
            mounts in prop::collection::vec(path(), 0..6),
            request in path(),
        ) {
            let mut t = MountTable::new(Aliases::default());
            let mut held = Vec::new();
            for (i, p) in mounts.iter().enumerate() {
                if t.mount(i as u32, "h", p).is_ok() {
                    held.push((i as u32, p.clone()));
                }
            }
            let cleaned = clean_path(&request);
            prop_assert!(cleaned.starts_with('/'));
            prop_assert!(!cleaned.contains("//"));
            prop_assert_eq!(clean_path(&cleaned), cleaned.clone(), "idempotent");
            match t.route("h:1", &request, None) {
                Route::Redirect { location } => {
                    let with_slash = format!("{}/", cleaned);
                    let ok = location == with_slash || (location == cleaned && cleaned != request);
                    prop_assert!(ok, "{} -> {}", request, location);
                }
                Route::Cell { cell, path, .. } => {
                    prop_assert_eq!(&cleaned, &request);
                    prop_assert_eq!(Some((cell, path)), reference(&held, &request));
                }
                Route::NotFound { .. } => {
                    prop_assert_eq!(reference(&held, &request), None);
                }
                Route::BadRequest => prop_assert!(false, "{request} is a path"),
            }
        }
    }
}
