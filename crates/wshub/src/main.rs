//! The `wshub` binary: `serve`, the client commands (`connect`, `publish`, `send`), `token`,
//! `config` and the load generator `bench`. Errors end here as one readable line.

mod args;
mod bench;
mod cli;

use anyhow::{Context, Result};
use args::{Cli, Command, ConfigCommand, ServeArgs, TokenArgs};
use clap::Parser;
use std::future::Future;
use std::process::ExitCode;
use wshub_server::auth::{Authenticator, Claims};
use wshub_server::config::{self, Loaded, Overrides};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Connect(args) => return client_command(cli::connect::run(args)),
        Command::Publish(args) => return client_command(cli::publish::run(args)),
        Command::Send(args) => return client_command(cli::send::run(args)),
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
        Command::Bench(args) => {
            init_client_logging();
            bench::run(args)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

/// Runs a client command on a single-threaded runtime (one connection needs no more); its own
/// exit code on success, 2 with the error on one line otherwise.
fn client_command(command: impl Future<Output = Result<ExitCode>>) -> ExitCode {
    init_client_logging();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&anyhow::Error::new(error).context("cannot start the async runtime")),
    };
    match runtime.block_on(command) {
        Ok(code) => code,
        Err(error) => fail(&error),
    }
}

fn fail(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", one_line(error));
    ExitCode::from(2)
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

/// Client commands print what users need themselves; library logs appear only on request
/// (`WSHUB_LOG=debug`).
fn init_client_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WSHUB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
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
        let dashboard = loaded.config.dashboard.path.clone();
        let server = wshub_server::Server::bind(loaded.config).await?;
        let shutdown = shutdown_signal();
        let addr = server.local_addr();
        // One stable line on stdout, so scripts and tests can find the port (`--port 0`):
        // the first `http://` on it is the address.
        println!(
            "wshub {} listening on http://{addr} (WebSocket: ws://{addr}{path}, dashboard: http://{addr}{dashboard})",
            env!("CARGO_PKG_VERSION")
        );
        server.run(shutdown).await?;
        Ok(())
    })
}

/// Starts listening for SIGTERM and Ctrl-C at once; the returned future resolves on either.
///
/// Called before the listening line is printed: a signal sent right after it (by a supervisor or
/// a test that read the line) must start a drain, not meet the default action and kill the process.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{Signal, SignalKind, signal};
        let listen = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(stream) => Some(stream),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for {name}");
                None
            }
        };
        async fn received(signal: &mut Option<Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        let mut term = listen(SignalKind::terminate(), "SIGTERM");
        let mut interrupt = listen(SignalKind::interrupt(), "SIGINT (Ctrl-C)");
        async move {
            tokio::select! {
                () = received(&mut term) => {}
                () = received(&mut interrupt) => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
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
