//! `wshub bench connect`: handshakes per second. Each connection is opened (TCP, WebSocket
//! upgrade with the token, `connection.established`, the optional subscribe — or engine.io open
//! and namespace connect), timed, and closed; at most `--concurrency` are in flight.

use super::adapter::Adapter;
use super::load::for_each_bounded;
use super::procfs::Monitor;
use super::progress::Progress;
use super::receiver::CLOSE_WAIT;
use super::report::{GeneratorFigures, Latency, Report, ServerFigures, count, round};
use super::{source, stats};
use crate::args::{HandshakeArgs, TargetKind};
use anyhow::{Result, bail};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn run(args: HandshakeArgs, progress: &mut Progress) -> Result<Report> {
    if args.subscribe.is_some() && args.server.target != TargetKind::Wshub {
        bail!("--subscribe is for wshub only");
    }
    let adapter = Arc::new(Adapter::new(
        &args.server,
        args.subscribe.as_deref().unwrap_or("bench"),
    )?);
    let connections = args.connections as usize;
    source::raise_file_limit(args.concurrency as usize)?;
    // Closed connections keep their local port for a while (TIME_WAIT): count them all.
    let sources = args.server.source_ips.resolve(&adapter.host, connections);
    sources.check_ports(connections)?;
    let sources = Arc::new(sources);
    let monitor = Monitor::new(args.server.server_pid)?;

    let mut latencies = stats::histogram();
    let (mut failed, mut failure) = (0u64, None);
    let topic: Option<Arc<str>> = args.subscribe.as_deref().map(Arc::from);
    progress.start("connecting", connections as u64);
    let before = monitor.sample()?;
    let started = Instant::now();
    let mut finished = 0u64;
    for_each_bounded(
        connections,
        args.concurrency as usize,
        |_| {
            let (adapter, bind, topic) = (Arc::clone(&adapter), sources.next(), topic.clone());
            async move {
                let began = Instant::now();
                let mut client = adapter.open(bind, topic.as_deref()).await?;
                let took = began.elapsed();
                let _ = tokio::time::timeout(CLOSE_WAIT, client.close(1000)).await;
                Ok(took)
            }
        },
        |_, opened: Result<Duration>| {
            finished += 1;
            match opened {
                Ok(took) => latencies.saturating_record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1)),
                Err(error) => {
                    failed += 1;
                    failure.get_or_insert_with(|| format!("{error:#}"));
                }
            }
            progress.update(
                finished,
                &format!(
                    "{}/{} handshakes · {} failed",
                    count(finished),
                    count(connections as u64),
                    count(failed)
                ),
            );
            ControlFlow::Continue(())
        },
    )
    .await;
    let elapsed = started.elapsed();
    let after = monitor.sample()?;
    progress.done();
    let usage = monitor.usage(&before, &after);
    let succeeded = connections as u64 - failed;
    let server = ServerFigures::of(&usage, None, 0);
    Ok(Report {
        latency_ms: Latency::of(&latencies),
        connect_per_s: Some(round(succeeded as f64 / elapsed.as_secs_f64().max(1e-9), 1)),
        server,
        connections: Some(connections as u64),
        failed: Some(failed),
        failure,
        source_addresses: sources.len(),
        notes: vec![format!(
            "latency is each connection's time to be ready ({}), at most {} in flight",
            if args.subscribe.is_some() {
                "handshake, established, subscribed"
            } else {
                "handshake and protocol open"
            },
            args.concurrency
        )],
        ..Report::new(
            "connect",
            adapter.name(),
            adapter.shown_url.clone(),
            elapsed.as_secs_f64(),
            GeneratorFigures::of(&usage),
        )
    })
}
