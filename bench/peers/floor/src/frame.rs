//! WebSocket framing, RFC 6455 §5, reduced to what a broadcast needs: client frames are
//! unmasked and reassembled into messages; server frames are encoded once, unmasked, and the
//! same bytes are queued to every socket.

use std::io;
use std::sync::Arc;

/// One encoded server frame, shared by every socket it is queued to.
pub type Frame = Arc<[u8]>;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// A client message bigger than this closes the connection.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// A complete message from a client.
#[derive(Debug, PartialEq, Eq)]
pub enum Message {
    /// A text or binary message, with its opcode.
    Data(u8, Vec<u8>),
    Ping(Vec<u8>),
    Close(Vec<u8>),
}

/// Encodes one final, unmasked server frame.
pub fn encode(opcode: u8, payload: &[u8]) -> Frame {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= 0xffff => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out.into()
}

/// Turns the bytes a client sends into messages. Holds no buffer until the client sends
/// something, so an idle subscriber costs nothing here.
#[derive(Debug, Default)]
pub struct Reader {
    /// Received bytes not yet parsed into a frame.
    buf: Vec<u8>,
    /// The opcode and payload of a fragmented message still being assembled.
    partial: Option<(u8, Vec<u8>)>,
}

impl Reader {
    pub fn new(initial: Vec<u8>) -> Self {
        Reader {
            buf: initial,
            partial: None,
        }
    }

    /// Where the next read goes: the buffer, with room for at least `n` more bytes.
    pub fn buffer(&mut self, n: usize) -> &mut Vec<u8> {
        self.buf.reserve(n);
        &mut self.buf
    }

    /// The next complete message in the buffer, if one has arrived. Pongs are skipped.
    pub fn next_message(&mut self) -> io::Result<Option<Message>> {
        loop {
            let Some((fin, opcode, payload)) = self.next_frame()? else {
                return Ok(None);
            };
            match opcode {
                OP_PING => return Ok(Some(Message::Ping(payload))),
                OP_CLOSE => return Ok(Some(Message::Close(payload))),
                OP_PONG => {}
                OP_TEXT | OP_BINARY if self.partial.is_none() => {
                    if fin {
                        return Ok(Some(Message::Data(opcode, payload)));
                    }
                    self.partial = Some((opcode, payload));
                }
                OP_CONTINUATION if self.partial.is_some() => {
                    let Some((kind, mut message)) = self.partial.take() else {
                        unreachable!("checked by the match guard");
                    };
                    if message.len() + payload.len() > MAX_MESSAGE {
                        return Err(protocol("message too big"));
                    }
                    message.extend_from_slice(&payload);
                    if fin {
                        return Ok(Some(Message::Data(kind, message)));
                    }
                    self.partial = Some((kind, message));
                }
                _ => return Err(protocol("unexpected opcode")),
            }
        }
    }

    /// Parses and unmasks one frame off the front of the buffer: `(fin, opcode, payload)`.
    fn next_frame(&mut self) -> io::Result<Option<(bool, u8, Vec<u8>)>> {
        let buf = &self.buf;
        if buf.len() < 2 {
            return Ok(None);
        }
        let fin = buf[0] & 0x80 != 0;
        let opcode = buf[0] & 0x0f;
        if buf[1] & 0x80 == 0 {
            return Err(protocol("client frame not masked"));
        }
        let (len, mut at) = match buf[1] & 0x7f {
            126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
            127 if buf.len() >= 10 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&buf[2..10]);
                (usize::try_from(u64::from_be_bytes(n)).unwrap_or(usize::MAX), 10)
            }
            126 | 127 => return Ok(None),
            n => (n as usize, 2),
        };
        if len > MAX_MESSAGE {
            return Err(protocol("frame too big"));
        }
        if buf.len() < at + 4 + len {
            return Ok(None);
        }
        let mask = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
        at += 4;
        let payload = buf[at..at + len]
            .iter()
            .zip(mask.iter().cycle())
            .map(|(b, m)| b ^ m)
            .collect();
        self.buf.drain(..at + len);
        Ok(Some((fin, opcode, payload)))
    }
}

fn protocol(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("websocket: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame, as a browser would send it.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        out
    }

    #[test]
    fn encodes_each_length_form() {
        assert_eq!(&encode(OP_TEXT, b"hi")[..], b"\x81\x02hi");
        let medium = encode(OP_TEXT, &[b'x'; 300]);
        assert_eq!(&medium[..4], &[0x81, 126, 1, 44]);
        let large = encode(OP_BINARY, &vec![0; 70_000]);
        assert_eq!(&large[..10], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    }

    #[test]
    fn reads_messages_split_anywhere() {
        let mut bytes = client_frame(true, OP_TEXT, b"hello");
        bytes.extend(client_frame(false, OP_BINARY, &[1; 200]));
        bytes.extend(client_frame(true, OP_PONG, b""));
        bytes.extend(client_frame(true, OP_CONTINUATION, &[2; 3]));
        bytes.extend(client_frame(true, OP_CLOSE, b"\x03\xe8"));
        let mut reader = Reader::default();
        let mut got = Vec::new();
        for byte in bytes {
            reader.buffer(1).push(byte);
            while let Some(message) = reader.next_message().expect("valid frames") {
                got.push(message);
            }
        }
        let mut binary = vec![1; 200];
        binary.extend([2; 3]);
        assert_eq!(
            got,
            [
                Message::Data(OP_TEXT, b"hello".to_vec()),
                Message::Data(OP_BINARY, binary),
                Message::Close(b"\x03\xe8".to_vec()),
            ]
        );
    }

    #[test]
    fn refuses_unmasked_frames() {
        let mut reader = Reader::new(b"\x81\x02hi".to_vec());
        assert!(reader.next_message().is_err());
    }
}
