//! A connection's bounded outbound queue and its close signal.
//!
//! Overflow policy: a push that would exceed `outbound_queue` messages or
//! `outbound_queue_bytes` bytes closes the connection as a slow consumer (4008).
//! Nothing is dropped silently and the pusher (a publisher, the fan-out) never waits.

use crate::transport::{OutFrame, SharedText};
use bytes::Bytes;
use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Notify;
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

// The reason is the flag: every fan-out push asks whether the connection is closing, so the
// question is one atomic load (a `CancellationToken` would take a lock each time).
#[derive(Debug, Default)]
struct CloserInner {
    reason: OnceLock<CloseReason>,
    /// Set once the connection has fully ended (its resumption state saved).
    ended: AtomicBool,
    /// Woken when a close is requested and when the connection has ended.
    requested: Notify,
    /// The connection's writer and its session, which check for a close on every wake-up: a
    /// waker is cheaper to poll, and smaller to hold, than a `Notify`'s waiter.
    writer: AtomicWaker,
    session: AtomicWaker,
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
            self.inner.requested.notify_waiters();
            self.inner.writer.wake();
            self.inner.session.wake();
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
        self.inner.reason.get().is_some()
    }

    /// [`closing`](Self::closing) as a poll, for the connection's writer only (one task; it
    /// is the one waker kept).
    pub fn poll_closing_for_writer(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_closing_with(&self.inner.writer, cx)
    }

    /// [`closing`](Self::closing) as a poll, for the connection's session (its read loop) only.
    pub fn poll_closing_for_session(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_closing_with(&self.inner.session, cx)
    }

    fn poll_closing_with(&self, waker: &AtomicWaker, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_closing() {
            return Poll::Ready(());
        }
        waker.register(cx.waker());
        // Checked again after registering: a close in between woke the old waker.
        if self.is_closing() {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// Records that the connection has fully ended (its session finished).
    pub fn set_ended(&self) {
        self.inner.ended.store(true, Ordering::Release);
        self.inner.requested.notify_waiters();
    }

    /// Resolves once the connection has fully ended ([`set_ended`](Self::set_ended)).
    pub async fn ended(&self) {
        loop {
            let woken = self.inner.requested.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if self.inner.ended.load(Ordering::Acquire) {
                return;
            }
            woken.await;
        }
    }

    /// Resolves once a close is requested.
    pub async fn closing(&self) {
        let requested = self.inner.requested.notified();
        tokio::pin!(requested);
        // Registered before the check, so a close between the two still wakes this.
        requested.as_mut().enable();
        if self.is_closing() {
            return;
        }
        requested.await;
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
///
/// The queue is a `VecDeque` under a mutex shared with the writer, rather than a channel: it
/// allocates nothing until something is queued and gives its memory back once drained after a
/// burst (an idle connection holds none), and the writer takes everything queued under one lock.
/// Pushers are the fan-out and the session; they never wait, so the lock is held only to move
/// a few pointers.
#[derive(Debug)]
pub struct Outbox {
    shared: Arc<Shared>,
}

/// The writer's side of the queue.
#[derive(Debug)]
pub struct OutboxReceiver {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    /// The writer, woken when the queue stops being empty or the last sender is gone.
    writer: AtomicWaker,
    /// Replays waiting for room (`push_waiting`).
    room: Notify,
    /// Outboxes alive: when none is left, nothing more can be queued.
    senders: AtomicUsize,
    max_messages: usize,
    max_bytes: usize,
    closer: Closer,
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Outgoing>,
    /// Payload bytes of `items`.
    bytes: usize,
    /// The writer is gone or discarded the queue: pushes are refused.
    shut: bool,
    /// Replays waiting for room.
    waiting_for_room: usize,
}

/// A replay waiting for room in the queue, counted while it waits.
struct WaitingForRoom<'a>(&'a Shared);

impl<'a> WaitingForRoom<'a> {
    fn new(shared: &'a Shared) -> Self {
        shared.queue.lock().waiting_for_room += 1;
        WaitingForRoom(shared)
    }
}

impl Drop for WaitingForRoom<'_> {
    fn drop(&mut self) {
        self.0.queue.lock().waiting_for_room -= 1;
    }
}

impl Outbox {
    /// Most messages the queue holds.
    pub fn capacity(&self) -> usize {
        self.shared.max_messages
    }
}

impl Clone for Outbox {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Outbox {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.writer.wake();
        }
    }
}

