//! The client side of a SOCKS5 `CONNECT` (RFC 1928), no authentication.
//!
//! The target always goes as a domain name (ATYP 3), as with
//! `curl --socks5-hostname`: the proxy resolves it at the far end, which is
//! what every tunnel in the benchmark is asked to do.

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
    Ok(())
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
}
