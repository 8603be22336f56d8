//! What the driver reports about targets and lookups, and the download pump
//! that turns a stream's packets into answers.

use crate::cipher::SessionId;
use crate::packets::Next;
use crate::query::{Answer, MAX_DNS_ANSWERS};

use super::stream::Stream;
use super::{
    Action, DnsFailure, Event, LookupId, Pending, Server, TargetId, TargetRef, push_answer,
};

/// How a target ended, as the driver reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetEnd {
    /// The target closed its side (TCP end of stream).
    Eof,
    /// A read or write failed: nothing more goes either way.
    Error,
}

impl Server {
    /// The target of a `c` is connected: the stream exists from now on and
    /// the `c` is answered with its id. If the connection or session that
    /// asked is gone, the target is closed again.
    pub fn handle_connected(&mut self, target: TargetId) {
        let Some(TargetRef::Dialing {
            session,
            conn,
            q,
            proto,
        }) = self.targets.remove(&target)
        else {
            return;
        };
        let asker_waits = self
            .conns
            .get(&conn)
            .is_some_and(|c| c.queries.get(&q) == Some(&Pending::Dial(target)));
        let Some(s) = self.sessions.get_mut(&session) else {
            self.actions.push_back(Action::CloseTarget { target });
            return;
        };
        s.dialing = s.dialing.saturating_sub(1);
        if !asker_waits {
            // Nobody can learn the stream's id: it would only hold a slot.
            self.actions.push_back(Action::CloseTarget { target });
            return;
        }
        let sid = format!("{:x}", s.next_stream);
        s.next_stream += 1;
        s.streams
            .insert(sid.clone(), Stream::new(target, proto, &self.limits));
        self.targets.insert(
            target,
            TargetRef::Stream {
                session: session.clone(),
                stream: sid.clone(),
            },
        );
        if let Some(c) = self.conns.get_mut(&conn) {
            c.queries.remove(&q);
        }
        self.event(Event::StreamOpened(proto));
        self.ok(conn, &q, Some(sid.as_bytes()), "connect");
        self.pump(&session, &sid);
    }

    /// The target of a `c` could not be reached (refused by the policy,
    /// unresolvable, refused, timed out): `!{q}`.
    pub fn handle_connect_failed(&mut self, target: TargetId) {
        let Some(TargetRef::Dialing {
            session, conn, q, ..
        }) = self.targets.remove(&target)
        else {
            return;
        };
        if let Some(s) = self.sessions.get_mut(&session) {
            s.dialing = s.dialing.saturating_sub(1);
        }
        let waits = self
            .conns
            .get_mut(&conn)
            .and_then(|c| c.queries.remove(&q))
            .is_some();
        if waits {
            self.fail(conn, &q, "connect");
        }
    }

    fn stream_of(&mut self, target: TargetId) -> Option<(SessionId, String)> {
        match self.targets.get(&target)? {
            TargetRef::Stream { session, stream } => Some((session.clone(), stream.clone())),
            TargetRef::Dialing { .. } => None,
        }
    }

    fn stream_mut(&mut self, session: &SessionId, sid: &str) -> Option<&mut Stream> {
        self.sessions.get_mut(session)?.streams.get_mut(sid)
    }

    /// Bytes (TCP) or one datagram (UDP) read from the target after a
    /// [`Action::Read`]. An empty TCP read is the end of the stream. Reads
    /// nobody asked for are ignored.
    pub fn handle_read(&mut self, target: TargetId, data: Vec<u8>) {
        let Some((session, sid)) = self.stream_of(target) else {
            return;
        };
        let max_kept = self.limits.max_session_buffer;
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        if !s.streams.get(&sid).is_some_and(|st| st.reading) {
            return;
        }
        let len = data.len();
        let outcome = s.with_stream(&sid, |st| {
            st.reading = false;
            match &mut st.datagrams {
                Some(queue) => {
                    // Download payloads are never empty (docs/ht.md): an empty
                    // datagram cannot be carried down, and is skipped.
                    let before = queue.dropped();
                    if !data.is_empty() {
                        queue.push(data);
                    }
                    Some(queue.dropped() - before)
                }
                None if data.is_empty() => None,
                // Granted only with room (`Stream::may_read`) and reserved
                // against the session's room, so it fits.
                None => {
                    st.download.push(data);
                    Some(0)
                }
            }
        });
        let Some(Some(mut dropped)) = outcome else {
            self.handle_target_end(target, TargetEnd::Eof);
            return;
        };
        // A datagram that finds no room in the session goes, oldest of its
        // stream first (UDP promises nothing; a TCP read waits instead).
        while s.kept > max_kept {
            let trimmed = s.with_stream(&sid, |st| {
                st.datagrams.as_mut().is_some_and(|q| q.drop_oldest())
            });
            if trimmed != Some(true) {
                break;
            }
            dropped += 1;
        }
        self.event(Event::BytesDown(len));
        if dropped > 0 {
            self.event(Event::DatagramsDropped(dropped));
        }
        self.pump(&session, &sid);
        // A short read gave back part of its reservation.
        self.pump_starved(&session);
    }

