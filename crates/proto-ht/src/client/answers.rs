//! The server's answers, matched to the queries they answer.

use crate::query::{Answer, MAX_STREAM_ID, Query};

use super::{Client, ConnError, ConnId, Event, Pending, Received, StreamKey, answer_fields};

impl Client {
    /// Reads one decrypted chunk from `conn`.
    pub fn handle_chunk(&mut self, conn: ConnId, chunk: &[u8]) -> Result<Received, ConnError> {
        if !self.conns.contains_key(&conn) {
            return Err(ConnError::UnknownConnection);
        }
        let answer = Answer::decode(chunk)?;
        let (q, ok, body) = match answer {
            Answer::Ok { q, body } => (q, true, body),
            Answer::Fail { q } => (q, false, None),
        };
        // An answer to a query this connection does not carry is stale (a
        // batch replaced or closed meanwhile): ignored.
        let Some(what) = self
            .queries
            .get(q)
            .filter(|o| o.conn == Some(conn))
            .map(|o| o.what.clone())
        else {
            return Ok(Received::Nothing);
        };
        let q = q.to_owned();
        match what {
            Pending::Probe => {
                self.queries.remove(&q);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.live = true;
                }
                self.events.push_back(Event::ConnectionReady(conn));
                self.check_answered(conn, &q);
            }
            Pending::Check => {
                // `!{q}` (no stream `0`) and `.{q}` both prove the path.
                self.queries.remove(&q);
                self.check_answered(conn, &q);
            }
            Pending::Connect(key) => {
                self.queries.remove(&q);
                self.on_connect_answer(key, ok, body)?;
            }
            Pending::Disconnect(key) => {
                self.queries.remove(&q);
                self.streams.remove(&key);
                self.events.push_back(Event::Closed(key));
            }
            Pending::Dns(lookup) => {
                self.queries.remove(&q);
                let records = ok.then(|| answer_fields(body));
                self.events.push_back(Event::Resolved { lookup, records });
            }
            Pending::Up(key) => self.on_upload_answer(key, &q, ok, body)?,
            Pending::Down(key) => {
                return self.on_download_answer(key, &q, ok, body, chunk.len());
            }
        }
        Ok(Received::Nothing)
    }

    fn on_connect_answer(
        &mut self,
        key: StreamKey,
        ok: bool,
        body: Option<&[u8]>,
    ) -> Result<(), ConnError> {
        if !ok {
            self.streams.remove(&key);
            self.events.push_back(Event::OpenFailed(key));
            return Ok(());
        }
        let id = body
            .filter(|b| {
                !b.is_empty() && b.len() <= MAX_STREAM_ID && b.iter().all(u8::is_ascii_alphanumeric)
            })
            .ok_or(ConnError::BadAnswer("connect"))?;
        let id = String::from_utf8_lossy(id).into_owned();
        let Some(s) = self.streams.get_mut(&key) else {
            return Ok(());
        };
        s.id = Some(id.clone());
        let upload_waiting = !s.up.kept.is_empty();
        self.events.push_back(Event::Opened { stream: key, id });
        self.start_download(key);
        if upload_waiting {
            self.start_upload(key);
        }
        self.maybe_disconnect(key);
        Ok(())
    }

    fn on_upload_answer(
        &mut self,
        key: StreamKey,
        q: &str,
        ok: bool,
        body: Option<&[u8]>,
    ) -> Result<(), ConnError> {
        let window = self.config.upload_window as usize;
        let Some(s) = self.streams.get_mut(&key) else {
            self.queries.remove(q);
            return Ok(());
        };
        if !ok {
            // The server refused the batch (the stream is unknown there, its
            // target failed, or its limits were hit): what was written is
            // lost, so the stream is over in both directions. The reader
            // gets its end too, instead of waiting for an answer to a
            // request that never arrived.
            self.queries.remove(q);
            s.up.batch = None;
            s.up.failed = true;
            s.up.kept.clear();
            if !s.down.eof {
                s.down.eof = true;
                if let Some(batch) = s.down.batch.take() {
                    self.queries.remove(&batch.q);
                }
                self.events.push_back(Event::Eof(key));
            }
            self.events.push_back(Event::Writable(key));
            self.maybe_disconnect(key);
            return Ok(());
        }
        let next = match body {
            Some(b) => crate::query::Answer::Ok { q, body: Some(b) }.packet_id()?,
            None => return Err(ConnError::BadAnswer("upload")),
        };
        let up = &mut s.up;
        let was_full = up.kept.len() >= window;
        let limit = if up.ready { up.sent } else { up.end() };
        if next > limit || !up.ack(next) {
            return Err(ConnError::BadUploadAck {
                next,
                base: up.base,
                end: limit,
            });
        }
        if !up.ready {
            // The answer to a resumed `u`: send again from what the server
            // expects.
            up.sent = next;
            up.ready = true;
        }
        if was_full && up.kept.len() < window {
            self.events.push_back(Event::Writable(key));
        }
        if let Some(fin) = up.fin
            && up.base > fin
            && !up.done
        {
            up.done = true;
            if let Some(batch) = up.batch.take() {
                self.queries.remove(&batch.q);
                if let Some(conn) = batch.conn {
                    let mut text = Vec::new();
                    Query::End { q: &batch.q }.encode(&mut text);
                    self.transmit.push_back((conn, text));
                }
            }
        }
        self.flush_upload(key);
        self.maybe_disconnect(key);
        Ok(())
    }

    fn on_download_answer(
        &mut self,
        key: StreamKey,
        q: &str,
        ok: bool,
        body: Option<&[u8]>,
        chunk_len: usize,
    ) -> Result<Received, ConnError> {
        let window = u64::from(self.config.download_window);
        let Some(s) = self.streams.get_mut(&key) else {
            self.queries.remove(q);
            return Ok(Received::Nothing);
        };
        if !ok {
            self.queries.remove(q);
            s.down.batch = None;
            s.down.eof = true;
            self.events.push_back(Event::Eof(key));
            return Ok(Received::Nothing);
        }
        let payload = body.ok_or(ConnError::EmptyDownload)?;
        if payload.is_empty() {
            return Err(ConnError::EmptyDownload);
        }
        let d = &mut s.down;
        if d.recv >= d.acked + window {
            return Err(ConnError::PastWindow);
        }
        d.recv += 1;
        if s.closing {
            // Nobody reads any more: counted as read, not acknowledged.
            d.consumed = d.recv;
            return Ok(Received::Nothing);
        }
        Ok(Received::Data {
            stream: key,
            at: chunk_len - payload.len()..chunk_len,
        })
    }
}
