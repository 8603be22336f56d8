//! Answers as nginx words them: the header names, their case and their
//! order (`Server`, `Date`, `Content-Type`, `Content-Length`,
//! `Last-Modified`, `Location`, `Connection`, then `ETag` and
//! `Accept-Ranges` or `Content-Range`), and what goes into a file's answer:
//! 200, 206 (one range, or `multipart/byteranges`), 304, 412 or 416.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use super::head::Request;
use super::pages::{self, Status};
use super::ranges::{self, Plan};
use super::validators::{self, Verdict};
use super::{dates, mime};

/// The interim answer to `Expect: 100-continue`.
pub(super) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A part of an answer's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Piece {
    Bytes(Vec<u8>),
    /// Bytes `start..end` of the answer's file.
    File {
        start: u64,
        end: u64,
    },
}

/// An answer.
#[derive(Debug, Default)]
pub(super) struct Reply {
    pub status: Option<Status>,
    content_type: Option<String>,
    content_length: Option<u64>,
    /// Seconds since the epoch.
    last_modified: Option<u64>,
    location: Option<Vec<u8>>,
    etag: Option<String>,
    accept_ranges: bool,
    content_range: Option<String>,
    /// The file that [`Piece::File`] reads.
    pub file: Option<PathBuf>,
    pub body: Vec<Piece>,
}

/// Multipart boundaries: a counter, written as 20 digits.
static BOUNDARY: AtomicU64 = AtomicU64::new(1);

impl Reply {
    /// nginx's page for `status`.
    pub fn page(status: Status, padding: bool) -> Reply {
        let page = pages::page(status, padding);
        Reply {
            status: Some(status),
            content_type: Some("text/html".into()),
            content_length: Some(page.len() as u64),
            body: vec![Piece::Bytes(page.into_bytes())],
            ..Reply::default()
        }
    }

    /// 301 to `location` (absolute).
    pub fn redirect(location: Vec<u8>, padding: bool) -> Reply {
        Reply {
            location: Some(location),
            ..Reply::page(301.into(), padding)
        }
    }

    /// The answer for a file (`len` bytes, modified at `mtime`, named in
    /// the request by `uri`) after the request's conditions and range.
    pub fn file(req: &Request, path: PathBuf, len: u64, mtime: u64, uri: &[u8]) -> Reply {
        let etag = validators::etag(mtime, len);
        let content_type = mime::content_type(super::target::Target::extension(uri));
        let once = &req.fields.once;
        let validated = Reply {
            last_modified: Some(mtime),
            etag: Some(etag.clone()),
            file: Some(path),
            ..Reply::default()
        };
        match validators::check(once, &etag, mtime) {
            Verdict::PreconditionFailed => return Reply::page(412.into(), req.fields.padding),
            Verdict::NotModified => {
                return Reply {
                    status: Some(304.into()),
                    ..validated
                };
            }
            Verdict::Send => {}
        }
        let plan = match &req.fields.range {
            Some(range) if validators::range_applies(once.if_range.as_deref(), &etag, mtime) => {
                ranges::plan(range, len)
            }
            _ => Plan::Whole,
        };
        match plan {
            Plan::Whole => Reply {
                status: Some(200.into()),
                content_type: Some(content_type.into()),
                content_length: Some(len),
                accept_ranges: true,
                body: vec![Piece::File { start: 0, end: len }],
                ..validated
            },
            Plan::Unsatisfiable => Reply {
                content_range: Some(format!("bytes */{len}")),
                ..Reply::page(416.into(), req.fields.padding)
            },
            Plan::Ranges(list) if list.len() == 1 => {
                let (first, last) = list[0];
                Reply {
                    status: Some(206.into()),
                    content_type: Some(content_type.into()),
                    content_length: Some(last - first + 1),
                    content_range: Some(format!("bytes {first}-{last}/{len}")),
                    body: vec![Piece::File {
                        start: first,
                        end: last + 1,
                    }],
                    ..validated
                }
            }
            Plan::Ranges(list) => {
                let boundary = format!("{:020}", BOUNDARY.fetch_add(1, Ordering::Relaxed));
                let mut body = Vec::with_capacity(list.len() * 2 + 1);
                for (first, last) in list {
                    body.push(Piece::Bytes(
                        format!("\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: bytes {first}-{last}/{len}\r\n\r\n")
                            .into_bytes(),
                    ));
                    body.push(Piece::File {
                        start: first,
                        end: last + 1,
                    });
                }
                body.push(Piece::Bytes(format!("\r\n--{boundary}--\r\n").into_bytes()));
                let length = body
                    .iter()
                    .map(|piece| match piece {
                        Piece::Bytes(bytes) => bytes.len() as u64,
                        Piece::File { start, end } => end - start,
                    })
                    .sum();
                Reply {
                    status: Some(206.into()),
                    content_type: Some(format!("multipart/byteranges; boundary={boundary}")),
                    content_length: Some(length),
                    body,
                    ..validated
                }
            }
        }
    }

