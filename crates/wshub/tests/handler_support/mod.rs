//! The harness of `handlers.rs`: one test backend, run as an HTTP endpoint beside the real
//! binary or as a Rust handler inside an embedded hub, and the hub around it.
#![allow(dead_code)]

use crate::common::{Hub, WAIT, connect_url, error_code, with_secret};
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, oneshot, watch};
use tokio::task::JoinHandle;
use wshub_client::Client;
use wshub_server::handlers::{Handler, HandlerError, HandlerOptions, HandlerReply, HandlerRequest, HandlerResult};
use wshub_server::{Server, ServerError};

/// The timeout of the `slow.*` route.
pub const SLOW_TIMEOUT: Duration = Duration::from_millis(300);

/// What the backend answers.
enum Answer {
    /// A reply: its optional `type` and its payload.
    Reply { kind: Option<&'static str>, payload: Value },
    /// A failure: HTTP 500 with this body, or `HandlerError::Failed` with this message.
    Fail(&'static str),
    /// A 2xx answer that is not an object.
    NotAnObject(Value),
    /// Publish `token.created` with this payload on `tokens`, then reply with it.
    Announce(Value),
}

/// The application behind the hub, shared by both ways of running it.
pub struct Backend {
    /// Every request body it received, in arrival order.
    pub received: Mutex<Vec<Value>>,
    /// How many requests arrived (to wait on).
    pub arrivals: watch::Sender<usize>,
    /// The peer address of each HTTP request (the hub's end of the pooled connection).
    pub peers: Mutex<Vec<SocketAddr>>,
    /// `t.hold` waits for a permit here.
    pub gate: Semaphore,
    /// How many `t.hold` calls were dropped before they answered (cancelled by the hub).
    pub abandoned: watch::Sender<usize>,
    /// The hub's base URL, for the HTTP backend's `POST /api/publish`.
    pub hub_url: std::sync::OnceLock<String>,
}

/// Counts a held call as abandoned unless it got to answer.
struct Abandoned<'a> {
    count: &'a watch::Sender<usize>,
    answered: bool,
}

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.count.send_modify(|n| *n += 1);
        }
    }
}

impl Backend {
    fn new() -> Arc<Backend> {
        Arc::new(Backend {
            received: Mutex::new(Vec::new()),
            arrivals: watch::Sender::new(0),
            peers: Mutex::new(Vec::new()),
            gate: Semaphore::new(0),
            abandoned: watch::Sender::new(0),
            hub_url: std::sync::OnceLock::new(),
        })
    }

    /// The behaviour of every request type the tests use.
    async fn answer(&self, request: Value) -> Answer {
        let kind = request["type"].as_str().unwrap_or_default().to_owned();
        self.received.lock().expect("lock").push(request.clone());
        self.arrivals.send_modify(|n| *n += 1);
        match kind.as_str() {
            "t.echo" => Answer::Reply {
                kind: Some("t.echoed"),
                payload: json!({ "got": request }),
            },
            "t.fail" => Answer::Fail("Traceback (most recent call last): secret-detail"),
            "t.list" => Answer::NotAnObject(json!([1, 2, 3])),
            "token.create" => Answer::Announce(json!({ "name": request["payload"]["name"], "by": request["user"] })),
            "t.hold" => {
                let mut guard = Abandoned {
                    count: &self.abandoned,
                    answered: false,
                };
                self.gate.acquire().await.expect("gate stays open").forget();
                guard.answered = true;
                Answer::Reply {
                    kind: None,
                    payload: json!({ "released": true }),
                }
            }
            "slow.never" => std::future::pending().await,
            _ => Answer::Reply {
                kind: None,
                payload: json!({ "ok": true }),
            },
        }
    }

    /// Waits until `n` requests have arrived in all.
    pub async fn arrived(&self, n: usize) {
        let mut count = self.arrivals.subscribe();
        tokio::time::timeout(WAIT, count.wait_for(|c| *c >= n))
            .await
            .unwrap_or_else(|_| panic!("{n} backend requests did not arrive"))
            .expect("backend alive");
    }

