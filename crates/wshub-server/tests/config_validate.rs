//! Each validation rule of the configuration, broken once, must fail with an error naming the key;
//! the nearby legal values must pass.

use wshub_server::config::{Config, ConfigError, from_yaml_str, validate};

fn err(yaml: &str) -> ConfigError {
    from_yaml_str(yaml).expect_err(yaml)
}

/// The error's key and its whole one-line message.
fn key_and_text(yaml: &str) -> (String, String) {
    let e = err(yaml);
    (e.key().unwrap_or_default().to_owned(), e.to_string())
}

fn assert_key(yaml: &str, key: &str) -> String {
    let (got, text) = key_and_text(yaml);
    assert_eq!(got, key, "{yaml} -> {text}");
    assert!(text.starts_with(key), "{text}");
    text
}

fn ok(yaml: &str) -> Vec<String> {
    from_yaml_str(yaml).unwrap_or_else(|e| panic!("{yaml} -> {e}")).warnings
}

#[test]
fn the_default_config_validates_without_warnings() {
    assert_eq!(validate(&Config::default()).expect("valid"), Vec::<String>::new());
}

#[test]
fn ping_period_must_be_below_pong_wait() {
    let text = assert_key(
        "websocket: { ping_period: 54s, pong_wait: 10s }",
        "websocket.ping_period",
    );
    assert_eq!(
        text,
        "websocket.ping_period (54s) must be below websocket.pong_wait (10s)"
    );
    assert_key(
        "websocket: { ping_period: 10s, pong_wait: 10s }",
        "websocket.ping_period",
    );
    ok("websocket: { ping_period: 9s, pong_wait: 10s }");
}

#[test]
fn timeouts_periods_and_intervals_must_be_positive() {
    for (yaml, key) in [
        ("server: { shutdown_timeout: 0s }", "server.shutdown_timeout"),
        ("websocket: { handshake_timeout: 0s }", "websocket.handshake_timeout"),
        ("websocket: { write_timeout: 0 }", "websocket.write_timeout"),
        ("websocket: { ping_period: 0s }", "websocket.ping_period"),
        ("auth: { auth_timeout: 0s }", "auth.auth_timeout"),
        ("reconnection: { token_ttl: 0s }", "reconnection.token_ttl"),
        ("metrics: { history_resolution: 0s }", "metrics.history_resolution"),
        ("metrics: { heartbeat_interval: 0s }", "metrics.heartbeat_interval"),
        ("system: { interval: 0s }", "system.interval"),
        ("history: { ttl: 0s }", "history.ttl"),
        (
            "handlers: [{ match: a, url: 'http://x', timeout: 0s }]",
            "handlers[0].timeout",
        ),
    ] {
        let text = assert_key(yaml, key);
        assert!(
            text.ends_with("must be above 0") || text.contains("must be above 0"),
            "{text}"
        );
    }
    ok("history: { ttl: 0s, size: 0 }");
    ok("auth: { refresh_grace: 0s, jwt: { leeway: 0s } }");
}

#[test]
fn queue_and_size_minimums() {
    assert_key("websocket: { outbound_queue: 0 }", "websocket.outbound_queue");
    assert_key(
        "websocket: { outbound_queue_bytes: 1023 }",
        "websocket.outbound_queue_bytes",
    );
    assert_key("websocket: { max_message_size: 512B }", "websocket.max_message_size");
    assert_key("websocket: { max_connections: 0 }", "websocket.max_connections");
    ok("websocket: { outbound_queue: 1, outbound_queue_bytes: 1KiB, max_message_size: 1KiB, max_connections: 1 }");
}

