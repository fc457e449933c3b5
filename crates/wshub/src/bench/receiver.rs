//! A receiving connection's loop: read each frame, answer protocol pings, read the stamp of
//! load messages, judge order and duplication, and count messages sent inside the window with
//! their latency. Idle connections run the same loop with nothing to count.

use super::adapter::Adapter;
use super::clock::Clock;
use super::message::read_stamp;
use super::sequence::Tracker;
use super::stats::{Closes, Collector, Tally, Window};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use wshub_client::{Client, ClientError, Close, RawFrame};

/// A tally with counts in it is flushed after the connection has been quiet this long…
const FLUSH_AFTER: Duration = Duration::from_millis(20);
/// …or once its oldest count is this old (µs), so progress and draining see steady figures.
const FLUSH_EVERY_MICROS: u64 = 100_000;
/// How long a wait for a frame lasts when there is nothing to flush (the loop just waits again).
const QUIET: Duration = Duration::from_secs(3600);
/// How long closing a connection at the end may take.
pub const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// What every receiver of a run shares.
#[derive(Debug)]
pub struct Receiving {
    pub clock: Clock,
    pub adapter: Arc<Adapter>,
    pub window: Arc<Window>,
    pub collector: Arc<Collector>,
    pub closes: Arc<Closes>,
}

/// Receives on `client` until `stop`, or until the server closes it (which is recorded).
/// `key` spreads receivers over the collector's shards.
pub async fn receive(mut client: Client, key: usize, shared: Arc<Receiving>, stop: CancellationToken) {
    let mut tracker = Tracker::default();
    let mut tally = Tally::default();
    // When the oldest count in the tally was made (run clock, µs).
    let mut tally_since = 0;
    loop {
        let wait = if tally.is_empty() { QUIET } else { FLUSH_AFTER };
        let frame = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            frame = client.next_raw(wait) => frame,
        };
        match frame {
            Ok(RawFrame::Text(text)) => {
                let now = shared.clock.now_micros();
                if let Some(answer) = shared.adapter.answer(&text)
                    && client.send_text(answer).await.is_err()
                {
                    shared.closes.record(&Close::default());
                    break;
                }
                // A plain broadcast server may pack queued messages into one frame, one per
                // line (gorilla's chat hub does): each line is a message. The generator's
                // messages and every envelope around them are compact JSON, with no raw newline,
                // so splitting never cuts one.
                for message in text.split('\n') {
                    let Some(stamp) = read_stamp(message) else {
                        continue;
                    };
                    let seen = tracker.see(stamp.stream, stamp.seq);
                    if shared.window.contains(stamp.sent_micros) {
                        if tally.is_empty() {
                            tally_since = now;
                        }
                        tally.record(seen, now.saturating_sub(stamp.sent_micros));
                        if tally.is_full() || now.saturating_sub(tally_since) >= FLUSH_EVERY_MICROS {
                            shared.collector.flush(key, &mut tally);
                        }
                    }
                }
            }
            Ok(RawFrame::Binary(_) | RawFrame::Ping) => {}
            Ok(RawFrame::Closed(close)) => {
                shared.closes.record(&close);
                break;
            }
            Err(ClientError::Timeout(_)) => shared.collector.flush(key, &mut tally),
            Err(_) => {
                shared.closes.record(&Close::default());
                break;
            }
        }
    }
    shared.collector.flush(key, &mut tally);
    if stop.is_cancelled() {
        // The run is over; a polite close, but no waiting on a server that does not answer.
        let _ = tokio::time::timeout(CLOSE_WAIT, client.close(1000)).await;
    }
}
