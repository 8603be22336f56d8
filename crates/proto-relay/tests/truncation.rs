//! Every message cut at every byte: a machine fed the two pieces does
//! exactly what it does with the whole line, and nothing before the `\n`;
//! and no proper prefix of a line decodes.

use std::time::{Duration, Instant};

use proto_relay::{
    Claims, ClientConfig, ClientEvent, ClientMachine, LineDecoder, RegisterGrant, ServerConfig,
    ServerEvent, ServerSession, Token, TunnelConfig, decode_client, decode_server,
};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// The client's lines in protocol order.
const CLIENT_LINES: [&str; 4] = [
    r#"{"type":"auth","token":"jwt","version":"1.0","client_info":{"os":"linux","version":"1.0.0"}}"#,
    r#"{"type":"register","tunnel_info":{"name":"pc","protocol":"tcp","ports":[22],"public_key":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="},"tunnel_id":"t-1","reconnect_token":"rt"}"#,
    r#"{"type":"register_ack","tunnel_id":"t-1"}"#,
    r#"{"type":"heartbeat","tunnel_id":"t-1","stats":{"bytes_in":1,"bytes_out":2,"connected_since":"2026-05-01T10:00:00Z"}}"#,
];

/// The relay's lines in protocol order (the error last: it ends the run).
const SERVER_LINES: [&str; 5] = [
    r#"{"type":"hello","version":"1.0","features":["tunnel","monitoring"]}"#,
    r#"{"type":"auth_response","status":"success","server_info":{"version":"1.0.0","features":["tunnel"]}}"#,
    r#"{"type":"register_response","status":"success","tunnel_id":"t-1","config":{"endpoint":"relay.example:51820","public_key":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","allowed_ips":["10.0.0.0/24"],"address":"10.0.0.7/32","forwards":[{"port":22,"public":"relay.example:40022"}]},"reconnect_token":"rt"}"#,
    r#"{"type":"heartbeat_response","status":"ok","server_time":"2026-05-01T10:00:30Z"}"#,
    r#"{"type":"error","code":3001,"message":"slow down","details":{"reason":"heartbeat_too_early","retry_after":9}}"#,
];

/// A session that has read the first `n` client lines, every event answered.
fn session_after(n: usize, t0: Instant) -> ServerSession {
    let mut s = ServerSession::new(ServerConfig::default(), t0);
    for line in &CLIENT_LINES[..n] {
        s.handle_bytes(format!("{line}\n").as_bytes(), t0);
        answer(&mut s);
    }
    while s.poll_transmit().is_some() {}
    s
}

fn answer(s: &mut ServerSession) -> Vec<ServerEvent> {
    let events: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    for event in &events {
        match event {
            ServerEvent::Authenticate { .. } => {
                s.auth_verdict(Ok(Claims { sub: "a".into() })).unwrap()
            }
            ServerEvent::Register { .. } => s
                .register_result(Ok(RegisterGrant {
                    tunnel_id: "t-1".into(),
                    config: TunnelConfig {
                        endpoint: "e:1".into(),
                        public_key: KEY.into(),
                        allowed_ips: vec![],
                        address: "10.0.0.7/32".into(),
                        forwards: vec![],
                    },
                    reconnect_token: Token::new("rt"),
                }))
                .unwrap(),
            ServerEvent::Heartbeat { .. } => s.heartbeat_ok("now").unwrap(),
            _ => {}
        }
    }
    events
}

fn transmitted(s: &mut ServerSession) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| s.poll_transmit()).collect()
}

