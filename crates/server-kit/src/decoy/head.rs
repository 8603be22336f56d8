//! Reading a request head from the connection's buffer as its bytes come:
//! line by line, each line checked as soon as it is complete (and a
//! partial line as far as it goes, since nginx answers a byte that cannot
//! fit at once), within the rooms of [`Window`]. A complete head then gets
//! the checks that need all of it.

use super::fields::{self, Field, Fields, Framing, Persistence};
use super::line::{self, Version};
use super::pages::Status;
use super::target::Target;
use super::window::Window;

/// What the site does with a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Method {
    Get,
    Head,
    Post,
    /// TRACE and CONNECT: refused (405) once the head is complete.
    Refused,
    /// Anything else: 405 from the site.
    #[default]
    Other,
}

impl Method {
    fn from_name(name: &[u8]) -> Method {
        match name {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"TRACE" | b"CONNECT" => Method::Refused,
            _ => Method::Other,
        }
    }
}

/// A request, as far as its head has been read.
#[derive(Debug)]
pub(super) struct Request {
    pub method: Method,
    pub method_name: Vec<u8>,
    pub version: Version,
    pub target: Target,
    pub fields: Fields,
    pub framing: Framing,
    /// The head's length in the buffer (0 until complete).
    pub head_len: usize,
}

impl Default for Request {
    fn default() -> Request {
        Request {
            method: Method::default(),
            method_name: Vec::new(),
            // Until a request line says otherwise, answers are HTTP/1.x.
            version: Version::HTTP_10,
            target: Target::default(),
            fields: Fields::default(),
            framing: Framing::None,
            head_len: 0,
        }
    }
}

impl Request {
    /// Whether the client wants the connection kept after this request.
    pub fn keepalive(&self) -> bool {
        match self.fields.persistence {
            Persistence::Default => self.version > Version::HTTP_10,
            Persistence::Close => false,
            Persistence::KeepAlive => true,
        }
    }

    /// HTTP/0.9: answered with a bare body.
    pub fn is_simple(&self) -> bool {
        self.version == Version::HTTP_09
    }

    /// The host that absolute redirects name, if the request names one.
    pub fn host(&self) -> Option<&[u8]> {
        self.target.host.as_deref().or(self.fields.host.as_deref())
    }
}

/// How far a head has got.
#[derive(Debug)]
pub(super) enum Progress {
    /// More bytes are needed.
    More,
    Done(Request),
    /// Refused with `Status`; the request as far as it was read.
    Refused(Status, Request),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Blank lines before the request line.
    Blank,
    RequestLine,
    Fields,
}

/// Reads one head; see the module's documentation.
#[derive(Debug)]
pub(super) struct HeadReader {
    window: Window,
    stage: Stage,
    /// Where the line being read starts.
    line: usize,
    /// How far the search for its LF got.
    searched: usize,
    req: Request,
}

impl HeadReader {
    /// A head starting at the front of the buffer, read into `window`.
    pub fn new(window: Window) -> HeadReader {
        HeadReader {
            window,
            stage: Stage::Blank,
            line: 0,
            searched: 0,
            req: Request::default(),
        }
    }

    pub fn window(&self) -> Window {
        self.window
    }

    /// Reads on with what `buf` holds; blank lines before the request line
    /// are drained from it.
    pub fn advance(&mut self, buf: &mut Vec<u8>) -> Progress {
        loop {
            let mut visible = buf.len().min(self.window.end);
            if self.stage == Stage::Blank {
                let blank = buf[..visible]
                    .iter()
                    .take_while(|&&b| b == b'\r' || b == b'\n')
                    .count();
                buf.drain(..blank);
                self.window.shift(blank);
                visible -= blank;
                if visible == 0 {
                    if self.window.end == 0 {
                        // The room held nothing but blank lines.
                        self.window.reuse(0);
                        continue;
                    }
                    return Progress::More;
                }
                self.stage = Stage::RequestLine;
            }
            while let Some(lf) = buf[self.searched..visible].iter().position(|&b| b == b'\n') {
                let lf = self.searched + lf;
                self.searched = lf + 1;
                if let Some(progress) = self.complete_line(&buf[self.line..lf], lf + 1) {
                    return progress;
                }
                self.line = lf + 1;
            }
            self.searched = visible;
            let partial = &buf[self.line..visible];
            if let Some(status) = self.refuse_partial_line(partial) {
                return self.refuse(status);
            }
            if visible < self.window.end {
                return Progress::More;
            }
            if self.window.grow(self.line).is_err() {
                return match self.stage {
                    Stage::RequestLine => self.refuse(414),
                    _ => self.refuse(Status::HeaderTooLarge),
                };
            }
        }
    }

    /// A complete line (without its LF), ending the head at `end` if it is
    /// the last; `Some` when the head is done or refused.
    fn complete_line(&mut self, text: &[u8], end: usize) -> Option<Progress> {
        if self.stage == Stage::RequestLine {
            return self.request_line(text, end);
        }
        match fields::read(text, true) {
            Err(fields::Invalid) => Some(self.refuse(400)),
            Ok(Field::Header { name, value }) => {
                let added = self.req.fields.add(name, value);
                added.is_err().then(|| self.refuse(400))
            }
            Ok(Field::Ignored | Field::Partial) => None,
            Ok(Field::End) => {
                self.req.head_len = end;
                Some(self.finish())
            }
        }
    }

