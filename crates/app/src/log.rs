//! The log the UI shows: state changes and errors, newest last, bounded.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use ts_rs::TS;

/// Entries kept; older ones are dropped.
pub const LOG_CAPACITY: usize = 500;

/// How serious an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Progress.
    Info,
    /// Something degraded (reconnecting).
    Warn,
    /// Something failed.
    Error,
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct LogEntry {
    /// Milliseconds since the Unix epoch.
    #[ts(type = "number")]
    pub at_ms: u64,
    /// Level.
    pub level: LogLevel,
    /// The contract's or the app's code, for errors.
    pub code: Option<String>,
    /// Human sentence.
    pub message: String,
}

impl LogEntry {
    /// An entry stamped now.
    pub fn now(level: LogLevel, code: Option<&str>, message: impl Into<String>) -> LogEntry {
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        LogEntry {
            at_ms,
            level,
            code: code.map(str::to_owned),
            message: message.into(),
        }
    }
}

/// A bounded, shared log.
#[derive(Debug, Default)]
pub struct LogBook(Mutex<VecDeque<LogEntry>>);

impl LogBook {
    /// Appends, dropping the oldest beyond [`LOG_CAPACITY`].
    pub fn push(&self, entry: LogEntry) {
        let mut entries = self.0.lock().unwrap();
        if entries.len() == LOG_CAPACITY {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// All entries, oldest first.
    pub fn entries(&self) -> Vec<LogEntry> {
        self.0.lock().unwrap().iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_bounded_and_keeps_the_newest() {
        let book = LogBook::default();
        for i in 0..LOG_CAPACITY + 10 {
            book.push(LogEntry::now(LogLevel::Info, None, format!("line {i}")));
        }
        let entries = book.entries();
        assert_eq!(entries.len(), LOG_CAPACITY);
        assert_eq!(entries[0].message, "line 10");
        assert_eq!(
            entries.last().unwrap().message,
            format!("line {}", LOG_CAPACITY + 9)
        );
    }
}
