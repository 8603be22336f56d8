//! The control plane: device credentials in, a short-lived session token out.
//!
//! Session tokens are single-use, so a client that reconnects on its own keeps
//! the device credentials (in the OS keychain) and asks for a fresh token on
//! every connect: [`connect_with_device`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{ClientConfig, TlsOptions};
use crate::error::ClientError;
use crate::tunnel::Tunnel;
use net::Secret;

/// A device's long-lived login.
#[derive(Debug, Clone)]
pub struct DeviceCredentials {
    /// The device id the backend knows.
    pub device_id: String,
    /// The device token (a secret).
    pub token: Secret,
    /// Preferred region, when the user chose one.
    pub region: Option<String>,
}

/// What the control plane grants: a token for one session and where to use it.
#[derive(Debug, Clone)]
pub struct SessionGrant {
    /// The single-use session token for `hello`.
    pub session_token: Secret,
    /// When the token stops being valid (RFC 3339).
    pub expires_at: String,
    /// The gateway to connect to (`wss://…/ws`).
    pub gateway_url: String,
    /// The session's stream limit.
    pub max_streams: u32,
}

#[derive(Serialize)]
struct SessionRequest<'a> {
    device_id: &'a str,
    token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<&'a str>,
}

#[derive(Deserialize)]
struct SessionResponse {
    session_token: String,
    expires_at: String,
    gateway_url: String,
    max_streams: u32,
}

/// A client of the backend's session API.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    base: String,
    http: reqwest::Client,
}

impl ControlPlane {
    /// A client for the backend at `base_url` (e.g. `https://api.example`).
    /// The CA file of `tls` is trusted besides the system roots; the pin is
    /// for gateways only and is not used here.
    pub fn new(base_url: impl Into<String>, tls_options: &TlsOptions) -> Result<Self, ClientError> {
        let tls_options = TlsOptions {
            pin_sha256: None,
            ..tls_options.clone()
        };
        let rustls_config = client_kit::client_config(&tls_options, &[b"http/1.1"])?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(rustls_config)
            .timeout(Duration::from_secs(15))
            .user_agent(concat!("httvps-rs/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::TlsConfig(format!("cannot build HTTP client: {e}")))?;
        Ok(ControlPlane {
            base: base_url.into().trim_end_matches('/').to_owned(),
            http,
        })
    }

    /// `POST /api/v1/httvps/session`: exchanges device credentials for a grant.
    pub async fn create_session(
        &self,
        creds: &DeviceCredentials,
    ) -> Result<SessionGrant, ClientError> {
        let url = format!("{}/api/v1/httvps/session", self.base);
        let body = SessionRequest {
            device_id: &creds.device_id,
            token: creds.token.expose(),
            region: creds.region.as_deref(),
        };
        let response = self.http.post(&url).json(&body).send().await.map_err(|e| {
            ClientError::ControlPlane {
                status: None,
                message: format!("cannot reach {url}: {}", error_chain(&e)),
            }
        })?;
        let status = response.status();
        if !status.is_success() {
            let detail = response.text().await.unwrap_or_default();
            let reason = backend_reason(&detail)
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_owned());
            let message = match status.as_u16() {
                401 | 403 => format!("the backend refused the device credentials ({reason})"),
                _ => format!("the backend answered {status} ({reason})"),
            };
            return Err(ClientError::ControlPlane {
                status: Some(status.as_u16()),
                message,
            });
        }
        let grant: SessionResponse =
            response
                .json()
                .await
                .map_err(|e| ClientError::ControlPlane {
                    status: Some(status.as_u16()),
                    message: format!("unreadable session answer: {e}"),
                })?;
        Ok(SessionGrant {
            session_token: Secret::new(grant.session_token),
            expires_at: grant.expires_at,
            gateway_url: grant.gateway_url,
            max_streams: grant.max_streams,
        })
    }
}

/// The backend's `{"detail":{"reason":…}}`, when it sent one.
fn backend_reason(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    let detail = value.get("detail")?;
    detail
        .get("reason")
        .and_then(|r| r.as_str())
        .or_else(|| detail.as_str())
        .map(str::to_owned)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Fetches a fresh session token and connects to the gateway it names.
///
/// `template` supplies everything but the URL (TLS options, limits); its `url`
/// is replaced by the grant's `gateway_url`.
pub async fn connect_with_device(
    control: &ControlPlane,
    creds: &DeviceCredentials,
    template: &ClientConfig,
) -> Result<Tunnel, ClientError> {
    let grant = control.create_session(creds).await?;
    let config = ClientConfig {
        url: grant.gateway_url.clone(),
        ..template.clone()
    };
    Tunnel::connect(config, &grant.session_token).await
}
