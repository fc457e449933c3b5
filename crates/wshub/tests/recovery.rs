//! History, recovery and reconnection tokens through the real binary: no event lost or
//! repeated across a drop, and an explicit answer when that cannot be promised.

mod common;

use common::{Hub, WAIT, error_code, next_json, token, with_secret};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::task::JoinHandle;
use wshub_client::{Client, Incoming};

/// Topics under `prop/` keep enough history for every round of the property test.
const PROPERTY_CONFIG: &str = "topics:\n  - { match: \"*\", subscribe: [anonymous, developer, admin], publish: [admin, developer], history: { size: 1000 } }\n";

/// A small deterministic generator: each round's timings follow from its seed, which a
/// failing assertion prints.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Publishes `{"n": 1..=count}` to `topic` through the HTTP API, pausing at random
/// between publishes so the subscriptions under test land at varied points.
fn spawn_publisher(base: String, topic: String, count: u64, seed: u64) -> JoinHandle<()> {
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut rng = Rng(seed | 1);
        for n in 1..=count {
            let body = json!({"topic": topic, "event": "tick", "payload": {"n": n}});
            let response = http
                .post(format!("{base}/api/publish"))
                .json(&body)
                .send()
                .await
                .expect("publish");
            assert_eq!(response.status(), 200);
            match rng.below(4) {
                0 => tokio::time::sleep(Duration::from_micros(rng.below(800))).await,
                1 => tokio::task::yield_now().await,
                _ => {}
            }
        }
    })
}

/// The next event on `topic` (anything else is a failure).
async fn next_event(client: &mut Client, topic: &str, context: &str) -> Value {
    let message = next_json(client).await;
    assert_eq!(message["topic"], topic, "{context}: expected an event, got {message}");
    assert!(message["offset"].is_u64(), "{context}: {message}");
    message
}

fn offset(event: &Value) -> u64 {
    event["offset"].as_u64().expect("offset")
}

/// Reads events until `last`, asserting they are exactly `from..=last` in order.
async fn expect_consecutive(client: &mut Client, topic: &str, from: u64, last: u64, context: &str) {
    for expected in from..=last {
        let event = next_event(client, topic, context).await;
        assert_eq!(offset(&event), expected, "{context}: gap, duplicate or disorder");
        assert_eq!(event["payload"]["n"], expected, "{context}: payload matches its offset");
    }
}

#[tokio::test]
async fn recovery_hand_over_is_exactly_once_while_events_are_published() {
    let hub = Hub::start(PROPERTY_CONFIG).await;
    const ROUNDS: u64 = 12;
    const EVENTS: u64 = 120;
    let base_seed = common::now() as u64;
    for round in 0..ROUNDS {
        let seed = base_seed.wrapping_mul(31).wrapping_add(round);
        let context = format!("round {round} (seed {seed})");
        let mut rng = Rng(seed | 1);
        let topic = format!("prop/{round}");

        let (mut first, _) = hub.connect("").await;
        let reply = first
            .request("subscribe", json!({"topic": topic}), WAIT)
            .await
            .expect("subscribed");
        let epoch = reply["payload"]["subscribed"][0]["epoch"].clone();
        let publisher = spawn_publisher(hub.url(""), topic.clone(), EVENTS, seed);

        // The first connection sees a prefix, then drops without a word.
        let seen = 1 + rng.below(EVENTS / 2);
        expect_consecutive(&mut first, &topic, 1, seen, &context).await;
        drop(first);
        for _ in 0..rng.below(20) {
            tokio::task::yield_now().await;
        }

        // A late plain subscriber: live events follow its reply's offset exactly.
        let (mut late, _) = hub.connect("").await;
        // The recovering one: the missed events right after `subscribed`, then live.
        let (mut back, _) = hub.connect("").await;
        late.send_json(&json!({"id": "s", "type": "subscribe", "topic": topic}))
            .await
            .expect("send");
        back.send_json(&json!({"id": "r", "type": "subscribe", "topic": topic,
            "payload": {"recover": {"epoch": epoch, "offset": seen}}}))
            .await
            .expect("send");

        let reply = next_json(&mut back).await;
        assert_eq!(
            reply["type"], "subscribed",
            "{context}: the reply comes before any event"
        );
        let entry = &reply["payload"]["subscribed"][0];
        assert_eq!(entry["recovered"], true, "{context}: {reply}");
        assert!(offset(entry) >= seen, "{context}: {reply}");
        expect_consecutive(&mut back, &topic, seen + 1, EVENTS, &context).await;

        let reply = next_json(&mut late).await;
        assert_eq!(
            reply["type"], "subscribed",
            "{context}: the reply comes before any event"
        );
        let start = offset(&reply["payload"]["subscribed"][0]);
        assert_eq!(reply["payload"]["subscribed"][0]["recovered"], false);
        expect_consecutive(&mut late, &topic, start + 1, EVENTS, &context).await;

        publisher.await.expect("publisher");
    }
}

