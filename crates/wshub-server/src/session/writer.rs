//! The per-connection writer: the last step of a message's path.
//!
//! Drains the connection's [`Outbox`](super::outbox::Outbox) onto the socket, gathering
//! everything already queued into one flush, sends heartbeat Pings, and performs the
//! close: a normal close flushes what is queued first; a slow consumer's backlog is
//! dropped and its close frame gets at most one second.
//!
//! A raw stream route without `rate_hz` uses this writer too (its frames are plain
//! [`Outgoing::Frame`]s, so nothing is recorded in [`Delivered`]).

use super::delivered::Delivered;
use super::outbox::{CloseReason, Closer, OutboxReceiver, Outgoing, StreamMark};
use crate::metrics::{Metrics, WRITER_FOLD_AFTER, WriterBatch, monotonic_micros};
use crate::transport::{OutFrame, WriteError, WsWriter};
use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::error::Elapsed;
use tokio::time::{Instant, sleep_until, timeout};
use wshub_protocol::CloseCode;

/// Most frames gathered into one flush, so one busy connection cannot hold its
/// writer away from heartbeats and close requests for long.
const MAX_BATCH: usize = 256;
/// How long a close frame may take before TCP is simply dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Timing of one writer.
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// Interval of heartbeat Pings.
    pub ping_period: Duration,
    /// Longest a write may block before the client counts as a slow consumer.
    pub write_timeout: Duration,
}

/// Runs until the connection closes; returns once the close frame went out (or gave up).
/// Every event flushed to the socket is recorded in `delivered`.
///
/// Not an `async fn`, and the loops below take references: an `async fn` keeps its
/// arguments in its future for its whole life, twice over, and every connection holds one.
pub fn run(
    mut ws: WsWriter,
    mut queue: OutboxReceiver,
    closer: Closer,
    delivered: Delivered,
    config: WriterConfig,
    metrics: Arc<Metrics>,
) -> impl Future<Output = ()> + Send + 'static {
    let mut batch = metrics.writer_batch();
    async move {
        write_until_closed(&mut ws, &mut queue, &closer, &delivered, config, &metrics, &mut batch).await;
        metrics.fold_now(&mut batch);
    }
}

/// What woke the writer.
enum Wake {
    /// A close was requested.
    Closing,
    /// Items were taken off the queue.
    Queued,
    /// Nothing more can ever be queued.
    QueueEnded,
    /// The reader left a Pong to send, or saw the client's Close.
    Control,
    /// The timer: a Ping, or counts to fold.
    Timer,
}

/// The next thing for the writer to do, in order of precedence. Every source is an atomic
/// and a waker, so a writer woken for each event checks them all cheaply.
fn poll_wake(
    cx: &mut Context<'_>,
    closer: &Closer,
    queue: &mut OutboxReceiver,
    // `&mut` only so that the future holding it is `Send` (`WsWriter` is not `Sync`).
    ws: &mut WsWriter,
    items: &mut VecDeque<Outgoing>,
) -> Poll<Wake> {
    if closer.poll_closing_for_writer(cx).is_ready() {
        return Poll::Ready(Wake::Closing);
    }
    if let Poll::Ready(open) = queue.poll_recv_many(cx, items, MAX_BATCH) {
        return Poll::Ready(if open { Wake::Queued } else { Wake::QueueEnded });
    }
    if ws.poll_control_wanted(cx).is_ready() {
        return Poll::Ready(Wake::Control);
    }
    Poll::Pending
}

