//! The client's side of the control channel as a sans-IO machine.
//!
//! ```text
//!   driver (relay-client)                     ClientMachine
//!   ─────────────────────                     ─────────────
//!   user: connect / disconnect    ─────────▶  connect(now) / disconnect()
//!   connection up / failed, EOF   ─────────▶  transport_connected(now) / transport_lost(now)
//!   bytes read                    ─────────▶  handle_bytes(bytes, now)   (or handle_line)
//!   WireGuard handshake done      ─────────▶  wireguard_up(now)
//!   traffic counters              ─────────▶  set_stats(in, out, since)
//!   timer fired                   ─────────▶  handle_timeout(now)
//!                                 ◀─────────  poll_transmit()  lines to write
//!                                 ◀─────────  poll_event()     Dial, CloseTransport, Registered…
//!                                 ◀─────────  poll_timeout()   when to call handle_timeout
//! ```
//!
//! On one connection the order is: the relay's `hello` (a major version
//! other than 1 stops the machine), `auth`, `auth_response`, `register`,
//! `register_response`. The first registration moves Authenticating →
//! Registered; the driver configures WireGuard and calls `wireguard_up`,
//! which sends `register_ack` and moves to Active, where a heartbeat goes
//! out every interval.
//!
//! A drop (the driver's `transport_lost`, a malformed line, an answer not in
//! time, `max_misses` unanswered heartbeats, SERVER_ERROR or an unknown
//! code) schedules the next dial by the [`ReconnectPolicy`]; after a
//! registration the state is Reconnecting. Each new connection goes through
//! `hello` and `auth` again and then registers with the saved `tunnel_id`
//! and `reconnect_token`. **After a resume the state stays Reconnecting**
//! ([`ClientEvent::Resumed`]): the driver redoes the WireGuard handshake and
//! calls `wireguard_up` again, which sends `register_ack` and returns to
//! Active. Reaching Active resets the attempt count.
//!
//! A failed first connect retries the same way but stays Authenticating
//! (seed §3.1 has no Authenticating → Reconnecting edge); giving up always
//! leads to Disconnected.
//!
//! `error` lines, by code:
//!
//! | code                                     | the machine                                        |
//! |------------------------------------------|----------------------------------------------------|
//! | AUTH_FAILED, INVALID_TOKEN, TOKEN_EXPIRED | Disconnected: only a new sign-in helps             |
//! | TUNNEL_EXISTS, INVALID_CONFIG            | Disconnected                                       |
//! | RATE_LIMIT while Active                  | the heartbeat counts as answered; the next one waits `retry_after` |
//! | RATE_LIMIT otherwise                     | next dial after max(backoff, `retry_after`), one attempt |
//! | SERVER_ERROR, unknown codes              | next dial after the backoff                        |
//! | any but RATE_LIMIT/SERVER_ERROR/unknown, in answer to a resuming `register` | [`ClientEvent::ResumeRefused`], then a fresh `register` on the same connection |
//!
//! Lines with an unknown `type` are skipped: a newer relay may add
//! notices, and dropping the tunnel over one would turn every relay upgrade
//! into an outage. Lines arriving while no connection is up are ignored.

mod config;
mod event;
pub(crate) mod fuzzing;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub use config::{ClientConfig, ReconnectPolicy, SavedTunnel};
pub use event::{ClientError, ClientEvent, Registration, ServerError, TunnelState};

use crate::code::ErrorCode;
use crate::codec::{DecodeError, LineDecoder, cut, decode_server, encode_line, is_blank};
use crate::message::{
    Auth, ClientMessage, ErrorMessage, Heartbeat, PROTOCOL_VERSION, Register, RegisterAck,
    RegisterResponse, STATUS_SUCCESS, ServerMessage, Stats, version_supported,
};
use crate::validate::{InvalidTunnel, validate_tunnel_info};

