//! The Go queen's config file (`--conf-path`, default there
//! `/etc/hlhv/hlhv.conf`): one `key value` per line, `#` comments.
//!
//! Parsed as the Go queen parses it: a line's first word is the key, the
//! rest of the line (trimmed) its value; a `#` starts a comment only as a
//! line's first non-blank character; a key without a value and unknown keys
//! are ignored; a later line wins; `alias a -> b`, `alias (fallback) -> x`
//! and `unalias a` edit the aliases (the loopback names start aliased to
//! `@`). Where we differ (docs/hlhv.md): the last line counts even without
//! a final newline (Go drops it); a number that does not parse is an error
//! (Go silently uses 0, which for `timeout` refuses every login); `connKey`
//! is required (Go then accepts every cell, with a warning).

use std::time::Duration;

use proto_hlhv::route::Aliases;

/// What a config file sets. Defaults are the Go queen's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfFile {
    /// `keyPath`: the TLS private key.
    pub key_path: String,
    /// `certPath`: the TLS certificate chain.
    pub cert_path: String,
    /// `connKey`: a bcrypt hash of the cell key.
    pub conn_key: Option<String>,
    /// `portHlhv`: the cells' port (all interfaces).
    pub port_hlhv: u16,
    /// `portHttps`: the public port (all interfaces).
    pub port_https: u16,
    /// `maxBandAge`: a band free this long is closed.
    pub max_band_age: Duration,
    /// `timeout`: the login deadline.
    pub timeout: Duration,
    /// `timeoutReadHeader`: the HTTP/1.1 request head bound.
    pub timeout_read_header: Duration,
    /// The aliases after every `alias`/`unalias` line.
    pub aliases: Aliases,
    /// Keys that were read but mean nothing to us, for a warning
    /// (`gardenFreq`, `timeoutRead`, `timeoutWrite`, `timeoutIdle`, unknown
    /// keys).
    pub ignored: Vec<String>,
}

impl Default for ConfFile {
    fn default() -> Self {
        ConfFile {
            key_path: "/var/hlhv/cert/key.pem".into(),
            cert_path: "/var/hlhv/cert/cert.pem".into(),
            conn_key: None,
            port_hlhv: 2001,
            port_https: 443,
            max_band_age: Duration::from_secs(60),
            timeout: Duration::from_secs(1),
            timeout_read_header: Duration::from_secs(5),
            aliases: Aliases::default(),
            ignored: Vec::new(),
        }
    }
}

/// Why a config file is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfError {
    /// A numeric key whose value is not a number of the right size.
    #[error("line {line}: {key} wants a number, got {value:?}")]
    BadNumber {
        /// 1-based line number.
        line: usize,
        /// The key.
        key: String,
        /// The value found.
        value: String,
    },
}

impl ConfFile {
    /// Parses a config file's text.
    pub fn parse(text: &str) -> Result<ConfFile, ConfError> {
        let mut conf = ConfFile::default();
        for (index, line) in text.split('\n').enumerate() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some(split) = line.find(char::is_whitespace) else {
                continue; // a key without a value
            };
            let (key, value) = (&line[..split], line[split..].trim());
            conf.apply(index + 1, key, value)?;
        }
        Ok(conf)
    }

    fn apply(&mut self, line: usize, key: &str, value: &str) -> Result<(), ConfError> {
        let number = |value: &str| {
            value.parse::<u64>().map_err(|_| ConfError::BadNumber {
                line,
                key: key.to_owned(),
                value: value.to_owned(),
            })
        };
        let port = |value: &str| {
            value.parse::<u16>().map_err(|_| ConfError::BadNumber {
                line,
                key: key.to_owned(),
                value: value.to_owned(),
            })
        };
        match key {
            "alias" => {
                // Go ignores an alias line without `->` or with an empty side.
                if let Some((from, to)) = value.split_once("->") {
                    let (from, to) = (from.trim(), to.trim());
                    if !from.is_empty() && !to.is_empty() {
                        if from == "(fallback)" {
                            self.aliases.set_fallback(to);
                        } else {
                            self.aliases.set(from, to);
                        }
                    }
                }
            }
            "unalias" => self.aliases.remove(value),
            "keyPath" => self.key_path = value.to_owned(),
            "certPath" => self.cert_path = value.to_owned(),
            "connKey" => self.conn_key = Some(value.to_owned()).filter(|k| !k.is_empty()),
            "portHlhv" => self.port_hlhv = port(value)?,
            "portHttps" => self.port_https = port(value)?,
            "maxBandAge" => self.max_band_age = Duration::from_secs(number(value)?),
            "timeout" => self.timeout = Duration::from_secs(number(value)?),
            "timeoutReadHeader" => self.timeout_read_header = Duration::from_secs(number(value)?),
            other => self.ignored.push(other.to_owned()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_go_config_parses_with_its_quirks() {
        let text = "# queen\n\
                    keyPath   /etc/k.pem  \n\
                    \tcertPath /etc/c.pem # not a comment\n\
                    connKey $2a$10$abc\n\
                    portHlhv 2002\n\
                    lonelykey\n\
                    gardenFreq 5\n\
                    alias www.demo.example -> demo.example\n\
                    alias broken\n\
                    alias (fallback) -> @\n\
                    unalias ::1\n\
                    portHttps 8443";
        let c = ConfFile::parse(text).unwrap();
        assert_eq!(c.key_path, "/etc/k.pem");
        assert_eq!(c.cert_path, "/etc/c.pem # not a comment");
        assert_eq!(c.conn_key.as_deref(), Some("$2a$10$abc"));
        assert_eq!(
            (c.port_hlhv, c.port_https),
            (2002, 8443),
            "the last line counts"
        );
        assert_eq!(c.timeout, Duration::from_secs(1));
        assert_eq!(c.ignored, vec!["gardenFreq"]);
        assert_eq!(
            c.aliases.resolve_request("www.demo.example"),
            "demo.example"
        );
        assert_eq!(c.aliases.resolve_request("localhost"), "@");
        assert_eq!(c.aliases.resolve_request("::1"), "@", "via the fallback");
        assert_eq!(c.aliases.resolve_request("other"), "@");
    }

    #[test]
    fn bad_numbers_are_errors() {
        assert_eq!(
            ConfFile::parse("timeout one\n"),
            Err(ConfError::BadNumber {
                line: 1,
                key: "timeout".into(),
                value: "one".into()
            })
        );
        assert!(ConfFile::parse("portHttps 70000\n").is_err());
        assert_eq!(ConfFile::parse("").unwrap(), ConfFile::default());
    }
}
