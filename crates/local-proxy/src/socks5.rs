//! SOCKS5 messages (RFC 1928) and username/password sub-negotiation
//! (RFC 1929), as pure functions over byte slices.
//!
//! Every `decode_*` returns `Ok(None)` while `buf` is a valid but incomplete
//! prefix (read more), `Ok(Some((message, consumed)))` once a whole message is
//! there, or an error when the bytes can never become a valid message. The
//! `encode_*` functions append to the caller's buffer; the client-side ones
//! exist for tests and round trips.
//!
//! ```text
//! client                                   proxy
//!   | greeting: 05 n methods…                |
//!   |--------------------------------------->|
//!   |               method selection: 05 m   |
//!   |<---------------------------------------|
//!   | [m = 02] 01 ulen user plen pass        |
//!   |--------------------------------------->|
//!   |                   [m = 02] 01 status   |
//!   |<---------------------------------------|
//!   | request: 05 cmd 00 atyp addr port      |
//!   |--------------------------------------->|
//!   |      reply: 05 rep 00 atyp addr port   |
//!   |<---------------------------------------|
//! ```
//!
//! After a successful `UDP ASSOCIATE` reply the client sends datagrams to
//! BND.ADDR:BND.PORT, each with the header of RFC 1928 §7 in front
//! ([`decode_udp_header`], [`encode_udp_header`]); replies come back with the
//! same header naming their sender:
//!
//! ```text
//! +----+------+------+----------+----------+----------+
//! |RSV | FRAG | ATYP | DST.ADDR | DST.PORT |   DATA   |
//! +----+------+------+----------+----------+----------+
//! | 2  |  1   |  1   | Variable |    2     | Variable |
//! +----+------+------+----------+----------+----------+
//! ```

use std::fmt;
use std::net::SocketAddr;

use net::AddressError;
use net::TargetAddr;

use crate::ConnectErrorKind;

/// The protocol version byte that starts every SOCKS5 message.
pub const VERSION: u8 = 0x05;
/// The version byte of the RFC 1929 username/password sub-negotiation.
pub const AUTH_VERSION: u8 = 0x01;
/// Method: no authentication required.
pub const METHOD_NO_AUTH: u8 = 0x00;
/// Method: username/password (RFC 1929).
pub const METHOD_USER_PASS: u8 = 0x02;
/// Method selection reply: none of the offered methods is acceptable.
pub const METHOD_NONE_ACCEPTABLE: u8 = 0xFF;
/// RFC 1929 status: success.
pub const AUTH_SUCCESS: u8 = 0x00;
/// RFC 1929 status: failure ("any non-zero value"; 0x01 by convention).
pub const AUTH_FAILURE: u8 = 0x01;

/// The longest request: header, a 255-byte domain and the port.
pub const MAX_REQUEST_LEN: usize = 3 + net::MAX_HEADER_LEN;

/// Why bytes from a SOCKS5 client can never form a valid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SocksError {
    /// A greeting or request does not start with version 5.
    #[error("SOCKS version {0} is not 5")]
    BadVersion(u8),
    /// The username/password message does not start with version 1.
    #[error("username/password sub-negotiation version {0} is not 1")]
    BadAuthVersion(u8),
    /// The request's address type is not IPv4 (1), domain (3) or IPv6 (4).
    #[error("unknown address type 0x{0:02x}")]
    UnknownAddressType(u8),
    /// The domain name of a request or UDP header is empty or not UTF-8.
    #[error("invalid domain name: {0}")]
    BadDomain(AddressError),
    /// A UDP datagram ends inside its header. (A datagram arrives whole, so
    /// unlike a stream there is no "read more".)
    #[error("UDP datagram shorter than its SOCKS5 header")]
    Truncated,
    /// A UDP datagram is a fragment (FRAG is not 0); the relay drops them.
    #[error("UDP fragment {0} (fragmentation is not supported)")]
    Fragmented(u8),
}

impl SocksError {
    /// The reply to send when this error is found in a request.
    pub fn reply(&self) -> Reply {
        match self {
            SocksError::UnknownAddressType(_) => Reply::AddressTypeNotSupported,
            _ => Reply::GeneralFailure,
        }
    }
}

