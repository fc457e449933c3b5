//! permessage-deflate payloads (RFC 7692 §7.2): compressing what the server sends, inflating
//! what a client sends.
//!
//! The server always negotiates `server_no_context_takeover`, so each outgoing message is
//! compressed on its own: raw DEFLATE, a sync flush, and the trailing `00 00 ff ff` removed.
//! That makes the compressed bytes a function of the message alone, which is what lets one
//! compressed copy of an event serve every subscriber (`text.rs`). One compressor per worker
//! thread does all of it. Inbound messages are inflated with the client's context kept from
//! one message to the next, unless `client_no_context_takeover` was negotiated, and the
//! output is checked against `max_message_size` while it grows: a decompression bomb costs at
//! most the limit in memory before the connection is closed with 1009.

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::cell::RefCell;

/// DEFLATE level for everything the server sends: the default trade of speed for size.
/// Each broadcast event is compressed once, so the level costs little CPU per subscriber.
const LEVEL: u32 = 6;
/// What a sync flush ends with, and what the sender removes (RFC 7692 §7.2.1).
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

thread_local! {
    /// The worker thread's compressor, reset before each message (no context is kept).
    static COMPRESSOR: RefCell<Option<Compress>> = const { RefCell::new(None) };
    /// The worker thread's decompressor for clients that keep no context between messages.
    static SHARED_INFLATE: RefCell<Option<Decompress>> = const { RefCell::new(None) };
}

#[cfg(test)]
thread_local! {
    /// Compressions done on this thread, so tests can count them without racing each other.
    static COMPRESSIONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Compressions done so far on this thread (tests only).
#[cfg(test)]
pub fn compressions_on_this_thread() -> u64 {
    COMPRESSIONS.get()
}

/// The permessage-deflate form of one message, or `None` when it would not be smaller.
pub fn compress(plain: &[u8]) -> Option<Bytes> {
    #[cfg(test)]
    COMPRESSIONS.set(COMPRESSIONS.get() + 1);
    COMPRESSOR.with_borrow_mut(|slot| {
        let compressor = slot.get_or_insert_with(|| Compress::new(Compression::new(LEVEL), false));
        compressor.reset();
        let mut out = Vec::with_capacity(plain.len() / 2 + 64);
        let mut rest = plain;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(64));
            }
            let before = compressor.total_in();
            compressor.compress_vec(rest, &mut out, FlushCompress::Sync).ok()?;
            rest = &rest[(compressor.total_in() - before) as usize..];
            // Everything went in and the flush had room to finish.
            if rest.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        let body = out.strip_suffix(&SYNC_TAIL)?.len();
        if body >= plain.len() {
            return None;
        }
        out.truncate(body);
        Some(Bytes::from(out))
    })
}

/// Why an inbound compressed message was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum InflateError {
    /// It inflates past `max_message_size` (close 1009).
    TooBig,
    /// It is not a valid DEFLATE stream (close 1007).
    Corrupt,
}

/// A connection's inflater.
#[derive(Debug)]
pub enum Inflater {
    /// The client's LZ77 window carries over between messages; made on first use, so a
    /// client that never sends a compressed message costs nothing.
    ContextTakeover(Option<Box<Decompress>>),
    /// `client_no_context_takeover`: each message stands alone, so the thread's shared
    /// decompressor serves every such connection.
    NoContextTakeover,
}

impl Inflater {
    /// The inflater for the negotiated parameters.
    pub fn new(client_no_context_takeover: bool) -> Inflater {
        if client_no_context_takeover {
            Inflater::NoContextTakeover
        } else {
            Inflater::ContextTakeover(None)
        }
    }

    /// Inflates one message, at most `max` bytes of it.
    pub fn inflate(&mut self, compressed: &[u8], max: usize) -> Result<Bytes, InflateError> {
        match self {
            Inflater::ContextTakeover(slot) => {
                let decompress = slot.get_or_insert_with(|| Box::new(Decompress::new(false)));
                inflate(decompress, compressed, max)
            }
            Inflater::NoContextTakeover => SHARED_INFLATE.with_borrow_mut(|slot| {
                let decompress = slot.get_or_insert_with(|| Decompress::new(false));
                decompress.reset(false);
                inflate(decompress, compressed, max)
            }),
        }
    }
}

