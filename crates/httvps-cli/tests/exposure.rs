//! `httvps connect` warns, loudly, when its local proxy listens beyond
//! loopback without a user name and password: a sentence on stderr, a
//! warn-level log line, and `warnings` in the `--json` `listening` line.
//! The gateway is a closed port: the proxy is bound (and the warning
//! printed) before the first connect fails and the client exits.

mod cli;

use std::time::Duration;

use cli::HTTVPS;
use serde_json::Value;
use tokio::process::Command;

const SENTENCE: &str = "anyone who can reach this address can use your tunnel";

/// Runs `httvps connect --json` against a closed port with `--listen
/// listen` plus `extra`; returns (its `listening` event, its stderr).
async fn run(listen: &str, extra: &[&str], envs: &[(&str, &str)]) -> (Value, String) {
    let home = tempfile::tempdir().unwrap();
    let gateway = format!("wss://127.0.0.1:{}/ws", testkit::closed_port().port());
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new(HTTVPS)
            .args([
                "connect",
                "--gateway",
                &gateway,
                "--listen",
                listen,
                "--json",
            ])
            .args(extra)
            .env("HTTVPS_CONFIG", home.path().join("profiles.toml"))
            .env("HTTVPS_CONTROL_FILE", home.path().join("control.json"))
            .env("HTTVPS_SESSION_TOKEN", "exposure-test-token")
            .env_remove("HTTVPS_PROXY_PASSWORD")
            .env_remove("RUST_LOG")
            .envs(envs.iter().copied())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("httvps exits once the connect fails")
    .expect("run httvps");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let listening = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["type"] == "listening")
        .unwrap_or_else(|| panic!("no listening line; stdout:\n{stdout}\nstderr:\n{stderr}"));
    (listening, stderr)
}

#[tokio::test]
async fn a_proxy_on_every_interface_without_credentials_is_announced_loudly() {
    let (listening, stderr) = run("0.0.0.0:0", &[], &[]).await;
    let proxy = listening["data"]["proxy"].as_str().unwrap();
    assert!(proxy.starts_with("0.0.0.0:"), "{proxy}");
    // The sentence for people, with the flags that fix it.
    let line = stderr
        .lines()
        .find(|l| l.starts_with("WARNING: "))
        .unwrap_or_else(|| panic!("no WARNING line on stderr:\n{stderr}"));
    assert!(
        line.contains(&format!("the local proxy listens on {proxy}")),
        "{line}"
    );
    assert!(line.contains(SENTENCE), "{line}");
    assert!(
        line.contains("--listen 127.0.0.1:") && line.contains("--proxy-user"),
        "{line}"
    );
    // The warn-level log line (the CLI logs at warn by default).
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("WARN") && l.contains("engine") && l.contains(SENTENCE)),
        "no warn log line:\n{stderr}"
    );
    // Scripts get it in the listening line.
    let warnings = listening["data"]["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{listening}");
    assert_eq!(warnings[0]["code"], "open_proxy");
    assert_eq!(warnings[0]["addr"], proxy);
}

#[tokio::test]
async fn loopback_or_a_proxy_user_is_not_warned_about() {
    for (listen, extra, envs) in [
        ("127.0.0.1:0", &[][..], &[][..]),
        ("[::1]:0", &[][..], &[][..]),
        (
            "0.0.0.0:0",
            &["--proxy-user", "me"][..],
            &[("HTTVPS_PROXY_PASSWORD", "exposure-test-password")][..],
        ),
    ] {
        let (listening, stderr) = run(listen, extra, envs).await;
        assert_eq!(
            listening["data"]["warnings"],
            serde_json::json!([]),
            "{listen}"
        );
        assert!(!stderr.contains("WARNING:"), "{listen}:\n{stderr}");
        assert!(!stderr.contains(SENTENCE), "{listen}:\n{stderr}");
    }
}