#[tokio::test]
async fn recovery_that_history_cannot_serve_says_recovered_false() {
    let hub =
        Hub::start("topics:\n  - { match: \"*\", subscribe: [anonymous], publish: [], history: { size: 3 } }\n").await;
    for n in 1..=6 {
        hub.publish("short", "tick", json!({"n": n})).await;
    }
    let (mut client, _) = hub.connect("").await;
    let epoch = hub.get("/api/history/short").await.1["epoch"].clone();

    let reply = client
        .request(
            "subscribe",
            json!({"topic": "short", "payload": {"recover": {"epoch": epoch, "offset": 1}}}),
            WAIT,
        )
        .await
        .expect("reply");
    let entry = &reply["payload"]["subscribed"][0];
    assert_eq!(entry["recovered"], false, "offsets 2 and 3 are gone: {reply}");
    assert_eq!(entry["offset"], 6, "the topic's latest");

    // Within the kept window the same request recovers.
    let reply = client
        .request(
            "subscribe",
            json!({"topic": "short", "payload": {"recover": {"epoch": epoch, "offset": 4}}}),
            WAIT,
        )
        .await
        .expect("reply");
    assert_eq!(reply["payload"]["subscribed"][0]["recovered"], true, "{reply}");
    expect_consecutive(&mut client, "short", 5, 6, "recovery within history").await;

    // Another epoch never recovers.
    let reply = client
        .request(
            "subscribe",
            json!({"topic": "short", "payload": {"recover": {"epoch": "elsewhere", "offset": 5}}}),
            WAIT,
        )
        .await
        .expect("reply");
    assert_eq!(reply["payload"]["subscribed"][0]["recovered"], false);
}

async fn reconnection_token(client: &mut Client) -> String {
    let reply = client
        .request("get_reconnection_token", json!({}), WAIT)
        .await
        .expect("reply");
    assert_eq!(reply["type"], "reconnection_token", "{reply}");
    assert_eq!(reply["payload"]["expires_in"], 300);
    reply["payload"]["token"].as_str().expect("token").to_owned()
}

