//! Command-line arguments.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// wshub: a real-time WebSocket hub.
#[derive(Debug, Parser)]
#[command(name = "wshub", version, about, long_about = None, after_help = "\
Examples:
  wshub serve                                  # embedded default on 127.0.0.1:8000
  wshub serve --config wshub.yaml --port 9000
  WSHUB_AUTH__JWT__HS256_SECRET=dev wshub token --role admin --sub alice --ttl 1h
  wshub config default > wshub.yaml && wshub config check wshub.yaml")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub.
    Serve(ServeArgs),
    /// Mint a development JWT signed with auth.jwt.hs256_secret.
    Token(TokenArgs),
    /// Check or print configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
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

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))?;
    Ok((key.trim().to_owned(), value.to_owned()))
}
