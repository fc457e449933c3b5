//! A binary publication between the reader and the broker: checked once, owning its bytes.

use super::{BinaryError, BinaryFrame, BinaryKind, HEADER_LEN, decode};
use crate::ids::RequestId;
use crate::topic::Topic;
use bytes::Bytes;

/// A publisher's binary frame that passed every check of [`decode`], kept as reference-counted
/// slices of the bytes it arrived in (nothing is copied), so it can wait in the broker until
/// the publication's offset is known and [`extend_metadata`](super::extend_metadata) builds
/// the delivered frame from [`frame`](Upload::frame).
///
/// The slices keep the whole buffer they point into alive (for a WebSocket message that can be
/// a connection's read buffer), so an upload is meant to live only until that frame is built.
#[derive(Debug, Clone)]
pub struct Upload {
    kind: BinaryKind,
    /// The metadata object, checked (surrounding whitespace dropped).
    metadata: Bytes,
    body: Bytes,
    topic: Topic,
    request_id: Option<RequestId>,
}

impl Upload {
    /// Decodes and checks a received frame of at most `max_size` bytes (see [`decode`]),
    /// keeping slices of `frame`.
    pub fn decode(frame: Bytes, max_size: usize) -> Result<Upload, BinaryError> {
        let checked = decode(&frame, max_size)?;
        Ok(Upload {
            kind: checked.kind(),
            metadata: frame.slice_ref(checked.metadata().get().as_bytes()),
            body: frame.slice_ref(checked.body()),
            topic: checked.topic().clone(),
            request_id: checked.request_id().cloned(),
        })
    }

    /// Checks metadata and a body that arrived apart (an HTTP upload: metadata the hub wrote
    /// from the query, the request body as received), as [`BinaryFrame::from_parts`] does.
    pub fn from_parts(kind: BinaryKind, metadata: Bytes, body: Bytes) -> Result<Upload, BinaryError> {
        let checked = BinaryFrame::from_parts(kind, &metadata, &body)?;
        let metadata = metadata.slice_ref(checked.metadata().get().as_bytes());
        let topic = checked.topic().clone();
        let request_id = checked.request_id().cloned();
        Ok(Upload {
            kind,
            metadata,
            body,
            topic,
            request_id,
        })
    }

    /// The checked frame, borrowing this upload's bytes. Its metadata is read again (a JSON
    /// scan of the metadata only; the body is not touched).
    pub fn frame(&self) -> BinaryFrame<'_> {
        BinaryFrame::from_parts(self.kind, &self.metadata, &self.body)
            .expect("the same bytes passed the same checks when the upload was made")
    }

    /// What the body holds.
    pub fn kind(&self) -> BinaryKind {
        self.kind
    }

    /// The metadata's `topic`.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }

    /// The metadata's `id`: the request id a `published` reply echoes.
    pub fn request_id(&self) -> Option<&RequestId> {
        self.request_id.as_ref()
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Its length as one frame: header, metadata and body.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.metadata.len() + self.body.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An image frame with `metadata` written exactly as given.
    fn frame(metadata: &str, body: &[u8]) -> Bytes {
        let mut frame = vec![1, BinaryKind::Image.as_u8()];
        frame.extend_from_slice(&u32::try_from(metadata.len()).expect("small").to_be_bytes());
        frame.extend_from_slice(metadata.as_bytes());
        frame.extend_from_slice(body);
        Bytes::from(frame)
    }

    #[test]
    fn a_decoded_upload_shares_the_received_bytes() {
        let bytes = frame(r#" {"topic":"cams/1","id":"b1","format":"png"} "#, b"\x89PNG");
        let upload = Upload::decode(bytes.clone(), 1 << 20).expect("valid");
        assert_eq!(upload.kind(), BinaryKind::Image);
        assert_eq!(upload.topic().as_str(), "cams/1");
        assert_eq!(upload.request_id().expect("id").as_raw().get(), r#""b1""#);
        assert_eq!(upload.body().as_ref(), b"\x89PNG");
        let at = bytes.len() - 4;
        assert_eq!(upload.body().as_ptr(), bytes[at..].as_ptr(), "the body is not copied");
        assert_eq!(
            upload.frame_len(),
            bytes.len() - 2,
            "the whitespace around the metadata is dropped"
        );
        let again = upload.frame();
        assert_eq!(again.metadata().get(), r#"{"topic":"cams/1","id":"b1","format":"png"}"#);
        assert_eq!(again.body(), b"\x89PNG");
    }

    #[test]
    fn decoding_refuses_what_decode_refuses() {
        assert!(matches!(
            Upload::decode(Bytes::from_static(&[2, 0, 0, 0, 0, 2, b'{', b'}']), 100),
            Err(BinaryError::UnsupportedVersion(2))
        ));
        let bytes = frame(r#"{"topic":"t"}"#, b"0123456789");
        assert!(matches!(
            Upload::decode(bytes.clone(), bytes.len() - 1),
            Err(BinaryError::TooLarge { .. })
        ));
    }

    #[test]
    fn parts_are_checked_like_a_frame() {
        let body = Bytes::from_static(b"raw bytes");
        let upload = Upload::from_parts(
            BinaryKind::File,
            Bytes::from_static(br#"{"topic":"files","name":"a.bin","size":9}"#),
            body.clone(),
        )
        .expect("valid parts");
        assert_eq!(upload.topic().as_str(), "files");
        assert_eq!(upload.body().as_ptr(), body.as_ptr(), "the body is not copied");
        assert_eq!(upload.frame_len(), HEADER_LEN + 41 + 9);
        for (metadata, expected) in [
            (r#"{"name":"x"}"#, "no `topic`"),
            (r#"{"topic":"t","topic":"u"}"#, "more than one `topic`"),
            (r#"["topic"]"#, "not a JSON object"),
        ] {
            let error = Upload::from_parts(BinaryKind::Raw, Bytes::from(metadata), body.clone())
                .expect_err("refused")
                .to_string();
            assert!(error.contains(expected), "{metadata}: {error}");
        }
    }
}
