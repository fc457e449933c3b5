//! Checks that an HTTP request is a WebSocket upgrade the hub will accept (RFC 6455 §4.2).

use http::{HeaderMap, Method, header};
use thiserror::Error;

/// Why a request is not an acceptable WebSocket upgrade (answered with 400 or 426).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum UpgradeError {
    /// Not a GET.
    #[error("a WebSocket upgrade must be a GET request")]
    Method,
    /// `Connection: upgrade` / `Upgrade: websocket` missing.
    #[error("this endpoint speaks WebSocket: send Connection: Upgrade and Upgrade: websocket")]
    NotUpgrade,
    /// `Sec-WebSocket-Version` is not 13.
    #[error("unsupported Sec-WebSocket-Version (13 is required)")]
    Version,
    /// `Sec-WebSocket-Key` missing.
    #[error("missing Sec-WebSocket-Key")]
    Key,
}

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Validates the upgrade request and returns its `Sec-WebSocket-Key`.
pub fn validate_upgrade<'a>(method: &Method, headers: &'a HeaderMap) -> Result<&'a [u8], UpgradeError> {
    if method != Method::GET {
        return Err(UpgradeError::Method);
    }
    if !header_has_token(headers, header::CONNECTION, "upgrade")
        || !header_has_token(headers, header::UPGRADE, "websocket")
    {
        return Err(UpgradeError::NotUpgrade);
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
        return Err(UpgradeError::Version);
    }
    headers
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|v| v.as_bytes())
        .filter(|k| !k.is_empty())
        .ok_or(UpgradeError::Key)
}

/// The GUID every server appends to the client's key (RFC 6455 §1.3).
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Accept` value for a key: base64 of the SHA-1 of key and GUID.
pub fn accept_key(key: &[u8]) -> String {
    use base64::Engine;
    use sha1::{Digest, Sha1};
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(ACCEPT_GUID);
    base64::engine::general_purpose::STANDARD.encode(sha1.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn accepts_a_standard_upgrade() {
        let h = headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        let key = validate_upgrade(&Method::GET, &h).expect("valid");
        assert_eq!(accept_key(key), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn refuses_incomplete_upgrades() {
        let h = headers(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert_eq!(validate_upgrade(&Method::GET, &h), Err(UpgradeError::Version));
        assert_eq!(validate_upgrade(&Method::POST, &h), Err(UpgradeError::Method));
        assert_eq!(
            validate_upgrade(&Method::GET, &HeaderMap::new()),
            Err(UpgradeError::NotUpgrade)
        );
    }
}
