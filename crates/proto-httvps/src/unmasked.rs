//! The `x-httvps-unmasked` WebSocket extension: client frames travel
//! without RFC 6455's mask, which inside TLS (or QUIC) protects nothing and
//! costs a pass over every byte on both sides. Offered by the client in
//! `Sec-WebSocket-Extensions` (the HTTP/1.1 upgrade, or the extended
//! CONNECT over HTTP/3) and listed back by a gateway that accepts it.

/// The extension token.
pub const UNMASKED_EXTENSION: &str = "x-httvps-unmasked";

/// Whether a `Sec-WebSocket-Extensions` value lists `name` (parameters
/// ignored, case-insensitive, several extensions per value).
pub fn lists_extension(value: &str, name: &str) -> bool {
    value.split(',').any(|e| {
        e.split(';')
            .next()
            .is_some_and(|n| n.trim().eq_ignore_ascii_case(name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_among_others_with_parameters() {
        assert!(lists_extension("x-httvps-unmasked", UNMASKED_EXTENSION));
        assert!(lists_extension(
            "permessage-deflate; client_max_window_bits, X-HTTVPS-Unmasked ; a=1",
            UNMASKED_EXTENSION
        ));
        assert!(!lists_extension(
            "x-httvps-unmasked-not",
            UNMASKED_EXTENSION
        ));
        assert!(!lists_extension("", UNMASKED_EXTENSION));
    }
}
