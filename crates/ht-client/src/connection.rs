//! Transport connections: dialing one (TCP, then TLS for `https://`), the
//! full-duplex chunked `POST` it carries, and the slots that keep `N` of
//! them up, replacing a broken one with bounded retries and backoff.
//!
//! Each connection is one task running its writer (request head, then one
//! encrypted query per chunk, from the machine) and its reader (response
//! head, then one encrypted answer per chunk, into the machine) at once;
//! whichever ends first ends the connection. The machine then moves the
//! connection's batches to the others, where they resume.

use std::sync::Arc;

use bytes::BytesMut;
use proto_ht::client::{EndReason, Received, StatusClass};
use proto_ht::{ChunkCipher, Direction};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::TlsConnector;

use crate::error::HtError;
use crate::http::{self, Chunk, HttpError};
use crate::shared::Shared;

/// A byte stream to the server, plain or TLS.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Read buffer growth step.
const READ_CHUNK: usize = 64 * 1024;
/// What a read buffer grows by when it has less than [`READ_CHUNK`] free.
/// Its old allocation is usually still held by answers being delivered, so
/// growing copies the part of a chunk read so far into a new one: growing by
/// one chunk did that for nearly every chunk (4 % of the client's CPU in a
/// download, bench/README.md issue 12); four chunks make it a quarter as
/// often.
const READ_GROW: usize = 4 * READ_CHUNK;
/// Bytes of queries gathered into one write.
const WRITE_BATCH: usize = 256 * 1024;

impl From<HttpError> for HtError {
    fn from(e: HttpError) -> Self {
        HtError::Http(e.to_string())
    }
}

async fn dial(shared: &Shared) -> Result<Box<dyn Io>, HtError> {
    let url = &shared.url;
    let tcp = TcpStream::connect((url.host.as_str(), url.port)).await?;
    tcp.set_nodelay(true)?;
    let Some(tls) = &shared.tls else {
        return Ok(Box::new(tcp));
    };
    let name = shared
        .config
        .tls
        .sni
        .clone()
        .unwrap_or_else(|| url.host.clone());
    let name = ServerName::try_from(name)
        .map_err(|_| HtError::InvalidConfig(format!("{:?} is not a TLS server name", url.host)))?;
    let stream = TlsConnector::from(tls.clone()).connect(name, tcp).await?;
    Ok(Box::new(stream))
}

/// Runs one transport connection until it ends. Returns whether it was
/// good (its status was 200 and an answer came) and why it ended.
async fn run_connection(shared: &Arc<Shared>) -> (bool, HtError) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (kill, killed) = oneshot::channel();
    let conn = {
        let mut inner = shared.lock();
        if inner.machine.ended().is_some() {
            return (false, HtError::Ended);
        }
        let conn = inner.machine.add_connection();
        inner.writers.insert(conn, tx);
        inner.kills.insert(conn, kill);
        shared.pump(&mut inner);
        conn
    };
    let mut good = false;
    let error = tokio::select! {
        // First: a connection dropped by a check ends for that reason, even
        // if its writer noticed the same instant.
        biased;
        // Only a failed check sends; the sender is otherwise dropped only
        // below, after this select.
        Ok(()) = killed => HtError::Unanswered,
        e = drive(shared, conn, rx, &mut good) => e,
    };
    let mut inner = shared.lock();
    inner.writers.remove(&conn);
    inner.kills.remove(&conn);
    inner.machine.connection_lost(conn);
    shared.pump(&mut inner);
    (good, error)
}

async fn drive(
    shared: &Arc<Shared>,
    conn: proto_ht::client::ConnId,
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
    good: &mut bool,
) -> HtError {
    let io = match tokio::time::timeout(shared.config.connect_timeout, dial(shared)).await {
        Err(_) => return HtError::Timeout("connecting to the HT server"),
        Ok(Err(e)) => return e,
        Ok(Ok(io)) => io,
    };
    let (rd, wr) = tokio::io::split(io);
    let up = ChunkCipher::new(
        &shared.config.key,
        &shared.session,
        Direction::ClientToServer,
    );
    let down = ChunkCipher::new(
        &shared.config.key,
        &shared.session,
        Direction::ServerToClient,
    );
    let head = http::request_head(&shared.url, shared.session.as_str());
    tokio::select! {
        e = write_loop(wr, rx, head, up) => e,
        e = read_loop(rd, shared, conn, down, good) => e,
    }
}

/// The request: its head, then every query the machine puts on this
/// connection, encrypted, one per chunk, in order.
async fn write_loop(
    mut wr: impl AsyncWrite + Unpin,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    head: Vec<u8>,
    mut cipher: ChunkCipher,
) -> HtError {
    let mut out = head;
    loop {
        let Some(mut chunk) = rx.recv().await else {
            // The session ended: end the body politely.
            let _ = wr.write_all(&out).await;
            let _ = wr.write_all(http::LAST_CHUNK).await;
            let _ = wr.flush().await;
            return HtError::Ended;
        };
        cipher.apply(&mut chunk);
        http::encode_chunk(&mut out, &chunk);
        while out.len() < WRITE_BATCH {
            let Ok(mut more) = rx.try_recv() else { break };
            cipher.apply(&mut more);
            http::encode_chunk(&mut out, &more);
        }
        if let Err(e) = wr.write_all(&out).await {
            return e.into();
        }
        if let Err(e) = wr.flush().await {
            return e.into();
        }
        out.clear();
    }
}

