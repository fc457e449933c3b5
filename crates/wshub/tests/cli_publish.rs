//! `wshub publish` against a real hub: `--data`, `--data-file`, standard input lines (bad lines
//! reported by number, the rest still published), `--ws` with a token, API keys, `--json`, and a
//! hub that is not running.

mod cli_support;
mod common;

use cli_support::{closed_port, run};
use common::{Hub, WAIT, token, with_secret};
use serde_json::{Value, json};
use wshub_client::{Client, Frame};

/// A subscriber to `topic` that reads each event's text exactly as it arrives.
async fn subscriber(hub: &Hub, topic: &str) -> Client {
    let mut client = Client::connect(&hub.ws_url("")).await.expect("connect");
    client
        .request("subscribe", json!({"topic": topic}), WAIT)
        .await
        .expect("subscribed");
    client
}

async fn next_event_text(client: &mut Client) -> String {
    loop {
        if let Frame::Json { text, value } = client.next_frame(WAIT).await.expect("an event")
            && value.get("offset").is_some()
        {
            return text.as_str().to_owned();
        }
    }
}

#[tokio::test]
async fn data_is_published_as_written_and_the_offset_printed() {
    let hub = Hub::start("").await;
    let mut events = subscriber(&hub, "news").await;
    let base = format!("http://{}", hub.addr);
    let data = r#"{"z": 1, "a": [1.50, "x"]}"#;
    let finished = run(
        &[
            "publish", "--url", &base, "--topic", "news", "--event", "headline", "--data", data,
        ],
        None,
    )
    .await;
    finished.assert_code(0);
    assert_eq!(finished.stdout, ["1"], "{finished}");
    let event = next_event_text(&mut events).await;
    // Key order and number spelling reach subscribers as typed (whitespace aside).
    assert!(event.contains(r#""payload":{"z":1,"a":[1.50,"x"]}"#), "{event}");
    assert!(event.contains(r#""type":"headline""#), "{event}");

    // The event name defaults to `message`; --json prints the hub's whole answer.
    let finished = run(
        &["publish", "--url", &base, "--topic", "news", "--data", "{}", "--json"],
        None,
    )
    .await;
    finished.assert_code(0);
    let answer: Value = serde_json::from_str(&finished.stdout[0]).expect("the hub's JSON answer");
    assert_eq!(
        (answer["topic"].as_str(), answer["offset"].as_u64()),
        (Some("news"), Some(2))
    );
    assert!(answer["epoch"].is_string(), "{answer}");
    assert!(next_event_text(&mut events).await.contains(r#""type":"message""#));
}

#[tokio::test]
async fn data_file_is_read_and_checked() {
    let hub = Hub::start("").await;
    let base = format!("http://{}", hub.addr);
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let good = dir.join(format!("cli-publish-{}-good.json", std::process::id()));
    std::fs::write(&good, "{\n  \"title\": \"from a file\"\n}\n").expect("write");
    let finished = run(
        &[
            "publish",
            "--url",
            &base,
            "--topic",
            "news",
            "--data-file",
            good.to_str().expect("UTF-8"),
        ],
        None,
    )
    .await;
    finished.assert_code(0);
    assert_eq!(finished.stdout, ["1"]);

    let bad = dir.join(format!("cli-publish-{}-bad.json", std::process::id()));
    std::fs::write(&bad, "[1, 2]").expect("write");
    let finished = run(
        &[
            "publish",
            "--url",
            &base,
            "--topic",
            "news",
            "--data-file",
            bad.to_str().expect("UTF-8"),
        ],
        None,
    )
    .await;
    finished.assert_code(2);
    assert!(
        finished.stderr_text().contains("must be a JSON object, got an array"),
        "{finished}"
    );
}

#[tokio::test]
async fn stdin_lines_are_each_published_and_bad_ones_reported_by_number() {
    let hub = Hub::start("").await;
    let mut events = subscriber(&hub, "feed").await;
    let base = format!("http://{}", hub.addr);
    let input = "{\"n\": 1}\n{not json\n[1]\n\n{\"n\": 2}\n";
    let finished = run(
        &["publish", "--url", &base, "--topic", "feed", "--event", "item"],
        Some(input),
    )
    .await;
    finished.assert_code(1);
    assert_eq!(finished.stdout, ["1", "2"], "{finished}");
    let errors = finished.stderr_text();
    assert!(errors.contains("error: line 2: payload is not JSON: "), "{finished}");
    assert!(
        errors.contains("error: line 3: payload must be a JSON object, got an array"),
        "{finished}"
    );
    assert!(errors.contains("2 of 4 lines failed; 2 published"), "{finished}");
    for n in 1..=2 {
        let event = next_event_text(&mut events).await;
        assert!(event.contains(&format!(r#""payload":{{"n":{n}}}"#)), "{event}");
    }

    // All good: exit 0.
    let finished = run(&["publish", "--url", &base, "--topic", "feed"], Some("{}\n{}\n")).await;
    finished.assert_code(0);
    assert_eq!(finished.stdout, ["3", "4"]);
}

#[tokio::test]
async fn lines_the_hub_refuses_are_reported_and_the_rest_go_on() {
    let hub = Hub::start("").await;
    let base = format!("http://{}", hub.addr);
    // A topic name outside the protocol's character set is refused by the hub, line by line.
    let finished = run(&["publish", "--url", &base, "--topic", "bad topic!"], Some("{}\n{}\n")).await;
    finished.assert_code(1);
    let errors: Vec<&String> = finished
        .stderr
        .iter()
        .filter(|l| l.starts_with("error: line"))
        .collect();
    assert_eq!(errors.len(), 2, "{finished}");
    assert!(errors[0].starts_with("error: line 1: invalid_message: "), "{finished}");
    assert!(errors[0].ends_with("(HTTP 400)"), "{finished}");
}

#[tokio::test]
async fn publishing_over_websocket_needs_a_token_that_may_publish() {
    let hub = Hub::start(&with_secret("")).await;
    let url = hub.ws_url("");
    let developer = token("dev", "developer", 600);
    let finished = run(
        &[
            "publish",
            "--ws",
            "--url",
            &url,
            "--token",
            &developer,
            "--topic",
            "room/1",
            "--data",
            r#"{"text":"hi"}"#,
        ],
        None,
    )
    .await;
    finished.assert_code(0);
    assert_eq!(finished.stdout, ["1"], "{finished}");

    let finished = run(
        &["publish", "--ws", "--url", &url, "--topic", "room/1", "--data", "{}"],
        None,
    )
    .await;
    finished.assert_code(1);
    assert!(
        finished.stderr_text().contains("forbidden") && finished.stderr_text().contains("pass --token"),
        "{finished}"
    );

    let finished = run(
        &[
            "publish", "--ws", "--url", &url, "--token", "garbage", "--topic", "room/1", "--data", "{}",
        ],
        None,
    )
    .await;
    finished.assert_code(2);
    assert!(finished.stderr_text().contains("unauthorized"), "{finished}");
}

#[tokio::test]
async fn api_keys_are_sent_and_a_missing_one_explained() {
    let hub = Hub::start("auth:\n  api_keys: [k-123]\n").await;
    let base = format!("http://{}", hub.addr);
    let finished = run(&["publish", "--url", &base, "--topic", "news", "--data", "{}"], None).await;
    finished.assert_code(2);
    let [line] = finished.stderr.as_slice() else {
        panic!("one line: {finished}")
    };
    assert!(line.starts_with("error: unauthorized: "), "{line}");
    assert!(line.ends_with("(HTTP 401; pass --api-key)"), "{line}");

    let finished = run(
        &[
            "publish",
            "--url",
            &base,
            "--api-key",
            "k-123",
            "--topic",
            "news",
            "--data",
            "{}",
        ],
        None,
    )
    .await;
    finished.assert_code(0);
    assert_eq!(finished.stdout, ["1"]);
}

#[tokio::test]
async fn a_hub_that_is_not_running_is_explained_in_one_line() {
    let port = closed_port();
    let base = format!("http://127.0.0.1:{port}");
    let finished = run(&["publish", "--url", &base, "--topic", "news", "--data", "{}"], None).await;
    finished.assert_code(2);
    assert_eq!(
        finished.stderr,
        [format!(
            "error: cannot connect to {base}: connection refused (is `wshub serve` running?)"
        )]
    );

    // With stdin lines, the first line says so and nothing else is tried.
    let finished = run(&["publish", "--url", &base, "--topic", "news"], Some("{}\n{}\n")).await;
    finished.assert_code(2);
    assert_eq!(finished.stderr.len(), 1, "{finished}");
    assert!(
        finished.stderr[0].starts_with("error: line 1: cannot connect to"),
        "{finished}"
    );
}

#[tokio::test]
async fn help_shows_examples_for_each_client_command() {
    for command in ["connect", "publish", "send"] {
        let finished = run(&[command, "--help"], None).await;
        finished.assert_code(0);
        let text = finished.stdout.join("\n");
        assert!(text.contains("Examples:"), "wshub {command} --help:\n{text}");
        assert!(
            text.contains(&format!("wshub {command} ")),
            "wshub {command} --help:\n{text}"
        );
    }
    let finished = run(&["--help"], None).await;
    let text = finished.stdout.join("\n");
    for command in ["connect", "publish", "send"] {
        assert!(
            text.contains(&format!("  {command} ")),
            "wshub --help lists {command}:\n{text}"
        );
    }
}
