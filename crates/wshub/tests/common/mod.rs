//! Test harness: starts the real `wshub` binary on an ephemeral port and talks to it
//! over real sockets.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use wshub_client::{Client, Incoming};

/// Generous bound for anything a test waits for; tests wait for events, not sleeps.
pub const WAIT: Duration = Duration::from_secs(10);
/// The HS256 secret of [`Hub::start`] configs that use [`with_secret`].
pub const SECRET: &str = "test-secret-for-wshub";

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A running `wshub serve`.
pub struct Hub {
    pub child: Child,
    pub addr: String,
    pub log: PathBuf,
    http: reqwest::Client,
}

fn scratch(name: &str) -> PathBuf {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-{}-{name}", std::process::id(), n))
}

/// A config with the test HS256 secret added to `yaml` (which must not set `auth`).
pub fn with_secret(yaml: &str) -> String {
    format!("auth:\n  jwt:\n    hs256_secret: {SECRET}\n{yaml}")
}

impl Hub {
    /// Starts the hub with the given YAML config (empty: the embedded default).
    pub async fn start(yaml: &str) -> Hub {
        Hub::start_with(yaml, &[], &[]).await
    }

    /// Starts the hub with a config file, extra arguments and environment variables.
    pub async fn start_with(yaml: &str, args: &[&str], env: &[(&str, &str)]) -> Hub {
        Hub::start_at(yaml, 0, args, env).await
    }

    /// Like [`Hub::start_with`], on a given port (0: an ephemeral one), e.g. to restart a hub
    /// where its clients expect it.
    pub async fn start_at(yaml: &str, port: u16, args: &[&str], env: &[(&str, &str)]) -> Hub {
        let config = scratch("wshub.yaml");
        std::fs::write(&config, yaml).expect("write config");
        let log = scratch("wshub.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_wshub"));
        command
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .args(["--port", &port.to_string()])
            .args(args);
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("WSHUB_")) {
            command.env_remove(key);
        }
        command.envs(env.iter().copied()).env("WSHUB_LOG", "debug");
        command
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .kill_on_drop(true);
        let mut child = command.spawn().expect("start wshub");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("wshub did not start in time")
            .expect("read stdout")
            .unwrap_or_else(|| {
                panic!(
                    "wshub exited before listening; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .expect("address in the listening line")
            .to_owned();
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Hub {
            child,
            addr,
            log,
            http: reqwest::Client::new(),
        }
    }

    pub fn ws_url(&self, query: &str) -> String {
        if query.is_empty() {
            format!("ws://{}/ws", self.addr)
        } else {
            format!("ws://{}/ws?{query}", self.addr)
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The port the hub listens on.
    pub fn port(&self) -> u16 {
        self.addr
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .expect("a port in the hub's address")
    }

    /// Connects and returns the client with its `connection.established` message.
    pub async fn connect(&self, query: &str) -> (Client, Value) {
        connect_url(&self.ws_url(query)).await
    }

    /// Connects with a token in the query.
    pub async fn connect_as(&self, token: &str) -> (Client, Value) {
        self.connect(&format!("token={token}")).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).send().await.expect("GET");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_with(path, body, &[]).await
    }

    pub async fn post_with(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut request = self.http.post(self.url(path)).json(body);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.expect("POST");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Publishes through the HTTP API and returns the answer.
    pub async fn publish(&self, topic: &str, event: &str, payload: Value) -> Value {
        let (status, body) = self
            .post(
                "/api/publish",
                &json!({"topic": topic, "event": event, "payload": payload}),
            )
            .await;
        assert_eq!(status, 200, "publish failed: {body}");
        body
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.id().expect("running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Mints an HS256 token with [`SECRET`], independently of the hub's own code.
pub fn token(sub: &str, role: &str, exp_in: i64) -> String {
    token_claims(json!({"sub": sub, "role": role, "exp": now() + exp_in}))
}

pub fn token_claims(claims: Value) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &key,
    )
    .expect("encode")
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The reply's error code, if it is an error.
pub fn error_code(reply: &Value) -> Option<&str> {
    (reply["type"] == "error")
        .then(|| reply["payload"]["code"].as_str())
        .flatten()
}

/// Next JSON message or panic.
pub async fn next_json(client: &mut Client) -> Value {
    match client.next(WAIT).await.expect("a message") {
        Incoming::Json(v) => v,
        other => panic!("expected JSON, got {other:?}"),
    }
}

/// Polls `check` until it holds (for state with no event to wait on, such as cleanup
/// visible only through `/ws/status`); panics after [`WAIT`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Hub {
    /// Sends any request: `method`, `path`, extra headers, and an optional raw body with its
    /// content type. Returns the status and the body as JSON (`Null` when it is not JSON).
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
        let mut request = self.http.request(method, self.url(path));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some((content_type, bytes)) = body {
            request = request.header("content-type", content_type).body(bytes);
        }
        let response = request.send().await.expect("HTTP request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `GET` with extra headers.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        self.send("GET", path, headers, None).await
    }

    /// `POST` of a raw body (for malformed JSON and oversize bodies).
    pub async fn post_raw(&self, path: &str, content_type: &str, body: impl Into<Vec<u8>>) -> (u16, Value) {
        self.send("POST", path, &[], Some((content_type, body.into()))).await
    }
}

/// Asserts an HTTP answer is the API's error shape `{"error":{"code","message"}}` with `status`.
pub fn assert_api_error(what: &str, answer: &(u16, Value), status: u16) {
    let (got, body) = answer;
    assert_eq!(*got, status, "{what}: status (body {body})");
    assert!(
        body["error"]["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{what}: error.code is a string in {body}"
    );
    assert!(
        body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: error.message is a string in {body}"
    );
}

/// Connects to a `/ws` URL and returns the client with its `connection.established` message.
pub async fn connect_url(url: &str) -> (Client, Value) {
    let mut client = Client::connect(url).await.expect("connect");
    let established = client
        .next_of_type("connection.established", WAIT)
        .await
        .expect("connection.established");
    (client, established)
}