fn inflate(decompress: &mut Decompress, compressed: &[u8], max: usize) -> Result<Bytes, InflateError> {
    // One byte past the limit is proof enough that the message is too big.
    let cap = max.saturating_add(1);
    let mut out: Vec<u8> = Vec::new();
    for input in [compressed, &SYNC_TAIL[..]] {
        let mut rest = input;
        loop {
            if out.len() == out.capacity() {
                if out.len() >= cap {
                    return Err(InflateError::TooBig);
                }
                let grow = out.capacity().max(compressed.len().saturating_mul(2)).max(1024);
                out.reserve_exact(grow.min(cap - out.len()));
            }
            let before_in = decompress.total_in();
            let before_out = out.len();
            let status = decompress
                .decompress_vec(rest, &mut out, FlushDecompress::Sync)
                .map_err(|_| InflateError::Corrupt)?;
            rest = &rest[(decompress.total_in() - before_in) as usize..];
            if out.len() > max {
                return Err(InflateError::TooBig);
            }
            if status == Status::StreamEnd {
                // A final block ends the stream: what follows starts a new one.
                decompress.reset(false);
                return Ok(Bytes::from(out));
            }
            let room = out.len() < out.capacity();
            if rest.is_empty() && room {
                break;
            }
            // Room to write, input left, and nothing happened: the stream is stuck.
            if room && out.len() == before_out && decompress.total_in() == before_in {
                return Err(InflateError::Corrupt);
            }
        }
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::DeflateEncoder;
    use std::io::Write;

    fn json(n: usize) -> Vec<u8> {
        let mut s = String::from("[");
        for i in 0..n {
            s.push_str(&format!("{{\"id\":{i},\"name\":\"item {i}\",\"ok\":true}},"));
        }
        s.push_str("null]");
        s.into_bytes()
    }

    #[test]
    fn compressed_messages_inflate_back_and_stand_alone() {
        let mut inflater = Inflater::new(false);
        for n in [5, 50, 2000] {
            let plain = json(n);
            let compressed = compress(&plain).expect("JSON compresses");
            assert!(compressed.len() < plain.len() / 2);
            assert!(!compressed.ends_with(&SYNC_TAIL));
            // The same bytes every time: no context is carried between messages.
            assert_eq!(compress(&plain), Some(compressed.clone()));
            assert_eq!(inflater.inflate(&compressed, plain.len()).expect("inflates"), plain);
        }
    }

    #[test]
    fn incompressible_or_tiny_messages_stay_plain() {
        assert_eq!(compress(b"ab"), None);
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                // xorshift64: bytes with no structure for DEFLATE to find.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 32) as u8
            })
            .collect();
        assert_eq!(compress(&noise), None);
    }

    /// What a client with context takeover sends: one deflate stream, sync-flushed per message.
    fn client_stream(messages: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut encoder = DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        let mut out = Vec::new();
        for message in messages {
            encoder.write_all(message).expect("write");
            encoder.flush().expect("sync flush");
            let mut frame = std::mem::take(encoder.get_mut());
            assert!(frame.ends_with(&SYNC_TAIL));
            frame.truncate(frame.len() - 4);
            out.push(frame);
        }
        out
    }

    #[test]
    fn the_client_context_carries_over_unless_negotiated_away() {
        let first = json(20);
        let frames = client_stream(&[&first, &first]);
        assert!(
            frames[1].len() < frames[0].len() / 4,
            "the second refers back to the first"
        );
        let mut kept = Inflater::new(false);
        assert_eq!(kept.inflate(&frames[0], 1 << 20).expect("first"), first);
        assert_eq!(kept.inflate(&frames[1], 1 << 20).expect("second"), first);
        // Without the first message's window the back-references are invalid.
        let mut fresh = Inflater::new(true);
        assert_eq!(fresh.inflate(&frames[0], 1 << 20).expect("first"), first);
        assert_ne!(fresh.inflate(&frames[1], 1 << 20).ok(), Some(Bytes::from(first)));
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let zeros = vec![0u8; 10 << 20];
        let bomb = client_stream(&[&zeros]).remove(0);
        assert!(bomb.len() < 20 * 1024, "{} bytes", bomb.len());
        let mut inflater = Inflater::new(false);
        assert_eq!(inflater.inflate(&bomb, 1 << 20), Err(InflateError::TooBig));
        // Exactly at the limit is fine.
        let exact = client_stream(&[&zeros[..1 << 20]]).remove(0);
        assert_eq!(
            Inflater::new(true).inflate(&exact, 1 << 20).map(|b| b.len()),
            Ok(1 << 20)
        );
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        for garbage in [&[0xFFu8; 16][..], &[0x07, 0x00, 0x00], b"not deflate at all"] {
            let result = Inflater::new(true).inflate(garbage, 1024);
            assert_eq!(result, Err(InflateError::Corrupt), "{garbage:?}");
        }
    }
}
