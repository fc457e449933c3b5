//! The server API for backends (CONTRACT §11) through the real binary: publish, channels,
//! history, disconnect, its authentication, and the OpenAPI document that describes it.

mod common;

use common::{Hub, SECRET, WAIT, assert_api_error, token, with_secret};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use wshub_client::Client;

/// A config whose topic rules have no catch-all, so some names match no rule.
const NO_CATCH_ALL: &str = "topics:
  - { match: news, subscribe: [anonymous, admin], publish: [admin] }
  - { match: \"room/*\", subscribe: [anonymous, admin], publish: [admin] }
";

async fn subscribe(client: &mut Client, topic: &str) -> Value {
    let reply = client
        .request("subscribe", json!({"topic": topic}), WAIT)
        .await
        .expect("subscribe reply");
    assert_eq!(reply["type"], "subscribed", "subscribe {topic}: {reply}");
    reply
}

/// The entry for `topic` in `GET /api/channels`, if listed.
async fn listed_channel(hub: &Hub, topic: &str) -> Option<Value> {
    let (status, body) = hub.get("/api/channels").await;
    assert_eq!(status, 200, "GET /api/channels: {body}");
    body["channels"]
        .as_array()
        .expect("channels is an array")
        .iter()
        .find(|c| c["topic"] == topic)
        .cloned()
}

#[tokio::test]
async fn publish_one_topic_answers_position_and_delivers_as_server() {
    let hub = Hub::start("").await;
    let (mut sub, _) = hub.connect("").await;
    let subscribed = subscribe(&mut sub, "news").await;
    let epoch = subscribed["payload"]["subscribed"][0]["epoch"].clone();

    let mut last = 0;
    for n in 1..=3 {
        let (status, answer) = hub
            .post(
                "/api/publish",
                &json!({"topic": "news", "event": "headline", "payload": {"n": n}}),
            )
            .await;
        assert_eq!(status, 200, "publish: {answer}");
        assert_eq!(answer["topic"], "news");
        assert_eq!(answer["epoch"], epoch, "the subscriber's epoch");
        let offset = answer["offset"].as_u64().expect("offset is a number");
        assert!(offset > last, "offsets increase: {offset} after {last}");
        last = offset;

        let event = sub.next_of_type("headline", WAIT).await.expect("event");
        assert_eq!(event["topic"], "news");
        assert_eq!(event["payload"], json!({"n": n}));
        assert_eq!(event["sender_id"], "server");
        assert_eq!(event["offset"], offset);
        assert_eq!(event["epoch"], epoch);
        assert!(event["id"].as_str().is_some_and(|id| id.starts_with("evt_")));
        assert!(event["timestamp"].as_u64().is_some());
    }
    assert_eq!(last, 3, "a fresh topic's offsets start at 1");
}

#[tokio::test]
async fn publish_defaults_to_event_message_and_empty_payload() {
    let hub = Hub::start("").await;
    let (mut sub, _) = hub.connect("").await;
    subscribe(&mut sub, "news").await;
    let (status, answer) = hub.post("/api/publish", &json!({"topic": "news"})).await;
    assert_eq!(status, 200, "{answer}");
    let event = sub.next_of_type("message", WAIT).await.expect("default event name");
    assert_eq!(event["topic"], "news");
    assert_eq!(event["payload"], json!({}));
    assert_eq!(event["offset"], answer["offset"]);
}

#[tokio::test]
async fn publish_many_topics_answers_results_and_reaches_each_subscriber() {
    let hub = Hub::start("").await;
    let (mut a, _) = hub.connect("").await;
    let (mut b, _) = hub.connect("").await;
    subscribe(&mut a, "alpha").await;
    subscribe(&mut b, "beta/1").await;
    hub.publish("beta/1", "warmup", json!({})).await;
    b.next_of_type("warmup", WAIT).await.expect("warm-up event");

    let (status, answer) = hub
        .post(
            "/api/publish",
            &json!({"topics": ["alpha", "beta/1"], "event": "tick", "payload": {"v": 7}}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let results = answer["results"].as_array().expect("results array");
    assert_eq!(results.len(), 2, "{answer}");
    assert_eq!(results[0]["topic"], "alpha");
    assert_eq!(results[0]["offset"], 1);
    assert_eq!(results[1]["topic"], "beta/1");
    assert_eq!(results[1]["offset"], 2);
    for r in results {
        assert!(r["epoch"].as_str().is_some_and(|e| !e.is_empty()), "{r}");
    }

    for (client, result) in [(&mut a, &results[0]), (&mut b, &results[1])] {
        let event = client.next_of_type("tick", WAIT).await.expect("event");
        assert_eq!(event["topic"], result["topic"]);
        assert_eq!(event["offset"], result["offset"]);
        assert_eq!(event["epoch"], result["epoch"]);
        assert_eq!(event["payload"], json!({"v": 7}));
        assert_eq!(event["sender_id"], "server");
    }
}

#[tokio::test]
async fn publish_rejects_malformed_requests_with_400() {
    let hub = Hub::start("").await;
    let answer = hub.post_raw("/api/publish", "application/json", "{not json").await;
    assert_api_error("bad JSON", &answer, 400);
    let answer = hub.post_raw("/api/publish", "application/json", "[1, 2]").await;
    assert_api_error("JSON that is not an object", &answer, 400);

    let cases = [
        ("missing topic", json!({"event": "x", "payload": {}})),
        ("payload array", json!({"topic": "news", "payload": [1, 2]})),
        ("payload string", json!({"topic": "news", "payload": "text"})),
        ("payload number", json!({"topic": "news", "payload": 5})),
        ("topic with a space", json!({"topic": "bad topic!"})),
        ("topic too long", json!({"topic": "t".repeat(256)})),
        ("invalid name in topics", json!({"topics": ["news", "bad topic!"]})),
        (
            "event named like a reply",
            json!({"topic": "news", "event": "subscribed"}),
        ),
        ("event named error", json!({"topic": "news", "event": "error"})),
        (
            "event in the connection namespace",
            json!({"topic": "news", "event": "connection.opened"}),
        ),
    ];
    for (what, body) in cases {
        let answer = hub.post("/api/publish", &body).await;
        assert_api_error(what, &answer, 400);
    }
    // Nothing above was published.
    let (status, channel) = hub.get("/api/channels/news").await;
    assert_eq!(status, 200, "{channel}");
    assert_eq!(channel["offset"], 0, "rejected publishes left no history: {channel}");
}

#[tokio::test]
async fn publish_to_a_topic_matching_no_rule_is_404() {
    let hub = Hub::start(NO_CATCH_ALL).await;
    let answer = hub.post("/api/publish", &json!({"topic": "elsewhere"})).await;
    assert_api_error("topic matching no rule", &answer, 404);
    let answer = hub
        .post("/api/publish", &json!({"topics": ["news", "elsewhere"]}))
        .await;
    assert_api_error("one of the topics matches no rule", &answer, 404);
    let (status, body) = hub.post("/api/publish", &json!({"topic": "room/7"})).await;
    assert_eq!(status, 200, "a topic matching a rule: {body}");
    let answer = hub.get("/api/history/elsewhere").await;
    assert_api_error("history of a topic matching no rule", &answer, 404);
}

#[tokio::test]
async fn publish_body_over_max_message_size_is_413() {
    let hub = Hub::start("websocket:\n  max_message_size: 1KiB\n").await;
    let body = json!({"topic": "news", "payload": {"blob": "x".repeat(2048)}}).to_string();
    let answer = hub.post_raw("/api/publish", "application/json", body).await;
    assert_api_error("2 KiB body with a 1 KiB limit", &answer, 413);
    // A body under the limit whose event (with id, offset, epoch, timestamp, sender)
    // would exceed it is refused too: no subscriber could be sent that event.
    let body = json!({"topic": "news", "payload": {"blob": "x".repeat(900)}}).to_string();
    assert!(body.len() < 1024);
    let answer = hub.post_raw("/api/publish", "application/json", body).await;
    assert_api_error("900-byte body whose event exceeds 1 KiB", &answer, 413);
    // Comfortably under: the limit is the configured one.
    let body = json!({"topic": "news", "payload": {"blob": "x".repeat(600)}}).to_string();
    let (status, answer) = hub.post_raw("/api/publish", "application/json", body).await;
    assert_eq!(status, 200, "600-byte payload: {answer}");
}

#[tokio::test]
async fn channels_lists_topics_with_subscribers_or_history() {
    let hub = Hub::start("").await;
    let (mut client, _) = hub.connect("").await;
    let reply = subscribe(&mut client, "watched").await;
    let watched_epoch = reply["payload"]["subscribed"][0]["epoch"].clone();
    subscribe(&mut client, "busy").await;
    hub.publish("busy", "e", json!({})).await;
    hub.publish("logged", "e", json!({})).await;
    let last = hub.publish("logged", "e", json!({})).await;

    let watched = listed_channel(&hub, "watched").await.expect("subscribed topic listed");
    assert_eq!(
        watched,
        json!({"topic": "watched", "subscribers": 1, "offset": 0, "epoch": watched_epoch})
    );
    let busy = listed_channel(&hub, "busy").await.expect("topic with both listed");
    assert_eq!(busy["subscribers"], 1);
    assert_eq!(busy["offset"], 1);
    let logged = listed_channel(&hub, "logged").await.expect("topic with history listed");
    assert_eq!(
        logged,
        json!({"topic": "logged", "subscribers": 0, "offset": 2, "epoch": last["epoch"]})
    );
    assert_eq!(
        listed_channel(&hub, "never").await,
        None,
        "an unused topic is not listed"
    );

    // A topic with neither subscribers nor history leaves the list.
    drop(client);
    common::eventually("the subscriber to be gone", || async {
        hub.get("/ws/status").await.1["subscriptions"] == 0
    })
    .await;
    let watched = listed_channel(&hub, "watched").await;
    assert_eq!(watched, None, "no subscribers and no history: not listed");
    let logged = listed_channel(&hub, "logged").await.expect("history keeps it listed");
    assert_eq!(logged["subscribers"], 0);
}

#[tokio::test]
async fn one_channel_by_name_including_slashes_and_unused_topics() {
    let hub = Hub::start("").await;
    let (mut client, _) = hub.connect("").await;
    subscribe(&mut client, "a/b").await;
    let published = hub.publish("a/b", "e", json!({})).await;
    let (status, channel) = hub.get("/api/channels/a/b").await;
    assert_eq!(status, 200, "{channel}");
    assert_eq!(
        channel,
        json!({"topic": "a/b", "subscribers": 1, "offset": 1, "epoch": published["epoch"]})
    );
    assert_eq!(
        Some(channel),
        listed_channel(&hub, "a/b").await,
        "same object as in the list"
    );

    let (status, unused) = hub.get("/api/channels/unused").await;
    assert_eq!(status, 200, "{unused}");
    assert_eq!(unused["topic"], "unused");
    assert_eq!(unused["subscribers"], 0);
    assert_eq!(unused["offset"], 0);
    assert!(unused["epoch"].is_string(), "{unused}");

    // A topic with subscribers and no history: the same object the list shows.
    subscribe(&mut client, "quiet").await;
    let (status, quiet) = hub.get("/api/channels/quiet").await;
    assert_eq!(status, 200, "{quiet}");
    assert_eq!(
        Some(quiet),
        listed_channel(&hub, "quiet").await,
        "same object as in the list"
    );

    let answer = hub.get("/api/channels/bad%20topic!").await;
    assert_api_error("invalid topic name", &answer, 400);
}

#[tokio::test]
async fn history_pages_oldest_first_with_since_and_limit() {
    let hub = Hub::start("").await;
    let mut epoch = Value::Null;
    for n in 1..=5 {
        epoch = hub.publish("h/t", "step", json!({"n": n})).await["epoch"].clone();
    }
    let offsets = |page: &Value| -> Vec<u64> {
        page["messages"]
            .as_array()
            .expect("messages array")
            .iter()
            .map(|m| m["offset"].as_u64().expect("offset"))
            .collect()
    };

    let (status, all) = hub.get("/api/history/h/t").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["epoch"], epoch);
    assert_eq!(all["offset"], 5);
    assert_eq!(offsets(&all), vec![1, 2, 3, 4, 5]);
    let first = &all["messages"][0];
    assert_eq!(first["type"], "step");
    assert_eq!(first["topic"], "h/t");
    assert_eq!(first["payload"], json!({"n": 1}));
    assert_eq!(first["epoch"], epoch);
    assert_eq!(first["sender_id"], "server");
    assert!(first["id"].as_str().is_some_and(|id| id.starts_with("evt_")));
    assert!(first["timestamp"].as_u64().is_some());

    let (_, page) = hub.get("/api/history/h/t?since=1&limit=2").await;
    assert_eq!(offsets(&page), vec![2, 3], "the oldest `limit` after `since`");
    assert_eq!(page["offset"], 5, "offset is the topic's latest");
    let (_, page) = hub.get("/api/history/h/t?limit=2").await;
    assert_eq!(
        offsets(&page),
        vec![4, 5],
        "without since: the newest `limit`, oldest first"
    );
    let (_, page) = hub.get("/api/history/h/t?since=5").await;
    assert_eq!(offsets(&page), Vec::<u64>::new());

    let (status, empty) = hub.get("/api/history/nothing-here").await;
    assert_eq!(status, 200, "{empty}");
    assert_eq!(empty["offset"], 0);
    assert_eq!(empty["messages"], json!([]));
    let answer = hub.get("/api/history/bad%20topic!").await;
    assert_api_error("invalid topic name", &answer, 400);
}

#[tokio::test]
async fn disconnect_by_user_closes_all_their_connections_with_the_code() {
    let hub = Hub::start(&with_secret("")).await;
    let alice = token("alice", "viewer", 3600);
    let (mut a1, _) = hub.connect_as(&alice).await;
    let (mut a2, _) = hub.connect_as(&alice).await;
    let (mut bob, _) = hub.connect_as(&token("bob", "viewer", 3600)).await;

    let (status, answer) = hub
        .post(
            "/api/disconnect",
            &json!({"user": "alice", "code": 4100, "reason": "account suspended"}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({"disconnected": 2}));
    for client in [&mut a1, &mut a2] {
        assert_eq!(client.closed(WAIT).await.expect("closed"), Some(4100));
    }
    let reply = bob.request("ping", json!({}), WAIT).await.expect("bob stays connected");
    assert_eq!(reply["type"], "pong");

    // Default code 1000.
    let (mut a3, _) = hub.connect_as(&alice).await;
    let (status, answer) = hub.post("/api/disconnect", &json!({"user": "alice"})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({"disconnected": 1}));
    assert_eq!(a3.closed(WAIT).await.expect("closed"), Some(1000));

    let (status, answer) = hub.post("/api/disconnect", &json!({"user": "nobody"})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({"disconnected": 0}));
}

#[tokio::test]
async fn disconnect_by_connection_id_closes_only_that_connection() {
    let hub = Hub::start("").await;
    let (mut target, established) = hub.connect("").await;
    let (mut other, _) = hub.connect("").await;
    let id = established["payload"]["connection_id"].as_str().expect("connection_id");
    let (status, answer) = hub.post("/api/disconnect", &json!({"connection_id": id})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({"disconnected": 1}));
    assert_eq!(target.closed(WAIT).await.expect("closed"), Some(1000));
    let reply = other.request("ping", json!({}), WAIT).await.expect("still connected");
    assert_eq!(reply["type"], "pong");
}

#[tokio::test]
async fn disconnect_rejects_missing_target_and_bad_close_codes() {
    let hub = Hub::start("").await;
    let (mut client, established) = hub.connect("").await;
    let id = established["payload"]["connection_id"].clone();
    let answer = hub.post("/api/disconnect", &json!({"code": 4100})).await;
    assert_api_error("neither user nor connection_id", &answer, 400);
    for code in [1005, 1006, 1015, 999, 5000] {
        let answer = hub
            .post("/api/disconnect", &json!({"connection_id": id, "code": code}))
            .await;
        assert_api_error(&format!("close code {code}"), &answer, 400);
    }
    let reply = client.request("ping", json!({}), WAIT).await.expect("not disconnected");
    assert_eq!(reply["type"], "pong");
}

#[tokio::test]
async fn api_keys_and_admin_tokens_authenticate_every_route() {
    let hub = Hub::start(&format!(
        "auth:\n  api_keys: [k1]\n  jwt:\n    hs256_secret: {SECRET}\n"
    ))
    .await;
    let admin = format!("Bearer {}", token("ops", "admin", 3600));
    let viewer = format!("Bearer {}", token("v", "viewer", 3600));
    let expired = format!("Bearer {}", token("ops", "admin", -3600));
    let routes: [(&str, &str, Option<Value>); 5] = [
        ("POST", "/api/publish", Some(json!({"topic": "news"}))),
        ("GET", "/api/channels", None),
        ("GET", "/api/channels/news", None),
        ("GET", "/api/history/news", None),
        ("POST", "/api/disconnect", Some(json!({"user": "nobody"}))),
    ];
    for (method, path, body) in routes {
        let call = |headers: Vec<(&'static str, String)>| {
            let body = body.as_ref().map(|b| ("application/json", b.to_string().into_bytes()));
            let hub = &hub;
            async move {
                let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                hub.send(method, path, &headers, body).await
            }
        };
        let what = |case: &str| format!("{method} {path} {case}");
        assert_api_error(&what("without Authorization"), &call(vec![]).await, 401);
        let answer = call(vec![("authorization", "Bearer k2".into())]).await;
        assert_api_error(&what("with a wrong key"), &answer, 401);
        let answer = call(vec![("authorization", expired.clone())]).await;
        assert_api_error(&what("with an expired admin token"), &answer, 401);
        let answer = call(vec![("authorization", viewer.clone())]).await;
        assert_api_error(&what("with a viewer token"), &answer, 403);
        let (status, body) = call(vec![("authorization", "Bearer k1".into())]).await;
        assert_eq!(status, 200, "{} {body}", what("with the key"));
        let (status, body) = call(vec![("authorization", admin.clone())]).await;
        assert_eq!(status, 200, "{} {body}", what("with an admin token"));
        // With a key configured, a proxy in front is fine.
        let (status, body) = call(vec![
            ("authorization", "Bearer k1".into()),
            ("x-forwarded-for", "203.0.113.9".into()),
        ])
        .await;
        assert_eq!(status, 200, "{} {body}", what("with the key through a proxy"));
    }
}

#[tokio::test]
async fn without_api_keys_only_direct_loopback_callers_are_served() {
    let hub = Hub::start("").await;
    let (status, body) = hub.get("/api/channels").await;
    assert_eq!(status, 200, "plain loopback request: {body}");
    let (status, body) = hub.post("/api/publish", &json!({"topic": "news"})).await;
    assert_eq!(status, 200, "plain loopback publish: {body}");

    let proxied = [
        ("x-forwarded-for", "203.0.113.9"),
        ("forwarded", "for=203.0.113.9;proto=https"),
    ];
    for header in proxied {
        let answer = hub.get_with("/api/channels", &[header]).await;
        assert_api_error(&format!("GET with {}", header.0), &answer, 403);
        let answer = hub
            .post_with("/api/publish", &json!({"topic": "news"}), &[header])
            .await;
        assert_api_error(&format!("POST with {}", header.0), &answer, 403);
    }
    common::eventually("the log to say the API is loopback-only", || async {
        hub.log_text().contains("api_keys")
    })
    .await;
}

/// The API routes of CONTRACT §11 with a probe path, beyond the five every build serves.
const OPTIONAL_ROUTES: &[(&str, &str, &str)] = &[
    ("post", "/api/publish/{topic}", "/api/publish/probe"),
    ("get", "/api/presence/{topic}", "/api/presence/probe"),
];

const HTTP_METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options", "trace"];

/// Every `$ref` in `value` that does not resolve inside `doc`.
fn dangling_refs(doc: &Value, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "$ref" {
                    let target = v.as_str().unwrap_or_default();
                    let pointer = target.strip_prefix('#').unwrap_or("!");
                    if doc.pointer(pointer).is_none() {
                        out.push(target.to_owned());
                    }
                } else {
                    dangling_refs(doc, v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| dangling_refs(doc, v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn openapi_document_describes_exactly_the_served_api() {
    let hub = Hub::start("").await;
    let (status, doc) = hub.get("/api/openapi.json").await;
    assert_eq!(status, 200, "{doc}");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "an OpenAPI 3 document: {}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let mut dangling = Vec::new();
    dangling_refs(&doc, &doc, &mut dangling);
    assert_eq!(dangling, Vec::<String>::new(), "every $ref resolves");

    let documented: BTreeMap<String, BTreeSet<String>> = doc["paths"]
        .as_object()
        .expect("paths object")
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .expect("path item")
                .keys()
                .filter(|k| HTTP_METHODS.contains(&k.as_str()))
                .cloned()
                .collect();
            (path.clone(), methods)
        })
        .collect();

    let mut served: BTreeMap<String, BTreeSet<String>> = [
        ("/api/publish", "post"),
        ("/api/channels", "get"),
        ("/api/channels/{topic}", "get"),
        ("/api/history/{topic}", "get"),
        ("/api/disconnect", "post"),
    ]
    .into_iter()
    .map(|(p, m)| (p.to_owned(), BTreeSet::from([m.to_owned()])))
    .collect();
    // A path the router knows answers a wrong method with 405; an unknown one with 404.
    for (method, path, probe) in OPTIONAL_ROUTES {
        let (status, _) = hub.send("DELETE", probe, &[], None).await;
        if status == 405 {
            served.insert((*path).to_owned(), BTreeSet::from([(*method).to_owned()]));
        }
    }
    assert_eq!(documented, served, "documented paths and methods = served ones");

    // Each documented operation answers (not 404/405) when called.
    for (path, methods) in &documented {
        let concrete = path.replace("{topic}", "probe");
        for method in methods {
            let operation = &doc["paths"][path][method];
            let content = &operation["requestBody"]["content"];
            let body = if content.get("application/json").is_some() {
                let sample = match path.as_str() {
                    "/api/publish" => json!({"topic": "probe"}),
                    "/api/disconnect" => json!({"user": "nobody"}),
                    _ => json!({}),
                };
                Some(("application/json", sample.to_string().into_bytes()))
            } else if content.get("application/octet-stream").is_some() {
                Some(("application/octet-stream", b"probe".to_vec()))
            } else {
                None
            };
            let (status, answer) = hub.send(&method.to_uppercase(), &concrete, &[], body).await;
            // A 404 from the operation itself (e.g. presence not enabled on the probe topic)
            // names its reason; only the router's own 404 means the route is missing.
            let route_missing = status == 404 && answer["error"]["code"] == "not_found";
            assert!(
                !route_missing && status != 405,
                "{method} {concrete} is documented but answers {status}: {answer}"
            );
        }
    }
}