/// Creates a queue bounded to `max_messages` and `max_bytes`.
pub fn outbox(max_messages: usize, max_bytes: usize, closer: Closer) -> (Outbox, OutboxReceiver) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue::default()),
        writer: AtomicWaker::new(),
        room: Notify::new(),
        senders: AtomicUsize::new(1),
        max_messages: max_messages.max(1),
        max_bytes,
        closer,
    });
    (
        Outbox {
            shared: Arc::clone(&shared),
        },
        OutboxReceiver { shared },
    )
}

/// What a push that did not queue ran into.
enum Refused {
    /// The connection is closing or its writer is gone.
    Closed,
    /// The queue is full (messages, or bytes when `bytes` is set).
    Full { bytes: bool },
}

impl Outbox {
    /// Queues a frame. Returns `false` if the connection is closing (or was just
    /// closed because this push overflowed its queue).
    pub fn push(&self, item: Outgoing) -> bool {
        match self.try_push(item, true) {
            Ok(()) => true,
            Err((_, Refused::Closed)) => false,
            Err((_, Refused::Full { bytes })) => {
                let reason = if bytes {
                    "slow consumer: outbound queue bytes exceeded"
                } else {
                    "slow consumer: outbound queue full"
                };
                self.shared.closer.close(CloseCode::SlowConsumer, reason);
                false
            }
        }
    }

    /// Queues `item` if the queue has room; `check_bytes` enforces the byte budget too (a
    /// single item larger than the budget still fits an empty queue).
    fn try_push(&self, item: Outgoing, check_bytes: bool) -> Result<(), (Outgoing, Refused)> {
        let shared = &*self.shared;
        if shared.closer.is_closing() {
            return Err((item, Refused::Closed));
        }
        let len = item.len();
        let was_empty = {
            let mut queue = shared.queue.lock();
            if queue.shut {
                return Err((item, Refused::Closed));
            }
            if queue.items.len() >= shared.max_messages {
                return Err((item, Refused::Full { bytes: false }));
            }
            if check_bytes && queue.bytes + len > shared.max_bytes && queue.bytes > 0 {
                return Err((item, Refused::Full { bytes: true }));
            }
            queue.bytes += len;
            queue.items.push_back(item);
            queue.items.len() == 1
        };
        // A non-empty queue was already announced to the writer.
        if was_empty {
            shared.writer.wake();
        }
        Ok(())
    }

    /// Queues a frame, waiting up to `patience` for room: for replays, which may be longer
    /// than the queue. Returns `false` if the connection is closing or the wait ran out
    /// (which closes it as a slow consumer: it could not absorb its replay).
    pub async fn push_waiting(&self, item: Outgoing, patience: Duration) -> bool {
        let shared = &*self.shared;
        let deadline = tokio::time::Instant::now() + patience;
        // Counted for the whole wait, so that any batch the writer takes from here on
        // announces the room it made.
        let _waiting = WaitingForRoom::new(shared);
        let mut item = item;
        loop {
            let room = shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            // The byte budget is not enforced here: replayed frames are shared with
            // history, so waiting for messages bounds the memory well enough.
            match self.try_push(item, false) {
                Ok(()) => return true,
                Err((_, Refused::Closed)) => return false,
                Err((back, Refused::Full { .. })) => item = back,
            }
            tokio::select! {
                biased;
                () = shared.closer.closing() => return false,
                () = &mut room => {}
                () = tokio::time::sleep_until(deadline) => {
                    shared.closer.close(
                        CloseCode::SlowConsumer,
                        "slow consumer: replay not absorbed within write_timeout",
                    );
                    return false;
                }
            }
        }
    }

