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
use std::sync::Arc;
use std::time::Duration;
use tokio::time::error::Elapsed;
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep_until, timeout};
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
pub async fn run(
    ws: WsWriter,
    queue: OutboxReceiver,
    closer: Closer,
    delivered: Delivered,
    config: WriterConfig,
    metrics: Arc<Metrics>,
) {
    let mut batch = metrics.writer_batch();
    write_until_closed(ws, queue, closer, delivered, config, &metrics, &mut batch).await;
    metrics.fold_now(&mut batch);
}

async fn write_until_closed(
    mut ws: WsWriter,
    mut queue: OutboxReceiver,
    closer: Closer,
    delivered: Delivered,
    config: WriterConfig,
    metrics: &Metrics,
    batch: &mut WriterBatch,
) {
    let mut marks = Vec::new();
    // Counts that `Metrics::fold` left in the batch are folded by this timer at the latest,
    // so an idle connection never holds them back; it runs only while some are waiting.
    let fold_timer = sleep_until(Instant::now());
    tokio::pin!(fold_timer);
    let mut fold_armed = false;
    let mut ping = interval_at(Instant::now() + config.ping_period, config.ping_period);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let result = tokio::select! {
            biased;
            () = closer.closing() => break,
            item = queue.recv() => match item {
                // The write is polled first: a frame taken off the queue just before a close
                // was requested (a reply, then 1001) is still written when the socket takes it.
                // Only a blocked write is abandoned for a close (e.g. this client's queue
                // overflowed while the socket was blocked): it must not wait for the write.
                Some(item) => tokio::select! {
                    biased;
                    written = timeout(config.write_timeout, write_batch(&mut ws, item, &mut queue, &mut marks, batch)) => {
                        if matches!(written, Ok(Ok(()))) {
                            delivered.record(&marks);
                            count_flushed(metrics, &marks, batch);
                            if batch.has_unfolded() && !fold_armed {
                                fold_timer.as_mut().reset(Instant::now() + WRITER_FOLD_AFTER);
                                fold_armed = true;
                            }
                        }
                        marks.clear();
                        written
                    }
                    () = closer.closing() => break,
                },
                None => break,
            },
            () = &mut fold_timer, if fold_armed => {
                metrics.fold_now(batch);
                fold_armed = false;
                continue;
            }
            _ = ping.tick() => timeout(config.write_timeout, async {
                ws.feed(OutFrame::Ping).await?;
                ws.flush().await
            }).await,
            // A Pong owed to the client's Ping (frames flushed above carry it too).
            () = ws.control_wanted() => timeout(config.write_timeout, ws.flush()).await,
        };
        match after_write(result, &closer) {
            AfterWrite::Continue => {}
            AfterWrite::Lost => return,
            AfterWrite::TooSlow => break,
        }
    }
    let reason = closer.final_reason();
    match reason.code {
        // The peer is gone: nothing can be flushed and no close handshake is possible.
        CloseCode::Abnormal => queue.discard(),
        // A slow consumer's backlog is dropped; its close frame gets a short grace.
        CloseCode::SlowConsumer => {
            queue.discard();
            send_close(&mut ws, &reason).await;
        }
        // Replies and events already queued are owed to the client: send them first.
        _ => {
            let flushed = timeout(config.write_timeout, async {
                while let Some(item) = queue.try_recv() {
                    feed(&mut ws, item, &mut marks, batch).await?;
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
            send_close(&mut ws, &reason).await;
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

/// Feeds one queued item, noting the stream position of an event.
async fn feed(
    ws: &mut WsWriter,
    item: Outgoing,
    marks: &mut Vec<StreamMark>,
    batch: &mut WriterBatch,
) -> Result<(), WriteError> {
    batch.frame(item.len());
    match item {
        Outgoing::Frame(frame) => ws.feed(frame).await,
        Outgoing::Event { frame, mark } => {
            ws.feed(frame.into()).await?;
            marks.push(mark);
            Ok(())
        }
    }
}

async fn write_batch(
    ws: &mut WsWriter,
    first: Outgoing,
    queue: &mut OutboxReceiver,
    marks: &mut Vec<StreamMark>,
    batch: &mut WriterBatch,
) -> Result<(), WriteError> {
    feed(ws, first, marks, batch).await?;
    for _ in 1..MAX_BATCH {
        let Some(item) = queue.try_recv() else { break };
        feed(ws, item, marks, batch).await?;
    }
    ws.flush().await
}
