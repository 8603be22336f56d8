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
        let Some(st) = self.stream_mut(&session, &sid) else {
            return;
        };
        if !st.reading {
            return;
        }
        st.reading = false;
        let len = data.len();
        let mut dropped = 0;
        match &mut st.datagrams {
            Some(queue) => {
                // Download payloads are never empty (docs/ht.md): an empty
                // datagram cannot be carried down, and is skipped.
                if !data.is_empty() {
                    let before = queue.dropped();
                    queue.push(data);
                    dropped = queue.dropped() - before;
                }
            }
            None if data.is_empty() => {
                self.handle_target_end(target, TargetEnd::Eof);
                return;
            }
            // Granted only with room (`Stream::may_read`), so it fits.
            None => {
                st.download.push(data);
            }
        }
        self.event(Event::BytesDown(len));
        if dropped > 0 {
            self.event(Event::DatagramsDropped(dropped));
        }
        self.pump(&session, &sid);
    }

    /// The target ended: downloads answer `!{q}` after the last packet; on
    /// an error, the open upload batch is answered `!{q}` too, and later
    /// `U`s are. The stream stays until the client's `q`.
    pub fn handle_target_end(&mut self, target: TargetId, end: TargetEnd) {
        let Some((session, sid)) = self.stream_of(target) else {
            return;
        };
        let Some(st) = self.stream_mut(&session, &sid) else {
            return;
        };
        st.reading = false;
        st.refill();
        st.datagrams = None;
        st.download.close();
        let mut failed_upload = None;
        if end == TargetEnd::Error {
            st.write_done = true;
            failed_upload = st.up.take();
        }
        if let Some(up) = failed_upload {
            if let Some(c) = self.conns.get_mut(&up.conn) {
                c.queries.remove(&up.q);
            }
            self.fail(up.conn, &up.q, "upload");
        }
        self.pump(&session, &sid);
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
    /// after the target's end, and grants the next read of the target.
    pub(super) fn pump(&mut self, session: &SessionId, sid: &str) {
        let Server {
            sessions,
            conns,
            actions,
            ..
        } = self;
        let Some(st) = sessions
            .get_mut(session)
            .and_then(|s| s.streams.get_mut(sid))
        else {
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
        let read = st.may_read().then(|| {
            st.reading = true;
            st.target
        });
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
