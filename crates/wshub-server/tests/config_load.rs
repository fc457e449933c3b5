//! Loading the configuration through the public API: defaults, the embedded default YAML, the
//! layering of file, environment and flags, and the one-line errors for bad input.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use wshub_server::config::{
    Config, ConfigError, DEFAULT_YAML, Loaded, Overrides, Size, TopicRule, check_file, from_yaml_str, load,
};

const EXAMPLE_YAML: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/wshub.yaml"));

/// A config file in the temp dir, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "wshub-config-test-{}-{}.yaml",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, contents).expect("write temp config");
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn load_env(pairs: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
    load(None, &env(pairs), &Overrides::default())
}

fn ok_env(pairs: &[(&str, &str)]) -> Loaded {
    load_env(pairs).unwrap_or_else(|e| panic!("{pairs:?}: {e}"))
}

fn ok_yaml(yaml: &str) -> Config {
    from_yaml_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}")).config
}

fn err_yaml(yaml: &str) -> ConfigError {
    from_yaml_str(yaml).expect_err(yaml)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn no_sources_give_the_defaults() {
    let loaded = load(None, &[], &Overrides::default()).expect("defaults are valid");
    assert_eq!(loaded.config, Config::default());
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn default_yaml_is_exactly_the_defaults() {
    let loaded = from_yaml_str(DEFAULT_YAML).expect("DEFAULT_YAML loads");
    assert_eq!(loaded.config, Config::default());
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn example_file_is_the_default_yaml() {
    assert_eq!(
        EXAMPLE_YAML, DEFAULT_YAML,
        "copy src/config/default.yaml to examples/wshub.yaml"
    );
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/wshub.yaml"));
    assert_eq!(check_file(&path).expect("example checks").config, Config::default());
}

#[test]
fn default_yaml_names_every_section() {
    for section in [
        "server:",
        "websocket:",
        "compression:",
        "auth:",
        "topics:",
        "history:",
        "rate_limits:",
        "reconnection:",
        "streams:",
        "handlers:",
        "metrics:",
        "system:",
        "dashboard:",
        "broker:",
    ] {
        assert!(
            DEFAULT_YAML.lines().any(|l| l.starts_with(section)),
            "{section} missing from DEFAULT_YAML"
        );
    }
}

#[test]
fn a_partial_section_keeps_the_other_defaults() {
    let c = ok_yaml("websocket:\n  ping_period: 20s\nrate_limits:\n  ping: { capacity: 5 }\n");
    assert_eq!(c.websocket.ping_period, secs(20));
    let mut expected = Config::default();
    expected.websocket.ping_period = secs(20);
    expected.rate_limits.ping.capacity = 5;
    assert_eq!(c, expected, "only the two keys given may change");
    assert_eq!(
        c.rate_limits.ping.refill_per_sec, 2.0,
        "the ping default, not the generic one"
    );
}

#[test]
fn a_topics_list_replaces_the_default_rules() {
    let c = ok_yaml(
        "topics:\n  - match: \"chat/*\"\n    subscribe: [user]\n    publish: [user]\n    \
         history: { size: 10 }\n    presence: true\n",
    );
    assert_eq!(c.topics.len(), 1);
    let rule = &c.topics[0];
    assert_eq!(rule.r#match, "chat/*");
    assert_eq!(
        (rule.subscribe.clone(), rule.publish.clone()),
        (vec!["user".to_owned()], vec!["user".to_owned()])
    );
    assert!(rule.presence);
    assert_eq!(c.history_for(0), (10, secs(300)), "ttl falls back to history.ttl");
    assert_ne!(c.topics, TopicRule::defaults());
}

#[test]
fn topic_rule_keys_other_than_match_have_defaults() {
    let c = ok_yaml("topics:\n  - { match: news }\n");
    assert!(c.topics[0].subscribe.is_empty() && c.topics[0].publish.is_empty());
    assert!(!c.topics[0].presence && c.topics[0].history.is_none());
    let err = err_yaml("topics:\n  - { subscribe: [a] }\n");
    assert_eq!(err.key(), Some("topics[0].match"));
}

#[test]
fn human_units_parse_exactly() {
    let c = ok_yaml(
        "websocket:\n  max_message_size: 512KB\n  outbound_queue_bytes: 2048\n  \
         handshake_timeout: 1m 30s\n  write_timeout: 500ms\n  ping_period: 50\n\
         compression:\n  threshold: 4KiB\nhistory:\n  ttl: 1h\n  max_bytes: 1GiB\n",
    );
    assert_eq!(c.websocket.max_message_size, Size(512_000));
    assert_eq!(c.websocket.outbound_queue_bytes.as_bytes(), 2048);
    assert_eq!(c.websocket.handshake_timeout, secs(90));
    assert_eq!(c.websocket.write_timeout, Duration::from_millis(500));
    assert_eq!(c.websocket.ping_period, secs(50), "a bare number is seconds");
    assert_eq!(c.compression.threshold.as_usize(), 4096);
    assert_eq!(c.history.ttl, secs(3600));
    assert_eq!(c.history.max_bytes.as_bytes(), 1 << 30);
}

#[test]
fn the_file_env_and_flags_layer_in_order() {
    let file = TempFile::new("server:\n  port: 1111\n  host: 0.0.0.0\n");
    let only_file = load(Some(&file.0), &[], &Overrides::default()).expect("valid");
    assert_eq!(only_file.config.server.port, 1111);

    let vars = env(&[("WSHUB_PORT", "2222")]);
    let with_env = load(Some(&file.0), &vars, &Overrides::default()).expect("valid");
    assert_eq!(with_env.config.server.port, 2222, "env beats the file");
    assert_eq!(with_env.config.server.host, "0.0.0.0", "other file keys stay");

    let flags = Overrides {
        port: Some(3333),
        ..Overrides::default()
    };
    let with_flags = load(Some(&file.0), &vars, &flags).expect("valid");
    assert_eq!(with_flags.config.server.port, 3333, "flags beat env");

    let set = Overrides {
        set: vec![("server.port".to_owned(), "4444".to_owned())],
        ..Overrides::default()
    };
    assert_eq!(
        load(Some(&file.0), &vars, &set).expect("valid").config.server.port,
        4444
    );
}

#[test]
fn host_flag_and_set_pairs_apply() {
    let flags = Overrides {
        host: Some("0.0.0.0".to_owned()),
        port: None,
        set: vec![
            ("websocket.ping_period".to_owned(), "20s".to_owned()),
            ("auth.allow_anonymous".to_owned(), "false".to_owned()),
            ("auth.api_keys".to_owned(), "k1,k2".to_owned()),
            ("broker.url".to_owned(), "redis://x:6379".to_owned()),
            ("topics".to_owned(), "[{match=\"*\", subscribe=[anonymous]}]".to_owned()),
        ],
    };
    let loaded = load(None, &[], &flags).expect("valid");
    let c = loaded.config;
    assert_eq!(c.server.host, "0.0.0.0");
    assert_eq!(c.websocket.ping_period, secs(20));
    assert!(!c.auth.allow_anonymous);
    assert_eq!(c.auth.api_keys, vec!["k1".to_owned(), "k2".to_owned()]);
    assert_eq!(c.broker.url.as_deref(), Some("redis://x:6379"));
    assert_eq!(c.topics.len(), 1);
    assert_eq!(
        (c.topics[0].r#match.as_str(), c.topics[0].subscribe.clone()),
        ("*", vec!["anonymous".to_owned()])
    );
}

#[test]
fn an_empty_set_value_clears_an_optional_key() {
    let file = TempFile::new("auth:\n  jwt:\n    hs256_secret: from-the-file-and-long-enough-to-pass\n");
    let flags = Overrides {
        set: vec![("auth.jwt.hs256_secret".to_owned(), String::new())],
        ..Overrides::default()
    };
    let loaded = load(Some(&file.0), &[], &flags).expect("valid");
    assert_eq!(loaded.config.auth.jwt.hs256_secret, None);
}

#[test]
fn env_keys_nest_with_double_underscores_and_are_typed() {
    let loaded = ok_env(&[
        ("WSHUB_WEBSOCKET__PING_PERIOD", "20s"),
        ("WSHUB_WEBSOCKET__MAX_CONNECTIONS", "8000"),
        ("WSHUB_COMPRESSION__ENABLED", "false"),
        ("WSHUB_AUTH__API_KEYS", "[a, b]"),
        ("WSHUB_AUTH__JWT__HS256_SECRET", "12345678901234567890123456789012"),
        ("WSHUB_HISTORY__MAX_BYTES", "64MiB"),
        ("wshub_system__interval", "2s"),
    ]);
    let c = loaded.config;
    assert_eq!(c.websocket.ping_period, secs(20));
    assert_eq!(c.websocket.max_connections, 8000);
    assert!(!c.compression.enabled);
    assert_eq!(c.auth.api_keys, vec!["a".to_owned(), "b".to_owned()]);
    assert_eq!(
        c.auth.jwt.hs256_secret.as_deref(),
        Some("12345678901234567890123456789012"),
        "a numeric secret stays a string"
    );
    assert_eq!(c.history.max_bytes, Size::mib(64));
    assert_eq!(c.system.interval, secs(2), "names are case-insensitive");
}

#[test]
fn every_shortcut_sets_its_key() {
    let c = ok_env(&[
        ("WSHUB_HOST", "0.0.0.0"),
        ("WSHUB_PORT", "9000"),
        ("WSHUB_ALLOWED_ORIGINS", "https://a.example, http://localhost:3000"),
        ("WSHUB_WRITE_TIMEOUT", "5s"),
        ("WSHUB_PING_PERIOD", "15s"),
        ("WSHUB_PONG_WAIT", "20s"),
    ])
    .config;
    assert_eq!((c.server.host.as_str(), c.server.port), ("0.0.0.0", 9000));
    assert_eq!(
        c.websocket.allowed_origins,
        vec!["https://a.example".to_owned(), "http://localhost:3000".to_owned()]
    );
    assert_eq!(c.websocket.write_timeout, secs(5));
    assert_eq!((c.websocket.ping_period, c.websocket.pong_wait), (secs(15), secs(20)));
}

#[test]
fn top_level_lists_can_come_from_the_environment() {
    let c = ok_env(&[("WSHUB_TOPICS", "[{match=\"chat/*\", subscribe=[user]}, {match=\"*\"}]")]).config;
    assert_eq!(c.topics.len(), 2);
    assert_eq!(c.topics[0].r#match, "chat/*");
    assert_eq!(c.topics[0].subscribe, vec!["user".to_owned()]);
}

#[test]
fn an_explicit_key_beats_its_shortcut() {
    let c = ok_env(&[("WSHUB_SERVER__PORT", "7000"), ("WSHUB_PORT", "9000")]).config;
    assert_eq!(c.server.port, 7000);
}

#[test]
fn service_links_in_host_and_port_are_ignored_with_a_warning() {
    let loaded = ok_env(&[
        ("WSHUB_PORT", "tcp://10.0.0.7:8000"),
        ("WSHUB_HOST", "tcp://10.0.0.7:8000"),
    ]);
    assert_eq!(loaded.config, Config::default());
    assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
    assert!(loaded.warnings.iter().any(|w| w.contains("WSHUB_PORT")));
    assert!(loaded.warnings.iter().any(|w| w.contains("WSHUB_HOST")));
}

#[test]
fn unrelated_and_single_word_variables_are_ignored() {
    let loaded = ok_env(&[
        ("WSHUB_LOG", "debug"),
        ("WSHUB_SERVICE_HOST", "10.0.0.7"),
        ("WSHUB_PORT_8000_TCP", "tcp://10.0.0.7:8000"),
        ("PATH", "/usr/bin"),
        ("HOST", "example"),
    ]);
    assert_eq!(loaded.config, Config::default());
    assert!(loaded.warnings.is_empty());
}

#[test]
fn empty_variables_are_ignored_with_a_warning() {
    let loaded = ok_env(&[("WSHUB_PORT", ""), ("WSHUB_WEBSOCKET__PATH", " ")]);
    assert_eq!(loaded.config, Config::default());
    assert_eq!(loaded.warnings.len(), 2);
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let err = err_yaml("websocket:\n  bogus: 1\n");
    assert_eq!(err.key(), Some("websocket.bogus"));
    assert!(err.to_string().starts_with("websocket.bogus: unknown key"), "{err}");

    let err = err_yaml("websocket:\n  ping_perod: 1s\n");
    assert!(err.to_string().contains("did you mean websocket.ping_period?"), "{err}");

    let err = err_yaml("topics:\n  - { match: x, bogus: 1 }\n");
    assert_eq!(err.key(), Some("topics[0].bogus"));

    let err = err_yaml("bogus: 1\n");
    assert_eq!(err.key(), Some("bogus"));

    let err = load_env(&[("WSHUB_WEBSOCKET__BOGUS", "1")]).expect_err("unknown env key");
    assert_eq!(
        err.to_string(),
        "websocket.bogus: unknown key (from environment variable WSHUB_WEBSOCKET__BOGUS)"
    );
    let err = load_env(&[("WSHUB_SERVER__PORT__X", "1")]).expect_err("below a value");
    assert_eq!(err.key(), Some("server.port.x"));

    let flags = Overrides {
        set: vec![("server.prot".to_owned(), "1".to_owned())],
        ..Overrides::default()
    };
    let err = load(None, &[], &flags).expect_err("unknown --set key");
    assert_eq!(
        err.to_string(),
        "server.prot: unknown key (did you mean server.port?) (from flag --set server.prot)"
    );
}

#[test]
fn malformed_variable_names_are_errors() {
    let err = load_env(&[("WSHUB_WEBSOCKET____PATH", "/x")]).expect_err("empty segment");
    assert!(matches!(err, ConfigError::Variable { .. }), "{err}");
    assert!(err.to_string().contains("WSHUB_WEBSOCKET____PATH"));
}

#[test]
fn bad_values_are_errors_naming_the_key() {
    let err = err_yaml("websocket:\n  ping_period: abc\n");
    assert_eq!(
        err.to_string(),
        "websocket.ping_period: invalid duration \"abc\" (expected e.g. 30s, 500ms, 1h) \
         (from config file <string>)"
    );
    let err = err_yaml("websocket:\n  max_message_size: 1XB\n");
    assert_eq!(err.key(), Some("websocket.max_message_size"));
    assert!(err.to_string().contains("invalid size \"1XB\""), "{err}");

    let err = err_yaml("compression:\n  enabled: maybe\n");
    assert_eq!(err.key(), Some("compression.enabled"));
    assert!(err.to_string().contains("\"maybe\" (expected true or false)"), "{err}");

    let err = err_yaml("server:\n  port: 70000\n");
    assert_eq!(err.key(), Some("server.port"));

    let err = err_yaml("broker:\n  kind: kafka\n");
    assert_eq!(err.key(), Some("broker.kind"));
    assert!(err.to_string().contains("memory, redis, nats"), "{err}");

    let err = load_env(&[("WSHUB_PING_PERIOD", "soon")]).expect_err("bad env duration");
    assert_eq!(err.key(), Some("websocket.ping_period"));
    assert!(
        err.to_string()
            .ends_with("(from environment variable WSHUB_PING_PERIOD)"),
        "{err}"
    );

    let err = load_env(&[("WSHUB_COMPRESSION__ENABLED", "maybe")]).expect_err("bad env bool");
    assert_eq!(err.key(), Some("compression.enabled"));

    let err = load_env(&[("WSHUB_PORT", "http")]).expect_err("bad env port");
    assert_eq!(err.key(), Some("server.port"));
}

#[test]
fn errors_are_one_line() {
    for yaml in [
        "a: [\n",
        "server:\n  port: 1\n   host: x\n",
        "websocket: 5\n",
        "topics: 5\n",
    ] {
        let text = err_yaml(yaml).to_string();
        assert!(!text.contains('\n'), "{text}");
    }
}

#[test]
fn syntax_errors_name_the_file_and_line() {
    let file = TempFile::new("server:\n  port: 8000\n  host: [\n");
    let err = check_file(&file.0).expect_err("bad yaml");
    let prefix = format!("config file {}: line ", file.0.display());
    assert!(err.to_string().starts_with(&prefix), "{err}");
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let path = PathBuf::from("/nonexistent/wshub.yaml");
    let err = check_file(&path).expect_err("missing");
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(
        err.to_string().starts_with("config file /nonexistent/wshub.yaml: "),
        "{err}"
    );
}

#[test]
fn a_config_serialises_to_yaml_that_loads_back() {
    let mut config = Config::default();
    config.websocket.handshake_timeout = Duration::from_millis(1500);
    config.history.max_bytes = Size(1500);
    let yaml = serde_saphyr::to_string(&config).expect("serialises");
    assert_eq!(from_yaml_str(&yaml).expect("loads back").config, config);
}
