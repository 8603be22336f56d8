//! A band: one connection carrying one request at a time.
//!
//! Login is `IAm{connKind 1, uuid, sessionKey}` → `Accept`. Then, for each
//! request, the queen sends `ReqHead`; the body stays with the queen until
//! the cell sends `ResWant{maxSize}`, after which it arrives as `ReqBody`
//! pieces and `ReqEnd`. The cell answers `ResHead`, `ResBody`*, `ResEnd`,
//! and the band is free for the next request.
//!
//! Bodies are bounded. A `Content-Length` over the maximum is refused with
//! 413 at once, without fetching anything. Otherwise the cell asks for
//! `max + 1` bytes, one more than it accepts, because the Go queen cuts a
//! body at `maxSize` without saying so: receiving `max + 1` bytes is how a
//! body without a length (chunked, HTTP/2) is known to be too large.
//!
//! An older Go queen sent the body right after the head without being
//! asked; `ReqBody` and `ReqEnd` that arrive when no body is expected are
//! therefore dropped, never treated as errors. The Go queen also hands a
//! new band to a waiting request before writing the band's `Accept`, from
//! another goroutine, so a `ReqHead` may overtake the `Accept`: it counts as
//! the login, and the late `Accept` is dropped.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::{CellError, Session};
use crate::frame::{ConnKind, Frame, IAm, Multimap, ReqHead, ResHead, ResWant};

/// Default largest request body: 8 MiB.
pub const DEFAULT_MAX_BODY: u64 = 8 * 1024 * 1024;

/// Default largest `ResBody` piece: 64 KiB, small enough that a slow public
/// client holds back the local app after a few pieces (backpressure), large
/// enough that framing costs nothing measurable.
pub const DEFAULT_MAX_PIECE: usize = 64 * 1024;

/// A band's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BandConfig {
    /// The largest request body passed to the local app; larger → 413.
    pub max_body: u64,
    /// The largest response body piece per `ResBody` frame.
    pub max_piece: usize,
    /// How long the queen may take to accept the band.
    pub login_timeout: Duration,
}

impl Default for BandConfig {
    fn default() -> Self {
        BandConfig {
            max_body: DEFAULT_MAX_BODY,
            max_piece: DEFAULT_MAX_PIECE,
            login_timeout: Duration::from_secs(10),
        }
    }
}

/// A request ready for the local app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The head as the queen sent it.
    pub head: Box<ReqHead>,
    /// The whole body (at most `max_body` bytes), or `None` when the request
    /// has none.
    pub body: Option<Bytes>,
}

/// What the driver acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BandEvent {
    /// The queen accepted the band; requests may arrive.
    LoggedIn,
    /// Forward this request, then answer with `send_head`, `send_body`,
    /// `send_end`.
    Request(Request),
    /// The band answered this request itself (the whole response is
    /// queued): 413 for a body over the maximum, 400 for a `Content-Length`
    /// that is not a number. Reported for the request log.
    Refused {
        /// The head as the queen sent it.
        head: Box<ReqHead>,
        /// The status sent.
        status: u16,
        /// Body bytes the queen sent before the refusal.
        received: u64,
        /// Response body bytes sent.
        sent: u64,
    },
}

/// What a request head says about its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyPlan {
    /// No body: a `GET`-like method without `Content-Length` or
    /// `Transfer-Encoding`.
    None,
    /// `Content-Length: 0`.
    Empty,
    /// A body to fetch, of this length if known.
    Fetch(Option<u64>),
    /// `Content-Length` over the maximum.
    TooLarge,
    /// A `Content-Length` that is not one number.
    Invalid,
}

