//! Drives the client commands (`wshub connect`, `publish`, `send`) as a user would: a spawned
//! process whose stdout and stderr are read line by line as they come, each wait bounded by a
//! deadline, with the whole transcript in every failure message.
#![allow(dead_code)]

use crate::common::WAIT;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// `wshub ARGS` with nothing inherited that changes its output: no `WSHUB_*` variable, no colour
/// preference.
pub fn wshub(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wshub"));
    command.args(args);
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with("WSHUB_") || ["NO_COLOR", "CLICOLOR", "CLICOLOR_FORCE"].contains(&key_text.as_ref()) {
            command.env_remove(key);
        }
    }
    command.kill_on_drop(true);
    command
}

/// A running client command.
pub struct Running {
    child: Child,
    stdout: mpsc::UnboundedReceiver<String>,
    stderr: mpsc::UnboundedReceiver<String>,
    /// Every line read so far, for failure messages.
    out_seen: Vec<String>,
    err_seen: Vec<String>,
}

/// A command that has exited.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    /// Every stdout line, from the start.
    pub stdout: Vec<String>,
    /// Every stderr line, from the start.
    pub stderr: Vec<String>,
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.join("\n")
    }

    /// Panics unless the exit code is `code`.
    pub fn assert_code(&self, code: i32) -> &Finished {
        assert_eq!(self.code(), Some(code), "exit code; transcript:\n{self}");
        self
    }
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "status: {}", self.status)?;
        writeln!(f, "stdout:\n{}", self.stdout.join("\n"))?;
        write!(f, "stderr:\n{}", self.stderr.join("\n"))
    }
}

/// Starts `wshub ARGS` with `stdin` as its standard input (none when `None`).
pub fn spawn(args: &[&str], stdin: Option<&str>) -> Running {
    let mut command = wshub(args);
    command
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("start wshub");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        let input = input.to_owned();
        tokio::spawn(async move {
            // The command may exit before reading everything; that is its business.
            let _ = pipe.write_all(input.as_bytes()).await;
        });
    }
    let stdout = forward_lines(child.stdout.take().expect("piped stdout"));
    let stderr = forward_lines(child.stderr.take().expect("piped stderr"));
    Running {
        child,
        stdout,
        stderr,
        out_seen: Vec::new(),
        err_seen: Vec::new(),
    }
}

/// Runs `wshub ARGS` to its end (within [`WAIT`]).
pub async fn run(args: &[&str], stdin: Option<&str>) -> Finished {
    spawn(args, stdin).finish().await
}

fn forward_lines(stream: impl tokio::io::AsyncRead + Unpin + Send + 'static) -> mpsc::UnboundedReceiver<String> {
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

impl Running {
    /// Waits for a stdout line for which `wanted` holds; returns it.
    pub async fn stdout_line(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.stdout.recv()).await {
                Ok(Some(line)) => {
                    self.out_seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Ok(None) => panic!("stdout ended before {what}; {}", self.transcript()),
                Err(_) => panic!("no {what} on stdout in time; {}", self.transcript()),
            }
        }
    }

    /// Waits for a stderr line containing `needle`; returns it.
    pub async fn stderr_line(&mut self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.stderr.recv()).await {
                Ok(Some(line)) => {
                    self.err_seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Ok(None) => panic!("stderr ended before {needle:?}; {}", self.transcript()),
                Err(_) => panic!("no {needle:?} on stderr in time; {}", self.transcript()),
            }
        }
    }

    /// Sends SIGINT, as Ctrl-C in a terminal does.
    pub fn interrupt(&self) {
        let pid = self.child.id().expect("still running");
        let status = std::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .expect("kill -INT");
        assert!(status.success());
    }

    /// Waits for the command to exit by itself (within [`WAIT`]) and collects the rest of its output.
    pub async fn finish(mut self) -> Finished {
        self.finish_within(WAIT).await
    }

    pub async fn finish_within(&mut self, limit: Duration) -> Finished {
        let status = match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => status.expect("wait for wshub"),
            Err(_) => panic!("wshub did not exit in time; {}", self.transcript()),
        };
        // The readers end at end-of-file, which follows the exit.
        while let Ok(Some(line)) = tokio::time::timeout(WAIT, self.stdout.recv()).await {
            self.out_seen.push(line);
        }
        while let Ok(Some(line)) = tokio::time::timeout(WAIT, self.stderr.recv()).await {
            self.err_seen.push(line);
        }
        Finished {
            status,
            stdout: std::mem::take(&mut self.out_seen),
            stderr: std::mem::take(&mut self.err_seen),
        }
    }

    /// The lines read so far.
    pub fn transcript(&mut self) -> String {
        while let Ok(line) = self.stdout.try_recv() {
            self.out_seen.push(line);
        }
        while let Ok(line) = self.stderr.try_recv() {
            self.err_seen.push(line);
        }
        format!(
            "transcript:\nstdout:\n{}\nstderr:\n{}",
            self.out_seen.join("\n"),
            self.err_seen.join("\n")
        )
    }
}

/// A local port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// Whether `line` starts with a wall-clock time `HH:MM:SS.mmm`.
pub fn starts_with_clock(line: &str) -> bool {
    let bytes = line.as_bytes();
    bytes.len() >= 12
        && bytes[..12].iter().enumerate().all(|(i, b)| match i {
            2 | 5 => *b == b':',
            8 => *b == b'.',
            _ => b.is_ascii_digit(),
        })
}
