//! Request/response handlers (CONTRACT §7), end to end.
//!
//! Every scenario runs twice: against the real binary with an HTTP backend served by this test
//! process on loopback (`http::…`), and against the hub embedded in this process with the same
//! behaviour registered as a Rust `Handler` (`embedded::…`). Both share one test backend
//! (`handler_support`), which decides by request type what to answer and records what it was asked.

mod common;
mod handler_support;

use common::{Hub, WAIT, error_code, next_json, token};
use handler_support::{Mode, SLOW_TIMEOUT, TestHub, call, send, until_draining};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use wshub_client::Incoming;

async fn replies_carry_the_request_id_and_the_callers_identity(mode: Mode) {
    let hub = TestHub::start(mode, "").await;
    let alice = token("alice", "developer", 300);
    let (mut client, established) = hub.connect(&format!("token={alice}&client_id=cli-1")).await;
    let reply = call(&mut client, "r1", "t.echo", json!({"name": "ci"})).await;
    assert_eq!(reply["type"], "t.echoed");
    assert!(reply["timestamp"].as_u64().is_some(), "{reply}");
    assert_eq!(
        reply["payload"]["got"],
        json!({
            "type": "t.echo",
            "payload": {"name": "ci"},
            "connection_id": established["payload"]["connection_id"],
            "user": "alice",
            "role": "developer",
            "roles": ["developer"],
            "client_id": "cli-1",
        })
    );
    // A numeric id comes back as a number; a request without an id gets a reply without one.
    client
        .send_json(&json!({"id": 42, "type": "t.echo"}))
        .await
        .expect("send");
    let reply = next_json(&mut client).await;
    assert_eq!(
        (&reply["id"], &reply["payload"]["got"]["payload"]),
        (&json!(42), &json!({}))
    );
    client.send_json(&json!({"type": "t.echo"})).await.expect("send");
    let reply = next_json(&mut client).await;
    assert_eq!(reply["type"], "t.echoed");
    assert!(reply.get("id").is_none(), "{reply}");
    // Anonymous callers are identified as such.
    let (mut anonymous, _) = hub.connect("").await;
    let got = &call(&mut anonymous, "a1", "t.echo", json!({})).await["payload"]["got"];
    assert_eq!((&got["user"], &got["role"]), (&Value::Null, &json!("anonymous")));
}

async fn the_default_reply_type_is_the_request_type_dot_result(mode: Mode) {
    let hub = TestHub::start(mode, "").await;
    let (mut client, _) = hub.connect("").await;
    let reply = call(&mut client, "p1", "t.plain", json!({})).await;
    assert_eq!(reply["type"], "t.plain.result");
    assert_eq!(reply["payload"], json!({"ok": true}));
}

async fn a_failing_handler_gives_handler_failed_without_its_details(mode: Mode) {
    let hub = TestHub::start(mode, "").await;
    let (mut client, _) = hub.connect("").await;
    let reply = call(&mut client, "f1", "t.fail", json!({})).await;
    assert_eq!(error_code(&reply), Some("handler_failed"), "{reply}");
    let message = reply["payload"]["message"].as_str().expect("message");
    assert!(message.contains("t.fail"), "{message}");
    assert!(!message.contains("secret") && !message.contains("500"), "{message}");
    if let Some(log) = hub.log_text() {
        assert!(
            log.contains("HTTP 500") && log.contains("secret-detail"),
            "the log keeps the cause:\n{log}"
        );
    }
    // The connection carries on.
    assert_eq!(
        call(&mut client, "f2", "t.plain", json!({})).await["type"],
        "t.plain.result"
    );
}

async fn an_answer_that_is_not_an_object_gives_handler_failed(mode: Mode) {
    let hub = TestHub::start(mode, "").await;
    let (mut client, _) = hub.connect("").await;
    let reply = call(&mut client, "n1", "t.list", json!({})).await;
    assert_eq!(error_code(&reply), Some("handler_failed"), "{reply}");
}

async fn a_slow_handler_gives_handler_timeout_on_time(mode: Mode) {
    let hub = TestHub::start(mode, "").await;
    let (mut client, _) = hub.connect("").await;
    let sent = Instant::now();
    let reply = call(&mut client, "s1", "slow.never", json!({})).await;
    let elapsed = sent.elapsed();
    assert_eq!(error_code(&reply), Some("handler_timeout"), "{reply}");
    assert!(
        elapsed >= SLOW_TIMEOUT && elapsed < SLOW_TIMEOUT + Duration::from_secs(2),
        "answered after {elapsed:?}, timeout {SLOW_TIMEOUT:?}"
    );
    assert_eq!(
        client.request("ping", json!({}), WAIT).await.expect("pong")["type"],
        "pong"
    );
}