    pub fn count(&self) -> usize {
        *self.arrivals.borrow()
    }

    pub fn release(&self, n: usize) {
        self.gate.add_permits(n);
    }
}

/// The backend as an HTTP endpoint.
async fn rpc(
    State(backend): State<Arc<Backend>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    backend.peers.lock().expect("lock").push(peer);
    match backend.answer(body).await {
        Answer::Reply { kind, payload } => {
            let mut answer = json!({ "payload": payload });
            if let Some(kind) = kind {
                answer["type"] = json!(kind);
            }
            axum::Json(answer).into_response()
        }
        Answer::Fail(body) => (StatusCode::INTERNAL_SERVER_ERROR, body).into_response(),
        Answer::NotAnObject(value) => axum::Json(value).into_response(),
        Answer::Announce(token) => {
            let hub = backend.hub_url.get().expect("hub started");
            let published = reqwest::Client::new()
                .post(format!("{hub}/api/publish"))
                .json(&json!({"topic": "tokens", "event": "token.created", "payload": token}))
                .send()
                .await
                .expect("publish");
            assert!(published.status().is_success(), "{published:?}");
            axum::Json(json!({ "payload": { "token": token } })).into_response()
        }
    }
}

/// The backend as a Rust handler: it sees what the HTTP backend is sent.
struct Embedded(Arc<Backend>);

impl Handler for Embedded {
    async fn call(&self, request: HandlerRequest) -> HandlerResult {
        let payload: Value = request.payload().map_err(|e| HandlerError::failed(e.to_string()))?;
        let body = json!({
            "type": request.kind(),
            "payload": payload,
            "connection_id": request.connection_id().as_str(),
            "user": request.user(),
            "role": request.role(),
            "roles": request.roles(),
            "client_id": request.client_id(),
        });
        match self.0.answer(body).await {
            Answer::Reply { kind, payload } => {
                let reply = HandlerReply::json(&payload)?;
                Ok(match kind {
                    Some(kind) => reply.with_type(kind),
                    None => reply,
                })
            }
            Answer::Fail(message) => Err(HandlerError::failed(message)),
            // A Rust handler cannot build a reply that is not an object: it fails the same way.
            Answer::NotAnObject(value) => HandlerReply::json(&value),
            Answer::Announce(token) => {
                request.publish("tokens", "token.created", &token).await?;
                HandlerReply::json(&json!({ "token": token }))
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Mode {
    Http,
    Embedded,
}

enum Running {
    Binary(Hub),
    InProcess {
        addr: SocketAddr,
        stop: Option<oneshot::Sender<()>>,
        server: JoinHandle<Result<(), ServerError>>,
    },
}

/// A hub with the test routes, run one way or the other: `admin.*` (roles: admin),
/// `slow.*` (timeout [`SLOW_TIMEOUT`]), `t.*` (timeout 30 s), `token.*` (defaults).
pub struct TestHub {
    running: Running,
    pub backend: Arc<Backend>,
    http_backend: Option<JoinHandle<()>>,
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some(task) = &self.http_backend {
            task.abort();
        }
    }
}

/// Serves the backend on an ephemeral loopback port; returns its `/rpc` URL.
async fn serve_backend(backend: Arc<Backend>) -> (String, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind backend");
    let addr = listener.local_addr().expect("backend address");
    let app = axum::Router::new()
        .route("/rpc", axum::routing::post(rpc))
        .with_state(backend);
    let task = tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .expect("backend serves");
    });
    (format!("http://{addr}/rpc"), task)
}

impl TestHub {
    /// Starts the hub with `yaml` (which must not set `auth` or `handlers`) and the test routes.
    pub async fn start(mode: Mode, yaml: &str) -> TestHub {
        let backend = Backend::new();
        let yaml = with_secret(yaml);
        match mode {
            Mode::Http => {
                let (url, task) = serve_backend(Arc::clone(&backend)).await;
                let routes = format!(
                    "handlers:\n  - {{ match: \"admin.*\", url: \"{url}\", roles: [admin] }}\n  \
                     - {{ match: \"slow.*\", url: \"{url}\", timeout: {}ms }}\n  \
                     - {{ match: \"t.*\", url: \"{url}\", timeout: 30s }}\n  \
                     - {{ match: \"token.*\", url: \"{url}\" }}\n",
                    SLOW_TIMEOUT.as_millis()
                );
                let hub = Hub::start(&format!("{yaml}{routes}")).await;
                backend.hub_url.set(format!("http://{}", hub.addr)).expect("set once");
                TestHub {
                    running: Running::Binary(hub),
                    backend,
                    http_backend: Some(task),
                }
            }
            Mode::Embedded => {
                let mut config = wshub_server::config::from_yaml_str(&yaml).expect("config").config;
                config.server.port = 0;
                let handler = || Embedded(Arc::clone(&backend));
                let server = Server::builder(config)
                    .handler_with("admin.*", handler(), HandlerOptions::default().roles(["admin"]))
                    .handler_with("slow.*", handler(), HandlerOptions::default().timeout(SLOW_TIMEOUT))
                    .handler_with(
                        "t.*",
                        handler(),
                        HandlerOptions::default().timeout(Duration::from_secs(30)),
                    )
                    .handler("token.*", handler())
                    .bind()
                    .await
                    .expect("embedded hub starts");
                let addr = server.local_addr();
                let (stop, stopped) = oneshot::channel();
                let server = tokio::spawn(server.run(async move {
                    let _ = stopped.await;
                }));
                TestHub {
                    running: Running::InProcess {
                        addr,
                        stop: Some(stop),
                        server,
                    },
                    backend,
                    http_backend: None,
                }
            }
        }
    }

