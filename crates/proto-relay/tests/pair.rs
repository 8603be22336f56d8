//! The client machine against the relay's session in memory, on time the
//! test moves, like quinn-proto's `Pair`: lines cross at once, cut into
//! chunks of a chosen size; a small fake relay registry answers the
//! session's events.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proto_relay::message::{Forward, Stats};
use proto_relay::{
    Claims, ClientConfig, ClientEvent, ClientMachine, ErrorCode, Refusal, RegisterGrant,
    ServerConfig, ServerEvent, ServerSession, Token, TunnelConfig, TunnelState,
};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// The relay-server driver's part, reduced to a map.
#[derive(Default)]
struct Registry {
    /// Tunnel id → its config and current reconnect token.
    tunnels: HashMap<String, (TunnelConfig, Token)>,
    created: u32,
    acks: Vec<String>,
    heartbeats: Vec<Stats>,
    closes: Vec<String>,
    /// Error lines that kept the connection (a heartbeat too early…).
    refusals: Vec<String>,
}

impl Registry {
    fn register(
        &mut self,
        ports: &[u16],
        resume: Option<proto_relay::Resume>,
    ) -> Result<RegisterGrant, Refusal> {
        let token = Token::new(format!(
            "rt-{}",
            self.created * 100 + self.acks.len() as u32
        ));
        if let Some(resume) = resume {
            return match self.tunnels.get_mut(&resume.tunnel_id) {
                Some((config, saved)) if *saved == resume.reconnect_token => {
                    *saved = token.clone();
                    Ok(RegisterGrant {
                        tunnel_id: resume.tunnel_id,
                        config: config.clone(),
                        reconnect_token: token,
                    })
                }
                _ => Err(Refusal::new(
                    ErrorCode::InvalidToken,
                    "bad_reconnect_token",
                    "unknown tunnel or token",
                )),
            };
        }
        self.created += 1;
        let n = self.created;
        let config = TunnelConfig {
            endpoint: "relay.example:51820".into(),
            public_key: KEY.into(),
            allowed_ips: vec!["10.0.0.0/24".into()],
            address: format!("10.0.0.{}/32", n + 1),
            forwards: ports
                .iter()
                .enumerate()
                .map(|(i, &port)| Forward {
                    port,
                    public: format!("relay.example:{}", 40000 + n * 100 + i as u32),
                })
                .collect(),
        };
        let tunnel_id = format!("tunnel-{n}");
        self.tunnels
            .insert(tunnel_id.clone(), (config.clone(), token.clone()));
        Ok(RegisterGrant {
            tunnel_id,
            config,
            reconnect_token: token,
        })
    }
}

struct Pair {
    now: Instant,
    client: ClientMachine,
    server: Option<ServerSession>,
    registry: Registry,
    /// Bytes per delivered chunk (1 cuts every line at every byte).
    chunk: usize,
    /// Dials still to fail before one succeeds.
    failing_dials: u32,
    /// The driver calls `wireguard_up` as soon as a registration arrives.
    wireguard: bool,
    log: Vec<ClientEvent>,
}

impl Pair {
    fn new(chunk: usize) -> Pair {
        let config = ClientConfig::new(Token::new("alice"), "office-pc", vec![3389, 22], KEY);
        Pair {
            now: Instant::now(),
            client: ClientMachine::new(config).unwrap(),
            server: None,
            registry: Registry::default(),
            chunk: chunk.max(1),
            failing_dials: 0,
            wireguard: true,
            log: Vec::new(),
        }
    }

    fn connect(&mut self) {
        self.client.connect(self.now);
        self.drive();
    }