async fn write_until_closed(
    ws: &mut WsWriter,
    queue: &mut OutboxReceiver,
    closer: &Closer,
    delivered: &Delivered,
    config: WriterConfig,
    metrics: &Metrics,
    batch: &mut WriterBatch,
) {
    // What this task holds while the connection is idle is kept small: the futures of a write
    // the socket did not take at once are boxed (allocated only while it waits).
    let mut items = VecDeque::new();
    let mut marks = Vec::new();
    // One timer for the heartbeat Ping and for folding counts: `Metrics::fold` may leave some
    // in the batch, and they are folded by `fold_due` at the latest, so an idle connection
    // never holds them back.
    let mut next_ping = Instant::now() + config.ping_period;
    let mut fold_due: Option<Instant> = None;
    let timer = sleep_until(next_ping);
    tokio::pin!(timer);
    loop {
        let wake = tokio::select! {
            biased;
            wake = std::future::poll_fn(|cx| poll_wake(cx, closer, queue, ws, &mut items)) => wake,
            () = &mut timer => Wake::Timer,
        };
        let result = match wake {
            Wake::Closing | Wake::QueueEnded => break,
            Wake::Queued => {
                // Most of the time the socket takes the whole batch at once: no future, no
                // timer. Only what it leaves is written under `write_timeout`, and that write
                // is abandoned for a close (e.g. this client's queue overflowed while the
                // socket was blocked): a close must not wait for it. A frame taken off the
                // queue just before a close was requested (a reply, then 1001) is still written
                // when the socket takes it.
                let written = match write_now(ws, &mut items, &mut marks, batch) {
                    Ok(true) => Ok(Ok(())),
                    Ok(false) => {
                        let write = Box::pin(timeout(
                            config.write_timeout,
                            write_batch(ws, &mut items, &mut marks, batch),
                        ));
                        tokio::select! {
                            biased;
                            written = write => written,
                            () = std::future::poll_fn(|cx| closer.poll_closing_for_writer(cx)) => break,
                        }
                    }
                    Err(error) => Ok(Err(error)),
                };
                if matches!(written, Ok(Ok(()))) {
                    delivered.record(&marks);
                    count_flushed(metrics, &marks, batch);
                    if batch.has_unfolded() && fold_due.is_none() {
                        let due = Instant::now() + WRITER_FOLD_AFTER;
                        fold_due = Some(due);
                        if due < timer.deadline() {
                            timer.as_mut().reset(due);
                        }
                    }
                }
                marks.clear();
                written
            }
            Wake::Timer => {
                let now = Instant::now();
                if fold_due.is_some_and(|due| now >= due) {
                    metrics.fold_now(batch);
                    fold_due = None;
                }
                let result = if now >= next_ping {
                    next_ping = now + config.ping_period;
                    Box::pin(timeout(config.write_timeout, async {
                        ws.feed(OutFrame::Ping).await?;
                        ws.flush().await
                    }))
                    .await
                } else {
                    Ok(Ok(()))
                };
                timer
                    .as_mut()
                    .reset(fold_due.map_or(next_ping, |due| due.min(next_ping)));
                result
            }
            // A Pong owed to the client's Ping (frames flushed above carry it too).
            Wake::Control => Box::pin(timeout(config.write_timeout, ws.flush())).await,
        };
        match after_write(result, closer) {
            AfterWrite::Continue => {}
            AfterWrite::Lost => return,
            AfterWrite::TooSlow => break,
        }
    }
    Box::pin(close(ws, queue, items, closer, delivered, config, metrics, batch)).await;
}

/// Feeds `items` and writes them without waiting. `Ok(true)` when all of it went out;
/// `Ok(false)` when the socket did not take everything: what was fed stays buffered in `ws`
/// and the rest in `items`, for [`write_batch`] to finish.
fn write_now(
    ws: &mut WsWriter,
    items: &mut VecDeque<Outgoing>,
    marks: &mut Vec<StreamMark>,
    batch: &mut WriterBatch,
) -> Result<bool, WriteError> {
    while ws.can_feed_now() {
        let Some(item) = items.pop_front() else {
            // Everything is fed: the queue's buffer came with the batch, free it.
            *items = VecDeque::new();
            return ws.try_flush_now();
        };
        ws.feed_now(counted(item, marks, batch));
        if !ws.can_feed_now() && !ws.try_write_now()? {
            return Ok(false);
        }
    }
    Ok(false)
}

