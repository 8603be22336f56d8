//! The proxy auto-config (PAC) file: the rules as `FindProxyForURL`.
//!
//! Browsers that prefer a PAC file fetch it from the local proxy
//! (`http://127.0.0.1:1080/proxy.pac`). It answers `DIRECT` for what the
//! rules send direct and the local proxy for everything else; the proxy
//! applies the same rules again, so:
//!
//! - `block` goes to the proxy, which refuses it (SOCKS5 "connection not
//!   allowed", HTTP 403 with the reason) and logs it: one place blocks,
//!   rather than a dead proxy address that looks like a network failure;
//! - where JavaScript cannot judge a rule exactly without resolving or
//!   without 128-bit arithmetic (an IPv6 literal host meeting an `ip` rule
//!   for IPv6 or a `private` rule), the PAC stops at that rule and hands
//!   the connection to the proxy, which decides exactly;
//! - names are never resolved: no `dnsResolve`, and `isInNet` only on hosts
//!   that are IPv4 literals.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::matcher::{PRIVATE_V4, Router};
use crate::rule::{Action, Matcher};

/// The URL port helper: the explicit port, else the scheme's.
const PORT_OF: &str = r#"function httvpsPortOf(url) {
  var m = /^([a-z][a-z0-9+.-]*):\/\/(?:[^\/?#@]*@)?(\[[^\]]*\]|[^\/?#:]*)(?::(\d+))?/i.exec(url);
  if (!m) return 0;
  if (m[3]) return parseInt(m[3], 10);
  var scheme = m[1].toLowerCase();
  if (scheme == "https" || scheme == "wss") return 443;
  if (scheme == "ftp") return 21;
  return 80;
}
"#;

impl Router {
    /// The PAC file for a local proxy reachable at `proxy` (the address the
    /// browser used to reach it, so that a proxy on `0.0.0.0` names a
    /// reachable one).
    pub fn pac(&self, proxy: SocketAddr) -> String {
        let mut js = String::new();
        js.push_str(
            "// Proxy auto-config from httvps: the routing rules of the running profile.\n\
             // Generated; names are never resolved here (no DNS lookups), IP rules apply\n\
             // to IP-literal hosts only, and blocked or undecidable hosts go to the local\n\
             // proxy, which applies the same rules exactly.\n",
        );
        js.push_str(PORT_OF);
        js.push_str("function FindProxyForURL(url, host) {\n");
        let _ = writeln!(js, "  var proxy = \"SOCKS5 {proxy}; PROXY {proxy}\";");
        js.push_str(
            "  var h = host.toLowerCase();\n  \
             if (h.charAt(0) == \"[\") h = h.substring(1, h.length - 1);\n  \
             if (h.charAt(h.length - 1) == \".\") h = h.substring(0, h.length - 1);\n  \
             var v6 = h.indexOf(\":\") >= 0;\n  \
             var v4 = /^\\d{1,3}(\\.\\d{1,3}){3}$/.test(h);\n  \
             var name = !v4 && !v6;\n  \
             var port = httvpsPortOf(url);\n",
        );
        for (i, (matcher, rule)) in self.compiled().enumerate() {
            let _ = writeln!(js, "  // rule {}: {rule}", i + 1);
            let result = match rule.action {
                Action::Direct => "\"DIRECT\"",
                Action::Tunnel | Action::Block => "proxy",
            };
            let (test, v6_undecided) = condition(matcher);
            if v6_undecided {
                js.push_str("  if (v6) return proxy;\n");
            }
            if let Some(test) = test {
                let _ = writeln!(js, "  if ({test}) return {result};");
            }
        }
        let default = match self.rules().default {
            Action::Direct => "\"DIRECT\"",
            Action::Tunnel | Action::Block => "proxy",
        };
        let _ = writeln!(
            js,
            "  return {default}; // default: {}",
            self.rules().default
        );
        js.push_str("}\n");
        js
    }
}

/// The JavaScript test of one rule (none: only the IPv6 stop applies), and
/// whether an IPv6 literal host must stop there (left to the proxy).
fn condition(matcher: &Matcher) -> (Option<String>, bool) {
    // Values are validated to `[a-z0-9._-]`: safe inside "…".
    match matcher {
        Matcher::Domain(d) => (Some(format!("name && h == \"{d}\"")), false),
        Matcher::Suffix(s) => (
            Some(format!(
                "name && (h == \"{s}\" || dnsDomainIs(h, \".{s}\"))"
            )),
            false,
        ),
        Matcher::Keyword(k) => (Some(format!("name && h.indexOf(\"{k}\") >= 0")), false),
        Matcher::Ports(lo, hi) if lo == hi => (Some(format!("port == {lo}")), false),
        Matcher::Ports(lo, hi) => (Some(format!("port >= {lo} && port <= {hi}")), false),
        Matcher::Net(IpAddr::V4(net), len) => {
            (Some(format!("v4 && {}", in_net(*net, *len))), false)
        }
        Matcher::Net(IpAddr::V6(_), _) => (None, true),
        Matcher::Private => {
            let blocks: Vec<String> = PRIVATE_V4
                .iter()
                .map(|(net, len)| in_net(*net, *len))
                .collect();
            (
                Some(format!(
                    "(v4 && ({})) || (name && (h == \"localhost\" || dnsDomainIs(h, \".localhost\")))",
                    blocks.join(" || ")
                )),
                true,
            )
        }
    }
}

fn in_net(net: Ipv4Addr, len: u8) -> String {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    format!("isInNet(h, \"{net}\", \"{}\")", Ipv4Addr::from(mask))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::{Rule, RuleKind, RuleSet};
    use net::TargetAddr;

    fn router() -> Router {
        use Action::*;
        use RuleKind::*;
        let rules = [
            (Domain, "ads.corp.example", Block),
            (DomainSuffix, "corp.example", Direct),
            (DomainKeyword, "tracker", Block),
            (Ip, "10.0.0.0/8", Direct),
            (Ip, "fd00::/8", Direct),
            (Port, "25", Block),
            (Port, "8000-8999", Direct),
            (Private, "", Direct),
            (DomainSuffix, "lan", Direct),
        ];
        RuleSet {
            default: Tunnel,
            rules: rules
                .iter()
                .map(|(k, v, a)| Rule::new(*k, *v, *a))
                .collect(),
        }
        .compile()
        .unwrap()
    }

    #[test]
    fn never_resolves_and_names_the_proxy() {
        let pac = router().pac("127.0.0.1:1080".parse().unwrap());
        assert!(!pac.contains("dnsResolve"), "{pac}");
        assert!(!pac.contains("isResolvable"), "{pac}");
        assert!(pac.contains("var proxy = \"SOCKS5 127.0.0.1:1080; PROXY 127.0.0.1:1080\";"));
        assert!(pac.contains("// rule 2: domain-suffix corp.example → direct"));
        assert!(pac.contains("isInNet(h, \"10.0.0.0\", \"255.0.0.0\")"));
        // Every isInNet is guarded by the IPv4-literal test.
        for line in pac.lines().filter(|l| l.contains("isInNet")) {
            assert!(line.contains("v4 && "), "{line}");
        }
    }

    /// Runs the PAC file in Node with the standard helpers and checks it
    /// agrees with the router for many URLs. Needs `node` (scripts/test
    /// installs it for the UI).
    #[test]
    fn pac_agrees_with_the_router_in_javascript() {
        let Ok(status) = std::process::Command::new("node").arg("--version").output() else {
            eprintln!("node not found: skipping the PAC execution test");
            return;
        };
        assert!(status.status.success());
        let router = router();
        let proxy: SocketAddr = "127.0.0.1:1080".parse().unwrap();
        let cases: Vec<(&str, &str, &str)> = vec![
            (
                "https://ads.corp.example/",
                "ads.corp.example",
                "ads.corp.example:443",
            ),
            (
                "https://www.corp.example/x",
                "www.corp.example",
                "www.corp.example:443",
            ),
            ("http://corp.example./", "corp.example.", "corp.example:80"),
            (
                "http://badcorp.example/",
                "badcorp.example",
                "badcorp.example:80",
            ),
            (
                "http://a.tracker.example/",
                "a.tracker.example",
                "a.tracker.example:80",
            ),
            ("http://10.2.3.4/", "10.2.3.4", "10.2.3.4:80"),
            ("http://11.2.3.4/", "11.2.3.4", "11.2.3.4:80"),
            ("http://[fd00::1]:81/", "fd00::1", "[fd00::1]:81"),
            (
                "http://[2606:4700::1]/",
                "[2606:4700::1]",
                "[2606:4700::1]:80",
            ),
            ("http://mail.example:25/", "mail.example", "mail.example:25"),
            (
                "http://dev.example:8080/",
                "dev.example",
                "dev.example:8080",
            ),
            (
                "http://dev.example:9000/",
                "dev.example",
                "dev.example:9000",
            ),
            (
                "http://user:pw@dev.example:8500/",
                "dev.example",
                "dev.example:8500",
            ),
            ("http://192.168.1.10/", "192.168.1.10", "192.168.1.10:80"),
            ("http://172.20.0.1/", "172.20.0.1", "172.20.0.1:80"),
            ("http://100.100.0.1/", "100.100.0.1", "100.100.0.1:80"),
            ("http://8.8.8.8/", "8.8.8.8", "8.8.8.8:80"),
            ("http://localhost:3000/", "localhost", "localhost:3000"),
            ("http://app.localhost/", "app.localhost", "app.localhost:80"),
            ("http://printer.lan/", "printer.lan", "printer.lan:80"),
            ("https://example.com/", "example.com", "example.com:443"),
            ("wss://example.com/ws", "example.com", "example.com:443"),
            ("ftp://example.com/", "example.com", "example.com:21"),
        ];
        let mut script = String::from(
            "function dnsDomainIs(h, d) { return h.length >= d.length && h.substring(h.length - d.length) == d; }\n\
             function isInNet(h, p, m) {\n\
               if (!/^\\d+\\.\\d+\\.\\d+\\.\\d+$/.test(h)) throw new Error('isInNet on a name: ' + h);\n\
               var n = function (s) { var p = s.split('.'); return (((+p[0]) << 24) | ((+p[1]) << 16) | ((+p[2]) << 8) | (+p[3])) >>> 0; };\n\
               return ((n(h) & n(m)) >>> 0) == ((n(p) & n(m)) >>> 0); }\n",
        );
        script.push_str(&router.pac(proxy));
        script.push_str("var out = [];\n");
        for (url, host, _) in &cases {
            let _ = writeln!(script, "out.push(FindProxyForURL({url:?}, {host:?}));");
        }
        script.push_str("console.log(JSON.stringify(out));\n");
        let output = std::process::Command::new("node")
            .arg("-e")
            .arg(&script)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "node failed: {}\n{script}",
            String::from_utf8_lossy(&output.stderr)
        );
        let results: Vec<String> = serde_json::from_slice(&output.stdout).unwrap();
        let to_proxy = format!("SOCKS5 {proxy}; PROXY {proxy}");
        for ((url, _, target), got) in cases.iter().zip(results) {
            let decision = router.decide(&TargetAddr::parse(target).unwrap());
            let want = match decision.action {
                Action::Direct => "DIRECT",
                _ => to_proxy.as_str(),
            };
            // An IPv6 host the PAC cannot judge goes to the proxy, which
            // decides exactly: acceptable whatever the rule says.
            let undecided = target.starts_with('[') && got == to_proxy;
            assert!(
                got == want || undecided,
                "{url}: PAC {got:?}, router {}",
                decision.label
            );
        }
    }
}
