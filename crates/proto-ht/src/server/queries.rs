//! Serving one decrypted chunk: the rules of each verb.

use crate::packets::DownloadBatch;
use crate::query::{DnsType, Proto, Query, query_id};

use super::stream::{OpenDownload, OpenUpload};
use super::{Action, ConnId, EndReason, Event, Pending, Server, TargetRef};

/// Verbs whose failure is told with `!{q}`: they start something, so the
/// answer cannot be mistaken for the end of a batch.
fn answerable(verb: u8) -> bool {
    matches!(verb, b'c' | b'q' | b'n' | b'u' | b'd')
}

fn verb_name(verb: u8) -> &'static str {
    match verb {
        b'c' => "connect",
        b'q' => "disconnect",
        b'n' => "dns",
        b'u' | b'U' => "upload",
        _ => "download",
    }
}

impl Server {
    /// Serves one decrypted chunk of a connection that is open.
    pub(super) fn serve(&mut self, conn: ConnId, plain: &[u8]) {
        let query = match Query::decode(plain) {
            Ok(query) => query,
            Err(_) => {
                match (plain.first(), query_id(plain)) {
                    (Some(&verb), Some(q)) if answerable(verb) => {
                        if self.in_flight(conn, q) {
                            self.end_connection(conn, EndReason::BadQueryId);
                        } else {
                            self.fail(conn, q, verb_name(verb));
                        }
                    }
                    _ => self.end_connection(conn, EndReason::Undecodable),
                }
                return;
            }
        };
        match query {
            Query::Connect {
                q,
                host,
                proto,
                port,
            } => {
                if self.start_query(conn, q, "connect") {
                    self.connect(conn, q, host, proto, port);
                }
            }
            Query::Disconnect { q, stream } => {
                if self.in_flight(conn, q) {
                    self.end_connection(conn, EndReason::BadQueryId);
                } else {
                    self.disconnect(conn, q, stream);
                }
            }
            Query::Dns { q, host, kind } => {
                if self.start_query(conn, q, "dns") {
                    self.resolve(conn, q, host, kind);
                }
            }
            Query::Upload { q, stream } => {
                if self.start_query(conn, q, "upload") {
                    self.upload(conn, q, stream);
                }
            }
            Query::UploadData { q, payload } => self.upload_data(conn, q, payload),
            Query::Download {
                q,
                stream,
                packet,
                window,
            } => {
                if self.start_query(conn, q, "download") {
                    self.download(conn, q, stream, packet, window);
                }
            }
            Query::Ack { q, next } => self.ack(conn, q, next),
            Query::End { q } => self.end_batch(conn, q),
        }
    }

