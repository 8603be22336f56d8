//! What nginx says, as data: the text of its status lines and the bytes of
//! its built-in error pages (`server_tokens off`), copied from its answers.

/// The status of an answer. nginx answers an oversized header line with a
/// 400 whose page differs from the plain 400 page, so that one gets its
/// own variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    Code(u16),
    /// 400, with the "Request Header Or Cookie Too Large" page.
    HeaderTooLarge,
}

impl Status {
    /// The code on the status line.
    pub fn code(self) -> u16 {
        match self {
            Status::Code(code) => code,
            Status::HeaderTooLarge => 400,
        }
    }
}

impl From<u16> for Status {
    fn from(code: u16) -> Status {
        Status::Code(code)
    }
}

/// The words after the code on nginx's status line; `None` where it writes
/// the code alone.
pub(super) fn reason(code: u16) -> Option<&'static str> {
    Some(match code {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Time-out",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Large",
        415 => "Unsupported Media Type",
        416 => "Requested Range Not Satisfiable",
        421 => "Misdirected Request",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Temporarily Unavailable",
        504 => "Gateway Time-out",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => return None,
    })
}

/// The end of every page.
const TAIL: &str = "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

/// The comment nginx appends, six times, to error pages for browsers that
/// would otherwise show their own "friendly" page instead.
const PADDING_LINE: &str = "<!-- a padding to disable MSIE and Chrome friendly error page -->\r\n";

/// nginx's page for `status`; empty where it sends none. `padding`: the
/// client is a browser that gets the padding (only pages of 400 and up).
pub(super) fn page(status: Status, padding: bool) -> String {
    let code = status.code();
    let mut page = match status {
        Status::HeaderTooLarge => "<html>\r\n<head><title>400 Request Header Or Cookie Too Large</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<center>Request Header Or Cookie Too Large</center>\r\n".to_owned(),
        Status::Code(_) if has_page(code) => {
            // 401's page names the status differently from its status line.
            let title = if code == 401 {
                "Authorization Required"
            } else {
                reason(code).unwrap_or_default()
            };
            format!("<html>\r\n<head><title>{code} {title}</title></head>\r\n<body>\r\n<center><h1>{code} {title}</h1></center>\r\n")
        }
        Status::Code(_) => return String::new(),
    };
    page.push_str(TAIL);
    if padding && code >= 400 {
        for _ in 0..6 {
            page.push_str(PADDING_LINE);
        }
    }
    page
}

/// Whether nginx has a built-in page for `code`.
fn has_page(code: u16) -> bool {
    matches!(
        code,
        301..=303 | 307 | 308 | 400..=406 | 408..=416 | 421 | 429 | 500..=505 | 507
    )
}

/// Whether the `User-Agent` is one whose error pages nginx pads: MSIE (a
/// version of at least three characters after `MSIE `) or Chrome (not
/// claiming `Gecko/`), neither of them Opera.
pub(super) fn wants_padding(agent: &[u8]) -> bool {
    if contains(agent, b"Opera") {
        return false;
    }
    msie_version(agent).is_some() || (contains(agent, b"Chrome/") && !contains(agent, b"Gecko/"))
}

/// Whether the `User-Agent` is an MSIE of version 4 to 6 (6 only without
/// "SV1"): nginx does not keep their connections alive after a POST.
pub(super) fn is_old_msie(agent: &[u8]) -> bool {
    if contains(agent, b"Opera") {
        return false;
    }
    match msie_version(agent) {
        Some(b'4' | b'5') => true,
        Some(b'6') => !contains(agent, b"SV1"),
        _ => false,
    }
}

/// The first character of the version after `MSIE `, if three follow.
fn msie_version(agent: &[u8]) -> Option<u8> {
    let at = agent.windows(5).position(|w| w == b"MSIE ")? + 5;
    (agent.len() >= at + 3).then(|| agent[at])
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_have_nginx_lengths() {
        let len = |code: u16, padding| page(Status::Code(code), padding).len();
        assert_eq!(
            page(404.into(), false),
            "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        );
        assert_eq!(len(404, false), 146);
        assert_eq!(len(400, false), 150);
        assert_eq!(len(404, true), 548);
        assert_eq!(len(412, false), 166);
        assert_eq!(len(414, false), 170);
        assert_eq!(len(416, false), 190);
        assert_eq!(len(301, false), 162);
        assert_eq!(len(301, true), 162, "no padding below 400");
        assert_eq!(page(Status::HeaderTooLarge, false).len(), 226);
        assert!(page(426.into(), false).is_empty());
    }

    #[test]
    fn browsers_that_get_padding() {
        let chrome = b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
        assert!(wants_padding(chrome));
        assert!(wants_padding(
            b"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)"
        ));
        assert!(!wants_padding(b"MSIE 6."), "too short a version");
        assert!(!wants_padding(
            b"Mozilla/5.0 (X11; rv:120.0) Gecko/20100101 Firefox/120.0"
        ));
        assert!(!wants_padding(b"Chrome/1 Gecko/1"));
        assert!(!wants_padding(b"Opera MSIE 6.0"));
        assert!(!wants_padding(b"curl/8.0"));
    }

    #[test]
    fn old_msie() {
        assert!(is_old_msie(b"MSIE 5.5"));
        assert!(is_old_msie(
            b"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)"
        ));
        assert!(!is_old_msie(b"MSIE 6.0; SV1"));
        assert!(!is_old_msie(b"MSIE 7.0"));
        assert!(!is_old_msie(b"MSIE 10.0"));
    }
}
