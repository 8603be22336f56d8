//! Hidden hook for the fuzz target `relay_control` and the proptests.

use std::time::{Duration, Instant};

use super::{ClientConfig, ClientEvent, ClientMachine, Phase, TunnelState};
use crate::codec::decode_client;
use crate::message::Token;

/// Drives one client machine from raw relay bytes: `0xff` separates steps,
/// the first byte of each picks the input (bytes, a lost connection, the
/// timer, WireGuard up, counters, disconnect, connect) and how far time
/// moves. Every dial succeeds at once. Asserts the machine's invariants;
/// returns how many heartbeats were answered (how deep the input went).
pub fn drive(data: &[u8]) -> usize {
    let mut config = ClientConfig::new(
        Token::new("jwt"),
        "pc",
        vec![22, 3389],
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    );
    config.max_line = 4096;
    let max_attempts = config.reconnect.max_attempts;
    let mut now = Instant::now();
    let mut machine = ClientMachine::new(config).expect("a valid config");
    let mut state = TunnelState::Disconnected;
    let mut answered = 0;
    // The first step connects.
    for step in std::iter::once(&[0xf0][..]).chain(data.split(|&b| b == 0xff)) {
        let Some((&op, body)) = step.split_first() else {
            continue;
        };
        now += Duration::from_secs(u64::from(op & 0x0f) * 2);
        match op >> 4 {
            0..=9 => machine.handle_bytes(body, now),
            10 => machine.transport_lost(now),
            11 => machine.handle_timeout(now),
            12 => machine.wireguard_up(now),
            13 => machine.set_stats(body.len() as u64, 7, "2026-01-01T00:00:00Z"),
            14 => machine.disconnect(),
            _ => machine.connect(now),
        }
        let mut dial = false;
        while let Some(event) = machine.poll_event() {
            match event {
                ClientEvent::StateChanged { from, to } => {
                    assert_eq!(from, state, "state changes form a chain");
                    assert_ne!(from, to);
                    state = to;
                }
                ClientEvent::Dial => dial = true,
                ClientEvent::Retrying { attempt, .. } => assert!(attempt <= max_attempts),
                ClientEvent::HeartbeatAnswered { .. } => answered += 1,
                _ => {}
            }
        }
        if dial {
            machine.transport_connected(now);
        }
        let mut sent = 0;
        while let Some(line) = machine.poll_transmit() {
            sent += 1;
            assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
            assert_eq!(line.last(), Some(&b'\n'));
            decode_client(&line[..line.len() - 1]).expect("our lines decode");
        }
        // One answer per line read at most, plus wireguard_up's two
        // (register_ack and the heartbeat that confirms it).
        assert!(
            sent <= 2 + body.iter().filter(|&&b| b == b'\n').count(),
            "{sent}"
        );
        assert_eq!(machine.state(), state);
        assert_eq!(
            machine.phase == Phase::Idle,
            state == TunnelState::Disconnected
        );
        assert_eq!(
            machine.poll_timeout().is_none(),
            matches!(machine.phase, Phase::Idle | Phase::Registered)
        );
        assert!(machine.retries() <= max_attempts);
        assert!(machine.decoder.buffered() <= 4096);
        assert!(machine.events.is_empty() && machine.out.is_empty());
    }
    answered
}
