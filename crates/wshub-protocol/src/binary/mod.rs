//! Binary frames (CONTRACT §12):
//! `[version u8 = 1][kind u8][metadata length u32 big-endian][metadata JSON][body]`.
//!
//! The binary counterpart of [`inbound`](crate::inbound) and [`outbound`](crate::outbound),
//! without any I/O. On the message path: the session reader hands a client's binary message
//! to [`decode`], which checks it completely (size, header, metadata object, `topic`, `id`)
//! and borrows the metadata and body from the received bytes; once the broker has placed the
//! publication, [`extend_metadata`] builds the frame every subscriber receives, in one
//! allocation of its exact size, copying the body once; a `history` reply lists that frame
//! through [`history_entry`]. Clients use [`encode`] / [`encode_map`] to publish and [`decode`]
//! to read delivered frames. Between the reader and the broker a publish waits as an
//! [`Upload`]: checked once, holding slices of the received bytes.
//!
//! Metadata is never parsed into a `serde_json::Value`: its members stay the publisher's bytes,
//! so numbers, key order and unicode come out as they went in. A metadata object must not
//! repeat `topic` or `id` (JSON parsers disagree on which duplicate wins, and the hub checks
//! permissions on the topic it reads); the keys the hub sets ([`HUB_KEYS`]) are removed from
//! what a publisher sent, however they are spelled, so no subscriber can read a forged one.

mod delivery;
mod frame;
mod upload;

use crate::ids::RequestIdError;
use crate::topic::TopicError;
use std::fmt;
use thiserror::Error;

pub use delivery::{Delivery, HistoryView, extend_metadata, history_entry};
pub use frame::{BinaryFrame, decode, encode, encode_map};
pub use upload::Upload;

/// The only frame version this crate reads and writes.
pub const VERSION: u8 = 1;

/// Bytes before the metadata: version, kind and the metadata length.
pub const HEADER_LEN: usize = 6;

/// Metadata keys the hub sets on every delivered frame, replacing any the publisher sent,
/// in the order it writes them.
pub const HUB_KEYS: [&str; 5] = ["offset", "epoch", "id", "timestamp", "sender_id"];

/// What a binary frame carries; it tells subscribers how to read the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryKind {
    /// 0: opaque bytes.
    Raw,
    /// 1: an image; metadata carries `format`, `width`, `height`.
    Image,
    /// 2: audio.
    Audio,
    /// 3: a file.
    File,
}

impl BinaryKind {
    /// Every kind, in wire order.
    pub const ALL: [BinaryKind; 4] = [BinaryKind::Raw, BinaryKind::Image, BinaryKind::Audio, BinaryKind::File];

    /// The kind byte on the wire.
    pub const fn as_u8(self) -> u8 {
        match self {
            BinaryKind::Raw => 0,
            BinaryKind::Image => 1,
            BinaryKind::Audio => 2,
            BinaryKind::File => 3,
        }
    }

    /// The kind's name: `raw`, `image`, `audio` or `file`.
    pub const fn name(self) -> &'static str {
        match self {
            BinaryKind::Raw => "raw",
            BinaryKind::Image => "image",
            BinaryKind::Audio => "audio",
            BinaryKind::File => "file",
        }
    }

    /// The kind with this name, if there is one.
    pub fn from_name(name: &str) -> Option<BinaryKind> {
        BinaryKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl TryFrom<u8> for BinaryKind {
    type Error = BinaryError;

    fn try_from(byte: u8) -> Result<Self, BinaryError> {
        BinaryKind::ALL
            .into_iter()
            .find(|k| k.as_u8() == byte)
            .ok_or(BinaryError::UnknownKind(byte))
    }
}

impl From<BinaryKind> for u8 {
    fn from(kind: BinaryKind) -> u8 {
        kind.as_u8()
    }
}

impl fmt::Display for BinaryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a binary frame was refused or could not be built. The wire code of each is assigned
/// in [`codes`](crate::codes) ([`BinaryError::code`]); the messages are meant for the client
/// that sent the frame.
#[derive(Debug, Error)]
pub enum BinaryError {
    /// The frame is longer than the size limit it was decoded with.
    #[error("binary frame of {size} bytes is larger than the {max}-byte limit")]
    TooLarge { size: usize, max: usize },
    /// The frame ends before its 6-byte header does.
    #[error("frame shorter than its 6-byte header ({len} bytes)")]
    TruncatedHeader { len: usize },
    /// The version byte is not [`VERSION`].
    #[error("unsupported version {0}")]
    UnsupportedVersion(u8),
    /// The kind byte names no [`BinaryKind`].
    #[error("unknown kind {0}")]
    UnknownKind(u8),
    /// The metadata length points past the end of the frame.
    #[error("metadata length past the end of the frame ({declared} bytes declared, {available} present)")]
    MetadataPastEnd { declared: u32, available: usize },
    /// The metadata bytes are not UTF-8.
    #[error("metadata is not valid JSON: not UTF-8 ({0})")]
    MetadataNotUtf8(std::str::Utf8Error),
    /// The metadata is not one JSON value.
    #[error("metadata is not valid JSON: {0}")]
    MetadataNotJson(serde_json::Error),
    /// The metadata is JSON but not an object.
    #[error("metadata is not a JSON object")]
    MetadataNotObject,
    /// The metadata object repeats a key whose value must be unambiguous.
    #[error("metadata has more than one `{0}`")]
    DuplicateKey(&'static str),
    /// The metadata has no `topic` (or a `null` one).
    #[error("metadata has no `topic`")]
    MissingTopic,
    /// The metadata's `topic` is not a string.
    #[error("metadata `topic` must be a string")]
    TopicNotString,
    /// The metadata's `topic` is not a valid topic name.
    #[error("metadata {0}")]
    InvalidTopic(TopicError),
    /// The metadata's `id` is not a valid request id.
    #[error("metadata {0}")]
    InvalidId(RequestIdError),
    /// The metadata does not fit the header's 32-bit length (only when encoding).
    #[error("metadata of {len} bytes does not fit the 32-bit length field")]
    MetadataTooLong { len: usize },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_bytes_and_names() {
        for kind in BinaryKind::ALL {
            assert_eq!(BinaryKind::try_from(kind.as_u8()).expect("known"), kind);
            assert_eq!(BinaryKind::from_name(kind.name()), Some(kind));
            assert_eq!(kind.to_string(), kind.name());
            assert_eq!(u8::from(kind), kind.as_u8());
        }
        let names: Vec<_> = BinaryKind::ALL.iter().map(|k| (k.as_u8(), k.name())).collect();
        assert_eq!(names, [(0, "raw"), (1, "image"), (2, "audio"), (3, "file")]);
        assert!(matches!(BinaryKind::try_from(4), Err(BinaryError::UnknownKind(4))));
        assert_eq!(BinaryKind::from_name("video"), None);
    }
}
