//! What the reader half asks of the writer half: a Pong to answer a Ping, and the client's
//! Close to echo.
//!
//! The reader runs in the session's task and the writer in its own, so the reader never
//! writes: it leaves the answer here and wakes the writer, which sends it with its next
//! flush (`WsWriter::control_wanted` resolves when one is waiting).

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

/// State shared by one connection's two halves.
#[derive(Debug, Default)]
pub struct Control {
    state: Mutex<State>,
    /// Something was left for the writer since it last looked.
    wanted: AtomicBool,
    /// The writer (one task per connection), woken when something is left.
    writer: AtomicWaker,
}

#[derive(Debug, Default)]
struct State {
    /// Application data of the latest Ping not answered yet (RFC 6455 §5.5.3 allows
    /// answering only the most recent one).
    pong: Option<Bytes>,
    /// The client's Close, once received: `Some(code)` or `Some(None)` for an empty one.
    peer_close: Option<Option<u16>>,
}

impl Control {
    /// A Ping arrived: its Pong is owed.
    pub fn ping(&self, data: Bytes) {
        self.state.lock().pong = Some(data);
        self.wake_writer();
    }

    /// The client sent Close, with its code if any.
    pub fn peer_closed(&self, code: Option<u16>) {
        self.state.lock().peer_close = Some(code);
        self.wake_writer();
    }

    /// The Pong owed, if any.
    pub fn take_pong(&self) -> Option<Bytes> {
        self.state.lock().pong.take()
    }

    /// The client's Close, if it sent one.
    pub fn peer_close(&self) -> Option<Option<u16>> {
        self.state.lock().peer_close
    }

    /// Resolves once the reader left something for the writer (at once if it did since the
    /// last call). One task (the connection's writer) waits on it.
    pub async fn wanted(&self) {
        std::future::poll_fn(|cx| self.poll_wanted(cx)).await
    }

    /// [`wanted`](Self::wanted) as a poll: an atomic and a waker, so a writer can check it
    /// on every wake-up at little cost.
    pub fn poll_wanted(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.wanted.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        self.writer.register(cx.waker());
        // Checked again after registering: a wake in between went to the old waker.
        if self.wanted.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    fn wake_writer(&self) {
        self.wanted.store(true, Ordering::Release);
        self.writer.wake();
    }
}
