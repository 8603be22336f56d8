//! One TLS connection to the queen carrying fsock frames: the leash and
//! every band use it.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use proto_hlhv::{Frame, FrameReader};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::HlhvError;

/// Read buffer growth step: a response never needs more than a request
/// head, but a big head should not take many reads.
const READ_CHUNK: usize = 16 * 1024;

/// Where and how to dial the queen, shared by the leash and the bands.
#[derive(Debug, Clone)]
pub(crate) struct Dialer {
    pub host: String,
    pub port: u16,
    pub name: ServerName<'static>,
    pub tls: Arc<rustls::ClientConfig>,
    pub timeout: Duration,
    pub max_frame: usize,
}

impl Dialer {
    /// The queen's address for messages.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// TCP connect and TLS handshake, within the connect timeout.
    pub async fn dial(&self) -> Result<FrameStream, HlhvError> {
        let connect = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
            tcp.set_nodelay(true)?;
            TlsConnector::from(self.tls.clone())
                .connect(self.name.clone(), tcp)
                .await
        };
        let io = tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| HlhvError::Timeout("connecting to the queen"))?
            .map_err(|source| HlhvError::Connect {
                addr: self.addr(),
                source,
            })?;
        Ok(FrameStream {
            io,
            buf: BytesMut::with_capacity(READ_CHUNK),
            reader: FrameReader::new(self.max_frame),
        })
    }
}

/// A connection read and written in whole frames.
pub(crate) struct FrameStream {
    io: TlsStream<TcpStream>,
    buf: BytesMut,
    reader: FrameReader,
}

impl FrameStream {
    /// The next frame; `None` when the queen closed the connection between
    /// frames. Cancel-safe: bytes already read stay in the buffer.
    pub async fn read_frame(&mut self) -> Result<Option<Frame>, HlhvError> {
        loop {
            if let Some(frame) = self.reader.decode(&mut self.buf)? {
                return Ok(Some(frame));
            }
            if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
                self.buf.reserve(READ_CHUNK);
            }
            match self.io.read_buf(&mut self.buf).await {
                Ok(0) if self.buf.is_empty() => return Ok(None),
                // A peer closing without TLS close_notify, between frames,
                // is a close as well.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && self.buf.is_empty() => {
                    return Ok(None);
                }
                Ok(0) => {
                    return Err(HlhvError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the queen closed the connection inside a frame",
                    )));
                }
                Ok(_) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Writes `bytes` and flushes them to the socket.
    pub async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.io.write_all(bytes).await?;
        self.io.flush().await
    }

    /// Sends TLS close_notify and closes the connection.
    pub async fn shutdown(&mut self) {
        let _ = self.io.shutdown().await;
    }
}
