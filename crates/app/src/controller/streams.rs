//! The Connect panel's table commands: closing one connection (the ×) and
//! exporting the table and the log to files.
//!
//! The export is written by the app, not downloaded by the window: a
//! WebView's blob download goes nowhere in a Tauri app. Two files land in
//! the user's Downloads directory (`~/Downloads` when the desktop names
//! none), named with the UTC time: the table (open rows and the engine's
//! recently closed ones, every column) as CSV, and the log as text. Neither
//! holds a secret: the table has none, log sentences are written to hold
//! none, and [`redact`] masks anything shaped like one (a link's `s=`, a
//! `token=`, a URL's password, a bearer token) in case a message quotes
//! text from elsewhere.

use std::io::Write;
use std::path::{Path, PathBuf};

use engine::{EngineError, StreamInfo};
use serde::Serialize;
use ts_rs::TS;

use super::{Controller, blocking};
use crate::error::{CommandCode, CommandError};
use crate::log::{LogEntry, LogLevel};

/// Where an export was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct ExportedLog {
    /// The connections, CSV.
    pub connections: String,
    /// The log, text.
    pub log: String,
    /// Rows in the CSV.
    pub rows: u32,
    /// Log entries in the text file.
    pub entries: u32,
}

impl Controller {
    /// Closes live row `key`'s connection (both ends; the row closes as
    /// "closed from the app"). `not_found` when no open row has that key.
    pub fn close_stream(&self, key: u64) -> Result<(), CommandError> {
        match self.inner.engine.close_stream(key) {
            Ok(row) => {
                tracing::info!(key, target = %row.target, "connection closed from the app");
                Ok(())
            }
            Err(e @ EngineError::StreamGone { .. }) => {
                Err(CommandError::new(CommandCode::NotFound, e.to_string()))
            }
            Err(e) => Err(CommandError::new(CommandCode::Engine, e.to_string())),
        }
    }

    /// Writes the table (CSV) and the log (text) into the user's Downloads
    /// directory and says where.
    pub async fn export_log(&self) -> Result<ExportedLog, CommandError> {
        let dir = downloads_dir().ok_or_else(|| {
            CommandError::new(
                CommandCode::Unsupported,
                "this user has no home directory to save the export in",
            )
        })?;
        self.export_log_to(dir).await
    }

    /// [`Controller::export_log`] into `dir` (created if missing).
    pub async fn export_log_to(&self, dir: PathBuf) -> Result<ExportedLog, CommandError> {
        let snapshot = self.inner.engine.snapshot();
        let rows: Vec<StreamInfo> = snapshot.open.into_iter().chain(snapshot.closed).collect();
        let entries = self.inner.log.entries();
        let stamp = file_stamp(now_ms());
        let (csv, text) = (connections_csv(&rows), log_text(&entries));
        let (connections, log) = blocking(move || {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let connections = write_new(&dir, &format!("httvps-connections-{stamp}"), "csv", &csv)?;
            let log = write_new(&dir, &format!("httvps-log-{stamp}"), "txt", &text)?;
            Ok((connections, log))
        })
        .await
        .map_err(|e| CommandError::new(CommandCode::Settings, e))?;
        let exported = ExportedLog {
            connections: connections.display().to_string(),
            log: log.display().to_string(),
            rows: rows.len() as u32,
            entries: entries.len() as u32,
        };
        self.log(
            LogLevel::Info,
            None,
            format!(
                "Connections and log saved to {} and {}.",
                exported.connections, exported.log
            ),
        );
        Ok(exported)
    }
}

/// The user's Downloads directory, or `~/Downloads` when the desktop names
/// none (no `XDG_DOWNLOAD_DIR`).
fn downloads_dir() -> Option<PathBuf> {
    let dirs = directories::UserDirs::new()?;
    Some(
        dirs.download_dir()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dirs.home_dir().join("Downloads")),
    )
}

