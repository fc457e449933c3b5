//! Authentication and the permission matrix, through the real binary.

mod common;

use common::{Hub, WAIT, error_code, fixture, next_json, now, token, token_claims, with_secret};
use serde_json::json;
use wshub_client::{Client, ClientError};

/// CONTRACT §5's default matrix: topic → per-role (admin, developer, viewer, bot, anonymous).
const MATRIX: &[(&str, [&str; 5])] = &[
    ("metrics", ["sp", "s", "s", "s", "s"]),
    ("signals", ["sp", "s", "", "s", ""]),
    ("actions", ["sp", "s", "", "", ""]),
    ("logs", ["sp", "s", "", "", ""]),
    ("status", ["sp", "s", "s", "s", "s"]),
    ("connections", ["sp", "", "", "", ""]),
    ("system", ["s", "s", "s", "", ""]),
    ("alerts", ["s", "s", "s", "", ""]),
    ("any/other.topic", ["sp", "sp", "s", "s", "s"]),
];

#[tokio::test]
async fn default_permission_matrix_for_every_role() {
    let hub = Hub::start(&with_secret("")).await;
    for (column, role) in ["admin", "developer", "viewer", "bot", "anonymous"].iter().enumerate() {
        let (mut client, established) = if *role == "anonymous" {
            hub.connect("").await
        } else {
            hub.connect_as(&token(&format!("{role}-user"), role, 3600)).await
        };
        assert_eq!(established["payload"]["role"], *role);
        for (topic, row) in MATRIX {
            let expect = row[column];
            let reply = client
                .request("subscribe", json!({"topic": topic}), WAIT)
                .await
                .expect("reply");
            if expect.contains('s') {
                assert_eq!(reply["type"], "subscribed", "{role} subscribe {topic}: {reply}");
            } else {
                assert_eq!(
                    error_code(&reply),
                    Some("forbidden"),
                    "{role} subscribe {topic}: {reply}"
                );
            }
            let reply = client
                .request("publish", json!({"topic": topic, "event": "probe"}), WAIT)
                .await
                .expect("reply");
            if expect.contains('p') {
                assert_eq!(reply["type"], "published", "{role} publish {topic}: {reply}");
            } else {
                assert_eq!(error_code(&reply), Some("forbidden"), "{role} publish {topic}: {reply}");
            }
        }
        // The established message lists the same decisions, rule by rule.
        let permissions = established["payload"]["permissions"].as_array().expect("permissions");
        let star = permissions.iter().find(|p| p["match"] == "*").expect("catch-all rule");
        assert_eq!(star["publish"], MATRIX[8].1[column].contains('p'));
    }
}

#[tokio::test]
async fn token_in_query_header_or_auth_message() {
    let hub = Hub::start(&with_secret("")).await;
    let t = token("alice", "developer", 3600);

    let (_, established) = hub.connect_as(&t).await;
    assert_eq!(established["payload"]["user"], "alice");

    let mut client = Client::connect_request(&hub.ws_url(""), vec![("Authorization", format!("Bearer {t}"))])
        .await
        .expect("connect");
    let established = client
        .next_of_type("connection.established", WAIT)
        .await
        .expect("established");
    assert_eq!(established["payload"]["user"], "alice");
    assert_eq!(established["payload"]["role"], "developer");

    let (mut client, established) = hub.connect("").await;
    assert_eq!(established["payload"]["role"], "anonymous");
    let reply = client
        .request("auth", json!({"payload": {"token": t}}), WAIT)
        .await
        .expect("reply");
    assert_eq!(reply["type"], "authenticated");
    assert_eq!(reply["payload"]["user"], "alice");
    assert_eq!(reply["payload"]["role"], "developer");
    assert!(reply["payload"]["permissions"].as_array().is_some_and(|p| p.len() == 9));
    // Now a developer: may publish to "*" topics.
    let reply = client
        .request("publish", json!({"topic": "t"}), WAIT)
        .await
        .expect("reply");
    assert_eq!(reply["type"], "published");
}

async fn assert_refused(hub: &Hub, query: &str) {
    let mut client = Client::connect(&hub.ws_url(query))
        .await
        .expect("upgrade succeeds; the refusal comes as messages");
    let first = next_json(&mut client).await;
    assert_eq!(error_code(&first), Some("unauthorized"), "{first}");
    assert_eq!(client.closed(WAIT).await.expect("closed"), Some(4001));
}

