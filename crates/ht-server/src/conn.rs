//! One accepted TCP (or TLS) connection: the request head, the first chunk
//! judged, then the tunnel's two directions until either side ends it.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use proto_ht::chunked::{ChunkError, Decoded, LAST_CHUNK, decode_chunk, size_line};
use proto_ht::server::ConnId;
use server_kit::admission::{Progress, Ticket};
use server_kit::decoy;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::core::{Core, Outgoing};
use crate::http::{self, Head};
use crate::metrics;

/// Bytes read from the client at a time.
const READ_BUFFER: usize = 64 * 1024;

/// What a connection is served with besides the machine.
pub struct Edge {
    /// The decoy website strangers get.
    pub site: Arc<decoy::Site>,
    /// The listener's address (the decoy's redirects name its port).
    pub local_addr: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// From accept to the first request head, and from the tunnel's head to
    /// its first complete chunk.
    pub first_chunk_timeout: Duration,
    /// Shutdown: ends a connection that is not (yet) a tunnel.
    pub stop: CancellationToken,
}

/// Serves one connection until it ends, or until `stop` fires before it
/// became a tunnel (a tunnel is ended by the machine at shutdown).
///
/// Strangers get the decoy website, answered as nginx answers
/// (`server_kit::decoy`); a `POST` to the tunnel path is claimed. The
/// connection is pending (evicted when newer ones need its place) until
/// its first chunk proves the key; then it takes a tunnel connection's
/// place, or is answered 503 when none is left. A claimed request whose
/// first chunk does not open a tunnel gets nginx's 404, as a `POST` to a
/// missing file would.
pub async fn serve<S>(core: Arc<Core>, io: S, mut ticket: Ticket, edge: Edge)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let Edge {
        site,
        local_addr,
        tls,
        first_chunk_timeout,
        stop,
    } = edge;
    let evicted = ticket.eviction();
    let mut opts = decoy::Options::new(local_addr, tls);
    opts.header_timeout = first_chunk_timeout;
    opts.keepalive_timeout = first_chunk_timeout;
    let claim = |head: &decoy::Head<'_>| {
        head.method() == b"POST"
            && head.path() == http::TUNNEL_PATH.as_bytes()
            && head.parses_strictly(http::MAX_HEADERS)
    };
    let claimed = tokio::select! {
        _ = evicted.cancelled() => return,
        c = decoy::serve(io, &site, &opts, &stop, claim) => c,
    };
    let Some(io) = claimed else { return };
    ticket.progressed(Progress::Claimed);
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    let max_chunk = core.with(|m| m.limits().max_chunk);
    // The head and the first chunk arrive within the timeout, or the
    // connection gets the ordinary 404 like any stranger.
    let opening = async {
        let (head, used) = http::read_head(&mut rd, &mut buf).await.ok()?;
        buf.advance(used);
        let Head { tunnel, phpsessid } = head;
        if !tunnel {
            return None;
        }
        let chunk = read_chunk(&mut rd, &mut buf, max_chunk).await.ok()??;
        Some((phpsessid, chunk))
    };
    let opened = tokio::select! {
        _ = stop.cancelled() => return,
        _ = evicted.cancelled() => return,
        r = tokio::time::timeout(first_chunk_timeout, opening) => r.ok().flatten(),
    };
    let Some((phpsessid, mut chunk)) = opened else {
        refuse(&mut wr, 404).await;
        return;
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let conn = match core.accept(phpsessid.as_deref(), &mut chunk, tx) {
        Ok(conn) => conn,
        Err(refusal) => {
            refuse(&mut wr, refusal.status()).await;
            return;
        }
    };
    if ticket.promote().is_err() {
        core.closed(conn);
        refuse(&mut wr, 503).await;
        return;
    }
    debug!(conn = conn.0, "tunnel connection opened");
    let reading = read_queries(&core, conn, &mut rd, &mut buf, max_chunk);
    let writing = write_answers(&mut wr, rx);
    tokio::select! {
        () = reading => {}
        () = writing => {}
    }
    core.closed(conn);
    debug!(conn = conn.0, "tunnel connection closed");
}

