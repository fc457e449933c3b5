//! A connection's bounded outbound queue and its close signal.
//!
//! Overflow policy: a push that would exceed `outbound_queue` messages or
//! `outbound_queue_bytes` bytes closes the connection as a slow consumer (4008).
//! Nothing is dropped silently and the pusher (a publisher, the fan-out) never waits.

use crate::transport::{OutFrame, SharedText};
use bytes::Bytes;
use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wshub_broker::Publication;
use wshub_protocol::CloseCode;

/// Why and how a connection is closing. The first close requested wins.
#[derive(Debug, Clone)]
pub struct CloseReason {
    /// The close code sent to the client.
    pub code: CloseCode,
    /// The close frame's reason text.
    pub reason: Cow<'static, str>,
}

/// Asks a connection to close; shared by its session, its writer, the fan-out and the API.
#[derive(Debug, Clone, Default)]
pub struct Closer {
    inner: Arc<CloserInner>,
}

#[derive(Debug, Default)]
struct CloserInner {
    reason: OnceLock<CloseReason>,
    token: CancellationToken,
}

impl Closer {
    /// Requests the close; later requests are ignored.
    pub fn close(&self, code: CloseCode, reason: impl Into<Cow<'static, str>>) {
        if self
            .inner
            .reason
            .set(CloseReason {
                code,
                reason: reason.into(),
            })
            .is_ok()
        {
            self.inner.token.cancel();
        }
    }

    /// The close requested, if any.
    pub fn reason(&self) -> Option<&CloseReason> {
        self.inner.reason.get()
    }

    /// The close requested, or a normal close (1000) when none was: what a writer sends once
    /// its loop has ended.
    pub fn final_reason(&self) -> CloseReason {
        self.reason().cloned().unwrap_or(CloseReason {
            code: CloseCode::Normal,
            reason: "".into(),
        })
    }

    /// Whether a close was requested.
    pub fn is_closing(&self) -> bool {
        self.inner.token.is_cancelled()
    }

    /// Resolves once a close is requested.
    pub async fn closing(&self) {
        self.inner.token.cancelled().await
    }
}

/// A subscription's number within its connection; the writer reports positions by it.
pub type SubscriptionSlot = u32;

/// Which stream position an event frame carries, so the writer can tell how far each
/// subscription has been written (what a resumed session replays from).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamMark {
    /// The subscription the event was delivered for.
    pub slot: SubscriptionSlot,
    /// The event's offset.
    pub offset: u64,
    /// When the publication reached the fan-out ([`monotonic_micros`]), for the delivery
    /// latency metric; 0 for replayed and held events, which are not live deliveries.
    ///
    /// [`monotonic_micros`]: crate::metrics::monotonic_micros
    pub published_at: u64,
}

/// One publication's frame as a connection sends it: a JSON event as text, a binary
/// publication (CONTRACT §12) as binary. Either way the bytes are the publication's own,
/// shared, never copied per connection.
#[derive(Debug, Clone)]
pub enum EventFrame {
    /// A JSON text frame.
    Text(SharedText),
    /// A binary frame.
    Binary(Bytes),
}

impl EventFrame {
    /// What a `/ws` subscriber receives: [`Publication::frame`]. `None` (logged) only if a
    /// JSON event's bytes are not UTF-8, which the encoder never produces.
    pub fn event(publication: &Publication) -> Option<EventFrame> {
        EventFrame::wrap(publication, publication.frame())
    }

    /// What a raw stream receives: [`Publication::payload_frame`].
    pub fn payload(publication: &Publication) -> Option<EventFrame> {
        EventFrame::wrap(publication, publication.payload_frame())
    }

    fn wrap(publication: &Publication, bytes: &Bytes) -> Option<EventFrame> {
        if publication.is_binary() {
            return Some(EventFrame::Binary(bytes.clone()));
        }
        let text = SharedText::from_json(bytes.clone());
        if text.is_none() {
            tracing::error!(topic = %publication.topic(), "encoded event is not UTF-8; dropped");
        }
        text.map(EventFrame::Text)
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        match self {
            EventFrame::Text(text) => text.len(),
            EventFrame::Binary(bytes) => bytes.len(),
        }
    }

    /// Whether it carries no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<EventFrame> for OutFrame {
    fn from(frame: EventFrame) -> OutFrame {
        match frame {
            EventFrame::Text(text) => OutFrame::Text(text),
            EventFrame::Binary(bytes) => OutFrame::Binary(bytes),
        }
    }
}

/// What a connection's queue holds.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// A reply, an error, or any frame that is not a topic's event.
    Frame(OutFrame),
    /// A topic's event, text or binary, and its position.
    Event { frame: EventFrame, mark: StreamMark },
}

impl Outgoing {
    /// Bytes counted against the queue's byte budget.
    pub fn len(&self) -> usize {
        match self {
            Outgoing::Frame(frame) => frame.len(),
            Outgoing::Event { frame, .. } => frame.len(),
        }
    }

