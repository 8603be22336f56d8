//! The decoy website: whatever a prober sends, our servers answer as a
//! stock Debian nginx (1.22, `server_tokens off`, `http2` off) serving a
//! static directory does: the same status, the same header names in the
//! same order and case, the same error pages, the same decision to keep or
//! close the connection.
//!
//! [`serve`] runs a connection (plain or TLS) until it ends or the caller
//! *claims* a request (the tunnel's WebSocket upgrade, say): it then hands
//! back the connection with the claimed request's bytes still unread
//! ([`Rewind`]), for another HTTP stack to take it from there. Every other
//! request, however broken, gets nginx's answer.
//!
//! Why not hyper (or any HTTP library) with nginx's pages: a prober
//! measures the edges, and those are a server's own. hyper refuses a head
//! over 100 header lines with 431 (nginx: 200), answers malformed input
//! with a bare 400 of its own, lower-cases or reorders header names, has
//! no HTTP/0.9, and draws its size limits elsewhere than nginx does.
//!
//! So this is a small HTTP/1 server of our own, designed from nginx's
//! observed behaviour: `tests/decoy_nginx.rs` in the gateway sends the
//! same raw requests to it and to a real nginx and compares the answers.
//! Each module states the facts it follows:
//!
//! - `window`: how much of a head nginx holds, so where 414 and "400
//!   Request Header Or Cookie Too Large" fall;
//! - `line`, `target`, `fields`: the request line, the target (with
//!   percent-decoding and `.`/`..`/`//` normalisation), hosts and header
//!   lines; `head` reads a head with them, line by line as bytes come;
//! - `body`: dropping request bodies (`Content-Length`, chunked);
//! - `site`, `validators`, `ranges`, `dates`: what a static root
//!   answers (index, 301, 403, 404, 405; `ETag`, conditional requests,
//!   304, 412; `Range`, 206, multipart, 416);
//! - `pages`, `reply`, `mime`: status lines, error pages, header
//!   order, Debian's `mime.types`;
//! - `conn`: keep-alive, pipelining, `100 Continue`, and how a
//!   connection closes.
//!
//! What differs from nginx, on purpose or by necessity:
//! - the site hides hidden files, symlinks leading out of it and files over
//!   8 MiB ([`Site`]); nginx would serve them;
//! - timeouts are the caller's ([`Options`]), not nginx's 60 s / 75 s;
//! - the multipart boundary counts per process, where nginx's counts per
//!   worker and also for its temporary files;
//! - no gzip, no HTTP/2 (a stock Debian nginx has `gzip on` for
//!   `text/html`, and HTTP/2 only where `listen ... http2` says so);
//! - bytes are read as they come, nginx reads into its buffers as they
//!   come: when a pipelined request arrives in other pieces for one than
//!   for the other, it may start in a fresh buffer for one of them and so
//!   meet the size limits at another length.
//!
//! Known differences in the comparison: none; every case there (curated,
//! one or more per rule, buffer edges) gives the same bytes and the same
//! end of connection.

mod body;
mod conn;
mod dates;
mod fields;
mod head;
mod line;
mod mime;
mod pages;
mod ranges;
mod reply;
mod site;
mod target;
mod validators;
mod window;

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;

pub use site::{MAX_FILE, Site, SiteError};

/// How a connection is served; the defaults are nginx's.
#[derive(Debug, Clone)]
pub struct Options {
    /// The connection's local address: absolute redirects name its port
    /// (and its address when the request names no host).
    pub local_addr: SocketAddr,
    /// Whether the connection is TLS (redirects say `https`).
    pub tls: bool,
    /// For the first request head, from the start; for later ones, from
    /// their first byte (`client_header_timeout`, 60 s).
    pub header_timeout: Duration,
    /// Idle time between requests (`keepalive_timeout`, 75 s).
    pub keepalive_timeout: Duration,
    /// A write that makes no progress (`send_timeout`, 60 s).
    pub send_timeout: Duration,
    /// Reading the rest of a request after the answer: per read
    /// (`lingering_timeout`, 5 s) and in all (`lingering_time`, 30 s).
    pub lingering_timeout: Duration,
    /// See `lingering_timeout`.
    pub lingering_time: Duration,
}

impl Options {
    /// nginx's defaults, for a connection on `local_addr`.
    pub fn new(local_addr: SocketAddr, tls: bool) -> Options {
        Options {
            local_addr,
            tls,
            header_timeout: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(75),
            send_timeout: Duration::from_secs(60),
            lingering_timeout: Duration::from_secs(5),
            lingering_time: Duration::from_secs(30),
        }
    }
}

