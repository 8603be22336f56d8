//! The client's side of the `flow_control` extension: the session's and
//! each open stream's credit windows ([`crate::flow`]), what arrives checked
//! against them, and grants as the application consumes.

use std::collections::HashMap;
use std::time::Instant;

use super::{Client, CloseReason, Config, Established, ProtocolError, State, StreamEnd};
use crate::flow::{
    FlowViolation, INITIAL_SESSION_WINDOW, INITIAL_STREAM_WINDOW, RecvWindow, SendWindow, consume,
    release,
};

/// The session's and every open stream's credit (`flow_control`).
pub(super) struct Flow {
    pub(super) send: SendWindow,
    pub(super) recv: RecvWindow,
    pub(super) streams: HashMap<String, StreamFlow>,
}

pub(super) struct StreamFlow {
    pub(super) send: SendWindow,
    pub(super) recv: RecvWindow,
}

impl Flow {
    pub(super) fn new(config: &Config) -> Flow {
        Flow {
            send: SendWindow::new(INITIAL_SESSION_WINDOW),
            recv: RecvWindow::session(INITIAL_SESSION_WINDOW, config.windows.max_session_window),
            streams: HashMap::new(),
        }
    }

    pub(super) fn open(&mut self, id: &str, config: &Config) {
        let flow = StreamFlow {
            send: SendWindow::new(INITIAL_STREAM_WINDOW),
            recv: RecvWindow::new(INITIAL_STREAM_WINDOW, config.windows.max_stream_window),
        };
        self.streams.insert(id.to_owned(), flow);
    }
}

impl Client {
    /// Whether `len` stream bytes that arrived for `id` go to the
    /// application. Counts them against the windows with `flow_control`;
    /// bytes for a stream already closed are dropped quietly (contract),
    /// their session credit given back at once.
    pub(super) fn accept_data(&mut self, now: Instant, id: &str, len: usize) -> bool {
        let rtt = self.srtt;
        let State::Established(e) = &mut self.state else {
            return false;
        };
        let open = e.rules.is_open(id);
        let Some(flow) = &mut e.flow else {
            return open;
        };
        if let Err(violation) = flow.recv.on_receive(len) {
            self.close(CloseReason::Protocol(violation.into()));
            return false;
        }
        let verdict = match flow.streams.get_mut(id).filter(|_| open) {
            Some(stream) => stream.recv.on_receive(len).map(|()| true),
            None => Ok(false),
        };
        // Bytes not delivered (late, or over the stream's window) free their
        // session credit at once.
        let session_increment = match verdict {
            Ok(true) => None,
            _ => release(&mut flow.recv, len as u64, now, rtt),
        };
        if let Some(increment) = session_increment {
            self.grant(None, increment);
        }
        match verdict {
            Ok(deliver) => deliver,
            Err(violation) => {
                // The stream ends; the session goes on.
                self.stream_flow_violation(id, violation);
                false
            }
        }
    }

    fn stream_flow_violation(&mut self, id: &str, violation: FlowViolation) {
        let message = ProtocolError::FlowControl(violation).to_string();
        self.end_stream(id, StreamEnd::Malformed(message));
        self.queue_close(id, Some("flow_control"));
    }

    /// Drops a stream's windows; what it still buffered goes back to the
    /// session at once (the driver drops or hands out those bytes either way).
    pub(super) fn forget_flow(&mut self, id: &str) {
        let State::Established(Established { flow: Some(f), .. }) = &mut self.state else {
            return;
        };
        let Some(stream) = f.streams.remove(id) else {
            return;
        };
        self.updates.retain(|(s, _)| s.as_deref() != Some(id));
        let buffered = stream.recv.buffered();
        if let Some(increment) = release(&mut f.recv, buffered, self.last_rx, self.srtt) {
            self.grant(None, increment);
        }
    }

    /// Records credit to grant; merged with one not yet sent for the same window.
    pub(super) fn grant(&mut self, stream_id: Option<&str>, increment: u64) {
        match self
            .updates
            .iter_mut()
            .find(|(s, _)| s.as_deref() == stream_id)
        {
            Some((_, pending)) => *pending = (*pending + increment).min(crate::flow::MAX_INCREMENT),
            None => self.updates.push((stream_id.map(str::to_owned), increment)),
        }
    }

    /// The application took `n` bytes of `stream_id` (with `flow_control`:
    /// grants the gateway more credit once half a window was read; a no-op
    /// otherwise). Bytes of a stream that already ended were returned to the
    /// session when it ended and are not counted again.
    pub fn consumed(&mut self, stream_id: &str, n: usize, now: Instant) {
        let rtt = self.srtt;
        let State::Established(Established { flow: Some(f), .. }) = &mut self.state else {
            return;
        };
        let Some(stream) = f.streams.get_mut(stream_id) else {
            return;
        };
        let grants = consume(&mut stream.recv, &mut f.recv, n, now, rtt);
        if let Some(increment) = grants.stream {
            self.grant(Some(stream_id), increment);
        }
        if let Some(increment) = grants.session {
            self.grant(None, increment);
        }
    }
}
