//! Rules that deserialisation cannot express: values that must be positive, keys that depend on
//! each other, paths that must not collide, patterns that must compile. Runs on the fully layered
//! `Config`; the first broken rule is returned as a `ConfigError` naming the key.

use std::time::Duration;

use globset::GlobBuilder;

use super::error::ConfigError;
use super::schema::{BrokerKind, Bucket, Config};
use super::units::{Size, format_duration};

type Check = Result<(), ConfigError>;

/// Paths the hub serves whatever the configuration says.
const FIXED_PATHS: &[&str] = &["/health", "/ready", "/metrics", "/ws/health", "/ws/status"];
/// Path prefixes the hub owns: the server API and the per-topic raw streams.
const FIXED_PREFIXES: &[&str] = &["/api", "/ws/stream"];

/// Checks every rule; returns warnings about legal but suspicious settings.
pub fn validate(config: &Config) -> Result<Vec<String>, ConfigError> {
    let mut warnings = Vec::new();
    check_server(config)?;
    check_websocket(config, &mut warnings)?;
    check_paths(config)?;
    check_auth(config, &mut warnings)?;
    check_history(config)?;
    check_topics(config, &mut warnings)?;
    check_rate_limits(config)?;
    check_streams(config)?;
    check_handlers(config)?;
    check_metrics(config)?;
    check_broker(config, &mut warnings)?;
    Ok(warnings)
}

fn positive(key: &str, value: Duration) -> Check {
    if value.is_zero() {
        return Err(ConfigError::invalid(key, "must be above 0"));
    }
    Ok(())
}

fn at_least(key: &str, value: usize, min: usize) -> Check {
    if value < min {
        return Err(ConfigError::invalid(
            key,
            format!("{value} is below the minimum of {min}"),
        ));
    }
    Ok(())
}

fn at_least_size(key: &str, value: Size, min: Size) -> Check {
    if value < min {
        return Err(ConfigError::invalid(
            key,
            format!("{value} is below the minimum of {min}"),
        ));
    }
    Ok(())
}

fn check_server(c: &Config) -> Check {
    if c.server.host.trim().is_empty() {
        return Err(ConfigError::invalid("server.host", "must not be empty"));
    }
    positive("server.shutdown_timeout", c.server.shutdown_timeout)?;
    match (&c.server.tls.cert, &c.server.tls.key) {
        (Some(_), None) => Err(ConfigError::invalid(
            "server.tls.key",
            "must be set when server.tls.cert is (both or neither)",
        )),
        (None, Some(_)) => Err(ConfigError::invalid(
            "server.tls.cert",
            "must be set when server.tls.key is (both or neither)",
        )),
        _ => Ok(()),
    }
}

fn check_websocket(c: &Config, warnings: &mut Vec<String>) -> Check {
    let ws = &c.websocket;
    at_least_size("websocket.max_message_size", ws.max_message_size, Size::kib(1))?;
    at_least("websocket.max_connections", ws.max_connections, 1)?;
    at_least("websocket.max_connections_per_ip", ws.max_connections_per_ip, 1)?;
    check_bucket("websocket.handshake_rate_per_ip", &ws.handshake_rate_per_ip)?;
    at_least("websocket.outbound_queue", ws.outbound_queue, 1)?;
    at_least_size("websocket.outbound_queue_bytes", ws.outbound_queue_bytes, Size::kib(1))?;
    at_least(
        "websocket.max_subscriptions_per_connection",
        ws.max_subscriptions_per_connection,
        1,
    )?;
    positive("websocket.handshake_timeout", ws.handshake_timeout)?;
    positive("websocket.write_timeout", ws.write_timeout)?;
    positive("websocket.ping_period", ws.ping_period)?;
    positive("websocket.pong_wait", ws.pong_wait)?;
    if ws.ping_period >= ws.pong_wait {
        return Err(ConfigError::Conflict {
            key: "websocket.ping_period".to_owned(),
            value: format_duration(ws.ping_period),
            relation: "below",
            other: "websocket.pong_wait".to_owned(),
            other_value: format_duration(ws.pong_wait),
        });
    }
    for (i, origin) in ws.allowed_origins.iter().enumerate() {
        check_origin(origin)
            .map_err(|problem| ConfigError::invalid(format!("websocket.allowed_origins[{i}]"), problem))?;
    }
    if ws.allowed_origins.len() > 1 && ws.allowed_origins.iter().any(|o| o == "*") {
        warnings.push(
            "websocket.allowed_origins contains \"*\", which allows every origin; the other entries change nothing"
                .to_owned(),
        );
    }
    Ok(())
}

