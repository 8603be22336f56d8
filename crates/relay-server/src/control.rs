//! One control connection: TLS, then `proto_relay::ServerSession` driven
//! over it. The session keeps the protocol's rules; this driver answers its
//! events with the relay's verdicts (the JWT, the rate limits, the
//! registry, the running tunnels) and maps every refusal to its wire code
//! in one place, [`refusal`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use proto_relay::message::{Forward as WireForward, Stats};
use proto_relay::{
    Claims, ErrorCode, Refusal, RegisterGrant, Resume, ServerEvent, ServerSession, Token,
    TunnelConfig, TunnelInfo,
};
use server_kit::admission::{Progress, Ticket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::jwt::{TokenError, TokenVerifier};
use crate::limits::{RateLimits, RetryAfter};
use crate::metrics;
use crate::registry::{ReconnectToken, RegistryError, TunnelRecord, TunnelRegistry};
use crate::tunnels::{Attachment, Tunnels};

/// Read buffer per control connection (lines are small; a 1 MiB line is
/// assembled by the session's decoder, bounded by its cap).
const READ_CHUNK: usize = 16 * 1024;

/// What every control connection shares.
pub(crate) struct ControlCtx {
    pub tls: TlsAcceptor,
    pub session: proto_relay::ServerConfig,
    pub verifier: TokenVerifier,
    pub limits: RateLimits,
    pub registry: Arc<dyn TunnelRegistry>,
    pub tunnels: Tunnels,
    /// The WireGuard endpoint told to clients, `host:port`.
    pub wg_endpoint: String,
    pub handshake_timeout: std::time::Duration,
    pub stop: CancellationToken,
}

/// Serves one accepted control connection to its end.
pub(crate) async fn serve(
    ctx: Arc<ControlCtx>,
    tcp: TcpStream,
    peer: SocketAddr,
    mut ticket: Ticket,
) {
    let _ = tcp.set_nodelay(true);
    let eviction = ticket.eviction();
    let handshake = tokio::time::timeout(ctx.handshake_timeout, ctx.tls.accept(tcp));
    let tls = tokio::select! {
        r = handshake => match r {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => return debug!(%peer, error = %e, "TLS handshake failed"),
            Err(_) => return debug!(%peer, "TLS handshake timed out"),
        },
        _ = eviction.cancelled() => return,
        // Shutdown does not wait for a handshake that may never finish.
        _ = ctx.stop.cancelled() => return,
    };
    ticket.progressed(Progress::Secured);
    let mut conn = Connection {
        ctx: ctx.clone(),
        peer,
        session: ServerSession::new(ctx.session.clone(), Instant::now()),
        sub: None,
        attachment: None,
        accepted: Instant::now(),
        ticket,
    };
    let result = conn.run(tls).await;
    if let Some(attachment) = conn.attachment.take() {
        ctx.tunnels.detach(&attachment);
    }
    match result {
        Ok(()) => debug!(%peer, "control connection closed"),
        Err(e) => debug!(%peer, error = %e, "control connection failed"),
    }
}

struct Connection {
    ctx: Arc<ControlCtx>,
    peer: SocketAddr,
    session: ServerSession,
    sub: Option<String>,
    attachment: Option<Attachment>,
    accepted: Instant,
    ticket: Ticket,
}

impl Connection {
    async fn run<S>(&mut self, mut io: S) -> std::io::Result<()>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let mut buf = vec![0u8; READ_CHUNK];
        let eviction = self.ticket.eviction();
        loop {
            self.handle_events().await;
            while let Some(line) = self.session.poll_transmit() {
                io.write_all(&line).await?;
            }
            io.flush().await?;
            if self.session.is_closed() {
                let _ = io.shutdown().await;
                return Ok(());
            }
            let deadline = self.session.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                read = io.read(&mut buf) => {
                    let n = read?;
                    if n == 0 {
                        return Ok(());
                    }
                    self.session.handle_bytes(&buf[..n], Instant::now());
                }
                _ = sleep => self.session.handle_timeout(Instant::now()),
                _ = self.ctx.stop.cancelled() => self.session.shutdown(),
                _ = eviction.cancelled(), if !self.ticket.is_admitted() => return Ok(()),
            }
        }
    }

    /// Answers every pending session event.
    async fn handle_events(&mut self) {
        while let Some(event) = self.session.poll_event() {
            // The driver only ever answers events it was given, so a
            // misuse error is a bug here; it is logged, never fatal.
            let answered = match event {
                ServerEvent::Authenticate { token, .. } => {
                    let verdict = self.authenticate(&token);
                    if let Ok(claims) = &verdict {
                        self.sub = Some(claims.sub.clone());
                        self.ticket.progressed(Progress::Claimed);
                        if let Err(e) = self.ticket.promote() {
                            debug!(peer = %self.peer, reason = e.label(), "control connection not admitted");
                            self.session.shutdown();
                            continue;
                        }
                    }
                    self.session.auth_verdict(verdict)
                }
                ServerEvent::Register {
                    info,
                    public_key: _,
                    resume,
                } => {
                    let result = self.register(&info, resume).await;
                    self.session.register_result(result)
                }
                ServerEvent::RegisterAck { tunnel_id } => {
                    self.acknowledged(&tunnel_id).await;
                    Ok(())
                }
                ServerEvent::Heartbeat { tunnel_id, stats } => {
                    self.heartbeat(&tunnel_id, &stats).await;
                    self.session.heartbeat_ok(&rfc3339(SystemTime::now()))
                }
                ServerEvent::Refused { failure } => {
                    self.log_error(&failure, "refused");
                    Ok(())
                }
                ServerEvent::Closed { failure } => {
                    self.log_error(&failure, "control connection closed by the relay");
                    Ok(())
                }
            };
            if let Err(e) = answered {
                warn!(error = %e, "control session misuse");
            }
        }
    }

    /// Counts an `error` line sent (the seed's `error_rate`) and logs it,
    /// naming the tunnel when the connection holds one.
    fn log_error(&self, failure: &proto_relay::Failure, event: &str) {
        let wire = failure.wire();
        count_error(wire.code);
        let (code, reason) = (wire.code.as_u16(), wire.reason);
        match &self.attachment {
            Some(a) => info!(tunnel_id = %a.tunnel_id, peer = %self.peer, code, reason, "{event}"),
            None => info!(peer = %self.peer, code, reason, "{event}"),
        }
    }

    fn authenticate(&self, token: &Token) -> Result<Claims, Refusal> {
        if let Err(wait) = self.ctx.limits.check_auth(self.peer.ip()) {
            return Err(rate_limited(
                wait,
                "too_many_auth_attempts",
                "too many sign-in attempts from this address",
            ));
        }
        match self.ctx.verifier.verify(token.expose()) {
            Ok(claims) => {
                info!(peer = %self.peer, sub = %claims.sub, "authenticated");
                Ok(Claims { sub: claims.sub })
            }
            Err(e) => {
                info!(peer = %self.peer, reason = e.reason(), "sign-in refused");
                Err(refusal(&Failed::Token(e)))
            }
        }
    }

    async fn register(
        &mut self,
        info: &TunnelInfo,
        resume: Option<Resume>,
    ) -> Result<RegisterGrant, Refusal> {
        let sub = self.sub.clone().unwrap_or_default();
        let registry = &self.ctx.registry;
        let (record, token, kind) = match resume {
            Some(resume) => {
                let token = ReconnectToken::new(resume.reconnect_token.expose());
                let (record, token) = registry
                    .resume(&sub, &resume.tunnel_id, &token, Some(&info.public_key))
                    .await
                    .map_err(|e| refusal(&Failed::Registry(e)))?;
                (record, token, "resumed")
            }
            None => {
                if let Err(wait) = self.ctx.limits.check_creation(&sub) {
                    return Err(rate_limited(
                        wait,
                        "too_many_tunnels",
                        "too many tunnels created for this account",
                    ));
                }
                let (record, token) = registry
                    .create(&sub, &info.name, &info.ports, &info.public_key)
                    .await
                    .map_err(|e| refusal(&Failed::Registry(e)))?;
                (record, token, "created")
            }
        };
        let attachment = self.ctx.tunnels.attach(&record).map_err(|e| {
            warn!(tunnel_id = %record.tunnel_id, error = %e, "cannot add the WireGuard peer");
            refusal(&Failed::Internal)
        })?;
        if let Some(old) = self.attachment.replace(attachment)
            && old.tunnel_id != record.tunnel_id
        {
            self.ctx.tunnels.detach(&old);
        }
        ::metrics::counter!(metrics::REGISTRATIONS, "kind" => kind).increment(1);
        info!(
            tunnel_id = %record.tunnel_id,
            sub = %sub,
            name = %record.name,
            address = %record.address,
            kind = kind,
            "tunnel registered"
        );
        Ok(RegisterGrant {
            tunnel_id: record.tunnel_id.clone(),
            config: self.tunnel_config(&record),
            reconnect_token: Token::new(token.expose()),
        })
    }

    fn tunnel_config(&self, record: &TunnelRecord) -> TunnelConfig {
        let registry = self.ctx.registry.config();
        TunnelConfig {
            endpoint: self.ctx.wg_endpoint.clone(),
            public_key: self.ctx.tunnels.node().public_key().to_base64(),
            allowed_ips: vec![registry.network.to_string()],
            address: format!("{}/32", record.address),
            forwards: record
                .forwards
                .iter()
                .map(|f| WireForward {
                    port: f.port,
                    public: registry.public_address(f.public_port),
                })
                .collect(),
        }
    }

    async fn acknowledged(&mut self, tunnel_id: &str) {
        let Some(attachment) = self
            .attachment
            .as_ref()
            .filter(|a| a.tunnel_id == tunnel_id)
        else {
            return;
        };
        match self.ctx.tunnels.open_forwards(attachment).await {
            Ok(_) => {
                ::metrics::histogram!(metrics::CONNECTION_TIME)
                    .record(self.accepted.elapsed().as_secs_f64());
                info!(tunnel_id = %tunnel_id, "tunnel active");
            }
            Err(e) => {
                warn!(tunnel_id = %tunnel_id, error = %e, "cannot open the forwards");
                // The client sees SERVER_ERROR and reconnects with backoff;
                // the ports may be free by then.
                self.session.forwards_failed();
            }
        }
    }

    async fn heartbeat(&self, tunnel_id: &str, stats: &Stats) {
        if let Err(e) = self.ctx.registry.renew(tunnel_id).await {
            warn!(tunnel_id = %tunnel_id, error = %e, "cannot renew the tunnel's lease");
        }
        debug!(
            tunnel_id = %tunnel_id,
            bytes_in = stats.bytes_in,
            bytes_out = stats.bytes_out,
            connected_since = %stats.connected_since,
            "heartbeat"
        );
    }
}