async fn a_handler_answers_its_caller_and_its_event_reaches_subscribers(mode: Mode) {
    let hub = TestHub::start(mode, "").await;
    let (mut subscriber, _) = hub.connect("").await;
    let subscribed = subscriber
        .request("subscribe", json!({"topic": "tokens"}), WAIT)
        .await
        .expect("subscribed");
    assert_eq!(subscribed["type"], "subscribed", "{subscribed}");
    let (mut caller, _) = hub
        .connect(&format!("token={}", token("alice", "developer", 300)))
        .await;
    let reply = call(&mut caller, "c1", "token.create", json!({"name": "ci"})).await;
    assert_eq!(reply["type"], "token.create.result", "{reply}");
    assert_eq!(reply["payload"]["token"], json!({"name": "ci", "by": "alice"}));
    let event = subscriber.next_of_type("token.created", WAIT).await.expect("the event");
    assert_eq!(
        (&event["topic"], &event["sender_id"], &event["payload"]),
        (
            &json!("tokens"),
            &json!("server"),
            &json!({"name": "ci", "by": "alice"})
        )
    );
    assert_eq!(event["offset"], 1);
}

async fn types_no_route_matches_get_unknown_type(mode: Mode) {
    let hub = TestHub::start(mode, "").await;
    let (mut client, _) = hub.connect("").await;
    let reply = call(&mut client, "u1", "nothing.here", json!({})).await;
    assert_eq!(error_code(&reply), Some("unknown_type"), "{reply}");
    assert_eq!(hub.backend.count(), 0);
}

async fn at_most_eight_calls_are_in_flight_per_connection(mode: Mode) {
    let hub = TestHub::start(mode, "").await;
    let (mut client, _) = hub.connect("").await;
    for i in 1..=8 {
        send(&mut client, &format!("h{i}"), "t.hold", json!({})).await;
    }
    hub.backend.arrived(8).await;
    let refused = call(&mut client, "h9", "t.hold", json!({})).await;
    assert_eq!(error_code(&refused), Some("unavailable"), "{refused}");
    // The reader is not blocked by the calls, and the bound is per connection.
    assert_eq!(
        client.request("ping", json!({}), WAIT).await.expect("pong")["type"],
        "pong"
    );
    let (mut other, _) = hub.connect("").await;
    assert_eq!(
        call(&mut other, "o1", "t.plain", json!({})).await["type"],
        "t.plain.result"
    );
    assert_eq!(hub.backend.count(), 9, "the refused call never reached the backend");

    hub.backend.release(8);
    let mut ids = Vec::new();
    for _ in 0..8 {
        let reply = next_json(&mut client).await;
        assert_eq!(reply["type"], "t.hold.result", "{reply}");
        ids.push(reply["id"].as_str().expect("id").to_owned());
    }
    ids.sort();
    let mut expected: Vec<String> = (1..=8).map(|i| format!("h{i}")).collect();
    expected.sort();
    assert_eq!(ids, expected);
    // Every slot is free again once the replies are out.
    assert_eq!(
        call(&mut client, "h10", "t.plain", json!({})).await["type"],
        "t.plain.result"
    );
}

async fn roles_limit_who_may_call_a_handler(mode: Mode) {
    let hub = TestHub::start(mode, "").await;
    let (mut viewer, _) = hub.connect(&format!("token={}", token("vic", "viewer", 300))).await;
    let reply = call(&mut viewer, "v1", "admin.reset", json!({})).await;
    assert_eq!(error_code(&reply), Some("forbidden"), "{reply}");
    let (mut anonymous, _) = hub.connect("").await;
    let reply = call(&mut anonymous, "a1", "admin.reset", json!({})).await;
    assert_eq!(error_code(&reply), Some("forbidden"), "{reply}");
    let (mut admin, _) = hub.connect(&format!("token={}", token("ada", "admin", 300))).await;
    let reply = call(&mut admin, "ad1", "admin.reset", json!({})).await;
    assert_eq!(reply["type"], "admin.reset.result", "{reply}");
    assert_eq!(hub.backend.count(), 1, "refused calls never reach the backend");
}

async fn handler_calls_are_rate_limited(mode: Mode) {
    let hub = TestHub::start(mode, "rate_limits:\n  default: { capacity: 3, refill_per_sec: 0.01 }\n").await;
    let (mut client, _) = hub.connect("").await;
    for i in 0..3 {
        let reply = call(&mut client, &format!("l{i}"), "t.plain", json!({})).await;
        assert_eq!(reply["type"], "t.plain.result", "{reply}");
    }
    let refused = call(&mut client, "l3", "t.plain", json!({})).await;
    assert_eq!(error_code(&refused), Some("rate_limited"), "{refused}");
    assert!(
        refused["payload"]["retry_after"].as_f64().is_some_and(|s| s > 0.0),
        "{refused}"
    );
    assert_eq!(hub.backend.count(), 3, "the refused call never reached the backend");
}