    /// Room came back in a session: its starved streams read again, first
    /// refused first, while a whole read fits.
    pub(super) fn pump_starved(&mut self, session: &SessionId) {
        let room = |server: &Server| {
            server.sessions.get(session).is_some_and(|s| {
                s.kept + server.limits.read_size <= server.limits.max_session_buffer
            })
        };
        while room(self) {
            let Some(sid) = self.sessions.get_mut(session).and_then(|s| s.starved.pop()) else {
                return;
            };
            self.pump_stream(session, &sid, true);
        }
    }

    /// The target ended: downloads answer `!{q}` after the last packet; on
    /// an error, the open upload batch is answered `!{q}` too, and later
    /// `U`s are. The stream stays until the client's `q`.
    pub fn handle_target_end(&mut self, target: TargetId, end: TargetEnd) {
        let Some((session, sid)) = self.stream_of(target) else {
            return;
        };
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        let Some(failed_upload) = s.with_stream(&sid, |st| {
            st.reading = false;
            st.refill();
            st.datagrams = None;
            st.download.close();
            if end == TargetEnd::Error {
                st.write_done = true;
                return st.up.take();
            }
            None
        }) else {
            return;
        };
        if let Some(up) = failed_upload {
            if let Some(c) = self.conns.get_mut(&up.conn) {
                c.queries.remove(&up.q);
            }
            self.fail(up.conn, &up.q, "upload");
        }
        self.pump(&session, &sid);
        self.pump_starved(&session);
    }

    /// `n` bytes (or one datagram of `n` bytes) of the [`Action::Write`]s
    /// were written: acknowledgements withheld for the buffer are now sent.
    pub fn handle_written(&mut self, target: TargetId, n: usize) {
        let Some((session, sid)) = self.stream_of(target) else {
            return;
        };
        let Some(st) = self.stream_mut(&session, &sid) else {
            return;
        };
        let due = st.upload.written(n);
        let Some((conn, q)) = st.up.as_ref().map(|u| (u.conn, u.q.clone())) else {
            return;
        };
        for next in due {
            self.ok(conn, &q, Some(format!("{next:x}").as_bytes()), "upload");
        }
    }

    /// The answer to an [`Action::Resolve`]: the records as text, in the
    /// resolver's order (at most 16 are sent; an empty list is `.{q}`
    /// alone), or a failure (`!{q}`).
    pub fn handle_dns(&mut self, lookup: LookupId, result: Result<Vec<String>, DnsFailure>) {
        let Some((conn, q)) = self.lookups.remove(&lookup) else {
            return;
        };
        let waits = self
            .conns
            .get_mut(&conn)
            .and_then(|c| c.queries.remove(&q))
            .is_some();
        if !waits {
            return;
        }
        match result {
            Ok(records) => {
                // A record with a space or a control byte would break the
                // answer's fields: such a record is left out.
                let body = records
                    .iter()
                    .filter(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_graphic()))
                    .take(MAX_DNS_ANSWERS)
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(" ");
                let body = (!body.is_empty()).then_some(body.as_bytes());
                self.ok(conn, &q, body, "dns");
            }
            Err(DnsFailure::Failed) => self.fail(conn, &q, "dns"),
        }
    }

    /// Sends what the stream's download batch may send now, ends the batch
    /// after the target's end, and grants the next read of the target when
    /// the stream and its session have room (a TCP read reserves a whole
    /// read's bytes until it is reported; a stream refused for want of
    /// session room waits in `starved`).
    pub(super) fn pump(&mut self, session: &SessionId, sid: &str) {
        self.pump_stream(session, sid, false);
    }

    /// [`Server::pump`]; `turn` says the stream's turn came in the starved
    /// queue. Otherwise a stream waits behind streams already starved, so
    /// the stream whose packets are being acknowledged does not take every
    /// byte of room that frees.
    fn pump_stream(&mut self, session: &SessionId, sid: &str, turn: bool) {
        let Server {
            sessions,
            conns,
            actions,
            limits,
            ..
        } = self;
        let Some(s) = sessions.get_mut(session) else {
            return;
        };
        let Some(st) = s.streams.get_mut(sid) else {
            return;
        };
        st.refill();
        let mut ended = None;
        if let Some(down) = st.down.as_mut() {
            while let Some(next) = down.batch.poll(&st.download) {
                match next {
                    // Encoded straight from the kept packet: no copy of it.
                    Next::Packet(id) => {
                        let body = st.download.get(id).unwrap_or_default();
                        let answer = Answer::Ok {
                            q: &down.q,
                            body: Some(body),
                        };
                        push_answer(conns, actions, down.conn, &answer);
                    }
                    Next::Closed => {
                        push_answer(conns, actions, down.conn, &Answer::Fail { q: &down.q });
                        ended = Some((down.conn, down.q.clone()));
                        break;
                    }
                }
            }
        }
        if ended.is_some() {
            st.down = None;
        }
        let mut read = None;
        if st.may_read() {
            let fits = s.kept + st.read_reserve <= limits.max_session_buffer;
            if st.read_reserve == 0 || (fits && (turn || s.starved.is_empty())) {
                st.reading = true;
                s.kept += st.read_reserve;
                read = Some(st.target);
            } else {
                s.starved.push(sid);
            }
        }
        if let Some((conn, q)) = ended
            && let Some(c) = self.conns.get_mut(&conn)
        {
            c.queries.remove(&q);
        }
        if let Some(target) = read {
            self.actions.push_back(Action::Read { target });
        }
    }
}