/// Writes `text` to a new file `DIR/NAME.EXT` (`NAME-2.EXT`, … when one is
/// there already: an export never overwrites).
fn write_new(dir: &Path, name: &str, ext: &str, text: &str) -> Result<PathBuf, String> {
    for n in 1..100 {
        let file = if n == 1 {
            format!("{name}.{ext}")
        } else {
            format!("{name}-{n}.{ext}")
        };
        let path = dir.join(file);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                return f
                    .write_all(text.as_bytes())
                    .map(|()| path.clone())
                    .map_err(|e| format!("cannot write {}: {e}", path.display()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot write {}: {e}", path.display())),
        }
    }
    Err(format!(
        "too many exports named {name} in {}",
        dir.display()
    ))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The CSV columns, in order: every field of a row.
const CSV_HEADER: &str = "key,stream_id,protocol,target,client,route,rule,state,started_utc,\
                          started_unix,ended_unix,bytes_up,bytes_down,rate_up,rate_down,wait_ms,close_reason";

/// The table as CSV (RFC 4180: CRLF line ends, fields quoted when needed).
pub fn connections_csv(rows: &[StreamInfo]) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push_str("\r\n");
    for s in rows {
        let state = match s.state {
            engine::table::StreamState::Opening => "opening",
            engine::table::StreamState::Open => "open",
            engine::table::StreamState::Closed => "closed",
        };
        let fields = [
            s.key.to_string(),
            s.stream_id.clone().unwrap_or_default(),
            s.protocol.clone(),
            s.target.clone(),
            s.client.clone(),
            s.route.map(|a| a.to_string()).unwrap_or_default(),
            s.rule.clone().unwrap_or_default(),
            state.to_owned(),
            utc(s.started_unix * 1000, false),
            s.started_unix.to_string(),
            s.ended_unix.map(|t| t.to_string()).unwrap_or_default(),
            s.bytes_up.to_string(),
            s.bytes_down.to_string(),
            format!("{:.0}", s.rate_up),
            format!("{:.0}", s.rate_down),
            s.wait_ms.to_string(),
            redact(s.close_reason.as_deref().unwrap_or_default()),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

/// One CSV field: quoted when it holds a comma, a quote or a line break;
/// text a spreadsheet would run as a formula (`=`, `+`, `-`, `@` first)
/// gets a leading `'`.
fn csv_field(field: &str) -> String {
    let field = if field.starts_with(['=', '+', '-', '@']) {
        format!("'{field}")
    } else {
        field.to_owned()
    };
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field
    }
}

/// The log as text, one entry a line, oldest first:
/// `2026-12-07T11:31:22.123Z  INFO  [code] message`.
pub fn log_text(entries: &[LogEntry]) -> String {
    let mut out = String::new();
    for e in entries {
        let level = match e.level {
            LogLevel::Info => "INFO ",
            LogLevel::Warn => "WARN ",
            LogLevel::Error => "ERROR",
        };
        out.push_str(&utc(e.at_ms, true));
        out.push_str("  ");
        out.push_str(level);
        out.push_str("  ");
        if let Some(code) = &e.code {
            out.push_str(&format!("[{code}] "));
        }
        // One entry, one line.
        out.push_str(&redact(&e.message).replace(['\r', '\n'], " "));
        out.push('\n');
    }
    out
}

/// What a secret may follow: `NAME=` in a query or text, a bearer token.
const SECRET_KEYS: &[&str] = &[
    "token=",
    "secret=",
    "password=",
    "passwd=",
    "key=",
    "s=",
    "Bearer ",
];

/// Masks what looks like a secret in `text`: the value after one of
/// [`SECRET_KEYS`] (a name starting at a word boundary; `s=` only as a
/// query parameter, after `?` or `&`) and the password of a URL
/// (`scheme://user:pass@`). Values end at white space, `&`, `#` or a quote.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while !rest.is_empty() {
        for key in SECRET_KEYS {
            if !rest.starts_with(key) {
                continue;
            }
            let before = out.chars().next_back();
            let boundary = if *key == "s=" {
                matches!(before, Some('?' | '&'))
            } else {
                !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
            };
            if !boundary {
                continue;
            }
            let value = rest[key.len()..]
                .find(|c: char| c.is_whitespace() || matches!(c, '&' | '#' | '"' | '\''))
                .unwrap_or(rest.len() - key.len());
            out.push_str(key);
            if value > 0 {
                out.push_str("<redacted>");
            }
            rest = &rest[key.len() + value..];
            continue 'scan;
        }
        if let Some(after) = rest.strip_prefix("://") {
            // `user:pass@host`: the password goes, the user stays.
            let authority_end = after
                .find(|c: char| c.is_whitespace() || matches!(c, '/' | '?' | '#'))
                .unwrap_or(after.len());
            if let Some(at) = after[..authority_end].rfind('@')
                && let Some(colon) = after[..at].find(':')
            {
                out.push_str("://");
                out.push_str(&after[..colon]);
                out.push_str(":<redacted>");
                rest = &after[at..];
                continue;
            }
        }
        let c = rest.chars().next().expect("not empty");
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// `ms` since the epoch as UTC: `2026-12-07T11:31:22.123Z` (`with_ms`) or
/// `2026-12-07 11:31:22`.
fn utc(ms: u64, with_ms: bool) -> String {
    let (y, mo, d, h, mi, s) = civil(ms / 1000);
    if with_ms {
        format!(
            "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z",
            ms % 1000
        )
    } else {
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
    }
}

/// The file names' time: `20261207-113122` (UTC).
fn file_stamp(ms: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(ms / 1000);
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}")
}

/// Seconds since the epoch as UTC year, month, day, hour, minute, second
/// (the proleptic Gregorian calendar; H. Hinnant's `civil_from_days`).
fn civil(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

#[cfg(test)]
#[path = "streams_tests.rs"]
mod tests;
