//! The floor: a WebSocket broadcast server with no protocol of its own. It accepts, completes
//! the handshake, and writes every text or binary message any client sends to every socket,
//! encoded once. No topics, no auth, no JSON, no history, no metrics: what is left is the
//! cost of the sockets themselves, which is the physical limit for any hub on this machine.
//! `bench/compare` runs it beside wshub and the peer servers, in the same run.
//!
//!     wshub-floor [PORT] [--queue FRAMES]     (PORT also from $PORT; default 8090)
//!
//! It listens on 127.0.0.1 only, runs on one thread (the comparison pins each server to one
//! core), and prints `listening on 127.0.0.1:PORT` when ready. On SIGTERM or Ctrl-C it prints
//! how many sockets it closed for a full queue, and exits.

mod connection;
mod frame;
mod handshake;
mod hub;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::hub::Hub;

/// Frames queued per socket by default: the same bound as wshub's `outbound_queue`.
const DEFAULT_QUEUE: usize = 1024;

const USAGE: &str = "usage: wshub-floor [PORT] [--queue FRAMES]";

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (port, queue) = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("error: {message}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("listening on {addr}"),
        Err(e) => eprintln!("warning: no local address: {e}"),
    }
    let hub = Arc::new(Hub::default());
    let (mut term, mut int) = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(term), Ok(int)) => (term, int),
        _ => {
            eprintln!("error: cannot install signal handlers");
            std::process::exit(1);
        }
    };
    let mut next_id = 0u64;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    next_id += 1;
                    // Bounded; on overflow the hub closes the socket and counts it.
                    let (tx, rx) = mpsc::channel(queue);
                    let task = tokio::spawn(connection::run(stream, rx, hub.clone(), next_id));
                    // On this one-thread runtime the task cannot run (and remove itself) before
                    // it is inserted; the check keeps that true on any runtime.
                    hub.insert(next_id, tx, task.abort_handle());
                    if task.is_finished() {
                        hub.remove(next_id);
                    }
                }
                // Out of file descriptors, usually: keep serving the sockets already open.
                Err(e) => {
                    eprintln!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    eprintln!(
        "floor: {} sockets open, {} closed because their queue was full",
        hub.len(),
        hub.dropped_full()
    );
}

fn parse_args() -> Result<(u16, usize), String> {
    let mut port = std::env::var("PORT").ok();
    let mut queue = DEFAULT_QUEUE;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--queue" => {
                let value = args.next().ok_or("--queue needs a number of frames")?;
                queue = value.parse().map_err(|_| format!("bad --queue {value:?}"))?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ if !arg.starts_with('-') => port = Some(arg),
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    let port = port.as_deref().unwrap_or("8090");
    let port = port.parse().map_err(|_| format!("bad port {port:?}"))?;
    if queue == 0 {
        return Err("--queue must be at least 1".into());
    }
    Ok((port, queue))
}
