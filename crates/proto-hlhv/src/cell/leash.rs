//! The leash: the cell's control connection.
//!
//! `IAm{connKind 0, uuid "", key}` goes out first; the queen answers
//! `Accept{uuid, sessionKey}` (or closes the connection: a wrong key), and
//! the cell mounts at once. After that the queen sends only `NeedBand`,
//! which must be answered immediately: a public request waits for the band.
//! Anything else on the leash is a protocol error (the Go queen likewise
//! kicks a cell that sends anything but Mount and Unmount).

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::{CellError, Session};
use crate::frame::{ConnKind, Frame, IAm, Mount};

/// How the leash logs in and where it mounts.
#[derive(Clone, PartialEq, Eq)]
pub struct LeashConfig {
    /// The cell key. Never logged: `Debug` hides it.
    pub key: String,
    /// The public host to mount on.
    pub host: String,
    /// The path to mount on; `/`-terminated to take everything below.
    pub path: String,
    /// How long the queen may take to accept the login.
    pub login_timeout: Duration,
}

impl fmt::Debug for LeashConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeashConfig")
            .field("key", &"<redacted>")
            .field("host", &self.host)
            .field("path", &self.path)
            .field("login_timeout", &self.login_timeout)
            .finish()
    }
}

/// What the driver acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeashEvent {
    /// The queen accepted the login; the mount has been queued.
    Accepted(Session),
    /// Open this many bands now (at least 1).
    NeedBands(u32),
}

#[derive(Debug)]
enum State {
    LoggingIn {
        deadline: Instant,
    },
    Mounted,
    /// Unmounted by the cell: `NeedBand`s still in flight are ignored.
    Unmounted,
}

/// The leash machine.
pub struct Leash {
    state: State,
    mount: Mount,
    login_timeout: Duration,
    out: BytesMut,
    events: VecDeque<LeashEvent>,
}

/// Shows no queued bytes: the `IAm` among them carries the key.
impl fmt::Debug for Leash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leash")
            .field("state", &self.state)
            .field("mount", &self.mount)
            .field("queued_bytes", &self.out.len())
            .finish()
    }
}

impl Leash {
    /// A leash logging in from `now`: the `IAm` is queued.
    pub fn new(now: Instant, config: LeashConfig) -> Leash {
        let mut out = BytesMut::new();
        Frame::IAm(IAm {
            conn_kind: ConnKind::Cell.code(),
            uuid: String::new(),
            key: config.key,
        })
        .write(&mut out);
        Leash {
            state: State::LoggingIn {
                deadline: now + config.login_timeout,
            },
            mount: Mount {
                host: config.host,
                path: config.path,
            },
            login_timeout: config.login_timeout,
            out,
            events: VecDeque::new(),
        }
    }

    /// Takes one frame from the queen.
    pub fn handle_frame(&mut self, frame: Frame) -> Result<(), CellError> {
        match (&self.state, frame) {
            (State::LoggingIn { .. }, Frame::Accept(accept)) => {
                if accept.uuid.is_empty() {
                    return Err(CellError::EmptyUuid);
                }
                Frame::Mount(self.mount.clone()).write(&mut self.out);
                self.state = State::Mounted;
                self.events
                    .push_back(LeashEvent::Accepted(Session::new(accept.uuid, accept.key)));
                Ok(())
            }
            (State::Mounted, Frame::NeedBand(need)) => {
                // The Go queen always asks for 1; a count below 1 asks for
                // nothing, and a huge one is capped by the driver's limit.
                if need.count > 0 {
                    let count = u32::try_from(need.count).unwrap_or(u32::MAX);
                    self.events.push_back(LeashEvent::NeedBands(count));
                }
                Ok(())
            }
            (State::Unmounted, Frame::NeedBand(_)) => Ok(()),
            (state, frame) => Err(CellError::Unexpected {
                state: match state {
                    State::LoggingIn { .. } => "waiting for the leash Accept",
                    State::Mounted | State::Unmounted => "mounted",
                },
                kind: frame.kind(),
            }),
        }
    }

    /// Fails the login once its deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), CellError> {
        super::check_login(self.poll_timeout(), now, self.login_timeout)
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::LoggingIn { deadline } => Some(deadline),
            _ => None,
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<LeashEvent> {
        self.events.pop_front()
    }