#[test]
fn paths_start_with_a_slash_and_do_not_collide() {
    assert_key("websocket: { path: ws }", "websocket.path");
    assert_key("dashboard: { path: '/dash/{x}' }", "dashboard.path");
    let text = assert_key("streams: [{ path: /ws, topic: x }]", "streams[0].path");
    assert_eq!(text, "streams[0].path: \"/ws\" collides with websocket.path");
    assert_key("dashboard: { path: /ws/metrics }", "dashboard.path");
    assert_key(
        "streams: [{ path: /ws/a, topic: a }, { path: /ws/a, topic: b }]",
        "streams[1].path",
    );
    for fixed in ["/health", "/ready", "/metrics", "/ws/health", "/ws/status"] {
        let text = assert_key(&format!("dashboard: {{ path: {fixed} }}"), "dashboard.path");
        assert!(text.contains("built-in"), "{text}");
    }
    assert_key("metrics: { stream_path: /api/metrics }", "metrics.stream_path");
    assert_key("websocket: { path: /api }", "websocket.path");
    assert_key("streams: [{ path: /ws/stream/x, topic: x }]", "streams[0].path");
    ok("streams: [{ path: /ws/latency, topic: latency, rate_hz: 10 }]\ndashboard: { path: /apidocs }");
}

#[test]
fn paths_stay_out_of_the_dashboards_page_and_assets() {
    let text = assert_key("metrics: { stream_path: /dashboard/ }", "metrics.stream_path");
    assert!(text.contains("dashboard"), "{text}");
    assert_key("websocket: { path: /dashboard/assets/dashboard.js }", "websocket.path");
    assert_key(
        "streams: [{ path: /dash/assets, topic: x }]\ndashboard: { path: /dash/ }",
        "streams[0].path",
    );
    assert_key(
        "websocket: { path: /assets/x }\ndashboard: { path: / }",
        "websocket.path",
    );
    ok("metrics: { stream_path: /dashboard/metrics }");
    ok("websocket: { path: /dashboards }\ndashboard: { path: / }");
}

#[test]
fn topic_rules_must_compile_and_name_roles() {
    let text = assert_key("topics: [{ match: 'a[', subscribe: [x] }]", "topics[0].match");
    assert!(text.contains("not a valid glob"), "{text}");
    assert_key("topics: [{ match: '' }]", "topics[0].match");
    assert_key("topics: [{ match: a, subscribe: [x, ''] }]", "topics[0].subscribe[1]");
    assert_key("topics: [{ match: a, publish: [' '] }]", "topics[0].publish[0]");
    assert_key(
        "topics: [{ match: a, history: { size: 5, ttl: 0s } }]",
        "topics[0].history.ttl",
    );
    assert_key(
        "history: { size: 0, ttl: 0s }\ntopics: [{ match: a, history: { size: 5 } }]",
        "history.ttl",
    );
    ok("topics: [{ match: 'sensors/*', subscribe: [a], history: { size: 0, ttl: 0s } }]");
}

#[test]
fn rules_after_a_catch_all_get_a_warning() {
    let warnings = ok("topics: [{ match: '*' }, { match: news }]");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("topics[1]"), "{warnings:?}");
}

#[test]
fn stream_topics_and_rates_are_checked() {
    assert_key("streams: [{ path: /s, topic: '' }]", "streams[0].topic");
    assert_key("streams: [{ path: /s, topic: 'has space' }]", "streams[0].topic");
    let long = "t".repeat(256);
    assert_key(&format!("streams: [{{ path: /s, topic: {long} }}]"), "streams[0].topic");
    assert_key("streams: [{ path: /s, topic: t, rate_hz: 0 }]", "streams[0].rate_hz");
    assert_key("streams: [{ path: /s, topic: t, rate_hz: -1.5 }]", "streams[0].rate_hz");
    assert_key("streams: [{ topic: t }]", "streams[0].path");
    ok(&format!(
        "streams: [{{ path: /s, topic: 'a_b.c:d/e@f-{}' , rate_hz: 0.5 }}]",
        "t".repeat(200)
    ));
}

#[test]
fn handlers_need_an_http_url_and_a_glob() {
    assert_key("handlers: [{ match: 'token.*', url: 'ftp://x' }]", "handlers[0].url");
    assert_key("handlers: [{ match: 'token.*', url: 'http://' }]", "handlers[0].url");
    assert_key("handlers: [{ match: 'a[', url: 'http://x' }]", "handlers[0].match");
    assert_key(
        "handlers: [{ match: a, url: 'http://x', roles: [''] }]",
        "handlers[0].roles[0]",
    );
    let c = from_yaml_str("handlers: [{ match: 'token.*', url: 'https://b:9000/rpc', roles: [admin] }]")
        .expect("valid")
        .config;
    assert_eq!(
        c.handlers[0].timeout,
        std::time::Duration::from_secs(5),
        "default timeout"
    );
    assert_eq!(c.handlers[0].roles, Some(vec!["admin".to_owned()]));
}

