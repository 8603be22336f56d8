//! The requests `decoy_nginx.rs` sends to nginx and to the decoy: the
//! curated probes (what a prober sends, and the findings), the
//! rules the decoy follows, one or more cases each, the edges of nginx's
//! header buffers, and seeded random mutations.

/// One probe: its parts, each written after its delay (ms).
pub struct Case {
    pub name: String,
    pub parts: Vec<(u64, Vec<u8>)>,
}

pub fn case(name: impl Into<String>, request: impl AsRef<[u8]>) -> Case {
    Case {
        name: name.into(),
        parts: vec![(0, request.as_ref().to_vec())],
    }
}

/// A request line of exactly `len` bytes (CRLF included).
fn request_line(len: usize) -> String {
    let fixed = "GET / HTTP/1.1\r\n".len();
    format!("GET /{} HTTP/1.1\r\n", "a".repeat(len - fixed))
}

/// A header line of exactly `len` bytes (CRLF included).
fn header_line(name: &str, len: usize) -> String {
    let fixed = name.len() + 4;
    format!("{name}: {}\r\n", "v".repeat(len - fixed))
}

/// The edges of nginx's header buffers (1 KiB, then up to four of 8 KiB).
pub fn sizes() -> Vec<Case> {
    let mut out = Vec::new();
    for len in [1023, 1024, 1025, 8191, 8192, 8193] {
        out.push(case(
            format!("request line of {len}"),
            format!("{}{H}\r\n", request_line(len)),
        ));
    }
    for len in [1000, 1005, 1024, 8191, 8192, 8193] {
        out.push(case(
            format!("header line of {len}"),
            get("/", &header_line("X-Big", len)),
        ));
    }
    for (lines, len) in [
        (3, 8000),
        (4, 8000),
        (5, 8000),
        (30, 1000),
        (31, 1000),
        (32, 1000),
        (33, 1000),
        (40, 800),
        (4, 8192),
        (3, 8192),
    ] {
        let head: String = (0..lines)
            .map(|i| header_line(&format!("X-H{i:02}"), len))
            .collect();
        out.push(case(
            format!("{lines} header lines of {len}"),
            get("/", &head),
        ));
    }
    // A long request line, then header lines that spill over.
    out.push(case(
        "long line, long headers",
        format!(
            "{}{H}{}{}\r\n",
            request_line(5000),
            header_line("X-A", 6000),
            header_line("X-B", 8000)
        ),
    ));
    // Pipelined requests continue in the buffer the previous one left.
    out.push(case(
        "pipelined long line",
        format!("GET / HTTP/1.1\r\n{H}\r\n{}{H}\r\n", request_line(8100)),
    ));
    out.push(case(
        "pipelined too long line",
        format!("GET / HTTP/1.1\r\n{H}\r\n{}{H}\r\n", request_line(8300)),
    ));
    out.push(case(
        "pipelined after a large buffer",
        format!("{}{H}\r\n{}{H}\r\n", request_line(5000), request_line(4000)),
    ));
    out.push(case(
        "pipelined headers after a large buffer",
        format!(
            "{}{H}\r\nGET / HTTP/1.1\r\n{H}{}{}{}\r\n",
            request_line(5000),
            header_line("X-A", 8000),
            header_line("X-B", 8000),
            header_line("X-C", 8000)
        ),
    ));
    out
}

/// Valid requests with a few bytes changed, inserted or dropped (a seeded
/// PRNG): nginx is the oracle for whatever they turn into.
pub fn mutations(count: usize, seed: u64) -> Vec<Case> {
    const BASES: [&str; 8] = [
        "GET /sub/index.html?x=1 HTTP/1.1\r\nHost: localhost\r\nRange: bytes=0-3\r\n\r\n",
        "GET http://localhost:443/style.css HTTP/1.1\r\nHost: localhost\r\nIf-None-Match: \"x\"\r\n\r\n",
        "POST /nope HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "HEAD /%73ub/./../style.css HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
        "GET /sp%20dir?a=%zz HTTP/1.1\r\nHost: [::1]:80\r\nUser-Agent: Chrome/1\r\nIf-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n",
        "GET /big.bin HTTP/1.1\r\nHost: localhost\r\nRange: bytes=1-2,-3\r\nIf-Range: \"x\"\r\nConnection: close\r\n\r\n",
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: localhost\r\n\r\nGET /style.css HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n\r\n",
    ];
    const BYTES: &[u8] = b" \r\n\t:/.%?#\0\x7f\xffA_-0[]\"";
    let mut state: u64 = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|i| {
            let mut bytes = BASES[i % BASES.len()].as_bytes().to_vec();
            for _ in 0..1 + next() % 3 {
                let at = (next() as usize) % bytes.len();
                let byte = BYTES[(next() as usize) % BYTES.len()];
                match next() % 3 {
                    0 => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    _ => {
                        bytes.remove(at);
                    }
                }
            }
            case(format!("mutation {i}"), bytes)
        })
        .collect()
}

