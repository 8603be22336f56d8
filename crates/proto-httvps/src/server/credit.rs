//! The gateway's side of the `flow_control` extension: client bytes checked
//! against the windows the session granted, grants as the driver reports
//! bytes written upstream, and the client's grants passed on as
//! [`Action::Credit`] for the stream tasks ([`crate::flow`]).

use std::borrow::Cow;
use std::time::Instant;

use super::{Action, CloseReason, Entry, Session, close_code};
use crate::error::ErrorCode;
use crate::flow::{FlowViolation, consume, release};
use crate::frame::Frame;

impl Session {
    /// The driver wrote `n` of the stream's bytes to its upstream at `now`
    /// (`flow_control`): grants the client more credit once half a window
    /// was written. Reports for a stream that ended are ignored: its
    /// buffered bytes went back to the session when it ended.
    pub fn handle_consumed(&mut self, id: &str, serial: u64, n: usize, now: Instant) {
        if self.closed {
            return;
        }
        let rtt = self.params.rtt;
        let Some((id, entry)) = self.streams.get_key_value(id) else {
            return;
        };
        if entry.serial != serial {
            return;
        }
        let id = id.clone();
        let entry = self.streams.get_mut(&*id).expect("looked up just above");
        let (Some(stream), Some(session)) = (entry.recv.as_mut(), self.recv.as_mut()) else {
            return;
        };
        let grants = consume(stream, session, n, now, rtt);
        if let Some(increment) = grants.stream {
            self.grant(Some(&id), increment);
        }
        if let Some(increment) = grants.session {
            self.grant(None, increment);
        }
    }

    /// Gives `n` bytes back to the session window; grants when due.
    pub(super) fn release(&mut self, n: u64, now: Instant) {
        let rtt = self.params.rtt;
        if let Some(increment) = self.recv.as_mut().and_then(|r| release(r, n, now, rtt)) {
            self.grant(None, increment);
        }
    }

    pub(super) fn grant(&mut self, stream_id: Option<&str>, increment: u64) {
        self.actions.push_back(Action::Send(Frame::WindowUpdate {
            stream_id: stream_id.map(|s| Cow::Owned(s.to_owned())),
            increment,
        }));
    }

    pub(super) fn handle_window_update(&mut self, stream_id: Option<&str>, increment: u64) {
        if !self.params.flow_control {
            self.send_error(
                ErrorCode::Unsupported,
                "window_update without the flow_control extension",
                None,
            );
            self.violation();
            return;
        }
        let id = match stream_id {
            None => None,
            // Updates for a stream that ended (or never was) are late or
            // harmless: dropped quietly.
            Some(id) => match self.streams.get_key_value(id) {
                Some((id, _)) => Some(id.clone()),
                None => return,
            },
        };
        self.actions.push_back(Action::Credit { id, increment });
    }

    /// Counts `n` client bytes of `id` against the windows. `Err` ends the
    /// stream (its window overrun); a session overrun closes the session.
    pub(super) fn receive(&mut self, id: &str, n: usize) -> Result<(), FlowViolation> {
        if let Some(session) = self.recv.as_mut()
            && let Err(violation) = session.on_receive(n)
        {
            let msg = format!("flow control: {violation}");
            self.send_error(ErrorCode::BadFrame, &msg, None);
            self.close(close_code::POLICY, "flow control violated");
            return Err(violation);
        }
        match self.streams.get_mut(id).and_then(|e| e.recv.as_mut()) {
            Some(stream) => stream.on_receive(n),
            None => Ok(()),
        }
    }

    /// The client overran a stream's window: the stream ends, the session
    /// goes on (a session overrun already closed it).
    pub(super) fn flow_violation(&mut self, id: &str, violation: FlowViolation) {
        if self.closed {
            return;
        }
        let msg = format!("flow control: {violation}");
        self.end_stream(id, CloseReason::FlowControl, Some(&msg));
        self.violation();
    }

    /// A stream left the table: what it still buffered goes back to the
    /// session window (the driver writes or drops those bytes either way).
    pub(super) fn forget(&mut self, entry: &Entry) {
        if let Some(stream) = &entry.recv {
            self.release(stream.buffered(), self.last_rx);
        }
    }
}
