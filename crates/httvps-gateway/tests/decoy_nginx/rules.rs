//! The rules the decoy follows (each module of `server_kit::decoy` states
//! its own), one or more cases each, where the curated probes leave them
//! untested: nginx decides, case by case, that the decoy has them right.

use super::cases::{Case, H, case, get};

/// `modified` (an IMF-fixdate) in the other layouts nginx reads, and with
/// the slack it allows.
fn date_forms(modified: &str) -> Vec<(&'static str, String)> {
    let parts: Vec<&str> = modified.split(' ').collect();
    let [weekday, day, month, year, time, _] = parts[..] else {
        panic!("not an HTTP date: {modified}")
    };
    let weekday = weekday.trim_end_matches(',');
    let short_year = &year[2..];
    let asctime_day = format!("{:>2}", day.trim_start_matches('0'));
    vec![
        (
            "rfc850",
            format!("{weekday}day, {day}-{month}-{short_year} {time} GMT"),
        ),
        (
            "asctime",
            format!("{weekday} {month} {asctime_day} {time} {year}"),
        ),
        ("no zone", format!("{weekday}, {day} {month} {year} {time}")),
        (
            "other zone",
            format!("{weekday}, {day} {month} {year} {time} UTC"),
        ),
        (
            "any weekday",
            format!("Xyz, {day} {month} {year} {time} GMT"),
        ),
        ("no weekday", format!(", {day} {month} {year} {time} GMT")),
        (
            "spaces after the comma",
            format!("{weekday},   {day} {month} {year} {time} GMT"),
        ),
        (
            "upper-case month",
            format!(
                "{weekday}, {day} {} {year} {time} GMT",
                month.to_uppercase()
            ),
        ),
        (
            "misspelt month",
            format!("{weekday}, {day} {}xx {year} {time} GMT", &month[..1]),
        ),
        (
            "lower-case month",
            format!(
                "{weekday}, {day} {} {year} {time} GMT",
                month.to_lowercase()
            ),
        ),
        (
            "two spaces before the month",
            format!("{weekday}, {day}  {month} {year} {time} GMT"),
        ),
        ("trailing junk", format!("{modified}xx")),
    ]
}

