//! Message assembly (RFC 6455 §5.4–§5.6, RFC 7692 §6): from a client's frames to whole
//! messages and control events.
//!
//! Every rule that depends on the connection is checked from the header alone, before the
//! payload is read ([`Assembler::check`]): masking, the RSV bits, continuation order and the
//! size limit. So a frame that announces a 2⁶³-byte payload is refused without one byte of
//! it being buffered. Control frames may arrive between the fragments of a message and are
//! handed on at once. Text is checked for UTF-8 by the reader, after any decompression.

use super::frame::{FrameHeader, OpCode};
use super::reader::ReadError;
use bytes::{Bytes, BytesMut};
use wshub_protocol::CloseCode;

/// What one frame completed.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A whole data message, still compressed if `compressed`.
    Message {
        /// A text message (else binary).
        text: bool,
        /// Sent with RSV1: the payload is a permessage-deflate stream.
        compressed: bool,
        /// The reassembled payload.
        payload: Bytes,
    },
    /// A Ping with its application data (answered with a Pong carrying it).
    Ping(Bytes),
    /// A Pong.
    Pong,
    /// A Close, with the client's status code if it sent one.
    Close(Option<u16>),
}

/// A data message whose last frame has not arrived yet.
#[derive(Debug)]
struct Partial {
    text: bool,
    compressed: bool,
    data: BytesMut,
}

/// The per-connection state of message assembly.
#[derive(Debug)]
pub struct Assembler {
    /// Largest message: its payload on the wire, and its size once decompressed.
    max_message_size: usize,
    /// Whether permessage-deflate was negotiated (RSV1 allowed on a message's first frame).
    deflate: bool,
    partial: Option<Partial>,
}

impl Assembler {
    /// A fresh connection's assembler.
    pub fn new(max_message_size: usize, deflate: bool) -> Assembler {
        Assembler {
            max_message_size,
            deflate,
            partial: None,
        }
    }

    /// Largest compressed message on the wire: a little over the limit, since a client may
    /// send incompressible data as stored blocks (5 bytes of overhead per 64 KiB).
    fn wire_limit(&self, compressed: bool) -> usize {
        if compressed {
            self.max_message_size.saturating_add(self.max_message_size / 1024 + 64)
        } else {
            self.max_message_size
        }
    }

    /// Checks a frame's header against the connection's state, before its payload is read.
    pub fn check(&self, header: &FrameHeader) -> Result<(), ReadError> {
        if header.mask.is_none() {
            return Err(ReadError::Protocol("unmasked client frame".into()));
        }
        if header.rsv2 || header.rsv3 {
            return Err(ReadError::Protocol("RSV2 or RSV3 set".into()));
        }
        if header.rsv1 {
            if !self.deflate {
                return Err(ReadError::Protocol("RSV1 set without permessage-deflate".into()));
            }
            if !matches!(header.opcode, OpCode::Text | OpCode::Binary) {
                return Err(ReadError::Protocol(
                    "RSV1 set on a control or continuation frame".into(),
                ));
            }
        }
        let (buffered, compressed) = match (header.opcode, &self.partial) {
            (OpCode::Close | OpCode::Ping | OpCode::Pong, _) => return Ok(()),
            (OpCode::Continuation, None) => {
                return Err(ReadError::Protocol(
                    "continuation frame without a message to continue".into(),
                ));
            }
            (OpCode::Continuation, Some(partial)) => (partial.data.len(), partial.compressed),
            (OpCode::Text | OpCode::Binary, Some(_)) => {
                return Err(ReadError::Protocol("new message before the previous one ended".into()));
            }
            (OpCode::Text | OpCode::Binary, None) => (0, header.rsv1),
        };
        let limit = self.wire_limit(compressed) as u64;
        if (buffered as u64).saturating_add(header.payload_len) > limit {
            return Err(ReadError::TooBig);
        }
        Ok(())
    }

