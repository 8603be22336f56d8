//! HTTVPS as an engine [`Transport`]: a session token straight to a gateway,
//! or device credentials through the control plane (a fresh single-use token
//! for every connect, which is what makes automatic reconnects possible).

use std::sync::Arc;
use std::time::Duration;

use httvps_client::{
    ClientConfig, ClientError, ControlPlane, DeviceCredentials, Secret, StreamEnd, Tunnel,
    connect_with_device,
};
use local_proxy::{ConnectError, ConnectErrorKind};
use proto_httvps::TargetAddr;

use crate::transport::{BoxFuture, OpenedStream, Transport, TransportError, TunnelSession};

/// How an HTTVPS transport authenticates.
#[derive(Debug, Clone)]
pub enum HttvpsAuth {
    /// A session token for `config.url`. Real backends make these single-use,
    /// so a reconnect with it fails with `auth_failed`; token-file gateways
    /// (and the demo) accept it again.
    SessionToken(Secret),
    /// Device credentials; the gateway URL comes from each grant.
    Device {
        /// The control-plane client.
        control: ControlPlane,
        /// The device's login.
        credentials: DeviceCredentials,
    },
}

/// The HTTVPS transport.
#[derive(Debug, Clone)]
pub struct HttvpsTransport {
    config: ClientConfig,
    auth: HttvpsAuth,
}

impl HttvpsTransport {
    /// A transport with SDK settings `config` (its `url` is ignored in device mode).
    pub fn new(config: ClientConfig, auth: HttvpsAuth) -> Self {
        HttvpsTransport { config, auth }
    }
}

/// Codes after which retrying with the same credentials cannot help.
fn is_fatal(code: &str) -> bool {
    matches!(
        code,
        "auth_failed" | "bad_version" | "bad_hello" | "config_error"
    )
}

fn transport_error(e: ClientError) -> TransportError {
    let code = e.code().to_owned();
    TransportError {
        fatal: is_fatal(&code),
        message: e.to_string(),
        code,
    }
}

impl Transport for HttvpsTransport {
    fn server(&self) -> String {
        match &self.auth {
            HttvpsAuth::SessionToken(_) => self.config.url.clone(),
            HttvpsAuth::Device { credentials, .. } => format!("device {}", credentials.device_id),
        }
    }

    fn connect(&self) -> BoxFuture<'_, Result<Arc<dyn TunnelSession>, TransportError>> {
        Box::pin(async move {
            let tunnel = match &self.auth {
                HttvpsAuth::SessionToken(token) => {
                    Tunnel::connect(self.config.clone(), token).await
                }
                HttvpsAuth::Device {
                    control,
                    credentials,
                } => connect_with_device(control, credentials, &self.config).await,
            }
            .map_err(transport_error)?;
            Ok(Arc::new(HttvpsSession { tunnel }) as Arc<dyn TunnelSession>)
        })
    }
}

struct HttvpsSession {
    tunnel: Tunnel,
}

/// Maps how a stream failed to what the proxy tells its client.
fn connect_error(end: StreamEnd) -> ConnectError {
    let kind = match end.reason() {
        Some("refused") => ConnectErrorKind::Refused,
        Some("unreachable") => ConnectErrorKind::Unreachable,
        Some("not_allowed") => ConnectErrorKind::NotAllowed,
        Some("timeout") => ConnectErrorKind::TimedOut,
        _ => match end {
            StreamEnd::SessionLost(_) => ConnectErrorKind::Unavailable,
            _ => ConnectErrorKind::Other,
        },
    };
    ConnectError::new(kind, end.to_string())
}

impl TunnelSession for HttvpsSession {
    fn session_id(&self) -> String {
        self.tunnel.session_id().to_owned()
    }

    fn max_streams(&self) -> u32 {
        self.tunnel.max_streams()
    }

    fn open(
        &self,
        target: TargetAddr,
        slot_wait: Duration,
    ) -> BoxFuture<'_, Result<OpenedStream, ConnectError>> {
        Box::pin(async move {
            let stream = self
                .tunnel
                .open_wait(target, slot_wait)
                .await
                .map_err(|e| match e {
                    ClientError::StreamLimitTimeout(_) => {
                        ConnectError::new(ConnectErrorKind::Busy, e.to_string())
                    }
                    ClientError::SessionClosed(_) => {
                        ConnectError::new(ConnectErrorKind::Unavailable, e.to_string())
                    }
                    other => ConnectError::new(ConnectErrorKind::Other, other.to_string()),
                })?;
            stream.ready().await.map_err(connect_error)?;
            Ok(OpenedStream {
                stream_id: stream.id().to_owned(),
                stream: Box::new(stream),
            })
        })
    }

    fn closed(&self) -> BoxFuture<'_, String> {
        Box::pin(async move { self.tunnel.closed().await.to_string() })
    }

    fn close(&self) {
        self.tunnel.close();
    }
}
