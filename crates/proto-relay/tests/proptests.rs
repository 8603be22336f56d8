//! Properties: every message survives encode → any split → decode, and
//! arbitrary bytes (raw, or real lines mixed with garbage) never make
//! either machine panic or hold more than its bounds (the drives in
//! `proto_relay::fuzzing` assert those invariants after every step).

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proto_relay::message::{
    Auth, AuthResponse, ClientInfo, ErrorDetails, ErrorMessage, Forward, Heartbeat,
    HeartbeatResponse, Hello, Register, RegisterAck, RegisterResponse, ServerInfo, Stats,
    TunnelConfig, TunnelInfo,
};
use proto_relay::{
    ClientMessage, ErrorCode, LineDecoder, ServerMessage, Token, decode_client, decode_server,
    encode_line, fuzzing,
};

/// Any text, newlines, quotes and control characters included.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[a-z0-9\"\\\\\n\r\t -]{0,12}"]
}

fn token() -> impl Strategy<Value = Token> {
    text().prop_map(Token::new)
}

fn tunnel_info() -> impl Strategy<Value = TunnelInfo> {
    (text(), text(), vec(any::<u16>(), 0..20), text()).prop_map(
        |(name, protocol, ports, public_key)| TunnelInfo {
            name,
            protocol,
            ports,
            public_key,
        },
    )
}

fn tunnel_config() -> impl Strategy<Value = TunnelConfig> {
    (
        text(),
        text(),
        vec(text(), 0..3),
        text(),
        vec((any::<u16>(), text()), 0..4),
    )
        .prop_map(
            |(endpoint, public_key, allowed_ips, address, forwards)| TunnelConfig {
                endpoint,
                public_key,
                allowed_ips,
                address,
                forwards: forwards
                    .into_iter()
                    .map(|(port, public)| Forward { port, public })
                    .collect(),
            },
        )
}

fn client_message() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        (token(), text(), text(), text()).prop_map(|(token, version, os, v)| {
            ClientMessage::Auth(Auth {
                token,
                version,
                client_info: ClientInfo { os, version: v },
            })
        }),
        (tunnel_info(), option::of(text()), option::of(token())).prop_map(
            |(tunnel_info, tunnel_id, reconnect_token)| ClientMessage::Register(Register {
                tunnel_info,
                tunnel_id,
                reconnect_token,
            })
        ),
        text().prop_map(|tunnel_id| ClientMessage::RegisterAck(RegisterAck { tunnel_id })),
        (text(), any::<u64>(), any::<u64>(), text()).prop_map(
            |(tunnel_id, bytes_in, bytes_out, connected_since)| {
                ClientMessage::Heartbeat(Heartbeat {
                    tunnel_id,
                    stats: Stats {
                        bytes_in,
                        bytes_out,
                        connected_since,
                    },
                })
            }
        ),
    ]
}

fn server_message() -> impl Strategy<Value = ServerMessage> {
    prop_oneof![
        (text(), vec(text(), 0..4))
            .prop_map(|(version, features)| ServerMessage::Hello(Hello { version, features })),
        (text(), text(), vec(text(), 0..3)).prop_map(|(status, version, features)| {
            ServerMessage::AuthResponse(AuthResponse {
                status,
                server_info: ServerInfo { version, features },
            })
        }),
        (text(), text(), tunnel_config(), option::of(token())).prop_map(
            |(status, tunnel_id, config, reconnect_token)| {
                ServerMessage::RegisterResponse(RegisterResponse {
                    status,
                    tunnel_id,
                    config,
                    reconnect_token,
                })
            }
        ),
        (text(), text()).prop_map(|(status, server_time)| {
            ServerMessage::HeartbeatResponse(HeartbeatResponse {
                status,
                server_time,
            })
        }),
        (any::<u16>(), text(), text(), option::of(any::<u64>())).prop_map(
            |(code, message, reason, retry_after)| ServerMessage::Error(ErrorMessage {
                code: ErrorCode::from(code),
                message,
                details: ErrorDetails {
                    reason,
                    retry_after
                },
            })
        ),
    ]
}

