//! The body of every load message, `{"s":SEQ,"p":STREAM,"t":SENT_MICROS,"x":"xx…"}` padded to
//! the asked size, and the cheap reader receivers use on whatever frame carries it (a wshub
//! event envelope, a Socket.IO `42[…]` packet or the bare body): it looks for the three keys
//! and reads their digits, without parsing the rest.

use std::fmt::Write;

/// What a receiver needs from a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Position in its stream, from 0.
    pub seq: u64,
    /// The sequence stream: one per publishing connection (or HTTP lane).
    pub stream: u32,
    /// Send time, microseconds since the Unix epoch on the run's [`Clock`](super::clock::Clock).
    pub sent_micros: u64,
}

/// Appends the body for `stamp` to `out`, padded with `x` so the body is `size` bytes (or the
/// smallest it can be, when `size` is less than that).
pub fn write_body(out: &mut String, stamp: Stamp, size: usize) {
    let start = out.len();
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        r#"{{"s":{},"p":{},"t":{},"x":""#,
        stamp.seq, stamp.stream, stamp.sent_micros
    );
    let written = out.len() - start + 2;
    out.extend(std::iter::repeat_n('x', size.saturating_sub(written)));
    out.push_str("\"}");
}

/// The size of the smallest body (a 16-digit send time, small numbers otherwise).
pub fn smallest_body() -> usize {
    let mut body = String::new();
    let stamp = Stamp {
        seq: 0,
        stream: 0,
        sent_micros: 1_000_000_000_000_000,
    };
    write_body(&mut body, stamp, 0);
    body.len()
}

/// The stamp in `text`, if it carries one.
pub fn read_stamp(text: &str) -> Option<Stamp> {
    Some(Stamp {
        seq: number_after(text, "\"s\":")?,
        stream: u32::try_from(number_after(text, "\"p\":")?).ok()?,
        sent_micros: number_after(text, "\"t\":")?,
    })
}

/// The unsigned integer right after `key` (whitespace allowed between). A key pattern such as
/// `"s":` cannot occur inside a JSON string, where its quotes would be escaped.
fn number_after(text: &str, key: &str) -> Option<u64> {
    let at = text.find(key)? + key.len();
    let digits = text[at..].trim_start();
    let end = digits.bytes().position(|b| !b.is_ascii_digit()).unwrap_or(digits.len());
    digits[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAMP: Stamp = Stamp {
        seq: 42,
        stream: 3,
        sent_micros: 1_700_000_000_123_456,
    };

    #[test]
    fn bodies_are_padded_to_size_and_valid_json() {
        for size in [1, 50, 100, 1000] {
            let mut body = String::new();
            write_body(&mut body, STAMP, size);
            let minimum = r#"{"s":42,"p":3,"t":1700000000123456,"x":""}"#.len();
            assert_eq!(body.len(), size.max(minimum), "{body}");
            let value: serde_json::Value = serde_json::from_str(&body).expect("JSON");
            assert_eq!(value["s"], 42);
            assert_eq!(value["t"], 1_700_000_000_123_456_u64);
        }
    }

    #[test]
    fn stamps_are_read_from_any_wrapping() {
        let mut body = String::new();
        write_body(&mut body, STAMP, 100);
        let wshub = format!(
            r#"{{"type":"bench","topic":"bench","payload":{body},"id":"evt_1","offset":7,"epoch":"e","timestamp":1,"sender_id":"server"}}"#
        );
        let socketio = format!(r#"42["bench",{body}]"#);
        for text in [body.as_str(), &wshub, &socketio] {
            assert_eq!(read_stamp(text), Some(STAMP), "{text}");
        }
        // Keys in another order and spaced out, as a server that re-encodes may send them.
        let reordered = r#"{"p": 3, "s": 42, "t": 1700000000123456, "x": "xx"}"#;
        assert_eq!(read_stamp(reordered), Some(STAMP));
    }

    #[test]
    fn other_frames_have_no_stamp() {
        for text in [
            r#"{"type":"subscribed","payload":{"subscribed":[]}}"#,
            r#"{"type":"published","payload":{"offset":1,"epoch":"e"}}"#,
            "2",
            r#"{"s":"quoted","p":1,"t":2}"#,
            r#"{"x":"\"s\":1"}"#,
        ] {
            assert_eq!(read_stamp(text), None, "{text}");
        }
    }
}