/// `*`, or `scheme://host[:port]` with nothing after the authority.
fn check_origin(origin: &str) -> Result<(), String> {
    if origin == "*" {
        return Ok(());
    }
    let expected = "(expected \"*\" or scheme://host[:port], e.g. https://example.com)";
    let Some((scheme, authority)) = origin.split_once("://") else {
        return Err(format!("{origin:?} is not an origin {expected}"));
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok {
        return Err(format!("{origin:?} has an invalid scheme {expected}"));
    }
    if authority.contains(['/', '?', '#']) {
        return Err(format!("{origin:?} must not have a path, query or fragment {expected}"));
    }
    if authority.contains('@') || authority.chars().any(char::is_whitespace) {
        return Err(format!("{origin:?} is not an origin {expected}"));
    }
    // `[::1]:8080` keeps its colons inside the brackets.
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (authority, None),
    };
    if host.is_empty() {
        return Err(format!("{origin:?} has no host {expected}"));
    }
    if let Some(port) = port
        && port.parse::<u16>().is_err()
    {
        return Err(format!("{origin:?} has an invalid port {expected}"));
    }
    Ok(())
}

/// Configured endpoint paths: well-formed, and no two (or one and a built-in) the same.
fn check_paths(c: &Config) -> Check {
    let mut paths = vec![
        ("websocket.path".to_owned(), c.websocket.path.as_str()),
        ("metrics.stream_path".to_owned(), c.metrics.stream_path.as_str()),
        ("dashboard.path".to_owned(), c.dashboard.path.as_str()),
    ];
    for (i, stream) in c.streams.iter().enumerate() {
        paths.push((format!("streams[{i}].path"), stream.path.as_str()));
    }
    for (i, (key, path)) in paths.iter().enumerate() {
        check_path_form(path).map_err(|problem| ConfigError::invalid(key, problem))?;
        if FIXED_PATHS.contains(path) {
            return Err(ConfigError::invalid(
                key,
                format!("{path:?} collides with the built-in {path} endpoint"),
            ));
        }
        for prefix in FIXED_PREFIXES {
            if path == prefix || path.starts_with(&format!("{prefix}/")) {
                return Err(ConfigError::invalid(
                    key,
                    format!("{path:?} collides with the built-in {prefix}/ routes"),
                ));
            }
        }
        if let Some((other, _)) = paths[..i].iter().find(|(_, p)| p == path) {
            return Err(ConfigError::invalid(key, format!("{path:?} collides with {other}")));
        }
    }
    for (key, path) in paths.iter().filter(|(key, _)| key != "dashboard.path") {
        if dashboard_serves(&c.dashboard.path, path) {
            return Err(ConfigError::invalid(
                key,
                format!("{path:?} collides with the dashboard's page or assets under dashboard.path"),
            ));
        }
    }
    Ok(())
}

/// Whether `path` is one the dashboard at `dashboard` answers: the page with or without a
/// trailing `/`, and everything under its `assets/`.
fn dashboard_serves(dashboard: &str, path: &str) -> bool {
    let base = dashboard.trim_end_matches('/');
    path.trim_end_matches('/') == base
        || path == format!("{base}/assets")
        || path.starts_with(&format!("{base}/assets/"))
}

fn check_path_form(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("{path:?} must start with /"));
    }
    // Router syntax (`{param}`, `*rest`, `:param`) and query characters would change its meaning.
    let allowed = |c: char| c.is_ascii_alphanumeric() || "/-._~".contains(c);
    if !path.chars().all(allowed) {
        return Err(format!("{path:?} may contain only letters, digits, and / - . _ ~"));
    }
    if path.contains("//") {
        return Err(format!("{path:?} must not contain an empty segment (//)"));
    }
    Ok(())
}

fn check_auth(c: &Config, warnings: &mut Vec<String>) -> Check {
    positive("auth.auth_timeout", c.auth.auth_timeout)?;
    let jwt = &c.auth.jwt;
    if jwt.hs256_secret.as_deref() == Some("") {
        return Err(ConfigError::invalid(
            "auth.jwt.hs256_secret",
            "must not be empty when set",
        ));
    }
    if jwt.hs256_secret.as_ref().is_some_and(|s| s.len() < 32) {
        warnings.push(
            "auth.jwt.hs256_secret is shorter than 32 bytes; HS256 tokens can be forged by guessing it".to_owned(),
        );
    }
    for (key, path) in [
        ("auth.jwt.rs256_public_key", &jwt.rs256_public_key),
        ("auth.jwt.es256_public_key", &jwt.es256_public_key),
    ] {
        if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err(ConfigError::invalid(key, "must not be empty when set"));
        }
    }
    let no_key = jwt.hs256_secret.is_none() && jwt.rs256_public_key.is_none() && jwt.es256_public_key.is_none();
    if !c.auth.allow_anonymous && no_key {
        warnings.push(
            "auth.allow_anonymous is false and no auth.jwt key is set: no WebSocket client can authenticate".to_owned(),
        );
    }
    for (i, key) in c.auth.api_keys.iter().enumerate() {
        if key.trim().is_empty() {
            return Err(ConfigError::invalid(format!("auth.api_keys[{i}]"), "must not be empty"));
        }
    }
    Ok(())
}

