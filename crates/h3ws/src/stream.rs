//! A request stream as bytes: reads yield the payload of the peer's DATA
//! frames, writes go out as DATA frames. A WebSocket runs on it as on TCP.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use proto_h3ws::fields::Response;
use proto_h3ws::frame;
use proto_h3ws::request::{Part, RequestStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::quic_code as code;

/// The largest DATA frame we write: big enough that the 1–9 bytes of
/// header are noise, small enough that one write does not hold much.
const MAX_DATA_FRAME: usize = 256 * 1024;

/// How much is read from QUIC at once.
const READ_CHUNK: usize = 256 * 1024;

/// One request stream after its heads: the bytes of its DATA frames.
pub struct H3Stream {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    parser: RequestStream,
    /// Payload already parsed, not yet read.
    ready: Bytes,
    /// The frame being written: header and payload.
    out: Bytes,
    read_done: bool,
    /// A client stream sent before its response arrived
    /// ([`crate::client::ClientConnection::open_pipelined`]): the response
    /// head is still to be read, and anything but `2xx` is an error.
    awaiting_response: bool,
}

fn protocol_error(e: proto_h3ws::H3Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl H3Stream {
    pub(crate) fn new(
        send: quinn::SendStream,
        recv: quinn::RecvStream,
        parser: RequestStream,
    ) -> H3Stream {
        H3Stream {
            send,
            recv,
            parser,
            ready: Bytes::new(),
            out: Bytes::new(),
            read_done: false,
            awaiting_response: false,
        }
    }

    /// A client stream whose response head has not been read yet.
    pub(crate) fn awaiting_response(mut self) -> H3Stream {
        self.awaiting_response = true;
        self
    }

    /// Ends the stream abruptly in both directions with `c` (a protocol
    /// error, or cancelling the request).
    pub fn abort(&mut self, c: proto_h3ws::Code) {
        let _ = self.send.reset(code(c));
        let _ = self.recv.stop(code(c));
    }

    /// The QUIC stream id, for logs.
    pub fn id(&self) -> u64 {
        u64::from(self.send.id())
    }

    fn poll_flush_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            // `write_chunks` hands quinn the frame as it is (no second copy)
            // and is cancel-safe, so a fresh future per poll loses nothing.
            let written = {
                let write = self.send.write_chunks(std::slice::from_mut(&mut self.out));
                ready!(std::future::Future::poll(std::pin::pin!(write), cx))
            };
            match written {
                // The chunk was advanced past what quinn took.
                Ok(_) => {}
                // A server that refuses a request may answer at once and
                // ask us to stop sending with H3_NO_ERROR; the answer must
                // still be read (RFC 9114 §4.1.1). Until then what we write
                // is dropped, and the read reports the status.
                Err(quinn::WriteError::Stopped(stop))
                    if self.awaiting_response && stop == code(proto_h3ws::Code::NoError) =>
                {
                    self.out.clear();
                }
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for H3Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Fill `buf` with all that is at hand, not one packet's worth: the
        // WebSocket reader zero-fills its buffer before every read, which
        // with a packet per read cost 6.5 % of the client's CPU (bench).
        let started = buf.filled().len();
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready.split_to(n));
                if buf.remaining() == 0 {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            if this.read_done {
                return Poll::Ready(Ok(()));
            }
            match this.parser.next_part().map_err(|e| {
                this.abort(e.code);
                protocol_error(e)
            })? {
                Some(Part::Data(d)) => this.ready = d,
                // Trailers end nothing a WebSocket needs; the FIN does.
                Some(Part::Trailers(_)) => {}
                Some(Part::Head(fields)) if this.awaiting_response => {
                    let response = Response::from_fields(fields).map_err(protocol_error)?;
                    match response.status {
                        100..=199 => this.parser.expect_head_again(),
                        200..=299 => this.awaiting_response = false,
                        status => {
                            this.abort(proto_h3ws::Code::RequestCancelled);
                            return Poll::Ready(Err(io::Error::new(
                                io::ErrorKind::ConnectionRefused,
                                format!("the server answered {status}"),
                            )));
                        }
                    }
                }
                Some(Part::Head(_)) => unreachable!("a second head is parsed as trailers"),
                None => {
                    let chunk = {
                        let read = this.recv.read_chunk(READ_CHUNK, true);
                        // `read_chunk` is cancel-safe: a fresh future per
                        // poll loses nothing.
                        let read = std::pin::pin!(read);
                        match std::future::Future::poll(read, cx) {
                            Poll::Ready(chunk) => chunk,
                            // Nothing more now: hand out what was gathered.
                            Poll::Pending if buf.filled().len() > started => {
                                return Poll::Ready(Ok(()));
                            }
                            Poll::Pending => return Poll::Pending,
                        }
                    };
                    match chunk {
                        Ok(Some(c)) => this.parser.push_bytes(c.bytes),
                        Ok(None) => {
                            this.parser.finish().map_err(protocol_error)?;
                            this.read_done = true;
                        }
                        // What was gathered first; the error comes again on
                        // the next read.
                        Err(_) if buf.filled().len() > started => return Poll::Ready(Ok(())),
                        Err(e) => return Poll::Ready(Err(e.into())),
                    }
                }
            }
        }
    }
}

impl AsyncWrite for H3Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_flush_out(cx))?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = buf.len().min(MAX_DATA_FRAME);
        let mut f = BytesMut::with_capacity(n + 9);
        frame::put_header(&mut f, frame::kind::DATA, n);
        f.extend_from_slice(&buf[..n]);
        this.out = f.freeze();
        // Start sending now; what QUIC does not take yet goes on the next
        // write or flush.
        if let Poll::Ready(Err(e)) = this.poll_flush_out(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_flush_out(cx))?;
        Pin::new(&mut this.send).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_flush_out(cx))?;
        // Finishing twice (a second shutdown) is harmless.
        let _ = this.send.finish();
        Poll::Ready(Ok(()))
    }
}
