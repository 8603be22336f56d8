//! The static site: a directory (or a built-in page) served as a stock
//! nginx serves its `root` (observed):
//!
//! - GET, HEAD and POST read the site; any other method is 405;
//! - a path ending in `/` serves the directory's `index.html` (POST: 405),
//!   or is 403 when the directory exists without one, 404 otherwise;
//! - a directory named without its slash is 301 to the path with it;
//! - a file is served (POST: 405); anything else is 404 (403 where the
//!   file system says "permission denied").
//!
//! Three safety rules of ours hide what a stock nginx would serve, and only
//! show with a site directory that has such entries:
//!
//! - hidden files and directories (a name starting with `.`) do not exist;
//! - a symlink whose target lies outside the root, or is hidden, does not
//!   exist;
//! - a file over [`MAX_FILE`] does not exist.

use std::fs::Metadata;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use tracing::debug;

use super::head::Method;

/// Largest file the site serves; a larger one is answered 404.
pub const MAX_FILE: u64 = 8 * 1024 * 1024;

/// The site directory is unusable, or the built-in page could not be written.
#[derive(Debug, thiserror::Error)]
#[error("decoy site {}: {source}", path.display())]
pub struct SiteError {
    /// The directory or file.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

/// The decoy website's files (see the module's documentation).
pub struct Site(Root);

enum Root {
    /// A directory, canonical.
    Dir(PathBuf),
    /// A built-in page in a private temporary directory.
    BuiltIn {
        page: &'static str,
        dir: Mutex<BuiltIn>,
    },
}

/// A private temporary directory (mode 0700, removed on drop) holding the
/// built-in page as `index.html`.
struct BuiltIn {
    _dir: tempfile::TempDir,
    /// The directory's canonical path.
    root: PathBuf,
}

impl BuiltIn {
    fn write(page: &str) -> Result<BuiltIn, SiteError> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("decoy-site-");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o700));
        }
        let dir = builder.tempdir().map_err(|source| SiteError {
            path: std::env::temp_dir(),
            source,
        })?;
        let file = dir.path().join("index.html");
        std::fs::write(&file, page).map_err(|source| SiteError { path: file, source })?;
        let root = std::fs::canonicalize(dir.path()).map_err(|source| SiteError {
            path: dir.path().to_owned(),
            source,
        })?;
        Ok(BuiltIn { _dir: dir, root })
    }
}

/// What a (decoded, normalised) path names inside the site.
#[derive(Debug)]
pub(super) enum Found {
    /// A servable regular file (canonical path).
    File(PathBuf, Metadata),
    Dir,
    /// Nothing, or something the safety rules hide.
    Absent,
    /// Not readable.
    Forbidden,
}

/// What the site answers for a request.
#[derive(Debug)]
pub(super) enum Answer {
    /// Send this file, named in the request by `uri` (whose extension
    /// picks its type).
    File {
        path: PathBuf,
        meta: Metadata,
        uri: Vec<u8>,
    },
    /// 301 to this (decoded) path: a directory named without its slash.
    Redirect(Vec<u8>),
    /// An error page.
    Status(u16),
}

impl Site {
    /// Files under `dir`.
    pub fn dir(dir: &Path) -> Result<Site, SiteError> {
        let error = |source| SiteError {
            path: dir.to_owned(),
            source,
        };
        let root = std::fs::canonicalize(dir).map_err(error)?;
        if !root.is_dir() {
            return Err(error(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                "not a directory",
            )));
        }
        Ok(Site(Root::Dir(root)))
    }

    /// `page` as `/index.html` (and so `/`), written to a fresh private
    /// temporary directory (under `$TMPDIR`) so that it gets the headers of
    /// any file, its `Last-Modified` being the moment it was written. The
    /// directory goes with the `Site`; a process killed outright leaves it
    /// to the system's temp cleaner.
    pub fn built_in(page: &'static str) -> Result<Site, SiteError> {
        Ok(Site(Root::BuiltIn {
            page,
            dir: Mutex::new(BuiltIn::write(page)?),
        }))
    }

    /// The site's root. The built-in page is written anew, to a fresh
    /// private directory, if something removed it (a `/tmp` cleaner after
    /// days without a visitor); never again to the old path, which another
    /// user could have taken meanwhile.
    pub async fn root(&self) -> PathBuf {
        let (page, cell) = match &self.0 {
            Root::Dir(root) => return root.clone(),
            Root::BuiltIn { page, dir } => (page, dir),
        };
        let lock = || cell.lock().unwrap_or_else(|p| p.into_inner());
        let current = lock().root.clone();
        if tokio::fs::metadata(current.join("index.html"))
            .await
            .is_ok()
        {
            return current;
        }
        let mut built_in = lock();
        if built_in.root == current {
            match BuiltIn::write(page) {
                Ok(fresh) => *built_in = fresh,
                Err(e) => debug!(error = %e, "cannot write the built-in page again"),
            }
        }
        built_in.root.clone()
    }

    /// What the (decoded, normalised) path `uri` names under the root,
    /// under the safety rules.
    pub(super) async fn lookup(&self, uri: &[u8]) -> Found {
        let root = self.root().await;
        let Some(rel) = uri.strip_prefix(b"/") else {
            return Found::Absent;
        };
        if rel
            .split(|&c| c == b'/')
            .any(|part| part.first() == Some(&b'.'))
        {
            return Found::Absent;
        }
        let mut path = root.clone().into_os_string();
        path.push("/");
        path.push(os_str(rel));
        let real = match tokio::fs::canonicalize(&path).await {
            Ok(real) => real,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Found::Forbidden,
            Err(_) => return Found::Absent,
        };
        let Ok(below) = real.strip_prefix(&root) else {
            return Found::Absent;
        };
        let visible = below.components().all(
            |c| matches!(c, Component::Normal(part) if !part.as_encoded_bytes().starts_with(b".")),
        );
        if !visible {
            return Found::Absent;
        }
        match tokio::fs::metadata(&real).await {
            Ok(meta) if meta.is_dir() => Found::Dir,
            Ok(meta) if meta.is_file() && meta.len() <= MAX_FILE => Found::File(real, meta),
            Ok(_) => Found::Absent,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Found::Forbidden,
            Err(_) => Found::Absent,
        }
    }

    /// The answer for `method` on `path` (see the module's documentation).
    pub(super) async fn answer(&self, method: Method, path: &[u8]) -> Answer {
        if !matches!(method, Method::Get | Method::Head | Method::Post) {
            return Answer::Status(405);
        }
        let (uri, found) = if path.ends_with(b"/") {
            let mut index = path.to_vec();
            index.extend_from_slice(b"index.html");
            match self.lookup(&index).await {
                Found::Absent => {
                    return match self.lookup(path).await {
                        Found::Dir | Found::Forbidden => Answer::Status(403),
                        _ => Answer::Status(404),
                    };
                }
                found => (index, found),
            }
        } else {
            (path.to_vec(), self.lookup(path).await)
        };
        match found {
            Found::File(..) if method == Method::Post => Answer::Status(405),
            Found::File(path, meta) => Answer::File { path, meta, uri },
            Found::Dir => {
                let mut with_slash = uri;
                with_slash.push(b'/');
                Answer::Redirect(with_slash)
            }
            Found::Forbidden => Answer::Status(403),
            Found::Absent => Answer::Status(404),
        }
    }
}

