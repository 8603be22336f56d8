//! The relay's side of one control connection as a sans-IO machine.
//!
//! ```text
//!   driver (relay-server)                    ServerSession
//!   ─────────────────────                    ─────────────
//!   accepted (TLS up)           ─────────▶  new(config, now)        queues hello
//!   bytes read                  ─────────▶  handle_bytes(bytes, now)  (or handle_line)
//!   timer fired                 ─────────▶  handle_timeout(now)
//!                               ◀─────────  poll_event()   Authenticate, Register, RegisterAck, Heartbeat, Closed
//!   JWT checked                 ─────────▶  auth_verdict(Ok(Claims) | Err(Refusal))
//!   tunnel allocated/resumed    ─────────▶  register_result(Ok(RegisterGrant) | Err(Refusal))
//!   heartbeat recorded          ─────────▶  heartbeat_ok(server_time)
//!                               ◀─────────  poll_transmit()  lines to write
//!                               ◀─────────  poll_timeout(), is_closed(): flush, then close
//! ```
//!
//! The session keeps the order rules and the limits that need no outside
//! knowledge: the auth deadline, the tunnel rules of [`crate::validate`],
//! the minimum heartbeat interval and the idle deadline. Verifying the JWT,
//! rate-limiting sign-ins and tunnel creations, allocating or resuming a
//! tunnel (checking the `reconnect_token`, in constant time) are the
//! driver's, which answers each event with its verdict.
//!
//! What the session answers by itself (the contract leaves these open):
//!
//! | situation                                                   | code           | `details.reason`     | closes |
//! |-------------------------------------------------------------|----------------|----------------------|--------|
//! | not JSON, no `type`, fields that do not fit                  | INVALID_CONFIG | `malformed_json`     | yes |
//! | unknown `type`                                               | INVALID_CONFIG | `unknown_type`       | yes |
//! | line over the cap (1 MiB)                                    | INVALID_CONFIG | `line_too_long`      | yes |
//! | anything but `auth` before the sign-in succeeded             | AUTH_FAILED    | `auth_required`      | yes |
//! | no successful sign-in 10 s after the connection opened       | AUTH_FAILED    | `auth_timeout`       | yes |
//! | `auth.version` of another major version                      | INVALID_CONFIG | `unsupported_version`| yes |
//! | a second `auth` (pending or accepted)                        | INVALID_CONFIG | `duplicate_auth`     | yes |
//! | the driver refuses the sign-in                               | the driver's   | the driver's         | yes |
//! | `tunnel_info` breaks a rule                                  | INVALID_CONFIG | see [`crate::validate`] | no |
//! | `tunnel_id` without `reconnect_token` or the reverse         | INVALID_CONFIG | `incomplete_resume`  | no |
//! | a second `register` (one tunnel per connection)              | TUNNEL_EXISTS  | `already_registered` | no |
//! | the driver refuses the registration                          | the driver's   | the driver's         | no |
//! | `register_ack`/`heartbeat` for a tunnel not registered here  | INVALID_CONFIG | `unknown_tunnel`     | no |
//! | a heartbeat sooner than 30 s − 2 s after the last one        | RATE_LIMIT + `retry_after` | `heartbeat_too_early` | no |
//! | more than 8 of the "no" rows on one connection               | RATE_LIMIT     | `too_many_errors`    | yes |
//! | no heartbeat for 3 × 30 s + 10 s (counted from `auth`)       | SERVER_ERROR   | `idle_timeout`       | yes |
//! | [`ServerSession::shutdown`]                                  | SERVER_ERROR   | `shutting_down`      | yes |
//!
//! SERVER_ERROR makes a client reconnect with backoff, which is what a
//! live client cut off by the idle timeout or a restart should do. The 2 s
//! of slack on the heartbeat interval absorb network jitter: a client that
//! sends every 30 s must never meet RATE_LIMIT. A duplicate `register_ack`
//! is ignored. Resume refusals are the driver's: INVALID_TOKEN with reason
//! `bad_reconnect_token` for an unknown tunnel or wrong token, TOKEN_EXPIRED
//! with `reconnect_token_expired` for an expired one; the client then
//! registers a fresh tunnel on the same connection.
//!
//! [`Failure::wire`] is the one place mapping each failure to its line.