async fn refuse<W: AsyncWrite + Unpin>(wr: &mut W, status: u16) {
    metrics::refused(status);
    let _ = wr.write_all(&http::refusal(status)).await;
    let _ = wr.flush().await;
    let _ = wr.shutdown().await;
}

/// Reads the next chunk's data: `Ok(None)` when the body ended.
///
/// The chunk is split off `buf` without a copy, and reading never zeroes
/// memory first (`read_buf` into spare capacity): at full speed these were
/// a visible share of the server's CPU.
async fn read_chunk<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    max_chunk: usize,
) -> Result<Option<BytesMut>, ReadError> {
    loop {
        match decode_chunk(buf, max_chunk) {
            Ok(Some(Decoded::Chunk { data, used })) => {
                let start = data.as_ptr() as usize - buf.as_ptr() as usize;
                let len = data.len();
                let mut chunk = buf.split_to(used);
                chunk.advance(start);
                chunk.truncate(len);
                return Ok(Some(chunk));
            }
            Ok(Some(Decoded::End)) => return Ok(None),
            Ok(None) => {}
            Err(e) => return Err(ReadError::Framing(e)),
        }
        buf.reserve(READ_BUFFER);
        match rd.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(ReadError::Closed),
            Ok(_) => {}
        }
    }
}

#[derive(Debug)]
enum ReadError {
    Framing(ChunkError),
    Closed,
}

/// Feeds every later chunk to the machine until the body ends, the peer
/// goes away, or the framing breaks.
async fn read_queries<R: AsyncRead + Unpin>(
    core: &Arc<Core>,
    conn: ConnId,
    rd: &mut R,
    buf: &mut BytesMut,
    max_chunk: usize,
) {
    loop {
        match read_chunk(rd, buf, max_chunk).await {
            Ok(Some(mut chunk)) => core.with(|m| m.handle_chunk(conn, &mut chunk)),
            Ok(None) | Err(ReadError::Closed) => return,
            Err(ReadError::Framing(ChunkError::TooLarge { .. })) => {
                core.with(|m| m.handle_oversized_chunk(conn));
                // The machine ended the connection: the writer finishes
                // with the last chunk, and ends this task.
                std::future::pending::<()>().await;
            }
            Err(ReadError::Framing(e)) => {
                debug!(conn = conn.0, error = %e, "broken chunked framing");
                metrics::error("bad_framing");
                return;
            }
        }
    }
}

/// Writes answers as chunks until the machine ends the connection (or the
/// client stops reading). Answers queued together go out in one vectored
/// write: each chunk's size line, its bytes and its CRLF are written from
/// where they are, so a 64 KiB answer is not copied into a send buffer
/// first (that copy was a visible share of the server's CPU at full speed).
async fn write_answers<W: AsyncWrite + Unpin>(
    wr: &mut W,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    /// Bytes gathered into one write at most.
    const BATCH_BYTES: usize = 256 * 1024;
    if wr.write_all(http::TUNNEL_OK).await.is_err() {
        return;
    }
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut heads: Vec<String> = Vec::new();
    loop {
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut end = false;
        let mut bytes = 0;
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                Outgoing::Chunk(chunk) => {
                    bytes += chunk.len();
                    heads.push(size_line(chunk.len()));
                    chunks.push(chunk);
                }
                Outgoing::End => {
                    end = true;
                    break;
                }
            }
            if bytes < BATCH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(3 * chunks.len() + 1);
        for (head, chunk) in heads.iter().zip(&chunks) {
            slices.push(IoSlice::new(head.as_bytes()));
            slices.push(IoSlice::new(chunk));
            slices.push(IoSlice::new(b"\r\n"));
        }
        if end {
            slices.push(IoSlice::new(LAST_CHUNK));
        }
        if write_all_vectored(wr, &mut slices).await.is_err() || wr.flush().await.is_err() {
            return;
        }
        drop(slices);
        chunks.clear();
        heads.clear();
        if end {
            let _ = wr.shutdown().await;
            return;
        }
    }
}

/// Writes every slice, however the writer splits them.
async fn write_all_vectored<W: AsyncWrite + Unpin>(
    wr: &mut W,
    mut slices: &mut [IoSlice<'_>],
) -> std::io::Result<()> {
    while !slices.is_empty() {
        let n = wr.write_vectored(slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}