/// The client's first message: the authentication methods it offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    /// Offered method codes (RFC 1928 §3; at most 255).
    pub methods: Vec<u8>,
}

/// Decodes `05 NMETHODS METHODS…`.
pub fn decode_greeting(buf: &[u8]) -> Result<Option<(Greeting, usize)>, SocksError> {
    let Some(&version) = buf.first() else {
        return Ok(None);
    };
    if version != VERSION {
        return Err(SocksError::BadVersion(version));
    }
    let Some(&n) = buf.get(1) else {
        return Ok(None);
    };
    let total = 2 + usize::from(n);
    let Some(methods) = buf.get(2..total) else {
        return Ok(None);
    };
    // RFC 1928 says NMETHODS is 1 to 255; an empty list is accepted here and
    // answered with "no acceptable method" rather than dropped silently.
    Ok(Some((
        Greeting {
            methods: methods.to_vec(),
        },
        total,
    )))
}

/// Encodes a greeting (client side). At most 255 methods are written.
pub fn encode_greeting(greeting: &Greeting, out: &mut Vec<u8>) {
    let methods = &greeting.methods[..greeting.methods.len().min(255)];
    out.push(VERSION);
    out.push(methods.len() as u8);
    out.extend_from_slice(methods);
}

/// Encodes the server's method selection `05 METHOD`.
pub fn encode_method_selection(method: u8, out: &mut Vec<u8>) {
    out.extend_from_slice(&[VERSION, method]);
}

/// Picks the method to use, given what the client offers and whether the
/// proxy requires credentials.
///
/// With credentials configured only username/password will do ("no auth" is
/// not acceptable). Without, "no auth" is preferred; a client that offers only
/// username/password is let through that way and any credentials pass.
pub fn select_method(offered: &[u8], auth_required: bool) -> u8 {
    let offers = |m| offered.contains(&m);
    if auth_required {
        if offers(METHOD_USER_PASS) {
            METHOD_USER_PASS
        } else {
            METHOD_NONE_ACCEPTABLE
        }
    } else if offers(METHOD_NO_AUTH) {
        METHOD_NO_AUTH
    } else if offers(METHOD_USER_PASS) {
        METHOD_USER_PASS
    } else {
        METHOD_NONE_ACCEPTABLE
    }
}

/// RFC 1929 credentials. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct UserPass {
    /// Username bytes (at most 255).
    pub username: Vec<u8>,
    /// Password bytes (at most 255).
    pub password: Vec<u8>,
}

impl fmt::Debug for UserPass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserPass")
            .field("username", &String::from_utf8_lossy(&self.username))
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Decodes `01 ULEN UNAME PLEN PASSWD` (RFC 1929 §2).
pub fn decode_user_pass(buf: &[u8]) -> Result<Option<(UserPass, usize)>, SocksError> {
    let Some(&version) = buf.first() else {
        return Ok(None);
    };
    if version != AUTH_VERSION {
        return Err(SocksError::BadAuthVersion(version));
    }
    let Some(&ulen) = buf.get(1) else {
        return Ok(None);
    };
    let user_end = 2 + usize::from(ulen);
    let Some(&plen) = buf.get(user_end) else {
        return Ok(None);
    };
    let total = user_end + 1 + usize::from(plen);
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some((
        UserPass {
            username: buf[2..user_end].to_vec(),
            password: buf[user_end + 1..total].to_vec(),
        },
        total,
    )))
}

/// Encodes RFC 1929 credentials (client side); longer fields are cut at 255.
pub fn encode_user_pass(creds: &UserPass, out: &mut Vec<u8>) {
    let user = &creds.username[..creds.username.len().min(255)];
    let pass = &creds.password[..creds.password.len().min(255)];
    out.push(AUTH_VERSION);
    out.push(user.len() as u8);
    out.extend_from_slice(user);
    out.push(pass.len() as u8);
    out.extend_from_slice(pass);
}

/// Encodes the RFC 1929 status reply `01 STATUS`.
pub fn encode_auth_status(success: bool, out: &mut Vec<u8>) {
    let status = if success { AUTH_SUCCESS } else { AUTH_FAILURE };
    out.extend_from_slice(&[AUTH_VERSION, status]);
}