/// A request head that nginx accepted, shown to [`serve`]'s `claim`.
pub struct Head<'a> {
    req: &'a head::Request,
    raw: &'a [u8],
}

impl Head<'_> {
    /// The method as sent.
    pub fn method(&self) -> &[u8] {
        &self.req.method_name
    }

    /// The request target's path as sent (an absolute URI's path part), up
    /// to a `?`, not decoded.
    pub fn path(&self) -> &[u8] {
        &self.req.target.raw_path
    }

    /// The HTTP version, as (major, minor); HTTP/0.9 is (0, 9).
    pub fn version(&self) -> (u32, u32) {
        (self.req.version.major, self.req.version.minor)
    }

    /// The header lines nginx accepted, in order, as sent.
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.req
            .fields
            .list
            .iter()
            .map(|(n, v)| (n.as_slice(), v.as_slice()))
    }

    /// The values of the header lines named `name` (any case).
    pub fn header<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s [u8]> + 's {
        self.headers()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The head's bytes, request line to the empty line.
    pub fn raw(&self) -> &[u8] {
        self.raw
    }

    /// Whether a strict HTTP/1.1 parser (`httparse`, hyper's) with room for
    /// `max_headers` header lines accepts the head: nginx is more lenient,
    /// and a head claimed for hyper must not meet a bare 400 there.
    pub fn parses_strictly(&self, max_headers: usize) -> bool {
        let mut headers = vec![httparse::EMPTY_HEADER; max_headers];
        let mut req = httparse::Request::new(&mut headers);
        matches!(req.parse(self.raw), Ok(httparse::Status::Complete(n)) if n == self.raw.len())
    }
}

/// A whole error answer as nginx sends it (head and page), with
/// `Connection: close`: for a server that refuses a request it claimed
/// (the HT server, for a first chunk with a wrong key) and must answer
/// like the decoy does.
pub fn error_response(status: u16) -> Vec<u8> {
    let reply = reply::Reply::page(pages::Status::Code(status), false);
    let mut bytes = reply.head(false);
    for piece in reply.body {
        if let reply::Piece::Bytes(page) = piece {
            bytes.extend_from_slice(&page);
        }
    }
    bytes
}

/// The page a server without a site directory serves at `/`: a bland
/// placeholder, like a fresh install's.
pub const BUILT_IN_PAGE: &str = "<!DOCTYPE html>
<html lang=\"en\">
<head>
<meta charset=\"utf-8\">
<title>Welcome</title>
<style>body{font-family:sans-serif;max-width:40em;margin:3em auto;color:#333}</style>
</head>
<body>
<h1>Welcome</h1>
<p>This site is under construction. Please check back later.</p>
</body>
</html>
";

/// nginx's page for `status` (with `padding` for the browsers it pads
/// error pages for); empty where nginx sends no body.
pub fn error_page(status: u16, padding: bool) -> String {
    pages::page(pages::Status::Code(status), padding)
}

/// Serves `io` as nginx would serve `site`, until the connection ends, or
/// until `claim` takes a request: then the connection comes back, its
/// unread bytes (the claimed head first) in front. `stop` (shutdown) closes
/// an idle connection and makes an answer in progress the last.
pub async fn serve<IO>(
    io: IO,
    site: &Site,
    opts: &Options,
    stop: &CancellationToken,
    claim: impl FnMut(&Head<'_>) -> bool,
) -> Option<Rewind<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    match conn::Conn::new(io, opts).run(site, stop, claim).await {
        conn::Ending::Closed => None,
        conn::Ending::Claimed(io, buffered) => Some(Rewind::new(buffered, io)),
    }
}

/// An I/O object with bytes already read from it put back in front.
#[derive(Debug)]
pub struct Rewind<IO> {
    prefix: Vec<u8>,
    read: usize,
    inner: IO,
}

impl<IO> Rewind<IO> {
    /// `inner`, whose reads first yield `prefix`.
    pub fn new(prefix: Vec<u8>, inner: IO) -> Self {
        Rewind {
            prefix,
            read: 0,
            inner,
        }
    }

    /// The inner I/O object and the part of the prefix not yet read.
    pub fn into_inner(mut self) -> (IO, Vec<u8>) {
        self.prefix.drain(..self.read);
        (self.inner, self.prefix)
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Rewind<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.read < this.prefix.len() {
            let rest = &this.prefix[this.read..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.read += n;
            if this.read == this.prefix.len() {
                this.prefix = Vec::new();
                this.read = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Rewind<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests;