    /// Moves lines both ways until neither side has anything to say.
    fn drive(&mut self) {
        loop {
            let mut progress = false;
            let mut wireguard_up = false;
            while let Some(event) = self.client.poll_event() {
                progress = true;
                match &event {
                    ClientEvent::Dial if self.failing_dials > 0 => {
                        self.failing_dials -= 1;
                        self.client.transport_lost(self.now);
                    }
                    ClientEvent::Dial => {
                        self.server = Some(ServerSession::new(ServerConfig::default(), self.now));
                        self.client.transport_connected(self.now);
                    }
                    ClientEvent::CloseTransport => self.server = None,
                    ClientEvent::Registered(_) | ClientEvent::Resumed(_) => {
                        wireguard_up = self.wireguard
                    }
                    _ => {}
                }
                self.log.push(event);
            }
            if wireguard_up {
                self.client.wireguard_up(self.now);
            }
            while let Some(line) = self.client.poll_transmit() {
                progress = true;
                let server = self
                    .server
                    .as_mut()
                    .expect("the client writes only when connected");
                for piece in line.chunks(self.chunk) {
                    server.handle_bytes(piece, self.now);
                }
            }
            let Some(server) = self.server.as_mut() else {
                if !progress {
                    return;
                }
                continue;
            };
            while let Some(event) = server.poll_event() {
                progress = true;
                match event {
                    ServerEvent::Authenticate { token, .. } => {
                        let verdict = match token.expose() {
                            "expired" => Err(Refusal::new(
                                ErrorCode::TokenExpired,
                                "token_expired",
                                "exp has passed",
                            )),
                            sub => Ok(Claims { sub: sub.into() }),
                        };
                        server.auth_verdict(verdict).unwrap();
                    }
                    ServerEvent::Register { info, resume, .. } => {
                        let result = self.registry.register(&info.ports, resume);
                        server.register_result(result).unwrap();
                    }
                    ServerEvent::RegisterAck { tunnel_id } => self.registry.acks.push(tunnel_id),
                    ServerEvent::Heartbeat { stats, .. } => {
                        self.registry.heartbeats.push(stats);
                        server.heartbeat_ok("2026-05-01T10:00:00Z").unwrap();
                    }
                    ServerEvent::Refused { failure } => self
                        .registry
                        .refusals
                        .push(failure.wire().reason.to_owned()),
                    ServerEvent::Closed { failure } => {
                        self.registry.closes.push(failure.wire().reason.to_owned())
                    }
                }
            }
            while let Some(line) = server.poll_transmit() {
                progress = true;
                for piece in line.chunks(self.chunk) {
                    self.client.handle_bytes(piece, self.now);
                }
            }
            if server.is_closed() {
                // The driver flushed, then closes; the client reads EOF.
                self.server = None;
                self.client.transport_lost(self.now);
                progress = true;
            }
            if !progress {
                return;
            }
        }
    }

    /// Runs both machines' timers up to `now + by`.
    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        loop {
            let next = [
                self.client.poll_timeout(),
                self.server.as_ref().and_then(ServerSession::poll_timeout),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(at) if at <= end => {
                    self.now = self.now.max(at);
                    self.client.handle_timeout(self.now);
                    if let Some(server) = self.server.as_mut() {
                        server.handle_timeout(self.now);
                    }
                    self.drive();
                }
                _ => break,
            }
        }
        self.now = end;
    }

    /// The connection breaks under both sides.
    fn cut(&mut self) {
        self.server = None;
        self.client.transport_lost(self.now);
        self.drive();
    }

    fn registrations(&self) -> Vec<(bool, &proto_relay::Registration)> {
        self.log
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Registered(r) => Some((false, r)),
                ClientEvent::Resumed(r) => Some((true, r)),
                _ => None,
            })
            .collect()
    }

    fn answered(&self) -> usize {
        self.log
            .iter()
            .filter(|e| matches!(e, ClientEvent::HeartbeatAnswered { .. }))
            .count()
    }

    fn server_errors(&self) -> usize {
        self.log
            .iter()
            .filter(|e| matches!(e, ClientEvent::ServerError(_)))
            .count()
    }
}

