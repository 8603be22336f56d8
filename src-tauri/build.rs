//! Builds the app context from the root tauri.conf.json (linked from here as
//! src-tauri/tauri.conf.json, where the Tauri CLI also looks), and declares
//! the app's own commands so that each gets an `allow-…` permission: the
//! window's capability then allows exactly these and nothing else.

/// Kept in step with `app::bindings::COMMANDS` (a test checks).
const COMMANDS: &[&str] = &[
    "overview",
    "save_profile",
    "remove_profile",
    "select_profile",
    "sign_in",
    "sign_out",
    "connect",
    "start_demo",
    "disconnect",
    "publish",
    "start_publish_demo",
    "stop_publishing",
    "share",
    "share_demo",
    "stop_share",
    "set_preferences",
    "share_link",
    "add_from_link",
    "routing_rules",
    "save_routing_rules",
    "test_route",
    "close_stream",
    "export_log",
    "watch_streams",
];

fn main() {
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS)),
    )
    .expect("tauri-build failed");
}
