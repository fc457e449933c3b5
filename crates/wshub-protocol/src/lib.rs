//! wshub's wire protocol: the JSON envelope spoken on `/ws`, without any I/O.
//!
//! This crate is the first and last step of a message's path through the hub: the
//! session reader hands each text frame to [`decode_client_frame`], and every byte
//! the hub writes back is produced by the encoders in [`outbound`]. Keeping it free
//! of sockets and runtimes lets the server, the client and the tests share one
//! definition of the protocol. Binary frames (CONTRACT §12) have their codec in [`binary`].

pub mod binary;
pub mod codes;
pub mod ids;
pub mod inbound;
pub mod outbound;
pub mod topic;

pub use binary::{BinaryError, BinaryFrame, BinaryKind};
pub use codes::{CloseCode, ErrorCode};
pub use ids::{ConnectionId, Epoch, EventId, Offset, RequestId};
pub use inbound::{ClientFrame, DecodeError, Recover, Request, decode_client_frame};
pub use topic::{EventName, Topic, TopicError};

/// Milliseconds since the Unix epoch: the `timestamp` of every server message.
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