#[tokio::test]
async fn a_reconnection_token_restores_the_session_and_replays_what_was_missed() {
    let hub = Hub::start(&with_secret("")).await;
    let jwt = token("u42", "developer", 3600);
    let (mut old, established) = hub.connect(&format!("token={jwt}&client_id=desk-1")).await;
    let old_id = established["payload"]["connection_id"].clone();
    let reply = old
        .request("subscribe", json!({"topics": ["news", "sport"]}), WAIT)
        .await
        .expect("subscribed");
    assert_eq!(reply["payload"]["subscribed"].as_array().map(Vec::len), Some(2));
    hub.publish("news", "tick", json!({"n": 1})).await;
    expect_consecutive(&mut old, "news", 1, 1, "before the drop").await;

    let resume = reconnection_token(&mut old).await;
    // Delivered after the token was issued: the resumed session must not repeat it.
    hub.publish("news", "tick", json!({"n": 2})).await;
    expect_consecutive(&mut old, "news", 2, 2, "after the token").await;
    old.close(1000).await.expect("close");
    assert_eq!(old.closed(WAIT).await.expect("closed"), Some(1000));

    // Missed while away.
    for n in 3..=5 {
        hub.publish("news", "tick", json!({"n": n})).await;
    }
    hub.publish("sport", "tick", json!({"n": 1})).await;

    // Resumed: no access token needed, identity and client_id come back.
    let (mut new, established) = hub.connect(&format!("reconnection_token={resume}")).await;
    let p = &established["payload"];
    assert_eq!(p["resumed"], true, "{established}");
    assert_eq!(p["user"], "u42");
    assert_eq!(p["role"], "developer");
    assert_eq!(p["client_id"], "desk-1");
    assert_ne!(p["connection_id"], old_id, "a new connection");
    assert!(p.get("resume_error").is_none());
    let mut restored: Vec<(String, u64)> = p["subscriptions"]
        .as_array()
        .expect("subscriptions")
        .iter()
        .map(|s| (s["topic"].as_str().expect("topic").to_owned(), offset(s)))
        .collect();
    restored.sort();
    assert_eq!(restored, [("news".to_owned(), 5), ("sport".to_owned(), 1)]);

    // Exactly the missed events, then live ones; per topic in order.
    let mut news = Vec::new();
    let mut sport = Vec::new();
    while news.len() < 3 || sport.is_empty() {
        let event = next_json(&mut new).await;
        match event["topic"].as_str() {
            Some("news") => news.push(offset(&event)),
            Some("sport") => sport.push(offset(&event)),
            _ => panic!("unexpected message {event}"),
        }
    }
    assert_eq!((news, sport), (vec![3, 4, 5], vec![1]));
    hub.publish("news", "tick", json!({"n": 6})).await;
    expect_consecutive(&mut new, "news", 6, 6, "live after the replay").await;

    // The restored session keeps its identity's permissions: developers may publish.
    let reply = new
        .request("publish", json!({"topic": "news", "payload": {"n": 7}}), WAIT)
        .await
        .expect("reply");
    assert_eq!(reply["type"], "published", "{reply}");
}

#[tokio::test]
async fn a_reconnection_token_works_once_and_a_bad_one_says_why() {
    let hub = Hub::start("").await;
    let (mut old, _) = hub.connect("").await;
    old.request("subscribe", json!({"topic": "news"}), WAIT)
        .await
        .expect("subscribed");
    let resume = reconnection_token(&mut old).await;
    drop(old);

    let (_first, established) = hub.connect(&format!("reconnection_token={resume}")).await;
    assert_eq!(established["payload"]["resumed"], true, "{established}");

    let (_second, established) = hub.connect(&format!("reconnection_token={resume}")).await;
    let p = &established["payload"];
    assert_eq!(p["resumed"], false, "a used token gives a fresh session");
    assert_eq!(p["resume_error"], "invalid_reconnection_token");
    assert_eq!(p["subscriptions"], json!([]));

    // A tampered token: one character of the signature changed.
    let mut tampered = resume.clone();
    let last = tampered.pop().expect("non-empty");
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let (_third, established) = hub.connect(&format!("reconnection_token={tampered}")).await;
    assert_eq!(established["payload"]["resume_error"], "invalid_reconnection_token");
}

#[tokio::test]
async fn a_token_from_another_hub_is_refused() {
    let one = Hub::start("").await;
    let other = Hub::start("").await;
    let (mut client, _) = one.connect("").await;
    let resume = reconnection_token(&mut client).await;
    let (_fresh, established) = other.connect(&format!("reconnection_token={resume}")).await;
    assert_eq!(established["payload"]["resumed"], false, "signed with another key");
    assert_eq!(established["payload"]["resume_error"], "invalid_reconnection_token");
}

