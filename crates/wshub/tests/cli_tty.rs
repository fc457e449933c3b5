//! `wshub connect` in a pseudo-terminal, as a person runs it: the human output is coloured, each
//! event reads as one tidy line, and Ctrl-C typed at the terminal ends it cleanly.

mod common;

use common::{Hub, WAIT};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Reads from the terminal until `wanted` holds for everything read so far.
async fn read_until(pty: &mut pty_process::Pty, screen: &mut Vec<u8>, what: &str, wanted: impl Fn(&str) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut buffer = [0u8; 4096];
    while !wanted(&String::from_utf8_lossy(screen)) {
        match tokio::time::timeout_at(deadline, pty.read(&mut buffer)).await {
            Ok(Ok(n)) if n > 0 => screen.extend_from_slice(&buffer[..n]),
            Ok(_) => panic!(
                "the terminal closed before {what}:\n{}",
                String::from_utf8_lossy(screen)
            ),
            Err(_) => panic!("no {what} in time:\n{}", String::from_utf8_lossy(screen)),
        }
    }
}

/// The text without its colour codes (`ESC [ … letter`).
fn strip_ansi(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for code in chars.by_ref() {
                if code.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

#[tokio::test]
async fn human_output_on_a_terminal_is_coloured_and_readable() {
    let hub = Hub::start("").await;
    let (mut pty, pts) = pty_process::open().expect("open a pseudo-terminal");
    pty.resize(pty_process::Size::new(40, 160)).expect("size the terminal");
    let mut command = pty_process::Command::new(env!("CARGO_BIN_EXE_wshub"))
        .args(["connect", "--url", &hub.ws_url(""), "--subscribe", "news"])
        .env("TERM", "xterm-256color")
        .kill_on_drop(true);
    for (key, _) in std::env::vars() {
        if key.starts_with("WSHUB_") || ["NO_COLOR", "CLICOLOR", "CLICOLOR_FORCE"].contains(&key.as_str()) {
            command = command.env_remove(key);
        }
    }
    let mut child = command.spawn(pts).expect("start wshub connect on the terminal");

    let mut screen = Vec::new();
    read_until(&mut pty, &mut screen, "the subscription", |s| {
        s.contains("subscribed to news")
    })
    .await;
    hub.publish("news", "headline", json!({"title": "hello", "count": 3}))
        .await;
    read_until(&mut pty, &mut screen, "the event", |s| {
        strip_ansi(s).contains("headline  {")
    })
    .await;

    let raw = String::from_utf8_lossy(&screen).into_owned();
    let event_line = raw
        .split("\r\n")
        .find(|line| strip_ansi(line).contains("headline"))
        .expect("the event line");
    assert!(
        event_line.contains("\u{1b}["),
        "colour codes on a terminal: {event_line:?}"
    );
    let plain = strip_ansi(event_line);
    let (time, rest) = plain.split_once("  ").expect("the time, then the event");
    assert!(
        time.len() == 12 && time.chars().filter(|c| *c == ':').count() == 2,
        "HH:MM:SS.mmm first: {plain:?}"
    );
    assert_eq!(rest, r#"news #1  headline  {"count": 3, "title": "hello"}"#);
    let connected = raw
        .split("\r\n")
        .map(strip_ansi)
        .find(|line| line.starts_with("connected to "))
        .expect("the connected line");
    assert!(connected.contains("as anonymous"), "{connected}");

    // Ctrl-C typed at the terminal stops it, successfully.
    pty.write_all(b"\x03").await.expect("type Ctrl-C");
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("wshub exits after Ctrl-C")
        .expect("wait");
    assert_eq!(status.code(), Some(0), "{raw}");
}
