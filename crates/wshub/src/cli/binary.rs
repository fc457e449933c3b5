//! Binary events (CONTRACT §12), read with the protocol crate's codec
//! (`wshub_protocol::binary`, the one the hub writes them with). The CLI shows their
//! metadata, and in `--json` mode the JSON form `history` replies use.

use serde_json::Value;
use wshub_protocol::binary::{self, BinaryKind, HistoryView};

/// A decoded binary event.
#[derive(Debug)]
pub struct BinaryEvent {
    /// The metadata object: `topic`, `offset`, `epoch`, `id`, `timestamp`, `sender_id`, and
    /// the publisher's keys (per kind e.g. `format`, `width`, `height`).
    pub metadata: Value,
    kind: BinaryKind,
    body_len: usize,
    /// The form a `history` reply lists it in.
    as_json: Value,
}

impl BinaryEvent {
    /// Reads a frame the hub delivered; `Err` says what is wrong with it.
    pub fn decode(frame: &[u8]) -> Result<BinaryEvent, String> {
        let decoded = binary::decode(frame, usize::MAX).map_err(|e| format!("binary frame: {e}"))?;
        let metadata: Value = serde_json::from_str(decoded.metadata().get())
            .map_err(|e| format!("binary frame metadata is not JSON: {e}"))?;
        let missing = |name: &str| format!("binary frame without the hub's `{name}` in its metadata");
        let view = HistoryView {
            topic: decoded.topic().as_str(),
            offset: metadata["offset"].as_u64().ok_or_else(|| missing("offset"))?,
            epoch: metadata["epoch"].as_str().ok_or_else(|| missing("epoch"))?,
            timestamp: metadata["timestamp"].as_u64().ok_or_else(|| missing("timestamp"))?,
            sender_id: metadata["sender_id"].as_str().ok_or_else(|| missing("sender_id"))?,
            frame,
        };
        let as_json = serde_json::from_slice(&binary::history_entry(&view)).expect("a history entry is JSON");
        Ok(BinaryEvent {
            kind: decoded.kind(),
            body_len: decoded.body().len(),
            metadata,
            as_json,
        })
    }

    /// `raw`, `image`, `audio` or `file`.
    pub fn kind_name(&self) -> &'static str {
        self.kind.name()
    }

    /// The event as a `history` reply lists it:
    /// `{"type":"binary","topic","offset","epoch","timestamp","sender_id","frame_b64"}`.
    pub fn as_json(&self) -> &Value {
        &self.as_json
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
    use base64::Engine;
    use serde_json::json;

    fn frame(kind: BinaryKind, metadata: &Value, body: &[u8]) -> Vec<u8> {
        let metadata = metadata.as_object().expect("an object");
        binary::encode_map(kind, metadata, body).expect("small metadata")
    }

    #[test]
    fn frames_decode_to_metadata_and_history_form() {
        let metadata =
            json!({"topic":"cam","offset":4,"epoch":"e1","timestamp":5,"sender_id":"server","format":"jpeg"});
        let bytes = frame(BinaryKind::Image, &metadata, b"\xff\xd8body");
        let event = BinaryEvent::decode(&bytes).expect("valid frame");
        assert_eq!(event.kind_name(), "image");
        assert_eq!(event.metadata["format"], "jpeg");
        let as_json = event.as_json();
        assert_eq!(as_json["type"], "binary");
        assert_eq!(as_json["offset"], 4);
        assert_eq!(as_json["sender_id"], "server");
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
        assert!(BinaryEvent::decode(&frame(BinaryKind::Raw, &json!({"topic": "t"}), b"")).is_err());
        let error = BinaryEvent::decode(&frame(BinaryKind::Raw, &json!({"topic": "t", "offset": 1}), b""))
            .expect_err("no epoch");
        assert!(error.contains("`epoch`"), "{error}");
    }
}
