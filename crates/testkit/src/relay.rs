//! A TCP relay that breaks its connections on purpose: put between a client
//! and its server, it proves that a protocol resumes after a cut with
//! nothing lost or duplicated.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Relays every accepted connection to `upstream`, and cuts each one
/// (both sides reset, mid-stream) once it has carried `cut_after` bytes
/// from the server to the client. Every new connection gets the same
/// budget, so a long transfer is cut again and again.
pub struct CuttingRelay {
    addr: SocketAddr,
    cuts: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl CuttingRelay {
    /// Starts on 127.0.0.1:0.
    pub async fn start(upstream: SocketAddr, cut_after: u64) -> CuttingRelay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay address");
        let cuts = Arc::new(AtomicU64::new(0));
        let counted = cuts.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let cuts = counted.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    if relay_until(client, server, cut_after).await {
                        cuts.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        CuttingRelay { addr, cuts, task }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections cut so far.
    pub fn cuts(&self) -> u64 {
        self.cuts.load(Ordering::Relaxed)
    }
}

impl Drop for CuttingRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TCP relay whose current connections can go silent at once: their
/// bytes stop both ways while the sockets stay open, as when the client
/// moves to another network and the old path dies without a word.
/// Connections made afterwards pass as usual (the new path). Single
/// connections can be silenced too ([`FreezingRelay::freeze_connection`]),
/// as when one of several paths dies.
pub struct FreezingRelay {
    addr: SocketAddr,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
    /// Indices (in accept order, from 0) of connections silenced one by one.
    frozen_ones: Arc<tokio::sync::watch::Sender<Vec<u64>>>,
    /// Connections accepted so far.
    accepted: Arc<tokio::sync::watch::Sender<u64>>,
    task: JoinHandle<()>,
}

impl FreezingRelay {
    /// Starts on 127.0.0.1:0, relaying to `upstream`.
    pub async fn start(upstream: SocketAddr) -> FreezingRelay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay address");
        let generation = Arc::new(tokio::sync::watch::Sender::new(0u64));
        let frozen_ones = Arc::new(tokio::sync::watch::Sender::new(Vec::new()));
        let accepted = Arc::new(tokio::sync::watch::Sender::new(0u64));
        let frozen = generation.clone();
        let singles = frozen_ones.clone();
        let counted = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mine = *frozen.borrow();
                let mut freeze = frozen.subscribe();
                let mut freeze_me = singles.subscribe();
                let mut index = 0;
                counted.send_modify(|n| {
                    index = *n;
                    *n += 1;
                });
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let silenced = async {
                        tokio::select! {
                            _ = freeze.wait_for(|g| *g > mine) => {}
                            _ = freeze_me.wait_for(|ones| ones.contains(&index)) => {}
                        }
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = silenced => {
                            // Silent from now on, both sockets still open.
                            std::future::pending::<()>().await;
                        }
                    }
                });
            }
        });
        FreezingRelay {
            addr,
            generation,
            frozen_ones,
            accepted,
            task,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Silences every connection made so far.
    pub fn freeze_current(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// Silences the `index`-th connection accepted (from 0), now or when
    /// it comes; the others pass as before.
    pub fn freeze_connection(&self, index: u64) {
        self.frozen_ones.send_modify(|ones| ones.push(index));
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        *self.accepted.borrow()
    }

    /// Waits until at least `n` connections were accepted.
    pub async fn wait_accepted(&self, n: u64) {
        let mut accepted = self.accepted.subscribe();
        // The sender lives as long as `self`: `wait_for` cannot fail here.
        let _ = accepted.wait_for(|a| *a >= n).await;
    }
}

impl Drop for FreezingRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Relays both ways; returns whether the connection was cut (rather than
/// ended by a peer).
async fn relay_until(client: TcpStream, server: TcpStream, cut_after: u64) -> bool {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // Upstream runs on its own: a client that finishes sending still gets
    // the rest of the answer.
    let up = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    });
    let mut carried = 0u64;
    let mut buf = vec![0u8; 16 * 1024];
    let cut = loop {
        let room = (cut_after - carried).min(buf.len() as u64) as usize;
        if room == 0 {
            break true;
        }
        match server_read.read(&mut buf[..room]).await {
            Ok(0) | Err(_) => {
                let _ = client_write.shutdown().await;
                break false;
            }
            Ok(n) => {
                if client_write.write_all(&buf[..n]).await.is_err() {
                    break false;
                }
                carried += n as u64;
            }
        }
    };
    if cut {
        // Linger zero: closing resets both connections, an abrupt break
        // as a dying middlebox leaves it.
        let _ = client_write.as_ref().set_zero_linger();
        let _ = server_read.as_ref().set_zero_linger();
        up.abort();
    } else {
        let _ = up.await;
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cuts_each_connection_after_its_budget() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let _ = tcp.write_all(&vec![7u8; 100_000]).await;
                });
            }
        });
        let relay = CuttingRelay::start(upstream, 10_000).await;
        for round in 1..=2 {
            let mut tcp = TcpStream::connect(relay.addr()).await.unwrap();
            let mut got = Vec::new();
            let _ = tcp.read_to_end(&mut got).await;
            assert_eq!(got.len(), 10_000, "round {round}");
        }
        // The count follows the cut, which the reader may see first.
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while relay.cuts() < 2 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("both connections counted as cut");
    }

    #[tokio::test]
    async fn freezes_one_connection_and_lets_the_others_pass() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut rd, mut wr) = tcp.split();
                    let _ = tokio::io::copy(&mut rd, &mut wr).await;
                });
            }
        });
        let relay = FreezingRelay::start(upstream).await;
        let mut first = TcpStream::connect(relay.addr()).await.unwrap();
        let mut second = TcpStream::connect(relay.addr()).await.unwrap();
        relay.wait_accepted(2).await;
        assert_eq!(relay.accepted(), 2);
        relay.freeze_connection(0);
        let mut back = [0u8; 4];
        second.write_all(b"ping").await.unwrap();
        second.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"ping", "the other connection passes");
        first.write_all(b"ping").await.unwrap();
        let silent = tokio::time::timeout(
            std::time::Duration::from_millis(300),
            first.read_exact(&mut back),
        )
        .await;
        assert!(
            silent.is_err(),
            "the frozen one carries nothing: {silent:?}"
        );
    }
}
