//! The command line: every subcommand's flags, help text and examples, in one place
//! (`bench`'s many scenarios in their own file).

mod bench;

pub use bench::{
    BenchArgs, FanoutArgs, HandshakeArgs, IdleArgs, PublishVia, SaturateArgs, Scenario, ServerArgs, TargetKind,
    TrafficArgs,
};

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// Where the client commands connect when neither `--url` nor `WSHUB_URL` says otherwise.
pub const DEFAULT_WS_URL: &str = "ws://127.0.0.1:8000/ws";
/// Where `publish` sends HTTP requests by default.
pub const DEFAULT_HTTP_URL: &str = "http://127.0.0.1:8000";

/// wshub: a real-time WebSocket hub.
#[derive(Debug, Parser)]
#[command(name = "wshub", version, about, long_about = None, after_help = "\
Examples:
  wshub serve                                  # embedded default on 127.0.0.1:8000
  wshub serve --config wshub.yaml --port 9000
  wshub connect --subscribe news,metrics       # watch topics until Ctrl-C
  wshub connect --all --json | jq .payload
  wshub publish --topic news --event headline --data '{\"title\":\"hi\"}'
  wshub send --type ping
  WSHUB_AUTH__JWT__HS256_SECRET=dev wshub token --role admin --sub alice --ttl 1h
  wshub config default > wshub.yaml && wshub config check wshub.yaml
  wshub bench fanout --url ws://127.0.0.1:8000/ws --subscribers 1000 --rate 20")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub.
    Serve(ServeArgs),
    /// Connect to a hub and print events as they arrive, until Ctrl-C.
    Connect(ConnectArgs),
    /// Publish events through the HTTP API (or over WebSocket with --ws).
    Publish(PublishArgs),
    /// Send one request over WebSocket and print its reply.
    Send(SendArgs),
    /// Mint a development JWT signed with auth.jwt.hs256_secret.
    Token(TokenArgs),
    /// Check or print configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Generate load against a hub (or another WebSocket server) and measure it.
    Bench(BenchArgs),
}

/// How to reach the hub over WebSocket and who to be there.
#[derive(Debug, Clone, clap::Args)]
pub struct WsTarget {
    /// The hub's WebSocket URL; http://HOST:PORT and a bare HOST:PORT work too (path /ws).
    #[arg(long, env = "WSHUB_URL", default_value = DEFAULT_WS_URL)]
    pub url: String,
    /// JWT to connect with (sent as `Authorization: Bearer`); without it the connection is anonymous.
    #[arg(long, env = "WSHUB_TOKEN", hide_env_values = true, value_name = "JWT")]
    pub token: Option<String>,
    /// Your label for this connection, shown in presence and logs.
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,
}

/// When to colour the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    /// On a terminal, unless NO_COLOR is set (CLICOLOR_FORCE forces it).
    Auto,
    Always,
    Never,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Events go to stdout; connection news (subscribed, denied, reconnecting) goes to stderr.
Exit status: 0 when --count was reached, or --timeout ran out or Ctrl-C was pressed without a
--count; 1 when --count was not reached, or --timeout ran out while reconnecting; 2 when the hub
cannot be used (unreachable, bad token, no topic allowed, connection closed for good).

Examples:
  wshub connect --subscribe news                         # human output until Ctrl-C
  wshub connect --subscribe metrics,status --compact
  wshub connect --subscribe news --json | jq -c .payload
  wshub connect --all --token \"$(wshub token --role admin --sub ops)\"
  wshub connect --subscribe news --verbose               # handshake, control messages, heartbeats
  wshub connect --subscribe news --output news.log       # screen and a log file
  wshub connect --all --filter 'alert*' --topic system,alerts
  wshub connect --subscribe jobs --count 1 --timeout 30s # wait for one event, for scripts")]
pub struct ConnectArgs {
    #[command(flatten)]
    pub target: WsTarget,
    /// Topics to subscribe to, comma-separated (repeatable).
    #[arg(
        long,
        short = 's',
        value_delimiter = ',',
        value_name = "TOPICS",
        conflicts_with = "all"
    )]
    pub subscribe: Vec<String>,
    /// Subscribe to every topic your role may subscribe to (the hub's topic rules that name a
    /// topic), and list the ones it may not.
    #[arg(long)]
    pub all: bool,
    /// Show only events of these types (globs such as `user.*`, comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "TYPES")]
    pub filter: Vec<String>,
    /// Show only events of these topics (globs, comma-separated); it does not subscribe.
    #[arg(long, value_delimiter = ',', value_name = "TOPICS")]
    pub topic: Vec<String>,
    /// One JSON object per line, exactly as the hub sent it (for jq).
    #[arg(long, conflicts_with = "compact")]
    pub json: bool,
    /// One short line per event.
    #[arg(long)]
    pub compact: bool,
    /// Also show the handshake, every control message and the hub's heartbeats.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// Also append every message the hub sends, as JSON lines, to FILE.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Exit with 0 after N events have been shown.
    #[arg(long, short = 'n', value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Exit after this long, e.g. 30, 2.5, 500ms, 1m (non-zero if --count was not reached).
    #[arg(long, value_name = "DURATION", value_parser = parse_seconds)]
    pub timeout: Option<Duration>,
    /// Exit instead of reconnecting when the connection drops.
    #[arg(long)]
    pub no_reconnect: bool,
    /// When to use colours.
    #[arg(long, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    pub color: ColorWhen,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Without --data or --data-file, each line of standard input is one JSON payload: every line is