mod failure;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub use failure::{Failure, Refusal, WireError};

use crate::codec::{DEFAULT_MAX_LINE, LineDecoder, cut, decode_client, encode_line, is_blank};
use crate::message::{
    Auth, AuthResponse, ClientInfo, ClientMessage, ErrorDetails, ErrorMessage, Heartbeat,
    HeartbeatResponse, Hello, PROTOCOL_VERSION, Register, RegisterResponse, STATUS_OK,
    STATUS_SUCCESS, ServerInfo, ServerMessage, Stats, Token, TunnelConfig, TunnelInfo,
    version_supported,
};
use crate::validate::{TunnelLimits, validate_tunnel_info};

/// One session's settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Listed in `hello` and `auth_response`.
    pub features: Vec<String>,
    /// The relay's software version, in `auth_response.server_info`.
    pub server_version: String,
    /// The longest line accepted.
    pub max_line: usize,
    /// From the connection's start to a successful sign-in.
    pub auth_timeout: Duration,
    /// The minimum time between heartbeats (seed §5.2: 30 s).
    pub heartbeat_interval: Duration,
    /// How much sooner than the interval a heartbeat may still arrive.
    pub heartbeat_slack: Duration,
    /// Added to 3 × `heartbeat_interval` for the idle deadline.
    pub idle_grace: Duration,
    /// Limits on a tunnel.
    pub limits: TunnelLimits,
    /// Errors that keep the connection open, tolerated per connection.
    pub max_soft_errors: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            features: vec!["tunnel".to_owned(), "monitoring".to_owned()],
            server_version: env!("CARGO_PKG_VERSION").to_owned(),
            max_line: DEFAULT_MAX_LINE,
            auth_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(30),
            heartbeat_slack: Duration::from_secs(2),
            idle_grace: Duration::from_secs(10),
            limits: TunnelLimits::default(),
            max_soft_errors: 8,
        }
    }
}

impl ServerConfig {
    /// How long a signed-in connection may go without a heartbeat.
    pub fn idle_timeout(&self) -> Duration {
        self.heartbeat_interval.saturating_mul(3) + self.idle_grace
    }
}

/// What the driver's verifier found in the JWT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The owner of the tunnels.
    pub sub: String,
}

/// A `register` that asks to resume a tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    /// The tunnel.
    pub tunnel_id: String,
    /// Its secret; compare it in constant time.
    pub reconnect_token: Token,
}

/// The driver's "yes" to a `register`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterGrant {
    /// The tunnel's id (the resumed one's when resuming).
    pub tunnel_id: String,
    /// The WireGuard settings, address and forwards.
    pub config: TunnelConfig,
    /// The secret for the next resume.
    pub reconnect_token: Token,
}

/// What the driver must decide or record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// Verify this JWT, then call [`ServerSession::auth_verdict`].
    Authenticate {
        /// The JWT.
        token: Token,
        /// What the client says it runs.
        client_info: ClientInfo,
    },
    /// Create or resume this tunnel (already checked against the rules),
    /// then call [`ServerSession::register_result`].
    Register {
        /// What the client asks for.
        info: TunnelInfo,
        /// Its WireGuard key, decoded.
        public_key: [u8; 32],
        /// The tunnel to resume, if any.
        resume: Option<Resume>,
    },
    /// The client's WireGuard is up: open the public forwards.
    RegisterAck {
        /// The tunnel this connection registered.
        tunnel_id: String,
    },
    /// Record the counters, then call [`ServerSession::heartbeat_ok`].
    Heartbeat {
        /// The tunnel this connection registered.
        tunnel_id: String,
        /// The client's counters.
        stats: Stats,
    },
    /// An `error` line was sent and the connection stays open (bad
    /// `tunnel_info`, a heartbeat too early, a refused registration…): for
    /// the driver's logs and metrics; nothing to answer.
    Refused {
        /// Why.
        failure: Failure,
    },
    /// The session is over: write what is queued, then close.
    Closed {
        /// Why.
        failure: Failure,
    },
}

