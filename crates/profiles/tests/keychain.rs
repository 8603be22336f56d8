//! The keychain code against a real Secret Service (gnome-keyring under
//! dbus-run-session, as scripts/test runs the suite). Where none is running
//! the test says so and passes, unless HTTVPS_REQUIRE_KEYRING=1 (set by
//! scripts/test), which makes a missing keychain a failure.

use net::Secret;
use profiles::{KeyringStore, SecretKind, SecretStore, account};

fn keychain_expected() -> bool {
    std::env::var("HTTVPS_REQUIRE_KEYRING").is_ok_and(|v| v == "1")
}

#[test]
fn secrets_round_trip_through_the_os_keychain() {
    let store = KeyringStore::with_service(format!("httvps-test-{}", std::process::id()));
    let acct = account("keychain-test", SecretKind::new("session-token"));
    match store.get(&acct) {
        Ok(_) => {}
        Err(e) if !keychain_expected() => {
            eprintln!("no Secret Service here ({e}); run under scripts/test to exercise it");
            return;
        }
        Err(e) => panic!("the keychain must work under scripts/test: {e}"),
    }
    let _ = store.delete(&acct);
    assert!(store.get(&acct).unwrap().is_none());
    store.set(&acct, &Secret::from("s3cret-token")).unwrap();
    assert_eq!(store.get(&acct).unwrap().unwrap().expose(), "s3cret-token");
    // A second store (another process would do the same) sees it: it is
    // really in the keychain, not in memory.
    let other = KeyringStore::with_service(format!("httvps-test-{}", std::process::id()));
    assert_eq!(other.get(&acct).unwrap().unwrap().expose(), "s3cret-token");
    store.set(&acct, &Secret::from("rotated")).unwrap();
    assert_eq!(other.get(&acct).unwrap().unwrap().expose(), "rotated");
    assert!(store.delete(&acct).unwrap());
    assert!(!store.delete(&acct).unwrap());
    assert!(other.get(&acct).unwrap().is_none());
}
