//! The RFC 6455 §5.2 frame header: parsed from what a client sends, encoded for what the
//! server sends. Pure bytes in, bytes out, no I/O.
//!
//! Parsing refuses only what is wrong in the header itself (a reserved opcode, a control frame
//! over 125 bytes or fragmented, a 64-bit length with its top bit set); what depends on the
//! connection's state (masking, RSV bits, continuation rules, size limits) is checked by
//! `assemble.rs`, before the payload is read.

use bytes::BufMut;
use thiserror::Error;

/// Longest payload of a control frame (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: u64 = 125;
/// Longest header: 2 bytes, a 64-bit length and a mask.
pub const MAX_HEADER_LEN: usize = 14;

/// A frame's opcode (RFC 6455 §5.2); the reserved ones are refused by the parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    /// 0x0: a later fragment of a data message.
    Continuation,
    /// 0x1: the first frame of a text message.
    Text,
    /// 0x2: the first frame of a binary message.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    fn from_bits(bits: u8) -> Option<OpCode> {
        Some(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Close, Ping and Pong.
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// A frame header as it is on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The last frame of its message.
    pub fin: bool,
    /// RSV1: "compressed" once permessage-deflate is negotiated (RFC 7692 §6).
    pub rsv1: bool,
    /// RSV2: no extension of ours uses it.
    pub rsv2: bool,
    /// RSV3: no extension of ours uses it.
    pub rsv3: bool,
    /// What the frame is.
    pub opcode: OpCode,
    /// The masking key; every client frame has one, no server frame does.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes.
    pub payload_len: u64,
}

/// A header that no connection state could make valid.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    /// Opcodes 0x3–0x7 and 0xB–0xF.
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// A control frame with more than 125 bytes of payload.
    #[error("control frame with {0} bytes of payload (at most 125)")]
    ControlTooLong(u64),
    /// A control frame without FIN.
    #[error("fragmented control frame")]
    FragmentedControl,
    /// A 64-bit length whose most significant bit is set.
    #[error("payload length with the most significant bit set")]
    LengthOverflow,
}

impl FrameHeader {
    /// A final, unmasked frame of `opcode` (what the server sends).
    pub fn server(opcode: OpCode, rsv1: bool, payload_len: usize) -> FrameHeader {
        FrameHeader {
            fin: true,
            rsv1,
            rsv2: false,
            rsv3: false,
            opcode,
            mask: None,
            payload_len: payload_len as u64,
        }
    }

    /// Parses the header at the start of `buf`: `Ok(None)` while more bytes are needed,
    /// else the header and how many bytes it took.
    pub fn parse(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, FrameError> {
        let [first, second, ..] = *buf else {
            return Ok(None);
        };
        let opcode = OpCode::from_bits(first & 0x0F).ok_or(FrameError::ReservedOpcode(first & 0x0F))?;
        let fin = first & 0x80 != 0;
        let masked = second & 0x80 != 0;
        let (payload_len, mut at) = match second & 0x7F {
            126 => match buf.get(2..4) {
                Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
                None => return Ok(None),
            },
            127 => match buf.get(2..10) {
                Some(b) => {
                    let mut len = [0; 8];
                    len.copy_from_slice(b);
                    let len = u64::from_be_bytes(len);
                    if len >> 63 != 0 {
                        return Err(FrameError::LengthOverflow);
                    }
                    (len, 10)
                }
                None => return Ok(None),
            },
            short => (u64::from(short), 2),
        };
        if opcode.is_control() {
            if !fin {
                return Err(FrameError::FragmentedControl);
            }
            if payload_len > MAX_CONTROL_PAYLOAD {
                return Err(FrameError::ControlTooLong(payload_len));
            }
        }
        let mask = if masked {
            let Some(key) = buf.get(at..at + 4) else {
                return Ok(None);
            };
            at += 4;
            Some([key[0], key[1], key[2], key[3]])
        } else {
            None
        };
        let header = FrameHeader {
            fin,
            rsv1: first & 0x40 != 0,
            rsv2: first & 0x20 != 0,
            rsv3: first & 0x10 != 0,
            opcode,
            mask,
            payload_len,
        };
        Ok(Some((header, at)))
    }

    /// Bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        let length = match self.payload_len {
            0..=125 => 0,
            126..=0xFFFF => 2,
            _ => 8,
        };
        2 + length + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Writes the header, with the shortest length encoding.
    pub fn encode(&self, out: &mut impl BufMut) {
        let mut first = self.opcode.bits();
        for (set, bit) in [
            (self.fin, 0x80),
            (self.rsv1, 0x40),
            (self.rsv2, 0x20),
            (self.rsv3, 0x10),
        ] {
            if set {
                first |= bit;
            }
        }
        out.put_u8(first);
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        match self.payload_len {
            len @ 0..=125 => out.put_u8(mask_bit | len as u8),
            len @ 126..=0xFFFF => {
                out.put_u8(mask_bit | 126);
                out.put_u16(len as u16);
            }
            len => {
                out.put_u8(mask_bit | 127);
                out.put_u64(len);
            }
        }
        if let Some(mask) = self.mask {
            out.put_slice(&mask);
        }
    }
}

