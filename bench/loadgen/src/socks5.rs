//! The client side of a SOCKS5 `CONNECT` and `UDP ASSOCIATE` (RFC 1928), no
//! authentication.
//!
//! The target always goes as a domain name (ATYP 3), as with
//! `curl --socks5-hostname`: the proxy resolves it at the far end, which is
//! what every tunnel in the benchmark is asked to do.

use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Why a SOCKS5 handshake failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Socks5Error {
    /// Reading from or writing to the proxy failed (including an early EOF).
    #[error("socks5 i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The proxy answered with something that is not SOCKS5.
    #[error("socks5 protocol: {0}")]
    Protocol(&'static str),
    /// The proxy refused "no authentication".
    #[error("socks5: the proxy requires authentication")]
    AuthRequired,
    /// The proxy answered the CONNECT with a failure code (RFC 1928 §6).
    #[error("socks5 reply {code:#04x} ({})", reply_text(*code))]
    Reply {
        /// The REP field.
        code: u8,
    },
    /// The host name does not fit in one byte of length.
    #[error("socks5: host name longer than 255 bytes")]
    NameTooLong,
}

/// RFC 1928 §6, REP field.
fn reply_text(code: u8) -> &'static str {
    match code {
        0x01 => "general failure",
        0x02 => "not allowed by ruleset",
        0x03 => "network unreachable",
        0x04 => "host unreachable",
        0x05 => "connection refused",
        0x06 => "TTL expired",
        0x07 => "command not supported",
        0x08 => "address type not supported",
        _ => "unassigned",
    }
}

/// Encodes the greeting and the CONNECT request in one buffer: the proxies in
/// the benchmark all accept pipelining them, and one write saves a round trip
/// of scheduling on a busy machine.
pub fn encode_connect(host: &str, port: u16) -> Result<Vec<u8>, Socks5Error> {
    let name = host.as_bytes();
    let len = u8::try_from(name.len()).map_err(|_| Socks5Error::NameTooLong)?;
    let mut out = Vec::with_capacity(3 + 5 + name.len() + 2);
    // Greeting: version 5, one method, 0x00 = no authentication.
    out.extend_from_slice(&[0x05, 0x01, 0x00]);
    // Request: version 5, CONNECT, reserved, ATYP 3 (domain name).
    out.extend_from_slice(&[0x05, 0x01, 0x00, 0x03, len]);
    out.extend_from_slice(name);
    out.extend_from_slice(&port.to_be_bytes());
    Ok(out)
}

/// Connects through the proxy already reached by `io` to `host:port`.
pub async fn connect<S>(io: &mut S, host: &str, port: u16) -> Result<(), Socks5Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    io.write_all(&encode_connect(host, port)?).await?;
    read_replies(io).await?;
    Ok(())
}

/// Reads the method reply and the request reply that follow a greeting and
/// a request; returns the reply's bound address when it is an IP address
/// (`None` for a name).
async fn read_replies<S>(io: &mut S) -> Result<Option<SocketAddr>, Socks5Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut method = [0u8; 2];
    io.read_exact(&mut method).await?;
    if method[0] != 0x05 {
        return Err(Socks5Error::Protocol("method reply is not version 5"));
    }
    match method[1] {
        0x00 => {}
        0xff => return Err(Socks5Error::AuthRequired),
        _ => {
            return Err(Socks5Error::Protocol(
                "proxy chose a method we did not offer",
            ));
        }
    }
    // VER REP RSV ATYP, then BND.ADDR and BND.PORT, whose length depends on ATYP.
    let mut head = [0u8; 4];
    io.read_exact(&mut head).await?;
    if head[0] != 0x05 {
        return Err(Socks5Error::Protocol("reply is not version 5"));
    }
    if head[1] != 0x00 {
        return Err(Socks5Error::Reply { code: head[1] });
    }
    let addr_len = match head[3] {
        0x01 => 4,
        0x04 => 16,
        0x03 => {
            let mut len = [0u8; 1];
            io.read_exact(&mut len).await?;
            usize::from(len[0])
        }
        _ => return Err(Socks5Error::Protocol("unknown address type in reply")),
    };
    // At most 255 + 2 bytes: a fixed buffer, no allocation.
    let mut rest = [0u8; 257];
    io.read_exact(&mut rest[..addr_len + 2]).await?;
    let port = u16::from_be_bytes([rest[addr_len], rest[addr_len + 1]]);
    Ok(match head[3] {
        0x01 => {
            let ip: [u8; 4] = rest[..4].try_into().expect("4 bytes");
            Some(SocketAddr::new(IpAddr::from(ip), port))
        }
        0x04 => {
            let ip: [u8; 16] = rest[..16].try_into().expect("16 bytes");
            Some(SocketAddr::new(IpAddr::from(ip), port))
        }
        _ => None,
    })
}