/// Lines through a decoder fed in pieces of `chunk` bytes.
fn split_lines(bytes: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    let mut decoder = LineDecoder::default();
    let mut lines = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        decoder.push(piece);
        while let Some(line) = decoder.next_line() {
            lines.push(line.expect("under the cap"));
        }
    }
    assert_eq!(decoder.buffered(), 0);
    lines
}

/// What the relay sends, in protocol order.
const TO_CLIENT: [&str; 6] = [
    r#"{"type":"hello","version":"1.0","features":[]}"#,
    r#"{"type":"auth_response","status":"success"}"#,
    r#"{"type":"register_response","status":"success","tunnel_id":"6f1c7e0e-0000-4000-8000-000000000001","config":{"endpoint":"e:1","public_key":"k","allowed_ips":[],"address":"10.0.0.7/32"},"reconnect_token":"rt"}"#,
    r#"{"type":"heartbeat_response","status":"ok","server_time":"t"}"#,
    r#"{"type":"error","code":3001,"message":"m","details":{"reason":"r","retry_after":7}}"#,
    r#"{"type":"error","code":1002,"message":"m","details":{"reason":"bad_reconnect_token"}}"#,
];

/// What the client sends, in protocol order (`abcd` is signed in, `jwt`
/// refused; `xpc` is refused a tunnel; see `proto_relay::fuzzing`).
const TO_SERVER: [&str; 6] = [
    r#"{"type":"auth","token":"abcd"}"#,
    r#"{"type":"register","tunnel_info":{"name":"pc","protocol":"tcp","ports":[22],"public_key":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}}"#,
    r#"{"type":"register_ack","tunnel_id":"6f1c7e0e-0000-4000-8000-000000000001"}"#,
    r#"{"type":"heartbeat","tunnel_id":"6f1c7e0e-0000-4000-8000-000000000001","stats":{"bytes_in":1,"bytes_out":2,"connected_since":"s"}}"#,
    r#"{"type":"auth","token":"jwt","version":"1.0"}"#,
    r#"{"type":"register","tunnel_info":{"name":"xpc","protocol":"tcp","ports":[22],"public_key":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="},"tunnel_id":"6f1c7e0e-0000-4000-8000-000000000001","reconnect_token":"rt"}"#,
];

/// The happy path of each drive as (op, body) steps, the last two
/// repeating: for the client, hello, auth_response, register_response,
/// WireGuard up (op 0xc0), then the timer 30 s later (0xbf) and the
/// heartbeat's answer; for the relay, auth, register, ack, then a
/// heartbeat every 32 s (op 0x08).
fn happy(to_client: bool, n: usize) -> (u8, Vec<u8>) {
    let line = |l: &str| format!("{l}\n").into_bytes();
    if to_client {
        match n {
            0..=2 => (0x00, line(TO_CLIENT[n])),
            3 => (0xc0, Vec::new()),
            n if n % 2 == 0 => (0xbf, Vec::new()),
            _ => (0x00, line(TO_CLIENT[3])),
        }
    } else {
        match n {
            0..=2 => (0x00, line(TO_SERVER[n])),
            _ => (0x08, line(TO_SERVER[3])),
        }
    }
}

/// Raw material for one step: which kind, an op byte, a pick, bytes.
type Material = (u8, u8, prop::sample::Index, Vec<u8>);

fn material() -> impl Strategy<Value = Material> {
    (
        any::<u8>(),
        0u8..0xff,
        any::<prop::sample::Index>(),
        vec(1u8..0xff, 0..48),
    )
}