#[tokio::test]
async fn bad_tokens_get_unauthorized_and_close_4001() {
    let hub = Hub::start(&with_secret("")).await;
    // Expired at connect (beyond the 5 s leeway).
    assert_refused(&hub, &format!("token={}", token("u", "admin", -60))).await;
    // Garbage.
    assert_refused(&hub, "token=not.a.token").await;
    // Signed with another secret.
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "u", "role": "admin", "exp": now() + 60}),
        &jsonwebtoken::EncodingKey::from_secret(b"wrong"),
    )
    .expect("encode");
    assert_refused(&hub, &format!("token={forged}")).await;
    // alg: none.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let unsigned = format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(json!({"sub": "u", "role": "admin", "exp": now() + 60}).to_string())
    );
    assert_refused(&hub, &format!("token={unsigned}")).await;
    // No exp claim.
    assert_refused(
        &hub,
        &format!("token={}", token_claims(json!({"sub": "u", "role": "admin"}))),
    )
    .await;
    // A bad token in an auth message closes too.
    let (mut client, _) = hub.connect("").await;
    let reply = client
        .request("auth", json!({"payload": {"token": "nope"}}), WAIT)
        .await
        .expect("reply");
    assert_eq!(error_code(&reply), Some("unauthorized"));
    assert_eq!(client.closed(WAIT).await.expect("closed"), Some(4001));
}

#[tokio::test]
async fn rs256_and_es256_tokens_and_algorithm_must_match_the_key() {
    let yaml = format!(
        "auth:\n  jwt:\n    rs256_public_key: {}\n    es256_public_key: {}\n",
        fixture("rs256-public.pem").display(),
        fixture("es256-public.pem").display()
    );
    let hub = Hub::start(&yaml).await;
    let claims = json!({"sub": "rsa-user", "role": "viewer", "exp": now() + 600});
    let rsa = std::fs::read(fixture("rs256-private.pem")).expect("key");
    let t = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(&rsa).expect("rsa key"),
    )
    .expect("encode");
    let (_, established) = hub.connect_as(&t).await;
    assert_eq!(established["payload"]["user"], "rsa-user");

    let ec = std::fs::read(fixture("es256-private.pem")).expect("key");
    let claims = json!({"sub": "ec-user", "role": "bot", "exp": now() + 600});
    let t = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_pem(&ec).expect("ec key"),
    )
    .expect("encode");
    let (_, established) = hub.connect_as(&t).await;
    assert_eq!(established["payload"]["role"], "bot");

    // HS256 is not configured on this hub: a HS256 token is refused.
    assert_refused(&hub, &format!("token={}", token("u", "admin", 600))).await;
}

#[tokio::test]
async fn several_roles_are_a_union_and_channels_claim_adds_topics() {
    let hub = Hub::start(&with_secret("")).await;
    let t = token_claims(json!({"sub": "multi", "roles": ["viewer", "bot"], "exp": now() + 600}));
    let (mut client, established) = hub.connect_as(&t).await;
    assert_eq!(established["payload"]["role"], "viewer");
    assert_eq!(established["payload"]["roles"], json!(["viewer", "bot"]));
    // signals: bot may subscribe, viewer may not → allowed.
    let reply = client
        .request("subscribe", json!({"topic": "signals"}), WAIT)
        .await
        .expect("reply");
    assert_eq!(reply["type"], "subscribed");
    // system: viewer yes, bot no → allowed.
    let reply = client
        .request("subscribe", json!({"topic": "system"}), WAIT)
        .await
        .expect("reply");
    assert_eq!(reply["type"], "subscribed");

    let t = token_claims(json!({"sub": "v", "role": "viewer", "channels": ["logs"], "exp": now() + 600}));
    let (mut client, _) = hub.connect_as(&t).await;
    let reply = client
        .request("subscribe", json!({"topics": ["logs", "actions"]}), WAIT)
        .await
        .expect("reply");
    assert_eq!(reply["payload"]["subscribed"][0]["topic"], "logs");
    assert_eq!(
        reply["payload"]["denied"],
        json!([{"topic": "actions", "code": "forbidden"}])
    );
}