    pub fn ws_url(&self, query: &str) -> String {
        let addr = match &self.running {
            Running::Binary(hub) => hub.addr.clone(),
            Running::InProcess { addr, .. } => addr.to_string(),
        };
        format!("ws://{addr}/ws?{query}")
    }

    pub async fn connect(&self, query: &str) -> (Client, Value) {
        connect_url(&self.ws_url(query)).await
    }

    /// SIGTERM for the binary; the shutdown future for the embedded hub.
    pub fn terminate(&mut self) {
        match &mut self.running {
            Running::Binary(hub) => hub.terminate(),
            Running::InProcess { stop, .. } => {
                let _ = stop.take().expect("terminated once").send(());
            }
        }
    }

    /// Waits for the hub to finish its shutdown and checks it ended well (exit 0).
    pub async fn stopped(&mut self) {
        match &mut self.running {
            Running::Binary(hub) => {
                let status = tokio::time::timeout(WAIT, hub.child.wait())
                    .await
                    .expect("hub exits in time")
                    .expect("exit status");
                assert!(status.success(), "hub exit status {status}");
            }
            Running::InProcess { server, .. } => {
                tokio::time::timeout(WAIT, server)
                    .await
                    .expect("hub stops in time")
                    .expect("server task")
                    .expect("clean shutdown");
            }
        }
    }

    pub fn log_text(&self) -> Option<String> {
        match &self.running {
            Running::Binary(hub) => Some(hub.log_text()),
            Running::InProcess { .. } => None,
        }
    }
}

pub async fn send(client: &mut Client, id: &str, kind: &str, payload: Value) {
    client
        .send_json(&json!({"id": id, "type": kind, "payload": payload}))
        .await
        .expect("send");
}

pub async fn call(client: &mut Client, id: &str, kind: &str, payload: Value) -> Value {
    send(client, id, kind, payload).await;
    client.reply_to(id, WAIT).await.expect("a reply")
}

/// Probes with `ping` until the connection answers `unavailable` (the hub is draining).
pub async fn until_draining(client: &mut Client) {
    let deadline = Instant::now() + WAIT;
    loop {
        let reply = client.request("ping", json!({}), WAIT).await.expect("a reply");
        if error_code(&reply) == Some("unavailable") {
            return;
        }
        assert_eq!(reply["type"], "pong", "{reply}");
        assert!(Instant::now() < deadline, "the hub never started draining");
        // No event says "SIGTERM handled" before requests are refused; probe gently.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