#[tokio::test]
async fn an_in_memory_hub_honours_only_its_own_tokens_even_with_a_shared_secret() {
    // With the in-memory broker, single use and revocations die with the process: a token
    // from another process (or from before a restart) cannot be checked, so it is refused.
    let config = "reconnection:\n  secret: 0123456789abcdef0123456789abcdef\n";
    let one = Hub::start(config).await;
    let other = Hub::start(config).await;
    let (mut client, _) = one.connect("").await;
    let resume = reconnection_token(&mut client).await;
    drop(client);
    let (_fresh, established) = other.connect(&format!("reconnection_token={resume}")).await;
    assert_eq!(established["payload"]["resumed"], false, "issued by another process");
    assert_eq!(established["payload"]["resume_error"], "invalid_reconnection_token");
    let (_back, established) = one.connect(&format!("reconnection_token={resume}")).await;
    assert_eq!(established["payload"]["resumed"], true, "the issuing hub honours it");
}

#[tokio::test]
async fn disconnecting_a_user_revokes_their_reconnection_tokens() {
    let hub = Hub::start(&with_secret("")).await;
    let (mut client, _) = hub.connect_as(&token("u7", "viewer", 3600)).await;
    let resume = reconnection_token(&mut client).await;
    let (status, body) = hub.post("/api/disconnect", &json!({"user": "u7"})).await;
    assert_eq!((status, &body["disconnected"]), (200, &json!(1)), "{body}");
    assert_eq!(client.closed(WAIT).await.expect("closed"), Some(1000));

    let (_fresh, established) = hub.connect(&format!("reconnection_token={resume}")).await;
    assert_eq!(established["payload"]["resumed"], false, "revoked");
    assert_eq!(established["payload"]["resume_error"], "invalid_reconnection_token");
    assert_eq!(established["payload"]["user"], Value::Null, "a fresh anonymous session");

    // Tokens issued after the revocation work.
    let (mut again, _) = hub.connect_as(&token("u7", "viewer", 3600)).await;
    let resume = reconnection_token(&mut again).await;
    drop(again);
    let (_back, established) = hub.connect(&format!("reconnection_token={resume}")).await;
    assert_eq!(established["payload"]["resumed"], true, "{established}");
}

#[tokio::test]
async fn an_access_token_for_another_user_does_not_resume() {
    let hub = Hub::start(&with_secret("")).await;
    let (mut client, _) = hub.connect_as(&token("alice", "viewer", 3600)).await;
    let resume = reconnection_token(&mut client).await;
    drop(client);
    let bob = token("bob", "viewer", 3600);
    let (_c, established) = hub.connect(&format!("token={bob}&reconnection_token={resume}")).await;
    assert_eq!(established["payload"]["resumed"], false);
    assert_eq!(established["payload"]["user"], "bob");
    // Alice's token was not spent by the refused attempt.
    let (_c, established) = hub.connect(&format!("reconnection_token={resume}")).await;
    assert_eq!(established["payload"]["resumed"], true);
    assert_eq!(established["payload"]["user"], "alice");
}

#[tokio::test]
async fn a_resumed_session_keeps_the_original_token_expiry() {
    let hub = Hub::start(&format!(
        "auth:\n  jwt:\n    hs256_secret: {}\n    leeway: 0s\n",
        common::SECRET
    ))
    .await;
    // Expires in 2 s: the resumed session must run on that clock, not a fresh one.
    let (mut client, _) = hub.connect_as(&token("short", "viewer", 2)).await;
    let resume = reconnection_token(&mut client).await;
    drop(client);
    let (mut back, established) = hub.connect(&format!("reconnection_token={resume}")).await;
    assert_eq!(established["payload"]["resumed"], true);
    let expired = back
        .next_of_type("error", Duration::from_secs(15))
        .await
        .expect("error");
    assert_eq!(error_code(&expired), Some("token_expired"), "{expired}");
}

