//! The broker seam: where a publication gets its place in a topic's stream.
//!
//! On the message path this sits between the session (which has authorised a
//! `publish`) and the fan-out: [`Broker::publish`] assigns the `offset` and `epoch`,
//! appends to history, and hands the finished [`Publication`] to the node's
//! [`Delivery`], which fans it out to local subscribers. Every engine (the in-memory
//! one here, Redis and NATS later) implements the same trait and passes the same
//! conformance suite, so connection code never knows which one runs.

#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
mod memory;
mod presence;
mod publication;
mod records;
mod stream;
mod traits;

pub use error::BrokerError;
pub use memory::MemoryBroker;
pub use publication::{Content, Publication, PublicationDraft, SenderId};
pub use traits::{
    Broker, BrokerHealth, Delivery, HistoryPage, HistoryPolicy, HistoryQuery, PresenceMember, PresencePage, Recovery,
    StreamPosition,
};
