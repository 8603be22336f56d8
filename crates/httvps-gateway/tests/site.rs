//! The decoy website through a real in-process gateway: a client that is not
//! in the know should meet an ordinary static web server (HEAD, ranges,
//! validators, 404/405, no way out of the site's directory). What nginx
//! answers, byte for byte, is `decoy_nginx.rs`'s business; these check the
//! site's own rules with a client library.
//!
//! Well-behaved requests go through reqwest; the ones a real client would
//! normalise away (`..`, odd methods) are written by hand over TLS.

mod util;

use std::path::Path;

use headers::{HeaderMapExt, LastModified};
use httvps_gateway::SiteSource;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use util::{TestGateway, start_gateway, tokens};

async fn built_in() -> TestGateway {
    start_gateway(tokens(&["tok"]), |_| {}).await
}

async fn with_dir(dir: &Path) -> TestGateway {
    let dir = dir.to_owned();
    start_gateway(tokens(&["tok"]), |c| c.site = SiteSource::Dir(dir)).await
}

/// A client that trusts the test certificate and reports redirects as they are.
fn client(gw: &TestGateway) -> reqwest::Client {
    testkit::install_crypto_provider();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_der(&gw.cert.cert_der).unwrap()])
        .redirect(reqwest::redirect::Policy::none())
        .timeout(util::WAIT)
        .build()
        .unwrap()
}

fn url(gw: &TestGateway, path: &str) -> String {
    format!("https://localhost:{}{path}", gw.addr().port())
}