fn compile_glob(key: &str, pattern: &str) -> Check {
    if pattern.is_empty() {
        return Err(ConfigError::invalid(key, "must not be empty"));
    }
    GlobBuilder::new(pattern)
        .literal_separator(false)
        .build()
        .map(drop)
        .map_err(|e| ConfigError::invalid(key, format!("{pattern:?} is not a valid glob: {}", e.kind())))
}

fn check_roles(key: &str, roles: &[String]) -> Check {
    match roles.iter().position(|r| r.trim().is_empty()) {
        Some(i) => Err(ConfigError::invalid(
            format!("{key}[{i}]"),
            "role names must not be empty",
        )),
        None => Ok(()),
    }
}

fn check_topics(c: &Config, warnings: &mut Vec<String>) -> Check {
    let mut catch_all: Option<usize> = None;
    for (i, rule) in c.topics.iter().enumerate() {
        compile_glob(&format!("topics[{i}].match"), &rule.r#match)?;
        check_roles(&format!("topics[{i}].subscribe"), &rule.subscribe)?;
        check_roles(&format!("topics[{i}].publish"), &rule.publish)?;
        let (size, ttl) = c.history_for(i);
        if size > 0 && ttl.is_zero() {
            let own_ttl = rule.history.as_ref().is_some_and(|h| h.ttl.is_some());
            return Err(if own_ttl {
                ConfigError::invalid(
                    format!("topics[{i}].history.ttl"),
                    "must be above 0 when history is kept (size > 0)",
                )
            } else {
                ConfigError::invalid(
                    "history.ttl",
                    format!("must be above 0: topics[{i}] keeps history and sets no ttl of its own"),
                )
            });
        }
        if let Some(first) = catch_all {
            warnings.push(format!(
                "topics[{i}] ({:?}) can never apply: topics[{first}] (\"*\") matches every topic first",
                rule.r#match
            ));
        } else if rule.r#match.chars().all(|ch| ch == '*') {
            catch_all = Some(i);
        }
    }
    Ok(())
}

fn check_history(c: &Config) -> Check {
    if c.history.size > 0 && c.history.ttl.is_zero() {
        return Err(ConfigError::invalid(
            "history.ttl",
            "must be above 0 when history is kept (size > 0)",
        ));
    }
    positive("reconnection.token_ttl", c.reconnection.token_ttl)?;
    if let Some(secret) = &c.reconnection.secret
        && secret.len() < MIN_RECONNECTION_SECRET
    {
        return Err(ConfigError::invalid(
            "reconnection.secret",
            format!("must be at least {MIN_RECONNECTION_SECRET} bytes (it signs reconnection tokens)"),
        ));
    }
    Ok(())
}

/// Shortest accepted `reconnection.secret`: 128 bits written as hex.
const MIN_RECONNECTION_SECRET: usize = 32;

/// A token bucket that can ever admit something: `capacity` ≥ 1 and a finite `refill_per_sec` > 0.
fn check_bucket(key: &str, bucket: &Bucket) -> Check {
    if bucket.capacity < 1 {
        return Err(ConfigError::invalid(format!("{key}.capacity"), "must be at least 1"));
    }
    if !(bucket.refill_per_sec.is_finite() && bucket.refill_per_sec > 0.0) {
        return Err(ConfigError::invalid(
            format!("{key}.refill_per_sec"),
            format!("{} must be above 0", bucket.refill_per_sec),
        ));
    }
    Ok(())
}

fn check_rate_limits(c: &Config) -> Check {
    let rl = &c.rate_limits;
    let buckets: [(&str, &Bucket); 4] = [
        ("ping", &rl.ping),
        ("subscribe", &rl.subscribe),
        ("unsubscribe", &rl.unsubscribe),
        ("default", &rl.default),
    ];
    for (name, bucket) in buckets {
        check_bucket(&format!("rate_limits.{name}"), bucket)?;
    }
    if rl.abuse_close_after < 1 {
        return Err(ConfigError::invalid(
            "rate_limits.abuse_close_after",
            "must be at least 1",
        ));
    }
    Ok(())
}

/// The topic character set of contract §4.
fn is_topic(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.:/@-".contains(c))
}