/// A request command (RFC 1928 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `CONNECT` (0x01): the only one this proxy carries out.
    Connect,
    /// `BIND` (0x02).
    Bind,
    /// `UDP ASSOCIATE` (0x03).
    UdpAssociate,
    /// Any other byte.
    Other(u8),
}

impl Command {
    /// The wire byte.
    pub fn code(self) -> u8 {
        match self {
            Command::Connect => 0x01,
            Command::Bind => 0x02,
            Command::UdpAssociate => 0x03,
            Command::Other(b) => b,
        }
    }

    /// The command for a wire byte.
    pub fn from_code(code: u8) -> Self {
        match code {
            0x01 => Command::Connect,
            0x02 => Command::Bind,
            0x03 => Command::UdpAssociate,
            other => Command::Other(other),
        }
    }
}

/// A client request `05 CMD 00 ATYP DST.ADDR DST.PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What the client wants done.
    pub command: Command,
    /// The destination, as sent: a domain stays a domain, even an IP literal.
    pub target: TargetAddr,
}

/// Decodes a request. The reserved byte is not checked (RFC 1928 leaves its
/// value to the client; some send garbage).
pub fn decode_request(buf: &[u8]) -> Result<Option<(Request, usize)>, SocksError> {
    let Some(&version) = buf.first() else {
        return Ok(None);
    };
    if version != VERSION {
        return Err(SocksError::BadVersion(version));
    }
    let Some(&cmd) = buf.get(1) else {
        return Ok(None);
    };
    let Some(addr) = buf.get(3..) else {
        return Ok(None);
    };
    // The address layout is the one proto-httvps already decodes: ATYP, the
    // address (4 bytes, 16 bytes, or a length-prefixed name) and the port.
    match TargetAddr::decode(addr) {
        Ok(None) => Ok(None),
        Ok(Some((target, used))) => Ok(Some((
            Request {
                command: Command::from_code(cmd),
                target,
            },
            3 + used,
        ))),
        Err(AddressError::UnknownAddressType(atyp)) => Err(SocksError::UnknownAddressType(atyp)),
        Err(other) => Err(SocksError::BadDomain(other)),
    }
}

/// Encodes a request (client side).
pub fn encode_request(request: &Request, out: &mut Vec<u8>) {
    out.extend_from_slice(&[VERSION, request.command.code(), 0x00]);
    request.target.encode(out);
}

/// A reply code (RFC 1928 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reply {
    /// 0x00 succeeded.
    Succeeded = 0x00,
    /// 0x01 general SOCKS server failure.
    GeneralFailure = 0x01,
    /// 0x02 connection not allowed by ruleset.
    NotAllowed = 0x02,
    /// 0x03 network unreachable.
    NetworkUnreachable = 0x03,
    /// 0x04 host unreachable.
    HostUnreachable = 0x04,
    /// 0x05 connection refused.
    ConnectionRefused = 0x05,
    /// 0x06 TTL expired.
    TtlExpired = 0x06,
    /// 0x07 command not supported.
    CommandNotSupported = 0x07,
    /// 0x08 address type not supported.
    AddressTypeNotSupported = 0x08,
}

impl Reply {
    /// The reply for a failed connect: the one place SOCKS codes are chosen.
    ///
    /// A timeout is reported as 0x06 "TTL expired": curl and Chromium show
    /// that as a timeout, while 0x04 would read as "host unreachable". Busy,
    /// unavailable and other failures have no specific code: 0x01.
    pub fn from_connect_error(kind: ConnectErrorKind) -> Reply {
        match kind {
            ConnectErrorKind::Refused => Reply::ConnectionRefused,
            ConnectErrorKind::Unreachable => Reply::HostUnreachable,
            ConnectErrorKind::NotAllowed => Reply::NotAllowed,
            ConnectErrorKind::TimedOut => Reply::TtlExpired,
            ConnectErrorKind::Unsupported => Reply::CommandNotSupported,
            ConnectErrorKind::Busy | ConnectErrorKind::Unavailable | ConnectErrorKind::Other => {
                Reply::GeneralFailure
            }
        }
    }
}

