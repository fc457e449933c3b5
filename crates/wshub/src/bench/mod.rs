//! `wshub bench`: a load generator for wshub and other WebSocket servers, built on the
//! project's Rust client.
//!
//! A run goes: the scenario's flags → an [`adapter`] for the kind of server → connections opened
//! in bulk ([`load`], from the [`source`] addresses) → [`receiver`]s and [`publisher`]s exchanging
//! stamped [`message`]s on one [`clock`] → counts in [`stats`], order in [`sequence`] → CPU and
//! memory from [`procfs`] → a [`report`]. [`traffic`] runs the publish/receive steps that
//! [`fanout`] and [`saturate`] share; [`idle`] and [`connect`] need only connections.
//! Every scenario stops by itself: its durations, counts and waits are all bounded.

mod adapter;
mod clock;
mod connect;
mod fanout;
mod idle;
mod load;
mod message;
mod procfs;
mod progress;
mod publisher;
mod receiver;
mod report;
mod saturate;
mod sequence;
pub mod source;
mod stats;
mod traffic;

use crate::args::{BenchArgs, Scenario};
use anyhow::{Context, Result};
use progress::Progress;
use report::Report;

/// Runs a scenario and prints its report: the table, or one JSON object with `--json`.
pub fn run(args: BenchArgs) -> Result<()> {
    // As many workers as CPUs this process may use (`taskset` included).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(procfs::allowed_cpus())
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let json = match &args.scenario {
        Scenario::Fanout(args) => args.server.json,
        Scenario::Idle(args) => args.server.json,
        Scenario::Connect(args) => args.server.json,
        Scenario::Saturate(args) => args.server.json,
    };
    let report = runtime.block_on(scenario(args))?;
    if json {
        println!(
            "{}",
            serde_json::to_string(&report).context("cannot encode the report")?
        );
    } else {
        print!("{}", report::human(&report));
    }
    // Tasks still closing connections are not waited for.
    runtime.shutdown_background();
    Ok(())
}

async fn scenario(args: BenchArgs) -> Result<Report> {
    let mut progress = Progress::new();
    match args.scenario {
        Scenario::Fanout(args) => fanout::run(args, &mut progress).await,
        Scenario::Idle(args) => idle::run(args, &mut progress).await,
        Scenario::Connect(args) => connect::run(args, &mut progress).await,
        Scenario::Saturate(args) => saturate::run(args, &mut progress).await,
    }
}
