//! Text message bodies shared between connections, with their compressed form made once.
//!
//! An event is encoded once and every subscriber's queue holds a clone of the same
//! [`SharedText`]. With `server_no_context_takeover` the compressed bytes of a message depend
//! on the message alone, so the clones also share one lazily filled compressed copy: the first
//! writer of a compressing connection that sends the event fills it, every later one reuses
//! it. The hub compresses with one set of parameters (window 15, a fixed level), so one copy
//! serves every compressing subscriber.

use super::deflate;
use bytes::Bytes;
use std::sync::{Arc, OnceLock};

/// A text frame body that is shared between many connections without copying.
#[derive(Debug, Clone)]
pub struct SharedText {
    /// UTF-8, checked once at construction.
    bytes: Bytes,
    /// The compressed form shared by every clone (`None` inside: not worth compressing).
    /// Absent for a message written to one connection only, which compresses it itself.
    deflated: Option<Arc<OnceLock<Option<Bytes>>>>,
}

impl SharedText {
    /// Wraps bytes known to be UTF-8 JSON, to be sent to many connections: checked once here,
    /// then cloned for free, and compressed at most once for all of them.
    pub fn from_json(bytes: Bytes) -> Option<SharedText> {
        std::str::from_utf8(&bytes).ok()?;
        Some(SharedText {
            bytes,
            deflated: Some(Arc::default()),
        })
    }

    /// Wraps a freshly encoded reply for one connection.
    pub fn from_vec(bytes: Vec<u8>) -> Option<SharedText> {
        let text = String::from_utf8(bytes).ok()?;
        Some(SharedText {
            bytes: Bytes::from(text),
            deflated: None,
        })
    }

    /// The UTF-8 bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes, shared.
    pub(super) fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The permessage-deflate body, or `None` when compression would not make it smaller.
    /// Computed on the first call across all clones of a shared text, then reused.
    pub(crate) fn compressed(&self) -> Option<Bytes> {
        match &self.deflated {
            Some(cell) => cell.get_or_init(|| deflate::compress(&self.bytes)).clone(),
            None => deflate::compress(&self.bytes),
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_utf8() {
        assert!(SharedText::from_json(Bytes::from_static(b"\xFF")).is_none());
        assert!(SharedText::from_vec(vec![0xC3]).is_none());
        assert_eq!(SharedText::from_vec(b"{}".to_vec()).map(|t| t.len()), Some(2));
    }

    #[test]
    fn clones_of_a_shared_text_compress_once() {
        let body = Bytes::from("{\"event\":\"tick\",\"pad\":\"".to_owned() + &"abc".repeat(400) + "\"}");
        let text = SharedText::from_json(body).expect("utf-8");
        let clones: Vec<SharedText> = (0..100).map(|_| text.clone()).collect();
        let before = deflate::compressions_on_this_thread();
        let first = clones[0].compressed().expect("compresses");
        for clone in &clones {
            assert_eq!(
                clone.compressed().expect("compressed").as_ptr(),
                first.as_ptr(),
                "the same bytes"
            );
        }
        assert_eq!(deflate::compressions_on_this_thread() - before, 1);
    }
}
