//! `httvps publish`: publishes a local web app through an HLHV queen and
//! prints each request it serves, until Ctrl-C.

use std::process::ExitCode;

use anyhow::bail;
use app::Profile;
use engine::{Engine, PublishOptions, SessionState};
use hlhv_cell::{CELL_KEY, HlhvProfile};

use crate::args::{CellArgs, Global, PublishArgs};
use crate::connect::{control_server, follow, profile_store};
use crate::saved::{self, Wanted};

pub async fn run(global: &Global, args: PublishArgs) -> anyhow::Result<ExitCode> {
    let store = profile_store(global)?;
    let (profile, saved) = match (&args.profile, &args.cell.queen) {
        (_, Some(_)) => {
            let mut profile = cell_profile("command-line", &args.cell)?;
            profile.ca_file = args.ca.clone().map(crate::connect::absolute);
            profile.pin_sha256 = args.pin.clone();
            profile.sni = args.sni.clone();
            (profile, false)
        }
        (name, None) => {
            let wanted = Wanted {
                command: "publish",
                protocol: "an HLHV",
                flags: "--queen HOST:PORT --mount HOST/PATH --to URL",
                flag_names: "--queen, --mount, --to",
                login: "httvps login",
            };
            let profile = saved::pick(&store, name.as_deref(), &wanted, |p| match p {
                Profile::Hlhv(h) => Some(h),
                _ => None,
            })?;
            (profile, true)
        }
    };
    let key = saved::secret(
        global,
        &profile.name,
        CELL_KEY,
        saved,
        args.key_stdin,
        "HTTVPS_CELL_KEY",
    )?;
    let publisher = hlhv_cell::launch::publisher(&profile, key)?;
    let options = hlhv_cell::launch::publish_options(&profile, publisher, args.reconnect);
    publish(global, options, args.json, None).await
}

/// An HLHV profile from `--queen`, `--mount`, `--to` and the limits.
pub fn cell_profile(name: &str, cell: &CellArgs) -> anyhow::Result<HlhvProfile> {
    let (Some(queen), Some(mount), Some(to)) = (&cell.queen, &cell.mount, &cell.to) else {
        bail!("an HLHV profile needs --queen HOST:PORT, --mount HOST/PATH and --to URL");
    };
    let mut profile = HlhvProfile::new(name, queen.clone(), mount.clone(), to.clone());
    profile.max_body = cell.max_body;
    profile.public_url = cell.public_url.clone();
    profile.check()?;
    Ok(profile)
}

/// Publishes until Ctrl-C/SIGTERM or until the engine gives up; prints the
/// public address once the queen has accepted the mount, then each request.
/// `banner` is printed with it (the demo's instructions).
pub async fn publish(
    global: &Global,
    options: PublishOptions,
    json: bool,
    banner: Option<String>,
) -> anyhow::Result<ExitCode> {
    let engine = Engine::new();
    let events = engine.subscribe();
    engine.publish(options)?;
    let _control = control_server(global, &engine).await;
    let announcer = tokio::spawn(announce(engine.clone(), json, banner));
    let code = follow(&engine, events, json).await;
    announcer.abort();
    engine.stop().await;
    code
}

/// Waits for the first active publication and prints where it is reached
/// (the state line alone does not say).
async fn announce(engine: Engine, json: bool, banner: Option<String>) {
    let mut states = engine.watch_state();
    loop {
        if matches!(*states.borrow_and_update(), SessionState::Active { .. }) {
            let endpoints = engine.snapshot().endpoints;
            if json {
                let data = serde_json::json!({ "endpoints": endpoints });
                println!(
                    "{}",
                    serde_json::json!({ "type": "published", "data": data })
                );
            } else {
                for endpoint in &endpoints {
                    println!("published at {endpoint}");
                }
                if let Some(text) = &banner {
                    println!("{text}");
                }
            }
            return;
        }
        if states.changed().await.is_err() {
            return;
        }
    }
}