fn body_plan(head: &ReqHead, max: u64) -> BodyPlan {
    let lengths = head.headers.get("content-length").filter(|v| !v.is_empty());
    if let Some(values) = lengths {
        // Go merges repeated headers into one list; repeats must agree
        // (RFC 9110 §8.6).
        let parsed: Option<Vec<u64>> = values
            .iter()
            .flat_map(|v| v.split(','))
            .map(|v| {
                let v = v.trim();
                (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| v.parse().ok())
                    .flatten()
            })
            .collect();
        return match parsed.as_deref() {
            Some([n, rest @ ..]) if rest.iter().all(|m| m == n) => match *n {
                0 => BodyPlan::Empty,
                n if n > max => BodyPlan::TooLarge,
                n => BodyPlan::Fetch(Some(n)),
            },
            _ => BodyPlan::Invalid,
        };
    }
    if head
        .headers
        .get("transfer-encoding")
        .is_some_and(|v| !v.is_empty())
    {
        return BodyPlan::Fetch(None);
    }
    // Without a length the head cannot say whether a body follows: Go's
    // server removes `Transfer-Encoding` from the header map (a chunked
    // HTTP/1.1 body looks like none), and HTTP/2 has no such header at all
    // (a body is announced only by the stream not ending with the headers).
    // So a method that usually carries a body always asks: one round trip
    // when the body turns out empty, against losing it otherwise.
    let bodiless = matches!(
        head.method.as_str(),
        "" | "GET" | "HEAD" | "OPTIONS" | "TRACE"
    );
    if !bodiless {
        return BodyPlan::Fetch(None);
    }
    BodyPlan::None
}

#[derive(Debug)]
enum State {
    LoggingIn {
        deadline: Instant,
    },
    Idle,
    Receiving {
        head: Box<ReqHead>,
        body: BytesMut,
        received: u64,
    },
    Responding {
        head_sent: bool,
    },
}

/// The band machine.
pub struct Band {
    state: State,
    /// A request head overtook the `Accept`, which is still to come.
    late_accept: bool,
    config: BandConfig,
    out: BytesMut,
    events: VecDeque<BandEvent>,
}

/// Shows no queued bytes: the `IAm` among them carries the session key.
impl fmt::Debug for Band {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Band")
            .field("state", &self.state)
            .field("config", &self.config)
            .field("queued_bytes", &self.out.len())
            .finish()
    }
}

impl Band {
    /// A band of `session` logging in from `now`: the `IAm` is queued.
    pub fn new(now: Instant, session: &Session, config: BandConfig) -> Band {
        let mut out = BytesMut::new();
        Frame::IAm(IAm {
            conn_kind: ConnKind::Band.code(),
            uuid: session.uuid.clone(),
            key: session.key().to_owned(),
        })
        .write(&mut out);
        Band {
            state: State::LoggingIn {
                deadline: now + config.login_timeout,
            },
            late_accept: false,
            config,
            out,
            events: VecDeque::new(),
        }
    }

    /// Takes one frame from the queen.
    pub fn handle_frame(&mut self, frame: Frame) -> Result<(), CellError> {
        match (&mut self.state, frame) {
            (State::LoggingIn { .. }, Frame::Accept(_)) => {
                self.state = State::Idle;
                self.events.push_back(BandEvent::LoggedIn);
            }
            (State::LoggingIn { .. }, Frame::ReqHead(head)) => {
                self.late_accept = true;
                self.state = State::Idle;
                self.events.push_back(BandEvent::LoggedIn);
                self.handle_head(head);
            }
            (_, Frame::Accept(_)) if self.late_accept => self.late_accept = false,
            (State::Idle, Frame::ReqHead(head)) => self.handle_head(head),
            (State::Receiving { body, received, .. }, Frame::ReqBody(piece)) => {
                *received += piece.len() as u64;
                if *received > self.config.max_body {
                    // Too large: keep counting until ReqEnd, store nothing.
                    *body = BytesMut::new();
                } else {
                    body.extend_from_slice(&piece);
                }
            }
            (State::Receiving { .. }, Frame::ReqEnd) => {
                let State::Receiving {
                    head,
                    body,
                    received,
                } = std::mem::replace(&mut self.state, State::Idle)
                else {
                    unreachable!("matched above")
                };
                if received > self.config.max_body {
                    let message = self.too_large_message();
                    self.refuse(head, 413, received, &message);
                } else {
                    self.state = State::Responding { head_sent: false };
                    self.events.push_back(BandEvent::Request(Request {
                        head,
                        body: Some(body.freeze()),
                    }));
                }
            }
            // Unasked body frames (an older queen): nothing to do with them.
            (State::Idle | State::Responding { .. }, Frame::ReqBody(_) | Frame::ReqEnd) => {}
            (state, frame) => {
                return Err(CellError::Unexpected {
                    state: match state {
                        State::LoggingIn { .. } => "waiting for the band Accept",
                        State::Idle => "waiting for a request",
                        State::Receiving { .. } => "receiving a request body",
                        State::Responding { .. } => "sending a response",
                    },
                    kind: frame.kind(),
                });
            }
        }
        Ok(())
    }

