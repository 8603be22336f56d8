//! One connection, request after request, and how it ends (observed from
//! nginx):
//!
//! - a refused head gets its page with `Connection: close`, and the
//!   connection closes at once, unless a valid `Content-Length` announced a
//!   body: then it is read (and dropped) until the client goes quiet first;
//! - a body the site does not want is dropped: what came with the head
//!   before the answer (an invalid chunk there makes a file's answer a 400,
//!   or any other page the last), the rest after it;
//! - answers to HTTP/1.1 (or `Connection: keep-alive`) keep the connection,
//!   except 400, 413, 414, 500, 501 and 505, a POST from an old MSIE, and
//!   `Connection: close`; a 412 says keep-alive yet closes;
//! - a closing answer with its body still to come waits for the client to
//!   go quiet before closing; otherwise the close is at once (and what the
//!   client still sends is read for a while, so that it gets the answer
//!   rather than a reset);
//! - `Expect: 100-continue` on HTTP/1.1 gets `100 Continue` when a file is
//!   about to be sent, whatever its conditions make of it.

use std::net::IpAddr;
use std::time::{Instant, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::body::Body;
use super::fields::Framing;
use super::head::{HeadReader, Method, Progress, Request};
use super::line::Version;
use super::pages::Status;
use super::reply::{CONTINUE, Piece, Reply};
use super::site::{Answer, Site};
use super::target::escape_path;
use super::window::Window;
use super::{Head, Options};

/// The largest body nginx takes (`client_max_body_size`): a longer
/// `Content-Length` is 413.
const MAX_BODY: u64 = 1024 * 1024;
/// How much of a file goes into one write.
const CHUNK: usize = 64 * 1024;

/// How the connection left the decoy.
pub(super) enum Ending<IO> {
    Closed,
    /// The caller claimed a request: the connection, and the bytes read
    /// from it from that request's head on.
    Claimed(IO, Vec<u8>),
}

/// What follows an answer.
enum After {
    NextRequest,
    Closed,
}

pub(super) struct Conn<'a, IO> {
    io: IO,
    /// Bytes read and not yet used up; the next request starts at 0.
    buf: Vec<u8>,
    /// The room the next head is read into.
    window: Window,
    opts: &'a Options,
}

