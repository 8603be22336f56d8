//! A SOCKS5 client by hand, for tests that need the proxy's exact reply code
//! (curl only says "SOCKS failure").

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A SOCKS5 CONNECT (no authentication) to `target`'s address through `proxy`:
/// the open stream after a success reply, or the reply code. Panics on
/// anything that is not a well-formed SOCKS5 exchange, or after 20 s.
pub async fn socks5_connect(proxy: SocketAddr, target: SocketAddr) -> Result<TcpStream, u8> {
    socks5_request(proxy, 1, target).await.map(|(tcp, _)| tcp)
}

/// A SOCKS5 UDP ASSOCIATE (no authentication, any client port) through
/// `proxy`: the control connection and the relay address after a success
/// reply, or the reply code. Panics like [`socks5_connect`].
pub async fn socks5_udp_associate(proxy: SocketAddr) -> Result<(TcpStream, SocketAddr), u8> {
    socks5_request(proxy, 3, SocketAddr::from(([0, 0, 0, 0], 0))).await
}

/// One SOCKS5 request `command` for `address`: the connection and the bound
/// address after a success reply, or the reply code.
async fn socks5_request(
    proxy: SocketAddr,
    command: u8,
    address: SocketAddr,
) -> Result<(TcpStream, SocketAddr), u8> {
    let exchange = async {
        let mut tcp = TcpStream::connect(proxy)
            .await
            .expect("connect to the proxy");
        tcp.write_all(&[5, 1, 0]).await.unwrap();
        let mut choice = [0u8; 2];
        tcp.read_exact(&mut choice).await.unwrap();
        assert_eq!(choice, [5, 0], "the proxy accepts no authentication");
        let mut request = vec![5, command, 0];
        match address {
            SocketAddr::V4(v4) => {
                request.push(1);
                request.extend_from_slice(&v4.ip().octets());
            }
            SocketAddr::V6(v6) => {
                request.push(4);
                request.extend_from_slice(&v6.ip().octets());
            }
        }
        request.extend_from_slice(&address.port().to_be_bytes());
        tcp.write_all(&request).await.unwrap();
        let mut head = [0u8; 4];
        tcp.read_exact(&mut head).await.unwrap();
        assert_eq!(head[0], 5, "a SOCKS5 reply: {head:?}");
        let bound = match head[3] {
            1 => {
                let mut raw = [0u8; 6];
                tcp.read_exact(&mut raw).await.unwrap();
                let ip: [u8; 4] = raw[..4].try_into().unwrap();
                SocketAddr::from((ip, u16::from_be_bytes([raw[4], raw[5]])))
            }
            4 => {
                let mut raw = [0u8; 18];
                tcp.read_exact(&mut raw).await.unwrap();
                let ip: [u8; 16] = raw[..16].try_into().unwrap();
                SocketAddr::from((ip, u16::from_be_bytes([raw[16], raw[17]])))
            }
            atyp => panic!("unexpected address type {atyp} in the reply"),
        };
        if head[1] == 0 {
            Ok((tcp, bound))
        } else {
            Err(head[1])
        }
    };
    tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .expect("the proxy answers within 20 s")
}

/// Whether the peer closes `stream` (EOF or reset) before sending a byte,
/// within 20 s: how an optimistic proxy reports a stream that failed after
/// its success reply.
pub async fn closes_without_data(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(20), stream.read(&mut byte)).await {
        Ok(Ok(0) | Err(_)) => true,
        Ok(Ok(_)) => false,
        Err(_) => panic!("the connection neither closed nor sent data in 20 s"),
    }
}

/// A SOCKS5 UDP association from the client's side (RFC 1928 §7): the
/// control connection (the association lives while it is open) and a local
/// socket speaking the relay's datagram format.
pub struct Socks5Udp {
    /// Closing it ends the association.
    pub control: TcpStream,
    /// The proxy's relay socket.
    pub relay: SocketAddr,
    socket: tokio::net::UdpSocket,
}

impl Socks5Udp {
    /// Associates through `proxy`; panics like [`socks5_connect`] or on a
    /// refusal.
    pub async fn associate(proxy: SocketAddr) -> Socks5Udp {
        let (control, relay) = socks5_udp_associate(proxy)
            .await
            .unwrap_or_else(|code| panic!("UDP ASSOCIATE refused with reply {code}"));
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind the SOCKS5 UDP client");
        Socks5Udp {
            control,
            relay,
            socket,
        }
    }

    /// Sends `payload` to `target` through the relay (no fragmentation).
    pub async fn send_to(&self, target: SocketAddr, payload: &[u8]) {
        let mut packet = vec![0, 0, 0];
        match target {
            SocketAddr::V4(v4) => {
                packet.push(1);
                packet.extend_from_slice(&v4.ip().octets());
            }
            SocketAddr::V6(v6) => {
                packet.push(4);
                packet.extend_from_slice(&v6.ip().octets());
            }
        }
        packet.extend_from_slice(&target.port().to_be_bytes());
        packet.extend_from_slice(payload);
        self.socket
            .send_to(&packet, self.relay)
            .await
            .expect("send to the relay");
    }

    /// The next datagram from the relay within `wait`: its source and
    /// payload, `None` on timeout. Panics on a malformed relay datagram.
    pub async fn recv(&self, wait: Duration) -> Option<(SocketAddr, Vec<u8>)> {
        let mut buf = vec![0u8; 65_536];
        let (n, _) = tokio::time::timeout(wait, self.socket.recv_from(&mut buf))
            .await
            .ok()?
            .expect("receive from the relay");
        let packet = &buf[..n];
        assert_eq!(&packet[..3], &[0, 0, 0], "RSV and FRAG are zero");
        let (source, header) = match packet[3] {
            1 => {
                let ip: [u8; 4] = packet[4..8].try_into().unwrap();
                (
                    SocketAddr::from((ip, u16::from_be_bytes([packet[8], packet[9]]))),
                    10,
                )
            }
            4 => {
                let ip: [u8; 16] = packet[4..20].try_into().unwrap();
                (
                    SocketAddr::from((ip, u16::from_be_bytes([packet[20], packet[21]]))),
                    22,
                )
            }
            atyp => panic!("unexpected address type {atyp} from the relay"),
        };
        Some((source, packet[header..].to_vec()))
    }
}