    fn request_line(&mut self, text: &[u8], end: usize) -> Option<Progress> {
        let rl = match line::read(text, true) {
            line::Read::Complete(rl) => rl,
            line::Read::Refused { status, method } => {
                if let Some(name) = method {
                    self.set_method(name);
                }
                return Some(self.refuse(status));
            }
            line::Read::Partial => unreachable!("a complete line is never partial"),
        };
        self.set_method(rl.method);
        self.req.version = rl.version;
        match Target::parse(rl.target) {
            Ok(target) => self.req.target = target,
            Err(_) => return Some(self.refuse(400)),
        }
        if self.req.is_simple() {
            self.req.head_len = end;
            return Some(if self.req.method == Method::Get {
                Progress::Done(std::mem::take(&mut self.req))
            } else {
                self.refuse(400)
            });
        }
        self.stage = Stage::Fields;
        None
    }

    fn set_method(&mut self, name: &[u8]) {
        self.req.method = Method::from_name(name);
        self.req.method_name = name.to_vec();
    }

    /// The status refusing a partial line that cannot become a valid one.
    fn refuse_partial_line(&mut self, partial: &[u8]) -> Option<u16> {
        if partial.is_empty() {
            return None;
        }
        match self.stage {
            Stage::RequestLine => match line::read(partial, false) {
                line::Read::Refused { status, method } => {
                    if let Some(name) = method {
                        self.set_method(name);
                    }
                    Some(status)
                }
                _ => None,
            },
            _ => fields::read(partial, false).is_err().then_some(400),
        }
    }

    /// The checks of a complete head.
    fn finish(&mut self) -> Progress {
        match self.req.fields.framing(self.req.version) {
            Ok(framing) => self.req.framing = framing,
            Err((status, framing)) => {
                self.req.framing = framing;
                return self.refuse(status);
            }
        }
        if self.req.method == Method::Refused {
            return self.refuse(405);
        }
        Progress::Done(std::mem::take(&mut self.req))
    }

    fn refuse(&mut self, status: impl Into<Status>) -> Progress {
        Progress::Refused(status.into(), std::mem::take(&mut self.req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes.
    fn read(input: &[u8], step: usize) -> Progress {
        let mut reader = HeadReader::new(Window::fresh(0));
        let mut buf = Vec::new();
        for piece in input.chunks(step) {
            buf.extend_from_slice(piece);
            match reader.advance(&mut buf) {
                Progress::More => {}
                done => return done,
            }
        }
        Progress::More
    }

    fn status(input: &[u8]) -> Option<u16> {
        match read(input, 1) {
            Progress::Refused(status, _) => Some(status.code()),
            Progress::Done(_) => Some(0),
            Progress::More => None,
        }
    }

    #[test]
    fn heads() {
        let Progress::Done(req) = read(
            b"\r\n\nGET /a?b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nrest",
            7,
        ) else {
            panic!()
        };
        assert_eq!(req.method, Method::Get);
        assert_eq!(req.target.decoded, b"/a");
        assert_eq!(req.fields.list.len(), 2);
        assert!(!req.keepalive());
        assert_eq!(
            req.head_len,
            "GET /a?b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".len()
        );
        let Progress::Done(req) = read(b"GET /\r\n", 100) else {
            panic!()
        };
        assert!(req.is_simple());
    }

    #[test]
    fn refusals_come_as_soon_as_a_byte_cannot_fit() {
        assert_eq!(status(b"garbage"), Some(400));
        assert_eq!(status(b"\x16\x03\x01\x00"), Some(400));
        assert_eq!(status(b"GET / HTTP/1.1\r\nX: a\0"), Some(400));
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a/b\r\n"), Some(400));
        assert_eq!(status(b"GET /%zz HTTP/1.1\r\n"), Some(400));
        assert_eq!(status(b"GET / HTTP/2.0\r\n"), Some(505));
        assert_eq!(status(b"HEAD /\r\n"), Some(400));
        assert_eq!(status(b"GET / HTTP/1.1\r\nContent-Length: x\r\n"), None);
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), Some(400), "no Host");
        assert_eq!(status(b"TRACE / HTTP/1.1\r\nHost: x\r\n\r\n"), Some(405));
    }

    #[test]
    fn size_limits() {
        let line =
            |len: usize| format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(len - 16));
        assert_eq!(status(line(8192).as_bytes()), Some(0));
        assert_eq!(status(line(8193).as_bytes()), Some(414));
        let header = |len: usize| {
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
                "v".repeat(len - 5)
            )
        };
        assert_eq!(status(header(8191).as_bytes()), Some(0));
        let Progress::Refused(status, _) = read(header(8193).as_bytes(), 4096) else {
            panic!()
        };
        assert_eq!(status, Status::HeaderTooLarge);
        let blanks = format!("{}GET / HTTP/1.1\r\nHost: x\r\n\r\n", "\r\n".repeat(5000));
        assert_eq!(self::status(blanks.as_bytes()), Some(0));
    }
}
