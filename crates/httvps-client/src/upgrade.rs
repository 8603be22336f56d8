//! The WebSocket upgrade (RFC 6455 §4.1), done here rather than by
//! tungstenite's client handshake so that the client can send its frames
//! unmasked when the gateway agrees.
//!
//! A client must mask every frame: the mask keeps a browser's payload from
//! being misread as HTTP by an intermediary that does not speak WebSocket.
//! Inside TLS no intermediary sees the payload, and masking costs a pass over
//! every byte on both sides. So the client offers the extension
//! [`UNMASKED_EXTENSION`] in `Sec-WebSocket-Extensions`; a gateway that
//! lists it in its 101 answer reads unmasked frames, and the client then
//! runs its side of the WebSocket in tungstenite's server role (which sends
//! unmasked frames) with unmasked frames accepted. A gateway that does not
//! list it gets the contract's masked frames, as before.

use http::Uri;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::error::ClientError;

pub use proto_httvps::unmasked::UNMASKED_EXTENSION;

/// The most a 101 answer's head may take; a gateway's is a few hundred bytes.
const MAX_HEAD: usize = 16 * 1024;

/// Upgrades `io` to a WebSocket at `uri`, offering unmasked client frames
/// when `offer_unmasked`; returns the WebSocket and whether the gateway
/// agreed to them.
pub(crate) async fn upgrade<S>(
    mut io: S,
    uri: &Uri,
    offer_unmasked: bool,
    config: WebSocketConfig,
) -> Result<(WebSocketStream<S>, bool), ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let failed = |why: String| ClientError::handshake(format!("WebSocket upgrade failed: {why}"));
    let key = generate_key();
    let host = uri
        .authority()
        .map(|a| a.as_str())
        .ok_or_else(|| failed("the URL has no host".into()))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    );
    if offer_unmasked {
        request.push_str(&format!(
            "Sec-WebSocket-Extensions: {UNMASKED_EXTENSION}\r\n"
        ));
    }
    request.push_str("\r\n");
    io.write_all(request.as_bytes())
        .await
        .map_err(|e| failed(e.to_string()))?;
    io.flush().await.map_err(|e| failed(e.to_string()))?;

    let mut buf = Vec::with_capacity(1024);
    let head_len = loop {
        let mut chunk = [0u8; 1024];
        let n = io
            .read(&mut chunk)
            .await
            .map_err(|e| failed(e.to_string()))?;
        if n == 0 {
            return Err(failed("the gateway closed the connection".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(failed(format!("an answer head over {MAX_HEAD} bytes")));
        }
    };
    let unmasked = check_answer(&buf[..head_len], &key, offer_unmasked).map_err(failed)?;
    let leftover = buf[head_len..].to_vec();
    let (role, config) = if unmasked {
        (Role::Server, config.accept_unmasked_frames(true))
    } else {
        (Role::Client, config)
    };
    let ws = WebSocketStream::from_partially_read(io, leftover, role, Some(config)).await;
    Ok((ws, unmasked))
}

/// Checks a 101 answer (RFC 6455 §4.1: status, `Upgrade`, `Connection`,
/// `Sec-WebSocket-Accept`, and no extension that was not offered); returns
/// whether the unmasked extension was agreed.
fn check_answer(head: &[u8], key: &str, offered_unmasked: bool) -> Result<bool, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut answer = httparse::Response::new(&mut headers);
    match answer.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err("an incomplete answer".into()),
        Err(e) => return Err(format!("an unreadable answer: {e}")),
    }
    if answer.code != Some(101) {
        return Err(format!(
            "the gateway answered {} {}",
            answer.code.unwrap_or(0),
            answer.reason.unwrap_or("")
        ));
    }
    let pairs: Vec<(&str, &str)> = answer
        .headers
        .iter()
        .filter_map(|h| Some((h.name, std::str::from_utf8(h.value).ok()?)))
        .collect();
    let values = |name: &str| -> Vec<&str> {
        pairs
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
            .collect()
    };
    let has_token = |name: &str, token: &str| {
        values(name)
            .iter()
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if !has_token("upgrade", "websocket") || !has_token("connection", "upgrade") {
        return Err("the answer does not upgrade to websocket".into());
    }
    let expected = derive_accept_key(key.as_bytes());
    if !values("sec-websocket-accept")
        .iter()
        .any(|v| v.trim() == expected)
    {
        return Err("a wrong Sec-WebSocket-Accept".into());
    }
    let mut unmasked = false;
    for extension in values("sec-websocket-extensions")
        .iter()
        .flat_map(|v| v.split(','))
    {
        let name = extension.split(';').next().unwrap_or("").trim();
        if name.is_empty() {
            continue;
        }
        if offered_unmasked && name.eq_ignore_ascii_case(UNMASKED_EXTENSION) {
            unmasked = true;
        } else {
            return Err(format!(
                "the gateway chose the extension {name:?}, never offered"
            ));
        }
    }
    Ok(unmasked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(key: &str, extra: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n{extra}\r\n",
            derive_accept_key(key.as_bytes())
        )
        .into_bytes()
    }

    #[test]
    fn the_extension_counts_only_when_offered_and_answered() {
        let key = generate_key();
        let ext = format!("Sec-WebSocket-Extensions: {UNMASKED_EXTENSION}\r\n");
        assert_eq!(check_answer(&answer(&key, &ext), &key, true), Ok(true));
        assert_eq!(check_answer(&answer(&key, ""), &key, true), Ok(false));
        assert!(check_answer(&answer(&key, &ext), &key, false).is_err());
        let deflate = "Sec-WebSocket-Extensions: permessage-deflate\r\n";
        assert!(check_answer(&answer(&key, deflate), &key, true).is_err());
    }

    #[test]
    fn a_wrong_accept_key_or_status_is_refused() {
        let key = generate_key();
        let other = generate_key();
        assert!(check_answer(&answer(&other, ""), &key, false).is_err());
        let not_found = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        let err = check_answer(not_found, &key, false).unwrap_err();
        assert!(err.contains("404"), "{err}");
    }
}
