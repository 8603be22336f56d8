//! The login step of a new connection to the queen.
//!
//! The first frame must be an IAm, within a deadline (1 s in the Go queen
//! and ours by default). What it claims decides the connection's fate:
//! connKind 0 is a leash (the key is the cell key), 1 a band (the uuid and
//! key are what a leash's Accept gave). Anything else closes the connection
//! with a [`LoginError`]: the Go queen leaves a connection with an unknown
//! connKind open and idle forever, and never checks the cell key at all.
//!
//! The keys are checked by the driver against its [`Secret`]s, which
//! compare in constant time.

use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

use crate::frame::{ConnKind, Frame, FrameError, Kind};

/// A key (the cell key, a session key) that is compared in constant time
/// and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// A secret holding `bytes`.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret(bytes.into())
    }

    /// The secret itself, to send it (a session key in Accept).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Whether `candidate` is this secret. The time taken depends on the
    /// candidate's length only, never on where the bytes differ nor on the
    /// secret's length (an empty secret matches nothing).
    pub fn matches(&self, candidate: &[u8]) -> bool {
        if self.0.is_empty() {
            return false;
        }
        let mut equal = subtle::Choice::from(u8::from(candidate.len() == self.0.len()));
        for (i, byte) in candidate.iter().enumerate() {
            equal &= byte.ct_eq(&self.0[i % self.0.len()]);
        }
        equal.into()
    }
}

/// What a connection's IAm claims; the driver checks the keys.
#[derive(Clone, PartialEq, Eq)]
pub enum Claim {
    /// A leash, with the cell key it offers.
    Leash {
        /// The offered cell key.
        key: String,
    },
    /// A band of the cell `uuid`, with the session key it offers.
    Band {
        /// The cell's id, from the leash's Accept.
        uuid: String,
        /// The offered session key.
        key: String,
    },
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Claim::Leash { .. } => f.write_str("Leash { key: .. }"),
            Claim::Band { uuid, .. } => write!(f, "Band {{ uuid: {uuid:?}, key: .. }}"),
        }
    }
}

/// Why a connection was closed at login.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// No complete IAm before the deadline (the TLS handshake included).
    #[error("no login within the deadline")]
    Timeout,
    /// The connection closed or failed before its IAm.
    #[error("closed before logging in")]
    Closed,
    /// The first bytes are not a frame (or one over the cap).
    #[error("bad login frame: {0}")]
    BadFrame(FrameError),
    /// The first frame is not an IAm.
    #[error("first frame is {0:?}, not IAm")]
    NotIAm(Kind),
    /// The IAm names a connection kind that is neither 0 nor 1.
    #[error("unknown connection kind {0}")]
    UnknownConnKind(i64),
    /// A leash offered the wrong cell key.
    #[error("wrong cell key")]
    WrongKey,
    /// A band named a cell that is not connected.
    #[error("band of an unknown cell")]
    UnknownCell,
    /// A band offered the wrong session key for its cell.
    #[error("wrong session key")]
    WrongSessionKey,
    /// The queen holds as many cells, or the cell as many bands, as allowed.
    #[error("no room for another connection")]
    Full,
}

impl LoginError {
    /// A short label for metrics (`hlhv_queen_login_failures_total{reason}`).
    pub fn reason(&self) -> &'static str {
        match self {
            LoginError::Timeout => "timeout",
            LoginError::Closed => "closed",
            LoginError::BadFrame(_) => "bad_frame",
            LoginError::NotIAm(_) => "not_iam",
            LoginError::UnknownConnKind(_) => "unknown_conn_kind",
            LoginError::WrongKey => "wrong_key",
            LoginError::UnknownCell => "unknown_cell",
            LoginError::WrongSessionKey => "wrong_session_key",
            LoginError::Full => "full",
        }
    }
}

/// One connection's login: a deadline and the rule for its first frame.
#[derive(Debug, Clone, Copy)]
pub struct Login {
    deadline: Instant,
}

impl Login {
    /// A login that began at `now` and must be done within `timeout`.
    pub fn new(now: Instant, timeout: Duration) -> Login {
        Login {
            deadline: now + timeout,
        }
    }

    /// When the login times out.
    pub fn poll_timeout(&self) -> Instant {
        self.deadline
    }

    /// Fails the login once its deadline has passed.
    pub fn handle_timeout(&self, now: Instant) -> Result<(), LoginError> {
        if now >= self.deadline {
            Err(LoginError::Timeout)
        } else {
            Ok(())
        }
    }

    /// Judges the first frame (or the error reading it) received at `now`.
    pub fn handle_frame(
        self,
        now: Instant,
        frame: Result<Frame, FrameError>,
    ) -> Result<Claim, LoginError> {
        self.handle_timeout(now)?;
        let iam = match frame.map_err(LoginError::BadFrame)? {
            Frame::IAm(iam) => iam,
            other => return Err(LoginError::NotIAm(other.kind())),
        };
        match iam.kind() {
            Some(ConnKind::Cell) => Ok(Claim::Leash { key: iam.key }),
            Some(ConnKind::Band) => Ok(Claim::Band {
                uuid: iam.uuid,
                key: iam.key,
            }),
            None => Err(LoginError::UnknownConnKind(iam.conn_kind)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{IAm, Mount};

    fn iam(conn_kind: i64, uuid: &str, key: &str) -> Result<Frame, FrameError> {
        Ok(Frame::IAm(IAm {
            conn_kind,
            uuid: uuid.into(),
            key: key.into(),
        }))
    }

    #[test]
    fn claims_and_refusals() {
        let t0 = Instant::now();
        let login = Login::new(t0, Duration::from_secs(1));
        assert_eq!(
            login.handle_frame(t0, iam(0, "", "k")),
            Ok(Claim::Leash { key: "k".into() })
        );
        assert_eq!(
            login.handle_frame(t0, iam(1, "u", "s")),
            Ok(Claim::Band {
                uuid: "u".into(),
                key: "s".into()
            })
        );
        assert_eq!(
            login.handle_frame(t0, iam(2, "", "")),
            Err(LoginError::UnknownConnKind(2))
        );
        assert_eq!(
            login.handle_frame(t0, Ok(Frame::Mount(Mount::default()))),
            Err(LoginError::NotIAm(Kind::Mount))
        );
        assert_eq!(
            login.handle_frame(t0, Err(FrameError::Empty)),
            Err(LoginError::BadFrame(FrameError::Empty))
        );
        let late = t0 + Duration::from_secs(1);
        assert_eq!(login.handle_timeout(late), Err(LoginError::Timeout));
        assert_eq!(
            login.handle_frame(late, iam(0, "", "k")),
            Err(LoginError::Timeout)
        );
        assert_eq!(login.poll_timeout(), late);
    }

    #[test]
    fn secrets_compare_whole_and_never_print() {
        let s = Secret::new(b"correct horse".to_vec());
        assert!(s.matches(b"correct horse"));
        assert!(!s.matches(b"correct hors"));
        assert!(!s.matches(b"correct horse!"));
        assert!(!s.matches(b"correct horsf"));
        assert!(!s.matches(b""));
        assert!(!Secret::new(Vec::new()).matches(b""), "no empty key");
        assert_eq!(format!("{s:?}"), "Secret(..)");
        let claim = Claim::Leash {
            key: "hunter2".into(),
        };
        assert!(!format!("{claim:?}").contains("hunter2"));
    }
}
