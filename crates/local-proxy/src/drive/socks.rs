//! SOCKS5 driver: handshake under a deadline, then connect and relay, or
//! hand a `UDP ASSOCIATE` over to [`super::udp`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use net::TargetAddr;
use tokio::io::AsyncWriteExt;
use tracing::{debug, info};

use super::io::{ReadError, Upstream, relay};
use super::{ClientConn, udp};
use crate::socks5::{self, Command, Reply};
use crate::{ConnectRequest, ProxyProtocol};

pub(crate) const VERSION_BYTE: u8 = socks5::VERSION;

/// BND.ADDR and BND.PORT of our replies: clients ignore them for CONNECT,
/// and the real address would only describe the far end of the tunnel.
pub(super) const UNSPECIFIED: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// How the handshake ended.
enum Handshake {
    /// A CONNECT request to carry out.
    Connect(TargetAddr),
    /// A UDP ASSOCIATE request; the address is where the client says it will
    /// send datagrams from (all zeros when it does not know).
    Associate(TargetAddr),
    /// A reply was sent (refusal or error); close gracefully.
    Replied,
}

pub(crate) async fn serve(mut conn: ClientConn) {
    let deadline = conn.handshake_deadline;
    let target = match tokio::time::timeout_at(deadline, handshake(&mut conn)).await {
        Err(_) => {
            debug!("SOCKS5 handshake timed out");
            return;
        }
        Ok(Ok(Handshake::Connect(target))) => target,
        Ok(Ok(Handshake::Associate(source))) => {
            udp::serve(conn, source).await;
            return;
        }
        Ok(Ok(Handshake::Replied)) => {
            conn.close_gracefully().await;
            return;
        }
        Ok(Err(err)) => {
            debug!(error = %err, "SOCKS5 handshake failed");
            return;
        }
    };
    debug!(protocol = %ProxyProtocol::Socks5, %target, "connecting");
    let request = ConnectRequest {
        target: target.clone(),
        client: conn.addr,
        protocol: ProxyProtocol::Socks5,
    };
    let stream = match conn.shared.connector.connect(request).await {
        Ok(stream) => stream,
        Err(err) => {
            let reply = Reply::from_connect_error(err.kind);
            info!(protocol = %ProxyProtocol::Socks5, %target, error = %err, reply = reply as u8, "connect failed");
            let mut out = Vec::new();
            socks5::encode_reply(reply, UNSPECIFIED, &mut out);
            conn.reply_and_close(&out).await;
            return;
        }
    };
    let mut out = Vec::new();
    socks5::encode_reply(Reply::Succeeded, UNSPECIFIED, &mut out);
    if let Err(err) = conn.writer.write_all(&out).await {
        debug!(error = %err, "client left before the success reply");
        return;
    }
    let config = &conn.shared.config;
    let mut upstream = Upstream::new(stream, config.copy_buffer, config.copy_buffer);
    match relay(&mut conn.reader, &mut conn.writer, &mut upstream).await {
        Ok(copied) => debug!(%target, up = copied.up, down = copied.down, "closed"),
        Err(err) if err.is_disconnect() => debug!(%target, error = %err, "relay ended"),
        Err(err) => info!(%target, error = %err, "relay failed"),
    }
}

/// Why the handshake stopped without a reply.
#[derive(Debug, thiserror::Error)]
enum HandshakeError {
    #[error("client closed mid-handshake")]
    Eof,
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Invalid(#[from] socks5::SocksError),
}

impl From<ReadError<socks5::SocksError>> for HandshakeError {
    fn from(err: ReadError<socks5::SocksError>) -> Self {
        match err {
            ReadError::Eof => HandshakeError::Eof,
            ReadError::Io(e) => HandshakeError::Io(e),
            ReadError::Invalid(e) => HandshakeError::Invalid(e),
        }
    }
}

async fn handshake(conn: &mut ClientConn) -> Result<Handshake, HandshakeError> {
    let auth = conn.shared.config.auth.clone();
    let greeting = conn.reader.read_message(socks5::decode_greeting).await?;
    let method = socks5::select_method(&greeting.methods, auth.is_some());
    let mut out = Vec::new();
    socks5::encode_method_selection(method, &mut out);
    conn.writer.write_all(&out).await?;
    match method {
        socks5::METHOD_NONE_ACCEPTABLE => {
            debug!(offered = ?greeting.methods, "no acceptable SOCKS5 method");
            return Ok(Handshake::Replied);
        }
        socks5::METHOD_USER_PASS => {
            let creds = match conn.reader.read_message(socks5::decode_user_pass).await {
                Ok(creds) => creds,
                Err(ReadError::Invalid(err)) => {
                    // RFC 1929: a failure status, then the server closes.
                    debug!(error = %err, "malformed SOCKS5 authentication");
                    out.clear();
                    socks5::encode_auth_status(false, &mut out);
                    conn.writer.write_all(&out).await?;
                    return Ok(Handshake::Replied);
                }
                Err(err) => return Err(err.into()),
            };
            let ok = auth
                .as_ref()
                .is_none_or(|c| c.matches(&creds.username, &creds.password));
            out.clear();
            socks5::encode_auth_status(ok, &mut out);
            conn.writer.write_all(&out).await?;
            if !ok {
                info!(
                    username = %String::from_utf8_lossy(&creds.username),
                    "SOCKS5 authentication failed"
                );
                return Ok(Handshake::Replied);
            }
        }
        _ => {}
    }
    let request = match conn.reader.read_message(socks5::decode_request).await {
        Ok(request) => request,
        Err(ReadError::Invalid(err)) => {
            debug!(error = %err, "malformed SOCKS5 request");
            out.clear();
            socks5::encode_reply(err.reply(), UNSPECIFIED, &mut out);
            conn.writer.write_all(&out).await?;
            return Ok(Handshake::Replied);
        }
        Err(err) => return Err(err.into()),
    };
    match request.command {
        Command::Connect => Ok(Handshake::Connect(normalize(request.target))),
        // Whether UDP can be carried is the connector's call: the default
        // refuses with 0x07, as for BIND below.
        Command::UdpAssociate => Ok(Handshake::Associate(normalize(request.target))),
        Command::Bind | Command::Other(_) => {
            debug!(command = ?request.command, target = %request.target, "SOCKS5 command not supported");
            out.clear();
            socks5::encode_reply(Reply::CommandNotSupported, UNSPECIFIED, &mut out);
            conn.writer.write_all(&out).await?;
            Ok(Handshake::Replied)
        }
    }
}

/// An IP literal sent as a domain name needs no resolution: make it an
/// [`TargetAddr::Ip`]. Real names stay names (resolved beyond the tunnel).
pub(super) fn normalize(target: TargetAddr) -> TargetAddr {
    match target {
        TargetAddr::Domain(name, port) => match name.parse::<IpAddr>() {
            Ok(ip) => TargetAddr::Ip(SocketAddr::new(ip, port)),
            Err(_) => TargetAddr::Domain(name, port),
        },
        ip => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_only_touches_literals() {
        assert_eq!(
            normalize(TargetAddr::Domain("127.0.0.1".into(), 80)),
            TargetAddr::Ip("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(
            normalize(TargetAddr::Domain("::1".into(), 80)),
            TargetAddr::Ip("[::1]:80".parse().unwrap())
        );
        assert_eq!(
            normalize(TargetAddr::Domain("localhost".into(), 80)),
            TargetAddr::Domain("localhost".into(), 80)
        );
    }
}