/// XORs `data` with the masking key (RFC 6455 §5.3); applying it twice restores the data.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3]]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // Chunks are a multiple of 4 bytes long, so the key starts over at the remainder.
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use proptest::prelude::*;

    fn encoded(header: &FrameHeader) -> Vec<u8> {
        let mut out = BytesMut::new();
        header.encode(&mut out);
        assert_eq!(out.len(), header.encoded_len());
        out.to_vec()
    }

    #[test]
    fn parses_the_rfc_examples() {
        // RFC 6455 §5.7: a single-frame masked text message "Hello".
        let frame = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        let (header, len) = FrameHeader::parse(&frame).expect("valid").expect("complete");
        assert_eq!(len, 6);
        assert!(header.fin);
        assert_eq!(header.opcode, OpCode::Text);
        assert_eq!(header.payload_len, 5);
        let mut payload = frame[6..].to_vec();
        apply_mask(&mut payload, header.mask.expect("masked"));
        assert_eq!(payload, b"Hello");
        // An unmasked Ping with "Hello", and a 256-byte binary frame's 16-bit length.
        let (ping, _) = FrameHeader::parse(&[0x89, 0x05]).expect("valid").expect("complete");
        assert_eq!((ping.opcode, ping.mask, ping.payload_len), (OpCode::Ping, None, 5));
        let (binary, len) = FrameHeader::parse(&[0x82, 0x7E, 0x01, 0x00])
            .expect("valid")
            .expect("complete");
        assert_eq!((binary.opcode, binary.payload_len, len), (OpCode::Binary, 256, 4));
    }

    #[test]
    fn waits_for_a_complete_header() {
        let header = FrameHeader {
            mask: Some([1, 2, 3, 4]),
            ..FrameHeader::server(OpCode::Binary, true, 70_000)
        };
        let bytes = encoded(&header);
        assert_eq!(bytes.len(), 14);
        for cut in 0..bytes.len() {
            assert_eq!(FrameHeader::parse(&bytes[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(FrameHeader::parse(&bytes), Ok(Some((header, 14))));
    }

    #[test]
    fn uses_the_shortest_length_encoding() {
        for (len, header_len) in [(0, 2), (125, 2), (126, 4), (65_535, 4), (65_536, 10), (1 << 40, 10)] {
            let header = FrameHeader::server(OpCode::Text, false, len);
            assert_eq!(encoded(&header).len(), header_len, "length {len}");
        }
    }

    #[test]
    fn refuses_what_no_state_makes_valid() {
        for opcode in [0x3, 0x7, 0xB, 0xF] {
            assert_eq!(
                FrameHeader::parse(&[0x80 | opcode, 0x80]),
                Err(FrameError::ReservedOpcode(opcode))
            );
        }
        assert_eq!(
            FrameHeader::parse(&[0x89, 0xFE, 0x00, 0x7E]),
            Err(FrameError::ControlTooLong(126))
        );
        assert_eq!(FrameHeader::parse(&[0x09, 0x80]), Err(FrameError::FragmentedControl));
        assert_eq!(FrameHeader::parse(&[0x08, 0x00]), Err(FrameError::FragmentedControl));
        let mut huge = vec![0x82, 0xFF];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(FrameHeader::parse(&huge), Err(FrameError::LengthOverflow));
    }

    #[test]
    fn masking_is_its_own_inverse_at_every_length() {
        let mask = [0xA1, 0x02, 0xF3, 0x44];
        for len in 0..40 {
            let original: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut data = original.clone();
            apply_mask(&mut data, mask);
            let bytewise: Vec<u8> = original.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]).collect();
            assert_eq!(data, bytewise, "length {len}");
            apply_mask(&mut data, mask);
            assert_eq!(data, original);
        }
    }

    fn any_opcode() -> impl Strategy<Value = OpCode> {
        prop_oneof![
            Just(OpCode::Continuation),
            Just(OpCode::Text),
            Just(OpCode::Binary),
            Just(OpCode::Close),
            Just(OpCode::Ping),
            Just(OpCode::Pong),
        ]
    }

    proptest! {
        #[test]
        fn any_bytes_parse_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            if let Ok(Some((header, len))) = FrameHeader::parse(&bytes) {
                prop_assert!(len <= bytes.len() && len <= MAX_HEADER_LEN);
                prop_assert_eq!(len, header.encoded_len());
            }
        }

        #[test]
        fn valid_headers_round_trip(
            opcode in any_opcode(),
            fin in any::<bool>(),
            rsv in (any::<bool>(), any::<bool>(), any::<bool>()),
            mask in proptest::option::of(any::<[u8; 4]>()),
            len in prop_oneof![0u64..=125, 126u64..=0xFFFF, 0x1_0000u64..(1 << 63)],
            trailing in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let control = opcode.is_control();
            let header = FrameHeader {
                fin: fin || control,
                rsv1: rsv.0,
                rsv2: rsv.1,
                rsv3: rsv.2,
                opcode,
                mask,
                payload_len: if control { len % (MAX_CONTROL_PAYLOAD + 1) } else { len },
            };
            let mut bytes = encoded(&header);
            let header_len = bytes.len();
            bytes.extend_from_slice(&trailing);
            prop_assert_eq!(FrameHeader::parse(&bytes), Ok(Some((header, header_len))));
        }
    }
}
