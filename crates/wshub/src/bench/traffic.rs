//! The traffic of `fanout` and `saturate`: subscribers and publishers opened once, then one or
//! more measured steps. A step opens the [`Window`] and hands publishers a [`Plan`]; after a
//! warm-up the window counts, publishers stop at its end, receivers are given time to drain
//! (until every expected message is in, or nothing arrived for [`DRAIN_QUIET`]), and the counts
//! are taken — and reset, for the next step.

use super::adapter::Adapter;
use super::clock::Clock;
use super::load::open_many;
use super::procfs::{Monitor, Usage};
use super::progress::Progress;
use super::publisher::{self, HttpLane, Plan, Publishing, Shared};
use super::receiver::{self, CLOSE_WAIT, Receiving};
use super::report::count;
use super::source::SourcePool;
use super::stats::{Closes, Collector, Totals, Window};
use crate::args::{PublishVia, ServerArgs, TargetKind, TrafficArgs};
use crate::cli::endpoint;
use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Draining ends when nothing new has arrived for this long…
const DRAIN_QUIET: Duration = Duration::from_secs(1);
/// …or after this long at most.
const DRAIN_MAX: Duration = Duration::from_secs(10);
/// How long publishers may take to notice the end of a step (a blocked write, a slow HTTP reply).
const FINISH_WAIT: Duration = Duration::from_secs(10);
/// How often progress is updated (and fatal publisher errors noticed).
const TICK: Duration = Duration::from_millis(250);

/// How publishers reach the server.
#[derive(Debug)]
pub enum Via {
    /// One WebSocket connection per publisher.
    Ws,
    /// `lanes` HTTP request lanes per publisher.
    Http { lane: HttpLane, lanes: u32 },
}

/// What to open.
#[derive(Debug)]
pub struct Spec {
    pub adapter: Arc<Adapter>,
    pub sources: Arc<SourcePool>,
    pub subscribers: usize,
    pub publishers: usize,
    pub via: Via,
    pub payload_bytes: usize,
    /// wshub: the topic subscribers subscribe to.
    pub topic: Option<String>,
}

impl Spec {
    /// The traffic the flags ask for, with `subscribers` subscribers; checks that the
    /// connections fit (open files, local ports).
    pub fn from_args(server: &ServerArgs, args: &TrafficArgs, subscribers: usize) -> Result<Spec> {
        let adapter = Arc::new(Adapter::new(server, &args.topic)?);
        let wshub = adapter.kind == TargetKind::Wshub;
        let via = match (args.publish_via, wshub) {
            (Some(PublishVia::Http), false) => bail!(
                "--publish-via http is for wshub only: {} servers are published to over WebSocket",
                adapter.name()
            ),
            (Some(PublishVia::Ws), _) | (_, false) => PublishVia::Ws,
            (Some(PublishVia::Http), true) => PublishVia::Http,
            // Anonymous connections may not publish on a default hub; its HTTP API takes
            // loopback clients without a key.
            (None, true) if server.token.is_some() => PublishVia::Ws,
            (None, true) => PublishVia::Http,
        };
        let publishers = args.publishers as usize;
        let via = match via {
            PublishVia::Ws => Via::Ws,
            PublishVia::Http => {
                let base = endpoint::http_base(args.api_url.as_deref().unwrap_or(&server.url))?;
                let lanes = args.http_connections;
                Via::Http {
                    lane: HttpLane {
                        http: HttpLane::client(publishers * lanes as usize).context("cannot set up the HTTP client")?,
                        url: base.join("api/publish").context("cannot build the publish URL")?,
                        shown: endpoint::redact(&base).trim_end_matches('/').to_owned(),
                        bearer: args.api_key.clone().or_else(|| server.token.clone()),
                        prefix: HttpLane::prefix_for(&args.topic),
                    },
                    lanes,
                }
            }
        };
        let connections = subscribers + if matches!(via, Via::Ws) { publishers } else { 0 };
        super::source::raise_file_limit(connections)?;
        let sources = server.source_ips.resolve(&adapter.host, connections);
        sources.check_ports(connections)?;
        Ok(Spec {
            topic: wshub.then(|| args.topic.clone()),
            adapter,
            sources: Arc::new(sources),
            subscribers,
            publishers,
            via,
            payload_bytes: args.payload_bytes as usize,
        })
    }