published, a bad line is reported with its number, and the exit status is 1 if any line failed.
Prints each event's offset (or the hub's whole answer with --json).

Examples:
  wshub publish --topic news --event headline --data '{\"title\":\"hello\"}'
  wshub publish --topic news --data-file headline.json
  tail -f sensor.ndjson | wshub publish --topic sensors --event reading
  wshub publish --url http://hub:8000 --api-key \"$KEY\" --topic news --data '{}'
  wshub publish --ws --token \"$TOKEN\" --topic room/42 --event chat --data '{\"text\":\"hi\"}'")]
pub struct PublishArgs {
    /// The hub's URL: http://HOST:PORT for the HTTP API (default), or its WebSocket URL with --ws.
    #[arg(long, env = "WSHUB_URL", value_name = "URL")]
    pub url: Option<String>,
    /// The topic to publish to.
    #[arg(long)]
    pub topic: String,
    /// The event name.
    #[arg(long, default_value = "message")]
    pub event: String,
    /// The payload, a JSON object.
    #[arg(long, value_name = "JSON", conflicts_with = "data_file")]
    pub data: Option<String>,
    /// A file holding the payload, a JSON object.
    #[arg(long, value_name = "FILE")]
    pub data_file: Option<PathBuf>,
    /// API key for the HTTP API (`auth.api_keys`); not needed from this machine while the hub has none.
    #[arg(long, env = "WSHUB_API_KEY", hide_env_values = true, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Publish over WebSocket (needs a token whose role may publish) instead of the HTTP API.
    #[arg(long)]
    pub ws: bool,
    /// JWT: with --ws the connection's token; over HTTP an admin token instead of an API key.
    #[arg(long, env = "WSHUB_TOKEN", hide_env_values = true, value_name = "JWT")]
    pub token: Option<String>,
    /// With --ws, your label for the connection.
    #[arg(long, value_name = "ID", requires = "ws")]
    pub client_id: Option<String>,
    /// Print the hub's whole answer as JSON instead of the offset alone.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Exit status: 0 for a success reply, 1 for an `error` reply, 2 when the hub cannot be used.

Examples:
  wshub send --type ping
  wshub send --type history --topic news --payload '{\"limit\":5}'
  wshub send --type presence --topic room/42 --token \"$TOKEN\"
  wshub send --type token.create --payload '{\"user\":\"alice\"}' --json | jq .payload")]
pub struct SendArgs {
    #[command(flatten)]
    pub target: WsTarget,
    /// The request type.
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: String,
    /// The request's payload, a JSON object.
    #[arg(long, value_name = "JSON")]
    pub payload: Option<String>,
    /// The request's topic, for types that take one.
    #[arg(long)]
    pub topic: Option<String>,
    /// Print the reply exactly as the hub sent it, on one line.
    #[arg(long)]
    pub json: bool,
    /// How long to wait for the connection and the reply.
    #[arg(long, value_name = "DURATION", value_parser = parse_seconds, default_value = "10")]
    pub timeout: Duration,
    /// When to use colours.
    #[arg(long, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    pub color: ColorWhen,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Sources, later wins: built-in defaults, --config FILE, WSHUB_* environment, flags.
Examples:
  wshub serve
  wshub serve --config wshub.yaml
  wshub serve --port 0 --set websocket.ping_period=10s --set auth.allow_anonymous=false
  WSHUB_PORT=9000 WSHUB_ALLOWED_ORIGINS=https://app.example.com wshub serve")]
pub struct ServeArgs {
    /// YAML configuration file.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Listen address (server.host).
    #[arg(long)]
    pub host: Option<String>,
    /// Listen port (server.port); 0 picks a free one.
    #[arg(long)]
    pub port: Option<u16>,
    /// Set any key, e.g. --set websocket.max_connections=50000 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub set: Vec<(String, String)>,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  wshub token --role admin --sub alice
  wshub token --role viewer --role bot --sub sensor-7 --ttl 24h
  wshub token --role viewer --sub bob --channels 'private/bob/*'")]
pub struct TokenArgs {
    /// Role claim (repeat for several roles).
    #[arg(long, required = true)]
    pub role: Vec<String>,
    /// Subject (user id).
    #[arg(long)]
    pub sub: String,
    /// Lifetime, e.g. 30m, 1h, 7d.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// Extra topics (globs) the token may subscribe to, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub channels: Vec<String>,
    /// Configuration file holding the secret (environment and defaults apply too).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file; prints the first problem and exits non-zero.
    Check {
        /// The file to check.
        file: PathBuf,
    },
    /// Print the full default configuration, with comments.
    Default,
}

/// `30` and `2.5` are seconds; `500ms`, `1m 30s` and the like are humantime durations.
fn parse_seconds(s: &str) -> Result<Duration, String> {
    if let Ok(seconds) = s.trim().parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).map_err(|_| format!("not a duration: {s:?}"));
    }
    humantime::parse_duration(s).map_err(|e| format!("not a duration ({e}): {s:?}"))
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))?;
    Ok((key.trim().to_owned(), value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_seconds_or_humantime() {
        assert_eq!(parse_seconds("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_seconds("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_seconds("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_seconds("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("soon").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