/// Encodes a reply `05 REP 00 ATYP BND.ADDR BND.PORT`.
pub fn encode_reply(reply: Reply, bound: SocketAddr, out: &mut Vec<u8>) {
    out.extend_from_slice(&[VERSION, reply as u8, 0x00]);
    TargetAddr::Ip(bound).encode(out);
}

/// A server reply as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyMessage {
    /// The reply code (a [`Reply`] value, or anything a server sent).
    pub reply: u8,
    /// BND.ADDR and BND.PORT.
    pub bound: TargetAddr,
}

/// Decodes a reply (client side).
pub fn decode_reply(buf: &[u8]) -> Result<Option<(ReplyMessage, usize)>, SocksError> {
    let Some(&version) = buf.first() else {
        return Ok(None);
    };
    if version != VERSION {
        return Err(SocksError::BadVersion(version));
    }
    let Some(&rep) = buf.get(1) else {
        return Ok(None);
    };
    let Some(addr) = buf.get(3..) else {
        return Ok(None);
    };
    match TargetAddr::decode(addr) {
        Ok(None) => Ok(None),
        Ok(Some((bound, used))) => Ok(Some((ReplyMessage { reply: rep, bound }, 3 + used))),
        Err(AddressError::UnknownAddressType(atyp)) => Err(SocksError::UnknownAddressType(atyp)),
        Err(other) => Err(SocksError::BadDomain(other)),
    }
}

/// The fixed part of the UDP request header before the address: RSV, FRAG.
const UDP_PREFIX_LEN: usize = 3;

/// The longest UDP request header: RSV, FRAG and the longest address.
pub const MAX_UDP_HEADER_LEN: usize = UDP_PREFIX_LEN + net::MAX_HEADER_LEN;

/// The header in front of every datagram of a UDP association (RFC 1928 §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpHeader {
    /// The fragment number; 0 for a standalone datagram.
    pub frag: u8,
    /// Client to relay: where the payload goes. Relay to client: where it
    /// came from.
    pub target: TargetAddr,
}

/// Decodes the header of one whole UDP datagram, returning it and the offset
/// of the payload. The reserved bytes are not checked (as in requests).
///
/// The header is returned as sent, FRAG included; [`decode_udp_datagram`]
/// is the relay's stricter reading that refuses fragments. Unlike the
/// stream decoders there is no `Ok(None)`: a datagram that ends inside its
/// header is [`SocksError::Truncated`].
pub fn decode_udp_header(buf: &[u8]) -> Result<(UdpHeader, usize), SocksError> {
    let (Some(&frag), Some(addr)) = (buf.get(2), buf.get(UDP_PREFIX_LEN..)) else {
        return Err(SocksError::Truncated);
    };
    // The same address form as requests: one parser, in `net`.
    match TargetAddr::decode(addr) {
        Ok(None) => Err(SocksError::Truncated),
        Ok(Some((target, used))) => Ok((UdpHeader { frag, target }, UDP_PREFIX_LEN + used)),
        Err(AddressError::UnknownAddressType(atyp)) => Err(SocksError::UnknownAddressType(atyp)),
        Err(other) => Err(SocksError::BadDomain(other)),
    }
}

/// Decodes a datagram from the client into its target and payload, as the
/// relay accepts it.
///
/// Fragments (FRAG other than 0) are refused with
/// [`SocksError::Fragmented`], and the relay drops them: RFC 1928 §7 lets an
/// implementation that does not support fragmentation "drop any datagram
/// whose FRAG field is other than X'00'". No client we know of fragments;
/// reassembly would need a queue and a timer per association for nothing.
pub fn decode_udp_datagram(buf: &[u8]) -> Result<(TargetAddr, &[u8]), SocksError> {
    let (header, offset) = decode_udp_header(buf)?;
    if header.frag != 0 {
        return Err(SocksError::Fragmented(header.frag));
    }
    Ok((header.target, &buf[offset..]))
}