/// Sends `request` as written and returns everything the gateway answered.
async fn raw(gw: &TestGateway, request: &str) -> String {
    let mut tls = util::tls_connect(gw.addr(), &gw.cert).await;
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(util::WAIT, tls.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
}

fn text(h: &HeaderMap, name: header::HeaderName) -> &str {
    h.get(&name)
        .unwrap_or_else(|| panic!("no {name} in {h:?}"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn other_paths_look_like_a_plain_website() {
    let gw = built_in().await;
    let root = raw(&gw, &get("/")).await;
    assert!(root.starts_with("HTTP/1.1 200"), "{root}");
    assert!(
        root.to_ascii_lowercase().contains("server: nginx"),
        "{root}"
    );
    assert!(root.contains("<html"), "{root}");
    for path in ["/admin", "/ws"] {
        let r = raw(&gw, &get(path)).await;
        assert!(r.starts_with("HTTP/1.1 404"), "{path}: {r}");
        assert!(r.contains("<center>nginx</center>"), "{path}: {r}");
    }
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let r = raw(
            &gw,
            &format!(
                "{method} / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ),
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 405 Not Allowed"), "{method}: {r}");
        assert!(
            !r.to_ascii_lowercase().contains("allow:"),
            "nginx sends none: {r}"
        );
    }

    // A site directory replaces the built-in page.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<html>my site</html>").unwrap();
    let gw = with_dir(dir.path()).await;
    let root = raw(&gw, &get("/")).await;
    assert!(root.contains("my site"), "{root}");
}

#[tokio::test]
async fn built_in_page_has_the_headers_of_a_file() {
    let started = std::time::SystemTime::now();
    let gw = built_in().await;
    let c = client(&gw);
    let page = c.get(url(&gw, "/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let h = page.headers().clone();
    let body = page.text().await.unwrap();
    assert!(body.contains("<title>Welcome</title>"), "{body}");
    assert_eq!(text(&h, header::SERVER), "nginx");
    assert_eq!(text(&h, header::CONTENT_TYPE), "text/html");
    assert_eq!(text(&h, header::ACCEPT_RANGES), "bytes");
    assert_eq!(text(&h, header::CONTENT_LENGTH), body.len().to_string());
    let modified = std::time::SystemTime::from(h.typed_get::<LastModified>().unwrap());
    let drift = started
        .duration_since(modified)
        .unwrap_or_default()
        .as_secs();
    assert!(drift <= 1, "Last-Modified is not the start time");
    let etag = text(&h, header::ETAG).to_owned();
    assert!(etag.starts_with('"') && etag.ends_with(&format!("-{:x}\"", body.len())));

    // The same page by name, by HEAD, by range and conditionally.
    let same = c.get(url(&gw, "/index.html")).send().await.unwrap();
    assert_eq!(text(same.headers(), header::ETAG), etag);
    let head = c.head(url(&gw, "/")).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(text(head.headers(), header::ETAG), etag);
    assert_eq!(
        text(head.headers(), header::CONTENT_LENGTH),
        body.len().to_string()
    );
    assert!(head.bytes().await.unwrap().is_empty());
    let part = c
        .get(url(&gw, "/"))
        .header(header::RANGE, "bytes=0-14")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.text().await.unwrap(), &body[..15]);
    let cached = c
        .get(url(&gw, "/"))
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn files_answer_head_ranges_and_conditionals() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    std::fs::write(dir.path().join("data.bin"), &data).unwrap();
    std::fs::write(dir.path().join("style.css"), "body{}").unwrap();
    let gw = with_dir(dir.path()).await;
    let c = client(&gw);
    let file = url(&gw, "/data.bin");

    let full = c.get(&file).send().await.unwrap();
    assert_eq!(full.status(), StatusCode::OK);
    let h = full.headers().clone();
    assert_eq!(full.bytes().await.unwrap(), data);
    assert_eq!(text(&h, header::CONTENT_TYPE), "application/octet-stream");
    let etag = text(&h, header::ETAG).to_owned();
    let last_modified = text(&h, header::LAST_MODIFIED).to_owned();
    let css = c.get(url(&gw, "/style.css")).send().await.unwrap();
    assert_eq!(text(css.headers(), header::CONTENT_TYPE), "text/css");

    // HEAD: the headers of GET, no body.
    let head = c.head(&file).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(text(head.headers(), header::CONTENT_LENGTH), "1000");
    assert_eq!(text(head.headers(), header::ETAG), etag);
    assert_eq!(text(head.headers(), header::SERVER), "nginx");
    assert!(head.bytes().await.unwrap().is_empty());

    // Range: 206 with Content-Range, for a span, an open end and a suffix.
    for (range, span, start, len) in [
        ("bytes=10-19", "bytes 10-19/1000", 10, 10),
        ("bytes=990-", "bytes 990-999/1000", 990, 10),
        ("bytes=-5", "bytes 995-999/1000", 995, 5),
    ] {
        let part = c
            .get(&file)
            .header(header::RANGE, range)
            .send()
            .await
            .unwrap();
        assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(text(part.headers(), header::CONTENT_RANGE), span);
        assert_eq!(text(part.headers(), header::ETAG), etag);
        assert_eq!(
            part.bytes().await.unwrap(),
            data[start..start + len],
            "{range}"
        );
    }

    // Past the end: 416 with the size.
    let beyond = c
        .get(&file)
        .header(header::RANGE, "bytes=5000-6000")
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        text(beyond.headers(), header::CONTENT_RANGE),
        "bytes */1000"
    );
    assert_eq!(text(beyond.headers(), header::SERVER), "nginx");

    // If-Range with the current tag honours the range; a stale one gets it all.
    let fresh = c
        .get(&file)
        .header(header::RANGE, "bytes=0-9")
        .header(header::IF_RANGE, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), StatusCode::PARTIAL_CONTENT);
    let stale = c
        .get(&file)
        .header(header::RANGE, "bytes=0-9")
        .header(header::IF_RANGE, "\"0-0\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::OK);
    assert_eq!(stale.bytes().await.unwrap().len(), 1000);

    // Validators: a matching tag or date is 304; a different tag wins over a date.
    let weak_in_list = format!("\"x\", W/{etag}");
    for (name, value) in [
        (header::IF_NONE_MATCH, etag.as_str()),
        (header::IF_NONE_MATCH, weak_in_list.as_str()),
        (header::IF_NONE_MATCH, "*"),
        (header::IF_MODIFIED_SINCE, last_modified.as_str()),
    ] {
        let r = c.get(&file).header(&name, value).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "{name}: {value}");
        assert_eq!(text(r.headers(), header::ETAG), etag);
        assert_eq!(text(r.headers(), header::LAST_MODIFIED), last_modified);
        assert!(r.bytes().await.unwrap().is_empty());
    }
    let changed = c
        .get(&file)
        .header(header::IF_NONE_MATCH, "\"other\"")
        .header(header::IF_MODIFIED_SINCE, &last_modified)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    let older = c
        .get(&file)
        .header(header::IF_MODIFIED_SINCE, "Mon, 01 Jan 2001 00:00:00 GMT")
        .send()
        .await
        .unwrap();
    assert_eq!(older.status(), StatusCode::OK);

    // A rewritten file gets a new tag.
    std::fs::write(dir.path().join("data.bin"), b"short").unwrap();
    let rewritten = c
        .get(&file)
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(rewritten.status(), StatusCode::OK);
    assert_ne!(text(rewritten.headers(), header::ETAG), etag);
    assert_eq!(rewritten.bytes().await.unwrap().as_ref(), b"short");
}

#[tokio::test]
async fn directories_serve_index_and_redirect_like_a_server() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("docs")).unwrap();
    std::fs::write(dir.path().join("docs/index.html"), "<p>docs</p>").unwrap();
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    let gw = with_dir(dir.path()).await;
    let c = client(&gw);
    let r = c.get(url(&gw, "/docs/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "<p>docs</p>");
    let r = c.get(url(&gw, "/docs?x=1")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
    // Absolute, with the request's host and the listening port, as nginx.
    assert_eq!(text(r.headers(), header::LOCATION), url(&gw, "/docs/?x=1"));
    // A directory without an index is "forbidden", as nginx has it...
    let r = c.get(url(&gw, "/empty/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        c.get(url(&gw, "/")).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    // ...and one that does not exist is not found.
    let r = c.get(url(&gw, "/nope/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn nothing_outside_the_site_is_reachable() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "top secret").unwrap();
    let site = outside.path().join("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(site.join("index.html"), "public").unwrap();
    std::fs::write(site.join(".htpasswd"), "admin:hash").unwrap();
    std::fs::write(site.join("huge.bin"), "").unwrap();
    std::fs::File::options()
        .write(true)
        .open(site.join("huge.bin"))
        .unwrap()
        .set_len(64 * 1024 * 1024)
        .unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(outside.path().join("secret.txt"), site.join("link.txt"))
            .unwrap();
        std::os::unix::fs::symlink(outside.path(), site.join("up")).unwrap();
    }
    let gw = with_dir(&site).await;
    // Above the root: nginx refuses the request itself.
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/x/../../secret.txt",
        "/./../secret.txt",
    ] {
        let r = raw(&gw, &get(path)).await;
        assert!(r.starts_with("HTTP/1.1 400 Bad Request"), "{path}: {r}");
        assert!(!r.contains("top secret"), "{path}: {r}");
    }
    // Inside it, what the site's rules hide does not exist (where nginx
    // would serve hidden files, large files and symlinks leading out).
    for path in [
        "/..%5csecret.txt",
        "/.htpasswd",
        "/%2ehtpasswd",
        "/huge.bin",
        "/link.txt",
        "/up/secret.txt",
        "/up/",
    ] {
        let r = raw(&gw, &get(path)).await;
        assert!(r.starts_with("HTTP/1.1 404"), "{path}: {r}");
        assert!(
            !r.contains("top secret") && !r.contains("admin:"),
            "{path}: {r}"
        );
    }
    let r = raw(&gw, &get("/")).await;
    assert!(
        r.starts_with("HTTP/1.1 200") && r.ends_with("public"),
        "{r}"
    );
}
