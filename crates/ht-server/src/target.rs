//! One target's task: dial under the policy (`server-kit`), then read when
//! the machine grants a read and write what it hands over, reporting each
//! result back; ends when the machine closes the target.

use std::net::IpAddr;
use std::sync::Arc;

use net::TargetAddr;
use proto_ht::Proto;
use proto_ht::server::{TargetEnd, TargetId};
use server_kit::direct::{self, DialError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::core::{Core, WriteOp};
use crate::metrics;

/// What to dial.
pub struct Spec {
    pub id: TargetId,
    pub host: String,
    pub port: u16,
    pub proto: Proto,
}

/// The metrics cause of a failed dial: the one mapping from dial errors.
fn cause(e: &DialError) -> &'static str {
    match e {
        DialError::NotAllowed(_) | DialError::PortZero(_) => "target_not_allowed",
        DialError::Resolve { .. } | DialError::NoAddress(_) => "target_unresolved",
        DialError::TimedOut { .. } => "target_timeout",
        _ => "target_unreachable",
    }
}

/// The host of a `c` query as a target: an IP literal (IPv6 without
/// brackets, as the contract spells it) or a name.
fn target_addr(host: &str, port: u16) -> TargetAddr {
    match host.parse::<IpAddr>() {
        Ok(ip) => TargetAddr::Ip((ip, port).into()),
        Err(_) => TargetAddr::Domain(host.to_owned(), port),
    }
}

pub async fn run(
    core: Arc<Core>,
    spec: Spec,
    grants: Arc<Semaphore>,
    writes: mpsc::UnboundedReceiver<WriteOp>,
    cancel: CancellationToken,
) {
    let target = target_addr(&spec.host, spec.port);
    let settings = &core.dial;
    let id = spec.id;
    let work = async {
        match spec.proto {
            Proto::Tcp => {
                let dialed = direct::connect_tcp(
                    &settings.dialer,
                    &target,
                    settings.allow_private,
                    settings.timeout,
                )
                .await;
                match dialed {
                    Ok(tcp) => {
                        core.with(|m| m.handle_connected(id));
                        serve_tcp(&core, id, tcp, &grants, writes).await;
                    }
                    Err(e) => failed(&core, id, &target, &e),
                }
            }
            Proto::Udp => {
                let dialed = direct::connect_udp(
                    &settings.dialer,
                    &target,
                    settings.allow_private,
                    settings.timeout,
                )
                .await;
                match dialed {
                    Ok(udp) => {
                        core.with(|m| m.handle_connected(id));
                        serve_udp(&core, id, udp, &grants, writes).await;
                    }
                    Err(e) => failed(&core, id, &target, &e),
                }
            }
        }
    };
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = work => {
            // Reads and writes are over; the socket is gone. The stream stays
            // in the machine until the client's `q` closes it.
        }
    }
}

fn failed(core: &Arc<Core>, id: TargetId, target: &TargetAddr, e: &DialError) {
    debug!(%target, error = %e, "dial failed");
    metrics::error(cause(e));
    core.with(|m| m.handle_connect_failed(id));
}

async fn serve_tcp(
    core: &Arc<Core>,
    id: TargetId,
    tcp: TcpStream,
    grants: &Semaphore,
    mut writes: mpsc::UnboundedReceiver<WriteOp>,
) {
    let (mut rd, mut wr) = tcp.into_split();
    let read_size = core.dial.read_size;
    let reader = async {
        loop {
            let Ok(permit) = grants.acquire().await else {
                return;
            };
            permit.forget();
            // Read straight into the packet the machine keeps: no zeroing,
            // no copy.
            let mut buf = Vec::with_capacity(read_size);
            match rd.read_buf(&mut buf).await {
                Ok(0) => {
                    core.with(|m| m.handle_target_end(id, TargetEnd::Eof));
                    return;
                }
                Ok(_) => core.with(|m| m.handle_read(id, buf)),
                Err(e) => {
                    debug!(error = %e, "target read failed");
                    core.with(|m| m.handle_target_end(id, TargetEnd::Error));
                    return;
                }
            }
        }
    };
    let writer = async {
        while let Some(op) = writes.recv().await {
            let r = match &op {
                WriteOp::Data(data) => wr.write_all(data).await.map(|()| data.len()),
                WriteOp::Shutdown => wr.shutdown().await.map(|()| 0),
            };
            match r {
                Ok(n) => core.with(|m| m.handle_written(id, n)),
                Err(e) => {
                    debug!(error = %e, "target write failed");
                    core.with(|m| m.handle_target_end(id, TargetEnd::Error));
                    return;
                }
            }
        }
    };
    // A half-closed stream still reads, and a target that closed still
    // takes bytes: both sides run until each is done.
    tokio::join!(reader, writer);
}

async fn serve_udp(
    core: &Arc<Core>,
    id: TargetId,
    udp: UdpSocket,
    grants: &Semaphore,
    mut writes: mpsc::UnboundedReceiver<WriteOp>,
) {
    let reader = async {
        // One datagram, whatever the read size: a UDP payload is at most
        // 64 KiB, the contract's payload bound.
        let mut buf = vec![0u8; proto_ht::query::MAX_PAYLOAD];
        loop {
            let Ok(permit) = grants.acquire().await else {
                return;
            };
            permit.forget();
            loop {
                match udp.recv(&mut buf).await {
                    Ok(n) => {
                        core.with(|m| m.handle_read(id, buf[..n].to_vec()));
                        break;
                    }
                    // ICMP errors (port unreachable) surface on a connected
                    // socket's next receive; UDP promises nothing, so the
                    // read goes on.
                    Err(e) => debug!(error = %e, "UDP receive failed"),
                }
            }
        }
    };
    let writer = async {
        while let Some(op) = writes.recv().await {
            let n = match op {
                WriteOp::Data(data) => {
                    if let Err(e) = udp.send(&data).await {
                        // A lost datagram, as UDP allows; its packet is
                        // still acknowledged.
                        debug!(error = %e, "UDP send failed");
                    }
                    data.len()
                }
                WriteOp::Shutdown => 0,
            };
            core.with(|m| m.handle_written(id, n));
        }
    };
    tokio::join!(reader, writer);
}