/// Appends the header of a standalone datagram (RSV 0, FRAG 0) for
/// `target`; the payload goes right after it.
pub fn encode_udp_header(target: &TargetAddr, out: &mut Vec<u8>) {
    out.extend_from_slice(&[0x00, 0x00, 0x00]);
    target.encode(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::IpAddr;

    #[test]
    fn greeting_examples() {
        assert_eq!(
            decode_greeting(&[5, 2, 0, 2, 9]),
            Ok(Some((
                Greeting {
                    methods: vec![0, 2]
                },
                4
            )))
        );
        assert_eq!(decode_greeting(&[5, 2, 0]), Ok(None));
        assert_eq!(decode_greeting(&[4, 1]), Err(SocksError::BadVersion(4)));
        assert_eq!(
            decode_greeting(&[5, 0]),
            Ok(Some((Greeting { methods: vec![] }, 2)))
        );
    }

    #[test]
    fn method_selection_rules() {
        assert_eq!(select_method(&[0], false), METHOD_NO_AUTH);
        assert_eq!(select_method(&[2, 0], false), METHOD_NO_AUTH);
        assert_eq!(select_method(&[2], false), METHOD_USER_PASS);
        assert_eq!(select_method(&[1], false), METHOD_NONE_ACCEPTABLE);
        assert_eq!(select_method(&[0], true), METHOD_NONE_ACCEPTABLE);
        assert_eq!(select_method(&[0, 2], true), METHOD_USER_PASS);
        assert_eq!(select_method(&[], true), METHOD_NONE_ACCEPTABLE);
    }

    #[test]
    fn user_pass_example_and_redaction() {
        let bytes = [1, 1, b'u', 2, b'p', b'w'];
        let (up, used) = decode_user_pass(&bytes).unwrap().unwrap();
        assert_eq!(used, 6);
        assert_eq!(up.username, b"u");
        assert_eq!(up.password, b"pw");
        assert!(!format!("{up:?}").contains("pw"));
        assert_eq!(
            decode_user_pass(&[5, 1]),
            Err(SocksError::BadAuthVersion(5))
        );
    }

    #[test]
    fn request_examples() {
        let (r, used) = decode_request(&[5, 1, 0, 1, 10, 0, 0, 1, 0, 80])
            .unwrap()
            .unwrap();
        assert_eq!(used, 10);
        assert_eq!(r.command, Command::Connect);
        assert_eq!(r.target, TargetAddr::Ip("10.0.0.1:80".parse().unwrap()));
        let (r, _) = decode_request(&[5, 3, 0, 3, 1, b'a', 1, 0])
            .unwrap()
            .unwrap();
        assert_eq!(r.command, Command::UdpAssociate);
        assert_eq!(r.target, TargetAddr::Domain("a".into(), 256));
        assert_eq!(
            decode_request(&[5, 1, 0, 9, 0]),
            Err(SocksError::UnknownAddressType(9))
        );
        assert_eq!(
            SocksError::UnknownAddressType(9).reply(),
            Reply::AddressTypeNotSupported
        );
        assert!(matches!(
            decode_request(&[5, 1, 0, 3, 0, 0, 80]),
            Err(SocksError::BadDomain(_))
        ));
        assert_eq!(
            decode_request(&[4, 1, 0, 1]),
            Err(SocksError::BadVersion(4))
        );
    }

    #[test]
    fn reply_bytes() {
        let mut out = Vec::new();
        encode_reply(Reply::Succeeded, "0.0.0.0:0".parse().unwrap(), &mut out);
        assert_eq!(out, [5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            decode_reply(&out),
            Ok(Some((
                ReplyMessage {
                    reply: 0,
                    bound: TargetAddr::Ip("0.0.0.0:0".parse().unwrap())
                },
                10
            )))
        );
    }

    #[test]
    fn connect_errors_map_to_replies() {
        use ConnectErrorKind::*;
        let cases = [
            (Refused, 0x05),
            (Unreachable, 0x04),
            (NotAllowed, 0x02),
            (TimedOut, 0x06),
            (Busy, 0x01),
            (Unavailable, 0x01),
            (Other, 0x01),
            (Unsupported, 0x07),
        ];
        for (kind, code) in cases {
            assert_eq!(Reply::from_connect_error(kind) as u8, code, "{kind:?}");
        }
    }

    #[test]
    fn udp_header_examples() {
        let mut out = Vec::new();
        encode_udp_header(&TargetAddr::Ip("1.2.3.4:53".parse().unwrap()), &mut out);
        assert_eq!(out, [0, 0, 0, 1, 1, 2, 3, 4, 0, 53]);
        out.extend_from_slice(b"query");
        let (target, payload) = decode_udp_datagram(&out).unwrap();
        assert_eq!(target, TargetAddr::Ip("1.2.3.4:53".parse().unwrap()));
        assert_eq!(payload, b"query");
        // An empty payload is a valid datagram.
        let (_, payload) = decode_udp_datagram(&out[..10]).unwrap();
        assert!(payload.is_empty());
        // Domains stay names.
        let (h, offset) = decode_udp_header(&[0, 0, 0, 3, 2, b'a', b'b', 1, 0, 9]).unwrap();
        assert_eq!(
            h,
            UdpHeader {
                frag: 0,
                target: TargetAddr::Domain("ab".into(), 256)
            }
        );
        assert_eq!(offset, 9);
    }

    #[test]
    fn udp_header_truncated_at_every_length() {
        for target in ["1.2.3.4:1", "[2001:db8::1]:2", "example.org:3"] {
            let mut out = Vec::new();
            encode_udp_header(&TargetAddr::parse(target).unwrap(), &mut out);
            for cut in 0..out.len() {
                assert_eq!(
                    decode_udp_header(&out[..cut]),
                    Err(SocksError::Truncated),
                    "{target} cut at {cut}"
                );
                assert_eq!(decode_udp_datagram(&out[..cut]), Err(SocksError::Truncated));
            }
            assert_eq!(decode_udp_header(&out).unwrap().1, out.len());
        }
    }

    #[test]
    fn udp_header_bad_address() {
        assert_eq!(
            decode_udp_header(&[0, 0, 0, 9, 1, 2, 3, 4, 0, 1]),
            Err(SocksError::UnknownAddressType(9))
        );
        assert!(matches!(
            decode_udp_datagram(&[0, 0, 0, 3, 0, 0, 80]),
            Err(SocksError::BadDomain(_))
        ));
        assert!(matches!(
            decode_udp_datagram(&[0, 0, 0, 3, 1, 0xff, 0, 80]),
            Err(SocksError::BadDomain(_))
        ));
    }

    #[test]
    fn udp_fragments_are_dropped() {
        let mut bytes = vec![0, 0, 1];
        TargetAddr::Ip("10.0.0.1:53".parse().unwrap()).encode(&mut bytes);
        bytes.extend_from_slice(b"part");
        // The codec reports FRAG as sent; the relay's reading refuses it.
        assert_eq!(decode_udp_header(&bytes).unwrap().0.frag, 1);
        assert_eq!(decode_udp_datagram(&bytes), Err(SocksError::Fragmented(1)));
        bytes[2] = 0x81; // "end of fragment sequence" bit set
        assert_eq!(
            decode_udp_datagram(&bytes),
            Err(SocksError::Fragmented(0x81))
        );
    }

    fn any_target() -> impl Strategy<Value = TargetAddr> {
        prop_oneof![
            (any::<IpAddr>(), any::<u16>())
                .prop_map(|(ip, p)| TargetAddr::Ip(SocketAddr::new(ip, p))),
            ("[a-z0-9.-]{1,255}", any::<u16>()).prop_map(|(n, p)| TargetAddr::Domain(n, p)),
        ]
    }

    fn any_request() -> impl Strategy<Value = Request> {
        (any::<u8>(), any_target()).prop_map(|(cmd, target)| Request {
            command: Command::from_code(cmd),
            target,
        })
    }

    fn tail() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..16)
    }

    proptest! {
        #[test]
        fn greeting_round_trips_and_truncates(
            methods in proptest::collection::vec(any::<u8>(), 0..=255),
            tail in tail(),
        ) {
            let g = Greeting { methods };
            let mut out = Vec::new();
            encode_greeting(&g, &mut out);
            let len = out.len();
            for cut in 0..len {
                prop_assert_eq!(decode_greeting(&out[..cut]), Ok(None));
            }
            out.extend_from_slice(&tail);
            prop_assert_eq!(decode_greeting(&out), Ok(Some((g, len))));
        }

        #[test]
        fn user_pass_round_trips_and_truncates(
            username in proptest::collection::vec(any::<u8>(), 0..=255),
            password in proptest::collection::vec(any::<u8>(), 0..=255),
            tail in tail(),
        ) {
            let up = UserPass { username, password };
            let mut out = Vec::new();
            encode_user_pass(&up, &mut out);
            let len = out.len();
            for cut in 0..len {
                prop_assert_eq!(decode_user_pass(&out[..cut]), Ok(None));
            }
            out.extend_from_slice(&tail);
            prop_assert_eq!(decode_user_pass(&out), Ok(Some((up, len))));
        }

        #[test]
        fn request_round_trips_and_truncates(request in any_request(), tail in tail()) {
            let mut out = Vec::new();
            encode_request(&request, &mut out);
            let len = out.len();
            prop_assert!(len <= MAX_REQUEST_LEN);
            for cut in 0..len {
                prop_assert_eq!(decode_request(&out[..cut]), Ok(None));
            }
            out.extend_from_slice(&tail);
            prop_assert_eq!(decode_request(&out), Ok(Some((request, len))));
        }

        #[test]
        fn reply_round_trips_and_truncates(rep in 0u8..=8, ip in any::<IpAddr>(), port in any::<u16>()) {
            let bound = SocketAddr::new(ip, port);
            let reply = [
                Reply::Succeeded, Reply::GeneralFailure, Reply::NotAllowed,
                Reply::NetworkUnreachable, Reply::HostUnreachable, Reply::ConnectionRefused,
                Reply::TtlExpired, Reply::CommandNotSupported, Reply::AddressTypeNotSupported,
            ][usize::from(rep)];
            let mut out = Vec::new();
            encode_reply(reply, bound, &mut out);
            for cut in 0..out.len() {
                prop_assert_eq!(decode_reply(&out[..cut]), Ok(None));
            }
            let expected = ReplyMessage { reply: rep, bound: TargetAddr::Ip(bound) };
            prop_assert_eq!(decode_reply(&out), Ok(Some((expected, out.len()))));
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            // Whatever the input, a decoder answers and never claims more than it got.
            if let Ok(Some((_, n))) = decode_greeting(&bytes) { prop_assert!(n <= bytes.len()); }
            if let Ok(Some((_, n))) = decode_user_pass(&bytes) { prop_assert!(n <= bytes.len()); }
            if let Ok(Some((_, n))) = decode_request(&bytes) { prop_assert!(n <= bytes.len()); }
            if let Ok(Some((_, n))) = decode_reply(&bytes) { prop_assert!(n <= bytes.len()); }
        }

        #[test]
        fn udp_header_round_trips(
            target in any_target(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut out = Vec::new();
            encode_udp_header(&target, &mut out);
            let len = out.len();
            prop_assert!(len <= MAX_UDP_HEADER_LEN);
            for cut in 0..len {
                prop_assert_eq!(decode_udp_header(&out[..cut]), Err(SocksError::Truncated));
            }
            out.extend_from_slice(&payload);
            let expected = UdpHeader { frag: 0, target: target.clone() };
            prop_assert_eq!(decode_udp_header(&out), Ok((expected, len)));
            prop_assert_eq!(decode_udp_datagram(&out), Ok((target, &payload[..])));
        }

        #[test]
        fn udp_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok((_, offset)) = decode_udp_header(&bytes) {
                prop_assert!(offset <= bytes.len());
            }
            if let Ok((_, payload)) = decode_udp_datagram(&bytes) {
                prop_assert!(payload.len() <= bytes.len());
            }
        }

        #[test]
        fn udp_decode_never_panics_on_header_like_input(
            frag in any::<u8>(), atyp in 0u8..6, rest in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut bytes = vec![0, 0, frag, atyp];
            bytes.extend_from_slice(&rest);
            let _ = decode_udp_datagram(&bytes);
        }

        #[test]
        fn decoders_never_panic_on_socks_like_input(
            cmd in any::<u8>(), atyp in 0u8..6, rest in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut bytes = vec![VERSION, cmd, 0, atyp];
            bytes.extend_from_slice(&rest);
            if let Ok(Some((_, n))) = decode_request(&bytes) { prop_assert!(n <= bytes.len()); }
        }
    }
}