/// Steps for one drive: mostly the next step of the happy path, mixed
/// with other real lines, lines cut short or split over two steps,
/// garbage, and other inputs (timer, lost connection, disconnect…).
fn drive_input(to_client: bool, material: &[Material]) -> Vec<u8> {
    let pool = if to_client { &TO_CLIENT } else { &TO_SERVER };
    let mut next = 0;
    let mut steps: Vec<Vec<u8>> = Vec::new();
    for (kind, op, pick, garbage) in material {
        let (op, body) = match kind % 20 {
            0..=11 => {
                next += 1;
                happy(to_client, next - 1)
            }
            12 => (op & 0x9f, format!("{}\n", pick.get(pool)).into_bytes()),
            13 => {
                // The next happy line, in two steps cut anywhere.
                next += 1;
                let (op, body) = happy(to_client, next - 1);
                let at = pick.index(body.len() + 1);
                steps.push([&[op & 0xf0][..], &body[..at]].concat());
                (op & 0xf0, body[at..].to_vec())
            }
            14 => {
                let line = pick.get(pool).as_bytes();
                (op & 0x9f, line[..pick.index(line.len())].to_vec())
            }
            15 => (op & 0x9f, garbage.clone()),
            _ => (*op, Vec::new()),
        };
        steps.push([&[op][..], &body[..]].concat());
    }
    steps.join(&0xff)
}

/// Steps as the drives read them: an op byte, then its body, joined by 0xff.
fn steps(steps: &[(u8, &str)]) -> Vec<u8> {
    let parts: Vec<Vec<u8>> = steps
        .iter()
        .map(|(op, body)| {
            let mut step = vec![*op];
            step.extend_from_slice(body.as_bytes());
            step
        })
        .collect();
    parts.join(&0xff)
}

/// The drives are worth fuzzing: real lines take both machines all the
/// way to answered heartbeats.
#[test]
fn the_drives_reach_answered_heartbeats() {
    let client: Vec<_> = (0..6).map(|n| happy(true, n)).collect();
    let client: Vec<_> = client
        .iter()
        .map(|(op, body)| (*op, std::str::from_utf8(body).unwrap()))
        .collect();
    assert_eq!(fuzzing::drive_client(&steps(&client)), 1);
    let server: Vec<_> = (0..6).map(|n| happy(false, n)).collect();
    let server: Vec<_> = server
        .iter()
        .map(|(op, body)| (*op, std::str::from_utf8(body).unwrap()))
        .collect();
    assert_eq!(fuzzing::drive_server(&steps(&server)), 3);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn client_messages_round_trip(messages in vec(client_message(), 1..6), chunk in 1usize..40) {
        let bytes: Vec<u8> = messages.iter().flat_map(encode_line).collect();
        for line in &messages.iter().map(encode_line).collect::<Vec<_>>() {
            prop_assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        }
        let decoded: Vec<_> = split_lines(&bytes, chunk)
            .iter()
            .map(|l| decode_client(l).unwrap())
            .collect();
        prop_assert_eq!(decoded, messages);
    }

    #[test]
    fn server_messages_round_trip(messages in vec(server_message(), 1..6), chunk in 1usize..40) {
        let bytes: Vec<u8> = messages.iter().flat_map(encode_line).collect();
        let decoded: Vec<_> = split_lines(&bytes, chunk)
            .iter()
            .map(|l| decode_server(l).unwrap())
            .collect();
        prop_assert_eq!(decoded, messages);
    }

    #[test]
    fn raw_bytes_never_break_either_machine(data in vec(any::<u8>(), 0..4096)) {
        fuzzing::drive(&data);
    }

    #[test]
    fn real_lines_and_garbage_never_break_either_machine(material in vec(material(), 0..48)) {
        fuzzing::drive_client(&drive_input(true, &material));
        fuzzing::drive_server(&drive_input(false, &material));
    }

    /// The decoder holds at most the cap, whatever comes.
    #[test]
    fn the_decoder_is_bounded(pieces in vec(vec(any::<u8>(), 0..300), 0..30), max in 1usize..128) {
        let mut decoder = LineDecoder::new(max);
        for piece in pieces {
            decoder.push(&piece);
            while let Some(line) = decoder.next_line() {
                if let Ok(line) = line {
                    prop_assert!(line.len() <= max);
                    prop_assert!(!line.contains(&b'\n'));
                }
            }
            prop_assert!(decoder.buffered() <= max);
        }
    }
}
