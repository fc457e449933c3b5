//! `wshub send` against a real hub: one request, its reply printed, the exit code telling a
//! success reply from an `error` one.

mod cli_support;
mod common;

use cli_support::run;
use common::{Hub, with_secret};
use serde_json::{Value, json};

#[tokio::test]
async fn a_request_gets_its_reply_printed() {
    let hub = Hub::start("").await;
    let url = hub.ws_url("");
    let finished = run(&["send", "--url", &url, "--type", "ping"], None).await;
    finished.assert_code(0);
    let reply: Value = serde_json::from_str(&finished.stdout.join("\n")).expect("the reply, as JSON");
    assert_eq!(reply["type"], "pong");
    assert!(finished.stdout.len() > 1, "indented for people: {finished}");

    hub.publish("news", "headline", json!({"title": "hi"})).await;
    let finished = run(
        &[
            "send",
            "--url",
            &url,
            "--type",
            "history",
            "--topic",
            "news",
            "--payload",
            r#"{"limit": 1}"#,
            "--json",
        ],
        None,
    )
    .await;
    finished.assert_code(0);
    let [line] = finished.stdout.as_slice() else {
        panic!("one line with --json: {finished}")
    };
    let reply: Value = serde_json::from_str(line).expect("JSON");
    assert_eq!(reply["type"], "history");
    assert_eq!(reply["payload"]["messages"][0]["payload"]["title"], "hi");
}

#[tokio::test]
async fn an_error_reply_is_printed_and_exits_non_zero() {
    let hub = Hub::start("").await;
    let url = hub.ws_url("");
    let finished = run(&["send", "--url", &url, "--type", "token.create", "--json"], None).await;
    finished.assert_code(1);
    let reply: Value = serde_json::from_str(&finished.stdout[0]).expect("the error reply");
    assert_eq!(reply["payload"]["code"], "unknown_type");
    assert_eq!(
        finished.stderr,
        [r#"error: unknown_type: no handler for type "token.create""#],
        "{finished}"
    );

    let finished = run(&["send", "--url", &url, "--type", "ping", "--payload", "[1]"], None).await;
    finished.assert_code(2);
    assert_eq!(
        finished.stderr,
        ["error: --payload must be a JSON object, got an array"]
    );
}

#[tokio::test]
async fn a_bad_token_shows_the_hubs_code_and_message() {
    let hub = Hub::start(&with_secret("")).await;
    let url = hub.ws_url("");
    let finished = run(&["send", "--url", &url, "--type", "ping", "--token", "garbage"], None).await;
    finished.assert_code(2);
    let [line] = finished.stderr.as_slice() else {
        panic!("one line: {finished}")
    };
    assert!(
        line.starts_with("error: the hub closed the connection: unauthorized: "),
        "{line}"
    );
    assert!(line.contains("4001"), "{line}");
}