impl<'a, IO> Conn<'a, IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    pub fn new(io: IO, opts: &'a Options) -> Self {
        Conn {
            io,
            buf: Vec::with_capacity(4096),
            window: Window::fresh(0),
            opts,
        }
    }

    pub async fn run(
        mut self,
        site: &Site,
        stop: &CancellationToken,
        mut claim: impl FnMut(&Head<'_>) -> bool,
    ) -> Ending<IO> {
        let mut first = true;
        loop {
            let Some(progress) = self.read_head(first, stop).await else {
                return Ending::Closed;
            };
            first = false;
            let req = match progress {
                Progress::Done(req) => req,
                Progress::Refused(status, req) => {
                    self.refuse(status, req).await;
                    return Ending::Closed;
                }
                Progress::More => unreachable!("read_head reads on"),
            };
            let head = Head {
                req: &req,
                raw: &self.buf[..req.head_len],
            };
            if claim(&head) {
                return Ending::Claimed(self.io, self.buf);
            }
            if let After::Closed = self.serve(site, req, stop).await {
                return Ending::Closed;
            }
        }
    }

    /// Reads the next head. `None`: the connection ended first (EOF, an
    /// error, a timeout, or `stop`).
    async fn read_head(&mut self, first: bool, stop: &CancellationToken) -> Option<Progress> {
        let mut reader = HeadReader::new(self.window);
        // Between requests the keep-alive timeout runs until a byte comes.
        let mut idle = !first && self.buf.is_empty();
        let wait = if idle {
            self.opts.keepalive_timeout
        } else {
            self.opts.header_timeout
        };
        let mut deadline = Instant::now() + wait;
        loop {
            match reader.advance(&mut self.buf) {
                Progress::More => {}
                done => {
                    self.window = reader.window();
                    return Some(done);
                }
            }
            let read = tokio::select! {
                read = tokio::time::timeout_at(deadline.into(), self.read_more()) => read,
                () = stop.cancelled() => return None,
            };
            if !matches!(read, Ok(Ok(n)) if n > 0) {
                return None;
            }
            if idle {
                idle = false;
                deadline = Instant::now() + self.opts.header_timeout;
            }
        }
    }

    /// Answers a refused head, then closes.
    async fn refuse(&mut self, status: Status, req: Request) {
        let reply = Reply::page(status, req.fields.padding);
        if self.send(&req, &reply, false).await.is_err() {
            return;
        }
        let mut body = Body::new(req.framing);
        let buffered = &self.buf[req.head_len.min(self.buf.len())..];
        if body.eat(buffered).is_ok() && !body.is_done() {
            self.linger().await;
        } else {
            self.close().await;
        }
    }

    /// Answers an accepted request.
    async fn serve(&mut self, site: &Site, req: Request, stop: &CancellationToken) -> After {
        // The bytes nginx would hold in its room when the head ended: a
        // next request starting among them is pipelined.
        let room = self.buf.len().min(self.window.end);
        let mut keep = req.keepalive() && !req.is_simple() && !stop.is_cancelled();
        let mut close_now = false;
        let mut body = Body::new(req.framing);
        let mut used = req.head_len;
        let answer = match req.framing {
            Framing::Length(n) if n > MAX_BODY => Answer::Status(413),
            _ => site.answer(req.method, &req.target.decoded).await,
        };
        let padding = req.fields.padding;
        let reply = match answer {
            Answer::File { path, meta, uri } => {
                if req.version > Version::HTTP_10
                    && req.fields.expects_continue()
                    && self.write(CONTINUE).await.is_err()
                {
                    return After::Closed;
                }
                match body.eat(&self.buf[used..]) {
                    Ok(n) => {
                        used += n;
                        let mtime = meta
                            .modified()
                            .ok()
                            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                            .map_or(0, |d| d.as_secs());
                        Reply::file(&req, path, meta.len(), mtime, &uri)
                    }
                    Err(_) => {
                        close_now = true;
                        Reply::page(400.into(), padding)
                    }
                }
            }
            other => {
                match body.eat(&self.buf[used..]) {
                    Ok(n) => used += n,
                    Err(_) => {
                        keep = false;
                        close_now = true;
                    }
                }
                match other {
                    Answer::Redirect(path) => Reply::redirect(self.location(&req, &path), padding),
                    Answer::Status(code) => Reply::page(code.into(), padding),
                    Answer::File { .. } => unreachable!("matched above"),
                }
            }
        };
        let status = reply.status();
        if matches!(status.code(), 400 | 413 | 414 | 500 | 501 | 505)
            || (req.method == Method::Post && req.fields.old_msie)
        {
            keep = false;
        }
        if status.code() == 412 {
            close_now = true;
        }
        if self.send(&req, &reply, keep).await.is_err() {
            return After::Closed;
        }
        if close_now {
            self.close().await;
            return After::Closed;
        }
        let pipelined = used < room;
        if !body.is_done() {
            if !keep {
                self.linger().await;
                return After::Closed;
            }
            match self.drop_body(&mut body, used).await {
                Some(end) => used = end,
                None => {
                    self.close().await;
                    return After::Closed;
                }
            }
        } else if !keep {
            self.close().await;
            return After::Closed;
        }
        // Bytes of the next request already in the room: it goes on there.
        self.window = self.window.next(used, pipelined);
        self.window.shift(used);
        self.buf.drain(..used);
        After::NextRequest
    }

    /// Reads the rest of a body (from `used` on) and drops it, within the
    /// lingering limits; the buffer's front is dropped with it. Returns
    /// where the body ends, `None` if the client goes quiet or away first,
    /// or the body is invalid.
    async fn drop_body(&mut self, body: &mut Body, mut used: usize) -> Option<usize> {
        let end = Instant::now() + self.opts.lingering_time;
        loop {
            used += body.eat(&self.buf[used..]).ok()?;
            if body.is_done() {
                return Some(used);
            }
            self.buf.drain(..used);
            used = 0;
            // The next head, whatever comes after the body, starts afresh.
            self.window = Window::fresh(0);
            let deadline = end.min(Instant::now() + self.opts.lingering_timeout);
            match tokio::time::timeout_at(deadline.into(), self.read_more()).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return None,
            }
        }
    }

    /// The absolute `Location` for a redirect to the decoded `path`.
    fn location(&self, req: &Request, path: &[u8]) -> Vec<u8> {
        let (scheme, default_port) = if self.opts.tls {
            ("https", 443)
        } else {
            ("http", 80)
        };
        let mut location = format!("{scheme}://").into_bytes();
        match req.host() {
            Some(host) => location.extend_from_slice(host),
            None => location.extend_from_slice(
                match self.opts.local_addr.ip() {
                    IpAddr::V4(ip) => ip.to_string(),
                    IpAddr::V6(ip) => format!("[{ip}]"),
                }
                .as_bytes(),
            ),
        }
        let port = self.opts.local_addr.port();
        if port != default_port {
            location.extend_from_slice(format!(":{port}").as_bytes());
        }
        location.extend_from_slice(escape_path(path).as_bytes());
        if let Some(args) = &req.target.args {
            location.push(b'?');
            location.extend_from_slice(args);
        }
        location
    }

    /// Writes an answer: its head (none for HTTP/0.9) and its body (none
    /// for HEAD).
    async fn send(&mut self, req: &Request, reply: &Reply, keep: bool) -> std::io::Result<()> {
        let mut out = if req.is_simple() {
            Vec::new()
        } else {
            reply.head(keep)
        };
        if req.method != Method::Head || req.is_simple() {
            let mut file = match &reply.file {
                Some(path) if reply.body.iter().any(|p| matches!(p, Piece::File { .. })) => {
                    Some(tokio::fs::File::open(path).await?)
                }
                _ => None,
            };
            for piece in &reply.body {
                match (piece, &mut file) {
                    (Piece::Bytes(bytes), _) => out.extend_from_slice(bytes),
                    (Piece::File { start, end }, Some(file)) => {
                        file.seek(std::io::SeekFrom::Start(*start)).await?;
                        let mut left = end - start;
                        while left > 0 {
                            let want = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
                            let at = out.len();
                            out.resize(at + want, 0);
                            file.read_exact(&mut out[at..]).await?;
                            left -= want as u64;
                            if out.len() >= CHUNK {
                                self.write(&out).await?;
                                out.clear();
                            }
                        }
                    }
                    (Piece::File { .. }, None) => unreachable!("opened above"),
                }
            }
        }
        self.write(&out).await
    }

    /// Writes all of `bytes`, each write making progress within the send
    /// timeout.
    async fn write(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        let timeout = self.opts.send_timeout;
        let timed_out = |_| std::io::Error::from(std::io::ErrorKind::TimedOut);
        while !bytes.is_empty() {
            let n = tokio::time::timeout(timeout, self.io.write(bytes))
                .await
                .map_err(timed_out)??;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            bytes = &bytes[n..];
        }
        tokio::time::timeout(timeout, self.io.flush())
            .await
            .map_err(timed_out)?
    }

    async fn read_more(&mut self) -> std::io::Result<usize> {
        self.buf.reserve(16 * 1024);
        self.io.read_buf(&mut self.buf).await
    }

    /// Closes at once (TLS close_notify, then FIN), then reads and drops
    /// what still comes for a while.
    async fn close(&mut self) {
        let _ = tokio::time::timeout(self.opts.send_timeout, self.io.shutdown()).await;
        self.drain().await;
    }

    /// Reads and drops until the client goes quiet or away, then closes.
    async fn linger(&mut self) {
        self.drain().await;
        let _ = tokio::time::timeout(self.opts.send_timeout, self.io.shutdown()).await;
    }

    /// Reads and drops until EOF, an error, `lingering_timeout` without a
    /// byte, or `lingering_time` in all.
    async fn drain(&mut self) {
        let end = Instant::now() + self.opts.lingering_time;
        let mut scratch = vec![0u8; 16 * 1024];
        loop {
            let deadline = end.min(Instant::now() + self.opts.lingering_timeout);
            match tokio::time::timeout_at(deadline.into(), self.io.read(&mut scratch)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            }
        }
    }
}
