//! The `wshub` command line (CONTRACT §15): `config default|check`, configuration errors,
//! the precedence of file, environment and flags, `token`, and `--help`.

mod common;

use common::{Hub, SECRET, WAIT, with_secret};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const EXAMPLE_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/wshub.yaml");

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A fresh file under the test scratch directory holding `content`.
fn write_file(name: &str, content: &str) -> PathBuf {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{}-{n}-{name}", std::process::id()));
    std::fs::write(&path, content).expect("write scratch file");
    path
}

/// `wshub` with no `WSHUB_*` variable inherited from the test's environment, plus `env`.
fn wshub(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wshub"));
    command.args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WSHUB_") {
            command.env_remove(key);
        }
    }
    command
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Runs a command that is expected to exit by itself, within [`WAIT`].
async fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    tokio::time::timeout(WAIT, wshub(args, env).output())
        .await
        .unwrap_or_else(|_| panic!("wshub {args:?} did not exit in time"))
        .expect("run wshub")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 stdout")
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("UTF-8 stderr")
}

/// Asserts a failed run reported exactly one line on stderr, mentioning each of `needles`.
fn assert_one_line_error(what: &str, output: &Output, needles: &[&str]) {
    let err = stderr(output);
    assert!(!output.status.success(), "{what}: should fail; stderr: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{what}: one stderr line, got:\n{err}"
    );
    for needle in needles {
        assert!(err.contains(needle), "{what}: stderr names {needle:?}: {err}");
    }
}

/// A `wshub serve` started by a test; killed when dropped.
struct Served {
    _child: Child,
    /// The listening line printed on stdout.
    line: String,
    stderr: PathBuf,
}

impl Served {
    /// Starts `wshub serve ARGS` and waits for its listening line.
    async fn start(args: &[&str], env: &[(&str, &str)]) -> Served {
        let stderr = write_file("serve.log", "");
        let mut full = vec!["serve"];
        full.extend_from_slice(args);
        let mut child = wshub(&full, env)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("log file"))
            .spawn()
            .expect("start wshub serve");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("wshub serve did not start in time")
            .expect("read stdout")
            .unwrap_or_else(|| {
                panic!(
                    "wshub serve exited before listening:\n{}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                )
            });
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Served {
            _child: child,
            line,
            stderr,
        }
    }

    /// The port from `wshub X listening on http://127.0.0.1:PORT …`.
    fn port(&self) -> u16 {
        let addr = self
            .line
            .split("http://")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {:?}", self.line));
        addr.rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {:?}", self.line))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

/// `N` distinct ports that were free a moment ago (all bound at once, then released).
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("local address").port())
}

/// Asserts the hub answers `/health` on `port`.
async fn assert_serves_on(port: u16) {
    let response = reqwest::get(format!("http://127.0.0.1:{port}/health"))
        .await
        .expect("GET /health on the announced port");
    assert_eq!(response.status().as_u16(), 200);
}

/// The claims of a JWT, decoded without checking the signature.
fn claims(jwt: &str) -> Value {
    use base64::Engine;
    let part = jwt.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url claims");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

#[tokio::test]
async fn config_default_prints_the_example_file_exactly() {
    let output = run(&["config", "default"], &[]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let example = std::fs::read_to_string(EXAMPLE_CONFIG).expect("examples/wshub.yaml");
    assert_eq!(stdout(&output), example);
}

#[tokio::test]
async fn config_check_accepts_good_files() {
    let small = write_file("good.yaml", "server:\n  port: 9000\nwebsocket:\n  ping_period: 10s\n");
    for file in [EXAMPLE_CONFIG.into(), small] {
        let output = run(&["config", "check", file.to_str().expect("UTF-8 path")], &[]).await;
        assert!(output.status.success(), "{}: {}", file.display(), stderr(&output));
    }
}

#[tokio::test]
async fn config_check_rejects_bad_files_with_one_line_naming_the_key() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("unknown key", "websocket:\n  bogus: 1\n", &["websocket.bogus"]),
        ("unknown section", "websockets:\n  path: /ws\n", &["websockets"]),
        (
            "bad duration",
            "websocket:\n  ping_period: soon\n",
            &["websocket.ping_period"],
        ),
        (
            "bad size",
            "websocket:\n  max_message_size: huge\n",
            &["websocket.max_message_size"],
        ),
        (
            "ping_period equal to pong_wait",
            "websocket:\n  ping_period: 60s\n  pong_wait: 60s\n",
            &["websocket.ping_period", "pong_wait"],
        ),
        (
            "ping_period above pong_wait",
            "websocket:\n  ping_period: 90s\n",
            &["websocket.ping_period", "pong_wait"],
        ),
    ];
    for (what, yaml, needles) in cases {
        let file = write_file("bad.yaml", yaml);
        let output = run(&["config", "check", file.to_str().expect("UTF-8 path")], &[]).await;
        assert_one_line_error(what, &output, needles);
    }
}