/// Where the current (or next) connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No connection and none planned.
    Idle,
    /// Waiting to dial.
    Backoff { until: Instant },
    /// The driver is opening the connection.
    Dialing { deadline: Instant },
    /// Connected; waiting for `hello`.
    Hello { deadline: Instant },
    /// `auth` sent.
    Auth { deadline: Instant },
    /// `register` sent (`resume`: with the saved tunnel).
    Register { deadline: Instant, resume: bool },
    /// Registered on this connection; waiting for `wireguard_up`.
    Registered,
    /// Heartbeats running.
    Active {
        next_at: Instant,
        /// When the unanswered heartbeat went out.
        outstanding: Option<Instant>,
        misses: u32,
    },
}

impl Phase {
    fn connected(self) -> bool {
        !matches!(
            self,
            Phase::Idle | Phase::Backoff { .. } | Phase::Dialing { .. }
        )
    }

    fn waiting_for(self) -> &'static str {
        match self {
            Phase::Idle | Phase::Backoff { .. } => "nothing",
            Phase::Dialing { .. } => "the connection",
            Phase::Hello { .. } => "hello",
            Phase::Auth { .. } => "auth_response",
            Phase::Register { .. } => "register_response",
            Phase::Registered => "wireguard_up",
            Phase::Active { .. } => "heartbeat_response",
        }
    }
}

/// The client machine. See the module doc for the protocol it follows.
#[derive(Debug)]
pub struct ClientMachine {
    config: ClientConfig,
    state: TunnelState,
    phase: Phase,
    /// The tunnel registered on the current connection.
    tunnel_id: Option<String>,
    /// What a new connection resumes.
    saved: Option<SavedTunnel>,
    /// Retries since the last time the tunnel was Active (or since connect).
    retries: u32,
    stats: Stats,
    decoder: LineDecoder,
    /// At most a few lines per input: the machine sends one message per
    /// answer it gets, and one heartbeat per interval.
    out: VecDeque<Vec<u8>>,
    /// A few events per input; the driver drains them after each one.
    events: VecDeque<ClientEvent>,
}

impl ClientMachine {
    /// A Disconnected machine. The tunnel settings are checked as the
    /// relay would check them.
    pub fn new(mut config: ClientConfig) -> Result<ClientMachine, InvalidTunnel> {
        validate_tunnel_info(&config.tunnel_info(), &config.limits)?;
        Ok(ClientMachine {
            saved: config.resume.take(),
            decoder: LineDecoder::new(config.max_line),
            config,
            state: TunnelState::Disconnected,
            phase: Phase::Idle,
            tunnel_id: None,
            retries: 0,
            stats: Stats::default(),
            out: VecDeque::new(),
            events: VecDeque::new(),
        })
    }

    /// The tunnel state.
    pub fn state(&self) -> TunnelState {
        self.state
    }

    /// The tunnel registered on the current connection.
    pub fn tunnel_id(&self) -> Option<&str> {
        self.tunnel_id.as_deref()
    }

    /// What the next connection resumes; a driver may store it.
    pub fn saved(&self) -> Option<&SavedTunnel> {
        self.saved.as_ref()
    }

    /// Retries made since the tunnel was last Active.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// The settings.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Disconnected → Authenticating, and [`ClientEvent::Dial`]. Does
    /// nothing in any other state.
    pub fn connect(&mut self, now: Instant) {
        if self.state != TunnelState::Disconnected {
            return;
        }
        self.retries = 0;
        self.set_state(TunnelState::Authenticating);
        self.dial(now);
    }

    /// The connection the machine asked for is open: wait for `hello`.
    pub fn transport_connected(&mut self, now: Instant) {
        if let Phase::Dialing { .. } = self.phase {
            self.phase = Phase::Hello {
                deadline: now + self.config.answer_timeout,
            };
        }
    }

