//! Printing engine events: one line per event for people, or JSON lines.

pub use engine::units::human_bytes;
use engine::{EngineEvent, SessionState};

/// The line `event` prints as (without its newline), if any.
pub fn event_line(event: &EngineEvent, json: bool) -> Option<String> {
    if json {
        return match serde_json::to_string(event) {
            Ok(line) => Some(line),
            Err(e) => {
                eprintln!("warning: cannot print an event as JSON: {e}");
                None
            }
        };
    }
    match event {
        EngineEvent::State(state) => Some(describe_state(state)),
        // A request served by a publication: its one line comes when it
        // is answered (status, bytes, duration).
        EngineEvent::StreamOpened(s) if s.protocol == engine::publish::REQUEST_PROTOCOL => None,
        EngineEvent::StreamOpened(s) => Some(format!(
            "  + {} {} ({}, waited {} ms)",
            s.stream_id.as_deref().unwrap_or("-"),
            s.target,
            s.protocol,
            s.wait_ms
        )),
        EngineEvent::StreamClosed(s) => Some(format!(
            "  - {} {} ↑{} ↓{} ({})",
            s.stream_id.as_deref().unwrap_or("-"),
            s.target,
            human_bytes(s.bytes_up),
            human_bytes(s.bytes_down),
            s.close_reason.as_deref().unwrap_or("closed")
        )),
        EngineEvent::Streams { .. } => None,
        EngineEvent::Error { code, message } => Some(format!("! {code}: {message}")),
    }
}

/// One line for a state.
pub fn describe_state(state: &SessionState) -> String {
    match state {
        SessionState::Disconnected { reason: None } => "✗ disconnected".to_owned(),
        SessionState::Disconnected {
            reason: Some(reason),
        } => format!("✗ disconnected: {reason}"),
        SessionState::Authenticating { server } => format!("… connecting to {server}"),
        SessionState::Active {
            session_id,
            gateway,
            max_streams,
            ..
        } => match max_streams {
            // A publication: nothing of ours is multiplexed there.
            0 => format!("✓ connected to {gateway} (session {session_id})"),
            _ => format!(
                "✓ connected to {gateway} (session {session_id}, up to {max_streams} streams)"
            ),
        },
        SessionState::Reconnecting {
            attempt,
            max_attempts,
            retry_in_secs,
            last_error,
        } if *max_attempts == 0 => format!(
            "↻ connection lost ({last_error}); attempt {attempt} (keeps trying) in {retry_in_secs:.1} s"
        ),
        SessionState::Reconnecting {
            attempt,
            max_attempts,
            retry_in_secs,
            last_error,
        } => format!(
            "↻ connection lost ({last_error}); attempt {attempt}/{max_attempts} in {retry_in_secs:.1} s"
        ),
    }
}