/// Large events fill the socket of a client that stops reading; its queue overflows and
/// it is closed as a slow consumer. Resuming loses nothing history still holds.
#[tokio::test]
async fn a_slow_consumer_resumes_without_losing_events() {
    let hub = Hub::start(
        "websocket:\n  outbound_queue: 16\ntopics:\n  - { match: \"*\", subscribe: [anonymous], publish: [], history: { size: 1000 } }\n",
    )
    .await;
    const EVENTS: u64 = 120;
    let (mut stalled, _) = hub.connect("").await;
    stalled
        .request("subscribe", json!({"topic": "bulk"}), WAIT)
        .await
        .expect("subscribed");
    let resume = reconnection_token(&mut stalled).await;

    // 256 KiB each: kernel buffers hold a few dozen, then the outbox overflows.
    let filler = "x".repeat(256 * 1024);
    for n in 1..=EVENTS {
        hub.publish("bulk", "chunk", json!({"n": n, "data": filler})).await;
    }

    // Read what reached the old socket, then its close.
    let mut received = Vec::new();
    let code = loop {
        match stalled.next(WAIT).await.expect("frame") {
            Incoming::Json(event) => received.push(offset(&event)),
            Incoming::Closed(code) => break code,
            Incoming::Binary(_) => panic!("unexpected binary frame"),
        }
    };
    assert!(
        matches!(code, Some(4008) | None),
        "closed as a slow consumer, got {code:?}"
    );
    assert!((received.len() as u64) < EVENTS, "the consumer really fell behind");

    let (mut back, established) = hub.connect(&format!("reconnection_token={resume}")).await;
    assert_eq!(established["payload"]["resumed"], true, "{established}");
    assert_eq!(established["payload"]["subscriptions"][0]["recovered"], true);
    while received.last() != Some(&EVENTS) {
        let event = next_event(&mut back, "bulk", "replay").await;
        received.push(offset(&event));
    }
    // At most the batch that was cut off mid-write arrives twice (recognisable by offset);
    // nothing is missing and each connection's events are in order.
    let mut unique = received.clone();
    unique.dedup();
    let mut sorted = unique.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, (1..=EVENTS).collect::<Vec<_>>(), "every event arrived");
    assert!(
        received.len() - sorted.len() <= 256,
        "only the cut-off batch may repeat"
    );
}

#[tokio::test]
async fn presence_follows_subscribe_unsubscribe_and_disconnect() {
    let hub = Hub::start(&with_secret(
        "topics:\n  - { match: \"room/*\", subscribe: [viewer, anonymous], publish: [], presence: true }\n  - { match: \"*\", subscribe: [viewer, anonymous], publish: [] }\n",
    ))
    .await;
    let (mut alice, a) = hub
        .connect(&format!("token={}&client_id=phone", token("alice", "viewer", 3600)))
        .await;
    let (mut bob, _) = hub.connect("").await;
    for client in [&mut alice, &mut bob] {
        client
            .request("subscribe", json!({"topic": "room/1"}), WAIT)
            .await
            .expect("subscribed");
    }
    let reply = alice
        .request("presence", json!({"topic": "room/1"}), WAIT)
        .await
        .expect("reply");
    assert_eq!(reply["type"], "presence", "{reply}");
    assert_eq!(reply["payload"]["count"], 2);
    let clients = reply["payload"]["clients"].as_array().expect("clients");
    let alice_entry = clients
        .iter()
        .find(|c| c["connection_id"] == a["payload"]["connection_id"])
        .expect("alice listed");
    assert_eq!(alice_entry["user"], "alice");
    assert_eq!(alice_entry["client_id"], "phone");
    assert!(clients.iter().any(|c| c["user"].is_null()), "the anonymous one too");

    let (status, api) = hub.get("/api/presence/room/1").await;
    assert_eq!(status, 200);
    assert_eq!(api, reply["payload"], "the API answers the same payload");

    bob.request("unsubscribe", json!({"topic": "room/1"}), WAIT)
        .await
        .expect("reply");
    assert_eq!(hub.get("/api/presence/room/1").await.1["count"], 1);
    alice.close(1000).await.expect("close");
    common::eventually("the closed connection to leave presence", || async {
        hub.get("/api/presence/room/1").await.1["count"] == 0
    })
    .await;

    // Topics without presence, and readers without subscribe permission.
    let reply = bob
        .request("presence", json!({"topic": "lobby"}), WAIT)
        .await
        .expect("reply");
    assert_eq!(error_code(&reply), Some("unavailable"), "{reply}");
    common::assert_api_error("presence off", &hub.get("/api/presence/lobby").await, 404);
    let reply = bob
        .request("presence", json!({"topic": "bad topic"}), WAIT)
        .await
        .expect("reply");
    assert_eq!(error_code(&reply), Some("invalid_message"));
}