    fn in_flight(&self, conn: ConnId, q: &str) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| c.queries.contains_key(q))
    }

    /// Checks a query that starts something: its id must not be in flight
    /// (else the connection ends), and the connection must have room (else
    /// `!{q}`). True when the query may go on.
    fn start_query(&mut self, conn: ConnId, q: &str, verb: &'static str) -> bool {
        let Some(c) = self.conns.get(&conn) else {
            return false;
        };
        if c.queries.contains_key(q) {
            self.end_connection(conn, EndReason::BadQueryId);
            return false;
        }
        if c.queries.len() >= self.limits.max_in_flight {
            self.fail(conn, q, verb);
            return false;
        }
        true
    }

    fn pending(&mut self, conn: ConnId, q: &str, pending: Pending) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.queries.insert(q.to_owned(), pending);
        }
    }

    fn connect(&mut self, conn: ConnId, q: &str, host: &str, proto: Proto, port: u16) {
        let session_id = self.conns[&conn].session.clone();
        let Some(session) = self.sessions.get_mut(&session_id) else {
            return;
        };
        if session.streams.len() + session.dialing >= self.limits.max_streams {
            self.fail(conn, q, "connect");
            return;
        }
        session.dialing += 1;
        let target = super::TargetId(self.next_id());
        self.targets.insert(
            target,
            TargetRef::Dialing {
                session: session_id,
                conn,
                q: q.to_owned(),
                proto,
            },
        );
        self.pending(conn, q, Pending::Dial(target));
        self.actions.push_back(Action::Dial {
            target,
            host: host.to_owned(),
            port,
            proto,
        });
    }

    fn disconnect(&mut self, conn: ConnId, q: &str, stream: &str) {
        let session_id = self.conns[&conn].session.clone();
        let removed = self.sessions.get_mut(&session_id).and_then(|s| {
            let st = s.streams.remove(stream)?;
            s.kept -= st.kept_bytes();
            Some(st)
        });
        match removed {
            Some(st) => {
                for (c, bq) in [
                    st.down.as_ref().map(|d| (d.conn, d.q.clone())),
                    st.up.as_ref().map(|u| (u.conn, u.q.clone())),
                ]
                .into_iter()
                .flatten()
                {
                    if let Some(c) = self.conns.get_mut(&c) {
                        c.queries.remove(&bq);
                    }
                }
                self.targets.remove(&st.target);
                self.actions
                    .push_back(Action::CloseTarget { target: st.target });
                self.event(Event::StreamClosed(st.proto));
                self.ok(conn, q, None, "disconnect");
                self.pump_starved(&session_id);
            }
            None => self.fail(conn, q, "disconnect"),
        }
    }

    fn resolve(&mut self, conn: ConnId, q: &str, host: &str, kind: DnsType) {
        let lookup = super::LookupId(self.next_id());
        self.lookups.insert(lookup, (conn, q.to_owned()));
        self.pending(conn, q, Pending::Dns(lookup));
        self.actions.push_back(Action::Resolve {
            lookup,
            host: host.to_owned(),
            kind,
        });
    }

    fn upload(&mut self, conn: ConnId, q: &str, stream: &str) {
        let session_id = self.conns[&conn].session.clone();
        let Some(st) = self
            .sessions
            .get_mut(&session_id)
            .and_then(|s| s.streams.get_mut(stream))
        else {
            self.fail(conn, q, "upload");
            return;
        };
        // "A new `u` replaces that stream's open upload batch wherever it
        // is (the old one ends silently)."
        let old = st.up.replace(OpenUpload {
            conn,
            q: q.to_owned(),
        });
        st.upload.forget_owed();
        let expected = st.upload.expected();
        if let Some(old) = old
            && let Some(c) = self.conns.get_mut(&old.conn)
        {
            c.queries.remove(&old.q);
        }
        self.pending(conn, q, Pending::Upload(stream.to_owned()));
        self.ok(conn, q, Some(format!("{expected:x}").as_bytes()), "upload");
    }

    fn upload_data(&mut self, conn: ConnId, q: &str, payload: &[u8]) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let sid = match c.queries.get(q) {
            Some(Pending::Upload(sid)) => sid.clone(),
            Some(_) => {
                self.end_connection(conn, EndReason::BadQueryId);
                return;
            }
            // A batch replaced elsewhere, or never opened.
            None => {
                self.fail(conn, q, "upload");
                return;
            }
        };
        let session_id = c.session.clone();
        let Some(st) = self
            .sessions
            .get_mut(&session_id)
            .and_then(|s| s.streams.get_mut(&sid))
        else {
            return;
        };
        if st.write_done {
            st.up = None;
            if let Some(c) = self.conns.get_mut(&conn) {
                c.queries.remove(q);
            }
            self.fail(conn, q, "upload");
            return;
        }
        if st.upload.owed() >= self.limits.max_upload_ahead {
            self.end_connection(conn, EndReason::UploadOverrun);
            return;
        }
        let target = st.target;
        let ack = st.upload.receive(payload.len());
        if payload.is_empty() && st.proto == Proto::Tcp {
            // The client's application finished writing (docs/ht.md).
            st.write_done = true;
            self.actions.push_back(Action::ShutdownWrite { target });
        } else {
            self.actions.push_back(Action::Write {
                target,
                data: payload.to_vec(),
            });
            self.event(Event::BytesUp(payload.len()));
        }
        if let Some(next) = ack {
            self.ok(conn, q, Some(format!("{next:x}").as_bytes()), "upload");
        }
    }

    fn download(&mut self, conn: ConnId, q: &str, stream: &str, packet: u64, window: Option<u64>) {
        let session_id = self.conns[&conn].session.clone();
        let max_window = self.limits.max_window();
        // Starting a batch acknowledges the packets below it: room may come back.
        let replaced = self.sessions.get_mut(&session_id).and_then(|s| {
            s.with_stream(stream, |st| {
                let batch = DownloadBatch::start(&mut st.download, packet, window, max_window);
                batch.ok().map(|batch| {
                    st.down.replace(OpenDownload {
                        conn,
                        q: q.to_owned(),
                        batch,
                    })
                })
            })
        });
        let Some(Some(old)) = replaced else {
            self.fail(conn, q, "download");
            return;
        };
        if let Some(old) = old
            && let Some(c) = self.conns.get_mut(&old.conn)
        {
            c.queries.remove(&old.q);
        }
        self.pending(conn, q, Pending::Download(stream.to_owned()));
        self.event(Event::Query {
            verb: "download",
            ok: true,
        });
        self.pump(&session_id, stream);
        self.pump_starved(&session_id);
    }

    fn ack(&mut self, conn: ConnId, q: &str, next: u64) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let sid = match c.queries.get(q) {
            Some(Pending::Download(sid)) => sid.clone(),
            Some(_) => {
                self.end_connection(conn, EndReason::BadQueryId);
                return;
            }
            None => return,
        };
        let session_id = c.session.clone();
        let Some(s) = self.sessions.get_mut(&session_id) else {
            return;
        };
        let acked = s.with_stream(&sid, |st| match st.down.as_mut() {
            Some(down) => down.batch.ack(&mut st.download, next).is_ok(),
            None => true,
        });
        match acked {
            Some(true) => {}
            Some(false) => {
                self.end_connection(conn, EndReason::BadAck);
                return;
            }
            None => return,
        }
        self.pump(&session_id, &sid);
        self.pump_starved(&session_id);
    }

    fn end_batch(&mut self, conn: ConnId, q: &str) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let sid = match c.queries.get(q) {
            Some(Pending::Download(sid) | Pending::Upload(sid)) => sid.clone(),
            // A dial or lookup cannot be cancelled; an unknown id may have
            // crossed the server's own end of the batch.
            _ => return,
        };
        c.queries.remove(q);
        let session_id = c.session.clone();
        if let Some(st) = self
            .sessions
            .get_mut(&session_id)
            .and_then(|s| s.streams.get_mut(&sid))
        {
            if st.down.as_ref().is_some_and(|d| d.conn == conn && d.q == q) {
                st.down = None;
            }
            if st.up.as_ref().is_some_and(|u| u.conn == conn && u.q == q) {
                st.up = None;
            }
        }
    }
}