/// What the relay refuses for, before it becomes a wire error.
enum Failed {
    Token(TokenError),
    Registry(RegistryError),
    Internal,
}

/// The one place mapping the relay's refusals to the seed's codes.
fn refusal(failed: &Failed) -> Refusal {
    let (code, reason, message) = match failed {
        Failed::Token(TokenError::Expired) => (
            ErrorCode::TokenExpired,
            "expired".to_owned(),
            "the token has expired".to_owned(),
        ),
        Failed::Token(e @ TokenError::Invalid { .. }) => (
            ErrorCode::InvalidToken,
            e.reason().to_owned(),
            e.to_string(),
        ),
        Failed::Token(e) => (ErrorCode::AuthFailed, e.reason().to_owned(), e.to_string()),
        Failed::Registry(e @ RegistryError::Exists { .. }) => (
            ErrorCode::TunnelExists,
            e.reason().to_owned(),
            e.to_string(),
        ),
        Failed::Registry(e @ RegistryError::Invalid(_)) => (
            ErrorCode::InvalidConfig,
            e.reason().to_owned(),
            e.to_string(),
        ),
        Failed::Registry(e @ (RegistryError::ResumeRejected | RegistryError::UnknownTunnel)) => (
            ErrorCode::InvalidToken,
            "bad_reconnect_token".to_owned(),
            e.to_string(),
        ),
        Failed::Registry(
            e @ (RegistryError::AddressesExhausted | RegistryError::PortsExhausted),
        ) => (
            ErrorCode::ServerError,
            e.reason().to_owned(),
            format!("the relay is full: {e}"),
        ),
        Failed::Registry(e) => {
            warn!(error = %e, "registry failed");
            (
                ErrorCode::ServerError,
                e.reason().to_owned(),
                "the relay's registry failed".to_owned(),
            )
        }
        Failed::Internal => (
            ErrorCode::ServerError,
            "internal".to_owned(),
            "the relay failed".to_owned(),
        ),
    };
    Refusal::new(code, reason, message)
}

/// Counts an `error` line sent (the seed's `error_rate`).
fn count_error(code: ErrorCode) {
    ::metrics::counter!(metrics::ERRORS, "code" => code.as_u16().to_string()).increment(1);
}

fn rate_limited(wait: RetryAfter, reason: &str, message: &str) -> Refusal {
    Refusal::new(ErrorCode::RateLimit, reason, message).with_retry_after(wait.secs())
}

/// RFC 3339 UTC, seconds precision (`server_time`).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}
