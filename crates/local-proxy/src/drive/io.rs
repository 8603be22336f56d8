//! Bounded buffered reading and the two-way copy.

use std::io;

use bytes::{Buf, BytesMut};
use net::read_size::ReadSize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

use crate::BoxStream;

/// A read half with its own buffer, which never grows past `cap` bytes.
pub(crate) struct Reader<R> {
    io: R,
    /// Bytes read but not consumed yet.
    pub(crate) buf: BytesMut,
    /// Bytes the next read asks for: small first, growing toward the chunk
    /// while reads come back full (idle keep-alive connections stay cheap).
    size: ReadSize,
    /// Most bytes ever held.
    cap: usize,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    pub(crate) fn new(io: R, chunk: usize, cap: usize) -> Self {
        Reader {
            io,
            buf: BytesMut::new(),
            size: ReadSize::up_to(chunk),
            cap: cap.max(chunk).max(1),
        }
    }

    /// Reads more bytes into the buffer: `Ok(0)` at end of stream. A full
    /// buffer is an error (the callers' limits are below `cap`).
    pub(crate) async fn fill(&mut self) -> io::Result<usize> {
        let room = self.cap.saturating_sub(self.buf.len());
        if room == 0 {
            return Err(io::Error::other("read buffer full"));
        }
        let want = room.min(self.size.next());
        self.buf.reserve(want);
        let read = (&mut self.io)
            .take(want as u64)
            .read_buf(&mut self.buf)
            .await?;
        self.size.record(want, read);
        Ok(read)
    }

    /// Reads until `decode` finds a whole message, then consumes it.
    pub(crate) async fn read_message<T, E>(
        &mut self,
        decode: impl Fn(&[u8]) -> Result<Option<(T, usize)>, E>,
    ) -> Result<T, ReadError<E>> {
        loop {
            match decode(&self.buf) {
                Ok(Some((message, used))) => {
                    self.buf.advance(used);
                    return Ok(message);
                }
                Ok(None) => {}
                Err(e) => return Err(ReadError::Invalid(e)),
            }
            match self.fill().await {
                Ok(0) => return Err(ReadError::Eof),
                Ok(_) => {}
                Err(e) => return Err(ReadError::Io(e)),
            }
        }
    }
}

/// Why [`Reader::read_message`] gave up.
#[derive(Debug)]
pub(crate) enum ReadError<E> {
    /// The peer closed before the message was complete.
    Eof,
    /// Reading failed.
    Io(io::Error),
    /// The bytes can never be a valid message.
    Invalid(E),
}

/// A stream from the connector, split so that both directions can run at once.
pub(crate) struct Upstream {
    pub(crate) reader: Reader<ReadHalf<BoxStream>>,
    pub(crate) writer: WriteHalf<BoxStream>,
}

impl Upstream {
    pub(crate) fn new(stream: BoxStream, chunk: usize, cap: usize) -> Self {
        let (read, writer) = tokio::io::split(stream);
        Upstream {
            reader: Reader::new(read, chunk, cap),
            writer,
        }
    }
}

/// Which side of the relay failed.
#[derive(Debug)]
pub(crate) enum RelayError {
    /// Reading from the source failed.
    Read(io::Error),
    /// Writing to the destination failed.
    Write(io::Error),
}

/// Copies `from` to `to` until `from` ends, then shuts `to` down for writing
/// (half-close). Starts with any bytes already buffered. Returns the count.
async fn pipe<R, W>(from: &mut Reader<R>, to: &mut W) -> Result<u64, RelayError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut total = 0u64;
    loop {
        if from.buf.is_empty() && from.fill().await.map_err(RelayError::Read)? == 0 {
            to.shutdown().await.map_err(RelayError::Write)?;
            return Ok(total);
        }
        to.write_all(&from.buf).await.map_err(RelayError::Write)?;
        // Streams from a connector may buffer (framing); push every chunk.
        to.flush().await.map_err(RelayError::Write)?;
        total += from.buf.len() as u64;
        from.buf.clear();
    }
}

/// Bytes copied by a finished relay.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Copied {
    pub(crate) up: u64,
    pub(crate) down: u64,
}

/// Copies both ways until both directions have ended. EOF on one side
/// shuts down writing on the other and the reverse direction goes on; an
/// error on either side ends both.
pub(crate) async fn relay<CR, CW>(
    client_reader: &mut Reader<CR>,
    client_writer: &mut CW,
    upstream: &mut Upstream,
) -> Result<Copied, RelayError>
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
{
    let (up, down) = tokio::try_join!(
        pipe(client_reader, &mut upstream.writer),
        pipe(&mut upstream.reader, client_writer),
    )?;
    Ok(Copied { up, down })
}

/// Errors that are part of normal life (peers resetting or going away):
/// logged at debug level only.
pub(crate) fn is_disconnect(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::NotConnected
    )
}

impl std::fmt::Display for RelayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RelayError::Read(e) => write!(f, "read failed: {e}"),
            RelayError::Write(e) => write!(f, "write failed: {e}"),
        }
    }
}

impl RelayError {
    /// Whether this is an ordinary disconnect rather than something odd.
    pub(crate) fn is_disconnect(&self) -> bool {
        match self {
            RelayError::Read(e) | RelayError::Write(e) => is_disconnect(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_start_small_and_double_while_they_fill_up() {
        let data = vec![7u8; 300 * 1024];
        let mut reader = Reader::new(&data[..], 64 * 1024, 64 * 1024);
        let mut sizes = Vec::new();
        loop {
            let n = reader.fill().await.unwrap();
            if n == 0 {
                break;
            }
            sizes.push(n);
            reader.buf.clear();
        }
        assert_eq!(sizes[..5], [8192, 16384, 32768, 65536, 65536]);
        assert_eq!(sizes.iter().sum::<usize>(), data.len());
    }

    #[tokio::test]
    async fn a_small_exchange_never_reserves_a_full_chunk() {
        let data = vec![1u8; 1024];
        let mut reader = Reader::new(&data[..], 64 * 1024, 64 * 1024);
        assert_eq!(reader.fill().await.unwrap(), 1024);
        assert!(
            reader.buf.capacity() < 16 * 1024,
            "{}",
            reader.buf.capacity()
        );
        // A short read does not grow the next one.
        reader.buf.clear();
        assert_eq!(reader.fill().await.unwrap(), 0);
        assert_eq!(reader.size.next(), net::read_size::FIRST_READ);
    }

    #[tokio::test]
    async fn a_chunk_smaller_than_the_first_read_is_kept() {
        let data = vec![1u8; 4096];
        let mut reader = Reader::new(&data[..], 1000, 1000);
        assert_eq!(reader.fill().await.unwrap(), 1000);
        reader.buf.clear();
        assert_eq!(reader.fill().await.unwrap(), 1000);
    }
}