    /// The connection (or the dial) failed or closed: schedule the next
    /// dial, or give up. Ignored when there is no connection.
    pub fn transport_lost(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Idle | Phase::Backoff { .. }) {
            return;
        }
        self.reset_connection();
        self.retry(now, Duration::ZERO);
    }

    /// Bytes read from the connection, in any split.
    pub fn handle_bytes(&mut self, bytes: &[u8], now: Instant) {
        if !self.phase.connected() {
            return;
        }
        self.decoder.push(bytes);
        // A failure resets the decoder, so lines of a dead connection stop here.
        while let Some(line) = self.decoder.next_line() {
            match line {
                Ok(line) => self.handle_line(&line, now),
                Err(e) => self.fail(now, ClientError::LineTooLong { max: e.max }),
            }
        }
    }

    /// One line read from the connection, without its `\n`, for drivers
    /// that split lines themselves.
    pub fn handle_line(&mut self, line: &[u8], now: Instant) {
        if !self.phase.connected() || is_blank(line) {
            return;
        }
        if line.len() > self.config.max_line {
            let max = self.config.max_line;
            return self.fail(now, ClientError::LineTooLong { max });
        }
        match decode_server(line) {
            Ok(message) => self.handle_message(message, now),
            Err(DecodeError::UnknownType(_)) => {}
            Err(e) => self.fail(now, ClientError::Malformed(e)),
        }
    }

    /// The WireGuard handshake with the relay completed: `register_ack`,
    /// Active. Ignored unless a registration waits for it (it may race a drop).
    pub fn wireguard_up(&mut self, now: Instant) {
        if self.phase != Phase::Registered {
            return;
        }
        let tunnel_id = self.tunnel_id.clone().unwrap_or_default();
        self.send(ClientMessage::RegisterAck(RegisterAck {
            tunnel_id: tunnel_id.clone(),
        }));
        // `register_ack` has no answer, and the relay opens the public
        // forwards when it reads it. A heartbeat right behind it is answered
        // only after the ack was handled (one connection, lines in order):
        // its answer is what makes the tunnel Active, so "Active" means
        // people can connect now.
        self.send(ClientMessage::Heartbeat(Heartbeat {
            tunnel_id,
            stats: self.stats.clone(),
        }));
        self.phase = Phase::Active {
            next_at: now + self.config.heartbeat_interval,
            outstanding: Some(now),
            misses: 0,
        };
        self.retries = 0;
    }

    /// The counters the next heartbeat carries.
    pub fn set_stats(&mut self, bytes_in: u64, bytes_out: u64, connected_since: impl Into<String>) {
        self.stats = Stats {
            bytes_in,
            bytes_out,
            connected_since: connected_since.into(),
        };
    }

    /// The user stops the tunnel: Disconnected, the connection closed. The
    /// saved tunnel is kept, so the next connect resumes it (the relay
    /// may still hold it as live, and a fresh `register` of the same name
    /// would meet TUNNEL_EXISTS).
    pub fn disconnect(&mut self) {
        if self.phase != Phase::Idle {
            self.abandon();
            self.phase = Phase::Idle;
        }
        self.set_state(TunnelState::Disconnected);
    }

    /// Runs the timers: the next dial, answer deadlines, heartbeats.
    pub fn handle_timeout(&mut self, now: Instant) {
        let answer = self.config.answer_timeout;
        match self.phase {
            Phase::Backoff { until } if now >= until => self.dial(now),
            Phase::Dialing { deadline } if now >= deadline => {
                let after = self.config.dial_timeout;
                let waiting_for = self.phase.waiting_for();
                self.fail(now, ClientError::Timeout { waiting_for, after });
            }
            Phase::Hello { deadline }
            | Phase::Auth { deadline }
            | Phase::Register { deadline, .. }
                if now >= deadline =>
            {
                let waiting_for = self.phase.waiting_for();
                self.fail(
                    now,
                    ClientError::Timeout {
                        waiting_for,
                        after: answer,
                    },
                );
            }
            Phase::Active {
                next_at,
                outstanding,
                misses,
            } => {
                let mut misses = misses;
                let mut outstanding = outstanding;
                // An answer not in time, or none before the next heartbeat, is a miss.
                if outstanding.is_some_and(|sent| now >= sent + answer || now >= next_at) {
                    outstanding = None;
                    misses += 1;
                    if misses >= self.config.max_misses {
                        return self.fail(now, ClientError::HeartbeatMisses(misses));
                    }
                }
                let mut next = next_at;
                if now >= next_at {
                    self.send(ClientMessage::Heartbeat(Heartbeat {
                        tunnel_id: self.tunnel_id.clone().unwrap_or_default(),
                        stats: self.stats.clone(),
                    }));
                    outstanding = Some(now);
                    // From now, not from `next_at`: a late timer must not
                    // cause a burst the relay would rate-limit.
                    next = now + self.config.heartbeat_interval;
                }
                self.phase = Phase::Active {
                    next_at: next,
                    outstanding,
                    misses,
                };
            }
            _ => {}
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Idle | Phase::Registered => None,
            Phase::Backoff { until } => Some(until),
            Phase::Dialing { deadline }
            | Phase::Hello { deadline }
            | Phase::Auth { deadline }
            | Phase::Register { deadline, .. } => Some(deadline),
            Phase::Active {
                next_at,
                outstanding,
                ..
            } => Some(match outstanding {
                Some(sent) => next_at.min(sent + self.config.answer_timeout),
                None => next_at,
            }),
        }
    }

    /// The next line to write, `\n` included.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    fn handle_message(&mut self, message: ServerMessage, now: Instant) {
        let answer = self.config.answer_timeout;
        match (self.phase, message) {
            (_, ServerMessage::Error(e)) => self.handle_error(e, now),
            (Phase::Hello { .. }, ServerMessage::Hello(hello)) => {
                if !version_supported(&hello.version) {
                    return self.stop_with(ClientError::UnsupportedVersion(cut(hello.version, 64)));
                }
                self.send(ClientMessage::Auth(Auth {
                    token: self.config.token.clone(),
                    version: PROTOCOL_VERSION.to_owned(),
                    client_info: self.config.client_info.clone(),
                }));
                self.phase = Phase::Auth {
                    deadline: now + answer,
                };
            }
            (Phase::Auth { .. }, ServerMessage::AuthResponse(r)) => {
                if r.status != STATUS_SUCCESS {
                    let status = cut(r.status, 64);
                    return self.stop_with(ClientError::Refused {
                        step: "auth",
                        status,
                    });
                }
                self.send_register(now);
            }
            (Phase::Register { resume, .. }, ServerMessage::RegisterResponse(r)) => {
                if r.status != STATUS_SUCCESS {
                    let status = cut(r.status, 64);
                    return self.stop_with(ClientError::Refused {
                        step: "register",
                        status,
                    });
                }
                self.registered(r, resume);
            }
            (
                Phase::Active {
                    next_at,
                    outstanding,
                    ..
                },
                ServerMessage::HeartbeatResponse(r),
            ) => {
                // A late answer (its heartbeat already counted as a miss)
                // proves nothing about the current one: ignored.
                if let Some(sent) = outstanding {
                    self.phase = Phase::Active {
                        next_at,
                        outstanding: None,
                        misses: 0,
                    };
                    self.set_state(TunnelState::Active);
                    self.events.push_back(ClientEvent::HeartbeatAnswered {
                        rtt: now.saturating_duration_since(sent),
                        server_time: r.server_time,
                    });
                }
            }
            (phase, message) => {
                let waiting_for = phase.waiting_for();
                let kind = message.kind();
                self.fail(now, ClientError::Unexpected { kind, waiting_for });
            }
        }
    }

    fn handle_error(&mut self, e: ErrorMessage, now: Instant) {
        let error = ServerError::from(e);
        let code = error.code;
        let wait = error.retry_after.unwrap_or(Duration::ZERO);
        self.events.push_back(ClientEvent::ServerError(error));
        let resuming = matches!(self.phase, Phase::Register { resume: true, .. });
        match code {
            ErrorCode::RateLimit => {
                if let Phase::Active { next_at, .. } = self.phase {
                    // The relay heard the heartbeat: alive, just early.
                    self.phase = Phase::Active {
                        next_at: next_at.max(now + wait),
                        outstanding: None,
                        misses: 0,
                    };
                } else {
                    self.abandon();
                    self.retry(now, wait);
                }
            }
            ErrorCode::ServerError | ErrorCode::Other(_) => {
                self.abandon();
                self.retry(now, Duration::ZERO);
            }
            _ if resuming => {
                let tunnel_id = self.saved.take().map(|s| s.tunnel_id).unwrap_or_default();
                self.events
                    .push_back(ClientEvent::ResumeRefused { tunnel_id });
                self.send_register(now);
            }
            ErrorCode::AuthFailed
            | ErrorCode::InvalidToken
            | ErrorCode::TokenExpired
            | ErrorCode::TunnelExists
            | ErrorCode::InvalidConfig => self.stop(),
        }
    }

    fn send_register(&mut self, now: Instant) {
        let saved = self.saved.as_ref();
        let register = Register {
            tunnel_info: self.config.tunnel_info(),
            tunnel_id: saved.map(|s| s.tunnel_id.clone()),
            reconnect_token: saved.map(|s| s.reconnect_token.clone()),
        };
        self.phase = Phase::Register {
            deadline: now + self.config.answer_timeout,
            resume: register.tunnel_id.is_some(),
        };
        self.send(ClientMessage::Register(register));
    }

    fn registered(&mut self, r: RegisterResponse, resume: bool) {
        let old = self.saved.take();
        let resumed = resume && old.as_ref().is_some_and(|s| s.tunnel_id == r.tunnel_id);
        // A resume answered without a new token keeps the old one.
        let token = r
            .reconnect_token
            .clone()
            .or_else(|| old.filter(|_| resumed).map(|s| s.reconnect_token));
        self.saved = token.clone().map(|reconnect_token| SavedTunnel {
            tunnel_id: r.tunnel_id.clone(),
            last_config: r.config.clone(),
            reconnect_token,
        });
        self.tunnel_id = Some(r.tunnel_id.clone());
        let registration = Registration {
            tunnel_id: r.tunnel_id,
            config: r.config,
            reconnect_token: token,
        };
        self.events.push_back(if resumed {
            ClientEvent::Resumed(registration)
        } else {
            ClientEvent::Registered(registration)
        });
        self.phase = Phase::Registered;
        if self.state == TunnelState::Authenticating {
            self.set_state(TunnelState::Registered);
        }
    }

    fn dial(&mut self, now: Instant) {
        self.reset_connection();
        self.phase = Phase::Dialing {
            deadline: now + self.config.dial_timeout,
        };
        self.events.push_back(ClientEvent::Dial);
    }

    /// The machine leaves the connection for `error` and retries.
    fn fail(&mut self, now: Instant, error: ClientError) {
        self.events.push_back(ClientEvent::ConnectionFailed(error));
        self.abandon();
        self.retry(now, Duration::ZERO);
    }

    /// The machine leaves the connection for `error` and stops.
    fn stop_with(&mut self, error: ClientError) {
        self.events.push_back(ClientEvent::ConnectionFailed(error));
        self.stop();
    }

    fn stop(&mut self) {
        self.abandon();
        self.phase = Phase::Idle;
        self.set_state(TunnelState::Disconnected);
    }

    /// Tells the driver to close the connection (or stop the dial).
    fn abandon(&mut self) {
        if !matches!(self.phase, Phase::Idle | Phase::Backoff { .. }) {
            self.events.push_back(ClientEvent::CloseTransport);
        }
        self.reset_connection();
    }

    /// Forgets everything tied to the connection that is gone.
    fn reset_connection(&mut self) {
        self.out.clear();
        self.decoder = LineDecoder::new(self.config.max_line);
        self.tunnel_id = None;
    }

    /// The next dial after the policy's delay (at least `at_least`), or
    /// Disconnected once the attempts are spent.
    fn retry(&mut self, now: Instant, at_least: Duration) {
        let policy = self.config.reconnect;
        if self.retries >= policy.max_attempts {
            self.phase = Phase::Idle;
            self.set_state(TunnelState::Disconnected);
            let attempts = self.retries;
            self.events.push_back(ClientEvent::GaveUp { attempts });
            return;
        }
        if matches!(self.state, TunnelState::Registered | TunnelState::Active) {
            self.set_state(TunnelState::Reconnecting);
        }
        self.retries += 1;
        let delay = policy.delay(self.retries).max(at_least);
        self.phase = Phase::Backoff { until: now + delay };
        let attempt = self.retries;
        self.events
            .push_back(ClientEvent::Retrying { attempt, delay });
    }

    fn set_state(&mut self, to: TunnelState) {
        let from = self.state;
        if from != to {
            self.state = to;
            self.events
                .push_back(ClientEvent::StateChanged { from, to });
        }
    }

    fn send(&mut self, message: ClientMessage) {
        self.out.push_back(encode_line(&message));
    }
}

#[cfg(test)]
mod tests;