/// Reads into `buf` once; end of stream is an error here (the response
/// always ends with its last chunk first).
async fn fill(rd: &mut (impl AsyncRead + Unpin), buf: &mut BytesMut) -> Result<(), HtError> {
    if buf.capacity() - buf.len() < READ_CHUNK {
        buf.reserve(READ_GROW);
    }
    match rd.read_buf(buf).await {
        Ok(0) => Err(HtError::Io(std::io::ErrorKind::UnexpectedEof.into())),
        Ok(_) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The response: status, then every answer into the machine.
async fn read_loop(
    mut rd: impl AsyncRead + Unpin,
    shared: &Arc<Shared>,
    conn: proto_ht::client::ConnId,
    mut cipher: ChunkCipher,
    good: &mut bool,
) -> HtError {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let head = tokio::time::timeout(shared.config.connect_timeout, async {
        loop {
            if let Some(head) = http::parse_response_head(&mut buf, shared.config.max_head)? {
                return Ok::<_, HtError>(head);
            }
            fill(&mut rd, &mut buf).await?;
        }
    })
    .await;
    let head = match head {
        Err(_) => return HtError::Timeout("waiting for the HT server's response"),
        Ok(Err(e)) => return e,
        Ok(Ok(head)) => head,
    };
    let class = {
        let mut inner = shared.lock();
        let class = inner.machine.handle_status(conn, head.status);
        shared.pump(&mut inner);
        class
    };
    match class {
        StatusClass::Ok if head.chunked => {}
        StatusClass::Ok => return HttpError::NotChunked.into(),
        StatusClass::WrongKey => return HtError::WrongKey,
        StatusClass::Reclaimed => return HtError::Reclaimed,
        StatusClass::Busy => return HtError::Busy,
        StatusClass::Other(status) => return HtError::Status(status),
    }
    loop {
        let chunk = match http::decode_chunk(&mut buf, shared.config.max_chunk) {
            Err(e) => return e.into(),
            Ok(None) => {
                if let Err(e) = fill(&mut rd, &mut buf).await {
                    return e;
                }
                continue;
            }
            Ok(Some(Chunk::End)) => return HtError::Ended,
            Ok(Some(Chunk::Data(chunk))) => chunk,
        };
        let mut chunk = chunk;
        cipher.apply(&mut chunk);
        let chunk = chunk.freeze();
        let mut inner = shared.lock();
        match inner.machine.handle_chunk(conn, &chunk) {
            Err(e) => {
                tracing::warn!(session = shared.session.as_str(), error = %e, "HT connection broke the protocol");
                return e.into();
            }
            Ok(Received::Nothing) => {}
            Ok(Received::Data { stream, at }) => {
                shared.deliver(&mut inner, stream, chunk.slice(at))
            }
        }
        *good = true;
        shared.pump(&mut inner);
    }
}

/// One of the session's `N` connection slots: keeps a connection up while
/// the session lives. Before the session was ever live a failed slot waits:
/// when every slot failed, they give up together (so `connect` reports it
/// promptly); when another made the session live, it retries. A broken
/// connection is replaced after a backoff, at most `attempts` times in a row.
pub(crate) async fn run_slot(shared: Arc<Shared>) {
    let policy = shared.config.connection_retry;
    let mut failures = 0u32;
    let mut state = shared.state.subscribe();
    let last = loop {
        let (good, error) = run_connection(&shared).await;
        if shared.ended().is_some() {
            return;
        }
        if good {
            failures = 0;
        }
        tracing::debug!(session = shared.session.as_str(), %error, "HT connection ended");
        if matches!(error, HtError::WrongKey | HtError::Reclaimed) {
            break error;
        }
        if !state.borrow().was_live {
            // Before the session is live: give up only once every slot has
            // failed too (so `connect` reports promptly); if another slot
            // makes the session live, retry like any broken connection.
            shared.state.send_modify(|s| s.failed_early += 1);
            let outcome = state
                .wait_for(|s| s.was_live || s.ended.is_some() || s.failed_early >= s.slots)
                .await
                .map(|s| (s.was_live, s.ended.is_some()));
            match outcome {
                Ok((_, true)) | Err(_) => return,
                Ok((true, false)) => shared.state.send_modify(|s| s.failed_early -= 1),
                Ok((false, false)) => break error,
            }
        }
        failures += 1;
        if failures > policy.attempts {
            break error;
        }
        let wait = policy.backoff(failures - 1);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = state.wait_for(|s| s.ended.is_some()) => return,
        }
    };
    // This slot gives up; the session ends with the last one.
    let mut last_slot = false;
    shared.state.send_modify(|s| {
        s.slots = s.slots.saturating_sub(1);
        last_slot = s.slots == 0;
    });
    if last_slot {
        tracing::warn!(session = shared.session.as_str(), error = %last, "every HT connection failed");
        let code = last.code();
        shared.state.send_modify(|s| {
            s.ended.get_or_insert((code, last.to_string()));
        });
        shared.end(EndReason::Local(last.to_string()));
    }
}
