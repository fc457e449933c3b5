//! Binary events (CONTRACT §12): `[version u8 = 1][kind u8][metadata length u32 BE][metadata JSON][body]`.
//! The CLI shows their metadata, and in `--json` mode the JSON form `history` replies use.

use base64::Engine;
use serde_json::{Value, json};

/// A decoded binary event.
#[derive(Debug)]
pub struct BinaryEvent {
    /// The metadata object: `topic`, `offset`, `epoch`, `timestamp`, `sender_id`, and per kind
    /// e.g. `format`, `width`, `height`.
    pub metadata: Value,
    kind: u8,
    body_len: usize,
    frame_b64: String,
}

impl BinaryEvent {
    /// Reads a frame's header and metadata; `Err` says what is wrong with it.
    pub fn decode(frame: &[u8]) -> Result<BinaryEvent, String> {
        let (&version, rest) = frame.split_first().ok_or("empty binary frame")?;
        if version != 1 {
            return Err(format!("binary frame of unknown version {version}"));
        }
        let (&kind, rest) = rest.split_first().ok_or("binary frame without a kind")?;
        let (length, rest) = rest
            .split_first_chunk::<4>()
            .ok_or("binary frame without a metadata length")?;
        let length = usize::try_from(u32::from_be_bytes(*length)).map_err(|_| "metadata length too large")?;
        if rest.len() < length {
            return Err("binary frame shorter than its metadata length".to_owned());
        }
        let (metadata, body) = rest.split_at(length);
        let metadata: Value =
            serde_json::from_slice(metadata).map_err(|e| format!("binary frame metadata is not JSON: {e}"))?;
        if !metadata.is_object() {
            return Err("binary frame metadata is not a JSON object".to_owned());
        }
        Ok(BinaryEvent {
            metadata,
            kind,
            body_len: body.len(),
            frame_b64: base64::engine::general_purpose::STANDARD.encode(frame),
        })
    }

    /// `raw`, `image`, `audio` or `file`.
    pub fn kind_name(&self) -> String {
        match self.kind {
            0 => "raw".to_owned(),
            1 => "image".to_owned(),
            2 => "audio".to_owned(),
            3 => "file".to_owned(),
            other => format!("kind {other}"),
        }
    }

    /// The event as a `history` reply lists it:
    /// `{"type":"binary","topic","offset","epoch","timestamp","sender_id","frame_b64"}`.
    pub fn as_json(&self) -> Value {
        let field = |name: &str| self.metadata.get(name).cloned().unwrap_or(Value::Null);
        json!({
            "type": "binary",
            "topic": field("topic"),
            "offset": field("offset"),
            "epoch": field("epoch"),
            "timestamp": field("timestamp"),
            "sender_id": field("sender_id"),
            "frame_b64": self.frame_b64,
        })
    }

    /// `camera #4  binary image, 34816 bytes  {"format": "jpeg", …}` (without the time).
    pub fn summary(&self) -> String {
        let offset = self.metadata["offset"]
            .as_u64()
            .map(|o| format!(" #{o}"))
            .unwrap_or_default();
        format!(
            "{}{offset}  binary {}, {} bytes  {}",
            self.metadata["topic"].as_str().unwrap_or("?"),
            self.kind_name(),
            self.body_len,
            crate::cli::output::render::one_line_json(&self.metadata.to_string(), None),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, metadata: &Value, body: &[u8]) -> Vec<u8> {
        let metadata = metadata.to_string();
        let mut frame = vec![1, kind];
        frame.extend_from_slice(&u32::try_from(metadata.len()).expect("small").to_be_bytes());
        frame.extend_from_slice(metadata.as_bytes());
        frame.extend_from_slice(body);
        frame
    }

    #[test]
    fn frames_decode_to_metadata_and_history_form() {
        let metadata =
            json!({"topic":"cam","offset":4,"epoch":"e1","timestamp":5,"sender_id":"server","format":"jpeg"});
        let bytes = frame(1, &metadata, b"\xff\xd8body");
        let event = BinaryEvent::decode(&bytes).expect("valid frame");
        assert_eq!(event.kind_name(), "image");
        assert_eq!(event.metadata["format"], "jpeg");
        let as_json = event.as_json();
        assert_eq!(as_json["type"], "binary");
        assert_eq!(as_json["offset"], 4);
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(as_json["frame_b64"].as_str().expect("string"))
            .expect("base64");
        assert_eq!(decoded, bytes);
        assert!(
            event.summary().starts_with("cam #4  binary image, 6 bytes"),
            "{}",
            event.summary()
        );
    }

    #[test]
    fn malformed_frames_say_what_is_wrong() {
        assert!(BinaryEvent::decode(b"").is_err());
        assert!(BinaryEvent::decode(&[2, 0, 0, 0, 0, 0]).is_err());
        assert!(BinaryEvent::decode(&[1, 0, 0, 0, 0, 9, b'{']).is_err());
        assert!(BinaryEvent::decode(&frame(0, &json!([1]), b"")).is_err());
    }
}