pub const H: &str = "Host: localhost\r\n";

pub fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\n{H}{extra}\r\n")
}

/// The probes. `etag` and `modified` are `style.css`'s validators (as
/// nginx reports them).
pub fn curated(etag: &str, modified: &str) -> Vec<Case> {
    let chrome = "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36\r\n";
    let many = |n: usize, len: usize| -> String {
        (0..n)
            .map(|i| format!("X-Header-{i}: {}\r\n", "v".repeat(len)))
            .collect()
    };
    let upgrade = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    vec![
        // Plain GET and HEAD.
        case("get /", get("/", "")),
        case("head /", format!("HEAD / HTTP/1.1\r\n{H}\r\n")),
        case("get /index.html", get("/index.html", "")),
        case("get css", get("/style.css", "")),
        case("get js", get("/app.js", "")),
        case("get json", get("/data.json", "")),
        case("get no extension", get("/noext", "")),
        case("get big", get("/big.bin", "")),
        case("head big", format!("HEAD /big.bin HTTP/1.1\r\n{H}\r\n")),
        case("get sub/", get("/sub/", "")),
        case("dir without slash", get("/sub", "")),
        case("dir without slash, query", get("/sub?a=1&b=%20", "")),
        case("dir without index", get("/empty/", "")),
        case("missing", get("/nope.html", "")),
        case("missing dir", get("/nope/", "")),
        case("file with slash", get("/style.css/", "")),
        case("file below a file", get("/style.css/x", "")),
        case("query", get("/style.css?v=1", "")),
        case("fragment", get("/style.css#top", "")),
        // Ranges.
        case("range", get("/big.bin", "Range: bytes=0-99\r\n")),
        case("range open", get("/big.bin", "Range: bytes=99990-\r\n")),
        case("range suffix", get("/big.bin", "Range: bytes=-10\r\n")),
        case(
            "range past end",
            get("/big.bin", "Range: bytes=200000-\r\n"),
        ),
        case("range garbage", get("/big.bin", "Range: bytes=abc\r\n")),
        case("range other unit", get("/big.bin", "Range: items=0-1\r\n")),
        case("range multi", get("/style.css", "Range: bytes=0-1,3-4\r\n")),
        case(
            "range head",
            format!("HEAD /big.bin HTTP/1.1\r\n{H}Range: bytes=0-9\r\n\r\n"),
        ),
        case(
            "if-range tag",
            get(
                "/style.css",
                &format!("Range: bytes=0-3\r\nIf-Range: {etag}\r\n"),
            ),
        ),
        case(
            "if-range other tag",
            get("/style.css", "Range: bytes=0-3\r\nIf-Range: \"x\"\r\n"),
        ),
        case(
            "if-range date",
            get(
                "/style.css",
                &format!("Range: bytes=0-3\r\nIf-Range: {modified}\r\n"),
            ),
        ),
        // Validators.
        case(
            "if-none-match",
            get("/style.css", &format!("If-None-Match: {etag}\r\n")),
        ),
        case(
            "if-none-match weak",
            get("/style.css", &format!("If-None-Match: \"a\", W/{etag}\r\n")),
        ),
        case("if-none-match *", get("/style.css", "If-None-Match: *\r\n")),
        case(
            "if-none-match other",
            get("/style.css", "If-None-Match: \"other\"\r\n"),
        ),
        case(
            "if-modified-since",
            get("/style.css", &format!("If-Modified-Since: {modified}\r\n")),
        ),
        case(
            "if-modified-since later",
            get(
                "/style.css",
                "If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n",
            ),
        ),
        case(
            "if-modified-since garbage",
            get("/style.css", "If-Modified-Since: yesterday\r\n"),
        ),
        case(
            "if-modified-since + other tag",
            get(
                "/style.css",
                &format!("If-Modified-Since: {modified}\r\nIf-None-Match: \"x\"\r\n"),
            ),
        ),
        case("if-match other", get("/style.css", "If-Match: \"x\"\r\n")),
        case(
            "if-match",
            get("/style.css", &format!("If-Match: {etag}\r\n")),
        ),
        case(
            "if-unmodified-since past",
            get(
                "/style.css",
                "If-Unmodified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n",
            ),
        ),
        case(
            "duplicate if-none-match",
            get(
                "/style.css",
                "If-None-Match: \"a\"\r\nIf-None-Match: \"b\"\r\n",
            ),
        ),
        // Methods.
        case(
            "post /",
            format!("POST / HTTP/1.1\r\n{H}Content-Length: 3\r\n\r\nabc"),
        ),
        case(
            "post file",
            format!("POST /style.css HTTP/1.1\r\n{H}Content-Length: 0\r\n\r\n"),
        ),
        case(
            "post missing",
            format!("POST /nope HTTP/1.1\r\n{H}Content-Length: 3\r\n\r\nabc"),
        ),
        case(
            "put",
            format!("PUT /style.css HTTP/1.1\r\n{H}Content-Length: 3\r\n\r\nabc"),
        ),
        case("delete", format!("DELETE /style.css HTTP/1.1\r\n{H}\r\n")),
        case("options", format!("OPTIONS / HTTP/1.1\r\n{H}\r\n")),
        case("options *", format!("OPTIONS * HTTP/1.1\r\n{H}\r\n")),
        case("patch missing", format!("PATCH /nope HTTP/1.1\r\n{H}\r\n")),
        case("unknown method", format!("FOO / HTTP/1.1\r\n{H}\r\n")),
        case("lower-case method", format!("get / HTTP/1.1\r\n{H}\r\n")),
        case("trace", format!("TRACE / HTTP/1.1\r\n{H}\r\n")),
        case(
            "connect",
            format!("CONNECT localhost:443 HTTP/1.1\r\n{H}\r\n"),
        ),
        case(
            "post too large",
            format!("POST / HTTP/1.1\r\n{H}Content-Length: 2000000\r\n\r\n"),
        ),
        case(
            "post chunked",
            format!(
                "POST /nope HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            ),
        ),
        case(
            "get bad chunked body",
            format!("GET / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\nzz\r\n"),
        ),
        case(
            "transfer-encoding gzip",
            format!("GET / HTTP/1.1\r\n{H}Transfer-Encoding: gzip\r\n\r\n"),
        ),
        case(
            "transfer-encoding + length",
            format!("GET / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n"),
        ),
        case(
            "bad content-length",
            format!("GET / HTTP/1.1\r\n{H}Content-Length: -1\r\n\r\n"),
        ),
        case(
            "get with body",
            format!("GET /style.css HTTP/1.1\r\n{H}Content-Length: 5\r\n\r\nhello"),
        ),
        case(
            "expect 100-continue",
            get("/style.css", "Expect: 100-continue\r\n"),
        ),
        case(
            "expect 100-Continue, HEAD",
            format!("HEAD / HTTP/1.1\r\n{H}Expect: 100-Continue\r\n\r\n"),
        ),
        case(
            "expect, HTTP/1.0",
            format!("GET / HTTP/1.0\r\n{H}Expect: 100-continue\r\n\r\n"),
        ),
        case("expect other", get("/style.css", "Expect: 200-ok\r\n")),
        case(
            "expect on a 405",
            format!("POST / HTTP/1.1\r\n{H}Expect: 100-continue\r\nContent-Length: 3\r\n\r\nabc"),
        ),
        case("expect on a 404", get("/nope", "Expect: 100-continue\r\n")),
        case(
            "expect, range",
            get("/big.bin", "Expect: 100-continue\r\nRange: bytes=1-2\r\n"),
        ),
        case("empty file", get("/empty.txt", "")),
        case(
            "empty file, range",
            get("/empty.txt", "Range: bytes=0-\r\n"),
        ),
        case("escaped redirect", get("/sp%20dir", "")),
        case(
            "escaped redirect, 8-bit query",
            get("/sp%20dir?\u{e9}=1#x", ""),
        ),
        case("escaped dir", get("/sp%20dir/", "")),
        case("index by name, slash", get("/index.html/", "")),
        case("upper-case dir", get("/SUB/", "")),
        case(
            "IPv6 absolute URI",
            format!("GET http://[::1]:8080/sub HTTP/1.1\r\n{H}\r\n"),
        ),
        case("IPv6 Host", "GET /sub HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"),
        case(
            "HTTP/1.0 range",
            "GET /big.bin HTTP/1.0\r\nRange: bytes=5-9\r\n\r\n",
        ),
        case("HTTP/1.0 HEAD", "HEAD / HTTP/1.0\r\n\r\n"),
        case(
            "Connection: upgrade, close",
            get("/", "Connection: Upgrade, close\r\n"),
        ),
        case(
            "two ranges, one header each",
            get("/big.bin", "Range: bytes=0-1\r\nRange: bytes=5-6\r\n"),
        ),
        case(
            "overlapping ranges",
            get("/big.bin", "Range: bytes=0-9,5-14\r\n"),
        ),
        case(
            "ranges beyond the file",
            get("/style.css", "Range: bytes=0-4,2-100\r\n"),
        ),
        case(
            "if-range without range",
            get("/style.css", &format!("If-Range: {etag}\r\n")),
        ),
        case(
            "pipelined mix",
            format!(
                "GET /big.bin HTTP/1.1\r\n{H}Range: bytes=999999-\r\n\r\nGET /style.css HTTP/1.1\r\n{H}If-None-Match: *\r\n\r\nGET /sub HTTP/1.1\r\n{H}\r\nHEAD /style.css HTTP/1.1\r\n{H}\r\nGET /style.css HTTP/1.1\r\n{H}Range: bytes=0-1,3-4\r\n\r\nGET /data.json HTTP/1.1\r\n{H}Connection: close\r\n\r\n"
            ),
        ),
        case(
            "pipelined after a 412",
            format!(
                "GET /style.css HTTP/1.1\r\n{H}If-Match: \"x\"\r\n\r\nGET / HTTP/1.1\r\n{H}\r\n"
            ),
        ),
        case(
            "pipelined after a 413",
            format!(
                "POST / HTTP/1.1\r\n{H}Content-Length: 2000000\r\n\r\nGET / HTTP/1.1\r\n{H}\r\n"
            ),
        ),
        case(
            "pipelined after HTTP/1.0",
            format!("GET / HTTP/1.0\r\n\r\nGET / HTTP/1.1\r\n{H}\r\n"),
        ),
        case(
            "pipelined lower-case body headers",
            "POST /nope HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n\r\nbodyGET /style.css HTTP/1.1\r\nhost: x\r\n\r\n",
        ),
        // Host and version.
        case("HTTP/1.1 without Host", "GET / HTTP/1.1\r\n\r\n"),
        case("bad Host", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"),
        case("empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n"),
        case("Host with ..", "GET / HTTP/1.1\r\nHost: a..b\r\n\r\n"),
        case(
            "odd Host",
            "GET /sub HTTP/1.1\r\nHost: Ev!L.Example.:99999\r\n\r\n",
        ),
        case("two Hosts", format!("GET / HTTP/1.1\r\n{H}{H}\r\n")),
        case("HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n"),
        case(
            "HTTP/1.0 redirect without Host",
            "GET /sub HTTP/1.0\r\n\r\n",
        ),
        case(
            "HTTP/1.0 keep-alive",
            "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        ),
        case(
            "HTTP/1.0 chunked",
            format!("GET / HTTP/1.0\r\n{H}Transfer-Encoding: chunked\r\n\r\n"),
        ),
        case("HTTP/0.9", "GET /\r\n"),
        case("HTTP/0.9 missing", "GET /nope\r\n"),
        case("HTTP/0.9 HEAD", "HEAD /\r\n"),
        case("HTTP/1.2", format!("GET / HTTP/1.2\r\n{H}\r\n")),
        case("HTTP/2.0", format!("GET / HTTP/2.0\r\n{H}\r\n")),
        case("HTTP/0.1", format!("GET / HTTP/0.1\r\n{H}\r\n")),
        case("http/1.1", format!("GET / http/1.1\r\n{H}\r\n")),
        case("HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        case(
            "absolute URI",
            format!("GET https://localhost/style.css HTTP/1.1\r\n{H}\r\n"),
        ),
        case(
            "absolute URI redirect",
            format!("GET http://Other.Example./sub?x=1 HTTP/1.1\r\n{H}\r\n"),
        ),
        case(
            "absolute URI bad host",
            format!("GET http://a..b/ HTTP/1.1\r\n{H}\r\n"),
        ),
        case(
            "absolute URI no path",
            "GET http://localhost HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        // Sizes.
        case("path of 8000", get(&format!("/{}", "a".repeat(8000)), "")),
        case("path of 9000", get(&format!("/{}", "a".repeat(9000)), "")),
        case(
            "header line of 8 KiB",
            get("/", &format!("X-Big: {}\r\n", "b".repeat(8185))),
        ),
        case(
            "header line over 8 KiB",
            get("/", &format!("X-Big: {}\r\n", "b".repeat(8200))),
        ),
        case("100 headers", get("/", &many(100, 10))),
        case("300 headers", get("/", &many(300, 10))),
        case("40 KiB of headers", get("/", &many(10, 4000))),
        case(
            "leading blank lines",
            format!("\r\n\r\n\r\nGET / HTTP/1.1\r\n{H}\r\n"),
        ),
        case(
            "many leading blank lines",
            format!("{}GET / HTTP/1.1\r\n{H}\r\n", "\r\n".repeat(3000)),
        ),
        // Odd header lines.
        case(
            "lower-case headers",
            "GET / HTTP/1.1\r\nhost: localhost\r\nuser-agent: x\r\naccept: */*\r\nconnection: keep-alive\r\n\r\n",
        ),
        case(
            "upper-case headers",
            "GET / HTTP/1.1\r\nHOST: localhost\r\nCONNECTION: CLOSE\r\n\r\n",
        ),
        case("underscore in a name", get("/", "X_Forwarded: 1\r\n")),
        case("space in a name", get("/", "X Y: 1\r\n")),
        case("no colon", get("/", "Novalue\r\n")),
        case("empty name", get("/", ": x\r\n")),
        case("folded line", get("/", "X-A: 1\r\n  continued\r\n")),
        case("tab in a value", get("/", "X-A: a\tb\r\n")),
        case("NUL in a value", get("/", "X-A: a\0b\r\n")),
        case("8-bit name", get("/", "X-\u{e9}: 1\r\n")),
        case("bare LF", "GET / HTTP/1.1\nHost: localhost\n\n"),
        case(
            "CR without LF",
            "GET / HTTP/1.1\r\nHost: localhost\rX\r\n\r\n",
        ),
        case("two spaces", format!("GET  /  HTTP/1.1\r\n{H}\r\n")),
        case("trailing space", format!("GET / HTTP/1.1 \r\n{H}\r\n")),
        case(
            "MSIE",
            get(
                "/nope",
                "User-Agent: Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)\r\n",
            ),
        ),
        case("Chrome 404", get("/nope", chrome)),
        case("Chrome 301", get("/sub", chrome)),
        case("Chrome 200", get("/style.css", chrome)),
        case(
            "Connection: close",
            get("/style.css", "Connection: close\r\n"),
        ),
        case(
            "Connection: keep-alive",
            get("/style.css", "Connection: keep-alive\r\n"),
        ),
        // Garbage.
        case("garbage", "garbage\r\n\r\n"),
        case(
            "binary",
            [
                0x16u8, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03,
            ],
        ),
        case(
            "control byte in the URI",
            format!("GET /a\x01b HTTP/1.1\r\n{H}\r\n"),
        ),
        case("8-bit URI", get("/\u{e9}t\u{e9}", "")),
        case("only blank lines", "\r\n\r\n"),
        case("incomplete head", format!("GET / HTTP/1.1\r\n{H}")),
        case("incomplete request line", "GET / HT"),
        case("SSH banner", "SSH-2.0-OpenSSH_9.2\r\n"),
        // Paths.
        case("traversal", get("/../etc/passwd", "")),
        case("encoded traversal", get("/%2e%2e/etc/passwd", "")),
        case("encoded slash traversal", get("/..%2fstyle.css", "")),
        case("inner ..", get("/sub/../style.css", "")),
        case("inner encoded ..", get("/sub/%2E%2E/style.css", "")),
        case("dot segments", get("/./sub/./", "")),
        case("double slash", get("//style.css", "")),
        case("trailing dot segment", get("/sub/.", "")),
        case("trailing ..", get("/sub/..", "")),
        case("percent-encoded name", get("/%73tyle.css", "")),
        case("percent-encoded space", get("/sp%20ace.txt", "")),
        case("bad percent", get("/a%zz", "")),
        case("percent at the end", get("/a%2", "")),
        case("encoded NUL", get("/a%00", "")),
        case("encoded ? in a redirect", get("/s%75b", "")),
        case("backslash", get("/sub\\..\\style.css", "")),
        case("plus", get("/a+b", "")),
        // The WebSocket path without a valid upgrade.
        case("ws: GET", get("/ws", "")),
        case("ws: HEAD", format!("HEAD /ws HTTP/1.1\r\n{H}\r\n")),
        case(
            "ws: POST",
            format!("POST /ws HTTP/1.1\r\n{H}Content-Length: 2\r\n\r\nhi"),
        ),
        case("ws: PUT", format!("PUT /ws HTTP/1.1\r\n{H}\r\n")),
        case("ws: slash", get("/ws/", "")),
        case("ws: upgrade, no key", get("/ws", upgrade)),
        case(
            "ws: upgrade, short key",
            get("/ws", &format!("{upgrade}Sec-WebSocket-Key: abc\r\n")),
        ),
        case(
            "ws: upgrade, version 8",
            get(
                "/ws",
                &format!(
                    "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 8\r\n{key}"
                ),
            ),
        ),
        case(
            "ws: upgrade, no version",
            get(
                "/ws",
                &format!("Connection: Upgrade\r\nUpgrade: websocket\r\n{key}"),
            ),
        ),
        case(
            "ws: Connection without Upgrade",
            get(
                "/ws",
                &format!("Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n{key}"),
            ),
        ),
        case(
            "ws: Upgrade without Connection",
            get(
                "/ws",
                &format!("Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n{key}"),
            ),
        ),
        case(
            "ws: upgrade to h2c",
            get(
                "/ws",
                &format!(
                    "Connection: Upgrade\r\nUpgrade: h2c\r\nSec-WebSocket-Version: 13\r\n{key}"
                ),
            ),
        ),
        case(
            "ws: POST upgrade",
            format!("POST /ws HTTP/1.1\r\n{H}{upgrade}{key}Content-Length: 0\r\n\r\n"),
        ),
        case(
            "ws: HTTP/1.0 upgrade",
            format!("GET /ws HTTP/1.0\r\n{H}{upgrade}{key}\r\n"),
        ),
        case(
            "ws: upgrade elsewhere",
            get("/wss", &format!("{upgrade}{key}")),
        ),
        case(
            "ws: upgrade, no Host",
            format!("GET /ws HTTP/1.1\r\n{upgrade}{key}\r\n"),
        ),
        // Several requests on one connection.
        case(
            "two in one write",
            format!("GET / HTTP/1.1\r\n{H}\r\nGET /style.css HTTP/1.1\r\n{H}\r\n"),
        ),
        case(
            "three, last closes",
            format!(
                "GET /nope HTTP/1.1\r\n{H}\r\nHEAD / HTTP/1.1\r\n{H}\r\nGET /sub HTTP/1.1\r\n{H}Connection: close\r\n\r\n"
            ),
        ),
        case(
            "pipelined after an error",
            format!("GET /nope HTTP/1.1\r\n{H}\r\ngarbage\r\n\r\n"),
        ),
        case(
            "pipelined after a body",
            format!(
                "POST /nope HTTP/1.1\r\n{H}Content-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n{H}\r\n"
            ),
        ),
        case(
            "pipelined after a chunked body",
            format!(
                "GET / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\nGET /style.css HTTP/1.1\r\n{H}\r\n"
            ),
        ),
        case(
            "pipelined after close",
            format!(
                "GET / HTTP/1.1\r\n{H}Connection: close\r\n\r\nGET /style.css HTTP/1.1\r\n{H}\r\n"
            ),
        ),
        Case {
            name: "second request later".into(),
            parts: vec![
                (0, get("/", "").into_bytes()),
                (150, get("/style.css", "Connection: close\r\n").into_bytes()),
            ],
        },
        Case {
            name: "head in two writes".into(),
            parts: vec![
                (0, b"GET /style.css HTTP/1.1\r\nHo".to_vec()),
                (100, b"st: localhost\r\n\r\n".to_vec()),
            ],
        },
        Case {
            name: "body after the answer".into(),
            parts: vec![
                (
                    0,
                    format!("POST / HTTP/1.1\r\n{H}Content-Length: 5\r\n\r\n").into_bytes(),
                ),
                (
                    150,
                    format!("helloGET /style.css HTTP/1.1\r\n{H}\r\n").into_bytes(),
                ),
            ],
        },
    ]
}
