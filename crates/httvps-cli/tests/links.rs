//! Share links on the command line (docs/links.md): `httvps link` prints a
//! saved profile's link, `httvps login --link` saves the profile a link
//! carries. Each run has its own profiles file and keychain service.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use app::Profile;
use app::link::{LinkContents, ShareLink};
use ht_client::HtProfile;
use net::Secret;

const HTTVPS: &str = env!("CARGO_BIN_EXE_httvps");
const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// Runs `httvps ARGS` on the profiles file `config`, with `stdin` as input.
fn run(config: &Path, service: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(HTTVPS)
        .args(args)
        .env("HTTVPS_CONFIG", config)
        .env("HTTVPS_KEYRING_SERVICE", service)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start httvps");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An HT profile file with one profile, "ht", whose CA file stays out of
/// links.
fn profile_file(dir: &Path) -> (std::path::PathBuf, HtProfile) {
    let config = dir.join("profiles.toml");
    std::fs::write(
        &config,
        "default = \"ht\"\n[[profile]]\nprotocol = \"ht\"\nname = \"ht\"\nurl = \"https://ht.example:8443\"\nca_file = \"/etc/ht-ca.pem\"\nconnections = 2\n",
    )
    .unwrap();
    let mut expected = HtProfile::new("ht", "https://ht.example:8443");
    expected.connections = Some(2);
    (config, expected)
}

#[test]
fn a_saved_profile_prints_as_a_link_and_a_secret_link_is_refused_in_argv() {
    let dir = tempfile::tempdir().unwrap();
    let (config, expected) = profile_file(dir.path());
    let service = format!("httvps-links-test-{}", std::process::id());

    let out = run(&config, &service, &["link", "-p", "ht"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let link = text(&out.stdout).trim().to_owned();
    assert!(link.starts_with("httvps://add?v=1&p="), "{link}");
    let read = LinkContents::parse(&link).unwrap();
    assert_eq!(read.profile, Profile::Ht(expected.clone()));
    assert!(read.secret.is_none());
    assert!(
        text(&out.stderr).contains("ca_file"),
        "{}",
        text(&out.stderr)
    );

    let qr = run(&config, &service, &["link", "-p", "ht", "--qr"], "");
    let shown = text(&qr.stdout);
    assert!(
        shown.starts_with(&link) && shown.lines().count() > 10,
        "{shown}"
    );

    // A link with its secret on the command line: refused, nothing saved.
    let before = std::fs::read_to_string(&config).unwrap();
    let secret_link = ShareLink::create(&Profile::Ht(expected), Some(&Secret::new(KEY))).unwrap();
    let out = run(
        &config,
        &service,
        &["login", "--link", secret_link.as_str(), "-p", "copy"],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("httvps login --link -"), "{err}");
    assert!(!err.contains(KEY) && !text(&out.stdout).contains(KEY));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before);

    // Not a link; a link with server flags (usage error).
    let out = run(&config, &service, &["login", "--link", "https://x/"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not an httvps profile link"));
    let out = run(
        &config,
        &service,
        &["login", "--link", &link, "--ht", "https://y"],
        "",
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    // No such profile.
    let out = run(&config, &service, &["link", "-p", "nobody"], "");
    assert_eq!(out.status.code(), Some(1));
}

/// Whether this run must use the real keychain (scripts/test runs the
/// suite inside a D-Bus session with an unlocked gnome-keyring).
fn keychain_required() -> bool {
    std::env::var("HTTVPS_REQUIRE_KEYRING").is_ok_and(|v| v == "1")
}

#[test]
fn login_from_a_link_files_its_secret_and_the_link_comes_back_with_it() {
    if !keychain_required() {
        eprintln!("no Secret Service required here; scripts/test runs this against gnome-keyring");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (config, expected) = profile_file(dir.path());
    let service = format!("httvps-links-test-{}", std::process::id());
    let profile = Profile::Ht(expected);

    // The secret travels on stdin with the link.
    let secret_link = ShareLink::create(&profile, Some(&Secret::new(KEY))).unwrap();
    let out = run(
        &config,
        &service,
        &["login", "--link", "-", "-p", "copy"],
        &format!("{}\n", secret_link.as_str()),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.contains("\"copy\"") && said.contains("came with the link"),
        "{said}"
    );
    assert!(!said.contains(KEY));
    assert!(!std::fs::read_to_string(&config).unwrap().contains(KEY));
    let listed = text(&run(&config, &service, &["profiles"], "").stdout);
    assert!(
        listed.contains("copy") && listed.contains("key in keychain"),
        "{listed}"
    );

    // The copy shares back with the same secret, only when asked.
    let out = run(
        &config,
        &service,
        &["link", "-p", "copy", "--with-secret"],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("contains the profile's secret"));
    let back = LinkContents::parse(text(&out.stdout).trim()).unwrap();
    assert_eq!(back.secret.as_ref().map(Secret::expose), Some(KEY));
    assert_eq!(back.profile.name(), "copy");
    let back = back.renamed("ht").unwrap();
    assert_eq!(back.profile, profile);

    // A link without its secret: the key is asked for, as `login` does.
    let plain = ShareLink::create(&profile, None).unwrap();
    let out = run(
        &config,
        &service,
        &["login", "--link", plain.as_str(), "-p", "other"],
        &format!("{KEY}\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&run(&config, &service, &["profiles"], "").stdout);
    assert!(listed.contains("other"), "{listed}");

    for name in ["copy", "other"] {
        let out = run(&config, &service, &["logout", "-p", name, "--forget"], "");
        assert!(
            text(&out.stdout).contains("removed 1 secret"),
            "{}",
            text(&out.stdout)
        );
    }
}