    /// Bytes to write to the leash, if any.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        (!self.out.is_empty()).then(|| self.out.split().freeze())
    }

    /// Queues an `Unmount`, so the queen stops routing here before the leash
    /// closes. Does nothing before the mount or twice.
    pub fn unmount(&mut self) {
        if matches!(self.state, State::Mounted) {
            Frame::Unmount.write(&mut self.out);
            self.state = State::Unmounted;
        }
    }

    /// Whether the mount has been sent and not withdrawn.
    pub fn is_mounted(&self) -> bool {
        matches!(self.state, State::Mounted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Accept, Kind, NeedBand};
    use crate::fsock::FrameReader;
    use proptest::prelude::*;

    fn config() -> LeashConfig {
        LeashConfig {
            key: "cell-key".into(),
            host: "demo.example".into(),
            path: "/app/".into(),
            login_timeout: Duration::from_secs(5),
        }
    }

    fn sent(leash: &mut Leash) -> Vec<Frame> {
        let mut buf = BytesMut::from(&leash.poll_transmit().unwrap_or_default()[..]);
        let mut frames = Vec::new();
        while let Some(frame) = FrameReader::default().decode(&mut buf).unwrap() {
            frames.push(frame);
        }
        frames
    }

    fn accept() -> Frame {
        Frame::Accept(Accept {
            uuid: "u-1".into(),
            key: "session".into(),
        })
    }

    #[test]
    fn logs_in_mounts_and_asks_for_bands() {
        let now = Instant::now();
        let mut leash = Leash::new(now, config());
        assert_eq!(
            sent(&mut leash),
            [Frame::IAm(IAm {
                conn_kind: 0,
                uuid: String::new(),
                key: "cell-key".into()
            })]
        );
        assert_eq!(leash.poll_timeout(), Some(now + Duration::from_secs(5)));
        leash.handle_frame(accept()).unwrap();
        assert_eq!(
            leash.poll_event(),
            Some(LeashEvent::Accepted(Session::new("u-1", "session")))
        );
        assert_eq!(
            sent(&mut leash),
            [Frame::Mount(Mount {
                host: "demo.example".into(),
                path: "/app/".into()
            })]
        );
        assert!(leash.is_mounted());
        assert_eq!(leash.poll_timeout(), None);
        leash
            .handle_frame(Frame::NeedBand(NeedBand { count: 1 }))
            .unwrap();
        leash
            .handle_frame(Frame::NeedBand(NeedBand { count: 0 }))
            .unwrap();
        leash
            .handle_frame(Frame::NeedBand(NeedBand { count: 3 }))
            .unwrap();
        assert_eq!(leash.poll_event(), Some(LeashEvent::NeedBands(1)));
        assert_eq!(leash.poll_event(), Some(LeashEvent::NeedBands(3)));
        assert_eq!(leash.poll_event(), None);
        leash.unmount();
        assert_eq!(sent(&mut leash), [Frame::Unmount]);
        leash.unmount();
        assert_eq!(leash.poll_transmit(), None);
        leash
            .handle_frame(Frame::NeedBand(NeedBand { count: 1 }))
            .unwrap();
        assert_eq!(leash.poll_event(), None);
    }

    #[test]
    fn a_silent_queen_times_out() {
        let now = Instant::now();
        let mut leash = Leash::new(now, config());
        leash.handle_timeout(now + Duration::from_secs(4)).unwrap();
        assert_eq!(
            leash.handle_timeout(now + Duration::from_secs(5)),
            Err(CellError::LoginTimeout(5000))
        );
    }

    #[test]
    fn unexpected_frames_are_typed_errors() {
        let mut leash = Leash::new(Instant::now(), config());
        assert_eq!(
            leash.handle_frame(Frame::NeedBand(NeedBand { count: 1 })),
            Err(CellError::Unexpected {
                state: "waiting for the leash Accept",
                kind: Kind::NeedBand
            })
        );
        let mut leash = Leash::new(Instant::now(), config());
        assert_eq!(
            leash.handle_frame(Frame::Accept(Accept::default())),
            Err(CellError::EmptyUuid)
        );
        leash.handle_frame(accept()).unwrap();
        assert!(matches!(
            leash.handle_frame(accept()),
            Err(CellError::Unexpected {
                kind: Kind::Accept,
                ..
            })
        ));
        assert!(matches!(
            leash.handle_frame(Frame::ReqEnd),
            Err(CellError::Unexpected {
                kind: Kind::ReqEnd,
                ..
            })
        ));
    }

    #[test]
    fn the_key_is_never_printed() {
        let text = format!("{:?}", Leash::new(Instant::now(), config()));
        // The queued IAm is in the output buffer as bytes, not as text.
        let text = text + &format!("{:?}", config());
        assert!(!text.contains("cell-key"), "{text}");
    }

    proptest! {
        #[test]
        fn after_the_mount_only_need_band_is_accepted(kind in 0u8..=0xff, count in any::<i64>()) {
            let mut leash = Leash::new(Instant::now(), config());
            leash.handle_frame(accept()).unwrap();
            let _ = leash.poll_event();
            let frame = match Kind::from_byte(kind) {
                Some(Kind::NeedBand) | None => Frame::NeedBand(NeedBand { count }),
                Some(Kind::ReqBody) => Frame::ReqBody(Bytes::new()),
                Some(_) => Frame::ResEnd,
            };
            let is_need = matches!(frame, Frame::NeedBand(_));
            let result = leash.handle_frame(frame);
            prop_assert_eq!(result.is_ok(), is_need);
            if is_need {
                let expected = (count > 0).then(|| LeashEvent::NeedBands(u32::try_from(count).unwrap_or(u32::MAX)));
                prop_assert_eq!(leash.poll_event(), expected);
            }
        }
    }
}