/// Ends the connection once the loop stopped: flushes what is owed, then the close frame.
#[allow(clippy::too_many_arguments)]
async fn close(
    ws: &mut WsWriter,
    queue: &mut OutboxReceiver,
    mut items: VecDeque<Outgoing>,
    closer: &Closer,
    delivered: &Delivered,
    config: WriterConfig,
    metrics: &Metrics,
    batch: &mut WriterBatch,
) {
    let reason = closer.final_reason();
    match reason.code {
        // The peer is gone: nothing can be flushed and no close handshake is possible.
        CloseCode::Abnormal => queue.discard(),
        // A slow consumer's backlog is dropped; its close frame gets a short grace.
        CloseCode::SlowConsumer => {
            queue.discard();
            send_close(ws, &reason).await;
        }
        // Replies and events already queued are owed to the client (those of an abandoned
        // batch first): send them.
        _ => {
            let mut marks = Vec::new();
            let flushed = timeout(config.write_timeout, async {
                while let Some(item) = items.pop_front().or_else(|| queue.try_recv()) {
                    feed(ws, item, &mut marks, batch).await?;
                }
                ws.flush().await
            })
            .await;
            if matches!(flushed, Ok(Ok(()))) {
                delivered.record(&marks);
                count_flushed(metrics, &marks, batch);
            } else {
                batch.lost();
                tracing::debug!("could not flush the queue before closing");
            }
            send_close(ws, &reason).await;
        }
    }
}

/// How a writer loop goes on after a timed write.
pub(crate) enum AfterWrite {
    /// It was written.
    Continue,
    /// The socket failed: the peer is gone, no close sequence is possible (recorded as 1006).
    Lost,
    /// It did not finish within `write_timeout`: the client is closed as a slow consumer.
    TooSlow,
}

/// Judges a write done under `timeout(write_timeout, …)`, recording the close it calls for.
pub(crate) fn after_write(written: Result<Result<(), WriteError>, Elapsed>, closer: &Closer) -> AfterWrite {
    match written {
        Ok(Ok(())) => AfterWrite::Continue,
        Ok(Err(error)) => {
            tracing::debug!(%error, "write failed; closing");
            closer.close(CloseCode::Abnormal, "write failed");
            AfterWrite::Lost
        }
        Err(_elapsed) => {
            closer.close(CloseCode::SlowConsumer, "slow consumer: write timeout");
            AfterWrite::TooSlow
        }
    }
}

/// Sends the close frame, giving it at most [`CLOSE_GRACE`] before the connection is dropped.
pub(crate) async fn send_close(ws: &mut WsWriter, reason: &CloseReason) {
    if timeout(CLOSE_GRACE, ws.close(reason.code.code(), &reason.reason))
        .await
        .is_err()
    {
        tracing::debug!(
            code = reason.code.code(),
            "close frame not written in time; dropping the connection"
        );
    }
}

/// Counts a flushed batch: its frames and sizes, and each live event's latency; folds the
/// counts into the shared metrics now and then (`Metrics::fold`).
fn count_flushed(metrics: &Metrics, marks: &[StreamMark], batch: &mut WriterBatch) {
    let now = monotonic_micros();
    batch.flushed(
        marks
            .iter()
            .filter(|m| m.published_at != 0)
            .map(|m| Duration::from_micros(now.saturating_sub(m.published_at))),
    );
    metrics.fold(batch, now);
}

/// Counts one queued item as fed and notes the stream position of an event; returns its frame.
fn counted(item: Outgoing, marks: &mut Vec<StreamMark>, batch: &mut WriterBatch) -> OutFrame {
    batch.frame(item.len());
    match item {
        Outgoing::Frame(frame) => frame,
        Outgoing::Event { frame, mark } => {
            marks.push(mark);
            frame.into()
        }
    }
}

/// Feeds one queued item, noting the stream position of an event.
async fn feed(
    ws: &mut WsWriter,
    item: Outgoing,
    marks: &mut Vec<StreamMark>,
    batch: &mut WriterBatch,
) -> Result<(), WriteError> {
    ws.feed(counted(item, marks, batch)).await
}

/// Feeds `items` (taken off the queue together) and flushes them in one write. Items are
/// taken off `items` only as they are fed, so an abandoned batch leaves the rest there.
async fn write_batch(
    ws: &mut WsWriter,
    items: &mut VecDeque<Outgoing>,
    marks: &mut Vec<StreamMark>,
    batch: &mut WriterBatch,
) -> Result<(), WriteError> {
    while let Some(item) = items.pop_front() {
        feed(ws, item, marks, batch).await?;
    }
    // The queue's buffer came with the batch (`OutboxReceiver::recv_many`): free it, so an
    // idle connection keeps none.
    *items = VecDeque::new();
    ws.flush().await
}