fn check_streams(c: &Config) -> Check {
    for (i, stream) in c.streams.iter().enumerate() {
        if !is_topic(&stream.topic) {
            return Err(ConfigError::invalid(
                format!("streams[{i}].topic"),
                format!(
                    "{:?} is not a topic name (1 to 255 bytes of A-Z a-z 0-9 _ . : / @ -)",
                    stream.topic
                ),
            ));
        }
        if let Some(hz) = stream.rate_hz
            && !(hz.is_finite() && hz > 0.0)
        {
            return Err(ConfigError::invalid(
                format!("streams[{i}].rate_hz"),
                format!("{hz} must be above 0 (or leave it out to send every event)"),
            ));
        }
    }
    Ok(())
}

fn check_handlers(c: &Config) -> Check {
    for (i, handler) in c.handlers.iter().enumerate() {
        compile_glob(&format!("handlers[{i}].match"), &handler.r#match)?;
        let url = handler.url.to_ascii_lowercase();
        let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
        if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
            return Err(ConfigError::invalid(
                format!("handlers[{i}].url"),
                format!("{:?} must be an http:// or https:// URL with a host", handler.url),
            ));
        }
        positive(&format!("handlers[{i}].timeout"), handler.timeout)?;
        if let Some(roles) = &handler.roles {
            check_roles(&format!("handlers[{i}].roles"), roles)?;
        }
    }
    Ok(())
}

fn check_metrics(c: &Config) -> Check {
    let m = &c.metrics;
    let mut chars = m.prefix.chars();
    let first_ok = chars.next().is_some_and(|ch| ch.is_ascii_alphabetic() || ch == '_');
    if !first_ok || !chars.all(|ch| ch.is_ascii_alphanumeric() || ch == '_') {
        return Err(ConfigError::invalid(
            "metrics.prefix",
            format!("{:?} must match [a-zA-Z_][a-zA-Z0-9_]*", m.prefix),
        ));
    }
    positive("metrics.history_resolution", m.history_resolution)?;
    positive("metrics.heartbeat_interval", m.heartbeat_interval)?;
    if m.history_retention < m.history_resolution {
        return Err(ConfigError::Conflict {
            key: "metrics.history_retention".to_owned(),
            value: format_duration(m.history_retention),
            relation: "at least",
            other: "metrics.history_resolution".to_owned(),
            other_value: format_duration(m.history_resolution),
        });
    }
    positive("system.interval", c.system.interval)
}

fn check_broker(c: &Config, warnings: &mut Vec<String>) -> Check {
    let b = &c.broker;
    let schemes: &[&str] = match b.kind {
        BrokerKind::Memory => {
            if b.url.is_some() {
                warnings.push("broker.url is ignored with broker.kind memory".to_owned());
            }
            return Ok(());
        }
        BrokerKind::Redis => &["redis://", "rediss://"],
        BrokerKind::Nats => &["nats://", "tls://"],
    };
    let example = schemes.first().copied().unwrap_or_default();
    match &b.url {
        None => Err(ConfigError::invalid(
            "broker.url",
            format!("is required with broker.kind {} (e.g. {example}…)", b.kind),
        )),
        Some(url) if !schemes.iter().any(|s| url.len() > s.len() && url.starts_with(s)) => Err(ConfigError::invalid(
            "broker.url",
            format!(
                "{url:?} must start with {} for broker.kind {}",
                schemes.join(" or "),
                b.kind
            ),
        )),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::from_yaml_str;

    fn failing_key(yaml: &str) -> String {
        let error = from_yaml_str(yaml).expect_err(yaml);
        error.key().unwrap_or_default().to_owned()
    }

    #[test]
    fn handshake_rate_per_ip_must_admit_something() {
        assert_eq!(
            failing_key("websocket: { handshake_rate_per_ip: { capacity: 0 } }"),
            "websocket.handshake_rate_per_ip.capacity"
        );
        for refill in ["0", "-1", "-0.5"] {
            assert_eq!(
                failing_key(&format!(
                    "websocket: {{ handshake_rate_per_ip: {{ refill_per_sec: {refill} }} }}"
                )),
                "websocket.handshake_rate_per_ip.refill_per_sec",
                "{refill}"
            );
        }
        let ok = from_yaml_str("websocket: { handshake_rate_per_ip: { capacity: 1, refill_per_sec: 0.01 } }")
            .expect("a slow bucket is valid");
        assert_eq!(ok.config.websocket.handshake_rate_per_ip, Bucket::new(1, 0.01));
        assert_eq!(
            from_yaml_str("websocket: { handshake_rate_per_ip: { capacity: 5 } }")
                .expect("partial bucket")
                .config
                .websocket
                .handshake_rate_per_ip,
            Bucket::new(5, 1000.0),
            "an omitted refill_per_sec keeps its default"
        );
    }
}
