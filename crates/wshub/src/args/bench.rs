//! `wshub bench`: the load generator's scenarios and their flags.

use super::parse_seconds;
use crate::bench::source::SourceIps;
use clap::{Subcommand, ValueEnum};
use std::time::Duration;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Every scenario stops by itself. Figures go to stdout (a table, or one JSON object with --json);
progress goes to stderr. Run the hub and the generator on different cores (taskset) and give
--server-pid to read the hub's CPU and memory.

Examples:
  wshub bench fanout --url ws://127.0.0.1:8000/ws --subscribers 1000 --rate 20 --duration 10s
  wshub bench fanout --url ws://127.0.0.1:8000/ws --publish-via ws --token \"$ADMIN_TOKEN\"
  wshub bench idle --url ws://127.0.0.1:8000/ws --connections 10000 --server-pid \"$PID\"
  wshub bench connect --url ws://127.0.0.1:8000/ws --connections 2000 --subscribe bench
  wshub bench saturate --url ws://127.0.0.1:8000/ws --subscribers 1000 --server-pid \"$PID\" --json
  wshub bench fanout --target socketio --url ws://127.0.0.1:3000 --subscribers 500")]
pub struct BenchArgs {
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// Subscribers on one topic, publishers at a fixed rate: deliveries per second, loss,
    /// duplicates, order and end-to-end latency.
    Fanout(FanoutArgs),
    /// Connections held open, each subscribed to one topic: the server's memory and CPU per
    /// idle connection.
    Idle(IdleArgs),
    /// Handshakes per second (with a token, with a subscribe), each connection closed after.
    Connect(HandshakeArgs),
    /// Raise the publish rate step by step until messages are lost or p99 latency passes the
    /// limit; reports the highest rate held.
    Saturate(SaturateArgs),
}

/// The kind of server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetKind {
    /// wshub's /ws protocol: subscribe to a topic, publish to it.
    Wshub,
    /// A plain broadcast server: every text frame a client sends goes to every client.
    Broadcast,
    /// A Socket.IO server (engine.io v4 over WebSocket) that re-emits `bench` events to everyone.
    Socketio,
}

/// How publishers reach a wshub hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PublishVia {
    /// `publish` requests over WebSocket connections (the token's role must be allowed to publish).
    Ws,
    /// `POST /api/publish` over keep-alive HTTP connections.
    Http,
}

/// Where the server is and how to measure it; shared by every scenario.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// The server's WebSocket URL (wshub: ws://HOST:PORT/ws; socketio: ws://HOST:PORT).
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// The kind of server.
    #[arg(long, value_enum, default_value_t = TargetKind::Wshub)]
    pub target: TargetKind,
    /// JWT for every connection (`Authorization: Bearer`; for socketio, in the `40` connect
    /// packet).
    #[arg(long, env = "WSHUB_TOKEN", hide_env_values = true, value_name = "JWT")]
    pub token: Option<String>,
    /// Local addresses to connect from, round-robin: a range (127.0.0.1-127.0.0.50), a list
    /// (a,b,c), `auto` (on loopback: one 127.0.0.x per 500 connections) or `none`.
    #[arg(long, value_name = "ADDRESSES", default_value = "auto", value_parser = SourceIps::parse)]
    pub source_ips: SourceIps,
    /// The server's process id, to report its CPU and memory (Linux /proc).
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// The traffic of `fanout` and `saturate`: who publishes what, how.
#[derive(Debug, Clone, clap::Args)]
pub struct TrafficArgs {
    /// Publishing connections (with --publish-via http: each has --http-connections lanes).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub publishers: u32,
    /// Size of each message's body in bytes (the JSON object carrying sequence and send time).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub payload_bytes: u32,
    /// wshub only: publish over WebSocket or the HTTP API. Default: ws with --token, http without.
    #[arg(long, value_enum)]
    pub publish_via: Option<PublishVia>,
    /// wshub only: the topic to subscribe and publish to.
    #[arg(long, default_value = "bench")]
    pub topic: String,
    /// wshub only: the HTTP API's base URL for --publish-via http (default: from --url).
    #[arg(long, value_name = "URL")]
    pub api_url: Option<String>,
    /// wshub only: API key for --publish-via http (without it: --token, or none from loopback).
    #[arg(long, env = "WSHUB_API_KEY", hide_env_values = true, value_name = "KEY")]
    pub api_key: Option<String>,
    /// With --publish-via http: concurrent keep-alive connections per publisher.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub http_connections: u32,
    /// Publishing before measuring starts (not counted).
    #[arg(long, value_name = "DURATION", value_parser = bounded_duration, default_value = "1s")]
    pub warmup: Duration,
}