    fn handle_head(&mut self, head: Box<ReqHead>) {
        match body_plan(&head, self.config.max_body) {
            plan @ (BodyPlan::None | BodyPlan::Empty) => {
                let body = (plan == BodyPlan::Empty).then(Bytes::new);
                self.state = State::Responding { head_sent: false };
                self.events
                    .push_back(BandEvent::Request(Request { head, body }));
            }
            BodyPlan::Fetch(length) => {
                Frame::ResWant(ResWant {
                    max_size: i64::try_from(self.config.max_body.saturating_add(1))
                        .unwrap_or(i64::MAX),
                })
                .write(&mut self.out);
                let capacity = length.unwrap_or(0).min(self.config.max_body);
                self.state = State::Receiving {
                    head,
                    body: BytesMut::with_capacity(capacity as usize),
                    received: 0,
                };
            }
            BodyPlan::TooLarge => {
                let message = self.too_large_message();
                self.refuse(head, 413, 0, &message);
            }
            BodyPlan::Invalid => {
                self.refuse(head, 400, 0, "400 Bad Request: invalid Content-Length\n");
            }
        }
    }

    fn too_large_message(&self) -> String {
        format!(
            "413 Payload Too Large: this app accepts request bodies of at most {} bytes\n",
            self.config.max_body
        )
    }