    /// Takes the unmasked payload of a frame that passed [`check`](Self::check).
    pub fn push(&mut self, header: &FrameHeader, payload: Bytes) -> Result<Option<Event>, ReadError> {
        match header.opcode {
            OpCode::Ping => Ok(Some(Event::Ping(payload))),
            OpCode::Pong => Ok(Some(Event::Pong)),
            OpCode::Close => close_payload(&payload).map(|code| Some(Event::Close(code))),
            OpCode::Text | OpCode::Binary => {
                let text = header.opcode == OpCode::Text;
                if header.fin {
                    return Ok(Some(Event::Message {
                        text,
                        compressed: header.rsv1,
                        payload,
                    }));
                }
                self.partial = Some(Partial {
                    text,
                    compressed: header.rsv1,
                    data: BytesMut::from(&payload[..]),
                });
                Ok(None)
            }
            OpCode::Continuation => {
                let Some(partial) = self.partial.as_mut() else {
                    return Err(ReadError::Protocol(
                        "continuation frame without a message to continue".into(),
                    ));
                };
                partial.data.extend_from_slice(&payload);
                if !header.fin {
                    return Ok(None);
                }
                let partial = self.partial.take().expect("present: extended just above");
                Ok(Some(Event::Message {
                    text: partial.text,
                    compressed: partial.compressed,
                    payload: partial.data.freeze(),
                }))
            }
        }
    }
}