#[test]
fn the_session_reads_every_line_cut_at_every_byte() {
    let t0 = Instant::now();
    for (n, line) in CLIENT_LINES.iter().enumerate() {
        let whole = format!("{line}\n");
        let mut reference = session_after(n, t0);
        reference.handle_bytes(whole.as_bytes(), t0);
        let expected_events = answer(&mut reference);
        let expected_lines = transmitted(&mut reference);
        assert!(!expected_events.is_empty(), "{line}");
        for cut in 0..whole.len() {
            let mut s = session_after(n, t0);
            s.handle_bytes(&whole.as_bytes()[..cut], t0);
            assert!(s.poll_event().is_none(), "{line} cut at {cut}");
            assert!(s.poll_transmit().is_none(), "{line} cut at {cut}");
            s.handle_bytes(&whole.as_bytes()[cut..], t0);
            assert_eq!(answer(&mut s), expected_events, "{line} cut at {cut}");
            assert_eq!(transmitted(&mut s), expected_lines, "{line} cut at {cut}");
            assert!(!s.is_closed());
        }
    }
}

/// A client that has read the first `n` relay lines, WireGuard up once
/// registered, at 31 s so that a heartbeat is out.
fn client_after(n: usize, t0: Instant) -> ClientMachine {
    let config = ClientConfig::new(Token::new("jwt"), "pc", vec![22], KEY);
    let mut m = ClientMachine::new(config).unwrap();
    m.connect(t0);
    m.transport_connected(t0);
    for line in &SERVER_LINES[..n] {
        m.handle_bytes(format!("{line}\n").as_bytes(), t0);
        if line.contains("register_response") {
            m.wireguard_up(t0);
            m.handle_timeout(t0 + Duration::from_secs(30));
        }
    }
    while m.poll_transmit().is_some() {}
    while m.poll_event().is_some() {}
    m
}

#[test]
fn the_client_reads_every_line_cut_at_every_byte() {
    let t0 = Instant::now();
    let then = t0 + Duration::from_secs(31);
    for (n, line) in SERVER_LINES.iter().enumerate() {
        let whole = format!("{line}\n");
        let mut reference = client_after(n, t0);
        reference.handle_bytes(whole.as_bytes(), then);
        let expected_events: Vec<ClientEvent> =
            std::iter::from_fn(|| reference.poll_event()).collect();
        let expected_lines: Vec<_> = std::iter::from_fn(|| reference.poll_transmit()).collect();
        assert!(
            !expected_events.is_empty() || !expected_lines.is_empty(),
            "{line}"
        );
        for cut in 0..whole.len() {
            let mut m = client_after(n, t0);
            m.handle_bytes(&whole.as_bytes()[..cut], then);
            assert!(m.poll_event().is_none(), "{line} cut at {cut}");
            assert!(m.poll_transmit().is_none(), "{line} cut at {cut}");
            m.handle_bytes(&whole.as_bytes()[cut..], then);
            let events: Vec<_> = std::iter::from_fn(|| m.poll_event()).collect();
            let lines: Vec<_> = std::iter::from_fn(|| m.poll_transmit()).collect();
            assert_eq!(events, expected_events, "{line} cut at {cut}");
            assert_eq!(lines, expected_lines, "{line} cut at {cut}");
        }
    }
}

#[test]
fn no_proper_prefix_of_a_line_decodes() {
    for line in CLIENT_LINES {
        assert!(decode_client(line.as_bytes()).is_ok());
        for len in 0..line.len() {
            assert!(decode_client(&line.as_bytes()[..len]).is_err(), "{len}");
        }
    }
    for line in SERVER_LINES {
        assert!(decode_server(line.as_bytes()).is_ok());
        for len in 0..line.len() {
            assert!(decode_server(&line.as_bytes()[..len]).is_err(), "{len}");
        }
    }
}

#[test]
fn the_decoder_gives_each_line_whole_in_any_split() {
    let stream: String = CLIENT_LINES.iter().map(|l| format!("{l}\n")).collect();
    for a in 0..=stream.len() {
        let mut d = LineDecoder::new(256);
        d.push(&stream.as_bytes()[..a]);
        d.push(&stream.as_bytes()[a..]);
        let lines: Vec<_> = std::iter::from_fn(|| d.next_line()).collect();
        let expected: Vec<_> = CLIENT_LINES
            .iter()
            .map(|l| Ok(l.as_bytes().to_vec()))
            .collect();
        assert_eq!(lines, expected, "split at {a}");
    }
}
