//! `wshub bench idle`: connections opened, each subscribed to one topic that nobody publishes
//! to, and held; the server's memory per connection and its CPU for keeping them (heartbeats:
//! Pings answered with Pongs, engine.io `2` with `3`).

use super::adapter::Adapter;
use super::clock::Clock;
use super::load::open_many;
use super::procfs::Monitor;
use super::progress::Progress;
use super::receiver::{self, CLOSE_WAIT, Receiving};
use super::report::{GeneratorFigures, Report, ServerFigures, count, round};
use super::source;
use super::stats::{Closes, Collector, Window};
use crate::args::{IdleArgs, TargetKind};
use anyhow::Result;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The hub's default `websocket.ping_period`: shorter holds may see no heartbeat at all.
const DEFAULT_PING_PERIOD: Duration = Duration::from_secs(54);

pub async fn run(args: IdleArgs, progress: &mut Progress) -> Result<Report> {
    let adapter = Arc::new(Adapter::new(&args.server, &args.topic)?);
    let connections = args.connections as usize;
    source::raise_file_limit(connections)?;
    let sources = args.server.source_ips.resolve(&adapter.host, connections);
    sources.check_ports(connections)?;
    let sources = Arc::new(sources);
    let monitor = Monitor::new(args.server.server_pid)?;
    let baseline = monitor.sample()?;

    let wshub = adapter.kind == TargetKind::Wshub;
    let subscribe = wshub.then_some(args.topic.as_str());
    let opened = open_many(&adapter, &sources, connections, subscribe, "connections", progress).await?;
    let connect_per_s = opened.rate();
    let receiving = Arc::new(Receiving {
        clock: Clock::start(),
        adapter: Arc::clone(&adapter),
        // Closed: nothing counts, nothing is expected.
        window: Arc::new(Window::default()),
        collector: Arc::new(Collector::new(1)),
        closes: Arc::new(Closes::default()),
    });
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    for (key, client) in opened.clients.into_iter().enumerate() {
        tasks.spawn(receiver::receive(client, key, Arc::clone(&receiving), stop.clone()));
    }

    let held = hold(&args, &monitor, &receiving.closes, progress).await;
    stop.cancel();
    let deadline = tokio::time::Instant::now() + CLOSE_WAIT + Duration::from_secs(1);
    while let Ok(Some(_)) = tokio::time::timeout_at(deadline, tasks.join_next()).await {}
    tasks.abort_all();
    let usage = held?;

    let mut server = ServerFigures::of(
        &usage,
        baseline.server.map(|sample| sample.rss_bytes),
        connections as u64,
    );
    if let Some(server) = &mut server {
        let per = server.cpu_s * 1e6 / usage.wall.as_secs_f64().max(1e-9) / connections as f64;
        server.cpu_us_per_s_per_connection = Some(round(per, 3));
    }
    let mut notes = Vec::new();
    if wshub && args.duration < DEFAULT_PING_PERIOD {
        notes.push(format!(
            "a hub on the default websocket.ping_period ({} s) may send no heartbeat in a {} s hold: hold \
             longer, or start it with --set websocket.ping_period=5s --set websocket.pong_wait=10s",
            DEFAULT_PING_PERIOD.as_secs(),
            round(args.duration.as_secs_f64(), 1)
        ));
    }
    Ok(Report {
        connect_per_s: connect_per_s.map(|rate| round(rate, 1)),
        server,
        closed_connections: receiving.closes.count(),
        connections: Some(connections as u64),
        closes: receiving.closes.summary(),
        source_addresses: sources.len(),
        notes,
        ..Report::new(
            "idle",
            adapter.name(),
            adapter.shown_url.clone(),
            usage.wall.as_secs_f64(),
            GeneratorFigures::of(&usage),
        )
    })
}

/// Holds the connections for `--duration`; what the processes used meanwhile.
async fn hold(
    args: &IdleArgs,
    monitor: &Monitor,
    closes: &Closes,
    progress: &mut Progress,
) -> Result<super::procfs::Usage> {
    let started = Instant::now();
    let before = monitor.sample()?;
    progress.start("holding", args.duration.as_millis() as u64);
    loop {
        let elapsed = started.elapsed();
        progress.update(
            elapsed.as_millis() as u64,
            &format!(
                "{:.1}/{:.1} s · {} closed by the server",
                elapsed.as_secs_f64(),
                args.duration.as_secs_f64(),
                count(closes.count())
            ),
        );
        let Some(left) = args.duration.checked_sub(elapsed).filter(|left| !left.is_zero()) else {
            break;
        };
        tokio::time::sleep(left.min(Duration::from_millis(250))).await;
    }
    let after = monitor.sample()?;
    progress.done();
    Ok(monitor.usage(&before, &after))
}
