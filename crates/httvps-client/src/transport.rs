//! HTTVPS as an engine [`Transport`]: a session token straight to a gateway,
//! or device credentials through the control plane (a fresh single-use token
//! for every connect, which is what makes automatic reconnects possible).

use std::sync::Arc;

use engine::transport::{BoxFuture, Transport, TransportError, TunnelSession};
use local_proxy::{ConnectError, ConnectErrorKind};
use net::{ErrorCode, Secret};
use proto_httvps::ErrorCode as WireCode;

use crate::pool::Pool;
use crate::{
    ClientConfig, ClientError, ControlPlane, DeviceCredentials, StreamEnd, Tunnel,
    connect_with_device,
};

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

/// The engine's stable code for an SDK error: the one place HTTVPS codes
/// (the gateway's wire codes and the SDK's own failures) become
/// [`ErrorCode`]s.
pub fn error_code(e: &ClientError) -> ErrorCode {
    match e {
        ClientError::HandshakeFailed {
            code: Some(code), ..
        } => match code {
            WireCode::AuthFailed => ErrorCode::AuthFailed,
            WireCode::BadVersion => ErrorCode::BadVersion,
            WireCode::BadHello => ErrorCode::BadHello,
            WireCode::BadFrame | WireCode::BadStream | WireCode::StreamError => {
                ErrorCode::ProtocolError
            }
            WireCode::SessionError => ErrorCode::ServerError,
            WireCode::Unsupported => ErrorCode::Unsupported,
            _ => ErrorCode::HandshakeFailed,
        },
        ClientError::HandshakeFailed { code: None, .. } => ErrorCode::HandshakeFailed,
        ClientError::InvalidUrl { .. } | ClientError::TlsConfig(_) => ErrorCode::ConfigError,
        ClientError::Stream(_) => ErrorCode::ProtocolError,
        ClientError::StreamLimitTimeout(_) => ErrorCode::StreamLimit,
        ClientError::SessionClosed(_) | ClientError::Transport(_) => ErrorCode::SessionLost,
        ClientError::ControlPlane {
            status: Some(401 | 403),
            ..
        } => ErrorCode::AuthFailed,
        ClientError::ControlPlane { .. } => ErrorCode::ControlPlaneError,
    }
}

fn transport_error(e: ClientError) -> TransportError {
    TransportError::new(error_code(&e), e.to_string())
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
            let tunnel = connect_tunnel(&self.config, &self.auth)
                .await
                .map_err(transport_error)?;
            let pool = Pool::new(tunnel, self.config.clone(), self.auth.clone());
            Ok(Arc::new(pool) as Arc<dyn TunnelSession>)
        })
    }
}

/// One more session with the transport's credentials: a fresh token from
/// the control plane with device login, the same token otherwise.
pub(crate) async fn connect_tunnel(
    config: &ClientConfig,
    auth: &HttvpsAuth,
) -> Result<Tunnel, ClientError> {
    match auth {
        HttvpsAuth::SessionToken(token) => Tunnel::connect(config.clone(), token).await,
        HttvpsAuth::Device {
            control,
            credentials,
        } => connect_with_device(control, credentials, config).await,
    }
}

pub(crate) fn connect_error(end: StreamEnd) -> ConnectError {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_credentials_and_bad_settings_are_fatal_network_failures_are_not() {
        let handshake = |code| ClientError::HandshakeFailed {
            code,
            message: "m".into(),
        };
        let fatal = |e: ClientError| transport_error(e).is_fatal();
        assert!(fatal(handshake(Some(WireCode::AuthFailed))));
        assert!(fatal(handshake(Some(WireCode::BadVersion))));
        assert!(fatal(ClientError::TlsConfig("no CA".into())));
        assert!(fatal(ClientError::ControlPlane {
            status: Some(401),
            message: "m".into()
        }));
        assert!(!fatal(handshake(None)));
        assert!(!fatal(ClientError::Transport("reset".into())));
        assert!(!fatal(ClientError::ControlPlane {
            status: Some(503),
            message: "m".into()
        }));
        assert_eq!(
            error_code(&handshake(Some(WireCode::Other("try_later".into())))),
            ErrorCode::HandshakeFailed
        );
    }

    #[test]
    fn stream_close_reasons_pick_the_proxy_reply() {
        let closed = |reason: &str| {
            connect_error(StreamEnd::Gateway(
                proto_httvps::client::StreamEnd::Closed {
                    reason: Some(reason.to_owned()),
                },
            ))
            .kind
        };
        assert_eq!(closed("refused"), ConnectErrorKind::Refused);
        assert_eq!(closed("unreachable"), ConnectErrorKind::Unreachable);
        assert_eq!(closed("not_allowed"), ConnectErrorKind::NotAllowed);
        assert_eq!(closed("timeout"), ConnectErrorKind::TimedOut);
        assert_eq!(closed("upstream_error"), ConnectErrorKind::Other);
    }
}
