//! Every open socket's queue, and the one operation on them: put a frame on all of them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::task::AbortHandle;

use crate::frame::Frame;

/// The sockets, shared by the accept loop and every connection task.
#[derive(Debug, Default)]
pub struct Hub {
    clients: Mutex<HashMap<u64, Client>>,
    /// Sockets closed because their queue was full when a frame came for them.
    dropped_full: AtomicU64,
}

#[derive(Debug)]
struct Client {
    queue: mpsc::Sender<Frame>,
    /// The socket's task: aborting it closes the socket.
    task: AbortHandle,
}

impl Hub {
    pub fn insert(&self, id: u64, queue: mpsc::Sender<Frame>, task: AbortHandle) {
        self.lock().insert(id, Client { queue, task });
    }

    pub fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Queues `frame` to every socket. A socket whose queue is full is a consumer that cannot
    /// keep up: it is closed at once and counted, and the others carry on.
    pub fn broadcast(&self, frame: &Frame) {
        self.lock()
            .retain(|_, client| match client.queue.try_send(frame.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    client.task.abort();
                    self.dropped_full.fetch_add(1, Ordering::Relaxed);
                    false
                }
                Err(TrySendError::Closed(_)) => false,
            });
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn dropped_full(&self) -> u64 {
        self.dropped_full.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Client>> {
        // No code panics while holding the lock; a poisoned map is still a valid map.
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