/// The status code of a Close frame's payload (RFC 6455 §5.5.1, §7.4).
fn close_payload(payload: &[u8]) -> Result<Option<u16>, ReadError> {
    match payload {
        [] => Ok(None),
        [_] => Err(ReadError::Protocol("close frame with a 1-byte payload".into())),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            if !CloseCode::is_valid_on_wire(code) {
                return Err(ReadError::Protocol(format!("close code {code} may not be sent")));
            }
            if std::str::from_utf8(reason).is_err() {
                return Err(ReadError::InvalidPayload("close reason is not valid UTF-8".into()));
            }
            Ok(Some(code))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: Option<[u8; 4]> = Some([1, 2, 3, 4]);

    fn frame(opcode: OpCode, fin: bool, len: usize) -> FrameHeader {
        FrameHeader {
            fin,
            mask: MASK,
            ..FrameHeader::server(opcode, false, len)
        }
    }

    fn feed(a: &mut Assembler, header: FrameHeader, payload: &[u8]) -> Result<Option<Event>, ReadError> {
        a.check(&header)?;
        a.push(&header, Bytes::copy_from_slice(payload))
    }

    fn protocol(result: Result<impl std::fmt::Debug, ReadError>) -> String {
        match result {
            Err(ReadError::Protocol(why)) => why,
            other => panic!("expected a protocol error, got {other:?}"),
        }
    }

    #[test]
    fn reassembles_fragments_around_control_frames() {
        let mut a = Assembler::new(1024, false);
        assert_eq!(feed(&mut a, frame(OpCode::Text, false, 3), b"Hel"), Ok(None));
        assert_eq!(
            feed(&mut a, frame(OpCode::Ping, true, 2), b"hi"),
            Ok(Some(Event::Ping(Bytes::from_static(b"hi"))))
        );
        assert_eq!(feed(&mut a, frame(OpCode::Continuation, false, 1), b"l"), Ok(None));
        assert_eq!(feed(&mut a, frame(OpCode::Pong, true, 0), b""), Ok(Some(Event::Pong)));
        assert_eq!(
            feed(&mut a, frame(OpCode::Continuation, true, 1), b"o"),
            Ok(Some(Event::Message {
                text: true,
                compressed: false,
                payload: Bytes::from_static(b"Hello"),
            }))
        );
        // The next message starts cleanly.
        assert!(matches!(
            feed(&mut a, frame(OpCode::Binary, true, 1), b"x"),
            Ok(Some(Event::Message { text: false, .. }))
        ));
    }

    #[test]
    fn refuses_broken_fragmentation() {
        let mut a = Assembler::new(1024, false);
        protocol(feed(&mut a, frame(OpCode::Continuation, true, 1), b"x"));
        feed(&mut a, frame(OpCode::Text, false, 1), b"x").expect("first fragment");
        protocol(feed(&mut a, frame(OpCode::Text, true, 1), b"y"));
        protocol(feed(&mut a, frame(OpCode::Binary, true, 1), b"y"));
    }

    #[test]
    fn refuses_unmasked_frames_and_reserved_bits() {
        let a = Assembler::new(1024, false);
        protocol(a.check(&FrameHeader::server(OpCode::Text, false, 1)));
        let rsv2 = FrameHeader {
            rsv2: true,
            ..frame(OpCode::Text, true, 1)
        };
        protocol(a.check(&rsv2));
        let rsv3 = FrameHeader {
            rsv3: true,
            ..frame(OpCode::Text, true, 1)
        };
        protocol(a.check(&rsv3));
        let rsv1 = FrameHeader {
            rsv1: true,
            ..frame(OpCode::Text, true, 1)
        };
        protocol(a.check(&rsv1));
    }

    #[test]
    fn rsv1_only_on_the_first_frame_of_a_message_once_negotiated() {
        let mut a = Assembler::new(1024, true);
        let first = FrameHeader {
            rsv1: true,
            ..frame(OpCode::Text, false, 2)
        };
        assert_eq!(feed(&mut a, first, b"ab"), Ok(None));
        let continued = FrameHeader {
            rsv1: true,
            ..frame(OpCode::Continuation, true, 1)
        };
        protocol(a.check(&continued));
        let ping = FrameHeader {
            rsv1: true,
            ..frame(OpCode::Ping, true, 0)
        };
        protocol(a.check(&ping));
        assert_eq!(
            feed(&mut a, frame(OpCode::Continuation, true, 1), b"c"),
            Ok(Some(Event::Message {
                text: true,
                compressed: true,
                payload: Bytes::from_static(b"abc"),
            }))
        );
    }

    #[test]
    fn the_size_limit_holds_before_any_payload_is_read() {
        let mut a = Assembler::new(10, false);
        assert_eq!(a.check(&frame(OpCode::Binary, true, 11)), Err(ReadError::TooBig));
        let huge = FrameHeader {
            payload_len: 1 << 62,
            ..frame(OpCode::Binary, true, 0)
        };
        assert_eq!(a.check(&huge), Err(ReadError::TooBig));
        feed(&mut a, frame(OpCode::Text, false, 6), b"123456").expect("within");
        assert_eq!(a.check(&frame(OpCode::Continuation, true, 5)), Err(ReadError::TooBig));
        assert!(a.check(&frame(OpCode::Continuation, true, 4)).is_ok());
    }

    #[test]
    fn close_payloads() {
        let mut a = Assembler::new(1024, false);
        assert_eq!(
            feed(&mut a, frame(OpCode::Close, true, 0), b""),
            Ok(Some(Event::Close(None)))
        );
        let mut normal = 1000u16.to_be_bytes().to_vec();
        normal.extend_from_slice(b"bye");
        assert_eq!(
            feed(&mut a, frame(OpCode::Close, true, normal.len()), &normal),
            Ok(Some(Event::Close(Some(1000))))
        );
        protocol(feed(&mut a, frame(OpCode::Close, true, 1), b"x"));
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 2000, 5000] {
            protocol(feed(&mut a, frame(OpCode::Close, true, 2), &code.to_be_bytes()));
        }
        let bad_reason = [0x03, 0xE8, 0xFF];
        assert!(matches!(
            feed(&mut a, frame(OpCode::Close, true, 3), &bad_reason),
            Err(ReadError::InvalidPayload(_))
        ));
    }
}