#[tokio::test]
async fn serve_with_a_bad_config_exits_with_one_line_naming_the_key() {
    let file = write_file("bad.yaml", "websocket:\n  ping_period: 60s\n  pong_wait: 60s\n");
    let path = file.to_str().expect("UTF-8 path");
    let output = run(&["serve", "--config", path, "--port", "0"], &[]).await;
    assert_one_line_error(
        "serve with ping_period = pong_wait",
        &output,
        &["websocket.ping_period"],
    );

    let file = write_file("bad.yaml", "websocket:\n  bogus: 1\n");
    let path = file.to_str().expect("UTF-8 path");
    let output = run(&["serve", "--config", path, "--port", "0"], &[]).await;
    assert_one_line_error("serve with an unknown key", &output, &["websocket.bogus"]);

    // The environment and flags are sources too.
    let output = run(&["serve", "--port", "0"], &[("WSHUB_WEBSOCKET__PING_PERIOD", "soon")]).await;
    assert_one_line_error("serve with a bad env value", &output, &["websocket.ping_period"]);
    let output = run(&["serve", "--port", "0"], &[("WSHUB_WEBSOCKET__BOGUS", "1")]).await;
    assert_one_line_error("serve with an unknown env key", &output, &["websocket.bogus"]);
    let output = run(
        &["serve", "--port", "0", "--set", "websocket.max_connections=many"],
        &[],
    )
    .await;
    assert_one_line_error("serve with a bad --set", &output, &["websocket.max_connections"]);
}

#[tokio::test]
async fn port_precedence_is_file_then_environment_then_flag() {
    let [p1, p2, p3] = free_ports();
    let file = write_file("port.yaml", &format!("server:\n  port: {p1}\n"));
    let config = file.to_str().expect("UTF-8 path");
    let p2_text = p2.to_string();
    let p3_text = p3.to_string();

    let served = Served::start(&["--config", config], &[]).await;
    assert_eq!(served.port(), p1, "the file's port: {}", served.line);
    assert_serves_on(p1).await;
    drop(served);

    let served = Served::start(&["--config", config], &[("WSHUB_PORT", &p2_text)]).await;
    assert_eq!(served.port(), p2, "WSHUB_PORT beats the file: {}", served.line);
    assert_serves_on(p2).await;
    drop(served);

    let served = Served::start(&["--config", config, "--port", &p3_text], &[("WSHUB_PORT", &p2_text)]).await;
    assert_eq!(served.port(), p3, "--port beats WSHUB_PORT: {}", served.line);
    assert_serves_on(p3).await;
}

