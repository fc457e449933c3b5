//! The writer of a rate-limited raw stream: the last step of its message path.
//!
//! It waits for the `Latest` slot to change, asks the `Pacer` whether a frame may go now,
//! and if not sleeps until it may, then sends whatever is newest by then. So at most `rate_hz`
//! frames a second leave, each the latest payload, and a payload arriving after a quiet period
//! leaves at once. It also sends the heartbeat Pings and the close frame, like the session's
//! writer (`session/writer.rs`).

use super::latest::Latest;
use super::pacer::Pacer;
use crate::metrics::Metrics;
use crate::session::outbox::{Closer, EventFrame};
use crate::session::writer::{AfterWrite, WriterConfig, after_write, send_close};
use crate::transport::{OutFrame, WriteError, WsWriter};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep_until, timeout};
use wshub_protocol::CloseCode;

/// What woke the writer.
enum Wake {
    /// A payload was put in the slot.
    Changed,
    /// The pacer's hold on a waiting payload is over.
    Due,
    /// Time for a heartbeat Ping.
    Ping,
    /// A Pong is owed to the client's Ping.
    Control,
}

/// Runs until the connection closes; returns once the close frame went out (or gave up).
pub(super) async fn run(
    mut ws: WsWriter,
    latest: Arc<Latest>,
    closer: Closer,
    config: WriterConfig,
    period: Duration,
    metrics: Arc<Metrics>,
) {
    let mut pacer = Pacer::new(period);
    let mut ping = interval_at(Instant::now() + config.ping_period, config.ping_period);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let due = sleep_until(Instant::now());
    tokio::pin!(due);
    // Whether a payload is being held back until `due`.
    let mut holding = false;
    loop {
        let wake = tokio::select! {
            biased;
            () = closer.closing() => break,
            () = &mut due, if holding => Wake::Due,
            () = latest.changed(), if !holding => Wake::Changed,
            _ = ping.tick() => Wake::Ping,
            () = ws.control_wanted() => Wake::Control,
        };
        let result = match wake {
            Wake::Ping => {
                timeout(config.write_timeout, async {
                    ws.feed(OutFrame::Ping).await?;
                    ws.flush().await
                })
                .await
            }
            Wake::Control => timeout(config.write_timeout, ws.flush()).await,
            Wake::Changed | Wake::Due => {
                let now = Instant::now();
                if let Wake::Changed = wake {
                    if !latest.is_pending() {
                        // Already sent: the wake-up was stored while a payload was held back.
                        continue;
                    }
                    let at = pacer.earliest(now);
                    if at > now {
                        holding = true;
                        due.as_mut().reset(at);
                        continue;
                    }
                }
                holding = false;
                let Some(frame) = latest.take() else { continue };
                pacer.sent(now);
                // As in the session's writer: only a blocked write is abandoned for a close.
                tokio::select! {
                    biased;
                    written = timeout(config.write_timeout, write(&mut ws, frame, &metrics)) => written,
                    () = closer.closing() => break,
                }
            }
        };
        match after_write(result, &closer) {
            AfterWrite::Continue => {}
            AfterWrite::Lost => return,
            AfterWrite::TooSlow => break,
        }
    }
    let reason = closer.final_reason();
    match reason.code {
        // The peer is gone: no close handshake is possible.
        CloseCode::Abnormal => {}
        CloseCode::SlowConsumer => send_close(&mut ws, &reason).await,
        // The newest payload not sent yet is still news: send it before closing, if the rate
        // allows it now (the rate holds to the end).
        _ => {
            let now = Instant::now();
            if pacer.earliest(now) <= now
                && let Some(frame) = latest.take()
                && !matches!(
                    timeout(config.write_timeout, write(&mut ws, frame, &metrics)).await,
                    Ok(Ok(()))
                )
            {
                tracing::debug!("could not send the last payload before closing");
            }
            send_close(&mut ws, &reason).await;
        }
    }
}

async fn write(ws: &mut WsWriter, frame: EventFrame, metrics: &Metrics) -> Result<(), WriteError> {
    let bytes = frame.len();
    ws.feed(OutFrame::from(frame)).await?;
    ws.flush().await?;
    metrics.frame_written(bytes);
    Ok(())
}