    /// `ws` or `http`.
    pub fn via_name(&self) -> &'static str {
        match self.via {
            Via::Ws => "ws",
            Via::Http { .. } => "http",
        }
    }
}

/// Running subscribers and publishers.
#[derive(Debug)]
pub struct Traffic {
    clock: Clock,
    window: Arc<Window>,
    collector: Arc<Collector>,
    closes: Arc<Closes>,
    publishing: Arc<Publishing>,
    plans: watch::Sender<Option<Plan>>,
    stop: CancellationToken,
    tasks: JoinSet<()>,
    receivers: u64,
    streams: u32,
    step: u64,
    /// Subscribers opened per second.
    pub connect_per_s: Option<f64>,
    /// Connections open (subscribers and WebSocket publishers).
    pub connections: u64,
}

/// The figures of one step.
#[derive(Debug)]
pub struct Measured {
    pub rate: f64,
    pub duration: Duration,
    /// Messages sent inside the window.
    pub sent: u64,
    pub totals: Totals,
    pub expected: u64,
    /// Microseconds.
    pub latencies: Histogram<u64>,
    /// Publishes sent inside the window that the hub acknowledged (wshub).
    pub acked: u64,
    /// Publishes sent inside the window that the hub refused (wshub).
    pub refused: u64,
    pub usage: Usage,
}

impl Measured {
    pub fn loss(&self) -> u64 {
        self.expected.saturating_sub(self.totals.unique())
    }

    pub fn delivered_per_s(&self) -> f64 {
        self.totals.unique() as f64 / self.duration.as_secs_f64().max(1e-9)
    }

    /// The rate publishers actually reached.
    pub fn sent_per_s(&self) -> f64 {
        self.sent as f64 / self.duration.as_secs_f64().max(1e-9)
    }
}

impl Traffic {
    /// Opens the subscribers, then the publishers, and starts them all (publishers idle until
    /// the first step).
    pub async fn start(spec: &Spec, progress: &mut Progress) -> Result<Traffic> {
        let clock = Clock::start();
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let cpus = super::procfs::allowed_cpus();
        let receiving = Arc::new(Receiving {
            clock,
            adapter: Arc::clone(&spec.adapter),
            window: Arc::new(Window::default()),
            collector: Arc::new(Collector::new(cpus * 16)),
            closes: Arc::new(Closes::default()),
        });
        let subscribers = open_many(
            &spec.adapter,
            &spec.sources,
            spec.subscribers,
            spec.topic.as_deref(),
            "subscribers",
            progress,
        )
        .await?;
        let connect_per_s = subscribers.rate();
        for (key, client) in subscribers.clients.into_iter().enumerate() {
            tasks.spawn(receiver::receive(client, key, Arc::clone(&receiving), stop.clone()));
        }

        let streams = match &spec.via {
            Via::Ws => spec.publishers as u32,
            Via::Http { lanes, .. } => spec.publishers as u32 * lanes,
        };
        let publishing = Arc::new(Publishing::new(streams as usize));
        let shared = Arc::new(Shared {
            clock,
            adapter: Arc::clone(&spec.adapter),
            publishing: Arc::clone(&publishing),
            payload_bytes: spec.payload_bytes,
            stop: stop.clone(),
        });
        let (plans, _) = watch::channel(None);
        let mut connections = spec.subscribers as u64;
        match &spec.via {
            Via::Ws => {
                let opened = open_many(
                    &spec.adapter,
                    &spec.sources,
                    spec.publishers,
                    None,
                    "publishers",
                    progress,
                )
                .await
                .context("opening publishers")?;
                connections += opened.clients.len() as u64;
                for (stream, client) in opened.clients.into_iter().enumerate() {
                    tasks.spawn(publisher::publish_ws(
                        client,
                        stream as u32,
                        Arc::clone(&shared),
                        plans.subscribe(),
                    ));
                }
            }
            Via::Http { lane, .. } => {
                for stream in 0..streams {
                    tasks.spawn(publisher::publish_http(
                        lane.clone(),
                        stream,
                        Arc::clone(&shared),
                        plans.subscribe(),
                    ));
                }
            }
        }
        Ok(Traffic {
            clock,
            window: Arc::clone(&receiving.window),
            collector: Arc::clone(&receiving.collector),
            closes: Arc::clone(&receiving.closes),
            publishing,
            plans,
            stop,
            tasks,
            receivers: spec.subscribers as u64,
            streams,
            step: 0,
            connect_per_s,
            connections,
        })
    }