#[derive(Debug, clap::Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Subscribing connections (0: publish only, to measure publishing).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub subscribers: u32,
    /// Messages per second, all publishers together.
    #[arg(long, default_value_t = 1000.0, value_parser = positive_rate)]
    pub rate: f64,
    /// How long to measure.
    #[arg(long, value_name = "DURATION", value_parser = measured_duration, default_value = "10s")]
    pub duration: Duration,
    #[command(flatten)]
    pub traffic: TrafficArgs,
}

#[derive(Debug, clap::Args)]
pub struct IdleArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Connections to open and hold.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub connections: u32,
    /// How long to hold them.
    #[arg(long, value_name = "DURATION", value_parser = measured_duration, default_value = "10s")]
    pub duration: Duration,
    /// wshub only: the topic every connection subscribes to.
    #[arg(long, default_value = "bench")]
    pub topic: String,
}

#[derive(Debug, clap::Args)]
pub struct HandshakeArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Connections to open (each closed once established).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub connections: u32,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
    /// wshub only: subscribe to this topic before closing (counted in the handshake time).
    #[arg(long, value_name = "TOPIC")]
    pub subscribe: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct SaturateArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Subscribing connections.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub subscribers: u32,
    /// The first step's rate (messages/s, all publishers together).
    #[arg(long, default_value_t = 10_000.0, value_parser = positive_rate)]
    pub start_rate: f64,
    /// Each step's rate is the previous one's times this.
    #[arg(long, default_value_t = 1.5, value_parser = growth)]
    pub step: f64,
    /// Stop raising the rate here.
    #[arg(long, default_value_t = 2_000_000.0, value_parser = positive_rate)]
    pub max_rate: f64,
    /// How long each step measures (after --warmup).
    #[arg(long, value_name = "DURATION", value_parser = measured_duration, default_value = "5s")]
    pub step_duration: Duration,
    /// A step fails when its p99 latency is above this.
    #[arg(long, value_name = "DURATION", value_parser = measured_duration, default_value = "50ms")]
    pub p99_limit: Duration,
    #[command(flatten)]
    pub traffic: TrafficArgs,
}

/// Longest duration any flag of `bench` takes: every run stops by itself, and soon.
const LONGEST: Duration = Duration::from_secs(24 * 3600);

/// A duration as `parse_seconds` reads it, at most a day.
fn bounded_duration(s: &str) -> Result<Duration, String> {
    let duration = parse_seconds(s)?;
    if duration > LONGEST {
        return Err(format!("at most 24h, got {s:?}"));
    }
    Ok(duration)
}

/// A [`bounded_duration`] above zero.
fn measured_duration(s: &str) -> Result<Duration, String> {
    match bounded_duration(s)? {
        duration if duration.is_zero() => Err(format!("must be more than 0, got {s:?}")),
        duration => Ok(duration),
    }
}

fn positive_rate(s: &str) -> Result<f64, String> {
    match s.trim().replace('_', "").parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!("expected messages per second above 0, got {s:?}")),
    }
}

fn growth(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(factor) if factor.is_finite() && factor > 1.0 => Ok(factor),
        _ => Err(format!("expected a factor above 1 (e.g. 1.5), got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_steps_are_checked() {
        assert_eq!(positive_rate("1_000"), Ok(1000.0));
        assert_eq!(positive_rate("0.5"), Ok(0.5));
        assert!(positive_rate("0").is_err());
        assert!(positive_rate("fast").is_err());
        assert_eq!(growth("2"), Ok(2.0));
        assert!(growth("1").is_err());
        assert_eq!(bounded_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(bounded_duration("2d").is_err());
        assert_eq!(bounded_duration("0"), Ok(Duration::ZERO));
        assert!(measured_duration("0s").is_err());
    }
}
