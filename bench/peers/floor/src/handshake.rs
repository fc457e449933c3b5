//! The opening HTTP exchange of RFC 6455, and nothing else: read the request head, answer
//! `101 Switching Protocols` with the `Sec-WebSocket-Accept` computed from the client's key.
//! No path, origin, subprotocol or extension is looked at; every path upgrades.

use std::io;

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The GUID RFC 6455 §1.3 appends to the client's key before hashing.
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A request head longer than this is refused: real handshakes are a few hundred bytes.
const MAX_HEAD: usize = 8 * 1024;

/// Reads the upgrade request from `stream` and answers it. Returns the bytes the client sent
/// after the request head (the start of its first frames, if it did not wait for the answer).
pub async fn accept(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let end = loop {
        if let Some(at) = find_head_end(&head) {
            break at;
        }
        if head.len() >= MAX_HEAD {
            return Err(invalid("request head too long"));
        }
        // Straight into the vector: a buffer on the stack would stay in every socket's task.
        head.reserve(1024);
        if stream.read_buf(&mut head).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    };
    let rest = head.split_off(end);
    let Some(key) = websocket_key(&head) else {
        stream
            .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await?;
        return Err(invalid("no Sec-WebSocket-Key"));
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key)
    );
    stream.write_all(response.as_bytes()).await?;
    Ok(rest)
}

/// The offset just past the blank line that ends an HTTP head, once it has arrived.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|at| at + 4)
}

/// The value of the `Sec-WebSocket-Key` header (names are case-insensitive).
fn websocket_key(head: &[u8]) -> Option<&[u8]> {
    head.split(|&b| b == b'\n').find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        let (name, value) = line.split_at(colon);
        name.eq_ignore_ascii_case(b"sec-websocket-key")
            .then(|| value[1..].trim_ascii())
    })
}

/// `base64(sha1(key + GUID))`, RFC 6455 §4.2.2.
fn accept_key(key: &[u8]) -> String {
    let mut sha1 = sha1_smol::Sha1::new();
    sha1.update(key);
    sha1.update(WEBSOCKET_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha1.digest().bytes())
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("handshake: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_the_rfc_example() {
        // RFC 6455 §1.3.
        assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn finds_the_key_in_any_case() {
        let head = b"GET / HTTP/1.1\r\nHost: x\r\nsec-websocket-KEY:  abc== \r\n\r\n";
        assert_eq!(websocket_key(head), Some(&b"abc=="[..]));
        assert_eq!(find_head_end(head), Some(head.len()));
    }
}