    /// Messages queued and not yet taken by the writer.
    pub fn queued(&self) -> usize {
        self.shared.queue.lock().items.len()
    }

    /// The connection's close signal.
    pub fn closer(&self) -> &Closer {
        &self.shared.closer
    }
}

impl OutboxReceiver {
    /// Moves up to `max` queued items into `batch`, waiting until there is at least one.
    /// Returns `false` (and moves nothing) once nothing more can ever be queued: every
    /// [`Outbox`] is gone and the queue is empty.
    pub async fn recv_many(&mut self, batch: &mut VecDeque<Outgoing>, max: usize) -> bool {
        std::future::poll_fn(|cx| self.poll_recv_many(cx, batch, max)).await
    }

    /// [`recv_many`](Self::recv_many) as a poll.
    pub fn poll_recv_many(&mut self, cx: &mut Context<'_>, batch: &mut VecDeque<Outgoing>, max: usize) -> Poll<bool> {
        if self.take(batch, max) > 0 {
            return Poll::Ready(true);
        }
        self.shared.writer.register(cx.waker());
        // Checked again after registering: a push in between woke the old waker.
        if self.take(batch, max) > 0 {
            return Poll::Ready(true);
        }
        if self.shared.senders.load(Ordering::Acquire) == 0 {
            return Poll::Ready(false);
        }
        Poll::Pending
    }

    /// The next queued frame; `None` when every sender is gone.
    pub async fn recv(&mut self) -> Option<Outgoing> {
        let mut one = VecDeque::with_capacity(1);
        if self.recv_many(&mut one, 1).await {
            one.pop_front()
        } else {
            None
        }
    }

    /// A queued frame if one is ready now.
    pub fn try_recv(&mut self) -> Option<Outgoing> {
        let shared = &*self.shared;
        let (item, room_made) = {
            let mut queue = shared.queue.lock();
            let item = queue.items.pop_front()?;
            queue.bytes -= item.len();
            (item, queue.waiting_for_room > 0)
        };
        if room_made {
            shared.room.notify_waiters();
        }
        Some(item)
    }

    /// Moves up to `max` items into `batch`; returns how many.
    fn take(&mut self, batch: &mut VecDeque<Outgoing>, max: usize) -> usize {
        let shared = &*self.shared;
        let (taken, room_made) = {
            let mut queue = shared.queue.lock();
            let taken = queue.items.len().min(max);
            if taken == queue.items.len() && batch.is_empty() {
                // The whole queue fits the batch: hand its buffer over rather than copy it.
                // The queue starts again with no allocation (the writer frees the buffer
                // once written), so an idle connection holds none.
                queue.bytes = 0;
                *batch = std::mem::take(&mut queue.items);
            } else {
                let mut bytes = 0;
                batch.extend(queue.items.drain(..taken).inspect(|item| bytes += item.len()));
                queue.bytes -= bytes;
            }
            (taken, taken > 0 && queue.waiting_for_room > 0)
        };
        if room_made {
            shared.room.notify_waiters();
        }
        taken
    }

    /// Drops everything still queued (a slow consumer's backlog) and refuses what follows.
    pub fn discard(&mut self) {
        let dropped = {
            let mut queue = self.shared.queue.lock();
            queue.shut = true;
            queue.bytes = 0;
            std::mem::take(&mut queue.items)
        };
        // Dropped outside the lock: the last reference to a publication frees it.
        drop(dropped);
        self.shared.room.notify_waiters();
    }
}

