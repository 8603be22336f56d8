//! TCP streams and listeners over the tunnel, with tokio's I/O traits.
//!
//! A stream owns one smoltcp socket inside the shared stack. Reads and writes
//! lock the stack, copy between the caller's buffer and the socket's ring
//! buffer, and poke the driver; when there is nothing to read (or no room to
//! write) the task's waker is registered on the socket and smoltcp wakes it
//! when that changes. Backpressure is therefore TCP's own: an unread receive
//! buffer shrinks the advertised window, a full send buffer parks the writer.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddrV4;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{self, RecvError};
use smoltcp::wire::{IpAddress, IpEndpoint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::Error;
use crate::node::Shared;
use crate::stack::Accepted;

/// A TCP connection through the tunnel.
pub struct WgStream {
    shared: Arc<Shared>,
    handle: SocketHandle,
    local: SocketAddrV4,
    remote: SocketAddrV4,
}

impl std::fmt::Debug for WgStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WgStream")
            .field("local", &self.local)
            .field("remote", &self.remote)
            .finish()
    }
}

fn v4(endpoint: Option<IpEndpoint>) -> SocketAddrV4 {
    match endpoint {
        Some(IpEndpoint {
            addr: IpAddress::Ipv4(ip),
            port,
        }) => SocketAddrV4::new(ip, port),
        _ => SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0),
    }
}

impl WgStream {
    /// Wraps a socket handed over by `accept` or `connect`.
    pub(crate) fn new(shared: Arc<Shared>, handle: SocketHandle) -> WgStream {
        let (local, remote) = {
            let mut stack = shared.lock_stack();
            let socket = stack.socket(handle);
            (v4(socket.local_endpoint()), v4(socket.remote_endpoint()))
        };
        WgStream {
            shared,
            handle,
            local,
            remote,
        }
    }

    /// This end: the node's tunnel address and port.
    pub fn local_addr(&self) -> SocketAddrV4 {
        self.local
    }

    /// The other end's tunnel address and port.
    pub fn peer_addr(&self) -> SocketAddrV4 {
        self.remote
    }

    fn closed_error() -> io::Error {
        Error::NodeClosed.into()
    }
}

impl AsyncRead for WgStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let mut stack = self.shared.lock_stack();
        if stack.closed {
            return Poll::Ready(Err(Self::closed_error()));
        }
        let socket = stack.socket(self.handle);
        let capacity = socket.recv_capacity();
        let queued = socket.recv_queue();
        match socket.recv_slice(buf.initialize_unfilled()) {
            Ok(0) => {
                socket.register_recv_waker(cx.waker());
                Poll::Pending
            }
            Ok(n) => {
                buf.advance(n);
                drop(stack);
                // smoltcp announces a reopened window only when it at least
                // doubles; that can only happen if the buffer was at least
                // half full, so only then does the driver need to run.
                if queued * 2 >= capacity {
                    self.shared.wake_driver();
                }
                Poll::Ready(Ok(()))
            }
            // FIN received and everything before it read: end of stream.
            Err(RecvError::Finished) => Poll::Ready(Ok(())),
            Err(RecvError::InvalidState) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "connection reset by the tunnel peer",
            ))),
        }
    }
}

impl AsyncWrite for WgStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut stack = self.shared.lock_stack();
        if stack.closed {
            return Poll::Ready(Err(Self::closed_error()));
        }
        let socket = stack.socket(self.handle);
        match socket.send_slice(data) {
            Ok(0) => {
                socket.register_send_waker(cx.waker());
                Poll::Pending
            }
            Ok(n) => {
                drop(stack);
                self.shared.wake_driver();
                Poll::Ready(Ok(n))
            }
            Err(tcp::SendError::InvalidState) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "connection closed for sending",
            ))),
        }
    }

    /// Bytes handed to `poll_write` are in the socket's buffer and go out as
    /// the window allows, as with a kernel socket.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Sends FIN once queued bytes are out; reading goes on (half-close).
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut stack = self.shared.lock_stack();
        if stack.closed {
            return Poll::Ready(Err(Self::closed_error()));
        }
        stack.socket(self.handle).close();
        drop(stack);
        self.shared.wake_driver();
        Poll::Ready(Ok(()))
    }
}

impl Drop for WgStream {
    fn drop(&mut self) {
        let mut stack = self.shared.lock_stack();
        if !stack.closed {
            stack.release(self.handle, false);
            drop(stack);
            self.shared.wake_driver();
        }
    }
}

/// Accepts connections to one tunnel port; dropping it stops listening.
pub struct WgListener {
    shared: Arc<Shared>,
    port: u16,
}

impl std::fmt::Debug for WgListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WgListener")
            .field("port", &self.port)
            .finish()
    }
}

impl WgListener {
    pub(crate) fn new(shared: Arc<Shared>, port: u16) -> WgListener {
        WgListener { shared, port }
    }

    /// The tunnel port listened on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The next established connection and its remote address.
    pub async fn accept(&self) -> Result<(WgStream, SocketAddrV4), Error> {
        let accepted = poll_fn(
            |cx| match self.shared.lock_stack().accept(self.port, cx.waker()) {
                Some(accepted) => Poll::Ready(accepted),
                None => Poll::Pending,
            },
        )
        .await;
        match accepted {
            Accepted::Stream(handle, remote) => {
                let stream = WgStream::new(self.shared.clone(), handle);
                Ok((stream, remote))
            }
            Accepted::Gone => Err(Error::NodeClosed),
        }
    }
}

impl Drop for WgListener {
    fn drop(&mut self) {
        self.shared.lock_stack().unlisten(self.port);
        self.shared.wake_driver();
    }
}

/// Waits for an outgoing connection to be established; dropping it (a
/// timeout, a cancelled caller) resets the attempt.
pub(crate) struct Connecting {
    pub(crate) shared: Arc<Shared>,
    pub(crate) handle: Option<SocketHandle>,
    pub(crate) remote: SocketAddrV4,
}

impl Connecting {
    pub(crate) async fn wait(mut self) -> Result<WgStream, Error> {
        let Some(handle) = self.handle else {
            return Err(Error::NodeClosed);
        };
        poll_fn(|cx| {
            let mut stack = self.shared.lock_stack();
            if stack.closed {
                return Poll::Ready(Err(Error::NodeClosed));
            }
            let socket = stack.socket(handle);
            match socket.state() {
                tcp::State::SynSent | tcp::State::SynReceived => {
                    socket.register_send_waker(cx.waker());
                    Poll::Pending
                }
                // An RST answered our SYN.
                tcp::State::Closed => Poll::Ready(Err(Error::ConnectionRefused(self.remote))),
                _ => Poll::Ready(Ok(())),
            }
        })
        .await?;
        self.handle = None;
        Ok(WgStream::new(self.shared.clone(), handle))
    }
}

impl Drop for Connecting {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            let mut stack = self.shared.lock_stack();
            if !stack.closed {
                stack.release(handle, true);
                drop(stack);
                self.shared.wake_driver();
            }
        }
    }
}