/// Asks the proxy reached by `io` for a UDP association (`UDP ASSOCIATE`,
/// RFC 1928 §4, with the client's address left as 0.0.0.0:0) and returns
/// the relay address its reply names. An unspecified reply address
/// (0.0.0.0 or ::) means the proxy's own address, `proxy`. The association
/// lives as long as `io` stays open.
pub async fn udp_associate<S>(io: &mut S, proxy: SocketAddr) -> Result<SocketAddr, Socks5Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Greeting, then: version 5, UDP ASSOCIATE, reserved, ATYP 1, 0.0.0.0:0.
    io.write_all(&[0x05, 0x01, 0x00, 0x05, 0x03, 0x00, 0x01, 0, 0, 0, 0, 0, 0])
        .await?;
    let mut relay = read_replies(io)
        .await?
        .ok_or(Socks5Error::Protocol("UDP relay address is a name"))?;
    if relay.ip().is_unspecified() {
        relay.set_ip(proxy.ip());
    }
    Ok(relay)
}

/// Appends the SOCKS5 UDP request header for `target` (RSV, FRAG 0, the
/// address as an IP literal) to `out`.
pub fn encode_udp_header(out: &mut Vec<u8>, target: SocketAddr) {
    out.extend_from_slice(&[0, 0, 0]);
    match target.ip() {
        IpAddr::V4(ip) => {
            out.push(0x01);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(0x04);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&target.port().to_be_bytes());
}

/// Splits a datagram from the UDP relay into its header's address (`None`
/// for a name) and the payload. Fragments (FRAG ≠ 0) are refused, as
/// nothing in the benchmark sends them.
pub fn decode_udp(datagram: &[u8]) -> Result<(Option<SocketAddr>, &[u8]), Socks5Error> {
    let short = Socks5Error::Protocol("UDP datagram shorter than its header");
    let head = datagram.get(..4).ok_or(short)?;
    if head[2] != 0 {
        return Err(Socks5Error::Protocol("fragmented UDP datagram"));
    }
    let (addr_len, skip) = match head[3] {
        0x01 => (4, 4),
        0x04 => (16, 4),
        0x03 => (
            usize::from(*datagram.get(4).ok_or(Socks5Error::Protocol(
                "UDP datagram shorter than its header",
            ))?),
            5,
        ),
        _ => return Err(Socks5Error::Protocol("unknown address type in UDP header")),
    };
    let end = skip + addr_len + 2;
    let addr = datagram.get(skip..end).ok_or(Socks5Error::Protocol(
        "UDP datagram shorter than its header",
    ))?;
    let port = u16::from_be_bytes([addr[addr_len], addr[addr_len + 1]]);
    let from = match head[3] {
        0x01 => {
            let ip: [u8; 4] = addr[..4].try_into().expect("4 bytes");
            Some(SocketAddr::new(IpAddr::from(ip), port))
        }
        0x04 => {
            let ip: [u8; 16] = addr[..16].try_into().expect("16 bytes");
            Some(SocketAddr::new(IpAddr::from(ip), port))
        }
        _ => None,
    };
    Ok((from, &datagram[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_greeting_and_request() {
        let bytes = encode_connect("ab", 0x1f90).unwrap();
        assert_eq!(
            bytes,
            [5, 1, 0, 5, 1, 0, 3, 2, b'a', b'b', 0x1f, 0x90].as_slice()
        );
    }

    #[test]
    fn refuses_long_names() {
        assert!(matches!(
            encode_connect(&"a".repeat(256), 80),
            Err(Socks5Error::NameTooLong)
        ));
        assert!(encode_connect(&"a".repeat(255), 80).is_ok());
    }

    #[tokio::test]
    async fn reads_replies_of_every_address_type() {
        for reply in [
            &[5u8, 0, 5, 0, 0, 1, 127, 0, 0, 1, 0, 80][..],
            &[5, 0, 5, 0, 0, 3, 1, b'x', 0, 80],
            &[
                5, 0, 5, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80,
            ],
        ] {
            let (mut ours, mut theirs) = tokio::io::duplex(1024);
            theirs.write_all(reply).await.unwrap();
            connect(&mut ours, "x", 80).await.unwrap();
        }
    }

    #[tokio::test]
    async fn reports_failures() {
        let (mut ours, mut theirs) = tokio::io::duplex(1024);
        theirs
            .write_all(&[5, 0, 5, 5, 0, 1, 0, 0, 0, 0, 0, 0])
            .await
            .unwrap();
        let err = connect(&mut ours, "x", 80).await.unwrap_err();
        assert!(matches!(err, Socks5Error::Reply { code: 5 }), "{err}");

        let (mut ours, mut theirs) = tokio::io::duplex(1024);
        theirs.write_all(&[5, 0xff]).await.unwrap();
        let err = connect(&mut ours, "x", 80).await.unwrap_err();
        assert!(matches!(err, Socks5Error::AuthRequired), "{err}");

        // Truncated reply, then EOF.
        let (mut ours, mut theirs) = tokio::io::duplex(1024);
        theirs.write_all(&[5, 0, 5, 0, 0, 1, 127]).await.unwrap();
        drop(theirs);
        let err = connect(&mut ours, "x", 80).await.unwrap_err();
        assert!(matches!(err, Socks5Error::Io(_)), "{err}");
    }

    #[test]
    fn udp_header_round_trips() {
        for target in ["127.0.0.1:5353", "[::1]:53"] {
            let target: SocketAddr = target.parse().unwrap();
            let mut datagram = Vec::new();
            encode_udp_header(&mut datagram, target);
            datagram.extend_from_slice(b"payload");
            let (from, payload) = decode_udp(&datagram).unwrap();
            assert_eq!((from, payload), (Some(target), b"payload".as_slice()));
        }
        let named = [0, 0, 0, 3, 1, b'x', 0, 53, b'p'];
        assert_eq!(decode_udp(&named).unwrap(), (None, b"p".as_slice()));
        assert!(
            decode_udp(&[0, 0, 1, 1, 127, 0, 0, 1, 0, 53]).is_err(),
            "fragment"
        );
        assert!(decode_udp(&[0, 0, 0, 1, 127, 0]).is_err(), "short");
        assert!(decode_udp(&[0, 0, 0, 3]).is_err(), "short name");
    }

    #[tokio::test]
    async fn udp_associate_reads_the_relay_address() {
        let proxy: SocketAddr = "127.0.0.1:1080".parse().unwrap();
        for (reply, want) in [
            (
                &[5u8, 0, 5, 0, 0, 1, 127, 0, 0, 2, 0x13, 0x88][..],
                "127.0.0.2:5000",
            ),
            (
                &[5, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0x13, 0x88],
                "127.0.0.1:5000",
            ),
        ] {
            let (mut ours, mut theirs) = tokio::io::duplex(1024);
            theirs.write_all(reply).await.unwrap();
            let relay = udp_associate(&mut ours, proxy).await.unwrap();
            assert_eq!(relay, want.parse().unwrap());
            let mut sent = [0u8; 13];
            theirs.read_exact(&mut sent).await.unwrap();
            assert_eq!(sent[3..5], [5, 3], "UDP ASSOCIATE");
        }
    }
}
