//! `httvps share`: shares local TCP ports through a relay until Ctrl-C,
//! printing the tunnel (id, address, public forwards), its seed states
//! (reconnecting, …) and each connection through it.

use std::net::Ipv4Addr;
use std::process::ExitCode;

use anyhow::{Context, bail};
use app::Profile;
use demo::{DemoPage, DemoRelay};
use engine::{Engine, PublishOptions};
use profiles::KeyringStore;
use relay_client::{PrivateKey, RELAY_TOKEN, RelayProfile, ShareStatus};
use tokio::sync::watch;

use crate::args::{Global, RelayArgs, ShareArgs};
use crate::connect::{absolute, control_server, follow, profile_store};
use crate::saved::{self, Wanted};

pub async fn run(global: &Global, args: ShareArgs) -> anyhow::Result<ExitCode> {
    let store = profile_store(global)?;
    let (profile, saved) = match (&args.profile, &args.relay.relay) {
        (_, Some(_)) => {
            let mut profile = relay_profile("command-line", &args.relay)?;
            profile.ca_file = args.ca.clone().map(absolute);
            profile.pin_sha256 = args.pin.clone();
            profile.sni = args.sni.clone();
            profile.check()?;
            (profile, false)
        }
        (name, None) => {
            let wanted = Wanted {
                command: "share",
                protocol: "a Relay",
                flags: "--relay HOST:PORT --name NAME --port PORT",
                flag_names: "--relay, --name, --port",
                login: "httvps login --relay",
            };
            let profile = saved::pick(&store, name.as_deref(), &wanted, |p| match p {
                Profile::Relay(r) => Some(r),
                _ => None,
            })?;
            (profile, true)
        }
    };
    let token = saved::secret(
        global,
        &profile.name,
        RELAY_TOKEN,
        saved,
        args.token_stdin,
        "HTTVPS_RELAY_TOKEN",
    )?;
    let key = device_key(global);
    let publisher = relay_client::launch::publisher(&profile, token, key)?;
    let status = publisher.status();
    let options = relay_client::launch::publish_options(publisher);
    share(global, options, status, args.json, None).await
}

/// A Relay profile from `--relay`, `--name` and `--port`.
pub fn relay_profile(name: &str, relay: &RelayArgs) -> anyhow::Result<RelayProfile> {
    let (Some(host), Some(tunnel)) = (&relay.relay, &relay.name) else {
        bail!("a Relay profile needs --relay HOST:PORT, --name NAME and at least one --port PORT");
    };
    Ok(RelayProfile::new(
        name,
        host.clone(),
        tunnel.clone(),
        relay.ports.clone(),
    ))
}

/// This device's WireGuard key from the keychain (made on first use); a
/// key for this run only when there is no keychain (a server without a
/// Secret Service), which the relay accepts as well: it is sent at register.
fn device_key(global: &Global) -> PrivateKey {
    let store = KeyringStore::with_service(&global.keyring_service);
    match relay_client::launch::device_key(&store) {
        Ok(key) => key,
        Err(e) => {
            tracing::warn!("{e}; using a WireGuard key for this run only");
            PrivateKey::generate()
        }
    }
}

/// `httvps demo --share`: an embedded relay on loopback sharing a local
/// page's port.
pub async fn run_demo(global: &Global, json: bool) -> anyhow::Result<ExitCode> {
    let relay = DemoRelay::start(Ipv4Addr::LOCALHOST.into()).await?;
    let page = DemoPage::start()
        .await
        .context("starting the demo web page")?;
    let port = page.port();
    let (options, publisher) = relay.publish_options("demo", vec![port])?;
    let banner = format!(
        "demo relay on {} (self-signed, loopback only), sharing the demo page's port {port}\n\
         try it: curl http://PUBLIC/ with the public forward above; Ctrl-C stops.",
        relay.addr()
    );
    let code = share(global, options, publisher.status(), json, Some(banner)).await;
    drop(page);
    relay.shutdown().await;
    code
}

/// Shares until Ctrl-C/SIGTERM or until the share ends.
async fn share(
    global: &Global,
    options: PublishOptions,
    status: watch::Receiver<ShareStatus>,
    json: bool,
    banner: Option<String>,
) -> anyhow::Result<ExitCode> {
    let engine = Engine::new();
    let events = engine.subscribe();
    engine.publish(options)?;
    let _control = control_server(global, &engine).await;
    let reporter = tokio::spawn(report(status, json, banner));
    let code = follow(&engine, events, json).await;
    reporter.abort();
    engine.stop().await;
    code
}

/// Prints the tunnel each time it becomes active (first time and after a
/// resume), and the seed states the engine does not see.
async fn report(mut status: watch::Receiver<ShareStatus>, json: bool, banner: Option<String>) {
    let mut last_state = String::new();
    let mut banner = banner;
    loop {
        let now = status.borrow_and_update().clone();
        if now.state != last_state {
            last_state = now.state.clone();
            print_state(&now, json, banner.take());
        }
        if status.changed().await.is_err() {
            return;
        }
    }
}

fn print_state(status: &ShareStatus, json: bool, banner: Option<String>) {
    if json {
        let kind = if status.state == "active" {
            "shared"
        } else {
            "share_state"
        };
        let data = serde_json::to_value(status).unwrap_or_default();
        println!("{}", serde_json::json!({ "type": kind, "data": data }));
        return;
    }
    match status.state.as_str() {
        "active" => {
            println!(
                "tunnel {} at {} through {}",
                status.tunnel_id.as_deref().unwrap_or("?"),
                status.address.as_deref().unwrap_or("?"),
                status.relay
            );
            for forward in &status.forwards {
                println!("shared 127.0.0.1:{} at {}", forward.port, forward.public);
            }
            if let Some(text) = banner {
                println!("{text}");
            }
        }
        "reconnecting" => println!(
            "relay: reconnecting{}",
            status
                .error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        ),
        other => println!("relay: {other}"),
    }
}