#[cfg(unix)]
fn os_str(bytes: &[u8]) -> &std::ffi::OsStr {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(bytes)
}

#[cfg(not(unix))]
fn os_str(bytes: &[u8]) -> std::ffi::OsString {
    String::from_utf8_lossy(bytes).into_owned().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(files: &[(&str, &str)]) -> (tempfile::TempDir, Site) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let site = Site::dir(dir.path()).unwrap();
        (dir, site)
    }

    async fn served(site: &Site, uri: &str) -> Option<String> {
        match site.lookup(uri.as_bytes()).await {
            Found::File(path, _) => Some(std::fs::read_to_string(path).unwrap()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn lookups_stay_inside() {
        let (dir, site) = site(&[
            ("index.html", "root"),
            ("a/b.css", "css"),
            ("sp ace.txt", "space"),
            (".git/config", "secret"),
            ("big.bin", ""),
        ]);
        std::fs::File::options()
            .write(true)
            .open(dir.path().join("big.bin"))
            .unwrap()
            .set_len(MAX_FILE + 1)
            .unwrap();
        assert_eq!(served(&site, "/index.html").await.as_deref(), Some("root"));
        assert_eq!(served(&site, "/a/b.css").await.as_deref(), Some("css"));
        assert_eq!(served(&site, "/sp ace.txt").await.as_deref(), Some("space"));
        assert!(matches!(site.lookup(b"/a").await, Found::Dir));
        assert!(matches!(site.lookup(b"/a/").await, Found::Dir));
        for bad in [
            "/.git/config",
            "/.git/",
            "/big.bin",
            "/nope",
            "/a/b.css/",
            "x",
        ] {
            assert!(
                matches!(site.lookup(bad.as_bytes()).await, Found::Absent),
                "{bad}"
            );
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn symlinks_may_not_lead_out_or_to_hidden_files() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "outside").unwrap();
        let (dir, site) = site(&[("page.html", "inside"), (".env", "hidden")]);
        let link = |target: &Path, name: &str| {
            std::os::unix::fs::symlink(target, dir.path().join(name)).unwrap()
        };
        link(&outside.path().join("secret"), "out-file");
        link(outside.path(), "out-dir");
        link(&dir.path().join(".env"), "env");
        link(&dir.path().join("page.html"), "alias.html");
        assert_eq!(
            served(&site, "/alias.html").await.as_deref(),
            Some("inside")
        );
        for bad in ["/out-file", "/out-dir/secret", "/out-dir/", "/env"] {
            assert!(
                matches!(site.lookup(bad.as_bytes()).await, Found::Absent),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn built_in_page_lives_in_a_private_dir_and_comes_back() {
        const PAGE: &str = "<p>hi</p>";
        let site = Site::built_in(PAGE).unwrap();
        let dir = site.root().await;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700);
        }
        assert_eq!(served(&site, "/index.html").await.as_deref(), Some(PAGE));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(served(&site, "/index.html").await.as_deref(), Some(PAGE));
        let fresh = site.root().await;
        assert_ne!(fresh, dir, "the page comes back in a new directory");
        assert!(!dir.exists());
        drop(site);
        assert!(!fresh.exists());
    }
}
