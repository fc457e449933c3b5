//! `wshub connect` against a real hub: each output mode, `--verbose`, `--output`, `--all`,
//! `--filter`/`--topic`, `--count`/`--timeout` and their exit codes, Ctrl-C, readable errors,
//! and reconnecting after the hub restarts or drops the connection.

mod cli_support;
mod common;

use cli_support::{Running, closed_port, run, spawn, starts_with_clock};
use common::{Hub, WAIT, token, with_secret};
use serde_json::{Value, json};
use std::collections::HashSet;
use wshub_client::{Client, Frame};

/// Starts `wshub connect --url <hub> ARGS` and waits until its subscriptions are in place.
async fn watching(hub: &Hub, args: &[&str]) -> Running {
    let url = hub.ws_url("");
    let mut all = vec!["connect", "--url", url.as_str()];
    all.extend_from_slice(args);
    let mut running = spawn(&all, None);
    running.stderr_line("subscribed to").await;
    running
}

fn has_ansi(text: &str) -> bool {
    text.contains('\u{1b}')
}

#[tokio::test]
async fn human_output_reads_time_topic_offset_type_payload() {
    let hub = Hub::start("").await;
    let url = hub.ws_url("");
    let mut running = spawn(&["connect", "--url", &url, "--subscribe", "news"], None);
    let connected = running.stderr_line("connected to").await;
    assert!(
        connected.contains(&format!("connected to {url} as anonymous, connection ")),
        "{connected}"
    );
    running.stderr_line("subscribed to news").await;

    hub.publish("news", "headline", json!({"title": "hi", "n": 1})).await;
    let line = running.stdout_line("the event", |l| l.contains("headline")).await;
    assert!(starts_with_clock(&line), "a time first: {line:?}");
    assert_eq!(&line[12..], r#"  news #1  headline  {"n": 1, "title": "hi"}"#);
    assert!(!has_ansi(&line), "no colour codes into a pipe: {line:?}");

    // Ctrl-C ends a plain watch with success.
    running.interrupt();
    running.finish().await.assert_code(0);
}

#[tokio::test]
async fn json_output_is_exactly_what_the_hub_sent() {
    let hub = Hub::start("").await;
    let mut running = watching(&hub, &["--subscribe", "news", "--json"]).await;
    // Another subscriber sees the same frames: the CLI must print them byte for byte.
    let mut reference = Client::connect(&hub.ws_url("")).await.expect("connect");
    reference
        .request("subscribe", json!({"topic": "news"}), WAIT)
        .await
        .expect("subscribed");

    // Key order and spacing as the publisher wrote them, which a re-encoding would change.
    let (status, body) = hub
        .post_raw(
            "/api/publish",
            "application/json",
            r#"{"topic":"news","event":"headline","payload":{"z": 1, "a": [1.50, "x"]}}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let sent = loop {
        match reference.next_frame(WAIT).await.expect("the event") {
            Frame::Json { text, value } if value["type"] == "headline" => break text.as_str().to_owned(),
            _ => {}
        }
    };
    let line = running.stdout_line("the event", |l| l.contains("headline")).await;
    assert_eq!(line, sent);
    let parsed: Value = serde_json::from_str(&line).expect("a JSON object per line");
    assert_eq!(parsed["offset"], 1);
    running.interrupt();
    let finished = running.finish().await;
    assert_eq!(finished.stdout.len(), 1, "events only on stdout: {finished}");
}

#[tokio::test]
async fn compact_output_is_one_short_line_per_event() {
    let hub = Hub::start("").await;
    let running = watching(&hub, &["--subscribe", "news", "--compact", "--count", "2"]).await;
    hub.publish("news", "short", json!({"a": 1})).await;
    hub.publish("news", "long", json!({"text": "x".repeat(500)})).await;
    let finished = running.finish().await;
    finished.assert_code(0);
    let [short, long] = finished.stdout.as_slice() else {
        panic!("two lines: {finished}")
    };
    assert!(short.ends_with(r#" news#1 short {"a":1}"#), "{short}");
    assert_eq!(short.split(' ').next().map(str::len), Some("12:00:00".len()), "{short}");
    assert!(long.contains(" news#2 long "), "{long}");
    assert!(long.ends_with('…') && long.chars().count() < 120, "cut short: {long}");
}

#[tokio::test]
async fn binary_events_show_as_a_summary_or_their_history_form() {
    let hub = Hub::start("").await;
    let human = watching(&hub, &["--subscribe", "cams/1", "--count", "1"]).await;
    let json = watching(&hub, &["--subscribe", "cams/1", "--json", "--count", "1"]).await;
    let (status, body) = hub
        .send(
            "POST",
            "/api/publish/cams/1?kind=image&format=png&width=2",
            &[],
            Some(("application/octet-stream", b"\x89PNG".to_vec())),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let finished = human.finish().await;
    finished.assert_code(0);
    let [line] = finished.stdout.as_slice() else {
        panic!("one line: {finished}")
    };
    assert!(starts_with_clock(line), "{line}");
    assert!(
        line[12..].starts_with(r#"  cams/1 #1  binary image, 4 bytes  {"#) && line.contains(r#""width": 2"#),
        "{line}"
    );

    let finished = json.finish().await;
    finished.assert_code(0);
    let [line] = finished.stdout.as_slice() else {
        panic!("one line: {finished}")
    };
    let entry: Value = serde_json::from_str(line).expect("JSON");
    assert_eq!(entry["type"], "binary");
    assert_eq!(
        (entry["topic"].clone(), entry["offset"].clone()),
        (json!("cams/1"), json!(1))
    );
    assert_eq!(entry["sender_id"], "server");
    let (status, history) = hub.get("/api/history/cams/1").await;
    assert_eq!(status, 200);
    assert_eq!(history["messages"][0], entry, "the form `history` replies use");
}

#[tokio::test]
async fn verbose_shows_the_handshake_control_messages_and_heartbeats() {
    let hub = Hub::start("websocket:\n  ping_period: 1s\n  pong_wait: 3s\n").await;
    let url = hub.ws_url("");
    let mut running = spawn(&["connect", "--url", &url, "--subscribe", "news", "--verbose"], None);
    running.stderr_line(&format!("→ GET {url}")).await;
    running.stderr_line("← HTTP 101 Switching Protocols").await;
    running
        .stdout_line("connection.established", |l| l.contains("← connection.established"))
        .await;
    running
        .stdout_line("the subscribe reply", |l| {
            l.contains(r#"← subscribed  {"subscribed": [{"topic": "news""#)
        })
        .await;
    running.stderr_line("heartbeat: Ping from the hub").await;
    running.interrupt();
    let finished = running.finish().await;
    finished.assert_code(0);
    let sent = finished
        .stderr
        .iter()
        .find(|l| l.contains("→ subscribe"))
        .unwrap_or_else(|| panic!("the subscribe request: {finished}"));
    assert!(sent.contains(r#""topics": ["news"]"#), "{sent}");
    // A reconnection token is a credential: never printed.
    for line in finished.stdout.iter().filter(|l| l.contains("reconnection_token")) {
        assert!(line.contains(r#""token": "redacted""#), "{line}");
    }
}

#[tokio::test]
async fn output_file_gets_every_message_and_the_screen_still_does_too() {
    let hub = Hub::start("").await;
    let log = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("cli-connect-{}-output.log", std::process::id()));
    std::fs::write(&log, "{\"earlier\":true}\n").expect("write log");
    let log_arg = log.to_str().expect("UTF-8 path");
    let mut running = watching(&hub, &["--subscribe", "news", "--output", log_arg, "--count", "1"]).await;
    hub.publish("news", "headline", json!({"title": "hi"})).await;
    running
        .stdout_line("the event on screen", |l| l.contains("headline"))
        .await;
    running.finish().await.assert_code(0);

    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .expect("log file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let types: Vec<&str> = lines.iter().map(|m| m["type"].as_str().unwrap_or("")).collect();
    assert_eq!(lines[0], json!({"earlier": true}), "appended, not truncated");
    assert!(types.contains(&"connection.established"), "{types:?}");
    assert!(types.contains(&"subscribed"), "{types:?}");
    assert!(types.contains(&"headline"), "{types:?}");
    for message in &lines {
        if message["type"] == "reconnection_token" {
            assert_eq!(message["payload"]["token"], "redacted");
        }
    }
}

#[tokio::test]
async fn all_subscribes_to_every_topic_the_role_may_and_names_the_rest() {
    let hub = Hub::start(&with_secret("")).await;
    let admin = token("ops", "admin", 600);
    let url = hub.ws_url("");
    let mut running = spawn(&["connect", "--url", &url, "--all", "--token", &admin], None);
    let line = running.stderr_line("subscribed to").await;
    assert_eq!(
        line,
        "subscribed to signals, actions, logs, connections, system, alerts, metrics, status"
    );
    running.interrupt();
    let finished = running.finish().await;
    assert!(!finished.stderr_text().contains("denied"), "{finished}");

    let viewer = token("bob", "viewer", 600);
    let mut running = spawn(&["connect", "--url", &url, "--all", "--token", &viewer], None);
    let denied = running.stderr_line("denied").await;
    assert_eq!(denied, "denied for role viewer: signals, actions, logs, connections");
    let subscribed = running.stderr_line("subscribed to").await;
    assert_eq!(subscribed, "subscribed to system, alerts, metrics, status");
    running.interrupt();
    running.finish().await.assert_code(0);
}

#[tokio::test]
async fn filter_and_topic_narrow_what_is_shown_and_counted() {
    let hub = Hub::start("").await;
    let running = watching(
        &hub,
        &[
            "--subscribe",
            "a,b",
            "--topic",
            "a",
            "--filter",
            "keep*",
            "--count",
            "1",
            "--json",
        ],
    )
    .await;
    hub.publish("b", "keep", json!({"n": 1})).await;
    hub.publish("a", "drop", json!({"n": 2})).await;
    hub.publish("a", "keep.this", json!({"n": 3})).await;
    let finished = running.finish().await;
    finished.assert_code(0);
    let shown: Vec<Value> = finished
        .stdout
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(shown.len(), 1, "{finished}");
    assert_eq!(
        (shown[0]["topic"].as_str(), shown[0]["type"].as_str()),
        (Some("a"), Some("keep.this"))
    );
}

#[tokio::test]
async fn count_and_timeout_set_the_exit_code() {
    let hub = Hub::start("").await;
    // Satisfied: exactly N events, then exit 0.
    let running = watching(&hub, &["--subscribe", "news", "--count", "2", "--timeout", "10"]).await;
    for n in 1..=3 {
        hub.publish("news", "tick", json!({"n": n})).await;
    }
    let finished = running.finish().await;
    finished.assert_code(0);
    assert_eq!(finished.stdout.len(), 2, "{finished}");

    // Not satisfied in time: non-zero, and says how far it got.
    let mut running = watching(&hub, &["--subscribe", "news", "--count", "5", "--timeout", "1"]).await;
    hub.publish("news", "tick", json!({"n": 4})).await;
    running.stdout_line("the one event", |l| l.contains("tick")).await;
    let finished = running.finish().await;
    finished.assert_code(1);
    assert!(
        finished.stderr_text().contains("timed out after 1s: 1 of 5 events"),
        "{finished}"
    );

    // A timeout alone is a duration to watch for: success.
    let running = watching(&hub, &["--subscribe", "news", "--timeout", "0.3"]).await;
    running.finish().await.assert_code(0);

    // Ctrl-C before --count is reached: non-zero.
    let running = watching(&hub, &["--subscribe", "news", "--count", "3"]).await;
    running.interrupt();
    let finished = running.finish().await;
    finished.assert_code(1);
    assert!(
        finished.stderr_text().contains("interrupted after 0 of 3 events"),
        "{finished}"
    );
}

#[tokio::test]
async fn a_hub_that_is_not_running_is_explained_in_one_line() {
    let port = closed_port();
    let url = format!("ws://127.0.0.1:{port}/ws");
    let finished = run(&["connect", "--url", &url, "--subscribe", "news"], None).await;
    finished.assert_code(2);
    assert_eq!(
        finished.stderr,
        [format!(
            "error: cannot connect to {url}: connection refused (is `wshub serve` running?)"
        )]
    );
    assert!(finished.stdout.is_empty());
}

#[tokio::test]
async fn bad_tokens_show_the_hubs_code_and_message() {
    let hub = Hub::start(&with_secret("")).await;
    let url = hub.ws_url("");
    let finished = run(
        &["connect", "--url", &url, "--token", "not-a-jwt", "--subscribe", "news"],
        None,
    )
    .await;
    finished.assert_code(2);
    let [line] = finished.stderr.as_slice() else {
        panic!("one line: {finished}")
    };
    assert!(
        line.starts_with("error: the hub refused the connection: unauthorized: "),
        "{line}"
    );

    let expired = token("alice", "viewer", -3600);
    let finished = run(
        &["connect", "--url", &url, "--token", &expired, "--subscribe", "news"],
        None,
    )
    .await;
    finished.assert_code(2);
    assert!(finished.stderr_text().contains("unauthorized"), "{finished}");

    // A hub that admits no one without a token says so, and the CLI suggests --token.
    let closed = Hub::start(&format!(
        "auth:\n  allow_anonymous: false\n  auth_timeout: 1s\n  jwt:\n    hs256_secret: {}\n",
        common::SECRET
    ))
    .await;
    let finished = run(&["connect", "--url", &closed.ws_url(""), "--subscribe", "news"], None).await;
    finished.assert_code(2);
    assert!(
        finished.stderr_text().contains("unauthorized") && finished.stderr_text().contains("pass --token"),
        "{finished}"
    );
}

#[tokio::test]
async fn forbidden_topics_are_listed() {
    let hub = Hub::start("").await;
    let url = hub.ws_url("");
    let mut running = spawn(&["connect", "--url", &url, "--subscribe", "news,signals,logs"], None);
    running.stderr_line("subscribed to news").await;
    let denied = running.stderr_line("denied").await;
    assert_eq!(denied, "warning: denied: signals (forbidden), logs (forbidden)");
    running.interrupt();
    running.finish().await.assert_code(0);

    let finished = run(&["connect", "--url", &url, "--subscribe", "signals,logs"], None).await;
    finished.assert_code(2);
    assert!(
        finished
            .stderr_text()
            .contains("error: cannot subscribe: forbidden: not allowed to subscribe to: signals, logs"),
        "{finished}"
    );
}

#[tokio::test]
async fn it_reconnects_after_the_hub_restarts_on_the_same_port() {
    let hub = Hub::start("").await;
    let port = hub.port();
    let mut running = watching(&hub, &["--subscribe", "news", "--json"]).await;
    hub.publish("news", "before", json!({})).await;
    running.stdout_line("the event before", |l| l.contains("before")).await;

    hub.terminate();
    let mut hub = hub;
    hub.child.wait().await.expect("the hub exits");
    let lost = running.stderr_line("connection lost").await;
    assert!(lost.contains("1001") && lost.contains("reconnecting in"), "{lost}");

    let hub = Hub::start_at("", port, &[], &[]).await;
    let reconnected = running.stderr_line("reconnected (").await;
    // A restarted in-memory hub has new epochs: nothing before it can be replayed, and the CLI
    // must not pretend otherwise.
    assert!(reconnected.contains("events may have been missed"), "{reconnected}");
    hub.publish("news", "after", json!({})).await;
    let after = running.stdout_line("the event after", |l| l.contains("after")).await;
    let after: Value = serde_json::from_str(&after).expect("JSON line");
    assert_eq!(after["offset"], 1, "a new stream");
    running.interrupt();
    running.finish().await.assert_code(0);
}

#[tokio::test]
async fn after_a_drop_no_event_is_shown_twice_and_the_reconnect_line_is_true() {
    let hub = Hub::start("").await;
    let mut running = watching(&hub, &["--subscribe", "news", "--json"]).await;
    hub.publish("news", "tick", json!({"n": 1})).await;
    running.stdout_line("event 1", |l| l.contains(r#""n":1"#)).await;

    // The hub drops the connection as it does a slow consumer; events go on meanwhile.
    let (status, body) = hub
        .post(
            "/api/disconnect",
            &json!({"connection_id": connection_id(&mut running).await, "code": 4008, "reason": "test"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for n in 2..=4 {
        hub.publish("news", "tick", json!({"n": n})).await;
    }
    let reconnected = running.stderr_line("reconnected (").await;
    hub.publish("news", "tick", json!({"n": 5})).await;
    running.stdout_line("event 5", |l| l.contains(r#""n":5"#)).await;
    running.interrupt();
    let finished = running.finish().await;

    let offsets: Vec<u64> = finished
        .stdout
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("JSON line")["offset"]
                .as_u64()
                .expect("offset")
        })
        .collect();
    let distinct: HashSet<u64> = offsets.iter().copied().collect();
    assert_eq!(distinct.len(), offsets.len(), "no event twice: {finished}");
    if reconnected.contains("nothing missed") || reconnected.contains("recovered") {
        assert_eq!(offsets, [1, 2, 3, 4, 5], "the line said nothing was missed: {finished}");
    } else {
        assert!(reconnected.contains("events may have been missed"), "{reconnected}");
    }
}

#[tokio::test]
async fn a_deliberate_close_or_no_reconnect_ends_the_command() {
    let hub = Hub::start("").await;
    let mut running = watching(&hub, &["--subscribe", "news"]).await;
    let id = connection_id(&mut running).await;
    let (status, body) = hub.post("/api/disconnect", &json!({"connection_id": id})).await;
    assert_eq!(status, 200, "{body}");
    let finished = running.finish().await;
    finished.assert_code(2);
    assert!(
        finished
            .stderr_text()
            .contains("error: the hub closed the connection (close code 1000"),
        "{finished}"
    );

    let mut running = watching(&hub, &["--subscribe", "news", "--no-reconnect"]).await;
    let id = connection_id(&mut running).await;
    let (status, body) = hub
        .post(
            "/api/disconnect",
            &json!({"connection_id": id, "code": 4008, "reason": "slow"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let finished = running.finish().await;
    finished.assert_code(2);
    assert!(finished.stderr_text().contains("close code 4008, slow"), "{finished}");
}

/// The connection id from the `connected to … connection ID` line already read.
async fn connection_id(running: &mut Running) -> String {
    let transcript = running.transcript();
    transcript
        .lines()
        .find_map(|l| l.split(", connection ").nth(1))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("a connection id in {transcript}"))
}