async fn a_call_in_flight_at_shutdown_gets_its_reply_before_1001(mode: Mode) {
    let mut hub = TestHub::start(mode, "").await;
    let (mut client, _) = hub.connect("").await;
    send(&mut client, "last", "t.hold", json!({})).await;
    hub.backend.arrived(1).await;
    hub.terminate();
    until_draining(&mut client).await;
    let refused = call(&mut client, "late", "t.plain", json!({})).await;
    assert_eq!(
        error_code(&refused),
        Some("unavailable"),
        "new calls are refused: {refused}"
    );
    hub.backend.release(1);
    let reply = client
        .reply_to("last", WAIT)
        .await
        .expect("the reply comes before the close");
    assert_eq!(reply["type"], "t.hold.result", "{reply}");
    assert_eq!(reply["payload"], json!({"released": true}));
    assert_eq!(client.closed(WAIT).await.expect("closed"), Some(1001));
    hub.stopped().await;
}

async fn a_call_still_running_at_the_shutdown_deadline_gets_unavailable(mode: Mode) {
    let mut hub = TestHub::start(mode, "server:\n  shutdown_timeout: 1s\n").await;
    let (mut client, _) = hub.connect("").await;
    send(&mut client, "stuck", "t.hold", json!({})).await;
    hub.backend.arrived(1).await;
    let terminated = Instant::now();
    hub.terminate();
    let reply = client.reply_to("stuck", WAIT).await.expect("a reply before the close");
    let elapsed = terminated.elapsed();
    assert_eq!(error_code(&reply), Some("unavailable"), "{reply}");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(4),
        "answered {elapsed:?} after the shutdown began (shutdown_timeout 1s)"
    );
    assert_eq!(client.closed(WAIT).await.expect("closed"), Some(1001));
    hub.stopped().await;
}

/// Each scenario as two tests: `http::name` (binary + HTTP backend) and `embedded::name`.
macro_rules! in_both_modes {
    ($($name:ident),* $(,)?) => {
        mod http {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Mode::Http).await
                }
            )*
        }
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Mode::Embedded).await
                }
            )*
        }
    };
}

in_both_modes!(
    replies_carry_the_request_id_and_the_callers_identity,
    the_default_reply_type_is_the_request_type_dot_result,
    a_failing_handler_gives_handler_failed_without_its_details,
    an_answer_that_is_not_an_object_gives_handler_failed,
    a_slow_handler_gives_handler_timeout_on_time,
    a_handler_answers_its_caller_and_its_event_reaches_subscribers,
    types_no_route_matches_get_unknown_type,
    at_most_eight_calls_are_in_flight_per_connection,
    roles_limit_who_may_call_a_handler,
    handler_calls_are_rate_limited,
    a_call_in_flight_at_shutdown_gets_its_reply_before_1001,
    a_call_still_running_at_the_shutdown_deadline_gets_unavailable,
);

#[tokio::test]
async fn calls_to_a_backend_reuse_one_pooled_connection() {
    let hub = TestHub::start(Mode::Http, "").await;
    let (mut client, _) = hub.connect("").await;
    for i in 0..5 {
        assert_eq!(
            call(&mut client, &format!("c{i}"), "t.plain", json!({})).await["type"],
            "t.plain.result"
        );
    }
    let peers = hub.backend.peers.lock().expect("lock").clone();
    assert_eq!(peers.len(), 5);
    assert!(
        peers.iter().all(|p| *p == peers[0]),
        "one connection for sequential calls: {peers:?}"
    );
}

#[tokio::test]
async fn an_unreachable_backend_gives_handler_failed() {
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let hub = Hub::start(&format!(
        "handlers:\n  - {{ match: \"x.*\", url: \"http://127.0.0.1:{closed_port}/rpc\" }}\n"
    ))
    .await;
    let (mut client, _) = hub.connect("").await;
    let reply = client.request("x.go", json!({}), WAIT).await.expect("reply");
    assert_eq!(error_code(&reply), Some("handler_failed"), "{reply}");
    assert!(hub.log_text().contains("unreachable"), "{}", hub.log_text());
    assert!(
        !hub.log_text().contains("are not served by this version"),
        "no stale warning about handlers"
    );
}

#[tokio::test]
async fn an_https_backend_is_refused_at_start() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let config = dir.join(format!("{}-https-handler.yaml", std::process::id()));
    std::fs::write(
        &config,
        "handlers:\n  - { match: \"x.*\", url: \"https://backend.example/rpc\" }\n",
    )
    .expect("write config");
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_wshub"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .args(["--port", "0"])
        .env_remove("WSHUB_LOG")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(WAIT, run)
        .await
        .expect("refused at once")
        .expect("run wshub");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("handlers[0].url") && stderr.contains("TLS"), "{stderr}");
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_its_calls() {
    // Embedded, the handler's future is what the hub drops, so the backend can see it.
    let hub = TestHub::start(Mode::Embedded, "").await;
    let (mut client, _) = hub.connect("").await;
    send(&mut client, "gone", "t.hold", json!({})).await;
    hub.backend.arrived(1).await;
    client.close(1000).await.expect("close");
    assert!(matches!(client.next(WAIT).await, Ok(Incoming::Closed(_))));
    let mut abandoned = hub.backend.abandoned.subscribe();
    tokio::time::timeout(WAIT, abandoned.wait_for(|n| *n == 1))
        .await
        .expect("the call is cancelled when its connection ends")
        .expect("backend alive");
}
