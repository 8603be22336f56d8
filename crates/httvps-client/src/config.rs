//! Client configuration. Every limit has a default and can be changed.

use std::path::PathBuf;
use std::time::Duration;

use proto_httvps::MAX_FRAME_LEN;

/// How to reach and trust a gateway, and the session's local limits.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The gateway's WebSocket URL, `wss://host:port/ws`.
    pub url: String,
    /// How the gateway's certificate is checked.
    pub tls: TlsOptions,
    /// The `client` name sent in `hello`.
    pub client_name: String,
    /// Limit for TCP connect + TLS + WebSocket upgrade + `ready` (seed: 10 s).
    pub handshake_timeout: Duration,
    /// Periodic ping and dead-session detection.
    pub keepalive: KeepaliveConfig,
    /// Largest frame sent or accepted, in bytes (contract: 256 KiB).
    pub max_frame_len: usize,
    /// Largest payload per `stream_data` frame; capped so frames stay within
    /// `max_frame_len`. Bigger chunks mean fewer frames and less overhead.
    pub max_chunk: usize,
    /// Frames buffered per stream toward its reader before the driver waits.
    pub stream_buffer_frames: usize,
    /// How long the driver waits for a slow stream reader before ending that
    /// stream, so one slow reader cannot stall the others for longer.
    pub stall_timeout: Duration,
    /// Frames queued toward the WebSocket writer (bounded backpressure).
    pub write_queue_frames: usize,
    /// With a gateway that cannot half-close (no `half_close` extension): how
    /// long a stream whose writer shut down waits for more reply bytes before
    /// it ends, so a finished client cannot hold a stream slot forever.
    pub half_close_linger: Duration,
    /// Offer the `binary_data` extension ([`crate::Tunnel`] only): with a
    /// gateway that accepts it, stream bytes travel as raw binary messages
    /// instead of base64 in JSON, which saves the encoding, a third of the
    /// bytes on the wire, and most of the CPU per byte outside TLS. Gateways
    /// that do not know it ignore the offer and get the contract's JSON.
    pub binary_data: bool,
    /// Let [`crate::Stream::ready`] return at once instead of waiting for the
    /// gateway's `stream_ready`. A local proxy then answers its client one
    /// tunnel round trip sooner (what ss-local does), at a price: a target
    /// that cannot be reached shows up as a connection closed with an error
    /// on first read, not as the precise refusal (SOCKS "connection refused",
    /// HTTP 502/504) before any byte. Off by default.
    pub optimistic_open: bool,
}

impl ClientConfig {
    /// Defaults for a gateway URL.
    pub fn new(url: impl Into<String>) -> Self {
        ClientConfig {
            url: url.into(),
            tls: TlsOptions::default(),
            client_name: concat!("httvps-rs/", env!("CARGO_PKG_VERSION")).to_owned(),
            handshake_timeout: Duration::from_secs(10),
            keepalive: KeepaliveConfig::default(),
            max_frame_len: MAX_FRAME_LEN,
            max_chunk: 128 * 1024,
            stream_buffer_frames: 32,
            stall_timeout: Duration::from_secs(5),
            write_queue_frames: 64,
            half_close_linger: Duration::from_secs(2),
            binary_data: true,
            optimistic_open: false,
        }
    }

    /// The payload size per frame actually used for a stream id of `id_len`.
    pub(crate) fn chunk_for(&self, id_len: usize) -> usize {
        self.max_chunk
            .min(proto_httvps::max_payload_len(id_len, self.max_frame_len))
            .max(1)
    }
}

/// How the gateway's certificate is verified. Verification is always on.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Extra PEM file of CA certificates trusted besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// SHA-256 of the gateway certificate's SubjectPublicKeyInfo. When set, the
    /// pin alone authenticates the gateway (a self-signed certificate works)
    /// and the chain is not checked against roots.
    pub pin_sha256: Option<[u8; 32]>,
    /// Server name for SNI and certificate checks, when it differs from the
    /// URL's host (e.g. connecting by IP to a named gateway).
    pub sni: Option<String>,
}

/// Keepalive: the client pings every `interval` and declares the session dead
/// when nothing at all arrived for `dead_after`.
#[derive(Debug, Clone, Copy)]
pub struct KeepaliveConfig {
    /// Time between pings.
    pub interval: Duration,
    /// Silence after which the session is declared lost.
    pub dead_after: Duration,
}

impl Default for KeepaliveConfig {
    fn default() -> Self {
        KeepaliveConfig {
            interval: Duration::from_secs(15),
            dead_after: Duration::from_secs(45),
        }
    }
}
