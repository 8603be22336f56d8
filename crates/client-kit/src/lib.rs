//! Client pieces shared by every protocol's client crate and owned by none:
//! how a server's certificate is trusted ([`TlsOptions`], [`client_config`]
//! and the SPKI pin, [`spki_sha256`]), and what every saved profile shares
//! (the default proxy address, the pin's text form, the local proxy
//! settings).
//!
//! HTTVPS and HT clients both dial TLS servers the same way; keeping it here
//! means a fix to trust handling lands in both.
#![warn(missing_docs)]

mod profile;
mod tls;

pub use profile::{DEFAULT_LISTEN, MissingProxyPassword, decode_pin, proxy_config};

pub use tls::{
    TlsError, TlsOptions, client_config, client_config_with_versions, provider, spki_sha256,
};