#[tokio::test]
async fn service_link_values_in_wshub_port_and_host_are_ignored_with_a_warning() {
    let [port, flag_port] = free_ports();
    let file = write_file("port.yaml", &format!("server:\n  port: {port}\n"));
    let served = Served::start(
        &["--config", file.to_str().expect("UTF-8 path")],
        &[
            ("WSHUB_PORT", "tcp://10.0.0.1:8000"),
            ("WSHUB_HOST", "tcp://10.0.0.1:8000"),
        ],
    )
    .await;
    assert_eq!(served.port(), port, "the file's port: {}", served.line);
    assert!(served.line.contains("http://127.0.0.1:"), "{}", served.line);
    assert_serves_on(port).await;
    let log = served.log();
    for variable in ["WSHUB_PORT", "WSHUB_HOST"] {
        assert!(
            log.lines()
                .any(|l| l.contains(variable) && l.to_ascii_lowercase().contains("warn")),
            "a warning naming {variable}:\n{log}"
        );
    }

    // The flag port, likewise.
    let served = Served::start(
        &["--port", &flag_port.to_string()],
        &[("WSHUB_PORT", "tcp://10.0.0.1:8000")],
    )
    .await;
    assert_eq!(served.port(), flag_port, "{}", served.line);
}

#[tokio::test]
async fn environment_and_set_reach_any_key() {
    let hub = Hub::start_with(
        "",
        &[],
        &[
            ("WSHUB_WEBSOCKET__PING_PERIOD", "2s"),
            ("WSHUB_WEBSOCKET__PONG_WAIT", "3s"),
        ],
    )
    .await;
    let (_, established) = hub.connect("").await;
    assert_eq!(
        established["payload"]["heartbeat"],
        json!({"ping_period": 2, "pong_wait": 3})
    );

    // The shortcuts, over a file that says otherwise.
    let hub = Hub::start_with(
        "websocket:\n  ping_period: 10s\n  pong_wait: 20s\n",
        &[],
        &[("WSHUB_PING_PERIOD", "4s"), ("WSHUB_PONG_WAIT", "5s")],
    )
    .await;
    let (_, established) = hub.connect("").await;
    assert_eq!(
        established["payload"]["heartbeat"],
        json!({"ping_period": 4, "pong_wait": 5})
    );

    // --set beats the environment.
    let hub = Hub::start_with(
        "",
        &["--set", "websocket.max_connections=3"],
        &[("WSHUB_WEBSOCKET__MAX_CONNECTIONS", "50")],
    )
    .await;
    let (status, body) = hub.get("/ws/status").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["limits"]["max_connections"], 3);
}

#[tokio::test]
async fn token_mints_a_jwt_the_hub_accepts() {
    let output = run(
        &["token", "--role", "admin", "--sub", "alice", "--ttl", "1h"],
        &[("WSHUB_AUTH__JWT__HS256_SECRET", SECRET)],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    assert_eq!(out.lines().count(), 1, "the token alone on stdout: {out:?}");
    let jwt = out.trim();
    let claims = claims(jwt);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["role"], "admin");
    let exp = claims["exp"].as_i64().expect("exp");
    assert!((exp - common::now() - 3600).abs() < 60, "exp an hour ahead: {claims}");

    let hub = Hub::start(&with_secret("")).await;
    let (_, established) = hub.connect_as(jwt).await;
    assert_eq!(established["payload"]["user"], "alice");
    assert_eq!(established["payload"]["role"], "admin");
}

#[tokio::test]
async fn token_without_a_secret_fails_naming_hs256_secret() {
    let output = run(&["token", "--role", "admin", "--sub", "alice"], &[]).await;
    assert!(!output.status.success(), "no secret, no token: {}", stdout(&output));
    assert!(stdout(&output).trim().is_empty(), "nothing on stdout");
    assert!(stderr(&output).contains("hs256_secret"), "{}", stderr(&output));
}

#[tokio::test]
async fn help_shows_examples() {
    for args in [&["--help"][..], &["serve", "--help"], &["token", "--help"]] {
        let output = run(args, &[]).await;
        assert!(output.status.success(), "wshub {args:?}: {}", stderr(&output));
        let text = stdout(&output);
        assert!(text.contains("Examples"), "wshub {args:?} shows examples:\n{text}");
        assert!(text.contains("wshub "), "wshub {args:?}:\n{text}");
    }
    let output = run(&["serve", "--help"], &[]).await;
    let text = stdout(&output);
    for flag in ["--config", "--port", "--host", "--set"] {
        assert!(text.contains(flag), "serve --help lists {flag}:\n{text}");
    }
}
