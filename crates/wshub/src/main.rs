//! The `wshub` binary: `serve`, `token` and `config`. Errors end here as one readable line.

mod cli;

use anyhow::{Context, Result};
use clap::Parser;
use cli::{Cli, Command, ConfigCommand, ServeArgs, TokenArgs};
use std::process::ExitCode;
use wshub_server::auth::{Authenticator, Claims};
use wshub_server::config::{self, Loaded, Overrides};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Token(args) => token(args),
        Command::Config {
            command: ConfigCommand::Check { file },
        } => config::check_file(&file)
            .map(|loaded| {
                for warning in loaded.warnings {
                    eprintln!("warning: {warning}");
                }
                println!("{}: ok", file.display());
            })
            .map_err(anyhow::Error::from),
        Command::Config {
            command: ConfigCommand::Default,
        } => {
            print!("{}", config::DEFAULT_YAML);
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", one_line(&error));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes on one line, for people and for scripts.
fn one_line(error: &anyhow::Error) -> String {
    error.chain().map(ToString::to_string).collect::<Vec<_>>().join(": ")
}

fn environment() -> Vec<(String, String)> {
    std::env::vars().collect()
}

fn load_config(file: Option<&std::path::Path>, overrides: &Overrides) -> Result<Loaded> {
    Ok(config::load(file, &environment(), overrides)?)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WSHUB_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn serve(args: ServeArgs) -> Result<()> {
    let overrides = Overrides {
        host: args.host,
        port: args.port,
        set: args.set,
    };
    let loaded = load_config(args.config.as_deref(), &overrides)?;
    init_logging();
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let path = loaded.config.websocket.path.clone();
        let server = wshub_server::Server::bind(loaded.config).await?;
        let addr = server.local_addr();
        // One stable line on stdout, so scripts and tests can find the port (`--port 0`).
        println!(
            "wshub {} listening on http://{addr} (WebSocket: ws://{addr}{path})",
            env!("CARGO_PKG_VERSION")
        );
        server.run(shutdown_signal()).await?;
        Ok(())
    })
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn token(args: TokenArgs) -> Result<()> {
    let loaded = load_config(args.config.as_deref(), &Overrides::default())?;
    let auth = Authenticator::new(&loaded.config.auth.jwt)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("clock before 1970")?
        .as_secs();
    let mut roles = args.role;
    let claims = Claims {
        sub: Some(args.sub),
        role: (roles.len() == 1).then(|| roles.remove(0)),
        roles: (!roles.is_empty()).then_some(roles),
        exp: now + args.ttl.as_secs(),
        channels: (!args.channels.is_empty()).then_some(args.channels),
    };
    println!("{}", auth.mint(&claims)?);
    Ok(())
}