#[test]
fn allowed_origins_are_star_or_scheme_host_port() {
    for bad in [
        "https://a.example/",
        "https://a.example/app",
        "a.example",
        "https://",
        "https://a.example:99999",
        "https://user@a.example",
        "https://a.example?x=1",
    ] {
        let yaml = format!("websocket: {{ allowed_origins: ['{bad}'] }}");
        assert_key(&yaml, "websocket.allowed_origins[0]");
    }
    ok("websocket: { allowed_origins: ['https://a.example', 'http://localhost:3000', 'http://[::1]:8080'] }");
    let warnings = ok("websocket: { allowed_origins: ['*', 'https://a.example'] }");
    assert_eq!(warnings.len(), 1);
}

#[test]
fn redis_and_nats_need_a_matching_url() {
    let text = assert_key("broker: { kind: redis }", "broker.url");
    assert!(text.contains("required"), "{text}");
    assert_key("broker: { kind: redis, url: 'nats://x:4222' }", "broker.url");
    assert_key("broker: { kind: nats, url: 'redis://x' }", "broker.url");
    ok("broker: { kind: redis, url: 'redis://127.0.0.1:6379' }");
    ok("broker: { kind: nats, url: 'nats://127.0.0.1:4222' }");
    assert_eq!(
        ok("broker: { url: 'redis://x' }").len(),
        1,
        "memory ignores the url: a warning"
    );
}

#[test]
fn tls_needs_both_cert_and_key() {
    assert_key("server: { tls: { cert: /c.pem } }", "server.tls.key");
    assert_key("server: { tls: { key: /k.pem } }", "server.tls.cert");
    ok("server: { tls: { cert: /c.pem, key: /k.pem } }");
}

#[test]
fn rate_limit_buckets_must_be_usable() {
    assert_key("rate_limits: { ping: { capacity: 0 } }", "rate_limits.ping.capacity");
    assert_key(
        "rate_limits: { default: { refill_per_sec: 0 } }",
        "rate_limits.default.refill_per_sec",
    );
    assert_key(
        "rate_limits: { subscribe: { refill_per_sec: -1 } }",
        "rate_limits.subscribe.refill_per_sec",
    );
    assert_key("rate_limits: { abuse_close_after: 0 }", "rate_limits.abuse_close_after");
    ok("rate_limits: { unsubscribe: { capacity: 1, refill_per_sec: 0.1 } }");
}

#[test]
fn metrics_prefix_is_a_prometheus_name() {
    for bad in ["''", "1abc", "my-hub", "a.b"] {
        assert_key(&format!("metrics: {{ prefix: {bad} }}"), "metrics.prefix");
    }
    ok("metrics: { prefix: _my_Hub2 }");
}

#[test]
fn metrics_retention_covers_at_least_one_point() {
    let text = assert_key(
        "metrics: { history_resolution: 1m, history_retention: 30s }",
        "metrics.history_retention",
    );
    assert!(text.contains("must be at least metrics.history_resolution"), "{text}");
}

#[test]
fn auth_values_are_checked() {
    assert_key("auth: { jwt: { hs256_secret: '' } }", "auth.jwt.hs256_secret");
    assert_key("auth: { api_keys: [''] }", "auth.api_keys[0]");
    let warnings = ok("auth: { jwt: { hs256_secret: short } }");
    assert!(warnings.iter().any(|w| w.contains("hs256_secret")), "{warnings:?}");
    let warnings = ok("auth: { allow_anonymous: false }");
    assert!(warnings.iter().any(|w| w.contains("allow_anonymous")), "{warnings:?}");
}

#[test]
fn server_host_must_not_be_empty() {
    assert_key("server: { host: '' }", "server.host");
}
