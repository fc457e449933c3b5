//! Opening many connections: at most `concurrency` handshakes in flight, each on its own task
//! (so all the generator's cores work on them), each from the next source address.

use super::adapter::Adapter;
use super::progress::Progress;
use super::source::SourcePool;
use anyhow::{Context, Result, anyhow};
use std::future::Future;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use wshub_client::Client;

/// Handshakes in flight while a scenario opens its connections.
pub const OPEN_CONCURRENCY: usize = 200;

/// Connections opened, and how long opening them all took.
pub struct Opened {
    pub clients: Vec<Client>,
    pub elapsed: Duration,
}

impl Opened {
    /// Connections opened per second.
    pub fn rate(&self) -> Option<f64> {
        let seconds = self.elapsed.as_secs_f64();
        (!self.clients.is_empty() && seconds > 0.0).then(|| self.clients.len() as f64 / seconds)
    }
}

/// Opens `count` connections ready to receive (subscribed to `subscribe` on wshub); `what`
/// names them in progress and errors. The first failure stops it all.
pub async fn open_many(
    adapter: &Arc<Adapter>,
    sources: &Arc<SourcePool>,
    count: usize,
    subscribe: Option<&str>,
    what: &str,
    progress: &mut Progress,
) -> Result<Opened> {
    let started = Instant::now();
    let mut clients = Vec::with_capacity(count);
    let mut failure = None;
    progress.start("connecting", count as u64);
    let topic: Option<Arc<str>> = subscribe.map(Arc::from);
    for_each_bounded(
        count,
        OPEN_CONCURRENCY,
        |_| {
            let (adapter, bind, topic) = (Arc::clone(adapter), sources.next(), topic.clone());
            async move { adapter.open(bind, topic.as_deref()).await }
        },
        |index, opened| match opened {
            Ok(client) => {
                clients.push(client);
                progress.update(clients.len() as u64, &format!("{}/{count} {what}", clients.len()));
                ControlFlow::Continue(())
            }
            Err(error) => {
                failure = Some(error.context(format!("{what} {} of {count}", index + 1)));
                ControlFlow::Break(())
            }
        },
    )
    .await;
    progress.done();
    if let Some(error) = failure {
        return Err(error);
    }
    Ok(Opened {
        clients,
        elapsed: started.elapsed(),
    })
}

/// Runs `start(i)` for `i` in `0..count`, each on its own task, at most `concurrency` at a
/// time, handing each result to `done` as it comes; `done` can stop the rest (they are
/// aborted).
pub async fn for_each_bounded<T, Fut>(
    count: usize,
    concurrency: usize,
    mut start: impl FnMut(usize) -> Fut,
    mut done: impl FnMut(usize, Result<T>) -> ControlFlow<()>,
) where
    T: Send + 'static,
    Fut: Future<Output = Result<T>> + Send + 'static,
{
    let mut tasks = JoinSet::new();
    let mut next = 0;
    loop {
        while next < count && tasks.len() < concurrency.max(1) {
            let work = start(next);
            let index = next;
            tasks.spawn(async move { (index, work.await) });
            next += 1;
        }
        let Some(joined) = tasks.join_next().await else {
            return;
        };
        let (index, result) = match joined.context("a connection task failed") {
            Ok(finished) => finished,
            Err(error) => (next, Err(anyhow!(error))),
        };
        if done(index, result).is_break() {
            // Dropping the set aborts what is still in flight.
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn work_runs_bounded_and_stops_on_request() {
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut finished = 0;
        for_each_bounded(
            50,
            4,
            |i| {
                let (running, peak) = (Arc::clone(&running), Arc::clone(&peak));
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    // Lets the other tasks run while this one counts as running.
                    for _ in 0..4 {
                        tokio::task::yield_now().await;
                    }
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok(i)
                }
            },
            |_, result: Result<usize>| {
                assert!(result.is_ok());
                finished += 1;
                ControlFlow::Continue(())
            },
        )
        .await;
        assert_eq!(finished, 50);
        assert!(peak.load(Ordering::SeqCst) <= 4);

        let mut seen = 0;
        for_each_bounded(
            50,
            2,
            |i| async move { if i == 3 { Err(anyhow!("boom")) } else { Ok(i) } },
            |_, result| {
                seen += 1;
                if result.is_err() {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        )
        .await;
        assert!(seen < 50, "stopped early");
    }
}