    /// Whether it carries no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The sending side of a connection's queue. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Outgoing>,
    queued_bytes: Arc<AtomicUsize>,
    max_bytes: usize,
    closer: Closer,
}

impl Outbox {
    /// Most messages the queue holds.
    pub fn capacity(&self) -> usize {
        self.tx.max_capacity()
    }
}

/// The writer's side of the queue.
#[derive(Debug)]
pub struct OutboxReceiver {
    rx: mpsc::Receiver<Outgoing>,
    queued_bytes: Arc<AtomicUsize>,
}

/// Creates a queue bounded to `max_messages` and `max_bytes`.
pub fn outbox(max_messages: usize, max_bytes: usize, closer: Closer) -> (Outbox, OutboxReceiver) {
    let (tx, rx) = mpsc::channel(max_messages.max(1));
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    (
        Outbox {
            tx,
            queued_bytes: Arc::clone(&queued_bytes),
            max_bytes,
            closer,
        },
        OutboxReceiver { rx, queued_bytes },
    )
}

impl Outbox {
    /// Queues a frame. Returns `false` if the connection is closing (or was just
    /// closed because this push overflowed its queue).
    pub fn push(&self, item: Outgoing) -> bool {
        if self.closer.is_closing() {
            return false;
        }
        let len = item.len();
        let before = self.queued_bytes.fetch_add(len, Ordering::Relaxed);
        if before + len > self.max_bytes && before > 0 {
            self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            self.closer
                .close(CloseCode::SlowConsumer, "slow consumer: outbound queue bytes exceeded");
            return false;
        }
        match self.tx.try_send(item) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                self.closer
                    .close(CloseCode::SlowConsumer, "slow consumer: outbound queue full");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                false
            }
        }
    }

    /// Queues a frame, waiting up to `patience` for room: for replays, which may be longer
    /// than the queue. Returns `false` if the connection is closing or the wait ran out
    /// (which closes it as a slow consumer: it could not absorb its replay).
    pub async fn push_waiting(&self, item: Outgoing, patience: Duration) -> bool {
        let reserved = tokio::select! {
            biased;
            () = self.closer.closing() => return false,
            reserved = tokio::time::timeout(patience, self.tx.reserve()) => reserved,
        };
        match reserved {
            Ok(Ok(permit)) => {
                // The byte budget is not enforced here: replayed frames are shared with
                // history, so waiting for messages bounds the memory well enough.
                self.queued_bytes.fetch_add(item.len(), Ordering::Relaxed);
                permit.send(item);
                true
            }
            Ok(Err(_closed)) => false,
            Err(_elapsed) => {
                self.closer.close(
                    CloseCode::SlowConsumer,
                    "slow consumer: replay not absorbed within write_timeout",
                );
                false
            }
        }
    }

    /// Messages queued and not yet taken by the writer.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// The connection's close signal.
    pub fn closer(&self) -> &Closer {
        &self.closer
    }
}

impl OutboxReceiver {
    /// The next queued frame; `None` when every sender is gone.
    pub async fn recv(&mut self) -> Option<Outgoing> {
        let item = self.rx.recv().await?;
        self.queued_bytes.fetch_sub(item.len(), Ordering::Relaxed);
        Some(item)
    }

    /// A queued frame if one is ready now.
    pub fn try_recv(&mut self) -> Option<Outgoing> {
        let item = self.rx.try_recv().ok()?;
        self.queued_bytes.fetch_sub(item.len(), Ordering::Relaxed);
        Some(item)
    }

    /// Drops everything still queued (a slow consumer's backlog).
    pub fn discard(&mut self) {
        self.rx.close();
        while self.try_recv().is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(n: usize) -> Outgoing {
        Outgoing::Frame(OutFrame::Text(SharedText::from_vec(vec![b'x'; n]).expect("ascii")))
    }

    #[test]
    fn message_overflow_closes_as_slow_consumer() {
        let closer = Closer::default();
        let (outbox, _rx) = outbox(2, 1 << 20, closer.clone());
        assert!(outbox.push(text(1)));
        assert!(outbox.push(text(1)));
        assert!(!outbox.push(text(1)));
        assert_eq!(closer.reason().map(|r| r.code), Some(CloseCode::SlowConsumer));
        assert!(!outbox.push(text(1)), "nothing is queued once closing");
    }

    #[test]
    fn byte_overflow_closes_as_slow_consumer() {
        let closer = Closer::default();
        let (outbox, mut rx) = outbox(100, 10, closer.clone());
        assert!(outbox.push(text(6)));
        assert!(!outbox.push(text(6)));
        assert!(closer.is_closing());
        rx.discard();
    }

    #[test]
    fn one_oversized_message_fits_an_empty_queue() {
        let (outbox, mut rx) = outbox(4, 10, Closer::default());
        assert!(outbox.push(text(50)), "a single large reply is not a slow consumer");
        assert!(rx.try_recv().is_some());
        assert!(outbox.push(text(5)));
    }
}
