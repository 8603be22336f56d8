//! The UI's TypeScript types, generated from the Rust types (ts-rs), and the
//! typed list of commands and events the shell exposes.
//!
//! `ui/src/bindings.ts` is generated: run
//! `UPDATE_BINDINGS=1 cargo test -p app bindings` after changing a
//! type. The test fails when the file is stale, so the UI cannot drift from
//! the Rust side.

use ts_rs::{Config, TS};

use crate::controller::links::{LinkAdded, LinkShare};
use crate::controller::streams::ExportedLog;
use crate::error::{CommandCode, CommandError};
use crate::log::{LogEntry, LogLevel};
use crate::notice::Notice;
use crate::registry::{Carries, Mode, Protocol, ProtocolInfo};
use crate::settings::{Preferences, ProfileInput, ProfileKind, ProfileView, TransportName};
use crate::tray::{TrayIcon, TraySummary};
use crate::view::{AppEvent, Connection, Overview, StreamsUpdate};
use engine::table::StreamState;
use engine::{EngineEvent, SessionState, Snapshot, StreamInfo, Totals, Warning, WarningCode};
use net::ErrorCode;
use relay_client::{ForwardInfo, ShareStatus};
use routing::{Action, Decision, Rule, RuleKind, RuleSet};

/// A command the shell registers: its name, its arguments (name and
/// TypeScript type) and what it returns.
pub struct CommandSig {
    /// The Tauri command name.
    pub name: &'static str,
    /// Arguments, as the UI passes them.
    pub args: &'static [(&'static str, &'static str)],
    /// The TypeScript type of the result.
    pub returns: &'static str,
}

/// Every command of the shell (`src-tauri/src/commands.rs`). Each fails with
/// a [`CommandError`].
pub const COMMANDS: &[CommandSig] = &[
    CommandSig {
        name: "overview",
        args: &[],
        returns: "Overview",
    },
    CommandSig {
        name: "save_profile",
        args: &[("input", "ProfileInput")],
        returns: "Overview",
    },
    CommandSig {
        name: "remove_profile",
        args: &[("name", "string")],
        returns: "Overview",
    },
    CommandSig {
        name: "select_profile",
        args: &[("name", "string")],
        returns: "Overview",
    },
    CommandSig {
        name: "sign_in",
        args: &[("name", "string"), ("token", "string")],
        returns: "Overview",
    },
    CommandSig {
        name: "sign_out",
        args: &[("name", "string")],
        returns: "Overview",
    },
    CommandSig {
        name: "connect",
        args: &[],
        returns: "Overview",
    },
    CommandSig {
        name: "start_demo",
        args: &[],
        returns: "Overview",
    },
    CommandSig {
        name: "disconnect",
        args: &[],
        returns: "Overview",
    },
    CommandSig {
        name: "publish",
        args: &[("name", "string")],
        returns: "Overview",
    },
    CommandSig {
        name: "start_publish_demo",
        args: &[],
        returns: "Overview",
    },
    CommandSig {
        name: "stop_publishing",
        args: &[],
        returns: "Overview",
    },
    CommandSig {
        name: "share",
        args: &[("name", "string")],
        returns: "Overview",
    },
    CommandSig {
        name: "share_demo",
        args: &[("ports", "number[] | null")],
        returns: "Overview",
    },
    CommandSig {
        name: "stop_share",
        args: &[],
        returns: "Overview",
    },
    CommandSig {
        name: "set_preferences",
        args: &[("prefs", "Preferences")],
        returns: "Overview",
    },
    // Tauri passes arguments in camelCase (`include_secret` → `includeSecret`).
    CommandSig {
        name: "share_link",
        args: &[("name", "string"), ("includeSecret", "boolean")],
        returns: "LinkShare",
    },
    CommandSig {
        name: "add_from_link",
        args: &[
            ("link", "string"),
            ("name", "string | null"),
            ("replace", "boolean"),
        ],
        returns: "LinkAdded",
    },
    CommandSig {
        name: "routing_rules",
        args: &[("name", "string")],
        returns: "RuleSet",
    },
    CommandSig {
        name: "save_routing_rules",
        args: &[("name", "string"), ("routing", "RuleSet")],
        returns: "Overview",
    },
    CommandSig {
        name: "test_route",
        args: &[
            ("routing", "RuleSet"),
            ("host", "string"),
            ("port", "number"),
        ],
        returns: "Decision",
    },
    CommandSig {
        name: "close_stream",
        args: &[("key", "number")],
        returns: "null",
    },
    CommandSig {
        name: "export_log",
        args: &[],
        returns: "ExportedLog",
    },
    CommandSig {
        name: "watch_streams",
        args: &[("feed", "Channel<StreamsUpdate>")],
        returns: "null",
    },
];

/// Events the shell emits to the window: name and payload type. One naming
/// scheme, `httvps://<source>`; the high-rate stream table is not an event
/// but the `watch_streams` channel.
pub const EVENTS: &[(&str, &str)] = &[
    ("httvps://engine", "EngineEvent"),
    ("httvps://app", "AppEvent"),
];

