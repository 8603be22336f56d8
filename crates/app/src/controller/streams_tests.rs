use engine::table::StreamState;
use routing::Action;

use super::*;

fn row(key: u64, target: &str, state: StreamState, reason: Option<&str>) -> StreamInfo {
    StreamInfo {
        key,
        stream_id: Some(format!("s{key}")),
        target: target.into(),
        client: "127.0.0.1:50000".into(),
        protocol: "socks5".into(),
        started_unix: 1_796_643_082,
        ended_unix: (state == StreamState::Closed).then_some(1_796_643_090),
        bytes_up: 10,
        bytes_down: 2_000,
        rate_up: 1.4,
        rate_down: 99.6,
        state,
        close_reason: reason.map(str::to_owned),
        wait_ms: 3,
        route: Some(Action::Direct),
        rule: Some("rule 2: domain-suffix corp.example → direct".into()),
    }
}

#[test]
fn the_csv_has_every_column_and_quotes_what_needs_it() {
    let rows = [
        row(7, "example.com:443", StreamState::Open, None),
        row(
            3,
            "127.0.0.1:2967",
            StreamState::Closed,
            Some("read failed: \"reset\", twice"),
        ),
        StreamInfo {
            route: None,
            rule: None,
            stream_id: None,
            target: "=cmd|' /C calc'!A0".into(),
            ..row(9, "", StreamState::Opening, None)
        },
    ];
    let csv = connections_csv(&rows);
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert_eq!(lines[0], CSV_HEADER);
    assert_eq!(lines[0].split(',').count(), 17);
    assert_eq!(
        lines[1],
        "7,s7,socks5,example.com:443,127.0.0.1:50000,direct,\
         rule 2: domain-suffix corp.example → direct,open,2026-12-07 11:31:22,\
         1796643082,,10,2000,1,100,3,"
    );
    assert!(
        lines[2].ends_with(",closed,2026-12-07 11:31:22,1796643082,1796643090,10,2000,1,100,3,\"read failed: \"\"reset\"\", twice\""),
        "{}",
        lines[2]
    );
    assert!(lines[2].contains(",127.0.0.1:2967,"));
    // A formula is defused, and empty fields stay empty.
    assert!(lines[3].starts_with("9,,socks5,'=cmd|' /C calc'!A0,127.0.0.1:50000,,,opening,"));
    assert_eq!(lines[4], "", "CRLF after the last row too");
}

#[test]
fn the_log_is_one_line_per_entry_with_utc_time() {
    let entries = [
        LogEntry {
            at_ms: 1_796_643_082_123,
            level: LogLevel::Info,
            code: None,
            message: "Connected.".into(),
        },
        LogEntry {
            at_ms: 1_796_643_083_004,
            level: LogLevel::Error,
            code: Some("auth_failed".into()),
            message: "Refused\nby the gateway".into(),
        },
    ];
    assert_eq!(
        log_text(&entries),
        "2026-12-07T11:31:22.123Z  INFO   Connected.\n\
         2026-12-07T11:31:23.004Z  ERROR  [auth_failed] Refused by the gateway\n"
    );
}

#[test]
fn secrets_are_masked() {
    let cases = [
        (
            "added httvps://add?v=1&p=eyJh&s=c2VjcmV0 ok",
            "added httvps://add?v=1&p=eyJh&s=<redacted> ok",
        ),
        ("GET /x?token=abc123&y=2", "GET /x?token=<redacted>&y=2"),
        (
            "Authorization: Bearer f00dfeed next",
            "Authorization: Bearer <redacted> next",
        ),
        (
            "proxy http://alice:hunter2@proxy.example:3128/ failed",
            "proxy http://alice:<redacted>@proxy.example:3128/ failed",
        ),
        ("secret=\"x y\"", "secret=\"x y\""),
        // Not secrets: a word ending in `key=` or `s=`, a URL without a
        // password, plain text.
        ("monkey=1 rules=3", "monkey=1 rules=3"),
        (
            "wss://gw.example/ws and https://user@host/",
            "wss://gw.example/ws and https://user@host/",
        ),
        (
            "Signed in; the token is in the keychain.",
            "Signed in; the token is in the keychain.",
        ),
    ];
    for (text, masked) in cases {
        assert_eq!(redact(text), masked, "{text}");
    }
}

#[test]
fn utc_dates_are_right_across_leap_years() {
    assert_eq!(utc(0, false), "1970-01-01 00:00:00");
    assert_eq!(utc(951_782_400_000, false), "2000-02-29 00:00:00");
    assert_eq!(utc(1_709_251_199_999, true), "2024-02-29T23:59:59.999Z");
    assert_eq!(file_stamp(1_796_643_082_123), "20261207-113122");
}

#[test]
fn an_export_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_new(dir.path(), "httvps-log-x", "txt", "one").unwrap();
    let second = write_new(dir.path(), "httvps-log-x", "txt", "two").unwrap();
    assert_eq!(first, dir.path().join("httvps-log-x.txt"));
    assert_eq!(second, dir.path().join("httvps-log-x-2.txt"));
    assert_eq!(std::fs::read_to_string(first).unwrap(), "one");
}
