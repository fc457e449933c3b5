//! One connection's handler calls in flight: each runs as its own task, at most
//! [`MAX_IN_FLIGHT`] at once, and queues exactly one reply on the connection's outbox.
//!
//! Calls run beside the session's reader loop, so a slow backend never stops the connection
//! from reading, and several calls of one connection proceed together. Each call ends in one of
//! four ways — the handler answered, its route's timeout ran out (`handler_timeout`), it panicked
//! (`internal`), or the connection cancelled it (`unavailable`: shutdown past its grace, or the
//! connection closing) — and each way queues one frame. The reader loop waits on
//! [`InFlight::finished`] while draining, so a shutdown closes a connection only once its calls
//! have answered.

use super::error::WithCauses;
use super::{BoxedCall, HandlerError, HandlerReply, HandlerResult};
use crate::metrics::Metrics;
use crate::session::outbox::{Outbox, Outgoing};
use crate::transport::{OutFrame, SharedText};
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use wshub_protocol::{ErrorCode, EventName, RequestId, now_millis, outbound};

/// Most handler calls one connection may have in flight (CONTRACT §5); more get `unavailable`.
pub const MAX_IN_FLIGHT: usize = 8;

/// The calls of one connection. Dropping it aborts whatever still runs.
#[derive(Debug)]
pub(crate) struct InFlight {
    limit: usize,
    /// Made at the first call: most connections never make one, and every connection has an
    /// `InFlight`.
    active: Option<Box<Active>>,
    /// `cancel_all` was called: a call started later is cancelled at once.
    cancelled: bool,
}

#[derive(Debug)]
struct Active {
    tasks: JoinSet<()>,
    /// One permit per call; released before the call's reply is queued, so a client that has
    /// seen a reply can always make another call.
    slots: Arc<Semaphore>,
    /// Tells every call to give up and answer `unavailable`.
    cancel: CancellationToken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Busy;

/// One call to make.
pub(crate) struct Call {
    /// The request's `id`, echoed on the reply.
    pub(crate) id: Option<RequestId>,
    /// The request type (the default reply type is `<kind>.result`).
    pub(crate) kind: String,
    /// The handler's future, not yet polled.
    pub(crate) future: BoxedCall,
    /// The route's timeout.
    pub(crate) timeout: Duration,
}

/// Where a call's reply goes.
#[derive(Debug, Clone)]
pub(crate) struct ReplyTo {
    pub(crate) outbox: Outbox,
    /// Replies above it become `message_too_large` (CONTRACT §4).
    pub(crate) max_message_size: usize,
    /// Where the call is counted as an answered request once its reply is queued.
    pub(crate) metrics: Arc<Metrics>,
}

impl InFlight {
    pub(crate) fn new(limit: usize) -> InFlight {
        InFlight {
            limit,
            active: None,
            cancelled: false,
        }
    }

    /// Starts a call if a slot is free. Runs in the caller's tracing span.
    pub(crate) fn start(&mut self, call: Call, reply_to: ReplyTo) -> Result<(), Busy> {
        let cancelled = self.cancelled;
        let active = self.active.get_or_insert_with(|| {
            let cancel = CancellationToken::new();
            if cancelled {
                cancel.cancel();
            }
            Box::new(Active {
                tasks: JoinSet::new(),
                slots: Arc::new(Semaphore::new(self.limit)),
                cancel,
            })
        });
        let slot = Arc::clone(&active.slots).try_acquire_owned().map_err(|_| Busy)?;
        let cancel = active.cancel.clone();
        active.tasks.spawn(run(call, slot, cancel, reply_to).in_current_span());
        Ok(())
    }

    /// Whether no call is running (every call's reply is queued).
    pub(crate) fn is_empty(&self) -> bool {
        self.active.as_ref().is_none_or(|a| a.tasks.is_empty())
    }

    /// Resolves once a call has finished and queued its reply; never resolves while none runs.
    #[cfg(test)]
    pub(crate) async fn finished(&mut self) {
        std::future::poll_fn(|cx| self.poll_finished(cx)).await
    }

    /// [`finished`](Self::finished) as a poll, so the session's loop holds no future for it.
    pub(crate) fn poll_finished(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        let Some(active) = self.active.as_mut() else {
            return std::task::Poll::Pending;
        };
        match std::task::ready!(active.tasks.poll_join_next(cx)) {
            None => return std::task::Poll::Pending,
            Some(Err(error)) if error.is_panic() => {
                // Handler panics are caught inside the task; this would be a bug in the hub.
                tracing::error!(%error, "a handler call task panicked; its request got no reply");
            }
            Some(_) => {}
        }
        std::task::Poll::Ready(())
    }

