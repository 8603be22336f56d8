//! Client configuration. Every limit has a default and can be changed.

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
    /// Without `flow_control`: frames buffered per stream toward its reader
    /// before the driver waits.
    pub stream_buffer_frames: usize,
    /// Without `flow_control`: how long the driver waits for a slow stream
    /// reader before ending that stream, so one slow reader cannot stall the
    /// others for longer.
    pub stall_timeout: Duration,
    /// Offer the `flow_control` extension ([`crate::Tunnel`] only): with a
    /// gateway that accepts it, each stream has its own credit window both
    /// ways, so a reader that pauses stalls only its own stream, for as long
    /// as it likes, and loses nothing. Without it the two settings above
    /// bound what a slow reader can cost the others.
    pub flow_control: bool,
    /// How far the receive windows may grow (`flow_control`): a paused
    /// stream holds at most `max_stream_window` bytes, the session at most
    /// `max_session_window`.
    pub windows: proto_httvps::flow::WindowLimits,
    /// Data frames one stream may queue toward the writer; past it that
    /// stream waits while the others take their turns.
    pub stream_queue_frames: usize,
    /// Frames queued toward the WebSocket writer (bounded backpressure).
    pub write_queue_frames: usize,
    /// With a gateway that cannot half-close (no `half_close` extension): how
    /// long a stream whose writer shut down waits for more reply bytes before
    /// it ends, so a finished client cannot hold a stream slot forever.
    pub half_close_linger: Duration,
    /// When every stream slot is busy and a new stream waits, the
    /// longest-idle stream is closed to free its slot: browsers keep idle
    /// keep-alive connections open and retry one that closes. Idle means
    /// nothing unread and no byte either way for at least this long after a
    /// reply (the gateway sent last), or twenty times this long after a
    /// request (which may still be waiting for its reply). `None`: never.
    pub evict_idle_after: Option<Duration>,
    /// Sessions to the gateway that the engine's transport may hold at once:
    /// when every slot of every session is busy it opens another (with
    /// device login, each with its own token) before streams wait.
    pub max_connections: usize,
    /// An extra session of that pool with no stream for this long is closed.
    pub retire_extra_after: Duration,
    /// Offer the `binary_data` extension ([`crate::Tunnel`] only): with a
    /// gateway that accepts it, stream bytes travel as raw binary messages
    /// instead of base64 in JSON, which saves the encoding, a third of the
    /// bytes on the wire, and most of the CPU per byte outside TLS. Gateways
    /// that do not know it ignore the offer and get the contract's JSON.
    pub binary_data: bool,
    /// Offer to send WebSocket frames unmasked (the `x-httvps-unmasked`
    /// extension, in the upgrade): inside TLS masking protects nothing and
    /// costs a pass over every byte sent, here and at the gateway. Gateways
    /// that do not know it get masked frames, as the contract says.
    pub unmasked_frames: bool,
    /// Let [`crate::Stream::ready`] return at once instead of waiting for the
    /// gateway's `stream_ready`. A local proxy then answers its client one
    /// tunnel round trip sooner (what ss-local does), at a price: a target
    /// that cannot be reached shows up as a connection closed with an error
    /// on first read, not as the precise refusal (SOCKS "connection refused",
    /// HTTP 502/504) before any byte. Such a client does not offer the
    /// `stream_ready` extension, which it would never wait for: the gateway
    /// sends one message less per stream. Off by default.
    pub optimistic_open: bool,
    /// What carries the WebSocket: HTTP/1.1 over TLS over TCP, HTTP/3 over
    /// QUIC (RFC 9220, to UDP on the URL's port), or HTTP/3 with a quick
    /// fall-back to HTTP/1.1 when UDP does not get through.
    pub transport: Transport,
}

/// The carrier of the HTTVPS WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// WebSocket over HTTP/1.1, TLS and TCP: what every gateway speaks.
    #[default]
    H1,
    /// WebSocket over HTTP/3 (extended CONNECT, RFC 9220) on QUIC: one
    /// round trip less to connect, no head-of-line blocking between
    /// packets, and a connection that survives an address change.
    H3,
    /// HTTP/3 first; when it does not connect within
    /// [`Transport::AUTO_H3_WAIT`], HTTP/1.1, and HTTP/1.1 straight away for
    /// that gateway for [`Transport::AUTO_REMEMBER`].
    Auto,
}

impl Transport {
    /// How long `auto` gives HTTP/3 before falling back.
    pub const AUTO_H3_WAIT: Duration = Duration::from_millis(1200);
    /// How long `auto` remembers that HTTP/3 failed for a gateway.
    pub const AUTO_REMEMBER: Duration = Duration::from_secs(600);

    /// The name used in flags and files: `h1`, `h3` or `auto`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::H1 => "h1",
            Transport::H3 => "h3",
            Transport::Auto => "auto",
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Transport {
    type Err = String;

    fn from_str(s: &str) -> Result<Transport, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "h1" | "http1" | "http/1.1" => Ok(Transport::H1),
            "h3" | "http3" | "quic" => Ok(Transport::H3),
            "auto" => Ok(Transport::Auto),
            other => Err(format!("{other:?} is not a transport (h1, h3 or auto)")),
        }
    }
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
            flow_control: true,
            evict_idle_after: Some(Duration::from_millis(250)),
            max_connections: 4,
            retire_extra_after: Duration::from_secs(60),
            windows: proto_httvps::flow::WindowLimits::default(),
            stream_queue_frames: 8,
            write_queue_frames: 64,
            half_close_linger: Duration::from_secs(2),
            binary_data: true,
            unmasked_frames: true,
            optimistic_open: false,
            transport: Transport::H1,
        }
    }

    /// The payload size per frame actually used for a stream id of `id_len`.
    pub(crate) fn chunk_for(&self, id_len: usize) -> usize {
        self.max_chunk
            .min(proto_httvps::max_payload_len(id_len, self.max_frame_len))
            .max(1)
    }
}

/// How the gateway's certificate is verified: shared with every client
/// crate (`client-kit`), re-exported here for this crate's users.
pub use client_kit::TlsOptions;

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
