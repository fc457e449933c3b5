//! Identifier newtypes that travel on the wire.

use serde::Serialize;
use serde_json::value::RawValue;
use std::fmt;
use std::sync::Arc;
use thiserror::Error;

/// Declares a cheap-to-clone string id: shared `Arc<str>`, serialised as a plain string.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Wraps an id made by the hub.
            pub fn new(id: impl Into<Arc<str>>) -> Self {
                $name(id.into())
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// The hub-assigned id of one WebSocket connection.
    ConnectionId
);

string_id!(
    /// Names one incarnation of a topic's stream; it changes whenever the stream is reset,
    /// so an offset is only meaningful together with its epoch.
    Epoch
);

string_id!(
    /// The server-made id of an event (`evt_…`).
    EventId
);

/// A position in one topic's stream. Offsets start at 1; 0 means "nothing yet".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize)]
#[serde(transparent)]
pub struct Offset(pub u64);

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A client's request `id`, kept as the exact JSON it sent (a string or a number)
/// so the reply echoes it unchanged.
#[derive(Debug, Clone)]
pub struct RequestId(Box<RawValue>);

impl PartialEq for RequestId {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl Eq for RequestId {}

impl RequestId {
    /// Longest accepted id, in bytes of its text (CONTRACT §2).
    pub const MAX_LEN: usize = 64;

    /// Reads an `id` field: `null` is no id; otherwise a string or a number of at most
    /// [`RequestId::MAX_LEN`] bytes (a string's decoded text, a number's digits). The JSON
    /// envelope and the metadata of a binary publish follow the same rule.
    pub(crate) fn from_json(raw: &RawValue) -> Result<Option<RequestId>, RequestIdError> {
        let text = raw.get();
        if text == "null" {
            return Ok(None);
        }
        let len = if let Ok(s) = serde_json::from_str::<String>(text) {
            s.len()
        } else if serde_json::from_str::<serde_json::Number>(text).is_ok() {
            text.len()
        } else {
            return Err(RequestIdError::NotStringOrNumber);
        };
        if len > RequestId::MAX_LEN {
            return Err(RequestIdError::TooLong {
                max: RequestId::MAX_LEN,
            });
        }
        Ok(Some(RequestId(raw.to_owned())))
    }

    /// The id as raw JSON (with quotes for a string id).
    pub fn as_raw(&self) -> &RawValue {
        &self.0
    }
}

/// Why a request `id` was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestIdError {
    /// The id is neither a string nor a number.
    #[error("`id` must be a string or a number")]
    NotStringOrNumber,
    /// The id is longer than [`RequestId::MAX_LEN`].
    #[error("`id` is longer than {max} bytes")]
    TooLong { max: usize },
}

impl Serialize for RequestId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}