#[tokio::test]
async fn auth_first_mode_waits_for_auth_and_times_out_with_4001() {
    let yaml = format!(
        "auth:\n  allow_anonymous: false\n  auth_timeout: 1s\n  jwt:\n    hs256_secret: {}\n",
        common::SECRET
    );
    let hub = Hub::start(&yaml).await;

    let mut client = Client::connect(&hub.ws_url("")).await.expect("connect");
    let reply = client
        .request("subscribe", json!({"topic": "metrics"}), WAIT)
        .await
        .expect("reply");
    assert_eq!(
        error_code(&reply),
        Some("unauthorized"),
        "requests before auth are refused"
    );
    let reply = client
        .request("auth", json!({"payload": {"token": token("bob", "viewer", 600)}}), WAIT)
        .await
        .expect("reply");
    assert_eq!(reply["type"], "authenticated");
    let established = client
        .next_of_type("connection.established", WAIT)
        .await
        .expect("established after auth");
    assert_eq!(established["payload"]["user"], "bob");
    let reply = client
        .request("subscribe", json!({"topic": "metrics"}), WAIT)
        .await
        .expect("reply");
    assert_eq!(reply["type"], "subscribed");

    // Silence: closed with 4001 once auth_timeout passes.
    let mut silent = Client::connect(&hub.ws_url("")).await.expect("connect");
    let started = std::time::Instant::now();
    let error = next_json(&mut silent).await;
    assert_eq!(error_code(&error), Some("unauthorized"));
    assert_eq!(silent.closed(WAIT).await.expect("closed"), Some(4001));
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "not before auth_timeout"
    );
}

#[tokio::test]
async fn refresh_with_a_new_role_drops_subscriptions_and_another_user_closes() {
    let hub = Hub::start(&with_secret("")).await;
    let (mut client, _) = hub.connect_as(&token("carol", "developer", 600)).await;
    let reply = client
        .request("subscribe", json!({"topics": ["logs", "metrics"]}), WAIT)
        .await
        .expect("reply");
    assert_eq!(reply["payload"]["subscribed"].as_array().map(Vec::len), Some(2));

    let reply = client
        .request(
            "auth",
            json!({"payload": {"token": token("carol", "viewer", 600)}}),
            WAIT,
        )
        .await
        .expect("reply");
    assert_eq!(reply["type"], "authenticated");
    assert_eq!(reply["payload"]["role"], "viewer");
    let notice = client.next_of_type("unsubscribed", WAIT).await.expect("notice");
    assert!(notice.get("id").is_none());
    assert_eq!(notice["payload"]["unsubscribed"], json!(["logs"]));

    let reply = client
        .request(
            "auth",
            json!({"payload": {"token": token("mallory", "admin", 600)}}),
            WAIT,
        )
        .await;
    match reply {
        Ok(reply) => assert_eq!(error_code(&reply), Some("unauthorized")),
        Err(ClientError::Closed(code)) => assert_eq!(code, Some(4001)),
        Err(other) => panic!("{other}"),
    }
    assert_eq!(client.closed(WAIT).await.expect("closed"), Some(4001));
}

fn expiry_config() -> String {
    format!(
        "auth:\n  refresh_grace: 1s\n  jwt:\n    hs256_secret: {}\n    leeway: 0s\n",
        common::SECRET
    )
}

#[tokio::test]
async fn an_expiring_token_is_refreshed_and_the_subscriptions_stay() {
    let hub = Hub::start(&expiry_config()).await;
    let (mut client, _) = hub.connect_as(&token("dana", "viewer", 2)).await;
    client
        .request("subscribe", json!({"topic": "metrics"}), WAIT)
        .await
        .expect("subscribed");
    let expired = client.next_of_type("error", WAIT).await.expect("token_expired notice");
    assert_eq!(error_code(&expired), Some("token_expired"));
    assert!(expired.get("id").is_none());
    // Until a fresh token arrives, requests other than auth and ping are refused.
    let reply = client
        .request("subscribe", json!({"topic": "status"}), WAIT)
        .await
        .expect("reply");
    assert_eq!(error_code(&reply), Some("token_expired"));
    let reply = client
        .request(
            "auth",
            json!({"payload": {"token": token("dana", "viewer", 600)}}),
            WAIT,
        )
        .await
        .expect("reply");
    assert_eq!(reply["type"], "authenticated");
    // Past the grace period the connection is still open and still subscribed.
    match client.next(std::time::Duration::from_millis(1500)).await {
        Err(ClientError::Timeout(_)) => {}
        other => panic!("expected nothing during the old grace period, got {other:?}"),
    }
    hub.publish("metrics", "cpu", json!({"v": 1})).await;
    assert_eq!(
        client.next_of_type("cpu", WAIT).await.expect("event")["payload"]["v"],
        1
    );
}

#[tokio::test]
async fn an_expired_token_not_refreshed_closes_with_4002() {
    let hub = Hub::start(&expiry_config()).await;
    let (mut client, _) = hub.connect_as(&token("erin", "viewer", 2)).await;
    let expired = client.next_of_type("error", WAIT).await.expect("token_expired notice");
    assert_eq!(error_code(&expired), Some("token_expired"));
    let notified = std::time::Instant::now();
    assert_eq!(client.closed(WAIT).await.expect("closed"), Some(4002));
    assert!(
        notified.elapsed() >= std::time::Duration::from_millis(800),
        "not before refresh_grace"
    );
}