/// The driver called a verdict nobody asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// A bug in the driver, not in the peer.
    #[error("server session API misuse: {0}")]
    ApiMisuse(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    /// No `auth` yet.
    AwaitAuth,
    /// `Authenticate` is out; the verdict is pending.
    AuthPending,
    /// Signed in.
    Ready { sub: String, tunnel: TunnelStage },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TunnelStage {
    None,
    Pending,
    Granted { tunnel_id: String, acked: bool },
}

/// One control connection on the relay.
#[derive(Debug)]
pub struct ServerSession {
    config: ServerConfig,
    stage: Stage,
    auth_deadline: Instant,
    /// The idle deadline counts from here: the `auth` line, then each
    /// accepted heartbeat.
    idle_from: Instant,
    last_heartbeat: Option<Instant>,
    /// Heartbeats reported and not yet answered by the driver.
    unanswered: u32,
    soft_errors: u32,
    closed: bool,
    decoder: LineDecoder,
    /// Bounded: one line per accepted message, one per error, and errors
    /// are capped by `max_soft_errors` before the session closes.
    out: VecDeque<Vec<u8>>,
    events: VecDeque<ServerEvent>,
}

impl ServerSession {
    /// A session for a connection opened at `now`; `hello` is queued.
    pub fn new(config: ServerConfig, now: Instant) -> ServerSession {
        let mut session = ServerSession {
            stage: Stage::AwaitAuth,
            auth_deadline: now + config.auth_timeout,
            idle_from: now,
            last_heartbeat: None,
            unanswered: 0,
            soft_errors: 0,
            closed: false,
            decoder: LineDecoder::new(config.max_line),
            out: VecDeque::new(),
            events: VecDeque::new(),
            config,
        };
        session.send(ServerMessage::Hello(Hello {
            version: PROTOCOL_VERSION.to_owned(),
            features: session.config.features.clone(),
        }));
        session
    }

    /// Whether the session is over; the driver writes what is queued and
    /// closes. Later inputs are ignored.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The signed-in owner.
    pub fn subject(&self) -> Option<&str> {
        match &self.stage {
            Stage::Ready { sub, .. } => Some(sub),
            _ => None,
        }
    }

    /// The tunnel this connection registered.
    pub fn tunnel_id(&self) -> Option<&str> {
        match &self.stage {
            Stage::Ready {
                tunnel: TunnelStage::Granted { tunnel_id, .. },
                ..
            } => Some(tunnel_id),
            _ => None,
        }
    }

    /// Bytes read from the connection, in any split.
    pub fn handle_bytes(&mut self, bytes: &[u8], now: Instant) {
        if self.closed {
            return;
        }
        self.decoder.push(bytes);
        while let Some(line) = self.decoder.next_line() {
            if self.closed {
                break;
            }
            match line {
                Ok(line) => self.handle_line(&line, now),
                Err(e) => self.fail(Failure::LineTooLong { max: e.max }),
            }
        }
        if self.closed {
            self.decoder = LineDecoder::new(0);
        }
    }

    /// One line without its `\n`, for drivers that split lines themselves.
    pub fn handle_line(&mut self, line: &[u8], now: Instant) {
        if self.closed || is_blank(line) {
            return;
        }
        if line.len() > self.config.max_line {
            let max = self.config.max_line;
            return self.fail(Failure::LineTooLong { max });
        }
        match decode_client(line) {
            Ok(message) => self.handle_message(message, now),
            Err(e) => self.fail(Failure::Decode(e)),
        }
    }

    /// The driver's verdict on the `auth`: `auth_response`, or the refusal
    /// and the close.
    pub fn auth_verdict(&mut self, verdict: Result<Claims, Refusal>) -> Result<(), SessionError> {
        if self.closed {
            return Ok(());
        }
        if self.stage != Stage::AuthPending {
            return Err(SessionError::ApiMisuse("no auth awaits a verdict"));
        }
        match verdict {
            Ok(claims) => {
                self.stage = Stage::Ready {
                    sub: claims.sub,
                    tunnel: TunnelStage::None,
                };
                self.send(ServerMessage::AuthResponse(AuthResponse {
                    status: STATUS_SUCCESS.to_owned(),
                    server_info: ServerInfo {
                        version: self.config.server_version.clone(),
                        features: self.config.features.clone(),
                    },
                }));
            }
            Err(refusal) => self.fail(Failure::AuthRefused(refusal)),
        }
        Ok(())
    }

    /// The driver's answer to a `register`: `register_response`, or the
    /// refusal (the connection stays open; the client may register again).
    pub fn register_result(
        &mut self,
        result: Result<RegisterGrant, Refusal>,
    ) -> Result<(), SessionError> {
        if self.closed {
            return Ok(());
        }
        let Stage::Ready { tunnel, .. } = &mut self.stage else {
            return Err(SessionError::ApiMisuse("no register awaits a result"));
        };
        if *tunnel != TunnelStage::Pending {
            return Err(SessionError::ApiMisuse("no register awaits a result"));
        }
        match result {
            Ok(grant) => {
                *tunnel = TunnelStage::Granted {
                    tunnel_id: grant.tunnel_id.clone(),
                    acked: false,
                };
                self.send(ServerMessage::RegisterResponse(RegisterResponse {
                    status: STATUS_SUCCESS.to_owned(),
                    tunnel_id: grant.tunnel_id,
                    config: grant.config,
                    reconnect_token: Some(grant.reconnect_token),
                }));
            }
            Err(refusal) => {
                *tunnel = TunnelStage::None;
                self.fail(Failure::RegisterRefused(refusal));
            }
        }
        Ok(())
    }

    /// Answers the oldest reported heartbeat with the relay's clock (RFC 3339).
    pub fn heartbeat_ok(&mut self, server_time: &str) -> Result<(), SessionError> {
        if self.closed {
            return Ok(());
        }
        if self.unanswered == 0 {
            return Err(SessionError::ApiMisuse("no heartbeat awaits an answer"));
        }
        self.unanswered -= 1;
        self.send(ServerMessage::HeartbeatResponse(HeartbeatResponse {
            status: STATUS_OK.to_owned(),
            server_time: server_time.to_owned(),
        }));
        Ok(())
    }

    /// The driver could not open the acknowledged tunnel's forwards:
    /// SERVER_ERROR `forwards_unavailable`, then closed.
    pub fn forwards_failed(&mut self) {
        if !self.closed {
            self.fail(Failure::ForwardsUnavailable);
        }
    }

    /// The relay is going away: SERVER_ERROR `shutting_down`, then closed.
    pub fn shutdown(&mut self) {
        if !self.closed {
            self.fail(Failure::Shutdown);
        }
    }

    /// Runs the auth and idle deadlines.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        match self.stage {
            Stage::AwaitAuth | Stage::AuthPending if now >= self.auth_deadline => {
                self.fail(Failure::AuthTimeout(self.config.auth_timeout));
            }
            Stage::Ready { .. } if now >= self.idle_from + self.config.idle_timeout() => {
                self.fail(Failure::Idle(self.config.idle_timeout()));
            }
            _ => {}
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must run; `None` once closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        Some(match self.stage {
            Stage::AwaitAuth | Stage::AuthPending => self.auth_deadline,
            Stage::Ready { .. } => self.idle_from + self.config.idle_timeout(),
        })
    }

    /// The next line to write, `\n` included.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    fn handle_message(&mut self, message: ClientMessage, now: Instant) {
        match (&self.stage, message) {
            (Stage::AwaitAuth, ClientMessage::Auth(auth)) => self.handle_auth(auth, now),
            (_, ClientMessage::Auth(_)) => self.fail(Failure::DuplicateAuth),
            (Stage::AwaitAuth | Stage::AuthPending, _) => self.fail(Failure::AuthRequired),
            (Stage::Ready { .. }, ClientMessage::Register(register)) => {
                self.handle_register(register)
            }
            (Stage::Ready { tunnel, .. }, ClientMessage::RegisterAck(ack)) => match tunnel {
                TunnelStage::Granted { tunnel_id, acked } if *tunnel_id == ack.tunnel_id => {
                    if !acked {
                        self.set_acked();
                        let tunnel_id = ack.tunnel_id;
                        self.events
                            .push_back(ServerEvent::RegisterAck { tunnel_id });
                    }
                }
                _ => self.fail(Failure::UnknownTunnel(cut(ack.tunnel_id, 64))),
            },
            (Stage::Ready { tunnel, .. }, ClientMessage::Heartbeat(heartbeat)) => match tunnel {
                TunnelStage::Granted { tunnel_id, .. } if *tunnel_id == heartbeat.tunnel_id => {
                    self.handle_heartbeat(heartbeat, now)
                }
                _ => self.fail(Failure::UnknownTunnel(cut(heartbeat.tunnel_id, 64))),
            },
        }
    }

    fn handle_auth(&mut self, auth: Auth, now: Instant) {
        if !version_supported(&auth.version) {
            return self.fail(Failure::UnsupportedVersion(cut(auth.version, 64)));
        }
        self.stage = Stage::AuthPending;
        self.idle_from = now;
        self.events.push_back(ServerEvent::Authenticate {
            token: auth.token,
            client_info: auth.client_info,
        });
    }

    fn handle_register(&mut self, register: Register) {
        let Stage::Ready { tunnel, .. } = &mut self.stage else {
            unreachable!("only called once signed in")
        };
        if *tunnel != TunnelStage::None {
            return self.fail(Failure::AlreadyRegistered);
        }
        let public_key = match validate_tunnel_info(&register.tunnel_info, &self.config.limits) {
            Ok(key) => key,
            Err(e) => return self.fail(Failure::InvalidTunnel(e)),
        };
        let resume = match (register.tunnel_id, register.reconnect_token) {
            (Some(tunnel_id), Some(reconnect_token)) => Some(Resume {
                tunnel_id,
                reconnect_token,
            }),
            (None, None) => None,
            _ => return self.fail(Failure::IncompleteResume),
        };
        *tunnel = TunnelStage::Pending;
        self.events.push_back(ServerEvent::Register {
            info: register.tunnel_info,
            public_key,
            resume,
        });
    }

    fn handle_heartbeat(&mut self, heartbeat: Heartbeat, now: Instant) {
        let interval = self.config.heartbeat_interval;
        if let Some(last) = self.last_heartbeat {
            // Seed §5.2: "heartbeat: 30 seconds between heartbeats".
            let earliest = last + interval.saturating_sub(self.config.heartbeat_slack);
            if now < earliest {
                let wait = (last + interval).saturating_duration_since(now);
                let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                let retry_after = retry_after.max(1);
                return self.fail(Failure::HeartbeatTooEarly {
                    interval,
                    retry_after,
                });
            }
        }
        self.last_heartbeat = Some(now);
        self.idle_from = now;
        self.unanswered += 1;
        self.events.push_back(ServerEvent::Heartbeat {
            tunnel_id: heartbeat.tunnel_id,
            stats: heartbeat.stats,
        });
    }

    fn set_acked(&mut self) {
        if let Stage::Ready {
            tunnel: TunnelStage::Granted { acked, .. },
            ..
        } = &mut self.stage
        {
            *acked = true;
        }
    }

    /// Sends the failure's `error` line; closes when the failure closes,
    /// or when one error too many kept the connection open.
    fn fail(&mut self, failure: Failure) {
        let mut failure = failure;
        if !failure.wire().close {
            self.soft_errors += 1;
            if self.soft_errors > self.config.max_soft_errors {
                failure = Failure::TooManyErrors;
            }
        }
        let wire = failure.wire();
        self.send(ServerMessage::Error(ErrorMessage {
            code: wire.code,
            message: failure.to_string(),
            details: ErrorDetails {
                reason: wire.reason.to_owned(),
                retry_after: wire.retry_after,
            },
        }));
        if wire.close {
            self.closed = true;
            self.events.push_back(ServerEvent::Closed { failure });
        } else {
            self.events.push_back(ServerEvent::Refused { failure });
        }
    }

    fn send(&mut self, message: ServerMessage) {
        self.out.push_back(encode_line(&message));
    }
}

pub(crate) mod fuzzing;
#[cfg(test)]
mod tests;
