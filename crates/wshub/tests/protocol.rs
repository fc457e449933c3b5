//! The `/ws` protocol through the real binary: every request type, reply, and error code.

mod common;

use common::{Hub, WAIT, error_code, next_json};
use serde_json::{Value, json};
use wshub_client::Client;

#[tokio::test]
async fn connection_established_comes_first_with_identity_permissions_and_heartbeat() {
    let hub = Hub::start("").await;
    let mut client = Client::connect(&hub.ws_url("client_id=my_client"))
        .await
        .expect("connect");
    let first = next_json(&mut client).await;
    assert_eq!(first["type"], "connection.established");
    let p = &first["payload"];
    assert_eq!(p["client_id"], "my_client");
    assert_eq!(p["user"], Value::Null);
    assert_eq!(p["role"], "anonymous");
    assert_eq!(p["resumed"], false);
    assert_eq!(p["subscriptions"], json!([]));
    assert_eq!(p["heartbeat"], json!({"ping_period": 54, "pong_wait": 60}));
    assert!(p["connection_id"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(p["server"]["version"].is_string() && p["server"]["node"].is_string());
    assert!(first["timestamp"].as_u64().is_some_and(|t| t > 1_700_000_000_000));
    let permissions = p["permissions"].as_array().expect("permissions");
    assert_eq!(permissions.len(), 9, "one entry per default topic rule");
    assert_eq!(
        permissions[0],
        json!({"match": "signals", "subscribe": false, "publish": false})
    );
    assert_eq!(
        permissions[8],
        json!({"match": "*", "subscribe": true, "publish": false})
    );
}

#[tokio::test]
async fn subscribe_publish_and_receive_with_offsets() {
    let hub = Hub::start("").await;
    let (mut sub, _) = hub.connect("").await;
    let reply = sub
        .request("subscribe", json!({"topic": "news"}), WAIT)
        .await
        .expect("reply");
    assert_eq!(reply["type"], "subscribed");
    let entry = &reply["payload"]["subscribed"][0];
    assert_eq!(entry["topic"], "news");
    assert_eq!(entry["offset"], 0);
    assert_eq!(entry["recovered"], false);
    assert!(entry["epoch"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(reply["payload"]["denied"], json!([]));

    let published = hub.publish("news", "headline", json!({"title": "hello"})).await;
    assert_eq!(published["offset"], 1);
    assert_eq!(published["epoch"], entry["epoch"]);

    let event = sub.next_of_type("headline", WAIT).await.expect("event");
    assert_eq!(event["topic"], "news");
    assert_eq!(event["payload"], json!({"title": "hello"}));
    assert_eq!(event["offset"], 1);
    assert_eq!(event["epoch"], entry["epoch"]);
    assert_eq!(event["sender_id"], "server");
    assert!(event["id"].as_str().is_some_and(|id| id.starts_with("evt_")));
    assert!(event["timestamp"].as_u64().is_some());
}

#[tokio::test]
async fn client_publish_reaches_every_subscriber_including_the_publisher() {
    // Anonymous cannot publish by default; a developer can publish to "*" topics.
    let hub = Hub::start(&common::with_secret("")).await;
    let dev = common::token("dev1", "developer", 3600);
    let (mut publisher, _) = hub.connect_as(&dev).await;
    let (mut other, _) = hub.connect("").await;
    for client in [&mut publisher, &mut other] {
        let reply = client
            .request("subscribe", json!({"topic": "room/1"}), WAIT)
            .await
            .expect("reply");
        assert_eq!(reply["type"], "subscribed");
    }
    let reply = publisher
        .request(
            "publish",
            json!({"topic": "room/1", "event": "chat", "payload": {"text": "hi"}}),
            WAIT,
        )
        .await
        .expect("reply");
    assert_eq!(reply["type"], "published");
    assert_eq!(reply["payload"]["offset"], 1);
    for client in [&mut publisher, &mut other] {
        let event = client.next_of_type("chat", WAIT).await.expect("event");
        assert_eq!(event["payload"]["text"], "hi");
        assert_eq!(event["sender_id"], "dev1");
    }
    // Default event name.
    let reply = publisher
        .request("publish", json!({"topic": "room/1"}), WAIT)
        .await
        .expect("reply");
    assert_eq!(reply["payload"]["offset"], 2);
    let event = other.next_of_type("message", WAIT).await.expect("default event name");
    assert_eq!(event["payload"], json!({}));
}

#[tokio::test]
async fn multi_topic_subscribe_lists_subscribed_and_denied() {
    let hub = Hub::start("").await;
    let (mut client, _) = hub.connect("").await;
    let reply = client
        .request(
            "subscribe",
            json!({"topics": ["metrics", "signals", "bad topic!", "status"]}),
            WAIT,
        )
        .await
        .expect("reply");
    assert_eq!(reply["type"], "subscribed");
    let subscribed: Vec<&str> = reply["payload"]["subscribed"]
        .as_array()
        .expect("list")
        .iter()
        .map(|e| e["topic"].as_str().expect("topic"))
        .collect();
    assert_eq!(subscribed, vec!["metrics", "status"]);
    assert_eq!(
        reply["payload"]["denied"],
        json!([{"topic": "signals", "code": "forbidden"}, {"topic": "bad topic!", "code": "invalid_message"}])
    );

    // Topics inside payload (a widely used client library sends them there).
    let reply = client
        .request("subscribe", json!({"payload": {"topics": ["a", "b"]}}), WAIT)
        .await
        .expect("reply");
    assert_eq!(reply["payload"]["subscribed"].as_array().map(Vec::len), Some(2));

    // Idempotent.
    let reply = client
        .request("subscribe", json!({"topic": "a"}), WAIT)
        .await
        .expect("reply");
    assert_eq!(reply["type"], "subscribed");
    let (_, status) = hub.get("/ws/status").await;
    assert_eq!(status["subscriptions"], 4);
    assert_eq!(status["topics"]["a"], 1);

    let reply = client
        .request("unsubscribe", json!({"topics": ["a", "b"]}), WAIT)
        .await
        .expect("reply");
    assert_eq!(reply["type"], "unsubscribed");
    assert_eq!(reply["payload"]["unsubscribed"], json!(["a", "b"]));
    let (_, status) = hub.get("/ws/status").await;
    assert_eq!(status["subscriptions"], 2);
}

#[tokio::test]
async fn unsubscribed_topics_receive_nothing_more() {
    let hub = Hub::start("").await;
    let (mut client, _) = hub.connect("").await;
    client
        .request("subscribe", json!({"topics": ["x", "y"]}), WAIT)
        .await
        .expect("reply");
    client
        .request("unsubscribe", json!({"topic": "x"}), WAIT)
        .await
        .expect("reply");
    hub.publish("x", "e", json!({"n": 1})).await;
    hub.publish("y", "e", json!({"n": 2})).await;
    // Per-topic order plus one publisher: if "x" had been delivered it would come first.
    let event = client.next_of_type("e", WAIT).await.expect("event");
    assert_eq!(event["topic"], "y");
}

#[tokio::test]
async fn subscribe_errors_when_nothing_could_be_subscribed() {
    let hub = Hub::start("topics:\n  - { match: \"known/*\", subscribe: [anonymous], publish: [] }\n  - { match: secret, subscribe: [admin], publish: [admin] }\n").await;
    let (mut client, _) = hub.connect("").await;
    let reply = client
        .request("subscribe", json!({"topic": "secret"}), WAIT)
        .await
        .expect("reply");
    assert_eq!(error_code(&reply), Some("forbidden"));
    let reply = client
        .request("subscribe", json!({"topic": "unknown"}), WAIT)
        .await
        .expect("reply");
    assert_eq!(error_code(&reply), Some("unknown_channel"));
    let reply = client
        .request("subscribe", json!({"topic": "no spaces"}), WAIT)
        .await
        .expect("reply");
    assert_eq!(error_code(&reply), Some("invalid_message"));
    let long = "t".repeat(256);
    let reply = client
        .request("subscribe", json!({"topic": long}), WAIT)
        .await
        .expect("reply");
    assert_eq!(error_code(&reply), Some("invalid_message"));
    let reply = client
        .request("subscribe", json!({"topic": "known/x"}), WAIT)
        .await
        .expect("reply");
    assert_eq!(reply["type"], "subscribed");
    let reply = client
        .request("publish", json!({"topic": "known/x"}), WAIT)
        .await
        .expect("reply");
    assert_eq!(error_code(&reply), Some("forbidden"));
    let reply = client
        .request("publish", json!({"topic": "unknown"}), WAIT)
        .await
        .expect("reply");
    assert_eq!(error_code(&reply), Some("unknown_channel"));
}

#[tokio::test]
async fn too_many_topics_in_one_request_subscribes_nothing() {
    let hub = Hub::start("").await;
    let (mut client, _) = hub.connect("").await;
    let topics: Vec<String> = (0..101).map(|i| format!("t{i}")).collect();
    let reply = client
        .request("subscribe", json!({"topics": topics}), WAIT)
        .await
        .expect("reply");
    assert_eq!(error_code(&reply), Some("invalid_message"));
    let (_, status) = hub.get("/ws/status").await;
    assert_eq!(status["subscriptions"], 0);
}

#[tokio::test]
async fn subscription_limit_denies_with_too_many_subscriptions() {
    let hub = Hub::start("websocket:\n  max_subscriptions_per_connection: 2\n").await;
    let (mut client, _) = hub.connect("").await;
    let reply = client
        .request("subscribe", json!({"topics": ["a", "b", "c"]}), WAIT)
        .await
        .expect("reply");
    assert_eq!(reply["payload"]["subscribed"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        reply["payload"]["denied"],
        json!([{"topic": "c", "code": "too_many_subscriptions"}])
    );
    let reply = client
        .request("subscribe", json!({"topic": "d"}), WAIT)
        .await
        .expect("reply");
    assert_eq!(error_code(&reply), Some("too_many_subscriptions"));
}

#[tokio::test]
async fn ping_pong_and_exactly_one_reply_per_id() {
    let hub = Hub::start("").await;
    let (mut client, _) = hub.connect("").await;
    client
        .send_json(&json!({"id": "p1", "type": "ping"}))
        .await
        .expect("send");
    client
        .send_json(&json!({"id": 42, "type": "ping"}))
        .await
        .expect("send");
    client.send_json(&json!({"type": "ping"})).await.expect("send");
    client
        .send_json(&json!({"id": "last", "type": "ping"}))
        .await
        .expect("send");
    let mut replies = Vec::new();
    loop {
        let reply = next_json(&mut client).await;
        let done = reply["id"] == "last";
        replies.push(reply);
        if done {
            break;
        }
    }
    assert_eq!(replies.len(), 4, "one reply per request: {replies:?}");
    assert!(replies.iter().all(|r| r["type"] == "pong"));
    assert_eq!(replies[0]["id"], "p1");
    assert_eq!(replies[1]["id"], 42, "numeric ids are echoed as numbers");
    assert!(
        replies[2].get("id").is_none(),
        "no id on the reply to a request without one"
    );
}

#[tokio::test]
async fn malformed_frames_get_invalid_message_and_the_connection_stays_open() {
    let hub = Hub::start("").await;
    let (mut client, _) = hub.connect("").await;
    for bad in [
        "not json",
        "[1,2,3]",
        "42",
        "\"text\"",
        "{\"id\":\"x\"}",
        "{\"type\":7}",
        "{\"type\":\"subscribe\",\"topic\":5}",
    ] {
        client.send_text(bad).await.expect("send");
        let reply = next_json(&mut client).await;
        assert_eq!(error_code(&reply), Some("invalid_message"), "for {bad}: {reply}");
        assert!(reply["payload"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let reply = client.request("ping", json!({}), WAIT).await.expect("still open");
    assert_eq!(reply["type"], "pong");
}

#[tokio::test]
async fn field_errors_keep_the_request_id() {
    let hub = Hub::start("").await;
    let (mut client, _) = hub.connect("").await;
    client
        .send_json(&json!({"id": "s1", "type": "subscribe"}))
        .await
        .expect("send");
    let reply = next_json(&mut client).await;
    assert_eq!(
        (reply["id"].as_str(), error_code(&reply)),
        (Some("s1"), Some("invalid_message"))
    );
    let long_id = "i".repeat(65);
    client
        .send_json(&json!({"id": long_id, "type": "ping"}))
        .await
        .expect("send");
    let reply = next_json(&mut client).await;
    assert_eq!(error_code(&reply), Some("invalid_message"));
    client
        .send_json(&json!({"id": "e1", "type": "publish", "topic": "t", "event": "subscribed"}))
        .await
        .expect("send");
    let reply = next_json(&mut client).await;
    assert_eq!(
        (reply["id"].as_str(), error_code(&reply)),
        (Some("e1"), Some("invalid_message"))
    );
    client
        .send_json(&json!({"id": "e2", "type": "publish", "topic": "t", "event": "connection.fake"}))
        .await
        .expect("send");
    assert_eq!(error_code(&next_json(&mut client).await), Some("invalid_message"));
    client
        .send_json(&json!({"id": "e3", "type": "publish", "topic": "t", "payload": [1]}))
        .await
        .expect("send");
    assert_eq!(error_code(&next_json(&mut client).await), Some("invalid_message"));
}

#[tokio::test]
async fn unknown_types_get_unknown_type() {
    let hub = Hub::start("").await;
    let (mut client, _) = hub.connect("").await;
    let reply = client
        .request("token.create", json!({"payload": {"name": "x"}}), WAIT)
        .await
        .expect("reply");
    assert_eq!(error_code(&reply), Some("unknown_type"));
}

#[tokio::test]
async fn history_returns_events_oldest_first() {
    let hub = Hub::start("").await;
    for n in 1..=5 {
        hub.publish("feed", "item", json!({"n": n})).await;
    }
    let (mut client, _) = hub.connect("").await;
    let reply = client
        .request("history", json!({"topic": "feed", "payload": {"limit": 2}}), WAIT)
        .await
        .expect("reply");
    assert_eq!(reply["type"], "history");
    assert_eq!(reply["payload"]["offset"], 5);
    let ns: Vec<i64> = reply["payload"]["messages"]
        .as_array()
        .expect("list")
        .iter()
        .map(|m| m["payload"]["n"].as_i64().expect("n"))
        .collect();
    assert_eq!(ns, vec![4, 5]);
    let reply = client
        .request(
            "history",
            json!({"topic": "feed", "payload": {"since": 1, "limit": 2}}),
            WAIT,
        )
        .await
        .expect("reply");
    let offsets: Vec<u64> = reply["payload"]["messages"]
        .as_array()
        .expect("list")
        .iter()
        .map(|m| m["offset"].as_u64().expect("offset"))
        .collect();
    assert_eq!(offsets, vec![2, 3]);
}

#[tokio::test]
async fn binary_frames_are_refused_politely() {
    let hub = Hub::start("").await;
    let (mut client, _) = hub.connect("").await;
    client.send_binary(vec![0, 1, 2]).await.expect("send");
    assert_eq!(error_code(&next_json(&mut client).await), Some("invalid_message"));
    assert!(matches!(client.request("ping", json!({}), WAIT).await, Ok(ref v) if v["type"] == "pong"));
}

#[tokio::test]
async fn client_close_is_answered_and_cleans_up() {
    let hub = Hub::start("").await;
    let (mut client, _) = hub.connect("").await;
    client
        .request("subscribe", json!({"topic": "gone"}), WAIT)
        .await
        .expect("reply");
    client.close(1000).await.expect("close");
    assert_eq!(client.closed(WAIT).await.expect("close answered"), Some(1000));
    // The registry forgets the subscriber once the session ends.
    common::eventually("cleanup after close", || async {
        let (_, status) = hub.get("/ws/status").await;
        status["subscriptions"] == 0 && status["connections"] == 0
    })
    .await;
}

#[tokio::test]
async fn an_unusable_reconnection_token_gives_a_fresh_session_and_says_why() {
    let hub = Hub::start("").await;
    let (_, established) = hub.connect("reconnection_token=whatever").await;
    assert_eq!(established["payload"]["resumed"], false);
    assert_eq!(established["payload"]["resume_error"], "invalid_reconnection_token");
    let (_, plain) = hub.connect("").await;
    assert!(plain["payload"].get("resume_error").is_none());
}

#[tokio::test]
async fn unsubscribe_with_a_bad_name_changes_nothing() {
    let hub = Hub::start("").await;
    let (mut client, _) = hub.connect("").await;
    client
        .request("subscribe", json!({"topics": ["keep1", "keep2"]}), WAIT)
        .await
        .expect("reply");
    let reply = client
        .request("unsubscribe", json!({"topics": ["keep1", "bad name"]}), WAIT)
        .await
        .expect("reply");
    assert_eq!(error_code(&reply), Some("invalid_message"));
    let (_, status) = hub.get("/ws/status").await;
    assert_eq!(status["topics"]["keep1"], 1, "keep1 still subscribed: {status}");
}
