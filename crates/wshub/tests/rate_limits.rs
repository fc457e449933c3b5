//! Per-connection rate limits and the abuse close, through the real binary.

mod common;

use common::{Hub, WAIT, error_code, next_json};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn an_empty_bucket_refuses_with_retry_after_and_refills() {
    let hub = Hub::start("rate_limits:\n  subscribe: { capacity: 3, refill_per_sec: 2 }\n").await;
    let (mut client, _) = hub.connect("").await;
    for n in 0..3 {
        let reply = client
            .request("subscribe", json!({"topic": format!("t{n}")}), WAIT)
            .await
            .expect("reply");
        assert_eq!(reply["type"], "subscribed");
    }
    let refused = client
        .request("subscribe", json!({"topic": "t3"}), WAIT)
        .await
        .expect("reply");
    assert_eq!(error_code(&refused), Some("rate_limited"));
    assert_eq!(refused["payload"]["message"], "rate limit exceeded for 'subscribe'");
    let retry_after = refused["payload"]["retry_after"]
        .as_f64()
        .expect("retry_after is a float");
    assert!(
        retry_after > 0.3 && retry_after <= 0.5,
        "one token at 2/s: {retry_after}"
    );
    // The refused request was not executed.
    let (_, status) = hub.get("/ws/status").await;
    assert!(status["topics"].get("t3").is_none(), "{status}");
    // Other buckets are untouched and the connection stays open.
    assert_eq!(
        client.request("ping", json!({}), WAIT).await.expect("pong")["type"],
        "pong"
    );
    // Once the time the hub named has passed, a token is back.
    tokio::time::sleep(Duration::from_secs_f64(retry_after)).await;
    let reply = client
        .request("subscribe", json!({"topic": "t3"}), WAIT)
        .await
        .expect("reply");
    assert_eq!(reply["type"], "subscribed");
}

#[tokio::test]
async fn other_request_types_share_the_default_bucket_and_multi_topic_costs_one() {
    let hub = Hub::start("rate_limits:\n  default: { capacity: 2, refill_per_sec: 0.1 }\n  subscribe: { capacity: 1, refill_per_sec: 0.1 }\n").await;
    let (mut client, _) = hub.connect("").await;
    let reply = client
        .request("subscribe", json!({"topics": ["a", "b", "c", "d"]}), WAIT)
        .await
        .expect("reply");
    assert_eq!(
        reply["payload"]["subscribed"].as_array().map(Vec::len),
        Some(4),
        "one token for four topics"
    );
    let reply = client
        .request("history", json!({"topic": "a"}), WAIT)
        .await
        .expect("reply");
    assert_eq!(reply["type"], "history");
    let reply = client.request("custom.thing", json!({}), WAIT).await.expect("reply");
    assert_eq!(error_code(&reply), Some("unknown_type"));
    let reply = client
        .request("history", json!({"topic": "a"}), WAIT)
        .await
        .expect("reply");
    assert_eq!(error_code(&reply), Some("rate_limited"));
    assert_eq!(reply["payload"]["message"], "rate limit exceeded for 'default'");
    let retry_after = reply["payload"]["retry_after"].as_f64().expect("float");
    assert!(retry_after > 9.0 && retry_after <= 10.0, "{retry_after}");
    let (_, status) = hub.get("/ws/status").await;
    assert_eq!(
        status["counters"]["rate_limited"],
        json!({"ping": 0, "subscribe": 0, "unsubscribe": 0, "default": 1})
    );
}

#[tokio::test]
async fn more_than_abuse_close_after_refusals_closes_with_1008() {
    let hub = Hub::start("rate_limits:\n  ping: { capacity: 1, refill_per_sec: 0.01 }\n  abuse_close_after: 5\n").await;
    let (mut client, _) = hub.connect("").await;
    for _ in 0..7 {
        client.send_json(&json!({"type": "ping"})).await.expect("send");
    }
    assert_eq!(next_json(&mut client).await["type"], "pong");
    for _ in 0..5 {
        assert_eq!(error_code(&next_json(&mut client).await), Some("rate_limited"));
    }
    assert_eq!(
        client.closed(WAIT).await.expect("closed"),
        Some(1008),
        "the sixth refusal closes"
    );
    let (_, status) = hub.get("/ws/status").await;
    assert_eq!(status["counters"]["rate_limited"]["ping"], 5, "{status}");
    assert_eq!(status["counters"]["abuse_closes"], 1);
}

#[tokio::test]
async fn malformed_frames_count_as_refusals() {
    let hub = Hub::start("rate_limits:\n  abuse_close_after: 3\n").await;
    let (mut client, _) = hub.connect("").await;
    for _ in 0..3 {
        client.send_text("garbage").await.expect("send");
        assert_eq!(error_code(&next_json(&mut client).await), Some("invalid_message"));
    }
    client.send_binary(vec![9, 9, 9]).await.expect("send");
    assert_eq!(client.closed(WAIT).await.expect("closed"), Some(1008));
}