#[tokio::test]
async fn presence_needs_subscribe_permission() {
    let hub = Hub::start("topics:\n  - { match: \"vip\", subscribe: [admin], publish: [], presence: true }\n").await;
    let (mut client, _) = hub.connect("").await;
    let reply = client
        .request("presence", json!({"topic": "vip"}), WAIT)
        .await
        .expect("reply");
    assert_eq!(error_code(&reply), Some("forbidden"), "{reply}");
}

#[tokio::test]
async fn the_connections_topic_reports_opened_and_closed_to_admins() {
    let hub = Hub::start(&with_secret("")).await;
    let (mut admin, _) = hub.connect_as(&token("root", "admin", 3600)).await;
    admin
        .request("subscribe", json!({"topic": "connections"}), WAIT)
        .await
        .expect("subscribed");
    let (mut visitor, established) = hub.connect("client_id=visitor-1").await;
    let id = established["payload"]["connection_id"].clone();
    let opened = admin.next_of_type("connection.opened", WAIT).await.expect("opened");
    assert_eq!(opened["topic"], "connections");
    assert_eq!(opened["sender_id"], "server");
    assert_eq!(opened["payload"]["connection_id"], id);
    assert_eq!(opened["payload"]["client_id"], "visitor-1");
    assert_eq!(opened["payload"]["role"], "anonymous");
    visitor.close(1000).await.expect("close");
    let closed = admin.next_of_type("connection.closed", WAIT).await.expect("closed");
    assert_eq!(closed["payload"]["connection_id"], id);

    // Viewers may not watch it.
    let (mut viewer, _) = hub.connect_as(&token("v", "viewer", 3600)).await;
    let reply = viewer
        .request("subscribe", json!({"topic": "connections"}), WAIT)
        .await
        .expect("reply");
    assert_eq!(error_code(&reply), Some("forbidden"));
}

#[tokio::test]
async fn history_is_bounded_by_size_and_expires_after_ttl() {
    let hub = Hub::start(
        "topics:\n  - { match: \"few\", subscribe: [anonymous], publish: [], history: { size: 3 } }\n  - { match: \"brief\", subscribe: [anonymous], publish: [], history: { ttl: 1s } }\n  - { match: \"*\", subscribe: [anonymous], publish: [] }\n",
    )
    .await;
    for n in 1..=5 {
        hub.publish("few", "tick", json!({"n": n})).await;
    }
    let (mut client, _) = hub.connect("").await;
    let reply = client
        .request("history", json!({"topic": "few", "payload": {"limit": 10}}), WAIT)
        .await
        .expect("history");
    let offsets: Vec<u64> = reply["payload"]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(offset)
        .collect();
    assert_eq!(offsets, [3, 4, 5], "only the newest `size` are kept");
    assert_eq!(reply["payload"]["offset"], 5);

    let first = hub.publish("brief", "tick", json!({"n": 1})).await;
    assert_eq!(
        hub.get("/api/history/brief").await.1["messages"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    common::eventually("the brief topic's history to expire", || async {
        let (_, page) = hub.get("/api/history/brief").await;
        page["messages"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
    let again = hub.publish("brief", "tick", json!({"n": 2})).await;
    assert_eq!(again["offset"], 1, "an expired stream starts over");
    assert_ne!(again["epoch"], first["epoch"], "…in a new epoch");
}
