//! The app layer, without WebKit: the only library that names every
//! protocol. It holds the [`Profile`] enum (one variant per protocol) and the
//! protocol [`registry`], and on top of them settings, sign-in to the
//! keychain, connect / demo / disconnect over the [`engine`], the tray's
//! summary, desktop notices, the log, and "set as system proxy". The CLI and
//! the desktop app only call it.
//!
//! The desktop app's tray process (`crates/desktop-tray`) runs the
//! [`Controller`]; its window (`src-tauri/`) reaches it over [`remote`]. This
//! crate builds and tests without a display. [`bindings`] generates the
//! UI's TypeScript types from the types here and in the engine.
#![warn(missing_docs)]

pub mod bindings;
pub mod controller;
pub mod error;
pub mod link;
pub mod log;
pub mod notice;
pub mod profile;
pub mod registry;
pub mod remote;
pub mod settings;
pub mod sysproxy;
pub mod tray;
pub mod view;

pub use controller::links::{LinkAdded, LinkShare};
pub use controller::streams::ExportedLog;
pub use controller::{Autostart, Controller, Parts};
pub use error::{CommandCode, CommandError};
pub use log::{LogEntry, LogLevel};
pub use notice::Notice;
pub use profile::Profile;
pub use registry::{Mode, Protocol, ProtocolInfo, registry};
pub use routing::{Action, Decision, Rule, RuleKind, RuleSet};
pub use settings::{
    MemoryStorage, Preferences, ProfileInput, ProfileKind, ProfileView, Settings, SettingsStorage,
};
pub use tray::{TrayIcon, TraySummary};
pub use view::{AppEvent, Connection, Overview, StreamsUpdate};