#[test]
fn the_pair_reaches_active_and_exchanges_heartbeats() {
    let mut pair = Pair::new(4096);
    pair.connect();
    assert_eq!(pair.client.state(), TunnelState::Active);
    assert_eq!(pair.registry.acks, ["tunnel-1"]);
    let states: Vec<_> = pair
        .log
        .iter()
        .filter_map(|e| match e {
            ClientEvent::StateChanged { to, .. } => Some(*to),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        [
            TunnelState::Authenticating,
            TunnelState::Registered,
            TunnelState::Active
        ]
    );
    // The heartbeat right behind register_ack, whose answer made it Active.
    assert_eq!(pair.registry.heartbeats.len(), 1);
    pair.client.set_stats(10, 20, "2026-05-01T10:00:00Z");
    pair.advance(Duration::from_secs(30));
    assert_eq!(pair.registry.heartbeats.len(), 2);
    assert_eq!(pair.registry.heartbeats[1].bytes_out, 20);
    assert_eq!(pair.answered(), 2);
    // Ten minutes: a heartbeat every 30 s, never rate-limited, never idle.
    pair.advance(Duration::from_secs(600));
    assert_eq!(pair.registry.heartbeats.len(), 22);
    assert_eq!(pair.answered(), 22);
    assert_eq!(pair.server_errors(), 0);
    assert!(pair.registry.closes.is_empty());
    assert!(
        pair.registry.refusals.is_empty(),
        "{:?}",
        pair.registry.refusals
    );
}

#[test]
fn a_drop_resumes_the_same_tunnel() {
    let mut pair = Pair::new(7);
    pair.connect();
    pair.advance(Duration::from_secs(45));
    pair.cut();
    assert_eq!(pair.client.state(), TunnelState::Reconnecting);
    pair.advance(Duration::from_secs(1));
    assert_eq!(pair.client.state(), TunnelState::Active);
    let regs = pair.registrations();
    assert_eq!(regs.len(), 2);
    assert!(regs[1].0, "resumed");
    assert_eq!(regs[0].1.tunnel_id, regs[1].1.tunnel_id);
    assert_eq!(
        regs[0].1.config, regs[1].1.config,
        "address and forwards kept"
    );
    assert_eq!(pair.registry.created, 1);
    assert_eq!(pair.registry.acks, ["tunnel-1", "tunnel-1"]);
}

#[test]
fn an_expired_token_stops_both_sides() {
    let config = ClientConfig::new(Token::new("expired"), "pc", vec![22], KEY);
    let mut pair = Pair::new(4096);
    pair.client = ClientMachine::new(config).unwrap();
    pair.connect();
    assert_eq!(pair.client.state(), TunnelState::Disconnected);
    assert_eq!(pair.registry.closes, ["token_expired"]);
    assert!(pair.log.iter().any(|e| matches!(
        e,
        ClientEvent::ServerError(s) if s.sentence == "Your sign-in has expired: sign in to the relay again."
    )));
    assert_eq!(pair.client.poll_timeout(), None);
}

#[test]
fn without_wireguard_the_relay_closes_and_the_client_resumes() {
    let mut pair = Pair::new(4096);
    pair.wireguard = false;
    pair.connect();
    assert_eq!(pair.client.state(), TunnelState::Registered);
    // No heartbeat ever: the relay's idle deadline (3 × 30 s + 10 s).
    pair.advance(Duration::from_secs(100));
    assert_eq!(pair.registry.closes, ["idle_timeout"]);
    assert_eq!(pair.client.state(), TunnelState::Reconnecting);
    pair.advance(Duration::from_secs(1));
    let regs = pair.registrations();
    assert!(regs.len() == 2 && regs[1].0, "resumed after the idle close");
    pair.client.wireguard_up(pair.now);
    pair.drive();
    assert_eq!(pair.client.state(), TunnelState::Active);
}

#[test]
fn a_forgotten_tunnel_is_registered_anew() {
    let mut pair = Pair::new(4096);
    pair.connect();
    pair.registry.tunnels.clear();
    pair.cut();
    pair.advance(Duration::from_secs(1));
    assert_eq!(pair.client.state(), TunnelState::Active);
    let regs = pair.registrations();
    assert_eq!(regs.len(), 2);
    assert!(!regs[1].0);
    assert_eq!(regs[1].1.tunnel_id, "tunnel-2");
    assert!(pair.log.iter().any(|e| matches!(
        e,
        ClientEvent::ResumeRefused { tunnel_id } if tunnel_id == "tunnel-1"
    )));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any chunking, any number of intervals: Active, every heartbeat
    /// answered, nothing refused.
    #[test]
    fn heartbeats_flow_in_any_chunking(chunk in 1usize..80, intervals in 1u32..12, extra in 0u64..29) {
        let mut pair = Pair::new(chunk);
        pair.connect();
        prop_assert_eq!(pair.client.state(), TunnelState::Active);
        pair.advance(Duration::from_secs(30 * u64::from(intervals) + extra));
        // One right behind register_ack, then one per interval.
        prop_assert_eq!(pair.registry.heartbeats.len(), intervals as usize + 1);
        prop_assert_eq!(pair.answered(), intervals as usize + 1);
        prop_assert_eq!(pair.server_errors(), 0);
        prop_assert!(pair.registry.closes.is_empty());
    }

    /// A drop at any time, then failed dials (fewer than the policy
    /// allows): the same tunnel id, address and forwards, Active again.
    #[test]
    fn a_resume_keeps_the_tunnel(
        chunk in 1usize..64,
        before in 0u64..200,
        failing in 0u32..9,
    ) {
        let mut pair = Pair::new(chunk);
        pair.connect();
        pair.advance(Duration::from_secs(before));
        let first = pair.registrations()[0].1.clone();
        pair.failing_dials = failing;
        pair.cut();
        // Enough for every backoff: 1 + 2 + 4 + 8 + 16 + 30 × 4 s.
        pair.advance(Duration::from_secs(300));
        prop_assert_eq!(pair.client.state(), TunnelState::Active);
        let regs = pair.registrations();
        let (resumed, last) = regs[regs.len() - 1];
        prop_assert!(resumed);
        prop_assert_eq!(&last.tunnel_id, &first.tunnel_id);
        prop_assert_eq!(&last.config.address, &first.config.address);
        prop_assert_eq!(&last.config.forwards, &first.config.forwards);
        prop_assert_eq!(pair.registry.created, 1);
        prop_assert_eq!(pair.client.retries(), 0);
    }
}