    /// Publishes at `rate` for `warmup`, then measures for `duration`.
    pub async fn measure(
        &mut self,
        rate: f64,
        warmup: Duration,
        duration: Duration,
        monitor: &Monitor,
        progress: &mut Progress,
    ) -> Result<Measured> {
        self.step += 1;
        let start = Instant::now();
        let (window_start, window_end) = (start + warmup, start + warmup + duration);
        let (from, until) = (self.clock.micros_at(window_start), self.clock.micros_at(window_end));
        let publishing = &self.publishing;
        publishing.reset_window();
        self.window.open(from, until);
        self.plans.send_replace(Some(Plan {
            step: self.step,
            start,
            from,
            until,
            ends: window_end,
            rate: rate / f64::from(self.streams.max(1)),
            streams: self.streams,
        }));

        progress.start("measuring", (warmup + duration).as_millis() as u64);
        self.wait_until(window_start, start, warmup + duration, progress)
            .await?;
        let before = monitor.sample()?;
        self.wait_until(window_end, start, warmup + duration, progress).await?;
        let after = monitor.sample()?;
        self.publishing
            .wait_all_finished(self.step, (Instant::now() + FINISH_WAIT).into())
            .await;
        let sent = self.publishing.sent_in_window.load(Ordering::Relaxed);
        let expected = sent * self.receivers;
        self.drain(expected, progress).await;
        self.window.close();
        let (totals, latencies) = self.collector.take();
        progress.done();
        if let Some(reason) = self.publishing.fatal() {
            bail!(reason);
        }
        Ok(Measured {
            rate,
            duration,
            sent,
            totals,
            expected,
            latencies,
            acked: self.publishing.acked_in_window.load(Ordering::Relaxed),
            refused: self.publishing.refused_in_window.load(Ordering::Relaxed),
            usage: monitor.usage(&before, &after),
        })
    }

    /// Waits for `deadline`, updating progress; fails as soon as a publisher had to stop.
    async fn wait_until(
        &self,
        deadline: Instant,
        start: Instant,
        total: Duration,
        progress: &mut Progress,
    ) -> Result<()> {
        loop {
            if let Some(reason) = self.publishing.fatal() {
                bail!(reason);
            }
            let now = Instant::now();
            let elapsed = now.saturating_duration_since(start);
            let sent = self.publishing.sent.load(Ordering::Relaxed);
            let delivered = self.collector.totals().unique();
            progress.update(
                elapsed.as_millis() as u64,
                &format!(
                    "{:.1}/{:.1} s · sent {} · delivered {}",
                    elapsed.as_secs_f64(),
                    total.as_secs_f64(),
                    count(sent),
                    count(delivered)
                ),
            );
            if now >= deadline {
                return Ok(());
            }
            tokio::time::sleep(TICK.min(deadline - now)).await;
        }
    }

    /// Waits until `expected` messages are in, nothing more arrives, or [`DRAIN_MAX`].
    async fn drain(&self, expected: u64, progress: &mut Progress) {
        let started = Instant::now();
        let (mut last, mut last_change) = (u64::MAX, started);
        loop {
            let unique = self.collector.totals().unique();
            if unique >= expected {
                return;
            }
            let now = Instant::now();
            if unique != last {
                (last, last_change) = (unique, now);
            }
            if now - last_change >= DRAIN_QUIET || now - started >= DRAIN_MAX {
                return;
            }
            progress.say(&format!("draining: {} of {} delivered", count(unique), count(expected)));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The first publish the hub refused, in its words.
    pub fn first_refusal(&self) -> Option<String> {
        self.publishing.first_refusal()
    }

    /// Connections closed by the server so far, and their close codes.
    pub fn closes(&self) -> (u64, Vec<String>) {
        (self.closes.count(), self.closes.summary())
    }

    /// Closes every connection (politely, briefly) and ends every task.
    pub async fn stop(mut self) {
        self.stop.cancel();
        let deadline = tokio::time::Instant::now() + CLOSE_WAIT + Duration::from_secs(1);
        while let Ok(Some(_)) = tokio::time::timeout_at(deadline, self.tasks.join_next()).await {}
        self.tasks.abort_all();
    }
}
