//! The client's stream-id rules from seed 000, as a plain state machine.
//!
//! - ids are `s1`, `s2`, … when the caller gives none, and never reused;
//! - opening past `max_streams` fails locally with `stream_limit`, so no
//!   `stream_open` is sent;
//! - data may be sent only on open streams, else `unknown_stream`.

use std::collections::HashSet;

/// A rule of the SDK was broken; nothing was sent.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamRuleError {
    /// `max_streams` streams are already open.
    #[error("stream_limit: {max} streams are already open")]
    StreamLimit {
        /// The session's limit.
        max: u32,
    },
    /// The stream is not open (never opened, or already closed).
    #[error("unknown_stream: stream {0:?} is not open")]
    UnknownStream(String),
    /// The caller asked for an id already used in this session.
    #[error("stream id {0:?} was already used in this session")]
    IdReused(String),
    /// The caller gave an empty id.
    #[error("stream id must not be empty")]
    EmptyId,
}

impl StreamRuleError {
    /// The seed's error name: `stream_limit`, `unknown_stream`, or `bad_stream`.
    pub fn code(&self) -> &'static str {
        match self {
            StreamRuleError::StreamLimit { .. } => "stream_limit",
            StreamRuleError::UnknownStream(_) => "unknown_stream",
            StreamRuleError::IdReused(_) | StreamRuleError::EmptyId => "bad_stream",
        }
    }
}

/// Which streams of one session are open, and which ids were used.
#[derive(Debug, Clone)]
pub struct ClientStreams {
    max_streams: u32,
    next_auto: u64,
    open: HashSet<String>,
    /// Ids the caller chose, kept so they are never handed out again. Auto ids
    /// need no record: the counter only grows.
    explicit_used: HashSet<String>,
}

impl ClientStreams {
    /// Rules for a session whose `ready` allowed `max_streams`.
    pub fn new(max_streams: u32) -> Self {
        ClientStreams {
            max_streams,
            next_auto: 1,
            open: HashSet::new(),
            explicit_used: HashSet::new(),
        }
    }

    /// The session's stream limit.
    pub fn max_streams(&self) -> u32 {
        self.max_streams
    }

    /// Number of open streams.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Whether `id` is open.
    pub fn is_open(&self, id: &str) -> bool {
        self.open.contains(id)
    }

    /// Opens a stream with the caller's id, or the next `sN` when `id` is `None`.
    pub fn open(&mut self, id: Option<&str>) -> Result<String, StreamRuleError> {
        if self.open.len() >= self.max_streams as usize {
            return Err(StreamRuleError::StreamLimit {
                max: self.max_streams,
            });
        }
        let id = match id {
            Some("") => return Err(StreamRuleError::EmptyId),
            Some(id) => {
                if self.open.contains(id)
                    || self.explicit_used.contains(id)
                    || self.is_past_auto(id)
                {
                    return Err(StreamRuleError::IdReused(id.to_owned()));
                }
                self.explicit_used.insert(id.to_owned());
                id.to_owned()
            }
            None => loop {
                let candidate = format!("s{}", self.next_auto);
                self.next_auto += 1;
                if !self.explicit_used.contains(&candidate) {
                    break candidate;
                }
            },
        };
        self.open.insert(id.clone());
        Ok(id)
    }

    /// Checks that data may be sent on `id`.
    pub fn check_open(&self, id: &str) -> Result<(), StreamRuleError> {
        if self.open.contains(id) {
            Ok(())
        } else {
            Err(StreamRuleError::UnknownStream(id.to_owned()))
        }
    }

    /// Marks `id` closed; returns whether it was open.
    pub fn close(&mut self, id: &str) -> bool {
        self.open.remove(id)
    }

    /// Whether `id` is an auto id the counter already handed out.
    fn is_past_auto(&self, id: &str) -> bool {
        id.strip_prefix('s')
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n >= 1 && n < self.next_auto && format!("s{n}") == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_ids_count_up_and_are_never_reused() {
        let mut s = ClientStreams::new(8);
        assert_eq!(s.open(None).unwrap(), "s1");
        assert_eq!(s.open(None).unwrap(), "s2");
        assert!(s.close("s1"));
        assert_eq!(s.open(None).unwrap(), "s3");
        assert_eq!(
            s.open(Some("s1")),
            Err(StreamRuleError::IdReused("s1".into()))
        );
    }

    #[test]
    fn explicit_ids_are_skipped_by_the_counter() {
        let mut s = ClientStreams::new(8);
        assert_eq!(s.open(Some("s1")).unwrap(), "s1");
        assert_eq!(s.open(None).unwrap(), "s2");
        assert_eq!(s.open(Some("custom")).unwrap(), "custom");
        s.close("custom");
        assert_eq!(
            s.open(Some("custom")),
            Err(StreamRuleError::IdReused("custom".into()))
        );
        assert_eq!(s.open(Some("")), Err(StreamRuleError::EmptyId));
    }

    #[test]
    fn limit_is_enforced_locally() {
        let mut s = ClientStreams::new(2);
        s.open(None).unwrap();
        s.open(None).unwrap();
        let err = s.open(None).unwrap_err();
        assert_eq!(err.code(), "stream_limit");
        s.close("s1");
        assert_eq!(s.open(None).unwrap(), "s3");
    }

    #[test]
    fn unknown_stream_is_reported() {
        let mut s = ClientStreams::new(2);
        assert_eq!(s.check_open("s1").unwrap_err().code(), "unknown_stream");
        s.open(None).unwrap();
        assert!(s.check_open("s1").is_ok());
        s.close("s1");
        assert_eq!(s.check_open("s1").unwrap_err().code(), "unknown_stream");
    }
}