    pub fn status(&self) -> Status {
        self.status.unwrap_or(Status::Code(200))
    }

    /// The head, `Connection` saying `keep_alive`.
    pub fn head(&self, keep_alive: bool) -> Vec<u8> {
        let code = self.status().code();
        let mut head = match pages::reason(code) {
            Some(reason) => format!("HTTP/1.1 {code} {reason}\r\n"),
            None => format!("HTTP/1.1 {code} \r\n"),
        }
        .into_bytes();
        let mut field = |name: &str, value: &[u8]| {
            head.extend_from_slice(name.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value);
            head.extend_from_slice(b"\r\n");
        };
        field("Server", b"nginx");
        field("Date", dates::now().as_bytes());
        if let Some(content_type) = &self.content_type {
            field("Content-Type", content_type.as_bytes());
        }
        if let Some(length) = self.content_length {
            field("Content-Length", length.to_string().as_bytes());
        }
        if let Some(mtime) = self.last_modified {
            field("Last-Modified", dates::format(mtime).as_bytes());
        }
        if let Some(location) = &self.location {
            field("Location", location);
        }
        field(
            "Connection",
            if keep_alive { b"keep-alive" } else { b"close" },
        );
        if let Some(etag) = &self.etag {
            field("ETag", etag.as_bytes());
        }
        if self.accept_ranges {
            field("Accept-Ranges", b"bytes");
        }
        if let Some(range) = &self.content_range {
            field("Content-Range", range.as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(head: &[u8]) -> Vec<String> {
        String::from_utf8_lossy(head)
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':').map(|(n, _)| n.to_owned()))
            .collect()
    }

    #[test]
    fn files_in_nginx_order() {
        let mut req = Request::default();
        let reply = Reply::file(&req, "/x".into(), 15, 0, b"/style.css");
        let head = reply.head(true);
        assert!(head.starts_with(b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: "));
        assert_eq!(
            names(&head),
            [
                "Server",
                "Date",
                "Content-Type",
                "Content-Length",
                "Last-Modified",
                "Connection",
                "ETag",
                "Accept-Ranges"
            ]
        );
        let text = String::from_utf8(head).unwrap();
        assert!(text.contains("\r\nContent-Type: text/css\r\nContent-Length: 15\r\nLast-Modified: Thu, 01 Jan 1970 00:00:00 GMT\r\nConnection: keep-alive\r\nETag: \"0-f\"\r\n"), "{text}");
        req.fields.range = Some(b"bytes=0-1,3-4".to_vec());
        let reply = Reply::file(&req, "/x".into(), 15, 0, b"/style.css");
        assert_eq!(reply.content_length, Some(194));
        assert_eq!(
            names(&reply.head(true)),
            [
                "Server",
                "Date",
                "Content-Type",
                "Content-Length",
                "Last-Modified",
                "Connection",
                "ETag"
            ]
        );
    }

    #[test]
    fn pages() {
        let reply = Reply::redirect(b"https://x/sub/".to_vec(), false);
        assert_eq!(
            names(&reply.head(false)),
            [
                "Server",
                "Date",
                "Content-Type",
                "Content-Length",
                "Location",
                "Connection"
            ]
        );
        assert!(
            Reply::page(Status::HeaderTooLarge, false)
                .head(false)
                .starts_with(b"HTTP/1.1 400 Bad Request\r\n")
        );
    }
}