    /// Queues a whole plain-text response and reports it.
    fn refuse(&mut self, head: Box<ReqHead>, status: u16, received: u64, message: &str) {
        self.state = State::Responding { head_sent: false };
        let headers: Multimap = [
            ("content-type", "text/plain; charset=utf-8".to_owned()),
            ("content-length", message.len().to_string()),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_owned(), vec![v]))
        .collect();
        self.respond(status, headers, message.as_bytes())
            .expect("a fresh response is in order");
        self.events.push_back(BandEvent::Refused {
            head,
            status,
            received,
            sent: message.len() as u64,
        });
    }

    /// Fails the login once its deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), CellError> {
        super::check_login(self.poll_timeout(), now, self.config.login_timeout)
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::LoggingIn { deadline } => Some(deadline),
            _ => None,
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<BandEvent> {
        self.events.pop_front()
    }

    /// Bytes to write to the band, if any.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        (!self.out.is_empty()).then(|| self.out.split().freeze())
    }

    /// Bytes queued and not yet taken by [`poll_transmit`](Self::poll_transmit).
    pub fn queued(&self) -> usize {
        self.out.len()
    }

    /// Whether the band waits for a request (logged in, nothing in flight).
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle)
    }

    /// Queues the response head. The status must be at least 200: the Go
    /// queen answers 502 to anything lower, so the driver must decide what
    /// to send instead.
    pub fn send_head(&mut self, head: &ResHead) -> Result<(), CellError> {
        match &mut self.state {
            State::Responding { head_sent } if !*head_sent => {
                if head.status_code < 200 || head.status_code > 999 {
                    return Err(CellError::ApiMisuse("response status outside 200..=999"));
                }
                *head_sent = true;
                head.write_frame(&mut self.out);
                Ok(())
            }
            _ => Err(CellError::ApiMisuse(
                "response head without a request, or twice",
            )),
        }
    }

    /// Queues the response head for the local app's `status` and headers,
    /// as [`send_head`](Self::send_head) of
    /// [`map_response`](super::map::map_response)`(status, headers)` would,
    /// without building that head (see
    /// [`write_response_head`](super::map::write_response_head)).
    pub fn send_app_head<'a>(
        &mut self,
        status: u16,
        headers: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
    ) -> Result<(), CellError> {
        match &mut self.state {
            State::Responding { head_sent } if !*head_sent => {
                if !(200..=999).contains(&status) {
                    return Err(CellError::ApiMisuse("response status outside 200..=999"));
                }
                *head_sent = true;
                super::map::write_response_head(status, headers, &mut self.out);
                Ok(())
            }
            _ => Err(CellError::ApiMisuse(
                "response head without a request, or twice",
            )),
        }
    }

    /// Queues response body bytes, in pieces of at most `max_piece`.
    pub fn send_body(&mut self, data: &[u8]) -> Result<(), CellError> {
        if !matches!(self.state, State::Responding { head_sent: true }) {
            return Err(CellError::ApiMisuse("response body before its head"));
        }
        for piece in data.chunks(self.config.max_piece.max(1)) {
            crate::fsock::put_frame(&mut self.out, crate::frame::Kind::ResBody as u8, piece);
        }
        Ok(())
    }

    /// Queues the end of the response; the band is free again.
    pub fn send_end(&mut self) -> Result<(), CellError> {
        if !matches!(self.state, State::Responding { head_sent: true }) {
            return Err(CellError::ApiMisuse("response end before its head"));
        }
        Frame::ResEnd.write(&mut self.out);
        self.state = State::Idle;
        Ok(())
    }

    /// Queues a whole response: head, body, end.
    pub fn respond(
        &mut self,
        status: u16,
        headers: Multimap,
        body: &[u8],
    ) -> Result<(), CellError> {
        self.send_head(&ResHead {
            status_code: i64::from(status),
            headers,
        })?;
        self.send_body(body)?;
        self.send_end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Accept, Kind};
    use crate::fsock::FrameReader;
    use proptest::prelude::*;

    fn config(max_body: u64) -> BandConfig {
        BandConfig {
            max_body,
            max_piece: 4,
            login_timeout: Duration::from_secs(2),
        }
    }

    fn sent(band: &mut Band) -> Vec<Frame> {
        let mut buf = BytesMut::from(&band.poll_transmit().unwrap_or_default()[..]);
        let mut frames = Vec::new();
        while let Some(frame) = FrameReader::default().decode(&mut buf).unwrap() {
            frames.push(frame);
        }
        frames
    }

    fn logged_in(max_body: u64) -> Band {
        let mut band = Band::new(Instant::now(), &Session::new("u", "sk"), config(max_body));
        band.poll_transmit();
        band.handle_frame(Frame::Accept(Accept {
            uuid: "u".into(),
            key: String::new(),
        }))
        .unwrap();
        assert_eq!(band.poll_event(), Some(BandEvent::LoggedIn));
        band
    }

    fn head(method: &str, headers: &[(&str, &str)]) -> Frame {
        Frame::ReqHead(Box::new(ReqHead {
            method: method.into(),
            path: "/".into(),
            proto: "HTTP/1.1".into(),
            proto_major: 1,
            proto_minor: 1,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), vec![v.to_string()]))
                .collect(),
            ..ReqHead::default()
        }))
    }

    fn status_of(frames: &[Frame]) -> i64 {
        match &frames[0] {
            Frame::ResHead(h) => h.status_code,
            other => panic!("not a head: {other:?}"),
        }
    }

    #[test]
    fn logs_in_with_the_session_key() {
        let now = Instant::now();
        let mut band = Band::new(now, &Session::new("u-1", "sk"), BandConfig::default());
        assert_eq!(
            sent(&mut band),
            [Frame::IAm(IAm {
                conn_kind: 1,
                uuid: "u-1".into(),
                key: "sk".into()
            })]
        );
        assert!(!format!("{band:?}").contains("sk\""));
        assert_eq!(band.poll_timeout(), Some(now + Duration::from_secs(10)));
        assert_eq!(
            band.handle_timeout(now + Duration::from_secs(10)),
            Err(CellError::LoginTimeout(10_000))
        );
        assert!(matches!(
            band.handle_frame(Frame::ResEnd),
            Err(CellError::Unexpected {
                kind: Kind::ResEnd,
                ..
            })
        ));
    }

    #[test]
    fn a_request_head_overtaking_the_accept_counts_as_the_login() {
        let mut band = Band::new(Instant::now(), &Session::new("u", "sk"), config(10));
        band.poll_transmit();
        band.handle_frame(head("GET", &[])).unwrap();
        assert_eq!(band.poll_event(), Some(BandEvent::LoggedIn));
        assert!(matches!(band.poll_event(), Some(BandEvent::Request(_))));
        assert_eq!(band.poll_timeout(), None);
        // The late Accept is dropped once; a second one is an error.
        band.handle_frame(Frame::Accept(Accept::default())).unwrap();
        assert!(band.handle_frame(Frame::Accept(Accept::default())).is_err());
    }

    #[test]
    fn a_get_goes_out_at_once_and_its_response_is_framed() {
        let mut band = logged_in(100);
        band.handle_frame(head("GET", &[])).unwrap();
        let Some(BandEvent::Request(request)) = band.poll_event() else {
            panic!()
        };
        assert_eq!(request.body, None);
        assert_eq!(band.poll_transmit(), None, "no ResWant for a GET");
        // Stray body frames of an older queen are dropped.
        band.handle_frame(Frame::ReqEnd).unwrap();
        assert!(band.send_body(b"x").is_err());
        band.send_head(&ResHead {
            status_code: 200,
            headers: Multimap::new(),
        })
        .unwrap();
        assert!(band.send_head(&ResHead::default()).is_err());
        band.send_body(b"0123456789").unwrap();
        band.send_end().unwrap();
        assert!(band.is_idle());
        let frames = sent(&mut band);
        assert_eq!(
            &frames[1..],
            [
                Frame::ResBody(Bytes::from_static(b"0123")),
                Frame::ResBody(Bytes::from_static(b"4567")),
                Frame::ResBody(Bytes::from_static(b"89")),
                Frame::ResEnd
            ]
        );
        band.handle_frame(Frame::ReqBody(Bytes::from_static(b"late")))
            .unwrap();
        assert!(band.send_end().is_err());
    }

    #[test]
    fn a_status_below_200_is_refused_to_the_driver() {
        let mut band = logged_in(100);
        band.handle_frame(head("GET", &[])).unwrap();
        assert!(matches!(
            band.send_head(&ResHead {
                status_code: 101,
                headers: Multimap::new()
            }),
            Err(CellError::ApiMisuse(_))
        ));
    }

    #[test]
    fn a_body_is_asked_for_with_one_byte_to_spare() {
        let mut band = logged_in(10);
        band.handle_frame(head("POST", &[("content-length", "5")]))
            .unwrap();
        assert_eq!(sent(&mut band), [Frame::ResWant(ResWant { max_size: 11 })]);
        assert_eq!(band.poll_event(), None);
        band.handle_frame(Frame::ReqBody(Bytes::from_static(b"hel")))
            .unwrap();
        band.handle_frame(Frame::ReqBody(Bytes::from_static(b"lo")))
            .unwrap();
        assert!(matches!(
            band.handle_frame(head("GET", &[])),
            Err(CellError::Unexpected { .. })
        ));
        band.handle_frame(Frame::ReqEnd).unwrap();
        let Some(BandEvent::Request(request)) = band.poll_event() else {
            panic!()
        };
        assert_eq!(request.body.as_deref(), Some(&b"hello"[..]));
    }

    #[test]
    fn an_announced_body_over_the_maximum_is_refused_without_fetching() {
        let mut band = logged_in(10);
        band.handle_frame(head("POST", &[("content-length", "11")]))
            .unwrap();
        let frames = sent(&mut band);
        assert_eq!(status_of(&frames), 413);
        assert!(!frames.iter().any(|f| matches!(f, Frame::ResWant(_))));
        assert_eq!(frames.last(), Some(&Frame::ResEnd));
        let Some(BandEvent::Refused {
            status, received, ..
        }) = band.poll_event()
        else {
            panic!()
        };
        assert_eq!((status, received), (413, 0));
        assert!(band.is_idle());
    }

    #[test]
    fn an_unannounced_body_over_the_maximum_is_refused_after_its_end() {
        let mut band = logged_in(10);
        band.handle_frame(head("POST", &[("transfer-encoding", "chunked")]))
            .unwrap();
        assert_eq!(sent(&mut band), [Frame::ResWant(ResWant { max_size: 11 })]);
        band.handle_frame(Frame::ReqBody(Bytes::from_static(b"0123456789")))
            .unwrap();
        band.handle_frame(Frame::ReqBody(Bytes::from_static(b"x")))
            .unwrap();
        assert_eq!(band.poll_transmit(), None, "nothing before ReqEnd");
        band.handle_frame(Frame::ReqEnd).unwrap();
        assert_eq!(status_of(&sent(&mut band)), 413);
        assert!(matches!(
            band.poll_event(),
            Some(BandEvent::Refused {
                status: 413,
                received: 11,
                ..
            })
        ));
    }

    #[test]
    fn body_plans_follow_the_head() {
        let plan = |method: &str, major: i64, headers: &[(&str, &[&str])]| {
            let head = ReqHead {
                method: method.into(),
                proto_major: major,
                headers: headers
                    .iter()
                    .map(|(n, vs)| (n.to_string(), vs.iter().map(|v| v.to_string()).collect()))
                    .collect(),
                ..ReqHead::default()
            };
            body_plan(&head, 100)
        };
        assert_eq!(plan("GET", 1, &[]), BodyPlan::None);
        assert_eq!(plan("OPTIONS", 2, &[]), BodyPlan::None);
        // Go drops Transfer-Encoding from the map: a chunked body has no
        // trace in the head, so a POST asks anyway.
        assert_eq!(plan("POST", 1, &[]), BodyPlan::Fetch(None));
        assert_eq!(plan("POST", 2, &[]), BodyPlan::Fetch(None));
        assert_eq!(plan("GET", 2, &[]), BodyPlan::None);
        assert_eq!(
            plan("POST", 1, &[("content-length", &["0"])]),
            BodyPlan::Empty
        );
        assert_eq!(
            plan("POST", 1, &[("content-length", &["7", "7"])]),
            BodyPlan::Fetch(Some(7))
        );
        assert_eq!(
            plan("PUT", 1, &[("content-length", &["101"])]),
            BodyPlan::TooLarge
        );
        assert_eq!(
            plan("PUT", 1, &[("content-length", &["1", "2"])]),
            BodyPlan::Invalid
        );
        assert_eq!(
            plan("PUT", 1, &[("content-length", &["-1"])]),
            BodyPlan::Invalid
        );
        assert_eq!(
            plan(
                "PUT",
                1,
                &[("content-length", &["99999999999999999999999"])]
            ),
            BodyPlan::Invalid
        );
        assert_eq!(
            plan("POST", 1, &[("transfer-encoding", &["chunked"])]),
            BodyPlan::Fetch(None)
        );
    }

    #[test]
    fn a_bad_length_is_a_400() {
        let mut band = logged_in(10);
        band.handle_frame(head("POST", &[("content-length", "x")]))
            .unwrap();
        assert_eq!(status_of(&sent(&mut band)), 400);
    }

    proptest! {
        /// Whatever the body and however the queen cuts it (the Go queen:
        /// 1024-byte pieces), the app gets it whole or the client gets 413,
        /// exactly at the maximum.
        #[test]
        fn bodies_arrive_whole_or_are_refused_at_the_maximum(
            body in proptest::collection::vec(any::<u8>(), 0..300),
            piece in 1usize..64,
            max in 0u64..200,
            announced in any::<bool>(),
        ) {
            let mut band = logged_in(max);
            let length = body.len().to_string();
            let headers: &[(&str, &str)] = if announced {
                &[("content-length", &length)]
            } else {
                &[("transfer-encoding", "chunked")]
            };
            band.handle_frame(head("POST", headers)).unwrap();
            let asked = sent(&mut band).contains(&Frame::ResWant(ResWant { max_size: max as i64 + 1 }));
            if asked {
                // As the Go queen does: stop at maxSize, then ReqEnd.
                let cut = body.len().min(max as usize + 1);
                for chunk in body[..cut].chunks(piece) {
                    band.handle_frame(Frame::ReqBody(Bytes::copy_from_slice(chunk))).unwrap();
                }
                band.handle_frame(Frame::ReqEnd).unwrap();
            }
            match band.poll_event() {
                Some(BandEvent::Request(request)) => {
                    prop_assert!(body.len() as u64 <= max);
                    prop_assert_eq!(request.body, Some(Bytes::from(body)));
                }
                Some(BandEvent::Refused { status, .. }) => {
                    prop_assert_eq!(status, 413);
                    prop_assert!(body.len() as u64 > max);
                    prop_assert_eq!(announced, !asked);
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }
    }
}