/// The whole `ui/src/bindings.ts`.
pub fn typescript() -> String {
    // JSON numbers: our u64 counters stay far below 2^53.
    let cfg = Config::new().with_large_int("number");
    let decls = [
        SessionState::decl(&cfg),
        StreamState::decl(&cfg),
        Action::decl(&cfg),
        RuleKind::decl(&cfg),
        Rule::decl(&cfg),
        RuleSet::decl(&cfg),
        Decision::decl(&cfg),
        StreamInfo::decl(&cfg),
        Totals::decl(&cfg),
        WarningCode::decl(&cfg),
        Warning::decl(&cfg),
        Snapshot::decl(&cfg),
        ErrorCode::decl(&cfg),
        EngineEvent::decl(&cfg),
        Protocol::decl(&cfg),
        Mode::decl(&cfg),
        Carries::decl(&cfg),
        ProtocolInfo::decl(&cfg),
        ProfileKind::decl(&cfg),
        TransportName::decl(&cfg),
        ProfileView::decl(&cfg),
        ProfileInput::decl(&cfg),
        Preferences::decl(&cfg),
        Connection::decl(&cfg),
        ForwardInfo::decl(&cfg),
        ShareStatus::decl(&cfg),
        LogLevel::decl(&cfg),
        LogEntry::decl(&cfg),
        Notice::decl(&cfg),
        AppEvent::decl(&cfg),
        Overview::decl(&cfg),
        LinkShare::decl(&cfg),
        LinkAdded::decl(&cfg),
        StreamsUpdate::decl(&cfg),
        ExportedLog::decl(&cfg),
        CommandCode::decl(&cfg),
        CommandError::decl(&cfg),
        TrayIcon::decl(&cfg),
        TraySummary::decl(&cfg),
    ];
    let mut out = String::from(
        "// Generated from the Rust types by `UPDATE_BINDINGS=1 cargo test -p app bindings`.\n\
         // Do not edit: change the Rust types and regenerate.\n\n\
         import type { Channel } from \"@tauri-apps/api/core\";\n\n",
    );
    for decl in decls {
        out.push_str("export ");
        out.push_str(&decl);
        out.push_str("\n\n");
    }
    out.push_str(
        "/** Every command: its arguments and its result (errors are `CommandError`). */\n",
    );
    out.push_str("export interface Commands {\n");
    for c in COMMANDS {
        let args: Vec<String> = c.args.iter().map(|(n, t)| format!("{n}: {t}")).collect();
        out.push_str(&format!(
            "  {}: {{ args: {{ {} }}; returns: {} }};\n",
            c.name,
            args.join("; "),
            c.returns
        ));
    }
    out.push_str(
        "}\n\n/** Every event the shell emits, with its payload. */\nexport interface Events {\n",
    );
    for (name, payload) in EVENTS {
        out.push_str(&format!("  \"{name}\": {payload};\n"));
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn repo_file(path: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(path)
    }

    #[test]
    fn bindings_are_up_to_date() {
        let path = repo_file("ui/src/bindings.ts");
        let fresh = typescript();
        if std::env::var_os("UPDATE_BINDINGS").is_some() {
            std::fs::write(&path, &fresh).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == fresh,
            "ui/src/bindings.ts is stale: run `UPDATE_BINDINGS=1 cargo test -p app bindings`"
        );
        assert!(!fresh.contains("bigint"), "counters must be plain numbers");
    }

    /// The shell registers exactly these commands (forwarded to the tray
    /// process in `forward!`, or written out), its capability allows each
    /// of them, and the build script declares them.
    #[test]
    fn the_shell_registers_and_allows_every_command() {
        let commands = std::fs::read_to_string(repo_file("src-tauri/src/commands.rs")).unwrap();
        let build = std::fs::read_to_string(repo_file("src-tauri/build.rs")).unwrap();
        let capability =
            std::fs::read_to_string(repo_file("src-tauri/capabilities/main-window.json")).unwrap();
        let forwarded: Vec<&str> = commands
            .split_once("forward! {\n")
            .and_then(|(_, rest)| rest.split_once("\n}"))
            .map(|(list, _)| list.lines().filter_map(|l| l.trim().split_once('(')))
            .into_iter()
            .flatten()
            .map(|(name, _)| name)
            .collect();
        let written: Vec<&str> = commands
            .split("#[tauri::command]\npub async fn ")
            .skip(1)
            .filter_map(|rest| rest.split_once('(').map(|(name, _)| name))
            .collect();
        let mut registered: Vec<&str> = forwarded.iter().chain(&written).copied().collect();
        registered.sort_unstable();
        let mut listed: Vec<&str> = COMMANDS.iter().map(|c| c.name).collect();
        listed.sort_unstable();
        assert_eq!(registered, listed, "commands.rs registers exactly COMMANDS");
        for c in COMMANDS {
            assert!(
                build.contains(&format!("\"{}\"", c.name)),
                "build.rs lacks {}",
                c.name
            );
            let permission = format!("\"allow-{}\"", c.name.replace('_', "-"));
            assert!(
                capability.contains(&permission),
                "capability lacks {permission}"
            );
        }
    }
}
