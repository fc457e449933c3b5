//! `wshub connect`: prints a hub's events as they arrive, until Ctrl-C, `--count` or `--timeout`.
//!
//! This module holds what lasts across connections ([`Watch`]) and the reconnect loop; `session`
//! runs one connection, `reconnect` decides when and how to come back, `positions` remembers
//! where each topic's stream stands, `filter` decides what is shown.

mod filter;
mod positions;
mod reconnect;
mod session;

use super::dial::{self, Target};
use super::explain;
use super::output::{Format, LogFile, Screen};
use crate::args::ConnectArgs;
use anyhow::{Result, anyhow, bail};
use filter::Filter;
use positions::Positions;
use reconnect::{Backoff, ReconnectionToken};
use serde_json::Value;
use session::{End, Start};
use std::process::ExitCode;
use std::time::Duration;
use tokio::time::Instant;
use wshub_client::{Client, Close, Frame};

pub async fn run(args: ConnectArgs) -> Result<ExitCode> {
    let settings = Settings::from_args(&args)?;
    let format = match (args.json, args.compact) {
        (true, _) => Format::Json,
        (false, true) => Format::Compact,
        (false, false) => Format::Human,
    };
    let log = args.output.as_deref().map(LogFile::open).transpose()?;
    let mut watch = Watch {
        screen: Screen::new(format, args.color),
        log,
        positions: Positions::default(),
        topics: Vec::new(),
        token: None,
        tokens_unsupported: false,
        backoff: Backoff::default(),
        shown: 0,
        connected: false,
        settings,
    };
    let deadline = watch.settings.timeout.map(|timeout| Instant::now() + timeout);
    let finished = tokio::select! {
        finished = watch.run() => finished?,
        () = interrupted() => Finished::Interrupted,
        () = sleep_until(deadline) => Finished::TimedOut,
    };
    Ok(watch.exit_code(finished))
}

/// What the user asked for, checked.
#[derive(Debug)]
struct Settings {
    target: Target,
    /// Topics to subscribe to; `None` for `--all`.
    subscribe: Option<Vec<String>>,
    filter: Filter,
    verbose: bool,
    count: Option<u64>,
    timeout: Option<Duration>,
    no_reconnect: bool,
}

impl Settings {
    fn from_args(args: &ConnectArgs) -> Result<Settings> {
        let topics: Vec<String> = args
            .subscribe
            .iter()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        Ok(Settings {
            target: Target::from_args(&args.target)?,
            subscribe: (!args.all).then_some(topics),
            filter: Filter::new(&args.filter, &args.topic)?,
            verbose: args.verbose,
            count: args.count,
            timeout: args.timeout,
            no_reconnect: args.no_reconnect,
        })
    }
}

/// How the command came to an end (errors aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finished {
    /// `--count` events were shown.
    Goal,
    /// Stdout was closed (`| head -n 3`).
    OutputClosed,
    Interrupted,
    TimedOut,
}

/// Everything that outlives one connection.
struct Watch {
    settings: Settings,
    screen: Screen,
    log: Option<LogFile>,
    /// Where each topic's stream stands, for dropping duplicates and for `recover`.
    positions: Positions,
    /// The topics to hold (subscribed, or asked for and not refused), in the order asked for;
    /// each reconnect subscribes them again.
    topics: Vec<String>,
    /// The freshest reconnection token, if the hub gives them.
    token: Option<ReconnectionToken>,
    /// The hub answered `get_reconnection_token` with `unavailable`.
    tokens_unsupported: bool,
    backoff: Backoff,
    /// Events shown so far (what `--count` counts).
    shown: u64,
    /// Whether a connection is up (for the `--timeout` verdict).
    connected: bool,
}

impl Watch {
    /// Connects, and reconnects after each drop, until the goal is met or something fatal happens.
    async fn run(&mut self) -> Result<Finished> {
        let verbose = self.settings.verbose;
        let mut client = dial::dial(&self.settings.target, None, verbose.then_some(&mut self.screen))
            .await
            .map_err(|e| anyhow!(e))?;
        let mut start = Start::First;
        loop {
            let end = session::live(self, &mut client, start).await?;
            self.connected = false;
            let close = match end {
                End::Goal => return Ok(Finished::Goal),
                End::OutputClosed => return Ok(Finished::OutputClosed),
                End::Lost(close) => close,
            };
            if self.settings.no_reconnect || !reconnect::worth_retrying(&close) {
                bail!("the hub closed the connection ({})", explain::close(&close));
            }
            (client, start) = self.redial(&close).await;
        }
    }

    /// Tries to connect again, with backoff, until it works; presents the reconnection token
    /// when there is a fresh one.
    async fn redial(&mut self, close: &Close) -> (Client, Start) {
        let mut news = format!("connection lost ({})", explain::close(close));
        loop {
            let delay = self.backoff.next_delay(&mut rand::rng());
            self.screen
                .warn(format!("{news}; reconnecting in {:.1}s", delay.as_secs_f64()));
            tokio::time::sleep(delay).await;
            let token = self.token.take().filter(ReconnectionToken::usable);
            let verbose = self.settings.verbose.then_some(&mut self.screen);
            match dial::dial(
                &self.settings.target,
                token.as_ref().map(ReconnectionToken::value),
                verbose,
            )
            .await
            {
                Ok(client) => {
                    let used_token = token.is_some();
                    return (client, Start::Reconnected { used_token });
                }
                Err(why) => {
                    // The hub never saw the token: it is still good for the next attempt.
                    self.token = token;
                    news = format!("reconnect failed: {why}");
                }
            }
        }
    }

    fn exit_code(&mut self, finished: Finished) -> ExitCode {
        let met = match (finished, self.settings.count) {
            (Finished::Goal | Finished::OutputClosed, _) => true,
            (Finished::Interrupted, None) => true,
            (Finished::Interrupted, Some(count)) => {
                self.screen
                    .warn(format!("interrupted after {} of {count} events", self.shown));
                false
            }
            (Finished::TimedOut, Some(count)) => {
                self.screen.warn(format!(
                    "timed out after {}: {} of {count} events",
                    humantime::format_duration(self.settings.timeout.unwrap_or_default()),
                    self.shown
                ));
                false
            }
            (Finished::TimedOut, None) if !self.connected => {
                self.screen.warn("timed out while not connected");
                false
            }
            (Finished::TimedOut, None) => true,
        };
        if met {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(super::GOAL_NOT_MET)
        }
    }
}

/// Showing and logging control messages, for both phases of a connection.
impl Watch {
    /// A frame seen while waiting for `connection.established`: logged, and shown with `--verbose`.
    fn show_control_frame(&mut self, frame: &Frame) {
        match frame {
            Frame::Json { text, value } => {
                self.log(text);
                if self.settings.verbose {
                    self.show_control(text, value);
                }
            }
            Frame::Ping if self.settings.verbose => self.screen.detail("heartbeat: Ping from the hub, Pong sent"),
            _ => {}
        }
    }

    fn show_control(&mut self, text: &str, message: &Value) {
        // A closed stdout is noticed at the next event, which ends the command.
        let _ = self.screen.control(text, message);
    }

    /// Appends a message to `--output`. A log that cannot be written is reported once and
    /// dropped; the screen goes on.
    fn log(&mut self, text: &str) {
        if let Some(log) = &mut self.log
            && let Err(error) = log.append(text)
        {
            self.screen.warn(format!("{error:#}; no longer logging"));
            self.log = None;
        }
    }
}

/// Resolves on Ctrl-C (never, where that cannot be listened for).
async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Resolves at `deadline`, or never without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