/// The rules the decoy follows (see each of its modules), one or more
/// cases each, where the curated probes leave them untested.
pub fn rules(etag: &str, modified: &str) -> Vec<Case> {
    let mut out = Vec::new();
    let mut add = |name: &str, request: String| out.push(case(format!("rule: {name}"), request));
    let one_with = |header: &str| get("/style.css", &format!("{header}\r\n"));
    let post = |path: &str, extra: &str| format!("POST {path} HTTP/1.1\r\n{H}{extra}\r\n");
    let chunked = |path: &str, body: &str| {
        format!(
            "GET {path} HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n{body}GET /app.js HTTP/1.1\r\n{H}\r\n"
        )
    };

    // The request line.
    for (name, line) in [
        ("trailing spaces", "GET / HTTP/1.1  "),
        ("minor 0000", "GET / HTTP/1.0000"),
        ("minor 999", "GET / HTTP/1.999"),
        ("minor 1000", "GET / HTTP/1.1000"),
        ("major 01", "GET / HTTP/01.1"),
        ("major 11 without minor", "GET / HTTP/11"),
        ("major 2 and junk", "GET / HTTP/2x"),
        ("major 1 without minor", "GET / HTTP/1 "),
        ("tab before the version", "GET /\tHTTP/1.1"),
        ("tab after the version", "GET / HTTP/1.1\t"),
        ("junk after the version", "GET / HTTP/1.1 x"),
        ("two CRs", "GET / HTTP/1.1\r"),
        ("leading space", " GET / HTTP/1.1"),
        ("leading CR", "\rGET / HTTP/1.1"),
        ("odd method", "FOO_-BAR / HTTP/1.1"),
        ("DEL in the path", "GET /a\x7f HTTP/1.1"),
        ("absolute, upper case", "GET HTTP://A/sub HTTP/1.1"),
        (
            "absolute, odd scheme and port",
            "GET h2://a-b.c:80/sub HTTP/1.1",
        ),
        ("absolute, IPv6 literal", "GET http://[a:b]:1/sub HTTP/1.1"),
        ("absolute, trailing dot", "GET http://a./sub HTTP/1.1"),
        ("absolute, digit scheme", "GET 1h://a/ HTTP/1.1"),
        ("absolute, one slash", "GET http:/a/ HTTP/1.1"),
        ("absolute, underscore", "GET http://a_b/ HTTP/1.1"),
        ("absolute, bad port", "GET http://a:8x/ HTTP/1.1"),
        ("absolute, junk after ]", "GET http://[::1]x/ HTTP/1.1"),
        ("absolute, dot host", "GET http://./sub HTTP/1.1"),
    ] {
        add(name, format!("{line}\r\n{H}\r\n"));
    }
    // HTTP/0.9.
    for (name, line) in [
        ("0.9 trailing space", "GET / \r\n"),
        ("0.9 tab", "GET /\t\r\n"),
        ("0.9 redirect", "GET /sub\r\n"),
        ("0.9 POST", "POST /\r\n"),
        ("0.9 absolute, host only", "GET http://a\r\n"),
        ("0.9 absolute, host and space", "GET http://a \r\n"),
        ("0.9 absolute, query", "GET http://a?x\r\n"),
        (
            "0.9 after 1.1",
            "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /app.js\r\n",
        ),
    ] {
        add(name, line.to_owned());
    }
    // Header lines.
    for (name, header) in [
        ("space before the colon", "Host : x\r\n"),
        ("tabs in a value", "X:\t1\t\r\n"),
        ("controls in a value", "X: a\x01\x7fb\r\n"),
        ("two CRs", "X-A: a\r\r\n"),
        ("CR then space", "X-A: a\r \r\n"),
        ("name only, two CRs", "X\r\r\n"),
        ("odd name", "X;: 1\r\n"),
        ("8-bit name", "\u{e9}: 1\r\n"),
        ("no colon, no value", "X-A\r\n"),
        ("empty value", "X-A:\r\n"),
    ] {
        add(name, get("/", header));
    }
    add(
        "two CRs on the empty line",
        format!("GET / HTTP/1.1\r\n{H}\r\r\n"),
    );
    add(
        "Host with two CRs",
        "GET / HTTP/1.1\r\nHost: x\r\r\n\r\n".into(),
    );
    add(
        "underscore in Host",
        "GET / HTTP/1.1\r\nHo_st: x\r\n\r\n".into(),
    );
    // Hosts (on a redirect, which shows the host taken).
    for host in [
        "\tx",
        "x\t",
        ".x",
        "x.",
        ".",
        "..",
        "[::1",
        "::1",
        "[a]b]",
        "x:",
        "x:a/b",
        "x:80:90",
        "a\\b",
        "a.:1",
        "a..:1",
        "A]b",
        " ",
        "Ev!L.Example.:99999",
    ] {
        add(
            &format!("Host {host:?}"),
            format!("GET /sub HTTP/1.1\r\nHost: {host}\r\n\r\n"),
        );
    }
    add(
        "HTTP/1.0 empty Host",
        "GET / HTTP/1.0\r\nHost:\r\n\r\n".into(),
    );
    // Connection.
    for (name, request) in [
        ("substring close", get("/", "Connection: xclosex\r\n")),
        (
            "keep-alive then close",
            get("/", "Connection: keep-alive, close\r\n"),
        ),
        ("tab then close", get("/", "Connection:\tclose\r\n")),
        (
            "1.0 close then keep-alive",
            "GET / HTTP/1.0\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n".into(),
        ),
        (
            "1.0 keep-alive then foo",
            "GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: foo\r\n\r\n".into(),
        ),
    ] {
        add(name, request);
    }
    // User agents: padding, and no keep-alive after a POST from old MSIE.
    for agent in [
        "Chrome/1 Gecko/1",
        "Chrome/1 Opera",
        "MSIE 6.",
        "MSIE 6.0 Gecko/1",
        "Chrome/1 Gecko",
    ] {
        add(
            &format!("agent {agent}"),
            get("/nope", &format!("User-Agent: {agent}\r\n")),
        );
    }
    add(
        "first agent counts",
        get("/nope", "User-Agent: Chrome/1\r\nUser-Agent: x\r\n"),
    );
    for agent in [
        "MSIE 5.5",
        "MSIE 6.0",
        "MSIE 6.0 SV1",
        "MSIE 7.0",
        "MSIE 5.0 SV1",
        "MSIE 6.0 Opera",
    ] {
        add(
            &format!("POST from {agent}"),
            post("/nope", &format!("User-Agent: {agent}\r\n")),
        );
    }
    // Headers that may come once.
    for name in [
        "If-Range",
        "Expect",
        "Content-Range",
        "Authorization",
        "If-Modified-Since",
        "If-Unmodified-Since",
    ] {
        add(
            &format!("two {name}"),
            get("/", &format!("{name}: x\r\n{name}: x\r\n")),
        );
    }
    add(
        "two Ranges",
        get("/style.css", "Range: bytes=1-2\r\nRange: bytes=3-4\r\n"),
    );
    // Content-Length and Transfer-Encoding.
    for length in [
        "01",
        "1 ",
        "+1",
        "",
        " ",
        "1 1",
        "0x1",
        "9223372036854775808",
        "9223372036854775807",
    ] {
        add(
            &format!("Content-Length {length:?}"),
            format!("GET / HTTP/1.1\r\n{H}Content-Length: {length}\r\n\r\nx"),
        );
    }
    add(
        "body at the limit",
        post("/", "Content-Length: 1048576\r\n"),
    );
    add(
        "body over the limit",
        post("/", "Content-Length: 1048577\r\n"),
    );
    for coding in [
        "Chunked",
        "chunked, gzip",
        "gzip, chunked",
        "identity",
        "",
        "chunked ",
        "\tchunked",
    ] {
        add(
            &format!("Transfer-Encoding {coding:?}"),
            format!("GET / HTTP/1.1\r\n{H}Transfer-Encoding: {coding}\r\n\r\n0\r\n\r\n"),
        );
    }
    for (name, request) in [
        (
            "no Host, gzip",
            "GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n".to_owned(),
        ),
        (
            "bad length, gzip",
            format!("GET / HTTP/1.1\r\n{H}Content-Length: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
        ),
        (
            "TRACE gzip",
            format!("TRACE / HTTP/1.1\r\n{H}Transfer-Encoding: gzip\r\n\r\n"),
        ),
        (
            "gzip and a long body",
            format!(
                "GET / HTTP/1.1\r\n{H}Transfer-Encoding: gzip\r\nContent-Length: 2000000\r\n\r\n"
            ),
        ),
        (
            "chunked and a long body",
            format!(
                "GET / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\nContent-Length: 2000000\r\n\r\n"
            ),
        ),
        (
            "1.0 length and gzip",
            "GET / HTTP/1.0\r\nContent-Length: 5\r\nTransfer-Encoding: gzip\r\n\r\n".to_owned(),
        ),
        (
            "no Host, length",
            "GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n".to_owned(),
        ),
        (
            "TRACE with a body",
            format!("TRACE / HTTP/1.1\r\n{H}Content-Length: 3\r\n\r\nab"),
        ),
        (
            "CONNECT origin form",
            format!("CONNECT / HTTP/1.1\r\n{H}\r\n"),
        ),
    ] {
        add(name, request);
    }
    // Chunked bodies, followed by a pipelined request.
    for (name, body) in [
        ("extension", "5;a=b\r\nabcde\r\n0\r\n\r\n"),
        ("space and junk", "5 x\r\nabcde\r\n0\r\n\r\n"),
        ("tab", "5\t\r\nabcde\r\n0\r\n\r\n"),
        ("bare LFs", "5\nabcde\n0\n\n"),
        ("upper-case hex", "A\r\nabcdeabcde\r\n0\r\n\r\n"),
        ("trailers", "5\r\nabcde\r\n0\r\nX: y\r\nZ\r\n\r\n"),
        ("letter after size", "5x\r\nabcde\r\n0\r\n\r\n"),
        ("CR in an extension", "5;a\rb\r\nabcde\r\n0\r\n\r\n"),
        ("leading space", " 5\r\nabcde\r\n0\r\n\r\n"),
        ("leading empty line", "\r\n5\r\nabcde\r\n0\r\n\r\n"),
        ("too large", "800000000000000\r\n"),
        ("junk after data", "5\r\nabcdeX"),
        ("two CRs after data", "5\r\nabcde\r\r\n0\r\n\r\n"),
        ("CR in trailers", "0\r\nX: \r\r\n\r\n"),
    ] {
        add(&format!("chunked {name}"), chunked("/style.css", body));
    }
    add("chunked error on a 404", chunked("/nope", "zz\r\n"));
    add("chunked error on a 301", chunked("/sub", "zz\r\n"));
    add(
        "chunked error on a 412",
        format!(
            "GET /style.css HTTP/1.1\r\n{H}If-Match: \"x\"\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
        ),
    );
    add(
        "chunked, body still coming",
        format!("GET /style.css HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n5\r\nab"),
    );
    // Expect.
    for (name, request) in [
        ("on /", get("/", "Expect: 100-continue\r\n")),
        (
            "on a directory without index",
            get("/empty/", "Expect: 100-continue\r\n"),
        ),
        (
            "trailing space",
            get("/style.css", "Expect: 100-continue \r\n"),
        ),
        ("tab", get("/style.css", "Expect:\t100-continue\r\n")),
        (
            "on a 412",
            get("/style.css", "If-Match: \"x\"\r\nExpect: 100-continue\r\n"),
        ),
        (
            "on a 304",
            get("/style.css", "If-None-Match: *\r\nExpect: 100-continue\r\n"),
        ),
        (
            "HTTP/1.2",
            format!("GET /style.css HTTP/1.2\r\n{H}Expect: 100-continue\r\n\r\n"),
        ),
        (
            "on a 413",
            post(
                "/style.css",
                "Expect: 100-continue\r\nContent-Length: 2000000\r\n",
            ),
        ),
        (
            "bad chunk",
            format!(
                "GET /style.css HTTP/1.1\r\n{H}Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
            ),
        ),
    ] {
        add(&format!("expect {name}"), request);
    }
    // Entity tags.
    let bare = etag.trim_matches('"');
    for (name, tags) in [
        ("list", format!("\"a\",{etag}")),
        ("spaced list", format!("\"a\" ,  {etag}  ")),
        ("leading comma", format!(",{etag}")),
        ("trailing comma", format!("{etag},")),
        ("no comma", format!("\"a\" {etag}")),
        ("weak", format!("W/{etag}")),
        ("weak in a list", format!("\"a\",W/{etag}")),
        ("weak with a space", format!("\"a\", W/ {etag}")),
        ("lower-case weak", format!("w/{etag}")),
        ("junk after", format!("{etag}x")),
        ("junk after a space", format!("{etag} x")),
        ("tab before", format!("\t{etag}")),
        ("tab after a comma", format!("\"a\",\t{etag}")),
        ("semicolon", format!("\"a\";{etag}")),
        ("star in a list", "\"a\", *".to_owned()),
        ("star first", "*, \"a\"".to_owned()),
        ("unquoted", bare.to_owned()),
        ("upper case", format!("\"{}\"", bare.to_uppercase())),
    ] {
        add(
            &format!("If-None-Match {name}"),
            one_with(&format!("If-None-Match: {tags}")),
        );
    }
    for (name, tags) in [
        ("weak", format!("W/{etag}")),
        ("list", format!("\"x\", {etag}")),
        ("star and junk", "*x".to_owned()),
        ("star and space", "* ".to_owned()),
        ("junk after", format!("{etag}x")),
    ] {
        add(
            &format!("If-Match {name}"),
            one_with(&format!("If-Match: {tags}")),
        );
    }
    for (name, value) in [
        ("tag and space", format!("{etag} ")),
        ("tag and junk", format!("{etag}x")),
        ("weak tag", format!("W/{etag}")),
        ("tag in a list", format!("{etag}, \"a\"")),
        ("date and junk", format!("{modified}xx")),
        ("garbage", "garbage".to_owned()),
        ("empty", String::new()),
    ] {
        add(
            &format!("If-Range {name}"),
            one_with(&format!("Range: bytes=0-1\r\nIf-Range: {value}")),
        );
    }
    // Dates: the same moment in other layouts, and dates nginx rejects.
    for (name, date) in date_forms(modified) {
        add(
            &format!("If-Modified-Since {name}"),
            one_with(&format!("If-Modified-Since: {date}")),
        );
        add(
            &format!("If-Range {name}"),
            one_with(&format!("Range: bytes=0-1\r\nIf-Range: {date}")),
        );
    }
    for date in [
        "Fri, 01 Jan 2100 00:00:00 GMT",
        "Fri, 31 Apr 2100 00:00:00 GMT",
        "Fri, 29 Feb 2100 00:00:00 GMT",
        "Fri, 29 Feb 2104 00:00:00 GMT",
        "Fri, 01 Jan 2100 24:00:00 GMT",
        "Fri, 00 Jan 2100 00:00:00 GMT",
        "Monday, 06-May-69 07:08:09 GMT",
        "Monday, 06-May-70 07:08:09 GMT",
        "Fri, 01 JAN 2100 00:00:00 GMT",
        "Fri, 01 jan 2100 00:00:00 GMT",
        "Fri Jan  1 00:00:00 2100",
        "Fri Jan   1 00:00:00 2100",
        "Fri, 01 Jan 2100 00:00",
        "01 Jan 2100 00:00:00 GMT",
        "Fri, 1 Jan 2100 00:00:00 GMT",
    ] {
        add(
            &format!("If-Unmodified-Since {date}"),
            one_with(&format!("If-Unmodified-Since: {date}")),
        );
    }
    // Ranges, on a 15-byte file.
    for range in [
        "bytes= 0-1",
        "bytes=0 -1",
        "bytes=0-1 ",
        "Bytes=1-2",
        "BYTES=1-2",
        "bytes =1-2",
        "bytes=",
        "bytes",
        "bytes=0-1,,3-4",
        "bytes=,0-1",
        "bytes=0-1,",
        "bytes=-0",
        "bytes=0-0",
        "bytes=5-2",
        "bytes=-",
        "bytes=-100",
        "bytes=0-100",
        "bytes=14-",
        "bytes=15-",
        "bytes=0-1,5-2",
        "bytes=0-1,-0",
        "bytes=0-1,20-30",
        "bytes=20-30,40-50",
        "bytes=0-1,0-1",
        "bytes=0-7,0-6",
        "bytes=0-7,0-7",
        "bytes=14-100,0-0",
        "bytes=0-9223372036854775807",
        "bytes=0-9223372036854775808",
        "bytes=-9223372036854775808",
        "bytes=+1-2",
        "bytes=01-02",
        "bytes=1-2 3",
        "bytes=1-2-3",
        "bytes=1 2-3",
        "bytes=1-2;x",
        "bytes=-1-2",
        "bytes=\t1-2",
        "bytes=1-2\t",
        "bytes=0-1,abc",
    ] {
        add(
            &format!("Range {range:?}"),
            one_with(&format!("Range: {range}")),
        );
    }
    add(
        "empty file, bad range",
        get("/empty.txt", "Range: bytes=abc\r\n"),
    );
    add(
        "empty file, suffix",
        get("/empty.txt", "Range: bytes=-1\r\n"),
    );
    add(
        "multipart, no known type",
        get("/noext", "Range: bytes=0-0,0-0\r\n"),
    );
    // Paths.
    for path in [
        "/sub/.%2e/style.css",
        "/sub%2f%2e%2e%2fstyle.css",
        "/style.css%3f",
        "/style.css%23",
        "/style.css?%zz",
        "/style.css#%zz",
        "/%2F",
        "/sub%2F",
        "/style.css/.",
        "/style.css/..",
        "/a%%20",
        "/style.c%73s",
        "/sub/..%2f",
        "/sub/...",
        "/sub/..x",
        "/%c3%a9",
        "/sub/%2e",
        "/sp%20ace.txt?a#b",
    ] {
        add(&format!("path {path}"), get(path, ""));
    }
    // Methods on the site.
    for (method, path) in [
        ("FOO", "/sub"),
        ("FOO", "/nope/"),
        ("POST", "/sub"),
        ("POST", "/sub/"),
        ("POST", "/empty/"),
        ("POST", "/nope/"),
    ] {
        add(
            &format!("{method} {path}"),
            format!("{method} {path} HTTP/1.1\r\n{H}\r\n"),
        );
    }
    add(
        "PUT with a body, then GET",
        format!("PUT /nope HTTP/1.1\r\n{H}Content-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n{H}\r\n"),
    );
    // How connections end.
    for (name, request) in [
        (
            "body still coming",
            format!("GET / HTTP/1.1\r\n{H}Content-Length: 5\r\n\r\nab"),
        ),
        (
            "close, body still coming",
            format!("GET / HTTP/1.1\r\n{H}Connection: close\r\nContent-Length: 5\r\n\r\nab"),
        ),
        (
            "412, body still coming",
            format!("GET /style.css HTTP/1.1\r\n{H}If-Match: \"x\"\r\nContent-Length: 3\r\n\r\nab"),
        ),
        (
            "1.0, body still coming",
            "GET / HTTP/1.0\r\nContent-Length: 5\r\n\r\nab".to_owned(),
        ),
        (
            "bad Host, head incomplete",
            "GET / HTTP/1.1\r\nHost: a/b\r\n".to_owned(),
        ),
        (
            "bad escape, head incomplete",
            "GET /%zz HTTP/1.1\r\n".to_owned(),
        ),
        ("major 2, head incomplete", "GET / HTTP/2".to_owned()),
        (
            "bad length, head incomplete",
            "GET / HTTP/1.1\r\nContent-Length: x\r\n".to_owned(),
        ),
        ("TRACE, head incomplete", "TRACE / HTTP/1.1\r\n".to_owned()),
        (
            "NUL, head incomplete",
            "GET / HTTP/1.1\r\nX: a\0".to_owned(),
        ),
        (
            "CR, head incomplete",
            "GET / HTTP/1.1\r\nX: a\rb".to_owned(),
        ),
    ] {
        add(name, request);
    }
    out
}
