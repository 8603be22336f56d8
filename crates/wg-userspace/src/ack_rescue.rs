//! Works around smoltcp 0.14's loss recovery, which otherwise stalls
//! connections (for ever, in two cases) once packets are lost.
//!
//! smoltcp judges every incoming segment by its sequence number first and,
//! if the segment is outside the receive window, drops it whole — ACK field
//! included. Two of its habits make that fatal after packet loss:
//!
//! - While its receive window is zero it accepts only an empty segment at
//!   exactly RCV.NXT, although RFC 9293 §3.10.7.4 says "special allowance
//!   should be made to accept valid ACKs" then. A peer with data in flight
//!   beyond RCV.NXT sends no such segment, so the ACKs for *our* data are
//!   dropped and our send buffer never drains. (Found with an echo server
//!   behind wireguard-go: blocked on our full send buffer it stopped reading,
//!   which closed our window, which dropped the ACKs that would have freed
//!   the send buffer.)
//! - After a retransmission timeout it rewinds SND.NXT to SND.UNA (go-back-N),
//!   and its empty ACKs carry that rewound number. When the peer had in fact
//!   received everything and only our ACKs were lost, those ACKs lie below
//!   the peer's RCV.NXT and the peer drops them. Two smoltcp ends that both
//!   lost ACKs then drop each other's ACKs for ever. (Found with a lossy
//!   relay between two nodes.)
//!
//! And its recovery is slow: it retransmits on the third duplicate ACK only,
//! one segment, and otherwise waits for a timeout of at least one second. A
//! window that lost several segments, or that had too few in flight to draw
//! three duplicates, costs a second or more per hole.
//!
//! The workaround sits between the driver and smoltcp and feeds smoltcp
//! extra bare ACK segments (headers only) before the real one:
//!
//! - It remembers, per connection, the ACK number and window of the last
//!   segment we sent (that ACK number is RCV.NXT, or just below it while an
//!   ACK is delayed). When an incoming segment is certain to be dropped for
//!   its sequence number — wholly below that ACK number, or anything but the
//!   one acceptable empty segment while our window is zero — a bare copy at
//!   that sequence number goes first, so its ACK, window and SACK count. The
//!   original follows unchanged: smoltcp drops its data and answers it with
//!   an ACK, which tells the peer where we are.
//! - An incoming ACK with SACK blocks says the peer holds data beyond a hole
//!   at the ACK number. The first time a connection reports a hole at a
//!   given ACK number, the ACK is repeated so that smoltcp counts three
//!   duplicates and retransmits the missing segment at once — hole after
//!   hole, as SACK-based recovery (RFC 6675) would, instead of one per
//!   timeout.

use std::collections::HashMap;

const IPPROTO_TCP: u8 = 6;
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;
/// TCP option kinds (RFC 9293 §3.1, RFC 2018).
const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_SACK: u8 = 5;
/// Duplicate ACKs smoltcp waits for before a fast retransmit.
const DUP_THRESHOLD: usize = 3;

/// (local address, local port, remote address, remote port).
type Flow = ([u8; 4], u16, [u8; 4], u16);

/// What we last told the peer of a connection.
#[derive(Clone, Copy)]
struct Sent {
    /// Our ACK number: RCV.NXT when it was sent.
    ack: u32,
    zero_window: bool,
    /// The peer's ACK number at the last hole smoltcp was made to retransmit.
    hole: Option<u32>,
}

/// The fields of an IPv4/TCP packet this module reads.
struct Segment {
    ip_header: usize,
    tcp_header: usize,
    src: [u8; 4],
    dst: [u8; 4],
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    payload: usize,
    /// The options carry SACK blocks: the peer has data beyond a hole.
    sack: bool,
}