impl Drop for OutboxReceiver {
    fn drop(&mut self) {
        self.discard();
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

    #[tokio::test]
    async fn the_writer_takes_the_whole_queue_and_an_idle_queue_holds_no_buffer() {
        let (outbox, mut rx) = outbox(8, 1 << 20, Closer::default());
        assert_eq!(
            rx.shared.queue.lock().items.capacity(),
            0,
            "nothing allocated before a push"
        );
        for n in 1..=3 {
            assert!(outbox.push(text(n)));
        }
        let mut batch = VecDeque::new();
        assert!(rx.recv_many(&mut batch, 256).await);
        assert_eq!(
            batch.iter().map(Outgoing::len).collect::<Vec<_>>(),
            [1, 2, 3],
            "in order"
        );
        let queue = rx.shared.queue.lock();
        assert_eq!(
            (queue.items.capacity(), queue.bytes),
            (0, 0),
            "the buffer went with the batch"
        );
    }

    #[tokio::test]
    async fn a_batch_is_capped_and_the_rest_stays_queued() {
        let (outbox, mut rx) = outbox(8, 1 << 20, Closer::default());
        for n in 1..=5 {
            assert!(outbox.push(text(n)));
        }
        let mut batch = VecDeque::new();
        assert!(rx.recv_many(&mut batch, 2).await);
        assert_eq!(batch.len(), 2);
        assert_eq!(outbox.queued(), 3);
        assert_eq!(rx.shared.queue.lock().bytes, 3 + 4 + 5);
    }

    #[tokio::test]
    async fn the_writer_wakes_for_a_push_and_stops_when_every_sender_is_gone() {
        let (outbox, mut rx) = outbox(8, 1 << 20, Closer::default());
        let writer = tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut batch = VecDeque::new();
            while rx.recv_many(&mut batch, 256).await {
                seen.extend(batch.drain(..).map(|item| item.len()));
            }
            seen
        });
        let second = outbox.clone();
        tokio::task::yield_now().await;
        assert!(outbox.push(text(1)));
        drop(outbox);
        assert!(second.push(text(2)));
        drop(second);
        assert_eq!(writer.await.expect("writer"), [1, 2]);
    }

    #[tokio::test]
    async fn a_replay_waits_for_room_the_writer_makes() {
        let closer = Closer::default();
        let (outbox, mut rx) = outbox(1, 1 << 20, closer.clone());
        assert!(outbox.push(text(1)));
        let replay = {
            let outbox = outbox.clone();
            tokio::spawn(async move { outbox.push_waiting(text(2), Duration::from_secs(30)).await })
        };
        // The replay is waiting (the queue is full) until the writer takes the first item.
        while rx.shared.queue.lock().waiting_for_room == 0 {
            tokio::task::yield_now().await;
        }
        assert!(rx.try_recv().is_some());
        assert!(
            replay.await.expect("replay task"),
            "room was made, so the replay went in"
        );
        assert_eq!(rx.try_recv().map(|item| item.len()), Some(2));
        assert!(!closer.is_closing());
    }

    #[tokio::test(start_paused = true)]
    async fn a_replay_that_finds_no_room_in_time_closes_as_slow_consumer() {
        let closer = Closer::default();
        let (outbox, _rx) = outbox(1, 1 << 20, closer.clone());
        assert!(outbox.push(text(1)));
        assert!(!outbox.push_waiting(text(2), Duration::from_secs(5)).await);
        assert_eq!(closer.reason().map(|r| r.code), Some(CloseCode::SlowConsumer));
    }

    #[tokio::test]
    async fn closing_wakes_every_waiter_and_later_ones_at_once() {
        let closer = Closer::default();
        let waiter = {
            let closer = closer.clone();
            tokio::spawn(async move { closer.closing().await })
        };
        tokio::task::yield_now().await;
        closer.close(CloseCode::GoingAway, "bye");
        waiter.await.expect("the waiter saw the close");
        closer.closing().await;
        assert_eq!(closer.reason().map(|r| r.code), Some(CloseCode::GoingAway));
    }

    #[test]
    fn one_oversized_message_fits_an_empty_queue() {
        let (outbox, mut rx) = outbox(4, 10, Closer::default());
        assert!(outbox.push(text(50)), "a single large reply is not a slow consumer");
        assert!(rx.try_recv().is_some());
        assert!(outbox.push(text(5)));
    }
}
