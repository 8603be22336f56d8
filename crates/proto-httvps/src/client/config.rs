//! What a client session is configured with and what `ready` grants.

use std::time::Duration;

use crate::binary::FEATURE_BINARY_DATA;
use crate::flow::WindowLimits;
use crate::frame::{
    FEATURE_FLOW_CONTROL, FEATURE_HALF_CLOSE, FEATURE_STREAM_READY, MAX_FRAME_LEN, max_payload_len,
};

/// The settings one client session runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// The `client` name sent in `hello`, for the gateway's logs.
    pub client_name: String,
    /// How long to wait for `ready` after `hello` (seed: 10 s).
    pub handshake_timeout: Duration,
    /// Time between keepalive pings.
    pub keepalive_interval: Duration,
    /// Silence (nothing at all received) after which the session is dead.
    pub dead_after: Duration,
    /// Largest message accepted and sent (contract: 256 KiB).
    pub max_frame_len: usize,
    /// Largest payload per `stream_data`; capped further so that the JSON
    /// form of the frame stays within `max_frame_len`.
    pub max_chunk: usize,
    /// Extensions offered in `hello`.
    pub offer: Features,
    /// Data frames [`Client::send_data`](super::Client::send_data) queues before it reports
    /// [`CommandError::Blocked`](super::CommandError::Blocked): the write queue's bound.
    pub send_queue_frames: usize,
    /// Data frames one stream may have queued: past it that stream's writes
    /// wait while the others keep their turns.
    pub stream_queue_frames: usize,
    /// How far the receive windows may grow (`flow_control`).
    pub windows: WindowLimits,
    /// The round-trip estimate before the first measurement (keepalive
    /// ping to pong); it decides when a window grows.
    pub initial_rtt: Duration,
}

impl Default for Config {
    /// The SDK's defaults: 10 s handshake, ping every 15 s, dead after 45 s,
    /// 128 KiB chunks, every extension offered.
    fn default() -> Self {
        Config {
            client_name: concat!("httvps-rs/", env!("CARGO_PKG_VERSION")).to_owned(),
            handshake_timeout: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(15),
            dead_after: Duration::from_secs(45),
            max_frame_len: MAX_FRAME_LEN,
            max_chunk: 128 * 1024,
            offer: Features::ALL,
            send_queue_frames: 64,
            stream_queue_frames: 8,
            windows: WindowLimits::default(),
            initial_rtt: Duration::from_millis(100),
        }
    }
}

impl Config {
    /// The payload size per frame for a stream id of `id_len` bytes. The JSON
    /// bound is used for binary frames too, so a stream's chunking does not
    /// depend on the spelling.
    pub fn chunk_for(&self, id_len: usize) -> usize {
        self.max_chunk
            .min(max_payload_len(id_len, self.max_frame_len))
            .max(1)
    }
}

/// The protocol extensions a session may use (see `FEATURE_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Features {
    /// The gateway announces each stream's upstream connection.
    pub stream_ready: bool,
    /// The client may half-close a stream with `stream_shutdown`.
    pub half_close: bool,
    /// Stream bytes may travel as binary messages.
    pub binary_data: bool,
    /// Per-stream and per-session credit windows.
    pub flow_control: bool,
}

impl Features {
    /// No extension: the contract exactly.
    pub const NONE: Features = Features {
        stream_ready: false,
        half_close: false,
        binary_data: false,
        flow_control: false,
    };
    /// Every extension this crate speaks.
    pub const ALL: Features = Features {
        stream_ready: true,
        half_close: true,
        binary_data: true,
        flow_control: true,
    };

    /// The wire names, in a fixed order, as listed in `hello` and `ready`.
    pub fn names(self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.stream_ready {
            names.push(FEATURE_STREAM_READY);
        }
        if self.half_close {
            names.push(FEATURE_HALF_CLOSE);
        }
        if self.binary_data {
            names.push(FEATURE_BINARY_DATA);
        }
        if self.flow_control {
            names.push(FEATURE_FLOW_CONTROL);
        }
        names
    }

    /// Reads a feature list; names this crate does not know are ignored.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Features {
        let mut features = Features::NONE;
        for name in names {
            match name {
                FEATURE_STREAM_READY => features.stream_ready = true,
                FEATURE_HALF_CLOSE => features.half_close = true,
                FEATURE_BINARY_DATA => features.binary_data = true,
                FEATURE_FLOW_CONTROL => features.flow_control = true,
                _ => {}
            }
        }
        features
    }

    /// What both sides listed.
    pub fn intersect(self, other: Features) -> Features {
        Features {
            stream_ready: self.stream_ready && other.stream_ready,
            half_close: self.half_close && other.half_close,
            binary_data: self.binary_data && other.binary_data,
            flow_control: self.flow_control && other.flow_control,
        }
    }
}

/// What the gateway granted in `ready`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session's id, for logs and support.
    pub session_id: String,
    /// Streams that may be open at once.
    pub max_streams: u32,
    /// Extensions both sides agreed on: only those the client offered count,
    /// whatever the gateway lists.
    pub features: Features,
}