    /// Asks every running call to stop at once and answer `unavailable`.
    pub(crate) fn cancel_all(&mut self) {
        self.cancelled = true;
        if let Some(active) = &self.active {
            active.cancel.cancel();
        }
    }
}

/// How a call ended.
enum Outcome {
    Answered(HandlerResult),
    TimedOut(Duration),
    Panicked,
    Cancelled,
}

async fn run(call: Call, slot: OwnedSemaphorePermit, cancel: CancellationToken, reply_to: ReplyTo) {
    let Call {
        id,
        kind,
        future,
        timeout,
    } = call;
    let started = Instant::now();
    // A panic in application code must still give the request its one reply.
    let answer = AssertUnwindSafe(future).catch_unwind();
    let outcome = tokio::select! {
        biased;
        () = cancel.cancelled() => Outcome::Cancelled,
        answer = tokio::time::timeout(timeout, answer) => match answer {
            Err(_elapsed) => Outcome::TimedOut(timeout),
            Ok(Err(_panic)) => Outcome::Panicked,
            Ok(Ok(result)) => Outcome::Answered(result),
        },
    };
    drop(slot);
    let (frame, error) = reply_frame(
        id.as_ref(),
        &kind,
        outcome,
        started.elapsed(),
        reply_to.max_message_size,
    );
    let metrics = &reply_to.metrics;
    if let Some(code) = error {
        metrics.error(code);
    }
    metrics.requests.record(error.is_none(), started.elapsed());
    if let Some(text) = SharedText::from_vec(frame) {
        // `false` only when the connection is closing: nobody is left to read the reply.
        reply_to.outbox.push(Outgoing::Frame(OutFrame::Text(text)));
    }
}

/// Encodes the one frame a call ends with (and its error code, if it is an error),
/// logging failures with their cause.
fn reply_frame(
    id: Option<&RequestId>,
    kind: &str,
    outcome: Outcome,
    elapsed: Duration,
    max: usize,
) -> (Vec<u8>, Option<ErrorCode>) {
    let elapsed_ms = elapsed.as_millis() as u64;
    let error = |code: ErrorCode, message: &str| (outbound::error(id, code, message, None, now_millis()), Some(code));
    match outcome {
        Outcome::Answered(Ok(reply)) => match success_frame(id, kind, reply, max) {
            Ok(frame) => {
                tracing::debug!(kind, elapsed_ms, "handler answered");
                (frame, None)
            }
            Err(failure) => {
                tracing::warn!(kind, elapsed_ms, error = %WithCauses(&failure), "handler reply refused");
                error(failure.code(), &failure.client_message(kind))
            }
        },
        Outcome::Answered(Err(failure)) => {
            tracing::warn!(kind, elapsed_ms, error = %WithCauses(&failure), "handler failed");
            error(failure.code(), &failure.client_message(kind))
        }
        Outcome::TimedOut(timeout) => {
            let timeout = humantime::format_duration(timeout);
            tracing::warn!(kind, %timeout, "handler did not answer in time");
            error(
                ErrorCode::HandlerTimeout,
                &format!("the handler for {kind:?} did not answer within {timeout}"),
            )
        }
        Outcome::Panicked => {
            tracing::error!(kind, elapsed_ms, "handler panicked");
            error(
                ErrorCode::Internal,
                &format!("the handler for {kind:?} failed unexpectedly"),
            )
        }
        Outcome::Cancelled => {
            tracing::debug!(kind, elapsed_ms, "handler call cancelled");
            error(
                ErrorCode::Unavailable,
                &format!("the call to {kind:?} was cancelled: the hub is shutting down"),
            )
        }
    }
}

fn success_frame(id: Option<&RequestId>, kind: &str, reply: HandlerReply, max: usize) -> Result<Vec<u8>, HandlerError> {
    let reply_type = match &reply.kind {
        Some(given) => EventName::parse(given)
            .map_err(|e| HandlerError::InvalidReply(format!("type {given:?}: {e}")))?
            .as_str()
            .to_owned(),
        None => format!("{kind}.result"),
    };
    let frame = outbound::reply(id, &reply_type, &reply.payload, now_millis());
    if frame.len() > max {
        return Err(HandlerError::TooLarge { limit: max });
    }
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::HandlerReply;
    use crate::session::outbox::{Closer, OutboxReceiver, outbox};
    use serde_json::{Value, json};

    fn setup(limit: usize) -> (InFlight, ReplyTo, OutboxReceiver) {
        let (outbox, rx) = outbox(64, 1 << 20, Closer::default());
        let reply_to = ReplyTo {
            outbox,
            max_message_size: 1024,
            metrics: Arc::new(Metrics::new(&crate::config::Config::default(), [])),
        };
        (InFlight::new(limit), reply_to, rx)
    }

    fn call(id: &str, future: impl Future<Output = HandlerResult> + Send + 'static) -> Call {
        let frame = format!(r#"{{"id":"{id}","type":"calc.run"}}"#);
        let decoded = wshub_protocol::decode_client_frame(frame.as_bytes()).expect("a request");
        Call {
            id: decoded.id,
            kind: "calc.run".to_owned(),
            future: Box::pin(future),
            timeout: Duration::from_secs(5),
        }
    }

    async fn next_reply(rx: &mut OutboxReceiver) -> Value {
        match rx.recv().await.expect("a reply") {
            Outgoing::Frame(OutFrame::Text(text)) => serde_json::from_slice(text.as_bytes()).expect("json"),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_answer_becomes_the_reply_with_the_default_type() {
        let (mut calls, reply_to, mut rx) = setup(8);
        let answer = async { HandlerReply::json(&json!({"sum": 3})) };
        calls.start(call("a", answer), reply_to.clone()).expect("slot");
        let named = async { Ok(HandlerReply::empty().with_type("calc.done")) };
        calls.start(call("b", named), reply_to).expect("slot");
        let mut replies = [next_reply(&mut rx).await, next_reply(&mut rx).await];
        replies.sort_by_key(|r| r["id"].as_str().map(str::to_owned));
        assert_eq!(replies[0]["type"], "calc.run.result");
        assert_eq!(replies[0]["payload"], json!({"sum": 3}));
        assert_eq!(
            (&replies[1]["type"], &replies[1]["payload"]),
            (&json!("calc.done"), &json!({}))
        );
        while !calls.is_empty() {
            calls.finished().await;
        }
    }

    #[tokio::test]
    async fn nothing_is_set_up_before_the_first_call_and_a_call_after_cancel_all_is_cancelled() {
        let (mut calls, reply_to, mut rx) = setup(8);
        assert!(calls.active.is_none() && calls.is_empty());
        calls.cancel_all();
        calls
            .start(call("late", std::future::pending()), reply_to)
            .expect("slot");
        assert_eq!(next_reply(&mut rx).await["payload"]["code"], "unavailable");
        calls.finished().await;
        assert!(calls.is_empty());
    }

    #[tokio::test]
    async fn a_reserved_or_oversized_reply_is_refused() {
        let (mut calls, reply_to, mut rx) = setup(8);
        let reserved = async { Ok(HandlerReply::empty().with_type("error")) };
        calls.start(call("a", reserved), reply_to.clone()).expect("slot");
        let reply = next_reply(&mut rx).await;
        assert_eq!(reply["payload"]["code"], "handler_failed");
        let huge = async { HandlerReply::json(&json!({"blob": "x".repeat(2000)})) };
        calls.start(call("b", huge), reply_to).expect("slot");
        assert_eq!(next_reply(&mut rx).await["payload"]["code"], "message_too_large");
    }

    #[tokio::test]
    async fn the_slot_is_free_before_the_reply_is_queued() {
        let (mut calls, reply_to, mut rx) = setup(2);
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        calls
            .start(
                call("held", async move {
                    let _ = released.await;
                    Ok(HandlerReply::empty())
                }),
                reply_to.clone(),
            )
            .expect("first slot");
        calls
            .start(call("quick", async { Ok(HandlerReply::empty()) }), reply_to.clone())
            .expect("second slot");
        assert_eq!(next_reply(&mut rx).await["id"], "quick");
        // The quick call's reply is out, so its slot is already back: one more fits, not two.
        let pending = || std::future::pending::<HandlerResult>();
        calls
            .start(call("third", pending()), reply_to.clone())
            .expect("freed slot");
        assert_eq!(calls.start(call("fourth", pending()), reply_to), Err(Busy));
        release.send(()).expect("held call waits");
        assert_eq!(next_reply(&mut rx).await["id"], "held");
    }

    #[tokio::test(start_paused = true)]
    async fn timeouts_panics_and_cancellation_each_get_one_reply() {
        let (mut calls, reply_to, mut rx) = setup(8);
        let mut slow = call("slow", std::future::pending());
        slow.timeout = Duration::from_millis(300);
        let started = Instant::now();
        calls.start(slow, reply_to.clone()).expect("slot");
        let reply = next_reply(&mut rx).await;
        assert_eq!(reply["payload"]["code"], "handler_timeout");
        assert_eq!(started.elapsed(), Duration::from_millis(300));
        assert!(
            reply["payload"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("300ms")),
            "{reply}"
        );

        let boom = async {
            if true {
                panic!("handler bug");
            }
            Ok(HandlerReply::empty())
        };
        calls.start(call("boom", boom), reply_to.clone()).expect("slot");
        assert_eq!(next_reply(&mut rx).await["payload"]["code"], "internal");

        calls
            .start(call("waiting", std::future::pending()), reply_to)
            .expect("slot");
        calls.cancel_all();
        let reply = next_reply(&mut rx).await;
        assert_eq!(
            (&reply["id"], &reply["payload"]["code"]),
            (&json!("waiting"), &json!("unavailable"))
        );
        while !calls.is_empty() {
            calls.finished().await;
        }
    }

    #[tokio::test]
    async fn handler_errors_map_to_their_codes() {
        let (mut calls, reply_to, mut rx) = setup(8);
        calls
            .start(
                call("f", async { Err(HandlerError::failed("db said no")) }),
                reply_to.clone(),
            )
            .expect("slot");
        let reply = next_reply(&mut rx).await;
        assert_eq!(reply["payload"]["code"], "handler_failed");
        assert!(
            !reply.to_string().contains("db said no"),
            "the cause stays in the log: {reply}"
        );
        calls
            .start(
                call("u", async { Err(HandlerError::Unavailable("down".into())) }),
                reply_to,
            )
            .expect("slot");
        assert_eq!(next_reply(&mut rx).await["payload"]["code"], "unavailable");
    }
}