/// Parses the IPv4 and TCP headers; `None` for anything else or malformed.
fn parse(packet: &[u8]) -> Option<Segment> {
    let first = *packet.first()?;
    if first >> 4 != 4 || *packet.get(9)? != IPPROTO_TCP {
        return None;
    }
    let ip_header = usize::from(first & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
    if ip_header < 20 || total > packet.len() || total < ip_header + 20 {
        return None;
    }
    // Fragments are left alone (smoltcp here does not reassemble them).
    let fragment = u16::from_be_bytes([packet[6], packet[7]]);
    if fragment & 0x3fff != 0 {
        return None;
    }
    let tcp = &packet[ip_header..total];
    let tcp_header = usize::from(tcp[12] >> 4) * 4;
    if tcp_header < 20 || tcp_header > tcp.len() {
        return None;
    }
    let word = |at: usize| u32::from_be_bytes([tcp[at], tcp[at + 1], tcp[at + 2], tcp[at + 3]]);
    let sack = has_sack(&tcp[20..tcp_header]);
    Some(Segment {
        ip_header,
        tcp_header,
        src: packet[12..16].try_into().ok()?,
        dst: packet[16..20].try_into().ok()?,
        src_port: u16::from_be_bytes([tcp[0], tcp[1]]),
        dst_port: u16::from_be_bytes([tcp[2], tcp[3]]),
        seq: word(4),
        ack: word(8),
        flags: tcp[13],
        window: u16::from_be_bytes([tcp[14], tcp[15]]),
        payload: tcp.len() - tcp_header,
        sack,
    })
}

/// Whether TCP options hold a SACK option with at least one block.
fn has_sack(mut options: &[u8]) -> bool {
    while let Some(&kind) = options.first() {
        match kind {
            OPT_END => return false,
            OPT_NOP => options = &options[1..],
            _ => {
                let Some(&len) = options.get(1) else {
                    return false;
                };
                let len = usize::from(len);
                if len < 2 || len > options.len() {
                    return false;
                }
                if kind == OPT_SACK && len >= 10 {
                    return true;
                }
                options = &options[len..];
            }
        }
    }
    false
}

/// `a` strictly before `b` in sequence space (RFC 9293 §3.4, modulo 2^32).
fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// Per-connection memory of our last ACK, and the rescue itself.
pub(crate) struct AckRescue {
    sent: HashMap<Flow, Sent>,
    /// Connections remembered at most: an entry outlives its connection
    /// until the table is next cleared, so the bound keeps them from piling
    /// up (a cleared entry only pauses the rescue until the next segment).
    limit: usize,
}

impl AckRescue {
    pub(crate) fn new(limit: usize) -> AckRescue {
        AckRescue {
            sent: HashMap::new(),
            limit: limit.max(1),
        }
    }

    /// Remembers the ACK number and window of a segment the stack sends.
    pub(crate) fn observe_outgoing(&mut self, packet: &[u8]) {
        let Some(s) = parse(packet) else {
            return;
        };
        let flow = (s.src, s.src_port, s.dst, s.dst_port);
        if s.flags & RST != 0 {
            self.sent.remove(&flow);
        } else if s.flags & ACK != 0 {
            if self.sent.len() >= self.limit && !self.sent.contains_key(&flow) {
                self.sent.clear();
            }
            let hole = self.sent.get(&flow).and_then(|sent| sent.hole);
            self.sent.insert(
                flow,
                Sent {
                    ack: s.ack,
                    zero_window: s.window == 0,
                    hole,
                },
            );
        }
    }

    /// Feeds the bare ACKs smoltcp needs before `packet` (none, mostly).
    pub(crate) fn extra_acks(&mut self, packet: &[u8], mut feed: impl FnMut(Vec<u8>)) {
        if self.sent.is_empty() {
            return;
        }
        let Some(s) = parse(packet) else {
            return;
        };
        let Some(sent) = self.sent.get_mut(&(s.dst, s.dst_port, s.src, s.src_port)) else {
            return;
        };
        // SYNs and RSTs follow their own rules; without ACK there is
        // nothing to rescue.
        if s.flags & (SYN | RST) != 0 || s.flags & ACK == 0 {
            return;
        }
        let fin = u32::from(s.flags & FIN != 0);
        let len = s.payload as u32 + fin;
        let dropped = if sent.zero_window {
            // Only an empty segment at exactly RCV.NXT gets through.
            len != 0 || s.seq != sent.ack
        } else if len == 0 {
            // An empty segment below RCV.NXT.
            before(s.seq, sent.ack)
        } else {
            // Data wholly below RCV.NXT: a retransmission of what we have.
            !before(sent.ack, s.seq.wrapping_add(len))
        };
        let new_hole = s.sack && sent.hole != Some(s.ack);
        if !dropped && !new_hole {
            return;
        }
        let copies = if new_hole {
            sent.hole = Some(s.ack);
            // One copy registers the ACK number, then three duplicates. A
            // real segment with data would reset smoltcp's duplicate count,
            // so it needs all of them first; a bare one is the third itself.
            if dropped || len != 0 {
                DUP_THRESHOLD + 1
            } else {
                DUP_THRESHOLD
            }
        } else {
            1
        };
        // Rescued copies move to RCV.NXT; the others keep their (acceptable)
        // sequence number.
        let seq = if dropped { sent.ack } else { s.seq };
        let header = s.ip_header + s.tcp_header;
        let mut copy = packet[..header].to_vec();
        let tcp = s.ip_header;
        copy[tcp + 4..tcp + 8].copy_from_slice(&seq.to_be_bytes());
        copy[tcp + 13] &= !FIN;
        // Only the IPv4 total length needs fixing: the stack does not verify
        // received checksums (WireGuard authenticated the packet; device.rs).
        copy[2..4].copy_from_slice(&(header as u16).to_be_bytes());
        for _ in 1..copies {
            feed(copy.clone());
        }
        feed(copy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: [u8; 4] = [10, 0, 0, 2];
    const THEM: [u8; 4] = [10, 0, 0, 1];

    struct Seg {
        seq: u32,
        ack: u32,
        flags: u8,
        window: u16,
        options: &'static [u8],
    }

    fn packet(src: [u8; 4], dst: [u8; 4], ports: (u16, u16), seg: Seg, payload: &[u8]) -> Vec<u8> {
        let tcp_header = 20 + seg.options.len();
        let total = 20 + tcp_header + payload.len();
        let mut p = vec![0u8; total];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[9] = IPPROTO_TCP;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p[20..22].copy_from_slice(&ports.0.to_be_bytes());
        p[22..24].copy_from_slice(&ports.1.to_be_bytes());
        p[24..28].copy_from_slice(&seg.seq.to_be_bytes());
        p[28..32].copy_from_slice(&seg.ack.to_be_bytes());
        p[32] = ((tcp_header / 4) as u8) << 4;
        p[33] = seg.flags;
        p[34..36].copy_from_slice(&seg.window.to_be_bytes());
        p[40..20 + tcp_header].copy_from_slice(seg.options);
        p[20 + tcp_header..].copy_from_slice(payload);
        p
    }

    fn ours(ack: u32, window: u16) -> Vec<u8> {
        let seg = Seg {
            seq: 42,
            ack,
            flags: ACK,
            window,
            options: &[],
        };
        packet(US, THEM, (5000, 80), seg, b"")
    }

    fn theirs(seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let seg = Seg {
            seq,
            ack: 777,
            flags,
            window: 100,
            options: &[],
        };
        packet(THEM, US, (80, 5000), seg, payload)
    }

    /// A SACK option (two NOPs, kind 5, one block) as Linux and smoltcp send it.
    const SACK: &[u8] = &[1, 1, 5, 10, 0, 0, 0x10, 0, 0, 0, 0x20, 0];

    fn theirs_with_sack(seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
        let seg = Seg {
            seq,
            ack,
            flags: ACK,
            window: 100,
            options: SACK,
        };
        packet(THEM, US, (80, 5000), seg, payload)
    }

    fn extra(rescue: &mut AckRescue, incoming: &[u8]) -> Vec<Vec<u8>> {
        let mut fed = Vec::new();
        rescue.extra_acks(incoming, |p| fed.push(p));
        fed
    }

    /// Exactly one bare ACK at `rcv_nxt` carrying the incoming ACK and window.
    fn assert_rescued(rescue: &mut AckRescue, incoming: &[u8], rcv_nxt: u32) {
        let fed = extra(rescue, incoming);
        assert_eq!(fed.len(), 1, "one rescued copy");
        let s = parse(&fed[0]).unwrap();
        assert_eq!(s.seq, rcv_nxt, "moved to RCV.NXT");
        assert_eq!((s.ack, s.window), (777, 100), "ACK and window kept");
        assert_eq!(s.payload, 0);
        assert_eq!(s.flags & FIN, 0);
        assert_eq!(fed[0].len(), 40);
    }

    #[test]
    fn zero_window_lets_only_the_exact_ack_through() {
        let mut rescue = AckRescue::new(16);
        let late = theirs(1_000_055, ACK | FIN, b"late data");
        assert!(extra(&mut rescue, &late).is_empty(), "unknown connection");
        rescue.observe_outgoing(&ours(1_000_000, 0));
        assert_rescued(&mut rescue, &late, 1_000_000);
        assert_rescued(&mut rescue, &theirs(1_000_055, ACK, b""), 1_000_000);
        assert_rescued(&mut rescue, &theirs(1_000_000, ACK, b"probe"), 1_000_000);
        assert!(
            extra(&mut rescue, &theirs(1_000_000, ACK, b"")).is_empty(),
            "acceptable as is"
        );
        // RSTs and SYNs are not touched; nor are other connections.
        assert!(extra(&mut rescue, &theirs(5, RST | ACK, b"")).is_empty());
        assert!(extra(&mut rescue, &theirs(5, SYN | ACK, b"")).is_empty());
        let seg = Seg {
            seq: 9,
            ack: 777,
            flags: ACK,
            window: 1,
            options: &[],
        };
        assert!(extra(&mut rescue, &packet(THEM, US, (81, 5000), seg, b"x")).is_empty());
        // The window reopens.
        rescue.observe_outgoing(&ours(1_000_000, 512));
        assert!(extra(&mut rescue, &late).is_empty());
    }

    #[test]
    fn stale_segments_below_rcv_nxt() {
        let mut rescue = AckRescue::new(16);
        rescue.observe_outgoing(&ours(5_000, 512));
        // A rewound empty ACK, and retransmissions of data we have.
        assert_rescued(&mut rescue, &theirs(4_000, ACK, b""), 5_000);
        assert_rescued(&mut rescue, &theirs(4_000, ACK, &[1; 1000]), 5_000);
        assert_rescued(&mut rescue, &theirs(4_000, ACK | FIN, &[1; 999]), 5_000);
        // Overlapping RCV.NXT, at it, or beyond: smoltcp takes these itself.
        assert!(extra(&mut rescue, &theirs(4_000, ACK, &[1; 1001])).is_empty());
        assert!(extra(&mut rescue, &theirs(5_000, ACK, b"")).is_empty());
        assert!(extra(&mut rescue, &theirs(6_000, ACK, b"x")).is_empty());
        // Sequence numbers wrap.
        rescue.observe_outgoing(&ours(10, 512));
        assert_rescued(&mut rescue, &theirs(u32::MAX - 5, ACK, b""), 10);
        assert!(extra(&mut rescue, &theirs(11, ACK, b"")).is_empty());
    }

    #[test]
    fn sack_makes_each_hole_retransmit_once() {
        let mut rescue = AckRescue::new(16);
        rescue.observe_outgoing(&ours(5_000, 512));
        // A bare ACK reporting a hole at 777: two copies before it make
        // the three duplicates with the original.
        let fed = extra(&mut rescue, &theirs_with_sack(5_000, 777, b""));
        assert_eq!(fed.len(), DUP_THRESHOLD);
        for copy in &fed {
            let s = parse(copy).unwrap();
            assert_eq!((s.seq, s.ack, s.payload), (5_000, 777, 0));
            assert!(s.sack, "SACK blocks kept");
        }
        // The same hole again: smoltcp has it in hand.
        assert!(extra(&mut rescue, &theirs_with_sack(5_000, 777, b"")).is_empty());
        // The next hole, reported on a segment with data: all four copies
        // come first, since the data segment resets the count.
        let fed = extra(&mut rescue, &theirs_with_sack(5_000, 2_157, b"data"));
        assert_eq!(fed.len(), DUP_THRESHOLD + 1);
        assert!(fed.iter().all(|c| parse(c).unwrap().payload == 0));
        // No SACK, no copies.
        let seg = Seg {
            seq: 5_004,
            ack: 9_000,
            flags: ACK,
            window: 100,
            options: &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2],
        };
        assert!(extra(&mut rescue, &packet(THEM, US, (80, 5000), seg, b"")).is_empty());
    }

    #[test]
    fn parses_options_defensively() {
        assert!(has_sack(SACK));
        assert!(!has_sack(&[]));
        assert!(!has_sack(&[0, 5, 10]), "after END");
        assert!(!has_sack(&[5, 2]), "no block");
        assert!(!has_sack(&[5, 10, 0]), "truncated");
        assert!(!has_sack(&[8, 0, 5, 10]), "zero length");
        assert!(!has_sack(&[1, 1, 1]));
    }

    #[test]
    fn forgets_reset_connections_and_stays_bounded() {
        let mut rescue = AckRescue::new(4);
        rescue.observe_outgoing(&ours(5_000, 0));
        let seg = Seg {
            seq: 42,
            ack: 0,
            flags: RST,
            window: 0,
            options: &[],
        };
        rescue.observe_outgoing(&packet(US, THEM, (5000, 80), seg, b""));
        assert!(extra(&mut rescue, &theirs(1, ACK, b"")).is_empty());
        for port in 0..100 {
            let seg = Seg {
                seq: 1,
                ack: 1,
                flags: ACK,
                window: 0,
                options: &[],
            };
            rescue.observe_outgoing(&packet(US, THEM, (port, 80), seg, b""));
            assert!(rescue.sent.len() <= 4);
        }
    }

    #[test]
    fn ignores_malformed_packets() {
        let mut rescue = AckRescue::new(16);
        rescue.observe_outgoing(&ours(1, 0));
        let full = theirs(9, ACK, b"payload");
        assert_eq!(extra(&mut rescue, &full).len(), 1);
        for len in 0..full.len() {
            assert!(
                extra(&mut rescue, &full[..len]).is_empty(),
                "truncated at {len}"
            );
        }
    }
}
